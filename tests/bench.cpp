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
//       One case on a local cluster it starts itself.
//
// Options: --warmup S (default 1), --queues Q (default 4), --push-percent P
// (default 50; the rest are pops), --pids P1,P2,... (servers whose CPU and
// memory to report when driving a cluster it did not start).
// The last line is always: ops_per_s=N p50_ms=X p99_ms=Y errors=E
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
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
  bool table = false, local = false, fsync = false;
  int members = 3;
  double loss = 0;
  std::string server_bin = "./server";
  uint64_t total_ops = 0;  // stop after this many operations instead of --seconds
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
  size_t server = 0;
  wire::Operation op;
  net::Tries tries;
  // Its own, as each ./client has: one estimator fed by every client's
  // replies would follow the latest burst, not the latency of a call.
  net::RetryPolicy retry;
  uint64_t resend_at = 0;
  int silent_tries = 0;
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
    c.server = index % servers_.size();
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
    send(c, now);
  }

  void send(LogicalClient& c, uint64_t now) {
    const std::string request = wire::encode_request(c.op, c.tries.next_attempt());
    for (int copy = 0; copy < c.retry.copies(); ++copy) net::send_to(fd_, request, servers_[c.server].addr);
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
    int timeout = next == UINT64_MAX ? 10 : next <= now ? 0 : static_cast<int>((next - now) / 1000);
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
      if (rep.code == wire::ReplyCode::NotInMajority) {  // as ./client: ask the next replica, a little later
        c.server = (c.server + 1) % servers_.size();
        c.silent_tries = 0;
        c.resend_at = net::now_us() + 5'000;
        continue;
      }
      complete(c, rep, net::now_us(), continue_loop);
    }
    now = net::now_us();
    for (auto& c : clients_) {
      if (c.resend_at == 0 || now < c.resend_at) continue;
      if (in_window(now)) ++result_->retries;
      if (++c.silent_tries >= 8) {  // as ./client: a long-silent server is skipped
        c.silent_tries = 0;
        c.server = (c.server + 1) % servers_.size();
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

// A local cluster, as run_cluster.sh would start it, on kernel-chosen ports.
struct LocalCluster {
  std::string dir;
  std::unique_ptr<harness::Cluster> cluster;
  LocalCluster(const Options& o, int members, double loss, bool fsync) {
    dir = harness::make_temp_dir("bench");
    std::vector<std::string> extra;
    if (fsync) extra.push_back("--fsync");
    cluster = std::make_unique<harness::Cluster>(harness::ClusterConfig{members, loss, 1, o.server_bin, dir, extra});
    cluster->start_all();
  }
  ~LocalCluster() {
    cluster->stop_all();
    cluster.reset();
    harness::remove_tree(dir);
  }
  std::vector<int> pids() const { return cluster->pids(); }
};

int run_local(const Options& o) {
  LocalCluster lc(o, o.members, o.loss, o.fsync);
  CaseOutcome c;
  std::string error;
  if (!drive(o, lc.cluster->servers(), lc.pids(), c, error)) {
    std::fprintf(stderr, "bench: %s\n", error.c_str());
    return 1;
  }
  print_report(c);
  print_last_line(c.result);
  return c.result.ops > 0 ? 0 : 1;
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
  std::printf("| case | ops/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | retries | server CPU (%% of a core, each) |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  std::fflush(stdout);
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
    std::string cpu;
    for (size_t i = 0; i < c.after.size(); ++i)
      cpu += (i ? " " : "") + std::to_string(static_cast<int>(100 * (c.after[i].cpu_s - c.before[i].cpu_s) / r.seconds));
    std::printf("| %s | %.0f | %s | %s | %s | %s | %s | %" PRIu64 " | %" PRIu64 " | %s |\n", k.name, r.ops_per_s(),
                format_ms(r.percentile_ms(50)).c_str(), format_ms(r.percentile_ms(90)).c_str(),
                format_ms(r.percentile_ms(99)).c_str(), format_ms(r.percentile_ms(99.9)).c_str(),
                format_ms(r.percentile_ms(100)).c_str(), r.errors, r.retries, cpu.c_str());
    std::fflush(stdout);
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

const char* kUsage =
    "usage: bench --servers HOST:PORT,... [--clients C] [--seconds S] [--warmup S]\n"
    "             [--queues Q] [--push-percent P] [--pids P1,P2,...]\n"
    "       bench --local [--members N] [--clients C] [--seconds S] [--loss P] [--fsync]\n"
    "       bench --table [--seconds S] [--ops N]   (what `make bench` runs;\n"
    "             --ops N sets the length of its memory run, default 1,000,000)\n"
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
    else if (a == "--local") o.local = true;
    else if (a == "--table") o.table = true;
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
