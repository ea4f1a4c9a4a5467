// mm/memory_hotplug.c: the page work of online_pages / offline_pages (move_pfn_range_to_zone,
// online_pages_range, scan/migrate, __offline_isolated_pages, remove_pfn_range_from_zone, span shrinking).
#include <algorithm>

#include "internal.h"

namespace memhp {

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

void PhysMem::adjustPresentPages(uint64_t pfn, int64_t delta) {
  Zone* z = zoneOf(pfn);
  if (!z) einval("adjustPresentPages: pfn " + hex(pfn) + " is not in a zone", int64_t(pfn));
  if (delta < 0 && uint64_t(-delta) > z->present) einval("adjustPresentPages: present pages would go negative");
  // Present pages lie inside the zone's span (adjust_present_page_count runs after the span grew).
  if (delta > 0 && z->present + uint64_t(delta) > z->spanned) einval("adjustPresentPages: present pages would exceed the zone's span", int64_t(pfn));
  z->present += uint64_t(delta);
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

}  // namespace memhp
