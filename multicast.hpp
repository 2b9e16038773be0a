// multicast.hpp: total-order, reliable, atomic multicast over lossy datagrams.
//
// A Multicast object is one member's protocol state, and nothing else: it
// does no I/O and reads no clock. Its caller feeds it received datagrams
// (receive), the time (tick), and messages to multicast (submit), and takes
// from it the datagrams to send (take_outgoing) and the messages to deliver
// (take_deliveries). In phase two the caller is a Membership
// (membership.hpp): one Multicast orders one primary configuration, in
// safe-delivery mode (OrderingStart), and `view` is that configuration's
// members. The all-members mode of phase one (delivery as soon as a member
// holds k) remains for tests/sim_test.cpp, which hammers this layer alone.
//
// How total order is built (the rotating sequencer):
//   * A member multicasts a message by sending DATA to every member. A message
//     is named (origin, incarnation, origin_seq).
//   * Global sequence number k is assigned by member view[k mod n], and by no
//     one else. That member sends ASSIGN(k, name) to all. It may assign k only
//     when it knows every assignment below k, so it knows exactly which
//     messages are already sequenced and never sequences one twice. It takes
//     any member's waiting message, in each origin's own order (FIFO per
//     origin), so the rotation never stalls while messages wait.
//   * Every member delivers k once it has delivered k-1, knows assignment k
//     and holds the payload it names.
//   * Loss is repaired by NACKs: a member that learns of something it lacks
//     (a gap in the assignments, an assignment whose payload it has not got,
//     an origin's message it has heard of but not received) asks for it, and
//     asks again on a timer until it has it. Every packet's header carries
//     the sender's high-water marks, and while anything is unstable members
//     send STATUS heartbeats, so even the last message of a burst is noticed.
//   * Stability: stable_upto is the minimum, over all members, of what they
//     have delivered. A payload or assignment at or below stable_upto is
//     never asked for again and is freed: memory stays flat.
//
// The caller's one rule, persist before send (as in etcd raft's Ready; the
// replica's carry_out, replica.hpp, keeps it for the servers):
// whatever take_new_assignments() and take_deliveries() return must be in the
// member's log (and, with --fsync, synced) before any datagram from a later
// take_outgoing() leaves. A datagram tells the others what this member holds:
// the assignments it made, how far it delivered. A member restarted from its
// log must still hold all of it, or it could assign one of its slots k a
// second time (the others hold the first), or the others could free a
// message it still lacks.
//
// Restarts: a restarted member comes back with a larger incarnation and what
// its log holds (restore_logged). It counts a peer as heard only from a
// datagram that echoes its new incarnation, so a datagram sent before the
// restart, arriving late, cannot make it sequence on stale knowledge.
//
// Promises (checked by tests/sim_test.cpp under loss, duplication, reordering,
// delay, and crashes at any point between output and persistence, with
// restarts that receive their earlier life's datagrams): every member
// delivers the same messages in the same order, with no gaps and no
// duplicates, across all its lives; each origin's messages in the order it
// sent them; every message submitted by a member that does not crash is
// delivered once the network lets enough through and every member is up.
// In the all-members mode the group stalls while any member is down; in
// safe-delivery mode a view change (membership.hpp) replaces the configuration.
//
// A slow member (safe mode, resign_lag_us): since k+1 is assigned only
// once k is known, a member whose datagrams take 20 ms each way holds up
// every n-th slot by a round trip, and so everyone. Each member measures how
// late every other one claims what it holds (claim lag) and says in its
// headers whom it finds lagging. A member that a majority of the group finds
// lagging resigns from the rotation: at its own next slot k it assigns,
// instead of a message, a rotation change naming itself. From k+1 on the
// slots go round the remaining members only (active[k mod |active|]); the
// slow member stays a member, holds and claims the order, and its clients'
// messages are sequenced by the others. Once fewer than a majority find it
// lagging, the owner of some later slot assigns a rotation change naming
// it, and it is back in. A healthy cluster keeps k mod n. Why this keeps
// total order (the rule, kept in try_sequence): a rotation change is an
// assignment like any other, made by the one member that owns its slot
// (never by another on its behalf: that is Mencius's revocation, which
// needs consensus, as the owner may be assigning the slot at that moment);
// and a member assigns k only knowing every assignment below k, so every
// member that assigns after a change knows of it and computes the same
// owner. It is a record like any other for safe delivery and the view
// change (held, claimed, carried over the cut), and delivers as a no-op. A
// new configuration starts with every member in the rotation. Only
// liveness rests on the lag figures: a wrong one moves slots to other
// owners, never gives a slot two. A member resigns only while the rest are
// a majority: with fewer, safe delivery waits for its claims anyway.
// Repairs across a slow link are paced by its round trip: an item re-sent
// to a lagging member is not re-sent within its claim lag, and a member a
// majority finds lagging asks again no sooner than resign_lag_us; out of
// the rotation, it also asks later and stays out of lossy mode (ask_gap).
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "wire.hpp"

namespace mcast {

using MemberId = uint16_t;
using wire::MessageName;

constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();

// A rotation change (see "A slow member" above) is an assignment whose name
// has incarnation 0, which no message has: origin is the member it takes out
// of the rotation or puts back, origin_seq the slot it is assigned to (so
// every change has its own name). It has no payload and delivers as a no-op.
inline bool is_rotation_change(const MessageName& n) { return n.incarnation == 0; }
inline MessageName rotation_change(MemberId subject, uint64_t global_seq) {
  return MessageName{subject, 0, global_seq};
}

struct Delivery {
  uint64_t global_seq = 0;
  MessageName name;
  std::string payload;
};

struct Outgoing {
  MemberId to = 0;
  std::string bytes;
};

// The last message of one origin that was sequenced (0,0 = none yet).
struct OriginPosition {
  uint64_t incarnation = 0;
  uint64_t origin_seq = 0;
};

// What must survive a restart for a member to resume: how far it delivered,
// and the last delivered message of each origin (so that, as a sequencer, it
// knows which message of each origin comes next).
struct SequencePosition {
  uint64_t delivered_upto = 0;
  std::vector<OriginPosition> last_delivered;  // indexed by member id
};

// Deliberate protocol bugs, for the simulator's self-test only: they prove
// that the checker catches a broken protocol. Never set outside tests.
enum class InjectedBug {
  None,
  SequenceWithoutPrefix,
  DeliverPastGap,
  HeardWithoutEcho,  // any datagram from a peer counts as heard, even one sent before our restart
  DeliverWithoutMajority,  // safe mode: deliver what this member holds, majority or not
  ClaimBelowCut,           // safe mode: claim (and count) what it holds before it holds the cut
  ClaimBeforeDurable,      // deferred durability: claim records when written, not when durable
  RevokeLaggingSlot,       // resign a lagging member in its own slot, on its behalf, without it
};

// Safe-delivery mode, used by membership.hpp: this Multicast orders one
// primary configuration of a larger group. Global sequence numbers up to
// `cut` came from earlier configurations; this member holds `held` of them
// (ascending, contiguous, ending at the highest it holds) and fetches the
// rest up to the cut by NACK, first from `source`. It delivers k only once a
// majority of the group's n members said, in this configuration, that they
// hold 1..k (PeerHeader::held_upto), itself counted only for what the caller
// has taken from take_held() (and so logged before any later datagram), and
// only once the caller has marked that it holds everything up to the cut
// (mark_order_complete): before that it delivers nothing.
struct OrderingStart {
  size_t group_size = 0;   // n, all members of the group, not only this configuration's
  uint64_t cut = 0;
  MemberId source = 0;
  uint64_t delivered_upto = 0;
  std::vector<Delivery> held;
  // Each origin's last delivered message (by member id), when delivered_upto
  // came from a snapshot rather than from the records in `held`.
  std::vector<OriginPosition> positions;
};

struct MulticastConfig {
  uint64_t nack_grace_us = 500;           // a gap must last this long before a NACK
  uint64_t nack_interval_us = 1000;       // re-ask for what is still missing
  // Lossy mode: when this member keeps having to repair losses (16 NACK
  // rounds of its own within 100 ms), for the next redundancy_window_us it
  // sends every packet twice (with independent losses at rate p a packet is
  // then lost with p*p, not p) and piggybacks recent assignments on every
  // packet. A clean network, with its rare spurious NACK, never pays for
  // either. 0 turns lossy mode off.
  uint64_t redundancy_window_us = 200'000;
  size_t piggyback_assignments = 4;       // in lossy mode, per packet
  uint64_t heartbeat_interval_us = 5000;  // STATUS period while anything is unstable
  size_t max_buffered = 4096;             // retransmit buffer bound, in messages
  size_t max_unsequenced_own = 3;         // own messages awaiting a global_seq
  size_t max_nack_entries = 64;           // per NACK round, per kind
  // Safe mode, group commit (server --fsync): a record handed out by
  // take_held() is written but may not be on disk yet. The member claims it
  // (held_upto in its headers, and so counts itself for it) only once the
  // caller says the write is durable (records_durable). Off: taking a
  // record is its durability, as the caller writes it before its next send.
  bool deferred_durability = false;
  // Safe mode: a member whose claims arrive this late (a moving average of
  // claim lags) is lagging; one that a majority finds lagging leaves the
  // rotation until fewer do (see "A slow member" at the top). A member is
  // no longer found lagging once its average falls below half of this (a
  // member nobody waits for claims at its next heartbeat, 5 ms at most).
  // 0: off, every member keeps its slots.
  uint64_t resign_lag_us = 0;
  InjectedBug bug = InjectedBug::None;
};

struct MulticastStats {
  uint64_t packets_in = 0;
  uint64_t malformed = 0;          // undecodable, or values no member could send
  uint64_t stale = 0;              // from an earlier incarnation of the sender
  uint64_t assignments_made = 0;
  uint64_t conflicting_assignments = 0;  // must stay 0
  uint64_t nack_rounds = 0;       // recovery passes that asked for something
  uint64_t nacks_sent = 0;         // entries asked for
  uint64_t retransmitted = 0;      // entries re-sent because someone asked
  uint64_t heartbeats = 0;
  uint64_t redundant_copies = 0;   // packets sent twice because of recent loss
  uint64_t rotation_changes = 0;   // delivered in this configuration (slow members out or back in)
};

class Multicast {
 public:
  // `view` lists the members in sequencer order; it must contain `self`.
  // `restored` is where this member stood before a restart (empty if new).
  Multicast(MemberId self, std::vector<MemberId> view, uint64_t incarnation,
            MulticastConfig config = {}, SequencePosition restored = {});
  // Safe-delivery mode (see OrderingStart). `incarnation` names the
  // configuration: every member of it uses the same number, larger than any
  // earlier configuration's, so names never repeat across configurations.
  Multicast(MemberId self, std::vector<MemberId> view, uint64_t incarnation, MulticastConfig config,
            const OrderingStart& start);

  // Puts back a record this member logged in an earlier life: a message it
  // delivered (so it can serve peers that lack it), or an assignment it made
  // and had not delivered (so it never assigns that global_seq again, and
  // can serve it). Call before anything else, in any order.
  void restore_logged(const Delivery& d);

  // False when the batching window is full or the retransmit buffer is at its
  // bound; the caller should then hold new work back (and tell clients).
  bool can_submit() const;
  // Own messages multicast in this life and not yet sequenced.
  uint64_t unsequenced_own() const;
  MessageName submit(std::string payload, uint64_t now_us);

  // A datagram from member `from` (the caller knows it by its address).
  // Malformed or implausible datagrams are counted and change nothing.
  void receive(MemberId from, const void* data, size_t len, uint64_t now_us);
  // The same, for a datagram the caller has decoded already (Membership
  // decodes each one to see which configuration it belongs to).
  void receive(MemberId from, const wire::PeerPacket& packet, uint64_t now_us);
  void tick(uint64_t now_us);
  // When tick must next be called; kNever when the member is quiescent.
  uint64_t next_deadline() const;

  std::vector<Outgoing> take_outgoing();
  // Something waits to be taken: records (take_held), deliveries or datagrams.
  bool has_output() const;
  std::vector<Delivery> take_deliveries();
  // The assignments this member made since the last call, each with the
  // payload it names: to be logged before the next send (see the top).
  std::vector<Delivery> take_new_assignments();
  // Safe-delivery mode: the records this member newly holds (1..held_upto
  // contiguous, assignment and payload), in order, to be logged before the
  // next send; only from then on does it say it holds them. Taking them may
  // make more messages deliverable (take_deliveries afterwards).
  std::vector<Delivery> take_held();
  // Safe mode: 1..held_upto are in the caller's log (taken by take_held);
  // with deferred durability, 1..durable_held_upto are on disk as well, and
  // only those are claimed. Without it the two are the same.
  uint64_t held_upto() const { return written_held_upto_; }
  uint64_t durable_held_upto() const { return logged_held_upto_; }
  // Deferred durability: the caller's log is durable up to the record
  // held_upto and the Delivered mark delivered_upto (the values it had when
  // it wrote them). Ignored without deferred durability.
  void records_durable(uint64_t held_upto, uint64_t delivered_upto);
  // Deferred durability: some record written and not yet durable is one a
  // member waits to hear this one claim (to answer a client, or it is this
  // member that answers). The caller syncs soon when so; the others only
  // add to the margin of safety, and can wait for the next sync.
  bool claims_awaited() const;
  // Safe mode: every record this member holds and has not freed, 1..held_upto
  // (the view change carries them into the next configuration).
  std::vector<Delivery> held_records() const;
  bool safe_delivery() const { return safe_; }
  // Safe mode: the caller has logged that this member holds the order up to
  // the cut (Membership's OrderComplete). Until then the member delivers
  // nothing and claims only what it delivered (claimable_held): what it
  // fetches is not yet its log's own.
  void mark_order_complete();

  // Nothing is missing, unsequenced or unstable as far as this member knows.
  bool quiescent() const;
  // Lossy mode (see MulticastConfig::redundancy_window_us) is on: the
  // caller may want to send its own datagrams twice as well.
  bool lossy_mode() const { return now_us_ < redundant_until_; }
  // The retransmit buffer is at its bound: some member is not keeping up.
  bool backlogged() const { return retransmit_buffer_.size() >= config_.max_buffered; }
  // What a restarted member must still hold (see restore_logged): delivered
  // messages some member may still ask for (global_seq above stable_upto),
  // and the assignments it made and has not delivered yet.
  std::vector<Delivery> records_to_keep() const;
  // Queues a bare header to every member (no reply wanted): a member about to
  // exit tells the others how far it got.
  void announce();

  // Graceful leave. After close() this member submits nothing more, and says
  // so in every header. done_leaving(): every member has closed and nothing
  // is missing or unstable, so no member can ever deliver a message this one
  // has not: its state is final and it may exit.
  void close();
  bool done_leaving() const;

  MemberId self() const { return self_; }
  // The one member that may assign global_seq: view[global_seq mod n] in a
  // healthy configuration; active[global_seq mod |active|] once some member
  // resigned (see "A slow member"). Exact up to the first slot not known
  // assigned (for recent slots: the last 16 rotations are kept); beyond
  // it a guess (an unknown rotation change may lie between).
  MemberId sequencer_for(uint64_t global_seq) const;
  // The members in the rotation after every assignment known so far.
  const std::vector<MemberId>& rotation() const { return active_; }
  // Safe mode, resign_lag_us: this member finds m lagging, and how late m's
  // claims arrive (moving average, microseconds; 0 until measured).
  bool finds_lagging(MemberId m) const { return m < lag_.size() && lag_[m].lagging; }
  uint64_t claim_lag_us(MemberId m) const { return m < lag_.size() ? lag_[m].average_us : 0; }
  size_t lagging_measured() const { return lag_.size(); }  // members 0..this-1
  // Who assigns the first global_seq this member does not know assigned.
  MemberId next_sequencer() const { return sequencer_for(assigned_contiguous_ + 1); }
  uint64_t delivered_upto() const { return delivered_upto_; }
  uint64_t stable_upto() const { return stable_upto_; }
  // Records 1..freed_upto are no longer held in memory (stable and freed).
  uint64_t freed_upto() const { return freed_upto_; }
  size_t buffered_messages() const { return retransmit_buffer_.size(); }
  size_t known_assignments() const { return assignments_.size(); }
  const MulticastStats& stats() const { return stats_; }

 private:
  struct PeerState {
    uint64_t incarnation = 0;     // newest life heard of
    uint64_t own_highwater = 0;   // its highest origin_seq in that life
    uint64_t delivered_upto = 0;  // what it has told us it delivered
    // Heard from its current life in a datagram that echoed our own
    // incarnation: sent after it knew of this life of ours.
    bool heard = false;
    bool closed = false;          // said it will multicast nothing more
    uint64_t assigned_contiguous = 0;  // it knows every assignment 1..this
    uint64_t assigned_upto = 0;   // highest assignment it holds, said in its current life
    uint64_t held_upto = 0;       // safe mode: it logged 1..this (said in this configuration)
    uint64_t finds_lagging = 0;   // bit m: it finds member m lagging (its latest header)
  };
  struct ClaimLag {  // how late one peer claims what this member holds
    uint64_t probe_slot = 0;    // waiting for its claim of this slot (0: none)
    uint64_t probe_since = 0;   // when this member came to hold probe_slot
    uint64_t average_us = 0;
    bool lagging = false;
  };
  struct Ask {  // one missing item: when first seen or last asked for, how often
    uint64_t last = 0;
    uint32_t times = 0;
  };

  bool plausible(const wire::PeerPacket& p) const;
  bool plausible_name(const MessageName& n) const;
  void learn_name(const MessageName& n);
  void new_life(MemberId m, uint64_t incarnation);
  void on_data(const wire::DataRecord& d);
  void on_assign(uint64_t global_seq, const MessageName& name);
  void record_assignment(uint64_t global_seq, const MessageName& name);
  void answer_nacks(MemberId from, const wire::PeerPacket& p);

  MessageName next_to_sequence(MemberId origin) const;
  bool pick_eligible(uint64_t global_seq, MessageName& out) const;
  void try_sequence();
  void try_deliver();
  void advance_held();
  void tell_holders_needed(uint64_t from, uint64_t to);
  static constexpr MemberId kNobody = std::numeric_limits<MemberId>::max();
  MemberId awaits_claim(uint64_t global_seq, const MessageName& name) const;
  bool held_by_majority(uint64_t global_seq) const;
  uint64_t claimable_held() const;
  MemberId holder_of(uint64_t global_seq) const;
  void measure_claim_lag();
  uint64_t lagging_bits() const;
  size_t found_lagging_by(MemberId m) const;
  bool should_resign() const;
  bool found_lagging() const;  // by a majority: this member is the slow one
  bool resigned_for_lag() const;  // ... and out of the rotation
  MemberId to_reinstate() const;
  bool assign_rotation_change(uint64_t global_seq);
  bool revoke_lagging_slot(uint64_t global_seq);
  void apply_rotation_change(uint64_t global_seq, MemberId subject);
  void update_stability();
  void drop_superseded(MemberId origin);

  bool all_heard() const;
  // The highest global_seq some member says it holds assigned (this one
  // included). Claims of a peer's earlier life are forgotten when it
  // restarts, so they can never hold sequencing back for ever.
  uint64_t assigned_heard() const;
  bool all_peers_closed() const;
  // Heartbeats run while anything is unstable, and while we are leaving
  // and have not yet heard that everyone else is leaving too.
  bool wants_heartbeat() const { return !quiescent() || (closed_ && !all_peers_closed()); }
  void recover(uint64_t now_us);
  uint64_t ask_gap(const Ask& a) const;
  uint64_t ask_again_gap(uint32_t times_asked) const;  // after the first ask: 1, 1, 2, 4, ... 16 intervals
  bool due(Ask& a, uint64_t now_us);
  bool ask_for_assignments(uint64_t now_us, std::map<uint64_t, Ask>& asks);
  bool ask_for_payloads(uint64_t now_us, std::map<MessageName, Ask>& asks);
  void ask_late_sequencer(uint64_t now_us, std::map<uint64_t, Ask>& asks);
  std::vector<MemberId> nack_targets(MemberId preferred, uint32_t times_asked) const;
  bool awaiting_next_assignment() const;
  void piggyback_assignments(MemberId to, wire::PeerPacket& packet) const;
  uint64_t highest_held_assignment() const;
  void send_heartbeats(uint64_t now_us);
  wire::PeerPacket& outbox(MemberId to) { return outbox_[to]; }
  void send_to_others(const wire::DataRecord* d, const wire::AssignRecord* a);

  const MemberId self_;
  const std::vector<MemberId> view_;
  const uint64_t incarnation_;
  const MulticastConfig config_;
  // Safe-delivery mode (OrderingStart); in phase one's mode safe_ is false,
  // group_size_ is |view_| and cut_ is 0.
  const bool safe_ = false;
  const size_t group_size_;
  // A majority of the whole group (n, not this configuration): what safe
  // delivery and the rotation's rules count.
  size_t majority() const { return group_size_ / 2 + 1; }
  const uint64_t cut_ = 0;
  const MemberId source_ = 0;
  uint64_t held_upto_ = 0;         // holds 1..this, assignment and payload
  uint64_t written_held_upto_ = 0; // handed to the caller by take_held()
  // Claimed: written and durable (see deferred_durability). Invariant:
  // logged_held_upto_ <= written_held_upto_ <= held_upto_.
  uint64_t logged_held_upto_ = 0;
  // Deferred durability: the caller's durable Delivered mark; a header never
  // says more (kNever without deferred durability: the mark is written
  // before any send).
  uint64_t durable_delivered_ = kNever;
  void claim_durable(uint64_t upto);
  bool order_complete_ = false;    // safe mode: see mark_order_complete()
  std::vector<Delivery> new_held_;
  uint64_t freed_upto_ = 0;  // records 1..this are gone from memory
  void free_stable();

  uint64_t last_origin_seq_ = 0;     // this member's own messages, this life
  uint64_t delivered_upto_ = 0;
  uint64_t assigned_contiguous_ = 0;  // every assignment 1..this is known
  uint64_t stable_upto_ = 0;          // every member delivered 1..this

  std::vector<PeerState> peers_;              // by member id, self included
  std::vector<OriginPosition> sequenced_;     // per origin, within 1..assigned_contiguous_
  std::map<uint64_t, MessageName> assignments_;  // global_seq > stable_upto_
  std::map<MessageName, uint64_t> seq_of_;       // inverse of assignments_
  // The rotation for the slots after assigned_contiguous_ (view_ minus the
  // members that resigned in this configuration, in view_ order), and the
  // rotation changes known above assigned_contiguous_, by slot (not yet in
  // force: a change applies from its slot on, once every slot below is known).
  std::vector<MemberId> active_;
  std::map<uint64_t, MemberId> pending_rotation_changes_;
  std::map<uint64_t, std::vector<MemberId>> rotations_;  // by first slot: the last few, active_ last
  std::vector<ClaimLag> lag_;  // by member id
  struct RecentAnswers {  // re-sent to a lagging peer within its claim lag: when
    std::map<uint64_t, uint64_t> assigns;
    std::map<MessageName, uint64_t> data;
  };
  std::vector<RecentAnswers> answered_;  // by member id
  uint64_t repeat_window(MemberId to);
  // Payloads held, sequenced or not. Invariant: an entry leaves only when its
  // global_seq <= stable_upto_ (every member delivered it) or when it can no
  // longer be sequenced (its origin has restarted and it never was).
  std::map<MessageName, std::string> retransmit_buffer_;

  std::map<uint64_t, Ask> asked_assign_;     // first k of each missing range
  std::map<MessageName, Ask> asked_data_;    // missing payloads
  // The next k while its sequencer is late (at most one entry). Kept apart
  // from asked_assign_ so that a gap ask starts its own backoff afresh: a
  // late sequencer asked often must not make the gap behind it ask slowly.
  std::map<uint64_t, Ask> asked_late_;
  uint64_t next_ask_due_ = kNever;
  uint64_t now_us_ = 0;          // the latest time the caller gave us
  bool recovery_due_ = false;    // something arrived: look for gaps at the next tick
  uint64_t recent_repairs_[16] = {};  // ring of the last repair times
  size_t next_repair_slot_ = 0;
  uint64_t redundant_until_ = 0;
  void note_repair();
  uint64_t last_heartbeat_ = 0;
  bool heartbeat_sent_ = false;
  // By member id: when a datagram last went to it, and when one last came
  // from its current life that echoed ours. A peer that got our header
  // within the heartbeat interval needs no heartbeat, and one we heard from
  // within it need not be asked for a reply.
  std::vector<uint64_t> last_sent_us_;
  std::vector<uint64_t> last_heard_us_;
  bool closed_ = false;

  std::map<MemberId, wire::PeerPacket> outbox_;
  std::vector<Delivery> deliveries_;
  std::vector<Delivery> new_assignments_;  // made, not yet taken by the caller
  MulticastStats stats_;
};

}  // namespace mcast
