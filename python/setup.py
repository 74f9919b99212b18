"""Build hook: bundle libstretch and its built-in plugins into the wheel.

A plain `pip install ./python` installs pure Python that finds the library
at run time (docs/python.md). With STRETCH_BUNDLE_BUILD set to an absolute
CMake build directory, the wheel also carries that build's libstretch.so and
lib/stretch/plugins under stretch/_native/, so it runs on a machine without
the build tree; the wheel is then tagged for this platform, not pure Python.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

BUNDLE_ENV = "STRETCH_BUNDLE_BUILD"


def bundle_dir() -> Path | None:
    value = os.environ.get(BUNDLE_ENV)
    if not value:
        return None
    build = Path(value)
    # pip runs this hook from a temporary or the python/ directory, so a
    # relative path would silently mean something else.
    if not build.is_absolute():
        raise SystemExit(f"{BUNDLE_ENV}={value}: give an absolute path to the CMake build directory")
    if not (build / "lib" / "libstretch.so").exists():
        raise SystemExit(f"{BUNDLE_ENV}: {build}/lib/libstretch.so not found: build the C project first")
    return build


class BuildPyBundling(build_py):
    def run(self):
        super().run()
        dest = Path(self.build_lib) / "stretch" / "_native"
        # setuptools reuses python/build/ between builds: a library bundled
        # by an earlier build must not leak into a plain one.
        shutil.rmtree(dest, ignore_errors=True)
        build = bundle_dir()
        if build is None:
            return
        dest.mkdir(parents=True)
        # The real file, not the libstretch.so -> .so.0 -> .so.0.1.0 links:
        # wheels do not keep symbolic links.
        shutil.copyfile((build / "lib" / "libstretch.so").resolve(), dest / "libstretch.so")
        shutil.copytree(build / "lib" / "stretch" / "plugins", dest / "stretch" / "plugins")


class MaybeBinaryDistribution(Distribution):
    def has_ext_modules(self):
        # A bundled native library makes the wheel platform-specific.
        return bundle_dir() is not None


setup(cmdclass={"build_py": BuildPyBundling}, distclass=MaybeBinaryDistribution)
