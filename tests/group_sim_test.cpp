// group_sim_test: n replicas (replica.hpp: the very Replica objects the
// server runs, with their Membership, Multicast and FTQueue) and simulated
// clients over a simulated faulty network and a simulated clock, with
// crashes, restarts and pauses, every random choice drawn from one seed
// (same seed, same run).
//
// Each run: n in 2..7 members that start in no configuration and must form
// one. The network drops (0 to 30%), duplicates, delays and reorders
// datagrams, some straggle far behind, and partitions come and go: one
// member isolated, two sides (sometimes exactly a majority and a minority,
// sometimes an even split with no majority), three sides none of which is a
// majority, a one-way cut where a member is heard but hears no one (or hears
// all and is heard by no one), a bridge where two members cannot talk but
// the others talk to both, and a ring of overlapping majorities where every
// member hears a majority but no two hear the same one. A third of the
// partitions cut only the ordering's datagrams (membership traffic passes):
// members keep hearing each other's keepalives, so no view change comes to
// the rescue, while acknowledgements, assignments and fetches go one way or
// nowhere; the holes two reviews found needed exactly that. Members crash:
// one, a minority, a majority, all at once (then all restart), one after
// another (rolling), or in the middle of a view change (at a hand-off that
// persists a promise or an install); some pause (a stopped process: what
// reaches it waits). Clients call any replica, as ./client does: each call
// has a deadline, its tries go to one replica and then the next, and each
// call ends answered, refused (every try refused: no effect), or unknown.
//
// Each member is driven as server.cpp drives it: inputs (peer datagrams,
// client requests, ticks) go to its Replica, and every hand-off is carried
// out by the one carry_out() (replica.hpp) with simulated effects: a log
// that survives crashes, a disk that syncs, the network. A crash strikes at
// a random point of a hand-off: a prefix of the records written and nothing
// sent, or all written and a prefix sent. A restarted member gets a larger
// incarnation and what its snapshot and log give back (LogReplay, the rules
// ReplicaStore::open follows). Datagrams still in flight reach the next
// life if they arrive after the restart.
//
// Checked, at the moment it happens (so a trace ends where it broke):
//   1. Agreement: every delivery of k, at every member and life, carries the
//      same name and payload; a life delivers k = restored+1, +2, ... with no
//      gap or repeat; no name is delivered at two different k; what a log
//      says was delivered is never lost (a later life starts at or above it,
//      and at the end every member has delivered every k any life ever
//      delivered). Every operation delivered is one a client sent.
//   2. FIFO per origin: within one stream (origin, configuration number),
//      origin_seq increases along k, and at the end each stream delivered
//      is 1, 2, ... with no hole.
//   3. Configurations: every REGULAR for one id names the same members,
//      primary flag and cut everywhere; primary iff a majority of n; a
//      member's installed ids strictly increase across its lives; it
//      installs only the id its log promised last, and its log holds the
//      Install before the REGULAR is applied. EVS shape: TRANSITIONAL X,
//      then deliveries at k <= X's cut, then REGULAR X (the cut delivered by
//      then), before any other TRANSITIONAL. Once k is delivered in c,
//      every newer primary configuration's cut keeps it. Deliveries only after a
//      TRANSITIONAL or in a primary REGULAR, never in a non-primary one,
//      never before the life's first TRANSITIONAL, never in the old
//      configuration once a newer id is promised.
//   4. Persist before send, at every crash: whatever the dead life's
//      datagrams said of its log is in its log (held_upto, delivered_upto,
//      promised, the configurations it said it had installed). Checked
//      before an OS crash takes the log's unwritten tail: a third of the
//      crashes without --deferred-durability (--os-crashes), and the
//      restart after one is amnesiac (membership.hpp, "Amnesia"); with it,
//      every crash is a power cut, and the log holds what was claimed.
//   5. Liveness: once the faults stop (partitions healed, every crashed
//      member back, no more loss), within 20 s of simulated time every member
//      is installed in one primary configuration of all n members, with the
//      same delivered_upto, and a call made at each member after the heal
//      is answered.
//   6. can_submit() is false unless the member is installed and primary.
//   7. Every answer a client got is true (checked at the end, after the
//      heal, against the agreed order replayed by a reference FTQueue):
//      a result (ok, no such queue, empty, ids exhausted) means the
//      operation was applied once, at one place in the order, with that
//      result; a definite failure (every try refused: not in a majority,
//      busy) means it was never applied, anywhere, ever; an unknown
//      outcome allows either. And every member's state at the end is the
//      reference's, byte for byte (so no operation was applied twice).
//
//   8. With --partial, partial partitions settle (membership.hpp, "Partial
//      partitions"): 2 s after the cut (scaled to the simulator's timeouts)
//      every member is installed, not in a view change, in a configuration
//      whose members all hear each other, and, if some majority all hear
//      each other, one of them is a primary configuration; from then until
//      the cut ends at most 2 more ids are promised anywhere (a left-out
//      member asks, is refused, and freezes nobody); with a primary, no
//      call started after settling ends unknown or takes 0.5 s (scaled);
//      without one, every member refuses every request at once. After the
//      heal, everyone is in one configuration within 2 s (scaled).
//
//   group_sim_test --seeds 3000             # seeds 1..3000
//   group_sim_test --seed 1234 --trace      # one seed, print every event
//   group_sim_test --seed 1234 --trace-out DIR && ./picture -o seed.svg DIR
//                                           # one seed, drawn (see TraceOut)
//   group_sim_test --first-seed 1000000 --seeds 1000000   # an overnight run
//   group_sim_test --seeds 30000 --keep-going   # list every failing seed, one line each
//   group_sim_test --storm --seeds 3000         # long chains of view changes
//   group_sim_test --bug minority-delivers --expect-violation
//   group_sim_test --bug send-before-persist --expect-violation   # a driver bug
//   group_sim_test --bug orphans-not-in-majority --expect-violation  # a lie to a client
// With --expect-violation a seed counts as catching the bug only if it
// passes without it (so a failure of the protocol itself is not taken for
// a catch).
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "../ftqueue.hpp"
#include "../membership.hpp"
#include "../replica.hpp"
#include "../wire.hpp"

using mcast::ConfigId;
using mcast::Configuration;
using mcast::Delivery;
using mcast::Event;
using mcast::LogRecord;
using mcast::MemberId;
using mcast::Membership;
using mcast::Restored;

namespace {

struct Options {
  uint64_t first_seed = 1;
  uint64_t seeds = 1000;
  bool trace = false;
  std::string trace_out;  // --trace-out DIR (one seed): see TraceOut
  bool expect_violation = false;
  bool keep_going = false;  // report every failing seed, one line each
  // Storm: a fault phase three times as long, with many more partitions,
  // crash events and calls (long chains of view changes).
  bool storm = false;
  // Group commit (server --fsync): records are written at once and reach
  // the disk at the syncs the Replica asks for; a crash is a power cut and
  // loses a random part of what no sync covered yet.
  bool deferred = false;
  // Scales: the loss rate drawn for a seed (capped at 0.9), and how many
  // partitions, crash events and pauses it plans.
  double loss_scale = 1;
  double fault_scale = 1;
  // Without --deferred-durability: the share of crashes that are OS crashes
  // (the log loses what the OS had not written back: an amnesiac restart).
  double os_crashes = 1.0 / 3;
  // Splits: the faults are only splits that leave no majority anywhere
  // (three sides, or two even halves), each lasting 2 to 6 suspicion
  // timeouts, with no loss and no crash (but 20-50% duplicates), and
  // more clients: the windows in
  // which a client hears "not in a majority" from every replica while an
  // orphan of its request may still be delivered after the heal.
  bool splits = false;
  // Partial: one partial partition (a bridge, a hub between two sides, a
  // one-way cut, a ring, random links cut, two bridges, a clean cut as a
  // control, or one flapping link)
  // held for 20 to 40 suspicion timeouts, with no loss, crash or pause, and
  // the liveness rules of "Partial partitions" (membership.hpp) checked
  // while it holds (check 8).
  bool partial = false;
  // Partitionable mode (issue 23): every replica runs with
  // ReplicaOptions::partitionable; a side without a majority answers
  // through its lowest member, tentatively, and its work is merged in the
  // order once its leader is in a primary configuration (check 9).
  bool partitionable = false;
  // Slow member (issue 25): every member runs with a resign lag (5-30 ms),
  // and one member's datagrams, both ways, are held 5-30 ms longer (and 5%
  // more are dropped while the faults last) in one to three windows of the
  // run, so that it leaves the rotation and comes back; the usual faults
  // strike as well. Every check applies; the rotation changes are counted.
  bool slow_member = false;
  mcast::GroupBug bug = mcast::GroupBug::None;
  ReplicaOptions::Bug replica_bug = ReplicaOptions::Bug::None;
  // The driver's own deliberate bugs, in carry_out (replica.hpp):
  // datagrams leave before the records of the same hand-off are persisted;
  // with --deferred-durability, a hand-off that must be synced before it is
  // sent (a promise, a STATE) is sent first.
  bool send_before_persist = false;
  bool send_before_sync = false;
  // ... the trust file written before the hand-off's records (its OrderComplete).
  bool trust_before_persist = false;
  // The client's deliberate bug: a refusal vouches for every try of the
  // call so far, not only the one it names (a silent try may have been
  // admitted, so such a call can end "refused: no effect" and be applied).
  bool refusal_vouches_for_all = false;
  // The shell's deliberate bug: a replica restarted after an OS crash
  // without --fsync trusts its log (ReplicaStore's trust file ignored), so
  // the tail the crash took was never claimed as far as it knows.
  bool trust_log_after_os_crash = false;
  // Review instrumentation (review3): after every hand-off a crash does not
  // strike, read the member's log back (LogReplay) and compare it with the
  // live member: last primary, claim, promise, delivered, records. Also the
  // log a compaction would write now (durable_state), read back.
  bool check_replay = false;
  // Review instrumentation: with this probability per hand-off, compact the
  // member's log as the server does when ReplicaStore::snapshot_due()
  // (snapshot at delivered_upto, log rewritten to durable_state()),
  // so that compactions land mid-install. Draws from its own generator: the
  // seed's schedule is unchanged.
  double compact = 0;
  // Review instrumentation: with this probability, a member that installs a
  // snapshot (state transfer) during the fault phase crashes after
  // snapshot.txt is written and before its log is rewritten; its restart
  // reads the log with the snapshot's end, as ReplicaStore::open does.
  double crash_at_snapshot = 0;
  // Review instrumentation: a restart rewrites the log to what it read back,
  // as ReplicaStore::open does.
  bool rewrite_at_open = false;
  // Wake as server.cpp's step does: a datagram is taken in at once (as
  // recvfrom would queue it) but the member takes its hand-off only at its
  // next wake, up to batch_us later: every datagram that came meanwhile,
  // and a tick if one is due, go into one hand-off. 0: after each one.
  uint64_t batch_us = 0;
  // Review instrumentation (review4): at every restart and after every
  // hand-off (with --check-replay), read the log as ReplicaStore::open does
  // (snapshot, then each Delivered mark applies held records from the
  // replay): it must neither refuse to start nor stop early at a record
  // that voids what was applied.
  bool check_open = false;
};

size_t majority(size_t n) { return n / 2 + 1; }

ConfigId from_wire(const wire::WireConfigId& c) { return ConfigId{c.epoch, c.rep}; }

std::string members_text(const std::vector<MemberId>& members) {
  std::string s = "{";
  for (MemberId m : members) s += (s.size() > 1 ? "," : "") + std::to_string(m);
  return s + "}";
}

std::string config_text(const Configuration& c) {
  return c.id.text() + " " + members_text(c.members) + (c.primary ? " primary cut=" + std::to_string(c.cut) : " non-primary");
}

// A payload in a trace line: a batch of client operations.
std::string short_payload(const std::string& p) {
  std::vector<wire::BatchedOp> ops;
  if (!wire::decode_batch(p, ops)) return "(" + std::to_string(p.size()) + " bytes, not a batch)";
  std::string s = "[";
  for (const wire::BatchedOp& b : ops)
    s += (s.size() > 1 ? " " : "") + std::string(wire::opcode_name(b.op.op)) + "#" + std::to_string(b.op.request_no);
  return s + "]";
}

// ---- the log, and how a restarted member reads it back ---------------------

using Log = std::vector<LogRecord>;

// The highest k such that the log holds 1..k of the member's claim,
// applying only its first `voidings` records that void Held records (a
// Truncate, or the OrderComplete that commits the last install): a claim
// made before a later voiding is not undone by it (the claim moved on).
uint64_t held_contiguous(const Log& log, size_t voidings, uint64_t snapshot_upto) {
  std::set<uint64_t> held, staged;
  std::optional<ConfigId> installed;
  uint64_t keep = 0;
  size_t applied = 0;
  for (const LogRecord& rec : log) {
    switch (rec.kind) {
      case LogRecord::Kind::Held: held.insert(rec.held.global_seq); break;
      case LogRecord::Kind::Staged: staged.insert(rec.held.global_seq); break;
      case LogRecord::Kind::Truncate:
        if (applied++ < voidings) held.erase(held.upper_bound(rec.upto), held.end());
        break;
      case LogRecord::Kind::Promise: staged.clear(); break;
      case LogRecord::Kind::Install:
        installed = rec.config.id;
        keep = rec.upto;
        staged.clear();
        break;
      case LogRecord::Kind::OrderComplete:
        if (installed != rec.config.id) break;
        if (applied++ < voidings) held.erase(held.upper_bound(keep), held.end());
        held.insert(staged.begin(), staged.end());
        staged.clear();
        break;
      case LogRecord::Kind::Delivered: break;
    }
  }
  uint64_t k = snapshot_upto;  // a snapshot holds 1..snapshot_upto
  for (auto it = held.upper_bound(k); it != held.end() && *it == k + 1; ++it) k = *it;
  return k;
}

// How many records of `log` void Held ones (what held_contiguous counts).
size_t count_voidings(const Log& log) {
  std::optional<ConfigId> installed;
  size_t count = 0;
  for (const LogRecord& rec : log) {
    if (rec.kind == LogRecord::Kind::Install) installed = rec.config.id;
    if (rec.kind == LogRecord::Kind::Truncate || (rec.kind == LogRecord::Kind::OrderComplete && installed == rec.config.id))
      ++count;
  }
  return count;
}

// What ReplicaStore::write_snapshot leaves in the log: exactly what a
// restart needs (Membership::durable_state), and a Delivered mark.
Log rewritten_log(const Restored& r) {
  Log log;
  LogRecord rec;
  if (!r.promised.none()) {
    rec.kind = LogRecord::Kind::Promise;
    rec.config.id = r.promised;
    log.push_back(rec);
  }
  if (r.last_installed) {
    rec.kind = LogRecord::Kind::Install;
    rec.config = *r.last_installed;
    rec.upto = r.install_keep;
    rec.claim_upto = r.claim_upto;
    log.push_back(rec);
  }
  if (!r.last_primary.none()) {
    rec.kind = LogRecord::Kind::OrderComplete;
    rec.config = Configuration{};
    rec.config.id = r.last_primary;
    log.push_back(rec);
  }
  for (const Delivery& d : r.held) {
    rec.kind = LogRecord::Kind::Held;
    rec.held = d;
    log.push_back(rec);
  }
  for (const Delivery& d : r.staged) {
    rec.kind = LogRecord::Kind::Staged;
    rec.held = d;
    log.push_back(rec);
  }
  rec.kind = LogRecord::Kind::Delivered;
  rec.upto = r.delivered_upto;
  log.push_back(rec);
  return log;
}

const char* record_kind(LogRecord::Kind k) {
  switch (k) {
    case LogRecord::Kind::Held: return "Held";
    case LogRecord::Kind::Staged: return "Staged";
    case LogRecord::Kind::Delivered: return "Delivered";
    case LogRecord::Kind::Truncate: return "Truncate";
    case LogRecord::Kind::Promise: return "Promise";
    case LogRecord::Kind::Install: return "Install";
    case LogRecord::Kind::OrderComplete: return "OrderComplete";
  }
  return "?";
}

std::string record_text(const LogRecord& r) {
  std::string s = record_kind(r.kind);
  switch (r.kind) {
    case LogRecord::Kind::Held:
    case LogRecord::Kind::Staged:
      return s + " k=" + std::to_string(r.held.global_seq) + " " + short_payload(r.held.payload);
    case LogRecord::Kind::Delivered:
    case LogRecord::Kind::Truncate:
      return s + " upto=" + std::to_string(r.upto);
    case LogRecord::Kind::Promise:
    case LogRecord::Kind::OrderComplete:
      return s + " " + r.config.id.text();
    case LogRecord::Kind::Install:
      return s + " " + config_text(r.config) + " keep=" + std::to_string(r.upto) +
             (r.claim_upto == LogRecord::kNoClaim ? "" : " claim=" + std::to_string(r.claim_upto));
  }
  return s;
}

// ---- datagrams, for the trace ------------------------------------------------

bool is_membership(const std::string& bytes) {
  return bytes.size() > 3 && static_cast<uint8_t>(bytes[3]) == static_cast<uint8_t>(wire::Kind::Membership);
}

std::string datagram_text(const std::string& bytes) {
  if (is_membership(bytes)) {
    wire::MembershipMessage m;
    if (!wire::decode_membership(bytes.data(), bytes.size(), m)) return "undecodable membership datagram";
    std::string s = std::string(wire::membership_type_name(m.type)) + " inst=" + from_wire(m.installed).text() +
                    " prom=" + from_wire(m.promised).text() + " d=" + std::to_string(m.delivered_upto);
    if (m.type == wire::MembershipType::Prepare || m.type == wire::MembershipType::Probe)
      s += " " + from_wire(m.config).text() + " " + members_text(m.members);
    if (m.type == wire::MembershipType::ProbeReply)
      s += " " + from_wire(m.config).text() + " " + wire::verdict_text(m.verdict);
    if (m.type == wire::MembershipType::State)
      s += " " + from_wire(m.config).text() + " last_primary=" + from_wire(m.last_primary).text() +
           " held=" + std::to_string(m.held_upto) + " freed=" + std::to_string(m.freed_upto);
    if (m.type == wire::MembershipType::SnapshotRequest) s += " from byte " + std::to_string(m.offset);
    if (m.type == wire::MembershipType::SnapshotChunk)
      s += " k=" + std::to_string(m.snapshot_upto) + " bytes " + std::to_string(m.offset) + "+" +
           std::to_string(m.bytes.size()) + "/" + std::to_string(m.total);
    if (m.type == wire::MembershipType::Install) {
      s += " " + from_wire(m.config).text() + (m.primary ? " primary" : " non-primary") +
           " cut=" + std::to_string(m.cut) + " source=" + std::to_string(m.source) + " {";
      for (const wire::InstallEntry& e : m.entries) s += " " + std::to_string(e.member);
      s += " }";
    }
    return s;
  }
  std::string side_text;
  if (const char* side_event = describe_side_datagram(bytes.data(), bytes.size(), side_text))
    return std::string(side_event) + " " + side_text;
  wire::PeerPacket p;
  if (!wire::decode_peer(bytes.data(), bytes.size(), p)) return "undecodable peer datagram";
  std::string s = "PEER inc=" + std::to_string(p.header.incarnation) + " held=" + std::to_string(p.header.held_upto) +
                  " d=" + std::to_string(p.header.delivered_upto);
  for (const wire::DataRecord& d : p.data) s += " data=" + short_payload(d.payload);
  if (!p.assigns.empty())
    s += " assign=" + std::to_string(p.assigns.front().global_seq) + ".." + std::to_string(p.assigns.back().global_seq);
  for (const wire::SeqRange& r : p.nack_assign) s += " nack_assign=" + std::to_string(r.from) + ".." + std::to_string(r.to);
  for (const wire::MessageName& name : p.nack_data)
    s += " nack_data=(" + std::to_string(name.origin) + "," + std::to_string(name.incarnation) + "," +
         std::to_string(name.origin_seq) + ")";
  if (p.has_status) s += " status";
  return s;
}

// ---- --trace-out: the run in the server's trace format ----------------------
//
// `group_sim_test --seed S --trace-out DIR` writes DIR/replica-I.log for
// each member in the format server.cpp's Tracer writes with --trace
// ("TIME rI EVENT in|out TEXT"; `server --help`, "Reading the trace"), the
// simulated clock as the time, so that `./picture DIR` draws the seed. Only
// what the picture reads: peer records sent ("... out TEXT -> rJ", with
// "(dropped: loss)" or "(dropped: cut)") and received ("... in from rI:
// TEXT"), the same TEXT at both ends; clients' requests and replies;
// DELIVER and CONFIG (the Replica's notes, as the server traces them); and
// each life's start and crash as log lines.

// "(origin,cE.R,origin_seq)", as the server names a message.
std::string traced_name(const wire::MessageName& n) {
  return "(" + std::to_string(n.origin) + ",c" + ConfigId::of_ordering_number(n.incarnation).text() + "," +
         std::to_string(n.origin_seq) + ")";
}

std::string batch_size_text(const std::string& payload) {
  std::vector<wire::BatchedOp> ops;
  if (!wire::decode_batch(payload, ops)) return "not a batch";
  return "batch of " + std::to_string(ops.size()) + (ops.size() == 1 ? " op" : " ops");
}

// A datagram's records, (EVENT, TEXT) each; none for a keepalive.
std::vector<std::pair<std::string, std::string>> traced_records(const std::string& bytes) {
  if (is_membership(bytes)) {
    wire::MembershipMessage m;
    if (!wire::decode_membership(bytes.data(), bytes.size(), m)) return {{"JUNK", "undecodable membership datagram"}};
    if (m.type == wire::MembershipType::Keepalive) return {};
    std::string text = datagram_text(bytes);  // "PREPARE inst=..."
    return {{wire::membership_type_name(m.type), from_wire(m.config).text() + " " + text.substr(text.find(' ') + 1)}};
  }
  std::string side_text;
  if (const char* side_event = describe_side_datagram(bytes.data(), bytes.size(), side_text)) return {{side_event, side_text}};
  wire::PeerPacket p;
  if (!wire::decode_peer(bytes.data(), bytes.size(), p)) return {{"JUNK", "undecodable peer datagram"}};
  std::vector<std::pair<std::string, std::string>> records;
  auto join = [](const std::string& list, const std::string& item) { return list + (list.empty() ? "" : ", ") + item; };
  std::string data, assigns, nacks;
  for (const wire::DataRecord& d : p.data) data = join(data, traced_name(d.name) + " " + batch_size_text(d.payload));
  for (const wire::AssignRecord& a : p.assigns)
    assigns = join(assigns, "k=" + std::to_string(a.global_seq) + " " + traced_name(a.name));
  for (const wire::SeqRange& r : p.nack_assign)
    nacks = join(nacks, "k=" + std::to_string(r.from) + (r.to != r.from ? ".." + std::to_string(r.to) : ""));
  for (const wire::MessageName& name : p.nack_data) nacks = join(nacks, traced_name(name));
  if (!data.empty()) records.emplace_back("DATA", data);
  if (!assigns.empty()) records.emplace_back("ASSIGN", assigns);
  if (!nacks.empty()) records.emplace_back("NACK", nacks);
  const std::string marks = "held " + std::to_string(p.header.held_upto) + ", delivered " +
                            std::to_string(p.header.delivered_upto);
  if (p.has_status) records.emplace_back("STATUS", (p.want_reply ? "heartbeat: " : "status: ") + marks);
  if (records.empty()) records.emplace_back("HEADER", marks);
  return records;
}


// A simulated client's address in the trace: "client3".
std::string client_address(size_t client) { return "client" + std::to_string(client); }

class TraceOut {
 public:
  // Opens DIR/replica-I.log for each of `members` (DIR must exist).
  bool open(const std::string& dir, size_t members, std::string& error) {
    for (size_t i = 0; i < members; ++i) {
      const std::string path = dir + "/replica-" + std::to_string(i) + ".log";
      files_.emplace_back(path, std::ios::trunc);
      if (!files_.back()) {
        error = "cannot write " + path + ": " + std::strerror(errno);
        return false;
      }
    }
    return true;
  }
  bool on() const { return !files_.empty(); }

  // A datagram from `from` to `to`, sent (`fate`: "" or a drop) ...
  void sent(uint64_t now, size_t from, size_t to, const std::string& bytes, const char* fate) {
    for (const auto& [event, text] : traced_records(bytes))
      line(now, from, event, "out", text + " -> r" + std::to_string(to) + fate);
  }
  // ... and received (`note`: "" or why it was refused).
  void received(uint64_t now, size_t from, size_t to, const std::string& bytes, const char* note) {
    for (const auto& [event, text] : traced_records(bytes))
      line(now, to, event, "in", "from r" + std::to_string(from) + ": " + text + note);
  }

  // "TIME rI EVENT DIR TEXT" (server.cpp, Tracer::line).
  void line(uint64_t now, size_t member, const std::string& event, const char* dir, const std::string& text) {
    char head[64];
    std::snprintf(head, sizeof head, " r%zu %-7s %-5s ", member, event.c_str(), dir);
    files_[member] << time_text(now) << head << text << "\n";
  }
  // "TIME [replica I] TEXT" (server.cpp, Server::log with --trace).
  void log(uint64_t now, size_t member, const std::string& text) {
    files_[member] << time_text(now) << " [replica " << member << "] " << text << "\n";
  }

 private:
  static std::string time_text(uint64_t us) {
    char text[32];
    std::snprintf(text, sizeof text, "%llu.%06llu", static_cast<unsigned long long>(us / 1000000),
                  static_cast<unsigned long long>(us % 1000000));
    return text;
  }
  std::vector<std::ofstream> files_;
};

// ---- the run -------------------------------------------------------------------

// Datagrams on the directed links in `cut` are dropped while the partition
// lasts: all of them, or (ordering_only) only the ordering's, so that
// keepalives and the view change still pass.
struct Partition {
  uint64_t from = 0, to = 0;
  std::string shape;
  std::set<std::pair<MemberId, MemberId>> cut;
  bool ordering_only = false;
  // --partitionable: armed (from = to = never) until the first MERGE record
  // is delivered during the faults, then it starts (a second partition
  // amid a merge).
  bool after_merge = false;
};

struct Crash {
  enum class Trigger {
    AnyFlush,         // a flush with records or datagrams
    FlushWithRecords, // a flush with records (the persist-before-send window)
    ViewChange,       // a flush that persists a Promise or an Install
    Merge,            // a flush that persists or applies a MERGE record (--partitionable)
  };
  uint64_t at = 0;          // strikes at the member's first fitting flush from here
  uint64_t give_up_at = 0;  // no fitting flush by then: strikes at once
  uint64_t down = 0;        // then stays down this long,
  uint64_t restart_not_before = 0;  // and at least until here (kill all, restart all)
  uint64_t restart_at = 0;  // set when it strikes
  MemberId member = 0;
  Trigger trigger = Trigger::AnyFlush;
  bool done = false;
  bool restarted = false;
  bool loses_tentative = false;  // --partitionable: restarts without its tentative file (its disk's copy lost)
};

struct InFlight {
  uint64_t at;
  uint64_t order;  // tie-break, keeps the run deterministic
  MemberId from, to;
  std::string bytes;
  bool operator>(const InFlight& o) const { return at != o.at ? at > o.at : order > o.order; }
};

// What a call ended as, in Jepsen's words :ok / :fail / :info.
enum class Outcome {
  Answered,  // a result: ok, no such queue, empty, ids exhausted
  Refused,   // every try refused by a reply naming it: no effect
  Unknown,   // some try may have been admitted: either
};

// A simulated client: one call at a time, by ./client's rules (client.cpp,
// Client::call), simplified: a try goes to one replica; a silent replica is
// tried a few times, then the next one; a reply with a result ends the
// call; a refusal (busy, not in a majority) speaks only for the try it
// names (for all its copies: a client that saw a lossy reply sends each try
// twice, and the replica refuses a copy of a refused try again, so a
// refusal naming a try means no copy of it was admitted there), and the
// next replica is asked after a pause. At the call's
// deadline the outcome is a definite failure only if every try was refused,
// else unknown. A late client (after the heal) asks one replica until it
// answers.
struct SimClient {
  uint64_t id = 0;  // client_id
  bool late = false;
  MemberId member = 0;  // the replica asked now
  uint64_t request_no = 0;
  bool calling = false;
  wire::Operation op;
  uint64_t deadline = mcast::kNever;
  uint64_t next_try_at = mcast::kNever;
  uint64_t next_call_at = mcast::kNever;
  uint64_t retry_us = 0;  // its first retry timeout (./client's adapts: 1 to 200 ms)
  uint64_t call_started_at = 0;
  int tries = 0;   // this call's, numbered 0, 1, ...
  int silent = 0;  // tries in a row this replica did not answer
  std::set<uint32_t> refused;
  wire::ReplyCode refusal = wire::ReplyCode::NotInMajority;
  // As ./client (net::RetryPolicy::copies()): every try is sent twice while
  // the last result reply said its replica is in lossy mode, else once.
  bool lossy = false;
  bool doubled = false;  // this call sent some try as two copies
  bool tentative_answer = false;  // the reply that ended the call was tentative
};

struct CallRecord {
  size_t client = 0;
  wire::Operation op;
  Outcome outcome = Outcome::Unknown;
  wire::ReplyCode code = wire::ReplyCode::Ok;
  int32_t value = 0;
  uint64_t ended_at = 0;
  uint64_t started_at = 0;
  bool tentative = false;  // partitionable mode: answered by a side without a majority
};

// --partial: the one long partial partition and what check 8 asks of it.
struct Settling {
  uint64_t from = 0, settle_at = 0, to = 0;
  bool steady = false;           // one shape for the whole time (a flapping link is not)
  bool majority_hears_each_other = false;  // some majority of members all hear each other
  std::string shape;
  std::set<std::pair<MemberId, MemberId>> cut;
  bool checked_settled = false, checked_end = false;
};

// A datagram between a client and a member (clients are outside every
// partition, as the server's --cut-file cuts only peer links).
struct ClientDatagram {
  uint64_t at;
  uint64_t order;
  size_t client;
  MemberId member;
  bool to_member;
  std::string bytes;
  bool operator>(const ClientDatagram& o) const { return at != o.at ? at > o.at : order > o.order; }
};

struct Pause {
  MemberId member = 0;
  uint64_t from = 0, to = 0;
};

// What one life's datagrams said about its log, checked when it crashes.
struct Claims {
  // Truncate records in the log when said -> the highest held_upto said.
  std::map<size_t, uint64_t> held_upto;
  uint64_t delivered_upto = 0;
  ConfigId promised;
  std::set<ConfigId> installed;     // "I am installed in ..."
  std::set<ConfigId> last_primary;  // STATE: "my last primary configuration is ..."
};

// Where a life stands in its configuration events (EVS), for check 3.
enum class Phase {
  Unconfigured,  // no TRANSITIONAL yet in this life
  Transitional,  // TRANSITIONAL seen, its REGULAR not yet
  Primary,       // last event a primary REGULAR
  NonPrimary,    // last event a non-primary REGULAR
};

struct Life {
  uint64_t number = 0;
  bool started_amnesiac = false;  // its log may have lost a claimed tail (an OS crash)
  uint64_t incarnation = 0;
  uint64_t delivered_upto = 0;  // deliveries applied (or read back from the log)
  Phase phase = Phase::Unconfigured;
  Configuration transitional;         // the pending TRANSITIONAL
  uint64_t highest_since_transitional = 0;
  Configuration regular;              // the last REGULAR
  bool promised_past_regular = false; // a Promise above `regular` since it
  Claims claims;
  uint64_t submitted = 0;
};

// Summaries of a log, kept as it grows.
struct LogSummary {
  uint64_t logged_delivered = 0;  // the last Delivered mark
  ConfigId logged_promise;        // the highest Promise
  Configuration logged_install;   // the last Install
  std::set<ConfigId> installs, primary_installs;
  std::map<ConfigId, Configuration> install_of;  // every Install, by id
  size_t voidings = 0;  // records that voided Held ones: Truncate, an install's OrderComplete

  void add(const LogRecord& rec) {
    switch (rec.kind) {
      case LogRecord::Kind::Held:
      case LogRecord::Kind::Staged:
        break;
      case LogRecord::Kind::Delivered:
        logged_delivered = rec.upto;
        break;
      case LogRecord::Kind::Truncate:
        ++voidings;
        break;
      case LogRecord::Kind::Promise:
        logged_promise = std::max(logged_promise, rec.config.id);
        break;
      case LogRecord::Kind::Install:
        logged_install = rec.config;
        installs.insert(rec.config.id);
        install_of[rec.config.id] = rec.config;
        break;
      case LogRecord::Kind::OrderComplete:
        primary_installs.insert(rec.config.id);
        if (rec.config.id == logged_install.id) ++voidings;
        break;
    }
  }
};

// One member: its process (null while crashed), its files (snapshot and
// log: they survive), and the checker's view of it. The summary (the base)
// covers the whole log; with deferred durability only log[0, durable_len)
// is on disk, summed up in `durable`.
struct Member : LogSummary {
  std::unique_ptr<Replica> process;
  Log log;
  Life life;
  uint64_t lives = 0;
  size_t durable_len = 0;
  LogSummary durable;
  std::string snapshot;        // snapshot.txt: the state at snapshot_upto ("" none)
  uint64_t snapshot_upto = 0;
  uint64_t wake_at = mcast::kNever;    // --batch-us: input taken in, hand-off due then
  uint64_t busy_until = 0;             // paused, or inside a sync: what comes waits
  uint64_t wall_offset_ms = 0;         // this life's wall clock, ahead of the simulated one
  // OS crashes: the machine's boot (an OS crash starts a new one), and the
  // boot in which its log is known whole (the server's trust file; -1 none).
  int boot = 0;
  int trusted_boot = 0;
  // Across lives: the newest configuration installed (event or log), and
  // the newest any of its datagrams said it was installed in.
  ConfigId installed_id;
  ConfigId announced_installed;
  // Configuration ids this member sent a STATE for in a life that started
  // amnesiac (that STATE may have counted for nothing). A later life may be
  // whole again: check 3 judges an install by the lives that sent STATEs.
  std::set<ConfigId> stated_amnesiac;
  std::vector<std::string> tentative_lines;  // partitionable mode's file
};

// What the runs did, summed over seeds, so that a passing count says how
// much was exercised.
struct Totals {
  uint64_t runs = 0;
  uint64_t crashes = 0;
  uint64_t crashes_in_view_change = 0;  // struck a hand-off persisting a Promise or an Install
  uint64_t pauses = 0;
  uint64_t os_crashes = 0, amnesiac_restarts = 0;
  uint64_t configurations = 0;
  uint64_t primary_configurations = 0;
  uint64_t delivered = 0;  // highest k, summed
  uint64_t answered = 0, refused = 0, unknown = 0;  // calls, by outcome
  uint64_t unknown_applied = 0;  // unknown outcomes the order applied
  uint64_t tentative = 0, merge_records = 0;  // --partitionable: tentative answers, MERGE records delivered
  partition::MergeCounts merged;              // --partitionable: what the MERGE records did, in the agreed order
  uint64_t merge_crashes = 0, merge_partitions = 0;  // --partitionable: faults that struck amid a merge
  uint64_t lost_tentative = 0, lost_with_a_side_of_one = 0;  // restarts without the file; answers lost with it
  uint64_t slowest_convergence_us = 0;
  uint64_t slowest_seed = 0;
  uint64_t snapshots = 0;           // state transfers completed
  uint64_t snapshots_past_cut = 0;  // of those, with a snapshot past the configuration's cut
  uint64_t doubled_tries = 0, doubled_calls = 0, doubled_refused = 0;  // lossy-mode clients' two copies a try
  uint64_t rotation_changes = 0, rotation_runs = 0;  // --slow-member: delivered; runs with any
};

class Run {
 public:
  Run(uint64_t seed, const Options& opt) : seed_(seed), opt_(opt), rng_(seed), shape_rng_(seed ^ 0x5eedc0de) {}

  // Returns an empty string on success, else what went wrong and where.
  std::string execute() {
    setup();
    std::string error;
    if (!opt_.trace_out.empty() && !trace_out_.open(opt_.trace_out, n_, error)) return "--trace-out: " + error;
    uint64_t now = 1000;
    for (auto& m : members_) start_life(m, now);
    for (;;) {
      restart_due(now);
      crash_overdue(now);
      deliver_network(now);
      deliver_client_datagrams(now);
      wakes_due(now);
      tick_due(now);
      clients_due(now);
      check_can_submit(now);
      check_settling(now);
      if (!failure_.empty()) return failure_;
      if (!healed_at_ && faults_over(now)) heal(now);
      if (healed_at_) {
        if (converged()) {
          converged_at_ = now;
          return final_checks();
        }
        if (now > healed_at_ + kLivenessBound) return liveness_failure(now);
      }
      now = next_time(now);
    }
  }

  void add_to(Totals& t) const {
    ++t.runs;
    t.crashes += crashes_done_;
    t.crashes_in_view_change += crashes_in_view_change_;
    t.merge_crashes += merge_crashes_;
    t.lost_tentative += lost_tentative_.size();
    t.lost_with_a_side_of_one += lost_with_a_side_of_one_;
    t.merge_partitions += merge_partitions_;
    t.pauses += pauses_.size();
    t.os_crashes += os_crashes_;
    t.amnesiac_restarts += amnesiac_restarts_;
    t.snapshots += snapshots_installed_;
    t.snapshots_past_cut += snapshots_past_cut_;
    t.configurations += configs_.size();
    for (const auto& entry : configs_) t.primary_configurations += entry.second.primary ? 1 : 0;
    t.delivered += agreed_.empty() ? 0 : agreed_.rbegin()->first;
    for (const CallRecord& c : calls_) {
      t.answered += c.outcome == Outcome::Answered;
      t.refused += c.outcome == Outcome::Refused;
      t.unknown += c.outcome == Outcome::Unknown;
      t.tentative += c.tentative;
    }
    for (const auto& [k, d] : agreed_) t.merge_records += partition::is_merge_record(d.payload);
    t.rotation_changes += rotation_changes_;
    t.rotation_runs += rotation_changes_ > 0;
    t.merged += merged_;
    t.unknown_applied += unknown_applied_;
    t.doubled_tries += doubled_tries_;
    t.doubled_calls += doubled_calls_;
    t.doubled_refused += doubled_refused_;
    if (converged_at_ - healed_at_ > t.slowest_convergence_us) {
      t.slowest_convergence_us = converged_at_ - healed_at_;
      t.slowest_seed = seed_;
    }
  }

  void print_trace() const {
    for (const std::string& line : recent_) std::printf("    %s\n", line.c_str());
  }

  std::string describe() const {
    char buf[300];
    std::snprintf(buf, sizeof buf,
                  "n=%zu drop=%.2f dup=%.2f max_delay=%lluus partitions=%zu crashes=%zu pauses=%zu calls=%zu "
                  "configurations=%zu delivered=%llu datagrams=%llu",
                  members_.size(), drop_, dup_, static_cast<unsigned long long>(max_delay_), partitions_.size(),
                  crashes_done_, pauses_.size(), calls_.size(), configs_.size(),
                  static_cast<unsigned long long>(agreed_.empty() ? 0 : agreed_.rbegin()->first),
                  static_cast<unsigned long long>(order_));
    return buf;
  }

 private:
  static constexpr uint64_t kLivenessBound = 20'000'000;  // 20 s of simulated calm

  // ---- randomness ----
  double uniform() { return std::uniform_real_distribution<double>(0, 1)(rng_); }
  uint64_t between(uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(rng_); }
  MemberId any_member() { return static_cast<MemberId>(between(0, n_ - 1)); }

  // ---- the schedule ----

  void setup() {
    n_ = opt_.partial ? between(3, 7) : between(2, 7);
    members_.resize(n_);
    // MembershipConfig's defaults at half scale (keepalive 10 ms, suspect
    // 150 ms, view change retry 100 ms): the same ratios, shorter runs.
    ropt_.membership.keepalive_us = 10'000;
    ropt_.membership.suspect_after_us = 150'000;
    ropt_.membership.view_change_timeout_us = 100'000;
    ropt_.membership.multicast.max_unsequenced_own = between(1, 4);
    ropt_.membership.bug = opt_.bug;
    ropt_.fsync = opt_.deferred;
    ropt_.bug = opt_.replica_bug;
    ropt_.partitionable = opt_.partitionable;
    drop_ = uniform() < 0.25 || opt_.splits ? 0 : std::min(0.9, uniform() * 0.3 * opt_.loss_scale);
    dup_ = opt_.splits ? 0.2 + uniform() * 0.3 : uniform() < 0.5 ? 0 : uniform() * 0.1;
    max_delay_ = between(20, 3000);
    straggle_ = uniform() < 0.3 ? uniform() * 0.03 : 0;
    fault_end_ = (opt_.storm ? between(10, 30) : between(3, 10)) * suspect();
    if (opt_.partial) {
      drop_ = 0;
      plan_partial();
    } else if (opt_.splits) {
      plan_splits();
    } else {
      if (opt_.storm || uniform() < 0.6) plan_partitions();
      if (opt_.storm || uniform() < 0.6) plan_crashes();
    }
    if (opt_.partitionable) plan_merge_faults();
    if (opt_.slow_member) plan_slow_member();
    plan_clients();
    if (std::uniform_real_distribution<double>(0, 1)(shape_rng_) < 0.3 && !opt_.partial) plan_pauses();
  }

  // --partitionable: faults aimed at a merge (issue 23): a crash at a
  // member's first hand-off that persists or applies a MERGE record, and a
  // partition that starts when the first MERGE record is delivered. Both
  // only while the faults last; a side that rejoins a majority before
  // the end of the faults merges then, so the faults go on a while after
  // the planned partitions end.
  void plan_merge_faults() {
    uint64_t last_partition_end = 0;
    for (const Partition& p : partitions_) last_partition_end = std::max(last_partition_end, p.to);
    if (last_partition_end > 0) fault_end_ = std::max(fault_end_, last_partition_end + 3 * suspect());
    if (uniform() < 0.5) {
      add_crash(any_member(), 1000, downtime(), Crash::Trigger::Merge);
      crashes_.back().give_up_at = fault_end_;
      note(1000, "crash of " + std::to_string(crashes_.back().member) + " armed for its first hand-off with a MERGE record");
    }
    if (uniform() < 0.3) {  // a side's work must outlive its leader's disk (copies)
      add_crash(any_member(), between(1000, fault_end_), downtime(), Crash::Trigger::AnyFlush);
      crashes_.back().loses_tentative = true;
      note(crashes_.back().at, "crash of " + std::to_string(crashes_.back().member) + ", to restart without its tentative file");
    }
    if (uniform() < 0.5) {
      Partition part;
      part.from = part.to = mcast::kNever;
      part.after_merge = true;
      shape_partition(part);
      note(1000, "partition (" + part.shape + ") armed for the first MERGE record delivered");
      partitions_.push_back(part);
    }
  }

  // A MERGE record delivered while the faults last starts the armed partition.
  void merge_delivered(uint64_t now) {
    if (!faulty()) return;
    for (Partition& p : partitions_)
      if (p.after_merge && p.from == mcast::kNever) {
        p.from = now + between(0, 2000);
        p.to = p.from + between(suspect() / 3, 4 * suspect());
        fault_end_ = std::max(fault_end_, p.to);
        ++merge_partitions_;
        note(now, "partition (" + p.shape + ") amid a merge, until t=" + std::to_string(p.to));
      }
  }

  size_t scaled(size_t count) const { return std::max<size_t>(1, static_cast<size_t>(count * opt_.fault_scale + 0.5)); }

  uint64_t suspect() const { return ropt_.membership.suspect_after_us; }

  // One to three partitions (4 to 12 in a storm), each a shape over random members, lasting from
  // a third of the suspicion timeout (members may not notice) to four times
  // it (view changes happen); they may overlap.
  void plan_partitions() {
    size_t count = scaled(opt_.storm ? between(4, 12) : between(1, 3));
    for (size_t p = 0; p < count; ++p) {
      Partition part;
      part.from = between(1000, fault_end_);
      part.to = part.from + between(suspect() / 3, 4 * suspect());
      fault_end_ = std::max(fault_end_, part.to);
      shape_partition(part);
      // Drawn apart from rng_, so the rest of a seed's schedule is as before.
      part.ordering_only = std::uniform_real_distribution<double>(0, 1)(shape_rng_) < 1.0 / 3;
      if (part.ordering_only) part.shape += ", ordering datagrams only";
      note(part.from, "partition (" + part.shape + ") until t=" + std::to_string(part.to));
      partitions_.push_back(part);
    }
  }

  void shape_partition(Partition& part) {
    auto cut_both = [&part](MemberId a, MemberId b) {
      part.cut.insert({a, b});
      part.cut.insert({b, a});
    };
    const MemberId x = any_member();
    const double shape = uniform();
    if (shape < 0.15 && n_ >= 3) {
      shape_no_majority(part, true);
    } else if (shape < 0.25 || n_ < 3) {
      part.shape = "isolate " + std::to_string(x);
      for (MemberId y = 0; y < n_; ++y)
        if (y != x) cut_both(x, y);
    } else if (shape < 0.5) {
      std::vector<bool> side = split_sides();
      part.shape = "halves {";
      for (MemberId y = 0; y < n_; ++y) part.shape += side[y] ? std::to_string(y) : "";
      part.shape += "}";
      for (MemberId a = 0; a < n_; ++a)
        for (MemberId b = 0; b < n_; ++b)
          if (side[a] != side[b]) part.cut.insert({a, b});
    } else if (shape < 0.65) {
      // Either direction (drawn apart from rng_, as ordering_only is).
      const bool deaf = std::uniform_real_distribution<double>(0, 1)(shape_rng_) < 0.5;
      part.shape = "one-way: " + std::to_string(x) + (deaf ? " hears no one" : " is heard by no one");
      for (MemberId y = 0; y < n_; ++y)
        if (y != x) part.cut.insert(deaf ? std::make_pair(y, x) : std::make_pair(x, y));
    } else if (shape < 0.85 || n_ < 4) {
      const MemberId c = static_cast<MemberId>((x + between(1, n_ - 1)) % n_);
      part.shape = "bridge: " + std::to_string(x) + " and " + std::to_string(c) + " cut";
      cut_both(x, c);
    } else {
      // Each member hears those within `radius` around the ring, itself
      // included a majority, and no two hear the same set.
      const size_t radius = (majority(n_) - 1 + 1) / 2;
      part.shape = "majorities-ring (radius " + std::to_string(radius) + ")";
      for (MemberId a = 0; a < n_; ++a)
        for (MemberId b = 0; b < n_; ++b) {
          size_t d = (a + n_ - b) % n_;
          if (std::min(d, n_ - d) > radius) part.cut.insert({a, b});
        }
    }
  }

  // A split with no majority anywhere: three sides (sides of at most
  // (n-1)/2), or (n even, when not `three`) two even halves.
  void shape_no_majority(Partition& part, bool three = false) {
    std::vector<MemberId> order(n_);
    for (MemberId y = 0; y < n_; ++y) order[y] = y;
    std::shuffle(order.begin(), order.end(), rng_);
    std::vector<int> side(n_);
    const bool halves = !three && n_ % 2 == 0 && uniform() < 0.5;
    const size_t most = halves ? n_ / 2 : std::max<size_t>(1, (n_ - 1) / 2);
    for (size_t j = 0; j < n_; ++j) side[order[j]] = static_cast<int>(std::min<size_t>(j / most, 2));
    part.shape = halves ? "even halves" : "three sides";
    for (int t = 0; t < (halves ? 2 : 3); ++t) {
      part.shape += t ? " | {" : " {";
      for (MemberId y = 0; y < n_; ++y) part.shape += side[y] == t ? std::to_string(y) : "";
      part.shape += "}";
    }
    for (MemberId a = 0; a < n_; ++a)
      for (MemberId b = 0; b < n_; ++b)
        if (side[a] != side[b]) part.cut.insert({a, b});
  }

  // Two non-empty sides: random, or exactly a majority and a minority, or
  // (n even) two equal halves where neither side is a majority.
  std::vector<bool> split_sides() {
    std::vector<MemberId> order(n_);
    for (MemberId y = 0; y < n_; ++y) order[y] = y;
    std::shuffle(order.begin(), order.end(), rng_);
    double how = uniform();
    size_t first_side = how < 0.4                  ? majority(n_)
                        : how < 0.6 && n_ % 2 == 0 ? n_ / 2
                                                   : between(1, n_ - 1);
    std::vector<bool> side(n_, false);
    for (size_t j = 0; j < first_side; ++j) side[order[j]] = true;
    return side;
  }

  // One to three crash events during the fault phase (3 to 8 in a storm).
  void plan_crashes() {
    size_t events = scaled(opt_.storm ? between(3, 8) : between(1, 3));
    for (size_t e = 0; e < events; ++e) {
      uint64_t at = between(1000, fault_end_);
      double kind = uniform();
      if (kind < 0.25) crash_group(at, 1, Crash::Trigger::AnyFlush);
      else if (kind < 0.4) crash_group(at, between(1, std::max<size_t>(1, n_ - majority(n_))), Crash::Trigger::AnyFlush);
      else if (kind < 0.5) crash_group(at, between(std::min(majority(n_), n_ - 1), n_ - 1), Crash::Trigger::AnyFlush);
      else if (kind < 0.6) crash_all(at);
      else if (kind < 0.75) crash_rolling(at);
      else crash_group(at, between(1, n_), Crash::Trigger::ViewChange);
    }
  }

  // Down for less than the network's delay (its earlier life's datagrams
  // reach the new one), or long enough to be suspected and left out.
  uint64_t downtime() { return uniform() < 0.3 ? between(0, max_delay_) : between(suspect() / 4, 3 * suspect()); }

  Crash::Trigger flush_trigger() {
    return uniform() < 0.5 ? Crash::Trigger::FlushWithRecords : Crash::Trigger::AnyFlush;
  }

  void add_crash(MemberId member, uint64_t at, uint64_t down, Crash::Trigger trigger, uint64_t restart_not_before = 0) {
    Crash c;
    c.member = member;
    c.at = at;
    c.trigger = trigger;
    c.give_up_at = at + (trigger == Crash::Trigger::ViewChange ? 4 : 1) * suspect();
    c.down = down;
    c.restart_not_before = restart_not_before;
    crashes_.push_back(c);
  }

  std::vector<MemberId> some_members(size_t count) {
    std::vector<MemberId> all(n_);
    for (MemberId y = 0; y < n_; ++y) all[y] = y;
    std::shuffle(all.begin(), all.end(), rng_);
    all.resize(count);
    return all;
  }

  void crash_group(uint64_t at, size_t count, Crash::Trigger trigger) {
    uint64_t down = downtime();
    Crash::Trigger t = trigger == Crash::Trigger::ViewChange ? trigger : flush_trigger();
    for (MemberId m : some_members(count)) add_crash(m, at, down, t);
  }

  // Kill all, then restart all at one moment.
  void crash_all(uint64_t at) {
    uint64_t restart = at + suspect() / 2 + downtime();
    for (MemberId m = 0; m < n_; ++m) add_crash(m, at, 0, flush_trigger(), restart);
  }

  // Members go down one after another, each back before (or just after) the next goes.
  void crash_rolling(uint64_t at) {
    for (MemberId m : some_members(between(2, n_))) {
      uint64_t down = downtime();
      add_crash(m, at, down, flush_trigger());
      at += down + (uniform() < 0.5 ? between(0, suspect() / 2) : between(suspect(), 3 * suspect()));
    }
  }

  // --splits: one after another, each a no-majority split (needs n >= 3).
  void plan_splits() {
    if (n_ < 3) return;
    uint64_t at = between(1000, 2 * suspect());
    const size_t count = scaled(between(1, 3));
    for (size_t p = 0; p < count; ++p) {
      Partition part;
      part.from = at;
      part.to = at + between(2 * suspect(), 6 * suspect());
      shape_no_majority(part);
      note(part.from, "partition (" + part.shape + ") until t=" + std::to_string(part.to));
      partitions_.push_back(part);
      at = part.to + between(suspect(), 3 * suspect());
    }
    fault_end_ = std::max(fault_end_, at);
  }

  // 2 s of the server's default timeouts (suspect_after 300 ms), at the
  // simulator's scale.
  uint64_t two_seconds() const { return suspect() * 20 / 3; }

  // --partial: after the cluster formed, one partial shape held for 20 to
  // 40 suspicion timeouts (check 8).
  void plan_partial() {
    Settling s;
    s.from = between(5, 8) * suspect();
    s.to = s.from + between(20, 40) * suspect();
    s.settle_at = s.from + two_seconds();
    s.steady = true;
    Partition part;
    part.from = s.from;
    part.to = s.to;
    const MemberId x = any_member();
    const MemberId y = static_cast<MemberId>((x + between(1, n_ - 1)) % n_);
    const double shape = uniform();
    if (shape < 0.2) {
      part.shape = "bridge: " + std::to_string(x) + " and " + std::to_string(y) + " cut";
      part.cut = {{x, y}, {y, x}};
    } else if (shape < 0.35 && n_ >= 4) {
      // A hub that hears everyone between two sides that hear only it.
      std::vector<MemberId> others;
      for (MemberId m = 0; m < n_; ++m)
        if (m != x) others.push_back(m);
      std::shuffle(others.begin(), others.end(), rng_);
      const size_t first = between(1, others.size() - 1);
      part.shape = "hub " + std::to_string(x) + " between {";
      for (size_t j = 0; j < others.size(); ++j) part.shape += (j == first ? "} and {" : j ? "," : "") + std::to_string(others[j]);
      part.shape += "}";
      for (size_t a = 0; a < first; ++a)
        for (size_t b = first; b < others.size(); ++b) {
          part.cut.insert({others[a], others[b]});
          part.cut.insert({others[b], others[a]});
        }
    } else if (shape < 0.5) {
      part.shape = "one-way: " + std::to_string(x) + " cannot send to " + std::to_string(y);
      part.cut = {{x, y}};
    } else if (shape < 0.58) {
      const bool deaf = uniform() < 0.5;
      part.shape = "one-way: " + std::to_string(x) + (deaf ? " hears no one" : " is heard by no one");
      for (MemberId m = 0; m < n_; ++m)
        if (m != x) part.cut.insert(deaf ? std::make_pair(m, x) : std::make_pair(x, m));
    } else if (shape < 0.7) {
      const size_t radius = uniform() < 0.5 ? 1 : (majority(n_) - 1 + 1) / 2;
      part.shape = "ring (each hears those within " + std::to_string(radius) + ")";
      for (MemberId a = 0; a < n_; ++a)
        for (MemberId b = 0; b < n_; ++b) {
          size_t d = (a + n_ - b) % n_;
          if (std::min(d, n_ - d) > radius) part.cut.insert({a, b});
        }
    } else if (shape < 0.8) {
      // Partial shapes a review tried: each link cut at random, both ways
      // or one way; two bridges; a member heard by all but hearing one,
      // or hearing all but heard by one.
      const double kind = uniform();
      if (kind < 0.5) {
        const bool both = uniform() < 0.5;
        const double p = 0.1 + uniform() * 0.3;
        part.shape = std::string(both ? "random links cut both ways:" : "random links cut one way:");
        for (MemberId a = 0; a < n_; ++a)
          for (MemberId b = 0; b < n_; ++b)
            if ((both ? a < b : a != b) && uniform() < p) {
              part.cut.insert({a, b});
              if (both) part.cut.insert({b, a});
              part.shape += " " + std::to_string(a) + (both ? "-" : ">") + std::to_string(b);
            }
      } else if (kind < 0.7) {
        const MemberId z = any_member(), w = static_cast<MemberId>((z + between(1, n_ - 1)) % n_);
        part.shape = "two bridges: " + std::to_string(x) + "-" + std::to_string(y) + ", " + std::to_string(z) + "-" +
                     std::to_string(w);
        part.cut = {{x, y}, {y, x}, {z, w}, {w, z}};
      } else {
        const bool hears_all = uniform() < 0.5;
        part.shape = "one-way: " + std::to_string(x) + (hears_all ? " hears all, heard only by " : " heard by all, hears only ") +
                     std::to_string(y);
        for (MemberId m = 0; m < n_; ++m)
          if (m != x && m != y) part.cut.insert(hears_all ? std::make_pair(x, m) : std::make_pair(m, x));
      }
    } else if (shape < 0.88) {
      std::vector<bool> side = split_sides();
      part.shape = "clean cut {";
      for (MemberId m = 0; m < n_; ++m) part.shape += side[m] ? std::to_string(m) : "";
      part.shape += "} from the rest";
      for (MemberId a = 0; a < n_; ++a)
        for (MemberId b = 0; b < n_; ++b)
          if (side[a] != side[b]) part.cut.insert({a, b});
    } else {
      // One link that goes down and up, each for a third of a suspicion
      // timeout to three of them: safety and progress only.
      s.steady = false;
      part.shape = "flapping link " + std::to_string(x) + "-" + std::to_string(y);
      part.cut = {{x, y}, {y, x}};
      for (uint64_t at = s.from; at < s.to;) {
        Partition pulse = part;
        pulse.from = at;
        pulse.to = std::min(s.to, at + between(suspect() / 3, 3 * suspect()));
        partitions_.push_back(pulse);
        at = pulse.to + between(suspect() / 3, 3 * suspect());
      }
    }
    s.shape = part.shape;
    s.cut = part.cut;
    s.majority_hears_each_other = largest_clique(part.cut) >= majority(n_);
    if (s.steady) partitions_.push_back(part);
    note(s.from, "partial partition (" + s.shape + ") until t=" + std::to_string(s.to) + "; settled by t=" +
                     std::to_string(s.settle_at) + (s.majority_hears_each_other ? "" : "; no majority all hear each other"));
    fault_end_ = s.to;
    settling_ = s;
  }

  // The most members that all hear each other with the links in `cut` down.
  size_t largest_clique(const std::set<std::pair<MemberId, MemberId>>& cut) const {
    size_t best = 0;
    for (uint32_t set = 1; set < (1u << n_); ++set) {
      bool clique = true;
      for (MemberId a = 0; a < n_ && clique; ++a)
        for (MemberId b = 0; b < n_ && clique; ++b)
          if (a != b && (set >> a & 1) && (set >> b & 1) && cut.count({a, b})) clique = false;
      if (clique) best = std::max<size_t>(best, __builtin_popcount(set));
    }
    return best;
  }

  // Clients that call during the fault phase, each one call at a time.
  void plan_clients() {
    const size_t count = opt_.storm || opt_.splits || opt_.partial ? between(3, 10) : between(1, 6);
    for (size_t c = 0; c < count; ++c) {
      SimClient client;
      client.id = 0x100000000ull * (c + 1) + seed_ % 0xffff;
      client.next_call_at = between(1000, fault_end_ / 2);
      client.retry_us = between(2'000, 60'000);
      clients_.push_back(client);
    }
  }

  // A stopped process (SIGSTOP): what reaches it waits until it resumes.
  // Drawn apart from rng_ (shape_rng_), as ordering_only is.
  void plan_pauses() {
    auto draw = [this](uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(shape_rng_); };
    const size_t count = scaled(draw(1, 3));
    for (size_t p = 0; p < count; ++p) {
      Pause pause;
      pause.member = static_cast<MemberId>(draw(0, n_ - 1));
      pause.from = draw(1000, fault_end_);
      pause.to = pause.from + (draw(0, 1) ? draw(1000, suspect() / 2) : draw(suspect() / 2, 3 * suspect()));
      note(pause.from, "pause member " + std::to_string(pause.member) + " until t=" + std::to_string(pause.to));
      pauses_.push_back(pause);
    }
  }

  // ---- time ----

  bool up(size_t i) const { return members_[i].process != nullptr; }

  bool faults_over(uint64_t now) const {
    if (now < fault_end_) return false;
    for (const Crash& c : crashes_)
      if (!c.done || !c.restarted) return false;
    for (const Pause& p : pauses_)
      if (now < p.to) return false;
    return true;
  }

  bool faulty() const { return healed_at_ == 0; }

  // --slow-member: see Options::slow_member.
  void plan_slow_member() {
    ropt_.membership.multicast.resign_lag_us = between(5'000, 30'000);
    slow_ = any_member();
    slow_delay_ = between(5'000, 30'000);
    const size_t windows = between(1, 3);
    for (size_t w = 0; w < windows; ++w) {
      uint64_t from = between(0, fault_end_ + 2 * suspect());
      slow_windows_.push_back({from, from + between(suspect(), 8 * suspect())});
    }
    note(0, "r" + std::to_string(slow_) + " slow by " + std::to_string(slow_delay_) + " us in " +
                std::to_string(windows) + " windows; resign lag " +
                std::to_string(ropt_.membership.multicast.resign_lag_us) + " us");
  }

  bool slow_link(uint64_t now, MemberId from, MemberId to) const {
    if (!opt_.slow_member || (from != slow_ && to != slow_)) return false;
    for (const auto& [begin, end] : slow_windows_)
      if (now >= begin && now < end) return true;
    return false;
  }

  bool link_down(uint64_t now, MemberId a, MemberId b, bool ordering_datagram) const {
    for (const Partition& p : partitions_)
      if (now >= p.from && now < p.to && p.cut.count({a, b}) && (ordering_datagram || !p.ordering_only)) return true;
    return false;
  }

  // A member that is paused (or syncing) takes nothing in until then.
  uint64_t busy_until(size_t i, uint64_t now) const {
    uint64_t until = members_[i].busy_until;
    for (const Pause& p : pauses_)
      if (p.member == i && now >= p.from && now < p.to) until = std::max(until, p.to);
    return until > now ? until : 0;
  }

  uint64_t next_time(uint64_t now) const {
    uint64_t next = mcast::kNever;
    if (!network_.empty()) next = std::min(next, network_.top().at);
    if (!client_net_.empty()) next = std::min(next, client_net_.top().at);
    for (size_t i = 0; i < n_; ++i) {
      const Member& m = members_[i];
      if (!m.process) continue;
      if (const uint64_t until = busy_until(i, now)) {
        next = std::min(next, until);
        continue;
      }
      next = std::min({next, m.process->next_deadline(), m.wake_at});
      if (m.process->has_handoff(now)) next = std::min(next, now + 1);
    }
    for (const SimClient& c : clients_) next = std::min({next, c.next_try_at, c.next_call_at, c.deadline});
    for (const Crash& c : crashes_) {
      if (!c.done) next = std::min(next, c.at > now ? c.at : c.give_up_at);
      if (c.done && !c.restarted) next = std::min(next, c.restart_at);
    }
    for (const Pause& p : pauses_)
      if (p.from > now) next = std::min(next, p.from);
    if (!healed_at_ && fault_end_ > now) next = std::min(next, fault_end_);
    if (settling_) {
      if (!settling_->checked_settled) next = std::min(next, settling_->settle_at);
      if (!settling_->checked_end) next = std::min(next, settling_->to);
      if (healed_at_ && !one_configuration_at_) next = std::min(next, healed_at_ + two_seconds());
    }
    return std::max(next, now + 1);
  }

  // ---- tracing ----

  void note(uint64_t now, const std::string& what) {
    std::string line = std::to_string(now) + " " + what;
    if (opt_.trace) std::printf("%10llu %s\n", static_cast<unsigned long long>(now), what.c_str());
    recent_.push_back(line);
    if (recent_.size() > 60) recent_.pop_front();
  }

  std::string who(size_t i) const {
    return "member " + std::to_string(i) + " (life " + std::to_string(members_[i].life.number) + ")";
  }

  void fail(uint64_t now, const std::string& what) {
    if (!failure_.empty()) return;
    failure_ = what + " [t=" + std::to_string(now) + "us]";
    note(now, "VIOLATION: " + what);
  }

  // ---- lives ----

  void start_life(Member& m, uint64_t now, Restored restored = {}, FTQueue state = {}) {
    size_t i = &m - members_.data();
    m.life = Life{};
    m.life.number = ++m.lives;
    m.life.incarnation = m.lives;
    m.life.delivered_upto = restored.delivered_upto;
    m.life.started_amnesiac = restored.amnesiac;
    m.wall_offset_ms = between(0, 5000);
    m.busy_until = 0;
    if (opt_.partitionable && !state.names_items()) state.name_items();  // a fresh state (the server's rule)
    m.process = std::make_unique<Replica>(static_cast<MemberId>(i), n_, m.life.incarnation, ropt_, std::move(state),
                                          std::move(restored));
    m.process->restore_tentative(m.tentative_lines);
    if (trace_out_.on()) trace_out_.log(now, i, "listening on the simulated network, life " + std::to_string(m.life.number));
    flush(i, now);  // a constructor may have work ready (not expected, but drive it as the server would)
  }

  uint64_t wall_ms(size_t i, uint64_t now) const { return now / 1000 + members_[i].wall_offset_ms; }

  // Is member i's crash due in this hand-off?
  Crash* crash_due(size_t i, uint64_t now, const Handoff& h) {
    for (Crash& c : crashes_) {
      if (c.member != i || c.done || c.at > now) continue;
      if (now >= c.give_up_at || fits(c.trigger, h)) return &c;
    }
    return nullptr;
  }

  static bool fits(Crash::Trigger t, const Handoff& h) {
    switch (t) {
      case Crash::Trigger::AnyFlush:
        return !h.records.empty() || !h.datagrams.empty() || !h.replies.empty();
      case Crash::Trigger::FlushWithRecords:
        return !h.records.empty();
      case Crash::Trigger::ViewChange:
        for (const LogRecord& rec : h.records)
          if (rec.kind == LogRecord::Kind::Promise || rec.kind == LogRecord::Kind::Install) return true;
        return false;
      case Crash::Trigger::Merge:
        for (const LogRecord& rec : h.records)
          if (rec.kind == LogRecord::Kind::Held && partition::is_merge_record(rec.held.payload)) return true;
        for (const AppliedEvent& a : h.applied)
          if (a.event.kind == Event::Kind::Deliver && partition::is_merge_record(a.event.delivery.payload)) return true;
        return false;
    }
    return false;
  }

  // Crashes that found no fitting hand-off in time strike now; those due
  // while their member is already down are spent.
  void crash_overdue(uint64_t now) {
    for (Crash& c : crashes_) {
      if (c.done || c.at > now) continue;
      if (!up(c.member)) {
        c.done = c.restarted = true;  // spent: its member is down already
      } else if (now >= c.give_up_at) {
        crash(c.member, now);  // marks it done and sets its restart time
      }
    }
  }

  // The crash: first the persist-before-send check (check 4), then the
  // process is gone; the files stay.
  void crash(size_t i, uint64_t now) {
    for (Crash& c : crashes_) {
      if (c.member != i || c.done || c.at > now) continue;
      c.done = true;
      c.restart_at = std::max(now + c.down, c.restart_not_before);
    }
    ++crashes_done_;
    Member& m = members_[i];
    // A third of the crashes are OS crashes (or power cuts): what is not on
    // disk is lost. With --deferred-durability every crash is one, and the
    // log is whole as far as it claimed (it claims only what a sync
    // covered). Without it, a record is claimed once written, so the log
    // may lose a claimed tail: the check of what it claimed is made before
    // the loss, and the restart is amnesiac (membership.hpp, "Amnesia").
    // (Without --fsync, an OS crash only while a majority would still have
    // whole logs: with a majority amnesiac the cluster refuses for good, by
    // design, until an operator vouches for logs: a real-process test,
    // smoke_lost_tail_majority, covers that.)
    size_t untrusted = 0;
    for (const Member& x : members_) untrusted += x.trusted_boot != x.boot;
    const bool os_crash = opt_.deferred || (std::uniform_real_distribution<double>(0, 1)(os_rng_) < opt_.os_crashes &&
                                            untrusted + 1 <= n_ - majority(n_));
    if (opt_.deferred) power_cut(i, now);
    check_claims(i, now);
    if (os_crash && !opt_.deferred) {
      ++os_crashes_;
      power_cut(i, now);
      ++m.boot;
    }
    m.process.reset();
    m.wake_at = mcast::kNever;
    note(now, who(i) + " CRASHES (log: " + std::to_string(m.log.size()) + " records, delivered mark " +
                  std::to_string(m.logged_delivered) + ")");
    if (trace_out_.on()) trace_out_.log(now, i, std::string("crashed (simulator)") + (os_crash ? ": an OS crash" : ""));
  }

  void restart_due(uint64_t now) {
    for (Crash& c : crashes_) {
      if (!c.done || c.restarted || c.restart_at > now) continue;
      c.restarted = true;
      if (up(c.member)) continue;  // restarted already by an earlier crash event's timer
      if (c.loses_tentative) {
        members_[c.member].tentative_lines.clear();
        lost_tentative_.insert(c.member);
        note(now, who(c.member) + " restarts without its tentative file");
      }
      restart(c.member, now);
      if (!failure_.empty()) return;
    }
  }

  // A new life from the files, as ReplicaStore::open reads them: the
  // snapshot, then the log (LogReplay, with the snapshot's end), whose held
  // records up to its Delivered mark are applied to the state. What the
  // log says was delivered and the last life had not applied (it crashed
  // between persisting and applying) counts as delivered now.
  void restart(size_t i, uint64_t now) {
    Member& m = members_[i];
    if (opt_.check_open) {
      std::string why;
      if (!opens(m.log, m.snapshot_upto, why)) return fail(now, who(i) + "'s restart: ReplicaStore::open " + why);
    }
    mcast::LogReplay reader(m.snapshot_upto);
    for (const LogRecord& rec : m.log) reader.add(rec);
    Restored r = reader.finish();
    if (opt_.rewrite_at_open) rewrite_log(i, r, r.delivered_upto);
    if (r.delivered_upto < m.life.delivered_upto)
      return fail(now, who(i) + " applied deliveries up to k=" + std::to_string(m.life.delivered_upto) +
                           " but its log says delivered up to k=" + std::to_string(r.delivered_upto));
    // The server's trust file: whole if written in this boot, or with
    // --fsync; else amnesiac until it catches up (Effects::log_trusted).
    r.amnesiac = !opt_.deferred && m.trusted_boot != m.boot && !opt_.trust_log_after_os_crash;
    m.trusted_boot = r.amnesiac ? -1 : m.boot;
    if (r.amnesiac) ++amnesiac_restarts_;
    FTQueue state;
    if (opt_.partitionable) state.name_items();  // a snapshot, if any, says so too
    std::string error;
    if (!m.snapshot.empty() && !state.load_snapshot(m.snapshot, error))
      return fail(now, who(i) + "'s snapshot does not load: " + error);
    adopt_logged_deliveries(i, r, now);
    std::map<uint64_t, const Delivery*> held;
    for (const Delivery& d : r.held) held[d.global_seq] = &d;
    for (uint64_t k = state.applied_upto() + 1; k <= r.delivered_upto && failure_.empty(); ++k) {
      auto it = held.find(k);
      if (it == held.end())
        return fail(now, who(i) + "'s log says delivered up to k=" + std::to_string(r.delivered_upto) +
                             " but holds no record k=" + std::to_string(k) + " (snapshot at k=" +
                             std::to_string(m.snapshot_upto) + ")");
      state.apply(*it->second);
    }
    if (r.last_installed) m.installed_id = std::max(m.installed_id, r.last_installed->id);
    std::string held_text = r.held.empty() ? "none" : std::to_string(r.held.front().global_seq) + ".." +
                                                          std::to_string(r.held.back().global_seq);
    note(now, "member " + std::to_string(i) + " RESTARTS as life " + std::to_string(m.lives + 1) + ": delivered " +
                  std::to_string(r.delivered_upto) + ", held " + held_text + ", promised " + r.promised.text() +
                  ", last primary " + r.last_primary.text() + (r.amnesiac ? ", amnesiac" : ""));
    start_life(m, now, std::move(r), std::move(state));
  }

  void adopt_logged_deliveries(size_t i, const Restored& r, uint64_t now) {
    Member& m = members_[i];
    std::map<uint64_t, const Delivery*> held;
    for (const Delivery& d : r.held) held[d.global_seq] = &d;
    for (uint64_t k = m.life.delivered_upto + 1; k <= r.delivered_upto; ++k) {
      auto it = held.find(k);
      if (it == held.end()) {
        if (k <= m.snapshot_upto) continue;  // in the snapshot
        return fail(now, "member " + std::to_string(i) + "'s log says delivered up to k=" +
                             std::to_string(r.delivered_upto) + " but holds no record k=" + std::to_string(k));
      }
      agree(i, *it->second, now);
    }
  }

  // ---- driving a member ----

  // A datagram is taken in at once; the member's hand-off follows at its
  // wake (--batch-us) or at once. A paused or syncing member takes it in
  // when it is free again (it waits in the socket's queue).
  void deliver_network(uint64_t now) {
    while (!network_.empty() && network_.top().at <= now && failure_.empty()) {
      InFlight f = network_.top();
      network_.pop();
      if (!up(f.to)) {
        if (opt_.trace) note(now, std::to_string(f.from) + " -> " + std::to_string(f.to) + " lost: receiver is down");
        continue;
      }
      if (const uint64_t until = busy_until(f.to, now)) {
        f.at = until;
        f.order = order_++;
        network_.push(f);
        continue;
      }
      const PeerVerdict verdict = members_[f.to].process->peer_datagram(f.from, f.bytes.data(), f.bytes.size(), now);
      if (trace_out_.on()) trace_out_.received(now, f.from, f.to, f.bytes, peer_verdict_note(verdict));
      took_input(f.to, now);
    }
  }

  void took_input(size_t i, uint64_t now) {
    if (opt_.batch_us > 0) {
      Member& m = members_[i];
      if (m.wake_at == mcast::kNever) m.wake_at = now + between_b(0, opt_.batch_us);
      return;
    }
    flush(i, now);
  }

  // --batch-us: the member wakes: a tick, then its hand-offs (server.cpp's step).
  void wakes_due(uint64_t now) {
    for (size_t i = 0; i < n_ && failure_.empty(); ++i) {
      Member& m = members_[i];
      if (m.wake_at > now || busy_until(i, now)) continue;
      m.wake_at = mcast::kNever;
      if (!up(i)) continue;
      m.process->tick(now, wall_ms(i, now));
      flush(i, now);
    }
  }

  uint64_t between_b(uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(batch_rng_); }

  void tick_due(uint64_t now) {
    for (size_t i = 0; i < n_ && failure_.empty(); ++i) {
      if (!up(i) || busy_until(i, now)) continue;
      Replica& r = *members_[i].process;
      if (r.next_deadline() > now && !r.has_handoff(now)) continue;
      r.tick(now, wall_ms(i, now));
      members_[i].wake_at = mcast::kNever;  // this wake takes what came in
      flush(i, now);
    }
  }

  // The simulator's side of carry_out: a log that survives crashes, a disk,
  // the network. A crash due in this hand-off stops it at a step: see flush.
  class Effects : public HandoffEffects {
   public:
    Effects(Run& run, size_t i, const Handoff& h, uint64_t now) : run_(run), i_(i), h_(h), now_(now) {}
    size_t write_budget = ~size_t{0};  // records this life writes before it dies
    size_t send_budget = ~size_t{0};   // datagrams and replies it sends before it dies
    bool crash_after_write = false;    // and dies right after its write
    bool events_checked = false;

    bool append(const std::vector<LogRecord>& records) override {
      const size_t count = std::min(records.size(), write_budget);
      run_.persist(i_, records, count, now_);
      if (count < records.size() || crash_after_write) return die();
      check_events();
      return true;
    }
    bool write_snapshot() override { return run_.write_snapshot(i_, now_) || die(); }
    // The trust file says a restart in this boot may trust the log: only
    // once the log holds the OrderComplete that made the claim whole again
    // (membership.hpp, "Amnesia"), of the primary the replica now names.
    bool log_trusted() override {
      Member& m = run_.members_[i_];
      const ConfigId last = m.process->group().last_primary();
      if (!m.primary_installs.count(last))
        run_.fail(now_, run_.who(i_) + " wrote its trust file before its log held OrderComplete " + last.text());
      m.trusted_boot = m.boot;
      return true;
    }
    // Partitionable mode's file: synced as written, so kept across crashes
    // of either kind, as the server's is.
    bool write_tentative(const std::vector<std::string>& lines, bool replace) override {
      Member& m = run_.members_[i_];
      if (replace) m.tentative_lines.clear();
      m.tentative_lines.insert(m.tentative_lines.end(), lines.begin(), lines.end());
      return true;
    }
    bool sync() override {
      run_.make_durable(i_, run_.members_[i_].log.size());
      synced = true;
      return true;
    }
    bool send(const mcast::Outgoing& d) override {
      if (send_budget == 0) return die();
      --send_budget;
      run_.send(i_, d, now_);
      return true;
    }
    bool reply(const ReplyOut& r) override {
      if (send_budget == 0) return die();
      --send_budget;
      run_.send_reply(i_, r, now_);
      if (r.reply.tentative) {  // who answered, and the size of the side that ran it
        // A repeat answered from the side's client table (the request ran
        // on this side, or came in a carried copy) is not the member's
        // latest run: it was answered by the side this member is on now.
        const Replica& process = *run_.members_[i_].process;
        const uint64_t side = process.ran_on_side(r.reply.client_id, r.reply.request_no);
        auto config = run_.configs_.find(ConfigId::of_ordering_number(side));
        const size_t side_size = side == 0 || config == run_.configs_.end()
                                     ? process.group().configuration().members.size()
                                     : config->second.members.size();
        auto& senders = run_.tentative_senders_[{r.reply.client_id, r.reply.request_no}];
        auto admitted = run_.last_admission_.find({i_, r.reply.client_id, r.reply.request_no});
        const bool from_table = admitted != run_.last_admission_.end() && admitted->second == Admission::AnsweredAgain;
        const TentativeSender sent{i_, run_.members_[i_].lives, side_size, r.reply.code, r.reply.value, from_table};
        for (const TentativeSender& s : senders)
          if (s.answered_differently(sent))
            run_.fail(now_, run_.who(i_) + " answered client " + std::to_string(r.reply.client_id) + "'s #" +
                                std::to_string(r.reply.request_no) + " tentatively two ways (code " +
                                std::to_string(static_cast<int>(s.code)) + " value " + std::to_string(s.value) +
                                ", then code " + std::to_string(static_cast<int>(sent.code)) + " value " +
                                std::to_string(sent.value) + ")");
        senders.push_back(sent);
      }
      return true;
    }
    // The events are applied (in the Replica) before anything of the
    // hand-off is carried out; the checks that compare them with the log
    // run once its records are written.
    void check_events() {
      if (events_checked) return;
      events_checked = true;
      run_.apply_events(i_, h_.applied, now_);
    }
    bool synced = false;

   private:
    static bool die() { return false; }  // the process died at this step
    Run& run_;
    size_t i_;
    const Handoff& h_;
    uint64_t now_;
  };

  // Member i's hand-offs, carried out by the one rule (carry_out) until none
  // is left, as server.cpp's carry_out_handoffs does. A due crash strikes
  // amid one: a prefix of its records written and nothing sent (nor its
  // events kept: the state in memory dies with it), or all written and a
  // prefix of its datagrams and replies sent.
  void flush(size_t i, uint64_t now) {
    for (int pass = 0; pass < 64 && up(i) && failure_.empty(); ++pass) {
      Replica& r = *members_[i].process;
      if (!r.has_handoff(now) && pass > 0) return;
      Handoff h = r.take_handoff(now);
      if (h.empty()) return;
      if (!h.fatal.empty()) return fail(now, who(i) + " stops: " + h.fatal);
      if (trace_out_.on()) trace_handoff(i, h, now);
      Effects fx(*this, i, h, now);
      Crash* crash_now = crash_due(i, now, h);
      if (crash_now) {
        if (fits(Crash::Trigger::ViewChange, h)) ++crashes_in_view_change_;
        if (opt_.partitionable && fits(Crash::Trigger::Merge, h)) ++merge_crashes_;
        const bool mid_write = uniform() < 0.5;
        fx.write_budget = mid_write ? between(0, h.records.size()) : h.records.size();
        fx.crash_after_write = mid_write;
        fx.send_budget = mid_write ? 0 : between(0, h.datagrams.size() + h.replies.size());
        note(now, who(i) + " crash strikes mid-hand-off: " + std::to_string(fx.write_budget) + "/" +
                      std::to_string(h.records.size()) + " records written, " + std::to_string(fx.send_budget) + "/" +
                      std::to_string(h.datagrams.size() + h.replies.size()) + " datagrams and replies sent");
      }
      last_now_ = now;
      const Misorder misorder = opt_.send_before_persist   ? Misorder::SendBeforePersist
                                : opt_.send_before_sync    ? Misorder::SendBeforeSync
                                : opt_.trust_before_persist ? Misorder::TrustBeforePersist
                                                           : Misorder::None;
      if (h.records.empty() && !(crash_now && fx.crash_after_write)) fx.check_events();
      const bool done = carry_out(r, h, fx, misorder);
      if (done && !(crash_now && fx.crash_after_write)) fx.check_events();
      if (fx.events_checked) note_frozen(i, h.records, h.records.size());
      if (!done || crash_now) {
        if (up(i)) crash(i, now);
        return;
      }
      // The server blocks in fdatasync: what comes meanwhile waits.
      if (fx.synced) members_[i].busy_until = now + between_c(20, 300);
      // Compactions and the log read back only once the hand-offs ran dry
      // (the server compacts then too: Replica::may_compact).
      if (r.has_handoff(now)) continue;
      if (failure_.empty() && opt_.compact > 0 && std::uniform_real_distribution<double>(0, 1)(compact_rng_) < opt_.compact)
        compact(i, now);
      if (failure_.empty() && opt_.check_replay && !r.has_handoff(now)) check_replay(i, now);
      if (!r.has_handoff(now)) return;
    }
  }

  // --trace-out: the hand-off's notes and deliveries, as server.cpp's
  // carry_out_handoffs traces them (CONFIG, DELIVER).
  void trace_handoff(size_t i, const Handoff& h, uint64_t now) {
    for (const std::string& note : h.notes) trace_out_.line(now, i, "CONFIG", "", note);
    for (const AppliedEvent& a : h.applied) {
      if (a.event.kind != Event::Kind::Deliver) continue;
      const Delivery& d = a.event.delivery;
      trace_out_.line(now, i, "DELIVER", "",
                      "k=" + std::to_string(d.global_seq) + " " + traced_name(d.name) + " " + batch_size_text(d.payload) +
                          (a.answered_here ? "; sent from here, so this replica replies" : ""));
    }
  }

  // ---- review instrumentation (--check-replay, --compact, --crash-at-snapshot) ----

  uint64_t between_c(uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(compact_rng_); }

  // What the server does when ReplicaStore::snapshot_due(): the state at
  // delivered_upto to snapshot.txt, the log rewritten to durable_state(),
  // then log_rewritten().
  void compact(size_t i, uint64_t now) {
    Member& m = members_[i];
    if (opt_.trace) note(now, who(i) + " compacts its log (snapshot at k=" + std::to_string(m.life.delivered_upto) + ")");
    m.snapshot = m.process->state().render_snapshot();
    m.snapshot_upto = m.process->state().applied_upto();
    rewrite_log(i, m.process->durable_state(), m.snapshot_upto);
    m.process->log_rewritten();
  }

  // A state transfer's snapshot, carried out (Handoff::write_snapshot):
  // snapshot.txt, then the log rewritten. --crash-at-snapshot kills the
  // member between the two (false: it died).
  bool write_snapshot(size_t i, uint64_t now) {
    Member& m = members_[i];
    m.snapshot = m.process->state().render_snapshot();
    m.snapshot_upto = m.process->state().applied_upto();
    if (opt_.crash_at_snapshot > 0 && faulty() &&
        std::uniform_real_distribution<double>(0, 1)(compact_rng_) < opt_.crash_at_snapshot) {
      note(now, who(i) + " crashes between writing its snapshot and rewriting its log");
      add_crash(static_cast<MemberId>(i), now, between_c(0, 2 * suspect()), Crash::Trigger::AnyFlush);
      return false;
    }
    rewrite_log(i, m.process->durable_state(), m.snapshot_upto);
    return true;
  }

  // The log read back as ReplicaStore::open reads it (with the snapshot's
  // end), against the live member.
  void compare_restored(size_t i, const Restored& r, const char* what, uint64_t now) {
    const Membership& p = members_[i].process->group();
    auto bad = [&](const std::string& field, const std::string& logged, const std::string& live) {
      fail(now, who(i) + ": " + what + " reads back " + field + " " + logged + ", the live member has " + live);
    };
    if (r.last_primary != p.last_primary()) return bad("last_primary", r.last_primary.text(), p.last_primary().text());
    if (r.claim_upto != p.claimed_held_upto())
      return bad("claim_upto", std::to_string(r.claim_upto), std::to_string(p.claimed_held_upto()) + " (last primary " +
                                                              p.last_primary().text() + ")");
    if (r.promised != p.promised()) return bad("promised", r.promised.text(), p.promised().text());
    if (r.delivered_upto != p.delivered_upto())
      return bad("delivered_upto", std::to_string(r.delivered_upto), std::to_string(p.delivered_upto()));
    std::map<uint64_t, const Delivery*> live;
    const Restored d = p.durable_state();
    for (const Delivery& x : d.held) live[x.global_seq] = &x;
    for (const Delivery& x : r.held) {
      auto it = live.find(x.global_seq);
      if (it != live.end() && (!(it->second->name == x.name) || it->second->payload != x.payload))
        return bad("record k=" + std::to_string(x.global_seq), short_payload(x.payload), short_payload(it->second->payload));
    }
    // Every live record of the claim above what it delivered is read back.
    for (const Delivery& x : d.held) {
      if (x.global_seq <= p.delivered_upto() || x.global_seq > p.claimed_held_upto()) continue;
      bool found = false;
      for (const Delivery& y : r.held) found |= y.global_seq == x.global_seq;
      if (!found) return bad("no record k=" + std::to_string(x.global_seq), "-", short_payload(x.payload));
    }
  }

  // ReplicaStore::open's loop over a log (snapshot first; each Delivered
  // mark applies the held records up to it, from the replay so far).
  static bool opens(const Log& log, uint64_t snapshot_upto, std::string& why) {
    mcast::LogReplay replay(snapshot_upto);
    uint64_t applied = snapshot_upto;
    for (size_t at = 0; at < log.size(); ++at) {
      const LogRecord& r = log[at];
      const mcast::LogReplay::Undo undo = replay.undoes_applied(r, applied);
      if (undo == mcast::LogReplay::Undo::Replaces) {
        why = "stops reading at record " + std::to_string(at) + " of " + std::to_string(log.size()) + ": " +
              record_text(r) + " replaces an applied record";
        return at + 1 == log.size();  // harmless only if nothing follows
      }
      if (undo == mcast::LogReplay::Undo::Voids) {
        why = "stops reading at record " + std::to_string(at) + " of " + std::to_string(log.size()) + ": " +
              record_text(r) + " voids records above " + std::to_string(replay.voids_above(r)) + " < applied " +
              std::to_string(applied);
        return false;
      }
      replay.add(r);
      if (r.kind != LogRecord::Kind::Delivered) continue;
      for (uint64_t k = applied + 1; k <= r.upto; ++k) {
        if (!replay.held(k)) {
          why = "refuses to start: the log delivers up to k=" + std::to_string(r.upto) + " (record " +
                std::to_string(at) + ") but holds no record k=" + std::to_string(k) + "; snapshot at k=" +
                std::to_string(snapshot_upto);
          return false;
        }
        applied = k;
      }
    }
    return true;
  }

  void check_replay(size_t i, uint64_t now) {
    Member& m = members_[i];
    if (opt_.check_open) {
      std::string why;
      if (!opens(m.log, m.snapshot_upto, why)) return fail(now, who(i) + "'s log: ReplicaStore::open " + why);
    }
    {
      mcast::LogReplay reader(m.snapshot_upto);
      for (const LogRecord& rec : m.log) reader.add(rec);
      compare_restored(i, reader.finish(), "its log", now);
    }
    if (!failure_.empty()) return;
    {
      Log rewritten = rewritten_log(m.process->durable_state());
      mcast::LogReplay reader(m.life.delivered_upto);
      for (const LogRecord& rec : rewritten) reader.add(rec);
      compare_restored(i, reader.finish(), "a compaction of its log", now);
    }
  }

  void persist(size_t i, const std::vector<LogRecord>& records, size_t count, uint64_t now) {
    Member& m = members_[i];
    for (size_t r = 0; r < count; ++r) {
      const LogRecord& rec = records[r];
      if (opt_.trace) note(now, who(i) + " persists " + record_text(rec));
      check_record(i, rec, now);
      m.log.push_back(rec);
      m.add(rec);
    }
    // Without --fsync the OS writes the log back when it likes: here at a
    // tenth of the hand-offs (and at every sync a promise asks for).
    if (!opt_.deferred && std::uniform_real_distribution<double>(0, 1)(os_rng_) < 0.1) make_durable(i, m.log.size());
  }

  // ---- deferred durability (group commit) ----

  // The log rewritten as ReplicaStore does (at a snapshot, a state transfer,
  // a restart): exactly `r`, and a Delivered mark. The claims said so far
  // were keyed by the old log's voidings, and lie below the new start. A
  // rewrite is synced: all of it is on disk.
  void rewrite_log(size_t i, const Restored& r, uint64_t delivered_mark) {
    Member& m = members_[i];
    m.log = rewritten_log(r);
    m.logged_delivered = delivered_mark;
    m.voidings = count_voidings(m.log);
    m.life.claims.held_upto.clear();
    m.durable_len = m.log.size();
    m.durable = static_cast<const LogSummary&>(m);
  }

  // Records on disk are the ones that count for the checks across members:
  // an Install a power cut took before any sync was never seen by anyone,
  // and its id may be used again.
  void make_durable(size_t i, size_t len) {
    Member& m = members_[i];
    for (; m.durable_len < len && m.durable_len < m.log.size(); ++m.durable_len) {
      const LogRecord& rec = m.log[m.durable_len];
      m.durable.add(rec);
      if (rec.kind == LogRecord::Kind::Install) check_install_keeps(i, rec.config, last_now_);
    }
  }

  // A crash with deferred durability is a power cut: of the records no sync
  // covered, a random first part made it to the disk, the rest is gone.
  // What the life applied beyond the surviving Delivered mark is gone with
  // its memory: the server rebuilds its state from the log.
  void power_cut(size_t i, uint64_t now) {
    Member& m = members_[i];
    const size_t keep = between(m.durable_len, m.log.size());
    note(now, who(i) + " power cut: " + std::to_string(keep - m.durable_len) + " of " +
                  std::to_string(m.log.size() - m.durable_len) + " unsynced records survive");
    m.log.resize(keep);
    static_cast<LogSummary&>(m) = m.durable;
    for (size_t r = m.durable_len; r < keep; ++r) m.add(m.log[r]);
    make_durable(i, keep);
    m.life.delivered_upto = std::min(m.life.delivered_upto, std::max(m.logged_delivered, m.snapshot_upto));
    // An install the cut took, which no datagram of this life announced,
    // never happened as far as anyone can know: a later life may install
    // that id (found as a false alarm in storm seed 2089).
    ConfigId known = m.announced_installed;
    if (!m.installs.empty()) known = std::max(known, *m.installs.rbegin());
    m.installed_id = std::min(m.installed_id, known);
  }

  // A Promise above the last REGULAR freezes the old configuration: no
  // delivery in it from the next flush on (this flush's events may have
  // come before the promise: a hand-off does not say how they interleave).
  void note_frozen(size_t i, const std::vector<LogRecord>& records, size_t written) {
    Life& life = members_[i].life;
    for (size_t r = 0; r < written; ++r)
      if (records[r].kind == LogRecord::Kind::Promise && life.regular.id < records[r].config.id)
        life.promised_past_regular = true;
  }

  // Each record against the log before it: Delivered marks never go back,
  // promises and installs strictly increase, and a member installs only the
  // id it promised last (the promise is durable: a restarted life that
  // finds it in its log may answer that PREPARE and install).
  void check_record(size_t i, const LogRecord& rec, uint64_t now) {
    const Member& m = members_[i];
    switch (rec.kind) {
      case LogRecord::Kind::Delivered:
        if (rec.upto < m.logged_delivered)
          fail(now, who(i) + " logged Delivered upto=" + std::to_string(rec.upto) + " after upto=" +
                        std::to_string(m.logged_delivered));
        break;
      case LogRecord::Kind::Promise:
        first_promised_.emplace(rec.config.id, now);
        if (rec.config.id <= m.logged_promise)
          fail(now, who(i) + " logged a Promise of " + rec.config.id.text() + " after one of " + m.logged_promise.text());
        break;
      case LogRecord::Kind::Install:
        if (!m.installs.empty() && rec.config.id <= *m.installs.rbegin())
          fail(now, who(i) + " logged an Install of " + rec.config.id.text() + " after one of " +
                        m.installs.rbegin()->text());
        if (rec.config.id != m.logged_promise)
          fail(now, who(i) + " installed " + rec.config.id.text() + " but its log's highest Promise is " +
                        m.logged_promise.text());
        break;
      default:
        break;
    }
  }

  // Sends one datagram through the faulty network, noting what it says
  // about the sender's log (for the check at its crash).
  void send(size_t i, const mcast::Outgoing& out, uint64_t now) {
    note_claims(i, out.bytes, now);
    const MemberId from = static_cast<MemberId>(i), to = out.to;
    int copies = faulty() && uniform() < dup_ ? 2 : 1;
    for (int c = 0; c < copies; ++c) {
      const bool slow = slow_link(now, from, to);
      const bool dropped = faulty() && (uniform() < drop_ || (slow && uniform() < 0.05));
      const bool cut = faulty() && !dropped && link_down(now, from, to, !is_membership(out.bytes));
      const bool lost = dropped || cut;
      if (trace_out_.on()) trace_out_.sent(now, from, to, out.bytes, dropped ? " (dropped: loss)" : cut ? " (dropped: cut)" : "");
      uint64_t delay = between(1, max_delay_);
      if (faulty() && uniform() < straggle_) delay += between(max_delay_, suspect());  // a straggler
      if (slow) delay += slow_delay_;
      if (opt_.trace)
        note(now, std::to_string(from) + " -> " + std::to_string(to) + " " + datagram_text(out.bytes) +
                      (lost ? "  (lost)" : "  (arrives " + std::to_string(now + delay) + ")"));
      if (!lost) network_.push(InFlight{now + delay, order_++, from, to, out.bytes});
    }
  }

  // Check 9: a side's leader answers only once it holds what each member
  // still in its configuration holds of every earlier side (or its
  // committed state has merged it): the side serves on all its members'
  // work (replica.cpp, "sides that meet without a majority"). A member's
  // holdings of earlier sides do not change while it is in the side.
  void check_side_gathered(size_t i, uint64_t now) {
    const Replica& leader = *members_[i].process;
    const mcast::Configuration& c = leader.group().configuration();
    const uint64_t side = c.id.ordering_number();
    const std::map<uint64_t, uint64_t> mine = leader.side_work_held();
    for (mcast::MemberId j : c.members) {
      if (j == i || !up(j) || !members_[j].process->group().installed() ||
          members_[j].process->group().configuration().id != c.id)
        continue;
      for (const auto& [earlier, end] : members_[j].process->side_work_held()) {
        if (earlier == side) continue;
        auto held = mine.find(earlier);
        const uint64_t have = std::max(held == mine.end() ? 0 : held->second, leader.state().absorbed(earlier));
        if (have < end)
          return fail(now, "check 9: " + who(i) + " answered tentatively for side " + std::to_string(side) + " holding " +
                               std::to_string(have) + " effects of side " + std::to_string(earlier) + ", of which member " +
                               std::to_string(j) + " holds " + std::to_string(end));
      }
    }
  }

  // Partitionable mode: a member says it holds a side's effects only once
  // its tentative file holds them (persist before send; the leader answers
  // for them on the strength of it).
  void check_side_ack(size_t i, uint64_t side, uint64_t held, uint64_t now) {
    uint64_t in_file = 0;
    for (const std::string& line : members_[i].tentative_lines) {
      std::string bytes;
      partition::Segment part;
      if (line.rfind("effect ", 0) == 0 && wire::from_hex(line.substr(7), bytes) && partition::decode_segment(bytes, part) &&
          part.side == side && part.first == in_file)
        in_file = part.end();
    }
    if (held > in_file)
      fail(now, who(i) + " said it holds side " + std::to_string(side) + "'s effects 1.." + std::to_string(held) +
                    ", but its tentative file holds 1.." + std::to_string(in_file));
  }

  void note_claims(size_t i, const std::string& bytes, uint64_t now) {
    Member& m = members_[i];
    Claims& c = m.life.claims;
    if (is_membership(bytes)) {
      wire::MembershipMessage msg;
      if (!wire::decode_membership(bytes.data(), bytes.size(), msg))
        return fail(now, who(i) + " sent an undecodable membership datagram");
      c.delivered_upto = std::max(c.delivered_upto, msg.delivered_upto);
      c.promised = std::max(c.promised, from_wire(msg.promised));
      if (msg.installed.epoch != 0) {
        c.installed.insert(from_wire(msg.installed));
        m.announced_installed = std::max(m.announced_installed, from_wire(msg.installed));
      }
      if (msg.type == wire::MembershipType::State) {
        uint64_t& held = c.held_upto[m.voidings];
        held = std::max(held, msg.held_upto);
        if (msg.last_primary.epoch != 0) c.last_primary.insert(from_wire(msg.last_primary));
        if (m.life.started_amnesiac) m.stated_amnesiac.insert(from_wire(msg.config));
      }
      // The deciding member counts its own state without a STATE datagram.
      if (msg.type == wire::MembershipType::Install && m.life.started_amnesiac) {
        m.stated_amnesiac.insert(from_wire(msg.config));
      }
      return;
    }
    uint64_t side = 0, side_held = 0;
    if (wire::decode_side_ack(bytes.data(), bytes.size(), side, side_held)) return check_side_ack(i, side, side_held, now);
    std::string segment_bytes;
    if (wire::decode_side_copy(bytes.data(), bytes.size(), segment_bytes)) return;
    wire::PeerPacket p;
    if (!wire::decode_peer(bytes.data(), bytes.size(), p)) return fail(now, who(i) + " sent an undecodable datagram");
    c.delivered_upto = std::max(c.delivered_upto, p.header.delivered_upto);
    uint64_t& held = c.held_upto[m.voidings];
    held = std::max(held, p.header.held_upto);
  }

  // Check 4: the log of a crashing life holds everything its datagrams said.
  void check_claims(size_t i, uint64_t now) {
    const Member& m = members_[i];
    const Claims& c = m.life.claims;
    const std::string head = "persist before send: " + who(i) + " crashed after saying ";
    for (const auto& [truncates, said] : c.held_upto) {
      uint64_t logged = held_contiguous(m.log, truncates, m.snapshot_upto);
      if (said > logged)
        return fail(now, head + "held_upto=" + std::to_string(said) + " but its log holds only 1.." + std::to_string(logged));
    }
    // (A snapshot holds 1..snapshot_upto too: after --crash-at-snapshot the
    // log's mark may lag it, as ReplicaStore's would.)
    if (c.delivered_upto > std::max(m.logged_delivered, m.snapshot_upto))
      return fail(now, head + "delivered_upto=" + std::to_string(c.delivered_upto) + " but its log's mark is " +
                           std::to_string(m.logged_delivered));
    if (m.logged_promise < c.promised)
      return fail(now, head + "promised=" + c.promised.text() + " but its log's highest Promise is " +
                           m.logged_promise.text());
    for (const ConfigId& id : c.installed)
      if (!m.installs.count(id)) return fail(now, head + "it is installed in " + id.text() + " but its log has no such Install");
    for (const ConfigId& id : c.last_primary)
      if (!m.primary_installs.count(id))
        return fail(now, head + "its last primary is " + id.text() + " but its log has no OrderComplete for it");
  }

  // ---- the events (checks 1 to 3) ----

  void apply_events(size_t i, const std::vector<AppliedEvent>& events, uint64_t now) {
    for (const AppliedEvent& a : events) {
      if (!failure_.empty()) return;
      const Event& e = a.event;
      switch (e.kind) {
        case Event::Kind::Deliver:
          on_deliver(i, e.delivery, now);
          break;
        case Event::Kind::Transitional:
          on_transitional(i, e.config, now);
          break;
        case Event::Kind::Regular:
          on_regular(i, e.config, e.reason, now);
          break;
        case Event::Kind::InstallSnapshot:
          on_install_snapshot(i, e, now);
          break;
      }
    }
  }

  // A snapshot is the agreed order up to its k, applied, which some member
  // delivered (the source did). The member then holds it as the server
  // does: snapshot file first, then the log rewritten to durable_state()
  // (Handoff::write_snapshot, carried out after these checks).
  void on_install_snapshot(size_t i, const Event& e, uint64_t now) {
    Member& m = members_[i];
    Life& life = m.life;
    const uint64_t upto = e.snapshot_upto;
    note(now, who(i) + " installs a snapshot at k=" + std::to_string(upto));
    FTQueue loaded;
    std::string error;
    if (!loaded.load_snapshot(e.snapshot, error) || loaded.applied_upto() != upto)
      return fail(now, who(i) + " got a snapshot for k=" + std::to_string(upto) + " that does not load as one: " + error);
    if (upto < life.delivered_upto)
      return fail(now, who(i) + " got a snapshot at k=" + std::to_string(upto) + " below what it delivered, k=" +
                           std::to_string(life.delivered_upto));
    if (life.phase == Phase::Unconfigured || life.phase == Phase::NonPrimary)
      return fail(now, who(i) + " got a snapshot outside a primary configuration");
    for (uint64_t k = life.delivered_upto + 1; k <= upto; ++k)
      if (agreed_.find(k) == agreed_.end())
        return fail(now, who(i) + "'s snapshot at k=" + std::to_string(upto) + " covers k=" + std::to_string(k) +
                             ", which no member delivered");
    life.delivered_upto = upto;
    ++snapshots_installed_;
    const Membership& p = m.process->group();
    if (upto > p.configuration().cut) ++snapshots_past_cut_;
    // (The order may complete only once the snapshot is applied: the
    // Replica applies every event in take_handoff, before any sync can be
    // reported, and the snapshot is on disk before the next hand-off's
    // records, so this holds by construction. Review4 found server.cpp
    // claiming first, when it applied events itself.)
  }

  void on_deliver(size_t i, const Delivery& d, uint64_t now) {
    Member& m = members_[i];
    Life& life = m.life;
    const std::string k = "k=" + std::to_string(d.global_seq);
    note(now, who(i) + " delivers " + k + " " + name_text(d.name));
    switch (life.phase) {
      case Phase::Unconfigured:
        return fail(now, who(i) + " delivered " + k + " before any TRANSITIONAL in this life");
      case Phase::NonPrimary:
        return fail(now, who(i) + " delivered " + k + " in non-primary configuration " + config_text(life.regular));
      case Phase::Primary:
        if (life.promised_past_regular)
          return fail(now, who(i) + " delivered " + k + " in " + life.regular.id.text() + " after promising a newer id");
        break;
      case Phase::Transitional:
        if (d.global_seq > life.transitional.cut)
          return fail(now, who(i) + " delivered " + k + " between TRANSITIONAL " + life.transitional.id.text() +
                               " and its REGULAR, above the cut " + std::to_string(life.transitional.cut));
        life.highest_since_transitional = std::max(life.highest_since_transitional, d.global_seq);
        break;
    }
    if (d.global_seq != life.delivered_upto + 1)
      return fail(now, who(i) + " delivered " + k + " after k=" + std::to_string(life.delivered_upto));
    if (m.logged_delivered < d.global_seq)
      return fail(now, who(i) + " applied " + k + " before its log's Delivered mark covered it (mark " +
                           std::to_string(m.logged_delivered) + ")");
    life.delivered_upto = d.global_seq;
    agree(i, d, now);
    check_kept_by_newer(i, d.global_seq, life.phase == Phase::Transitional ? life.transitional.id : life.regular.id, now);
  }

  // membership.hpp: once k is delivered in c, every later primary
  // configuration keeps it, so its cut is at least k. Checked both ways:
  // a delivery in c against the newer primaries installed so far, and (in
  // check_install_keeps) a new primary against what older ones delivered.
  void check_kept_by_newer(size_t i, uint64_t k, const ConfigId& in, uint64_t now) {
    uint64_t& highest = delivered_in_[in];
    highest = std::max(highest, k);
    for (auto it = primary_installs_.upper_bound(in); it != primary_installs_.end(); ++it)
      if (it->second.cut < k)
        return fail(now, who(i) + " delivered k=" + std::to_string(k) + " in " + in.text() + ", but the newer primary " +
                             config_text(it->second) + " is installed with a cut below it");
  }

  // Every Install of one id says the same; a primary one keeps everything
  // delivered in older configurations.
  void check_install_keeps(size_t i, const Configuration& c, uint64_t now) {
    auto [known, fresh] = installs_.emplace(c.id, c);
    if (!fresh && (known->second.members != c.members || known->second.primary != c.primary || known->second.cut != c.cut))
      return fail(now, who(i) + " logged Install " + config_text(c) + ", another member " + config_text(known->second));
    if (!c.primary || !fresh) return;
    primary_installs_.emplace(c.id, c);
    for (auto it = delivered_in_.begin(); it != delivered_in_.end() && it->first < c.id; ++it)
      if (it->second > c.cut)
        return fail(now, who(i) + " installs primary " + config_text(c) + ", but k=" + std::to_string(it->second) +
                             " was delivered in the older " + it->first.text() + ": the cut loses it");
  }

  // Checks 1 and 2 on one delivery, wherever it was applied.
  void agree(size_t i, const Delivery& d, uint64_t now) {
    const uint64_t k = d.global_seq;
    auto [first, fresh] = agreed_.emplace(k, d);
    if (!fresh) {
      if (first->second.name != d.name || first->second.payload != d.payload)
        fail(now, "agreement: " + who(i) + " delivered k=" + std::to_string(k) + " as " + name_text(d.name) +
                      ", another delivery of k=" + std::to_string(k) + " was " + name_text(first->second.name));
      return;
    }
    if (mcast::is_rotation_change(d.name)) {
      if (!d.payload.empty() || d.name.origin_seq != k || d.name.origin >= n_)
        return fail(now, who(i) + " delivered at k=" + std::to_string(k) + " a malformed rotation change");
      ++rotation_changes_;
      return;
    }
    std::vector<wire::BatchedOp> ops;
    partition::Segment part;
    const bool merge = opt_.partitionable && partition::decode_merge_record(d.payload, part);
    if (merge) merge_delivered(now);
    if (!merge && !wire::decode_batch(d.payload, ops))
      return fail(now, who(i) + " delivered at k=" + std::to_string(k) + " a payload that is not a batch");
    for (const partition::Effect& e : part.effects)
      if (e.client_id != 0 && !sent_.count({e.client_id, e.request_no}))
        return fail(now, who(i) + " delivered at k=" + std::to_string(k) + " a merge of an operation no client sent");
    for (const wire::BatchedOp& b : ops)
      if (!sent_.count({b.op.client_id, b.op.request_no}))
        return fail(now, who(i) + " delivered at k=" + std::to_string(k) + " an operation no client sent");
    check_fifo(d, now);  // also: no name delivered at two k
  }

  static std::string name_text(const wire::MessageName& n) {
    return "(" + std::to_string(n.origin) + "," + std::to_string(n.incarnation) + "," + std::to_string(n.origin_seq) + ")";
  }

  void check_fifo(const Delivery& d, uint64_t now) {
    auto& stream = streams_[{d.name.origin, d.name.incarnation}];
    auto [it, fresh] = stream.emplace(d.name.origin_seq, d.global_seq);
    const std::string where = "fifo: origin " + std::to_string(d.name.origin) + " stream " +
                              std::to_string(d.name.incarnation) + " seq " + std::to_string(d.name.origin_seq);
    if (!fresh) return fail(now, where + " delivered at k=" + std::to_string(it->second) + " and k=" + std::to_string(d.global_seq));
    if (it != stream.begin() && std::prev(it)->second > d.global_seq)
      fail(now, where + " at k=" + std::to_string(d.global_seq) + ", before seq " + std::to_string(std::prev(it)->first) +
                    " at k=" + std::to_string(std::prev(it)->second));
    if (std::next(it) != stream.end() && std::next(it)->second < d.global_seq)
      fail(now, where + " at k=" + std::to_string(d.global_seq) + ", after seq " + std::to_string(std::next(it)->first) +
                    " at k=" + std::to_string(std::next(it)->second));
  }

  // The configuration's cut comes from the Install record, which the log
  // must hold already (persisted before the event is applied). Not
  // necessarily as its last Install: one hand-off may hold this event and
  // the records of a newer install (with --batch-us), and it does not say
  // how they interleave.
  void on_transitional(size_t i, const Configuration& c, uint64_t now) {
    Member& m = members_[i];
    Life& life = m.life;
    note(now, who(i) + " TRANSITIONAL " + c.id.text() + " " + members_text(c.members));
    // A transition cut short by another view change (the member promised a
    // newer configuration before it delivered up to the cut) is abandoned:
    // its REGULAR never comes, and the next TRANSITIONAL starts afresh.
    if (life.phase == Phase::Transitional && !(life.transitional.id < c.id))
      return fail(now, who(i) + " TRANSITIONAL " + c.id.text() + " after TRANSITIONAL " + life.transitional.id.text());
    auto logged = m.install_of.find(c.id);
    if (logged == m.install_of.end())
      return fail(now, who(i) + " TRANSITIONAL " + c.id.text() + " but its log has no Install of it (last " +
                           m.logged_install.id.text() + ")");
    life.phase = Phase::Transitional;
    life.transitional = c;
    life.transitional.cut = logged->second.cut;
    life.highest_since_transitional = 0;
  }

  void on_regular(size_t i, const Configuration& c, const std::string& reason, uint64_t now) {
    Member& m = members_[i];
    Life& life = m.life;
    note(now, who(i) + " REGULAR " + config_text(c) + " (" + reason + ")");
    check_regular_shape(i, c, now);
    check_regular_agrees(i, c, now);
    if (!failure_.empty()) return;
    life.phase = c.primary ? Phase::Primary : Phase::NonPrimary;
    life.regular = c;
    life.promised_past_regular = false;
    m.installed_id = c.id;
  }

  // The member's own view: TRANSITIONAL before, deliveries up to the cut,
  // a newer id than any it installed, the Install in its log.
  void check_regular_shape(size_t i, const Configuration& c, uint64_t now) {
    const Member& m = members_[i];
    const Life& life = m.life;
    const std::string head = who(i) + " REGULAR " + c.id.text() + ": ";
    if (life.phase != Phase::Transitional) return fail(now, head + "no TRANSITIONAL before it");
    if (life.transitional.id != c.id) return fail(now, head + "after TRANSITIONAL " + life.transitional.id.text());
    for (MemberId t : life.transitional.members)
      if (!std::count(c.members.begin(), c.members.end(), t))
        return fail(now, head + "TRANSITIONAL named " + std::to_string(t) + ", not a member");
    if (life.highest_since_transitional > c.cut)
      return fail(now, head + "delivered k=" + std::to_string(life.highest_since_transitional) +
                           " between TRANSITIONAL and REGULAR, above the cut " + std::to_string(c.cut));
    if (c.primary && life.delivered_upto < c.cut)
      return fail(now, head + "primary with cut " + std::to_string(c.cut) + " but delivered only up to " +
                           std::to_string(life.delivered_upto));
    if (c.id <= m.installed_id)
      return fail(now, head + "not newer than " + m.installed_id.text() + ", installed before");
    auto it = m.install_of.find(c.id);
    if (it == m.install_of.end()) return fail(now, head + "its log has no Install of it (last " + m.logged_install.id.text() + ")");
    const Configuration& logged = it->second;
    if (logged.members != c.members || logged.primary != c.primary || logged.cut != c.cut)
      return fail(now, head + "differs from its logged Install " + config_text(logged));
    if (!std::count(c.members.begin(), c.members.end(), static_cast<MemberId>(i)))
      return fail(now, head + "does not contain the member itself");
    if (!std::is_sorted(c.members.begin(), c.members.end())) return fail(now, head + "members not ascending");
    // Primary iff a majority of n sent trusted STATEs: an amnesiac member
    // counts for nothing (membership.hpp, "Amnesia"). The checker knows
    // which lives started amnesiac (a superset of those amnesiac when they
    // sent their STATE), and which of them sent a STATE for c; x's current
    // life may be a later, whole one (seed 208924: judged by the current
    // life, a right decision from an amnesiac life's STATE failed here).
    size_t surely_trusted = 0;
    for (MemberId x : c.members)
      surely_trusted += !members_[x].stated_amnesiac.count(c.id) && !members_[x].life.started_amnesiac;
    if (c.primary ? c.members.size() < majority(n_) : surely_trusted >= majority(n_))
      return fail(now, head + (c.primary ? "primary" : "non-primary") + " with " + std::to_string(c.members.size()) +
                           " of " + std::to_string(n_) + " members (" + std::to_string(surely_trusted) +
                           " not amnesiac)");
  }

  // Every member's REGULAR for one id says the same.
  void check_regular_agrees(size_t i, const Configuration& c, uint64_t now) {
    auto [known, fresh] = configs_.emplace(c.id, c);
    if (fresh) return;
    const Configuration& k = known->second;
    if (k.members != c.members || k.primary != c.primary || k.cut != c.cut)
      fail(now, "configuration " + c.id.text() + " differs: " + who(i) + " has " + config_text(c) + ", another member " +
                    config_text(k));
  }

  // Check 6, for every live member at every step.
  void check_can_submit(uint64_t now) {
    for (size_t i = 0; i < n_ && failure_.empty(); ++i) {
      if (!up(i)) continue;
      const Membership& p = members_[i].process->group();
      if (!p.can_submit()) continue;
      Phase phase = members_[i].life.phase;
      if (!p.installed() || !p.primary() || phase == Phase::Unconfigured || phase == Phase::NonPrimary)
        fail(now, who(i) + " can_submit() while " + (p.installed() ? "" : "not installed, ") +
                      (p.primary() ? "" : "not primary, ") + "its last event " +
                      (phase == Phase::Unconfigured ? "none" : phase == Phase::NonPrimary ? "a non-primary REGULAR" : "fine"));
    }
  }

  // ---- clients ----

  static bool is_result(wire::ReplyCode c) {
    return c != wire::ReplyCode::NotInMajority && c != wire::ReplyCode::Busy;
  }

  // A call's operation: a few queue labels and ids, so that creates,
  // destroys, pushes and pops meet; every pushed item is unique.
  wire::Operation next_operation(SimClient& c) {
    wire::Operation op;
    op.client_id = c.id;
    op.request_no = ++c.request_no;
    const double what = uniform();
    const int32_t label = static_cast<int32_t>(between(1, 3)), id = static_cast<int32_t>(between(1, 4));
    if (c.late || what < 0.35) {
      op.op = wire::OpCode::Push;
      op.arg = id;
      op.item = static_cast<int32_t>(++items_);
    } else if (what < 0.55) {
      op.op = wire::OpCode::Pop;
      op.arg = id;
    } else if (what < 0.67) {
      op.op = wire::OpCode::Create;
      op.arg = label;
    } else if (what < 0.72) {
      op.op = wire::OpCode::Destroy;
      op.arg = id;
    } else {
      op.op = what < 0.8 ? wire::OpCode::Id : what < 0.9 ? wire::OpCode::Top : wire::OpCode::Size;
      op.arg = op.op == wire::OpCode::Id ? label : id;
    }
    return op;
  }

  uint64_t try_timeout(const SimClient& c) const {
    return std::max(c.retry_us, 4 * max_delay_ + 2000) << std::min(c.silent, 2);
  }

  void clients_due(uint64_t now) {
    for (size_t ci = 0; ci < clients_.size() && failure_.empty(); ++ci) {
      SimClient& c = clients_[ci];
      if (!c.calling && c.next_call_at <= now) {
        if (healed_at_ && !c.late) c.next_call_at = mcast::kNever;  // only the late clients call after the heal
        else start_call(ci, now);
      }
      if (c.calling && c.deadline <= now) end_call(ci, Outcome::Unknown, now);
      if (c.calling && c.next_try_at <= now) send_try(ci, now);
    }
  }

  void start_call(size_t ci, uint64_t now) {
    SimClient& c = clients_[ci];
    c.next_call_at = mcast::kNever;
    c.op = next_operation(c);
    c.calling = true;
    c.call_started_at = now;
    c.tries = c.silent = 0;
    c.refused.clear();
    c.doubled = false;
    if (!c.late) {
      c.member = any_member();
      c.deadline = now + between(suspect() / 2, 6 * suspect());
    }
    c.next_try_at = now;
  }

  void send_try(size_t ci, uint64_t now) {
    SimClient& c = clients_[ci];
    if (c.tries > 0 && !c.refused.count(c.tries - 1) && ++c.silent >= 3 && !c.late) {
      c.silent = 0;
      c.member = static_cast<MemberId>((c.member + 1) % n_);  // a silent replica: ask the next
    }
    const uint32_t attempt = static_cast<uint32_t>(c.tries++);
    c.next_try_at = now + try_timeout(c);
    sent_.insert({c.op.client_id, c.op.request_no});
    const std::string bytes = wire::encode_request(c.op, attempt);
    const int copies = c.lossy ? 2 : 1;
    if (opt_.trace)
      note(now, "client " + std::to_string(ci) + " -> " + std::to_string(c.member) + " " +
                    wire::opcode_name(c.op.op) + " #" + std::to_string(c.op.request_no) + " try " +
                    std::to_string(attempt) + (copies > 1 ? " (two copies)" : ""));
    client_datagram(ci, c.member, true, bytes, now, rng_);
    // The second copy's fate is drawn from copy_rng_, so a seed's schedule
    // from rng_ is the same as without copies.
    for (int k = 1; k < copies; ++k) client_datagram(ci, c.member, true, bytes, now, copy_rng_);
    if (copies > 1) {
      c.doubled = true;
      ++doubled_tries_;
    }
  }

  void client_datagram(size_t ci, MemberId member, bool to_member, const std::string& bytes, uint64_t now) {
    client_datagram(ci, member, to_member, bytes, now, rng_);
  }
  void client_datagram(size_t ci, MemberId member, bool to_member, const std::string& bytes, uint64_t now,
                       std::mt19937_64& rng) {
    auto draw = [&rng]() { return std::uniform_real_distribution<double>(0, 1)(rng); };
    if (faulty() && draw() < drop_) return;
    const int copies = faulty() && draw() < dup_ ? 2 : 1;
    for (int k = 0; k < copies; ++k)
      client_net_.push(ClientDatagram{now + std::uniform_int_distribution<uint64_t>(1, max_delay_)(rng), order_++, ci,
                                      member, to_member, bytes});
  }

  void send_reply(size_t i, const ReplyOut& r, uint64_t now) {
    const size_t ci = r.to.ipv4 - 1;  // see deliver_client_datagrams
    if (ci >= clients_.size()) return fail(now, who(i) + " replied to an address no client has");
    for (int k = 0; k < r.copies; ++k) {
      if (trace_out_.on())
        trace_out_.line(now, i, "REPLY", "out",
                        "to " + client_address(ci) + " code " + std::to_string(static_cast<int>(r.reply.code)) +
                            " value=" + std::to_string(r.reply.value) + " (client " + std::to_string(ci) + ", #" +
                            std::to_string(r.reply.request_no) + ")");
      client_datagram(ci, static_cast<MemberId>(i), false, wire::encode_reply(r.reply), now);
    }
  }

  void deliver_client_datagrams(uint64_t now) {
    while (!client_net_.empty() && client_net_.top().at <= now && failure_.empty()) {
      ClientDatagram d = client_net_.top();
      client_net_.pop();
      if (!d.to_member) {
        on_reply(d.client, d.bytes, now);
        continue;
      }
      if (!up(d.member)) continue;
      if (const uint64_t until = busy_until(d.member, now)) {
        d.at = until;
        d.order = order_++;
        client_net_.push(d);
        continue;
      }
      wire::Operation op;
      uint32_t attempt;
      if (!wire::decode_request(d.bytes.data(), d.bytes.size(), op, attempt))
        return fail(now, "a client sent an undecodable request");
      const wire::ClientAddress from{static_cast<uint32_t>(d.client + 1), 7};
      const Admission a = members_[d.member].process->client_request(op, attempt, from, now);
      if (settling_ && settling_->steady && !settling_->majority_hears_each_other && now >= settling_->settle_at &&
          now < settling_->to && a == Admission::Admitted)  // (an orphan from before the cut stays in flight)
        return fail(now, "check 8: " + who(d.member) + " did not refuse a request at once (" + admission_text(a) +
                             ") after settling, with no majority that all hear each other (" + settling_->shape + ")" +
                             where_members());
      if (a == Admission::Tentative && members_[d.member].process->serves_a_side()) check_side_gathered(d.member, now);
      if (opt_.partitionable) last_admission_[{d.member, op.client_id, op.request_no}] = a;
      if (opt_.trace) note(now, who(d.member) + " request from client " + std::to_string(d.client) + ": " + admission_text(a));
      if (trace_out_.on())
        trace_out_.line(now, d.member, "REQUEST", "in",
                        "from " + client_address(d.client) + " " + wire::opcode_name(op.op) + " " + std::to_string(op.arg) +
                            " (client " + std::to_string(d.client) + ", #" + std::to_string(op.request_no) + ") try " +
                            std::to_string(attempt + 1) + ": " + admission_text(a));
      took_input(d.member, now);
    }
  }

  void on_reply(size_t ci, const std::string& bytes, uint64_t now) {
    SimClient& c = clients_[ci];
    wire::Reply r;
    if (!wire::decode_reply(bytes.data(), bytes.size(), r)) return fail(now, "a member sent an undecodable reply");
    if (r.client_id != c.id) return fail(now, "client " + std::to_string(ci) + " got another client's reply");
    if (!c.calling || r.request_no != c.op.request_no) return;  // a late copy for an ended call
    if (is_result(r.code)) {
      c.lossy = r.lossy;  // as RetryPolicy::on_reply: result replies only
      c.tentative_answer = r.tentative;
      return end_call(ci, Outcome::Answered, now, r.code, r.value);
    }
    // A refusal of a try already refused (its second copy's, or a network
    // duplicate) says nothing new: ./client keeps waiting for the current try.
    if (c.refused.count(r.attempt)) return;
    c.refused.insert(r.attempt);
    if (opt_.refusal_vouches_for_all)
      for (int t = 0; t < c.tries; ++t) c.refused.insert(static_cast<uint32_t>(t));
    c.refusal = r.code;
    c.silent = 0;
    if (!c.late) c.member = static_cast<MemberId>((c.member + 1) % n_);
    c.next_try_at = now + (r.code == wire::ReplyCode::Busy ? 20'000 : 5'000);
  }

  void end_call(size_t ci, Outcome outcome, uint64_t now, wire::ReplyCode code = wire::ReplyCode::Ok, int32_t value = 0) {
    SimClient& c = clients_[ci];
    if (outcome == Outcome::Unknown && c.tries > 0 && static_cast<int>(c.refused.size()) == c.tries) {
      outcome = Outcome::Refused;  // every try was refused by a reply naming it
      code = c.refusal;
    }
    calls_.push_back(CallRecord{ci, c.op, outcome, code, value, now, c.call_started_at,
                                outcome == Outcome::Answered && c.tentative_answer});
    c.tentative_answer = false;
    if (c.doubled) {
      ++doubled_calls_;
      doubled_refused_ += outcome == Outcome::Refused;
    }
    note(now, "client " + std::to_string(ci) + " " + wire::opcode_name(c.op.op) + " #" + std::to_string(c.op.request_no) +
                  (outcome == Outcome::Answered  ? " answered " + std::to_string(static_cast<int>(code)) + " value " +
                                                       std::to_string(value)
                   : outcome == Outcome::Refused ? " refused: no effect"
                                                 : " outcome unknown"));
    c.calling = false;
    c.deadline = c.next_try_at = mcast::kNever;
    if (!c.late && !healed_at_ && now < fault_end_) c.next_call_at = now + between(0, 20'000);
  }

  // ---- partial partitions settle (check 8) ----

  bool hear_each_other(const std::vector<MemberId>& members) const {
    for (MemberId a : members)
      for (MemberId b : members)
        if (a != b && settling_->cut.count({a, b})) return false;
    return true;
  }

  void check_settling(uint64_t now) {
    if (!settling_ || !failure_.empty()) return;
    Settling& s = *settling_;
    if (!s.checked_settled && now >= s.settle_at) {
      s.checked_settled = true;
      if (s.steady) check_settled(now);
    }
    if (!s.checked_end && now >= s.to) {
      s.checked_end = true;
      if (s.steady) check_changes_while_cut(now);
      check_progress_while_cut(now);
    }
    if (healed_at_ && !one_configuration_at_) {
      bool one = true;
      for (size_t i = 0; i < n_ && one; ++i) {
        const Membership& p = members_[i].process->group();
        one = p.installed() && p.promised() == p.configuration().id && p.configuration().members.size() == n_;
      }
      if (one) one_configuration_at_ = now;
      else if (now >= healed_at_ + two_seconds())
        fail(now, "check 8: not all in one configuration 2 s (scaled) after the partial partition healed" + where_members());
    }
  }

  std::string where_members() const {
    std::string s;
    for (size_t i = 0; i < n_; ++i) {
      const Membership& p = members_[i].process->group();
      s += "\n    member " + std::to_string(i) + ": " + (p.installed() ? "installed " : "not installed, last ") +
           config_text(p.configuration()) + ", promised " + p.promised().text() + ", probes " +
           std::to_string(p.stats().probes) + ", rounds " + std::to_string(p.stats().view_changes) + ", refusals " +
           std::to_string(p.stats().refusals);
    }
    return s;
  }

  // Two seconds (scaled) after the cut: everyone installed, in a
  // configuration whose members all hear each other, none in a view
  // change; and a primary one if some majority all hear each other.
  void check_settled(uint64_t now) {
    const Settling& s = *settling_;
    bool primary = false;
    for (size_t i = 0; i < n_; ++i) {
      const Membership& p = members_[i].process->group();
      const Configuration& c = p.configuration();
      if (!p.installed() || p.promised() != c.id || !hear_each_other(c.members))
        return fail(now, "check 8: not settled 2 s (scaled) after the cut (" + s.shape + "): member " + std::to_string(i) +
                             (p.installed() ? " in " + config_text(c) : " not installed") + ", promised " +
                             p.promised().text() + where_members());
      primary = primary || (p.primary() && members_[i].life.phase == Phase::Primary);
    }
    if (s.majority_hears_each_other && !primary)
      fail(now, "check 8: no primary configuration 2 s (scaled) after the cut (" + s.shape +
                    "), though a majority all hear each other" + where_members());
  }

  // From settling to the end of the cut: at most 2 more ids promised.
  void check_changes_while_cut(uint64_t now) {
    const Settling& s = *settling_;
    std::string ids;
    size_t changes = 0;
    for (const auto& [id, at] : first_promised_)
      if (at >= s.settle_at && at < s.to) {
        ++changes;
        ids += " " + id.text() + "@" + std::to_string(at);
      }
    if (changes > 2)
      fail(now, "check 8: " + std::to_string(changes) + " ids promised while the cut (" + s.shape +
                    ") held after settling (at most 2):" + ids + where_members());
  }

  // No call started after settling ended unknown (a stall until its
  // deadline); with a primary, no client went 0.5 s (scaled) without a
  // call ending.
  void check_progress_while_cut(uint64_t now) {
    const Settling& s = *settling_;
    const uint64_t gap_bound = two_seconds() / 4;
    size_t answered = 0;
    for (const CallRecord& c : calls_) {
      if (c.started_at < s.settle_at || c.ended_at > s.to) continue;
      if (s.steady && s.majority_hears_each_other && c.outcome == Outcome::Unknown)
        return fail(now, "check 8: client " + std::to_string(c.client) + "'s call #" + std::to_string(c.op.request_no) +
                             " started at t=" + std::to_string(c.started_at) + ", after settling, and ended unknown (" +
                             s.shape + ")" + where_members());
      if (s.steady && s.majority_hears_each_other && c.ended_at > c.started_at + gap_bound)
        return fail(now, "check 8: client " + std::to_string(c.client) + "'s call #" + std::to_string(c.op.request_no) +
                             " took " + std::to_string(c.ended_at - c.started_at) + " us (" + s.shape +
                             "), up to t=" + std::to_string(c.ended_at) + where_members());
      answered += c.outcome == Outcome::Answered;
    }
    // A flapping link: view changes come and go with it; still, some
    // majority all hear each other throughout, so calls are answered.
    if (!s.steady && s.majority_hears_each_other && answered == 0)
      fail(now, "check 8: no call answered while the link flapped (" + s.shape + ")" + where_members());
  }

  // ---- the heal and liveness (check 5) ----

  // The faults are over: the network only delays and reorders from now on,
  // and a late client calls every member, each asking only that one.
  void heal(uint64_t now) {
    healed_at_ = now;
    note(now, "HEALED: no more loss, partitions or crashes; a late client calls each member");
    for (MemberId i = 0; i < n_; ++i) {
      SimClient c;
      c.id = 0x7000000000000000ull + 0x100000000ull * i + seed_ % 0xffff;
      c.late = true;
      c.member = i;
      c.retry_us = 10'000;
      c.next_call_at = now;
      clients_.push_back(c);
    }
  }

  bool late_calls_answered() const {
    for (size_t ci = 0; ci < clients_.size(); ++ci)
      if (clients_[ci].calling || clients_[ci].next_call_at != mcast::kNever) return false;
    return true;
  }

  // Everyone installed in one primary configuration of all n, no view
  // change under way, the same delivered_upto, every call ended (the late
  // ones answered).
  bool converged() const {
    if (!members_[0].process) return false;
    const Membership& first = members_[0].process->group();
    const ConfigId id = first.configuration().id;
    for (size_t i = 0; i < n_; ++i) {
      const Member& m = members_[i];
      if (!m.process) return false;
      const Membership& p = m.process->group();
      if (!p.installed() || !p.primary() || p.configuration().members.size() != n_) return false;
      if (p.configuration().id != id || p.promised() != id) return false;
      if (m.life.phase != Phase::Primary || m.life.regular.id != id) return false;
      if (p.delivered_upto() != first.delivered_upto() || m.life.delivered_upto != p.delivered_upto()) return false;
      // Nothing missing, unsequenced or unstable as far as it knows (so a
      // graceful stop could finish): a member that thinks it lacks
      // something nobody will ever send never gets here.
      if (!p.ordering() || !p.ordering()->quiescent()) return false;
    }
    return late_calls_answered();
  }

  std::string liveness_failure(uint64_t now) {
    std::string s = "liveness: not converged 20 s after the heal (t=" + std::to_string(now) + "us):";
    for (size_t i = 0; i < n_; ++i) {
      const Member& m = members_[i];
      if (!m.process) {
        s += "\n    member " + std::to_string(i) + ": down";
        continue;
      }
      const Membership& p = m.process->group();
      s += "\n    member " + std::to_string(i) + ": " + (p.installed() ? "installed " : "not installed, last ") +
           config_text(p.configuration()) + ", promised " + p.promised().text() + ", delivered " +
           std::to_string(p.delivered_upto()) + ", held " + std::to_string(p.held_upto()) + ", reachable " +
           std::to_string(p.reachable_count()) + ", waiting requests " + std::to_string(m.process->counts().waiting) +
           (p.ordering() ? (p.ordering()->quiescent() ? ", quiescent" : ", not quiescent") : ", no ordering") +
           ", view changes started " + std::to_string(p.stats().view_changes);
    }
    for (size_t ci = 0; ci < clients_.size(); ++ci)
      if (clients_[ci].calling)
        s += "\n    client " + std::to_string(ci) + (clients_[ci].late ? " (late, at member " : " (at member ") +
             std::to_string(clients_[ci].member) + "): call #" + std::to_string(clients_[ci].op.request_no) +
             " not answered after " + std::to_string(clients_[ci].tries) + " tries";
    return s;
  }

  // Nothing delivered was lost (every member reached the highest k any life
  // delivered), every stream delivered is 1, 2, ... without a hole, and
  // every answer is true (check 7).
  std::string final_checks() {
    uint64_t highest = agreed_.empty() ? 0 : agreed_.rbegin()->first;
    uint64_t reached = members_[0].process->group().delivered_upto();
    if (reached < highest)
      return "a delivered message was lost: k=" + std::to_string(highest) + " was delivered, the group ends at " +
             std::to_string(reached);
    for (const auto& [stream, seqs] : streams_) {
      uint64_t expect = 1;
      for (const auto& entry : seqs)
        if (entry.first != expect++)
          return "fifo: origin " + std::to_string(stream.first) + " stream " + std::to_string(stream.second) +
                 " delivered seq " + std::to_string(entry.first) + " without seq " + std::to_string(expect - 1);
    }
    // Check 9: every side's work is merged once the cluster is whole again.
    for (size_t i = 0; opt_.partitionable && i < n_; ++i)
      if (const size_t open = members_[i].process->open_tentative_effects())
        return "partitionable: " + who(i) + " still holds " + std::to_string(open) +
               " effects of sides it led that no merge applied, after the heal";
    return check_answers(reached);
  }

  // Check 9: in every queue, the items named by one configuration (a
  // side's, or the primary one whose order applied their pushes) stand in
  // the order it pushed them. merge_test checks merge() alone; this checks
  // what the replicas recorded and sent.
  static std::string fifo_per_side(const partition::QueueState& state) {
    for (const auto& [id, q] : state.queues) {
      std::map<uint64_t, partition::ItemName> last;
      for (const partition::Item& it : q.items) {
        auto [before, fresh] = last.emplace(it.name.side, it.name);
        if (!fresh && !(before->second < it.name))
          return "check 9: queue " + std::to_string(id) + " holds " + before->second.text() + " before " + it.name.text() +
                 ", against its side's order";
        before->second = it.name;
      }
    }
    return "";
  }

  // Check 7: the agreed order 1..upto replayed by a reference FTQueue (with
  // its exactly-once table: the state the members must all have), and
  // every call's outcome against where (and whether) the order applied it.
  // A tentative answer's work is lost, legitimately, only with the disk of
  // a side of one: every reply that said what the client took was sent by
  // a member that ran it on a side of one and later lost its tentative
  // file. (Another side's run of the same request, a retry that crossed
  // sides, may be merged with another answer.)
  bool lost_with_its_side(const CallRecord& call) const {
    auto it = tentative_senders_.find({call.op.client_id, call.op.request_no});
    if (it == tentative_senders_.end()) return false;
    bool any = false;
    for (const TentativeSender& s : it->second) {
      if (s.code != call.code || s.value != call.value) continue;
      if (s.side_size != 1 || !lost_tentative_.count(s.member)) return false;
      any = true;
    }
    return any;
  }

  std::string check_answers(uint64_t upto) {
    FTQueue reference;
    if (opt_.partitionable) reference.name_items();
    // Partitionable mode (check 9): what the MERGE records in the order
    // applied, by (client, request): the answer the side gave. One request
    // may have run on two sides (a retry that crossed sides: merge.hpp
    // counts it), each with its own answer.
    std::multimap<std::pair<uint64_t, uint64_t>, partition::Effect> merged;
    std::map<uint64_t, uint64_t> latest;  // client -> its latest request applied
    struct Applied {
      uint64_t k;
      wire::Reply reply;
    };
    std::map<std::pair<uint64_t, uint64_t>, Applied> applied;  // (client, request) -> first application
    // Partitionable mode: every side a MERGE record in the order names (its
    // own, or one it carries copies of), so that an item's name tells a
    // side's push from a committed one.
    std::set<uint64_t> sides;
    for (uint64_t k = 1; opt_.partitionable && k <= upto; ++k) {
      partition::Segment part;
      auto it = agreed_.find(k);
      if (it == agreed_.end() || !partition::decode_merge_record(it->second.payload, part)) continue;
      sides.insert(part.side);
      for (const partition::Effect& e : part.effects)
        if (e.carried_side != 0) sides.insert(e.carried_side);
    }
    for (uint64_t k = 1; k <= upto; ++k) {
      auto it = agreed_.find(k);
      if (it == agreed_.end()) return "k=" + std::to_string(k) + " is in no member's deliveries";
      if (mcast::is_rotation_change(it->second.name)) {  // checked in agree(): nothing to apply
        reference.apply(it->second);
        continue;
      }
      std::vector<wire::BatchedOp> ops;
      partition::Segment part;
      if (opt_.partitionable && partition::decode_merge_record(it->second.payload, part)) {
        const uint64_t before = reference.absorbed(part.side);
        reference.apply(it->second);
        merged_ += reference.last_merge();
        // Check 9: a side's pop is merged only after the push of the item
        // it took (else the push, merged later, would bring the item back):
        // a side that ran on other sides' work carries it (replica.cpp).
        for (const partition::Effect& e : part.effects) {
          const partition::ItemName& name = e.item.name;
          if (e.kind == partition::Effect::Kind::Pop && e.code == wire::ReplyCode::Ok && sides.count(name.side) &&
              reference.absorbed(name.side) < name.k)
            return "k=" + std::to_string(k) + ": a MERGE record of side " + std::to_string(part.side) + " pops item " +
                   name.text() + ", whose push no merge applied yet (it would come back when one does)";
        }
        for (uint64_t e = std::max(before, part.first); e < part.end(); ++e) {
          const partition::Effect& effect = part.effects[static_cast<size_t>(e - part.first)];
          if (effect.client_id == 0) continue;
          merged.emplace(std::make_pair(effect.client_id, effect.request_no), effect);
          // The merge raised the client's table as FTQueue's does (merge.cpp).
          uint64_t& last = latest[effect.client_id];
          last = std::max(last, effect.request_no);
        }
        continue;
      }
      if (!wire::decode_batch(it->second.payload, ops)) return "k=" + std::to_string(k) + " is not a batch";
      const std::vector<AddressedReply> replies = reference.apply(it->second);
      size_t next_reply = 0;
      for (const wire::BatchedOp& b : ops) {
        uint64_t& last = latest[b.op.client_id];
        if (b.op.request_no < last) continue;  // superseded: skipped, no reply
        if (next_reply >= replies.size()) return "the reference FTQueue gave fewer replies than expected at k=" + std::to_string(k);
        const wire::Reply& reply = replies[next_reply++].reply;
        if (b.op.request_no == last) continue;  // a repeat: answered from the table
        last = b.op.request_no;
        applied.emplace(std::make_pair(b.op.client_id, b.op.request_no), Applied{k, reply});
      }
    }
    for (const CallRecord& call : calls_) {
      auto it = applied.find({call.op.client_id, call.op.request_no});
      const std::string what = "answers: client " + std::to_string(call.client) + "'s " +
                               wire::opcode_name(call.op.op) + " #" + std::to_string(call.op.request_no);
      const auto [m_begin, m_end] = merged.equal_range({call.op.client_id, call.op.request_no});
      const bool merged_as_answered = std::any_of(m_begin, m_end, [&](const auto& entry) {
        return entry.second.code == call.code && entry.second.value == call.value;
      });
      if (call.tentative) {
        // Check 9: a tentative answer is what a side recorded for it, and
        // the order merged that record.
        if ((m_begin == m_end || !merged_as_answered) && lost_with_its_side(call)) {
          ++lost_with_a_side_of_one_;
          continue;
        }
        if (m_begin == m_end) return what + " was answered tentatively, but no merge in the order applied it";
        if (!merged_as_answered)
          return what + " was answered tentatively code " + std::to_string(static_cast<int>(call.code)) + " value " +
                 std::to_string(call.value) + ", but no side's merged record of it says so";
        continue;
      }
      if (call.outcome == Outcome::Refused && m_begin != m_end)
        return what + " was told it had no effect (every try refused), but a merge applied it";
      switch (call.outcome) {
        case Outcome::Answered:
          // (A side's answer given again from the merged table is marked
          // tentative, so it is checked above: an untagged one is an error.)
          if (it == applied.end())
            return what + " was answered (code " + std::to_string(static_cast<int>(call.code)) +
                   ") but the agreed order never applied it";
          if (it->second.reply.code != call.code || it->second.reply.value != call.value)
            return what + " was answered code " + std::to_string(static_cast<int>(call.code)) + " value " +
                   std::to_string(call.value) + ", but the order applied it at k=" + std::to_string(it->second.k) +
                   " with code " + std::to_string(static_cast<int>(it->second.reply.code)) + " value " +
                   std::to_string(it->second.reply.value);
          break;
        case Outcome::Refused:
          if (it != applied.end())
            return what + " was told it had no effect (every try refused), but the order applied it at k=" +
                   std::to_string(it->second.k);
          break;
        case Outcome::Unknown:
          unknown_applied_ += it != applied.end();
          break;
      }
    }
    // Tentative ids are drawn apart (merge.hpp), so no merge finds one taken;
    // but a leader that lost its tentative file lost its id counter too.
    if (merged_.id_collisions > 0 && lost_tentative_.empty())
      return "merge: " + std::to_string(merged_.id_collisions) + " creates on a side drew an id already taken";
    if (opt_.partitionable)
      if (std::string broken = fifo_per_side(reference.named_state()); !broken.empty()) return broken;
    const std::string expected = reference.render_snapshot();
    for (size_t i = 0; i < n_; ++i)
      if (members_[i].process->state().render_snapshot() != expected)
        return "answers: " + who(i) + "'s state differs from the agreed order replayed once per request (k=1.." +
               std::to_string(upto) + "):\n" + members_[i].process->state().render_snapshot() + "  expected:\n" + expected;
    return "";
  }

  partition::MergeCounts merged_;  // --partitionable: the agreed order's merges (check_answers)
  uint64_t seed_;
  Options opt_;
  std::mt19937_64 rng_;
  std::optional<Settling> settling_;                 // --partial
  std::map<ConfigId, uint64_t> first_promised_;       // when each id was first promised, anywhere
  uint64_t one_configuration_at_ = 0;                 // --partial: all in one configuration after the heal
  std::mt19937_64 shape_rng_;  // which partitions cut only the ordering's datagrams; pauses
  std::mt19937_64 compact_rng_{0xc0ffee};  // --compact, --crash-at-snapshot, sync times
  std::mt19937_64 batch_rng_{0xba7c4};      // --batch-us
  std::mt19937_64 os_rng_{0x05c4a54};       // OS crashes and write-back
  std::mt19937_64 copy_rng_{0xc0b1e5};      // the second copy of a client's try in lossy mode
  uint64_t doubled_tries_ = 0, doubled_calls_ = 0, doubled_refused_ = 0;  // clients' tries sent as two copies
  size_t os_crashes_ = 0, amnesiac_restarts_ = 0;
  size_t n_ = 0;
  ReplicaOptions ropt_;
  std::vector<Member> members_;

  // network, clients and schedule
  std::priority_queue<InFlight, std::vector<InFlight>, std::greater<InFlight>> network_;
  std::priority_queue<ClientDatagram, std::vector<ClientDatagram>, std::greater<ClientDatagram>> client_net_;
  uint64_t order_ = 0;
  double drop_ = 0, dup_ = 0, straggle_ = 0;
  MemberId slow_ = 0;  // --slow-member
  uint64_t slow_delay_ = 0, rotation_changes_ = 0;
  std::vector<std::pair<uint64_t, uint64_t>> slow_windows_;
  uint64_t max_delay_ = 0, fault_end_ = 0, healed_at_ = 0;
  std::vector<Partition> partitions_;
  std::vector<Crash> crashes_;
  std::vector<Pause> pauses_;
  size_t crashes_done_ = 0;
  size_t crashes_in_view_change_ = 0;
  size_t merge_crashes_ = 0, merge_partitions_ = 0;  // --partitionable: faults that struck amid a merge
  // --partitionable: members that lost their tentative file, and who sent
  // each tentative reply (member, its configuration's size then).
  std::set<size_t> lost_tentative_;
  struct TentativeSender {
    size_t member;
    uint64_t life;      // the member's restarts then
    size_t side_size;  // of the side that ran the request
    wire::ReplyCode code;
    int32_t value;
    bool from_table;  // a repeat answered from the committed table (merged: maybe another side's answer)
    // One life of a member gives one request, run on its sides, one answer
    // (a side whose ids ran out may create the label later, once another
    // side's copy holds it). A repeat from the merged table may differ: the
    // request may have crossed sides, and the merge kept the other's answer.
    bool answered_differently(const TentativeSender& o) const {
      return member == o.member && life == o.life && !from_table && !o.from_table &&
             (code != o.code || value != o.value) && code != wire::ReplyCode::IdsExhausted &&
             o.code != wire::ReplyCode::IdsExhausted;
    }
  };
  // --partitionable: what each member made of each request last (member, client, request).
  std::map<std::tuple<size_t, uint64_t, uint64_t>, Admission> last_admission_;
  std::map<std::pair<uint64_t, uint64_t>, std::vector<TentativeSender>> tentative_senders_;
  size_t lost_with_a_side_of_one_ = 0;
  size_t snapshots_installed_ = 0;
  size_t snapshots_past_cut_ = 0;  // of those, snapshots the source took past the configuration's cut
  uint64_t converged_at_ = 0;
  std::vector<SimClient> clients_;
  uint64_t items_ = 0;  // pushed items are 1, 2, ...

  // the checker's memory
  std::set<std::pair<uint64_t, uint64_t>> sent_;  // (client, request) of every request sent
  std::vector<CallRecord> calls_;
  uint64_t unknown_applied_ = 0;
  std::map<uint64_t, Delivery> agreed_;  // k -> the first delivery of k seen
  std::map<std::pair<MemberId, uint64_t>, std::map<uint64_t, uint64_t>> streams_;  // -> origin_seq -> k
  std::map<ConfigId, Configuration> configs_;           // from REGULAR events
  std::map<ConfigId, Configuration> installs_;          // from Install records
  std::map<ConfigId, Configuration> primary_installs_;  // the primary ones
  std::map<ConfigId, uint64_t> delivered_in_;           // configuration -> highest k delivered in it
  std::string failure_;
  std::deque<std::string> recent_;
  TraceOut trace_out_;  // --trace-out
  uint64_t last_now_ = 0;  // the time of the hand-off under way
};

void usage() {
  std::puts(
      "usage: group_sim_test [--seeds N] [--first-seed S] [--seed S] [--trace] [--trace-out DIR] [--keep-going]\n"
      "                      [--storm] [--splits] [--partial] [--slow-member] [--partitionable] [--deferred-durability]\n"
      "                      [--os-crashes P] [--bug NAME --expect-violation]\n"
      "                      [--loss-scale X] [--fault-scale X] [--batch-us U]\n"
      "                      [--check-replay] [--compact P] [--crash-at-snapshot P] [--rewrite-at-open] [--check-open]\n"
      "--trace-out DIR: with --seed S, write each member's events to DIR/replica-I.log in the\n"
      "      server's trace format, for ./picture DIR to draw (a failing seed, say)\n"
      "--loss-scale X: multiply the loss rate drawn for each seed (capped at 0.9)\n"
      "--fault-scale X: multiply the number of partitions, crash events and pauses\n"
      "--os-crashes P: without --deferred-durability, the share of crashes that are OS crashes\n"
      "      (the log loses its unwritten tail; the restart is amnesiac; default 0.33)\n"
      "--batch-us U: wake as server.cpp's step: input that comes within U us goes into one hand-off\n"
      "--check-replay: after every hand-off, the log read back must match the live member (review)\n"
      "--compact P: compact a member's log after a hand-off with probability P, as the server does\n"
      "--crash-at-snapshot P: crash between snapshot.txt and the log rewrite of a state transfer\n"
      "--rewrite-at-open: a restart rewrites its log to what it read back (ReplicaStore::open)\n"
      "--check-open: the log must open as ReplicaStore::open reads it, at restarts and with --check-replay\n"
      "--storm: a fault phase three times as long, 4-12 partitions and 3-8 crash events\n"
      "--deferred-durability: group commit (server --fsync): records reach the disk at the\n"
      "      syncs the Replica asks for, and a crash is a power cut that loses what no sync covered\n"
      "bugs: deliver-without-majority, cut-at-delivered, minority-delivers, primary-at-install,\n"
      "      shrink-claim-at-install, claim-before-durable (with --deferred-durability),\n"
      "      revoke-lagging-slot (with --slow-member) (protocol);\n"
      "      orphans-not-in-majority (an orphan answered 'not in a majority', issue 21's lie),\n"
      "      no-exactly-once (the state applies a repeated request again), forget-refusals (a duplicated\n"
      "      copy of a refused try is admitted) (the Replica's answers);\n"
      "      send-before-persist (carry_out sends datagrams before logging what they announce),\n"
      "      send-before-sync (with --deferred-durability: it sends what must wait for the disk first),\n"
      "      trust-log-after-os-crash (a restart after an OS crash trusts its log: the lost tail diverges),\n"
      "      count-amnesiac (an amnesiac member's STATE counts toward a primary configuration);\n"
      "      refusal-vouches-for-all (the client: a refusal counts for every try of its call, not the one it names);\n"
      "      propose-heard-set, yield-working-primary, no-prevote (with --partial: the partial-partition\n"
      "      rules broken: sets whose members do not all hear each other; a working primary given up; no probe)\n"
      "--slow-member: one member's links slow (5-30 ms) in windows; every member resigns its\n"
      "      slots when a majority finds it lagging (multicast.hpp, 'A slow member')\n"
      "--partial: one partial partition held long (bridge, hub, one-way, ring, clean cut, flapping link)\n"
      "      with no loss, crash or pause, and check 8 (it settles, then few changes, no stalls)\n"
      "Runs N seeded simulations (default 1000, from seed 1). A failure prints its seed;\n"
      "`group_sim_test --seed S --trace` replays it event by event. It stops after five\n"
      "failures; --keep-going lists every failing seed, one line each, for a survey.");
}

// The command line's switches, probabilities and scales, and the bugs
// (--bug NAME), each named once: the parser, the replay command and the
// clean rerun read the same tables.
struct BoolFlag {
  const char* name;
  bool Options::*field;
};
const BoolFlag kSwitches[] = {
    {"--storm", &Options::storm},
    {"--deferred-durability", &Options::deferred},
    {"--check-replay", &Options::check_replay},
    {"--rewrite-at-open", &Options::rewrite_at_open},
    {"--check-open", &Options::check_open},
    {"--splits", &Options::splits},
    {"--partial", &Options::partial},
    {"--partitionable", &Options::partitionable},
    {"--slow-member", &Options::slow_member},
};
struct NumberFlag {
  const char* name;
  double Options::*field;
  double max;
};
const NumberFlag kNumbers[] = {
    {"--compact", &Options::compact, 1},
    {"--crash-at-snapshot", &Options::crash_at_snapshot, 1},
    {"--loss-scale", &Options::loss_scale, 10},
    {"--fault-scale", &Options::fault_scale, 10},
    {"--os-crashes", &Options::os_crashes, 1},
};
const BoolFlag kDriverBugs[] = {
    {"send-before-persist", &Options::send_before_persist},
    {"send-before-sync", &Options::send_before_sync},
    {"trust-before-persist", &Options::trust_before_persist},
    {"trust-log-after-os-crash", &Options::trust_log_after_os_crash},
    {"refusal-vouches-for-all", &Options::refusal_vouches_for_all},
};
const struct {
  const char* name;
  mcast::GroupBug bug;
} kProtocolBugs[] = {
    {"deliver-without-majority", mcast::GroupBug::DeliverWithoutMajority},
    {"cut-at-delivered", mcast::GroupBug::CutAtDelivered},
    {"minority-delivers", mcast::GroupBug::MinorityDelivers},
    {"primary-at-install", mcast::GroupBug::PrimaryAtInstall},
    {"shrink-claim-at-install", mcast::GroupBug::ShrinkClaimAtInstall},
    {"claim-before-durable", mcast::GroupBug::ClaimBeforeDurable},
    {"revoke-lagging-slot", mcast::GroupBug::RevokeLaggingSlot},
    {"count-amnesiac", mcast::GroupBug::CountAmnesiac},
    {"propose-heard-set", mcast::GroupBug::ProposeHeardSet},
    {"yield-working-primary", mcast::GroupBug::YieldWorkingPrimary},
    {"no-prevote", mcast::GroupBug::NoPreVote},
    {"stale-headers-break", mcast::GroupBug::StaleHeadersBreak},
};
const struct {
  const char* name;
  ReplicaOptions::Bug bug;
} kReplicaBugs[] = {
    {"orphans-not-in-majority", ReplicaOptions::Bug::OrphansNotInMajority},
    {"no-exactly-once", ReplicaOptions::Bug::NoExactlyOnce},
    {"forget-refusals", ReplicaOptions::Bug::ForgetRefusals},
    {"promise-unsynced", ReplicaOptions::Bug::PromiseUnsynced},
    {"merge-outside-order", ReplicaOptions::Bug::MergeOutsideOrder},
    {"merge-drops-pushes", ReplicaOptions::Bug::MergeDropsPushes},
    {"untagged-merged-repeats", ReplicaOptions::Bug::UntaggedMergedRepeats},
    {"answer-before-copied", ReplicaOptions::Bug::AnswerBeforeCopied},
    {"ack-uncopied", ReplicaOptions::Bug::AckUncopied},
    {"no-carry", ReplicaOptions::Bug::NoCarry},
    {"no-gather", ReplicaOptions::Bug::NoGather},
    {"answer-superseded", ReplicaOptions::Bug::AnswerSuperseded},
};

bool parse_bug(const std::string& name, Options& opt) {
  for (const auto& b : kProtocolBugs)
    if (name == b.name) {
      opt.bug = b.bug;
      return true;
    }
  for (const auto& b : kReplicaBugs)
    if (name == b.name) {
      opt.replica_bug = b.bug;
      return true;
    }
  for (const BoolFlag& b : kDriverBugs)
    if (name == b.name) {
      opt.*b.field = true;
      return true;
    }
  return false;
}

// On error `bad` is the option that was not understood (or lacked a value).
bool parse(int argc, char** argv, Options& opt, std::string& bad) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    bad = a;
    auto value = [&](uint64_t& out) {
      if (i + 1 >= argc) return false;
      char* end;
      out = std::strtoull(argv[++i], &end, 10);
      return *end == 0;
    };
    auto number = [&](double& out, double max) {
      if (i + 1 >= argc) return false;
      char* end;
      out = std::strtod(argv[++i], &end);
      return *end == 0 && out >= 0 && out <= max;
    };
    bool known = false;
    for (const BoolFlag& f : kSwitches)
      if (a == f.name) {
        opt.*f.field = true;
        known = true;
      }
    for (const NumberFlag& f : kNumbers)
      if (a == f.name) {
        if (!number(opt.*f.field, f.max)) return false;
        known = true;
      }
    if (known) continue;
    if (a == "--seeds") {
      if (!value(opt.seeds)) return false;
    } else if (a == "--first-seed") {
      if (!value(opt.first_seed)) return false;
    } else if (a == "--seed") {
      if (!value(opt.first_seed)) return false;
      opt.seeds = 1;
    } else if (a == "--batch-us") {
      if (!value(opt.batch_us)) return false;
    } else if (a == "--trace") {
      opt.trace = true;
    } else if (a == "--trace-out" && i + 1 < argc) {
      opt.trace_out = argv[++i];
    } else if (a == "--keep-going") {
      opt.keep_going = true;
    } else if (a == "--expect-violation") {
      opt.expect_violation = true;
    } else if (a == "--bug" && i + 1 < argc) {
      if (!parse_bug(argv[++i], opt)) return false;
    } else {
      return false;
    }
  }
  return true;
}

std::string replay_command(uint64_t seed, const Options& opt) {
  std::string cmd = "group_sim_test --seed " + std::to_string(seed) + " --trace";
  for (const BoolFlag& f : kSwitches)
    if (opt.*f.field) cmd += std::string(" ") + f.name;
  for (const auto& b : kProtocolBugs)
    if (opt.bug == b.bug) cmd += std::string(" --bug ") + b.name;
  for (const auto& b : kReplicaBugs)
    if (opt.replica_bug == b.bug) cmd += std::string(" --bug ") + b.name;
  for (const BoolFlag& b : kDriverBugs)
    if (opt.*b.field) cmd += std::string(" --bug ") + b.name;
  const Options defaults;
  for (const NumberFlag& f : kNumbers)
    if (opt.*f.field != defaults.*f.field) cmd += std::string(" ") + f.name + " " + std::to_string(opt.*f.field);
  if (opt.batch_us > 0) cmd += " --batch-us " + std::to_string(opt.batch_us);
  return cmd;
}

// A catch counts only if the same seed passes without the injected bug:
// else the failure may be the protocol's own, not the bug's.
std::string fails_without_the_bug(uint64_t seed, const Options& opt) {
  Options clean = opt;
  clean.bug = mcast::GroupBug::None;
  clean.replica_bug = ReplicaOptions::Bug::None;
  for (const BoolFlag& b : kDriverBugs) clean.*b.field = false;
  clean.trace = false;
  clean.trace_out.clear();  // the files are the failing run's
  Run run(seed, clean);
  return run.execute();
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  std::string bad;
  if (!parse(argc, argv, opt, bad)) {
    usage();
    std::fprintf(stderr, "group_sim_test: bad option, or a bad or missing value after it: %s\n", bad.c_str());
    return 2;
  }
  if (!opt.trace_out.empty() && opt.seeds != 1) {
    std::fprintf(stderr, "group_sim_test: --trace-out draws one run: give --seed S\n");
    return 2;
  }
  if (!opt.trace_out.empty() && ::mkdir(opt.trace_out.c_str(), 0755) != 0 && errno != EEXIST) {
    std::fprintf(stderr, "group_sim_test: --trace-out %s: %s\n", opt.trace_out.c_str(), std::strerror(errno));
    return 2;
  }
  uint64_t failures = 0;
  Totals totals;
  for (uint64_t seed = opt.first_seed; seed < opt.first_seed + opt.seeds; ++seed) {
    Run run(seed, opt);
    std::string err = run.execute();
    if (err.empty()) {
      run.add_to(totals);
      continue;
    }
    if (opt.expect_violation) {
      std::string without = fails_without_the_bug(seed, opt);
      if (!without.empty()) {
        std::printf("seed %llu fails without the injected bug too, not counted: %s\n",
                    static_cast<unsigned long long>(seed), without.c_str());
        continue;
      }
      ++failures;
      std::printf("seed %llu (%s): caught the injected bug (the seed passes without it): %s\n  replay: %s\n",
                  static_cast<unsigned long long>(seed), run.describe().c_str(), err.c_str(),
                  replay_command(seed, opt).c_str());
      break;
    }
    ++failures;
    std::printf("FAIL seed %llu (%s): %s\n  replay: %s\n", static_cast<unsigned long long>(seed),
                run.describe().c_str(), err.c_str(), replay_command(seed, opt).c_str());
    if (opt.keep_going) continue;
    if (!opt.trace) {
      std::printf("  last events:\n");
      run.print_trace();
    }
    std::fflush(stdout);
    if (failures >= 5) break;
  }
  if (opt.expect_violation) {
    if (failures == 0) {
      std::printf("injected bug was NOT caught in %llu seeds\n", static_cast<unsigned long long>(opt.seeds));
      return 1;
    }
    return 0;
  }
  std::printf("%llu seeds from %llu: %llu failed\n", static_cast<unsigned long long>(opt.seeds),
              static_cast<unsigned long long>(opt.first_seed), static_cast<unsigned long long>(failures));
  auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::printf("passing runs: %llu; crashes %llu (%llu amid a view change; %llu OS crashes without --fsync, %llu amnesiac restarts);\n"
              "  pauses %llu; configurations %llu (%llu primary);\n"
              "  calls answered %llu, refused (no effect) %llu, unknown %llu (of those, applied %llu); delivered k %llu;\n"
              "  state transfers %llu (%llu with a snapshot past the cut); slowest convergence after the heal %.3f s (seed %llu)\n",
              u(totals.runs), u(totals.crashes), u(totals.crashes_in_view_change), u(totals.os_crashes),
              u(totals.amnesiac_restarts), u(totals.pauses),
              u(totals.configurations), u(totals.primary_configurations), u(totals.answered), u(totals.refused),
              u(totals.unknown), u(totals.unknown_applied), u(totals.delivered), u(totals.snapshots),
              u(totals.snapshots_past_cut), totals.slowest_convergence_us / 1e6, u(totals.slowest_seed));
  std::printf("  two copies a try (clients told lossy): %llu tries in %llu calls, %llu of those calls refused (no effect)\n",
              u(totals.doubled_tries), u(totals.doubled_calls), u(totals.doubled_refused));
  if (opt.slow_member) {
    std::printf("  slow member: %llu rotation changes delivered, in %llu runs\n", u(totals.rotation_changes),
                u(totals.rotation_runs));
    // The mode exists to exercise the rotation changes: a run of many seeds
    // without one means they no longer happen (a threshold or a rule broken).
    if (totals.runs >= 20 && totals.rotation_runs == 0) {
      std::printf("FAIL: no member left the rotation in %llu passing runs with a slow member\n", u(totals.runs));
      return 1;
    }
  }
  if (opt.partitionable)
    std::printf("  partitionable: %llu tentative answers, %llu MERGE records delivered; amid a merge: %llu crashes, "
                "%llu partitions began; %llu restarts without the tentative file, %llu answers lost with a side of one;\n"
                "  merged: %s\n",
                u(totals.tentative), u(totals.merge_records), u(totals.merge_crashes), u(totals.merge_partitions),
                u(totals.lost_tentative), u(totals.lost_with_a_side_of_one), totals.merged.text().c_str());
  // The mode aims a crash and a second partition at merges under way: a
  // run of many seeds without either (or without a MERGE) no longer tests
  // what it says it does.
  if (opt.partitionable && totals.runs >= 200 &&
      (totals.merge_records == 0 || totals.merge_crashes == 0 || totals.merge_partitions == 0)) {
    std::printf("FAIL: %llu runs with --partitionable, but no MERGE, no crash amid a merge or no partition "
                "begun amid one\n", u(totals.runs));
    return 1;
  }
  return failures == 0 ? 0 : 1;
}
