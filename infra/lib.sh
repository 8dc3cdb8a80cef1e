# Shared by the infra scripts: where things live, and small helpers for starting and stopping a
# JVM we own. Sourced, not run.
#
# Defaults (override by environment):
#   SFJIRA_CACHE_DIR  downloaded Kafka jars and the Apicurio archive   (<repo>/.cache, git-ignored)
#   SFJIRA_RUN_DIR    data, logs and PID files of running components  (<repo>/.run, git-ignored)
set -euo pipefail

SFJIRA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SFJIRA_CACHE_DIR="${SFJIRA_CACHE_DIR:-$SFJIRA_ROOT/.cache}"
SFJIRA_RUN_DIR="${SFJIRA_RUN_DIR:-$SFJIRA_ROOT/.run}"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed; $2"
}

# pid_alive PIDFILE MARKER: true when PIDFILE names a live process whose command line contains
# MARKER (so a recycled PID of some other program is not mistaken for ours).
pid_alive() {
  local pidfile=$1 marker=$2 pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$marker"
}

# stop_by_pid NAME PIDFILE MARKER: TERM, wait up to 30 s, then KILL. Stale PID files are removed.
stop_by_pid() {
  local name=$1 pidfile=$2 marker=$3 pid i
  if ! pid_alive "$pidfile" "$marker"; then
    [ -f "$pidfile" ] && { log "$name: removing stale PID file $pidfile"; rm -f "$pidfile"; }
    log "$name: not running"
    return 0
  fi
  pid=$(cat "$pidfile")
  log "$name: stopping PID $pid"
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name: PID $pid did not stop in 30 s; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  log "$name: stopped"
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# fail_with_log NAME LOGFILE MESSAGE: print the message and the last lines of the log, exit 1.
fail_with_log() {
  log "error: $1: $3"
  if [ -f "$2" ]; then
    log "last 40 lines of $2:"
    tail -n 40 "$2" >&2
  fi
  exit 1
}
