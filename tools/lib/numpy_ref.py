"""An exact-arithmetic reference forward pass for the llama-architecture GGUF.

Neither llama.cpp nor stretch is ground truth: both dequantize the same
weights but round differently along the way (llama.cpp, for example,
quantizes activations to Q8_1 for its Q4_1 dot products).  This module
dequantizes every weight with gguf-py and runs the whole prompt in float64
numpy, so that compare_llama.py --numpy-ref can tell which side is closer to
the model as stored.  It is slow (seconds per prompt) and meant for short
prompts only.

Layout notes (the GGUF as written by llama.cpp's converter):
  * a weight with GGML shape [in, out] dequantizes to a (out, in) matrix, so
    y = x @ W.T;
  * Q and K rows are permuted by the converter so that RoPE rotates adjacent
    pairs (x[2i], x[2i+1]) ("normal" RoPE, not NeoX halves);
  * query head h uses KV head h // (n_head / n_head_kv);
  * no output.weight: the output projection is token_embd (tied).
"""

from __future__ import annotations

from pathlib import Path

from .common import ToolError


class NumpyReference:
    def __init__(self, model: Path):
        try:
            import numpy as np
            import gguf
            from gguf import quants
        except ImportError:
            raise ToolError("--numpy-ref needs numpy and gguf: "
                            "`python3 -m pip install -r tools/requirements-peers.txt`") from None
        self.np = np
        try:
            reader = gguf.GGUFReader(str(model))
        except (OSError, ValueError) as e:
            raise ToolError(f"{model}: cannot read GGUF: {e}") from None

        def field(key: str):
            f = reader.fields.get(key)
            if f is None:
                raise ToolError(f"{model}: missing metadata key {key}")
            return f.parts[f.data[0]][0]

        arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
        if arch != "llama":
            raise ToolError(f"{model}: architecture '{arch}', the numpy reference knows only 'llama'")
        self.n_layer = int(field("llama.block_count"))
        self.n_embd = int(field("llama.embedding_length"))
        self.n_head = int(field("llama.attention.head_count"))
        self.n_head_kv = int(field("llama.attention.head_count_kv"))
        self.eps = float(field("llama.attention.layer_norm_rms_epsilon"))
        self.rope_base = float(field("llama.rope.freq_base"))
        self.head_dim = self.n_embd // self.n_head

        tensors = {t.name: t for t in reader.tensors}

        def weight(name: str):
            t = tensors.get(name)
            if t is None:
                raise ToolError(f"{model}: missing tensor {name}")
            return quants.dequantize(t.data, t.tensor_type).astype(np.float64)

        self.tok_embd = weight("token_embd.weight")
        self.output = weight("output.weight") if "output.weight" in tensors else self.tok_embd
        self.output_norm = weight("output_norm.weight")
        self.layers = []
        for i in range(self.n_layer):
            p = f"blk.{i}."
            self.layers.append({k: weight(p + k + ".weight") for k in (
                "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")})

    def _rms_norm(self, x, w):
        np = self.np
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def _rope(self, x, positions):
        """x: (T, H, D); rotates adjacent pairs."""
        np = self.np
        d = self.head_dim
        inv = self.rope_base ** (-np.arange(0, d, 2, dtype=np.float64) / d)
        ang = positions[:, None] * inv[None, :]          # (T, D/2)
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * cos - x1 * sin
        out[..., 1::2] = x0 * sin + x1 * cos
        return out

    def last_logits(self, ids: list[int]):
        """float64[n_vocab] logits after the last of ids (causal, from position 0)."""
        return self.logits(ids)[-1]

    def nll(self, ids: list[int]):
        """float64[len(ids)]: -log p(ids[t] | ids[<t]) for t >= 1 (index 0 is 0)."""
        np = self.np
        z = self.logits(ids)[:-1]
        mx = z.max(axis=1, keepdims=True)
        lse = (mx + np.log(np.exp(z - mx).sum(axis=1, keepdims=True)))[:, 0]
        out = np.zeros(len(ids))
        out[1:] = lse - z[np.arange(len(ids) - 1), np.asarray(ids[1:])]
        return out

    def logits(self, ids: list[int]):
        """float64[len(ids), n_vocab]: the logits after each of ids."""
        np = self.np
        T, H, KV, D = len(ids), self.n_head, self.n_head_kv, self.head_dim
        pos = np.arange(T, dtype=np.float64)
        x = self.tok_embd[np.asarray(ids)]
        mask = np.triu(np.full((T, T), -np.inf), k=1)
        group = H // KV
        for L in self.layers:
            h = self._rms_norm(x, L["attn_norm"])
            q = self._rope((h @ L["attn_q"].T).reshape(T, H, D), pos)
            k = self._rope((h @ L["attn_k"].T).reshape(T, KV, D), pos)
            v = (h @ L["attn_v"].T).reshape(T, KV, D)
            k = np.repeat(k, group, axis=1)
            v = np.repeat(v, group, axis=1)
            att = np.einsum("thd,shd->hts", q, k) / np.sqrt(D) + mask
            att = np.exp(att - att.max(axis=-1, keepdims=True))
            att /= att.sum(axis=-1, keepdims=True)
            o = np.einsum("hts,shd->thd", att, v).reshape(T, H * D)
            x = x + o @ L["attn_output"].T
            h = self._rms_norm(x, L["ffn_norm"])
            g = h @ L["ffn_gate"].T
            x = x + ((g / (1.0 + np.exp(-g))) * (h @ L["ffn_up"].T)) @ L["ffn_down"].T
        x = self._rms_norm(x, self.output_norm)
        return x @ self.output.T
