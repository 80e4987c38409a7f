#!/usr/bin/env bash
# corral over TLS against nginx, Granian, uvicorn and Node's https, side by side in one run,
# with the same certificate and cipher: TLS 1.3, an ECDSA P-256 self-signed certificate made
# for the run (openssl, in a temporary folder), AES-128-GCM.
#
#   bash bench/tls_vs_nginx.sh [keepalive|newconn|resumed|memory|python|node|ktls|all]...
#
# Environment: DUR seconds per measurement (5), WARM seconds of warm-up before each server's
# first measurement (1), RUNS measurements per server, alternating who goes first, median
# (1), IDLE_N idle connections for memory (2000), BATCH connections per h2load batch for
# newconn (500), PEERS the shared peers folder (../shared/peers), BUILD=0 to skip the builds,
# CORRAL_SET extra NAME=VALUE options for corral's example server (space-separated).
#
# Every comparison prints one line: `<name> corral=<figure> <peer>=<figure> ratio=<r> goal=<g>`.
# Throughput figures are requests per second and ratio = corral / peer; the memory figures
# are KiB of server RSS per idle connection and ratio = peer / corral: higher is better in
# both. Lines starting with `#` are the checks behind the figures (suites, resumption) and,
# for each throughput comparison, requests per CPU-second of each server's own processes
# (utime + stime from /proc, children included): the clients (wrk, h2load: OpenSSL 3.0) spend
# more CPU per handshake than the servers, so on a few shared cores the throughput ratio
# leans toward 1 and this one shows the servers' own cost.
#
#   https-keepalive   wrk -t2 -c100, keep-alive, GET / (6 bytes); corral's example server with
#                     2 I/O workers vs nginx with 2 worker processes.
#   https-new-conn    a full handshake per request: h2load --h1, batches of BATCH clients that
#                     make one connection and one request each (h2load and wrk both resume
#                     a client's later connections with its ticket, so one request per
#                     client is what keeps every handshake full); figure = requests / the
#                     batches' time. Checked: corral's tls_handshakes/tls_resumed counters;
#                     nginx's $ssl_session_reused in a short run on a logging twin server.
#   https-resumed     wrk -t2 -c50 with `Connection: close`: every connection after a
#                     client's first resumes with a ticket (checked the same way).
#   tls-idle-memory   bench/tls/idle_conns.py opens IDLE_N TLS connections (handshake and one
#                     keep-alive request each) to a freshly started server and holds them;
#                     the servers' RSS delta (all processes) / IDLE_N. Goal: corral <= nginx.
#   python-asgi-tls   shared/peers/python/asgi_app.py, 1 worker each, wrk -t2 -c100: the
#                     `corral` CLI --ssl-certfile vs Granian --ssl-certificate vs uvicorn
#                     --ssl-certfile (httptools, uvloop); installs the peers into .venv.
#   node-serve-tls    corral serve({ tls }) vs https.createServer (bench/tls/node_tls.js),
#                     wrk -t2 -c100.
#   ktls              kTLS on vs off, and Express on corral.threads with kTLS: not measured
#                     yet; prints why (a probe of the kernel's tls ULP first).
#
# The clients offer TLS 1.3 with AES-128-GCM alone (bench/tls/client.cnf as OPENSSL_CONF; rustls
# takes the client's order, and nginx is set to the same suite); `openssl s_client` prints the
# suite each server agreed on, and wrk's own is shown by corral's GET /tls. The servers run on
# loopback on free ports and share the cores with the clients; everything started is stopped
# on exit. Missing tools are installed from Debian when run as root, else their part is skipped.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
DUR=${DUR:-5}
WARM=${WARM:-1}
RUNS=${RUNS:-1}
IDLE_N=${IDLE_N:-2000}
BATCH=${BATCH:-500}
BUILD=${BUILD:-1}
PEERS=$(realpath -m "${PEERS:-../shared/peers}")
CNF=$PWD/bench/tls/client.cnf
SUITE=TLS_AES_128_GCM_SHA256
PARTS="keepalive newconn resumed memory python node ktls"
WHAT=" ${*:-all} "
for w in $WHAT; do
  [[ " all $PARTS " == *" $w "* ]] || { echo "unknown part '$w': give some of: all $PARTS" >&2; exit 2; }
done
want() { [[ "$WHAT" == *" all "* || "$WHAT" == *" $1 "* ]]; }

# TOOL PACKAGE: whether TOOL is here, installing PACKAGE from Debian first when root can.
have() {
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "# installing $2 (Debian) for $1"
    { apt-get install -y -qq "$2" || { apt-get update -qq && apt-get install -y -qq "$2"; }; } >/dev/null 2>&1 || true
  fi
  command -v "$1" >/dev/null 2>&1
}
have openssl openssl || { echo "every part needs the openssl command (apt-get install openssl)" >&2; exit 1; }
have curl curl || { echo "every part needs curl (apt-get install curl)" >&2; exit 1; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
work=$(mktemp -d)
GROUPS_STARTED=""
cleanup() {
  for g in $GROUPS_STARTED; do kill -TERM -- "-$g" 2>/dev/null || true; done
  for g in $GROUPS_STARTED; do
    for _ in $(seq 50); do kill -0 -- "-$g" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$g" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
CERT=$work/cert.pem
KEY=$work/key.pem

# LOG CMD...: CMD in a process group of its own (stopped with all its children on exit);
# its pid (the group's id) in STARTED.
declare -A LOG_OF
start() {
  local log=$1; shift
  setsid "$@" >"$log" 2>&1 &
  STARTED=$!
  GROUPS_STARTED="$GROUPS_STARTED $STARTED"
  LOG_OF[$STARTED]=$log
}
# PID LABEL: says so (with the end of its log) when the server PID has exited.
check_alive() {
  kill -0 "$1" 2>/dev/null || echo "# $2 (pid $1) has exited: $(tail -n 5 "${LOG_OF[$1]}" | tr '\n' ' ')" >&2
}
# PORT PID LOG: waits (up to 30 s) for an https answer on PORT; else says why and fails.
wait_https() {
  for _ in $(seq 300); do
    curl -sk -o /dev/null "https://127.0.0.1:$1/" && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "# the server on port $1 did not answer https: $(tail -n 3 "$3" | tr '\n' ' ')"
  return 1
}
# PORT [NAME]: the version and suite a client of CNF agrees on with the server on PORT.
suite_of() {
  local got
  got=$(env OPENSSL_CONF="$CNF" openssl s_client -connect "127.0.0.1:$1" -servername localhost </dev/null 2>/dev/null |
    awk '/^New, / {gsub(",", ""); print $2, $5; exit}')
  echo "# suite with $2: ${got:-none (the handshake failed)}"
  [[ "$got" == *"$SUITE" ]] || echo "# WARNING: $2 did not agree on $SUITE; its figures compare different ciphers"
}

# The corral example server, 2 I/O workers, TLS, plus a --set for each NAME=VALUE in
# CORRAL_SET (e.g. CORRAL_SET="tls_handshake_on_pool=false"); its pid in STARTED, its port in PORT.
start_corral() {
  PORT=$(free_port)
  local extra=()
  for s in ${CORRAL_SET:-}; do extra+=(--set "$s"); done
  start "$work/corral-$PORT.log" ./target/release/examples/http_server --addr "127.0.0.1:$PORT" --workers 2 \
    --tls-cert "$CERT" --tls-key "$KEY" --set backlog=4096 --set max_connections_per_ip=0 "${extra[@]}"
  wait_https "$PORT" "$STARTED" "$work/corral-$PORT.log"
}
# DIR: nginx from bench/tls/nginx.conf.in in DIR, not as a daemon; PORT measured, LOGPORT logged.
start_nginx() {
  mkdir -p "$1"
  PORT=$(free_port)
  LOGPORT=$(free_port)
  sed -e "s#__DIR__#$1#g" -e "s#__PORT__#$PORT#" -e "s#__LOGPORT__#$LOGPORT#" -e "s#__CERT__#$CERT#" \
    -e "s#__KEY__#$KEY#" bench/tls/nginx.conf.in >"$1/nginx.conf"
  start "$1/stdout.log" nginx -c "$1/nginx.conf" -g 'daemon off;'
  wait_https "$PORT" "$STARTED" "$1/nginx-error.log"
}
# PORT: handshakes and resumed ones so far, from corral's metrics (this request adds a handshake).
corral_tls() {
  curl -sk "https://127.0.0.1:$1/stats" | awk '/^corral_tls_handshakes_total / {h=$2} /^corral_tls_resumed_total / {r=$2}
    END {printf "%d %d\n", h, r}'
}
# FIRST-COUNTERS LAST-COUNTERS: what was done between the two corral_tls readings.
tls_delta() {
  local h0 r0 h1 r1
  read -r h0 r0 <<<"$1"
  read -r h1 r1 <<<"$2"
  echo "$((h1 - h0 - 1)) handshakes, $((r1 - r0)) resumed"
}
# The handshakes and resumed ones in nginx's log of $ssl_session_reused (`r` or `.`).
nginx_reused() { awk '{n++} $1 == "r" {r++} END {printf "%d handshakes, %d resumed\n", n, r}' "$1"; }

# SECONDS URL WRK-ARGS...: wrk's requests per second and its request count (errors on stderr).
wrk_rps() {
  local secs=$1 url=$2 out
  shift 2
  out=$(env OPENSSL_CONF="$CNF" wrk -d"$secs" "$@" "$url" 2>&1) || echo "# wrk $url failed: $out" >&2
  grep -E "Socket errors|Non-2xx" <<<"$out" | sed "s|^ *|# wrk $url: |" >&2 || true
  awk '/requests in/ {n = $1} /Requests\/sec/ {r = $2} END {print r + 0, n + 0}' <<<"$out"
}
# SECONDS PORT: full handshakes (one request each) per second and their count, from h2load
# batches for SECONDS; the rate is over the batches' own time (not h2load's start-up).
h2_newconn() {
  local secs=$1 port=$2 done_n=0 ms=0 out end n t
  end=$(($(date +%s) + secs))
  while [ "$(date +%s)" -lt "$end" ]; do
    out=$(env OPENSSL_CONF="$CNF" h2load --h1 -t2 -c"$BATCH" -n"$BATCH" --tls13-ciphers="$SUITE" \
      "https://127.0.0.1:$port/" 2>&1) || true
    read -r n t < <(awk '/^finished in/ {t = $3 + 0; if ($3 ~ /ms,$/) t /= 1000; else if ($3 ~ /us,$/) t /= 1e6;
      else if ($3 !~ /[0-9]s,$/) t = -1} /^requests:/ {n = $8} END {print n + 0, t * 1000}' <<<"$out")
    [ "$n" -eq "$BATCH" ] || echo "# h2load on port $port: $n of $BATCH requests succeeded ($(tail -n 1 <<<"$out"))" >&2
    done_n=$((done_n + n))
    ms=$(awk -v a="$ms" -v b="$t" 'BEGIN {print a + b}')
  done
  awk -v n="$done_n" -v ms="$ms" 'BEGIN {printf "%.0f %d\n", (ms > 0 ? n * 1000 / ms : 0), n}'
}
# PID: CPU clock ticks (user and system) used so far by PID and its descendants.
cpu_ticks() {
  local todo=("$1") p total=0
  while [ ${#todo[@]} -gt 0 ]; do
    p=${todo[0]}
    todo=("${todo[@]:1}")
    [ -r "/proc/$p/stat" ] || continue
    total=$((total + $(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$p/stat")))
    # shellcheck disable=SC2207 # pids, one word each
    todo+=($(cat /proc/"$p"/task/*/children 2>/dev/null))
  done
  echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)

# NAME CORRAL-PID CORRAL-CMD PEER|GOAL|PID|CMD...: each command (`{secs}` in it: its seconds;
# it prints a rate and a request count) once for WARM seconds, then RUNS times for DUR
# seconds, the order alternating by run. One line per peer (medians of the rates, ratio =
# corral / peer), then a `#` line of requests per CPU-second of each server's processes
# (what the server itself spent, whoever else shares the cores).
compare() {
  local name=$1 labels=(corral) goals=(-) pids=("$2") cmds=("$3") rates=() effs=() i run order t0 rate n cpu
  local p label goal pid cmd
  shift 3
  for p in "$@"; do
    IFS='|' read -r label goal pid cmd <<<"$p"
    labels+=("$label")
    goals+=("$goal")
    pids+=("$pid")
    cmds+=("$cmd")
  done
  for i in "${!cmds[@]}"; do
    eval "${cmds[$i]/\{secs\}/$WARM}" >/dev/null
    rates[i]=""
    effs[i]=""
  done
  for run in $(seq "$RUNS"); do
    order=$(seq 0 $((${#cmds[@]} - 1)))
    [ $((run % 2)) -eq 0 ] && order=$(tac <<<"$order")
    for i in $order; do
      t0=$(cpu_ticks "${pids[$i]}")
      read -r rate n < <(eval "${cmds[$i]/\{secs\}/$DUR}")
      cpu=$(($(cpu_ticks "${pids[$i]}") - t0))
      check_alive "${pids[$i]}" "${labels[$i]}"
      rates[i]+="$rate"$'\n'
      effs[i]+="$(awk -v n="$n" -v c="$cpu" -v hz="$CLK_TCK" 'BEGIN {print (c > 0 ? n * hz / c : 0)}')"$'\n'
    done
  done
  local c ce per=""
  c=$(printf '%s' "${rates[0]}" | median)
  ce=$(printf '%s' "${effs[0]}" | median)
  for i in $(seq 1 $((${#cmds[@]} - 1))); do
    line "$name" rate "$c" "${labels[$i]}" "$(printf '%s' "${rates[$i]}" | median)" "${goals[$i]}"
    per+=$(printf '%s' "${effs[$i]}" | median |
      awk -v l="${labels[$i]}" -v c="$ce" '{printf " %s=%.0f (ratio %s)", l, $1, ($1 > 0 ? sprintf("%.2f", c / $1) : "n/a")}')
  done
  echo "# $name per CPU-second of the server: corral=$(printf '%.0f' "$ce")$per"
}
# NAME MODE CORRAL PEER-NAME PEER GOAL: the comparison's line. MODE: rate (ratio = corral /
# peer) or memory (ratio = peer / corral).
line() {
  awk -v name="$1" -v mode="$2" -v c="$3" -v peer="$4" -v p="$5" -v goal="$6" 'BEGIN {
    f = mode == "memory" ? "%.1f" : "%.0f"
    r = (c + 0 <= 0 || p + 0 <= 0) ? "n/a" : sprintf("%.2f", mode == "memory" ? p / c : c / p)
    printf "%s corral=%s %s=%s ratio=%s goal=%s\n", name, c == "" ? "none" : sprintf(f, c), peer,
      p == "" ? "none" : sprintf(f, p), r, goal
  }'
}

# example|py-build|node-build: builds it quietly; on failure shows why and stops.
build() {
  local ok=0
  if [ "$1" = example ]; then
    cargo build --release -q -p corral --example http_server >"$work/build.log" 2>&1 || ok=1
  else
    make -s "$1" >"$work/build.log" 2>&1 || ok=1
  fi
  [ "$ok" = 0 ] || { tail -n 30 "$work/build.log"; echo "building $1 failed (above)" >&2; exit 1; }
}

NEED_CORRAL=0
for p in keepalive newconn resumed memory; do want $p && NEED_CORRAL=1; done
if [ "$NEED_CORRAL" = 1 ]; then
  if ! have wrk wrk || ! have nginx nginx-light; then
    echo "# the corral-vs-nginx parts need wrk and nginx (apt-get install wrk nginx-light): skipped"
    NEED_CORRAL=0
  elif [ "$BUILD" = 1 ]; then
    build example
  fi
fi
if [ "$NEED_CORRAL" = 1 ]; then
  echo "# corral example server (2 I/O workers) vs nginx (2 workers), clients on the same $(nproc) cores," \
    "${DUR}s x ${RUNS} after ${WARM}s warm-up"
  start_corral
  C=$PORT
  C_PID=$STARTED
  start_nginx "$work/nginx"
  N=$PORT
  N_PID=$STARTED
  NLOG=$LOGPORT
  suite_of "$C" "corral"
  suite_of "$N" "nginx"
  echo "# wrk agreed with corral on: $(env OPENSSL_CONF="$CNF" wrk -t1 -c1 -d1 -s bench/tls/show_tls.lua \
    "https://127.0.0.1:$C/tls" | grep '^TLS' | head -1)"
fi

if [ "$NEED_CORRAL" = 1 ] && want keepalive; then
  compare https-keepalive "$C_PID" "wrk_rps {secs} https://127.0.0.1:$C/ -t2 -c100" \
    "nginx|1.1|$N_PID|wrk_rps {secs} https://127.0.0.1:$N/ -t2 -c100"
fi

if [ "$NEED_CORRAL" = 1 ] && want newconn; then
  if have h2load nghttp2-client; then
    before=$(corral_tls "$C")
    compare https-new-conn "$C_PID" "h2_newconn {secs} $C" "nginx|1.3|$N_PID|h2_newconn {secs} $N"
    : >"$work/nginx/reused.log"
    h2_newconn 1 "$NLOG" >/dev/null
    echo "# https-new-conn: corral $(tls_delta "$before" "$(corral_tls "$C")"); nginx check run" \
      "$(nginx_reused "$work/nginx/reused.log")"
  else
    echo "https-new-conn skipped: h2load is missing (apt-get install nghttp2-client)"
  fi
fi

if [ "$NEED_CORRAL" = 1 ] && want resumed; then
  before=$(corral_tls "$C")
  compare https-resumed "$C_PID" "wrk_rps {secs} https://127.0.0.1:$C/ -t2 -c50 -H 'Connection: close'" \
    "nginx|1.3|$N_PID|wrk_rps {secs} https://127.0.0.1:$N/ -t2 -c50 -H 'Connection: close'"
  : >"$work/nginx/reused.log"
  wrk_rps 1 "https://127.0.0.1:$NLOG/" -t2 -c50 -H 'Connection: close' >/dev/null
  echo "# https-resumed: corral $(tls_delta "$before" "$(corral_tls "$C")"); nginx check run" \
    "$(nginx_reused "$work/nginx/reused.log")"
fi

if [ "$NEED_CORRAL" = 1 ] && want memory; then
  # Fresh servers: what earlier parts left in their allocators would hide the growth.
  start_corral
  MC=$PORT
  MC_PID=$STARTED
  start_nginx "$work/nginx-mem"
  MN=$PORT
  MN_PID=$STARTED
  read -r cm cs < <(env OPENSSL_CONF="$CNF" python3 bench/tls/idle_conns.py --port "$MC" --pid "$MC_PID" -n "$IDLE_N")
  read -r nm ns < <(env OPENSSL_CONF="$CNF" python3 bench/tls/idle_conns.py --port "$MN" --pid "$MN_PID" -n "$IDLE_N")
  echo "# tls-idle-memory: $IDLE_N connections each, suites $cs (corral) and $ns (nginx), KiB per connection"
  line tls-idle-memory memory "$cm" nginx "$nm" 1
fi

if want python; then
  PY=$PWD/.venv/bin/python
  if ! have wrk wrk; then
    echo "python-asgi-tls skipped: wrk is missing (apt-get install wrk)"
  elif [ ! -f "$PEERS/python/asgi_app.py" ]; then
    echo "python-asgi-tls skipped: no $PEERS/python/asgi_app.py (set PEERS to the shared peers folder)"
  else
    [ "$BUILD" = 1 ] && build py-build
    need=()
    for m in granian uvicorn httptools uvloop; do "$PY" -c "import $m" 2>/dev/null || need+=("$m"); done
    [ ${#need[@]} -eq 0 ] || "$PY" -m pip install -q "${need[@]}"
    VB=$PWD/.venv/bin
    pyserver() { # NAME CMD...: started in the peers' python folder, port in {port}; port in PORT
      local name=$1
      shift
      PORT=$(free_port)
      # shellcheck disable=SC2016 # the inner shell expands them: the folder, then the command
      start "$work/$name.log" bash -c 'cd "$0" && exec "$@"' "$PEERS/python" "${@//\{port\}/$PORT}"
      wait_https "$PORT" "$STARTED" "$work/$name.log" && suite_of "$PORT" "$name"
    }
    peers=()
    if pyserver corral "$PY" -m corral --interface asgi --host 127.0.0.1 --port '{port}' --workers 1 \
      --ssl-certfile "$CERT" --ssl-keyfile "$KEY" asgi_app:app; then
      PC=$PORT
      PC_PID=$STARTED
      pyserver granian "$VB/granian" --interface asgi --host 127.0.0.1 --port '{port}' --workers 1 --no-ws \
        --ssl-certificate "$CERT" --ssl-keyfile "$KEY" asgi_app:app &&
        peers+=("granian|1.5|$STARTED|wrk_rps {secs} https://127.0.0.1:$PORT/ -t2 -c100")
      pyserver uvicorn "$VB/uvicorn" --host 127.0.0.1 --port '{port}' --http httptools --loop uvloop \
        --log-level warning --no-access-log --ssl-certfile "$CERT" --ssl-keyfile "$KEY" asgi_app:app &&
        peers+=("uvicorn|3|$STARTED|wrk_rps {secs} https://127.0.0.1:$PORT/ -t2 -c100")
      if [ ${#peers[@]} -gt 0 ]; then
        compare python-asgi-tls "$PC_PID" "wrk_rps {secs} https://127.0.0.1:$PC/ -t2 -c100" "${peers[@]}"
      else
        echo "python-asgi-tls skipped: neither Granian nor uvicorn started (see the lines above)"
      fi
    else
      echo "python-asgi-tls skipped: corral's ASGI server did not start (see the line above)"
    fi
  fi
fi

if want node; then
  if ! have wrk wrk || ! have node nodejs; then
    echo "node-serve-tls skipped: needs wrk and node"
  else
    [ "$BUILD" = 1 ] && build node-build
    PORT=$(free_port)
    start "$work/node-corral.log" node bench/tls/node_tls.js corral "$PORT" "$CERT" "$KEY"
    if wait_https "$PORT" "$STARTED" "$work/node-corral.log"; then
      NC=$PORT
      NC_PID=$STARTED
      suite_of "$NC" "corral serve"
      PORT=$(free_port)
      start "$work/node-https.log" node bench/tls/node_tls.js https "$PORT" "$CERT" "$KEY"
      if wait_https "$PORT" "$STARTED" "$work/node-https.log"; then
        suite_of "$PORT" "node https"
        compare node-serve-tls "$NC_PID" "wrk_rps {secs} https://127.0.0.1:$NC/ -t2 -c100" \
          "https|2|$STARTED|wrk_rps {secs} https://127.0.0.1:$PORT/ -t2 -c100"
      else
        echo "node-serve-tls skipped: https.createServer did not start (see the line above)"
      fi
    else
      echo "node-serve-tls skipped: corral serve({ tls }) did not start (see the line above)"
    fi
  fi
fi

if want ktls; then
  # Attaching the tls ULP (TCP_ULP = 31) to a connected socket fails with ENOENT where the
  # kernel has no CONFIG_TLS (and no tls module to load).
  why=$(python3 -c '
import errno, socket
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
c = socket.create_connection(l.getsockname()); s, _ = l.accept()
try:
    c.setsockopt(socket.IPPROTO_TCP, 31, b"tls")
except OSError as e:
    print("kernel has no tls ULP" if e.errno == errno.ENOENT else f"the tls ULP cannot be attached ({e})")
else:
    print("the kernel has the tls ULP, but corral has no kTLS option yet")')
  echo "ktls-on-vs-off skipped: $why"
  echo "express-threads-ktls skipped: $why"
fi
