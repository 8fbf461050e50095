#!/usr/bin/env bash
# fuzz.sh runs every Go fuzz target of the module (each func FuzzXxx in a
# _test.go file) for FUZZTIME, one after the other, and prints a summary:
# target, how long it ran, and whether it ran clean. A failing input is kept
# by the Go tool under the package's testdata/fuzz/FuzzXxx/ folder, where it
# becomes a regression seed for `go test`.
#
# Usage: scripts/fuzz.sh [PATTERN]
#   PATTERN      run only targets whose "package FuzzName" matches (grep -E)
# Environment:
#   FUZZTIME     per target, a duration (30s) or a count of runs (100000x);
#                default 30s
#   FUZZPARALLEL fuzzing workers per target (default: the Go tool's, GOMAXPROCS)
#   FUZZMINIMIZETIME  time spent shrinking each new interesting input
#                (default 5s; the Go tool's 60s can eat a whole short run on
#                targets whose runs are slow, such as the Parquet reader)
set -uo pipefail

cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-30s}
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-5s}
PATTERN=${1:-}
GO=${GO:-go}
par=()
if [[ -n ${FUZZPARALLEL:-} ]]; then
	par=(-parallel "$FUZZPARALLEL")
fi

# Every fuzz target as "dir name", from the sources the Go tool would build.
mapfile -t targets < <(git ls-files -co --exclude-standard '*_test.go' |
	xargs grep -H -E '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' |
	sed -E 's|^(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*$|\1 \2|' | sort -u)
if [[ ${#targets[@]} -eq 0 ]]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi

failed=0
summary=()
for t in "${targets[@]}"; do
	read -r dir name <<<"$t"
	if [[ -n $PATTERN ]] && ! grep -qE -- "$PATTERN" <<<"$dir $name"; then
		continue
	fi
	echo "=== fuzz ./$dir $name for $FUZZTIME"
	log=$(mktemp)
	start=$(date +%s)
	# -run '^$' skips the package's ordinary tests; the target's seeds still run first.
	CGO_ENABLED=0 "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZETIME" "${par[@]}" "./$dir" >"$log" 2>&1
	rc=$?
	secs=$(($(date +%s) - start))
	tail -n 3 "$log" | sed 's/^/    /'
	execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
	if [[ $rc -eq 0 ]]; then
		summary+=("$(printf '%-28s %-20s clean  %4ds  %s execs' "$dir" "$name" "$secs" "${execs:-?}")")
	else
		failed=1
		summary+=("$(printf '%-28s %-20s FAIL   %4ds  %s execs (see below)' "$dir" "$name" "$secs" "${execs:-?}")")
		echo "--- $name failed:"
		grep -v '^fuzz: elapsed' "$log" | tail -n 40
	fi
	rm -f "$log"
done

echo
echo "fuzz summary (FUZZTIME=$FUZZTIME):"
printf '%s\n' "${summary[@]}"
exit $failed
