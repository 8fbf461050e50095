#!/usr/bin/env bash
# memtest.sh measures the peak resident memory of whole runs through the real
# binary, to show that memory stays flat as the input grows. It builds the
# binary with -tags fakeengine (the model is replaced by a stand-in that
# reverses the text, so the measurement is of the reader, runner, checkpoint
# and writer rather than of the model) and runs four jobs:
#
#   wide-N   rows carrying a wide field (~10 KB each) that the output keeps;
#            full size ~500 MB of input, and a tenth of that
#   short-N  short rows; full size 5,000,000 rows, and a tenth of that
#
# Usage: scripts/memtest.sh [WORKDIR]   (default /tmp/batchtrans-memtest)
# Environment: WIDE_ROWS (default 50000), SHORT_ROWS (default 5000000),
# SIZES ("small full" by default; "small" runs only the tenth sizes),
# REPEAT (runs of each job, default 1: peak RSS varies from run to run with
# the garbage collector's timing, so a few runs show the spread).
# It prints one line per run: rows, input size, peak RSS, wall time.
set -euo pipefail

cd "$(dirname "$0")/.."
WORK=${1:-/tmp/batchtrans-memtest}
WIDE_ROWS=${WIDE_ROWS:-50000}
SHORT_ROWS=${SHORT_ROWS:-5000000}
SIZES=${SIZES:-small full}
REPEAT=${REPEAT:-1}
TIME=/usr/bin/time
if [[ ! -x $TIME ]]; then
	echo "memtest: $TIME is missing (apt-get install time)" >&2
	exit 1
fi
mkdir -p "$WORK"
BIN=$WORK/batchtrans-fake
CGO_ENABLED=0 go build -tags fakeengine -o "$BIN" ./cmd/batchtrans
MODEL=$(pwd)/examples/models/tiny-translator/base

# gen_wide N FILE: N rows of {"id", "text", "blob"} where blob is ~10 KB.
gen_wide() {
	awk -v n="$1" 'BEGIN {
		pad = "wide carried field "; while (length(pad) < 10000) pad = pad pad
		pad = substr(pad, 1, 10000)
		for (i = 0; i < n; i++)
			printf "{\"id\":\"w%d\",\"text\":\"row %d says hello to the world\",\"blob\":\"%d %s\"}\n", i, i, i, pad
	}' >"$2"
}

# gen_short N FILE: N rows of {"id", "text"} of about 40 bytes.
gen_short() {
	awk -v n="$1" 'BEGIN {
		for (i = 0; i < n; i++) printf "{\"id\":%d,\"text\":\"short row %d\"}\n", i, i
	}' >"$2"
}

# job NAME KEEP: writes the job file for input NAME.jsonl.
job() {
	cat >"$WORK/$1.yaml" <<YAML
version: 1
input:
  path: $1.jsonl
  format: jsonl
  id_field: id
  text_field: text
output:
  path: $1.out.jsonl
  format: jsonl
  keep: [$2]
model:
  path: $MODEL
prompt:
  system: "Translate from {{.Source}} to {{.Target}}."
  source: English
  target: German
  chat_template: model
  date: "25 Nov 2026"
generation:
  max_new_tokens: 16
runtime:
  device: cpu
on_error: record
YAML
}

# measure NAME: runs the job and prints rows, sizes, peak RSS, wall time.
measure() {
	local name=$1 log=$WORK/$1.time
	rm -f "$WORK/$name.out.jsonl" "$WORK/$name.out.jsonl.ckpt"*
	if ! "$TIME" -v "$BIN" run "$WORK/$name.yaml" --restart --no-progress >"$WORK/$name.log" 2>"$log"; then
		echo "memtest: $name failed; see $WORK/$name.log and $log" >&2
		tail -5 "$log" >&2
		exit 1
	fi
	local rows in out rss wall
	rows=$(wc -l <"$WORK/$name.jsonl")
	in=$(du -m "$WORK/$name.jsonl" | cut -f1)
	out=$(wc -l <"$WORK/$name.out.jsonl")
	rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
	wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log")
	if [[ $out -ne $rows ]]; then
		echo "memtest: $name wrote $out rows for $rows input rows" >&2
		exit 1
	fi
	printf '%-12s rows=%-8d input=%5d MB  peak_rss=%7.1f MB  wall=%s\n' \
		"$name" "$rows" "$in" "$(echo "$rss / 1024" | bc -l)" "$wall"
}

for size in $SIZES; do
	case $size in
	small) w=$((WIDE_ROWS / 10)) s=$((SHORT_ROWS / 10)) ;;
	full) w=$WIDE_ROWS s=$SHORT_ROWS ;;
	*) echo "memtest: unknown size $size" >&2; exit 2 ;;
	esac
	gen_wide "$w" "$WORK/wide-$size.jsonl"
	job "wide-$size" "id, blob"
	for _ in $(seq "$REPEAT"); do measure "wide-$size"; done
	gen_short "$s" "$WORK/short-$size.jsonl"
	job "short-$size" "id"
	for _ in $(seq "$REPEAT"); do measure "short-$size"; done
done
