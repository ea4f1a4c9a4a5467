// PhysMem: the page-frame state of one simulated machine (no N-API in here).
//
// Storage is sparse per 128 MiB section. A section that is in one uniform state (not initialised,
// PageOffline, PageReserved, or entirely free in max-order blocks) keeps no per-page array at all; any
// other section keeps 4 bits per page. That is how a 16 TiB machine fits in well under 2 GiB.
//
// Page codes (4 bits). Compound blocks (free or allocated, order >= 1) are encoded like the kernel's
// compound pages: the head carries the state, page[1] carries the order (its nibble is the order, not
// a code), pages 2.. are TAIL. Allocating, freeing, splitting and merging are therefore O(1) writes
// whatever the order.
//
// The implementation follows the kernel's files: sparse.cc (mm/sparse.c: sections, page-state encoding),
// page_alloc.cc (mm/page_alloc.c: the buddy allocator), page_isolation.cc (mm/page_isolation.c:
// pageblock migratetypes, isolation), memory_hotplug.cc (mm/memory_hotplug.c: the page work of
// online/offline), invariants.cc (the recount), internal.h (mm/internal.h: shared page-state accessors).
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "errors.h"

namespace memhp {

constexpr int PAGE_SHIFT = 12;
constexpr int SECTION_SHIFT = 15;  // pages per section = 32768 (128 MiB)
constexpr uint64_t SECTION_PAGES = 1ull << SECTION_SHIFT;
constexpr int PB_ORDER = 9;  // pageblock_order: 2 MiB
constexpr uint64_t PB_PAGES = 1ull << PB_ORDER;
constexpr int PB_PER_SECTION = int(SECTION_PAGES / PB_PAGES);
constexpr int MAX_ORDER = 10;  // largest buddy order, inclusive (MAX_PAGE_ORDER)
constexpr int NR_ORDERS = MAX_ORDER + 1;
constexpr uint64_t MAX_ORDER_PAGES = 1ull << MAX_ORDER;
constexpr int MAX_NUMNODES = 1024;  // Debian: CONFIG_NODES_SHIFT=10
constexpr uint64_t MAX_PFN = 1ull << 40;  // MAX_PHYSMEM_BITS 52

// Zone types, in the kernel's order on x86_64.
enum ZoneType : int { ZONE_DMA = 0, ZONE_DMA32 = 1, ZONE_NORMAL = 2, ZONE_MOVABLE = 3, NR_ZONES = 4 };
inline constexpr const char* ZONE_NAMES[NR_ZONES] = {"DMA", "DMA32", "Normal", "Movable"};
constexpr uint8_t NO_ZONE = 0xff;

// Migratetypes of pageblocks; free lists additionally have ISOLATE.
enum Migratetype : int { MT_UNMOVABLE = 0, MT_MOVABLE = 1, MT_RECLAIMABLE = 2, NR_PB_TYPES = 3, MT_ISOLATE = 3, NR_LISTS = 4 };

// What an allocated block is.
enum Kind : int { K_MOVABLE = 0, K_UNMOVABLE = 1, K_RECLAIMABLE = 2, K_PINNED = 3, K_RESERVED = 4, NR_KINDS = 5 };

enum Code : uint8_t {
  C_UNINIT = 0,        // memmap not initialised in a zone (added but never onlined, or offlined)
  C_PAGE_OFFLINE = 1,  // PageOffline, refcount 0 (memmap just initialised on 6.12+, virtio-mem holes)
  C_FREE0 = 2,         // free buddy page of order 0
  C_FREEH = 3,         // head of a free buddy block, order >= 1 in page[1]
  C_TAIL = 4,          // page 2.. of a compound block
  C_HWPOISON = 5,      // hardware-poisoned page, off the free lists
  C_ALLOC0 = 6,        // + 2*kind: allocated single page of that kind
  C_ALLOCH = 7,        // + 2*kind: head of an allocated compound block of that kind
};
inline uint8_t allocCode(int kind, int order) { return uint8_t((order ? C_ALLOCH : C_ALLOC0) + 2 * kind); }
inline bool isAllocCode(uint8_t c) { return c >= C_ALLOC0; }
inline int kindOf(uint8_t c) { return (c - C_ALLOC0) >> 1; }
inline bool isCompoundHead(uint8_t c) { return c == C_FREEH || (c >= C_ALLOC0 && ((c - C_ALLOC0) & 1)); }

// What pageStates() reports per page.
enum PageState : uint8_t {
  PS_UNINIT = 0, PS_PAGE_OFFLINE = 1, PS_FREE = 2, PS_HWPOISON = 3,
  PS_MOVABLE = 4, PS_UNMOVABLE = 5, PS_RECLAIMABLE = 6, PS_PINNED = 7, PS_RESERVED = 8,
};

// The state of a whole section without a page array.
enum Uniform : uint8_t { U_UNINIT = 0, U_PAGE_OFFLINE = 1, U_RESERVED = 2, U_FREE_MAX = 3, U_NONE = 0xff };

struct Section {
  std::unique_ptr<uint8_t[]> pages;  // SECTION_PAGES/2 bytes, or null when uniform
  uint8_t uniform = U_UNINIT;
  bool online = false;
  uint16_t nid = 0;
  uint32_t freeMaxPages = 0;         // pages inside free max-order blocks (to drop the array when all are)
  uint8_t pbFlags[PB_PER_SECTION];   // bits 0-1 migratetype, bit 2 isolate
  uint8_t pbZone[PB_PER_SECTION];    // zone type or NO_ZONE
};

struct Zone {
  int nid = 0;
  int type = 0;
  uint64_t start = 0, spanned = 0;  // zone_start_pfn, spanned_pages
  uint64_t present = 0, managed = 0;
  uint64_t freePages = 0;           // NR_FREE_PAGES: free pages outside isolated pageblocks
  uint64_t isolatedFreePages = 0;
  uint64_t nrFree[NR_ORDERS][NR_LISTS] = {};  // free blocks per order and list
  uint64_t allocated[NR_KINDS] = {};         // allocated pages per kind (reserved included)
  uint64_t hwpoisonPages = 0;
  // LIFO free lists. Entries are validated when popped (the block must still be a free block of that
  // order on that list of this zone), so removal from the middle is a no-op; stale entries are
  // compacted away when they outnumber live ones.
  std::vector<uint64_t> stack[NR_ORDERS][NR_LISTS];
  uint64_t end() const { return start + spanned; }
};

// A migrated block: old pfn -> new pfn, of an order.
struct Migration {
  uint64_t from, to;
  int order;
};

struct MigrateResult {
  std::vector<Migration> moved;
  uint64_t enomem = 0;  // movable blocks left in place because no target had room
  uint64_t pinned = 0;  // pinned blocks, which never move
};

struct AllocRequest {
  int nid = 0;               // preferred node
  bool thisNode = false;     // __GFP_THISNODE: no fallback to other nodes
  int highestZone = -1;      // highest zone type allowed; -1: by kind (Movable for movable kinds, else Normal)
  int order = 0;
  int kind = K_MOVABLE;
  uint64_t count = 0;
  const std::vector<uint8_t>* nodeMask = nullptr;  // if set, only these nodes (migration targets)
};

class PhysMem {
 public:
  PhysMem() = default;

  // arch_add_memory/sparse_add_section: make sections present (memmap not initialised).
  void addSections(uint64_t start, uint64_t nr, int nid);
  // sparse_remove_section: the range must no longer belong to any zone.
  void removeSections(uint64_t start, uint64_t nr);

  // move_pfn_range_to_zone: grow spans, initialise the memmap (PageOffline or PageReserved), mark the
  // pageblocks `mt`, isolated if asked. Every page must be present and uninitialised.
  void initRange(uint64_t start, uint64_t nr, int nid, int zt, bool reserved, bool isolate, int mt);
  // mhp_init_memmap_on_memory: self-hosted vmemmap pages: reserved, UNMOVABLE pageblocks, not isolated.
  void initMemmapOnMemory(uint64_t start, uint64_t nr, int nid, int zt);
  // online_pages_range / memblock_free_all: free every page of the range to the buddy allocator in the
  // kernel's chunks, merging with free buddies; managed pages grow. Optionally mark sections online.
  void onlinePagesRange(uint64_t start, uint64_t nr, bool markOnline);
  // online_mem_sections: mark the sections of a section-aligned range online (boot: memblock reserved
  // sections are online although none of their pages reached the buddy).
  void markSectionsOnline(uint64_t start, uint64_t nr);
  // adjust_present_page_count for the zone the range belongs to.
  void adjustPresentPages(uint64_t start, int64_t delta);

  // start_isolate_page_range with has_unmovable_pages (MEMORY_OFFLINE mode). On failure rolls back and
  // throws EBUSY with the first offending pfn; `undoMt` >= 0 re-types rolled-back pageblocks (6.x).
  void isolateRange(uint64_t start, uint64_t nr, int undoMt);
  // undo_isolate_page_range; `mt` >= 0 sets that migratetype (6.x passes MIGRATE_MOVABLE), -1 keeps it.
  void undoIsolateRange(uint64_t start, uint64_t nr, int mt);
  // test_pages_isolated: -1 if every pageblock is isolated and every page is free, hwpoisoned or
  // PageOffline; else the first failing pfn.
  int64_t testPagesIsolated(uint64_t start, uint64_t nr) const;
  // scan_movable_pages: first movable (LRU) allocated block head in the range, or -1.
  int64_t scanMovablePages(uint64_t start, uint64_t nr) const;
  // do_migrate_range: move every movable block of the range to target nodes; pinned ones stay.
  MigrateResult migrateRange(uint64_t start, uint64_t nr, const std::vector<uint8_t>& nodeMask);
  // __offline_isolated_pages: sections offline, free pages off the free lists; returns the managed
  // pages taken (managed shrinks by that much).
  uint64_t offlineIsolatedPages(uint64_t start, uint64_t nr);
  // remove_pfn_range_from_zone: poison the memmap, shrink zone and node spans.
  void removeRangeFromZone(uint64_t start, uint64_t nr);

  // Workload.
  std::vector<uint64_t> alloc(const AllocRequest& req);
  // Both read each of the n values once (validate into a private copy, then use the copy).
  void freeBlocks(const double* pfns, size_t n);
  void setPinned(const double* pfns, size_t n, bool pinned);
  void hwpoison(uint64_t pfn);  // memory_failure on a free page: taken off the buddy, marked HWPoison
  void allocPage(uint64_t pfn, int kind);  // one given free page allocated as `kind` (EBUSY if not free)

  // Introspection.
  const Zone* zone(int nid, int zt) const {
    size_t i = size_t(nid) * NR_ZONES + size_t(zt);
    return i < zones_.size() ? zones_[i].get() : nullptr;
  }
  void nodeSpan(int nid, uint64_t& start, uint64_t& spanned) const;
  bool sectionPresent(uint64_t pfn) const { return sec(pfn) != nullptr; }
  bool sectionOnline(uint64_t pfn) const { const Section* s = sec(pfn); return s && s->online; }
  int pageblockMigratetype(uint64_t pfn) const;
  bool pageblockIsolated(uint64_t pfn) const;
  int pageZone(uint64_t pfn) const;  // zone type or -1
  int sectionNid(uint64_t pfn) const;
  // Page state as (code, order, head) for one pfn: code of the enclosing block's head.
  void pageState(uint64_t pfn, uint8_t& state, int& order, uint64_t& head) const;
  // Per-page states of a range (PageState values), for tests and dumps.
  void pageStates(uint64_t start, uint64_t nr, uint8_t* out) const;
  std::vector<std::string> checkInvariants() const;
  uint64_t nativeBytes() const;
  // Nodes this machine knows: 1 + the highest node id of any section or zone ever added (node ids, like
  // the kernel's possible nodes, never go away).
  int nodeCount() const { return std::max(sectionNodes_, int((zones_.size() + NR_ZONES - 1) / NR_ZONES)); }
  void checkRange(uint64_t start, uint64_t nr, const char* what) const;  // present sections, or EINVAL

 private:
  std::vector<std::unique_ptr<Section>> sections_;
  std::vector<std::unique_ptr<Zone>> zones_;  // index nid*NR_ZONES + zt
  uint64_t materialisedSections_ = 0;
  int sectionNodes_ = 0;

  Section* sec(uint64_t pfn) const {
    uint64_t i = pfn >> SECTION_SHIFT;
    return i < sections_.size() ? sections_[i].get() : nullptr;
  }
  Section& presentSec(uint64_t pfn, const char* what) const;
  Zone& zoneRef(int nid, int zt);
  Zone* zoneOf(uint64_t pfn) const;

  // Nibble access. get() works on uniform sections; set() materialises them.
  static uint8_t uniformCode(uint8_t u, uint64_t pfn);
  uint8_t get(const Section& s, uint64_t pfn) const {
    if (!s.pages) return uniformCode(s.uniform, pfn);
    uint64_t i = pfn & (SECTION_PAGES - 1);
    return (s.pages[i >> 1] >> ((i & 1) << 2)) & 0xf;
  }
  uint8_t get(uint64_t pfn) const { return get(*sec(pfn), pfn); }
  void set(Section& s, uint64_t pfn, uint8_t c) {
    if (!s.pages) materialise(s);
    uint64_t i = pfn & (SECTION_PAGES - 1);
    uint8_t& b = s.pages[i >> 1];
    int sh = int((i & 1) << 2);
    b = uint8_t((b & ~(0xf << sh)) | (c << sh));
  }
  void set(uint64_t pfn, uint8_t c) { set(*sec(pfn), pfn, c); }
  // A hint that the nibble of `pfn` is read soon (the bulk paths touch pages at random: each first
  // touch is a cache miss worth starting early). Any pfn may be passed; nothing is read.
  void prefetchPage(uint64_t pfn) const {
    uint64_t i = pfn >> SECTION_SHIFT;
    if (i >= sections_.size()) return;
    const Section* s = sections_[i].get();
    const uint8_t* pages = s ? s->pages.get() : nullptr;
    if (!pages) return;
#if defined(__x86_64__) || defined(__i386__)
    // GCC 12 at -O2 drops a __builtin_prefetch whose address comes from loads like these.
    asm volatile("prefetcht0 %0" : : "m"(pages[(pfn & (SECTION_PAGES - 1)) >> 1]));
#else
    __builtin_prefetch(pages + ((pfn & (SECTION_PAGES - 1)) >> 1));
#endif
  }
  void materialise(Section& s);
  void makeUniform(Section& s, uint8_t u);
  void fillCodes(uint64_t start, uint64_t nr, uint8_t code);  // single-page codes over a range

  // Block helpers.
  uint8_t codeAt(uint64_t pfn) const;  // the page's code; page[1] of a compound block reads as TAIL
  int orderAt(uint64_t head) const;    // order of the block whose head is at `head`
  uint64_t findHead(uint64_t pfn, uint8_t& code, int& order) const;
  Zone* takeOffBuddy(uint64_t pfn, const char* what);  // the free page leaves the buddy (EBUSY if not free)
  void writeHeader(uint64_t head, int order, uint8_t headCode);
  int listOf(uint64_t pfn) const;  // free list of a block headed at pfn: its pageblock's type or ISOLATE
  bool isFreeBlock(uint64_t pfn, int order) const;
  bool sameZone(uint64_t a, uint64_t b) const;
  // Visit blocks overlapping [start, end) as fn(head, code, order, run): `run` consecutive blocks of
  // that code and order (run > 1 only for uniform sections).
  template <typename F> void forEachBlock(uint64_t start, uint64_t end, F&& fn);
  template <typename F> void forEachBlockConst(uint64_t start, uint64_t end, F&& fn) const;

  void account(Zone& z, uint64_t head, int order, int list, int sign);
  void accountMaxOrder(uint64_t head, int sign);  // section freeMaxPages; uniform when all free
  void addFreeBlock(Zone& z, uint64_t head, int order);  // header + list + counters (no merge)
  void pushFree(Zone& z, Section& s, uint64_t head, int order, int list);  // addFreeBlock, list known
  void delFreeBlock(Zone& z, uint64_t head, int order);  // counters only (the entry becomes stale)
  void freeToBuddy(Zone& z, uint64_t pfn, int order);    // __free_one_page with merging
  bool entryValid(const Zone& z, uint64_t pfn, int order, int list) const;
  bool popValid(Zone& z, int order, int list, uint64_t& pfn);
  void compact(Zone& z, int order, int list);
  void expand(Zone& z, uint64_t head, int low, int high);
  bool rmqueue(Zone& z, int order, int mt, uint64_t& pfn);
  bool allocOne(const AllocRequest& req, uint64_t& pfn);
  uint64_t allocWholeBlock(const AllocRequest& req, uint64_t want, std::vector<uint64_t>& out);
  bool takeSmall(Zone& z, int o, int mt, const AllocRequest& req, std::vector<uint64_t>& out);
  uint64_t carveBlock(Zone& z, const AllocRequest& req, int o, std::vector<uint64_t>& out);
  bool freeWholeBlock(const uint64_t* pfns, size_t n);
  bool claimPageblock(Zone& z, uint64_t pfn, int mt);
  void setPageblockType(uint64_t pbStart, int mt);
  void changePageblock(uint64_t pb, uint8_t flags);  // new flags; free blocks headed there change list
  void splitStraddling(uint64_t boundary);  // split a free block > pageblock order crossing boundary
  int64_t allocatedStraddling(uint64_t boundary) const;  // head of an allocated block crossing boundary, or -1
  void undoIsolate(uint64_t start, uint64_t nr, int mt);
  int64_t firstUnmovable(uint64_t pbStart, int zt) const;
  uint64_t findSmallestSectionPfn(const Zone& z, uint64_t from, uint64_t to) const;
  uint64_t findBiggestSectionPfn(const Zone& z, uint64_t from, uint64_t to) const;

  void shrinkZoneSpan(Zone& z, uint64_t start, uint64_t end);
};

}  // namespace memhp
