"""tools/mtrb_e5_probe.py refuses what it cannot use by name, before any work."""

import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).resolve().parents[1] / "mtrb_e5_probe.py"


def run(*args):
    return subprocess.run([sys.executable, str(PROBE), *args], capture_output=True, text=True)


def test_a_missing_model_file_is_named(tmp_path):
    r = run("--lib", str(tmp_path / "libe5.so"), "--model", str(tmp_path / "none.bin"),
            "--dataset", "metatool", str(tmp_path))
    assert r.returncode != 0 and "none.bin: no such file" in r.stderr


def test_an_engine_that_cannot_be_loaded_is_named(tmp_path):
    model = tmp_path / "e5.bin"
    model.write_bytes(b"")
    lib = tmp_path / "libe5.so"
    lib.write_text("not a shared object")
    r = run("--lib", str(lib), "--model", str(model), "--dataset", "metatool", str(tmp_path))
    assert r.returncode != 0
    assert f"{lib}: cannot load the e5 engine" in r.stderr
