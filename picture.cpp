// picture.cpp: draws a traced run of an FTQueue cluster as an SVG
// message-sequence chart, so that a student reads the protocol from a
// picture of their own run (README, "Draw your run"); with --text, the
// same chart as plain ASCII text for a terminal. No dependency: it reads
// text and writes text that any browser opens.
//
//   ./picture -o run.svg cluster                 # cluster/replica-*.log
//   ./picture --from 1200 --to 1500 -o failover.svg cluster
//   ./picture --text --from 1200 --to 1500 cluster
//   ./run_cluster.sh picture run.svg             # the same, for you
//
// It reads the trace lines the servers write with --trace (server.cpp's
// Tracer; `./server --help`, "Reading the trace"), or group_sim_test writes
// with --trace-out, and draws:
//   * a lane per replica and one for the clients, side by side; time goes
//     down, a row per event; on the left the time in ms since the first
//     line, on the right the event's trace line (hover for all of it);
//   * an arrow per datagram record that matters: a client's request and
//     its reply, DATA, ASSIGN, NACK, DATA or ASSIGN sent again (a repair,
//     dashed), the configuration change (PROBE, PROBEREPLY, PREPARE, STATE,
//     INSTALL) and the state transfer (SNAPREQ, SNAPSHOT). Keepalives are
//     never traced; STATUS and HEADER records only with --all;
//   * a band across the lanes where a configuration is first installed (its
//     id, primary or not, its members), a square where each replica installs
//     it, a dot per delivery, a triangle where a replica started.
//
// An arrow joins a send to its receive: the sender's line "TIME rN KIND out
// TEXT -> rM" and the receiver's "TIME rM KIND in from rN: TEXT" carry the
// same TEXT (match_peer_records says how they are paired). A send that was
// never received (dropped by --loss or a link cut, or the receiver was
// down) is a short arrow ending in an x; one the receiver dropped or
// rejected ends in an x at the receiver.
//
// Both renderers, render (SVG) and render_text (--text), draw the same rows
// (choose_rows) and arrows (make_arrows), read once.
//
// A line that is neither a trace line nor a replica's log line is skipped
// and counted, never fatal: the picture says how many, and where the first
// one was.
#include <dirent.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace {

const char* kUsage =
    "usage: picture [options] PATH...\n"
    "\n"
    "Draws the traced run of an FTQueue cluster as a message-sequence chart:\n"
    "SVG that any browser opens, or with --text plain text for a terminal.\n"
    "PATH is a directory holding the replicas' trace logs, replica-I.log\n"
    "(run_cluster.sh's cluster/, a test's directory, group_sim_test\n"
    "--trace-out DIR), or a log file; give every replica's log, or the arrows\n"
    "to the missing ones end in an x. The servers must have run with --trace\n"
    "(./run_cluster.sh start --trace).\n"
    "\n"
    "  -o FILE        write the chart to FILE (default: standard output)\n"
    "  --text         draw it as ASCII text (about 100 columns for 3 replicas)\n"
    "                 instead of SVG; every other option applies as well\n"
    "  --from MS      draw from MS milliseconds after the first trace line\n"
    "  --to MS        ... up to MS milliseconds after it\n"
    "  --first N      draw at most N events (default 400); the picture says\n"
    "                 when more were left out\n"
    "  --all          draw STATUS and HEADER records, clients' status requests\n"
    "                 and junk too\n"
    "  -h, --help     show this help\n"
    "\n"
    "Reading it: a lane per replica (r0, r1, ...) and one for the clients;\n"
    "time goes down, a row per event, with the time in ms since the first\n"
    "trace line on the left and the trace line on the right (hover over\n"
    "anything for all of it). Arrows: a client's request and reply (black),\n"
    "DATA (blue), ASSIGN (green), NACK (orange), DATA or ASSIGN sent again\n"
    "(a repair: dashed), the configuration change PROBE, PROBEREPLY, PREPARE,\n"
    "STATE, INSTALL (purple), the state transfer SNAPREQ, SNAPSHOT (brown).\n"
    "An arrow ending in an x was dropped (--loss, a link cut, rejected) or\n"
    "never received (the receiver was down, or its log was not given); a\n"
    "dotted one has its other end outside the window. A band across the\n"
    "lanes: a configuration installed first there (id, primary or not,\n"
    "members); a square: a replica's configuration line; a dot: a delivery\n"
    "(k=K); a triangle: a replica started.\n"
    "\n"
    "The text chart: a column per lane, a row per event with its time in ms.\n"
    "An arrow is drawn on the row of its send, its kind on it: -- sent,\n"
    "~~ sent again (a repair), .. its send is before the window or not traced\n"
    "(drawn on the receive's row); > or < where it arrived, x where it did\n"
    "not. A receive whose send is drawn has no row of its own. A line of ====\n"
    "across the lanes: a configuration first installed; * DELIVER, S SYNC\n"
    "(an fdatasync ended), # a replica's CONFIG line, ^ a replica started,\n"
    "X crashed. Right of the lanes, the event's text. Rows that only repeat\n"
    "the few just above them (a failover's NACKs, every millisecond) are\n"
    "folded into one line that says how many.\n"
    "\n"
    "Lines that are not trace lines are skipped and counted.\n"
    "Exit status: 0 drawn; 1 nothing to draw, or a file that cannot be read\n"
    "or written; 2 a bad option.\n";

constexpr int kExitTrouble = 1;
constexpr int kExitUsage = 2;
constexpr size_t kDefaultFirst = 400;
constexpr int kMaxReplicas = 100;

// ---- options ----------------------------------------------------------------

struct Options {
  std::vector<std::string> paths;
  std::string output;  // empty: standard output
  double from_ms = 0;
  double to_ms = -1;  // negative: to the end
  size_t first = kDefaultFirst;
  bool all = false;
  bool text = false;  // the chart as ASCII text, not SVG
};

bool parse_ms(const char* text, double& ms) {
  char* end = nullptr;
  ms = std::strtod(text, &end);
  return end != text && *end == 0 && std::isfinite(ms) && ms >= 0;
}

bool parse_count(const char* text, size_t& n) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (end == text || *end != 0 || text[0] == '-' || v == 0 || v > 1000000) return false;
  n = static_cast<size_t>(v);
  return true;
}

// Returns -1 to go on, else the exit status.
int parse_options(int argc, char** argv, Options& o) {
  auto bad = [](const std::string& what) {
    std::fprintf(stderr, "picture: %s (picture --help)\n", what.c_str());
    return kExitUsage;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "-o") {
      if (!has_value) return bad("-o needs a FILE");
      o.output = argv[++i];
    } else if (a == "--from" || a == "--to") {
      double& ms = a == "--from" ? o.from_ms : o.to_ms;
      if (!has_value || !parse_ms(argv[++i], ms)) return bad(a + " needs milliseconds, 0 or more (e.g. 1200)");
    } else if (a == "--first") {
      if (!has_value || !parse_count(argv[++i], o.first)) return bad("--first needs a count from 1 to 1000000");
    } else if (a == "--all") {
      o.all = true;
    } else if (a == "--text") {
      o.text = true;
    } else if (a == "--") {
      for (++i; i < argc; ++i) o.paths.push_back(argv[i]);
    } else if (!a.empty() && a[0] == '-') {
      return bad("unknown option '" + a + "'");
    } else {
      o.paths.push_back(a);
    }
  }
  if (o.paths.empty()) return bad("name the trace logs: a directory of replica-I.log files, or files");
  if (o.to_ms >= 0 && o.to_ms < o.from_ms) return bad("--to must not be before --from");
  return -1;
}

// ---- one line of a trace --------------------------------------------------------

enum class Dir { None, In, Out };

constexpr int kClients = -1;  // the clients, as a sender or a receiver
constexpr size_t kNone = static_cast<size_t>(-1);

// One destination of a send: "r2", "r2 (dropped: loss)", "r2 x2".
struct Dest {
  int to = 0;
  int copies = 1;
  std::string note;  // the sender's: (dropped: loss), (dropped: cut), (send failed)
};

// A trace line, or a replica's start or crash (from its log lines).
struct Event {
  uint64_t us = 0;     // the time
  size_t order = 0;    // the order read in: ties in time keep it
  int replica = 0;     // who traced it
  std::string kind;    // DATA, CONFIG, ...; START and CRASH for a replica's life
  Dir dir = Dir::None;
  int peer = kClients;      // in: the sender; out to a client: kClients
  std::string text;         // the record, as both of its ends trace it
  std::string note;         // why it was dropped or rejected, if it was
  std::vector<Dest> dests;  // a send to peers: where it went
  std::string line;         // the whole line, without its time
};

bool is_digits(const std::string& s, size_t from, size_t to) {
  if (from >= to) return false;
  for (size_t i = from; i < to; ++i)
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  return true;
}

// "2393.904123" (an older trace's "2393.904" too) -> microseconds.
bool parse_time(const std::string& word, uint64_t& us) {
  const size_t dot = word.find('.');
  if (dot == std::string::npos || dot > 12 || word.size() - dot - 1 > 9) return false;
  if (!is_digits(word, 0, dot) || !is_digits(word, dot + 1, word.size())) return false;
  uint64_t fraction = 0;
  uint64_t scale = 100000;
  for (size_t i = dot + 1; i < word.size() && i <= dot + 6; ++i, scale /= 10)
    fraction += static_cast<uint64_t>(word[i] - '0') * scale;
  us = std::strtoull(word.substr(0, dot).c_str(), nullptr, 10) * 1000000 + fraction;
  return true;
}

// "r12" -> 12.
bool parse_replica(const std::string& word, int& r) {
  if (word.size() < 2 || word.size() > 3 || word[0] != 'r' || !is_digits(word, 1, word.size())) return false;
  r = std::atoi(word.c_str() + 1);
  return r < kMaxReplicas;
}

// Splits off the first word of `rest` (up to a space); skips the spaces after it.
std::string take_word(std::string& rest) {
  const size_t end = std::min(rest.find(' '), rest.size());
  std::string word = rest.substr(0, end);
  const size_t next = rest.find_first_not_of(' ', end);
  rest = next == std::string::npos ? "" : rest.substr(next);
  return word;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

// A fate or verdict at the end of a line, "... (dropped: loss)": moved from
// `text` to `note`. A record's own last parentheses, "k=1 (0,c1.0,1)", stay.
void split_note(std::string& text, std::string& note) {
  const size_t open = text.rfind(" (");
  if (open == std::string::npos || text.back() != ')') return;
  const std::string inside = text.substr(open + 2);
  if (!starts_with(inside, "dropped") && !starts_with(inside, "rejected") && !starts_with(inside, "send failed"))
    return;
  note = text.substr(open + 1);
  text.erase(open);
}

// "r1, r2 (dropped: loss), r0 x2" -> destinations.
bool parse_dests(const std::string& list, std::vector<Dest>& dests) {
  size_t at = 0;
  while (at <= list.size()) {
    size_t comma = list.find(", ", at);
    if (comma == std::string::npos) comma = list.size();
    std::string item = list.substr(at, comma - at);
    Dest d;
    const size_t x = item.rfind(" x");
    if (x != std::string::npos && is_digits(item, x + 2, item.size()) && item.size() - x - 2 <= 4) {
      d.copies = std::atoi(item.c_str() + x + 2);
      item.erase(x);
    }
    split_note(item, d.note);
    if (!parse_replica(item, d.to) || d.copies < 1) return false;
    dests.push_back(d);
    at = comma + 2;
  }
  return !dests.empty();
}

// Who may send a record of this kind: a client's request comes from an
// address and its reply goes to one; STATUS and JUNK may be either a
// peer's or a client's; everything else is between replicas.
enum class Party { Client, Peer, Either };

Party party_of(const std::string& kind) {
  if (kind == "REQUEST" || kind == "REPLY") return Party::Client;
  if (kind == "STATUS" || kind == "JUNK") return Party::Either;
  return Party::Peer;
}

// What follows "in": "from r1: TEXT" (a peer) or "from ADDR ..." (a client).
bool parse_in(Event& e, const std::string& rest) {
  if (!starts_with(rest, "from ")) return false;
  std::string text = rest.substr(5);
  const size_t colon = text.find(": ");
  int from = 0;
  if (colon != std::string::npos && parse_replica(text.substr(0, colon), from)) {
    e.peer = from;
    text.erase(0, colon + 2);
  }
  const Party party = party_of(e.kind);
  if ((e.peer == kClients && party == Party::Peer) || (e.peer != kClients && party == Party::Client)) return false;
  split_note(text, e.note);
  e.text = text;
  return !text.empty();
}

// What follows "out": "TEXT -> r1, r2" (to peers) or "to ADDR ..." (a client).
bool parse_out(Event& e, const std::string& rest) {
  const size_t arrow = rest.rfind(" -> ");
  if (arrow != std::string::npos && party_of(e.kind) != Party::Client) {
    e.text = rest.substr(0, arrow);
    return !e.text.empty() && parse_dests(rest.substr(arrow + 4), e.dests);
  }
  if (!starts_with(rest, "to ") || party_of(e.kind) == Party::Peer) return false;
  e.peer = kClients;
  e.text = rest;
  split_note(e.text, e.note);
  return true;
}

bool is_event_name(const std::string& word) {
  if (word.empty() || word.size() > 16) return false;
  for (char c : word)
    if (!std::isupper(static_cast<unsigned char>(c))) return false;
  return true;
}

// "rN EVENT [in|out] TEXT", after the time.
bool parse_trace(std::string rest, Event& e) {
  if (!parse_replica(take_word(rest), e.replica)) return false;
  e.kind = take_word(rest);
  if (!is_event_name(e.kind)) return false;
  if (e.kind == "CONFIG" || e.kind == "DELIVER" || e.kind == "SYNC") {
    e.text = rest;
    return !rest.empty();
  }
  const std::string dir = take_word(rest);
  if (dir == "in") {
    e.dir = Dir::In;
    return parse_in(e, rest);
  }
  if (dir == "out") {
    e.dir = Dir::Out;
    return parse_out(e, rest);
  }
  return false;
}

// "[replica 2] TEXT", after the time: a start ("listening on") or, from the
// simulator, a crash become events; other log lines are not drawn.
bool parse_log(const std::string& rest, Event& e) {
  const size_t close = rest.find("] ");
  if (!starts_with(rest, "[replica ") || close == std::string::npos || !is_digits(rest, 9, close)) return false;
  if (close - 9 > 2) return false;
  e.replica = std::atoi(rest.c_str() + 9);
  e.text = rest.substr(close + 2);
  if (starts_with(e.text, "listening on")) e.kind = "START";
  else if (starts_with(e.text, "crashed")) e.kind = "CRASH";
  return true;
}

enum class LineType { Event, Other, Skipped };

// Reads one line: an event to draw (or to pair), another line of a
// replica's log (Other), or none of those (Skipped: counted).
LineType read_line(std::string line, Event& e) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.find_first_not_of(' ') == std::string::npos) return LineType::Other;
  if (starts_with(line, "[replica ")) return LineType::Other;  // a log line without a time (no -v, no --trace)
  std::string rest = line;
  const std::string time = take_word(rest);
  if (!parse_time(time, e.us)) return LineType::Skipped;
  e.line = rest;
  if (starts_with(rest, "[")) {
    if (!parse_log(rest, e)) return LineType::Skipped;
    return e.kind.empty() ? LineType::Other : LineType::Event;
  }
  return parse_trace(rest, e) ? LineType::Event : LineType::Skipped;
}

// ---- reading the logs --------------------------------------------------------------

// A line to show on a terminal: anything but printable ASCII as '?'.
std::string printable(std::string s) {
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  return s;
}

struct Trace {
  std::vector<Event> events;  // sorted by time, then as read
  std::vector<std::string> files;
  size_t lines = 0;
  size_t trace_lines = 0;  // of them, trace lines
  size_t skipped = 0;
  std::string first_skipped;  // "FILE:LINE: text"
  int replicas = 0;           // lanes: the highest replica id seen, plus one
  bool partitionable = false;  // a replica started with --partitionable: a side without a majority serves
};

// "replica-12.log" -> 12; -1 for any other name.
int replica_of_file(const std::string& name) {
  if (!starts_with(name, "replica-") || name.size() < 13 || name.compare(name.size() - 4, 4, ".log") != 0) return -1;
  if (!is_digits(name, 8, name.size() - 4) || name.size() - 12 > 2) return -1;
  return std::atoi(name.c_str() + 8);
}

// The files PATH names: a directory's replica-I.log, in id order, or PATH.
bool list_files(const std::string& path, std::vector<std::string>& files, std::string& error) {
  DIR* dir = ::opendir(path.c_str());
  if (!dir) {
    if (std::ifstream(path).good()) {
      files.push_back(path);
      return true;
    }
    error = "cannot read " + path + ": " + std::strerror(errno);
    return false;
  }
  std::vector<std::pair<int, std::string>> found;
  while (const dirent* entry = ::readdir(dir)) {
    const int id = replica_of_file(entry->d_name);
    if (id >= 0) found.emplace_back(id, path + "/" + entry->d_name);
  }
  ::closedir(dir);
  if (found.empty()) {
    error = path + " holds no replica-I.log files";
    return false;
  }
  std::sort(found.begin(), found.end());
  for (const auto& f : found) files.push_back(f.second);
  return true;
}

void read_file(const std::string& path, Trace& trace) {
  std::ifstream in(path);
  size_t number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    ++trace.lines;
    Event e;
    const LineType type = read_line(line, e);
    if (type == LineType::Skipped && trace.skipped++ == 0)
      trace.first_skipped = path + ":" + std::to_string(number) + ": " + printable(line.substr(0, 100));
    if (type != LineType::Event) continue;
    trace.trace_lines += e.kind != "START" && e.kind != "CRASH";
    if (e.kind == "START" && e.text.find(", partitionable") != std::string::npos) trace.partitionable = true;
    e.order = trace.events.size();
    trace.events.push_back(std::move(e));
  }
}

// The lanes: every replica that traced, or was sent to, or has a log file.
int count_replicas(const Trace& trace) {
  int highest = -1;
  for (const std::string& file : trace.files) {
    const size_t slash = file.rfind('/');
    highest = std::max(highest, replica_of_file(slash == std::string::npos ? file : file.substr(slash + 1)));
  }
  for (const Event& e : trace.events) {
    highest = std::max(highest, std::max(e.replica, e.peer));
    for (const Dest& d : e.dests) highest = std::max(highest, d.to);
  }
  return highest + 1;
}

bool read_trace(const Options& o, Trace& trace, std::string& error) {
  for (const std::string& path : o.paths)
    if (!list_files(path, trace.files, error)) return false;
  for (const std::string& file : trace.files) read_file(file, trace);
  std::stable_sort(trace.events.begin(), trace.events.end(),
                   [](const Event& a, const Event& b) { return a.us < b.us; });
  for (size_t i = 0; i < trace.events.size(); ++i) trace.events[i].order = i;
  trace.replicas = count_replicas(trace);
  return true;
}

// ---- what is drawn ---------------------------------------------------------------

bool is_membership_change(const std::string& kind) {
  return kind == "PROBE" || kind == "PROBEREPLY" || kind == "PREPARE" || kind == "STATE" || kind == "INSTALL";
}

bool is_state_transfer(const std::string& kind) { return kind == "SNAPREQ" || kind == "SNAPSHOT"; }

// The records that matter for following the protocol (without --all).
bool drawn_kind(const std::string& kind) {
  static const std::set<std::string> kinds = {"REQUEST", "REPLY", "DATA",  "ASSIGN", "NACK",
                                              "CONFIG",  "DELIVER", "START", "CRASH", "SYNC"};
  return kinds.count(kind) || is_membership_change(kind) || is_state_transfer(kind);
}

bool drawn(const Event& e, const Options& o) { return o.all || drawn_kind(e.kind); }

// A record between two replicas (not a client's, not a mark on one lane).
bool peer_record(const Event& e) {
  return (e.dir == Dir::In && e.peer != kClients) || (e.dir == Dir::Out && !e.dests.empty());
}

// ---- arrows: a send paired with its receive --------------------------------------

struct Arrow {
  size_t send = kNone;     // the event that sent it (kNone: a client's, or not traced)
  size_t receive = kNone;  // the event that received it (kNone: a client, or never)
  int from = 0, to = 0;    // replica ids, or kClients
  std::string kind;
  bool dropped = false;  // ends in an x
  bool repair = false;   // DATA or ASSIGN this replica had sent before
  bool labelled = true;  // the first arrow of a send carries the label
  std::string note;
};

// A datagram on localhost takes microseconds; the sender traces it once
// the whole round of sends has left, so its receive may be traced a little
// earlier. The simulator delays stragglers by up to a suspicion timeout.
constexpr uint64_t kEarlyReceiveUs = 50'000;
constexpr uint64_t kLongestFlightUs = 2'000'000;

// Start times of each replica's lives (its "listening on" lines).
using Lives = std::map<int, std::vector<uint64_t>>;

Lives lives_of(const std::vector<Event>& events) {
  Lives lives;
  for (const Event& e : events)
    if (e.kind == "START") lives[e.replica].push_back(e.us);
  return lives;
}

// True if `replica` started again after `sent` and by `received`: what was
// sent to its earlier life never reaches this one.
bool restarted_between(const Lives& lives, int replica, uint64_t sent, uint64_t received) {
  auto it = lives.find(replica);
  if (it == lives.end()) return false;
  auto start = std::upper_bound(it->second.begin(), it->second.end(), sent);
  return start != it->second.end() && *start <= received;
}

// The first word of a DATA or ASSIGN line: its first message's name, or
// k=K. The same again from the same replica is a repair (an answer to a
// NACK, or lossy mode's ASSIGNs repeated).
std::string first_item(const std::string& text) { return text.substr(0, text.find(' ')); }

std::vector<bool> find_repairs(const std::vector<Event>& events) {
  std::vector<bool> repair(events.size());
  std::set<std::tuple<int, std::string, std::string>> sent;
  for (const Event& e : events) {
    if (e.dir != Dir::Out || (e.kind != "DATA" && e.kind != "ASSIGN")) continue;
    repair[e.order] = !sent.insert({e.replica, e.kind, first_item(e.text)}).second;
  }
  return repair;
}

// Pairs each peer record received with the send it came from: the first
// unpaired send of the same sender, receiver, kind and text, traced at most
// kEarlyReceiveUs after the receive and at most kLongestFlightUs before it,
// and not to an earlier life of the receiver. Sends left unpaired were
// never received; receives left unpaired came from a send not traced.
void match_peer_records(const std::vector<Event>& events, const Options& o, const Lives& lives,
                        std::vector<Arrow>& arrows) {
  using Key = std::tuple<int, int, std::string, std::string>;  // from, to, kind, text
  const std::vector<bool> repair = find_repairs(events);
  std::map<Key, std::vector<size_t>> sends;  // arrows still waiting for their receive
  for (const Event& e : events) {
    if (e.dir != Dir::Out || e.dests.empty() || !drawn(e, o)) continue;
    bool first = true;
    for (const Dest& d : e.dests)
      for (int copy = 0; copy < d.copies; ++copy) {
        Arrow a{e.order, kNone, e.replica, d.to, e.kind, !d.note.empty(), repair[e.order], first, d.note};
        first = false;
        if (!a.dropped) sends[Key{e.replica, d.to, e.kind, e.text}].push_back(arrows.size());
        arrows.push_back(a);
      }
  }
  std::map<Key, size_t> next;  // per key: the first send not yet paired or given up
  for (const Event& e : events) {
    if (e.dir != Dir::In || e.peer == kClients || !drawn(e, o)) continue;
    const Key key{e.peer, e.replica, e.kind, e.text};
    auto found = sends.find(key);
    size_t& i = next[key];
    while (found != sends.end() && i < found->second.size()) {
      const Event& s = events[arrows[found->second[i]].send];
      if (s.us + kLongestFlightUs >= e.us && !restarted_between(lives, e.replica, s.us, e.us)) break;
      ++i;  // too old: it was never received
    }
    if (found != sends.end() && i < found->second.size() && events[arrows[found->second[i]].send].us <= e.us + kEarlyReceiveUs) {
      Arrow& a = arrows[found->second[i++]];
      a.receive = e.order;
      a.dropped = !e.note.empty();
      a.note = e.note;
    } else {
      arrows.push_back(Arrow{kNone, e.order, e.peer, e.replica, e.kind, !e.note.empty(), false, true, e.note});
    }
  }
  for (Arrow& a : arrows)
    if (a.receive == kNone && !a.dropped) {
      a.dropped = true;
      a.note = "(never received: the receiver was down, or its log is not read)";
    }
}

// A client's request (received) and the replies (sent): the clients trace
// nothing, so these arrows have one end only.
void client_records(const std::vector<Event>& events, const Options& o, std::vector<Arrow>& arrows) {
  for (const Event& e : events) {
    if (peer_record(e) || e.dir == Dir::None || !drawn(e, o)) continue;
    if (e.dir == Dir::In)
      arrows.push_back(Arrow{kNone, e.order, kClients, e.replica, e.kind, !e.note.empty(), false, true, e.note});
    else
      arrows.push_back(Arrow{e.order, kNone, e.replica, kClients, e.kind, !e.note.empty(), false, true, e.note});
  }
}

std::vector<Arrow> make_arrows(const std::vector<Event>& events, const Options& o) {
  std::vector<Arrow> arrows;
  match_peer_records(events, o, lives_of(events), arrows);
  client_records(events, o, arrows);
  return arrows;
}

// ---- configurations -------------------------------------------------------------

// "configuration 4.1 primary {0,1} of 3; ..." (a CONFIG line), read.
struct Configuration {
  std::string id;
  bool primary = false;
  std::string members;  // "0,1"
};

bool parse_configuration(const Event& e, Configuration& c) {
  if (e.kind != "CONFIG" || !starts_with(e.text, "configuration ")) return false;
  std::string rest = e.text.substr(14);
  c.id = take_word(rest);
  const std::string flag = take_word(rest);
  const std::string members = take_word(rest);
  if (flag != "primary" && flag != "non-primary") return false;
  if (members.size() < 2 || members.front() != '{' || members.back() != '}') return false;
  c.primary = flag == "primary";
  c.members = members.substr(1, members.size() - 2);
  return !c.id.empty();
}

// What a configuration band means for clients.
std::string band_meaning(const Trace& trace, const Configuration& c) {
  if (c.primary) return "a majority, it serves";
  return trace.partitionable ? "no majority, serves tentatively" : "no majority, it refuses clients";
}

// ---- rows: what is drawn, in which order ------------------------------------------

// A row is an event, or a band: where a configuration is first installed.
struct Row {
  size_t event = kNone;
  bool band = false;
  Configuration config;  // a band's
};

// Where an event is drawn in time: a receive traced a little before its
// send (see kEarlyReceiveUs) is drawn just after it, so no arrow goes up.
std::vector<std::tuple<uint64_t, size_t, size_t>> draw_order(const std::vector<Event>& events,
                                                             const std::vector<Arrow>& arrows) {
  std::vector<std::tuple<uint64_t, size_t, size_t>> at(events.size());
  for (const Event& e : events) at[e.order] = {e.us, e.order, 0};
  for (const Arrow& a : arrows)
    if (a.send != kNone && a.receive != kNone && at[a.receive] < at[a.send])
      at[a.receive] = {std::get<0>(at[a.send]), std::get<1>(at[a.send]), a.receive + 1};
  return at;
}

struct Window {
  uint64_t t0 = 0;        // the first line's time: "+0 ms"
  size_t in_window = 0;   // events drawable in --from..--to
  size_t drawn = 0;       // of them, drawn (--first)
};

std::vector<Row> choose_rows(const Trace& trace, const std::vector<Arrow>& arrows, const Options& o, Window& w) {
  const std::vector<Event>& events = trace.events;
  w.t0 = events.empty() ? 0 : events.front().us;
  const auto at = draw_order(events, arrows);
  std::vector<size_t> chosen;
  for (const Event& e : events) {
    const double ms = static_cast<double>(e.us - w.t0) / 1000.0;
    if (!drawn(e, o) || ms < o.from_ms || (o.to_ms >= 0 && ms > o.to_ms)) continue;
    chosen.push_back(e.order);
  }
  std::stable_sort(chosen.begin(), chosen.end(), [&at](size_t a, size_t b) { return at[a] < at[b]; });
  w.in_window = chosen.size();
  if (chosen.size() > o.first) chosen.resize(o.first);
  w.drawn = chosen.size();
  std::vector<Row> rows;
  std::set<std::string> banded;
  for (size_t i : chosen) {
    Configuration c;
    if (parse_configuration(events[i], c) && banded.insert(c.id).second) rows.push_back(Row{kNone, true, c});
    rows.push_back(Row{i, false, {}});
  }
  return rows;
}

// ---- SVG ----------------------------------------------------------------------------

// Text for SVG: XML's special characters escaped; anything but printable
// ASCII (a log is not ours to trust) shown as '?'.
std::string esc(const std::string& s) {
  std::string out;
  for (char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '"') out += "&quot;";
    else if (u < 0x20 || u >= 0x7f) out += '?';
    else out += c;
  }
  return out;
}

std::string num(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", v);
  return text;
}

std::string shorten(const std::string& s, size_t most) { return s.size() <= most ? s : s.substr(0, most - 3) + "..."; }

// Collects the SVG text; every element it opens, it closes.
class Svg {
 public:
  void open(const std::string& tag, const std::string& attrs = "") {
    out_ += "<" + tag + (attrs.empty() ? "" : " " + attrs) + ">\n";
    open_.push_back(tag);
  }
  void close() {
    out_ += "</" + open_.back() + ">\n";
    open_.pop_back();
  }
  void element(const std::string& tag, const std::string& attrs) { out_ += "<" + tag + " " + attrs + "/>\n"; }
  void title(const std::string& text) { out_ += "<title>" + esc(text) + "</title>\n"; }
  void content(const std::string& text) { out_ += esc(text) + "\n"; }
  void text(double x, double y, const std::string& attrs, const std::string& content) {
    out_ += "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" " + attrs + ">" + esc(content) + "</text>\n";
  }
  void line(double x1, double y1, double x2, double y2, const std::string& attrs) {
    element("line", "x1=\"" + num(x1) + "\" y1=\"" + num(y1) + "\" x2=\"" + num(x2) + "\" y2=\"" + num(y2) + "\" " + attrs);
  }
  std::string finish() {
    while (!open_.empty()) close();
    return std::move(out_);
  }

 private:
  std::string out_;
  std::vector<std::string> open_;
};

// Where things go: lanes side by side (the clients' first), a row per event.
struct Layout {
  int replicas = 0;
  double lane_w = 150;
  double row_h = 16;
  double time_w = 80;   // the time column, left
  double top = 0;       // the first row's top
  size_t rows = 0;
  double lane_x(int who) const { return time_w + lane_w * (who == kClients ? 0 : who + 1) + lane_w / 2; }
  double row_y(size_t row) const { return top + row_h * static_cast<double>(row) + row_h / 2; }
  double lanes_right() const { return time_w + lane_w * (replicas + 1); }
  double log_x() const { return lanes_right() + 10; }
  double width() const { return std::max(log_x() + 760, 1240.0); }
  double height() const { return top + row_h * static_cast<double>(rows) + 30; }
};

const char* color_of(const std::string& kind) {
  if (kind == "REQUEST" || kind == "REPLY") return "#222222";
  if (kind == "DATA") return "#1f5fbf";
  if (kind == "ASSIGN") return "#1a8a3a";
  if (kind == "NACK") return "#e8590c";
  if (is_membership_change(kind)) return "#7b2cbf";
  if (is_state_transfer(kind)) return "#8d5524";
  return "#999999";
}

constexpr const char* kDropColor = "#d00000";

// An arrowhead at (x2, y2), pointing from (x1, y1).
void arrowhead(Svg& svg, double x1, double y1, double x2, double y2, const char* color) {
  const double dx = x2 - x1, dy = y2 - y1, length = std::max(std::hypot(dx, dy), 1e-6);
  const double ux = dx / length, uy = dy / length;
  const double bx = x2 - 7 * ux, by = y2 - 7 * uy;
  svg.element("polygon", "points=\"" + num(x2) + "," + num(y2) + " " + num(bx - 3 * uy) + "," + num(by + 3 * ux) + " " +
                             num(bx + 3 * uy) + "," + num(by - 3 * ux) + "\" fill=\"" + color + "\"");
}

// An x at (x, y): dropped, or never received.
void cross(Svg& svg, double x, double y) {
  const std::string style = std::string("stroke=\"") + kDropColor + "\" stroke-width=\"2\"";
  svg.line(x - 4, y - 4, x + 4, y + 4, style);
  svg.line(x - 4, y + 4, x + 4, y - 4, style);
}

enum class End { Head, Cross };

struct Stroke {
  const char* color;
  bool dashed = false;  // a repair
  bool dotted = false;  // the other end is outside the window, or not traced
};

void draw_line(Svg& svg, double x1, double y1, double x2, double y2, const Stroke& s, End end) {
  std::string style = std::string("stroke=\"") + s.color + "\" stroke-width=\"1.3\"";
  if (s.dotted) style += " stroke-dasharray=\"2 3\"";  // (a dotted repair: dotted)
  else if (s.dashed) style += " stroke-dasharray=\"6 3\"";
  svg.line(x1, y1, x2, y2, style);
  if (end == End::Cross) cross(svg, x2, y2);
  else arrowhead(svg, x1, y1, x2, y2, s.color);
}

// A label above an arrow, a quarter of the way along it.
void label(Svg& svg, double x1, double y1, double x2, double y2, const std::string& text, const char* color) {
  const double x = x1 + (x2 - x1) * 0.3, y = y1 + (y2 - y1) * 0.3 - 3;
  svg.text(x, y, std::string("font-size=\"9\" text-anchor=\"middle\" fill=\"") + color +
                     "\" stroke=\"white\" stroke-width=\"3\" paint-order=\"stroke\"",
           text);
}

// "DATA (0,c1.0,2)", "ASSIGN k=2", "REQUEST push 1 5", "REPLY ok": short.
std::string arrow_label(const Event& e) {
  std::string rest = e.text;
  if (!peer_record(e)) {  // a client's: "ADDR ..." (in), "to ADDR ..." (out)
    if (starts_with(rest, "to ")) take_word(rest);
    take_word(rest);
  }
  if (e.kind == "REQUEST" || e.kind == "REPLY") rest = rest.substr(0, rest.find(" (client"));
  else if (e.kind == "PROBE" && rest.find("join ") != std::string::npos) rest = rest.substr(rest.find("join ") + 5);
  else if (e.kind != "NACK") rest = take_word(rest);
  if (!rest.empty() && (rest.back() == ':' || rest.back() == '?')) rest.pop_back();
  return shorten(e.kind + " " + rest, 26);
}

// ---- drawing the rows ---------------------------------------------------------

struct Picture {
  const Trace& trace;
  const Options& options;
  const std::vector<Arrow>& arrows;
  const std::vector<Row>& rows;
  const Window& window;
  Layout layout;
  std::vector<size_t> row_of;  // event -> its row (kNone: not drawn)
};

double ms_after(const Picture& p, uint64_t us) { return static_cast<double>(us - p.window.t0) / 1000.0; }

void draw_lanes(Svg& svg, const Picture& p) {
  const Layout& l = p.layout;
  const double top = l.top - 22, bottom = l.height() - 20;
  for (int who = kClients; who < l.replicas; ++who) {
    const std::string name = who == kClients ? "clients" : "r" + std::to_string(who);
    svg.open("g", "class=\"lane\" data-lane=\"" + name + "\"");
    svg.line(l.lane_x(who), top + 6, l.lane_x(who), bottom, "stroke=\"#bbbbbb\" stroke-width=\"1\"");
    svg.text(l.lane_x(who), top, "font-size=\"13\" font-weight=\"bold\" text-anchor=\"middle\"",
             who == kClients ? "clients" : "replica " + std::to_string(who));
    svg.close();
  }
}

// The time column, the trace line column, and a dashed line where more
// than 50 ms passed between two rows.
void draw_row_texts(Svg& svg, const Picture& p) {
  const Layout& l = p.layout;
  uint64_t previous = 0;
  for (size_t r = 0; r < p.rows.size(); ++r) {
    const Row& row = p.rows[r];
    const double y = l.row_y(r) + 3;
    if (row.band) continue;
    const Event& e = p.trace.events[row.event];
    if (r > 0 && e.us > previous + 50'000)
      svg.line(4, l.row_y(r) - l.row_h / 2, l.lanes_right(), l.row_y(r) - l.row_h / 2,
               "stroke=\"#888888\" stroke-dasharray=\"1 4\"");
    previous = std::max(previous, e.us);
    char time[32];
    std::snprintf(time, sizeof time, "+%.3f", ms_after(p, e.us));
    svg.text(l.time_w - 6, y, "font-size=\"10\" text-anchor=\"end\" font-family=\"monospace\"", time);
    svg.open("text", "x=\"" + num(l.log_x()) + "\" y=\"" + num(y) + "\" font-size=\"10\" font-family=\"monospace\"");
    svg.title(e.line);  // hover: the whole line
    svg.content(shorten(e.line, 120));
    svg.close();
  }
}

// A band across the lanes: where a configuration is first installed.
void draw_band(Svg& svg, const Picture& p, size_t r, const Configuration& c) {
  const Layout& l = p.layout;
  const std::string name = "configuration " + c.id + (c.primary ? " primary {" : " non-primary {") + c.members + "}";
  svg.open("g", "class=\"config\" data-config=\"" + esc(c.id) + "\" data-members=\"" + esc(c.members) +
                    "\" data-primary=\"" + (c.primary ? "yes" : "no") + "\"");
  svg.title(name + ": " + band_meaning(p.trace, c));
  svg.element("rect", "x=\"" + num(l.time_w) + "\" y=\"" + num(l.row_y(r) - l.row_h / 2 + 1) + "\" width=\"" +
                          num(l.lanes_right() - l.time_w) + "\" height=\"" + num(l.row_h - 2) + "\" fill=\"" +
                          (c.primary ? "#d8f3dc" : "#fff3bf") + "\" stroke=\"" + (c.primary ? "#52b788" : "#f59f00") + "\"");
  svg.text(l.time_w + 6, l.row_y(r) + 4, "font-size=\"11\" font-weight=\"bold\"", name);
  svg.text(l.log_x(), l.row_y(r) + 4, "font-size=\"10\" font-weight=\"bold\"", name + " installed");
  svg.close();
}

// A mark on a replica's lane: its configuration line, a delivery, a start.
void draw_mark(Svg& svg, const Picture& p, size_t r, const Event& e) {
  const Layout& l = p.layout;
  const double x = l.lane_x(e.replica), y = l.row_y(r);
  svg.open("g", "class=\"mark\" data-kind=\"" + esc(e.kind) + "\"");
  svg.title("r" + std::to_string(e.replica) + " " + e.kind + " " + e.text);
  if (e.kind == "DELIVER") {
    svg.element("circle", "cx=\"" + num(x) + "\" cy=\"" + num(y) + "\" r=\"3\" fill=\"#000000\"");
    svg.text(x + 6, y + 3, "font-size=\"8\"", first_item(e.text));
  } else if (e.kind == "START") {
    svg.element("polygon", "points=\"" + num(x - 6) + "," + num(y - 5) + " " + num(x + 6) + "," + num(y - 5) + " " +
                               num(x) + "," + num(y + 5) + "\" fill=\"#2b8a3e\"");
    svg.text(x + 9, y + 3, "font-size=\"9\" fill=\"#2b8a3e\"", "started");
  } else if (e.kind == "SYNC") {
    svg.element("rect", "x=\"" + num(x - 6) + "\" y=\"" + num(y - 2) + "\" width=\"12\" height=\"4\" fill=\"#1c7ed6\"");
    svg.text(x + 9, y + 3, "font-size=\"8\" fill=\"#1c7ed6\"", "sync " + first_item(e.text) + " us");
  } else if (e.kind == "CRASH") {
    cross(svg, x, y);
    svg.text(x + 9, y + 3, "font-size=\"9\" fill=\"#d00000\"", "crashed");
  } else {
    Configuration c;
    const bool config = parse_configuration(e, c);
    const char* fill = !config ? "#adb5bd" : c.primary ? "#52b788" : "#f59f00";
    svg.element("rect", "x=\"" + num(x - 4) + "\" y=\"" + num(y - 4) + "\" width=\"8\" height=\"8\" fill=\"" + fill + "\"");
  }
  svg.close();
}

// One arrow. Both ends drawn: a line from the send's row to the receive's.
// One end outside the window: a dotted stub toward the other lane. A send
// never received: a short arrow ending in an x. A client has no rows: its
// end is on the same row as the replica's.
void draw_arrow(Svg& svg, const Picture& p, const Arrow& a) {
  const Layout& l = p.layout;
  const size_t send_row = a.send == kNone ? kNone : p.row_of[a.send];
  const size_t receive_row = a.receive == kNone ? kNone : p.row_of[a.receive];
  if (send_row == kNone && receive_row == kNone) return;
  const Event& e = p.trace.events[send_row != kNone ? a.send : a.receive];
  double x1 = l.lane_x(a.from), x2 = l.lane_x(a.to);
  double y1 = send_row != kNone ? l.row_y(send_row) : 0, y2 = receive_row != kNone ? l.row_y(receive_row) : 0;
  Stroke s{color_of(a.kind), a.repair, false};
  const bool client = a.from == kClients || a.to == kClients;
  if (client) {  // level: the client's end is on the replica's row
    if (send_row != kNone) y2 = y1;
    else y1 = y2;
  } else if (send_row == kNone) {  // sent before the window, or not traced
    x1 = x2 + (x1 - x2) * 0.4;
    y1 = y2 - l.row_h;
    s.dotted = true;
  } else if (receive_row == kNone) {  // received after the window, or never
    x2 = x1 + (x2 - x1) * 0.4;
    y2 = y1 + l.row_h;
    s.dotted = a.receive != kNone;
  }
  svg.open("g", "class=\"arrow\" data-kind=\"" + esc(a.kind) + "\" data-from=\"" +
                    (a.from == kClients ? "clients" : "r" + std::to_string(a.from)) + "\" data-to=\"" +
                    (a.to == kClients ? "clients" : "r" + std::to_string(a.to)) + "\"" +
                    (a.send != kNone && a.receive != kNone ? " data-paired=\"yes\"" : "") +
                    (a.dropped ? " data-dropped=\"yes\"" : "") + (a.repair ? " data-repair=\"yes\"" : ""));
  svg.title(e.line + (a.note.empty() ? "" : "  " + a.note));
  draw_line(svg, x1, y1, x2, y2, s, a.dropped ? End::Cross : End::Head);
  if (a.labelled) label(svg, x1, y1, x2, y2, arrow_label(e), s.color);
  svg.close();
}

// ---- the header and the legend -----------------------------------------------------

void legend_arrow(Svg& svg, double& x, double y, const Stroke& s, End end, const std::string& text) {
  draw_line(svg, x, y, x + 34, y, s, end);
  svg.text(x + 44, y + 4, "font-size=\"11\"", text);
  x += 60 + 6.8 * static_cast<double>(text.size());
}

void legend_mark(Svg& svg, double& x, double y, const std::string& shape, const std::string& text) {
  svg.element(shape.substr(0, shape.find(' ')), shape.substr(shape.find(' ') + 1));
  svg.text(x + 12, y + 4, "font-size=\"11\"", text);
  x += 36 + 6.8 * static_cast<double>(text.size());
}

void draw_legend(Svg& svg, double y) {
  svg.open("g", "class=\"legend\"");
  double x = 10;
  legend_arrow(svg, x, y, Stroke{color_of("REQUEST")}, End::Head, "client request, reply");
  legend_arrow(svg, x, y, Stroke{color_of("DATA")}, End::Head, "DATA");
  legend_arrow(svg, x, y, Stroke{color_of("ASSIGN")}, End::Head, "ASSIGN");
  legend_arrow(svg, x, y, Stroke{color_of("NACK")}, End::Head, "NACK");
  legend_arrow(svg, x, y, Stroke{color_of("DATA"), true}, End::Head, "DATA or ASSIGN sent again (repair)");
  x = 10;
  y += 20;
  legend_arrow(svg, x, y, Stroke{color_of("PREPARE")}, End::Head,
               "configuration change: PROBE, PROBEREPLY, PREPARE, STATE, INSTALL");
  legend_arrow(svg, x, y, Stroke{color_of("SNAPSHOT")}, End::Head, "state transfer: SNAPREQ, SNAPSHOT");
  x = 10;
  y += 20;
  legend_arrow(svg, x, y, Stroke{"#555555"}, End::Cross, "dropped (loss, cut, rejected) or never received");
  legend_arrow(svg, x, y, Stroke{"#555555", false, true}, End::Head, "other end outside the window");
  x = 10;
  y += 20;
  legend_mark(svg, x, y, "rect x=\"" + num(x - 4) + "\" y=\"" + num(y - 6) + "\" width=\"14\" height=\"12\" fill=\"#d8f3dc\" stroke=\"#52b788\"",
              "band: a configuration first installed (yellow: non-primary)");
  legend_mark(svg, x, y, "rect x=\"" + num(x - 4) + "\" y=\"" + num(y - 4) + "\" width=\"8\" height=\"8\" fill=\"#52b788\"",
              "a replica's CONFIG line");
  legend_mark(svg, x, y, "circle cx=\"" + num(x) + "\" cy=\"" + num(y) + "\" r=\"3\" fill=\"#000000\"", "DELIVER k=K");
  legend_mark(svg, x, y, "rect x=\"" + num(x - 6) + "\" y=\"" + num(y - 2) + "\" width=\"12\" height=\"4\" fill=\"#1c7ed6\"",
              "SYNC: an fdatasync ended (how long it took)");
  legend_mark(svg, x, y, "polygon points=\"" + num(x - 6) + "," + num(y - 5) + " " + num(x + 6) + "," + num(y - 5) + " " +
                             num(x) + "," + num(y + 5) + "\" fill=\"#2b8a3e\"",
              "a replica started");
  y += 20;
  svg.text(10, y + 4, "font-size=\"11\" fill=\"#444444\"",
           "Time goes down, a row per event: on the left ms since the first trace line, on the right the trace "
           "line (hover over anything for all of it). Keepalives are never traced; STATUS and HEADER records are "
           "drawn only with --all.");
  svg.close();
}

void draw_header(Svg& svg, const Picture& p) {
  const Window& w = p.window;
  const uint64_t last = p.trace.events.back().us;
  char what[300];
  std::snprintf(what, sizeof what, "FTQueue run: %d replicas and the clients; %zu events drawn, +%.3f to +%.3f ms",
                p.layout.replicas, w.drawn, p.options.from_ms,
                p.options.to_ms >= 0 ? std::min(p.options.to_ms, ms_after(p, last)) : ms_after(p, last));
  svg.text(10, 20, "font-size=\"15\" font-weight=\"bold\"", what);
  std::string files;
  for (const std::string& f : p.trace.files) files += (files.empty() ? "" : ", ") + f;
  char when[64];
  std::snprintf(when, sizeof when, "%.6f", static_cast<double>(w.t0) / 1e6);
  svg.text(10, 38, "font-size=\"11\" fill=\"#444444\"",
           shorten("from " + files + " (" + std::to_string(p.trace.lines) + " lines; +0 ms is " + when +
                       " s on the trace's clock)",
                   220));
  double y = 54;
  if (w.drawn < w.in_window) {
    svg.text(10, y, "font-size=\"12\" fill=\"#d00000\"",
             "Only the first " + std::to_string(w.drawn) + " of " + std::to_string(w.in_window) +
                 " events are drawn: --from MS --to MS or --first N for others.");
    y += 16;
  }
  if (p.trace.skipped > 0)
    svg.text(10, y, "font-size=\"12\" fill=\"#d00000\"",
             shorten(std::to_string(p.trace.skipped) + " lines skipped, not trace lines; the first: " +
                         p.trace.first_skipped, 220));
}

constexpr double kLegendTop = 90;

std::string render(const Trace& trace, const Options& o, const std::vector<Arrow>& arrows, const std::vector<Row>& rows,
                   const Window& w) {
  Picture p{trace, o, arrows, rows, w, Layout{}, std::vector<size_t>(trace.events.size(), kNone)};
  p.layout.replicas = trace.replicas;
  p.layout.rows = rows.size();
  p.layout.top = kLegendTop + 4 * 20 + 50;
  for (size_t r = 0; r < rows.size(); ++r)
    if (!rows[r].band) p.row_of[rows[r].event] = r;
  Svg svg;
  svg.open("svg", "xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(p.layout.width()) + "\" height=\"" +
                      num(p.layout.height()) + "\" font-family=\"sans-serif\"");
  svg.element("rect", "x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#ffffff\"");
  draw_header(svg, p);
  draw_legend(svg, kLegendTop);
  for (size_t r = 0; r < rows.size(); ++r)
    if (rows[r].band) draw_band(svg, p, r, rows[r].config);
  draw_lanes(svg, p);
  draw_row_texts(svg, p);
  for (size_t r = 0; r < rows.size(); ++r)
    if (!rows[r].band && trace.events[rows[r].event].dir == Dir::None) draw_mark(svg, p, r, trace.events[rows[r].event]);
  for (const Arrow& a : arrows) draw_arrow(svg, p, a);
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + svg.finish();
}

// ---- text ----------------------------------------------------------------------------

// --text: the same chart, from the same rows and arrows, as plain ASCII for
// a terminal or a README. A column per lane, a row per event; an arrow is
// drawn on the row of its send, across the columns, with its kind on it and
// at each receiver a head (> or <) where it arrived or an x where it did
// not. A receive whose send is drawn has no row of its own; one whose send
// is not (sent before the window, or not traced) is drawn on its own row,
// dotted; a client's request, on the row where a replica received it.
// Rows that only repeat the few just above them are folded (fold_repeats).
constexpr int kTextWidth = 100;   // for 3 replicas; wider for more
constexpr int kTextNoteMin = 30;  // the event's text, right of the lanes: at least
constexpr int kTextNoteWanted = 40;  // ... and as much if the lanes can be narrower
constexpr int kTextLaneMin = 14;  // "<-PROBEREPLY-" fits between two lanes
constexpr int kTextLaneMax = 20;

struct TextLayout {
  int replicas = 0;
  int time_w = 0;  // the time column, and a space
  int lane_w = kTextLaneMin;
  int lane_col(int who) const { return time_w + 4 + lane_w * (who == kClients ? 0 : who + 1); }
  int lanes_right() const { return lane_col(replicas - 1) + 4; }
  int width() const { return std::max(lanes_right() + 1 + kTextNoteMin, kTextWidth); }
};

// "configuration 4.0 primary {0,1}", as the bands say it.
std::string configuration_name(const Configuration& c) {
  return "configuration " + c.id + (c.primary ? " primary {" : " non-primary {") + c.members + "}";
}

// A row of the lanes alone: `lane` on each lane, the time on the left.
std::string text_row(const TextLayout& l, char lane, const std::string& time) {
  std::string row(static_cast<size_t>(l.lanes_right()), ' ');
  const std::string t = shorten(time, static_cast<size_t>(l.time_w - 1));
  row.replace(static_cast<size_t>(l.time_w - 1) - t.size(), t.size(), t);
  for (int who = kClients; who < l.replicas; ++who) row[static_cast<size_t>(l.lane_col(who))] = lane;
  return row;
}

// The row, then the note after it, cut to the chart's width.
std::string text_line(const TextLayout& l, std::string row, const std::string& note) {
  if (note.empty()) return row.substr(0, row.find_last_not_of(' ') + 1) + "\n";
  row.resize(std::max(row.size(), static_cast<size_t>(l.lanes_right())), ' ');
  const size_t room = static_cast<size_t>(std::max(l.width() - static_cast<int>(row.size()) - 1, 8));
  return row + " " + printable(shorten(note, room)) + "\n";
}

// An arrow on a row from lane `from` to each of `to` (receiver, arrived?):
// on each side of the sender a line of `fill` out to the farthest receiver,
// the kind on it next to the sender, and at each receiver > or <, or x.
void text_arrow(std::string& row, const TextLayout& l, int from, const std::map<int, bool>& to, char fill,
                const std::string& kind) {
  const int x0 = l.lane_col(from);
  for (const int side : {-1, 1}) {
    int far = x0;
    for (const auto& [who, arrived] : to)
      if ((l.lane_col(who) - far) * side > 0) far = l.lane_col(who);
    if (far == x0) continue;
    for (int x = x0 + side; x != far; x += side) row[static_cast<size_t>(x)] = fill;
    const int start = side > 0 ? x0 + 3 : x0 - 2 - static_cast<int>(kind.size());
    if (start > 0 && start + static_cast<int>(kind.size()) < static_cast<int>(row.size()))
      row.replace(static_cast<size_t>(start), kind.size(), kind);
    for (const auto& [who, arrived] : to)
      if ((l.lane_col(who) - x0) * side > 0) row[static_cast<size_t>(l.lane_col(who))] = arrived ? (side > 0 ? '>' : '<') : 'x';
  }
}

// What a row says right of the lanes: the record without its kind (on the
// arrow) and without a client's address; a mark's kind and text.
std::string text_note(const Event& e) {
  std::string rest = e.text;
  if (e.dir != Dir::None && !peer_record(e)) {  // a client's: "ADDR ..." (in), "to ADDR ..." (out)
    if (starts_with(rest, "to ")) take_word(rest);
    take_word(rest);
  }
  if (e.kind == "DELIVER") return "DELIVER " + rest;
  if (e.kind == "START") return "started, " + rest;
  return rest + (e.note.empty() ? "" : " " + e.note);
}

// A line of the text chart: an event's row (with its signature, the row
// without its time), or a configuration or a gap line (no signature).
struct TextEntry {
  std::string line;
  std::string signature;
  std::string time;
  std::string kind;
};

// A run of rows each the same as one of the 1 to 4 rows just before the
// run, but for the time (a NACK asked again every millisecond of a
// failover, by two replicas, in either order), is folded into one line
// saying how many.
std::vector<std::string> fold_repeats(const TextLayout& l, const std::vector<TextEntry>& entries) {
  constexpr size_t kMostRows = 4;
  std::vector<std::string> lines;
  for (size_t i = 0; i < entries.size();) {
    size_t best = 0, period = 0;
    std::set<std::string> above;
    for (size_t p = 1; p <= kMostRows && p <= i && !entries[i - p].signature.empty(); ++p) {
      above.insert(entries[i - p].signature);
      size_t n = 0;
      while (i + n < entries.size() && above.count(entries[i + n].signature)) ++n;
      if (n > best) best = n, period = p;
    }
    if (best < 3) {
      lines.push_back(entries[i++].line);
      continue;
    }
    std::string kinds;  // "NACK", "DATA, ASSIGN"
    for (size_t j = i; j < i + best; ++j)
      if ((", " + kinds + ",").find(", " + entries[j].kind + ",") == std::string::npos)
        kinds += (kinds.empty() ? "" : ", ") + entries[j].kind;
    std::string row = text_row(l, ':', "");
    const std::string what = " " + std::to_string(best) + " more " + kinds + " rows like " +
                             (period == 1 ? "the one" : "those") + " above, to " + entries[i + best - 1].time + " ";
    const size_t at = static_cast<size_t>(l.lane_col(kClients) + 3);
    if (at + what.size() > row.size()) row.resize(at + what.size(), ' ');
    row.replace(at, what.size(), what);
    lines.push_back(text_line(l, row, ""));
    i += best;
  }
  return lines;
}

const char* kTextLegend =
    "An arrow per datagram, on the row of its send: -- sent, ~~ sent again (a repair), .. sent before\n"
    "the window; > < arrived, x not. ==== configuration installed; * DELIVER, S SYNC, # CONFIG, ^ start, X crash.\n";

std::string render_text(const Trace& trace, const Options& o, const std::vector<Arrow>& arrows,
                        const std::vector<Row>& rows, const Window& w) {
  std::vector<size_t> row_of(trace.events.size(), kNone);
  uint64_t last = w.t0;
  for (size_t r = 0; r < rows.size(); ++r)
    if (!rows[r].band) {
      row_of[rows[r].event] = r;
      last = std::max(last, trace.events[rows[r].event].us);
    }
  std::map<size_t, std::vector<size_t>> sent;  // a send event -> its arrows
  std::map<size_t, size_t> received;           // a receive event -> its arrow
  for (size_t i = 0; i < arrows.size(); ++i) {
    if (arrows[i].send != kNone) sent[arrows[i].send].push_back(i);
    if (arrows[i].receive != kNone) received[arrows[i].receive] = i;
  }
  auto ms = [&w](uint64_t us) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3f", static_cast<double>(us - w.t0) / 1000.0);
    return std::string(text);
  };
  TextLayout l;
  l.replicas = trace.replicas;
  l.time_w = static_cast<int>(std::max<size_t>(ms(last).size(), 6)) + 1;
  l.lane_w = std::clamp((kTextWidth - kTextNoteWanted - 1 - l.time_w - 8) / std::max(l.replicas, 1), kTextLaneMin,
                        kTextLaneMax);

  std::string out;
  char what[300];
  const uint64_t end = trace.events.back().us;
  std::snprintf(what, sizeof what, "FTQueue run: %d replicas and the clients; %zu events drawn, +%.3f to +%.3f ms\n",
                l.replicas, w.drawn, o.from_ms,
                o.to_ms >= 0 ? std::min(o.to_ms, static_cast<double>(end - w.t0) / 1000.0)
                             : static_cast<double>(end - w.t0) / 1000.0);
  out += what;
  std::string files;
  for (const std::string& f : trace.files) files += (files.empty() ? "" : ", ") + f;
  char when[64];
  std::snprintf(when, sizeof when, "%.6f", static_cast<double>(w.t0) / 1e6);
  out += printable(shorten("+0 ms is " + std::string(when) + " s on the trace's clock; " + std::to_string(trace.lines) +
                               " lines read from " + files, static_cast<size_t>(l.width()))) + "\n";
  if (w.drawn < w.in_window)
    out += "Only the first " + std::to_string(w.drawn) + " of " + std::to_string(w.in_window) +
           " events are drawn: --from MS --to MS or --first N for others.\n";
  if (trace.skipped > 0)
    out += printable(shorten(std::to_string(trace.skipped) + " lines skipped, not trace lines; the first: " +
                                 trace.first_skipped, static_cast<size_t>(l.width()))) + "\n";
  out += kTextLegend;
  out += "\n";

  std::string header(static_cast<size_t>(l.lanes_right()), ' ');
  header.replace(static_cast<size_t>(l.time_w - 3), 2, "ms");
  for (int who = kClients; who < l.replicas; ++who) {
    const std::string name = who == kClients ? "clients" : "r" + std::to_string(who);
    header.replace(static_cast<size_t>(l.lane_col(who)) - name.size() / 2, name.size(), name);
  }
  out += text_line(l, header, "");

  std::vector<TextEntry> entries;
  uint64_t previous = w.t0;
  for (size_t r = 0; r < rows.size(); ++r) {
    if (rows[r].band) {
      const Configuration& c = rows[r].config;
      std::string row = text_row(l, '|', "");
      const size_t from = static_cast<size_t>(l.lane_col(kClients) - 2);
      for (size_t x = from; x < row.size(); ++x) row[x] = '=';
      const std::string name = " " + configuration_name(c) + " ";
      if (from + 2 + name.size() > row.size()) row.resize(from + 2 + name.size(), '=');
      row.replace(from + 2, name.size(), name);
      entries.push_back(TextEntry{
          text_line(l, row, "installed: " + band_meaning(trace, c)),
          "", "", ""});
      continue;
    }
    const Event& e = trace.events[rows[r].event];
    std::string row = text_row(l, '|', "");  // the time comes last: a row's signature is without it
    if (e.dir == Dir::None) {  // a mark on one lane
      const char mark = e.kind == "DELIVER" ? '*' : e.kind == "START" ? '^' : e.kind == "CRASH" ? 'X'
                      : e.kind == "SYNC"  ? 'S' : '#';
      row[static_cast<size_t>(l.lane_col(e.replica))] = mark;
    } else if (sent.count(e.order)) {  // a send: its arrows, to every receiver
      std::map<int, bool> to;
      bool repair = false;
      int from = e.replica;
      for (size_t i : sent[e.order]) {
        to[arrows[i].to] = to[arrows[i].to] || !arrows[i].dropped;
        repair = repair || arrows[i].repair;
        from = arrows[i].from;
      }
      text_arrow(row, l, from, to, repair ? '~' : '-', e.kind);
    } else if (received.count(e.order)) {  // a receive: drawn here only if its send is not
      const Arrow& a = arrows[received[e.order]];
      if (a.send != kNone && row_of[a.send] != kNone) continue;
      text_arrow(row, l, a.from, {{a.to, !a.dropped}}, a.from == kClients ? '-' : '.', e.kind);
    } else {
      continue;
    }
    if (!entries.empty() && e.us > previous + 50'000) entries.push_back(TextEntry{text_line(l, text_row(l, ':', ""), ""), "", "", ""});
    previous = std::max(previous, e.us);
    const std::string signature = text_line(l, row, text_note(e));
    const std::string time = ms(e.us);
    row.replace(static_cast<size_t>(l.time_w - 1) - time.size(), time.size(), time);
    entries.push_back(TextEntry{text_line(l, row, text_note(e)), signature, time, e.kind});
  }
  for (const std::string& line : fold_repeats(l, entries)) out += line;
  return out;
}

bool write_output(const std::string& path, const std::string& chart, std::string& error) {
  if (path.empty()) {
    std::fwrite(chart.data(), 1, chart.size(), stdout);
    return std::fflush(stdout) == 0;
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << chart;
  out.close();
  if (!out) error = "cannot write " + path + ": " + std::strerror(errno);
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  const int status = parse_options(argc, argv, o);
  if (status >= 0) return status;
  Trace trace;
  std::string error;
  if (!read_trace(o, trace, error)) {
    std::fprintf(stderr, "picture: %s\n", error.c_str());
    return kExitTrouble;
  }
  if (trace.skipped > 0)
    std::fprintf(stderr, "picture: skipped %zu lines that are not trace lines (the first: %s)\n", trace.skipped,
                 trace.first_skipped.c_str());
  if (trace.trace_lines == 0) {
    std::fprintf(stderr, "picture: no trace lines in %zu lines read: were the servers started with --trace?\n",
                 trace.lines);
    return kExitTrouble;
  }
  const std::vector<Arrow> arrows = make_arrows(trace.events, o);
  Window window;
  const std::vector<Row> rows = choose_rows(trace, arrows, o, window);
  if (rows.empty()) {
    std::fprintf(stderr, "picture: no event to draw between --from %g and --to %g ms\n", o.from_ms, o.to_ms);
    return kExitTrouble;
  }
  const std::string chart = o.text ? render_text(trace, o, arrows, rows, window) : render(trace, o, arrows, rows, window);
  if (!write_output(o.output, chart, error)) {
    std::fprintf(stderr, "picture: %s\n", error.c_str());
    return kExitTrouble;
  }
  std::fprintf(stderr, "picture: %d replicas, %zu events drawn of %zu in the window (%zu lines read)%s%s\n",
               trace.replicas, window.drawn, window.in_window, trace.lines, o.output.empty() ? "" : "; wrote ",
               o.output.c_str());
  return 0;
}
