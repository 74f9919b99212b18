#!/usr/bin/env python3
"""MTRB: re-rank MiniLM's best tools by the chat model's likelihood of each
tool's description given the query (the "channel" direction), and by its
pointwise mutual information with the query.

A probe, not a stretch feature. The shipped re-ranker (`rerank:`,
docs/retrieval.md) scores log p(query | description); the issue also names
the other direction, and this measures it with the same SmolLM2 through the
Python binding's Engine.score:

  direct   log p(D | "A user asks: Q\\nA software tool that serves this request: ")
  pmi      direct - log p(D | "A software tool: ")   (a description's own
           likelihood taken out: a short, common description no longer wins
           every query)

D is "NAME: DESCRIPTION". MiniLM (`stretch embed --batch`) gives each query
its best --depth tools (20 by default, so S@10 can change); each score
re-orders them alone, and fused with MiniLM's order by reciprocal rank (K
60). Nothing is tuned on the test queries: the prompts, depth and K were set
before the first run.

    python3 tools/mtrb_channel_probe.py --dataset metatool DATA/mtrb/metatool \\
        --stretch build/bin/stretch -m manifests/greedy.yaml
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mtrb_postprocess_probe import embed  # noqa: E402
from mtrb_reference import FILES, best_first, load, metrics_row, scores  # noqa: E402

ASK = "A user asks: {query}\nA software tool that serves this request: "
PRIOR = "A software tool: "
RRF_K = 60


def reorder(candidates, score):
    """candidates best first; by score, higher first, ties keep their order."""
    return sorted(candidates, key=lambda j: (-score[j], candidates.index(j)))


def fuse(first, second, k=RRF_K):
    """Reciprocal-rank fusion of two orders of the same candidates."""
    rrf = {j: 1 / (k + first.index(j) + 1) + 1 / (k + second.index(j) + 1) for j in first}
    return sorted(first, key=lambda j: (-rrf[j], first.index(j)))


class Ranking:
    """A retriever for mtrb_reference.scores: each query's fixed order."""

    def __init__(self, orders, queries):
        self.orders = orders
        self.row = {text: i for i, (text, _) in enumerate(queries)}

    def rank(self, query, k):
        return self.orders[self.row[query]][:k]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, choices=sorted(FILES))
    ap.add_argument("data_dir")
    ap.add_argument("--stretch", default="build/bin/stretch")
    ap.add_argument("-m", "--manifest", default="manifests/greedy.yaml", help="the chat model")
    ap.add_argument("--depth", type=int, default=20)
    a = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
    import stretch  # noqa: E402  (the binding over build/lib/libstretch.so)

    docs, queries = load(a.dataset, a.data_dir, False)
    named, _ = load(a.dataset, a.data_dir, True)  # "NAME: DESCRIPTION", what is scored
    d = embed(a.stretch, docs)
    q = embed(a.stretch, [text for text, _ in queries])
    sim = q @ d.T
    engine = stretch.Engine(a.manifest)

    def nll(prefix, tail):
        head, body = engine.tokenize(prefix), engine.tokenize(tail)
        return float(engine.score(head + body)[len(head):].sum())

    prior, orders = {}, {"MiniLM": [], "direct": [], "pmi": [], "MiniLM + direct (RRF)": [],
                         "MiniLM + pmi (RRF)": []}
    for i, (text, _) in enumerate(queries):
        full = best_first(sim[i])
        top, rest = full[:a.depth], full[a.depth:]
        direct, pmi = {}, {}
        for j in top:
            tail = named[j]
            if j not in prior:
                prior[j] = -nll(PRIOR, tail)
            direct[j] = -nll(ASK.format(query=text), tail)
            pmi[j] = direct[j] - prior[j]
        by_direct, by_pmi = reorder(top, direct), reorder(top, pmi)
        orders["MiniLM"].append(full)
        orders["direct"].append(by_direct + rest)
        orders["pmi"].append(by_pmi + rest)
        orders["MiniLM + direct (RRF)"].append(fuse(top, by_direct) + rest)
        orders["MiniLM + pmi (RRF)"].append(fuse(top, by_pmi) + rest)
    print(f"{a.dataset}, {len(docs)} tools, {len(queries)} queries, MiniLM's best {a.depth} "
          f"re-ranked by {a.manifest}")
    for name, o in orders.items():
        m, _ = scores(Ranking(o, queries), queries)
        print(f"{name:22s} {metrics_row(m)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
