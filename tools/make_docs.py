#!/usr/bin/env python3
"""Make a document set of any size from a plain text, for retrieval speed runs.

    python3 tools/make_docs.py tinyshakespeare.txt --n 10000 --out out/docs10k.jsonl

Writes N JSON lines {"id": "doc<i>", "text": ...}: passages of --words words
(default 12, about 18 MiniLM tokens, a short sentence) whose starts are spread
evenly over the whole text (stride = (words in text - W) // N, at least 1), so
10k and 100k sets both cover the text and the bigger one only overlaps more.
Deterministic: the same text and arguments give the same bytes. The text used
in docs/RESULTS.md is tinyshakespeare.txt (the `data/tinyshakespeare/input.txt`
of the public char-rnn repository, 1,115,394 bytes, 202,651 words).
"""

import argparse
import json
import sys


def passages(words, n, width):
    if len(words) < width:
        raise ValueError(f"the text has {len(words)} words, fewer than --words {width}")
    stride = max(1, (len(words) - width) // n)
    starts = range(0, len(words) - width + 1, stride)
    if len(starts) < n:
        raise ValueError(f"the text gives only {len(starts)} passages of {width} words; "
                         f"ask for at most that many")
    return [" ".join(words[s:s + width]) for s in starts[:n]]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("text", help="a plain-text file (UTF-8)")
    ap.add_argument("--n", type=int, required=True, help="documents to write (>= 1)")
    ap.add_argument("--words", type=int, default=12, help="words per document (default 12)")
    ap.add_argument("--out", required=True, help="the JSONL file to write")
    a = ap.parse_args(argv)
    if a.n < 1 or a.words < 1:
        ap.error("--n and --words must be at least 1")
    try:
        with open(a.text, encoding="utf-8") as f:
            words = f.read().split()
        docs = passages(words, a.n, a.words)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        print(f"make_docs: {a.text}: {e}", file=sys.stderr)
        return 1
    with open(a.out, "w", encoding="utf-8") as f:
        for i, t in enumerate(docs):
            f.write(json.dumps({"id": f"doc{i}", "text": t}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
