"""Scoring: per-token NLLs as numpy, equal to `stretch eval ppl`."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

import stretch
from conftest import SAMPLE_TEXT

LENGTH = 64


def test_score_shape_dtype_and_first_token(engine):
    ids = engine.tokenize(SAMPLE_TEXT)[:LENGTH]
    nll = engine.score(ids)
    assert isinstance(nll, np.ndarray) and nll.dtype == np.float32 and nll.shape == (LENGTH,)
    assert nll[0] == 0.0
    assert np.all(np.isfinite(nll)) and np.all(nll[1:] > 0)


def test_chunked_scoring_matches_whole(engine):
    ids = engine.tokenize(SAMPLE_TEXT)[:LENGTH]
    np.testing.assert_allclose(engine.score(ids, chunk=16), engine.score(ids), rtol=1e-4,
                               atol=1e-4)


def test_greedy_token_has_the_lowest_nll(engine):
    # The greedy continuation is the argmax of the next-token distribution,
    # so no other token may be more likely in its place.
    prompt = engine.tokenize(SAMPLE_TEXT)[:20]
    greedy = engine.generate(prompt, max_tokens=1).tokens[0]
    best = engine.score(prompt + [greedy])[-1]
    rng = np.random.default_rng(0)
    for other in rng.choice(engine.info.n_vocab, size=24, replace=False):
        if other != greedy:
            assert best <= engine.score(prompt + [int(other)])[-1]


def test_score_equals_stretch_eval(engine, manifest, stretch_cli, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text(SAMPLE_TEXT * 2)
    out = tmp_path / "eval"
    subprocess.run([str(stretch_cli), "eval", "ppl", "-m", str(manifest), "--length", str(LENGTH),
                    "--windows", "1", "--buckets", "4", "--chunk", "16", "--out", str(out),
                    str(text)], check=True, capture_output=True)
    # The first line is the resume header (hashes of the inputs); then one
    # line per window.
    lines = [json.loads(line) for line in (out / "points.jsonl").read_text().splitlines()]
    point = next(p for p in lines if "nll" in p)
    ids = engine.tokenize(text.read_text())[:LENGTH]  # eval tokenizes without flags
    nll = engine.score(ids, chunk=16)
    sums = [0.0] * 4
    for t in range(1, LENGTH):  # eval's bucketing, summed in double in order
        sums[t * 4 // LENGTH] += float(nll[t])
    assert sums == pytest.approx(point["nll"], rel=1e-9)


def test_progress_reports_and_cancels(engine):
    ids = engine.tokenize(SAMPLE_TEXT)[:LENGTH]
    seen = []
    engine.score(ids, chunk=16, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (LENGTH, LENGTH)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    with pytest.raises(stretch.Error) as info:
        engine.score(ids, chunk=16, progress=lambda done, total: True)
    assert info.value.status == stretch.Status.CANCELLED
