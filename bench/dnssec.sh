#!/usr/bin/env bash
# What signing costs: gslb answering the same questions with DO=0 and DO=1
# (example.com signed online with an ECDSA P-256 key), and Knot DNS with its
# onlinesign module (ECDSA P-256) as the peer, in one run.
#
# Workloads (dnsperf -c 32 -q 200, SECS seconds each, ROUNDS rounds):
#   static1  one static name, repeated                       gslb DO=0, DO=1; knot DO=0, DO=1
#   nx1      one name that does not exist                    gslb DO=1; knot DO=1
#   geo1     one geo GSLB name, ECS 81.2.69.0/24, repeated   gslb DO=0, DO=1
#   geo      GEO geo names, ECS 81.2.69.0/24 on each query   gslb DO=0, DO=1
# "geo" asks more names than the reply cache holds, so most queries take the
# uncached path; a warm-up run first fills the signature cache (GEO < its
# 16384 RRsets). Servers are pinned to SERVER_CPUS (default core 0), dnsperf
# to core 1. Each row: queries per second, queries per server CPU-second
# (user + system of the server process over the run, /proc/PID/stat), lost.
# Usage: bash bench/dnssec.sh   (env: SECS=10 ROUNDS=2 GEO=5000
#        SERVER_CPUS=0 GSLB=bin/gslb KEEP=dir)
# Loopback only, free ports, every dnsperf run bounded by -l.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-10} ROUNDS=${ROUNDS:-2} GEO=${GEO:-5000} SERVER_CPUS=${SERVER_CPUS:-0} GSLB=${GSLB:-bin/gslb}
command -v dnsperf >/dev/null && command -v knotd >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends dnsperf knot; }
[ -x "$GSLB" ] || go build -o "$GSLB" ./cmd/gslb

work=${KEEP:-$(mktemp -d)}
mkdir -p "$work/gslb" "$work/knot" "$work/data"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

python3 - "$work" "$GEO" <<'PY'
import sys
work, ngeo = sys.argv[1], int(sys.argv[2])
head = """$ORIGIN example.com.
$TTL 300
@ IN SOA ns1 hostmaster 2026120301 3600 600 1209600 60
@ IN NS ns1
ns1 IN A 192.0.2.53
s1 IN A 10.0.0.1
"""
with open(f"{work}/knot/example.com.zone", "w") as k:
    k.write(head)
with open(f"{work}/gslb/example.com.zone", "w") as g:
    g.write(head)
    g.write("$REGION us-east  lat=39.04 lon=-77.49 serves=NA,SA\n"
            "$REGION eu-west  lat=53.35 lon=-6.26  serves=EU,AF\n"
            "$POOL geo-us region=us-east members=192.0.2.10\n"
            "$POOL geo-eu region=eu-west members=198.51.100.10\n")
    for i in range(ngeo):
        g.write(f"g{i} 30 IN GSLB geo pools=geo-us,geo-eu\n")
with open(f"{work}/geo.q", "w") as f:
    for i in range(ngeo):
        f.write(f"g{i}.example.com A\n")
for name, q in (("static1", "s1.example.com A"), ("nx1", "nope.example.com A"), ("geo1", "g1.example.com A")):
    open(f"{work}/{name}.q", "w").write(q + "\n")
PY

gport=$(freeport)
taskset -c "$SERVER_CPUS" "$GSLB" serve --dns "127.0.0.1:$gport" --zones "$work/gslb" --data "$work/data" --dnssec example.com \
  --log-level warn --probes=false --rrl-rate -1 > "$work/gslb.out" 2>&1 &
gpid=$!
pids+=($gpid)

kport=$(freeport)
cat > "$work/knot.conf" <<CONF
server:
    rundir: "$work/knot"
    listen: 127.0.0.1@$kport
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$work/knot"
log:
  - target: stderr
    any: warning
policy:
  - id: online
    algorithm: ecdsap256sha256
    single-type-signing: on
mod-onlinesign:
  - id: sign
    policy: online
template:
  - id: default
    storage: "$work/knot"
zone:
  - domain: example.com
    file: example.com.zone
    module: mod-onlinesign/sign
CONF
taskset -c "$SERVER_CPUS" knotd -c "$work/knot.conf" > "$work/knot.out" 2>&1 &
kpid=$!
pids+=($kpid)

ok=
for i in $(seq 150); do
  if dig +dnssec +time=1 +tries=1 @127.0.0.1 -p "$gport" s1.example.com A | grep -q RRSIG &&
     dig +dnssec +time=1 +tries=1 @127.0.0.1 -p "$kport" s1.example.com A | grep -q RRSIG; then ok=1; break; fi
  sleep 0.2
done
[ -n "$ok" ] || { echo "servers did not come up signing"; tail "$work"/*.out; exit 1; }

ecs="8:00011800510245" # ECS 81.2.69.0/24 (GB in the embedded database)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# run name pid port queryfile do(0|1) ecs(0|1): one dnsperf run; appends
# "name qps qpcpu lost" to $work/rows
run() {
  local name=$1 pid=$2 port=$3 q=$4 do=$5 e=$6 out c0 c1 qps done lost args=()
  [ "$do" = 1 ] && args+=(-D)
  [ "$e" = 1 ] && args+=(-E "$ecs")
  c0=$(cpu "$pid")
  out=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$q" -c 32 -q 200 -l "$SECS" "${args[@]}" 2>&1)
  c1=$(cpu "$pid")
  qps=$(awk '/Queries per second/ {print int($4)}' <<<"$out")
  done=$(awk '/Queries completed/ {print $3}' <<<"$out")
  lost=$(awk '/Queries lost/ {print $3}' <<<"$out")
  codes=$(awk '/Response codes/ {$1=$2=""; print}' <<<"$out" | xargs)
  echo "$name $qps $(( done * hz / (c1 - c0 > 0 ? c1 - c0 : 1) )) $lost $codes" | tee -a "$work/rows" >&2
}

echo "dnsperf -c 32 -q 200 -l $SECS, servers on core(s) $SERVER_CPUS, dnsperf on core 1, $ROUNDS rounds ($(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); $(knotd --version | head -1)"
echo "load before: $(uptime | sed 's/.*load average/load average/')"
taskset -c 1 dnsperf -s 127.0.0.1 -p "$gport" -d "$work/geo.q" -c 32 -q 200 -l 3 -D -E "$ecs" > /dev/null 2>&1 # warm the signature cache
: > "$work/rows"
for r in $(seq "$ROUNDS"); do
  run "gslb:static1:do0" "$gpid" "$gport" "$work/static1.q" 0 0
  run "gslb:static1:do1" "$gpid" "$gport" "$work/static1.q" 1 0
  run "knot:static1:do0" "$kpid" "$kport" "$work/static1.q" 0 0
  run "knot:static1:do1" "$kpid" "$kport" "$work/static1.q" 1 0
  run "gslb:nx1:do1" "$gpid" "$gport" "$work/nx1.q" 1 0
  run "knot:nx1:do1" "$kpid" "$kport" "$work/nx1.q" 1 0
  run "gslb:geo1:do0" "$gpid" "$gport" "$work/geo1.q" 0 1
  run "gslb:geo1:do1" "$gpid" "$gport" "$work/geo1.q" 1 1
  run "gslb:geo:do0" "$gpid" "$gport" "$work/geo.q" 0 1
  run "gslb:geo:do1" "$gpid" "$gport" "$work/geo.q" 1 1
done
echo "load after: $(uptime | sed 's/.*load average/load average/')"
python3 - "$work/rows" <<'PY'
import sys, collections
rows = collections.defaultdict(list)
codes = {}
for line in open(sys.argv[1]):
    f = line.split()
    rows[f[0]].append((int(f[1]), int(f[2]), int(f[3])))
    codes[f[0]] = " ".join(f[4:])
def med(v):
    v = sorted(v); return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
print("| server | workload | DO | qps | q/CPU-s | lost | response codes |")
print("|---|---|---|---:|---:|---:|---|")
for k, v in rows.items():
    srv, w, do = k.split(":")
    print(f"| {srv} | {w} | {do[2]} | {med([r[0] for r in v]):,.0f} | {med([r[1] for r in v]):,.0f} | {sum(r[2] for r in v)} | {codes[k]} |")
def ratio(a, b, i):
    return med([r[i] for r in rows[a]]) / med([r[i] for r in rows[b]])
print()
for a, b in (("gslb:static1:do1", "gslb:static1:do0"), ("gslb:geo1:do1", "gslb:geo1:do0"), ("gslb:geo:do1", "gslb:geo:do0"),
             ("knot:static1:do1", "knot:static1:do0"), ("gslb:static1:do1", "knot:static1:do1"), ("gslb:nx1:do1", "knot:nx1:do1")):
    print(f"{a} / {b}: qps {ratio(a, b, 0):.2f}, q/CPU-s {ratio(a, b, 1):.2f}")
PY
