#!/usr/bin/env python3
"""Makes tests/data/gpt2_vectors.json: GPT-2 BPE token ids from two independent encoders.

The ids tilegrad's GPT-2 tokenizer is tested against come from outside tilegrad:

1. OpenAI's reference encoder (gpt-2 repository, src/encoder.py): its bytes_to_unicode, get_pairs,
   bpe (lowest-rank merge first, with a cache) and encode, restated below with the same
   pre-tokenisation regex, run by the `regex` package from PyPI.
2. tiktoken's "gpt2" encoding (PyPI), OpenAI's Rust implementation. tiktoken normally downloads
   encoder.json and vocab.bpe; here it reads them from its cache directory, filled with the very
   files in data/gpt2/ (tiktoken checks their SHA-256 against the published ones, so it runs on
   the official GPT-2 vocabulary).

Every string's ids must agree between the two, or this script fails. Besides hand-picked and random
strings and tinyshakespeare, the text of unicode_bmp_text() puts every character of the Basic
Multilingual Plane in several contexts; its ids are recorded as a count and a hash. Plain encoding treats
"<|endoftext|>" as text, as the reference does; the "special" cases are tiktoken's
encode(text, allowed_special={"<|endoftext|>"}), where it becomes id 50256.

Run from the repository root (the versions used are recorded in the output):

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install tiktoken regex
    mkdir -p /tmp/tiktoken-cache
    for f in vocab.bpe encoder.json; do
      cp data/gpt2/$f /tmp/tiktoken-cache/$(python3 -c "import hashlib; print(hashlib.sha1(
        b'https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/$f').hexdigest())")
    done
    TIKTOKEN_CACHE_DIR=/tmp/tiktoken-cache /tmp/venv/bin/python tests/data/make_gpt2_vectors.py
"""

import json
import random
import sys
from functools import lru_cache
from importlib.metadata import version

import regex
import tiktoken

DATA = "data"
OUT = "tests/data/gpt2_vectors.json"


# --- the reference encoder (gpt-2/src/encoder.py), restated ---------------------------------------
@lru_cache()
def bytes_to_unicode():
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) +
          list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def get_pairs(word):
    return {(a, b) for a, b in zip(word, word[1:])}


class ReferenceEncoder:
    def __init__(self, encoder, bpe_merges):
        self.encoder = encoder
        self.byte_encoder = bytes_to_unicode()
        self.bpe_ranks = dict(zip(bpe_merges, range(len(bpe_merges))))
        self.cache = {}
        self.pat = regex.compile(
            r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token)
        pairs = get_pairs(word)
        if not pairs:
            return token
        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                    new_word.extend(word[i:j])
                    i = j
                except ValueError:
                    new_word.extend(word[i:])
                    break
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        word = " ".join(word)
        self.cache[token] = word
        return word

    def encode(self, text):
        bpe_tokens = []
        for token in regex.findall(self.pat, text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            bpe_tokens.extend(self.encoder[t] for t in self.bpe(token).split(" "))
        return bpe_tokens


def load_reference():
    with open(f"{DATA}/gpt2/encoder.json", encoding="utf-8") as f:
        encoder = json.load(f)
    with open(f"{DATA}/gpt2/vocab.bpe", encoding="utf-8") as f:
        bpe_data = f.read()
    merges = [tuple(s.split()) for s in bpe_data.split("\n")[1:-1]]
    return ReferenceEncoder(encoder, merges)


# --- the strings ----------------------------------------------------------------------------------
EDGE_CASES = [
    "",
    " ",
    "  ",
    "Hello world",
    "Hello, world!",
    "hello world   ",
    "   leading spaces",
    "trailing space ",
    "multiple   spaces   between",
    "a\nb",
    "line one\nline two\n\nline four\n",
    "\n\n\n",
    " \n ",
    "tab\tseparated\tvalues",
    "\t\tindented",
    "windows\r\nline\r\nendings\r\n",
    "\r\n\r\n",
    "mixed \t\n whitespace \n\t ",
    "I'm you're he's we've they'll she'd can't won't",
    "'s 't 're 've 'm 'll 'd",
    "'S 'T 'RE 'VE 'M 'LL 'D",
    "don''t",
    "'''",
    " 'tis",
    "rock'n'roll",
    "12345",
    "3.14159 2.71828",
    " 42 and 1,000,000 and 1e10",
    "0x1F 0b1010 007",
    "!!!",
    "?!?!...---",
    "a.b,c;d:e",
    " (parenthesised) [bracketed] {braced}",
    "#include <stdio.h>\nint main() { return 0; }",
    "def f(x):\n    return x ** 2\n",
    "email@example.com http://example.com/path?q=1&r=2",
    "<|endoftext|>",
    "text<|endoftext|>more text",
    " <|endoftext|> ",
    "<|endoftext",
    "café naïve résumé façade",
    "Ångström Øresund Ærø",
    "Straße Größe",
    "ĳsselmeer ǅemal",
    "Ελληνικά κείμενο",
    "Русский текст",
    "עברית",
    "العربية",
    "हिन्दी",
    "中文字符测试",
    "日本語のテキスト",
    "한국어 텍스트",
    "mixed 中文 and English",
    "emoji 😀😃😄 done",
    "👍🏽",
    "👨‍👩‍👧‍👦 family",
    "🇫🇷🇩🇪",
    "e\u0301 vs é",
    "a\u0300\u0301\u0302\u0303",
    " \u0301",
    "Ⅻ Ⅳ ½ ¾ ²³ ١٢٣ ５６",
    "ﬁ ﬂ ﬀ",
    "non\u00a0breaking\u00a0space",
    "em\u2003space and\u3000ideographic",
    "zero\u200bwidth\u200bspace",
    "line\u2028separator\u2029paragraph",
    "next\u0085line",
    "file\x1cgroup\x1drecord\x1eunit\x1f",
    "bom\ufeffinside",
    "control \x00\x01\x02\x07\x08 chars",
    "vertical\x0btab form\x0cfeed",
    "\x7f delete",
    "  \n\n  \t\t  ",
    "end with newline\n",
    "a" * 100,
    " " * 50,
    "ab" * 60,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX!",
    "\u00ff\u0100\u0101 latin extended",
    "\U0001D400\U0001D401 mathematical bold",
    "\U0010FFFD private use plane",
]

# Characters for random strings: each class of the regex and the whitespace definitions.
POOL = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") + list("0123456789") +
        list("'''''") + [" "] * 12 + ["\n"] * 4 + ["\t", "\r", "\r\n", "\x0b", "\x0c"] +
        list(".,;:!?-_()[]{}<>/\\|@#$%^&*+=~`\"") +
        ["s", "t", "re", "ve", "m", "ll", "d"] +
        ["é", "ñ", "ü", "ß", "Ω", "я", "中", "語", "한", "😀", "🎉", "\u0301", "\u0308", "½", "²",
         "\u00a0", "\u2003", "\u3000", "\u200b", "\u2028", "\u0085", "\x1c", "\ufeff", "\x00"])


def random_strings(count, seed):
    rng = random.Random(seed)
    return ["".join(rng.choice(POOL) for _ in range(rng.randint(1, 40))) for _ in range(count)]


def shakespeare_slices(text):
    spans = [(0, 400), (1000, 1300), (100000, 100500), (555555, 556000), (len(text) - 400, None)]
    return [text[a:b] for a, b in spans]


def unicode_bmp_text():
    """Every code point of the Basic Multilingual Plane except the surrogates, each in several
    contexts (before a letter, doubled before a digit, after a letter, after a space, around a
    no-break space, after two spaces), one line each. tilegrad's test builds the same text."""
    return "".join(f"{c}a {c}{c}1 x{c} {c}\u00a0{c}  {c}\n"
                   for c in map(chr, range(0x10000)) if not 0xD800 <= ord(c) <= 0xDFFF)


def fnv1a64_u16le(ids):
    """FNV-1a (64-bit) over the ids as little-endian uint16, as tilegrad's token files store them."""
    h = 0xCBF29CE484222325
    for i in ids:
        for byte in (i & 0xFF, i >> 8):
            h ^= byte
            h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def main():
    ref = load_reference()
    tik = tiktoken.get_encoding("gpt2")

    def both(text):
        a = ref.encode(text)
        b = tik.encode(text, disallowed_special=())
        if a != b:
            sys.exit(f"reference and tiktoken disagree on {text!r}: {a} vs {b}")
        return a

    with open(f"{DATA}/tinyshakespeare.txt", encoding="utf-8") as f:
        shakespeare = f.read()

    cases = [{"text": t, "ids": both(t)} for t in EDGE_CASES]
    cases += [{"text": t, "ids": both(t)} for t in random_strings(300, seed=20240520)]
    cases += [{"text": t, "ids": both(t)} for t in shakespeare_slices(shakespeare)]

    special_texts = ["<|endoftext|>", "a<|endoftext|>b", " <|endoftext|> hello<|endoftext|>",
                     "<|endoftext|><|endoftext|>", "x <|endoftext|>\n\ny", "<|endoftext"]
    special = [{"text": t, "ids": tik.encode(t, allowed_special={"<|endoftext|>"})}
               for t in special_texts]

    whole = both(shakespeare)
    bmp = both(unicode_bmp_text())
    out = {
        "made_by": (f"tests/data/make_gpt2_vectors.py: tiktoken {version('tiktoken')} and the "
                    f"reference encoder.py logic on regex {version('regex')}, agreeing on every "
                    f"string"),
        "cases": cases,
        "special": special,
        "tinyshakespeare": {
            "tokens": len(whole),
            "fnv1a64_u16le": f"{fnv1a64_u16le(whole):016x}",
            "first": whole[:16],
            "last": whole[-16:],
            "char_vocabulary": "".join(sorted(set(shakespeare))),
        },
        "unicode_bmp": {
            "tokens": len(bmp),
            "fnv1a64_u16le": f"{fnv1a64_u16le(bmp):016x}",
        },
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=True, indent=0)
        f.write("\n")
    print(f"wrote {OUT}: {len(cases)} cases, {len(special)} with special tokens, "
          f"tinyshakespeare {len(whole)} tokens")


if __name__ == "__main__":
    main()
