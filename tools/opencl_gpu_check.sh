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
#
# Usage: tools/opencl_gpu_check.sh MODEL.gguf TEXT.txt [DEVICE]
#   MODEL  the GGUF the manifests name (models/SmolLM2-135M-Instruct.Q4_1.gguf)
#   TEXT   a long plain text, at least 32k tokens (tinyshakespeare.txt, docs/datasets.md)
#   DEVICE an index or name substring (`stretch devices`); default: the first GPU
# Writes everything to out/gpu-check/ and prints a summary; exit 1 when a
# step fails. Set BUILD=dir to reuse a build directory (default build-gpu).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
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
python3 tools/compare_backends.py --stretch "$stretch" -m "$m" --tokens 64 \
        ${device:+--device "$device"} --json "$out/compare.json" | tee "$out/compare.txt" || true

step "bench: 512-token prefill, 128-token decode (cold cache first)"
rm -rf "$XDG_CACHE_HOME"
"$stretch" bench -m "$m" --backend opencl "${dev[@]}" --prompt-tokens 512 --gen-tokens 128 \
          --reps 3 --json | tee "$out/bench-opencl.json"
"$stretch" bench -m "$m" --backend cpu --threads 2 --prompt-tokens 512 --gen-tokens 128 \
          --reps 3 --json | tee "$out/bench-cpu2.json"
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

step "lm-infinite, one 32k-token window on the device"
"$stretch" eval ppl -m "$lmi" --backend opencl "${dev[@]}" --length 32768 --windows 1 \
          --out "$out/lm-infinite-32k" --fresh --json "$text" | tee "$out/lm-infinite-32k.json"

step "done: results in $out"
