// PhysMem::checkInvariants: a full recount of the page state against the counters, free lists and spans.
//
// A section with a page array is walked block by block. A uniform section (no page array) is accounted
// per pageblock or per max-order block instead of per page, since all its pages are alike by
// construction: a 16 TiB machine of free sections costs 131 072 sections x 32 blocks, not 4 G pages.
#include <algorithm>

#include "physmem.h"

namespace memhp {

namespace {

struct Sums {
  uint64_t nrFree[NR_ORDERS][NR_LISTS] = {};
  uint64_t freePages = 0, isolatedFree = 0, allocated[NR_KINDS] = {}, present = 0, hwpoison = 0;
  std::vector<uint64_t> heads[NR_ORDERS][NR_LISTS];  // in ascending pfn order: sections are walked in order
};

}  // namespace

std::vector<std::string> PhysMem::checkInvariants() const {
  std::vector<std::string> bad;
  auto report = [&](const std::string& m) {
    if (bad.size() < 50) bad.push_back(m);
  };
  std::vector<Sums> sums(zones_.size());
  const uint8_t reservedCode = allocCode(K_RESERVED, 0);

  // Accounts `count` consecutive blocks of code `c` and `order` from `pfn`, all in one pageblock when
  // count > 1 (runs come from uniform sections). Adds to `freeMax` the pages in free max-order blocks.
  auto visit = [&](const Section& s, uint64_t pfn, uint8_t c, int order, uint64_t count, uint64_t& freeMax) {
    if (c == C_UNINIT) return;
    const uint64_t n = 1ull << order, pages = count * n;
    const int idx = int((pfn & (SECTION_PAGES - 1)) >> PB_ORDER);
    const uint8_t zt = s.pbZone[idx];
    if (zt == NO_ZONE) return report("pfn " + hex(pfn) + ": initialised page outside any zone");
    for (uint64_t pb = pfn + PB_PAGES; pb < pfn + n; pb += PB_PAGES)
      if (s.pbFlags[(pb & (SECTION_PAGES - 1)) >> PB_ORDER] != s.pbFlags[idx] || s.pbZone[(pb & (SECTION_PAGES - 1)) >> PB_ORDER] != zt)
        report("block " + hex(pfn) + " (order " + std::to_string(order) + ") spans pageblocks that differ");
    size_t zi = size_t(s.nid) * NR_ZONES + zt;
    if (zi >= zones_.size() || !zones_[zi])
      return report("pfn " + hex(pfn) + ": zone " + ZONE_NAMES[zt] + " of node " + std::to_string(s.nid) + " does not exist");
    const Zone& z = *zones_[zi];
    Sums& sm = sums[zi];
    if (pfn < z.start || pfn + pages > z.end()) report("pfn " + hex(pfn < z.start ? pfn : std::max(pfn, z.end())) + " lies outside the span of zone " + ZONE_NAMES[zt]);
    sm.present += pages;
    if (c == C_FREE0 || c == C_FREEH) {
      int list = (s.pbFlags[idx] & 4) ? MT_ISOLATE : (s.pbFlags[idx] & 3);
      sm.nrFree[order][list] += count;
      (list == MT_ISOLATE ? sm.isolatedFree : sm.freePages) += pages;
      for (uint64_t k = 0; k < count; k++) sm.heads[order][list].push_back(pfn + k * n);
      if (order == MAX_ORDER) freeMax += pages;
    } else if (isAllocCode(c)) {
      int kind = kindOf(c);
      sm.allocated[kind] += pages;
      // Reserved pages may sit in ZONE_MOVABLE (self-hosted vmemmap of a Movable block); allocations may not.
      if (zt == ZONE_MOVABLE && (kind == K_UNMOVABLE || kind == K_RECLAIMABLE)) report("pfn " + hex(pfn) + ": unmovable page in ZONE_MOVABLE");
      if (kind == K_RESERVED && c != reservedCode) report("pfn " + hex(pfn) + ": reserved compound block");
    } else if (c == C_HWPOISON) {
      sm.hwpoison += count;
    } else if (c != C_PAGE_OFFLINE) {
      report("pfn " + hex(pfn) + ": unknown code " + std::to_string(c));
    }
  };

  for (size_t si = 0; si < sections_.size(); si++) {
    const Section* s = sections_[si].get();
    if (!s) continue;
    uint64_t base = uint64_t(si) << SECTION_SHIFT;
    uint64_t freeMax = 0;
    if (!s->pages) {
      switch (s->uniform) {
        case U_UNINIT: break;
        case U_FREE_MAX:
          for (uint64_t h = base; h < base + SECTION_PAGES; h += MAX_ORDER_PAGES) visit(*s, h, C_FREEH, MAX_ORDER, 1, freeMax);
          break;
        case U_PAGE_OFFLINE:
        case U_RESERVED:
          for (uint64_t pb = base; pb < base + SECTION_PAGES; pb += PB_PAGES) visit(*s, pb, uniformCode(s->uniform, pb), 0, PB_PAGES, freeMax);
          break;
        default: report("section " + hex(base) + ": no page array and no uniform state");
      }
    } else {
      for (uint64_t pfn = base; pfn < base + SECTION_PAGES;) {
        uint8_t c = get(*s, pfn);
        int order = isCompoundHead(c) ? get(*s, pfn + 1) : 0;
        if (c == C_TAIL || order > MAX_ORDER || order < 0 || (isCompoundHead(c) && order == 0) || (pfn & ((1ull << order) - 1))) {
          report("pfn " + hex(pfn) + ": corrupt block encoding (code " + std::to_string(c) + ", order " + std::to_string(order) + ")");
          pfn++;
          continue;
        }
        uint64_t n = 1ull << order;
        for (uint64_t i = 2; i < n; i++)
          if (get(*s, pfn + i) != C_TAIL) {
            report("pfn " + hex(pfn + i) + ": tail of the block at " + hex(pfn) + " is not a tail");
            break;
          }
        visit(*s, pfn, c, order, 1, freeMax);
        pfn += n;
      }
    }
    if (freeMax != s->freeMaxPages) report("section " + hex(base) + ": freeMaxPages " + std::to_string(s->freeMaxPages) + " but " + std::to_string(freeMax) + " counted");
  }

  for (size_t zi = 0; zi < zones_.size(); zi++) {
    const Zone* z = zones_[zi].get();
    if (!z) continue;
    Sums& sm = sums[zi];
    std::string name = std::string("node ") + std::to_string(z->nid) + " zone " + ZONE_NAMES[z->type] + ": ";
    for (int o = 0; o < NR_ORDERS; o++)
      for (int l = 0; l < NR_LISTS; l++) {
        if (sm.nrFree[o][l] != z->nrFree[o][l])
          report(name + "nr_free[" + std::to_string(o) + "][" + std::to_string(l) + "] = " + std::to_string(z->nrFree[o][l]) + ", counted " + std::to_string(sm.nrFree[o][l]));
        // Both sides sorted, then one merge pass (the stack is usually pushed in pfn order already).
        std::vector<uint64_t> st(z->stack[o][l]);
        if (!std::is_sorted(st.begin(), st.end())) std::sort(st.begin(), st.end());
        auto it = st.begin();
        for (uint64_t h : sm.heads[o][l]) {
          it = std::lower_bound(it, st.end(), h);
          if (it == st.end() || *it != h) {
            report(name + "free block " + hex(h) + " (order " + std::to_string(o) + ") is on no free list");
            break;
          }
        }
      }
    if (sm.freePages != z->freePages) report(name + "free pages " + std::to_string(z->freePages) + ", counted " + std::to_string(sm.freePages));
    if (sm.isolatedFree != z->isolatedFreePages) report(name + "isolated free pages " + std::to_string(z->isolatedFreePages) + ", counted " + std::to_string(sm.isolatedFree));
    for (int k = 0; k < NR_KINDS; k++)
      if (sm.allocated[k] != z->allocated[k]) report(name + "allocated[" + std::to_string(k) + "] " + std::to_string(z->allocated[k]) + ", counted " + std::to_string(sm.allocated[k]));
    if (sm.hwpoison != z->hwpoisonPages) report(name + "hwpoison pages " + std::to_string(z->hwpoisonPages) + ", counted " + std::to_string(sm.hwpoison));
    if (sm.present != z->present) report(name + "present " + std::to_string(z->present) + ", counted " + std::to_string(sm.present));
    uint64_t managed = sm.freePages + sm.isolatedFree + sm.hwpoison;
    for (int k = 0; k < NR_KINDS; k++)
      if (k != K_RESERVED) managed += sm.allocated[k];
    if (managed != z->managed) report(name + "managed " + std::to_string(z->managed) + ", counted " + std::to_string(managed));
    if (z->managed > z->present) report(name + "managed exceeds present");
  }
  return bad;
}

}  // namespace memhp
