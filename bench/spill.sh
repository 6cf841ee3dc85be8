#!/usr/bin/env bash
# bench/spill.sh: what proxy spill-over costs and what it saves, in one run.
#
#  1. The added latency of a spilled request on loopback: wrk with one
#     connection (so the latency is one request's) to a region proxy that
#     has its server (direct), and to one whose only server is out
#     (draining) and that spills every request to the first (spilled). The
#     same with HAProxy: a backend whose only server is down and whose
#     backup server is the other region's HAProxy. Proxies pinned to
#     PROXY_CPU, wrk and the nginx backend to LOAD_CPU.
#  2. Failed requests across a region's server failure on the demo, with
#     and without spill-over: the e2e test TestSpillOverDemo (a request
#     every 10 ms to eu-west's proxy for 30 s while `gslb demo
#     kill-servers eu-west` and `gslb demo start eu-west` run), then the
#     same test with GSLB_BENCH_NO_SPILL=1 (`gslb demo --spill=false`).
#
#   bash bench/spill.sh            # DUR=10s per latency run
#   DUR=5s ROUNDS=3 bash bench/spill.sh
#
# Loopback only; every port is picked free.
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-10s}
ROUNDS=${ROUNDS:-3}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
go build -o bin/gslb ./cmd/gslb
BIN=bin/gslb
for t in wrk haproxy nginx; do command -v $t >/dev/null || { echo "needs $t (apt-get install $t)" >&2; exit 1; }; done
echo "machine: $(nproc) CPUs; load before: $(cut -d' ' -f1-3 /proc/loadavg)"

work=$(mktemp -d /tmp/gslb-bench-spill.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "port $1 never opened" >&2
  return 1
}

BE=$(free_port)
cat >"$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work; proxy_temp_path $work; fastcgi_temp_path $work;
  uwsgi_temp_path $work; scgi_temp_path $work;
  server { listen 127.0.0.1:$BE; location / { return 200 "hello\n"; } }
}
CONF
taskset -c "$LOAD_CPU" nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' &
pids+=($!)
wait_port "$BE"

GB=$(free_port); GA=$(free_port); HB=$(free_port); HA=$(free_port)
SECRET=bench-spill-secret-0123456789abcdef0123
cat >"$work/far.yaml" <<YAML
proxy:
  request_id_header: "-"
  listeners: [{name: web, address: "127.0.0.1:$GB"}]
  routes: [{name: all, backends: app}]
  groups: [{name: app, backends: [{address: "127.0.0.1:$BE"}]}]
  spill: {region: us-east, secret: "$SECRET"}
YAML
cat >"$work/home.yaml" <<YAML
proxy:
  request_id_header: "-"
  listeners: [{name: web, address: "127.0.0.1:$GA"}]
  routes: [{name: all, backends: app}]
  groups: [{name: app, backends: [{address: "127.0.0.1:1", drain: true}]}]
  spill: {region: eu-west, secret: "$SECRET", peers: [{region: us-east, address: "127.0.0.1:$GB"}]}
YAML
for f in far home; do
  taskset -c "$PROXY_CPU" "$BIN" proxy -config "$work/$f.yaml" >/dev/null 2>"$work/$f.log" &
  pids+=($!)
done
cat >"$work/haproxy.cfg" <<CFG
global
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend far
  bind 127.0.0.1:$HB
  default_backend far
backend far
  server s1 127.0.0.1:$BE
frontend home
  bind 127.0.0.1:$HA
  default_backend home
backend home
  server dead 127.0.0.1:1 check inter 200ms fall 1
  server peer 127.0.0.1:$HB backup
CFG
taskset -c "$PROXY_CPU" haproxy -f "$work/haproxy.cfg" -db >/dev/null 2>"$work/haproxy.log" &
pids+=($!)
for p in $GB $GA $HB $HA; do wait_port "$p"; done
sleep 1 # HAProxy's check marks the dead server down

# lat URL -> "p50 p99" in microseconds (wrk, one connection)
lat() {
  taskset -c "$LOAD_CPU" wrk -t1 -c1 -d2s "$1" >/dev/null 2>&1 || true
  taskset -c "$LOAD_CPU" wrk -t1 -c1 -d"$DUR" --latency "$1" 2>/dev/null | awk '
    function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return (v+0)*1000; if (v ~ /s$/) return (v+0)*1e6; return v }
    $1=="50%" {p50=us($2)} $1=="99%" {p99=us($2)} / Non-2xx/ {bad=$NF}
    END { if (bad != "") print "non-2xx:" bad; else printf "%.0f %.0f\n", p50, p99 }'
}
echo
echo "## Added latency of a spilled request (wrk -c1, $DUR, $ROUNDS rounds, microseconds p50 / p99)"
echo
echo "| round | gslb direct | gslb spilled | added p50 | HAProxy direct | HAProxy via backup | added p50 |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for r in $(seq 1 "$ROUNDS"); do
  read -r gd50 gd99 <<<"$(lat "http://127.0.0.1:$GB/")"
  read -r gs50 gs99 <<<"$(lat "http://127.0.0.1:$GA/")"
  read -r hd50 hd99 <<<"$(lat "http://127.0.0.1:$HB/")"
  read -r hs50 hs99 <<<"$(lat "http://127.0.0.1:$HA/")"
  echo "| $r | $gd50 / $gd99 | $gs50 / $gs99 | $((gs50 - gd50)) | $hd50 / $hd99 | $hs50 / $hs99 | $((hs50 - hd50)) |"
done
echo
echo "load after the latency runs: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "## Failed requests across eu-west's server failure (demo, 30 s, a request every 10 ms)"
echo
make -s build >/dev/null
for mode in spill no-spill; do
  env=()
  [ "$mode" = no-spill ] && env=(GSLB_BENCH_NO_SPILL=1)
  out=$(env "${env[@]}" GSLB_BIN="$PWD/bin/gslb" go test -count=1 -tags e2e -run '^TestSpillOverDemo$' -v ./integration/ 2>&1 || true)
  echo "$mode:"
  echo "$out" | grep -E 'servers killed at|failed requests|without spill-over|--- (PASS|FAIL)' | sed 's/^ */  /'
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
