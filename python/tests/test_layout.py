"""The ctypes structs match the C headers: size and every field offset, as
the C compiler lays them out (a wrong struct_size or a shifted field would
make the library read garbage, not fail)."""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import pytest

from conftest import REPO
from stretch import Status, _capi, _capi_registry as _reg

STRUCTS = {
    "st_error": _capi.StError,
    "st_engine_options": _capi.StEngineOptions,
    "st_engine_info": _capi.StEngineInfo,
    "st_generate_params": _capi.StGenerateParams,
    "st_generate_stats": _capi.StGenerateStats,
    "st_sampling_name": _capi.StSamplingName,
    "st_param_info": _reg.StParamInfo,
    "st_plugin_info": _reg.StPluginInfo,
    "st_check_options": _reg.StCheckOptions,
    "st_op_result": _reg.StOpResult,
    "st_conformance_result": _reg.StConformanceResult,
    "st_check_report": _reg.StCheckReport,
    "st_resolve_options": _reg.StResolveOptions,
    "st_problem": _reg.StProblem,
    "st_resolved_param": _reg.StResolvedParam,
    "st_resolved_plugin": _reg.StResolvedPlugin,
    "st_strategy_report": _reg.StStrategyReport,
}


def c_layout(tmp_path) -> dict[str, int]:
    lines = []
    for cname, cls in STRUCTS.items():
        lines.append(f'printf("{cname} %zu\\n", sizeof({cname}));')
        for field, *_ in cls._fields_:
            lines.append(f'printf("{cname}.{field} %zu\\n", offsetof({cname}, {field}));')
    for status in Status:
        cname = "ST_OK" if status == 0 else f"ST_E_{status.name}"
        lines.append(f'printf("{cname} %d\\n", (int){cname});')
    for name in ("ST_ERROR_MESSAGE_MAX", "ST_KIND_COUNT", "ST_ENCODE_ADD_BOS",
                 "ST_ENCODE_PARSE_SPECIAL"):
        lines.append(f'printf("{name} %d\\n", (int){name});')
    src = tmp_path / "layout.c"
    src.write_text("#include <stddef.h>\n#include <stdio.h>\n#include <stretch/registry.h>\n"
                   "int main(void) {\n" + "\n".join(lines) + "\nreturn 0;\n}\n")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler (cc): the layout check needs one, as the C build does")
    exe = tmp_path / "layout"
    subprocess.run([cc, "-std=c11", "-I", str(REPO / "sdk" / "include"), str(src), "-o", str(exe)],
                   check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


def test_struct_layouts_match_the_headers(tmp_path):
    c = c_layout(tmp_path)
    for cname, cls in STRUCTS.items():
        assert ctypes.sizeof(cls) == c[cname], cname
        for field, *_ in cls._fields_:
            assert getattr(cls, field).offset == c[f"{cname}.{field}"], f"{cname}.{field}"


def test_status_codes_and_constants_match_the_headers(tmp_path):
    c = c_layout(tmp_path)
    for status in Status:
        assert c["ST_OK" if status == 0 else f"ST_E_{status.name}"] == status
    assert c["ST_ERROR_MESSAGE_MAX"] == _capi.ERROR_MESSAGE_MAX
    assert c["ST_KIND_COUNT"] == _capi.KIND_COUNT == len(_capi.KIND_NAMES)
    assert c["ST_ENCODE_ADD_BOS"] == _capi.ENCODE_ADD_BOS
    assert c["ST_ENCODE_PARSE_SPECIAL"] == _capi.ENCODE_PARSE_SPECIAL
