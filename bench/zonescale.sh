#!/usr/bin/env bash
# Zone scale: start-to-first-answer, memory, SIGHUP reload and query rate of
# `gslb serve` with large zones, against Knot DNS loading the same static zone
# in the same run.
#
#   bash bench/zonescale.sh            # N=1000000 A records, G=100000 GSLB records
#   N=200000 G=20000 bash bench/zonescale.sh   # smaller
#
# Cases:
#   1. N A records: gslb and knotd, start to first answer (the last name of
#      the file answered NOERROR), VmHWM, VmRSS after 3 s, CPU seconds;
#   2. N A + G GSLB records (gslb only; Knot has no GSLB records): the same,
#      then a SIGHUP reload of the changed file while dnsperf sends 2000 q/s
#      over its names (reload time, peak RSS of the reload, lost and SERVFAIL);
#   3. 100 zones of 10k records, one changed, SIGHUP: reload time, CPU seconds
#      and RSS growth of the reload;
#   4. query rate on the N-record zone over every name in random order,
#      server on core 0 and dnsperf on core 1, gslb and knotd.
# Loopback only; every dnsperf run is bounded by -l; each server is stopped
# before the next starts.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
G=${G:-100000}
QSECS=${QSECS:-15}
need=()
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v knotd >/dev/null || need+=(knot)
command -v dig >/dev/null || need+=(bind9-dnsutils)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -q && apt-get install -y -q --no-install-recommends "${need[@]}"
fi
go build -o bin/gslb ./cmd/gslb # always: a stale binary would measure old code
gslb=$PWD/bin/gslb

work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
cpu() { awk '{printf "%.2f", ($14+$15)/100}' "/proc/$1/stat"; } # utime+stime, USER_HZ 100
kb() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status"; }
mb() { echo $(( $(kb "$1" "$2") / 1024 )); }
# wait_answer PORT NAME TYPE PATTERN: until dig's answer matches (at most 600 s).
wait_answer() {
  local end=$(( $(date +%s) + 600 ))
  until dig +time=1 +tries=1 +norec @127.0.0.1 -p "$1" "$2" "$3" 2>/dev/null | grep -q "$4"; do
    [ "$(date +%s)" -lt $end ] || { echo "no answer for $2 $3 on port $1" >&2; return 1; }
    sleep 0.02
  done
}

# Zones. The static part is the same file for both servers.
head_zone() { # ORIGIN SERIAL
  printf '$ORIGIN %s.\n$TTL 300\n@ IN SOA ns1 hostmaster %s 3600 600 1209600 60\n@ IN NS ns1\n@ IN NS ns2\nns1 IN A 192.0.2.1\nns2 IN A 192.0.2.2\n' "$1" "$2"
}
a_records() { # COUNT [PREFIX]
  awk -v n="$1" -v p="${2:-h}" 'BEGIN { for (i = 0; i < n; i++) printf "%s%d IN A 10.%d.%d.%d\n", p, i, int(i/65536)%256, int(i/256)%256, i%256 }'
}
gslb_records() { # COUNT
  cat <<'Z'
$REGION us-east  lat=39.04 lon=-77.49 serves=NA,SA
$REGION eu-west  lat=53.35 lon=-6.26  serves=EU,AF
$REGION ap-south lat=1.35  lon=103.82 serves=AS,OC
$POOL web-us region=us-east  members=192.0.2.10,192.0.2.11
$POOL web-eu region=eu-west  members=198.51.100.10
$POOL web-ap region=ap-south members=203.0.113.10@2,203.0.113.11@1
Z
  awk -v n="$1" 'BEGIN { split("geo pools=web-us,web-eu,web-ap|failover pools=web-eu,web-us|weighted pools=web-us@3,web-eu@1|latency pools=web-us,web-eu,web-ap", p, "|")
    for (i = 0; i < n; i++) printf "g%d 30 IN GSLB %s\n", i, p[i%4+1] }'
}
mkdir -p "$work/a" "$work/ag" "$work/many" "$work/knot"
{ head_zone big.example 1; a_records "$N"; } > "$work/a/big.example.zone"
cp "$work/a/big.example.zone" "$work/knot/big.example.zone"
{ head_zone big.example 1; a_records "$N"; gslb_records "$G"; } > "$work/ag/big.example.zone"
for z in $(seq 0 99); do { head_zone "z$z.example" 1; a_records 10000; } > "$work/many/z$z.example.zone"; done
last="h$((N - 1)).big.example"
awk -v n="$N" 'BEGIN { srand(1); for (i = 0; i < n; i++) a[i] = i; for (i = n - 1; i > 0; i--) { j = int(rand() * (i + 1)); t = a[i]; a[i] = a[j]; a[j] = t }
  for (i = 0; i < n; i++) printf "h%d.big.example A\n", a[i] }' > "$work/names"
{ awk -v g="$G" 'BEGIN { for (i = 0; i < 20000; i++) printf "g%d.big.example A\n", int(rand() * g) }'; head -20000 "$work/names"; } | shuf --random-source=<(yes) > "$work/mixed"

echo "# zonescale: N=$N G=$G, $(nproc) cores, $(date -u +%FT%TZ), load: $(uptime | sed 's/.*load average: //')"
echo "# zone files: $(du -m "$work/a/big.example.zone" | cut -f1) MB (N A), $(du -m "$work/ag/big.example.zone" | cut -f1) MB (N A + G GSLB)"

start_gslb() { # DIR PORT [CORE]
  taskset -c "${3:-0-1}" "$gslb" serve --dns "127.0.0.1:$2" --zones "$1" --log-level warn --probes=false --zones-poll 0 > "$work/gslb.out" 2>&1 &
  pid=$!
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
knot_conf() { # PORT
  cat > "$work/knot.conf" <<CONF
server:
    rundir: "$work/knot"
    listen: 127.0.0.1@$1
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
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: big.example
    file: big.example.zone
CONF
}
start_knot() { # PORT [CORE]
  knot_conf "$1"
  rm -rf "$work/knot/timers" "$work/knot/journal"
  taskset -c "${2:-0-1}" knotd -c "$work/knot.conf" > "$work/knot.out" 2>&1 &
  pid=$!
}
# measure_start NAME PORT: start to first answer of $last, then memory.
measure_start() {
  local t0=$1 name=$2 port=$3
  wait_answer "$port" "$last" A "status: NOERROR"
  local t1 c
  t1=$(now); c=$(cpu "$pid")
  sleep 3
  printf '%-34s start %6.2f s  cpu %6.2f s  VmHWM %5d MB  VmRSS %5d MB\n' "$name" "$(echo "$t1 - $t0" | bc)" "$c" "$(mb "$pid" VmHWM)" "$(mb "$pid" VmRSS)"
}

echo "## 1. $N A records"
port=$(freeport); t0=$(now); start_knot "$port"; measure_start "$t0" "knotd" "$port"; stop
port=$(freeport); t0=$(now); start_gslb "$work/a" "$port"; measure_start "$t0" "gslb" "$port"; stop

echo "## 2. $N A + $G GSLB records, then a SIGHUP reload under dnsperf"
port=$(freeport); t0=$(now); start_gslb "$work/ag" "$port"; measure_start "$t0" "gslb" "$port"
steady=$(mb "$pid" VmRSS)
sed -i '3s/ 1 3600/ 2 3600/; s/^h0 IN A .*/h0 IN A 10.255.255.255/' "$work/ag/big.example.zone"
echo 5 > "/proc/$pid/clear_refs" # resets VmHWM to the current RSS
timeout 300 dnsperf -s 127.0.0.1 -p "$port" -d "$work/mixed" -Q 2000 -l 60 -t 1 > "$work/dnsperf.reload" 2>&1 &
dp=$!
sleep 2
c0=$(cpu "$pid"); t0=$(now); kill -HUP "$pid"
wait_answer "$port" big.example SOA "hostmaster.big.example. 2 "
t1=$(now); c1=$(cpu "$pid")
sleep 3
peak=$(mb "$pid" VmHWM)
printf '%-34s reload %5.2f s  cpu %6.2f s  peak %5d MB (%.2f x steady %d MB)  VmRSS after %d MB\n' "gslb SIGHUP" "$(echo "$t1 - $t0" | bc)" "$(echo "$c1 - $c0" | bc)" "$peak" "$(echo "$peak / $steady" | bc -l)" "$steady" "$(mb "$pid" VmRSS)"
wait "$dp" || true
printf '%-34s %s; %s; %s\n' "dnsperf during the reload" "$(grep -E 'Queries sent' "$work/dnsperf.reload" | tr -s ' ' | sed 's/^ //')" "$(grep -E 'Queries lost' "$work/dnsperf.reload" | tr -s ' ' | sed 's/^ //')" "$(grep -E 'Response codes' "$work/dnsperf.reload" | tr -s ' ' | sed 's/^ //')"
stop

echo "## 3. 100 zones of 10k records, one changed"
port=$(freeport); t0=$(now); start_gslb "$work/many" "$port"
wait_answer "$port" h9999.z99.example A "status: NOERROR"
t1=$(now); c=$(cpu "$pid"); sleep 3
printf '%-34s start %6.2f s  cpu %6.2f s  VmRSS %5d MB\n' "gslb 100 zones" "$(echo "$t1 - $t0" | bc)" "$c" "$(mb "$pid" VmRSS)"
r0=$(mb "$pid" VmRSS)
sed -i '3s/ 1 3600/ 2 3600/; s/^h0 IN A .*/h0 IN A 10.255.255.255/' "$work/many/z42.example.zone"
echo 5 > "/proc/$pid/clear_refs"
c0=$(cpu "$pid"); t0=$(now); kill -HUP "$pid"
wait_answer "$port" z42.example SOA "hostmaster.z42.example. 2 "
t1=$(now); c1=$(cpu "$pid"); sleep 3
printf '%-34s reload %5.2f s  cpu %6.2f s  peak %5d MB (+%d MB)  VmRSS after %d MB\n' "gslb SIGHUP, z42 changed" "$(echo "$t1 - $t0" | bc)" "$(echo "$c1 - $c0" | bc)" "$(mb "$pid" VmHWM)" "$(( $(mb "$pid" VmHWM) - r0 ))" "$(mb "$pid" VmRSS)"
stop

echo "## 4. query rate on the $N-record zone, every name once in random order (server core 0, dnsperf core 1, ${QSECS} s)"
qrate() { # NAME PORT
  local c0 c1
  c0=$(cpu "$pid")
  taskset -c 1 dnsperf -s 127.0.0.1 -p "$2" -d "$work/names" -l "$QSECS" -c 4 -q 200 -t 2 > "$work/dnsperf.q" 2>&1 || true
  c1=$(cpu "$pid")
  local qps lost
  qps=$(awk '/Queries per second/ {print $4}' "$work/dnsperf.q")
  lost=$(awk '/Queries lost/ {print $3}' "$work/dnsperf.q")
  printf '%-34s %10.0f q/s  server cpu %5.2f s  %8.0f q per cpu-s  lost %s  %s\n' "$1" "$qps" "$(echo "$c1 - $c0" | bc)" "$(echo "$qps * $QSECS / ($c1 - $c0)" | bc -l)" "$lost" "$(grep -E 'Response codes' "$work/dnsperf.q" | tr -s ' ' | sed 's/^ //')"
}
port=$(freeport); t0=$(now); start_knot "$port" 0; wait_answer "$port" "$last" A "status: NOERROR"; qrate knotd "$port"; stop
port=$(freeport); t0=$(now); start_gslb "$work/a" "$port" 0; wait_answer "$port" "$last" A "status: NOERROR"; qrate gslb "$port"; stop
echo "# load after: $(uptime | sed 's/.*load average: //')"
