"""Fixtures: a tiny random-weight model made by the project's generator and
strategy manifests pointing at it, as tests/engine/test_engine.c does."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Same override as the package's STRETCH_LIBRARY: tests may run against
# another build directory.
BUILD = Path(os.environ.get("STRETCH_BUILD_DIR", REPO / "build"))

# Not the generator's defaults, so info checks see values that come from
# the file (3 layers, 256 trained context). Untied: with tied embeddings a
# random model's greedy output just repeats the last prompt token, which
# would make the generation checks too easy to pass.
MODEL_FLAGS = ["--type", "q8_0", "--layers", "3", "--ctx", "256", "--untied"]
N_LAYERS = 3
N_CTX_TRAIN = 256
N_VOCAB = 459

SAMPLE_TEXT = (
    "The quick brown fox jumps over the lazy dog. def main(): return 0\n"
    "It was the best of times, it was the worst of times, it was the age of wisdom, "
    "it was the age of foolishness, it was the epoch of belief, it was the epoch of "
    "incredulity, it was the season of Light, it was the season of Darkness.\n")


def tool(name: str) -> Path:
    path = BUILD / "bin" / name
    if not path.exists():
        pytest.fail(f"{path} not found: build the C project first (cmake --build build)")
    return path


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stretch")


@pytest.fixture(scope="session")
def model(workdir) -> Path:
    path = workdir / "tiny.gguf"
    subprocess.run([str(tool("st-gen-tiny-model")), "--out", str(path), *MODEL_FLAGS],
                   check=True)
    return path


def write_manifest(path: Path, model: Path, context: int = 128,
                   samplers: str = "  - plugin: greedy\n", attention: str = "dense") -> Path:
    path.write_text(
        f"format: 1\nmodel: {model}\ncontext: {context}\nthreads: 2\n"
        "tokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
        f"attention: {{plugin: {attention}}}\nsamplers:\n{samplers}")
    return path


@pytest.fixture(scope="session")
def manifest(workdir, model) -> Path:
    return write_manifest(workdir / "greedy.yaml", model)


@pytest.fixture
def engine(manifest):
    import stretch
    with stretch.Engine(manifest) as e:
        yield e


@pytest.fixture(scope="session")
def stretch_cli() -> Path:
    return tool("stretch")
