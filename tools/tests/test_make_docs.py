"""tools/make_docs.py: N passages of W words spread over the text, the same
bytes every run, and a clear refusal when the text is too short."""

import json
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[1] / "make_docs.py"


def run(tmp_path, text, *args):
    src = tmp_path / "t.txt"
    src.write_text(text)
    out = tmp_path / "d.jsonl"
    p = subprocess.run([sys.executable, str(TOOL), str(src), "--out", str(out), *args],
                       capture_output=True, text=True)
    return p, out


def test_passages_cover_the_text_evenly(tmp_path):
    words = [f"w{i}" for i in range(100)]
    p, out = run(tmp_path, " ".join(words), "--n", "4", "--words", "3")
    assert p.returncode == 0, p.stderr
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    # stride (100 - 3) // 4 = 24
    assert [d["id"] for d in docs] == ["doc0", "doc1", "doc2", "doc3"]
    assert [d["text"] for d in docs] == ["w0 w1 w2", "w24 w25 w26", "w48 w49 w50",
                                         "w72 w73 w74"]
    first = out.read_bytes()
    run(tmp_path, " ".join(words), "--n", "4", "--words", "3")
    assert out.read_bytes() == first


def test_too_many_documents_are_refused(tmp_path):
    p, _ = run(tmp_path, "a b c d e", "--n", "10", "--words", "3")
    assert p.returncode == 1
    assert "t.txt" in p.stderr and "only 3 passages" in p.stderr
