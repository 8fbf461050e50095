#!/usr/bin/env bash
# GPU end-to-end checks of a built binary, on a machine with an NVIDIA GPU:
# the demo job on the GPU, killed (SIGKILL) at random moments and resumed
# each time with another worker count, must write byte-identical output to
# an uninterrupted run; a resume on the CPU must be refused (other
# numerics). Run from the repository root: scripts/gpu/e2e.sh [BINARY]
set -euo pipefail
BT=${1:-bin/batchtrans}
DEV=${DEVICE:-cuda} # DEVICE=cpu checks the script itself on a machine without a GPU
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkjob() { # name workers
  sed -e "s#path: data/#path: $PWD/examples/data/#" -e "s#path: models/#path: $PWD/examples/models/#" \
      -e "s#adapter: models/#adapter: $PWD/examples/models/#" \
      -e "s#path: out/heldout-de.jsonl#path: $W/$1.jsonl#" -e "s#workers: 0#workers: $2#" \
      examples/translate-de.yaml >"$W/$1.yaml"
}
mkjob whole 0
"$BT" run "$W/whole.yaml" --device $DEV --no-progress 2>"$W/whole.log" || { cat "$W/whole.log"; exit 1; }
grep -o '"msg":"summary".*\|msg=summary.*' "$W/whole.log" | head -1 || true
mkjob killed 0
kills=0
for i in 1 2 3 4 5 6; do
  w=$(( (i % 3 == 0) ? 7 : (i % 3 == 1 ? 64 : 300) ))
  "$BT" run "$W/killed.yaml" --device $DEV --workers $w --no-progress 2>>"$W/killed.log" &
  pid=$!
  sleep "0.$(( RANDOM % 9 + 1 ))$(( RANDOM % 10 ))"
  if kill -9 $pid 2>/dev/null; then kills=$((kills + 1)); fi
  wait $pid 2>/dev/null || true
done
if [ "$DEV" = cuda ]; then
  "$BT" run "$W/killed.yaml" --device cpu --no-progress 2>"$W/cpu.log" && { echo "FAIL: a CPU resume of a GPU checkpoint was not refused"; exit 1; }
  grep -q "numerics" "$W/cpu.log" || { echo "FAIL: the CPU resume's refusal does not name the numerics"; cat "$W/cpu.log"; exit 1; }
fi
"$BT" run "$W/killed.yaml" --device $DEV --workers 16 --no-progress 2>>"$W/killed.log" || { tail -5 "$W/killed.log"; exit 1; }
cmp "$W/whole.jsonl" "$W/killed.jsonl"
echo "PASS ($DEV): $kills kills at random moments, resumed with 7, 64, 300 and 16 rows in flight: byte-identical output"
[ "$DEV" = cuda ] && echo "PASS: resuming the GPU checkpoint on the CPU was refused, naming the numerics"
exit 0
