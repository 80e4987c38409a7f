#!/usr/bin/env bash
# Restarts under load: the example server is replaced RESTARTS times while two wrk runs
# go on (keep-alive -c50, and a new connection per request -c20); each new process takes
# the listening sockets from the running one (--listeners-from / --offer-listeners),
# which then drains and exits. Prints wrk's totals, socket errors, non-2xx and latency.
#
#   bash bench/restart_under_load.sh [RESTARTS, default 10] [seconds between, default 1]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
RESTARTS=${1:-10}
GAP=${2:-1}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p corral --example http_server
work=$(mktemp -d)
trap 'pkill -f "http_server.*$work" 2>/dev/null; rm -rf "$work"' EXIT
BIN=./target/release/examples/http_server
SOCK="$work/offer.sock"
PORT=$(free_port)
$BIN --addr "127.0.0.1:$PORT" --offer-listeners "$SOCK" >"$work/gen0.out" 2>&1 &
wait_http "$PORT"
DUR=$((RESTARTS * GAP + 3))
wrk -t1 -c50 -d"${DUR}s" --latency "http://127.0.0.1:$PORT/" >"$work/ka.txt" 2>&1 &
W1=$!
wrk -t1 -c20 -d"${DUR}s" --latency -H 'Connection: close' "http://127.0.0.1:$PORT/" >"$work/close.txt" 2>&1 &
W2=$!
sleep 1
for i in $(seq "$RESTARTS"); do
  $BIN --listeners-from "$SOCK" --offer-listeners "$SOCK" >"$work/gen$i.out" 2>&1 &
  sleep "$GAP"
done
wait $W1 $W2
echo "processes that handed over and exited: $(grep -l 'a successor serves' "$work"/gen*.out | wc -l) of $RESTARTS"
for f in ka close; do
  label=$([ $f = ka ] && echo "keep-alive -c50" || echo "new connection per request -c20")
  total=$(awk '/requests in/ {print $1}' "$work/$f.txt")
  errs=$(grep -E "Socket errors|Non-2xx" "$work/$f.txt" | tr -s ' ' | paste -sd';' - || true)
  p99=$(awk '$1=="99%" {print $2}' "$work/$f.txt")
  echo "$label: $total requests across $RESTARTS restarts; ${errs:-0 socket errors, 0 non-2xx}; p99 $p99"
done
