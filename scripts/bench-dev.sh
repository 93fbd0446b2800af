#!/usr/bin/env bash
# Measures `relay dev` as a user runs it: time from process start to /readyz 200, and the
# resident memory once it has idled. Usage: scripts/bench-dev.sh [runs] (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
bin=$(mktemp -d)/relay
go build -o "$bin" ./cmd/relay
port=$((20000 + RANDOM % 10000))
tport=$((port + 1)); uport=$((port + 2))

now_ms() { date +%s%3N; }
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3)"
echo "run  start-to-ready(fresh data dir)  start-to-ready(existing data dir)  RSS after 10s idle"
for i in $(seq 1 "$runs"); do
  data=$(mktemp -d)
  ready=()
  for phase in fresh existing; do
    t0=$(now_ms)
    "$bin" dev --data-dir "$data" --http-addr "127.0.0.1:$port" --temporal-listen "127.0.0.1:$tport" \
      --ui-addr "127.0.0.1:$uport" >/dev/null 2>&1 &
    pid=$!
    until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
      kill -0 "$pid" 2>/dev/null || { echo "relay dev exited"; exit 1; }
      sleep 0.01
    done
    ready+=($(( $(now_ms) - t0 )))
    if [ "$phase" = existing ]; then
      sleep 10
      rss=$(awk '/VmRSS/ {printf "%.0f MB", $2/1024}' "/proc/$pid/status")
    fi
    kill -INT "$pid"; wait "$pid" || true
  done
  echo "$i    ${ready[0]} ms                        ${ready[1]} ms                             $rss"
  rm -rf "$data"
done
