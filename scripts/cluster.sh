#!/usr/bin/env bash
# Runs relay's production shape on this machine as processes, the way docker-compose.yml
# describes it: the Temporal server (the version relay embeds) on PostgreSQL, 2 relay
# servers, 3 relay workers and relay sim, all on loopback.
#
#   scripts/cluster.sh up [-servers N] [-workers N] [-sim-knobs SPEC]
#   scripts/cluster.sh down
#   scripts/cluster.sh bench    # starts its own, measures it (BENCHMARKS.md), stops it
#
# PostgreSQL must accept user postgres without a password on 127.0.0.1:5432 (or pass
# -postgres and -user). State and logs live in .relay/cluster/.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./internal/cluster/clusterctl "$@"
