"""stretch.plugins over the public registry API: listing with schemas,
inspecting, a load check with the conformance suite, resolving strategies."""

from __future__ import annotations

import pytest

from conftest import BUILD, REPO
import stretch
from stretch import plugins

BUILTIN = str(BUILD / "lib" / "stretch" / "plugins")
FIXTURES = str(BUILD / "tests" / "loader" / "fixtures" / "sampler")


def test_list_builtin_plugins_with_schemas():
    found = {(p.kind, p.name): p for p in plugins.list_plugins([BUILTIN])}
    top_k = found[("sampler", "top-k")]
    assert top_k.state == "ok" and top_k.reason is None
    (k,) = top_k.params
    assert (k.name, k.type, k.default, k.max) == ("k", "int", 40, 16777216.0)
    assert k.doc


def test_broken_manifest_listed_with_reason():
    broken = [p for p in plugins.list_plugins([FIXTURES]) if p.state == "broken"]
    assert any("plugin.yaml:" in p.reason for p in broken)


def test_inspect_and_check_a_plugin():
    p = plugins.inspect_plugin("sampler/top-k", [BUILTIN])
    assert p.library.endswith("top-k.so")
    r = plugins.check_plugin("sampler/top-k", [BUILTIN], conformance=True)
    assert r.ok and r.outcome == "ok" and r.conformance_ok, r.result
    assert r.ops["apply"] is True


def test_crashing_plugin_is_a_report():
    r = plugins.check_plugin("bad-create-aborts", [FIXTURES])
    assert not r.ok and r.outcome == "crashed" and r.signal == "SIGABRT"


def test_unknown_plugin_raises_with_the_name():
    with pytest.raises(stretch.Error, match="no-such"):
        plugins.inspect_plugin("no-such", [BUILTIN])


def test_resolve_strategies(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("format: 1\ntokenizer: {plugin: bytes}\npositional-encoding: {plugin: nope}\n"
                    "attention: {plugin: dense}\nsamplers:\n  - plugin: top-k\n    params: {k: 3}\n")
    r = plugins.resolve_strategy(str(good), [BUILTIN])
    assert r.ok and r.parsed, r.problems
    assert r.plugins[3].params == {"k": 3}
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: 1\ntokenizer: {plugin: bytes}\npositional-encoding: {plugin: nope}\n"
                   "attention: {plugin: dense}\nsamplers:\n  - plugin: nope\n  - plugin: top-k\n"
                   "    params: {k: -1}\n")
    r = plugins.resolve_strategy(str(bad), [BUILTIN])
    assert not r.ok
    assert [(q.line, q.kind) for q in r.problems][0] == (6, "manifest")
    assert len(r.problems) == 2 and r.problems[1].line == 8
    assert r.problems[1].text.startswith(f"{bad}:8:")


def test_resolve_with_conformance_runs_each_suite(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("format: 1\ntokenizer: {plugin: bytes}\npositional-encoding: {plugin: nope}\n"
                    "attention: {plugin: dense}\nsamplers:\n  - plugin: greedy\n")
    plain = plugins.resolve_strategy(str(good), [BUILTIN], load_check=True)
    suite = plugins.resolve_strategy(str(good), [BUILTIN], load_check=True, conformance=True)
    assert plain.ok and suite.ok, suite.problems
    assert not any(p.load.conformance_ran for p in plain.plugins)
    assert all(p.load.conformance_ran and p.load.conformance_ok for p in suite.plugins)
