"""Read the CSV files the plots draw, with errors that name file and line.

The formats are the ones the tools write:
  ppl.csv      `stretch eval ppl --out DIR`: bucket,start,end,tokens,nll,ppl
  passkey.csv  `stretch eval passkey --out DIR`: length,depth,samples,accuracy
  scale        tools/bench_scale.py --out FILE.json ({"rows": [...]}), or a CSV
               with the same row keys: manifest,prompt_tokens,
               decode_ms_per_token,peak_rss_mb
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path


class InputError(Exception):
    """A data file that cannot be plotted; the message says file:line."""


@dataclass
class Series:
    label: str
    rows: list[dict]


PPL_COLUMNS = {"start": int, "end": int, "tokens": int, "nll": float, "ppl": float}
PASSKEY_COLUMNS = {"length": int, "depth": int, "samples": int, "accuracy": float}
SCALE_COLUMNS = {"manifest": str, "prompt_tokens": int, "decode_ms_per_token": float,
                 "peak_rss_mb": float}

# Stems whose file name would mislead on a chart (results_tables.py agrees).
LABELS = {"greedy": "dense (greedy)"}


def split_label(arg: str) -> tuple[Path, str | None]:
    """PATH or PATH=LABEL."""
    if "=" in arg:
        path, label = arg.split("=", 1)
        return Path(path), label
    return Path(arg), None


def default_label(path: Path, csv_name: str) -> str:
    # out/ppl-32768/yarn/ppl.csv -> yarn; docs/data/ppl-32768/yarn.csv -> yarn
    stem = path.parent.name if path.name == csv_name else path.stem
    return LABELS.get(stem, stem)


def resolve(arg: str, csv_name: str) -> tuple[Path, str]:
    """A CSV path or a `stretch eval --out` directory holding csv_name."""
    path, label = split_label(arg)
    if path.is_dir():
        path = path / csv_name
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return path, label or default_label(path, csv_name)


def parse_cell(path: Path, line: int, column: str, text: str | None, kind):
    if text is None or text == "":
        raise InputError(f"{path}:{line}: column '{column}' is empty")
    try:
        value = kind(text)
    except ValueError:
        raise InputError(f"{path}:{line}: column '{column}': '{text}' is not "
                         f"{'an integer' if kind is int else 'a number'}") from None
    if kind is float and math.isinf(value):
        raise InputError(f"{path}:{line}: column '{column}' is infinite")
    return value


def read_csv(path: Path, columns: dict) -> list[dict]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            raise InputError(f"{path}:1: empty file (expected a header: {','.join(columns)})")
        missing = [c for c in columns if c not in reader.fieldnames]
        if missing:
            raise InputError(f"{path}:1: header lacks column(s) {', '.join(missing)} "
                             f"(found {','.join(reader.fieldnames)})")
        rows = []
        for record in reader:
            line = reader.line_num
            if None in record:
                raise InputError(f"{path}:{line}: more cells than the header has columns")
            rows.append({c: parse_cell(path, line, c, record.get(c), kind)
                         for c, kind in columns.items()})
    if not rows:
        raise InputError(f"{path}: no data rows after the header")
    return rows


def read_ppl(arg: str) -> Series:
    path, label = resolve(arg, "ppl.csv")
    return Series(label, read_csv(path, PPL_COLUMNS))


def read_passkey(arg: str) -> Series:
    path, label = resolve(arg, "passkey.csv")
    rows = read_csv(path, PASSKEY_COLUMNS)
    for i, r in enumerate(rows, start=2):
        if not 0.0 <= r["accuracy"] <= 1.0:
            raise InputError(f"{path}:{i}: accuracy {r['accuracy']} is outside 0..1")
    return Series(label, rows)


def read_scale(arg: str) -> list[Series]:
    """One series per manifest, in the order they first appear."""
    path, _ = split_label(arg)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix == ".json":
        try:
            rows = [r for r in json.loads(path.read_text())["rows"] if "error" not in r]
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path}: not a tools/bench_scale.py result ({e})") from None
    else:
        rows = read_csv(path, SCALE_COLUMNS)
    series: dict[str, Series] = {}
    for r in rows:
        stem = Path(r["manifest"]).stem
        series.setdefault(stem, Series(LABELS.get(stem, stem), [])).rows.append(r)
    if not series:
        raise InputError(f"{path}: no rows")
    return list(series.values())
