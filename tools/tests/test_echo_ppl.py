"""tools/echo_ppl.py end to end on a tiny generated model: the perplexity
summed from `stretch serve`'s echoed prompt log-probabilities is the one
`stretch eval ppl` reports for the same windows."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import tiny_strategy
from tiny_strategy import BUILD, REPO


def tiny_manifest(tmp_path: Path) -> Path:
    served = tmp_path / "manifests"
    served.mkdir()
    return tiny_strategy.tiny_manifest(tmp_path, served / "tiny.yaml")


def test_echo_perplexity_equals_eval_ppl(tmp_path):
    manifest = tiny_manifest(tmp_path)
    # Words the tiny vocabulary splits into many tokens: three windows of
    # 100, each over one echoed prefill block (64) and a part of another.
    words = "the quick brown fox jumps over a lazy dog while seven kings sing".split()
    (tmp_path / "text.txt").write_text(
        " ".join(words[(i * 7) % len(words)] for i in range(600)))
    out = subprocess.run([sys.executable, str(REPO / "tools" / "echo_ppl.py"),
                          "-m", str(manifest), "--stretch",
                          str(BUILD / "bin" / "stretch"), "--length", "100", "--windows", "3",
                          str(tmp_path / "text.txt")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["windows"] == 3 and r["tokens_scored"] == 3 * 99
    assert r["relative_difference"] < 1e-5, r
    assert r["ppl_echo"] > 1.0


def test_a_file_shorter_than_a_window_is_refused(tmp_path):
    manifest = tiny_manifest(tmp_path)
    (tmp_path / "short.txt").write_text("too short")
    out = subprocess.run([sys.executable, str(REPO / "tools" / "echo_ppl.py"),
                          "-m", str(manifest), "--stretch", str(BUILD / "bin" / "stretch"), "--length", "100",
                          str(tmp_path / "short.txt")], capture_output=True, text=True)
    assert out.returncode == 2 and "fewer than one window" in out.stderr, out.stderr
