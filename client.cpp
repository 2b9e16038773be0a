// client.cpp: the line client.
//
//   client [--servers HOST:PORT,...] [--timeout SECONDS] [--] [COMMAND ARGS...]
//
// The servers: --servers, else the environment's FTQ_SERVERS (as etcdctl
// reads ETCDCTL_ENDPOINTS), else the three default ports.
// With a command on its command line it runs it, prints the answer on
// stdout (an error on stderr) and exits with its status:
//   0  success
//   1  an error reply (no such queue, empty, busy): the operation had no effect
//   2  a usage error (bad flag, bad command): nothing was sent
//   3  no answer in time: the outcome is unknown, the operation may still
//      take effect (a lost reply looks exactly like a lost request)
//   4  not delivered: the OS refused every try at every server (nothing
//      listens at those addresses: no server runs there, or they are the
//      wrong ports), so no replica received it and it had no effect
// Otherwise it reads one command a line: with a prompt when stdin is a
// terminal, silently when it is a pipe, so programs can drive it: then every
// command answers exactly one line on stdout, errors included. At the end
// of its input it exits with the worst status of any line (3 over 4 over 2
// over 1 over 0), and says on stderr how many failed: a script learns of a
// failure without parsing.
//
// Each request carries this client's random 64-bit id and a request number.
// A request with no reply is sent again with the same number (the replicas
// apply it once) after an adaptive timeout, and twice over while the
// cluster reports heavy loss (net::RetryPolicy); after a few silent tries
// (at most a second) the next server is used, passing over any this client
// left for silence in the last 5 s (net::ServerRotation). The reply comes
// from the replica asked, once the request is delivered.
//
// Each server has a socket of its own, connected to it, so that the OS says
// when a datagram was refused there (net::open_connected_udp): a server
// that refuses is left at once, not after a silent second, and a call every
// one of whose datagrams was refused is known to have had no effect.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <set>
#include <string>
#include <vector>

#include "net.hpp"
#include "wire.hpp"

namespace {

const char* kDefaultServers = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003";

const char* kUsage =
    "usage: client [--servers HOST:PORT,...] [--timeout SECONDS] [--] [COMMAND ARGS...]\n"
    "\n"
    "Talks to an FTQueue cluster. With a COMMAND it runs that one command,\n"
    "prints the answer on stdout (an error on stderr) and exits with:\n"
    "  0  success\n"
    "  1  an error reply: the operation had no effect\n"
    "  2  a usage error: nothing was sent\n"
    "  3  no answer in time: the operation may still take effect\n"
    "  4  not delivered: the OS refused every try at every server (nothing\n"
    "     listens there: no server running, or the wrong ports), so no replica\n"
    "     received it and it had no effect; said within about a second\n"
    "Without a COMMAND it reads commands, one a line (a prompt on a terminal;\n"
    "from a pipe, one line of output per command, errors included), and exits\n"
    "with the worst status of any of them (3, then 4, 2, 1, 0).\n"
    "\n"
    "  --servers LIST   servers to try, in order (default: $FTQ_SERVERS if set,\n"
    "                   else 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003)\n"
    "  --timeout S      give up on a command after S seconds (default 3, more\n"
    "                   than 0 and at most 300: the replicas forget a client\n"
    "                   idle for 10 minutes)\n"
    "  --               end of options (what follows is the command)\n"
    "  -h, --help       show this help\n"
    "\n"
    "Line editing and history in the interactive client, with no dependency\n"
    "here: run it under rlwrap, e.g. 'rlwrap ./client' (rlwrap is a package of\n"
    "most distributions).\n"
    "\n";

const char* kCommands =
    "commands (case-insensitive; the API names qCreate, qDestroy, ... work too):\n"
    "  create LABEL     id of the queue with this label, creating it if needed\n"
    "  destroy ID       delete a queue (its id is never reused; --partitionable:\n"
    "                   a merge may bring it back if another side pushed to it)\n"
    "  id LABEL         id of the queue with this label, or -1\n"
    "  push ID ITEM     append ITEM to queue ID\n"
    "  pop ID           remove and print the first item\n"
    "  top ID           print the first item without removing it\n"
    "  size ID          number of items in queue ID\n"
    "  status           each replica, a line each (from a pipe: one line, the\n"
    "                   replicas joined by '; '): reachable, its configuration,\n"
    "                   delivered and stable seq, queues, buffered,\n"
    "                   dropped\n"
    "  help             this list\n"
    "  quit             leave\n"
    "LABEL, ID and ITEM are 32-bit signed integers; '#' starts a comment.\n";

struct Command {
  wire::OpCode op;
  const char* word;
  const char* api;
  const char* args;  // for the usage message
  int arity;
};

const Command kTable[] = {
    {wire::OpCode::Create, "create", "qcreate", "LABEL", 1},
    {wire::OpCode::Destroy, "destroy", "qdestroy", "ID", 1},
    {wire::OpCode::Id, "id", "qid", "LABEL", 1},
    {wire::OpCode::Push, "push", "qpush", "ID ITEM", 2},
    {wire::OpCode::Pop, "pop", "qpop", "ID", 1},
    {wire::OpCode::Top, "top", "qtop", "ID", 1},
    {wire::OpCode::Size, "size", "qsize", "ID", 1},
};

// Exit statuses (listed in kUsage).
enum Outcome { kSuccess = 0, kErrorReply = 1, kUsageError = 2, kUnknown = 3, kNotDelivered = 4 };

// How bad an outcome is, for a session's exit status: an unknown outcome is
// the worst (it needs looking into), then one not delivered (nothing
// happened, but the cluster cannot be reached), then the rest by number.
int severity(Outcome o) {
  switch (o) {
    case kUnknown: return 4;
    case kNotDelivered: return 3;
    default: return static_cast<int>(o);
  }
}

// What the commands of a pipe or interactive session came to.
struct Tally {
  int commands = 0, failed = 0, unknown = 0, not_delivered = 0;
  Outcome worst = kSuccess;
  void add(Outcome o) {
    ++commands;
    if (o != kSuccess) ++failed;
    if (o == kUnknown) ++unknown;
    if (o == kNotDelivered) ++not_delivered;
    if (severity(o) > severity(worst)) worst = o;
  }
};

// How one call ended.
enum class CallEnd {
  Answered,  // `reply` holds the answer (ok, an error, or a definite refusal)
  Unknown,   // no answer in time: a try may have been admitted
  Refused,   // every datagram of the call was refused by the OS
};

// How one try (its copies, to one server) ended.
enum class TryEnd { Reply, Refused, Silent };

class Client {
 public:
  // one_shot: a command from the command line, whose errors go to stderr.
  // lines: status prints a line per replica (else one line, for a pipe).
  Client(std::vector<net::Endpoint> servers, uint64_t timeout_us, bool one_shot, bool lines)
      : servers_(std::move(servers)),
        timeout_us_(timeout_us),
        client_id_(net::random_u64()),
        rotation_(servers_.size()),
        one_shot_(one_shot),
        lines_(lines) {}

  ~Client() {
    for (int fd : fds_) ::close(fd);
  }

  bool open(std::string& error) {
    for (const net::Endpoint& s : servers_) {
      const int fd = net::open_connected_udp(s.addr, error);
      if (fd < 0) return false;
      fds_.push_back(fd);
    }
    return true;
  }

  // Runs one line; prints its answer (nothing for a blank line).
  Outcome run_line(const std::string& line, bool& quit) {
    std::vector<std::string> words;
    std::istringstream in(line.substr(0, line.find('#')));  // '#' starts a comment
    for (std::string w; in >> w;) words.push_back(w);
    if (words.empty()) return kSuccess;
    Outcome o = run_command(words, quit);
    if (!quit) tally_.add(o);
    return o;
  }

  const Tally& tally() const { return tally_; }

 private:
  Outcome run_command(const std::vector<std::string>& words, bool& quit) {
    std::string verb = words[0];
    std::transform(verb.begin(), verb.end(), verb.begin(), [](unsigned char c) { return std::tolower(c); });
    if (verb == "quit" || verb == "exit") {
      quit = true;
      return kSuccess;
    }
    if (verb == "help" || verb == "?") {
      std::fputs(kCommands, stdout);
      std::fflush(stdout);
      return kSuccess;
    }
    if (verb == "status") {
      if (words.size() != 1) return usage("status takes no arguments");
      return status();
    }
    for (const Command& c : kTable)
      if (verb == c.word || verb == c.api) return run_operation(c, words);
    return usage("unknown command '" + words[0] + "' (type help)");
  }

  Outcome usage(const std::string& msg) {
    say_error("error: " + msg);
    return kUsageError;
  }

  void say(const std::string& line) {
    std::fputs(line.c_str(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }

  // A command's error: on stderr for a command from the command line, on
  // stdout in a session (a program driving it reads one line a command).
  void say_error(const std::string& line) {
    if (!one_shot_) return say(line);
    std::fputs(line.c_str(), stderr);
    std::fputc('\n', stderr);
  }

  Outcome run_operation(const Command& c, const std::vector<std::string>& words) {
    if (static_cast<int>(words.size()) != c.arity + 1) return usage(std::string(c.word) + " needs " + c.args);
    int32_t args[2] = {0, 0};
    for (int i = 0; i < c.arity; ++i)
      if (!net::parse_i32(words[1 + i], args[i])) return usage(words[1 + i] + " is not a 32-bit integer");
    wire::Operation op;
    op.client_id = client_id_;
    op.request_no = ++last_request_;
    op.op = c.op;
    op.arg = args[0];
    op.item = args[1];
    wire::Reply reply;
    bool saw_busy = false;
    switch (call(op, reply, saw_busy)) {
      case CallEnd::Answered:
        return print_reply(op, reply);
      case CallEnd::Refused:
        say_error("error: " + refused_text() +
                  "; no server is running there, or these are the wrong ports (--servers, FTQ_SERVERS). No "
                  "replica received the operation: it had no effect");
        return kNotDelivered;
      case CallEnd::Unknown:
        break;
    }
    say_error("error: no answer within " + seconds_text() + (saw_busy ? " (the cluster is busy)" : "") +
              "; the operation may still take effect");
    return kUnknown;
  }

  // "nothing is listening at 127.0.0.1:7001, 127.0.0.1:7002 (the OS refused
  // every try: Connection refused)", from the refusals of the last call.
  std::string refused_text() const {
    std::string where, why;
    for (size_t i = 0; i < servers_.size(); ++i) {
      if (refused_errno_[i] == 0) continue;
      where += (where.empty() ? "" : ", ") + servers_[i].text;
      const std::string reason = std::strerror(refused_errno_[i]);
      if (why.find(reason) == std::string::npos) why += (why.empty() ? "" : ", ") + reason;
    }
    return "nothing is listening at " + where + " (the OS refused every try: " + why + ")";
  }

  Outcome print_reply(const wire::Operation& op, const wire::Reply& r) {
    // Partitionable mode: the answer line stays as it is (scripts read it);
    // that it is tentative goes to stderr, with what that means.
    if (r.tentative)
      std::fprintf(stderr,
                   "client: tentative answer, from a side of a partition without a majority: the merge when the "
                   "sides meet may contradict it\n");
    switch (r.code) {
      case wire::ReplyCode::Ok:
        if (op.op == wire::OpCode::Push || op.op == wire::OpCode::Destroy) say("ok");
        else say(std::to_string(r.value));
        return kSuccess;
      case wire::ReplyCode::NoQueue:
        say_error("error: no queue with id " + std::to_string(op.arg));
        return kErrorReply;
      case wire::ReplyCode::Empty:
        say_error("error: queue " + std::to_string(op.arg) + " is empty");
        return kErrorReply;
      case wire::ReplyCode::IdsExhausted:
        // A side's leader draws tentative ids from its own range only.
        say_error(r.tentative ? "error: this side's leader has no tentative queue ids left; create the queue after the heal"
                              : "error: no queue ids left (every positive 32-bit id has been used)");
        return kErrorReply;
      case wire::ReplyCode::Busy:
        say_error("error: the cluster is busy (a replica is not keeping up); try again later");
        return kErrorReply;
      case wire::ReplyCode::NotInMajority:
        say_error("error: no replica is in a majority (" + minority_text(r) + "); the operation had no effect");
        return kErrorReply;
    }
    return kErrorReply;
  }

  // "replica 2 sees 1 of 3 members", from a NotInMajority reply's value.
  static std::string minority_text(const wire::Reply& r) {
    const uint32_t v = static_cast<uint32_t>(r.value), sees = v >> 16, n = v & 0xffff;
    std::string text = "the last one asked sees " + std::to_string(sees) + " of " + std::to_string(n) + " members";
    // It hears a majority and still has none: too many of them restarted
    // after an OS crash and may have lost their logs' tails (README,
    // 'Durability'), or a view change is under way.
    if (sees >= n / 2 + 1) text += ", but they form no primary configuration now (see the replicas' logs)";
    return text;
  }

  // "config 5.0 primary {0,1} (hears 2 of 3)": the replica's configuration.
  static std::string config_text(const wire::ReplicaStatus& s) {
    std::string text = "config ";
    if (s.config_epoch == 0) {
      text += "none yet";
    } else {
      text += std::to_string(s.config_epoch) + "." + std::to_string(s.config_rep) +
              (s.primary ? " primary {" : " non-primary {");
      bool first = true;
      for (unsigned m = 0; m < 64; ++m)
        if (s.config_members >> m & 1) {
          text += (first ? "" : ",") + std::to_string(m);
          first = false;
        }
      text += "}";
    }
    return text + " (hears " + std::to_string(s.reachable) + " of " + std::to_string(s.group_size) + ")";
  }

  std::string seconds_text() const {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g s", static_cast<double>(timeout_us_) / 1e6);
    return buf;
  }

  // Sends `op` until a reply comes or the timeout passes. A silent server is
  // tried a few times with growing waits, then the next one. A busy reply is
  // retried after a pause, and reported only if the cluster stays busy. A
  // replica that is not in a majority (cut off, or its side of a partition
  // is too small) says so at once: the next one is asked, with a pause once
  // every replica has said it, and that is reported only if it lasts. A
  // server whose OS refused the try (nothing listens there) is left at once;
  // once every server has refused, the round is repeated after a pause (a
  // replica may be restarting) for kRefusedForUs, then the call ends.
  // Unknown: a try that got no answer may have been admitted (and only its
  // reply lost, or still to come), and a later busy reply cannot undo that,
  // since it speaks only for the try it answers. Refused: every
  // datagram sent was refused, so no replica received any.
  //
  // A refusal (busy, not in a majority) that names the current try vouches
  // for every copy of that try (in lossy mode each try is sent twice, both
  // to the same replica, with the same try number), by the replica's rules
  // (replica.hpp, Replica::client_request): a copy that arrives while
  // another copy of the same request is admitted gets no reply (InFlight);
  // a refusal is remembered (refused_) and a copy of a refused try that
  // arrives later is refused again (RefusedAgain), checked before
  // admission; and a refused admitted request (a view change, never
  // multicast) is remembered the same way. So a refusal naming try t means
  // no copy of t was, or will be, admitted at that replica. The bound is
  // the replica's memory of refusals (kRefusalMemoryUs, 60 s; in memory
  // only, so not across a restart of that replica; and per client, so only
  // until the client's next request is refused there): a copy delayed in
  // the network past that could still be admitted, the same bound a
  // datagram the network duplicates already has with one copy. The two
  // copies leave back to back, so that is a copy held up in the network.
  // A reply naming another try (a late reply to an earlier one) says
  // nothing of this try: it stays open. The call ends unsure while any try
  // whose datagrams were sent is open (silent, or refused only under
  // another try's name); a refusal that comes late for an earlier try
  // closes that try (the simulator's clients follow the same rule, and
  // its checker finds every "no effect" they report true).
  CallEnd call(const wire::Operation& op, wire::Reply& reply, bool& saw_busy) {
    const uint64_t kBusyPauseUs = 50'000;
    const uint64_t kRefusedPauseUs = 50'000;
    const uint64_t kRefusedForUs = 500'000;
    const uint64_t deadline = net::now_us() + timeout_us_;
    net::Tries tries;
    const uint64_t kSilentServerUs = 1'000'000;
    int silent_tries = 0;
    uint64_t silent_since = 0;  // when the current server's silence began
    size_t minority_in_a_row = 0;
    bool saw_minority = false;
    wire::Reply minority_reply;
    std::vector<bool> told(servers_.size(), false);
    // Tries sent and not closed by a refusal naming them: each may have
    // been admitted. The call is unsure while any is open.
    std::set<uint32_t> open_tries;
    auto unsure = [&open_tries] { return !open_tries.empty(); };
    // Tries refused by a reply naming them. The refusal of a try's second
    // copy (refused again) comes just after the first one's, usually while
    // the next try waits: it says nothing new, so it does not end that wait
    // (were it taken as that try's reply, the next try would be left
    // unanswered, and the call unsure).
    std::set<uint32_t> refused_tries;
    refused_errno_.assign(servers_.size(), 0);
    size_t refused_in_a_row = 0;
    uint64_t first_refused_us = 0;
    for (;;) {
      uint64_t now = net::now_us();
      if (now >= deadline) break;
      const size_t server = rotation_.current();
      const uint32_t attempt = tries.next_attempt();
      const int copies = retry_.copies();
      const std::string request = wire::encode_request(op, attempt);
      TryCount count;
      // A refusal left from an earlier datagram would fail this send.
      net::take_socket_error(fds_[server]);
      for (int copy = 0; copy < copies; ++copy) {
        int error = 0;
        if (net::send_connected(fds_[server], request, error)) {
          ++count.sent;
        } else if (net::undelivered_error(error)) {
          // The refusal of a copy sent just before (this one was not sent).
          ++count.refused;
          count.error = error;
        }
      }
      tries.sent(now);
      if (count.sent > 0 && !refused_tries.count(attempt)) open_tries.insert(attempt);
      uint64_t until = std::min(deadline, now + retry_.timeout_us(silent_tries));
      const TryEnd end = count.sent == 0 && count.refused > 0 ? TryEnd::Refused
                                                              : wait_for_reply(op, until, server, count, reply, refused_tries);
      if (end == TryEnd::Refused) {
        open_tries.erase(attempt);  // every datagram of it refused by the OS: none received
        refused_errno_[server] = count.error;
        if (first_refused_us == 0) first_refused_us = net::now_us();
        silent_tries = 0;
        minority_in_a_row = 0;
        rotation_.leave_silent(net::now_us());
        // Every server refused this round: again after a pause, while it
        // may yet change (a replica restarting) and time is left.
        if (++refused_in_a_row % servers_.size() == 0) {
          now = net::now_us();
          const bool nothing_else = !unsure() && !saw_minority && !saw_busy;
          if ((nothing_else && now >= first_refused_us + kRefusedForUs) || now + kRefusedPauseUs >= deadline) break;
          pause_until(now + kRefusedPauseUs);
        }
        continue;
      }
      refused_in_a_row = 0;
      if (end == TryEnd::Reply) {
        if (reply.code == wire::ReplyCode::NotInMajority) {
          open_tries.erase(reply.attempt);  // this try closed; another named stays open (see above)
          refused_tries.insert(reply.attempt);
          if (!told[server]) {  // once per replica and call: the answer line stays the answer
            told[server] = true;
            std::fprintf(stderr, "client: replica at %s is not in a majority (it sees %u of %u members)%s\n",
                         servers_[server].text.c_str(), static_cast<uint32_t>(reply.value) >> 16,
                         static_cast<uint32_t>(reply.value) & 0xffff,
                         servers_.size() > 1 ? "; trying another" : "; asking it again until the timeout");
          }
          saw_minority = true;
          minority_reply = reply;
          silent_tries = 0;
          rotation_.answered();
          rotation_.leave(net::now_us());
          if (++minority_in_a_row % servers_.size() == 0) {
            now = net::now_us();
            if (now + kBusyPauseUs + retry_.timeout_us(0) >= deadline) break;
            pause_until(now + kBusyPauseUs);
          }
          continue;
        }
        minority_in_a_row = 0;
        rotation_.answered();
        if (reply.code != wire::ReplyCode::Busy) {
          retry_.on_reply(tries, reply.attempt, reply.lossy, net::now_us());
          return CallEnd::Answered;
        }
        // This try was surely not admitted if the reply names it: it speaks
        // for all its copies (see above).
        open_tries.erase(reply.attempt);
        refused_tries.insert(reply.attempt);
        saw_busy = true;
        // Again after a pause, but only with time left to hear the answer:
        // a try cut off by the deadline would make the outcome unknown.
        now = net::now_us();
        if (now + kBusyPauseUs + retry_.timeout_us(0) >= deadline) break;
        pause_until(now + kBusyPauseUs);
        continue;
      }
      // Silent, or only some of its copies refused: it may have been admitted
      // (it stays open).
      // A server silent for 8 tries in a row, or for a second, is probably
      // down: next one. (The time bound matters after a failover: a call
      // held through a view change is a long round-trip sample, which
      // stretches the retry timeout, and 8 tries of it took 5 s. A view
      // change itself takes about half a second; asking another replica
      // meanwhile is harmless, since the request number keeps it once.)
      if (silent_tries == 0) silent_since = now;
      if (++silent_tries >= 8 || net::now_us() >= silent_since + kSilentServerUs) {
        silent_tries = 0;
        rotation_.leave_silent(net::now_us());
      }
    }
    if (saw_minority && !saw_busy && !unsure()) {
      reply = minority_reply;
      return CallEnd::Answered;
    }
    if (saw_busy && !unsure()) {
      reply = wire::Reply{op.client_id, op.request_no, wire::ReplyCode::Busy, 0};
      return CallEnd::Answered;
    }
    if (first_refused_us != 0 && !unsure() && !saw_minority && !saw_busy) return CallEnd::Refused;
    return CallEnd::Unknown;
  }

  void pause_until(uint64_t t) {
    uint64_t now = net::now_us();
    if (t > now) ::poll(nullptr, 0, static_cast<int>((t - now) / 1000));
  }

  // One try's datagrams: how many were sent, and how many refusals the OS
  // reported for them (the last one's errno).
  struct TryCount {
    int sent = 0, refused = 0, error = 0;
  };

  // Waits for the reply to `op` (from any server: a late reply to an
  // earlier try counts) until `until`. Refused once the OS has reported a
  // refusal for each datagram this try sent to `server`: one ICMP comes
  // back for each refused datagram, and the socket's error was cleared just
  // before the try, so a refusal reported now is one of this try's (a
  // datagram of an earlier try whose refusal is reported this late was
  // counted silent then, which already made the call's outcome unknown).
  // Two refusals reported before the first is read count as one, so then
  // the try stays unsure.
  TryEnd wait_for_reply(const wire::Operation& op, uint64_t until, size_t server, TryCount& count,
                        wire::Reply& reply, const std::set<uint32_t>& refused_tries) {
    char buf[2048];
    std::vector<pollfd> polls(fds_.size());
    for (;;) {
      if (count.refused > 0 && count.refused >= count.sent) return TryEnd::Refused;
      uint64_t now = net::now_us();
      if (now >= until) return TryEnd::Silent;
      for (size_t i = 0; i < fds_.size(); ++i) polls[i] = pollfd{fds_[i], POLLIN, 0};
      if (::poll(polls.data(), polls.size(), static_cast<int>((until - now + 999) / 1000)) <= 0) continue;
      for (size_t i = 0; i < fds_.size(); ++i) {
        if (polls[i].revents == 0) continue;
        // A bounded drain: each read takes a datagram or the pending error.
        for (int reads = 0; reads < 64; ++reads) {
          ssize_t n = ::recv(fds_[i], buf, sizeof buf, 0);
          if (n < 0) {
            if (errno == EINTR) continue;
            if (i == server && net::undelivered_error(errno)) {
              ++count.refused;
              count.error = errno;
              continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            continue;  // another server's late refusal, or some other error: taken
          }
          // Anything else (a late reply to an earlier call, junk) is ignored.
          // So is a refusal of a try already refused (see call()).
          if (wire::decode_reply(buf, static_cast<size_t>(n), reply) && reply.client_id == op.client_id &&
              reply.request_no == op.request_no &&
              !((reply.code == wire::ReplyCode::NotInMajority || reply.code == wire::ReplyCode::Busy) &&
                refused_tries.count(reply.attempt)))
            return TryEnd::Reply;
        }
      }
    }
  }

  // Asks every replica for its view, in parallel, resending to the silent.
  Outcome status() {
    const uint64_t nonce = net::random_u64();
    const std::string request = wire::encode_status_request(nonce);
    std::vector<bool> answered(servers_.size(), false);
    std::vector<int> refused(servers_.size(), 0);  // errno of its last refusal, while unanswered
    std::vector<wire::ReplicaStatus> seen(servers_.size());
    const uint64_t deadline = net::now_us() + std::min<uint64_t>(timeout_us_, 1'000'000);
    uint64_t next_send = 0;
    char buf[2048];
    std::vector<pollfd> polls(fds_.size());
    while (net::now_us() < deadline &&
           std::count(answered.begin(), answered.end(), true) < static_cast<long>(servers_.size())) {
      uint64_t now = net::now_us();
      if (now >= next_send) {
        for (size_t i = 0; i < servers_.size(); ++i) {
          if (answered[i]) continue;
          // A refusal of the last round's datagram (it would fail this send).
          int error = net::take_socket_error(fds_[i]);
          if (net::undelivered_error(error)) refused[i] = error;
          if (!net::send_connected(fds_[i], request, error) && net::undelivered_error(error)) refused[i] = error;
        }
        next_send = now + 100'000;
      }
      for (size_t i = 0; i < fds_.size(); ++i) polls[i] = pollfd{fds_[i], POLLIN, 0};
      if (::poll(polls.data(), polls.size(), 20) <= 0) continue;
      for (size_t i = 0; i < fds_.size(); ++i) {
        if (polls[i].revents == 0) continue;
        for (int reads = 0; reads < 64; ++reads) {
          ssize_t n = ::recv(fds_[i], buf, sizeof buf, 0);
          if (n < 0) {
            if (net::undelivered_error(errno)) {
              refused[i] = errno;
              continue;
            }
            if (errno == EINTR) continue;
            break;
          }
          wire::ReplicaStatus s;
          if (!wire::decode_status_reply(buf, static_cast<size_t>(n), s) || s.nonce != nonce) continue;
          answered[i] = true;
          seen[i] = s;
        }
      }
    }
    std::string out;
    for (size_t i = 0; i < servers_.size(); ++i) {
      if (i) out += lines_ ? "\n" : "; ";
      out += servers_[i].text + " ";
      if (!answered[i]) {
        out += refused[i] ? std::string("unreachable: refused (nothing listening there)") : "unreachable";
        continue;
      }
      const wire::ReplicaStatus& s = seen[i];
      out += "up: replica " + std::to_string(s.member) + ", " + config_text(s) + ", delivered " +
             std::to_string(s.delivered_upto) +
             ", stable " + std::to_string(s.stable_upto) + ", queues " + std::to_string(s.queues) +
             ", buffered " + std::to_string(s.buffered_messages) + ", dropped " +
             std::to_string(s.dropped_datagrams);
    }
    say(out);
    if (std::count(answered.begin(), answered.end(), true) > 0) return kSuccess;
    return std::all_of(refused.begin(), refused.end(), [](int e) { return e != 0; }) ? kNotDelivered : kUnknown;
  }

  std::vector<net::Endpoint> servers_;
  std::vector<int> fds_;  // one per server, connected to it
  uint64_t timeout_us_;
  uint64_t client_id_;
  uint64_t last_request_ = 0;
  net::ServerRotation rotation_;  // which server to ask
  net::RetryPolicy retry_;
  Tally tally_;
  bool one_shot_;
  bool lines_;
  std::vector<int> refused_errno_;  // per server, in the last call: errno of its refusals (0: none)
};

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "client: %s\n(run 'client --help' for usage)\n", msg.c_str());
  return kUsageError;
}

}  // namespace

int main(int argc, char** argv) {
  std::string servers = kDefaultServers;
  std::string servers_from = "--servers";
  if (const char* env = std::getenv("FTQ_SERVERS"); env && *env) {
    servers = env;
    servers_from = "FTQ_SERVERS";
  }
  double timeout_s = 3;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;  // everything after it is the command
    } else if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::fputs(kCommands, stdout);
      return 0;
    } else if (a == "--servers" || a.rfind("--servers=", 0) == 0) {
      if (a == "--servers" && i + 1 >= argc) return usage_error("--servers needs HOST:PORT,...");
      servers = a == "--servers" ? argv[++i] : a.substr(10);
      servers_from = "--servers";
    } else if (a == "--timeout" || a.rfind("--timeout=", 0) == 0) {
      if (a == "--timeout" && i + 1 >= argc) return usage_error("--timeout needs a number of seconds");
      std::string v = a == "--timeout" ? argv[++i] : a.substr(10);
      char* end = nullptr;
      timeout_s = std::strtod(v.c_str(), &end);
      // At most 300 s: the replicas forget a client idle for 10 minutes
      // (FTQueue::kClientExpiryMs), and a retry must come well before that
      // to be recognised as one.
      if (v.empty() || *end != 0 || !(timeout_s > 0 && timeout_s <= 300))
        return usage_error("--timeout needs a number of seconds greater than 0 and at most 300, got '" + v + "'");
    } else if (a.size() > 1 && a[0] == '-' && a[1] == '-') {
      return usage_error("unknown option '" + a + "'");
    } else {
      break;  // the command starts here (negative numbers are arguments, not options)
    }
  }
  std::vector<net::Endpoint> endpoints;
  std::string error;
  if (!net::parse_endpoints(servers, endpoints, error)) return usage_error(servers_from + ": " + error);
  const bool one_shot = i < argc;
  const bool interactive = !one_shot && ::isatty(STDIN_FILENO);
  Client client(endpoints, static_cast<uint64_t>(timeout_s * 1e6), one_shot, one_shot || interactive);
  if (!client.open(error)) {
    std::fprintf(stderr, "client: %s\n", error.c_str());
    return kUsageError;  // as for a usage error, nothing was sent
  }
  bool quit = false;
  if (one_shot) {
    std::string line;
    for (int j = i; j < argc; ++j) line += std::string(j > i ? " " : "") + argv[j];
    return client.run_line(line, quit);
  }
  if (interactive)
    std::printf("FTQueue client on %s. Type help for commands, quit to leave (for line editing and history: rlwrap).\n",
                servers.c_str());
  std::string line;
  while (!quit) {
    if (interactive) {
      std::fputs("ftqueue> ", stdout);
      std::fflush(stdout);
    }
    if (!std::getline(std::cin, line)) break;
    client.run_line(line, quit);
  }
  const Tally& t = client.tally();
  if (t.failed > 0) {
    std::string notes;
    if (t.unknown > 0) notes += std::to_string(t.unknown) + " outcome unknown";
    if (t.not_delivered > 0) notes += (notes.empty() ? "" : ", ") + std::to_string(t.not_delivered) + " not delivered";
    if (!notes.empty()) notes = " (" + notes + ")";
    std::fprintf(stderr, "client: %d of %d commands failed%s\n", t.failed, t.commands, notes.c_str());
  }
  return t.worst;
}
