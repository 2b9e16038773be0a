// multicast.cpp: the rotating-sequencer protocol described in multicast.hpp.
#include "multicast.hpp"

#include <algorithm>

namespace mcast {

namespace {
// No honest member is ever this far ahead of another: anything further out
// is a corrupt or forged datagram and is rejected before it touches state.
constexpr uint64_t kMaxAhead = uint64_t{1} << 20;
// Cap on one NACK_ASSIGN answer, so one request cannot make us send a flood.
constexpr uint64_t kMaxAnswerRange = 256;
constexpr uint64_t kMaxPayloadAnswer = 32;
}  // namespace

Multicast::Multicast(MemberId self, std::vector<MemberId> view, uint64_t incarnation,
                     MulticastConfig config, SequencePosition restored)
    : self_(self), view_(std::move(view)), incarnation_(incarnation), config_(config),
      group_size_(view_.size()) {
  MemberId top = *std::max_element(view_.begin(), view_.end());
  peers_.resize(top + 1);
  sequenced_.resize(top + 1);
  for (size_t i = 0; i < restored.last_delivered.size() && i < sequenced_.size(); ++i)
    sequenced_[i] = restored.last_delivered[i];
  delivered_upto_ = assigned_contiguous_ = restored.delivered_upto;
  // stable_upto_ stays 0 until every member has told us how far it got.
  peers_[self_] = PeerState{incarnation_, 0, delivered_upto_, true};
  last_sent_us_.assign(peers_.size(), 0);
  last_heard_us_.assign(peers_.size(), 0);
  active_ = view_;
  rotations_[0] = view_;
  lag_.assign(peers_.size(), ClaimLag{});
  answered_.assign(peers_.size(), RecentAnswers{});
}

Multicast::Multicast(MemberId self, std::vector<MemberId> view, uint64_t incarnation,
                     MulticastConfig config, const OrderingStart& start)
    : self_(self),
      view_(std::move(view)),
      incarnation_(incarnation),
      config_(config),
      safe_(true),
      group_size_(start.group_size),
      cut_(start.cut),
      source_(start.source) {
  // Names from earlier configurations may have any member of the group as origin.
  peers_.resize(group_size_);
  sequenced_.resize(group_size_);
  delivered_upto_ = freed_upto_ = start.delivered_upto;
  for (size_t i = 0; i < start.positions.size() && i < sequenced_.size(); ++i) sequenced_[i] = start.positions[i];
  uint64_t held = delivered_upto_;
  if (!start.held.empty()) freed_upto_ = std::min(freed_upto_, start.held.front().global_seq - 1);
  for (const Delivery& d : start.held) {
    if (d.global_seq == 0 || d.global_seq > cut_ || d.global_seq > held + 1) break;
    assignments_[d.global_seq] = d.name;
    seq_of_[d.name] = d.global_seq;
    retransmit_buffer_[d.name] = d.payload;
    if (!is_rotation_change(d.name))  // an earlier configuration's: not in force here
      sequenced_[d.name.origin] = OriginPosition{d.name.incarnation, d.name.origin_seq};
    held = std::max(held, d.global_seq);
  }
  // Everything up to `held` is in this member's log already.
  assigned_contiguous_ = held_upto_ = written_held_upto_ = logged_held_upto_ = held;
  if (config_.deferred_durability) durable_delivered_ = delivered_upto_;
  peers_[self_] = PeerState{incarnation_, 0, delivered_upto_, true};
  peers_[self_].held_upto = held;
  last_sent_us_.assign(peers_.size(), 0);
  last_heard_us_.assign(peers_.size(), 0);
  active_ = view_;  // a new configuration starts with every member in the rotation
  rotations_[0] = view_;
  lag_.assign(peers_.size(), ClaimLag{});
  answered_.assign(peers_.size(), RecentAnswers{});
}

void Multicast::restore_logged(const Delivery& d) {
  if (d.global_seq <= stable_upto_ || d.global_seq == 0) return;
  if (d.global_seq > delivered_upto_ && sequencer_for(d.global_seq) != self_) return;  // not ours to hold
  if (assignments_.count(d.global_seq)) return;
  retransmit_buffer_[d.name] = d.payload;
  if (d.global_seq <= delivered_upto_) {
    assignments_[d.global_seq] = d.name;
    seq_of_[d.name] = d.global_seq;
  } else {
    record_assignment(d.global_seq, d.name);  // ours, from the earlier life
  }
}

// ---- submitting ----------------------------------------------------------

uint64_t Multicast::unsequenced_own() const {
  const OriginPosition& mine = sequenced_[self_];
  uint64_t sequenced_this_life = mine.incarnation == incarnation_ ? mine.origin_seq : 0;
  return last_origin_seq_ - sequenced_this_life;
}

bool Multicast::can_submit() const {
  if (closed_) return false;
  return unsequenced_own() < config_.max_unsequenced_own &&
         retransmit_buffer_.size() < config_.max_buffered;
}

MessageName Multicast::submit(std::string payload, uint64_t now_us) {
  // Invariant: nothing is submitted after close(); peers rely on it to leave.
  now_us_ = now_us;
  MessageName name{self_, incarnation_, ++last_origin_seq_};
  peers_[self_].own_highwater = last_origin_seq_;
  wire::DataRecord record{name, std::move(payload)};
  send_to_others(&record, nullptr);
  retransmit_buffer_[name] = std::move(record.payload);
  try_sequence();
  try_deliver();
  recovery_due_ = true;
  return name;
}

void Multicast::send_to_others(const wire::DataRecord* d, const wire::AssignRecord* a) {
  for (MemberId m : view_) {
    if (m == self_) continue;
    if (d) outbox(m).data.push_back(*d);
    if (a) outbox(m).assigns.push_back(*a);
  }
}

// ---- receiving -----------------------------------------------------------

bool Multicast::plausible_name(const MessageName& n) const {
  if (n.origin >= peers_.size()) return false;
  if (!safe_ && std::find(view_.begin(), view_.end(), n.origin) == view_.end()) return false;
  if (n.origin == self_ && n.incarnation > incarnation_) return false;  // a life we never had
  return n.incarnation > 0 && n.origin_seq > 0 && n.origin_seq < kMaxAhead * 1024;
}

bool Multicast::plausible(const wire::PeerPacket& p) const {
  const wire::PeerHeader& h = p.header;
  uint64_t horizon = std::max(delivered_upto_, cut_) + kMaxAhead;
  if (h.group_size != group_size_ || h.incarnation == 0) return false;
  if (h.assigned_upto > horizon || h.delivered_upto > h.assigned_contiguous ||
      h.assigned_contiguous > h.assigned_upto || h.held_upto > h.assigned_contiguous)
    return false;
  for (const auto& d : p.data)
    if (!plausible_name(d.name)) return false;
  for (const auto& a : p.assigns) {
    bool name_ok = is_rotation_change(a.name)
                       ? safe_ && a.name.origin < peers_.size() && a.name.origin_seq == a.global_seq
                       : plausible_name(a.name);
    if (!name_ok || a.global_seq == 0 || a.global_seq > horizon) return false;
  }
  if ((group_size_ < 64 && h.finds_lagging >> group_size_ != 0) || (!safe_ && h.finds_lagging != 0)) return false;
  for (const auto& n : p.nack_data)
    if (!plausible_name(n)) return false;
  for (const auto& r : p.nack_assign)
    if (r.from == 0 || r.to > horizon) return false;
  return true;
}

void Multicast::receive(MemberId from, const void* data, size_t len, uint64_t now_us) {
  wire::PeerPacket p;
  if (!wire::decode_peer(data, len, p)) {
    ++stats_.packets_in;
    ++stats_.malformed;
    return;
  }
  receive(from, p, now_us);
}

void Multicast::receive(MemberId from, const wire::PeerPacket& p, uint64_t now_us) {
  ++stats_.packets_in;
  if (p.header.sender != from || from == self_ ||
      from >= peers_.size() || std::find(view_.begin(), view_.end(), from) == view_.end() ||
      !plausible(p)) {
    ++stats_.malformed;
    return;
  }
  PeerState& peer = peers_[from];
  if (p.header.incarnation < peer.incarnation) {
    ++stats_.stale;  // a datagram from the sender's earlier life
    return;
  }
  now_us_ = now_us;  // only now: a rejected datagram changes nothing but counters
  if (p.header.incarnation > peer.incarnation) {
    new_life(from, p.header.incarnation);
    // Nothing we sent it so far could echo this life of it, so it does not
    // hear us yet (the echo rule below) and, as a sequencer, would not
    // assign: a header now, rather than at our next heartbeat up to 5 ms
    // on (seen at the start of a configuration whose joiner installed
    // after the others' first datagrams). Once per peer life.
    outbox(from).has_status = true;
  }
  // The echo rule: only a datagram sent after the peer knew of this life of
  // ours shows what it holds now. One sent to our earlier life may be late,
  // and may say less than the peer holds (an assignment we made and lost).
  if (p.header.receiver_incarnation == incarnation_ || config_.bug == InjectedBug::HeardWithoutEcho)
    peer.heard = true;
  if (p.header.receiver_incarnation == incarnation_) last_heard_us_[from] = now_us;
  peer.closed = p.header.closed;
  peer.own_highwater = std::max(peer.own_highwater, p.header.own_highwater);
  // delivered_upto only grows: a restarted member resumes from its files,
  // which hold at least what it said before (persist before send).
  peer.delivered_upto = std::max(peer.delivered_upto, p.header.delivered_upto);
  peer.assigned_contiguous = std::max(peer.assigned_contiguous, p.header.assigned_contiguous);
  peer.assigned_upto = std::max(peer.assigned_upto, p.header.assigned_upto);
  if (safe_) peer.held_upto = std::max(peer.held_upto, p.header.held_upto);
  peer.finds_lagging = p.header.finds_lagging;  // what it finds now, not the most it ever found

  // Assignments first: a payload that comes with its assignment (a NACK
  // answer below the cut) is then known to be sequenced, and kept.
  for (const auto& a : p.assigns) on_assign(a.global_seq, a.name);
  for (const auto& d : p.data) on_data(d);
  answer_nacks(from, p);
  if (p.has_status && p.want_reply) outbox(from).has_status = true;

  try_sequence();
  try_deliver();
  // Gaps are looked for at the next tick, once the caller has fed us every
  // datagram it has: a packet split over two datagrams is not a gap.
  recovery_due_ = true;
}

// A peer restarted: what it said in its earlier life no longer binds it,
// except how far it delivered (its log keeps that).
void Multicast::new_life(MemberId m, uint64_t incarnation) {
  PeerState& peer = peers_[m];
  peer.incarnation = incarnation;
  peer.own_highwater = 0;
  peer.heard = false;
  peer.closed = false;
  peer.assigned_upto = 0;
  drop_superseded(m);
}

// A name tells us its origin has reached at least that far in that life.
void Multicast::learn_name(const MessageName& n) {
  if (n.origin == self_) return;  // we know our own state best
  PeerState& origin = peers_[n.origin];
  if (n.incarnation > origin.incarnation) {
    new_life(n.origin, n.incarnation);
    origin.own_highwater = n.origin_seq;
  } else if (n.incarnation == origin.incarnation) {
    origin.own_highwater = std::max(origin.own_highwater, n.origin_seq);
  }
}

void Multicast::on_data(const wire::DataRecord& d) {
  if (retransmit_buffer_.count(d.name)) return;  // duplicate
  auto assigned = seq_of_.find(d.name);
  if (assigned != seq_of_.end()) {
    // Sequenced: keep it only if we still have to deliver it.
    if (assigned->second > delivered_upto_) retransmit_buffer_[d.name] = d.payload;
    return;
  }
  const OriginPosition& pos = sequenced_[d.name.origin];
  bool already_sequenced =
      d.name.incarnation < pos.incarnation ||
      (d.name.incarnation == pos.incarnation && d.name.origin_seq <= pos.origin_seq);
  if (already_sequenced) return;  // delivered everywhere and freed, or superseded
  learn_name(d.name);
  if (d.name.incarnation < peers_[d.name.origin].incarnation) return;  // dead life
  retransmit_buffer_[d.name] = d.payload;
}

void Multicast::on_assign(uint64_t global_seq, const MessageName& name) {
  if (global_seq <= assigned_contiguous_ && !assignments_.count(global_seq)) return;  // freed
  auto known = assignments_.find(global_seq);
  if (known != assignments_.end()) {
    if (known->second != name) ++stats_.conflicting_assignments;
    return;
  }
  if (!is_rotation_change(name)) learn_name(name);
  record_assignment(global_seq, name);
}

// Stores assignment k and extends the known prefix 1..assigned_contiguous_,
// which is what the sequencing position of each origin is computed over.
// A rotation change comes into force only here, once every slot up to it is
// known: every member then changes the rotation at the same slot.
void Multicast::record_assignment(uint64_t global_seq, const MessageName& name) {
  assignments_[global_seq] = name;
  seq_of_[name] = global_seq;
  if (is_rotation_change(name)) {
    retransmit_buffer_.emplace(name, std::string());  // it has no payload to wait for
    if (global_seq > std::max(assigned_contiguous_ + 1, cut_)) pending_rotation_changes_[global_seq] = name.origin;
  }
  for (auto it = assignments_.find(assigned_contiguous_ + 1); it != assignments_.end();
       it = assignments_.find(assigned_contiguous_ + 1)) {
    ++assigned_contiguous_;
    if (is_rotation_change(it->second)) {
      pending_rotation_changes_.erase(assigned_contiguous_);
      if (assigned_contiguous_ > cut_) apply_rotation_change(assigned_contiguous_, it->second.origin);
      continue;
    }
    OriginPosition& pos = sequenced_[it->second.origin];
    bool new_life = it->second.incarnation > pos.incarnation;
    pos = OriginPosition{it->second.incarnation, it->second.origin_seq};
    if (new_life) drop_superseded(it->second.origin);
  }
}

// A lagging peer (see "A slow member") asks again every NACK interval, long
// before an answer can reach it: each item it lacks would be sent it a
// dozen times over a 20 ms link. So an item re-sent to it is not re-sent
// again within its claim lag (about its round trip); if that copy is lost
// too, its next ask after the window is answered. Any other peer is
// answered every time.
uint64_t Multicast::repeat_window(MemberId to) {
  const bool lagging = config_.resign_lag_us > 0 && lag_[to].lagging;
  RecentAnswers& recent = answered_[to];
  if (!lagging) {
    recent = RecentAnswers{};
    return 0;
  }
  const uint64_t window = lag_[to].average_us;
  for (auto it = recent.assigns.begin(); it != recent.assigns.end();)
    it = now_us_ >= it->second + window ? recent.assigns.erase(it) : std::next(it);
  for (auto it = recent.data.begin(); it != recent.data.end();)
    it = now_us_ >= it->second + window ? recent.data.erase(it) : std::next(it);
  return window;
}

void Multicast::answer_nacks(MemberId from, const wire::PeerPacket& p) {
  if (p.nack_data.empty() && p.nack_assign.empty()) return;
  wire::PeerPacket& reply = outbox(from);
  const bool limit = repeat_window(from) > 0;
  RecentAnswers& recent = answered_[from];
  for (const MessageName& n : p.nack_data) {
    auto it = retransmit_buffer_.find(n);
    if (it == retransmit_buffer_.end()) continue;
    if (limit && !recent.data.emplace(n, now_us_).second) continue;  // sent it within the window
    reply.data.push_back(wire::DataRecord{n, it->second});
    ++stats_.retransmitted;
  }
  for (const wire::SeqRange& r : p.nack_assign) {
    uint64_t to = std::min(r.to, r.from + kMaxAnswerRange - 1);
    // Below the cut the asker is fetching an earlier configuration's order:
    // payloads go with the assignments (and fewer at a time).
    if (r.from <= cut_) to = std::min({to, cut_, r.from + kMaxPayloadAnswer - 1});
    for (auto it = assignments_.lower_bound(r.from); it != assignments_.end() && it->first <= to;
         ++it) {
      if (limit && !recent.assigns.emplace(it->first, now_us_).second) continue;
      reply.assigns.push_back(wire::AssignRecord{it->first, it->second});
      ++stats_.retransmitted;
      auto payload = retransmit_buffer_.find(it->second);
      if (it->first <= cut_ && payload != retransmit_buffer_.end() && !is_rotation_change(it->second))
        reply.data.push_back(wire::DataRecord{it->second, payload->second});
    }
  }
}

// An origin that restarted will never send the rest of its earlier life, and
// no sequencer that knows of the new life picks the old one: its unsequenced
// messages can go (their clients never got a reply, and will retry).
void Multicast::drop_superseded(MemberId origin) {
  uint64_t live = peers_[origin].incarnation;
  auto it = retransmit_buffer_.lower_bound(MessageName{origin, 0, 0});
  while (it != retransmit_buffer_.end() && it->first.origin == origin &&
         it->first.incarnation < live) {
    if (seq_of_.count(it->first)) {
      ++it;
    } else {
      it = retransmit_buffer_.erase(it);
    }
  }
}

// ---- sequencing and delivery ---------------------------------------------

namespace {
// The rotation after a change naming `subject`: without it if it was in,
// with it (in view order) if it was out.
std::vector<MemberId> toggled(const std::vector<MemberId>& view, const std::vector<MemberId>& rotation,
                              MemberId subject) {
  bool was_in = std::find(rotation.begin(), rotation.end(), subject) != rotation.end();
  std::vector<MemberId> out;
  for (MemberId m : view) {
    bool in = m == subject ? !was_in : std::find(rotation.begin(), rotation.end(), m) != rotation.end();
    if (in) out.push_back(m);
  }
  return out;
}
}  // namespace

MemberId Multicast::sequencer_for(uint64_t global_seq) const {
  auto change = pending_rotation_changes_.begin();
  if (change == pending_rotation_changes_.end() || change->first >= global_seq) {
    auto in_force = rotations_.upper_bound(global_seq);  // the rotation k was (or will be) assigned in
    if (in_force != rotations_.begin()) --in_force;
    return in_force->second[global_seq % in_force->second.size()];
  }
  std::vector<MemberId> guess = active_;  // beyond the known prefix: see the header
  for (; change != pending_rotation_changes_.end() && change->first < global_seq; ++change) {
    std::vector<MemberId> next = toggled(view_, guess, change->second);
    if (!next.empty()) guess = std::move(next);
  }
  return guess[global_seq % guess.size()];
}

// The change assigned to slot k: the rotation from k+1 on. Never empties
// the rotation (no honest member asks that: should_resign leaves a
// majority in it), whatever a datagram says. The last few rotations are
// kept, so that who assigned a recent slot stays known (awaits_claim).
void Multicast::apply_rotation_change(uint64_t global_seq, MemberId subject) {
  if (std::find(view_.begin(), view_.end(), subject) == view_.end()) return;
  std::vector<MemberId> next = toggled(view_, active_, subject);
  if (next.empty()) return;
  active_ = next;
  rotations_[global_seq + 1] = std::move(next);
  if (rotations_.size() > 16) rotations_.erase(rotations_.begin());
  ++stats_.rotation_changes;
}

// ---- slow members (see "A slow member" in multicast.hpp) -------------------

// Claim lag: from the moment this member holds slot k to the moment a peer's
// header says it holds k too. A peer as close as this one claims within a
// header's time (well under a millisecond under load, at most a heartbeat
// interval idle); one behind a 20 ms link, about 40 ms later. Measured on
// one slot per peer at a time, as a moving average; the member that is
// slow itself sees the others' claims arrive with their assignments, so it
// does not find the fast ones lagging.
//
// Only slots of this configuration are timed (above the cut, from a peer
// heard in it): the order below the cut is fetched at a configuration's
// start, and a member catching up is not slow. A sample counts at most
// four resign lags (a peer paused, then back, would otherwise be found
// lagging, and answered sparingly, for many samples), and no one sample
// makes a peer lagging: the average starts at 0.
void Multicast::measure_claim_lag() {
  if (config_.resign_lag_us == 0) return;
  const uint64_t max_sample = 4 * config_.resign_lag_us;
  for (MemberId m : view_) {
    if (m == self_) continue;
    ClaimLag& l = lag_[m];
    if (l.probe_slot != 0 && peers_[m].held_upto >= l.probe_slot) {
      uint64_t sample = std::min(now_us_ - l.probe_since, max_sample);
      l.average_us = (3 * l.average_us + sample) / 4;
      if (l.average_us >= config_.resign_lag_us) l.lagging = true;
      if (l.average_us < config_.resign_lag_us / 2) l.lagging = false;
      l.probe_slot = 0;
    }
    if (l.probe_slot == 0 && held_upto_ > std::max(peers_[m].held_upto, cut_) && peers_[m].heard && now_us_ > 0)
      l = ClaimLag{held_upto_, now_us_, l.average_us, l.lagging};
  }
}

uint64_t Multicast::lagging_bits() const {
  uint64_t bits = 0;
  for (MemberId m : view_)
    if (m < 64 && lag_[m].lagging) bits |= uint64_t{1} << m;
  return bits;
}

// How many members of this configuration (m itself never) find m lagging.
size_t Multicast::found_lagging_by(MemberId m) const {
  if (m >= 64) return 0;
  size_t count = 0;
  for (MemberId j : view_) {
    if (j == m) continue;
    bool finds = j == self_ ? lag_[m].lagging : (peers_[j].finds_lagging >> m & 1) != 0;
    if (finds) ++count;
  }
  return count;
}

// A majority of the group finds this member lagging, and the rotation keeps
// a majority without it. Leaving it does not help otherwise: safe delivery
// needs a majority's claims, so with fewer fast members everyone waits for
// this one's claims anyway.
bool Multicast::should_resign() const { return found_lagging() && active_.size() > majority(); }

// A member out of the rotation that fewer than a majority find lagging now.
MemberId Multicast::to_reinstate() const {
  for (MemberId m : view_)
    if (std::find(active_.begin(), active_.end(), m) == active_.end() && found_lagging_by(m) < majority()) return m;
  return kNobody;
}

// Our slot k goes to a rotation change, if one is due: we resign, or put a
// member back. Only the owner of k may do either (see the header).
bool Multicast::assign_rotation_change(uint64_t global_seq) {
  if (!safe_ || config_.resign_lag_us == 0) return false;
  MemberId subject = should_resign() ? self_ : to_reinstate();
  if (subject == kNobody) return false;
  MessageName change = rotation_change(subject, global_seq);
  record_assignment(global_seq, change);
  ++stats_.assignments_made;
  wire::AssignRecord record{global_seq, change};
  send_to_others(nullptr, &record);
  return true;
}

// The message of `origin` that must be sequenced next: the one after the last
// sequenced, or the first of a newer life once we know the origin restarted.
MessageName Multicast::next_to_sequence(MemberId origin) const {
  const OriginPosition& pos = sequenced_[origin];
  uint64_t live = peers_[origin].incarnation;
  if (live > pos.incarnation) return MessageName{origin, live, 1};
  return MessageName{origin, pos.incarnation, pos.origin_seq + 1};
}

// Origins are tried starting just after the sequencer's own turn, so that
// every origin is first in line for one of every n sequencers: no origin
// waits more than n assignments while it has something ready.
bool Multicast::pick_eligible(uint64_t global_seq, MessageName& out) const {
  for (size_t i = 0; i < view_.size(); ++i) {
    MemberId origin = view_[(global_seq + 1 + i) % view_.size()];
    MessageName candidate = next_to_sequence(origin);
    if (retransmit_buffer_.count(candidate)) {
      out = candidate;
      return true;
    }
  }
  return false;
}

bool Multicast::all_heard() const {
  for (MemberId m : view_)
    if (!peers_[m].heard) return false;
  return true;
}

uint64_t Multicast::assigned_heard() const {
  uint64_t top = std::max(highest_held_assignment(), cut_);
  for (MemberId m : view_) top = std::max(top, peers_[m].assigned_upto);
  return top;
}

// Invariant: this member assigns k only if sequencer_for(k) == self_, it
// knows every assignment below k (k == assigned_contiguous_ + 1), and no
// earlier life of it assigned k. Why no earlier life did: every assignment
// it made was logged before the ASSIGN left (persist before send, see the
// header) and restore_logged put it back, so assigned_contiguous_ is past
// it. As a second line, should a log lose its tail (a power cut without
// --fsync), a restarted member first hears from every member in datagrams
// that echo its new incarnation; any member holding k then says so
// (assigned_upto), and it waits for the NACKs to bring k back.
void Multicast::try_sequence() {
  if (!all_heard()) return;
  for (;;) {
    uint64_t k = assigned_contiguous_ + 1;
    if (config_.bug == InjectedBug::SequenceWithoutPrefix) {
      // Deliberately wrong: take our next slot even if earlier ones are unknown.
      k = std::max(assigned_heard(), assigned_contiguous_) + 1;
      while (sequencer_for(k) != self_) ++k;
      if (assignments_.count(k)) return;
    } else if (sequencer_for(k) != self_ || k <= assigned_heard()) {
      // Not our turn; or someone says k is already assigned (a slot of ours
      // from an earlier life): wait until the NACKs bring it back.
      if (config_.bug == InjectedBug::RevokeLaggingSlot && revoke_lagging_slot(k)) continue;
      return;
    }
    MessageName name;
    if (!pick_eligible(k, name)) return;
    // Only with work waiting: an idle member's turn never comes to an end.
    if (assign_rotation_change(k)) continue;
    record_assignment(k, name);
    if (config_.bug == InjectedBug::SequenceWithoutPrefix) {
      OriginPosition& pos = sequenced_[name.origin];
      pos = OriginPosition{name.incarnation, name.origin_seq};
    }
    ++stats_.assignments_made;
    if (!safe_) new_assignments_.push_back(Delivery{k, name, retransmit_buffer_.at(name)});
    wire::AssignRecord record{k, name};
    send_to_others(nullptr, &record);
    if (config_.bug == InjectedBug::SequenceWithoutPrefix) return;
  }
}

// Deliberately wrong (InjectedBug::RevokeLaggingSlot): takes a lagging
// member out of the rotation in its own slot k, without it. The owner may
// be assigning k at this moment: two assignments of k, and the members that
// hold one deliver something else at k than those that hold the other.
bool Multicast::revoke_lagging_slot(uint64_t k) {
  const MemberId owner = sequencer_for(k);
  if (!safe_ || owner == self_ || k <= assigned_heard() || !all_heard()) return false;
  if (found_lagging_by(owner) < majority() || active_.size() <= majority()) return false;
  MessageName change = rotation_change(owner, k);
  record_assignment(k, change);
  wire::AssignRecord record{k, change};
  send_to_others(nullptr, &record);
  return true;
}

// Safe mode: extends 1..held_upto_ over every assignment whose payload we
// have; the caller logs them (take_held) before we say we hold them.
void Multicast::advance_held() {
  for (;;) {
    auto it = assignments_.find(held_upto_ + 1);
    if (it == assignments_.end()) return;
    auto payload = retransmit_buffer_.find(it->second);
    if (payload == retransmit_buffer_.end()) return;
    ++held_upto_;
    new_held_.push_back(Delivery{held_upto_, it->second, payload->second});
  }
}

// Safe delivery: k is delivered only once a majority of the whole group (n,
// not this configuration) said in this configuration that it holds 1..k.
// Any later primary configuration is a majority too, so it meets one of
// them, and the view change keeps k (see membership.hpp).
bool Multicast::held_by_majority(uint64_t global_seq) const {
  size_t holders = 0;
  for (MemberId m : view_) {
    uint64_t held = m == self_ ? claimable_held() : peers_[m].held_upto;
    if (held >= global_seq) ++holders;
  }
  if (config_.bug == InjectedBug::DeliverWithoutMajority) return holders >= 1;
  return holders >= majority();
}

// What this member may say it holds, and count itself for. Below the cut it
// holds an earlier configuration's order, fetched from the source; until it
// holds all of it, up to the cut, and its caller has logged so
// (mark_order_complete), a later view change hears it report its older
// claim (Membership::claimed_held_upto). A holding it may not report there
// must not help deliver anything here: the majority that delivered k could
// vanish from every later STATE, and a later cut lose k. So until then it
// claims only what it delivered.
uint64_t Multicast::claimable_held() const {
  if (config_.bug == InjectedBug::ClaimBelowCut) return logged_held_upto_;  // deliberately wrong
  return order_complete_ ? logged_held_upto_ : delivered_upto_;
}

void Multicast::mark_order_complete() {
  if (!safe_ || order_complete_) return;
  order_complete_ = true;
  try_deliver();
}

MemberId Multicast::holder_of(uint64_t global_seq) const {
  return global_seq <= cut_ ? source_ : sequencer_for(global_seq);
}

void Multicast::try_deliver() {
  if (safe_) {
    advance_held();
    measure_claim_lag();
    while (order_complete_ && delivered_upto_ < logged_held_upto_ && held_by_majority(delivered_upto_ + 1)) {
      uint64_t k = delivered_upto_ + 1;
      const MessageName& name = assignments_.at(k);
      deliveries_.push_back(Delivery{k, name, retransmit_buffer_.at(name)});
      delivered_upto_ = k;
    }
    peers_[self_].delivered_upto = delivered_upto_;
    update_stability();
    return;
  }
  while (delivered_upto_ < assigned_contiguous_) {
    uint64_t k = delivered_upto_ + 1;
    const MessageName& name = assignments_.at(k);
    auto payload = retransmit_buffer_.find(name);
    if (payload == retransmit_buffer_.end()) {
      if (config_.bug != InjectedBug::DeliverPastGap) break;
      delivered_upto_ = k;  // deliberately wrong: skip what we lack
      continue;
    }
    deliveries_.push_back(Delivery{k, name, payload->second});
    delivered_upto_ = k;
  }
  peers_[self_].delivered_upto = delivered_upto_;
  update_stability();
}

// Invariant: stable_upto_ <= every member's delivered_upto, so nothing freed
// here can ever be asked for again.
void Multicast::update_stability() {
  uint64_t stable = kNever;
  for (MemberId m : view_) stable = std::min(stable, peers_[m].delivered_upto);
  if (stable <= stable_upto_) return;
  stable_upto_ = stable;
  free_stable();
}

void Multicast::free_stable() {
  const uint64_t upto = stable_upto_;
  if (upto <= freed_upto_) return;
  freed_upto_ = upto;
  auto end = assignments_.upper_bound(upto);
  for (auto it = assignments_.begin(); it != end; ++it) {
    retransmit_buffer_.erase(it->second);
    seq_of_.erase(it->second);
  }
  assignments_.erase(assignments_.begin(), end);
}

std::vector<Delivery> Multicast::held_records() const {
  std::vector<Delivery> out;
  for (auto it = assignments_.begin(); it != assignments_.end() && it->first <= written_held_upto_; ++it)
    out.push_back(Delivery{it->first, it->second, retransmit_buffer_.at(it->second)});
  return out;
}

// ---- loss recovery -------------------------------------------------------

bool Multicast::quiescent() const {
  if (!all_heard() || !retransmit_buffer_.empty()) return false;
  if (stable_upto_ != delivered_upto_ || delivered_upto_ != assigned_heard()) return false;
  for (MemberId m : view_) {
    if (m == self_) continue;
    // Heard of a message of m's current life that is not sequenced yet.
    MessageName next = next_to_sequence(m);
    if (peers_[m].own_highwater >= next.origin_seq && peers_[m].incarnation == next.incarnation)
      return false;
  }
  return true;
}

// A first NACK goes to the member that surely has the thing (the sequencer
// of k, the origin of a message); if that did not work, the next ones go to
// every other member, so neither loss nor one slow member blocks recovery.
std::vector<MemberId> Multicast::nack_targets(MemberId preferred, uint32_t times_asked) const {
  if (preferred != self_ && times_asked <= 1) return {preferred};
  std::vector<MemberId> others;
  for (MemberId m : view_)
    if (m != self_) others.push_back(m);
  return others;
}

// Waiting for the next assignment while holding a message that needs one:
// if it is late, the ASSIGN may have been lost with nothing since to tell
// us, so we ask that sequencer (it answers only if it has assigned).
bool Multicast::awaiting_next_assignment() const {
  if (assigned_contiguous_ != assigned_heard() || sequencer_for(assigned_contiguous_ + 1) == self_) return false;
  MessageName next;
  return pick_eligible(assigned_contiguous_ + 1, next);
}

// How long after `a` was first seen, or last asked for, to ask (again): a
// short grace first (the datagram may just be a little behind: a sender
// preempted between two sends, a packet split over two datagrams), a fifth
// of it in lossy mode, where loss is the likely story; then nack_interval
// twice; then backing off to 16 intervals, so an item nobody can supply
// costs little traffic.
uint64_t Multicast::ask_gap(const Ask& a) const {
  if (a.times == 0 && resigned_for_lag()) return std::max(config_.nack_grace_us, config_.resign_lag_us / 3);
  if (a.times == 0) return lossy_mode() ? config_.nack_grace_us / 5 : config_.nack_grace_us;
  return ask_again_gap(a.times);
}

// A majority finds this member lagging (see "A slow member"): its round
// trip is about resign_lag_us or more, so it asks again no sooner than
// that. Once it is also out of the rotation, nobody waits for it (the
// others are a majority), so its repairs are not urgent: it asks later,
// and does not go into lossy mode, sparing the others a stream of asks and
// doubled packets that would slow them. (Still in the rotation, as when
// two of three are slow and neither may leave, it is on everyone's path.)
bool Multicast::found_lagging() const {
  return config_.resign_lag_us > 0 && self_ < 64 && found_lagging_by(self_) >= majority();
}

bool Multicast::resigned_for_lag() const {
  return found_lagging() && std::find(active_.begin(), active_.end(), self_) == active_.end();
}

uint64_t Multicast::ask_again_gap(uint32_t times_asked) const {
  uint64_t gap = config_.nack_interval_us << std::min<uint32_t>(times_asked < 3 ? 0 : times_asked - 2, 4);
  return found_lagging() ? std::max(gap, config_.resign_lag_us) : gap;
}

// True, and counted as asked, if the item should be asked for now.
bool Multicast::due(Ask& a, uint64_t now_us) {
  if (now_us < a.last + ask_gap(a)) {
    next_ask_due_ = std::min(next_ask_due_, a.last + ask_gap(a));
    return false;
  }
  a.last = now_us;
  ++a.times;
  ++stats_.nacks_sent;
  next_ask_due_ = std::min(next_ask_due_, now_us + ask_gap(a));
  return true;
}

// Gaps in the global sequence, asked for as ranges (tracked by first k).
bool Multicast::ask_for_assignments(uint64_t now_us, std::map<uint64_t, Ask>& asks) {
  bool asked = false;
  size_t budget = config_.max_nack_entries;
  const uint64_t heard = assigned_heard();
  for (uint64_t k = assigned_contiguous_ + 1; k <= heard && budget > 0;) {
    if (assignments_.count(k)) {
      ++k;
      continue;
    }
    uint64_t end = k;
    while (end < heard && !assignments_.count(end + 1) && end - k < kMaxAnswerRange - 1) ++end;
    Ask a = asked_assign_.count(k) ? asked_assign_[k] : Ask{now_us, 0};
    if (due(a, now_us)) {
      asked = true;
      for (MemberId to : nack_targets(holder_of(k), a.times))
        outbox(to).nack_assign.push_back(wire::SeqRange{k, end});
    }
    asks[k] = a;
    --budget;
    k = end + 1;
  }
  return asked;
}

// Payloads we lack: of known assignments we still have to deliver, and
// unsequenced messages that origins announced but we never received.
bool Multicast::ask_for_payloads(uint64_t now_us, std::map<MessageName, Ask>& asks) {
  bool asked = false;
  size_t budget = config_.max_nack_entries;
  auto ask = [&](const MessageName& n) {
    Ask a = asked_data_.count(n) ? asked_data_[n] : Ask{now_us, 0};
    if (due(a, now_us)) {
      asked = true;
      for (MemberId to : nack_targets(n.origin, a.times)) outbox(to).nack_data.push_back(n);
    }
    asks[n] = a;
    --budget;
  };
  for (auto it = assignments_.upper_bound(delivered_upto_); it != assignments_.end() && budget > 0; ++it)
    if (!retransmit_buffer_.count(it->second)) ask(it->second);
  for (MemberId m : view_) {
    if (m == self_) continue;
    MessageName next = next_to_sequence(m);
    if (peers_[m].incarnation != next.incarnation) continue;
    for (uint64_t s = next.origin_seq; s <= peers_[m].own_highwater && budget > 0; ++s) {
      MessageName n{m, next.incarnation, s};
      if (!retransmit_buffer_.count(n) && !seq_of_.count(n)) ask(n);
    }
  }
  return asked;
}

// A late next assignment: the first sighting only starts the clock, since in
// a healthy (if busy) cluster the ASSIGN is on its way; we ask only after a
// heartbeat interval, as long as a lost last ASSIGN would take to show. In
// lossy mode a lost ASSIGN is the likely story, and the whole rotation waits
// on it, so we ask after one NACK interval. While the sequencer is heard
// from it is alive: our ask or its answer was lost, or it waits itself (for
// the payload, or to hear every member): ask again every NACK interval.
// Once it has been silent a heartbeat interval it is likely dead, and asks
// back off (ask_again_gap, by the count of every ask of k so far, up to 16
// intervals), since until the membership suspects it (300 ms by default)
// every survivor would otherwise ask it every millisecond, for nothing.
// Late asks are kept apart from gap asks (asked_late_): when k turns into
// a gap (a higher assignment arrives), its gap asks start afresh.
void Multicast::ask_late_sequencer(uint64_t now_us, std::map<uint64_t, Ask>& asks) {
  if (!awaiting_next_assignment()) return;
  uint64_t k = assigned_contiguous_ + 1;
  MemberId seq = sequencer_for(k);
  Ask a = asked_late_.count(k) ? asked_late_[k] : Ask{now_us, 0};
  auto again_gap = [&](uint32_t times) {
    bool silent = now_us >= last_heard_us_[seq] + config_.heartbeat_interval_us;
    return silent ? ask_again_gap(times) : config_.nack_interval_us;
  };
  uint64_t first_wait = lossy_mode() ? config_.nack_interval_us : config_.heartbeat_interval_us;
  uint64_t late_at = a.last + (a.times == 0 ? first_wait : again_gap(a.times));
  if (now_us >= late_at) {
    a.last = now_us;
    ++a.times;
    ++stats_.nacks_sent;
    outbox(seq).nack_assign.push_back(wire::SeqRange{k, k});
    late_at = now_us + again_gap(a.times);
  }
  next_ask_due_ = std::min(next_ask_due_, late_at);
  asks[k] = a;
}

// Asks for everything this member knows it lacks. The ask tables are rebuilt
// each time and keep only items still missing, so they cannot grow.
void Multicast::recover(uint64_t now_us) {
  next_ask_due_ = kNever;
  std::map<uint64_t, Ask> assign_asks;
  std::map<MessageName, Ask> data_asks;
  std::map<uint64_t, Ask> late_asks;
  bool lost = ask_for_assignments(now_us, assign_asks);
  lost = ask_for_payloads(now_us, data_asks) || lost;
  ask_late_sequencer(now_us, late_asks);  // lateness is no evidence of loss
  asked_assign_ = std::move(assign_asks);
  asked_data_ = std::move(data_asks);
  asked_late_ = std::move(late_asks);
  if (lost) {
    ++stats_.nack_rounds;
    note_repair();
  }
}

// A heartbeat goes to a peer only when no datagram went to it for a
// heartbeat interval (every datagram carries our header), and asks for a
// reply only when none came from it for as long: under load the traffic
// itself carries every header, and no datagram is spent on heartbeats. While
// leaving, a heartbeat goes to all every interval and asks for a reply, as a
// peer that is still draining counts on it.
void Multicast::send_heartbeats(uint64_t now_us) {
  if (closed_) {
    if (heartbeat_sent_ && now_us < last_heartbeat_ + config_.heartbeat_interval_us) return;
    last_heartbeat_ = now_us;
    heartbeat_sent_ = true;
  }
  for (MemberId m : view_) {
    if (m == self_) continue;
    if (!closed_ && now_us < last_sent_us_[m] + config_.heartbeat_interval_us) continue;
    wire::PeerPacket& p = outbox(m);
    p.has_status = true;
    if (closed_ || now_us >= last_heard_us_[m] + config_.heartbeat_interval_us) p.want_reply = true;
    ++stats_.heartbeats;
  }
}

void Multicast::tick(uint64_t now_us) {
  now_us_ = now_us;
  if (wants_heartbeat()) send_heartbeats(now_us);
  recover(now_us);
  recovery_due_ = false;
}

uint64_t Multicast::next_deadline() const {
  if (recovery_due_) return now_us_;
  uint64_t deadline = kNever;
  if (wants_heartbeat()) {
    if (closed_) {
      deadline = heartbeat_sent_ ? last_heartbeat_ + config_.heartbeat_interval_us : 0;
    } else {
      for (MemberId m : view_)
        if (m != self_) deadline = std::min(deadline, last_sent_us_[m] + config_.heartbeat_interval_us);
    }
  }
  return std::min(deadline, next_ask_due_);
}

// ---- outputs -------------------------------------------------------------

std::vector<Outgoing> Multicast::take_outgoing() {
  std::vector<Outgoing> out;
  wire::PeerHeader header;
  header.sender = self_;
  header.group_size = static_cast<uint16_t>(group_size_);
  header.incarnation = incarnation_;
  header.own_highwater = last_origin_seq_;
  header.delivered_upto = std::min(delivered_upto_, durable_delivered_);
  header.assigned_upto = highest_held_assignment();
  header.assigned_contiguous = assigned_contiguous_;
  header.closed = closed_;
  header.held_upto = safe_ ? claimable_held() : 0;
  header.finds_lagging = safe_ ? lagging_bits() : 0;
  const bool lossy = lossy_mode();
  for (auto& [to, packet] : outbox_) {
    if (packet.data.empty() && packet.assigns.empty() && packet.nack_data.empty() &&
        packet.nack_assign.empty() && !packet.has_status)
      continue;
    if (lossy) piggyback_assignments(to, packet);
    packet.header = header;
    packet.header.receiver_incarnation = peers_[to].incarnation;
    if (to < last_sent_us_.size()) last_sent_us_[to] = now_us_;
    for (std::string& bytes : wire::encode_peer(packet)) {
      if (lossy) {
        out.push_back(Outgoing{to, bytes});
        ++stats_.redundant_copies;
      }
      out.push_back(Outgoing{to, std::move(bytes)});
    }
  }
  outbox_.clear();
  return out;
}

void Multicast::note_repair() {
  const size_t n = sizeof recent_repairs_ / sizeof recent_repairs_[0];
  recent_repairs_[next_repair_slot_] = std::max<uint64_t>(now_us_, 1);
  next_repair_slot_ = (next_repair_slot_ + 1) % n;
  uint64_t oldest = recent_repairs_[next_repair_slot_];  // n repairs ago
  if (oldest != 0 && now_us_ < oldest + 100'000 && config_.redundancy_window_us > 0 && !resigned_for_lag())
    redundant_until_ = now_us_ + config_.redundancy_window_us;
}

// In lossy mode, a packet that goes out anyway also carries the few
// assignments just above what the receiver is known to hold: a lost ASSIGN
// is usually repaired by the next datagram, with no NACK round trip.
void Multicast::piggyback_assignments(MemberId to, wire::PeerPacket& packet) const {
  size_t added = 0;
  for (auto it = assignments_.upper_bound(peers_[to].assigned_contiguous);
       it != assignments_.end() && added < config_.piggyback_assignments; ++it, ++added) {
    bool present = false;
    for (const wire::AssignRecord& a : packet.assigns) present = present || a.global_seq == it->first;
    if (!present) packet.assigns.push_back(wire::AssignRecord{it->first, it->second});
  }
}

// What a header advertises as assigned: only assignments this member holds
// (or held, up to assigned_contiguous_), never what it merely heard. Hearsay
// could outlive its source: a member that assigned k, crashed before anyone
// got the ASSIGN, and restarted, must be free to assign k again; were the
// bare claim "k is assigned" passed on from header to header, it would wait
// for ever for an assignment nobody holds.
uint64_t Multicast::highest_held_assignment() const {
  uint64_t top = assignments_.empty() ? 0 : assignments_.rbegin()->first;
  return std::max(top, assigned_contiguous_);
}

std::vector<Delivery> Multicast::records_to_keep() const {
  std::vector<Delivery> out;
  if (safe_) {  // all we said we hold: we may be asked for it, or be a view change's source
    for (auto it = assignments_.upper_bound(freed_upto_);
         it != assignments_.end() && it->first <= written_held_upto_; ++it)
      out.push_back(Delivery{it->first, it->second, retransmit_buffer_.at(it->second)});
    return out;
  }
  for (auto it = assignments_.upper_bound(stable_upto_); it != assignments_.end(); ++it) {
    if (it->first > delivered_upto_ && sequencer_for(it->first) != self_) continue;
    auto payload = retransmit_buffer_.find(it->second);
    if (payload != retransmit_buffer_.end()) out.push_back(Delivery{it->first, it->second, payload->second});
  }
  return out;
}

void Multicast::close() {
  if (closed_) return;
  closed_ = true;
  heartbeat_sent_ = false;  // say so at the next tick
}

bool Multicast::all_peers_closed() const {
  for (MemberId m : view_)
    if (m != self_ && !peers_[m].closed) return false;
  return true;
}

bool Multicast::done_leaving() const { return closed_ && quiescent() && all_peers_closed(); }

void Multicast::announce() {
  for (MemberId m : view_)
    if (m != self_) outbox(m).has_status = true;
}

bool Multicast::has_output() const {
  if (!new_held_.empty() || !deliveries_.empty()) return true;
  for (const auto& [to, packet] : outbox_)
    if (!packet.data.empty() || !packet.assigns.empty() || !packet.nack_data.empty() || !packet.nack_assign.empty() ||
        packet.has_status)
      return true;
  return false;
}

std::vector<Delivery> Multicast::take_deliveries() { return std::move(deliveries_); }

std::vector<Delivery> Multicast::take_new_assignments() { return std::move(new_assignments_); }

// Who needs to hear at once that we now claim records from..to: a member
// that must answer a client and cannot yet count a majority of holders.
// With a majority of two (n <= 3), the one that answers for k is its
// origin, and it needs one holder besides itself. Without deferred
// durability it has the sequencer's claim with the ASSIGN, unless it is
// the sequencer; with it, the ASSIGN left before the sequencer's record was
// on disk. One holder tells it, in one STATUS (or in a datagram going there
// anyway): the sequencer, or, for the sequencer's own batch, the member
// that sequences k+1 (it will soon send there anyway). Any other batch
// everyone learns of from the next header (at the latest the heartbeat,
// while anything is unstable), which costs no datagram. In lossy mode every
// holder tells, so that one lost STATUS does not cost a heartbeat. Below
// the cut the source is told. With a larger majority everyone may be
// waiting.
void Multicast::tell_holders_needed(uint64_t from, uint64_t to) {
  if (majority() > 2) {
    announce();
    return;
  }
  for (auto it = assignments_.lower_bound(from); it != assignments_.end() && it->first <= to; ++it) {
    const MemberId waiting = awaits_claim(it->first, it->second);
    if (waiting != kNobody && waiting != self_) outbox(waiting).has_status = true;
  }
}

// n <= 3 (see tell_holders_needed): who waits to hear at once that this
// member holds k: a member to tell, self_ if only this member does (it
// answers for k, or is the source below the cut), or kNobody.
MemberId Multicast::awaits_claim(uint64_t k, const MessageName& name) const {
  const MemberId origin = name.origin, sequencer = holder_of(k);
  if (k <= cut_) return sequencer;
  if (is_rotation_change(name)) return kNobody;  // no client waits on it
  if (origin == self_) return self_;
  if (std::find(view_.begin(), view_.end(), origin) == view_.end()) return kNobody;
  if (origin != sequencer && !config_.deferred_durability) return kNobody;
  const MemberId teller = origin != sequencer ? sequencer : sequencer_for(k + 1);
  return teller == self_ || lossy_mode() ? origin : kNobody;
}

bool Multicast::claims_awaited() const {
  if (majority() > 2) return written_held_upto_ > logged_held_upto_;
  for (auto it = assignments_.upper_bound(logged_held_upto_); it != assignments_.end() && it->first <= written_held_upto_;
       ++it)
    if (awaits_claim(it->first, it->second) != kNobody) return true;
  return false;
}

// Invariant (persist before claim): a record is claimed, in a header or by
// counting this member a holder, only once the caller's log has it: on
// disk with deferred durability, else written before the next send.
std::vector<Delivery> Multicast::take_held() {
  std::vector<Delivery> out = std::move(new_held_);
  new_held_.clear();
  if (out.empty()) return out;
  written_held_upto_ = held_upto_;
  if (!config_.deferred_durability || config_.bug == InjectedBug::ClaimBeforeDurable)
    claim_durable(written_held_upto_);
  return out;
}

void Multicast::records_durable(uint64_t held_upto, uint64_t delivered_upto) {
  if (!config_.deferred_durability) return;
  durable_delivered_ = std::max(durable_delivered_ == kNever ? 0 : durable_delivered_,
                                std::min(delivered_upto, delivered_upto_));
  claim_durable(std::min(held_upto, written_held_upto_));
}

void Multicast::claim_durable(uint64_t upto) {
  if (upto <= logged_held_upto_) return;
  const uint64_t from = logged_held_upto_ + 1;
  logged_held_upto_ = upto;
  peers_[self_].held_upto = upto;
  tell_holders_needed(from, upto);
  try_deliver();
}

}  // namespace mcast
