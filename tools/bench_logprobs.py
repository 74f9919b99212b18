#!/usr/bin/env python3
"""What a decode step's log-probabilities cost: tokens/s with and without.

Each round runs the same greedy answer three times on one engine (the
Python binding over build/lib/libstretch.so): without log-probabilities,
with `logprobs=5` and with `logprobs=0`, and keeps each one's ratio to the
first, so that the machine's changing speed from round to round cancels.
It prints the medians (docs/RESULTS.md, "What a decode step's
log-probabilities cost"):

    python3 tools/bench_logprobs.py -m manifests/greedy.yaml --rounds 11
"""

import argparse
import statistics
import sys
import time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--manifest", default="manifests/greedy.yaml")
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--prompt", default="Once upon a time")
    a = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
    import stretch  # noqa: E402  (the binding over build/lib/libstretch.so)

    e = stretch.Engine(a.manifest)
    e.generate(a.prompt, max_tokens=8)  # warm: weights paged in, pool started
    plain, ratios = [], {5: [], 0: []}
    for _ in range(a.rounds):
        speed = {}
        for n in (None, 5, 0):
            kw = {} if n is None else {"logprobs": n}
            t0 = time.perf_counter()
            g = e.generate(a.prompt, max_tokens=a.tokens, **kw)
            speed[n] = len(g.tokens) / (time.perf_counter() - t0)
        plain.append(speed[None])
        for n in ratios:
            ratios[n].append(speed[n] / speed[None])
    print(f"{a.rounds} rounds of {a.tokens} tokens: without log-probabilities "
          f"{statistics.median(plain):.1f} tok/s (median); with logprobs=5 "
          f"{statistics.median(ratios[5]):.3f} of that, logprobs=0 "
          f"{statistics.median(ratios[0]):.3f} (medians of the rounds' ratios)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
