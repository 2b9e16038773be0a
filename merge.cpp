// merge.cpp: a side's operations as effects, and the merge (see merge.hpp).
#include "merge.hpp"

#include <algorithm>

namespace partition {

using wire::OpCode;
using wire::ReplyCode;

std::string ItemName::text() const {
  return std::to_string(side) + "." + std::to_string(k) + "." + std::to_string(index);
}

int32_t tentative_id(uint32_t leader, uint64_t c) {
  if (leader >= 32 || c == 0 || c > ((uint64_t{1} << 25) - 1)) return -1;
  return static_cast<int32_t>(kFirstTentativeId + static_cast<int64_t>(c) * 32 + leader);
}

namespace {
// tentative_id's inverse: false for an id below the tentative range.
bool split_tentative_id(int32_t id, uint32_t& leader, uint64_t& c) {
  if (id < kFirstTentativeId) return false;
  const int64_t offset = static_cast<int64_t>(id) - kFirstTentativeId;
  leader = static_cast<uint32_t>(offset % 32);
  c = static_cast<uint64_t>(offset / 32);
  return true;
}

uint64_t tentative_count(int32_t id, uint32_t leader) {
  uint32_t drawn_by;
  uint64_t c;
  return split_tentative_id(id, drawn_by, c) && drawn_by == leader ? c : 0;
}
}  // namespace

uint64_t highest_tentative_count(const QueueState& state, uint32_t leader) {
  auto used = state.tentative_counts.find(leader);
  uint64_t c = used == state.tentative_counts.end() ? 0 : used->second;
  for (const auto& [id, queue] : state.queues) c = std::max(c, tentative_count(id, leader));
  for (const auto& [id, to] : state.alias) c = std::max(c, tentative_count(id, leader));
  return c;
}

int32_t QueueState::resolve(const std::map<int32_t, int32_t>& alias, int32_t id) {
  // Aliases point at queues made before them, so a chain ends; the bound
  // only guards a corrupt state.
  for (size_t hops = 0; hops <= alias.size(); ++hops) {
    auto it = alias.find(id);
    if (it == alias.end()) return id;
    id = it->second;
  }
  return id;
}

std::string QueueState::render() const {
  std::string s;
  for (const auto& [id, q] : queues) {
    s += "queue " + std::to_string(id) + (q.has_label ? " label " + std::to_string(q.label) : " unlabelled") +
         " items " + std::to_string(q.items.size()) + ":";
    for (const Item& it : q.items) s += " " + std::to_string(it.value) + "@" + it.name.text();
    s += "\n";
  }
  for (const auto& [from, to] : alias) s += "alias " + std::to_string(from) + " " + std::to_string(to) + "\n";
  for (const auto& [label, id] : id_by_label) s += "label " + std::to_string(label) + " " + std::to_string(id) + "\n";
  for (const auto& [id, c] : clients)
    s += "client " + std::to_string(id) + " request " + std::to_string(c.request_no) + " code " +
         std::to_string(static_cast<int>(c.code)) + " value " + std::to_string(c.value) + " seen " +
         std::to_string(c.last_seen_ms) + (c.tentative ? " tentative" : "") + "\n";
  for (const auto& [side, count] : absorbed)
    s += "absorbed " + std::to_string(side) + " " + std::to_string(count) + "\n";
  for (const auto& [leader, count] : tentative_counts)
    s += "tentative_count " + std::to_string(leader) + " " + std::to_string(count) + "\n";
  s += "next_id " + std::to_string(next_id) + " cluster_time_ms " + std::to_string(cluster_time_ms) + "\n";
  return s;
}

MergeCounts& MergeCounts::operator+=(const MergeCounts& o) {
  segments += o.segments;
  already_absorbed += o.already_absorbed;
  pushes += o.pushes;
  pops += o.pops;
  popped_twice += o.popped_twice;
  destroys += o.destroys;
  destroys_undone += o.destroys_undone;
  label_collisions += o.label_collisions;
  cross_side_retries += o.cross_side_retries;
  empty_pops_contradicted += o.empty_pops_contradicted;
  reads_contradicted += o.reads_contradicted;
  id_collisions += o.id_collisions;
  gaps += o.gaps;
  carried += o.carried;
  carried_skipped += o.carried_skipped;
  return *this;
}

std::string MergeCounts::text() const {
  return "segments " + std::to_string(segments) + ", already absorbed " + std::to_string(already_absorbed) +
         ", pushes " + std::to_string(pushes) + ", pops " + std::to_string(pops) + ", popped twice " +
         std::to_string(popped_twice) + ", destroys " + std::to_string(destroys) + ", destroys undone " +
         std::to_string(destroys_undone) + ", label collisions " + std::to_string(label_collisions) +
         ", cross-side retries " + std::to_string(cross_side_retries) + ", empty pops contradicted " +
         std::to_string(empty_pops_contradicted) + ", reads contradicted " + std::to_string(reads_contradicted) +
         ", id collisions " +
         std::to_string(id_collisions) + ", gaps " + std::to_string(gaps) + ", carried " + std::to_string(carried) +
         " (merged before: " + std::to_string(carried_skipped) + ")";
}

// ---- a side -------------------------------------------------------------------

Effect apply_on_side(QueueState& state, const wire::Operation& op, ItemName name, int32_t new_id) {
  Effect e;
  e.op = op.op;
  e.client_id = op.client_id;
  e.request_no = op.request_no;
  ClientEntry& client = state.clients[op.client_id];
  if (op.request_no <= client.request_no && client.request_no != 0) {
    e.code = client.code;  // applied before (or superseded): nothing changes
    e.value = client.value;
    e.client_id = 0;        // not a new application: the client table is not touched
    return e;
  }
  auto finish = [&](ReplyCode code, int32_t value) {
    e.code = code;
    e.value = value;
    client = ClientEntry{op.request_no, code, value, state.cluster_time_ms, true};
    return e;
  };
  if (op.op == OpCode::Create || op.op == OpCode::Id) {
    e.kind = op.op == OpCode::Create ? Effect::Kind::Create : Effect::Kind::Read;
    e.label = op.arg;
    auto found = state.id_by_label.find(op.arg);
    if (found != state.id_by_label.end()) return finish(ReplyCode::Ok, e.queue = found->second);
    if (op.op == OpCode::Id) return finish(ReplyCode::Ok, -1);
    e.created = true;
    e.queue = new_id;
    state.queues[new_id] = Queue{true, op.arg, {}};
    state.id_by_label[op.arg] = new_id;
    if (new_id < kFirstTentativeId) state.next_id = std::max<int64_t>(state.next_id, static_cast<int64_t>(new_id) + 1);
    return finish(ReplyCode::Ok, new_id);
  }
  e.queue = op.arg;
  auto q = state.queues.find(state.resolve(op.arg));
  if (q == state.queues.end()) {
    e.kind = Effect::Kind::Read;
    return finish(ReplyCode::NoQueue, 0);
  }
  e.label = q->second.label;
  std::deque<Item>& items = q->second.items;
  switch (op.op) {
    case OpCode::Destroy:
      e.kind = Effect::Kind::Destroy;
      e.removed.assign(items.begin(), items.end());
      if (q->second.has_label) state.id_by_label.erase(q->second.label);
      state.queues.erase(q);
      return finish(ReplyCode::Ok, 0);
    case OpCode::Push:
      e.kind = Effect::Kind::Push;
      e.item = Item{name, op.item};
      items.push_back(e.item);
      return finish(ReplyCode::Ok, 0);
    case OpCode::Pop:
      e.kind = Effect::Kind::Pop;
      if (items.empty()) return finish(ReplyCode::Empty, 0);
      e.item = items.front();
      items.pop_front();
      return finish(ReplyCode::Ok, e.item.value);
    case OpCode::Top:
      if (items.empty()) return finish(ReplyCode::Empty, 0);
      return finish(ReplyCode::Ok, items.front().value);
    default:  // Size
      return finish(ReplyCode::Ok, static_cast<int32_t>(std::min<size_t>(items.size(), INT32_MAX)));
  }
}

// ---- the merge ------------------------------------------------------------------
//
// The rules, one per effect, applied segment by segment in ascending side
// order (the one order every member can compute alone: a side's id is its
// configuration's, known to every member that brings the segment), each
// segment's effects in the order its side applied them:
//   push     appends the named item to the queue its id resolves to; if
//            that queue is gone (destroyed by an earlier segment, or in the
//            base), it comes back under its id (a destroy undone), with its
//            label if no live queue holds it.
//   pop      removes the item it names, wherever it stands in the queue;
//            if it is gone already, another side handed it out too (count).
//   create   a queue made on the side: if a live queue holds its label, its
//            id becomes an alias of that queue (count); else it is made.
//   destroy  removes the items it names; the queue goes with them, unless
//            it holds items the destroying side never saw (add wins: it
//            stays, count a destroy undone).
//   reads and empty pops change nothing; each is held against the merged
//            state where the merge puts it, and counted if that state
//            would have answered otherwise (contradicted).
// The exactly-once table keeps, per client, the highest request any side
// applied; the same request applied on two sides is counted. Of a side's
// segment, the effects past what the base absorbed are merged (copies of
// one side's segment are prefixes of the longest: one side, one order).
// next_id ends above every id any side made, so none is ever reused.
// A carried copy of side T's effect number i is merged when absorbed[T]
// is at most i, and raises it to i + 1: whichever copy (T's own part, or
// a later side's carried one) comes first is merged, the other skipped.
// Why raising it past effects of T not yet seen here loses none: a side
// carries every effect of T from where its leader's committed state had
// absorbed T, in T's order, and any committed state a later merge meets
// has absorbed at least that much (the committed order only grows), so
// T's effects between absorbed[T] and i came in this same segment, before
// (T's own effects as carried copies of T; those T carried itself as
// copies of their own sides, which do not raise absorbed[T]).
//
// Why the promises of merge.hpp hold: the order of segments is a function
// of their ids, and every rule reads only the state and the effect, so the
// result is a function of (base, set of segments). A pop or destroy
// removes only items it names, and a push always lands (a missing queue
// comes back), so an item leaves only when some side took it. Items are
// appended in each segment's order, and never moved, so each side's order
// stands. Names are unique (merge.hpp), and each effect of a side is
// merged once (absorbed), so no item appears twice. All of this assumes
// queue ids drawn apart (merge.hpp); a push always lands in the queue its
// side meant only if no other side's create took that id.

namespace {

class Merger {
 public:
  Merger(QueueState& s, MergeCounts& counts, MergeBug bug) : s_(s), counts_(counts), bug_(bug) {}

  // The effects of `seg` from `from` on; carried copies once (above).
  void segment(const Segment& seg, size_t from, bool first) {
    first_ = first;
    for (size_t i = from; i < seg.effects.size(); ++i) {
      const Effect& e = seg.effects[i];
      if (e.carried_side == 0) {
        effect(e);
        continue;
      }
      uint64_t& done = s_.absorbed[e.carried_side];
      if (done > e.carried_index && bug_ != MergeBug::NoAbsorbed) {
        ++counts_.carried_skipped;
        continue;
      }
      effect(e);
      ++counts_.carried;
      done = std::max(done, e.carried_index + 1);
    }
  }

 private:
  void effect(const Effect& e) {
    if (e.kind == Effect::Kind::Read || (e.kind == Effect::Kind::Pop && e.code != ReplyCode::Ok)) contradicted(e);
    switch (e.kind) {
      case Effect::Kind::Create:
        if (e.created) create(e);
        break;
      case Effect::Kind::Destroy:
        destroy(e);
        break;
      case Effect::Kind::Push:
        push(e);
        break;
      case Effect::Kind::Pop:
        if (e.code == ReplyCode::Ok) pop(e);
        break;
      case Effect::Kind::Read:
        break;
      case Effect::Kind::Remove:
        if (auto q = s_.queues.find(s_.resolve(e.queue)); q != s_.queues.end())
          for (const Item& it : e.removed) remove(q->second.items, it.name);
        break;
    }
    if (e.client_id != 0) client(e);
  }

  void create(const Effect& e) {
    // A tentative id is remembered for good (QueueState::tentative_counts),
    // even if the queue is destroyed later or the create collides.
    uint32_t leader;
    uint64_t c;
    if (split_tentative_id(e.queue, leader, c)) s_.tentative_counts[leader] = std::max(s_.tentative_counts[leader], c);
    else s_.next_id = std::max<int64_t>(s_.next_id, static_cast<int64_t>(e.queue) + 1);
    if (s_.queues.count(e.queue) || s_.alias.count(e.queue)) {
      ++counts_.id_collisions;  // two sides drew one id: the caller's rule is broken
      return;
    }
    auto holder = s_.id_by_label.find(e.label);
    if (holder != s_.id_by_label.end() && holder->second != e.queue) {
      s_.alias[e.queue] = holder->second;
      ++counts_.label_collisions;
      return;
    }
    s_.queues[e.queue] = Queue{true, e.label, {}};
    s_.id_by_label[e.label] = e.queue;
  }

  // The live queue for a side's id, brought back if it is gone.
  Queue& queue_for(int32_t side_id, int32_t label) {
    const int32_t id = s_.resolve(side_id);
    auto q = s_.queues.find(id);
    if (q != s_.queues.end()) return q->second;
    ++counts_.destroys_undone;
    Queue& back = s_.queues[id];
    back.label = label;
    back.has_label = !s_.id_by_label.count(label);
    if (back.has_label) s_.id_by_label[label] = id;
    return back;
  }

  void push(const Effect& e) {
    if ((bug_ == MergeBug::DropSidePushes && !first_) || bug_ == MergeBug::DropPushes) return;
    queue_for(e.queue, e.label).items.push_back(e.item);
    ++counts_.pushes;
  }

  void pop(const Effect& e) {
    auto q = s_.queues.find(s_.resolve(e.queue));
    if (q == s_.queues.end()) {
      ++counts_.popped_twice;
      return;
    }
    std::deque<Item>& items = q->second.items;
    if (bug_ == MergeBug::PopHead) {
      if (items.empty()) ++counts_.popped_twice;
      else items.pop_front(), ++counts_.pops;
      return;
    }
    if (remove(items, e.item.name)) ++counts_.pops;
    else ++counts_.popped_twice;
  }

  void destroy(const Effect& e) {
    auto q = s_.queues.find(s_.resolve(e.queue));
    if (q == s_.queues.end()) return;  // destroyed on another side too
    std::deque<Item>& items = q->second.items;
    if (bug_ != MergeBug::DestroyWins)
      for (const Item& it : e.removed) remove(items, it.name);
    if (!items.empty() && bug_ != MergeBug::DestroyWins) {
      ++counts_.destroys_undone;
      return;
    }
    if (q->second.has_label) s_.id_by_label.erase(q->second.label);
    s_.queues.erase(q);
    ++counts_.destroys;
  }

  // An answer that changed nothing, held against the merged state where the
  // merge puts it (the base, the segments before, its side's effects
  // before): counted when the merged history would have answered otherwise.
  // It changes nothing, so it cannot make two members differ.
  void contradicted(const Effect& e) {
    if (e.client_id == 0) return;  // a repeat answered from the side's table
    if (e.op == OpCode::Id) {
      auto holder = s_.id_by_label.find(e.label);
      const int32_t now = holder == s_.id_by_label.end() ? -1 : holder->second;
      counts_.reads_contradicted += (e.value == -1 ? now != -1 : s_.resolve(e.value) != now);
      return;
    }
    auto q = s_.queues.find(s_.resolve(e.queue));
    if (e.code == ReplyCode::NoQueue) {
      counts_.reads_contradicted += q != s_.queues.end();
      return;
    }
    if (q == s_.queues.end()) {
      ++counts_.reads_contradicted;  // the side had the queue; the merge does not
      return;
    }
    const std::deque<Item>& items = q->second.items;
    switch (e.op) {
      case OpCode::Pop:
        counts_.empty_pops_contradicted += !items.empty();
        break;
      case OpCode::Top:
        counts_.reads_contradicted += e.code == ReplyCode::Empty ? !items.empty() : items.empty() || items.front().value != e.value;
        break;
      case OpCode::Size:
        counts_.reads_contradicted += static_cast<int64_t>(items.size()) != e.value;
        break;
      default:
        break;
    }
  }

  static bool remove(std::deque<Item>& items, const ItemName& name) {
    auto it = std::find_if(items.begin(), items.end(), [&](const Item& x) { return x.name == name; });
    if (it == items.end()) return false;
    items.erase(it);
    return true;
  }

  void client(const Effect& e) {
    ClientEntry& c = s_.clients[e.client_id];
    if (e.request_no == c.request_no) {
      ++counts_.cross_side_retries;  // the lower side's answer stands
      return;
    }
    if (e.request_no > c.request_no) c = ClientEntry{e.request_no, e.code, e.value, s_.cluster_time_ms, true};
  }

  QueueState& s_;
  MergeCounts& counts_;
  MergeBug bug_;
  bool first_ = true;
};

}  // namespace

QueueState merge(QueueState base, std::vector<Segment> segments, MergeCounts& counts, MergeBug bug) {
  // By side; of one side's parts and copies, the earliest start first and,
  // among equal starts, the longest.
  if (bug != MergeBug::ArrivalOrder)
    std::stable_sort(segments.begin(), segments.end(), [](const Segment& a, const Segment& b) {
      if (a.side != b.side) return a.side < b.side;
      return a.first != b.first ? a.first < b.first : a.end() > b.end();
    });
  Merger merger(base, counts, bug);
  bool first = true;
  for (const Segment& seg : segments) {
    uint64_t& done = base.absorbed[seg.side];
    const uint64_t from = bug == MergeBug::NoAbsorbed ? seg.first : done;
    if (from < seg.first) {
      ++counts.gaps;  // effects between `done` and seg.first are missing
      continue;
    }
    if (from >= seg.end()) {
      ++counts.already_absorbed;
      continue;
    }
    merger.segment(seg, static_cast<size_t>(from - seg.first), first);
    first = false;
    done = std::max(done, seg.end());
    ++counts.segments;
  }
  return base;
}

// ---- bytes ---------------------------------------------------------------------

namespace {

constexpr uint8_t kSegmentFormat = 2;  // 2: each effect names its operation

void put_item(wire::Writer& w, const Item& it) {
  w.u64(it.name.side);
  w.u64(it.name.k);
  w.u32(it.name.index);
  w.i32(it.value);
}

bool get_item(wire::Reader& r, Item& it) {
  return r.u64(it.name.side) && r.u64(it.name.k) && r.u32(it.name.index) && r.i32(it.value);
}

// A carried copy's kind byte has this bit set, and its origin follows the
// effect (a format-2 segment written before carried copies reads as is).
constexpr uint8_t kCarriedBit = 0x80;

void put_effect(wire::Writer& w, const Effect& e) {
  w.u8(static_cast<uint8_t>(static_cast<uint8_t>(e.kind) | (e.carried_side != 0 ? kCarriedBit : 0)));
  w.u8(static_cast<uint8_t>(e.op));
  w.u64(e.client_id);
  w.u64(e.request_no);
  w.u8(static_cast<uint8_t>(e.code));
  w.i32(e.value);
  w.i32(e.queue);
  w.i32(e.label);
  w.u8(e.created ? 1 : 0);
  put_item(w, e.item);
  w.u32(static_cast<uint32_t>(e.removed.size()));
  for (const Item& it : e.removed) put_item(w, it);
  if (e.carried_side != 0) {
    w.u64(e.carried_side);
    w.u64(e.carried_index);
  }
}

constexpr size_t kItemBytes = 8 + 8 + 4 + 4;
constexpr size_t kEffectFixedBytes = 1 + 1 + 8 + 8 + 1 + 4 + 4 + 4 + 1 + kItemBytes + 4;

bool get_effect(wire::Reader& r, size_t bytes_left, Effect& e) {
  uint8_t kind, op, code, created;
  uint32_t removed;
  if (!r.u8(kind)) return false;
  const bool carried = (kind & kCarriedBit) != 0;
  kind = static_cast<uint8_t>(kind & ~kCarriedBit);
  if (kind > static_cast<uint8_t>(Effect::Kind::Remove) || !r.u8(op) || !wire::valid_opcode(op) ||
      !r.u64(e.client_id) ||
      !r.u64(e.request_no) || !r.u8(code) || !wire::valid_reply_code(code) || !r.i32(e.value) || !r.i32(e.queue) ||
      !r.i32(e.label) || !r.u8(created) || created > 1 || !get_item(r, e.item) || !r.u32(removed) ||
      removed > bytes_left / kItemBytes)
    return false;
  e.kind = static_cast<Effect::Kind>(kind);
  e.op = static_cast<wire::OpCode>(op);
  e.code = static_cast<wire::ReplyCode>(code);
  e.created = created == 1;
  e.removed.resize(removed);
  for (Item& it : e.removed)
    if (!get_item(r, it)) return false;
  e.carried_side = e.carried_index = 0;
  if (carried && (!r.u64(e.carried_side) || !r.u64(e.carried_index) || e.carried_side == 0)) return false;
  return true;
}

size_t effect_bytes(const Effect& e) {
  return kEffectFixedBytes + e.removed.size() * kItemBytes + (e.carried_side != 0 ? 16 : 0);
}

}  // namespace

std::string encode_segment(const Segment& segment) {
  wire::Writer w;
  w.u8(kSegmentFormat);
  w.u64(segment.side);
  w.u64(segment.first);
  w.u32(static_cast<uint32_t>(segment.effects.size()));
  for (const Effect& e : segment.effects) put_effect(w, e);
  return w.take();
}

bool decode_segment(const std::string& bytes, Segment& out) {
  wire::Reader r(bytes.data(), bytes.size());
  uint8_t format;
  uint32_t count;
  Segment s;
  if (!r.u8(format) || format != kSegmentFormat || !r.u64(s.side) || !r.u64(s.first) || !r.u32(count) ||
      count > bytes.size() / kEffectFixedBytes || s.first > UINT64_MAX - count)
    return false;
  s.effects.resize(count);
  for (Effect& e : s.effects)
    if (!get_effect(r, bytes.size(), e)) return false;
  if (!r.at_end()) return false;
  out = std::move(s);
  return true;
}

Segment tail(const Segment& segment, uint64_t from) {
  return Segment{segment.side, from,
                 std::vector<Effect>(segment.effects.begin() + static_cast<long>(from - segment.first), segment.effects.end())};
}

std::vector<Segment> split_segment(const Segment& segment, size_t max_bytes) {
  constexpr size_t kHeaderBytes = 1 + 8 + 8 + 4;
  std::vector<Segment> parts;
  Segment part{segment.side, segment.first, {}};
  size_t size = kHeaderBytes;
  for (const Effect& e : segment.effects) {
    if (!part.effects.empty() && size + effect_bytes(e) > max_bytes) {
      parts.push_back(std::move(part));
      part = Segment{segment.side, parts.back().end(), {}};
      size = kHeaderBytes;
    }
    part.effects.push_back(e);
    size += effect_bytes(e);
  }
  if (!part.effects.empty() || parts.empty()) parts.push_back(std::move(part));
  return parts;
}

namespace {
const char kMergeMarker[2] = {'\xff', '\xfe'};
}  // namespace

std::string encode_merge_record(const Segment& part) {
  return std::string(kMergeMarker, 2) + encode_segment(part);
}

bool is_merge_record(const std::string& payload) {
  return payload.size() >= 2 && payload[0] == kMergeMarker[0] && payload[1] == kMergeMarker[1];
}

bool decode_merge_record(const std::string& payload, Segment& part) {
  return is_merge_record(payload) && decode_segment(payload.substr(2), part);
}

}  // namespace partition
