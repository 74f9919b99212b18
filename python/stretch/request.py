"""One generation request as the C API takes it: st_generate_params, the
token callback and the logprob callbacks, kept alive together for as long
as C may call them (one st_engine_generate call, or a sequence's request
across st_engine_step calls), and the Generation built from what they saw.
Engine.generate and Sequence share it."""

from __future__ import annotations

import ctypes
import os
import sys
import warnings
from typing import Callable

from . import _capi
from ._capi import lib
from ._handle import check_status
from .errors import Status
from .results import Constraint, GenerateStats, Generation, TokenLogprob
from .stop import StopText, stop_list

# on_token(token, text) -> truthy to stop. token is -1 for text held back
# (an incomplete UTF-8 sequence, or what might have begun a stop string)
# and handed on after the last token.
TokenCallback = Callable[[int, str], object]


def _sampling_keys() -> dict[str, tuple[str, str]]:
    """The library's table (st_sampling_name_at): OpenAI's, vLLM's and
    llama-server's names for the samplers' parameters, as `stretch serve`
    maps a request's fields, and the plugin and parameter each sets."""
    keys = {}
    i = 0
    while entry := lib.st_sampling_name_at(i):
        e = entry.contents
        keys[e.field.decode()] = (e.plugin.decode(), e.param.decode())
        i += 1
    return keys


# generate(sampling=...): these names, or "PLUGIN.PARAM" for any other.
SAMPLING_KEYS = _sampling_keys()


def _outside_package() -> int:
    """The stacklevel of the first frame outside this package: a warning
    names the user's line, whichever API call it came through."""
    here = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == here:
        frame, level = frame.f_back, level + 1
    return level


def _sampling_overrides(sampling, chain) -> list[tuple[str, str, float]]:
    out = []
    for key, value in sampling.items():
        if key in SAMPLING_KEYS:
            plugin, param = SAMPLING_KEYS[key]
        elif isinstance(key, str) and key.count(".") == 1 and all(key.split(".")):
            plugin, param = key.split(".")
        else:
            raise ValueError(f"sampling: unknown key {key!r}: expected one of "
                             f"{', '.join(SAMPLING_KEYS)} or 'PLUGIN.PARAM'")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"sampling[{key!r}]: expected a number, found {type(value).__name__}")
        if plugin not in chain:
            warnings.warn(f"sampling[{key!r}] has no effect: the strategy's sampler chain has "
                          f"no {plugin!r} sampler", stacklevel=_outside_package())
        out.append((plugin, param, float(value)))
    return out


class Request:
    """The parameters and callbacks of one request (see Engine.generate for
    each argument); `params` and `callback` go to the C call."""

    def __init__(self, samplers: tuple[str, ...], max_tokens: int = 256, seed: int = 0,
                 on_token: TokenCallback | None = None, ignore_eos: bool = False,
                 constraint: Constraint | None = None, logprobs: int | None = None,
                 prompt_logprobs: bool = False, logit_bias: dict[int, float] | None = None,
                 fresh_cache: bool = False, sampling: dict[str, float] | None = None,
                 stop=None):
        self.on_token = on_token
        self.stopper = StopText(stop_list(stop))
        self.tokens: list[int] = []
        self.pieces: list[str] = []
        self.raised: list[BaseException] = []
        self.want_logprobs = logprobs is not None
        self.want_prompt_logprobs = prompt_logprobs
        self.entries: list[TokenLogprob] = []
        self.prompt_entries: list[TokenLogprob] = []
        p = _capi.StGenerateParams(struct_size=ctypes.sizeof(_capi.StGenerateParams),
                                   max_tokens=max_tokens, seed=seed, ignore_eos=ignore_eos,
                                   fresh_cache=fresh_cache)
        # Every ctypes object C reads is an attribute, so it lives as long
        # as the request.
        self._lp = self._logger(self.entries)
        self._prompt_lp = self._logger(self.prompt_entries)
        if logprobs is not None:
            p.on_logprobs = ctypes.cast(self._lp, ctypes.c_void_p)
            p.n_top_logprobs = logprobs
        if prompt_logprobs:
            p.on_prompt_logprobs = ctypes.cast(self._prompt_lp, ctypes.c_void_p)
        if sampling:
            chosen = _sampling_overrides(sampling, samplers)
            self._overrides = (_capi.StSamplerOverride * len(chosen))(
                *[_capi.StSamplerOverride(a.encode(), b.encode(), v) for a, b, v in chosen])
            p.sampler_overrides = self._overrides
            p.n_sampler_overrides = len(chosen)
        if logit_bias:
            self._biases = (_capi.StLogitBias * len(logit_bias))(
                *[_capi.StLogitBias(int(t), float(b)) for t, b in logit_bias.items()])
            p.logit_bias = self._biases
            p.n_logit_bias = len(logit_bias)
        if constraint is not None:
            self._texts = (_capi.StParamText * max(1, len(constraint.params)))(
                *[_capi.StParamText(k.encode(), v.encode())
                  for k, v in constraint.params.items()])
            p.constraint = constraint.plugin.encode()
            p.constraint_params = self._texts
            p.n_constraint_params = len(constraint.params)
        self.params = p
        self.callback = _capi.TOKEN_FN(self._forward)

    @staticmethod
    def _logger(into):
        def on_lp(_user, token, logprob, top_ids, top, n_top):
            into.append(TokenLogprob(token, logprob, tuple(
                (top_ids[k], top[k]) for k in range(n_top))))
        return _capi.LOGPROBS_FN(on_lp)

    def _forward(self, _user, token, text, length):
        try:
            piece = self.stopper.feed(ctypes.string_at(text, length).decode("utf-8")
                                      if length else "")
            if token >= 0:
                self.tokens.append(token)
            self.pieces.append(piece)
            wants_stop = self.on_token is not None and self.on_token(token, piece)
            return 1 if wants_stop or self.stopper.hit else 0
        except BaseException as e:  # ctypes would print and drop it
            self.raised.append(e)
            return 1

    def finish(self, status: int, err: _capi.StError,
               stats: _capi.StGenerateStats) -> Generation:
        """The Generation once C has ended the request with `status`: an
        exception on_token raised comes first, then the error (a cancel is
        not one: stats.cancelled says so)."""
        if self.raised:
            raise self.raised[0]
        if status != Status.CANCELLED:
            check_status(status, err)
        rest = self.stopper.end()
        if rest:
            self.pieces.append(rest)
            if self.on_token is not None:
                self.on_token(-1, rest)
        return Generation(
            text="".join(self.pieces), tokens=self.tokens, stopped_by_stop=self.stopper.hit,
            logprobs=self.entries if self.want_logprobs else None,
            prompt_logprobs=self.prompt_entries if self.want_prompt_logprobs else None,
            stats=GenerateStats(
                n_prompt=stats.n_prompt, n_generated=stats.n_generated,
                prefill_s=stats.prefill_s, decode_s=stats.decode_s,
                stopped_by_eos=bool(stats.stopped_by_eos), cancelled=bool(stats.cancelled),
                stopped_by_context=bool(stats.stopped_by_context), n_cached=stats.n_cached))
