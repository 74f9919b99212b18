#!/usr/bin/env python3
"""The prompt cache in a file: `stretch run --prompt-cache` against
llama.cpp's own `llama-completion --prompt-cache`, whole commands.

For one long prompt (the first --prompt-chars characters of --prompt-file),
each side runs three ways, interleaved rep by rep so background load hits
both alike:

  none    no prompt cache: the whole prompt is prefilled;
  write   --prompt-cache FILE with no file yet: prefilled, then written;
  read    --prompt-cache FILE again: the prompt's keys and values are read
          from the file instead of computed.

Both generate --gen-tokens tokens greedily with --threads threads, the
model loaded by each command (what a user waits for). The peer is the
natively built llama.cpp of tools/build_llama_native.sh. It prints
min/median/max wall seconds of each, the ratio of the medians (llama.cpp /
stretch: above 1, stretch is faster), and each side's file size, as a
Markdown table for docs/RESULTS.md; --out keeps the raw runs as JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib.common import (REPO_ROOT, ToolError, add_long_prompt_args, last_json_object,  # noqa: E402
                        long_prompt_inputs, peer_table, run_main)

PROG = "bench_prompt_cache"
WAYS = ("none", "write", "read")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tools/bench_prompt_cache.py",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_long_prompt_args(p, "llama-completion")
    p.add_argument("--manifest", type=Path, default=REPO_ROOT / "manifests" / "greedy.yaml",
                   help="strategy for stretch (default: %(default)s)")
    p.add_argument("--gen-tokens", type=int, default=16, help="tokens generated (default: %(default)s)")
    p.add_argument("--reps", type=int, default=5, help="runs of each way and side (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="threads for both (default: %(default)s)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "out" / "bench_prompt_cache.json",
                   help="raw runs as JSON (default: %(default)s)")
    a = p.parse_args(argv)
    if min(a.reps, a.gen_tokens, a.threads, a.prompt_chars, a.context) < 1:
        p.error("--reps, --gen-tokens, --threads, --prompt-chars and --context must be positive")
    return a


def timed(cmd: list[str], what: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        raise ToolError(f"{what} exited {done.returncode}: {' '.join(cmd)}\n  " + "\n  ".join(tail))
    if "warning" in done.stderr and what.startswith("stretch"):
        raise ToolError(f"{what} warned: {done.stderr.strip()}")
    return took, done.stdout


def stretch_cmd(a, prompt: Path, cache: Path | None) -> list[str]:
    cmd = [str(a.stretch), "run", "-m", str(a.manifest), "--model", str(a.model), "--context",
           str(a.context), "--threads", str(a.threads), "--max-tokens", str(a.gen_tokens),
           "--ignore-eos", "--json", "--file", str(prompt)]
    return cmd + (["--prompt-cache", str(cache)] if cache else [])


def llama_cmd(a, binary: Path, prompt: Path, cache: Path | None) -> list[str]:
    cmd = [str(binary), "-m", str(a.model), "-f", str(prompt), "-c", str(a.context), "-t",
           str(a.threads), "-n", str(a.gen_tokens), "--temp", "0", "--ignore-eos", "-no-cnv",
           "--no-display-prompt", "--simple-io"]
    return cmd + (["--prompt-cache", str(cache)] if cache else [])


def main() -> int:
    a = parse_args()
    completion, text = long_prompt_inputs(a, "llama-completion")
    runs: dict[str, dict[str, list[float]]] = {s: {w: [] for w in WAYS} for s in ("stretch", "llama")}
    sizes: dict[str, int] = {}
    cached: list[int] = []  # stretch's cached_tokens in the `read` runs
    n_tokens = 0
    with tempfile.TemporaryDirectory(prefix="stretch-pc-") as tmp:
        prompt = Path(tmp) / "prompt.txt"
        prompt.write_text(text, encoding="utf-8")
        for rep in range(a.reps):
            for side in ("stretch", "llama"):
                cache = Path(tmp) / f"{side}.cache"
                for way in WAYS:
                    if way == "write" and cache.exists():
                        cache.unlink()
                    use = cache if way != "none" else None
                    cmd = (stretch_cmd(a, prompt, use) if side == "stretch"
                           else llama_cmd(a, completion, prompt, use))
                    took, out = timed(cmd, f"{side} {way}")
                    runs[side][way].append(took)
                    if side == "stretch":
                        result = last_json_object(out, "stretch run")
                        n_tokens = len(result["prompt_ids"])
                        if way == "read":
                            cached.append(result["cached_tokens"])
                sizes[side] = cache.stat().st_size
            print(f"{PROG}: rep {rep + 1}/{a.reps} done", file=sys.stderr)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"runs": runs, "file_bytes": sizes, "prompt_tokens": n_tokens,
                                 "stretch_cached_tokens": cached,
                                 "threads": a.threads, "gen_tokens": a.gen_tokens,
                                 "context": a.context}, indent=1) + "\n")
    print(f"\n{n_tokens} prompt tokens (stretch took {min(cached)}-{max(cached)} from the file), "
          f"{a.gen_tokens} generated, {a.threads} threads, {a.reps} runs each; wall seconds of "
          f"the whole command, median (min-max)\n")
    print("\n".join(peer_table(
        runs, WAYS, sizes,
        "| prompt cache | llama.cpp (llama-completion) | stretch run | llama.cpp / stretch |", 2)))
    return 0


if __name__ == "__main__":
    run_main(main, PROG)
