#!/usr/bin/env python3
"""A float64 forward pass of a Llama-family GGUF, the yardstick for the
engine's own rounding, over a whole text.

tools/lib/numpy_ref.py (compare_llama.py's --numpy-ref) holds the
forward pass: the weights are the file's, dequantized exactly (gguf's own
dequantizers); everything else (RMSNorm, RoPE, attention, SwiGLU, the
logits) is computed in float64 with no activation quantization and no f16
cache, so it is the model as stored, computed as exactly as float64 allows.
For the tokens of a text it prints each token's -log p under that
reference and, with --stretch, beside the same under `stretch`'s scoring
(`stretch eval ppl`'s path, through the Python package) in the chunk
sizes given: how far each of the engine's attention paths is from exact,
in mean |difference| of nll per token and in perplexity.

    python3 tools/llama_reference.py --model models/SmolLM2-135M-Instruct.Q4_1.gguf \\
        --text DATA/tinyshakespeare.txt --tokens 200 [--stretch -m manifests/greedy.yaml \\
        --chunks 512,8,4,1]

Only for models with the llama architecture; the tokens come from the
engine's tokenizer when --stretch is given, else from --ids (a JSON
list).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib.common import ToolError, check_file, run_main  # noqa: E402
from lib.numpy_ref import NumpyReference  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--text", type=Path, help="score this text's first --tokens tokens")
    ap.add_argument("--ids", help="or these token ids (a JSON list)")
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--stretch", action="store_true",
                    help="compare with the engine's scores (the Python package)")
    ap.add_argument("-m", "--manifest", type=Path, default=REPO / "manifests" / "greedy.yaml")
    ap.add_argument("--chunks", default="512,8,4,1", help="the engine's chunk sizes")
    ap.add_argument("--numerics", choices=("fast", "ggml"), help="the engine's numerics")
    args = ap.parse_args()
    ref = NumpyReference(check_file(args.model, "model"))
    engine = None
    if args.stretch:
        import stretch
        engine = stretch.Engine(str(check_file(args.manifest, "manifest")),
                                model=str(args.model), numerics=args.numerics)
    if args.ids:
        ids = [int(i) for i in json.loads(args.ids)]
    elif args.text and engine:
        ids = engine.tokenize(check_file(args.text, "text").read_text()[:args.tokens * 20])
    else:
        raise ToolError("give --ids, or --text with --stretch (the engine tokenizes)")
    ids = list(ids)[:args.tokens]
    exact = ref.nll(ids)
    out = {"tokens": len(ids), "ppl_reference": math.exp(exact[1:].mean()),
           "numerics": args.numerics or "fast", "engine": []}
    if engine:
        for chunk in (int(c) for c in args.chunks.split(",")):
            got = np.asarray(engine.score(np.asarray(ids, dtype=np.int32), chunk=chunk),
                             dtype=np.float64)
            d = got[1:] - exact[1:]
            out["engine"].append({"chunk": chunk, "ppl": math.exp(got[1:].mean()),
                                  "mean_abs_diff": float(np.abs(d).mean()),
                                  "max_abs_diff": float(np.abs(d).max()),
                                  "mean_diff": float(d.mean())})
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    run_main(main, "llama_reference")
