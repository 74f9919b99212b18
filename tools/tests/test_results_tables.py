"""tools/results_tables.py: the passkey grid from points files as
`stretch eval passkey` writes them (a header line, then one point a line)."""

from __future__ import annotations

import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOOLS))

import results_tables  # noqa: E402

HEADER = ('{"points":"passkey","version":1,"model":"b8bce6331ac6ff73",'
          '"manifest":"3f65b52e959c54b7","settings":"seed 1, template 2"}\n')


def point(length: int, depth: int, sample: int, correct: bool) -> str:
    return (f'{{"length":{length},"depth":{depth},"sample":{sample},"key":12345,'
            f'"prompt_tokens":{length - 15},"answer":" 12345.",'
            f'"correct":{"true" if correct else "false"}}}\n')


def test_passkey_grid_skips_the_header_and_counts_per_cell(tmp_path):
    (tmp_path / "xl3m").mkdir()
    (tmp_path / "xl3m" / "points.jsonl").write_text(
        HEADER + point(2048, 0, 0, True) + point(2048, 0, 1, False) + point(2048, 100, 0, True)
        + point(8192, 100, 0, False))
    table = results_tables.passkey_grid([tmp_path], [])
    assert table.splitlines() == [
        "| strategy | length | 0% | 100% |",
        "|---|---:|---:|---:|",
        "| xl3m.yaml | 2048 | 1/2 | 1/1 |",
        "|  | 8192 | - | 0/1 |",
    ]
