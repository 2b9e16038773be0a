#!/usr/bin/env bash
# run_cluster_test.sh: run_cluster.sh's start-up traps, met as a new user
# meets them.
#
#   run_cluster_test.sh start|other_members|port_taken RUN_CLUSTER SERVER CLIENT PORT_TOOL
#
# start          `out=$(run_cluster.sh start)` returns (the replicas do not
#                hold its stdout), the cluster answers, stop completes every
#                replica's drain
# other_members  after start 3 and stop, `start 5` is refused within seconds
#                naming both member lists, starts nothing and changes nothing;
#                so is a server run by hand with 5 peers or another id; start 3
#                brings the data back, also for a directory that has no
#                members file (written before the check existed)
# port_taken     with replica 1's port held by another process, start fails
#                within seconds naming replica 1 and the reason, and leaves
#                no server running; once the port is free, start works
#
# Every run has its own cluster directory and port range (port_tool free,
# from the printed seed), and stops everything it started, by pid, on every
# path. Leftover servers are found by their --data argument in /proc (Linux).
set -uo pipefail

[ $# -eq 5 ] || { echo "usage: $0 start|other_members|port_taken RUN_CLUSTER SERVER CLIENT PORT_TOOL" >&2; exit 2; }
scenario=$1 script=$2 server=$3 client=$4 port_tool=$5

seed=${FTQ_SEED:-$((RANDOM * 32768 + RANDOM))}
echo "run_cluster $scenario: seed $seed (replay with FTQ_SEED=$seed)"
work=$(mktemp -d "${TMPDIR:-/tmp}/ftq-run-cluster-$scenario-XXXXXX") || exit 2
cdir=$work/cluster
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# Pids of servers running on this run's cluster directory.
our_servers() {
  [ -r /proc/self/cmdline ] || return 0
  # -z: an argument is a "line"; -x: grep's own argument (with [0-9]) does not match.
  grep -lzx -- "$cdir/data/replica-[0-9][0-9]*" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3
}

inflight=()  # what run_bounded started and has not yet waited for
holder=""    # port_tool hold
cleanup() {
  local pid
  for pid in ${inflight[@]+"${inflight[@]}"} $holder $(our_servers); do kill -KILL "$pid" 2>/dev/null; done
  if [ "$failures" -eq 0 ]; then
    rm -rf "$work"
  else
    echo "run_cluster $scenario: $failures checks failed; logs and data kept in $work" >&2
  fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# The scenario's name is mixed in: with FTQ_SEED set for a whole parallel
# `make test`, the three tests must still get three port ranges.
base=$("$port_tool" free 5 "$((seed + $(printf %s "$scenario" | cksum | cut -d' ' -f1)))") || exit 2
export FTQ_CLUSTER_DIR=$cdir FTQ_BASE_PORT=$base FTQ_SERVER_BIN=$server FTQ_CLIENT_BIN=$client
list3=127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))
list5=$list3,127.0.0.1:$((base + 3)),127.0.0.1:$((base + 4))

# Runs a command for at most LIMIT seconds with its stdout through a pipe,
# as `out=$(...)` would: it counts as finished when it has exited and the
# reader has seen the end of the pipe, i.e. nothing (no replica either)
# holds it any more. Sets rc (124 if it did not finish), out, err and took
# (seconds).
run_bounded() {
  local limit=$1 i runner reader t0=$SECONDS
  shift
  rm -f "$work/pipe"
  mkfifo "$work/pipe"
  cat "$work/pipe" > "$work/out" &
  reader=$!
  "$@" < /dev/null > "$work/pipe" 2> "$work/err" &
  runner=$!
  inflight=("$reader" "$runner")
  # Until both are gone (an exited child may answer kill -0 until the
  # shell has reaped it, which the next sleep does).
  for ((i = 0; i < limit * 10; i++)); do
    kill -0 "$reader" 2>/dev/null || kill -0 "$runner" 2>/dev/null || break
    sleep 0.1
  done
  took=$((SECONDS - t0))
  if kill -0 "$reader" 2>/dev/null || kill -0 "$runner" 2>/dev/null; then
    rc=124
    kill -KILL "$runner" "$reader" 2>/dev/null
  else
    wait "$runner"
    rc=$?
  fi
  wait "$reader" 2>/dev/null
  inflight=()
  out=$(cat "$work/out")
  err=$(cat "$work/err")
  echo "${*##*/}: exit status $rc after ${took}s"
}

expect_rc() {  # what, expected rc
  [ "$rc" -eq "$2" ] || fail "$1: exit status $rc, expected $2 (after ${took}s)
  stdout: $out
  stderr: $err"
}

expect_eq() {  # what, actual, expected
  [ "$2" = "$3" ] || fail "$1: expected '$3', got '$2'"
}

expect_in() {  # what, text, wanted substring
  [[ "$2" == *"$3"* ]] || fail "$1: expected '$3' in: $2"
}

no_servers_left() {
  local left
  left=$(our_servers | tr '\n' ' ')
  [ -z "$left" ] || fail "$1: servers still running on $cdir: pids $left"
}

# Every directory and file under the cluster directory, with checksums.
fingerprint() { (cd "$cdir" && find . | LC_ALL=C sort && find . -type f | LC_ALL=C sort | xargs cksum); }

call() { "$client" --servers "$list3" --timeout 5 "$@" 2>&1; }

scenario_start() {
  run_bounded 20 "$script" start
  expect_rc "out=\$(run_cluster.sh start)" 0
  expect_in "start" "$out" "started 3 replicas on $list3"
  [ "$took" -le 10 ] || fail "start took ${took}s"
  local status
  status=$(call status)
  for i in 0 1 2; do expect_in "status" "$status" "127.0.0.1:$((base + i)) up: replica $i,"; done
  expect_eq "create" "$(call create 42)" "1"
  expect_eq "push" "$(call push 1 7)" "ok"
  expect_eq "pop" "$(call pop 1)" "7"
  # What the replicas say goes to their logs, not to the caller.
  expect_in "replica 0's log" "$(cat "$cdir/replica-0.log")" "listening on 127.0.0.1:$base"
  run_bounded 20 "$script" stop
  expect_rc "stop" 0
  expect_in "stop" "$out" "stopped"
  no_servers_left "after stop"
  for i in 0 1 2; do
    local log
    log=$(cat "$cdir/replica-$i.log")
    expect_in "replica $i's log" "$log" "snapshot written"
    [[ "$log" != *"drain timed out"* ]] || fail "replica $i: drain timed out on a full stop: $log"
  done
}

scenario_other_members() {
  run_bounded 20 "$script" start
  expect_rc "start 3" 0
  expect_eq "create" "$(call create 11)" "1"
  expect_eq "push" "$(call push 1 5)" "ok"
  run_bounded 20 "$script" stop
  expect_rc "stop" 0
  local before
  before=$(fingerprint)

  run_bounded 20 "$script" start 5
  expect_rc "start 5 on a cluster of 3" 2
  [ "$took" -le 5 ] || fail "start 5 took ${took}s to fail"
  expect_in "start 5" "$err" "$list3"
  expect_in "start 5" "$err" "$list5"
  expect_in "start 5" "$err" "./run_cluster.sh start 3"
  no_servers_left "after start 5"
  [ "$(fingerprint)" = "$before" ] || fail "start 5 changed $cdir"

  # The server's own check, for whoever starts servers by hand.
  run_bounded 10 "$server" --id 0 --peers "$list5" --data "$cdir/data/replica-0"
  expect_rc "server with 5 peers on a directory of 3" 4
  expect_in "server with 5 peers" "$err" "member 0 of a cluster of 3 ($list3)"
  expect_in "server with 5 peers" "$err" "member 0 of a cluster of 5 ($list5)"
  run_bounded 10 "$server" --id 1 --peers "$list3" --data "$cdir/data/replica-0"
  expect_rc "server with another id" 4
  expect_in "server with another id" "$err" "member 1 of a cluster of 3"
  no_servers_left "after the refused servers"
  [ "$(fingerprint)" = "$before" ] || fail "a refused server changed $cdir"

  # What the message advises works, also for a directory from before the
  # check (no members file: adopted).
  rm "$cdir/data/replica-1/members"
  run_bounded 20 "$script" start 3
  expect_rc "start 3 again" 0
  expect_eq "data kept" "$(call id 11)" "1"
  expect_eq "data kept" "$(call pop 1)" "5"
  expect_in "replica 1's members file, written again" "$(cat "$cdir/data/replica-1/members")" "peers $list3"
  run_bounded 20 "$script" stop
  expect_rc "stop" 0
  no_servers_left "after stop"
}

scenario_port_taken() {
  local i
  "$port_tool" hold $((base + 1)) 120 > "$work/hold.out" &
  holder=$!
  for ((i = 0; i < 50; i++)); do
    grep -qs holding "$work/hold.out" && break
    sleep 0.1
  done
  grep -qs holding "$work/hold.out" || { fail "port_tool could not hold port $((base + 1))"; return; }

  run_bounded 20 "$script" start
  expect_rc "start with replica 1's port taken" 1
  [ "$took" -le 8 ] || fail "start took ${took}s to fail"
  expect_in "start" "$err" "replica 1 (127.0.0.1:$((base + 1))) exited"
  expect_in "start" "$err" "cannot bind 127.0.0.1:$((base + 1)): Address already in use"
  no_servers_left "after the failed start"
  [ ! -e "$cdir/pids" ] || fail "the failed start left $cdir/pids"
  [ ! -e "$cdir/data/replica-1" ] || fail "replica 1 created its data directory before binding"

  kill "$holder"
  wait "$holder" 2>/dev/null
  holder=""
  run_bounded 20 "$script" start
  expect_rc "start once the port is free" 0
  expect_in "start once the port is free" "$out" "started 3 replicas on $list3"
  run_bounded 20 "$script" stop
  expect_rc "stop" 0
  no_servers_left "after stop"
}

case "$scenario" in
  start) scenario_start ;;
  other_members) scenario_other_members ;;
  port_taken) scenario_port_taken ;;
  *) echo "unknown scenario '$scenario'" >&2; exit 2 ;;
esac
# The servers' exit statuses do not reach us; a sanitizer's report (make
# test-sanitize) still shows in their logs.
for log in "$cdir"/replica-*.log; do
  ! grep -qE "Sanitizer|runtime error:" "$log" || fail "sanitizer report in $log"
done
[ "$failures" -eq 0 ] && echo "run_cluster $scenario: passed"
[ "$failures" -eq 0 ]
