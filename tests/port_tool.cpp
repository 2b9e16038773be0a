// port_tool: UDP ports for the shell tests, which cannot bind a socket
// themselves (bash can only connect one).
//
//   port_tool free COUNT SEED   print P such that 127.0.0.1:P .. P+COUNT-1 are
//                               free now, all below the kernel's ephemeral range
//   port_tool hold PORT SECONDS bind 127.0.0.1:PORT, print "holding PORT", and
//                               keep it for SECONDS (or until killed)
//
// Why below the ephemeral range: the kernel hands ports from that range to
// every socket bound to port 0 (every ./client, every test harness), so a
// range inside it could be taken between our check and our servers' bind,
// or between a stop and a restart. Below it, only a program that names the
// port can take it, and SEED (a test's printed seed) keeps two parallel
// runs of the same test apart.
#include <arpa/inet.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "../net.hpp"

namespace {

int usage() {
  std::fprintf(stderr, "usage: port_tool free COUNT SEED | port_tool hold PORT SECONDS\n");
  return 2;
}

sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  return a;
}

bool all_free(int first, int count) {
  std::vector<int> fds;
  bool ok = true;
  for (int p = first; ok && p < first + count; ++p) {
    std::string error;
    int fd = net::open_udp(loopback(p), error);
    if (fd < 0) ok = false;
    else fds.push_back(fd);
  }
  for (int fd : fds) ::close(fd);
  return ok;
}

int free_range(int count, uint64_t seed) {
  int ephemeral_low = 32768;  // Linux's default, if /proc does not say
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  range >> ephemeral_low;
  const int lowest = 10000;
  if (count < 1 || ephemeral_low - count <= lowest) return -1;
  std::mt19937_64 rng(seed);
  for (int attempt = 0; attempt < 200; ++attempt) {
    int first = lowest + static_cast<int>(rng() % static_cast<uint64_t>(ephemeral_low - count - lowest));
    if (all_free(first, count)) return first;
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) return usage();
  std::string what = argv[1];
  int32_t a;
  uint64_t b;
  if (!net::parse_i32(argv[2], a) || !net::parse_u64(argv[3], b)) return usage();
  if (what == "free") {
    int first = free_range(a, b);
    if (first < 0) {
      std::fprintf(stderr, "port_tool: found no %d free ports in a row\n", a);
      return 1;
    }
    std::printf("%d\n", first);
    return 0;
  }
  if (what == "hold") {
    std::string error;
    if (a < 1 || a > 65535 || net::open_udp(loopback(a), error) < 0) {
      std::fprintf(stderr, "port_tool: %s\n", error.empty() ? "bad port" : error.c_str());
      return 1;
    }
    std::printf("holding %d\n", a);
    std::fflush(stdout);
    ::sleep(static_cast<unsigned>(b));
    return 0;
  }
  return usage();
}
