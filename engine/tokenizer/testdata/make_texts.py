"""Builds testdata/texts.jsonl.gz: the texts whose token ids are checked
against Hugging Face tokenizers (see gen_reference.py).

Input: the DDTP pairs file (Debian package descriptions in 11 languages),
given as the first argument. The output is committed; this script only needs
to run again to change the text set. Deterministic: records are taken in file
order, every STRIDE-th record that has the language.

    python3 engine/tokenizer/testdata/make_texts.py path/to/ddtp-pairs.jsonl.gz
"""
import gzip
import json
import os
import sys

PER_LANG = 50  # records per language; each gives a short and a long text
STRIDE = 11

EDGE = [
    "",
    " ",
    "  ",
    "   ",
    "\t",
    "\t\t",
    "\n",
    "\n\n",
    "\r\n",
    "\r\n\r\n",
    " \n",
    "\n ",
    "a  b",
    "a   b",
    "a    b",
    "a\t\tb",
    "a \t b",
    "hello   ",
    "   hello",
    "   hello   world   ",
    "line one\nline two\n\nline four\n",
    "windows\r\nline\r\nendings\r\n",
    "mixed \r\n \n\t\r\n  x",
    "trailing tab\t",
    "tab\tseparated\tvalues\t1\t22\t333",
    "  \n\n  \t \r\n x \n",
    "a\u00a0b",  # no-break space
    "a\u2003b\u3000c",  # em space, ideographic space
    "a \u00a0 b",
    "x\u2028y\u2029z",  # line/paragraph separators
    "\u000bvertical\u000cform\u0085next",
    "1",
    "12",
    "123",
    "1234",
    "12345678901234567890",
    "3.14159265358979323846264338327950288419716939937510",
    "call 0800-555-0199 or +49 (0)30 1234567",
    "2026-11-25T21:00:00Z",
    "١٢٣٤٥٦٧٨٩٠ ٣٤",  # Arabic-Indic digits
    "Ⅻ ½ ² ³ ① ⑩",  # other numerics
    "०१२३४५",
    "I'm you're he's it's we've they'll she'd don't",
    "I'M YOU'RE HE'S IT'S WE'VE THEY'LL SHE'D DON'T",
    "I'm YoU'Re He'S iT's",
    "'s 't 're 've 'm 'll 'd",
    "'S 'T 'RE 'VE 'M 'LL 'D 'Re 'rE 'Ll 'lL",
    "long s: it\u017f and it'\u017f, kelvin \u212a",
    "x'sy 'tis 'll've",
    "''s '''",
    "rock'n'roll o'clock l'homme aujourd'hui",
    "dog's  cat's\t'll",
    "quotes ‘curly’ “double” „low“ «guillemets»",
    "emoji 😀😃😄 👍🏽 🇩🇪🇯🇵",
    "family 👨‍👩‍👧‍👦 and 👩🏽‍💻 and 🏳️‍🌈",
    "❤️‍🔥 ✨ 🤖",
    "e\u0301 a\u0300 o\u0308 n\u0303",  # combining marks
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u036b\u0357\u0334\u0362\u0335\u031c\u0330\u0354L\u0368\u0367\u0369\u0358\u0320G\u0311\u0357\u030e\u0305\u031b\u0341\u0334\u033b\u0348\u034d\u0354\u0339O",
    "क्षत्रिय हिन्दी भाषा",
    "ภาษาไทยไม่มีช่องว่าง",
    "日本語のテキストです。漢字、ひらがな、カタカナ。",
    "中文文本，没有空格。",
    "한국어 텍스트입니다.",
    "עברית מימין לשמאל",
    "العربية من اليمين إلى اليسار",
    "mixed עברית and English ومزيج",
    "\u202eRTL override\u202c and \u200fRLM\u200e",
    "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom",
    "<|eot_id|>",
    "<|begin_of_text|>Hello<|end_of_text|>",
    "a<|eot_id|>b",
    " <|eot_id|> ",
    "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
    "<|eot_id|><|eot_id|>",
    "<|eot_id",
    "<|eot_id|",
    "<|reserved_special_token_0|><|reserved_special_token_247|>",
    "<|unknown_token|>",
    "<<|eot_id|>>",
    "prefix<|python_tag|>suffix",
    "code:\n    def f(x):\n        return x ** 2\n",
    "{\"json\": [1, 2, 3], \"k\": null}",
    "<html><body class=\"x\">Text &amp; more</body></html>",
    "C:\\Program Files\\app.exe --flag=value",
    "https://example.com/path?query=1&b=2#frag",
    "!!!???...,,,;;;",
    "$$$ %%% ^^^ &&& *** ((( )))",
    "____----====++++",
    "a.b.c.d",
    "ALLCAPS WORDS HERE",
    "camelCaseWordsHere and snake_case_words",
    "\u00e9t\u00e9 Stra\u00dfe \u0130stanbul \u0131",
    "\U0001d400\U0001d401\U0001d402 math bold",
    "\x00\x01\x02\x1f\x7f control",
    "tab\tat\tend\t\t\t",
    "word\n\n\n\nword",
    "word \n \n \n word",
    "\n\n\n",
    "     ",
    "\t \t \t",
    "a" * 300,
    "ab " * 100,
    " " * 100 + "x",
    "\n" * 50,
    "9" * 100,
    "😀" * 30,
    "日本" * 100,
]


def main():
    src = sys.argv[1]
    langs = ["en", "de", "fr", "it", "es", "ja", "pl", "pt_BR", "ru", "uk", "zh_CN"]
    picked = {l: [] for l in langs}
    counts = {l: 0 for l in langs}
    with gzip.open(src, "rt", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            for l in langs:
                if l not in rec or len(picked[l]) >= PER_LANG:
                    continue
                counts[l] += 1
                if counts[l] % STRIDE == 0:
                    picked[l].append(rec[l])
    out = []
    for t in EDGE:
        out.append({"lang": "edge", "kind": "edge", "text": t})
    for l in langs:
        for d in picked[l]:
            out.append({"lang": l, "kind": "short", "text": d["short"]})
            out.append({"lang": l, "kind": "long", "text": d["long"]})
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "texts.jsonl.gz")
    with gzip.GzipFile(path, "wb", mtime=0) as g:
        for o in out:
            g.write((json.dumps(o, ensure_ascii=False) + "\n").encode("utf-8"))
    print(path, len(out), {l: len(picked[l]) for l in langs})


if __name__ == "__main__":
    main()
