#!/usr/bin/env bash
# failover_vs_etcd.sh: the same failover, FTQueue beside etcd, in one run.
#
# 32 closed-loop clients write to a 3-member cluster on this machine; 2 s
# into the measurement the member that matters most is killed with SIGKILL
# (etcd: its leader; FTQueue: the replica that sequences next). Printed side
# by side: the longest time with no write completed anywhere, throughput,
# latency, errors. etcd runs with its default settings (heartbeat 100 ms,
# election timeout 1000 ms, fsync on); FTQueue with its own (--suspect-ms
# 300, log written to the OS; add FTQ_FSYNC=1 for --fsync).
#
# Not part of `make test`. It needs etcd and etcdctl (Debian: apt-get
# install etcd-server etcd-client) and skips, with status 0, without them.
#
#   tests/failover_vs_etcd.sh [BUILD_DIR]     (default: build, after make test)
#
# Every process it starts is recorded by pid and killed by that pid on every
# path (trap); nothing is killed by name.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
bench=$build/tests/bench
server=$build/server

source "$root/tests/etcd_cluster.sh"
etcd_require "$bench" "$server"

tmp=$(mktemp -d /tmp/failover-vs-etcd.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

if ! etcd_start "$tmp"; then trap - EXIT; exit 1; fi
pids+=("${etcd_pids[@]}")
endpoints=$etcd_endpoints

# The etcd run: the bench writes for 1 s of warm-up and 10 s measured; the
# leader dies 2 s into the measurement.
SECONDS=0
"$bench" --etcd "$endpoints" --clients 32 --warmup 1 --seconds 10 >"$tmp/etcd.out" 2>&1 &
bench_pid=$!
pids+=($bench_pid)
sleep 3
leader=$(etcd_leader)
if ((leader < 0)); then echo "error: no etcd leader found" >&2; exit 1; fi
kill -9 "${etcd_pids[$leader]}"
wait "${etcd_pids[$leader]}" 2>/dev/null || true
killed_at=$SECONDS
wait "$bench_pid" || true
etcd_line=$(grep '^etcd:' "$tmp/etcd.out" || echo "etcd: no result")
etcd_gap=$(sed -n 's/^longest_gap_ms=\([0-9]*\) gap_starts_s=\(.*\)$/\1 (starts at \2 s)/p' "$tmp/etcd.out")

# The FTQueue run: the same load and timing (bench --failover).
ftq_args=(--failover --members 3 --kill next --server-bin "$server")
ftq=$("$bench" "${ftq_args[@]}" 2>&1 | grep '^| 3 replicas' || echo "| FTQueue run failed |")

echo "etcd (leader e$leader killed about $((killed_at - 1)) s into the measurement): $etcd_line"
echo "etcd longest time with no write completed: ${etcd_gap:-?} ms"
echo
echo "FTQueue (bench --failover --members 3 --kill next):"
echo "$ftq"
echo
ftq_gap=$(echo "$ftq" | awk -F'|' '{print $4}' | awk '{print $1}')
ftq_rate=$(echo "$ftq" | awk -F'|' '{print $11}' | tr -d ' ')
etcd_rate=$(echo "$etcd_line" | sed -n 's/^etcd: \([0-9]*\) writes.*/\1/p')
echo "| system | member killed | longest gap, ms | writes/s over 10 s |"
echo "|---|---|---|---|"
echo "| etcd 3-member, defaults | the leader | ${etcd_gap%% *} | ${etcd_rate:-?} |"
echo "| FTQueue 3 replicas, defaults | the next sequencer | ${ftq_gap:-?} | ${ftq_rate:-?} |"
