#!/usr/bin/env bash
# Build the speed peer: llama.cpp's own tools (llama-bench, llama-perplexity,
# llama-server, llama-completion), natively for this CPU (-DGGML_NATIVE=ON), from the
# llama.cpp source vendored in llama-cpp-python's sdist on PyPI. This is
# the peer docs/RESULTS.md quotes; the pip-built binding (generic flags,
# no AMX) is not.
#
# Usage:
#   tools/build_llama_native.sh               build (once) and print the bin dir
#   tools/build_llama_native.sh --dir DIR     build under DIR
#                                             (default: $XDG_CACHE_HOME/stretch/llama.cpp-VERSION)
#   tools/build_llama_native.sh --jobs N      parallel compile jobs (default: nproc)
# A finished build is reused: its bin dir is printed on the last line of
# stdout. The build takes several minutes on 2 cores.
set -euo pipefail

readonly VERSION="0.3.36"
readonly TARGETS=(llama-bench llama-perplexity llama-server llama-completion)

die() { echo "build_llama_native: error: $*" >&2; exit 1; }
note() { echo "build_llama_native: $*" >&2; }

dir="${XDG_CACHE_HOME:-$HOME/.cache}/stretch/llama.cpp-$VERSION"
jobs=$(nproc 2>/dev/null || echo 2)
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) [ $# -ge 2 ] || die "--dir needs a directory"; dir="$2"; shift ;;
    --jobs) [ $# -ge 2 ] || die "--jobs needs a number"; jobs="$2"; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (try --help)" ;;
  esac
  shift
done
case "$jobs" in ''|*[!0-9]*) die "--jobs expects a positive integer, got '$jobs'" ;; esac

bin="$dir/build/bin"
have_all=1
for t in "${TARGETS[@]}"; do [ -x "$bin/$t" ] || have_all=0; done
if [ $have_all -eq 1 ]; then
  note "already built: $bin"
  echo "$bin"
  exit 0
fi

command -v cmake >/dev/null || die "cmake is missing (tools/install-deps.sh installs it)"
command -v c++ >/dev/null || die "a C++ compiler is missing (apt-get install g++)"
mkdir -p "$dir"
src="$dir/llama_cpp_python-$VERSION/vendor/llama.cpp"
if [ ! -f "$src/CMakeLists.txt" ]; then
  note "downloading the llama-cpp-python $VERSION sdist from PyPI"
  # The sdist itself, by PyPI's JSON API and checked against its SHA-256:
  # `pip download` would first build the package's metadata (and fetch its
  # build backend) just to hand over the tarball.
  mkdir -p "$dir/sdist"
  tarball="$dir/sdist/llama_cpp_python-$VERSION.tar.gz"
  python3 - "$VERSION" "$tarball" <<'PY' || die "could not download the llama-cpp-python $VERSION sdist"
import hashlib, json, sys, urllib.request
version, out = sys.argv[1], sys.argv[2]
# The simple index (PEP 691 JSON) is what every PyPI mirror serves.
req = urllib.request.Request("https://pypi.org/simple/llama-cpp-python/",
                             headers={"Accept": "application/vnd.pypi.simple.v1+json"})
index = json.load(urllib.request.urlopen(req, timeout=60))
name = f"llama_cpp_python-{version}.tar.gz"
sdist = [f for f in index["files"] if f["filename"] == name]
if not sdist:
    sys.exit(f"PyPI lists no {name}")
want = sdist[0]["hashes"]["sha256"]
h = hashlib.sha256()
with urllib.request.urlopen(sdist[0]["url"], timeout=600) as r, open(out + ".part", "wb") as f:
    for block in iter(lambda: r.read(1 << 20), b""):
        h.update(block)
        f.write(block)
if h.hexdigest() != want:
    sys.exit(f"SHA-256 mismatch: got {h.hexdigest()}, PyPI says {want}")
import os
os.replace(out + ".part", out)
PY
  tar xzf "$tarball" -C "$dir"
  [ -f "$src/CMakeLists.txt" ] || die "the sdist holds no vendored llama.cpp at $src"
fi

note "configuring (native, release, no curl)"
cmake -S "$src" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >&2
note "building ${TARGETS[*]} with $jobs jobs"
cmake --build "$dir/build" -j"$jobs" --target "${TARGETS[@]}" >&2
for t in "${TARGETS[@]}"; do [ -x "$bin/$t" ] || die "the build did not produce $bin/$t"; done
note "built: $bin"
echo "$bin"
