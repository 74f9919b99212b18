"""tools/bench_native.py --merge pools the runs of several --out files into one table."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench_native.py"


def raw(path: Path, prompt: int, st_pre: float, st_dec: float, ll: dict, threads: int = 2) -> Path:
    path.write_text(json.dumps({
        "model": "m.gguf", "manifest": "g.yaml", "threads": threads, "gen_tokens": 64,
        "runs": [{"prompt": prompt, "stretch_prefill": [st_pre], "stretch_decode": [st_dec],
                  "llama_prefill": {f: [v[0]] for f, v in ll.items()},
                  "llama_decode": {f: [v[1]] for f, v in ll.items()}}]}))
    return path


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_merge_pools_reps_and_prompts(tmp_path):
    files = [raw(tmp_path / "a.json", 512, 600.0, 100.0, {"True": (200.0, 50.0), "False": (190.0, 60.0)}),
             raw(tmp_path / "b.json", 512, 700.0, 120.0, {"True": (220.0, 70.0), "False": (210.0, 80.0)}),
             raw(tmp_path / "c.json", 512, 650.0, 110.0, {"True": (210.0, 60.0), "False": (200.0, 70.0)}),
             raw(tmp_path / "d.json", 4096, 300.0, 90.0, {"True": (100.0, 30.0)})]
    done = run("--merge", *map(str, files))
    assert done.returncode == 0, done.stderr
    lines = [l for l in done.stdout.splitlines() if l.startswith("| 512") or l.startswith("| 4,096")]
    assert lines == [
        "| 512 | on | 210.0 (200.0-220.0) | 650.0 (600.0-700.0) | 3.10x | 60.0 (50.0-70.0) "
        "| 110.0 (100.0-120.0) | 1.83x |",
        "| 512 | off | 200.0 (190.0-210.0) | 650.0 (600.0-700.0) | 3.25x | 70.0 (60.0-80.0) "
        "| 110.0 (100.0-120.0) | 1.57x |",
        "| 4,096 | on | 100.0 (100.0-100.0) | 300.0 (300.0-300.0) | 3.00x | 30.0 (30.0-30.0) "
        "| 90.0 (90.0-90.0) | 3.00x |",
    ]
    assert "median (min-max) of 3 interleaved runs, 2 threads, 64 decode tokens" in done.stdout


def test_merge_refuses_mixed_settings_and_bad_files(tmp_path):
    a = raw(tmp_path / "a.json", 512, 600.0, 100.0, {"True": (200.0, 50.0)})
    b = raw(tmp_path / "b.json", 512, 600.0, 100.0, {"True": (200.0, 50.0)}, threads=4)
    done = run("--merge", str(a), str(b))
    assert done.returncode != 0
    assert "b.json" in done.stderr and "differ" in done.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    done = run("--merge", str(bad))
    assert done.returncode != 0
    assert "bad.json: not a bench_native --out file" in done.stderr


def test_cache_type_is_carried_and_checked(tmp_path):
    f16 = raw(tmp_path / "f16.json", 4096, 400.0, 100.0, {"True": (150.0, 30.0)})
    q8 = raw(tmp_path / "q8.json", 4096, 400.0, 110.0, {"True": (140.0, 28.0)})
    doc = json.loads(q8.read_text())
    doc["cache_type"] = "q8_0"
    q8.write_text(json.dumps(doc))
    done = run("--merge", str(q8))
    assert done.returncode == 0, done.stderr
    assert "1 interleaved runs, 2 threads, 64 decode tokens, q8_0 KV caches" in done.stdout
    # A file from before --cache-type measured f16: it does not pool with q8_0.
    done = run("--merge", str(f16), str(q8))
    assert done.returncode != 0
    assert "q8.json" in done.stderr and "cache_type 'q8_0' (first file: 'f16')" in done.stderr


def test_q8_0_needs_flash_attention_and_a_child_manifest(tmp_path):
    done = run("--cache-type", "q8_0", "--flash", "both", "--llama-bin", str(tmp_path))
    assert done.returncode == 2
    assert "--cache-type q8_0 needs --flash on" in done.stderr
    sys.path.insert(0, str(SCRIPT.parent))
    import bench_native
    parent = tmp_path / "greedy.yaml"
    parent.write_text("format: 1\n")
    # Both types run through a child that sets the type, f16 too: a
    # manifest with `kv-type: q8_0` must not meet llama.cpp's f16 cache.
    for kv in ("f16", "q8_0"):
        child = bench_native.cache_manifest(parent, kv, tmp_path)
        assert child != parent
        assert child.read_text() == f"format: 1\nextends: {parent.resolve()}\nkv-type: {kv}\n"


def test_warm_up_kinds_are_carried_and_not_mixed(tmp_path):
    legacy = raw(tmp_path / "legacy.json", 512, 600.0, 100.0, {"True": (200.0, 50.0)})
    done = run("--merge", str(legacy))
    assert done.returncode == 0, done.stderr
    assert "f16 KV caches, stretch cold, llama.cpp warm;" in done.stdout
    files = {}
    for kind in ("both warm", "both cold"):
        f = raw(tmp_path / f"{kind[5:]}.json", 512, 600.0, 100.0, {"True": (200.0, 50.0)})
        doc = json.loads(f.read_text())
        doc["warmup"] = kind
        f.write_text(json.dumps(doc))
        files[kind] = f
        done = run("--merge", str(f))
        assert done.returncode == 0, done.stderr
        assert f"f16 KV caches, {kind};" in done.stdout
    done = run("--merge", str(files["both warm"]), str(legacy))
    assert done.returncode != 0
    assert "legacy.json" in done.stderr
    assert "warmup 'stretch cold, llama.cpp warm' (first file: 'both warm')" in done.stderr


def test_both_sides_warm_up_unless_cold(monkeypatch):
    sys.path.insert(0, str(SCRIPT.parent))
    import bench_native
    seen = []

    def fake(cmd, what, timeout_s):
        seen.append(cmd)
        if what == "llama-bench":
            return [{"avg_ts": 100.0}]
        return {"prefill_tok_s": [500.0], "decode_tok_s": [90.0]}

    monkeypatch.setattr(bench_native, "run_json", fake)
    for cold in (False, True):
        seen.clear()
        a = bench_native.parse_args(["--cold"] if cold else [])
        assert bench_native.stretch_rates(a, 512, Path("m.yaml")) == (500.0, 90.0)
        assert bench_native.llama_rate(Path("llama-bench"), a.model, 2, True, 512, 0, 0, "f16",
                                       not a.cold) == 100.0
        stretch_cmd, llama_cmd = seen
        assert ("--warmup" in stretch_cmd) == (not cold)
        assert ("--no-warmup" in llama_cmd) == cold
