"""Generation: the callback, the iterator, cancel, and equality with the CLI."""

from __future__ import annotations

import json
import subprocess

import pytest

import stretch
from conftest import write_manifest

PROMPT = "It was the best of times, it was"


def cli_run(stretch_cli, manifest, prompt, max_tokens):
    out = subprocess.run([str(stretch_cli), "run", "-m", str(manifest), "--max-tokens",
                          str(max_tokens), "--seed", "7", "--json", prompt],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_greedy_generation_equals_stretch_run(engine, manifest, stretch_cli):
    cli = cli_run(stretch_cli, manifest, PROMPT, 24)
    seen = []
    result = engine.generate(PROMPT, max_tokens=24, seed=7,
                             on_token=lambda token, text: seen.append((token, text)))
    assert engine.prompt_ids(PROMPT).tolist() == cli["prompt_ids"]
    assert result.tokens == cli["tokens"]
    assert result.text == cli["text"]
    # The callback saw every token, in order, and the text it completes.
    assert [t for t, _ in seen if t >= 0] == result.tokens
    assert "".join(text for _, text in seen) == result.text
    assert result.stats.n_prompt == len(cli["prompt_ids"])
    assert result.stats.n_generated == len(result.tokens)
    assert result.stats.cancelled is False


def test_ids_and_text_prompts_agree(engine):
    by_text = engine.generate(PROMPT, max_tokens=8)
    by_ids = engine.generate(engine.tokenize(PROMPT), max_tokens=8)
    assert by_text.tokens == by_ids.tokens


def test_returning_true_from_the_callback_stops(engine):
    calls = []
    result = engine.generate(PROMPT, max_tokens=20,
                             on_token=lambda token, text: calls.append(token) or len(calls) == 3)
    assert len(result.tokens) == 3 and len(calls) == 3
    assert result.stats.cancelled is False


def test_cancel_from_the_callback(engine):
    def cancel_at_five(token, text):
        if token >= 0 and len(seen) == 4:
            engine.cancel()
        seen.append(token)

    seen = []
    result = engine.generate(PROMPT, max_tokens=20, on_token=cancel_at_five)
    # Cancel takes effect at the next token boundary: five tokens made it.
    assert result.stats.cancelled is True
    assert len(result.tokens) == 5
    # The engine is usable again, and gives the same greedy prefix.
    again = engine.generate(PROMPT, max_tokens=20)
    assert again.stats.cancelled is False and again.tokens[:5] == result.tokens


def test_an_exception_in_the_callback_propagates(engine):
    class Boom(Exception):
        pass

    def boom(token, text):
        raise Boom("from the callback")

    with pytest.raises(Boom):
        engine.generate(PROMPT, max_tokens=5, on_token=boom)
    assert len(engine.generate(PROMPT, max_tokens=5).tokens) == 5


def test_stream_yields_what_generate_returns(engine):
    expected = engine.generate(PROMPT, max_tokens=12)
    stream = engine.stream(PROMPT, max_tokens=12)
    events = list(stream)
    assert all(isinstance(ev, stretch.TokenEvent) for ev in events)
    assert [ev.token for ev in events if ev.token >= 0] == expected.tokens
    assert "".join(ev.text for ev in events) == expected.text
    assert stream.result is not None and stream.result.tokens == expected.tokens


def test_leaving_a_stream_early_frees_the_engine(engine):
    with engine.stream(PROMPT, max_tokens=50) as stream:
        first = [ev.token for _, ev in zip(range(3), stream)]
    assert len(first) == 3 and stream.result is None
    # The worker has stopped: the engine serves the next request.
    assert engine.generate(PROMPT, max_tokens=3).tokens == first


def test_stream_errors_raise_in_the_consumer(engine):
    with pytest.raises(stretch.Error, match="outside the vocabulary"):
        list(engine.stream([3, 10**6], max_tokens=3))


def test_a_constraint_for_one_call_answers_as_the_manifests(engine, workdir, model,
                                                             stretch_cli):
    import re

    from conftest import write_manifest
    pattern = "(yes|no), [0-9]{1,3}"
    g = engine.generate(PROMPT, max_tokens=20, constraint=stretch.Constraint.regex(pattern))
    assert re.fullmatch(pattern, g.text) and g.stats.stopped_by_eos, g.text
    m = write_manifest(workdir / "regex.yaml", model,
                       samplers=f"  - plugin: regex\n    params: {{pattern: '{pattern}'}}\n"
                                "  - plugin: greedy\n")
    assert g.text == cli_run(stretch_cli, m, PROMPT, 20)["text"]
    streamed = engine.stream(PROMPT, max_tokens=20, constraint=stretch.Constraint.regex(pattern))
    assert "".join(ev.text for ev in streamed) == g.text
    schema = {"type": "object", "properties": {"a": {"type": "boolean"}}, "required": ["a"]}
    j = engine.generate(PROMPT, max_tokens=60,
                        constraint=stretch.Constraint.json_schema(schema, whitespace="compact"))
    assert set(json.loads(j.text)) == {"a"}, j.text
    # A number the schema leaves unbounded: 16 digits a run at most, where
    # the greedy model with its digits 1-9 pushed up writes them until its
    # budget ends (max_digits=0 allows any).
    digits = {t: 100.0 for d in "123456789" for t in engine.tokenize(d, add_bos=False)}
    assert len(digits) == 9
    number = {"type": "object", "properties": {"n": {"type": "number"}}, "required": ["n"],
              "additionalProperties": False}
    capped, free = (engine.generate(PROMPT, max_tokens=80, logit_bias=digits,
                                    constraint=stretch.Constraint.json_schema(
                                        number, whitespace="compact", **kw))
                    for kw in ({}, {"max_digits": 0}))
    assert capped.stats.stopped_by_eos and max(map(len, re.findall("[0-9]+", capped.text))) == 16
    assert isinstance(json.loads(capped.text)["n"], (int, float)), capped.text
    assert not free.stats.stopped_by_eos and len(re.findall("[0-9]+", free.text)[0]) > 16
    # Without one, the engine's own chain again.
    assert engine.generate(PROMPT, max_tokens=8).text == engine.generate(PROMPT, max_tokens=8).text
    with pytest.raises(stretch.Error) as e:
        engine.generate(PROMPT, max_tokens=4, constraint=stretch.Constraint("regex",
                                                                            {"pattern": "("}))
    assert e.value.status == stretch.Status.INVALID and "regex" in str(e.value)


def test_logprobs_are_the_models_and_score_agrees(engine):
    import numpy as np
    g = engine.generate(PROMPT, max_tokens=10, logprobs=3, ignore_eos=True)
    assert len(g.logprobs) == len(g.tokens) == 10
    for e, t in zip(g.logprobs, g.tokens):
        assert e.token == t and e.logprob <= 0 and len(e.top) == 3
        assert e.top[0] == (t, e.logprob)  # greedy takes the likeliest
        assert [p for _, p in e.top] == sorted((p for _, p in e.top), reverse=True)
    # The same probabilities through score(): the whole text in one pass.
    ids = np.concatenate([engine.prompt_ids(PROMPT), np.array(g.tokens, dtype=np.int32)])
    nll = engine.score(ids)
    np.testing.assert_allclose([-e.logprob for e in g.logprobs], nll[-10:], rtol=0, atol=2e-3)
    assert engine.generate(PROMPT, max_tokens=2).logprobs is None
    with pytest.raises(stretch.Error):
        engine.generate(PROMPT, max_tokens=2, logprobs=21)


def test_prompt_logprobs_are_the_prompts_scores(engine):
    import numpy as np
    ids = engine.prompt_ids(PROMPT)
    g = engine.generate(PROMPT, max_tokens=4, logprobs=2, prompt_logprobs=True, ignore_eos=True)
    assert [e.token for e in g.prompt_logprobs] == list(ids[1:])
    nll = engine.score(ids)
    np.testing.assert_allclose([-e.logprob for e in g.prompt_logprobs], nll[1:], rtol=0,
                               atol=2e-3)
    for e in g.prompt_logprobs:
        assert len(e.top) == 2 and e.top[0][1] >= e.logprob
    # The answer is the one without them; max_tokens=0 scores the prompt alone.
    assert g.tokens == engine.generate(PROMPT, max_tokens=4, ignore_eos=True).tokens
    only = engine.generate(PROMPT, max_tokens=0, prompt_logprobs=True)
    assert only.tokens == [] and [e.logprob for e in only.prompt_logprobs] == [
        e.logprob for e in g.prompt_logprobs]
    assert engine.generate(PROMPT, max_tokens=1).prompt_logprobs is None


def test_logit_bias_for_one_call(engine):
    plain = engine.generate(PROMPT, max_tokens=6, ignore_eos=True)
    banned = engine.generate(PROMPT, max_tokens=6, ignore_eos=True,
                             logit_bias={plain.tokens[0]: -100})
    assert banned.tokens[0] != plain.tokens[0] and plain.tokens[0] not in banned.tokens
    forced = engine.generate(PROMPT, max_tokens=4, ignore_eos=True, logit_bias={300: 100.0})
    assert forced.tokens == [300] * 4
    assert engine.generate(PROMPT, max_tokens=6, ignore_eos=True).tokens == plain.tokens
    with pytest.raises(stretch.Error, match="-100 to 100"):
        engine.generate(PROMPT, max_tokens=2, logit_bias={5: 200})


def test_a_repeated_prompt_comes_from_the_cache(engine):
    ids = list(engine.prompt_ids(PROMPT))
    first = engine.generate(ids, max_tokens=5, ignore_eos=True, fresh_cache=True)
    assert first.stats.n_cached == 0
    again = engine.generate(ids, max_tokens=5, ignore_eos=True)
    assert 0 < again.stats.n_cached < len(ids) and again.tokens == first.tokens
    fresh = engine.generate(ids, max_tokens=5, ignore_eos=True, fresh_cache=True)
    assert fresh.stats.n_cached == 0 and fresh.tokens == first.tokens


def test_a_saved_prompt_is_taken_by_another_engine(engine, manifest, workdir):
    assert engine.info.prefix_cache and not engine.info.bounded_cache
    ids = list(engine.prompt_ids(PROMPT * 3))
    first = engine.generate(ids, max_tokens=5, ignore_eos=True)
    path = workdir / "prompt.cache"
    assert engine.save_prompt(path) == len(ids)
    with stretch.Engine(manifest) as other:
        assert other.load_prompt(path) == len(ids)
        again = other.generate(ids, max_tokens=5, ignore_eos=True)
        assert again.stats.n_cached > 0 and again.tokens == first.tokens
        with pytest.raises(stretch.Error, match="not a stretch prompt cache"):
            other.load_prompt(manifest)
        with pytest.raises(stretch.Error) as missing:
            other.load_prompt(workdir / "absent.cache")
        assert missing.value.status == stretch.Status.NOT_FOUND


def test_stop_strings_end_the_answer_where_one_first_appears(engine):
    full = engine.generate(PROMPT, max_tokens=24, ignore_eos=True)
    assert len(full.text) > 6 and not full.stopped_by_stop
    stop = full.text[3:6]
    seen = []
    cut = engine.generate(PROMPT, max_tokens=24, ignore_eos=True, stop=[stop, "never here"],
                          on_token=lambda token, text: seen.append(text))
    assert cut.text == full.text[:full.text.index(stop)]
    assert cut.stopped_by_stop and len(cut.tokens) <= len(full.tokens)
    assert "".join(seen) == cut.text  # what on_token saw never ran ahead of the cut
    streamed = list(engine.stream(PROMPT, max_tokens=24, ignore_eos=True, stop=stop))
    assert "".join(e.text for e in streamed) == cut.text
    # Held back, then handed on: a stop that never completes changes nothing.
    whole = engine.generate(PROMPT, max_tokens=24, ignore_eos=True, stop=full.text[-3:] + "#")
    assert whole.text == full.text and not whole.stopped_by_stop
    with pytest.raises(ValueError, match="empty"):
        engine.generate(PROMPT, max_tokens=2, stop="")
    with pytest.raises(TypeError, match="stop"):
        engine.stream(PROMPT, max_tokens=2, stop=[3])


def test_sampling_sets_the_chains_samplers_for_one_call(engine, workdir, model):
    """sampling={...} sets the manifest's samplers for one call: top_k 1
    ahead of a temperature of 100 is the greedy answer, the temperature
    alone is not; a sampler the chain lacks is warned about; a value the
    plugin refuses, or a key nobody knows, raises."""
    chain = "  - plugin: top-k\n  - plugin: temperature\n  - plugin: dist\n"
    greedy = engine.generate("The quick", max_tokens=8, ignore_eos=True).tokens
    with stretch.Engine(write_manifest(workdir / "sampled.yaml", model, samplers=chain)) as e:
        hot = e.generate("The quick", max_tokens=8, ignore_eos=True, seed=5,
                         sampling={"temperature": 100})
        assert hot.tokens != greedy
        pinned = e.generate("The quick", max_tokens=8, ignore_eos=True, seed=5,
                            sampling={"temperature": 100, "top_k": 1})
        assert pinned.tokens == greedy
        streamed = e.stream("The quick", max_tokens=8, ignore_eos=True, seed=5,
                            sampling={"top-k.k": 1})
        assert [ev.token for ev in streamed if ev.token >= 0] == greedy
        with pytest.warns(UserWarning, match="no 'top-p' sampler"):
            e.generate("The quick", max_tokens=1, sampling={"top_p": 0.5})
        with pytest.raises(stretch.Error) as err:
            e.generate("The quick", max_tokens=1, sampling={"top_k": -1})
        assert err.value.status == stretch.Status.INVALID and "top-k" in err.value.message
        with pytest.raises(ValueError, match="unknown key 'temp'"):
            e.generate("The quick", max_tokens=1, sampling={"temp": 1.0})
        with pytest.raises(TypeError, match="expected a number, found str"):
            e.generate("The quick", max_tokens=1, sampling={"temperature": "hot"})
        # The keys are the library's table, the server's request fields:
        # vLLM's second name for the repetition penalty is one of them.
        assert stretch.SAMPLING_KEYS["repetition_penalty"] == ("penalties", "repeat")
        assert stretch.SAMPLING_KEYS["repeat_penalty"] == ("penalties", "repeat")
        with pytest.warns(UserWarning, match="no 'penalties' sampler"):
            e.generate("The quick", max_tokens=1, sampling={"repetition_penalty": 1.3})


def test_info_says_whether_the_attention_evicts(workdir, model):
    path = write_manifest(workdir / "window.yaml", model, attention="sliding-window")
    with stretch.Engine(path) as bounded:
        assert bounded.info.bounded_cache and not bounded.info.prefix_cache
