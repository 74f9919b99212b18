"""tools/bench_rerank.py's two rankers and its check against `stretch eval
retrieval`, on a tiny generated encoder served by `stretch serve`: both
rankers give the same order from the same vectors (near-ties aside), and /v1/rerank's MTRB
numbers are eval retrieval's."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lib.common import post_json  # noqa: E402
from bench_rerank import EmbedThenCosine, StretchRerank, eval_row  # noqa: E402
from mtrb_reference import load, scores  # noqa: E402

pytest.importorskip("numpy")
REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("STRETCH_BUILD_DIR", REPO / "build"))
MTRB = REPO / "tests" / "retrieval" / "mtrb"


@pytest.fixture(scope="module")
def encoder_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("rerank")
    gen, stretch = BUILD / "bin" / "st-gen-tiny-model", BUILD / "bin" / "stretch"
    assert gen.exists() and stretch.exists(), "build the C project first"
    subprocess.run([str(gen), "--bert", "--out", str(d / "enc.gguf")], check=True)
    (d / "manifests").mkdir()
    p = subprocess.Popen([str(stretch), "serve", "--port", "0", "--manifests",
                          str(d / "manifests"), "--embedding-model", str(d / "enc.gguf")],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    m = re.search(r"http://([\d.]+):(\d+)", p.stdout.readline())
    assert m, "stretch serve did not start"
    yield f"http://{m.group(1)}:{m.group(2)}", d / "enc.gguf", str(stretch)
    p.terminate()
    assert p.wait(timeout=30) == 0


@pytest.mark.parametrize("dataset", ["restbench", "metatool"])
def test_both_rankers_agree_and_equal_eval_retrieval(encoder_server, dataset):
    url, enc, stretch = encoder_server
    docs, queries = load(dataset, MTRB / dataset, False)
    assert len(docs) > 10 and queries
    rerank, cosine = StretchRerank(url, "enc", docs), EmbedThenCosine(url, "enc", docs)
    np = pytest.importorskip("numpy")
    for q, _ in queries:
        # The same vectors, summed in another order: near-ties may swap,
        # so the two orders must give the same scores, place by place.
        v = np.array([d["embedding"] for d in post_json(url + "/v1/embeddings", {
            "model": "enc", "input": [q] + docs})["data"]], dtype=np.float64)
        cos = v[1:] @ v[0] / np.linalg.norm(v[1:], axis=1) / np.linalg.norm(v[0])
        a, b = rerank.rank(q, 10), cosine.rank(q, 10)
        assert len(a) == len(b) == 10
        assert list(cos[a]) == pytest.approx(list(cos[b]), abs=1e-12), q
        assert all(x >= y - 1e-12 for x, y in zip(cos[a], cos[a][1:])), q
    got, _ = scores(rerank, queries)
    want = eval_row(stretch, enc, MTRB / dataset, dataset)
    assert got == pytest.approx(want, abs=1e-9)
