// replica.hpp: everything one FTQueue replica decides, with no I/O.
//
// A Replica is one member of the cluster as a state machine: it admits
// client requests, packs them into batches, multicasts them through its
// Membership (configurations, total order, safe delivery), applies what is
// delivered to its FTQueue, and decides which answer goes to which client
// and when the log must reach the disk. It reads no clock, touches no
// socket or file and never exits: the time comes in with every input, and
// everything it wants done goes out in one Handoff. server.cpp carries the
// hand-offs out with sockets and files; tests/group_sim_test.cpp carries
// them out in a simulated world with crashes. Both call the same
// carry_out() below, so the order of the steps is written once.
//
// Inputs: client_request, peer_datagram, tick, and sync_completed /
// log_rewritten (the disk did what a hand-off asked).
// Output: take_handoff(), whenever has_handoff().
//
// What a client is told, and why each answer is true:
//   ok / no such queue / empty / ids exhausted: the operation was applied
//     at one point of the total order, once (FTQueue's exactly-once table),
//     and this is its result. Only the replica that multicast the batch
//     answers it, once it is delivered here (safe delivery: a majority
//     holds it, so no later configuration loses it).
//   busy, not in a majority: this try was never multicast and never will
//     be, so it has no effect. A refused try is remembered (refused_) for a
//     minute, so that a copy the network duplicates, arriving after the
//     replica could serve again, is refused again rather than admitted: the
//     client counts the try as refused (a review found a copy admitted and
//     applied after its client was told "no effect").
//   nothing: the try may still take effect. That is the case of an
//     *orphan*: a batch this replica multicast in a configuration that has
//     since been replaced, not yet delivered here. The view change that
//     replaced it may have kept it below its cut (then it is delivered,
//     here or after a heal, in whatever configuration comes next), or not
//     (then it never is). Which one this replica cannot know while it is
//     cut off, and a primary configuration may deliver it later still (a
//     member that held it can be the source of a cut much later). So an
//     orphan gets no definite failure, ever: its client times out and says
//     "outcome unknown", or hears the real result if it is delivered while
//     this replica still remembers it. In a primary configuration its
//     operations are multicast again: the exactly-once table makes the
//     second copy a repeat if the first is delivered too. That table
//     forgets a client idle for 10 minutes of cluster time, so an orphan
//     first multicast more than kOrphanLifetimeUs ago is dropped instead
//     (silently: its client, long gone, was told nothing definite).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ftqueue.hpp"
#include "membership.hpp"
#include "multicast.hpp"
#include "wire.hpp"

struct ReplicaOptions {
  mcast::MembershipConfig membership;
  // --fsync: a record is claimed only once on disk (Multicast's deferred
  // durability, group commit). Sets membership.multicast.deferred_durability.
  bool fsync = false;
  // The longest a request waits for others to join its batch (batch_ready).
  // Measured at 32 clients on 3 replicas (README, Performance): 0 gave
  // 48k ops/s, 30-60 gave 60-87k, 120 less again.
  uint64_t batch_hold_us = 50;
  size_t max_waiting_ops = 8192;  // admitted, not yet multicast
  // --partitionable (issue 23; see "Partitionable mode" in replica.cpp): a
  // side without a majority serves tentatively, and its work is merged into
  // the committed order when it meets a primary configuration.
  bool partitionable = false;
  // Test only: the bugs the simulator's answer checker must catch
  // (tests/group_sim_test.cpp): the lie issue 21 found (an orphan answered
  // "not in a majority"), and a state without its exactly-once table.
  // A third: a copy of a refused try admitted (refusals not remembered).
  // Partitionable mode's: a leader merges its side's work into its own
  // state when it multicasts it, not where the order delivers it; and
  // merges that drop the sides' pushes; a side's reply given again after
  // its merge without its tentative mark.
  enum class Bug {
    None,
    OrphansNotInMajority,
    NoExactlyOnce,
    ForgetRefusals,
    PromiseUnsynced,
    MergeOutsideOrder,
    MergeDropsPushes,
    UntaggedMergedRepeats,
    AnswerBeforeCopied,  // a tentative answer leaves before the side's other members hold its effect
    AckUncopied,         // a member acknowledges a side's copy without writing it
    NoCarry,             // a side that met others without a majority serves on their work without carrying it
    NoGather,            // ... serves before its members have brought it their sides' work
    AnswerSuperseded,    // a side answers a late copy of a client's older request with the newer one's answer
  } bug = Bug::None;
};

// What became of a client's request (for the trace and the counters).
enum class Admission {
  Admitted,       // waits for the next batch
  AnsweredAgain,  // applied before: its stored reply goes back
  Superseded,     // older than the client's latest request: ignored
  InFlight,       // admitted already: whoever sequences it answers
  NotInMajority,  // refused, no effect
  Stopping,       // refused (busy), no effect
  Backlogged,     // refused (busy), no effect
  RefusedAgain,   // a copy of a try refused before: refused again, no effect
  Tentative,      // partitionable mode: answered tentatively by its side's leader
  Uncopied,       // partitionable mode: ran on a side that may not hold it: no answer (outcome unknown)
  Gathering,      // partitionable mode: its side's leader awaits its members' work: no answer yet, no effect
};
const char* admission_text(Admission a);

// What the protocol made of a peer's datagram (for the trace).
enum class PeerVerdict { Taken, Malformed, Stale, OtherConfig, OtherMode };
const char* peer_verdict_note(PeerVerdict v);  // for the trace: "" or " (dropped: ...)"
// For the trace: a side's copy or ack (partitionable mode): its event
// ("SIDECOPY", "SIDEACK"), and its text in `text`; nullptr for any other.
const char* describe_side_datagram(const void* data, size_t len, std::string& text);

struct ReplyOut {
  wire::Reply reply;  // lossy bit set
  wire::ClientAddress to;
  int copies = 1;     // 2 for a delivered operation's reply while the protocol repairs heavy loss
};

// A delivery or configuration change applied while producing a hand-off,
// for observers (the trace, the simulator's checks). Already applied.
struct AppliedEvent {
  mcast::Event event;
  bool answered_here = false;  // Deliver: this replica replies to its clients
};

// One hand-off: carry it out with carry_out(), completely, before taking
// the next one. Its events are applied already.
struct Handoff {
  std::vector<mcast::LogRecord> records;  // append, in order, in one write
  // Write a snapshot of state() and rewrite the log to durable_state(),
  // then call log_rewritten() (a state transfer installed a snapshot).
  bool write_snapshot = false;
  // An amnesiac replica caught up (membership.hpp, "Amnesia"): once these
  // records are written, its log holds all it claims again; record that.
  bool log_trusted = false;
  // When the log must be synced (--fsync only), and the marks to hand back
  // to sync_completed() once it is.
  enum class Sync { None, BeforeSend, AfterSend } sync = Sync::None;
  mcast::DurableMarks sync_marks;
  std::vector<mcast::Outgoing> datagrams;  // the next sequencer's first
  std::vector<ReplyOut> replies;
  std::vector<AppliedEvent> applied;
  std::vector<std::string> notes;  // configuration changes, state transfers: for the log
  // Partitionable mode: lines for the tentative file (what this side did,
  // the tentative id counter). Appended and synced before anything of this
  // hand-off leaves: a tentative answer, and a member's acknowledgement of
  // a side's copy, rest on it.
  std::vector<std::string> tentative_lines;
  // ... or, true, the lines that replace the file: every side it held is
  // merged (absorbed by the applied state, so a majority holds the MERGE
  // records: delivered), and only the id counter need stay.
  bool tentative_replace = false;
  std::vector<size_t> delivered_batch_sizes;  // for net::IdleSpin
  // Not empty: this replica cannot go on (a state transfer's snapshot does
  // not load). Stop the process without carrying anything out.
  std::string fatal;
  bool empty() const {
    return records.empty() && !write_snapshot && !log_trusted && sync == Sync::None && datagrams.empty() && replies.empty() &&
           applied.empty() && notes.empty() && fatal.empty() && tentative_lines.empty() &&
           !tentative_replace;
  }
};

// What carry_out needs from the world. Each step returns false if the
// process died there (the simulator's crash points); the server exits
// instead of returning false, since a failed write or sync must never be
// reported as done.
class HandoffEffects {
 public:
  virtual ~HandoffEffects() = default;
  virtual bool append(const std::vector<mcast::LogRecord>& records) = 0;
  virtual bool write_snapshot() = 0;  // state() and durable_state(), as ReplicaStore::write_snapshot
  virtual bool log_trusted() = 0;     // the log is whole again: a restart need not be amnesiac
  // Partitionable mode: append these lines to the tentative file (or, with
  // `replace`, make them the whole file, atomically) and sync it.
  virtual bool write_tentative(const std::vector<std::string>& lines, bool replace) = 0;
  virtual bool sync() = 0;
  virtual bool send(const mcast::Outgoing& datagram) = 0;
  virtual bool reply(const ReplyOut& reply) = 0;
};

// The order of carrying out a hand-off, the rule the whole protocol's
// safety argument leans on (membership.hpp, "Safe delivery"), stated once:
//   1. Append `records` in one write, before anything of this hand-off
//      leaves: a datagram may tell peers this replica holds them, and a
//      restarted replica must still hold whatever it said (persist before
//      send).
//   2. If `write_snapshot`: write the snapshot and the rewritten log, then
//      log_rewritten(). A state transfer's snapshot is on disk before this
//      replica says anything that counts on it. If `log_trusted`, record
//      that the log is whole again, only now that the records that made it
//      so (an OrderComplete) are written.
//   3. If Sync::BeforeSend: sync, then sync_completed(). Something here (a
//      promise, a STATE reporting a claim) may not leave before it survives
//      a power cut. Without --fsync only a Promise asks for it: a promise
//      an OS crash took could let a configuration id be used twice.
//   4. Send `datagrams`, then `replies`. Under --fsync a datagram claims
//      only what an earlier, completed sync covered, so it may leave before
//      this hand-off's records are on disk. Peers go first: a reply wakes a
//      client whose next request needs the peers' progress. A reply rests
//      on safe delivery (a majority's claims), not on this replica's disk.
//   5. If Sync::AfterSend: sync, then sync_completed() (group commit: one
//      sync covers every record written since the last one, and overlaps
//      the peers' own syncs).
// Returns false if an effect reported a crash (the rest is not done).
// `misorder` is for tests only: the simulator's deliberately broken
// drivers, which its checks must catch.
enum class Misorder { None, SendBeforePersist, SendBeforeSync, TrustBeforePersist };
class Replica;
bool carry_out(Replica& replica, const Handoff& handoff, HandoffEffects& effects, Misorder misorder = Misorder::None);

// What `status` and the -v report show, besides the shell's own counters.
struct ReplicaCounts {
  uint64_t requests = 0, busy_replies = 0, minority_replies = 0;
  uint64_t log_writes = 0;          // --fsync: appends with records (several per sync)
  uint64_t malformed = 0, stale = 0, other_config = 0, other_mode = 0;  // peer datagrams refused
  size_t waiting = 0, buffered = 0;
  mcast::MulticastStats ordering;
  mcast::MembershipStats membership;
};

class Replica {
 public:
  Replica(mcast::MemberId self, size_t group_size, uint64_t incarnation, ReplicaOptions options, FTQueue state,
          mcast::Restored restored);

  // ---- inputs ----
  Admission client_request(const wire::Operation& op, uint32_t attempt, wire::ClientAddress from, uint64_t now_us);
  PeerVerdict peer_datagram(mcast::MemberId from, const void* data, size_t len, uint64_t now_us);
  // Sends the batches that are ready and lets the protocol's timers run.
  // `wall_ms` is the origin time stamped into a batch (FTQueue's clock).
  void tick(uint64_t now_us, uint64_t wall_ms);
  void sync_completed(const mcast::DurableMarks& marks);
  void log_rewritten();  // a snapshot rewrote the log (and synced it, under --fsync)
  void begin_drain();    // graceful stop: refuse new work, close once nothing waits
  void announce();       // tell every member where this one stands (about to exit)

  // ---- output ----
  bool has_handoff(uint64_t now_us) const;
  Handoff take_handoff(uint64_t now_us);
  uint64_t next_deadline() const;

  // ---- views ----
  const FTQueue& state() const { return state_; }
  mcast::Restored durable_state() const { return group_.durable_state(); }
  // A snapshot may be taken (compaction): every delivery taken is applied.
  bool may_compact() const { return !group_.has_ready(); }
  bool done_leaving() const { return group_.done_leaving(); }
  const mcast::Membership& group() const { return group_; }
  // Partitionable mode: the tentative file's lines, read back at a restart
  // (what this replica's sides did that the committed state may lack).
  void restore_tentative(const std::vector<std::string>& lines);
  // What it holds of the sides' work not yet merged (status, tests).
  size_t open_tentative_effects() const;
  // The side (its configuration's ordering number) on which this replica
  // ran, or holds a copy of, the client's request; 0 if none (tests).
  uint64_t ran_on_side(uint64_t client_id, uint64_t request_no) const;
  // Per side, how many of its effects this replica holds (tests: a side's
  // leader that serves holds all its members brought).
  std::map<uint64_t, uint64_t> side_work_held() const;
  // It leads a side without a majority and has built that side's state
  // (partitionable mode: once its members brought their work).
  bool serves_a_side() const { return leads_tentative_side(); }
  wire::ReplicaStatus status_view() const;  // nonce and dropped_datagrams are the shell's
  ReplicaCounts counts() const;

 private:
  struct Waiting {
    wire::BatchedOp op;
    uint32_t attempt = 0;           // the try admitted (op.attempt is it saturated at 255)
    bool multicast_before = false;  // an orphan's operation, waiting to be sent again
    uint64_t first_sent_us = 0;     // if so, when it was first multicast
  };
  // A batch this replica multicast: its operations, and when the oldest of
  // them was first multicast (an orphan's may be sent again).
  struct Sent {
    std::vector<wire::BatchedOp> ops;
    uint64_t first_sent_us = 0;
  };
  struct Refusal {
    uint64_t request_no = 0;
    uint32_t highest_try = 0;
    wire::ReplyCode code = wire::ReplyCode::NotInMajority;
    uint64_t at_us = 0;
  };
  void note_refused(const wire::Operation& op, uint32_t attempt, wire::ReplyCode code, uint64_t now);
  bool too_old(uint64_t first_sent_us) const { return now_us_ > first_sent_us + kOrphanLifetimeUs; }
  void forget_orphan_ops(const std::vector<wire::BatchedOp>& ops);
  struct Refused {
    uint64_t malformed, stale, other_config, other_mode;
  };
  Refused refused() const;
  void note_other_mode(Handoff& out);
  bool may_serve() const;
  bool serves_tentatively() const;
  bool leads_tentative_side() const;
  void end_tentative_side();
  Admission serve_tentatively(const wire::Operation& op, uint32_t attempt, wire::ClientAddress from);
  void submit_merges(uint64_t now);
  bool side_datagram(mcast::MemberId from, const void* data, size_t len, PeerVerdict& verdict);
  void answer_when_copied(const wire::Reply& r, wire::ClientAddress from);
  struct RanTentatively;
  bool answer_ran_tentatively(RanTentatively& ran, uint32_t attempt, wire::ClientAddress from);
  void copy_side(uint64_t now);
  void send_side_copies(mcast::MemberId to, const partition::Segment& seg, uint64_t from);
  void on_side_copy(mcast::MemberId from, const partition::Segment& part);
  void keep_side_answer(const partition::Effect& e, uint64_t side, bool copied);
  void on_side_ack(mcast::MemberId from, uint64_t side, uint64_t held);
  void release_copied_answers();
  bool side_gathered();
  void bring_to_leader(uint64_t now);
  void on_brought(mcast::MemberId from, const partition::Segment& part);
  void on_bring_ack(mcast::MemberId from, uint64_t side, uint64_t held);
  void carry_earlier_sides(uint64_t side);
  void record_effect(uint64_t side, const partition::Effect& e);
  void forget_merged_sides();
  wire::Reply not_in_majority(const wire::Operation& op, uint32_t attempt) const;
  void answer(wire::Reply r, wire::ClientAddress to, int copies = 1);
  bool batch_ready(uint64_t now) const;
  uint64_t batch_hold_ends() const;
  void submit_waiting(uint64_t now, uint64_t wall_ms);
  void apply(const mcast::Event& e, Handoff& out);
  void on_deliver(const mcast::Delivery& d, Handoff& out);
  void on_regular(const mcast::Event& e, Handoff& out);
  void install_snapshot(const mcast::Event& e, Handoff& out);
  void decide_sync(const mcast::Ready& ready, uint64_t now, Handoff& out);
  void forget_admitted(uint64_t client_id, uint64_t request_no);
  bool lossy_mode() const;
  void order_datagrams(std::vector<mcast::Outgoing>& out) const;

  const mcast::MemberId self_;
  const size_t n_;
  const ReplicaOptions options_;
  mcast::Membership group_;
  FTQueue state_;
  std::deque<Waiting> waiting_;
  // Batches this replica multicast in the installed configuration and has
  // not seen delivered, by name; and orphans (see the top of this file).
  std::map<mcast::MessageName, Sent> in_flight_;
  std::map<mcast::MessageName, Sent> orphans_;
  std::map<uint64_t, Refusal> refused_;  // by client id: its latest refused try
  uint64_t now_us_ = 0;                  // the latest input's time
  // Requests admitted and not yet seen delivered, as (client id, request
  // number): a copy that arrives meanwhile is ignored.
  std::set<std::pair<uint64_t, uint64_t>> admitted_;
  std::vector<ReplyOut> replies_;  // decided, not yet handed off
  bool stopping_ = false;
  // Batching (batch_ready): when the oldest waiting request came, and how
  // many replies the last burst sent.
  uint64_t first_waiting_us_ = 0;
  size_t expected_back_ = 1;
  // --fsync, group commit (decide_sync): records written since the last
  // sync asked for; Delivered marks or unawaited records owed a sync since
  // when; and the marks the next sync reports.
  bool unsynced_ = false;
  bool amnesiac_ = false;  // as the hand-offs so far have told the shell
  uint64_t other_mode_noted_ = 0;  // members whose other mode a note reported
  uint64_t sync_owed_since_ = mcast::kNever;
  bool sync_due_ = false;
  mcast::DurableMarks owed_marks_;
  uint64_t logged_held_upto_ = 0;  // what `status` reports: written to the log
  ReplicaCounts counts_;
  // 10 ms, not 1: with one client the owed syncs of all three replicas
  // competed on the shared disk with the two that answer; 12 interleaved
  // pairs of 1-client --fsync runs gave a lower median in 10 (by about 8%).
  // The cost: a quiet cluster's buffers are freed up to 10 ms later.
  static constexpr uint64_t kOwedSyncUs = 10'000;
  // Well below FTQueue::kClientExpiryMs (10 min), and beyond any client's
  // --timeout (at most 300 s).
  static constexpr uint64_t kOrphanLifetimeUs = 360'000'000;
  static constexpr uint64_t kRefusalMemoryUs = 60'000'000;
  static constexpr size_t kRefusalsKept = 4096;  // beyond this, those older than kRefusalMemoryUs go

  // Partitionable mode (replica.cpp). The sides this replica led, by side
  // (a configuration's ordering number): every effect, from the first.
  std::map<uint64_t, partition::Segment> open_segments_;
  // The tentative state of the side it leads now, and which side that is.
  std::optional<partition::QueueState> tentative_;
  uint64_t tentative_side_ = 0;
  uint64_t tentative_ids_drawn_ = 0;  // never goes back (the tentative file keeps it)
  std::vector<std::string> tentative_lines_;  // for the next hand-off
  bool tentative_replace_ = false;            // ... replacing the file (forget_merged_sides)
  bool tentative_file_has_effects_ = false;   // the file holds effect lines (not compacted)
  // Per client, the latest request it ran on a side it led, and the answer.
  // Answered (again) only once `copied`: every member of its side held its
  // effect (at the leader: all acknowledged; a member's own copy: it and
  // the leader hold it; read back at a restart: not known, so not).
  struct RanTentatively {
    wire::Reply reply;
    bool copied = false;
    uint64_t side = 0, needs = 0;  // at the leader: effects 0..needs-1 of `side` copied answers it
  };
  std::map<uint64_t, RanTentatively> ran_tentatively_;
  // Parts of a side's segment multicast in the current configuration, by
  // side: up to which effect (sent again in the next configuration).
  std::map<uint64_t, uint64_t> merge_sent_;
  uint64_t merge_sent_config_ = 0;
  static constexpr size_t kMergePartBytes = 1000;  // a part and its batch header fit a datagram
  static constexpr size_t kRemovedPerEffect = 32;  // items of a destroy per effect: 32 x 24 bytes
  // Copies of the side's work (the side this replica leads now): how many
  // of its effects each other member said it holds, the answers waiting
  // for every member to hold their effect, and when the copies go again.
  struct HeldAnswer {
    uint64_t needs = 0;  // effects 0..needs-1 of the side held by every member
    ReplyOut reply;
  };
  std::map<mcast::MemberId, uint64_t> side_held_;
  std::map<mcast::MemberId, uint64_t> side_sent_;  // effects sent to each, not yet resent
  std::vector<HeldAnswer> held_answers_;
  uint64_t side_copy_due_us_ = mcast::kNever;
  std::vector<mcast::Outgoing> side_out_;  // copies and acks, for the next hand-off
  uint64_t side_malformed_ = 0;            // side datagrams refused (or outside partitionable mode)
  static constexpr uint64_t kSideCopyRetryUs = 20'000;
  // Sides that meet without a majority (replica.cpp). At the leader: the
  // members that brought it their work, for side `gathering_side_`. At a
  // member: the side it brings to, how much of each earlier side the
  // leader said it holds, and when it sends again.
  uint64_t gathering_side_ = 0;
  std::set<mcast::MemberId> brought_;
  uint64_t bringing_side_ = 0;
  std::map<uint64_t, uint64_t> bring_acked_;
  bool bring_done_ = false;  // the leader acknowledged the end of it
  uint64_t bring_due_us_ = mcast::kNever;
};
