// bad_input_test: malformed input never crashes, never changes state.
//
//   bad_input_test decoder [--iterations N]
//       Randomised, in process (meant to run under ASan/UBSan too): valid
//       encodings must round-trip; random, truncated, bit-flipped and oversized
//       bytes must be rejected by every decoder without undefined behaviour; a
//       Multicast fed a datagram it cannot decode, and an FTQueue given a
//       snapshot it cannot parse, must be left exactly as they were.
//   bad_input_test cluster --server BIN --client BIN
//       A real cluster gets thousands of malformed datagrams (random bytes,
//       truncated and oversized real messages, wrong kinds, impossible
//       sequence numbers, forged member ids from non-member addresses, and
//       garbage from the members' own addresses) while a client works:
//       no crash, no wrong answer, and the final state is exactly the
//       client's doing.
// Seeded (printed); FTQ_SEED=<seed> replays.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../ftqueue.hpp"
#include "../multicast.hpp"
#include "../net.hpp"
#include "../wire.hpp"
#include "harness.hpp"

namespace {

using Rng = std::mt19937_64;

uint64_t pick(Rng& r, uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(r); }

std::string random_bytes(Rng& r, size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(r());
  return s;
}

wire::MessageName random_name(Rng& r, uint16_t n) {
  return wire::MessageName{static_cast<uint16_t>(pick(r, 0, n - 1)), pick(r, 1, 3), pick(r, 1, 50)};
}

wire::PeerPacket random_packet(Rng& r, uint16_t sender, uint16_t n) {
  wire::PeerPacket p;
  p.header.sender = sender;
  p.header.group_size = n;
  p.header.incarnation = pick(r, 1, 3);
  p.header.own_highwater = pick(r, 0, 50);
  p.header.closed = r() % 2 == 0;
  p.header.assigned_upto = pick(r, 0, 60);
  p.header.assigned_contiguous = pick(r, 0, p.header.assigned_upto);
  p.header.delivered_upto = pick(r, 0, p.header.assigned_contiguous);
  for (uint64_t i = pick(r, 0, 3); i > 0; --i) p.data.push_back({random_name(r, n), random_bytes(r, pick(r, 0, 100))});
  for (uint64_t i = pick(r, 0, 3); i > 0; --i) p.assigns.push_back({pick(r, 1, 60), random_name(r, n)});
  for (uint64_t i = pick(r, 0, 2); i > 0; --i) p.nack_data.push_back(random_name(r, n));
  for (uint64_t i = pick(r, 0, 2); i > 0; --i) {
    uint64_t from = pick(r, 1, 60);
    p.nack_assign.push_back({from, from + pick(r, 0, 5)});
  }
  p.has_status = r() % 2 == 0;
  p.want_reply = p.has_status && r() % 2 == 0;
  if (p.data.empty() && p.assigns.empty() && p.nack_data.empty() && p.nack_assign.empty()) p.has_status = true;
  return p;
}

wire::Operation random_op(Rng& r) {
  wire::Operation op;
  op.client_id = r();
  op.request_no = pick(r, 1, 1000);
  op.op = static_cast<wire::OpCode>(pick(r, 1, 7));
  op.arg = static_cast<int32_t>(r());
  op.item = static_cast<int32_t>(r());
  return op;
}

bool same_op(const wire::Operation& a, const wire::Operation& b) {
  return a.client_id == b.client_id && a.request_no == b.request_no && a.op == b.op && a.arg == b.arg &&
         a.item == b.item;
}

std::string mutate(Rng& r, std::string s) {
  switch (pick(r, 0, 4)) {
    case 0: return random_bytes(r, pick(r, 0, 200));
    case 1: return s.substr(0, pick(r, 0, s.size()));  // truncated
    case 2:  // bit flips
      for (uint64_t i = pick(r, 1, 4); i > 0 && !s.empty(); --i) s[pick(r, 0, s.size() - 1)] ^= static_cast<char>(1 << pick(r, 0, 7));
      return s;
    case 3: return s + random_bytes(r, pick(r, 1, 20));  // trailing junk
    default: return s + random_bytes(r, wire::kMaxDatagram + pick(r, 1, 2000));  // oversized
  }
}

// What a Multicast shows from outside; must not move on undecodable input.
std::string observe(const mcast::Multicast& m) {
  return std::to_string(m.delivered_upto()) + "/" + std::to_string(m.stable_upto()) + "/" +
         std::to_string(m.buffered_messages()) + "/" + std::to_string(m.known_assignments()) + "/" +
         std::to_string(m.quiescent()) + "/" + std::to_string(m.next_deadline());
}

int decoder_test(uint64_t seed, uint64_t iterations) {
  Rng r(seed);
  const uint16_t n = 3;
  mcast::Multicast member(0, {0, 1, 2}, 1, mcast::MulticastConfig{});
  FTQueue state;
  for (int i = 0; i < 200; ++i) {  // a state with some content, for snapshots
    wire::Operation op = random_op(r);
    op.arg = static_cast<int32_t>(pick(r, 1, 5));
    state.apply(mcast::Delivery{static_cast<uint64_t>(i + 1), {1, 1, static_cast<uint64_t>(i + 1)},
                                wire::encode_batch({wire::BatchedOp{op, {}}})});
  }
  const std::string snapshot = state.render_snapshot();
  uint64_t rejected = 0, roundtrips = 0;
  for (uint64_t it = 0; it < iterations; ++it) {
    // Round trips of valid encodings.
    wire::PeerPacket p = random_packet(r, 1, n);
    std::vector<std::string> datagrams = wire::encode_peer(p);
    wire::PeerPacket back;
    bool ok = datagrams.size() == 1 && wire::decode_peer(datagrams[0].data(), datagrams[0].size(), back) &&
              back.data.size() == p.data.size() && back.assigns.size() == p.assigns.size() &&
              back.header.assigned_upto == p.header.assigned_upto && back.header.closed == p.header.closed &&
              back.want_reply == p.want_reply;
    CHECK(ok, "peer packet round trip failed at iteration " + std::to_string(it));
    wire::Operation op = random_op(r), op_back;
    uint32_t attempt = static_cast<uint32_t>(r()), attempt_back = 0;
    std::string req = wire::encode_request(op, attempt);
    CHECK(wire::decode_request(req.data(), req.size(), op_back, attempt_back) && same_op(op, op_back) &&
              attempt == attempt_back,
          std::string("request round trip"));
    std::vector<wire::BatchedOp> batch(pick(r, 0, wire::kMaxBatchOps)), batch_back;
    for (auto& b : batch)
      b = wire::BatchedOp{random_op(r), {static_cast<uint32_t>(r()), static_cast<uint16_t>(r())},
                          static_cast<uint8_t>(r())};
    std::string payload = wire::encode_batch(batch);
    bool same_batch = payload.size() <= wire::kMaxPayload && wire::decode_batch(payload, batch_back) &&
                      batch_back.size() == batch.size();
    for (size_t i = 0; same_batch && i < batch.size(); ++i)
      same_batch = same_op(batch[i].op, batch_back[i].op) && batch[i].reply_to.ipv4 == batch_back[i].reply_to.ipv4 &&
                   batch[i].reply_to.port == batch_back[i].reply_to.port && batch[i].attempt == batch_back[i].attempt;
    CHECK(same_batch, std::string("batch round trip"));
    wire::Reply rep{r(), pick(r, 1, 1000), static_cast<wire::ReplyCode>(pick(r, 0, 4)), static_cast<int32_t>(r())},
        rep_back;
    rep.attempt = static_cast<uint32_t>(r());
    rep.lossy = r() % 2 == 0;
    std::string rep_bytes = wire::encode_reply(rep);
    CHECK(wire::decode_reply(rep_bytes.data(), rep_bytes.size(), rep_back) && rep_back.client_id == rep.client_id &&
              rep_back.request_no == rep.request_no && rep_back.code == rep.code && rep_back.value == rep.value &&
              rep_back.attempt == rep.attempt && rep_back.lossy == rep.lossy,
          std::string("reply round trip"));
    roundtrips += 4;

    // Mutations: every decoder must cope; undecodable input changes nothing.
    std::string sources[] = {datagrams[0], req, payload, rep_bytes,
                             wire::encode_status_request(r())};
    std::string bad = mutate(r, sources[pick(r, 0, 4)]);
    wire::PeerPacket pp;
    wire::Operation o;
    wire::ReplicaStatus st;
    uint64_t nonce;
    std::vector<wire::BatchedOp> ops;
    wire::decode_request(bad.data(), bad.size(), o, attempt_back);
    wire::decode_reply(bad.data(), bad.size(), rep);
    wire::decode_status_request(bad.data(), bad.size(), nonce);
    wire::decode_status_reply(bad.data(), bad.size(), st);
    wire::decode_batch(bad, ops);
    bool decodable = wire::decode_peer(bad.data(), bad.size(), pp);
    std::string before = observe(member);
    uint64_t malformed_before = member.stats().malformed;
    member.receive(static_cast<mcast::MemberId>(pick(r, 1, 2)), bad.data(), bad.size(), 1000 + it);
    if (!decodable) {
      ++rejected;
      CHECK(observe(member) == before && member.stats().malformed == malformed_before + 1,
            "an undecodable datagram changed the member's state at iteration " + std::to_string(it));
    }
    member.take_outgoing();
    member.take_deliveries();

    if (it % 50 == 0) {
      FTQueue copy = state;
      std::string error;
      std::string bad_snapshot = mutate(r, snapshot);
      if (!copy.load_snapshot(bad_snapshot, error))
        CHECK(copy.render_snapshot() == snapshot, std::string("a rejected snapshot changed the state"));
      FTQueue reloaded;
      CHECK(reloaded.load_snapshot(snapshot, error) && reloaded.render_snapshot() == snapshot,
            "snapshot round trip: " + error);
    }
  }
  std::printf("decoder: %llu iterations, %llu round trips, %llu undecodable datagrams rejected unchanged\n",
              static_cast<unsigned long long>(iterations), static_cast<unsigned long long>(roundtrips),
              static_cast<unsigned long long>(rejected));
  CHECK(rejected > iterations / 2, std::string("most mutations should be undecodable"));
  return harness::g_failures == 0 ? 0 : 1;
}

// ---- against a live cluster --------------------------------------------------------

// True if the kernel took the datagram. The sockets are non-blocking: a
// full send buffer (EAGAIN) is waited out briefly, so that the whole spray
// can go out.
bool send_raw(int fd, const std::string& bytes, const sockaddr_in& to) {
  for (int tries = 0; tries < 100; ++tries) {
    ssize_t n = ::sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
    if (n == static_cast<ssize_t>(bytes.size())) return true;
    if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return false;
    ::usleep(1000);
  }
  return false;
}

std::string junk_datagram(Rng& r, uint16_t n) {
  wire::PeerPacket p = random_packet(r, static_cast<uint16_t>(pick(r, 0, n - 1)), n);
  std::string real = wire::encode_peer(p)[0];
  switch (pick(r, 0, 7)) {
    case 0: return random_bytes(r, pick(r, 0, 1500));
    case 1: return real.substr(0, pick(r, 0, real.size() - 1));             // truncated
    case 2: return real + random_bytes(r, 60000);                           // oversized
    case 3: {                                                                 // wrong kind
      std::string s = real;
      s[3] = static_cast<char>(pick(r, 6, 255));
      return s;
    }
    case 4: {                                                                 // impossible numbers
      p.header.assigned_upto = uint64_t{1} << 50;
      p.assigns.push_back({uint64_t{1} << 45, random_name(r, n)});
      p.data.push_back({wire::MessageName{static_cast<uint16_t>(n + 5), 1, 1}, "x"});
      return wire::encode_peer(p)[0];
    }
    case 5: {
      std::string req = wire::encode_request(random_op(r), 0);
      return req.substr(0, pick(r, 0, req.size() - 1));                       // truncated request
    }
    case 6: {
      std::string req = wire::encode_request(random_op(r), 0);
      req[4 + 16] = static_cast<char>(pick(r, 8, 255));                       // no such operation
      return req;
    }
    default: return real;  // well-formed peer packet, forged from a non-member
  }
}

// Only things a member must reject: undecodable or implausible. (A
// well-formed, plausible packet from a member's address is, without
// authentication, indistinguishable from that member: not bad input.)
std::string junk_from_member(Rng& r, uint16_t sender, uint16_t n) {
  wire::PeerPacket p = random_packet(r, sender, n);
  switch (pick(r, 0, 3)) {
    case 0: return random_bytes(r, pick(r, 0, 300));
    case 1: {
      std::string real = wire::encode_peer(p)[0];
      for (;;) {  // cut inside a record, so it cannot decode
        std::string cut = real.substr(0, pick(r, 4, real.size() - 1));
        wire::PeerPacket ignored;
        if (!wire::decode_peer(cut.data(), cut.size(), ignored)) return cut;
      }
    }
    case 2:
      p.header.group_size = static_cast<uint16_t>(n + 1);
      return wire::encode_peer(p)[0];
    default:
      p.header.assigned_upto = uint64_t{1} << 40;
      return wire::encode_peer(p)[0];
  }
}

// A wrong server flag exits 2 at once with a message that names it, and
// leaves no data directory behind; --help lists every flag.
void server_flags_test(const std::string& server, const std::string& dir) {
  const std::string data = dir + "/flags-data";
  const std::vector<std::string> base = {"--id", "0", "--peers", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", "--data", data};
  struct Case {
    std::vector<std::string> flags;
    std::string says;
  };
  const Case cases[] = {
      {{"--spin-us", "10001"}, "--spin-us needs microseconds between 0 and 10000, got '10001'"},
      {{"--spin-us", "-1"}, "--spin-us needs microseconds between 0 and 10000, got '-1'"},
      {{"--spin-us=fast"}, "--spin-us needs microseconds between 0 and 10000, got 'fast'"},
      {{"--suspect-ms", "0"}, "--suspect-ms needs milliseconds between 1 and 60000, got '0'"},
      {{"--keepalive-ms", "200"}, "--keepalive-ms must be at most half of --suspect-ms"},
      {{"--loss", "1"}, "--loss needs a probability P with 0 <= P < 1, got '1'"},
      {{"--bogus"}, "unknown option '--bogus'"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = base;
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    std::string out, err;
    const int status = harness::run_program(server, args, "", out, err, 10000);
    CHECK(status == 2 && err.find(c.says) != std::string::npos,
          "server " + c.flags[0] + ": exit " + std::to_string(status) + ", stderr: " + err);
  }
  CHECK(::access(data.c_str(), F_OK) != 0, "a refused start created " + data);
  std::string out, err;
  CHECK(harness::run_program(server, {"--help"}, "", out, err, 10000) == 0, "server --help exits 0");
  for (const char* flag : {"--id", "--peers", "--data", "--loss", "--seed", "--fsync", "--socket-fd", "--cut-file",
                           "--verbose", "--trace", "--suspect-ms", "--keepalive-ms", "--spin-us"})
    CHECK(out.find(flag) != std::string::npos, std::string("server --help does not mention ") + flag);
}

int cluster_test(uint64_t seed, const std::string& server, const std::string& client) {
  std::string dir = harness::make_temp_dir("bad-input");
  server_flags_test(server, dir);
  harness::Cluster cluster(harness::ClusterConfig{3, 0.05, seed, server, dir, {}});
  cluster.start_all();
  std::vector<net::Endpoint> targets;
  std::string error;
  net::parse_endpoints(cluster.servers(), targets, error);

  // The sprayer sends at least kSprayRounds rounds (each round: one junk
  // datagram from a non-member and one from a member's address, to every
  // replica), and goes on until the client has made kMinPushes pushes, so
  // that a slow client on a loaded machine still works under the spray
  // (a fixed spray once ended after 7 pushes in a full parallel suite); the
  // client keeps working until the spray is over. Bounded by the deadline.
  constexpr int kSprayRounds = 3000;
  constexpr int kMinPushes = 20;
  const uint64_t give_up = net::now_us() + 60'000'000;
  std::atomic<bool> spray_done{false};
  std::atomic<int> pushes_done{0};
  std::atomic<bool> client_gave_up{false};
  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> rounds{0};
  std::thread sprayer([&] {
    Rng r(seed ^ 0x5eed);
    int fd = harness::loopback_socket();
    for (int round = 0; round < kSprayRounds || (pushes_done < kMinPushes && !client_gave_up && net::now_us() < give_up);
         ++round) {
      ++rounds;
      for (size_t t = 0; t < targets.size(); ++t) {
        if (send_raw(fd, junk_datagram(r, 3), targets[t].addr)) ++sent;
        int forger = static_cast<int>((t + 1) % targets.size());  // a member's own address
        if (send_raw(cluster.member_socket(forger), junk_from_member(r, static_cast<uint16_t>(forger), 3),
                     targets[t].addr))
          ++sent;
      }
      if (round % 10 == 0) ::usleep(1000);  // spread the spray over the client's work
    }
    ::close(fd);
    spray_done = true;
  });

  // Pushes 1, 2, 3, ... and pops every other time: each pop must return the
  // next number. Bounded in count and time.
  int pushed = 0, popped = 0;
  {
    harness::ClientProcess c(client, cluster.servers(), 20);
    CHECK_EQ(c.call("create 10"), "1", "create");
    bool ok = true;
    while (ok && !spray_done && pushed < 20000 && net::now_us() < give_up) {
      std::string r = c.call("push 1 " + std::to_string(++pushed));
      ok = r == "ok";
      if (ok) pushes_done = pushed;
      CHECK_EQ(r, "ok", "push " + std::to_string(pushed));
      if (ok && pushed % 2 == 0) {
        r = c.call("pop 1");
        ok = r == std::to_string(++popped);
        CHECK_EQ(r, std::to_string(popped), "pop");
      }
    }
    client_gave_up = true;  // a failed call ends the spray too (the failure is reported)
    CHECK_EQ(c.call("size 1"), std::to_string(pushed - popped), "size");
    CHECK_EQ(c.call("id 11"), "-1", "no other queue appeared");
    CHECK_EQ(c.call("size 2"), "error: no queue with id 2", "no other queue appeared");
  }
  sprayer.join();
  std::printf("sprayed %llu malformed datagrams (%llu per replica) while the client made %d pushes and %d pops\n",
              static_cast<unsigned long long>(sent.load()), static_cast<unsigned long long>(sent.load() / 3), pushed,
              popped);
  CHECK(sent.load() == 2ull * 3 * rounds.load(), std::string("the whole spray went out"));
  CHECK(pushed >= kMinPushes, "the client should work throughout the spray, made only " + std::to_string(pushed) +
                                  " pushes in 60 s");
  for (int i = 0; i < 3; ++i) CHECK(cluster.running(i), "replica " + std::to_string(i) + " died");
  {
    harness::ClientProcess c(client, cluster.servers(), 20);
    std::string status = c.call("status");
    std::printf("%s\n", status.c_str());
    CHECK(std::count(status.begin(), status.end(), ';') == 2 && status.find("unreachable") == std::string::npos,
          "every replica must still answer: " + status);
    // Each replica counts what it drops. The kernel may drop a little of a
    // burst before the server reads it, hence the margin; a replica that
    // stopped counting its junk would fall far below it.
    for (size_t pos = status.find("dropped "); pos != std::string::npos; pos = status.find("dropped ", pos + 1)) {
      uint64_t dropped = std::strtoull(status.c_str() + pos + 8, nullptr, 10);
      CHECK(dropped >= uint64_t{kSprayRounds}, "a replica counted only " + std::to_string(dropped) + " dropped datagrams");
    }
  }
  CHECK(cluster.stop_all(), std::string("graceful stop"));
  std::string s0 = cluster.check_snapshots_identical();
  std::string expected_queue = "queue 1 label 10 items " + std::to_string(pushed - popped) + ":";
  for (int i = popped + 1; i <= pushed; ++i) expected_queue += " " + std::to_string(i);
  CHECK(s0.find(expected_queue + "\n") != std::string::npos, "queue content: " + s0);
  CHECK(s0.find("next_id 2\n") != std::string::npos, "no other queue was ever created: " + s0);
  size_t clients = 0;
  for (size_t pos = s0.find("\nclient "); pos != std::string::npos; pos = s0.find("\nclient ", pos + 1)) ++clients;
  CHECK(clients == 1, "only the test's client may appear in the exactly-once table: " + s0);
  if (harness::g_failures == 0) {
    harness::remove_tree(dir);
    std::printf("bad_input cluster: passed\n");
  } else {
    std::printf("bad_input cluster: %d checks failed; logs and data kept in %s\n", harness::g_failures, dir.c_str());
  }
  return harness::g_failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "", server, client;
  uint64_t iterations = 100000;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--server") server = v;
    else if (k == "--client") client = v;
    else if (k == "--iterations") iterations = std::strtoull(v.c_str(), nullptr, 10);
  }
  if (mode == "decoder") return decoder_test(harness::test_seed("bad_input decoder"), iterations);
  if (mode == "cluster" && !server.empty() && !client.empty())
    return cluster_test(harness::test_seed("bad_input cluster"), server, client);
  std::fprintf(stderr, "usage: bad_input_test decoder [--iterations N] | cluster --server BIN --client BIN\n");
  return 2;
}
