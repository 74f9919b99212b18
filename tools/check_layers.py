#!/usr/bin/env python3
"""Check the architecture's two include rules (docs/architecture.md):

1. core/ is in layers, bottom to top (core/CMakeLists.txt's ST_CORE_LAYERS):
   a file may include headers of its own layer and the layers below it,
   never one above.
2. The CLI and every other program under tools/ are clients of the public
   API: they include stretch's public headers (<stretch/...>) and their own
   files, nothing from core/ (--cli). Benchmarks of core's private kernels
   live under tests/ with the tests, which may.

Usage: check_layers.py REPO [--cli]. Prints every violation; exit 1 if any.
"""
import re
import sys
from pathlib import Path

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layers_of(repo: Path) -> list[str]:
    text = (repo / "core" / "CMakeLists.txt").read_text()
    m = re.search(r"set\(ST_CORE_LAYERS ([a-z ]+)\)", text)
    if not m:
        sys.exit("check_layers: ST_CORE_LAYERS not found in core/CMakeLists.txt")
    return m.group(1).split()


def core_headers(repo: Path, layers: list[str]) -> dict[str, str]:
    """header file name -> its layer (names are unique across core/)."""
    where = {}
    for layer in layers:
        for h in (repo / "core" / layer).rglob("*"):
            if h.suffix in (".h", ".inc"):
                if h.name in where:
                    sys.exit(f"check_layers: {h.name} is in two layers")
                where[h.name] = layer
    return where


def main() -> int:
    repo = Path(sys.argv[1])
    layers = layers_of(repo)
    rank = {name: i for i, name in enumerate(layers)}
    where = core_headers(repo, layers)
    bad = []
    stray = [p for p in (repo / "core").iterdir()
             if p.is_file() and p.suffix in (".c", ".h", ".inc")]
    for p in stray:
        bad.append(f"{p.relative_to(repo)}: lies outside every layer folder of core/")
    for layer in layers:
        for src in sorted((repo / "core" / layer).rglob("*")):
            if src.suffix not in (".c", ".h", ".inc"):
                continue
            for inc in INCLUDE.findall(src.read_text(errors="replace")):
                name = Path(inc).name
                target = where.get(name)
                if target is None:
                    if not (src.parent / inc).exists():
                        bad.append(f"{src.relative_to(repo)}: includes \"{inc}\", found in no layer")
                    continue
                if rank[target] > rank[layer]:
                    bad.append(f"{src.relative_to(repo)} ({layer}) includes \"{inc}\" "
                               f"from the higher layer {target}")
    if "--cli" in sys.argv:
        for src in sorted((repo / "tools").rglob("*.[ch]")):
            for inc in INCLUDE.findall(src.read_text(errors="replace")):
                if Path(inc).name in where:
                    bad.append(f"{src.relative_to(repo)}: includes core's \"{inc}\"; tools/ "
                               "uses only the public headers (<stretch/...>)")
    for line in bad:
        print(line)
    print(f"check_layers: {len(bad)} violation(s); layers: {' < '.join(layers)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
