#!/usr/bin/env bash
# What fair shares per client cost when there is nothing to share: the example server with
# `fair_share` on (the default) and off, side by side in one run, on each backend, under
# wrk from one address (one client: every connection is the same client, as in a load
# test) and nginx's keep-alive and new-connection scenarios.
#
#   bash bench/fair_overhead.sh [seconds per run, default 5] [runs, default 3]
#
# Prints one line per scenario and backend: `<name> corral=<req/s> corral-fifo=<req/s>
# ratio=<r> goal=0.97` (issue 26: within 3% of the engine without fair shares), the
# medians of alternating runs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
DUR=${1:-5}
RUNS=${2:-3}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
cargo build --release -q -p corral --example http_server
work=$(mktemp -d)
SERVER=""
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; rm -rf "$work"' EXIT
start() { # PORT BACKEND FAIR
  ./target/release/examples/http_server --addr "127.0.0.1:$1" --backend "$2" --seconds 100000 \
    --set "fair_share=$3" --set max_connections_per_ip=0 >"$work/corral-$1.log" 2>&1 &
  SERVER="$SERVER $!"
}
# NAME FAIR-PORT FIFO-PORT WRK-ARGS...
compare() {
  local name=$1 fport=$2 oport=$3; shift 3
  local f_runs="" o_runs=""
  for r in $(seq "$RUNS"); do
    if [ $((r % 2)) -eq 1 ]; then
      f_runs+="$(rps -d"${DUR}" "$@" "http://127.0.0.1:$fport/")"$'\n'
      o_runs+="$(rps -d"${DUR}" "$@" "http://127.0.0.1:$oport/")"$'\n'
    else
      o_runs+="$(rps -d"${DUR}" "$@" "http://127.0.0.1:$oport/")"$'\n'
      f_runs+="$(rps -d"${DUR}" "$@" "http://127.0.0.1:$fport/")"$'\n'
    fi
  done
  local f o
  f=$(printf '%s' "$f_runs" | median)
  o=$(printf '%s' "$o_runs" | median)
  printf '%s corral=%.0f corral-fifo=%.0f ratio=%.3f goal=0.97\n' "$name" "$f" "$o" "$(echo "$f / $o" | bc -l)"
}
for backend in epoll io_uring; do
  FAIR=$(free_port); FIFO=$(free_port)
  start "$FAIR" "$backend" true
  start "$FIFO" "$backend" false
  wait_http "$FAIR"; wait_http "$FIFO"
  if grep -q "cannot run" "$work/corral-$FAIR.log"; then
    echo "$backend is not available here: $(cat "$work/corral-$FAIR.log")"; continue
  fi
  compare "keepalive-c100-$backend" "$FAIR" "$FIFO" -t2 -c100
  compare "connect-c50-$backend" "$FAIR" "$FIFO" -t2 -c50 -H 'Connection: close'
done
