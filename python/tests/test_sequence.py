"""Sequences: several requests stepped together, a conversation continued
on its own cache, generate_batch, and the states a sequence refuses."""

from __future__ import annotations

import gc

import pytest

import stretch
from conftest import SAMPLE_TEXT
from stretch import Error, Status

PROMPTS = ["It was the best of times", "The quick brown fox", "def main(): return",
           "it was the season of Light"]


@pytest.fixture
def engine2(manifest):
    with stretch.Engine(manifest, parallel=2) as e:
        yield e


def run_out(engine, *seqs):
    while engine.step():
        pass
    return [s.result() for s in seqs]


def test_sequences_stepped_together_answer_as_generate_alone(engine2):
    alone = [engine2.generate(p, max_tokens=12, ignore_eos=True, fresh_cache=True)
             for p in PROMPTS[:2]]
    a, b = engine2.sequence(), engine2.sequence()
    seen = []
    a.start(PROMPTS[0], max_tokens=12, ignore_eos=True,
            on_token=lambda t, s: seen.append(t) if t >= 0 else None)
    b.start(PROMPTS[1], max_tokens=12, ignore_eos=True)
    assert a.busy and b.busy
    ga, gb = run_out(engine2, a, b)
    assert not a.busy and not b.busy
    assert ga.tokens == alone[0].tokens and ga.text == alone[0].text
    assert gb.tokens == alone[1].tokens
    assert seen == ga.tokens, "on_token ran from the steps, token by token"
    assert ga.stats.n_generated == 12 and ga.stats.n_prompt == len(engine2.prompt_ids(PROMPTS[0]))
    assert a.result() is ga, "result() is kept"


def test_a_continued_turn_answers_as_the_whole_conversation_would(engine2):
    s = engine2.sequence()
    first_ids = engine2.prompt_ids(PROMPTS[0])
    s.start(first_ids, max_tokens=6, ignore_eos=True)
    (first,) = run_out(engine2, s)
    more = engine2.tokenize(" " + PROMPTS[3])
    everything = list(first_ids) + first.tokens + more
    assert s.continued_prefix(everything) == len(first_ids) + len(first.tokens)
    assert s.continued_prefix(more) == 0
    s.continue_(more, max_tokens=8, ignore_eos=True)
    (second,) = run_out(engine2, s)
    # Nothing of the past computed again: the prompt and the answer's
    # tokens but its last, which was shown but not fed.
    assert second.stats.n_prompt == len(everything)
    assert second.stats.n_cached == len(first_ids) + len(first.tokens) - 1
    whole = engine2.generate(everything, max_tokens=8, ignore_eos=True, fresh_cache=True)
    assert second.tokens == whole.tokens
    # Text goes on the same way (tokenized without a BOS).
    s.continue_(" and more", max_tokens=3, ignore_eos=True)
    (third,) = run_out(engine2, s)
    assert third.stats.n_prompt == len(everything) + 8 + len(engine2.tokenize(" and more"))


def test_generate_batch_keeps_the_prompts_order(engine2):
    alone = [engine2.generate(p, max_tokens=10, ignore_eos=True, fresh_cache=True).tokens
             for p in PROMPTS]
    seen: dict[int, list[int]] = {}
    out = engine2.generate_batch(PROMPTS, max_tokens=10, ignore_eos=True,
                                 on_token=lambda i, t, s: seen.setdefault(i, []).append(t)
                                 if t >= 0 else None)
    assert [g.tokens for g in out] == alone
    assert seen == {i: alone[i] for i in range(len(PROMPTS))}
    assert engine2.generate_batch([]) == []
    # Its sequences are closed: both can be opened again.
    engine2.sequence().close()
    engine2.sequence().close()


def test_generate_batch_raises_what_on_token_raised(engine2):
    def boom(i, token, text):
        if i == 1:
            raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        engine2.generate_batch(PROMPTS, max_tokens=5, ignore_eos=True, on_token=boom)
    a, b = engine2.sequence(), engine2.sequence()  # nothing left open
    a.close()
    b.close()


def test_states_a_sequence_refuses(engine2):
    s = engine2.sequence()
    with pytest.raises(Error) as e:
        s.result()
    assert e.value.status == Status.STATE
    with pytest.raises(Error) as e:
        s.continue_([20, 21])
    assert e.value.status == Status.STATE, "nothing to go on from yet"
    s.start(PROMPTS[0], max_tokens=4, ignore_eos=True)
    with pytest.raises(Error) as e:
        s.result()
    assert e.value.status == Status.STATE and "step" in str(e.value)
    with pytest.raises(Error) as e:
        s.start(PROMPTS[1], max_tokens=4)
    assert e.value.status == Status.INVALID, "a request is running"
    with pytest.raises(Error) as e:
        s.save_prompt("/tmp/never-written.bin")
    assert e.value.status == Status.STATE
    other = engine2.sequence()
    with pytest.raises(Error) as e:
        engine2.sequence()
    assert e.value.status == Status.RANGE, "parallel: 2"
    s.cancel()
    (g,) = run_out(engine2, s)
    assert g.stats.cancelled
    other.close()
    s.close()
    with pytest.raises(Error, match="sequence is closed"):
        s.start(PROMPTS[0])


def test_a_saved_sequence_prompt_is_taken_by_another(engine2, workdir):
    prompt = SAMPLE_TEXT[:180]  # within the 128-token context
    s = engine2.sequence()
    s.start(prompt, max_tokens=4, ignore_eos=True)
    (first,) = run_out(engine2, s)
    path = workdir / "seq-prompt.bin"
    n = s.save_prompt(path)
    assert 0 < n <= len(engine2.prompt_ids(prompt))
    assert s.forget() >= n
    assert s.cached_prefix(prompt) == 0
    with pytest.raises(Error) as e:
        s.continue_([20, 21])
    assert e.value.status == Status.STATE, "emptied: nothing to go on from"
    t = engine2.sequence()
    assert t.load_prompt(path) == n
    offered = t.cached_prefix(prompt)
    assert 0 < offered <= n
    t.start(prompt, max_tokens=4, ignore_eos=True)
    (again,) = run_out(engine2, t)
    assert again.tokens == first.tokens and again.stats.n_cached == offered


def test_closing_the_engine_first_leaves_its_sequences_safe(manifest):
    e = stretch.Engine(manifest, parallel=2)
    s = e.sequence()
    s.start(PROMPTS[0], max_tokens=50, ignore_eos=True)
    e.step()
    e.close()  # closes the running sequence in C
    with pytest.raises(Error, match="sequence is closed"):
        s.busy
    s.close()
    del s, e
    gc.collect()
    # Engine and running sequence as one garbage cycle (the callback holds
    # the sequence): the collector finalizes them in either order.
    for _ in range(3):
        e = stretch.Engine(manifest, parallel=2)
        s = e.sequence()
        s.start(PROMPTS[0], max_tokens=50, ignore_eos=True,
                on_token=lambda t, x, s=s: s.busy and None)
        e.step()
        e.cycle = s
        del s, e
        gc.collect()


def test_an_exception_in_a_sequences_callback_comes_from_result(engine2):
    s = engine2.sequence()

    def boom(token, text):
        raise ValueError("stop here")

    s.start(PROMPTS[0], max_tokens=8, ignore_eos=True, on_token=boom)
    while engine2.step():
        pass
    with pytest.raises(ValueError, match="stop here"):
        s.result()
