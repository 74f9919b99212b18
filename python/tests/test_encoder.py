"""stretch.Encoder: the vectors and token ids `stretch embed` prints, in
batches of any size, for one text or many; its refusals."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

import stretch
from conftest import tool

TEXTS = ["the cat sat.", "the dogs playing!", "naive cafe, a b c", "\u732b", "",
         "the cat sat on the mat " * 6]


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    path = tmp_path_factory.mktemp("encoder") / "enc.gguf"
    subprocess.run([str(tool("st-gen-tiny-model")), "--bert", "--out", str(path)], check=True)
    return path


def cli_embed(model, text):
    out = subprocess.run([str(tool("stretch")), "embed", "--model", str(model), text],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def test_vectors_and_ids_equal_stretch_embed(bert):
    want = [cli_embed(bert, t) for t in TEXTS]
    with stretch.Encoder(bert, threads=2) as enc:
        assert enc.dim == 32 and enc.max_tokens > 0
        for batch in (64, 2, 1):
            vecs, ids = enc.embed(TEXTS, batch=batch, return_ids=True)
            assert vecs.shape == (len(TEXTS), 32) and vecs.dtype == np.float32
            for v, i, w in zip(vecs, ids, want):
                assert np.array_equal(v, np.float32(w["embedding"]))
                assert i.tolist() == w["ids"]
        one = enc.embed(TEXTS[0])
        assert one.shape == (32,) and np.array_equal(one, np.float32(want[0]["embedding"]))
        assert abs(float(np.linalg.norm(one)) - 1.0) < 1e-5
        assert enc.embed([]).shape == (0, 32)
    with pytest.raises(stretch.Error) as e:
        enc.embed("x")
    assert e.value.status == stretch.Status.STATE


def test_a_file_that_is_not_an_encoder_is_refused_by_name(model, tmp_path):
    with pytest.raises(stretch.Error) as e:
        stretch.Encoder(model)
    assert 'expected "bert"' in str(e.value) and str(model) in str(e.value)
    with pytest.raises(stretch.Error) as e:
        stretch.Encoder(tmp_path / "missing.gguf")
    assert "missing.gguf" in str(e.value)


def test_rank_orders_documents_by_cosine(bert):
    docs = ["the dogs playing!", "naive cafe, a b c", "\u732b", "the cat sat on the mat", "cats"]
    want = [np.float64(cli_embed(bert, t)["embedding"]) for t in ["the cat sat.", *docs]]
    q = want[0]
    cos = [float(q @ v / np.sqrt((q @ q) * (v @ v))) for v in want[1:]]
    with stretch.Encoder(bert, threads=2) as enc:
        got = enc.rank("the cat sat.", docs)
        assert [i for i, _ in got] == sorted(range(len(docs)), key=lambda i: (-cos[i], i))
        assert [s for _, s in got] == pytest.approx(sorted(cos, reverse=True), abs=1e-12)
        assert enc.rank("the cat sat.", docs, top_n=2) == got[:2]
        assert enc.rank("the cat sat.", docs, top_n=99) == got
        # Equal documents tie, and keep their order.
        tied = enc.rank("x", ["same", "other", "same"])
        assert [i for i, _ in tied].index(0) < [i for i, _ in tied].index(2)
        with pytest.raises(ValueError):
            enc.rank("x", docs, top_n=0)
        with pytest.raises(TypeError):
            enc.rank("x", "one string")
        assert enc.rank("x", []) == []
