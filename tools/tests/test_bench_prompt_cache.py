"""tools/bench_prompt_cache.py runs each side three ways (no cache, writing
the file, reading it) and tabulates the medians, against stand-ins for
`stretch run` and `llama-completion` that write the file they are given."""

import json
import stat
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench_prompt_cache.py"

# Each writes --prompt-cache's file; the stretch one says what --json says.
FAKE_STRETCH = """#!/usr/bin/env python3
import json, os, sys
a = sys.argv
cache = a[a.index("--prompt-cache") + 1] if "--prompt-cache" in a else None
had = bool(cache) and os.path.exists(cache)
if cache:
    open(cache, "wb").write(b"s" * 3000)
print(json.dumps({"prompt_ids": list(range(10)), "tokens": [1], "cached_tokens": 8 if had else 0}))
"""
FAKE_LLAMA = """#!/usr/bin/env python3
import sys
a = sys.argv
if "--prompt-cache" in a:
    open(a[a.index("--prompt-cache") + 1], "wb").write(b"l" * 2000)
"""


def fake(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def run(tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    model = tmp / "m.gguf"
    model.write_bytes(b"GGUF")
    return subprocess.run([sys.executable, str(SCRIPT), "--stretch", str(tmp / "stretch"),
                           "--model", str(model), "--llama-bin", str(tmp), "--out",
                           str(tmp / "out.json"), *extra], capture_output=True, text=True)


def test_each_side_runs_three_ways_and_the_table_says_so(tmp_path):
    fake(tmp_path / "stretch", FAKE_STRETCH)
    fake(tmp_path / "llama-completion", FAKE_LLAMA)
    done = run(tmp_path, "--reps", "2")
    assert done.returncode == 0, done.stderr
    rows = [l.split("|")[1].strip() for l in done.stdout.splitlines() if l.startswith("| ")]
    assert rows[1:] == ["none", "write", "read", "file size"]
    assert "10 prompt tokens (stretch took 8-8 from the file)" in done.stdout
    assert "| file size | 0.0 MB | 0.0 MB | |" in done.stdout
    raw = json.loads((tmp_path / "out.json").read_text())
    assert raw["file_bytes"] == {"stretch": 3000, "llama": 2000}
    assert all(len(raw["runs"][side][way]) == 2 for side in ("stretch", "llama")
               for way in ("none", "write", "read"))
    assert raw["stretch_cached_tokens"] == [8, 8]


def test_a_missing_peer_is_named(tmp_path):
    fake(tmp_path / "stretch", FAKE_STRETCH)
    done = run(tmp_path, "--reps", "1")
    assert done.returncode == 2
    assert "llama-completion is missing: tools/build_llama_native.sh builds it" in done.stderr
