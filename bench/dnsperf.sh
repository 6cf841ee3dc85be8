#!/usr/bin/env bash
# What a DNS query costs the server: gslb next to Knot DNS (static names,
# NXDOMAIN) and gdnsd (geo names with ECS) in one run, on the same zone.
#
# The zone has STATIC static names (A) and GEO geo names (gslb: GSLB geo over
# three regions; gdnsd: DYNA geoip on gslb's embedded database); Knot serves the
# static part. Five workloads, each with ECS 81.2.69.0/24 on every query:
#   static1  one static name, repeated          gslb vs knot
#   nx1      one name that does not exist       gslb vs knot
#   geo1     one geo name, repeated             gslb vs gdnsd
#   static   QUERIES queries over every static name, 20 % random NXDOMAIN names
#   geo      QUERIES queries over every geo name, 20 % random NXDOMAIN names
# Servers are pinned to SERVER_CPUS (default core 0), dnsperf to core 1
# (-c 32 -q 200, SECS seconds each, ROUNDS rounds in alternation). Each row gives
# queries per second, queries per server CPU-second (user + system time of the
# server process over the run, from /proc/PID/stat) and lost queries.
# GOMAXPROCS of gslb: GSLB_PROCS (default: unset, so the number of CPUs it
# may run on, SERVER_CPUS: one UDP socket and reader per GOMAXPROCS).
# Usage: bash bench/dnsperf.sh [seconds]   (make bench runs it; env: SECS=15
#        ROUNDS=2 STATIC=40000 GEO=20000 QUERIES=100000 SERVER_CPUS=0
#        GSLB_PROCS= GSLB=bin/gslb KEEP=dir)
# Loopback only, free ports, every dnsperf run bounded by -l.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-${SECS:-${BENCH_SECONDS:-15}}} ROUNDS=${ROUNDS:-2} STATIC=${STATIC:-40000} GEO=${GEO:-20000}
GSLB_GIVEN=${GSLB:-}
QUERIES=${QUERIES:-100000} SERVER_CPUS=${SERVER_CPUS:-0} GSLB=${GSLB:-bin/gslb}
need=()
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v knotd >/dev/null || need+=(knot)
command -v gdnsd >/dev/null || need+=(gdnsd)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -q && apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# The tree's code, always, unless GSLB names a binary: a bin/gslb left by
# an earlier build would measure old code.
if [ -z "${GSLB_GIVEN:-}" ]; then go build -o "$GSLB" ./cmd/gslb; fi

work=${KEEP:-$(mktemp -d)}
mkdir -p "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$work/gslb" "$work/knot" "$work/gdnsd/zones" "$work/gdnsd/run" "$work/gdnsd/state"
python3 - "$work" "$STATIC" "$GEO" "$QUERIES" <<'PY'
import random, sys
work, nstatic, ngeo, nq = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(14)
head = """$ORIGIN example.com.
$TTL 300
@ IN SOA ns1 hostmaster 2026120301 3600 600 1209600 60
@ IN NS ns1
@ IN NS ns2
ns1 IN A 192.0.2.53
ns2 IN A 192.0.2.54
"""
static = [f"s{i}" for i in range(nstatic)]
geo = [f"g{i}" for i in range(ngeo)]
with open(f"{work}/knot/example.com.zone", "w") as k, open(f"{work}/gslb/example.com.zone", "w") as g, \
     open(f"{work}/gdnsd/zones/example.com", "w") as d:
    for f in (k, g, d):
        f.write(head)
    g.write("$REGION us-east  lat=39.04 lon=-77.49 serves=NA,SA\n"
            "$REGION eu-west  lat=53.35 lon=-6.26  serves=EU,AF\n"
            "$REGION ap-south lat=1.35  lon=103.82 serves=AS,OC\n"
            "$POOL geo-us region=us-east members=192.0.2.10\n"
            "$POOL geo-eu region=eu-west members=198.51.100.10\n"
            "$POOL geo-ap region=ap-south members=203.0.113.10\n")
    for i, n in enumerate(static):
        line = f"{n} IN A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\n"
        for f in (k, g, d):
            f.write(line)
    for n in geo:
        g.write(f"{n} 30 IN GSLB geo pools=geo-us,geo-eu,geo-ap\n")
        d.write(f"{n} 30 DYNA geoip!geo\n")
def nx():
    return "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
for name, names in (("static", static), ("geo", geo)):
    with open(f"{work}/{name}.q", "w") as f:
        for _ in range(nq):
            if rnd.random() < 0.2:
                f.write(f"{nx()}.example.com A\n")
            else:
                f.write(f"{rnd.choice(names)}.example.com A\n")
with open(f"{work}/static1.q", "w") as f:
    f.write("s1.example.com A\n")
with open(f"{work}/nx1.q", "w") as f:
    f.write("nope.example.com A\n")
with open(f"{work}/geo1.q", "w") as f:
    f.write("g1.example.com A\n")
PY

gport=$(freeport)
( [ -n "${GSLB_PROCS:-}" ] && export GOMAXPROCS=$GSLB_PROCS
  exec taskset -c "$SERVER_CPUS" "$GSLB" serve --dns "127.0.0.1:$gport" --zones "$work/gslb" --log-level warn --probes=false ${GSLB_ARGS:-} ) > "$work/gslb.out" 2>&1 &
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
template:
  - id: default
    storage: "$work/knot"
zone:
  - domain: example.com
    file: example.com.zone
CONF
taskset -c "$SERVER_CPUS" knotd -c "$work/knot.conf" > "$work/knot.out" 2>&1 &
kpid=$!
pids+=($kpid)

dport=$(freeport)
cat > "$work/gdnsd/config" <<CONF
options => {
  listen => [ 127.0.0.1:$dport ]
  run_dir => $work/gdnsd/run
  state_dir => $work/gdnsd/state
  udp_threads => 1
  tcp_threads => 1
}
plugins => { geoip => {
  maps => { prod => {
    geoip2_db => $PWD/geodata/default.mmdb
    datacenters => [us-east, eu-west, ap-south]
    map => {
      NA => [us-east, eu-west, ap-south], SA => [us-east, eu-west, ap-south]
      EU => [eu-west, us-east, ap-south], AF => [eu-west, us-east, ap-south]
      AS => [ap-south, eu-west, us-east], OC => [ap-south, us-east, eu-west]
    }
  } }
  resources => { geo => { map => prod, dcmap => { us-east => 192.0.2.10, eu-west => 198.51.100.10, ap-south => 203.0.113.10 } } }
} }
CONF
taskset -c "$SERVER_CPUS" gdnsd -c "$work/gdnsd" start > "$work/gdnsd.out" 2>&1 &
dpid=$!
pids+=($dpid)

ok=
for i in $(seq 150); do
  if dig +short +time=1 +tries=1 @127.0.0.1 -p "$gport" s7.example.com A | grep -q 10.0.0.7 &&
     dig +short +time=1 +tries=1 @127.0.0.1 -p "$kport" s7.example.com A | grep -q 10.0.0.7 &&
     dig +short +time=1 +tries=1 @127.0.0.1 -p "$dport" g7.example.com A | grep -q 192; then ok=1; break; fi
  sleep 0.2
done
[ -n "$ok" ] || { echo "servers did not come up"; tail "$work"/*.out; exit 1; }
for p in "$gport" "$dport"; do
  dig +short @127.0.0.1 -p "$p" g7.example.com A +subnet=81.2.69.0/24 | grep -qx 198.51.100.10 || echo "WARNING: geo answer wrong on port $p"
done

ecs="8:00011800510245" # ECS 81.2.69.0/24 (GB in the embedded database)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, in clock ticks
hz=$(getconf CLK_TCK)

# run name pid port queryfile: one dnsperf run; appends "name qps qpcpu lost" to $work/rows
run() {
  local name=$1 pid=$2 port=$3 q=$4 out c0 c1 qps done lost
  c0=$(cpu "$pid")
  out=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$q" -c 32 -q 200 -l "$SECS" -E "$ecs" 2>&1)
  c1=$(cpu "$pid")
  qps=$(awk '/Queries per second/ {print int($4)}' <<<"$out")
  done=$(awk '/Queries completed/ {print $3}' <<<"$out")
  lost=$(awk '/Queries lost/ {print $3}' <<<"$out")
  echo "$name $qps $(( done * hz / (c1 - c0 > 0 ? c1 - c0 : 1) )) $lost" >> "$work/rows"
}

echo "dnsperf -c 32 -q 200 -l $SECS -E 81.2.69.0/24, servers on core(s) $SERVER_CPUS, dnsperf on core 1, $ROUNDS rounds ($(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); gslb GOMAXPROCS=${GSLB_PROCS:-$(taskset -c "$SERVER_CPUS" nproc)}"
echo "zone: $STATIC static + $GEO geo names; query files: $QUERIES queries, 20 % NXDOMAIN; load before: $(uptime | sed 's/.*load average/load average/')"
: > "$work/rows"
for r in $(seq "$ROUNDS"); do
  run "knot:static1" "$kpid" "$kport" "$work/static1.q"
  run "gslb:static1" "$gpid" "$gport" "$work/static1.q"
  run "knot:nx1" "$kpid" "$kport" "$work/nx1.q"
  run "gslb:nx1" "$gpid" "$gport" "$work/nx1.q"
  run "gdnsd:geo1" "$dpid" "$dport" "$work/geo1.q"
  run "gslb:geo1" "$gpid" "$gport" "$work/geo1.q"
  run "knot:static" "$kpid" "$kport" "$work/static.q"
  run "gslb:static" "$gpid" "$gport" "$work/static.q"
  run "gdnsd:geo" "$dpid" "$dport" "$work/geo.q"
  run "gslb:geo" "$gpid" "$gport" "$work/geo.q"
done
echo "load after: $(uptime | sed 's/.*load average/load average/'); RSS kB: gslb $(awk '/VmRSS/ {print $2}' /proc/$gpid/status), knot $(awk '/VmRSS/ {print $2}' /proc/$kpid/status), gdnsd $(awk '/VmRSS/ {print $2}' /proc/$dpid/status)"
python3 - "$work/rows" <<'PY'
import sys, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, qps, qpc, lost = line.split()
    rows[name].append((int(qps), int(qpc), int(lost)))
def med(v):
    v = sorted(v); return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
label = {"static1": "one static name, repeated", "nx1": "one NXDOMAIN name, repeated", "geo1": "one geo name, repeated",
         "static": "queries over the static names, 20 % NXDOMAIN", "geo": "queries over the geo names, 20 % NXDOMAIN"}
print("| workload | peer | peer qps | peer q/CPU-s | peer lost | gslb qps | gslb q/CPU-s | gslb lost | q/CPU-s ratio |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for w, peer in (("static1", "knot"), ("nx1", "knot"), ("geo1", "gdnsd"), ("static", "knot"), ("geo", "gdnsd")):
    p, g = rows[f"{peer}:{w}"], rows[f"gslb:{w}"]
    pq, pc, gq, gc = (med([r[i] for r in x]) for x, i in ((p, 0), (p, 1), (g, 0), (g, 1)))
    pl, gl = sum(r[2] for r in p), sum(r[2] for r in g)
    print(f"| {label[w]} | {peer} | {pq:,.0f} | {pc:,.0f} | {pl} | {gq:,.0f} | {gc:,.0f} | {gl} | {gc / pc:.2f} |")
print("(medians of the rounds; lost: summed over the rounds; rounds:", " ".join(f"{k}={[r[1] for r in v]}" for k, v in rows.items()), ")")
PY
