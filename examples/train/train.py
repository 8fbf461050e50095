#!/usr/bin/env python3
"""Train the tiny translator bundled with batchtrans's examples.

From the repository root:

    python3 examples/train/train.py --data .devdata/ddtp-pairs.jsonl.gz \
        --out examples/models/tiny-translator --heldout examples/data/heldout-de.jsonl

Steps, in order:

1. Read the Debian description pairs (DDTP) and set a held-out slice aside by
   a hash of each record's md5, before anything is trained. The held-out
   English->German short descriptions are written to --heldout (the demo's
   input and reference). No held-out record, and no training pair whose text
   equals a held-out text, is used for training.
2. Train a byte-level BPE tokenizer (Llama 3 pre-tokenizer split, ByteLevel
   decoder, Llama 3 special tokens at the end of the vocabulary) and write
   tokenizer.json plus a Llama-3.2-style tokenizer_config.json with its chat
   template.
3. Train a small LlamaForCausalLM from scratch on chat-formatted translation
   pairs: English->French and English->Italian, plus French, Italian and
   German -> English so that the German vocabulary has trained embeddings.
   Loss on the answer tokens only; every answer ends with <|eot_id|>.
   Saved in bf16 to OUT/base.
4. Train a PEFT LoRA adapter for English->German on the frozen base; saved to
   OUT/adapter-de.
5. Evaluate greedy output of the merged model (float32) on the held-out
   English->German rows: chrF (sacreBLEU's definition) against the human
   translation, chrF of copying the English source, and the share of outputs
   that end at EOS. Write OUT/metrics.json and the parity fixture
   OUT/testdata/parity.json.gz (prompts, prompt ids, greedy output ids and
   top-2 logit margins from transformers + peft, float32, on the CPU).

Training length is set by a time budget per phase (--base-seconds,
--adapter-seconds): the step count is fixed once, early in warm-up, from the
measured step time (which overestimates it, as the first steps are the slowest),
printed, and kept in metrics.json. Pass --base-steps / --adapter-steps to fix
it instead. Seeds are fixed; GPU kernels may still differ in the last bits between
machines, so a rerun gives a close but not bit-identical model.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
# Batches vary in shape; expandable segments keep the CUDA allocator from churning.
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")

import argparse
import gzip
import hashlib
import io
import json
import math
import random
import re
import shutil
import sys
import time
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F

import tokenizers
import transformers
import peft
import safetensors
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM
from peft import LoraConfig, PeftModel, get_peft_model

HERE = os.path.dirname(os.path.abspath(__file__))

# The Llama 3 pre-tokenizer split, copied from Meta's tokenizer.json.
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
BOS = "<|begin_of_text|>"
EOT_TEXT = "<|end_of_text|>"
START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
EOT = "<|eot_id|>"
SPECIALS = [BOS, EOT_TEXT, START_HEADER, END_HEADER, EOT]

SYSTEM = "Translate the user's text from {source} to {target}. Reply with the translation only."
LANG_NAMES = {"en": "English", "fr": "French", "it": "Italian", "de": "German"}
PINNED_DATE = "25 Nov 2026"
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

LOG_LINES = []
T0 = time.time()


def log(*parts):
    line = "[%7.1fs] %s" % (time.time() - T0, " ".join(str(p) for p in parts))
    LOG_LINES.append(line)
    print(line, flush=True)


def fail(msg):
    log("FATAL:", msg)
    sys.exit(1)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def version_tuple(v):
    out = []
    for part in v.split(".")[:2]:
        m = re.match(r"\d+", part)
        out.append(int(m.group(0)) if m else 0)
    return tuple(out)


# from_pretrained takes dtype= since transformers 4.56 and torch_dtype= before.
DTYPE_KW = "dtype" if version_tuple(transformers.__version__) >= (4, 56) else "torch_dtype"


def load_llama(path, dtype):
    return LlamaForCausalLM.from_pretrained(path, **{DTYPE_KW: dtype})


# ---------------------------------------------------------------- data


def clean(text):
    return re.sub(r"\s+", " ", text or "").strip()


def paragraphs(text):
    """Splits a Debian long description into paragraphs, each on one line."""
    parts = re.split(r"\n[ \t]*\n", text or "")
    return [clean(p) for p in parts if clean(p)]


def is_heldout(md5, per_mille):
    h = hashlib.md5(("heldout:" + md5).encode("utf-8")).hexdigest()
    return int(h[:8], 16) % 1000 < per_mille


def usable(text):
    return bool(text) and "<|" not in text and "|>" not in text


def read_records(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                fail("%s line %d: %s" % (path, n, e))
            if not isinstance(rec, dict) or "md5" not in rec or "en" not in rec:
                fail("%s line %d: record without md5 or en" % (path, n))
            yield rec


def load_pairs(args):
    """Returns (train pairs by (src, tgt) direction, held-out rows by language)."""
    records = list(read_records(args.data))
    log("records:", len(records))
    held = [r for r in records if is_heldout(r["md5"], args.heldout_per_mille)]
    train = [r for r in records if not is_heldout(r["md5"], args.heldout_per_mille)]
    held_texts = set()
    for r in held:
        for lang in ("en", "fr", "it", "de"):
            if lang in r:
                held_texts.add(clean(r[lang].get("short", "")).lower())
    log("held-out records:", len(held), "training records:", len(train))

    # Held-out rows per target language: (id, package, en, target text).
    heldout_rows = {}
    for lang in ("de", "fr", "it"):
        rows = []
        for r in held:
            if lang not in r:
                continue
            en, tgt = clean(r["en"].get("short")), clean(r[lang].get("short"))
            if usable(en) and usable(tgt):
                rows.append({"id": r["md5"], "package": r.get("package", ""), "en": en, lang: tgt})
        rows.sort(key=lambda x: x["id"])
        heldout_rows[lang] = rows

    shorts = {lang: [] for lang in ("fr", "it", "de")}
    paras = {lang: [] for lang in ("fr", "it", "de")}
    dropped_dup = 0
    for r in train:
        en_short = clean(r["en"].get("short"))
        en_paras = paragraphs(r["en"].get("long"))
        for lang in ("fr", "it", "de"):
            if lang not in r:
                continue
            t_short = clean(r[lang].get("short"))
            if usable(en_short) and usable(t_short):
                if en_short.lower() in held_texts or t_short.lower() in held_texts:
                    dropped_dup += 1
                else:
                    shorts[lang].append((en_short, t_short))
            t_paras = paragraphs(r[lang].get("long"))
            if len(t_paras) != len(en_paras):
                continue
            for a, b in zip(en_paras, t_paras):
                if not (usable(a) and usable(b)):
                    continue
                if len(a) > args.max_para_chars or len(b) > args.max_para_chars * 1.25:
                    continue
                ratio = len(b) / max(1, len(a))
                if ratio < 0.5 or ratio > 2.0:
                    continue
                paras[lang].append((a, b))
    log("dropped training pairs equal to a held-out text:", dropped_dup)
    for lang in ("fr", "it", "de"):
        log("pairs en-%s: %d short, %d paragraphs" % (lang, len(shorts[lang]), len(paras[lang])))
    return shorts, paras, heldout_rows


def write_heldout(rows, path, limit):
    rows = rows[:limit]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            out = {"id": r["id"], "package": r["package"], "en": r["en"], "de": r["de"]}
            f.write(json.dumps(out, ensure_ascii=False) + "\n")
    log("wrote", path, "rows:", len(rows))
    return rows


# ---------------------------------------------------------------- prompts


def system_prompt(src, tgt):
    return SYSTEM.format(source=LANG_NAMES[src], target=LANG_NAMES[tgt])


def render_prompt(system, user, date):
    """Renders the Llama 3.2 chat template for [system, user] with a generation
    prompt; checked against apply_chat_template at start-up."""
    return (
        BOS
        + START_HEADER + "system" + END_HEADER + "\n\n"
        + "Cutting Knowledge Date: December 2023\n"
        + "Today Date: " + date + "\n\n"
        + system.strip() + EOT
        + START_HEADER + "user" + END_HEADER + "\n\n"
        + user.strip() + EOT
        + START_HEADER + "assistant" + END_HEADER + "\n\n"
    )


def random_date(rng):
    # Dates vary in training so that the model does not depend on one.
    return "%02d %s %d" % (rng.randint(1, 28), MONTHS[rng.randrange(12)], rng.randint(2024, 2027))


# ---------------------------------------------------------------- tokenizer


def train_tokenizer(texts, vocab_size, out_dir, template):
    try:
        tok = Tokenizer(models.BPE(ignore_merges=True))
    except TypeError:  # older tokenizers: the flag is set in the JSON below
        tok = Tokenizer(models.BPE())
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIALS),
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    # Special tokens go at the end of the vocabulary, as in Llama 3.
    tok.add_special_tokens([
        AddedToken(s, single_word=False, lstrip=False, rstrip=False, normalized=False, special=True)
        for s in SPECIALS
    ])
    spec = json.loads(tok.to_str())
    if spec["model"].get("ignore_merges") is not True:
        spec["model"]["ignore_merges"] = True
        tok = Tokenizer.from_str(json.dumps(spec))
        spec = json.loads(tok.to_str())
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"), pretty=False)

    ids = {s: tok.token_to_id(s) for s in SPECIALS}
    config = {
        "added_tokens_decoder": {
            str(ids[s]): {
                "content": s, "lstrip": False, "normalized": False, "rstrip": False,
                "single_word": False, "special": True,
            }
            for s in SPECIALS
        },
        "bos_token": BOS,
        "chat_template": template,
        "clean_up_tokenization_spaces": False,
        "eos_token": EOT,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 512,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=2)
        f.write("\n")
    log("tokenizer: vocab", tok.get_vocab_size(with_added_tokens=True), "specials", ids,
        "pre_tokenizer", json.dumps(spec["pre_tokenizer"])[:80] + "...")
    return tok, ids


def check_tokenizer(base_dir, raw_tok):
    hf = AutoTokenizer.from_pretrained(base_dir)
    samples = [
        ("Translate the user's text from English to German. Reply with the translation only.",
         "Real-time strategy game of ancient warfare"),
        (system_prompt("en", "fr"), "  library for   GTK+ 3 (development files) - ü 東京 \u00e9t\u00e9 123456 "),
    ]
    for system, user in samples:
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        for date in (PINNED_DATE, "03 Feb 2025"):
            hf_text = hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, date_string=date)
            mine = render_prompt(system, user, date)
            if hf_text != mine:
                fail("chat template render differs:\n%r\n%r" % (hf_text, mine))
            a = hf(hf_text, add_special_tokens=False)["input_ids"]
            b = raw_tok.encode(mine, add_special_tokens=False).ids
            if a != b:
                fail("AutoTokenizer and tokenizers disagree on %r" % mine)
            back = hf.decode(a, skip_special_tokens=False, clean_up_tokenization_spaces=False)
            if back != mine:
                log("WARNING: decode does not round-trip:\n%r\n%r" % (back, mine))
    log("tokenizer check: AutoTokenizer + apply_chat_template == training render")
    return hf


# ---------------------------------------------------------------- examples


class Examples:
    """Tokenized chat examples packed into one flat array."""

    def __init__(self, flat, offsets, prompt_lens):
        self.flat = flat
        self.offsets = offsets
        self.prompt_lens = prompt_lens
        self.lengths = np.diff(offsets)

    def __len__(self):
        return len(self.prompt_lens)


def build_examples(tok, pairs, eot_id, max_len, rng, pinned_date=False):
    """pairs: list of (system, user, answer). Returns Examples."""
    prompts = [render_prompt(s, u, PINNED_DATE if pinned_date else random_date(rng)) for s, u, _ in pairs]
    answers = [a for _, _, a in pairs]
    p_ids = tok.encode_batch(prompts, add_special_tokens=False)
    a_ids = tok.encode_batch(answers, add_special_tokens=False)
    seqs, plens = [], []
    for p, a in zip(p_ids, a_ids):
        ids = p.ids + a.ids + [eot_id]
        if len(ids) > max_len or not a.ids:
            continue
        seqs.append(ids)
        plens.append(len(p.ids))
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs]) if seqs else np.zeros(0, np.int64)
    return Examples(flat, offsets, np.array(plens, dtype=np.int64))


def epoch_batches(ex, max_tokens, rng):
    """Length-bucketed batches of example indices, at most max_tokens padded."""
    idx = rng.permutation(len(ex))
    batches = []
    for s in range(0, len(idx), 4096):
        chunk = sorted(idx[s:s + 4096].tolist(), key=lambda i: ex.lengths[i])
        cur, cur_max = [], 0
        for i in chunk:
            length = int(ex.lengths[i])
            if cur and max(cur_max, length) * (len(cur) + 1) > max_tokens:
                batches.append(cur)
                cur, cur_max = [], 0
            cur.append(i)
            cur_max = max(cur_max, length)
        if cur:
            batches.append(cur)
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def collate(ex, batch, pad_id):
    """Right-padded input ids and next-token labels (-100 off the answer)."""
    width = int(max(ex.lengths[i] for i in batch))
    inp = np.full((len(batch), width), pad_id, dtype=np.int64)
    lab = np.full((len(batch), width), -100, dtype=np.int64)
    for r, i in enumerate(batch):
        a, b = int(ex.offsets[i]), int(ex.offsets[i + 1])
        ids = ex.flat[a:b]
        n = b - a
        inp[r, :n] = ids
        p = int(ex.prompt_lens[i])
        # Position t predicts token t+1; only answer tokens (and the final
        # <|eot_id|>) are targets.
        lab[r, p - 1:n - 1] = ids[p:n]
    return torch.from_numpy(inp), torch.from_numpy(lab)


def batch_stream(ex, max_tokens, rng):
    epoch = 0
    while True:
        epoch += 1
        for b in epoch_batches(ex, max_tokens, rng):
            yield epoch, b


# ---------------------------------------------------------------- training


def loss_on(model, inp, lab, device, use_amp):
    inp = inp.to(device, non_blocking=True)
    lab = lab.to(device, non_blocking=True)
    # With a PEFT model, get_base_model() is the Llama model with the LoRA
    # layers in place.
    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    # Right padding needs no attention mask: with causal attention no real
    # token sees a pad, and pads carry no target. The output layer runs only
    # where there is a target (the answer), a quarter of the tokens.
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
        hidden = core.model(input_ids=inp, use_cache=False).last_hidden_state
        sel = lab != -100
        logits = core.lm_head(hidden[sel])
    return F.cross_entropy(logits.float(), lab[sel])


@torch.no_grad()
def eval_loss(model, ex, pad_id, device, use_amp, max_tokens):
    if ex is None or len(ex) == 0:
        return float("nan")
    model.eval()
    total, count = 0.0, 0
    rng = np.random.RandomState(0)
    for b in epoch_batches(ex, max_tokens, rng):
        inp, lab = collate(ex, b, pad_id)
        n = int((lab != -100).sum())
        total += float(loss_on(model, inp, lab, device, use_amp)) * n
        count += n
    model.train()
    return total / max(1, count)


def train_loop(name, model, params, ex, val, args, lr, warmup, budget_s, fixed_steps, max_steps,
               weight_decay, pad_id, device, use_amp, rng):
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    opt_kw = {"lr": lr, "betas": (0.9, 0.95), "eps": 1e-8}
    if device.type == "cuda":
        opt_kw["fused"] = True
    opt = torch.optim.AdamW(groups, **opt_kw)
    plan = {"total": fixed_steps or max_steps}

    def lr_at(step):
        if step < warmup:
            return (step + 1) / warmup
        total = plan["total"]
        frac = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    stream = batch_stream(ex, args.max_batch_tokens, rng)
    start = time.time()
    measure_from, measure_at = 10, max(20, warmup // 2)
    t_measure = None
    running = torch.zeros((), device=device)
    running_n, tokens = 0, 0
    step = 0
    epoch = 1
    losses = []
    while step < plan["total"]:
        epoch, b = next(stream)
        inp, lab = collate(ex, b, pad_id)
        tokens += int(inp.numel())
        loss = loss_on(model, inp, lab, device, use_amp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        step += 1
        running += loss.detach()
        running_n += 1
        if fixed_steps is None and step == measure_from:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t_measure = time.time()
        if fixed_steps is None and step == measure_at:
            if device.type == "cuda":
                torch.cuda.synchronize()
            per_step = (time.time() - t_measure) / (measure_at - measure_from)
            left = budget_s - (time.time() - start)
            plan["total"] = int(min(max_steps, max(warmup + 50, step + left / per_step)))
            log("%s: %.1f ms/step, %.0f padded tokens/step: training %d steps (budget %.0fs)"
                % (name, per_step * 1000, tokens / step, plan["total"], budget_s))
        if step % 250 == 0 or step == plan["total"]:
            avg = float(running) / max(1, running_n)
            losses.append((step, avg))
            log("%s step %d/%d epoch %d loss %.4f lr %.2e %.0fs"
                % (name, step, plan["total"], epoch, avg, sched.get_last_lr()[0], time.time() - start))
            running.zero_()
            running_n = 0
        if step % 1000 == 0 and val is not None:
            log("%s step %d held-out loss %.4f" % (name, step, eval_loss(model, val, pad_id, device, use_amp,
                                                                         args.max_batch_tokens)))
        if time.time() - start > budget_s * 1.5 + 30:
            log("%s: WARNING: over time, stopping at step %d of %d" % (name, step, plan["total"]))
            break
    val_loss = eval_loss(model, val, pad_id, device, use_amp, args.max_batch_tokens)
    secs = time.time() - start
    log("%s done: %d steps, %d epochs begun, %.0fs, held-out loss %.4f" % (name, step, epoch, secs, val_loss))
    return {"steps": step, "epochs_begun": epoch, "seconds": round(secs, 1), "heldout_loss": round(val_loss, 4),
            "loss_curve": [[s, round(l, 4)] for s, l in losses]}


# ---------------------------------------------------------------- chrF


def char_ngrams(text, order):
    s = "".join(text.split())
    return [Counter(s[i:i + n] for i in range(len(s) - n + 1)) for n in range(1, order + 1)]


def chrf_stats(hyp, ref, order=6):
    """sacreBLEU 2.x chrF statistics: per order [hyp count, ref count, matches],
    whitespace removed."""
    stats = []
    for h, r in zip(char_ngrams(hyp, order), char_ngrams(ref, order)):
        match = sum(min(c, r[g]) for g, c in h.items() if g in r)
        stats += [sum(h.values()) if r else 0, sum(r.values()), match]
    return stats


def chrf_corpus(hyps, refs, order=6, beta=2.0):
    """Corpus chrF as sacreBLEU computes it (effective-order averaging, no eps
    smoothing): statistics summed over segments, then one F-beta score."""
    total = [0] * (3 * order)
    for h, r in zip(hyps, refs):
        for i, v in enumerate(chrf_stats(h, r, order)):
            total[i] += v
    prec = rec = 0.0
    eff = 0
    for i in range(order):
        n_hyp, n_ref, n_match = total[3 * i:3 * i + 3]
        if n_hyp > 0 and n_ref > 0:
            prec += n_match / n_hyp
            rec += n_match / n_ref
            eff += 1
    if eff == 0:
        return 0.0
    prec /= eff
    rec /= eff
    if prec + rec == 0:
        return 0.0
    f = beta * beta
    return 100.0 * (1 + f) * prec * rec / (f * prec + rec)


def chrf_checked(hyps, refs):
    score = chrf_corpus(hyps, refs)
    try:
        import sacrebleu  # optional cross-check
        ref_score = sacrebleu.corpus_chrf(hyps, [refs]).score
        if abs(ref_score - score) > 1e-6:
            fail("chrF %.6f differs from sacrebleu %.6f" % (score, ref_score))
    except ImportError:
        pass
    return score


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def greedy_batch(model, prompts, eos_ids, pad_id, device, max_new, batch_size=64):
    """Greedy generation, left-padded batches. Returns (ids before EOS, stopped)."""
    model.eval()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out = [None] * len(prompts)
    for s in range(0, len(order), batch_size):
        idxs = order[s:s + batch_size]
        width = max(len(prompts[i]) for i in idxs)
        inp = torch.full((len(idxs), width), pad_id, dtype=torch.long)
        att = torch.zeros((len(idxs), width), dtype=torch.long)
        for r, i in enumerate(idxs):
            p = prompts[i]
            inp[r, width - len(p):] = torch.tensor(p, dtype=torch.long)
            att[r, width - len(p):] = 1
        gen = model.generate(input_ids=inp.to(device), attention_mask=att.to(device), max_new_tokens=max_new,
                             do_sample=False, num_beams=1, eos_token_id=eos_ids, pad_token_id=pad_id)
        gen = gen[:, width:].tolist()
        for r, i in enumerate(idxs):
            ids, stopped = [], False
            for t in gen[r]:
                if t in eos_ids:
                    stopped = True
                    break
                ids.append(t)
            out[i] = (ids, stopped)
    return out


def evaluate(name, model, hf_tok, rows, src, tgt, eos_ids, pad_id, device, max_new, show=0):
    system = system_prompt(src, tgt)
    prompts = [hf_tok(render_prompt(system, r[src], PINNED_DATE), add_special_tokens=False)["input_ids"]
               for r in rows]
    res = greedy_batch(model, prompts, eos_ids, pad_id, device, max_new)
    hyps = [hf_tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False).strip()
            for ids, _ in res]
    refs = [r[tgt] for r in rows]
    score = chrf_checked(hyps, refs)
    copy = chrf_checked([r[src] for r in rows], refs)
    eos_rate = 100.0 * sum(1 for _, stopped in res if stopped) / max(1, len(res))
    log("%s: %s->%s on %d held-out rows: chrF %.2f (copying the source: %.2f), ended at EOS %.1f%%"
        % (name, src, tgt, len(rows), score, copy, eos_rate))
    for r, h in list(zip(rows, hyps))[:show]:
        log("  en:  %s\n             ref: %s\n             out: %s" % (r[src], r[tgt], h))
    return {"rows": len(rows), "chrf": round(score, 2), "chrf_copy_source": round(copy, 2),
            "eos_percent": round(eos_rate, 1)}


@torch.no_grad()
def parity_cases(model, hf_tok, rows, src, tgt, eos_ids, pad_id, max_new):
    """Greedy output of model (on the CPU, float32) one prompt at a time, with
    the top-2 logit margin of every step."""
    model.eval()
    system = system_prompt(src, tgt)
    cases = []
    for r in rows:
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": r[src]}]
        text = hf_tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, date_string=PINNED_DATE)
        ids = hf_tok(text, add_special_tokens=False)["input_ids"]
        inp = torch.tensor([ids], dtype=torch.long)
        out = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp), max_new_tokens=max_new,
                             do_sample=False, num_beams=1, eos_token_id=eos_ids, pad_token_id=pad_id,
                             return_dict_in_generate=True, output_scores=True, output_logits=True)
        seq = out.sequences[0, len(ids):].tolist()
        steps = getattr(out, "logits", None) or out.scores
        margins = []
        for k, step_logits in enumerate(steps[:len(seq)]):
            top = torch.topk(step_logits[0].float(), 2)
            if int(top.indices[0]) != seq[k]:
                fail("parity: step %d argmax %d != generated %d" % (k, int(top.indices[0]), seq[k]))
            margins.append(round(float(top.values[0] - top.values[1]), 6))
        stopped = bool(seq) and seq[-1] in eos_ids
        body = seq[:-1] if stopped else seq
        cases.append({
            "id": r["id"],
            "system": system,
            "user": r[src],
            "prompt": text,
            "prompt_ids": ids,
            "output_ids": seq,
            "finish_reason": "stop" if stopped else "length",
            "text": hf_tok.decode(body, skip_special_tokens=True, clean_up_tokenization_spaces=False),
            "margins": margins,
        })
    return cases


def write_gzip_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = json.dumps(obj, ensure_ascii=False, indent=1).encode("utf-8")
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as f:
            f.write(data)


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=".devdata/ddtp-pairs.jsonl.gz")
    ap.add_argument("--out", default="examples/models/tiny-translator")
    ap.add_argument("--heldout", default="examples/data/heldout-de.jsonl")
    ap.add_argument("--template", default=os.path.join(HERE, "llama32_chat_template.jinja"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--heldout-per-mille", type=int, default=25)
    ap.add_argument("--heldout-rows", type=int, default=400)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=768)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--max-para-chars", type=int, default=300)
    ap.add_argument("--max-batch-tokens", type=int, default=24576)
    ap.add_argument("--tokenizer-texts", type=int, default=300000)
    ap.add_argument("--base-lr", type=float, default=1.5e-3)
    ap.add_argument("--base-seconds", type=float, default=240)
    ap.add_argument("--base-steps", type=int, default=None)
    ap.add_argument("--base-max-steps", type=int, default=10000)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--lora-alpha", type=float, default=32)
    ap.add_argument("--lora-dropout", type=float, default=0.05)
    ap.add_argument("--adapter-lr", type=float, default=2e-3)
    ap.add_argument("--adapter-seconds", type=float, default=90)
    ap.add_argument("--adapter-steps", type=int, default=None)
    ap.add_argument("--adapter-max-steps", type=int, default=2000)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--parity-prompts", type=int, default=8)
    args = ap.parse_args()

    log("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__,
        "peft", peft.__version__, "tokenizers", tokenizers.__version__, "safetensors", safetensors.__version__,
        "numpy", np.__version__)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    use_amp = device.type == "cuda"
    log("device:", torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu", "bf16 autocast:", use_amp)
    seed_everything(args.seed)
    rng = random.Random(args.seed)
    np_rng = np.random.RandomState(args.seed)

    with open(args.template, encoding="utf-8") as f:
        template = f.read()
    base_dir = os.path.join(args.out, "base")
    adapter_dir = os.path.join(args.out, "adapter-de")
    for d in (base_dir, adapter_dir):
        if os.path.isdir(d):
            shutil.rmtree(d)

    # 1. data, held-out slice first.
    shorts, paras, heldout = load_pairs(args)
    held_de = write_heldout(heldout["de"], args.heldout, args.heldout_rows)
    if len(held_de) < 100:
        fail("only %d held-out English->German rows" % len(held_de))

    # 2. tokenizer.
    corpus = []
    for lang in ("fr", "it", "de"):
        for a, b in shorts[lang]:
            corpus += [a, b]
        for a, b in paras[lang]:
            corpus += [a, b]
    # The English side repeats once per target language: count it once.
    corpus = sorted(set(corpus))
    for src, tgt in (("en", "fr"), ("en", "it"), ("en", "de"), ("fr", "en"), ("it", "en"), ("de", "en")):
        corpus += [re.sub(r"<\|[a-z_]+\|>", "\n", render_prompt(system_prompt(src, tgt), "x", random_date(rng)))
                   for _ in range(200)]
    rng.shuffle(corpus)
    corpus = corpus[:args.tokenizer_texts]
    log("tokenizer corpus:", len(corpus), "texts")
    raw_tok, sid = train_tokenizer(corpus, args.vocab, base_dir, template)
    del corpus
    hf_tok = check_tokenizer(base_dir, raw_tok)
    eot_id, eos_text_id, bos_id = sid[EOT], sid[EOT_TEXT], sid[BOS]
    eos_ids = [eot_id, eos_text_id]
    pad_id = eos_text_id

    # 3. base model.
    base_pairs = []
    for lang in ("fr", "it"):
        sys_fwd = system_prompt("en", lang)
        base_pairs += [(sys_fwd, a, b) for a, b in shorts[lang]]
        base_pairs += [(sys_fwd, a, b) for a, b in paras[lang]]
    for lang in ("fr", "it", "de"):
        sys_rev = system_prompt(lang, "en")
        base_pairs += [(sys_rev, b, a) for a, b in shorts[lang]]
    base_ex = build_examples(raw_tok, base_pairs, eot_id, args.max_len, rng)
    val_fr = build_examples(raw_tok, [(system_prompt("en", "fr"), r["en"], r["fr"]) for r in heldout["fr"][:256]],
                            eot_id, args.max_len, rng, pinned_date=True)
    log("base examples:", len(base_ex), "of", len(base_pairs), "tokens", int(base_ex.offsets[-1]),
        "answer tokens", int((base_ex.lengths - base_ex.prompt_lens).sum()))

    vocab_size = raw_tok.get_vocab_size(with_added_tokens=True)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        head_dim=args.hidden // args.heads,
        hidden_act="silu",
        max_position_embeddings=512,
        initializer_range=0.02,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        tie_word_embeddings=True,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=bos_id,
        eos_token_id=eos_ids,
    )
    rp = getattr(config, "rope_parameters", None)
    if isinstance(rp, dict):
        rp["rope_theta"] = 500000.0
        rp.setdefault("rope_type", "default")
    else:
        config.rope_theta = 500000.0
    seed_everything(args.seed)
    model = LlamaForCausalLM(config)
    inv = getattr(getattr(model.model, "rotary_emb", None), "inv_freq", None)
    if inv is not None:
        want = 1.0 / (500000.0 ** (2.0 / (args.hidden // args.heads)))
        if abs(float(inv[1]) - want) > 1e-6 * max(1.0, want):
            fail("rope theta not applied: inv_freq[1]=%g want %g" % (float(inv[1]), want))
    model.tie_weights()
    if model.get_output_embeddings().weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
        fail("embeddings are not tied")
    model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    log("base model: %d parameters (%.2f M), config %s" % (n_params, n_params / 1e6, json.dumps({
        "hidden": args.hidden, "layers": args.layers, "heads": args.heads, "kv_heads": args.kv_heads,
        "intermediate": args.intermediate, "vocab": vocab_size})))
    base_stats = train_loop("base", model, [p for p in model.parameters() if p.requires_grad], base_ex, val_fr, args,
                            args.base_lr, 300, args.base_seconds, args.base_steps, args.base_max_steps, 0.1,
                            pad_id, device, use_amp, np_rng)
    del base_ex

    model.to(torch.bfloat16)
    model.generation_config = GenerationConfig(bos_token_id=bos_id, eos_token_id=eos_ids, pad_token_id=eos_text_id,
                                               do_sample=False)
    model.save_pretrained(base_dir)
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    names = sorted(os.listdir(base_dir))
    log("saved base:", base_dir, names)
    if "model.safetensors" not in names:
        fail("base folder lacks model.safetensors: %s" % names)

    # 4. German LoRA adapter on the frozen base.
    de_pairs = [(system_prompt("en", "de"), a, b) for a, b in shorts["de"]]
    de_pairs += [(system_prompt("en", "de"), a, b) for a, b in paras["de"]]
    de_ex = build_examples(raw_tok, de_pairs, eot_id, args.max_len, rng)
    val_de = build_examples(raw_tok, [(system_prompt("en", "de"), r["en"], r["de"]) for r in held_de],
                            eot_id, args.max_len, rng, pinned_date=True)
    log("adapter examples:", len(de_ex), "tokens", int(de_ex.offsets[-1]))
    seed_everything(args.seed + 1)
    base = load_llama(base_dir, torch.float32).to(device)
    lcfg = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout, bias="none",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                      task_type="CAUSAL_LM")
    pm = get_peft_model(base, lcfg)
    trainable = [p for p in pm.parameters() if p.requires_grad]
    log("adapter: %d trainable parameters" % sum(p.numel() for p in trainable))
    base_val_de = eval_loss(pm, val_de, pad_id, device, use_amp, args.max_batch_tokens)
    log("held-out en->de loss before the adapter: %.4f" % base_val_de)
    adapter_stats = train_loop("adapter", pm, trainable, de_ex, val_de, args, args.adapter_lr, 100,
                               args.adapter_seconds, args.adapter_steps, args.adapter_max_steps, 0.0,
                               pad_id, device, use_amp, np_rng)
    pm.save_pretrained(adapter_dir)
    card = os.path.join(adapter_dir, "README.md")
    if os.path.exists(card):
        os.remove(card)
    log("saved adapter:", adapter_dir, sorted(os.listdir(adapter_dir)))
    del pm, base, de_ex
    if device.type == "cuda":
        torch.cuda.empty_cache()

    # 5. evaluation on the held-out rows, merged model in float32.
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    hf_tok = AutoTokenizer.from_pretrained(base_dir)
    metrics = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                            "peft": peft.__version__, "tokenizers": tokenizers.__version__},
               "params": n_params, "base_training": base_stats, "adapter_training": adapter_stats,
               "heldout_de_loss_without_adapter": round(base_val_de, 4)}

    base_only = load_llama(base_dir, torch.float32).to(device)
    metrics["base_en_fr"] = evaluate("base", base_only, hf_tok, heldout["fr"][:args.heldout_rows], "en", "fr",
                                     eos_ids, pad_id, device, args.max_new_tokens, show=3)
    metrics["base_en_de_without_adapter"] = evaluate("base without adapter", base_only, hf_tok, held_de, "en", "de",
                                                     eos_ids, pad_id, device, args.max_new_tokens, show=3)
    parity_base = parity_cases(base_only.to("cpu"), hf_tok, heldout["fr"][:4], "en", "fr", eos_ids, pad_id,
                               args.max_new_tokens)
    del base_only

    merged = PeftModel.from_pretrained(load_llama(base_dir, torch.float32), adapter_dir).merge_and_unload()
    merged.to(device)
    metrics["merged_en_de"] = evaluate("base + adapter-de", merged, hf_tok, held_de, "en", "de", eos_ids, pad_id,
                                       device, args.max_new_tokens, show=8)
    parity = parity_cases(merged.to("cpu"), hf_tok, held_de[:args.parity_prompts], "en", "de", eos_ids, pad_id,
                          args.max_new_tokens)
    write_gzip_json(os.path.join(args.out, "testdata", "parity.json.gz"), {
        "about": "Greedy float32 output of transformers + peft (adapter merged) on the CPU; margins are the "
                 "top-1 minus top-2 logit at each generated step. Written by examples/train/train.py.",
        "versions": metrics["versions"],
        "date": PINNED_DATE,
        "max_new_tokens": args.max_new_tokens,
        "eos_ids": eos_ids,
        "adapter": "adapter-de",
        "cases": parity,
        "base_cases": parity_base,
    })
    log("parity fixture: %d adapter cases, %d base cases; smallest margin %.4g" % (
        len(parity), len(parity_base), min(m for c in parity + parity_base for m in c["margins"] or [float("inf")])))

    m = metrics["merged_en_de"]
    metrics["done_means"] = {
        "chrf_beats_copy_by": round(m["chrf"] - m["chrf_copy_source"], 2),
        "chrf_beats_copy_by_10": m["chrf"] - m["chrf_copy_source"] >= 10,
        "eos_at_least_80_percent": m["eos_percent"] >= 80,
    }
    sizes = {"base_bytes": dir_bytes(base_dir), "adapter_bytes": dir_bytes(adapter_dir)}
    metrics["sizes"] = sizes
    log("sizes: base %.2f MB, adapter %.2f MB" % (sizes["base_bytes"] / 1e6, sizes["adapter_bytes"] / 1e6))
    if sizes["base_bytes"] + sizes["adapter_bytes"] > 20e6:
        log("WARNING: base + adapter over 20 MB")
    metrics["total_seconds"] = round(time.time() - T0, 1)
    with open(os.path.join(args.out, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(metrics, f, ensure_ascii=False, indent=2)
        f.write("\n")
    log("done means:", json.dumps(metrics["done_means"]))
    log("total %.0fs" % (time.time() - T0))
    with open(os.path.join(args.out, "train-log.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(LOG_LINES) + "\n")


if __name__ == "__main__":
    main()
