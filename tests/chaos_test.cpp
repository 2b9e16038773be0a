// chaos_test: 5 replicas at --loss 0.1 and 6 clients for a fixed time, while
// a seeded schedule crashes (SIGKILL) and restarts replicas and cuts and
// heals links (the --cut-file test switch); then everything is healed, the
// queues are drained and the whole history is checked.
//
//   chaos_test --server BIN --client BIN [--checker LINEAR_TEST_BIN]
//              [--seconds S] [--think-ms MS] [--stall-bound S]
//
// Crashes are of two kinds: a process crash, whose log the OS keeps, and
// a lost tail (an OS crash without --fsync: the log's unsynced tail cut
// off, the restart in a new boot, amnesiac until it has caught up, and
// counted out for 3 s after it restarts).
// The schedule never has more than a minority (2 of 5) down or cut off at
// once, so 3 replicas are always up and hear each other, and some of its
// moments have exactly 2 out: two replicas crashed together, a 2|3 split.
// It is a pure function of the seed (harness::test_seed: printed,
// FTQ_SEED=<seed> replays it) and is printed before it runs; the seed also
// drives the clients' choices and the servers' --loss drops. (Thread and
// process scheduling still vary, so the interleaving of calls with faults
// differs from run to run.)
//
// Each client process has every replica in its --servers list, starting at
// a different one, and a 10 s timeout. Its calls are timed and recorded:
//   - "no answer within ...; may still take effect" (or no output) is an
//     unknown outcome, Jepsen's :info: such a push is not lost if its item
//     never comes out, and no surprise if it comes out once;
//   - "no replica is in a majority" is a definite refusal: no effect;
//   - "is empty" is an answer; any other error fails the test.
// After the chaos: every cut healed, every crashed replica restarted, a
// bounded wait (polling `client status`) until all 5 are in one primary
// configuration, a drain of both queues, a graceful stop of all (every
// drain must complete) and byte-identical snapshots. Then the history:
// every acknowledged push popped exactly once, nothing popped twice,
// nothing popped that was not pushed (or pushed to another queue), each
// producer's items popped in order by every popper, no call slower than
// the stall bound, and each queue's history linearizable as a FIFO queue.
// The last check reuses linear_test's checker unchanged: the history is
// written in linear_test's file format and `linear_test --check FILE` runs
// on it (--checker names the binary; without it the check is skipped).
//
// A failure prints the seed, the replay command and which check failed,
// and keeps the directory with every replica's log, the clients' stderr and
// the history.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../net.hpp"
#include "harness.hpp"

using harness::ClientProcess;
using harness::Cluster;
using harness::ClusterConfig;

namespace {

constexpr int kMembers = 5;
constexpr int kMaxOut = (kMembers - 1) / 2;  // a minority: 2 of 5
constexpr int kQueues = 2;
constexpr double kClientTimeoutS = 10;
constexpr int kCheckerBoundMs = 40'000;

struct Args {
  std::string server, client, checker;
  double seconds = 30;    // length of the chaos phase
  double think_ms = 10;   // mean pause between a client's calls (the load)
  int clients = 6;
  double loss = 0.1;
  // The stall bound: no call may take longer. The servers fail over in
  // about 0.4 s (--suspect-ms 300, then a view change; at --loss 0.1 a round
  // is sometimes repeated: the longest time in which no client completed a
  // call was 0.4-0.9 s in our runs, 1.3 s under the sanitizers), and a
  // replica cut off from the majority tells its clients soon that it is not
  // in one. A crashed replica says nothing: its clients keep retrying it
  // and move on only after 8 silent tries, 27 retry timeouts (1+2+4*6) of
  // at most 200 ms each (net::RetryPolicy): up to 5.4 s. They do reach that
  // cap: a reply to a first try that was held through a view change counts
  // as a round-trip sample of that length. (If the replica comes back
  // sooner, it answers the tries waiting in its socket buffer once it has
  // joined.) So: 5.4 s on one silent replica, plus a failover: 6.5 s. A
  // client that leaves one crashed replica for the other one crashed at
  // the same time would wait about twice that and fail this check; that is
  // the clients' slow failover, not the servers', and worth knowing.
  double stall_bound_s = 6.5;
  std::vector<std::string> argv;  // for the replay line
};

// ---- seeded randomness ---------------------------------------------------------
// Our own draws from mt19937_64's bits (its output is fixed by the
// standard), so the schedule is the same function of the seed everywhere.

double uniform(std::mt19937_64& rng, double lo, double hi) {
  return lo + (hi - lo) * static_cast<double>(rng() >> 11) * 0x1.0p-53;
}
int below(std::mt19937_64& rng, int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); }

// ---- the schedule -----------------------------------------------------------------

enum class Kind {
  Crash,    // SIGKILL at start, restarted on its files at end
  // SIGKILL at start; at end the unsynced tail of its log is cut off (as an
  // OS crash without --fsync would) and it restarts in a new boot, so it
  // is amnesiac until it catches up (membership.hpp, "Amnesia")
  LostTail,
  Isolate,  // every link of one replica cut, both ways
  Split,    // two replicas on one side, three on the other
  OneWay,   // `hearer` hears nothing from `silenced` (cut file "in:ID")
};

struct Fault {
  Kind kind = Kind::Crash;
  double start = 0, end = 0;  // seconds from the start of the chaos phase
  std::vector<int> out;       // the replicas it takes out of the majority
  // Crash, Isolate: out = {replica}. Split: out = the minority side.
  // OneWay: out = {hearer, silenced}: either may be the one left out of the
  // next configuration, so both count against the budget.
};

std::string list_text(const std::vector<int>& ids, const char* sep = ",") {
  std::string s;
  for (int i : ids) s += (s.empty() ? "" : sep) + std::to_string(i);
  return s;
}

std::string describe(const Fault& f) {
  char when[64];
  std::snprintf(when, sizeof when, "%6.2f s .. %6.2f s (%.2f s): ", f.start, f.end, f.end - f.start);
  std::string what;
  switch (f.kind) {
    case Kind::Crash:
      what = "crash replica " + std::to_string(f.out[0]) + " (SIGKILL), then restart it";
      break;
    case Kind::LostTail:
      what = "crash replica " + std::to_string(f.out[0]) +
             " (SIGKILL), cut its log's unsynced tail, restart it in a new boot (amnesiac)";
      break;
    case Kind::Isolate:
      what = "isolate replica " + std::to_string(f.out[0]) + " (every link cut, both ways)";
      break;
    case Kind::Split: {
      std::vector<int> rest;
      for (int i = 0; i < kMembers; ++i)
        if (std::find(f.out.begin(), f.out.end(), i) == f.out.end()) rest.push_back(i);
      what = "partition {" + list_text(f.out) + "} | {" + list_text(rest) + "}";
      break;
    }
    case Kind::OneWay:
      what = "one-way cut: replica " + std::to_string(f.out[0]) + " hears nothing from replica " +
             std::to_string(f.out[1]) + " (in:" + std::to_string(f.out[1]) + ")";
      break;
  }
  return when + what;
}

bool active_at(const Fault& f, double t) { return f.start <= t && t < f.end; }

// A replica restarted after a lost tail counts for nothing until it has
// caught up: it stays out of the budget for this long after its restart,
// so that a trusted majority is always up and connected.
constexpr double kAmnesiaAllowanceS = 3.0;
// Every replica's boot id at the start (server --boot-id, a test switch):
// a crash in the same boot keeps the log's tail, so the restart trusts it.
const char* const kFirstBoot = "chaos-boot-0";

std::set<int> out_at(const std::vector<Fault>& faults, double t) {
  std::set<int> out;
  for (const Fault& f : faults)
    if (active_at(f, t) || (f.kind == Kind::LostTail && f.start <= t && t < f.end + kAmnesiaAllowanceS))
      out.insert(f.out.begin(), f.out.end());
  return out;
}

int crashed_at(const std::vector<Fault>& faults, double t) {
  int n = 0;
  for (const Fault& f : faults) n += active_at(f, t) && (f.kind == Kind::Crash || f.kind == Kind::LostTail);
  return n;
}

// Faults start at a cursor that advances 0.3-1.4 s at a time; each takes
// replicas that no active fault holds, within the budget of kMaxOut, and
// lasts 0.8-4 s. A schedule must show every kind of fault, two replicas
// crashed at once and a 2|3 split; one that does not is drawn again (from
// the same generator, so still a function of the seed).
std::vector<Fault> make_schedule(uint64_t seed, double seconds) {
  std::mt19937_64 rng(seed ^ 0x6368616f73ull);  // "chaos"
  for (;;) {
    std::vector<Fault> faults;
    bool two_crashed = false;
    for (double t = 1.0; t < seconds - 2.0; t += uniform(rng, 0.3, 1.4)) {
      std::set<int> out = out_at(faults, t);
      const int budget = kMaxOut - static_cast<int>(out.size());
      if (budget <= 0 || uniform(rng, 0, 1) < 0.2) continue;
      std::vector<int> free;
      for (int i = 0; i < kMembers; ++i)
        if (!out.count(i)) free.push_back(i);
      std::shuffle(free.begin(), free.end(), rng);
      // Weights: crash 3, lost tail 1, isolate 2, one-way 1, split 2 (the
      // last two need two free slots of the budget).
      std::vector<Kind> kinds = {Kind::Crash, Kind::Crash, Kind::Crash, Kind::LostTail, Kind::Isolate, Kind::Isolate};
      if (budget >= 2) kinds.insert(kinds.end(), {Kind::OneWay, Kind::Split, Kind::Split});
      Fault f;
      f.kind = kinds[static_cast<size_t>(below(rng, static_cast<int>(kinds.size())))];
      f.start = t;
      f.end = std::min(t + uniform(rng, 0.8, 4.0), seconds - 0.5);
      const size_t take = f.kind == Kind::Split || f.kind == Kind::OneWay ? 2 : 1;
      f.out.assign(free.begin(), free.begin() + static_cast<long>(take));
      if (f.kind == Kind::Split) std::sort(f.out.begin(), f.out.end());
      faults.push_back(f);
      two_crashed = two_crashed || crashed_at(faults, t) == 2;
    }
    auto has = [&](Kind k) {
      return std::any_of(faults.begin(), faults.end(), [k](const Fault& f) { return f.kind == k; });
    };
    if (two_crashed && has(Kind::Isolate) && has(Kind::Split) && has(Kind::OneWay) && has(Kind::LostTail)) return faults;
  }
}

// Each replica's cut file for the faults active now: a token per member
// whose datagrams it drops, written exactly as the server describes its
// cuts in its log ("0 2 in:3", or "none"), so the log line confirms it.
std::vector<std::string> cut_texts(const std::vector<Fault>& faults, const std::vector<bool>& active) {
  std::vector<std::vector<bool>> in(kMembers, std::vector<bool>(kMembers)), outl = in;
  for (size_t k = 0; k < faults.size(); ++k) {
    if (!active[k]) continue;
    const Fault& f = faults[k];
    if (f.kind == Kind::Isolate) {
      for (int m = 0; m < kMembers; ++m)
        if (m != f.out[0]) in[f.out[0]][m] = outl[f.out[0]][m] = true;
    } else if (f.kind == Kind::Split) {
      for (int a : f.out)
        for (int m = 0; m < kMembers; ++m)
          if (std::find(f.out.begin(), f.out.end(), m) == f.out.end()) in[a][m] = outl[a][m] = true;
    } else if (f.kind == Kind::OneWay) {
      in[f.out[0]][f.out[1]] = true;
    }
  }
  std::vector<std::string> texts(kMembers);
  for (int r = 0; r < kMembers; ++r) {
    std::string t;
    for (int m = 0; m < kMembers; ++m) {
      if (in[r][m] && outl[r][m]) t += " " + std::to_string(m);
      else if (in[r][m]) t += " in:" + std::to_string(m);
      else if (outl[r][m]) t += " out:" + std::to_string(m);
    }
    texts[r] = t.empty() ? "none" : t.substr(1);
  }
  return texts;
}

size_t count_of(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t pos = text.find(part); pos != std::string::npos; pos = text.find(part, pos + 1)) ++n;
  return n;
}

// Runs the schedule against the cluster, from the calling thread (the one
// that started the servers: a server dies with the thread that forked it).
class Chaos {
 public:
  Chaos(Cluster& cluster, std::vector<Fault> faults, uint64_t seed)
      : cluster_(cluster), faults_(std::move(faults)), tail_rng_(seed ^ 0x7461696cull) {  // "tail"
    boot_ids_.assign(kMembers, kFirstBoot);
    active_.assign(faults_.size(), false);
    cuts_.assign(kMembers, "none");
    life_starts_at_.assign(kMembers, 0);
  }

  // Applies every start and end in time order; t0 is the phase's start.
  void run(uint64_t t0) {
    struct Step {
      double at;
      int begins;  // ends first at equal times, so the budget holds
      size_t fault;
      bool operator<(const Step& o) const {
        return at != o.at ? at < o.at : begins != o.begins ? begins < o.begins : fault < o.fault;
      }
    };
    std::vector<Step> steps;
    for (size_t k = 0; k < faults_.size(); ++k) {
      steps.push_back({faults_[k].start, 1, k});
      steps.push_back({faults_[k].end, 0, k});
    }
    std::sort(steps.begin(), steps.end());
    for (const Step& s : steps) {
      const uint64_t due = t0 + static_cast<uint64_t>(s.at * 1e6);
      const uint64_t now = net::now_us();
      if (due > now) ::usleep(static_cast<useconds_t>(due - now));
      apply(s.fault, s.begins != 0, t0);
    }
  }

  // Ends whatever is still active (nothing, after run): heal and restart.
  void heal_all(uint64_t t0) {
    for (size_t k = 0; k < faults_.size(); ++k)
      if (active_[k]) apply(k, false, t0);
  }

  double worst_lag_s() const { return worst_lag_s_; }

 private:
  void apply(size_t k, bool begin, uint64_t t0) {
    const Fault& f = faults_[k];
    const double late = (net::now_us() - t0) / 1e6 - (begin ? f.start : f.end);
    worst_lag_s_ = std::max(worst_lag_s_, late);
    active_[k] = begin;
    if (f.kind == Kind::Crash || f.kind == Kind::LostTail) {
      const int r = f.out[0];
      std::string lost;
      if (begin) {
        cluster_.crash(r);
      } else {
        life_starts_at_[r] = cluster_.log_text(r).size();
        if (f.kind == Kind::LostTail) {
          const size_t cut = harness::cut_log_tail(cluster_.data_dir(r) + "/log.txt", tail_rng_);
          lost = " in a new boot, the last " + std::to_string(cut) + " lines of its log cut off";
          boot_ids_[r] = "chaos-boot-" + std::to_string(++boots_);
        }
        cluster_.start(r, {"--boot-id", boot_ids_[r]});
      }
      std::printf("chaos %7.2f s: %s replica %d%s\n", (net::now_us() - t0) / 1e6, begin ? "crashed" : "restarted", r,
                  lost.c_str());
    } else {
      set_cuts();
      std::printf("chaos %7.2f s: %s %s\n", (net::now_us() - t0) / 1e6, begin ? "cut" : "healed",
                  describe(f).substr(describe(f).find(": ") + 2).c_str());
    }
    std::fflush(stdout);
  }

  // Writes every changed cut file and signals its replica, then waits
  // (bounded) until each one's log confirms it read its cuts.
  void set_cuts() {
    const std::vector<std::string> want = cut_texts(faults_, active_);
    std::vector<std::pair<int, size_t>> pending;  // replica, confirmations seen before
    for (int r = 0; r < kMembers; ++r) {
      if (want[r] == cuts_[r]) continue;
      wait_listening(r);
      const std::string line = confirmation(want[r]);
      pending.emplace_back(r, count_of(cluster_.log_text(r), line));
      cluster_.cut(r, want[r] == "none" ? "" : want[r]);
      cuts_[r] = want[r];
    }
    for (auto [r, before] : pending) {
      const std::string line = confirmation(want[r]);
      bool confirmed = false;
      for (int waited_ms = 0; !confirmed && waited_ms < 5000; waited_ms += 5) {
        confirmed = count_of(cluster_.log_text(r), line) > before;
        if (!confirmed) ::usleep(5000);
      }
      CHECK(confirmed, "replica " + std::to_string(r) + " did not confirm its link cuts '" + want[r] +
                           "' in its log within 5 s");
    }
  }

  static std::string confirmation(const std::string& cuts) { return "link cuts (test switch): " + cuts + "\n"; }

  // A replica restarted moments ago may not yet handle SIGHUP (whose default
  // action ends a process): wait (bounded) until this life says it listens,
  // after the point its log had reached when it was started. (Counting the
  // "listening" lines would not do: a life crashed moments after its start
  // may never have said it.)
  void wait_listening(int r) {
    for (int waited_ms = 0; waited_ms < 5000; waited_ms += 5) {
      if (cluster_.log_text(r).find("] listening on ", life_starts_at_[r]) != std::string::npos) return;
      ::usleep(5000);
    }
    CHECK(false, "replica " + std::to_string(r) + " did not say it listens within 5 s of its start");
  }

  Cluster& cluster_;
  std::vector<Fault> faults_;
  std::mt19937_64 tail_rng_;          // how much of a log's tail a LostTail cuts
  std::vector<std::string> boot_ids_;  // each replica's boot (--boot-id), new after a LostTail
  int boots_ = 0;
  std::vector<bool> active_;
  std::vector<std::string> cuts_;
  std::vector<size_t> life_starts_at_;  // each replica's log size when its current life started
  double worst_lag_s_ = 0;
};

// ---- the workload and its history -------------------------------------------------

// One call, as linear_test records it (and saves it: client start end cmd -> result).
struct Call {
  int client = 0;
  uint64_t start_us = 0, end_us = 0;
  std::string command, result;
  double seconds() const { return (end_us - start_us) / 1e6; }
};

Call timed_call(ClientProcess& c, int client, const std::string& command) {
  Call call;
  call.client = client;
  call.command = command;
  call.start_us = net::now_us();
  call.result = c.call(command);
  call.end_us = net::now_us();
  return call;
}

// The client processes write "replica ... is not in a majority; trying
// another" on stderr; they inherit the test's at fork, so while they are
// started the test's stderr points at a file in the run's directory.
class StderrTo {
 public:
  explicit StderrTo(const std::string& path) {
    std::fflush(stderr);
    saved_ = ::dup(2);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 2);
      ::close(fd);
    }
  }
  ~StderrTo() {
    std::fflush(stderr);
    if (saved_ >= 0) {
      ::dup2(saved_, 2);
      ::close(saved_);
    }
  }
  StderrTo(const StderrTo&) = delete;
  StderrTo& operator=(const StderrTo&) = delete;

 private:
  int saved_ = -1;
};

// A client's loop until `stop`: pushes of unique items (client c's j-th push
// is (c+1)*1000000+j) and pops, half and half, on queues 1 and 2, with a
// seeded pause between calls. No top or size: with those in a history of
// thousands of calls, linear_test's search (which prunes only with pops)
// ran for minutes (a 4,366-call queue history: over 60 s and 4 GB with
// tops, 17 s with sizes, 0.1 s with pushes and pops alone). Pops that find
// the queue empty still check the reads' side of the order.
void client_loop(const Args& a, uint64_t seed, int c, ClientProcess& client, const std::atomic<bool>& stop,
                 std::vector<Call>& out) {
  std::mt19937_64 rng(seed * 1000003u + static_cast<uint64_t>(c));
  int pushes = 0;
  while (!stop) {
    const std::string q = std::to_string(1 + below(rng, kQueues));
    std::string cmd = below(rng, 2) == 0 ? "push " + q + " " + std::to_string((c + 1) * 1000000 + pushes++)
                                         : "pop " + q;
    out.push_back(timed_call(client, c, cmd));
    const double pause_ms = uniform(rng, 0, 2 * a.think_ms);
    ::usleep(static_cast<useconds_t>(pause_ms * 1000));
  }
}

// ---- after the chaos --------------------------------------------------------------

// "...; 127.0.0.1:p up: replica 3, config 12.0 primary {0,1,2,3,4} (hears 5 of 5), delivered ..."
// -> each replica's "12.0 primary {0,1,2,3,4}" ("" if it did not answer).
std::vector<std::string> configs_of(const std::string& text) {
  // One-shot, the client prints a line per replica (from a pipe, one line
  // with the replicas joined by "; ").
  std::string status;
  for (char ch : text) status += ch == '\n' ? std::string("; ") : std::string(1, ch);
  while (status.size() >= 2 && status.compare(status.size() - 2, 2, "; ") == 0) status.resize(status.size() - 2);
  std::vector<std::string> configs;
  size_t pos = 0;
  while (pos < status.size()) {
    size_t end = status.find("; ", pos);
    if (end == std::string::npos) end = status.size();
    const std::string part = status.substr(pos, end - pos);
    const size_t c = part.find(" config "), h = part.find(" (hears ");
    configs.push_back(part.find(" up: ") != std::string::npos && c != std::string::npos && h != std::string::npos
                          ? part.substr(c + 8, h - c - 8)
                          : "");
    pos = end + 2;
  }
  return configs;
}

// Polls `client status` until every replica answers from one primary
// configuration of all five; returns the seconds it took, or -1.
double wait_for_full_configuration(const Args& a, const Cluster& cluster, double bound_s, std::string& last) {
  const uint64_t t0 = net::now_us();
  const std::string all = "primary {" + list_text({0, 1, 2, 3, 4}) + "}";
  while (net::now_us() - t0 < static_cast<uint64_t>(bound_s * 1e6)) {
    std::string out;
    harness::run_program(a.client, {"--servers", cluster.servers(), "--timeout", "1", "status"}, out, 5000);
    if (!out.empty() && out.back() == '\n') out.pop_back();
    last = out;
    std::vector<std::string> configs = configs_of(out);
    bool same = configs.size() == kMembers && configs[0].find(all) != std::string::npos;
    for (const std::string& c : configs) same = same && c == configs[0];
    if (same) return (net::now_us() - t0) / 1e6;
    ::usleep(100'000);
  }
  return -1;
}

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }
bool has(const std::string& s, const char* p) { return s.find(p) != std::string::npos; }

// What a call's output says (as linear_test reads it).
enum class Outcome { Value, Empty, Ok, Unknown, NotInMajority, OtherError };
Outcome outcome_of(const Call& c) {
  if (c.result == "ok") return Outcome::Ok;
  if (has(c.result, "may still take effect") || c.result == "<no output>") return Outcome::Unknown;
  if (starts_with(c.result, "error:") && has(c.result, " is empty")) return Outcome::Empty;
  if (starts_with(c.result, "error: no replica is in a majority")) return Outcome::NotInMajority;
  int32_t v;
  if (net::parse_i32(c.result, v) && !starts_with(c.command, "push")) return Outcome::Value;
  return Outcome::OtherError;
}

struct Parsed {
  std::string verb;
  int queue = 0;
  int32_t item = 0;
};
Parsed parse_command(const std::string& command) {
  Parsed p;
  char verb[16] = {0};
  int q = 0, item = 0;
  std::sscanf(command.c_str(), "%15s %d %d", verb, &q, &item);
  p.verb = verb;
  p.queue = q;
  p.item = item;
  return p;
}

// The history checks that need no search: returns the number of
// acknowledged pushes (so the caller can insist there were many).
size_t check_items(const std::vector<Call>& history, int poppers) {
  std::map<int32_t, int> acked, maybe;  // item -> queue (pushes answered ok / without an answer)
  std::map<int32_t, int> refused;       // item -> queue (pushes refused: no effect)
  std::map<int32_t, std::vector<int>> popped;  // item -> queues it was popped from
  std::map<int, int> unknown_pops;      // queue -> pops without an answer
  std::map<Outcome, int> counts;
  int other_errors = 0;
  std::vector<std::map<std::pair<int, int>, int32_t>> last_seen(static_cast<size_t>(poppers));
  for (const Call& c : history) {
    const Parsed p = parse_command(c.command);
    const Outcome o = outcome_of(c);
    ++counts[o];
    if (o == Outcome::OtherError) {
      if (++other_errors <= 5) std::printf("  other error: client %d: %s -> %s\n", c.client, c.command.c_str(), c.result.c_str());
      continue;
    }
    if (p.verb == "push") {
      if (o == Outcome::Ok) acked[p.item] = p.queue;
      else if (o == Outcome::Unknown) maybe[p.item] = p.queue;
      else if (o == Outcome::NotInMajority) refused[p.item] = p.queue;
    } else if (p.verb == "pop") {
      if (o == Outcome::Unknown) ++unknown_pops[p.queue];
      if (o != Outcome::Value) continue;
      const int32_t item = static_cast<int32_t>(std::atoll(c.result.c_str()));
      popped[item].push_back(p.queue);
      // FIFO per producer: each popper sees a producer's items (on one
      // queue) in the order they were pushed.
      auto key = std::make_pair(item / 1000000, p.queue);
      auto& seen = last_seen[static_cast<size_t>(c.client)];
      auto prev = seen.find(key);
      CHECK(prev == seen.end() || prev->second < item,
            "FIFO per producer: popper " + std::to_string(c.client) + " got " + std::to_string(item) + " from queue " +
                std::to_string(p.queue) + " after " + std::to_string(prev == seen.end() ? -1 : prev->second));
      seen[key] = item;
    }
  }
  int lost = 0, duplicated = 0, unexpected = 0, wrong_queue = 0, maybe_popped = 0;
  std::map<int, int> lost_in;
  for (auto& [item, q] : acked)
    if (!popped.count(item)) {
      ++lost;
      ++lost_in[q];
      if (lost <= 5) std::printf("  acknowledged push never popped: %d to queue %d\n", item, q);
    }
  for (auto& [item, queues] : popped) {
    if (queues.size() > 1) {
      ++duplicated;
      if (duplicated <= 5) std::printf("  popped %zu times: %d\n", queues.size(), item);
    }
    const bool was_acked = acked.count(item) != 0, was_maybe = maybe.count(item) != 0;
    if (!was_acked && !was_maybe) {
      ++unexpected;
      if (unexpected <= 5)
        std::printf("  popped but never pushed%s: %d\n", refused.count(item) ? " (its push was refused)" : "", item);
    } else {
      const int q = was_acked ? acked[item] : maybe[item];
      for (int got : queues) wrong_queue += got != q;
      maybe_popped += was_maybe;
    }
  }
  std::printf("history: %zu calls: %d ok, %d values, %d empty, %d unknown outcome, %d not-in-majority, %d other errors\n",
              history.size(), counts[Outcome::Ok], counts[Outcome::Value], counts[Outcome::Empty],
              counts[Outcome::Unknown], counts[Outcome::NotInMajority], other_errors);
  std::printf("items: %zu pushes acknowledged, %zu without an answer (%d of them popped), %zu refused; "
              "lost %d, duplicated %d, unexpected %d, from the wrong queue %d\n",
              acked.size(), maybe.size(), maybe_popped, refused.size(), lost, duplicated, unexpected, wrong_queue);
  CHECK(other_errors == 0, std::to_string(other_errors) + " calls got an error other than 'is empty', "
                           "'no replica is in a majority' or 'no answer'");
  // A pop without an answer may have taken an item nobody saw: only that
  // many acknowledged pushes of its queue may be missing.
  for (auto& [q, n] : lost_in)
    CHECK(n <= unknown_pops[q], std::to_string(n) + " acknowledged pushes to queue " + std::to_string(q) +
                                    " were never popped (pops without an answer there: " +
                                    std::to_string(unknown_pops[q]) + ")");
  CHECK(duplicated == 0, std::to_string(duplicated) + " items popped more than once");
  CHECK(unexpected == 0, std::to_string(unexpected) + " popped items were never pushed");
  CHECK(wrong_queue == 0, std::to_string(wrong_queue) + " items popped from a queue they were not pushed to");
  return acked.size();
}

// Writes the history in linear_test's format (save_history / parse_line).
bool save_history(const std::string& path, const std::vector<Call>& history) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) return false;
  std::fprintf(f, "# client start_us end_us command -> result\n");
  for (const Call& c : history)
    std::fprintf(f, "%d %" PRIu64 " %" PRIu64 " %s -> %s\n", c.client, c.start_us, c.end_us, c.command.c_str(),
                 c.result.c_str());
  return std::fclose(f) == 0;
}

void print_usage() {
  std::fprintf(stderr,
               "usage: chaos_test --server BIN --client BIN [--checker LINEAR_TEST_BIN] [--seconds S]\n"
               "                  [--think-ms MS] [--stall-bound S] [--clients N]\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines appear as they happen, also in a pipe
  Args a;
  a.argv.assign(argv, argv + argc);
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) {
      print_usage();
      return 2;
    }
    const std::string v = argv[++i];
    if (k == "--server") a.server = v;
    else if (k == "--client") a.client = v;
    else if (k == "--checker") a.checker = v;
    else if (k == "--seconds") a.seconds = std::atof(v.c_str());
    else if (k == "--think-ms") a.think_ms = std::atof(v.c_str());
    else if (k == "--stall-bound") a.stall_bound_s = std::atof(v.c_str());
    else if (k == "--clients") a.clients = std::atoi(v.c_str());
    else {
      print_usage();
      return 2;
    }
  }
  if (a.server.empty() || a.client.empty() || a.seconds < 5 || a.clients < 1 || a.think_ms < 0) {
    print_usage();
    return 2;
  }
  const uint64_t test_t0 = net::now_us();
  const uint64_t seed = harness::test_seed("chaos");
  const std::string dir = harness::make_temp_dir("chaos");
  std::string replay_line = "FTQ_SEED=" + std::to_string(seed);
  for (const std::string& s : a.argv) replay_line += " " + s;

  const std::vector<Fault> faults = make_schedule(seed, a.seconds);
  std::printf("chaos: %d replicas at --loss %.2f, %d clients, %.0f s of chaos, mean pause %.0f ms between a "
              "client's calls; stall bound %.1f s\n",
              kMembers, a.loss, a.clients, a.seconds, a.think_ms, a.stall_bound_s);
  std::printf("schedule (seed %" PRIu64 "; at most %d of %d out at once):\n", seed, kMaxOut, kMembers);
  for (const Fault& f : faults) std::printf("  %s\n", describe(f).c_str());
  double two_out = 0;
  for (double t = 0; t < a.seconds; t += 0.01) two_out += out_at(faults, t).size() == kMaxOut ? 0.01 : 0;
  std::printf("  (exactly %d out for %.1f s of %.0f)\n", kMaxOut, two_out, a.seconds);
  std::fflush(stdout);

  ClusterConfig config{kMembers, a.loss, seed, a.server, dir, {}};
  config.cut_files = true;
  std::vector<Call> history;
  uint64_t chaos_t0 = 0;  // the chaos phase's start (net::now_us)
  double full_config_s = -1;
  std::string last_status;
  {
    Cluster cluster(config);
    for (int i = 0; i < kMembers; ++i) cluster.start(i, {"--boot-id", kFirstBoot});
    // Client processes are started from this thread (it outlives them),
    // with their stderr in the run's directory (only while each is started:
    // the test's own messages stay on its stderr).
    auto new_client = [&](const std::string& servers) {
      StderrTo redirect(dir + "/clients.stderr");
      return std::make_unique<ClientProcess>(a.client, servers, kClientTimeoutS);
    };
    {
      auto setup = new_client(cluster.servers());
      for (int q = 1; q <= kQueues; ++q)
        CHECK_EQ(setup->call("create " + std::to_string(q)), std::to_string(q), "create queue");
    }
    // Each client has every replica in its list, starting at a different one.
    std::vector<std::unique_ptr<ClientProcess>> clients;
    for (int c = 0; c < a.clients; ++c) {
      std::string servers;
      for (int i = 0; i < kMembers; ++i) servers += (i ? "," : "") + cluster.endpoint((c + i) % kMembers);
      clients.push_back(new_client(servers));
    }
    std::vector<std::vector<Call>> calls(static_cast<size_t>(a.clients));
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    const uint64_t t0 = chaos_t0 = net::now_us();
    for (int c = 0; c < a.clients; ++c)
      threads.emplace_back([&, c] { client_loop(a, seed, c, *clients[static_cast<size_t>(c)], stop, calls[static_cast<size_t>(c)]); });

    Chaos chaos(cluster, faults, seed);
    chaos.run(t0);
    const uint64_t end = t0 + static_cast<uint64_t>(a.seconds * 1e6);
    if (net::now_us() < end) ::usleep(static_cast<useconds_t>(end - net::now_us()));
    stop = true;
    chaos.heal_all(t0);  // nothing should be left active: the schedule ends 0.5 s early
    for (auto& t : threads) t.join();
    std::printf("chaos phase over after %.1f s (schedule applied at most %.2f s late); clients stopped\n",
                (net::now_us() - t0) / 1e6, chaos.worst_lag_s());
    for (auto& calls_of_one : calls) history.insert(history.end(), calls_of_one.begin(), calls_of_one.end());

    full_config_s = wait_for_full_configuration(a, cluster, 30, last_status);
    if (full_config_s >= 0) std::printf("all %d replicas in one primary configuration %.2f s after the heal\n", kMembers, full_config_s);
    CHECK(full_config_s >= 0, "all 5 replicas in one primary configuration within 30 s of the heal; last status: " +
                                  last_status);

    // The drain: pop both queues until empty.
    {
      auto drainer = new_client(cluster.servers());
      for (int q = 1; q <= kQueues; ++q)
        for (size_t guard = 0; guard <= history.size(); ++guard) {
          Call c = timed_call(*drainer, a.clients, "pop " + std::to_string(q));
          history.push_back(c);
          if (outcome_of(c) == Outcome::Empty || outcome_of(c) == Outcome::OtherError) break;
        }
    }
    clients.clear();
    CHECK(cluster.wait_whole(a.client), "every replica in one primary configuration before the stop");
    CHECK(cluster.stop_all(), "graceful stop: every replica's drain must complete (exit status 0)");
    cluster.check_snapshots_identical();

    // Failover as the replicas and clients saw it.
    std::string primaries;
    for (int r = 0; r < kMembers; ++r)
      primaries += (r ? ", " : "") + std::to_string(count_of(cluster.log_text(r), "] configuration ") -
                                                    count_of(cluster.log_text(r), " non-primary {"));
    std::string client_err;
    {
      FILE* f = std::fopen((dir + "/clients.stderr").c_str(), "r");
      char buf[4096];
      size_t n;
      while (f && (n = std::fread(buf, 1, sizeof buf, f)) > 0) client_err.append(buf, n);
      if (f) std::fclose(f);
    }
    std::printf("failover: primary configurations installed, per replica: %s; clients told 'not in a majority, "
                "trying another' %zu times\n",
                primaries.c_str(), count_of(client_err, "is not in a majority"));
  }

  // ---- the history ----
  std::sort(history.begin(), history.end(), [](const Call& x, const Call& y) { return x.start_us < y.start_us; });
  const size_t acked = check_items(history, a.clients + 1);
  CHECK(acked >= 200, "only " + std::to_string(acked) + " pushes were acknowledged: the run proves little");

  // Stalls: the slowest calls, with what the schedule was doing then.
  std::vector<const Call*> slow;
  for (const Call& c : history) slow.push_back(&c);
  std::sort(slow.begin(), slow.end(), [](const Call* x, const Call* y) { return x->seconds() > y->seconds(); });
  std::printf("slowest calls (bound %.1f s):\n", a.stall_bound_s);
  for (size_t i = 0; i < slow.size() && i < 5; ++i) {
    const Call& c = *slow[i];
    const double at = (c.start_us - chaos_t0) / 1e6;
    const std::set<int> out = out_at(faults, at);
    std::printf("  %.3f s: client %d '%s' -> '%s', from %.2f s (out then: {%s})\n", c.seconds(), c.client,
                c.command.c_str(), c.result.c_str(), at, list_text(std::vector<int>(out.begin(), out.end())).c_str());
  }
  // The cluster as a whole: the longest time in the chaos phase during
  // which no client's call completed (failover as the servers do it; a
  // single client can wait longer, on a replica that crashed).
  std::vector<uint64_t> ends;
  for (const Call& c : history)
    if (c.client < a.clients) ends.push_back(c.end_us);
  const harness::QuietStretch gap = harness::longest_quiet_stretch(ends, chaos_t0);
  std::printf("longest time in which no call completed anywhere: %.3f s, from %.2f s\n", gap.length / 1e6,
              (gap.start - chaos_t0) / 1e6);
  int stalled = 0;
  for (const Call* c : slow) stalled += c->seconds() > a.stall_bound_s;
  char bound[32];
  std::snprintf(bound, sizeof bound, "%.1f s", a.stall_bound_s);
  CHECK(stalled == 0, std::to_string(stalled) + " calls took longer than the stall bound of " + bound);

  // Linearizability per queue, by linear_test's own checker.
  const std::string history_file = dir + "/history.txt";
  CHECK(save_history(history_file, history), "write " + history_file);
  if (!a.checker.empty()) {
    std::string out;
    const uint64_t c0 = net::now_us();
    // Bounded, so that a search that explodes (calls without an answer
    // widen it) fails here and says so, within the test's time limit.
    const int status = harness::run_program(a.checker, {"--check", history_file}, out, kCheckerBoundMs);
    std::printf("linearizability (%s --check, %.1f s):\n%s", a.checker.c_str(), (net::now_us() - c0) / 1e6,
                out.c_str());
    CHECK(status == 0, status == -1 ? "per-queue linearizability: linear_test --check " + history_file +
                                          " did not finish within " + std::to_string(kCheckerBoundMs / 1000) + " s"
                                    : "per-queue linearizability: linear_test --check " + history_file +
                                          " exited " + std::to_string(status) + " (1: not linearizable)");
  } else {
    std::printf("linearizability: not checked (no --checker given)\n");
  }

  const double took = (net::now_us() - test_t0) / 1e6;
  if (harness::g_failures == 0) {
    harness::remove_tree(dir);
    std::printf("chaos: passed in %.1f s (seed %" PRIu64 ")\n", took, seed);
    return 0;
  }
  std::printf("chaos: %d checks failed (see CHECK FAILED above) in %.1f s; seed %" PRIu64 "\n"
              "  replay: %s\n  (or, in the build directory: FTQ_SEED=%" PRIu64 " ctest -R chaos --output-on-failure)\n  logs (replica-I.log), clients' stderr, data and history.txt kept in %s\n",
              harness::g_failures, took, seed, replay_line.c_str(), seed, dir.c_str());
  return 1;
}
