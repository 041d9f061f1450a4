# Process bookkeeping shared by bench/run.sh and bench/scale.sh, which
# source it after defining log. Every process started is remembered by PID
# and name, and stop_all stops them newest first.
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
