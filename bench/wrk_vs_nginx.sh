#!/usr/bin/env bash
# corral's example server against nginx, side by side in one run, with wrk.
#
#   bash bench/wrk_vs_nginx.sh [seconds per run, default 5] [runs per scenario, default 3]
#
# Installs wrk and nginx-light from Debian if missing (needs root). Both servers run on
# loopback on this machine; wrk runs on the same cores (as in shared/peers/README.md).
# Prints the median req/s of each scenario per server and the ratio corral / nginx.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
DUR=${1:-5}
RUNS=${2:-3}

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx; then
  echo "installing wrk and nginx-light (Debian packages)..."
  apt-get update -qq && apt-get install -y -qq wrk nginx-light >/dev/null
fi

cargo build --release -q -p corral --example http_server
# -c5000: wrk, nginx and corral each hold 5,000 descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
work=$(mktemp -d)
SERVER=""
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"' EXIT

NGINX_PORT=$(free_port)
CORRAL_PORT=$(free_port)
# The same pair with TCP_DEFER_ACCEPT (nginx `deferred`, corral `defer_accept`).
NGINX_DEFER_PORT=$(free_port)
CORRAL_DEFER_PORT=$(free_port)

# nginx as configured in shared/peers/nginx.conf: 2 workers, reuseport, `return 200`, no access log.
cat > "$work/nginx.conf" <<NGX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 10000; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NGINX_PORT reuseport backlog=4096;
    location / { return 200 "hello\n"; }
  }
  server {
    listen 127.0.0.1:$NGINX_DEFER_PORT reuseport backlog=4096 deferred;
    location / { return 200 "hello\n"; }
  }
}
NGX
nginx -c "$work/nginx.conf" -g 'daemon on;'
./target/release/examples/http_server --addr "127.0.0.1:$CORRAL_PORT" --seconds 100000 >"$work/corral.log" 2>&1 &
SERVER=$!
./target/release/examples/http_server --addr "127.0.0.1:$CORRAL_DEFER_PORT" --defer-accept --seconds 100000 \
  >"$work/corral-defer.log" 2>&1 &
SERVER="$SERVER $!"
for port in $CORRAL_PORT $CORRAL_DEFER_PORT $NGINX_PORT; do wait_http "$port"; done


scenario() {
  local name=$1; shift
  local cport=$1; shift
  local nport=$1; shift
  local path=$1; shift
  local c_runs="" n_runs=""
  for _ in $(seq "$RUNS"); do
    c_runs+="$(rps -d"${DUR}" "$@" "http://127.0.0.1:$cport$path")"$'\n'
    [ "$path" = "/" ] && n_runs+="$(rps -d"${DUR}" "$@" "http://127.0.0.1:$nport$path")"$'\n'
  done
  local c n
  c=$(printf '%s' "$c_runs" | median)
  if [ -n "$n_runs" ]; then
    n=$(printf '%s' "$n_runs" | median)
    printf '%-34s %12.0f %12.0f %8.2fx\n' "$name" "$c" "$n" "$(echo "$c / $n" | bc -l)"
  else
    local ideal=$(( $(nproc) * 1000 ))
    printf '%-34s %12.0f %12s %8.2fx of cores x 1000 = %d\n' "$name" "$c" "-" "$(echo "$c / $ideal" | bc -l)" "$ideal"
  fi
}

echo "corral example server vs nginx (2 workers), wrk on the same $(nproc) cores, ${DUR}s x ${RUNS} runs, median"
printf '%-34s %12s %12s %9s\n' scenario corral nginx ratio
scenario "keep-alive GET / (-t2 -c100)" "$CORRAL_PORT" "$NGINX_PORT" / -t2 -c100
scenario "keep-alive GET / (-t2 -c5000)" "$CORRAL_PORT" "$NGINX_PORT" / -t2 -c5000
scenario "new connection per request (-c50)" "$CORRAL_PORT" "$NGINX_PORT" / -t2 -c50 -H 'Connection: close'
scenario "  same, both with defer accept" "$CORRAL_DEFER_PORT" "$NGINX_DEFER_PORT" / -t2 -c50 -H 'Connection: close'
scenario "GET /work?us=1000 (-t2 -c50)" "$CORRAL_PORT" "$NGINX_PORT" '/work?us=1000' -t2 -c50
