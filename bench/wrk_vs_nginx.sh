#!/usr/bin/env bash
# corral's example server, on both backends (epoll and io_uring), against nginx, side by
# side in one run, with wrk; then syscalls per request for each.
#
#   bash bench/wrk_vs_nginx.sh [seconds per run, default 5] [runs per scenario, default 3]
#
# Installs wrk and nginx-light from Debian if missing (needs root). The servers run on
# loopback on this machine; wrk runs on the same cores (as in shared/peers/README.md).
# Each scenario's runs alternate between the servers; prints the median req/s of each,
# io_uring / nginx and io_uring / epoll. Syscalls per request: `perf stat -e
# 'syscalls:sys_enter_*'` on the server's processes during one wrk run, divided by the
# requests wrk completed in it (a fixed count per run is not what wrk does; the count is
# exact for the window counted).
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
EPOLL_PORT=$(free_port)
URING_PORT=$(free_port)
# The same with TCP_DEFER_ACCEPT (nginx `deferred`, corral `defer_accept`).
NGINX_DEFER_PORT=$(free_port)
EPOLL_DEFER_PORT=$(free_port)
URING_DEFER_PORT=$(free_port)

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
start() { # PORT BACKEND [more flags]: an example server in the background
  local port=$1 backend=$2; shift 2
  ./target/release/examples/http_server --addr "127.0.0.1:$port" --backend "$backend" --seconds 100000 "$@" \
    >"$work/corral-$port.log" 2>&1 &
  SERVER="$SERVER $!"
  eval "PID_$port=$!"
}
start "$EPOLL_PORT" epoll
start "$URING_PORT" io_uring
start "$EPOLL_DEFER_PORT" epoll --defer-accept
start "$URING_DEFER_PORT" io_uring --defer-accept
for port in $EPOLL_PORT $URING_PORT $EPOLL_DEFER_PORT $URING_DEFER_PORT $NGINX_PORT; do wait_http "$port"; done
if grep -q "cannot run" "$work/corral-$URING_PORT.log"; then
  echo "io_uring is not available here: $(cat "$work/corral-$URING_PORT.log")"; exit 1
fi

# SCENARIO-NAME EPOLL-PORT URING-PORT NGINX-PORT PATH WRK-ARGS...
scenario() {
  local name=$1 eport=$2 uport=$3 nport=$4 path=$5; shift 5
  local e_runs="" u_runs="" n_runs=""
  for r in $(seq "$RUNS"); do
    # Alternate who goes first, so a slow moment of the machine does not fall on one.
    local order="e u"
    [ $((r % 2)) -eq 0 ] && order="u e"
    for who in $order; do
      if [ "$who" = e ]; then
        e_runs+="$(rps -d"${DUR}" "$@" "http://127.0.0.1:$eport$path")"$'\n'
      else
        u_runs+="$(rps -d"${DUR}" "$@" "http://127.0.0.1:$uport$path")"$'\n'
      fi
    done
    [ "$path" = "/" ] && n_runs+="$(rps -d"${DUR}" "$@" "http://127.0.0.1:$nport$path")"$'\n'
  done
  local e u n
  e=$(printf '%s' "$e_runs" | median)
  u=$(printf '%s' "$u_runs" | median)
  if [ -n "$n_runs" ]; then
    n=$(printf '%s' "$n_runs" | median)
    printf '%-34s %10.0f %10.0f %10.0f %9.2fx %9.2fx\n' "$name" "$e" "$u" "$n" "$(echo "$u / $n" | bc -l)" \
      "$(echo "$u / $e" | bc -l)"
  else
    printf '%-34s %10.0f %10.0f %10s %10s %9.2fx\n' "$name" "$e" "$u" "-" "-" "$(echo "$u / $e" | bc -l)"
  fi
}

echo "corral example server (epoll, io_uring) vs nginx (2 workers), wrk on the same $(nproc) cores, ${DUR}s x ${RUNS} runs, median"
printf '%-34s %10s %10s %10s %10s %10s\n' scenario epoll io_uring nginx "uring/ngx" "uring/epl"
scenario "keep-alive GET / (-t2 -c100)" "$EPOLL_PORT" "$URING_PORT" "$NGINX_PORT" / -t2 -c100
scenario "keep-alive GET / (-t2 -c5000)" "$EPOLL_PORT" "$URING_PORT" "$NGINX_PORT" / -t2 -c5000
scenario "new connection per request (-c50)" "$EPOLL_PORT" "$URING_PORT" "$NGINX_PORT" / -t2 -c50 -H 'Connection: close'
scenario "  same, all with defer accept" "$EPOLL_DEFER_PORT" "$URING_DEFER_PORT" "$NGINX_DEFER_PORT" / -t2 -c50 \
  -H 'Connection: close'
scenario "GET /work?us=1000 (-t2 -c50)" "$EPOLL_PORT" "$URING_PORT" "$NGINX_PORT" '/work?us=1000' -t2 -c50

if ! need perf; then
  echo "syscalls per request: perf is not installed (apt-get install linux-perf)"; exit 0
fi
# NAME PIDS URL WRK-ARGS...: syscalls the server made per request wrk completed, and the
# three most frequent.
syscalls() {
  local name=$1 pids=$2 url=$3; shift 3
  perf stat -x, -e 'syscalls:sys_enter_*' -p "$pids" -o "$work/perf.txt" -- \
    wrk -d"$DUR" "$@" "$url" >"$work/wrk.txt" 2>&1
  local n
  n=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
  awk -F, -v n="$n" -v name="$name" '
    $3 ~ /syscalls:sys_enter_/ && $1 + 0 > 0 { total += $1; sub("syscalls:sys_enter_", "", $3); c[$3] = $1 }
    END {
      top = ""
      for (k = 0; k < 3; k++) { best = ""; for (s in c) if (best == "" || c[s] > c[best]) best = s;
        if (best != "") { top = top sprintf(" %s %.3f", best, c[best] / n); delete c[best] } }
      printf "%-44s %7.3f  (%s)\n", name, total / n, substr(top, 2)
    }' "$work/perf.txt"
}
NGINX_PIDS=$(pgrep -d, -f "nginx: (master|worker)" || true)
echo
echo "syscalls per request (perf stat on the server's threads, one ${DUR}s wrk run each)"
for c in 100 5000; do
  syscalls "keep-alive -c$c, epoll" "$(eval echo "\$PID_$EPOLL_PORT")" "http://127.0.0.1:$EPOLL_PORT/" -t2 -c$c
  syscalls "keep-alive -c$c, io_uring" "$(eval echo "\$PID_$URING_PORT")" "http://127.0.0.1:$URING_PORT/" -t2 -c$c
  syscalls "keep-alive -c$c, nginx" "$NGINX_PIDS" "http://127.0.0.1:$NGINX_PORT/" -t2 -c$c
done
syscalls "new connection per request, epoll" "$(eval echo "\$PID_$EPOLL_PORT")" "http://127.0.0.1:$EPOLL_PORT/" \
  -t2 -c50 -H 'Connection: close'
syscalls "new connection per request, io_uring" "$(eval echo "\$PID_$URING_PORT")" "http://127.0.0.1:$URING_PORT/" \
  -t2 -c50 -H 'Connection: close'
syscalls "new connection per request, nginx" "$NGINX_PIDS" "http://127.0.0.1:$NGINX_PORT/" -t2 -c50 -H 'Connection: close'
