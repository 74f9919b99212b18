#!/usr/bin/env python3
"""Greedy continuations of every prompt in tools/prompts.txt on two backends
(default: cpu and opencl), compared token for token; or, with --ppl, the
perplexity of a text under each manifest on both.

Usage: compare_backends.py [--stretch build/bin/stretch] [-m manifests/greedy.yaml]
                           [--tokens 64] [--backends cpu opencl] [--device D]
                           [--json OUT.json]
       compare_backends.py --ppl TEXT [--length 2048] [--max-rel 0.005]
                           -m MANIFEST [MANIFEST ...] [--json OUT.json]

Prints one line per prompt (equal, or the first position where they part)
and the count of equal continuations; exit 1 when any differs. The prompts
are used raw (no chat template), as tools/compare_llama.py uses them.
With --ppl: one line per manifest (`stretch eval ppl` of one window of
--length tokens on each backend, and their relative difference); exit 1
when one differs by more than --max-rel.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def read_prompts(path: Path) -> list[str]:
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(json.loads(line))
    return out


def cpu_ticks(pid: int) -> tuple[int, str] | None:
    """(utime + stime of every thread, state) of a Linux process, or None."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(f[11]) + int(f[12]), f[0]


def run_once(cmd: list[str], stall: float, tries: int) -> subprocess.CompletedProcess:
    """The run, started again when it stalls: PoCL's pthread device has been
    seen to hang for good inside a condition-variable broadcast on a heavily
    loaded machine (every thread asleep in a futex wait, no CPU time used).
    A run that is only starved of CPU (runnable, state R) is left alone; one
    asleep without using CPU for `stall` seconds is killed and run anew."""
    for attempt in range(tries):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        last, idle = None, 0.0
        while True:
            try:
                out, err = proc.communicate(timeout=5)
                return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
            except subprocess.TimeoutExpired:
                pass
            now = cpu_ticks(proc.pid)
            idle = idle + 5 if now and last and now[0] == last[0] and now[1] == "S" else 0.0
            last = now
            if idle >= stall:
                proc.kill()
                proc.communicate()
                print(f"compare_backends: asleep without CPU for {stall:.0f} s (attempt "
                      f"{attempt + 1} of {tries}), started again: {' '.join(cmd[:10])}",
                      file=sys.stderr, flush=True)
                break
    sys.exit(f"compare_backends: {' '.join(cmd[:8])} stalled {tries} times")


def continuation(stretch: str, manifest: str, prompt: str, tokens: int, backend: str,
                 device: str | None, stall: float = 120, tries: int = 3) -> list[int]:
    cmd = [stretch, "run", "-m", manifest, "--json", "--ignore-eos", "--max-tokens",
           str(tokens), "--backend", backend]
    if device is not None and backend != "cpu":
        cmd += ["--device", device]
    res = run_once(cmd + [prompt], stall, tries)
    if res.returncode != 0:
        sys.exit(f"compare_backends: {' '.join(cmd[:8])} failed ({res.returncode}): "
                 f"{res.stderr.strip()}")
    return json.loads(res.stdout.strip().splitlines()[-1])["tokens"]


def perplexity(stretch: str, manifest: str, text: str, length: int, backend: str,
               device: str | None, out_dir: Path, stall: float) -> float:
    """`stretch eval ppl` of one window of `length` tokens (a fresh run)."""
    cmd = [stretch, "eval", "ppl", "-m", manifest, "--backend", backend, "--length",
           str(length), "--windows", "1", "--json", "--fresh", "--out", str(out_dir)]
    if device is not None and backend != "cpu":
        cmd += ["--device", device]
    res = run_once(cmd + [text], stall, 3)
    if res.returncode != 0:
        sys.exit(f"compare_backends: {' '.join(cmd)} failed ({res.returncode}): "
                 f"{res.stderr.strip()}")
    return float(json.loads(res.stdout.strip().splitlines()[-1])["ppl"])


def compare_ppl(a: argparse.Namespace) -> int:
    rows, worst = [], 0.0
    for m in a.manifest:
        ppl = []
        for b in a.backends:
            out = Path(a.work) / f"{Path(m).stem}-{b.replace(':', '_')}"
            ppl.append(perplexity(a.stretch, m, a.ppl, a.length, b, a.device, out, a.stall))
        rel = abs(ppl[1] - ppl[0]) / ppl[0]
        worst = max(worst, rel)
        rows.append({"manifest": m, a.backends[0]: ppl[0], a.backends[1]: ppl[1],
                     "relative_difference": rel})
        print(f"{m} {a.length} {a.backends[0]} {ppl[0]:.6f} {a.backends[1]} {ppl[1]:.6f} "
              f"rel {rel:.3e}", flush=True)
    if a.json:
        a.json.write_text(json.dumps({"length": a.length, "manifests": rows}, indent=1) + "\n")
    print(f"compare_backends: largest relative difference {worst:.3e} over {len(rows)} "
          f"manifests (bound {a.max_rel:g})")
    return 0 if worst <= a.max_rel else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stretch", default=str(REPO_ROOT / "build" / "bin" / "stretch"))
    p.add_argument("-m", "--manifest", nargs="+",
                   default=[str(REPO_ROOT / "manifests" / "greedy.yaml")],
                   help="the manifest (with --ppl: one or more)")
    p.add_argument("--prompts", type=Path, default=REPO_ROOT / "tools" / "prompts.txt")
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--backends", nargs=2, default=["cpu", "opencl"])
    p.add_argument("--device", default=None)
    p.add_argument("--limit", type=int, default=0, help="only the first N prompts")
    p.add_argument("--json", type=Path, default=None, help="write the per-prompt results here")
    p.add_argument("--stall", type=float, default=120,
                   help="seconds a run may sleep without using CPU before it is started "
                        "again (3 tries)")
    p.add_argument("--ppl", default=None, metavar="TEXT",
                   help="compare the perplexity of this text instead")
    p.add_argument("--length", type=int, default=2048, help="--ppl: tokens in the window")
    p.add_argument("--max-rel", type=float, default=0.005,
                   help="--ppl: the largest relative difference that passes")
    p.add_argument("--work", default=str(REPO_ROOT / "out" / "compare_ppl"),
                   help="--ppl: where `stretch eval ppl` keeps its runs")
    a = p.parse_args()
    if a.ppl:
        return compare_ppl(a)
    if len(a.manifest) != 1:
        p.error("one manifest compares continuations (several only with --ppl)")
    a.manifest = a.manifest[0]
    prompts = read_prompts(a.prompts)
    if a.limit:
        prompts = prompts[: a.limit]
    rows, equal = [], 0
    for i, prompt in enumerate(prompts):
        x = continuation(a.stretch, a.manifest, prompt, a.tokens, a.backends[0], a.device,
                         a.stall)
        y = continuation(a.stretch, a.manifest, prompt, a.tokens, a.backends[1], a.device,
                         a.stall)
        first = next((k for k in range(min(len(x), len(y))) if x[k] != y[k]),
                     None if len(x) == len(y) else min(len(x), len(y)))
        equal += first is None
        rows.append({"prompt": i, "equal": first is None, "first_difference": first})
        print(f"{i:2d} {'equal' if first is None else f'differs from token {first}'}",
              flush=True)
    print(f"compare_backends: {equal}/{len(prompts)} continuations of {a.tokens} tokens equal "
          f"({a.backends[0]} vs {a.backends[1]})")
    if a.json:
        a.json.write_text(json.dumps({"equal": equal, "prompts": rows}, indent=1) + "\n")
    return 0 if equal == len(prompts) else 1


if __name__ == "__main__":
    sys.exit(main())
