// replica.cpp: one replica's decisions (replica.hpp). No I/O, no clock.
#include "replica.hpp"

#include <algorithm>
#include <cstdlib>

const char* admission_text(Admission a) {
  switch (a) {
    case Admission::Admitted: return "admitted, waits for the next DATA";
    case Admission::AnsweredAgain: return "applied before, its stored reply goes back";
    case Admission::Superseded: return "older than this client's latest, ignored";
    case Admission::InFlight: return "in flight already, ignored (this replica replies once it is delivered)";
    case Admission::NotInMajority: return "refused: not in a majority";
    case Admission::Stopping: return "refused: stopping";
    case Admission::Backlogged: return "refused: backlogged";
    case Admission::RefusedAgain: return "a copy of a try refused before: refused again";
    case Admission::Tentative: return "answered tentatively (partitionable mode: this side has no majority)";
    case Admission::Uncopied: return "ran on a side whose members may not all hold it: not answered (outcome unknown)";
    case Admission::Gathering: return "not answered yet: its side's leader awaits the work its members bring (no effect)";
  }
  return "?";
}

namespace {
// "0,2,3"
std::string members_text(const std::vector<mcast::MemberId>& members) {
  std::string text;
  for (mcast::MemberId m : members) text += (text.empty() ? "" : ",") + std::to_string(m);
  return text;
}

}  // namespace

const char* peer_verdict_note(PeerVerdict v) {
  switch (v) {
    case PeerVerdict::Taken: return "";
    case PeerVerdict::Malformed: return " (rejected: malformed or implausible)";
    case PeerVerdict::Stale: return " (dropped: stale, from an earlier life)";
    case PeerVerdict::OtherConfig: return " (dropped: another configuration's)";
    case PeerVerdict::OtherMode: return " (dropped: its sender runs in the other mode, --partitionable)";
  }
  return "";
}

const char* describe_side_datagram(const void* data, size_t len, std::string& text) {
  std::string bytes;
  partition::Segment part;
  uint64_t side = 0, held = 0;
  if (wire::decode_side_copy(data, len, bytes)) {
    text = partition::decode_segment(bytes, part)
               ? "side " + mcast::ConfigId::of_ordering_number(part.side).text() + " effects " +
                     std::to_string(part.first + 1) + ".." + std::to_string(part.end())
               : "a malformed segment";
    return "SIDECOPY";
  }
  if (wire::decode_side_ack(data, len, side, held)) {
    text = "side " + mcast::ConfigId::of_ordering_number(side).text() + ": holds its effects 1.." + std::to_string(held);
    return "SIDEACK";
  }
  return nullptr;
}

namespace {
// The membership's options as the replica's imply them.
mcast::MembershipConfig membership_options(ReplicaOptions o) {
  o.membership.multicast.deferred_durability = o.fsync;
  o.membership.partitionable = o.partitionable;
  return o.membership;
}
}  // namespace

Replica::Replica(mcast::MemberId self, size_t group_size, uint64_t incarnation, ReplicaOptions options,
                 FTQueue state, mcast::Restored restored)
    : self_(self),
      n_(group_size),
      options_(std::move(options)),
      group_(self, group_size, incarnation, membership_options(options_), std::move(restored)),
      state_(std::move(state)) {
  amnesiac_ = group_.amnesiac();
  if (options_.bug == ReplicaOptions::Bug::NoExactlyOnce) state_.break_exactly_once_for_tests();
  if (options_.bug == ReplicaOptions::Bug::MergeDropsPushes) state_.break_merge_for_tests(partition::MergeBug::DropPushes);
}

// ---- carrying out a hand-off (the order is stated in replica.hpp) ----------

bool carry_out(Replica& replica, const Handoff& h, HandoffEffects& fx, Misorder misorder) {
  auto send_all = [&] {
    for (const mcast::Outgoing& d : h.datagrams)
      if (!fx.send(d)) return false;
    for (const ReplyOut& r : h.replies)
      if (!fx.reply(r)) return false;
    return true;
  };
  if (misorder == Misorder::SendBeforePersist && !send_all()) return false;
  if (misorder == Misorder::TrustBeforePersist && h.log_trusted && !fx.log_trusted()) return false;
  if (!h.records.empty() && !fx.append(h.records)) return false;               // 1
  if ((!h.tentative_lines.empty() || h.tentative_replace) && !fx.write_tentative(h.tentative_lines, h.tentative_replace))
    return false;
  if (h.write_snapshot) {                                                       // 2
    if (!fx.write_snapshot()) return false;
    replica.log_rewritten();
  }
  if (h.log_trusted && misorder != Misorder::TrustBeforePersist && !fx.log_trusted()) return false;
  const bool sync_before = h.sync == Handoff::Sync::BeforeSend && misorder != Misorder::SendBeforeSync;
  if (sync_before) {                                                            // 3
    if (!fx.sync()) return false;
    replica.sync_completed(h.sync_marks);
  }
  if (misorder != Misorder::SendBeforePersist && !send_all()) return false;    // 4
  if (h.sync == Handoff::Sync::AfterSend || (h.sync == Handoff::Sync::BeforeSend && !sync_before)) {  // 5
    if (!fx.sync()) return false;
    replica.sync_completed(h.sync_marks);
  }
  return true;
}

// ---- clients ----------------------------------------------------------------

// A request is admitted once. A copy that arrives while it is in flight
// is ignored: whoever sequences it will answer, and a retry that comes
// after it was applied here gets the stored reply.
Admission Replica::client_request(const wire::Operation& op, uint32_t attempt, wire::ClientAddress from,
                                  uint64_t now_us) {
  ++counts_.requests;
  now_us_ = std::max(now_us_, now_us);
  if (auto cached = state_.cached_reply(op.client_id, op.request_no)) {
    cached->attempt = attempt;
    if (options_.bug == ReplicaOptions::Bug::UntaggedMergedRepeats) cached->tentative = false;
    answer(*cached, from);
    return Admission::AnsweredAgain;
  }
  if (state_.superseded(op.client_id, op.request_no)) return Admission::Superseded;
  // A request this replica ran on a side it led is answered as it was there,
  // wherever this replica is now: refused ("no effect") or run again it
  // would be a lie or a second application (found by review).
  if (auto ran = ran_tentatively_.find(op.client_id);
      ran != ran_tentatively_.end() && ran->second.reply.request_no == op.request_no)
    return answer_ran_tentatively(ran->second, attempt, from) ? Admission::Tentative : Admission::Uncopied;
  const auto key = std::make_pair(op.client_id, op.request_no);
  if (admitted_.count(key)) return Admission::InFlight;
  auto refused = refused_.find(op.client_id);
  if (refused != refused_.end() && refused->second.request_no == op.request_no && attempt <= refused->second.highest_try &&
      options_.bug != ReplicaOptions::Bug::ForgetRefusals) {
    wire::Reply again = not_in_majority(op, attempt);
    again.code = refused->second.code;
    answer(again, from);
    return Admission::RefusedAgain;
  }
  if (!may_serve() && serves_tentatively()) return serve_tentatively(op, attempt, from);
  if (!may_serve()) {
    ++counts_.minority_replies;
    answer(not_in_majority(op, attempt), from);
    note_refused(op, attempt, wire::ReplyCode::NotInMajority, now_us);
    return Admission::NotInMajority;
  }
  const mcast::Multicast* ordering = group_.ordering();
  if (stopping_ || (ordering && ordering->backlogged()) || waiting_.size() >= options_.max_waiting_ops) {
    ++counts_.busy_replies;
    wire::Reply busy{op.client_id, op.request_no, wire::ReplyCode::Busy, 0};
    busy.attempt = attempt;
    answer(busy, from);
    note_refused(op, attempt, wire::ReplyCode::Busy, now_us);
    return stopping_ ? Admission::Stopping : Admission::Backlogged;
  }
  if (waiting_.empty()) first_waiting_us_ = now_us;
  waiting_.push_back(Waiting{wire::BatchedOp{op, from, wire::batched_attempt(attempt)}, attempt, false, 0});
  admitted_.insert(key);
  return Admission::Admitted;
}

// A replica serves while it is in a primary configuration, and waits (holds
// requests) while a view change under way may install a primary one;
// otherwise it says at once that it is not in a majority, so the client
// asks another replica instead of waiting here for nothing.
bool Replica::may_serve() const { return group_.primary() || group_.primary_may_form(); }

void Replica::note_refused(const wire::Operation& op, uint32_t attempt, wire::ReplyCode code, uint64_t now) {
  if (refused_.size() >= kRefusalsKept)
    for (auto it = refused_.begin(); it != refused_.end();)
      it = now > it->second.at_us + kRefusalMemoryUs ? refused_.erase(it) : std::next(it);
  Refusal& r = refused_[op.client_id];
  if (r.request_no != op.request_no) r = Refusal{op.request_no, attempt, code, now};
  r.highest_try = std::max(r.highest_try, attempt);
  r.code = code;
  r.at_us = now;
}

wire::Reply Replica::not_in_majority(const wire::Operation& op, uint32_t attempt) const {
  wire::Reply r{op.client_id, op.request_no, wire::ReplyCode::NotInMajority, 0};
  r.value = static_cast<int32_t>((group_.reachable_count() << 16) | n_);
  r.attempt = attempt;
  return r;
}

// Every reply says whether this replica is in lossy mode, so that its
// client sends its requests twice for a while too.
void Replica::answer(wire::Reply r, wire::ClientAddress to, int copies) {
  r.lossy = lossy_mode();
  replies_.push_back(ReplyOut{r, to, copies});
}

bool Replica::lossy_mode() const { return group_.ordering() && group_.ordering()->lossy_mode(); }

// ---- peers and time -----------------------------------------------------------

PeerVerdict Replica::peer_datagram(mcast::MemberId from, const void* data, size_t len, uint64_t now_us) {
  now_us_ = std::max(now_us_, now_us);
  PeerVerdict side_verdict;
  if (side_datagram(from, data, len, side_verdict)) return side_verdict;
  const Refused before = refused();
  group_.receive(from, data, len, now_us);
  const Refused after = refused();
  if (after.malformed > before.malformed) return PeerVerdict::Malformed;
  if (after.stale > before.stale) return PeerVerdict::Stale;
  if (after.other_config > before.other_config) return PeerVerdict::OtherConfig;
  if (after.other_mode > before.other_mode) return PeerVerdict::OtherMode;
  return PeerVerdict::Taken;
}

Replica::Refused Replica::refused() const {
  const mcast::Multicast* ordering = group_.ordering();
  const mcast::MembershipStats& g = group_.stats();
  return Refused{g.malformed + (ordering ? ordering->stats().malformed : 0) + side_malformed_,
                 g.stale + (ordering ? ordering->stats().stale : 0), g.other_config, g.other_mode};
}

// Requests go out before the protocol's tick: a submit makes it look for
// gaps at its next tick (Multicast::recovery_due_), and this tick is it.
void Replica::tick(uint64_t now_us, uint64_t wall_ms) {
  now_us_ = std::max(now_us_, now_us);
  if (options_.partitionable) {
    submit_merges(now_us);
    if (now_us >= side_copy_due_us_) copy_side(now_us);
    bring_to_leader(now_us);
  }
  submit_waiting(now_us, wall_ms);
  group_.tick(now_us);
  // Closing ends this replica's sending; orphans' operations waiting to be
  // sent again may stay unsent (their clients were told nothing definite).
  if (stopping_ && std::all_of(waiting_.begin(), waiting_.end(), [](const Waiting& w) { return w.multicast_before; }))
    group_.close();
  if (sync_owed_since_ != mcast::kNever && now_us >= sync_owed_since_ + kOwedSyncUs) sync_due_ = true;
}

uint64_t Replica::next_deadline() const {
  uint64_t deadline = std::min({group_.next_deadline(), batch_hold_ends(), side_copy_due_us_, bring_due_us_});
  if (sync_owed_since_ != mcast::kNever) deadline = std::min(deadline, sync_owed_since_ + kOwedSyncUs);
  return deadline;
}

void Replica::begin_drain() { stopping_ = true; }
void Replica::announce() { group_.announce(); }

// ---- batching -------------------------------------------------------------------

// Requests that arrive while a message of ours awaits its global_seq wait
// too, and go out together. A second message is sent before the first is
// sequenced only if it is full (like Nagle's rule): under load, batches
// grow and the rotation carries more per slot. And a batch waits for the
// clients this replica just answered, who come back with their next
// requests within microseconds: until as many requests wait as the last
// burst of replies had, or batch_hold_us after the first one came. (One
// client: a burst of one, so no wait.) Every batch costs datagrams and
// wake-ups at every replica, and on a busy machine those, not the
// protocol's steps, are what limit throughput.
bool Replica::batch_ready(uint64_t now) const {
  if (waiting_.size() >= wire::kMaxBatchOps) return true;
  const uint64_t hold_ends = batch_hold_ends();
  if (hold_ends == mcast::kNever) return false;  // our last batch is not sequenced yet
  return waiting_.size() >= expected_back_ || now >= hold_ends;
}

// When the waiting requests go out at the latest, as a batch may (none
// waits, or our last one is not sequenced yet: kNever).
uint64_t Replica::batch_hold_ends() const {
  if (waiting_.empty() || !group_.can_submit() || group_.ordering()->unsequenced_own() > 0) return mcast::kNever;
  return first_waiting_us_ + options_.batch_hold_us;
}

void Replica::submit_waiting(uint64_t now, uint64_t wall_ms) {
  while (!waiting_.empty() && group_.can_submit() && batch_ready(now)) {
    const size_t take = std::min(waiting_.size(), wire::kMaxBatchOps);
    Sent batch{{}, now};
    for (size_t i = 0; i < take; ++i) {
      batch.ops.push_back(waiting_[i].op);
      if (waiting_[i].multicast_before) batch.first_sent_us = std::min(batch.first_sent_us, waiting_[i].first_sent_us);
    }
    waiting_.erase(waiting_.begin(), waiting_.begin() + static_cast<long>(take));
    const mcast::MessageName name = group_.submit(wire::encode_batch(batch.ops, wall_ms), now);
    in_flight_[name] = std::move(batch);
    if (!waiting_.empty()) first_waiting_us_ = now;
  }
}

// ---- the hand-off ---------------------------------------------------------------

bool Replica::has_handoff(uint64_t now_us) const {
  return group_.has_ready() || !replies_.empty() || !tentative_lines_.empty() || tentative_replace_ || !side_out_.empty() ||
         sync_due_ ||
         (sync_owed_since_ != mcast::kNever && now_us >= sync_owed_since_ + kOwedSyncUs);
}

// Everything the protocol produced, with its events applied to the state
// here (so a sync's claims, reported later by sync_completed, always come
// after the events they cover are applied), the answers decided, and the
// durability the records need.
Handoff Replica::take_handoff(uint64_t now_us) {
  now_us_ = std::max(now_us_, now_us);
  Handoff out;
  mcast::Ready ready = group_.take_ready();
  out.records = std::move(ready.to_persist);
  logged_held_upto_ = group_.held_upto();  // `status` reports what is written to the log
  const size_t replies_before = replies_.size();
  for (const mcast::Event& e : ready.events) apply(e, out);
  const size_t delivered_replies = replies_.size() - replies_before;
  if (delivered_replies > 0) expected_back_ = std::min(delivered_replies, wire::kMaxBatchOps);
  // Every delivery is applied: the state is the one at delivered_upto.
  if (ready.snapshot_wanted) group_.provide_snapshot(state_.render_snapshot(), state_.applied_upto());
  decide_sync(ready, now_us, out);
  if (amnesiac_ && !group_.amnesiac()) {
    out.log_trusted = true;  // its OrderComplete is among out.records ("Amnesia")
    out.notes.push_back("caught up: its log holds everything it claims again");
  }
  amnesiac_ = group_.amnesiac();
  note_other_mode(out);
  out.datagrams = std::move(ready.to_send);
  order_datagrams(out.datagrams);
  out.datagrams.insert(out.datagrams.end(), side_out_.begin(), side_out_.end());
  side_out_.clear();
  out.replies = std::move(replies_);
  replies_.clear();
  if (options_.partitionable) forget_merged_sides();
  out.tentative_lines = std::move(tentative_lines_);
  tentative_lines_.clear();
  out.tentative_replace = tentative_replace_;
  tentative_replace_ = false;
  return out;
}

// Once per member: one that says the other mode is not a peer (membership.hpp).
void Replica::note_other_mode(Handoff& out) {
  const uint64_t fresh = group_.other_mode_members() & ~other_mode_noted_;
  for (mcast::MemberId m = 0; m < n_; ++m)
    if (fresh & (uint64_t{1} << m))
      out.notes.push_back("error: replica " + std::to_string(m) + " runs " +
                          (options_.partitionable ? "without" : "with") +
                          " --partitionable, this one " + (options_.partitionable ? "with" : "without") +
                          " it: it is not a peer (its messages are dropped). Start every replica the same way.");
  other_mode_noted_ |= fresh;
}

// The protocol's datagrams, the next sequencer's first: it may assign the
// next global_seq only once it knows this one, and everyone waits for it.
void Replica::order_datagrams(std::vector<mcast::Outgoing>& out) const {
  if (const mcast::Multicast* ordering = group_.ordering()) {
    const mcast::MemberId next = ordering->next_sequencer();
    std::stable_partition(out.begin(), out.end(), [next](const mcast::Outgoing& o) { return o.to == next; });
  }
}

// Persist before send. Without --fsync a record is persisted once written
// (to the operating system) and no sync is ever asked for. With --fsync it
// must be on disk before anything claims it, and group commit keeps that
// rule: a hand-off's records are written, its datagrams sent (they claim
// only what is synced already: Multicast's deferred durability), and only
// then is the log synced, once, and its records claimed (sync_completed).
// Every record that arrived during the previous sync is in this hand-off,
// so one fdatasync covers them all, and each replica's sync runs while the
// others' datagrams are on their way and their own syncs run. (Measured
// against a sync thread, four designs, this was faster: README,
// Performance.) A Ready with a membership record or message (a promise, a
// STATE reporting a claim) is synced before it is sent.
void Replica::decide_sync(const mcast::Ready& ready, uint64_t now, Handoff& out) {
  if (!options_.fsync) {
    // Without --fsync only a promise is synced before it leaves
    // (membership.hpp, "Amnesia"): view changes are rare, and a forgotten
    // promise could let one configuration id name two configurations.
    for (const mcast::LogRecord& r : out.records)
      if (r.kind == mcast::LogRecord::Kind::Promise && options_.bug != ReplicaOptions::Bug::PromiseUnsynced)
        out.sync = Handoff::Sync::BeforeSend;
    out.sync_marks = ready.marks;
    return;
  }
  if (!out.records.empty()) {
    ++counts_.log_writes;
    unsynced_ = true;
    owed_marks_ = ready.marks;
  }
  if (ready.sync_before_send) {
    // Synced and claimed in carry_out's step 3, after a state transfer's
    // snapshot is written, even when nothing is unsynced (then the sync is
    // cheap): a claim may complete the order, which must not come before
    // the snapshot is on disk.
    out.sync = Handoff::Sync::BeforeSend;
    out.sync_marks = ready.marks;
    unsynced_ = sync_due_ = false;
    sync_owed_since_ = mcast::kNever;
    return;
  }
  if (!out.records.empty()) {
    const bool only_marks = std::all_of(out.records.begin(), out.records.end(), [](const mcast::LogRecord& r) {
      return r.kind == mcast::LogRecord::Kind::Delivered;
    });
    // A Delivered mark alone waits for a client: nobody needs it on disk
    // soon (it only lets the others free what everyone delivered), and the
    // next sync of held records covers it. Nor do records no member waits
    // to hear this one claim (it neither answers for them nor is the one
    // holder that tells the one that does): they only add to the margin.
    // Both are synced within kOwedSyncUs all the same, so that a quiet
    // cluster becomes stable.
    if (only_marks || !group_.claims_awaited()) sync_owed_since_ = std::min(sync_owed_since_, now);
    else sync_due_ = true;
  }
  if (sync_owed_since_ != mcast::kNever && now >= sync_owed_since_ + kOwedSyncUs) sync_due_ = true;
  if (!sync_due_) return;
  if (unsynced_) {
    out.sync = Handoff::Sync::AfterSend;
    out.sync_marks = owed_marks_;
  }
  unsynced_ = sync_due_ = false;
  sync_owed_since_ = mcast::kNever;
}

void Replica::sync_completed(const mcast::DurableMarks& marks) { group_.records_durable(marks); }

// A snapshot rewrote the log (and synced it, under --fsync): everything
// written is on disk.
void Replica::log_rewritten() {
  if (!options_.fsync) return;
  unsynced_ = sync_due_ = false;
  sync_owed_since_ = mcast::kNever;
  group_.records_durable(group_.written_marks());
}

// ---- applying what the protocol delivered ----------------------------------------

void Replica::apply(const mcast::Event& e, Handoff& out) {
  switch (e.kind) {
    case mcast::Event::Kind::Deliver:
      on_deliver(e.delivery, out);
      return;
    case mcast::Event::Kind::Transitional: {
      // Our batches not yet delivered were sent in the old configuration:
      // orphans from here on (see the top of replica.hpp).
      for (auto& [name, batch] : in_flight_) orphans_[name] = std::move(batch);
      in_flight_.clear();
      out.notes.push_back("transitional configuration " + e.config.id.text() + ": {" + members_text(e.config.members) +
                          "} move on together");
      out.applied.push_back(AppliedEvent{e, false});
      return;
    }
    case mcast::Event::Kind::Regular:
      on_regular(e, out);
      return;
    case mcast::Event::Kind::InstallSnapshot:
      install_snapshot(e, out);
      return;
  }
}

// Who answers: the replica the client asked (the batch's origin), once the
// batch is delivered, which safe delivery allows only when a majority of
// the members hold it. (Should that reply be lost, the client's retry
// finds the stored reply.)
void Replica::on_deliver(const mcast::Delivery& d, Handoff& out) {
  if (mcast::is_rotation_change(d.name)) {  // applies as a no-op; the log says what it did
    const mcast::Multicast* ordering = group_.ordering();
    out.notes.push_back("k=" + std::to_string(d.global_seq) + " rotation change naming r" + std::to_string(d.name.origin) +
                        (ordering && d.global_seq > group_.configuration().cut ? "; slots now go round {" + members_text(ordering->rotation()) + "}" : std::string()) +
                        " (a member leaves when a majority finds its claims late, and is put back when fewer do)");
  }
  const bool mine = d.name.origin == self_ && in_flight_.erase(d.name) + orphans_.erase(d.name) > 0;
  const std::vector<AddressedReply> applied = state_.apply(d);
  partition::Segment part;
  if (state_.names_items() && partition::decode_merge_record(d.payload, part))  // what a merge did, for the log
    out.notes.push_back("k=" + std::to_string(d.global_seq) + " merged side " +
                        mcast::ConfigId::of_ordering_number(part.side).text() + "'s effects " +
                        std::to_string(part.first + 1) + ".." + std::to_string(part.end()) + ": " +
                        state_.last_merge().text());
  out.delivered_batch_sizes.push_back(applied.size());
  const int copies = lossy_mode() ? 2 : 1;
  for (const AddressedReply& r : applied) {
    forget_admitted(r.reply.client_id, r.reply.request_no);
    if (mine) answer(r.reply, r.to, copies);
  }
  mcast::Event e;
  e.kind = mcast::Event::Kind::Deliver;
  e.delivery = d;
  out.applied.push_back(AppliedEvent{std::move(e), mine});
}

// The new configuration is regular. In a primary one, the orphans'
// operations are multicast again (the exactly-once table makes that safe
// were the first copy delivered after all). In a non-primary one, the
// requests that were never multicast are refused, truly "no effect"; an
// orphan's are not, since it may still be delivered (replica.hpp): they
// stay admitted and unanswered until a primary configuration sends them
// again or a delivery answers them.
void Replica::on_regular(const mcast::Event& e, Handoff& out) {
  const mcast::Configuration& c = e.config;
  std::string line = "configuration " + c.id.text() + " " + (c.primary ? "primary" : "non-primary") + " {" +
                     members_text(c.members) + "} of " + std::to_string(n_);
  if (c.primary) line += "; ordering resumes at k=" + std::to_string(c.cut + 1);
  if (!e.reason.empty()) line += "; " + e.reason;
  out.notes.push_back(line);
  out.applied.push_back(AppliedEvent{e, false});
  std::vector<Waiting> again;
  for (auto it = orphans_.begin(); it != orphans_.end();) {
    if (too_old(it->second.first_sent_us)) {  // beyond what the exactly-once table remembers
      forget_orphan_ops(it->second.ops);
      it = orphans_.erase(it);
      continue;
    }
    for (const wire::BatchedOp& op : it->second.ops) again.push_back(Waiting{op, op.attempt, true, it->second.first_sent_us});
    ++it;
  }
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (it->multicast_before && too_old(it->first_sent_us)) {
      forget_orphan_ops({it->op});
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  if (c.primary) {
    orphans_.clear();
    waiting_.insert(waiting_.begin(), again.begin(), again.end());
    return;
  }
  std::deque<Waiting> kept;
  for (const Waiting& w : waiting_) {
    const bool refuse = !w.multicast_before || options_.bug == ReplicaOptions::Bug::OrphansNotInMajority;
    if (!refuse) {
      kept.push_back(w);
      continue;
    }
    admitted_.erase(std::make_pair(w.op.op.client_id, w.op.op.request_no));
    ++counts_.minority_replies;
    answer(not_in_majority(w.op.op, w.attempt), w.op.reply_to, lossy_mode() ? 2 : 1);
    note_refused(w.op.op, w.attempt, wire::ReplyCode::NotInMajority, now_us_);
  }
  waiting_ = std::move(kept);
  if (options_.bug == ReplicaOptions::Bug::OrphansNotInMajority) {  // the lie the answer checker must catch
    for (const Waiting& w : again) {
      admitted_.erase(std::make_pair(w.op.op.client_id, w.op.op.request_no));
      answer(not_in_majority(w.op.op, w.attempt), w.op.reply_to);
    }
    orphans_.clear();
  }
}

// State transfer, the receiving side: this replica was away while the
// others freed what it lacks. The source's state replaces ours, and is on
// disk (snapshot, then the log rewritten to match) before anything else
// leaves (Handoff::write_snapshot): from here on this replica says it has
// delivered up to it. The protocol checked the transfer; a snapshot that
// does not load is a bug, and the replica must stop (Handoff::fatal) rather
// than go on without the state the others count on.
void Replica::install_snapshot(const mcast::Event& e, Handoff& out) {
  FTQueue fresh;
  std::string error;
  if (!fresh.load_snapshot(e.snapshot, error) || fresh.applied_upto() != e.snapshot_upto) {
    out.fatal = "the snapshot received does not load (" + error + ")";
    return;
  }
  state_ = std::move(fresh);
  if (options_.bug == ReplicaOptions::Bug::NoExactlyOnce) state_.break_exactly_once_for_tests();
  out.write_snapshot = true;
  out.notes.push_back("state transfer: installed a snapshot at k=" + std::to_string(e.snapshot_upto) + " (" +
                      std::to_string(e.snapshot.size()) + " bytes)");
  out.applied.push_back(AppliedEvent{e, false});
}

void Replica::forget_orphan_ops(const std::vector<wire::BatchedOp>& ops) {
  for (const wire::BatchedOp& op : ops) admitted_.erase(std::make_pair(op.op.client_id, op.op.request_no));
}

// Request `request_no` of a client was applied: neither it nor any older
// request of that client is in flight any more. (An older one the state
// skipped, because the client had given up on it and moved on, would
// otherwise stay here for ever.)
void Replica::forget_admitted(uint64_t client_id, uint64_t request_no) {
  admitted_.erase(admitted_.lower_bound(std::make_pair(client_id, uint64_t{0})),
                  admitted_.upper_bound(std::make_pair(client_id, request_no)));
}

// ---- views --------------------------------------------------------------------------

wire::ReplicaStatus Replica::status_view() const {
  wire::ReplicaStatus s;
  s.member = self_;
  // What is logged, not what the protocol reached since the last persist:
  // a status answered mid-pass must not report progress a kill -9 loses.
  s.delivered_upto = state_.applied_upto();
  s.stable_upto = std::min(group_.stable_upto(), state_.applied_upto());
  s.queues = static_cast<uint32_t>(state_.queue_count());
  const mcast::Multicast* ordering = group_.ordering();
  s.buffered_messages = static_cast<uint32_t>(ordering ? ordering->buffered_messages() : 0);
  if (group_.installed()) {
    const mcast::Configuration& c = group_.configuration();
    s.config_epoch = c.id.epoch;
    s.config_rep = c.id.rep;
    for (mcast::MemberId m : c.members) s.config_members |= uint64_t{1} << m;
    s.primary = group_.primary();
  }
  s.group_size = static_cast<uint16_t>(n_);
  s.reachable = static_cast<uint16_t>(group_.reachable_count());
  s.held_upto = logged_held_upto_;
  return s;
}

ReplicaCounts Replica::counts() const {
  ReplicaCounts c = counts_;
  c.membership = group_.stats();
  if (const mcast::Multicast* ordering = group_.ordering()) {
    c.ordering = ordering->stats();
    c.buffered = ordering->buffered_messages();
  }
  const Refused r = refused();
  c.malformed = r.malformed;
  c.stale = r.stale;
  c.other_config = r.other_config;
  c.other_mode = r.other_mode;
  c.waiting = waiting_.size();
  return c;
}

// ---- partitionable mode ---------------------------------------------------------
//
// (Issue 23; merge.hpp holds the merge and what it promises.) With
// --partitionable a configuration without a majority serves too, through
// its leader, its lowest member: the leader runs each request on its
// tentative state (the committed state merged with the sides it led
// before), records what the request did (an Effect, this side's next) in
// its tentative file, synced, and only then answers, marked tentative. The
// side's other members refuse as a minority does, so a client moves on to
// the leader. In a primary configuration every member that led sides
// multicasts what of their segments the committed state lacks, as MERGE
// records, parts of a segment, in the committed order: every replica
// merges each part where the order delivers it (FTQueue::apply), so all
// merge the same parts at the same points, and a part multicast twice is
// merged once (absorbed).
// Why committed answers stay true: a MERGE record is an ordinary message of
// the order, applied like any later operation; it adds the sides' pushes
// and removes only items a side's pop or destroy named. Queue ids a side
// creates come from its leader's own range (partition::tentative_id, its
// counter in the tentative file, never going back), so no two sides, nor
// the committed order, draw one id.
// group_sim_test --partitionable runs this under the usual faults (check
// 9). Once every side it holds is merged, the file shrinks to the id
// counter. A tentative answer waits until every other member of the side
// holds its effect ("copies of a side's work", below). When sides meet
// without a majority, the new side's leader first gathers the work its
// members hold ("sides that meet without a majority", below).

bool Replica::serves_tentatively() const {
  if (!options_.partitionable || stopping_ || !group_.installed() || group_.primary()) return false;
  const std::vector<mcast::MemberId>& members = group_.configuration().members;
  return !members.empty() && members.front() == self_;
}

// The side this replica's tentative state is of, and it leads it still.
bool Replica::leads_tentative_side() const {
  return tentative_ && serves_tentatively() && group_.configuration().id.ordering_number() == tentative_side_;
}

// The side it led ended (or another began): answers still waiting for
// copies are dropped, and never given (a retry is answered only once
// copied: answer_ran_tentatively), since the old side's members may lack
// the effect and will not take a copy from a side they left. (A review
// found them released by the next side's acks, uncopied. Since a new side
// carries the old side's work at the head of its own, such a release would
// now come only once the new side's members hold that work; the simulator
// no longer reaches a wrong answer from it in 20,000 seeds, and the
// variant was retired. Dropping them stays the plain rule.)
void Replica::end_tentative_side() {
  tentative_.reset();
  side_held_.clear();
  side_sent_.clear();
  held_answers_.clear();
  side_copy_due_us_ = mcast::kNever;
}

Admission Replica::serve_tentatively(const wire::Operation& op, uint32_t attempt, wire::ClientAddress from) {
  const uint64_t side = group_.configuration().id.ordering_number();
  if (!side_gathered()) return Admission::Gathering;
  if (!tentative_ || tentative_side_ != side) {
    end_tentative_side();
    std::vector<partition::Segment> earlier;
    for (const auto& [s, seg] : open_segments_) earlier.push_back(seg);
    partition::MergeCounts ignored;
    tentative_ = partition::merge(state_.named_state(), earlier, ignored);
    if (open_segments_[side].effects.empty()) carry_earlier_sides(side);
    // A counter lost with the tentative file goes on past every id of this
    // leader's range that the state it serves on still holds (merge.hpp).
    tentative_ids_drawn_ = std::max(tentative_ids_drawn_, partition::highest_tentative_count(*tentative_, self_));
    tentative_side_ = side;
    side_held_.clear();
    for (mcast::MemberId m : group_.configuration().members)
      if (m != self_) side_held_[m] = 0;
    side_sent_ = side_held_;
  }
  // A late copy of a request older than the client's latest on this side
  // is ignored (Superseded), as a primary ignores one older than its
  // committed table's: a client has one request open, so it has moved on,
  // and the table holds the newer request's answer, not this one's. (A
  // primary does not see a side's table before its MERGE: there a late copy
  // of a request the side superseded is still admitted, the cross-side
  // retry of the README's anomaly table.)
  if (auto client = tentative_->clients.find(op.client_id);
      client != tentative_->clients.end() && op.request_no < client->second.request_no &&
      options_.bug != ReplicaOptions::Bug::AnswerSuperseded)
    return Admission::Superseded;
  partition::Segment& seg = open_segments_[side];
  seg.side = side;
  wire::Reply r{op.client_id, op.request_no, wire::ReplyCode::Ok, 0};
  r.attempt = attempt;
  r.tentative = true;
  const int32_t new_id = partition::tentative_id(self_, tentative_ids_drawn_ + 1);
  if (op.op == wire::OpCode::Create && new_id < 0 && !tentative_->id_by_label.count(op.arg)) {
    r.code = wire::ReplyCode::IdsExhausted;
    answer(r, from);
    return Admission::Tentative;
  }
  const uint64_t index = seg.end();
  const partition::Effect e = partition::apply_on_side(*tentative_, op, partition::ItemName{side, index + 1, 0}, new_id);
  if (e.kind == partition::Effect::Kind::Create && e.created) {
    tentative_ids_drawn_ += 1;
    tentative_lines_.push_back("ids " + std::to_string(tentative_ids_drawn_));
  }
  if (e.client_id != 0) {  // applied (not a repeat answered from the table)
    // A destroy of a long queue: the items it took go ahead in Remove
    // effects of kRemovedPerEffect each, so that every effect fits a MERGE
    // record (a part keeps one effect at least: one too large for a
    // datagram would stop the order there).
    partition::Effect last = e;
    while (last.removed.size() > kRemovedPerEffect) {
      partition::Effect chunk;
      chunk.kind = partition::Effect::Kind::Remove;
      chunk.queue = last.queue;
      chunk.removed.assign(last.removed.begin(), last.removed.begin() + static_cast<long>(kRemovedPerEffect));
      last.removed.erase(last.removed.begin(), last.removed.begin() + static_cast<long>(kRemovedPerEffect));
      record_effect(side, chunk);
    }
    record_effect(side, last);
  }
  r.code = e.code;
  r.value = e.value;
  if (e.client_id != 0) ran_tentatively_[op.client_id] = RanTentatively{r, false, side, seg.end()};
  answer_when_copied(r, from);
  copy_side(now_us_);
  return Admission::Tentative;
}

// The next effect of `side`'s segment: kept, and a line for the tentative file.
void Replica::record_effect(uint64_t side, const partition::Effect& e) {
  partition::Segment& seg = open_segments_[side];
  seg.side = side;
  tentative_lines_.push_back("effect " + wire::to_hex(partition::encode_segment(partition::Segment{side, seg.end(), {e}})));
  seg.effects.push_back(e);
  tentative_file_has_effects_ = true;
}

// In a primary configuration: what of each side's segment the committed
// state lacks, multicast as MERGE records (again in each new configuration:
// one sent in an earlier one may have been lost with it).
void Replica::submit_merges(uint64_t now) {
  if (open_segments_.empty() || !group_.can_submit()) return;
  const uint64_t config = group_.configuration().id.ordering_number();
  if (merge_sent_config_ != config) {
    merge_sent_.clear();
    merge_sent_config_ = config;
  }
  for (const auto& [side, seg] : open_segments_) {
    uint64_t from = std::max(state_.absorbed(side), merge_sent_[side]);
    if (from >= seg.end()) continue;
    const partition::Segment rest = partition::tail(seg, from);
    for (const partition::Segment& part : partition::split_segment(rest, kMergePartBytes))
      group_.submit(partition::encode_merge_record(part), now);
    merge_sent_[side] = seg.end();
    if (options_.bug == ReplicaOptions::Bug::MergeOutsideOrder) {  // deliberately wrong: merged here and now
      partition::MergeCounts ignored;
      state_.adopt(partition::merge(state_.named_state(), {rest}, ignored));
    }
  }
}

// A side whose every effect the committed state has merged is done.
void Replica::forget_merged_sides() {
  if (!leads_tentative_side()) end_tentative_side();
  const size_t sides_before = open_segments_.size();
  // A leader of a side without a majority keeps them all: a member may be
  // bringing it more of one (on_brought appends where its copy ends).
  const bool gathering = serves_tentatively();
  for (auto it = open_segments_.begin(); it != open_segments_.end();) {
    const bool leading = tentative_ && it->first == tentative_side_;
    it = !leading && !gathering && state_.absorbed(it->first) >= it->second.end() ? open_segments_.erase(it)
                                                                                    : std::next(it);
  }
  // A client whose request a side ran, now in the committed table (merged,
  // or overtaken by a later request), needs no entry here.
  if (open_segments_.size() < sides_before)
    for (auto it = ran_tentatively_.begin(); it != ran_tentatively_.end();) {
      const wire::Reply& r = it->second.reply;
      const bool in_table = state_.cached_reply(r.client_id, r.request_no) || state_.superseded(r.client_id, r.request_no);
      it = in_table && !open_segments_.count(it->second.side) ? ran_tentatively_.erase(it) : std::next(it);
    }
  // Nothing left to merge: the file shrinks to the id counter, which must
  // never go back (merge.hpp, tentative_id).
  if (open_segments_.empty() && tentative_file_has_effects_) {
    tentative_lines_ = {"ids " + std::to_string(tentative_ids_drawn_)};
    tentative_replace_ = true;
    tentative_file_has_effects_ = false;
  }
}

// ---- copies of a side's work -------------------------------------------------------
//
// A tentative answer leaves the leader only once every other member of the
// side holds the effect it answers for, synced in its own tentative file
// (SideCopy, SideAck): a side's work outlives its leader's disk, as a
// committed answer outlives any minority's. Each member that holds a side's
// effects multicasts them in a primary configuration (submit_merges), and
// the merge takes each effect once (absorbed), whoever sent it. A member
// holds a copy only from the leader of the configuration it is installed in
// (that side), and acks what its file holds, after the lines are synced
// (carry_out writes the tentative file before it sends). Waiting for every
// member, not a majority of the side: a member that stops answering leaves
// the side soon (suspicion), and the next side is smaller.

// True (with its verdict) if the datagram is a side's copy or ack.
bool Replica::side_datagram(mcast::MemberId from, const void* data, size_t len, PeerVerdict& verdict) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  const uint8_t kind = len > 3 ? bytes[3] : 0;
  if (kind != static_cast<uint8_t>(wire::Kind::SideCopy) && kind != static_cast<uint8_t>(wire::Kind::SideAck)) return false;
  verdict = PeerVerdict::Malformed;
  std::string segment_bytes;
  partition::Segment part;
  uint64_t side = 0, held = 0;
  if (!options_.partitionable) {
    ++side_malformed_;
  } else if (wire::decode_side_copy(data, len, segment_bytes) && partition::decode_segment(segment_bytes, part)) {
    verdict = PeerVerdict::Taken;
    on_side_copy(from, part);
  } else if (wire::decode_side_ack(data, len, side, held)) {
    verdict = PeerVerdict::Taken;
    on_side_ack(from, side, held);
  } else {
    ++side_malformed_;
  }
  return true;
}

// Answered once every other member of the side holds every effect
// recorded so far (the one this answer is for among them): at once on a
// side of one.
void Replica::answer_when_copied(const wire::Reply& r, wire::ClientAddress from) {
  const bool now = options_.bug == ReplicaOptions::Bug::AnswerBeforeCopied;  // deliberately wrong
  held_answers_.push_back(HeldAnswer{now ? 0 : open_segments_[tentative_side_].end(), ReplyOut{r, from, 1}});
  release_copied_answers();
}

// A retry of a request this replica ran on a side: answered as it was
// there once its side holds it (or held until then, while this replica
// still leads that side); else not at all (the outcome stays unknown to
// the client, as it may be: the effect may be lost with this disk). Never
// run again, never refused: either would lie.
bool Replica::answer_ran_tentatively(RanTentatively& ran, uint32_t attempt, wire::ClientAddress from) {
  wire::Reply again = ran.reply;
  again.attempt = attempt;
  if (!ran.copied && leads_tentative_side() && ran.side == tentative_side_) {
    held_answers_.push_back(HeldAnswer{ran.needs, ReplyOut{again, from, 1}});
    release_copied_answers();
    return true;
  }
  if (ran.copied) answer(again, from);
  return ran.copied;
}

// Sends each other member of the side what it lacks: what it was not sent
// yet, or (every kSideCopyRetryUs) all it has not acknowledged.
void Replica::copy_side(uint64_t now) {
  if (!leads_tentative_side()) {
    side_copy_due_us_ = mcast::kNever;
    return;
  }
  const partition::Segment& seg = open_segments_[tentative_side_];
  const bool again = now >= side_copy_due_us_;
  bool unheld = false;
  for (auto& [member, sent] : side_sent_) {
    const uint64_t held = side_held_[member];
    if (held >= seg.end()) continue;
    unheld = true;
    const uint64_t from = again ? held : std::max(held, sent);
    if (from >= seg.end()) continue;
    send_side_copies(member, seg, from);
    sent = seg.end();
  }
  side_copy_due_us_ = !unheld ? mcast::kNever : again || side_copy_due_us_ == mcast::kNever ? now + kSideCopyRetryUs
                                                                                              : side_copy_due_us_;
}

// Effects `from`.. of `seg` to member `to`, as SideCopy datagrams that
// each fit one (an empty segment: one empty copy).
void Replica::send_side_copies(mcast::MemberId to, const partition::Segment& seg, uint64_t from) {
  for (const partition::Segment& part : partition::split_segment(partition::tail(seg, from), kMergePartBytes))
    side_out_.push_back(mcast::Outgoing{to, wire::encode_side_copy(partition::encode_segment(part))});
}

void Replica::on_side_copy(mcast::MemberId from, const partition::Segment& part) {
  if (!group_.installed() || group_.primary() || from == self_) return;
  const mcast::Configuration& c = group_.configuration();
  if (serves_tentatively()) return on_brought(from, part);
  if (c.members.empty() || c.members.front() != from || c.id.ordering_number() != part.side) return;  // not my side's leader
  partition::Segment& seg = open_segments_[part.side];
  seg.side = part.side;
  if (options_.bug == ReplicaOptions::Bug::AckUncopied) {  // deliberately wrong: claims what it never wrote
    side_out_.push_back(mcast::Outgoing{from, wire::encode_side_ack(part.side, part.end())});
    return;
  }
  if (part.first <= seg.end())
    for (uint64_t i = seg.end(); i < part.end(); ++i) {
      const partition::Effect& e = part.effects[static_cast<size_t>(i - part.first)];
      record_effect(part.side, e);
      keep_side_answer(e, part.side, true);  // a retry here gets the side's answer: this member and the leader hold it
    }
  side_out_.push_back(mcast::Outgoing{from, wire::encode_side_ack(part.side, seg.end())});
}

void Replica::on_side_ack(mcast::MemberId from, uint64_t side, uint64_t held) {
  if (!serves_tentatively()) return on_bring_ack(from, side, held);
  if (!leads_tentative_side() || side != tentative_side_) return;
  auto it = side_held_.find(from);
  if (it == side_held_.end()) return;
  it->second = std::max(it->second, std::min(held, open_segments_[side].end()));
  release_copied_answers();
}

void Replica::release_copied_answers() {
  uint64_t everyone = mcast::kNever;
  for (const auto& [member, held] : side_held_) everyone = std::min(everyone, held);
  auto copied = std::stable_partition(held_answers_.begin(), held_answers_.end(),
                                      [everyone](const HeldAnswer& h) { return h.needs <= everyone; });
  for (auto it = held_answers_.begin(); it != copied; ++it) {
    answer(it->reply.reply, it->reply.to);
    auto ran = ran_tentatively_.find(it->reply.reply.client_id);
    if (ran != ran_tentatively_.end() && ran->second.reply.request_no == it->reply.reply.request_no) ran->second.copied = true;
  }
  held_answers_.erase(held_answers_.begin(), copied);
}

// ---- sides that meet without a majority ---------------------------------------------
//
// Members of two sides may meet in a configuration that still has no
// majority. Its leader serves only once every other member has brought it
// the work of every side it holds (SideCopy to the leader, acknowledged by
// SideAck, as copies go the other way; then an empty copy of the new side
// says "that is all"): each member holds a copy of its old side's work,
// synced, so what the new side serves on is what its members did. Until
// then a request gets no answer (Admission::Gathering): a round trip.
// The leader builds its tentative state from the committed state and every
// side it now holds, and the new side's segment begins with carried copies
// of those sides' effects (carry_earlier_sides), copied to every member
// before the first answer. Why carry them: the new side's pops name items
// the earlier sides pushed, and a member of the new side that never was
// on those sides could multicast its part of the new side first in a
// primary; merged before those pushes, a pop would take nothing and the
// push, merged later, would bring the item back. With the copies, every
// part of the new side carries what it builds on, and merge() takes each
// effect once, whichever copy comes first (merge.cpp). The leader's
// committed state may be older than a member's: then its tentative state
// lacks committed work, and what its side answers on that is contradicted
// by the merge and counted, as any side's stale answer is.

bool Replica::side_gathered() {
  if (options_.bug == ReplicaOptions::Bug::NoGather) return true;  // deliberately wrong
  const mcast::Configuration& c = group_.configuration();
  if (gathering_side_ != c.id.ordering_number()) {
    gathering_side_ = c.id.ordering_number();
    brought_.clear();
  }
  return std::all_of(c.members.begin(), c.members.end(),
                     [this](mcast::MemberId m) { return m == self_ || brought_.count(m); });
}

// A member (not the leader) of a side without a majority: sends the leader
// what it has not acknowledged of each side this member holds, then the
// end marker; again every kSideCopyRetryUs until the leader has them all.
void Replica::bring_to_leader(uint64_t now) {
  const bool member = options_.partitionable && !stopping_ && group_.installed() && !group_.primary() &&
                      !group_.configuration().members.empty() && !serves_tentatively();
  if (!member) {
    bringing_side_ = 0;
    bring_due_us_ = mcast::kNever;
    return;
  }
  const uint64_t side = group_.configuration().id.ordering_number();
  const mcast::MemberId leader = group_.configuration().members.front();
  if (bringing_side_ != side) {
    bringing_side_ = side;
    bring_acked_.clear();
    bring_done_ = false;
    bring_due_us_ = now;
  }
  if (bring_done_ || now < bring_due_us_) return;
  bool all_held = true;
  for (const auto& [earlier, seg] : open_segments_) {
    const uint64_t from = bring_acked_[earlier];
    if (earlier == side || from >= seg.end()) continue;
    all_held = false;
    send_side_copies(leader, seg, from);
  }
  if (all_held) send_side_copies(leader, partition::Segment{side, 0, {}}, 0);  // the end marker
  bring_due_us_ = now + kSideCopyRetryUs;
}

// At the leader: a member's copy of an earlier side's work, kept (synced
// before the ack goes: carry_out writes the file first), or its end marker.
void Replica::on_brought(mcast::MemberId from, const partition::Segment& part) {
  const mcast::Configuration& c = group_.configuration();
  if (std::find(c.members.begin(), c.members.end(), from) == c.members.end()) return;
  const uint64_t side = c.id.ordering_number();
  // A member that installed a newer side first brings to it: neither kept
  // nor acknowledged here, or its end marker, taken for an earlier side's
  // copy, would be acknowledged and never come again (found by review).
  if (part.side > side) return;
  if (part.side == side) {
    side_gathered();  // starts this side's gathering if it had not
    brought_.insert(from);
    side_out_.push_back(mcast::Outgoing{from, wire::encode_side_ack(side, 0)});
    return;
  }
  partition::Segment& seg = open_segments_[part.side];
  seg.side = part.side;
  if (part.first <= seg.end())
    for (uint64_t i = seg.end(); i < part.end(); ++i) record_effect(part.side, part.effects[static_cast<size_t>(i - part.first)]);
  side_out_.push_back(mcast::Outgoing{from, wire::encode_side_ack(part.side, seg.end())});
}

// At a member: what the leader holds of a side it brings (or, for the new
// side itself, that it has the end marker).
void Replica::on_bring_ack(mcast::MemberId from, uint64_t side, uint64_t held) {
  if (bringing_side_ == 0 || from != group_.configuration().members.front()) return;
  if (side == bringing_side_) {
    bring_done_ = true;
    bring_due_us_ = mcast::kNever;
    return;
  }
  uint64_t& acked = bring_acked_[side];
  acked = std::max(acked, held);
  const bool all_held = std::all_of(open_segments_.begin(), open_segments_.end(), [this](const auto& entry) {
    return entry.first == bringing_side_ || bring_acked_[entry.first] >= entry.second.end();
  });
  if (all_held) bring_due_us_ = now_us_;  // the end marker goes at once
}

// The new side's segment begins with copies of every earlier side's effects
// that the committed state has not absorbed, each naming where it was run.
void Replica::carry_earlier_sides(uint64_t side) {
  if (options_.bug == ReplicaOptions::Bug::NoCarry) return;  // deliberately wrong
  std::vector<partition::Effect> carried;
  for (const auto& [earlier, seg] : open_segments_) {
    if (earlier == side) continue;
    for (uint64_t i = state_.absorbed(earlier); i < seg.end(); ++i) {
      partition::Effect copy = seg.effects[static_cast<size_t>(i)];
      if (copy.carried_side == 0) {
        copy.carried_side = earlier;
        copy.carried_index = i;
      }
      carried.push_back(copy);
    }
  }
  for (const partition::Effect& e : carried) {
    record_effect(side, e);
    // A retry of a request this leader ran on an earlier side and never saw
    // copied there is answered once this side's members hold the copy.
    auto ran = ran_tentatively_.find(e.client_id);
    if (e.client_id != 0 && ran != ran_tentatively_.end() && !ran->second.copied &&
        ran->second.reply.request_no == e.request_no && ran->second.side == e.carried_side) {
      ran->second.side = side;
      ran->second.needs = open_segments_[side].end();
    }
  }
}

void Replica::restore_tentative(const std::vector<std::string>& lines) {
  for (const std::string& line : lines) {
    const size_t space = line.find(' ');
    const std::string word = line.substr(0, space), rest = space == std::string::npos ? "" : line.substr(space + 1);
    if (word == "ids") {
      tentative_ids_drawn_ = std::max<uint64_t>(tentative_ids_drawn_, std::strtoull(rest.c_str(), nullptr, 10));
      continue;
    }
    std::string bytes;
    partition::Segment part;
    if (word != "effect" || !wire::from_hex(rest, bytes) || !partition::decode_segment(bytes, part)) continue;
    tentative_file_has_effects_ = true;
    partition::Segment& seg = open_segments_[part.side];
    seg.side = part.side;
    if (part.first != seg.end()) continue;  // a line written twice, or out of place
    seg.effects.insert(seg.effects.end(), part.effects.begin(), part.effects.end());
    for (const partition::Effect& e : part.effects) keep_side_answer(e, part.side, false);
  }
  forget_merged_sides();
}

// The answer a side gave `e`'s request, for a retry. One request run on two
// sides (a retry that crossed) is held twice, the lower side's first: its
// answer is kept, as the merge keeps it, so that this member never answers
// one request two ways.
void Replica::keep_side_answer(const partition::Effect& e, uint64_t side, bool copied) {
  if (e.client_id == 0) return;  // not an application of a request
  wire::Reply r{e.client_id, e.request_no, e.code, e.value};
  r.tentative = true;
  RanTentatively& kept = ran_tentatively_[e.client_id];
  if (kept.reply.request_no < e.request_no) kept = RanTentatively{r, copied, side, 0};
}

uint64_t Replica::ran_on_side(uint64_t client_id, uint64_t request_no) const {
  auto it = ran_tentatively_.find(client_id);
  return it != ran_tentatively_.end() && it->second.reply.request_no == request_no ? it->second.side : 0;
}

std::map<uint64_t, uint64_t> Replica::side_work_held() const {
  std::map<uint64_t, uint64_t> held;
  for (const auto& [side, seg] : open_segments_) held[side] = seg.end();
  return held;
}

size_t Replica::open_tentative_effects() const {
  size_t count = 0;
  for (const auto& [side, seg] : open_segments_) count += static_cast<size_t>(seg.end() - state_.absorbed(side));
  return count;
}
