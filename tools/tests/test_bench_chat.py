"""tools/bench_chat.py pipes the turns into `stretch chat --json` and sums
what each run prefilled, against stand-ins that answer as a chat that
continues (a turn computes its own tokens) and one that drops old turns
(it computes the whole conversation again and says so on stderr)."""

import json
import stat
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench_chat.py"

# Each line read is a turn of 10 tokens answered with 4; "drop" re-feeds
# everything after turn 2 and reports a dropped exchange each turn.
FAKE = """#!/usr/bin/env python3
import json, sys
drop = "drop" in sys.argv[0]
past = 0
for k, line in enumerate(sys.stdin, 1):
    prompt = past + 10
    cached = 0 if drop and k > 2 else past
    if drop and k > 2:
        print("stretch: the conversation outgrew the context of 20 tokens", file=sys.stderr)
    print(json.dumps({"turn": k, "text": "ok", "stopped_by": "max_tokens",
                      "prompt_tokens": prompt, "cached_tokens": cached, "generated_tokens": 4,
                      "timings": {"prefill_s": 0.001 * (prompt - cached), "decode_s": 0.01}}))
    past = prompt + 3
"""


def fake(path: Path) -> Path:
    path.write_text(FAKE)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def run(tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "-m", "m.yaml", *extra],
                          capture_output=True, text=True, cwd=tmp)


def test_each_build_is_a_row_with_what_it_prefilled(tmp_path):
    go = fake(tmp_path / "go")
    drop = fake(tmp_path / "drop")
    done = run(tmp_path, "--stretch", f"cont={go}", "--stretch", f"old={drop}", "--turns", "5",
               "--out", str(tmp_path / "raw.json"))
    assert done.returncode == 0, done.stderr
    rows = {l.split("|")[1].strip(): [c.strip() for c in l.split("|")[2:-1]]
            for l in done.stdout.splitlines() if l.startswith("| ") and "m.yaml" in l}
    # Continuing: 10 tokens a turn. Dropping: turns 3-5 prefill all of it
    # (23 + 36 + 49 + 10 each).
    assert rows["cont"][:7] == ["m.yaml", "5/5", "50", "20", "66", "0", "10.0"]
    assert rows["old"][:6] == ["m.yaml", "5/5", str(10 + 10 + 36 + 49 + 62), "20", "66", "3"]
    raw = json.loads((tmp_path / "raw.json").read_text())
    assert len(raw["cont m.yaml"]["turns"]) == 5


def test_bad_inputs_are_named(tmp_path):
    done = run(tmp_path, "--stretch", str(tmp_path / "missing"))
    assert done.returncode == 2 and "no such stretch binary" in done.stderr
    empty = tmp_path / "q.txt"
    empty.write_text("\n/reset\n")
    done = run(tmp_path, "--stretch", str(fake(tmp_path / "go")), "--questions", str(empty))
    assert done.returncode == 2 and "q.txt: no questions in it" in done.stderr
    done = run(tmp_path, "--turns", "0")
    assert done.returncode == 2 and "--turns must be at least 1" in done.stderr


FAKE_LLAMA = """#!/usr/bin/env python3
import sys
a = sys.argv
assert "-cnv" in a and "--context-shift" in a and a[a.index("-c") + 1] == "512"
turns = sys.stdin.read().splitlines()
print("> ok\\n" * len(turns))
print("common_perf_print: prompt eval time =     260.85 ms /    53 tokens (    4.92 ms per token)",
      file=sys.stderr)
print("common_perf_print:        eval time =    1311.46 ms /   133 runs   (    9.86 ms per token)",
      file=sys.stderr)
"""


def test_the_llama_row_reads_its_timing_lines(tmp_path):
    go = fake(tmp_path / "go")
    bin_dir = tmp_path / "llama"
    bin_dir.mkdir()
    (bin_dir / "llama-completion").write_text(FAKE_LLAMA)
    (bin_dir / "llama-completion").chmod(0o755)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    done = run(tmp_path, "--stretch", str(go), "--turns", "3", "--context", "512", "--llama",
               "--llama-bin", str(bin_dir), "--model", str(model))
    assert done.returncode == 0, done.stderr
    row = [l for l in done.stdout.splitlines() if l.startswith("| llama.cpp")]
    cells = [c.strip() for c in row[0].split("|")[1:-1]]
    assert cells[3:6] == ["53", "133", "186"], cells
    assert cells[8:10] == ["203", "101"], cells  # its tokens over its timing lines' times
    done = run(tmp_path, "--stretch", str(go), "--llama", "--llama-bin", str(bin_dir),
               "--context", "512", "--model", str(tmp_path / "none.gguf"))
    assert done.returncode == 2 and "none.gguf: no such model" in done.stderr
    done = run(tmp_path, "--stretch", str(go), "--llama", "--llama-bin", str(bin_dir))
    assert done.returncode == 2 and "--llama needs --context" in done.stderr


FAKE_SERVER = """#!/usr/bin/env python3
import json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
assert sys.argv[1] == "serve" and sys.argv[sys.argv.index("--parallel") + 1] == "2"
seen = {"busy": 0}

class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert body["model"] == "m"
        if self.path == "/v1/completions":
            seen["busy"] += 1
            out = {"usage": {}}
        else:
            n = len(body["messages"])
            # each turn: 10 new tokens; the past comes from the cache
            out = {"usage": {"prompt_tokens": 10 * n, "completion_tokens": 4,
                             "prompt_tokens_details": {"cached_tokens": 10 * (n - 1)}},
                   "choices": [{"message": {"content": "ok"}}]}
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(f"stretch serve: listening on http://127.0.0.1:{s.server_address[1]}", flush=True)
s.serve_forever()
"""


def test_serve_mode_counts_what_usage_says_came_from_the_cache(tmp_path):
    server = tmp_path / "srv"
    server.write_text(FAKE_SERVER)
    server.chmod(0o755)
    (tmp_path / "m.yaml").write_text("format: 1\n")
    done = run(tmp_path, "--stretch", f"s={server}", "--serve", "--turns", "3",
               "--out", str(tmp_path / "raw.json"))
    assert done.returncode == 0, done.stderr
    row = [l for l in done.stdout.splitlines() if l.startswith("| s |")]
    cells = [c.strip() for c in row[0].split("|")[1:-1]]
    # messages 1, 3, 5: prompts 10 + 30 + 50, of which 0 + 20 + 40 cached
    assert cells[2:6] == ["3/3", "30", "60", "12"], cells
    raw = json.loads((tmp_path / "raw.json").read_text())
    assert len(raw["s m.yaml"]["turns"]) == 3
    done = run(tmp_path, "--stretch", str(server), "--serve", "--context", "512")
    assert done.returncode == 2 and "--serve takes the manifests' contexts" in done.stderr
