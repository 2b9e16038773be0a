#!/usr/bin/env bash
# perf_vs_etcd.sh: FTQueue's writes beside a 3-member etcd's, with the
# durability matched, in one run (issue #8's performance targets).
#
#   FTQueue default (log written to the OS)  beside  etcd --unsafe-no-fsync
#   FTQueue --fsync (log synced to disk)     beside  etcd with its defaults
#
# For each pair: 1 closed-loop client (median latency) and 32 (writes per
# second), each for SECONDS (default 5) after 1 s of warm-up, etcd through
# its JSON gateway (bench --etcd), FTQueue with half pushes and half pops
# (bench --local: 3 local replicas). Prints a table with the ratios.
#
# Not part of `make test`. It needs etcd and etcdctl (Debian: apt-get
# install etcd-server etcd-client) and skips, with status 0, without them.
#
#   tests/perf_vs_etcd.sh [BUILD_DIR] [SECONDS]   (default: build, 5)
#
# Every process it starts is recorded by pid and killed by that pid on every
# path (trap); nothing is killed by name.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
seconds=${2:-5}
bench=$build/tests/bench
server=$build/server

source "$root/tests/etcd_cluster.sh"
etcd_require "$bench" "$server"

tmp=$(mktemp -d /tmp/perf-vs-etcd.XXXXXX)
cleanup() {
  etcd_stop
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# The bench's last line: ops_per_s=N p50_ms=X p99_ms=Y errors=E
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" | tail -1; }

run_etcd() {  # CLIENTS -> last line
  "$bench" --etcd "$etcd_endpoints" --clients "$1" --warmup 1 --seconds "$seconds" | tail -1
}
run_ftq() {  # CLIENTS [--fsync] -> last line
  "$bench" --local --members 3 --server-bin "$server" --clients "$1" --seconds "$seconds" "${@:2}" | tail -1
}

rows=()
compare() {  # LABEL ETCD_FLAGS FTQ_FLAGS
  local label=$1 etcd_flags=$2 ftq_flags=$3
  mkdir -p "$tmp/$label"
  # shellcheck disable=SC2086
  etcd_start "$tmp/$label" $etcd_flags || exit 1
  local e1 e32
  e1=$(run_etcd 1)
  e32=$(run_etcd 32)
  etcd_stop
  local f1 f32
  # shellcheck disable=SC2086
  f1=$(run_ftq 1 $ftq_flags)
  # shellcheck disable=SC2086
  f32=$(run_ftq 32 $ftq_flags)
  local ep50 fp50 er fr
  ep50=$(echo "$e1" | field p50_ms)
  fp50=$(echo "$f1" | field p50_ms)
  er=$(echo "$e32" | field ops_per_s)
  fr=$(echo "$f32" | field ops_per_s)
  rows+=("| $label | $er | $fr | $(awk -v a="$fr" -v b="$er" 'BEGIN { printf "%.1f", (b > 0 ? a / b : 0) }') | $ep50 | $fp50 | $(awk -v a="$fp50" -v b="$ep50" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }') | $(echo "$e32" | field errors) / $(echo "$f32" | field errors) |")
}

# The disk's speed drifts on a shared machine (a lone fdatasync has taken
# 130 us one day and 500 us another), and the second row is bound by it:
# measured before and after, so a reader can tell a slow disk from a slow
# program.
disk_before=$("$bench" --disk-probe | head -2)
compare "to the OS: etcd --unsafe-no-fsync, FTQueue default" "--unsafe-no-fsync" ""
compare "to disk: etcd default, FTQueue --fsync" "" "--fsync"
disk_after=$("$bench" --disk-probe | head -2)

echo "3 members each, on this machine; 32 clients for writes/s, 1 client for the median; ${seconds} s each"
echo
echo "| durability | etcd writes/s | FTQueue ops/s | ratio (target >= 10) | etcd p50 ms | FTQueue p50 ms | ratio (target <= 0.33) | errors etcd / FTQueue |"
echo "|---|---|---|---|---|---|---|---|"
for r in "${rows[@]}"; do echo "$r"; done
echo
echo "disk before: $disk_before"
echo "disk after:  $disk_after"
