// smoke_test: a real cluster of server processes on 127.0.0.1, with --loss,
// driven through the real ./client.
//
//   smoke_test operations|concurrent|restart|crash|partition|trace --server BIN --client BIN [--loss P]
//
// operations  every operation and every error case, in pipe and one-shot mode
// concurrent  several clients at once; every acknowledged push popped exactly
//             once and in each producer's order; identical snapshots at the end
// restart     full stop and restart with the state intact; a lone replica
//             restarted while the cluster is idle rejoins
// crash       as concurrent, with one replica killed (SIGKILL) mid-run and
//             restarted on its files
// partition   as concurrent, while the --cut-file switch cuts links
// trace       servers with --trace: one pushed request's path is in the
//             trace (request, DATA, ASSIGN, DELIVER everywhere, reply),
//             drops are marked, junk datagrams are traced and harmless;
//             every line of every log starts with seconds.microseconds, and
//             every DATA record is traced as sent no later than received
// pause       as concurrent, with one replica stopped (SIGSTOP) for 1.5 s
//             mid-run and resumed
// slow        as concurrent, while --cut-file makes replica 2's links slow
//             (slow:2:20:5), and replica 2 leaves the sequencer rotation (it
//             is back after the heal); then with slow:2:50 a call through replica 2
//             takes at least two one-way delays, and the -v counters show
//             who delayed what
// lost_tail   as concurrent, twice a replica killed, its log's tail cut off
//             (an OS crash without --fsync) and restarted as in a new boot:
//             it recovers, counting for no majority, and nothing is lost
// lost_tail_majority  every replica so: the cluster refuses until
//             --trust-log, then serves again
// Seeded (printed); FTQ_SEED=<seed> replays the same choices and drops.
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <csignal>
#include <cstdlib>

#include <algorithm>
#include <cctype>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../ftqueue.hpp"
#include "../net.hpp"
#include "../wire.hpp"
#include "harness.hpp"

using harness::Cluster;
using harness::ClusterConfig;
using harness::ClientProcess;

namespace {

struct Args {
  std::string scenario, server, client;
  double loss = 0.2;
};

// "127.0.0.1:1 up: replica 0, delivered 7, ..." -> the delivered numbers.
std::vector<std::string> delivered_counts(const std::string& status) {
  std::vector<std::string> out;
  for (size_t pos = status.find("delivered "); pos != std::string::npos; pos = status.find("delivered ", pos + 1)) {
    size_t start = pos + 10, end = status.find(',', start);
    out.push_back(status.substr(start, end - start));
  }
  return out;
}

void expect(ClientProcess& c, const std::string& command, const std::string& expected) {
  CHECK_EQ(c.call(command), expected, command);
}

void scenario_operations(const Args& a, uint64_t seed, const std::string& dir) {
  Cluster cluster(ClusterConfig{3, a.loss, seed, a.server, dir, {}});
  cluster.start_all();
  ClientProcess c(a.client, cluster.servers(), 10);
  expect(c, "create 100", "1");
  expect(c, "create 100", "1");
  expect(c, "create 200", "2");
  expect(c, "qCreate 300", "3");
  expect(c, "create -5", "4");
  expect(c, "id 200", "2");
  expect(c, "qId 999", "-1");
  expect(c, "size 1", "0");
  expect(c, "push 1 10", "ok");
  expect(c, "push 1 -20", "ok");
  expect(c, "qPush 1 2147483647", "ok");
  expect(c, "PUSH 1 -2147483648", "ok");
  expect(c, "qSize 1", "4");
  expect(c, "top 1", "10");
  expect(c, "qTop 1", "10");
  expect(c, "pop 1", "10");
  expect(c, "qPop 1", "-20");
  expect(c, "pop 1", "2147483647");
  expect(c, "pop 1", "-2147483648");
  expect(c, "pop 1", "error: queue 1 is empty");
  expect(c, "top 1", "error: queue 1 is empty");
  expect(c, "size 1", "0");
  expect(c, "destroy 2", "ok");
  expect(c, "qDestroy 2", "error: no queue with id 2");
  expect(c, "size 2", "error: no queue with id 2");
  expect(c, "push 2 5", "error: no queue with id 2");
  expect(c, "pop 2", "error: no queue with id 2");
  expect(c, "top 2", "error: no queue with id 2");
  expect(c, "id 200", "-1");
  expect(c, "create 200", "5");  // ids are never reused
  expect(c, "push 77 1", "error: no queue with id 77");
  expect(c, "size 0", "error: no queue with id 0");
  expect(c, "id 200   # a comment is ignored", "5");

  // Bad input: a clear error, and nothing sent (no replica delivers more).
  std::string before = c.call("status");
  CHECK(delivered_counts(before).size() == 3, "status should show 3 replicas up: " + before);
  expect(c, "push 1", "error: push needs ID ITEM");
  expect(c, "push 1 2 3", "error: push needs ID ITEM");
  expect(c, "pop", "error: pop needs ID");
  expect(c, "create", "error: create needs LABEL");
  expect(c, "push 1 99999999999", "error: 99999999999 is not a 32-bit integer");
  expect(c, "size 1x", "error: 1x is not a 32-bit integer");
  expect(c, "id -2147483649", "error: -2147483649 is not a 32-bit integer");
  expect(c, "frobnicate 3", "error: unknown command 'frobnicate' (type help)");
  expect(c, "status now", "error: status takes no arguments");
  std::string after = c.call("status");
  auto highest = [](const std::string& s) {
    uint64_t top = 0;
    for (const std::string& d : delivered_counts(s)) top = std::max<uint64_t>(top, std::stoull(d));
    return top;
  };
  CHECK(highest(before) == highest(after),
        "bad commands must send nothing: " + before + " / " + after);

  // One-shot mode and its exit codes.
  std::string out;
  const std::string servers = cluster.servers();
  CHECK(harness::run_program(a.client, {"--servers", servers, "push", "1", "42"}, out) == 0 && out == "ok\n",
        "one-shot push: " + out);
  CHECK(harness::run_program(a.client, {"--servers", servers, "qsize", "1"}, out) == 0 && out == "1\n",
        "one-shot size: " + out);
  std::string err;
  CHECK(harness::run_program(a.client, {"--servers", servers, "pop", "3"}, "", out, err) == 1 && out.empty() &&
            err == "error: queue 3 is empty\n",
        "one-shot error reply exits 1, the error on stderr: " + out + err);
  CHECK(harness::run_program(a.client, {"--servers", servers, "push", "3"}, out) == 2, "usage error exits 2: " + out);
  CHECK(harness::run_program(a.client, {"--bogus"}, out) == 2, "bad flag exits 2");
  CHECK(harness::run_program(a.client, {"--servers", "nonsense", "size", "1"}, out) == 2, "bad --servers exits 2");
  // A port with no server behind it: the harness holds it, nobody answers.
  Cluster silent(ClusterConfig{1, 0, seed, a.server, dir + "/silent", {}});
  CHECK(harness::run_program(a.client, {"--servers", silent.servers(), "--timeout", "0.5", "size", "1"}, "", out, err) == 3 &&
            err == "error: no answer within 0.5 s; the operation may still take effect\n",
        "no server: " + out + err);
  // The client moves on from a silent server to a live one.
  CHECK(harness::run_program(a.client, {"--servers", silent.servers() + "," + servers, "size", "1"}, out) == 0 &&
            out == "1\n",
        "failover to the next server: " + out);
  CHECK(cluster.wait_whole(a.client), "every replica in one primary configuration before the stop");
  CHECK(cluster.stop_all(), "graceful stop");
}

struct Call {
  std::string command, result;
};

// kClients clients at once, each starting at a different server, pushing
// (items numbered client * 100000 + j) and popping on queues 1 and 2; then a
// drain of both queues. Returns every client's calls, the drain's last.
// `completed` counts finished calls, so the caller can act mid-run.
std::vector<std::vector<Call>> run_workload(const Args& a, const Cluster& cluster, uint64_t seed, int kClients,
                                            int kOps, std::atomic<int>& completed) {
  {
    ClientProcess setup(a.client, cluster.servers(), 10);
    expect(setup, "create 1", "1");
    expect(setup, "create 2", "2");
  }
  std::vector<std::vector<Call>> history(kClients);
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937_64 rng(seed * 31 + c);
      std::string servers = cluster.endpoint(c % cluster.members()) + "," + cluster.servers();
      ClientProcess client(a.client, servers, 20);
      for (int j = 0; j < kOps; ++j) {
        int queue = 1 + static_cast<int>(rng() % 2);
        std::string cmd = rng() % 3 != 0 ? "push " + std::to_string(queue) + " " + std::to_string(c * 100000 + j)
                                         : "pop " + std::to_string(queue);
        history[c].push_back(Call{cmd, client.call(cmd)});
        ++completed;
      }
    });
  }
  for (auto& t : threads) t.join();
  std::vector<Call> drain;
  ClientProcess drainer(a.client, cluster.servers(), 20);
  for (int q = 1; q <= 2; ++q)
    for (int guard = 0; guard < kClients * kOps + 1; ++guard) {
      std::string cmd = "pop " + std::to_string(q);
      std::string r = drainer.call(cmd);
      drain.push_back(Call{cmd, r});
      if (r.rfind("error", 0) == 0) break;
    }
  history.push_back(drain);
  return history;
}

// Every call answered; every acknowledged push popped exactly once; nothing
// popped that was not pushed; each producer's items popped in its order.
void check_history(const std::vector<std::vector<Call>>& history, const char* name) {
  std::map<int, int> acked_push_queue;  // item -> queue
  std::map<int, int> popped_count;
  int pushes = 0, pops = 0, errors = 0;
  for (size_t c = 0; c < history.size(); ++c) {
    std::map<std::pair<int, int>, int> last_seen;  // (producer, queue) -> last item this popper got
    for (const Call& call : history[c]) {
      int queue = std::atoi(call.command.c_str() + call.command.find(' ') + 1);
      if (call.command.rfind("push", 0) == 0) {
        ++pushes;
        int item = std::atoi(call.command.c_str() + call.command.rfind(' ') + 1);
        if (call.result == "ok") acked_push_queue[item] = queue;
        else ++errors;
      } else if (call.result.rfind("error", 0) != 0) {
        ++pops;
        int item = std::atoi(call.result.c_str());
        ++popped_count[item];
        auto key = std::make_pair(item / 100000, queue);
        auto prev = last_seen.find(key);
        CHECK(prev == last_seen.end() || prev->second < item,
              "FIFO: popper " + std::to_string(c) + " got " + std::to_string(item) + " after " +
                  std::to_string(prev == last_seen.end() ? -1 : prev->second));
        last_seen[key] = item;
      } else if (call.result.find("is empty") == std::string::npos) {
        ++errors;
      }
    }
  }
  int lost = 0, duplicated = 0, unexpected = 0;
  for (auto& [item, q] : acked_push_queue)
    if (!popped_count.count(item)) ++lost;
  for (auto& [item, n] : popped_count) {
    if (n > 1) ++duplicated;
    if (!acked_push_queue.count(item)) ++unexpected;
  }
  std::printf("%s: %d pushes, %d pops, %d errors; lost %d, duplicated %d, unexpected %d\n", name, pushes, pops,
              errors, lost, duplicated, unexpected);
  CHECK(errors == 0, std::to_string(errors) + " calls failed");
  CHECK(lost == 0, std::to_string(lost) + " acknowledged pushes were never popped");
  CHECK(duplicated == 0, std::to_string(duplicated) + " items popped twice");
  CHECK(unexpected == 0, std::to_string(unexpected) + " popped items never pushed");
  CHECK(pushes > 100, "the run should push a few hundred items");
}

// A whole cluster stopped gracefully (every drain complete) ends with
// byte-identical snapshots.
void stop_and_compare(const Args& a, Cluster& cluster) {
  CHECK(cluster.wait_whole(a.client), "every replica in one primary configuration before the stop");
  CHECK(cluster.stop_all(), "graceful stop");
  cluster.check_snapshots_identical();
}

void scenario_concurrent(const Args& a, uint64_t seed, const std::string& dir) {
  Cluster cluster(ClusterConfig{3, a.loss, seed, a.server, dir, {}});
  cluster.start_all();
  std::atomic<int> completed{0};
  check_history(run_workload(a, cluster, seed, 4, 80, completed), "concurrent");
  stop_and_compare(a, cluster);
}

// Waits (bounded: 60 s) until the workload has completed `calls` calls.
using WaitForCalls = std::function<void(int calls)>;

// The concurrent workload (4 clients, 80 calls each) with `fault` run from
// this thread meanwhile: the harness's children die with the thread that
// started them (PR_SET_PDEATHSIG), so a restarted server must be started
// from here, which outlives it. Then the history check.
size_t count_lines(const std::string& text, const std::string& line);

void run_with_fault(const Args& a, Cluster& cluster, uint64_t seed, const char* name,
                    const std::function<void(const WaitForCalls&)>& fault) {
  std::atomic<int> completed{0};
  std::vector<std::vector<Call>> history;
  std::thread workload([&] { history = run_workload(a, cluster, seed, 4, 80, completed); });
  fault([&](int calls) {
    for (int waited_ms = 0; completed < calls && waited_ms < 60'000; waited_ms += 2) ::usleep(2000);
  });
  workload.join();
  check_history(history, name);
}

// Replicas killed mid-run (no drain, no snapshot) and restarted on their
// files, three times, a replica drawn from the seed each time. Each stays
// down until the others have completed 25 more calls without it: they have
// formed a configuration without it and freed what it lacks, so it comes
// back by state transfer (checked in the logs). Nothing acknowledged is
// lost or applied twice.
void scenario_crash(const Args& a, uint64_t seed, const std::string& dir) {
  Cluster cluster(ClusterConfig{3, a.loss, seed, a.server, dir, {}});
  cluster.start_all();
  std::mt19937_64 rng(seed ^ 0xc4a5);
  run_with_fault(a, cluster, seed, "crash", [&](const WaitForCalls& wait_for_calls) {
    int calls = 40;
    for (int round = 1; round <= 3; ++round) {
      wait_for_calls(calls);
      const int victim = static_cast<int>(rng() % 3);
      cluster.crash(victim);
      std::printf("crash %d: killed replica %d after %d calls\n", round, victim, calls);
      calls += 25;
      wait_for_calls(calls);
      cluster.start(victim);
      std::printf("crash %d: restarted replica %d after %d calls\n", round, victim, calls);
      calls += 25;
    }
  });
  for (int i = 0; i < 3; ++i) CHECK(cluster.running(i), "replica " + std::to_string(i) + " must be running at the end");
  size_t transfers = 0;
  for (int i = 0; i < 3; ++i) transfers += count_lines(cluster.log_text(i), "state transfer: installed a snapshot");
  std::printf("state transfers: %zu\n", transfers);
  CHECK(transfers > 0, std::string("a replica kept down while the others served must come back by state transfer"));
  stop_and_compare(a, cluster);
}

// Waits (bounded) until replica i's log holds `line`.
bool wait_for_log_line(Cluster& cluster, int i, const std::string& line, int timeout_ms) {
  for (int waited_ms = 0; waited_ms < timeout_ms; waited_ms += 10) {
    if (cluster.log_text(i).find(line) != std::string::npos) return true;
    ::usleep(10'000);
  }
  return false;
}

// A replica that lost its log's tail (an OS crash without --fsync: killed,
// the last lines of its log cut off, restarted as in a new boot) while
// clients work: it says it is recovering, counts for no majority, catches
// up, and nothing acknowledged is lost or applied twice (issue 22).
void scenario_lost_tail(const Args& a, uint64_t seed, const std::string& dir) {
  Cluster cluster(ClusterConfig{3, a.loss, seed, a.server, dir, {}});
  for (int i = 0; i < 3; ++i) cluster.start(i, {"--boot-id", "boot-1"});
  std::mt19937_64 rng(seed ^ 0x1057);
  int victims[2] = {-1, -1};
  run_with_fault(a, cluster, seed, "lost tail", [&](const WaitForCalls& wait_for_calls) {
    int calls = 40;
    for (int round = 0; round < 2; ++round) {
      wait_for_calls(calls);
      const int victim = victims[round] = static_cast<int>(rng() % 3);
      cluster.crash(victim);
      const size_t cut = harness::cut_log_tail(cluster.data_dir(victim) + "/log.txt", rng);
      std::printf("lost tail %d: replica %d killed after %d calls, the last %zu lines of its log cut off\n", round + 1,
                  victim, calls, cut);
      cluster.start(victim, {"--boot-id", "boot-" + std::to_string(round + 2)});
      CHECK(wait_for_log_line(cluster, victim, "recovering:", 5000),
            "replica " + std::to_string(victim) + " restarted in a new boot must say it is recovering");
      calls += 40;
      wait_for_calls(calls);
      CHECK(wait_for_log_line(cluster, victim, "caught up:", 10000),
            "replica " + std::to_string(victim) + " must catch up while the others serve");
      // The next restart in the same boot trusts its log again (a process
      // crash keeps what the OS has).
    }
  });
  for (int i = 0; i < 3; ++i) CHECK(cluster.running(i), "replica " + std::to_string(i) + " must be running at the end");
  stop_and_compare(a, cluster);
}

// A whole-cluster OS crash without --fsync: every replica killed, every
// log's tail cut, all restarted in a new boot. No majority has a whole log,
// so the cluster refuses (definitely: "not in a majority", no effect)
// until an operator vouches for the logs (--trust-log); then it serves,
// and every replica agrees (what the cut tails held may be gone: that is
// what the refusal warned of).
void scenario_lost_tail_majority(const Args& a, uint64_t seed, const std::string& dir) {
  Cluster cluster(ClusterConfig{3, 0, seed, a.server, dir, {}});
  for (int i = 0; i < 3; ++i) cluster.start(i, {"--boot-id", "boot-1"});
  {
    ClientProcess c(a.client, cluster.servers(), 10);
    expect(c, "create 7", "1");
    for (int i = 1; i <= 30; ++i) expect(c, "push 1 " + std::to_string(i), "ok");
  }
  std::mt19937_64 rng(seed ^ 0x1058);
  for (int i = 0; i < 3; ++i) cluster.crash(i);
  for (int i = 0; i < 3; ++i) {
    const size_t cut = harness::cut_log_tail(cluster.data_dir(i) + "/log.txt", rng);
    std::printf("replica %d: the last %zu lines of its log cut off\n", i, cut);
  }
  for (int i = 0; i < 3; ++i) cluster.start(i, {"--boot-id", "boot-2"});
  for (int i = 0; i < 3; ++i)
    CHECK(wait_for_log_line(cluster, i, "recovering:", 5000), "replica " + std::to_string(i) + " must say it is recovering");
  // They hear each other and form a configuration, which cannot be primary.
  bool refused = false;
  std::string out, err;
  for (int tries = 0; tries < 50 && !refused; ++tries) {
    const int status = harness::run_program(a.client, {"--servers", cluster.servers(), "--timeout", "2", "push", "1", "99"},
                                            "", out, err);
    refused = status == 1 && err.find("no replica is in a majority") != std::string::npos;
    if (!refused) ::usleep(100'000);
  }
  CHECK(refused, "with every log cut, a push must be refused as 'not in a majority', got: " + out + err);
  CHECK(err.find("form no primary configuration") != std::string::npos,
        "the refusal must say a majority is heard but forms no primary configuration: " + err);
  // The way out: the operator vouches for every log.
  for (int i = 0; i < 3; ++i) {
    cluster.crash(i);
    cluster.start(i, {"--boot-id", "boot-2", "--trust-log"});
  }
  {
    ClientProcess c(a.client, cluster.servers(), 10);
    const std::string size = c.call("size 1");
    CHECK(!size.empty() && std::isdigit(static_cast<unsigned char>(size[0])) && std::stoi(size) <= 30,
          "after --trust-log the cluster answers size 1 with at most the 30 items pushed: " + size);
    expect(c, "push 1 100", "ok");
    const std::string refused_item = c.call("size 1");
    CHECK(refused_item == std::to_string(std::stoi(size) + 1), "the refused push of 99 had no effect: size " + refused_item);
  }
  stop_and_compare(a, cluster);
}

size_t count_lines(const std::string& text, const std::string& line) {
  size_t count = 0;
  for (size_t pos = text.find(line); pos != std::string::npos; pos = text.find(line, pos + 1)) ++count;
  return count;
}

// Sets replica i's link cuts and waits (bounded) until its log says it read
// them: one more line `link cuts (test switch): <expected>`.
bool cut_links(Cluster& cluster, int i, const std::string& links, const std::string& expected) {
  const std::string line = "link cuts (test switch): " + expected + "\n";
  const size_t before = count_lines(cluster.log_text(i), line);
  cluster.cut(i, links);
  for (int waited_ms = 0; waited_ms < 5000; waited_ms += 10) {
    if (count_lines(cluster.log_text(i), line) > before) return true;
    ::usleep(10'000);
  }
  return false;
}

// The delivered count replica i reports about itself ("" if it is silent).
std::string delivered_at(const Args& a, const Cluster& cluster, int i) {
  std::string out;
  harness::run_program(a.client, {"--servers", cluster.endpoint(i), "--timeout", "1", "status"}, out);
  std::vector<std::string> counts = delivered_counts(out);
  return counts.size() == 1 ? counts[0] : "";
}

// Partitions through the --cut-file test switch while clients work: one
// replica isolated (both ways), healed; then a one-way cut (replica 0 hears
// nothing from replica 1), healed. Phase one stalls while the links are cut
// and must go on after the heal: every call answered within the clients'
// timeout, nothing acknowledged lost or applied twice, identical snapshots.
// While isolated, a replica can deliver at most one more message (one of
// its own, sequenced in its own slot); the test checks that, to show the
// switch really cut the links.
void scenario_partition(const Args& a, uint64_t seed, const std::string& dir) {
  ClusterConfig config{3, a.loss, seed, a.server, dir, {}};
  config.cut_files = true;
  Cluster cluster(config);
  cluster.start_all();
  // A SIGHUP at once, before the servers can have set their handlers (the
  // harness's children ignore it until then; it ended 10 of 10 servers
  // before that): every replica must run on.
  for (int i = 0; i < 3; ++i) cluster.cut(i, "");
  CHECK(cluster.wait_whole(a.client), "every replica up after a SIGHUP at its start");
  run_with_fault(a, cluster, seed, "partition", [&](const WaitForCalls& wait_for_calls) {
    wait_for_calls(80);
    std::mt19937_64 rng(seed);
    const int isolated = static_cast<int>(rng() % 3);
    std::string others;
    for (int i = 0; i < 3; ++i)
      if (i != isolated) others += (others.empty() ? "" : " ") + std::to_string(i);
    CHECK(cut_links(cluster, isolated, others, others), "replica " + std::to_string(isolated) + " read its cut file");
    std::string at_cut = delivered_at(a, cluster, isolated);
    ::usleep(800'000);
    std::string later = delivered_at(a, cluster, isolated);
    std::printf("isolated replica %d: delivered %s, 0.8 s later %s\n", isolated, at_cut.c_str(), later.c_str());
    CHECK(!at_cut.empty() && !later.empty() && std::stoull(later) <= std::stoull(at_cut) + 1,
          "an isolated replica delivers at most one more message (" + at_cut + " -> " + later + ")");
    CHECK(cut_links(cluster, isolated, "", "none"), "replica " + std::to_string(isolated) + " healed");

    wait_for_calls(160);
    CHECK(cut_links(cluster, 0, "in:1", "in:1"), "replica 0 read its one-way cut");
    ::usleep(500'000);
    CHECK(cut_links(cluster, 0, "", "none"), "replica 0 healed");
    // A cut file it cannot parse changes nothing and is reported.
    const std::string refused = "link cuts unchanged (none)";
    const size_t before = count_lines(cluster.log_text(2), refused);
    cluster.cut(2, "0 banana");
    bool reported = false;
    for (int waited_ms = 0; !reported && waited_ms < 5000; waited_ms += 10) {
      reported = count_lines(cluster.log_text(2), refused) > before;
      ::usleep(10'000);
    }
    CHECK(reported, "a malformed cut file is reported and leaves the links as they were");
    CHECK(cluster.running(2), "a malformed cut file does not stop the replica");
  });
  stop_and_compare(a, cluster);
}

// The last number after `label ` in replica i's -v lines ("slow-link
// delayed 12" -> 12), or -1 if there is none yet.
long long last_counter(const Cluster& cluster, int i, const std::string& label) {
  const std::string text = cluster.log_text(i), key = label + " ";
  for (size_t at = text.rfind(key); at != std::string::npos; at = at ? text.rfind(key, at - 1) : std::string::npos) {
    const size_t number = at + key.size();
    if (number < text.size() && std::isdigit(static_cast<unsigned char>(text[number])))
      return std::atoll(text.c_str() + number);
  }
  return -1;
}

// Waits (bounded) until replica i's log has one more line containing `what`.
bool wait_for_more(const Cluster& cluster, int i, const std::string& what, size_t before) {
  for (int waited_ms = 0; waited_ms < 5000; waited_ms += 10) {
    if (count_lines(cluster.log_text(i), what) > before) return true;
    ::usleep(10'000);
  }
  return false;
}

// Slow links through the --cut-file test switch (slow:ID:MS[:PCT]), set in
// replicas 0 and 1's files only: the switch models both directions of a
// link at the end that lists it. First the concurrent workload with replica
// 2's links at 20 ms and 5% loss each way (on top of --loss): nothing lost
// or applied twice. Then at 50 ms and no loss of its own: a call through
// replica 2 crosses its link at least twice (its DATA to the others, what
// orders it back), so each takes at least 100 ms, checked against 90 ms: a
// lower bound only, which a loaded machine cannot break (without the switch
// such calls take milliseconds). The -v counters show replicas 0 and 1
// delaying datagrams and replica 2 none. A malformed entry, or one naming
// the replica itself, is refused and changes nothing.
void scenario_slow(const Args& a, uint64_t seed, const std::string& dir) {
  ClusterConfig config{3, a.loss, seed, a.server, dir, {"-v"}};
  config.cut_files = true;
  Cluster cluster(config);
  // The files are written before the start and read at the start: the
  // links are slow from the first datagram.
  for (int i : {0, 1}) cluster.cut(i, "slow:2:20:5");
  cluster.start_all();
  for (int i : {0, 1})
    CHECK(wait_for_more(cluster, i, "link cuts (test switch): slow:2:20:5\n", 0),
          "replica " + std::to_string(i) + " read its slow link");
  run_with_fault(a, cluster, seed, "slow", [&](const WaitForCalls& wait_for_calls) { wait_for_calls(320); });
  // Replicas 0 and 1 find replica 2's claims late, and it leaves the
  // sequencer rotation (multicast.hpp, "A slow member"): every replica
  // delivers the change and says so.
  const std::string left = "rotation change naming r2; slots now go round {0,1}";
  for (int i = 0; i < 3; ++i)
    CHECK(count_lines(cluster.log_text(i), left) >= 1,
          "replica " + std::to_string(i) + " delivered replica 2's leaving the rotation");

  for (int i : {0, 1})
    CHECK(cut_links(cluster, i, "slow:2:50", "slow:2:50"), "replica " + std::to_string(i) + " read its slow link");
  // A slow link is no reason for a view change: the configuration works
  // while its members hear each other. (An earlier rule waited for each
  // member's header to name the new configuration; over links of 30 to 50
  // ms, started slow, 3 to 34 configurations formed in 2 s. This check,
  // with the link slowed after the start, did not catch that rule.)
  const size_t configurations_before = count_lines(cluster.log_text(0), "] configuration ");
  {
    ClientProcess at0(a.client, cluster.endpoint(0), 10), at2(a.client, cluster.endpoint(2), 10);
    const std::string queue = at0.call("create 9");
    CHECK(queue.find_first_not_of("0123456789") == std::string::npos && !queue.empty(), "create 9: " + queue);
    std::vector<uint64_t> via0, via2;
    for (int j = 0; j < 8; ++j)
      for (auto [client, times] : {std::pair{&at0, &via0}, std::pair{&at2, &via2}}) {
        const uint64_t start = net::now_us();
        const std::string out = client->call("push " + queue + " " + std::to_string(j));
        times->push_back(net::now_us() - start);
        CHECK_EQ(out, std::string("ok"), "push through a replica during slow:2:50");
      }
    std::sort(via0.begin(), via0.end());
    std::sort(via2.begin(), via2.end());
    std::printf("slow:2:50 calls, ms: through replica 0 min %.1f median %.1f, through replica 2 min %.1f median %.1f\n",
                via0.front() / 1000.0, via0[via0.size() / 2] / 1000.0, via2.front() / 1000.0,
                via2[via2.size() / 2] / 1000.0);
    CHECK(via2.front() >= 90'000, "a call through the slow replica takes at least two one-way delays (2 x 50 ms); "
                                  "the quickest took " + std::to_string(via2.front() / 1000) + " ms");
  }
  const size_t configurations_during = count_lines(cluster.log_text(0), "] configuration ") - configurations_before;
  std::printf("configurations installed at replica 0 during the slow:2:50 calls: %zu\n", configurations_during);
  CHECK(configurations_during == 0, "no view change over a 50 ms link: " + std::to_string(configurations_during) +
                                        " configurations installed");
  // The -v counters (one line a second): wait for a line after the calls.
  const std::string label = "slow-link delayed";
  std::vector<size_t> lines;
  for (int i = 0; i < 3; ++i) lines.push_back(count_lines(cluster.log_text(i), label));
  for (int i = 0; i < 3; ++i)
    CHECK(wait_for_more(cluster, i, label, lines[i]), "replica " + std::to_string(i) + " reports its counters");
  const long long d0 = last_counter(cluster, 0, label), d1 = last_counter(cluster, 1, label),
                  d2 = last_counter(cluster, 2, label), dropped = last_counter(cluster, 0, "slow-link");
  std::printf("slow-link delayed: replica 0 %lld, replica 1 %lld, replica 2 %lld\n", d0, d1, d2);
  CHECK(d0 > 0 && d1 > 0, "replicas 0 and 1 delay what they exchange with replica 2");
  CHECK(d2 == 0, "replica 2, whose file is empty, delays nothing");
  CHECK(dropped >= 0, "the -v line counts slow-link drops");

  // Refused entries leave the links as they were, and the replica running.
  const std::string unchanged1 = "link cuts unchanged (slow:2:50)", unchanged2 = "link cuts unchanged (none)";
  const size_t before1 = count_lines(cluster.log_text(1), unchanged1);
  const size_t before2 = count_lines(cluster.log_text(2), unchanged2);
  cluster.cut(1, "slow:2:50 slow:2:20x:5");
  cluster.cut(2, "slow:2:5");
  CHECK(wait_for_more(cluster, 1, unchanged1, before1), "a malformed slow entry is reported and changes nothing");
  CHECK(wait_for_more(cluster, 2, unchanged2, before2), "a slow entry naming the replica itself is refused");
  for (int i : {0, 1}) CHECK(cut_links(cluster, i, "", "none"), "replica " + std::to_string(i) + " healed");
  CHECK(cluster.running(1) && cluster.running(2), "refused slow entries do not stop a replica");
  // Healed: once its claims come in time again, a member whose slot comes
  // up puts replica 2 back (calls give the lag something to measure).
  {
    const std::string back = "rotation change naming r2; slots now go round {0,1,2}";
    ClientProcess at0(a.client, cluster.endpoint(0), 10);
    const std::string queue = at0.call("create 10");
    bool rejoined = false;
    for (int j = 0; j < 400 && !rejoined; ++j) {
      CHECK_EQ(at0.call("push " + queue + " " + std::to_string(j)), std::string("ok"), "push after the heal");
      rejoined = count_lines(cluster.log_text(0), back) >= 1;
    }
    CHECK(rejoined, "replica 2 is back in the rotation within 400 calls of the heal");
  }
  stop_and_compare(a, cluster);
}

// A replica paused (SIGSTOP) for 1.5 s mid-run and resumed: it comes back
// with stale beliefs and a socket buffer of old datagrams, and must neither
// deliver nor assign anything from them. Phase one waits for it; then
// nothing acknowledged is lost or applied twice, and snapshots agree.
void scenario_pause(const Args& a, uint64_t seed, const std::string& dir) {
  Cluster cluster(ClusterConfig{3, a.loss, seed, a.server, dir, {}});
  cluster.start_all();
  std::mt19937_64 rng(seed);
  const int paused = static_cast<int>(rng() % 3);
  run_with_fault(a, cluster, seed, "pause", [&](const WaitForCalls& wait_for_calls) {
    wait_for_calls(100);
    const pid_t pid = cluster.pids()[static_cast<size_t>(paused)];
    CHECK(pid > 0 && ::kill(pid, SIGSTOP) == 0, "pause replica " + std::to_string(paused));
    std::printf("paused replica %d\n", paused);
    ::usleep(1'500'000);
    CHECK(::kill(pid, SIGCONT) == 0, "resume replica " + std::to_string(paused));
  });
  CHECK(cluster.running(paused), "the paused replica runs on");
  stop_and_compare(a, cluster);
}

// n partitionable replicas that read cut files.
ClusterConfig partitionable_config(const Args& a, uint64_t seed, const std::string& dir, int n) {
  ClusterConfig config{n, a.loss, seed, a.server, dir, {"--partitionable"}};
  config.cut_files = true;
  return config;
}

// Starts the cluster, waits for one primary configuration of all, and
// makes queue 1 (label 7) holding item 1.
void start_with_queue(const Args& a, Cluster& cluster) {
  cluster.start_all();
  CHECK(cluster.wait_whole(a.client), "all replicas in one primary configuration");
  ClientProcess c(a.client, cluster.servers(), 10);
  expect(c, "create 7", "1");
  expect(c, "push 1 1", "ok");
}

// Cuts every replica's links to the replicas of other sides, and waits
// (bounded) until each side's leader, its lowest replica, reports a
// configuration of exactly that side.
void split_into(const Args& a, Cluster& cluster, int n, const std::vector<std::vector<int>>& sides) {
  std::vector<std::string> cuts(static_cast<size_t>(n));
  std::vector<int> side_of(static_cast<size_t>(n));
  for (size_t s = 0; s < sides.size(); ++s)
    for (int r : sides[s]) side_of[static_cast<size_t>(r)] = static_cast<int>(s);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      if (side_of[static_cast<size_t>(i)] != side_of[static_cast<size_t>(j)])
        cuts[static_cast<size_t>(i)] += (cuts[static_cast<size_t>(i)].empty() ? "" : " ") + std::to_string(j);
  cluster.cut_all(cuts);
  for (const std::vector<int>& side : sides) {
    std::string want = "{";
    for (size_t i = 0; i < side.size(); ++i) want += (i ? "," : "") + std::to_string(side[i]);
    want += "} (hears";
    bool formed = false;
    std::string out;
    for (int waited_ms = 0; waited_ms < 10'000 && !formed; waited_ms += 50) {
      harness::run_program(a.client, {"--servers", cluster.endpoint(side[0]), "--timeout", "0.5", "status"}, out);
      formed = out.find(want) != std::string::npos;
      if (!formed) ::usleep(50'000);
    }
    CHECK(formed, "side " + want + " formed: " + out);
  }
}

// Partitionable mode (issue 23): the cluster split into `sides` (each a
// list of replicas), every side served through its lowest replica, then
// healed. Each side pushes its own items (and the first side, without a
// majority, pops the committed state's head); the answers given on sides
// without a majority must be marked tentative, the majority side's not.
// After the heal every replica holds the same state: the committed items
// but the one popped, then every item pushed on any side, once, in its
// side's order.
void scenario_partitionable(const Args& a, uint64_t seed, const std::string& dir, int n,
                            const std::vector<std::vector<int>>& sides) {
  Cluster cluster(partitionable_config(a, seed, dir, n));
  start_with_queue(a, cluster);
  {
    ClientProcess c(a.client, cluster.servers(), 10);
    expect(c, "push 1 2", "ok");
    // A long queue the first side destroys: its merge must not stop the
    // order (a destroy's items go in parts that fit a datagram).
    expect(c, "create 8", "2");
    for (int i = 0; i < 80; ++i) expect(c, "push 2 " + std::to_string(1000 + i), "ok");
  }
  split_into(a, cluster, n, sides);
  const size_t majority = static_cast<size_t>(n / 2 + 1);
  std::vector<std::vector<std::string>> pushed(sides.size());
  for (size_t s = 0; s < sides.size(); ++s) {
    // Every replica of the side, lowest last: the others refuse, the client
    // moves on to the leader.
    std::string servers;
    for (size_t i = sides[s].size(); i-- > 0;) servers += (servers.empty() ? "" : ",") + cluster.endpoint(sides[s][i]);
    const bool tentative = sides[s].size() < majority;
    for (int j = 0; j < 3; ++j) {
      const std::string item = std::to_string(100 * (static_cast<int>(s) + 1) + j);
      std::string out, err;
      const int status = harness::run_program(a.client, {"--servers", servers, "--timeout", "5", "push", "1", item}, "", out, err);
      CHECK(status == 0 && out == "ok\n", "side " + std::to_string(s) + ": push 1 " + item + ": " + out + err);
      CHECK((err.find("tentative answer") != std::string::npos) == tentative,
            "side " + std::to_string(s) + (tentative ? ": the answer must say it is tentative: " : ": a committed answer: ") + err);
      pushed[s].push_back(item);
    }
    if (s == 0) {  // the first side pops the committed state's head, and destroys queue 2
      std::string out, err;
      harness::run_program(a.client, {"--servers", servers, "--timeout", "5", "pop", "1"}, "", out, err);
      CHECK(out == "1\n", "side 0: pop 1 gives the committed head: " + out + err);
      harness::run_program(a.client, {"--servers", servers, "--timeout", "5", "destroy", "2"}, "", out, err);
      CHECK(out == "ok\n", "side 0: destroy 2 (80 items): " + out + err);
    }
  }
  // The first side's leader loses its disk's record of the side's work (its
  // tentative file), and restarts: each answer it gave waited until the
  // side's other members held the work too, so the merge still has it all.
  if (sides[0].size() > 1) {
    const int leader = sides[0][0];
    cluster.crash(leader);
    CHECK(std::remove((cluster.data_dir(leader) + "/tentative.txt").c_str()) == 0,
          "remove replica " + std::to_string(leader) + "'s tentative file");
    cluster.start(leader);
  }
  cluster.cut_all(std::vector<std::string>(static_cast<size_t>(n), ""));
  CHECK(cluster.wait_whole(a.client), "one primary configuration of all after the heal");
  // Every replica answers alike once the merges are delivered: wait until
  // each says the queue holds what all sides left (item 1 popped at most
  // twice, counted; item 2 and every side's pushes kept).
  size_t want_size = 1;
  for (const std::vector<std::string>& p : pushed) want_size += p.size();
  for (int i = 0; i < n; ++i) {
    std::string out;
    for (int waited_ms = 0; waited_ms < 10'000; waited_ms += 50) {
      harness::run_program(a.client, {"--servers", cluster.endpoint(i), "--timeout", "1", "size", "1"}, out);
      if (out == std::to_string(want_size) + "\n") break;
      ::usleep(50'000);
    }
    CHECK_EQ(out, std::to_string(want_size) + "\n", "replica " + std::to_string(i) + ": size 1 after the merges");
  }
  // Each minority side's leader, its work merged, shrinks its tentative
  // file to the id counter (bounded wait: it does so at its next step);
  // but the first side's leader, if its file was removed above.
  for (size_t s = 0; s < sides.size(); ++s) {
    const std::vector<int>& side = sides[s];
    if (side.size() >= majority || (s == 0 && side.size() > 1)) continue;
    const std::string path = cluster.data_dir(side[0]) + "/tentative.txt";
    std::string text;
    for (int waited_ms = 0; waited_ms < 5'000; waited_ms += 50) {
      text.clear();
      read_file(path, text);
      if (text.rfind("ids ", 0) == 0 && text.find("effect") == std::string::npos) break;
      ::usleep(50'000);
    }
    CHECK(text.rfind("ids ", 0) == 0 && text.find('\n') == text.size() - 1,
          "replica " + std::to_string(side[0]) + "'s tentative file, merged, is its id counter alone: " + text.substr(0, 200));
  }
  std::vector<std::string> popped;
  {
    ClientProcess c(a.client, cluster.servers(), 10);
    for (size_t k = 0; k < want_size; ++k) popped.push_back(c.call("pop 1"));
    expect(c, "pop 1", "error: queue 1 is empty");
  }
  CHECK(!popped.empty() && popped[0] == "2", "the committed item first: " + (popped.empty() ? "" : popped[0]));
  {
    ClientProcess c(a.client, cluster.servers(), 10);
    expect(c, "id 8", "-1");  // the side's destroy, merged: no other side touched queue 2
  }
  // A replica killed now restarts from its log (no snapshot written yet in
  // this mode's data directory) and rejoins.
  cluster.crash(n - 1);
  cluster.start(n - 1);
  CHECK(cluster.wait_whole(a.client), "replica " + std::to_string(n - 1) + " restarted from its log and rejoined");
  for (size_t s = 0; s < pushed.size(); ++s) {
    size_t at = 0;
    for (const std::string& item : popped)
      if (at < pushed[s].size() && item == pushed[s][at]) ++at;
    CHECK(at == pushed[s].size(), "side " + std::to_string(s) + "'s pushes all there, in its order");
  }
  stop_and_compare(a, cluster);
  std::printf("partitionable: %zu sides, %zu items merged, popped in order:", sides.size(), want_size);
  for (const std::string& p : popped) std::printf(" %s", p.c_str());
  std::printf("\n");
}

// Partitionable mode, sides that meet without a majority (issue 23): five
// replicas split 0 | 1 | 2,3,4; sides {0} and {1} each push an item; then
// {0} and {1} meet, still without a majority. The new side must serve on
// both sides' work: its pops give the committed item and both pushed
// items, then "empty". After the heal no item comes back (every replica's
// queue is empty): the new side's pops are merged after the pushes they
// took, whichever replica multicasts its work first.
void scenario_partitionable_nested(const Args& a, uint64_t seed, const std::string& dir) {
  const int n = 5;
  Cluster cluster(partitionable_config(a, seed, dir, n));
  start_with_queue(a, cluster);
  split_into(a, cluster, n, {{0}, {1}, {2, 3, 4}});
  for (int r = 0; r < 2; ++r) {
    std::string out, err;
    const std::string item = std::to_string(10 + r);
    harness::run_program(a.client, {"--servers", cluster.endpoint(r), "--timeout", "5", "push", "1", item}, "", out, err);
    CHECK(out == "ok\n" && err.find("tentative answer") != std::string::npos, "side {" + std::to_string(r) + "}: push 1 " + item + ": " + out + err);
  }
  split_into(a, cluster, n, {{0, 1}, {2, 3, 4}});
  std::vector<std::string> popped;
  const std::string both = cluster.endpoint(1) + "," + cluster.endpoint(0);
  for (int i = 0; i < 4; ++i) {
    std::string out, err;
    harness::run_program(a.client, {"--servers", both, "--timeout", "5", "pop", "1"}, "", out, err);
    CHECK(err.find("tentative answer") != std::string::npos, "side {0,1}: pop 1 answered tentatively: " + out + err);
    popped.push_back(out.empty() && err.find("queue 1 is empty") != std::string::npos ? "empty" : out.substr(0, out.find('\n')));
  }
  std::vector<std::string> sorted(popped.begin(), popped.begin() + 3);
  std::sort(sorted.begin(), sorted.end());
  CHECK(popped[0] == "1" && sorted == std::vector<std::string>({"1", "10", "11"}) && popped[3] == "empty",
        "side {0,1} pops the committed item, then both sides' items, then finds it empty: " + popped[0] + " " + popped[1] +
            " " + popped[2] + " " + popped[3]);
  cluster.cut_all(std::vector<std::string>(static_cast<size_t>(n), ""));
  CHECK(cluster.wait_whole(a.client), "one primary configuration of all after the heal");
  for (int i = 0; i < n; ++i) {  // every replica: nothing came back (bounded wait for the merges)
    std::string out;
    for (int waited_ms = 0; waited_ms < 10'000; waited_ms += 50) {
      harness::run_program(a.client, {"--servers", cluster.endpoint(i), "--timeout", "1", "size", "1"}, out);
      if (out == "0\n") break;
      ::usleep(50'000);
    }
    CHECK_EQ(out, std::string("0\n"), "replica " + std::to_string(i) + ": size 1 after the merges (nothing popped comes back)");
  }
  stop_and_compare(a, cluster);
  std::printf("partitionable, nested: side {0,1} popped %s %s %s %s\n", popped[0].c_str(), popped[1].c_str(),
              popped[2].c_str(), popped[3].c_str());
}

void scenario_restart(const Args& a, uint64_t seed, const std::string& dir) {
  Cluster cluster(ClusterConfig{3, a.loss, seed, a.server, dir, {}});
  cluster.start_all();
  {
    ClientProcess c(a.client, cluster.servers(), 10);
    expect(c, "create 7", "1");
    expect(c, "create 8", "2");
    expect(c, "destroy 2", "ok");
    for (int i = 1; i <= 30; ++i) expect(c, "push 1 " + std::to_string(i), "ok");
    expect(c, "pop 1", "1");
  }
  stop_and_compare(a, cluster);

  cluster.start_all();
  {
    ClientProcess c(a.client, cluster.servers(), 10);
    expect(c, "size 1", "29");
    expect(c, "id 7", "1");
    expect(c, "id 8", "-1");
    expect(c, "create 9", "3");  // the id counter survived too
    expect(c, "pop 1", "2");
  }
  // One replica restarted on its own while the cluster is idle rejoins.
  // Stopped alone, it cannot complete its drain: the others keep running
  // and never say they are closed, so it gives up after 3 s, says so in
  // its exit status, and still writes its snapshot.
  CHECK(cluster.stop_status(1) == harness::kServerDrainTimedOut,
        std::string("replica 1 stopped alone: its drain must time out (exit status 3)"));
  cluster.start(1);
  {
    ClientProcess c(a.client, cluster.endpoint(1), 10);
    expect(c, "top 1", "3");
    expect(c, "push 1 100", "ok");
    expect(c, "size 1", "29");
  }
  CHECK(cluster.wait_whole(a.client), "replica 1 back in one configuration with the others");
  CHECK(cluster.stop_all(), "graceful stop after restart");
  std::string s0 = cluster.check_snapshots_identical();
  CHECK(s0.find("queue 1 label 7 items 29:") != std::string::npos, "snapshot content: " + s0);
}


// ---- trace -------------------------------------------------------------------

// One --trace line: "8412.503117 r1 REQUEST in    from ...", split up.
struct Traced {
  int replica = -1;
  uint64_t us = 0;  // the time
  std::string event, direction, text;
};

// "2393.904123" -> microseconds (fewer digits: the fraction is still read
// as a fraction of a second).
uint64_t time_us(const std::string& word) {
  const size_t dot = word.find('.');
  uint64_t us = std::strtoull(word.c_str(), nullptr, 10) * 1000000;
  for (size_t i = dot + 1, scale = 100000; dot != std::string::npos && i < word.size() && scale > 0; ++i, scale /= 10)
    us += static_cast<uint64_t>(word[i] - '0') * scale;
  return us;
}

std::vector<Traced> parse_trace(const std::string& log) {
  std::vector<Traced> out;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string time, replica;
    Traced t;
    if (!(words >> time >> replica >> t.event) || replica.size() < 2 || replica[0] != 'r' ||
        time.find('.') == std::string::npos)
      continue;  // not a trace line ("[replica 1] listening on ...")
    t.replica = std::atoi(replica.c_str() + 1);
    t.us = time_us(time);
    words >> std::ws;
    std::getline(words, t.text);
    for (const char* d : {"in ", "out "})
      if (t.text.rfind(d, 0) == 0) {
        t.direction = std::string(d, std::strlen(d) - 1);
        t.text = t.text.substr(t.direction.size());
        t.text.erase(0, t.text.find_first_not_of(' '));
      }
    out.push_back(t);
  }
  return out;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The first traced line of `event` and `direction` that contains every one
// of `parts`; null if none.
const Traced* find_traced(const std::vector<Traced>& trace, const std::string& event, const std::string& direction,
                          const std::vector<std::string>& parts) {
  for (const Traced& t : trace) {
    if (t.event != event || t.direction != direction) continue;
    if (std::all_of(parts.begin(), parts.end(), [&t](const std::string& p) { return has(t.text, p); })) return &t;
  }
  return nullptr;
}

// True if the message `name` ("(1,c4.0,17)") was sent in a configuration
// of all three replicas, as replica 0's CONFIG lines tell.
bool all_three_config(const std::vector<std::vector<Traced>>& logs, const std::string& name) {
  const size_t c = name.find(",c"), end = name.find(',', c + 1);
  if (c == std::string::npos || end == std::string::npos) return false;
  const std::string id = name.substr(c + 2, end - c - 2);  // "4.0"
  return find_traced(logs[0], "CONFIG", "", {"configuration " + id + " primary {0,1,2} "}) != nullptr;
}

// Follows the push of `item` to queue 1 through the logs of every replica:
// the REQUEST that was admitted, the DATA that carried it, the ASSIGN that
// sequenced it (from the member whose turn it was), its DELIVER at every
// replica, and an ok REPLY to its client that left.
void check_request_path(const std::vector<std::vector<Traced>>& logs, const std::string& item) {
  const std::string op = "push 1 " + item + " (client ";
  const Traced* request = nullptr;
  int origin = -1;
  for (size_t r = 0; r < logs.size() && !request; ++r)
    if ((request = find_traced(logs[r], "REQUEST", "in", {op, "admitted"}))) origin = static_cast<int>(r);
  CHECK(request, "a REQUEST in line admitting '" + op + "..'");
  if (!request) return;
  // "(client 9f2c.., #4)" names the request from here on.
  const size_t at = request->text.find(op) + op.size() - std::strlen("(client ");
  const std::string client = request->text.substr(at, request->text.find(')', at) + 1 - at);
  // The DATA that carried it, and the ASSIGN that sequenced it. A batch
  // sent in a configuration that was replaced before it was sequenced (the
  // cluster forms its first configurations while the clients start) is sent
  // again under a new name: the one with an ASSIGN is the one that counts.
  // Any member may send an ASSIGN again (answering a NACK); the first one
  // came from the member whose turn k was.
  std::string name;
  const Traced* assign = nullptr;
  bool carried = false;
  for (const Traced& t : logs[origin]) {
    if (t.event != "DATA" || t.direction != "out" || !has(t.text, "push 1 " + item + " " + client)) continue;
    carried = true;
    name = t.text.substr(0, t.text.find(' '));  // "(1,c2.0,17)"
    CHECK(name.size() > 2 && name.front() == '(' && name.back() == ')', "a message name: " + t.text);
    for (size_t r = 0; r < logs.size() && !assign; ++r) assign = find_traced(logs[r], "ASSIGN", "out", {" " + name});
    if (assign) break;
  }
  CHECK(carried, "replica " + std::to_string(origin) + " sends DATA out with " + client);
  CHECK(assign, "an ASSIGN out line for " + name);
  if (!assign) return;
  const size_t k_at = assign->text.rfind("k=", assign->text.find(" " + name));
  const std::string k = assign->text.substr(k_at, assign->text.find(' ', k_at) - k_at);  // "k=52"
  // In a configuration of all three, k is assigned by member k mod 3 (the
  // names say the configuration; the run's last one has all three).
  const int sequencer = std::atoi(k.c_str() + 2) % static_cast<int>(logs.size());
  if (all_three_config(logs, name))
    CHECK(find_traced(logs[sequencer], "ASSIGN", "out", {k + " " + name}),
          "replica " + std::to_string(sequencer) + ", whose turn " + k + " is, sends ASSIGN out " + k + " " + name);
  for (size_t r = 0; r < logs.size(); ++r)
    CHECK(find_traced(logs[r], "DELIVER", "", {k + " " + name}),
          "replica " + std::to_string(r) + " traces DELIVER " + k + " " + name);
  bool replied = false;
  for (const auto& log : logs)
    for (const Traced& t : log)
      replied = replied || (t.event == "REPLY" && t.direction == "out" && has(t.text, " ok ") && has(t.text, client) &&
                            !has(t.text, "(dropped"));
  CHECK(replied, "a REPLY out line, ok, to " + client);
  std::printf("traced: push 1 %s %s at replica %d, DATA %s, ASSIGN %s by replica %d, delivered everywhere, replied\n",
              item.c_str(), client.c_str(), origin, name.c_str(), k.c_str(), sequencer);
}

// Junk for replica 0: bytes from a stranger, a broken peer packet from
// member 1's address, and a well-formed one that names the wrong sender.
void send_junk(const Cluster& cluster) {
  std::vector<net::Endpoint> to;
  std::string error;
  CHECK(net::parse_endpoints(cluster.endpoint(0), to, error), error);
  if (to.empty()) return;
  int stranger = harness::loopback_socket();
  wire::PeerPacket forged;
  forged.header.sender = 2;  // but sent from member 1's address
  forged.header.group_size = 3;
  forged.has_status = true;
  const std::string broken = std::string("FQ\x02\x01", 4) + "not a peer packet";
  for (int i = 0; i < 20; ++i) {
    net::send_to(stranger, "hello, replica " + std::to_string(i), to[0].addr);
    net::send_to(cluster.member_socket(1), broken, to[0].addr);
    net::send_to(cluster.member_socket(1), wire::encode_peer(forged)[0], to[0].addr);
    ::usleep(1000);
  }
  if (stranger >= 0) ::close(stranger);
}

// Lines of `event` (any event if empty) that contain `part`.
size_t count_traced(const std::vector<Traced>& trace, const std::string& event, const std::string& part) {
  return static_cast<size_t>(std::count_if(trace.begin(), trace.end(), [&](const Traced& t) {
    return (event.empty() || t.event == event) && has(t.text, part);
  }));
}

// With --trace every line of a replica's log starts with the time in
// seconds and microseconds, trace lines and log lines alike ("2393.904123
// r1 DATA ...", "2393.904500 [replica 1] listening on ..."), so that `sort
// -n` merges the replicas' logs (see check_send_before_receive).
void check_times(const std::string& log, int replica) {
  size_t lines = 0, untimed = 0;
  std::string first_untimed;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    ++lines;
    const size_t dot = line.find('.'), space = line.find(' ');
    bool timed = dot != std::string::npos && space != std::string::npos && dot > 0 && space == dot + 7;
    for (size_t i = 0; timed && i < space; ++i) timed = i == dot || std::isdigit(static_cast<unsigned char>(line[i]));
    if (!timed && untimed++ == 0) first_untimed = line;
  }
  const std::string who = "replica " + std::to_string(replica) + "'s log";
  CHECK(lines > 0, who + " is empty");
  CHECK(untimed == 0, who + ": " + std::to_string(untimed) + " of " + std::to_string(lines) +
                          " lines do not start with seconds.microseconds, e.g. '" + first_untimed + "'");
}

// The merged trace is in true order: every DATA record a replica traces as
// received ("DATA in from r0: (0,c1.0,3) ...") its origin traced as sent
// ("DATA out (0,c1.0,3) ...") no later. (A line of sends is timed by its
// first datagram, not when the round of sends is over, which comes after a
// sync that can take tens of ms on a busy disk.)
void check_send_before_receive(const std::vector<std::vector<Traced>>& logs) {
  size_t checked = 0, misordered = 0;
  std::string example;
  for (const auto& log : logs)
    for (const Traced& t : log) {
      if (t.event != "DATA" || t.direction != "in" || t.text.rfind("from r", 0) != 0) continue;
      const size_t origin = static_cast<size_t>(std::atoi(t.text.c_str() + 6)), colon = t.text.find(": ");
      if (origin >= logs.size() || colon == std::string::npos) continue;
      const std::string name = t.text.substr(colon + 2, t.text.find(' ', colon + 2) - colon - 2);
      for (const Traced& sent : logs[origin]) {
        if (sent.event != "DATA" || sent.direction != "out" || sent.text.rfind(name + " ", 0) != 0) continue;
        ++checked;
        if (sent.us > t.us && misordered++ == 0)
          example = "r" + std::to_string(origin) + " sends " + name + " at " + std::to_string(sent.us) + " us, r" +
                    std::to_string(t.replica) + " receives it at " + std::to_string(t.us) + " us";
        break;
      }
    }
  std::printf("trace: %zu DATA receives timed after their sends, %zu before\n", checked - misordered, misordered);
  CHECK(checked > 0, std::string("DATA records traced both as sent and as received"));
  CHECK(misordered == 0, std::to_string(misordered) + " DATA receives traced before their send, e.g. " + example);
}

// Servers with --trace (README, "Reading the trace"), at the test's loss.
void scenario_trace(const Args& a, uint64_t seed, const std::string& dir) {
  ClusterConfig config{3, a.loss, seed, a.server, dir, {"--trace"}};
  config.cut_files = true;
  Cluster cluster(config);
  cluster.start_all();
  // Every replica traces every push's DELIVER only if all three are in the
  // first configuration that orders them: at --loss 0.2 the first one may
  // form without a replica that had not yet heard the others (it then
  // catches up by snapshot, tracing no DELIVER; seen in CI, seed 543064566).
  CHECK(cluster.wait_whole(a.client), "all replicas in one primary configuration");
  std::vector<std::string> items;
  {
    ClientProcess c(a.client, cluster.servers(), 10);
    expect(c, "create 1", "1");
    for (int i = 0; i < 6; ++i) {
      items.push_back(std::to_string(4240 + i));
      expect(c, "push 1 " + items.back(), "ok");
    }
    expect(c, "pop 1", items.front());
    // A call that replica 2 multicasts while its datagrams to replica 0 are
    // cut: its DATA to replica 0 is dropped (and traced so). Replica 0 does
    // not even learn that the message exists, so the call waits for the
    // heal (phase one stalls under a cut).
    CHECK(cut_links(cluster, 2, "out:0", "out:0"), "replica 2 read its cut file");
    std::thread cut_call([&] {
      ClientProcess at2(a.client, cluster.endpoint(2), 10);
      expect(at2, "push 1 5000", "ok");
    });
    ::usleep(300'000);
    CHECK(cut_links(cluster, 2, "", "none"), "replica 2 healed");
    cut_call.join();
    send_junk(cluster);
    CHECK(cluster.running(0), std::string("replica 0 runs on after the junk"));
    ClientProcess at0(a.client, cluster.endpoint(0), 10);
    expect(at0, "size 1", "6");
  }
  CHECK(cluster.wait_whole(a.client), "every replica in one primary configuration before the stop");
  CHECK(cluster.stop_all(), "graceful stop");
  std::vector<std::vector<Traced>> logs;
  for (int r = 0; r < 3; ++r) logs.push_back(parse_trace(cluster.log_text(r)));
  for (int r = 0; r < 3; ++r) check_times(cluster.log_text(r), r);
  check_send_before_receive(logs);
  for (const std::string& item : items) check_request_path(logs, item);
  size_t nacks = 0, lost = 0;
  for (const auto& log : logs) {
    nacks += count_traced(log, "NACK", "");
    for (const char* event : {"DATA", "ASSIGN", "NACK", "STATUS"}) lost += count_traced(log, event, "(dropped: loss)");
  }
  std::printf("trace: %zu NACK lines, %zu peer records marked dropped by loss\n", nacks, lost);
  // With --fsync (smoke_trace_fsync) each replica's syncs are traced: the
  // README's hop-by-hop chain is read from these lines.
  const char* server_args = std::getenv("FTQ_SERVER_ARGS");
  if (server_args && has(server_args, "--fsync"))
    for (int r = 0; r < 3; ++r)
      CHECK(count_traced(logs[static_cast<size_t>(r)], "SYNC", " us in fdatasync of the log (began ") > 0,
            "replica " + std::to_string(r) + " traces its syncs (SYNC)");
  if (a.loss > 0) {
    CHECK(lost > 0, std::string("some peer records are marked (dropped: loss)"));
    CHECK(nacks > 0, std::string("the losses are repaired by NACKs, which are traced"));
  }
  CHECK(count_traced(logs[2], "DATA", "push 1 5000 ") && count_traced(logs[2], "", "r0 (dropped: cut)") > 0,
        std::string("replica 2 marks what the cut kept from replica 0 (dropped: cut)"));
  CHECK(count_traced(logs[0], "JUNK", "neither a request nor a status request (dropped)") > 0,
        std::string("replica 0 traces a stranger's junk"));
  CHECK(count_traced(logs[0], "JUNK", "from r1: 21 bytes, not a peer packet") > 0,
        std::string("replica 0 traces a broken peer packet from r1's address"));
  CHECK(count_traced(logs[0], "STATUS", "(rejected: malformed or implausible)") > 0,
        std::string("replica 0 traces the packet that names the wrong sender as rejected"));
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--server" && i + 1 < argc) a.server = argv[++i];
    else if (s == "--client" && i + 1 < argc) a.client = argv[++i];
    else if (s == "--loss" && i + 1 < argc) a.loss = std::atof(argv[++i]);
    else if (a.scenario.empty() && s[0] != '-') a.scenario = s;
    else {
      std::fprintf(stderr, "usage: smoke_test operations|concurrent|restart|crash|partition|trace|pause|slow|lost_tail|lost_tail_majority|partitionable_3|partitionable_5|partitionable_nested --server BIN --client BIN [--loss P]\n");
      return 2;
    }
  }
  if (a.server.empty() || a.client.empty()) {
    std::fprintf(stderr, "smoke_test: --server and --client are required\n");
    return 2;
  }
  uint64_t seed = harness::test_seed(("smoke " + a.scenario).c_str());
  std::string dir = harness::make_temp_dir("smoke-" + a.scenario);
  if (a.scenario == "operations") scenario_operations(a, seed, dir);
  else if (a.scenario == "concurrent") scenario_concurrent(a, seed, dir);
  else if (a.scenario == "restart") scenario_restart(a, seed, dir);
  else if (a.scenario == "partitionable_3") scenario_partitionable(a, seed, dir, 3, {{0}, {1, 2}});
  else if (a.scenario == "partitionable_5") scenario_partitionable(a, seed, dir, 5, {{0, 1}, {2}, {3, 4}});
  else if (a.scenario == "partitionable_nested") scenario_partitionable_nested(a, seed, dir);
  else if (a.scenario == "crash") scenario_crash(a, seed, dir);
  else if (a.scenario == "lost_tail") scenario_lost_tail(a, seed, dir);
  else if (a.scenario == "lost_tail_majority") scenario_lost_tail_majority(a, seed, dir);
  else if (a.scenario == "partition") scenario_partition(a, seed, dir);
  else if (a.scenario == "pause") scenario_pause(a, seed, dir);
  else if (a.scenario == "slow") scenario_slow(a, seed, dir);
  else if (a.scenario == "trace") scenario_trace(a, seed, dir);
  else {
    std::fprintf(stderr, "smoke_test: unknown scenario '%s'\n", a.scenario.c_str());
    return 2;
  }
  if (harness::g_failures == 0) {
    harness::remove_tree(dir);
    std::printf("smoke %s: passed\n", a.scenario.c_str());
    return 0;
  }
  std::printf("smoke %s: %d checks failed; logs and data kept in %s\n", a.scenario.c_str(), harness::g_failures,
              dir.c_str());
  return 1;
}
