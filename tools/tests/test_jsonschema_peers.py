"""tools/jsonschema_peers.py: the declared-coverage table beside stretch's
points, from a saved peers file (no llguidance or XGrammar needed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOOLS))

import jsonschema_peers  # noqa: E402


def test_refusal_key_names_the_keyword_or_the_message():
    key = jsonschema_peers.refusal_key
    assert key("json-schema: f.json:1:2: at /a: unsupported keyword 'not' (set strict") == "'not'"
    assert key("[14:02:58] /project/cpp/json_schema_converter.cc:870: bad thing") == "bad thing"


def test_coverage_table_from_saved_peers(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    for subset, names in {"A": ["1.json", "2.json"], "B": ["3.json"]}.items():
        (data / subset).mkdir(parents=True)
        for n in names:
            (data / subset / n).write_text("{}")
    stretch = tmp_path / "stretch.jsonl"
    stretch.write_text("{\"points\":\"jsonschema\"}\n" + "\n".join(json.dumps(p) for p in [
        {"file": "A/1.json", "subset": "A", "status": "ok"},
        {"file": "A/2.json", "subset": "A", "status": "refused",
         "reason": "at /x: unsupported keyword 'not' (set strict: false"},
        {"file": "B/3.json", "subset": "B", "status": "ok"}]) + "\n")
    peers = tmp_path / "peers.jsonl"
    peers.write_text("\n".join(json.dumps(p) for p in [
        {"peer": "llguidance 9", "file": "A/1.json", "subset": "A", "status": "refused",
         "compile_ms": 1.0, "reason": "Unimplemented keys: [\"not\"]"},
        {"peer": "llguidance 9", "file": "A/2.json", "subset": "A", "status": "refused",
         "compile_ms": 1.0, "reason": "Unimplemented keys: [\"not\"]"},
        {"peer": "llguidance 9", "file": "B/3.json", "subset": "B", "status": "ok",
         "compile_ms": 1.0, "reason": ""}]) + "\n")
    monkeypatch.setattr(sys, "argv", ["jsonschema_peers.py", "unused.gguf", str(data),
                                      "--limit", "10", "--stretch", str(stretch),
                                      "--peers-from", str(peers)])
    assert jsonschema_peers.main() == 0
    out = capsys.readouterr().out
    assert "| A | 2 | 1 (50.0%) | 0 (0.0%) | +1 |" in out
    assert "| B | 1 | 1 (100.0%) | 1 (100.0%) | +0 |" in out
    assert "| all | 3 | 2 (66.7%) | 1 (33.3%) | +1 |" in out
    assert "'not' (1)" in out and "Unimplemented keys: [\"not\"] (2)" in out
