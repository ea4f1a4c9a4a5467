/**
 * The x86_64 page geometry and the names the page-frame core uses (zone types, migratetypes, page
 * kinds and states), in a module that loads nothing: code that needs only these (the boot layout, the
 * scenario schema, the CLI) runs without the compiled addon. `physmem.ts` re-exports them.
 */

/** Page size and geometry constants of x86_64. */
export const PAGE_SHIFT = 12;
/** Pages per 128 MiB memory section. */
export const PAGES_PER_SECTION = 32768;
/** Pages per 2 MiB pageblock (pageblock_order 9). */
export const PAGEBLOCK_NR_PAGES = 512;
/** The largest buddy order (MAX_PAGE_ORDER, inclusive). */
export const MAX_ORDER = 10;
/** The most node ids a machine can have (Debian's CONFIG_NODES_SHIFT=10). */
export const MAX_NUMNODES = 1024;

/** Zone types in the kernel's order, with their `/proc/zoneinfo` names. */
export const ZONE_TYPES = ['DMA', 'DMA32', 'Normal', 'Movable'] as const;
/** A zone type name. */
export type ZoneType = (typeof ZONE_TYPES)[number];

/** Pageblock migratetypes, named as /proc/pagetypeinfo names them. */
export const MIGRATETYPES = ['Unmovable', 'Movable', 'Reclaimable'] as const;
/** A pageblock migratetype. */
export type Migratetype = (typeof MIGRATETYPES)[number];
/** Free lists: the migratetypes plus Isolate. */
export const FREE_LISTS = ['Unmovable', 'Movable', 'Reclaimable', 'Isolate'] as const;
/** A free-list name. */
export type FreeList = (typeof FREE_LISTS)[number];

/** What an allocation is: movable (LRU), unmovable (kernel), reclaimable (slab), pinned (movable but not migratable). */
export const PAGE_KINDS = ['movable', 'unmovable', 'reclaimable', 'pinned'] as const;
/** An allocation kind. */
export type PageKind = (typeof PAGE_KINDS)[number];

/** Per-page state as `PhysMem.pageStates` reports it. */
export const PAGE_STATES = ['uninit', 'offline', 'free', 'hwpoison', 'movable', 'unmovable', 'reclaimable', 'pinned', 'reserved'] as const;
/** A page state: `uninit` (memmap not in a zone), `offline` (PageOffline), `free` (in the buddy), … */
export type PageState = (typeof PAGE_STATES)[number];

/** An allocation request for `PhysMem.alloc`. */
export interface AllocRequest {
  /** Number of blocks. */
  count: number;
  /** Order of each block (0..10). Default 0. */
  order?: number;
  /** Default 'movable'. Only movable and pinned allocations may land in ZONE_MOVABLE. */
  kind?: PageKind;
  /** Preferred node. Default 0. */
  nid?: number;
  /** __GFP_THISNODE: never fall back to another node. */
  thisNode?: boolean;
  /** Highest zone allowed (GFP zone modifier). Default: Movable for movable kinds, Normal otherwise. */
  highestZone?: ZoneType;
}
