// sim_test: n Multicast state machines over a simulated faulty network and a
// simulated clock, every random choice drawn from one seed. A protocol test
// of the ordering alone (phase one's all-members mode): it drives Multicast
// directly, not through Replica (group_sim_test runs whole replicas).
//
// Each run: n in 2..7; the network drops (up to 50%), duplicates, delays and
// reorders datagrams of every type, and some runs partition it for a while
// (one member isolated, two sides, a one-way cut where a member is heard
// but hears no one, a bridge where two members cannot talk but a third
// talks to both, a ring where each member hears only its neighbours).
// Phase one stalls while partitioned and must finish once healed. Members submit messages at random times, in bursts, or all at
// once. After the fault phase the network only delays, and the run must
// finish (everything delivered, every member quiescent) within a bound of
// simulated time. Checked: agreement, integrity, validity, FIFO per origin,
// k assigned only by member k mod n and only once, no message sequenced
// twice, and empty retransmit buffers at the end. In "leave" runs every
// member closes (graceful stop) while faults still rage, and exits once
// done_leaving() says its state is final, or after a 3 s timeout as the
// server does: all must end with the same deliveries.
//
// Crashes: in "crash" runs members are killed (one, several, or all at
// once) and restarted later with a larger incarnation and only what they
// persisted. Each member is driven as server.cpp drives it: the protocol's
// output is persisted (deliveries, own assignments), then its datagrams are
// sent; a crash strikes at a random point of that: part of the records
// written, or all of them and part of the datagrams sent. Datagrams still in
// flight to a crashed member reach its next life if they arrive after the
// restart, and some datagrams straggle far behind the rest. Checked on top:
// every life's deliveries agree with one common sequence; when a member
// crashes, its log holds everything its datagrams announced (how far it
// delivered, each assignment it made); every message submitted by a life
// that did not crash is delivered once every member is back.
//
//   sim_test --seeds 2000            # seeds 1..2000
//   sim_test --seed 1234 --trace     # one seed, print every event
//   sim_test --first-seed 1000000 --seeds 1000000   # an overnight run
//   sim_test --bug sequence-without-prefix --expect-violation
//   sim_test --bug send-before-persist --expect-violation   # a driver bug
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "../multicast.hpp"

using mcast::Delivery;
using mcast::MemberId;
using mcast::Multicast;

namespace {

struct Options {
  uint64_t first_seed = 1;
  uint64_t seeds = 1000;
  bool trace = false;
  bool expect_violation = false;
  mcast::InjectedBug bug = mcast::InjectedBug::None;
  // The driver's own deliberate bug: datagrams leave before the records
  // they announce are persisted (breaks the rule server.cpp keeps).
  bool send_before_persist = false;
};

// One line of a member's log, as in server.cpp's log.txt.
struct Record {
  Delivery d;
  bool assignment;  // an own assignment not yet delivered, else a delivery
};

// Datagrams on the directed links in `cut` are dropped from `from` to `to`.
struct Partition {
  uint64_t from = 0, to = 0;
  std::string shape;  // for the trace
  std::set<std::pair<MemberId, MemberId>> cut;
};

struct Crash {
  uint64_t at;          // the member crashes in its first flush at or after this
  uint64_t restart_at;  // and comes back at this time
  MemberId member;
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

struct Planned {
  uint64_t at;
  MemberId origin;
};

class Run {
 public:
  Run(uint64_t seed, const Options& opt) : seed_(seed), opt_(opt), rng_(seed) {}

  // Returns an empty string on success, else what went wrong.
  std::string execute() {
    setup();
    uint64_t now = 1000;
    const uint64_t hard_limit = fault_end_ + 5'000'000;  // 5 s of simulated calm
    for (uint64_t step = 0;; ++step) {
      std::string err = restart_due(now);
      if (!err.empty()) return err;
      deliver_network(now);
      submit_due(now);
      for (size_t i = 0; i < members_.size(); ++i)
        if (up(i) && members_[i]->next_deadline() <= now) members_[i]->tick(now);
      if (leave_) err = leave_step(now);
      if (err.empty()) err = flush(now);
      if (!err.empty()) return err;
      if (finished(now)) return final_checks();
      if (now > hard_limit || step > 50'000'000)
        return "liveness: not everything delivered 5 s after the faults stopped (t=" + std::to_string(now) + "us)";
      now = next_time(now);
    }
  }

  void print_trace() const {
    for (const std::string& line : trace_) std::fprintf(stderr, "    %s\n", line.c_str());
  }
  std::string describe() const {
    char buf[200];
    std::snprintf(buf, sizeof buf,
                  "n=%zu messages=%llu drop=%.2f dup=%.2f max_delay=%lluus partitions=%zu leave=%s crashes=%zu datagrams=%llu",
                  members_.size(), static_cast<unsigned long long>(next_payload_), drop_, dup_,
                  static_cast<unsigned long long>(max_delay_), partitions_.size(),
                  leave_ ? "yes" : "no", crashes_done_, static_cast<unsigned long long>(order_));
    return buf;
  }

 private:
  double uniform() { return std::uniform_real_distribution<double>(0, 1)(rng_); }
  uint64_t between(uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng_);
  }

  void setup() {
    size_t n = between(2, 7);
    for (size_t i = 0; i < n; ++i) view_.push_back(static_cast<MemberId>(i));
    cfg_.bug = opt_.bug;
    cfg_.max_unsequenced_own = between(1, 4);
    members_.resize(n);
    incarnation_.resize(n);
    log_.resize(n);
    announced_.resize(n);
    for (size_t i = 0; i < n; ++i) {
      incarnation_[i] = 1000 + i;
      members_[i] = std::make_unique<Multicast>(static_cast<MemberId>(i), view_, incarnation_[i], cfg_);
    }
    delivered_.resize(n);
    waiting_.resize(n);
    exited_.assign(n, false);
    close_at_.assign(n, 0);
    drop_ = uniform() * 0.5;
    dup_ = uniform() * 0.1;
    max_delay_ = between(20, 3000);
    fault_end_ = between(50'000, 400'000);
    if (uniform() < 0.4) plan_partitions(n);
    size_t count = between(1, 80);
    bool all_at_once = uniform() < 0.15;
    uint64_t t = 1000;
    for (size_t i = 0; i < count; ++i) {
      if (!all_at_once) t += uniform() < 0.2 ? between(0, 60'000) : between(0, 500);
      planned_.push_back(Planned{t, static_cast<MemberId>(between(0, n - 1))});
    }
    std::reverse(planned_.begin(), planned_.end());  // pop from the back
    straggle_ = uniform() < 0.3 ? uniform() * 0.05 : 0;
    leave_ = uniform() < 0.25;
    if (!leave_ && uniform() < 0.5) plan_crashes(n, t);
    if (leave_) {
      // Close while faults go on, some members before others.
      fault_end_ = std::max(fault_end_, t + 100'000);
      for (size_t i = 0; i < n; ++i) close_at_[i] = t + between(0, 50'000);
    }
  }

  // One to four crash events during the fault phase: a member, several, or
  // all at once; each restarts after a pause (sometimes shorter than the
  // network's delay, so its earlier life's datagrams reach the new one).
  void plan_crashes(size_t n, uint64_t last_submit) {
    size_t events = between(1, 4);
    for (size_t e = 0; e < events; ++e) {
      uint64_t at = between(1000, std::max<uint64_t>(fault_end_, last_submit));
      uint64_t down = uniform() < 0.3 ? between(0, max_delay_) : between(1000, 200'000);
      double kind = uniform();
      for (size_t i = 0; i < n; ++i) {
        bool hit = kind < 0.15 ? true : kind < 0.3 ? uniform() < 0.5 : false;
        if (hit) crashes_.push_back(Crash{at, at + down, static_cast<MemberId>(i)});
      }
      if (kind >= 0.3) crashes_.push_back(Crash{at, at + down, static_cast<MemberId>(between(0, n - 1))});
      fault_end_ = std::max(fault_end_, at + down);
    }
  }

  bool up(size_t i) const { return !exited_[i] && members_[i] != nullptr; }

  // The member's log: delivered messages (contiguous from 1) and the
  // assignments it made beyond them, as server.cpp's log.txt.
  uint64_t logged_delivered_upto(size_t i) const {
    uint64_t upto = 0;
    for (const Record& r : log_[i])
      if (!r.assignment && r.d.global_seq == upto + 1) upto = r.d.global_seq;
    return upto;
  }

  // Is it time for member i to crash? At its first flush after `at` that
  // has records to persist, where the persist-before-send window is (or,
  // if none comes, 50 ms later).
  bool crash_due(size_t i, uint64_t now, bool busy) const {
    for (const Crash& c : crashes_)
      if (c.member == i && !c.done && c.at <= now && (busy || now >= c.at + 50'000)) return true;
    return false;
  }

  // The crash itself: what the log holds must cover everything its
  // datagrams announced (the persist-before-send rule), then its memory,
  // unsent work and queued requests are gone.
  std::string crash(size_t i, uint64_t now) {
    for (Crash& c : crashes_)
      if (c.member == i && !c.done && c.at <= now) c.done = true;
    ++crashes_done_;
    uint64_t logged = logged_delivered_upto(i);
    Announced& a = announced_[i];
    if (a.delivered_upto > logged)
      return "persist before send: member " + std::to_string(i) + " announced delivering up to k=" +
             std::to_string(a.delivered_upto) + " but its log holds only up to k=" + std::to_string(logged);
    std::set<uint64_t> held;
    for (const Record& r : log_[i]) held.insert(r.d.global_seq);
    for (uint64_t k : a.assigned)
      if (!held.count(k))
        return "persist before send: member " + std::to_string(i) + " sent its assignment of k=" +
               std::to_string(k) + " but crashed with it not in its log";
    a = Announced{};
    members_[i].reset();
    for (const std::string& p : waiting_[i]) lost_.insert(p);  // its clients got no reply
    waiting_[i].clear();
    for (const auto& [payload, name] : sent_)
      if (name.origin == i && name.incarnation == incarnation_[i]) lost_.insert(payload);  // may never be delivered
    note(now, "member " + std::to_string(i) + " CRASHES (log holds k<=" + std::to_string(logged) + ")");
    return "";
  }

  // Restarts members whose time has come, as server.cpp starts: a larger
  // incarnation, the position from the log, then every logged record.
  std::string restart_due(uint64_t now) {
    for (Crash& c : crashes_) {
      if (!c.done || c.restarted || c.restart_at > now) continue;
      c.restarted = true;
      size_t i = c.member;
      if (members_[i]) continue;  // a second crash event that struck while it was down
      mcast::SequencePosition pos;
      pos.last_delivered.resize(members_.size());
      delivered_[i].clear();
      seen_[i].clear();
      fifo_[i].clear();
      // delivered_, seen_ and fifo_ restart from the log: what the earlier
      // life delivered and did not log was never applied for anyone to see.
      for (const Record& r : log_[i]) {
        const Delivery& d = r.d;
        if (r.assignment || d.global_seq != pos.delivered_upto + 1) continue;
        pos.delivered_upto = d.global_seq;
        pos.last_delivered[d.name.origin] = mcast::OriginPosition{d.name.incarnation, d.name.origin_seq};
        delivered_[i].push_back(d);
        seen_[i].insert(d.payload);
        fifo_[i][d.name.origin] = {d.name.incarnation, d.name.origin_seq};
      }
      incarnation_[i] += 100;
      members_[i] = std::make_unique<Multicast>(static_cast<MemberId>(i), view_, incarnation_[i], cfg_, pos);
      for (const Record& r : log_[i])
        if (!r.assignment || r.d.global_seq > pos.delivered_upto) members_[i]->restore_logged(r.d);
      note(now, "member " + std::to_string(i) + " restarts at k=" + std::to_string(pos.delivered_upto) +
                    " incarnation " + std::to_string(incarnation_[i]));
    }
    return "";
  }

  // Mirrors server.cpp's graceful stop: close once nothing waits to be
  // submitted; exit when done_leaving() (or after the drain timeout), with a
  // few farewell headers; an exited member neither receives nor ticks.
  std::string leave_step(uint64_t now) {
    for (size_t i = 0; i < members_.size(); ++i) {
      if (exited_[i] || now < close_at_[i] || !waiting_[i].empty()) continue;
      members_[i]->close();
      if (!members_[i]->done_leaving() && now < close_at_[i] + 3'000'000) continue;
      for (int copy = 0; copy < 5; ++copy) members_[i]->announce();
      std::string err = flush_member(i, now);
      if (!err.empty()) return err;
      exited_[i] = true;
      note(now, "member " + std::to_string(i) + " exits at k=" + std::to_string(members_[i]->delivered_upto()));
    }
    return "";
  }

  void note(uint64_t now, const std::string& what) {
    if (opt_.trace) std::fprintf(stderr, "%10llu %s\n", static_cast<unsigned long long>(now), what.c_str());
    trace_.push_back(std::to_string(now) + " " + what);
    if (trace_.size() > 40) trace_.pop_front();
  }

  // One to three partitions, each a shape over random members, for 10 to
  // 200 ms; they may overlap.
  void plan_partitions(size_t n) {
    size_t count = between(1, 3);
    for (size_t p = 0; p < count; ++p) {
      Partition part;
      part.from = between(0, fault_end_);
      part.to = part.from + between(10'000, 200'000);
      fault_end_ = std::max(fault_end_, part.to);
      auto cut_both = [&part](MemberId a, MemberId b) {
        part.cut.insert({a, b});
        part.cut.insert({b, a});
      };
      const MemberId x = static_cast<MemberId>(between(0, n - 1));
      const double shape = uniform();
      if (shape < 0.3 || n < 3) {
        part.shape = "isolate " + std::to_string(x);
        for (MemberId y = 0; y < n; ++y)
          if (y != x) cut_both(x, y);
      } else if (shape < 0.55) {
        std::vector<bool> side(n);
        for (MemberId y = 0; y < n; ++y) side[y] = uniform() < 0.5;
        side[x] = !side[(x + 1) % n];  // both sides non-empty
        part.shape = "halves {";
        for (MemberId y = 0; y < n; ++y) part.shape += side[y] ? std::to_string(y) : "";
        part.shape += "}";
        for (MemberId a = 0; a < n; ++a)
          for (MemberId b = 0; b < n; ++b)
            if (side[a] != side[b]) part.cut.insert({a, b});
      } else if (shape < 0.75) {
        part.shape = "one-way: " + std::to_string(x) + " hears no one";
        for (MemberId y = 0; y < n; ++y)
          if (y != x) part.cut.insert({y, x});
      } else if (shape < 0.9 || n < 4) {
        const MemberId c = static_cast<MemberId>((x + between(1, n - 1)) % n);
        part.shape = "bridge: " + std::to_string(x) + " and " + std::to_string(c) + " cut";
        cut_both(x, c);
      } else {
        part.shape = "ring";
        for (MemberId a = 0; a < n; ++a)
          for (MemberId b = 0; b < n; ++b)
            if ((a + 1) % n != b && (b + 1) % n != a && a != b) part.cut.insert({a, b});
      }
      note(part.from, "partition (" + part.shape + ") until t=" + std::to_string(part.to));
      partitions_.push_back(part);
    }
  }

  bool link_down(uint64_t now, MemberId a, MemberId b) const {
    for (const Partition& p : partitions_)
      if (now >= p.from && now < p.to && p.cut.count({a, b})) return true;
    return false;
  }

  void submit_due(uint64_t now) {
    while (!planned_.empty() && planned_.back().at <= now) {
      MemberId o = planned_.back().origin;
      planned_.pop_back();
      std::string payload = "m" + std::to_string(next_payload_++) + ":" + std::string(between(0, 60), 'x');
      if (uniform() < 0.05) payload.resize(wire::kMaxPayload, 'y');  // a full-size message
      waiting_[o].push_back(payload);
    }
    for (size_t o = 0; o < members_.size(); ++o) {
      while (up(o) && !waiting_[o].empty() && members_[o]->can_submit()) {
        std::string payload = waiting_[o].front();
        waiting_[o].pop_front();
        auto name = members_[o]->submit(payload, now);
        sent_[payload] = name;
        note(now, "member " + std::to_string(o) + " submits " + payload.substr(0, 8) + " as seq " +
                      std::to_string(name.origin_seq));
      }
    }
  }

  std::string flush(uint64_t now) {
    for (size_t i = 0; i < members_.size(); ++i) {
      if (!up(i)) continue;
      std::string err = flush_member(i, now);
      if (!err.empty()) return err;
    }
    return "";
  }

  // One member's output, as server.cpp handles it: persist (deliveries,
  // then own assignments beyond them), then send. A due crash strikes
  // between the two, or amid either.
  // The checks run on what leaves the member, in a record it persists or a
  // datagram it sends: what a crash wiped before either never happened.
  std::string flush_member(size_t i, uint64_t now) {
    Multicast& m = *members_[i];
    std::vector<Record> records;
    for (Delivery& d : m.take_deliveries()) records.push_back(Record{std::move(d), false});
    for (Delivery& a : m.take_new_assignments())
      if (a.global_seq > m.delivered_upto()) records.push_back(Record{std::move(a), true});
    std::vector<mcast::Outgoing> out = m.take_outgoing();
    size_t wrote = records.size(), sent = out.size();
    const bool crashing = crash_due(i, now, !records.empty());
    if (crashing) {
      // Persist before send: a crash leaves a prefix of the records written
      // and nothing sent, or all written and a prefix sent. The broken
      // driver sends first.
      bool mid_write = uniform() < 0.5;
      wrote = mid_write ? between(0, records.size()) : records.size();
      sent = mid_write ? 0 : between(0, out.size());
      if (opt_.send_before_persist) sent = out.size();
    }
    std::string err = send(i, out, sent, now);
    if (err.empty()) err = persist(i, records, wrote, now);
    if (err.empty() && crashing) err = crash(i, now);
    return err;
  }

  std::string persist(size_t i, std::vector<Record>& records, size_t count, uint64_t now) {
    for (size_t r = 0; r < count; ++r) {
      const Delivery& d = records[r].d;
      std::string err = records[r].assignment ? check_assignment(i, d.global_seq, d.name) : check_delivery(i, d, now);
      if (err.empty() && !records[r].assignment && sequencer_of(d.global_seq) == i)
        err = check_assignment(i, d.global_seq, d.name);  // assigned and delivered at once
      if (!err.empty()) return err;
      log_[i].push_back(std::move(records[r]));
    }
    return "";
  }

  size_t sequencer_of(uint64_t k) const { return k % members_.size(); }

  // Sends the first `count` datagrams through the faulty network, noting
  // what each announces (for the check at a crash) and checking each
  // assignment it carries.
  std::string send(size_t i, const std::vector<mcast::Outgoing>& out, size_t count, uint64_t now) {
    for (size_t o = 0; o < count; ++o) {
      std::string err = note_announced(i, out[o].bytes);
      if (!err.empty()) return err;
      int copies = now < fault_end_ && uniform() < dup_ ? 2 : 1;
      for (int c = 0; c < copies; ++c) {
        bool lost = now < fault_end_ && (uniform() < drop_ || link_down(now, static_cast<MemberId>(i), out[o].to));
        if (lost) continue;
        uint64_t delay = between(1, max_delay_);
        if (now < fault_end_ && uniform() < straggle_) delay += between(max_delay_, 100'000);  // a straggler
        network_.push(InFlight{now + delay, order_++, static_cast<MemberId>(i), out[o].to, out[o].bytes});
      }
    }
    return "";
  }

  std::string note_announced(size_t i, const std::string& bytes) {
    wire::PeerPacket p;
    if (!wire::decode_peer(bytes.data(), bytes.size(), p)) return "member " + std::to_string(i) + " sent an undecodable datagram";
    Announced& a = announced_[i];
    a.delivered_upto = std::max(a.delivered_upto, p.header.delivered_upto);
    for (const wire::AssignRecord& r : p.assigns) {
      std::string err = check_assignment(sequencer_of(r.global_seq), r.global_seq, r.name);
      if (!err.empty()) return err;
      if (sequencer_of(r.global_seq) == i && r.global_seq > a.delivered_upto) a.assigned.insert(r.global_seq);
    }
    a.assigned.erase(a.assigned.begin(), a.assigned.upper_bound(a.delivered_upto));
    return "";
  }

  void deliver_network(uint64_t now) {
    while (!network_.empty() && network_.top().at <= now) {
      InFlight f = network_.top();
      network_.pop();
      if (!up(f.to)) continue;  // a dead process's socket: the datagram is gone
      members_[f.to]->receive(f.from, f.bytes.data(), f.bytes.size(), now);
    }
  }

  // The k-mod-n rule, and no k and no message sequenced twice, by any life,
  // checked on every assignment that leaves a member (logged or sent; the
  // same one may leave many times).
  std::string check_assignment(size_t i, uint64_t k, const wire::MessageName& name) {
    if (sequencer_of(k) != i)
      return "sequencer rule: member " + std::to_string(i) + " assigned k=" + std::to_string(k);
    auto [known, fresh_k] = assigned_.emplace(k, name);
    if (!fresh_k && known->second != name) return "k=" + std::to_string(k) + " was assigned twice";
    auto [where, fresh_name] = sequenced_at_.emplace(name, k);
    if (!fresh_name && where->second != k)
      return "a message was sequenced twice: at k=" + std::to_string(where->second) + " and k=" + std::to_string(k);
    return "";
  }

  std::string check_delivery(size_t i, const Delivery& d, uint64_t now) {
    std::vector<Delivery>& mine = delivered_[i];
    if (d.global_seq != mine.size() + 1)
      return "member " + std::to_string(i) + " delivered k=" + std::to_string(d.global_seq) + " after k=" +
             std::to_string(mine.size());
    note(now, "member " + std::to_string(i) + " delivers k=" + std::to_string(d.global_seq) + " " + d.payload.substr(0, 8));
    mine.push_back(d);
    return check_prefix(i);
  }

  // Agreement, integrity, FIFO and the k-mod-n rule, checked at the moment
  // of delivery so a failure's trace ends where it happened.
  std::string check_prefix(size_t i) {
    const std::vector<Delivery>& mine = delivered_[i];
    const Delivery& d = mine.back();
    size_t k = mine.size();
    if (reference_.size() < k) {
      reference_.push_back(d);
      in_reference_.insert(d.payload);
    } else if (reference_[k - 1].payload != d.payload || reference_[k - 1].name != d.name) {
      return "agreement: members disagree at k=" + std::to_string(k);
    }
    auto sent = sent_.find(d.payload);
    if (sent == sent_.end()) return "integrity: delivered a message nobody sent";
    if (sent->second != d.name) return "integrity: message delivered under another name";
    if (!seen_[i].insert(d.payload).second) return "integrity: delivered twice at member " + std::to_string(i);
    auto& last = fifo_[i][d.name.origin];
    bool in_order = d.name.incarnation == last.first ? d.name.origin_seq == last.second + 1
                                                     : d.name.incarnation > last.first && d.name.origin_seq == 1;
    if (!in_order) return "fifo: origin " + std::to_string(d.name.origin) + " out of order at k=" + std::to_string(k);
    last = {d.name.incarnation, d.name.origin_seq};
    auto made = assigned_.find(k);
    if (made != assigned_.end() && made->second != d.name) return "delivered k=" + std::to_string(k) + " differs from its assignment";
    return "";
  }

  // Everything a surviving life submitted, and whatever of the crashed
  // lives' messages got sequenced, is delivered everywhere.
  bool all_delivered() const {
    for (const auto& [payload, name] : sent_)
      if (!lost_.count(payload) && !in_reference_.count(payload)) return false;
    for (const auto& d : delivered_)
      if (d.size() != reference_.size()) return false;
    return true;
  }

  bool finished(uint64_t now) const {
    if (leave_) return std::count(exited_.begin(), exited_.end(), true) == static_cast<long>(exited_.size());
    if (now < fault_end_ || !planned_.empty() || !network_.empty()) return false;
    for (const Crash& c : crashes_)
      if (!c.restarted) return false;
    for (size_t o = 0; o < members_.size(); ++o)
      if (!waiting_[o].empty() || !members_[o]->quiescent()) return false;
    return all_delivered();
  }

  std::string final_checks() {
    for (size_t i = 0; i < members_.size(); ++i) {
      if (!crashes_.empty()) {
        if (!all_delivered()) return "crash run ended with messages of surviving lives undelivered";
      } else if (delivered_[i].size() != sent_.size()) {
        return "member " + std::to_string(i) + " ended with " + std::to_string(delivered_[i].size()) +
               " deliveries of " + std::to_string(sent_.size()) + " sent";
      }
      if (leave_) continue;  // exited members keep what was in flight
      if (members_[i]->buffered_messages() != 0 || members_[i]->known_assignments() != 0)
        return "leak: member " + std::to_string(i) + " still buffers " +
               std::to_string(members_[i]->buffered_messages()) + " messages";
      if (members_[i]->stats().conflicting_assignments != 0)
        return "member " + std::to_string(i) + " saw conflicting assignments";
    }
    return "";
  }

  uint64_t next_time(uint64_t now) const {
    uint64_t next = mcast::kNever;
    if (!network_.empty()) next = std::min(next, network_.top().at);
    if (!planned_.empty()) next = std::min(next, planned_.back().at);
    for (const auto& m : members_)
      if (m) next = std::min(next, m->next_deadline());
    for (const Crash& c : crashes_) {
      // A due crash waits for a flush with records (any event brings one)
      // or, failing that, strikes 50 ms late: wake for that, not every tick.
      if (!c.done) next = std::min(next, std::max(c.at <= now ? c.at + 50'000 : c.at, now + 1));
      if (c.done && !c.restarted) next = std::min(next, c.restart_at);
    }
    for (size_t o = 0; o < members_.size(); ++o)  // waiting for the window to open
      if (!waiting_[o].empty()) next = std::min(next, now + 100);
    if (next == mcast::kNever) next = now + 10'000;  // all idle: let time pass to the end of faults
    return std::max(next, now + 1);
  }

  // What a member's datagrams said of it in its current life: how far it
  // delivered, and its own assignments above that.
  struct Announced {
    uint64_t delivered_upto = 0;
    std::set<uint64_t> assigned;
  };

  uint64_t seed_;
  Options opt_;
  std::mt19937_64 rng_;
  std::vector<MemberId> view_;
  mcast::MulticastConfig cfg_;
  std::vector<std::unique_ptr<Multicast>> members_;  // null while crashed
  std::vector<uint64_t> incarnation_;
  std::vector<std::vector<Record>> log_;  // what each member persisted
  std::vector<Announced> announced_;
  std::vector<Crash> crashes_;
  size_t crashes_done_ = 0;
  std::set<std::string> lost_;  // payloads that may never be delivered: their life crashed
  double straggle_ = 0;
  std::priority_queue<InFlight, std::vector<InFlight>, std::greater<InFlight>> network_;
  uint64_t order_ = 0;
  double drop_ = 0, dup_ = 0;
  uint64_t max_delay_ = 0, fault_end_ = 0;
  std::vector<Partition> partitions_;
  bool leave_ = false;
  std::vector<bool> exited_;
  std::vector<uint64_t> close_at_;
  std::vector<Planned> planned_;
  std::vector<std::deque<std::string>> waiting_;
  uint64_t next_payload_ = 0;
  std::map<std::string, wire::MessageName> sent_;
  std::map<uint64_t, wire::MessageName> assigned_;
  std::map<wire::MessageName, uint64_t> sequenced_at_;  // inverse of assigned_
  std::vector<std::vector<Delivery>> delivered_;
  std::vector<Delivery> reference_;  // the first delivery seen at each k
  std::set<std::string> in_reference_;
  std::map<size_t, std::set<std::string>> seen_;
  std::map<size_t, std::map<MemberId, std::pair<uint64_t, uint64_t>>> fifo_;
  std::deque<std::string> trace_;
};

void usage() {
  std::puts(
      "usage: sim_test [--seeds N] [--first-seed S] [--seed S] [--trace]\n"
      "                [--bug NAME --expect-violation]\n"
      "bugs: sequence-without-prefix, deliver-past-gap, heard-without-echo (protocol);\n"
      "      send-before-persist (the driver sends datagrams before logging what they announce)\n"
      "Runs N seeded simulations (default 1000, from seed 1). A failure prints its seed;\n"
      "`sim_test --seed S --trace` replays it event by event.");
}

bool parse(int argc, char** argv, Options& opt) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](uint64_t& out) {
      if (i + 1 >= argc) return false;
      char* end;
      out = std::strtoull(argv[++i], &end, 10);
      return *end == 0;
    };
    if (a == "--seeds") {
      if (!value(opt.seeds)) return false;
    } else if (a == "--first-seed") {
      if (!value(opt.first_seed)) return false;
    } else if (a == "--seed") {
      if (!value(opt.first_seed)) return false;
      opt.seeds = 1;
    } else if (a == "--trace") {
      opt.trace = true;
    } else if (a == "--expect-violation") {
      opt.expect_violation = true;
    } else if (a == "--bug" && i + 1 < argc) {
      std::string b = argv[++i];
      if (b == "sequence-without-prefix") opt.bug = mcast::InjectedBug::SequenceWithoutPrefix;
      else if (b == "deliver-past-gap") opt.bug = mcast::InjectedBug::DeliverPastGap;
      else if (b == "heard-without-echo") opt.bug = mcast::InjectedBug::HeardWithoutEcho;
      else if (b == "send-before-persist") opt.send_before_persist = true;
      else return false;
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!parse(argc, argv, opt)) {
    usage();
    return 2;
  }
  uint64_t failures = 0;
  for (uint64_t seed = opt.first_seed; seed < opt.first_seed + opt.seeds; ++seed) {
    Run run(seed, opt);
    std::string err = run.execute();
    if (err.empty()) continue;
    ++failures;
    if (opt.expect_violation) {
      std::printf("seed %llu (%s): caught the injected bug: %s\n", static_cast<unsigned long long>(seed),
                  run.describe().c_str(), err.c_str());
      break;
    }
    std::printf("FAIL seed %llu (%s): %s\n  replay: sim_test --seed %llu --trace\n  last events:\n",
                static_cast<unsigned long long>(seed), run.describe().c_str(), err.c_str(),
                static_cast<unsigned long long>(seed));
    std::fflush(stdout);
    run.print_trace();
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
  return failures == 0 ? 0 : 1;
}
