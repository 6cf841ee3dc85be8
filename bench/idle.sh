#!/usr/bin/env bash
# Idle cost of a node: CPU (user + system, from /proc) over a quiet minute,
# serving a zone of 40k names (20k static A, 20k GSLB records over three
# checked pools), alone and in a three-node cluster whose three probers
# report every 5 s (the default), and, as the baseline of Raft itself, the
# same cluster serving an empty zone. Also reports the reply cache across
# the cluster minute: a query set asked once before and once after must hit
# the cache as often after as before (heartbeats and commits that change
# nothing must not empty it).
# Usage: bash bench/idle.sh [SECONDS]   (default 60; loopback only)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
go build -o bin/gslb ./cmd/gslb
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
ips=(127.0.0.21 127.0.0.22 127.0.0.23)
regions=(us-east eu-west ap-south)

zone() {
  echo '$ORIGIN example.com.'
  echo '$TTL 300'
  echo '@ IN SOA ns1 hostmaster 1 3600 600 1209600 60'
  echo '@ IN NS ns1'
  echo 'ns1 IN A 127.0.0.21'
  echo '$REGION us-east lat=39.04 lon=-77.49 serves=NA,SA'
  echo '$REGION eu-west lat=53.35 lon=-6.26 serves=EU,AF'
  echo '$REGION ap-south lat=1.35 lon=103.82 serves=AS,OC'
  for i in 0 1 2; do
    echo "\$POOL web-${regions[$i]} region=${regions[$i]} members=${ips[$i]} check=http://:5354/health"
  done
  python3 - <<'EOF'
for i in range(20000):
    print(f"h{i} IN A 192.0.2.{i % 250 + 1}")
for i in range(20000):
    print(f"g{i} 30 IN GSLB geo pools=web-us-east,web-eu-west,web-ap-south")
EOF
}

cpu() { # pid -> user+system ticks
  awk '{print $14 + $15}' "/proc/$1/stat"
}

role() { curl -s "http://$1:5354/api/v1/status" | python3 -c 'import json,sys; c=json.load(sys.stdin).get("cluster"); print(c["role"].lower() if c else "alone")'; }

measure() { # label pid ip [pid ip...]: every node over the same quiet interval
  local label=$1 hz t0 t1; shift
  hz=$(getconf CLK_TCK)
  sleep 15 # every prober has reported and the state settled
  local args=("$@") c0=() i
  for ((i = 0; i < ${#args[@]}; i += 2)); do c0+=("$(cpu "${args[$i]}")"); done
  t0=$(date +%s.%N)
  sleep "$secs"
  t1=$(date +%s.%N)
  for ((i = 0; i < ${#args[@]}; i += 2)); do
    local c1 r; c1=$(cpu "${args[$i]}"); r=$(role "${args[$((i + 1))]}")
    python3 -c "print('%-24s %-10s %6.2f %% of a core (%d ticks in %.0f s)' % ('$label', '$r', 100*($c1-${c0[$((i / 2))]})/$hz/($t1-$t0), $c1-${c0[$((i / 2))]}, $t1-$t0))"
  done
}

waitready() { for i in $(seq 1 600); do grep -q '^ready' "$1" 2>/dev/null && return; sleep 0.1; done; echo "not ready: $1"; cat "$1".err; exit 1; }

cachehits() { curl -s "http://$1/metrics" | awk '/^gslb_dns_cache_hits_total /{print $2}'; }
askall() { # server: 2,000 names (static and GSLB) once each
  for i in $(seq 0 999); do echo "h$i.example.com A"; echo "g$i.example.com A"; done > "$tmp/q"
  dnsperf -s "$1" -p 5353 -d "$tmp/q" -n 1 -q 50 >/dev/null 2>&1 || true
}

mkdir -p "$tmp/zones"
zone > "$tmp/zones/example.com.zone"
echo "zone: $(grep -c ' IN A ' "$tmp/zones/example.com.zone") A names, $(grep -c GSLB "$tmp/zones/example.com.zone") GSLB records"

echo "single node:"
# One node alone, probing the three pools.
bin/gslb serve --dns 127.0.0.21:5353 --admin 127.0.0.21:5354 --zones "$tmp/zones" --node single --region us-east \
  > "$tmp/single.out" 2> "$tmp/single.out.err" &
pids+=($!); single=$!
waitready "$tmp/single.out"
# The other two "regions" answer the checks.
for i in 1 2; do
  mkdir -p "$tmp/empty$i"
  bin/gslb serve --dns "${ips[$i]}:5353" --admin "${ips[$i]}:5354" --zones "$tmp/empty$i" --probes false \
    > "$tmp/h$i.out" 2> "$tmp/h$i.out.err" &
  pids+=($!)
  waitready "$tmp/h$i.out"
done
measure "40k zone" "$single" 127.0.0.21
kill "${pids[@]}"; wait 2>/dev/null || true; pids=()

cluster() { # zone-dir label: three nodes, every node probes every pool and reports
  local zdir=$1 label=$2 i
peers=""
for i in 0 1 2; do peers+="    - {id: ${regions[$i]}, raft: \"${ips[$i]}:5355\", region: ${regions[$i]}, dns: \"${ips[$i]}:5353\"}"$'\n'; done
for i in 0 1 2; do
  zd="$zdir"; [ "$i" = 0 ] || { zd="$tmp/none$i"; mkdir -p "$zd"; }
  rm -rf "$tmp/data$i"
  cat > "$tmp/n$i.yaml" <<EOF
node: ${regions[$i]}
region: ${regions[$i]}
dns: ["${ips[$i]}:5353"]
admin: "${ips[$i]}:5354"
data: "$tmp/data$i"
zones: "$zd"
cluster:
  raft: "${ips[$i]}:5355"
  secret: "$secret"
  peers:
$peers
EOF
  bin/gslb serve -config "$tmp/n$i.yaml" > "$tmp/n$i.out" 2> "$tmp/n$i.out.err" &
  pids+=($!)
done
for i in 0 1 2; do waitready "$tmp/n$i.out"; done
for i in $(seq 1 300); do [ "$(dig +short -p 5353 @127.0.0.22 ns1.example.com)" = 127.0.0.21 ] && break; sleep 0.2; done
local h0 h1 h2 h3
if command -v dnsperf >/dev/null; then
  askall 127.0.0.22; h0=$(cachehits 127.0.0.22:5354); askall 127.0.0.22; h1=$(cachehits 127.0.0.22:5354)
fi
measure "$label" "${pids[0]}" 127.0.0.21 "${pids[1]}" 127.0.0.22 "${pids[2]}" 127.0.0.23
if command -v dnsperf >/dev/null; then
  h2=$(cachehits 127.0.0.22:5354); askall 127.0.0.22; h3=$(cachehits 127.0.0.22:5354)
  echo "  reply cache hits of 2,000 repeated questions on eu-west: before the quiet interval $((h1 - h0)), after it $((h3 - h2))"
fi
echo "  commits during the run: state index $(curl -s http://127.0.0.22:5354/api/v1/status | python3 -c 'import json,sys; print(json.load(sys.stdin)["state_index"])')"
kill "${pids[@]}"; wait 2>/dev/null || true; pids=()
}

secret=$(bin/gslb secret)


echo "cluster of three:"
cluster "$tmp/zones" "40k zone"
mkdir -p "$tmp/zones-empty"
sed -n '1,5p' "$tmp/zones/example.com.zone" > "$tmp/zones-empty/example.com.zone"
cluster "$tmp/zones-empty" "empty zone (Raft alone)"
