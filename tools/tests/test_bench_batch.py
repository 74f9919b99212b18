"""tools/bench_batch.py end to end on a tiny generated model: both modes
timed, the same answers, and bad arguments named."""

import json
import subprocess
import sys

from tiny_strategy import REPO, tiny_manifest

SCRIPT = REPO / "tools" / "bench_batch.py"


def test_both_modes_are_timed_and_answer_alike(tmp_path):
    manifest = tiny_manifest(tmp_path, tmp_path / "tiny.yaml", context=128)
    out = subprocess.run([sys.executable, str(SCRIPT), "-m", str(manifest), "--prompts", "3",
                          "--tokens", "8", "--reps", "2", "--parallel", "2", "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["prompts"] == 3 and r["tokens"] == 8 and r["parallel"] == 2
    assert len(r["one_at_a_time_tok_s"]) == 2 and len(r["batch_tok_s"]) == 2
    assert min(r["one_at_a_time_tok_s"] + r["batch_tok_s"]) > 0
    assert r["ratio"] > 0 and r["same_answers"] is True


def test_bad_arguments_are_named(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "-m", "x.yaml", "--prompts", "99"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "--prompts: expected 1 to 8, found 99" in out.stderr
    out = subprocess.run([sys.executable, str(SCRIPT), "-m", str(tmp_path / "none.yaml"),
                          "--reps", "1"], capture_output=True, text=True)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("bench_batch: ST_E_NOT_FOUND") and "none.yaml" in out.stderr
