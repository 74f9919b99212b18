"""tools/compare_backends.py counts equal continuations and names where two
backends part, driving a stand-in `stretch` that answers per backend."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "compare_backends.py"

# A stand-in CLI: `run ... --backend B PROMPT` prints run --json's last line.
# On opencl the prompt "b" parts from cpu at token 2.
FAKE = """#!/usr/bin/env python3
import json, sys
a = sys.argv
backend = a[a.index("--backend") + 1]
prompt = a[-1]
tokens = [1, 2, 3, 4]
if backend == "opencl" and prompt == "b":
    tokens = [1, 2, 9, 4]
print(json.dumps({"tokens": tokens, "backend": backend}))
"""


def run(tmp_path: Path, prompts: list[str]) -> tuple[subprocess.CompletedProcess, dict]:
    fake = tmp_path / "stretch"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    pf = tmp_path / "prompts.txt"
    pf.write_text("# comment\n" + "".join(json.dumps(p) + "\n" for p in prompts))
    out = tmp_path / "out.json"
    res = subprocess.run([sys.executable, str(SCRIPT), "--stretch", str(fake), "--prompts",
                          str(pf), "--tokens", "4", "--json", str(out)],
                         capture_output=True, text=True)
    return res, json.loads(out.read_text())


def test_all_equal(tmp_path):
    res, rep = run(tmp_path, ["a", "c"])
    assert res.returncode == 0, res.stderr
    assert "2/2 continuations of 4 tokens equal" in res.stdout
    assert rep["equal"] == 2


def test_a_difference_is_named(tmp_path):
    res, rep = run(tmp_path, ["a", "b", "c"])
    assert res.returncode == 1
    assert " 1 differs from token 2" in res.stdout
    assert "2/3 continuations" in res.stdout
    assert rep["prompts"][1] == {"prompt": 1, "equal": False, "first_difference": 2}
