#!/usr/bin/env bash
# corral behind a real HAProxy (`mode tcp`): with `send-proxy-v2` and `proxy_protocol v2`
# against the same without PROXY, and nginx (`listen ... proxy_protocol`) behind the same
# HAProxy, side by side in one run with wrk (keep-alive -c100 and a new connection per
# request -c50), alternating, median of RUNS.
#
#   bash bench/behind_haproxy.sh [seconds per run, default 5] [runs, default 3]
#
# Installs wrk, nginx-light and haproxy from Debian if missing (needs root).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
DUR=${1:-5}
RUNS=${2:-3}
need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx || ! need haproxy; then
  apt-get update -qq && apt-get install -y -qq wrk nginx-light haproxy >/dev/null
fi
cargo build --release -q -p corral --example http_server
work=$(mktemp -d)
PIDS=""
trap 'kill $PIDS 2>/dev/null; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"' EXIT
C_PP=$(free_port); C_PLAIN=$(free_port); N_PP=$(free_port)
F_C_PP=$(free_port); F_C_PLAIN=$(free_port); F_N_PP=$(free_port)
cat > "$work/nginx.conf" <<NGX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 10000; }
http {
  access_log off;
  keepalive_requests 1000000;
  set_real_ip_from 127.0.0.0/8;
  real_ip_header proxy_protocol;
  server { listen 127.0.0.1:$N_PP reuseport backlog=4096 proxy_protocol; location / { return 200 "hello\n"; } }
}
NGX
nginx -c "$work/nginx.conf" -g 'daemon on;'
./target/release/examples/http_server --addr "127.0.0.1:$C_PP" --proxy-protocol v2 >/dev/null 2>&1 &
PIDS="$PIDS $!"
./target/release/examples/http_server --addr "127.0.0.1:$C_PLAIN" >/dev/null 2>&1 &
PIDS="$PIDS $!"
cat > "$work/haproxy.cfg" <<HAP
global
  maxconn 4000
  nbthread 2
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend corral_pp
  bind 127.0.0.1:$F_C_PP
  default_backend corral_pp
frontend corral_plain
  bind 127.0.0.1:$F_C_PLAIN
  default_backend corral_plain
frontend nginx_pp
  bind 127.0.0.1:$F_N_PP
  default_backend nginx_pp
backend corral_pp
  server s 127.0.0.1:$C_PP send-proxy-v2
backend corral_plain
  server s 127.0.0.1:$C_PLAIN
backend nginx_pp
  server s 127.0.0.1:$N_PP send-proxy-v2
HAP
haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
PIDS="$PIDS $!"
for p in $F_C_PP $F_C_PLAIN $F_N_PP; do wait_http "$p"; done
declare -A R
for run in $(seq "$RUNS"); do
  for name in corral_pp corral_plain nginx_pp; do
    case $name in corral_pp) p=$F_C_PP;; corral_plain) p=$F_C_PLAIN;; nginx_pp) p=$F_N_PP;; esac
    R[$name-ka]+="$(rps -t2 -c100 -d"${DUR}s" "http://127.0.0.1:$p/") "
    R[$name-close]+="$(rps -t2 -c50 -d"${DUR}s" -H 'Connection: close' "http://127.0.0.1:$p/") "
  done
done
med() { tr ' ' '\n' <<<"$1" | grep -v '^$' | median; }
for mode in ka close; do
  pp=$(med "${R[corral_pp-$mode]}"); plain=$(med "${R[corral_plain-$mode]}"); ng=$(med "${R[nginx_pp-$mode]}")
  label=$([ "$mode" = ka ] && echo "keep-alive -c100" || echo "new connection per request -c50")
  printf '%-34s corral+PROXY v2 %9.0f  corral plain %9.0f  (x%.3f)  nginx+PROXY v2 %9.0f  (corral x%.3f)\n' \
    "$label" "$pp" "$plain" "$(echo "$pp / $plain" | bc -l)" "$ng" "$(echo "$pp / $ng" | bc -l)"
done
