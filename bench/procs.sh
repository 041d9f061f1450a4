# What bench/run.sh and bench/scale.sh share, sourced after they define
# log: process bookkeeping (every process started is remembered by PID and
# name, and stop_all stops them newest first) and the gateway's config.
PIDS=()
NAMES=()

# stop_pid PID [NAME]: SIGTERM, up to 10 s, then SIGKILL; reaps it.
stop_pid() {
  local pid=$1 name=${2:-} n
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((n = 0; n < 100; n++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) ignored SIGTERM, killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# stop_all: every process start started, newest first.
stop_all() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}" "${NAMES[$i]}"; done
  PIDS=()
}

# start NAME LOGFILE CMD...: run in the background and remember the PID
start() {
  local name=$1 logf=$2
  shift 2
  "$@" >"$logf" 2>&1 &
  PIDS+=($!)
  NAMES+=("$name")
  log "started $name (pid $!)"
}
last_pid() { echo "${PIDS[${#PIDS[@]} - 1]}"; }

# wait_file FILE SECONDS PID: until FILE is non-empty; fail if PID died
wait_file() {
  local f=$1 t=$2 pid=$3 i
  for ((i = 0; i < t * 10; i++)); do
    [[ -s $f ]] && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# json_field NAME FILE: the string value of "NAME" in a one-line JSON file.
json_field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" "$2"; }

# gateway_yaml SMTP_LISTEN REDIS_LINES: the config of a benchmarked gateway,
# on stdout: STARTTLS with $CERT/$TLSKEY, the bench DNS ($DNS_ADDR), delivery
# to the sink ($SINK_ADDR) by $WORKERS workers, the bootstrap key $KEY, the
# account rate limit lifted, the admin listener (pprof) on a loopback port; REDIS_LINES are the lines of its redis section.
gateway_yaml() {
  cat <<EOF
smtp:
  listen: "$1"
  tls_listen: "127.0.0.1:0"
  hostname: "bench.localdomain"
  max_connections: 1000
tls:
  cert_file: "${CERT}"
  key_file: "${TLSKEY}"
http:
  listen: "127.0.0.1:0"
  admin_listen: "127.0.0.1:0"
  public_url: "http://127.0.0.1:8080"
redis:
$2
  require_durable: true
dns:
  resolver: "${DNS_ADDR}"
delivery:
  relay_host: "${SINK_ADDR}"
  workers: ${WORKERS}
auth:
  bootstrap_key: "${KEY}"
limits:
  rate_per_second: 1000000
  burst: 1000000
log:
  level: "warn"
  format: "text"
EOF
}
