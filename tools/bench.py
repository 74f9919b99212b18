#!/usr/bin/env python3
"""Benchmark stretch against llama.cpp (llama-cpp-python) on the same GGUF.

Both sides use the same thread count, prompt length and generation length,
and every repetition runs in a fresh process:
  llama.cpp  one worker subprocess of this script per repetition: load time
             (Llama() construction), prefill tok/s (one eval() of the whole
             prompt after reset), decode tok/s (argmax + eval() of one token,
             --gen-tokens times).
  stretch    `stretch bench --reps 1` per repetition (interleaved with the
             llama.cpp runs so background load hits both alike), or one
             `stretch bench --reps R` with --no-interleave.
Peak RSS of both is the child's ru_maxrss from wait4(), the same measure for
both; for llama.cpp the RSS of the Python interpreter with its imports
(measured before the model is loaded) is also reported, and subtracted in
"net".  See docs/comparison.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib.common import (DEFAULT_MODEL, DEFAULT_STRETCH, REPO_ROOT, Stretch, ToolError, check_file,  # noqa: E402
                        check_model, describe_exit, last_json_object, require_peers, run_main, run_measured,
                        stderr_tail, warn_if_other_model)

PROG = "bench"

# Any English text works for a speed test; it is repeated to the length asked.
FILLER = ("The history of science is the study of the development of science and scientific knowledge, "
          "including both the natural and social sciences. Science is a body of empirical, theoretical, "
          "and practical knowledge about the natural world, produced by scientists who emphasize the "
          "observation, explanation, and prediction of real-world phenomena. ")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tools/bench.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="GGUF for llama.cpp (default: %(default)s)")
    p.add_argument("--stretch", type=Path, default=DEFAULT_STRETCH, help="stretch binary (default: %(default)s)")
    p.add_argument("--manifest", type=Path, default=REPO_ROOT / "manifests" / "default.yaml",
                   help="manifest for `stretch bench` (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="threads for both sides (default: %(default)s)")
    p.add_argument("--reps", type=int, default=3, help="repetitions per side (default: %(default)s)")
    p.add_argument("--prompt-tokens", type=int, default=512, help="prefill length (default: %(default)s)")
    p.add_argument("--gen-tokens", type=int, default=128, help="decode length (default: %(default)s)")
    p.add_argument("--llama-only", action="store_true", help="measure only llama.cpp (no stretch binary needed)")
    p.add_argument("--no-interleave", action="store_true",
                   help="run stretch once with --reps R after all llama.cpp reps instead of interleaving")
    p.add_argument("--warmup", action="store_true",
                   help="llama.cpp: evaluate 8 tokens and reset before the timed prefill (off by default: "
                        "the timed prefill is the first compute of a fresh process, as in `stretch bench`)")
    p.add_argument("--extra-bufts", choices=("auto", "on", "off"), default="auto",
                   help="llama.cpp extra buffer types (weight repacking, AMX); auto = probe in a subprocess "
                        "and turn off if it crashes (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per subprocess (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    p.add_argument("--out", type=Path, help="write the JSON report here (the markdown still goes to stdout)")
    p.add_argument("--llama-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--worker-extra-bufts", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    for name in ("threads", "reps", "prompt_tokens", "gen_tokens"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return a


# ---------------------------------------------------------------- worker

def vm_kb(field: str) -> float:
    """VmRSS / VmHWM of this process in kB (0 when /proc is unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def llama_worker(a: argparse.Namespace) -> int:
    """One repetition of the llama.cpp side; prints one JSON object."""
    import numpy as np
    from lib.llama_side import load_llama, next_logits, tokenize
    import llama_cpp  # noqa: F401  (import cost belongs to the baseline)
    baseline_kb = vm_kb("VmRSS")
    n_ctx = max(2048, a.prompt_tokens + a.gen_tokens + 16)
    t0 = time.perf_counter()
    llm = load_llama(a.model, n_ctx=n_ctx, threads=a.threads, extra_bufts=bool(a.worker_extra_bufts))
    load_s = time.perf_counter() - t0

    base = tokenize(llm, FILLER)
    prompt = (base * (a.prompt_tokens // len(base) + 1))[: a.prompt_tokens]
    if a.warmup:
        llm.reset()
        llm.eval(prompt[:8])
        next_logits(llm)
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt)
    logits = next_logits(llm)
    prefill_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    for _ in range(a.gen_tokens):
        llm.eval([int(np.argmax(logits))])
        logits = next_logits(llm)
    decode_s = time.perf_counter() - t0
    print(json.dumps({"load_s": load_s, "prefill_s": prefill_s, "prefill_tok_s": a.prompt_tokens / prefill_s,
                      "decode_s": decode_s, "decode_tok_s": a.gen_tokens / decode_s,
                      "baseline_rss_mb": baseline_kb / 1024.0, "vm_hwm_mb": vm_kb("VmHWM") / 1024.0}))
    return 0


# ---------------------------------------------------------------- parent

def run_llama_rep(a: argparse.Namespace, extra_bufts: bool) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--llama-worker", "--model", str(a.model),
           "--threads", str(a.threads), "--prompt-tokens", str(a.prompt_tokens),
           "--gen-tokens", str(a.gen_tokens), "--worker-extra-bufts", str(int(extra_bufts))]
    if a.warmup:
        cmd.append("--warmup")
    res = run_measured(cmd, a.timeout)
    if res.returncode != 0:
        raise ToolError(f"llama.cpp worker failed ({describe_exit(res.returncode)}): {stderr_tail(res.stderr)}")
    obj = last_json_object(res.stdout, "llama.cpp worker")
    obj["peak_rss_mb"] = res.max_rss_mb
    obj["peak_rss_net_mb"] = res.max_rss_mb - obj["baseline_rss_mb"]
    return obj


def run_stretch(a: argparse.Namespace, stretch: Stretch, reps: int) -> dict[str, Any]:
    obj, res = stretch.bench(a.manifest, a.prompt_tokens, a.gen_tokens, a.threads, reps)
    obj["peak_rss_mb_self"] = obj.get("peak_rss_mb")
    obj["peak_rss_mb"] = res.max_rss_mb
    return obj


def summary(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "n": len(values)}


# metric key, label, higher is better
METRICS = [("load_s", "load time (s)", False),
           ("prefill_tok_s", "prefill (tok/s)", True),
           ("decode_tok_s", "decode (tok/s)", True),
           ("peak_rss_mb", "peak RSS (MB)", False)]


def build_report(a, llama_reps: list[dict], stretch_runs: list[dict], env: dict) -> dict[str, Any]:
    report: dict[str, Any] = {"environment": env, "llama_cpp": {"reps": llama_reps}, "metrics": {}}
    llama_sum = {k: summary([r[k] for r in llama_reps]) for k, _, _ in METRICS}
    llama_sum["peak_rss_net_mb"] = summary([r["peak_rss_net_mb"] for r in llama_reps])
    llama_sum["baseline_rss_mb"] = summary([r["baseline_rss_mb"] for r in llama_reps])
    report["llama_cpp"]["summary"] = llama_sum
    stretch_sum = None
    if stretch_runs:
        stretch_vals: dict[str, list[float]] = {k: [] for k, _, _ in METRICS}
        for run in stretch_runs:
            for k in ("load_s", "prefill_tok_s", "decode_tok_s"):
                stretch_vals[k] += [float(v) for v in run[k]]
            stretch_vals["peak_rss_mb"].append(run["peak_rss_mb"])
        stretch_sum = {k: summary(v) for k, v in stretch_vals.items()}
        report["stretch"] = {"runs": stretch_runs, "summary": stretch_sum}
    for key, label, higher in METRICS:
        m: dict[str, Any] = {"label": label, "higher_is_better": higher, "llama_cpp": llama_sum[key]}
        if stretch_sum:
            s, l = stretch_sum[key]["median"], llama_sum[key]["median"]
            m["stretch"] = stretch_sum[key]
            m["stretch_over_llama"] = s / l if l else None
            m["llama_over_stretch"] = l / s if s else None
            # >1 means stretch is better, whichever way the metric points.
            m["stretch_advantage"] = m["stretch_over_llama"] if higher else m["llama_over_stretch"]
            m["better"] = "stretch" if (s > l) == higher and s != l else ("tie" if s == l else "llama.cpp")
        report["metrics"][key] = m
    return report


def fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:.0f}"


def render_markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = ["# stretch vs llama.cpp: benchmark", "",
             f"- model: `{env['model']}`",
             f"- {env['threads']} threads, prompt {env['prompt_tokens']} tokens, decode {env['gen_tokens']} tokens, "
             f"{env['reps']} reps per side, every rep a fresh process"
             + ("" if env["stretch"] is None else ("; stretch reps interleaved" if env["interleave"] else "")),
             f"- llama-cpp-python {env['llama_cpp_python']}; {env['extra_bufts']}"
             + ("; warm-up eval before prefill" if env["warmup"] else ""),
             f"- stretch: {env['stretch'] or '(not run: --llama-only)'}",
             f"- load average before / after: {env['loadavg_before']} / {env['loadavg_after']}",
             ""]
    # Only the load before the run: during it, the benchmark itself adds
    # about --threads to the load average.
    busy = env["loadavg_before"][0]
    if env["cpu_count"] and busy > 0.5 * env["cpu_count"]:
        lines += [f"**Warning:** the machine was busy before the run (1-minute load average {busy} on "
                  f"{env['cpu_count']} CPUs); numbers are noisy.", ""]
    noisy = [f"{side} {m['label']}" for m in report["metrics"].values() if m["higher_is_better"]
             for side in ("llama_cpp", "stretch") if side in m and m[side]["min"] > 0
             and m[side]["max"] / m[side]["min"] > 1.5]
    if noisy:
        lines += [f"**Warning:** max/min over reps above 1.5 for {', '.join(noisy)}: something else was "
                  "competing for the CPUs; prefer the medians, or rerun with more --reps.", ""]
    lines += ["min / median / max over reps.", ""]
    has_s = "stretch" in report
    if has_s:
        lines += ["| metric | llama.cpp | stretch | stretch/llama | llama/stretch | better |",
                  "|---|---|---|---|---|---|"]
    else:
        lines += ["| metric | llama.cpp |", "|---|---|"]
    for key, m in report["metrics"].items():
        l = m["llama_cpp"]
        lcell = f"{fmt(l['min'])} / **{fmt(l['median'])}** / {fmt(l['max'])}"
        if not has_s:
            lines.append(f"| {m['label']} | {lcell} |")
            continue
        s = m["stretch"]
        scell = f"{fmt(s['min'])} / **{fmt(s['median'])}** / {fmt(s['max'])}"
        lines.append(f"| {m['label']} | {lcell} | {scell} | {fmt(m['stretch_over_llama'])} | "
                     f"{fmt(m['llama_over_stretch'])} | {m['better']} |")
    net = report["llama_cpp"]["summary"]["peak_rss_net_mb"]
    base = report["llama_cpp"]["summary"]["baseline_rss_mb"]
    lines += ["",
              f"llama.cpp peak RSS includes the Python interpreter with numpy and llama_cpp imported "
              f"(median {fmt(base['median'])} MB before the model is loaded); without it: "
              f"{fmt(net['min'])} / **{fmt(net['median'])}** / {fmt(net['max'])} MB.",
              "Ratios are of medians. tok/s: stretch/llama > 1 means stretch is faster. "
              "Load time and RSS: lower is better, so llama/stretch > 1 means stretch is better."]
    return "\n".join(lines) + "\n"


def main() -> int:
    a = parse_args()
    require_peers("numpy", "llama_cpp")
    if a.llama_worker:
        return llama_worker(a)
    import llama_cpp
    from lib.llama_side import resolve_extra_bufts
    check_model(a.model)
    stretch = None
    if not a.llama_only:
        stretch = Stretch(a.stretch, a.timeout)
        check_file(a.manifest, "bench manifest")
        warn_if_other_model(a.manifest, a.model, PROG)
    extra_bufts, extra_note = resolve_extra_bufts(a.extra_bufts, a.model)
    env = {"model": str(a.model), "stretch": str(a.stretch) if stretch else None,
           "manifest": str(a.manifest) if stretch else None, "threads": a.threads, "reps": a.reps,
           "prompt_tokens": a.prompt_tokens, "gen_tokens": a.gen_tokens, "interleave": not a.no_interleave,
           "warmup": a.warmup, "llama_cpp_python": getattr(llama_cpp, "__version__", "?"),
           "extra_bufts": extra_note, "python": platform.python_version(), "machine": platform.machine(),
           "cpu_count": os.cpu_count(), "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    llama_reps: list[dict] = []
    stretch_runs: list[dict] = []
    for r in range(a.reps):
        print(f"{PROG}: llama.cpp rep {r + 1}/{a.reps}", file=sys.stderr)
        llama_reps.append(run_llama_rep(a, extra_bufts))
        if stretch and not a.no_interleave:
            print(f"{PROG}: stretch rep {r + 1}/{a.reps}", file=sys.stderr)
            stretch_runs.append(run_stretch(a, stretch, 1))
    if stretch and a.no_interleave:
        print(f"{PROG}: stretch, {a.reps} reps", file=sys.stderr)
        stretch_runs.append(run_stretch(a, stretch, a.reps))
    env["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    report = build_report(a, llama_reps, stretch_runs, env)
    js = json.dumps(report, indent=1)
    print(js if a.json else render_markdown(report), end="\n" if a.json else "")
    if a.out:
        try:
            a.out.parent.mkdir(parents=True, exist_ok=True)
            a.out.write_text(js + "\n", encoding="utf-8")
        except OSError as e:
            raise ToolError(f"cannot write {a.out}: {e.strerror}") from None
    return 0


if __name__ == "__main__":
    run_main(main, PROG)
