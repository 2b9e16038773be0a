// wire.cpp: encoders and bounds-checked decoders for wire.hpp.
#include "wire.hpp"

namespace wire {

void Writer::put(uint64_t v, int width) {
  for (int i = 0; i < width; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void Writer::bytes(const std::string& s) {
  u32(static_cast<uint32_t>(s.size()));
  out_.append(s);
}

bool Reader::get(uint64_t& v, int width) {
  if (len_ - pos_ < static_cast<size_t>(width)) return false;
  v = 0;
  for (int i = 0; i < width; ++i) v |= static_cast<uint64_t>(p_[pos_ + i]) << (8 * i);
  pos_ += width;
  return true;
}

bool Reader::u8(uint8_t& v) {
  uint64_t x;
  if (!get(x, 1)) return false;
  v = static_cast<uint8_t>(x);
  return true;
}
bool Reader::u16(uint16_t& v) {
  uint64_t x;
  if (!get(x, 2)) return false;
  v = static_cast<uint16_t>(x);
  return true;
}
bool Reader::u32(uint32_t& v) {
  uint64_t x;
  if (!get(x, 4)) return false;
  v = static_cast<uint32_t>(x);
  return true;
}
bool Reader::u64(uint64_t& v) { return get(v, 8); }
bool Reader::i32(int32_t& v) {
  uint32_t x;
  if (!u32(x)) return false;
  v = static_cast<int32_t>(x);
  return true;
}
bool Reader::bytes(std::string& s, size_t max_len) {
  uint32_t n;
  if (!u32(n) || n > max_len || len_ - pos_ < n) return false;
  s.assign(reinterpret_cast<const char*>(p_ + pos_), n);
  pos_ += n;
  return true;
}

void write_preamble(Writer& w, Kind kind) {
  w.u8(kMagic0);
  w.u8(kMagic1);
  w.u8(kVersion);
  w.u8(static_cast<uint8_t>(kind));
}

bool read_preamble(Reader& r, Kind& kind) {
  uint8_t m0, m1, ver, k;
  if (!r.u8(m0) || !r.u8(m1) || !r.u8(ver) || !r.u8(k)) return false;
  if (m0 != kMagic0 || m1 != kMagic1 || ver != kVersion) return false;
  if (k < static_cast<uint8_t>(Kind::Peer) || k > static_cast<uint8_t>(Kind::SideAck)) return false;
  kind = static_cast<Kind>(k);
  return true;
}

// ---- peer packets --------------------------------------------------------

namespace {

enum RecordTag : uint8_t { kData = 1, kAssign = 2, kNackData = 3, kNackAssign = 4, kStatus = 5 };

void write_name(Writer& w, const MessageName& n) {
  w.u16(n.origin);
  w.u64(n.incarnation);
  w.u64(n.origin_seq);
}
bool read_name(Reader& r, MessageName& n) {
  return r.u16(n.origin) && r.u64(n.incarnation) && r.u64(n.origin_seq);
}

void write_header(Writer& w, const PeerHeader& h) {
  write_preamble(w, Kind::Peer);
  w.u16(h.sender);
  w.u16(h.group_size);
  w.u64(h.incarnation);
  w.u64(h.own_highwater);
  w.u64(h.delivered_upto);
  w.u64(h.assigned_contiguous);
  w.u64(h.assigned_upto);
  w.u64(h.receiver_incarnation);
  w.u64(h.held_upto);
  w.u64(h.finds_lagging);
  w.u8(h.closed ? 1 : 0);
}
bool read_header(Reader& r, PeerHeader& h) {
  uint8_t closed;
  if (!(r.u16(h.sender) && r.u16(h.group_size) && r.u64(h.incarnation) && r.u64(h.own_highwater) &&
        r.u64(h.delivered_upto) && r.u64(h.assigned_contiguous) && r.u64(h.assigned_upto) &&
        r.u64(h.receiver_incarnation) && r.u64(h.held_upto) && r.u64(h.finds_lagging) && r.u8(closed)) ||
      closed > 1)
    return false;
  h.closed = closed == 1;
  return true;
}

// Accumulates records, starting a fresh datagram (with the header again)
// whenever the next record would not fit.
class PacketSplitter {
 public:
  explicit PacketSplitter(const PeerHeader& h) : header_(h) { start(); }
  void add(const std::string& record) {
    if (current_.size() + record.size() > kMaxDatagram && records_ > 0) flush();
    append(record);
  }
  std::vector<std::string> finish() {
    if (records_ > 0) flush();
    return std::move(done_);
  }

 private:
  void start() {
    Writer w;
    write_header(w, header_);
    current_ = w.take();
    records_ = 0;
  }
  void append(const std::string& record) {
    current_ += record;
    ++records_;
  }
  void flush() {
    done_.push_back(std::move(current_));
    start();
  }
  PeerHeader header_;
  std::string current_;
  int records_ = 0;
  std::vector<std::string> done_;
};

}  // namespace

std::vector<std::string> encode_peer(const PeerPacket& p) {
  PacketSplitter out(p.header);
  for (const DataRecord& d : p.data) {
    Writer w;
    w.u8(kData);
    write_name(w, d.name);
    w.bytes(d.payload);
    out.add(w.take());
  }
  for (const AssignRecord& a : p.assigns) {
    Writer w;
    w.u8(kAssign);
    w.u64(a.global_seq);
    write_name(w, a.name);
    out.add(w.take());
  }
  for (const MessageName& n : p.nack_data) {
    Writer w;
    w.u8(kNackData);
    write_name(w, n);
    out.add(w.take());
  }
  for (const SeqRange& s : p.nack_assign) {
    Writer w;
    w.u8(kNackAssign);
    w.u64(s.from);
    w.u64(s.to);
    out.add(w.take());
  }
  if (p.has_status) {
    Writer w;
    w.u8(kStatus);
    w.u8(p.want_reply ? 1 : 0);
    out.add(w.take());
  }
  return out.finish();
}

namespace {
void write_config_id(Writer& w, const WireConfigId& c) {
  w.u64(c.epoch);
  w.u16(c.rep);
}
bool read_config_id(Reader& r, WireConfigId& c) { return r.u64(c.epoch) && r.u16(c.rep); }
// Far more than any real group (server.cpp allows 64 members).
constexpr uint16_t kMaxMembers = 256;
}  // namespace

const char* membership_type_name(MembershipType t) {
  switch (t) {
    case MembershipType::Keepalive: return "KEEPALIVE";
    case MembershipType::Prepare: return "PREPARE";
    case MembershipType::State: return "STATE";
    case MembershipType::Install: return "INSTALL";
    case MembershipType::SnapshotRequest: return "SNAPREQ";
    case MembershipType::SnapshotChunk: return "SNAPSHOT";
    case MembershipType::Probe: return "PROBE";
    case MembershipType::ProbeReply: return "PROBEREPLY";
  }
  return "?";
}

const char* verdict_text(Verdict v) {
  switch (v) {
    case Verdict::Join: return "join";
    case Verdict::NotNamed: return "not named";
    case Verdict::NotMutual: return "not all of them hear each other";
    case Verdict::PrimaryWorks: return "my primary configuration works";
    case Verdict::ConfigurationWorks: return "my configuration works";
    case Verdict::RoundUnderWay: return "another round is under way";
  }
  return "?";
}

std::string encode_membership(const MembershipMessage& m) {
  Writer w;
  write_preamble(w, Kind::Membership);
  w.u16(m.sender);
  w.u16(m.group_size);
  w.u64(m.incarnation);
  w.u8(static_cast<uint8_t>(m.type));
  write_config_id(w, m.installed);
  w.u8(m.installed_primary ? 1 : 0);
  w.u8((m.sender_amnesiac ? 1 : 0) | (m.sender_partitionable ? 2 : 0));  // the sender's flags
  write_config_id(w, m.promised);
  w.u64(m.delivered_upto);
  w.u64(m.hears);
  switch (m.type) {
    case MembershipType::Keepalive:
      break;
    case MembershipType::Prepare:
    case MembershipType::Probe:
      write_config_id(w, m.config);
      w.u16(static_cast<uint16_t>(m.members.size()));
      for (uint16_t id : m.members) w.u16(id);
      break;
    case MembershipType::ProbeReply:
      write_config_id(w, m.config);
      w.u8(static_cast<uint8_t>(m.verdict));
      break;
    case MembershipType::State:
      write_config_id(w, m.config);
      write_config_id(w, m.last_primary);
      w.u64(m.held_upto);
      w.u64(m.freed_upto);
      w.u8(m.amnesiac ? 1 : 0);
      break;
    case MembershipType::Install:
      write_config_id(w, m.config);
      w.u8(m.primary ? 1 : 0);
      w.u64(m.cut);
      w.u16(m.source);
      write_config_id(w, m.source_last_primary);
      w.u64(m.freed_upto);
      w.u16(static_cast<uint16_t>(m.entries.size()));
      for (const InstallEntry& e : m.entries) {
        w.u16(e.member);
        w.u64(e.incarnation);
        write_config_id(w, e.previous);
      }
      break;
    case MembershipType::SnapshotRequest:
      write_config_id(w, m.config);
      w.u64(m.offset);
      break;
    case MembershipType::SnapshotChunk:
      write_config_id(w, m.config);
      w.u64(m.snapshot_upto);
      w.u64(m.total);
      w.u64(m.offset);
      w.bytes(m.bytes);
      break;
  }
  return w.take();
}

std::string encode_side_copy(const std::string& segment_bytes) {
  Writer w;
  write_preamble(w, Kind::SideCopy);
  w.bytes(segment_bytes);
  return w.take();
}

bool decode_side_copy(const void* data, size_t len, std::string& segment_bytes) {
  if (len > kMaxDatagram) return false;
  Reader r(data, len);
  Kind kind;
  return read_preamble(r, kind) && kind == Kind::SideCopy && r.bytes(segment_bytes, kMaxDatagram) && r.at_end();
}

std::string encode_side_ack(uint64_t side, uint64_t held) {
  Writer w;
  write_preamble(w, Kind::SideAck);
  w.u64(side);
  w.u64(held);
  return w.take();
}

bool decode_side_ack(const void* data, size_t len, uint64_t& side, uint64_t& held) {
  Reader r(data, len);
  Kind kind;
  return read_preamble(r, kind) && kind == Kind::SideAck && r.u64(side) && r.u64(held) && r.at_end();
}

bool decode_membership(const void* data, size_t len, MembershipMessage& out) {
  out = MembershipMessage{};
  if (len > kMaxDatagram) return false;
  Reader r(data, len);
  Kind kind;
  uint8_t type, installed_primary, sender_flags;
  if (!read_preamble(r, kind) || kind != Kind::Membership) return false;
  if (!(r.u16(out.sender) && r.u16(out.group_size) && r.u64(out.incarnation) && r.u8(type) &&
        read_config_id(r, out.installed) && r.u8(installed_primary) && r.u8(sender_flags) &&
        read_config_id(r, out.promised) && r.u64(out.delivered_upto) && r.u64(out.hears)))
    return false;
  if (type < 1 || type > 8 || installed_primary > 1 || sender_flags > 3) return false;
  out.type = static_cast<MembershipType>(type);
  out.installed_primary = installed_primary == 1;
  out.sender_amnesiac = (sender_flags & 1) != 0;
  out.sender_partitionable = (sender_flags & 2) != 0;
  uint16_t count = 0;
  switch (out.type) {
    case MembershipType::Keepalive:
      break;
    case MembershipType::Prepare:
    case MembershipType::Probe:
      if (!read_config_id(r, out.config) || !r.u16(count) || count > kMaxMembers) return false;
      out.members.resize(count);
      for (uint16_t& id : out.members)
        if (!r.u16(id)) return false;
      break;
    case MembershipType::ProbeReply: {
      uint8_t verdict;
      if (!read_config_id(r, out.config) || !r.u8(verdict) || verdict > kLastVerdict) return false;
      out.verdict = static_cast<Verdict>(verdict);
      break;
    }
    case MembershipType::State: {
      uint8_t amnesiac;
      if (!(read_config_id(r, out.config) && read_config_id(r, out.last_primary) && r.u64(out.held_upto) &&
            r.u64(out.freed_upto) && r.u8(amnesiac)) ||
          amnesiac > 1)
        return false;
      out.amnesiac = amnesiac == 1;
      break;
    }
    case MembershipType::Install: {
      uint8_t primary;
      if (!(read_config_id(r, out.config) && r.u8(primary) && r.u64(out.cut) && r.u16(out.source) &&
            read_config_id(r, out.source_last_primary) && r.u64(out.freed_upto) && r.u16(count)) ||
          primary > 1 || count > kMaxMembers)
        return false;
      out.primary = primary == 1;
      out.entries.resize(count);
      for (InstallEntry& e : out.entries)
        if (!(r.u16(e.member) && r.u64(e.incarnation) && read_config_id(r, e.previous))) return false;
      break;
    }
    case MembershipType::SnapshotRequest:
      if (!(read_config_id(r, out.config) && r.u64(out.offset))) return false;
      break;
    case MembershipType::SnapshotChunk:
      if (!(read_config_id(r, out.config) && r.u64(out.snapshot_upto) && r.u64(out.total) && r.u64(out.offset) &&
            r.bytes(out.bytes, kSnapshotChunkBytes)) ||
          out.offset > out.total || out.bytes.size() > out.total - out.offset)
        return false;
      break;
  }
  return r.at_end();
}

bool decode_peer(const void* data, size_t len, PeerPacket& out) {
  out = PeerPacket{};
  if (len > kMaxDatagram) return false;
  Reader r(data, len);
  Kind kind;
  if (!read_preamble(r, kind) || kind != Kind::Peer) return false;
  if (!read_header(r, out.header)) return false;
  int records = 0;
  while (!r.at_end()) {
    uint8_t tag;
    if (!r.u8(tag)) return false;
    switch (tag) {
      case kData: {
        DataRecord d;
        if (!read_name(r, d.name) || !r.bytes(d.payload, kMaxPayload)) return false;
        out.data.push_back(std::move(d));
        break;
      }
      case kAssign: {
        AssignRecord a;
        if (!r.u64(a.global_seq) || !read_name(r, a.name)) return false;
        out.assigns.push_back(a);
        break;
      }
      case kNackData: {
        MessageName n;
        if (!read_name(r, n)) return false;
        out.nack_data.push_back(n);
        break;
      }
      case kNackAssign: {
        SeqRange s;
        if (!r.u64(s.from) || !r.u64(s.to) || s.from > s.to) return false;
        out.nack_assign.push_back(s);
        break;
      }
      case kStatus: {
        uint8_t flag;
        if (out.has_status || !r.u8(flag) || flag > 1) return false;
        out.has_status = true;
        out.want_reply = flag == 1;
        break;
      }
      default:
        return false;
    }
    ++records;
  }
  return records > 0;
}

// ---- client datagrams ----------------------------------------------------

bool valid_opcode(uint8_t v) {
  return v >= static_cast<uint8_t>(OpCode::Create) && v <= static_cast<uint8_t>(OpCode::Size);
}

const char* opcode_name(OpCode op) {
  switch (op) {
    case OpCode::Create: return "create";
    case OpCode::Destroy: return "destroy";
    case OpCode::Id: return "id";
    case OpCode::Push: return "push";
    case OpCode::Pop: return "pop";
    case OpCode::Top: return "top";
    case OpCode::Size: return "size";
  }
  return "?";
}

bool valid_reply_code(uint8_t v) { return v <= static_cast<uint8_t>(ReplyCode::NotInMajority); }

namespace {
void write_operation(Writer& w, const Operation& op) {
  w.u64(op.client_id);
  w.u64(op.request_no);
  w.u8(static_cast<uint8_t>(op.op));
  w.i32(op.arg);
  w.i32(op.item);
}
bool read_operation(Reader& r, Operation& op) {
  uint8_t code;
  if (!r.u64(op.client_id) || !r.u64(op.request_no) || !r.u8(code) || !r.i32(op.arg) ||
      !r.i32(op.item))
    return false;
  if (!valid_opcode(code) || op.request_no == 0) return false;
  op.op = static_cast<OpCode>(code);
  return true;
}
}  // namespace

std::string encode_request(const Operation& op, uint32_t attempt) {
  Writer w;
  write_preamble(w, Kind::ClientRequest);
  write_operation(w, op);
  w.u32(attempt);
  return w.take();
}

bool decode_request(const void* data, size_t len, Operation& out, uint32_t& attempt) {
  Reader r(data, len);
  Kind kind;
  return read_preamble(r, kind) && kind == Kind::ClientRequest && read_operation(r, out) &&
         r.u32(attempt) && r.at_end();
}

std::string encode_reply(const Reply& rep) {
  Writer w;
  write_preamble(w, Kind::ClientReply);
  w.u64(rep.client_id);
  w.u64(rep.request_no);
  w.u8(static_cast<uint8_t>(rep.code));
  w.i32(rep.value);
  w.u32(rep.attempt);
  w.u8(static_cast<uint8_t>((rep.lossy ? 1 : 0) | (rep.tentative ? 2 : 0)));  // flags
  return w.take();
}

bool decode_reply(const void* data, size_t len, Reply& out) {
  Reader r(data, len);
  Kind kind;
  uint8_t code, flags;
  if (!read_preamble(r, kind) || kind != Kind::ClientReply) return false;
  if (!r.u64(out.client_id) || !r.u64(out.request_no) || !r.u8(code) || !r.i32(out.value) ||
      !r.u32(out.attempt) || !r.u8(flags))
    return false;
  if (!valid_reply_code(code) || flags > 3 || !r.at_end()) return false;
  out.code = static_cast<ReplyCode>(code);
  out.lossy = (flags & 1) != 0;
  out.tentative = (flags & 2) != 0;
  return true;
}

std::string encode_batch(const std::vector<BatchedOp>& ops, uint64_t origin_time_ms) {
  Writer w;
  w.u16(static_cast<uint16_t>(ops.size()));
  for (const BatchedOp& b : ops) {
    write_operation(w, b.op);
    w.u32(b.reply_to.ipv4);
    w.u16(b.reply_to.port);
    w.u8(b.attempt);
  }
  w.u64(origin_time_ms);
  return w.take();
}

bool decode_batch(const std::string& payload, std::vector<BatchedOp>& out, uint64_t* origin_time_ms) {
  out.clear();
  Reader r(payload.data(), payload.size());
  uint16_t count;
  if (!r.u16(count) || count > kMaxBatchOps) return false;
  for (uint16_t i = 0; i < count; ++i) {
    BatchedOp b;
    if (!read_operation(r, b.op) || !r.u32(b.reply_to.ipv4) || !r.u16(b.reply_to.port) ||
        !r.u8(b.attempt))
      return false;
    out.push_back(b);
  }
  uint64_t time = 0;
  if (!r.at_end() && !r.u64(time)) return false;
  if (origin_time_ms) *origin_time_ms = time;
  return r.at_end();
}

std::string encode_status_request(uint64_t nonce) {
  Writer w;
  write_preamble(w, Kind::StatusRequest);
  w.u64(nonce);
  return w.take();
}

bool decode_status_request(const void* data, size_t len, uint64_t& nonce) {
  Reader r(data, len);
  Kind kind;
  return read_preamble(r, kind) && kind == Kind::StatusRequest && r.u64(nonce) && r.at_end();
}

std::string encode_status_reply(const ReplicaStatus& s) {
  Writer w;
  write_preamble(w, Kind::StatusReply);
  w.u64(s.nonce);
  w.u16(s.member);
  w.u64(s.delivered_upto);
  w.u64(s.stable_upto);
  w.u32(s.queues);
  w.u32(s.buffered_messages);
  w.u64(s.dropped_datagrams);
  w.u64(s.config_epoch);
  w.u16(s.config_rep);
  w.u64(s.config_members);
  w.u8(s.primary ? 1 : 0);
  w.u16(s.group_size);
  w.u16(s.reachable);
  w.u64(s.held_upto);
  return w.take();
}

bool decode_status_reply(const void* data, size_t len, ReplicaStatus& s) {
  Reader r(data, len);
  Kind kind;
  uint8_t primary = 0;
  if (!(read_preamble(r, kind) && kind == Kind::StatusReply && r.u64(s.nonce) && r.u16(s.member) &&
        r.u64(s.delivered_upto) && r.u64(s.stable_upto) && r.u32(s.queues) && r.u32(s.buffered_messages) &&
        r.u64(s.dropped_datagrams) && r.u64(s.config_epoch) && r.u16(s.config_rep) && r.u64(s.config_members) &&
        r.u8(primary) && r.u16(s.group_size) && r.u16(s.reachable) && r.u64(s.held_upto) && r.at_end()) ||
      primary > 1)
    return false;
  s.primary = primary == 1;
  return true;
}

std::string to_hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

bool from_hex(const std::string& hex, std::string& out) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (hex.size() % 2) return false;
  out.clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

}  // namespace wire
