// harness.cpp: see harness.hpp.
#include "harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <set>
#include <sstream>

#include "../ftqueue.hpp"
#include "../net.hpp"

namespace harness {

int g_failures = 0;

namespace {

// Every live child, for the exit paths that skip destructors. Tests start
// clients from several threads, so every access holds the lock (except the
// fatal-signal handler, which only reads and must not block).
std::mutex g_children_lock;
std::set<pid_t>& children() {
  static std::set<pid_t> pids;
  return pids;
}
void add_child(pid_t p) {
  std::lock_guard<std::mutex> g(g_children_lock);
  children().insert(p);
}
void forget_child(pid_t p) {
  std::lock_guard<std::mutex> g(g_children_lock);
  children().erase(p);
}

void kill_children() {
  std::lock_guard<std::mutex> g(g_children_lock);
  for (pid_t p : children()) ::kill(p, SIGKILL);
  for (pid_t p : children()) ::waitpid(p, nullptr, 0);
  children().clear();
}

void on_fatal_signal(int sig) {
  for (pid_t p : children()) ::kill(p, SIGKILL);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void install_guards() {
  static bool done = false;
  if (done) return;
  done = true;
  std::atexit(kill_children);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGABRT, SIGSEGV}) ::signal(sig, on_fatal_signal);
  ::signal(SIGPIPE, SIG_IGN);
}

// In the child, before exec: die with the test process. (Linux sends the
// signal when the *thread* that forked exits: start servers from a thread
// that lives as long as they should.)
void child_setup() {
#ifdef __linux__
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
  // A SIGHUP (Cluster::cut) that reaches a server before it has set its
  // handler would end it: ignored until then (the server sets the handler,
  // then reads its cut file, so a file written meanwhile is still read).
  // spawn() blocks SIGHUP across the fork, so one sent before this line is
  // pending, and is discarded when the mask is restored below.
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGHUP, &ignore, nullptr);
}

pid_t spawn(const std::vector<std::string>& argv, int stdin_fd, int stdout_fd, int stderr_fd,
            int socket_fd) {
  install_guards();
  // Everything the child needs is built before fork: after fork in a
  // threaded process, the child may only make async-signal-safe calls.
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // SIGHUP blocked across the fork: the child ignores it before it can
  // arrive (child_setup), however soon after the fork a test sends it.
  sigset_t hup, before;
  sigemptyset(&hup);
  sigaddset(&hup, SIGHUP);
  ::pthread_sigmask(SIG_BLOCK, &hup, &before);
  pid_t pid = ::fork();
  if (pid < 0) {
    std::perror("fork");
    std::exit(2);
  }
  if (pid == 0) {
    child_setup();
    ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
    if (stdin_fd >= 0) ::dup2(stdin_fd, 0);
    if (stdout_fd >= 0) ::dup2(stdout_fd, 1);
    if (stderr_fd >= 0) ::dup2(stderr_fd, 2);
    if (socket_fd >= 0) {
      if (socket_fd == 3) ::fcntl(3, F_SETFD, 0);
      else ::dup2(socket_fd, 3);  // dup2 clears close-on-exec
    }
    ::execv(args[0], args.data());
    const char msg[] = "harness: exec failed\n";
    ssize_t ignored = ::write(2, msg, sizeof msg - 1);
    (void)ignored;
    ::_exit(127);
  }
  ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
  add_child(pid);
  return pid;
}

// Waits up to timeout_ms for pid; returns its wait status or -1.
int wait_bounded(pid_t pid, int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 5) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      forget_child(pid);
      return status;
    }
    ::usleep(5000);
  }
  return -1;
}

void kill_and_reap(pid_t pid) {
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  forget_child(pid);
}

}  // namespace

int loopback_socket() {
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string error;
  int fd = net::open_udp(any, error);
  if (fd < 0) {
    std::fprintf(stderr, "harness: %s\n", error.c_str());
    std::exit(2);
  }
  return fd;
}

// ---- Cluster ---------------------------------------------------------------

Cluster::Cluster(ClusterConfig config) : config_(std::move(config)) {
  for (int i = 0; i < config_.members; ++i) {
    int fd = loopback_socket();
    sockets_.push_back(fd);
    ports_.push_back(ntohs(net::local_address(fd).sin_port));
  }
  pids_.assign(config_.members, -1);
}

Cluster::~Cluster() {
  for (int i = 0; i < config_.members; ++i)
    if (pids_[i] > 0) kill_and_reap(pids_[i]);
  for (int fd : sockets_) ::close(fd);
}

std::string Cluster::endpoint(int i) const { return "127.0.0.1:" + std::to_string(ports_[i]); }

std::string Cluster::servers() const {
  std::string s;
  for (int i = 0; i < config_.members; ++i) s += (i ? "," : "") + endpoint(i);
  return s;
}

std::string Cluster::data_dir(int i) const { return config_.dir + "/replica-" + std::to_string(i); }

std::string Cluster::snapshot(int i) const {
  std::string path = data_dir(i) + "/snapshot.txt", text;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return "";
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  std::fclose(f);
  return text;
}

std::string Cluster::check_snapshots_identical() const {
  std::string s0 = snapshot(0);
  CHECK(!s0.empty(), std::string("replica 0 wrote no snapshot"));
  for (int i = 1; i < config_.members; ++i)
    CHECK(snapshot(i) == s0, "snapshot of replica " + std::to_string(i) + " differs from replica 0's");
  return s0;
}

bool Cluster::wait_whole(const std::string& client_bin, int timeout_ms) const {
  std::string all = "{";
  for (int i = 0; i < config_.members; ++i) all += (i ? "," : "") + std::to_string(i);
  all += "}";
  // A deadline by the clock: each round's status calls take time too.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < give_up) {
    std::set<std::string> configs;
    int whole = 0;
    for (int i = 0; i < config_.members; ++i) {
      // "127.0.0.1:P up: replica 0, config 2.0 primary {0,1,2} (hears 3 of 3), ..."
      std::string out;
      run_program(client_bin, {"--servers", endpoint(i), "--timeout", "0.5", "status"}, out);
      const size_t at = out.find(", config "), end = out.find(" (hears");
      if (at == std::string::npos || end == std::string::npos || end < at) break;
      const std::string config = out.substr(at + 9, end - at - 9);  // "2.0 primary {0,1,2}"
      configs.insert(config);
      const bool ends_all = config.size() > all.size() &&
                            config.compare(config.size() - all.size(), all.size(), all) == 0;
      if (ends_all && config.find(" primary ") != std::string::npos) ++whole;
    }
    if (whole == config_.members && configs.size() == 1) return true;
    ::usleep(50'000);
  }
  return false;
}

void Cluster::start(int i) { start(i, {}); }

void Cluster::start(int i, const std::vector<std::string>& more_flags) {
  std::vector<std::string> argv = {config_.server_bin, "--id", std::to_string(i), "--peers", servers(),
                                   "--data", data_dir(i), "--socket-fd", "3"};
  if (config_.loss > 0) {
    char loss[32];
    std::snprintf(loss, sizeof loss, "%.3f", config_.loss);
    argv.insert(argv.end(), {"--loss", loss, "--seed", std::to_string(config_.seed + 7919u * restarts_)});
  }
  argv.insert(argv.end(), config_.extra.begin(), config_.extra.end());
  argv.insert(argv.end(), more_flags.begin(), more_flags.end());
  if (config_.cut_files) argv.insert(argv.end(), {"--cut-file", config_.dir + "/cut-" + std::to_string(i)});
  // FTQ_SERVER_ARGS="-v" adds flags to every server, for digging into a failure.
  if (const char* more = std::getenv("FTQ_SERVER_ARGS")) {
    std::istringstream words(more);
    for (std::string w; words >> w;) argv.push_back(w);
  }
  ++restarts_;
  std::string log = config_.dir + "/replica-" + std::to_string(i) + ".log";
  int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  pids_[i] = spawn(argv, -1, log_fd, log_fd, sockets_[i]);
  ::close(log_fd);
}

void Cluster::start_all() {
  for (int i = 0; i < config_.members; ++i) start(i);
}

bool Cluster::running(int i) { return pids_[i] > 0 && ::waitpid(pids_[i], nullptr, WNOHANG) == 0; }

int Cluster::stop_status(int i, int timeout_ms) {
  if (pids_[i] <= 0) return 0;
  ::kill(pids_[i], SIGTERM);
  return wait_status(i, timeout_ms);
}

bool Cluster::wait_stopped(int i, int timeout_ms) { return wait_status(i, timeout_ms) == 0; }

// One SIGTERM only: a second one tells the server to skip the drain.
int Cluster::wait_status(int i, int timeout_ms) {
  if (pids_[i] <= 0) return 0;
  int status = wait_bounded(pids_[i], timeout_ms);
  if (status == -1) kill_and_reap(pids_[i]);
  pids_[i] = -1;
  return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void Cluster::cut(int i, const std::string& links) {
  std::string path = config_.dir + "/cut-" + std::to_string(i), error;
  CHECK(config_.cut_files && write_file_atomically(path, links + "\n", error), "write " + path + ": " + error);
  if (pids_[i] > 0) ::kill(pids_[i], SIGHUP);
}

void Cluster::cut_all(const std::vector<std::string>& links) {
  CHECK(static_cast<int>(links.size()) == config_.members, std::string("cut_all needs one cut list per replica"));
  for (size_t i = 0; i < links.size() && static_cast<int>(i) < config_.members; ++i) {
    std::string path = config_.dir + "/cut-" + std::to_string(i), error;
    CHECK(config_.cut_files && write_file_atomically(path, links[i] + "\n", error), "write " + path + ": " + error);
  }
  for (size_t i = 0; i < links.size() && static_cast<int>(i) < config_.members; ++i)
    if (pids_[i] > 0) ::kill(pids_[i], SIGHUP);
}

std::string Cluster::log_text(int i) const {
  std::string text;
  read_file(config_.dir + "/replica-" + std::to_string(i) + ".log", text);
  return text;
}

void Cluster::crash(int i) {
  if (pids_[i] <= 0) return;
  kill_and_reap(pids_[i]);
  pids_[i] = -1;
}

bool Cluster::stop_all(int timeout_ms) {
  // Signal all first: they drain together, as after `run_cluster.sh stop`.
  for (int i = 0; i < config_.members; ++i)
    if (pids_[i] > 0) ::kill(pids_[i], SIGTERM);
  bool ok = true;
  for (int i = 0; i < config_.members; ++i) ok = wait_stopped(i, timeout_ms) && ok;
  return ok;
}

// ---- clients -------------------------------------------------------------------

ClientProcess::ClientProcess(const std::string& client_bin, const std::string& servers, double timeout_s)
    : timeout_s_(timeout_s) {
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) std::exit(2);
  char t[32];
  std::snprintf(t, sizeof t, "%g", timeout_s);
  pid_ = spawn({client_bin, "--servers", servers, "--timeout", t}, in[0], out[1], -1, -1);
  ::close(in[0]);
  ::close(out[1]);
  to_child_ = in[1];
  from_child_ = out[0];
}

ClientProcess::~ClientProcess() {
  ::close(to_child_);
  ::close(from_child_);
  if (wait_bounded(pid_, 2000) == -1) kill_and_reap(pid_);
}

std::string ClientProcess::call(const std::string& line) {
  std::string msg = line + "\n";
  if (::write(to_child_, msg.data(), msg.size()) != static_cast<ssize_t>(msg.size())) return "<no output>";
  const uint64_t deadline = net::now_us() + static_cast<uint64_t>((timeout_s_ + 5) * 1e6);
  for (;;) {
    size_t nl = buffered_.find('\n');
    if (nl != std::string::npos) {
      std::string result = buffered_.substr(0, nl);
      buffered_.erase(0, nl + 1);
      return result;
    }
    uint64_t now = net::now_us();
    if (now >= deadline) return "<no output>";
    pollfd p{from_child_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>((deadline - now) / 1000) + 1) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(from_child_, buf, sizeof buf);
    if (n <= 0) return "<no output>";
    buffered_.append(buf, static_cast<size_t>(n));
  }
}

namespace {

// An unlinked file holding `text`, positioned at its start: a child's
// standard input that no length of text can make the writer block on.
int input_file(const std::string& text) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/ftq-input-XXXXXX";
  std::vector<char> path(tmpl.begin(), tmpl.end());
  path.push_back(0);
  int fd = ::mkstemp(path.data());
  if (fd < 0) return -1;
  ::unlink(path.data());
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  if (!written || ::lseek(fd, 0, SEEK_SET) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Standard error goes to `errors` if given, else to the test's own.
int run_bounded(const std::string& program, const std::vector<std::string>& args, const std::string& input,
                std::string& output, std::string* errors, int timeout_ms) {
  int out[2], err[2] = {-1, -1};
  int in = input_file(input);
  if (in < 0 || ::pipe2(out, O_CLOEXEC) != 0 || (errors && ::pipe2(err, O_CLOEXEC) != 0)) return -1;
  std::vector<std::string> argv = {program};
  argv.insert(argv.end(), args.begin(), args.end());
  pid_t pid = spawn(argv, in, out[1], err[1], -1);
  ::close(in);
  ::close(out[1]);
  if (errors) ::close(err[1]);
  output.clear();
  std::string* sinks[2] = {&output, errors};
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};  // poll skips a negative fd
  if (errors) errors->clear();
  const uint64_t deadline = net::now_us() + static_cast<uint64_t>(timeout_ms) * 1000;
  char buf[4096];
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    uint64_t now = net::now_us();
    if (now >= deadline) break;
    if (::poll(fds, 2, static_cast<int>((deadline - now) / 1000) + 1) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
      }
    }
  }
  for (pollfd& p : fds)
    if (p.fd >= 0) ::close(p.fd);
  int status = wait_bounded(pid, 2000);
  if (status == -1) {
    kill_and_reap(pid);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

int run_program(const std::string& program, const std::vector<std::string>& args,
                    std::string& output, int timeout_ms) {
  return run_bounded(program, args, "", output, nullptr, timeout_ms);
}

int run_program(const std::string& program, const std::vector<std::string>& args, const std::string& input,
                std::string& output, std::string& errors, int timeout_ms) {
  return run_bounded(program, args, input, output, &errors, timeout_ms);
}

// ---- misc ----------------------------------------------------------------------

size_t cut_log_tail(const std::string& path, std::mt19937_64& rng) {
  std::string text;
  if (!read_file(path, text)) return 0;
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  size_t last_promise = 0;
  for (size_t i = 0; i < lines.size(); ++i)
    if (lines[i].rfind("promise ", 0) == 0) last_promise = i + 1;
  const size_t after = lines.size() - last_promise;
  if (after == 0) return 0;
  const size_t cut = 1 + rng() % std::max<size_t>(1, after / 3);
  lines.resize(lines.size() - cut);
  std::string kept;
  for (const std::string& line : lines) kept += line + "\n";
  std::string error;
  const bool written = write_file_atomically(path, kept, error);
  CHECK(written, "rewrite " + path + ": " + error);
  return written ? cut : 0;
}

std::string make_temp_dir(const std::string& name) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/ftq-" + name + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back(0);
  if (!::mkdtemp(buf.data())) {
    std::perror("mkdtemp");
    std::exit(2);
  }
  return buf.data();
}

void remove_tree(const std::string& dir) {
  if (dir.size() < 8 || dir.find("/ftq-") == std::string::npos) return;  // only our own
  std::string out;
  run_program("/bin/rm", {"-rf", dir}, out);
}

QuietStretch longest_quiet_stretch(std::vector<uint64_t> ends, uint64_t start_if_none, uint64_t until) {
  std::sort(ends.begin(), ends.end());
  QuietStretch q{0, start_if_none};
  for (size_t i = 1; i < ends.size(); ++i)
    if (ends[i] - ends[i - 1] > q.length) q = QuietStretch{ends[i] - ends[i - 1], ends[i - 1]};
  if (!ends.empty() && until > ends.back() && until - ends.back() > q.length) q = QuietStretch{until - ends.back(), ends.back()};
  return q;
}

uint64_t test_seed(const char* test_name) {
  uint64_t seed = 0;
  const char* env = std::getenv("FTQ_SEED");
  if (!(env && net::parse_u64(env, seed))) seed = net::random_u64() % 1000000000u;
  std::printf("%s: seed %llu (replay with FTQ_SEED=%llu)\n", test_name, static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  return seed;
}

}  // namespace harness
