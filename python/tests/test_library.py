"""Where the package looks for libstretch, in the documented order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stretch import _library


def fake_build(root: Path) -> Path:
    lib = root / "build" / "lib" / "libstretch.so"
    lib.parent.mkdir(parents=True)
    lib.write_bytes(b"")
    (lib.parent / "stretch" / "plugins").mkdir(parents=True)
    return lib


def test_env_var_wins(tmp_path):
    explicit = tmp_path / "elsewhere.so"
    explicit.write_bytes(b"")
    fake_build(tmp_path)
    assert _library.find_library({"STRETCH_LIBRARY": str(explicit)}, cwd=tmp_path) == str(explicit)


def test_env_var_naming_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(OSError, match="STRETCH_LIBRARY=.*no such file"):
        _library.find_library({"STRETCH_LIBRARY": str(tmp_path / "missing.so")}, cwd=tmp_path)


def test_build_tree_found_from_a_subdirectory_of_cwd(tmp_path, monkeypatch):
    # Pretend the package is installed somewhere without a build tree.
    monkeypatch.setattr(_library, "PACKAGE_DIR", tmp_path / "site" / "stretch")
    lib = fake_build(tmp_path / "repo")
    sub = tmp_path / "repo" / "docs" / "deep"
    sub.mkdir(parents=True)
    assert _library.find_library({}, cwd=sub) == str(lib)


def test_bundled_library_beats_the_build_tree(tmp_path, monkeypatch):
    package = tmp_path / "site" / "stretch"
    bundled = package / "_native" / "libstretch.so"
    bundled.parent.mkdir(parents=True)
    bundled.write_bytes(b"")
    monkeypatch.setattr(_library, "PACKAGE_DIR", package)
    fake_build(tmp_path)
    assert _library.find_library({}, cwd=tmp_path) == str(bundled)


def test_system_loader_is_the_last_resort(tmp_path, monkeypatch):
    monkeypatch.setattr(_library, "PACKAGE_DIR", tmp_path / "site" / "stretch")
    assert _library.find_library({}, cwd=tmp_path) == "libstretch.so.0"


def test_the_loaded_library_is_the_build_trees_and_finds_its_plugins_itself():
    import stretch
    from conftest import BUILD
    if "STRETCH_LIBRARY" not in os.environ:
        assert Path(stretch.library_path).resolve() == (BUILD / "lib" / "libstretch.so").resolve()
    # The library locates its built-in plugins with dladdr: importing the
    # package leaves the environment alone.
    assert "STRETCH_PLUGIN_PATH" not in os.environ
