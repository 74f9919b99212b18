#!/bin/sh
# tests/tools/test_sh_test.sh TEST_SH SCRATCH_DIR
# Runs a copy of tools/test.sh --fast in a project that has one test only
# when ST_BUILD_TESTS is on and ST_TEST_ONLY is empty, after a configure
# that cached the opposite (what tools/quickstart.sh leaves behind); then in
# a project with no test at all, where it must fail.
set -u
test_sh=$1
scratch=$2
fail() { echo "test_sh_test: $*" >&2; exit 1; }

make_project() { # DIR WITH_TEST
  rm -rf "$1" && mkdir -p "$1/tools" || fail "cannot create $1"
  cp "$test_sh" "$1/tools/test.sh" || fail "cannot copy $test_sh"
  {
    echo 'cmake_minimum_required(VERSION 3.20)'
    echo 'project(test_sh_probe NONE)'
    echo 'option(ST_WERROR "" OFF)'
    echo 'option(ST_SANITIZE "" OFF)'
    echo 'option(ST_BUILD_TESTS "" ON)'
    echo 'set(ST_TEST_ONLY "" CACHE STRING "")'
    echo 'enable_testing()'
    if [ "$2" = yes ]; then
      echo 'if(ST_BUILD_TESTS AND NOT ST_TEST_ONLY)'
      echo '  add_test(NAME probe COMMAND ${CMAKE_COMMAND} -E true)'
      echo 'endif()'
    fi
  } > "$1/CMakeLists.txt"
}

make_project "$scratch/stale" yes
cmake -S "$scratch/stale" -B "$scratch/stale/build" -DST_BUILD_TESTS=OFF \
  -DST_TEST_ONLY=gguf >/dev/null || fail "cannot configure the probe project"
out=$(bash "$scratch/stale/tools/test.sh" --fast 2>&1) ||
  { echo "$out" >&2; fail "test.sh failed on a project whose test passes"; }
echo "$out" | grep -q "100% tests passed, 0 tests failed out of 1" ||
  { echo "$out" >&2; fail "test.sh did not run the probe test (stale cache kept?)"; }

make_project "$scratch/empty" no
if out=$(bash "$scratch/empty/tools/test.sh" --fast 2>&1); then
  echo "$out" >&2
  fail "test.sh passed although no test ran"
fi
echo "test_sh_test: ok"
