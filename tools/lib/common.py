"""Paths, error type and the `stretch` CLI driver used by the peer tools.

Everything that can fail for an expected reason (a missing binary, model or
package, a subprocess that exits non-zero or prints no JSON) raises ToolError
with one line saying what and where; main() functions turn that into a
message on stderr and exit status 2 instead of a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_FILE_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL = REPO_ROOT / "models" / MODEL_FILE_NAME
DEFAULT_STRETCH = REPO_ROOT / "build" / "bin" / "stretch"
PEERS_REQUIREMENTS = "tools/requirements-peers.txt"

# Token ids that end generation, per the `stretch run` contract:
# 2 = <|im_end|>, 0 = <|endoftext|>.
EOS_IDS = frozenset({0, 2})


class ToolError(Exception):
    """An expected failure: reported as one line, never as a traceback."""


def llama_bin_dir(given: Path | None) -> Path:
    """The natively built llama.cpp tools: `given`, or the build of
    tools/build_llama_native.sh (made on first use; its messages pass
    through)."""
    if given is not None:
        return given
    script = REPO_ROOT / "tools" / "build_llama_native.sh"
    done = subprocess.run([str(script)], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise ToolError("tools/build_llama_native.sh failed (its messages are above)")
    return Path(done.stdout.strip().splitlines()[-1])


def add_long_prompt_args(p, peer_tool: str) -> None:
    """The options of a benchmark that sends one long prompt to stretch and
    to a natively built llama.cpp tool: the model, both binaries, the
    prompt's text and the context."""
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                   help="GGUF both sides load (default: %(default)s)")
    p.add_argument("--stretch", type=Path, default=DEFAULT_STRETCH,
                   help="stretch binary (default: %(default)s)")
    p.add_argument("--llama-bin", type=Path, default=None,
                   help=f"directory holding {peer_tool} (default: build it with "
                        "tools/build_llama_native.sh)")
    p.add_argument("--prompt-file", type=Path, default=REPO_ROOT / "tools" / "tokenizer_corpus.txt",
                   help="text the prompt is taken from (default: %(default)s)")
    p.add_argument("--prompt-chars", type=int, default=3000,
                   help="characters of it in the prompt: 1,874 SmolLM2 tokens by default "
                        "(default: %(default)s)")
    p.add_argument("--context", type=int, default=2048, help="both sides' context (default: %(default)s)")


def long_prompt_inputs(a, peer: str) -> tuple[Path, str]:
    """What add_long_prompt_args' options name, checked: the peer tool's
    path (ToolError when missing) and the prompt's text."""
    check_stretch(a.stretch)
    check_model(a.model)
    tool = peer_tool(a.llama_bin, peer)
    return tool, a.prompt_file.read_text(encoding="utf-8")[: a.prompt_chars]


def post_json(url: str, body: dict, timeout: float = 600) -> Any:
    """POST `body` as JSON to `url` and return the JSON answer; an answer
    other than 200 is a ToolError naming the status and what the server
    said."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raise ToolError(f"POST {url}: {e.code}: {e.read()[:300]!r}") from e


@contextlib.contextmanager
def stretch_serve(stretch: Path | str, *args: str) -> Iterator[str]:
    """`stretch serve --port 0 ARGS`, its URL yielded once it listens, and
    stopped (SIGINT) on leaving. Its log goes to a file, quoted when it does
    not start: a pipe nobody reads would fill and stop the server."""
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([str(stretch), "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"listening on (http://[\d.]+:\d+)", line)
        if not m:
            log.seek(0)
            raise ToolError(f"stretch serve did not start: {line.strip()!r} "
                            f"{log.read()[-400:]}")
        yield m.group(1)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        log.close()


def peer_tool(given: Path | None, name: str) -> Path:
    """A natively built llama.cpp tool, or ToolError saying how to get it."""
    path = llama_bin_dir(given) / name
    if not path.exists():
        raise ToolError(f"{path} is missing: tools/build_llama_native.sh builds it")
    return path


def peer_table(runs: dict, rows: Sequence[str], sizes: dict, header: str, digits: int) -> list[str]:
    """A Markdown table of a benchmark against llama.cpp: for each of `rows`,
    runs["llama"][row] and runs["stretch"][row] as median (min-max) with
    `digits` decimals and the ratio of the medians (llama.cpp / stretch:
    above 1, stretch is faster); then both files' sizes. `header` is the
    first row, naming the columns."""
    def fmt(v: list[float]) -> str:
        return f"{statistics.median(v):.{digits}f} ({min(v):.{digits}f}-{max(v):.{digits}f})"

    out = [header, "|---|---:|---:|---:|"]
    for row in rows:
        lm, sm = statistics.median(runs["llama"][row]), statistics.median(runs["stretch"][row])
        out.append(f"| {row} | {fmt(runs['llama'][row])} | {fmt(runs['stretch'][row])} | "
                   f"**{lm / sm:.2f}x** |")
    out.append(f"| file size | {sizes['llama'] / 1e6:.1f} MB | {sizes['stretch'] / 1e6:.1f} MB | |")
    return out


def run_main(main: Callable[[], int], prog: str) -> None:
    """Runs main() and maps ToolError / Ctrl-C to a message and an exit code."""
    try:
        code = main()
    except ToolError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)


def require_peers(*modules: str) -> None:
    """Fails with the install command when a peer package is not importable."""
    missing = []
    for name in modules:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ToolError(
            f"missing Python package(s): {', '.join(missing)}; install them with "
            f"`python3 -m pip install -r {PEERS_REQUIREMENTS}` (from the repository root)")


def check_model(path: Path) -> Path:
    if not path.is_file():
        hint = " (run tools/fetch_model.sh to download it)" if path.name == MODEL_FILE_NAME else ""
        raise ToolError(f"model file not found: {path}{hint}")
    return path


def check_stretch(path: Path) -> Path:
    if not path.is_file():
        raise ToolError(
            f"stretch binary not found: {path} (build it with "
            f"`cmake -S . -B build && cmake --build build -j2`, or pass --stretch PATH)")
    if not os.access(path, os.X_OK):
        raise ToolError(f"stretch binary is not executable: {path}")
    return path


def check_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ToolError(f"{what} not found: {path}")
    return path


def read_json_lines(path: Path, what: str) -> list[str]:
    """Reads a file holding one JSON string per line; '#' lines and blank
    lines are skipped.  Errors name the file and line."""
    check_file(path, what)
    items: list[str] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ToolError(f"{path}: not UTF-8 (byte offset {e.start})") from None
    except OSError as e:
        raise ToolError(f"cannot read {path}: {e.strerror}") from None
    # split on \n only: str.splitlines() would also split inside JSON strings
    # holding a raw U+2028 or U+0085, which json.dumps(ensure_ascii=False) emits.
    for lineno, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as e:
            raise ToolError(f"{path}:{lineno}:{e.colno}: expected a JSON string ({e.msg})") from None
        if not isinstance(value, str):
            raise ToolError(f"{path}:{lineno}:1: expected a JSON string, got {type(value).__name__}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ToolError(f"{path}:{lineno}:1: string holds a lone surrogate, not valid Unicode text") from None
        items.append(value)
    if not items:
        raise ToolError(f"{path}: no entries")
    return items


@dataclass
class ProcResult:
    stdout: str
    stderr: str
    returncode: int
    wall_s: float
    max_rss_mb: float  # ru_maxrss of this child alone, from wait4()


def run_measured(cmd: Sequence[str], timeout_s: float, stdin_path: Path | None = None,
                 env: dict[str, str] | None = None) -> ProcResult:
    """Runs cmd to completion and returns its output, wall time and peak RSS.

    wait4() gives the rusage of this one child (RUSAGE_CHILDREN would be the
    max over every child so far).  Output goes through temporary files so a
    chatty child can never block on a full pipe."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
        try:
            t0 = time.perf_counter()
            try:
                proc = subprocess.Popen(list(cmd), stdin=stdin, stdout=out, stderr=err, env=env)
            except OSError as e:
                raise ToolError(f"cannot run {cmd[0]}: {e.strerror}") from None
            deadline = t0 + timeout_s
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid == proc.pid:
                    break
                if time.perf_counter() > deadline:
                    proc.kill()
                    os.wait4(proc.pid, 0)
                    proc.returncode = -signal.SIGKILL
                    raise ToolError(f"{Path(cmd[0]).name} {' '.join(cmd[1:3])} ... timed out after {timeout_s:.0f} s")
                time.sleep(0.01)
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
        finally:
            if stdin_path:
                stdin.close()
        out.seek(0)
        err.seek(0)
        return ProcResult(out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"),
                          proc.returncode, wall, usage.ru_maxrss / 1024.0)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def last_json_object(text: str, what: str) -> dict[str, Any]:
    """The contract says the JSON object comes at the end of stdout; anything
    printed before it (progress, generated text) is ignored."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                return obj
    # Pretty-printed (multi-line) output: try the whole tail from the last
    # line that opens an object at column 0.
    start = text.rfind("\n{")
    candidate = text[start + 1:] if start >= 0 else text.lstrip()
    try:
        obj = json.loads(candidate)
        if isinstance(obj, dict):
            return obj
    except json.JSONDecodeError:
        pass
    raise ToolError(f"{what}: no JSON object on stdout")


def stderr_tail(text: str, lines: int = 5) -> str:
    tail = [l for l in text.strip().splitlines() if l.strip()][-lines:]
    return (" | ".join(tail)) if tail else "(no stderr)"


class Stretch:
    """Drives the `stretch` CLI per the tokenize/run/bench contract."""

    def __init__(self, binary: Path, timeout_s: float = 600.0):
        self.binary = check_stretch(binary)
        self.timeout_s = timeout_s

    def _run(self, args: Sequence[str], what: str, stdin_path: Path | None = None) -> ProcResult:
        res = run_measured([str(self.binary), *args], self.timeout_s, stdin_path)
        if res.returncode != 0:
            raise ToolError(f"{what} failed ({describe_exit(res.returncode)}): {stderr_tail(res.stderr)}")
        return res

    def tokenize_batch(self, manifest: Path, texts: Sequence[str]) -> list[list[int]]:
        with tempfile.TemporaryDirectory(prefix="stretch-tok-") as tmp:
            src = Path(tmp) / "in.jsonl"
            with open(src, "w", encoding="utf-8") as f:
                for t in texts:
                    f.write(json.dumps(t, ensure_ascii=False) + "\n")
            res = self._run(["tokenize", "-m", str(manifest), "--batch", str(src), "--json"],
                            "stretch tokenize")
        out: list[list[int]] = []
        for n, line in enumerate(l for l in res.stdout.splitlines() if l.strip()):
            try:
                obj = json.loads(line)
                ids = obj["ids"]
                if not isinstance(ids, list):
                    raise TypeError
                out.append([int(i) for i in ids])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                raise ToolError(f"stretch tokenize: output line {n + 1} is not {{\"ids\": [...]}}: {line[:120]!r}") from None
        if len(out) != len(texts):
            raise ToolError(f"stretch tokenize: {len(texts)} inputs but {len(out)} output lines")
        return out

    def run_greedy(self, manifest: Path, prompt: str, max_tokens: int, logits_path: Path) -> tuple[dict[str, Any], ProcResult]:
        if prompt.startswith("-"):
            # The CLI would read it as an option.
            raise ToolError(f"prompt starts with '-', which stretch run would take for an option: {prompt[:30]!r}")
        res = self._run(["run", "-m", str(manifest), "--json", "--max-tokens", str(max_tokens),
                         "--seed", "0", "--raw", "--logits-out", str(logits_path), prompt],
                        "stretch run")
        obj = last_json_object(res.stdout, "stretch run")
        for key in ("prompt_ids", "tokens"):
            if not isinstance(obj.get(key), list):
                raise ToolError(f"stretch run: JSON output has no list '{key}'")
        return obj, res

    def bench(self, manifest: Path, prompt_tokens: int, gen_tokens: int, threads: int, reps: int) -> tuple[dict[str, Any], ProcResult]:
        res = self._run(["bench", "-m", str(manifest), "--json", "--prompt-tokens", str(prompt_tokens),
                         "--gen-tokens", str(gen_tokens), "--threads", str(threads), "--reps", str(reps)],
                        "stretch bench")
        obj = last_json_object(res.stdout, "stretch bench")
        for key in ("load_s", "prefill_tok_s", "decode_tok_s"):
            v = obj.get(key)
            if isinstance(v, (int, float)):
                obj[key] = [v]
            elif not isinstance(v, list) or not v:
                raise ToolError(f"stretch bench: JSON output has no non-empty list '{key}'")
        return obj, res


def manifest_model(manifest: Path, depth: int = 0) -> Path | None:
    """The GGUF a manifest points at (`model:`, relative to the manifest,
    following `extends:`), or None when it cannot tell.  A light text scan,
    only used to warn when stretch and llama.cpp would load different files."""
    if depth > 8 or not manifest.is_file():
        return None
    model = extends = None
    try:
        for line in manifest.read_text(encoding="utf-8").splitlines():
            if line.startswith("model:"):
                model = line.split(":", 1)[1].split("#", 1)[0].strip().strip("'\"")
            elif line.startswith("extends:"):
                extends = line.split(":", 1)[1].split("#", 1)[0].strip().strip("'\"")
    except (OSError, UnicodeDecodeError):
        return None
    if model:
        return (manifest.parent / model).resolve()
    if extends:
        return manifest_model(manifest.parent / extends, depth + 1)
    return None


def warn_if_other_model(manifest: Path, model: Path, prog: str) -> None:
    other = manifest_model(manifest)
    if other is not None and other != model.resolve():
        print(f"{prog}: warning: {manifest} points stretch at {other}, "
              f"but llama.cpp loads {model}", file=sys.stderr)
