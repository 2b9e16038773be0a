// membership.hpp: configurations, view change and safe delivery: one member's
// whole group-communication protocol, as a pure state machine.
//
// A Membership object is one member's protocol state. Like Multicast, which
// it drives, it does no I/O and reads no clock: the caller feeds it datagrams
// (receive), the time (tick) and messages to multicast (submit), and takes a
// Ready: records to persist, events to apply, datagrams to send, in that
// order. server.cpp wires it to a socket and files; tests/group_sim_test.cpp
// wires n of them to a simulated, faulty network with crashes.
//
// Configurations (extended virtual synchrony). The n members named by
// --peers are fixed. At any time a member is installed in at most one
// configuration: an id (epoch.rep, ordered by epoch, then rep) and the
// members that formed it together. A configuration with a majority of the n
// members (floor(n/2)+1) is primary: only a primary configuration orders and
// delivers messages, through a Multicast over its members, so global_seq k is
// assigned by members[k mod |members|] of the configuration that assigns it.
// A non-primary configuration only records who can talk: its members answer
// clients "not in a majority" and change nothing.
//
// How a configuration forms (a view change, as in Viewstamped Replication):
//   1. Every member sends a keepalive to all n members every keepalive_us,
//      naming its installed configuration and the members it hears. Member m
//      is reachable from me while I heard m within suspect_after_us, and
//      mutual when, besides, m's last keepalive says it hears me. A member
//      wants a view change when its mutual set differs from its
//      configuration's members, or a mutual member is installed elsewhere,
//      or it is installed nowhere (just started).
//   2. The coordinator (the lowest id of its mutual set; any member, after a
//      staggered wait, when that one does nothing) picks an id with an epoch
//      above every epoch it has seen and sends PREPARE(id, members).
//   3. A member that gets PREPARE with an id above every id it has promised
//      persists the promise, stops taking part in its old configuration
//      (it sends, acknowledges and delivers nothing more in it), and answers
//      STATE: its last primary configuration, how far it holds the order
//      (held_upto), how far it delivered.
//   4. With STATE from every proposed member, the coordinator sends INSTALL.
//      For a primary configuration it names the source: the member with the
//      newest last primary configuration, ties broken by the highest
//      held_upto; the cut is the source's held_upto. Members whose last
//      primary is the source's start the new ordering from what they hold
//      up to the cut; the others from what they delivered; all fetch the
//      rest up to the cut from the new configuration. Ordering resumes at
//      cut + 1.
//
// A claim changes only at OrderComplete. A member's claim is the pair its
// STATE reports: its last primary configuration P and how far it holds P's
// order. Until the member holds the new configuration's order up to the cut,
// it keeps its old claim whole: the records it fetches are logged apart
// (Staged), it delivers nothing, and its STATE still reports P and the old
// held_upto. When it holds the cut it logs OrderComplete, which is the
// commit point: from that record on, the log's claim is the new
// configuration's order (LogReplay swaps the records). An install that is
// left before that (a newer PREPARE, a crash) leaves the old claim as it was.
//
// Safe delivery: a member delivers k only when a majority of the n members
// have said, in the current configuration, that they hold 1..k (held_upto).
// A member says it holds k only after k is in its log (persist before send;
// with --fsync, on disk: Multicast's deferred durability), and, beyond what
// it delivered, only once it holds the configuration's order up to the cut:
// from then on its STATE names this configuration as its last primary
// (OrderComplete), which the argument below needs. It delivers nothing in a
// configuration before that either, except through a state transfer, which
// only adopts a prefix its source delivered already.
//
// Why no delivered k is ever lost or changed (the argument the rules above
// keep; tests/group_sim_test.cpp hammers it):
//   Say k was first delivered (anywhere) in primary configuration c. A
//   majority M had said in c that they hold 1..k; none of them had
//   delivered k yet, so each said it as a holding, which a member says only
//   once it holds c's order up to the cut and has logged OrderComplete(c)
//   (Multicast::claimable_held). Claim: every primary configuration d newer
//   than c that installs anywhere has a cut >= k and the same record at k.
//   Take the oldest d for which it would fail. Its STATE set S is a
//   majority, so it meets M in some m. m's claim now is either still
//   (c, >= k), or (e, >= e's cut) for some primary e with c < e < d that m
//   completed: a claim changes only at OrderComplete (above), and after its
//   promise of a newer id m says nothing more in c. Either way m's claim
//   holds k, by the choice of d. The source s has a last primary at least
//   m's, so it too is c or such an e; if it is m's, s holds at least as far
//   as m (ties go to the most held), and if it is newer, it is an e and s
//   holds at least e's cut. So s's claim holds k, and within one
//   configuration every k has one assigner and every member adopted the
//   same prefix at its install: the cut keeps k, unchanged. Contradiction.
//   A member's delivered prefix is never beyond a cut for the same reason,
//   so starting from it is safe. Two holes the rules close, each found by
//   review and replayed by a test:
//   - Members still fetching c's order below its cut counted toward
//     delivering there while their STATEs named an older configuration
//     (Multicast::claimable_held; unit_membership, membership_scenario_a).
//   - A member that had completed c later installed a configuration whose
//     source had a newer last primary, dropped its records down to what it
//     delivered, still reported c, and was later picked as a source: the
//     cut lost a delivered k (the rule "a claim changes only at
//     OrderComplete"; membership_scenario_b, GroupBug::ShrinkClaimAtInstall).
//   A non-primary configuration changes no log, so it cannot break this;
//   a promised epoch is persisted, so a restarted member never answers an
//   older PREPARE after a newer one.
//   Steps the argument takes for granted, and what keeps each:
//   - A claim survives a crash as it was said: every record a member
//     claims is in its log first (persist before send; with --fsync, on
//     disk: Multicast's deferred durability), and LogReplay reads back the
//     claim the live member had (group_sim --check-replay checks this
//     after every flush).
//   - Two members whose last primary is the same P hold the same records
//     up to the smaller of their claims: within P each k has one assigner,
//     and both adopted the same prefix up to P's cut at its install (by
//     induction on P). That is why the install's keep can take records
//     from any member with the source's last primary.
//   - After a state transfer a claim's height may stand over the
//     snapshot rather than over records (finish_transfer drops those at or
//     below it): the snapshot is the order that prefix delivered, agreed
//     by everyone who delivered it, so it holds the same k.
//   - A source's snapshot never reaches past the new configuration's cut:
//     it is taken at the first request of the configuration, and nothing
//     past the cut is assigned before every member is heard in the new
//     ordering (Multicast::try_sequence waits for all_heard), which the
//     member receiving the transfer is not until it ends. So the state a
//     receiver installs is from the old order, which the cut keeps. (The
//     simulator counts snapshots past the cut, also with --late-snapshot
//     delaying the source's snapshot: 0 in every run so far.)
//
// Partial partitions: which sets may form, and who may refuse. Links do
// not always fail cleanly: a bridge (0 and 2 cannot talk, 1 talks to both),
// a one-way cut (2 hears 0, 0 does not hear 2), a ring (each member hears
// only its neighbours). Each keepalive says whom its sender hears (`hears`),
// so a member knows, up to a keepalive's age, who hears whom among the
// members it hears itself. Four rules:
//   1. Cliques only. A configuration is proposed, and joined, only if all
//      its members hear each other, as far as the member deciding knows
//      (best_clique, judge_proposal). An ordering needs every member to
//      hear every other: each owns slots, and each acknowledgement counts.
//      A set with one deaf pair installs and delivers nothing (the ring was
//      a total outage), or breaks at once and forms again (the bridge
//      cycled through 40 configurations in 8 s).
//   2. A working configuration is kept (Raft's CheckQuorum, turned around).
//      A configuration works for me while I am installed in it and have
//      promised nothing newer, all its members hear each other, and none
//      says it promised anything newer (configuration_works: each promised
//      it, so an older promise in a header is only older news). Headers
//      never roll a member's ids back (a late one is older news). A member whose
//      primary configuration works joins no proposal that drops one of its
//      members; in a non-primary one that works, it joins one that drops a
//      member only if the proposal could be primary: a majority, not
//      counting members whose headers say they are amnesiac (each header
//      says so). Without this the member
//      left out of a bridge proposes {itself, the middle}, the middle
//      gives up a primary that serves, the other end proposes again, and
//      so on.
//   3. Ask before anyone freezes (Raft's PreVote). A would-be coordinator
//      first sends PROBE to the members it would propose; a probe changes
//      nothing anywhere, and each answers PROBEREPLY with its verdict (the
//      rules above; also "another round is under way" if it promised
//      another coordinator lately). Only if all say join does it start the
//      round (PREPARE, which each judges again before promising). Else,
//      if its own configuration no longer works, it probes again those who
//      said join (a member may join a majority but not a smaller set), each
//      time fewer, at worst itself alone; if it still works, it stays.
//      Either way the refused set is asked again no sooner than
//      refused_retry_us. An answer "not all of them hear each other" may
//      only mean the answering member's picture lags: everyone is asked
//      once more, a keepalive later, before anyone is left out. So the
//      member left out asks, is told no, and nobody has frozen anything.
//   4. What to propose (wanted_members): when my configuration does not
//      work, the largest set containing me that rule 1 allows (ties: the
//      one keeping most of my configuration, then the lowest ids). When it
//      works: the largest such set that contains all of it, if larger (a
//      merge); or, in a non-primary configuration, the largest set, if it
//      could be primary (rule 2) and is not my configuration itself (with
//      amnesiac members a non-primary configuration can be a majority: it
//      would re-form for ever; found by review). A set refused lately is
//      skipped, so a refused merge gives way to a majority.
// Why the changes end (the paper argument; group_sim --partial checks it,
// membership_scenarios r1-r3 replay what a review found): say the links
// stop changing, every member is up, and every picture is current (a
// suspicion timeout and a few keepalives later; headers never go back).
//   a. At most one primary configuration works at a time: two majorities
//      share a member, installed in one.
//   b. A working primary P only grows. A proposal that drops a member of P
//      but names another one is refused by that one (rule 2, which counts
//      it in P from the install on); a majority proposal
//      names a member of P (majorities meet), so it must contain all of P.
//      So P changes only by merges, at most n times.
//   c. Outside P, a member of a working configuration C joins only a
//      strict superset of C (then all of C joined it together, rule 3:
//      C moves whole) or a majority set (which, with P there, is a merge of
//      P). So C breaks only when some of its members move into P, leaving
//      the rest to re-form once: each such change grows P. Otherwise C
//      only grows. Finitely many changes.
//   d. With no working primary, if some majority all hear each other, a
//      member of it whose configuration works wants a majority set (rule
//      4, after a refused merge at the latest) and nobody refuses one
//      (rule 2 lets any non-primary member join a majority): it installs,
//      primary if a majority of it is trusted. If amnesiac members leave
//      no trusted majority anywhere, nothing wants a change once every
//      configuration works (rule 4 proposes only sets that could be
//      primary), and the cluster stays, refusing ("Amnesia").
//   e. Two coordinators at once may cost a change: the ids decide, and the
//      staggered waits make it rare.
// What rule 1 gives up: with no majority whose members all hear each other
// (the ring at n=5, where each hears only its two neighbours), no primary
// forms; every member says "not in a majority" at once, and the cluster
// serves again when the links come back. Serving through such a ring needs
// members to relay each other's messages, which this protocol does not do.
//
// Delivery order at a change (EVS): the last messages of the old
// configuration, then TRANSITIONAL (the members of the new configuration
// that come from my old one), then the messages up to the cut that are
// delivered in the new configuration, then REGULAR.
//
// Restarts: a restarted member comes back with a new incarnation and what
// its log holds (Restored). It is in no configuration, so it counts in no
// majority, until a new configuration installs with it.
//
// Amnesia (a restart that may have lost a claimed tail). Without --fsync a
// record is claimed once written to the operating system: a process crash
// keeps it, an OS crash or power cut may not. A member whose log may have
// lost a tail (Restored::amnesiac; the server knows it from the boot id,
// ReplicaStore's trust file) could report in its STATE less than it once
// claimed, and the argument above ("m's claim holds k") would fail: with
// n = 3, A and C hold k, C delivers it, A loses k in an OS crash, C is cut
// off, and A and B form a primary whose cut is below k: k is assigned
// again (found by review; group_sim --bug trust-log-after-os-crash).
// So, as Viewstamped Replication's recovery (Liskov & Cowling 2012, 4.3):
// an amnesiac member takes part, but counts for nothing it might have
// forgotten. Its STATE says it is amnesiac; a configuration is primary only
// if a majority of the n members sent STATEs that are not (it may be a
// member of it, beyond that majority), and the source is never amnesiac.
// Then the argument above holds among the trusted STATEs: S's trusted
// majority meets M in a member whose claim is whole. (So an amnesiac
// member's delivered prefix is never beyond the cut either: what it
// delivered a majority held, and the trusted majority meets that one.) Its promises it never
// forgets (the server syncs every Promise before it leaves, with or without
// --fsync), so it never answers an older PREPARE after a newer one and,
// coordinating, never uses an id twice (group_sim --bug promise-unsynced:
// one id then names two configurations). It is amnesiac no more once it holds the order of a primary configuration up to
// its cut (OrderComplete): its claim from then on was made in this life, of
// records it fetched, and the server records that (trust file) after the
// OrderComplete record is written. If a majority is amnesiac at once (a
// whole-cluster power cut without --fsync), no primary configuration can
// form: the cluster refuses until an operator vouches for enough logs
// (server --trust-log), which may lose what those logs lost.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "multicast.hpp"
#include "wire.hpp"

namespace mcast {

// A configuration's name: ordered by epoch, then by the representative (the
// member that formed it). 0.0 is "none".
struct ConfigId {
  uint64_t epoch = 0;
  MemberId rep = 0;
  bool operator<(const ConfigId& o) const { return epoch != o.epoch ? epoch < o.epoch : rep < o.rep; }
  bool operator==(const ConfigId& o) const { return epoch == o.epoch && rep == o.rep; }
  bool operator!=(const ConfigId& o) const { return !(*this == o); }
  bool operator<=(const ConfigId& o) const { return !(o < *this); }
  bool none() const { return epoch == 0; }
  std::string text() const;  // "4.2"
  // A configuration's ordering number, the `incarnation` its Multicast
  // stamps on every message name and packet; and back.
  uint64_t ordering_number() const { return (epoch << 16) | rep; }
  static ConfigId of_ordering_number(uint64_t number) {
    return ConfigId{number >> 16, static_cast<MemberId>(number & 0xffff)};
  }
};

struct Configuration {
  ConfigId id;
  std::vector<MemberId> members;  // ascending
  bool primary = false;           // holds a majority of the n members
  uint64_t cut = 0;               // primary: the order up to here came from earlier ones
};

// One line of the member's log. A Ready's records are written, in order,
// before any datagram of it leaves: carry_out (replica.hpp) states the whole
// order once.
struct LogRecord {
  enum class Kind {
    Held,       // `held`: this member holds k (assignment and payload) of its claimed order
    // `held`, fetched for a primary configuration this member installed and
    // does not yet hold up to its cut: void unless an OrderComplete of that
    // configuration follows (see "A claim changes only at OrderComplete").
    Staged,
    Delivered,  // `upto`: delivered 1..upto (the events say what)
    Truncate,   // `upto`: Held records above upto are void (written by earlier versions only)
    Promise,    // `config.id`: never answer a PREPARE at or below this id again
    // `config`: installed this configuration; its ordering starts from the
    // order up to `upto` (install_keep); `claim_upto` is what this member
    // claims, for its last primary, until the install completes.
    Install,
    // `config.id`: holds that primary configuration's order up to its cut.
    // The commit point of an install: the Held records above install_keep
    // are void from here, and the Staged records take their place.
    OrderComplete,
  };
  Kind kind = Kind::Held;
  Delivery held;
  uint64_t upto = 0;
  uint64_t claim_upto = kNoClaim;  // Install only; kNoClaim in a log of an earlier version
  Configuration config;
  static constexpr uint64_t kNoClaim = ~uint64_t{0};
};

// What the member's caller applies, in order.
struct Event {
  enum class Kind {
    Deliver,       // `delivery`
    Transitional,  // `config.id` is the new id, `config.members` the members moving on with me
    Regular,       // `config`: now installed; `reason` says why it formed
    // `snapshot`: the state at global_seq `snapshot_upto`, from another
    // member (state transfer). The caller replaces its state with it and
    // makes it durable (a snapshot file, and the log rewritten to
    // durable_state()) before it sends anything of a later Ready.
    InstallSnapshot,
  };
  Kind kind = Kind::Deliver;
  Delivery delivery;
  Configuration config;
  std::string reason;
  std::string snapshot;
  uint64_t snapshot_upto = 0;
};

// How far a member's log reaches: with deferred durability (group commit,
// MulticastConfig::deferred_durability), the caller hands these back to
// records_durable() once the writes that reached them are on disk.
struct DurableMarks {
  ConfigId ordering;            // the configuration whose ordering wrote the records
  uint64_t held_upto = 0;       // its Held records reach this k
  uint64_t delivered_upto = 0;  // the last Delivered mark
};

// What the member produced since the last take_ready(), as etcd raft's
// Ready. Replica::take_handoff applies the events and carry_out
// (replica.hpp) writes to_persist before to_send leaves.
struct Ready {
  std::vector<LogRecord> to_persist;
  std::vector<Event> events;
  std::vector<Outgoing> to_send;
  // A member joining with less than this one has freed asks for its state:
  // once the events are applied, call provide_snapshot().
  bool snapshot_wanted = false;
  // Where the log stands once to_persist is written.
  DurableMarks marks;
  // Deferred durability only (without it every Ready is persisted before it
  // is sent, and these do not matter). True: something here may not leave
  // before the log is on disk (a membership record, or a membership message
  // other than a keepalive, which may report a claim); sync, call
  // records_durable(marks), then send. False: only ordering records (Held,
  // Staged, Delivered) and ordering datagrams, which claim only what
  // records_durable() has confirmed: send now, sync when convenient.
  bool sync_before_send = false;
};

// Where a restarted member stood: read back from its log (LogReplay).
struct Restored {
  uint64_t delivered_upto = 0;
  // The records of this member's claim, ascending, contiguous up to
  // claim_upto (those at or below delivered_upto may be missing: freed by a
  // snapshot).
  std::vector<Delivery> held;
  // The member's claim: it holds last_primary's order up to here (what its
  // STATE says). Not always held's end: after a state transfer the claim may
  // lie below delivered_upto.
  uint64_t claim_upto = 0;
  ConfigId promised;            // highest id promised
  // The last primary configuration whose order this member held up to the
  // cut (OrderComplete).
  ConfigId last_primary;
  std::optional<Configuration> last_installed;
  uint64_t install_keep = 0;    // the Install record's `upto`
  // Records fetched for last_installed, a primary configuration not yet
  // complete (OrderComplete). durable_state() fills it: a log rewrite keeps
  // them, so that an OrderComplete appended after the rewrite still finds
  // them. LogReplay::finish() leaves it empty: a restarted life installs
  // nothing until a new configuration forms.
  std::vector<Delivery> staged;
  // The log may have lost a tail this member had claimed (an OS crash or a
  // power cut without --fsync: see "Amnesia" above). The caller knows, not
  // the log: LogReplay::finish() leaves it false.
  bool amnesiac = false;
};

// Reads a log back: the rules every restart follows (ReplicaStore::open,
// and the simulators' replays). Feed the records in the order written.
//   Held        remembers record k (a later one for k replaces it);
//   Staged      remembers record k apart, for the install under way;
//   Delivered   delivered 1..upto (the last mark counts);
//   Truncate    forgets the Held records above upto;
//   Promise     the highest id counts; staged records are void (the
//               install they were fetched for was left);
//   Install     the last one counts; staged records are void;
//   OrderComplete  the last primary. If it names the last install, that
//               install is complete: the Held records above install_keep
//               are void and the Staged ones become Held.
// `snapshot_upto` is the state the log continues from. A snapshot ahead of
// every Delivered mark came from a state transfer (or outran a log that a
// power cut shortened): the records at or below it are dropped, since they
// may belong to an older order than the snapshot's.
class LogReplay {
 public:
  explicit LogReplay(uint64_t snapshot_upto = 0) : snapshot_upto_(snapshot_upto) {}
  void add(const LogRecord& record);
  // Held records with k above the returned value would be void after
  // `record` (kNever: none). The store refuses to replay past a record that
  // voids what it already applied.
  uint64_t voids_above(const LogRecord& record) const;
  // What reading `record` next would do to what a reader has applied from
  // the log, up to `applied` (above the snapshot): replace an applied Held
  // record with another message, or void some. The protocol never does
  // either, so ReplicaStore::open stops reading at such a record.
  enum class Undo { None, Replaces, Voids };
  Undo undoes_applied(const LogRecord& record, uint64_t applied) const;
  // The remembered Held record k, or null.
  const Delivery* held(uint64_t k) const;
  Restored finish() const;

 private:
  bool commits_last_install(const LogRecord& record) const;
  uint64_t snapshot_upto_;
  uint64_t delivered_mark_ = 0;
  std::map<uint64_t, Delivery> held_;
  std::map<uint64_t, Delivery> staged_;
  Restored found_;
  uint64_t install_claim_ = LogRecord::kNoClaim;
};

enum class GroupBug {
  None,
  DeliverWithoutMajority,  // deliver once one member (itself) holds k
  CutAtDelivered,          // cut at the source's delivered_upto, not held_upto
  MinorityDelivers,        // a non-primary configuration orders and delivers
  PrimaryAtInstall,        // claim a primary configuration as last primary at install, before holding its cut
  ShrinkClaimAtInstall,    // drop the claim to where the new ordering starts, at install (hole B)
  CountAmnesiac,           // count an amnesiac member's STATE like any other
  // Deliberately broken partial-partition rules (liveness, not safety):
  ProposeHeardSet,         // propose and join the members that hear me, all hearing each other or not (rule 1)
  YieldWorkingPrimary,     // join any proposal, even one that drops a member of a working configuration (rule 2)
  NoPreVote,               // PREPARE without asking first (rule 3)
  // Both defences against a late header at once (rule 2): its ids roll the
  // peer's back, and any promise but the configuration's stops it working.
  // Either defence alone keeps a stale header harmless, so each alone has
  // no observable failure (membership_scenario_r4 catches both broken).
  StaleHeadersBreak,
  ClaimBeforeDurable,      // deferred durability: claim a record once written, before it is on disk
  RevokeLaggingSlot,       // slow members: take a lagging member out of the rotation in its slot, without it
};

struct MembershipConfig {
  uint64_t keepalive_us = 20'000;        // keepalive period to all n members
  uint64_t suspect_after_us = 300'000;   // silent this long: no longer reachable
  uint64_t view_change_timeout_us = 200'000;  // a PREPARE round left unanswered is retried
  // A probe refused while this member's configuration works: the same set
  // is asked again no sooner than this (rule 3 of "Partial partitions").
  uint64_t refused_retry_us = 1'000'000;
  // The service's mode (Replica's --partitionable). Every membership header
  // says it, and one of the other mode is dropped (counted in other_mode):
  // such a member is never a peer, so no configuration mixes modes (a
  // committed MERGE record would be skipped as malformed where items are
  // not named, and the copies would differ for ever).
  bool partitionable = false;
  MulticastConfig multicast;
  GroupBug bug = GroupBug::None;
};

struct MembershipStats {
  uint64_t malformed = 0;
  uint64_t stale = 0;            // membership messages of an earlier life of their sender
  uint64_t other_config = 0;     // multicast packets of a configuration not ours
  uint64_t other_mode = 0;       // membership messages of a member of the other mode (dropped)
  uint64_t view_changes = 0;     // PREPARE rounds this member started
  uint64_t probes = 0;           // PROBE rounds this member started
  uint64_t refusals = 0;         // PROBEs and PREPAREs this member refused to join
  uint64_t installs = 0;
};

class Membership {
 public:
  // `group_size` is n; members are 0..n-1. `incarnation` is this life's
  // number, larger than any earlier life's.
  Membership(MemberId self, size_t group_size, uint64_t incarnation, MembershipConfig config,
             Restored restored = {});

  // A datagram from member `from` (the caller knows it by its address): a
  // membership message (wire::Kind::Membership) or a multicast packet
  // (wire::Kind::Peer) of some configuration. Malformed datagrams, and
  // packets of a configuration this member is not installed in, are counted
  // and change nothing.
  void receive(MemberId from, const void* data, size_t len, uint64_t now_us);
  void tick(uint64_t now_us);
  // When tick must next be called.
  uint64_t next_deadline() const;

  // Only in an installed primary configuration, with room in the window.
  bool can_submit() const;
  MessageName submit(std::string payload, uint64_t now_us);
  // Everything produced since the last call (carried out by the order
  // carry_out in replica.hpp states; with deferred durability, see
  // Ready::sync_before_send).
  Ready take_ready();
  // take_ready() would return something.
  bool has_ready() const;
  // Deferred durability: the log is on disk up to `marks` (a Ready's, or
  // written_marks() after a snapshot rewrote the log). From here the member
  // claims those records and reports that Delivered mark.
  void records_durable(const DurableMarks& marks);
  // Where the log stands with everything taken so far written.
  DurableMarks written_marks() const;
  // Deferred durability: a record written and not yet durable is awaited
  // (Multicast::claims_awaited), so the caller should sync soon.
  bool claims_awaited() const { return ordering_ && ordering_->claims_awaited(); }
  // State transfer, the sending side: the caller's state rendered as text
  // (FTQueue::render_snapshot) at global_seq `upto`, which must be
  // delivered_upto() (every delivery applied, none after). Ignored otherwise.
  void provide_snapshot(std::string state_text, uint64_t upto);

  // Graceful stop of the whole group (every member closes; see
  // Multicast::close). done_leaving(): this member is installed in a
  // configuration whose members have all closed with nothing left to
  // deliver, so it may exit with a final state.
  void close();
  bool done_leaving() const;
  // Tells every member at once where this one stands (a member about to exit).
  void announce();

  MemberId self() const { return self_; }
  size_t group_size() const { return n_; }
  bool installed() const { return installed_; }
  bool primary() const { return installed_ && config_.primary; }
  // The installed configuration (the last one, if a view change is under way).
  const Configuration& configuration() const { return config_; }
  ConfigId promised() const { return promised_; }
  ConfigId last_primary() const { return last_primary_; }
  // Its log may have lost a claimed tail, and it has not caught up yet (see
  // "Amnesia" above).
  bool amnesiac() const { return amnesiac_; }
  // Members heard from lately, this one included.
  size_t reachable_count() const;
  // A view change is under way that may install a primary configuration:
  // the round this member promised names members that could be primary
  // (or, before any promise in this life, it hears a majority).
  bool primary_may_form() const;
  uint64_t delivered_upto() const { return delivered_upto_; }
  uint64_t held_upto() const;
  // What a STATE says this member holds of the order of last_primary():
  // held_upto once it holds its primary configuration's order up to the
  // cut; until then the claim it had before the install, unchanged.
  uint64_t claimed_held_upto() const;
  uint64_t stable_upto() const;
  // The records a restarted member must find in its log: all of its claim
  // it has not freed (see Restored).
  std::vector<Delivery> records_to_keep() const;
  // Everything a restart needs, as it stands now (records_to_keep as held):
  // what the log is rewritten to when a snapshot is taken.
  Restored durable_state() const;
  const MembershipStats& stats() const { return stats_; }
  // Bit m: member m's membership messages said the other mode (ever).
  uint64_t other_mode_members() const { return other_mode_members_; }
  // The current configuration's ordering, or null (not primary, or frozen).
  const Multicast* ordering() const { return ordering_.get(); }

 private:
  struct Peer {
    uint64_t incarnation = 0;    // newest life heard of
    bool heard = false;
    uint64_t last_heard_us = 0;
    uint64_t hears = 0;          // its last keepalive's bitmask
    bool amnesiac = false;       // its last header said it is amnesiac
    ConfigId installed;          // its configuration, as it last said
    ConfigId promised;
    uint64_t delivered_upto = 0;
  };
  struct StateReport {
    uint64_t incarnation = 0;
    ConfigId previous;
    ConfigId last_primary;
    uint64_t held_upto = 0;
    uint64_t delivered_upto = 0;
    uint64_t freed_upto = 0;
    bool amnesiac = false;
  };
  // A state transfer this member receives: the source's snapshot, in order.
  struct Transfer {
    bool active = false;
    MemberId source = 0;
    uint64_t upto = 0;
    uint64_t total = 0;
    std::string received;
    uint64_t asked_upto = 0;        // the end of the window asked for last
    uint64_t last_progress_us = 0;
  };

  void on_membership(MemberId from, const wire::MembershipMessage& m);
  void on_prepare(MemberId from, const wire::MembershipMessage& m);
  void on_state(MemberId from, const wire::MembershipMessage& m);
  void on_install(const wire::MembershipMessage& m);
  bool reachable(MemberId m) const;
  bool hears(MemberId a, MemberId b) const;
  bool hear_each_other(const std::vector<MemberId>& members) const;
  std::vector<MemberId> mutual_members() const;
  std::vector<MemberId> best_clique(const std::vector<MemberId>& required) const;
  bool configuration_works() const;
  bool could_be_primary(const std::vector<MemberId>& members) const;
  std::optional<std::vector<MemberId>> wanted_members() const;
  wire::Verdict judge_proposal(MemberId from, const std::vector<MemberId>& proposed, bool probe) const;
  void maybe_start_view_change();
  void start_probe(std::vector<MemberId> members);
  void resend_probe();
  void on_probe(MemberId from, const wire::MembershipMessage& m);
  void on_probe_reply(MemberId from, const wire::MembershipMessage& m);
  void finish_probe();
  void start_round(std::vector<MemberId> members);
  void promise(ConfigId id, std::vector<MemberId> members);
  void freeze();
  void decide();
  void install(const wire::MembershipMessage& m);
  void resend_round_messages();
  void pull_from_ordering();
  void complete_order();
  void maybe_emit_regular();
  void start_ordering(MemberId source, std::vector<OriginPosition> positions);
  void on_snapshot_request(MemberId from, const wire::MembershipMessage& m);
  void on_snapshot_chunk(MemberId from, const wire::MembershipMessage& m);
  void send_snapshot_chunks(MemberId to, uint64_t offset);
  void ask_for_snapshot();
  void finish_transfer();
  uint64_t freed_upto() const;
  std::string change_reason(const Configuration& next) const;
  wire::MembershipMessage header(wire::MembershipType type) const;
  void send(MemberId to, const wire::MembershipMessage& m);
  void send_keepalives();

  const MemberId self_;
  const size_t n_;
  const uint64_t incarnation_;
  const MembershipConfig options_;

  uint64_t now_us_ = 0;
  std::vector<Peer> peers_;
  ConfigId promised_;
  std::vector<MemberId> promised_members_;  // the round promised last, in this life
  uint64_t max_epoch_seen_ = 0;
  ConfigId last_primary_;
  Configuration config_;
  bool installed_ = false;
  bool regular_pending_ = false;  // primary: REGULAR once delivered reaches the cut
  // Installed primary, the order up to the cut not all held yet (then
  // last_primary_ is still the configuration before, and the ordering's
  // records are Staged).
  bool order_incomplete_ = false;
  bool snapshot_unapplied_ = false;  // an InstallSnapshot event not yet taken by the caller
  uint64_t install_keep_ = 0;
  std::string regular_reason_;
  uint64_t delivered_upto_ = 0;
  // The Delivered mark on disk, as far as membership messages report it
  // (deferred durability; else delivered_upto_).
  uint64_t durable_delivered_upto_ = 0;
  bool sync_needed_ = false;  // ready_ holds a message that must wait for the disk
  // The claim (last_primary_'s order up to claim_upto_) and its records,
  // while no complete ordering holds it: no ordering runs (frozen, or not
  // yet installed), or the installed one is incomplete. A complete
  // ordering's own records are the claim (claim_ is then empty).
  std::vector<Delivery> claim_;
  uint64_t claim_upto_ = 0;
  // The records the next ordering starts from (install to start_ordering).
  std::vector<Delivery> start_records_;
  std::unique_ptr<Multicast> ordering_;
  bool closed_ = false;
  bool amnesiac_ = false;  // see "Amnesia"

  // The probe this member runs before a round (rule 3), if any: the set it
  // asks about, the tag the answers carry, and each answer so far.
  struct Probe {
    ConfigId tag;
    std::vector<MemberId> members;
    std::map<MemberId, wire::Verdict> answers;
    uint64_t started_us = 0;
    uint64_t resent_us = 0;
    bool asked_again = false;  // once, after an answer "not all of them hear each other"
  };
  std::optional<Probe> probe_;
  uint64_t probes_started_ = 0;  // this life's, for the probes' tags
  // Sets a probe was refused lately, and when each may be asked again.
  std::map<std::vector<MemberId>, uint64_t> refused_until_us_;

  // The view change this member coordinates, if any.
  ConfigId proposal_;
  std::vector<MemberId> proposed_;
  std::map<MemberId, StateReport> reports_;
  uint64_t round_started_us_ = 0;
  uint64_t round_resent_us_ = 0;
  wire::MembershipMessage install_sent_;  // its INSTALL, re-sent to members that missed it
  bool has_install_sent_ = false;
  // When this member last saw reason for a view change with none under way.
  uint64_t change_wanted_since_us_ = 0;
  bool change_wanted_ = false;
  uint64_t last_progress_us_ = 0;  // last promise or install
  uint64_t next_keepalive_us_ = 0;
  uint64_t first_tick_us_ = kNever;  // when this life started, as far as it knows
  bool ever_installed_ = false;      // in this life

  // State transfer: the one this member receives, and the snapshot it
  // serves to others (taken once per configuration, on the first request).
  Transfer transfer_;
  ConfigId snapshot_config_;
  uint64_t snapshot_upto_ = 0;
  std::string snapshot_blob_;
  std::map<MemberId, uint64_t> snapshot_waiting_;  // requests that came before the snapshot
  // Each origin's last delivered message, for a snapshot's receiver.
  std::vector<OriginPosition> last_delivered_;

  Ready ready_;
  MembershipStats stats_;
  uint64_t other_mode_members_ = 0;
};

}  // namespace mcast
