// harness.hpp: real server and client processes for the tests.
//
// Ports cannot collide with a parallel run: the harness binds each replica's
// UDP socket to 127.0.0.1:0 itself, so the kernel picks a free port, and
// hands the bound socket to the server (--socket-fd). It keeps its own copy,
// so the port stays reserved across a server restart.
//
// Every process started here is recorded by pid and stopped by that pid: by
// the destructors, at exit, on SIGINT/SIGTERM/SIGHUP, and (Linux) by the
// kernel if the test process itself dies. Nothing is ever killed by name.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace harness {

// The server's exit status after a graceful stop whose drain did not
// complete (server --help).
constexpr int kServerDrainTimedOut = 3;

struct ClusterConfig {
  int members = 3;
  double loss = 0;
  uint64_t seed = 1;
  std::string server_bin;
  std::string dir;                  // data and logs go below it
  std::vector<std::string> extra;   // more server flags
  bool cut_files = false;           // give each server --cut-file DIR/cut-I (see Cluster::cut)
};

class Cluster {
 public:
  explicit Cluster(ClusterConfig config);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  void start(int i);
  void start(int i, const std::vector<std::string>& more_flags);  // this start only
  void start_all();
  // SIGTERM, then wait (bounded); SIGKILL if it does not exit in time.
  // Returns its exit status, or -1 if it had to be killed or died of a signal.
  int stop_status(int i, int timeout_ms = 8000);
  // True if it exited by itself with status 0: its drain completed.
  bool stop(int i, int timeout_ms = 8000) { return stop_status(i, timeout_ms) == 0; }
  bool stop_all(int timeout_ms = 8000);
  // SIGKILL, as a crash: no drain, no snapshot; the files stay as they were.
  void crash(int i);
  // With cut_files: writes replica i's cut file (server --help: "0 1",
  // "in:2", "" to heal) and sends it SIGHUP to read it.
  void cut(int i, const std::string& links);
  // The same for every replica at once (links[i] is replica i's): all the
  // files are written first, then the signals sent one after another, so a
  // split takes effect everywhere within a fraction of a millisecond (the
  // writes are synced, and one by one they took milliseconds each).
  void cut_all(const std::vector<std::string>& links);
  std::string log_text(int i) const;  // replica i's log so far
  bool wait_stopped(int i, int timeout_ms);
  int wait_status(int i, int timeout_ms);  // as stop_status, without the signal
  bool running(int i);
  // Waits (bounded) until every replica reports, through `client_bin
  // status`, the same primary configuration of all members. Call it before
  // a graceful stop that must complete: only a member installed with all
  // the others can finish its drain (Membership::done_leaving).
  bool wait_whole(const std::string& client_bin, int timeout_ms = 15000) const;

  std::string servers() const;  // "127.0.0.1:p0,127.0.0.1:p1,..."
  std::string endpoint(int i) const;
  std::string data_dir(int i) const;
  std::string snapshot(int i) const;  // "" if missing
  // Checks (with CHECK) that replica 0 wrote a snapshot and every replica's
  // is byte-identical to it; returns replica 0's.
  std::string check_snapshots_identical() const;
  int members() const { return config_.members; }
  // The harness's copy of replica i's socket: sending on it forges a
  // datagram from member i's address (for the bad-input test).
  int member_socket(int i) const { return sockets_[i]; }
  std::vector<int> pids() const { return std::vector<int>(pids_.begin(), pids_.end()); }

 private:
  ClusterConfig config_;
  std::vector<int> sockets_;
  std::vector<uint16_t> ports_;
  std::vector<pid_t> pids_;
  int restarts_ = 0;
};

// A ./client process in pipe mode: one command line in, one line out.
class ClientProcess {
 public:
  ClientProcess(const std::string& client_bin, const std::string& servers, double timeout_s);
  ~ClientProcess();
  ClientProcess(const ClientProcess&) = delete;
  ClientProcess& operator=(const ClientProcess&) = delete;
  // Sends one command; returns its output line, or "<no output>" if the
  // client said nothing within its own timeout plus a margin.
  std::string call(const std::string& line);

 private:
  pid_t pid_ = -1;
  int to_child_ = -1;
  int from_child_ = -1;
  double timeout_s_;
  std::string buffered_;
};

// Runs `program args...` to completion (bounded); returns its exit
// status (or -1) and its standard output.
int run_program(const std::string& program, const std::vector<std::string>& args,
                    std::string& output, int timeout_ms = 20000);
// The same, with `input` as its standard input and its standard error
// collected in `errors`.
int run_program(const std::string& program, const std::vector<std::string>& args, const std::string& input,
                std::string& output, std::string& errors, int timeout_ms = 20000);

// A UDP socket bound to 127.0.0.1 on a port the kernel picks, so parallel
// runs never share one. Exits the test (status 2) if none can be had.
int loopback_socket();

// What an OS crash without --fsync does to a replica's log (server
// --data-dir's log.txt): the lines the OS had not written back are gone.
// Cuts between 1 and a third of the lines after the last promise (a promise
// is synced before it leaves, so it survives); returns how many (0: none
// after the last promise, or the file could not be rewritten, which is
// also CHECKed).
size_t cut_log_tail(const std::string& path, std::mt19937_64& rng);

// A new empty directory for one test run.
std::string make_temp_dir(const std::string& name);
void remove_tree(const std::string& dir);

// The longest stretch with no call completed, from `ends` (completion times,
// any order): between two of them, or, when `until` is later than the last,
// from the last to `until`. `start` is where it begins (the first such
// stretch, if several are as long); start_if_none when there is none.
struct QuietStretch {
  uint64_t length = 0;
  uint64_t start = 0;
};
QuietStretch longest_quiet_stretch(std::vector<uint64_t> ends, uint64_t start_if_none, uint64_t until = 0);

// The seed of a test run: FTQ_SEED from the environment if set, else fresh.
// Printed, so a failure can be replayed with FTQ_SEED=<seed>.
uint64_t test_seed(const char* test_name);

// Test-side checks that print and count failures instead of aborting, so
// that every process still gets stopped.
extern int g_failures;
#define CHECK(cond, what)                                                            \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      ++harness::g_failures;                                                         \
      std::fprintf(stderr, "CHECK FAILED %s:%d: %s\n", __FILE__, __LINE__, std::string(what).c_str()); \
    }                                                                                \
  } while (0)
#define CHECK_EQ(actual, expected, what)                                              \
  CHECK((actual) == (expected),                                                      \
        std::string(what) + ": expected '" + (expected) + "', got '" + (actual) + "'")

}  // namespace harness
