// linear_test: several clients at once against a real cluster with --loss,
// each call recorded with its start time, end time and result; then the
// history is checked.
//
//   linear_test --members N --loss P --server BIN --client BIN
//               [--clients C] [--ops K] [--history-out FILE]
//
// Checked: per queue, linearizability against a FIFO queue model (Wing and
// Gong's search with Lowe's memoisation; queues are checked one at a time,
// since linearizability composes per object); Jepsen's queue anomalies (lost:
// an acknowledged push never popped after draining; duplicated: an item
// popped twice; unexpected: a popped item never pushed); and byte-identical
// snapshots after a graceful stop. A failure writes the history to a file
// and names it. Seeded: FTQ_SEED=<seed> replays the same choices and drops.
//
// A call that got no answer (the client's "may still take effect", or no
// output at all) stays in the history as what it is: it may have taken
// effect at any time after it started, or never (Jepsen's :info). Leaving
// it out would check a history other than the one that happened: its push
// may explain a later pop, its pop a missing item.
#include <algorithm>
#include <cstdio>
#include <deque>
#include <iterator>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "../net.hpp"
#include "harness.hpp"

namespace {

enum class Kind { Push, Pop, Top, Size };

// One call on one queue.
struct Event {
  int client = 0;
  Kind kind = Kind::Push;
  int queue = 0;
  int32_t value = 0;     // pushed item, or the popped/top item, or the size
  bool empty = false;    // pop/top answered "is empty"
  bool unknown = false;  // no answer: took effect after start_us, or never
  uint64_t start_us = 0, end_us = 0;
  std::string command, result;
};

// Applies `e` to `q` if the model allows e's recorded result there.
bool step(std::deque<int32_t>& q, const Event& e) {
  if (e.unknown) {  // no result to check, only the effect
    if (e.kind == Kind::Push) q.push_back(e.value);
    if (e.kind == Kind::Pop && !q.empty()) q.pop_front();
    return true;
  }
  switch (e.kind) {
    case Kind::Push:
      q.push_back(e.value);
      return true;
    case Kind::Pop:
    case Kind::Top:
      if (q.empty()) return e.empty;
      if (e.empty || q.front() != e.value) return false;
      if (e.kind == Kind::Pop) q.pop_front();
      return true;
    case Kind::Size:
      return static_cast<int32_t>(q.size()) == e.value;
  }
  return false;
}

// Wing & Gong search over one queue's history, memoising (set of linearized
// calls, model state) pairs already explored (Lowe, 2017). Returns true if
// some order consistent with real time explains every result.
//
// A call without an answer returns after every other call. So the search
// may linearize it anywhere after its start, and must linearize it
// somewhere: at the very end, after every answered call, it is never
// observed, which is the case of a call that never took effect.
class LinearizabilityChecker {
 public:
  explicit LinearizabilityChecker(std::vector<Event> events) : ev_(std::move(events)) {
    std::map<int32_t, size_t> popped_by;
    for (size_t i = 0; i < ev_.size(); ++i)
      if (ev_[i].kind == Kind::Pop && !ev_[i].empty && !ev_[i].unknown) popped_by[ev_[i].value] = i;
    pop_of_.assign(ev_.size(), kNil);
    for (size_t i = 0; i < ev_.size(); ++i)
      if (ev_[i].kind == Kind::Push && popped_by.count(ev_[i].value)) pop_of_[i] = popped_by[ev_[i].value];
    // Entries: a call and a return per event, ordered by time (calls first on ties).
    for (size_t i = 0; i < ev_.size(); ++i) {
      entries_.push_back({ev_[i].start_us, 0, i});
      entries_.push_back({ev_[i].unknown ? kNever : ev_[i].end_us, 1, i});
    }
    std::sort(entries_.begin(), entries_.end());
  }

  bool check(uint64_t budget) {
    size_t n = entries_.size();
    next_.resize(n + 1);
    prev_.resize(n + 1);
    // A doubly linked list over the entries, with a head sentinel at index n.
    for (size_t i = 0; i < n; ++i) {
      next_[i] = i + 1 < n ? i + 1 : kNil;
      prev_[i] = i == 0 ? n : i - 1;
    }
    next_[n] = n > 0 ? 0 : kNil;
    return_of_.assign(ev_.size(), 0);
    call_of_.assign(ev_.size(), 0);
    for (size_t i = 0; i < n; ++i) (entries_[i].is_return ? return_of_ : call_of_)[entries_[i].event] = i;

    std::vector<bool> linearized(ev_.size(), false);
    std::deque<int32_t> state;
    std::vector<std::pair<size_t, std::deque<int32_t>>> stack;  // (call entry, state before)
    std::unordered_set<std::string> seen;
    size_t entry = next_[n];
    uint64_t steps = 0;
    while (next_[n] != kNil) {
      if (++steps > budget) {
        exhausted_ = true;
        return false;
      }
      const Entry& e = entries_[entry];
      if (!e.is_return) {
        std::deque<int32_t> after = state;
        bool ok = !doomed_push(e.event, linearized) && step(after, ev_[e.event]);
        if (ok) {
          linearized[e.event] = true;
          std::string key = memo_key(linearized, after);
          if (seen.insert(key).second) {
            stack.emplace_back(entry, state);
            state = std::move(after);
            lift(e.event);
            entry = next_[n];
            continue;
          }
          linearized[e.event] = false;
        }
        entry = next_[entry];
      } else {
        // A call returned and we could not place it: undo the last choice.
        if (stack.empty()) return false;
        auto [call_entry, before] = stack.back();
        stack.pop_back();
        size_t ev = entries_[call_entry].event;
        linearized[ev] = false;
        state = std::move(before);
        unlift(ev);
        entry = next_[call_entry];
      }
    }
    return true;
  }
  bool exhausted() const { return exhausted_; }

 private:
  static constexpr size_t kNil = static_cast<size_t>(-1);
  static constexpr uint64_t kNever = UINT64_MAX;  // when a call without an answer returns
  struct Entry {
    uint64_t time;
    int is_return;
    size_t event;
    bool operator<(const Entry& o) const {
      if (time != o.time) return time < o.time;
      return is_return < o.is_return;
    }
  };

  // Pruning, sound for FIFO queues with unique items: placing push(v) while
  // push(w) is still unplaced puts v ahead of w; if pop(w) ended before
  // pop(v) began, w would have to leave first, so this branch must fail.
  bool doomed_push(size_t v, const std::vector<bool>& linearized) const {
    if (ev_[v].kind != Kind::Push || pop_of_[v] == kNil) return false;
    uint64_t v_popped_from = ev_[pop_of_[v]].start_us;
    for (size_t w = 0; w < ev_.size(); ++w)
      if (w != v && !linearized[w] && ev_[w].kind == Kind::Push && pop_of_[w] != kNil &&
          ev_[pop_of_[w]].end_us < v_popped_from)
        return true;
    return false;
  }

  void remove(size_t i) {
    size_t p = prev_[i], nx = next_[i];
    next_[p] = nx;
    if (nx != kNil) prev_[nx] = p;
  }
  void restore(size_t i) {
    size_t p = prev_[i], nx = next_[i];
    next_[p] = i;
    if (nx != kNil) prev_[nx] = i;
  }
  void lift(size_t ev) {
    remove(call_of_[ev]);
    remove(return_of_[ev]);
  }
  void unlift(size_t ev) {
    restore(return_of_[ev]);
    restore(call_of_[ev]);
  }
  static std::string memo_key(const std::vector<bool>& lin, const std::deque<int32_t>& q) {
    std::string k;
    for (size_t i = 0; i < lin.size(); i += 8) {
      unsigned char b = 0;
      for (size_t j = 0; j < 8 && i + j < lin.size(); ++j) b |= lin[i + j] << j;
      k.push_back(static_cast<char>(b));
    }
    for (int32_t x : q) k.append(reinterpret_cast<const char*>(&x), sizeof x);
    return k;
  }

  std::vector<Event> ev_;
  std::vector<Entry> entries_;
  std::vector<size_t> next_, prev_, call_of_, return_of_;
  std::vector<size_t> pop_of_;  // for a push: the pop that returned its item
  bool exhausted_ = false;
};

struct Args {
  int members = 3, clients = 5, ops = 60;
  double loss = 0.3;
  std::string server, client, history_out;
};

Event timed_call(harness::ClientProcess& c, int client, const std::string& cmd) {
  Event e;
  e.client = client;
  e.command = cmd;
  e.start_us = net::now_us();
  e.result = c.call(cmd);
  e.end_us = net::now_us();
  return e;
}

// What a call's printed result says about it.
enum class Answer {
  Result,   // a result the model must explain
  Unknown,  // no answer: it may have taken effect, or not (Event::unknown)
  Refused,  // an error reply (busy, no such queue): it had no effect
};

// Fills kind/queue/value from the command and result.
Answer interpret(Event& e) {
  char verb[16] = {0};
  int queue = 0, item = 0;
  std::sscanf(e.command.c_str(), "%15s %d %d", verb, &queue, &item);
  e.queue = queue;
  std::string v = verb;
  e.kind = v == "push" ? Kind::Push : v == "pop" ? Kind::Pop : v == "top" ? Kind::Top : Kind::Size;
  if (e.kind == Kind::Push) {
    e.value = item;
    if (e.result == "ok") return Answer::Result;
  } else if (e.kind != Kind::Size && e.result.find("is empty") != std::string::npos) {
    e.empty = true;
    return Answer::Result;
  } else if (int32_t value; net::parse_i32(e.result, value)) {
    e.value = value;
    return Answer::Result;
  }
  // Any other error line is a definite refusal, unless the client says the
  // outcome is unknown; anything else (no output) is unknown too.
  if (e.result.rfind("error:", 0) == 0 && e.result.find("may still take effect") == std::string::npos)
    return Answer::Refused;
  e.unknown = true;
  return Answer::Unknown;
}

void save_history(const std::string& path, const std::vector<Event>& h) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) return;
  std::fprintf(f, "# client start_us end_us command -> result\n");
  for (const Event& e : h)
    std::fprintf(f, "%d %llu %llu %s -> %s\n", e.client, static_cast<unsigned long long>(e.start_us),
                 static_cast<unsigned long long>(e.end_us), e.command.c_str(), e.result.c_str());
  std::fclose(f);
}

// The calls of each queue that the model must explain: all but refused ones.
// Counts those without an answer and those refused.
std::map<int, std::vector<Event>> split_by_queue(const std::vector<Event>& history, int& incomplete, int& refused) {
  std::map<int, std::vector<Event>> queues;
  incomplete = refused = 0;
  for (Event e : history) {
    Answer a = interpret(e);
    if (a == Answer::Refused) ++refused;
    else queues[e.queue].push_back(e);
    if (a == Answer::Unknown) ++incomplete;
  }
  return queues;
}

// Checks each queue on its own; prints one verdict line per queue.
bool check_queues(const std::map<int, std::vector<Event>>& per_queue) {
  bool all = true;
  for (auto& [q, events] : per_queue) {
    LinearizabilityChecker checker(events);
    uint64_t t0 = net::now_us();
    bool ok = checker.check(50'000'000);
    std::printf("queue %d: %zu calls, %s (%.2f s)\n", q, events.size(),
                ok ? "linearizable" : checker.exhausted() ? "search budget exhausted" : "NOT linearizable",
                (net::now_us() - t0) / 1e6);
    all = all && ok;
  }
  return all;
}

// One line of a saved history (as save_history writes it); false if it is
// none.
bool parse_line(const char* line, Event& e) {
  unsigned long long s, t;
  int used = 0;
  if (line[0] == '#' || std::sscanf(line, "%d %llu %llu %n", &e.client, &s, &t, &used) < 3) return false;
  std::string rest = line + used;
  if (!rest.empty() && rest.back() == '\n') rest.pop_back();
  size_t arrow = rest.find(" -> ");
  if (arrow == std::string::npos) return false;
  e.start_us = s;
  e.end_us = t;
  e.command = rest.substr(0, arrow);
  e.result = rest.substr(arrow + 4);
  return true;
}

// Re-checks a history saved by a failed run.
int check_file(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) {
    std::fprintf(stderr, "cannot open %s\n", path.c_str());
    return 2;
  }
  std::vector<Event> history;
  char line[512];
  while (std::fgets(line, sizeof line, f)) {
    Event e;
    if (parse_line(line, e)) history.push_back(e);
  }
  std::fclose(f);
  int incomplete, refused;
  bool ok = check_queues(split_by_queue(history, incomplete, refused));
  std::printf("%zu calls, %d incomplete, %d refused: %s\n", history.size(), incomplete, refused,
              ok ? "linearizable" : "NOT linearizable");
  return ok ? 0 : 1;
}

// Synthetic histories with known verdicts: the checker must tell them apart.
int self_test() {
  auto ev = [](Kind k, int32_t v, bool empty, uint64_t s, uint64_t e) {
    Event x;
    x.kind = k;
    x.value = v;
    x.empty = empty;
    x.start_us = s;
    x.end_us = e;
    return x;
  };
  auto no_answer = [](Kind k, int32_t v, uint64_t s) {  // returns never
    Event x;
    x.kind = k;
    x.value = v;
    x.unknown = true;
    x.start_us = x.end_us = s;
    return x;
  };
  struct Case {
    const char* name;
    std::vector<Event> h;
    bool linearizable;
  };
  std::vector<Case> cases = {
      {"sequential push push pop pop", {ev(Kind::Push, 1, false, 0, 1), ev(Kind::Push, 2, false, 2, 3),
                                        ev(Kind::Pop, 1, false, 4, 5), ev(Kind::Pop, 2, false, 6, 7)}, true},
      {"pop returns the second push first", {ev(Kind::Push, 1, false, 0, 1), ev(Kind::Push, 2, false, 2, 3),
                                             ev(Kind::Pop, 2, false, 4, 5)}, false},
      {"concurrent pushes, either order", {ev(Kind::Push, 1, false, 0, 10), ev(Kind::Push, 2, false, 1, 9),
                                           ev(Kind::Pop, 2, false, 11, 12), ev(Kind::Pop, 1, false, 13, 14)}, true},
      {"pops in the opposite order of sequential pushes",
       {ev(Kind::Push, 1, false, 0, 1), ev(Kind::Push, 2, false, 2, 3), ev(Kind::Pop, 2, false, 4, 5),
        ev(Kind::Pop, 1, false, 6, 7)}, false},
      {"item popped twice", {ev(Kind::Push, 1, false, 0, 1), ev(Kind::Pop, 1, false, 2, 3),
                             ev(Kind::Pop, 1, false, 4, 5)}, false},
      {"empty although an item is in", {ev(Kind::Push, 7, false, 0, 1), ev(Kind::Pop, 0, true, 2, 3)}, false},
      {"pop overlapping the push may see it", {ev(Kind::Pop, 5, false, 0, 10), ev(Kind::Push, 5, false, 2, 3)}, true},
      {"size too small", {ev(Kind::Push, 1, false, 0, 1), ev(Kind::Push, 2, false, 2, 3),
                          ev(Kind::Size, 1, false, 4, 5)}, false},
      {"top does not remove", {ev(Kind::Push, 3, false, 0, 1), ev(Kind::Top, 3, false, 2, 3),
                               ev(Kind::Pop, 3, false, 4, 5)}, true},
      // Calls without an answer. The first case is the second with the
      // unanswered push left in: dropping it would turn the verdict.
      {"pop of an item whose push got no answer", {no_answer(Kind::Push, 1, 0), ev(Kind::Pop, 1, false, 4, 5)}, true},
      {"pop of an item never pushed", {ev(Kind::Pop, 1, false, 4, 5)}, false},
      {"unanswered push, pop of another item", {no_answer(Kind::Push, 1, 0), ev(Kind::Pop, 2, false, 4, 5)}, false},
      {"unanswered push after the pop of its item", {ev(Kind::Pop, 1, false, 0, 1), no_answer(Kind::Push, 1, 2)}, false},
      {"unanswered push that never took effect", {no_answer(Kind::Push, 1, 0), ev(Kind::Pop, 0, true, 4, 5)}, true},
      {"unanswered push after its client's next",
       {no_answer(Kind::Push, 1, 0), ev(Kind::Push, 2, false, 5, 6), ev(Kind::Pop, 2, false, 7, 8),
        ev(Kind::Pop, 1, false, 9, 10)}, true},
      {"unanswered pop explains a missing item",
       {ev(Kind::Push, 1, false, 0, 1), no_answer(Kind::Pop, 0, 2), ev(Kind::Pop, 0, true, 5, 6)}, true},
      {"unanswered pop cannot act before it starts",
       {ev(Kind::Push, 1, false, 0, 1), ev(Kind::Pop, 0, true, 2, 3), no_answer(Kind::Pop, 0, 4)}, false},
      {"unanswered pop removes one item, not two",
       {ev(Kind::Push, 1, false, 0, 1), ev(Kind::Push, 2, false, 2, 3), no_answer(Kind::Pop, 0, 4),
        ev(Kind::Pop, 0, true, 6, 7)}, false},
  };
  int failures = 0;
  for (const Case& c : cases) {
    bool got = LinearizabilityChecker(c.h).check(1'000'000);
    std::printf("%-44s expected %-16s got %s\n", c.name, c.linearizable ? "linearizable" : "not", got ? "linearizable" : "not");
    if (got != c.linearizable) ++failures;
  }
  // What the client prints, as the history check reads it.
  struct Reading {
    const char* command;
    const char* result;
    Answer answer;
  };
  const Reading readings[] = {
      {"push 1 5", "ok", Answer::Result},
      {"pop 1", "error: queue 1 is empty", Answer::Result},
      {"top 1", "-7", Answer::Result},
      {"push 1 5", "error: no answer within 20 s; the operation may still take effect", Answer::Unknown},
      {"pop 1", "error: no answer within 20 s (the cluster is busy); the operation may still take effect",
       Answer::Unknown},
      {"size 1", "<no output>", Answer::Unknown},
      {"push 1 5", "error: the cluster is busy (a replica is not keeping up); try again later", Answer::Refused},
      {"pop 9", "error: no queue with id 9", Answer::Refused},
  };
  for (const Reading& r : readings) {
    Event e;
    e.command = r.command;
    e.result = r.result;
    if (interpret(e) != r.answer || e.unknown != (r.answer == Answer::Unknown)) {
      std::printf("misread: %s -> %s\n", r.command, r.result);
      ++failures;
    }
  }
  // The same whole way as a saved history: a pop explained only by a push
  // without an answer, and a push refused, which must not explain one.
  const char* saved[] = {
      "0 10 20 push 1 5 -> error: no answer within 20 s; the operation may still take effect\n",
      "1 30 40 pop 1 -> 5\n",
      "0 50 60 push 2 6 -> error: the cluster is busy (a replica is not keeping up); try again later\n",
      "1 70 80 pop 2 -> 6\n",
  };
  std::vector<Event> history;
  for (const char* line : saved) {
    Event e;
    if (parse_line(line, e)) history.push_back(e);
  }
  int incomplete, refused;
  std::map<int, std::vector<Event>> queues = split_by_queue(history, incomplete, refused);
  bool as_expected = history.size() == 4 && incomplete == 1 && refused == 1 && queues.size() == 2 &&
                     check_queues({{1, queues[1]}}) && !check_queues({{2, queues[2]}});
  std::printf("saved history read and checked: %s\n", as_expected ? "as expected" : "WRONG");
  if (!as_expected) ++failures;
  int total = static_cast<int>(cases.size() + std::size(readings)) + 1;
  std::printf("%d passed, %d failed\n", total - failures, failures);
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--self-test") return self_test();
  if (argc == 3 && std::string(argv[1]) == "--check") return check_file(argv[2]);
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--members") a.members = std::atoi(v.c_str());
    else if (k == "--loss") a.loss = std::atof(v.c_str());
    else if (k == "--server") a.server = v;
    else if (k == "--client") a.client = v;
    else if (k == "--clients") a.clients = std::atoi(v.c_str());
    else if (k == "--ops") a.ops = std::atoi(v.c_str());
    else if (k == "--history-out") a.history_out = v;
    else {
      std::fprintf(stderr, "linear_test: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (a.server.empty() || a.client.empty()) {
    std::fprintf(stderr, "usage: linear_test --members N --loss P --server BIN --client BIN [--clients C] [--ops K]\n");
    return 2;
  }
  std::string name = "linear " + std::to_string(a.members) + " members";
  uint64_t seed = harness::test_seed(name.c_str());
  std::string dir = harness::make_temp_dir("linear" + std::to_string(a.members));
  if (a.history_out.empty()) a.history_out = dir + "/history.txt";

  harness::Cluster cluster(harness::ClusterConfig{a.members, a.loss, seed, a.server, dir, {}});
  cluster.start_all();
  const int kQueues = 3;
  {
    harness::ClientProcess setup(a.client, cluster.servers(), 20);
    for (int q = 1; q <= kQueues; ++q) CHECK_EQ(setup.call("create " + std::to_string(q)), std::to_string(q), "create");
  }

  std::vector<Event> history;
  std::mutex history_lock;
  std::vector<std::thread> threads;
  for (int c = 0; c < a.clients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937_64 rng(seed * 7919 + c);
      std::string servers = cluster.endpoint(c % a.members) + "," + cluster.servers();
      harness::ClientProcess client(a.client, servers, 20);
      for (int j = 0; j < a.ops; ++j) {
        int q = 1 + static_cast<int>(rng() % kQueues);
        int dice = static_cast<int>(rng() % 10);
        std::string cmd = dice < 5   ? "push " + std::to_string(q) + " " + std::to_string((c + 1) * 100000 + j)
                          : dice < 8 ? "pop " + std::to_string(q)
                          : dice < 9 ? "top " + std::to_string(q)
                                     : "size " + std::to_string(q);
        Event e = timed_call(client, c, cmd);
        std::lock_guard<std::mutex> g(history_lock);
        history.push_back(e);
      }
    });
  }
  for (auto& t : threads) t.join();
  {
    harness::ClientProcess drainer(a.client, cluster.servers(), 20);
    for (int q = 1; q <= kQueues; ++q)
      for (int guard = 0; guard <= a.clients * a.ops; ++guard) {
        Event e = timed_call(drainer, a.clients, "pop " + std::to_string(q));
        history.push_back(e);
        if (e.result.rfind("error", 0) == 0) break;
      }
  }

  // Interpret, then check each queue on its own. The checker copes with
  // calls that got no answer, but phase one must answer every call.
  int incomplete = 0, refused = 0;
  std::map<int, std::vector<Event>> per_queue = split_by_queue(history, incomplete, refused);
  CHECK(check_queues(per_queue), std::string("some queue's history is not linearizable as a FIFO queue"));
  CHECK(incomplete == 0 && refused == 0,
        std::to_string(incomplete) + " calls got no answer and " + std::to_string(refused) + " an error reply");

  // A push without an answer is not lost if its item never comes out, and
  // its item is no surprise if it does.
  std::map<int32_t, int> pushed, popped;
  std::set<int32_t> maybe_pushed;
  for (const auto& [q, events] : per_queue)
    for (const Event& e : events) {
      if (e.kind == Kind::Push && !e.unknown) ++pushed[e.value];
      if (e.kind == Kind::Push && e.unknown) maybe_pushed.insert(e.value);
      if (e.kind == Kind::Pop && !e.empty && !e.unknown) ++popped[e.value];
    }
  int lost = 0, duplicated = 0, unexpected = 0;
  for (auto& [item, n] : pushed)
    if (!popped.count(item)) ++lost;
  for (auto& [item, n] : popped) {
    if (n > 1) ++duplicated;
    if (!pushed.count(item) && !maybe_pushed.count(item)) ++unexpected;
  }
  std::printf("anomalies: lost %d, duplicated %d, unexpected %d (of %zu pushes, %zu calls)\n", lost, duplicated,
              unexpected, pushed.size(), history.size());
  CHECK(lost == 0 && duplicated == 0 && unexpected == 0, std::string("queue anomalies"));

  CHECK(cluster.stop_all(), std::string("graceful stop"));
  cluster.check_snapshots_identical();

  if (harness::g_failures == 0) {
    harness::remove_tree(dir);
    std::printf("%s: passed\n", name.c_str());
    return 0;
  }
  save_history(a.history_out, history);
  std::printf("%s: %d checks failed; history saved to %s (logs and data in %s)\n", name.c_str(), harness::g_failures,
              a.history_out.c_str(), dir.c_str());
  return 1;
}
