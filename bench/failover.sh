#!/usr/bin/env bash
# Failover time: from killing a region to the last surviving nameserver
# answering without it, and from restarting it to every nameserver
# answering with it again, on the demo's three-region cluster: with the
# demo's checks (interval=1s fails=2) and with the defaults (5s, 3).
# Usage: bash bench/failover.sh     (about 2 minutes; loopback only)
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
