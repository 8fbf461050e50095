#!/usr/bin/env bash
# Side-by-side speed of batchtrans and transformers + peft on one machine, at
# 2 threads (cores 0-1) and at 16 threads, with any GPU hidden from torch.
# batchtrans runs bf16 (its default) and q8; transformers runs float32.
# Needs bin/batchtrans (make build) and Python with torch, transformers, peft.
# usage: scripts/compare/run.sh WORKDIR [HF_ROWS_16 HF_ROWS_2 BT_ROWS_2]
set -u
W=${1:?workdir}; HF16=${2:-8}; HF2=${3:-3}; BT2=${4:-32}
NEW=16
export CUDA_VISIBLE_DEVICES= PYTHONUNBUFFERED=1
py=scripts/compare/transformers_side.py
mkjob() { # rows [dtype]
  head -n "$1" examples/data/heldout-de.jsonl > "$W/rows-$1.jsonl"
  cat > "$W/job-$1${2:-}.yaml" <<JOB
version: 1
input: {path: rows-$1.jsonl, text_field: en, id_field: id}
output: {path: out-$1${2:-}-\$T.jsonl, keep: [id]}
model: {path: base, adapter: lora, dtype: ${2:-bf16}}
prompt:
  system: "Translate the user's text from {{.Source}} to {{.Target}}. Reply with the translation only."
  source: English
  target: German
  date: "$(echo 25 Nov 2026)"
generation: {max_new_tokens: $NEW, accept_cut: true}  # every row runs to the limit
JOB
}
[ -e "$W/base" ] || timeout 120 python3 $py make "$W"
mkjob 256; mkjob "$BT2"; mkjob 256 q8; mkjob "$BT2" q8
echo "== batchtrans, 16 threads"
timeout 70 bin/batchtrans bench --model "$W/base" --adapter "$W/lora" --threads 16 --decode 32 --json
sed "s/\$T/16/" "$W/job-256.yaml" > "$W/j16.yaml"
timeout 150 bin/batchtrans run "$W/j16.yaml" --no-progress --log-format json 2>&1 | grep -E '"msg":"(summary|progress)"' | tail -2
echo "== batchtrans, 16 threads, 64 rows in flight (--workers 64)"
sed "s/\$T/16w64/" "$W/job-256.yaml" > "$W/j16w64.yaml"
timeout 150 bin/batchtrans run "$W/j16w64.yaml" --workers 64 --no-progress --log-format json 2>&1 | grep -E '"msg":"summary"'
cmp "$W/out-256-16.jsonl" "$W/out-256-16w64.jsonl" && echo "byte-identical output with 16 and 64 rows in flight"
echo "== batchtrans q8, 16 threads"
timeout 70 bin/batchtrans bench --model "$W/base" --adapter "$W/lora" --threads 16 --decode 32 --dtype q8 --json
sed "s/\$T/16w64/" "$W/job-256q8.yaml" > "$W/j16q8.yaml"
timeout 150 bin/batchtrans run "$W/j16q8.yaml" --workers 64 --no-progress --log-format json 2>&1 | grep -E '"msg":"summary"'
echo "== transformers + peft, 16 threads"
timeout 100 python3 $py hf "$W" 16 "$HF16" $NEW
echo "== batchtrans, 2 threads (taskset -c 0,1)"
timeout 90 taskset -c 0,1 bin/batchtrans bench --model "$W/base" --adapter "$W/lora" --threads 2 --decode 32 --json
sed "s/\$T/2/" "$W/job-$BT2.yaml" > "$W/j2.yaml"
timeout 100 taskset -c 0,1 bin/batchtrans run "$W/j2.yaml" --no-progress --log-format json 2>&1 | grep -E '"msg":"(summary|progress)"' | tail -2
echo "== batchtrans q8, 2 threads (taskset -c 0,1)"
timeout 90 taskset -c 0,1 bin/batchtrans bench --model "$W/base" --adapter "$W/lora" --threads 2 --decode 32 --dtype q8 --json
sed "s/\$T/2/" "$W/job-${BT2}q8.yaml" > "$W/j2q8.yaml"
timeout 100 taskset -c 0,1 bin/batchtrans run "$W/j2q8.yaml" --no-progress --log-format json 2>&1 | grep -E '"msg":"summary"'
echo "== transformers + peft, 2 threads (taskset -c 0,1)"
timeout 100 taskset -c 0,1 python3 $py hf "$W" 2 "$HF2" $NEW
