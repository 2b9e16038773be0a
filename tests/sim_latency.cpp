// sim_latency: what the protocol itself costs, with no operating system in
// the way. n Multicast state machines over a simulated network with a fixed
// one-way delay, optional loss, and a simulated clock; operations arrive at
// every member at random (Poisson) times and are batched as server.cpp
// batches them: a member multicasts what waits once its previous message is
// sequenced. Reported: each operation's latency from arrival to delivery at
// the member it arrived at (where its reply could leave at the earliest).
//
// Deterministic: the same flags and seed give the same figures, so it shows
// the effect of a protocol change without the noise of a busy machine.
// Real processes (tests/bench.cpp) add what the kernel costs: wake-ups,
// system calls, and processes preempted in the middle of a round of sends.
//
//   sim_latency [--members N] [--rate OPS] [--loss P] [--link-us D]
//               [--seconds S] [--seed S]
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "../multicast.hpp"
#include "../net.hpp"

namespace {

struct Options {
  int members = 3;
  uint64_t rate = 20000;  // operations a second arriving at each member
  double loss = 0;        // as the server's --loss: on send and on receive
  uint64_t link_us = 30;
  double seconds = 2;
  uint64_t seed = 1;
};

struct InFlight {
  uint64_t at, order;
  mcast::MemberId from, to;
  std::string bytes;
  bool operator>(const InFlight& o) const { return at != o.at ? at > o.at : order > o.order; }
};

class Simulation {
 public:
  explicit Simulation(const Options& o) : o_(o), rng_(o.seed), arrival_gap_(static_cast<double>(o.rate) / 1e6) {
    std::vector<mcast::MemberId> view;
    for (int i = 0; i < o.members; ++i) view.push_back(static_cast<mcast::MemberId>(i));
    for (int i = 0; i < o.members; ++i) {
      members_.push_back(std::make_unique<mcast::Multicast>(view[i], view, 1000 + i));
      next_arrival_.push_back(1000 + gap());
    }
    waiting_.resize(o.members);
    in_message_.resize(o.members);
  }

  void run() {
    const uint64_t end = 1000 + static_cast<uint64_t>(o_.seconds * 1e6);
    for (uint64_t now = 1000; now < end; now = next_time(now)) {
      while (!network_.empty() && network_.top().at <= now) {
        InFlight f = network_.top();
        network_.pop();
        if (!lost()) members_[f.to]->receive(f.from, f.bytes.data(), f.bytes.size(), now);
      }
      for (size_t i = 0; i < members_.size(); ++i) {
        arrive(i, now);
        submit(i, now);
        if (members_[i]->next_deadline() <= now) members_[i]->tick(now);
        members_[i]->take_new_assignments();  // a server would log them here; no disk is modelled
        for (mcast::Outgoing& out : members_[i]->take_outgoing()) {
          ++datagrams_;
          if (!lost())
            network_.push(InFlight{now + o_.link_us, order_++, static_cast<mcast::MemberId>(i), out.to,
                                   std::move(out.bytes)});
        }
        for (const mcast::Delivery& d : members_[i]->take_deliveries()) delivered(i, d, now);
      }
    }
  }

  void report() {
    std::sort(latency_us_.begin(), latency_us_.end());
    if (latency_us_.empty()) {
      std::printf("no operation completed\n");
      return;
    }
    uint64_t sum = 0, nacks = 0;
    for (uint64_t l : latency_us_) sum += l;
    for (const auto& m : members_) nacks += m->stats().nacks_sent;
    auto pct = [&](double p) {
      return latency_us_[std::min(latency_us_.size() - 1, static_cast<size_t>(p / 100 * latency_us_.size()))];
    };
    std::printf("%d members, %" PRIu64 " ops/s each, loss %.2f, links %" PRIu64 " us, %.1f s simulated, seed %" PRIu64
                "\n",
                o_.members, o_.rate, o_.loss, o_.link_us, o_.seconds, o_.seed);
    std::printf("%zu operations in %" PRIu64 " messages; %.2f datagrams a message; %" PRIu64 " NACK entries\n",
                latency_us_.size(), messages_, messages_ ? static_cast<double>(datagrams_) / messages_ : 0.0, nacks);
    std::printf("latency us: mean %" PRIu64 "  p50 %" PRIu64 "  p90 %" PRIu64 "  p99 %" PRIu64 "  p99.9 %" PRIu64
                "  max %" PRIu64 "\n",
                sum / latency_us_.size(), pct(50), pct(90), pct(99), pct(99.9), latency_us_.back());
  }

 private:
  uint64_t gap() { return 1 + static_cast<uint64_t>(arrival_gap_(rng_)); }
  bool lost() { return o_.loss > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < o_.loss; }

  void arrive(size_t i, uint64_t now) {
    for (; next_arrival_[i] <= now; next_arrival_[i] += gap()) waiting_[i].push_back(next_arrival_[i]);
  }

  // As server.cpp: a second message before the first is sequenced only when
  // a full batch waits (kept simple here: never).
  void submit(size_t i, uint64_t now) {
    mcast::Multicast& m = *members_[i];
    if (waiting_[i].empty() || !m.can_submit() || m.unsequenced_own() != 0) return;
    mcast::MessageName name = m.submit("batch", now);
    in_message_[i][name.origin_seq] = std::move(waiting_[i]);
    waiting_[i].clear();
    ++messages_;
  }

  void delivered(size_t i, const mcast::Delivery& d, uint64_t now) {
    if (d.name.origin != i) return;
    auto batch = in_message_[i].find(d.name.origin_seq);
    for (uint64_t arrived : batch->second) latency_us_.push_back(now - arrived);
    in_message_[i].erase(batch);
  }

  uint64_t next_time(uint64_t now) const {
    uint64_t next = now + 1000;
    if (!network_.empty()) next = std::min(next, network_.top().at);
    for (size_t i = 0; i < members_.size(); ++i) {
      next = std::min(next, next_arrival_[i]);
      next = std::min(next, members_[i]->next_deadline());
    }
    return std::max(next, now + 1);
  }

  Options o_;
  std::mt19937_64 rng_;
  std::exponential_distribution<double> arrival_gap_;
  std::vector<std::unique_ptr<mcast::Multicast>> members_;
  std::vector<uint64_t> next_arrival_;
  std::vector<std::vector<uint64_t>> waiting_;                        // arrival times
  std::vector<std::map<uint64_t, std::vector<uint64_t>>> in_message_;  // origin_seq -> arrivals
  std::priority_queue<InFlight, std::vector<InFlight>, std::greater<InFlight>> network_;
  uint64_t order_ = 0, messages_ = 0, datagrams_ = 0;
  std::vector<uint64_t> latency_us_;
};

const char* kUsage =
    "usage: sim_latency [--members N] [--rate OPS] [--loss P] [--link-us D] [--seconds S] [--seed S]\n"
    "  --members N   group size (default 3)\n"
    "  --rate OPS    operations a second arriving at each member (default 20000)\n"
    "  --loss P      drop each datagram as it is sent, and again as it is received,\n"
    "                with probability P, as the server's --loss does (default 0)\n"
    "  --link-us D   one-way delay of every datagram (default 30)\n"
    "  --seconds S   simulated seconds (default 2)\n"
    "  --seed S      seed of the arrivals and the losses (default 1)\n";

// A whole number within [lo, hi], or false.
bool number(const std::string& v, uint64_t lo, uint64_t hi, uint64_t& out) {
  uint64_t u;
  if (!net::parse_u64(v, u) || u < lo || u > hi) return false;
  out = u;
  return true;
}

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; i += 2) {
    std::string a = argv[i], v = i + 1 < argc ? argv[i + 1] : "";
    uint64_t u = 0;
    bool ok;
    if (a == "--members") {
      ok = number(v, 1, 64, u);
      o.members = static_cast<int>(u);
    } else if (a == "--rate") {
      ok = number(v, 1, 10'000'000, o.rate);
    } else if (a == "--loss") {
      ok = net::parse_probability(v, o.loss);
    } else if (a == "--link-us") {
      ok = number(v, 1, 1'000'000, o.link_us);
    } else if (a == "--seconds") {
      ok = number(v, 1, 3600, u);
      o.seconds = static_cast<double>(u);
    } else if (a == "--seed") {
      ok = net::parse_u64(v, o.seed);
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr, "sim_latency: bad option or value: %s %s\n", a.c_str(), v.c_str());
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (argc > 1 && (std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!parse(argc, argv, o)) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  Simulation sim(o);
  sim.run();
  sim.report();
  return 0;
}
