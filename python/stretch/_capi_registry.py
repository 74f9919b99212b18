"""ctypes mirrors of sdk/include/stretch/registry.h (the public plugin API).

Field order and types follow the header; tests/test_layout.py checks every
size and offset against the C compiler. Every struct here is the library's:
read it, never allocate or free it from Python.
"""

from __future__ import annotations

import ctypes
from ctypes import (POINTER, Structure, c_bool, c_char_p, c_double, c_int, c_int64, c_size_t,
                    c_uint16, c_uint32, c_void_p)

from ._capi import StError, lib

PLUGINS_NO_SCAN = 1      # ST_PLUGINS_NO_SCAN
RESOLVE_LOAD_CHECK = 1   # ST_RESOLVE_LOAD_CHECK
RESOLVE_PARSE_ONLY = 2   # ST_RESOLVE_PARSE_ONLY
RESOLVE_CONFORMANCE = 4  # ST_RESOLVE_CONFORMANCE (ABI 1.3)
PARAM_TYPES = ("int", "float", "bool", "string", "enum")  # st_param_type order
PROBLEM_KINDS = ("manifest", "dir", "model", "load", "runtime")  # st_problem_kind


class StParamInfo(Structure):
    _fields_ = [("struct_size", c_uint32), ("name", c_char_p), ("type", c_int),
                ("required", c_bool), ("has_default", c_bool), ("default_int", c_int64),
                ("default_float", c_double), ("default_bool", c_bool),
                ("default_string", c_char_p), ("has_min", c_bool), ("has_max", c_bool),
                ("min", c_double), ("max", c_double), ("enum_values", POINTER(c_char_p)),
                ("n_enum", c_size_t), ("unit", c_char_p), ("doc", c_char_p)]


class StPluginInfo(Structure):
    _fields_ = [("struct_size", c_uint32), ("manifest_path", c_char_p), ("state", c_int),
                ("reason", c_char_p), ("reason_status", c_int), ("name", c_char_p),
                ("kind", c_int), ("version", c_char_p), ("summary", c_char_p),
                ("library_path", c_char_p), ("requires", POINTER(c_char_p)),
                ("n_requires", c_size_t), ("optional", POINTER(c_char_p)),
                ("n_optional", c_size_t), ("params", POINTER(POINTER(StParamInfo))),
                ("n_params", c_size_t)]


class StCheckOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("conformance", c_bool), ("model", c_char_p),
                ("timeout_s", ctypes.c_uint)]


class StOpResult(Structure):
    _fields_ = [("name", c_char_p), ("present", c_bool), ("required", c_bool)]


class StConformanceResult(Structure):
    _fields_ = [("name", c_char_p), ("passed", c_bool), ("message", c_char_p)]


class StCheckReport(Structure):
    _fields_ = [("struct_size", c_uint32), ("ok", c_bool), ("outcome", c_char_p),
                ("result", c_char_p), ("finished", c_bool), ("loaded", c_bool),
                ("created", c_bool), ("create_skipped", c_bool), ("skip_reason", c_char_p),
                ("model_failed", c_bool), ("refusal", c_int), ("status", c_int),
                ("message", c_char_p), ("has_abi", c_bool), ("abi_major", c_uint16),
                ("abi_minor", c_uint16), ("entry_version", c_char_p), ("stage", c_char_p),
                ("signal", c_int), ("signal_name", c_char_p), ("timed_out", c_bool),
                ("ops", POINTER(POINTER(StOpResult))), ("n_ops", c_size_t),
                ("conformance_ran", c_bool), ("conformance_ok", c_bool),
                ("conformance_summary", c_char_p), ("n_checks_run", c_size_t),
                ("n_checks_failed", c_size_t), ("n_checks_skipped", c_size_t),
                ("checks", POINTER(POINTER(StConformanceResult))), ("n_checks", c_size_t),
                ("untested", c_bool)]  # ABI 1.3


class StResolveOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("plugin_dirs", POINTER(c_char_p)),
                ("n_plugin_dirs", c_size_t), ("flags", c_uint32), ("timeout_s", ctypes.c_uint)]


class StProblem(Structure):
    _fields_ = [("struct_size", c_uint32), ("kind", c_int), ("status", c_int),
                ("file", c_char_p), ("line", c_int), ("col", c_int), ("message", c_char_p),
                ("text", c_char_p), ("report", POINTER(StCheckReport))]


class StResolvedParam(Structure):
    _fields_ = [("name", c_char_p), ("type", c_int), ("i", c_int64), ("f", c_double),
                ("b", c_bool), ("s", c_char_p)]


class StResolvedPlugin(Structure):
    _fields_ = [("struct_size", c_uint32), ("kind", c_int), ("name", c_char_p),
                ("file", c_char_p), ("line", c_int), ("col", c_int),
                ("plugin", POINTER(StPluginInfo)), ("params_ok", c_bool),
                ("params", POINTER(POINTER(StResolvedParam))), ("n_params", c_size_t),
                ("load", POINTER(StCheckReport))]


class StStrategyReport(Structure):
    _fields_ = [("struct_size", c_uint32), ("ok", c_bool), ("parsed", c_bool),
                ("path", c_char_p), ("files", POINTER(c_char_p)), ("n_files", c_size_t),
                ("model", c_char_p), ("backend", c_char_p), ("context", c_uint32),
                ("threads", c_uint32), ("kv_type", c_char_p),
                ("plugins", POINTER(POINTER(StResolvedPlugin))), ("n_plugins", c_size_t),
                ("problems", POINTER(POINTER(StProblem))), ("n_problems", c_size_t),
                ("n_problems_dropped", c_size_t), ("warnings", POINTER(c_char_p)),
                ("n_warnings", c_size_t), ("n_warnings_dropped", c_size_t)]


PluginsPtr = c_void_p


def _declare() -> None:
    def fn(name, restype, *argtypes):
        f = getattr(lib, name)
        f.restype = restype
        f.argtypes = list(argtypes)

    status = c_int
    fn("st_plugins_open", status, POINTER(c_char_p), c_size_t, c_uint32, POINTER(PluginsPtr),
       POINTER(StError))
    fn("st_plugins_free", None, PluginsPtr)
    fn("st_plugins_count", c_size_t, PluginsPtr)
    fn("st_plugins_at", POINTER(StPluginInfo), PluginsPtr, c_size_t)
    fn("st_plugins_warning_count", c_size_t, PluginsPtr)
    fn("st_plugins_warning_at", c_char_p, PluginsPtr, c_size_t)
    fn("st_plugins_find", status, PluginsPtr, c_int, c_char_p, POINTER(POINTER(StPluginInfo)),
       POINTER(StError))
    fn("st_plugins_add_manifest", status, PluginsPtr, c_char_p, POINTER(POINTER(StPluginInfo)),
       POINTER(StError))
    fn("st_plugin_check", status, PluginsPtr, POINTER(StPluginInfo), POINTER(StCheckOptions),
       POINTER(POINTER(StCheckReport)), POINTER(StError))
    fn("st_check_report_free", None, POINTER(StCheckReport))
    fn("st_strategy_resolve", status, c_char_p, POINTER(StResolveOptions),
       POINTER(POINTER(StStrategyReport)), POINTER(StError))
    fn("st_strategy_report_free", None, POINTER(StStrategyReport))
    fn("st_plugin_state_name", c_char_p, c_int)
    fn("st_refusal_name", c_char_p, c_int)
    fn("st_kind_from_name", c_int, c_char_p)


_declare()
