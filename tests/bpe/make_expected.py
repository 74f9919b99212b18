#!/usr/bin/env python3
"""Build the bpe test fixture (bpe_fixture.h) from an independent reference.

A small byte-level BPE vocabulary is trained with Hugging Face `tokenizers`
using the pre-tokenizer of llama.cpp's "smollm" type (every \\p{N} code point
isolated, then the GPT-2 regex), with three control tokens and one
user-defined token. The vocabulary, merges and token types are written as C
arrays (the test serves them as model metadata), together with the ids
`tokenizers` produces for a list of strings: the plugin must reproduce them.

Run from anywhere: python3 tests/bpe/make_expected.py (needs `tokenizers`).
The output is committed; rerun only when the strings or vocabulary change.
"""
import json
import os

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
CONTROL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
USER_DEFINED = ["<tool_call>"]

TRAIN = [
    "The quick brown fox jumps over the lazy dog. The dog didn't care; it's fine.",
    "It's what they've said: we'll see, I'm sure you'd agree they're right.",
    "Once upon a time there was a little girl who lived in a village near the forest.",
    "def main():\n    print('hello world')\n    return 0\n\nif __name__ == '__main__':\n    main()\n",
    "int main(void) {\n\treturn printf(\"%d\\n\", 42);\n}\n",
    "for (let i = 0; i < 10; i++) { console.log(i * 2); }",
    "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e, na\u00efve r\u00e9sum\u00e9, \u00fcber gr\u00f6\u00dfe Stra\u00dfe, ni\u00f1o a\u00f1o.",
    "\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002\u6211\u4eec\u53bb\u516c\u56ed\u5427\u3002\u4e2d\u6587\u5206\u8bcd\u6d4b\u8bd5\u3002",
    "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c\u3002\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3067\u3059\u3002",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u041a\u0430\u043a \u0434\u0435\u043b\u0430?",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 \u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "Emoji: \U0001F600 \U0001F44D\U0001F3FD \U0001F468\u200D\U0001F469\u200D\U0001F467 \u2764\ufe0f \U0001F680\U0001F680",
    "Numbers 1234567890 and 3.14159, 2024-01-01, $100.00, 50% off!!!",
    "    indented    text\twith\t\ttabs\n\n\nand newlines   ",
    "https://example.com/path?query=1&x=y#frag user@example.org",
    "x^2 + y^2 = z^2; \u2200x \u2208 \u211d: x\u00b2 \u2265 0, \u222b f(x) dx \u2248 \u03c0",
    "<html><body><p class=\"x\">Hello</p></body></html>",
    "the the the and and and of of to to in in is is that that",
]
TRAIN = TRAIN * 3

CASES = [
    "Hello world",
    "Hello, world!",
    " leading space",
    "trailing space ",
    "  two leading spaces",
    "a  b   c    d",
    "tabs\tand\t\tmore\t",
    "line one\nline two\n\nline four\n",
    "\n\n\n",
    " \n \n ",
    "mixed \t\n whitespace \r\n end",
    "it's they're we've I'm you'll he'd don't",
    "IT'S THEY'RE WE'VE I'M",
    "'s 't 're 've 'm 'll 'd",
    "quote 'single' and \"double\"",
    "12345",
    "3.14159265358979",
    "version 1.2.3-rc4",
    "a1b2c3",
    " 42 apples",
    "\u0661\u0662\u0663 arabic digits",
    "x\u00b2 + \u00bd",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9",
    "gro\u00dfe Stra\u00dfe",
    "\u4eca\u5929\u5929\u6c14\u5f88\u597d",
    "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "\U0001F600",
    "\U0001F44D\U0001F3FD thumbs",
    "\U0001F468\u200D\U0001F469\u200D\U0001F467 family",
    "\u2764\ufe0f\U0001F680",
    "def f(x):\n    return x ** 2\n",
    "int main(void) { return 0; }",
    "for (i = 0; i < n; i++) {}",
    "#include <stdio.h>",
    "SELECT * FROM t WHERE a = 'b';",
    "<div class=\"a\">text</div>",
    "https://example.com/a/b?c=d&e=f",
    "user@example.org",
    "!!!???...,,,;;;",
    "--- *** ___ ===",
    "(){}[]<>",
    "\u2200x \u2208 \u211d",
    "\u222b f(x) dx \u2248 \u03c0",
    "<|im_start|>user\nHello<|im_end|>\n",
    "<|endoftext|>",
    "text<|endoftext|>more",
    "<|im_start|><|im_start|>",
    "<|im_end |> is not special",
    "< |im_start| > spaced",
    "<|im_start",
    "call <tool_call>{\"a\":1}",
    "\u00a0non-breaking\u00a0space",
    "\u3000ideographic space",
    "\u2028line separator",
    "zero\u200bwidth",
    "soft\u00adhyphen",
    "control \x01\x02\x7f chars",
    "a",
    " ",
    "",
    "The quick brown fox jumps over the lazy dog.",
]
# Strings also encoded with special-token parsing off.
NO_SPECIAL = [
    "<|im_start|>user\nHello<|im_end|>\n",
    "text<|endoftext|>more",
    "call <tool_call>{\"a\":1}",
]


def build():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, min_frequency=2, special_tokens=CONTROL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(TRAIN, trainer=trainer)
    # Merges across digits, which the trainer never learns because digits are
    # isolated first: they make the fixture tell the "smollm" rule apart from
    # plain GPT-2 pre-tokenization (which would use them).
    spec = json.loads(tok.to_str())
    vocab, merges = spec["model"]["vocab"], spec["model"]["merges"]
    for left, right in [("4", "2"), ("\u0120", "4"), ("\u01204", "2"), ("1", "2"), ("12", "3")]:
        vocab[left + right] = len(vocab)
        merges.append([left, right] if merges and isinstance(merges[0], list) else left + " " + right)
    tok = Tokenizer.from_str(json.dumps(spec))
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in USER_DEFINED])
    return tok


def c_bytes(b):
    out = []
    for c in b:
        if 0x20 <= c < 0x7F and c not in (0x22, 0x5C, 0x3F):
            out.append(chr(c))
        else:
            out.append("\\%03o" % c)
    return '"' + "".join(out) + '"'


def main():
    tok = build()
    vocab = tok.get_vocab(with_added_tokens=True)
    n = max(vocab.values()) + 1
    tokens = [None] * n
    for text, i in vocab.items():
        tokens[i] = text
    assert all(t is not None for t in tokens)
    types = []
    for t in tokens:
        types.append(3 if t in CONTROL else 4 if t in USER_DEFINED else 1)
    model = json.loads(tok.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]

    lines = ["/* GENERATED by tests/bpe/make_expected.py with tokenizers; do not edit. */",
             "#ifndef ST_BPE_FIXTURE_H", "#define ST_BPE_FIXTURE_H", "",
             "#include <stddef.h>", "#include <stdint.h>", ""]
    lines.append("static const char *const fx_tokens[] = {")
    lines += ["    %s," % c_bytes(t.encode()) for t in tokens]
    lines.append("};")
    lines.append("static const int fx_token_types[] = {")
    for i in range(0, n, 20):
        lines.append("    " + ", ".join(str(x) for x in types[i:i + 20]) + ",")
    lines.append("};")
    lines.append("static const char *const fx_merges[] = {")
    lines += ["    %s," % c_bytes(m.encode()) for m in merges]
    lines.append("};")
    lines.append("")
    lines.append("typedef struct fx_case {\n    const char *text;\n    size_t len;\n"
                 "    int parse_special;\n    const int32_t *ids;\n    size_t n_ids;\n} fx_case;")
    lines.append("")
    cases = []
    for k, s in enumerate(CASES + NO_SPECIAL):
        parse_special = k < len(CASES)
        tok.encode_special_tokens = not parse_special
        ids = tok.encode(s, add_special_tokens=False).ids
        assert tok.decode(ids, skip_special_tokens=False) == s, s
        cases.append((s, parse_special, ids))
        lines.append("static const int32_t fx_ids_%d[] = {%s};" % (k, ", ".join(map(str, ids)) or "0"))
    lines.append("")
    lines.append("static const fx_case fx_cases[] = {")
    for k, (s, ps, ids) in enumerate(cases):
        b = s.encode()
        lines.append("    {%s, %d, %d, fx_ids_%d, %d}," % (c_bytes(b), len(b), int(ps), k, len(ids)))
    lines.append("};")
    lines.append("")
    lines.append("#endif")
    with open(os.path.join(HERE, "bpe_fixture.h"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("tokens", n, "merges", len(merges), "cases", len(cases))


if __name__ == "__main__":
    main()
