#!/usr/bin/env python3
"""Tables for `stretch eval jsonschema` points files.

    python3 tools/jsonschema_report.py DATA_DIR POINTS.jsonl [POINTS.jsonl ...]

DATA_DIR is the folder `stretch eval jsonschema` read (subset folders of
schemas). Declared coverage and compile times come from every point;
empirical coverage validates each constrained output (the greedy one and
the sampled ones) with Python's jsonschema (a validator independent of
stretch's grammar, with format checking), and the mask-time and tokens/s
columns come from the runs that generated. Prints Markdown (for docs/RESULTS.md).

Needs: pip install -r tools/requirements-jsonschema.txt
"""
import collections
import json
import statistics
import sys


def load_points(paths):
    points = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f):
                if n == 0 or not line.strip():
                    continue  # the header
                p = json.loads(line)
                # A generation point supersedes a compile-only one.
                if p["file"] not in points or "output" in p:
                    points[p["file"]] = p
    return points


def valid_output(data_dir, point, output=None):
    import jsonschema

    with open(f"{data_dir}/{point['file']}", encoding="utf-8") as f:
        schema = json.load(f)
    try:
        value = json.loads(point["output"] if output is None else output)
    except ValueError:
        return False
    try:
        cls = jsonschema.validators.validator_for(schema)
        return cls(schema, format_checker=cls.FORMAT_CHECKER).is_valid(value)
    except (jsonschema.exceptions.SchemaError, jsonschema.exceptions.RefResolutionError,
            jsonschema.exceptions.UnknownType):
        return False


def pct(q, xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q / 100 * len(xs)))] if xs else float("nan")


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    data_dir, paths = sys.argv[1], sys.argv[2:]
    points = load_points(paths)
    by_subset = collections.defaultdict(list)
    for p in points.values():
        by_subset[p["subset"]].append(p)

    print("| subset | schemas | compiled (declared coverage) | schema to GBNF ms, mean | "
          "GBNF to grammar ms, mean | most common refusal |")
    print("|---|---|---|---|---|---|")
    for subset in sorted(by_subset):
        ps = by_subset[subset]
        ok = [p for p in ps if p["status"] == "ok"]
        reasons = collections.Counter()
        for p in ps:
            if p["status"] == "refused":
                r = p["reason"]
                key = r.split("unsupported keyword ")[1].split(" ")[0] if "unsupported keyword" in r else r.split(": at ")[-1][:60]
                reasons[key] += 1
        common = ", ".join(f"{k} ({v})" for k, v in reasons.most_common(2)) or "-"
        sm = statistics.mean(p["schema_ms"] for p in ok) if ok else float("nan")
        gm = statistics.mean(p["grammar_ms"] for p in ok) if ok else float("nan")
        print(f"| {subset} | {len(ps)} | {len(ok)} ({100 * len(ok) / len(ps):.0f}%) | "
              f"{sm:.2f} | {gm:.2f} | {common} |")
    trie = [p["trie_ms"] for p in points.values() if p.get("trie_ms")]
    if trie:
        print(f"\nToken trie (49,152 tokens), built once per sampler instance: "
              f"{statistics.median(trie):.0f} ms median.")

    gen = [p for p in points.values() if "output" in p]
    if not gen:
        return 0
    print("\n| subset | schemas | greedy: ended (EOS) | greedy: valid by jsonschema | "
          "sampled: outputs | sampled: ended | sampled: valid by jsonschema | "
          "mask us mean | p50 | p99 | tok/s constrained | tok/s free | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    gen_by = collections.defaultdict(list)
    for p in gen:
        gen_by[p["subset"]].append(p)
    for subset in sorted(gen_by):
        ps = gen_by[subset]
        valid = sum(valid_output(data_dir, p) for p in ps)
        ended = sum(p["ended"] for p in ps)
        samples = [(p, q) for p in ps for q in p.get("samples", [])]
        s_valid = sum(valid_output(data_dir, p, q["output"]) for p, q in samples)
        s_ended = sum(q["ended"] for _, q in samples)
        masks = [m for p in ps for m in p["mask_us"]] + \
            [m for _, q in samples for m in q.get("mask_us", [])]
        tps_c = sum(p["tokens"] for p in ps) / sum(p["decode_s"] for p in ps)
        tps_f = sum(p["free_tokens"] for p in ps) / sum(p["free_decode_s"] for p in ps)
        share = (lambda k, n: f"{k} ({100 * k / n:.0f}%)" if n else "-")
        print(f"| {subset} | {len(ps)} | {ended} | {share(valid, len(ps))} | {len(samples)} | "
              f"{s_ended} | {share(s_valid, len(samples))} | "
              f"{statistics.mean(masks):.0f} | {pct(50, masks):.0f} | {pct(99, masks):.0f} | "
              f"{tps_c:.1f} | {tps_f:.1f} | {tps_c / tps_f:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
