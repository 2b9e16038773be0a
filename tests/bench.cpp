// bench: how many operations a second FTQueue sustains, and how long one takes.
//
//   bench --servers HOST:PORT,... --clients C --seconds S [options]
//       Drive a running cluster. C logical clients, each with its own client
//       id and at most one request outstanding (closed loop), spread over the
//       servers, speaking the client protocol of ./client.
//   bench --table [--seconds S] [--server-bin ./server]
//       Start local clusters (separate server processes) and print the
//       standard table; this is what `make bench` runs.
//   bench --local --members N --clients C --seconds S [--loss P] [--fsync]
//         [--slow ID:MS[:PCT]] [--via ID,...]
//       One case on a local cluster it starts itself; --slow makes member
//       ID's links slow (server --cut-file slow:ID:MS[:PCT] in the other
//       members' files: MS ms each way, PCT% of datagrams lost each way),
//       --via gives the clients only these replicas.
//   bench --slow-member-table [--seconds S]
//       One slow member (issue 25): 1 client of replica 0, then 32 clients
//       of replicas 0 and 1, each with clean links and then with member 2's
//       links at 20 ms + 5% loss each way, in one run; `make bench` prints
//       these rows in its table too.
//   bench --failover --members N [--loss P] [--kill next|other|ID]
//       A local cluster under load; 2 s in, one replica is killed (SIGKILL),
//       3 s later restarted on its files: the longest time with no call
//       completed, the calls in flight at the kill, throughput around it,
//       and how long the restarted replica takes to catch up.
//   bench --failover-table
//       The standard failover cases (3 and 5 replicas, loss 0 and 0.1);
//       `make bench` runs it after the table.
//   bench --disk-probe [--members N]
//       What a sync costs on this disk now: small appends, each followed by
//       fdatasync, by one writer and then by N at once (default 3, each on
//       its own file, like N replicas' logs), in a temporary directory;
//       then the same with writes into a preallocated file, as the --fsync
//       log is written. The --fsync figures depend on it more than on
//       anything FTQueue does.
//
// Options: --warmup S (default 1), --queues Q (default 4), --push-percent P
// (default 50; the rest are pops), --pids P1,P2,... (servers whose CPU and
// memory to report when driving a cluster it did not start).
// The last line is always: ops_per_s=N p50_ms=X p99_ms=Y errors=E
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../net.hpp"
#include "../wire.hpp"
#include "harness.hpp"

namespace {

struct Options {
  std::string servers;
  int clients = 32;
  double seconds = 5;
  double warmup = 1;
  int queues = 4;
  int push_percent = 50;
  std::vector<int> pids;
  // local cluster
  bool table = false, local = false, fsync = false, disk_probe = false;
  int members = 3;
  double loss = 0;
  std::string server_bin = "./server";
  uint64_t total_ops = 0;  // stop after this many operations instead of --seconds
  bool failover = false, failover_table = false, etcd = false;
  std::string kill = "next";  // failover: next (sequences next), other, or a replica id
  std::string slow;           // --slow ID:MS[:PCT]: member ID's links slow (local cluster)
  std::vector<int> via;       // --via: the replicas the clients talk to (default all)
  bool slow_table = false;
};

struct ProcessUsage {
  double cpu_s = 0;       // user + system
  long rss_kb = 0, peak_rss_kb = 0;
};

ProcessUsage usage_of(int pid) {
  ProcessUsage u;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');
  if (close != std::string::npos) {
    std::istringstream rest(text.substr(close + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14) utime = std::stoull(field);
      if (i == 15) stime = std::stoull(field);
    }
    u.cpu_s = static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) u.rss_kb = std::atol(line.c_str() + 6);
    if (line.rfind("VmHWM:", 0) == 0) u.peak_rss_kb = std::atol(line.c_str() + 6);
  }
  return u;
}

struct Result {
  double seconds = 0;
  uint64_t ops = 0, errors = 0, retries = 0;
  std::vector<uint32_t> latency_us;  // of operations completed in the window
  // Every call completed in the window: when it was first sent, when its
  // answer came (failover figures).
  std::vector<std::pair<uint64_t, uint64_t>> calls;
  double percentile_ms(double p) {
    if (latency_us.empty()) return 0;
    size_t i = std::min(latency_us.size() - 1, static_cast<size_t>(p / 100.0 * latency_us.size()));
    return latency_us[i] / 1000.0;
  }
  double ops_per_s() const { return seconds > 0 ? ops / seconds : 0; }
};

// One logical client: one request in flight, retried like ./client retries.
struct LogicalClient {
  uint64_t id = 0, request_no = 0;
  net::ServerRotation rotation;  // as ./client's
  wire::Operation op;
  net::Tries tries;
  // Its own, as each ./client has: one estimator fed by every client's
  // replies would follow the latest burst, not the latency of a call.
  net::RetryPolicy retry;
  uint64_t resend_at = 0;
  int silent_tries = 0;
  uint64_t on_server_since = 0;  // when it last turned to its current server
};

class Driver {
 public:
  Driver(const Options& o, std::vector<net::Endpoint> servers) : o_(o), servers_(std::move(servers)), rng_(42) {}

  bool setup(std::string& error) {
    sockaddr_in any{};
    any.sin_family = AF_INET;
    fd_ = net::open_udp(any, error);
    if (fd_ < 0) return false;
    // Create the queues through the same machinery: one client, one call each.
    for (int q = 1; q <= o_.queues; ++q) {
      LogicalClient c = make_client(0);
      issue(c, wire::Operation{c.id, 0, wire::OpCode::Create, q, 0}, net::now_us());
      clients_.push_back(c);
      Result ignored;
      if (!run_until_idle(ignored, net::now_us() + 10'000'000)) {
        error = "could not create the benchmark queues (is the cluster up?)";
        return false;
      }
      clients_.clear();
    }
    return true;
  }

  // Called at every step of run(), with the time: a failover run kills and
  // restarts a replica from here.
  std::function<void(uint64_t)> on_step;

  uint64_t measure_to() const { return measure_to_; }

  Result run() {
    for (int i = 0; i < o_.clients; ++i) clients_.push_back(make_client(static_cast<size_t>(i)));
    uint64_t now = net::now_us();
    for (auto& c : clients_) issue(c, next_op(c), now);
    const uint64_t measure_from = now + static_cast<uint64_t>(o_.warmup * 1e6);
    const uint64_t measure_to = o_.total_ops ? UINT64_MAX : measure_from + static_cast<uint64_t>(o_.seconds * 1e6);
    Result r;
    measure_from_ = measure_from;
    measure_to_ = measure_to;
    result_ = &r;
    while (true) {
      now = net::now_us();
      if (now >= measure_to) break;
      if (o_.total_ops && r.ops >= o_.total_ops) break;
      if (on_step) on_step(now);
      step(now, true);
    }
    r.seconds = (std::min(net::now_us(), measure_to) - measure_from) / 1e6;
    std::sort(r.latency_us.begin(), r.latency_us.end());
    return r;
  }

 private:
  LogicalClient make_client(size_t index) {
    LogicalClient c;
    c.id = net::random_u64();
    c.rotation = net::ServerRotation(servers_.size(), index);
    by_id_[c.id] = clients_.size();
    return c;
  }

  wire::Operation next_op(LogicalClient& c) {
    int q = 1 + static_cast<int>(rng_() % o_.queues);
    bool push = static_cast<int>(rng_() % 100) < o_.push_percent;
    return wire::Operation{c.id, 0, push ? wire::OpCode::Push : wire::OpCode::Pop, q, static_cast<int32_t>(rng_())};
  }

  void issue(LogicalClient& c, wire::Operation op, uint64_t now) {
    op.client_id = c.id;
    op.request_no = ++c.request_no;
    c.op = op;
    c.tries = net::Tries{};
    c.silent_tries = 0;
    c.on_server_since = now;
    send(c, now);
  }

  void send(LogicalClient& c, uint64_t now) {
    const std::string request = wire::encode_request(c.op, c.tries.next_attempt());
    for (int copy = 0; copy < c.retry.copies(); ++copy) net::send_to(fd_, request, servers_[c.rotation.current()].addr);
    c.tries.sent(now);
    c.resend_at = now + c.retry.timeout_us(c.silent_tries);
  }

  // Waits for replies or the earliest retry; true if all setup calls finished.
  bool run_until_idle(Result& r, uint64_t deadline) {
    result_ = &r;
    measure_from_ = measure_to_ = 0;
    while (net::now_us() < deadline) {
      step(net::now_us(), false);
      if (pending_ == 0) return true;
    }
    return false;
  }

  void step(uint64_t now, bool continue_loop) {
    uint64_t next = UINT64_MAX;
    pending_ = 0;
    for (auto& c : clients_)
      if (c.resend_at) {
        next = std::min(next, c.resend_at);
        ++pending_;
      }
    // Rounded up: rounded down, a retry due in under a millisecond made this
    // loop spin (poll with timeout 0), burning a core the replicas share.
    int timeout = next == UINT64_MAX ? 10 : next <= now ? 0 : static_cast<int>((next - now + 999) / 1000);
    pollfd p{fd_, POLLIN, 0};
    ::poll(&p, 1, std::min(timeout, 10));
    char buf[2048];
    for (int i = 0; i < 4096; ++i) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) break;
      wire::Reply rep;
      if (!wire::decode_reply(buf, static_cast<size_t>(n), rep)) continue;
      auto it = by_id_.find(rep.client_id);
      if (it == by_id_.end() || it->second >= clients_.size()) continue;
      LogicalClient& c = clients_[it->second];
      if (c.id != rep.client_id || rep.request_no != c.request_no || c.resend_at == 0) continue;  // late duplicate
      c.rotation.answered();
      if (rep.code == wire::ReplyCode::NotInMajority) {  // as ./client: ask the next replica, a little later
        c.rotation.leave(net::now_us());
        c.silent_tries = 0;
        c.on_server_since = net::now_us();
        c.resend_at = c.on_server_since + 5'000;
        continue;
      }
      complete(c, rep, net::now_us(), continue_loop);
    }
    now = net::now_us();
    for (auto& c : clients_) {
      if (c.resend_at == 0 || now < c.resend_at) continue;
      if (in_window(now)) ++result_->retries;
      // As ./client: a server silent for 8 tries or 1 s is left for the next.
      if (++c.silent_tries >= 8 || now >= c.on_server_since + 1'000'000) {
        c.silent_tries = 0;
        c.rotation.leave_silent(now);
        c.on_server_since = now;
      }
      send(c, now);
    }
  }

  bool in_window(uint64_t t) const { return t >= measure_from_ && t < measure_to_; }

  void complete(LogicalClient& c, const wire::Reply& rep, uint64_t now, bool continue_loop) {
    c.resend_at = 0;
    bool ok = rep.code == wire::ReplyCode::Ok || rep.code == wire::ReplyCode::Empty;
    if (rep.code != wire::ReplyCode::Busy) c.retry.on_reply(c.tries, rep.attempt, rep.lossy, now);
    if (in_window(now)) {
      if (ok) {
        ++result_->ops;
        result_->latency_us.push_back(static_cast<uint32_t>(std::min<uint64_t>(now - c.tries.first_sent_us, UINT32_MAX)));
        result_->calls.emplace_back(c.tries.first_sent_us, now);
      } else {
        ++result_->errors;
      }
    }
    if (!continue_loop) return;
    if (!ok) {  // busy: the same operation again, after it is reported
      issue(c, c.op, now);
      return;
    }
    issue(c, next_op(c), now);
  }

  Options o_;
  std::vector<net::Endpoint> servers_;
  std::mt19937_64 rng_;
  int fd_ = -1;
  std::vector<LogicalClient> clients_;
  std::map<uint64_t, size_t> by_id_;
  uint64_t measure_from_ = 0, measure_to_ = 0;
  size_t pending_ = 0;
  Result* result_ = nullptr;
};

std::string format_ms(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, ms < 10 ? "%.3f" : "%.1f", ms);
  return buf;
}

struct CaseOutcome {
  Result result;
  std::vector<ProcessUsage> before, after;
};

bool drive(const Options& o, const std::string& servers, const std::vector<int>& pids, CaseOutcome& out,
           std::string& error) {
  std::vector<net::Endpoint> endpoints;
  if (!net::parse_endpoints(servers, endpoints, error)) return false;
  Driver d(o, endpoints);
  if (!d.setup(error)) return false;
  for (int pid : pids) out.before.push_back(usage_of(pid));
  out.result = d.run();
  for (int pid : pids) out.after.push_back(usage_of(pid));
  return true;
}

void print_last_line(Result& r) {
  std::printf("ops_per_s=%.0f p50_ms=%s p99_ms=%s errors=%" PRIu64 "\n", r.ops_per_s(),
              format_ms(r.percentile_ms(50)).c_str(), format_ms(r.percentile_ms(99)).c_str(), r.errors);
}

void print_report(CaseOutcome& c) {
  Result& r = c.result;
  std::printf("%.0f ops/s over %.1f s: %" PRIu64 " ops, %" PRIu64 " errors, %" PRIu64 " client retries\n",
              r.ops_per_s(), r.seconds, r.ops, r.errors, r.retries);
  std::printf("latency ms: p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", format_ms(r.percentile_ms(50)).c_str(),
              format_ms(r.percentile_ms(90)).c_str(), format_ms(r.percentile_ms(99)).c_str(),
              format_ms(r.percentile_ms(99.9)).c_str(), format_ms(r.percentile_ms(100)).c_str());
  for (size_t i = 0; i < c.after.size(); ++i)
    std::printf("server %zu: cpu %.2f s (%.0f%% of a core), rss %ld KiB, peak %ld KiB\n", i,
                c.after[i].cpu_s - c.before[i].cpu_s, 100 * (c.after[i].cpu_s - c.before[i].cpu_s) / r.seconds,
                c.after[i].rss_kb, c.after[i].peak_rss_kb);
}

size_t count_text(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A local cluster, as run_cluster.sh would start it, on kernel-chosen ports.
// `slow` ("ID:MS[:PCT]", or empty): member ID's links are slow, through the
// server's --cut-file switch. The entry goes in every other member's file
// (the server models both directions of a link at the end that lists it:
// server --help), written before the start; `error` says if a server did
// not confirm it. The drops are seeded (--seed 1), so they repeat.
struct LocalCluster {
  std::string dir, error;
  std::unique_ptr<harness::Cluster> cluster;
  LocalCluster(const Options& o, int members, double loss, bool fsync, const std::string& slow = "") {
    dir = harness::make_temp_dir("bench");
    std::vector<std::string> extra;
    if (fsync) extra.push_back("--fsync");
    if (!slow.empty() && loss == 0) extra.insert(extra.end(), {"--seed", "1"});
    harness::ClusterConfig config{members, loss, 1, o.server_bin, dir, extra};
    config.cut_files = !slow.empty();
    cluster = std::make_unique<harness::Cluster>(config);
    const int slow_member = slow.empty() ? -1 : std::atoi(slow.c_str());
    for (int i = 0; i < members && !slow.empty(); ++i)
      if (i != slow_member) cluster->cut(i, "slow:" + slow);
    cluster->start_all();
    // Each server logs "link cuts (test switch): slow:..." once it has read
    // its file, or an error (a bad entry) and "link cuts unchanged".
    for (int i = 0; i < members && !slow.empty(); ++i) {
      if (i == slow_member) continue;
      bool read = false;
      for (int waited_ms = 0; !read && waited_ms < 5000; waited_ms += 10) {
        read = count_text(cluster->log_text(i), "link cuts (test switch): slow:") > 0;
        if (!read) ::usleep(10'000);
      }
      if (read) continue;
      const std::string log = cluster->log_text(i);
      size_t at = log.find("error:");
      at = at == std::string::npos ? 0 : at;
      error = "replica " + std::to_string(i) + " did not take --cut-file slow:" + slow + " (its log: " +
              log.substr(at, std::min<size_t>(log.find('\n', at) - at, 300)) + ")";
    }
  }
  ~LocalCluster() {
    cluster->stop_all();
    cluster.reset();
    harness::remove_tree(dir);
  }
  std::vector<int> pids() const { return cluster->pids(); }
  // The servers the clients talk to: `via`'s, or all.
  std::string servers(const std::vector<int>& via) const {
    if (via.empty()) return cluster->servers();
    std::string list;
    for (int i : via) list += (list.empty() ? "" : ",") + cluster->endpoint(i);
    return list;
  }
  // Configurations replica i has installed so far (its log's lines).
  size_t installs(int i) const { return count_text(cluster->log_text(i), "] configuration "); }
};

int run_local(const Options& o) {
  LocalCluster lc(o, o.members, o.loss, o.fsync, o.slow);
  if (!lc.error.empty()) {
    std::fprintf(stderr, "bench: %s\n", lc.error.c_str());
    return 1;
  }
  CaseOutcome c;
  std::string error;
  if (!drive(o, lc.servers(o.via), lc.pids(), c, error)) {
    std::fprintf(stderr, "bench: %s\n", error.c_str());
    return 1;
  }
  print_report(c);
  print_last_line(c.result);
  return c.result.ops > 0 ? 0 : 1;
}

std::string cpu_column(const CaseOutcome& c) {
  std::string cpu;
  for (size_t i = 0; i < c.after.size(); ++i)
    cpu += (i ? " " : "") +
           std::to_string(static_cast<int>(100 * (c.after[i].cpu_s - c.before[i].cpu_s) / c.result.seconds));
  return cpu;
}

void print_row(const char* name, CaseOutcome& c) {
  Result& r = c.result;
  std::printf("| %s | %.0f | %s | %s | %s | %s | %s | %" PRIu64 " | %" PRIu64 " | %s |\n", name, r.ops_per_s(),
              format_ms(r.percentile_ms(50)).c_str(), format_ms(r.percentile_ms(90)).c_str(),
              format_ms(r.percentile_ms(99)).c_str(), format_ms(r.percentile_ms(99.9)).c_str(),
              format_ms(r.percentile_ms(100)).c_str(), r.errors, r.retries, cpu_column(c).c_str());
  std::fflush(stdout);
}

void print_table_header() {
  std::printf("| case | ops/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | retries | server CPU (%% of a core, each) |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  std::fflush(stdout);
}

// One slow member (issue 25, "one slow member paces everyone"): member 2's
// links at 20 ms and 5% loss each way, as the issue measured with network
// namespaces, here through the server's --cut-file switch (no root); the
// clients talk to the healthy replicas only. Each case runs with clean
// links and then with the slow member, in the same run. Then how many
// configurations each replica installed during each case (0: none; the
// membership protocol may churn when a link is slow). False if a case
// failed (or completed nothing): the table's rows are figures, not verdicts.
bool run_slow_member_rows(const Options& o) {
  struct Case {
    const char* name;
    int clients;
    std::vector<int> via;
    const char* slow;
  };
  const Case cases[] = {
      {"3 replicas, 1 client of replica 0, clean links", 1, {0}, ""},
      {"3 replicas, 1 client of replica 0, member 2 at 20 ms + 5% loss each way", 1, {0}, "2:20:5"},
      {"3 replicas, 32 clients of replicas 0 and 1, clean links", 32, {0, 1}, ""},
      {"3 replicas, 32 clients of replicas 0 and 1, member 2 at 20 ms + 5% loss each way", 32, {0, 1}, "2:20:5"},
  };
  bool ok = true;
  std::string installs;
  for (const Case& k : cases) {
    Options co = o;
    co.clients = k.clients;
    co.total_ops = 0;
    LocalCluster lc(co, 3, 0, false, k.slow);
    CaseOutcome c;
    std::string error = lc.error;
    std::vector<size_t> before;
    // Installed everywhere before the measured run (bounded), so that the
    // count after it is what the run saw.
    for (int waited_ms = 0; error.empty() && waited_ms < 5000; waited_ms += 10) {
      before = {lc.installs(0), lc.installs(1), lc.installs(2)};
      if (std::min({before[0], before[1], before[2]}) > 0) break;
      ::usleep(10'000);
    }
    if (!error.empty() || !drive(co, lc.servers(k.via), lc.pids(), c, error) || c.result.ops == 0) {
      std::printf("| %s | failed: %s |\n", k.name, error.empty() ? "no operation completed" : error.c_str());
      std::fflush(stdout);
      ok = false;
      continue;
    }
    print_row(k.name, c);
    installs += std::string(installs.empty() ? "" : "; ") + (*k.slow ? "slow" : "clean") + ", " +
                std::to_string(k.clients) + (k.clients == 1 ? " client:" : " clients:");
    for (int i = 0; i < 3; ++i) installs += " " + std::to_string(lc.installs(i) - before[static_cast<size_t>(i)]);
  }
  std::printf("| configurations installed during each case above (replicas 0 1 2): %s |\n", installs.c_str());
  std::fflush(stdout);
  return ok;
}

int run_slow_member_table(const Options& o) {
  print_table_header();
  return run_slow_member_rows(o) ? 0 : 1;
}

int run_table(Options o) {
  struct Case {
    const char* name;
    int members, clients;
    double loss;
    bool fsync;
  };
  const Case cases[] = {
      {"3 replicas, 1 client", 3, 1, 0, false},       {"3 replicas, 8 clients", 3, 8, 0, false},
      {"3 replicas, 32 clients", 3, 32, 0, false},    {"3 replicas, 128 clients", 3, 128, 0, false},
      {"5 replicas, 32 clients", 5, 32, 0, false},    {"7 replicas, 32 clients", 7, 32, 0, false},
      {"3 replicas, 32 clients, loss 0.1", 3, 32, 0.1, false},
      {"3 replicas, 32 clients, loss 0.3", 3, 32, 0.3, false},
      {"3 replicas, 32 clients, fsync", 3, 32, 0, true},
  };
  print_table_header();
  Result last;
  for (const Case& k : cases) {
    Options co = o;
    co.clients = k.clients;
    co.total_ops = 0;  // --ops sets the length of the memory run only
    LocalCluster lc(co, k.members, k.loss, k.fsync);
    CaseOutcome c;
    std::string error;
    if (!drive(co, lc.cluster->servers(), lc.pids(), c, error)) {
      std::printf("| %s | failed: %s |\n", k.name, error.c_str());
      continue;
    }
    Result& r = c.result;
    print_row(k.name, c);
    if (k.members == 3 && k.clients == 32 && k.loss == 0 && !k.fsync) {
      // The same cluster, idle: what does it cost to do nothing?
      std::vector<ProcessUsage> before, after;
      for (int pid : lc.pids()) before.push_back(usage_of(pid));
      ::sleep(3);
      double total = 0;
      for (size_t i = 0; i < before.size(); ++i) total += usage_of(lc.pids()[i]).cpu_s - before[i].cpu_s;
      std::printf("| idle 3 replicas, 3 s | CPU %.2f%% of a core in total |\n", 100 * total / 3);
    }
    last = r;
  }
  run_slow_member_rows(o);
  // Memory must not grow with the number of operations.
  {
    Options co = o;
    co.clients = 32;
    co.total_ops = o.total_ops ? o.total_ops : 1'000'000;
    co.warmup = 0;
    LocalCluster lc(co, 3, 0, false);
    std::vector<ProcessUsage> start;
    CaseOutcome c;
    std::string error;
    if (drive(co, lc.cluster->servers(), lc.pids(), c, error)) {
      std::printf("| %" PRIu64 " operations, 3 replicas, 32 clients (%.1f s) | RSS KiB at start -> end:", c.result.ops,
                  c.result.seconds);
      for (size_t i = 0; i < c.after.size(); ++i)
        std::printf(" %ld -> %ld;", c.before[i].rss_kb, c.after[i].rss_kb);
      std::printf(" |\n");
    } else {
      std::printf("| million operations | failed: %s |\n", error.c_str());
    }
  }
  print_last_line(last);
  return 0;
}

// ---- failover -----------------------------------------------------------------

// One status request to a replica (what `client status` asks); false if it
// does not answer within 200 ms.
bool query_status(const net::Endpoint& server, wire::ReplicaStatus& out) {
  std::string error;
  sockaddr_in any{};
  any.sin_family = AF_INET;
  int fd = net::open_udp(any, error);
  if (fd < 0) return false;
  const uint64_t nonce = net::random_u64();
  net::send_to(fd, wire::encode_status_request(nonce), server.addr);
  bool ok = false;
  for (uint64_t deadline = net::now_us() + 200'000; !ok && net::now_us() < deadline;) {
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 20);
    char buf[2048];
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    ok = n > 0 && wire::decode_status_reply(buf, static_cast<size_t>(n), out) && out.nonce == nonce;
  }
  ::close(fd);
  return ok;
}

std::vector<int> members_of(const wire::ReplicaStatus& s) {
  std::vector<int> out;
  for (int m = 0; m < 64; ++m)
    if (s.config_members >> m & 1) out.push_back(m);
  return out;
}

struct FailoverOutcome {
  int victim = -1;
  uint64_t kill_us = 0, restart_us = 0, caught_up_us = 0;
  uint64_t target_delivered = 0;  // the survivors' delivered_upto when the victim restarted
};

// The figures of one failover run, from every completed call's start and end.
// The calls a kill hurts: those in flight at the kill, and those issued
// within 10 ms after it (the kill lands between two steps of the closed
// loop, so the replica's own calls were often all answered just before it
// died, and the calls it hurts are the next ones).
constexpr uint64_t kJustAfterKillUs = 10'000;

struct FailoverFigures {
  double longest_gap_ms = 0, in_flight_p99_ms = 0, in_flight_max_ms = 0;
  double gap_starts_after_kill_s = 0;  // where the longest gap began, from the kill
  size_t in_flight = 0;
  uint64_t ops_second_before = 0, ops_second_after = 0;
  double catch_up_ms = -1;  // -1: did not catch up before the run ended
};

FailoverFigures failover_figures(const Result& r, const FailoverOutcome& f, uint64_t measure_to) {
  FailoverFigures out;
  std::vector<uint64_t> ends;
  std::vector<uint64_t> in_flight_us;
  for (const auto& [start, end] : r.calls) {
    ends.push_back(end);
    if (start < f.kill_us + kJustAfterKillUs && end >= f.kill_us) in_flight_us.push_back(end - start);
    if (end < f.kill_us && end + 1'000'000 >= f.kill_us) ++out.ops_second_before;
    if (end >= f.kill_us && end < f.kill_us + 1'000'000) ++out.ops_second_after;
  }
  // The longest stretch, anywhere in the window, with no call completed;
  // the run's last stretch counts up to its end.
  const harness::QuietStretch gap = harness::longest_quiet_stretch(ends, f.kill_us, measure_to);
  out.gap_starts_after_kill_s = (double(gap.start) - double(f.kill_us)) / 1e6;
  out.longest_gap_ms = gap.length / 1000.0;
  std::sort(in_flight_us.begin(), in_flight_us.end());
  out.in_flight = in_flight_us.size();
  if (!in_flight_us.empty()) {
    out.in_flight_p99_ms = in_flight_us[std::min(in_flight_us.size() - 1, in_flight_us.size() * 99 / 100)] / 1000.0;
    out.in_flight_max_ms = in_flight_us.back() / 1000.0;
  }
  if (f.caught_up_us) out.catch_up_ms = (f.caught_up_us - f.restart_us) / 1000.0;
  return out;
}

// Which replica to kill: `next` is the one that sequences the next global
// sequence number (members[(delivered_upto + 1) mod |members|] of the
// configuration replica 0 reports: membership.hpp), `other` the next member
// after it, or a replica id.
int pick_victim(const Options& o, const std::vector<net::Endpoint>& servers) {
  if (o.kill != "next" && o.kill != "other") return std::atoi(o.kill.c_str());
  for (size_t i = 0; i < servers.size(); ++i) {
    wire::ReplicaStatus s;
    if (!query_status(servers[i], s) || !s.primary) continue;
    std::vector<int> members = members_of(s);
    if (members.empty()) continue;
    size_t next = (s.delivered_upto + 1) % members.size();
    if (o.kill == "other") next = (next + 1) % members.size();
    return members[next];
  }
  return 0;
}

// Caught up: the restarted replica is in a primary configuration of all n
// members and has delivered at least what the others had delivered when it
// was restarted.
bool caught_up(const net::Endpoint& server, int members, uint64_t target) {
  wire::ReplicaStatus s;
  return query_status(server, s) && s.primary && static_cast<int>(members_of(s).size()) == members &&
         s.delivered_upto >= target;
}

bool run_failover_case(Options o, FailoverOutcome& f, FailoverFigures& fig, Result& r, std::string& error) {
  constexpr uint64_t kKillAfterUs = 2'000'000, kDownUs = 3'000'000;
  o.clients = 32;
  o.warmup = 1;
  o.seconds = 10;
  o.total_ops = 0;
  LocalCluster lc(o, o.members, o.loss, false);
  std::vector<net::Endpoint> servers;
  if (!net::parse_endpoints(lc.cluster->servers(), servers, error)) return false;
  Driver d(o, servers);
  if (!d.setup(error)) return false;
  const uint64_t start = net::now_us() + static_cast<uint64_t>(o.warmup * 1e6);
  uint64_t next_check = 0;
  d.on_step = [&](uint64_t now) {
    if (!f.kill_us && now >= start + kKillAfterUs) {
      f.victim = pick_victim(o, servers);
      if (f.victim < 0 || f.victim >= o.members) f.victim = 0;
      lc.cluster->crash(f.victim);
      f.kill_us = net::now_us();
    } else if (f.kill_us && !f.restart_us && now >= f.kill_us + kDownUs) {
      for (size_t i = 0; i < servers.size(); ++i) {
        wire::ReplicaStatus s;
        if (static_cast<int>(i) != f.victim && query_status(servers[i], s))
          f.target_delivered = std::max(f.target_delivered, s.delivered_upto);
      }
      lc.cluster->start(f.victim);
      f.restart_us = net::now_us();
    } else if (f.restart_us && !f.caught_up_us && now >= next_check) {
      next_check = now + 20'000;
      if (caught_up(servers[static_cast<size_t>(f.victim)], o.members, f.target_delivered)) f.caught_up_us = net::now_us();
    }
  };
  r = d.run();
  fig = failover_figures(r, f, d.measure_to());
  return true;
}

const char* kFailoverHeader =
    "| case | killed | longest gap ms (starts, s after the kill) | calls hit by the kill | their p99 ms | their max ms "
    "| ops in the second before | ops in the second after | catch-up ms | ops/s overall | errors |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|\n";

void print_failover_row(const std::string& name, const FailoverOutcome& f, const FailoverFigures& fig, Result& r) {
  std::printf("| %s | %d | %.0f (%+.2f) | %zu | %s | %s | %" PRIu64 " | %" PRIu64 " | %s | %.0f | %" PRIu64 " |\n",
              name.c_str(), f.victim, fig.longest_gap_ms, fig.gap_starts_after_kill_s, fig.in_flight, format_ms(fig.in_flight_p99_ms).c_str(),
              format_ms(fig.in_flight_max_ms).c_str(), fig.ops_second_before, fig.ops_second_after,
              fig.catch_up_ms < 0 ? "not caught up" : format_ms(fig.catch_up_ms).c_str(), r.ops_per_s(), r.errors);
  std::fflush(stdout);
}

int run_failover(const Options& o) {
  FailoverOutcome f;
  FailoverFigures fig;
  Result r;
  std::string error;
  if (!run_failover_case(o, f, fig, r, error)) {
    std::fprintf(stderr, "bench: %s\n", error.c_str());
    return 1;
  }
  std::fputs(kFailoverHeader, stdout);
  char name[96];
  std::snprintf(name, sizeof name, "%d replicas, 32 clients, loss %g, kill %s", o.members, o.loss, o.kill.c_str());
  print_failover_row(name, f, fig, r);
  print_last_line(r);
  // Correctness only (timings are figures, not verdicts): no client error,
  // the restarted replica caught up.
  return r.errors == 0 && fig.catch_up_ms >= 0 ? 0 : 1;
}

int run_failover_table(const Options& o) {
  struct Case {
    int members;
    double loss;
    const char* kill;
  };
  const Case cases[] = {{3, 0, "next"}, {3, 0, "other"}, {3, 0.1, "next"}, {3, 0.1, "other"}, {5, 0, "next"}, {5, 0.1, "next"}};
  std::fputs(kFailoverHeader, stdout);
  std::fflush(stdout);
  int status = 0;
  for (const Case& k : cases) {
    Options co = o;
    co.members = k.members;
    co.loss = k.loss;
    co.kill = k.kill;
    FailoverOutcome f;
    FailoverFigures fig;
    Result r;
    std::string error;
    char name[96];
    std::snprintf(name, sizeof name, "%d replicas, loss %g, kill %s", k.members, k.loss,
                  std::string(k.kill) == "next" ? "the next sequencer" : "another");
    if (!run_failover_case(co, f, fig, r, error)) {
      std::printf("| %s | failed: %s |\n", name, error.c_str());
      status = 1;
      continue;
    }
    print_failover_row(name, f, fig, r);
    if (r.errors || fig.catch_up_ms < 0) status = 1;
  }
  return status;
}

// ---- etcd, for comparison (tests/failover_vs_etcd.sh) ---------------------------
//
// Closed-loop writes to an etcd cluster through its JSON gateway (POST
// /v3/kv/put), one keep-alive HTTP/1.1 connection per client. A client whose
// connection fails, or that waits 1 s for an answer, moves to the next
// endpoint and sends the same write again (a put is idempotent).

struct EtcdClient {
  size_t endpoint = 0;
  int fd = -1;
  std::string in;
  uint64_t first_sent_us = 0, sent_us = 0;
  uint64_t key = 0;
};

int connect_tcp(const net::Endpoint& e) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&e.addr), sizeof e.addr) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

std::string base64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += {t[v >> 18], t[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], '='};
  }
  return out;
}

// The answer's status and whether it is complete (headers and the whole body).
bool http_answer(const std::string& in, int& status, size_t& length) {
  size_t end = in.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  status = in.size() > 12 ? std::atoi(in.c_str() + 9) : 0;
  size_t body = 0;
  size_t at = in.find("Content-Length:");
  if (at == std::string::npos) at = in.find("content-length:");
  if (at != std::string::npos && at < end) body = std::strtoul(in.c_str() + at + 15, nullptr, 10);
  length = end + 4 + body;
  return in.size() >= length;
}

int run_etcd(const Options& o) {
  std::vector<net::Endpoint> endpoints;
  std::string error;
  if (!net::parse_endpoints(o.servers, endpoints, error)) {
    std::fprintf(stderr, "bench: %s\n", error.c_str());
    return 2;
  }
  std::vector<EtcdClient> clients(static_cast<size_t>(o.clients));
  Result r;
  uint64_t retries = 0;
  const uint64_t begin = net::now_us();
  const uint64_t measure_from = begin + static_cast<uint64_t>(o.warmup * 1e6);
  const uint64_t measure_to = measure_from + static_cast<uint64_t>(o.seconds * 1e6);
  auto send_put = [&](EtcdClient& c, uint64_t now) {
    for (size_t tries = 0; c.fd < 0 && tries < endpoints.size(); ++tries) {
      c.fd = connect_tcp(endpoints[c.endpoint]);
      if (c.fd < 0) c.endpoint = (c.endpoint + 1) % endpoints.size();
    }
    c.sent_us = now;
    if (c.fd < 0) return;  // every endpoint refused: try again at the next timeout
    const std::string body = "{\"key\":\"" + base64("bench/" + std::to_string(c.key % 1000)) + "\",\"value\":\"" +
                             base64(std::to_string(c.key)) + "\"}";
    const std::string request = "POST /v3/kv/put HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                                "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    if (::send(c.fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
      ::close(c.fd);
      c.fd = -1;
    }
  };
  auto move_on = [&](EtcdClient& c, uint64_t now) {
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
    c.in.clear();
    c.endpoint = (c.endpoint + 1) % endpoints.size();
    if (now >= measure_from && now < measure_to) ++retries;
    send_put(c, now);
  };
  for (size_t i = 0; i < clients.size(); ++i) {
    clients[i].endpoint = i % endpoints.size();
    clients[i].key = i * 1'000'000'007ULL;
    clients[i].first_sent_us = net::now_us();
    send_put(clients[i], clients[i].first_sent_us);
  }
  while (net::now_us() < measure_to) {
    std::vector<pollfd> fds;
    for (const EtcdClient& c : clients) fds.push_back(pollfd{c.fd, POLLIN, 0});
    ::poll(fds.data(), fds.size(), 10);
    const uint64_t now = net::now_us();
    for (size_t i = 0; i < clients.size(); ++i) {
      EtcdClient& c = clients[i];
      if (c.fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
        char buf[4096];
        ssize_t n = ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0) {
          move_on(c, now);
          continue;
        }
        c.in.append(buf, static_cast<size_t>(n));
        int status = 0;
        size_t length = 0;
        if (!http_answer(c.in, status, length)) continue;
        const bool ok = status == 200 && c.in.substr(0, length).find("\"error\"") == std::string::npos;
        c.in.erase(0, length);
        if (!ok) {
          if (now >= measure_from && now < measure_to) ++r.errors;
          move_on(c, now);
          continue;
        }
        if (now >= measure_from && now < measure_to) {
          ++r.ops;
          r.latency_us.push_back(static_cast<uint32_t>(std::min<uint64_t>(now - c.first_sent_us, UINT32_MAX)));
          r.calls.emplace_back(c.first_sent_us, now);
        }
        ++c.key;
        c.first_sent_us = now;
        send_put(c, now);
      } else if (now >= c.sent_us + 1'000'000) {
        move_on(c, now);  // silent for 1 s (or nothing to connect to): the next endpoint
      }
    }
  }
  for (EtcdClient& c : clients)
    if (c.fd >= 0) ::close(c.fd);
  r.seconds = (measure_to - measure_from) / 1e6;
  r.retries = retries;
  std::sort(r.latency_us.begin(), r.latency_us.end());
  std::vector<uint64_t> ends;
  for (const auto& call : r.calls) ends.push_back(call.second);
  const harness::QuietStretch gap = harness::longest_quiet_stretch(ends, measure_from);
  std::printf("etcd: %.0f writes/s over %.1f s, %" PRIu64 " errors, %" PRIu64 " retries; p50 %s ms, p99 %s ms, max %s ms\n",
              r.ops_per_s(), r.seconds, r.errors, r.retries, format_ms(r.percentile_ms(50)).c_str(),
              format_ms(r.percentile_ms(99)).c_str(), format_ms(r.percentile_ms(100)).c_str());
  std::printf("longest_gap_ms=%.0f gap_starts_s=%.2f\n", gap.length / 1000.0, (double(gap.start) - double(measure_from)) / 1e6);
  print_last_line(r);
  return r.ops > 0 ? 0 : 1;
}

// --disk-probe: `count` writes of a record-sized line to `path`, each
// followed by fdatasync; the sync times in microseconds, sorted. Empty if
// the file cannot be written or synced. The lines are appended, or, with
// `preallocated`, written over zeros synced beforehand, as the server's log
// is with --fsync (ReplicaStore::append): no file-size change to commit.
std::vector<uint64_t> time_syncs(const std::string& path, int count, bool preallocated) {
  std::vector<uint64_t> us;
  int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
  if (fd < 0) return us;
  const std::string line(200, 'x');
  const std::string zeros = preallocated ? std::string(line.size() * count, '\0') : std::string();
  bool ok = !preallocated || (::write(fd, zeros.data(), zeros.size()) == static_cast<ssize_t>(zeros.size()) && ::fdatasync(fd) == 0);
  for (int i = 0; ok && i < count; ++i) {
    const off_t at = static_cast<off_t>(line.size()) * i;
    if (::pwrite(fd, line.data(), line.size(), at) != static_cast<ssize_t>(line.size())) break;
    const uint64_t start = net::now_us();
    if (::fdatasync(fd) != 0) break;
    us.push_back(net::now_us() - start);
  }
  ::close(fd);
  ::unlink(path.c_str());
  if (static_cast<int>(us.size()) != count) us.clear();
  std::sort(us.begin(), us.end());
  return us;
}

int run_disk_probe(const Options& o) {
  char dir_template[] = "/tmp/ftq-disk-probe.XXXXXX";
  const char* dir = ::mkdtemp(dir_template);
  if (!dir) {
    std::perror("bench: mkdtemp");
    return 1;
  }
  const int count = 1000;
  auto at = [](const std::vector<uint64_t>& v, double q) { return v[static_cast<size_t>(q * (v.size() - 1))]; };
  struct Figures {
    std::vector<uint64_t> alone, together;  // sorted sync times, us
    double syncs_per_s = 0;                 // of all writers at once
  };
  // One writer alone, then o.members at once (as the replicas' logs).
  auto measure = [&](bool preallocated, Figures& f) {
    f.alone = time_syncs(std::string(dir) + "/alone", count, preallocated);
    std::vector<std::vector<uint64_t>> each(o.members);
    std::vector<std::thread> writers;
    const uint64_t start = net::now_us();
    for (int i = 0; i < o.members; ++i)
      writers.emplace_back([&each, dir, i, count, preallocated] {
        each[i] = time_syncs(std::string(dir) + "/w" + std::to_string(i), count, preallocated);
      });
    for (std::thread& t : writers) t.join();
    f.syncs_per_s = static_cast<double>(count) * o.members / (static_cast<double>(net::now_us() - start) / 1e6);
    for (const auto& v : each) f.together.insert(f.together.end(), v.begin(), v.end());
    std::sort(f.together.begin(), f.together.end());
    return !f.alone.empty() && f.together.size() == static_cast<size_t>(count) * o.members;
  };
  Figures appended, preallocated;
  const bool ok = measure(false, appended) && measure(true, preallocated);
  ::rmdir(dir);
  if (!ok) {
    std::fprintf(stderr, "bench: cannot write and sync files in %s\n", dir);
    return 1;
  }
  auto print = [&](const char* what, const Figures& f) {
    std::printf("fdatasync of a 200-byte %s, %d times: alone p50 %" PRIu64 " us, p99 %" PRIu64 " us; %d writers at once p50 %" PRIu64
                " us, p99 %" PRIu64 " us, %.0f syncs/s in all\n",
                what, count, at(f.alone, 0.5), at(f.alone, 0.99), o.members, at(f.together, 0.5), at(f.together, 0.99), f.syncs_per_s);
  };
  print("append", appended);
  print("write into a preallocated file (as the --fsync log)", preallocated);
  std::printf("sync_alone_p50_us=%" PRIu64 " sync_together_p50_us=%" PRIu64 " syncs_per_s_together=%.0f"
              " preallocated_alone_p50_us=%" PRIu64 " preallocated_together_p50_us=%" PRIu64 "\n",
              at(appended.alone, 0.5), at(appended.together, 0.5), appended.syncs_per_s, at(preallocated.alone, 0.5),
              at(preallocated.together, 0.5));
  return 0;
}

const char* kUsage =
    "usage: bench --servers HOST:PORT,... [--clients C] [--seconds S] [--warmup S]\n"
    "             [--queues Q] [--push-percent P] [--pids P1,P2,...]\n"
    "       bench --local [--members N] [--clients C] [--seconds S] [--loss P] [--fsync]\n"
    "             [--slow ID:MS[:PCT]] [--via ID,...]   (member ID's links MS ms and\n"
    "             PCT% loss each way, through server --cut-file; clients of --via only)\n"
    "       bench --slow-member-table [--seconds S]   (1 and 32 clients of healthy\n"
    "             replicas, clean links and member 2 at 20 ms + 5% loss each way)\n"
    "       bench --table [--seconds S] [--ops N]   (what `make bench` runs;\n"
    "             --ops N sets the length of its memory run, default 1,000,000)\n"
    "       bench --failover [--members N] [--loss P] [--kill next|other|ID]\n"
    "             (32 clients; 2 s in a replica is killed, 3 s later restarted)\n"
    "       bench --failover-table   (the failover cases; `make bench` runs it too)\n"
    "       bench --etcd HOST:PORT,... [--clients C] [--seconds S] [--warmup S]\n"
    "             (closed-loop writes to etcd's JSON gateway, for tests/failover_vs_etcd.sh)\n"
    "       bench --disk-probe [--members N]\n"
    "             (what an fdatasync costs on this disk now, alone and N at once, default 3;\n"
    "             after appends, and after writes into a preallocated file as the --fsync log)\n"
    "Closed-loop load: C logical clients, one request outstanding each. Reports\n"
    "ops/s, latency percentiles, errors, retries, and server CPU and memory.\n"
    "Last line: ops_per_s=N p50_ms=X p99_ms=Y errors=E\n";

// Strict: a typo in a flag or a value is an error with a message, never a
// silently different benchmark.
bool parse(int argc, char** argv, Options& o) {
  auto fail = [](const std::string& msg) {
    std::fprintf(stderr, "bench: %s\n", msg.c_str());
    return false;
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string& v) {
      if (i + 1 >= argc) return false;
      v = argv[++i];
      return true;
    };
    auto count = [&](int& out, int lo, int hi) {
      std::string v;
      int32_t n;
      if (!value(v) || !net::parse_i32(v, n) || n < lo || n > hi)
        return fail(a + " needs a whole number from " + std::to_string(lo) + " to " + std::to_string(hi));
      out = n;
      return true;
    };
    auto seconds = [&](double& out) {
      std::string v;
      char* end = nullptr;
      double s = value(v) ? std::strtod(v.c_str(), &end) : -1;
      if (v.empty() || *end != 0 || !(s >= 0 && s <= 86400)) return fail(a + " needs a number of seconds");
      out = s;
      return true;
    };
    std::string v;
    bool ok = true;
    if (a == "--servers") ok = value(o.servers) || fail("--servers needs HOST:PORT,...");
    else if (a == "--clients") ok = count(o.clients, 1, 100000);
    else if (a == "--seconds") ok = seconds(o.seconds) && (o.seconds > 0 || fail("--seconds must be above 0"));
    else if (a == "--warmup") ok = seconds(o.warmup);
    else if (a == "--queues") ok = count(o.queues, 1, 1000000);
    else if (a == "--push-percent") ok = count(o.push_percent, 0, 100);
    else if (a == "--members") ok = count(o.members, 1, 64);
    else if (a == "--loss")
      ok = (value(v) && net::parse_probability(v, o.loss)) || fail("--loss needs P with 0 <= P < 1");
    else if (a == "--fsync") o.fsync = true;
    else if (a == "--disk-probe") o.disk_probe = true;
    else if (a == "--local") o.local = true;
    else if (a == "--table") o.table = true;
    else if (a == "--failover") o.failover = true;
    else if (a == "--etcd") {
      ok = value(o.servers) || fail("--etcd needs HOST:PORT,... (etcd client URLs)");
      o.etcd = true;
    }
    else if (a == "--failover-table") o.failover_table = true;
    else if (a == "--slow-member-table") o.slow_table = true;
    else if (a == "--slow") {
      // Checked in full by the server; here only its shape and the member.
      int32_t id;
      ok = (value(o.slow) && net::parse_i32(o.slow.substr(0, o.slow.find(':')), id) && id >= 0 && id < 64 &&
            o.slow.find(':') != std::string::npos) ||
           fail("--slow needs ID:MS[:PCT], e.g. 2:20:5");
    } else if (a == "--via") {
      ok = value(v) || fail("--via needs replica ids, e.g. 0,1");
      std::stringstream list(v);
      for (std::string p; ok && std::getline(list, p, ',');) {
        int32_t id;
        ok = (net::parse_i32(p, id) && id >= 0 && id < 64) || fail("--via: '" + p + "' is not a replica id");
        o.via.push_back(id);
      }
    }
    else if (a == "--kill") {
      ok = value(o.kill) || fail("--kill needs next, other or a replica id");
      int32_t id;
      if (ok && o.kill != "next" && o.kill != "other" && !(net::parse_i32(o.kill, id) && id >= 0 && id < 64))
        ok = fail("--kill needs next, other or a replica id, not '" + o.kill + "'");
    }
    else if (a == "--server-bin") ok = value(o.server_bin) || fail("--server-bin needs a path");
    else if (a == "--ops")
      ok = (value(v) && net::parse_u64(v, o.total_ops) && o.total_ops > 0) || fail("--ops needs a positive count");
    else if (a == "--pids") {
      ok = value(v) || fail("--pids needs P1,P2,...");
      std::stringstream list(v);
      for (std::string p; ok && std::getline(list, p, ',');) {
        int32_t pid;
        ok = (net::parse_i32(p, pid) && pid > 0) || fail("--pids: '" + p + "' is not a process id");
        o.pids.push_back(pid);
      }
    } else {
      ok = fail("unknown option '" + a + "'");
    }
    if (!ok) return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (argc > 1 && (std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!parse(argc, argv, o)) {
    std::fputs("(run 'bench --help' for usage)\n", stderr);
    return 2;
  }
  if (o.etcd) return run_etcd(o);
  if (o.disk_probe) return run_disk_probe(o);
  if (o.failover_table) return run_failover_table(o);
  if (o.slow_table) return run_slow_member_table(o);
  if ((!o.slow.empty() || !o.via.empty()) && !o.local) {
    std::fputs("bench: --slow and --via go with --local\n", stderr);
    return 2;
  }
  for (int id : o.via)
    if (id >= o.members) {
      std::fprintf(stderr, "bench: --via %d: there are only %d replicas\n", id, o.members);
      return 2;
    }
  if (!o.slow.empty() && std::atoi(o.slow.c_str()) >= o.members) {
    std::fprintf(stderr, "bench: --slow %s: there are only %d replicas\n", o.slow.c_str(), o.members);
    return 2;
  }
  if (o.failover) {
    if (std::string(o.kill) != "next" && o.kill != "other" && std::atoi(o.kill.c_str()) >= o.members) {
      std::fprintf(stderr, "bench: --kill %s: there are only %d replicas\n", o.kill.c_str(), o.members);
      return 2;
    }
    return run_failover(o);
  }
  if (!o.table && !o.local && o.servers.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (o.table) return run_table(o);
  if (o.local) return run_local(o);
  CaseOutcome c;
  std::string error;
  if (!drive(o, o.servers, o.pids, c, error)) {
    std::fprintf(stderr, "bench: %s\n", error.c_str());
    return 1;
  }
  print_report(c);
  print_last_line(c.result);
  return c.result.ops > 0 ? 0 : 1;  // nothing completed: the cluster or the bench is broken
}
