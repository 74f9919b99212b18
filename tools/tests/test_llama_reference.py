"""tools/llama_reference.py: its float64 forward pass of a Llama GGUF agrees
with the engine on a tiny model whose weights are float32 (so the engine
quantizes no activation: what is left is its f16 cache and float32
arithmetic), and it refuses another architecture."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gguf")
pytest.importorskip("stretch")
REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("STRETCH_BUILD_DIR", REPO / "build"))
TOOL = REPO / "tools" / "llama_reference.py"


def test_the_reference_agrees_with_the_engine_on_float_weights(tmp_path):
    gen = BUILD / "bin" / "st-gen-tiny-model"
    assert gen.exists(), f"{gen}: build the C project first"
    subprocess.run([str(gen), "--out", str(tmp_path / "tiny.gguf"), "--type", "f32",
                    "--embd-type", "f32", "--layers", "2", "--embd", "128", "--heads", "4",
                    "--kv-heads", "2", "--ctx", "256", "--untied"], check=True)
    (tmp_path / "tiny.yaml").write_text(
        f"format: 1\nmodel: {tmp_path / 'tiny.gguf'}\ncontext: 256\nthreads: 2\n"
        "tokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
        "attention: {plugin: dense}\nsamplers:\n  - plugin: greedy\n")
    rng = random.Random(1)
    words = "the quick brown fox jumps over a lazy dog while seven kings sing".split()
    (tmp_path / "text.txt").write_text(" ".join(rng.choice(words) for _ in range(300)))
    out = subprocess.run([sys.executable, str(TOOL), "--model", str(tmp_path / "tiny.gguf"),
                          "--text", str(tmp_path / "text.txt"), "--tokens", "150", "--stretch",
                          "-m", str(tmp_path / "tiny.yaml"), "--chunks", "512,4,1"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["tokens"] == 150 and len(r["engine"]) == 3
    for e in r["engine"]:
        # 1.7e-5 measured; RoPE on the wrong pairs gives 0.027.
        assert e["mean_abs_diff"] < 1e-3, e
        assert abs(e["ppl"] / r["ppl_reference"] - 1) < 1e-3, e


def test_another_architecture_is_refused(tmp_path):
    gen = BUILD / "bin" / "st-gen-tiny-model"
    subprocess.run([str(gen), "--bert", "--out", str(tmp_path / "enc.gguf")], check=True)
    out = subprocess.run([sys.executable, str(TOOL), "--model", str(tmp_path / "enc.gguf"),
                          "--ids", "[1, 2, 3]"], capture_output=True, text=True)
    assert out.returncode == 2 and "knows only 'llama'" in out.stderr, out.stderr
