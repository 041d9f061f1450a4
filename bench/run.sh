#!/usr/bin/env bash
# make bench: measure pigeonpost end to end on loopback.
#
# Starts, in a temporary directory, everything pigeonpost needs, all on
# 127.0.0.1 or unix sockets:
#   redis-server      appendonly yes, appendfsync always (an OK means fsynced), unix socket
#   sink              `smtpload -sink`: the relay host; counts and discards what pigeonpost delivers
#   dnsd              answers the TXT records of the sending domain, for its verification
#   bin/pigeonpost    serve, generated config: STARTTLS listener, delivery to the sink, log level warn
# adds and verifies the sending domain bench.test (REST API + dnsd), then runs
# the workloads with cmd/smtpload over STARTTLS + AUTH PLAIN (apikey / a live key):
#   a  10 KB HTML, 20 links, X-SP-Track-Opens/Clicks: true; 20 connections x 100 messages (RSET between)
#   b  the same message, one message per connection, 20 concurrent
#   c  1 MB HTML messages, 10 connections x 20 messages
#   d  (only when asked: BENCH_WORKLOADS="d") 24 MiB HTML messages, 100 connections x 1 message,
#      all at once: the memory bound for large messages (peak RSS must stay under 1 GB);
#      under BENCH_SHORT a tiny variant, 2 MiB messages, 20 connections
#   t  (only when named in BENCH_WORKLOADS) the tracking endpoints under wrk: 200 tracked
#      emails sent through the REST API and delivered, then for 10 s each the 200 open pixels
#      and one click URL, as fast as wrk can (-c50), and paced (-c128, each connection pausing
#      5 ms: about 20,000 req/s offered), with a browser's User-Agent; prints req/s, latency
#      p50/p90/p99 and the hits recorded (pigeonpost_tracking_hits_total)
#   s  the sends API: a template on bench.test with
#      {{tokens}}; BENCH_S_BATCHES (10) POST /v1/sends/batch of BENCH_S_BATCH (1,000) recipients
#      with personalizations, one after the other: curl's time_total per request (p50/max) and
#      peak RSS; then the wait until the sink has every email (msgs/s from the first POST to
#      the last delivery, beside workload a's); then POST /v1/contacts/import of BENCH_S_IMPORT
#      (100,000) CSV rows generated into the work directory and streamed by curl: its time,
#      the count the server reports and pigeonpost's peak RSS (VmHWM reset before).
#      Issue 12's targets: a 1,000-recipient batch under 500 ms, 100,000 rows under 30 s with
#      a peak RSS under 300 MB. Short: 2 batches of 100, 5,000 rows
# and prints per workload: msgs/s accepted, dot->250 p50/p99, connection setup
# p50/p99, server CPU ms per message (pigeonpost and redis-server, from
# /proc/PID/stat), peak RSS (VmHWM, reset before each workload), delivered at the
# sink / accepted, and the delivery queue depth from /metrics at the end.
#
# Environment:
#   BENCH_SHORT=1        a run of seconds (CI): few messages per workload
#   BENCH_WORKLOADS      which workloads, default "a b c s"
#   BENCH_N_A/_B/_C/_D   messages per workload (default full: 10000 / 3000 / 400 / 100; short: 400 / 200 / 40 / 20)
#   BENCH_S_BATCHES/_BATCH/_IMPORT  workload s: batches, recipients per batch, CSV rows to import
#                        (default full: 10 / 1000 / 100000; short: 2 / 100 / 5000)
#   BENCH_SIZE_D         body size of workload d in bytes (default full: 25165824, 24 MiB, which with its
#                        header fits smtp.max_message_bytes' 25 MiB; short: 2097152)
#   BENCH_DURATION       time limit per workload (default 60s; short: 10s)
#   BENCH_DRAIN_TIMEOUT  wait for delivery after each workload, seconds (default 180; short: 30)
#   BENCH_CEILING=0      skip the ceiling runs (default: after each workload, the same workload
#                        against a STARTTLS+AUTH sink that discards, for "x ceiling" ratios that
#                        carry across machines and noise levels)
#   BENCH_WORKERS        delivery.workers (default 8, the shipped default)
#   BENCH_CERT/BENCH_KEY TLS certificate and key (default: a fresh RSA-2048 self-signed pair,
#                        the key type /work/shared/bench's peers use)
#   BENCH_OUT            directory for the JSON reports and table (default: a temp dir, kept)
#   BENCH_KEEP=1         keep the work directory (logs, config, redis data)
#   BENCH_SMTP_LISTEN    pigeonpost's smtp.listen (default 127.0.0.1:0)
#   BENCH_RELAY_HOST     deliver to this host:port instead of a sink of our own (e.g. the peers'
#                        relay sink 127.0.0.1:20026); BENCH_SINK_STATS: its stats file, for the
#                        delivered count (without it delivery is not checked)
#   BENCH_SERVE=1        set everything up, print how to send, then serve until SIGINT/SIGTERM
#                        (no workloads); BENCH_PID_DIR: write gateway.pid and gateway-redis.pid
#                        there (for /work/shared/bench/run-peers.sh's CPU accounting)
#   PIGEONPOST_BIN       the binary to run (default bin/pigeonpost, built from the working tree each run)
#   BENCH_PROFILE=DIR    run the server as the test binary of cmd/pigeonpost (BenchmarkServeProfile)
#                        and write DIR/cpu.pprof, DIR/mem.pprof and the binary DIR/pigeonpost.test;
#                        then: go tool pprof -top DIR/pigeonpost.test DIR/cpu.pprof
#   GO                   go command (default go)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
GO=${GO:-go}
SHORT=${BENCH_SHORT:-0}
WORKLOADS=${BENCH_WORKLOADS:-a b c s}
if [[ $SHORT == 1 ]]; then
  N_A=${BENCH_N_A:-400} N_B=${BENCH_N_B:-200} N_C=${BENCH_N_C:-40}
  N_D=${BENCH_N_D:-20} SIZE_D=${BENCH_SIZE_D:-2097152}
  DURATION=${BENCH_DURATION:-10s} DRAIN=${BENCH_DRAIN_TIMEOUT:-30}
  S_BATCHES=${BENCH_S_BATCHES:-2} S_BATCH=${BENCH_S_BATCH:-100} S_IMPORT=${BENCH_S_IMPORT:-5000}
else
  N_A=${BENCH_N_A:-10000} N_B=${BENCH_N_B:-3000} N_C=${BENCH_N_C:-400}
  N_D=${BENCH_N_D:-100} SIZE_D=${BENCH_SIZE_D:-25165824}
  DURATION=${BENCH_DURATION:-60s} DRAIN=${BENCH_DRAIN_TIMEOUT:-180}
  S_BATCHES=${BENCH_S_BATCHES:-10} S_BATCH=${BENCH_S_BATCH:-1000} S_IMPORT=${BENCH_S_IMPORT:-100000}
fi
WORKERS=${BENCH_WORKERS:-8}
PP_BIN=${PIGEONPOST_BIN:-$ROOT/bin/pigeonpost}
KEY=sp_live_benchbenchbenchbenchbench0001
DOMAIN=bench.test

WORK=$(mktemp -d /tmp/pigeonpost-bench.XXXXXX)
OUT=${BENCH_OUT:-$WORK/results}
mkdir -p "$OUT" "$WORK/bin" "$WORK/redis"

log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---- cleanup: stop every process we started (bench/procs.sh) ----
# shellcheck source=bench/procs.sh
source "$ROOT/bench/procs.sh"
REMOVE_ON_EXIT=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_all
  ((${#REMOVE_ON_EXIT[@]} == 0)) || rm -f "${REMOVE_ON_EXIT[@]}"
  if [[ ${BENCH_KEEP:-0} == 1 || $rc != 0 ]]; then
    log "work directory kept: $WORK"
  else
    # keep the results when they live in the work directory
    if [[ $OUT == "$WORK/results" ]]; then
      find "$WORK" -mindepth 1 -maxdepth 1 ! -name results -exec rm -rf {} +
    else
      rm -rf "$WORK"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v redis-server >/dev/null || die "redis-server not found (apt-get install -y redis-server)"

# ---- build ----
log "building smtpload, dnsd$([[ -n ${PIGEONPOST_BIN:-} ]] || echo ', pigeonpost')"
(cd "$ROOT" && $GO build -o "$WORK/bin/smtpload" ./cmd/smtpload && $GO build -o "$WORK/bin/dnsd" ./bench/dnsd) || die "build failed"
PROFILE=${BENCH_PROFILE:-}
if [[ -n $PROFILE ]]; then
  mkdir -p "$PROFILE"
  PROFILE=$(cd "$PROFILE" && pwd)
  (cd "$ROOT" && $GO test -c -o "$PROFILE/pigeonpost.test" ./cmd/pigeonpost) || die "test binary build failed"
elif [[ -z ${PIGEONPOST_BIN:-} ]]; then
  # Always (go build is incremental): a bin/pigeonpost left from an older
  # checkout would otherwise be measured in place of the code at hand.
  (cd "$ROOT" && $GO build -o "$PP_BIN" ./cmd/pigeonpost) || die "pigeonpost build failed"
fi
SMTPLOAD=$WORK/bin/smtpload
DNSD=$WORK/bin/dnsd

# ---- redis-server: AOF fsynced on every write ----
REDIS_SOCK=$WORK/redis.sock
start redis "$WORK/redis.log" redis-server --port 0 --unixsocket "$REDIS_SOCK" --unixsocketperm 700 \
  --dir "$WORK/redis" --appendonly yes --appendfsync always --no-appendfsync-on-rewrite no \
  --save '' --maxmemory-policy noeviction --daemonize no
REDIS_PID=$(last_pid)
for ((i = 0; i < 100; i++)); do
  [[ $(redis-cli -s "$REDIS_SOCK" ping 2>/dev/null) == PONG ]] && break
  kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited: $(tail -5 "$WORK/redis.log")"
  sleep 0.1
done
[[ $(redis-cli -s "$REDIS_SOCK" ping 2>/dev/null) == PONG ]] || die "redis-server does not answer"

# ---- downstream sink and DNS ----
if [[ -n ${BENCH_RELAY_HOST:-} ]]; then
  SINK_ADDR=$BENCH_RELAY_HOST SINK_PID="-" SINK_STATS=${BENCH_SINK_STATS:-}
else
  start sink "$WORK/sink.log" "$SMTPLOAD" -sink -addr 127.0.0.1:0 -addr-file "$WORK/sink.addr" -stats-file "$WORK/sink.json"
  SINK_PID=$(last_pid)
  wait_file "$WORK/sink.addr" 10 "$SINK_PID" || die "sink did not start: $(cat "$WORK/sink.log")"
  SINK_ADDR=$(cat "$WORK/sink.addr") SINK_STATS=$WORK/sink.json
fi

echo '{}' >"$WORK/records.json"
start dnsd "$WORK/dnsd.log" "$DNSD" serve -addr 127.0.0.1:0 -addr-file "$WORK/dns.addr" -records "$WORK/records.json"
DNS_PID=$(last_pid)
wait_file "$WORK/dns.addr" 10 "$DNS_PID" || die "dnsd did not start: $(cat "$WORK/dnsd.log")"
DNS_ADDR=$(cat "$WORK/dns.addr")

# ---- TLS certificate ----
CERT=${BENCH_CERT:-}
TLSKEY=${BENCH_KEY:-}
if [[ -z $CERT ]] && command -v openssl >/dev/null; then
  CERT=$WORK/cert.pem TLSKEY=$WORK/key.pem
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,DNS:bench.localdomain,IP:127.0.0.1" \
    -keyout "$TLSKEY" -out "$CERT" >/dev/null 2>&1 || die "openssl failed"
fi

# ---- pigeonpost ----
gateway_yaml "${BENCH_SMTP_LISTEN:-127.0.0.1:0}" "  url: \"unix://${REDIS_SOCK}\"" >"$WORK/pigeonpost.yaml"
if [[ -n $PROFILE ]]; then
  PIGEONPOST_PROFILE_CONFIG=$WORK/pigeonpost.yaml PIGEONPOST_PROFILE_READY=$WORK/ready.json \
    start pigeonpost "$WORK/pigeonpost.log" "$PROFILE/pigeonpost.test" -test.run '^$' \
    -test.bench '^BenchmarkServeProfile$' -test.benchtime 1x \
    -test.cpuprofile "$PROFILE/cpu.pprof" -test.memprofile "$PROFILE/mem.pprof" -test.outputdir "$PROFILE"
else
  start pigeonpost "$WORK/pigeonpost.log" "$PP_BIN" serve --config "$WORK/pigeonpost.yaml" --ready-file "$WORK/ready.json"
fi
PP_PID=$(last_pid)
wait_file "$WORK/ready.json" 30 "$PP_PID" || die "pigeonpost did not start: $(tail -20 "$WORK/pigeonpost.log")"
SMTP_ADDR=$(json_field smtp "$WORK/ready.json")
HTTP_ADDR=$(json_field http "$WORK/ready.json")
log "pigeonpost pid $PP_PID: smtp $SMTP_ADDR, http $HTTP_ADDR; redis pid $REDIS_PID; sink $SINK_ADDR (pid $SINK_PID); dns $DNS_ADDR"
if command -v curl >/dev/null; then
  health=$(curl -s -o /dev/null -w '%{http_code}' "http://$HTTP_ADDR/healthz" || true)
  [[ $health == 200 ]] || log "WARNING: /healthz answers $health (Redis not durable?): $(curl -s "http://$HTTP_ADDR/healthz" || true)"
fi

# ---- sending domain ----
"$DNSD" domain -api "http://$HTTP_ADDR" -key "$KEY" -name "$DOMAIN" -records "$WORK/records.json" >&2 \
  || die "could not verify $DOMAIN"

# ---- serve only ----
if [[ ${BENCH_SERVE:-0} == 1 ]]; then
  trap 'exit 0' INT TERM # the normal way to stop serving
  if [[ -n ${BENCH_PID_DIR:-} ]]; then
    echo "$PP_PID" >"$BENCH_PID_DIR/gateway.pid"
    echo "$REDIS_PID" >"$BENCH_PID_DIR/gateway-redis.pid"
    REMOVE_ON_EXIT+=("$BENCH_PID_DIR/gateway.pid" "$BENCH_PID_DIR/gateway-redis.pid")
  fi
  cat <<EOF
pigeonpost is serving (pid $PP_PID; redis-server pid $REDIS_PID; delivering to $SINK_ADDR):
  SMTP $SMTP_ADDR (STARTTLS), user apikey, password $KEY, sender bench@$DOMAIN (verified)
  HTTP http://$HTTP_ADDR (/metrics, /healthz)
  e.g. $SMTPLOAD -addr $SMTP_ADDR -starttls -user apikey -pass $KEY -from bench@$DOMAIN -n 100
Stop with SIGINT or SIGTERM (pid $$).
EOF
  while kill -0 "$PP_PID" 2>/dev/null; do sleep 1; done
  die "pigeonpost exited: $(tail -5 "$WORK/pigeonpost.log")"
fi

# ---- workloads ----
COMMON=(-addr "$SMTP_ADDR" -starttls -user apikey -pass "$KEY" -from "bench@$DOMAIN" -to rcpt@example.net
  -html -links 20 -header "X-SP-Track-Opens: true" -header "X-SP-Track-Clicks: true"
  -duration "$DURATION" -grace 10s)
OBSERVE=(-pid "pigeonpost=$PP_PID" -pid "redis=$REDIS_PID" -metrics "http://$HTTP_ADDR/metrics" -drain-timeout "${DRAIN}s")
SINKF=()
[[ -n $SINK_STATS ]] && SINKF=(-sink-stats "$SINK_STATS")
OBSERVE+=("${SINKF[@]}")
workload_flags() {
  case $1 in
    a) W=(-size 10240 -c 20 -per-conn 100 -n "$N_A") ;;
    b) W=(-size 10240 -c 20 -per-conn 1 -n "$N_B") ;;
    c) W=(-size 1048576 -c 10 -per-conn 20 -n "$N_C") ;;
    # Every connection sends its message at once (-c = -n): a server that makes
    # some of them wait must not make them time out, hence the long -timeout
    # (per command, so per whole message body), -duration and -grace.
    d) W=(-size "$SIZE_D" -c "$N_D" -per-conn 1 -n "$N_D" -timeout 300s -duration 600s -grace 300s) ;;
    *) die "unknown workload $1" ;;
  esac
}

# tracking_workload runs workload t (see the top of this file).
tracking_workload() {
  command -v wrk >/dev/null || die "workload t needs wrk (apt-get install -y wrk)"
  command -v curl >/dev/null || die "workload t needs curl"
  local ids=$WORK/track-ids.txt i id click run
  : >"$ids"
  log "workload t: sending 200 tracked emails"
  for ((i = 0; i < 200; i++)); do
    curl -sf -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' "http://$HTTP_ADDR/v1/emails" \
      -d '{"from":"bench@'"$DOMAIN"'","to":"rcpt'"$i"'@example.net","subject":"t","html":"<p><a href=\"https://example.net/'"$i"'\">a link</a></p>","tracking":{"opens":true,"clicks":true}}' |
      sed -n 's/.*"id":"\(em_[^"]*\)".*/\1/p' >>"$ids"
  done
  (($(wc -l <"$ids") == 200)) || die "workload t: sending through the REST API failed"
  id=$(head -1 "$ids")
  # The click URL as stored: quoted-printable soft line breaks joined.
  click=$(curl -sf -H "Authorization: Bearer $KEY" "http://$HTTP_ADDR/v1/emails/$id/content" | tr -d '\r' |
    sed -e ':a' -e '/=$/{N;s/=\n//;ba}' | grep -o '/v1/track/click/em_[A-Za-z0-9._-]*' | head -1)
  [[ -n $click ]] || die "workload t: no click URL in $id"
  # Hits within tracking.bot_window (3 s) of the delivery count as prefetches: wait it out.
  sleep 4
  cat >"$WORK/pixels.lua" <<LUA
local ids = {}
for line in io.lines("$ids") do ids[#ids + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/v1/track/open/" .. ids[(i % #ids) + 1])
end
LUA
  cat >"$WORK/paced-pixels.lua" <<LUA
dofile("$WORK/pixels.lua")
delay = function() return 5 end
LUA
  echo 'delay = function() return 5 end' >"$WORK/paced.lua"
  local ua="User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
  {
    echo "| run | req/s | p50 / p90 / p99 ms | non-2xx/3xx |"
    echo "|---|---|---|---|"
    for run in "pixel -c50:50:$WORK/pixels.lua:/" "click -c50:50::$click" "pixel paced -c128:128:$WORK/paced-pixels.lua:/" "click paced -c128:128:$WORK/paced.lua:$click"; do
      IFS=: read -r name conns script path <<<"$run"
      wrk -t2 -c"$conns" -d10s --latency -H "$ua" ${script:+-s "$script"} "http://$HTTP_ADDR$path" >"$WORK/wrk.out" 2>&1 ||
        die "wrk failed: $(cat "$WORK/wrk.out")"
      awk -v name="$name" '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        $1 == "50%" { p50 = ms($2) } $1 == "90%" { p90 = ms($2) } $1 == "99%" { p99 = ms($2) }
        /Requests\/sec/ { rps = $2 } /Non-2xx/ { bad = $NF }
        END { printf "| %s | %.0f | %.2f / %.2f / %.2f | %d |\n", name, rps, p50, p90, p99, bad }' "$WORK/wrk.out"
    done
  } | tee "$OUT/t.md"
  sleep 2
  echo "hits: $(curl -s "http://$HTTP_ADDR/metrics" | grep '^pigeonpost_tracking_hits' | tr '\n' ' ')" | tee -a "$OUT/t.md"
}

# vmhwm_reset PID / vmhwm_mb PID: the peak RSS of PID, as smtpload -pid does it.
vmhwm_reset() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || log "WARNING: cannot reset VmHWM of pid $1"; }
vmhwm_mb() { awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
sink_messages() { sed -n 's/.*"messages": *\([0-9]*\).*/\1/p' "$SINK_STATS" 2>/dev/null || true; }

# sends_workload runs workload s (see the top of this file).
sends_workload() {
  command -v curl >/dev/null || die "workload s needs curl"
  local api="http://$HTTP_ADDR/api/v1" tpl b i t0 t1 before n out rows csv status
  local auth=(-H "X-API-Key: ${KEY/sp_live_/pp_live_}")
  log "workload s: template, $S_BATCHES batches of $S_BATCH recipients, import of $S_IMPORT CSV rows"
  tpl=$(curl -sf "${auth[@]}" -H 'Content-Type: application/json' "$api/templates" -d '{"name":"bench-order",
    "from":"Bench <bench@'"$DOMAIN"'>","subject":"Order {{order_id}} for {{first_name}}",
    "html":"<p>Hello {{first_name}},</p><p>your order {{order_id}} of {{total}} has shipped: <a href=\"https://example.net/track/{{order_id}}\">track it</a>.</p>",
    "text":"Hello {{first_name}}, your order {{order_id}} of {{total}} has shipped."}' |
    sed -n 's/.*"id":"\([^"]*\)".*/\1/p' | head -1)
  [[ -n $tpl ]] || die "workload s: POST /api/v1/templates failed"

  # The request bodies, written before the clock starts.
  for ((b = 0; b < S_BATCHES; b++)); do
    awk -v b="$b" -v n="$S_BATCH" -v tpl="$tpl" 'BEGIN {
      printf "{\"templateId\":\"%s\",\"recipients\":[", tpl
      for (i = 0; i < n; i++)
        printf "%s{\"to\":\"s%d-%d@example.net\",\"personalizations\":{\"first_name\":\"Customer %d\",\"order_id\":\"ORD-%d-%d\",\"total\":%d.%02d}}",
          (i ? "," : ""), b, i, i, b, i, i % 500, i % 100
      printf "]}\n" }' >"$WORK/batch-$b.json"
  done
  before=$(sink_messages)
  vmhwm_reset "$PP_PID"
  : >"$OUT/s-batch-seconds.txt"
  t0=$(date +%s.%N)
  for ((b = 0; b < S_BATCHES; b++)); do
    status=$(curl -s -o "$WORK/batch-$b.out" -w '%{http_code} %{time_total}' "${auth[@]}" \
      -H 'Content-Type: application/json' --data-binary "@$WORK/batch-$b.json" "$api/sends/batch")
    [[ ${status%% *} == 200 ]] || die "workload s: batch $b answered $status: $(head -c 300 "$WORK/batch-$b.out")"
    n=$({ grep -o '"id":"em_' "$WORK/batch-$b.out" || true; } | wc -l)
    ((n == S_BATCH)) || die "workload s: batch $b: $n of $S_BATCH recipients sent: $(grep -o '"error":{[^}]*}' "$WORK/batch-$b.out" | head -3)"
    echo "${status#* }" >>"$OUT/s-batch-seconds.txt"
  done
  local sent=$((S_BATCHES * S_BATCH)) rss_batches delivered=-1 drain_s=""
  rss_batches=$(vmhwm_mb "$PP_PID")
  if [[ -n $SINK_STATS && -n $before ]]; then
    for ((i = 0; i < DRAIN * 10; i++)); do
      delivered=$(($(sink_messages) - before))
      ((delivered >= sent)) && break
      sleep 0.1
    done
    t1=$(date +%s.%N)
    drain_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  fi

  # The import: a CSV file generated into the work directory, streamed by curl.
  csv=$WORK/contacts.csv
  awk -v n="$S_IMPORT" 'BEGIN {
    print "email,first_name,last_name,company,tags,plan"
    for (i = 0; i < n; i++) printf "import%d@example.org,First%d,Last%d,Company %d,bench;import,plan%d\n", i, i, i, i % 1000, i % 3
  }' >"$csv"
  vmhwm_reset "$PP_PID"
  status=$(curl -s -o "$WORK/import.out" -w '%{http_code} %{time_total}' "${auth[@]}" -H 'Content-Type: text/csv' \
    -T "$csv" -X POST "$api/contacts/import")
  local rss_import
  rss_import=$(vmhwm_mb "$PP_PID")
  [[ ${status%% *} == 200 ]] || die "workload s: import answered $status: $(head -c 300 "$WORK/import.out")"
  rows=$(sed -n 's/.*"created":\([0-9]*\),"updated":\([0-9]*\),"failed":\([0-9]*\).*/created \1, updated \2, failed \3/p' "$WORK/import.out")

  {
    echo "| workload s | figure |"
    echo "|---|---|"
    sort -n "$OUT/s-batch-seconds.txt" | awk -v n="$S_BATCH" -v first="$(head -1 "$OUT/s-batch-seconds.txt")" '{ t[NR] = $1 * 1000 }
      END { printf "| POST /v1/sends/batch, %d requests of %d recipients | p50 %.0f ms, max %.0f ms (the first, before any delivery: %.0f ms) |\n",
        NR, n, t[int((NR + 1) / 2)], t[NR], first * 1000 }'
    if ((delivered >= 0)); then
      awk -v n="$delivered" -v sent="$sent" -v s="$drain_s" 'BEGIN {
        printf "| delivered at the sink, first POST to last delivery | %d/%d in %.1f s: %.0f msgs/s |\n", n, sent, s, n / s }'
    fi
    [[ -s $OUT/a.json ]] && sed -n 's/.*"msgs_per_s": *\([0-9.]*\).*/| workload a (SMTP), for comparison | \1 msgs\/s accepted |/p' "$OUT/a.json" | head -1
    echo "| pigeonpost peak RSS during the batches and their delivery | $rss_batches MB |"
    awk -v n="$S_IMPORT" -v t="${status#* }" -v r="$rows" -v b="$(stat -c %s "$csv")" 'BEGIN {
      printf "| POST /v1/contacts/import, %d CSV rows (%.1f MB) | %.1f s (%.0f rows/s): %s |\n", n, b / 1048576, t, n / t, r }'
    echo "| pigeonpost peak RSS during the import | $rss_import MB |"
  } | tee "$OUT/s.md"
}

CEILING=${BENCH_CEILING:-1}
if [[ $CEILING == 1 ]]; then
  CEILF=()
  [[ -n $CERT ]] && CEILF=(-cert "$CERT" -key "$TLSKEY")
  start ceiling "$WORK/ceiling.log" "$SMTPLOAD" -sink -addr 127.0.0.1:0 -addr-file "$WORK/ceiling.addr" \
    -starttls -user bench -pass benchpass "${CEILF[@]}"
  CEIL_PID=$(last_pid)
  wait_file "$WORK/ceiling.addr" 10 "$CEIL_PID" || die "ceiling sink did not start: $(cat "$WORK/ceiling.log")"
  CEIL_ADDR=$(cat "$WORK/ceiling.addr")
fi

log "warm-up: 200 messages (not recorded)"
"$SMTPLOAD" "${COMMON[@]}" -size 10240 -c 20 -per-conn 100 -n 200 -q "${SINKF[@]}" \
  -drain-timeout "${DRAIN}s" -json /dev/null || die "warm-up failed: see $WORK/pigeonpost.log"

{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
  echo "kernel: $(uname -r); cpus: $(nproc); $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null || true)"
  echo "go: $($GO version | awk '{print $3}'); $(redis-server --version | awk '{print $1, $2, $3}')"
  echo "mode: $([[ $SHORT == 1 ]] && echo short || echo full); n a/b/c/d: $N_A/$N_B/$N_C/$N_D (d: $SIZE_D bytes); duration $DURATION; delivery.workers $WORKERS"
  echo "loadavg at start: $(cat /proc/loadavg)"
} | tee "$OUT/env.txt" >&2

FILES=()
for w in $WORKLOADS; do
  if [[ $w == t ]]; then
    tracking_workload
    continue
  fi
  if [[ $w == s ]]; then
    sends_workload
    continue
  fi
  workload_flags "$w"
  f=$OUT/$w.json
  log "workload $w: ${W[*]}"
  "$SMTPLOAD" "${COMMON[@]}" "${W[@]}" "${OBSERVE[@]}" -label "pigeonpost/$w" -json "$f" >&2 \
    || log "workload $w: nothing accepted (see $WORK/pigeonpost.log)"
  [[ -s $f ]] && FILES+=("$f")
  if [[ $CEILING == 1 ]]; then
    f=$OUT/$w-ceiling.json
    "$SMTPLOAD" "${COMMON[@]}" -addr "$CEIL_ADDR" -user bench -pass benchpass "${W[@]}" -pid "sink=$CEIL_PID" \
      -label "ceiling/$w" -json "$f" >&2 || log "workload $w: the ceiling sink accepted nothing"
    [[ -s $f ]] && FILES+=("$f")
  fi
done
echo "loadavg at end: $(cat /proc/loadavg)" >>"$OUT/env.txt"

grep -E 'level=(ERROR|WARN)' "$WORK/pigeonpost.log" | grep -v 'self-signed' | sort | uniq -c | sort -rn | head -5 >&2 || true
echo
((${#FILES[@]} == 0)) || "$SMTPLOAD" -report "${FILES[@]}" | tee "$OUT/table.md"
echo
[[ $CEILING == 1 ]] && echo "ceiling = the same client against a STARTTLS+AUTH sink that discards (smtpload -sink), same certificate; x ceiling = msgs/s ratio."
echo "server CPU = utime+stime from /proc/PID/stat over the load window / until delivery ended; peak RSS = VmHWM, reset before each workload."
echo "results: $OUT"
if [[ -n $PROFILE ]]; then
  stop_all # SIGTERM: the test binary writes its profiles
  echo "profiles: go tool pprof -top $PROFILE/pigeonpost.test $PROFILE/cpu.pprof"
fi
