// sim_test: n Multicast state machines over a simulated faulty network and a
// simulated clock, every random choice drawn from one seed.
//
// Each run: n in 2..7; the network drops (up to 50%), duplicates, delays and
// reorders datagrams of every type, and some runs silence one member's links
// for a while. Members submit messages at random times, in bursts, or all at
// once. After the fault phase the network only delays, and the run must
// finish (everything delivered, every member quiescent) within a bound of
// simulated time. Checked: agreement, integrity, validity, FIFO per origin,
// k assigned only by member k mod n and only once, no message sequenced
// twice, and empty retransmit buffers at the end. In "leave" runs every
// member closes (graceful stop) while faults still rage, and exits once
// done_leaving() says its state is final, or after a 3 s timeout as the
// server does: all must end with the same deliveries.
//
//   sim_test --seeds 2000            # seeds 1..2000
//   sim_test --seed 1234 --trace     # one seed, print every event
//   sim_test --first-seed 1000000 --seeds 1000000   # an overnight run
//   sim_test --bug sequence-without-prefix --expect-violation
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
      deliver_network(now);
      submit_due(now);
      for (size_t i = 0; i < members_.size(); ++i)
        if (!exited_[i] && members_[i]->next_deadline() <= now) members_[i]->tick(now);
      if (leave_) leave_step(now);
      flush(now);
      std::string err = collect_deliveries();
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
                  "n=%zu messages=%llu drop=%.2f dup=%.2f max_delay=%lluus burst=%s leave=%s datagrams=%llu",
                  members_.size(), static_cast<unsigned long long>(next_payload_), drop_, dup_,
                  static_cast<unsigned long long>(max_delay_), burst_member_ >= 0 ? "yes" : "no",
                  leave_ ? "yes" : "no", static_cast<unsigned long long>(order_));
    return buf;
  }

 private:
  double uniform() { return std::uniform_real_distribution<double>(0, 1)(rng_); }
  uint64_t between(uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng_);
  }

  void setup() {
    size_t n = between(2, 7);
    std::vector<MemberId> view;
    for (size_t i = 0; i < n; ++i) view.push_back(static_cast<MemberId>(i));
    mcast::MulticastConfig cfg;
    cfg.record_assignments = true;
    cfg.bug = opt_.bug;
    cfg.max_unsequenced_own = between(1, 4);
    for (size_t i = 0; i < n; ++i)
      members_.push_back(std::make_unique<Multicast>(static_cast<MemberId>(i), view,
                                                     /*incarnation=*/1000 + i, cfg));
    delivered_.resize(n);
    waiting_.resize(n);
    exited_.assign(n, false);
    close_at_.assign(n, 0);
    drop_ = uniform() * 0.5;
    dup_ = uniform() * 0.1;
    max_delay_ = between(20, 3000);
    fault_end_ = between(50'000, 400'000);
    if (uniform() < 0.3) {
      burst_member_ = static_cast<int>(between(0, n - 1));
      burst_from_ = between(0, fault_end_);
      burst_to_ = burst_from_ + between(10'000, 200'000);
      fault_end_ = std::max(fault_end_, burst_to_);
    }
    size_t count = between(1, 80);
    bool all_at_once = uniform() < 0.15;
    uint64_t t = 1000;
    for (size_t i = 0; i < count; ++i) {
      if (!all_at_once) t += uniform() < 0.2 ? between(0, 60'000) : between(0, 500);
      planned_.push_back(Planned{t, static_cast<MemberId>(between(0, n - 1))});
    }
    std::reverse(planned_.begin(), planned_.end());  // pop from the back
    leave_ = uniform() < 0.25;
    if (leave_) {
      // Close while faults go on, some members before others.
      fault_end_ = std::max(fault_end_, t + 100'000);
      for (size_t i = 0; i < n; ++i) close_at_[i] = t + between(0, 50'000);
    }
  }

  // Mirrors server.cpp's graceful stop: close once nothing waits to be
  // submitted; exit when done_leaving() (or after the drain timeout), with a
  // few farewell headers; an exited member neither receives nor ticks.
  void leave_step(uint64_t now) {
    for (size_t i = 0; i < members_.size(); ++i) {
      if (exited_[i] || now < close_at_[i] || !waiting_[i].empty()) continue;
      members_[i]->close();
      if (!members_[i]->done_leaving() && now < close_at_[i] + 3'000'000) continue;
      for (int copy = 0; copy < 5; ++copy) members_[i]->announce();
      flush_member(i, now);
      exited_[i] = true;
      note(now, "member " + std::to_string(i) + " exits at k=" + std::to_string(members_[i]->delivered_upto()));
    }
  }

  void note(uint64_t now, const std::string& what) {
    if (opt_.trace) std::fprintf(stderr, "%10llu %s\n", static_cast<unsigned long long>(now), what.c_str());
    trace_.push_back(std::to_string(now) + " " + what);
    if (trace_.size() > 40) trace_.pop_front();
  }

  bool link_down(uint64_t now, MemberId a, MemberId b) const {
    return burst_member_ >= 0 && now >= burst_from_ && now < burst_to_ &&
           (a == burst_member_ || b == burst_member_);
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
      while (!waiting_[o].empty() && members_[o]->can_submit()) {
        std::string payload = waiting_[o].front();
        waiting_[o].pop_front();
        auto name = members_[o]->submit(payload, now);
        sent_[payload] = name;
        note(now, "member " + std::to_string(o) + " submits " + payload.substr(0, 8) + " as seq " +
                      std::to_string(name.origin_seq));
      }
    }
  }

  void flush(uint64_t now) {
    for (size_t i = 0; i < members_.size(); ++i)
      if (!exited_[i]) flush_member(i, now);
  }

  void flush_member(size_t i, uint64_t now) {
    {
      auto& m = members_[i];
      for (auto& out : m->take_outgoing()) {
        int copies = now < fault_end_ && uniform() < dup_ ? 2 : 1;
        for (int c = 0; c < copies; ++c) {
          bool lost = now < fault_end_ && (uniform() < drop_ || link_down(now, m->self(), out.to));
          if (lost) continue;
          network_.push(InFlight{now + between(1, max_delay_), order_++, m->self(), out.to, out.bytes});
        }
      }
    }
  }

  void deliver_network(uint64_t now) {
    while (!network_.empty() && network_.top().at <= now) {
      InFlight f = network_.top();
      network_.pop();
      if (exited_[f.to]) continue;
      members_[f.to]->receive(f.from, f.bytes.data(), f.bytes.size(), now);
    }
  }

  std::string collect_deliveries() {
    for (size_t i = 0; i < members_.size(); ++i) {
      for (auto& [k, name] : members_[i]->take_assignments_made()) {
        if (k % members_.size() != i)
          return "sequencer rule: member " + std::to_string(i) + " assigned k=" + std::to_string(k);
        if (!assigned_.emplace(k, name).second)
          return "k=" + std::to_string(k) + " was assigned twice";
        auto [where, fresh] = sequenced_at_.emplace(name, k);
        if (!fresh)
          return "a message was sequenced twice: at k=" + std::to_string(where->second) + " and k=" + std::to_string(k);
      }
      for (Delivery& d : members_[i]->take_deliveries()) {
        std::vector<Delivery>& mine = delivered_[i];
        if (d.global_seq != mine.size() + 1)
          return "member " + std::to_string(i) + " delivered k=" + std::to_string(d.global_seq) +
                 " after k=" + std::to_string(mine.size());
        note(0, "member " + std::to_string(i) + " delivers k=" + std::to_string(d.global_seq) + " " +
                    d.payload.substr(0, 8));
        mine.push_back(d);
        std::string err = check_prefix(i);
        if (!err.empty()) return err;
      }
    }
    return "";
  }

  // Agreement, integrity, FIFO and the k-mod-n rule, checked at the moment
  // of delivery so a failure's trace ends where it happened.
  std::string check_prefix(size_t i) {
    const std::vector<Delivery>& mine = delivered_[i];
    const Delivery& d = mine.back();
    size_t k = mine.size();
    if (reference_.size() < k) {
      reference_.push_back(d);
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

  bool finished(uint64_t now) const {
    if (leave_) return std::count(exited_.begin(), exited_.end(), true) == static_cast<long>(exited_.size());
    if (now < fault_end_ || !planned_.empty() || !network_.empty()) return false;
    for (size_t o = 0; o < members_.size(); ++o)
      if (!waiting_[o].empty() || !members_[o]->quiescent()) return false;
    for (const auto& d : delivered_)
      if (d.size() != sent_.size()) return false;
    return true;
  }

  std::string final_checks() {
    for (size_t i = 0; i < members_.size(); ++i) {
      if (delivered_[i].size() != sent_.size())
        return "member " + std::to_string(i) + " ended with " + std::to_string(delivered_[i].size()) +
               " deliveries of " + std::to_string(sent_.size()) + " sent";
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
    for (const auto& m : members_) next = std::min(next, m->next_deadline());
    for (size_t o = 0; o < members_.size(); ++o)  // waiting for the window to open
      if (!waiting_[o].empty()) next = std::min(next, now + 100);
    if (next == mcast::kNever) next = now + 10'000;  // all idle: let time pass to the end of faults
    return std::max(next, now + 1);
  }

  uint64_t seed_;
  Options opt_;
  std::mt19937_64 rng_;
  std::vector<std::unique_ptr<Multicast>> members_;
  std::priority_queue<InFlight, std::vector<InFlight>, std::greater<InFlight>> network_;
  uint64_t order_ = 0;
  double drop_ = 0, dup_ = 0;
  uint64_t max_delay_ = 0, fault_end_ = 0;
  int burst_member_ = -1;
  bool leave_ = false;
  std::vector<bool> exited_;
  std::vector<uint64_t> close_at_;
  uint64_t burst_from_ = 0, burst_to_ = 0;
  std::vector<Planned> planned_;
  std::vector<std::deque<std::string>> waiting_;
  uint64_t next_payload_ = 0;
  std::map<std::string, wire::MessageName> sent_;
  std::map<uint64_t, wire::MessageName> assigned_;
  std::map<wire::MessageName, uint64_t> sequenced_at_;  // inverse of assigned_
  std::vector<std::vector<Delivery>> delivered_;
  std::vector<Delivery> reference_;  // the first delivery seen at each k
  std::map<size_t, std::set<std::string>> seen_;
  std::map<size_t, std::map<MemberId, std::pair<uint64_t, uint64_t>>> fifo_;
  std::deque<std::string> trace_;
};

void usage() {
  std::puts(
      "usage: sim_test [--seeds N] [--first-seed S] [--seed S] [--trace]\n"
      "                [--bug sequence-without-prefix|deliver-past-gap --expect-violation]\n"
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
