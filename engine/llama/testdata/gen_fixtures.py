#!/usr/bin/env python3
"""Reference fixtures for engine/llama: tiny random Llama models, PEFT LoRA
adapters and the greedy generations of the merged models in transformers.

Run from the repository root, offline:

    python3 engine/llama/testdata/gen_fixtures.py

or, to add only the bfloat16 references of the models and adapters already
here (nothing else is rewritten):

    python3 engine/llama/testdata/gen_fixtures.py --bf16

It writes, under engine/llama/testdata/:

    tokenizer/                 byte-level BPE tokenizer (Llama 3 layout, 512 ids)
    models/tiny-a/             tied, GQA 4:1, explicit head_dim, 3 shards,
                               transformers 5 config dialect, llama3 RoPE
    models/tiny-b/             untied, GQA 2:1, derived head_dim, 1 shard,
                               config rewritten into the transformers 4 dialect,
                               default RoPE, no generation_config.json
    adapters/a-plain/          LoRA r=8 alpha=16 on q/v, saved in float32
    adapters/b-rslora/         rsLoRA r=16 on all 7 linear modules, rank_pattern
                               and alpha_pattern, lm_head in modules_to_save,
                               saved in bfloat16
    ref/<model>[+<adapter>].json.gz
                               prompts, greedy ids, top-2 margins, first-step
                               logits and merged-weight checksums
    ref/<model>[+<adapter>].bf16.json.gz
                               the same prompts through the merged model cast
                               to bfloat16 (weights and activations), on the CPU

Everything is seeded; the outputs do not depend on the machine beyond
float32 rounding in torch's CPU kernels.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import gzip
import hashlib
import json
import shutil
import sys

import numpy as np
import torch

import peft
import safetensors
import tokenizers
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
TOKDIR = os.path.join(HERE, "tokenizer")
MODELS = os.path.join(HERE, "models")
ADAPTERS = os.path.join(HERE, "adapters")
REF = os.path.join(HERE, "ref")

DATE = "25 Nov 2026"
NEW_TOKENS = 24
VOCAB = 512  # model vocabulary (the tokenizer uses the first 505 ids)
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
TV5 = int(transformers.__version__.split(".")[0]) >= 5


def log(*a):
    print(*a, flush=True)


def fresh(path):
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)


# ---------------------------------------------------------------- tokenizer


def build_tokenizer():
    with open(os.path.join(HERE, "corpus.txt"), encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f if l.strip()]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB - 12,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(lines, trainer=trainer)
    # Special tokens after the learned vocabulary, as in Llama 3.
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    bos = tok.token_to_id(SPECIALS[0])
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{SPECIALS[0]}:0 $A:0",
                pair=f"{SPECIALS[0]}:0 $A:0 {SPECIALS[0]}:1 $B:1",
                special_tokens=[(SPECIALS[0], bos)],
            ),
        ]
    )
    # Llama 3's tokenizer.json sets ignore_merges; set it in the serialized
    # form so it holds whatever the trainer does with model options.
    d = json.loads(tok.to_str())
    d["model"]["ignore_merges"] = True
    tok = Tokenizer.from_str(json.dumps(d, ensure_ascii=False))
    ids = {s: tok.token_to_id(s) for s in SPECIALS}
    assert max(ids.values()) < VOCAB, ids
    log("tokenizer: vocab", tok.get_vocab_size(), "specials", ids)

    fresh(TOKDIR)
    tok.save(os.path.join(TOKDIR, "tokenizer.json"))
    with open(os.path.join(HERE, "llama32_chat_template.jinja"), encoding="utf-8") as f:
        template = f.read()
    added = {}
    for s in SPECIALS:
        added[str(ids[s])] = {
            "content": s,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
    tcfg = {
        "added_tokens_decoder": added,
        "bos_token": SPECIALS[0],
        "chat_template": template,
        "clean_up_tokenization_spaces": True,
        "eos_token": "<|eot_id|>",
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    with open(os.path.join(TOKDIR, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tcfg, f, indent=2, ensure_ascii=False)
        f.write("\n")
    return ids


def copy_tokenizer(dst):
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOKDIR, name), os.path.join(dst, name))


# ---------------------------------------------------------------- models


def llama_config(spec, ids):
    kw = dict(
        vocab_size=VOCAB,
        hidden_size=spec["hidden"],
        intermediate_size=spec["intermediate"],
        num_hidden_layers=spec["layers"],
        num_attention_heads=spec["heads"],
        num_key_value_heads=spec["kv_heads"],
        max_position_embeddings=spec["max_pos"],
        rms_norm_eps=spec["eps"],
        tie_word_embeddings=spec["tied"],
        initializer_range=0.2,
        bos_token_id=ids["<|begin_of_text|>"],
        eos_token_id=spec["config_eos"],
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
    )
    if spec.get("head_dim"):
        kw["head_dim"] = spec["head_dim"]
    rope = {"rope_type": "default", "rope_theta": spec["theta"]}
    if spec.get("llama3"):
        rope = {
            "rope_type": "llama3",
            "rope_theta": spec["theta"],
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        }
    if TV5:
        kw["rope_parameters"] = rope
    else:
        kw["rope_theta"] = spec["theta"]
        if spec.get("llama3"):
            r = dict(rope)
            del r["rope_theta"]
            kw["rope_scaling"] = r
    return LlamaConfig(**kw)


def build_model(name, spec, ids):
    torch.manual_seed(spec["seed"])
    cfg = llama_config(spec, ids)
    model = LlamaForCausalLM(cfg).to(torch.float32)
    with torch.no_grad():
        g = torch.Generator().manual_seed(spec["seed"] + 1)
        for pname, p in model.named_parameters():
            if "norm" in pname:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
        if spec["tied"]:
            assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "tie lost"
    out = os.path.join(MODELS, name)
    fresh(out)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|begin_of_text|>"],
        eos_token_id=spec["gen_eos"],
        do_sample=False,
    )
    model.to(torch.bfloat16).save_pretrained(out, max_shard_size=spec["max_shard"])
    copy_tokenizer(out)

    cpath = os.path.join(out, "config.json")
    with open(cpath) as f:
        c = json.load(f)
    log(name, "config as saved:", json.dumps({k: c.get(k) for k in ("rope_parameters", "rope_theta", "rope_scaling", "dtype", "torch_dtype", "head_dim")}))
    if spec["dialect"] == "v4":
        rp = c.pop("rope_parameters", None)
        if rp is not None:
            rp = dict(rp)
            c["rope_theta"] = rp.pop("rope_theta")
            c["rope_scaling"] = None if rp.get("rope_type", "default") == "default" else rp
        if "dtype" in c:
            c["torch_dtype"] = c.pop("dtype")
        if c.get("head_dim") == c["hidden_size"] // c["num_attention_heads"]:
            del c["head_dim"]  # older configs leave it to be derived
        with open(cpath, "w") as f:
            json.dump(c, f, indent=2, sort_keys=True)
            f.write("\n")
    elif "rope_parameters" not in c:
        log("WARNING:", name, "config.json has no rope_parameters: this transformers writes the 4.x dialect")
    if not spec["gen_config"]:
        os.remove(os.path.join(out, "generation_config.json"))
    files = sorted(os.listdir(out))
    log(name, "files:", files)
    return out


def load_base(path):
    kw = {"dtype": torch.float32} if TV5 else {"torch_dtype": torch.float32}
    m = LlamaForCausalLM.from_pretrained(path, attn_implementation="eager", **kw)
    m.eval()
    return m


# ---------------------------------------------------------------- adapters


def build_adapter(name, base_dir, spec):
    base = load_base(base_dir)
    torch.manual_seed(spec["seed"])
    lcfg = LoraConfig(
        r=spec["r"],
        lora_alpha=spec["alpha"],
        target_modules=spec["targets"],
        lora_dropout=0.0,
        bias="none",
        use_rslora=spec.get("rslora", False),
        rank_pattern=spec.get("rank_pattern", {}),
        alpha_pattern=spec.get("alpha_pattern", {}),
        modules_to_save=spec.get("modules_to_save"),
        task_type="CAUSAL_LM",
    )
    pm = get_peft_model(base, lcfg)
    g = torch.Generator().manual_seed(spec["seed"] + 7)
    with torch.no_grad():
        # Random non-zero A and B sized so that every delta scale*(B@A) has
        # entries of std ~0.08 next to base weights of std 0.2, whatever the
        # module's rank and scale.
        for mname, mod in pm.named_modules():
            if not (hasattr(mod, "lora_A") and hasattr(mod, "scaling") and "default" in getattr(mod, "lora_A", {})):
                continue
            A, B = mod.lora_A["default"].weight, mod.lora_B["default"].weight
            r, fan_in = A.shape[0], A.shape[1]
            scale = float(mod.scaling["default"])
            A.copy_(torch.randn(A.shape, generator=g) / fan_in**0.5)
            B.copy_(torch.randn(B.shape, generator=g) * 0.08 * fan_in**0.5 / (scale * r**0.5))
        for pname, p in pm.named_parameters():
            if "modules_to_save" in pname:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
            if spec["dtype"] == "bf16" and ("lora_" in pname or "modules_to_save" in pname):
                # Values the bf16 file holds exactly, so the saved adapter is the merged one.
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
    out = os.path.join(ADAPTERS, name)
    fresh(out)
    pm.save_pretrained(out)
    wpath = os.path.join(out, "adapter_model.safetensors")
    sd = load_file(wpath)
    if spec["dtype"] == "bf16":
        sd = {k: v.to(torch.bfloat16).contiguous() for k, v in sd.items()}
        save_file(sd, wpath, metadata={"format": "pt"})
    with open(os.path.join(out, "adapter_config.json")) as f:
        acfg = json.load(f)
    # A relative path the Go loader can check; the script never reads it back.
    acfg["base_model_name_or_path"] = "../../models/" + os.path.basename(base_dir)
    with open(os.path.join(out, "adapter_config.json"), "w") as f:
        json.dump(acfg, f, indent=2, sort_keys=True)
        f.write("\n")
    log(name, "adapter keys:", len(sd), sorted(sd)[:4], "...")
    log(name, "adapter_config:", json.dumps({k: acfg.get(k) for k in ("r", "lora_alpha", "use_rslora", "target_modules", "rank_pattern", "alpha_pattern", "modules_to_save", "fan_in_fan_out", "use_dora")}))
    return out


# ---------------------------------------------------------------- references

SYSTEM_DE = "Translate the user's text from English to German. Reply with the translation only."
SYSTEM_FR = "Translate the user's text from English to French. Reply with the translation only."
USER_TEXTS = [
    "Real-time strategy game of ancient warfare",
    "This library provides notes manipulation helpers.",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Game data for Alien Blaster",
    "command-line tool to convert images between formats",
    "It supports 3 modes: fast, safe and   careful.",
    "Don't panic; it's only a test.",
    "Line one\nLine two\n\nLine four",
    "Über 100 Pakete enthalten Übersetzungen.",
    "Price: 12.50 EUR (incl. VAT)",
    "A small, fast and portable HTTP server written in C",
    "Documentation for the Python 3 standard library",
    "fonts with support for many scripts: 日本語, Ελληνικά, русский",
    "Emoji are bytes too 🙂👍",
    "<|eot_id|> is just text here",
    "tabs\tand\ttrailing spaces   ",
    "transitional dummy package",
    "GNU Compiler Collection (C++ front end)",
    "This package contains the development headers.",
    "Shared library for reading and writing PNG files",
    "x",
    "1234567890",
    "Ein kurzer deutscher Satz zum Schluss.",
]


def prompts():
    out = []
    for i, u in enumerate(USER_TEXTS):
        sysmsg = SYSTEM_FR if i % 7 == 6 else SYSTEM_DE
        out.append([{"role": "system", "content": sysmsg}, {"role": "user", "content": u}])
    return out


def checksums(model):
    """Sums and samples of every tensor of the merged float32 model."""
    out = {}
    rng = np.random.default_rng(1234)
    sd = model.state_dict()
    for k in sorted(sd):
        t = sd[k].detach().to(torch.float32).contiguous()
        a = t.numpy().astype(np.float64)
        entry = {"shape": list(t.shape), "sum": float(a.sum()), "abs_sum": float(np.abs(a).sum())}
        if t.dim() == 2:
            rows = rng.integers(0, t.shape[0], size=8)
            cols = rng.integers(0, t.shape[1], size=8)
            entry["samples"] = [[int(r), int(c), float(t[r, c].item())] for r, c in zip(rows, cols)]
            entry["row0"] = [float(x) for x in t[0, :8].tolist()]
        else:
            entry["samples"] = [[int(i), float(t[i].item())] for i in rng.integers(0, t.shape[0], size=8)]
        out[k] = entry
    return out


@torch.no_grad()
def greedy(model, ids, steps):
    """Greedy decoding by full recompute (no cache), EOS ignored."""
    seq = list(ids)
    out, margins, first = [], [], None
    for s in range(steps):
        logits = model(input_ids=torch.tensor([seq])).logits[0, -1].to(torch.float32)
        if s == 0:
            first = logits.clone()
        top = torch.topk(logits, 2)
        nxt = int(top.indices[0])
        margins.append(float(top.values[0] - top.values[1]))
        out.append(nxt)
        seq.append(nxt)
    return out, margins, first


def merged(model_dir, adapter_dir):
    """The base model with the adapter (if any) merged, in float32."""
    model = load_base(model_dir)
    if adapter_dir:
        model = PeftModel.from_pretrained(model, adapter_dir)
        model = model.merge_and_unload()
    model.eval()
    return model


def run_prompts(model, tok):
    """The greedy generations of every prompt, and the first-step logits of
    the first three."""
    cases, logits = [], []
    for i, msgs in enumerate(prompts()):
        text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, date_string=DATE)
        pids = tok(text, add_special_tokens=False)["input_ids"]
        out, margins, first = greedy(model, pids, NEW_TOKENS)
        cases.append(
            {"messages": msgs, "prompt_text": text, "prompt_ids": pids, "output_ids": out, "margins": margins}
        )
        if i < 3:
            logits.append({"case": i, "logits": [float(x) for x in first.tolist()]})
    return cases, logits


def reference(tag, model_dir, adapter_dir, tok, ids):
    model = merged(model_dir, adapter_dir)
    model.to(torch.float32)
    eos = sorted({ids["<|eot_id|>"], ids["<|end_of_text|>"]})
    cases, logits = run_prompts(model, tok)
    for c in cases:
        c["first_eos_step"] = next((j for j, t in enumerate(c["output_ids"]) if t in eos), None)
    doc = {
        "model": os.path.relpath(model_dir, HERE),
        "adapter": os.path.relpath(adapter_dir, HERE) if adapter_dir else None,
        "date": DATE,
        "new_tokens": NEW_TOKENS,
        "eos_ignored": True,
        "eos_ids": eos,
        "dtype": "float32",
        "decoding": "greedy argmax over full recompute (no KV cache), EOS ignored",
        "versions": versions(),
        "cases": cases,
        "first_step_logits": logits,
        "merged_weights": checksums(model),
    }
    os.makedirs(REF, exist_ok=True)
    path = os.path.join(REF, tag + ".json.gz")
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write(json.dumps(doc, ensure_ascii=False, sort_keys=True).encode("utf-8"))
    small = sum(1 for c in cases for m in c["margins"] if m < 1e-3)
    log(tag, "->", os.path.relpath(path, HERE), "cases", len(cases), "steps with margin<1e-3:", small)


def reference_bf16(tag, model_dir, adapter_dir, tok):
    """Greedy generations of the merged model in bfloat16: merged in float32
    (as batchtrans merges), then weights and activations cast to bfloat16, on
    the CPU with one thread."""
    model = merged(model_dir, adapter_dir)
    model.to(device="cpu", dtype=torch.bfloat16)
    cases, logits = run_prompts(model, tok)
    doc = {
        "model": os.path.relpath(model_dir, HERE),
        "adapter": os.path.relpath(adapter_dir, HERE) if adapter_dir else None,
        "date": DATE,
        "new_tokens": NEW_TOKENS,
        "dtype": "bfloat16",
        "device": "cpu",
        "decoding": "greedy argmax over full recompute (no KV cache), EOS ignored; "
        "adapter merged in float32, then the model cast to bfloat16",
        "versions": versions(),
        "cases": cases,
        "first_step_logits": logits,
    }
    path = os.path.join(REF, tag + ".bf16.json.gz")
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write(json.dumps(doc, ensure_ascii=False, sort_keys=True).encode("utf-8"))
    log(tag, "->", os.path.relpath(path, HERE), "cases", len(cases))


def main_bf16():
    """Adds ref/*.bf16.json.gz for the models and adapters already written."""
    log("versions:", json.dumps(versions()))
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    tok = AutoTokenizer.from_pretrained(TOKDIR)
    for tag in ("tiny-a", "tiny-a+a-plain", "tiny-b", "tiny-b+b-rslora"):
        model, _, adapter = tag.partition("+")
        reference_bf16(
            tag,
            os.path.join(MODELS, model),
            os.path.join(ADAPTERS, adapter) if adapter else None,
            tok,
        )


def versions():
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "peft": peft.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
    }


def main():
    log("versions:", json.dumps(versions()))
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    ids = build_tokenizer()
    eot, eot_text = ids["<|eot_id|>"], ids["<|end_of_text|>"]

    specs = {
        "tiny-a": dict(
            seed=11, hidden=128, intermediate=256, layers=2, heads=8, kv_heads=2, head_dim=32,
            max_pos=131072, eps=1e-5, theta=500000.0, llama3=True, tied=True,
            max_shard="400KB", dialect="v5", gen_config=True,
            config_eos=eot_text, gen_eos=[eot_text, eot],
        ),
        "tiny-b": dict(
            seed=22, hidden=64, intermediate=192, layers=3, heads=4, kv_heads=2, head_dim=None,
            max_pos=2048, eps=1e-6, theta=10000.0, llama3=False, tied=False,
            max_shard="50MB", dialect="v4", gen_config=False,
            config_eos=eot, gen_eos=eot,
        ),
    }
    fresh(MODELS)
    dirs = {n: build_model(n, s, ids) for n, s in specs.items()}

    fresh(ADAPTERS)
    adapters = {
        "a-plain": (
            "tiny-a",
            dict(seed=33, r=8, alpha=16, targets=["q_proj", "v_proj"], dtype="f32"),
        ),
        "b-rslora": (
            "tiny-b",
            dict(
                seed=44, r=16, alpha=32, rslora=True,
                targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                rank_pattern={"layers.1.mlp.down_proj": 4},
                alpha_pattern={"layers.0.self_attn.o_proj": 8},
                modules_to_save=["lm_head"],
                dtype="bf16",
            ),
        ),
    }
    adirs = {n: build_adapter(n, dirs[m], s) for n, (m, s) in adapters.items()}

    tok = AutoTokenizer.from_pretrained(TOKDIR)
    if os.path.exists(REF):
        shutil.rmtree(REF)
    reference("tiny-a", dirs["tiny-a"], None, tok, ids)
    reference("tiny-a+a-plain", dirs["tiny-a"], adirs["a-plain"], tok, ids)
    reference("tiny-b", dirs["tiny-b"], None, tok, ids)
    reference("tiny-b+b-rslora", dirs["tiny-b"], adirs["b-rslora"], tok, ids)
    main_bf16()

    total = 0
    for root, _, files in os.walk(HERE):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    log("testdata total bytes:", total)
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(REF)):
        for f in sorted(files):
            h.update(open(os.path.join(root, f), "rb").read())
    log("ref sha256:", h.hexdigest())


if __name__ == "__main__":
    if sys.argv[1:] == ["--bf16"]:
        main_bf16()
    else:
        main()
