// answers_test: what clients are told while no majority exists, checked
// against what happened (issue 21). Real server and client processes.
//
//   answers_test split3|split5 --server BIN --client BIN [--trials N] [--seed S]
//                [--from-ms A] [--to-ms B] [--client-timeout S] [--fresh] [--no-trace]
//
// Each trial: a new queue, filled so that the next global sequence number is
// a chosen replica's slot (number k is assigned by member k mod n: checked
// with `client status`, not assumed); then a split in which no side holds a
// majority; one-shot `./client --servers <one replica>` requests (a push of
// a unique item, or a pop) started at chosen delays after the split; the
// clients' exit statuses and lines recorded; the heal, a bounded wait until
// every replica is primary in one configuration of all n with the same
// delivered count; then the queue popped empty and every answer checked:
//   exit 0 (ok)       the operation took effect exactly once (a pop's item
//                     is one it removed);
//   exit 1 (an error reply, "the operation had no effect")
//                     a push's item is not in the queue, a pop removed
//                     nothing;
//   exit 3 (outcome unknown)  either; counted.
// Anything else (another status, no output) fails the trial too.
//
// split3  3 replicas, {0} | {1} | {2}; one request a trial, to replica 2,
//         whose slot is next. Replica 2 suspects the others about 300 ms
//         (--suspect-ms) after the split and starts its view change about
//         60 ms later (three keepalives, membership.cpp). A request it
//         admits before that is multicast in the old primary configuration,
//         in its own slot (an "orphan"), and taken into the order at the
//         heal; its answer comes when replica 2 installs its non-primary
//         configuration. If that is within the client's first retry timeout
//         (20 ms, net::RetryPolicy) of the request, the client has only
//         that answer to go by (the window): "no effect" there is the lie.
//         The request's delay after the split alternates over the trials:
//         even trials sweep --from-ms..--to-ms (each its own slice of the
//         range, in a seeded order); odd trials aim at the window (each its
//         own slice of the 22 ms before where replica 2's non-primary
//         install is expected: the median of the installs seen so far in
//         the traces, 345 ms before the first).
// split5  5 replicas, {0,1} | {2,3} | {4}; the next slot is a seeded
//         replica's; one request to every replica a trial. The slot
//         replica's delay is swept or aimed as above; in aimed trials its
//         side's other replica is aimed too (its batch, sequenced by the
//         slot replica, can be an orphan that takes the slot); the rest get
//         seeded delays in --from-ms..--to-ms.
//
// The split is made at once (Cluster::cut_all: every cut file written,
// then every replica signalled), and the delays count from there.
//
// With --trace (the default) the servers trace their events, and each
// request's fate is read from its replica's trace: when it arrived (ms
// after the split), whether it was admitted (in the old configuration: an
// orphan) or refused, and when that replica installed its non-primary
// configuration. A request admitted at most 20 ms before that install (give
// or take 1 ms of slack) is "in the window". Only the summary and the aim use these; the verdicts
// come from the queue (and, where several pops share a count, a pop the
// trace shows refused is not counted as one that took effect).
//
// The cluster is reused from trial to trial (every trial ends healed, in
// one primary configuration of all n, on a new queue; k mod n is read
// afresh each time); --fresh starts a new cluster on new data directories
// for every trial instead. At the end: a graceful stop (every drain
// complete) and byte-identical snapshots. Seeded (printed; FTQ_SEED=<seed>
// or --seed replays every choice: slots, kinds, slices, delays); the
// processes' timing, and so the aim, is not replayed.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../net.hpp"
#include "harness.hpp"

using harness::Cluster;
using harness::ClusterConfig;
using harness::ClientProcess;

namespace {

// A replica's first retry timeout before it has a round-trip sample
// (net::RetryPolicy: 20 ms): an answer later than this reaches a client that
// has already sent its request again.
constexpr double kFirstRetryMs = 20;

struct Args {
  std::string scenario, server, client;
  int trials = -1;  // default: 20 for split3, 10 for split5
  int from_ms = 200, to_ms = 400;
  double client_timeout_s = 1;
  bool fresh = false;
  bool trace = true;
  bool seed_given = false;
  uint64_t seed = 0;
};

struct Scenario {
  int members;
  std::vector<std::vector<int>> sides;  // no side a majority
  int initial_items;                    // at least one more than the pops of a trial
};

std::string join(const std::vector<int>& ids, const char* sep) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? sep : "") + std::to_string(ids[i]);
  return s;
}

// ---- status ------------------------------------------------------------------

struct ReplicaView {
  bool up = false;
  std::string config;  // "12.0 primary {0,1,2}"
  uint64_t delivered = 0;
};

// "127.0.0.1:p up: replica 0, config 4.0 primary {0,1,2} (hears 3 of 3),
// delivered 7, ...; 127.0.0.1:q unreachable; ..." -> one view per server.
std::vector<ReplicaView> parse_status(const std::string& text) {
  // One-shot, the client prints a line per replica (from a pipe, one line
  // with the replicas joined by "; ").
  std::string status;
  for (char ch : text) status += ch == '\n' ? std::string("; ") : std::string(1, ch);
  while (status.size() >= 2 && status.compare(status.size() - 2, 2, "; ") == 0) status.resize(status.size() - 2);
  std::vector<ReplicaView> views;
  size_t pos = 0;
  while (pos < status.size()) {
    size_t end = status.find("; ", pos);
    if (end == std::string::npos) end = status.size();
    const std::string part = status.substr(pos, end - pos);
    ReplicaView v;
    const size_t c = part.find(" config "), h = part.find(" (hears "), d = part.find(", delivered ");
    if (part.find(" up: ") != std::string::npos && c != std::string::npos && h != std::string::npos &&
        d != std::string::npos) {
      v.up = true;
      v.config = part.substr(c + 8, h - c - 8);
      v.delivered = std::strtoull(part.c_str() + d + 12, nullptr, 10);
    }
    views.push_back(v);
    pos = end + 2;
  }
  return views;
}

// Polls `client status` (bounded) until every replica answers from one
// primary configuration of all n, with the same delivered count; returns
// that count, or -1 (then `last` is the last status seen).
int64_t wait_converged(const Args& a, const Cluster& cluster, double bound_s, std::string& last) {
  const uint64_t t0 = net::now_us();
  std::vector<int> all(static_cast<size_t>(cluster.members()));
  std::iota(all.begin(), all.end(), 0);
  const std::string full = "primary {" + join(all, ",") + "}";
  while (net::now_us() - t0 < static_cast<uint64_t>(bound_s * 1e6)) {
    std::string out;
    harness::run_program(a.client, {"--servers", cluster.servers(), "--timeout", "1", "status"}, out, 5000);
    if (!out.empty() && out.back() == '\n') out.pop_back();
    last = out;
    const std::vector<ReplicaView> views = parse_status(out);
    bool same = static_cast<int>(views.size()) == cluster.members();
    for (const ReplicaView& v : views)
      same = same && v.up && v.config == views[0].config && v.delivered == views[0].delivered &&
             v.config.find(full) != std::string::npos;
    if (same) return static_cast<int64_t>(views[0].delivered);
    ::usleep(20'000);
  }
  return -1;
}

// ---- logs --------------------------------------------------------------------

// A file's size, and its text from byte `from` on (a replica's log grows
// from trial to trial, and is read many times in each: only its tail).
size_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<size_t>(st.st_size) : 0;
}

std::string read_from(const std::string& path, size_t from, size_t to = SIZE_MAX) {
  std::string text;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return text;
  if (std::fseek(f, static_cast<long>(from), SEEK_SET) == 0) {
    char buf[65536];
    size_t n;
    while (text.size() < to - from && (n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  }
  std::fclose(f);
  if (text.size() > to - from) text.resize(to - from);
  return text;
}

// Waits (bounded: 5 s) until the log at `path`, from `from` on, holds `line`.
bool wait_for_log(const std::string& path, size_t from, const std::string& line) {
  for (int waited_ms = 0; waited_ms < 5000; waited_ms += 5) {
    if (read_from(path, from).find(line) != std::string::npos) return true;
    ::usleep(5000);
  }
  return false;
}

// A trace line's time ("4871.263117 r2 CONFIG ..." -> microseconds), or 0.
// The fraction is read digit by digit, so a trace of milliseconds (before
// microsecond timestamps) reads right too.
uint64_t trace_time_us(const std::string& line) {
  const size_t dot = line.find('.'), space = line.find(' ');
  if (dot == std::string::npos || space == std::string::npos || dot > space || dot == 0 || space > dot + 7) return 0;
  for (size_t i = 0; i < space; ++i)
    if (i != dot && (line[i] < '0' || line[i] > '9')) return 0;
  uint64_t fraction = 0;
  for (size_t i = dot + 1, scale = 100000; i < dot + 7; ++i, scale /= 10)
    if (i < space) fraction += static_cast<uint64_t>(line[i] - '0') * scale;
  return std::strtoull(line.c_str(), nullptr, 10) * 1'000'000 + fraction;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return lines;
}

// ---- one trial -----------------------------------------------------------------

struct Request {
  int replica = 0;
  bool push = true;
  int32_t item = 0;  // a push's
  int delay_ms = 0;  // after the split
  bool aimed = false;  // at the window, not swept
  // What the client said.
  int exit = -1;
  std::string output, errors;
  double sent_ms = 0, done_ms = 0;  // after the split
  // What its replica's trace says (with --trace; -1: not seen).
  double arrived_ms = -1;
  std::string fate;            // "admitted", "refused", ...
  double nonprimary_ms = -1;   // that replica's non-primary install
  // After the heal.
  int applied = -1;  // pushes: copies in the queue; pops: see check_trial
  std::string verdict;

  std::string command(int queue) const {
    return push ? "push " + std::to_string(queue) + " " + std::to_string(item) : "pop " + std::to_string(queue);
  }
  bool admitted() const { return fate == "admitted"; }
  // The client's answer line: on stdout when it succeeded, else the last
  // line on stderr (a one-shot client's errors go there, after its notes).
  std::string answer() const {
    if (exit == 0) return output;
    const size_t end = errors.find_last_not_of('\n');
    if (end == std::string::npos) return "";
    const size_t start = errors.rfind('\n', end);
    return errors.substr(start == std::string::npos ? 0 : start + 1, end + 1 - (start == std::string::npos ? 0 : start + 1));
  }
  // 1 ms of slack (the trace's times were whole milliseconds once; they
  // are microseconds now).
  bool in_window() const {
    return admitted() && nonprimary_ms >= arrived_ms && nonprimary_ms - arrived_ms <= kFirstRetryMs + 1;
  }
};

struct Totals {
  int trials = 0, requests = 0;
  std::map<int, int> by_exit;              // exit status -> requests
  std::map<int, int> applied_by_exit;      // exit status -> of them, took effect
  int admitted = 0, in_window = 0, applied = 0;
  int violations = 0;
  int setup_failures = 0;
  double slowest_trial_s = 0;
};

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

std::string one_line(const std::string& s) {
  std::string t = trim(s);
  for (char& c : t)
    if (c == '\n') c = '|';
  return t;
}

// Reads each request's fate from its replica's trace, between the split
// (log offset at_split) and the heal (at_heal).
void read_fates(const std::vector<std::string>& logs, std::vector<Request>& requests, int queue, uint64_t t_split,
                const std::vector<size_t>& at_split, const std::vector<size_t>& at_heal) {
  for (Request& r : requests) {
    const std::string text = read_from(logs[r.replica], at_split[r.replica], at_heal[r.replica]);
    const std::string op = r.push ? "push " + std::to_string(queue) + " " + std::to_string(r.item) + " (client "
                                  : "pop " + std::to_string(queue) + " (client ";
    for (const std::string& line : lines_of(text)) {
      const uint64_t t = trace_time_us(line);
      if (t == 0) continue;
      const double ms = (static_cast<double>(t) - static_cast<double>(t_split)) / 1000.0;
      if (r.arrived_ms < 0 && line.find(" REQUEST in ") != std::string::npos && line.find(op) != std::string::npos) {
        r.arrived_ms = ms;
        r.fate = line.find(": admitted") != std::string::npos ? "admitted"
                 : line.find(": refused: not in a majority") != std::string::npos ? "refused"
                 : line.find(": refused") != std::string::npos ? "refused (other)"
                                                                 : "other";
      }
      if (r.nonprimary_ms < 0 && line.find(" CONFIG ") != std::string::npos &&
          line.find(" non-primary ") != std::string::npos)
        r.nonprimary_ms = ms;
    }
  }
}

// Checks every answer against the queue read after the heal (`final`, front
// first). Before the split the queue held `initial`; during and after it
// only the trial's requests touched it, so it must be `initial` minus its
// first P items (P: the pops that took effect) followed by the pushes that
// took effect, each once. Returns the number of violations.
int check_trial(const std::vector<int32_t>& initial, const std::vector<int32_t>& final,
                std::vector<Request>& requests, std::vector<std::string>& problems) {
  int violations = 0;
  auto fail = [&](const std::string& what) {
    ++violations;
    problems.push_back(what);
  };
  const std::set<int32_t> initial_set(initial.begin(), initial.end());
  size_t kept = 0;  // leading items of `final` that were there before the split
  while (kept < final.size() && initial_set.count(final[kept])) ++kept;
  if (kept > initial.size() ||
      !std::equal(final.begin(), final.begin() + static_cast<long>(kept), initial.end() - static_cast<long>(kept)))
    fail("the queue after the heal does not start with what was left of the queue before the split");
  const size_t popped = initial.size() - std::min(kept, initial.size());
  std::map<int32_t, int> pushed;  // items after the kept ones
  for (size_t i = kept; i < final.size(); ++i) ++pushed[final[i]];
  std::set<int32_t> request_items;
  for (const Request& r : requests)
    if (r.push) request_items.insert(r.item);
  for (const auto& [item, copies] : pushed)
    if (!request_items.count(item))
      fail("item " + std::to_string(item) + " is in the queue after the heal, but was no trial push (or came back)");

  int ok_pops = 0, no_effect_pops = 0, unknown_pops = 0;
  std::set<int32_t> ok_pop_values;
  for (Request& r : requests) {
    const bool ok = r.exit == 0, no_effect = r.exit == 1, unknown = r.exit == 3;
    if (!ok && !no_effect && !unknown) {
      fail(std::string(r.push ? "push" : "pop") + " to replica " + std::to_string(r.replica) +
           ": the client exited " + std::to_string(r.exit) + " ('" + one_line(r.answer()) + "')");
      r.verdict = "BAD EXIT";
      continue;
    }
    if (r.push) {
      auto it = pushed.find(r.item);
      r.applied = it == pushed.end() ? 0 : it->second;
      if (r.applied > 1) {
        fail("push " + std::to_string(r.item) + " took effect " + std::to_string(r.applied) + " times");
        r.verdict = "VIOLATION: applied twice";
      } else if (ok && r.applied == 0) {
        fail("push " + std::to_string(r.item) + " was answered ok but its item is not in the queue");
        r.verdict = "VIOLATION: answered ok, not applied";
      } else if (no_effect && r.applied == 1) {
        fail("push " + std::to_string(r.item) + " to replica " + std::to_string(r.replica) +
             " was answered 'no effect' (exit 1: '" + one_line(r.answer()) +
             "') but its item is in the queue after the heal");
        r.verdict = "VIOLATION: told 'no effect', applied after the heal";
      } else {
        r.verdict = r.applied ? "applied" : "not applied";
      }
    } else if (ok) {
      ++ok_pops;
      const int32_t v = static_cast<int32_t>(std::strtol(trim(r.output).c_str(), nullptr, 10));
      const bool removed = std::find(initial.begin(), initial.begin() + static_cast<long>(popped), v) !=
                           initial.begin() + static_cast<long>(popped);
      if (!removed || !ok_pop_values.insert(v).second)
        fail("pop to replica " + std::to_string(r.replica) + " answered " + trim(r.output) +
             ", which is not an item a pop removed (or two pops got it)");
    } else if (no_effect) {
      ++no_effect_pops;
    } else {
      ++unknown_pops;
    }
  }
  // The pops: P took effect; every ok one did, no 'no effect' one may have.
  const int p = static_cast<int>(popped);
  if (p < ok_pops) fail(std::to_string(ok_pops) + " pops answered with an item, but only " + std::to_string(p) +
                        " items were removed");
  if (p > ok_pops + unknown_pops)
    fail(std::to_string(p) + " items were removed, but only " + std::to_string(ok_pops) + " pops were answered ok and " +
         std::to_string(unknown_pops) + " 'outcome unknown': a pop answered 'no effect' (" +
         std::to_string(no_effect_pops) + " of them) took effect");
  // Attribute the removals to the pops where that is unambiguous. A pop
  // its replica's trace shows refused cannot have taken effect; among the
  // others of the same answer, the count is shared unless it covers them
  // all or none.
  const bool lied = p > ok_pops + unknown_pops;
  const int unknown_applied = std::max(0, std::min(p - ok_pops, unknown_pops));
  auto candidates = [&](int status) {
    int count = 0;
    for (const Request& r : requests) count += !r.push && r.exit == status && r.fate != "refused";
    return count;
  };
  const int no_effect_candidates = candidates(1), unknown_candidates = candidates(3);
  for (Request& r : requests) {
    if (r.push || !r.verdict.empty()) continue;
    const bool refused = r.fate == "refused";
    if (r.exit == 0) {
      r.applied = 1;
      r.verdict = "applied (as answered)";
    } else if (r.exit == 1) {
      r.applied = !lied || refused ? 0 : no_effect_candidates == 1 ? 1 : -1;
      r.verdict = r.applied == 0   ? "not applied"
                  : r.applied == 1 ? "VIOLATION: told 'no effect', removed an item after the heal"
                                   : "VIOLATION: one of the pops told 'no effect' removed an item";
    } else {
      r.applied = refused || unknown_applied == 0               ? 0
                  : unknown_applied >= unknown_candidates       ? 1
                                                                : -1;
      r.verdict = r.applied == 1 ? "applied" : r.applied == 0 ? "not applied" : "applied or not (pops share the count)";
    }
  }
  return violations;
}

std::string exit_text(int status) {
  switch (status) {
    case 0: return "exit 0 (ok)";
    case 1: return "exit 1 (no effect)";
    case 3: return "exit 3 (unknown)";
    default: return "exit " + std::to_string(status);
  }
}

class Runner {
 public:
  Runner(const Args& a, const Scenario& s, uint64_t seed) : a_(a), s_(s), rng_(seed) {
    base_dir_ = harness::make_temp_dir("answers-" + a.scenario);
  }

  // Runs every trial; returns the totals. Stops early only if the cluster
  // cannot be brought to one primary configuration.
  Totals run() {
    const int n_trials = a_.trials;
    // Even trials are swept, odd ones aimed at the window; each kind's
    // trials get one slice each of its range, in a seeded order.
    const int swept = (n_trials + 1) / 2, aimed = n_trials / 2;
    std::vector<int> swept_order(static_cast<size_t>(swept)), aimed_order(static_cast<size_t>(aimed));
    std::iota(swept_order.begin(), swept_order.end(), 0);
    std::iota(aimed_order.begin(), aimed_order.end(), 0);
    std::shuffle(swept_order.begin(), swept_order.end(), rng_);
    std::shuffle(aimed_order.begin(), aimed_order.end(), rng_);
    for (int t = 0; t < n_trials; ++t) {
      const uint64_t t0 = net::now_us();
      if (!cluster_ || a_.fresh) start_cluster(t);
      const bool aim = t % 2 == 1;
      const double slice = aim ? aimed_order[static_cast<size_t>(t / 2)] / static_cast<double>(aimed)
                               : swept_order[static_cast<size_t>(t / 2)] / static_cast<double>(swept);
      const double width = 1.0 / (aim ? aimed : swept);
      if (!trial(t, aim, slice, width)) {
        ++totals_.setup_failures;
        break;
      }
      totals_.slowest_trial_s = std::max(totals_.slowest_trial_s, (net::now_us() - t0) / 1e6);
    }
    if (cluster_) finish_cluster();
    return totals_;
  }

  const std::string& dir() const { return base_dir_; }

 private:
  void start_cluster(int t) {
    if (cluster_) finish_cluster();
    ClusterConfig config;
    config.members = s_.members;
    config.seed = rng_();
    config.server_bin = a_.server;
    config.dir = cluster_dir_ = base_dir_ + "/cluster-" + std::to_string(t);
    config.cut_files = true;
    if (a_.trace) config.extra.push_back("--trace");
    CHECK(::mkdir(config.dir.c_str(), 0755) == 0, "mkdir " + config.dir);
    cluster_ = std::make_unique<Cluster>(config);
    cluster_->start_all();
  }

  // A graceful stop; byte-identical snapshots (every trial ended healed).
  void finish_cluster() {
    CHECK(cluster_->wait_whole(a_.client), "every replica in one primary configuration before the stop");
    CHECK(cluster_->stop_all(), "graceful stop: every replica's drain must complete");
    cluster_->check_snapshots_identical();
    cluster_.reset();
  }

  // One trial; false if the cluster could not be set up for it.
  // The slot replica's request is aimed (at the window) or swept; `slice`
  // and `width` say which part of its range (fractions of it) it falls in.
  bool trial(int t, bool aimed, double slice, double width) {
    Cluster& c = *cluster_;
    const int n = s_.members;
    std::string last;
    if (wait_converged(a_, c, 30, last) < 0) {
      CHECK(false, "trial " + std::to_string(t + 1) + ": no primary configuration of all " + std::to_string(n) +
                       " within 30 s before the split; last status: " + last);
      return false;
    }
    // The plan, all from the seed: the slot, each request's replica, kind
    // and delay. The slot replica's request alternates between the sweep
    // (its own slice of --from-ms..--to-ms) and the window (its own slice
    // of the 22 ms before where that replica's non-primary install is
    // expected: the median of those seen so far).
    const int slot = s_.members == 3 ? 2 : static_cast<int>(rng_() % static_cast<uint64_t>(n));
    std::uniform_real_distribution<double> unit(0, 1);
    const double where = slice + width * unit(rng_);
    const int span = a_.to_ms - a_.from_ms;
    const int slot_delay = aimed ? static_cast<int>(expected_install_ms() - 2 - 22 * where)
                                 : a_.from_ms + static_cast<int>(span * where);
    std::vector<Request> requests;
    for (int i = 0; i < n; ++i) {
      Request r;
      r.replica = i;
      r.push = rng_() % 3 != 0;
      r.delay_ms = a_.from_ms + static_cast<int>(rng_() % static_cast<uint64_t>(span + 1));
      if (i == slot) {
        r.delay_ms = std::max(0, slot_delay);
        r.aimed = aimed;
      } else if (aimed && same_side(i, slot)) {  // its batch may take the slot too
        r.delay_ms = std::max(0, static_cast<int>(expected_install_ms() - 2 - 22 * unit(rng_)));
        r.aimed = true;
      }
      if (s_.members == 5 || i == slot) requests.push_back(r);
    }
    for (size_t i = 0; i < requests.size(); ++i) requests[i].item = (t + 1) * 1000 + 500 + static_cast<int32_t>(i);

    // A new queue with the initial items, then more until the next slot is
    // the chosen one's (k is assigned by member k mod n).
    auto setup = std::make_unique<ClientProcess>(a_.client, c.servers(), 10);
    const std::string qid = setup->call("create " + std::to_string(100000 + t));
    const int queue = std::atoi(qid.c_str());
    if (queue <= 0) {
      CHECK(false, "trial " + std::to_string(t + 1) + ": create answered '" + qid + "'");
      return false;
    }
    std::vector<int32_t> initial;
    auto push_one = [&]() {
      const int32_t item = (t + 1) * 1000 + static_cast<int32_t>(initial.size());
      const std::string r = setup->call("push " + std::to_string(queue) + " " + std::to_string(item));
      CHECK_EQ(r, std::string("ok"), "trial " + std::to_string(t + 1) + ": setup push");
      initial.push_back(item);
      return r == "ok";
    };
    for (int i = 0; i < s_.initial_items; ++i)
      if (!push_one()) return false;
    int64_t delivered = -1;
    for (int guard = 0; guard <= n; ++guard) {
      delivered = wait_converged(a_, c, 30, last);
      if (delivered < 0 || (delivered + 1) % n == slot) break;
      if (!push_one()) return false;
    }
    if (delivered < 0 || (delivered + 1) % n != slot) {
      CHECK(false, "trial " + std::to_string(t + 1) + ": could not make k=" + std::to_string(delivered + 1) +
                       " replica " + std::to_string(slot) + "'s slot; last status: " + last);
      return false;
    }
    setup.reset();  // the pipe client ends here: the split's only clients are the trial's

    // The split, at once everywhere (Cluster::cut_all). Its time is taken
    // once every replica has been signalled.
    std::vector<size_t> at_split(static_cast<size_t>(n)), at_heal(static_cast<size_t>(n));
    std::vector<std::string> logs;
    for (int i = 0; i < n; ++i) logs.push_back(cluster_dir_ + "/replica-" + std::to_string(i) + ".log");
    for (int i = 0; i < n; ++i) at_split[i] = file_size(logs[i]);
    std::vector<std::string> cut_text(static_cast<size_t>(n));
    for (const std::vector<int>& side : s_.sides)
      for (int i : side) {
        std::vector<int> others;
        for (int m = 0; m < n; ++m)
          if (std::find(side.begin(), side.end(), m) == side.end()) others.push_back(m);
        cut_text[i] = join(others, " ");
      }
    c.cut_all(cut_text);
    const uint64_t t_split = net::now_us();

    // The requests, each from its own thread at its own delay.
    char timeout[32];
    std::snprintf(timeout, sizeof timeout, "%g", a_.client_timeout_s);
    std::vector<std::thread> threads;
    for (Request& r : requests) {
      threads.emplace_back([&, timeout_text = std::string(timeout)] {
        const uint64_t at = t_split + static_cast<uint64_t>(r.delay_ms) * 1000;
        const uint64_t now = net::now_us();
        if (at > now) ::usleep(static_cast<useconds_t>(at - now));  // the aim: a deliberate delay
        r.sent_ms = (net::now_us() - t_split) / 1000.0;
        std::vector<std::string> args = {"--servers", c.endpoint(r.replica), "--timeout", timeout_text};
        args.push_back(r.push ? "push" : "pop");
        args.push_back(std::to_string(queue));
        if (r.push) args.push_back(std::to_string(r.item));
        r.exit = harness::run_program(a_.client, args, "", r.output, r.errors,
                                      static_cast<int>(a_.client_timeout_s * 1000) + 10'000);
        r.done_ms = (net::now_us() - t_split) / 1000.0;
      });
    }
    for (std::thread& th : threads) th.join();
    for (int i = 0; i < n; ++i)
      CHECK(wait_for_log(logs[i], at_split[i], "link cuts (test switch): " + cut_text[i] + "\n"),
            "trial " + std::to_string(t + 1) + ": replica " + std::to_string(i) + " did not confirm its cuts '" +
                cut_text[i] + "'");

    // The heal, then one primary configuration of all n again.
    for (int i = 0; i < n; ++i) at_heal[i] = file_size(logs[i]);
    c.cut_all(std::vector<std::string>(static_cast<size_t>(n)));
    const uint64_t t_heal = net::now_us();
    for (int i = 0; i < n; ++i)
      CHECK(wait_for_log(logs[i], at_heal[i], "link cuts (test switch): none\n"),
            "trial " + std::to_string(t + 1) + ": replica " + std::to_string(i) + " did not confirm the heal");
    const int64_t after = wait_converged(a_, c, 30, last);
    const double converged_s = (net::now_us() - t_heal) / 1e6;
    if (after < 0) {
      CHECK(false, "trial " + std::to_string(t + 1) + ": no primary configuration of all " + std::to_string(n) +
                       " within 30 s of the heal; last status: " + last);
      return false;
    }
    if (a_.trace) read_fates(logs, requests, queue, t_split, at_split, at_heal);
    for (const Request& r : requests)
      if (r.replica == slot && r.nonprimary_ms > 0) installs_ms_.push_back(r.nonprimary_ms);

    // The queue, popped empty through every replica (one client in pipe
    // mode, more pops than items: the last lines say it is empty).
    std::vector<int32_t> final_items;
    bool drained = false;
    {
      const size_t pops = initial.size() + requests.size() + 2;
      std::string input, output, errors;
      for (size_t i = 0; i < pops; ++i) input += "pop " + std::to_string(queue) + "\n";
      harness::run_program(a_.client, {"--servers", c.servers(), "--timeout", "10"}, input, output, errors, 60'000);
      const std::string empty = "error: queue " + std::to_string(queue) + " is empty";
      const std::vector<std::string> lines = lines_of(output);
      for (size_t i = 0; i < lines.size() && !drained; ++i) {
        char* end = nullptr;
        const long v = std::strtol(lines[i].c_str(), &end, 10);
        if (lines[i] == empty) {
          drained = true;
        } else if (lines[i].empty() || *end != 0) {
          CHECK(false, "trial " + std::to_string(t + 1) + ": draining the queue after the heal: '" + lines[i] + "'");
          break;
        } else {
          final_items.push_back(static_cast<int32_t>(v));
        }
      }
    }
    CHECK(drained, "trial " + std::to_string(t + 1) + ": the queue must end empty after the drain");

    std::vector<std::string> problems;
    const int violations = check_trial(initial, final_items, requests, problems);
    for (int i = 0; i < n; ++i)
      CHECK(c.running(i), "trial " + std::to_string(t + 1) + ": replica " + std::to_string(i) + " must be running");

    // The report.
    std::printf("trial %d/%d: queue %d, %zu items, k=%lld next (replica %d's slot); split; heal after %.0f ms; "
                "one configuration again %.2f s after the heal; %zu items after\n",
                t + 1, a_.trials, queue, initial.size(), static_cast<long long>(delivered + 1), slot,
                (t_heal - t_split) / 1000.0, converged_s, final_items.size());
    for (const Request& r : requests) {
      std::string fate;
      if (a_.trace) {
        fate = r.arrived_ms < 0 ? "; trace: not seen"
                                : "; arrived at " + std::to_string(static_cast<int>(r.arrived_ms)) + " ms, " + r.fate;
        if (r.nonprimary_ms >= 0)
          fate += ", non-primary at " + std::to_string(static_cast<int>(r.nonprimary_ms)) + " ms";
        if (r.in_window()) fate += " (IN THE WINDOW)";
      }
      std::printf("  %-22s -> replica %d at %3.0f ms%s: %s '%s'%s => %s\n", r.command(queue).c_str(), r.replica,
                  r.sent_ms, r.aimed ? " (aimed)" : "", exit_text(r.exit).c_str(), one_line(r.answer()).c_str(), fate.c_str(), r.verdict.c_str());
      ++totals_.requests;
      ++totals_.by_exit[r.exit];
      if (r.applied == 1) {
        ++totals_.applied_by_exit[r.exit];
        ++totals_.applied;
      }
      if (r.admitted()) ++totals_.admitted;
      if (r.in_window()) ++totals_.in_window;
    }
    std::fflush(stdout);
    for (const std::string& p : problems) CHECK(false, "trial " + std::to_string(t + 1) + ": " + p);
    totals_.violations += violations;
    ++totals_.trials;
    return true;
  }

  bool same_side(int a, int b) const {
    for (const std::vector<int>& side : s_.sides)
      if (std::count(side.begin(), side.end(), a) && std::count(side.begin(), side.end(), b)) return true;
    return false;
  }

  // Where the slot replica's non-primary install is expected, in ms after
  // the split: the median of those seen (with --trace), else what the
  // defaults give (suspicion about 290 ms after the split, --suspect-ms 300
  // after the last keepalive heard; the view change 60 ms later).
  double expected_install_ms() const {
    if (installs_ms_.empty()) return 345;
    std::vector<double> v = installs_ms_;
    std::nth_element(v.begin(), v.begin() + static_cast<long>(v.size() / 2), v.end());
    return v[v.size() / 2];
  }

  const Args& a_;
  const Scenario& s_;
  std::vector<double> installs_ms_;  // the slot replica's, trial by trial
  std::mt19937_64 rng_;
  std::string base_dir_, cluster_dir_;
  std::unique_ptr<Cluster> cluster_;
  Totals totals_;
};

void usage() {
  std::fprintf(stderr,
               "usage: answers_test split3|split5 --server BIN --client BIN [--trials N] [--seed S]\n"
               "                    [--from-ms A] [--to-ms B] [--client-timeout S] [--fresh] [--no-trace]\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    const bool has_value = i + 1 < argc;
    if (k == "--fresh") a.fresh = true;
    else if (k == "--no-trace") a.trace = false;
    else if (k == "--server" && has_value) a.server = argv[++i];
    else if (k == "--client" && has_value) a.client = argv[++i];
    else if (k == "--trials" && has_value) a.trials = std::atoi(argv[++i]);
    else if (k == "--from-ms" && has_value) a.from_ms = std::atoi(argv[++i]);
    else if (k == "--to-ms" && has_value) a.to_ms = std::atoi(argv[++i]);
    else if (k == "--client-timeout" && has_value) a.client_timeout_s = std::atof(argv[++i]);
    else if (k == "--seed" && has_value) {
      a.seed_given = net::parse_u64(argv[++i], a.seed);
      if (!a.seed_given) {
        usage();
        return 2;
      }
    } else if (a.scenario.empty() && !k.empty() && k[0] != '-') a.scenario = k;
    else {
      usage();
      return 2;
    }
  }
  Scenario s;
  if (a.scenario == "split3") s = Scenario{3, {{0}, {1}, {2}}, 3};
  else if (a.scenario == "split5") s = Scenario{5, {{0, 1}, {2, 3}, {4}}, 6};
  else {
    usage();
    return 2;
  }
  if (a.trials < 0) a.trials = s.members == 3 ? 20 : 10;
  if (a.server.empty() || a.client.empty() || a.trials < 1 || a.from_ms < 0 || a.to_ms <= a.from_ms ||
      !(a.client_timeout_s > 0 && a.client_timeout_s <= 300)) {
    usage();
    return 2;
  }
  const std::string name = "answers " + a.scenario;
  uint64_t seed = a.seed;
  if (a.seed_given) {
    std::printf("%s: seed %" PRIu64 " (replay with FTQ_SEED=%" PRIu64 ")\n", name.c_str(), seed, seed);
  } else {
    seed = harness::test_seed(name.c_str());
  }
  std::printf("%s: %d replicas split %s; %d trials; requests %d..%d ms after the split; client --timeout %g%s\n",
              name.c_str(), s.members,
              [&] {
                std::string t;
                for (const auto& side : s.sides) t += (t.empty() ? "{" : " | {") + join(side, ",") + "}";
                return t;
              }().c_str(),
              a.trials, a.from_ms, a.to_ms, a.client_timeout_s, a.fresh ? "; a fresh cluster every trial" : "");
  const uint64_t t0 = net::now_us();
  Runner runner(a, s, seed);
  const Totals totals = runner.run();

  std::printf("%s: summary: %d trials, %d requests in %.1f s (slowest trial %.1f s)\n", name.c_str(), totals.trials,
              totals.requests, (net::now_us() - t0) / 1e6, totals.slowest_trial_s);
  for (const auto& [status, count] : totals.by_exit) {
    auto it = totals.applied_by_exit.find(status);
    const int applied = it == totals.applied_by_exit.end() ? 0 : it->second;
    std::printf("  %-20s %3d requests, %3d of them took effect after the heal\n", exit_text(status).c_str(), count,
                applied);
  }
  if (a.trace)
    std::printf("  admitted in the old configuration (orphans): %d; of them in the window (admitted within %.0f ms "
                "before the replica's non-primary install, +-1 ms): %d\n",
                totals.admitted, kFirstRetryMs, totals.in_window);
  if (a.trace && totals.in_window == 0)
    std::printf("  note: no request landed in the window in this run; it checked the answers around it only\n");
  std::printf("  took effect after the heal (asked only during the split): %d\n", totals.applied);
  std::printf("  definite answers contradicted by the queue after the heal: %d\n", totals.violations);
  CHECK(totals.trials == a.trials, "only " + std::to_string(totals.trials) + " of " + std::to_string(a.trials) +
                                       " trials could be run");
  // The sweep must reach the old configuration at least once, or the test
  // tested nothing (the early delays are before any suspicion).
  if (a.trials >= 10)
    CHECK(totals.applied > 0, std::string("no request took effect: the sweep never reached a replica before its view "
                                          "change (move --from-ms/--to-ms)"));
  if (harness::g_failures == 0) {
    harness::remove_tree(runner.dir());
    std::printf("%s: passed\n", name.c_str());
    return 0;
  }
  std::printf("%s: %d checks failed; logs and data kept in %s\n", name.c_str(), harness::g_failures,
              runner.dir().c_str());
  return 1;
}
