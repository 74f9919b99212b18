#!/usr/bin/env bash
# The test command: build with warnings as errors and run every test (the C
# tests, then the Python package's and tools/plots.py's pytest tests), then
# the C tests again in an ASan+UBSan build. Usage: tools/test.sh [--fast]
# (--fast skips the sanitizer build).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

cmake -S . -B build -DST_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

# Python: a venv under build/ (Debian's system pip refuses to install into
# /usr, PEP 668), the package installed as a user would, pytest run from the
# repository root so the package finds build/lib/libstretch.so. pytest exits
# non-zero (5) when a directory collects no test, so each runs on its own.
venv=build/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r python/requirements-test.txt
"$venv/bin/python" -m pip install -q --disable-pip-version-check ./python
"$venv/bin/python" -m pytest -q -p no:cacheprovider python/tests
"$venv/bin/python" -m pytest -q -p no:cacheprovider tools/tests

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
  exit $status
fi
