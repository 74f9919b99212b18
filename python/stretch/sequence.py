"""Sequence: one of an engine's concurrent requests (st_sequence_*, ABI
1.3 and 1.10), and generate_batch built on them.

An engine opened with parallel=N runs up to N sequences at once. Each has
its own KV cache and plugin state; Engine.step() advances every started
one by a step in one pass through the weights (continuous batching). A
sequence also keeps its past between requests: continue_() runs a
conversation's next turn after everything it has fed, so a turn costs
only its own tokens.

    with stretch.Engine("manifests/greedy.yaml", parallel=2) as e:
        a, b = e.sequence(), e.sequence()
        a.start("Once upon a time", max_tokens=16)
        b.start("The capital of France", max_tokens=16)
        while e.step():
            pass
        print(a.result().text, b.result().text)

Sequences are opened, started, stepped and closed on the engine's thread;
cancel() may come from any thread.
"""

from __future__ import annotations

import ctypes
import os

from . import _capi
from ._capi import lib
from ._handle import Handle, prompt_file
from ._handle import check_status as _check
from .engine import _ids_array
from .errors import Error, Status
from .request import Request
from .results import Generation


class Sequence(Handle):
    """Open with Engine.sequence(). Keeps its engine open while it lives;
    closing the engine closes it."""

    _close_fn = "st_sequence_close"
    _what = "sequence"

    def __init__(self, engine):
        self._engine = engine
        self._request: Request | None = None
        self._result: Generation | None = None
        handle = ctypes.c_void_p()
        err = _capi.StError()
        _check(lib.st_sequence_open(engine._h(), ctypes.byref(handle), ctypes.byref(err)), err)
        self._handle = handle

    def _forget_if_engine_closed(self) -> None:
        # st_engine_close frees the sequences still open: one whose engine
        # is closed is never touched again. (Asked of the engine, which
        # this object keeps alive, rather than told by it: in a garbage
        # cycle the engine's finalizer may run first, after the weak
        # references it would have used are gone.)
        if self._engine._handle is None:
            self._handle = None

    def _h(self):
        self._forget_if_engine_closed()
        return super()._h()

    def close(self) -> None:
        self._forget_if_engine_closed()
        super().close()
        self._request = None  # after C is done with its callbacks

    # -- requests ---------------------------------------------------------

    def start(self, prompt, **kwargs) -> None:
        """Start a request: `prompt` (text or ids) and Engine.generate's
        keyword arguments. Its prompt runs at the next Engine.step();
        on_token is called from the steps; result() gives the Generation
        once the request has ended. A prompt that begins as the sequence's
        cached one did takes those tokens from its cache where the
        strategy allows (stats.n_cached; fresh_cache=True starts empty).
        Error(INVALID) while a request runs on the sequence."""
        ids = self._engine.prompt_ids(prompt)
        self._begin(lib.st_sequence_start, ids, kwargs)

    def continue_(self, tokens, **kwargs) -> None:
        """Start a request that goes on from the sequence's last one, as a
        conversation's next turn: its cache and positions are kept and
        `tokens` (ids, or text tokenized without a BOS, special tokens
        parsed) run after everything it has fed, so nothing before is
        computed again. The last answer's final token, when it was shown
        but not fed, is fed first; an end-of-generation token that ended
        it is not (add the turn's closing markers yourself). On a strategy
        whose cache is bounded (info.bounded_cache) the sequence may grow
        past the context without end; on a dense one a turn that does not
        fit ends with the context-full error. stats.n_prompt and n_cached
        count the whole past. Error(STATE) when there is nothing to go on
        from: no request has ended on the sequence since it was opened,
        emptied (forget) or loaded, or the last one failed."""
        if isinstance(tokens, str):
            ids = _ids_array(self._engine.tokenize(tokens, special=True))
        else:
            ids = _ids_array(tokens)
        kwargs.pop("fresh_cache", None)  # the C call ignores it: the past is the point
        self._begin(lib.st_sequence_continue, ids, kwargs)

    def _begin(self, call, ids, kwargs) -> None:
        req = Request(self._engine.info.samplers, **kwargs)
        err = _capi.StError()
        _check(call(self._h(), ids.ctypes.data_as(_capi.IdsPtr), ids.size,
                    ctypes.byref(req.params), req.callback, None, ctypes.byref(err)), err)
        # The request's callbacks live until the next one replaces it.
        self._request, self._result = req, None

    @property
    def busy(self) -> bool:
        """Whether a request is running on the sequence."""
        return bool(lib.st_sequence_busy(self._h()))

    def result(self) -> Generation:
        """The last request's Generation once it has ended (the same object
        on every call). Raises what ended it: an exception on_token raised,
        or the request's error (a cancel is not one: stats.cancelled).
        Error(STATE) while it runs or before any request."""
        if self._result is not None:
            return self._result
        if self._request is None:
            raise Error(Status.STATE, "no request has been started on this sequence")
        if self.busy:
            raise Error(Status.STATE, "the sequence's request is still running: call "
                        "Engine.step() until it ends (busy is False)")
        stats = _capi.StGenerateStats(struct_size=ctypes.sizeof(_capi.StGenerateStats))
        err = _capi.StError()
        status = lib.st_sequence_result(self._h(), ctypes.byref(stats), ctypes.byref(err))
        self._result = self._request.finish(status, err, stats)
        return self._result

    def cancel(self) -> None:
        """Stop the sequence's request at its next step; safe from any
        thread."""
        self._forget_if_engine_closed()
        if self._handle is not None:
            lib.st_sequence_cancel(self._handle)

    # -- the cache --------------------------------------------------------

    def cached_prefix(self, prompt) -> int:
        """How many leading tokens of `prompt` a request started now would
        take from the sequence's cache."""
        ids = self._engine.prompt_ids(prompt)
        return lib.st_sequence_cached_prefix(self._h(), ids.ctypes.data_as(_capi.IdsPtr),
                                             ids.size)

    def continued_prefix(self, prompt) -> int:
        """For a caller that holds whole conversations: k > 0 when `prompt`
        (ids) begins with everything the sequence has fed (and the last
        answer's unfed final token); continue_(prompt[k:]) then runs the
        rest. 0 when it does not, or when nothing can go on."""
        ids = _ids_array(prompt)
        return lib.st_sequence_continued_prefix(self._h(), ids.ctypes.data_as(_capi.IdsPtr),
                                                ids.size)

    def forget(self) -> int:
        """Empty the sequence's cache (llama-server's slot erase); returns
        how many slots it held."""
        n = ctypes.c_uint32(0)
        err = _capi.StError()
        _check(lib.st_sequence_forget(self._h(), ctypes.byref(n), ctypes.byref(err)), err)
        return n.value

    def save_prompt(self, path: str | os.PathLike) -> int:
        """The sequence's cached prompt to `path` (llama-server's slot
        save); Error(STATE) while a request runs. Returns the tokens saved."""
        return prompt_file(lib.st_sequence_save_prompt, self._h(), path)

    def load_prompt(self, path: str | os.PathLike) -> int:
        """A save_prompt() file offered to the sequence's next request
        (llama-server's slot restore); a file of another model, strategy,
        context or numerics raises Error(INVALID). Returns its tokens."""
        return prompt_file(lib.st_sequence_load_prompt, self._h(), path)


def _indexed(on_token, i):
    """generate_batch's on_token(index, token, text) as one prompt's."""
    if on_token is None:
        return None
    return lambda token, text: on_token(i, token, text)


def run_batch(engine, prompts, kwargs) -> list[Generation]:
    """Engine.generate_batch: every prompt on the first free sequence,
    stepped until all have ended."""
    kwargs = dict(kwargs)
    on_token = kwargs.pop("on_token", None)
    ids = [engine.prompt_ids(p) for p in prompts]  # a bad prompt fails before any runs
    out: list[Generation | None] = [None] * len(ids)
    if not ids:
        return []
    seqs = [engine.sequence() for _ in range(min(engine.info.parallel, len(ids)))]
    running: dict[Sequence, int] = {}
    nxt = 0
    try:
        while nxt < len(ids) or running:
            for seq in seqs:
                if seq not in running and nxt < len(ids):
                    i, nxt = nxt, nxt + 1
                    seq.start(ids[i], on_token=_indexed(on_token, i), **kwargs)
                    running[seq] = i
            engine.step()
            for seq, i in list(running.items()):
                if not seq.busy:
                    del running[seq]
                    out[i] = seq.result()
    finally:
        for seq in seqs:  # a busy one ends cancelled
            seq.close()
    return out  # type: ignore[return-value]
