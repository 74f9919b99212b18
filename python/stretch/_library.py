"""Find and load libstretch.so.

Search order (the first that exists wins; docs/python.md says the same):
  1. $STRETCH_LIBRARY, a path to the library file;
  2. stretch/_native/libstretch.so, present in a wheel built with
     STRETCH_BUNDLE_BUILD (python/setup.py);
  3. build/lib/libstretch.so in the source checkout this package sits in,
     then in the current directory and each of its parents;
  4. the system loader (`libstretch.so.0`, as `cmake --install` puts it).

The host finds its built-in plugins relative to the running executable,
which for Python is the interpreter, not the library. So when the library
comes from a known directory, its lib/stretch/plugins is appended to
STRETCH_PLUGIN_PATH (the registry reads that variable at each engine open).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

LIBRARY_ENV = "STRETCH_LIBRARY"
PLUGIN_PATH_ENV = "STRETCH_PLUGIN_PATH"
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


def plugin_dir_for(library_path: str) -> Path | None:
    """The built-in plugin directory beside a library found by path."""
    if os.sep not in library_path:
        return None  # found by the system loader: the host's install path applies
    plugins = Path(library_path).resolve().parent / "stretch" / "plugins"
    return plugins if plugins.is_dir() else None


def add_plugin_dir(plugins: Path, env: dict[str, str] | None = None) -> None:
    env = os.environ if env is None else env
    parts = [p for p in env.get(PLUGIN_PATH_ENV, "").split(":") if p]
    if str(plugins) not in parts:
        # Appended: directories the user listed keep precedence.
        env[PLUGIN_PATH_ENV] = ":".join(parts + [str(plugins)])


def load() -> tuple[ctypes.CDLL, str]:
    path = find_library()
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise OSError(
            f"cannot load libstretch ({path}): {e}. Build the C project "
            f"(cmake --build build) or set {LIBRARY_ENV} to the library's path") from e
    plugins = plugin_dir_for(path)
    if plugins is not None:
        add_plugin_dir(plugins)
    return lib, path
