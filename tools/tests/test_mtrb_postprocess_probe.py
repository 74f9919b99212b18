"""tools/mtrb_postprocess_probe.py's transforms do what their names say."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mtrb_postprocess_probe import (  # noqa: E402
    Ranked, all_but_the_top, center, csls_tools, rocchio, unit)


def vectors(n, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=dim) * 3  # a common direction, as in sentence embeddings
    return unit(rng.normal(size=(n, dim)) + shared)


def test_center_removes_the_tools_mean():
    docs, queries = vectors(40), vectors(5, seed=1)
    dc, qc = center(docs, queries)
    assert np.allclose(np.linalg.norm(dc, axis=1), 1) and np.allclose(np.linalg.norm(qc, axis=1), 1)
    # Centred tools, before renormalising, sum to zero: the cosine of each
    # with the old mean direction is no longer all of one sign.
    assert (dc @ unit(docs.mean(axis=0)) < 0).any()


def test_abtt_projects_out_the_top_direction():
    docs, queries = vectors(40), vectors(5, seed=1)
    mu = docs.mean(axis=0)
    top = np.linalg.svd(docs - mu, full_matrices=False)[2][0]
    dd, qd = all_but_the_top(docs, queries, 1)
    assert np.allclose(dd @ top, 0, atol=1e-12) and np.allclose(qd @ top, 0, atol=1e-12)


def test_rocchio_with_no_weight_keeps_the_queries():
    docs, queries = vectors(40), vectors(5, seed=1)
    _, q0 = rocchio(docs, queries, 3, 0.0)
    assert np.allclose(q0, queries)
    _, q1 = rocchio(docs, queries, 1, 1e6)  # all weight on the first hit
    first = np.argmax(queries @ docs.T, axis=1)
    assert np.allclose(q1, docs[first], atol=1e-5)


def test_ranked_breaks_ties_by_tool_order():
    docs = unit(np.array([[1.0, 0], [1.0, 0], [0, 1.0]]))
    r = Ranked(docs, unit(np.array([[1.0, 0]])))
    r.row = {"q": 0}
    assert r.rank("q", 3) == [0, 1, 2]


def test_csls_tools_lowers_a_crowded_tool():
    # Tools 0-2 crowd together, tool 3 stands alone; a query equally near
    # tool 0 and tool 3 ranks the lone tool first once crowding counts.
    docs = unit(np.array([[1.0, 0, 0], [0.99, 0, 0.1], [0.99, 0, -0.1], [0, 1.0, 0]]))
    query = unit(np.array([[1.0, 1.0, 0]]))
    _, _, pen = csls_tools(docs, query, 2)
    assert pen[0] > pen[3]
    plain = Ranked(docs, query)
    plain.row = {"q": 0}
    fixed = Ranked(docs, query, pen)
    fixed.row = {"q": 0}
    assert plain.rank("q", 1) == [0] and fixed.rank("q", 1) == [3]
