#!/usr/bin/env python3
"""Charts of stretch's evaluation results, drawn with matplotlib.

  tools/plots.py ppl CSV_OR_DIR[=LABEL]... [--trained N] --out FILE.png
      perplexity by position, one line per strategy (ppl.csv of
      `stretch eval ppl --out DIR`; a directory means DIR/ppl.csv)
  tools/plots.py passkey CSV_OR_DIR[=LABEL]... --out FILE.png
      passkey accuracy heatmaps, length x depth, one panel per strategy
  tools/plots.py scale FILE.json|FILE.csv --out FILE.png
      decode time per token and peak memory vs prompt length
      (tools/bench_scale.py --out FILE.json, or the same rows as CSV)
  tools/plots.py all [--data docs/data] [--figures docs/figures]
      regenerate every figure of docs/RESULTS.md from docs/data/

The label of a series is the file's stem (or its directory's name for
DIR/ppl.csv) unless PATH=LABEL gives one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from plotting import charts  # noqa: E402
from plotting.inputs import InputError, read_passkey, read_ppl, read_scale  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TRAINED = 8192  # SmolLM2-135M's trained context, where docs/data comes from

# The order of docs/RESULTS.md's tables: the baseline first.
PPL_ORDER = ["greedy", "linear", "dynamic-ntk", "yarn", "lm-infinite", "streaming", "sirllm"]
PASSKEY_ORDER = ["greedy", "linear", "ntk", "dynamic-ntk", "dynntk2", "yarn", "giraffe",
                 "lm-infinite", "streaming", "sirllm", "squeezed", "infiniretri", "xl3m"]

PASSKEY_TITLES = {
    "passkey": "Passkey retrieval by prompt length and key depth (template 1)",
    "passkey-template2": "Passkey retrieval, question on its own line (template 2)",
    "passkey-readers": "Passkey retrieval by the readers, 8k to 1M tokens (template 2)",
}


def ordered_csvs(folder: Path, order: list[str]) -> list[str]:
    files = sorted(folder.glob("*.csv"), key=lambda p: (p.stem not in order,
                                                        order.index(p.stem) if p.stem in order else 0,
                                                        p.stem))
    if not files:
        raise InputError(f"{folder}: no *.csv files")
    return [str(p) for p in files]


def plot_all(data: Path, figures: Path) -> list[Path]:
    outs = []
    for folder in sorted(data.glob("ppl-*")):
        length = folder.name.split("-", 1)[1]
        out = figures / f"{folder.name}.png"
        charts.ppl_by_position([read_ppl(a) for a in ordered_csvs(folder, PPL_ORDER)], out,
                               TRAINED, f"Perplexity by position, one {length}-token window")
        outs.append(out)
    # passkey/ is the first template (the question joined to the document),
    # passkey-template2/ the current one (the question on its own line).
    for folder in sorted(data.glob("passkey*")):
        out = figures / f"{folder.name}.png"
        title = PASSKEY_TITLES.get(folder.name, f"Passkey retrieval ({folder.name})")
        charts.passkey_grid([read_passkey(a) for a in ordered_csvs(folder, PASSKEY_ORDER)],
                            out, title)
        outs.append(out)
    out = figures / "scale.png"
    charts.scale_curves(read_scale(str(data / "scale.csv")), out,
                        "Decode time and memory as the context grows")
    outs.append(out)
    return outs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ppl", help="perplexity by position")
    p.add_argument("inputs", nargs="+")
    p.add_argument("--trained", type=int, help="mark the model's trained length (tokens)")
    p.add_argument("--title", default="Perplexity by position")
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("passkey", help="passkey accuracy heatmaps")
    p.add_argument("inputs", nargs="+")
    p.add_argument("--title", default="Passkey retrieval")
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("scale", help="time per token and memory vs context")
    p.add_argument("input")
    p.add_argument("--title", default="Decode time and memory as the context grows")
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("all", help="regenerate docs/figures from docs/data")
    p.add_argument("--data", type=Path, default=REPO / "docs" / "data")
    p.add_argument("--figures", type=Path, default=REPO / "docs" / "figures")
    args = ap.parse_args(argv)
    try:
        if args.command == "ppl":
            charts.ppl_by_position([read_ppl(a) for a in args.inputs], args.out, args.trained,
                                   args.title)
            outs = [args.out]
        elif args.command == "passkey":
            charts.passkey_grid([read_passkey(a) for a in args.inputs], args.out, args.title)
            outs = [args.out]
        elif args.command == "scale":
            charts.scale_curves(read_scale(args.input), args.out, args.title)
            outs = [args.out]
        else:
            outs = plot_all(args.data, args.figures)
    except (InputError, OSError) as e:
        print(f"plots: error: {e}", file=sys.stderr)
        return 2
    for out in outs:
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
