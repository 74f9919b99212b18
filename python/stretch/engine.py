"""Engine: one strategy manifest opened through libstretch's host API.

One engine serves one generate() at a time, or up to `parallel` requests
stepped together on its sequences (sequence(), step(), generate_batch());
it is not thread-safe, except cancel() and Sequence.cancel(), which may be
called from any thread (the C API's rule).
"""

from __future__ import annotations

import ctypes
import os
from typing import TYPE_CHECKING, Callable, Iterable, Sequence, Union

import numpy as np

from . import _capi
from ._capi import lib
from ._handle import Handle, plugin_dir_array, prompt_file, utf8
from ._handle import check_status as _check
from .request import SAMPLING_KEYS, Request, TokenCallback  # noqa: F401 (this module's names too)
from .results import Constraint, EngineInfo, Generation
from .stop import stop_list

if TYPE_CHECKING:
    from .sequence import Sequence as SequenceHandle

Prompt = Union[str, Sequence[int], np.ndarray]
ProgressCallback = Callable[[int, int], object]


def _take_bytes(ptr: ctypes.c_void_p, length: int) -> bytes:
    """Copy a C buffer the caller owns, then st_free it."""
    try:
        return ctypes.string_at(ptr, length) if length else b""
    finally:
        lib.st_free(ptr)


def _take_ids(ids: _capi.IdsPtr, n: int) -> list[int]:
    """Copy token ids the caller owns, then st_free them."""
    try:
        return ids[:n] if n else []
    finally:
        lib.st_free(ids)


def _ids_array(ids: Iterable[int] | np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(ids, dtype=np.int64))
    if arr.ndim != 1:
        raise ValueError(f"token ids must be one-dimensional, got shape {arr.shape}")
    if arr.size and (arr.min() < np.iinfo(np.int32).min or arr.max() > np.iinfo(np.int32).max):
        raise ValueError("token ids must fit in int32")
    return arr.astype(np.int32)


def _ids_ptr(arr: np.ndarray):
    return arr.ctypes.data_as(_capi.IdsPtr)


class Engine(Handle):
    """Open `manifest` (a strategy YAML). `model`, `context` and `threads`
    override the manifest's (0 / None = the manifest's)."""

    _close_fn = "st_engine_close"
    _what = "engine"

    def __init__(self, manifest: str | os.PathLike, model: str | os.PathLike | None = None,
                 context: int = 0, threads: int = 0, numerics: str | None = None,
                 plugin_dirs: list[str | os.PathLike] | None = None,
                 log: Callable[[int, str | None, str], None] | None = None,
                 backend: str | None = None, device: str | int | None = None,
                 no_kernel_cache: bool = False, parallel: int = 0):
        """numerics: None ($STRETCH_NUMERICS), "fast" or "ggml"; plugin_dirs
        are searched before the manifest's; log(level, source, message)
        receives every log line (level: 0 debug .. 3 error) instead of
        stderr, possibly from the engine's worker threads. backend ("cpu",
        "opencl", "opencl:P:D") and device (an index or a name substring,
        see stretch.devices()) override the manifest's; no_kernel_cache
        builds the OpenCL kernels afresh. parallel: how many sequences
        (Engine.sequence) may run at once (0 = the manifest's `parallel:`)."""
        if numerics not in _capi.NUMERICS:
            raise ValueError(f"numerics must be None, 'fast' or 'ggml', not {numerics!r}")
        self._dirs, n_dirs = plugin_dir_array(plugin_dirs)
        self._log = _capi.LogFn(0)
        if log is not None:
            def on_log(_user, level, source, message):
                try:
                    log(level, source.decode("utf-8", "replace") if source else None,
                        message.decode("utf-8", "replace"))
                except Exception:  # a log sink must not unwind through C
                    pass
            self._log = _capi.LogFn(on_log)  # kept: C calls it while the engine lives
        opts = _capi.StEngineOptions(struct_size=ctypes.sizeof(_capi.StEngineOptions),
                                     n_threads=threads, context=context,
                                     model=os.fsencode(model) if model is not None else None,
                                     numerics=_capi.NUMERICS[numerics],
                                     plugin_dirs=self._dirs if n_dirs else None,
                                     n_plugin_dirs=n_dirs, log=self._log,
                                     backend=backend.encode() if backend else None,
                                     device=str(device).encode() if device is not None else None,
                                     no_kernel_cache=no_kernel_cache, parallel=parallel)
        handle = _capi.EnginePtr()
        err = _capi.StError()
        _check(lib.st_engine_open(os.fsencode(manifest), ctypes.byref(opts),
                                  ctypes.byref(handle), ctypes.byref(err)), err)
        self._handle = handle
        self.manifest = os.fspath(manifest)
        self.info = self._read_info()

    def _read_info(self) -> EngineInfo:
        raw = _capi.StEngineInfo(struct_size=ctypes.sizeof(_capi.StEngineInfo))
        lib.st_engine_get_info(self._h(), ctypes.byref(raw))

        def token(v: int) -> int | None:
            return None if v < 0 else v

        plugins = {kind: name.decode()
                   for kind, name in zip(_capi.KIND_NAMES, raw.plugin_names) if name}
        return EngineInfo(n_vocab=raw.n_vocab, n_ctx=raw.n_ctx, n_ctx_train=raw.n_ctx_train,
                          n_layers=raw.n_layers, n_heads=raw.n_heads, n_kv_heads=raw.n_kv_heads,
                          n_embd=raw.n_embd, head_dim=raw.head_dim, n_threads=raw.n_threads,
                          bos=token(raw.bos), eos=token(raw.eos), eot=token(raw.eot),
                          add_bos=bool(raw.add_bos),
                          model_path=os.fsdecode(raw.model_path or b""), plugins=plugins,
                          samplers=tuple(raw.sampler_names[i].decode()
                                         for i in range(raw.n_samplers)),
                          backend=(raw.backend or b"cpu").decode(),
                          device=raw.device_name.decode() if raw.device_name else None,
                          prefix_cache=bool(raw.prefix_cache),
                          bounded_cache=bool(raw.bounded_cache),
                          parallel=max(1, raw.parallel))

    # -- text -------------------------------------------------------------

    def tokenize(self, text: str, special: bool = False, add_bos: bool = False) -> list[int]:
        """Token ids of `text`. special: parse "<|im_start|>"-like text as
        special tokens; add_bos: prepend BOS when the vocabulary has one."""
        data = utf8(text, "text")
        flags = (_capi.ENCODE_PARSE_SPECIAL if special else 0) | \
                (_capi.ENCODE_ADD_BOS if add_bos else 0)
        ids = _capi.IdsPtr()
        n = ctypes.c_size_t()
        err = _capi.StError()
        _check(lib.st_engine_tokenize(self._h(), data, len(data), flags, ctypes.byref(ids),
                                      ctypes.byref(n), ctypes.byref(err)), err)
        return _take_ids(ids, n.value)

    def detokenize(self, ids: Iterable[int]) -> str:
        arr = _ids_array(list(ids) if not isinstance(ids, np.ndarray) else ids)
        text = ctypes.c_void_p()
        n = ctypes.c_size_t()
        err = _capi.StError()
        _check(lib.st_engine_detokenize(self._h(), _ids_ptr(arr), arr.size, ctypes.byref(text),
                                        ctypes.byref(n), ctypes.byref(err)), err)
        # A sequence of ids may end inside a UTF-8 character.
        return _take_bytes(text, n.value).decode("utf-8", "replace")

    def token_piece(self, token: int) -> bytes:
        """The raw bytes of one token (possibly part of a UTF-8 character)."""
        data = ctypes.c_void_p()
        n = ctypes.c_size_t()
        err = _capi.StError()
        _check(lib.st_engine_token_piece(self._h(), token, ctypes.byref(data), ctypes.byref(n),
                                         ctypes.byref(err)), err)
        return ctypes.string_at(data, n.value) if n.value else b""  # the engine owns it

    def chat_prompt(self, user_message: str) -> str:
        """`user_message` rendered with the model's chat template."""
        out = ctypes.c_void_p()
        err = _capi.StError()
        _check(lib.st_engine_chat_prompt(self._h(), utf8(user_message, "user_message", True),
                                         ctypes.byref(out), ctypes.byref(err)), err)
        try:
            return ctypes.string_at(out).decode("utf-8")
        finally:
            lib.st_free(out)

    def chat_ids(self, messages: Sequence, special: bool = False) -> np.ndarray:
        """A conversation rendered with the model's chat template and
        tokenized, ending with the assistant's opening marker: generate()
        on it writes the next answer. messages: {"role", "content"} dicts
        (or (role, content) pairs), roles "system", "user" or "assistant";
        the template's default system message comes first when there is
        none. Only the template's markers are special tokens unless
        special. A later call whose conversation begins as this one did
        takes that prompt from the cache (see generate)."""
        turns = [(m["role"], m["content"]) if isinstance(m, dict) else tuple(m)
                 for m in messages]
        arr = (_capi.StChatMessage * max(len(turns), 1))(
            *[_capi.StChatMessage(utf8(r, f"messages[{i}].role", True),
                                  utf8(c, f"messages[{i}].content", True))
              for i, (r, c) in enumerate(turns)])
        flags = (_capi.ENCODE_PARSE_SPECIAL if special else 0) | \
                (_capi.ENCODE_ADD_BOS if self.info.add_bos else 0)
        ids = _capi.IdsPtr()
        n = ctypes.c_size_t()
        err = _capi.StError()
        _check(lib.st_engine_chat_tokenize_messages(self._h(), arr, len(turns), flags,
                                                    ctypes.byref(ids), ctypes.byref(n),
                                                    ctypes.byref(err)), err)
        return _ids_array(_take_ids(ids, n.value))

    def prompt_ids(self, prompt: Prompt) -> np.ndarray:
        """A text prompt tokenized as `stretch run` does (special tokens
        parsed, BOS when the model asks for it); ids pass through."""
        if isinstance(prompt, str):
            return _ids_array(self.tokenize(prompt, special=True, add_bos=self.info.add_bos))
        return _ids_array(prompt)

    # -- generation -------------------------------------------------------

    def generate(self, prompt: Prompt, max_tokens: int = 256, seed: int = 0,
                 on_token: TokenCallback | None = None, ignore_eos: bool = False,
                 constraint: Constraint | None = None,
                 logprobs: int | None = None,
                 prompt_logprobs: bool = False,
                 logit_bias: dict[int, float] | None = None,
                 fresh_cache: bool = False,
                 sampling: dict[str, float] | None = None,
                 stop: str | Sequence[str] | None = None) -> Generation:
        """Continue `prompt` (text or ids) by up to max_tokens tokens.

        on_token(token, text) is called for each token as it is produced;
        return a truthy value to stop. A cancel() ends the generation early
        with stats.cancelled set (the tokens so far are returned). An
        exception raised by on_token stops the generation and is re-raised.
        constraint: a constraint sampler for this call only, e.g.
        Constraint.json_schema({...}); a refused one raises Error(INVALID).
        logprobs: fill Generation.logprobs, with this many alternatives a
        token (0-20).
        prompt_logprobs: fill Generation.prompt_logprobs, the prompt's own
        (OpenAI's echo), with `logprobs` alternatives (none when it is
        None); max_tokens=0 then scores the prompt alone.
        logit_bias: {token id: bias (-100..100)} added to the logits before
        the samplers for this call (-100 keeps a token out).
        A prompt that begins as the previous call's did takes those tokens
        from the cache where the strategy allows it (stats.n_cached), with
        the same answer bit for bit; fresh_cache=True starts empty.
        sampling: sampler parameters for this call, e.g. {"temperature":
        0.7, "top_k": 40} (keys: SAMPLING_KEYS, or "PLUGIN.PARAM"); each
        sets its sampler where the manifest's chain has it (a warning where
        it does not); a value the plugin's schema refuses raises
        Error(INVALID).
        stop: a string or a list of them; the answer ends where one first
        appears, without it (Generation.stopped_by_stop), and on_token sees
        the text as it may be shown: what could still begin a stop string
        is held back (its token's text is then "") and handed on later.
        """
        ids = self.prompt_ids(prompt)
        req = Request(self.info.samplers, max_tokens=max_tokens, seed=seed, on_token=on_token,
                      ignore_eos=ignore_eos, constraint=constraint, logprobs=logprobs,
                      prompt_logprobs=prompt_logprobs, logit_bias=logit_bias,
                      fresh_cache=fresh_cache, sampling=sampling, stop=stop)
        stats = _capi.StGenerateStats(struct_size=ctypes.sizeof(_capi.StGenerateStats))
        err = _capi.StError()
        status = lib.st_engine_generate(self._h(), _ids_ptr(ids), ids.size,
                                        ctypes.byref(req.params), req.callback, None,
                                        ctypes.byref(stats), ctypes.byref(err))
        return req.finish(status, err, stats)

    def stream(self, prompt: Prompt, max_tokens: int = 256, seed: int = 0,
               ignore_eos: bool = False, constraint: Constraint | None = None,
               sampling: dict[str, float] | None = None,
               stop: str | Sequence[str] | None = None):
        """generate() as an iterator of TokenEvent; see stretch.stream."""
        from .stream import GenerationStream
        stop_list(stop)  # a bad stop raises here, on the caller's thread
        return GenerationStream(self, prompt, max_tokens, seed, ignore_eos, constraint, sampling,
                                stop)

    # -- several requests at once ----------------------------------------

    def sequence(self) -> "SequenceHandle":
        """Open one of the engine's `parallel` sequences: a request slot with
        its own cache, stepped together with the others by step() (see
        stretch.Sequence). Error(RANGE) when all are open."""
        from .sequence import Sequence as Seq
        return Seq(self)

    def step(self) -> int:
        """One step of every started sequence in one pass through the
        weights (waiting prompts prefilled together, one token of each
        decoding sequence); their on_token callbacks run from here.
        Returns how many are still running. An error of the shared pass
        ends every request in it with that error (Sequence.result raises
        it); the engine stays usable."""
        n = ctypes.c_uint32(0)
        err = _capi.StError()
        _check(lib.st_engine_step(self._h(), ctypes.byref(n), ctypes.byref(err)), err)
        return n.value

    def generate_batch(self, prompts: Sequence[Prompt], **kwargs) -> list[Generation]:
        """generate() for several prompts at once, as vLLM's generate takes a
        list: up to `parallel` run together on sequences (continuous
        batching: a prompt starts as soon as a sequence is free), each with
        generate()'s keyword arguments; the answers come back in the
        prompts' order. An on_token callback gets (index, token, text).
        An error ends the whole call: the requests still running are
        cancelled and the error raised."""
        from .sequence import run_batch
        return run_batch(self, prompts, kwargs)

    def cancel(self) -> None:
        """Stop a running generate() or score() at the next token boundary.
        Safe from any thread."""
        if self._handle is not None:
            lib.st_engine_cancel(self._handle)

    def _uncancel(self) -> bool:
        """Withdraw a cancel no request consumed (st_engine_uncancel)."""
        return bool(self._handle is not None and lib.st_engine_uncancel(self._handle))

    # -- the prompt cache in a file ---------------------------------------

    def save_prompt(self, path: str | os.PathLike) -> int:
        """Write the keys and values of the last generate() prompt, as far as
        the next call could take them from the cache, to `path` (llama-cli's
        --prompt-cache; st_engine_save_prompt). Returns how many tokens."""
        return prompt_file(lib.st_engine_save_prompt, self._h(), path)

    def load_prompt(self, path: str | os.PathLike) -> int:
        """Put a save_prompt() file in the cache: the next generate() whose
        prompt starts with its tokens takes them (GenerateResult.n_cached),
        its answer unchanged. A file of another model, strategy, context or
        numerics raises Error(INVALID) saying what differs; a missing one
        Error(NOT_FOUND). Returns how many tokens it offers."""
        return prompt_file(lib.st_engine_load_prompt, self._h(), path)

    # -- scoring ----------------------------------------------------------

    def score(self, ids: Iterable[int] | np.ndarray, chunk: int = 0,
              progress: ProgressCallback | None = None) -> np.ndarray:
        """Per-token negative log-likelihoods, float32: nll[t] =
        -log p(ids[t] | ids[<t]), nll[0] = 0. chunk: tokens per forward block
        (0 = the whole context). progress(done, total) after each chunk;
        return truthy to cancel. A cancel raises Error(CANCELLED)."""
        arr = _ids_array(list(ids) if not isinstance(ids, np.ndarray) else ids)
        nll = np.zeros(arr.size, dtype=np.float32)
        raised: list[BaseException] = []

        def forward(_user, done, total):
            try:
                return 1 if progress(done, total) else 0
            except BaseException as e:
                raised.append(e)
                return 1

        callback = _capi.PROGRESS_FN(forward) if progress is not None else _capi.PROGRESS_FN()
        err = _capi.StError()
        status = lib.st_engine_score(self._h(), _ids_ptr(arr), arr.size, chunk,
                                     nll.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                     callback, None, ctypes.byref(err))
        if raised:
            raise raised[0]
        _check(status, err)
        return nll
