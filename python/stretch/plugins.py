"""Plugins and strategies as `stretch plugins`, `inspect` and `check` see
them, over the public registry API (sdk/include/stretch/registry.h).

    import stretch.plugins as sp
    for p in sp.list_plugins():
        print(p.kind, p.name, p.state, [q.name for q in p.params])
    report = sp.check_plugin("sampler/top-k", conformance=True)
    print(report.ok, report.result)
    resolved = sp.resolve_strategy("manifests/greedy.yaml")
    for problem in resolved.problems:
        print(problem.text)

Everything is copied into plain dataclasses before the C handle is freed,
so results stay valid on their own. A load check forks a child process
(the plugin runs there, never in Python's process).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Optional, Sequence

from . import _capi_registry as C
from ._capi import KIND_NAMES, StError, lib
from ._handle import check_status


def _s(b: Optional[bytes]) -> Optional[str]:
    return None if b is None else b.decode("utf-8", "replace")


def _strs(arr, n: int) -> list[str]:
    return [_s(arr[i]) for i in range(n)]


def _kind(k: int) -> Optional[str]:
    return KIND_NAMES[k - 1] if 1 <= k <= len(KIND_NAMES) else None


@dataclass
class Param:
    name: str
    type: str
    required: bool
    default: object
    min: Optional[float]
    max: Optional[float]
    enum: list[str]
    unit: Optional[str]
    doc: Optional[str]


@dataclass
class Plugin:
    name: Optional[str]
    kind: Optional[str]
    version: Optional[str]
    summary: Optional[str]
    manifest: str
    library: Optional[str]
    state: str                  # ok | broken | shadowed | refused
    reason: Optional[str]
    requires: list[str] = field(default_factory=list)
    optional: list[str] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)


@dataclass
class CheckReport:
    ok: bool
    outcome: str                # ok | untested | refused | crashed | hung
    result: str
    loaded: bool
    created: bool
    refusal: Optional[str]
    message: str
    abi: Optional[str]
    signal: Optional[str]
    ops: dict[str, bool]
    conformance_ran: bool
    conformance_ok: bool
    conformance: str
    failed_checks: dict[str, str]


@dataclass
class Problem:
    kind: str                   # manifest | dir | model | load | runtime
    file: Optional[str]
    line: int
    col: int
    message: str
    text: str


@dataclass
class ResolvedPlugin:
    kind: str
    name: str
    file: str
    line: int
    col: int
    plugin: Optional[Plugin]
    params: Optional[dict[str, object]]
    load: Optional[CheckReport]


@dataclass
class StrategyReport:
    ok: bool
    parsed: bool
    path: str
    files: list[str]
    model: Optional[str]
    backend: Optional[str]
    context: int
    threads: int
    kv_type: Optional[str]
    plugins: list[ResolvedPlugin]
    problems: list[Problem]
    warnings: list[str]


def _param(p: C.StParamInfo) -> Param:
    t = C.PARAM_TYPES[p.type]
    default = None
    if p.has_default:
        default = {"int": p.default_int, "float": p.default_float,
                   "bool": p.default_bool}.get(t, _s(p.default_string))
    return Param(_s(p.name), t, p.required, default, p.min if p.has_min else None,
                 p.max if p.has_max else None, _strs(p.enum_values, p.n_enum), _s(p.unit),
                 _s(p.doc))


def _plugin(m: C.StPluginInfo) -> Plugin:
    return Plugin(_s(m.name), _kind(m.kind), _s(m.version), _s(m.summary),
                  _s(m.manifest_path), _s(m.library_path),
                  _s(lib.st_plugin_state_name(m.state)), _s(m.reason),
                  _strs(m.requires, m.n_requires), _strs(m.optional, m.n_optional),
                  [_param(m.params[i].contents) for i in range(m.n_params)])


def _report(r: C.StCheckReport) -> CheckReport:
    ops = {_s(r.ops[i].contents.name): r.ops[i].contents.present for i in range(r.n_ops)}
    failed = {_s(r.checks[i].contents.name): _s(r.checks[i].contents.message)
              for i in range(r.n_checks)}
    return CheckReport(r.ok, _s(r.outcome), _s(r.result), r.loaded, r.created,
                       _s(lib.st_refusal_name(r.refusal)) if r.refusal else None,
                       _s(r.message), f"{r.abi_major}.{r.abi_minor}" if r.has_abi else None,
                       _s(r.signal_name), ops, r.conformance_ran, r.conformance_ok,
                       _s(r.conformance_summary), failed)


class _Set:
    """An st_plugins handle, freed on exit."""

    def __init__(self, dirs: Sequence[str] = (), flags: int = 0):
        arr = (ctypes.c_char_p * max(len(dirs), 1))(*[d.encode() for d in dirs])
        err = StError()
        self.h = ctypes.c_void_p()
        status = lib.st_plugins_open(arr, len(dirs), flags, ctypes.byref(self.h),
                                     ctypes.byref(err))
        check_status(status, err)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        lib.st_plugins_free(self.h)

    def find(self, target: str):
        err = StError()
        out = ctypes.POINTER(C.StPluginInfo)()
        if target.endswith((".yaml", ".yml")):
            status = lib.st_plugins_add_manifest(self.h, target.encode(), ctypes.byref(out),
                                                 ctypes.byref(err))
            check_status(status, err)
            return out
        kind, _, name = target.rpartition("/")
        k = lib.st_kind_from_name(kind.encode()) if kind else 0
        if kind and not k:
            raise ValueError(f"'{kind}' is not a plugin kind ({', '.join(KIND_NAMES)})")
        status = lib.st_plugins_find(self.h, k, name.encode(), ctypes.byref(out),
                                     ctypes.byref(err))
        check_status(status, err)
        return out


def list_plugins(dirs: Sequence[str] = ()) -> list[Plugin]:
    """Every plugin in `dirs`, $STRETCH_PLUGIN_PATH and the built-in
    directory, broken and shadowed ones included (no plugin code runs)."""
    with _Set(dirs) as s:
        return [_plugin(lib.st_plugins_at(s.h, i).contents)
                for i in range(lib.st_plugins_count(s.h))]


def inspect_plugin(target: str, dirs: Sequence[str] = ()) -> Plugin:
    """One plugin by name ("top-k"), "kind/name" or plugin.yaml path."""
    flags = C.PLUGINS_NO_SCAN if target.endswith((".yaml", ".yml")) else 0
    with _Set(dirs, flags) as s:
        return _plugin(s.find(target).contents)


def check_plugin(target: str, dirs: Sequence[str] = (), conformance: bool = False,
                 model: Optional[str] = None, timeout_s: int = 0) -> CheckReport:
    """Load-check one plugin in a child process (and run the conformance
    suite when asked); a crash or a hang is a report, not an exception."""
    flags = C.PLUGINS_NO_SCAN if target.endswith((".yaml", ".yml")) else 0
    with _Set(dirs, flags) as s:
        info = s.find(target)
        opts = C.StCheckOptions(ctypes.sizeof(C.StCheckOptions), conformance,
                                model.encode() if model else None, timeout_s)
        out = ctypes.POINTER(C.StCheckReport)()
        err = StError()
        status = lib.st_plugin_check(s.h, info, ctypes.byref(opts), ctypes.byref(out),
                                     ctypes.byref(err))
        check_status(status, err)
        try:
            return _report(out.contents)
        finally:
            lib.st_check_report_free(out)


def _param_value(p: C.StResolvedParam) -> object:
    return {0: p.i, 1: p.f, 2: p.b}.get(p.type, _s(p.s))


def resolve_strategy(path: str, dirs: Sequence[str] = (),
                     load_check: bool = False, conformance: bool = False) -> StrategyReport:
    """What `stretch check` reports: the extends chain, each plugin found,
    parameters validated, every problem with its file:line:col; with
    `conformance` (and `load_check`) each plugin's conformance suite too."""
    arr = (ctypes.c_char_p * max(len(dirs), 1))(*[d.encode() for d in dirs])
    flags = (C.RESOLVE_LOAD_CHECK if load_check else 0) | \
        (C.RESOLVE_CONFORMANCE if load_check and conformance else 0)
    opts = C.StResolveOptions(ctypes.sizeof(C.StResolveOptions), arr, len(dirs), flags, 0)
    out = ctypes.POINTER(C.StStrategyReport)()
    err = StError()
    status = lib.st_strategy_resolve(path.encode(), ctypes.byref(opts), ctypes.byref(out),
                                     ctypes.byref(err))
    check_status(status, err)
    try:
        r = out.contents
        plugins = []
        for i in range(r.n_plugins):
            p = r.plugins[i].contents
            params = ({_s(p.params[k].contents.name): _param_value(p.params[k].contents)
                       for k in range(p.n_params)} if p.params_ok else None)
            plugins.append(ResolvedPlugin(
                _kind(p.kind), _s(p.name), _s(p.file), p.line, p.col,
                _plugin(p.plugin.contents) if p.plugin else None, params,
                _report(p.load.contents) if p.load else None))
        problems = [Problem(C.PROBLEM_KINDS[q.kind], _s(q.file), q.line, q.col, _s(q.message),
                            _s(q.text))
                    for q in (r.problems[i].contents for i in range(r.n_problems))]
        return StrategyReport(r.ok, r.parsed, _s(r.path), _strs(r.files, r.n_files),
                              _s(r.model), _s(r.backend), r.context, r.threads, _s(r.kv_type),
                              plugins, problems, _strs(r.warnings, r.n_warnings))
    finally:
        lib.st_strategy_report_free(out)
