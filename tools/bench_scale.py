#!/usr/bin/env python3
"""How time per generated token and peak memory grow with the context.

For each strategy manifest and each prompt length (multiples of a base
length, by default the model's trained context), run `stretch bench` in a
fresh process: prefill the prompt, then generate --gen-tokens tokens, and
record decode ms/token and the process's peak RSS. A bounded strategy
(lm-infinite, streaming) should stay flat; dense attention grows with the
context. Ratios are against the same strategy at the first length, measured
in the same run.

  tools/bench_scale.py --manifests manifests/greedy.yaml manifests/streaming.yaml \\
      --base 2048 --multiples 1,2,4 --gen-tokens 32 --out out/scale.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_bench(stretch: Path, manifest: Path, n_prompt: int, n_gen: int, threads: int) -> dict:
    cmd = [str(stretch), "bench", "-m", str(manifest), "--prompt-tokens", str(n_prompt),
           "--gen-tokens", str(n_gen), "--reps", "1", "--threads", str(threads), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stretch", type=Path, default=REPO / "build" / "bin" / "stretch")
    ap.add_argument("--manifests", type=Path, nargs="+", required=True)
    ap.add_argument("--base", type=int, default=8192, help="base length in tokens (default: SmolLM2's trained 8192)")
    ap.add_argument("--multiples", default="1,2,4", help="prompt lengths as multiples of --base")
    ap.add_argument("--gen-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = ap.parse_args()
    if not args.stretch.exists():
        print(f"error: {args.stretch} not found: build first (cmake --build build)", file=sys.stderr)
        return 2
    mults = [int(x) for x in args.multiples.split(",")]
    rows = []
    print("| manifest | prompt tokens | decode ms/token | vs first | peak RSS MB | vs first |")
    print("|---|---|---|---|---|---|")
    for m in args.manifests:
        first = None
        for k in mults:
            n = args.base * k
            try:
                r = run_bench(args.stretch, m, n, args.gen_tokens, args.threads)
            except RuntimeError as e:
                print(f"| {m.name} | {n} | failed: {e} | | | |")
                rows.append({"manifest": str(m), "prompt_tokens": n, "error": str(e)})
                continue
            tps = r["decode_tok_s"][0]
            ms = 1000.0 / tps if tps > 0 else float("inf")
            rss = r["peak_rss_mb"]
            if first is None:
                first = (ms, rss)
            rows.append({"manifest": str(m), "prompt_tokens": n, "decode_ms_per_token": ms,
                         "peak_rss_mb": rss, "prefill_tok_s": r["prefill_tok_s"][0],
                         "ms_ratio": ms / first[0], "rss_ratio": rss / first[1]})
            print(f"| {m.name} | {n} | {ms:.2f} | {ms / first[0]:.2f}x | {rss:.0f} | {rss / first[1]:.2f}x |",
                  flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"base": args.base, "gen_tokens": args.gen_tokens,
                                        "threads": args.threads, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
