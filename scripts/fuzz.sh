#!/usr/bin/env bash
# Runs every fuzz target for a bounded time each, stopping at the first failure.
# Usage: scripts/fuzz.sh [time per target] [target regexp]   (defaults: 10s, all)
#   scripts/fuzz.sh 5s                  # what CI runs
#   scripts/fuzz.sh 10m '^FuzzClientIP$'  # one target for longer
# A failing input is written to the package's testdata/fuzz/<FuzzName>/, where `go test`
# then runs it as a regression test; the go command prints its path. FUZZ_PARALLEL sets
# the workers per target (default 1, to leave the other cores alone), FUZZ_MINIMIZE_TIME
# how long a new input is minimized (default 1s).
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-10s}
filter=${2:-}

# package, target: every fuzz target in the module.
targets=(
  "./server FuzzEventSubmit"
  "./server FuzzEventsQuery"
  "./server FuzzClientIP"
  "./activities FuzzUpstreamAnswer"
  "./activities FuzzIncidentsAnswer"
  "./activities FuzzC42Answer"
  "./activities FuzzGeoAnswer"
  "./activities FuzzKFAnswer"
  "./internal/incidents FuzzBuild"
  "./internal/incidents FuzzBuildAgreesWithEncodingJSON"
)

# A target added without being listed here would never be fuzzed: refuse to go on.
listed=$(printf '%s\n' "${targets[@]}" | awk '{print $2}' | sort)
found=$(grep -rhoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' . | sed 's/^func //' | sort)
if [ "$listed" != "$found" ]; then
  echo "fuzz.sh: the target list is out of date; fuzz targets in the code vs listed here:"
  diff <(echo "$found") <(echo "$listed") || true
  exit 1
fi

start=$(date +%s)
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  [[ -n "$filter" && ! "$name" =~ $filter ]] && continue
  echo "== $pkg $name ($fuzztime)"
  # A short minimization keeps the time on new inputs; a crasher is still written.
  fuzz() {
    go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "${FUZZ_MINIMIZE_TIME:-1s}" \
      -parallel "${FUZZ_PARALLEL:-1}" "$pkg" 2>&1 | tee "$log"
    return "${PIPESTATUS[0]}"
  }
  log=$(mktemp)
  corpus="${pkg#./}/testdata/fuzz/$name"
  inputs() { { ls "$corpus" 2>/dev/null || true; } | wc -l; } # the directory may not exist yet
  before=$(inputs)
  ok=true
  fuzz || ok=false
  # The fuzzing engine itself sometimes ends a run with only "context deadline exceeded"
  # when the time runs out mid-input (seen in CI). With no new input written, that is not a
  # finding: run the target once more.
  if ! $ok && grep -q '^    context deadline exceeded$' "$log" && [ "$(inputs)" = "$before" ]; then
    echo "fuzz.sh: $name ended on the fuzzing engine's deadline with no failing input; running it again"
    ok=true
    fuzz || ok=false
  fi
  rm -f "$log"
  if ! $ok; then
    echo "fuzz.sh: $name failed; the failing input is in ${pkg#./}/testdata/fuzz/$name/ (see the go test output above)."
    echo "Reproduce with: go test -run '^${name}\$' $pkg"
    exit 1
  fi
done
echo "fuzz.sh: every target passed ($(( $(date +%s) - start )) s)"
