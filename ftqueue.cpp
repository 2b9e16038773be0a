// ftqueue.cpp: queue semantics, exactly-once table, snapshot text, files.
#include "ftqueue.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>

using wire::OpCode;
using wire::Reply;
using wire::ReplyCode;

// ---- queue semantics -------------------------------------------------------

std::vector<AddressedReply> FTQueue::apply(const mcast::Delivery& d) {
  applied_upto_ = d.global_seq;
  std::vector<AddressedReply> replies;
  if (mcast::is_rotation_change(d.name)) return replies;  // an ordering matter: nothing to apply
  if (last_applied_.size() <= d.name.origin) last_applied_.resize(d.name.origin + 1);
  last_applied_[d.name.origin] = mcast::OriginPosition{d.name.incarnation, d.name.origin_seq};

  std::vector<wire::BatchedOp> batch;
  if (named_ && partition::is_merge_record(d.payload)) {
    partition::Segment part;
    if (!partition::decode_merge_record(d.payload, part)) {
      ++malformed_batches_;  // every replica got the same bytes: skipped alike
      return replies;
    }
    merge_part(part);
    return replies;
  }
  uint64_t origin_time_ms = 0;
  if (!wire::decode_batch(d.payload, batch, &origin_time_ms)) {
    // Every replica got the same bytes, so every replica skips them alike.
    ++malformed_batches_;
    return replies;
  }
  cluster_time_ms_ = std::max(cluster_time_ms_, origin_time_ms);
  expire_idle_clients();
  for (size_t index = 0; index < batch.size(); ++index) {
    const wire::BatchedOp& b = batch[index];
    const wire::Operation& op = b.op;
    ClientRecord& client = touch_client(op.client_id);
    if (op.request_no < client.last_request) continue;
    if (op.request_no > client.last_request || (!exactly_once_ && op.request_no == client.last_request)) {
      Reply r = execute(op, partition::ItemName{d.name.incarnation, d.global_seq, static_cast<uint32_t>(index)});
      client = ClientRecord{op.request_no, r.code, r.value, client.last_seen_ms};
    }
    Reply reply{op.client_id, op.request_no, client.code, client.value};
    reply.tentative = client.tentative;  // a repeat of a side's request, merged before it
    reply.attempt = b.attempt;
    replies.push_back(AddressedReply{reply, b.reply_to});
  }
  return replies;
}

// The client's record, created if new, stamped with the cluster time.
FTQueue::ClientRecord& FTQueue::touch_client(uint64_t client_id) {
  ClientRecord& client = clients_[client_id];
  clients_by_last_seen_.erase({client.last_seen_ms, client_id});
  client.last_seen_ms = cluster_time_ms_;
  clients_by_last_seen_.insert({client.last_seen_ms, client_id});
  return client;
}

void FTQueue::expire_idle_clients() {
  while (!clients_by_last_seen_.empty() &&
         clients_by_last_seen_.begin()->first + kClientExpiryMs < cluster_time_ms_) {
    clients_.erase(clients_by_last_seen_.begin()->second);
    clients_by_last_seen_.erase(clients_by_last_seen_.begin());
  }
}

Reply FTQueue::execute(const wire::Operation& op, const partition::ItemName& name) {
  Reply r{op.client_id, op.request_no, ReplyCode::Ok, 0};
  if (op.op == OpCode::Create || op.op == OpCode::Id) {
    auto found = id_by_label_.find(op.arg);
    if (found != id_by_label_.end()) {
      r.value = found->second;
    } else if (op.op == OpCode::Id) {
      r.value = -1;
    } else if (next_id_ > INT32_MAX || (named_ && next_id_ >= partition::kFirstTentativeId)) {
      r.code = ReplyCode::IdsExhausted;
    } else {
      int32_t id = static_cast<int32_t>(next_id_++);
      queues_[id] = Queue{op.arg, {}, {}, true};
      id_by_label_[op.arg] = id;
      r.value = id;
    }
    return r;
  }
  auto q = queues_.find(named_ ? partition::QueueState::resolve(alias_, op.arg) : op.arg);
  if (q == queues_.end()) {
    r.code = ReplyCode::NoQueue;
    return r;
  }
  std::deque<int32_t>& items = q->second.items;
  switch (op.op) {
    case OpCode::Destroy:
      if (q->second.has_label) id_by_label_.erase(q->second.label);
      queues_.erase(q);
      break;
    case OpCode::Push:
      items.push_back(op.item);
      if (named_) q->second.names.push_back(name);
      break;
    case OpCode::Pop:
    case OpCode::Top:
      if (items.empty()) {
        r.code = ReplyCode::Empty;
        break;
      }
      r.value = items.front();
      if (op.op == OpCode::Pop) {
        items.pop_front();
        if (named_) q->second.names.pop_front();
      }
      break;
    case OpCode::Size:
      r.value = static_cast<int32_t>(std::min<size_t>(items.size(), INT32_MAX));
      break;
    default:
      break;
  }
  return r;
}

std::optional<Reply> FTQueue::cached_reply(uint64_t client_id, uint64_t request_no) const {
  auto it = clients_.find(client_id);
  if (it == clients_.end() || it->second.last_request != request_no) return std::nullopt;
  Reply r{client_id, request_no, it->second.code, it->second.value};
  r.tentative = it->second.tentative;
  return r;
}

bool FTQueue::superseded(uint64_t client_id, uint64_t request_no) const {
  auto it = clients_.find(client_id);
  return it != clients_.end() && it->second.last_request > request_no;
}

mcast::SequencePosition FTQueue::position() const {
  return mcast::SequencePosition{applied_upto_, last_applied_};
}

// ---- snapshot text ---------------------------------------------------------

namespace {

const char* code_word(ReplyCode c) {
  switch (c) {
    case ReplyCode::Ok: return "ok";
    case ReplyCode::NoQueue: return "no_queue";
    case ReplyCode::Empty: return "empty";
    case ReplyCode::Busy: return "busy";
    case ReplyCode::IdsExhausted: return "ids_exhausted";
    case ReplyCode::NotInMajority: return "not_in_majority";
  }
  return "?";
}

bool parse_code(const std::string& w, ReplyCode& c) {
  for (uint8_t v = 0; wire::valid_reply_code(v); ++v) {
    if (w == code_word(static_cast<ReplyCode>(v))) {
      c = static_cast<ReplyCode>(v);
      return true;
    }
  }
  return false;
}

constexpr const char* kSnapshotMagic = "ftqueue-snapshot v1";

bool parse_int32(const std::string& w, int32_t& out) {
  if (w.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(w.c_str(), &end, 10);
  if (errno != 0 || *end != 0 || v < INT32_MIN || v > INT32_MAX) return false;
  out = static_cast<int32_t>(v);
  return true;
}

bool parse_u64(const std::string& w, uint64_t& out) {
  if (w.empty() || w.find_first_not_of("0123456789") != std::string::npos || w.size() > 20) return false;
  errno = 0;
  out = std::strtoull(w.c_str(), nullptr, 10);
  return errno == 0;
}

// "VALUE" (or, named, "VALUE@SIDE.K.INDEX") onto the queue.
template <typename Q>
bool parse_item(const std::string& word, bool named, Q& q) {
  const size_t at = word.find('@');
  int32_t value;
  if (!parse_int32(word.substr(0, at), value) || named != (at != std::string::npos)) return false;
  if (named) {
    const std::string name = word.substr(at + 1);
    const size_t dot1 = name.find('.'), dot2 = dot1 == std::string::npos ? dot1 : name.find('.', dot1 + 1);
    partition::ItemName n;
    uint64_t index = 0;
    if (dot2 == std::string::npos || !parse_u64(name.substr(0, dot1), n.side) ||
        !parse_u64(name.substr(dot1 + 1, dot2 - dot1 - 1), n.k) || !parse_u64(name.substr(dot2 + 1), index) ||
        index > UINT32_MAX)
      return false;
    n.index = static_cast<uint32_t>(index);
    q.names.push_back(n);
  }
  q.items.push_back(value);
  return true;
}

}  // namespace

// ---- partitionable mode ------------------------------------------------------

// A queue as the merge sees it (each item with its name), and back.
partition::Queue FTQueue::named_queue(const Queue& q) {
  partition::Queue out;
  out.label = q.label;
  out.has_label = q.has_label;
  for (size_t i = 0; i < q.items.size(); ++i)
    out.items.push_back(partition::Item{i < q.names.size() ? q.names[i] : partition::ItemName{}, q.items[i]});
  return out;
}

FTQueue::Queue FTQueue::unnamed_queue(const partition::Queue& q) {
  Queue out;
  out.label = q.label;
  out.has_label = q.has_label;
  for (const partition::Item& it : q.items) {
    out.items.push_back(it.value);
    out.names.push_back(it.name);
  }
  return out;
}

// A client's entry in the exactly-once table, as the merge sees it, and back.
partition::ClientEntry FTQueue::named_client(const ClientRecord& c) {
  return partition::ClientEntry{c.last_request, c.code, c.value, c.last_seen_ms, c.tentative};
}

FTQueue::ClientRecord FTQueue::unnamed_client(const partition::ClientEntry& c) {
  return ClientRecord{c.request_no, c.code, c.value, c.last_seen_ms, c.tentative};
}

// The state beside the queues and the client table: labels, aliases, what
// is merged, the id counters and the clock.
void FTQueue::put_tables(partition::QueueState& s) const {
  s.id_by_label = id_by_label_;
  s.alias = alias_;
  s.absorbed = absorbed_;
  s.tentative_counts = tentative_counts_;
  s.next_id = next_id_;
  s.cluster_time_ms = cluster_time_ms_;
}

void FTQueue::adopt_tables(const partition::QueueState& merged) {
  id_by_label_ = merged.id_by_label;
  alias_ = merged.alias;
  absorbed_ = merged.absorbed;
  tentative_counts_ = merged.tentative_counts;
  next_id_ = merged.next_id;
  cluster_time_ms_ = merged.cluster_time_ms;
}

partition::QueueState FTQueue::named_state() const {
  partition::QueueState s;
  for (const auto& [id, q] : queues_) s.queues[id] = named_queue(q);
  for (const auto& [id, c] : clients_)
    s.clients[id] = named_client(c);
  put_tables(s);
  return s;
}

// A MERGE record's part, merged as partition::merge() merges it into the
// whole state, but copying out and back only what its effects can reach:
// the queues they name, the queues those ids stand for (aliases) and the
// queues holding their labels (a create's alias target), and the clients
// they name. merge() reads no other queue or client: every
// rule starts from an effect's queue id (resolved), label or client id. A
// queue the merge creates or brings back is one of these ids. So a part
// costs the queues it touches, not the whole state. Still copied: a touched
// queue whole (a side's 1,500 pushes, 94 parts, into a queue of 200,000
// items take 0.2-0.35 s at every replica; into a small queue beside it,
// 1.6 ms, from 449 ms when every part copied the whole state).
void FTQueue::merge_part(const partition::Segment& part) {
  // Every holder of a side's work multicasts it, so most copies come after
  // one was merged: skipped without copying anything (as merge() skips it).
  last_merge_ = partition::MergeCounts{};
  auto done = absorbed_.find(part.side);
  if (done != absorbed_.end() && done->second >= part.end() && merge_bug_ != partition::MergeBug::NoAbsorbed) {
    ++last_merge_.already_absorbed;
    return;
  }
  std::set<int32_t> reach;
  std::set<uint64_t> client_ids;
  for (const partition::Effect& e : part.effects) {
    reach.insert(e.queue);
    reach.insert(partition::QueueState::resolve(alias_, e.queue));
    if (auto holder = id_by_label_.find(e.label); holder != id_by_label_.end()) reach.insert(holder->second);
    if (e.client_id != 0) client_ids.insert(e.client_id);
  }
  partition::QueueState s;
  for (int32_t id : reach)
    if (auto q = queues_.find(id); q != queues_.end()) s.queues[id] = named_queue(q->second);
  for (uint64_t id : client_ids)
    if (auto c = clients_.find(id); c != clients_.end())
      s.clients[id] = named_client(c->second);
  put_tables(s);
  const partition::QueueState merged = partition::merge(std::move(s), {part}, last_merge_, merge_bug_);
  for (int32_t id : reach) queues_.erase(id);
  for (const auto& [id, q] : merged.queues) queues_[id] = unnamed_queue(q);
  for (const auto& [id, c] : merged.clients) {
    if (auto old = clients_.find(id); old != clients_.end()) clients_by_last_seen_.erase({old->second.last_seen_ms, id});
    clients_[id] = unnamed_client(c);
    clients_by_last_seen_.insert({c.last_seen_ms, id});
  }
  adopt_tables(merged);
}

void FTQueue::adopt(const partition::QueueState& merged) {
  queues_.clear();
  for (const auto& [id, q] : merged.queues) queues_[id] = unnamed_queue(q);
  adopt_tables(merged);
  clients_.clear();
  for (const auto& [id, c] : merged.clients)
    clients_[id] = unnamed_client(c);
  clients_by_last_seen_.clear();
  for (const auto& [id, c] : clients_) clients_by_last_seen_.insert({c.last_seen_ms, id});
  named_ = true;
}

std::string FTQueue::render_snapshot() const {
  std::ostringstream out;
  out << kSnapshotMagic << "\n";
  out << "applied_upto " << applied_upto_ << "\n";
  for (size_t o = 0; o < last_applied_.size(); ++o)
    if (last_applied_[o].incarnation != 0)
      out << "origin " << o << " " << last_applied_[o].incarnation << " "
          << last_applied_[o].origin_seq << "\n";
  out << "next_id " << next_id_ << "\n";
  out << "cluster_time_ms " << cluster_time_ms_ << "\n";
  if (named_) out << "named_items\n";
  for (const auto& [id, q] : queues_) {
    out << "queue " << id << (q.has_label ? " label " : " former_label ") << q.label << " items " << q.items.size()
        << ":";
    for (size_t i = 0; i < q.items.size(); ++i) {
      out << " " << q.items[i];
      if (named_) out << "@" << q.names[i].text();
    }
    out << "\n";
  }
  for (const auto& [from, to] : alias_) out << "alias " << from << " " << to << "\n";
  for (const auto& [side, count] : absorbed_) out << "absorbed " << side << " " << count << "\n";
  for (const auto& [leader, count] : tentative_counts_) out << "tentative_count " << leader << " " << count << "\n";
  char hex[17];
  for (const auto& [client, rec] : clients_) {
    std::snprintf(hex, sizeof hex, "%016" PRIx64, client);
    out << "client " << hex << " request " << rec.last_request << " reply "
        << code_word(rec.code) << " " << rec.value << " seen " << rec.last_seen_ms
        << (rec.tentative ? " tentative" : "") << "\n";
  }
  out << "end\n";
  return out.str();
}

bool FTQueue::load_snapshot(const std::string& text, std::string& error) {
  FTQueue fresh;
  std::istringstream in(text);
  std::string line;
  if (!std::getline(in, line) || line != kSnapshotMagic) {
    error = "not an FTQueue snapshot (first line should be '" + std::string(kSnapshotMagic) + "')";
    return false;
  }
  bool ended = false;
  int line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    std::istringstream fields(line);
    std::string word;
    fields >> word;
    bool ok = true;
    if (word == "applied_upto") {
      ok = static_cast<bool>(fields >> fresh.applied_upto_);
    } else if (word == "origin") {
      size_t o;
      mcast::OriginPosition pos;
      ok = static_cast<bool>(fields >> o >> pos.incarnation >> pos.origin_seq) && o < 65536;
      if (ok) {
        if (fresh.last_applied_.size() <= o) fresh.last_applied_.resize(o + 1);
        fresh.last_applied_[o] = pos;
      }
    } else if (word == "cluster_time_ms") {
      ok = static_cast<bool>(fields >> fresh.cluster_time_ms_);
    } else if (word == "next_id") {
      ok = static_cast<bool>(fields >> fresh.next_id_) && fresh.next_id_ >= 1;
    } else if (word == "named_items") {
      ok = fresh.queues_.empty();
      fresh.named_ = true;
    } else if (word == "queue") {
      int32_t id;
      Queue q;
      std::string label_word, items_word;
      size_t count;
      char colon;
      ok = static_cast<bool>(fields >> id >> label_word >> q.label >> items_word >> count >> colon) &&
           (label_word == "label" || (fresh.named_ && label_word == "former_label")) && items_word == "items" &&
           colon == ':' && !fresh.queues_.count(id);
      q.has_label = label_word == "label";
      for (size_t i = 0; ok && i < count; ++i) {
        std::string item;
        ok = static_cast<bool>(fields >> item) && parse_item(item, fresh.named_, q);
      }
      if (ok) {
        if (q.has_label) fresh.id_by_label_[q.label] = id;
        fresh.queues_[id] = std::move(q);
      }
    } else if (word == "alias" && fresh.named_) {
      int32_t from, to;
      ok = static_cast<bool>(fields >> from >> to) && !fresh.alias_.count(from);
      if (ok) fresh.alias_[from] = to;
    } else if (word == "absorbed" && fresh.named_) {
      uint64_t side;
      uint64_t count;
      ok = static_cast<bool>(fields >> side >> count) && !fresh.absorbed_.count(side);
      if (ok) fresh.absorbed_[side] = count;
    } else if (word == "tentative_count" && fresh.named_) {
      uint32_t leader;
      uint64_t count;
      ok = static_cast<bool>(fields >> leader >> count) && !fresh.tentative_counts_.count(leader);
      if (ok) fresh.tentative_counts_[leader] = count;
    } else if (word == "client") {
      std::string hex, request_word, reply_word, code;
      ClientRecord rec;
      ok = static_cast<bool>(fields >> hex >> request_word >> rec.last_request >> reply_word >> code >>
                             rec.value) &&
           request_word == "request" && reply_word == "reply" && parse_code(code, rec.code);
      std::string seen_word;  // absent in snapshots written before expiry existed
      if (ok && fields >> seen_word) ok = seen_word == "seen" && static_cast<bool>(fields >> rec.last_seen_ms);
      std::string tentative_word;  // partitionable mode: a side's reply, merged
      if (ok && fields >> tentative_word) ok = tentative_word == "tentative" && fresh.named_;
      rec.tentative = ok && tentative_word == "tentative";
      char* end = nullptr;
      uint64_t client = ok ? std::strtoull(hex.c_str(), &end, 16) : 0;
      ok = ok && hex.size() == 16 && end && *end == 0 && !fresh.clients_.count(client);
      if (ok) {
        fresh.clients_[client] = rec;
        fresh.clients_by_last_seen_.insert({rec.last_seen_ms, client});
      }
    } else if (word == "end") {
      ended = true;
      break;
    } else {
      ok = false;
    }
    if (!ok) {
      error = "snapshot line " + std::to_string(line_no) + " is malformed: " + line;
      return false;
    }
  }
  if (!ended) {
    error = "snapshot is truncated (no 'end' line)";
    return false;
  }
  *this = std::move(fresh);
  return true;
}

// ---- files -------------------------------------------------------------------

bool read_file(const std::string& path, std::string& out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.clear();
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return true;
}

namespace {

// All of `data`, at `offset` in the file (pwrite: the file offset is not
// used, so the log's appends go exactly where log_end_ says).
bool write_all(int fd, const std::string& data, uint64_t offset) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

bool make_dirs(const std::string& dir) {
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    std::string part = dir.substr(0, pos);
    if (::mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) return false;
  }
  struct stat st;
  return ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// ---- log lines (the format is described in ftqueue.hpp) -------------------

// A whole number: digits only, no sign, no overflow.
bool parse_number(const std::string& word, uint64_t& out) {
  if (word.empty() || word.size() > 20) return false;
  uint64_t v = 0;
  for (char c : word) {
    if (c < '0' || c > '9') return false;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) return false;
    v = v * 10 + digit;
  }
  out = v;
  return true;
}

bool parse_member(const std::string& word, mcast::MemberId& out) {
  uint64_t v;
  if (!parse_number(word, v) || v > UINT16_MAX) return false;
  out = static_cast<mcast::MemberId>(v);
  return true;
}

// "E.R"
bool parse_config_id(const std::string& word, mcast::ConfigId& out) {
  size_t dot = word.find('.');
  return dot != std::string::npos && parse_number(word.substr(0, dot), out.epoch) &&
         parse_member(word.substr(dot + 1), out.rep);
}

std::vector<std::string> split(const std::string& line, char sep) {
  std::vector<std::string> words;
  size_t start = 0;
  for (;;) {
    size_t end = line.find(sep, start);
    words.push_back(line.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) return words;
    start = end + 1;
  }
}

// "K ORIGIN INCARNATION ORIGIN_SEQ HEX" (an empty payload is "-").
std::string record_fields(const mcast::Delivery& d) {
  return std::to_string(d.global_seq) + " " + std::to_string(d.name.origin) + " " +
         std::to_string(d.name.incarnation) + " " + std::to_string(d.name.origin_seq) + " " +
         (d.payload.empty() ? std::string("-") : wire::to_hex(d.payload));
}

bool parse_record_fields(const std::vector<std::string>& w, size_t at, mcast::Delivery& d) {
  if (w.size() != at + 5) return false;
  if (!parse_number(w[at], d.global_seq) || d.global_seq == 0 || !parse_member(w[at + 1], d.name.origin) ||
      !parse_number(w[at + 2], d.name.incarnation) || !parse_number(w[at + 3], d.name.origin_seq))
    return false;
  if (w[at + 4] == "-") {
    d.payload.clear();
    return true;
  }
  return !w[at + 4].empty() && wire::from_hex(w[at + 4], d.payload);
}

std::string log_line(const mcast::LogRecord& r) {
  using Kind = mcast::LogRecord::Kind;
  switch (r.kind) {
    case Kind::Held:
      return "held " + record_fields(r.held) + "\n";
    case Kind::Staged:
      return "staged " + record_fields(r.held) + "\n";
    case Kind::Delivered:
      return "delivered " + std::to_string(r.upto) + "\n";
    case Kind::Truncate:
      return "truncate " + std::to_string(r.upto) + "\n";
    case Kind::Promise:
      return "promise " + r.config.id.text() + "\n";
    case Kind::Install: {
      std::string members;
      for (mcast::MemberId m : r.config.members) members += (members.empty() ? "" : ",") + std::to_string(m);
      return "install " + r.config.id.text() + (r.config.primary ? " primary " : " minority ") +
             std::to_string(r.config.cut) + " " + (members.empty() ? "-" : members) + " keep " +
             std::to_string(r.upto) +
             (r.claim_upto == mcast::LogRecord::kNoClaim ? "" : " claim " + std::to_string(r.claim_upto)) + "\n";
    }
    case Kind::OrderComplete:
      return "last-primary " + r.config.id.text() + "\n";
  }
  return "";
}

// One parsed line of log.txt. Besides the LogRecord kinds it may be a
// `last-primary` line (written by a rewrite), or, in a phase-one data
// directory, a bare "K ORIGIN INC SEQ HEX" line (a delivered message: read as
// `held K ...` then `delivered K`) or an "assign K ORIGIN INC SEQ HEX" line
// (an own assignment not yet delivered: read as `held K ...` only). The
// rewrite at open leaves only the new format.
struct LogLine {
  mcast::LogRecord record;
  bool then_delivered = false;  // a phase-one bare line: record (Held), then delivered K
};

bool parse_log_line(const std::string& line, LogLine& out) {
  using Kind = mcast::LogRecord::Kind;
  std::vector<std::string> w = split(line, ' ');
  mcast::LogRecord& r = out.record;
  const std::string& word = w[0];
  if (word == "held" || word == "assign" || word == "staged") {
    r.kind = word == "staged" ? Kind::Staged : Kind::Held;
    return parse_record_fields(w, 1, r.held);
  }
  if (!word.empty() && word[0] >= '0' && word[0] <= '9') {
    r.kind = Kind::Held;
    out.then_delivered = true;
    return parse_record_fields(w, 0, r.held);
  }
  if (word == "delivered" || word == "truncate") {
    r.kind = word == "delivered" ? Kind::Delivered : Kind::Truncate;
    return w.size() == 2 && parse_number(w[1], r.upto);
  }
  if (word == "promise" || word == "last-primary") {
    r.kind = word == "promise" ? Kind::Promise : Kind::OrderComplete;
    return w.size() == 2 && parse_config_id(w[1], r.config.id) && !r.config.id.none();
  }
  if (word == "install") {
    r.kind = Kind::Install;
    // Earlier versions wrote no claim (5 or 7 words); LogReplay reads those as they were meant.
    if ((w.size() != 5 && w.size() != 7 && w.size() != 9) || !parse_config_id(w[1], r.config.id) ||
        r.config.id.none() || (w[2] != "primary" && w[2] != "minority") || !parse_number(w[3], r.config.cut) ||
        (w.size() >= 7 && (w[5] != "keep" || !parse_number(w[6], r.upto))) ||
        (w.size() == 9 && (w[7] != "claim" || !parse_number(w[8], r.claim_upto) ||
                           r.claim_upto == mcast::LogRecord::kNoClaim)))
      return false;
    r.config.primary = w[2] == "primary";
    if (w[4] == "-") return true;
    for (const std::string& m : split(w[4], ',')) {
      mcast::MemberId id;
      if (!parse_member(m, id)) return false;
      r.config.members.push_back(id);
    }
    return true;
  }
  return false;
}

}  // namespace


bool write_file_atomically(const std::string& path, const std::string& text, std::string& error, bool sync) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = errno_text("cannot create " + tmp);
    return false;
  }
  bool ok = write_all(fd, text, 0) && (!sync || ::fsync(fd) == 0);
  if (!ok) error = errno_text("cannot write " + tmp);
  ::close(fd);
  if (ok && ::rename(tmp.c_str(), path.c_str()) != 0) {
    error = errno_text("cannot rename " + tmp);
    ok = false;
  }
  // The rename itself must reach the disk too, or a power cut could bring
  // back the old file beside a newer one (a snapshot older than its log).
  if (ok && sync) sync_directory_of(path);
  return ok;
}

void sync_directory_of(const std::string& path) {
  std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
  int dir_fd = ::open(dir.empty() ? "/" : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

ReplicaStore::~ReplicaStore() {
  if (log_fd_ >= 0) ::close(log_fd_);
}

bool ReplicaStore::open(FTQueue& state, mcast::Restored& restored, std::string& error) {
  if (!make_dirs(dir_)) {
    error = errno_text("cannot create data directory " + dir_);
    return false;
  }
  // Work on copies: on error the caller's state and restored stay as they were.
  FTQueue rebuilt;
  if (state.names_items()) rebuilt.name_items();  // partitionable: a log with no snapshot yet replays named
  std::string text;
  if (read_file(path("snapshot.txt"), text) && !rebuilt.load_snapshot(text, error)) {
    error = path("snapshot.txt") + ": " + error;
    return false;
  }
  const uint64_t snapshot_upto = rebuilt.applied_upto();
  const uint64_t snapshot_bytes = text.size();
  mcast::LogReplay replay(snapshot_upto);  // the rules: membership.hpp
  // Replay the log. A torn last line (the server died mid-write) is dropped;
  // an unparsable line, which only a damaged file could contain, ends the
  // replay there. So does a line that would void or replace a record this
  // replay already applied beyond the snapshot (the protocol never voids,
  // nor holds again, what it delivered): the rewrite below must be able to
  // rebuild what was applied.
  std::string log;
  read_file(path("log.txt"), log);
  // The log ends at its first NUL byte: beyond it is space preallocated
  // for appends (with fsync, see append), or a page a power cut lost.
  log.resize(std::min(log.size(), log.find('\0')));
  using Kind = mcast::LogRecord::Kind;
  size_t start = 0;
  while (start < log.size()) {
    size_t end = log.find('\n', start);
    if (end == std::string::npos) break;
    LogLine line;
    if (!parse_log_line(log.substr(start, end - start), line)) break;
    mcast::LogRecord& r = line.record;
    if (replay.undoes_applied(r, rebuilt.applied_upto()) != mcast::LogReplay::Undo::None) break;
    start = end + 1;

    uint64_t deliver_upto = 0;  // a delivered mark to apply, if any
    if (r.kind == Kind::Delivered) deliver_upto = r.upto;
    if (line.then_delivered) deliver_upto = r.held.global_seq;
    replay.add(r);
    if (line.then_delivered) {
      mcast::LogRecord mark;
      mark.kind = Kind::Delivered;
      mark.upto = deliver_upto;
      replay.add(mark);
    }
    for (uint64_t k = rebuilt.applied_upto() + 1; k <= deliver_upto; ++k) {
      const mcast::Delivery* d = replay.held(k);
      if (!d) {
        // The log delivers past a record it does not hold: the snapshot is
        // older than the log was written against (restored from elsewhere,
        // or lost). Starting would throw away logged messages, own
        // assignments among them, so refuse, and change nothing.
        error = path("log.txt") + " delivers up to k=" + std::to_string(deliver_upto) + " but does not hold k=" +
                std::to_string(k) + ", and " + path("snapshot.txt") + " ends at k=" +
                std::to_string(rebuilt.applied_upto()) +
                ": the snapshot is older than the log (restored or lost?); refusing to start, nothing changed";
        return false;
      }
      rebuilt.apply(*d);
    }
  }
  mcast::Restored found = replay.finish();
  found.delivered_upto = rebuilt.applied_upto();
  if (!rewrite_log(found, rebuilt.applied_upto(), error, fsync_)) return false;
  files_unsynced_ = !fsync_;
  appended_bytes_since_snapshot_ = 0;
  snapshot_bytes_ = snapshot_bytes;
  state = std::move(rebuilt);
  restored = std::move(found);
  return true;
}

bool ReplicaStore::next_incarnation(uint64_t now_us, uint64_t& incarnation, std::string& error) {
  std::string text;
  uint64_t last = 0;
  if (read_file(path("incarnation"), text)) last = std::strtoull(text.c_str(), nullptr, 10);
  // The clock keeps it growing even if the file is lost with its directory.
  incarnation = std::max(last + 1, now_us);
  return write_file_atomically(path("incarnation"), std::to_string(incarnation) + "\n", error);
}

bool ReplicaStore::append(const std::vector<mcast::LogRecord>& records, std::string& error) {
  if (records.empty()) return true;
  std::string text;
  for (const mcast::LogRecord& r : records) text += log_line(r);
  const size_t record_bytes = text.size();
  // With fsync, the file is kept longer than its records, the rest zeros
  // (kLogPreallocation at a time, written with the records that need the
  // room): an fdatasync after an append that grows the file must also
  // commit its new size to the file system's journal, while one after an
  // overwrite inside the file writes data only. (etcd preallocates its WAL
  // for the same reason.) open() reads up to the first NUL.
  if (fsync_ && log_end_ + record_bytes > log_room_) text.append(kLogPreallocation, '\0');
  if (!write_all(log_fd_, text, log_end_)) {
    error = errno_text("cannot append to " + path("log.txt"));
    return false;
  }
  log_room_ = std::max(log_room_, log_end_ + text.size());
  log_end_ += record_bytes;
  appended_bytes_since_snapshot_ += record_bytes;
  return true;
}

// A last line without its newline is an append a crash cut short: its sync
// never completed, so no answer rests on it. It is dropped, and cut from
// the file, so that the next append starts a line of its own (glued to the
// fragment, it would be unreadable, and every line after it out of place).
bool ReplicaStore::read_tentative(std::vector<std::string>& lines, std::string& error) {
  std::string text;
  lines.clear();
  const std::string file = path("tentative.txt");
  if (!read_file(file, text)) {
    if (errno == ENOENT) return true;
    error = errno_text("cannot read " + file);
    return false;
  }
  const size_t whole = text.empty() || text.back() == '\n' ? text.size() : text.rfind('\n') + 1;  // npos + 1 == 0
  if (whole < text.size()) {
    text.resize(whole);
    if (::truncate(file.c_str(), static_cast<off_t>(whole)) != 0) {
      error = errno_text("cannot cut the torn last line of " + file);
      return false;
    }
  }
  for (const std::string& line : split(text, '\n'))
    if (!line.empty()) lines.push_back(line);
  return true;
}

bool ReplicaStore::write_tentative(const std::vector<std::string>& lines, bool replace, std::string& error) {
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  const std::string file = path("tentative.txt");
  if (replace) return write_file_atomically(file, text, error, true);
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = errno_text("cannot open " + file);
    return false;
  }
  struct stat st;
  const bool ok = ::fstat(fd, &st) == 0 && write_all(fd, text, static_cast<uint64_t>(st.st_size)) && ::fdatasync(fd) == 0;
  if (!ok) error = errno_text("cannot write " + file);
  ::close(fd);
  // A new file's name must survive a power cut too (once, when it was empty).
  if (ok && st.st_size == 0) sync_directory_of(file);
  return ok;
}

bool ReplicaStore::sync(std::string& error) {
  if (files_unsynced_) {  // a snapshot rewrote them unsynced (without fsync): the snapshot, then the directory
    std::string text;
    if (read_file(path("snapshot.txt"), text) && !write_file_atomically(path("snapshot.txt"), text, error, true))
      return false;
    if (::fdatasync(log_fd_) != 0) {
      error = errno_text("cannot sync " + path("log.txt"));
      return false;
    }
    sync_directory_of(path("log.txt"));
    files_unsynced_ = false;
    return true;
  }
  if (::fdatasync(log_fd_) == 0) return true;
  error = errno_text("cannot sync " + path("log.txt"));
  return false;
}

bool ReplicaStore::write_snapshot(const FTQueue& state, const mcast::Restored& protocol, std::string& error,
                                  bool durable) {
  const std::string snapshot = state.render_snapshot();
  const bool sync = fsync_ || durable;
  if (!write_file_atomically(path("snapshot.txt"), snapshot, error, sync)) return false;
  if (!rewrite_log(protocol, state.applied_upto(), error, sync)) return false;
  files_unsynced_ = !sync;
  appended_bytes_since_snapshot_ = 0;
  snapshot_bytes_ = snapshot.size();
  return true;
}

// The log a restart needs: the promise, the last primary (when the install
// line does not say it already), the last installed configuration, the held
// records, and a delivered mark at `delivered_mark` (the state's
// applied_upto: never above what the snapshot and these records rebuild).
bool ReplicaStore::rewrite_log(const mcast::Restored& protocol, uint64_t delivered_mark, std::string& error,
                               bool sync) {
  using Kind = mcast::LogRecord::Kind;
  std::string text;
  mcast::LogRecord r;
  if (!protocol.promised.none()) {
    r.kind = Kind::Promise;
    r.config.id = protocol.promised;
    text += log_line(r);
  }
  if (protocol.last_installed) {
    r.kind = Kind::Install;
    r.config = *protocol.last_installed;
    r.upto = protocol.install_keep;
    r.claim_upto = protocol.claim_upto;
    text += log_line(r);
  }
  if (!protocol.last_primary.none()) {
    r.kind = Kind::OrderComplete;
    r.config = mcast::Configuration{};
    r.config.id = protocol.last_primary;
    text += log_line(r);
  }
  for (const mcast::Delivery& d : protocol.held) text += "held " + record_fields(d) + "\n";
  for (const mcast::Delivery& d : protocol.staged) text += "staged " + record_fields(d) + "\n";
  text += "delivered " + std::to_string(delivered_mark) + "\n";
  if (!write_file_atomically(path("log.txt"), text, error, sync)) return false;
  if (log_fd_ >= 0) ::close(log_fd_);
  log_fd_ = ::open(path("log.txt").c_str(), O_WRONLY | O_CLOEXEC);
  if (log_fd_ < 0) {
    error = errno_text("cannot open " + path("log.txt"));
    return false;
  }
  log_end_ = log_room_ = text.size();
  return true;
}
