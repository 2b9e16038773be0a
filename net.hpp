// net.hpp: the small pieces of POSIX plumbing that server, client, bench and
// tests all need: HOST:PORT lists, UDP sockets, a monotonic clock, and strict
// number parsing (a typo is an error, never a silent zero); and the small
// timing policies of the event loops: a client's retry timer and choice of
// server, and when a server spins rather than sleeps.
#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace net {

struct Endpoint {
  std::string text;  // as the user wrote it, for messages
  sockaddr_in addr{};
};

// "HOST:PORT,HOST:PORT,...". IPv4 addresses or names that resolve to one.
bool parse_endpoints(const std::string& list, std::vector<Endpoint>& out, std::string& error);
bool same_address(const sockaddr_in& a, const sockaddr_in& b);
std::string to_string(const sockaddr_in& a);

// A non-blocking UDP socket bound to `addr` (port 0 picks a free one).
int open_udp(const sockaddr_in& addr, std::string& error);
sockaddr_in local_address(int fd);
bool send_to(int fd, const std::string& bytes, const sockaddr_in& to);

// A non-blocking UDP socket on a port the kernel picks, connected to `to`
// (./client keeps one per server). On a connected socket the OS reports
// what an unconnected one keeps to itself: a datagram refused at the other
// end (ICMP port unreachable: nothing listens there) makes the next send or
// receive on the socket fail with ECONNREFUSED, and the socket receives only
// what comes from `to`. (On Linux the error comes with the datagram's send
// when the refusal is local, and a round-trip later for another host.)
int open_connected_udp(const sockaddr_in& to, std::string& error);
// Sends on a connected socket; false with `error` set to errno if the
// datagram was not sent (a send that fails with a refusal reports an
// earlier datagram's and sends nothing).
bool send_connected(int fd, const std::string& bytes, int& error);
// Takes (and clears) the socket's pending error, 0 if none (SO_ERROR).
int take_socket_error(int fd);
// An error that says a datagram was not delivered to any socket at its
// address: ECONNREFUSED (nothing listens on the port), EHOSTUNREACH,
// ENETUNREACH (it never reached the host).
bool undelivered_error(int error);

uint64_t now_us();  // CLOCK_MONOTONIC
uint64_t wall_clock_ms();  // CLOCK_REALTIME, in milliseconds since 1970

bool parse_i32(const std::string& s, int32_t& out);
bool parse_u64(const std::string& s, uint64_t& out);
bool parse_probability(const std::string& s, double& out);  // 0 <= p < 1

uint64_t random_u64();  // from the OS's entropy source

// The sends of one request. Its tries are numbered 0, 1, 2, ..., and a
// reply echoes the number of the try it answers. 32 bits never run out: a
// call of ./client lasts at most 300 s, and 2^32 tries, even at one a
// microsecond, would take over an hour.
struct Tries {
  uint32_t count = 0;
  uint64_t first_sent_us = 0, latest_sent_us = 0;
  uint32_t next_attempt() const { return count; }
  void sent(uint64_t now_us);
};

// How a client sends a request, shared by ./client and the benchmark.
// When to send it again: TCP's estimator (RFC 6298): smoothed round-trip
// time plus four deviations, kept within [1 ms, 200 ms], and doubled for
// each further silent try, up to 4 times the base. Short enough that a lost
// datagram costs a few milliseconds, not a second. Because replies echo the
// try they answer, a slow reply that arrives after a retry still counts as
// a sample; were such calls left out (Karn's rule), the estimate would learn
// only from the fast calls, retry too early under load, and add load.
// How many copies to send: two while the last reply said its replica is
// repairing heavy loss (wire::Reply::lossy), else one. With independent
// losses at rate p both copies are lost with p*p, so far fewer requests
// wait out a retry timeout; a clean network never pays for the copy.
class RetryPolicy {
 public:
  uint64_t timeout_us(int silent_tries) const;
  // A reply to `tries` that answers try number `answered`. The first and
  // the latest try are timed; a reply to one in between is no clean sample.
  void on_reply(const Tries& tries, uint32_t answered, bool lossy, uint64_t now_us);
  int copies() const { return lossy_ ? 2 : 1; }

 private:
  void sample(uint64_t rtt_us);
  double srtt_us_ = 0, rttvar_us_ = 0;
  bool lossy_ = false;
};

// Which server a client asks (./client and the benchmark's clients). It
// stays with one until told to move on, then takes the next in the list,
// passing over those it left for silence in the last remember_us (a dead
// replica stays dead for a while, and coming round to it again costs a
// whole silent second), unless every other one is such: then the one left
// longest ago, since a restarted replica, or one whose view change has
// ended, may answer again.
class ServerRotation {
 public:
  explicit ServerRotation(size_t servers = 1, size_t first = 0, uint64_t remember_us = 5'000'000);
  size_t current() const { return current_; }
  // The current server answered: it is not silent.
  void answered() { left_silent_at_[current_] = 0; }
  // The current server was silent too long: remember it, and move on.
  void leave_silent(uint64_t now_us);
  // Move on from a server that answered (say, "not in a majority").
  void leave(uint64_t now_us);

 private:
  std::vector<uint64_t> left_silent_at_;  // per server; 0: not left for silence lately
  size_t current_;
  uint64_t remember_us_;
};

// When a server's event loop should spin (poll without sleeping) rather
// than sleep until its next datagram. Every hop of a call wakes a process
// that was asleep, and on a virtual machine a CPU that went idle is halted:
// waking it costs the hypervisor 10-20 us, most of a hop on loopback
// (README, "What limits each figure"). A replica that keeps polling for a
// short window after each datagram it reads sees the next one at once.
//
// Spinning costs CPU that other processes may need, so it is only done
// while it pays: clients are being served (a batch was delivered within
// kQuietUs: an idle cluster's keepalives start no spin), the load is light
// (the batches delivered lately averaged at most kLightLoadOps operations;
// under heavy load, batching already spreads each wake-up over many
// operations, and a spinning replica would take a CPU from the ones with
// work), and at least 9 in 10 recent spins saw a datagram arrive within
// the window. After that last rule stops it, one spin every kProbeUs tells
// whether spinning pays again. A window of 0, or a machine with one CPU,
// never spins. The caller does the polling; this
// class only decides, so it has no clock or socket of its own.
class IdleSpin {
 public:
  static constexpr double kLightLoadOps = 2.0;
  static constexpr double kMinHitRate = 0.9;
  static constexpr uint64_t kProbeUs = 10'000;
  static constexpr uint64_t kQuietUs = 10'000;

  IdleSpin(uint64_t window_us, unsigned cpus);
  void datagrams_read(uint64_t now_us) { last_datagram_us_ = now_us; }
  void batch_delivered(size_t ops, uint64_t now_us);
  // Until when to spin before sleeping (never past `deadline_us`, the
  // loop's next timer), or 0: sleep now.
  uint64_t spin_until(uint64_t now_us, uint64_t deadline_us) const;
  // A spin ended at now_us; `arrived`: it ended because a datagram (or a
  // signal) came. One that ended at the window's end without one is a miss.
  void spin_ended(uint64_t now_us, bool arrived);
  uint64_t spins() const { return spins_; }
  uint64_t hits() const { return hits_; }

 private:
  uint64_t window_us_;
  uint64_t last_datagram_us_ = 0;
  uint64_t last_spin_us_ = 0;
  uint64_t last_batch_us_ = 0;  // 0: none yet
  double ops_per_batch_ = 1;  // moving averages, each sample weighing 1/16
  double hit_rate_ = 1;
  uint64_t spins_ = 0, hits_ = 0;
};

}  // namespace net
