#!/usr/bin/env python3
"""MTRB as reranking: `stretch serve`'s POST /v1/rerank beside a natively
built llama-server, on the same sentence encoder, in one run.

Each test query of a subset is sent with the subset's whole tool list as
the documents (54 RestBench descriptions, 199 MetaTool ones): stretch
answers POST /v1/rerank with the best 10; llama-server, which reranks only
with a cross-encoder, gets what a client of it does with a sentence
encoder: POST /v1/embeddings for the query and the documents in one
request, ranked by cosine in the client (numpy). Reported per subset and
server: Sufficiency@5/@10 and nDCG@5/@10 (tools/mtrb_reference.py's
definitions; stretch's must equal `stretch eval retrieval -m
manifests/minilm.yaml`, which --eval checks), and the time per query,
HTTP included (median, min, max over --reps, the servers alternating).

    python3 tools/bench_rerank.py --mtrb DATA/mtrb [--model GGUF] [--reps 5] [--eval]
        [--embedding-cache MB]

stretch keeps the documents' vectors between queries (serve's
--embedding-cache, 64 MB by default), so after the first query of a
subset only the query goes through the model; `--embedding-cache 0`
measures it running every document every time, as llama-server does.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_embeddings import serve_pair  # noqa: E402
from lib.common import post_json  # noqa: E402
from mtrb_reference import best_first, load, metrics_row, scores  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SUBSETS = ("restbench", "metatool")


class StretchRerank:
    """POST /v1/rerank with the whole tool list."""

    def __init__(self, url: str, model: str, docs: list[str]):
        self.url, self.model, self.docs = url, model, docs

    def rank(self, query: str, k: int) -> list[int]:
        r = post_json(self.url + "/v1/rerank", {"model": self.model, "query": query,
                                           "documents": self.docs, "top_n": k})
        return [x["index"] for x in r["results"]]


class EmbedThenCosine:
    """POST /v1/embeddings for [query] + documents, ranked by cosine here."""

    def __init__(self, url: str, model: str, docs: list[str]):
        self.url, self.model, self.docs = url, model, docs

    def rank(self, query: str, k: int) -> list[int]:
        import numpy as np
        r = post_json(self.url + "/v1/embeddings", {"model": self.model,
                                               "input": [query] + self.docs})
        v = np.array([d["embedding"] for d in sorted(r["data"], key=lambda d: d["index"])],
                     dtype=np.float64)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return best_first(list(v[1:] @ v[0]))[:k]


def eval_row(stretch: str, model: Path, folder: Path, dataset: str) -> list[float]:
    """`stretch eval retrieval`'s S@5, S@10, nDCG@5, nDCG@10 with this encoder."""
    with tempfile.TemporaryDirectory(prefix="bench_rerank.") as tmp:
        manifest = Path(tmp) / "encoder.yaml"
        manifest.write_text(f"format: 1\nextends: {REPO / 'manifests' / 'default.yaml'}\n"
                            f"retriever:\n  plugin: embedding\n"
                            f"  params: {{model: {model.resolve()}}}\n")
        out = subprocess.run([stretch, "eval", "retrieval", "-m", str(manifest), "--dataset",
                              dataset, "--json", str(folder)], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"bench_rerank: stretch eval retrieval failed: {out.stderr.strip()}")
    r = json.loads(out.stdout)
    return [r[k] for k in ("s@5", "s@10", "ndcg@5", "ndcg@10")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mtrb", required=True, help="the MTRB directory (restbench/, metatool/)")
    ap.add_argument("--model", default=str(REPO / "models" / "all-MiniLM-L6-v2.gguf"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--embedding-cache", type=int, default=64, metavar="MB",
                    help="stretch serve's --embedding-cache (0: every document through "
                    "the model on every query, as llama-server does)")
    ap.add_argument("--eval", action="store_true", help="also run `stretch eval retrieval` "
                    "and exit 1 when /v1/rerank's numbers differ from it")
    ap.add_argument("--llama-bin", help="llama-server's directory (default: "
                    "tools/build_llama_native.sh's build)")
    ap.add_argument("--stretch", default=str(REPO / "build" / "bin" / "stretch"))
    ap.add_argument("--out", help="write the results as JSON here")
    a = ap.parse_args()
    model = Path(a.model)
    if not model.is_file():
        sys.exit(f"bench_rerank: {model}: not found (python3 tools/convert_minilm.py "
                 "writes it)")
    name = model.name.removesuffix(".gguf")
    data = {d: load(d, Path(a.mtrb) / d, False) for d in SUBSETS}
    # llama-server's slots: 32, as bench_embeddings.py gives it. With one
    # slot a document (256) it took 1.8 s a MetaTool query here, with 32
    # 0.97 s and with 64 1.04 s: its fastest.
    slots = 32
    res = {"model": str(model), "threads": a.threads, "reps": a.reps,
           "embedding_cache_mb": a.embedding_cache, "subsets": {}}
    with serve_pair(model, a.threads, slots, a.stretch, a.llama_bin, "bench_rerank",
                    ["--embedding-cache", str(a.embedding_cache)]) as servers:
        kinds = {"stretch": StretchRerank, "llama.cpp": EmbedThenCosine}
        for dataset, (docs, queries) in data.items():
            times = {k: [] for k in servers}
            quality = {}
            for rep in range(a.reps):
                for k, url in servers.items():
                    t = time.perf_counter()
                    quality[k], _ = scores(kinds[k](url, name, docs), queries)
                    times[k].append((time.perf_counter() - t) / len(queries) * 1000)
                    print(f"{dataset} rep {rep + 1}: {k}: {times[k][-1]:.1f} ms a query",
                          flush=True)
            row = {k: {"metrics": quality[k], "ms_per_query": {
                "median": statistics.median(v), "min": min(v), "max": max(v),
                "first_rep": v[0]}} for k, v in times.items()}
            row["documents"], row["queries"] = len(docs), len(queries)
            row["ratio_ms"] = (statistics.median(times["llama.cpp"]) /
                               statistics.median(times["stretch"]))
            res["subsets"][dataset] = row
    failed = False
    for dataset, row in res["subsets"].items():
        print(f"\n{dataset}: {row['queries']} queries x {row['documents']} documents")
        for k in ("stretch", "llama.cpp"):
            t = row[k]["ms_per_query"]
            print(f"  {k:9} {metrics_row(row[k]['metrics'])}  "
                  f"{t['median']:.1f} ({t['min']:.1f}-{t['max']:.1f}) ms a query")
        print(f"  llama.cpp / stretch time: {row['ratio_ms']:.2f}x")
        if a.embedding_cache and a.reps > 1:
            # Later reps send the same queries again: the cache answers
            # them whole. The first rep's queries are new to the server.
            first = row["stretch"]["ms_per_query"]["first_rep"]
            print(f"  first rep (queries new, documents cached after the first query): "
                  f"stretch {first:.1f} ms a query, llama.cpp / stretch "
                  f"{row['llama.cpp']['ms_per_query']['first_rep'] / first:.2f}x")
        if a.eval:
            want = eval_row(a.stretch, model, Path(a.mtrb) / dataset, dataset)
            row["eval_retrieval"] = want
            same = all(abs(x - y) < 1e-9 for x, y in zip(row["stretch"]["metrics"], want))
            print(f"  stretch eval retrieval: {metrics_row(want)}"
                  f"{'' if same else '  DIFFERS from /v1/rerank'}")
            failed |= not same
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
