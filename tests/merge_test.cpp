// merge_test: partitionable mode's merge (merge.hpp), from random histories.
//
// Each seed builds a committed state, splits it into 2 or 3 sides that each
// run random operations on their own copy (apply_on_side), lets the
// committed side (a primary, if any) run on too, and merges the sides'
// segments into the committed state, handing them in in every order. Checks:
//   1. the result is the same whatever order the segments come in;
//   2. merging the same segments again changes nothing (absorbed), and
//      merging in two steps (a prefix of the newest side's segment first)
//      gives what one step gives; a side's segment may come twice, once
//      cut short (copies from two members);
//   3. nothing lost: every item in the base or pushed anywhere is in the
//      result unless some pop or destroy took it; nothing invented; no name
//      twice, and nothing taken is still there;
//   4. order: in every queue, base items first, then each side's block in
//      side order, and each side's items in the order it pushed them;
//   5. the exactly-once table holds, per client, the highest request any
//      side applied;
//   6. names: every label names one live queue and back, no alias is a live
//      queue's id, no two sides' creates drew one id;
//   7. bytes: every segment survives encode/decode; no cut-short encoding
//      decodes, and a corrupted one either fails or re-encodes to itself;
//   8. parts: the segments cut into parts of random sizes, handed in
//      shuffled, merge as the whole ones do; with one part missing, the
//      parts after it are skipped and counted as gaps;
//   9. the replica's way: those parts applied one by one as MERGE records
//      to an FTQueue (its own representation, through named_state() and
//      adopt()) give, after each, the state and counts of merge().
//  10. nested: the sides meet without a majority and a newer side runs on
//      their merge, its segment beginning with carried copies of theirs;
//      merged before them, with them, or after them (whole or in parts,
//      its carried copies included), the result is the same, and no item
//      its own pops took is there.
// Plus a worked example (a 2|1 split, a push and a pop on
// each side) with its exact result.
//
// Usage: merge_test [--seeds N] [--first-seed S] [--seed S] [--bug NAME --expect-violation] [-v]
//   bugs: arrival-order, drop-side-pushes, pop-head, destroy-wins, no-absorbed
//   (merge.cpp's rules broken), same-ids (every side draws queue ids from
//   its copy's next_id, as the default mode would), no-carry (the nested
//   side of check 10 carries nothing of the sides it ran on)
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "../ftqueue.hpp"
#include "../merge.hpp"

using namespace partition;

namespace {

struct Args {
  uint64_t first_seed = 1;
  uint64_t seeds = 2000;
  MergeBug bug = MergeBug::None;
  bool same_ids = false;  // the generator's ids broken: --bug same-ids
  bool no_carry = false;  // check 10's nested side carries nothing: --bug no-carry
  bool expect_violation = false;
  bool verbose = false;
};

constexpr uint64_t kCommitted = 1;  // the committed order's side number in item names

wire::Operation op_of(wire::OpCode code, uint64_t client, uint64_t request, int32_t arg, int32_t item = 0) {
  return wire::Operation{client, request, code, arg, item};
}

// One history: the base, what the committed side did after the split, and
// each side's segment.
struct History {
  QueueState base;               // at the split
  QueueState committed;          // the base after the committed side's work
  std::vector<Effect> committed_effects;
  std::vector<Segment> segments;  // in the order they were made (not by side)
};

class Generator {
 public:
  Generator(uint64_t seed, bool same_ids) : rng_(seed), same_ids_(same_ids) {}

  History make() {
    History h;
    const int queues = pick(1, 3);
    for (int q = 1; q <= queues; ++q) {
      Queue& queue = h.base.queues[q];
      queue.label = 10 + q;
      h.base.id_by_label[queue.label] = q;
      const int items = pick(0, 5);
      for (int i = 0; i < items; ++i) queue.items.push_back(Item{ItemName{kCommitted, ++base_k_, 0}, pick(1, 99)});
    }
    h.base.next_id = queues + 1;
    h.committed = h.base;
    if (pick(0, 1)) run_side(h.committed, kCommitted, base_k_, h.committed_effects);
    const int sides = pick(2, 3);
    std::vector<uint64_t> ids = {100 + static_cast<uint64_t>(pick(0, 9)), 200 + static_cast<uint64_t>(pick(0, 9)),
                                 300 + static_cast<uint64_t>(pick(0, 9))};
    std::shuffle(ids.begin(), ids.end(), rng_);  // made in an order other than the sides'
    for (int s = 0; s < sides; ++s) {
      Segment seg;
      seg.side = ids[s];
      QueueState copy = h.base;
      run_side(copy, seg.side, 0, seg.effects);
      h.segments.push_back(std::move(seg));
    }
    // Sometimes a second, shorter copy of one side's segment (a member that
    // had delivered less), handed in with the others.
    if (pick(0, 3) == 0) {
      Segment cut = h.segments[static_cast<size_t>(pick(0, sides - 1))];
      cut.effects.resize(static_cast<size_t>(pick(0, static_cast<int>(cut.effects.size()))));
      h.segments.push_back(cut);
    }
    return h;
  }

  // Check 10's newer side: runs on the merge of h's sides into the
  // committed state, its segment beginning (unless `carry` is false) with
  // carried copies of every side's effects, as a replica's leader makes it.
  Segment nested_side(const History& h, uint64_t side, bool carry) {
    Segment nested{side, 0, {}};
    std::map<uint64_t, const Segment*> longest;
    for (const Segment& seg : h.segments)
      if (!longest.count(seg.side) || longest[seg.side]->effects.size() < seg.effects.size()) longest[seg.side] = &seg;
    for (const auto& [from_side, seg] : longest)
      for (size_t i = 0; carry && i < seg->effects.size(); ++i) {
        Effect copy = seg->effects[i];
        copy.carried_side = from_side;
        copy.carried_index = i;
        nested.effects.push_back(copy);
      }
    MergeCounts ignored;
    QueueState start = merge(h.committed, h.segments, ignored);
    std::vector<Effect> own;
    run_side(start, side, nested.effects.size(), own);  // names count the carried copies too
    nested.effects.insert(nested.effects.end(), own.begin(), own.end());
    return nested;
  }

 private:
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  void run_side(QueueState& s, uint64_t side, uint64_t first_k, std::vector<Effect>& out) {
    const int ops = pick(0, 25);
    for (int i = 0; i < ops; ++i) {
      const uint64_t client = static_cast<uint64_t>(pick(1, 4));
      uint64_t& last = requests_[client];
      // Now and then a request another side applied already (a retry that
      // crossed sides): same client, same request number.
      const uint64_t request = (last > 0 && pick(0, 9) == 0) ? last : ++last;
      const int32_t queue = pick(1, 4) == 4 && !created_.empty() ? created_[pick(0, static_cast<int>(created_.size()) - 1)]
                                                                   : pick(1, 4);
      wire::Operation op;
      switch (pick(0, 9)) {
        case 0: op = op_of(wire::OpCode::Create, client, request, 11 + pick(0, 4)); break;
        case 1: op = op_of(wire::OpCode::Destroy, client, request, queue); break;
        case 2: case 3: case 4: op = op_of(wire::OpCode::Pop, client, request, queue); break;
        case 5: op = op_of(wire::OpCode::Top, client, request, queue); break;
        case 6: op = op_of(wire::OpCode::Size, client, request, queue); break;
        default: op = op_of(wire::OpCode::Push, client, request, queue, pick(1, 999)); break;
      }
      // Ids never collide across sides (each side draws from its own).
      const int32_t new_id = same_ids_ ? static_cast<int32_t>(s.next_id)
                                       : static_cast<int32_t>(1000 + side * 100 + static_cast<uint64_t>(++ids_drawn_[side]));
      Effect e = apply_on_side(s, op, ItemName{side, first_k + static_cast<uint64_t>(i) + 1, 0}, new_id);
      if (e.kind == Effect::Kind::Create && e.created) created_.push_back(e.queue);
      out.push_back(e);
    }
  }

  std::mt19937_64 rng_;
  bool same_ids_;
  uint64_t base_k_ = 0;
  std::map<uint64_t, uint64_t> requests_;
  std::map<uint64_t, int> ids_drawn_;
  std::vector<int32_t> created_;
};

struct Checker {
  std::string failure;
  void fail(const std::string& what) {
    if (failure.empty()) failure = what;
  }
};

void check_accounting(const History& h, const QueueState& result, Checker& c) {
  std::set<ItemName> pushed, taken;
  for (const auto& [id, q] : h.base.queues)
    for (const Item& it : q.items) pushed.insert(it.name);
  auto note = [&](const Effect& e) {
    if (e.kind == Effect::Kind::Push) pushed.insert(e.item.name);
    if (e.kind == Effect::Kind::Pop && e.code == wire::ReplyCode::Ok) taken.insert(e.item.name);
    if (e.kind == Effect::Kind::Destroy)
      for (const Item& it : e.removed) taken.insert(it.name);
  };
  for (const Effect& e : h.committed_effects) note(e);
  for (const Segment& s : h.segments)
    for (const Effect& e : s.effects) note(e);
  std::set<ItemName> present;
  for (const auto& [id, q] : result.queues)
    for (const Item& it : q.items) {
      if (!present.insert(it.name).second) return c.fail("item " + it.name.text() + " appears twice");
      if (!pushed.count(it.name)) return c.fail("item " + it.name.text() + " was never pushed (invented)");
      if (taken.count(it.name)) return c.fail("item " + it.name.text() + " was taken by a pop or destroy, and is still there");
    }
  for (const ItemName& n : pushed)
    if (!taken.count(n) && !present.count(n)) return c.fail("item " + n.text() + " was lost: no pop or destroy took it");
}

// Base items first, then each side's block in side order, each in its
// side's push order.
void check_order(const History& h, const QueueState& result, Checker& c) {
  std::map<uint64_t, int> rank = {{kCommitted, 0}};
  std::vector<uint64_t> sides;
  for (const Segment& s : h.segments) sides.push_back(s.side);
  std::sort(sides.begin(), sides.end());
  for (size_t i = 0; i < sides.size(); ++i) rank[sides[i]] = static_cast<int>(i) + 1;
  for (const auto& [id, q] : result.queues) {
    const Item* before = nullptr;
    for (const Item& it : q.items) {
      if (before) {
        const int a = rank[before->name.side], b = rank[it.name.side];
        if (a > b || (a == b && it.name < before->name))
          return c.fail("queue " + std::to_string(id) + ": " + before->name.text() + " stands before " + it.name.text());
      }
      before = &it;
    }
  }
}

void check_names(const QueueState& result, const MergeCounts& counts, Checker& c) {
  if (counts.id_collisions) return c.fail(std::to_string(counts.id_collisions) + " creates on two sides drew one id");
  for (const auto& [label, id] : result.id_by_label) {
    auto q = result.queues.find(id);
    if (q == result.queues.end() || !q->second.has_label || q->second.label != label)
      return c.fail("label " + std::to_string(label) + " names queue " + std::to_string(id) + ", which does not carry it");
  }
  for (const auto& [id, q] : result.queues) {
    if (q.has_label && result.id_by_label.count(q.label) == 0)
      return c.fail("queue " + std::to_string(id) + " carries label " + std::to_string(q.label) + ", which does not name it");
    if (result.alias.count(id)) return c.fail("queue " + std::to_string(id) + " is live and an alias too");
    if (id >= result.next_id) return c.fail("queue " + std::to_string(id) + " at or above next_id");
  }
}

void check_clients(const History& h, const QueueState& result, Checker& c) {
  std::map<uint64_t, uint64_t> highest;
  for (const auto& [id, e] : h.committed.clients) highest[id] = e.request_no;
  for (const Segment& s : h.segments)
    for (const Effect& e : s.effects)
      if (e.client_id != 0) highest[e.client_id] = std::max(highest[e.client_id], e.request_no);
  for (const auto& [id, req] : highest) {
    auto it = result.clients.find(id);
    const uint64_t got = it == result.clients.end() ? 0 : it->second.request_no;
    if (got != req)
      return c.fail("client " + std::to_string(id) + ": table says request " + std::to_string(got) + ", highest applied " +
                    std::to_string(req));
  }
}

std::string check_bytes(const History& h, std::mt19937_64& rng) {
  for (const Segment& seg : h.segments) {
    const std::string bytes = encode_segment(seg);
    Segment back;
    if (!decode_segment(bytes, back) || encode_segment(back) != bytes)
      return "check 7: side " + std::to_string(seg.side) + "'s segment does not survive encode/decode";
    for (int t = 0; t < 4 && bytes.size() > 1; ++t) {
      const size_t cut = std::uniform_int_distribution<size_t>(0, bytes.size() - 1)(rng);
      if (decode_segment(bytes.substr(0, cut), back)) return "check 7: a cut-short segment decoded";
      std::string bad = bytes;
      bad[cut] = static_cast<char>(bad[cut] ^ (1 + rng() % 255));
      Segment odd;
      if (decode_segment(bad, odd) && encode_segment(odd) != bad) return "check 7: a corrupted segment decoded to another";
    }
  }
  return "";
}

// The sides' segments cut into parts of random sizes, shuffled.
std::vector<Segment> shuffled_parts(const History& h, std::mt19937_64& rng) {
  std::vector<Segment> parts;
  for (const Segment& seg : h.segments)
    for (Segment& p : split_segment(seg, std::uniform_int_distribution<size_t>(60, 400)(rng))) parts.push_back(p);
  std::shuffle(parts.begin(), parts.end(), rng);
  return parts;
}

std::string check_parts(const History& h, const Args& a, const std::string& whole, std::mt19937_64& rng) {
  const std::vector<Segment> parts = shuffled_parts(h, rng);
  MergeCounts counts;
  if (merge(h.committed, parts, counts, a.bug).render() != whole)
    return "check 8: merged in parts, the state differs from the whole segments'";
  // One part missing (not a side's first): the parts after it are gaps.
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].first == 0 || parts[i].effects.empty()) continue;
    // A hole only if no other part (a copy's) covers its first effect.
    bool later = false, covered = false;
    for (size_t j = 0; j < parts.size(); ++j) {
      if (j == i || parts[j].side != parts[i].side) continue;
      later |= parts[j].first > parts[i].first;
      covered |= parts[j].first <= parts[i].first && parts[i].first < parts[j].end();
    }
    if (covered) continue;
    std::vector<Segment> holed = parts;
    holed.erase(holed.begin() + static_cast<std::ptrdiff_t>(i));
    MergeCounts hc;
    merge(h.committed, holed, hc, a.bug);
    if (later && hc.gaps == 0) return "check 8: a part missing, and no gap counted";
    break;
  }
  return "";
}

std::string check_replica_way(const History& h, const Args& a, std::mt19937_64& rng) {
  const std::vector<Segment> parts = shuffled_parts(h, rng);
  FTQueue replica;
  replica.adopt(h.committed);
  replica.break_merge_for_tests(a.bug);
  QueueState whole = h.committed;
  uint64_t k = 0;
  for (const Segment& part : parts) {
    MergeCounts counts;
    whole = merge(whole, {part}, counts, a.bug);
    ++k;
    replica.apply(mcast::Delivery{k, wire::MessageName{0, 1, k}, encode_merge_record(part)});
    if (replica.named_state().render() != whole.render())
      return "check 9: MERGE record " + std::to_string(k) + " (side " + std::to_string(part.side) +
             ") applied by FTQueue gives another state than merge() of the whole state:\n" +
             replica.named_state().render() + "  expected:\n" + whole.render();
    if (replica.last_merge().text() != counts.text())
      return "check 9: MERGE record " + std::to_string(k) + " counted " + replica.last_merge().text() + ", merge() " +
             counts.text();
  }
  return "";
}

std::string check_nested(const History& h, Generator& gen, const Args& a, std::mt19937_64& rng) {
  const Segment nested = gen.nested_side(h, 900, !a.no_carry);
  std::vector<Segment> all = h.segments;
  all.push_back(nested);
  MergeCounts counts;
  const QueueState together = merge(h.committed, all, counts, a.bug);
  // The nested side first (in parts, in its order), then the rest.
  QueueState stepped = h.committed;
  for (const Segment& part : split_segment(nested, std::uniform_int_distribution<size_t>(60, 400)(rng)))
    stepped = merge(stepped, {part}, counts, a.bug);
  stepped = merge(stepped, h.segments, counts, a.bug);
  if (stepped.render() != together.render())
    return "check 10: the nested side merged before the sides it ran on gives another state:\n" + stepped.render() +
           "  merged with them:\n" + together.render();
  std::set<std::string> taken;
  for (const Effect& e : nested.effects)
    if (e.carried_side == 0 && e.kind == Effect::Kind::Pop && e.code == wire::ReplyCode::Ok) taken.insert(e.item.name.text());
  for (const auto& [id, q] : stepped.queues)
    for (const Item& it : q.items)
      if (taken.count(it.name.text())) return "check 10: item " + it.name.text() + ", popped on the nested side, is back";
  return "";
}

std::string run_seed(uint64_t seed, const Args& a, MergeCounts& total) {
  Generator gen(seed, a.same_ids);
  History h = gen.make();
  Checker c;
  std::vector<size_t> order(h.segments.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::string first_render;
  QueueState first;
  MergeCounts first_counts;
  do {
    std::vector<Segment> given;
    for (size_t i : order) given.push_back(h.segments[i]);
    MergeCounts counts;
    QueueState result = merge(h.committed, given, counts, a.bug);
    const std::string text = result.render();
    if (first_render.empty()) {
      first_render = text;
      first = result;
      first_counts = counts;
      MergeCounts merged_now = counts;
      merged_now.already_absorbed = 0;  // counted from the second merge below
      total += merged_now;
    } else if (text != first_render) {
      c.fail("check 1: the result depends on the order the segments came in");
    }
  } while (c.failure.empty() && std::next_permutation(order.begin(), order.end()));
  if (!c.failure.empty()) return c.failure;
  MergeCounts again_counts;
  QueueState again = merge(first, h.segments, again_counts, a.bug);
  if (again.render() != first_render) return "check 2: merging the same segments again changed the state";
  // In two steps: the newest side cut short first, then everything.
  std::vector<Segment> step1 = h.segments;
  std::sort(step1.begin(), step1.end(), [](const Segment& x, const Segment& y) { return x.side < y.side; });
  const uint64_t newest = step1.back().side;
  for (Segment& seg : step1)
    if (seg.side == newest) seg.effects.resize(seg.effects.size() / 2);
  MergeCounts step_counts;
  QueueState stepped = merge(merge(h.committed, step1, step_counts, a.bug), h.segments, step_counts, a.bug);
  if (stepped.render() != first_render) return "check 2: merged in two steps, the state differs from one step";
  std::mt19937_64 rng(seed * 7919 + 1);
  if (std::string why = check_bytes(h, rng); !why.empty()) return why;
  if (std::string why = check_parts(h, a, first_render, rng); !why.empty()) return why;
  if (std::string why = check_replica_way(h, a, rng); !why.empty()) return why;
  if (std::string why = check_nested(h, gen, a, rng); !why.empty()) return why;
  check_accounting(h, first, c);
  if (c.failure.empty()) check_names(first, first_counts, c);
  if (c.failure.empty()) check_order(h, first, c);
  if (c.failure.empty()) check_clients(h, first, c);
  if (!c.failure.empty()) return c.failure;
  total.already_absorbed += again_counts.already_absorbed;
  if (a.verbose) std::printf("seed %llu:\n%s", static_cast<unsigned long long>(seed), first_render.c_str());
  return "";
}

// A worked example: queue 1 holds a b (items 1 and 2 of the
// committed order); replicas 0,1 | 2 split. Side {0,1} (configuration 2.0,
// ordering number 131072) pops and pushes c; side {2} (2.2, 131074) pops,
// pushes d, is told size 2, pops b and d, and is told "empty". Both first
// pops returned a (handed out twice). Merged: c. Where the merge puts
// them, the size (b c d: 3) and the empty pop (c left) are contradicted.
int worked_example() {
  QueueState base;
  base.queues[1] = Queue{true, 7, {Item{{kCommitted, 1, 0}, 'a'}, Item{{kCommitted, 2, 0}, 'b'}}};
  base.id_by_label[7] = 1;
  Segment left{131072, 0, {}}, right{131074, 0, {}};
  QueueState l = base, r = base;
  left.effects.push_back(apply_on_side(l, op_of(wire::OpCode::Pop, 1, 1, 1), {131072, 1, 0}, 0));
  left.effects.push_back(apply_on_side(l, op_of(wire::OpCode::Push, 1, 2, 1, 'c'), {131072, 2, 0}, 0));
  right.effects.push_back(apply_on_side(r, op_of(wire::OpCode::Pop, 2, 1, 1), {131074, 1, 0}, 0));
  right.effects.push_back(apply_on_side(r, op_of(wire::OpCode::Push, 2, 2, 1, 'd'), {131074, 2, 0}, 0));
  right.effects.push_back(apply_on_side(r, op_of(wire::OpCode::Size, 2, 3, 1), {131074, 3, 0}, 0));
  for (uint64_t request = 4; request <= 6; ++request)
    right.effects.push_back(apply_on_side(r, op_of(wire::OpCode::Pop, 2, request, 1), {131074, request, 0}, 0));
  MergeCounts counts;
  QueueState merged = merge(base, {right, left}, counts);
  const std::string want = "queue 1 label 7 items 1: 99@131072.2.0\n";
  const std::string got = merged.render();
  const bool ok = got.compare(0, want.size(), want) == 0 && right.effects[2].value == 2 &&
                  right.effects[5].code == wire::ReplyCode::Empty && counts.popped_twice == 1 && counts.pops == 3 &&
                  counts.reads_contradicted == 1 && counts.empty_pops_contradicted == 1;
  std::printf("worked example: %s\n  merged: %s  counts: %s\n", ok ? "as expected" : "WRONG", got.substr(0, got.find('\n') + 1).c_str(),
              counts.text().c_str());
  return ok ? 0 : 1;
}

bool parse(int argc, char** argv, Args& a) {
  static const std::map<std::string, MergeBug> bugs = {{"arrival-order", MergeBug::ArrivalOrder},
                                                       {"drop-side-pushes", MergeBug::DropSidePushes},
                                                       {"pop-head", MergeBug::PopHead},
                                                       {"destroy-wins", MergeBug::DestroyWins},
                                                       {"no-absorbed", MergeBug::NoAbsorbed}};
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    const bool value = i + 1 < argc;
    if (s == "--seeds" && value) a.seeds = std::strtoull(argv[++i], nullptr, 10);
    else if (s == "--first-seed" && value) a.first_seed = std::strtoull(argv[++i], nullptr, 10);
    else if (s == "--seed" && value) a.first_seed = std::strtoull(argv[++i], nullptr, 10), a.seeds = 1;
    else if (s == "--expect-violation") a.expect_violation = true;
    else if (s == "-v") a.verbose = true;
    else if (s == "--bug" && value && std::string(argv[i + 1]) == "same-ids") a.same_ids = true, ++i;
    else if (s == "--bug" && value && std::string(argv[i + 1]) == "no-carry") a.no_carry = true, ++i;
    else if (s == "--bug" && value) {
      auto it = bugs.find(argv[++i]);
      if (it == bugs.end()) {
        std::fprintf(stderr, "merge_test: unknown bug '%s'\n", argv[i]);
        return false;
      }
      a.bug = it->second;
    } else {
      std::fprintf(stderr, "usage: merge_test [--seeds N] [--first-seed S] [--seed S] [--bug NAME --expect-violation] [-v]\n");
      return false;
    }
  }
  return a.seeds > 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (!parse(argc, argv, a)) return 2;
  int failed = a.bug == MergeBug::None && !a.same_ids && !a.no_carry ? worked_example() : 0;
  MergeCounts total;
  uint64_t failed_seeds = 0;
  for (uint64_t seed = a.first_seed; seed < a.first_seed + a.seeds; ++seed) {
    std::string why = run_seed(seed, a, total);
    if (why.empty()) continue;
    ++failed_seeds;
    if (failed_seeds <= 5) std::printf("FAIL seed %llu: %s\n", static_cast<unsigned long long>(seed), why.c_str());
    if (a.expect_violation) break;
  }
  std::printf("%llu seeds from %llu: %llu failed\n  merged (first order of each seed): %s\n",
              static_cast<unsigned long long>(a.seeds), static_cast<unsigned long long>(a.first_seed),
              static_cast<unsigned long long>(failed_seeds), total.text().c_str());
  if (a.expect_violation) {
    std::printf(failed_seeds ? "the injected bug was caught\n" : "the injected bug went unnoticed\n");
    return failed_seeds ? 0 : 1;
  }
  return failed || failed_seeds ? 1 : 0;
}
