"""tools/bench_embeddings.py: its peer file (the same tensors, and the
vocabulary in the form llama.cpp's converter writes for a BERT: word starts
marked with U+2581, "##" continuations bare, special tokens typed as
control), and the texts it reads."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_embeddings import peer_gguf, read_texts  # noqa: E402

gguf = pytest.importorskip("gguf")
REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("STRETCH_BUILD_DIR", REPO / "build"))


def test_peer_gguf_rewrites_the_vocabulary_and_keeps_the_tensors(tmp_path):
    gen = BUILD / "bin" / "st-gen-tiny-model"
    assert gen.exists(), f"{gen}: build the C project first"
    src, dst = tmp_path / "enc.gguf", tmp_path / "peer.gguf"
    subprocess.run([str(gen), "--bert", "--out", str(src)], check=True)
    peer_gguf(src, dst)
    a, b = gguf.GGUFReader(str(src)), gguf.GGUFReader(str(dst))
    before = a.fields["tokenizer.ggml.tokens"].contents()
    after = b.fields["tokenizer.ggml.tokens"].contents()
    types = b.fields["tokenizer.ggml.token_type"].contents()
    special = {before.index(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")}
    assert len(after) == len(before) == len(types)
    for i, (t, u, k) in enumerate(zip(before, after, types)):
        if i in special:
            assert u == t and k == gguf.TokenType.CONTROL
        elif t.startswith("##"):
            assert u == t[2:] and k == gguf.TokenType.NORMAL
        else:
            assert u == "\u2581" + t and k == gguf.TokenType.NORMAL
    assert b.fields["tokenizer.ggml.token_type_count"].contents() == 2
    assert b.fields["general.architecture"].contents() == "bert"
    assert [t.name for t in a.tensors] == [t.name for t in b.tensors]
    for x, y in zip(a.tensors, b.tensors):
        assert x.tensor_type == y.tensor_type and list(x.shape) == list(y.shape)
        assert np.array_equal(x.data, y.data), x.name


def test_texts_from_lines_jsonl_and_mtrb(tmp_path):
    (tmp_path / "t.txt").write_text("one\n\ntwo words\n")
    assert read_texts(str(tmp_path / "t.txt"), None) == ["one", "two words"]
    (tmp_path / "d.jsonl").write_text(json.dumps({"id": 1, "text": "a\nb"}) + "\n")
    assert read_texts(str(tmp_path / "d.jsonl"), None) == ["a\nb"]
    mtrb = REPO / "tests" / "retrieval" / "mtrb"
    want = [q["query"] for sub in ("restbench", "metatool")
            for q in json.loads(next((mtrb / sub).glob("mtr_*_test.json")).read_text())]
    assert read_texts(None, str(mtrb)) == want and len(want) > 0
