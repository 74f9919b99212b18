"""Sentence encoders (stretch/encoder.h): a BERT-family model from GGUF
(all-MiniLM-L6-v2 from tools/convert_minilm.py), tokenized by the wordpiece
plugin, giving one mean-pooled, L2-normalised vector per text: the vectors
the `embedding` retriever indexes and `stretch serve --embedding-model`
answers with."""

from __future__ import annotations

import ctypes
import os
from typing import Sequence

import numpy as np

from . import _capi
from ._capi import lib
from ._handle import Handle, plugin_dir_array, utf8
from .engine import _check


class Encoder(Handle):
    """Open `model`. threads: 0 = every core; plugin_dirs are searched for
    the tokenizer plugin before the built-in ones. One thread at a time."""

    _close_fn = "st_encoder_close"
    _what = "encoder"

    def __init__(self, model: str | os.PathLike, threads: int = 0,
                 plugin_dirs: list[str | os.PathLike] | None = None):
        self._dirs, n_dirs = plugin_dir_array(plugin_dirs)
        opts = _capi.StEngineOptions(struct_size=ctypes.sizeof(_capi.StEngineOptions),
                                     n_threads=threads,
                                     plugin_dirs=self._dirs if n_dirs else None,
                                     n_plugin_dirs=n_dirs)
        handle = ctypes.c_void_p()
        err = _capi.StError()
        _check(lib.st_encoder_open(os.fsencode(model), ctypes.byref(opts), ctypes.byref(handle),
                                   ctypes.byref(err)), err)
        self._handle = handle
        self.model = os.fspath(model)
        self.dim = int(lib.st_encoder_dim(handle))
        self.max_tokens = int(lib.st_encoder_max_tokens(handle))

    def embed(self, texts: str | Sequence[str], batch: int = 64, return_ids: bool = False):
        """The vectors of `texts`: float32 [len(texts), dim], or [dim] for one
        string. Texts go through the model `batch` at a time; a text's vector
        does not depend on the batch. return_ids: also the token ids each
        text became ([CLS] ... [SEP], cut at max_tokens)."""
        handle = self._h()
        if batch < 1:
            raise ValueError(f"batch must be at least 1, not {batch}")
        one = isinstance(texts, str)
        encoded = [utf8(t, "texts") for t in ([texts] if one else list(texts))]
        out = np.zeros((len(encoded), self.dim), dtype=np.float32)
        all_ids: list[np.ndarray] = []
        err = _capi.StError()
        for i in range(0, len(encoded), batch):
            chunk = encoded[i:i + batch]
            m = len(chunk)
            ptrs = (ctypes.c_char_p * m)(*chunk)
            lens = (ctypes.c_size_t * m)(*[len(b) for b in chunk])
            ids = (_capi.IdsPtr * m)()
            n_ids = (ctypes.c_size_t * m)()
            _check(lib.st_encoder_embed_batch(
                handle, m, ptrs, lens,
                out[i:i + m].ctypes.data_as(ctypes.POINTER(ctypes.c_float)), ids, n_ids,
                ctypes.byref(err)), err)
            for k in range(m):
                all_ids.append(np.ctypeslib.as_array(ids[k], (n_ids[k],)).copy()
                               if n_ids[k] else np.zeros(0, dtype=np.int32))
                lib.st_free(ids[k])
        vectors = out[0] if one else out
        if return_ids:
            return vectors, (all_ids[0] if one else all_ids)
        return vectors

    def rank(self, query: str, documents: Sequence[str], top_n: int | None = None,
             batch: int = 64) -> list[tuple[int, float]]:
        """The documents ranked for `query`: (index, score) best first, equal
        scores in the documents' order, the best `top_n` (all by default).
        A score is the cosine of the two vectors, in double: what `stretch
        serve`'s POST /v1/rerank answers with this encoder (to the last few
        bits: numpy sums in another order)."""
        if isinstance(documents, str):
            raise TypeError("documents must be a sequence of texts, not one string")
        if top_n is not None and top_n < 1:
            raise ValueError(f"top_n must be at least 1, not {top_n}")
        vecs = self.embed([query, *documents], batch=batch).astype(np.float64)
        q, docs = vecs[0], vecs[1:]
        norms = np.linalg.norm(docs, axis=1) * np.linalg.norm(q)
        dots = docs @ q
        scores = [float(d / n) if n > 0 else 0.0 for d, n in zip(dots, norms)]
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        return [(i, scores[i]) for i in order[:top_n]]
