"""Opening an engine, its info, and text <-> ids."""

from __future__ import annotations

import pytest

import stretch
from conftest import N_CTX_TRAIN, N_LAYERS, N_VOCAB, SAMPLE_TEXT


def test_info_comes_from_the_model_and_manifest(engine, model):
    info = engine.info
    assert isinstance(info, stretch.EngineInfo)
    assert (info.n_vocab, info.n_layers, info.n_ctx_train) == (N_VOCAB, N_LAYERS, N_CTX_TRAIN)
    assert info.n_ctx == 128 and info.n_threads == 2  # the manifest's
    assert (info.n_heads, info.n_kv_heads, info.n_embd, info.head_dim) == (4, 2, 64, 16)
    assert (info.bos, info.eos) == (1, 2) and info.add_bos is False
    assert info.model_path == str(model)
    assert info.plugins == {"tokenizer": "bpe", "positional-encoding": "rope",
                            "attention": "dense", "sampler": "greedy"}
    assert info.samplers == ("greedy",)


def test_options_override_the_manifest(manifest):
    with stretch.Engine(manifest, context=64, threads=1) as e:
        assert (e.info.n_ctx, e.info.n_threads) == (64, 1)


def test_model_option_replaces_the_manifests(workdir, manifest, model):
    import subprocess
    from conftest import tool
    other = workdir / "other.gguf"
    subprocess.run([str(tool("st-gen-tiny-model")), "--out", str(other), "--layers", "1"],
                   check=True)
    with stretch.Engine(manifest, model=other) as e:
        assert e.info.model_path == str(other) and e.info.n_layers == 1


@pytest.mark.parametrize("text", [SAMPLE_TEXT, "naïve café — 東京 🙂", " leading space", ""])
def test_tokenize_detokenize_round_trip(engine, text):
    ids = engine.tokenize(text)
    assert all(isinstance(i, int) and 0 <= i < N_VOCAB for i in ids)
    assert engine.detokenize(ids) == text


def test_merges_make_fewer_tokens_than_bytes(engine):
    # The BPE vocabulary has 200 merges: English text must use them.
    assert len(engine.tokenize(SAMPLE_TEXT)) < len(SAMPLE_TEXT.encode()) * 0.8


def test_special_tokens_are_parsed_only_when_asked(engine):
    assert engine.tokenize("<|im_start|>", special=True) == [1]
    plain = engine.tokenize("<|im_start|>")
    assert len(plain) > 1 and 1 not in plain
    assert engine.tokenize("hi", add_bos=True) == [1] + engine.tokenize("hi")


def test_token_piece_and_chat_prompt(engine):
    ids = engine.tokenize("hello")
    assert b"".join(engine.token_piece(i) for i in ids) == b"hello"
    chat = engine.chat_prompt("What is 2+2?")
    assert "<|im_start|>user\nWhat is 2+2?<|im_end|>" in chat


def test_chat_ids_render_a_conversation(engine):
    one = engine.chat_ids([{"role": "user", "content": "What is 2+2?"}])
    # One user turn is the chat prompt, its markers special tokens.
    assert list(one) == engine.tokenize(engine.chat_prompt("What is 2+2?"), special=True,
                                        add_bos=engine.info.add_bos)
    first = engine.generate(one, max_tokens=3, fresh_cache=True)
    conv = [("user", "What is 2+2?"), ("assistant", first.text), ("user", "And 3+3?")]
    two = engine.chat_ids(conv)
    assert len(two) > len(one) and "And 3+3?" in engine.detokenize(two)
    second = engine.generate(two, max_tokens=3)
    assert second.stats.n_cached >= len(one) - 1  # the first turn's prompt, from the cache
    # A role outside the template's, and a NUL that would cut the text.
    with pytest.raises(stretch.Error) as e:
        engine.chat_ids([("wizard", "x")])
    assert e.value.status == stretch.Status.INVALID and "wizard" in e.value.message
    with pytest.raises(ValueError, match=r"messages\[0\].content: a NUL"):
        engine.chat_ids([("user", "a\0b")])


def test_detokenize_accepts_numpy_ids(engine):
    import numpy as np
    ids = engine.tokenize("numpy ids")
    assert engine.detokenize(np.array(ids, dtype=np.int64)) == "numpy ids"
