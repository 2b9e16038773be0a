// wire.hpp: the byte layout of every FTQueue datagram, in one place.
//
// Two families of datagrams share one UDP port:
//   * peer packets (member to member): a fixed header followed by records
//     (DATA, ASSIGN, NACK_DATA, NACK_ASSIGN, STATUS). Every packet's header
//     carries the sender's high-water marks, so progress information rides on
//     whatever goes out anyway (piggybacking).
//   * client datagrams (client to server and back): one request or one reply.
//
// All integers are little-endian and fixed width. Decoders never trust a
// length: every read is bounds-checked, and a datagram that is truncated,
// oversized, of an unknown type or with trailing bytes is rejected whole
// (decode returns false and the caller drops it), so a bad datagram can never
// leave state half-changed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace wire {

constexpr uint8_t kMagic0 = 'F';
constexpr uint8_t kMagic1 = 'Q';
// 2: headers echo the receiver's incarnation; 3: held_upto, membership;
// 4: 32-bit try numbers in client requests and replies; 6: membership
// headers say the sender's mode (partitionable). Only datagrams carry
// it: nothing a replica stores does (its log holds batches and its snapshot
// is text, neither with a preamble), so a bump leaves the files readable.
constexpr uint8_t kVersion = 7;

// Largest datagram any FTQueue process sends. 1400 bytes fits an Ethernet MTU
// without IP fragmentation, so the cluster also works across real machines.
constexpr size_t kMaxDatagram = 1400;

enum class Kind : uint8_t {
  Peer = 1,
  ClientRequest = 2,
  ClientReply = 3,
  StatusRequest = 4,
  StatusReply = 5,
  Membership = 6,
  SideCopy = 7,  // partitionable mode: a side's leader copies its work to the side
  SideAck = 8,   // ... and each member says how much of it it holds
};

// ---- primitives ----------------------------------------------------------

class Writer {
 public:
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(uint16_t v) { put(v, 2); }
  void u32(uint32_t v) { put(v, 4); }
  void u64(uint64_t v) { put(v, 8); }
  void i32(int32_t v) { put(static_cast<uint32_t>(v), 4); }
  void bytes(const std::string& s);  // u32 length, then the bytes
  size_t size() const { return out_.size(); }
  std::string take() { return std::move(out_); }

 private:
  void put(uint64_t v, int width);
  std::string out_;
};

class Reader {
 public:
  Reader(const void* data, size_t len)
      : p_(static_cast<const uint8_t*>(data)), len_(len) {}
  bool u8(uint8_t& v);
  bool u16(uint16_t& v);
  bool u32(uint32_t& v);
  bool u64(uint64_t& v);
  bool i32(int32_t& v);
  bool bytes(std::string& s, size_t max_len);
  bool at_end() const { return pos_ == len_; }

 private:
  bool get(uint64_t& v, int width);
  const uint8_t* p_;
  size_t len_;
  size_t pos_ = 0;
};

// Reads the 4-byte preamble (magic, version, kind). False if it is not ours.
bool read_preamble(Reader& r, Kind& kind);
void write_preamble(Writer& w, Kind kind);

// ---- peer packets --------------------------------------------------------

struct MessageName {
  uint16_t origin = 0;
  uint64_t incarnation = 0;
  uint64_t origin_seq = 0;
  bool operator<(const MessageName& o) const {
    if (origin != o.origin) return origin < o.origin;
    if (incarnation != o.incarnation) return incarnation < o.incarnation;
    return origin_seq < o.origin_seq;
  }
  bool operator==(const MessageName& o) const {
    return origin == o.origin && incarnation == o.incarnation &&
           origin_seq == o.origin_seq;
  }
  bool operator!=(const MessageName& o) const { return !(*this == o); }
};

// Sender's state, sent on every peer packet.
struct PeerHeader {
  uint16_t sender = 0;
  uint16_t group_size = 0;       // n, to catch a mis-configured member
  uint64_t incarnation = 0;      // sender's current life
  uint64_t own_highwater = 0;    // highest origin_seq the sender has multicast
  uint64_t delivered_upto = 0;   // sender has delivered 1..delivered_upto
  uint64_t assigned_contiguous = 0;  // sender knows every assignment 1..this
  uint64_t assigned_upto = 0;    // highest global_seq whose assignment the sender holds
  bool closed = false;           // sender is stopping and will multicast nothing more
  // The receiver's incarnation as the sender last heard it (0: never). A
  // restarted member counts a peer as heard only once this names its new
  // life, so no datagram sent before the restart can stand in for one sent
  // after it.
  uint64_t receiver_incarnation = 0;
  // Safe delivery (membership.hpp): the sender's log holds every assignment
  // and payload 1..held_upto. 0 in phase one's mode, which does not use it.
  uint64_t held_upto = 0;
  // Safe delivery, slow members (multicast.hpp): bit m set if the sender
  // finds member m lagging (its claims arrive late).
  uint64_t finds_lagging = 0;
};

struct DataRecord {
  MessageName name;
  std::string payload;
};

struct AssignRecord {
  uint64_t global_seq = 0;
  MessageName name;
};

struct SeqRange {  // inclusive
  uint64_t from = 0;
  uint64_t to = 0;
};

struct PeerPacket {
  PeerHeader header;
  std::vector<DataRecord> data;
  std::vector<AssignRecord> assigns;
  std::vector<MessageName> nack_data;
  std::vector<SeqRange> nack_assign;
  bool has_status = false;
  bool want_reply = false;  // with has_status: "answer me with your header"
};

// Largest multicast payload; leaves room for the header (73 bytes) and one
// record's framing (23): a full payload fills a datagram exactly.
constexpr size_t kMaxPayload = kMaxDatagram - 96;

// Splits one logical packet into as many datagrams as its records need,
// each at most kMaxDatagram bytes and each carrying the header.
std::vector<std::string> encode_peer(const PeerPacket& p);
bool decode_peer(const void* data, size_t len, PeerPacket& out);

// ---- membership datagrams (membership.hpp) ---------------------------------

// A configuration id on the wire: epoch, then the member that formed it.
struct WireConfigId {
  uint64_t epoch = 0;
  uint16_t rep = 0;
};

enum class MembershipType : uint8_t {
  Keepalive = 1,  // the header alone
  Prepare = 2,    // coordinator -> proposed members: promise `config` and send STATE
  State = 3,      // member -> coordinator
  Install = 4,    // coordinator -> members
  SnapshotRequest = 5,  // joining member -> source: send the snapshot from `offset`
  SnapshotChunk = 6,    // source -> joining member: bytes of its snapshot
  // Asking before anyone freezes (membership.hpp, "Partial partitions"):
  Probe = 7,       // would-be coordinator -> proposed members: would you join `members`?
  ProbeReply = 8,  // member -> would-be coordinator: `verdict`
};

// A member's answer to a Probe (and, unsent, its reason to ignore a
// PREPARE): join, or why not.
enum class Verdict : uint8_t {
  Join = 0,
  NotNamed = 1,            // the proposal does not name me
  NotMutual = 2,           // two of its members do not hear each other, as far as I know
  PrimaryWorks = 3,        // my primary configuration works, and the proposal drops some of it
  ConfigurationWorks = 4,  // my configuration works, and the proposal drops some of it without being a majority
  RoundUnderWay = 5,       // I promised another coordinator's round lately
};
constexpr uint8_t kLastVerdict = 5;
const char* verdict_text(Verdict v);

struct InstallEntry {  // one member of an installed configuration
  uint16_t member = 0;
  uint64_t incarnation = 0;  // the life that promised; only it may install
  WireConfigId previous;     // its configuration before (for the transitional set)
};

// Every membership datagram carries the header; the fields after it depend
// on the type (unused ones are not sent).
struct MembershipMessage {
  // header
  uint16_t sender = 0;
  uint16_t group_size = 0;
  uint64_t incarnation = 0;      // sender's life
  MembershipType type = MembershipType::Keepalive;
  WireConfigId installed;        // sender's configuration (epoch 0: none)
  bool installed_primary = false;
  // The sender's log may have lost a claimed tail (membership.hpp,
  // "Amnesia"): it cannot help make a configuration primary yet.
  bool sender_amnesiac = false;
  // The sender serves in partitionable mode (Replica): a cluster is of one
  // mode, and a member of the other is no peer (Membership drops it).
  bool sender_partitionable = false;
  WireConfigId promised;         // highest id the sender promised
  uint64_t delivered_upto = 0;
  uint64_t hears = 0;            // bit m: the sender hears member m lately
  // Prepare, State, Install: the configuration being formed (Probe,
  // ProbeReply: the round's tag, the id it would have)
  WireConfigId config;
  // Prepare, Probe: the proposed members; Install: see entries
  std::vector<uint16_t> members;
  // State (and Install, for the source): the order 1..freed_upto is gone
  // from the member's memory and log (in its snapshot only)
  WireConfigId last_primary;
  uint64_t held_upto = 0;
  uint64_t freed_upto = 0;
  // State: the sender's log may have lost a claimed tail (membership.hpp,
  // "Amnesia"): its claim counts for nothing
  bool amnesiac = false;
  // ProbeReply
  Verdict verdict = Verdict::Join;
  // Install
  bool primary = false;
  uint64_t cut = 0;
  uint16_t source = 0;
  WireConfigId source_last_primary;
  std::vector<InstallEntry> entries;
  // SnapshotRequest, SnapshotChunk (with `config`): a snapshot taken at
  // global_seq `snapshot_upto`, `total` bytes long; a chunk carries `bytes`
  // from `offset`, a request asks for what follows `offset`.
  uint64_t snapshot_upto = 0;
  uint64_t total = 0;
  uint64_t offset = 0;
  std::string bytes;
};

// The most snapshot bytes one SnapshotChunk carries.
constexpr size_t kSnapshotChunkBytes = 1200;

// "KEEPALIVE", "PREPARE", "STATE", "INSTALL", "SNAPREQ", "SNAPSHOT",
// "PROBE", "PROBEREPLY": the names the trace, the simulator and the README use.
const char* membership_type_name(MembershipType t);
std::string encode_membership(const MembershipMessage& m);
bool decode_membership(const void* data, size_t len, MembershipMessage& out);

// Partitionable mode (Replica): a part of a side's segment (merge.hpp's
// encode_segment bytes, opaque here), from the side's leader to another
// member of the side; and the answer, how many of the side's effects
// (`held`) that member holds on disk. `side` is the side's configuration's
// ordering number.
std::string encode_side_copy(const std::string& segment_bytes);
bool decode_side_copy(const void* data, size_t len, std::string& segment_bytes);
std::string encode_side_ack(uint64_t side, uint64_t held);
bool decode_side_ack(const void* data, size_t len, uint64_t& side, uint64_t& held);

// ---- client datagrams ----------------------------------------------------

enum class OpCode : uint8_t {
  Create = 1,
  Destroy = 2,
  Id = 3,
  Push = 4,
  Pop = 5,
  Top = 6,
  Size = 7,
};
bool valid_opcode(uint8_t v);
const char* opcode_name(OpCode op);

enum class ReplyCode : uint8_t {
  Ok = 0,
  NoQueue = 1,       // no queue with that id
  Empty = 2,         // pop/top on an empty queue
  Busy = 3,          // buffers full or server shutting down: retry later
  IdsExhausted = 4,  // every positive 32-bit id has been used
  // The replica is not in a primary configuration (it cannot reach a
  // majority of the members): it did not admit the request; ask another.
  // `value` is (members it hears, itself included) << 16 | n.
  NotInMajority = 5,
};
bool valid_reply_code(uint8_t v);

// One client call. `arg` is the label (create, id) or the queue id (the
// rest); `item` is the pushed item.
struct Operation {
  uint64_t client_id = 0;
  uint64_t request_no = 0;
  OpCode op = OpCode::Size;
  int32_t arg = 0;
  int32_t item = 0;
};
constexpr size_t kOperationBytes = 8 + 8 + 1 + 4 + 4;

struct Reply {
  uint64_t client_id = 0;
  uint64_t request_no = 0;
  ReplyCode code = ReplyCode::Ok;
  int32_t value = 0;
  // Transport hints, not part of the replicated state:
  // which try of the request this answers, echoed from the request (as in
  // TCP's timestamp option), so that the client can time every reply, even
  // after a retry, without guessing which try it answers (a reply built
  // from a BatchedOp echoes the try saturated at 255, see there);
  uint32_t attempt = 0;
  // the answering replica is repairing heavy loss (its lossy mode): the
  // client should send each request twice while this stays set.
  bool lossy = false;
  // Partitionable mode: the answer comes from a side without a majority
  // (merge.hpp); a merge when the sides meet may contradict it.
  bool tentative = false;
};

// A request datagram is one Operation and the number of this try (0 for the
// first send, then 1, 2, ...: 32 bits, so a call never runs out of them).
std::string encode_request(const Operation& op, uint32_t attempt);
std::string encode_reply(const Reply& r);
bool decode_request(const void* data, size_t len, Operation& out, uint32_t& attempt);
bool decode_reply(const void* data, size_t len, Reply& out);

// Where a client asked from (IPv4 address and UDP port, host byte order).
struct ClientAddress {
  uint32_t ipv4 = 0;
  uint16_t port = 0;
};

// One operation in a batch, with the address its reply goes to and the try
// that was admitted. They travel with the operation so that any member, not
// only the one the client asked, can answer: the member that sequences a
// batch replies to its clients directly, one hop sooner than the origin.
// The try is one byte, saturated at 255 (batched_attempt): batches are kept
// in the replicas' logs, and the try only serves the client's reply timing.
// A reply built from a batch may thus echo 255 for a later try; a client
// whose latest try is later sees a number other than its own and treats
// the reply as it treats one to an earlier try (no round-trip sample, and
// a refusal leaves the outcome unsure).
struct BatchedOp {
  Operation op;
  ClientAddress reply_to;
  uint8_t attempt = 0;
};
inline uint8_t batched_attempt(uint32_t attempt) { return static_cast<uint8_t>(attempt < 255 ? attempt : 255); }
constexpr size_t kBatchedOpBytes = kOperationBytes + 4 + 2 + 1;

// A batch of operations is the payload of one multicast message: a count,
// the operations, and the origin's wall-clock time in milliseconds when it
// formed the batch. That time, carried in the total order, is the replicas'
// shared clock for expiring idle clients (FTQueue): every replica sees the
// same times in the same order, whatever its own clock says. A batch from
// before the time was added ends after the operations; it decodes with 0.
std::string encode_batch(const std::vector<BatchedOp>& ops, uint64_t origin_time_ms = 0);
bool decode_batch(const std::string& payload, std::vector<BatchedOp>& out, uint64_t* origin_time_ms = nullptr);
constexpr size_t kMaxBatchOps = (kMaxPayload - 2 - 8) / kBatchedOpBytes;

// `client status`: each replica answers with its own view, outside the total
// order (it is a diagnostic, not a queue operation).
struct ReplicaStatus {
  uint64_t nonce = 0;
  uint16_t member = 0;
  uint64_t delivered_upto = 0;
  uint64_t stable_upto = 0;
  uint32_t queues = 0;
  uint32_t buffered_messages = 0;
  uint64_t dropped_datagrams = 0;  // malformed, non-member, stale, loss flag
  // Membership (membership.hpp): the configuration it is installed in
  // (epoch 0: none yet), its members (bit m set for member m), whether it is
  // primary, and how many of the n members it hears, itself included.
  uint64_t config_epoch = 0;
  uint16_t config_rep = 0;
  uint64_t config_members = 0;
  bool primary = false;
  uint16_t group_size = 0;
  uint16_t reachable = 0;
  uint64_t held_upto = 0;
};
std::string encode_status_request(uint64_t nonce);
bool decode_status_request(const void* data, size_t len, uint64_t& nonce);
std::string encode_status_reply(const ReplicaStatus& s);
bool decode_status_reply(const void* data, size_t len, ReplicaStatus& out);

// Hex, for the human-readable log.
std::string to_hex(const std::string& bytes);
bool from_hex(const std::string& hex, std::string& out);

}  // namespace wire
