#!/usr/bin/env python3
"""Slot files through the server: `stretch serve --slot-save-path` against
llama.cpp's own `llama-server --slot-save-path`, the same requests.

Each server runs one slot (--parallel 1 / -np 1) with 2 threads. A rep, on
each server in turn:

  fresh    POST /v1/completions with the long prompt, 1 token: the prompt is
           prefilled (the slot was erased before);
  save     POST /slots/0?action=save: the slot's cached prompt to a file;
  erase    POST /slots/0?action=erase;
  restore  POST /slots/0?action=restore: the file back into the slot;
  cached   the same completion again: its prompt comes from the restored slot.

It prints min/median/max wall milliseconds of each step as the client
waits for it, the ratio of the medians (llama.cpp / stretch: above 1,
stretch is faster) and the files' sizes, as a Markdown table for
docs/RESULTS.md; --out keeps the raw runs as JSON. The peer is the
natively built llama-server of tools/build_llama_native.sh.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib.common import (REPO_ROOT, ToolError, add_long_prompt_args,  # noqa: E402
                        long_prompt_inputs, peer_table, run_main)

PROG = "bench_slots"
STEPS = ("fresh", "save", "erase", "restore", "cached")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tools/bench_slots.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_long_prompt_args(p, "llama-server")
    p.add_argument("--reps", type=int, default=5, help="rounds on each server (default: %(default)s)")
    p.add_argument("--port", type=int, default=18530, help="first port to use (default: %(default)s)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "out" / "bench_slots.json",
                   help="raw runs as JSON (default: %(default)s)")
    a = p.parse_args(argv)
    if min(a.reps, a.prompt_chars, a.context) < 1:
        p.error("--reps, --prompt-chars and --context must be positive")
    return a


class Served:
    """A server process on a port, stopped with SIGINT."""

    def __init__(self, cmd: list[str], port: int, log: Path, ready: str):
        self.port = port
        self.log = log
        self.proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            if ready in log.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise ToolError(f"{cmd[0]} did not start: {log.read_text(errors='replace')[-500:]}")

    def post(self, path: str, body: dict) -> tuple[float, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        t0 = time.perf_counter()
        conn.request("POST", path, body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read()
        took = (time.perf_counter() - t0) * 1e3
        conn.close()
        if resp.status != 200:
            raise ToolError(f"POST {path} on port {self.port}: {resp.status} {raw[:300]!r}")
        return took, json.loads(raw)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def rep(server: Served, prompt: str, model: str) -> dict[str, float]:
    """One round of STEPS on a server; milliseconds each."""
    completion = {"model": model, "prompt": prompt, "max_tokens": 1, "temperature": 0}
    times = {}
    server.post("/slots/0?action=erase", {"model": model})
    times["fresh"], _ = server.post("/v1/completions", completion)
    times["save"], _ = server.post("/slots/0?action=save", {"model": model, "filename": "p.bin"})
    times["erase"], _ = server.post("/slots/0?action=erase", {"model": model})
    times["restore"], _ = server.post("/slots/0?action=restore",
                                      {"model": model, "filename": "p.bin"})
    times["cached"], _ = server.post("/v1/completions", completion)
    return times


def table(runs: dict[str, dict[str, list[float]]], sizes: dict[str, int]) -> list[str]:
    """The Markdown rows: each step's median (min-max) ms on both, and the ratio."""
    return peer_table(runs, STEPS, sizes,
                      "| step | llama-server | stretch serve | llama.cpp / stretch |", 0)


def main() -> int:
    a = parse_args()
    server_bin, prompt = long_prompt_inputs(a, "llama-server")
    runs = {side: {step: [] for step in STEPS} for side in ("stretch", "llama")}
    sizes = {}
    with tempfile.TemporaryDirectory(prefix="stretch-slots-") as tmp:
        t = Path(tmp)
        for side in ("stretch", "llama"):
            (t / side).mkdir()
        (t / "manifests").mkdir()
        (t / "manifests" / "greedy.yaml").write_text(
            f"format: 1\nextends: {REPO_ROOT / 'manifests' / 'greedy.yaml'}\nmodel: {a.model.resolve()}\n"
            f"context: {a.context}\n")
        servers = {
            "stretch": Served([str(a.stretch), "serve", "--port", str(a.port), "--manifests",
                               str(t / "manifests"), "--parallel", "1", "--threads", "2",
                               "--slot-save-path", str(t / "stretch")],
                              a.port, t / "stretch.log", "listening"),
            "llama": Served([str(server_bin), "-m", str(a.model), "--port", str(a.port + 1),
                             "-np", "1", "-c", str(a.context), "-t", "2", "-tb", "2",
                             "--no-webui", "--slot-save-path", str(t / "llama")],
                            a.port + 1, t / "llama.log", "listening on"),
        }
        try:
            for r in range(a.reps):
                for side, server in servers.items():
                    for step, ms in rep(server, prompt, "greedy").items():
                        runs[side][step].append(ms)
                print(f"{PROG}: rep {r + 1}/{a.reps} done", file=sys.stderr)
            for side in servers:
                sizes[side] = (t / side / "p.bin").stat().st_size
        finally:
            for server in servers.values():
                server.stop()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"runs": runs, "file_bytes": sizes, "context": a.context,
                                 "prompt_chars": a.prompt_chars}, indent=1) + "\n")
    print(f"\none slot each, 2 threads, {a.reps} rounds; wall milliseconds of each request as "
          f"the client waits, median (min-max)\n")
    print("\n".join(table(runs, sizes)))
    return 0


if __name__ == "__main__":
    run_main(main, PROG)
