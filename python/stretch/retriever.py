"""Retrieval (stretch/retrieval.h): the retriever plugin a strategy's
`retriever:` block names, without its model: add documents, save and load
the index, query it, and put hits into a prompt through the strategy's
template (docs/retrieval.md)."""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from typing import Iterable

from . import _capi
from ._capi import lib
from ._handle import Handle, plugin_dir_array, utf8
from .engine import _check

#: st_retriever_open's flag: do not load the strategy's `index:`.
NO_INDEX = 1


@dataclass(frozen=True)
class Hit:
    """One retrieved document: its position in the index, id, score (higher
    is better) and text (None when the index keeps no texts)."""
    doc: int
    id: str
    score: float
    text: str | None


class Retriever(Handle):
    """Open the retriever of `manifest`, with its `index:` loaded unless
    no_index (to build a new one). One thread at a time."""

    _close_fn = "st_retriever_close"
    _what = "retriever"

    def __init__(self, manifest: str | os.PathLike, no_index: bool = False,
                 plugin_dirs: list[str | os.PathLike] | None = None):
        self._dirs, n_dirs = plugin_dir_array(plugin_dirs)
        opts = _capi.StEngineOptions(struct_size=ctypes.sizeof(_capi.StEngineOptions),
                                     plugin_dirs=self._dirs if n_dirs else None,
                                     n_plugin_dirs=n_dirs)
        handle = ctypes.c_void_p()
        err = _capi.StError()
        _check(lib.st_retriever_open(os.fsencode(manifest), ctypes.byref(opts),
                                     NO_INDEX if no_index else 0, ctypes.byref(handle),
                                     ctypes.byref(err)), err)
        self._handle = handle
        self.manifest = os.fspath(manifest)

    @property
    def name(self) -> str:
        return lib.st_retriever_name(self._h()).decode()

    @property
    def top_k(self) -> int:
        return int(lib.st_retriever_top_k(self._h()))

    def __len__(self) -> int:
        return int(lib.st_retriever_count(self._h()))

    def add(self, docs: Iterable[tuple[str, str]], batch: int = 64) -> None:
        """Add (id, text) pairs, `batch` at a time (all of a batch or none)."""
        docs = [(utf8(i, "document id"), utf8(t, "document text")) for i, t in docs]
        err = _capi.StError()
        for s in range(0, len(docs), batch):
            chunk = docs[s:s + batch]
            m = len(chunk)
            ids = (ctypes.c_char_p * m)(*[i for i, _ in chunk])
            id_lens = (ctypes.c_size_t * m)(*[len(i) for i, _ in chunk])
            texts = (ctypes.c_char_p * m)(*[t for _, t in chunk])
            text_lens = (ctypes.c_size_t * m)(*[len(t) for _, t in chunk])
            _check(lib.st_retriever_add_batch(self._h(), m, ids, id_lens, texts, text_lens,
                                              ctypes.byref(err)), err)

    def save(self, path: str | os.PathLike) -> None:
        """The plugin's index at path, the texts at path + ".texts"."""
        err = _capi.StError()
        _check(lib.st_retriever_save(self._h(), os.fsencode(path), ctypes.byref(err)), err)

    def load(self, path: str | os.PathLike) -> None:
        """An index saved by save(); on failure the current one is kept."""
        err = _capi.StError()
        _check(lib.st_retriever_load(self._h(), os.fsencode(path), ctypes.byref(err)), err)

    def _query(self, query: str, k: int | None):
        data = utf8(query, "query")
        out = ctypes.c_void_p()
        err = _capi.StError()
        _check(lib.st_retriever_query(self._h(), data, len(data),
                                      self.top_k if k is None else k, ctypes.byref(out),
                                      ctypes.byref(err)), err)
        return out

    def query(self, query: str, k: int | None = None) -> list[Hit]:
        """Up to k hits (the strategy's top_k when None), best first."""
        h = self._query(query, k)
        try:
            hits = []
            for i in range(lib.st_retrieval_count(h)):
                r = lib.st_retrieval_at(h, i).contents
                text = (ctypes.string_at(r.text, r.text_len).decode("utf-8", "replace")
                        if r.text else None)
                hits.append(Hit(doc=r.doc, id=ctypes.string_at(r.id, r.id_len).decode(
                    "utf-8", "replace"), score=r.score, text=text))
            return hits
        finally:
            lib.st_retrieval_free(h)

    def prompt(self, query: str, k: int | None = None) -> str:
        """`query` with its hits put in through the strategy's template."""
        h = self._query(query, k)
        text = ctypes.c_void_p()
        try:
            err = _capi.StError()
            _check(lib.st_retriever_render(self._h(), utf8(query, "query", True), h,
                                           ctypes.byref(text), ctypes.byref(err)), err)
            return ctypes.string_at(text).decode("utf-8", "replace")
        finally:
            if text:
                lib.st_free(text)
            lib.st_retrieval_free(h)
