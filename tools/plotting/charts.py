"""The three figures, drawn with matplotlib (Agg: no display needed).

Each function takes parsed series (inputs.py) and writes one PNG.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend choice)
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from .inputs import Series  # noqa: E402

DPI = 120


def tokens_label(n: float, _pos=None) -> str:
    # 1,048,576 reads "1M", not "1024k": the passkey grids reach a million tokens.
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):g}M"
    return f"{n / 1024:g}k" if n >= 1024 else f"{n:g}"


def save(fig, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    # No version or date in the file, so regenerating unchanged data leaves
    # the committed PNGs unchanged.
    fig.savefig(out, dpi=DPI, metadata={"Software": None})
    plt.close(fig)


def ppl_by_position(series: list[Series], out: Path, trained: int | None, title: str) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.8), layout="constrained")
    for s in series:
        mid = [(r["start"] + r["end"]) / 2 for r in s.rows]
        ax.plot(mid, [r["ppl"] for r in s.rows], marker="o", markersize=4, label=s.label)
    ax.set_yscale("log")
    # Ticks on the bucket edges: each point sits between two of them.
    edges = sorted({r["start"] for s in series for r in s.rows} |
                   {r["end"] for s in series for r in s.rows})
    if len(edges) <= 17:
        ax.set_xticks(edges)
    ax.xaxis.set_major_formatter(FuncFormatter(tokens_label))
    ax.set_xlim(0, edges[-1])
    if trained:
        ax.axvline(trained, color="0.3", linestyle="--", linewidth=1)
        ax.annotate(f"trained length ({tokens_label(trained)})", xy=(trained, 0), xytext=(4, 4),
                    xycoords=("data", "axes fraction"), textcoords="offset points",
                    va="bottom", fontsize=9, color="0.3")
    ax.set_xlabel("position in the window (tokens); one point per bucket")
    ax.set_ylabel("perplexity (log scale)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9, ncols=2)
    save(fig, out)


def passkey_grid(series: list[Series], out: Path, title: str) -> None:
    ncols = min(4, len(series))
    nrows = math.ceil(len(series) / ncols)
    depths = sorted({r["depth"] for s in series for r in s.rows})
    heights = [len({r["length"] for r in s.rows}) for s in series]
    row_height = 0.9 + 0.32 * max(heights)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.1 * ncols + 1, row_height * nrows + 0.6),
                             squeeze=False, layout="constrained")
    cmap = plt.get_cmap("RdYlGn").with_extremes(bad="0.85")
    image = None
    for ax, s in zip(axes.flat, series):
        lengths = sorted({r["length"] for r in s.rows})
        acc = np.full((len(lengths), len(depths)), np.nan)
        text = {}
        for r in s.rows:
            i, j = lengths.index(r["length"]), depths.index(r["depth"])
            acc[i, j] = r["accuracy"]
            text[i, j] = f"{round(r['accuracy'] * r['samples'])}/{r['samples']}"
        image = ax.imshow(np.ma.masked_invalid(acc), cmap=cmap, vmin=0, vmax=1, aspect="auto")
        for (i, j), label in text.items():
            # White on the saturated ends of the colour map, black between.
            dark = not 0.25 < acc[i, j] < 0.75
            ax.text(j, i, label, ha="center", va="center", fontsize=9,
                    color="white" if dark else "black", fontweight="bold")
        ax.set_xticks(range(len(depths)), [f"{d}%" for d in depths], fontsize=8)
        ax.set_yticks(range(len(lengths)), [tokens_label(n) for n in lengths], fontsize=8)
        ax.set_title(s.label, fontsize=10)
    for ax in axes.flat[len(series):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("prompt length")
    for ax in axes[-1, :]:
        ax.set_xlabel("key depth")
    # A short label: a one-row-of-panels figure is shorter than the long one
    # was, which cut it at both ends. The cells already say correct / samples.
    fig.colorbar(image, ax=axes, label="accuracy (grey: not run)", shrink=0.8)
    fig.suptitle(title)
    save(fig, out)


def scale_curves(series: list[Series], out: Path, title: str) -> None:
    fig, (time_ax, mem_ax) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    lengths = sorted({r["prompt_tokens"] for s in series for r in s.rows})
    for s in series:
        rows = sorted(s.rows, key=lambda r: r["prompt_tokens"])
        x = [r["prompt_tokens"] for r in rows]
        time_ax.plot(x, [r["decode_ms_per_token"] for r in rows], marker="o", label=s.label)
        mem_ax.plot(x, [r["peak_rss_mb"] for r in rows], marker="o", label=s.label)
    for ax, ylabel in ((time_ax, "decode time per token (ms)"), (mem_ax, "peak RSS (MB)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(lengths, [tokens_label(n) for n in lengths])
        ax.minorticks_off()
        ax.set_xlabel("prompt length (tokens)")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    time_ax.legend(fontsize=9)
    fig.suptitle(title)
    save(fig, out)
