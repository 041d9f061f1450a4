#!/usr/bin/env bash
# make scale: one gateway on one Redis beside a fleet of three gateways on a
# Redis Cluster, then faults in the fleet (issue 15).
#
# Everything on 127.0.0.1 or unix sockets, in a temporary directory, as bench/run.sh:
#   sink     `smtpload -sink -ledger`: the relay host of every gateway; counts what is
#            delivered and writes the X-Smtpload-Id of each message to a ledger
#   dnsd     the TXT records of the sending domain bench.test, for its verification
# and three runs of workload (a) of bench/run.sh (10 KB HTML, 20 links, opens and clicks
# tracked, STARTTLS + AUTH PLAIN, 20 connections x 100 messages, RSET between), each for
# SCALE_DURATION, then a bounded wait for the queue to drain:
#   1 baseline  one redis-server (appendfsync always, unix socket), one bin/pigeonpost
#   2 fleet     a Redis Cluster of 3 masters with one replica each (6 redis-server on
#               loopback TCP ports, --cluster-enabled yes, appendfsync always, made by
#               `redis-cli --cluster create … --cluster-replicas 1`), 3 bin/pigeonpost with
#               redis.addrs + redis.cluster: true; smtpload spreads the connections over
#               the three SMTP listeners (round-robin per connection)
#   3 faults    the same fleet and load again; SCALE_KILL_AT into the run, kill -9 one
#               gateway and the Redis master that holds the mail's hash slot ({q}); its
#               replica is promoted by the cluster, and the killed one is started again once it
#               has (SCALE_RESTART_NODE); the load goes on against the rest
# Per run it prints msgs/s accepted, msgs/s delivered at the sink while the load ran and
# end to end (until the queue drained), and the server CPU per accepted message with its
# delivery (utime+stime from /proc/PID/stat of the gateways, every redis-server and the
# sink, from the start of the load until the drain ended), then the CPU ratio fleet /
# baseline (the issue's bound: no more than +15 %), and, for every run, the ledgers:
# acked= delivered= lost= dup= (an id answered 250 and never delivered is lost; dup counts
# the deliveries beyond the first of an id). Exit status 1 when a run lost a message.
#
# Environment:
#   SCALE_DURATION          load time per run (default 20s)
#   SCALE_DRAIN_TIMEOUT     wait for delivery after each run, seconds (default 90)
#   SCALE_CONNS             concurrent SMTP connections (default 20, workload a's)
#   SCALE_WORKERS           delivery.workers of each gateway (default 8, the shipped default)
#   SCALE_NODE_TIMEOUT_MS   cluster-node-timeout of the cluster (default 2000, as the tests)
#   SCALE_SHARDS            redis.shards of the fleet (default 3: one per master)
#   SCALE_MIN_REPLICAS_ACKED  redis.min_replicas_acked of the fleet (default 1: a 250 waits for a
#                           replica, so that a master's failover cannot lose it; 0 = off)
#   SCALE_KILL_AT           seconds into the fault run at which the kills happen (default: a third
#                           of SCALE_DURATION)
#   SCALE_RESTART_NODE      1 (default): once a replica has taken over, start the killed Redis master
#                           again (it rejoins as a replica); 0: leave it dead
#   SCALE_RUNS              which runs, default "baseline fleet faults"
#   (with perf on the machine, each run also counts the redis-servers' fdatasync calls: with
#   appendfsync always, one per event-loop pass that wrote, the cost that group commit saves)
#   SCALE_KEEP=1            keep the work directory (logs, configs, ledgers, redis data)
#   SCALE_PROFILE=N         take an N-second CPU profile of the first gateway of the baseline and
#                           of the fleet, from a few seconds into the load (out/RUN.pprof; kept
#                           with the work directory, so set SCALE_KEEP=1 too)
#   PIGEONPOST_BIN          the binary to run (default bin/pigeonpost, built from the working tree)
#   GO                      go command (default go)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
GO=${GO:-go}
DURATION=${SCALE_DURATION:-20s}
SHARDS=${SCALE_SHARDS:-3}
DRAIN=${SCALE_DRAIN_TIMEOUT:-90}
CONNS=${SCALE_CONNS:-20}
WORKERS=${SCALE_WORKERS:-8}
NODE_TIMEOUT=${SCALE_NODE_TIMEOUT_MS:-2000}
MIN_ACKED=${SCALE_MIN_REPLICAS_ACKED:-1}
DUR_S=${DURATION%s}
[[ $DUR_S =~ ^[0-9]+$ ]] || { echo "SCALE_DURATION must be whole seconds, e.g. 20s" >&2; exit 2; }
KILL_AT=${SCALE_KILL_AT:-$((DUR_S / 3))}
RUNS=${SCALE_RUNS:-baseline fleet faults}
RESTART=${SCALE_RESTART_NODE:-1}
PP_BIN=${PIGEONPOST_BIN:-$ROOT/bin/pigeonpost}
KEY=sp_live_benchbenchbenchbenchbench0001
DOMAIN=bench.test

WORK=$(mktemp -d /tmp/pigeonpost-scale.XXXXXX)
mkdir -p "$WORK/bin" "$WORK/out"

log() { echo "[scale $(date +%H:%M:%S)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---- cleanup: stop every process we started (bench/procs.sh) ----
# shellcheck source=bench/procs.sh
source "$ROOT/bench/procs.sh"
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -s $WORK/restarted.pid ]] && PIDS+=("$(cat "$WORK/restarted.pid")") NAMES+=("restarted redis-server")
  stop_all
  if [[ ${SCALE_KEEP:-0} == 1 || $rc != 0 ]]; then
    log "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v redis-server >/dev/null || die "redis-server not found (apt-get install -y redis-server)"
command -v redis-cli >/dev/null || die "redis-cli not found (apt-get install -y redis-tools)"
command -v jq >/dev/null || die "jq not found (apt-get install -y jq)"
command -v openssl >/dev/null || die "openssl not found"

# ---- build ----
log "building smtpload, dnsd$([[ -n ${PIGEONPOST_BIN:-} ]] || echo ', pigeonpost')"
(cd "$ROOT" && $GO build -o "$WORK/bin/smtpload" ./cmd/smtpload && $GO build -o "$WORK/bin/dnsd" ./bench/dnsd) || die "build failed"
if [[ -z ${PIGEONPOST_BIN:-} ]]; then
  (cd "$ROOT" && $GO build -o "$PP_BIN" ./cmd/pigeonpost) || die "pigeonpost build failed"
fi
SMTPLOAD=$WORK/bin/smtpload
DNSD=$WORK/bin/dnsd

# ---- sink, DNS, certificate: shared by every run ----
DELIVERED=$WORK/delivered.ids
start sink "$WORK/sink.log" "$SMTPLOAD" -sink -addr 127.0.0.1:0 -addr-file "$WORK/sink.addr" \
  -stats-file "$WORK/sink.json" -ledger "$DELIVERED"
SINK_PID=$(last_pid)
wait_file "$WORK/sink.addr" 10 "$SINK_PID" || die "sink did not start: $(cat "$WORK/sink.log")"
SINK_ADDR=$(cat "$WORK/sink.addr")

echo '{}' >"$WORK/records.json"
start dnsd "$WORK/dnsd.log" "$DNSD" serve -addr 127.0.0.1:0 -addr-file "$WORK/dns.addr" -records "$WORK/records.json"
wait_file "$WORK/dns.addr" 10 "$(last_pid)" || die "dnsd did not start: $(cat "$WORK/dnsd.log")"
DNS_ADDR=$(cat "$WORK/dns.addr")

CERT=$WORK/cert.pem TLSKEY=$WORK/key.pem
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,DNS:bench.localdomain,IP:127.0.0.1" \
  -keyout "$TLSKEY" -out "$CERT" >/dev/null 2>&1 || die "openssl failed"

# ---- redis-server ----
REDIS_COMMON=(--appendonly yes --appendfsync always --no-appendfsync-on-rewrite no --save ''
  --maxmemory-policy noeviction --daemonize no)

# wait_redis NAME PID ARGS...: until redis-cli ARGS ping answers
wait_redis() {
  local name=$1 pid=$2 i
  shift 2
  for ((i = 0; i < 100; i++)); do
    [[ $(redis-cli "$@" ping 2>/dev/null) == PONG ]] && return 0
    kill -0 "$pid" 2>/dev/null || die "$name exited: $(tail -5 "$WORK/$name.log")"
    sleep 0.1
  done
  die "$name does not answer"
}

# free_port_pair sets PORT to a port P with P and P+10000 (the cluster bus) free on 127.0.0.1,
# both below the kernel's ephemeral range (32768-) so that no outgoing connection takes them.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
NEXT_PORT=$((12000 + RANDOM % 9000))
free_port_pair() {
  while ! port_free "$NEXT_PORT" || ! port_free $((NEXT_PORT + 10000)); do NEXT_PORT=$((NEXT_PORT + 1)); done
  PORT=$NEXT_PORT
  NEXT_PORT=$((NEXT_PORT + 1))
}

# ---- gateways ----
# gateway NAME REDIS_YAML: start bin/pigeonpost with a generated config; sets GW_PID, GW_SMTP,
# GW_HTTP, GW_ADMIN
gateway() {
  local name=$1 redis_yaml=$2
  gateway_yaml "127.0.0.1:0" "$redis_yaml" >"$WORK/$name.yaml"
  start "$name" "$WORK/$name.log" "$PP_BIN" serve --config "$WORK/$name.yaml" --ready-file "$WORK/$name.ready"
  GW_PID=$(last_pid)
  wait_file "$WORK/$name.ready" 30 "$GW_PID" || die "$name did not start: $(tail -20 "$WORK/$name.log")"
  GW_SMTP=$(json_field smtp "$WORK/$name.ready")
  GW_HTTP=$(json_field http "$WORK/$name.ready")
  GW_ADMIN=$(json_field admin "$WORK/$name.ready")
  log "$name pid $GW_PID: smtp $GW_SMTP, http $GW_HTTP"
  local health
  health=$(curl -s -o /dev/null -w '%{http_code}' "http://$GW_HTTP/healthz" || true)
  [[ $health == 200 ]] || log "WARNING: $name /healthz answers $health: $(curl -s "http://$GW_HTTP/healthz" || true)"
}

verify_domain() {
  "$DNSD" domain -api "http://$1" -key "$KEY" -name "$DOMAIN" -records "$WORK/records.json" >&2 ||
    die "could not verify $DOMAIN"
}

# ---- the load ----
LOAD=(-starttls -user apikey -pass "$KEY" -from "bench@$DOMAIN" -to rcpt@example.net
  -html -links 20 -header "X-SP-Track-Opens: true" -header "X-SP-Track-Clicks: true"
  -size 10240 -c "$CONNS" -per-conn 100 -n 10000000 -duration "$DURATION" -grace 10s)

warm_up() {
  log "warm-up: 200 messages (not recorded)"
  "$SMTPLOAD" "${LOAD[@]}" -addr "$1" -n 200 -q -sink-stats "$WORK/sink.json" -drain-timeout "${DRAIN}s" \
    -json /dev/null || die "warm-up failed: see $WORK/*.log"
}

# wait_ledger RUN: until every acknowledged id of RUN is at the sink, at most SCALE_DRAIN_TIMEOUT
wait_ledger() {
  local i
  for ((i = 0; i < DRAIN * 2; i++)); do
    "$SMTPLOAD" -ledger-check "$WORK/out/$1.acked" "$DELIVERED" >/dev/null && return 0
    sleep 0.5
  done
  return 1
}

LOST=0
# figures RUN: the run's line from its JSON report and its ledgers
figures() {
  local run=$1 f=$WORK/out/$1.json check
  check=$("$SMTPLOAD" -ledger-check "$WORK/out/$run.acked" "$DELIVERED") || LOST=1
  jq -r --arg run "$run" --arg check "$check" '
    def r(x; n): (x * pow(10; n) | round) / pow(10; n);
    def cpu(sel): ([.server.procs[] | select(.name | test(sel)) | .cpu_s_with_drain] | add // 0);
    .server.delivery as $d | .accepted as $n |
    ($d.delivered_at_load_end / .wall_s) as $dl |
    ($d.delivered / (.wall_s + $d.drain_s)) as $e2e |
    (1000 * cpu(".") / $n) as $all |
    "\($run): accepted \($n) in \(.wall_s) s = \(.msgs_per_s) msgs/s (failed \(.failed)); " +
    "delivered \($d.delivered_at_load_end) during the load = \(r($dl; 1)) msgs/s, \($d.delivered) until drained " +
    "(\($d.drain_s) s after the load\(if $d.drained then "" else ", DID NOT DRAIN" end)) = \(r($e2e; 1)) msgs/s end to end\n" +
    "  server CPU \(r($all; 3)) ms/msg with delivery: gateways \(r(1000 * cpu("^gateway") / $n; 3)), " +
    "redis \(r(1000 * cpu("^redis") / $n; 3)) (replicas \(r(1000 * cpu("^redis-replica") / $n; 3))), sink \(r(1000 * cpu("^sink") / $n; 3))\n" +
    "  ledger: \($check)\n" +
    "  errors: \(.errors)"' "$f"
  [[ -s $WORK/out/$run.fsync ]] &&
    awk -v n="$(jq -r .accepted "$f")" '{ t += $2; if ($1 ~ /replica/) r += $2 } END {
      printf "  AOF fsyncs per message with delivery (perf): %.2f (replicas %.2f)\n", t / n, r / n }' "$WORK/out/$run.fsync"
  [[ -s $WORK/out/$run.commands ]] &&
    echo "  redis commands per message (masters): $(awk '$2 >= 0.05 { printf "%s %s, ", $1, $2 }' "$WORK/out/$run.commands" | sed 's/, $//')"
  jq -r '(.server.procs | map(.cpu_s_with_drain) | add) * 1000 / .accepted' "$f" >"$WORK/out/$run.cpu"
  jq -r '(.server.procs | map(select(.name | test("^redis-replica") | not) | .cpu_s_with_drain) | add) * 1000 / .accepted' "$f" >"$WORK/out/$run.cpu-noreplica"
}

# profile RUN ADMIN: with SCALE_PROFILE set, in the background, a CPU profile of the gateway whose
# admin listener is ADMIN, taken 3 s into the load, to out/RUN.pprof
profile() {
  [[ -n ${SCALE_PROFILE:-} ]] || return 0
  (sleep 3 && curl -s -o "$WORK/out/$1.pprof" "http://$2/debug/pprof/profile?seconds=$SCALE_PROFILE" &&
    log "profile of $1: $WORK/out/$1.pprof") &
}

# Redis commands per message: reset_stats before a run's load, command_stats after it writes
# out/RUN.commands, the calls of each command summed over the masters (the redis-cli
# arguments of each are in REDIS_TARGETS, one "-p PORT" or "-s SOCKET" each) per accepted message.
REDIS_TARGETS=()
reset_stats() {
  local t
  for t in "${REDIS_TARGETS[@]}"; do redis-cli $t config resetstat >/dev/null; done
}
command_stats() {
  local t n
  n=$(jq -r .accepted "$WORK/out/$1.json" 2>/dev/null || echo 0)
  ((n > 0)) || return 0
  for t in "${REDIS_TARGETS[@]}"; do
    if [[ $(redis-cli $t role 2>/dev/null | head -1) == master ]]; then redis-cli $t info commandstats; fi
  done | tr -d '\r' | sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),.*/\1 \2/p' |
    awk -v n="$n" '{ c[$1] += $2; t += $2 } END { for (k in c) printf "%-24s %6.2f\n", k, c[k] / n; printf "%-24s %6.2f\n", "(all)", t / n }' |
    sort -k2 -rn >"$WORK/out/$1.commands"
}

# fsync_start RUN PIDSPEC... and fsync_stop RUN: with perf on the machine, count the
# fdatasync calls (AOF fsyncs) of each redis-server among the PIDSPECs ("-pid NAME=PID"
# pairs, as load takes them) from the start of the load until the drain ended, to
# out/RUN.fsync, "NAME COUNT" lines
FSYNC_PID="" FSYNC_NAMES=() FSYNC_PIDS=()
fsync_start() {
  local run=$1 a
  shift
  FSYNC_PID="" FSYNC_NAMES=() FSYNC_PIDS=()
  command -v perf >/dev/null || return 0
  for a in "$@"; do
    [[ $a == redis*=* ]] || continue
    FSYNC_NAMES+=("${a%%=*}") FSYNC_PIDS+=("${a#*=}")
  done
  ((${#FSYNC_PIDS[@]})) || return 0
  perf stat -x, --per-thread -e syscalls:sys_enter_fdatasync -p "$(IFS=,; echo "${FSYNC_PIDS[*]}")" \
    -o "$WORK/out/$run.perf" >/dev/null 2>&1 &
  FSYNC_PID=$!
}
fsync_stop() {
  local i
  [[ -n $FSYNC_PID ]] || return 0
  kill -INT "$FSYNC_PID" 2>/dev/null || true
  wait "$FSYNC_PID" 2>/dev/null || true
  for i in "${!FSYNC_PIDS[@]}"; do
    echo "${FSYNC_NAMES[$i]} $(grep -m1 "^redis-server-${FSYNC_PIDS[$i]}," "$WORK/out/$1.perf" | cut -d, -f2)"
  done | awk '$2 ~ /^[0-9]+$/' >"$WORK/out/$1.fsync"
}

# load RUN ADDRS PIDSPEC...: one run of workload a with its ledger
load() {
  local run=$1 addrs=$2
  shift 2
  log "run $run: workload a against $addrs for $DURATION"
  fsync_start "$run" "$@"
  "$SMTPLOAD" "${LOAD[@]}" -addr "$addrs" -ledger "$WORK/out/$run.acked" -label "scale/$run" \
    "$@" -pid "sink=$SINK_PID" -sink-stats "$WORK/sink.json" -drain-timeout "${DRAIN}s" \
    -json "$WORK/out/$run.json" >"$WORK/out/$run.txt" 2>&1 || log "run $run: nothing accepted"
  fsync_stop "$run"
  cat "$WORK/out/$run.txt" >&2
}

{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
  echo "kernel: $(uname -r); cpus: $(nproc); $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null || true)"
  echo "go: $($GO version | awk '{print $3}'); $(redis-server --version | awk '{print $1, $2, $3}')"
  echo "duration $DURATION per run; $CONNS connections; delivery.workers $WORKERS per gateway; cluster-node-timeout ${NODE_TIMEOUT} ms; fleet redis.shards $SHARDS, redis.min_replicas_acked $MIN_ACKED"
  echo "loadavg at start: $(cat /proc/loadavg)"
} | tee "$WORK/out/env.txt" >&2

RESULTS=()

# ---- 1: baseline ----
if [[ " $RUNS " == *" baseline "* ]]; then
  sock=$WORK/redis.sock
  mkdir -p "$WORK/redis"
  start redis "$WORK/redis.log" redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 --dir "$WORK/redis" "${REDIS_COMMON[@]}"
  R_PID=$(last_pid)
  wait_redis redis "$R_PID" -s "$sock"
  gateway gateway0 "  url: \"unix://${sock}\""
  G0_PID=$GW_PID
  verify_domain "$GW_HTTP"
  warm_up "$GW_SMTP"
  profile baseline "$GW_ADMIN"
  REDIS_TARGETS=("-s $sock")
  reset_stats
  load baseline "$GW_SMTP" -pid "gateway=$G0_PID" -pid "redis=$R_PID" -metrics "http://$GW_HTTP/metrics"
  command_stats baseline
  RESULTS+=(baseline)
  grep -E 'level=(ERROR|WARN)' "$WORK/gateway0.log" | grep -v 'self-signed' | sed 's/time=[^ ]* //' | sort | uniq -c | sort -rn | head -5 >&2 || true
  stop_pid "$G0_PID" gateway0
  stop_pid "$R_PID" redis
fi

# ---- 2 and 3: the fleet ----
if [[ " $RUNS " == *" fleet "* || " $RUNS " == *" faults "* ]]; then
  NODES=() NODE_PIDS=()
  # node_args I PORT sets NODE_ARGS to the arguments of cluster node I on PORT
  node_args() {
    local d=$WORK/node$1
    NODE_ARGS=(--bind 127.0.0.1 --port "$2" --dir "$d" --cluster-enabled yes --cluster-config-file "$d/nodes.conf"
      --cluster-node-timeout "$NODE_TIMEOUT" --cluster-replica-validity-factor 0 --cluster-allow-replica-migration no
      --repl-diskless-sync yes --repl-diskless-sync-delay 0 "${REDIS_COMMON[@]}")
  }
  for i in 0 1 2 3 4 5; do
    d=$WORK/node$i
    mkdir -p "$d"
    for try in 1 2 3 4 5; do # another process may take a port in between: try the next ones
      free_port_pair
      node_args "$i" "$PORT"
      start "node$i" "$WORK/node$i.log" redis-server "${NODE_ARGS[@]}"
      up=0
      for ((k = 0; k < 100; k++)); do
        [[ $(redis-cli -p "$PORT" ping 2>/dev/null) == PONG ]] && { up=1; break; }
        kill -0 "$(last_pid)" 2>/dev/null || break
        sleep 0.1
      done
      ((up)) && break
      log "node$i did not start on port $PORT (try $try): $(grep -m1 -i 'address already in use' "$WORK/node$i.log" || tail -1 "$WORK/node$i.log")"
      stop_pid "$(last_pid)" "node$i"
      rm -f "$d/nodes.conf"
    done
    ((up)) || die "node$i did not start"
    NODE_PIDS+=("$(last_pid)")
    NODES+=("127.0.0.1:$PORT")
  done
  redis-cli --cluster create "${NODES[@]}" --cluster-replicas 1 --cluster-yes >"$WORK/cluster-create.log" 2>&1 ||
    die "redis-cli --cluster create failed: $(tail -20 "$WORK/cluster-create.log")"
  for ((i = 0; i < 300; i++)); do
    ok=0
    for n in "${NODES[@]}"; do
      redis-cli -p "${n##*:}" cluster info 2>/dev/null | grep -q '^cluster_state:ok' && ok=$((ok + 1))
    done
    synced=$(for n in "${NODES[@]}"; do redis-cli -p "${n##*:}" info replication; done | grep -c '^master_link_status:up' || true)
    ((ok == 6 && synced == 3)) && break
    sleep 0.1
  done
  ((ok == 6 && synced == 3)) || die "the cluster did not form: $ok nodes ok, $synced replicas in sync"
  # Name each redis-server by its role, for the CPU figures and the kill.
  ROLE_PIDS=()
  for i in "${!NODES[@]}"; do
    role=$(redis-cli -p "${NODES[$i]##*:}" role | head -1)
    [[ $role == master ]] && ROLE_PIDS+=(-pid "redis-master$i=${NODE_PIDS[$i]}") || ROLE_PIDS+=(-pid "redis-replica$i=${NODE_PIDS[$i]}")
  done
  log "cluster of ${NODES[*]}: $(redis-cli -p "${NODES[0]##*:}" cluster nodes | awk '{print $2, $3}' | sed 's/@[0-9]*//' | tr '\n' ';')"
  addrs_yaml=$(printf '"%s", ' "${NODES[@]}")
  redis_yaml="  addrs: [${addrs_yaml%, }]
  cluster: true
  shards: ${SHARDS}
  min_replicas_acked: ${MIN_ACKED}"
  GPIDS=() GSMTP=() GHTTP=() GADMIN=()
  for g in 1 2 3; do
    gateway "gateway$g" "$redis_yaml"
    GPIDS+=("$GW_PID") GSMTP+=("$GW_SMTP") GHTTP+=("$GW_HTTP") GADMIN+=("$GW_ADMIN")
  done
  verify_domain "${GHTTP[0]}"
  FLEET_ADDRS=$(IFS=,; echo "${GSMTP[*]}")
  warm_up "$FLEET_ADDRS"
  GW_FLAGS=(-pid "gateway1=${GPIDS[0]}" -pid "gateway2=${GPIDS[1]}" -pid "gateway3=${GPIDS[2]}")

  if [[ " $RUNS " == *" fleet "* ]]; then
    profile fleet "${GADMIN[0]}"
    REDIS_TARGETS=()
    for n in "${NODES[@]}"; do REDIS_TARGETS+=("-p ${n##*:}"); done
    reset_stats
    load fleet "$FLEET_ADDRS" "${GW_FLAGS[@]}" "${ROLE_PIDS[@]}" -metrics "http://${GHTTP[0]}/metrics"
    command_stats fleet
    RESULTS+=(fleet)
  fi

  if [[ " $RUNS " == *" faults "* ]]; then
    # The master that holds shard 0's hash slot ({q}): the mail of the other shards goes on.
    slot=$(redis-cli -p "${NODES[0]##*:}" cluster keyslot q)
    victim=""
    for i in "${!NODES[@]}"; do
      r=$(redis-cli -p "${NODES[$i]##*:}" role | head -1)
      [[ $r == master ]] || continue
      # CLUSTER NODES lists the slot ranges of each master (fields 9…): keep the one holding $slot.
      if redis-cli -p "${NODES[$i]##*:}" cluster nodes | awk -v s="$slot" '/myself/ { for (f = 9; f <= NF; f++) { split($f, a, "-"); if (a[2] == "") a[2] = a[1]; if (s + 0 >= a[1] + 0 && s + 0 <= a[2] + 0) found = 1 } } END { exit !found }'; then
        victim=$i
      fi
    done
    [[ -n $victim ]] || die "no master holds slot $slot"
    (
      sleep "$KILL_AT"
      echo "[scale $(date +%H:%M:%S)] kill -9 gateway3 (pid ${GPIDS[2]}) and node$victim ${NODES[$victim]} (pid ${NODE_PIDS[$victim]}), the master of slot $slot ({q})" >&2
      kill -KILL "${GPIDS[2]}" "${NODE_PIDS[$victim]}"
      t_kill=$(date +%s.%N)
      vport=${NODES[$victim]##*:} other=${NODES[$(((victim + 1) % 6))]##*:}
      for ((k = 0; k < 300; k++)); do # until another node serves the slot as a master
        owner=$(redis-cli -p "$other" cluster nodes 2>/dev/null | awk -v s="$slot" '$3 ~ /master/ && $3 !~ /fail/ {
          for (f = 9; f <= NF; f++) { split($f, a, "-"); if (a[2] == "") a[2] = a[1]; if (s + 0 >= a[1] + 0 && s + 0 <= a[2] + 0) print $2 } }')
        [[ -n $owner && ${owner%@*} != "${NODES[$victim]}" ]] && break
        sleep 0.1
      done
      echo "[scale $(date +%H:%M:%S)] slot $slot served by ${owner%@*} $(awk -v a="$t_kill" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s after the kill" >&2
      if [[ $RESTART == 1 ]]; then
        # As systemd or Kubernetes would: the killed redis-server comes back and rejoins as
        # the replica of the node that took over (without one, redis.min_replicas_acked
        # makes every submission to that shard wait min_replicas_timeout and answer 451).
        node_args "$victim" "$vport"
        redis-server "${NODE_ARGS[@]}" >>"$WORK/node$victim.log" 2>&1 &
        echo $! >"$WORK/restarted.pid"
        echo "[scale $(date +%H:%M:%S)] restarted node$victim (pid $!)" >&2
      fi
    ) &
    KILLER=$!
    # The dead processes drop out of the CPU figures (their /proc is gone by the end): count
    # the gateways and redis-servers that live through the run, and say so.
    FAULT_PIDS=(-pid "gateway1=${GPIDS[0]}" -pid "gateway2=${GPIDS[1]}")
    for ((k = 0; k < ${#ROLE_PIDS[@]}; k += 2)); do
      [[ ${ROLE_PIDS[k + 1]} == *"=${NODE_PIDS[$victim]}" ]] || FAULT_PIDS+=("${ROLE_PIDS[k]}" "${ROLE_PIDS[k + 1]}")
    done
    # pending_report: the delivery streams' entries read and not acknowledged, on every live
    # master: which consumer holds them and for how long (ms idle, deliveries)
    pending_report() {
      local n k g
      for n in "${NODES[@]}"; do
        [[ $(redis-cli -p "${n##*:}" role 2>/dev/null | head -1) == master ]] || continue
        redis-cli -p "${n##*:}" --scan --pattern '*stream*' 2>/dev/null | while read -r k; do
          [[ $(redis-cli -p "${n##*:}" type "$k") == stream ]] || continue
          redis-cli -p "${n##*:}" xinfo groups "$k" | awk 'prev == "name" { print } { prev = $0 }' | while read -r g; do
            log "faults: $n $k group $g: pending $(redis-cli -p "${n##*:}" xpending "$k" "$g" - + 10 | paste -d' ' - - - - | tr '\n' ';')"
          done
        done
      done
    }
    t0=$(date +%s)
    load faults "$FLEET_ADDRS" "${FAULT_PIDS[@]}" -metrics "http://${GHTTP[0]}/metrics"
    wait "$KILLER" || true
    if [[ -s $WORK/restarted.pid ]]; then
      PIDS+=("$(cat "$WORK/restarted.pid")") NAMES+=("node$victim (restarted)")
      rm -f "$WORK/restarted.pid"
      log "faults: node$victim after its restart: $(redis-cli -p "${NODES[$victim]##*:}" role 2>/dev/null | head -1)"
    fi
    wait "${GPIDS[2]}" 2>/dev/null || true
    wait "${NODE_PIDS[$victim]}" 2>/dev/null || true
    log "faults: the cluster after the kill: $(redis-cli -p "${NODES[0]##*:}" cluster nodes 2>/dev/null | awk '{print $2, $3}' | sed 's/@[0-9]*//' | tr '\n' ';')"
    log "faults: waiting for every acknowledged message at the sink (at most ${DRAIN} s)"
    if ! wait_ledger faults; then
      log "faults: not every acknowledged message was delivered within ${DRAIN} s; missing: $(sort "$WORK/out/faults.acked" |
        comm -23 - <(sort -u "$DELIVERED") | head -10 | tr "\n" " ")(X-Smtpload-Id values)"
      pending_report
    fi
    log "faults: ledger settled $(($(date +%s) - t0)) s after the load began"
    sleep 2 # late duplicates
    RESULTS+=(faults)
  fi
  for g in 1 2 3; do
    grep -E 'level=(ERROR|WARN)' "$WORK/gateway$g.log" | grep -v 'self-signed' | sed 's/time=[^ ]* //' |
      sort | uniq -c | sort -rn | head -5 | sed "s/^/gateway$g: /" >&2 || true
  done
fi
echo "loadavg at end: $(cat /proc/loadavg)" >>"$WORK/out/env.txt"

# ---- report ----
echo
cat "$WORK/out/env.txt"
for run in "${RESULTS[@]}"; do
  [[ -s $WORK/out/$run.json ]] || { echo "$run: no report"; LOST=1; continue; }
  figures "$run"
done
if [[ -s $WORK/out/baseline.cpu && -s $WORK/out/fleet.cpu ]]; then
  awk -v b="$(cat "$WORK/out/baseline.cpu")" -v f="$(cat "$WORK/out/fleet.cpu")" -v g="$(cat "$WORK/out/fleet.cpu-noreplica")" 'BEGIN {
    printf "CPU per message fleet / baseline: %.3f (%+.0f %%; the issue bounds the growth at +15 %%); without the replicas: %.3f (%+.0f %%)\n",
      f / b, 100 * (f / b - 1), g / b, 100 * (g / b - 1) }'
fi
echo "server CPU = utime+stime from /proc/PID/stat, from the start of the load until the drain ended, / messages accepted;"
echo "the faults run counts only the processes alive at its end. The machine's other load is in loadavg above."
exit "$LOST"
