#!/usr/bin/env bash
# run_cluster.sh: start, stop and inspect a local FTQueue cluster.
#
#   ./run_cluster.sh                  build if needed, start 3 replicas, open the
#                                     client; stop them again when you quit
#   ./run_cluster.sh start [N] [--loss P] [--fsync]
#                                     start N replicas (default 3) in the background
#   ./run_cluster.sh stop             stop the replicas this script started
#   ./run_cluster.sh status           their pids and what each replica reports
#   ./run_cluster.sh client           open the client on the running cluster
#
# Replicas listen on 127.0.0.1, ports 7001, 7002, ... (FTQ_BASE_PORT to
# change). Logs, data and pids live under ./cluster (FTQ_CLUSTER_DIR).
# Only processes recorded in cluster/pids are ever signalled.
set -euo pipefail
cd "$(dirname "$0")"

DIR=${FTQ_CLUSTER_DIR:-cluster}
BASE_PORT=${FTQ_BASE_PORT:-7001}
PIDS="$DIR/pids"

die() { echo "run_cluster.sh: $*" >&2; exit 2; }

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }

build() {
  if [ ! -x ./server ] || [ ! -x ./client ] || [ -n "$(find . -maxdepth 1 -name '*.[ch]pp' -newer ./server)" ]; then
    echo "building..."
    make -s >/dev/null || die "build failed (run make to see why)"
  fi
}

# A recorded pid counts only if it is alive and still one of our servers.
alive() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null && grep -q "server" "/proc/$pid/cmdline" 2>/dev/null
}

running() {
  [ -f "$PIDS" ] || return 1
  local pid
  while read -r pid _; do alive "$pid" && return 0; done < "$PIDS"
  return 1
}

servers_list() { cat "$DIR/servers"; }

start() {
  local n=3 extra=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --loss) [ $# -ge 2 ] || die "--loss needs a probability"; extra+=(--loss "$2"); shift 2 ;;
      --fsync) extra+=(--fsync); shift ;;
      -v) extra+=(-v); shift ;;
      [0-9]*) n=$1; shift ;;
      *) die "start: unknown argument '$1' (start [N] [--loss P] [--fsync])" ;;
    esac
  done
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 64 ] || die "N must be 1..64"
  running && die "a cluster is already running (./run_cluster.sh stop first)"
  build
  mkdir -p "$DIR"
  local peers="" i
  for ((i = 0; i < n; i++)); do peers+="${peers:+,}127.0.0.1:$((BASE_PORT + i))"; done
  echo "$peers" > "$DIR/servers"
  : > "$PIDS"
  for ((i = 0; i < n; i++)); do
    ./server --id "$i" --peers "$peers" --data "$DIR/data/replica-$i" ${extra[@]+"${extra[@]}"} \
      2>>"$DIR/replica-$i.log" &
    echo "$! $i" >> "$PIDS"
  done
  # Wait (bounded) until every replica answers.
  for _ in $(seq 1 50); do
    if ./client --servers "$peers" status 2>/dev/null | grep -vq unreachable; then
      echo "started $n replicas on $peers (logs and data in $DIR/)"
      return 0
    fi
    sleep 0.1
  done
  echo "run_cluster.sh: some replica did not answer; see $DIR/replica-*.log" >&2
  ./client --servers "$peers" status || true
  return 1
}

stop() {
  [ -f "$PIDS" ] || { echo "no cluster recorded in $PIDS"; return 0; }
  local pid id
  while read -r pid id; do alive "$pid" && kill -TERM "$pid"; done < "$PIDS"
  # Replicas finish what is in flight and write their snapshots (at most 3 s).
  for _ in $(seq 1 60); do
    running || break
    sleep 0.1
  done
  while read -r pid id; do
    if alive "$pid"; then
      echo "replica $id (pid $pid) did not stop in time; killing it" >&2
      kill -KILL "$pid"
    fi
  done < "$PIDS"
  rm -f "$PIDS"
  echo "stopped"
}

status() {
  if ! running; then
    echo "no cluster running"
    return 1
  fi
  local pid id
  while read -r pid id; do
    if alive "$pid"; then echo "replica $id: pid $pid"; else echo "replica $id: not running"; fi
  done < "$PIDS"
  ./client --servers "$(servers_list)" status | tr ';' '\n' | sed 's/^ //'
}

client() {
  running || die "no cluster running (./run_cluster.sh start)"
  ./client --servers "$(servers_list)"
}

case "${1:-}" in
  "")
    if running; then
      client
    else
      start 3
      trap stop EXIT
      ./client --servers "$(servers_list)"
    fi
    ;;
  start) shift; start "$@" ;;
  stop) stop ;;
  status) status ;;
  client) client ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
