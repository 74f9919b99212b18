"""The llama.cpp side of the comparisons, through llama-cpp-python.

Written against llama-cpp-python 0.3.x (pinned in tools/requirements-peers.txt).
In that version Llama.eval() no longer copies logits into Llama.scores unless
logits_all=True, so next-token logits are read straight from the context with
llama_get_logits_ith(ctx, -1) (the last output row of the last decode).

AMX: a llama-cpp-python built from source with GGML_NATIVE on a CPU that
advertises AMX compiles ggml's AMX matmul path, which is only reachable
through the "extra buffer types" (weight repacking).  Under hypervisors that
do not enable AMX state, the first matmul dies with SIGILL.  probe_extra_bufts()
tries a tiny decode in a subprocess and, if it crashes, the tools load models
with use_extra_bufts=False (the plain CPU kernels) and say so in the report.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator, Sequence

from .common import EOS_IDS, ToolError, describe_exit


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """llama.cpp prints some lines straight to fd 2 even with verbose=False."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _set_extra_bufts(enabled: bool) -> None:
    """Makes every later Llama() load use (or not) extra buffer types.

    Llama.__init__ builds its llama_model_params from
    llama_cpp.llama_model_default_params() and offers no argument for this
    field, so the default-params function is wrapped."""
    import llama_cpp.llama_cpp as C

    original = getattr(C, "_stretch_original_default_params", None)
    if original is None:
        original = C.llama_model_default_params
        C._stretch_original_default_params = original

    def default_params():
        p = original()
        if hasattr(p, "use_extra_bufts"):
            p.use_extra_bufts = enabled
        return p

    C.llama_model_default_params = default_params


_PROBE = r"""
import sys
sys.path.insert(0, sys.argv[2])
from lib.llama_side import load_llama, next_logits
llm = load_llama(sys.argv[1], n_ctx=256, threads=1, extra_bufts=True)
llm.eval(llm.tokenize(b"Hello world, this is a probe.", add_bos=False, special=True))
next_logits(llm)
llm.eval([11])
next_logits(llm)
print("probe-ok")
"""


def probe_extra_bufts(model: Path) -> tuple[bool, str]:
    """Returns (usable, note): whether llama.cpp runs with extra buffer types
    on this CPU, tested in a throwaway subprocess."""
    tools_dir = str(Path(__file__).resolve().parents[1])
    try:
        res = subprocess.run([sys.executable, "-c", _PROBE, str(model), tools_dir],
                             capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return False, "probe with extra buffer types timed out; using plain CPU kernels"
    if res.returncode == 0 and "probe-ok" in res.stdout:
        return True, "extra buffer types (weight repacking) enabled"
    return False, (f"llama.cpp with extra buffer types {describe_exit(res.returncode)} on this CPU "
                   "(typically an AMX build under a hypervisor without AMX); "
                   "loaded with use_extra_bufts=False (plain CPU kernels)")


def resolve_extra_bufts(mode: str, model: Path) -> tuple[bool, str]:
    if mode == "on":
        return True, "extra buffer types forced on"
    if mode == "off":
        return False, "extra buffer types forced off"
    return probe_extra_bufts(model)


# ggml type ids for the KV cache (llama.cpp's default is f16).
KV_TYPES = {"f16": 1, "f32": 0}


def load_llama(model: str | Path, n_ctx: int = 2048, threads: int = 2, vocab_only: bool = False,
               extra_bufts: bool = True, kv_type: str | None = None, flash_attn: bool = False):
    """kv_type: None (llama.cpp's default, f16) or a key of KV_TYPES.
    flash_attn: the binding's flag (False = LLAMA_FLASH_ATTN_TYPE_DISABLED,
    which is also the binding's default; True = ENABLED)."""
    try:
        from llama_cpp import Llama
    except ImportError:
        raise ToolError("llama-cpp-python is not installed; "
                        "`python3 -m pip install -r tools/requirements-peers.txt`") from None
    _set_extra_bufts(extra_bufts)
    try:
        with quiet_stderr():
            kv = {} if kv_type is None else {"type_k": KV_TYPES[kv_type], "type_v": KV_TYPES[kv_type]}
            return Llama(model_path=str(model), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                         logits_all=False, seed=0, verbose=False, vocab_only=vocab_only,
                         flash_attn=flash_attn, **kv)
    except (ValueError, RuntimeError, OSError) as e:
        raise ToolError(f"llama.cpp could not load {model}: {e}") from None


def tokenize(llm, text: str) -> list[int]:
    return list(llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))


def next_logits(llm):
    """float32[n_vocab] logits after the last evaluated token (a copy)."""
    import numpy as np
    n_vocab = llm.n_vocab()
    if getattr(llm, "_logits_all", False):
        return np.array(llm.scores[llm.n_tokens - 1, :], dtype=np.float32)
    ptr = llm._ctx.get_logits_ith(-1)
    if not ptr:
        raise ToolError("llama.cpp returned no logits (was anything evaluated?)")
    return np.ctypeslib.as_array(ptr, shape=(n_vocab,)).astype(np.float32, copy=True)


def greedy(llm, prompt_ids: Sequence[int], max_tokens: int):
    """Evaluates the prompt from an empty cache and argmax-decodes up to
    max_tokens tokens, stopping after an EOS id (which is kept in the list).

    Returns (first-step logits, generated ids)."""
    import numpy as np
    if not prompt_ids:
        raise ToolError("empty prompt")
    llm.reset()
    llm.eval(list(prompt_ids))
    first = next_logits(llm)
    logits = first
    out: list[int] = []
    for _ in range(max_tokens):
        tok = int(np.argmax(logits))
        out.append(tok)
        if tok in EOS_IDS or len(out) == max_tokens:
            break
        llm.eval([tok])
        logits = next_logits(llm)
    return first, out
