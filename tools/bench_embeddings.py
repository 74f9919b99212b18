#!/usr/bin/env python3
"""POST /v1/embeddings: `stretch serve --embedding-model` beside a natively
built `llama-server --embedding` on the same GGUF, in one run.

Both servers get the same texts in the same requests (--batch texts each),
alternating rep by rep, 2 threads each by default. llama-server gets as
many slots as a request has texts (-np), so that it can put a whole
request in one batch (with its default slots it measured the same here). Reported: texts/s over
the whole set (median, min, max of --reps), the same rate when --clients
clients send one text per request at once, the latency of one short text
(median of --single requests), and how far the two servers' vectors are
apart (lowest cosine over every text) and whether they count the same
tokens.

llama.cpp reads a copy of the same file in the form its own converter
writes (peer_gguf below: the vocabulary's word-start marking and token types,
and one more key), made in a temporary directory; the tensors are the same.

    python3 tools/bench_embeddings.py --texts TEXTS.txt|DOCS.jsonl | --mtrb DIR
        [--model GGUF] [--batch 32] [--reps 5] [--threads 2] [--llama-bin DIR] [--out FILE.json]

TEXTS.txt holds one text per line; DOCS.jsonl a "text" field a line
(tools/make_docs.py); --mtrb the benchmark's 180 test queries.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib.common import ToolError, llama_bin_dir, post_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def peer_gguf(src: Path, dst: Path) -> None:
    """src in the form llama.cpp's own converter writes a BERT: its
    WordPiece vocabulary with a word's first piece marked by U+2581 instead
    of continuations by "##" (without it llama.cpp reads every word as
    [UNK]), the special tokens typed as control tokens, and
    tokenizer.ggml.token_type_count. The tensors are copied unchanged."""
    import gguf
    r = gguf.GGUFReader(str(src))
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(str(dst), arch)
    # BERT's special tokens: those the file names, and the five every
    # BERT vocabulary has (a file may not name [MASK]).
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    special = {r.fields[k].contents() for k in r.fields
               if k.startswith("tokenizer.ggml.") and k.endswith("_token_id")}
    special |= {i for i, t in enumerate(tokens)
                if t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")}
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        vtype = f.types[0]
        sub = f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        value = f.contents()
        if key == "tokenizer.ggml.tokens":
            value = [t if i in special else t[2:] if t.startswith("##") else "\u2581" + t
                     for i, t in enumerate(value)]
            if "tokenizer.ggml.token_type" not in r.fields:
                w.add_token_types([gguf.TokenType.CONTROL if i in special
                                   else gguf.TokenType.NORMAL for i in range(len(value))])
        w.add_key_value(key, value, vtype, sub)
    if "tokenizer.ggml.token_type_count" not in r.fields:
        types = next(t for t in r.tensors if t.name == "token_types.weight")
        w.add_uint32("tokenizer.ggml.token_type_count", int(types.shape[-1]))
    for t in r.tensors:
        w.add_tensor(t.name, t.data, raw_shape=list(reversed(t.shape.tolist())),
                     raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def wait_ready(url: str, proc: subprocess.Popen, name: str, log: Path) -> None:
    # Logs go to files: an unread pipe fills up and stops the server.
    for _ in range(600):
        if proc.poll() is not None:
            sys.exit(f"{name} exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"{name} did not become ready")


@contextlib.contextmanager
def serve_pair(model: Path, threads: int, slots: int, stretch: str, llama_bin: str | None,
               prog: str, stretch_args: list[str] | None = None) -> Iterator[dict[str, str]]:
    """`stretch serve --embedding-model MODEL` and a natively built
    `llama-server --embedding --pooling mean` on its peer copy, both ready:
    {"stretch": URL, "llama.cpp": URL}. llama-server gets `slots` slots (a
    power of two at least that) of
    at least 256 tokens each (a context of 8,192 at the least) and batches
    of 8,192 tokens, so a request of `slots` texts goes through together.
    stretch_args go to stretch serve. Both are stopped on leaving."""
    # llama-server 0.3.36 fails an assertion at start-up with 65 or 200
    # slots and starts with 64, 128 or 256: a power of two.
    slots = 1 << max(0, slots - 1).bit_length()
    tmp = Path(tempfile.mkdtemp(prefix=prog + "."))
    peer = tmp / model.name
    peer_gguf(model, peer)
    (tmp / "manifests").mkdir()
    servers, procs = {}, []
    try:
        p = subprocess.Popen([stretch, "serve", "--port", "0", "--manifests",
                              str(tmp / "manifests"), "--threads", str(threads),
                              "--embedding-model", str(model), *(stretch_args or [])],
                             stdout=subprocess.PIPE, stderr=open(tmp / "stretch.log", "w"),
                             text=True)
        procs.append(p)
        m = re.search(r"http://([\d.]+):(\d+)", p.stdout.readline())
        if not m:
            sys.exit(f"{prog}: stretch serve did not start: "
                     f"{(tmp / 'stretch.log').read_text()}")
        servers["stretch"] = f"http://{m.group(1)}:{m.group(2)}"
        # Ports: stretch's is free now; llama-server takes the next one up.
        port = int(m.group(2)) + 1
        try:
            exe = llama_bin_dir(Path(llama_bin) if llama_bin else None) / "llama-server"
        except ToolError as e:
            sys.exit(f"{prog}: {e}")
        p = subprocess.Popen([str(exe), "-m", str(peer), "--embedding", "--pooling", "mean",
                              "-t", str(threads), "-tb", str(threads),
                              "-c", str(max(8192, slots * 256)),
                              "-b", "8192", "-ub", "8192", "-np", str(slots),
                              "--port", str(port), "--host", "127.0.0.1"],
                             stdout=subprocess.DEVNULL, stderr=open(tmp / "llama.log", "w"))
        procs.append(p)
        servers["llama.cpp"] = f"http://127.0.0.1:{port}"
        print(f"{prog}: logs in {tmp}", flush=True)
        wait_ready(servers["stretch"], procs[0], "stretch serve", tmp / "stretch.log")
        wait_ready(servers["llama.cpp"], p, "llama-server", tmp / "llama.log")
        yield servers
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def embed_all(url: str, model: str, texts: list[str], batch: int):
    vecs, tokens = [], 0
    t = time.perf_counter()
    for i in range(0, len(texts), batch):
        r = post_json(url + "/v1/embeddings", {"model": model, "input": texts[i:i + batch]})
        vecs += [d["embedding"] for d in sorted(r["data"], key=lambda d: d["index"])]
        tokens += r["usage"]["prompt_tokens"]
    return time.perf_counter() - t, vecs, tokens


def embed_concurrent(url: str, model: str, texts: list[str], clients: int) -> float:
    """Seconds for `clients` clients to send every text as its own request."""
    from concurrent.futures import ThreadPoolExecutor
    t = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda x: post_json(url + "/v1/embeddings", {"model": model, "input": x}),
                      texts))
    return time.perf_counter() - t


def single_latency(url: str, model: str, texts: list[str], n: int) -> float:
    times = []
    for i in range(n):
        t = time.perf_counter()
        post_json(url + "/v1/embeddings", {"model": model, "input": texts[i % len(texts)]})
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def read_texts(texts: str | None, mtrb: str | None) -> list[str]:
    if mtrb:
        out = []
        for sub, name in (("restbench", "mtr_restbench_test.json"),
                          ("metatool", "mtr_metatool_test.json")):
            out += [q["query"] for q in json.loads((Path(mtrb) / sub / name).read_text())]
        return out
    lines = [t for t in Path(texts).read_text().splitlines() if t.strip()]
    if texts.endswith(".jsonl"):
        return [json.loads(t)["text"] for t in lines]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--texts", help="one text per line, or a .jsonl with a \"text\" field "
                     "(tools/make_docs.py writes one)")
    src.add_argument("--mtrb", help="the MTRB directory: its 180 test queries "
                     "(restbench/ and metatool/)")
    ap.add_argument("--model", default=str(REPO / "models" / "all-MiniLM-L6-v2.gguf"))
    ap.add_argument("--batch", type=int, default=32, help="texts per request")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--single", type=int, default=50, help="one-text requests for latency")
    ap.add_argument("--clients", type=int, default=16, help="clients sending one text per "
                    "request at once, for the concurrent rate (0: skip it)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--llama-bin", help="llama-server's directory (default: "
                    "tools/build_llama_native.sh's build)")
    ap.add_argument("--stretch", default=str(REPO / "build" / "bin" / "stretch"))
    ap.add_argument("--out", help="write the results as JSON here")
    a = ap.parse_args()
    texts = read_texts(a.texts, a.mtrb)
    if not texts:
        sys.exit(f"bench_embeddings: {a.texts or a.mtrb}: no text in it")
    model = Path(a.model)
    if not model.is_file():
        sys.exit(f"bench_embeddings: {model}: not found (python3 tools/convert_minilm.py "
                 "writes it)")
    name = model.name.removesuffix(".gguf")
    # Every rep sends the same texts: stretch's cache of recent vectors
    # would answer all but the first from memory, so it is off here; this
    # measures the encoder (tools/bench_rerank.py measures the cache).
    with serve_pair(model, a.threads, a.batch, a.stretch, a.llama_bin, "bench_embeddings",
                    ["--embedding-cache", "0"]) as servers:
        rates = {k: [] for k in servers}
        crates = {k: [] for k in servers}
        vecs, tokens = {}, {}
        for rep in range(a.reps):
            for k, url in servers.items():
                dt, v, n = embed_all(url, name, texts, a.batch)
                rates[k].append(len(texts) / dt)
                vecs[k], tokens[k] = v, n
                line = f"rep {rep + 1}: {k}: {len(texts) / dt:.1f} texts/s"
                if a.clients:
                    crates[k].append(len(texts) / embed_concurrent(url, name, texts, a.clients))
                    line += f", {crates[k][-1]:.1f} with {a.clients} one-text clients"
                print(line, flush=True)
        single = {k: single_latency(url, name, texts, a.single) for k, url in servers.items()}
        cos = []
        for x, y in zip(vecs["stretch"], vecs["llama.cpp"]):
            dot = sum(p * q for p, q in zip(x, y))
            nx = sum(p * p for p in x) ** 0.5
            ny = sum(q * q for q in y) ** 0.5
            cos.append(dot / (nx * ny))
        res = {
            "model": str(model), "texts": len(texts), "batch": a.batch, "threads": a.threads,
            "reps": a.reps,
            "texts_per_s": {k: {"median": statistics.median(v), "min": min(v), "max": max(v)}
                            for k, v in rates.items()},
            "single_text_latency_ms": {k: v * 1000 for k, v in single.items()},
            "clients": a.clients,
            "concurrent_texts_per_s": {k: {"median": statistics.median(v), "min": min(v),
                                           "max": max(v)} for k, v in crates.items() if v},
            "ratio_texts_per_s": statistics.median(rates["stretch"]) /
            statistics.median(rates["llama.cpp"]),
            "lowest_cosine": min(cos), "tokens": tokens,
        }
    print(json.dumps(res, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
