// group_sim_test: n Membership state machines (membership.hpp) over a
// simulated faulty network and a simulated clock, with crashes and restarts,
// every random choice drawn from one seed (same seed, same run).
//
// Each run: n in 2..7 members that start in no configuration and must form
// one. The network drops (0 to 30%), duplicates, delays and reorders
// datagrams, some straggle far behind, and partitions come and go: one
// member isolated, two sides (sometimes exactly a majority and a minority,
// sometimes an even split with no majority), a one-way cut where a member is
// heard but hears no one (or hears all and is heard by no one), a bridge where two members cannot talk but the
// others talk to both, and a ring of overlapping majorities where every
// member hears a majority but no two hear the same one. A third of the
// partitions cut only the ordering's datagrams (membership traffic passes):
// members keep hearing each other's keepalives, so no view change comes to
// the rescue, while acknowledgements, assignments and fetches go one way or
// nowhere; the holes two reviews found needed exactly that. Members crash: one,
// a minority, a majority, all at once (then all restart), one after another
// (rolling), or in the middle of a view change (at a flush that persists a
// promise or an install). Clients submit at random times and in bursts
// whenever a member says it can take work.
//
// Each member is driven as server.cpp drives it: after every receive, tick
// and submit, take_ready(); persist its records (the member's log, which
// survives crashes), apply its events (here: check them), send its
// datagrams. A crash strikes at a random point of a flush: a prefix of the
// records written and nothing sent, or all written and a prefix sent. A
// restarted member gets a larger incarnation and what replay() reads from
// its log (the rules server.cpp uses too). Datagrams still in flight reach
// the next life if they arrive after the restart.
//
// Checked, at the moment it happens (so a trace ends where it broke):
//   1. Agreement: every delivery of k, at every member and life, carries the
//      same name and payload; a life delivers k = restored+1, +2, ... with no
//      gap or repeat; no name or payload is delivered at two different k;
//      what a log says was delivered is never lost (a later life starts at
//      or above it, and at the end every member has delivered every k any
//      life ever delivered).
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
//      promised, the configurations it said it had installed).
//   5. Liveness: once the faults stop (partitions healed, every crashed
//      member back, no more loss), within 20 s of simulated time every member
//      is installed in one primary configuration of all n members, with the
//      same delivered_upto, and a few requests submitted at each member after
//      the heal are delivered everywhere (a request whose configuration was
//      replaced before it was delivered is retried, as a client would).
//   6. can_submit() is false unless the member is installed and primary.
//
//   group_sim_test --seeds 3000             # seeds 1..3000
//   group_sim_test --seed 1234 --trace      # one seed, print every event
//   group_sim_test --first-seed 1000000 --seeds 1000000   # an overnight run
//   group_sim_test --seeds 30000 --keep-going   # list every failing seed, one line each
//   group_sim_test --storm --seeds 3000         # long chains of view changes
//   group_sim_test --bug minority-delivers --expect-violation
//   group_sim_test --bug send-before-persist --expect-violation   # a driver bug
// With --expect-violation a seed counts as catching the bug only if it
// passes without it (so a failure of the protocol itself is not taken for
// a catch).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "../membership.hpp"
#include "../wire.hpp"

using mcast::ConfigId;
using mcast::Configuration;
using mcast::Delivery;
using mcast::Event;
using mcast::LogRecord;
using mcast::MemberId;
using mcast::Membership;
using mcast::Ready;
using mcast::Restored;

namespace {

struct Options {
  uint64_t first_seed = 1;
  uint64_t seeds = 1000;
  bool trace = false;
  bool expect_violation = false;
  bool keep_going = false;  // report every failing seed, one line each
  // Storm: a fault phase three times as long, with many more partitions,
  // crash events and bursts (long chains of view changes).
  bool storm = false;
  // Group commit (server --fsync): records are written at once and reach
  // the disk later, one sync at a time; a crash is a power cut and loses a
  // random part of what no sync covered yet (see Run::flush).
  bool deferred = false;
  mcast::GroupBug bug = mcast::GroupBug::None;
  // The driver's own deliberate bug: datagrams leave before the records of
  // the same Ready are persisted (breaks the rule server.cpp keeps).
  bool send_before_persist = false;
  // The driver's deliberate bug with --deferred-durability: a Ready that
  // must be synced before it is sent (a promise, a STATE) is sent at once,
  // its sync left for later like any other.
  bool send_before_sync = false;
  // The driver's deliberate bug with --compact: a compaction in the same
  // flush as a records_durable that let deliveries through, before the
  // extra pass applies them (breaks the rule server.cpp's step keeps: no
  // snapshot while durable_news_).
  bool compact_before_apply = false;
  // Review4: what server.cpp's write_snapshot() did when
  // ReplicaStore::write_snapshot failed (ENOSPC, EIO), before it stopped the
  // replica instead: it logged the error and called after_rewrite() all the
  // same, which told the protocol that everything written was durable.
  // Here every compaction "fails" that way:
  // the log is not rewritten and nothing is synced, but records_durable
  // (written_marks()) is called.
  bool snapshot_error_claims = false;
  // The driver's deliberate bug with --deferred-durability: a Ready synced
  // before its sends is claimed (records_durable) before its events are
  // applied, as server.cpp once did; an InstallSnapshot not yet on disk can
  // then see its order complete (needs --batch-us to arise).
  bool claim_before_apply = false;
  // Review instrumentation (review3): after every flush a crash does not
  // strike, read the member's log back (LogReplay) and compare it with the
  // live member: last primary, claim, promise, delivered, records. Also the
  // log a compaction would write now (durable_state), read back.
  bool check_replay = false;
  // Review instrumentation: with this probability per flush, compact the
  // member's log as ReplicaStore::write_snapshot does when snapshot_due()
  // (snapshot at delivered_upto, log rewritten to durable_state()),
  // so that compactions land mid-install. Draws from its own generator: the
  // seed's schedule is unchanged.
  double compact = 0;
  // Review instrumentation: with this probability, a member that installs a
  // snapshot (state transfer) during the fault phase crashes after
  // snapshot.txt is written and before its log is rewritten (the window in
  // server.cpp's install_snapshot); its restart reads the log with the
  // snapshot's end, as ReplicaStore::open does (LogReplay's snapshot_ahead).
  double crash_at_snapshot = 0;
  // Review instrumentation: a restart rewrites the log to what it read back,
  // as ReplicaStore::open does.
  bool rewrite_at_open = false;
  // Review instrumentation: with this probability, a source asked for a
  // snapshot (state transfer) provides it only some keepalives later, so
  // that it may have delivered past the new configuration's cut by then.
  // Draws from the review generator.
  double late_snapshot = 0;
  // Review instrumentation (review4): wake as server.cpp's step does. A
  // datagram is taken in at once (as recvfrom would queue it) but the member
  // flushes only at its next wake, up to batch_us later: every datagram that
  // came meanwhile, and a tick if one is due, go into one Ready, as
  // read_datagrams + tick + flush_ready put them. 0: flush after each one.
  uint64_t batch_us = 0;
  // Review instrumentation (review4): flush_ready's bound: at most 4 passes
  // per wake; what a fifth would take waits for the member's next event,
  // and no compaction happens meanwhile (step's !durable_news_).
  bool pass_bound = false;
  // Review instrumentation (review4): at every restart and after every flush
  // (with --check-replay), read the log as ReplicaStore::open does (snapshot,
  // then each Delivered mark applies held records from the replay): it must
  // neither refuse to start nor stop early at a record that voids what was
  // applied.
  bool check_open = false;
  // Review instrumentation (review4): server.cpp's sync_log: a Ready whose
  // records some member waits to hear claimed (claims_awaited) is synced at
  // the end of its pass, synchronously, and records_durable(marks) starts
  // another pass; the others still sync in the background as before.
  bool sync_after_send = false;
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

std::string short_payload(const std::string& p) { return p.substr(0, p.find(':')); }

// ---- the log, and how a restarted member reads it back ---------------------

using Log = std::vector<LogRecord>;

// A restart reads its log back by the rules ReplicaStore::open follows
// (mcast::LogReplay, membership.hpp).
Restored replay(const Log& log) {
  mcast::LogReplay reader;
  for (const LogRecord& rec : log) reader.add(rec);
  return reader.finish();
}

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
    if (m.type == wire::MembershipType::Prepare)
      s += " " + from_wire(m.config).text() + " " + members_text(m.members);
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

// ---- the run -------------------------------------------------------------------

// Datagrams on the directed links in `cut` are dropped while the partition
// lasts: all of them, or (ordering_only) only the ordering's, so that
// keepalives and the view change still pass.
struct Partition {
  uint64_t from = 0, to = 0;
  std::string shape;
  std::set<std::pair<MemberId, MemberId>> cut;
  bool ordering_only = false;
};

struct Crash {
  enum class Trigger {
    AnyFlush,         // a flush with records or datagrams
    FlushWithRecords, // a flush with records (the persist-before-send window)
    ViewChange,       // a flush that persists a Promise or an Install
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
};

struct InFlight {
  uint64_t at;
  uint64_t order;  // tie-break, keeps the run deterministic
  MemberId from, to;
  std::string bytes;
  bool operator>(const InFlight& o) const { return at != o.at ? at > o.at : order > o.order; }
};

struct PlannedBurst {
  uint64_t at;
  MemberId member;
  size_t count;
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
        break;
      case LogRecord::Kind::OrderComplete:
        primary_installs.insert(rec.config.id);
        if (rec.config.id == logged_install.id) ++voidings;
        break;
    }
  }
};

// One member: its process (null while crashed), its log (survives), and the
// checker's view of it. The summary (the base) covers the whole log; with
// deferred durability only log[0, durable_len) is on disk, summed up in
// `durable`.
struct Member : LogSummary {
  std::unique_ptr<Membership> process;
  Log log;
  Life life;
  uint64_t lives = 0;
  size_t durable_len = 0;
  LogSummary durable;
  // The sync under way (deferred durability): when it ends, the log up to
  // syncing_len is on disk, and the member is told syncing_marks.
  uint64_t sync_done_at = mcast::kNever;
  size_t syncing_len = 0;
  mcast::DurableMarks syncing_marks, written_marks;
  bool flush_again = false;  // records_durable was called mid-flush
  uint64_t snapshot_upto = 0;  // its snapshot (state transfer) holds 1..this
  bool crash_before_rewrite = false;  // --crash-at-snapshot: crash once this flush's events are applied
  uint64_t snapshot_due_at = mcast::kNever;  // --late-snapshot: when it provides the snapshot asked for
  uint64_t wake_at = mcast::kNever;  // --batch-us: input taken in, flush due then
  int passes = 0;                    // --pass-bound: extra passes under way in this flush chain
  bool sync_owed = false;            // --sync-after-send: this pass ends with a sync
  bool claim_after_apply = false;    // a Ready synced before its sends: claim it once applied
  mcast::DurableMarks owed_marks;    // --sync-after-send: the last Ready with records
  // Across lives: the newest configuration installed (event or log).
  ConfigId installed_id;
  std::set<std::string> delivered_payloads;
  std::deque<std::string> waiting;  // client requests not yet submitted
};

// A request submitted after the heal: its attempts (a retry is a new
// payload, as a client's retry is a new message), and where one was delivered.
struct LateRequest {
  MemberId member = 0;
  std::vector<std::string> attempts;
  ConfigId submitted_in;  // the configuration the last attempt went into (0: waiting)
  std::set<MemberId> delivered_at;
};

// What the runs did, summed over seeds, so that a passing count says how
// much was exercised.
struct Totals {
  uint64_t runs = 0;
  uint64_t crashes = 0;
  uint64_t crashes_in_view_change = 0;  // struck a flush persisting a Promise or an Install
  uint64_t configurations = 0;
  uint64_t primary_configurations = 0;
  uint64_t delivered = 0;   // highest k, summed
  uint64_t submitted = 0;
  uint64_t dropped = 0;     // submitted, never delivered (their configuration was replaced)
  uint64_t slowest_convergence_us = 0;
  uint64_t slowest_seed = 0;
  uint64_t snapshots = 0;   // state transfers completed
  uint64_t snapshots_past_cut = 0;  // of those, with a snapshot past the configuration's cut
  uint64_t pass_bound_hits = 0;  // --pass-bound
};

class Run {
 public:
  Run(uint64_t seed, const Options& opt) : seed_(seed), opt_(opt), rng_(seed), shape_rng_(seed ^ 0x5eedc0de) {}

  // Returns an empty string on success, else what went wrong and where.
  std::string execute() {
    setup();
    uint64_t now = 1000;
    for (auto& m : members_) start_life(m, now);
    for (;;) {
      restart_due(now);
      crash_overdue(now);
      deliver_network(now);
      wakes_due(now);
      syncs_due(now);
      tick_due(now);
      submit_due(now);
      check_can_submit(now);
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
    t.pass_bound_hits += pass_bound_hits_;
    t.crashes_in_view_change += crashes_in_view_change_;
    t.snapshots += snapshots_installed_;
    t.snapshots_past_cut += snapshots_past_cut_;
    t.configurations += configs_.size();
    for (const auto& entry : configs_) t.primary_configurations += entry.second.primary ? 1 : 0;
    t.delivered += agreed_.empty() ? 0 : agreed_.rbegin()->first;
    t.submitted += sent_names_.size();
    t.dropped += sent_names_.size() - payload_at_.size();
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
                  "n=%zu drop=%.2f dup=%.2f max_delay=%lluus partitions=%zu crashes=%zu submitted=%zu "
                  "configurations=%zu delivered=%llu datagrams=%llu",
                  members_.size(), drop_, dup_, static_cast<unsigned long long>(max_delay_), partitions_.size(),
                  crashes_done_, sent_names_.size(), configs_.size(),
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
    n_ = between(2, 7);
    members_.resize(n_);
    // MembershipConfig's defaults at half scale (keepalive 10 ms, suspect
    // 150 ms, view change retry 100 ms): the same ratios, shorter runs.
    cfg_.keepalive_us = 10'000;
    cfg_.suspect_after_us = 150'000;
    cfg_.view_change_timeout_us = 100'000;
    cfg_.multicast.max_unsequenced_own = between(1, 4);
    cfg_.bug = opt_.bug;
    cfg_.multicast.deferred_durability = opt_.deferred;
    drop_ = uniform() < 0.25 ? 0 : uniform() * 0.3;
    dup_ = uniform() < 0.5 ? 0 : uniform() * 0.1;
    max_delay_ = between(20, 3000);
    straggle_ = uniform() < 0.3 ? uniform() * 0.03 : 0;
    fault_end_ = (opt_.storm ? between(10, 30) : between(3, 10)) * cfg_.suspect_after_us;
    if (opt_.storm || uniform() < 0.6) plan_partitions();
    if (opt_.storm || uniform() < 0.6) plan_crashes();
    plan_requests();
  }

  uint64_t suspect() const { return cfg_.suspect_after_us; }

  // One to three partitions (4 to 12 in a storm), each a shape over random members, lasting from
  // a third of the suspicion timeout (members may not notice) to four times
  // it (view changes happen); they may overlap.
  void plan_partitions() {
    size_t count = opt_.storm ? between(4, 12) : between(1, 3);
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
    if (shape < 0.25 || n_ < 3) {
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
    size_t events = opt_.storm ? between(3, 8) : between(1, 3);
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

  // Bursts of client requests during the fault phase.
  void plan_requests() {
    size_t bursts = opt_.storm ? between(20, 80) : between(1, 25);
    for (size_t b = 0; b < bursts; ++b)
      planned_.push_back(PlannedBurst{between(1000, fault_end_), any_member(), uniform() < 0.3 ? between(2, 8) : 1});
    std::sort(planned_.begin(), planned_.end(),
              [](const PlannedBurst& a, const PlannedBurst& b) { return a.at > b.at; });  // pop from the back
  }

  // ---- time ----

  bool up(size_t i) const { return members_[i].process != nullptr; }

  bool faults_over(uint64_t now) const {
    if (now < fault_end_) return false;
    for (const Crash& c : crashes_)
      if (!c.done || !c.restarted) return false;
    return true;
  }

  bool faulty() const { return healed_at_ == 0; }

  bool link_down(uint64_t now, MemberId a, MemberId b, bool ordering_datagram) const {
    for (const Partition& p : partitions_)
      if (now >= p.from && now < p.to && p.cut.count({a, b}) && (ordering_datagram || !p.ordering_only)) return true;
    return false;
  }

  uint64_t next_time(uint64_t now) const {
    uint64_t next = mcast::kNever;
    if (!network_.empty()) next = std::min(next, network_.top().at);
    if (!planned_.empty()) next = std::min(next, planned_.back().at);
    for (const Member& m : members_)
      if (m.process) next = std::min({next, m.process->next_deadline(), m.sync_done_at, m.wake_at});
    for (const Crash& c : crashes_) {
      if (!c.done) next = std::min(next, c.at > now ? c.at : c.give_up_at);
      if (c.done && !c.restarted) next = std::min(next, c.restart_at);
    }
    if (!healed_at_ && fault_end_ > now) next = std::min(next, fault_end_);
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

  void start_life(Member& m, uint64_t now, Restored restored = {}) {
    size_t i = &m - members_.data();
    m.life = Life{};
    m.life.number = ++m.lives;
    m.life.incarnation = m.lives;
    m.life.delivered_upto = restored.delivered_upto;
    m.process = std::make_unique<Membership>(static_cast<MemberId>(i), n_, m.life.incarnation, cfg_, std::move(restored));
    flush(i, now);  // a constructor may have work ready (not expected, but drive it as the server would)
  }

  // Is member i's crash due in this flush?
  Crash* crash_due(size_t i, uint64_t now, const Ready& r) {
    for (Crash& c : crashes_) {
      if (c.member != i || c.done || c.at > now) continue;
      if (now >= c.give_up_at || fits(c.trigger, r)) return &c;
    }
    return nullptr;
  }

  static bool fits(Crash::Trigger t, const Ready& r) {
    switch (t) {
      case Crash::Trigger::AnyFlush:
        return !r.to_persist.empty() || !r.to_send.empty();
      case Crash::Trigger::FlushWithRecords:
        return !r.to_persist.empty();
      case Crash::Trigger::ViewChange:
        for (const LogRecord& rec : r.to_persist)
          if (rec.kind == LogRecord::Kind::Promise || rec.kind == LogRecord::Kind::Install) return true;
        return false;
    }
    return false;
  }

  // Crashes that found no fitting flush in time strike now; those due while
  // their member is already down are spent.
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
  // process and its clients' waiting requests are gone; the log stays.
  void crash(size_t i, uint64_t now) {
    for (Crash& c : crashes_) {
      if (c.member != i || c.done || c.at > now) continue;
      c.done = true;
      c.restart_at = std::max(now + c.down, c.restart_not_before);
    }
    ++crashes_done_;
    if (opt_.deferred) power_cut(i, now);
    check_claims(i, now);
    Member& m = members_[i];
    m.process.reset();
    m.sync_done_at = mcast::kNever;
    m.snapshot_due_at = mcast::kNever;
    m.claim_after_apply = false;
    m.sync_owed = false;
    m.waiting.clear();
    note(now, who(i) + " CRASHES (log: " + std::to_string(m.log.size()) + " records, delivered mark " +
                  std::to_string(m.logged_delivered) + ")");
  }

  void restart_due(uint64_t now) {
    for (Crash& c : crashes_) {
      if (!c.done || c.restarted || c.restart_at > now) continue;
      c.restarted = true;
      if (up(c.member)) continue;  // restarted already by an earlier crash event's timer
      restart(c.member, now);
      if (!failure_.empty()) return;
    }
  }

  // A new life from the log. What the log says was delivered and the last
  // life had not applied (it crashed between persisting and applying)
  // counts as delivered now, as the server would rebuild it.
  void restart(size_t i, uint64_t now) {
    Member& m = members_[i];
    if (opt_.check_open) {
      std::string why;
      if (!opens(m.log, m.snapshot_upto, why)) return fail(now, who(i) + "'s restart: ReplicaStore::open " + why);
    }
    Restored r = replay(m.log);
    if (opt_.crash_at_snapshot > 0) {  // as ReplicaStore::open reads it: with the snapshot's end
      mcast::LogReplay reader(m.snapshot_upto);
      for (const LogRecord& rec : m.log) reader.add(rec);
      r = reader.finish();
    }
    if (opt_.rewrite_at_open) {
      rewrite_log(i, r, r.delivered_upto);
    }
    if (r.delivered_upto < m.life.delivered_upto)
      return fail(now, who(i) + " applied deliveries up to k=" + std::to_string(m.life.delivered_upto) +
                           " but its log says delivered up to k=" + std::to_string(r.delivered_upto));
    adopt_logged_deliveries(i, r, now);
    if (r.last_installed) m.installed_id = std::max(m.installed_id, r.last_installed->id);
    std::string held = r.held.empty() ? "none" : std::to_string(r.held.front().global_seq) + ".." +
                                                     std::to_string(r.held.back().global_seq);
    note(now, "member " + std::to_string(i) + " RESTARTS as life " + std::to_string(m.lives + 1) + ": delivered " +
                  std::to_string(r.delivered_upto) + ", held " + held + ", promised " + r.promised.text() +
                  ", last primary " + r.last_primary.text());
    start_life(m, now, std::move(r));
  }

  void adopt_logged_deliveries(size_t i, const Restored& r, uint64_t now) {
    Member& m = members_[i];
    std::map<uint64_t, const Delivery*> held;
    for (const Delivery& d : r.held) held[d.global_seq] = &d;
    for (uint64_t k = m.life.delivered_upto + 1; k <= r.delivered_upto; ++k) {
      auto it = held.find(k);
      if (it == held.end())
        return fail(now, "member " + std::to_string(i) + "'s log says delivered up to k=" +
                             std::to_string(r.delivered_upto) + " but holds no record k=" + std::to_string(k));
      agree(i, *it->second, now);
      m.delivered_payloads.insert(it->second->payload);
    }
  }

  // ---- driving a member ----

  void deliver_network(uint64_t now) {
    while (!network_.empty() && network_.top().at <= now && failure_.empty()) {
      InFlight f = network_.top();
      network_.pop();
      if (!up(f.to)) {
        if (opt_.trace) note(now, std::to_string(f.from) + " -> " + std::to_string(f.to) + " lost: receiver is down");
        continue;
      }
      members_[f.to].process->receive(f.from, f.bytes.data(), f.bytes.size(), now);
      if (opt_.batch_us > 0) {
        Member& m = members_[f.to];
        if (m.wake_at == mcast::kNever) m.wake_at = now + between_b(0, opt_.batch_us);
        continue;
      }
      flush(f.to, now);
    }
  }

  // --batch-us: the member wakes: a tick if due, then one flush (server.cpp's step).
  void wakes_due(uint64_t now) {
    for (size_t i = 0; i < n_ && failure_.empty(); ++i) {
      Member& m = members_[i];
      if (m.wake_at > now) continue;
      m.wake_at = mcast::kNever;
      if (!up(i)) continue;
      if (m.process->next_deadline() <= now) m.process->tick(now);
      flush(i, now);
    }
  }

  uint64_t between_b(uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(batch_rng_); }

  void tick_due(uint64_t now) {
    for (size_t i = 0; i < n_ && failure_.empty(); ++i) {
      if (up(i) && members_[i].snapshot_due_at <= now) provide_late_snapshot(i, now);
      if (!up(i) || members_[i].process->next_deadline() > now) continue;
      members_[i].process->tick(now);
      members_[i].wake_at = mcast::kNever;  // this wake takes what came in
      flush(i, now);
    }
  }

  // One take_ready() and what the server does with it: persist, apply,
  // send. A due crash strikes amid it. The broken driver sends first.
  void flush(size_t i, uint64_t now) {
    Member& m = members_[i];
    m.flush_again = false;  // this pass takes whatever news left in ready_
    Ready r = m.process->take_ready();
    if (r.to_persist.empty() && r.events.empty() && r.to_send.empty() && !r.snapshot_wanted) return;
    Crash* crash_now = crash_due(i, now, r);
    size_t wrote = r.to_persist.size(), sent = r.to_send.size();
    bool apply = true;
    if (crash_now) {
      if (fits(Crash::Trigger::ViewChange, r)) ++crashes_in_view_change_;
      bool mid_write = uniform() < 0.5;
      wrote = mid_write ? between(0, r.to_persist.size()) : r.to_persist.size();
      sent = mid_write ? 0 : between(0, r.to_send.size());
      apply = !mid_write;
      if (opt_.send_before_persist) sent = r.to_send.size();
      note(now, who(i) + " crash strikes mid-flush: " + std::to_string(wrote) + "/" +
                    std::to_string(r.to_persist.size()) + " records written, " + std::to_string(sent) + "/" +
                    std::to_string(r.to_send.size()) + " datagrams sent");
    }
    last_now_ = now;
    if (opt_.send_before_persist) send(i, r.to_send, sent, now);
    persist(i, r.to_persist, wrote, now);
    if (opt_.deferred && !crash_now) after_write(i, r);
    // A Ready that must reach the disk before it is sent is synced before
    // its events are applied and its datagrams leave (server.cpp): if the
    // crash came after either, the sync was done.
    if (opt_.deferred && crash_now && r.sync_before_send && (apply || sent > 0) && !opt_.send_before_sync)
      make_durable(i, m.log.size());
    if (apply) apply_events(i, r.events, now);
    if (m.crash_before_rewrite) {
      m.crash_before_rewrite = false;
      note(now, who(i) + " crashes between writing its snapshot and rewriting its log");
      note_frozen(i, r.to_persist, wrote);
      add_crash(static_cast<MemberId>(i), now, between_c(0, 2 * suspect()), Crash::Trigger::AnyFlush);
      crash(i, now);
      return;
    }
    if (apply && r.snapshot_wanted && up(i)) {
      if (opt_.late_snapshot > 0 && std::uniform_real_distribution<double>(0, 1)(compact_rng_) < opt_.late_snapshot)
        m.snapshot_due_at = std::min(m.snapshot_due_at, now + between_c(1, 4) * cfg_.keepalive_us);
      else
        m.process->provide_snapshot(snapshot_text(m.life.delivered_upto), m.life.delivered_upto);
    }
    // server.cpp's claim_synced_ready: a Ready synced before its sends is
    // claimed once its events are applied, before the sends.
    if (m.claim_after_apply && up(i)) {
      m.claim_after_apply = false;
      m.process->records_durable(r.marks);
      m.flush_again = true;
    }
    note_frozen(i, r.to_persist, wrote);
    if (!opt_.send_before_persist) send(i, r.to_send, sent, now);
    if (crash_now) {
      crash(i, now);
      return;
    }
    // --sync-after-send: server.cpp's sync_log at the end of the pass (its
    // claims_awaited case): one sync of everything written, then
    // records_durable(the marks of the last Ready with records), and another pass.
    if (opt_.sync_after_send && opt_.deferred && up(i) && m.sync_owed) {
      m.sync_owed = false;
      make_durable(i, m.log.size());
      m.process->records_durable(m.owed_marks);
      m.flush_again = true;
    }
    // Only after a pass with no records_durable news may it compact
    // (server.cpp takes a snapshot only then).
    if (!opt_.compact_before_apply && flush_again_if_asked(i, now)) return;
    if (up(i) && failure_.empty() && opt_.compact > 0 &&
        std::uniform_real_distribution<double>(0, 1)(compact_rng_) < opt_.compact) {
      compact(i, now);
      if (flush_again_if_asked(i, now)) return;
    }
    if (up(i) && failure_.empty() && opt_.check_replay) check_replay(i, now);
  }

  // records_durable may have let more through (deliveries, a commit): the
  // server takes another pass before it sleeps (flush_ready), and the live
  // member is ahead of its log and its state until then. True if it did.
  bool flush_again_if_asked(size_t i, uint64_t now) {
    Member& m = members_[i];
    if (!m.flush_again || !up(i) || !failure_.empty()) return false;
    if (opt_.pass_bound && m.passes >= 3) {  // this was the 4th pass of the chain
      ++pass_bound_hits_;  // flush_ready stops; durable_news_ stays set (no snapshot)
      return true;
    }
    m.flush_again = false;
    ++m.passes;
    flush(i, now);
    --m.passes;
    return true;
  }

  // ---- review instrumentation (--check-replay, --compact, --crash-at-snapshot, --late-snapshot) ----

  // --late-snapshot: the snapshot asked for, at what the source has
  // delivered now (the protocol takes it only at its delivered_upto).
  void provide_late_snapshot(size_t i, uint64_t now) {
    Member& m = members_[i];
    m.snapshot_due_at = mcast::kNever;
    if (opt_.trace) note(now, who(i) + " provides the snapshot asked for, at k=" + std::to_string(m.life.delivered_upto));
    m.process->provide_snapshot(snapshot_text(m.life.delivered_upto), m.life.delivered_upto);
    flush(i, now);
  }

  uint64_t between_c(uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(compact_rng_); }

  // What ReplicaStore::write_snapshot does: the state at delivered_upto to
  // snapshot.txt, the log rewritten to durable_state().
  void compact(size_t i, uint64_t now) {
    Member& m = members_[i];
    if (opt_.snapshot_error_claims && opt_.deferred) {
      note(now, who(i) + " compaction fails (write_snapshot error); after_rewrite() claims written_marks() anyway");
      m.process->records_durable(m.process->written_marks());
      m.flush_again = true;
      return;
    }
    const Restored d = m.process->durable_state();
    if (opt_.trace) note(now, who(i) + " compacts its log (snapshot at k=" + std::to_string(m.life.delivered_upto) + ")");
    m.snapshot_upto = m.life.delivered_upto;
    rewrite_log(i, d, m.life.delivered_upto);
  }

  // The log read back as ReplicaStore::open reads it (with the snapshot's
  // end), against the live member.
  void compare_restored(size_t i, const Restored& r, const char* what, uint64_t now) {
    const Membership& p = *members_[i].process;
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
    if (!opt_.deferred) make_durable(i, m.log.size());
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
    if (opt_.deferred && m.process) {
      m.process->records_durable(m.process->written_marks());
      m.flush_again = true;
    }
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

  // After a flush wrote its records: a Ready that must not leave before the
  // disk has them is synced on the spot (as server.cpp does); otherwise a
  // sync starts unless one is under way (the next one covers what is
  // written meanwhile).
  void after_write(size_t i, const Ready& r) {
    Member& m = members_[i];
    m.written_marks = r.marks;
    if (!r.to_persist.empty()) m.owed_marks = r.marks;
    if (r.sync_before_send && !opt_.send_before_sync) {
      make_durable(i, m.log.size());
      m.sync_owed = false;
      if (opt_.claim_before_apply) {  // deliberately early: before the events are applied
        m.process->records_durable(r.marks);
        m.flush_again = true;
        return;
      }
      m.claim_after_apply = true;  // records_durable once the events are applied (flush)
      return;
    }
    if (opt_.sync_after_send && !r.to_persist.empty()) {
      bool only_marks = true;
      for (const LogRecord& rec : r.to_persist) only_marks &= rec.kind == LogRecord::Kind::Delivered;
      if (!only_marks && m.process->claims_awaited()) {
        m.sync_owed = true;  // synced at the end of this pass (flush)
        return;
      }
      // What no one waits for: server.cpp syncs it within kOwedSyncUs (10 ms).
      start_sync(i, r.marks, 10'000);
      return;
    }
    start_sync(i, r.marks);
  }

  void start_sync(size_t i, const mcast::DurableMarks& marks, uint64_t max_delay_us = 2000) {
    Member& m = members_[i];
    if (m.sync_done_at != mcast::kNever || m.durable_len == m.log.size()) return;
    m.syncing_len = m.log.size();
    m.syncing_marks = marks;
    m.sync_done_at = last_now_ + between(20, max_delay_us);
  }

  void syncs_due(uint64_t now) {
    for (size_t i = 0; i < n_ && failure_.empty(); ++i) {
      Member& m = members_[i];
      if (!up(i) || m.sync_done_at > now) continue;
      m.sync_done_at = mcast::kNever;
      make_durable(i, m.syncing_len);
      if (opt_.trace) note(now, who(i) + " sync done: " + std::to_string(m.durable_len) + " records on disk");
      m.process->records_durable(m.syncing_marks);
      m.wake_at = mcast::kNever;
      flush(i, now);
      if (up(i)) start_sync(i, m.written_marks);
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
  }

  // A Promise above the last REGULAR freezes the old configuration: no
  // delivery in it from the next flush on (this flush's events may have
  // come before the promise: a Ready does not say how they interleave).
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

  // Sends the first `count` datagrams through the faulty network, noting
  // what each says about the sender's log (for the check at its crash).
  void send(size_t i, const std::vector<mcast::Outgoing>& out, size_t count, uint64_t now) {
    for (size_t o = 0; o < count && o < out.size(); ++o) {
      note_claims(i, out[o].bytes, now);
      const MemberId from = static_cast<MemberId>(i), to = out[o].to;
      int copies = faulty() && uniform() < dup_ ? 2 : 1;
      for (int c = 0; c < copies; ++c) {
        bool lost = faulty() && (uniform() < drop_ || link_down(now, from, to, !is_membership(out[o].bytes)));
        uint64_t delay = between(1, max_delay_);
        if (faulty() && uniform() < straggle_) delay += between(max_delay_, suspect());  // a straggler
        if (opt_.trace)
          note(now, std::to_string(from) + " -> " + std::to_string(to) + " " + datagram_text(out[o].bytes) +
                        (lost ? "  (lost)" : "  (arrives " + std::to_string(now + delay) + ")"));
        if (!lost) network_.push(InFlight{now + delay, order_++, from, to, out[o].bytes});
      }
    }
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
      if (msg.installed.epoch != 0) c.installed.insert(from_wire(msg.installed));
      if (msg.type == wire::MembershipType::State) {
        uint64_t& held = c.held_upto[m.voidings];
        held = std::max(held, msg.held_upto);
        if (msg.last_primary.epoch != 0) c.last_primary.insert(from_wire(msg.last_primary));
      }
      return;
    }
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

  void apply_events(size_t i, const std::vector<Event>& events, uint64_t now) {
    for (const Event& e : events) {
      if (!failure_.empty()) return;
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

  // A snapshot "state" in the simulator names how far it reaches; what it
  // stands for is the agreed order up to there, which some member
  // delivered (the source did). The member then holds it as the server
  // does: snapshot file first, then the log rewritten to durable_state().
  static std::string snapshot_text(uint64_t upto) { return "sim snapshot upto " + std::to_string(upto); }

  void on_install_snapshot(size_t i, const Event& e, uint64_t now) {
    Member& m = members_[i];
    Life& life = m.life;
    const uint64_t upto = e.snapshot_upto;
    note(now, who(i) + " installs a snapshot at k=" + std::to_string(upto));
    if (e.snapshot != snapshot_text(upto))
      return fail(now, who(i) + " got a snapshot that says '" + e.snapshot + "' for k=" + std::to_string(upto));
    if (upto < life.delivered_upto)
      return fail(now, who(i) + " got a snapshot at k=" + std::to_string(upto) + " below what it delivered, k=" +
                           std::to_string(life.delivered_upto));
    if (life.phase == Phase::Unconfigured || life.phase == Phase::NonPrimary)
      return fail(now, who(i) + " got a snapshot outside a primary configuration");
    for (uint64_t k = life.delivered_upto + 1; k <= upto; ++k) {
      auto it = agreed_.find(k);
      if (it == agreed_.end())
        return fail(now, who(i) + "'s snapshot at k=" + std::to_string(upto) + " covers k=" + std::to_string(k) +
                             ", which no member delivered");
      m.delivered_payloads.insert(it->second.payload);
      note_late_delivery(i, it->second.payload);  // it has it now, through the snapshot
    }
    life.delivered_upto = upto;
    ++snapshots_installed_;
    if (upto > m.process->configuration().cut) ++snapshots_past_cut_;
    // The order may complete only once the snapshot is applied (on disk):
    // Membership::take_ready counts on the caller applying its events
    // before anything lets the order complete (server.cpp's
    // claim_synced_ready; review4 found records_durable called first).
    if (m.process->last_primary() == m.process->configuration().id)
      return fail(now, who(i) + "'s order completed before its snapshot at k=" + std::to_string(upto) +
                           " was applied (delivered " + std::to_string(m.process->delivered_upto()) + ", held " +
                           std::to_string(m.process->held_upto()) + ")");
    m.snapshot_upto = upto;
    if (opt_.crash_at_snapshot > 0 && faulty() &&
        std::uniform_real_distribution<double>(0, 1)(compact_rng_) < opt_.crash_at_snapshot) {
      m.crash_before_rewrite = true;  // the log stays as it was: flush() crashes the member next
      return;
    }
    rewrite_log(i, m.process->durable_state(), upto);
  }

  void on_deliver(size_t i, const Delivery& d, uint64_t now) {
    Member& m = members_[i];
    Life& life = m.life;
    const std::string k = "k=" + std::to_string(d.global_seq);
    note(now, who(i) + " delivers " + k + " " + short_payload(d.payload));
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
    m.delivered_payloads.insert(d.payload);
    agree(i, d, now);
    check_kept_by_newer(i, d.global_seq, life.phase == Phase::Transitional ? life.transitional.id : life.regular.id, now);
    note_late_delivery(i, d.payload);
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
    auto submitted = sent_names_.find(d.payload);
    if (submitted == sent_names_.end())
      return fail(now, who(i) + " delivered at k=" + std::to_string(k) + " a payload nobody submitted");
    if (submitted->second != d.name)
      return fail(now, who(i) + " delivered " + short_payload(d.payload) + " under another name than submit() gave");
    auto [first, fresh] = agreed_.emplace(k, d);
    if (!fresh) {
      if (first->second.name != d.name || first->second.payload != d.payload)
        fail(now, "agreement: " + who(i) + " delivered k=" + std::to_string(k) + " as " + short_payload(d.payload) +
                      ", another delivery of k=" + std::to_string(k) + " was " + short_payload(first->second.payload));
      return;
    }
    auto [at, new_payload] = payload_at_.emplace(d.payload, k);
    if (!new_payload)
      return fail(now, "agreement: " + short_payload(d.payload) + " delivered at k=" + std::to_string(at->second) +
                           " and at k=" + std::to_string(k));
    check_fifo(d, now);
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
  // must hold already (persisted before the event is applied).
  void on_transitional(size_t i, const Configuration& c, uint64_t now) {
    Member& m = members_[i];
    Life& life = m.life;
    note(now, who(i) + " TRANSITIONAL " + c.id.text() + " " + members_text(c.members));
    // A transition cut short by another view change (the member promised a
    // newer configuration before it delivered up to the cut) is abandoned:
    // its REGULAR never comes, and the next TRANSITIONAL starts afresh.
    if (life.phase == Phase::Transitional && !(life.transitional.id < c.id))
      return fail(now, who(i) + " TRANSITIONAL " + c.id.text() + " after TRANSITIONAL " + life.transitional.id.text());
    if (m.logged_install.id != c.id)
      return fail(now, who(i) + " TRANSITIONAL " + c.id.text() + " but its log's last Install is " +
                           m.logged_install.id.text());
    life.phase = Phase::Transitional;
    life.transitional = c;
    life.transitional.cut = m.logged_install.cut;
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
    retry_dropped_requests(i, c, now);
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
    const Configuration& logged = m.logged_install;
    if (logged.id != c.id) return fail(now, head + "its log's last Install is " + logged.id.text());
    if (logged.members != c.members || logged.primary != c.primary || logged.cut != c.cut)
      return fail(now, head + "differs from its logged Install " + config_text(logged));
    if (!std::count(c.members.begin(), c.members.end(), static_cast<MemberId>(i)))
      return fail(now, head + "does not contain the member itself");
    if (!std::is_sorted(c.members.begin(), c.members.end())) return fail(now, head + "members not ascending");
    if (c.primary != (c.members.size() >= majority(n_)))
      return fail(now, head + (c.primary ? "primary" : "non-primary") + " with " + std::to_string(c.members.size()) +
                           " of " + std::to_string(n_) + " members");
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
      const Membership& p = *members_[i].process;
      if (!p.can_submit()) continue;
      Phase phase = members_[i].life.phase;
      if (!p.installed() || !p.primary() || phase == Phase::Unconfigured || phase == Phase::NonPrimary)
        fail(now, who(i) + " can_submit() while " + (p.installed() ? "" : "not installed, ") +
                      (p.primary() ? "" : "not primary, ") + "its last event " +
                      (phase == Phase::Unconfigured ? "none" : phase == Phase::NonPrimary ? "a non-primary REGULAR" : "fine"));
    }
  }

  // ---- clients ----

  void submit_due(uint64_t now) {
    while (!planned_.empty() && planned_.back().at <= now) {
      PlannedBurst b = planned_.back();
      planned_.pop_back();
      Member& m = members_[b.member];
      if (!m.process) continue;  // nobody to ask
      for (size_t c = 0; c < b.count; ++c) {
        std::string payload = "m" + std::to_string(b.member) + "-" + std::to_string(m.life.number) + "-" +
                              std::to_string(++m.life.submitted) + ":" + std::string(between(0, 40), 'x');
        if (uniform() < 0.03) payload.resize(wire::kMaxPayload, 'y');  // a full-size message
        m.waiting.push_back(payload);
      }
    }
    for (size_t i = 0; i < n_ && failure_.empty(); ++i) {
      Member& m = members_[i];
      while (m.process && !m.waiting.empty() && m.process->can_submit() && failure_.empty()) {
        std::string payload = std::move(m.waiting.front());
        m.waiting.pop_front();
        ConfigId in = m.process->configuration().id;
        wire::MessageName name = m.process->submit(payload, now);
        note(now, who(i) + " submits " + short_payload(payload) + " in " + in.text() + " as (" +
                      std::to_string(name.origin) + "," + std::to_string(name.incarnation) + "," +
                      std::to_string(name.origin_seq) + ")");
        note_late_submit(payload, in);
        sent_names_[payload] = name;
        flush(i, now);
      }
    }
  }

  // ---- the heal and liveness (check 5) ----

  // The faults are over: the network only delays and reorders from now on,
  // and a few requests go to every member.
  void heal(uint64_t now) {
    healed_at_ = now;
    note(now, "HEALED: no more loss, partitions or crashes; requests follow at every member");
    for (MemberId i = 0; i < n_; ++i) {
      size_t count = between(1, 3);
      for (size_t c = 0; c < count; ++c) {
        LateRequest r;
        r.member = i;
        late_.push_back(r);
        new_attempt(late_.size() - 1);
      }
    }
  }

  void new_attempt(size_t r) {
    LateRequest& req = late_[r];
    std::string payload = "h" + std::to_string(req.member) + "-" + std::to_string(r) + "-" +
                          std::to_string(req.attempts.size() + 1) + ":late";
    req.attempts.push_back(payload);
    req.submitted_in = ConfigId{};
    late_of_[payload] = r;
    members_[req.member].waiting.push_back(payload);
  }

  void note_late_submit(const std::string& payload, const ConfigId& in) {
    auto it = late_of_.find(payload);
    if (it != late_of_.end()) late_[it->second].submitted_in = in;
  }

  void note_late_delivery(size_t i, const std::string& payload) {
    auto it = late_of_.find(payload);
    if (it != late_of_.end()) late_[it->second].delivered_at.insert(static_cast<MemberId>(i));
  }

  // At a REGULAR, everything of the old configuration that survives has
  // been delivered: a request of this member submitted there and not
  // delivered here was dropped, and its client retries.
  void retry_dropped_requests(size_t i, const Configuration& now_in, uint64_t now) {
    for (size_t r = 0; r < late_.size(); ++r) {
      LateRequest& req = late_[r];
      if (req.member != i || req.submitted_in.none() || req.submitted_in == now_in.id) continue;
      if (req.delivered_at.count(static_cast<MemberId>(i))) continue;
      note(now, who(i) + " drops request " + short_payload(req.attempts.back()) + ": its client retries");
      new_attempt(r);
    }
  }

  // Everyone installed in one primary configuration of all n, no view
  // change under way, the same delivered_upto, every late request delivered
  // everywhere.
  bool converged() const {
    const Membership* first = members_[0].process.get();
    if (!first) return false;
    const ConfigId id = first->configuration().id;
    for (size_t i = 0; i < n_; ++i) {
      const Member& m = members_[i];
      if (!m.process || !m.waiting.empty()) return false;
      const Membership& p = *m.process;
      if (!p.installed() || !p.primary() || p.configuration().members.size() != n_) return false;
      if (p.configuration().id != id || p.promised() != id) return false;
      if (m.life.phase != Phase::Primary || m.life.regular.id != id) return false;
      if (p.delivered_upto() != first->delivered_upto() || m.life.delivered_upto != p.delivered_upto()) return false;
      // Nothing missing, unsequenced or unstable as far as it knows (so a
      // graceful stop could finish): a member that thinks it lacks
      // something nobody will ever send never gets here.
      if (!p.ordering() || !p.ordering()->quiescent()) return false;
    }
    for (const LateRequest& r : late_)
      if (r.delivered_at.size() != n_) return false;
    return true;
  }

  std::string liveness_failure(uint64_t now) {
    std::string s = "liveness: not converged 20 s after the heal (t=" + std::to_string(now) + "us):";
    for (size_t i = 0; i < n_; ++i) {
 const Member& m = members_[i];
      if (!m.process) {
        s += "\n    member " + std::to_string(i) + ": down";
        continue;
      }
      const Membership& p = *m.process;
      s += "\n    member " + std::to_string(i) + ": " + (p.installed() ? "installed " : "not installed, last ") +
           config_text(p.configuration()) + ", promised " + p.promised().text() + ", delivered " +
           std::to_string(p.delivered_upto()) + ", held " + std::to_string(p.held_upto()) + ", reachable " +
           std::to_string(p.reachable_count()) + ", waiting requests " + std::to_string(m.waiting.size()) +
           (p.ordering() ? (p.ordering()->quiescent() ? ", quiescent" : ", not quiescent") : ", no ordering") +
           ", view changes started " + std::to_string(p.stats().view_changes);
    }
    for (const LateRequest& r : late_)
      if (r.delivered_at.size() != n_)
        s += "\n    request " + short_payload(r.attempts.back()) + " delivered at " + std::to_string(r.delivered_at.size()) +
             " of " + std::to_string(n_) + " members";
    return s;
  }

  // Nothing delivered was lost (every member reached the highest k any life
  // delivered), and every stream delivered is 1, 2, ... without a hole.
  std::string final_checks() const {
    uint64_t highest = agreed_.empty() ? 0 : agreed_.rbegin()->first;
    uint64_t reached = members_[0].process->delivered_upto();
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
    return "";
  }

  uint64_t seed_;
  Options opt_;
  std::mt19937_64 rng_;
  std::mt19937_64 shape_rng_;  // which partitions cut only the ordering's datagrams
  std::mt19937_64 compact_rng_{0xc0ffee};  // --compact (review instrumentation)
  std::mt19937_64 batch_rng_{0xba7c4};      // --batch-us (review instrumentation)
  uint64_t pass_bound_hits_ = 0;            // --pass-bound: flushes left with news by the bound
  size_t n_ = 0;
  mcast::MembershipConfig cfg_;
  std::vector<Member> members_;

  // network and schedule
  std::priority_queue<InFlight, std::vector<InFlight>, std::greater<InFlight>> network_;
  uint64_t order_ = 0;
  double drop_ = 0, dup_ = 0, straggle_ = 0;
  uint64_t max_delay_ = 0, fault_end_ = 0, healed_at_ = 0;
  std::vector<Partition> partitions_;
  std::vector<Crash> crashes_;
  size_t crashes_done_ = 0;
  size_t crashes_in_view_change_ = 0;
  size_t snapshots_installed_ = 0;
  size_t snapshots_past_cut_ = 0;  // of those, snapshots the source took past the configuration's cut
  uint64_t converged_at_ = 0;
  std::vector<PlannedBurst> planned_;
  std::vector<LateRequest> late_;
  std::map<std::string, size_t> late_of_;  // payload -> its late request

  // the checker's memory
  std::map<std::string, wire::MessageName> sent_names_;  // payload -> the name submit() gave
  std::map<uint64_t, Delivery> agreed_;                   // k -> the first delivery of k seen
  std::map<std::string, uint64_t> payload_at_;
  std::map<std::pair<MemberId, uint64_t>, std::map<uint64_t, uint64_t>> streams_;  // -> origin_seq -> k
  std::map<ConfigId, Configuration> configs_;           // from REGULAR events
  std::map<ConfigId, Configuration> installs_;          // from Install records
  std::map<ConfigId, Configuration> primary_installs_;  // the primary ones
  std::map<ConfigId, uint64_t> delivered_in_;           // configuration -> highest k delivered in it
  std::string failure_;
  std::deque<std::string> recent_;
  uint64_t last_now_ = 0;  // the time of the flush under way
};

void usage() {
  std::puts(
      "usage: group_sim_test [--seeds N] [--first-seed S] [--seed S] [--trace] [--keep-going]\n"
      "                      [--storm] [--deferred-durability] [--bug NAME --expect-violation]\n"
      "                      [--check-replay] [--compact P] [--crash-at-snapshot P] [--rewrite-at-open]\n"
      "                      [--late-snapshot P]\n"
      "--check-replay: after every flush, the log read back must match the live member (review)\n"
      "--compact P: compact a member's log at a flush with probability P, as ReplicaStore does\n"
      "--crash-at-snapshot P: crash between snapshot.txt and the log rewrite of a state transfer\n"
      "--rewrite-at-open: a restart rewrites its log to what it read back (ReplicaStore::open)\n"
      "--late-snapshot P: a source provides a snapshot asked for some keepalives later, so it may\n"
      "      be past the configuration's cut\n"
      "--batch-us U: wake as server.cpp's step: datagrams that come within U us go into one Ready (review4)\n"
      "--pass-bound: at most 4 passes per wake, as flush_ready (review4)\n"
      "--check-open: the log must open as ReplicaStore::open reads it, at restarts and with --check-replay (review4)\n"
      "--sync-after-send: a Ready whose claims are awaited is synced at the end of its pass (server sync_log) (review4)\n"
      "--storm: a fault phase three times as long, 4-12 partitions and 3-8 crash events\n"
      "--deferred-durability: group commit (server --fsync): records reach the disk at a\n"
      "      later sync, and a crash is a power cut that loses what no sync covered\n"
      "bugs: deliver-without-majority, cut-at-delivered, minority-delivers, primary-at-install,\n"
      "      shrink-claim-at-install, claim-before-durable (with --deferred-durability) (protocol);\n"
      "      send-before-persist (the driver sends datagrams before logging what they announce),\n"
      "      send-before-sync (with --deferred-durability: it sends what must wait for the disk at once)\n"
      "      compact-before-apply (with --compact: it compacts a log before applying what a sync let through)\n"
      "      snapshot-error-claims (with --compact --deferred-durability: a failed compaction still calls\n"
      "      records_durable(written_marks()), as server.cpp's write_snapshot once did after an I/O error),\n"
      "      claim-before-apply (with --deferred-durability --batch-us: a Ready synced before its sends is\n"
      "      claimed before its events are applied, as server.cpp once did)\n"
      "Runs N seeded simulations (default 1000, from seed 1). A failure prints its seed;\n"
      "`group_sim_test --seed S --trace` replays it event by event. It stops after five\n"
      "failures; --keep-going lists every failing seed, one line each, for a survey.");
}

// The command line's switches and probabilities, and the driver's own
// deliberate bugs (--bug NAME that is not a GroupBug), each named once: the
// parser, the replay command and the clean rerun read the same tables.
struct BoolFlag {
  const char* name;
  bool Options::*field;
};
const BoolFlag kSwitches[] = {
    {"--storm", &Options::storm},
    {"--deferred-durability", &Options::deferred},
    {"--check-replay", &Options::check_replay},
    {"--rewrite-at-open", &Options::rewrite_at_open},
    {"--pass-bound", &Options::pass_bound},
    {"--sync-after-send", &Options::sync_after_send},
    {"--check-open", &Options::check_open},
};
const struct {
  const char* name;
  double Options::*field;
} kProbabilities[] = {
    {"--compact", &Options::compact},
    {"--crash-at-snapshot", &Options::crash_at_snapshot},
    {"--late-snapshot", &Options::late_snapshot},
};
const BoolFlag kDriverBugs[] = {
    {"send-before-persist", &Options::send_before_persist},
    {"send-before-sync", &Options::send_before_sync},
    {"compact-before-apply", &Options::compact_before_apply},
    {"snapshot-error-claims", &Options::snapshot_error_claims},
    {"claim-before-apply", &Options::claim_before_apply},
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
};

bool parse_bug(const std::string& name, Options& opt) {
  for (const auto& b : kProtocolBugs)
    if (name == b.name) {
      opt.bug = b.bug;
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
    auto probability = [&](double& out) {
      if (i + 1 >= argc) return false;
      char* end;
      out = std::strtod(argv[++i], &end);
      return *end == 0 && out >= 0 && out <= 1;
    };
    bool known = false;
    for (const BoolFlag& f : kSwitches)
      if (a == f.name) {
        opt.*f.field = true;
        known = true;
      }
    for (const auto& f : kProbabilities)
      if (a == f.name) {
        if (!probability(opt.*f.field)) return false;
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
  for (const BoolFlag& b : kDriverBugs)
    if (opt.*b.field) cmd += std::string(" --bug ") + b.name;
  for (const auto& f : kProbabilities)
    if (opt.*f.field > 0) cmd += std::string(" ") + f.name + " " + std::to_string(opt.*f.field);
  if (opt.batch_us > 0) cmd += " --batch-us " + std::to_string(opt.batch_us);
  return cmd;
}

// A catch counts only if the same seed passes without the injected bug:
// else the failure may be the protocol's own, not the bug's.
std::string fails_without_the_bug(uint64_t seed, const Options& opt) {
  Options clean = opt;
  clean.bug = mcast::GroupBug::None;
  for (const BoolFlag& b : kDriverBugs) clean.*b.field = false;
  clean.trace = false;
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
  std::printf("passing runs: %llu; crashes %llu (%llu amid a view change); configurations %llu (%llu primary);\n"
              "  messages submitted %llu, delivered %llu, dropped with their configuration %llu;\n"
              "  state transfers %llu (%llu with a snapshot past the cut); slowest convergence after the heal %.3f s (seed %llu)\n",
              u(totals.runs), u(totals.crashes), u(totals.crashes_in_view_change), u(totals.configurations),
              u(totals.primary_configurations), u(totals.submitted), u(totals.delivered), u(totals.dropped),
              u(totals.snapshots), u(totals.snapshots_past_cut), totals.slowest_convergence_us / 1e6, u(totals.slowest_seed));
  if (opt.pass_bound) std::printf("  flushes cut short by the 4-pass bound: %llu\n", u(totals.pass_bound_hits));
  return failures == 0 ? 0 : 1;
}
