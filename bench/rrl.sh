#!/usr/bin/env bash
# Response-rate limiting, measured two ways in one run:
#  1. its cost on honest traffic: dnsperf over 10,000 distinct names (each
#     asked a few times a second) against gslb with RRL off and with RRL
#     counting every reply (log_only, loopback counted too, so nothing is
#     dropped but every reply goes through the accounting), alternated;
#  2. a flood: 20,000 identical queries from one source, back to back,
#     against gslb and Knot (mod-rrl) with the same rate (20/s) and slip (2).
# Servers on core 0, load on core 1. Usage: bash bench/rrl.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
command -v dnsperf >/dev/null && command -v knotd >/dev/null || { apt-get update -q && apt-get install -y -q dnsperf knot; }
go build -o bin/gslb ./cmd/gslb
go build -o bin/rrlflood ./bench/rrlflood
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mkdir -p "$work/zones" "$work/knot"
static() { grep -v -E '^\$(REGION|POOL)|[[:space:]]GSLB[[:space:]]' examples/zones/example.com.zone; }
{ static; for i in $(seq 0 9999); do echo "h$i IN A 192.0.2.$((i % 250 + 1))"; done; } > "$work/zones/example.com.zone"
cp "$work/zones/example.com.zone" "$work/knot/example.com.zone"
for i in $(seq 0 9999); do echo "h$i.example.com A"; done > "$work/names.q"

serve() { # name yaml-rrl-line; sets port
  port=$(freeport)
  cat > "$work/$1.yaml" <<CONF
dns:
  listen: ["127.0.0.1:$port"]
  rrl: $2
zones: "$work/zones"
zones_poll: 0s
log_level: warn
probes: {enabled: false}
CONF
  taskset -c 0 bin/gslb serve -config "$work/$1.yaml" > "$work/$1.out" 2>&1 &
  pids+=($!)
  for i in $(seq 100); do dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" example.com SOA >/dev/null 2>&1 && break; sleep 0.1; done
}
perf() { taskset -c 1 dnsperf -s 127.0.0.1 -p "$1" -d "$work/names.q" -c 32 -q 200 -l "$secs" 2>&1 | awk '/Queries per second/ {print int($4)}'; }

serve off "{enabled: false}"; off=$port
serve on "{log_only: true, limit_loopback: true}"; on=$port
echo "honest traffic: dnsperf -c 32 -q 200 -l $secs over 10,000 names; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for round in 1 2 3; do
  a=$(perf "$off"); b=$(perf "$on")
  python3 -c "print(f'round $round: RRL off {$a:>8} qps   RRL counting every reply {$b:>8} qps   ratio {$b/$a:.2f}')"
done
kill "${pids[@]}"; wait 2>/dev/null || true; pids=()

serve flood "{rate: 20, slip: 2, limit_loopback: true}"; gport=$port
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
mod-rrl:
  - id: default
    rate-limit: 20
    slip: 2
template:
  - id: default
    storage: "$work/knot"
    global-module: mod-rrl/default
zone:
  - domain: example.com
    file: example.com.zone
CONF
taskset -c 0 knotd -c "$work/knot.conf" > "$work/knot.out" 2>&1 &
pids+=($!)
for i in $(seq 100); do dig +short +time=1 +tries=1 @127.0.0.1 -p "$kport" example.com SOA | grep -q . && break; sleep 0.1; done
sleep 2 # a fresh second for both
echo "flood: 20,000 identical queries from 127.0.0.1, rate 20/s, slip 2"
printf 'knot  '; taskset -c 1 bin/rrlflood -s "127.0.0.1:$kport" -n 20000 -q h1.example.com
sleep 2
printf 'gslb  '; taskset -c 1 bin/rrlflood -s "127.0.0.1:$gport" -n 20000 -q h1.example.com
