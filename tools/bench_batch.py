#!/usr/bin/env python3
"""Engine.generate_batch against the same prompts one generate() at a
time, through the Python package: generated tokens/s of each, rounds
alternating, and a check that both give the same answers token for token.

generate_batch runs the prompts on the engine's `parallel` sequences,
stepped together: each step reads the weights once for every sequence
still decoding, where one request at a time reads them once a token.

    build/venv/bin/python tools/bench_batch.py -m manifests/greedy.yaml \\
        --prompts 4 --tokens 128 --reps 5 [--parallel 4] [--json]

Run it with the Python that has the package (tools/test.sh installs it
into build/venv).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

# Prompts of a few words each, different enough that the answers differ.
PROMPTS = ["Once upon a time", "The capital of France is", "def fibonacci(n):",
           "The three laws of robotics", "In the beginning", "A recipe for bread:",
           "The mitochondria is", "Dear Sir or Madam,"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--manifest", required=True)
    ap.add_argument("--prompts", type=int, default=4, help="how many prompts (at most %d)"
                    % len(PROMPTS))
    ap.add_argument("--tokens", type=int, default=128, help="tokens generated per prompt")
    ap.add_argument("--reps", type=int, default=5, help="rounds of each, alternating")
    ap.add_argument("--parallel", type=int, default=0,
                    help="sequences at once (default: as many as prompts)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    a = ap.parse_args(argv)
    if not 1 <= a.prompts <= len(PROMPTS):
        ap.error(f"--prompts: expected 1 to {len(PROMPTS)}, found {a.prompts}")
    if a.tokens < 1 or a.reps < 1 or a.parallel < 0:
        ap.error("--tokens and --reps must be at least 1, --parallel at least 0")
    try:
        import stretch
    except ImportError as e:
        print(f"bench_batch: {e}: run this with the Python that has the package "
              "(build/venv/bin/python, after tools/test.sh or pip install ./python)",
              file=sys.stderr)
        return 2
    try:
        return run(stretch, a)
    except stretch.Error as e:
        print(f"bench_batch: {e}", file=sys.stderr)
        return 1


def run(stretch, a) -> int:
    prompts = PROMPTS[:a.prompts]
    n = len(prompts) * a.tokens
    one, batch = [], []
    with stretch.Engine(a.manifest, parallel=a.parallel or len(prompts)) as e:
        e.generate(prompts[0], max_tokens=2)  # the first call's page faults, untimed
        for _ in range(a.reps):
            t = time.perf_counter()
            alone = [e.generate(p, max_tokens=a.tokens, ignore_eos=True, fresh_cache=True)
                     for p in prompts]
            one.append(n / (time.perf_counter() - t))
            t = time.perf_counter()
            together = e.generate_batch(prompts, max_tokens=a.tokens, ignore_eos=True)
            batch.append(n / (time.perf_counter() - t))
            if [g.tokens for g in together] != [g.tokens for g in alone]:
                print("bench_batch: generate_batch answered differently from generate",
                      file=sys.stderr)
                return 1
        parallel = e.info.parallel
    r = {"manifest": a.manifest, "prompts": len(prompts), "tokens": a.tokens,
         "parallel": parallel, "one_at_a_time_tok_s": one, "batch_tok_s": batch,
         "ratio": statistics.median(batch) / statistics.median(one), "same_answers": True}
    if a.json:
        print(json.dumps(r, indent=1))
    else:
        for name, xs in (("one at a time", one), ("generate_batch", batch)):
            print(f"{name:15s} {statistics.median(xs):8.1f} tok/s median "
                  f"({min(xs):.1f}-{max(xs):.1f}, {len(xs)} rounds)")
        print(f"{'ratio':15s} {r['ratio']:8.2f}x, {len(prompts)} prompts on {parallel} "
              "sequences, the same answers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
