#!/usr/bin/env bash
# The Node addon against http.createServer and cluster (shared/peers), side by side
# in one run, with wrk (installed from Debian if missing).
#   bash bench/node_vs_http.sh [seconds per run, default 5] [runs, default 3]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
DUR=${1:-5}
RUNS=${2:-3}
PEERS=${PEERS:-../shared/peers}
command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)
make -s node-build >/dev/null
PIDS=""
trap 'kill $PIDS 2>/dev/null || true' EXIT
start() { node "$@" & PIDS="$PIDS $!"; }
P_HTTP=$(free_port); P_CLUSTER=$(free_port); P_SERVE=$(free_port); P_OFFLOAD=$(free_port)
start "$PEERS/node_http.js" "$P_HTTP"
start "$PEERS/node_cluster.js" "$P_CLUSTER"
start bench/node/corral_serve.js "$P_SERVE" 2
start bench/node/corral_offload.js "$P_OFFLOAD"
for p in $P_HTTP $P_CLUSTER $P_SERVE $P_OFFLOAD; do wait_http "$p"; done
measure() { # port path wrk-args...
  local port=$1 path=$2; shift 2
  for _ in $(seq "$RUNS"); do rps -d"$DUR" "$@" "http://127.0.0.1:$port$path"; done | median
}
row() { printf '%-46s %10.0f %10.0f %10.0f %7.2fx %7.2fx\n' "$1" "$2" "$3" "$4" "$(echo "$2 / $3" | bc -l)" "$(echo "$2 / $4" | bc -l)"; }
echo "Node addon vs http.createServer and cluster ($(nproc) workers), wrk on the same $(nproc) cores, ${DUR}s x ${RUNS}, median"
printf '%-46s %10s %10s %10s %8s %8s\n' scenario corral http cluster vs-http vs-cluster
row "keep-alive GET /, JS handler (serve) -c100" \
  "$(measure "$P_SERVE" / -t2 -c100)" "$(measure "$P_HTTP" / -t2 -c100)" "$(measure "$P_CLUSTER" / -t2 -c100)"
row "new connection per request (listen+emit) -c50" \
  "$(measure "$P_OFFLOAD" / -t2 -c50 -H 'Connection: close')" "$(measure "$P_HTTP" / -t2 -c50 -H 'Connection: close')" \
  "$(measure "$P_CLUSTER" / -t2 -c50 -H 'Connection: close')"
row "1 ms of JS per request, heavyThreads: 2 -c50" \
  "$(measure "$P_SERVE" /work -t2 -c50)" "$(measure "$P_HTTP" /work -t2 -c50)" "$(measure "$P_CLUSTER" /work -t2 -c50)"
