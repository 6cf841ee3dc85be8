#!/usr/bin/env bash
# Region failover, compared in one run: the time from killing (kill -9) the
# primary region of a failover record until the last wrong answer of every
# surviving nameserver, polled every 0.1 s, and from restarting it until the
# last answer without it. The same kill and the same polling for:
#   - gslb with the default checks (interval=5s fails=3 passes=2) and with
#     its fastest (interval=500ms fails=1), on the demo's three-region
#     cluster (`gslb demo`: a node, a region proxy and two servers per
#     region; the record's pools check each region's proxy; the demo runs
#     Raft with cluster.fast, the e2e tests in integration/ with the
#     default timing);
#   - PowerDNS Authoritative LUA records (an `ifurlup` record over a primary
#     and a secondary server) with its defaults and with
#     lua-health-checks-interval=1;
#   - gdnsd (simplefo over http_status) with its defaults.
# Usage: bash bench/failover.sh [RUNS]   (RUNS per setup, default 5;
#        about 17 minutes with 5, most of it the 60 s that separate two
#        kills of one gslb region, and gdnsd's 100 s: flap damping holds a
#        member down when its outages come less than about 48 s apart).
#        Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
go build -o bin/gslb ./cmd/gslb
echo "machine: $(nproc) CPUs; load before: $(cut -d' ' -f1-3 /proc/loadavg)"

# poll.py KILLCMD WANT SERVER:PORT... : runs KILLCMD, then polls every
# server for admin.example.com A every 0.1 s until every answer has been
# WANT for 3 s; prints the time from the kill to the last wrong answer (0
# when none was wrong). Gives up after 300 s.
poll=$(mktemp)
cat > "$poll" <<'PY'
import socket, struct, subprocess, sys, time, random
kill, want, servers = sys.argv[1], sys.argv[2], sys.argv[3:]
qname = b"".join(bytes([len(l)]) + l.encode() for l in "admin.example.com".split(".")) + b"\0"
def ask(addr):
    host, port = addr.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    try:
        qid = random.randrange(65536)
        s.sendto(struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1), (host, int(port)))
        d = s.recv(1500)
    except OSError:
        return "timeout"
    finally:
        s.close()
    an = struct.unpack(">H", d[6:8])[0]
    i = 12 + len(qname) + 4
    out = []
    for _ in range(an):
        while d[i] != 0 and d[i] & 0xC0 != 0xC0:
            i += d[i] + 1
        i += 2 if d[i] & 0xC0 == 0xC0 else 1
        typ, _, _, rdlen = struct.unpack(">HHIH", d[i:i + 10])
        i += 10
        if typ == 1:
            out.append(socket.inet_ntoa(d[i:i + rdlen]))
        i += rdlen
    return ",".join(sorted(out))
t0 = time.monotonic()
subprocess.run(kill, shell=True, stdout=subprocess.DEVNULL, check=True)
last, n = 0.0, 0
while True:
    at = time.monotonic() - t0
    if any(ask(a) != want for a in servers):
        last = at
    elif at - last >= 3:
        break
    if at > 300:
        print("timeout"); sys.exit(0)
    n += 1
    time.sleep(max(0, t0 + n * 0.1 - time.monotonic()))
print(f"{last:.2f}")
PY

# stats NAME VALUES...: min, median, max.
results=()
stats() {
  local name=$1; shift
  local line
  line=$(python3 -c '
import sys, statistics as s
v = sorted(float(x) for x in sys.argv[1:] if x != "timeout")
runs = " ".join(sys.argv[1:])
print("%.2f / %.2f / %.2f  (%d runs: %s)" % (v[0], s.median(v), v[-1], len(sys.argv) - 1, runs) if v else "timeout")' "$@")
  printf '%-52s %s\n' "$name" "$line"
  results+=("$(printf '%-52s %s' "$name" "$line")")
}

# gslb: the demo with its pools' checks at interval $1 fails $2.
gslb_run() {
  local label=$1 iv=$2 fails=$3 tmp gone=() back=() last=0
  tmp=$(mktemp -d)
  TMPDIR=$tmp bin/gslb demo -port 45353 -interval "$iv" -fails "$fails" > "$tmp/out" 2>&1 &
  local pid=$!
  for i in $(seq 1 300); do grep -q "Ctrl-C stops" "$tmp/out" 2>/dev/null && break; sleep 0.2; done
  local q='dig +short +time=1 +tries=1 -p 45353 admin.example.com'
  for i in $(seq 1 100); do [ "$($q @127.0.0.11)" = 127.0.0.12 ] && [ "$($q @127.0.0.13)" = 127.0.0.12 ] && break; sleep 0.2; done
  sleep 6   # every prober has reported
  for r in $(seq 1 "$runs"); do
    # Flap damping: outages that keep coming less than about 48 s apart
    # hold the member down (each adds 1 to a penalty halving every 30 s;
    # held from 1.5).
    local wait=$(( last + 60 - $(date +%s) )); [ "$wait" -gt 0 ] && sleep "$wait"
    last=$(date +%s)
    gone+=("$(python3 "$poll" "TMPDIR=$tmp bin/gslb demo kill eu-west" 127.0.0.11 127.0.0.11:45353 127.0.0.13:45353)")
    back+=("$(python3 "$poll" "TMPDIR=$tmp bin/gslb demo start eu-west" 127.0.0.12 127.0.0.11:45353 127.0.0.12:45353 127.0.0.13:45353)")
    echo "  $label run $r: gone ${gone[-1]} s, back ${back[-1]} s"
  done
  kill -INT $pid; wait $pid || true
  rm -rf "$tmp"
  stats "gslb $label: region killed, gone" "${gone[@]}"
  stats "gslb $label: region restarted, back" "${back[@]}"
}

echo "kill -9 the primary region, time to the last wrong answer of every surviving nameserver (min / median / max, s)"
gslb_run "defaults (interval=5s fails=3)" 5s 3
gslb_run "fastest (interval=500ms fails=1)" 500ms 1

# Two servers for the peers: primary 127.0.0.42, secondary 127.0.0.41.
work=$(mktemp -d); mkdir -p "$work/zones" "$work/run" "$work/state" "$work/pdns"
# serve IP: starts a server on IP:48080, its pid in $work/IP.pid (a command
# line, so that the poller can run it as the "restart").
serve() { echo "sh -c 'python3 -m http.server 48080 --bind $1 --directory $work >/dev/null 2>&1 & echo \$! > $work/$1.pid'"; }
up() { for i in $(seq 1 50); do curl -sf -o /dev/null "http://$1:48080/" && return; sleep 0.1; done; }
eval "$(serve 127.0.0.41)"; eval "$(serve 127.0.0.42)"; up 127.0.0.41; up 127.0.0.42
killpri="kill -9 \$(cat $work/127.0.0.42.pid)"

# PowerDNS Authoritative, bind backend, one LUA record: the primary's set,
# else the secondary's. Its defaults: a check every 5 s, one failure is
# enough (ifurlup), answers cached in the packet cache (cache-ttl=20)
# within the record's TTL (10 s here, as gdnsd's and the demo's).
command -v pdns_server >/dev/null || { apt-get update -q && apt-get install -y -q pdns-server pdns-backend-bind; }
pdns_run() {
  local label=$1 extra=$2 gone=() back=()
  cat > "$work/pdns/named.conf" <<CONF
zone "example.com" { type master; file "$work/pdns/example.com"; };
CONF
  cat > "$work/pdns/example.com" <<'ZONE'
$ORIGIN example.com.
@ 60 IN SOA ns1 hostmaster 1 3600 600 1209600 30
@ 60 IN NS ns1
ns1 60 IN A 127.0.0.50
admin 10 IN LUA A "ifurlup('http://127.0.0.42:48080/', {{'127.0.0.42'}, {'127.0.0.41'}})"
ZONE
  cat > "$work/pdns/pdns.conf" <<CONF
launch=bind
bind-config=$work/pdns/named.conf
local-address=127.0.0.50
local-port=45398
enable-lua-records=yes
socket-dir=$work/pdns
guardian=no
daemon=no
$extra
CONF
  pdns_server --config-dir="$work/pdns" > "$work/pdns/log" 2>&1 & local pd=$!
  local q='dig +short +time=1 +tries=1 -p 45398 @127.0.0.50 admin.example.com'
  for i in $(seq 1 100); do [ "$($q)" = 127.0.0.42 ] && break; sleep 0.2; done
  sleep 6
  for r in $(seq 1 "$runs"); do
    gone+=("$(python3 "$poll" "$killpri" 127.0.0.41 127.0.0.50:45398)")
    back+=("$(python3 "$poll" "$(serve 127.0.0.42)" 127.0.0.42 127.0.0.50:45398)")
    echo "  PowerDNS $label run $r: gone ${gone[-1]} s, back ${back[-1]} s"
    sleep 2
  done
  kill $pd; wait $pd 2>/dev/null || true
  stats "PowerDNS LUA $label: primary killed, gone" "${gone[@]}"
  stats "PowerDNS LUA $label: primary restarted, back" "${back[@]}"
}
pdns_run "defaults" ""
pdns_run "lua-health-checks-interval=1" "lua-health-checks-interval=1"

# gdnsd, set up the same way: simplefo (primary 127.0.0.42, secondary
# 127.0.0.41) over http_status with gdnsd's default monitoring (interval
# 10 s, down after down_thresh=10 failures). Both servers answer before
# gdnsd starts, so their states start UP. One run: it takes 100 s.
command -v gdnsd >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends gdnsd; }
cat > "$work/config" <<CONF
options => { listen => [ 127.0.0.40:45399 ], run_dir => $work/run, state_dir => $work/state }
service_types => { web => { plugin => http_status, port => 48080, url_path => / } }
plugins => { simplefo => { admin => { primary => 127.0.0.42, secondary => 127.0.0.41, service_types => web } } }
CONF
printf '@ 60 SOA ns1 hostmaster 1 3600 600 1209600 30\n@ NS ns1\nns1 A 127.0.0.40\nadmin 10 DYNA simplefo!admin\n' > "$work/zones/example.com"
gdnsd -c "$work" start > "$work/log" 2>&1 & gd=$!
q='dig +short +time=1 +tries=1 -p 45399 @127.0.0.40 admin.example.com'
for i in $(seq 1 100); do [ "$(eval $q)" = 127.0.0.42 ] && break; sleep 0.2; done
grep -q "127.0.0.42/web' initialized to UP" "$work/log" || echo "WARNING: gdnsd did not start the primary UP"
g=$(python3 "$poll" "$killpri" 127.0.0.41 127.0.0.40:45399)
b=$(python3 "$poll" "$(serve 127.0.0.42)" 127.0.0.42 127.0.0.40:45399)
stats "gdnsd defaults: primary killed, gone" "$g"
stats "gdnsd defaults: primary restarted, back" "$b"
kill $gd "$(cat "$work/127.0.0.41.pid")" "$(cat "$work/127.0.0.42.pid")" 2>/dev/null || true
wait 2>/dev/null || true
rm -rf "$work" "$poll"

echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "summary (min / median / max, s):"
printf '%s\n' "${results[@]}"
