// partial_test: partial partitions settle (issue 22, part 3; membership.hpp,
// "Partial partitions"). Real server and client processes.
//
//   partial_test bridge_3|bridge_5|one_way_3|ring_5 --server BIN --client BIN
//                [--hold-s S] [--settle-bound-s S] [--stall-bound-s S]
//                [--client-timeout S] [--think-ms MS] [--seed S] [--keep]
//
// Shapes (links cut with the servers' --cut-file switch, Cluster::cut_all):
//   bridge_3  n=3: 0 and 2 cannot reach each other (both ways); 1 reaches both
//   bridge_5  n=5: {0,1} and {3,4} cut apart both ways; 2 reaches all
//   one_way_3  n=3: 0 cannot send to 2 (0 "out:2", 2 "in:0"); all else works
//   ring_5    n=5: each replica hears only its two ring neighbours, both ways
//
// Each run: a cluster (--trace) and one primary configuration of all n
// (bounded wait, `client status` polled); one client process per replica,
// talking only to that replica (pipe mode), pushing unique items with
// --think-ms (1 ms) between calls; after a seeded warm-up, the cut
// everywhere at once (each replica confirms it in its log); held --hold-s
// (8 s); the heal; a bounded wait for one primary configuration of all n;
// the clients stopped; the queue popped empty; a graceful stop. Then, from
// the replicas' traces (CONFIG, INSTALL, PREPARE, STATE and REQUEST lines,
// on the same monotonic clock as the test's) and the clients' records:
//   settled   the first moment after the cut at which every replica is
//             installed (its CONFIG line) in a configuration whose members
//             all hear each other under the cut, every member of it
//             installed in the same one, none having promised a newer round
//             (a STATE or its own PREPARE for a newer id: a view change
//             under way); for the bridges and the one-way cut one of them
//             primary; for the ring none (no 3 of 5 all hear each other:
//             membership.hpp says why no primary forms). Asserted within
//             --settle-bound-s (6 s; the issue's target, 2 s, is printed),
//             and still so at the heal.
//   changes   configuration ids installed (CONFIG or INSTALL lines, any
//             replica) after settling and before the heal: at most 2.
//   progress  every call started after settling and before the heal at a
//             member of the settled primary configuration answered ok (none
//             refused, none "outcome unknown"); the longest stretch in which
//             such a client completed no call (from settling to the heal) is
//             printed and must stay under --stall-bound-s (3 s; the issue's
//             target, 0.5 s, is printed). Outside it (the ring: everywhere)
//             no call ends ok before the heal, and the traces show every
//             request arriving after settling refused at once, none
//             admitted. (A pipe client there may still report "outcome
//             unknown": once a reply said "lossy" it sends two copies of each
//             try, and a refusal cannot vouch for both.) Ring: besides,
//             one-shot clients with a 0.3 s timeout go to every replica once
//             a second from 2 s after the cut: none may end ok, and each
//             replica must refuse at least one of them outright (exit 1).
//   healed    after the heal, one primary configuration of all n (bounded
//             wait, 20 s); its time after the heal is printed.
//   answers   after the drain: every push answered ok is in the queue
//             exactly once, every push refused is not in it, no item twice,
//             none that was never pushed; the drain completes everywhere
//             (graceful stop, exit 0) and the snapshots are byte-identical.
// One line per run gives the figures the issue asks to be measured:
//   "figures: settled X s after the cut; N installs after settling; longest
//    client stall after settling Y s; one configuration Z s after the heal".
//
// Seeded (printed; FTQ_SEED=<seed> or --seed): the warm-up before the cut
// (0.6-1.4 s), so the cut lands at different points of the keepalive cycle.
// Against servers of another wire version (an older commit), pass that
// commit's client too: status and calls go through --client.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdint>
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

using harness::Cluster;
using harness::ClusterConfig;
using harness::ClientProcess;

namespace {

struct Args {
  std::string shape, server, client;
  double hold_s = 8;
  double settle_bound_s = 6;
  double stall_bound_s = 3;
  double client_timeout_s = 3;
  int think_ms = 1;
  bool keep = false;
  bool seed_given = false;
  uint64_t seed = 0;
};

// ---- shapes ---------------------------------------------------------------------

struct Shape {
  std::string name;
  int n = 0;
  // hears[a][b]: a receives what b sends.
  std::vector<std::vector<bool>> hears;
  bool primary_expected = true;  // some majority all hear each other
};

Shape make_shape(const std::string& name) {
  Shape s;
  s.name = name;
  s.n = name == "bridge_5" || name == "ring_5" ? 5 : 3;
  s.hears.assign(static_cast<size_t>(s.n), std::vector<bool>(static_cast<size_t>(s.n), true));
  auto cut_both = [&s](int a, int b) { s.hears[a][b] = s.hears[b][a] = false; };
  if (name == "bridge_3") {
    cut_both(0, 2);
  } else if (name == "bridge_5") {
    for (int a : {0, 1})
      for (int b : {3, 4}) cut_both(a, b);
  } else if (name == "one_way_3") {
    s.hears[2][0] = false;  // 0 cannot send to 2
  } else if (name == "ring_5") {
    for (int a = 0; a < 5; ++a)
      for (int b = 0; b < 5; ++b)
        if (a != b && (a - b + 5) % 5 != 1 && (b - a + 5) % 5 != 1) s.hears[a][b] = false;
    s.primary_expected = false;
  } else {
    s.n = 0;
  }
  return s;
}

// Replica r's cut file, in the order and words the server echoes it
// ("link cuts (test switch): ..."; "none" when empty).
std::string cut_text(const Shape& s, int r) {
  std::string text;
  for (int m = 0; m < s.n; ++m) {
    if (m == r) continue;
    const bool in_cut = !s.hears[r][m], out_cut = !s.hears[m][r];
    std::string word = in_cut && out_cut ? std::to_string(m)
                       : in_cut          ? "in:" + std::to_string(m)
                       : out_cut         ? "out:" + std::to_string(m)
                                         : "";
    if (!word.empty()) text += (text.empty() ? "" : " ") + word;
  }
  return text;
}

bool clique(const Shape& s, const std::vector<int>& members) {
  for (int a : members)
    for (int b : members)
      if (a != b && !s.hears[a][b]) return false;
  return true;
}

std::string set_text(const std::vector<int>& m) {
  std::string t = "{";
  for (size_t i = 0; i < m.size(); ++i) t += (i ? "," : "") + std::to_string(m[i]);
  return t + "}";
}

// ---- status ------------------------------------------------------------------------

// Through `client status` (not in-process: the test also runs against
// servers of another wire version, with their own client).
struct ReplicaView {
  bool up = false;
  std::string config;  // "12.0 primary {0,1,2}"
};

// "127.0.0.1:p up: replica 0, config 4.0 primary {0,1,2} (hears 3 of 3),
// delivered 7, ...; 127.0.0.1:q unreachable; ..." -> one view per server.
// (Newer clients print a line per replica in one-shot mode: the same.)
std::vector<ReplicaView> parse_status(const std::string& text) {
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
    const size_t c = part.find(" config "), h = part.find(" (hears ");
    if (part.find(" up: ") != std::string::npos && c != std::string::npos && h != std::string::npos) {
      v.up = true;
      v.config = part.substr(c + 8, h - c - 8);
    }
    views.push_back(v);
    pos = end + 2;
  }
  return views;
}

// Polls (bounded) until every replica answers from one primary
// configuration of all n; returns its "epoch.rep", or "" (then `last` is
// the last status seen).
std::string wait_one_configuration(const Args& a, const Cluster& c, double bound_s, std::string& last) {
  const uint64_t t0 = net::now_us();
  std::string all;
  for (int i = 0; i < c.members(); ++i) all += (i ? "," : "") + std::to_string(i);
  const std::string full = " primary {" + all + "}";
  while (net::now_us() - t0 < static_cast<uint64_t>(bound_s * 1e6)) {
    std::string out;
    harness::run_program(a.client, {"--servers", c.servers(), "--timeout", "1", "status"}, out, 5000);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    last = out;
    const std::vector<ReplicaView> views = parse_status(out);
    bool same = static_cast<int>(views.size()) == c.members();
    for (const ReplicaView& v : views)
      same = same && v.up && v.config == views[0].config && v.config.size() > full.size() &&
             v.config.compare(v.config.size() - full.size(), full.size(), full) == 0;
    if (same) return views[0].config.substr(0, views[0].config.find(' '));
    ::usleep(20'000);  // polling: bounded above
  }
  return "";
}

// ---- traces ----------------------------------------------------------------------

// A configuration id "E.R" as a comparable pair.
struct Cid {
  uint64_t epoch = 0, rep = 0;
  bool operator<(const Cid& o) const { return epoch != o.epoch ? epoch < o.epoch : rep < o.rep; }
  bool operator==(const Cid& o) const { return epoch == o.epoch && rep == o.rep; }
  bool operator!=(const Cid& o) const { return !(*this == o); }
  std::string text() const { return std::to_string(epoch) + "." + std::to_string(rep); }
};

bool parse_cid(const std::string& s, size_t pos, Cid& out) {
  char* end = nullptr;
  const char* p = s.c_str() + pos;
  if (*p < '0' || *p > '9') return false;
  out.epoch = std::strtoull(p, &end, 10);
  if (*end != '.') return false;
  const char* q = end + 1;
  if (*q < '0' || *q > '9') return false;
  out.rep = std::strtoull(q, &end, 10);
  return true;
}

// One membership event of one replica, from its trace.
struct Event {
  uint64_t t = 0;
  int replica = 0;
  enum Kind { Config, Promise, Install, Request } kind = Config;
  Cid id;
  bool primary = false;  // Config
  bool admitted = false;  // Request: taken in (not refused, not a retry)
  std::vector<int> members;  // Config
  std::string line;
};

uint64_t trace_time_us(const std::string& line) {
  const size_t dot = line.find('.'), space = line.find(' ');
  if (dot == std::string::npos || space == std::string::npos || dot > space || dot == 0) return 0;
  for (size_t i = 0; i < space; ++i)
    if (i != dot && (line[i] < '0' || line[i] > '9')) return 0;
  // Seconds, then a fraction of any length (the trace prints microseconds).
  uint64_t fraction_us = 0, scale = 100'000;
  for (size_t i = dot + 1; i < space && scale > 0; ++i, scale /= 10) fraction_us += (line[i] - '0') * scale;
  return std::strtoull(line.c_str(), nullptr, 10) * 1'000'000 + fraction_us;
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

// "T rI EVENT DIR TEXT": the event word and where the text after the
// direction starts (CONFIG has no direction).
bool split_trace(const std::string& line, std::string& event, std::string& dir, size_t& text_at) {
  size_t p = line.find(' ');
  if (p == std::string::npos) return false;
  p = line.find(' ', p + 1);  // after "rI"
  if (p == std::string::npos) return false;
  const size_t e0 = line.find_first_not_of(' ', p);
  if (e0 == std::string::npos) return false;
  const size_t e1 = line.find(' ', e0);
  if (e1 == std::string::npos) return false;
  event = line.substr(e0, e1 - e0);
  const size_t d0 = line.find_first_not_of(' ', e1);
  if (d0 == std::string::npos) return false;
  const size_t d1 = line.find(' ', d0);
  dir = line.substr(d0, d1 == std::string::npos ? std::string::npos : d1 - d0);
  if (dir == "in" || dir == "out") {
    text_at = d1 == std::string::npos ? line.size() : line.find_first_not_of(' ', d1);
    if (text_at == std::string::npos) text_at = line.size();
  } else {
    dir.clear();
    text_at = d0;
  }
  return true;
}

std::vector<Event> read_events(const std::string& log, int replica) {
  std::vector<Event> events;
  for (const std::string& line : lines_of(log)) {
    const uint64_t t = trace_time_us(line);
    if (t == 0) continue;
    std::string event, dir;
    size_t at = 0;
    if (!split_trace(line, event, dir, at)) continue;
    Event e;
    e.t = t;
    e.replica = replica;
    e.line = line;
    if (event == "CONFIG" && line.compare(at, 14, "configuration ") == 0) {
      e.kind = Event::Config;
      if (!parse_cid(line, at + 14, e.id)) continue;
      e.primary = line.find(" primary {", at) != std::string::npos;
      const size_t open = line.find('{', at), close = line.find('}', at);
      if (open == std::string::npos || close == std::string::npos) continue;
      std::string inside = line.substr(open + 1, close - open - 1);
      for (size_t pos = 0; pos < inside.size();) {
        size_t comma = inside.find(',', pos);
        if (comma == std::string::npos) comma = inside.size();
        e.members.push_back(std::atoi(inside.substr(pos, comma - pos).c_str()));
        pos = comma + 1;
      }
    } else if ((event == "STATE" && dir == "out") || (event == "PREPARE" && dir == "out")) {
      // A STATE answers a PREPARE this replica promised; its own PREPARE
      // is its promise of its own round.
      e.kind = Event::Promise;
      if (!parse_cid(line, at, e.id)) continue;
    } else if (event == "INSTALL") {
      e.kind = Event::Install;
      size_t p = at;
      if (dir == "in") {
        p = line.find(": ", at);
        if (p == std::string::npos) continue;
        p += 2;
      }
      if (!parse_cid(line, p, e.id)) continue;
    } else if (event == "REQUEST" && dir == "in" && line.find("a client's status request", at) == std::string::npos) {
      e.kind = Event::Request;
      e.admitted = line.find(": admitted", at) != std::string::npos;
    } else {
      continue;
    }
    events.push_back(e);
  }
  return events;
}

// ---- clients ----------------------------------------------------------------------

struct Call {
  int replica = 0;
  int32_t item = 0;
  uint64_t start = 0, end = 0;
  std::string answer;
  bool ok() const { return answer == "ok"; }
  bool refused() const { return answer.rfind("error: no replica is in a majority", 0) == 0; }
  bool unknown() const { return answer.rfind("error: no answer", 0) == 0 || answer == "<no output>"; }
};

struct OneShot {
  int replica = 0;
  int32_t item = 0;
  uint64_t start = 0, end = 0;
  int exit = -1;
  std::string output;
};

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

std::string log_path(const std::string& dir, int i) { return dir + "/replica-" + std::to_string(i) + ".log"; }

size_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<size_t>(st.st_size) : 0;
}

// The log at `path` from byte `from` on.
std::string read_from(const std::string& path, size_t from) {
  std::string text;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return text;
  if (std::fseek(f, static_cast<long>(from), SEEK_SET) == 0) {
    char buf[65536];
    size_t got;
    while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, got);
  }
  std::fclose(f);
  return text;
}

// Waits (bounded: 5 s) until the log at `path`, from `from` on, holds `line`.
bool wait_for_log(const std::string& path, size_t from, const std::string& line) {
  for (int waited_ms = 0; waited_ms < 5000; waited_ms += 5) {
    if (read_from(path, from).find(line) != std::string::npos) return true;
    ::usleep(5000);  // polling the log: bounded above
  }
  return false;
}

double secs(uint64_t from, uint64_t to) { return (static_cast<double>(to) - static_cast<double>(from)) / 1e6; }

// ---- one run -------------------------------------------------------------------------

struct Figures {
  double settled_s = -1;
  int installs_after_settling = -1;
  int promised_after_settling = -1;
  double stall_s = -1;
  int stall_replica = -1;
  double stall_from_s = 0;  // after the cut
  double healed_s = -1;
  int installs_during_cut = 0, installs_after_2s = 0;
  std::map<int, int> ok_during_hold;  // replica -> ok calls from the cut to the heal
};

int run(const Args& a, const Shape& s, uint64_t seed, const std::string& dir) {
  const int n = s.n;
  std::mt19937_64 rng(seed);
  const int warmup_ms = 600 + static_cast<int>(rng() % 801);

  ClusterConfig config;
  config.members = n;
  config.server_bin = a.server;
  config.dir = dir;
  config.extra = {"--trace"};
  config.cut_files = true;
  Cluster cluster(config);
  cluster.start_all();
  std::string last;
  const std::string first = wait_one_configuration(a, cluster, 20, last);
  if (first.empty()) {
    CHECK(false, "no primary configuration of all " + std::to_string(n) + " within 20 s of the start; last: " + last);
    return 1;
  }
  std::printf("%s: one primary configuration %s of all %d; warm-up %d ms\n", s.name.c_str(), first.c_str(), n, warmup_ms);

  int queue = 0;
  {
    ClientProcess setup(a.client, cluster.servers(), 10);
    const std::string q = setup.call("create 1");
    queue = std::atoi(q.c_str());
    CHECK(queue > 0, "create answered '" + q + "'");
    if (queue <= 0) return 1;
  }

  // One pipe-mode client per replica, talking to that replica only.
  std::vector<std::unique_ptr<ClientProcess>> clients;
  for (int i = 0; i < n; ++i) clients.push_back(std::make_unique<ClientProcess>(a.client, cluster.endpoint(i), a.client_timeout_s));
  std::atomic<bool> stop{false};
  std::vector<std::vector<Call>> calls(static_cast<size_t>(n));
  std::vector<std::thread> workers;
  for (int i = 0; i < n; ++i)
    workers.emplace_back([&, i] {
      for (int32_t k = 0; !stop; ++k) {
        Call c;
        c.replica = i;
        c.item = (i + 1) * 10'000'000 + k;
        c.start = net::now_us();
        c.answer = clients[i]->call("push " + std::to_string(queue) + " " + std::to_string(c.item));
        c.end = net::now_us();
        calls[i].push_back(c);
        if (a.think_ms > 0) ::usleep(static_cast<useconds_t>(a.think_ms) * 1000);  // the clients' pace: bounded load
      }
    });

  ::usleep(static_cast<useconds_t>(warmup_ms) * 1000);  // the seeded warm-up: a deliberate wait

  // The cut, everywhere at once.
  std::vector<std::string> cuts;
  for (int i = 0; i < n; ++i) cuts.push_back(cut_text(s, i));
  std::vector<size_t> at_cut;
  for (int i = 0; i < n; ++i) at_cut.push_back(file_size(log_path(dir, i)));
  const uint64_t t_cut = net::now_us();
  cluster.cut_all(cuts);
  std::printf("%s: cut:", s.name.c_str());
  for (int i = 0; i < n; ++i) std::printf(" r%d '%s'", i, cuts[i].c_str());
  std::printf("\n");
  // Each replica must confirm its cut (bounded; its log read from where it
  // stood before the cut).
  for (int i = 0; i < n; ++i) {
    if (cuts[i].empty()) continue;
    CHECK(wait_for_log(log_path(dir, i), at_cut[static_cast<size_t>(i)], "link cuts (test switch): " + cuts[i] + "\n"),
          "replica " + std::to_string(i) + " did not confirm its cut '" + cuts[i] + "'");
  }

  // The ring: one-shot clients with a short timeout, to every replica,
  // once a second from 2 s after the cut (they must be refused at once).
  std::vector<OneShot> oneshots;
  const uint64_t t_heal_due = t_cut + static_cast<uint64_t>(a.hold_s * 1e6);
  int32_t oneshot_item = 900'000'000;
  for (uint64_t at = t_cut + 2'000'000; at + 500'000 < t_heal_due; at += 1'000'000) {
    const uint64_t now = net::now_us();
    if (at > now) ::usleep(static_cast<useconds_t>(at - now));  // paced: one round a second
    if (s.primary_expected) continue;
    std::vector<std::thread> shots;
    const size_t base = oneshots.size();
    for (int i = 0; i < n; ++i) {
      OneShot o;
      o.replica = i;
      o.item = oneshot_item++;
      oneshots.push_back(o);
    }
    for (int i = 0; i < n; ++i)
      shots.emplace_back([&, k = base + static_cast<size_t>(i)] {
        OneShot& o = oneshots[k];
        std::string errors;
        o.start = net::now_us();
        o.exit = harness::run_program(a.client, {"--servers", cluster.endpoint(o.replica), "--timeout", "0.3", "push",
                                                 std::to_string(queue), std::to_string(o.item)},
                                      "", o.output, errors, 10'000);
        o.end = net::now_us();
        o.output = trim(o.output);
        // Newer clients print a one-shot command's error on stderr, after
        // their notes: the answer is then its last line.
        errors = trim(errors);
        if (o.output.empty() && !errors.empty()) o.output = errors.substr(errors.rfind('\n') + 1);
      });
    for (std::thread& t : shots) t.join();
  }
  {
    const uint64_t now = net::now_us();
    if (t_heal_due > now) ::usleep(static_cast<useconds_t>(t_heal_due - now));  // the rest of the hold
  }

  // The heal.
  std::vector<size_t> at_heal;
  for (int i = 0; i < n; ++i) at_heal.push_back(file_size(log_path(dir, i)));
  const uint64_t t_heal = net::now_us();
  cluster.cut_all(std::vector<std::string>(static_cast<size_t>(n)));
  for (int i = 0; i < n; ++i)
    if (!cuts[i].empty())
      CHECK(wait_for_log(log_path(dir, i), at_heal[static_cast<size_t>(i)], "link cuts (test switch): none\n"),
            "replica " + std::to_string(i) + " did not confirm the heal");
  const std::string final_config = wait_one_configuration(a, cluster, 20, last);
  const uint64_t t_one_polled = net::now_us();
  CHECK(!final_config.empty(), "no primary configuration of all " + std::to_string(n) + " within 20 s of the heal; last: " + last);
  ::usleep(300'000);  // clients keep calling in the healed configuration a little: a deliberate wait
  stop = true;
  for (std::thread& t : workers) t.join();
  clients.clear();

  // The drain: pop everything, one popper per replica at once.
  std::vector<std::vector<int32_t>> popped(static_cast<size_t>(n));
  std::vector<char> emptied(static_cast<size_t>(n), 0);  // one writer each (not vector<bool>: shared words)
  {
    std::vector<std::unique_ptr<ClientProcess>> poppers;
    for (int i = 0; i < n; ++i) poppers.push_back(std::make_unique<ClientProcess>(a.client, cluster.servers(), 10));
    std::vector<std::thread> ts;
    const uint64_t drain_deadline = net::now_us() + 60'000'000;
    for (int i = 0; i < n; ++i)
      ts.emplace_back([&, i] {
        const std::string empty = "error: queue " + std::to_string(queue) + " is empty";
        while (net::now_us() < drain_deadline) {
          const std::string r = poppers[i]->call("pop " + std::to_string(queue));
          if (r == empty) {
            emptied[i] = 1;
            return;
          }
          char* end = nullptr;
          const long v = std::strtol(r.c_str(), &end, 10);
          if (r.empty() || *end != 0) {
            popped[i].push_back(INT32_MIN);  // marks an unexpected answer (checked below)
            std::fprintf(stderr, "%s: drain: pop answered '%s'\n", s.name.c_str(), r.c_str());
            return;
          }
          popped[i].push_back(static_cast<int32_t>(v));
        }
      });
    for (std::thread& t : ts) t.join();
  }
  std::printf("%s: drained %.1f s after the heal\n", s.name.c_str(), secs(t_heal, net::now_us()));
  CHECK(cluster.wait_whole(a.client), "every replica in one primary configuration before the stop");
  const bool stopped = cluster.stop_all();
  CHECK(stopped, "a graceful stop with every drain complete (exit 0 everywhere)");
  if (stopped) cluster.check_snapshots_identical();

  // ---- the verdicts, from the traces and the clients' records ----
  std::vector<Event> events;
  for (int i = 0; i < n; ++i) {
    std::vector<Event> e = read_events(cluster.log_text(i), i);
    events.insert(events.end(), e.begin(), e.end());
  }
  std::stable_sort(events.begin(), events.end(), [](const Event& x, const Event& y) { return x.t < y.t; });

  // The state of every replica as the events are applied one by one.
  struct State {
    bool installed = false;
    Cid config, promised;
    bool primary = false;
    std::vector<int> members;
  };
  std::vector<State> st(static_cast<size_t>(n));
  auto apply = [&](const Event& e) {
    State& r = st[static_cast<size_t>(e.replica)];
    if (e.kind == Event::Config) {
      r.installed = true;
      r.config = e.id;
      r.primary = e.primary;
      r.members = e.members;
      if (r.promised < e.id) r.promised = e.id;
    } else if (e.kind == Event::Promise) {
      if (r.promised < e.id) r.promised = e.id;
    }
  };
  std::string why_not;
  auto settled_now = [&]() {
    int primaries = 0;
    for (int i = 0; i < n; ++i) {
      const State& r = st[static_cast<size_t>(i)];
      if (!r.installed) return why_not = "r" + std::to_string(i) + " installed nowhere", false;
      if (r.config < r.promised)
        return why_not = "r" + std::to_string(i) + " in a view change (promised " + r.promised.text() + ")", false;
      if (!clique(s, r.members))
        return why_not = "r" + std::to_string(i) + " in " + r.config.text() + " " + set_text(r.members) +
                         ", whose members do not all hear each other",
               false;
      for (int m : r.members)
        if (st[static_cast<size_t>(m)].config != r.config)
          return why_not = "r" + std::to_string(m) + " not installed in r" + std::to_string(i) + "'s " + r.config.text(), false;
      if (r.primary) ++primaries;
    }
    if (s.primary_expected && primaries == 0) return why_not = "no primary configuration", false;
    if (!s.primary_expected && primaries > 0) return why_not = "a primary configuration", false;
    return true;
  };
  size_t next = 0;
  for (; next < events.size() && events[next].t <= t_cut; ++next) apply(events[next]);
  uint64_t t_settled = 0;
  std::vector<State> settled_state;
  for (;;) {
    if (settled_now()) {
      t_settled = next == 0 ? t_cut : std::max(t_cut, events[next - 1].t);
      settled_state = st;
      break;
    }
    if (next >= events.size() || events[next].t > t_heal) break;
    const uint64_t t = events[next].t;
    while (next < events.size() && events[next].t == t) apply(events[next++]);
  }

  // Still settled at the heal (whatever changed in between).
  bool settled_at_heal = false;
  std::string why_not_at_heal;
  if (t_settled) {
    while (next < events.size() && events[next].t <= t_heal) apply(events[next++]);
    settled_at_heal = settled_now();
    why_not_at_heal = why_not;
  }

  Figures f;
  std::set<std::pair<uint64_t, uint64_t>> during, after2, after_settled, promised_after;
  for (const Event& e : events) {
    if (e.t <= t_cut || e.t > t_heal) continue;
    const auto key = std::make_pair(e.id.epoch, e.id.rep);
    if (e.kind == Event::Config || e.kind == Event::Install) {
      during.insert(key);
      if (e.t > t_cut + 2'000'000) after2.insert(key);
      if (t_settled && e.t > t_settled) after_settled.insert(key);
    } else if (e.kind == Event::Promise && t_settled && e.t > t_settled) {
      promised_after.insert(key);
    }
  }
  f.installs_during_cut = static_cast<int>(during.size());
  f.installs_after_2s = static_cast<int>(after2.size());

  std::string settled_text;
  std::vector<int> primary_members;
  if (t_settled) {
    f.settled_s = secs(t_cut, t_settled);
    f.installs_after_settling = static_cast<int>(after_settled.size());
    f.promised_after_settling = static_cast<int>(promised_after.size());
    std::set<std::string> shown;
    for (int i = 0; i < n; ++i) {
      const State& r = settled_state[static_cast<size_t>(i)];
      const std::string t = r.config.text() + (r.primary ? " primary " : " non-primary ") + set_text(r.members);
      if (shown.insert(t).second) settled_text += (settled_text.empty() ? "" : ", ") + t;
      if (r.primary) primary_members = r.members;
    }
    std::printf("%s: settled %.3f s after the cut: %s\n", s.name.c_str(), f.settled_s, settled_text.c_str());
  } else {
    std::printf("%s: never settled between the cut and the heal (at the heal: %s)\n", s.name.c_str(), why_not.c_str());
  }
  CHECK(t_settled != 0, "settled before the heal (at the heal: " + why_not + ")");
  CHECK(t_settled == 0 || f.settled_s <= a.settle_bound_s,
        "settled within " + std::to_string(a.settle_bound_s) + " s of the cut (took " + std::to_string(f.settled_s) + " s)");
  if (t_settled) {
    CHECK(settled_at_heal, "still settled at the heal (there: " + why_not_at_heal + ")");
    CHECK(f.installs_after_settling <= 2, "at most 2 configurations installed after settling, before the heal; saw " +
                                              std::to_string(f.installs_after_settling));
    if (f.installs_after_settling > 0 || f.promised_after_settling > 0) {
      int shown = 0;
      for (const Event& e : events)
        if (e.t > t_settled && e.t <= t_heal && e.kind != Event::Request && ++shown <= 40)
          std::printf("  after settling: %s\n", e.line.c_str());
    }
  }

  // Progress after settling, before the heal.
  int checked_calls = 0, bad_calls = 0;
  std::map<int, int> total_ok, total_refused, total_unknown;
  for (int i = 0; i < n; ++i)
    for (const Call& c : calls[static_cast<size_t>(i)]) {
      if (c.ok()) ++total_ok[i];
      else if (c.refused()) ++total_refused[i];
      else if (c.unknown()) ++total_unknown[i];
      if (c.ok() && c.end > t_cut && c.end <= t_heal) ++f.ok_during_hold[i];
    }
  int unknown_after_settling = 0;  // at replicas outside a primary (not asserted: see below)
  if (t_settled) {
    // At members of the primary configuration: every call ok, and the
    // longest stretch without a completed call. Elsewhere (and in the ring
    // everywhere): no call ok before the heal. A client that last heard "lossy" sends two
    // copies of each try (net::RetryPolicy) and cannot be sure a refusal
    // covers both, so its calls there may end "outcome unknown"; that each
    // request is refused at once is checked in the traces (below) and by
    // the ring's one-shot clients.
    for (int i = 0; i < n; ++i) {
      const bool member = std::count(primary_members.begin(), primary_members.end(), i) > 0;
      std::vector<uint64_t> ends = {t_settled};
      for (const Call& c : calls[static_cast<size_t>(i)]) {
        if (c.end > t_settled && c.end <= t_heal && c.ok()) ends.push_back(c.end);
        if (c.start < t_settled || c.start >= t_heal) continue;
        // Outside the primary configuration a call may still succeed
        // after the heal: only those that ended before it are checked.
        if (!member && c.end > t_heal) continue;
        ++checked_calls;
        if (!member && c.unknown()) ++unknown_after_settling;
        const bool good = member ? c.ok() : c.refused() || c.unknown();
        if (!good) {
          ++bad_calls;
          if (bad_calls <= 10)
            std::printf("  call at r%d started %.3f s after the cut, ended %.3f s after: '%s'\n", i, secs(t_cut, c.start),
                        secs(t_cut, c.end), c.answer.c_str());
        }
      }
      if (member) {
        const harness::QuietStretch q = harness::longest_quiet_stretch(ends, t_settled, t_heal);
        if (secs(0, q.length) > f.stall_s) {
          f.stall_s = secs(0, q.length);
          f.stall_replica = i;
          f.stall_from_s = secs(t_cut, q.start);
        }
      }
    }
    CHECK(bad_calls == 0, std::to_string(bad_calls) + " of " + std::to_string(checked_calls) +
                              " calls started after settling ended wrong (at a member of the primary configuration: "
                              "not ok; elsewhere: ok)");
    if (s.primary_expected)
      CHECK(f.stall_s >= 0 && f.stall_s <= a.stall_bound_s,
            "longest client stall after settling at most " + std::to_string(a.stall_bound_s) + " s (was " +
                std::to_string(f.stall_s) + " s at r" + std::to_string(f.stall_replica) + ")");
    // Outside the primary configuration, every request that arrives after
    // settling is refused at once (the trace: none admitted).
    int admitted = 0, refused_in_trace = 0;
    for (const Event& e : events) {
      if (e.kind != Event::Request || e.t <= t_settled + 1000 || e.t > t_heal) continue;
      if (std::count(primary_members.begin(), primary_members.end(), e.replica)) continue;
      if (e.admitted) {
        if (++admitted <= 5) std::printf("  admitted outside the primary configuration: %s\n", e.line.c_str());
      } else if (e.line.find("refused") != std::string::npos) {
        ++refused_in_trace;
      }
    }
    CHECK(admitted == 0, std::to_string(admitted) + " requests admitted after settling by replicas outside the primary "
                                                   "configuration (they must be refused at once)");
    std::printf("%s: after settling, outside the primary configuration: %d requests refused by the replicas (traces), "
                "0 admitted expected, %d admitted; %d client calls there ended 'outcome unknown'\n",
                s.name.c_str(), refused_in_trace, admitted, unknown_after_settling);
  }
  // The ring's one-shot clients: none ok, and each replica refused at least
  // one outright (exit 1: every try answered "not in a majority"). A try
  // whose refusal comes later than the client's retry timeout (a scheduling
  // hiccup on a loaded machine: the timeout is a few round trips) leaves
  // the client unsure (exit 3); the traces show each was refused anyway.
  if (!oneshots.empty()) {
    std::map<int, int> definite, other, by_exit;
    for (const OneShot& o : oneshots) ++by_exit[o.exit];
    std::string exits;
    for (const auto& [code, count] : by_exit) exits += (exits.empty() ? "" : ", ") + std::to_string(count) + " exit " + std::to_string(code);
    std::printf("%s: one-shot pushes (--timeout 0.3) from 2 s after the cut: %s\n", s.name.c_str(), exits.c_str());
    for (const OneShot& o : oneshots) {
      if (!t_settled || o.start < t_settled) continue;
      const bool refused = o.exit == 1 && o.output.rfind("error: no replica is in a majority", 0) == 0;
      (refused ? definite : other)[o.replica]++;
      CHECK(o.exit == 1 || o.exit == 3, "a one-shot push to r" + std::to_string(o.replica) + " " +
                                            std::to_string(secs(t_cut, o.start)) + " s after the cut: exit " +
                                            std::to_string(o.exit) + " '" + o.output + "' (no primary: it cannot be ok)");
    }
    std::string text;
    for (int i = 0; i < n; ++i) {
      text += (i ? ", " : "") + ("r" + std::to_string(i) + " ") + std::to_string(definite[i]) + "/" +
              std::to_string(definite[i] + other[i]);
      if (t_settled)
        CHECK(definite[i] > 0, "r" + std::to_string(i) + " refused none of the one-shot pushes after settling outright (exit 1)");
    }
    if (t_settled)
      std::printf("%s: one-shot pushes (--timeout 0.3) after settling refused outright (exit 1): %s\n", s.name.c_str(),
                  text.c_str());
  }

  // After the heal.
  if (!final_config.empty()) {
    Cid id;
    parse_cid(final_config, 0, id);
    uint64_t last_install = 0;
    int seen = 0;
    for (const Event& e : events)
      if (e.kind == Event::Config && e.id == id && e.t >= t_heal) {
        last_install = std::max(last_install, e.t);
        ++seen;
      }
    f.healed_s = seen == n ? secs(t_heal, last_install) : secs(t_heal, t_one_polled);
    std::printf("%s: one primary configuration %s of all %d %.3f s after the heal\n", s.name.c_str(), final_config.c_str(),
                n, f.healed_s);
  }

  // Every answer against the queue.
  std::map<int32_t, int> in_queue;
  bool drain_ok = true;
  for (int i = 0; i < n; ++i)
    for (int32_t v : popped[static_cast<size_t>(i)]) {
      if (v == INT32_MIN) drain_ok = false;
      else ++in_queue[v];
    }
  CHECK(drain_ok && std::count(emptied.begin(), emptied.end(), 1) > 0, "the drain emptied the queue");
  std::map<int32_t, std::string> answer_of;
  for (const auto& cs : calls)
    for (const Call& c : cs) answer_of[c.item] = c.ok() ? "ok" : c.refused() ? "refused" : c.unknown() ? "unknown" : c.answer;
  for (const OneShot& o : oneshots)
    answer_of[o.item] = o.exit == 0 ? "ok" : o.exit == 1 && o.output.rfind("error: no replica is in a majority", 0) == 0 ? "refused"
                        : o.exit == 3                                                                                    ? "unknown"
                                                                                                                         : o.output;
  int lost = 0, twice = 0, stray = 0, refused_applied = 0, odd = 0, unknown_applied = 0, pushed_ok = 0;
  for (const auto& [item, answer] : answer_of) {
    const auto it = in_queue.find(item);
    const int copies = it == in_queue.end() ? 0 : it->second;
    if (answer == "ok") {
      ++pushed_ok;
      if (copies == 0 && ++lost <= 5) std::printf("  lost: item %d was answered ok and is not in the queue\n", item);
    } else if (answer == "refused") {
      if (copies > 0 && ++refused_applied <= 5) std::printf("  item %d was refused ('no effect') and is in the queue\n", item);
    } else if (answer == "unknown") {
      if (copies > 0) ++unknown_applied;
    } else if (++odd <= 5) {
      std::printf("  item %d: unexpected answer '%s'\n", item, answer.c_str());
    }
  }
  for (const auto& [item, copies] : in_queue) {
    if (copies > 1 && ++twice <= 5) std::printf("  item %d is in the queue %d times\n", item, copies);
    if (!answer_of.count(item) && ++stray <= 5) std::printf("  item %d is in the queue but was never pushed\n", item);
  }
  CHECK(lost == 0, std::to_string(lost) + " pushes answered ok are not in the queue");
  CHECK(twice == 0, std::to_string(twice) + " items are in the queue more than once");
  CHECK(stray == 0, std::to_string(stray) + " items in the queue were never pushed");
  CHECK(refused_applied == 0, std::to_string(refused_applied) + " pushes refused ('no effect') took effect");
  CHECK(odd == 0, std::to_string(odd) + " calls ended with an unexpected answer");

  // The report.
  std::string per_replica;
  for (int i = 0; i < n; ++i)
    per_replica += (i ? ", " : "") + ("r" + std::to_string(i) + " ") + std::to_string(total_ok[i]) + "/" +
                   std::to_string(total_refused[i]) + "/" + std::to_string(total_unknown[i]) + " (" +
                   std::to_string(f.ok_during_hold[i]) + " ok in the hold)";
  std::printf("%s: calls ok/refused/unknown: %s; %d pushes ok, %zu items drained (%d of the unknown took effect)\n",
              s.name.c_str(), per_replica.c_str(), pushed_ok, [&] {
                size_t k = 0;
                for (const auto& [item, c] : in_queue) k += static_cast<size_t>(c);
                return k;
              }(), unknown_applied);
  std::string stalls;
  for (int i = 0; i < n; ++i) {
    std::vector<uint64_t> ends = {t_cut + 2'000'000};
    for (const Call& c : calls[static_cast<size_t>(i)])
      if (c.ok() && c.end > t_cut + 2'000'000 && c.end <= t_heal) ends.push_back(c.end);
    char one[48];
    std::snprintf(one, sizeof one, "%sr%d %.3f s", i ? ", " : "", i,
                  secs(0, harness::longest_quiet_stretch(ends, t_cut + 2'000'000, t_heal).length));
    stalls += one;
  }
  std::printf("%s: installs during the %.0f s cut: %d (after its first 2 s: %d); longest stretch without an ok call "
              "from 2 s after the cut to the heal, per client: %s\n",
              s.name.c_str(), a.hold_s, f.installs_during_cut, f.installs_after_2s, stalls.c_str());
  char stall[64], settled[64], healed[64], installs[64];
  std::snprintf(settled, sizeof settled, f.settled_s < 0 ? "never" : "%.3f s", f.settled_s);
  std::snprintf(installs, sizeof installs, f.installs_after_settling < 0 ? "-" : "%d", f.installs_after_settling);
  if (!s.primary_expected) std::snprintf(stall, sizeof stall, "n/a (no primary: every call refused)");
  else if (f.stall_s < 0) std::snprintf(stall, sizeof stall, "-");
  else std::snprintf(stall, sizeof stall, "%.3f s (r%d, from %.3f s after the cut)", f.stall_s, f.stall_replica, f.stall_from_s);
  std::snprintf(healed, sizeof healed, f.healed_s < 0 ? "never" : "%.3f s", f.healed_s);
  std::printf("%s: figures: settled %s after the cut (target 2 s); %s installs after settling (target <= 2; %d rounds "
              "promised); longest client stall after settling %s (target < 0.5 s); one configuration %s after the "
              "heal (target 2 s)\n",
              s.name.c_str(), settled, installs, std::max(0, f.promised_after_settling), stall, healed);
  return 0;
}

void usage() {
  std::fprintf(stderr,
               "usage: partial_test bridge_3|bridge_5|one_way_3|ring_5 --server BIN --client BIN [--hold-s S]\n"
               "                    [--settle-bound-s S] [--stall-bound-s S] [--client-timeout S] [--think-ms MS] [--seed S] [--keep]\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    const bool has_value = i + 1 < argc;
    if (k == "--keep") a.keep = true;
    else if (k == "--server" && has_value) a.server = argv[++i];
    else if (k == "--client" && has_value) a.client = argv[++i];
    else if (k == "--hold-s" && has_value) a.hold_s = std::atof(argv[++i]);
    else if (k == "--settle-bound-s" && has_value) a.settle_bound_s = std::atof(argv[++i]);
    else if (k == "--stall-bound-s" && has_value) a.stall_bound_s = std::atof(argv[++i]);
    else if (k == "--client-timeout" && has_value) a.client_timeout_s = std::atof(argv[++i]);
    else if (k == "--think-ms" && has_value) a.think_ms = std::atoi(argv[++i]);
    else if (k == "--seed" && has_value) {
      a.seed_given = net::parse_u64(argv[++i], a.seed);
      if (!a.seed_given) {
        usage();
        return 2;
      }
    } else if (a.shape.empty() && !k.empty() && k[0] != '-') a.shape = k;
    else {
      usage();
      return 2;
    }
  }
  const Shape s = make_shape(a.shape);
  if (s.n == 0 || a.server.empty() || a.client.empty() || !(a.hold_s >= 3 && a.hold_s <= 120) ||
      !(a.client_timeout_s > 0 && a.client_timeout_s <= 60) || a.think_ms < 0 || a.think_ms > 1000) {
    usage();
    return 2;
  }
  const std::string name = "partial " + s.name;
  uint64_t seed = a.seed;
  if (a.seed_given) std::printf("%s: seed %" PRIu64 " (replay with FTQ_SEED=%" PRIu64 ")\n", name.c_str(), seed, seed);
  else seed = harness::test_seed(name.c_str());
  const std::string dir = harness::make_temp_dir("partial-" + s.name);
  const uint64_t t0 = net::now_us();
  run(a, s, seed, dir);
  std::printf("%s: %.1f s\n", name.c_str(), secs(t0, net::now_us()));
  if (harness::g_failures == 0) {
    if (!a.keep) harness::remove_tree(dir);
    else std::printf("%s: logs and data kept in %s\n", name.c_str(), dir.c_str());
    std::printf("%s: passed\n", name.c_str());
    return 0;
  }
  std::printf("%s: %d checks failed; logs and data kept in %s\n", name.c_str(), harness::g_failures, dir.c_str());
  return 1;
}
