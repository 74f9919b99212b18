#!/usr/bin/env python3
"""A long conversation through `stretch chat`: what each turn computes and
how long it takes, as the conversation outgrows the context.

Pipes --turns user turns (the lines of --questions, cycled) into
`stretch chat --json` for each manifest given, and reads the per-turn JSON
lines back. For each run it prints, as a Markdown table for
docs/RESULTS.md: the turns answered, the tokens prefilled (a turn's prompt
less what came from the cache, summed), the length of the conversation the
model has been fed by the last turn, how many times old turns were dropped
(stderr's "outgrew" notes), the median prefill seconds of the last ten
turns, and the whole command's wall seconds. --stretch may be given twice
or more (BIN or LABEL=BIN) to set builds side by side; --out keeps every
turn's JSON.

--serve runs the conversation through `stretch serve` instead (the
manifest's directory served, --parallel 2), as an OpenAI client does: each
turn sends the whole conversation to /v1/chat/completions, while a second
client keeps the server busy with completions of --load-tokens tokens, one
after another. Its rows count what `usage` says came from the cache: under
steady load the engine is never idle, so what it prefills again between
turns must happen beside the running requests.

--llama adds the peer: the natively built llama.cpp's
`llama-completion -cnv --context-shift` (tools/build_llama_native.sh), fed
the same turns with the same context, answer cap, greedy sampling and
threads, flash attention on and off (a row each). It also goes on from
each turn without rendering the conversation again, and when its context
fills it discards half of it.
Its row takes the tokens prefilled and generated from its own timing
lines; it prints no per-turn times. The two sides' answers differ (each
renders the template its own way), so set the wall seconds a generated
token beside each other, not the wall seconds.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib.common import (DEFAULT_MODEL, REPO_ROOT, ToolError, peer_tool, post_json,  # noqa: E402
                        run_main, stretch_serve)

PROG = "bench_chat"
QUESTIONS = [
    "My name is Ada and I live in Lisbon. Tell me one fact about the sea.",
    "What is the capital of France? Answer in one sentence.",
    "Write two sentences about autumn.",
    "Name three fruits and say what colour each one is.",
    "Give me a short tip for learning to cook.",
    "Explain in two sentences what a compiler does.",
    "Describe a quiet morning in a small village.",
    "What should I pack for a weekend of hiking?",
]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("-m", "--manifest", action="append", required=True,
                   help="strategy manifest (repeatable)")
    p.add_argument("--stretch", action="append", default=None,
                   help="the stretch binary, BIN or LABEL=BIN (repeatable; "
                        "default build/bin/stretch)")
    p.add_argument("--turns", type=int, default=40, help="user turns (default 40)")
    p.add_argument("--questions", type=Path,
                   help="a file of user turns, one a line, cycled (default: eight built in)")
    p.add_argument("--context", type=int, help="--context for chat (default: the manifest's)")
    p.add_argument("--max-tokens", type=int, default=64, help="answer cap (default 64)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, help="every turn's JSON, per run")
    p.add_argument("--serve", action="store_true",
                   help="through stretch serve, beside a client that keeps it busy")
    p.add_argument("--load-tokens", type=int, default=128,
                   help="--serve: tokens of each of the busy client's completions (default 128)")
    p.add_argument("--llama", action="store_true",
                   help="add llama.cpp's llama-completion -cnv as the peer")
    p.add_argument("--llama-bin", type=Path, default=None,
                   help="directory holding llama-completion (default: build it with "
                        "tools/build_llama_native.sh)")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                   help="the GGUF llama.cpp loads (default: %(default)s; give the one the "
                        "manifests name)")
    a = p.parse_args(argv)
    if a.turns < 1:
        p.error("--turns must be at least 1")
    if a.llama and not a.context:
        p.error("--llama needs --context, so that both sides have the same")
    if a.serve and (a.llama or a.context):
        p.error("--serve takes the manifests' contexts and no peer (drop --llama, --context)")
    return a


def binaries(given: list[str] | None) -> list[tuple[str, Path]]:
    out = []
    for item in given or [str(REPO_ROOT / "build" / "bin" / "stretch")]:
        label, _, path = item.rpartition("=")
        binary = Path(path)
        if not binary.is_file():
            raise ToolError(f"{binary}: no such stretch binary (build it, or give --stretch)")
        out.append((label or "stretch", binary))
    return out


def questions(path: Path | None) -> list[str]:
    if path is None:
        return QUESTIONS
    try:
        lines = [l.strip() for l in path.read_text(encoding="utf-8").splitlines()]
    except OSError as e:
        raise ToolError(f"{path}: {e.strerror}") from e
    lines = [l for l in lines if l and not l.startswith("/")]
    if not lines:
        raise ToolError(f"{path}: no questions in it (one a line)")
    return lines


def run_chat(binary: Path, manifest: str, a: argparse.Namespace, text: str) -> dict:
    cmd = [str(binary), "chat", "-m", manifest, "--json", "--seed", "1",
           "--max-tokens", str(a.max_tokens), "--threads", str(a.threads)]
    if a.context:
        cmd += ["--context", str(a.context)]
    t0 = time.monotonic()
    done = subprocess.run(cmd, input=text, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        raise ToolError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()[-400:]}")
    turns = []
    for line in done.stdout.splitlines():
        try:
            turns.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ToolError(f"chat printed a line that is not JSON: {line[:120]!r}") from e
    return {"wall_s": wall, "turns": turns, "dropped": done.stderr.count("outgrew the context")}


def run_llama(tool: Path, a: argparse.Namespace, text: str, flash: str) -> dict:
    if not a.model.is_file():
        raise ToolError(f"{a.model}: no such model (tools/fetch_model.sh, or give --model)")
    cmd = [str(tool), "-m", str(a.model), "-cnv", "--context-shift", "--temp", "0", "-s", "1",
           "-c", str(a.context), "-n", str(a.max_tokens), "-t", str(a.threads), "-fa", flash]
    t0 = time.monotonic()
    done = subprocess.run(cmd, input=text, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        raise ToolError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()[-400:]}")
    prompt = re.search(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens", done.stderr)
    gen = re.search(r"\beval time =\s*([\d.]+) ms /\s*(\d+) runs", done.stderr)
    if not prompt or not gen:
        raise ToolError("llama-completion printed no timing lines (prompt eval, eval)")
    return {"wall_s": wall, "prefilled": int(prompt.group(2)), "generated": int(gen.group(2)),
            "prefill_s": float(prompt.group(1)) / 1000, "decode_s": float(gen.group(1)) / 1000}


def run_serve(binary: Path, manifest: str, a: argparse.Namespace, qs: list[str]) -> dict:
    """The turns through the server's chat endpoint, beside a busy client."""
    model = Path(manifest).stem
    stop = threading.Event()
    failed: list[str] = []

    def busy(url: str) -> None:
        while not stop.is_set():
            try:
                post_json(url + "/v1/completions", {"model": model, "prompt": "Once upon a time",
                                                    "max_tokens": a.load_tokens})
            except (ToolError, OSError) as e:
                failed.append(str(e))
                return

    t0 = time.monotonic()
    turns, messages = [], []
    with stretch_serve(binary, "--manifests", str(Path(manifest).parent), "--parallel", "2",
                       "--threads", str(a.threads)) as url:
        load = threading.Thread(target=busy, args=(url,))
        try:
            load.start()
            time.sleep(0.2)  # the busy client's first request is in
            for i in range(a.turns):
                messages.append({"role": "user", "content": qs[i % len(qs)]})
                t = time.monotonic()
                r = post_json(url + "/v1/chat/completions",
                              {"model": model, "messages": messages, "max_tokens": a.max_tokens,
                               "seed": 1, "temperature": 0})
                usage = r["usage"]
                turns.append({"prompt_tokens": usage["prompt_tokens"],
                              "cached_tokens": usage["prompt_tokens_details"]["cached_tokens"],
                              "generated_tokens": usage["completion_tokens"],
                              "seconds": time.monotonic() - t})
                messages.append({"role": "assistant",
                                 "content": r["choices"][0]["message"]["content"]})
        finally:
            stop.set()
            load.join()
    if failed:
        raise ToolError(f"the busy client failed: {failed[0]}")
    return {"wall_s": time.monotonic() - t0, "turns": turns}


def serve_row(label: str, manifest: str, run: dict, n_turns: int) -> str:
    t = run["turns"]
    cached = sum(x["cached_tokens"] for x in t)
    prompt = sum(x["prompt_tokens"] for x in t)
    tail = statistics.median(x["seconds"] for x in t[-10:])
    return (f"| {label} | {manifest} | {len(t)}/{n_turns} | {prompt - cached:,} | {cached:,} "
            f"| {sum(x['generated_tokens'] for x in t):,} | {tail * 1000:.0f} "
            f"| {run['wall_s']:.1f} |")


def summary(run: dict) -> dict:
    turns = [t for t in run["turns"] if "error" not in t]
    if not turns:
        raise ToolError("no turn was answered")
    last = turns[-1]
    tail = [t["timings"]["prefill_s"] for t in turns[-10:]]
    return {"answered": len(turns),
            "prefilled": sum(t["prompt_tokens"] - t["cached_tokens"] for t in turns),
            "generated": sum(t["generated_tokens"] for t in turns),
            "prefill_s": sum(t["timings"]["prefill_s"] for t in turns),
            # the first token of an answer comes with the prefill
            "decoded": sum(max(t["generated_tokens"] - 1, 0) for t in turns),
            "decode_s": sum(t["timings"]["decode_s"] for t in turns),
            "fed": last["prompt_tokens"] + last["generated_tokens"],
            "dropped": run["dropped"],
            "prefill_tail_s": statistics.median(tail),
            "wall_s": run["wall_s"]}


def rate(tokens: int, seconds: float) -> str:
    return f"{tokens / seconds:,.0f}" if seconds > 0 else ""


def serve_table(a: argparse.Namespace, bins, qs: list[str]):
    rows, raw = [], {}
    for manifest in a.manifest:
        for label, binary in bins:
            run = run_serve(binary, manifest, a, qs)
            raw[f"{label} {manifest}"] = run
            rows.append(serve_row(label, manifest, run, a.turns))
    title = (f"{a.turns} turns through stretch serve beside a busy client "
             f"({a.load_tokens}-token completions), --max-tokens {a.max_tokens}, "
             f"{a.threads} threads")
    header = ["build", "manifest", "turns answered", "tokens prefilled", "tokens from the cache",
              "tokens generated", "ms a turn, last 10 (median)", "wall s"]
    return title, header, rows, raw


def chat_table(a: argparse.Namespace, bins, text: str):
    rows, raw = [], {}
    for manifest in a.manifest:
        for label, binary in bins:
            run = run_chat(binary, manifest, a, text)
            s = summary(run)
            raw[f"{label} {manifest}"] = run
            rows.append(f"| {label} | {manifest} | {s['answered']}/{a.turns} | {s['prefilled']:,} "
                        f"| {s['generated']:,} | {s['fed']:,} | {s['dropped']} "
                        f"| {s['prefill_tail_s'] * 1000:.1f} "
                        f"| {rate(s['prefilled'], s['prefill_s'])} "
                        f"| {rate(s['decoded'], s['decode_s'])} | {s['wall_s']:.1f} "
                        f"| {s['wall_s'] * 1000 / max(s['generated'], 1):.1f} |")
    tool = peer_tool(a.llama_bin, "llama-completion") if a.llama else None
    for flash in ("on", "off") if tool else ():
        run = run_llama(tool, a, text, flash)
        raw[f"llama.cpp -fa {flash}"] = run
        rows.append(f"| llama.cpp | llama-completion -cnv --context-shift -fa {flash} | "
                    f"| {run['prefilled']:,} "
                    f"| {run['generated']:,} | {run['prefilled'] + run['generated']:,} | | "
                    f"| {rate(run['prefilled'], run['prefill_s'])} "
                    f"| {rate(run['generated'], run['decode_s'])} | {run['wall_s']:.1f} "
                    f"| {run['wall_s'] * 1000 / max(run['generated'], 1):.1f} |")
    title = (f"{a.turns} turns, --max-tokens {a.max_tokens}"
             + (f", --context {a.context}" if a.context else "") + f", {a.threads} threads")
    header = ["build", "manifest", "turns answered", "tokens prefilled", "tokens generated",
              "conversation fed by the last turn", "drops", "prefill ms, last 10 turns (median)",
              "prefill tok/s", "decode tok/s", "wall s", "wall ms a generated token"]
    return title, header, rows, raw


def main() -> int:
    a = parse_args()
    bins = binaries(a.stretch)
    qs = questions(a.questions)
    if a.serve:
        title, header, rows, raw = serve_table(a, bins, qs)
    else:
        text = "".join(qs[i % len(qs)].replace("\\", " ") + "\n" for i in range(a.turns))
        title, header, rows, raw = chat_table(a, bins, text)
    print(title + "\n")
    print("| " + " | ".join(header) + " |")
    print("|---|---|" + "---:|" * (len(header) - 2))
    print("\n".join(rows))
    if a.out:
        a.out.write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    run_main(main, PROG)
