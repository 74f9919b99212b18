#!/usr/bin/env python3
"""MTRB with MiniLM: do textbook post-processings of the embeddings help zero-shot retrieval?

A probe, not a stretch feature. It embeds the tools and the test queries
with stretch's own all-MiniLM-L6-v2 (`stretch embed --batch`, the vectors
the `embedding` retriever uses) and ranks by cosine after each of:

  none        the `embedding` retriever's ranking (the paper's setting)
  center      subtract the mean tool vector from tools and queries, then
              renormalise (embedding anisotropy: a shared direction in
              every vector adds the same to every cosine)
  abtt-D      "all-but-the-top": also project out the tools' top D
              principal directions (D = 1, 2, 3)
  rocchio-k-b pseudo-relevance feedback: the query plus b times the mean of
              its first k tools, renormalised, ranked again
  csls-tools-10  CSLS's hubness correction with the tools alone: cos(q, t)
              minus half the mean cosine of t to its 10 nearest tools

None has a parameter chosen on the test queries: the values are the ones
those methods are usually run with, fixed before the first run. It prints
Sufficiency@5/@10 and nDCG@5/@10 with tools/mtrb_reference.py's scoring:

    python3 tools/mtrb_postprocess_probe.py --dataset metatool DATA/mtrb/metatool \\
        --stretch build/bin/stretch
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mtrb_reference import FILES, best_first, load, metrics_row, scores  # noqa: E402

ABTT_DIMS = (1, 2, 3)
ROCCHIO = ((3, 0.5), (5, 0.5), (3, 0.75))


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def center(docs, queries):
    mu = docs.mean(axis=0)
    return unit(docs - mu), unit(queries - mu)


def all_but_the_top(docs, queries, d):
    mu = docs.mean(axis=0)
    top = np.linalg.svd(docs - mu, full_matrices=False)[2][:d]
    strip = lambda x: unit((x - mu) - (x - mu) @ top.T @ top)  # noqa: E731
    return strip(docs), strip(queries)


def csls_tools(docs, queries, k):
    """CSLS's hubness penalty from the tool side only: cos(q, t) minus half
    the mean cosine of t to its k nearest other tools (a tool in a crowded
    region scores lower against every query; no query is looked at)."""
    tt = docs @ docs.T
    np.fill_diagonal(tt, -np.inf)
    r = np.sort(tt, axis=1)[:, -k:].mean(axis=1)
    return docs, queries, r


def rocchio(docs, queries, k, b):
    first = np.argsort(-(queries @ docs.T), axis=1, kind="stable")[:, :k]
    return docs, unit(queries + b * docs[first].mean(axis=1))


class Ranked:
    """A retriever over fixed vectors: query i's row of cosines, ties by tool order."""

    def __init__(self, docs, queries, penalty=None):
        self.s = queries @ docs.T
        if penalty is not None:
            self.s = self.s - 0.5 * penalty[None, :]
        self.row = {}

    def rank(self, query, k):
        i = self.row[query]
        return best_first(self.s[i])[:k]


def embed(stretch, texts):
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write("".join(t.replace("\n", " ") + "\n" for t in texts))
        f.flush()
        out = subprocess.run([str(stretch), "embed", "--batch", f.name], check=True,
                             capture_output=True, text=True).stdout
    vecs = [json.loads(line)["embedding"] for line in out.splitlines() if line.strip()]
    if len(vecs) != len(texts):
        sys.exit(f"stretch embed gave {len(vecs)} vectors for {len(texts)} texts")
    return unit(np.array(vecs, dtype=np.float64))


def variants(docs, queries):
    yield "none", docs, queries
    yield ("center",) + center(docs, queries)
    for d in ABTT_DIMS:
        yield (f"abtt-{d}",) + all_but_the_top(docs, queries, d)
    for k, b in ROCCHIO:
        yield (f"rocchio-{k}-{b}",) + rocchio(docs, queries, k, b)
    yield ("csls-tools-10",) + csls_tools(docs, queries, 10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, choices=sorted(FILES))
    ap.add_argument("data_dir")
    ap.add_argument("--stretch", default="build/bin/stretch", help="the stretch binary")
    a = ap.parse_args()
    docs, queries = load(a.dataset, a.data_dir, False)
    d = embed(a.stretch, docs)
    q = embed(a.stretch, [text for text, _ in queries])
    print(f"{a.dataset}, {len(docs)} tools, {len(queries)} queries, all-MiniLM-L6-v2 (stretch embed)")
    for name, dv, qv, *pen in variants(d, q):
        r = Ranked(dv, qv, pen[0] if pen else None)
        r.row = {text: i for i, (text, _) in enumerate(queries)}
        m, _ = scores(r, queries)
        print(f"{name:16s} {metrics_row(m)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
