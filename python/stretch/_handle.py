"""What the classes over a C handle share: the handle closed once (by
close(), a `with` block or the collector) and refused afterwards, a failed
call's status raised as stretch.Error, and the plugin directories every
open call takes in st_engine_options."""

from __future__ import annotations

import ctypes
import os

from . import _capi
from ._capi import lib
from .errors import Error, Status


class Handle:
    """Set `_handle` once the C open succeeded; subclasses name the C
    function that frees it (`_close_fn`) and what they are (`_what`)."""

    _handle = None
    _close_fn = ""
    _what = "handle"

    def close(self) -> None:
        if self._handle is not None:
            getattr(lib, self._close_fn)(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()

    def _h(self):
        if self._handle is None:
            raise Error(Status.STATE, f"the {self._what} is closed")
        return self._handle


def check_status(status: int, err: _capi.StError) -> None:
    """Raise a failed call's status as Error, with the C message (or the
    status's own text when the call left none)."""
    if status < 0:
        message = err.message.decode("utf-8", "replace")
        if not message:
            message = lib.st_strerror(status).decode("utf-8", "replace")
        raise Error(status, message)


def prompt_file(call, handle, path) -> int:
    """A prompt-cache file call on an engine or a sequence (save or load:
    `call`), the tokens it wrote or offers."""
    n = ctypes.c_uint32(0)
    err = _capi.StError()
    check_status(call(handle, os.fsencode(path), ctypes.byref(n), ctypes.byref(err)), err)
    return n.value


def plugin_dir_array(plugin_dirs) -> tuple[ctypes.Array, int]:
    """The directories as st_engine_options.plugin_dirs wants them (keep the
    array alive while C may read it) and their number."""
    dirs = [os.fsencode(d) for d in (plugin_dirs or [])]
    return (ctypes.c_char_p * max(1, len(dirs)))(*dirs), len(dirs)


def utf8(text, what: str, c_string: bool = False) -> bytes:
    """`text` (a str) as UTF-8 for the C API. A wrong type is a TypeError
    naming the argument; where the C call takes a NUL-terminated string
    (c_string), a NUL in the text is a ValueError, since it would cut the
    text there without a word."""
    if not isinstance(text, str):
        raise TypeError(f"{what}: expected str, found {type(text).__name__}")
    data = text.encode("utf-8")
    if c_string and b"\0" in data:
        raise ValueError(f"{what}: a NUL character at {text.index(chr(0))} would cut the text "
                         "there")
    return data
