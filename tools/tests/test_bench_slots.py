"""tools/bench_slots.py's table: each step's median (min-max) on both
servers and the ratio of the medians, llama.cpp over stretch."""

import importlib.util
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench_slots.py"


def load():
    spec = importlib.util.spec_from_file_location("bench_slots", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_table_has_every_step_and_the_ratio_of_medians():
    b = load()
    runs = {"llama": {s: [10.0, 30.0, 20.0] for s in b.STEPS},
            "stretch": {s: [5.0, 10.0, 40.0] for s in b.STEPS}}
    runs["llama"]["restore"] = [8.0, 9.0, 8.0]
    rows = b.table(runs, {"llama": 2_000_000, "stretch": 3_000_000})
    assert rows[2] == "| fresh | 20 (10-30) | 10 (5-40) | **2.00x** |"
    assert rows[5] == "| restore | 8 (8-9) | 10 (5-40) | **0.80x** |"
    assert [r.split("|")[1].strip() for r in rows[2:]] == [*b.STEPS, "file size"]
    assert rows[-1] == "| file size | 2.0 MB | 3.0 MB | |"


def test_a_missing_peer_is_named(tmp_path):
    stretch = tmp_path / "stretch"
    stretch.write_text("#!/bin/sh\n")
    stretch.chmod(0o755)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    done = subprocess.run([sys.executable, str(SCRIPT), "--stretch", str(stretch), "--model",
                           str(model), "--llama-bin", str(tmp_path)], capture_output=True,
                          text=True)
    assert done.returncode == 2
    assert "llama-server is missing: tools/build_llama_native.sh builds it" in done.stderr
