#!/usr/bin/env bash
# Two builds of the example server, A and B, in alternating rounds with wrk, so that a
# change can be compared against the commit before it on a noisy machine:
#
#   bash bench/ab.sh A_BINARY B_BINARY [rounds, default 5] [seconds per run, default 5]
#
# Each round runs keep-alive GET / (-t2 -c100) and a new connection per request
# (-t2 -c50, Connection: close) against A, then B (B first in odd rounds). Prints every
# figure, the median of each, and B / A.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
A=$1
B=$2
ROUNDS=${3:-5}
DUR=${4:-5}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
PIDS=""
trap '[ -n "$PIDS" ] && kill $PIDS 2>/dev/null' EXIT
# Started here, not in $(...), so that the trap knows their pids.
PA=$(free_port)
"$A" --addr "127.0.0.1:$PA" --seconds 100000 >/dev/null 2>&1 & PIDS="$PIDS $!"
PB=$(free_port)
"$B" --addr "127.0.0.1:$PB" --seconds 100000 >/dev/null 2>&1 & PIDS="$PIDS $!"
wait_http "$PA"
wait_http "$PB"
declare -A runs
for r in $(seq "$ROUNDS"); do
  order="A B"; [ $((r % 2)) -eq 1 ] && order="B A"
  for who in $order; do
    port=$PA; [ "$who" = B ] && port=$PB
    ka=$(rps -d"$DUR" -t2 -c100 "http://127.0.0.1:$port/")
    nc=$(rps -d"$DUR" -t2 -c50 -H 'Connection: close' "http://127.0.0.1:$port/")
    runs[$who-ka]+="$ka"$'\n'
    runs[$who-nc]+="$nc"$'\n'
    echo "round $r $who: keep-alive $ka req/s, new connection per request $nc req/s"
  done
done
for s in ka nc; do
  a=$(printf '%s' "${runs[A-$s]}" | median)
  b=$(printf '%s' "${runs[B-$s]}" | median)
  name="keep-alive -c100"; [ $s = nc ] && name="new connection per request -c50"
  printf '%-34s A %10.0f   B %10.0f   B/A %.3f\n' "$name" "$a" "$b" "$(echo "$b / $a" | bc -l)"
done
