"""stretch.Retriever: index, save, load and query as `stretch retrieve`
does (the same hits and scores), the prompt through the template, and its
refusals."""

from __future__ import annotations

import json
import subprocess

import pytest

import stretch
from conftest import tool, write_manifest

DOCS = [("otters", "Sea otters hold hands while they sleep so they do not drift apart."),
        ("kiln", "A kiln fires clay pots overnight."),
        ("comet", "A comet grows a tail near the sun.")]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, model):
    d = tmp_path_factory.mktemp("retriever")
    m = write_manifest(d / "bm25.yaml", model)
    m.write_text(m.read_text() + "retriever:\n  plugin: bm25\n  params: {tokenizer: words}\n"
                 "  top_k: 2\n")
    return m


def test_index_save_load_query_as_the_cli(manifest, tmp_path):
    with stretch.Retriever(manifest, no_index=True) as r:
        assert r.name == "bm25" and r.top_k == 2 and len(r) == 0
        r.add(DOCS)
        assert len(r) == 3
        r.save(tmp_path / "docs.bm25")
        hits = r.query("why do otters hold hands", k=3)
    assert hits[0].id == "otters" and hits[0].doc == 0 and hits[0].text == DOCS[0][1]
    out = subprocess.run([str(tool("stretch")), "retrieve", "query", "-m", str(manifest),
                          "--index", str(tmp_path / "docs.bm25"), "-k", "3", "--json",
                          "why do otters hold hands"], check=True, capture_output=True,
                         text=True).stdout
    want = json.loads(out)["hits"]
    assert [(h.id, h.doc) for h in hits] == [(w["id"], w["doc"]) for w in want]
    assert [h.score for h in hits] == pytest.approx([w["score"] for w in want], rel=1e-6)
    with stretch.Retriever(manifest, no_index=True) as again:
        again.load(tmp_path / "docs.bm25")
        assert len(again) == 3
        assert again.query("why do otters hold hands", k=3) == hits
        assert len(again.query("why do otters hold hands")) <= 2  # the strategy's top_k
        prompt = again.prompt("why do otters hold hands", k=1)
        assert "otters" in prompt and DOCS[0][1] in prompt and "why do otters" in prompt


def test_refusals(manifest, model, tmp_path):
    plain = write_manifest(tmp_path / "plain.yaml", model)
    with pytest.raises(stretch.Error) as e:
        stretch.Retriever(plain)
    assert str(plain) in str(e.value)
    (tmp_path / "junk.bm25").write_bytes(b"not an index")
    with stretch.Retriever(manifest, no_index=True) as r:
        r.add(DOCS[:1])
        with pytest.raises(stretch.Error) as e:
            r.load(tmp_path / "junk.bm25")
        assert "junk.bm25" in str(e.value)
        assert len(r) == 1  # the current index is kept
    with pytest.raises(stretch.Error) as e:
        r.query("x")
    assert e.value.status == stretch.Status.STATE
    with stretch.Retriever(manifest, no_index=True) as r:
        r.add(DOCS)
        with pytest.raises(TypeError, match="query: expected str, found int"):
            r.query(3)
        with pytest.raises(TypeError, match="document text: expected str, found bytes"):
            r.add([("x", b"y")])
        assert len(r) == 3  # nothing of a refused batch is added
        with pytest.raises(ValueError, match="query: a NUL character at 3"):
            r.prompt("why\0 otters")
