// merge.hpp: partitionable mode's merge of queue copies, a pure function.
//
// In partitionable mode (issue 23; Replica's "partitionable mode" section
// in replica.cpp drives it) every side of a partition serves. A side's operations change a tentative copy of the
// queues, and for each one the side records what it did (an Effect): which
// item a push appended, which item a pop removed, which queue a create
// made. When sides meet, merge() folds the sides' effect lists (Segments)
// into the committed state, the same way at every member.
//
// Items are named where they were pushed (ItemName: the configuration, the
// position in its order, the place in the batch), so a pop on one side
// says which item it took, and the merge removes that item and no other,
// whatever the other sides did to the queue meanwhile.
//
// What merge() promises (tests/merge_test.cpp checks each, from random
// histories, under every order of handing the segments in):
//   - The result depends on the base and the set of segments only: the
//     segments are taken in ascending side order, whatever order they come
//     in; of a side's segment, copies and parts (of one sequence: a side
//     applies in one order) are merged from what the base has absorbed
//     on, and a part that starts beyond it (a gap) is skipped and counted.
//   - Nothing is lost: an item in the base or pushed on any side is in the
//     result unless some side popped it or a destroy removed it.
//   - Nothing is invented, and no item name appears twice.
//   - Each side's order is kept: items one side pushed to a queue stay in
//     that order, after the base's items (which keep theirs); within one
//     call the sides' blocks follow each other in side order. (The
//     replicas merge each MERGE record where the order delivers it, one
//     part a call: there the blocks follow the parts' delivery order, the
//     same at every replica.)
//   - Answers can be contradicted, and each kind is counted (MergeCounts):
//     an item popped on two sides (handed out twice), a queue created on
//     two sides under one label (the later side's id becomes an alias of
//     the earlier's queue), a destroy undone because another side pushed to
//     the queue (add wins: the queue lives on with those items), the same
//     request applied on two sides (a client's retry that crossed sides),
//     a pop told "empty" and a size, top, id or "no queue" answer that the
//     merged history, at the point it puts them, would have given otherwise.
// What it needs from its caller: queue ids drawn so that no two sides draw
// the same one (a create whose id is taken is counted in id_collisions,
// and loses: the test treats any as a failure); and, for merges in steps
// (a merged state merged again with more segments), that the sides added
// later are newer than those merged before, or the blocks' order depends
// on the order of the heals. Nested merges (two sides meet without a
// majority, then the result meets a majority): the new side's segment
// begins with carried copies of the earlier sides' effects that its leader
// built on (Effect::carried_side), so that a part of it never needs
// another side's part merged first; merge() takes each effect once, by its
// own side's count, whichever copy comes first.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "wire.hpp"

namespace partition {

// Where an item was pushed: configuration `side` (its ordering number),
// position k of that configuration's order, operation `index` of that
// batch. Unique: each position of each configuration's order holds one
// batch.
struct ItemName {
  uint64_t side = 0;
  uint64_t k = 0;
  uint32_t index = 0;
  bool operator<(const ItemName& o) const {
    return side != o.side ? side < o.side : k != o.k ? k < o.k : index < o.index;
  }
  bool operator==(const ItemName& o) const { return side == o.side && k == o.k && index == o.index; }
  std::string text() const;  // "SIDE.K.INDEX"
};

struct Item {
  ItemName name;
  int32_t value = 0;
};

struct Queue {
  bool has_label = true;  // false: its label went to another queue (reachable by id only)
  int32_t label = 0;
  std::deque<Item> items;
};

struct ClientEntry {
  uint64_t request_no = 0;
  wire::ReplyCode code = wire::ReplyCode::Ok;
  int32_t value = 0;
  uint64_t last_seen_ms = 0;  // cluster time of its latest request (FTQueue's expiry)
  // The reply is a side's (tentative): a retry answered from the table
  // after the merge is marked tentative too, as the first answer was.
  bool tentative = false;
};

// The queues with named items: a side's tentative copy, and the merge's
// input and output.
struct QueueState {
  std::map<int32_t, Queue> queues;
  std::map<int32_t, int32_t> id_by_label;  // live queues only
  // A queue id made on a side under a label another queue already had: it
  // stands for that queue from the merge on.
  std::map<int32_t, int32_t> alias;
  std::map<uint64_t, ClientEntry> clients;  // the exactly-once table
  // Per side, how many of its segment's effects are merged in.
  std::map<uint64_t, uint64_t> absorbed;
  // Per leader, the highest count c of its range (tentative_id) that any
  // merged create used; kept after the queue is destroyed, so that a
  // leader that lost its counter never draws that id again.
  std::map<uint32_t, uint64_t> tentative_counts;
  int64_t next_id = 1;           // above every queue id used here (live, destroyed, aliased)
  uint64_t cluster_time_ms = 0;  // the committed order's clock (FTQueue)

  // The live queue `id` stands for (through aliases), or `id` itself.
  int32_t resolve(int32_t id) const { return resolve(alias, id); }
  static int32_t resolve(const std::map<int32_t, int32_t>& alias, int32_t id);
  // Canonical text: equal states render equal text.
  std::string render() const;
};

// What one operation did on a side.
struct Effect {
  // Remove: items a destroy took, sent ahead of it in parts when they are
  // too many for one MERGE record (Replica; apply_on_side makes none).
  enum class Kind : uint8_t { Create, Destroy, Push, Pop, Read, Remove };
  Kind kind = Kind::Read;
  wire::OpCode op = wire::OpCode::Size;  // the operation asked (a Read's: which answer to check)
  uint64_t client_id = 0;
  uint64_t request_no = 0;
  wire::ReplyCode code = wire::ReplyCode::Ok;  // the answer the side gave
  int32_t value = 0;
  int32_t queue = 0;            // the queue id the side used
  int32_t label = 0;            // that queue's label on the side (create: the label asked)
  bool created = false;         // create: made a new queue (not: it existed)
  Item item;                    // push: appended; pop (code Ok): removed
  std::vector<Item> removed;    // destroy: the items it took with the queue
  // A carried copy (sides that meet without a majority: Replica carries
  // what its members bring into the new side's segment): effect number
  // `carried_index` of side `carried_side`, which that side ran itself.
  // 0: this side ran it. Merged once, by whichever copy comes first.
  uint64_t carried_side = 0;
  uint64_t carried_index = 0;
};

// One side's effects, in the order that side applied them: all of them,
// or a part (effects[i] is the side's effect number first + i).
struct Segment {
  uint64_t side = 0;   // the configuration's ordering number
  uint64_t first = 0;  // the side's number of effects[0]
  std::vector<Effect> effects;
  uint64_t end() const { return first + effects.size(); }
};

// A segment (or part) as bytes, for the log, datagrams and the order.
// decode_segment refuses anything malformed (a short or long buffer, an
// unknown kind or reply code, counts the bytes cannot hold) and leaves
// `out` unchanged then; what it accepts re-encodes to the same bytes.
std::string encode_segment(const Segment& segment);
bool decode_segment(const std::string& bytes, Segment& out);
// `segment` cut into consecutive parts whose encodings are at most
// `max_bytes` each (a part holds one effect at least, whatever its size).
std::vector<Segment> split_segment(const Segment& segment, size_t max_bytes);
// The effects of `segment` from its effect number `from` on (first <= from
// <= end()), as a part.
Segment tail(const Segment& segment, uint64_t from);

// A MERGE record: a part of a side's segment as a message of the committed
// order, so that every replica merges it at the same point of the order
// (FTQueue::apply). Its first two bytes can never begin a batch of client
// operations (wire::encode_batch starts with a count of at most 40).
std::string encode_merge_record(const Segment& part);
bool is_merge_record(const std::string& payload);
bool decode_merge_record(const std::string& payload, Segment& part);

// Queue ids in partitionable mode: the committed order draws 1, 2, 3, ...
// below kFirstTentativeId; a side's leader draws from its own range above
// it, tentative_id(leader, c) for its c-th create ever (its counter never
// goes back), so no two sides, nor the committed order, draw one id. -1
// when the leader's range is used up (or the leader's id is 32 or more).
constexpr int32_t kFirstTentativeId = 1 << 30;
int32_t tentative_id(uint32_t leader, uint64_t c);

// Applies one operation to a side's copy and says what it did. A push's
// item is named `name`; a create that makes a queue gives it `new_id`
// (ids are drawn so that two sides never draw the same one; the caller's
// rule). Ids are resolved through aliases, as FTQueue does. A request the
// client table shows applied already (or an older one) is answered with
// the table's reply and changes nothing (a Read that does not touch the
// table).
Effect apply_on_side(QueueState& state, const wire::Operation& op, ItemName name, int32_t new_id);

// The highest c for which tentative_id(leader, c) names a live queue or an
// alias in `state`, or was used by a merged create (tentative_counts); 0
// if none. (Every such queue or alias came from a merged create, but a
// state loaded from a snapshot written before tentative_counts existed
// has only the queues and aliases.) A leader that lost its tentative file lost its counter with it:
// it goes on from at least here. Not covered: ids drawn in sides whose
// work no merge has brought in yet (merge() counts such a collision,
// id_collisions).
uint64_t highest_tentative_count(const QueueState& state, uint32_t leader);

struct MergeCounts {
  uint64_t segments = 0;            // merged now
  uint64_t already_absorbed = 0;    // skipped: merged before
  uint64_t pushes = 0;              // items appended
  uint64_t pops = 0;                // items removed by a side's pop
  uint64_t popped_twice = 0;        // a pop whose item was gone already (handed out twice)
  uint64_t destroys = 0;            // queues removed
  uint64_t destroys_undone = 0;     // destroyed on a side, kept: another side's items in it
  uint64_t label_collisions = 0;    // a queue created on two sides under one label: an alias
  uint64_t cross_side_retries = 0;  // one request applied on two sides
  uint64_t empty_pops_contradicted = 0;  // a pop a side answered "empty" where the merged queue holds items
  uint64_t reads_contradicted = 0;       // a size, top, id or "no queue" answer the merged state differs from
  uint64_t id_collisions = 0;       // a create whose id another queue has (the caller's rule broken)
  uint64_t gaps = 0;                // parts skipped: they start past what is absorbed of their side
  uint64_t carried = 0;             // carried copies merged (their own side's copy not merged before)
  uint64_t carried_skipped = 0;     // carried copies skipped: merged before
  std::string text() const;
  MergeCounts& operator+=(const MergeCounts& o);
};

// Deliberately broken merges, for the test that must catch each.
enum class MergeBug {
  None,
  ArrivalOrder,    // segments in the order given, not by side
  DropSidePushes,  // the pushes of every segment after the first are dropped
  PopHead,         // a pop removes the queue's head, not the item it named
  DestroyWins,     // a destroy removes the queue and every item in it
  NoAbsorbed,      // a segment merged before is merged again
  DropPushes,      // every side's pushes are dropped (the replicas' test: group_sim --bug merge-drops-pushes)
};

// The merge: `base` (the committed state, or the newest state the merging
// members share) with every segment's effects folded in, by the rules in
// merge.cpp. Pure and deterministic.
QueueState merge(QueueState base, std::vector<Segment> segments, MergeCounts& counts,
                 MergeBug bug = MergeBug::None);

}  // namespace partition
