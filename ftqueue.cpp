// ftqueue.cpp: queue semantics, exactly-once table, snapshot text, files.
#include "ftqueue.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <climits>
#include <cstring>
#include <sstream>

using wire::OpCode;
using wire::Reply;
using wire::ReplyCode;

// ---- queue semantics -------------------------------------------------------

std::vector<AddressedReply> FTQueue::apply(const mcast::Delivery& d) {
  applied_upto_ = d.global_seq;
  if (last_applied_.size() <= d.name.origin) last_applied_.resize(d.name.origin + 1);
  last_applied_[d.name.origin] = mcast::OriginPosition{d.name.incarnation, d.name.origin_seq};

  std::vector<wire::BatchedOp> batch;
  std::vector<AddressedReply> replies;
  uint64_t origin_time_ms = 0;
  if (!wire::decode_batch(d.payload, batch, &origin_time_ms)) {
    // Every replica got the same bytes, so every replica skips them alike.
    ++malformed_batches_;
    return replies;
  }
  cluster_time_ms_ = std::max(cluster_time_ms_, origin_time_ms);
  expire_idle_clients();
  for (const wire::BatchedOp& b : batch) {
    const wire::Operation& op = b.op;
    ClientRecord& client = touch_client(op.client_id);
    if (op.request_no < client.last_request) continue;
    if (op.request_no > client.last_request) {
      Reply r = execute(op);
      client = ClientRecord{op.request_no, r.code, r.value, client.last_seen_ms};
    }
    Reply reply{op.client_id, op.request_no, client.code, client.value};
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

Reply FTQueue::execute(const wire::Operation& op) {
  Reply r{op.client_id, op.request_no, ReplyCode::Ok, 0};
  if (op.op == OpCode::Create || op.op == OpCode::Id) {
    auto found = id_by_label_.find(op.arg);
    if (found != id_by_label_.end()) {
      r.value = found->second;
    } else if (op.op == OpCode::Id) {
      r.value = -1;
    } else if (next_id_ > INT32_MAX) {
      r.code = ReplyCode::IdsExhausted;
    } else {
      int32_t id = static_cast<int32_t>(next_id_++);
      queues_[id] = Queue{op.arg, {}};
      id_by_label_[op.arg] = id;
      r.value = id;
    }
    return r;
  }
  auto q = queues_.find(op.arg);
  if (q == queues_.end()) {
    r.code = ReplyCode::NoQueue;
    return r;
  }
  std::deque<int32_t>& items = q->second.items;
  switch (op.op) {
    case OpCode::Destroy:
      id_by_label_.erase(q->second.label);
      queues_.erase(q);
      break;
    case OpCode::Push:
      items.push_back(op.item);
      break;
    case OpCode::Pop:
    case OpCode::Top:
      if (items.empty()) {
        r.code = ReplyCode::Empty;
        break;
      }
      r.value = items.front();
      if (op.op == OpCode::Pop) items.pop_front();
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
  return Reply{client_id, request_no, it->second.code, it->second.value};
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

}  // namespace

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
  for (const auto& [id, q] : queues_) {
    out << "queue " << id << " label " << q.label << " items " << q.items.size() << ":";
    for (int32_t item : q.items) out << " " << item;
    out << "\n";
  }
  char hex[17];
  for (const auto& [client, rec] : clients_) {
    std::snprintf(hex, sizeof hex, "%016" PRIx64, client);
    out << "client " << hex << " request " << rec.last_request << " reply "
        << code_word(rec.code) << " " << rec.value << " seen " << rec.last_seen_ms << "\n";
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
    } else if (word == "queue") {
      int32_t id;
      Queue q;
      std::string label_word, items_word;
      size_t count;
      char colon;
      ok = static_cast<bool>(fields >> id >> label_word >> q.label >> items_word >> count >> colon) &&
           label_word == "label" && items_word == "items" && colon == ':';
      for (size_t i = 0; ok && i < count; ++i) {
        int32_t item;
        ok = static_cast<bool>(fields >> item);
        q.items.push_back(item);
      }
      if (ok) {
        fresh.id_by_label_[q.label] = id;
        fresh.queues_[id] = std::move(q);
      }
    } else if (word == "client") {
      std::string hex, request_word, reply_word, code;
      ClientRecord rec;
      ok = static_cast<bool>(fields >> hex >> request_word >> rec.last_request >> reply_word >> code >>
                             rec.value) &&
           request_word == "request" && reply_word == "reply" && parse_code(code, rec.code);
      std::string seen_word;  // absent in snapshots written before expiry existed
      if (ok && fields >> seen_word) ok = seen_word == "seen" && static_cast<bool>(fields >> rec.last_seen_ms);
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

bool write_all(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
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

// A delivered message is "K ORIGIN INCARNATION ORIGIN_SEQ HEX"; an
// assignment this replica made and has not delivered yet is the same
// preceded by "assign".
constexpr const char* kAssignWord = "assign";

std::string log_line(const mcast::Delivery& d, bool assignment) {
  return (assignment ? std::string(kAssignWord) + " " : std::string()) + std::to_string(d.global_seq) + " " +
         std::to_string(d.name.origin) + " " + std::to_string(d.name.incarnation) + " " +
         std::to_string(d.name.origin_seq) + " " + wire::to_hex(d.payload) + "\n";
}

bool parse_log_line(const std::string& line, mcast::Delivery& d, bool& assignment) {
  assignment = line.rfind(kAssignWord, 0) == 0;
  std::istringstream in(assignment ? line.substr(std::strlen(kAssignWord)) : line);
  std::string hex, extra;
  if (!(in >> d.global_seq >> d.name.origin >> d.name.incarnation >> d.name.origin_seq >> hex) ||
      (in >> extra))
    return false;
  return wire::from_hex(hex, d.payload);
}

}  // namespace

bool write_file_atomically(const std::string& path, const std::string& text, std::string& error) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = errno_text("cannot create " + tmp);
    return false;
  }
  bool ok = write_all(fd, text) && ::fsync(fd) == 0;
  if (!ok) error = errno_text("cannot write " + tmp);
  ::close(fd);
  if (ok && ::rename(tmp.c_str(), path.c_str()) != 0) {
    error = errno_text("cannot rename " + tmp);
    ok = false;
  }
  // The rename itself must reach the disk too, or a power cut could bring
  // back the old file beside a newer one (a snapshot older than its log).
  if (ok) {
    std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
    int dir_fd = ::open(dir.empty() ? "/" : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
      ::fsync(dir_fd);
      ::close(dir_fd);
    }
  }
  return ok;
}

ReplicaStore::~ReplicaStore() {
  if (log_fd_ >= 0) ::close(log_fd_);
}

bool ReplicaStore::open(FTQueue& state, std::vector<mcast::Delivery>& logged, std::string& error) {
  if (!make_dirs(dir_)) {
    error = errno_text("cannot create data directory " + dir_);
    return false;
  }
  std::string text;
  if (read_file(path("snapshot.txt"), text) && !state.load_snapshot(text, error)) {
    error = path("snapshot.txt") + ": " + error;
    return false;
  }
  // Replay the log. A torn last line (the server died mid-write) is dropped;
  // so is anything after a gap, which only a damaged file could contain.
  logged.clear();
  std::vector<mcast::Delivery> assigned;
  std::string log;
  read_file(path("log.txt"), log);
  size_t start = 0;
  while (start < log.size()) {
    size_t end = log.find('\n', start);
    if (end == std::string::npos) break;
    mcast::Delivery d;
    bool assignment;
    if (!parse_log_line(log.substr(start, end - start), d, assignment)) break;
    start = end + 1;
    if (assignment) {
      assigned.push_back(std::move(d));
      continue;
    }
    if (d.global_seq > state.applied_upto() + 1) {
      // The log goes on past a gap: the snapshot is older than the log was
      // written against (restored from elsewhere, or lost). Starting would
      // throw away logged messages, own assignments among them, so refuse,
      // and change nothing.
      error = path("log.txt") + " has k=" + std::to_string(d.global_seq) + " but " + path("snapshot.txt") +
              " ends at k=" + std::to_string(state.applied_upto()) +
              ": the snapshot is older than the log (restored or lost?); refusing to start, nothing changed";
      return false;
    }
    if (d.global_seq == state.applied_upto() + 1) state.apply(d);
    logged.push_back(std::move(d));
  }
  // Assignments since delivered are in the log as deliveries already.
  for (mcast::Delivery& a : assigned)
    if (a.global_seq > state.applied_upto()) logged.push_back(std::move(a));
  if (!rewrite_log(logged, state.applied_upto(), error)) return false;
  appended_since_snapshot_ = logged.size();
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

bool ReplicaStore::append(const std::vector<mcast::Delivery>& delivered,
                          const std::vector<mcast::Delivery>& assigned, std::string& error) {
  if (delivered.empty() && assigned.empty()) return true;
  std::string text;
  for (const mcast::Delivery& a : assigned) text += log_line(a, true);
  for (const mcast::Delivery& d : delivered) text += log_line(d, false);
  if (!write_all(log_fd_, text) || (fsync_ && ::fdatasync(log_fd_) != 0)) {
    error = errno_text("cannot append to " + path("log.txt"));
    return false;
  }
  appended_since_snapshot_ += delivered.size() + assigned.size();
  return true;
}

bool ReplicaStore::write_snapshot(const FTQueue& state, const std::vector<mcast::Delivery>& keep,
                                  std::string& error) {
  if (!write_file_atomically(path("snapshot.txt"), state.render_snapshot(), error)) return false;
  if (!rewrite_log(keep, state.applied_upto(), error)) return false;
  appended_since_snapshot_ = 0;
  return true;
}

bool ReplicaStore::rewrite_log(const std::vector<mcast::Delivery>& records, uint64_t applied_upto,
                               std::string& error) {
  std::string text;
  for (const mcast::Delivery& d : records) text += log_line(d, d.global_seq > applied_upto);
  if (!write_file_atomically(path("log.txt"), text, error)) return false;
  if (log_fd_ >= 0) ::close(log_fd_);
  log_fd_ = ::open(path("log.txt").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (log_fd_ < 0) {
    error = errno_text("cannot open " + path("log.txt"));
    return false;
  }
  return true;
}
