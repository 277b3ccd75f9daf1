#!/usr/bin/env bash
# Runs REPLICAS Tasky processes behind nginx, as one server on $PORT: how the service is measured scaled out.
# Each process gets the caller's environment (DATABASE_URL, JWT_SECRET, ...) and a port of its own above PORT;
# nginx balances over them round robin, with keep-alive connections to them, and sets X-Real-IP.
#
#   REPLICAS=2 TASKY=target/release/tasky PORT=8000 DATABASE_URL=postgres://... JWT_SECRET=... benches/replicas.sh
#
# With the team's benchmark kit, as the taskypg target (one round: one replica, then two):
#   TASKY_CMD="RUST_LOG=warn REPLICAS=2 TASKY=$PWD/target/release/tasky $PWD/benches/replicas.sh" \
#     ../shared/bench/compare.sh taskypg
#
# Everything listens on 127.0.0.1. SIGTERM or SIGINT stops nginx and every process; so does any of them exiting.
set -euo pipefail

REPLICAS="${REPLICAS:-2}"
TASKY="${TASKY:-target/release/tasky}"
PORT="${PORT:-8000}"
NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
[[ -x "$NGINX" ]] || { echo "replicas.sh: nginx not found (apt-get install nginx)" >&2; exit 1; }

dir="$(mktemp -d /tmp/tasky-replicas.XXXXXX)"
pids=()
stop() {
  trap - TERM INT EXIT
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap stop TERM INT EXIT

upstreams=""
for i in $(seq 1 "$REPLICAS"); do
  port=$((PORT + 100 + i))
  # One at a time: the first one migrates; the others find the schema ready.
  HOST=127.0.0.1 PORT="$port" TRUST_PROXY=X-Real-IP "$TASKY" &
  pids+=("$!")
  for _ in $(seq 1 300); do
    curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "replicas.sh: replica $i exited" >&2; exit 1; }
    sleep 0.1
  done
  upstreams+="    server 127.0.0.1:$port;"$'\n'
done

cat >"$dir/nginx.conf" <<CONF
daemon off;
master_process off;
worker_rlimit_nofile 65536;
error_log $dir/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  upstream tasky {
$upstreams    keepalive 128;
  }
  server {
    listen 127.0.0.1:$PORT;
    location / {
      proxy_pass http://tasky;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Real-IP \$remote_addr;
    }
  }
}
CONF
"$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" &
pids+=("$!")
wait -n "${pids[@]}"
