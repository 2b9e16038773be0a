// unit_test: the pure pieces, checked directly and deterministically.
//
//   unit_test ftqueue     queue semantics, errors, ids never reused, the
//                         exactly-once table, replies carrying the address
//                         and try from the batch, snapshot determinism
//   unit_test retry       the client's retry policy: bounds, estimator,
//                         which replies are timed, copies under loss
//   unit_test sequencer   who may assign k; headers pass on no hearsay
#include <cstdio>
#include <string>
#include <vector>

#include "../ftqueue.hpp"
#include "../multicast.hpp"
#include "../net.hpp"
#include "../wire.hpp"
#include "harness.hpp"

namespace {

// Feeds one-operation batches to an FTQueue, as delivery would.
class Feeder {
 public:
  explicit Feeder(FTQueue& q) : q_(q) {}
  // The single reply to `op` (client 7 unless given), or a reply with
  // request_no 0 when the state answered nothing.
  wire::Reply call(wire::OpCode code, int32_t arg, int32_t item = 0, uint64_t client = 7, uint64_t request = 0,
                   wire::ClientAddress to = {}, uint8_t attempt = 0) {
    wire::Operation op{client, request ? request : ++next_request_[client], code, arg, item};
    std::vector<AddressedReply> r = apply({wire::BatchedOp{op, to, attempt}});
    CHECK(r.size() <= 1, "one operation, at most one reply");
    return r.empty() ? wire::Reply{} : r[0].reply;
  }
  std::vector<AddressedReply> apply(const std::vector<wire::BatchedOp>& batch) {
    ++k_;
    return q_.apply(mcast::Delivery{k_, wire::MessageName{0, 1, k_}, wire::encode_batch(batch)});
  }

 private:
  FTQueue& q_;
  uint64_t k_ = 0;
  uint64_t next_request_[256] = {};
};

std::string show(const wire::Reply& r) {
  return std::to_string(static_cast<int>(r.code)) + ":" + std::to_string(r.value);
}

void expect(const wire::Reply& r, wire::ReplyCode code, int32_t value, const std::string& what) {
  CHECK(r.code == code && (code != wire::ReplyCode::Ok || r.value == value), what + " -> " + show(r));
}

void test_ftqueue() {
  using wire::OpCode;
  using wire::ReplyCode;
  FTQueue q;
  Feeder f(q);
  expect(f.call(OpCode::Create, 100), ReplyCode::Ok, 1, "create 100");
  expect(f.call(OpCode::Create, 100), ReplyCode::Ok, 1, "create of an existing label returns its id");
  expect(f.call(OpCode::Create, -5), ReplyCode::Ok, 2, "create -5");
  expect(f.call(OpCode::Id, 100), ReplyCode::Ok, 1, "id 100");
  expect(f.call(OpCode::Id, 99), ReplyCode::Ok, -1, "id of an unknown label is -1");
  expect(f.call(OpCode::Pop, 1), ReplyCode::Empty, 0, "pop of an empty queue");
  expect(f.call(OpCode::Top, 1), ReplyCode::Empty, 0, "top of an empty queue");
  expect(f.call(OpCode::Push, 1, 10), ReplyCode::Ok, 0, "push 10");
  expect(f.call(OpCode::Push, 1, -20), ReplyCode::Ok, 0, "push -20");
  expect(f.call(OpCode::Size, 1), ReplyCode::Ok, 2, "size");
  expect(f.call(OpCode::Top, 1), ReplyCode::Ok, 10, "top is the first pushed");
  expect(f.call(OpCode::Pop, 1), ReplyCode::Ok, 10, "pop is FIFO");
  expect(f.call(OpCode::Pop, 1), ReplyCode::Ok, -20, "pop is FIFO");
  expect(f.call(OpCode::Push, 3, 1), ReplyCode::NoQueue, 0, "push to an unknown id");
  expect(f.call(OpCode::Destroy, 2), ReplyCode::Ok, 0, "destroy 2");
  expect(f.call(OpCode::Destroy, 2), ReplyCode::NoQueue, 0, "destroy twice");
  expect(f.call(OpCode::Size, 2), ReplyCode::NoQueue, 0, "size of a destroyed queue");
  expect(f.call(OpCode::Id, -5), ReplyCode::Ok, -1, "a destroyed queue's label is free");
  expect(f.call(OpCode::Create, -5), ReplyCode::Ok, 3, "ids are never reused");

  // Exactly once: the same request again gets the stored reply and changes
  // nothing; an older one gets no reply at all.
  expect(f.call(OpCode::Push, 1, 5, 42, 1), ReplyCode::Ok, 0, "client 42 push");
  expect(f.call(OpCode::Pop, 1, 0, 42, 2), ReplyCode::Ok, 5, "client 42 pop");
  expect(f.call(OpCode::Pop, 1, 0, 42, 2), ReplyCode::Ok, 5, "a repeated pop is answered from the table");
  expect(f.call(OpCode::Size, 1, 0, 7), ReplyCode::Ok, 0, "the repeated pop popped nothing");
  CHECK(f.call(OpCode::Push, 1, 9, 42, 1).request_no == 0, "an older request gets no reply");
  expect(f.call(OpCode::Size, 1, 0, 7), ReplyCode::Ok, 0, "the older request was not applied");
  auto cached = q.cached_reply(42, 2);
  CHECK(cached && cached->value == 5, "cached_reply holds the last reply");
  CHECK(!q.cached_reply(42, 1) && q.superseded(42, 1) && !q.superseded(42, 2), "superseded");

  // The reply carries what the batch says about where and which try.
  wire::ClientAddress to{0x7f000001, 4242};
  std::vector<AddressedReply> r =
      f.apply({wire::BatchedOp{wire::Operation{9, 1, OpCode::Size, 1, 0}, to, 3},
               wire::BatchedOp{wire::Operation{9, 1, OpCode::Size, 1, 0}, to, 4}});
  CHECK(r.size() == 2 && r[0].to.ipv4 == to.ipv4 && r[0].to.port == to.port && r[0].reply.attempt == 3 &&
            r[1].reply.attempt == 4,
        "replies carry the batch's address and try");

  // A batch nobody can decode is skipped alike everywhere.
  uint64_t before = q.malformed_batches();
  q.apply(mcast::Delivery{1000, wire::MessageName{0, 1, 1000}, "junk"});
  CHECK(q.malformed_batches() == before + 1, "a malformed batch is counted");

  // Snapshots: canonical, and a round trip gives the same text.
  FTQueue copy;
  std::string error;
  CHECK(copy.load_snapshot(q.render_snapshot(), error), "snapshot loads: " + error);
  CHECK(copy.render_snapshot() == q.render_snapshot(), "snapshot round trip is byte-identical");
  CHECK(copy.applied_upto() == q.applied_upto(), "snapshot keeps applied_upto");
  FTQueue other;
  Feeder g(other);
  g.call(OpCode::Create, 1);
  CHECK(other.render_snapshot() != q.render_snapshot(), "different states render differently");
}

void test_retry() {
  net::RetryPolicy p;
  CHECK(p.timeout_us(0) == 20000, "before any sample the timeout is 20 ms");
  CHECK(p.copies() == 1, "one copy by default");
  net::Tries tries;
  CHECK(tries.next_attempt() == 0, "the first try is number 0");
  tries.sent(1000);
  p.on_reply(tries, 0, false, 1100);  // a 100 us round trip
  CHECK(p.timeout_us(0) == 1000, "a fast network is held to the 1 ms floor");
  CHECK(p.timeout_us(1) == 2000 && p.timeout_us(2) == 4000 && p.timeout_us(9) == 4000,
        "silent tries double the wait, up to 4 times");

  // A slow reply that answers the first try after a retry is still timed,
  // from the first send: the estimate learns the call was slow.
  net::Tries slow;
  slow.sent(10'000);
  slow.sent(11'000);
  CHECK(slow.next_attempt() == 2 && slow.count == 2, "tries are counted");
  uint64_t before = p.timeout_us(0);
  p.on_reply(slow, 0, false, 10'000 + 30'000);
  CHECK(p.timeout_us(0) > before, "a slow reply to try 0 raises the timeout");
  // A reply to the latest try is timed from the latest send; one to a try
  // in between is not timed at all.
  net::RetryPolicy q;
  net::Tries three;
  three.sent(0);
  three.sent(1000);
  three.sent(2000);
  q.on_reply(three, 1, false, 2100);
  CHECK(q.timeout_us(0) == 20000, "a reply to a middle try is no sample");
  q.on_reply(three, 2, true, 2100);
  CHECK(q.timeout_us(0) == 1000, "a reply to the latest try is timed from its send");
  CHECK(q.copies() == 2, "a lossy reply asks for two copies");
  q.on_reply(three, 2, false, 2100);
  CHECK(q.copies() == 1, "a clean reply goes back to one");
  net::Tries many;
  for (int i = 0; i < 300; ++i) many.sent(static_cast<uint64_t>(i));
  CHECK(many.next_attempt() == 255, "the try number stops at 255");
}

void test_sequencer() {
  mcast::Multicast m(1, {0, 1, 2}, 5);
  for (uint64_t k = 1; k <= 9; ++k)
    CHECK(m.sequencer_for(k) == k % 3, "k " + std::to_string(k) + " is assigned by member k mod 3");
  CHECK(m.next_sequencer() == 1, "a new member waits for k=1, member 1's");
  // A header passes on only assignments its sender holds, never hearsay: a
  // claim from a member that then crashed must not outlive it.
  mcast::Multicast m0(0, {0, 1, 2}, 5);
  wire::PeerPacket claim;
  claim.header = wire::PeerHeader{1, 3, 7, 0, 0, 0, 5, false};  // member 1 says: k up to 5 assigned
  claim.has_status = true;
  std::string bytes = wire::encode_peer(claim)[0];
  m0.receive(1, bytes.data(), bytes.size(), 100);
  CHECK(m0.stats().malformed == 0, "the claim is well-formed");
  m0.announce();
  bool seen = false;
  for (const mcast::Outgoing& out : m0.take_outgoing()) {
    wire::PeerPacket p;
    if (out.to != 2 || !wire::decode_peer(out.bytes.data(), out.bytes.size(), p)) continue;
    seen = true;
    CHECK(p.header.assigned_upto == 0, "hearsay passed on: assigned_upto " + std::to_string(p.header.assigned_upto));
  }
  CHECK(seen, "member 0 announced itself to member 2");

  mcast::Multicast solo(0, {0}, 5);
  solo.submit("x", 10);
  std::vector<mcast::Delivery> d = solo.take_deliveries();
  CHECK(d.size() == 1 && d[0].global_seq == 1 && solo.sequencer_for(1) == 0,
        "a lone member sequences and delivers its own message at once");
}

}  // namespace

int main(int argc, char** argv) {
  std::string what = argc > 1 ? argv[1] : "";
  if (what == "ftqueue") test_ftqueue();
  else if (what == "retry") test_retry();
  else if (what == "sequencer") test_sequencer();
  else {
    std::fprintf(stderr, "usage: unit_test ftqueue|retry|sequencer\n");
    return 2;
  }
  std::printf("unit %s: %s\n", what.c_str(), harness::g_failures ? "FAILED" : "passed");
  return harness::g_failures ? 1 : 0;
}
