// net.cpp: see net.hpp.
#include "net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <algorithm>
#include <random>

namespace net {

namespace {

bool resolve(const std::string& host, uint16_t port, sockaddr_in& out, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    error = "cannot resolve host '" + host + "': " + ::gai_strerror(rc);
    return false;
  }
  out = *reinterpret_cast<sockaddr_in*>(res->ai_addr);
  out.sin_port = htons(port);
  ::freeaddrinfo(res);
  return true;
}

}  // namespace

bool parse_endpoints(const std::string& list, std::vector<Endpoint>& out, std::string& error) {
  out.clear();
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string::npos) comma = list.size();
    std::string item = list.substr(start, comma - start);
    size_t colon = item.rfind(':');
    uint64_t port = 0;
    if (colon == std::string::npos || colon == 0 || !parse_u64(item.substr(colon + 1), port) ||
        port == 0 || port > 65535) {
      error = "'" + item + "' is not HOST:PORT (port 1-65535)";
      return false;
    }
    Endpoint e;
    e.text = item;
    if (!resolve(item.substr(0, colon), static_cast<uint16_t>(port), e.addr, error)) return false;
    out.push_back(e);
    start = comma + 1;
  }
  return true;
}

bool same_address(const sockaddr_in& a, const sockaddr_in& b) {
  return a.sin_addr.s_addr == b.sin_addr.s_addr && a.sin_port == b.sin_port;
}

std::string to_string(const sockaddr_in& a) {
  char buf[INET_ADDRSTRLEN] = "?";
  ::inet_ntop(AF_INET, &a.sin_addr, buf, sizeof buf);
  return std::string(buf) + ":" + std::to_string(ntohs(a.sin_port));
}

int open_udp(const sockaddr_in& addr, std::string& error) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  // Large buffers ride out bursts; the kernel may cap them, which is fine.
  int size = 4 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    error = "cannot bind " + to_string(addr) + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

sockaddr_in local_address(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return a;
}

bool send_to(int fd, const std::string& bytes, const sockaddr_in& to) {
  for (;;) {
    ssize_t n = ::sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                         sizeof to);
    if (n >= 0) return true;
    if (errno != EINTR) return false;  // EAGAIN: buffer full, the datagram is lost like any other
  }
}

int open_connected_udp(const sockaddr_in& to, std::string& error) {
  sockaddr_in any{};
  any.sin_family = AF_INET;
  int fd = open_udp(any, error);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
    error = "cannot connect a UDP socket to " + to_string(to) + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_connected(int fd, const std::string& bytes, int& error) {
  for (;;) {
    if (::send(fd, bytes.data(), bytes.size(), 0) >= 0) return true;
    if (errno != EINTR) {
      error = errno;
      return false;
    }
  }
}

int take_socket_error(int fd) {
  int error = 0;
  socklen_t len = sizeof error;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0) return 0;
  return error;
}

bool undelivered_error(int error) { return error == ECONNREFUSED || error == EHOSTUNREACH || error == ENETUNREACH; }

uint64_t now_us() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

uint64_t wall_clock_ms() {
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}

bool parse_i32(const std::string& s, int32_t& out) {
  if (s.empty() || s.size() > 12) return false;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || *end != 0 || end == s.c_str() || v < INT32_MIN || v > INT32_MAX) return false;
  if (s[0] == ' ' || s[0] == '+') return false;
  out = static_cast<int32_t>(v);
  return true;
}

bool parse_u64(const std::string& s, uint64_t& out) {
  if (s.empty() || s[0] < '0' || s[0] > '9') return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (errno != 0 || *end != 0) return false;
  out = v;
  return true;
}

bool parse_probability(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (*end != 0 || !std::isfinite(v) || v < 0 || v >= 1) return false;
  out = v;
  return true;
}

uint64_t RetryPolicy::timeout_us(int silent_tries) const {
  double base = srtt_us_ == 0 ? 20000 : srtt_us_ + 4 * rttvar_us_;
  base = std::min(std::max(base, 1000.0), 200000.0);
  return static_cast<uint64_t>(base * (1u << std::min(silent_tries, 2)));
}

void Tries::sent(uint64_t now_us) {
  if (count == 0) first_sent_us = now_us;
  latest_sent_us = now_us;
  ++count;
}

void RetryPolicy::on_reply(const Tries& tries, uint32_t answered, bool lossy, uint64_t now_us) {
  lossy_ = lossy;
  if (answered == 0) {
    sample(now_us - tries.first_sent_us);
  } else if (answered + 1 == tries.count) {
    sample(now_us - tries.latest_sent_us);
  }
}

void RetryPolicy::sample(uint64_t rtt_us) {
  double r = static_cast<double>(rtt_us);
  if (srtt_us_ == 0) {
    srtt_us_ = r;
    rttvar_us_ = r / 2;
  } else {
    rttvar_us_ = 0.75 * rttvar_us_ + 0.25 * std::fabs(srtt_us_ - r);
    srtt_us_ = 0.875 * srtt_us_ + 0.125 * r;
  }
}

uint64_t random_u64() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

ServerRotation::ServerRotation(size_t servers, size_t first, uint64_t remember_us)
    : left_silent_at_(std::max<size_t>(servers, 1), 0), current_(first % std::max<size_t>(servers, 1)),
      remember_us_(remember_us) {}

void ServerRotation::leave_silent(uint64_t now_us) {
  left_silent_at_[current_] = std::max<uint64_t>(now_us, 1);
  leave(now_us);
}

void ServerRotation::leave(uint64_t now_us) {
  const size_t n = left_silent_at_.size();
  size_t oldest = (current_ + 1) % n;
  for (size_t step = 1; step < n; ++step) {
    const size_t i = (current_ + step) % n;
    if (left_silent_at_[i] == 0 || now_us >= left_silent_at_[i] + remember_us_) {
      current_ = i;
      return;
    }
    if (left_silent_at_[i] < left_silent_at_[oldest]) oldest = i;
  }
  current_ = oldest;
}

IdleSpin::IdleSpin(uint64_t window_us, unsigned cpus) : window_us_(cpus > 1 ? window_us : 0) {}

void IdleSpin::batch_delivered(size_t ops, uint64_t now_us) {
  ops_per_batch_ += (static_cast<double>(ops) - ops_per_batch_) / 16;
  last_batch_us_ = now_us;
}

uint64_t IdleSpin::spin_until(uint64_t now_us, uint64_t deadline_us) const {
  if (window_us_ == 0 || last_batch_us_ == 0 || now_us >= last_batch_us_ + kQuietUs) return 0;
  if (ops_per_batch_ > kLightLoadOps) return 0;
  if (hit_rate_ < kMinHitRate && now_us < last_spin_us_ + kProbeUs) return 0;
  const uint64_t until = std::min(last_datagram_us_ + window_us_, deadline_us);
  return until > now_us ? until : 0;
}

void IdleSpin::spin_ended(uint64_t now_us, bool arrived) {
  ++spins_;
  last_spin_us_ = now_us;
  if (arrived) ++hits_;
  // Cut short by the loop's timer: says nothing about whether it pays.
  if (!arrived && now_us < last_datagram_us_ + window_us_) return;
  hit_rate_ += ((arrived ? 1.0 : 0.0) - hit_rate_) / 16;
}

}  // namespace net
