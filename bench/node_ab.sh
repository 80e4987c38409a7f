#!/usr/bin/env bash
# The Node addon's rows of bench/node_vs_http.sh for two checkouts, A and B, in
# alternating rounds (each checkout's own bench/node scripts and built addon):
#
#   bash bench/node_ab.sh A_REPO B_REPO [rounds, default 5] [seconds per run, default 5]
#
# Build each first (`make node-build` in it). Prints every figure, the medians and B / A.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
A=$1
B=$2
ROUNDS=${3:-5}
DUR=${4:-5}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
PIDS=""
trap '[ -n "$PIDS" ] && kill $PIDS 2>/dev/null' EXIT
declare -A port
for who in A B; do
  root=${!who}
  port[$who-serve]=$(free_port); node "$root/bench/node/corral_serve.js" "${port[$who-serve]}" 2 & PIDS="$PIDS $!"
  port[$who-offload]=$(free_port); node "$root/bench/node/corral_offload.js" "${port[$who-offload]}" & PIDS="$PIDS $!"
  wait_http "${port[$who-serve]}"; wait_http "${port[$who-offload]}"
done
declare -A runs
for r in $(seq "$ROUNDS"); do
  order="A B"; [ $((r % 2)) -eq 1 ] && order="B A"
  for who in $order; do
    ka=$(rps -d"$DUR" -t2 -c100 "http://127.0.0.1:${port[$who-serve]}/")
    nc=$(rps -d"$DUR" -t2 -c50 -H 'Connection: close' "http://127.0.0.1:${port[$who-offload]}/")
    hv=$(rps -d"$DUR" -t2 -c50 "http://127.0.0.1:${port[$who-serve]}/work")
    runs[$who-ka]+="$ka"$'\n'; runs[$who-nc]+="$nc"$'\n'; runs[$who-hv]+="$hv"$'\n'
    echo "round $r $who: serve keep-alive $ka, listen+emit new connection $nc, 1 ms JS on 2 threads $hv req/s"
  done
done
for s in ka nc hv; do
  a=$(printf '%s' "${runs[A-$s]}" | median)
  b=$(printf '%s' "${runs[B-$s]}" | median)
  case $s in ka) name="keep-alive GET / (serve) -c100";; nc) name="new connection (listen+emit) -c50";; hv) name="1 ms of JS, 2 threads -c50";; esac
  printf '%-36s A %10.0f   B %10.0f   B/A %.3f\n' "$name" "$a" "$b" "$(echo "$b / $a" | bc -l)"
done
