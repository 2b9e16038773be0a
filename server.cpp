// server.cpp: one FTQueue replica. Owns everything with a side effect: the
// UDP socket and poll(), the clock, the data directory, signals and the loss
// flag. The protocol (multicast.*) and the state (ftqueue.*) never see them.
//
// One loop: wait for a datagram or the protocol's next deadline; feed peer
// datagrams to the Multicast state machine and admit client requests; pack
// waiting requests into one multicast message; apply what the total order
// delivers, append it to the log, then reply; send what the protocol queued.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <ctime>
#include <memory>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "ftqueue.hpp"
#include "multicast.hpp"
#include "net.hpp"
#include "wire.hpp"

namespace {

const char* kUsage =
    "usage: server --id I --peers HOST:PORT,HOST:PORT,... [options]\n"
    "\n"
    "Runs replica I of an FTQueue cluster. --peers lists all n members in id\n"
    "order; this replica binds the address at index I and serves peers and\n"
    "clients on that one UDP port.\n"
    "\n"
    "  --id I           this replica's index in --peers (0-based)\n"
    "  --peers LIST     every member, comma-separated, in id order\n"
    "  --data DIR       data directory (default data/replica-I)\n"
    "  --loss P         drop each datagram sent or received with probability P\n"
    "                   (0 <= P < 1; for testing loss recovery; default 0)\n"
    "  --seed S         seed for --loss, so drops repeat (default: random)\n"
    "  --fsync          make each log append durable before replying\n"
    "                   (default: written to the OS, survives a server crash\n"
    "                   but not a power cut)\n"
    "  --socket-fd FD   use the already-bound UDP socket FD instead of binding\n"
    "                   (for test harnesses that reserve ports)\n"
    "  --cut-file FILE  test switch: cut links to other members, as listed in\n"
    "                   FILE (read at start and again on SIGHUP): 'ID' drops\n"
    "                   every datagram to and from member ID, 'in:ID' only\n"
    "                   those from it, 'out:ID' only those to it. Tests and\n"
    "                   run_cluster.sh use it to make partitions; a missing\n"
    "                   or empty file cuts nothing\n"
    "  -v, --verbose    log protocol detail to stderr\n"
    "  -h, --help       show this help\n"
    "\n"
    "SIGTERM or SIGINT stops it gracefully: it finishes what is in flight\n"
    "(at most 3 s), writes DIR/snapshot.txt and exits; a second signal cuts\n"
    "the drain short.\n"
    "\n"
    "DIR belongs to the member list it was first used with (DIR/members): the\n"
    "server refuses another --peers or --id there. Changing the members, n\n"
    "included, makes a new cluster: give it new data directories.\n"
    "\n"
    "Exit status:\n"
    "  0  stopped after a complete drain (every member confirmed)\n"
    "  1  an error: cannot bind its address, cannot use DIR, ...\n"
    "  2  a bad option\n"
    "  3  stopped and DIR/snapshot.txt written, but the drain did not complete\n"
    "     (some peer did not confirm within 3 s, or a second signal)\n"
    "  4  DIR belongs to another member list; nothing in it was changed\n";

// Exit statuses (listed in kUsage and the README).
constexpr int kExitError = 1;
constexpr int kExitDrainTimedOut = 3;
constexpr int kExitOtherMembers = 4;

constexpr uint64_t kDrainTimeoutUs = 3'000'000;
constexpr size_t kMaxWaitingOps = 8192;        // admitted, not yet multicast
constexpr uint64_t kSnapshotEvery = 5000;      // delivered messages between snapshots
constexpr int kMaxDatagramsPerWake = 512;

struct Options {
  int id = -1;
  std::vector<net::Endpoint> peers;
  std::string data_dir;
  double loss = 0;
  uint64_t seed = 0;
  bool seed_given = false;
  bool fsync = false;
  bool verbose = false;
  int socket_fd = -1;
  std::string cut_file;  // test switch, see --help
};

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "server: %s\n(run 'server --help' for usage)\n", msg.c_str());
  return 2;
}

// Returns -1 when parsed, else the exit status (0 for --help, 2 for errors).
int parse_options(int argc, char** argv, Options& o) {
  std::string peers;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    size_t eq = arg.find('=');
    bool inline_value = arg.rfind("--", 0) == 0 && eq != std::string::npos;
    if (inline_value) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto need = [&](std::string& out) {
      if (inline_value) {
        out = value;
        return true;
      }
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    std::string v;
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "-v" || arg == "--verbose") {
      o.verbose = true;
    } else if (arg == "--fsync") {
      o.fsync = true;
    } else if (arg == "--id") {
      int32_t id;
      if (!need(v) || !net::parse_i32(v, id) || id < 0) return usage_error("--id needs a member index (0, 1, ...)");
      o.id = id;
    } else if (arg == "--peers") {
      if (!need(peers)) return usage_error("--peers needs HOST:PORT,HOST:PORT,...");
    } else if (arg == "--data") {
      if (!need(o.data_dir) || o.data_dir.empty()) return usage_error("--data needs a directory");
    } else if (arg == "--loss") {
      if (!need(v) || !net::parse_probability(v, o.loss))
        return usage_error("--loss needs a probability P with 0 <= P < 1, got '" + v + "'");
    } else if (arg == "--seed") {
      if (!need(v) || !net::parse_u64(v, o.seed)) return usage_error("--seed needs a non-negative integer");
      o.seed_given = true;
    } else if (arg == "--cut-file") {
      if (!need(o.cut_file) || o.cut_file.empty()) return usage_error("--cut-file needs a file name");
    } else if (arg == "--socket-fd") {
      int32_t fd;
      if (!need(v) || !net::parse_i32(v, fd) || fd < 0) return usage_error("--socket-fd needs a file descriptor");
      o.socket_fd = fd;
    } else {
      return usage_error("unknown option '" + arg + "'");
    }
  }
  if (o.id < 0) return usage_error("--id is required");
  if (peers.empty()) return usage_error("--peers is required");
  std::string error;
  if (!net::parse_endpoints(peers, o.peers, error)) return usage_error("--peers: " + error);
  if (static_cast<size_t>(o.id) >= o.peers.size())
    return usage_error("--id " + std::to_string(o.id) + " is not an index into --peers (" +
                       std::to_string(o.peers.size()) + " members)");
  if (o.peers.size() > 64) return usage_error("at most 64 members are supported");
  for (size_t i = 0; i < o.peers.size(); ++i)
    for (size_t j = i + 1; j < o.peers.size(); ++j)
      if (net::same_address(o.peers[i].addr, o.peers[j].addr))
        return usage_error("--peers lists " + o.peers[i].text + " twice");
  if (o.data_dir.empty()) o.data_dir = "data/replica-" + std::to_string(o.id);
  return -1;
}

wire::ClientAddress to_client_address(const sockaddr_in& a) {
  return wire::ClientAddress{ntohl(a.sin_addr.s_addr), ntohs(a.sin_port)};
}

sockaddr_in to_sockaddr(const wire::ClientAddress& a) {
  sockaddr_in s{};
  s.sin_family = AF_INET;
  s.sin_addr.s_addr = htonl(a.ipv4);
  s.sin_port = htons(a.port);
  return s;
}

// An encoded reply and where it goes.
struct OutgoingReply {
  std::string bytes;
  sockaddr_in to;
};

int g_signal_pipe[2] = {-1, -1};

// The handler only says which signal came; the loop acts on it.
void on_signal(int sig) {
  char c = static_cast<char>(sig);
  ssize_t ignored = ::write(g_signal_pipe[1], &c, 1);
  (void)ignored;
}

// The --cut-file test switch: which members' datagrams this replica drops,
// coming in and going out. Only peer traffic is cut; clients still reach it.
struct LinkCuts {
  std::vector<bool> in, out;  // by member id
  std::string describe() const {
    std::string text;
    for (size_t m = 0; m < in.size(); ++m) {
      if (in[m] && out[m]) text += " " + std::to_string(m);
      else if (in[m]) text += " in:" + std::to_string(m);
      else if (out[m]) text += " out:" + std::to_string(m);
    }
    return text.empty() ? "none" : text.substr(1);
  }
};

// Tokens separated by spaces, commas or newlines; '#' starts a comment.
bool parse_cuts(const std::string& text, size_t members, size_t self, LinkCuts& cuts, std::string& error) {
  cuts = LinkCuts{std::vector<bool>(members), std::vector<bool>(members)};
  std::string cleaned;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    cleaned += line.substr(0, line.find('#')) + " ";
    pos = end + 1;
  }
  for (char& c : cleaned)
    if (c == ',' || c == '\t' || c == '\r') c = ' ';
  std::istringstream words(cleaned);
  for (std::string w; words >> w;) {
    bool in = true, out = true;
    std::string id_text = w;
    if (w.rfind("in:", 0) == 0) {
      out = false;
      id_text = w.substr(3);
    } else if (w.rfind("out:", 0) == 0) {
      in = false;
      id_text = w.substr(4);
    }
    int32_t id;
    if (!net::parse_i32(id_text, id) || id < 0 || static_cast<size_t>(id) >= members || static_cast<size_t>(id) == self) {
      error = "'" + w + "' is not ID, in:ID or out:ID for another member (0.." + std::to_string(members - 1) + ")";
      return false;
    }
    if (in) cuts.in[static_cast<size_t>(id)] = true;
    if (out) cuts.out[static_cast<size_t>(id)] = true;
  }
  return true;
}

struct Counters {
  uint64_t nonmember = 0;     // not a member, not a well-formed client datagram
  uint64_t loss_dropped = 0;  // --loss
  uint64_t cut_dropped = 0;   // --cut-file
  uint64_t send_failed = 0;
  uint64_t busy_replies = 0;
  uint64_t requests = 0;
};

class Server {
 public:
  explicit Server(Options o) : opt_(std::move(o)), self_(static_cast<mcast::MemberId>(opt_.id)) {}

  int run() {
    // Refused starts leave the data directory exactly as they found it:
    // both checks come before anything in it is created or changed.
    std::string error;
    bool recorded = false;
    if (int status = check_members(recorded, error)) {
      log("error: %s", error);
      return status;
    }
    if (!open_socket(error)) {
      log("error: %s", error);
      return kExitError;
    }
    if (!start()) return kExitError;
    if (!recorded && !write_file_atomically(members_path(), members_text(), error)) {
      log("error: %s", error);
      return kExitError;
    }
    while (!finished()) step();
    return stop();
  }

 private:
  void log(const char* fmt, const std::string& a = "") const {
    std::fprintf(stderr, "[replica %d] ", opt_.id);
    std::fprintf(stderr, fmt, a.c_str());
    std::fputc('\n', stderr);
  }

  bool start() {
    std::string error;
    store_ = std::make_unique<ReplicaStore>(opt_.data_dir, opt_.fsync);
    std::vector<mcast::Delivery> logged;
    uint64_t incarnation;
    if (!store_->open(state_, logged, error) ||
        !store_->next_incarnation(static_cast<uint64_t>(std::time(nullptr)) * 1000000u, incarnation, error)) {
      log("error: %s", error);
      return false;
    }
    if (::pipe(g_signal_pipe) != 0) return false;
    for (int fd : g_signal_pipe) ::fcntl(fd, F_SETFL, O_NONBLOCK);
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGHUP, &sa, nullptr);
    cuts_ = LinkCuts{std::vector<bool>(opt_.peers.size()), std::vector<bool>(opt_.peers.size())};
    if (!opt_.cut_file.empty()) load_cuts();

    std::vector<mcast::MemberId> view;
    for (size_t i = 0; i < opt_.peers.size(); ++i) view.push_back(static_cast<mcast::MemberId>(i));
    mc_ = std::make_unique<mcast::Multicast>(self_, view, incarnation, mcast::MulticastConfig{},
                                             state_.position());
    for (const mcast::Delivery& d : logged) mc_->restore_logged(d);
    loss_rng_.seed(opt_.seed_given ? opt_.seed * 1000003u + static_cast<uint64_t>(opt_.id) : net::random_u64());
    char line[256];
    std::snprintf(line, sizeof line,
                  "listening on %s, %zu members, data %s, resumed at global_seq %llu, loss %.3f%s",
                  opt_.peers[self_].text.c_str(), opt_.peers.size(), opt_.data_dir.c_str(),
                  static_cast<unsigned long long>(state_.applied_upto()), opt_.loss,
                  opt_.fsync ? ", fsync" : "");
    log("%s", line);
    return true;
  }

  // DIR/members records the member list a data directory was written under.
  // Its log and its sequence numbers only make sense in a rotation over
  // exactly those members: the same files under another list (seen: `start
  // 5` on the directories of a 3-member cluster) leave every call timing
  // out. Until reconfiguration exists, another list is another cluster.
  // Addresses are compared as numbers (localhost:7001 is 127.0.0.1:7001).
  std::string members_path() const { return opt_.data_dir + "/members"; }

  std::string members_text() const {
    std::string peers;
    for (const net::Endpoint& p : opt_.peers) peers += (peers.empty() ? "" : ",") + net::to_string(p.addr);
    return "id " + std::to_string(opt_.id) + "\npeers " + peers + "\n";
  }

  // Returns 0 if the directory may be used; `recorded` says whether it
  // already names its members. A directory without the file is adopted:
  // it is new, or it was written before this check existed.
  int check_members(bool& recorded, std::string& error) const {
    std::string text;
    recorded = read_file(members_path(), text);
    if (!recorded) {
      if (::access(members_path().c_str(), F_OK) != 0) return 0;
      error = "cannot read " + members_path();
      return kExitError;
    }
    if (text == members_text()) return 0;
    auto describe = [](const std::string& members) {
      std::string id = "?", peers;
      std::istringstream in(members);
      for (std::string key, value; in >> key >> value;) {
        if (key == "id") id = value;
        if (key == "peers") peers = value;
      }
      size_t n = peers.empty() ? 0 : 1 + std::count(peers.begin(), peers.end(), ',');
      return "member " + id + " of a cluster of " + std::to_string(n) + " (" + peers + ")";
    };
    error = "data directory " + opt_.data_dir + " belongs to " + describe(text) + ", but this is " +
            describe(members_text()) + "; nothing in it was changed. Start it with its own --id and " +
            "--peers, or give a new cluster new data directories (changing n makes a new cluster)";
    return kExitOtherMembers;
  }

  bool open_socket(std::string& error) {
    if (opt_.socket_fd < 0) {
      fd_ = net::open_udp(opt_.peers[self_].addr, error);
      return fd_ >= 0;
    }
    fd_ = opt_.socket_fd;
    sockaddr_in bound = net::local_address(fd_);
    if (bound.sin_port != opt_.peers[self_].addr.sin_port) {
      error = "--socket-fd is not bound to " + opt_.peers[self_].text;
      return false;
    }
    return true;
  }

  bool finished() const {
    if (!stopping_) return false;
    return mc_->done_leaving() || net::now_us() >= drain_deadline_;
  }

  int stop() {
    // Tell the others how far we got, a few times over a lossy network.
    for (int i = 0; i < 5; ++i) {
      mc_->announce();
      send_outgoing();
    }
    std::string error;
    if (!store_->write_snapshot(state_, mc_->records_to_keep(), error)) {
      log("error: %s", error);
      return 1;
    }
    char line[200];
    std::snprintf(line, sizeof line, "stopped at global_seq %llu; snapshot written%s",
                  static_cast<unsigned long long>(state_.applied_upto()),
                  mc_->done_leaving() ? "" : " (drain timed out: some peer did not confirm it is done)");
    log("%s", line);
    return mc_->done_leaving() ? 0 : kExitDrainTimedOut;
  }

  void step() {
    uint64_t now = net::now_us();
    uint64_t deadline = mc_->next_deadline();
    if (stopping_) deadline = std::min(deadline, drain_deadline_);
    if (opt_.verbose) deadline = std::min(deadline, last_report_ + 1'000'000);
    int timeout_ms = -1;
    if (deadline != mcast::kNever) timeout_ms = deadline <= now ? 0 : static_cast<int>((deadline - now + 999) / 1000);
    pollfd fds[2] = {{fd_, POLLIN, 0}, {g_signal_pipe[0], POLLIN, 0}};
    ::poll(fds, 2, timeout_ms);
    if (fds[1].revents & POLLIN) on_signals();
    if (fds[0].revents & POLLIN) read_datagrams();
    now = net::now_us();
    mc_->tick(now);
    submit_waiting(now);
    if (stopping_ && waiting_ops_.empty()) mc_->close();
    // Protocol traffic before replies: any send may hand the CPU to the
    // process it wakes, and a client answered before its origin heard that
    // the last batch was sequenced would only bring its next request to an
    // origin that must hold it.
    std::vector<OutgoingReply> replies = apply_deliveries();
    send_outgoing();
    send_replies(replies);
    if (store_->appended_since_snapshot() >= kSnapshotEvery) write_snapshot();
    if (opt_.verbose && now >= last_report_ + 1'000'000) report(now);
  }

  void on_signals() {
    char buf[16];
    bool stop = false;
    for (ssize_t n; (n = ::read(g_signal_pipe[0], buf, sizeof buf)) > 0;)
      for (ssize_t i = 0; i < n; ++i) {
        if (buf[i] == SIGHUP) load_cuts();
        else stop = true;
      }
    if (stop) on_stop_signal();
  }

  // SIGHUP: read --cut-file again. A file that cannot be parsed changes
  // nothing (the error is logged); a missing one cuts nothing.
  void load_cuts() {
    if (opt_.cut_file.empty()) {
      log("SIGHUP ignored: no --cut-file");
      return;
    }
    std::string text, error;
    read_file(opt_.cut_file, text);
    LinkCuts fresh;
    if (!parse_cuts(text, opt_.peers.size(), self_, fresh, error)) {
      log("error: %s", opt_.cut_file + ": " + error + "; link cuts unchanged (" + cuts_.describe() + ")");
      return;
    }
    cuts_ = fresh;
    log("link cuts (test switch): %s", cuts_.describe());
  }

  void on_stop_signal() {
    if (stopping_) {
      drain_deadline_ = 0;  // second signal: stop now
      return;
    }
    stopping_ = true;
    drain_deadline_ = net::now_us() + kDrainTimeoutUs;
    log("stopping: finishing what is in flight");
  }

  bool lose() { return opt_.loss > 0 && std::uniform_real_distribution<double>(0, 1)(loss_rng_) < opt_.loss; }

  void read_datagrams() {
    char buf[65536];
    for (int i = 0; i < kMaxDatagramsPerWake; ++i) {
      sockaddr_in from{};
      socklen_t len = sizeof from;
      ssize_t n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 0) return;  // EAGAIN: drained
      if (lose()) {
        ++counters_.loss_dropped;
        continue;
      }
      int member = member_index(from);
      if (member >= 0 && cuts_.in[static_cast<size_t>(member)]) {
        ++counters_.cut_dropped;
      } else if (member >= 0) {
        mc_->receive(static_cast<mcast::MemberId>(member), buf, static_cast<size_t>(n), net::now_us());
      } else {
        on_client_datagram(buf, static_cast<size_t>(n), from);
      }
    }
  }

  int member_index(const sockaddr_in& from) const {
    for (size_t i = 0; i < opt_.peers.size(); ++i)
      if (i != self_ && net::same_address(opt_.peers[i].addr, from)) return static_cast<int>(i);
    return -1;
  }

  void on_client_datagram(const char* data, size_t len, const sockaddr_in& from) {
    wire::Operation op;
    uint8_t attempt;
    uint64_t nonce;
    if (wire::decode_request(data, len, op, attempt)) {
      on_request(op, attempt, from);
    } else if (wire::decode_status_request(data, len, nonce)) {
      send(wire::encode_status_reply(status(nonce)), from);
    } else {
      ++counters_.nonmember;
    }
  }

  // A request is admitted once. A copy that arrives while it is in flight
  // is dropped: whoever sequences it will answer, and a retry that comes
  // after it was applied here gets the stored reply.
  void on_request(const wire::Operation& op, uint8_t attempt, const sockaddr_in& from) {
    ++counters_.requests;
    if (auto cached = state_.cached_reply(op.client_id, op.request_no)) {
      cached->attempt = attempt;
      send(encode_reply(*cached), from);
      return;
    }
    if (state_.superseded(op.client_id, op.request_no)) return;
    auto key = std::make_pair(op.client_id, op.request_no);
    if (admitted_.count(key)) return;
    if (stopping_ || mc_->backlogged() || waiting_ops_.size() >= kMaxWaitingOps) {
      ++counters_.busy_replies;
      wire::Reply busy{op.client_id, op.request_no, wire::ReplyCode::Busy, 0};
      busy.attempt = attempt;
      send(encode_reply(busy), from);
      return;
    }
    waiting_ops_.push_back(wire::BatchedOp{op, to_client_address(from), attempt});
    admitted_.insert(key);
  }

  // Batching: requests that arrive while a message of ours awaits its
  // global_seq wait too, and go out together. A second message is sent
  // before the first is sequenced only if it is full (like Nagle's rule):
  // under load, batches grow and the rotation carries more per slot.
  void submit_waiting(uint64_t now) {
    while (!waiting_ops_.empty() && mc_->can_submit() &&
           (mc_->unsequenced_own() == 0 || waiting_ops_.size() >= wire::kMaxBatchOps)) {
      size_t take = std::min(waiting_ops_.size(), wire::kMaxBatchOps);
      std::vector<wire::BatchedOp> batch(waiting_ops_.begin(), waiting_ops_.begin() + static_cast<long>(take));
      waiting_ops_.erase(waiting_ops_.begin(), waiting_ops_.begin() + static_cast<long>(take));
      mc_->submit(wire::encode_batch(batch, net::wall_clock_ms()), now);
    }
  }

  // Who answers: the member that sequenced the batch answers every client in
  // it. It is the first to deliver it, so the reply goes out one hop sooner
  // than if the ASSIGN had to travel back to the origin first. (Should that
  // reply be lost, the client's retry finds the stored reply at the origin.)
  // The log append happens before any reply leaves: an answered operation is
  // on this replica's disk (or, with --fsync, durably so).
  std::vector<OutgoingReply> apply_deliveries() {
    std::vector<OutgoingReply> replies;
    std::vector<mcast::Delivery> delivered = mc_->take_deliveries();
    for (const mcast::Delivery& d : delivered) {
      const bool sequenced_here = mc_->sequencer_for(d.global_seq) == self_;
      for (const AddressedReply& r : state_.apply(d)) {
        forget_admitted(r.reply.client_id, r.reply.request_no);
        if (sequenced_here) replies.push_back(OutgoingReply{encode_reply(r.reply), to_sockaddr(r.to)});
      }
    }
    persist(delivered);
    return replies;
  }

  // Persist before send: what this step delivered and the assignments it
  // made go to the log before any reply or datagram leaves (multicast.hpp
  // says why). An assignment delivered in the same step is logged once,
  // as a delivery.
  void persist(const std::vector<mcast::Delivery>& delivered) {
    std::vector<mcast::Delivery> assigned = mc_->take_new_assignments();
    assigned.erase(std::remove_if(assigned.begin(), assigned.end(),
                                  [this](const mcast::Delivery& a) { return a.global_seq <= mc_->delivered_upto(); }),
                   assigned.end());
    std::string error;
    if (!store_->append(delivered, assigned, error)) {
      log("fatal: %s", error);
      std::exit(1);  // never answer or announce what is not logged
    }
  }

  // Every reply says whether this replica is in lossy mode, so that its
  // client sends its requests twice for a while too.
  std::string encode_reply(wire::Reply r) const {
    r.lossy = mc_->lossy_mode();
    return wire::encode_reply(r);
  }

  // Request `request_no` of a client was applied: neither it nor any older
  // request of that client is in flight any more. (An older one the state
  // skipped, because the client had given up on it and moved on, would
  // otherwise stay here for ever.)
  void forget_admitted(uint64_t client_id, uint64_t request_no) {
    admitted_.erase(admitted_.lower_bound(std::make_pair(client_id, uint64_t{0})),
                    admitted_.upper_bound(std::make_pair(client_id, request_no)));
  }

  // While the protocol sees heavy loss, replies go out twice too: a lost
  // reply costs the client a whole retry timeout.
  void send_replies(const std::vector<OutgoingReply>& replies) {
    int copies = mc_->lossy_mode() ? 2 : 1;
    for (const OutgoingReply& r : replies)
      for (int i = 0; i < copies; ++i) send(r.bytes, r.to);
  }

  void write_snapshot() {
    std::string error;
    if (!store_->write_snapshot(state_, mc_->records_to_keep(), error)) log("error: %s", error);
  }

  // What the protocol queued, the next sequencer's first: it may assign the
  // next global_seq only once it knows this one, and everyone waits for it.
  void send_outgoing() {
    persist({});  // anything produced since apply_deliveries() logged it
    std::vector<mcast::Outgoing> out = mc_->take_outgoing();
    const mcast::MemberId next = mc_->next_sequencer();
    std::stable_partition(out.begin(), out.end(), [next](const mcast::Outgoing& o) { return o.to == next; });
    for (const mcast::Outgoing& o : out) {
      if (cuts_.out[o.to]) ++counters_.cut_dropped;
      else send(o.bytes, opt_.peers[o.to].addr);
    }
  }

  void send(const std::string& bytes, const sockaddr_in& to) {
    if (lose()) {
      ++counters_.loss_dropped;
      return;
    }
    if (!net::send_to(fd_, bytes, to)) ++counters_.send_failed;
  }

  uint64_t dropped() const {
    const mcast::MulticastStats& s = mc_->stats();
    return counters_.nonmember + counters_.loss_dropped + counters_.cut_dropped + s.malformed + s.stale;
  }

  wire::ReplicaStatus status(uint64_t nonce) const {
    wire::ReplicaStatus s;
    s.nonce = nonce;
    s.member = self_;
    s.delivered_upto = mc_->delivered_upto();
    s.stable_upto = mc_->stable_upto();
    s.queues = static_cast<uint32_t>(state_.queue_count());
    s.buffered_messages = static_cast<uint32_t>(mc_->buffered_messages());
    s.dropped_datagrams = dropped();
    return s;
  }

  void report(uint64_t now) {
    last_report_ = now;
    const mcast::MulticastStats& s = mc_->stats();
    char line[400];
    std::snprintf(line, sizeof line,
                  "delivered %llu stable %llu buffered %zu waiting %zu | requests %llu busy %llu | "
                  "assigned %llu nack-rounds %llu nacked %llu retransmitted %llu doubled %llu heartbeats %llu | "
                  "dropped: malformed %llu stale %llu non-member %llu loss %llu cut %llu send-failed %llu",
                  (unsigned long long)mc_->delivered_upto(), (unsigned long long)mc_->stable_upto(),
                  mc_->buffered_messages(), waiting_ops_.size(), (unsigned long long)counters_.requests,
                  (unsigned long long)counters_.busy_replies, (unsigned long long)s.assignments_made,
                  (unsigned long long)s.nack_rounds, (unsigned long long)s.nacks_sent,
                  (unsigned long long)s.retransmitted, (unsigned long long)s.redundant_copies,
                  (unsigned long long)s.heartbeats,
                  (unsigned long long)s.malformed, (unsigned long long)s.stale,
                  (unsigned long long)counters_.nonmember, (unsigned long long)counters_.loss_dropped,
                  (unsigned long long)counters_.cut_dropped,
                  (unsigned long long)counters_.send_failed);
    log("%s", line);
  }

  Options opt_;
  const mcast::MemberId self_;
  int fd_ = -1;
  std::unique_ptr<ReplicaStore> store_;
  std::unique_ptr<mcast::Multicast> mc_;
  FTQueue state_;
  std::deque<wire::BatchedOp> waiting_ops_;
  // Requests this replica admitted and has not yet seen delivered, as
  // (client id, request number).
  std::set<std::pair<uint64_t, uint64_t>> admitted_;
  std::mt19937_64 loss_rng_;
  Counters counters_;
  LinkCuts cuts_;
  bool stopping_ = false;
  uint64_t drain_deadline_ = 0;
  uint64_t last_report_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  int rc = parse_options(argc, argv, opt);
  if (rc >= 0) return rc;
  std::signal(SIGPIPE, SIG_IGN);
  return Server(std::move(opt)).run();
}
