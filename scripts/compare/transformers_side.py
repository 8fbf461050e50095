#!/usr/bin/env python3
"""Side-by-side speed reference: Hugging Face transformers + peft on the CPU.

Two modes, run from the repository root where torch, transformers, peft and
tokenizers are installed (no network):

  make OUT_DIR        write a Llama-3.2-1B-shaped model with random weights
                      (real shapes, bf16 safetensors, the real Llama 3
                      tokenizer and the Llama 3.2 chat template) to
                      OUT_DIR/base, and an r=16 LoRA adapter on all seven
                      linear modules (random non-zero lora_B) to OUT_DIR/lora.
  hf DIR THREADS ROWS NEW
                      load DIR/base in float32, merge DIR/lora with peft
                      (merge_and_unload: the fastest transformers + peft CPU
                      setup), and measure with torch.set_num_threads(THREADS):
                      one sequence (prompt + NEW greedy tokens, and the
                      decode-only rate), then ROWS real rows from
                      examples/data/heldout-de.jsonl one prompt at a time, as
                      the Python script batchtrans replaces does. EOS is
                      suppressed (min_new_tokens) so every row makes NEW tokens.
  hfgpu DIR [B,B..]   the GPU reference: DIR/base with DIR/lora merged, in
                      bf16 on CUDA, 96-token prompts (random ids), 64 new
                      tokens with EOS suppressed, at batch 1, 64, 256 and
                      512 (or the batches given), eager and with the static KV cache
                      (cache_implementation="static": transformers then
                      compiles the decode step), generated tokens/s each.
  heldout OUT DEVICE  the bundled translator (examples/models/tiny-translator,
                      base + adapter-de merged) in bf16 on DEVICE (cuda or
                      cpu), greedy, one prompt at a time, over the held-out
                      rows with the demo job's prompt: writes OUT as JSONL
                      {"id", "translation"}, the reference the engine's bf16
                      outputs are counted against.
For make and hf, hide any GPU from torch (CUDA_VISIBLE_DEVICES=) first.
Prints one JSON object per measurement.
"""
import gzip
import json
import os
import shutil
import sys
import time

import torch
import transformers
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

DATE = "25 Nov 2026"
SYSTEM = "Translate the user's text from English to German. Reply with the translation only."
TV5 = int(transformers.__version__.split(".")[0]) >= 5


def make(out):
    import peft
    base, lora = os.path.join(out, "base"), os.path.join(out, "lora")
    rope = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}
    kw = dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
              num_attention_heads=32, num_key_value_heads=8, head_dim=64, max_position_embeddings=131072,
              rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=128000,
              eos_token_id=[128001, 128008, 128009], hidden_act="silu", initializer_range=0.02)
    if TV5:
        kw["rope_parameters"] = dict(rope, rope_theta=500000.0)
    else:
        kw["rope_theta"] = 500000.0
        kw["rope_scaling"] = rope
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    model = LlamaForCausalLM(LlamaConfig(**kw))
    torch.set_default_dtype(torch.float32)
    model.save_pretrained(base)
    with gzip.open("engine/tokenizer/testdata/llama3/tokenizer.json.gz", "rb") as f, \
            open(os.path.join(base, "tokenizer.json"), "wb") as g:
        shutil.copyfileobj(f, g)
    with open("examples/train/llama32_chat_template.jinja", encoding="utf-8") as f:
        template = f.read()
    cfg = json.load(open("engine/tokenizer/testdata/llama3/tokenizer_config.json", encoding="utf-8"))
    cfg["chat_template"] = template
    cfg["eos_token"] = "<|eot_id|>"
    json.dump(cfg, open(os.path.join(base, "tokenizer_config.json"), "w", encoding="utf-8"))
    pm = peft.get_peft_model(model, peft.LoraConfig(
        r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                             "down_proj"]))
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.01)
    pm.save_pretrained(lora)
    print(json.dumps({"made": out, "files": sorted(os.listdir(base)) + sorted(os.listdir(lora))}), flush=True)


def hf(d, threads, rows, new):
    import peft
    torch.set_num_threads(threads)
    t0 = time.time()
    kw = {"dtype" if TV5 else "torch_dtype": torch.float32}
    model = LlamaForCausalLM.from_pretrained(os.path.join(d, "base"), **kw)
    model = peft.PeftModel.from_pretrained(model, os.path.join(d, "lora")).merge_and_unload()
    model.eval()
    tok = AutoTokenizer.from_pretrained(os.path.join(d, "base"))
    load_s = time.time() - t0
    texts = [json.loads(l)["en"] for l in open("examples/data/heldout-de.jsonl", encoding="utf-8")]

    def ids_of(text):
        s = tok.apply_chat_template([{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
                                    tokenize=False, add_generation_prompt=True, date_string=DATE)
        return torch.tensor([tok(s, add_special_tokens=False)["input_ids"]])

    def gen(ids, n):
        t = time.time()
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                                 min_new_tokens=n, do_sample=False, pad_token_id=128001)
        return time.time() - t, out.shape[1] - ids.shape[1]

    ids = ids_of(texts[0])
    gen(ids, 2)  # warm-up
    t1, _ = gen(ids, 1)
    tn, n = gen(ids, new)
    print(json.dumps({"side": "transformers+peft f32", "threads": threads, "load_s": round(load_s, 2),
                      "prompt_tokens": int(ids.shape[1]), "new_tokens": n,
                      "one_seq_tok_s": round(n / tn, 3), "decode_tok_s": round((n - 1) / (tn - t1), 3)}), flush=True)
    t = time.time()
    made = ptoks = 0
    for text in texts[:rows]:
        ids = ids_of(text)
        _, k = gen(ids, new)
        made += k
        ptoks += int(ids.shape[1])
    wall = time.time() - t
    print(json.dumps({"side": "transformers+peft f32", "threads": threads, "job_rows": rows,
                      "prompt_tokens": ptoks, "completion_tokens": made, "wall_s": round(wall, 2),
                      "job_tok_s": round(made / wall, 3)}), flush=True)


def hfgpu(d, batches=(1, 64, 256, 512), new=64, prompt=96):
    import peft
    t0 = time.time()
    kw = {"dtype" if TV5 else "torch_dtype": torch.bfloat16}
    model = LlamaForCausalLM.from_pretrained(os.path.join(d, "base"), **kw).to("cuda")
    model = peft.PeftModel.from_pretrained(model, os.path.join(d, "lora")).merge_and_unload()
    model.eval()
    torch.cuda.synchronize()
    load_s = time.time() - t0
    g = torch.Generator().manual_seed(0)
    for cache in ("eager", "static"):
        for b in batches:
            ids = torch.randint(0, 128000, (b, prompt), generator=g).to("cuda")
            extra = {"cache_implementation": "static"} if cache == "static" else {}

            def gen():
                with torch.inference_mode():
                    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                                         min_new_tokens=new, do_sample=False, pad_token_id=128001, **extra)
                torch.cuda.synchronize()
                return out

            t = time.time()
            gen()  # warm-up (and, static, compilation)
            warm = time.time() - t
            if cache == "static":
                gen()
            t = time.time()
            out = gen()
            wall = time.time() - t
            made = (out.shape[1] - prompt) * b
            print(json.dumps({"side": "transformers+peft bf16 cuda", "cache": cache, "batch": b, "load_s": round(load_s, 2),
                              "warmup_s": round(warm, 1), "new_tokens": made, "wall_s": round(wall, 3),
                              "tok_s": round(made / wall, 1)}), flush=True)


def heldout(out_path, device):
    import peft
    d = "examples/models/tiny-translator"
    kw = {"dtype" if TV5 else "torch_dtype": torch.bfloat16}
    model = LlamaForCausalLM.from_pretrained(os.path.join(d, "base"), **kw).to(device)
    model = peft.PeftModel.from_pretrained(model, os.path.join(d, "adapter-de")).merge_and_unload()
    model.eval()
    tok = AutoTokenizer.from_pretrained(os.path.join(d, "base"))
    eos = model.generation_config.eos_token_id
    with open(out_path, "w", encoding="utf-8") as out:
        for line in open("examples/data/heldout-de.jsonl", encoding="utf-8"):
            row = json.loads(line)
            s = tok.apply_chat_template([{"role": "system", "content": SYSTEM}, {"role": "user", "content": row["en"]}],
                                        tokenize=False, add_generation_prompt=True, date_string=DATE)
            ids = torch.tensor([tok(s, add_special_tokens=False)["input_ids"]]).to(device)
            with torch.inference_mode():
                gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=96,
                                     do_sample=False, eos_token_id=eos, pad_token_id=eos if isinstance(eos, int) else eos[0])
            text = tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True)
            out.write(json.dumps({"id": row["id"], "translation": text}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    print(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__,
                      "cuda_visible": torch.cuda.is_available()}), flush=True)
    if sys.argv[1] == "make":
        make(sys.argv[2])
    elif sys.argv[1] == "hfgpu":
        hfgpu(sys.argv[2], *([tuple(int(b) for b in sys.argv[3].split(","))] if len(sys.argv) > 3 else []))
    elif sys.argv[1] == "heldout":
        heldout(sys.argv[2], sys.argv[3])
    else:
        hf(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
