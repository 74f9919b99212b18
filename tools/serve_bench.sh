#!/usr/bin/env bash
# One server configuration under tools/load_test.py's load, on loopback:
# starts the server on the model, runs the load test, stops the server
# (also on failure or Ctrl-C). Run it once per configuration, back to
# back on a quiet machine, to compare `stretch serve --parallel 1`,
# `--parallel 8` and llama.cpp's `llama-server` on the same load.
#
# Usage: tools/serve_bench.sh stretch|llama-server PARALLEL GGUF [load_test options...]
#   e.g. tools/serve_bench.sh stretch 8 models/SmolLM2-135M-Instruct.Q4_1.gguf \
#          --clients 32 --requests 20 --expect /tmp/solo.json
# Environment: PORT (default 18480), THREADS (default 2), CONTEXT (tokens
# per sequence, default 2048), STRETCH_BIN (default build/bin/stretch),
# LLAMA_SERVER (default: the one tools/build_llama_native.sh builds).
#
# stretch serves manifests/greedy.yaml with the model replaced by GGUF.
# llama-server gets PARALLEL slots of CONTEXT tokens each and the same
# threads; the load test's requests are greedy (temperature 0), so both
# answer deterministically. Every answer is checked against the solo
# answer of the same prompt: --expect FILE shares one set across runs
# (written by the first run that names it); llama.cpp's own greedy text
# may differ from stretch's in its last tokens (its fast numerics are not
# stretch's), so give it a file of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n '2,21p' "$0" >&2; exit 1; }
server=$1 parallel=$2 gguf=$3
shift 3
case "$parallel" in ''|*[!0-9]*) echo "serve_bench: PARALLEL must be a number, got '$parallel'" >&2; exit 1;; esac
[ -f "$gguf" ] || { echo "serve_bench: no model file at '$gguf'" >&2; exit 1; }
gguf=$(cd "$(dirname "$gguf")" && pwd)/$(basename "$gguf")
port=${PORT:-18480}
threads=${THREADS:-2}
context=${CONTEXT:-2048}
work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

case "$server" in
  stretch)
    bin=${STRETCH_BIN:-build/bin/stretch}
    mkdir "$work/manifests"
    cat > "$work/manifests/greedy.yaml" <<EOF
format: 1
extends: $PWD/manifests/greedy.yaml
model: $gguf
context: $context
EOF
    "$bin" serve --host 127.0.0.1 --port "$port" --manifests "$work/manifests" \
      --parallel "$parallel" --threads "$threads" --max-queue 1024 > "$work/server.log" 2>&1 &
    pid=$!
    ready=listening
    ;;
  llama-server)
    bin=${LLAMA_SERVER:-$HOME/.cache/stretch/llama.cpp-0.3.36/build/bin/llama-server}
    [ -x "$bin" ] || { echo "serve_bench: no llama-server at $bin (tools/build_llama_native.sh builds it)" >&2; exit 1; }
    "$bin" -m "$gguf" --host 127.0.0.1 --port "$port" -t "$threads" -tb "$threads" \
      -np "$parallel" -c $((context * parallel)) --no-webui > "$work/server.log" 2>&1 &
    pid=$!
    ready="listening on"
    ;;
  *) echo "serve_bench: the server is 'stretch' or 'llama-server', got '$server'" >&2; exit 1;;
esac

for _ in $(seq 600); do
  grep -q "$ready" "$work/server.log" && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
grep -q "$ready" "$work/server.log" || { echo "serve_bench: $server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }

python3 tools/load_test.py --url "http://127.0.0.1:$port" --model greedy \
  --label "$server, $parallel at once" "$@"
