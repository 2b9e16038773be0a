// membership.cpp: configurations and the view change described in membership.hpp.
#include "membership.hpp"

#include <algorithm>

namespace mcast {

namespace {

wire::WireConfigId to_wire(ConfigId c) { return wire::WireConfigId{c.epoch, c.rep}; }
ConfigId from_wire(const wire::WireConfigId& c) { return ConfigId{c.epoch, c.rep}; }

// A configuration's multicast packets carry this number as the sender's
// incarnation, and message names carry it too: it grows with the id, so
// names never repeat across configurations, and a packet of another
// configuration is told apart by its header alone.
uint64_t ordering_number(ConfigId c) { return c.ordering_number(); }

size_t majority(size_t n) { return n / 2 + 1; }

}  // namespace

std::string ConfigId::text() const { return std::to_string(epoch) + "." + std::to_string(rep); }

Membership::Membership(MemberId self, size_t group_size, uint64_t incarnation, MembershipConfig config,
                       Restored restored)
    : self_(self), n_(group_size), incarnation_(incarnation), options_(config) {
  peers_.resize(n_);
  last_delivered_.resize(n_);
  peers_[self_].incarnation = incarnation_;
  amnesiac_ = restored.amnesiac;
  promised_ = restored.promised;
  last_primary_ = restored.last_primary;
  install_keep_ = restored.install_keep;
  max_epoch_seen_ = promised_.epoch;
  if (restored.last_installed) {
    // Shown by status until a configuration installs; this life is in none.
    config_ = *restored.last_installed;
    max_epoch_seen_ = std::max(max_epoch_seen_, config_.id.epoch);
  }
  delivered_upto_ = durable_delivered_upto_ = restored.delivered_upto;
  // The claim as the log left it (an install the crash cut short left the
  // one before it whole: LogReplay). Its records must be contiguous up to
  // it; a hole (a damaged log) ends the claim there.
  claim_upto_ = restored.claim_upto;
  uint64_t contiguous = delivered_upto_;
  for (Delivery& d : restored.held) {
    if (d.global_seq > claim_upto_) break;
    if (d.global_seq > contiguous + 1) break;
    contiguous = std::max(contiguous, d.global_seq);
    claim_.push_back(std::move(d));
  }
  if (contiguous < claim_upto_) claim_upto_ = contiguous;
}

// ---- inputs ----------------------------------------------------------------

void Membership::receive(MemberId from, const void* data, size_t len, uint64_t now_us) {
  if (from >= n_ || from == self_ || len < 4) {
    ++stats_.malformed;
    return;
  }
  wire::Reader r(data, len);
  wire::Kind kind;
  if (!wire::read_preamble(r, kind)) {
    ++stats_.malformed;
    return;
  }
  if (kind == wire::Kind::Membership) {
    wire::MembershipMessage m;
    if (!wire::decode_membership(data, len, m) || m.sender != from || m.group_size != n_ ||
        m.incarnation == 0) {
      ++stats_.malformed;
      return;
    }
    if (m.sender_partitionable != options_.partitionable) {  // not a peer: see MembershipConfig
      ++stats_.other_mode;
      other_mode_members_ |= uint64_t{1} << from;
      return;
    }
    if (m.incarnation < peers_[from].incarnation) {  // an earlier life of the sender
      ++stats_.stale;
      return;
    }
    now_us_ = now_us;
    on_membership(from, m);
    return;
  }
  if (kind != wire::Kind::Peer) {
    ++stats_.malformed;
    return;
  }
  wire::PeerPacket p;
  if (!wire::decode_peer(data, len, p) || p.header.sender != from) {
    ++stats_.malformed;
    return;
  }
  // Only the configuration this member is installed in and still part of;
  // after a promise the old one is frozen (see freeze()).
  if (!ordering_ || p.header.incarnation != ordering_number(config_.id)) {
    ++stats_.other_config;
    return;
  }
  now_us_ = now_us;
  peers_[from].last_heard_us = now_us;
  ordering_->receive(from, p, now_us);  // decoded once, here
  pull_from_ordering();
}

void Membership::on_membership(MemberId from, const wire::MembershipMessage& m) {
  Peer& peer = peers_[from];
  if (m.incarnation > peer.incarnation) peer = Peer{};
  peer.incarnation = m.incarnation;
  peer.heard = true;
  peer.last_heard_us = now_us_;
  peer.hears = m.hears;
  peer.amnesiac = m.sender_amnesiac;
  // Within one life a member's installed and promised ids only grow, so a
  // header that arrives late (one built before an install that another
  // datagram already announced) never rolls them back: the picture that
  // rule 2 of "Partial partitions" judges by stays current (found by
  // review: the rollback unprotected a fresh primary for a keepalive;
  // membership_scenario_r4).
  peer.installed = std::max(peer.installed, from_wire(m.installed));
  peer.promised = std::max(peer.promised, from_wire(m.promised));
  if (options_.bug == GroupBug::StaleHeadersBreak) {
    peer.installed = from_wire(m.installed);
    peer.promised = from_wire(m.promised);
  }
  peer.delivered_upto = std::max(peer.delivered_upto, m.delivered_upto);
  max_epoch_seen_ = std::max({max_epoch_seen_, peer.installed.epoch, peer.promised.epoch});
  switch (m.type) {
    case wire::MembershipType::Keepalive:
      break;
    case wire::MembershipType::Prepare:
      on_prepare(from, m);
      break;
    case wire::MembershipType::State:
      on_state(from, m);
      break;
    case wire::MembershipType::Install:
      on_install(m);
      break;
    case wire::MembershipType::SnapshotRequest:
      on_snapshot_request(from, m);
      break;
    case wire::MembershipType::SnapshotChunk:
      on_snapshot_chunk(from, m);
      break;
    case wire::MembershipType::Probe:
      on_probe(from, m);
      break;
    case wire::MembershipType::ProbeReply:
      on_probe_reply(from, m);
      break;
  }
  // A member that missed our INSTALL shows it in its header: send it again.
  if (has_install_sent_ && peer.promised == from_wire(install_sent_.config) &&
      peer.installed != peer.promised && installed_ && config_.id == peer.promised)
    send(from, install_sent_);
}

void Membership::tick(uint64_t now_us) {
  now_us_ = now_us;
  if (first_tick_us_ == kNever) first_tick_us_ = now_us;
  if (ordering_) {
    ordering_->tick(now_us);
    pull_from_ordering();
  }
  if (now_us >= next_keepalive_us_) send_keepalives();
  if (transfer_.active && now_us >= transfer_.last_progress_us + options_.keepalive_us) ask_for_snapshot();
  if (probe_ && now_us >= probe_->started_us + options_.view_change_timeout_us) finish_probe();
  if (probe_ && now_us >= probe_->resent_us + options_.keepalive_us) resend_probe();
  maybe_start_view_change();
  if (!proposal_.none() && now_us >= round_resent_us_ + options_.keepalive_us) resend_round_messages();
}

uint64_t Membership::next_deadline() const {
  uint64_t deadline = next_keepalive_us_;
  if (ordering_) deadline = std::min(deadline, ordering_->next_deadline());
  return deadline;
}

// ---- who can talk ----------------------------------------------------------

bool Membership::reachable(MemberId m) const {
  if (m == self_) return true;
  const Peer& p = peers_[m];
  return p.heard && now_us_ < p.last_heard_us + options_.suspect_after_us;
}

size_t Membership::reachable_count() const {
  size_t count = 0;
  for (MemberId m = 0; m < n_; ++m) count += reachable(static_cast<MemberId>(m)) ? 1 : 0;
  return count;
}

// Whether `a` hears `b`, as far as this member knows: for itself, whom it
// heard lately; for another member it hears, what that one's last
// keepalive said. A member it does not hear it knows nothing about.
bool Membership::hears(MemberId a, MemberId b) const {
  if (a == b) return true;
  if (a == self_) return reachable(b);
  return reachable(a) && (peers_[a].hears >> b & 1);
}

bool Membership::hear_each_other(const std::vector<MemberId>& members) const {
  for (MemberId a : members)
    for (MemberId b : members)
      if (a < b && !(hears(a, b) && hears(b, a))) return false;
  return true;
}

// Members I hear, whose last keepalive says they hear me: a one-way link
// counts for neither side, so both sides agree to be apart.
std::vector<MemberId> Membership::mutual_members() const {
  std::vector<MemberId> out;
  for (MemberId m = 0; m < n_; ++m)
    if (hears(self_, m) && hears(m, self_)) out.push_back(m);
  return out;
}

namespace {
// The largest clique of `adjacent` (bit b of adjacent[a]: a and b hear each
// other) that contains `chosen` and draws the rest from `candidates`; ties
// go to the most members of `keep`, then to the lowest ids (the search
// takes lower ids first and replaces only on a strictly better set). The
// search is bounded: groups are small, and past the bound the best set
// found so far is still a clique.
struct CliqueSearch {
  const std::vector<uint64_t>& adjacent;
  uint64_t keep;
  uint64_t best = 0;
  size_t steps = 0;
  static constexpr size_t kMaxSteps = 200'000;

  static int count(uint64_t bits) { return __builtin_popcountll(bits); }
  bool better(uint64_t set) const {
    if (count(set) != count(best)) return count(set) > count(best);
    return count(set & keep) > count(best & keep);
  }
  void extend(uint64_t chosen, uint64_t candidates) {
    if (++steps > kMaxSteps) return;
    if (candidates == 0) {
      if (better(chosen)) best = chosen;
      return;
    }
    if (count(chosen) + count(candidates) < count(best)) return;  // cannot beat it
    const int low = __builtin_ctzll(candidates);
    const uint64_t bit = uint64_t{1} << low;
    extend(chosen | bit, candidates & adjacent[low] & ~bit);
    extend(chosen, candidates & ~bit);
  }
};
}  // namespace

// The set rule 1 of "Partial partitions" allows (all hear each other, as
// far as I know) that contains me and `required` and is best by rule 4.
// Empty if `required` itself is no such set.
std::vector<MemberId> Membership::best_clique(const std::vector<MemberId>& required) const {
  std::vector<uint64_t> adjacent(n_, 0);
  for (MemberId a = 0; a < n_; ++a)
    for (MemberId b = 0; b < n_; ++b)
      if (a != b && hears(a, b) && hears(b, a)) adjacent[a] |= uint64_t{1} << b;
  uint64_t chosen = uint64_t{1} << self_;
  for (MemberId m : required) chosen |= uint64_t{1} << m;
  uint64_t candidates = ~uint64_t{0} >> (64 - n_);
  for (MemberId m = 0; m < n_; ++m)
    if (chosen >> m & 1) candidates &= adjacent[m] | (uint64_t{1} << m);
  if ((candidates & chosen) != chosen) return {};
  uint64_t keep = 0;
  if (installed_)
    for (MemberId m : config_.members) keep |= uint64_t{1} << m;
  CliqueSearch search{adjacent, keep};
  search.extend(chosen, candidates & ~chosen);
  std::vector<MemberId> out;
  for (MemberId m = 0; m < n_; ++m)
    if (search.best >> m & 1) out.push_back(m);
  return out;
}

// Rule 2's "works": installed, no newer promise, every member hearing every
// other, and none saying it promised anything newer. Every member of the
// configuration promised it (its STATE was needed to
// install it), so a member whose last header names an older promise has
// only not said so yet (a slow link, a lost keepalive): it counts as in
// the configuration. One that promised something newer has moved on. (A
// restarted member is not in it either way, but, installed nowhere, it
// proposes a configuration of its own, which the others join: a set that
// keeps all of theirs.) Before this, a member waited to hear each one's
// header name the configuration, and over a 30 ms link the wait outlasted
// the coordinator's, which formed the same configuration again and again
// (found with the slow-link test switch).
bool Membership::configuration_works() const {
  if (!installed_ || promised_ != config_.id || !hear_each_other(config_.members)) return false;
  for (MemberId m : config_.members)
    if (m != self_ && config_.id < peers_[m].promised) return false;
  if (options_.bug == GroupBug::StaleHeadersBreak)
    for (MemberId m : config_.members)
      if (m != self_ && peers_[m].heard && peers_[m].promised != config_.id) return false;
  return true;
}

bool Membership::primary_may_form() const {
  if (primary() || (installed_ && promised_ == config_.id)) return false;
  if (!promised_members_.empty()) return could_be_primary(promised_members_);
  return reachable_count() >= majority(n_);  // nothing promised yet in this life
}

// Whether a configuration of `members` could be primary: a majority of the
// n members, not counting those whose last word was that they are
// amnesiac ("Amnesia": a primary needs a majority of trusted STATEs).
bool Membership::could_be_primary(const std::vector<MemberId>& members) const {
  size_t trusted = 0;
  for (MemberId m : members) trusted += !(m == self_ ? amnesiac_ : peers_[m].amnesiac);
  return trusted >= majority(n_);
}

namespace {
bool contains_all(const std::vector<MemberId>& set, const std::vector<MemberId>& subset) {
  return std::includes(set.begin(), set.end(), subset.begin(), subset.end());
}
}  // namespace

// Rule 4: the members this member would propose now, or nothing if it
// wants no change.
std::optional<std::vector<MemberId>> Membership::wanted_members() const {
  if (options_.bug == GroupBug::ProposeHeardSet) {  // deliberately wrong: today's set, cliques or not
    std::vector<MemberId> mutual = mutual_members();
    bool same = installed_ && promised_ == config_.id && mutual == config_.members;
    for (MemberId m : mutual)
      if (m != self_ && peers_[m].installed != config_.id) same = false;
    return same ? std::nullopt : std::optional<std::vector<MemberId>>(mutual);
  }
  if (!configuration_works()) return best_clique({});
  auto refused_lately = [this](const std::vector<MemberId>& set) {
    auto it = refused_until_us_.find(set);
    return it != refused_until_us_.end() && now_us_ < it->second;
  };
  // A merge: all of my configuration and more, all hearing each other.
  std::vector<MemberId> merge = best_clique(config_.members);
  if (merge.size() > config_.members.size() && !refused_lately(merge)) return merge;
  if (config_.primary) return std::nullopt;
  // A non-primary configuration also gives way to a majority (tried when a
  // merge was refused, so that three minorities that each want one more
  // member do not wait on each other while a majority could form). Never
  // the configuration itself again: with amnesiac members a working
  // non-primary configuration can be a majority, and would re-form for
  // ever (found by review).
  std::vector<MemberId> larger = best_clique({});
  if (could_be_primary(larger) && larger != config_.members && !refused_lately(larger)) return larger;
  return std::nullopt;
}

// Rules 1 and 2 (and, for a probe, "another round is under way"): whether
// this member would join a configuration of `proposed`, put forward by
// `from`.
wire::Verdict Membership::judge_proposal(MemberId from, const std::vector<MemberId>& proposed, bool probe) const {
  std::vector<MemberId> sorted = proposed;
  std::sort(sorted.begin(), sorted.end());
  if (!std::binary_search(sorted.begin(), sorted.end(), self_)) return wire::Verdict::NotNamed;
  if (options_.bug == GroupBug::ProposeHeardSet) return wire::Verdict::Join;
  if (!hear_each_other(sorted)) return wire::Verdict::NotMutual;
  if (options_.bug != GroupBug::YieldWorkingPrimary && configuration_works() && !contains_all(sorted, config_.members)) {
    if (config_.primary) return wire::Verdict::PrimaryWorks;
    if (!could_be_primary(sorted)) return wire::Verdict::ConfigurationWorks;
  }
  if (probe && promised_ != config_.id && promised_.rep != from && promised_.rep != self_ &&
      now_us_ < last_progress_us_ + options_.view_change_timeout_us)
    return wire::Verdict::RoundUnderWay;
  return wire::Verdict::Join;
}

// The coordinator is the lowest member of the set it wants. Others step in
// only after a wait that grows with their place in the set, so that two
// members rarely start rounds at once (they would outbid each other).
void Membership::maybe_start_view_change() {
  std::optional<std::vector<MemberId>> wanted = wanted_members();
  if (!wanted) {
    change_wanted_ = false;
    return;
  }
  if (!change_wanted_) {
    change_wanted_ = true;
    change_wanted_since_us_ = now_us_;
  }
  bool round_running = !proposal_.none() && now_us_ < round_started_us_ + options_.view_change_timeout_us;
  if (round_running || probe_) return;
  // A promise made lately: its coordinator is still at work.
  if (promised_ != config_.id && now_us_ < last_progress_us_ + options_.view_change_timeout_us) return;
  size_t rank = std::find(wanted->begin(), wanted->end(), self_) - wanted->begin();
  uint64_t wait = rank == 0 ? 0 : options_.view_change_timeout_us * (1 + rank);
  // Wait a few keepalives for the picture to settle (who is there, who has
  // installed what) before starting a round. A life that has installed
  // nothing yet, and does not hear everyone, gives the others a suspicion
  // timeout to show up: members started one after another (a cluster's
  // start) then form one configuration together, not one each.
  wait = std::max(wait, options_.keepalive_us * 3);
  if (!ever_installed_ && wanted->size() < n_ && now_us_ < first_tick_us_ + options_.suspect_after_us) return;
  if (now_us_ < change_wanted_since_us_ + wait) return;
  if (options_.bug == GroupBug::NoPreVote || options_.bug == GroupBug::ProposeHeardSet)
    start_round(*wanted);
  else
    start_probe(*wanted);
}

// ---- the view change ---------------------------------------------------------

// ---- asking first (rule 3 of "Partial partitions") ----

void Membership::start_probe(std::vector<MemberId> members) {
  ++stats_.probes;
  Probe probe;
  probe.tag = ConfigId{++probes_started_, self_};  // each probe its own tag: a late answer to another is ignored
  probe.members = std::move(members);
  probe.started_us = now_us_;
  probe.answers[self_] = wire::Verdict::Join;
  probe_ = std::move(probe);
  resend_probe();
  if (probe_->answers.size() == probe_->members.size()) finish_probe();  // a group of one
}

// To every member that has not answered yet (at the start, and every
// keepalive period after: a datagram may be lost).
void Membership::resend_probe() {
  probe_->resent_us = now_us_;
  wire::MembershipMessage m = header(wire::MembershipType::Probe);
  m.config = to_wire(probe_->tag);
  m.members.assign(probe_->members.begin(), probe_->members.end());
  for (MemberId to : probe_->members)
    if (!probe_->answers.count(to)) send(to, m);
}

void Membership::on_probe(MemberId from, const wire::MembershipMessage& m) {
  std::vector<MemberId> proposed(m.members.begin(), m.members.end());
  wire::MembershipMessage reply = header(wire::MembershipType::ProbeReply);
  reply.config = m.config;
  reply.verdict = judge_proposal(from, proposed, true);
  if (reply.verdict != wire::Verdict::Join) ++stats_.refusals;
  send(from, reply);
}

void Membership::on_probe_reply(MemberId from, const wire::MembershipMessage& m) {
  if (!probe_ || from_wire(m.config) != probe_->tag) return;
  if (!std::binary_search(probe_->members.begin(), probe_->members.end(), from)) return;
  probe_->answers[from] = m.verdict;
  if (probe_->answers.size() == probe_->members.size()) finish_probe();
}

// Every answer is in, or the time is up (a member that did not answer said
// no). All joined: the round starts. Some refused: the set is not asked
// again for a while; if this member's configuration still works it stays,
// and if not, it probes those who joined (all of whom hear each other).
void Membership::finish_probe() {
  // "Not all of them hear each other" may only mean the answering member's
  // picture lags (a keepalive lost, a member just started): ask everyone
  // again once, a keepalive later, before leaving anyone out.
  bool picture_differs = false;
  for (const auto& answer : probe_->answers) picture_differs |= answer.second == wire::Verdict::NotMutual;
  if (picture_differs && !probe_->asked_again) {
    probe_->asked_again = true;
    probe_->tag = ConfigId{++probes_started_, self_};
    probe_->answers = {{self_, wire::Verdict::Join}};
    probe_->started_us = probe_->resent_us = now_us_;
    return;
  }
  Probe probe = std::move(*probe_);
  probe_.reset();
  std::vector<MemberId> joined;
  for (const auto& [member, verdict] : probe.answers)
    if (verdict == wire::Verdict::Join) joined.push_back(member);
  if (joined == probe.members) {
    start_round(joined);
    return;
  }
  for (auto it = refused_until_us_.begin(); it != refused_until_us_.end();)
    it = now_us_ >= it->second ? refused_until_us_.erase(it) : std::next(it);
  refused_until_us_[probe.members] = now_us_ + options_.refused_retry_us;
  // Those who joined were asked about a larger set: ask them about this one
  // (a member may join a majority but not a smaller set, rule 2). Each such
  // probe names fewer members, so this ends, at worst at this member alone.
  if (!configuration_works()) start_probe(joined);
}

void Membership::start_round(std::vector<MemberId> members) {
  ++stats_.view_changes;
  proposal_ = ConfigId{max_epoch_seen_ + 1, self_};
  proposed_ = std::move(members);
  reports_.clear();
  round_started_us_ = now_us_;
  change_wanted_since_us_ = now_us_;
  promise(proposal_, proposed_);
  reports_[self_] = StateReport{incarnation_, installed_ ? config_.id : ConfigId{}, last_primary_,
                                claimed_held_upto(), delivered_upto_, freed_upto(),
                                amnesiac_ && options_.bug != GroupBug::CountAmnesiac};
  resend_round_messages();
  decide();  // a group of one
}

void Membership::resend_round_messages() {
  round_resent_us_ = now_us_;
  if (proposal_.none() || promised_ != proposal_) return;
  wire::MembershipMessage m = header(wire::MembershipType::Prepare);
  m.config = to_wire(proposal_);
  m.members.assign(proposed_.begin(), proposed_.end());
  for (MemberId to : proposed_)
    if (to != self_ && !reports_.count(to)) send(to, m);
}

// Promising `id` ends this member's part in its configuration: from here on
// it says nothing in it, so it cannot help the old configuration gather a
// majority for anything it did not already hold (see membership.hpp).
void Membership::promise(ConfigId id, std::vector<MemberId> members) {
  freeze();
  promised_ = id;
  promised_members_ = std::move(members);
  max_epoch_seen_ = std::max(max_epoch_seen_, id.epoch);
  last_progress_us_ = now_us_;
  LogRecord r;
  r.kind = LogRecord::Kind::Promise;
  r.config.id = id;
  ready_.to_persist.push_back(r);
}

// Takes what the ordering has for the caller, then stops it. A complete
// ordering's records are the claim, and stay with this member (claim_) for
// the next configuration. An incomplete one's are dropped: the claim from
// before its install is still whole (claim_), and so is the log's, since
// the Promise that follows voids the Staged records there.
void Membership::freeze() {
  transfer_ = Transfer{};
  snapshot_config_ = ConfigId{};
  snapshot_blob_.clear();
  snapshot_waiting_.clear();
  if (ordering_) {
    pull_from_ordering();
    if (!order_incomplete_) {
      claim_ = ordering_->held_records();
      claim_upto_ = ordering_->held_upto();
    }
    ordering_.reset();
  }
  // The configuration ends here, and so does its transition: a REGULAR it
  // did not reach is never due (the next install decides afresh).
  regular_pending_ = false;
  order_incomplete_ = false;
  start_records_.clear();
}

void Membership::on_prepare(MemberId from, const wire::MembershipMessage& m) {
  ConfigId id = from_wire(m.config);
  if (id.rep != from || id.epoch == 0) return;
  if (std::find(m.members.begin(), m.members.end(), self_) == m.members.end()) return;
  if (id < promised_) return;
  if (id != promised_) {
    std::vector<MemberId> proposed(m.members.begin(), m.members.end());
    if (judge_proposal(from, proposed, false) != wire::Verdict::Join) {
      ++stats_.refusals;
      return;
    }
    if (!proposal_.none() && proposal_ != id) proposal_ = ConfigId{};  // outbid
    promise(id, proposed);
  }
  wire::MembershipMessage s = header(wire::MembershipType::State);
  s.config = m.config;
  s.last_primary = to_wire(last_primary_);
  s.held_upto = claimed_held_upto();
  s.freed_upto = freed_upto();
  s.amnesiac = amnesiac_;
  send(from, s);
}

void Membership::on_state(MemberId from, const wire::MembershipMessage& m) {
  if (proposal_.none() || from_wire(m.config) != proposal_ || promised_ != proposal_) return;
  if (std::find(proposed_.begin(), proposed_.end(), from) == proposed_.end()) return;
  reports_[from] = StateReport{m.incarnation, from_wire(m.installed), from_wire(m.last_primary), m.held_upto,
                               m.delivered_upto, m.freed_upto, m.amnesiac && options_.bug != GroupBug::CountAmnesiac};
  decide();
}

// With every proposed member's STATE in: the configuration is primary if a
// majority of all n sent STATEs that are not amnesiac ("Amnesia" in the
// header: an amnesiac member may be in it, but counts for nothing); its
// order continues from the source, the trusted member with the newest last
// primary configuration and, among those, the most held.
void Membership::decide() {
  if (reports_.size() != proposed_.size()) return;
  wire::MembershipMessage m = header(wire::MembershipType::Install);
  m.config = to_wire(proposal_);
  size_t trusted = 0;
  std::optional<MemberId> trusted_source;
  for (const auto& [member, report] : reports_) {
    if (report.amnesiac) continue;
    ++trusted;
    const StateReport* best = trusted_source ? &reports_.at(*trusted_source) : nullptr;
    if (!best || best->last_primary < report.last_primary ||
        (best->last_primary == report.last_primary && best->held_upto < report.held_upto))
      trusted_source = member;
  }
  m.primary = (trusted >= majority(n_) && trusted_source) || options_.bug == GroupBug::MinorityDelivers;
  const MemberId source = trusted_source ? *trusted_source : self_;  // non-primary: it names nothing
  const StateReport& chosen = reports_.at(source);
  m.source = source;
  m.cut = options_.bug == GroupBug::CutAtDelivered ? chosen.delivered_upto : chosen.held_upto;
  m.source_last_primary = to_wire(chosen.last_primary);
  m.freed_upto = chosen.freed_upto;
  for (const auto& [member, report] : reports_)
    m.entries.push_back(wire::InstallEntry{member, report.incarnation, to_wire(report.previous)});
  install_sent_ = m;
  has_install_sent_ = true;
  proposal_ = ConfigId{};
  for (MemberId to : proposed_)
    if (to != self_) send(to, m);
  install(m);
}

void Membership::on_install(const wire::MembershipMessage& m) {
  if (from_wire(m.config) != promised_ || (installed_ && config_.id == promised_)) return;
  install(m);
}

// Installs the configuration the coordinator decided. A primary one starts a
// new ordering at the cut: this member keeps what it holds up to the cut if
// its last primary configuration is the source's (then its records there
// are the source's), or else only what it delivered (delivered records are
// in every later configuration's order, membership.hpp); the rest is void
// and comes again from the source.
void Membership::install(const wire::MembershipMessage& m) {
  ConfigId id = from_wire(m.config);
  const wire::InstallEntry* mine = nullptr;
  for (const wire::InstallEntry& e : m.entries)
    if (e.member == self_) mine = &e;
  if (!mine || mine->incarnation != incarnation_) return;
  ConfigId previous = installed_ ? config_.id : ConfigId{};

  Configuration c;
  c.id = id;
  c.primary = m.primary;
  c.cut = m.primary ? m.cut : 0;
  for (const wire::InstallEntry& e : m.entries) c.members.push_back(e.member);
  std::sort(c.members.begin(), c.members.end());

  Event transitional;
  transitional.kind = Event::Kind::Transitional;
  transitional.config.id = id;
  for (const wire::InstallEntry& e : m.entries)
    if (e.member == self_ || (!previous.none() && from_wire(e.previous) == previous))
      transitional.config.members.push_back(e.member);
  std::sort(transitional.config.members.begin(), transitional.config.members.end());
  ready_.events.push_back(transitional);

  if (c.primary) {
    // Where the new ordering starts. The claim itself stays as it is until
    // the order up to the cut is held (complete_order).
    uint64_t keep = last_primary_ == from_wire(m.source_last_primary) ? std::min(claim_upto_, c.cut)
                                                                        : delivered_upto_;
    keep = std::max(keep, delivered_upto_);
    start_records_.clear();
    for (const Delivery& d : claim_)
      if (d.global_seq <= keep) start_records_.push_back(d);
    install_keep_ = keep;
    order_incomplete_ = true;  // until it holds the order up to the cut: complete_order()
    if (options_.bug == GroupBug::ShrinkClaimAtInstall) {  // deliberately wrong: the claim drops to keep
      claim_ = start_records_;
      claim_upto_ = keep;
    }
  }
  const std::string reason = change_reason(c);
  regular_reason_ = reason;
  config_ = c;
  installed_ = true;
  ever_installed_ = true;
  last_progress_us_ = now_us_;
  change_wanted_ = false;  // a member still installing is given time before another round
  ++stats_.installs;
  LogRecord rec;
  rec.kind = LogRecord::Kind::Install;
  rec.config = c;
  rec.upto = install_keep_;
  rec.claim_upto = claim_upto_;
  ready_.to_persist.push_back(rec);
  if (c.primary && options_.bug == GroupBug::PrimaryAtInstall) complete_order();  // deliberately early

  if (c.primary) {
    regular_pending_ = true;
    if (install_keep_ < m.freed_upto) {
      // The source no longer holds what this member lacks: its snapshot
      // first (state transfer), then the rest of the order by NACK.
      transfer_ = Transfer{};
      transfer_.active = true;
      transfer_.source = m.source;
      ask_for_snapshot();
    } else {
      start_ordering(m.source, {});
    }
  } else {
    Event regular;
    regular.kind = Event::Kind::Regular;
    regular.config = c;
    regular.reason = reason;
    ready_.events.push_back(regular);
  }
  send_keepalives();  // tell everyone at once: a member that missed INSTALL asks again
}

// The ordering of the installed primary configuration, from what this
// member holds (or, after a state transfer, from the snapshot's end).
void Membership::start_ordering(MemberId source, std::vector<OriginPosition> positions) {
  OrderingStart start;
  start.group_size = n_;
  start.cut = config_.cut;
  start.source = source;
  start.delivered_upto = delivered_upto_;
  start.held = std::move(start_records_);
  start.positions = std::move(positions);
  start_records_.clear();
  MulticastConfig mc = options_.multicast;
  if (options_.bug == GroupBug::DeliverWithoutMajority) mc.bug = InjectedBug::DeliverWithoutMajority;
  if (options_.bug == GroupBug::ClaimBeforeDurable) mc.bug = InjectedBug::ClaimBeforeDurable;
  if (options_.bug == GroupBug::RevokeLaggingSlot) mc.bug = InjectedBug::RevokeLaggingSlot;
  ordering_ = std::make_unique<Multicast>(self_, config_.members, ordering_number(config_.id), mc, start);
  if (closed_) ordering_->close();
  if (!order_incomplete_) ordering_->mark_order_complete();  // only with GroupBug::PrimaryAtInstall
  pull_from_ordering();
}

// ---- state transfer --------------------------------------------------------
//
// A member that installs a primary configuration holding less than the
// source has freed (it was away while the others delivered and freed) gets
// the source's snapshot: the state text at the source's delivered_upto,
// which is at least what the source freed, and each origin's last delivered
// message. The source takes it once per configuration, on the first
// request, and its ordering keeps every record above it: the joiner, never
// heard in the new ordering, holds the stability point there at 0. Chunks go
// over the membership datagrams, a window of 8 at a time, asked for again
// from the first missing byte at every keepalive without progress.

namespace {
constexpr uint64_t kSnapshotWindow = 8 * wire::kSnapshotChunkBytes;

std::string encode_snapshot(const std::vector<OriginPosition>& positions, const std::string& text) {
  wire::Writer w;
  w.u16(static_cast<uint16_t>(positions.size()));
  for (const OriginPosition& p : positions) {
    w.u64(p.incarnation);
    w.u64(p.origin_seq);
  }
  w.bytes(text);
  return w.take();
}

bool decode_snapshot(const std::string& blob, std::vector<OriginPosition>& positions, std::string& text) {
  wire::Reader r(blob.data(), blob.size());
  uint16_t count;
  if (!r.u16(count)) return false;
  positions.resize(count);
  for (OriginPosition& p : positions)
    if (!r.u64(p.incarnation) || !r.u64(p.origin_seq)) return false;
  return r.bytes(text, blob.size()) && r.at_end();
}
}  // namespace

void Membership::provide_snapshot(std::string state_text, uint64_t upto) {
  if (upto != delivered_upto_ || !installed_ || !config_.primary || snapshot_config_ == config_.id) return;
  snapshot_config_ = config_.id;
  snapshot_upto_ = upto;
  snapshot_blob_ = encode_snapshot(last_delivered_, state_text);
  for (const auto& [to, offset] : snapshot_waiting_) send_snapshot_chunks(to, offset);
  snapshot_waiting_.clear();
}

void Membership::on_snapshot_request(MemberId from, const wire::MembershipMessage& m) {
  if (!primary() || from_wire(m.config) != config_.id || promised_ != config_.id ||
      std::find(config_.members.begin(), config_.members.end(), from) == config_.members.end())
    return;
  if (snapshot_config_ == config_.id) {
    send_snapshot_chunks(from, m.offset);
  } else {
    snapshot_waiting_[from] = m.offset;
    ready_.snapshot_wanted = true;
  }
}

void Membership::send_snapshot_chunks(MemberId to, uint64_t offset) {
  wire::MembershipMessage c = header(wire::MembershipType::SnapshotChunk);
  c.config = to_wire(config_.id);
  c.snapshot_upto = snapshot_upto_;
  c.total = snapshot_blob_.size();
  for (uint64_t at = offset; at < std::min<uint64_t>(offset + kSnapshotWindow, c.total) || (at == 0 && c.total == 0);
       at += wire::kSnapshotChunkBytes) {
    c.offset = at;
    c.bytes = snapshot_blob_.substr(at, wire::kSnapshotChunkBytes);
    send(to, c);
    if (c.total == 0) break;
  }
}

void Membership::ask_for_snapshot() {
  transfer_.last_progress_us = now_us_;
  transfer_.asked_upto = transfer_.received.size() + kSnapshotWindow;
  wire::MembershipMessage r = header(wire::MembershipType::SnapshotRequest);
  r.config = to_wire(config_.id);
  r.offset = transfer_.received.size();
  send(transfer_.source, r);
}

void Membership::on_snapshot_chunk(MemberId from, const wire::MembershipMessage& m) {
  if (!transfer_.active || from != transfer_.source || from_wire(m.config) != config_.id ||
      promised_ != config_.id)
    return;
  if (transfer_.received.empty()) {
    transfer_.upto = m.snapshot_upto;
    transfer_.total = m.total;
  }
  if (m.snapshot_upto != transfer_.upto || m.total != transfer_.total || m.offset != transfer_.received.size())
    return;  // a duplicate, or out of order after a loss: asked for again
  transfer_.received += m.bytes;
  transfer_.last_progress_us = now_us_;
  if (transfer_.received.size() == transfer_.total) {
    finish_transfer();
  } else if (transfer_.received.size() >= transfer_.asked_upto) {
    ask_for_snapshot();
  }
}

// The whole snapshot is in: the caller installs it (InstallSnapshot), and
// the ordering starts at its end; the rest up to the cut comes by NACK.
void Membership::finish_transfer() {
  std::vector<OriginPosition> positions;
  std::string text;
  const std::string blob = std::move(transfer_.received);
  const uint64_t upto = transfer_.upto;
  const MemberId source = transfer_.source;
  transfer_ = Transfer{};
  if (!decode_snapshot(blob, positions, text) || upto < install_keep_) {
    ++stats_.malformed;  // never from an honest source: start over
    transfer_.active = true;
    transfer_.source = source;
    ask_for_snapshot();
    return;
  }
  Event e;
  e.kind = Event::Kind::InstallSnapshot;
  e.snapshot = std::move(text);
  e.snapshot_upto = upto;
  ready_.events.push_back(std::move(e));
  positions.resize(n_);
  last_delivered_ = positions;
  delivered_upto_ = upto;
  // The snapshot stands for the order up to upto: the claim's records there
  // may be of an older order, so they go (the claim's height stays: a claim
  // changes only at OrderComplete). The ordering starts at the snapshot.
  while (!claim_.empty() && claim_.front().global_seq <= upto) claim_.erase(claim_.begin());
  start_records_.clear();
  // The caller makes the snapshot durable when it applies this Ready's
  // events, after it has written the Ready's records: OrderComplete, which
  // claims the order up to the cut, must wait for a later Ready, or a crash
  // in between leaves a log that claims what the disk does not hold.
  snapshot_unapplied_ = true;
  start_ordering(source, std::move(positions));
}

// REGULAR follows the messages up to the cut: they belong to the transition.
void Membership::maybe_emit_regular() {
  if (!regular_pending_ || delivered_upto_ < config_.cut) return;
  regular_pending_ = false;
  Event regular;
  regular.kind = Event::Kind::Regular;
  regular.config = config_;
  regular.reason = regular_reason_;
  ready_.events.push_back(regular);
}

// Why the configuration changed, for the server's log: who left (and how
// long they had been silent), who joined.
std::string Membership::change_reason(const Configuration& next) const {
  std::string text;
  auto add = [&text](const std::string& part) { text += (text.empty() ? "" : ", ") + part; };
  if (!installed_) add("r" + std::to_string(self_) + " starting");
  for (MemberId m : config_.members) {
    if (!installed_ || std::find(next.members.begin(), next.members.end(), m) != next.members.end()) continue;
    if (!reachable(m))
      add("r" + std::to_string(m) + " silent for " + std::to_string((now_us_ - peers_[m].last_heard_us) / 1000) + " ms");
    else
      add("r" + std::to_string(m) + " left (it does not hear us)");
  }
  for (MemberId m : next.members)
    if (installed_ && std::find(config_.members.begin(), config_.members.end(), m) == config_.members.end())
      add("r" + std::to_string(m) + " joined");
  return text;
}

// Records the ordering now holds go to the log (Staged while the install is
// incomplete); then OrderComplete, once the order up to the cut is held;
// then what the ordering delivered goes to the caller, with a mark in the
// log. In that order: a Delivered mark never precedes the OrderComplete
// that makes its records the log's own.
void Membership::pull_from_ordering() {
  if (!ordering_) return;
  for (Delivery& d : ordering_->take_held()) {
    LogRecord r;
    r.kind = order_incomplete_ ? LogRecord::Kind::Staged : LogRecord::Kind::Held;
    r.held = std::move(d);
    ready_.to_persist.push_back(std::move(r));
  }
  if (order_incomplete_ && ordering_->held_upto() >= config_.cut && !snapshot_unapplied_) complete_order();
  std::vector<Delivery> delivered = ordering_->take_deliveries();
  for (Delivery& d : delivered) {
    // REGULAR goes right after the last message up to the cut.
    if (regular_pending_ && d.global_seq > config_.cut) maybe_emit_regular();
    delivered_upto_ = d.global_seq;
    if (!mcast::is_rotation_change(d.name))
      last_delivered_[d.name.origin] = OriginPosition{d.name.incarnation, d.name.origin_seq};
    Event e;
    e.kind = Event::Kind::Deliver;
    e.delivery = std::move(d);
    ready_.events.push_back(std::move(e));
  }
  if (!delivered.empty()) {
    LogRecord r;
    r.kind = LogRecord::Kind::Delivered;
    r.upto = delivered_upto_;
    ready_.to_persist.push_back(r);
  }
  maybe_emit_regular();
}

// This member now holds its new primary configuration's order up to the
// cut: it is the source's order there, so from now on it may say that its
// last primary configuration is this one (in a STATE, and in its log first).
// Said any sooner, a member that holds less than the cut could be picked as
// the source of a later view change, and its shorter order would cut away
// something this configuration already delivered.
void Membership::complete_order() {
  order_incomplete_ = false;
  last_primary_ = config_.id;
  amnesiac_ = false;  // its claim is made in this life from here ("Amnesia")
  claim_.clear();  // the ordering's records are the claim now
  if (ordering_) ordering_->mark_order_complete();
  LogRecord r;
  r.kind = LogRecord::Kind::OrderComplete;
  r.config.id = config_.id;
  ready_.to_persist.push_back(r);
}

uint64_t Membership::claimed_held_upto() const {
  if (ordering_ && !order_incomplete_) return ordering_->held_upto();
  return claim_upto_;
}

// ---- reading a log back -------------------------------------------------------

void LogReplay::add(const LogRecord& r) {
  using Kind = LogRecord::Kind;
  switch (r.kind) {
    case Kind::Held:
      held_[r.held.global_seq] = r.held;
      break;
    case Kind::Staged:
      staged_[r.held.global_seq] = r.held;
      break;
    case Kind::Delivered:
      delivered_mark_ = r.upto;
      break;
    case Kind::Truncate:
      held_.erase(held_.upper_bound(r.upto), held_.end());
      break;
    case Kind::Promise:
      found_.promised = std::max(found_.promised, r.config.id);
      staged_.clear();
      break;
    case Kind::Install:
      found_.last_installed = r.config;
      found_.install_keep = r.upto;
      install_claim_ = r.claim_upto;
      staged_.clear();
      break;
    case Kind::OrderComplete:
      found_.last_primary = std::max(found_.last_primary, r.config.id);
      if (commits_last_install(r)) {
        held_.erase(held_.upper_bound(found_.install_keep), held_.end());
        for (auto& [k, d] : staged_) held_[k] = d;
        staged_.clear();
      }
      break;
  }
}

// An OrderComplete of the last install, in a log that stages (an earlier
// version's install line says no claim, and its log has no Staged records).
bool LogReplay::commits_last_install(const LogRecord& r) const {
  return r.kind == LogRecord::Kind::OrderComplete && found_.last_installed &&
         found_.last_installed->id == r.config.id && install_claim_ != LogRecord::kNoClaim;
}

uint64_t LogReplay::voids_above(const LogRecord& r) const {
  if (r.kind == LogRecord::Kind::Truncate) return r.upto;
  if (commits_last_install(r)) return found_.install_keep;
  return kNever;
}

LogReplay::Undo LogReplay::undoes_applied(const LogRecord& r, uint64_t applied) const {
  if (applied <= snapshot_upto_) return Undo::None;  // nothing applied from the log yet
  if (r.kind == LogRecord::Kind::Held && r.held.global_seq > snapshot_upto_ && r.held.global_seq <= applied) {
    const Delivery* had = held(r.held.global_seq);  // applied, so remembered
    if (!had || !(had->name == r.held.name) || had->payload != r.held.payload) return Undo::Replaces;
  }
  return voids_above(r) < applied ? Undo::Voids : Undo::None;
}

const Delivery* LogReplay::held(uint64_t k) const {
  auto it = held_.find(k);
  return it == held_.end() ? nullptr : &it->second;
}

Restored LogReplay::finish() const {
  Restored r = found_;
  r.delivered_upto = std::max(delivered_mark_, snapshot_upto_);
  const bool snapshot_ahead = snapshot_upto_ > delivered_mark_;
  uint64_t contiguous = r.delivered_upto;
  for (const auto& [k, d] : held_) {
    if (snapshot_ahead && k <= snapshot_upto_) continue;
    if (k > contiguous + 1) break;  // a hole: nothing above it is held
    contiguous = std::max(contiguous, k);
    r.held.push_back(d);
  }
  const bool incomplete = r.last_installed && r.last_installed->primary && r.last_installed->id != r.last_primary;
  r.claim_upto = contiguous;
  if (r.last_installed && !(r.last_installed->primary && !incomplete)) {
    if (install_claim_ != LogRecord::kNoClaim) {
      r.claim_upto = std::min(install_claim_, contiguous);
    } else if (incomplete) {
      // A log of an earlier version, whose install did not say its claim:
      // its records above what the install kept were fetched for it.
      r.claim_upto = std::min(contiguous, std::max(r.install_keep, r.delivered_upto));
    }
  }
  while (!r.held.empty() && r.held.back().global_seq > r.claim_upto) r.held.pop_back();
  return r;  // staged records are void for a restart: it installs nothing until a new configuration forms
}

// ---- outputs -----------------------------------------------------------------

wire::MembershipMessage Membership::header(wire::MembershipType type) const {
  wire::MembershipMessage m;
  m.sender = self_;
  m.group_size = static_cast<uint16_t>(n_);
  m.incarnation = incarnation_;
  m.type = type;
  if (installed_) {
    m.installed = to_wire(config_.id);
    m.installed_primary = config_.primary;
  }
  m.sender_amnesiac = amnesiac_;
  m.sender_partitionable = options_.partitionable;
  m.promised = to_wire(promised_);
  m.delivered_upto = options_.multicast.deferred_durability ? durable_delivered_upto_ : delivered_upto_;
  for (MemberId p = 0; p < n_; ++p)
    if (p != self_ && reachable(p)) m.hears |= uint64_t{1} << p;
  return m;
}

void Membership::send(MemberId to, const wire::MembershipMessage& m) {
  // Every membership message but these three may report a claim, so it
  // waits for the disk (deferred durability); these claim nothing.
  if (m.type != wire::MembershipType::Keepalive && m.type != wire::MembershipType::Probe &&
      m.type != wire::MembershipType::ProbeReply)
    sync_needed_ = true;
  ready_.to_send.push_back(Outgoing{to, wire::encode_membership(m)});
}

void Membership::send_keepalives() {
  next_keepalive_us_ = now_us_ + options_.keepalive_us;
  wire::MembershipMessage m = header(wire::MembershipType::Keepalive);
  for (MemberId to = 0; to < n_; ++to)
    if (to != self_) send(to, m);
}

Ready Membership::take_ready() {
  pull_from_ordering();
  if (ordering_)
    for (Outgoing& o : ordering_->take_outgoing()) ready_.to_send.push_back(std::move(o));
  Ready out = std::move(ready_);
  ready_ = Ready{};
  snapshot_unapplied_ = false;  // the caller applies `out` before it calls us again
  out.marks = written_marks();
  out.sync_before_send = sync_needed_;
  for (const LogRecord& r : out.to_persist)
    if (r.kind != LogRecord::Kind::Held && r.kind != LogRecord::Kind::Staged && r.kind != LogRecord::Kind::Delivered)
      out.sync_before_send = true;
  sync_needed_ = false;
  return out;
}

bool Membership::has_ready() const {
  return !ready_.to_persist.empty() || !ready_.events.empty() || !ready_.to_send.empty() || ready_.snapshot_wanted ||
         (ordering_ && ordering_->has_output());
}

DurableMarks Membership::written_marks() const {
  DurableMarks marks;
  marks.delivered_upto = delivered_upto_;
  if (ordering_) {
    marks.ordering = config_.id;
    marks.held_upto = ordering_->held_upto();
  }
  return marks;
}

void Membership::records_durable(const DurableMarks& marks) {
  durable_delivered_upto_ = std::max(durable_delivered_upto_, std::min(marks.delivered_upto, delivered_upto_));
  if (ordering_ && !marks.ordering.none() && marks.ordering == config_.id) {
    ordering_->records_durable(marks.held_upto, marks.delivered_upto);
    pull_from_ordering();  // what that delivered is ours at once (durable_state stays whole)
  }
}

// ---- clients and leaving -------------------------------------------------------

bool Membership::can_submit() const { return primary() && ordering_ && ordering_->can_submit(); }

MessageName Membership::submit(std::string payload, uint64_t now_us) {
  now_us_ = now_us;
  MessageName name = ordering_->submit(std::move(payload), now_us);
  pull_from_ordering();
  return name;
}

void Membership::close() {
  closed_ = true;
  if (ordering_) ordering_->close();
}

// Only a member installed in a configuration can know its state is final:
// between a promise and an install (no ordering) the next configuration may
// still deliver more, and this member would leave behind the others (seen:
// a member dropped from an install after promising it exited at once with
// four deliveries fewer, and said its drain was complete).
bool Membership::done_leaving() const {
  return closed_ && ordering_ && ordering_->done_leaving();
}

void Membership::announce() {
  if (ordering_) ordering_->announce();
  send_keepalives();
}

// What this member can no longer serve to a joiner: the ordering's freed
// records, or below its claim's first record.
uint64_t Membership::freed_upto() const {
  if (ordering_) return ordering_->freed_upto();
  return claim_.empty() ? std::max(claim_upto_, delivered_upto_) : claim_.front().global_seq - 1;
}

uint64_t Membership::held_upto() const { return ordering_ ? ordering_->held_upto() : claim_upto_; }

uint64_t Membership::stable_upto() const { return ordering_ ? ordering_->stable_upto() : 0; }

std::vector<Delivery> Membership::records_to_keep() const {
  return ordering_ && !order_incomplete_ ? ordering_->records_to_keep() : claim_;
}

Restored Membership::durable_state() const {
  Restored r;
  r.delivered_upto = delivered_upto_;
  r.held = records_to_keep();
  r.claim_upto = claimed_held_upto();
  r.promised = promised_;
  r.last_primary = last_primary_;
  if (!config_.id.none()) r.last_installed = config_;
  r.install_keep = install_keep_;
  if (ordering_ && order_incomplete_)
    for (Delivery& d : ordering_->records_to_keep())
      if (d.global_seq > install_keep_) r.staged.push_back(std::move(d));
  return r;
}

}  // namespace mcast
