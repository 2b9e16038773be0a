// server.cpp: one FTQueue replica's I/O shell. It owns everything with a
// side effect: the UDP socket and poll(), the clock, the data directory,
// signals, the loss and cut test switches, the trace and the options. What
// the replica decides (admission, batching, ordering, membership, which
// answer goes to whom, when the log must be synced) is the Replica's
// (replica.hpp), which the simulator runs too; the shell decides nothing
// the simulator cannot see.
//
// One loop (Server::step): wait for a datagram or the replica's next
// deadline; hand it the datagrams that came (client requests, peer
// datagrams) and the time; then carry out its hand-offs by the one rule
// (carry_out, replica.hpp): records to the log, datagrams, replies, syncs.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <csignal>
#include <ctime>
#include <memory>
#include <optional>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ftqueue.hpp"
#include "membership.hpp"
#include "multicast.hpp"
#include "net.hpp"
#include "replica.hpp"
#include "wire.hpp"

namespace {

const char* kUsage =
    "usage: server --id I --peers HOST:PORT,HOST:PORT,... [options]\n"
    "\n"
    "Runs replica I of an FTQueue cluster. --peers lists all n members in id\n"
    "order; this replica binds the address at index I and serves peers and\n"
    "clients on that one UDP port.\n"
    "\n"
    "  --id I           this replica's index in --peers (0-based)\n"
    "  --peers LIST     every member, comma-separated, in id order\n"
    "  --data DIR       data directory (default data/replica-I)\n"
    "  --loss P         drop each datagram sent or received with probability P\n"
    "                   (0 <= P < 1; for testing loss recovery; default 0)\n"
    "  --seed S         seed for --loss and for slow links' drops (--cut-file),\n"
    "                   so drops repeat (default: random)\n"
    "  --fsync          claim to hold a record only once it is on disk, so\n"
    "                   an acknowledged operation survives a power cut (one\n"
    "                   fdatasync per pass: group commit; default: written\n"
    "                   to the OS, survives a server crash but not a power cut)\n"
    "  --partitionable  every side of a partition serves: a side without a\n"
    "                   majority answers through its lowest member, marked\n"
    "                   tentative, and its work is merged into the order when\n"
    "                   it meets a majority (README; the same at every replica,\n"
    "                   and for the data directory's whole life)\n"
    "  --socket-fd FD   use the already-bound UDP socket FD instead of binding\n"
    "                   (for test harnesses that reserve ports)\n"
    "  --cut-file FILE  test switch: cut or slow links to other members, as\n"
    "                   listed in FILE (read at start and again on SIGHUP;\n"
    "                   entries separated by spaces, commas or newlines, '#'\n"
    "                   starts a comment): 'ID' drops every datagram to and\n"
    "                   from member ID, 'in:ID' only those from it, 'out:ID'\n"
    "                   only those to it. 'slow:ID:MS[:PCT]' makes the link to\n"
    "                   member ID slow, each way: every datagram to it and\n"
    "                   from it is held MS milliseconds (0-10000) and PCT\n"
    "                   percent of them dropped (0 <= PCT < 100, default 0;\n"
    "                   drawn with --seed). This end models the whole link:\n"
    "                   list a slow link in one end's file only ('slow:2:20:5'\n"
    "                   in every file but member 2's: member 2 is 20 ms and 5%\n"
    "                   loss away each way; at both ends the delays add up).\n"
    "                   Only peer datagrams are cut or slowed, not clients'.\n"
    "                   Tests and run_cluster.sh use it to make partitions; a\n"
    "                   missing or empty file cuts nothing, and a file with a\n"
    "                   bad entry changes nothing (the error is logged)\n"
    "  -v, --verbose    log protocol counters to stderr, one line a second\n"
    "                   (the words: 'Reading the trace' below)\n"
    "  --trace          log one line per protocol event to stderr: requests\n"
    "                   and replies, every record of the peer datagrams sent\n"
    "                   and received but keepalives (dropped ones marked),\n"
    "                   deliveries and configuration changes ('Reading the\n"
    "                   trace' below; ./picture draws it)\n"
    "  -vv              both -v and --trace\n"
    "  --suspect-ms MS  a member silent this long is suspected and a new\n"
    "                   configuration forms without it (default 300; lower\n"
    "                   fails over sooner, but a busy or lossy member is\n"
    "                   suspected more often)\n"
    "  --keepalive-ms MS  period of the keepalive every member sends to all\n"
    "                   (default 20; keep it well below --suspect-ms)\n"
    "  --resign-lag-ms MS  a member whose claims reach a majority this late\n"
    "                   (on average) leaves the sequencer rotation until they\n"
    "                   arrive in half of it, so that one slow member does\n"
    "                   not pace the rest (default 25: above what loss alone\n"
    "                   costs a member's claims; 0: every member keeps\n"
    "                   its slots)\n"
    "  --spin-us US     after each datagram, poll without sleeping for up to\n"
    "                   US microseconds while the load is light (default 100;\n"
    "                   0: always sleep). Halves one client's latency on a\n"
    "                   machine whose idle CPUs are slow to wake, for CPU time\n"
    "                   (README, 'What limits each figure')\n"
    "  --trust-log      vouch for this replica's log after an OS crash or power\n"
    "                   cut without --fsync, when a majority lost theirs and the\n"
    "                   cluster refuses (README, 'Durability'); what the log lost\n"
    "                   may be lost for good\n"
    "  --boot-id ID     test switch: take ID as the OS's boot id (default: from\n"
    "                   /proc/sys/kernel/random/boot_id); another ID than the\n"
    "                   last run's acts as an OS restart\n"
    "  -h, --help       show this help\n"
    "\n"
    "SIGTERM or SIGINT stops it gracefully: it finishes what is in flight\n"
    "(at most 3 s), writes DIR/snapshot.txt and exits; a second signal cuts\n"
    "the drain short.\n"
    "\n"
    "DIR belongs to the member list it was first used with (DIR/members): the\n"
    "server refuses another --peers or --id there. Changing the members, n\n"
    "included, makes a new cluster: give it new data directories.\n"
    "\n"
    "Exit status:\n"
    "  0  stopped after a complete drain (every member confirmed)\n"
    "  1  an error: cannot bind its address, cannot use DIR, ...\n"
    "  2  a bad option\n"
    "  3  stopped and DIR/snapshot.txt written, but the drain did not complete\n"
    "     (some peer did not confirm within 3 s, or a second signal)\n"
    "  4  DIR belongs to another member list; nothing in it was changed\n"
    "\n"
    "Reading the trace (-v, --trace):\n"
    "  TIME rI EVENT in|out WHAT: replica I traced EVENT, received (in) or\n"
    "     sent (out). TIME is the monotonic clock in seconds with microseconds\n"
    "     (2393.904123), one clock for every replica on a machine, so\n"
    "     'sort -s -n replica-*.log' merges their logs in true order (a send\n"
    "     is timed as it leaves, a receive once taken in). With -v or --trace\n"
    "     every other log line starts with TIME too.\n"
    "  REQUEST in   a client's request: from ADDR, the operation, (client\n"
    "     9f2c.., #4): the first 4 hex digits of the client's id and its\n"
    "     request number, 'try 2' for a retry, then what this replica did\n"
    "  REPLY out    the answer, to ADDR; ok value=V, or why not\n"
    "  DATA         a multicast message: its name (O,cE.R,S) is origin\n"
    "     replica O, configuration E.R it was sent in, O's S-th message\n"
    "     there; 'batch of N ops' of clients' operations\n"
    "  ASSIGN       k=K (O,cE.R,S): the sequencer gives that message place K\n"
    "     in the one total order (k: the global sequence number)\n"
    "  NACK         asks for missing assignments (k=A..B) or messages\n"
    "  STATUS       a peer's marks ('heartbeat:' asks for an answer); from or\n"
    "     to an ADDR: a client's status request and its answer\n"
    "  HEADER       a peer datagram with no record, only the marks: sent S\n"
    "     (its highest S), assigned A (knows every k up to A; 'and up to'\n"
    "     the highest it holds), held H (its log holds 1..H), delivered D,\n"
    "     closed (it is leaving)\n"
    "  DELIVER      k=K delivered here ('this replica replies': its client's)\n"
    "  CONFIG       a configuration installed: E.R (epoch, the replica that\n"
    "     formed it), primary (a majority: it serves) or non-primary, its\n"
    "     members {0,1,2} of n; 'transitional': the members that move on\n"
    "     together; also state transfers and catching up\n"
    "  PROBE, PROBEREPLY  would you join these members? yes or no (tag E.R)\n"
    "  PREPARE, STATE, INSTALL  a view change: promise E.R and send your\n"
    "     state; what I hold; install it (order kept up to the cut k)\n"
    "  SNAPREQ, SNAPSHOT  state transfer: a snapshot asked for, and a chunk\n"
    "  SYNC         an fdatasync of the log (--fsync, or a promise): how long\n"
    "     the loop waited in it, and when it began\n"
    "  SIDECOPY, SIDEACK  --partitionable: a side's leader copies its effects\n"
    "     (tentative answers) to the side's members; a member has them synced;\n"
    "     when sides meet without a majority, members bring theirs to the leader\n"
    "  MERGE        a DATA whose payload is part of a side's effects, merged\n"
    "     into the committed state where the order delivers it ('merged')\n"
    "  JUNK         a datagram that is neither a request nor a peer's\n"
    "  -> r0, r2    where a record went; 'r2 x2': two copies to r2 in one\n"
    "     round of sends (lossy mode sends each ordering packet twice while\n"
    "     it repairs loss; a membership message may be sent again at once)\n"
    "  (dropped: loss), (dropped: cut)  thrown away by --loss or --cut-file;\n"
    "     (dropped) a stranger's junk; (send failed), (rejected: malformed or\n"
    "     implausible), (dropped: stale, from an earlier life), (dropped:\n"
    "     another configuration's)\n"
    "  ..., ... (12 in all)  a long list shortened\n"
    "  -v, once a second: config E.R primary {members} hears H (members heard\n"
    "     lately, itself included) | delivered, held, stable (every member\n"
    "     delivered it) up to k; buffered messages, waiting requests |\n"
    "     requests, busy and minority refusals | view-changes started,\n"
    "     installs | assigned, nack-rounds, nacked (items asked for),\n"
    "     retransmitted, doubled (lossy mode's second copies), heartbeats |\n"
    "     dropped datagrams by cause | log writes, syncs | spins, with a\n"
    "     datagram (--spin-us)\n";

// Exit statuses (listed in kUsage and the README).
constexpr int kExitError = 1;
constexpr int kExitDrainTimedOut = 3;
constexpr int kExitOtherMembers = 4;

constexpr uint64_t kDrainTimeoutUs = 3'000'000;
constexpr uint64_t kLingerQuietUs = 50'000;  // see Server::finished
constexpr int kMaxDatagramsPerWake = 512;

struct Options {
  int id = -1;
  std::vector<net::Endpoint> peers;
  std::string data_dir;
  double loss = 0;
  uint64_t seed = 0;
  bool seed_given = false;
  bool fsync = false;
  bool partitionable = false;
  bool verbose = false;
  bool trace = false;  // --trace, -vv: one line per protocol event
  int socket_fd = -1;
  std::string cut_file;  // test switch, see --help
  uint64_t suspect_ms = 300;
  uint64_t keepalive_ms = 20;
  uint64_t resign_lag_ms = 25;
  uint64_t spin_us = 100;  // net::IdleSpin's window
  bool trust_log = false;  // --trust-log: the operator vouches for the log
  std::string boot_id;     // --boot-id (test switch): the OS's, else
};

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "server: %s\n(run 'server --help' for usage)\n", msg.c_str());
  return 2;
}

// Returns -1 when parsed, else the exit status (0 for --help, 2 for errors).
int parse_options(int argc, char** argv, Options& o) {
  std::string peers;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    size_t eq = arg.find('=');
    bool inline_value = arg.rfind("--", 0) == 0 && eq != std::string::npos;
    if (inline_value) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto need = [&](std::string& out) {
      if (inline_value) {
        out = value;
        return true;
      }
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    std::string v;
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "-v" || arg == "--verbose") {
      o.verbose = true;
    } else if (arg == "--trace") {
      o.trace = true;
    } else if (arg == "-vv") {
      o.verbose = o.trace = true;
    } else if (arg == "--fsync") {
      o.fsync = true;
    } else if (arg == "--partitionable") {
      o.partitionable = true;
    } else if (arg == "--trust-log") {
      o.trust_log = true;
    } else if (arg == "--boot-id") {
      if (!need(o.boot_id) || o.boot_id.empty() || o.boot_id.find_first_of(" \n") != std::string::npos)
        return usage_error("--boot-id needs an id without spaces");
    } else if (arg == "--id") {
      int32_t id;
      if (!need(v) || !net::parse_i32(v, id) || id < 0) return usage_error("--id needs a member index (0, 1, ...)");
      o.id = id;
    } else if (arg == "--peers") {
      if (!need(peers)) return usage_error("--peers needs HOST:PORT,HOST:PORT,...");
    } else if (arg == "--data") {
      if (!need(o.data_dir) || o.data_dir.empty()) return usage_error("--data needs a directory");
    } else if (arg == "--loss") {
      if (!need(v) || !net::parse_probability(v, o.loss))
        return usage_error("--loss needs a probability P with 0 <= P < 1, got '" + v + "'");
    } else if (arg == "--seed") {
      if (!need(v) || !net::parse_u64(v, o.seed)) return usage_error("--seed needs a non-negative integer");
      o.seed_given = true;
    } else if (arg == "--cut-file") {
      if (!need(o.cut_file) || o.cut_file.empty()) return usage_error("--cut-file needs a file name");
    } else if (arg == "--suspect-ms" || arg == "--keepalive-ms") {
      uint64_t ms;
      if (!need(v) || !net::parse_u64(v, ms) || ms < 1 || ms > 60'000)
        return usage_error(arg + " needs milliseconds between 1 and 60000, got '" + v + "'");
      (arg == "--suspect-ms" ? o.suspect_ms : o.keepalive_ms) = ms;
    } else if (arg == "--resign-lag-ms") {
      if (!need(v) || !net::parse_u64(v, o.resign_lag_ms) || o.resign_lag_ms > 60'000)
        return usage_error("--resign-lag-ms needs milliseconds between 0 and 60000, got '" + v + "'");
    } else if (arg == "--spin-us") {
      if (!need(v) || !net::parse_u64(v, o.spin_us) || o.spin_us > 10'000)
        return usage_error("--spin-us needs microseconds between 0 and 10000, got '" + v + "'");
    } else if (arg == "--socket-fd") {
      int32_t fd;
      if (!need(v) || !net::parse_i32(v, fd) || fd < 0) return usage_error("--socket-fd needs a file descriptor");
      o.socket_fd = fd;
    } else {
      return usage_error("unknown option '" + arg + "'");
    }
  }
  if (o.id < 0) return usage_error("--id is required");
  if (peers.empty()) return usage_error("--peers is required");
  std::string error;
  if (!net::parse_endpoints(peers, o.peers, error)) return usage_error("--peers: " + error);
  if (static_cast<size_t>(o.id) >= o.peers.size())
    return usage_error("--id " + std::to_string(o.id) + " is not an index into --peers (" +
                       std::to_string(o.peers.size()) + " members)");
  if (o.peers.size() > 64) return usage_error("at most 64 members are supported");
  for (size_t i = 0; i < o.peers.size(); ++i)
    for (size_t j = i + 1; j < o.peers.size(); ++j)
      if (net::same_address(o.peers[i].addr, o.peers[j].addr))
        return usage_error("--peers lists " + o.peers[i].text + " twice");
  if (o.keepalive_ms * 2 > o.suspect_ms)
    return usage_error("--keepalive-ms must be at most half of --suspect-ms (a lost keepalive or two must not "
                       "make a member suspected)");
  if (o.data_dir.empty()) o.data_dir = "data/replica-" + std::to_string(o.id);
  return -1;
}

wire::ClientAddress to_client_address(const sockaddr_in& a) {
  return wire::ClientAddress{ntohl(a.sin_addr.s_addr), ntohs(a.sin_port)};
}

sockaddr_in to_sockaddr(const wire::ClientAddress& a) {
  sockaddr_in s{};
  s.sin_family = AF_INET;
  s.sin_addr.s_addr = htonl(a.ipv4);
  s.sin_port = htons(a.port);
  return s;
}

int g_signal_pipe[2] = {-1, -1};

// The handler only says which signal came; the loop acts on it.
void on_signal(int sig) {
  char c = static_cast<char>(sig);
  ssize_t ignored = ::write(g_signal_pipe[1], &c, 1);
  (void)ignored;
}

// The --cut-file test switch: which members' datagrams this replica drops,
// coming in and going out, and which links are slow. Only peer traffic is
// cut or slowed; clients still reach it at full speed.
//
// A slow link, 'slow:ID:MS[:PCT]', models a link with a fixed one-way
// delay and independent loss in each direction (as `tc qdisc ... netem
// delay 20ms loss 5%` on member ID's interface, without root): what this
// replica sends to ID and what it receives from ID are each held MS
// milliseconds, and each dropped with probability PCT/100, drawn from the
// --loss generator (seeded by --seed, so the drops repeat). Both directions
// are modelled at this end, the incoming side by holding what was read and
// handing it to the replica when due, so that the entry in one file makes
// the whole link slow and the slow member itself needs no entry (member 2
// slow: 'slow:2:20:5' in every file but member 2's). Delaying only the
// outgoing side at both ends would model the same link but needs entries
// at both ends, and would make a one-sided entry a one-way delay; here an
// entry at both ends adds up (2 x MS each way), as two netem queues would.
// Nothing blocks: held datagrams wait in Server::held_ by due time, and the
// loop's timeout comes down to the first due time (Server::step).
struct SlowLink {
  bool on = false;
  uint64_t delay_us = 0;
  double drop = 0;       // probability, 0 <= drop < 1
  std::string text;      // as the entry reads, normalized: slow:ID:MS[:PCT]
};

constexpr uint64_t kMaxSlowMs = 10'000;  // the drain waits for held datagrams

struct LinkCuts {
  std::vector<bool> in, out;  // by member id
  std::vector<SlowLink> slow;  // by member id
  explicit LinkCuts(size_t members = 0) : in(members), out(members), slow(members) {}
  std::string describe() const {
    std::string text;
    for (size_t m = 0; m < in.size(); ++m) {
      if (in[m] && out[m]) text += " " + std::to_string(m);
      else if (in[m]) text += " in:" + std::to_string(m);
      else if (out[m]) text += " out:" + std::to_string(m);
    }
    for (const SlowLink& s : slow)
      if (s.on) text += " " + s.text;
    return text.empty() ? "none" : text.substr(1);
  }
};

// 'slow:ID:MS[:PCT]' (the text after "slow:"); false if malformed.
bool parse_slow(const std::string& spec, size_t members, size_t self, int32_t& id, SlowLink& link) {
  std::vector<std::string> parts;
  for (size_t pos = 0;;) {
    size_t colon = spec.find(':', pos);
    parts.push_back(spec.substr(pos, colon == std::string::npos ? std::string::npos : colon - pos));
    if (colon == std::string::npos) break;
    pos = colon + 1;
  }
  if (parts.size() < 2 || parts.size() > 3) return false;
  uint64_t ms;
  if (!net::parse_i32(parts[0], id) || id < 0 || static_cast<size_t>(id) >= members ||
      static_cast<size_t>(id) == self || !net::parse_u64(parts[1], ms) || ms > kMaxSlowMs)
    return false;
  double percent = 0;
  if (parts.size() == 3) {
    const std::string& p = parts[2];
    // Digits and a point only (strtod alone would take "+5", " 5", "inf").
    if (p.empty() || p.find_first_not_of("0123456789.") != std::string::npos) return false;
    char* end = nullptr;
    percent = std::strtod(p.c_str(), &end);
    if (*end != 0 || !(percent >= 0 && percent < 100)) return false;
  }
  link.on = true;
  link.delay_us = ms * 1000;
  link.drop = percent / 100;
  char text[64];
  std::snprintf(text, sizeof text, "slow:%d:%llu", id, static_cast<unsigned long long>(ms));
  link.text = text;
  if (percent > 0) {
    std::snprintf(text, sizeof text, ":%g", percent);
    link.text += text;
  }
  return true;
}

// Tokens separated by spaces, commas or newlines; '#' starts a comment.
bool parse_cuts(const std::string& text, size_t members, size_t self, LinkCuts& cuts, std::string& error) {
  cuts = LinkCuts(members);
  std::string cleaned;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    cleaned += line.substr(0, line.find('#')) + " ";
    pos = end + 1;
  }
  for (char& c : cleaned)
    if (c == ',' || c == '\t' || c == '\r') c = ' ';
  std::istringstream words(cleaned);
  const std::string others =
      "another member (0.." + std::to_string(members - 1) + ", not " + std::to_string(self) + ")";
  for (std::string w; words >> w;) {
    if (w.rfind("slow:", 0) == 0) {
      int32_t id = -1;
      SlowLink link;
      if (!parse_slow(w.substr(5), members, self, id, link)) {
        error = "'" + w + "' is not slow:ID:MS[:PCT] with ID " + others + ", MS milliseconds from 0 to " +
                std::to_string(kMaxSlowMs) + " and PCT a drop percentage with 0 <= PCT < 100 (e.g. slow:" +
                std::to_string(self == 0 ? 1 : 0) + ":20:5)";
        return false;
      }
      if (cuts.slow[static_cast<size_t>(id)].on) {
        error = "'" + w + "': member " + std::to_string(id) + "'s link is already slow (" +
                cuts.slow[static_cast<size_t>(id)].text + "); one slow entry per member";
        return false;
      }
      cuts.slow[static_cast<size_t>(id)] = link;
      continue;
    }
    bool in = true, out = true;
    std::string id_text = w;
    if (w.rfind("in:", 0) == 0) {
      out = false;
      id_text = w.substr(3);
    } else if (w.rfind("out:", 0) == 0) {
      in = false;
      id_text = w.substr(4);
    }
    int32_t id;
    if (!net::parse_i32(id_text, id) || id < 0 || static_cast<size_t>(id) >= members || static_cast<size_t>(id) == self) {
      error = "'" + w + "' is not ID, in:ID, out:ID or slow:ID:MS[:PCT] for " + others;
      return false;
    }
    if (in) cuts.in[static_cast<size_t>(id)] = true;
    if (out) cuts.out[static_cast<size_t>(id)] = true;
  }
  return true;
}

struct Counters {
  uint64_t nonmember = 0;     // not a member, not a well-formed client datagram
  uint64_t loss_dropped = 0;  // --loss
  uint64_t cut_dropped = 0;   // --cut-file
  uint64_t slow_dropped = 0;  // --cut-file slow:ID:MS:PCT, the PCT (or too many held)
  uint64_t slow_delayed = 0;  // --cut-file slow:ID:MS..., held MS (each way)
  uint64_t send_failed = 0;
  uint64_t syncs = 0;         // --fsync: fdatasyncs of the log that ended
};

// ---- --trace -------------------------------------------------------------
//
// One line per protocol event, on stderr, for a student to follow a request
// through the protocol (README, "Reading the trace"; kUsage lists every
// word and abbreviation):
//
//   8412.503117 r1 DATA    out   (1,c4.0,17) batch of 1 op: push 3 7 (client 9f2c.., #4) -> r0, r2
//
// the monotonic clock in seconds with microseconds (the same clock for
// every replica on one machine, so `sort -s -n` merges their logs in true
// order: within a millisecond a receive often comes before the next send),
// this replica, the event, its direction, then what it carried. Message
// names are (origin,cE.R,origin_seq), E.R the configuration it was sent in.
// picture.cpp reads these lines back: it pairs a line "... out TEXT -> rM"
// of replica N with replica M's line "... in from rN: TEXT", so the TEXT of
// a record must be the same on both sides. The server calls a Tracer only
// when tracing is on: a replica that does not trace decodes and formats
// nothing for it.

// "8412.503117": a time of the monotonic clock (net::now_us) as the trace
// and, with -v or --trace, every log line start.
std::string time_text(uint64_t now_us) {
  char text[32];
  std::snprintf(text, sizeof text, "%llu.%06llu", static_cast<unsigned long long>(now_us / 1000000),
                static_cast<unsigned long long>(now_us % 1000000));
  return text;
}

// What became of a datagram this replica sent or received.
enum class Fate { Passed, Lost, Cut, SendFailed };

const char* fate_note(Fate f) {
  switch (f) {
    case Fate::Passed: return "";
    case Fate::Lost: return " (dropped: loss)";
    case Fate::Cut: return " (dropped: cut)";
    case Fate::SendFailed: return " (send failed)";
  }
  return "";
}

// A message's name: (origin, configuration, origin_seq). In phase two a
// name's "incarnation" is the ordering number of the configuration it was
// sent in (ConfigId::ordering_number), shown as c5.0.
std::string name_text(const wire::MessageName& n) {
  return "(" + std::to_string(n.origin) + ",c" + mcast::ConfigId::of_ordering_number(n.incarnation).text() + "," +
         std::to_string(n.origin_seq) + ")";
}

std::string member_list_text(const std::vector<mcast::MemberId>& members) {
  std::string text = "{";
  for (size_t i = 0; i < members.size(); ++i) text += (i ? "," : "") + std::to_string(members[i]);
  return text + "}";
}

std::string member_text(size_t m) { return "r" + std::to_string(m); }

// "(client 9f2c.., #4)": the first four hex digits of the client's id.
std::string client_text(uint64_t client_id, uint64_t request_no) {
  char text[64];
  std::snprintf(text, sizeof text, "(client %04llx.., #%llu)", static_cast<unsigned long long>(client_id >> 48),
                static_cast<unsigned long long>(request_no));
  return text;
}

// "push 3 7 (client 9f2c.., #4)", as the client's command reads.
std::string op_text(const wire::Operation& op) {
  std::string text = wire::opcode_name(op.op);
  text += " " + std::to_string(op.arg);
  if (op.op == wire::OpCode::Push) text += " " + std::to_string(op.item);
  return text + " " + client_text(op.client_id, op.request_no);
}

const char* reply_code_text(wire::ReplyCode c) {
  switch (c) {
    case wire::ReplyCode::Ok: return "ok";
    case wire::ReplyCode::NoQueue: return "error: no such queue";
    case wire::ReplyCode::Empty: return "error: empty";
    case wire::ReplyCode::Busy: return "busy";
    case wire::ReplyCode::IdsExhausted: return "error: ids exhausted";
    case wire::ReplyCode::NotInMajority: return "not in a majority";
  }
  return "?";
}

// A multicast message's payload: "batch of 2 ops: push 3 7 (client ..),
// pop 3 (client ..)", the first few operations only.
std::string batch_text(const std::string& payload, bool list_ops) {
  std::vector<wire::BatchedOp> ops;
  partition::Segment part;
  if (partition::decode_merge_record(payload, part))  // partitionable mode
    return "MERGE of side " + mcast::ConfigId::of_ordering_number(part.side).text() + "'s effects " +
           std::to_string(part.first + 1) + ".." + std::to_string(part.end());
  if (!wire::decode_batch(payload, ops)) return "payload of " + std::to_string(payload.size()) + " bytes, not a batch";
  std::string text = "batch of " + std::to_string(ops.size()) + (ops.size() == 1 ? " op" : " ops");
  if (!list_ops) return text;
  const size_t kShown = 3;
  for (size_t i = 0; i < ops.size() && i < kShown; ++i) text += (i ? ", " : ": ") + op_text(ops[i].op);
  if (ops.size() > kShown) text += ", ... " + std::to_string(ops.size() - kShown) + " more";
  return text;
}

// Joins the first few items of a list: "a, b, c, ... (12 in all)".
template <typename List, typename Show>
std::string list_text(const List& items, Show show) {
  const size_t kShown = 4;
  std::string text;
  size_t i = 0;
  for (auto it = items.begin(); it != items.end() && i < kShown; ++it, ++i) text += (i ? ", " : "") + show(*it);
  if (items.size() > kShown) text += ", ... (" + std::to_string(items.size()) + " in all)";
  return text;
}

// The header's high-water marks, in the README's words.
std::string marks_text(const wire::PeerHeader& h) {
  std::string text = "sent " + std::to_string(h.own_highwater) + ", assigned " +
                     std::to_string(h.assigned_contiguous);
  if (h.assigned_upto > h.assigned_contiguous) text += " (and up to " + std::to_string(h.assigned_upto) + ")";
  text += ", held " + std::to_string(h.held_upto) + ", delivered " + std::to_string(h.delivered_upto);
  if (h.closed) text += ", closed";
  return text;
}

struct TraceLine {
  const char* event;
  std::string text;
};

// One line per record kind in a peer packet.
std::vector<TraceLine> describe_packet(const wire::PeerPacket& p) {
  std::vector<TraceLine> lines;
  if (!p.data.empty()) {
    const bool one = p.data.size() == 1;
    lines.push_back({"DATA", list_text(p.data, [one](const wire::DataRecord& d) {
                       return name_text(d.name) + " " + batch_text(d.payload, one);
                     })});
  }
  if (!p.assigns.empty())
    lines.push_back({"ASSIGN", list_text(p.assigns, [](const wire::AssignRecord& a) {
                       return "k=" + std::to_string(a.global_seq) + " " + name_text(a.name);
                     })});
  std::string nack;
  if (!p.nack_assign.empty())
    nack = "assignments " + list_text(p.nack_assign, [](const wire::SeqRange& r) {
             return "k=" + std::to_string(r.from) + (r.to != r.from ? ".." + std::to_string(r.to) : "");
           });
  if (!p.nack_data.empty())
    nack += (nack.empty() ? "messages " : "; messages ") + list_text(p.nack_data, name_text);
  if (!nack.empty()) lines.push_back({"NACK", nack});
  if (p.has_status)
    lines.push_back({"STATUS", (p.want_reply ? "heartbeat: " : "status: ") + marks_text(p.header)});
  if (lines.empty()) lines.push_back({"HEADER", marks_text(p.header)});
  return lines;
}

// Keepalives (every member to every member, every 20 ms) are not traced:
// they would drown everything else. Their effect shows in the PREPARE and
// CONFIG lines (which say who went silent, and for how long).
std::string wire_config_text(const wire::WireConfigId& c) { return mcast::ConfigId{c.epoch, c.rep}.text(); }

std::string membership_text(const wire::MembershipMessage& m) {
  std::string text = wire_config_text(m.config);
  switch (m.type) {
    case wire::MembershipType::Keepalive:
      return "in " + wire_config_text(m.installed);
    case wire::MembershipType::Prepare: {
      std::vector<mcast::MemberId> members(m.members.begin(), m.members.end());
      return text + " with " + member_list_text(members) + ": promise it and send your state";
    }
    case wire::MembershipType::State:
      return text + ": last primary " + wire_config_text(m.last_primary) + ", holds up to k=" +
             std::to_string(m.held_upto) + ", delivered " + std::to_string(m.delivered_upto);
    case wire::MembershipType::Install: {
      std::vector<mcast::MemberId> members;
      for (const wire::InstallEntry& e : m.entries) members.push_back(e.member);
      return text + " " + (m.primary ? "primary " : "non-primary ") + member_list_text(members) +
             (m.primary ? "; order kept up to k=" + std::to_string(m.cut) + " (source r" + std::to_string(m.source) + ")"
                        : std::string());
    }
    case wire::MembershipType::SnapshotRequest:
      return text + ": send your snapshot from byte " + std::to_string(m.offset);
    case wire::MembershipType::SnapshotChunk:
      return text + ": snapshot at k=" + std::to_string(m.snapshot_upto) + ", bytes " + std::to_string(m.offset) +
             ".." + std::to_string(m.offset + m.bytes.size()) + " of " + std::to_string(m.total);
    case wire::MembershipType::Probe: {
      std::vector<mcast::MemberId> members(m.members.begin(), m.members.end());
      return "would you join " + member_list_text(members) + "? (asking first; tag " + text + ")";
    }
    case wire::MembershipType::ProbeReply:
      return std::string(m.verdict == wire::Verdict::Join ? "yes" : "no: ") +
             (m.verdict == wire::Verdict::Join ? "" : wire::verdict_text(m.verdict)) + " (tag " + text + ")";
  }
  return text;
}

class Tracer {
 public:
  explicit Tracer(mcast::MemberId self) : self_(self) {}

  // A client's request and what this replica did with it (`outcome`).
  void request_in(const wire::Operation& op, uint32_t attempt, const sockaddr_in& from, const std::string& outcome) const {
    line("REQUEST", "in", request_text(op, attempt, from) + ": " + outcome);
  }

  // An fdatasync of the log (--fsync, or a promise's): when it began, and
  // how long the loop waited in it.
  void sync_done(uint64_t began_us, uint64_t ended_us) const {
    line("SYNC", "", std::to_string(ended_us - began_us) + " us in fdatasync of the log (began " + time_text(began_us) + ")",
         ended_us);
  }

  void reply_out(const std::string& bytes, const sockaddr_in& to, Fate fate) const {
    wire::Reply r;
    if (!wire::decode_reply(bytes.data(), bytes.size(), r)) return;  // never: we encoded it
    std::string text = "to " + net::to_string(to) + " " + reply_code_text(r.code);
    if (r.code == wire::ReplyCode::Ok) text += " value=" + std::to_string(r.value);
    line("REPLY", "out", text + " " + client_text(r.client_id, r.request_no) + try_text(r.attempt) + fate_note(fate));
  }

  // A datagram from a non-member address that this replica did not admit
  // as a request (`note` says why), or a client's `status`.
  void client_in(const char* data, size_t len, const sockaddr_in& from, const char* note) const {
    wire::Operation op;
    uint32_t attempt;
    uint64_t nonce;
    if (wire::decode_request(data, len, op, attempt))
      line("REQUEST", "in", request_text(op, attempt, from) + note);
    else if (wire::decode_status_request(data, len, nonce))
      line("STATUS", "in", "from " + net::to_string(from) + ": a client's status request" + note);
    else
      line("JUNK", "in", "from " + net::to_string(from) + ": " + std::to_string(len) +
                             " bytes, neither a request nor a status request" + note);
  }

  void status_out(const wire::ReplicaStatus& s, const sockaddr_in& to, Fate fate) const {
    line("STATUS", "out", "to " + net::to_string(to) + ": delivered " + std::to_string(s.delivered_upto) +
                              ", stable " + std::to_string(s.stable_upto) + fate_note(fate));
  }

  // A datagram from member `from`; `note` says if it was dropped or rejected.
  void peer_in(size_t from, const char* data, size_t len, const std::string& note) const {
    wire::MembershipMessage m;
    if (wire::decode_membership(data, len, m)) {
      if (m.type != wire::MembershipType::Keepalive)
        line(wire::membership_type_name(m.type), "in", "from " + member_text(from) + ": " + membership_text(m) + note);
      return;
    }
    std::string side_text;
    if (const char* side_event = describe_side_datagram(data, len, side_text)) {
      line(side_event, "in", "from " + member_text(from) + ": " + side_text + note);
      return;
    }
    wire::PeerPacket p;
    if (!wire::decode_peer(data, len, p)) {
      line("JUNK", "in", "from " + member_text(from) + ": " + std::to_string(len) + " bytes, not a peer packet" + note);
      return;
    }
    for (const TraceLine& l : describe_packet(p)) line(l.event, "in", "from " + member_text(from) + ": " + l.text + note);
  }

  // The datagrams of one round of sends, what became of each and when it
  // was sent: records that went to several members in the same words are
  // one line, timed at its first datagram. (The line is written once the
  // round is over, which may be after a sync that follows the sends: the
  // time is the send's, so that a merged trace has it before its receive.)
  void peers_out(const std::vector<mcast::Outgoing>& out, const std::vector<Fate>& fates,
                 const std::vector<uint64_t>& sent_us) const {
    struct Line {
      TraceLine what;
      std::vector<std::string> to;
      uint64_t at_us;
    };
    std::vector<Line> lines;  // in order of first appearance
    for (size_t i = 0; i < out.size(); ++i) {
      std::vector<TraceLine> described;
      wire::MembershipMessage m;
      wire::PeerPacket p;
      if (wire::decode_membership(out[i].bytes.data(), out[i].bytes.size(), m)) {
        if (m.type != wire::MembershipType::Keepalive) described.push_back({wire::membership_type_name(m.type), membership_text(m)});
      } else if (wire::decode_peer(out[i].bytes.data(), out[i].bytes.size(), p)) {
        described = describe_packet(p);
      } else {
        std::string side_text;
        if (const char* side_event = describe_side_datagram(out[i].bytes.data(), out[i].bytes.size(), side_text))
          described.push_back(TraceLine{side_event, side_text});
      }
      for (TraceLine& l : described) {
        auto same = std::find_if(lines.begin(), lines.end(), [&l](const Line& e) {
          return e.what.event == l.event && e.what.text == l.text;
        });
        if (same == lines.end()) {
          lines.push_back(Line{std::move(l), {}, sent_us[i]});
          same = lines.end() - 1;
        }
        same->to.push_back(member_text(out[i].to) + fate_note(fates[i]));
      }
    }
    for (const Line& l : lines) line(l.what.event, "out", l.what.text + " -> " + destinations_text(l.to), l.at_us);
  }

  void deliver(const mcast::Delivery& d, bool replies_here) const {
    line("DELIVER", "", "k=" + std::to_string(d.global_seq) + " " + name_text(d.name) + " " +
                            batch_text(d.payload, false) + (replies_here ? "; sent from here, so this replica replies" : ""));
  }

  void config(const std::string& text) const { line("CONFIG", "", text); }

 private:
  static std::string try_text(uint32_t attempt) {
    return attempt ? " try " + std::to_string(uint64_t{attempt} + 1) : "";
  }

  static std::string request_text(const wire::Operation& op, uint32_t attempt, const sockaddr_in& from) {
    return "from " + net::to_string(from) + " " + op_text(op) + try_text(attempt);
  }

  // "r0, r2"; copies of one datagram (lossy mode) as "r0 x2".
  static std::string destinations_text(const std::vector<std::string>& to) {
    std::string text;
    for (size_t i = 0; i < to.size();) {
      size_t j = i;
      while (j < to.size() && to[j] == to[i]) ++j;
      text += (i ? ", " : "") + to[i] + (j - i > 1 ? " x" + std::to_string(j - i) : "");
      i = j;
    }
    return text;
  }

  // One whole line in one write, so that a crash never leaves half of one;
  // timed now, or at `at_us` (when it happened, if that was earlier).
  void line(const char* event, const char* direction, const std::string& text, uint64_t at_us = 0) const {
    char head[64];
    std::snprintf(head, sizeof head, " r%u %-7s %-5s ", static_cast<unsigned>(self_), event, direction);
    std::string out = time_text(at_us ? at_us : net::now_us()) + head + text + "\n";
    std::fputs(out.c_str(), stderr);
  }

  const mcast::MemberId self_;
};

// The I/O shell around one Replica (replica.hpp): it owns the socket, the
// clock, the files and the signals, feeds the replica what arrives, and
// carries out what the replica hands off.
class Server {
 public:
  explicit Server(Options o)
      : opt_(std::move(o)),
        self_(static_cast<mcast::MemberId>(opt_.id)),
        spin_(opt_.spin_us, std::thread::hardware_concurrency()) {}

  int run() {
    // Refused starts leave the data directory exactly as they found it:
    // both checks come before anything in it is created or changed.
    std::string error;
    bool recorded = false;
    if (int status = check_members(recorded, error)) {
      log("error: %s", error);
      return status;
    }
    if (!open_socket(error)) {
      log("error: %s", error);
      return kExitError;
    }
    if (!start()) return kExitError;
    if (!recorded && !write_file_atomically(members_path(), members_text(), error)) {
      log("error: %s", error);
      return kExitError;
    }
    while (!finished()) step();
    return stop();
  }

 private:
  // "[replica 1] listening on ...": with -v or --trace the line starts
  // with the time, as a trace line does, so that the configuration and -v
  // lines sort into the merged trace where they happened.
  // `fmt` has at most one %s, for `a`. One write for the whole line.
  void log(const char* fmt, const std::string& a = "") const {
    std::string line = (opt_.trace || opt_.verbose) ? time_text(net::now_us()) + " " : "";
    line += "[replica " + std::to_string(opt_.id) + "] ";
    const int size = std::snprintf(nullptr, 0, fmt, a.c_str());
    std::vector<char> text(static_cast<size_t>(std::max(size, 0)) + 1);
    std::snprintf(text.data(), text.size(), fmt, a.c_str());
    std::fputs((line + text.data() + "\n").c_str(), stderr);
  }

  [[noreturn]] void fatal(const std::string& error) const {
    log("fatal: %s", error);
    std::exit(kExitError);  // never claim or answer what may not be on disk
  }

  bool start() {
    std::string error;
    store_ = std::make_unique<ReplicaStore>(opt_.data_dir, opt_.fsync);
    FTQueue state;
    if (opt_.partitionable) state.name_items();  // a log replayed before the first snapshot is named too
    mcast::Restored restored;
    uint64_t incarnation;
    if (!store_->open(state, restored, error) ||
        !store_->next_incarnation(static_cast<uint64_t>(std::time(nullptr)) * 1000000u, incarnation, error)) {
      log("error: %s", error);
      return false;
    }
    // Partitionable mode names every item (merge.hpp): a data directory
    // keeps the mode it was started in.
    if (opt_.partitionable && !state.names_items()) {
      if (state.applied_upto() != 0 || state.queue_count() != 0) {
        log("error: %s", "--partitionable, but " + opt_.data_dir + " was written without it (start without it, or with a new data directory)");
        return false;
      }
      state.name_items();
    } else if (!opt_.partitionable && state.names_items()) {
      log("error: %s", opt_.data_dir + " was written with --partitionable: start with it");
      return false;
    }
    std::vector<std::string> tentative_lines;
    if (!store_->read_tentative(tentative_lines, error)) {
      log("error: %s", error);
      return false;
    }
    if (::pipe(g_signal_pipe) != 0) return false;
    for (int fd : g_signal_pipe) ::fcntl(fd, F_SETFL, O_NONBLOCK);
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGHUP, &sa, nullptr);
    cuts_ = LinkCuts(opt_.peers.size());
    if (!opt_.cut_file.empty()) load_cuts();
    restored.amnesiac = !log_trusted_at_start(state, restored);
    if (restored.amnesiac)
      log("%s", "recovering: the OS may have restarted since this replica last wrote its log without --fsync, so "
                "it may have lost a tail it had claimed; it takes part but counts for no majority until it has "
                "caught up from a primary configuration (README, 'Durability')");
    if (!write_trust(restored.amnesiac ? "recovering" : "boot " + boot_id_, true, error)) {
      log("error: %s", error);
      return false;
    }

    ReplicaOptions options;
    options.fsync = opt_.fsync;
    options.partitionable = opt_.partitionable;
    options.membership.suspect_after_us = opt_.suspect_ms * 1000;
    options.membership.keepalive_us = opt_.keepalive_ms * 1000;
    options.membership.multicast.resign_lag_us = opt_.resign_lag_ms * 1000;
    options.membership.view_change_timeout_us =
        std::max<uint64_t>(options.membership.suspect_after_us * 2 / 3, 2 * options.membership.keepalive_us);
    const uint64_t resumed_at = state.applied_upto();
    replica_ = std::make_unique<Replica>(self_, opt_.peers.size(), incarnation, options, std::move(state),
                                         std::move(restored));
    replica_->restore_tentative(tentative_lines);
    if (opt_.trace) trace_ = std::make_unique<Tracer>(self_);
    loss_rng_.seed(opt_.seed_given ? opt_.seed * 1000003u + static_cast<uint64_t>(opt_.id) : net::random_u64());
    char line[256];
    std::snprintf(line, sizeof line,
                  "listening on %s, %zu members, data %s, resumed at global_seq %llu, loss %.3f%s",
                  opt_.peers[self_].text.c_str(), opt_.peers.size(), opt_.data_dir.c_str(),
                  static_cast<unsigned long long>(resumed_at), opt_.loss,
                  opt_.fsync && opt_.partitionable ? ", fsync, partitionable"
                  : opt_.fsync                      ? ", fsync"
                  : opt_.partitionable              ? ", partitionable"
                                                    : "");
    log("%s", line);
    return true;
  }

  // DIR/members records the member list a data directory was written under.
  // Its log and its sequence numbers only make sense in a rotation over
  // exactly those members: the same files under another list (seen: `start
  // 5` on the directories of a 3-member cluster) leave every call timing
  // out. Until reconfiguration exists, another list is another cluster.
  // Addresses are compared as numbers (localhost:7001 is 127.0.0.1:7001).
  std::string members_path() const { return opt_.data_dir + "/members"; }

  std::string members_text() const {
    std::string peers;
    for (const net::Endpoint& p : opt_.peers) peers += (peers.empty() ? "" : ",") + net::to_string(p.addr);
    return "id " + std::to_string(opt_.id) + "\npeers " + peers + "\n";
  }

  // DIR/trust says when the log holds everything this replica claimed
  // (membership.hpp, "Amnesia"): "clean" after a graceful stop (everything
  // synced), "boot ID" while the OS that booted as ID keeps the page cache
  // (a process crash loses nothing written), "recovering" while it catches
  // up. With --fsync the log itself is proof: a record is claimed only once
  // synced. A new directory has nothing to lose. Anything else (another
  // boot id, no file, an unknown boot id) means the worst: amnesiac.
  bool log_trusted_at_start(const FTQueue& state, const mcast::Restored& restored) {
    boot_id_ = opt_.boot_id;
    if (boot_id_.empty() && read_file("/proc/sys/kernel/random/boot_id", boot_id_))
      boot_id_.erase(boot_id_.find_last_not_of(" \n") + 1);
    if (boot_id_.empty()) boot_id_ = "unknown";
    if (opt_.fsync) return true;
    const bool fresh = state.applied_upto() == 0 && restored.held.empty() && restored.promised.none() &&
                       !restored.last_installed;
    if (fresh) return true;
    if (opt_.trust_log) {
      log("%s", "--trust-log: this replica's log is taken as whole; what an OS crash took from it may be lost");
      return true;
    }
    std::string trust;
    read_file(opt_.data_dir + "/trust", trust);
    trust.erase(trust.find_last_not_of(" \n") + 1);
    return trust == "clean" || (boot_id_ != "unknown" && trust == "boot " + boot_id_);
  }

  bool write_trust(const std::string& text, bool sync, std::string& error) {
    return write_file_atomically(opt_.data_dir + "/trust", text + "\n", error, sync);
  }

  // Returns 0 if the directory may be used; `recorded` says whether it
  // already names its members. A directory without the file is adopted:
  // it is new, or it was written before this check existed.
  int check_members(bool& recorded, std::string& error) const {
    std::string text;
    recorded = read_file(members_path(), text);
    if (!recorded) {
      if (::access(members_path().c_str(), F_OK) != 0) return 0;
      error = "cannot read " + members_path();
      return kExitError;
    }
    if (text == members_text()) return 0;
    auto describe = [](const std::string& members) {
      std::string id = "?", peers;
      std::istringstream in(members);
      for (std::string key, value; in >> key >> value;) {
        if (key == "id") id = value;
        if (key == "peers") peers = value;
      }
      size_t n = peers.empty() ? 0 : 1 + std::count(peers.begin(), peers.end(), ',');
      return "member " + id + " of a cluster of " + std::to_string(n) + " (" + peers + ")";
    };
    error = "data directory " + opt_.data_dir + " belongs to " + describe(text) + ", but this is " +
            describe(members_text()) + "; nothing in it was changed. Start it with its own --id and " +
            "--peers, or give a new cluster new data directories (changing n makes a new cluster)";
    return kExitOtherMembers;
  }

  bool open_socket(std::string& error) {
    if (opt_.socket_fd < 0) {
      fd_ = net::open_udp(opt_.peers[self_].addr, error);
      return fd_ >= 0;
    }
    fd_ = opt_.socket_fd;
    sockaddr_in bound = net::local_address(fd_);
    if (bound.sin_port != opt_.peers[self_].addr.sin_port) {
      error = "--socket-fd is not bound to " + opt_.peers[self_].text;
      return false;
    }
    return true;
  }

  // Done leaving, this member lingers while peers still talk to it: its
  // last words (closed, how far it delivered) may all have been lost, and a
  // peer that is still draining asks again with every heartbeat (every 5
  // ms, asking for an answer). Once no peer has sent anything but
  // keepalives for kLingerQuietUs, they have all heard enough and left too
  // (or are gone). Keepalives do not count: every member sends them every
  // 20 ms whatever its state, a peer done leaving included, so counting
  // them kept every member of an idle cluster lingering until the drain's
  // 3 s cap. A peer that still needs this one sends heartbeats, NACKs or
  // membership rounds, and those count. Without the linger, one peer's
  // five lost farewells made another's drain time out (seen at --loss 0.2).
  bool finished() const {
    if (!stopping_) return false;
    const uint64_t now = net::now_us();
    if (now >= drain_deadline_) return true;
    return replica_->done_leaving() && now >= last_peer_talk_us_ + kLingerQuietUs;
  }

  int stop() {
    // Tell the others how far we got, a few times over a lossy network.
    // No datagram is read here, so the hand-offs soon run dry.
    for (int i = 0; i < 5; ++i) {
      replica_->announce();
      carry_out_handoffs(net::now_us());
    }
    for (int i = 0; i < 8 && !replica_->may_compact(); ++i) carry_out_handoffs(net::now_us());
    flush_held();
    // Synced even without --fsync, and then marked clean, so that the log
    // is trusted after an OS restart too (a lab machine rebooted after a
    // graceful stop). An amnesiac replica stays so: its log is not whole.
    std::string error;
    if (!store_->write_snapshot(replica_->state(), replica_->durable_state(), error, true) ||
        (!replica_->group().amnesiac() && !write_trust("clean", true, error))) {
      log("error: %s", error);
      return 1;
    }
    char line[200];
    std::snprintf(line, sizeof line, "stopped at global_seq %llu; snapshot written%s",
                  static_cast<unsigned long long>(replica_->state().applied_upto()),
                  replica_->done_leaving() ? "" : " (drain timed out: some peer did not confirm it is done)");
    log("%s", line);
    return replica_->done_leaving() ? 0 : kExitDrainTimedOut;
  }

  // One wake: wait, read what came, let the replica's timers run, carry out
  // what it decided, and compact the log when it is due.
  void step() {
    uint64_t now = net::now_us();
    uint64_t deadline = replica_->next_deadline();
    if (stopping_) deadline = std::min(deadline, drain_deadline_);
    if (stopping_ && replica_->done_leaving()) deadline = std::min(deadline, last_peer_talk_us_ + kLingerQuietUs);
    if (opt_.verbose) deadline = std::min(deadline, last_report_ + 1'000'000);
    if (!held_.empty()) deadline = std::min(deadline, held_.begin()->first);  // slow links
    // carry_out_handoffs' bound left some: take the rest at once.
    if (replica_->has_handoff(now)) deadline = now;
    pollfd fds[2] = {{fd_, POLLIN, 0}, {g_signal_pipe[0], POLLIN, 0}};
    bool ready = false;
    if (const uint64_t until = spin_.spin_until(now, deadline)) ready = spin(fds, until);
    if (!ready) wait(fds, deadline);
    if (fds[1].revents & POLLIN) on_signals();
    now = net::now_us();
    if (fds[0].revents & POLLIN) {
      read_datagrams();
      spin_.datagrams_read(now);
    }
    release_held(net::now_us());
    replica_->tick(now, net::wall_clock_ms());
    carry_out_handoffs(now);
    // A snapshot is the state at delivered_upto and the log rewritten to
    // what the protocol holds: only when every delivery taken is applied.
    if (store_->snapshot_due() && replica_->may_compact()) {
      write_snapshot();
      carry_out_handoffs(now);  // --fsync: the rewrite synced what was owed
    }
    if (opt_.verbose && now >= last_report_ + 1'000'000) report(now);
  }

  // Sleeps until a datagram or signal is ready, or `deadline` (kNever: no
  // timeout). ppoll (POSIX.1-2024), not poll: a batch's hold is tens of
  // microseconds. The timeout is taken from the clock now, after any spin.
  void wait(pollfd (&fds)[2], uint64_t deadline) {
    const uint64_t now = net::now_us();
    timespec timeout{};
    if (deadline != mcast::kNever && deadline > now) {
      timeout.tv_sec = static_cast<time_t>((deadline - now) / 1'000'000);
      timeout.tv_nsec = static_cast<long>((deadline - now) % 1'000'000) * 1000;
    }
    ::ppoll(fds, 2, deadline == mcast::kNever ? nullptr : &timeout, nullptr);
  }

  // Polls without sleeping until a datagram or signal is ready (true) or
  // `until` passes. sched_yield lets a process waiting for this CPU run.
  bool spin(pollfd (&fds)[2], uint64_t until) {
    const timespec zero{};
    bool arrived = false;
    while (!(arrived = ::ppoll(fds, 2, &zero, nullptr) > 0) && net::now_us() < until) ::sched_yield();
    spin_.spin_ended(net::now_us(), arrived);
    return arrived;
  }

  void on_signals() {
    char buf[16];
    bool stop = false;
    for (ssize_t n; (n = ::read(g_signal_pipe[0], buf, sizeof buf)) > 0;)
      for (ssize_t i = 0; i < n; ++i) {
        if (buf[i] == SIGHUP) load_cuts();
        else stop = true;
      }
    if (stop) on_stop_signal();
  }

  // SIGHUP: read --cut-file again. A file that cannot be parsed changes
  // nothing (the error is logged); a missing one cuts nothing.
  void load_cuts() {
    if (opt_.cut_file.empty()) {
      log("SIGHUP ignored: no --cut-file");
      return;
    }
    std::string text, error;
    read_file(opt_.cut_file, text);
    LinkCuts fresh;
    if (!parse_cuts(text, opt_.peers.size(), self_, fresh, error)) {
      log("error: %s", opt_.cut_file + ": " + error + "; link cuts unchanged (" + cuts_.describe() + ")");
      return;
    }
    cuts_ = fresh;
    log("link cuts (test switch): %s", cuts_.describe());
  }

  void on_stop_signal() {
    if (stopping_) {
      drain_deadline_ = 0;  // second signal: stop now
      return;
    }
    stopping_ = true;
    replica_->begin_drain();
    drain_deadline_ = net::now_us() + kDrainTimeoutUs;
    log("stopping: finishing what is in flight");
  }

  bool lose() { return opt_.loss > 0 && std::uniform_real_distribution<double>(0, 1)(loss_rng_) < opt_.loss; }

  void read_datagrams() {
    char buf[65536];
    for (int i = 0; i < kMaxDatagramsPerWake; ++i) {
      sockaddr_in from{};
      socklen_t len = sizeof from;
      ssize_t n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 0) return;  // EAGAIN: drained
      const size_t size = static_cast<size_t>(n);
      if (lose()) {
        ++counters_.loss_dropped;
        if (trace_) trace_dropped(buf, size, from, member_index(from), Fate::Lost);
        continue;
      }
      int member = member_index(from);
      if (member >= 0 && cuts_.in[static_cast<size_t>(member)]) {
        ++counters_.cut_dropped;
        if (trace_) trace_dropped(buf, size, from, member, Fate::Cut);
      } else if (member >= 0 && cuts_.slow[static_cast<size_t>(member)].on) {
        // Handed to the replica when due (release_held), traced then.
        if (!hold(false, static_cast<size_t>(member), buf, size) && trace_)
          trace_dropped(buf, size, from, member, Fate::Lost);
      } else if (member >= 0) {
        receive_peer(static_cast<mcast::MemberId>(member), buf, size);
      } else {
        on_client_datagram(buf, size, from);
      }
    }
  }

  void trace_dropped(const char* data, size_t len, const sockaddr_in& from, int member, Fate fate) const {
    if (member >= 0) trace_->peer_in(static_cast<size_t>(member), data, len, fate_note(fate));
    else trace_->client_in(data, len, from, fate_note(fate));
  }

  // With --trace, the datagram's records are traced once the protocol has
  // taken them, with a note if it refused them.
  void receive_peer(mcast::MemberId member, const char* data, size_t len) {
    const uint64_t now = net::now_us();
    if (!stopping_ || !keepalive(data, len)) last_peer_talk_us_ = now;  // see finished()
    const PeerVerdict verdict = replica_->peer_datagram(member, data, len, now);
    if (!trace_) return;
    trace_->peer_in(member, data, len, peer_verdict_note(verdict));
  }

  // A membership keepalive, which says nothing of what its sender still needs.
  static bool keepalive(const char* data, size_t len) {
    wire::MembershipMessage m;
    return wire::decode_membership(data, len, m) && m.type == wire::MembershipType::Keepalive;
  }

  int member_index(const sockaddr_in& from) const {
    for (size_t i = 0; i < opt_.peers.size(); ++i)
      if (i != self_ && net::same_address(opt_.peers[i].addr, from)) return static_cast<int>(i);
    return -1;
  }

  // A request goes to the replica (its answer, if any, leaves with the next
  // hand-off); a status request is answered here and now.
  void on_client_datagram(const char* data, size_t len, const sockaddr_in& from) {
    wire::Operation op;
    uint32_t attempt;
    uint64_t nonce;
    if (wire::decode_request(data, len, op, attempt)) {
      const Admission a = replica_->client_request(op, attempt, to_client_address(from), net::now_us());
      if (trace_) trace_->request_in(op, attempt, from, admission_text(a));
    } else if (wire::decode_status_request(data, len, nonce)) {
      if (trace_) trace_->client_in(data, len, from, "");
      wire::ReplicaStatus s = replica_->status_view();
      s.nonce = nonce;
      s.dropped_datagrams = dropped();
      Fate fate = send(wire::encode_status_reply(s), from);
      if (trace_) trace_->status_out(s, from, fate);
    } else {
      ++counters_.nonmember;
      if (trace_) trace_->client_in(data, len, from, " (dropped)");
    }
  }

  // Carries out the replica's hand-offs by the one rule (replica.hpp,
  // carry_out) until none is left. A sync lets the protocol claim more,
  // which may let more through: a STATUS saying so, deliveries and their
  // replies; they come as the next hand-off, at once, not at the next
  // wake. No datagram is read in between, so they soon run dry; the bound
  // is only a guard (step takes the rest without sleeping).
  void carry_out_handoffs(uint64_t now) {
    for (int pass = 0; pass < 8 && replica_->has_handoff(now); ++pass) {
      Handoff h = replica_->take_handoff(now);
      if (!h.fatal.empty()) fatal(h.fatal);
      for (const std::string& note : h.notes) {
        log("%s", note);
        if (trace_) trace_->config(note);
      }
      if (trace_)
        for (const AppliedEvent& a : h.applied)
          if (a.event.kind == mcast::Event::Kind::Deliver) trace_->deliver(a.event.delivery, a.answered_here);
      for (size_t ops : h.delivered_batch_sizes) spin_.batch_delivered(ops, now);
      Effects effects(*this);
      carry_out(*replica_, h, effects);
      effects.trace_datagrams(h);
    }
  }

  // The server's side of carry_out (replica.hpp): the log file, the socket.
  // A write or sync that fails ends the process: a crash is a failure the
  // others ride out, while a replica that went on would claim or answer
  // what may not be on disk.
  class Effects : public HandoffEffects {
   public:
    explicit Effects(Server& s) : s_(s) {}
    bool append(const std::vector<mcast::LogRecord>& records) override {
      std::string error;
      if (!s_.store_->append(records, error)) s_.fatal(error);
      return true;
    }
    bool write_snapshot() override {
      std::string error;
      if (!s_.store_->write_snapshot(s_.replica_->state(), s_.replica_->durable_state(), error)) s_.fatal(error);
      return true;
    }
    bool log_trusted() override {
      std::string error;
      if (!s_.write_trust("boot " + s_.boot_id_, false, error)) s_.fatal(error);
      return true;
    }
    bool write_tentative(const std::vector<std::string>& lines, bool replace) override {
      std::string error;
      if (!s_.store_->write_tentative(lines, replace, error)) s_.fatal(error);
      return true;
    }
    bool sync() override {
      std::string error;
      const uint64_t began = s_.trace_ ? net::now_us() : 0;
      if (!s_.store_->sync(error)) s_.fatal(error);
      ++s_.counters_.syncs;
      if (s_.trace_) s_.trace_->sync_done(began, net::now_us());
      return true;
    }
    bool send(const mcast::Outgoing& o) override {
      // With --trace, timed just before it leaves: its receive is traced later.
      if (s_.trace_) sent_us_.push_back(net::now_us());
      Fate fate = Fate::Cut;
      if (s_.cuts_.out[o.to]) ++s_.counters_.cut_dropped;
      else if (s_.cuts_.slow[o.to].on) fate = s_.send_slow(o.to, o.bytes);
      else fate = s_.send(o.bytes, s_.opt_.peers[o.to].addr);
      if (s_.trace_) fates_.push_back(fate);
      return true;
    }
    bool reply(const ReplyOut& r) override {
      const std::string bytes = wire::encode_reply(r.reply);
      const sockaddr_in to = to_sockaddr(r.to);
      for (int i = 0; i < r.copies; ++i) {
        Fate fate = s_.send(bytes, to);
        if (s_.trace_) s_.trace_->reply_out(bytes, to, fate);
      }
      return true;
    }
    void trace_datagrams(const Handoff& h) const {
      if (s_.trace_ && !h.datagrams.empty()) s_.trace_->peers_out(h.datagrams, fates_, sent_us_);
    }

   private:
    Server& s_;
    std::vector<Fate> fates_;       // with --trace: what became of each datagram,
    std::vector<uint64_t> sent_us_;  // and when it was sent
  };

  // A snapshot that cannot be written stops the replica, as a failed log
  // append does: the log may be half rewritten, and log_rewritten would
  // claim records no sync covered (with --fsync).
  void write_snapshot() {
    std::string error;
    if (!store_->write_snapshot(replica_->state(), replica_->durable_state(), error)) fatal(error);
    replica_->log_rewritten();
  }

  Fate send(const std::string& bytes, const sockaddr_in& to) {
    if (lose()) {
      ++counters_.loss_dropped;
      return Fate::Lost;
    }
    if (!net::send_to(fd_, bytes, to)) {
      ++counters_.send_failed;
      return Fate::SendFailed;
    }
    return Fate::Passed;
  }

  // A datagram to a member over a slow link: --loss first, as send() would,
  // then the link's own loss; what is left leaves when due (release_held).
  // The fate is known now, so the trace is right about drops; it shows the
  // datagram when the replica sent it, not when it left.
  Fate send_slow(size_t member, const std::string& bytes) {
    if (lose()) {
      ++counters_.loss_dropped;
      return Fate::Lost;
    }
    return hold(true, member, bytes.data(), bytes.size()) ? Fate::Passed : Fate::Lost;
  }

  // A datagram on member's slow link, going out or come in (and past
  // --loss): dropped with the link's probability, else held for its delay.
  // False if dropped (also when kMaxHeld are held already: a queue that
  // overflows, as netem's does, rather than memory without bound).
  bool hold(bool out, size_t member, const char* data, size_t len) {
    const SlowLink& link = cuts_.slow[member];
    if ((link.drop > 0 && std::uniform_real_distribution<double>(0, 1)(loss_rng_) < link.drop) ||
        held_.size() >= kMaxHeld) {
      ++counters_.slow_dropped;
      return false;
    }
    ++counters_.slow_delayed;
    held_.emplace(net::now_us() + link.delay_us, Held{out, member, std::string(data, len)});
    return true;
  }

  // What slow links held and is due by `now`, in due order (equal times in
  // the order held): sent, or handed to the replica as if read just now.
  // A datagram is held with the link's delay when it was held: a SIGHUP that
  // changes or removes the entry leaves those in flight as they were.
  void release_held(uint64_t now) {
    while (!held_.empty() && held_.begin()->first <= now) {
      auto node = held_.extract(held_.begin());
      Held& h = node.mapped();
      if (!h.out) receive_peer(static_cast<mcast::MemberId>(h.member), h.bytes.data(), h.bytes.size());
      else if (!net::send_to(fd_, h.bytes, opt_.peers[h.member].addr)) ++counters_.send_failed;
    }
  }

  // At the stop: what slow links still hold for the others leaves when due
  // (the last words, each at most kMaxSlowMs away); what came in is dropped,
  // since nothing is read any more.
  void flush_held() {
    for (auto& [due, h] : held_) {
      if (!h.out) continue;
      const uint64_t now = net::now_us();
      if (due > now) std::this_thread::sleep_for(std::chrono::microseconds(due - now));
      if (!net::send_to(fd_, h.bytes, opt_.peers[h.member].addr)) ++counters_.send_failed;
    }
    held_.clear();
  }

  uint64_t dropped() const {
    const ReplicaCounts c = replica_->counts();
    return counters_.nonmember + counters_.loss_dropped + counters_.cut_dropped + counters_.slow_dropped +
           c.malformed + c.stale + c.other_config + c.other_mode;
  }

  // "{0,1} claim lag ms 0.1 4.2 41.0*": the sequencer rotation, and how
  // late each member's claims reach this one (* lagging; multicast.hpp,
  // "A slow member").
  static std::string rotation_text(const mcast::Multicast* ordering) {
    if (!ordering) return "none";
    std::string text = member_list_text(ordering->rotation()) + " claim lag ms";
    char lag[32];
    for (size_t m = 0; m < ordering->lagging_measured(); ++m) {
      std::snprintf(lag, sizeof lag, " %.1f%s", ordering->claim_lag_us(static_cast<mcast::MemberId>(m)) / 1000.0,
                    ordering->finds_lagging(static_cast<mcast::MemberId>(m)) ? "*" : "");
      text += lag;
    }
    return text;
  }

  void report(uint64_t now) {
    last_report_ = now;
    const ReplicaCounts c = replica_->counts();
    const mcast::Membership& group = replica_->group();
    const mcast::MulticastStats& s = c.ordering;
    const mcast::MembershipStats& g = c.membership;
    char line[1024];
    std::snprintf(line, sizeof line,
                  "config %s%s %s hears %zu | delivered %llu held %llu stable %llu buffered %zu waiting %zu | "
                  "requests %llu busy %llu minority %llu | view-changes %llu installs %llu rotation %s | "
                  "assigned %llu nack-rounds %llu nacked %llu retransmitted %llu doubled %llu heartbeats %llu | "
                  "dropped: malformed %llu stale %llu other-config %llu other-mode %llu non-member %llu loss %llu cut %llu "
                  "slow-link %llu send-failed %llu | slow-link delayed %llu pending %zu | "
                  "log writes %llu syncs %llu | spins %llu with a datagram %llu",
                  group.installed() ? group.configuration().id.text().c_str() : "none",
                  group.primary() ? " primary" : (group.installed() ? " non-primary" : ""),
                  member_list_text(group.configuration().members).c_str(), group.reachable_count(),
                  (unsigned long long)group.delivered_upto(), (unsigned long long)group.held_upto(),
                  (unsigned long long)group.stable_upto(), c.buffered, c.waiting,
                  (unsigned long long)c.requests, (unsigned long long)c.busy_replies,
                  (unsigned long long)c.minority_replies, (unsigned long long)g.view_changes,
                  (unsigned long long)g.installs,
                  rotation_text(group.ordering()).c_str(),
                  (unsigned long long)s.assignments_made,
                  (unsigned long long)s.nack_rounds, (unsigned long long)s.nacks_sent,
                  (unsigned long long)s.retransmitted, (unsigned long long)s.redundant_copies,
                  (unsigned long long)s.heartbeats, (unsigned long long)c.malformed, (unsigned long long)c.stale,
                  (unsigned long long)c.other_config, (unsigned long long)c.other_mode,
                  (unsigned long long)counters_.nonmember,
                  (unsigned long long)counters_.loss_dropped, (unsigned long long)counters_.cut_dropped,
                  (unsigned long long)counters_.slow_dropped, (unsigned long long)counters_.send_failed,
                  (unsigned long long)counters_.slow_delayed, held_.size(), (unsigned long long)c.log_writes,
                  (unsigned long long)counters_.syncs, (unsigned long long)spin_.spins(),
                  (unsigned long long)spin_.hits());
    log("%s", line);
  }

  Options opt_;
  const mcast::MemberId self_;
  std::unique_ptr<Tracer> trace_;  // null unless --trace
  int fd_ = -1;
  std::unique_ptr<ReplicaStore> store_;
  std::unique_ptr<Replica> replica_;
  std::mt19937_64 loss_rng_;
  Counters counters_;
  net::IdleSpin spin_;
  LinkCuts cuts_;
  // Datagrams slow links hold (--cut-file slow:...), by due time.
  struct Held {
    bool out;       // to the member, else from it
    size_t member;
    std::string bytes;
  };
  static constexpr size_t kMaxHeld = 100'000;
  std::multimap<uint64_t, Held> held_;
  bool stopping_ = false;
  uint64_t drain_deadline_ = 0;
  uint64_t last_peer_talk_us_ = 0;  // the last peer datagram that was not a keepalive
  uint64_t last_report_ = 0;
  std::string boot_id_;  // the OS's boot id, or "unknown"
};

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  int rc = parse_options(argc, argv, opt);
  if (rc >= 0) return rc;
  std::signal(SIGPIPE, SIG_IGN);
  return Server(std::move(opt)).run();
}
