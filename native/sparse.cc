// mm/sparse.c: present and online sections, the per-section nibble page-state encoding, page-state reads.
#include <algorithm>
#include <cstring>

#include "internal.h"

namespace memhp {

// ---------------------------------------------------------------------------------------------
// Sections, nibbles

Section& PhysMem::presentSec(uint64_t pfn, const char* what) const {
  Section* s = sec(pfn);
  if (!s) einval(std::string(what) + ": pfn " + hex(pfn) + " is not in a present section", int64_t(pfn));
  return *s;
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

void PhysMem::markSectionsOnline(uint64_t start, uint64_t nr) {
  checkRange(start, nr, "markSectionsOnline");
  if ((start | nr) & (SECTION_PAGES - 1)) einval("markSectionsOnline: range must be section aligned (128 MiB)", int64_t(start));
  for (uint64_t pfn = start; pfn < start + nr; pfn += SECTION_PAGES) sec(pfn)->online = true;
}

// ---------------------------------------------------------------------------------------------
// Introspection

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

}  // namespace memhp
