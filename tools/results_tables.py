#!/usr/bin/env python3
"""Markdown tables from the outputs of tools/eval_long.sh.

  tools/results_tables.py ppl out/ppl-32768        perplexity by position bucket
  tools/results_tables.py passkey out/passkey       accuracy by length (all depths)
                                                    and by length x depth
  tools/results_tables.py passkey-grid ROOT...      one table: strategy x length x
                                                    depth, the points of several
                                                    output roots merged by strategy

One row per strategy (the output directory's name), in the order given by
--order (comma-separated names) and then alphabetically.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import defaultdict
from pathlib import Path


LABELS = {"greedy": "dense (greedy.yaml)"}


def label(name: str) -> str:
    return LABELS.get(name, name + ".yaml")


def ordered(dirs: list[Path], order: list[str]) -> list[Path]:
    rank = {n: i for i, n in enumerate(order)}
    return sorted(dirs, key=lambda d: (rank.get(d.name, len(rank)), d.name))


def ppl_table(root: Path, order: list[str]) -> str:
    dirs = ordered([d for d in root.iterdir() if (d / "ppl.csv").is_file()], order)
    if not dirs:
        raise SystemExit(f"error: no */ppl.csv under {root}")
    rows, header = [], None
    for d in dirs:
        with open(d / "ppl.csv", newline="") as f:
            recs = list(csv.DictReader(f))
        cols = [f"{int(r['start']) // 1024}k-{int(r['end']) // 1024}k" for r in recs]
        if header is None:
            header = cols
        elif cols != header:
            raise SystemExit(f"error: {d}/ppl.csv has other buckets than the first table row")
        nll = sum(float(r["nll"]) * int(r["tokens"]) for r in recs)
        n = sum(int(r["tokens"]) for r in recs)
        rows.append([label(d.name)] + [f"{float(r['ppl']):.2f}" for r in recs] + [f"{math.exp(nll / n):.2f}"])
    out = ["| strategy | " + " | ".join(header) + " | all |",
           "|---|" + "---:|" * (len(header) + 1)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def passkey_tables(root: Path, order: list[str]) -> str:
    dirs = ordered([d for d in root.iterdir() if (d / "passkey.csv").is_file()], order)
    if not dirs:
        raise SystemExit(f"error: no */passkey.csv under {root}")
    by_len: dict[str, dict[int, list[tuple[int, float, int]]]] = {}
    lengths: set[int] = set()
    for d in dirs:
        acc = defaultdict(list)
        with open(d / "passkey.csv", newline="") as f:
            for r in csv.DictReader(f):
                acc[int(r["length"])].append((int(r["depth"]), float(r["accuracy"]), int(r["samples"])))
                lengths.add(int(r["length"]))
        by_len[d.name] = acc
    ls = sorted(lengths)
    out = ["Accuracy over all depths (samples per cell in brackets):", "",
           "| strategy | " + " | ".join(str(n) for n in ls) + " |",
           "|---|" + "---:|" * len(ls)]
    for name, acc in by_len.items():
        cells = []
        for n in ls:
            pts = acc.get(n)
            if not pts:
                cells.append("-")
                continue
            total = sum(s for _, _, s in pts)
            ok = sum(a * s for _, a, s in pts)
            cells.append(f"{100 * ok / total:.0f}% ({total})")
        out.append(f"| {label(name)} | " + " | ".join(cells) + " |")
    out += ["", "By depth (percent of the prompt where the key sits), accuracy %:", ""]
    for name, acc in by_len.items():
        depths = sorted({dp for pts in acc.values() for dp, _, _ in pts})
        out += [f"`{label(name)}`:", "", "| length | " + " | ".join(f"{dp}%" for dp in depths) + " |",
                "|---|" + "---:|" * len(depths)]
        for n in sorted(acc):
            m = {dp: a for dp, a, _ in acc[n]}
            out.append(f"| {n} | " + " | ".join(f"{100 * m[dp]:.0f}" if dp in m else "-" for dp in depths) + " |")
        out.append("")
    return "\n".join(out)


def passkey_grid(roots: list[Path], order: list[str]) -> str:
    """Rows (strategy, length), columns the depths, cells "correct/samples";
    the strategies' points.jsonl from every root, the last of a repeated
    (length, depth, sample) kept."""
    import json
    pts: dict[str, dict[tuple[int, int, int], bool]] = defaultdict(dict)
    for root in roots:
        for d in root.iterdir():
            f = d / "points.jsonl"
            if not f.is_file():
                continue
            for line in f.read_text().splitlines():
                if line.strip():
                    r = json.loads(line)
                    if "points" in r:  # the header line: what the points depend on
                        continue
                    pts[d.name][(r["length"], r["depth"], r["sample"])] = bool(r["correct"])
    if not pts:
        raise SystemExit("error: no */points.jsonl under " + ", ".join(map(str, roots)))
    depths = sorted({dp for p in pts.values() for _, dp, _ in p})
    rank = {n: i for i, n in enumerate(order)}
    out = ["| strategy | length | " + " | ".join(f"{dp}%" for dp in depths) + " |",
           "|---|---:|" + "---:|" * len(depths)]
    for name in sorted(pts, key=lambda n: (rank.get(n, len(rank)), n)):
        first = True
        for n in sorted({ln for ln, _, _ in pts[name]}):
            cells = []
            for dp in depths:
                got = [c for (ln, d, _), c in pts[name].items() if ln == n and d == dp]
                cells.append(f"{sum(got)}/{len(got)}" if got else "-")
            out.append(f"| {label(name) if first else ''} | {n} | " + " | ".join(cells) + " |")
            first = False
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=["ppl", "passkey", "passkey-grid"])
    ap.add_argument("root", type=Path, nargs="+")
    ap.add_argument("--order", default="greedy,linear,ntk,dynamic-ntk,yarn,giraffe,lm-infinite,streaming,sirllm,squeezed")
    a = ap.parse_args()
    for r in a.root:
        if not r.is_dir():
            print(f"error: {r} is not a directory", file=sys.stderr)
            return 2
    order = [s for s in a.order.split(",") if s]
    if a.kind == "passkey-grid":
        print(passkey_grid(a.root, order))
    elif len(a.root) != 1:
        print(f"error: {a.kind} takes one output root", file=sys.stderr)
        return 2
    else:
        print(ppl_table(a.root[0], order) if a.kind == "ppl" else passkey_tables(a.root[0], order))
    return 0


if __name__ == "__main__":
    sys.exit(main())
