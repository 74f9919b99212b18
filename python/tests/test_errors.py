"""Failures raise stretch.Error with the status name and the C message."""

from __future__ import annotations

import pytest

import stretch
from conftest import write_manifest


def test_missing_manifest_names_the_file(tmp_path):
    path = tmp_path / "no-such-strategy.yaml"
    with pytest.raises(stretch.Error) as info:
        stretch.Engine(path)
    assert str(path) in info.value.message
    assert info.value.name.startswith("ST_E_") and info.value.name in str(info.value)


def test_unknown_plugin_names_the_manifest_line(tmp_path, model):
    path = write_manifest(tmp_path / "noplugin.yaml", model, samplers="  - plugin: no-such-sampler\n")
    with pytest.raises(stretch.Error) as info:
        stretch.Engine(path)
    assert "noplugin.yaml:9:" in info.value.message
    assert "no-such-sampler" in info.value.message


def test_missing_model(tmp_path):
    path = write_manifest(tmp_path / "nomodel.yaml", tmp_path / "absent.gguf")
    with pytest.raises(stretch.Error, match="absent.gguf"):
        stretch.Engine(path)


def test_bad_arguments_are_invalid(engine):
    with pytest.raises(stretch.Error) as info:
        engine.generate([], max_tokens=1)
    assert info.value.status == stretch.Status.INVALID and info.value.name == "ST_E_INVALID"
    with pytest.raises(stretch.Error, match="outside the vocabulary"):
        engine.generate([5, 100000], max_tokens=1)


def test_a_closed_engine_refuses_calls(manifest):
    e = stretch.Engine(manifest)
    e.close()
    e.close()  # idempotent
    with pytest.raises(stretch.Error) as info:
        e.tokenize("x")
    assert info.value.status == stretch.Status.STATE
    e.cancel()  # harmless on a closed engine


def test_unknown_status_codes_keep_their_number():
    err = stretch.Error(-99, "from a newer library")
    assert err.status == -99 and "-99" in str(err) and "from a newer library" in str(err)


def test_text_arguments_are_checked_before_the_c_call(engine):
    """A str is required (TypeError names the argument); where the C call
    takes a NUL-terminated string, a NUL would cut the text: ValueError."""
    with pytest.raises(TypeError, match="text: expected str, found bytes"):
        engine.tokenize(b"abc")
    with pytest.raises(TypeError, match="user_message: expected str, found NoneType"):
        engine.chat_prompt(None)
    with pytest.raises(ValueError, match="user_message: a NUL character at 2"):
        engine.chat_prompt("hi\0there")
    # Calls that pass a length take the NUL as a byte of the text.
    assert engine.detokenize(engine.tokenize("a\0b")) == "a\0b"
