#!/usr/bin/env bash
# Run the long-context evaluations of docs/RESULTS.md for a list of strategy
# manifests, one output directory per manifest. Every run resumes from the
# points it already finished (stretch eval keeps points.jsonl), so the
# script can be interrupted and started again with the same arguments.
#
# Usage:
#   tools/eval_long.sh ppl LENGTH MANIFEST...
#       one window of LENGTH tokens of $ST_TEXT (tinyshakespeare.txt, docs/datasets.md)
#       (or $ST_TEXT), perplexity in 8 position buckets
#       -> out/ppl-LENGTH/NAME/{ppl.csv,points.jsonl}
#   tools/eval_long.sh passkey LENGTHS DEPTHS SAMPLES MANIFEST...
#       -> out/passkey/NAME/{passkey.csv,points.jsonl}
#   tools/results_tables.py turns the outputs into Markdown tables.
#
# Environment: ST_STRETCH (default build/bin/stretch), ST_TEXT, ST_BUCKETS (8),
# ST_THREADS (all cores), ST_OUT (the output root instead of out/).
set -euo pipefail
cd "$(dirname "$0")/.."

stretch=${ST_STRETCH:-build/bin/stretch}
text=${ST_TEXT:-tinyshakespeare.txt}
buckets=${ST_BUCKETS:-8}
root=${ST_OUT:-out}
threads=()
[ -n "${ST_THREADS:-}" ] && threads=(--threads "$ST_THREADS")

die() { echo "eval_long: error: $*" >&2; exit 2; }
[ -x "$stretch" ] || die "$stretch not found: build first (tools/test.sh --fast)"
[ $# -ge 1 ] || die "usage: tools/eval_long.sh ppl LENGTH MANIFEST... | passkey LENGTHS DEPTHS SAMPLES MANIFEST..."

name_of() { basename "$1" .yaml; }

case "$1" in
  ppl)
    [ $# -ge 3 ] || die "usage: tools/eval_long.sh ppl LENGTH MANIFEST..."
    length=$2; shift 2
    [ -f "$text" ] || die "text file $text not found (set ST_TEXT)"
    for m in "$@"; do
      out="$root/ppl-$length/$(name_of "$m")"
      echo "== ppl $length $(name_of "$m") -> $out" >&2
      start=$(date +%s)
      "$stretch" eval ppl -m "$m" --length "$length" --windows 1 --buckets "$buckets" \
        "${threads[@]}" --out "$out" "$text"
      echo "== $(name_of "$m"): $(( $(date +%s) - start )) s" >&2
    done
    ;;
  passkey)
    [ $# -ge 5 ] || die "usage: tools/eval_long.sh passkey LENGTHS DEPTHS SAMPLES MANIFEST..."
    lengths=$2 depths=$3 samples=$4; shift 4
    for m in "$@"; do
      out="$root/passkey/$(name_of "$m")"
      echo "== passkey $(name_of "$m") -> $out" >&2
      start=$(date +%s)
      "$stretch" eval passkey -m "$m" --lengths "$lengths" --depths "$depths" \
        --samples "$samples" "${threads[@]}" --out "$out"
      echo "== $(name_of "$m"): $(( $(date +%s) - start )) s" >&2
    done
    ;;
  *) die "unknown evaluation '$1' (expected ppl or passkey)" ;;
esac
