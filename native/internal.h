// mm/internal.h: page-state accessors and helpers shared by the PhysMem .cc files (not its interface).
//
// Defined here, inline, because the buddy allocator's hot paths in page_alloc.cc use them on every
// page they touch, and so do page_isolation.cc, memory_hotplug.cc and sparse.cc.
#pragma once
#include <algorithm>

#include "physmem.h"

namespace memhp {

inline bool kindIsMovable(int kind) { return kind == K_MOVABLE || kind == K_PINNED; }

// Nibble `off` of a section's page array (the hot paths' access once they know the array exists).
inline uint8_t nibble(const uint8_t* pages, uint64_t off) { return (pages[off >> 1] >> ((off & 1) << 2)) & 0xf; }
inline void setNibble(uint8_t* pages, uint64_t off, uint8_t c) {
  uint8_t& b = pages[off >> 1];
  const int sh = int((off & 1) << 2);
  b = uint8_t((b & ~(0xf << sh)) | (c << sh));
}
// The free list of a block headed at `pfn` in section `s`: its pageblock's type, or ISOLATE.
inline int pageblockList(const Section& s, uint64_t pfn) {
  uint8_t f = s.pbFlags[(pfn & (SECTION_PAGES - 1)) >> PB_ORDER];
  return (f & 4) ? MT_ISOLATE : (f & 3);
}

// ---------------------------------------------------------------------------------------------
// Zones (page_zone)

inline Zone* PhysMem::zoneOf(uint64_t pfn) const {
  const Section* s = sec(pfn);
  if (!s) return nullptr;
  uint8_t zt = s->pbZone[(pfn & (SECTION_PAGES - 1)) >> PB_ORDER];
  if (zt == NO_ZONE) return nullptr;
  size_t i = size_t(s->nid) * NR_ZONES + zt;
  return i < zones_.size() ? zones_[i].get() : nullptr;
}

// ---------------------------------------------------------------------------------------------
// Blocks (buddy_order, page_is_buddy, compound heads)

inline uint8_t PhysMem::codeAt(uint64_t pfn) const {
  const Section& s = *sec(pfn);
  uint8_t c = get(s, pfn);
  // An odd pfn right after a compound head is that block's page[1]: its nibble is an order.
  if ((pfn & 1) && isCompoundHead(get(s, pfn - 1))) return C_TAIL;
  return c;
}

inline int PhysMem::orderAt(uint64_t head) const {
  const Section& s = *sec(head);
  return isCompoundHead(get(s, head)) ? get(s, head + 1) : 0;
}

inline uint64_t PhysMem::findHead(uint64_t pfn, uint8_t& code, int& order) const {
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

inline void PhysMem::writeHeader(uint64_t head, int order, uint8_t headCode) {
  Section& s = *sec(head);
  set(s, head, headCode);
  if (order) set(s, head + 1, uint8_t(order));
}

inline int PhysMem::listOf(uint64_t pfn) const { return pageblockList(*sec(pfn), pfn); }

// The free-block counters (nr_free, NR_FREE_PAGES or the isolated count) of a block joining (+1) or
// leaving (-1) a free list. Max-order blocks also count towards their section's freeMaxPages.
inline void PhysMem::account(Zone& z, uint64_t head, int order, int list, int sign) {
  const uint64_t pages = 1ull << order;
  z.nrFree[order][list] += uint64_t(int64_t(sign));
  if (list == MT_ISOLATE) z.isolatedFreePages += uint64_t(int64_t(sign) * int64_t(pages));
  else z.freePages += uint64_t(int64_t(sign) * int64_t(pages));
  if (order == MAX_ORDER) accountMaxOrder(head, sign);
}

inline bool PhysMem::isFreeBlock(uint64_t pfn, int order) const {
  const Section* s = sec(pfn);
  if (!s) return false;
  if (order == 0) return codeAt(pfn) == C_FREE0;
  return get(*s, pfn) == C_FREEH && get(*s, pfn + 1) == order;
}

inline bool PhysMem::sameZone(uint64_t a, uint64_t b) const {
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

}  // namespace memhp
