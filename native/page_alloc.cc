// mm/page_alloc.c: the buddy allocator: free lists, __free_one_page merging, expand, __rmqueue with
// fallbacks, bulk alloc/free, pin/unpin, take_page_off_buddy.
//
// Over 400 lines because the bulk paths every workload runs (alloc, freeBlocks) carry fast versions
// of __rmqueue_smallest/expand and __free_one_page for blocks below pageblock order beside the general
// ones; both halves read the same free lists and belong in the kernel's one file.
#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "internal.h"

namespace memhp {

static int kindMigratetype(int kind) {
  switch (kind) {
    case K_MOVABLE:
    case K_PINNED: return MT_MOVABLE;
    case K_RECLAIMABLE: return MT_RECLAIMABLE;
    default: return MT_UNMOVABLE;
  }
}

// ---------------------------------------------------------------------------------------------
// Free lists

void PhysMem::accountMaxOrder(uint64_t head, int sign) {
  Section& s = *sec(head);
  s.freeMaxPages += uint32_t(sign * int(MAX_ORDER_PAGES));
  // Whole section free in max-order blocks: that is exactly the U_FREE_MAX encoding.
  if (s.freeMaxPages == SECTION_PAGES && s.pages) makeUniform(s, U_FREE_MAX);
}

// One section lookup for the header, the list and the counters: this runs for every block freed.
void PhysMem::addFreeBlock(Zone& z, uint64_t head, int order) {
  Section& s = *sec(head);
  if (!s.pages) materialise(s);
  const uint64_t off = head & (SECTION_PAGES - 1);
  setNibble(s.pages.get(), off, order ? C_FREEH : C_FREE0);
  if (order) setNibble(s.pages.get(), off + 1, uint8_t(order));
  int list = pageblockList(s, head);
  auto& st = z.stack[order][list];
  st.push_back(head);
  account(z, head, order, list, +1);
  if (st.size() > 2 * z.nrFree[order][list] + 64) compact(z, order, list);
}

// addFreeBlock for a block below MAX_ORDER in a section with a page array whose list the caller knows
// (the merge and split paths, which stay inside one pageblock): no lookup at all.
inline void PhysMem::pushFree(Zone& z, Section& s, uint64_t head, int order, int list) {
  uint8_t* pg = s.pages.get();
  const uint64_t off = head & (SECTION_PAGES - 1);
  setNibble(pg, off, order ? C_FREEH : C_FREE0);
  if (order) setNibble(pg, off + 1, uint8_t(order));
  auto& st = z.stack[order][list];
  st.push_back(head);
  uint64_t& nr = z.nrFree[order][list];
  nr++;
  (list == MT_ISOLATE ? z.isolatedFreePages : z.freePages) += 1ull << order;
  if (st.size() > 2 * nr + 64) compact(z, order, list);
}

void PhysMem::delFreeBlock(Zone& z, uint64_t head, int order) {
  int list = listOf(head);
  account(z, head, order, list, -1);
  // Bound the stale entries of a list that only shrinks (e.g. while memory is offlined).
  if (z.stack[order][list].size() > 4 * z.nrFree[order][list] + 1024) compact(z, order, list);
}

// isFreeBlock + listOf + the zone check of one list entry, on one section lookup (every pop runs it).
bool PhysMem::entryValid(const Zone& z, uint64_t pfn, int order, int list) const {
  const Section* s = sec(pfn);
  if (!s || s->nid != z.nid) return false;
  const size_t pb = (pfn & (SECTION_PAGES - 1)) >> PB_ORDER;
  if (s->pbZone[pb] != z.type || pageblockList(*s, pfn) != list) return false;
  if (order) return get(*s, pfn) == C_FREEH && get(*s, pfn + 1) == order;
  // codeAt: an odd pfn right after a compound head is that block's page[1], not a free page.
  return get(*s, pfn) == C_FREE0 && !((pfn & 1) && isCompoundHead(get(*s, pfn - 1)));
}

bool PhysMem::popValid(Zone& z, int order, int list, uint64_t& pfn) {
  if (z.nrFree[order][list] == 0) return false;
  auto& st = z.stack[order][list];
  while (!st.empty()) {
    uint64_t p = st.back();
    st.pop_back();
    if (entryValid(z, p, order, list)) {
      pfn = p;
      return true;
    }
  }
  return false;  // counters say otherwise: checkInvariants reports the inconsistency
}

void PhysMem::compact(Zone& z, int order, int list) {
  auto& st = z.stack[order][list];
  std::unordered_set<uint64_t> seen;
  seen.reserve(size_t(z.nrFree[order][list]) * 2);
  std::vector<uint64_t> kept;
  kept.reserve(size_t(z.nrFree[order][list]) + 16);
  // Keep the topmost entry of each live block, preserving LIFO order.
  for (size_t i = st.size(); i-- > 0;) {
    uint64_t p = st[i];
    if (entryValid(z, p, order, list) && seen.insert(p).second) kept.push_back(p);
  }
  std::reverse(kept.begin(), kept.end());
  st.swap(kept);
  if (st.capacity() > 4 * st.size() + 64) st.shrink_to_fit();
}

// __free_one_page: merge with free buddies of the same zone. Above pageblock order the buddy lies in
// another pageblock: isolated and non-isolated blocks never merge; otherwise the buddy's pageblock takes
// our migratetype (as the kernel does since 6.10), keeping every pageblock of a block alike.
void PhysMem::freeToBuddy(Zone& z, uint64_t pfn, int order) {
  Section* s = sec(pfn);
  if (order < PB_ORDER && s->pages) {
    // Below pageblock order the buddy shares our pageblock, hence our section, zone and free list: merge
    // on the section's nibbles without looking anything up again (the common case of every free).
    uint8_t* pg = s->pages.get();
    const uint64_t base = pfn & ~(SECTION_PAGES - 1);
    uint64_t off = pfn - base;
    const int list = pageblockList(*s, pfn);
    for (; order < PB_ORDER; order++) {
      const uint64_t b = off ^ (1ull << order);
      const bool free = order ? nibble(pg, b) == C_FREEH && nibble(pg, b + 1) == order
                              : nibble(pg, b) == C_FREE0 && !((b & 1) && isCompoundHead(nibble(pg, b - 1)));
      if (!free) break;
      account(z, base + b, order, list, -1);  // delFreeBlock: the buddy's entry becomes stale
      if (z.stack[order][list].size() > 4 * z.nrFree[order][list] + 1024) compact(z, order, list);
      const uint64_t hi = std::max(off, b);
      setNibble(pg, hi, C_TAIL);
      if (order) setNibble(pg, hi + 1, C_TAIL);
      off = std::min(off, b);
    }
    pfn = base + off;
    if (order < PB_ORDER) {
      pushFree(z, *s, pfn, order, list);
      return;
    }
  }
  int list = listOf(pfn);
  while (order < MAX_ORDER) {
    uint64_t buddy = pfn ^ (1ull << order);
    if (!isFreeBlock(buddy, order) || !sameZone(pfn, buddy)) break;
    if (order >= PB_ORDER) {
      int bl = listOf(buddy);
      if ((bl == MT_ISOLATE) != (list == MT_ISOLATE)) break;
      Section& bs = *sec(buddy);
      uint8_t ours = sec(pfn)->pbFlags[(pfn & (SECTION_PAGES - 1)) >> PB_ORDER];
      for (uint64_t pb = buddy; pb < buddy + (1ull << order); pb += PB_PAGES) {
        int idx = int((pb & (SECTION_PAGES - 1)) >> PB_ORDER);
        if (bs.pbFlags[idx] != ours) changePageblock(pb, ours);
      }
    }
    delFreeBlock(z, buddy, order);
    uint64_t hi = std::max(pfn, buddy);
    Section& hs = *sec(hi);
    set(hs, hi, C_TAIL);
    if (order) set(hs, hi + 1, C_TAIL);
    pfn = std::min(pfn, buddy);
    order++;
  }
  addFreeBlock(z, pfn, order);
}

// expand(): split a block of order `high` at `head` down to `low`, freeing the upper halves.
void PhysMem::expand(Zone& z, uint64_t head, int low, int high) {
  while (high > low) {
    high--;
    addFreeBlock(z, head + (1ull << high), high);
  }
}

// try_to_claim_block, simplified: a pageblock is claimed for the allocation's migratetype when at least
// half of it is free or already used alike.
bool PhysMem::claimPageblock(Zone& z, uint64_t pfn, int mt) {
  uint64_t pb = pfn & ~(PB_PAGES - 1);
  uint64_t freePages = 0, movable = 0, used = 0;
  forEachBlock(pb, pb + PB_PAGES, [&](uint64_t h, uint8_t c, int o, uint64_t run) {
    uint64_t n = run << o;
    if (c == C_FREE0 || c == C_FREEH) freePages += n;
    else if (isAllocCode(c)) {
      used += n;
      if (kindIsMovable(kindOf(c))) movable += n;
    }
  });
  uint64_t alike = mt == MT_MOVABLE ? movable : used - movable;
  if (freePages + alike < PB_PAGES / 2) return false;
  setPageblockType(pb, mt);
  return true;
}

// __rmqueue: smallest block of our migratetype, else steal from a fallback type (largest first).
bool PhysMem::rmqueue(Zone& z, int order, int mt, uint64_t& pfn) {
  for (int o = order; o <= MAX_ORDER; o++) {
    if (popValid(z, o, mt, pfn)) {
      delFreeBlock(z, pfn, o);
      expand(z, pfn, order, o);
      return true;
    }
  }
  static const int fallbacks[NR_PB_TYPES][2] = {
      {MT_RECLAIMABLE, MT_MOVABLE},    // UNMOVABLE
      {MT_RECLAIMABLE, MT_UNMOVABLE},  // MOVABLE
      {MT_UNMOVABLE, MT_MOVABLE},      // RECLAIMABLE
  };
  for (int o = MAX_ORDER; o >= order; o--) {
    for (int ft : fallbacks[mt]) {
      if (z.nrFree[o][ft] == 0) continue;
      bool canSteal = o >= PB_ORDER / 2 || mt != MT_MOVABLE;
      if (!canSteal && o > order) {
        // A movable allocation that cannot claim a block takes the smallest fallback block instead.
        for (int o2 = order; o2 <= MAX_ORDER; o2++)
          for (int ft2 : fallbacks[mt])
            if (popValid(z, o2, ft2, pfn)) {
              delFreeBlock(z, pfn, o2);
              expand(z, pfn, order, o2);
              return true;
            }
        return false;
      }
      if (!popValid(z, o, ft, pfn)) continue;
      if (o >= PB_ORDER) {
        for (uint64_t pb = pfn; pb < pfn + (1ull << o); pb += PB_PAGES) setPageblockType(pb, mt);
      } else if (canSteal) {
        claimPageblock(z, pfn, mt);
      }
      delFreeBlock(z, pfn, o);
      expand(z, pfn, order, o);
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Workload

bool PhysMem::allocOne(const AllocRequest& req, uint64_t& pfn) {
  int mt = kindMigratetype(req.kind);
  int highest = req.highestZone >= 0 ? req.highestZone : kindIsMovable(req.kind) ? int(ZONE_MOVABLE) : int(ZONE_NORMAL);
  int nodes = nodeCount();
  // Zonelist in node order: the preferred node first, then the others by id (equal distances).
  for (int i = -1; i < nodes; i++) {
    int nid = i < 0 ? req.nid : i;
    if (i >= 0 && (nid == req.nid || req.thisNode)) continue;
    if (nid >= nodes) continue;
    if (req.nodeMask && (size_t(nid) >= req.nodeMask->size() || !(*req.nodeMask)[size_t(nid)])) continue;
    for (int zt = highest; zt >= 0; zt--) {
      Zone* z = const_cast<Zone*>(zone(nid, zt));
      if (!z || z->freePages < (1ull << req.order)) continue;
      if (rmqueue(*z, req.order, mt, pfn)) {
        writeHeader(pfn, req.order, allocCode(req.kind, req.order));
        z->allocated[req.kind] += 1ull << req.order;
        return true;
      }
    }
  }
  return false;
}

// Take a whole free block of our own migratetype and carve it into `order`-sized allocations when the
// request wants all of its pieces: that is exactly what repeated __rmqueue_smallest + expand() would
// hand out (the low half first, so ascending pfns), without the intermediate free-list traffic.
uint64_t PhysMem::allocWholeBlock(const AllocRequest& req, uint64_t want, std::vector<uint64_t>& out) {
  int mt = kindMigratetype(req.kind);
  int highest = req.highestZone >= 0 ? req.highestZone : kindIsMovable(req.kind) ? int(ZONE_MOVABLE) : int(ZONE_NORMAL);
  Zone* z = nullptr;
  // Only the first zone of the zonelist with free pages would serve the next allocation.
  for (int zt = highest; zt >= 0 && !z; zt--) {
    Zone* c = const_cast<Zone*>(zone(req.nid, zt));
    if (c && c->freePages >= (1ull << req.order)) z = c;
  }
  if (!z || (req.nodeMask && (size_t(req.nid) >= req.nodeMask->size() || !(*req.nodeMask)[size_t(req.nid)]))) return 0;
  int o = req.order;
  while (o <= MAX_ORDER && z->nrFree[o][mt] == 0) o++;
  if (o > MAX_ORDER || o == req.order) return 0;
  uint64_t pieces = 1ull << (o - req.order);
  if (pieces > want) return 0;
  return carveBlock(*z, req, o, out);
}

// The whole free block on top of zone `z`'s order-`o` list of the request's migratetype, handed out in
// order-`req.order` pieces (allocWholeBlock once it has chosen the block).
uint64_t PhysMem::carveBlock(Zone& z, const AllocRequest& req, int o, std::vector<uint64_t>& out) {
  uint64_t head;
  if (!popValid(z, o, kindMigratetype(req.kind), head)) return 0;
  delFreeBlock(z, head, o);
  if (req.order == 0) {
    fillCodes(head, 1ull << o, allocCode(req.kind, 0));
  } else {
    for (uint64_t p = head; p < head + (1ull << o); p += 1ull << req.order) writeHeader(p, req.order, allocCode(req.kind, req.order));
  }
  for (uint64_t p = head; p < head + (1ull << o); p += 1ull << req.order) out.push_back(p);
  z.allocated[req.kind] += 1ull << o;
  return 1ull << (o - req.order);
}

// __rmqueue_smallest + expand for a block found on zone `z`'s order-`o` list of migratetype `mt`,
// o < pageblock order: the popped block and all the halves expand() frees lie in one pageblock, so the
// section is looked up once and the list is `mt` throughout. The top entry is checked as popValid does
// (lazily deleted entries are skipped). False only if the counters lied (checkInvariants says so).
bool PhysMem::takeSmall(Zone& z, int o, int mt, const AllocRequest& req, std::vector<uint64_t>& out) {
  auto& st = z.stack[o][mt];
  while (!st.empty()) {
    const uint64_t p = st.back();
    st.pop_back();
    if (st.size() >= 2) prefetchPage(st[st.size() - 2]);  // the next allocation's block, likely
    if (!entryValid(z, p, o, mt)) continue;
    Section& s = *sec(p);
    if (!s.pages) {  // cannot happen below MAX_ORDER; the general path copes anyway
      delFreeBlock(z, p, o);
      expand(z, p, req.order, o);
      writeHeader(p, req.order, allocCode(req.kind, req.order));
    } else {
      uint64_t& nr = z.nrFree[o][mt];  // delFreeBlock
      nr--;
      (mt == MT_ISOLATE ? z.isolatedFreePages : z.freePages) -= 1ull << o;
      if (st.size() > 4 * nr + 1024) compact(z, o, mt);
      for (int high = o; high > req.order;) {  // expand
        high--;
        pushFree(z, s, p + (1ull << high), high, mt);
      }
      const uint64_t off = p & (SECTION_PAGES - 1);
      setNibble(s.pages.get(), off, allocCode(req.kind, req.order));  // writeHeader
      if (req.order) setNibble(s.pages.get(), off + 1, uint8_t(req.order));
    }
    z.allocated[req.kind] += 1ull << req.order;
    out.push_back(p);
    return true;
  }
  return false;
}

std::vector<uint64_t> PhysMem::alloc(const AllocRequest& req) {
  if (req.order < 0 || req.order > MAX_ORDER) einval("alloc: order must be 0.." + std::to_string(MAX_ORDER));
  if (req.kind < 0 || req.kind >= NR_KINDS || req.kind == K_RESERVED) einval("alloc: kind must be movable, unmovable, reclaimable or pinned");
  if (req.nid < 0 || req.nid >= MAX_NUMNODES) einval("alloc: bad node id " + std::to_string(req.nid));
  if (req.highestZone >= NR_ZONES) einval("alloc: bad zone type");
  if (req.highestZone == ZONE_MOVABLE && !kindIsMovable(req.kind)) einval("alloc: only movable allocations may use ZONE_MOVABLE");
  std::vector<uint64_t> out;
  out.reserve(size_t(std::min<uint64_t>(req.count, 1u << 20)));
  const int mt = kindMigratetype(req.kind);
  const int highest = req.highestZone >= 0 ? req.highestZone : kindIsMovable(req.kind) ? int(ZONE_MOVABLE) : int(ZONE_NORMAL);
  const uint64_t pages = 1ull << req.order;
  const uint8_t code = allocCode(req.kind, req.order);
  uint64_t pfn;
  for (uint64_t done = 0; done < req.count;) {
    // The common case, decided as allocWholeBlock and allocOne would: the first zone of the preferred
    // node with room has a block of our migratetype at our order or above (__rmqueue_smallest). Only
    // failing that do the fallbacks, other zones and other nodes of allocOne come into play.
    Zone* z = nullptr;
    for (int zt = highest; zt >= 0 && !req.nodeMask; zt--) {
      Zone* c = const_cast<Zone*>(zone(req.nid, zt));
      if (c && c->freePages >= pages) {
        z = c;
        break;
      }
    }
    if (z) {
      int o = req.order;
      while (o <= MAX_ORDER && z->nrFree[o][mt] == 0) o++;
      if (o > req.order && o <= MAX_ORDER && (1ull << (o - req.order)) <= req.count - done) {
        uint64_t n = carveBlock(*z, req, o, out);
        if (n) {
          done += n;
          continue;
        }
      } else if (o < PB_ORDER) {
        if (takeSmall(*z, o, mt, req, out)) {
          done++;
          continue;
        }
      } else if (o <= MAX_ORDER && popValid(*z, o, mt, pfn)) {
        delFreeBlock(*z, pfn, o);
        expand(*z, pfn, req.order, o);
        writeHeader(pfn, req.order, code);
        z->allocated[req.kind] += pages;
        out.push_back(pfn);
        done++;
        continue;
      }
    }
    uint64_t n = allocWholeBlock(req, req.count - done, out);
    if (n) {
      done += n;
      continue;
    }
    if (!allocOne(req, pfn)) break;
    out.push_back(pfn);
    done++;
  }
  return out;
}

[[noreturn]] static void badPfn(double d, const char* what) {
  einval(std::string(what) + ": pfn " + std::to_string(d) + " is not a valid page frame number");
}

static inline uint64_t pfnArg(double d, const char* what) {
  if (!(d >= 0) || d >= double(MAX_PFN) || d != double(uint64_t(d))) badPfn(d, what);
  return uint64_t(d);
}

// The page code at `pfn` as codeAt reads it (page[1] of a compound block reads as TAIL), given its section.
static inline uint8_t codeIn(const Section& s, uint64_t pfn, uint8_t (*uniform)(uint8_t, uint64_t)) {
  const uint8_t* pg = s.pages.get();
  const uint64_t off = pfn & (SECTION_PAGES - 1);
  uint8_t c = pg ? nibble(pg, off) : uniform(s.uniform, pfn);
  if ((pfn & 1) && isCompoundHead(pg ? nibble(pg, off - 1) : uniform(s.uniform, pfn - 1))) return C_TAIL;
  return c;
}

// Each caller array is read exactly once, into the validated array the second pass works on: a value
// that changed between the passes (shared memory) could otherwise reach the page state unchecked.
void PhysMem::freeBlocks(const double* arg, size_t n) {
  // Validate everything first so a bad pfn frees nothing.
  std::unique_ptr<uint64_t[]> pfns(new uint64_t[n ? n : 1]);
  uint64_t* const out = pfns.get();
  const std::unique_ptr<Section>* const secs = sections_.data();
  const size_t nsec = sections_.size();
  if (n) std::memcpy(out, arg, n * sizeof(double));  // the one reading of the caller's array (bit patterns)
  auto asDouble = [out](size_t j) {
    double d;
    std::memcpy(&d, &out[j], sizeof d);
    return d;
  };
  // Pages whose first touch is started this many elements before they are looked at: the pfns of a
  // bulk free are scattered, and every one is a cache miss otherwise. A bad value is only skipped here;
  // it is refused, in array order with everything else, when its turn comes.
  constexpr size_t AHEAD = 16;
  auto ahead = [&](size_t j) {
    const double d = asDouble(j);
    if (d >= 0 && d < double(MAX_PFN)) prefetchPage(uint64_t(d));
  };
  for (size_t i = 0; i < std::min(n, AHEAD); i++) ahead(i);
  for (size_t i = 0; i < n; i++) {
    if (i + AHEAD < n) ahead(i + AHEAD);
    const uint64_t pfn = out[i] = pfnArg(asDouble(i), "free");
    const Section* s = (pfn >> SECTION_SHIFT) < nsec ? secs[pfn >> SECTION_SHIFT].get() : nullptr;
    if (!s) einval("free: pfn " + hex(pfn) + " is not present", int64_t(pfn));
    if (!isAllocCode(codeIn(*s, pfn, uniformCode))) einval("free: pfn " + hex(pfn) + " is not an allocated block (double free?)", int64_t(pfn));
  }
  for (size_t i = 0; i < std::min(n, AHEAD); i++) prefetchPage(out[i]);
  for (size_t i = 0; i < n; i++) {
    if (i + AHEAD < n) prefetchPage(out[i + AHEAD]);
    const uint64_t pfn = out[i];
    if (!(pfn & (MAX_ORDER_PAGES - 1)) && freeWholeBlock(&out[i], n - i)) {
      i += MAX_ORDER_PAGES - 1;
      continue;
    }
    const Section& s = *sections_[pfn >> SECTION_SHIFT];
    const uint8_t c = codeIn(s, pfn, uniformCode);
    if (!isAllocCode(c))
      einval("free: pfn " + hex(pfn) + " freed twice in one call (" + std::to_string(i) + " blocks were freed before it)", int64_t(pfn));
    const int order = isCompoundHead(c) ? get(s, pfn + 1) : 0;  // orderAt
    const int kind = kindOf(c);
    Zone* z = zoneOf(pfn);
    z->allocated[kind] -= 1ull << order;
    if (kind == K_RESERVED) z->managed += 1ull << order;  // free_reserved_page: now managed
    freeToBuddy(*z, pfn, order);
  }
}

// Freeing all single pages of an aligned max-order block ends, whatever the order of the frees, in one
// free max-order block (merging is confluent and stops at MAX_ORDER), provided both pageblocks agree.
bool PhysMem::freeWholeBlock(const uint64_t* pfns, size_t n) {
  uint64_t head = pfns[0];
  if (n < MAX_ORDER_PAGES || (head & (MAX_ORDER_PAGES - 1)) || head + MAX_ORDER_PAGES - 1 != pfns[MAX_ORDER_PAGES - 1]) return false;
  Section& s = *sec(head);
  if (!s.pages) return false;
  uint8_t c = get(s, head);
  if (!isAllocCode(c) || isCompoundHead(c)) return false;
  int pb = int((head & (SECTION_PAGES - 1)) >> PB_ORDER);
  if (s.pbFlags[pb] != s.pbFlags[pb + 1] || s.pbZone[pb] != s.pbZone[pb + 1]) return false;
  for (size_t i = 1; i < MAX_ORDER_PAGES; i++)
    if (pfns[i] != head + i) return false;
  const uint8_t pair = uint8_t(c | (c << 4));
  const uint8_t* bytes = &s.pages[(head & (SECTION_PAGES - 1)) >> 1];
  for (size_t i = 0; i < MAX_ORDER_PAGES / 2; i++)
    if (bytes[i] != pair) return false;
  Zone* z = zoneOf(head);
  int kind = kindOf(c);
  z->allocated[kind] -= MAX_ORDER_PAGES;
  if (kind == K_RESERVED) z->managed += MAX_ORDER_PAGES;
  fillCodes(head, MAX_ORDER_PAGES, C_TAIL);
  addFreeBlock(*z, head, MAX_ORDER);
  return true;
}

void PhysMem::setPinned(const double* arg, size_t n, bool pinned) {
  const char* what = pinned ? "pin" : "unpin";
  int from = pinned ? K_MOVABLE : K_PINNED, to = pinned ? K_PINNED : K_MOVABLE;
  std::vector<uint64_t> pfns(n);  // read once, as in freeBlocks
  for (size_t i = 0; i < n; i++) {
    uint64_t pfn = pfns[i] = pfnArg(arg[i], what);
    if (!sec(pfn)) einval(std::string(what) + ": pfn " + hex(pfn) + " is not present", int64_t(pfn));
    uint8_t c = codeAt(pfn);
    if (!isAllocCode(c) || kindOf(c) != from)
      einval(std::string(what) + ": pfn " + hex(pfn) + (pinned ? " is not a movable allocation" : " is not pinned"), int64_t(pfn));
  }
  for (uint64_t pfn : pfns) {
    uint8_t c = codeAt(pfn);
    if (kindOf(c) != from) continue;  // listed twice
    int order = orderAt(pfn);
    Zone* z = zoneOf(pfn);
    z->allocated[from] -= 1ull << order;
    z->allocated[to] += 1ull << order;
    writeHeader(pfn, order, allocCode(to, order));
  }
}

// take_page_off_buddy: the free page `pfn` leaves the buddy; the rest of its block stays free.
Zone* PhysMem::takeOffBuddy(uint64_t pfn, const char* what) {
  if (!sec(pfn)) einval(std::string(what) + ": pfn " + hex(pfn) + " is not present", int64_t(pfn));
  uint8_t code;
  int order;
  uint64_t head = findHead(pfn, code, order);
  if (code != C_FREE0 && code != C_FREEH) ebusy(std::string(what) + ": pfn " + hex(pfn) + " is not a free page", int64_t(pfn));
  Zone* z = zoneOf(pfn);
  delFreeBlock(*z, head, order);
  // break_down_buddy_pages: free every half that does not hold the page.
  while (order > 0) {
    order--;
    uint64_t half = 1ull << order;
    if (pfn < head + half) {
      addFreeBlock(*z, head + half, order);
    } else {
      addFreeBlock(*z, head, order);
      head += half;
    }
  }
  return z;
}

void PhysMem::hwpoison(uint64_t pfn) {
  Zone* z = takeOffBuddy(pfn, "hwpoison");
  set(pfn, C_HWPOISON);
  z->hwpoisonPages++;
}

void PhysMem::allocPage(uint64_t pfn, int kind) {
  Zone* z = takeOffBuddy(pfn, "allocPage");
  set(pfn, allocCode(kind, 0));
  z->allocated[kind] += 1;
}

}  // namespace memhp
