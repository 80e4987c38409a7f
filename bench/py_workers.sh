#!/usr/bin/env bash
# The Python command line's processes under load: `--workers 2` with `--max-requests`
# recycling workers while wrk runs (errors and resets as wrk counts them, keep-alive and
# a new connection per request), and how new connections are spread over the workers.
#   bash bench/py_workers.sh [SECONDS] [MAX_REQUESTS]
# Needs the venv (`make py-build`) and wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SECS=${1:-10}
MAX=${2:-20000}
PY=.venv/bin/python
APP_DIR=$(mktemp -d)
trap 'kill $SUP 2>/dev/null; wait $SUP 2>/dev/null; rm -rf "$APP_DIR"' EXIT
cat > "$APP_DIR/pidapp.py" <<'APP'
import os
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
APP
PORT=$(free_port)
(cd "$APP_DIR" && exec "$OLDPWD/$PY" -m corral --workers 2 --port "$PORT" --max-requests "$MAX" \
    --max-requests-jitter $((MAX / 10)) pidapp:app > "$APP_DIR/out" 2> "$APP_DIR/err") &
SUP=$!
wait_http "$PORT"
for mode in keepalive close; do
    hdr=()
    [ "$mode" = close ] && hdr=(-H "Connection: close")
    out=$(wrk -t2 -c50 -d"${SECS}s" "${hdr[@]}" "http://127.0.0.1:$PORT/")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    errs=$(grep -E "Socket errors|Non-2xx" <<<"$out" | tr -s ' ' | paste -sd';' - || true)
    echo "$mode: $rps req/s; ${errs:-no socket errors, no non-2xx responses}"
done
echo "workers replaced (--max-requests $MAX): $(grep -c 'reached --max-requests' "$APP_DIR/err" || true)"
# Placement: 2000 new connections, one request each; which worker answered.
"$PY" - "$PORT" <<'PYEOF'
import collections, http.client, sys
port = int(sys.argv[1]); seen = collections.Counter()
for _ in range(2000):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/"); seen[c.getresponse().read()] += 1; c.close()
print("placement of 2000 new connections over the workers:", sorted(seen.values(), reverse=True))
PYEOF
