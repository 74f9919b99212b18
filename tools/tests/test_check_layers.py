"""tools/check_layers.py finds an upward include and a core include in the CLI."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "check_layers.py"


def make_repo(root: Path, engine_includes: str, base_includes: str, cli_includes: str) -> Path:
    (root / "core" / "base").mkdir(parents=True)
    (root / "core" / "engine").mkdir(parents=True)
    (root / "tools" / "stretch").mkdir(parents=True)
    (root / "core" / "CMakeLists.txt").write_text("set(ST_CORE_LAYERS base engine)\n")
    (root / "core" / "base" / "diag.h").write_text("")
    (root / "core" / "base" / "diag.c").write_text(base_includes)
    (root / "core" / "engine" / "engine.h").write_text("")
    (root / "core" / "engine" / "engine.c").write_text(engine_includes)
    (root / "tools" / "stretch" / "main.c").write_text(cli_includes)
    return root


def run(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(repo), *args],
                          capture_output=True, text=True)


def test_downward_includes_pass(tmp_path):
    repo = make_repo(tmp_path, '#include "diag.h"\n#include "engine.h"\n', '#include "diag.h"\n',
                     "#include <stretch/stretch.h>\n")
    r = run(repo, "--cli")
    assert r.returncode == 0, r.stdout


def test_an_upward_include_fails(tmp_path):
    repo = make_repo(tmp_path, '#include "diag.h"\n', '#include "engine.h"\n', "")
    r = run(repo)
    assert r.returncode == 1
    assert "core/base/diag.c (base) includes \"engine.h\" from the higher layer engine" in r.stdout


def test_the_cli_may_not_include_core(tmp_path):
    repo = make_repo(tmp_path, "", "", '#include "diag.h"\n')
    assert run(repo).returncode == 0
    r = run(repo, "--cli")
    assert r.returncode == 1 and "tools/stretch/main.c" in r.stdout
