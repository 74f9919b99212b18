"""`stretch eval retrieval` agrees with tools/mtrb_reference.py on the MTRB fixture."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "mtrb_reference.py"
FIXTURE = ROOT / "tests" / "retrieval" / "mtrb"
STRETCH = ROOT / "build" / "bin" / "stretch"


@pytest.mark.parametrize("dataset", ["restbench", "metatool"])
@pytest.mark.parametrize("text", ["description", "name+description"])
def test_stretch_equals_the_reference(dataset, text):
    if not STRETCH.exists():
        pytest.skip("build/bin/stretch is not built")
    r = subprocess.run([sys.executable, str(SCRIPT), "--dataset", dataset, "--text", text,
                        str(FIXTURE / dataset), "--stretch", str(STRETCH), "-m",
                        str(ROOT / "manifests" / "bm25.yaml")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "stretch equals the Python words variant" in r.stdout


def test_a_wrong_gold_id_is_refused(tmp_path):
    (tmp_path / "tmdb_tool_rewrite.json").write_text(
        '[{"tool_usage": "GET /a", "rewrite_description": "a"}]')
    (tmp_path / "mtr_restbench_test.json").write_text(
        '[{"query": "q", "relevant IDs": [0], "relevant Tools": ["GET /b"]}]')
    r = subprocess.run([sys.executable, str(SCRIPT), "--dataset", "restbench", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "gold id 0 is not 'GET /b'" in r.stderr
