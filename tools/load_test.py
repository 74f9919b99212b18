#!/usr/bin/env python3
"""A bounded load test of an OpenAI-compatible server (`stretch serve`,
llama.cpp's `llama-server`, or either behind nginx): C concurrent clients
send R streamed greedy completions each, of mixed prompt lengths, on
loopback. Every answer must equal its solo greedy answer (taken first, one
request at a time, from the same server, or given with --expect): none
lost, none mixed up. Prints throughput in generated tokens/s and p50/p99
time to first token and time per output token, as JSON (one line) and as
a Markdown table row.

    tools/load_test.py --url http://127.0.0.1:8080 --model greedy \\
        --clients 32 --requests 20 --max-tokens 32

Only the Python standard library: it runs from any python3.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import sys
import threading
import time
from urllib.parse import urlparse

WORDS = ("the quick brown fox jumps over the lazy dog while a river runs past old "
         "stone walls and people talk about weather music trade and the long road "
         "home").split()


def prompts(n: int, seed: int, max_words: int, system_words: int = 0) -> list[str]:
    rng = random.Random(seed)
    # A system prompt every request starts with (a chat application's
    # instructions), drawn apart from the questions.
    system = " ".join(random.Random(seed + 1).choice(WORDS) for _ in range(system_words))
    out = []
    for i in range(n):
        words = rng.randint(4, max_words)  # mixed lengths
        text = f"Story {i}: " + " ".join(rng.choice(WORDS) for _ in range(words))
        out.append(f"Instructions: {system}\n{text}" if system_words else text)
    return out


class Client:
    def __init__(self, url: str, key: str | None, extra: dict | None = None):
        u = urlparse(url)
        self.extra = extra or {}
        self.host, self.port = u.hostname, u.port or 80
        self.prefix = u.path.rstrip("/")
        self.headers = {"Content-Type": "application/json"}
        if key:
            self.headers["Authorization"] = f"Bearer {key}"

    def stream(self, model: str, prompt: str, max_tokens: int) -> tuple[str, float, list[float]]:
        """The answer, the time to its first text, and the arrival time of
        each later chunk."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
        body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens,
                           "temperature": 0, "stream": True, **self.extra})
        t0 = time.perf_counter()
        conn.request("POST", self.prefix + "/v1/completions", body=body, headers=self.headers)
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:300]!r}")
        text, first, times = [], None, []
        for raw in resp:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if not chunk.get("choices"):
                continue
            piece = chunk["choices"][0].get("text") or ""
            if piece:
                now = time.perf_counter()
                if first is None:
                    first = now - t0
                else:
                    times.append(now)
                text.append(piece)
        conn.close()
        return "".join(text), first if first is not None else time.perf_counter() - t0, times


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--model", required=True)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=20, help="per client")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--distinct", type=int, default=16, help="distinct prompts (solo runs)")
    ap.add_argument("--max-words", type=int, default=200, help="longest prompt, in words")
    ap.add_argument("--system-words", type=int, default=0,
                    help="start every prompt with the same text of this many words (a shared "
                         "system prompt)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--api-key")
    ap.add_argument("--label", default="", help="the first column of the table row")
    ap.add_argument("--no-prompt-cache", action="store_true",
                    help="send cache_prompt: false (both servers otherwise reuse the keys and "
                         "values of a prompt prefix they hold)")
    ap.add_argument("--expect", help="a JSON file of the solo answers (written when absent)")
    args = ap.parse_args()
    if urlparse(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        ap.error("--url: the load test runs on loopback only")

    client = Client(args.url, args.api_key,
                    {"cache_prompt": False} if args.no_prompt_cache else None)
    texts = prompts(args.distinct, args.seed, args.max_words, args.system_words)
    expect = None
    if args.expect:
        try:
            expect = json.load(open(args.expect))
        except FileNotFoundError:
            pass
    if expect is None:
        expect = [client.stream(args.model, p, args.max_tokens)[0] for p in texts]
        if args.expect:
            json.dump(expect, open(args.expect, "w"))

    ttft, tpot, wrong, failed = [], [], [], []
    generated = 0
    lock = threading.Lock()

    def worker(c: int) -> None:
        nonlocal generated
        for r in range(args.requests):
            i = (c * args.requests + r) % len(texts)
            try:
                text, first, times = client.stream(args.model, texts[i], args.max_tokens)
            except Exception as e:  # noqa: BLE001 - every failure is counted and reported
                with lock:
                    failed.append(f"client {c} request {r}: {e}")
                continue
            with lock:
                ttft.append(first)
                if len(times) > 1:
                    tpot.append((times[-1] - times[0]) / (len(times) - 1))
                generated += len(times) + 1
                if text != expect[i]:
                    wrong.append(f"client {c} request {r} (prompt {i})")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(c,)) for c in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    total = args.clients * args.requests
    result = {
        "label": args.label, "model": args.model, "clients": args.clients,
        "requests": total, "answered": total - len(failed), "wrong": len(wrong),
        "failed": len(failed), "seconds": wall,
        "chunks_per_s": generated / wall if wall else 0.0,
        "ttft_p50_s": pct(ttft, 50), "ttft_p99_s": pct(ttft, 99),
        "tpot_p50_s": pct(tpot, 50), "tpot_p99_s": pct(tpot, 99),
    }
    print(json.dumps(result))
    print(f"| {args.label or args.url} | {total} | {result['answered']} | {len(wrong)} | "
          f"{result['chunks_per_s']:.1f} | {result['ttft_p50_s']:.3f} | "
          f"{result['ttft_p99_s']:.3f} | {result['tpot_p50_s'] * 1000:.1f} | "
          f"{result['tpot_p99_s'] * 1000:.1f} |")
    for line in (failed + wrong)[:10]:
        print("  " + line, file=sys.stderr)
    return 0 if not failed and not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
