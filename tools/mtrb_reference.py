#!/usr/bin/env python3
"""MTRB tool retrieval, computed independently of stretch, as a check and a peer.

For one subset (restbench or metatool) this prints Sufficiency@5/@10 and
nDCG@5/@10 over the test queries for:

  words  stretch's bm25 re-implemented in Python (Lucene idf, the `words`
         tokenizer: ASCII letters/digits and bytes >= 0x80, lowercased);
         `stretch eval retrieval -m manifests/bm25.yaml` must print the same
         numbers (--stretch checks it and exits 1 when they differ)
  paper  rank_bm25's BM25Okapi on whitespace-split, case-kept text, as the
         MTRB paper's BM25 baseline (needs `pip install rank-bm25`)

and, with --stretch, the mean time per query of stretch's bm25 against
rank_bm25's in the same run.

    python3 tools/mtrb_reference.py --dataset restbench DATA/mtrb/restbench \
        --stretch build/bin/stretch -m manifests/bm25.yaml
"""

import argparse
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

FILES = {
    "restbench": ("tmdb_tool_rewrite.json", "mtr_restbench_test.json"),
    "metatool": ("ts_metatool_api_list_rewrite.json", "mtr_metatool_test.json"),
}
WORD = re.compile(rb"[A-Za-z0-9\x80-\xff]+")


def load(dataset, folder, with_names):
    tools_file, queries_file = FILES[dataset]
    raw = json.loads((Path(folder) / tools_file).read_text())
    if dataset == "restbench":
        tools = [(t["tool_usage"], t["rewrite_description"]) for t in raw]
    else:
        tools = list(raw.items())
    docs = [f"{n}: {d}" if with_names else d for n, d in tools]
    queries = json.loads((Path(folder) / queries_file).read_text())
    for q in queries:
        for i, name in zip(q["relevant IDs"], q["relevant Tools"]):
            if tools[i][0] != name:
                sys.exit(f"{queries_file}: gold id {i} is not {name!r}")
    return docs, [(q["query"], q["relevant IDs"]) for q in queries]


def words(text):
    return [w[:256].lower() for w in WORD.findall(text.encode())]


class WordsBM25:
    """stretch's bm25 (docs/plugins/bm25.md): only documents sharing a word are hits."""

    def __init__(self, docs, k1=1.2, b=0.75):
        self.k1, self.b = k1, b
        self.docs = [words(d) for d in docs]
        self.avgdl = sum(map(len, self.docs)) / len(self.docs)
        self.df = {}
        for d in self.docs:
            for w in set(d):
                self.df[w] = self.df.get(w, 0) + 1

    def rank(self, query, k):
        n = len(self.docs)
        scores = {}
        for w in set(words(query)):
            if w not in self.df:
                continue
            idf = math.log(1 + (n - self.df[w] + 0.5) / (self.df[w] + 0.5))
            for i, d in enumerate(self.docs):
                tf = d.count(w)
                if tf:
                    norm = tf + self.k1 * (1 - self.b + self.b * len(d) / self.avgdl)
                    scores[i] = scores.get(i, 0.0) + idf * tf * (self.k1 + 1) / norm
        return sorted(scores, key=lambda i: (-scores[i], i))[:k]


def best_first(score):
    """The indexes of score, higher first, ties by index: every ranking here."""
    return sorted(range(len(score)), key=lambda i: (-score[i], i))


def metrics_row(m):
    """Sufficiency@5/@10 and nDCG@5/@10 (scores()' list) as the probes print them."""
    return f"S@5 {m[0]:6.2f}  S@10 {m[1]:6.2f}  nDCG@5 {m[2]:6.2f}  nDCG@10 {m[3]:6.2f}"


class PaperBM25:
    """rank_bm25.BM25Okapi over str.split(): every document ranked."""

    def __init__(self, docs):
        from rank_bm25 import BM25Okapi
        self.bm25 = BM25Okapi([d.split() for d in docs])

    def rank(self, query, k):
        return best_first(self.bm25.get_scores(query.split()))[:k]


def scores(retriever, queries):
    s5 = s10 = n5 = n10 = 0.0
    t0 = time.perf_counter()
    ranked = [retriever.rank(q, 10) for q, _ in queries]
    per_query = (time.perf_counter() - t0) / len(queries)
    for r, (_, gold) in zip(ranked, queries):
        for k in (5, 10):
            top = r[:k]
            suff = all(g in top for g in gold)
            dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(top) if d in gold)
            ideal = sum(1 / math.log2(i + 2) for i in range(min(len(gold), k)))
            if k == 5:
                s5, n5 = s5 + suff, n5 + dcg / ideal
            else:
                s10, n10 = s10 + suff, n10 + dcg / ideal
    n = len(queries)
    return [100 * s5 / n, 100 * s10 / n, 100 * n5 / n, 100 * n10 / n], per_query


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, choices=sorted(FILES))
    ap.add_argument("data_dir")
    ap.add_argument("--text", default="description", choices=["description", "name+description"])
    ap.add_argument("--stretch", help="the stretch binary: compare its numbers and time")
    ap.add_argument("-m", "--manifest", default="manifests/bm25.yaml")
    a = ap.parse_args()
    docs, queries = load(a.dataset, a.data_dir, a.text == "name+description")
    rows = [("words (stretch's bm25, Python)",) + tuple(scores(WordsBM25(docs), queries))]
    try:
        rows.append(("paper (rank_bm25, split)",) + tuple(scores(PaperBM25(docs), queries)))
    except ImportError:
        print("(rank_bm25 is not installed: pip install rank-bm25 for the paper's variant)")
    print(f"{a.dataset}, {len(docs)} tools, {len(queries)} queries, text: {a.text}")
    print(f"{'variant':32} {'S@5':>6} {'S@10':>6} {'nDCG@5':>7} {'nDCG@10':>7} {'ms/query':>9}")
    for name, m, t in rows:
        print(f"{name:32} {m[0]:6.2f} {m[1]:6.2f} {m[2]:7.2f} {m[3]:7.2f} {t * 1e3:9.3f}")
    if not a.stretch:
        return 0
    out = subprocess.run([a.stretch, "eval", "retrieval", "-m", a.manifest, "--dataset",
                          a.dataset, "--text", a.text, "--json", a.data_dir],
                         capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    mine = [got["s@5"], got["s@10"], got["ndcg@5"], got["ndcg@10"]]
    print(f"{'stretch ' + got['retriever']:32} {mine[0]:6.2f} {mine[1]:6.2f} {mine[2]:7.2f} "
          f"{mine[3]:7.2f} {got['query_ms']:9.3f}")
    if len(rows) > 1 and got["query_ms"] > 0:
        print(f"time per query, rank_bm25 / stretch: {rows[1][2] * 1e3 / got['query_ms']:.0f}x")
    same = all(abs(x - y) < 1e-9 for x, y in zip(mine, rows[0][1]))
    print("stretch equals the Python words variant" if same else "MISMATCH with the words variant")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
