#!/usr/bin/env python3
"""Compare stretch with llama.cpp (llama-cpp-python) on the real SmolLM2 GGUF.

Checks, both sides on the same GGUF file:
  (a) tokenizer: every line of tools/tokenizer_corpus.txt tokenized by
      llama.cpp (special tokens parsed, no BOS) and by `stretch tokenize
      --batch`; counts identical id lists.
  (b) greedy: for each prompt of tools/prompts.txt (raw, no chat template)
      the next-token logits after the prompt (top-1 and max |difference|
      over the whole vocabulary) and a greedy continuation of --max-tokens
      tokens (stopping at EOS), compared token by token.

Exit status: 0 when every tokenization, top-1 and continuation is identical,
1 when something differs, 2 on an error (missing binary, model, package...).
See docs/comparison.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib.common import (DEFAULT_MODEL, DEFAULT_STRETCH, EOS_IDS, REPO_ROOT, Stretch, ToolError,  # noqa: E402
                        check_file, check_model, read_json_lines, require_peers, run_main, warn_if_other_model)

PROG = "compare_llama"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tools/compare_llama.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="GGUF for llama.cpp (default: %(default)s)")
    p.add_argument("--stretch", type=Path, default=DEFAULT_STRETCH, help="stretch binary (default: %(default)s)")
    p.add_argument("--tok-manifest", type=Path, default=REPO_ROOT / "manifests" / "default.yaml",
                   help="manifest for `stretch tokenize` (default: %(default)s)")
    p.add_argument("--manifest", type=Path, default=REPO_ROOT / "manifests" / "greedy.yaml",
                   help="greedy manifest for `stretch run` (default: %(default)s)")
    p.add_argument("--corpus", type=Path, default=REPO_ROOT / "tools" / "tokenizer_corpus.txt",
                   help="tokenizer corpus, one JSON string per line (default: %(default)s)")
    p.add_argument("--prompts", type=Path, default=REPO_ROOT / "tools" / "prompts.txt",
                   help="prompts, one JSON string per line (default: %(default)s)")
    p.add_argument("--max-tokens", type=int, default=64, help="greedy continuation length (default: %(default)s)")
    p.add_argument("--limit", type=int, default=0, help="use only the first N prompts (0 = all)")
    p.add_argument("--threads", type=int, default=2, help="llama.cpp threads (default: %(default)s)")
    p.add_argument("--skip-tokenizer", action="store_true", help="skip check (a)")
    p.add_argument("--skip-greedy", action="store_true", help="skip check (b)")
    p.add_argument("--llama-only", action="store_true",
                   help="run only the llama.cpp side (no stretch binary needed); prints its results")
    p.add_argument("--numpy-ref", action="store_true",
                   help="also compute exact float64 next-token logits with numpy from the dequantized GGUF "
                        "(slow: a few seconds per prompt) and report each side's distance to them")
    p.add_argument("--show-mismatches", type=int, default=5, help="tokenizer mismatches to list (default: %(default)s)")
    p.add_argument("--extra-bufts", choices=("auto", "on", "off"), default="auto",
                   help="llama.cpp extra buffer types (weight repacking, AMX); auto = probe in a subprocess "
                        "and turn off if it crashes (default: %(default)s)")
    p.add_argument("--llama-kv", choices=("f16", "f32"), default="f16",
                   help="llama.cpp KV cache type (type_k and type_v). f16 is llama.cpp's default; "
                        "f32 removes the f16 rounding of K, V, q and the attention weights that "
                        "llama.cpp's attention does with an f16 cache (default: %(default)s)")
    p.add_argument("--llama-flash-attn", choices=("off", "on"), default="off",
                   help="llama.cpp flash attention (the Python binding's flash_attn; off is its default) "
                        "(default: %(default)s)")
    p.add_argument("--numerics", choices=["default", "ggml"], default="default",
                   help="stretch's numerics mode: ggml sets STRETCH_NUMERICS=ggml for the stretch "
                        "runs (llama.cpp's float operations, bit for bit where emulated; "
                        "docs/comparison.md) (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per stretch invocation (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    p.add_argument("--out", type=Path, help="also write the report here (.json => JSON, else markdown)")
    a = p.parse_args()
    if a.max_tokens < 1:
        p.error("--max-tokens must be >= 1")
    if a.threads < 1:
        p.error("--threads must be >= 1")
    return a


# ---------------------------------------------------------------- helpers

def first_difference(a: list[int], b: list[int]) -> int | None:
    """Index of the first differing element; len(shorter) when one list is a
    proper prefix of the other; None when equal."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def strip_eos(ids: list[int]) -> list[int]:
    """Drops one trailing EOS: the contract does not say whether the stopping
    EOS is part of "tokens", so it is ignored on both sides."""
    return ids[:-1] if ids and ids[-1] in EOS_IDS else ids


def short(text: str, n: int = 40) -> str:
    s = json.dumps(text, ensure_ascii=False)[1:-1]
    return s if len(s) <= n else s[: n - 1] + "…"


def md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def code(text: str) -> str:
    """A markdown code span that survives backticks inside the text."""
    import re
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if longest else ""
    return f"{fence}{pad}{md_cell(text)}{pad}{fence}"


def load_logits(path: Path, n_vocab: int):
    import numpy as np
    if not path.is_file():
        raise ToolError(f"stretch run wrote no logits file {path}")
    data = np.fromfile(path, dtype="<f4")
    if data.size != n_vocab:
        raise ToolError(f"{path}: {path.stat().st_size} bytes = {data.size} float32, expected n_vocab = {n_vocab}")
    return data.astype("float32")


# ---------------------------------------------------------------- checks

def check_tokenizer(args, stretch: Stretch | None, extra_bufts: bool) -> dict[str, Any]:
    from lib.llama_side import load_llama, tokenize
    texts = read_json_lines(args.corpus, "tokenizer corpus")
    vocab = load_llama(args.model, vocab_only=True, extra_bufts=extra_bufts)
    llama_ids = [tokenize(vocab, t) for t in texts]
    del vocab
    result: dict[str, Any] = {"corpus": str(args.corpus), "total": len(texts),
                              "llama_tokens": sum(len(x) for x in llama_ids)}
    if stretch is None:
        result["llama_ids_sample"] = [{"text": t, "llama": ids} for t, ids in zip(texts[:3], llama_ids[:3])]
        return result
    try:
        stretch_ids = stretch.tokenize_batch(args.tok_manifest, texts)
    except ToolError as e:
        # Recorded, not raised: the greedy check can still run.
        print(f"{PROG}: {e}", file=sys.stderr)
        result.update(identical=0, mismatch_count=len(texts), mismatches=[], error=str(e))
        return result
    mismatches = []
    for i, (text, a, b) in enumerate(zip(texts, llama_ids, stretch_ids)):
        if a != b:
            mismatches.append({"line": i + 1, "text": text, "first_diff": first_difference(a, b),
                               "llama": a, "stretch": b})
    result.update(identical=len(texts) - len(mismatches), mismatch_count=len(mismatches),
                  mismatches=mismatches[: max(args.show_mismatches, 0)])
    return result


def check_greedy(args, stretch: Stretch | None, extra_bufts: bool) -> dict[str, Any]:
    import numpy as np
    from lib.llama_side import greedy, load_llama, tokenize
    prompts = read_json_lines(args.prompts, "prompts file")
    if args.limit > 0:
        prompts = prompts[: args.limit]
    llm = load_llama(args.model, n_ctx=2048, threads=args.threads, extra_bufts=extra_bufts,
                     kv_type=args.llama_kv, flash_attn=args.llama_flash_attn == "on")
    n_vocab = llm.n_vocab()
    ref = None
    if args.numpy_ref:
        from lib.numpy_ref import NumpyReference
        print(f"{PROG}: dequantizing the model for the numpy reference", file=sys.stderr)
        ref = NumpyReference(args.model)
    rows = []
    with tempfile.TemporaryDirectory(prefix="stretch-cmp-") as tmp:
        for i, prompt in enumerate(prompts):
            print(f"{PROG}: prompt {i + 1}/{len(prompts)}", file=sys.stderr)
            ids = tokenize(llm, prompt)
            logits, cont = greedy(llm, ids, args.max_tokens)
            order = np.argsort(logits)[::-1]
            row: dict[str, Any] = {
                "index": i + 1, "prompt": prompt, "prompt_ids": ids,
                "llama": {"top1": int(order[0]), "margin": float(logits[order[0]] - logits[order[1]]),
                          "tokens": cont,
                          "text": llm.detokenize(strip_eos(cont)).decode("utf-8", "replace")},
            }
            ref_logits = None
            if ref is not None:
                ref_logits = ref.last_logits(ids)
                row["ref"] = {"top1": int(np.argmax(ref_logits)),
                              "llama_max_abs_diff": float(np.max(np.abs(logits - ref_logits)))}
                row["llama"]["top1_equals_ref"] = row["llama"]["top1"] == row["ref"]["top1"]
            if stretch is not None:
                try:
                    lpath = Path(tmp) / f"logits_{i}.bin"
                    obj, _ = stretch.run_greedy(args.manifest, prompt, args.max_tokens, lpath)
                    s_logits = load_logits(lpath, n_vocab)
                    s_cont = [int(t) for t in obj["tokens"]]
                    diff = np.abs(s_logits.astype(np.float64) - logits.astype(np.float64))
                    row["stretch"] = {"top1": int(np.argmax(s_logits)), "tokens": s_cont,
                                      "text": obj.get("text"), "prompt_ids": [int(t) for t in obj["prompt_ids"]],
                                      "timings": obj.get("timings")}
                    row["prompt_ids_equal"] = row["stretch"]["prompt_ids"] == ids
                    row["max_abs_logit_diff"] = float(np.nanmax(diff)) if np.isfinite(s_logits).all() else float("inf")
                    row["mean_abs_logit_diff"] = float(np.mean(diff))
                    row["top1_equal"] = row["stretch"]["top1"] == row["llama"]["top1"]
                    # A flip between two candidates whose llama.cpp logits are
                    # closer than the numerical difference seen is a near tie,
                    # not necessarily a bug.
                    gap = float(logits[row["llama"]["top1"]] - logits[row["stretch"]["top1"]])
                    row["near_tie"] = (not row["top1_equal"]) and gap <= 2 * row["max_abs_logit_diff"]
                    if ref_logits is not None:
                        row["ref"]["stretch_max_abs_diff"] = float(np.max(np.abs(s_logits - ref_logits)))
                        row["stretch"]["top1_equals_ref"] = row["stretch"]["top1"] == row["ref"]["top1"]
                    fd = first_difference(strip_eos(cont), strip_eos(s_cont))
                    row["continuation_equal"] = fd is None
                    row["first_divergence"] = fd
                except (ToolError, TypeError, ValueError) as e:
                    # TypeError/ValueError: non-integer ids in stretch's JSON.
                    if not isinstance(e, ToolError):
                        e = ToolError(f"stretch run: malformed JSON output ({e})")
                    row["error"] = str(e)
                    row["top1_equal"] = row["continuation_equal"] = False
                    print(f"{PROG}: prompt {i + 1}: {e}", file=sys.stderr)
            rows.append(row)
    result: dict[str, Any] = {"prompts": str(args.prompts), "total": len(rows), "max_tokens": args.max_tokens,
                              "rows": rows}
    if ref is not None:
        result["ref"] = {
            "llama_top1_equals_ref": sum(r["llama"]["top1_equals_ref"] for r in rows),
            "llama_max_abs_diff": max(r["ref"]["llama_max_abs_diff"] for r in rows)}
        s_rows = [r for r in rows if "stretch_max_abs_diff" in r.get("ref", {})]
        if s_rows:
            result["ref"].update(
                stretch_top1_equals_ref=sum(r["stretch"]["top1_equals_ref"] for r in s_rows),
                stretch_max_abs_diff=max(r["ref"]["stretch_max_abs_diff"] for r in s_rows),
                compared=len(s_rows))
    if stretch is not None:
        diffs = [r["max_abs_logit_diff"] for r in rows if "max_abs_logit_diff" in r]
        result.update(top1_identical=sum(r["top1_equal"] for r in rows),
                      continuation_identical=sum(r["continuation_equal"] for r in rows),
                      prompt_ids_identical=sum(bool(r.get("prompt_ids_equal")) for r in rows),
                      top1_near_ties=sum(bool(r.get("near_tie")) for r in rows),
                      errors=sum("error" in r for r in rows),
                      max_abs_logit_diff=max(diffs) if diffs else None)
    return result


# ---------------------------------------------------------------- report

def render_markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    out = ["# stretch vs llama.cpp", "",
           f"- model: `{env['model']}`",
           f"- llama-cpp-python {env['llama_cpp_python']}, {env['threads']} threads; {env['extra_bufts']}",
           f"- llama.cpp context: KV cache {env.get('llama_kv', 'f16')}"
           f"{' (llama.cpp default)' if env.get('llama_kv', 'f16') == 'f16' else ' (non-default)'}, "
           f"flash attention {env.get('llama_flash_attn', 'off')}"
           f"{' (binding default)' if env.get('llama_flash_attn', 'off') == 'off' else ' (non-default)'}",
           f"- stretch: {env['stretch'] or '(not run: --llama-only)'}"
           f"{'' if env.get('stretch_numerics', 'default') == 'default' else ', STRETCH_NUMERICS=' + env['stretch_numerics']}", ""]
    tok = report.get("tokenizer")
    if tok:
        out += ["## Tokenizer", ""]
        if "identical" in tok:
            out.append(f"**{tok['identical']} / {tok['total']} identical** over `{tok['corpus']}` "
                       f"({tok['llama_tokens']} llama.cpp tokens).")
            if "error" in tok:
                out.append(f"\n{tok['error']}")
            for m in tok["mismatches"]:
                out += ["", f"- line {m['line']} {code(short(m['text'], 60))} (first difference at index {m['first_diff']})",
                        f"  - llama.cpp: `{m['llama']}`", f"  - stretch:   `{m['stretch']}`"]
            if "error" not in tok and tok["mismatch_count"] > len(tok["mismatches"]):
                out.append(f"- … {tok['mismatch_count'] - len(tok['mismatches'])} more")
        else:
            out.append(f"llama.cpp only: {tok['total']} lines, {tok['llama_tokens']} tokens.")
        out.append("")
    gr = report.get("greedy")
    if gr:
        out += ["## Next token and greedy continuation", ""]
        both = "top1_identical" in gr
        if both:
            out += ["| # | prompt | n | ids= | top-1 llama | top-1 stretch | max abs dlogit | llama margin | "
                    f"{gr['max_tokens']}-token continuation |",
                    "|---|---|---|---|---|---|---|---|---|"]
        else:
            out += ["| # | prompt | n | top-1 llama | llama margin | continuation (llama.cpp) |",
                    "|---|---|---|---|---|---|"]
        for r in gr["rows"]:
            lm = r["llama"]
            head = f"| {r['index']} | {code(short(r['prompt']))} | {len(r['prompt_ids'])} |"
            if not both:
                out.append(f"{head} {lm['top1']} | {lm['margin']:.3f} | {code(short(lm['text'], 50))} |")
                continue
            if "error" in r:
                out.append(f"{head} - | {lm['top1']} | - | - | {lm['margin']:.3f} | error: {md_cell(short(r['error'], 80))} |")
                continue
            st = r["stretch"]
            cont = ("identical" if r["continuation_equal"]
                    else f"diverges at {r['first_divergence']} (llama {len(lm['tokens'])}, stretch {len(st['tokens'])} tokens)")
            s_top1 = f"{st['top1']}" if r["top1_equal"] else f"**{st['top1']}**" + (" (near tie)" if r["near_tie"] else "")
            out.append(f"{head} {'yes' if r['prompt_ids_equal'] else '**no**'} | {lm['top1']} | {s_top1} | "
                       f"{r['max_abs_logit_diff']:.4g} | {lm['margin']:.3f} | {cont} |")
        out.append("")
        if "ref" in gr:
            out += ["### Distance to the exact (float64 numpy) next-token logits", "",
                    "| # | top-1 exact | top-1 llama | top-1 stretch | max abs diff llama | max abs diff stretch |",
                    "|---|---|---|---|---|---|"]
            for r in gr["rows"]:
                st = r.get("stretch")
                sd = r["ref"].get("stretch_max_abs_diff")
                out.append(f"| {r['index']} | {r['ref']['top1']} | {r['llama']['top1']} | "
                           f"{st['top1'] if st else '-'} | {r['ref']['llama_max_abs_diff']:.4g} | "
                           f"{'-' if sd is None else f'{sd:.4g}'} |")
            out.append("")
    out += ["## Summary", ""]
    if tok and "identical" in tok:
        out.append(f"- tokenizer: {tok['identical']} / {tok['total']} identical")
    if gr and "top1_identical" in gr:
        mx = gr["max_abs_logit_diff"]
        out += [f"- prompt tokenization (stretch run vs llama.cpp): {gr['prompt_ids_identical']} / {gr['total']} identical",
                f"- top-1 next token: {gr['top1_identical']} / {gr['total']} identical"
                + (f" ({gr['top1_near_ties']} of the differences are near ties)" if gr["top1_near_ties"] else ""),
                f"- max abs logit difference over the vocabulary: {'n/a' if mx is None else f'{mx:.4g}'} (max over prompts)",
                f"- greedy {gr['max_tokens']}-token continuation: {gr['continuation_identical']} / {gr['total']} identical"]
        if gr["errors"]:
            out.append(f"- stretch failed on {gr['errors']} prompt(s)")
    if gr and "ref" in gr:
        rf = gr["ref"]
        out.append(f"- exact float64 reference: llama.cpp top-1 {rf['llama_top1_equals_ref']} / {gr['total']} equal, "
                   f"max abs diff {rf['llama_max_abs_diff']:.4g}"
                   + (f"; stretch top-1 {rf['stretch_top1_equals_ref']} / {rf['compared']} equal, "
                      f"max abs diff {rf['stretch_max_abs_diff']:.4g}" if "compared" in rf else ""))
    out.append(f"- verdict: {report['verdict']}")
    return "\n".join(out) + "\n"


def verdict(report: dict[str, Any]) -> tuple[str, int]:
    tok, gr = report.get("tokenizer"), report.get("greedy")
    if report["environment"]["stretch"] is None:
        return "llama.cpp side only (nothing compared)", 0
    failed = []
    if tok and tok["identical"] != tok["total"]:
        failed.append("tokenizer")
    if gr and gr["top1_identical"] != gr["total"]:
        failed.append("top-1")
    if gr and gr["continuation_identical"] != gr["total"]:
        failed.append("continuation")
    return ("PASS (all identical)", 0) if not failed else (f"DIFFERS ({', '.join(failed)})", 1)


def main() -> int:
    args = parse_args()
    require_peers("numpy", "llama_cpp")
    import llama_cpp
    from lib.llama_side import resolve_extra_bufts
    check_model(args.model)
    if args.skip_tokenizer and args.skip_greedy:
        raise ToolError("nothing to do: both --skip-tokenizer and --skip-greedy given")
    stretch = None
    if not args.llama_only:
        stretch = Stretch(args.stretch, args.timeout)
        if not args.skip_tokenizer:
            check_file(args.tok_manifest, "tokenize manifest")
        if not args.skip_greedy:
            check_file(args.manifest, "greedy manifest")
            warn_if_other_model(args.manifest, args.model, PROG)
        elif not args.skip_tokenizer:
            warn_if_other_model(args.tok_manifest, args.model, PROG)
    # Fail on unreadable inputs before spending minutes on the other check.
    if not args.skip_tokenizer:
        read_json_lines(args.corpus, "tokenizer corpus")
    if not args.skip_greedy:
        read_json_lines(args.prompts, "prompts file")

    # The stretch subprocesses inherit the environment.
    if args.numerics == "ggml":
        os.environ["STRETCH_NUMERICS"] = "ggml"
    else:
        os.environ.pop("STRETCH_NUMERICS", None)
    extra_bufts, extra_note = resolve_extra_bufts(args.extra_bufts, args.model)
    t0 = time.time()
    report: dict[str, Any] = {"environment": {
        "model": str(args.model), "stretch": str(args.stretch) if stretch else None,
        "llama_cpp_python": getattr(llama_cpp, "__version__", "?"), "threads": args.threads,
        "extra_bufts": extra_note, "llama_kv": args.llama_kv,
        "llama_flash_attn": args.llama_flash_attn, "stretch_numerics": args.numerics,
        "python": platform.python_version(), "machine": platform.machine()}}
    if not args.skip_tokenizer:
        report["tokenizer"] = check_tokenizer(args, stretch, extra_bufts)
    if not args.skip_greedy:
        report["greedy"] = check_greedy(args, stretch, extra_bufts)
    report["elapsed_s"] = round(time.time() - t0, 2)
    report["verdict"], code = verdict(report)

    md = render_markdown(report)
    js = json.dumps(report, indent=1, ensure_ascii=False)
    print(js if args.json else md, end="" if not args.json else "\n")
    if args.out:
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(js + "\n" if args.out.suffix == ".json" else md, encoding="utf-8")
        except OSError as e:
            raise ToolError(f"cannot write {args.out}: {e.strerror}") from None
    return code


if __name__ == "__main__":
    run_main(main, PROG)
