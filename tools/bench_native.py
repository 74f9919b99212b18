#!/usr/bin/env python3
"""Speed against the native llama.cpp: llama-bench vs `stretch bench`.

The peer is llama.cpp's own llama-bench built for this CPU by
tools/build_llama_native.sh (-DGGML_NATIVE=ON, from the source vendored in
llama-cpp-python's sdist), never the pip-built binding. For every prompt
length P the script measures, interleaved run by run so background load
hits both alike:

  prefill   llama-bench -p P -n 0 (flash attention on and off) against the
            prefill rate of `stretch bench --prompt-tokens P`;
  decode    llama-bench -p 0 -n N -d P: N tokens after P tokens of context,
            against stretch's decode rate after its P-token prompt.

Both sides warm up as llama-bench does by default: it runs each test once
untimed before the timed run, and `stretch bench --warmup` runs the same
prompt (and one generated token) on its engine before the timed request,
which then starts from an empty cache. --cold times both sides' first run
instead (llama-bench --no-warmup, stretch without --warmup). Raw files from
before these options timed stretch cold against a warm llama.cpp; --merge
keeps the three kinds apart.

--cache-type q8_0 puts both KV caches in Q8_0 (llama-bench -ctk q8_0 -ctv
q8_0); stretch always runs through a child of --manifest that sets
`kv-type` to the same type (f16 by default), whatever the manifest sets.
llama.cpp quantizes its V cache only with flash attention, so q8_0 runs
with --flash on.

It prints min/median/max tokens/s of each side and the ratio of the
medians (stretch / llama.cpp, per flash-attention setting), as a Markdown
table for docs/RESULTS.md, and writes every raw run to --out as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib.common import (DEFAULT_MODEL, DEFAULT_STRETCH, REPO_ROOT, ToolError, check_model,  # noqa: E402
                        check_stretch, last_json_object, llama_bin_dir, run_main)

PROG = "bench_native"


def positive_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got '{text}'")
    return values


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tools/bench_native.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="GGUF both sides load (default: %(default)s)")
    p.add_argument("--stretch", type=Path, default=DEFAULT_STRETCH, help="stretch binary (default: %(default)s)")
    p.add_argument("--manifest", type=Path, default=REPO_ROOT / "manifests" / "greedy.yaml",
                   help="strategy for stretch (default: %(default)s)")
    p.add_argument("--llama-bin", type=Path, default=None,
                   help="directory holding llama-bench (default: build it with tools/build_llama_native.sh)")
    p.add_argument("--prompts", type=positive_list, default=[512, 4096],
                   help="prompt lengths / decode depths, comma-separated (default: 512,4096)")
    p.add_argument("--gen-tokens", type=int, default=128, help="decode tokens per run (default: %(default)s)")
    p.add_argument("--reps", type=int, default=5, help="runs per side and setting (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="threads for both (default: %(default)s)")
    p.add_argument("--flash", choices=["on", "off", "both"], default="both",
                   help="llama.cpp flash attention (default: %(default)s)")
    p.add_argument("--cache-type", choices=["f16", "q8_0"], default="f16",
                   help="both sides' KV cache type (default: %(default)s; q8_0 needs --flash on)")
    p.add_argument("--cold", action="store_true",
                   help="time both sides' first run: no warm-up (default: both warm up, as "
                        "llama-bench does by default)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "out" / "bench_native.json",
                   help="raw runs as JSON (default: %(default)s)")
    p.add_argument("--merge", type=Path, nargs="+", default=None, metavar="JSON",
                   help="run nothing: print the table of the runs in these --out files together "
                        "(several short runs, e.g. one rep each under a time limit)")
    a = p.parse_args(argv)
    if a.reps < 1 or a.gen_tokens < 1 or a.threads < 1:
        p.error("--reps, --gen-tokens and --threads must be positive")
    if a.cache_type != "f16" and a.flash != "on" and not a.merge:
        p.error(f"--cache-type {a.cache_type} needs --flash on: llama.cpp quantizes its V cache "
                "only with flash attention")
    return a


def run_json(cmd: list[str], what: str, timeout_s: float) -> Any:
    try:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ToolError(f"{what} took longer than {timeout_s:.0f} s: {' '.join(cmd)}") from None
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        raise ToolError(f"{what} exited {done.returncode}: {' '.join(cmd)}\n  " + "\n  ".join(tail))
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        return last_json_object(done.stdout, what)


def llama_rate(bench: Path, model: Path, threads: int, flash: bool, prompt: int, gen: int,
               depth: int, cache_type: str = "f16", warm: bool = True) -> float:
    cmd = [str(bench), "-m", str(model), "-t", str(threads), "-fa", "1" if flash else "0",
           "-ctk", cache_type, "-ctv", cache_type,
           "-p", str(prompt), "-n", str(gen), "-d", str(depth), "-r", "1", "-o", "json"]
    if not warm:
        cmd.append("--no-warmup")
    rows = run_json(cmd, "llama-bench", 3600)
    if not isinstance(rows, list) or not rows or "avg_ts" not in rows[0]:
        raise ToolError(f"llama-bench printed no result row: {' '.join(cmd)}")
    return float(rows[0]["avg_ts"])


def stretch_rates(a: argparse.Namespace, prompt: int, manifest: Path) -> tuple[float, float]:
    cmd = [str(a.stretch), "bench", "-m", str(manifest), "--model", str(a.model),
           "--prompt-tokens", str(prompt), "--gen-tokens", str(a.gen_tokens), "--reps", "1",
           "--threads", str(a.threads), "--json"]
    if not a.cold:
        cmd.append("--warmup")
    d = run_json(cmd, "stretch bench", 3600)
    return float(d["prefill_tok_s"][0]), float(d["decode_tok_s"][0])


def stats(v: list[float]) -> tuple[float, float, float]:
    return min(v), statistics.median(v), max(v)


def fmt(v: list[float]) -> str:
    lo, med, hi = stats(v)
    return f"{med:,.1f} ({lo:,.1f}-{hi:,.1f})"


def cache_manifest(manifest: Path, cache_type: str, tmp: Path) -> Path:
    """The manifest stretch runs: a child of --manifest that sets `kv-type`
    to llama-bench's cache type, f16 included, so that a manifest setting
    another type cannot set stretch's cache against llama.cpp's f16."""
    child = tmp / f"kv-{cache_type}.yaml"
    child.write_text(f"format: 1\nextends: {manifest.resolve()}\nkv-type: {cache_type}\n",
                     encoding="utf-8")
    return child


# How the runs of a raw file started (its "warmup" field).
WARM = "both warm"
COLD = "both cold"
LEGACY = "stretch cold, llama.cpp warm"  # files from before --cold


def merge_runs(paths: list[Path]) -> tuple[list[tuple], int, int, int, str, str]:
    """The table rows of several raw files, runs of one prompt length pooled."""
    pooled: dict[int, dict[str, Any]] = {}
    first: dict[str, Any] | None = None  # the first file's settings, which the others must match
    for path in paths:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            runs = raw["runs"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ToolError(f"{path}: not a bench_native --out file ({e})") from None
        # (Files from before --cache-type measured f16 caches.)
        have = {"threads": raw.get("threads"), "gen_tokens": raw.get("gen_tokens"),
                "cache_type": raw.get("cache_type", "f16"), "warmup": raw.get("warmup", LEGACY)}
        if first is None:
            first = have
        differ = [f"{k} {have[k]!r} (first file: {first[k]!r})" for k in have
                  if have[k] != first[k]]
        if differ:
            raise ToolError(f"{path}: runs do not pool, they differ from the first "
                            f"file's: {', '.join(differ)}")
        for r in runs:
            p = pooled.setdefault(int(r["prompt"]), {"sp": [], "sd": [], "lp": {}, "ld": {}})
            p["sp"] += r["stretch_prefill"]
            p["sd"] += r["stretch_decode"]
            for f, v in r["llama_prefill"].items():
                p["lp"].setdefault(f, []).extend(v)
            for f, v in r["llama_decode"].items():
                p["ld"].setdefault(f, []).extend(v)
    rows = []
    reps = 0
    for prompt in sorted(pooled):
        p = pooled[prompt]
        reps = max(reps, len(p["sp"]))
        for f in ("True", "False"):
            if f in p["lp"]:
                rows.append((prompt, f == "True", p["lp"][f], p["sp"], p["ld"][f], p["sd"]))
    first = first or {}
    return (rows, reps, int(first.get("threads") or 0), int(first.get("gen_tokens") or 0),
            first.get("cache_type", "f16"), first.get("warmup", LEGACY))


def print_table(rows: list[tuple], reps: int, threads: int, gen: int, where: str,
                cache_type: str = "f16", warm: str = WARM) -> None:
    print(f"| prompt / depth | flash attn | llama.cpp prefill | stretch prefill | ratio "
          f"| llama.cpp decode | stretch decode | ratio |")
    print("|---:|:-:|---:|---:|---:|---:|---:|---:|")
    for prompt, f, lp, sp, ld, sd in rows:
        print(f"| {prompt:,} | {'on' if f else 'off'} | {fmt(lp)} | {fmt(sp)} | "
              f"{stats(sp)[1] / stats(lp)[1]:.2f}x | {fmt(ld)} | {fmt(sd)} | "
              f"{stats(sd)[1] / stats(ld)[1]:.2f}x |")
    print(f"\ntokens/s, median (min-max) of {reps} interleaved runs, {threads} threads, "
          f"{gen} decode tokens, {cache_type} KV caches, {warm}; raw runs in {where}")


def main() -> int:
    a = parse_args()
    if a.merge:
        rows, reps, threads, gen, cache, warm = merge_runs(a.merge)
        print_table(rows, reps, threads, gen, ", ".join(str(p) for p in a.merge), cache, warm)
        return 0
    check_model(a.model)
    check_stretch(a.stretch)
    bench = llama_bin_dir(a.llama_bin) / "llama-bench"
    if not os.access(bench, os.X_OK):
        raise ToolError(f"no llama-bench at {bench}")
    flashes = {"on": [True], "off": [False], "both": [True, False]}[a.flash]
    raw: dict[str, Any] = {"model": str(a.model), "manifest": str(a.manifest), "threads": a.threads,
                           "gen_tokens": a.gen_tokens, "cache_type": a.cache_type,
                           "warmup": WARM if not a.cold else COLD, "runs": []}
    tmp = tempfile.TemporaryDirectory(prefix="bench_native-")
    manifest = cache_manifest(a.manifest, a.cache_type, Path(tmp.name))
    rows = []
    for prompt in a.prompts:
        st_pre: list[float] = []
        st_dec: list[float] = []
        ll_pre: dict[bool, list[float]] = {f: [] for f in flashes}
        ll_dec: dict[bool, list[float]] = {f: [] for f in flashes}
        for rep in range(a.reps):
            pre, dec = stretch_rates(a, prompt, manifest)
            st_pre.append(pre)
            st_dec.append(dec)
            for f in flashes:
                ll_pre[f].append(llama_rate(bench, a.model, a.threads, f, prompt, 0, 0,
                                            a.cache_type, not a.cold))
                ll_dec[f].append(llama_rate(bench, a.model, a.threads, f, 0, a.gen_tokens, prompt,
                                            a.cache_type, not a.cold))
            print(f"{PROG}: P={prompt} rep {rep + 1}/{a.reps}: stretch {pre:.1f}/{dec:.1f} tok/s", file=sys.stderr)
        raw["runs"].append({"prompt": prompt, "stretch_prefill": st_pre, "stretch_decode": st_dec,
                            "llama_prefill": {str(f): ll_pre[f] for f in flashes},
                            "llama_decode": {str(f): ll_dec[f] for f in flashes}})
        for f in flashes:
            rows.append((prompt, f, ll_pre[f], st_pre, ll_dec[f], st_dec))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(raw, indent=1) + "\n", encoding="utf-8")
    tmp.cleanup()
    print_table(rows, a.reps, a.threads, a.gen_tokens, str(a.out), a.cache_type,
                COLD if a.cold else WARM)
    return 0


if __name__ == "__main__":
    run_main(main, PROG)
