#!/usr/bin/env bash
# Failover time: from killing a region to the last surviving nameserver
# answering without it, and from restarting it to every nameserver
# answering with it again, on the demo's three-region cluster: with the
# demo's checks (interval=1s fails=2) and with the defaults (5s, 3), and
# for gdnsd (simplefo over http_status, its defaults) set up the same way.
# Usage: bash bench/failover.sh     (about 8 minutes, most of it gdnsd's; loopback only)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x bin/gslb ] || go build -o bin/gslb ./cmd/gslb
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2-$1:.2f}')"; }

# measure NAME KILLCMD CHECK...: time from KILLCMD until CHECK succeeds
measure() {
  local name=$1 kill=$2 check=$3 t0 t1
  t0=$(now); eval "$kill" >/dev/null
  for i in $(seq 1 3000); do
    if eval "$check"; then break; fi
    sleep 0.1
  done
  t1=$(now)
  printf '%-46s %6s s\n' "$name" "$(elapsed "$t0" "$t1")"
}

demo_run() { # interval fails
  local tmp; tmp=$(mktemp -d)
  TMPDIR=$tmp bin/gslb demo -port 45353 -interval "$1" -fails "$2" > "$tmp/out" 2>&1 &
  local pid=$!
  for i in $(seq 1 300); do grep -q "Ctrl-C stops" "$tmp/out" 2>/dev/null && break; sleep 0.2; done
  sleep $(( ${1%s} * 3 ))   # every prober has reported
  local q='dig +short +time=1 +tries=1 -p 45353 admin.example.com'
  measure "gslb interval=$1 fails=$2: kill eu-west" \
    "TMPDIR=$tmp bin/gslb demo kill eu-west" \
    "[ \"\$($q @127.0.0.11)\" = 127.0.0.11 ] && [ \"\$($q @127.0.0.13)\" = 127.0.0.11 ]"
  measure "gslb interval=$1 fails=$2: restart eu-west" \
    "TMPDIR=$tmp bin/gslb demo start eu-west" \
    "[ \"\$($q @127.0.0.11)\" = 127.0.0.12 ] && [ \"\$($q @127.0.0.13)\" = 127.0.0.12 ] && [ \"\$($q @127.0.0.12)\" = 127.0.0.12 ]"
  kill -INT $pid; wait $pid || true
  rm -rf "$tmp"
}

echo "failover: kill the primary region, time until every surviving nameserver answers the secondary"
demo_run 1s 2
demo_run 5s 3

# gdnsd, set up the same way: simplefo (primary 127.0.0.42, secondary
# 127.0.0.41) over http_status with gdnsd's default monitoring (interval
# 10 s, down after down_thresh=10 failures). Both backends answer before
# gdnsd starts, so their states start UP.
command -v gdnsd >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends gdnsd; }
work=$(mktemp -d); mkdir -p "$work/zones" "$work/run" "$work/state"
python3 -m http.server 48080 --bind 127.0.0.41 --directory "$work" >/dev/null 2>&1 & us=$!
python3 -m http.server 48080 --bind 127.0.0.42 --directory "$work" >/dev/null 2>&1 & eu=$!
for i in $(seq 1 50); do
  curl -sf -o /dev/null http://127.0.0.41:48080/ && curl -sf -o /dev/null http://127.0.0.42:48080/ && break
  sleep 0.2
done
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
measure "gdnsd defaults (simplefo, http_status): kill primary" "kill $eu" "[ \"\$($q)\" = 127.0.0.41 ]"
python3 -m http.server 48080 --bind 127.0.0.42 --directory "$work" >/dev/null 2>&1 & eu=$!
measure "gdnsd defaults: primary back" "true" "[ \"\$($q)\" = 127.0.0.42 ]"
kill $gd $us $eu 2>/dev/null || true; wait 2>/dev/null || true
rm -rf "$work"
