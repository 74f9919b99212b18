"""Find and load libstretch.so.

Search order (the first that exists wins; docs/python.md says the same):
  1. $STRETCH_LIBRARY, a path to the library file;
  2. stretch/_native/libstretch.so, present in a wheel built with
     STRETCH_BUNDLE_BUILD (python/setup.py);
  3. build/lib/libstretch.so in the source checkout this package sits in,
     then in the current directory and each of its parents;
  4. the system loader (`libstretch.so.0`, as `cmake --install` puts it).

The library finds its built-in plugins beside itself (dladdr): the
stretch/plugins directory next to libstretch.so, in the build tree, the
install tree and a bundled wheel alike. Nothing here touches the
environment.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

LIBRARY_ENV = "STRETCH_LIBRARY"
LIBRARY_NAME = "libstretch.so"
SYSTEM_SONAME = "libstretch.so.0"

PACKAGE_DIR = Path(__file__).resolve().parent


def build_tree_candidates(cwd: Path) -> list[Path]:
    """build/lib/libstretch.so under the checkout and cwd's ancestors."""
    roots = [PACKAGE_DIR.parent.parent, cwd, *cwd.parents]
    seen: list[Path] = []
    for root in roots:
        candidate = root / "build" / "lib" / LIBRARY_NAME
        if candidate not in seen:
            seen.append(candidate)
    return seen


def find_library(env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Return the path (or, for the system loader, the soname) to load."""
    env = os.environ if env is None else env
    explicit = env.get(LIBRARY_ENV)
    if explicit:
        if not Path(explicit).is_file():
            raise OSError(f"{LIBRARY_ENV}={explicit}: no such file")
        return explicit
    bundled = PACKAGE_DIR / "_native" / LIBRARY_NAME
    if bundled.is_file():
        return str(bundled)
    for candidate in build_tree_candidates(Path.cwd() if cwd is None else cwd):
        if candidate.is_file():
            return str(candidate)
    return SYSTEM_SONAME


def load() -> tuple[ctypes.CDLL, str]:
    path = find_library()
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise OSError(
            f"cannot load libstretch ({path}): {e}. Build the C project "
            f"(cmake --build build) or set {LIBRARY_ENV} to the library's path") from e
    return lib, path
