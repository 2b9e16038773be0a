#!/usr/bin/env bash
# run_cluster.sh: start, stop, inspect and break a local FTQueue cluster.
#
#   ./run_cluster.sh                  build if needed, start 3 replicas, open the
#                                     client; stop them again when you quit
#   ./run_cluster.sh start [N] [--loss P] [--fsync] [--partitionable] [-v] [--trace]
#                                     start N replicas (default 3) in the background,
#                                     with these flags (kept for restart) and no
#                                     link cuts; returns once each one answers as
#                                     itself, and says how to reach the cluster.
#                                     Exits 1 if a replica failed (its error is
#                                     shown as soon as it exits, and the replicas
#                                     started are stopped), 2 for a bad argument or
#                                     a cluster/ of other members. -v: each replica
#                                     logs its counters once a second; --trace: one
#                                     line per protocol event (-vv: both; ./server
#                                     --help, "Reading the trace"). Logs are
#                                     cluster/replica-I.log
#   ./run_cluster.sh stop             stop the replicas this script started (each
#                                     drains and writes its snapshot; an idle
#                                     cluster stops in a fraction of a second)
#   ./run_cluster.sh status           a line per replica: its pid or "not running",
#                                     what it reports (its configuration, delivered
#                                     and stable global_seq, queues, buffered,
#                                     dropped) and its link cuts; then which
#                                     replicas are down, not answering or cut off,
#                                     and whether the ones running and reaching
#                                     each other are a majority and serve. Exits 1
#                                     if no cluster is running
#   ./run_cluster.sh watch            status again every second until Ctrl-C (the
#                                     screen is cleared only on a terminal)
#   ./run_cluster.sh client [COMMAND ARGS...]
#                                     run one client command on the running cluster
#                                     (the servers start recorded) and exit with the
#                                     client's status (./client --help: 0 ok, 1 an
#                                     error reply, 3 outcome unknown, ...); without a
#                                     COMMAND, the interactive client. Client options
#                                     go first ('client --timeout 10 push 1 5').
#                                     Exits 2 if no cluster is running
#   ./run_cluster.sh picture [FILE] [--text] [--from MS] [--to MS] [--first N] [--all]
#                                     draw the run of a cluster started with
#                                     --trace (running or stopped) from its logs as
#                                     an SVG message-sequence chart that a browser
#                                     opens, in FILE (default cluster/picture.svg):
#                                     a lane per replica and one for the clients,
#                                     time going down, an arrow per datagram, the
#                                     configuration changes across the lanes, a
#                                     legend. --from/--to: a window, in ms after the
#                                     first trace line; --first N: at most N events
#                                     (default 400); --all: STATUS and HEADER too;
#                                     --text: the same chart as text, on standard
#                                     output unless FILE is given
#                                     (./picture --help). Exits 1 if there is no
#                                     trace to draw
#
# Faults, to break the cluster and watch it heal (README: "Break it and watch
# it heal"). Each exits 0 once done; 1 if the cluster is not in a state that
# allows it (no cluster running, the replica already down or already up, a
# replica that did not confirm); 2 for a bad argument, changing nothing.
#
#   ./run_cluster.sh kill I           crash replica I: SIGKILL, no drain, no
#                                     snapshot; cluster/pids records it as down
#   ./run_cluster.sh restart I        start replica I again on its data directory,
#                                     with the flags start was given and its link
#                                     cuts; returns once it answers as itself
#   ./run_cluster.sh partition SIDE SIDE...
#                                     cut the cluster into sides, e.g. 'partition
#                                     0,1 2': every datagram between two sides is
#                                     dropped, both ways (clients still reach every
#                                     replica). A side is replica ids joined by
#                                     commas; list every replica exactly once.
#                                     Returns once each running replica's log
#                                     confirms its cuts; a replica that is down
#                                     reads them when restarted
#   ./run_cluster.sh slow I [MS [PCT]]
#                                     make replica I's links slow: every datagram
#                                     between it and another replica held MS ms
#                                     (default 20) and PCT% of them dropped
#                                     (default 5), each way (clients still reach
#                                     it at full speed). It replaces any cuts. The
#                                     others soon find its claims late and it
#                                     leaves the sequencer rotation: each log says
#                                     'rotation change naming rI' (README: "Message
#                                     flow", step 8)
#   ./run_cluster.sh heal             no link cuts or slow links any more
#                                     (confirmed likewise)
#
#   ./run_cluster.sh COMMAND --help   what that one command does
#
# While a majority of the replicas are up and can talk, they keep serving:
# after a kill or a partition they form a new configuration without the
# missing ones (about 0.4 s: --suspect-ms, default 300), and a replica that
# comes back rejoins through another. A replica cut off from the majority
# answers clients "not in a majority" and the client asks another.
#
# Replicas listen on 127.0.0.1, ports 7001, 7002, ... (FTQ_BASE_PORT to
# change: on a shared machine, pick a base of your own, e.g.
# FTQ_BASE_PORT=23400 ./run_cluster.sh start; the later commands find the
# ports in cluster/servers, and start prints the FTQ_SERVERS line for
# ./client). Logs, data, pids, start's flags (cluster/flags) and the link cuts
# (cluster/cut-I, each replica's --cut-file) live under ./cluster
# (FTQ_CLUSTER_DIR). Only processes recorded in cluster/pids are ever
# signalled, and only while they still run a replica's server.
#
# cluster/ belongs to the N and ports it was first started with: start it
# again with those, or remove cluster/ to begin a new cluster (changing N
# makes a new cluster).
#
# FTQ_SERVER_BIN, FTQ_CLIENT_BIN, FTQ_PICTURE_BIN: absolute paths of the
# server, client and picture to run instead of ./server, ./client and
# ./picture, which then are never built (the tests use this).
set -euo pipefail
CALLER_DIR=$PWD  # a FILE given to picture is the caller's
cd "$(dirname "$0")"

DIR=${FTQ_CLUSTER_DIR:-cluster}
BASE_PORT=${FTQ_BASE_PORT:-7001}
PIDS="$DIR/pids"
SERVER=${FTQ_SERVER_BIN:-./server}
CLIENT=${FTQ_CLIENT_BIN:-./client}
PICTURE=${FTQ_PICTURE_BIN:-./picture}

die() { echo "run_cluster.sh: $*" >&2; exit 2; }     # a bad argument
refuse() { echo "run_cluster.sh: $*" >&2; exit 1; }  # not possible now

usage() { sed -n '2,/^set /s/^# \{0,1\}//p' "$0"; }

# One command's lines of the text above (from its "./run_cluster.sh CMD"
# line to the next command or blank line); for the fault commands also the
# paragraph on their exit statuses.
command_help() {
  usage | awk -v cmd="$1" '/^  \.\/run_cluster\.sh / { on = ($2 == cmd) } /^$/ { on = 0 } on'
  case "$1" in
    kill | restart | partition | slow | heal) echo; usage | sed -n '/^Faults,/,/^$/p' | sed '$d' ;;
  esac
}

build() {
  if [ -n "${FTQ_SERVER_BIN:-}${FTQ_CLIENT_BIN:-}" ]; then
    [ -x "$SERVER" ] && [ -x "$CLIENT" ] || die "FTQ_SERVER_BIN/FTQ_CLIENT_BIN: no executable $SERVER or $CLIENT"
    return 0
  fi
  if [ ! -x ./server ] || [ ! -x ./client ] || [ -n "$(find . -maxdepth 1 -name '*.[ch]pp' ! -name picture.cpp -newer ./server)" ]; then
    echo "building..."
    make -s >/dev/null || die "build failed (run make to see why)"
  fi
}

# A recorded pid counts only if it is alive and still the server of that
# replica, run on its data directory (after a reboot the number may belong
# to anything). cluster/pids records a replica that is down as "- I".
alive() {
  local pid=$1 id=$2
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null && grep -qzx -- ".*/data/replica-$id" "/proc/$pid/cmdline" 2>/dev/null
}

running() {
  [ -f "$PIDS" ] || return 1
  local pid id
  while read -r pid id; do alive "$pid" "$id" && return 0; done < "$PIDS"
  return 1
}

servers_list() { cat "$DIR/servers"; }

cluster_size() {
  local s
  s=$(servers_list)
  echo $(($(tr -cd , <<< "$s" | wc -c) + 1))
}

# The pid recorded for replica I ("-" if it is down, empty if none).
pid_of() { awk -v id="$1" '$2 == id { print $1 }' "$PIDS"; }

# Records PID (or -) for replica I in cluster/pids, one "PID I" line per
# replica in id order, replacing the file whole.
record_pid() {
  { [ ! -f "$PIDS" ] || awk -v id="$1" '$2 != id' "$PIDS"; echo "$2 $1"; } | sort -k2,2n > "$PIDS.new"
  mv -f "$PIDS.new" "$PIDS"
}

# The fault commands act on a cluster this script started and recorded.
need_cluster() {
  [ -f "$PIDS" ] && [ -f "$DIR/servers" ] || refuse "no cluster running in $DIR/ (./run_cluster.sh start first)"
}

# Sets ID to the replica id WORD names (leading zeros allowed), or exits 2
# naming COMMAND. Needs the cluster's size, so call need_cluster first.
parse_id() {
  local command=$1 word=$2 n
  n=$(cluster_size)
  [[ "$word" =~ ^[0-9]+$ ]] || die "$command: '$word' is not a replica id (0..$((n - 1)))"
  [ ${#word} -le 5 ] && [ $((10#$word)) -lt "$n" ] || die "$command: no replica $word: this cluster has replicas 0..$((n - 1))"
  ID=$((10#$word))
}

# PID is a process that has not exited. A process that has exited but not
# been reaped yet (a zombie: its parent, init for our servers, may take a
# second or two to reap it on some machines) has released its port and its
# files: it counts as gone.
running_pid() {
  local stat
  kill -0 "$1" 2>/dev/null || return 1
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }  # after the command name, which may hold spaces
  [ "${stat%% *}" != Z ]
}

# SIGTERM once (a second one would cut the drain short), wait for the
# drains (on an idle cluster they end within a tenth of a second; a server
# gives up on its own after 3 s), then SIGKILL what is left.
terminate() {
  local pid left _
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 300); do
    left=0
    for pid in "$@"; do running_pid "$pid" && left=1; done
    [ "$left" = 0 ] && return 0
    sleep 0.02
  done
  for pid in "$@"; do
    if running_pid "$pid"; then
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

# Starts replica I in the background on its data directory and cut file,
# with the cluster's flags (FLAGS), and records its pid (STARTED[I] too).
# Nothing of the caller's: a replica holding our stdout would keep
# `out=$(./run_cluster.sh start)` or `... start | tail` waiting for ever.
launch() {
  local i=$1
  LOG_START[i]=0  # where this start's lines begin in its log
  [ ! -f "$DIR/replica-$i.log" ] || LOG_START[i]=$(wc -c < "$DIR/replica-$i.log")
  "$SERVER" --id "$i" --peers "$(servers_list)" --data "$DIR/data/replica-$i" --cut-file "$DIR/cut-$i" \
    ${FLAGS[@]+"${FLAGS[@]}"} < /dev/null >> "$DIR/replica-$i.log" 2>&1 &
  STARTED[i]=$!
  record_pid "$i" "$!"
}

# Waits (about 10 s at most) until every replica named (by id) answers
# status as itself, "127.0.0.1:PORT up: replica I", while the process
# launched for it lives: a reply from whatever else holds the port does not
# count. A replica that exits (port taken, data directory of other members)
# is reported at once.
wait_until_up() {
  local ids=("$@") addrs id pid status out ask="" missing=""
  IFS=, read -ra addrs < "$DIR/servers"
  for id in "${ids[@]}"; do ask+="${ask:+,}${addrs[id]}"; done
  for _ in $(seq 1 40); do
    for id in "${ids[@]}"; do
      pid=${STARTED[id]}
      kill -0 "$pid" 2>/dev/null && continue
      status=0
      wait "$pid" || status=$?
      echo "run_cluster.sh: replica $id (${addrs[id]}) exited with status $status:" >&2
      tail -c +$((LOG_START[id] + 1)) "$DIR/replica-$id.log" | tail -n 5 | sed 's/^/  /' >&2
      return 1
    done
    out=$("$CLIENT" --servers "$ask" --timeout 0.2 status 2>/dev/null || true)
    missing=""
    for id in "${ids[@]}"; do
      [[ "$out" == *"${addrs[id]} up: replica $id,"* ]] || missing+=" $id"
    done
    [ -z "$missing" ] && return 0
    sleep 0.1
  done
  echo "run_cluster.sh: replica(s)$missing did not answer within 10 s; see $DIR/replica-*.log" >&2
  return 1
}

start() {
  local n=3
  FLAGS=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --loss)
        # As the server reads it (0 <= P < 1), so that a bad one is a bad
        # argument (2) here, not a replica that fails to start (1).
        [ $# -ge 2 ] && [[ "$2" =~ ^0*(\.[0-9]*)?$ ]] && [[ "$2" =~ [0-9] ]] ||
          die "start: --loss needs a probability P with 0 <= P < 1 (e.g. 0.2), got '${2:-}'"
        FLAGS+=(--loss "$2")
        shift 2
        ;;
      --fsync) FLAGS+=(--fsync); shift ;;
      --partitionable) FLAGS+=(--partitionable); shift ;;
      -v | --verbose) FLAGS+=(-v); shift ;;
      --trace) FLAGS+=(--trace); shift ;;
      -vv) FLAGS+=(-v --trace); shift ;;
      [0-9]*) n=$1; shift ;;
      *) die "start: unknown argument '$1' (start [N] [--loss P] [--fsync] [--partitionable] [-v] [--trace])" ;;
    esac
  done
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 64 ] || die "N must be 1..64"
  [[ "$BASE_PORT" =~ ^[0-9]+$ ]] && [ "$BASE_PORT" -ge 1 ] && [ $((BASE_PORT + n - 1)) -le 65535 ] ||
    die "FTQ_BASE_PORT must leave room for $n ports below 65536"
  running && die "a cluster is already running (./run_cluster.sh stop first)"
  build
  local peers="" i
  for ((i = 0; i < n; i++)); do peers+="${peers:+,}127.0.0.1:$((BASE_PORT + i))"; done
  check_members "$n" "$peers"
  mkdir -p "$DIR"
  echo "$peers" > "$DIR/servers"
  # One argument a line, for restart (printf with no arguments would print
  # an empty line: one empty argument).
  { [ ${#FLAGS[@]} -eq 0 ] || printf '%s\n' "${FLAGS[@]}"; } > "$DIR/flags"
  : > "$PIDS"
  STARTED=()
  LOG_START=()
  for ((i = 0; i < n; i++)); do
    : > "$DIR/cut-$i"  # a new start has no link cuts
    launch "$i"
  done
  if wait_until_up $(seq 0 $((n - 1))); then
    echo "started $n replicas on $peers (logs and data in $DIR/)"
    reach_text "$peers"
    return 0
  fi
  # Our own children, signalled by pid whether or not they have exec'd yet.
  echo "run_cluster.sh: stopping the replicas started" >&2
  terminate "${STARTED[@]}"
  rm -f "$PIDS"
  exit 1
}

# How to reach the cluster just started: this script's client command (with
# FTQ_CLUSTER_DIR, if it was set, since that is where it finds the ports),
# and FTQ_SERVERS for ./client run by hand.
reach_text() {
  local self=$0 prefix=""
  [ -z "${FTQ_CLUSTER_DIR:-}" ] || prefix="FTQ_CLUSTER_DIR=$(cd "$DIR" && pwd) "
  echo "reach it with:  $prefix$self client [COMMAND ARGS...]   (no COMMAND: the interactive client)"
  echo "or, for ./client in your shell:  export FTQ_SERVERS=$1"
}

stop() {
  [ -f "$PIDS" ] || { echo "no cluster recorded in $PIDS"; return 0; }
  local pid id ours=()
  while read -r pid id; do alive "$pid" "$id" && ours+=("$pid"); done < "$PIDS"
  terminate ${ours[@]+"${ours[@]}"}
  rm -f "$PIDS"
  echo "stopped"
}

# What cut-I lists (comments and separators dropped), or "none".
cuts_of() {
  local file="$DIR/cut-$1" text
  [ -f "$file" ] || { echo "none (no cut file)"; return; }
  text=$(sed 's/#.*//' "$file" | tr ',\t\r\n' '    ' | tr -s ' ' | sed 's/^ //; s/ $//')
  echo "${text:-none}"
}

# "replica 1" or "replicas 0, 2", from ids.
replicas_text() {
  local ids="$*"
  [ $# -eq 1 ] && echo "replica $1" || echo "replicas ${ids// /, }"
}

# One line per replica: pid or "not running", what it reports (asked with
# a 1 s bound, running replicas only) and its link cuts; then what that
# means for service (service_view). Returns 1 if no cluster is recorded.
status_view() {
  if [ ! -f "$PIDS" ] || [ ! -f "$DIR/servers" ]; then
    echo "no cluster running"
    return 1
  fi
  local n i pid addrs=() ask="" ask_ids=() reports=() entries=() out entry cuts line
  STATE=()
  CUTS=()
  REPORT=()
  n=$(cluster_size)
  IFS=, read -ra addrs < "$DIR/servers"
  for ((i = 0; i < n; i++)); do
    pid=$(pid_of "$i")
    STATE[i]=down
    if alive "$pid" "$i"; then
      ask+="${ask:+,}${addrs[i]}"
      ask_ids+=("$i")
    fi
  done
  if [ -n "$ask" ]; then
    # A line per replica (older clients: one line, joined by "; ").
    out=$("$CLIENT" --servers "$ask" --timeout 1 status 2>/dev/null || true)
    mapfile -t entries <<< "${out//; /$'\n'}"
    for ((i = 0; i < ${#ask_ids[@]}; i++)); do
      entry=${entries[i]:-}
      entry=${entry#"${addrs[ask_ids[i]]} "}
      case "$entry" in
        "up: replica ${ask_ids[i]}, "*)
          reports[ask_ids[i]]=${entry#"up: replica ${ask_ids[i]}, "}
          STATE[ask_ids[i]]=up
          REPORT[ask_ids[i]]=${reports[ask_ids[i]]}
          ;;
        up:*) reports[ask_ids[i]]="another server answers: ${entry#up: }"; STATE[ask_ids[i]]=other ;;
        *) reports[ask_ids[i]]="no answer within 1 s"; STATE[ask_ids[i]]=silent ;;
      esac
    done
  fi
  for ((i = 0; i < n; i++)); do
    pid=$(pid_of "$i")
    cuts=$(cuts_of "$i")
    CUTS[i]=$cuts
    if [ -n "${reports[i]+set}" ]; then
      line="pid $pid: ${reports[i]}"
    else
      line="not running"
    fi
    echo "replica $i (${addrs[i]}) $line; link cuts: $cuts"
  done
  service_view "$n"
}

# What the replicas' states (STATE: up, down, silent, other), link cuts
# (CUTS) and reports (REPORT) mean for service: which replicas are down,
# not answering or cut off; the largest group of running replicas that
# reach each other (no link cut between any two, either way), and whether
# it is a majority; and whether a replica of it reports a primary
# configuration of that group's members (it serves) or not yet.
service_view() {
  local n=$1 majority i j k tok id down=() silent=() cut=() group=() best=() queue=() seen=() config="" members
  majority=$((n / 2 + 1))
  declare -A blocked=()  # "i j": replica i cuts some link with j
  declare -A slow_links=()  # id: "MS ms, PCT% dropped" (./run_cluster.sh slow)
  for ((i = 0; i < n; i++)); do
    case "${STATE[i]}" in
      down) down+=("$i") ;;
      silent | other) silent+=("$i") ;;
    esac
    [[ "${CUTS[i]}" == none* ]] && continue
    local cuts_some=0
    for tok in ${CUTS[i]}; do
      if [[ "$tok" == slow:* ]]; then  # slow:ID:MS:PCT: slow, not cut
        slow_links["$(cut -d: -f2 <<< "$tok")"]="$(cut -d: -f3 <<< "$tok") ms, $(cut -d: -f4 <<< "$tok")% dropped"
        continue
      fi
      id=${tok#*:}
      [[ "$id" =~ ^[0-9]+$ ]] || continue
      blocked["$i $((10#$id))"]=1
      blocked["$((10#$id)) $i"]=1
      cuts_some=1
    done
    [ "${STATE[i]}" = down ] || [ $cuts_some = 0 ] || cut+=("$i")
  done
  # The largest group of answering replicas connected through uncut links
  # (a side of a partition; with cuts that are no clean partition, an upper
  # bound, checked below).
  for ((i = 0; i < n; i++)); do
    [ "${STATE[i]}" = up ] && [ -z "${seen[i]:-}" ] || continue
    group=()
    queue=("$i")
    seen[i]=1
    while [ ${#queue[@]} -gt 0 ]; do
      j=${queue[0]}
      queue=("${queue[@]:1}")
      group+=("$j")
      for ((k = 0; k < n; k++)); do
        [ "${STATE[k]}" = up ] && [ -z "${seen[k]:-}" ] && [ -z "${blocked["$j $k"]:-}" ] || continue
        seen[k]=1
        queue+=("$k")
      done
    done
    [ ${#group[@]} -le ${#best[@]} ] || best=("${group[@]}")
  done
  mapfile -t best < <(printf '%s\n' ${best[@]+"${best[@]}"} | sort -n)
  [ -n "${best[0]:-}" ] || best=()
  local clean=1
  for i in ${best[@]+"${best[@]}"}; do
    for j in "${best[@]}"; do [ -z "${blocked["$i $j"]:-}" ] || clean=0; done
  done
  [ ${#down[@]} -eq 0 ] || echo "down: $(replicas_text "${down[@]}") (not running; ./run_cluster.sh restart I starts replica I again)"
  [ ${#silent[@]} -eq 0 ] || echo "not answering: $(replicas_text "${silent[@]}") (running, but no status answer as itself within 1 s)"
  if [ ${#cut[@]} -gt 0 ]; then
    local pairs=""
    for ((i = 0; i < n; i++)); do
      for ((j = i + 1; j < n; j++)); do [ -z "${blocked["$i $j"]:-}" ] || pairs+="${pairs:+, }$i-$j"; done
    done
    echo "links cut: $pairs (./run_cluster.sh heal restores them)"
  fi
  for id in "${!slow_links[@]}"; do
    echo "slow: replica $id's links (${slow_links[$id]} each way; ./run_cluster.sh heal restores them)"
  done
  if grep -qx -- --partitionable "$DIR/flags" 2>/dev/null; then
    echo "mode: partitionable: a side without a majority answers through its lowest replica, tentatively; its work is merged into the order when it meets a majority"
  fi
  local up=0
  for ((i = 0; i < n; i++)); do [ "${STATE[i]}" != up ] || up=$((up + 1)); done
  if [ ${#best[@]} -eq 0 ]; then
    echo "service: NO: no replica is up and answering, and a majority is $majority of $n"
    return 0
  fi
  if [ ${#best[@]} -lt "$majority" ]; then
    local who
    if [ "$up" -eq 1 ]; then
      who="only $(replicas_text "${best[@]}") is up"
    elif [ ${#best[@]} -eq 1 ]; then
      who="no two of the $up replicas up reach each other"
    else
      who="at most ${#best[@]} of the replicas up reach each other ($(replicas_text "${best[@]}"))"
    fi
    if grep -qx -- --partitionable "$DIR/flags" 2>/dev/null; then
      echo "service: tentative only: $who, and a majority is $majority of $n: each side serves tentatively (through its lowest replica) until enough replicas are restarted or links healed"
    else
      echo "service: NO: $who, and a majority is $majority of $n: clients are told \"not in a majority\" (no effect) until enough replicas are restarted or links healed"
    fi
    return 0
  fi
  local who count="${#best[@]} of $n; a majority is $majority"
  who=$(replicas_text "${best[@]}")
  [ ${#best[@]} -gt 1 ] && who+=" are up and reach each other" || who+=" is up"
  [ "$clean" = 1 ] || count+="; with link cuts that are no clean partition, at most this many"
  # A primary configuration reported by one of the group, of members all in it.
  for i in "${best[@]}"; do
    [[ "${REPORT[i]:-}" =~ config\ [0-9.]+\ primary\ \{([0-9,]*)\} ]] || continue
    members=${BASH_REMATCH[1]}
    local inside=1
    for j in ${members//,/ }; do [[ " ${best[*]} " == *" $j "* ]] || inside=0; done
    [ "$inside" = 0 ] || config=$members
  done
  # Replicas up but not in the group: cut off from it.
  local outside=()
  for ((i = 0; i < n; i++)); do
    [ "${STATE[i]}" = up ] && [[ " ${best[*]} " != *" $i "* ]] && outside+=("$i")
  done
  local others=""
  if grep -qx -- --partitionable "$DIR/flags" 2>/dev/null && [ ${#outside[@]} -gt 0 ]; then
    if [ ${#outside[@]} -eq 1 ]; then
      others="; replica ${outside[0]}, cut off from them, serves tentatively until healed, and its work is merged then"
    else
      others="; $(replicas_text "${outside[@]}"), cut off from them: each side of them serves tentatively (through its lowest replica) until healed, and its work is merged then"
    fi
  elif [ ${#outside[@]} -eq 1 ]; then
    others="; replica ${outside[0]}, cut off from them, answers clients \"not in a majority\" until healed"
  elif [ ${#outside[@]} -gt 1 ]; then
    others="; $(replicas_text "${outside[@]}"), cut off from them, answer clients \"not in a majority\" until healed"
  fi
  if [ ${#down[@]} -eq 1 ]; then
    others+="; replica ${down[0]} rejoins and catches up once restarted"
  elif [ ${#down[@]} -gt 1 ]; then
    others+="; $(replicas_text "${down[@]}") rejoin and catch up once restarted"
  fi
  if [ -n "$config" ]; then
    echo "service: yes: $who ($count) and serve, in primary configuration {$config}$others"
  else
    echo "service: not yet: $who ($count), but none reports a primary configuration of them: a view change takes about 0.4 s (status again), or too many of their logs lost a tail (see their logs; README, 'Durability')$others"
  fi
}

kill_replica() {
  [ $# -eq 1 ] || die "kill: name one replica, e.g. 'kill 1' (see kill --help)"
  need_cluster
  parse_id kill "$1"
  local pid _
  pid=$(pid_of "$ID")
  if ! alive "$pid" "$ID"; then
    [[ ! "$pid" =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null ||
      echo "run_cluster.sh: kill: the pid recorded for replica $ID, $pid, is not its server: left alone" >&2
    refuse "kill: replica $ID is not running (./run_cluster.sh restart $ID starts it)"
  fi
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do
    alive "$pid" "$ID" || break
    sleep 0.1
  done
  alive "$pid" "$ID" && refuse "kill: replica $ID (pid $pid) still runs 3 s after SIGKILL"
  record_pid "$ID" -
  echo "killed replica $ID (pid $pid) with SIGKILL: no drain, no snapshot"
  echo "(the others form a configuration without it in about 0.4 s and keep serving if they are a majority; ./run_cluster.sh restart $ID brings it back)"
}

restart() {
  [ $# -eq 1 ] || die "restart: name one replica, e.g. 'restart 1' (see restart --help)"
  need_cluster
  parse_id restart "$1"
  local pid
  pid=$(pid_of "$ID")
  alive "$pid" "$ID" && refuse "restart: replica $ID is running (pid $pid); ./run_cluster.sh kill $ID first"
  build
  FLAGS=()
  if [ -f "$DIR/flags" ]; then
    mapfile -t FLAGS < "$DIR/flags"
  else
    echo "run_cluster.sh: no $DIR/flags (a cluster started by an older run_cluster.sh): restarting without flags" >&2
  fi
  STARTED=()
  LOG_START=()
  launch "$ID"
  if wait_until_up "$ID"; then
    echo "restarted replica $ID (pid ${STARTED[ID]}) on $DIR/data/replica-$ID${FLAGS[*]+ with ${FLAGS[*]}}; link cuts: $(cuts_of "$ID")"
    return 0
  fi
  echo "run_cluster.sh: stopping the replica started" >&2
  terminate "${STARTED[ID]}"
  record_pid "$ID" -
  exit 1
}

# Writes each replica's cut file, cut-I, from CUT[I] (member ids joined by
# spaces, ascending; empty for none), sends SIGHUP to each running replica,
# and waits (about 5 s at most) until each one's log confirms it read its
# cuts: the server logs "link cuts (test switch): IDS" (or "none").
apply_cuts() {
  local n i pid expect running_ids=() pending=() offsets=() _
  n=$(cluster_size)
  for ((i = 0; i < n; i++)); do
    printf '%s\n' "${CUT[i]}" > "$DIR/cut-$i.new"
    mv -f "$DIR/cut-$i.new" "$DIR/cut-$i"  # whole, never half-written
  done
  for ((i = 0; i < n; i++)); do
    pid=$(pid_of "$i")
    if alive "$pid" "$i"; then
      offsets[i]=0
      [ ! -f "$DIR/replica-$i.log" ] || offsets[i]=$(wc -c < "$DIR/replica-$i.log")
      kill -HUP "$pid"
      running_ids+=("$i")
    fi
  done
  for _ in $(seq 1 50); do
    pending=()
    for i in ${running_ids[@]+"${running_ids[@]}"}; do
      expect="[replica $i] link cuts (test switch): ${CUT[i]:-none}"
      # (With -v or --trace a log line starts with the time: taken off.)
      tail -c +$((offsets[i] + 1)) "$DIR/replica-$i.log" 2>/dev/null | sed 's/^[0-9][0-9]*\.[0-9]* \[/[/' |
        grep -qxF -- "$expect" || pending+=("$i")
    done
    [ ${#pending[@]} -eq 0 ] && break
    sleep 0.1
  done
  for ((i = 0; i < n; i++)); do
    if [[ " ${pending[*]-} " == *" $i "* ]]; then
      echo "  replica $i: link cuts ${CUT[i]:-none} NOT confirmed within 5 s; the end of $DIR/replica-$i.log:"
      tail -n 3 "$DIR/replica-$i.log" | sed 's/^/    /'
    elif [[ " ${running_ids[*]-} " == *" $i "* ]]; then
      echo "  replica $i: link cuts ${CUT[i]:-none} (confirmed in its log)"
    else
      echo "  replica $i: link cuts ${CUT[i]:-none} (not running: it reads them when restarted)"
    fi
  done
  [ ${#pending[@]} -eq 0 ] || refuse "not every running replica confirmed its link cuts"
}

partition() {
  [ $# -ge 1 ] || die "partition: name the sides, e.g. 'partition 0,1 2' (see partition --help)"
  local arg id i n s=0 ids=() side_of=() missing="" names
  for arg in "$@"; do
    [[ "$arg" =~ ^[0-9]+(,[0-9]+)*$ ]] ||
      die "partition: '$arg' is not a side: replica ids joined by commas, e.g. 'partition 0,1 2'"
  done
  [ $# -ge 2 ] || die "partition: '$1' is only one side; name at least two, e.g. 'partition 0,1 2'"
  need_cluster
  n=$(cluster_size)
  for arg in "$@"; do
    IFS=, read -ra ids <<< "$arg"
    for id in "${ids[@]}"; do
      parse_id partition "$id"
      [ -z "${side_of[ID]:-}" ] || die "partition: replica $ID is listed twice; list every replica exactly once"
      side_of[ID]=$s
    done
    s=$((s + 1))
  done
  for ((i = 0; i < n; i++)); do [ -n "${side_of[i]:-}" ] || missing+="${missing:+,}$i"; done
  [ -z "$missing" ] ||
    die "partition: replica(s) $missing on no side; list every replica exactly once (on a side of their own: 'partition $* $missing')"
  CUT=()
  for ((i = 0; i < n; i++)); do
    CUT[i]=""
    for ((id = 0; id < n; id++)); do
      [ "${side_of[id]}" = "${side_of[i]}" ] || CUT[i]+="${CUT[i]:+ }$id"
    done
  done
  names=""
  for ((s = 0; s < $#; s++)); do
    ids=()
    for ((i = 0; i < n; i++)); do [ "${side_of[i]}" != "$s" ] || ids+=("$i"); done
    names+="${names:+ | }${ids[*]}"
  done
  echo "partition into $# sides: $names (every datagram between two sides dropped, both ways)"
  apply_cuts
  if grep -qx -- --partitionable "$DIR/flags" 2>/dev/null; then
    echo "(partitionable mode: a side with a majority of the replicas keeps serving; every other side serves tentatively through its lowest replica, and its work is merged after ./run_cluster.sh heal)"
  else
    echo "(a side with a majority of the replicas forms a primary configuration and keeps serving; the others answer \"not in a majority\" until ./run_cluster.sh heal)"
  fi
}

slow() {
  [ $# -ge 1 ] && [ $# -le 3 ] || die "slow: name a replica, e.g. 'slow 2' or 'slow 2 20 5' (see slow --help)"
  local ms=${2:-20} pct=${3:-5} i n
  [[ "$ms" =~ ^[0-9]+$ ]] && [ "$ms" -ge 1 ] && [ "$ms" -le 10000 ] ||
    die "slow: '$ms' is not a delay in milliseconds from 1 to 10000"
  [[ "$pct" =~ ^[0-9]+$ ]] && [ "$pct" -le 100 ] || die "slow: '$pct' is not a loss percentage from 0 to 100"
  need_cluster
  parse_id slow "$1"
  n=$(cluster_size)
  CUT=()
  for ((i = 0; i < n; i++)); do
    CUT[i]=""
    [ "$i" = "$ID" ] || CUT[i]="slow:$ID:$ms:$pct"
  done
  echo "slow: replica $ID's links held $ms ms and $pct% dropped, each way (any partition lifted)"
  apply_cuts
  echo "(once the others find its claims late, replica $ID leaves the sequencer rotation and the rest go on at full speed; ./run_cluster.sh heal restores its links)"
}

heal() {
  [ $# -eq 0 ] || die "heal takes no arguments (see heal --help)"
  need_cluster
  local i n
  n=$(cluster_size)
  CUT=()
  for ((i = 0; i < n; i++)); do CUT[i]=""; done
  echo "heal: no link cuts"
  apply_cuts
}

watch() {
  [ $# -eq 0 ] || die "watch takes no arguments (see watch --help)"
  local view
  trap 'echo; exit 0' INT
  while :; do
    view=$(status_view 2>&1 || true)  # at most about 1 s
    [ ! -t 1 ] || printf '\033[H\033[2J'
    printf '%s  %s/, every second; Ctrl-C to stop\n%s\n' "$(date +%T)" "$DIR" "$view"
    [ -t 1 ] || echo
    sleep 1
  done
}

# The client on the running cluster's servers, with the caller's arguments
# (options, then a command); its exit status is ours.
client() {
  running || die "no cluster running in $DIR/ (./run_cluster.sh start)"
  exec "$CLIENT" --servers "$(servers_list)" "$@"
}

# ./picture, built if it is missing or older than picture.cpp.
build_picture() {
  if [ -n "${FTQ_PICTURE_BIN:-}" ]; then
    [ -x "$PICTURE" ] || die "FTQ_PICTURE_BIN: no executable $PICTURE"
    return 0
  fi
  if [ ! -x ./picture ] || [ picture.cpp -nt ./picture ]; then
    echo "building ./picture..."
    make -s picture >/dev/null || die "build failed (run make picture to see why)"
  fi
}

# Draws cluster/replica-*.log with ./picture into FILE; its options are
# passed on (it checks their values), its exit status is ours.
picture() {
  local file="" args=() status=0 text=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --text) args+=(--text); text=1; shift ;;
      --from | --to | --first)
        [ $# -ge 2 ] || die "picture: $1 needs a value (see picture --help)"
        args+=("$1" "$2")
        shift 2
        ;;
      --all) args+=(--all); shift ;;
      -*) die "picture: unknown option '$1' (picture [FILE] [--text] [--from MS] [--to MS] [--first N] [--all])" ;;
      *)
        [ -z "$file" ] || die "picture: one FILE only (got '$file' and '$1')"
        file=$1
        shift
        ;;
    esac
  done
  compgen -G "$DIR/replica-*.log" > /dev/null ||
    refuse "picture: no replica logs in $DIR/ (./run_cluster.sh start --trace, then some calls)"
  if [ -z "$file" ] && [ -z "$text" ]; then
    file=$DIR/picture.svg
  elif [ -n "$file" ] && [[ "$file" != /* ]]; then
    file=$CALLER_DIR/$file
  fi
  [ -z "$file" ] || args+=(-o "$file")
  build_picture
  "$PICTURE" "${args[@]}" "$DIR" || status=$?
  if [ "$status" = 1 ] && ! grep -qx -- --trace "$DIR/flags" 2>/dev/null; then
    echo "run_cluster.sh: the cluster was started without --trace: ./run_cluster.sh stop, then start --trace" >&2
  fi
  [ "$status" = 0 ] || exit "$status"
  [ -n "$text" ] || echo "open it in a browser: file://$(cd "$(dirname "$file")" && pwd)/$(basename "$file")"
}

no_arguments() {  # COMMAND ARGS...
  [ $# -eq 1 ] || die "$1 takes no arguments (see $1 --help)"
}

command=${1:-}
[ $# -eq 0 ] || shift
case "$command" in
  start | stop | status | watch | client | kill | restart | partition | slow | heal | picture)
    if [ "${1:-}" = --help ] || [ "${1:-}" = -h ]; then
      command_help "$command"
      exit 0
    fi
    ;;
esac
case "$command" in
  "")
    if running; then
      client
    else
      start 3
      trap stop EXIT
      "$CLIENT" --servers "$(servers_list)"
    fi
    ;;
  start) start "$@" ;;
  stop) no_arguments stop "$@"; stop ;;
  status) no_arguments status "$@"; status_view ;;
  watch) watch "$@" ;;
  client) client "$@" ;;
  kill) kill_replica "$@" ;;
  restart) restart "$@" ;;
  partition) partition "$@" ;;
  slow) slow "$@" ;;
  heal) heal "$@" ;;
  picture) picture "$@" ;;
  -h | --help | help) usage ;;
  *) die "unknown command '$command' (commands: start stop status watch client kill restart partition slow heal picture; ./run_cluster.sh --help)" ;;
esac
