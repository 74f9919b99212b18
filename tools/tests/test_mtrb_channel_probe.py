"""tools/mtrb_channel_probe.py's re-ordering and fusion."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mtrb_channel_probe import Ranking, fuse, reorder  # noqa: E402


def test_reorder_sorts_by_score_and_keeps_ties_in_order():
    assert reorder([7, 3, 5, 1], {7: 0.0, 3: 2.0, 5: 0.0, 1: 1.0}) == [3, 1, 7, 5]


def test_fusion_of_two_orders():
    first, second = [1, 2, 3], [3, 2, 1]
    # 1 and 3 have the same sum (1/61 + 1/63), above 2's (2/62); the first
    # order breaks their tie.
    assert fuse(first, second) == [1, 3, 2]
    assert fuse(first, first) == first
    # A document first in one order and second in the other beats one
    # that is third and first.
    assert fuse([4, 5, 6], [5, 6, 4])[0] == 5


def test_ranking_answers_each_query_with_its_order():
    r = Ranking([[2, 0, 1], [1, 2, 0]], [("a", [0]), ("b", [1])])
    assert r.rank("a", 2) == [2, 0] and r.rank("b", 1) == [1]
