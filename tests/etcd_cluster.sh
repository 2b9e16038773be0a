# etcd_cluster.sh: start a 3-member etcd on loopback, for the comparison
# scripts (failover_vs_etcd.sh, perf_vs_etcd.sh). Sourced, not run.
#
#   etcd_start DIR [ETCD FLAGS...]   starts e0, e1, e2 with data under DIR and
#                                    waits until the cluster is healthy; sets
#                                    etcd_endpoints (HOST:PORT,... for bench
#                                    --etcd), etcd_urls (for etcdctl) and
#                                    etcd_pids; returns 1 if it is not healthy
#   etcd_leader                      prints the index (0-2) of the leader
#   etcd_stop                        kills every member by its pid and waits
#
# The caller keeps its own trap: etcd_stop is safe to call more than once.

#   etcd_require FILE...             exits 0 ("skip") without etcd and
#                                    etcdctl, 2 if a FILE is not executable

etcd_require() {
  if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
    echo "skip: etcd is not installed (Debian: apt-get install etcd-server etcd-client)"
    exit 0
  fi
  local f
  for f in "$@"; do
    if [[ ! -x $f ]]; then
      echo "error: $f not found; build first (make test), or pass the build directory" >&2
      exit 2
    fi
  done
}

# Six ports nobody listens on: a random base, checked (bounded tries).
etcd_port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

etcd_start() {
  local dir=$1
  shift
  local base=0 b ok i
  for _ in $(seq 1 50); do
    b=$((20000 + RANDOM % 30000))
    ok=1
    for i in 0 1 2 3 4 5; do etcd_port_free $((b + i)) || ok=0; done
    if ((ok)); then base=$b; break; fi
  done
  if ((base == 0)); then echo "error: found no six free ports" >&2; return 1; fi
  local cluster=""
  etcd_endpoints=""
  etcd_pids=()
  etcd_ports=()
  for i in 0 1 2; do
    cluster+="${cluster:+,}e$i=http://127.0.0.1:$((base + 3 + i))"
    etcd_endpoints+="${etcd_endpoints:+,}127.0.0.1:$((base + i))"
    etcd_ports+=($((base + i)))
  done
  for i in 0 1 2; do
    etcd --name "e$i" --data-dir "$dir/e$i" \
      --listen-client-urls "http://127.0.0.1:$((base + i))" --advertise-client-urls "http://127.0.0.1:$((base + i))" \
      --listen-peer-urls "http://127.0.0.1:$((base + 3 + i))" --initial-advertise-peer-urls "http://127.0.0.1:$((base + 3 + i))" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "ftq-$base" \
      "$@" >"$dir/e$i.log" 2>&1 &
    etcd_pids+=($!)
  done
  etcd_urls=$(echo "$etcd_endpoints" | sed 's|\([^,]*\)|http://\1|g')
  for _ in $(seq 1 100); do
    if etcdctl --endpoints="$etcd_urls" endpoint health >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "error: etcd did not become healthy; logs in $dir" >&2
  return 1
}

etcd_leader() {
  local i fields member lead
  for i in 0 1 2; do
    fields=$(etcdctl --endpoints="http://127.0.0.1:${etcd_ports[$i]}" endpoint status -w fields 2>/dev/null || true)
    member=$(echo "$fields" | sed -n 's/^"MemberID" : //p')
    lead=$(echo "$fields" | sed -n 's/^"Leader" : //p')
    if [[ -n $member && $member == "$lead" ]]; then echo "$i"; return 0; fi
  done
  echo -1
}

etcd_stop() {
  local p
  for p in "${etcd_pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${etcd_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  etcd_pids=()
}
