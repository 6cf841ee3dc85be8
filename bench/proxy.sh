#!/usr/bin/env bash
# bench/proxy.sh: wrk through gslb's region proxy, HAProxy and nginx, in one
# run, over the same three backends, for plain HTTP/1.1, HTTPS (TLS
# terminated at the proxy) and L4 TCP, and h2load through the three for
# HTTP/2 over TLS (64 connections x 10 streams). The proxies run pinned to
# one core (PROXY_CPU) and the load generator plus the backends to the
# other (LOAD_CPU).
#
#   make bench-proxy                      # builds bin/gslb, then runs this
#   DUR=5s CONNS=64 bash bench/proxy.sh   # shorter run
#   REPEAT=3 bash bench/proxy.sh          # best of 3 interleaved rounds (busy machine)
#
# Prints Markdown tables: requests/s, p99 latency (h2load reports only the
# mean) and our requests/s as a ratio of HAProxy's, then the lowest p99 of
# each proxy over the rounds, then requests per CPU
# second of each proxy process (/proc/PID/stat user + system over the run),
# with the machine's load average. Loopback only; every port is picked free.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${GSLB_BIN:-bin/gslb}
DUR=${DUR:-15s}
CONNS=${CONNS:-64}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
MODES=${MODES:-"http https h2 tcp"}
STREAMS=${STREAMS:-10} # h2load: concurrent streams per connection
REPEAT=${REPEAT:-1} # rounds; the best of each proxy and mode is reported (for a busy machine)

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v haproxy >/dev/null || need+=(haproxy)
command -v nginx >/dev/null || need+=(nginx)
command -v openssl >/dev/null || need+=(openssl)
command -v h2load >/dev/null || need+=(nghttp2-client)
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || need+=(libnginx-mod-stream)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null ||
      echo "warning: could not install ${need[*]}" >&2
  else
    sudo apt-get update -q >/dev/null && sudo apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null ||
      echo "warning: could not install ${need[*]}" >&2
  fi
fi
[ -x "$BIN" ] || { echo "no $BIN: run make build (or make bench-proxy)" >&2; exit 1; }

work=$(mktemp -d /tmp/gslb-bench-proxy.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() { # wait until 127.0.0.1:$1 accepts connections (bounded)
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "port $1 never opened" >&2
  return 1
}

# Certificate for TLS termination.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=bench.test -addext subjectAltName=DNS:bench.test,IP:127.0.0.1 \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat "$work/cert.pem" "$work/key.pem" >"$work/haproxy.pem"

# Three backends: one nginx worker returning a small body, on LOAD_CPU.
B1=$(free_port); B2=$(free_port); B3=$(free_port)
mkdir -p "$work/be"
cat >"$work/be/nginx.conf" <<CONF
worker_processes 1;
pid $work/be/nginx.pid;
error_log $work/be/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/be; proxy_temp_path $work/be; fastcgi_temp_path $work/be;
  uwsgi_temp_path $work/be; scgi_temp_path $work/be;
  server { listen 127.0.0.1:$B1; location / { return 200 "hello from b1\n"; } }
  server { listen 127.0.0.1:$B2; location / { return 200 "hello from b2\n"; } }
  server { listen 127.0.0.1:$B3; location / { return 200 "hello from b3\n"; } }
}
CONF
taskset -c "$LOAD_CPU" nginx -p "$work/be" -c "$work/be/nginx.conf" -g 'daemon off;' &
pids+=($!)
wait_port "$B1"; wait_port "$B2"; wait_port "$B3"

# cpu_ticks PID: CPU time (clock ticks, user + system) of PID and its
# children (nginx's worker).
cpu_ticks() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    if [ -r "/proc/$p/stat" ]; then
      total=$((total + $(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$p/stat")))
    fi
  done
  echo "$total"
}

run_wrk() { # run_wrk URL PID -> "rps p99 requests-per-cpu-second"
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d2s "$1" >/dev/null 2>&1 || true # warm-up
  local t0 t1 out rps p99 n errs eff
  t0=$(cpu_ticks "$2")
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DUR" --latency "$1" 2>&1)
  t1=$(cpu_ticks "$2")
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  [ -n "$errs" ] && echo "  $1: $errs" >&2
  eff=$(awk -v n="${n:-0}" -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { if (t > 0) printf "%.0f", n / (t / hz); else print 0 }')
  echo "${rps:-0} ${p99:--} $eff"
}

run_h2load() { # run_h2load URL PID -> "rps mean-latency requests-per-cpu-second"
  timeout 30 taskset -c "$LOAD_CPU" h2load -t1 -c"$CONNS" -m"$STREAMS" -D 2 "$1" >/dev/null 2>&1 || true # warm-up
  local t0 t1 out rps mean n eff secs
  secs=${DUR%s}
  t0=$(cpu_ticks "$2")
  out=$(timeout $((secs + 30)) taskset -c "$LOAD_CPU" h2load -t1 -c"$CONNS" -m"$STREAMS" -D "$secs" "$1" 2>&1 || true)
  t1=$(cpu_ticks "$2")
  rps=$(awk '/^finished in/ {print $4}' <<<"$out")
  mean=$(awk '/^time for request:/ {print "mean " $6}' <<<"$out")
  n=$(awk '/^requests:/ {print $8}' <<<"$out")
  awk '/^requests:/ && ($10 != 0 || $12 != 0) {print "  h2load: " $0}' <<<"$out" >&2
  eff=$(awk -v n="${n:-0}" -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { if (t > 0) printf "%.0f", n / (t / hz); else print 0 }')
  mean=${mean:--}
  echo "${rps:-0} ${mean// /_} ${eff:-0}"
}

declare -A RPS P99 P99MIN EFF PID URL

to_ms() { # wrk's latency (850.00us, 4.10ms, 1.02s) in milliseconds
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/ && v !~ /ms$/) n *= 1000; printf "%.2f", n }'
}

# measure NAME MODE: one run; keeps the best requests/s (and its p99) and the
# best requests per CPU second over the rounds.
measure() {
  local name=$1 mode=$2 url=${URL[$1,$2]:-} r p e
  [ -n "$url" ] || return 0
  if [ "$mode" = h2 ]; then
    read -r r p e < <(run_h2load "$url" "${PID[$name]}")
    p=${p//_/ }
  else
    read -r r p e < <(run_wrk "$url" "${PID[$name]}")
  fi
  [ -n "$e" ] || e=0
  local lat="p99 $p"
  [ "$mode" = h2 ] && lat=$p
  echo "$name $mode: $r req/s, $lat, $e requests per CPU second" >&2
  if awk -v a="$r" -v b="${RPS[$name,$mode]:-0}" 'BEGIN { exit !(a > b) }'; then
    RPS[$name,$mode]=$r; P99[$name,$mode]=$p
  fi
  if [ "$e" -gt "${EFF[$name,$mode]:-0}" ]; then EFF[$name,$mode]=$e; fi
  if [ "$mode" != h2 ] && [ "$p" != - ]; then
    local ms
    ms=$(to_ms "$p")
    if [ -z "${P99MIN[$name,$mode]:-}" ] || awk -v a="$ms" -v b="${P99MIN[$name,$mode]}" 'BEGIN { exit !(a < b) }'; then
      P99MIN[$name,$mode]=$ms
    fi
  fi
}

# gslb proxy.
GP=$(free_port); GS=$(free_port); GT=$(free_port)
cat >"$work/gslb.yaml" <<CONF
proxy:
  listeners:
    - {name: http, address: "127.0.0.1:$GP"}
    - {name: https, address: "127.0.0.1:$GS", protocol: https,
       tls: {certificates: [{cert_file: "$work/cert.pem", key_file: "$work/key.pem"}]}}
    - {name: tcp, address: "127.0.0.1:$GT", protocol: tcp, backends: web}
  request_id_header: "-"
  routes:
    - {name: all, backends: web}
  groups:
    - name: web
      algorithm: round_robin
      backends:
        - {address: "127.0.0.1:$B1"}
        - {address: "127.0.0.1:$B2"}
        - {address: "127.0.0.1:$B3"}
CONF
taskset -c "$PROXY_CPU" "$BIN" proxy -config "$work/gslb.yaml" >"$work/gslb.out" 2>"$work/gslb.err" &
gpid=$!; pids+=($gpid)
wait_port "$GP" || { cat "$work/gslb.err" >&2; exit 1; }
PID[gslb]=$gpid; URL[gslb,http]="http://127.0.0.1:$GP/"; URL[gslb,https]="https://127.0.0.1:$GS/"; URL[gslb,tcp]="http://127.0.0.1:$GT/"
URL[gslb,h2]="https://127.0.0.1:$GS/" # ALPN offers h2 and http/1.1

# HAProxy, configured the same way: round robin, keep-alive to backends.
HP=$(free_port); HS=$(free_port); HT=$(free_port); H2=$(free_port)
cat >"$work/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4000
  tune.ssl.default-dh-param 2048
defaults
  timeout connect 5s
  timeout client 90s
  timeout server 90s
  option http-keep-alive
  http-reuse always
frontend http
  mode http
  bind 127.0.0.1:$HP
  bind 127.0.0.1:$HS ssl crt $work/haproxy.pem alpn http/1.1
  bind 127.0.0.1:$H2 ssl crt $work/haproxy.pem alpn h2,http/1.1
  option forwardfor
  default_backend web
backend web
  mode http
  balance roundrobin
  server b1 127.0.0.1:$B1
  server b2 127.0.0.1:$B2
  server b3 127.0.0.1:$B3
frontend tcp
  mode tcp
  bind 127.0.0.1:$HT
  default_backend webtcp
backend webtcp
  mode tcp
  balance roundrobin
  server b1 127.0.0.1:$B1
  server b2 127.0.0.1:$B2
  server b3 127.0.0.1:$B3
CONF
taskset -c "$PROXY_CPU" haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
hpid=$!; pids+=($hpid)
wait_port "$HP" || { cat "$work/haproxy.log" >&2; exit 1; }
PID[haproxy]=$hpid; URL[haproxy,http]="http://127.0.0.1:$HP/"; URL[haproxy,https]="https://127.0.0.1:$HS/"; URL[haproxy,tcp]="http://127.0.0.1:$HT/"
URL[haproxy,h2]="https://127.0.0.1:$H2/"

# nginx, configured the same way.
NP=$(free_port); NS=$(free_port); NT=$(free_port); N2=$(free_port)
mkdir -p "$work/ng"
stream=""
if [ -e /usr/lib/nginx/modules/ngx_stream_module.so ]; then
  stream="stream { upstream webtcp { server 127.0.0.1:$B1; server 127.0.0.1:$B2; server 127.0.0.1:$B3; }
    server { listen 127.0.0.1:$NT; proxy_pass webtcp; } }"
  load="load_module /usr/lib/nginx/modules/ngx_stream_module.so;"
else
  NT=""; load=""
fi
cat >"$work/ng/nginx.conf" <<CONF
$load
worker_processes 1;
pid $work/ng/nginx.pid;
error_log $work/ng/error.log;
events { worker_connections 10000; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/ng; proxy_temp_path $work/ng; fastcgi_temp_path $work/ng;
  uwsgi_temp_path $work/ng; scgi_temp_path $work/ng;
  upstream web { server 127.0.0.1:$B1; server 127.0.0.1:$B2; server 127.0.0.1:$B3; keepalive 128; }
  server {
    listen 127.0.0.1:$NP;
    listen 127.0.0.1:$NS ssl;
    listen 127.0.0.1:$N2 ssl http2;
    ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem;
    location / {
      proxy_pass http://web;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
$stream
CONF
taskset -c "$PROXY_CPU" nginx -p "$work/ng" -c "$work/ng/nginx.conf" -g 'daemon off;' >"$work/ng/out.log" 2>&1 &
npid=$!; pids+=($npid)
wait_port "$NP" || { cat "$work/ng/out.log" "$work/ng/error.log" >&2; exit 1; }
PID[nginx]=$npid; URL[nginx,http]="http://127.0.0.1:$NP/"; URL[nginx,https]="https://127.0.0.1:$NS/"; URL[nginx,h2]="https://127.0.0.1:$N2/"
[ -n "$NT" ] && URL[nginx,tcp]="http://127.0.0.1:$NT/"

# The three proxies are all up (idle ones cost nothing); each round runs
# every mode through each of them in turn, so that other load on the
# machine falls on all three alike.
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for name in gslb haproxy nginx; do
  for mode in $MODES; do RPS[$name,$mode]=0; P99[$name,$mode]=-; EFF[$name,$mode]=0; done
done
for round in $(seq 1 "$REPEAT"); do
  for mode in $MODES; do
    for name in gslb haproxy nginx; do
      measure "$name" "$mode"
    done
  done
done

mode_label() {
  case $1 in
  tcp) echo "L4 tcp" ;; http) echo "L7 HTTP/1.1" ;; https) echo "L7 HTTPS" ;;
  h2) echo "L7 HTTP/2 (TLS, h2load)" ;; *) echo "$1" ;;
  esac
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo
echo "wrk -t1 -c$CONNS -d$DUR and h2load -t1 -c$CONNS -m$STREAMS (best of $REPEAT), $(nproc) cores, proxies on CPU $PROXY_CPU, load generator + 3 nginx backends on CPU $LOAD_CPU, $(date -u '+%Y-%m-%d %H:%M') UTC, load average (1, 5, 15 min) at the start: $load0, at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| mode | gslb req/s | gslb p99 | HAProxy req/s | HAProxy p99 | nginx req/s | nginx p99 | gslb / HAProxy |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for mode in $MODES; do
  label=$(mode_label "$mode")
  echo "| $label | ${RPS[gslb,$mode]} | ${P99[gslb,$mode]} | ${RPS[haproxy,$mode]} | ${P99[haproxy,$mode]} | ${RPS[nginx,$mode]} | ${P99[nginx,$mode]} | $(ratio "${RPS[gslb,$mode]}" "${RPS[haproxy,$mode]}") |"
done
case " $MODES " in *" h2 "*) echo; echo "HTTP/2: h2load reports no percentiles, so its column shows the mean latency." ;; esac
echo
echo "Lowest p99 latency of each proxy over the rounds (ms; the p99 of a round mostly measures other load on a busy machine):"
echo
echo "| mode | gslb | HAProxy | nginx | gslb / HAProxy |"
echo "|---|---:|---:|---:|---:|"
for mode in $MODES; do
  [ "$mode" = h2 ] && continue
  label=$(mode_label "$mode")
  echo "| $label | ${P99MIN[gslb,$mode]:--} | ${P99MIN[haproxy,$mode]:--} | ${P99MIN[nginx,$mode]:--} | $(ratio "${P99MIN[gslb,$mode]:-0}" "${P99MIN[haproxy,$mode]:-0}") |"
done
echo
echo "Requests per CPU second of the proxy process (its own user + system time; less sensitive to other load on the machine):"
echo
echo "| mode | gslb | HAProxy | nginx | gslb / HAProxy |"
echo "|---|---:|---:|---:|---:|"
for mode in $MODES; do
  label=$(mode_label "$mode")
  echo "| $label | ${EFF[gslb,$mode]} | ${EFF[haproxy,$mode]} | ${EFF[nginx,$mode]} | $(ratio "${EFF[gslb,$mode]}" "${EFF[haproxy,$mode]}") |"
done
