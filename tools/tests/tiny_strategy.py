"""A tiny generated model and a greedy dense strategy over it, for the
tools' end-to-end tests (the generator is the C build's st-gen-tiny-model)."""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("STRETCH_BUILD_DIR", REPO / "build"))


def tiny_manifest(model_dir: Path, manifest: Path, context: int = 256) -> Path:
    """model_dir/tiny.gguf (2 layers, Q8_0, untied) and, at `manifest`, a
    strategy for it on one thread."""
    gen = BUILD / "bin" / "st-gen-tiny-model"
    assert gen.exists(), f"{gen}: build the C project first"
    subprocess.run([str(gen), "--out", str(model_dir / "tiny.gguf"), "--type", "q8_0",
                    "--layers", "2", "--ctx", "256", "--untied"], check=True)
    manifest.write_text(
        f"format: 1\nmodel: {model_dir / 'tiny.gguf'}\ncontext: {context}\nthreads: 1\n"
        "tokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
        "attention: {plugin: dense}\nsamplers:\n  - plugin: greedy\n")
    return manifest
