#!/usr/bin/env bash
# run_cluster.sh: start, stop and inspect a local FTQueue cluster.
#
#   ./run_cluster.sh                  build if needed, start 3 replicas, open the
#                                     client; stop them again when you quit
#   ./run_cluster.sh start [N] [--loss P] [--fsync]
#                                     start N replicas (default 3) in the background;
#                                     returns once each one answers as itself
#   ./run_cluster.sh stop             stop the replicas this script started
#   ./run_cluster.sh status           their pids and what each replica reports
#   ./run_cluster.sh client           open the client on the running cluster
#
# Replicas listen on 127.0.0.1, ports 7001, 7002, ... (FTQ_BASE_PORT to
# change). Logs, data and pids live under ./cluster (FTQ_CLUSTER_DIR).
# Only processes recorded in cluster/pids are ever signalled.
#
# cluster/ belongs to the N and ports it was first started with: start it
# again with those, or remove cluster/ to begin a new cluster (changing N
# makes a new cluster).
#
# start exits 0 once every replica answers; 1 if a replica failed (its error
# is shown and the replicas started are stopped); 2 for a bad argument or
# a cluster/ of other members.
#
# FTQ_SERVER_BIN, FTQ_CLIENT_BIN: absolute paths of the server and client
# to run instead of ./server and ./client, which then are never built (the
# tests use this).
set -euo pipefail
cd "$(dirname "$0")"

DIR=${FTQ_CLUSTER_DIR:-cluster}
BASE_PORT=${FTQ_BASE_PORT:-7001}
PIDS="$DIR/pids"
SERVER=${FTQ_SERVER_BIN:-./server}
CLIENT=${FTQ_CLIENT_BIN:-./client}

die() { echo "run_cluster.sh: $*" >&2; exit 2; }

usage() { sed -n '2,/^set /s/^# \{0,1\}//p' "$0"; }

build() {
  if [ -n "${FTQ_SERVER_BIN:-}${FTQ_CLIENT_BIN:-}" ]; then
    [ -x "$SERVER" ] && [ -x "$CLIENT" ] || die "FTQ_SERVER_BIN/FTQ_CLIENT_BIN: no executable $SERVER or $CLIENT"
    return 0
  fi
  if [ ! -x ./server ] || [ ! -x ./client ] || [ -n "$(find . -maxdepth 1 -name '*.[ch]pp' -newer ./server)" ]; then
    echo "building..."
    make -s >/dev/null || die "build failed (run make to see why)"
  fi
}

# A recorded pid counts only if it is alive and still a server this script
# started (after a reboot the number may belong to anything).
alive() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null && grep -qF -- "/data/replica-" "/proc/$pid/cmdline" 2>/dev/null
}

running() {
  [ -f "$PIDS" ] || return 1
  local pid
  while read -r pid _; do alive "$pid" && return 0; done < "$PIDS"
  return 1
}

servers_list() { cat "$DIR/servers"; }

# SIGTERM once (a second one would cut the drain short), wait for the
# drains (a server gives up on its own after 3 s), then SIGKILL what is left.
terminate() {
  local pid left _
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 60); do
    left=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && left=1; done
    [ "$left" = 0 ] && return 0
    sleep 0.1
  done
  for pid in "$@"; do
    if kill -0 "$pid" 2>/dev/null; then
      echo "run_cluster.sh: pid $pid did not stop in time; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

# Each replica's data directory records the member list it belongs to
# (data/replica-I/members, written by the server), and a server refuses
# another. Say so before starting anything, and say what to do instead.
check_members() {
  local n=$1 peers=$2 file old old_n old_base cmd
  for file in "$DIR"/data/replica-*/members; do
    [ -f "$file" ] || continue
    old=$(sed -n 's/^peers //p' "$file")
    [ "$old" = "$peers" ] && continue
    old_n=$(($(tr -cd , <<< "$old" | wc -c) + 1))
    old_base=${old%%,*}
    old_base=${old_base##*:}
    cmd="./run_cluster.sh start $old_n"
    [ "$old_base" = "$BASE_PORT" ] || cmd="FTQ_BASE_PORT=$old_base $cmd"
    die "$DIR/ holds a cluster of $old_n replicas ($old), not the $n asked for ($peers).
Run '$cmd' to start it again, or remove $DIR/ to begin a new cluster of $n (changing N or the ports makes a new cluster)."
  done
}

# Waits (about 10 s at most) until every replica answers status as itself,
# "127.0.0.1:PORT up: replica I", while the process started for it lives:
# a reply from whatever else holds the port does not count. A replica that
# exits (port taken, data directory of other members) is reported at once.
wait_until_up() {
  local n=$1 peers=$2 pid id status out missing=""
  for _ in $(seq 1 40); do
    while read -r pid id; do
      kill -0 "$pid" 2>/dev/null && continue
      status=0
      wait "$pid" || status=$?
      echo "run_cluster.sh: replica $id (127.0.0.1:$((BASE_PORT + id))) exited with status $status:" >&2
      tail -c +$((LOG_START[id] + 1)) "$DIR/replica-$id.log" | tail -n 5 | sed 's/^/  /' >&2
      return 1
    done < "$PIDS"
    out=$("$CLIENT" --servers "$peers" --timeout 0.2 status 2>/dev/null || true)
    missing=""
    for ((id = 0; id < n; id++)); do
      [[ "$out" == *"127.0.0.1:$((BASE_PORT + id)) up: replica $id,"* ]] || missing+=" $id"
    done
    [ -z "$missing" ] && return 0
    sleep 0.1
  done
  echo "run_cluster.sh: replica(s)$missing did not answer within 10 s; see $DIR/replica-*.log" >&2
  return 1
}

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
  [[ "$BASE_PORT" =~ ^[0-9]+$ ]] && [ "$BASE_PORT" -ge 1 ] && [ $((BASE_PORT + n - 1)) -le 65535 ] ||
    die "FTQ_BASE_PORT must leave room for $n ports below 65536"
  running && die "a cluster is already running (./run_cluster.sh stop first)"
  build
  local peers="" i started=()
  for ((i = 0; i < n; i++)); do peers+="${peers:+,}127.0.0.1:$((BASE_PORT + i))"; done
  check_members "$n" "$peers"
  mkdir -p "$DIR"
  echo "$peers" > "$DIR/servers"
  : > "$PIDS"
  LOG_START=()  # where this start's lines begin in each log
  for ((i = 0; i < n; i++)); do
    LOG_START[i]=0
    [ ! -f "$DIR/replica-$i.log" ] || LOG_START[i]=$(wc -c < "$DIR/replica-$i.log")
    # Nothing of the caller's: a replica holding our stdout would keep
    # `out=$(./run_cluster.sh start)` or `... start | tail` waiting for ever.
    "$SERVER" --id "$i" --peers "$peers" --data "$DIR/data/replica-$i" ${extra[@]+"${extra[@]}"} \
      < /dev/null >> "$DIR/replica-$i.log" 2>&1 &
    started+=($!)
    echo "$! $i" >> "$PIDS"
  done
  if wait_until_up "$n" "$peers"; then
    echo "started $n replicas on $peers (logs and data in $DIR/)"
    return 0
  fi
  # Our own children, signalled by pid whether or not they have exec'd yet.
  echo "run_cluster.sh: stopping the replicas started" >&2
  terminate "${started[@]}"
  rm -f "$PIDS"
  exit 1
}

stop() {
  [ -f "$PIDS" ] || { echo "no cluster recorded in $PIDS"; return 0; }
  local pid id ours=()
  while read -r pid id; do alive "$pid" && ours+=("$pid"); done < "$PIDS"
  terminate ${ours[@]+"${ours[@]}"}
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
  "$CLIENT" --servers "$(servers_list)" status | tr ';' '\n' | sed 's/^ //'
}

client() {
  running || die "no cluster running (./run_cluster.sh start)"
  "$CLIENT" --servers "$(servers_list)"
}

case "${1:-}" in
  "")
    if running; then
      client
    else
      start 3
      trap stop EXIT
      "$CLIENT" --servers "$(servers_list)"
    fi
    ;;
  start) shift; start "$@" ;;
  stop) stop ;;
  status) status ;;
  client) client ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
