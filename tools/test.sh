#!/usr/bin/env bash
# The test command: build with warnings as errors and run every test, then
# the same tests again in an ASan+UBSan build. Usage: tools/test.sh [--fast]
# (--fast skips the sanitizer build).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

cmake -S . -B build -DST_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

if [ "${1:-}" != "--fast" ]; then
  cmake -S . -B build-asan -DST_WERROR=ON -DST_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
  cmake --build build-asan -j"$jobs"
  rm -rf build-asan/sanitizer-logs && mkdir -p build-asan/sanitizer-logs
  status=0
  ctest --test-dir build-asan --output-on-failure -j"$jobs" || status=$?
  # Leaks and UB found after a test reported its result land in these logs.
  if compgen -G "build-asan/sanitizer-logs/*" >/dev/null; then
    cat build-asan/sanitizer-logs/* >&2
    echo "test.sh: the sanitizers reported problems (above)" >&2
    status=1
  fi
  [ $status -eq 0 ] || exit $status
fi

# Fuzzing (docs/fuzzing.md): every libFuzzer target in tests/fuzz, built
# with clang under ASan+UBSan in build-fuzz, runs 40 s, two at a time (about
# 3 minutes, plus the build); a crash, leak, hang or oracle failure fails the run.
if [ "${1:-}" != "--fast" ]; then
  tools/fuzz.sh --time 40 --jobs 2
fi
