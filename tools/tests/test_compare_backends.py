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


# A stand-in whose first opencl run sleeps without using CPU (as PoCL's
# pthread device does when it hangs): the script must kill it and run it
# again, and the second run answers.
HANGS_ONCE = """#!/usr/bin/env python3
import json, sys, time
from pathlib import Path
a = sys.argv
backend = a[a.index("--backend") + 1]
mark = Path(__file__).with_name("hung")
if backend == "opencl" and not mark.exists():
    mark.write_text("")
    time.sleep(600)
print(json.dumps({"tokens": [1, 2, 3], "backend": backend}))
"""


def test_a_run_asleep_is_started_again(tmp_path):
    fake = tmp_path / "stretch"
    fake.write_text(HANGS_ONCE)
    fake.chmod(0o755)
    pf = tmp_path / "prompts.txt"
    pf.write_text(json.dumps("a") + "\n")
    res = subprocess.run([sys.executable, str(SCRIPT), "--stretch", str(fake), "--prompts",
                          str(pf), "--tokens", "3", "--stall", "10"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "asleep without CPU for 10 s (attempt 1 of 3)" in res.stderr
    assert "1/1 continuations of 3 tokens equal" in res.stdout


# A stand-in for `stretch eval ppl ... --backend B ... TEXT`: one JSON line
# whose perplexity depends on the backend and the manifest.
FAKE_PPL = """#!/usr/bin/env python3
import json, sys
a = sys.argv
assert a[1:3] == ["eval", "ppl"], a
backend = a[a.index("--backend") + 1]
manifest = a[a.index("-m") + 1]
ppl = 40.0
if backend == "opencl" and manifest.endswith("far.yaml"):
    ppl = 40.4
print(json.dumps({"ppl": ppl, "length": int(a[a.index("--length") + 1])}))
"""


def run_ppl(tmp_path: Path, manifests: list[str], max_rel: str):
    fake = tmp_path / "stretch"
    fake.write_text(FAKE_PPL)
    fake.chmod(0o755)
    text = tmp_path / "t.txt"
    text.write_text("some text")
    out = tmp_path / "ppl.json"
    res = subprocess.run([sys.executable, str(SCRIPT), "--stretch", str(fake), "--ppl",
                          str(text), "--length", "64", "--max-rel", max_rel, "--work",
                          str(tmp_path / "work"), "--json", str(out), "-m", *manifests],
                         capture_output=True, text=True)
    return res, json.loads(out.read_text())


def test_ppl_rows_and_bound(tmp_path):
    res, rep = run_ppl(tmp_path, ["a/near.yaml", "a/far.yaml"], "0.005")
    assert res.returncode == 1, res.stderr
    assert "a/near.yaml 64 cpu 40.000000 opencl 40.000000 rel 0.000e+00" in res.stdout
    assert "a/far.yaml 64 cpu 40.000000 opencl 40.400000 rel 1.000e-02" in res.stdout
    assert rep["length"] == 64
    assert abs(rep["manifests"][1]["relative_difference"] - 0.01) < 1e-12
    res, _ = run_ppl(tmp_path, ["a/near.yaml", "a/far.yaml"], "0.011")
    assert res.returncode == 0, res.stderr
