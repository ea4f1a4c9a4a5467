// mm/page_isolation.c: pageblock migratetypes and isolation (start/undo_isolate_page_range, test_pages_isolated).
#include <algorithm>

#include "internal.h"

namespace memhp {

// ---------------------------------------------------------------------------------------------
// Pageblock migratetypes

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

void PhysMem::setPageblockType(uint64_t pbStart, int mt) {
  const Section& s = *sec(pbStart);
  uint8_t f = s.pbFlags[(pbStart & (SECTION_PAGES - 1)) >> PB_ORDER];
  changePageblock(pbStart, uint8_t((f & 4) | mt));
}

int PhysMem::pageblockMigratetype(uint64_t pfn) const {
  const Section& s = presentSec(pfn, "pageblock");
  return s.pbFlags[(pfn & (SECTION_PAGES - 1)) >> PB_ORDER] & 3;
}

bool PhysMem::pageblockIsolated(uint64_t pfn) const {
  const Section& s = presentSec(pfn, "pageblock");
  return s.pbFlags[(pfn & (SECTION_PAGES - 1)) >> PB_ORDER] & 4;
}

// ---------------------------------------------------------------------------------------------
// Isolation

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

}  // namespace memhp
