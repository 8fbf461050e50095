"""Writes the Hugging Face reference ids that the Go tokenizer tests compare
against. Run from the repository root, offline:

    python3 engine/tokenizer/testdata/gen_reference.py

Reads  engine/tokenizer/testdata/llama3/tokenizer.json.gz
       engine/tokenizer/testdata/texts.jsonl.gz   (built by make_texts.py)
Writes engine/tokenizer/testdata/reference.jsonl.gz
         one line per text, in order:
         {"literal": ids with special-token strings kept as text,
          "markup":  ids with special-token strings matched,
          "pieces":  the pre-tokenizer's pieces (byte-level alphabet)}
       engine/tokenizer/testdata/decode_reference.jsonl.gz
         {"ids": [...], "text": tok.decode(ids, skip_special_tokens=False)}

Both encodings use add_special_tokens=False (no post-processor tokens).
"""
import gzip
import json
import os
import random
import sys

import tokenizers
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))


def write_jsonl_gz(path, rows):
    with gzip.GzipFile(path, "wb", mtime=0) as g:
        for r in rows:
            g.write((json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8"))
    print("wrote", path, len(rows), "rows", os.path.getsize(path), "bytes")


def main():
    print("python", sys.version.split()[0], "tokenizers", tokenizers.__version__)
    with gzip.open(os.path.join(HERE, "llama3", "tokenizer.json.gz"), "rt", encoding="utf-8") as f:
        spec = f.read()
    markup = Tokenizer.from_str(spec)
    literal = Tokenizer.from_str(spec)
    literal.encode_special_tokens = True
    assert literal.encode_special_tokens is True
    assert markup.encode_special_tokens is False

    texts = []
    with gzip.open(os.path.join(HERE, "texts.jsonl.gz"), "rt", encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["text"])

    rows = []
    for t in texts:
        lit = literal.encode(t, add_special_tokens=False).ids
        mar = markup.encode(t, add_special_tokens=False).ids
        pieces = [p for p, _ in markup.pre_tokenizer.pre_tokenize_str(t)]
        rows.append({"literal": lit, "markup": mar, "pieces": pieces})
    write_jsonl_gz(os.path.join(HERE, "reference.jsonl.gz"), rows)
    sample = "<|begin_of_text|>Hello<|end_of_text|>"
    print("sample literal", literal.encode(sample, add_special_tokens=False).ids)
    print("sample markup ", markup.encode(sample, add_special_tokens=False).ids)

    # Decoding: random sequences over the whole vocabulary (special tokens
    # included) and over the 256 single-byte tokens, which often form
    # invalid or truncated UTF-8.
    rng = random.Random(20261125)
    n = markup.get_vocab_size(with_added_tokens=True)
    byte_ids = sorted({markup.token_to_id(c) for c in bytes_to_unicode().values()})
    assert len(byte_ids) == 256 and None not in byte_ids
    utf8_lead = [i for i in byte_ids]
    dec = []
    for _ in range(300):
        ids = [rng.randrange(n) for _ in range(rng.randint(1, 20))]
        dec.append(ids)
    for _ in range(700):
        ids = [rng.choice(utf8_lead) for _ in range(rng.randint(1, 10))]
        dec.append(ids)
    # Every valid prefix and cut of multi-byte characters.
    for s in ["é", "日", "😀", "👨‍👩‍👧", "aé日😀z"]:
        b = s.encode("utf-8")
        bid = [markup.token_to_id(bytes_to_unicode()[x]) for x in b]
        for i in range(len(bid) + 1):
            for j in range(i, len(bid) + 1):
                dec.append(bid[i:j])
    rows = [{"ids": ids, "text": markup.decode(ids, skip_special_tokens=False)} for ids in dec]
    write_jsonl_gz(os.path.join(HERE, "decode_reference.jsonl.gz"), rows)


def bytes_to_unicode():
    """The GPT-2 byte-to-character table used by ByteLevel."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


if __name__ == "__main__":
    main()
