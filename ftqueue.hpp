// ftqueue.hpp: the replicated queue state, and its files.
//
// FTQueue is a deterministic state machine: every replica applies the same
// delivered messages (each a batch of client operations) in the same order,
// and so holds the same queues. It also remembers, per client, the last
// request number and its reply, so a retried request is applied once and
// answered again with the original reply (exactly once). A client idle for
// kClientExpiryMs is forgotten, by the clock the batches carry (see
// wire::encode_batch), so every replica forgets it at the same point of the
// total order and the table does not grow for ever.
//
// Its snapshot is a canonical text rendering of all of that, plus how far it
// has applied the total order: two replicas that applied the same messages
// render byte-identical snapshots.
//
// ReplicaStore keeps one replica's files in its data directory:
//   snapshot.txt  the state at some global_seq, written atomically (rename)
//   log.txt       the protocol's records (mcast::LogRecord, see
//                 membership.hpp), one per line, appended in the order the
//                 protocol gives them, each Ready's in one write, before any
//                 datagram of that Ready leaves (persist before send):
//     held K ORIGIN INCARNATION ORIGIN_SEQ HEX   this member holds record K
//                        of its claimed order: its MessageName and payload
//                        (hex; "-" if empty)
//     staged K ORIGIN INCARNATION ORIGIN_SEQ HEX  record K, fetched for an
//                        install not yet complete (void unless a
//                        last-primary line for that install follows)
//     delivered K        delivered 1..K
//     truncate K         the held records above K so far are void (written
//                        by earlier versions only)
//     promise E.R        never answer a PREPARE at or below E.R again
//     install E.R primary|minority CUT M1,M2,... keep K claim H   installed
//                        this configuration, its ordering starting from the
//                        order up to K; until it completes, this member
//                        still claims its last primary's order up to H
//     last-primary E.R   holds that primary configuration's order up to its
//                        cut (LogRecord::OrderComplete); for the last
//                        install, its commit point: the held records above
//                        its keep are void, and the staged ones are held
//   incarnation   this replica's last incarnation number
// Restart = load the snapshot, replay the log by mcast::LogReplay's rules
// (membership.hpp): a held line remembers record K (a later one for the same
// K replaces it), a delivered mark applies the remembered records from the
// snapshot's end up to it, in order. Whatever the log says about
// configurations, and every record it still holds, go to the protocol
// (mcast::Restored). At open and at each snapshot the log is rewritten to
// what a restart needs: promise, install, last-primary, the held and staged
// records, and a delivered mark the snapshot and those records can rebuild.
// By default an append reaches the operating system before any datagram
// (it survives a crash of the server process); with fsync it also reaches
// the disk (it survives a power cut).
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "membership.hpp"
#include "merge.hpp"
#include "multicast.hpp"
#include "wire.hpp"

// A reply and the address its client asked from (carried in the batch; the
// state itself never looks at addresses).
struct AddressedReply {
  wire::Reply reply;
  wire::ClientAddress to;
};

class FTQueue {
 public:
  // A client that sent nothing for this long (by cluster time) is forgotten:
  // a retry of its last request after that would be applied again.
  static constexpr uint64_t kClientExpiryMs = 10 * 60 * 1000;

  // Applies one delivered message (in global_seq order) and returns a reply
  // for each of its operations. A repeated request gets its stored reply; one
  // older than the client's last request gets none (the client moved on).
  std::vector<AddressedReply> apply(const mcast::Delivery& d);

  // The stored reply if this exact request was already applied.
  std::optional<wire::Reply> cached_reply(uint64_t client_id, uint64_t request_no) const;
  // True if the client has already sent a later request than this one.
  bool superseded(uint64_t client_id, uint64_t request_no) const;

  uint64_t applied_upto() const { return applied_upto_; }
  mcast::SequencePosition position() const;
  size_t queue_count() const { return queues_.size(); }
  size_t client_count() const { return clients_.size(); }
  uint64_t malformed_batches() const { return malformed_batches_; }

  // Partitionable mode (merge.hpp; issue 23, not wired into the replicas
  // yet). name_items() on a fresh state: from then on every item carries
  // its name (the configuration that delivered its push, k, its place in
  // the batch), aliases and absorbed sides are kept, and all of it is in
  // the snapshot. named_state() is the state as the merge takes it, and
  // adopt() makes a merge's result this state: all of it comes from the
  // merged state (ids, clock, clients' last-seen times), so every member
  // that adopts one merged state holds the same state.
  // In named mode a delivered MERGE record (partition::encode_merge_record)
  // is merged into the state where the order delivers it; its counts are
  // last_merge() (diagnostics, not state).
  void name_items() { named_ = true; }
  bool names_items() const { return named_; }
  const partition::MergeCounts& last_merge() const { return last_merge_; }
  // How many of a side's effects are merged in (named mode).
  uint64_t absorbed(uint64_t side) const {
    auto it = absorbed_.find(side);
    return it == absorbed_.end() ? 0 : it->second;
  }
  partition::QueueState named_state() const;
  void adopt(const partition::QueueState& merged);

  std::string render_snapshot() const;
  // Test only (the simulator's answer checker must catch it): apply a
  // repeated request again, as if there were no exactly-once table.
  void break_exactly_once_for_tests() { exactly_once_ = false; }
  // Test only: MERGE records merged by a deliberately broken rule.
  void break_merge_for_tests(partition::MergeBug bug) { merge_bug_ = bug; }
  // Replaces this state with the one in `text`. On error the state is unchanged.
  bool load_snapshot(const std::string& text, std::string& error);

 private:
  struct Queue {
    int32_t label = 0;
    std::deque<int32_t> items;
    // Named mode only: each item's name, beside it; and false when the
    // label went to another queue at a merge (reachable by id only).
    std::deque<partition::ItemName> names;
    bool has_label = true;
  };
  struct ClientRecord {
    uint64_t last_request = 0;
    wire::ReplyCode code = wire::ReplyCode::Ok;
    int32_t value = 0;
    uint64_t last_seen_ms = 0;  // cluster time of its latest request
    bool tentative = false;     // partitionable mode: the reply a side gave, merged
  };

  wire::Reply execute(const wire::Operation& op, const partition::ItemName& name);
  void merge_part(const partition::Segment& part);
  static partition::Queue named_queue(const Queue& q);
  static Queue unnamed_queue(const partition::Queue& q);
  static partition::ClientEntry named_client(const ClientRecord& c);
  static ClientRecord unnamed_client(const partition::ClientEntry& c);
  void put_tables(partition::QueueState& s) const;
  void adopt_tables(const partition::QueueState& merged);
  ClientRecord& touch_client(uint64_t client_id);
  void expire_idle_clients();

  uint64_t applied_upto_ = 0;
  std::vector<mcast::OriginPosition> last_applied_;  // by origin member id
  int64_t next_id_ = 1;  // ids are never reused, even after a destroy
  std::map<int32_t, Queue> queues_;
  std::map<int32_t, int32_t> id_by_label_;
  std::map<uint64_t, ClientRecord> clients_;
  // The ordered stream's clock: the largest origin time of any batch
  // applied. It never goes back, whatever the origins' clocks do.
  uint64_t cluster_time_ms_ = 0;
  std::set<std::pair<uint64_t, uint64_t>> clients_by_last_seen_;  // (last_seen_ms, client id)
  bool named_ = false;                         // partitionable mode: see name_items()
  std::map<int32_t, int32_t> alias_;           // named mode: see partition::QueueState
  std::map<uint32_t, uint64_t> tentative_counts_;  // named mode: see partition::QueueState
  std::map<uint64_t, uint64_t> absorbed_;      // named mode: per side, its effects merged in
  uint64_t malformed_batches_ = 0;  // not part of the state: diagnostics only
  partition::MergeCounts last_merge_;  // diagnostics only
  bool exactly_once_ = true;        // false only in a test's deliberate bug
  partition::MergeBug merge_bug_ = partition::MergeBug::None;  // likewise
};

class ReplicaStore {
 public:
  // min_log_growth: see snapshot_due (tests make it small).
  ReplicaStore(std::string dir, bool fsync, uint64_t min_log_growth = kMinLogGrowth)
      : dir_(std::move(dir)), fsync_(fsync), min_log_growth_(min_log_growth) {}
  ~ReplicaStore();
  ReplicaStore(const ReplicaStore&) = delete;
  ReplicaStore& operator=(const ReplicaStore&) = delete;

  // Creates the directory if needed, loads snapshot.txt into `state` (a
  // state passed in named, partitionable mode's, replays the log named when
  // there is no snapshot yet; a snapshot says its own mode),
  // replays log.txt (the held records up to each delivered mark are applied
  // to `state`, in global_seq order) and fills `restored` for the protocol:
  // delivered_upto = state.applied_upto(), every record the log still holds
  // (ascending, those at or below delivered_upto included: a restarted member
  // serves them to peers that lack them), the promise, the last primary and
  // the last installed configuration. Then rewrites the log compactly (as
  // write_snapshot would, without a new snapshot) and leaves it open for
  // appending. On error `state`, `restored` and the files are unchanged.
  bool open(FTQueue& state, mcast::Restored& restored, std::string& error);

  // A number larger than any this replica used before.
  bool next_incarnation(uint64_t now_us, uint64_t& incarnation, std::string& error);

  // One write for all of `records`, in order (a Ready's to_persist): they
  // reach the operating system, so they survive a crash of the process.
  // With fsync the file runs on past them in zeros, preallocated for the
  // next appends (the log ends at its first NUL; a snapshot's rewrite, as
  // at a graceful stop, leaves no zeros).
  bool append(const std::vector<mcast::LogRecord>& records, std::string& error);
  // One fdatasync, after which every append before it is on disk (survives
  // a power cut). With fsync after each hand-off that needs it; without,
  // only before a promise leaves (replica.hpp): then, if a snapshot rewrote
  // the files unsynced since, they and their directory are synced first.
  bool sync(std::string& error);
  // Partitionable mode: tentative.txt, what the sides this replica led did
  // (Replica writes and reads the lines). Each write is synced, with or
  // without fsync: a tentative answer rests on it. `replace`: the lines
  // become the whole file (atomically: a crash leaves the old one or the
  // new one). Reading cuts a torn last line (a crash amid an append).
  bool read_tentative(std::vector<std::string>& lines, std::string& error);
  bool write_tentative(const std::vector<std::string>& lines, bool replace, std::string& error);

  // Writes snapshot.txt atomically, then rewrites the log (atomically) to
  // `protocol` (Membership::durable_state()): its promise, last primary, last
  // installed configuration, its held records, and a delivered mark at
  // state.applied_upto(). Both files are fsynced only with fsync: without
  // it nothing else is, and the four fsyncs of a snapshot stalled the whole
  // rotation for a millisecond or so; `durable` syncs them anyway (a
  // graceful stop).
  bool write_snapshot(const FTQueue& state, const mcast::Restored& protocol, std::string& error,
                      bool durable = false);
  // Time for a snapshot: the log has grown, since the last one (or open), by
  // at least min_log_growth bytes (kMinLogGrowth, 4 MiB, unless the
  // constructor says otherwise) and by at least the last snapshot's size.
  // Why by size, not every N records: a snapshot costs time in proportion
  // to the state, so with a fixed N a big state was rendered over and over
  // (half a million queued items: 30 ms stalls several times a second).
  // Tied to the bytes appended, the cost per append stays bounded whatever
  // the state's size, and the log stays within the larger of kMinLogGrowth
  // and the snapshot's size, plus the records it still holds.
  bool snapshot_due() const {
    return appended_bytes_since_snapshot_ >= std::max(min_log_growth_, snapshot_bytes_);
  }
  static constexpr uint64_t kMinLogGrowth = 4 << 20;
  static constexpr size_t kLogPreallocation = 1 << 20;
  const std::string& dir() const { return dir_; }

 private:
  bool rewrite_log(const mcast::Restored& protocol, uint64_t delivered_mark, std::string& error, bool sync);
  std::string path(const char* name) const { return dir_ + "/" + name; }

  std::string dir_;
  bool fsync_;
  bool files_unsynced_ = false;  // a snapshot or open rewrote them without a sync (no fsync)
  uint64_t min_log_growth_;
  int log_fd_ = -1;
  uint64_t log_end_ = 0;   // where the next record goes in log.txt
  uint64_t log_room_ = 0;  // log.txt's size: log_end_ plus zeros preallocated (fsync only)
  uint64_t appended_bytes_since_snapshot_ = 0;
  uint64_t snapshot_bytes_ = 0;  // the size of the last snapshot written or loaded
};

// Writes `text` to `path` atomically: a temporary file, then rename. With
// `sync` (the default) the file and then its directory are fsynced too, so
// the new file survives a power cut; without, it survives a crash of the
// process only, as a log append does without --fsync.
bool write_file_atomically(const std::string& path, const std::string& text, std::string& error, bool sync = true);
bool read_file(const std::string& path, std::string& out);
void sync_directory_of(const std::string& path);  // fsync of the directory holding `path`
