#!/usr/bin/env bash
# Prefill of mixed-length prompts three ways, each in its own process (so
# each peak RSS is its own): one by one, prepacked, padded to the longest.
# Checks that prepacked gives every prompt the greedy next token it gets
# alone, and prints a Markdown table with ratios against padding.
# Usage: tools/bench_prefill.sh MANIFEST [bench-prefill options...]
#   e.g. tools/bench_prefill.sh manifests/greedy.yaml --prompts 16 --min 32 --max 1024
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: tools/bench_prefill.sh MANIFEST [options]" >&2; exit 1; }
manifest=$1
shift
bin=${STRETCH_BIN:-build/bin/stretch}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for method in single prepacked padded; do
  "$bin" bench-prefill -m "$manifest" --method "$method" "$@" > "$out/$method.json"
done
python3 - "$out" "$manifest" "$*" <<'PY'
import json, sys
out, manifest, args = sys.argv[1], sys.argv[2], sys.argv[3]
r = {m: json.load(open(f"{out}/{m}.json")) for m in ("single", "prepacked", "padded")}
same = r["single"]["next_tokens"] == r["prepacked"]["next_tokens"]
p = r["prepacked"]
print(f"{p['prompts']} prompts of {p['min']}..{p['max']} tokens, {p['threads']} threads, "
      f"{manifest} {args}".rstrip())
print(f"prepacked next tokens equal one-by-one: {'yes' if same else 'NO'}\n")
print("| method | rows through the model | prefill s | peak RSS MB (load) | "
      "prefill memory MB | time vs padded | memory vs padded |")
print("|---|---|---|---|---|---|---|")
pad = r["padded"]
pad_mem = pad["peak_rss_mb"] - pad["peak_rss_mb_before"]
for m in ("single", "prepacked", "padded"):
    x = r[m]
    mem = x["peak_rss_mb"] - x["peak_rss_mb_before"]
    print(f"| {m} | {x['rows']} | {x['seconds']:.2f} | {x['peak_rss_mb']:.0f} "
          f"({x['peak_rss_mb_before']:.0f}) | {mem:.0f} | "
          f"{pad['seconds'] / x['seconds']:.2f}x faster | "
          f"{pad_mem / mem if mem > 0 else float('inf'):.2f}x less |")
sys.exit(0 if same else 1)
PY
