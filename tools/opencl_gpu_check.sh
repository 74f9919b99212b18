#!/usr/bin/env bash
# The whole OpenCL check on a machine with a GPU, in a few minutes:
#   1. build (plain, -Werror, tests) with the OpenCL backend;
#   2. `stretch devices`;
#   3. the OpenCL tests (kernels against the CPU, greedy equality on tiny
#      models) on the chosen device;
#   4. greedy 64-token continuations of tools/prompts.txt, CPU vs OpenCL;
#   5. `stretch bench` at 512-token prefill and 128-token decode, CPU and
#      OpenCL in the same run, cold and warm kernel cache;
#   6. a 32k-token lm-infinite perplexity window on the device.
# Each step runs with the forward pass's state on the device (the
# default); step 4 also compares with STRETCH_RESIDENT=off (products only).
#
# Usage: tools/opencl_gpu_check.sh [--short] MODEL.gguf TEXT.txt [DEVICE]
#   --short  a quick pass for a slow device (PoCL on a CPU): 4 prompts x 16
#            tokens, bench at 64 + 16 tokens, a 2k lm-infinite window
#   MODEL  the GGUF the manifests name (models/SmolLM2-135M-Instruct.Q4_1.gguf)
#   TEXT   a long plain text, at least 32k tokens (tinyshakespeare.txt, docs/datasets.md)
#   DEVICE an index or name substring (`stretch devices`); default: the first GPU
# Writes everything to out/gpu-check/ and prints a summary; exit 1 when a
# step fails. Set BUILD=dir to reuse a build directory (default build-gpu).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
short=0
if [ "${1:-}" = "--short" ]; then
  short=1
  shift
fi
if [ $short = 1 ]; then
  limit=4 tokens=16 prefill=64 decode=16 reps=1 long=2048
else
  limit=0 tokens=64 prefill=512 decode=128 reps=3 long=32768
fi
model=${1:?usage: $0 MODEL.gguf TEXT.txt [DEVICE]}
text=${2:?usage: $0 MODEL.gguf TEXT.txt [DEVICE]}
device=${3:-}
build=${BUILD:-$here/build-gpu}
out=$here/out/gpu-check
mkdir -p "$out"
export XDG_CACHE_HOME=$out/cache
dev=()
[ -n "$device" ] && dev=(--device "$device")
cd "$here"

step() { printf '\n== %s\n' "$*"; }

step "build"
cmake -S . -B "$build" -DST_WERROR=ON -DST_BUILD_TESTS=ON -DST_OPENCL=ON \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$out/configure.log"
cmake --build "$build" -j"$(nproc)" > "$out/build.log"
stretch=$build/bin/stretch

step "devices"
"$stretch" devices | tee "$out/devices.txt"
"$stretch" devices --json > "$out/devices.json"

# The manifests name ../models/<file>; a scratch manifest points at MODEL.
m=$out/greedy.yaml
printf 'format: 1\nextends: %s/manifests/greedy.yaml\nmodel: %s\n' "$here" "$(realpath "$model")" > "$m"
lmi=$out/lm-infinite.yaml
printf 'format: 1\nextends: %s/manifests/lm-infinite.yaml\nmodel: %s\n' "$here" "$(realpath "$model")" > "$lmi"

step "OpenCL tests (kernels vs CPU, greedy equality on tiny models)"
ctest --test-dir "$build" -R 'opencl' --output-on-failure -j"$(nproc)" | tee "$out/ctest.txt"

step "greedy 64-token continuations, cpu vs opencl"
python3 tools/compare_backends.py --stretch "$stretch" -m "$m" --tokens $tokens --limit $limit \
        ${device:+--device "$device"} --json "$out/compare.json" | tee "$out/compare.txt" || true
STRETCH_RESIDENT=off python3 tools/compare_backends.py --stretch "$stretch" -m "$m" \
        --tokens $tokens --limit $limit ${device:+--device "$device"} \
        --json "$out/compare-products-only.json" | tee "$out/compare-products-only.txt" || true

step "bench: $prefill-token prefill, $decode-token decode (cold cache first)"
rm -rf "$XDG_CACHE_HOME"
"$stretch" bench -m "$m" --backend opencl "${dev[@]}" --prompt-tokens $prefill --gen-tokens $decode \
          --reps $reps --json | tee "$out/bench-opencl.json"
"$stretch" bench -m "$m" --backend cpu --threads 2 --prompt-tokens $prefill --gen-tokens $decode \
          --reps $reps --json | tee "$out/bench-cpu2.json"
python3 - "$out/bench-opencl.json" "$out/bench-cpu2.json" <<'PY'
import json, statistics, sys
cl, cpu = (json.load(open(p)) for p in sys.argv[1:3])
med = lambda r, k: statistics.median(r[k])
print(f"device: {cl.get('device')}  device memory: {cl['device_bytes'] / 2**20:.1f} MiB")
print(f"kernel load ms per rep: {cl['kernel_compile_ms']} cache hits: {cl['kernel_cache_hit']}")
for k in ("prefill_tok_s", "decode_tok_s"):
    print(f"{k}: opencl {med(cl, k):.1f}, cpu 2 threads {med(cpu, k):.1f}, "
          f"ratio {med(cl, k) / med(cpu, k):.2f}x")
PY

step "lm-infinite, one $long-token window on the device"
"$stretch" eval ppl -m "$lmi" --backend opencl "${dev[@]}" --length $long --windows 1 \
          --out "$out/lm-infinite-$long" --fresh --json "$text" | tee "$out/lm-infinite-$long.json"

step "done: results in $out"
