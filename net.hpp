// net.hpp: the small pieces of POSIX plumbing that server, client, bench and
// tests all need: HOST:PORT lists, UDP sockets, a monotonic clock, and strict
// number parsing (a typo is an error, never a silent zero).
#pragma once

#include <netinet/in.h>

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

uint64_t now_us();  // CLOCK_MONOTONIC

bool parse_i32(const std::string& s, int32_t& out);
bool parse_u64(const std::string& s, uint64_t& out);
bool parse_probability(const std::string& s, double& out);  // 0 <= p < 1

uint64_t random_u64();  // from the OS's entropy source

}  // namespace net
