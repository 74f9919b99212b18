#!/usr/bin/env python3
"""Perplexity through `stretch serve`'s echo, against `stretch eval ppl`.

A log-likelihood client (lm-eval's `local-completions`, say) reads a
prompt's own log-probabilities from /v1/completions with `echo: true` and
`logprobs`. This tool sends the windows `stretch eval ppl` scores (the
file's tokens, cut into --length windows, token 0 of each not scored) as
token-id prompts with `echo`, `logprobs: 0` and `max_tokens: 0`, sums
their token_logprobs into a perplexity, and compares it with what `stretch
eval ppl --json` reports for the same manifest, file, length and windows.
It also times each window's request with echo against the same prompt
without it (max_tokens 1), alternating: what computing every position's
logits costs a prefill.

    python3 tools/echo_ppl.py -m manifests/greedy.yaml TEXT_FILE [--length 512] [--windows 4]
        [--stretch build/bin/stretch] [--chars 400000]

The manifest's directory is served (a manifest may extend its neighbours);
the model is the manifest's stem.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib.common import (ToolError, check_file, check_stretch, post_json,  # noqa: E402
                        run_main, stretch_serve)

REPO = Path(__file__).resolve().parents[1]


def tokenize(stretch: Path, manifest: Path, text: str) -> list[int]:
    """The file's ids as `stretch eval ppl` tokenizes it: no BOS, special
    text kept as text."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write(json.dumps(text) + "\n")
        path = f.name
    try:
        out = subprocess.run([str(stretch), "tokenize", "-m", str(manifest), "--no-special",
                              "--batch", path], check=True, capture_output=True, text=True)
    finally:
        Path(path).unlink()
    return json.loads(out.stdout.splitlines()[0])["ids"]


def post(url: str, body: dict) -> tuple[dict, float]:
    """A completion and the seconds it took."""
    t0 = time.perf_counter()
    out = post_json(url + "/v1/completions", body)
    return out, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("text", type=Path)
    ap.add_argument("-m", "--manifest", type=Path, default=REPO / "manifests" / "greedy.yaml")
    ap.add_argument("--stretch", type=Path, default=REPO / "build" / "bin" / "stretch")
    ap.add_argument("--length", type=int, default=512)
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--chars", type=int, default=400_000,
                    help="read this many characters of the file (enough for the windows)")
    args = ap.parse_args()
    stretch = check_stretch(args.stretch)
    manifest = check_file(args.manifest, "manifest").resolve()
    text = check_file(args.text, "text file").read_text(errors="replace")[:args.chars]

    ids = tokenize(stretch, manifest, text)
    n_win = min(args.windows, len(ids) // args.length)
    if n_win == 0:
        raise ToolError(f"{args.text}: {len(ids)} tokens, fewer than one window of "
                        f"--length {args.length}")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "text.txt").write_text(text)
        ref = subprocess.run([str(stretch), "eval", "ppl", "-m", str(manifest), "--json",
                              "--length", str(args.length), "--windows", str(args.windows),
                              "--out", tmp, "--fresh", str(Path(tmp) / "text.txt")],
                             capture_output=True, text=True)
        if ref.returncode != 0:
            raise ToolError("stretch eval ppl failed: "
                            f"{(ref.stderr + ref.stdout).strip()[-400:]}")
        want = json.loads(ref.stdout)

    with stretch_serve(stretch, "--manifests", str(manifest.parent)) as url:
        model = manifest.stem
        nll, n, t_echo, t_plain = 0.0, 0, [], []
        post(url, {"model": model, "prompt": ids[:8], "max_tokens": 1})  # loads the model
        for w in range(n_win):
            window = ids[w * args.length:(w + 1) * args.length]
            out, dt = post(url, {"model": model, "prompt": window, "max_tokens": 0,
                                 "echo": True, "logprobs": 0})
            t_echo.append(dt)
            lps = out["choices"][0]["logprobs"]["token_logprobs"]
            if len(lps) != len(window) or lps[0] is not None:
                raise ToolError(f"window {w}: {len(lps)} entries for {len(window)} tokens")
            nll -= sum(lps[1:])
            n += len(lps) - 1
            _, dt = post(url, {"model": model, "prompt": window, "max_tokens": 1})
            t_plain.append(dt)
    ppl = math.exp(nll / n)
    ref_ppl = want.get("ppl", want.get("perplexity"))
    print(json.dumps({
        "manifest": str(manifest), "length": args.length, "windows": n_win,
        "tokens_scored": n, "ppl_echo": ppl, "ppl_eval": ref_ppl,
        "relative_difference": abs(ppl - ref_ppl) / ref_ppl if ref_ppl else None,
        "request_s_echo_median": statistics.median(t_echo),
        "request_s_plain_median": statistics.median(t_plain),
        "echo_cost": statistics.median(t_echo) / statistics.median(t_plain),
    }, indent=1))
    return 0


if __name__ == "__main__":
    run_main(main, "echo_ppl")
