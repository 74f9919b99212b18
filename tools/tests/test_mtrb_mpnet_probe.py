"""tools/mtrb_mpnet_probe.py's relative-position buckets are MPNet's (T5's bidirectional scheme)."""

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mtrb_mpnet_probe import position_buckets  # noqa: E402


def reference_bucket(key_minus_query, buckets=32, max_distance=128):
    """The published formula, one pair at a time: n = query - key."""
    n = -key_minus_query
    half = buckets // 2
    out = half if n < 0 else 0
    n = abs(n)
    exact = half // 2
    if n < exact:
        return out + n
    far = exact + int(math.log(n / exact) / math.log(max_distance / exact) * (half - exact))
    return out + min(far, half - 1)


def test_buckets_match_the_formula_for_every_pair():
    n = 300
    got = position_buckets(n)
    for q in range(0, n, 7):
        for k in range(n):
            assert got[q, k] == reference_bucket(k - q), (q, k)


def test_known_values():
    got = position_buckets(200)
    assert got[0, 0] == 0
    assert got[1, 0] == 1        # key one before the query: lower half
    assert got[0, 1] == 17       # key one after: upper half
    assert got[20, 0] == 10      # 8 + int(log(20 / 8) / log(16) * 8)
    assert got[0, 199] == 31     # far after: the last bucket
    assert got[199, 0] == 15     # far before: the lower half's last


def test_ensembles_fuse_the_two_encoders():
    import numpy as np
    from mtrb_mpnet_probe import ensembles
    from mtrb_reference import best_first

    # Three tools. MiniLM: 0 > 1 > 2; MPNet: 2 > 1 > 0, 2 by far.
    mini = np.array([[0.9, 0.8, 0.1]])
    mp = np.array([[0.1, 0.5, 0.95]])
    assert best_first(mini[0]) == [0, 1, 2]
    got = dict(ensembles(mp, mini))
    # RRF: tool 1, second in both, has 2/62 = 0.032258; tools 0 and 2,
    # first in one order and last in the other, have 1/61 + 1/63 =
    # 0.032266 each. So 1 comes last, and MiniLM's order breaks the tie.
    assert got["rrf-60"] == [[0, 2, 1]]
    # Sums 1.0, 1.3, 1.05: the tool second in both wins on cosines.
    assert got["cosine-sum"] == [[1, 2, 0]]
