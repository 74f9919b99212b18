#!/usr/bin/env python3
"""llguidance and XGrammar on the schemas `stretch eval jsonschema` runs,
with SmolLM2's tokenizer read from the GGUF file.

    python3 tools/jsonschema_peers.py MODEL.gguf DATA_DIR [--subset NAME]
        [--limit N] [--points POINTS.jsonl] [--stretch POINTS.jsonl]
        [--out PEERS.jsonl] [--peers-from PEERS.jsonl]

For each schema (subset folders of DATA_DIR, files sorted by name, the
first N, as the stretch command takes them): compile time (schema to a
matcher ready for masks), declared coverage (compiled or refused, with the
reason), and, where POINTS (stretch's generation points) has stretch's
constrained outputs for that schema (the greedy one and the sampled ones),
the time of each token mask along each output (tokenized by the peer's
tokenizer), the mask before the end included. Prints Markdown tables.

Declared coverage of the whole benchmark beside stretch's, in one run:
--stretch takes stretch's compile points (`st-maskbench --compile-only
DATA_DIR`, or `stretch eval jsonschema --compile-only`) for the same
files and adds a table of the three side by side, per subset, with each
one's most common refusals; --out writes one line per peer and schema
(compiled or not, the reason, compile ms) for a closer look, and
--peers-from reads such a file back instead of running the peers. Without
--points no mask is measured (compile only).

XGrammar's PyPI wheel declares torch, transformers and triton as
dependencies, but its grammar compiler and matcher are its native library
(libxgrammar_bindings.so, reached through apache-tvm-ffi); only its Python
wrappers import torch (matcher.py, for bitmask tensors) and transformers
(tokenizer_info.py). So it is installed without dependencies and driven
through its native binding directly (load_xgrammar_core), with a numpy
bitmask: `pip install --no-deps -r tools/requirements-xgrammar.txt`.

Needs: pip install -r tools/requirements-jsonschema.txt
"""
import argparse
import collections
import functools
import json
import os
import re
import statistics
import sys
import time


def bytes_to_unicode():
    """GPT-2's byte <-> printable-character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


class GgufTokenizer:
    """What llguidance's TokenizerWrapper asks of a tokenizer."""

    def __init__(self, path):
        import gguf
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers

        r = gguf.GGUFReader(path)

        def field(name):
            f = r.fields[name]
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

        def scalar(name):
            f = r.fields.get(name)
            return int(f.parts[f.data[0]][0]) if f else None

        strings = field("tokenizer.ggml.tokens")
        merges = field("tokenizer.ggml.merges")
        types = r.fields["tokenizer.ggml.token_type"]
        ttypes = [int(types.parts[i][0]) for i in types.data]
        dec = bytes_to_unicode()
        self.special_token_ids = [i for i, t in enumerate(ttypes) if t == 3]
        self.tokens = [s.encode() if i in self.special_token_ids
                       else bytes(dec[c] for c in s) for i, s in enumerate(strings)]
        self.eos_token_id = scalar("tokenizer.ggml.eos_token_id")
        self.bos_token_id = scalar("tokenizer.ggml.bos_token_id")
        bpe = models.BPE(vocab={s: i for i, s in enumerate(strings)},
                         merges=[tuple(m.split(" ", 1)) for m in merges])
        self.hf = Tokenizer(bpe)
        self.hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        self.hf.decoder = decoders.ByteLevel()

    def __call__(self, s):
        if isinstance(s, bytes):
            s = s.decode("utf-8", errors="replace")
        return self.hf.encode(s, add_special_tokens=False).ids


def schema_files(data_dir, subset, limit):
    subsets = [subset] if subset else sorted(
        d for d in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, d)))
    for s in subsets:
        names = sorted(n for n in os.listdir(os.path.join(data_dir, s)) if n.endswith(".json"))
        for n in names[:limit]:
            yield s, f"{s}/{n}"


def pct(q, xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q / 100 * len(xs)))] if xs else float("nan")


def run_llguidance(gtok, data_dir, files, outputs):
    import llguidance
    import llguidance.numpy  # noqa: F401  (mask buffers)

    tok = llguidance.LLTokenizer(llguidance.TokenizerWrapper(gtok))
    rows = []
    for subset, f in files:
        with open(os.path.join(data_dir, f), encoding="utf-8") as fh:
            schema = fh.read()
        t0 = time.perf_counter()
        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(schema)
            err = llguidance.LLMatcher.validate_grammar(grammar, tok)
            m = None if err else llguidance.LLMatcher(tok, grammar, log_level=0)
            if m is not None and m.is_error():
                err = m.get_error()
        except (ValueError, RuntimeError) as e:
            err = str(e)
        compile_ms = (time.perf_counter() - t0) * 1e3
        masks = []
        for n, text in enumerate([] if err else outputs.get(f, [])):
            if n:
                m = llguidance.LLMatcher(tok, grammar, log_level=0)
            for t in gtok(text) + [tok.eos_token]:
                t1 = time.perf_counter()
                m.compute_bitmask()
                masks.append((time.perf_counter() - t1) * 1e6)
                if not m.consume_token(t):
                    break
        rows.append((subset, not err, compile_ms, masks, err, f))
    return rows


@functools.lru_cache(maxsize=None)
def load_xgrammar_core():
    """XGrammar's native binding without its package __init__, which
    imports torch (through testing.py and matcher.py) and transformers
    (through tokenizer_info.py): the package is registered as an empty
    namespace, then only the binding loader and the FFI API are imported.
    Returns (core module, version)."""
    import importlib.metadata
    import importlib.util
    import types

    spec = importlib.util.find_spec("xgrammar")
    if spec is None:
        raise ImportError("No module named 'xgrammar'")
    pkg = types.ModuleType("xgrammar")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["xgrammar"] = pkg
    importlib.import_module("xgrammar.load_binding")
    core = importlib.import_module("xgrammar.tvm_ffi_binding._ffi_api")
    return core, importlib.metadata.version("xgrammar")


def run_xgrammar(gtok, data_dir, files, outputs):
    import numpy as np

    core, _ = load_xgrammar_core()
    # TokenizerInfo(encoded_vocab, vocab_type RAW=0, vocab_size, stop ids,
    # add_prefix_space); the tokens are already raw bytes.
    info = core.TokenizerInfo(gtok.tokens, 0, None, [gtok.eos_token_id], False)
    # GrammarCompiler(info, max_threads, cache_enabled, cache_limit_bytes,
    # enable_dynamic_compilation): one thread, no cache, as a fair compile.
    compiler = core.GrammarCompiler(info, 1, False, -1, True)
    rows = []
    for subset, f in files:
        with open(os.path.join(data_dir, f), encoding="utf-8") as fh:
            schema = fh.read()
        t0 = time.perf_counter()
        try:
            # compile_json_schema(schema, any_whitespace, indent, separators,
            # strict_mode, max_whitespace_cnt, any_order): compact JSON as
            # stretch's eval writes it; strict_mode is XGrammar's default.
            compiled = compiler.compile_json_schema(schema, False, None, (",", ":"), True,
                                                    None, False)
            err = ""
        except Exception as e:  # XGrammar raises its own error types
            err = str(e)[:100] or type(e).__name__
        compile_ms = (time.perf_counter() - t0) * 1e3
        masks = []
        for text in ([] if err else outputs.get(f, [])):
            matcher = core.GrammarMatcher(compiled, None, False, -1, None)
            bitmask = np.zeros((1, (len(gtok.tokens) + 31) // 32), dtype=np.int32)
            for t in gtok(text) + [gtok.eos_token_id]:
                t1 = time.perf_counter()
                matcher.fill_next_token_bitmask(bitmask, 0, False)
                masks.append((time.perf_counter() - t1) * 1e6)
                if not matcher.accept_token(t, False):
                    break
        rows.append((subset, not err, compile_ms, masks, err, f))
    return rows


def refusal_key(reason):
    """A short name for a refusal: stretch's keyword, else the first words."""
    if "unsupported keyword '" in reason:
        return "'" + reason.split("unsupported keyword '")[1].split("'")[0] + "'"
    reason = reason.split(": at ")[-1]
    # XGrammar's messages start with "[hh:mm:ss] /path/file.cc:line: ".
    reason = re.sub(r"^\[[0-9:]+\] \S+:[0-9]+: ", "", reason)
    return reason[:48]


def load_stretch(path):
    rows = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f):
            if n == 0 or not line.strip():
                continue
            p = json.loads(line)
            rows[p["file"]] = (p["status"] == "ok", p.get("reason", ""))
    return rows


def coverage_table(files, stretch, peers):
    """Declared coverage per subset: stretch beside each peer."""
    names = ["stretch"] + [n for n, _ in peers]
    print("\nDeclared coverage (schemas compiled), " + ", ".join(names) + "\n")
    print("| subset | schemas | " + " | ".join(names) + " | stretch - llguidance |")
    print("|---|---|" + "---|" * len(names) + "---|")
    subsets = sorted({s for s, _ in files})
    for subset in subsets + ["all"]:
        fs = [f for s, f in files if subset in ("all", s)]
        counts = [sum(stretch.get(f, (False, ""))[0] for f in fs)]
        for _, rows in peers:
            ok = {r[5]: r[1] for r in rows}
            counts.append(sum(ok.get(f, False) for f in fs))
        cells = " | ".join(f"{c} ({100 * c / len(fs):.1f}%)" for c in counts)
        diff = counts[0] - counts[1] if len(counts) > 1 else 0
        print(f"| {subset} | {len(fs)} | {cells} | {diff:+d} |")
    print("\nMost common refusals\n")
    print("| subset | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for subset in subsets:
        fs = [f for s, f in files if s == subset]
        cells = []
        for k, name in enumerate(names):
            c = collections.Counter()
            if k == 0:
                for f in fs:
                    ok, why = stretch.get(f, (False, "not compiled"))
                    if not ok:
                        c[refusal_key(why)] += 1
            else:
                for r in peers[k - 1][1]:
                    if r[0] == subset and not r[1]:
                        c[refusal_key(r[4])] += 1
            cells.append(", ".join(f"{key} ({v})" for key, v in c.most_common(3)) or "-")
        print(f"| {subset} | " + " | ".join(cells) + " |")


def table(name, rows):
    print(f"\n{name}\n")
    print("| subset | schemas | compiled (declared coverage) | compile ms, mean | "
          "mask us mean | p50 | p99 | masks |")
    print("|---|---|---|---|---|---|---|---|")
    by = collections.defaultdict(list)
    for r in rows:
        by[r[0]].append(r)
    for subset in sorted(by):
        rs = by[subset]
        ok = [r for r in rs if r[1]]
        masks = [m for r in rs for m in r[3]]
        cm = statistics.mean(r[2] for r in ok) if ok else float("nan")
        mm = statistics.mean(masks) if masks else float("nan")
        print(f"| {subset} | {len(rs)} | {len(ok)} ({100 * len(ok) / len(rs):.0f}%) | {cm:.2f} | "
              f"{mm:.0f} | {pct(50, masks):.0f} | {pct(99, masks):.0f} | {len(masks)} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("data_dir")
    ap.add_argument("--subset")
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--points", action="append", default=[])
    ap.add_argument("--stretch", help="stretch's compile points for the same files")
    ap.add_argument("--out", help="one JSON line per peer and schema")
    ap.add_argument("--peers-from", help="a previous run's --out file: print the coverage "
                    "tables against --stretch without running the peers again")
    a = ap.parse_args()
    outputs = {}
    for path in a.points:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f):
                p = json.loads(line) if n and line.strip() else {}
                if "output" in p:
                    outputs[p["file"]] = [p["output"]] + [
                        q["output"] for q in p.get("samples", [])]
    files = list(schema_files(a.data_dir, a.subset, a.limit))
    if a.peers_from and a.stretch:
        runs = collections.OrderedDict()
        with open(a.peers_from, encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                runs.setdefault(r["peer"], []).append(
                    (r["subset"], r["status"] == "ok", r["compile_ms"], [], r["reason"], r["file"]))
        wanted = {f for _, f in files}
        coverage_table(files, load_stretch(a.stretch),
                       [(k, [r for r in v if r[5] in wanted]) for k, v in runs.items()])
        return 0
    gtok = GgufTokenizer(a.model)
    import importlib.metadata
    peers = [(f"llguidance {importlib.metadata.version('llguidance')}",
              run_llguidance(gtok, a.data_dir, files, outputs))]
    table(*peers[0])
    try:
        _, version = load_xgrammar_core()
        peers.append((f"XGrammar {version}", run_xgrammar(gtok, a.data_dir, files, outputs)))
        table(*peers[1])
    except ImportError as e:
        print(f"\nXGrammar: not run ({e})", file=sys.stderr)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            for name, rows in peers:
                for r in rows:
                    f.write(json.dumps({"peer": name, "file": r[5], "subset": r[0],
                                        "status": "ok" if r[1] else "refused",
                                        "compile_ms": round(r[2], 3), "reason": r[4]}) + "\n")
    if a.stretch:
        coverage_table(files, load_stretch(a.stretch), peers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
