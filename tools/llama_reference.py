#!/usr/bin/env python3
"""A float64 forward pass of a Llama-family GGUF, the yardstick for the
engine's own rounding.

The weights are the file's, dequantized exactly (gguf's own
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

Only for models with the llama architecture (RMSNorm, RoPE on adjacent
pairs as llama.cpp's LLAMA_ROPE_TYPE_NORM, grouped-query attention,
SwiGLU); the tokens come from the engine's tokenizer when --stretch is
given, else from --ids (a JSON list).
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

REPO = Path(__file__).resolve().parents[1]


class Reference:
    """The model's tensors as float64 arrays, rows as GGUF stores them."""

    def __init__(self, path: Path):
        import gguf
        self.r = gguf.GGUFReader(str(path))
        f = self.r.fields
        arch = f["general.architecture"].contents()
        if arch != "llama":
            raise ToolError(f"{path}: architecture '{arch}', this reference runs llama only")
        self.n_layers = int(f["llama.block_count"].contents())
        self.n_heads = int(f["llama.attention.head_count"].contents())
        self.n_kv = int(f["llama.attention.head_count_kv"].contents())
        self.eps = float(f["llama.attention.layer_norm_rms_epsilon"].contents())
        self.base = float(f["llama.rope.freq_base"].contents()) \
            if "llama.rope.freq_base" in f else 10000.0
        self.tensors = {t.name: t for t in self.r.tensors}
        self.gguf = gguf

    def w(self, name: str) -> np.ndarray:
        t = self.tensors[name]
        a = self.gguf.quants.dequantize(t.data, t.tensor_type)
        return np.asarray(a, dtype=np.float64).reshape(
            [int(x) for x in reversed(t.shape)] if len(t.shape) > 1 else [int(t.shape[0])])

    def has(self, name: str) -> bool:
        return name in self.tensors


def rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x: np.ndarray, base: float) -> np.ndarray:
    """x [tokens, heads, head_dim], rotated pairwise (x[2i], x[2i+1]) by
    position * base^(-2i/head_dim)."""
    n, _, d = x.shape
    inv = base ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    ang = np.arange(n, dtype=np.float64)[:, None] * inv[None, :]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


def nll(ref: Reference, ids: list[int]) -> np.ndarray:
    """-log p(ids[t] | ids[<t]) for t >= 1 (index 0 is 0), in float64."""
    n = len(ids)
    emb = ref.w("token_embd.weight")
    x = emb[np.asarray(ids)]
    hd = x.shape[1] // ref.n_heads
    group = ref.n_heads // ref.n_kv
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for layer in range(ref.n_layers):
        p = f"blk.{layer}."
        h = rms_norm(x, ref.w(p + "attn_norm.weight"), ref.eps)
        q = rope((h @ ref.w(p + "attn_q.weight").T).reshape(n, ref.n_heads, hd), ref.base)
        k = rope((h @ ref.w(p + "attn_k.weight").T).reshape(n, ref.n_kv, hd), ref.base)
        v = (h @ ref.w(p + "attn_v.weight").T).reshape(n, ref.n_kv, hd)
        out = np.empty((n, ref.n_heads, hd))
        for head in range(ref.n_heads):
            kv = head // group
            s = q[:, head, :] @ k[:, kv, :].T / math.sqrt(hd) + mask
            s = np.exp(s - s.max(axis=1, keepdims=True))
            out[:, head, :] = (s / s.sum(axis=1, keepdims=True)) @ v[:, kv, :]
        x = x + out.reshape(n, -1) @ ref.w(p + "attn_output.weight").T
        h = rms_norm(x, ref.w(p + "ffn_norm.weight"), ref.eps)
        g = h @ ref.w(p + "ffn_gate.weight").T
        u = h @ ref.w(p + "ffn_up.weight").T
        x = x + (g / (1.0 + np.exp(-g)) * u) @ ref.w(p + "ffn_down.weight").T
    x = rms_norm(x, ref.w("output_norm.weight"), ref.eps)
    out_w = ref.w("output.weight") if ref.has("output.weight") else emb
    logits = x @ out_w.T
    mx = logits.max(axis=1, keepdims=True)
    lse = (mx + np.log(np.exp(logits - mx).sum(axis=1, keepdims=True)))[:, 0]
    result = np.zeros(n)
    for t in range(1, n):
        result[t] = lse[t - 1] - logits[t - 1, ids[t]]
    return result


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
    ref = Reference(check_file(args.model, "model"))
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
    exact = nll(ref, ids)
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
