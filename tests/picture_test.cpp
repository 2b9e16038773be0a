// picture_test: ./picture (picture.cpp) draws a real run and a simulated
// one, and what it drew is checked by reading the SVG back (issue 24,
// item 3).
//
//   picture_test kill_restart --server BIN --client BIN --picture BIN [--loss P]
//       3 replicas with --trace (the harness: 127.0.0.1, ports the kernel
//       picks, every process stopped by its pid); calls; replica 2 killed
//       (SIGKILL); calls without it; replica 2 restarted; calls; all
//       stopped. The picture of their logs must be well-formed (every tag
//       closed, in order, no attribute twice), with a lane per replica and
//       one for the clients; arrows of the kinds the run must have (a
//       client's request and reply, DATA, ASSIGN, the view change's
//       PREPARE, STATE and INSTALL; with --loss also NACK, and arrows that
//       end in an x); and configuration bands for the kill (a primary
//       configuration {0,1}) and then for the restart ({0,1,2} again).
//       Also: --first N draws at most N events and says so; a window with
//       nothing in it is an error (exit 1); a bad option exits 2.
//   picture_test text --server BIN --client BIN --picture BIN [--loss P]
//       The same run, drawn with --text and read back: a column header per
//       lane (clients r0 r1 r2); DATA and ASSIGN arrows checked against the
//       logs' lines that sent them (each sent once): the kind next to the
//       sender's column, a line across to each receiver's, and there a head
//       pointing away from the sender, or an x (always where the sender's
//       log says it dropped it); with --loss some x's; configuration lines
//       across the lanes for {0,1,2}, the kill ({0,1}) and the restart
//       ({0,1,2}); no line wider than 100 columns. -o, --first and --from
//       apply to --text too.
//   picture_test sim --sim BIN --picture BIN
//       `group_sim_test --seed S --trace-out DIR` draws: well-formed, a lane
//       per member, arrows, bands; lines of junk added to a log are
//       skipped and counted, never fatal; --all adds STATUS records.
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"

using harness::ClientProcess;
using harness::Cluster;
using harness::ClusterConfig;

namespace {

struct Args {
  std::string scenario, server, client, picture, sim;
  double loss = 0;
};

// ---- reading the SVG back ---------------------------------------------------------

struct Element {
  std::string name;
  std::map<std::string, std::string> attrs;
  std::string attr(const std::string& key) const {
    auto it = attrs.find(key);
    return it == attrs.end() ? "" : it->second;
  }
};

bool name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == ':'; }

// Reads the attributes of one tag (`tag` is what lies between < and >,
// without its name). False if a quote is not closed or a name repeats.
bool parse_attrs(const std::string& tag, Element& e, std::string& error) {
  size_t i = 0;
  while (i < tag.size()) {
    while (i < tag.size() && std::isspace(static_cast<unsigned char>(tag[i]))) ++i;
    if (i >= tag.size() || tag[i] == '/' || tag[i] == '?') break;
    const size_t start = i;
    while (i < tag.size() && name_char(tag[i])) ++i;
    const std::string key = tag.substr(start, i - start);
    if (key.empty() || i + 1 >= tag.size() || tag[i] != '=' || tag[i + 1] != '"') {
      error = "<" + e.name + ">: a malformed attribute at '" + tag.substr(start, 20) + "'";
      return false;
    }
    const size_t close = tag.find('"', i + 2);
    if (close == std::string::npos) {
      error = "<" + e.name + ">: a quote not closed";
      return false;
    }
    if (!e.attrs.emplace(key, tag.substr(i + 2, close - i - 2)).second) {
      error = "<" + e.name + ">: attribute " + key + " twice";
      return false;
    }
    i = close + 1;
  }
  return true;
}

// Text between tags: every & starts an entity (&amp; &lt; &gt; &quot;).
bool check_text(const std::string& text, std::string& error) {
  for (size_t at = text.find('&'); at != std::string::npos; at = text.find('&', at + 1)) {
    const size_t semi = text.find(';', at);
    const std::string entity = semi == std::string::npos ? "" : text.substr(at, semi - at + 1);
    if (entity != "&amp;" && entity != "&lt;" && entity != "&gt;" && entity != "&quot;") {
      error = "a bare & in text: '" + text.substr(at, 20) + "'";
      return false;
    }
  }
  return true;
}

// A minimal XML reader: the declaration and comments skipped, every element
// closed in order (or self-closed), one root, attributes well quoted.
bool parse_svg(const std::string& svg, std::vector<Element>& elements, std::string& error) {
  std::vector<std::string> open;
  size_t i = 0, roots = 0;
  while (i < svg.size()) {
    const size_t lt = svg.find('<', i);
    if (!check_text(svg.substr(i, (lt == std::string::npos ? svg.size() : lt) - i), error)) return false;
    if (lt == std::string::npos) break;
    if (svg.compare(lt, 4, "<!--") == 0) {
      const size_t end = svg.find("-->", lt);
      if (end == std::string::npos) return error = "a comment not closed", false;
      i = end + 3;
      continue;
    }
    const size_t gt = svg.find('>', lt);
    if (gt == std::string::npos) return error = "a tag not closed at the end", false;
    std::string tag = svg.substr(lt + 1, gt - lt - 1);
    i = gt + 1;
    if (tag.empty() || tag[0] == '?') continue;  // <?xml ...?>
    if (tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (open.empty() || open.back() != name)
        return error = "</" + name + "> closes <" + (open.empty() ? "nothing" : open.back()) + ">", false;
      open.pop_back();
      continue;
    }
    Element e;
    size_t n = 0;
    while (n < tag.size() && name_char(tag[n])) ++n;
    e.name = tag.substr(0, n);
    if (e.name.empty()) return error = "a tag with no name: <" + tag.substr(0, 20), false;
    if (!parse_attrs(tag.substr(n), e, error)) return false;
    if (open.empty()) ++roots;
    if (tag.back() != '/') open.push_back(e.name);
    elements.push_back(std::move(e));
  }
  if (!open.empty()) return error = "<" + open.back() + "> never closed", false;
  if (roots != 1 || elements.empty() || elements[0].name != "svg") return error = "not one <svg> root", false;
  return true;
}

// What the picture shows, read from the SVG's classes and data attributes.
struct Drawn {
  std::set<std::string> lanes;                // "clients", "r0", ...
  std::map<std::string, size_t> arrow_kinds;  // DATA -> count
  size_t dropped = 0;                         // arrows that end in an x
  size_t peer_arrows = 0, paired = 0;         // between replicas; of them, a send joined to its receive
  std::vector<Element> bands;                 // configuration bands, in order down the page
  std::string text;                           // the SVG itself
};

bool read_picture(const std::string& path, Drawn& d) {
  std::ifstream in(path);
  std::stringstream all;
  all << in.rdbuf();
  d.text = all.str();
  std::vector<Element> elements;
  std::string error;
  CHECK(parse_svg(d.text, elements, error), path + " is not well-formed: " + error);
  if (!error.empty()) return false;
  for (const Element& e : elements) {
    const std::string c = e.attr("class");
    if (c == "lane") d.lanes.insert(e.attr("data-lane"));
    if (c == "arrow") ++d.arrow_kinds[e.attr("data-kind")];
    if (c == "arrow" && e.attr("data-dropped") == "yes") ++d.dropped;
    if (c == "arrow" && e.attr("data-from") != "clients" && e.attr("data-to") != "clients") ++d.peer_arrows;
    if (c == "arrow" && e.attr("data-paired") == "yes") ++d.paired;
    if (c == "config") d.bands.push_back(e);
  }
  return true;
}

std::string kinds_text(const Drawn& d) {
  std::string text;
  for (const auto& [kind, count] : d.arrow_kinds) text += " " + kind + "=" + std::to_string(count);
  return text;
}

void expect_lanes(const Drawn& d, int replicas) {
  std::set<std::string> want = {"clients"};
  for (int r = 0; r < replicas; ++r) want.insert("r" + std::to_string(r));
  std::string got;
  for (const std::string& l : d.lanes) got += " " + l;
  CHECK(d.lanes == want, "lanes: one per replica (" + std::to_string(replicas) + ") and the clients', got" + got);
}

void expect_arrows(const Drawn& d, const std::vector<std::string>& kinds) {
  for (const std::string& k : kinds)
    CHECK(d.arrow_kinds.count(k), "an arrow of kind " + k + "; drawn:" + kinds_text(d));
}

// The first band, after band `after`, of a primary configuration of exactly
// `members`; bands.size() if none.
size_t band_of(const Drawn& d, const std::string& members, size_t after) {
  for (size_t i = after; i < d.bands.size(); ++i)
    if (d.bands[i].attr("data-members") == members && d.bands[i].attr("data-primary") == "yes") return i;
  return d.bands.size();
}

std::string bands_text(const Drawn& d) {
  std::string text;
  for (const Element& b : d.bands)
    text += " " + b.attr("data-config") + (b.attr("data-primary") == "yes" ? " primary {" : " non-primary {") +
            b.attr("data-members") + "}";
  return text;
}

// Runs ./picture; returns its exit status, and its standard error in `errors`.
int draw(const Args& a, const std::vector<std::string>& args, std::string& errors) {
  std::string output;
  return harness::run_program(a.picture, args, "", output, errors, 60000);
}

// ---- kill_restart ---------------------------------------------------------------

void calls(ClientProcess& c, const std::vector<std::string>& lines) {
  for (const std::string& line : lines) {
    const std::string answer = c.call(line);
    CHECK(answer == "ok" || std::isdigit(static_cast<unsigned char>(answer[0])) || answer[0] == '-',
          "'" + line + "' answered '" + answer + "'");
  }
}

// Waits (bounded: 10 s) until replica i's log, from `from` on, holds `text`.
bool wait_for_log(const Cluster& cluster, int i, size_t from, const std::string& text) {
  for (int waited_ms = 0; waited_ms < 10000; waited_ms += 20) {
    const std::string log = cluster.log_text(i);
    if (log.size() > from && log.find(text, from) != std::string::npos) return true;
    ::usleep(20000);
  }
  return false;
}

// The run both kill_restart and text draw: calls, replica 2 killed, calls,
// replica 2 restarted, calls, all stopped (every process by its pid).
void run_kill_restart(const Args& a, uint64_t seed, const std::string& dir) {
  ClusterConfig config{3, a.loss, seed, a.server, dir, {"--trace"}};
  Cluster cluster(config);
  cluster.start_all();
  {
    ClientProcess c(a.client, cluster.servers(), 10);
    calls(c, {"create 1", "push 1 10", "push 1 11", "push 1 12", "pop 1"});
    const size_t at_kill = cluster.log_text(0).size();
    cluster.crash(2);
    CHECK(wait_for_log(cluster, 0, at_kill, " primary {0,1} of 3"),
          std::string("replicas 0 and 1 install a primary configuration {0,1} after the kill"));
    calls(c, {"push 1 20", "push 1 21", "pop 1"});
    const size_t at_restart = cluster.log_text(2).size();
    cluster.start(2);
    CHECK(wait_for_log(cluster, 2, at_restart, " primary {0,1,2} of 3"),
          std::string("replica 2 rejoins a primary configuration {0,1,2} after its restart"));
    calls(c, {"push 1 30", "pop 1", "size 1"});
  }
  CHECK(cluster.stop_all(), "graceful stop");
}

void scenario_kill_restart(const Args& a, uint64_t seed, const std::string& dir) {
  run_kill_restart(a, seed, dir);
  const std::string svg = dir + "/run.svg";
  std::string errors;
  // The whole run: the default window (400 events) can end before the kill
  // when a slow machine traces many NACKs early (seen under the sanitizers).
  CHECK(draw(a, {"--first", "100000", "-o", svg, dir}, errors) == 0, "picture draws the run: " + errors);
  Drawn d;
  if (!read_picture(svg, d)) return;
  expect_lanes(d, 3);
  expect_arrows(d, {"REQUEST", "REPLY", "DATA", "ASSIGN", "PREPARE", "STATE", "INSTALL"});
  if (a.loss > 0) {
    expect_arrows(d, {"NACK"});
    CHECK(d.dropped > 0, std::string("with --loss, some arrows end in an x (dropped)"));
  }
  // Sends are joined to their receives: most of them (a loss of 0.1 on
  // sending and again on receiving drops about a fifth).
  CHECK(d.paired * 2 > d.peer_arrows, std::to_string(d.paired) + " of " + std::to_string(d.peer_arrows) +
                                          " arrows between replicas join a send to its receive: too few");
  const size_t all_three = band_of(d, "0,1,2", 0);
  const size_t without_2 = band_of(d, "0,1", all_three);
  const size_t again = band_of(d, "0,1,2", without_2 + 1);
  CHECK(all_three < d.bands.size(), "a band for a primary configuration {0,1,2}; bands:" + bands_text(d));
  CHECK(without_2 < d.bands.size(), "a band for the kill: primary {0,1}, after {0,1,2}; bands:" + bands_text(d));
  CHECK(again < d.bands.size(), "a band for the restart: primary {0,1,2} after {0,1}; bands:" + bands_text(d));
  std::printf("picture: lanes %zu, arrows%s; %zu of %zu between replicas paired, %zu dropped; bands%s\n",
              d.lanes.size(), kinds_text(d).c_str(), d.paired, d.peer_arrows, d.dropped, bands_text(d).c_str());

  // A window: at most N events, and the picture says it left some out.
  CHECK(draw(a, {"--first", "30", "-o", dir + "/first.svg", dir}, errors) == 0, "picture --first 30: " + errors);
  Drawn first;
  if (read_picture(dir + "/first.svg", first))
    CHECK(first.text.find("Only the first 30 of ") != std::string::npos, std::string("--first 30 says it left events out"));
  CHECK(draw(a, {"--from", "99999999", "-o", dir + "/none.svg", dir}, errors) == 1 &&
            errors.find("no event to draw") != std::string::npos,
        "a window with nothing in it: exit 1, said so: " + errors);
  CHECK(draw(a, {"--first", "zero", dir}, errors) == 2 && errors.find("--first") != std::string::npos,
        "a bad option: exit 2, named: " + errors);
}

// ---- text ------------------------------------------------------------------------

// The text chart (--text), read back: the lane header gives each lane's
// column; a row's drawing is left of the last lane's column + 2, its note
// (the event's text) right of it.
struct TextChart {
  std::vector<std::string> lines;
  std::map<std::string, size_t> column;  // "clients", "r0", ... -> its column
  std::vector<std::string> lane_order;   // as the header names them, left to right
  size_t header = 0;                     // the lane header's line
  size_t note_from = 0;                  // the notes start right of this
};

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Finds the lane header: "ms" and then the lane names, each centred on its
// lane's column.
bool read_text_chart(const std::string& text, TextChart& t) {
  t.lines = split_lines(text);
  for (size_t i = 0; i < t.lines.size(); ++i) {
    std::stringstream words(t.lines[i]);
    std::string first;
    if (!(words >> first) || first != "ms") continue;
    t.header = i;
    const std::string& line = t.lines[i];
    for (size_t at = line.find_first_not_of(' ', line.find("ms") + 2); at != std::string::npos;) {
      const size_t end = std::min(line.find(' ', at), line.size());
      const std::string name = line.substr(at, end - at);
      t.column[name] = at + name.size() / 2;
      t.lane_order.push_back(name);
      at = line.find_first_not_of(' ', end);
    }
    if (t.lane_order.empty()) return false;
    t.note_from = t.column[t.lane_order.back()] + 2;
    return true;
  }
  return false;
}

// A log line that sent a DATA or an ASSIGN: who sent it, and where to.
struct Sent {
  std::string from;
  std::map<std::string, bool> to;  // "r1" -> dropped by the sender (every copy)
  size_t count = 0;                              // lines with this text: 1 if not sent again
};

// Every "TIME rX KIND out TEXT -> rY, rZ (dropped: loss)" line of the
// replicas' logs, keyed by KIND and TEXT's first `words` words.
std::map<std::string, Sent> read_sends(const std::string& dir, const std::string& kind, int words) {
  std::map<std::string, Sent> sends;
  for (int i = 0; i < 3; ++i) {
    std::ifstream in(dir + "/replica-" + std::to_string(i) + ".log");
    for (std::string line; std::getline(in, line);) {
      std::stringstream w(line);
      std::string time, who, k, dir_word;
      if (!(w >> time >> who >> k >> dir_word) || k != kind || dir_word != "out") continue;
      std::string key, word;
      for (int n = 0; n < words && w >> word; ++n) key += (n ? " " : "") + word;
      const size_t arrow = line.rfind(" -> ");
      if (arrow == std::string::npos) continue;
      Sent& s = sends[kind + " " + key];
      ++s.count;
      s.from = who;
      s.to.clear();  // (its only line, if it is used)
      std::stringstream list(line.substr(arrow + 4));
      for (std::string item; std::getline(list, item, ',');) {
        const size_t start = item.find_first_not_of(' ');
        if (start == std::string::npos) continue;
        item.erase(0, start);
        const std::string to = item.substr(0, item.find(' '));
        const bool dropped = item.find("(dropped") != std::string::npos;
        s.to[to] = s.to.count(to) ? s.to[to] && dropped : dropped;
      }
    }
  }
  return sends;
}

// Checks one arrow row against the log line it was drawn from: the kind on
// it next to the sender's lane, a line across to each receiver, and at each
// receiver a head pointing away from the sender (or an x: not received;
// always an x where the sender's log says it dropped it). True if every
// receiver got a head.
bool check_arrow_row(const TextChart& t, const std::string& row, const std::string& kind, const Sent& s,
                     const std::string& what) {
  const auto col = [&t](const std::string& lane) { return t.column.at(lane); };
  const size_t x0 = col(s.from);
  bool all_heads = true, ok = row.size() > t.note_from;
  std::set<size_t> receivers;
  for (const auto& [to, dropped] : s.to) {
    ok = ok && t.column.count(to);
    if (!ok) break;
    const size_t x = col(to);
    receivers.insert(x);
    const char head = x > x0 ? '>' : '<';
    ok = ok && (row[x] == head || row[x] == 'x') && (!dropped || row[x] == 'x');
    all_heads = all_heads && row[x] == head;
    for (size_t between = std::min(x, x0) + 1; ok && between < std::max(x, x0); ++between)
      ok = row[between] != ' ' && row[between] != '|';
  }
  ok = ok && row[x0] == '|';
  for (const auto& [lane, x] : t.column)  // no head on a lane that received nothing
    ok = ok && (receivers.count(x) || x == x0 || row[x] == '|' || row[x] == '-' || row[x] == '~');
  // The kind next to the sender, on the side of a receiver.
  const size_t right = row.find(kind, x0), left = row.rfind(kind, x0);
  ok = ok && ((right != std::string::npos && right <= x0 + 4) ||
              (left != std::string::npos && left + kind.size() + 3 >= x0 && left < x0));
  std::string sent = s.from + " ->";
  for (const auto& [to, dropped] : s.to) sent += " " + to + (dropped ? " (dropped by the sender)" : "");
  CHECK(ok, what + ": drawn as\n" + row + "\n  but the log says " + sent);
  return ok && all_heads;
}

void scenario_text(const Args& a, uint64_t seed, const std::string& dir) {
  run_kill_restart(a, seed, dir);
  std::string output, errors;
  CHECK(harness::run_program(a.picture, {"--text", "--first", "100000", dir}, "", output, errors, 60000) == 0,
        "picture --text draws the run: " + errors);
  TextChart t;
  if (!read_text_chart(output, t)) {
    CHECK(false, "picture --text has a lane header (ms clients r0 r1 r2):\n" + output.substr(0, 2000));
    return;
  }
  std::string lanes;
  for (const std::string& lane : t.lane_order) lanes += " " + lane;
  CHECK(lanes == " clients r0 r1 r2", "one column header per lane, left to right: got" + lanes);
  if (lanes != " clients r0 r1 r2") return;
  std::ofstream(dir + "/run.txt") << output;  // kept, with the logs, if a check fails

  const std::map<std::string, Sent> data = read_sends(dir, "DATA", 1), assign = read_sends(dir, "ASSIGN", 2);
  size_t checked[2] = {0, 0}, with_heads[2] = {0, 0}, arrows_x = 0, lines_over = 0;
  std::vector<std::string> configurations;  // "1.0 primary {0,1,2}", in order down the chart
  for (size_t i = t.header + 1; i < t.lines.size(); ++i) {
    const std::string& row = t.lines[i];
    lines_over += row.size() > 100;
    const size_t band = row.find("== configuration ");
    if (band != std::string::npos && band < t.note_from) {
      std::stringstream w(row.substr(band + 17));
      std::string id, flag, members;
      w >> id >> flag >> members;
      configurations.push_back(id + " " + flag + " " + members);
      continue;
    }
    if (row.size() <= t.note_from) continue;
    const size_t lanes_from = t.column.at("clients") - 2;  // left of it: the time
    const std::string drawing = row.substr(lanes_from, t.note_from - lanes_from);
    if (drawing.find('x') != std::string::npos) ++arrows_x;
    std::stringstream note(row.substr(t.note_from));
    std::string w1, w2;
    note >> w1 >> w2;
    for (int k = 0; k < 2; ++k) {
      const std::string kind = k == 0 ? "DATA" : "ASSIGN";
      const size_t at = drawing.find(kind);
      if (at == std::string::npos || drawing.find_first_of("~.") != std::string::npos) continue;  // a repair, or its send not drawn
      const auto& sends = k == 0 ? data : assign;
      const auto found = sends.find(kind + " " + (k == 0 ? w1 : w1 + " " + w2));
      if (found == sends.end() || found->second.count != 1) continue;  // sent more than once: ambiguous
      ++checked[k];
      with_heads[k] += check_arrow_row(t, row, kind, found->second, kind + " " + w1 + (k ? " " + w2 : ""));
    }
  }
  CHECK(checked[0] > 0 && with_heads[0] > 0, "a DATA arrow from its sender's column with a head at each receiver's; checked " +
                                                 std::to_string(checked[0]));
  CHECK(checked[1] > 0 && with_heads[1] > 0, "an ASSIGN arrow from its sender's column with a head at each receiver's; checked " +
                                                 std::to_string(checked[1]));
  if (a.loss > 0) CHECK(arrows_x > 0, std::string("with --loss, some arrows end in an x"));
  CHECK(lines_over == 0, std::to_string(lines_over) + " lines wider than 100 columns for 3 replicas");
  std::string configs;
  for (const std::string& c : configurations) configs += " [" + c + "]";
  size_t step = 0;  // {0,1,2}, then {0,1} (the kill), then {0,1,2} again (the restart)
  for (const std::string& c : configurations)
    if (step < 3 && c.find(" primary ") != std::string::npos &&
        c.substr(c.find('{')) == (step == 1 ? "{0,1}" : "{0,1,2}"))
      ++step;
  CHECK(step == 3, "configuration lines across the lanes: primary {0,1,2}, then {0,1} after the kill, then {0,1,2} "
                   "after the restart; got" + configs);
  std::printf("picture --text: lanes%s; %zu DATA and %zu ASSIGN arrows checked against the logs (%zu and %zu "
              "with every head), %zu rows with an x; configurations%s\n",
              lanes.c_str(), checked[0], checked[1], with_heads[0], with_heads[1], arrows_x, configs.c_str());

  // The options apply: -o, --first (says what it left out), --from/--to.
  CHECK(harness::run_program(a.picture, {"--text", "--first", "30", "-o", dir + "/first.txt", dir}, "", output, errors,
                             60000) == 0, "picture --text --first 30 -o FILE: " + errors);
  std::ifstream in(dir + "/first.txt");
  std::stringstream first;
  first << in.rdbuf();
  CHECK(first.str().find("Only the first 30 of ") != std::string::npos,
        "--text --first 30 -o FILE writes the chart, saying it left events out:\n" + first.str().substr(0, 500));
  CHECK(harness::run_program(a.picture, {"--text", "--from", "99999999", dir}, "", output, errors, 60000) == 1 &&
            errors.find("no event to draw") != std::string::npos,
        "--text, a window with nothing in it: exit 1, said so: " + errors);
}

// The reader itself must catch what a broken picture would hold.
void check_reader() {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"<svg><g></svg>", "misnested"},
      {"<svg><line x=\"1\" x=\"2\"/></svg>", "an attribute twice"},
      {"<svg><text>a & b</text></svg>", "a bare &"},
      {"<svg><line x=\"1/></svg>", "an open quote"},
      {"<svg></svg><svg></svg>", "two roots"},
      {"<svg><g>", "never closed"},
  };
  for (const auto& [svg, what] : bad) {
    std::vector<Element> elements;
    std::string error;
    CHECK(!parse_svg(svg, elements, error), "the SVG reader takes " + what + ": " + svg);
  }
  std::vector<Element> elements;
  std::string error;
  CHECK(parse_svg("<?xml version=\"1.0\"?>\n<svg a=\"1\"><!-- c --><g><title>x &amp; y</title></g><line/></svg>\n",
                  elements, error) && elements.size() == 4,
        "the SVG reader takes a good one: " + error);
}

// ---- sim ------------------------------------------------------------------------

// Lines that are not trace lines, each of them to be skipped and counted.
const std::vector<std::string> kJunk = {
    "garbage",
    "12.5 rX DATA out (0,c1.0,1) batch -> r1",        // no such replica
    "1.000001 r0 DATA out (0,c1.0,1) batch -> r999",  // nor here
    "1.000001 r0 DATA out (0,c1.0,1) batch",          // a send to no one
    "1.000001 r0 DATA in from r1",                    // a peer record from no peer
    "1.000001 r0 REPLY out -> r1",                    // a reply to a replica
    "99999999999999999.000001 r0 CONFIG too late",   // a time past any clock
    "1.000001 r0 data in from r1: lower case",
    "\x01\x02\xff\xfe binary",
};

void scenario_sim(const Args& a, const std::string& dir) {
  check_reader();
  const uint64_t seed = 3;
  const std::string trace_dir = dir + "/seed";
  std::string output, errors;
  const int status = harness::run_program(a.sim, {"--seed", std::to_string(seed), "--trace-out", trace_dir}, "",
                                          output, errors, 120000);
  CHECK(status == 0, "group_sim_test --seed 3 --trace-out passes: " + output + errors);
  int members = 0;
  while (::access((trace_dir + "/replica-" + std::to_string(members) + ".log").c_str(), F_OK) == 0) ++members;
  CHECK(members >= 2, "group_sim_test --trace-out wrote a log per member, got " + std::to_string(members));
  {
    std::ofstream junk(trace_dir + "/replica-0.log", std::ios::app);
    for (const std::string& line : kJunk) junk << line << "\n";
  }
  const std::string svg = dir + "/seed.svg";
  CHECK(draw(a, {"--first", "2000", "-o", svg, trace_dir}, errors) == 0, "picture draws the seed: " + errors);
  const std::string skipped = "skipped " + std::to_string(kJunk.size()) + " lines";
  CHECK(errors.find(skipped) != std::string::npos, "picture says it " + skipped + ": " + errors);
  Drawn d;
  if (!read_picture(svg, d)) return;
  expect_lanes(d, members);
  expect_arrows(d, {"REQUEST", "REPLY", "DATA", "ASSIGN", "PREPARE", "STATE", "INSTALL"});
  CHECK(!d.bands.empty(), std::string("the seed's configurations are marked"));
  CHECK(d.paired * 2 > d.peer_arrows, std::to_string(d.paired) + " of " + std::to_string(d.peer_arrows) +
                                          " arrows between members join a send to its receive: too few");
  CHECK(d.text.find(std::to_string(kJunk.size()) + " lines skipped") != std::string::npos,
        std::string("the picture says how many lines it skipped"));
  CHECK(!d.arrow_kinds.count("STATUS"), std::string("STATUS records only with --all"));
  CHECK(draw(a, {"--all", "--first", "2000", "-o", dir + "/all.svg", trace_dir}, errors) == 0, "picture --all: " + errors);
  Drawn all;
  if (read_picture(dir + "/all.svg", all)) expect_arrows(all, {"STATUS"});
  // Windows in the middle of the run: arrows with an end outside them,
  // dotted (some of them repairs, dashed too: in seed 3's run, with the
  // protocol as it is, --first 100, 200 and 700 cut through such arrows).
  for (const char* first : {"100", "200", "350", "700"}) {
    CHECK(draw(a, {"--from", "300", "--first", first, "-o", dir + "/window.svg", trace_dir}, errors) == 0,
          std::string("picture --from 300 --first ") + first + ": " + errors);
    Drawn window;
    if (read_picture(dir + "/window.svg", window)) expect_lanes(window, members);
  }
  // --text draws the same seed, junk and all, with a column per member.
  CHECK(harness::run_program(a.picture, {"--text", "--first", "2000", trace_dir}, "", output, errors, 60000) == 0,
        "picture --text draws the seed: " + errors);
  TextChart t;
  std::string lanes, want = " clients";
  for (int m = 0; m < members; ++m) want += " r" + std::to_string(m);
  if (read_text_chart(output, t))
    for (const std::string& lane : t.lane_order) lanes += " " + lane;
  CHECK(lanes == want, "picture --text of the seed: a column header per lane," + want + "; got" + lanes);
  CHECK(output.find(std::to_string(kJunk.size()) + " lines skipped") != std::string::npos,
        std::string("the text chart says how many lines it skipped"));
  std::printf("picture of seed %llu: %d lanes and the clients', arrows%s, %zu bands\n",
              static_cast<unsigned long long>(seed), members, kinds_text(d).c_str(), d.bands.size());
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    const bool value = i + 1 < argc;
    if (s == "--server" && value) a.server = argv[++i];
    else if (s == "--client" && value) a.client = argv[++i];
    else if (s == "--picture" && value) a.picture = argv[++i];
    else if (s == "--sim" && value) a.sim = argv[++i];
    else if (s == "--loss" && value) a.loss = std::atof(argv[++i]);
    else if (a.scenario.empty() && s[0] != '-') a.scenario = s;
    else {
      std::fprintf(stderr,
                   "usage: picture_test kill_restart|text --server BIN --client BIN --picture BIN [--loss P]\n"
                   "       picture_test sim --sim BIN --picture BIN\n");
      return 2;
    }
  }
  const bool real = a.scenario == "kill_restart" || a.scenario == "text";
  if (a.picture.empty() || (real && (a.server.empty() || a.client.empty())) ||
      (a.scenario == "sim" && a.sim.empty()) || (!real && a.scenario != "sim")) {
    std::fprintf(stderr,
                 "picture_test: kill_restart and text need --server, --client, --picture; sim needs --sim, --picture\n");
    return 2;
  }
  const uint64_t seed = harness::test_seed(("picture " + a.scenario).c_str());
  const std::string dir = harness::make_temp_dir("picture-" + a.scenario);
  if (a.scenario == "kill_restart") scenario_kill_restart(a, seed, dir);
  else if (a.scenario == "text") scenario_text(a, seed, dir);
  else scenario_sim(a, dir);
  if (harness::g_failures == 0) {
    harness::remove_tree(dir);
    std::printf("picture %s: passed\n", a.scenario.c_str());
    return 0;
  }
  std::printf("picture %s: %d checks failed; logs and pictures kept in %s\n", a.scenario.c_str(), harness::g_failures,
              dir.c_str());
  return 1;
}
