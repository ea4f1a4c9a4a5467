// PhysMem implementation. Names follow mm/page_alloc.c, mm/page_isolation.c and mm/memory_hotplug.c.
#include "physmem.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <unordered_set>

namespace memhp {

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", (unsigned long long)v);
  return buf;
}


static int kindMigratetype(int kind) {
  switch (kind) {
    case K_MOVABLE:
    case K_PINNED: return MT_MOVABLE;
    case K_RECLAIMABLE: return MT_RECLAIMABLE;
    default: return MT_UNMOVABLE;
  }
}
static bool kindIsMovable(int kind) { return kind == K_MOVABLE || kind == K_PINNED; }

// ---------------------------------------------------------------------------------------------
// Sections, zones, nibbles

Section& PhysMem::presentSec(uint64_t pfn, const char* what) const {
  Section* s = sec(pfn);
  if (!s) einval(std::string(what) + ": pfn " + hex(pfn) + " is not in a present section", int64_t(pfn));
  return *s;
}

Zone& PhysMem::zoneRef(int nid, int zt) {
  size_t i = size_t(nid) * NR_ZONES + size_t(zt);
  if (i >= zones_.size()) zones_.resize(i + 1);
  if (!zones_[i]) {
    zones_[i] = std::make_unique<Zone>();
    zones_[i]->nid = nid;
    zones_[i]->type = zt;
  }
  return *zones_[i];
}

const Zone* PhysMem::zone(int nid, int zt) const {
  size_t i = size_t(nid) * NR_ZONES + size_t(zt);
  return i < zones_.size() ? zones_[i].get() : nullptr;
}

Zone* PhysMem::zoneOf(uint64_t pfn) const {
  const Section* s = sec(pfn);
  if (!s) return nullptr;
  uint8_t zt = s->pbZone[(pfn & (SECTION_PAGES - 1)) >> PB_ORDER];
  if (zt == NO_ZONE) return nullptr;
  size_t i = size_t(s->nid) * NR_ZONES + zt;
  return i < zones_.size() ? zones_[i].get() : nullptr;
}

uint8_t PhysMem::uniformCode(uint8_t u, uint64_t pfn) {
  switch (u) {
    case U_PAGE_OFFLINE: return C_PAGE_OFFLINE;
    case U_RESERVED: return allocCode(K_RESERVED, 0);
    case U_FREE_MAX: {
      uint64_t off = pfn & (MAX_ORDER_PAGES - 1);
      return off == 0 ? uint8_t(C_FREEH) : off == 1 ? uint8_t(MAX_ORDER) : uint8_t(C_TAIL);
    }
    default: return C_UNINIT;
  }
}

void PhysMem::materialise(Section& s) {
  s.pages.reset(new uint8_t[SECTION_PAGES / 2]);
  materialisedSections_++;
  if (s.uniform == U_FREE_MAX) {
    std::memset(s.pages.get(), C_TAIL | (C_TAIL << 4), SECTION_PAGES / 2);
    for (uint64_t i = 0; i < SECTION_PAGES; i += MAX_ORDER_PAGES) s.pages[i >> 1] = uint8_t(C_FREEH | (MAX_ORDER << 4));
  } else {
    uint8_t c = uniformCode(s.uniform, 0);
    std::memset(s.pages.get(), c | (c << 4), SECTION_PAGES / 2);
  }
  s.uniform = U_NONE;
}

void PhysMem::makeUniform(Section& s, uint8_t u) {
  if (s.pages) {
    s.pages.reset();
    materialisedSections_--;
  }
  s.uniform = u;
}

void PhysMem::fillCodes(uint64_t start, uint64_t nr, uint8_t code) {
  uint64_t end = start + nr;
  for (uint64_t pfn = start; pfn < end;) {
    Section& s = *sec(pfn);
    uint64_t secEnd = std::min(end, (pfn | (SECTION_PAGES - 1)) + 1);
    bool whole = (pfn & (SECTION_PAGES - 1)) == 0 && secEnd - pfn == SECTION_PAGES;
    uint8_t u = code == C_UNINIT ? uint8_t(U_UNINIT) : code == C_PAGE_OFFLINE ? uint8_t(U_PAGE_OFFLINE)
              : code == allocCode(K_RESERVED, 0) ? uint8_t(U_RESERVED) : uint8_t(U_NONE);
    if (whole && u != U_NONE) {
      makeUniform(s, u);
    } else {
      if (!s.pages) {
        if (s.uniform != U_FREE_MAX && uniformCode(s.uniform, 0) == code) { pfn = secEnd; continue; }
        materialise(s);
      }
      uint64_t p = pfn;
      if (p & 1) set(s, p++, code);
      uint64_t evenEnd = secEnd & ~1ull;
      if (evenEnd > p) {
        std::memset(&s.pages[(p & (SECTION_PAGES - 1)) >> 1], code | (code << 4), (evenEnd - p) >> 1);
        p = evenEnd;
      }
      if (p < secEnd) set(s, p, code);
    }
    pfn = secEnd;
  }
}

void PhysMem::checkRange(uint64_t start, uint64_t nr, const char* what) const {
  if (nr == 0) einval(std::string(what) + ": empty range");
  if (start >= MAX_PFN || nr > MAX_PFN - start) einval(std::string(what) + ": range beyond MAX_PHYSMEM_BITS", int64_t(start));
  for (uint64_t s = start >> SECTION_SHIFT; s <= (start + nr - 1) >> SECTION_SHIFT; s++) {
    if (!sec(s << SECTION_SHIFT)) {
      uint64_t p = std::max(start, s << SECTION_SHIFT);
      einval(std::string(what) + ": pfn " + hex(p) + " is not in a present section", int64_t(p));
    }
  }
}

void PhysMem::addSections(uint64_t start, uint64_t nr, int nid) {
  if (nr == 0 || (start | nr) & (SECTION_PAGES - 1)) einval("addSections: range must be section aligned (128 MiB)", int64_t(start));
  if (start >= MAX_PFN || nr > MAX_PFN - start) einval("addSections: range beyond MAX_PHYSMEM_BITS", int64_t(start));
  if (nid < 0 || nid >= MAX_NUMNODES) einval("addSections: bad node id " + std::to_string(nid));
  uint64_t first = start >> SECTION_SHIFT, last = (start + nr) >> SECTION_SHIFT;
  for (uint64_t i = first; i < last; i++)
    if (i < sections_.size() && sections_[i]) eexist("addSections: section at pfn " + hex(i << SECTION_SHIFT) + " is already present", int64_t(i << SECTION_SHIFT));
  if (sections_.size() < last) sections_.resize(last);
  sectionNodes_ = std::max(sectionNodes_, nid + 1);
  for (uint64_t i = first; i < last; i++) {
    auto s = std::make_unique<Section>();
    s->nid = uint16_t(nid);
    std::memset(s->pbFlags, MT_MOVABLE, sizeof s->pbFlags);
    std::memset(s->pbZone, NO_ZONE, sizeof s->pbZone);
    sections_[i] = std::move(s);
  }
}

void PhysMem::removeSections(uint64_t start, uint64_t nr) {
  if (nr == 0 || (start | nr) & (SECTION_PAGES - 1)) einval("removeSections: range must be section aligned (128 MiB)", int64_t(start));
  checkRange(start, nr, "removeSections");
  for (uint64_t pfn = start; pfn < start + nr; pfn += SECTION_PAGES) {
    const Section& s = *sec(pfn);
    for (int i = 0; i < PB_PER_SECTION; i++)
      if (s.pbZone[i] != NO_ZONE) ebusy("removeSections: pfn " + hex(pfn + uint64_t(i) * PB_PAGES) + " still belongs to a zone", int64_t(pfn + uint64_t(i) * PB_PAGES));
  }
  for (uint64_t pfn = start; pfn < start + nr; pfn += SECTION_PAGES) {
    Section& s = *sec(pfn);
    if (s.pages) materialisedSections_--;
    sections_[pfn >> SECTION_SHIFT].reset();
  }
  while (!sections_.empty() && !sections_.back()) sections_.pop_back();
}

// ---------------------------------------------------------------------------------------------
// Blocks

uint8_t PhysMem::codeAt(uint64_t pfn) const {
  const Section& s = *sec(pfn);
  uint8_t c = get(s, pfn);
  // An odd pfn right after a compound head is that block's page[1]: its nibble is an order.
  if ((pfn & 1) && isCompoundHead(get(s, pfn - 1))) return C_TAIL;
  return c;
}

int PhysMem::orderAt(uint64_t head) const {
  const Section& s = *sec(head);
  return isCompoundHead(get(s, head)) ? get(s, head + 1) : 0;
}

uint64_t PhysMem::findHead(uint64_t pfn, uint8_t& code, int& order) const {
  const Section& s = *sec(pfn);
  uint8_t c = get(s, pfn);
  if (pfn & 1) {
    uint8_t prev = get(s, pfn - 1);
    if (isCompoundHead(prev)) {
      code = prev;
      order = c;
      return pfn - 1;
    }
  }
  if (c != C_TAIL) {
    code = c;
    order = isCompoundHead(c) ? get(s, pfn + 1) : 0;
    return pfn;
  }
  for (int k = 1; k <= MAX_ORDER; k++) {
    uint64_t h = pfn & ~((1ull << k) - 1);
    uint8_t ch = get(s, h);
    if (isCompoundHead(ch)) {
      int o = get(s, h + 1);
      if (h + (1ull << o) > pfn) {
        code = ch;
        order = o;
        return h;
      }
    }
  }
  code = C_TAIL;  // corrupt encoding; checkInvariants reports it
  order = 0;
  return pfn;
}

void PhysMem::writeHeader(uint64_t head, int order, uint8_t headCode) {
  Section& s = *sec(head);
  set(s, head, headCode);
  if (order) set(s, head + 1, uint8_t(order));
}

int PhysMem::listOf(uint64_t pfn) const {
  const Section& s = *sec(pfn);
  uint8_t f = s.pbFlags[(pfn & (SECTION_PAGES - 1)) >> PB_ORDER];
  return (f & 4) ? MT_ISOLATE : (f & 3);
}

bool PhysMem::isFreeBlock(uint64_t pfn, int order) const {
  const Section* s = sec(pfn);
  if (!s) return false;
  if (order == 0) return codeAt(pfn) == C_FREE0;
  return get(*s, pfn) == C_FREEH && get(*s, pfn + 1) == order;
}

bool PhysMem::sameZone(uint64_t a, uint64_t b) const {
  const Section* sa = sec(a);
  const Section* sb = sec(b);
  return sa->nid == sb->nid &&
         sa->pbZone[(a & (SECTION_PAGES - 1)) >> PB_ORDER] == sb->pbZone[(b & (SECTION_PAGES - 1)) >> PB_ORDER];
}

// Visit every block (head, code, order) overlapping [start, end), in pfn order. A block that starts
// before `start` is visited with its real head. Re-reads the state at each step, so the callback may
// change the block it is given (free it, migrate it).
template <typename F>
void PhysMem::forEachBlock(uint64_t start, uint64_t end, F&& fn) {
  for (uint64_t pfn = start; pfn < end;) {
    Section& s = *sec(pfn);
    if (!s.pages && s.uniform != U_FREE_MAX) {  // a uniform run of single pages: one call
      uint64_t secEnd = std::min(end, (pfn | (SECTION_PAGES - 1)) + 1);
      fn(pfn, uniformCode(s.uniform, pfn), 0, secEnd - pfn);
      pfn = secEnd;
      continue;
    }
    uint8_t code;
    int order;
    uint64_t head = findHead(pfn, code, order);
    uint64_t next = head + (1ull << order);
    fn(head, code, order, uint64_t(1));
    pfn = next;
  }
}

template <typename F>
void PhysMem::forEachBlockConst(uint64_t start, uint64_t end, F&& fn) const {
  const_cast<PhysMem*>(this)->forEachBlock(start, end, std::forward<F>(fn));
}

// ---------------------------------------------------------------------------------------------
// Free lists

void PhysMem::account(Zone& z, uint64_t head, int order, int list, int sign) {
  uint64_t pages = 1ull << order;
  z.nrFree[order][list] += uint64_t(int64_t(sign));
  if (list == MT_ISOLATE) z.isolatedFreePages += uint64_t(int64_t(sign) * int64_t(pages));
  else z.freePages += uint64_t(int64_t(sign) * int64_t(pages));
  if (order == MAX_ORDER) {
    Section& s = *sec(head);
    s.freeMaxPages += uint32_t(sign * int(MAX_ORDER_PAGES));
    // Whole section free in max-order blocks: that is exactly the U_FREE_MAX encoding.
    if (s.freeMaxPages == SECTION_PAGES && s.pages) makeUniform(s, U_FREE_MAX);
  }
}

void PhysMem::addFreeBlock(Zone& z, uint64_t head, int order) {
  writeHeader(head, order, order ? C_FREEH : C_FREE0);
  int list = listOf(head);
  auto& st = z.stack[order][list];
  st.push_back(head);
  account(z, head, order, list, +1);
  if (st.size() > 2 * z.nrFree[order][list] + 64) compact(z, order, list);
}

void PhysMem::delFreeBlock(Zone& z, uint64_t head, int order) {
  int list = listOf(head);
  account(z, head, order, list, -1);
  // Bound the stale entries of a list that only shrinks (e.g. while memory is offlined).
  if (z.stack[order][list].size() > 4 * z.nrFree[order][list] + 1024) compact(z, order, list);
}

bool PhysMem::entryValid(const Zone& z, uint64_t pfn, int order, int list) const {
  const Section* s = sec(pfn);
  if (!s || s->nid != z.nid) return false;
  if (s->pbZone[(pfn & (SECTION_PAGES - 1)) >> PB_ORDER] != z.type) return false;
  return isFreeBlock(pfn, order) && listOf(pfn) == list;
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

void PhysMem::changePageblock(uint64_t pb, uint8_t flags) {
  Section& s = *sec(pb);
  int idx = int((pb & (SECTION_PAGES - 1)) >> PB_ORDER);
  if (s.pbFlags[idx] == flags) return;
  Zone* z = zoneOf(pb);
  std::vector<std::pair<uint64_t, int>> heads;
  if (z) {
    forEachBlock(pb, pb + PB_PAGES, [&](uint64_t h, uint8_t c, int o, uint64_t run) {
      if ((c == C_FREE0 || c == C_FREEH) && h >= pb) {
        heads.emplace_back(h, o);
        delFreeBlock(*z, h, o);
      }
    });
  }
  s.pbFlags[idx] = flags;
  for (auto& [h, o] : heads) addFreeBlock(*z, h, o);
}

// __free_one_page: merge with free buddies of the same zone. Above pageblock order the buddy lies in
// another pageblock: isolated and non-isolated blocks never merge; otherwise the buddy's pageblock takes
// our migratetype (as the kernel does since 6.10), keeping every pageblock of a block alike.
void PhysMem::freeToBuddy(Zone& z, uint64_t pfn, int order) {
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

void PhysMem::setPageblockType(uint64_t pbStart, int mt) {
  const Section& s = *sec(pbStart);
  uint8_t f = s.pbFlags[(pbStart & (SECTION_PAGES - 1)) >> PB_ORDER];
  changePageblock(pbStart, uint8_t((f & 4) | mt));
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

int64_t PhysMem::allocatedStraddling(uint64_t boundary) const {
  if ((boundary & (MAX_ORDER_PAGES - 1)) == 0 || !sec(boundary)) return -1;
  uint8_t code;
  int order;
  uint64_t head = findHead(boundary, code, order);
  return head < boundary && isAllocCode(code) ? int64_t(head) : -1;
}

void PhysMem::splitStraddling(uint64_t boundary) {
  if ((boundary & (MAX_ORDER_PAGES - 1)) == 0 || !sec(boundary)) return;
  uint8_t code;
  int order;
  uint64_t head = findHead(boundary, code, order);
  if (head >= boundary || (code != C_FREEH && code != C_FREE0)) return;
  Zone* z = zoneOf(head);
  if (!z) return;
  delFreeBlock(*z, head, order);
  // Split down to pageblock order on both sides of the boundary.
  while (order > PB_ORDER) {
    order--;
    addFreeBlock(*z, head + (1ull << order), order);
  }
  addFreeBlock(*z, head, order);
}

// ---------------------------------------------------------------------------------------------
// Hotplug page work

void PhysMem::initRange(uint64_t start, uint64_t nr, int nid, int zt, bool reserved, bool isolate, int mt) {
  checkRange(start, nr, "initRange");
  if (zt < 0 || zt >= NR_ZONES) einval("initRange: bad zone type");
  if (mt < 0 || mt >= NR_PB_TYPES) einval("initRange: bad migratetype");
  uint64_t end = start + nr;
  for (uint64_t pfn = start; pfn < end; pfn = ((pfn >> PB_ORDER) + 1) << PB_ORDER) {
    const Section& s = *sec(pfn);
    if (s.nid != nid) einval("initRange: pfn " + hex(pfn) + " is on node " + std::to_string(s.nid) + ", not " + std::to_string(nid), int64_t(pfn));
    uint8_t pz = s.pbZone[(pfn & (SECTION_PAGES - 1)) >> PB_ORDER];
    if (pz != NO_ZONE && pz != zt) einval("initRange: pageblock at " + hex(pfn & ~(PB_PAGES - 1)) + " already belongs to zone " + ZONE_NAMES[pz], int64_t(pfn));
  }
  forEachBlockConst(start, end, [&](uint64_t h, uint8_t c, int o, uint64_t run) {
    if (c != C_UNINIT) ebusy("initRange: pfn " + hex(std::max(h, start)) + " is already initialised", int64_t(std::max(h, start)));
  });
  // memmap_init_range sets the migratetype at pageblock-aligned pfns only: a pageblock whose first pfn
  // lies before the range keeps its type. A pageblock already in the zone may hold free pages of an
  // earlier range, so its new type goes through changePageblock, which moves them to the right list.
  const uint8_t flags = uint8_t(mt | (isolate ? 4 : 0));
  for (uint64_t pfn = start & ~(PB_PAGES - 1); pfn < end; pfn += PB_PAGES) {
    Section& s = *sec(pfn);
    int idx = int((pfn & (SECTION_PAGES - 1)) >> PB_ORDER);
    if (s.pbZone[idx] == NO_ZONE) {  // no initialised page in it yet, so no free block either
      s.pbZone[idx] = uint8_t(zt);
      s.pbFlags[idx] = flags;
    } else if (pfn >= start) {
      changePageblock(pfn, flags);
    }
  }
  fillCodes(start, nr, reserved ? allocCode(K_RESERVED, 0) : uint8_t(C_PAGE_OFFLINE));
  Zone& z = zoneRef(nid, zt);
  if (reserved) z.allocated[K_RESERVED] += nr;
  if (z.spanned == 0) {
    z.start = start;
    z.spanned = nr;
  } else {
    uint64_t zs = std::min(z.start, start), ze = std::max(z.end(), end);
    z.start = zs;
    z.spanned = ze - zs;
  }
}

void PhysMem::initMemmapOnMemory(uint64_t start, uint64_t nr, int nid, int zt) {
  // The vmemmap pages are PageReserved in UNMOVABLE pageblocks (mhp_init_memmap_on_memory).
  initRange(start, nr, nid, zt, true, false, MT_UNMOVABLE);
}

void PhysMem::onlinePagesRange(uint64_t start, uint64_t nr, bool markOnline) {
  checkRange(start, nr, "onlinePagesRange");
  uint64_t end = start + nr;
  Zone* z = zoneOf(start);
  if (!z) einval("onlinePagesRange: pfn " + hex(start) + " is not in a zone", int64_t(start));
  const uint8_t reservedCode = allocCode(K_RESERVED, 0);
  forEachBlockConst(start, end, [&](uint64_t h, uint8_t c, int o, uint64_t run) {
    if (c != C_PAGE_OFFLINE && c != reservedCode) ebusy("onlinePagesRange: pfn " + hex(std::max(h, start)) + " is not an initialised, unused page", int64_t(std::max(h, start)));
    if (zoneOf(h) != z) einval("onlinePagesRange: range spans several zones", int64_t(h));
  });
  for (uint64_t pfn = start; pfn < end;) {
    Section& s = *sec(pfn);
    if ((pfn & (SECTION_PAGES - 1)) == 0 && end - pfn >= SECTION_PAGES && !s.pages &&
        (s.uniform == U_PAGE_OFFLINE || s.uniform == U_RESERVED)) {
      // A whole untouched section: 32 max-order blocks, which cannot merge any further.
      if (s.uniform == U_RESERVED) z->allocated[K_RESERVED] -= SECTION_PAGES;
      makeUniform(s, U_FREE_MAX);
      for (uint64_t h = pfn; h < pfn + SECTION_PAGES; h += MAX_ORDER_PAGES) {
        int list = listOf(h);
        z->stack[MAX_ORDER][list].push_back(h);
        account(*z, h, MAX_ORDER, list, +1);
      }
      z->managed += SECTION_PAGES;
      pfn += SECTION_PAGES;
      continue;
    }
    int order = pfn ? std::min(MAX_ORDER, __builtin_ctzll(pfn)) : MAX_ORDER;
    while (pfn + (1ull << order) > end) order--;
    uint64_t n = 1ull << order;
    if (codeAt(pfn) == reservedCode) {
      // Reserved pages are single pages, so the whole chunk is reserved (checked above).
      z->allocated[K_RESERVED] -= n;
    }
    fillCodes(pfn, n, C_TAIL);
    z->managed += n;
    freeToBuddy(*z, pfn, order);
    pfn += n;
  }
  if (markOnline)
    for (uint64_t pfn = start & ~(SECTION_PAGES - 1); pfn < end; pfn += SECTION_PAGES) sec(pfn)->online = true;
}

void PhysMem::markSectionsOnline(uint64_t start, uint64_t nr) {
  checkRange(start, nr, "markSectionsOnline");
  if ((start | nr) & (SECTION_PAGES - 1)) einval("markSectionsOnline: range must be section aligned (128 MiB)", int64_t(start));
  for (uint64_t pfn = start; pfn < start + nr; pfn += SECTION_PAGES) sec(pfn)->online = true;
}

void PhysMem::adjustPresentPages(uint64_t pfn, int64_t delta) {
  Zone* z = zoneOf(pfn);
  if (!z) einval("adjustPresentPages: pfn " + hex(pfn) + " is not in a zone", int64_t(pfn));
  if (delta < 0 && uint64_t(-delta) > z->present) einval("adjustPresentPages: present pages would go negative");
  // Present pages lie inside the zone's span (adjust_present_page_count runs after the span grew).
  if (delta > 0 && z->present + uint64_t(delta) > z->spanned) einval("adjustPresentPages: present pages would exceed the zone's span", int64_t(pfn));
  z->present += uint64_t(delta);
}

int64_t PhysMem::firstUnmovable(uint64_t pb, int zt) const {
  int64_t bad = -1;
  const uint8_t reservedCode = allocCode(K_RESERVED, 0);
  forEachBlockConst(pb, pb + PB_PAGES, [&](uint64_t h, uint8_t c, int o, uint64_t run) {
    if (bad >= 0 || !isAllocCode(c)) return;  // free, PageOffline, HWPoison: movable in offline mode
    int kind = kindOf(c);
    bool unmovable = kind == K_RESERVED || c == reservedCode ||
                     (zt != ZONE_MOVABLE && !kindIsMovable(kind));
    if (unmovable) bad = int64_t(std::max(h, pb));
  });
  return bad;
}

void PhysMem::isolateRange(uint64_t start, uint64_t nr, int undoMt) {
  checkRange(start, nr, "isolateRange");
  if ((start | nr) & (PB_PAGES - 1)) einval("isolateRange: range must be pageblock aligned", int64_t(start));
  uint64_t end = start + nr;
  for (uint64_t pb = start; pb < end; pb += PB_PAGES)
    if (!zoneOf(pb)) einval("isolateRange: pfn " + hex(pb) + " is not in a zone", int64_t(pb));
  // isolate_single_pageblock: a block in use across either end would end up in pageblocks of two
  // kinds; the kernel fails the isolation with EBUSY when it cannot move such a page out of the way.
  for (uint64_t edge : {start, end}) {
    int64_t head = allocatedStraddling(edge);
    if (head >= 0) ebusy("failure to isolate range: the block in use at pfn " + hex(uint64_t(head)) + " crosses the range boundary " + hex(edge), head);
  }
  splitStraddling(start);
  splitStraddling(end);
  for (uint64_t pb = start; pb < end; pb += PB_PAGES) {
    const Section& s = *sec(pb);
    int idx = int((pb & (SECTION_PAGES - 1)) >> PB_ORDER);
    uint8_t f = s.pbFlags[idx];
    int64_t bad = (f & 4) ? int64_t(pb) : firstUnmovable(pb, s.pbZone[idx]);
    if (bad >= 0) {
      if (pb > start) undoIsolate(start, pb - start, undoMt);
      ebusy((f & 4) ? "failure to isolate range: pageblock " + hex(pb) + " is already isolated"
                    : "failure to isolate range: unmovable page at pfn " + hex(uint64_t(bad)),
            bad);
    }
    changePageblock(pb, uint8_t(f | 4));
  }
}

void PhysMem::undoIsolateRange(uint64_t start, uint64_t nr, int mt) {
  checkRange(start, nr, "undoIsolateRange");
  if ((start | nr) & (PB_PAGES - 1)) einval("undoIsolateRange: range must be pageblock aligned", int64_t(start));
  if (mt >= NR_PB_TYPES) einval("undoIsolateRange: bad migratetype");
  // undo_isolate_page_range gets the range start_isolate_page_range isolated, so no block crosses its
  // ends: a block in use across one is refused, a free one is split there as isolation would have.
  for (uint64_t edge : {start, start + nr}) {
    int64_t head = allocatedStraddling(edge);
    if (head >= 0) einval("undoIsolateRange: the block in use at pfn " + hex(uint64_t(head)) + " crosses the range boundary " + hex(edge) + " (undo the range that was isolated)", head);
  }
  splitStraddling(start);
  splitStraddling(start + nr);
  undoIsolate(start, nr, mt);
}

// The page work of undo_isolate_page_range on a range already checked.
void PhysMem::undoIsolate(uint64_t start, uint64_t nr, int mt) {
  for (uint64_t pb = start; pb < start + nr; pb += PB_PAGES) {
    const Section& s = *sec(pb);
    uint8_t f = s.pbFlags[(pb & (SECTION_PAGES - 1)) >> PB_ORDER];
    if (!(f & 4)) continue;
    changePageblock(pb, uint8_t(mt >= 0 ? mt : (f & 3)));
    // Free blocks were kept from merging across the isolation boundary: free a pageblock-order block
    // again so it merges with its buddy now (unset_migratetype_isolate does the same).
    Zone* z = zoneOf(pb);
    if (z && isFreeBlock(pb, PB_ORDER)) {
      delFreeBlock(*z, pb, PB_ORDER);
      freeToBuddy(*z, pb, PB_ORDER);
    }
  }
}

int64_t PhysMem::testPagesIsolated(uint64_t start, uint64_t nr) const {
  checkRange(start, nr, "testPagesIsolated");
  uint64_t end = start + nr;
  for (uint64_t pb = start & ~(PB_PAGES - 1); pb < end; pb += PB_PAGES)
    if (!pageblockIsolated(pb)) return int64_t(std::max(pb, start));
  int64_t bad = -1;
  forEachBlockConst(start, end, [&](uint64_t h, uint8_t c, int, uint64_t) {
    if (bad < 0 && c != C_FREE0 && c != C_FREEH && c != C_HWPOISON && c != C_PAGE_OFFLINE) bad = int64_t(std::max(h, start));
  });
  return bad;
}

int64_t PhysMem::scanMovablePages(uint64_t start, uint64_t nr) const {
  checkRange(start, nr, "scanMovablePages");
  int64_t found = -1;
  forEachBlockConst(start, start + nr, [&](uint64_t h, uint8_t c, int, uint64_t) {
    if (found < 0 && isAllocCode(c) && kindIsMovable(kindOf(c))) found = int64_t(std::max(h, start));
  });
  return found;
}

MigrateResult PhysMem::migrateRange(uint64_t start, uint64_t nr, const std::vector<uint8_t>& nodeMask) {
  checkRange(start, nr, "migrateRange");
  uint64_t end = start + nr;
  for (uint64_t pb = start & ~(PB_PAGES - 1); pb < end; pb += PB_PAGES)
    if (!pageblockIsolated(pb)) einval("migrateRange: pageblock " + hex(pb) + " is not isolated (targets could land in the range)", int64_t(pb));
  MigrateResult r;
  forEachBlock(start, end, [&](uint64_t h, uint8_t c, int o, uint64_t run) {
    if (!isAllocCode(c)) return;
    int kind = kindOf(c);
    if (kind == K_PINNED) { r.pinned++; return; }
    if (kind != K_MOVABLE) return;
    AllocRequest req;
    req.nid = sec(h)->nid;
    req.order = o;
    req.kind = K_MOVABLE;
    req.count = 1;
    req.nodeMask = &nodeMask;
    uint64_t to;
    if (!allocOne(req, to)) { r.enomem++; return; }
    Zone* z = zoneOf(h);
    z->allocated[K_MOVABLE] -= 1ull << o;
    freeToBuddy(*z, h, o);
    r.moved.push_back({h, to, o});
  });
  return r;
}

// __offline_isolated_pages trusts offline_pages for its range: pageblock aligned, in one zone
// (test_pages_in_a_zone), every pageblock isolated and every page free, hwpoisoned or PageOffline
// (test_pages_isolated), and no free buddy crossing either end (start_isolate_page_range split those
// in isolate_single_pageblock). A caller of this public entry point gets EINVAL/EBUSY instead.
uint64_t PhysMem::offlineIsolatedPages(uint64_t start, uint64_t nr) {
  checkRange(start, nr, "offlineIsolatedPages");
  if ((start | nr) & (PB_PAGES - 1)) einval("offlineIsolatedPages: range must be pageblock aligned", int64_t(start));
  uint64_t end = start + nr;
  Zone* z = zoneOf(start);
  for (uint64_t pb = start; pb < end; pb += PB_PAGES)
    if (zoneOf(pb) != z) einval("offlineIsolatedPages: range spans several zones", int64_t(pb));
  int64_t bad = testPagesIsolated(start, nr);
  if (bad >= 0) ebusy("offlineIsolatedPages: pfn " + hex(uint64_t(bad)) + " is not isolated and free", bad);
  for (uint64_t edge : {start, end - 1}) {
    uint8_t code;
    int order;
    uint64_t head = findHead(edge, code, order);
    if (head < start || head + (1ull << order) > end)
      einval("offlineIsolatedPages: the range " + hex(start) + "-" + hex(end) + " splits the free order-" + std::to_string(order) +
                 " block at " + hex(head) + " (isolate and offline on block boundaries)",
             int64_t(head));
  }
  // Sections go offline first, as in the kernel (pfn_to_online_page stops returning them). Like
  // offline_mem_sections, every section the range reaches, in steps of a section from its start: with
  // memmap_on_memory the range starts after the block's vmemmap pages, and their section goes too.
  for (uint64_t pfn = start; pfn < end; pfn += SECTION_PAGES) sec(pfn)->online = false;
  uint64_t managed = 0;
  forEachBlock(start, end, [&](uint64_t h, uint8_t c, int o, uint64_t run) {
    Zone* bz = zoneOf(h);
    if (c == C_FREE0 || c == C_FREEH) {
      delFreeBlock(*bz, h, o);
      managed += 1ull << o;
    } else if (c == C_HWPOISON) {
      bz->hwpoisonPages--;
      managed++;
    }
  });
  fillCodes(start, nr, C_UNINIT);
  if (z) z->managed -= managed;
  return managed;
}

void PhysMem::removeRangeFromZone(uint64_t start, uint64_t nr) {
  checkRange(start, nr, "removeRangeFromZone");
  uint64_t end = start + nr;
  Zone* z = zoneOf(start);
  if (!z) einval("removeRangeFromZone: pfn " + hex(start) + " is not in a zone", int64_t(start));
  const uint8_t reservedCode = allocCode(K_RESERVED, 0);
  uint64_t reserved = 0;
  forEachBlockConst(start, end, [&](uint64_t h, uint8_t c, int o, uint64_t run) {
    if (c == reservedCode) reserved += run;
    else if (c != C_UNINIT && c != C_PAGE_OFFLINE) ebusy("removeRangeFromZone: pfn " + hex(std::max(h, start)) + " is still in use or free in the buddy", int64_t(std::max(h, start)));
    if (c != C_UNINIT && zoneOf(h) != z) einval("removeRangeFromZone: range spans several zones", int64_t(h));
  });
  z->allocated[K_RESERVED] -= reserved;
  fillCodes(start, nr, C_UNINIT);
  for (uint64_t pb = start & ~(PB_PAGES - 1); pb < end; pb += PB_PAGES) {
    Section& s = *sec(pb);
    int idx = int((pb & (SECTION_PAGES - 1)) >> PB_ORDER);
    // A pageblock partly outside the range keeps its zone.
    if (pb >= start && pb + PB_PAGES <= end) {
      s.pbZone[idx] = NO_ZONE;
      s.pbFlags[idx] = MT_MOVABLE;
    }
  }
  shrinkZoneSpan(*z, start, end);
}

// find_smallest_section_pfn / find_biggest_section_pfn: the first (last) online pfn of this zone and
// node in the range, scanned in 2 MiB sub-section steps; 0 when there is none (the kernel's quirk:
// pfn 0 reads as "not found").
uint64_t PhysMem::findSmallestSectionPfn(const Zone& z, uint64_t from, uint64_t to) const {
  for (uint64_t pfn = from; pfn < to;) {
    const Section* s = sec(pfn);
    if (!s || !s->online || s->nid != z.nid) {
      pfn = ((pfn >> SECTION_SHIFT) + 1) << SECTION_SHIFT;
      continue;
    }
    if (s->pbZone[(pfn & (SECTION_PAGES - 1)) >> PB_ORDER] == z.type) return pfn;
    pfn += PB_PAGES;
  }
  return 0;
}

uint64_t PhysMem::findBiggestSectionPfn(const Zone& z, uint64_t from, uint64_t to) const {
  if (to == 0) return 0;
  for (uint64_t pfn = to - 1; pfn >= from;) {
    const Section* s = sec(pfn);
    if (!s || !s->online || s->nid != z.nid) {
      uint64_t secStart = pfn & ~(SECTION_PAGES - 1);
      if (secStart == 0 || secStart <= from) break;
      pfn = secStart - 1;
      continue;
    }
    if (s->pbZone[(pfn & (SECTION_PAGES - 1)) >> PB_ORDER] == z.type) return pfn;
    if (pfn < from + PB_PAGES) break;
    pfn -= PB_PAGES;
  }
  return 0;
}

void PhysMem::shrinkZoneSpan(Zone& z, uint64_t start, uint64_t end) {
  if (z.start == start) {
    uint64_t pfn = findSmallestSectionPfn(z, end, z.end());
    if (pfn) {
      z.spanned = z.end() - pfn;
      z.start = pfn;
    } else {
      z.start = 0;
      z.spanned = 0;
    }
  } else if (z.end() == end) {
    uint64_t pfn = findBiggestSectionPfn(z, z.start, start);
    if (pfn) {
      z.spanned = pfn - z.start + 1;
    } else {
      z.start = 0;
      z.spanned = 0;
    }
  }
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
  uint64_t head;
  if (!popValid(*z, o, mt, head)) return 0;
  delFreeBlock(*z, head, o);
  if (req.order == 0) {
    fillCodes(head, 1ull << o, allocCode(req.kind, 0));
  } else {
    for (uint64_t p = head; p < head + (1ull << o); p += 1ull << req.order) writeHeader(p, req.order, allocCode(req.kind, req.order));
  }
  for (uint64_t p = head; p < head + (1ull << o); p += 1ull << req.order) out.push_back(p);
  z->allocated[req.kind] += 1ull << o;
  return pieces;
}

std::vector<uint64_t> PhysMem::alloc(const AllocRequest& req) {
  if (req.order < 0 || req.order > MAX_ORDER) einval("alloc: order must be 0.." + std::to_string(MAX_ORDER));
  if (req.kind < 0 || req.kind >= NR_KINDS || req.kind == K_RESERVED) einval("alloc: kind must be movable, unmovable, reclaimable or pinned");
  if (req.nid < 0 || req.nid >= MAX_NUMNODES) einval("alloc: bad node id " + std::to_string(req.nid));
  if (req.highestZone >= NR_ZONES) einval("alloc: bad zone type");
  if (req.highestZone == ZONE_MOVABLE && !kindIsMovable(req.kind)) einval("alloc: only movable allocations may use ZONE_MOVABLE");
  std::vector<uint64_t> out;
  out.reserve(size_t(std::min<uint64_t>(req.count, 1u << 20)));
  uint64_t pfn;
  for (uint64_t done = 0; done < req.count;) {
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

static uint64_t pfnArg(double d, const char* what) {
  if (!(d >= 0) || d >= double(MAX_PFN) || d != double(uint64_t(d))) einval(std::string(what) + ": pfn " + std::to_string(d) + " is not a valid page frame number");
  return uint64_t(d);
}

// Each caller array is read exactly once, into the validated vector the second pass works on: a value
// that changed between the passes (shared memory) could otherwise reach the page state unchecked.
void PhysMem::freeBlocks(const double* arg, size_t n) {
  // Validate everything first so a bad pfn frees nothing.
  std::vector<uint64_t> pfns(n);
  for (size_t i = 0; i < n; i++) {
    uint64_t pfn = pfns[i] = pfnArg(arg[i], "free");
    if (!sec(pfn)) einval("free: pfn " + hex(pfn) + " is not present", int64_t(pfn));
    uint8_t c = codeAt(pfn);
    if (!isAllocCode(c)) einval("free: pfn " + hex(pfn) + " is not an allocated block (double free?)", int64_t(pfn));
  }
  for (size_t i = 0; i < n; i++) {
    uint64_t pfn = pfns[i];
    if (freeWholeBlock(&pfns[i], n - i)) {
      i += MAX_ORDER_PAGES - 1;
      continue;
    }
    uint8_t c = codeAt(pfn);
    if (!isAllocCode(c)) einval("free: pfn " + hex(pfn) + " freed twice in one call (" + std::to_string(i) + " blocks were freed before it)", int64_t(pfn));
    int order = orderAt(pfn);
    int kind = kindOf(c);
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

// ---------------------------------------------------------------------------------------------
// Introspection

void PhysMem::nodeSpan(int nid, uint64_t& start, uint64_t& spanned) const {
  uint64_t s = 0, e = 0;
  for (int zt = 0; zt < NR_ZONES; zt++) {
    const Zone* z = zone(nid, zt);
    if (!z || z->spanned == 0) continue;
    if (e == 0) {
      s = z->start;
      e = z->end();
    } else {
      s = std::min(s, z->start);
      e = std::max(e, z->end());
    }
  }
  start = s;
  spanned = e - s;
}

int PhysMem::pageblockMigratetype(uint64_t pfn) const {
  const Section& s = presentSec(pfn, "pageblock");
  return s.pbFlags[(pfn & (SECTION_PAGES - 1)) >> PB_ORDER] & 3;
}

bool PhysMem::pageblockIsolated(uint64_t pfn) const {
  const Section& s = presentSec(pfn, "pageblock");
  return s.pbFlags[(pfn & (SECTION_PAGES - 1)) >> PB_ORDER] & 4;
}

int PhysMem::pageZone(uint64_t pfn) const {
  const Section& s = presentSec(pfn, "pageZone");
  uint8_t zt = s.pbZone[(pfn & (SECTION_PAGES - 1)) >> PB_ORDER];
  return zt == NO_ZONE ? -1 : zt;
}

int PhysMem::sectionNid(uint64_t pfn) const { return presentSec(pfn, "sectionNid").nid; }

static uint8_t stateOf(uint8_t c) {
  if (isAllocCode(c)) return uint8_t(PS_MOVABLE + kindOf(c));
  switch (c) {
    case C_PAGE_OFFLINE: return PS_PAGE_OFFLINE;
    case C_FREE0:
    case C_FREEH: return PS_FREE;
    case C_HWPOISON: return PS_HWPOISON;
    default: return PS_UNINIT;
  }
}

void PhysMem::pageState(uint64_t pfn, uint8_t& state, int& order, uint64_t& head) const {
  presentSec(pfn, "pageState");
  uint8_t code;
  head = findHead(pfn, code, order);
  state = stateOf(code);
}

void PhysMem::pageStates(uint64_t start, uint64_t nr, uint8_t* out) const {
  checkRange(start, nr, "pageStates");
  forEachBlockConst(start, start + nr, [&](uint64_t h, uint8_t c, int o, uint64_t run) {
    uint64_t from = std::max(h, start), to = std::min(h + (run << o), start + nr);
    std::memset(out + (from - start), stateOf(c), to - from);
  });
}

uint64_t PhysMem::nativeBytes() const {
  uint64_t b = sizeof(*this) + sections_.capacity() * sizeof(sections_[0]) + zones_.capacity() * sizeof(zones_[0]);
  for (const auto& s : sections_)
    if (s) b += sizeof(Section);
  b += materialisedSections_ * (SECTION_PAGES / 2);
  for (const auto& z : zones_) {
    if (!z) continue;
    b += sizeof(Zone);
    for (int o = 0; o < NR_ORDERS; o++)
      for (int l = 0; l < NR_LISTS; l++) b += z->stack[o][l].capacity() * sizeof(uint64_t);
  }
  return b;
}

// checkInvariants() is in invariants.cc.

}  // namespace memhp
