#!/usr/bin/env bash
# Build the libFuzzer targets (tests/fuzz, clang, ASan+UBSan) and run each
# for a budget, a few at a time. See docs/fuzzing.md.
#
# tools/fuzz.sh [--time SECONDS | --runs N] [--jobs J] [--build DIR]
#               [--no-build] [--list] [TARGET...]
#   --time S     each target runs S seconds (default 60)
#   --runs N     each target runs N inputs instead (-runs=N)
#   --seed S     libFuzzer's random seed (-seed=S); with --runs the run is
#                the same every time, as CI needs
#   --jobs J     targets run J at a time (default 2)
#   --build DIR  the clang build directory (default build-fuzz)
#   TARGET...    fuzz_gguf fuzz_bpe ... (default: all)
# Exits 1 when a target finds a crash, a leak, a timeout or an oracle
# failure; the input is saved as DIR/fuzz-artifacts/TARGET/crash-* (or
# leak-*, timeout-*, oom-*) and the end of its log is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD

# The longest runs first (CI's 20,000 inputs: fuzz_json_schema about a
# minute, the last few a second or two), so two at a time end together.
all=(fuzz_json_schema fuzz_gguf fuzz_hybrid_index fuzz_regex fuzz_bm25_index fuzz_embedding_index
     fuzz_strategy fuzz_params fuzz_plugin_manifest fuzz_squeezed_index fuzz_bpe fuzz_wordpiece
     fuzz_gbnf fuzz_serve_request fuzz_chat_template)
budget=(-max_total_time=60) jobs=2 build=build-fuzz do_build=1 targets=() seed_opt=()
while [ $# -gt 0 ]; do
  case $1 in
    --time) budget=(-max_total_time="$2"); shift 2 ;;
    --runs) budget=(-runs="$2"); shift 2 ;;
    --seed) seed_opt=(-seed="$2"); shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --list) printf '%s\n' "${all[@]}"; exit 0 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

if [ $do_build = 1 ]; then
  cc=$(command -v clang-14 || command -v clang || true)
  [ -n "$cc" ] || { echo "fuzz.sh: clang not found (tools/install-deps.sh installs it)" >&2; exit 2; }
  # No Criterion tests and no OpenCL: only what the fuzz targets link.
  cmake -S . -B "$build" -DCMAKE_C_COMPILER="$cc" -DST_FUZZ=ON -DST_SANITIZE=ON \
    -DST_BUILD_TESTS=OFF -DST_OPENCL=OFF -DST_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j"$jobs" --target fuzz
fi
bin=$build/fuzz

# Seeds: the repository's manifests and fixtures, small committed seeds
# (tests/fuzz/corpus), and binary files written by st-fuzz-seeds.
seeds=$build/fuzz-seeds
rm -rf "$seeds" && mkdir -p "$seeds"
"$bin/st-fuzz-seeds" "$seeds/generated"
seed_dir() { # target, then files to copy into its seed directory
  local d=$seeds/$1; shift
  mkdir -p "$d"
  [ $# -gt 0 ] && cp "$@" "$d/" 2>/dev/null || true
  [ -d "$src/tests/fuzz/corpus/$(basename "$d")" ] && cp "$src/tests/fuzz/corpus/$(basename "$d")"/* "$d/" 2>/dev/null || true
}
seed_dir fuzz_strategy "$src"/manifests/*.yaml "$src"/tests/bad/manifests/[sv]-*.yaml
# plugin.yaml seeds share file names: number them.
seed_dir fuzz_plugin_manifest "$src"/tests/bad/manifests/p-*.yaml "$src"/tests/bad/manifests/fixtures/*.yaml
i=0
for f in "$src"/plugins/*/*/plugin.yaml "$src"/tests/bad/libs/*/plugin.yaml; do
  cp "$f" "$seeds/fuzz_plugin_manifest/plugin-$i.yaml"; i=$((i + 1))
done
seed_dir fuzz_params
seed_dir fuzz_gguf "$seeds"/generated/gguf/*
# One text line per seed, after a flags byte ('@': plain encoding).
seed_dir fuzz_bpe
awk -v d="$seeds/fuzz_bpe" 'NF { printf "@%s", $0 > (d "/line-" NR); close(d "/line-" NR) }' \
  "$src/tools/tokenizer_corpus.txt" "$src/tools/prompts.txt"
# The same lines for wordpiece ('@': the uncased instance, plain encoding).
seed_dir fuzz_wordpiece
cp "$seeds"/fuzz_bpe/line-* "$seeds/fuzz_wordpiece/"
seed_dir fuzz_chat_template
seed_dir fuzz_bm25_index "$seeds"/generated/bm25_index/*
seed_dir fuzz_embedding_index "$seeds"/generated/embedding_index/*
seed_dir fuzz_hybrid_index "$seeds"/generated/hybrid_index/*
seed_dir fuzz_squeezed_index "$seeds"/generated/squeezed_index/*
seed_dir fuzz_gbnf "$src"/tests/constraint/grammars/*.gbnf
seed_dir fuzz_json_schema "$src"/tests/constraint/schemas/*.json
# Pattern A, pattern B, text (tests/fuzz/corpus/fuzz_regex).
seed_dir fuzz_regex
# A path byte (0 completion, 1 chat, 2 msgpack-RPC map), then the body.
seed_dir fuzz_serve_request

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
# libfyaml's own leak on '' escapes (tools/lsan-libfyaml.supp), not ours.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$(cd "$(dirname "$0")" && pwd)/lsan-libfyaml.supp}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
logs=$build/fuzz-logs
rm -rf "$logs" && mkdir -p "$logs"

run_one() {
  local t=$1 dict=()
  local corpus=$build/fuzz-corpus/$t art=$build/fuzz-artifacts/$t/
  mkdir -p "$corpus" "$art"
  case $t in fuzz_strategy|fuzz_plugin_manifest) dict=(-dict="$src/tests/fuzz/yaml.dict") ;; esac
  local extra=()
  [ -d "$src/tests/fuzz/regressions/$t" ] && extra+=("$src/tests/fuzz/regressions/$t")
  # New inputs go to the first directory; the others are read only.
  "$bin/$t" "${budget[@]}" "${seed_opt[@]}" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$art" "${dict[@]}" "$corpus" "$seeds/$t" "${extra[@]}" \
    >"$logs/$t.log" 2>&1 && echo 0 >"$logs/$t.rc" || echo $? >"$logs/$t.rc"
}

echo "fuzz.sh: ${targets[*]} (${budget[*]} ${seed_opt[*]}, $jobs at a time)"
declare -A pid_of
running=0
for t in "${targets[@]}"; do
  [ -x "$bin/$t" ] || { echo "fuzz.sh: no target $t in $bin" >&2; exit 2; }
  run_one "$t" & pid_of[$t]=$!
  running=$((running + 1))
  if [ $running -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
done
failed=0
printf '%-22s %12s %8s %8s %8s  %s\n' target executions seconds cov ft result
for t in "${targets[@]}"; do
  wait "${pid_of[$t]}" || true
  rc=$(cat "$logs/$t.rc" 2>/dev/null || echo 99)
  log=$logs/$t.log
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$( (grep -o 'Done [0-9]* runs in [0-9]* second' "$log" || true) | tail -1 | awk '{print $5}')
  covft=$( (grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" || true) | tail -1)
  result=ok
  if [ $rc -ne 0 ]; then result="FAILED (exit $rc)"; failed=1; fi
  printf '%-22s %12s %8s %8s %8s  %s\n' "$t" "${execs:-?}" "${secs:-?}" \
    "$(echo "$covft" | awk '{print $2}')" "$(echo "$covft" | awk '{print $4}')" "$result"
done
if [ $failed = 1 ]; then
  for t in "${targets[@]}"; do
    grep -qE '^==[0-9]+==ERROR|^SUMMARY|fuzz oracle|runtime error|deadly signal' "$logs/$t.log" || continue
    echo "---- $t: $logs/$t.log (end) ----" >&2
    tail -n 40 "$logs/$t.log" >&2
    ls "$build/fuzz-artifacts/$t/" >&2
  done
  echo "fuzz.sh: a target failed; reproduce with $bin/TARGET ARTIFACT" >&2
fi
exit $failed
