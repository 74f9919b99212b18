#!/usr/bin/env bash
# Scale-out on one machine, as across several: two `stretch serve` replicas
# behind nginx (the Debian package; `apt-get install nginx-light`) as the
# load balancer, all on loopback. Starts them, runs tools/load_test.py
# through nginx, stops them all (also on failure or Ctrl-C).
# Usage: tools/serve_scaleout.sh MANIFESTS_DIR MODEL [load_test.py options...]
#   e.g. tools/serve_scaleout.sh manifests greedy --clients 32 --requests 20
# Environment: PARALLEL (per replica, default 4), THREADS (per replica,
# default the manifest's; on one machine give each replica its share of
# the cores), BASE_PORT (default 18400: nginx on it, the replicas on the
# next two), STRETCH_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: tools/serve_scaleout.sh MANIFESTS_DIR MODEL [options]" >&2; exit 1; }
dir=$1 model=$2
shift 2
bin=${STRETCH_BIN:-build/bin/stretch}
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx_bin" ] || { echo "serve_scaleout: nginx not found (apt-get install nginx-light)" >&2; exit 1; }
parallel=${PARALLEL:-4}
threads=()
[ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")
base=${BASE_PORT:-18400}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill -QUIT "$(cat "$work/nginx.pid")" 2>/dev/null || true
  sleep 0.2
  rm -rf "$work"
}
trap cleanup EXIT

for i in 1 2; do
  "$bin" serve --host 127.0.0.1 --port $((base + i)) --manifests "$dir" --parallel "$parallel" \
    "${threads[@]}" > "$work/replica$i.log" 2>&1 &
  pids+=($!)
done
for i in 1 2; do
  for _ in $(seq 100); do grep -q listening "$work/replica$i.log" && break; sleep 0.1; done
  grep -q listening "$work/replica$i.log" || { cat "$work/replica$i.log" >&2; exit 1; }
done

# Streams pass through unbuffered; the replica with fewer open requests
# gets the next one.
cat > "$work/nginx.conf" <<EOF
daemon on;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/body;
  proxy_temp_path $work/proxy;
  upstream stretch { least_conn; server 127.0.0.1:$((base + 1)); server 127.0.0.1:$((base + 2)); keepalive 64; }
  server {
    listen 127.0.0.1:$base;
    location / {
      proxy_pass http://stretch;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 600s;
      client_max_body_size 1m;
    }
  }
}
EOF
"$nginx_bin" -p "$work" -c "$work/nginx.conf"
for _ in $(seq 50); do [ -f "$work/nginx.pid" ] && break; sleep 0.1; done

python3 tools/load_test.py --url "http://127.0.0.1:$base" --model "$model" \
  --label "2 replicas x --parallel $parallel behind nginx" "$@"
