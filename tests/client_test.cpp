// client_test: the client's exit statuses and messages, against real
// processes (a one-replica cluster and the real ./client):
//   0 success, 1 an error reply, 2 a usage error, 3 no answer in time (the
//   outcome is unknown: the operation may still take effect), 4 not
//   delivered (the OS refused every try at every server: no effect).
// One-shot answers go to stdout, errors to stderr. In pipe mode every
// command answers one line on stdout; the client exits with the worst status
// of any line and says on stderr how many failed. A stand-in replica that answers "busy" checks
// when busy is a definite "not applied": only if no try went unanswered.
// With --test no-majority: 5 replicas split so that no side has a majority
// give the definite "not in a majority" (1), even with a long timeout; once
// healed, they stop gracefully in under 2 s.
//
//   client_test --server BIN --client BIN [--test exit-status|no-majority]
// Nothing here is random: the cluster runs without --loss.
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "../net.hpp"
#include "../wire.hpp"
#include "harness.hpp"

namespace {

// A UDP socket on 127.0.0.1 that the test holds and that no server reads:
// requests sent to its port are kept, unanswered, in its receive buffer.
int quiet_socket() { return harness::loopback_socket(); }

std::string address_of(int fd) { return net::to_string(net::local_address(fd)); }

// Waits (bounded) for one datagram on `fd`; "" if none came.
std::string receive(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) <= 0) return "";
  char buf[2048];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

// A port on 127.0.0.1 where nothing listens, and which no parallel run can
// take: the test holds it with a socket connected to another of its own
// sockets (`peer`), so the kernel gives that socket only what comes from
// there, and answers anything else sent to the port with ICMP port
// unreachable, as for a port with no socket at all.
struct RefusingPort {
  int fd = harness::loopback_socket(), peer = harness::loopback_socket();
  RefusingPort() {
    const sockaddr_in to = net::local_address(peer);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
      std::perror("connect");
      std::exit(2);
    }
  }
  ~RefusingPort() {
    ::close(fd);
    ::close(peer);
  }
  std::string address() const { return address_of(fd); }
  // Datagrams that reached the socket anyway (there must be none).
  int received() const {
    int n = 0;
    while (n < 1000 && !receive(fd, 0).empty()) ++n;
    return n;
  }
};

// Stands in for a replica that admits nothing: it ignores the first `ignore`
// requests (as if lost, or admitted with the reply lost), then answers every
// request "busy", echoing its try number, until `stop` (or 20 s).
void busy_replica(int fd, int ignore, const std::atomic<bool>& stop) {
  char buf[2048];
  const uint64_t give_up = net::now_us() + 20'000'000;
  while (!stop && net::now_us() < give_up) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10) <= 0) continue;
    sockaddr_in from{};
    socklen_t len = sizeof from;
    ssize_t n = ::recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
    wire::Operation op;
    uint32_t attempt = 0;
    if (n <= 0 || !wire::decode_request(buf, static_cast<size_t>(n), op, attempt)) continue;
    if (ignore > 0) {
      --ignore;
      continue;
    }
    wire::Reply busy{op.client_id, op.request_no, wire::ReplyCode::Busy, 0};
    busy.attempt = attempt;
    net::send_to(fd, wire::encode_reply(busy), from);
  }
}

// Three stand-ins on one thread, for the client's memory of silent
// replicas: `quiet` answers nothing and counts the requests it gets, by
// request number; `minority` answers every request "not in a majority";
// `once` answers request 1 "ok" and every later one "not in a majority".
struct StandIns {
  int quiet = quiet_socket(), minority = quiet_socket(), once = quiet_socket();
  std::vector<uint64_t> quiet_got;  // request numbers, in arrival order (read after stop)

  void serve(const std::atomic<bool>& stop) {
    char buf[2048];
    const uint64_t give_up = net::now_us() + 20'000'000;
    while (!stop && net::now_us() < give_up) {
      pollfd p[3] = {{quiet, POLLIN, 0}, {minority, POLLIN, 0}, {once, POLLIN, 0}};
      if (::poll(p, 3, 10) <= 0) continue;
      for (int i = 0; i < 3; ++i) {
        if (!(p[i].revents & POLLIN)) continue;
        sockaddr_in from{};
        socklen_t len = sizeof from;
        ssize_t n = ::recvfrom(p[i].fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
        wire::Operation op;
        uint32_t attempt = 0;
        if (n <= 0 || !wire::decode_request(buf, static_cast<size_t>(n), op, attempt)) continue;
        if (p[i].fd == quiet) {
          quiet_got.push_back(op.request_no);
          continue;
        }
        const bool ok = p[i].fd == once && op.request_no == 1;
        wire::Reply r{op.client_id, op.request_no, ok ? wire::ReplyCode::Ok : wire::ReplyCode::NotInMajority,
                      ok ? 0 : static_cast<int32_t>((1 << 16) | 3)};
        r.attempt = attempt;
        net::send_to(p[i].fd, wire::encode_reply(r), from);
      }
    }
  }
  ~StandIns() {
    for (int fd : {quiet, minority, once}) ::close(fd);
  }
};

struct Run {
  int status;
  std::string out, err;
};

Run run(const std::string& client, const std::vector<std::string>& args, const std::string& input = "") {
  Run r;
  r.status = harness::run_program(client, args, input, r.out, r.err);
  return r;
}

// The last line of `text` (with its newline).
std::string last_line(const std::string& text) {
  if (text.size() < 2) return text;
  const size_t nl = text.rfind('\n', text.size() - 2);
  return nl == std::string::npos ? text : text.substr(nl + 1);
}

// One-shot mode: the exit status and the one line printed: an answer on
// stdout, an error on stderr (after any notes the client made there), with
// nothing on the other.
void expect(const std::string& client, const std::vector<std::string>& args, int status, const std::string& line) {
  std::string command;
  for (const std::string& a : args) command += " " + a;
  Run r = run(client, args);
  CHECK(r.status == status, "exit status of client" + command + ": expected " + std::to_string(status) + ", got " +
                                std::to_string(r.status) + " (" + r.out + r.err + ")");
  if (status == 0) {
    CHECK_EQ(r.out, line + "\n", "output of client" + command);
    CHECK_EQ(r.err, std::string(""), "stderr of client" + command);
  } else {
    CHECK_EQ(r.out, std::string(""), "stdout of client" + command + " (an error goes to stderr)");
    CHECK_EQ(last_line(r.err), line + "\n", "stderr of client" + command);
  }
}

// Pipe mode: the exit status, the output lines and the summary on stderr.
void expect_pipe(const std::string& client, const std::string& servers, const std::string& input, int status,
                 const std::string& out, const std::string& err) {
  Run r = run(client, {"--servers", servers, "--timeout", "0.3"}, input);
  CHECK(r.status == status, "pipe mode exit status: expected " + std::to_string(status) + ", got " +
                                std::to_string(r.status) + " for input '" + input + "'");
  CHECK_EQ(r.out, out, "pipe mode output");
  CHECK_EQ(r.err, err, "pipe mode summary on stderr");
}

size_t occurrences(const std::string& text, const std::string& word);
bool wait_until_no_primary(const std::string& client, const std::string& servers, std::string& status);

// A client session (a pipe) kept open across commands, as a program drives
// ./client: write a command, read its one line of output.
class Session {
 public:
  Session(const std::string& client, const std::vector<std::string>& args) {
    int in[2], out[2];
    if (::pipe(in) != 0 || ::pipe(out) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::close(in[0]), ::close(in[1]), ::close(out[0]), ::close(out[1]);
      std::vector<char*> argv{const_cast<char*>(client.c_str())};
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(client.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    to_ = in[1];
    from_ = out[0];
  }
  ~Session() { finish(); }
  bool running() const { return pid_ > 0; }
  // One command; its output line ("" if none within limit_ms).
  std::string command(const std::string& line, int limit_ms) {
    const std::string text = line + "\n";
    if (::write(to_, text.data(), text.size()) != static_cast<ssize_t>(text.size())) return "";
    const uint64_t give_up = net::now_us() + static_cast<uint64_t>(limit_ms) * 1000;
    for (;;) {
      const size_t nl = buffered_.find('\n');
      if (nl != std::string::npos) {
        std::string got = buffered_.substr(0, nl + 1);
        buffered_.erase(0, nl + 1);
        return got;
      }
      const uint64_t now = net::now_us();
      if (now >= give_up) return "";
      pollfd p{from_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>((give_up - now) / 1000) + 1) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::read(from_, buf, sizeof buf);
      if (n <= 0) return "";
      buffered_.append(buf, static_cast<size_t>(n));
    }
  }
  // Closes its input and waits for it (by its pid; killed after 10 s).
  int finish() {
    if (pid_ <= 0) return -1;
    if (to_ >= 0) ::close(to_), to_ = -1;
    int status = 0;
    for (int i = 0; i < 1000 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i) ::usleep(10'000);
    if (::waitpid(pid_, &status, WNOHANG) == 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
    pid_ = -1;
    if (from_ >= 0) ::close(from_), from_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
  std::string buffered_;
};

// A session client in lossy mode (its replicas repair heavy loss on their
// peer links, so its replies say `lossy` and it sends every try as two
// copies) meets a no-majority split: every replica refuses the push, and
// a refusal naming a try speaks for both its copies (the replica refuses a
// copy of a refused try again), so the answer is the definite "no replica
// is in a majority ... no effect", not "may still take effect". The
// client's own datagrams are not lost (the loss is on peer links only:
// slow:ID:0:PCT entries in the cut files), so each try is refused.
int lossy_no_majority_test(const std::string& server, const std::string& client) {
  std::string dir = harness::make_temp_dir("client-lossy-no-majority");
  harness::ClusterConfig config{5, 0, 1, server, dir, {"--trace"}};
  config.cut_files = true;
  harness::Cluster cluster(config);
  const int kPercent = 30;
  // Replica i's cut file: the links in `cut` cut, every other peer link slow
  // (no delay) and lossy.
  auto links = [&](int i, const std::string& cut) {
    std::string text = cut;
    for (int j = 0; j < 5; ++j) {
      if (j == i || (" " + cut + " ").find(" " + std::to_string(j) + " ") != std::string::npos) continue;
      text += (text.empty() ? "" : " ") + std::string("slow:") + std::to_string(j) + ":0:" + std::to_string(kPercent);
    }
    return text;
  };
  for (int i = 0; i < 5; ++i) cluster.cut(i, links(i, ""));
  cluster.start_all();
  const std::string servers = cluster.servers();
  std::string status;
  bool primary = false;  // so that the session's first server, replica 0, answers it
  for (const uint64_t give_up = net::now_us() + 20'000'000; !primary && net::now_us() < give_up;) {
    status = run(client, {"--servers", servers, "--timeout", "1", "status"}).out;
    primary = occurrences(status, " primary {0,1,2,3,4}") == 5;
    if (!primary) ::usleep(100'000);
  }
  CHECK(primary, "all 5 primary: " + status);
  Session session(client, {"--servers", servers, "--timeout", "6"});
  CHECK(session.running(), std::string("start a client session"));
  std::string line = session.command("create 5", 15'000);
  CHECK(line == "1\n", "create a queue: " + line);
  // Pushes over the lossy peer links, so that the replicas go into lossy
  // mode and the last reply says so (whether it did shows below: a copy
  // refused again). Another session pushes through replica 1 meanwhile,
  // so that the session's replica receives others' messages to repair too.
  std::atomic<bool> stop{false};
  std::thread load([&] {
    Session other(client, {"--servers", cluster.endpoint(1), "--timeout", "6"});
    for (int i = 0; !stop; ++i) other.command("push 1 " + std::to_string(100000 + i), 10'000);
  });
  int pushes = 0;
  for (; pushes < 400; ++pushes) {
    line = session.command("push 1 " + std::to_string(pushes), 15'000);
    if (line != "ok\n") break;
  }
  stop = true;
  load.join();
  CHECK(pushes == 400, "400 pushes over lossy peer links: push " + std::to_string(pushes) + " said " + line);

  const char* cuts[] = {"2 3 4", "2 3 4", "0 1 4", "0 1 4", "0 1 2 3"};  // whom each cannot reach
  for (int i = 0; i < 5; ++i) cluster.cut(i, links(i, cuts[i]));
  CHECK(wait_until_no_primary(client, servers, status), "within 20 s no replica should be primary any more: " + status);

  const uint64_t start = net::now_us();
  line = session.command("push 1 999", 15'000);
  const double took_s = static_cast<double>(net::now_us() - start) / 1e6;
  std::printf("lossy session, no majority, --timeout 6: after %.1f s: %s", took_s, line.c_str());
  // Two copies of a try came to one replica: the second was refused again.
  size_t refused_again = 0;
  for (int i = 0; i < 5; ++i)
    refused_again += occurrences(cluster.log_text(i), "a copy of a try refused before: refused again");
  std::printf("copies refused again (the client sent each try twice): %zu\n", refused_again);
  CHECK(refused_again > 0, std::string("no copy was refused again: the client was not in lossy mode, so this "
                                       "test shows nothing (loss too light?)"));
  CHECK(line.find("error: no replica is in a majority (") == 0 &&
            line.find("; the operation had no effect\n") != std::string::npos,
        "a definite refusal expected, got: " + line);
  const int exit_status = session.finish();
  std::printf("session exit status %d\n", exit_status);
  CHECK(exit_status == 1, "session exit status: expected 1 (a command failed, no outcome unknown), got " +
                              std::to_string(exit_status));

  for (int i = 0; i < 5; ++i) cluster.cut(i, "");
  CHECK(cluster.wait_whole(client, 20'000), "healed: all 5 should be in one primary configuration again");
  CHECK(cluster.stop_all(), std::string("graceful stop"));
  if (harness::g_failures == 0) {
    harness::remove_tree(dir);
    std::printf("client lossy no majority: passed\n");
    return 0;
  }
  std::printf("client lossy no majority: %d checks failed; logs and data kept in %s\n", harness::g_failures,
              dir.c_str());
  return 1;
}

// A one-shot call against a stand-in replica that ignores `ignore` requests
// and then answers busy.
void expect_busy(const std::string& client, int ignore, int status, const std::string& line) {
  int fd = quiet_socket();
  std::atomic<bool> stop{false};
  std::thread replica(busy_replica, fd, ignore, std::cref(stop));
  expect(client, {"--servers", address_of(fd), "--timeout", "0.3", "push", "1", "5"}, status, line);
  stop = true;
  replica.join();
  ::close(fd);
}

// A client that left a replica for silence passes it over when it moves on
// again soon after. Servers, in order: quiet, minority, once. The first
// command finds quiet silent (1 s), minority in a minority, and once
// answering. The second is refused by once and by minority, over and over
// until its timeout: moving on from once, the list leads to quiet, which
// the client left for silence a moment ago, so it must ask minority
// instead. Without the memory, quiet gets the second request too (and
// holds the client a further second each time).
void expect_silent_remembered(const std::string& client) {
  StandIns s;
  std::atomic<bool> stop{false};
  std::thread replicas([&] { s.serve(stop); });
  const std::string servers = address_of(s.quiet) + "," + address_of(s.minority) + "," + address_of(s.once);
  Run r = run(client, {"--servers", servers, "--timeout", "2.5"}, "size 1\nsize 1\n");
  stop = true;
  replicas.join();
  std::string out_line = r.out;  // for the messages: one line
  std::replace(out_line.begin(), out_line.end(), '\n', '|');
  size_t first = 0, second = 0;
  for (uint64_t no : s.quiet_got) (no == 1 ? first : second) += 1;
  CHECK(first > 0, std::string("the first command should have tried the quiet replica"));
  CHECK(second == 0, "the second command asked the replica that was silent a moment ago " + std::to_string(second) +
                         " times; it should pass it over");
  CHECK(r.out.find("0\n") == 0, "the first command's answer comes from the third replica: " + out_line);
  // Refused, or, when a stand-in's answer came after the client's retry
  // timer (a loaded machine), an outcome the client cannot know.
  CHECK(r.out.find("is in a majority") != std::string::npos || r.out.find("may still take effect") != std::string::npos,
        "the second command ends refused (or unknown): " + out_line);
}

size_t occurrences(const std::string& text, const std::string& word) {
  size_t count = 0;
  for (size_t pos = text.find(word); pos != std::string::npos; pos = text.find(word, pos + 1)) ++count;
  return count;
}

// Until all 5 replicas answer `status` and none is in a primary
// configuration ("non-primary {" does not contain " primary {"), at most
// 20 s; `status` is the last answer.
bool wait_until_no_primary(const std::string& client, const std::string& servers, std::string& status) {
  for (const uint64_t give_up = net::now_us() + 20'000'000; net::now_us() < give_up; ::usleep(100'000)) {
    status = run(client, {"--servers", servers, "--timeout", "1", "status"}).out;
    if (occurrences(status, "up: replica ") == 5 && status.find(" primary {") == std::string::npos) return true;
  }
  return false;
}

// No majority anywhere: 5 replicas cut into {0,1} | {2,3} | {4}. Every
// replica refuses at once, so the answer is the definite "not in a
// majority" (1), whatever the timeout. The client pauses only once per
// round of the servers, so in 6 s it makes hundreds of tries; each must
// have a number of its own (with try numbers that stopped at 255, a
// refusal could have answered an earlier try, and after ~2.6 s the
// outcome became unknown, 3).
int no_majority_test(const std::string& server, const std::string& client) {
  std::string dir = harness::make_temp_dir("client-no-majority");
  harness::ClusterConfig config{5, 0, 1, server, dir, {}};
  config.cut_files = true;
  harness::Cluster cluster(config);
  cluster.start_all();
  const std::string servers = cluster.servers();
  Run created = run(client, {"--servers", servers, "--timeout", "10", "create", "5"});
  CHECK(created.status == 0 && created.out == "1\n", "create a queue: " + created.out + created.err);

  const char* cuts[] = {"2 3 4", "2 3 4", "0 1 4", "0 1 4", "0 1 2 3"};  // whom each cannot reach
  for (int i = 0; i < 5; ++i) cluster.cut(i, cuts[i]);
  std::string status;
  CHECK(wait_until_no_primary(client, servers, status), "within 20 s no replica should be primary any more: " + status);

  const uint64_t start = net::now_us();
  Run push = run(client, {"--servers", servers, "--timeout", "6", "push", "1", "7"});
  const double took_s = static_cast<double>(net::now_us() - start) / 1e6;
  const std::string answer = last_line(push.err);  // a one-shot error goes to stderr, after the notes
  std::printf("no majority, --timeout 6: exit %d after %.1f s: %s", push.status, took_s, answer.c_str());
  CHECK(push.status == 1, "exit status: expected 1 (not in a majority), got " + std::to_string(push.status) +
                              " (" + push.out + push.err + ")");
  CHECK(push.out.empty() && answer.find("error: no replica is in a majority (") == 0 &&
            answer.find("; the operation had no effect\n") != std::string::npos,
        "output: " + push.out + push.err);
  CHECK(push.err.find("is not in a majority (it sees") != std::string::npos, "stderr: " + push.err);

  // Heal, so that the replicas can drain and stop gracefully.
  for (int i = 0; i < 5; ++i) cluster.cut(i, "");
  CHECK(cluster.wait_whole(client, 20'000), "healed: all 5 should be in one primary configuration again");
  // An idle cluster stops gracefully in a fraction of a second: a replica
  // done leaving lingers only while a peer still needs it, and the peers'
  // keepalives do not count (they kept every replica to the 3 s cap). 2 s
  // leaves room for a loaded machine.
  const uint64_t stop_start = net::now_us();
  CHECK(cluster.stop_all(), std::string("graceful stop"));
  const double stop_s = static_cast<double>(net::now_us() - stop_start) / 1e6;
  std::printf("graceful stop of 5 idle replicas: %.2f s\n", stop_s);
  CHECK(stop_s < 2.0, "graceful stop of 5 idle replicas took " + std::to_string(stop_s) + " s");
  if (harness::g_failures == 0) {
    harness::remove_tree(dir);
    std::printf("client no majority: passed\n");
    return 0;
  }
  std::printf("client no majority: %d checks failed; logs and data kept in %s\n", harness::g_failures, dir.c_str());
  return 1;
}

// 4: the OS refused every datagram at every server (nothing listens
// there). Said within about a second, naming every address and the likely
// cause, and that nothing took effect; only when every server refused: one
// that is silent (a socket holds what it gets) or answers keeps today's
// answers. `servers`: the live one-replica cluster.
void expect_not_delivered(const std::string& client, const std::string& servers) {
  RefusingPort a, b, c;
  const std::string refusing = a.address() + "," + b.address() + "," + c.address();
  const uint64_t t0 = net::now_us();
  Run r = run(client, {"--servers", refusing, "--timeout", "5", "push", "1", "5"});
  const double took_s = static_cast<double>(net::now_us() - t0) / 1e6;
  std::printf("every server refuses, --timeout 5: exit %d after %.2f s: %s", r.status, took_s, r.err.c_str());
  CHECK(r.status == 4, "exit status when every server refuses: expected 4, got " + std::to_string(r.status) + " (" +
                           r.out + r.err + ")");
  CHECK(took_s < 2.0, "a refused call should end within about a second, not at its 5 s timeout: took " +
                          std::to_string(took_s) + " s");
  CHECK_EQ(r.out, std::string(""), "stdout of a refused call");
  for (const RefusingPort* p : {&a, &b, &c})
    CHECK(r.err.find(p->address()) != std::string::npos, "the message names " + p->address() + ": " + r.err);
  for (const char* words : {"nothing is listening at ", "Connection refused", "no server is running there",
                            "wrong ports", "No replica received the operation: it had no effect"})
    CHECK(r.err.find(words) != std::string::npos, std::string("the message says '") + words + "': " + r.err);
  CHECK(a.received() + b.received() + c.received() == 0, std::string("a refusing port received a datagram"));

  // One silent server among them (it holds what it gets, as a replica
  // would admit it): the outcome is unknown, as before.
  int quiet = quiet_socket();
  r = run(client, {"--servers", refusing + "," + address_of(quiet), "--timeout", "1.5", "push", "1", "5"});
  CHECK(r.status == 3 && last_line(r.err) == "error: no answer within 1.5 s; the operation may still take effect\n",
        "a silent server among refusing ones leaves the outcome unknown (3): " + std::to_string(r.status) + " " + r.err);
  CHECK(!receive(quiet, 1000).empty(), std::string("the silent server should have received the request"));
  ::close(quiet);

  // A refusing server before a live one: the live one answers.
  r = run(client, {"--servers", a.address() + "," + servers, "--timeout", "5", "size", "1"});
  CHECK(r.status == 0 && r.out == "0\n" && r.err.empty(), "a refusing server, then a live one: " + r.out + r.err);

  // status: a line per server, refused ones marked so; exit 4 when none answered.
  r = run(client, {"--servers", refusing, "status"});
  CHECK(r.status == 4, "status with every server refusing exits 4: " + std::to_string(r.status));
  CHECK_EQ(r.out, a.address() + " unreachable: refused (nothing listening there)\n" + b.address() +
                      " unreachable: refused (nothing listening there)\n" + c.address() +
                      " unreachable: refused (nothing listening there)\n",
           "status with every server refusing");

  // Pipe mode: the line on stdout; the summary counts it; an unknown
  // outcome is worse than a refusal (exit 3).
  r = run(client, {"--servers", refusing, "--timeout", "1"}, "size 1\n");
  CHECK(r.status == 4 && r.out.find("error: nothing is listening at " + a.address()) == 0 &&
            r.err == "client: 1 of 1 commands failed (1 not delivered)\n",
        "pipe mode, every server refusing: " + std::to_string(r.status) + " " + r.out + r.err);
  int quiet2 = quiet_socket();
  r = run(client, {"--servers", address_of(quiet2), "--timeout", "0.3"}, "size 1\n");
  ::close(quiet2);
  CHECK(r.status == 3, "pipe mode, a silent server: 3, got " + std::to_string(r.status));
}

// The small things a newcomer met: `--` ends the options; --timeout 0 is
// refused in words that agree with themselves; "trying another" is not said
// with only one server to try; --help names exit status 4 and rlwrap; a
// one-shot status prints a line per server (a pipe: one line).
void expect_small_items(const std::string& client, const std::string& servers) {
  expect(client, {"--servers", servers, "--", "size", "1"}, 0, "0");
  expect(client, {"--servers", servers, "--timeout", "2", "--", "push", "1", "-5"}, 0, "ok");
  expect(client, {"--servers", servers, "--", "pop", "1"}, 0, "-5");
  expect(client, {"--servers", servers, "--", "--bogus"}, 2, "error: unknown command '--bogus' (type help)");
  Run zero = run(client, {"--servers", servers, "--timeout", "0", "size", "1"});
  CHECK(zero.status == 2 && zero.err.find("--timeout needs a number of seconds greater than 0 and at most 300, got '0'") !=
                                std::string::npos,
        "--timeout 0: " + zero.err);
  Run help = run(client, {"--help"});
  CHECK(help.status == 0 && help.out.find("  4  not delivered") != std::string::npos &&
            help.out.find("rlwrap ./client") != std::string::npos && help.out.find("  --  ") != std::string::npos,
        "--help names exit status 4, rlwrap and --: " + help.out);

  // One server, not in a majority: no "trying another" (there is none).
  StandIns s;
  std::atomic<bool> stop{false};
  std::thread replicas([&] { s.serve(stop); });
  Run alone = run(client, {"--servers", address_of(s.minority), "--timeout", "0.5", "size", "1"});
  Run two = run(client, {"--servers", address_of(s.minority) + "," + address_of(s.minority), "--timeout", "0.5", "size", "1"});
  stop = true;
  replicas.join();
  CHECK(alone.status == 1 && alone.err.find("is not in a majority (it sees 1 of 3 members)") != std::string::npos &&
            alone.err.find("trying another") == std::string::npos,
        "one server, not in a majority: " + alone.err);
  CHECK(two.err.find("trying another") != std::string::npos, "two servers, not in a majority: " + two.err);

  // status: a line per server in one-shot mode, one line from a pipe.
  int quiet = quiet_socket();
  const std::string both = servers + "," + address_of(quiet);
  Run lines = run(client, {"--servers", both, "--timeout", "0.3", "status"});
  CHECK(lines.status == 0 && lines.out.find(servers + " up: replica 0, config ") == 0 &&
            lines.out.find("\n" + address_of(quiet) + " unreachable\n") != std::string::npos &&
            std::count(lines.out.begin(), lines.out.end(), '\n') == 2,
        "one-shot status, a line per server: " + lines.out);
  Run piped = run(client, {"--servers", both, "--timeout", "0.3"}, "status\n");
  CHECK(piped.status == 0 && piped.out.find("; " + address_of(quiet) + " unreachable\n") != std::string::npos &&
            std::count(piped.out.begin(), piped.out.end(), '\n') == 1,
        "status from a pipe, one line: " + piped.out);
  ::close(quiet);
}

int client_test(const std::string& server, const std::string& client) {
  std::string dir = harness::make_temp_dir("client");
  harness::Cluster cluster(harness::ClusterConfig{1, 0, 1, server, dir, {}});
  cluster.start_all();
  const std::string servers = cluster.servers();
  auto on_cluster = [&](std::vector<std::string> command) {
    command.insert(command.begin(), {"--servers", servers});
    return command;
  };

  // 0 and 1: answers.
  expect(client, on_cluster({"create", "5"}), 0, "1");
  expect(client, on_cluster({"push", "1", "7"}), 0, "ok");
  expect(client, on_cluster({"size", "1"}), 0, "1");
  expect(client, on_cluster({"pop", "1"}), 0, "7");
  expect(client, on_cluster({"pop", "1"}), 1, "error: queue 1 is empty");
  expect(client, on_cluster({"size", "2"}), 1, "error: no queue with id 2");

  // The servers from the environment (FTQ_SERVERS), as etcdctl reads
  // ETCDCTL_ENDPOINTS; --servers wins over it; a bad list names where it
  // came from. (env(1) sets the variable for the client alone.)
  Run from_env = run("/usr/bin/env", {"FTQ_SERVERS=" + servers, client, "size", "1"});
  CHECK(from_env.status == 0 && from_env.out == "0\n", "FTQ_SERVERS names the cluster: " + from_env.out + from_env.err);
  Run overridden = run("/usr/bin/env", {"FTQ_SERVERS=nonsense", client, "--servers", servers, "size", "1"});
  CHECK(overridden.status == 0 && overridden.out == "0\n", "--servers wins over FTQ_SERVERS: " + overridden.out + overridden.err);
  Run bad_env = run("/usr/bin/env", {"FTQ_SERVERS=nonsense", client, "size", "1"});
  CHECK(bad_env.status == 2 && bad_env.err.find("FTQ_SERVERS: ") != std::string::npos,
        "a bad FTQ_SERVERS exits 2 naming it: " + bad_env.err);

  // 2: usage errors, on the command line and in the command.
  Run bogus = run(client, {"--bogus"});
  CHECK(bogus.status == 2 && bogus.out.empty() && bogus.err.find("unknown option '--bogus'") != std::string::npos,
        "a bad flag exits 2 with a message on stderr: " + bogus.err);
  expect(client, on_cluster({"push", "1"}), 2, "error: push needs ID ITEM");
  expect(client, on_cluster({"frobnicate"}), 2, "error: unknown command 'frobnicate' (type help)");

  // 3: nobody answers. The request is not lost for that: it waits in the
  // quiet socket. Handed to the replica after the client has given up, it
  // takes effect, which is why the client may not call it failed.
  int quiet = quiet_socket();
  expect(client, {"--servers", address_of(quiet), "--timeout", "0.3", "push", "1", "9"}, 3,
         "error: no answer within 0.3 s; the operation may still take effect");
  std::string request = receive(quiet, 1000);
  CHECK(!request.empty(), std::string("the client's request should wait in the quiet socket"));
  // The client's later tries of it wait there too: drop them, so that the
  // next datagram is the replica's reply.
  int dropped = 0;
  while (dropped < 100 && !receive(quiet, 0).empty()) ++dropped;
  std::vector<net::Endpoint> replica;
  std::string error;
  net::parse_endpoints(servers, replica, error);
  net::send_to(quiet, request, replica[0].addr);
  wire::Reply reply;
  std::string answer = receive(quiet, 5000);
  CHECK(wire::decode_reply(answer.data(), answer.size(), reply) && reply.code == wire::ReplyCode::Ok,
        std::string("the replica should apply the request the client gave up on"));
  expect(client, on_cluster({"pop", "1"}), 0, "9");

  // Busy is definite ("not applied", 1) only if every try was answered busy;
  // after a try that got no answer, the outcome is unknown (3).
  expect_busy(client, 0, 1, "error: the cluster is busy (a replica is not keeping up); try again later");
  expect_busy(client, 1, 3, "error: no answer within 0.3 s (the cluster is busy); the operation may still take effect");
  expect_silent_remembered(client);
  expect_not_delivered(client, servers);
  expect_small_items(client, servers);

  // Pipe mode: the highest status of any line; a summary when any failed.
  // Blank and comment lines are not commands.
  expect_pipe(client, servers, "size 1\n", 0, "0\n", "");
  expect_pipe(client, servers, "push 1 8\n# a comment\n\nsize 2\ntop 1\n", 1, "ok\nerror: no queue with id 2\n8\n",
              "client: 1 of 3 commands failed\n");
  expect_pipe(client, servers, "frobnicate\nsize 2\n", 2,
              "error: unknown command 'frobnicate' (type help)\nerror: no queue with id 2\n",
              "client: 2 of 2 commands failed\n");
  expect_pipe(client, address_of(quiet), "size 1\nfrobnicate\n", 3,
              "error: no answer within 0.3 s; the operation may still take effect\n"
              "error: unknown command 'frobnicate' (type help)\n",
              "client: 2 of 2 commands failed (1 outcome unknown)\n");
  ::close(quiet);

  CHECK(cluster.stop_all(), std::string("graceful stop"));
  if (harness::g_failures == 0) {
    harness::remove_tree(dir);
    std::printf("client exit status: passed\n");
    return 0;
  }
  std::printf("client exit status: %d checks failed; logs and data kept in %s\n", harness::g_failures, dir.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string server, client, test = "exit-status";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--server") server = argv[i + 1];
    else if (k == "--client") client = argv[i + 1];
    else if (k == "--test") test = argv[i + 1];
  }
  if (server.empty() || client.empty() ||
      (test != "exit-status" && test != "no-majority" && test != "lossy-no-majority")) {
    std::fprintf(stderr, "usage: client_test --server BIN --client BIN [--test exit-status|no-majority|lossy-no-majority]\n");
    return 2;
  }
  if (test == "lossy-no-majority") return lossy_no_majority_test(server, client);
  return test == "no-majority" ? no_majority_test(server, client) : client_test(server, client);
}
