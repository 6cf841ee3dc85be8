#!/usr/bin/env bash
# Runs dnsperf against gslb and, in the same run, against Knot DNS serving the
# same static zone and gdnsd serving the same geo record (its geoip plugin,
# on gslb's embedded database). Servers are pinned to core 0, dnsperf to core 1.
# Usage: bash bench/dnsperf.sh [seconds]   (make bench runs it; default 15 s)
# Loopback only; every dnsperf run is bounded by -l.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-${BENCH_SECONDS:-15}}
need=()
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v knotd >/dev/null || need+=(knot)
command -v gdnsd >/dev/null || need+=(gdnsd)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -q && apt-get install -y -q --no-install-recommends "${need[@]}"
fi
[ -x bin/gslb ] || go build -o bin/gslb ./cmd/gslb

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The zone: the README example. Knot gets its static part (no GSLB lines);
# gslb and gdnsd also get a geo record over one address per region.
mkdir -p "$work/gslb" "$work/knot" "$work/gdnsd/zones" "$work/gdnsd/run" "$work/gdnsd/state"
static() { grep -v -E '^\$(REGION|POOL)|[[:space:]]GSLB[[:space:]]' examples/zones/example.com.zone; }
static > "$work/knot/example.com.zone"
{ cat examples/zones/example.com.zone; cat <<'ZONE'
$POOL geo-us region=us-east  members=192.0.2.10
$POOL geo-eu region=eu-west  members=198.51.100.10
$POOL geo-ap region=ap-south members=203.0.113.10
geobench 30 IN GSLB geo pools=geo-us,geo-eu,geo-ap
ZONE
} > "$work/gslb/example.com.zone"
{ static; echo 'geobench 30 DYNA geoip!geo'; } > "$work/gdnsd/zones/example.com"

gport=$(freeport)
taskset -c 0 bin/gslb serve --dns "127.0.0.1:$gport" --zones "$work/gslb" --log-level warn --probes=false > "$work/gslb.out" 2>&1 &
pids+=($!)

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
taskset -c 0 knotd -c "$work/knot.conf" > "$work/knot.out" 2>&1 &
pids+=($!)

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
taskset -c 0 gdnsd -c "$work/gdnsd" start > "$work/gdnsd.out" 2>&1 &
pids+=($!)

for i in $(seq 50); do
  if dig +short +time=1 +tries=1 @127.0.0.1 -p "$gport" example.com SOA >/dev/null 2>&1 &&
     dig +short +time=1 +tries=1 @127.0.0.1 -p "$kport" example.com SOA | grep -q ns1 &&
     dig +short +time=1 +tries=1 @127.0.0.1 -p "$dport" geobench.example.com A | grep -q 192; then break; fi
  sleep 0.2
done

echo "mail.example.com A" > "$work/static.q"
echo "nope.example.com A" > "$work/nx.q"
echo "www.example.com A" > "$work/gslb.q"
echo "geobench.example.com A" > "$work/geo.q"
ecs="8:00011800510245" # ECS 81.2.69.0/24 (GB in the embedded database)

run() { # name port queryfile [extra dnsperf args]
  local name=$1 port=$2 q=$3; shift 3
  local qps out codes
  out=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$q" -c 32 -q 200 -l "$secs" "$@" 2>&1)
  qps=$(awk '/Queries per second/ {print int($4)}' <<<"$out")
  codes=$(awk -F': *' '/Response codes/ {print $2}' <<<"$out")
  printf '%-16s %10s qps   %s\n' "$name" "$qps" "$codes"
  eval "qps_$(echo "$name" | tr -c 'a-zA-Z0-9\n' '_')=$qps"
}

echo "dnsperf -c 32 -q 200 -l $secs, servers on core 0, dnsperf on core 1 ($(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
run "knot static" "$kport" "$work/static.q"
run "gslb static" "$gport" "$work/static.q"
run "knot nxdomain" "$kport" "$work/nx.q"
run "gslb nxdomain" "$gport" "$work/nx.q"
run "gslb all+ecs" "$gport" "$work/gslb.q" -E "$ecs"
run "gdnsd geo+ecs" "$dport" "$work/geo.q" -E "$ecs"
run "gslb geo+ecs" "$gport" "$work/geo.q" -E "$ecs"
dig +short @127.0.0.1 -p "$gport" geobench.example.com A +subnet=81.2.69.0/24 | grep -qx 198.51.100.10 || echo "WARNING: gslb geo answer wrong"
dig +short @127.0.0.1 -p "$dport" geobench.example.com A +subnet=81.2.69.0/24 | grep -qx 198.51.100.10 || echo "WARNING: gdnsd geo answer wrong"
python3 - "$qps_gslb_static" "$qps_knot_static" "$qps_gslb_nxdomain" "$qps_knot_nxdomain" "$qps_gslb_geo_ecs" "$qps_gdnsd_geo_ecs" <<'PY'
import sys
gs, ks, gn, kn, gg, dg = map(float, sys.argv[1:])
print(f"ratio static   gslb/knot  = {gs/ks:.2f}")
print(f"ratio nxdomain gslb/knot  = {gn/kn:.2f}")
print(f"ratio geo+ecs  gslb/gdnsd = {gg/dg:.2f}")
print(f"geo+ecs vs own static     = {gg/gs:.2f}")
PY
