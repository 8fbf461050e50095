#!/usr/bin/env bash
# Side-by-side speed of batchtrans on the GPU and transformers + peft (bf16,
# CUDA, eager and static cache), in one run on one GPU machine, on the
# Llama-3.2-1B shape with an r=16 adapter (random weights). batchtrans:
# bench (512-token prefill, one sequence, BATCH sequences), then a job of
# ROWS real rows (two held-out descriptions a row: prompts of about 96
# tokens), 64 new tokens each. Needs bin/batchtrans and Python with torch,
# transformers and peft.
# usage: scripts/compare/gpu.sh WORKDIR [ROWS] [BATCH] [HF_BATCHES]
# (HF_BATCHES: transformers' batch sizes, default 1,64,256,512)
set -u
W=${1:?workdir}; ROWS=${2:-4096}; BATCH=${3:-512}; HFB=${4:-1,64,256,512}
export PYTHONUNBUFFERED=1
py=scripts/compare/transformers_side.py
[ -e "$W/base" ] || CUDA_VISIBLE_DEVICES= timeout 300 python3 $py make "$W" >/dev/null
python3 - "$W" "$ROWS" <<'PY'
import json, sys
w, n = sys.argv[1], int(sys.argv[2])
rows = [json.loads(l) for l in open("examples/data/heldout-de.jsonl", encoding="utf-8")]
with open(f"{w}/rows.jsonl", "w", encoding="utf-8") as f:
    for i in range(n):
        a, b = rows[i % len(rows)], rows[(7 * i + 3) % len(rows)]
        f.write(json.dumps({"id": f"r{i}", "en": a["en"] + " " + b["en"]}) + "\n")
PY
cat >"$W/job.yaml" <<JOB
version: 1
input: {path: rows.jsonl, text_field: en, id_field: id}
output: {path: out.jsonl, keep: [id]}
model: {path: base, adapter: lora, dtype: bf16}
prompt:
  system: "Translate the user's text from {{.Source}} to {{.Target}}. Reply with the translation only."
  source: English
  target: German
  date: "25 Nov 2026"
generation: {max_new_tokens: 64, accept_cut: true}  # random weights run to the limit
runtime: {device: cuda, workers: $BATCH}
JOB
echo "== batchtrans bench, cuda bf16"
timeout 200 bin/batchtrans bench --model "$W/base" --adapter "$W/lora" --device cuda --batch "$BATCH" --decode 64 --json
echo "== batchtrans run, cuda bf16, $ROWS rows, $BATCH in flight"
timeout 300 bin/batchtrans run "$W/job.yaml" --restart --no-progress --log-format json 2>&1 | grep -E '"msg":"(summary|model loaded)"'
echo "== transformers + peft, cuda bf16"
timeout 420 python3 $py hfgpu "$W" "$HFB"
