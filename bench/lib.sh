# Shell helpers the benchmark scripts share; source it: . "$(dirname "$0")/lib.sh"

# A free loopback port (the kernel's choice for port 0).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wrk's Requests/sec for the given wrk arguments.
rps() { wrk "$@" | awk '/Requests\/sec/ {print $2}'; }
# The median of the numbers on standard input, one a line.
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Waits (up to 10 s) until something answers HTTP on 127.0.0.1:PORT.
wait_http() { for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/" && break; sleep 0.1; done; }
