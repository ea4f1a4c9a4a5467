/**
 * Typed façade of the native page-frame core: one {@link PhysMem} per simulated machine. Method names
 * follow the kernel functions whose page work they do (mm/memory_hotplug.c, mm/page_isolation.c,
 * mm/page_alloc.c). Every call crosses the N-API boundary once, whatever the number of pages.
 */
import { KernelError } from '../errors.js';
import { loadAddon } from './addon.js';
import { FREE_LISTS, MAX_ORDER, MIGRATETYPES, PAGE_KINDS, PAGE_STATES, ZONE_TYPES, type AllocRequest, type FreeList, type Migratetype, type PageKind, type PageState, type ZoneType } from './constants.js';
import type { RawPhysMem, RawZoneInfo } from './types.js';

export * from './constants.js';

/** Counters and free areas of one zone, as /proc/zoneinfo, buddyinfo and pagetypeinfo show them. */
export interface ZoneInfo extends Omit<RawZoneInfo, 'allocated' | 'nrFree'> {
  nid: number;
  zone: ZoneType;
  /** Allocated pages per kind, and PageReserved pages. */
  allocated: Record<PageKind | 'reserved', number>;
  /** Free blocks per order (index 0..10) for each free list. */
  freeArea: Record<FreeList, number[]>;
}

/** Old pfn → new pfn of every block `migrateRange` moved, and what it left behind. */
export interface MigrateResult {
  from: Float64Array;
  to: Float64Array;
  order: Uint8Array;
  /** Movable blocks that stayed because no allowed target had room (the kernel logs and retries). */
  enomem: number;
  /** Pinned blocks, which never move. */
  pinned: number;
}

function zoneIndex(z: ZoneType): number {
  const i = ZONE_TYPES.indexOf(z);
  if (i < 0) throw new KernelError('EINVAL', `unknown zone type '${String(z)}'`);
  return i;
}

function mtIndex(m: Migratetype | 'keep'): number {
  if (m === 'keep') return -1;
  const i = MIGRATETYPES.indexOf(m);
  if (i < 0) throw new KernelError('EINVAL', `unknown migratetype '${String(m)}'`);
  return i;
}

function kindIndex(k: PageKind): number {
  const i = PAGE_KINDS.indexOf(k);
  if (i < 0) throw new KernelError('EINVAL', `unknown page kind '${String(k)}'`);
  return i;
}

function pfnArray(pfns: Float64Array | readonly number[], what: string): Float64Array {
  if (pfns instanceof Float64Array) return pfns;
  if (!Array.isArray(pfns)) throw new KernelError('EINVAL', `${what}: pfns must be a Float64Array or an array of pfns, not ${typeof pfns}`);
  // Anything but a number becomes NaN, which the native side refuses as EINVAL like any bad pfn.
  return Float64Array.from(pfns as readonly unknown[], (v) => (typeof v === 'number' ? v : NaN));
}

/**
 * The node mask of a target-node list: every id a node of this machine (0..nodes-1), checked before the
 * mask is sized by them, and no longer a list than there are nodes (a nodemask holds each node once).
 */
function nodeMask(targetNodes: readonly number[], nodes: number): Uint8Array {
  if (!Array.isArray(targetNodes)) throw new KernelError('EINVAL', 'migrateRange: targetNodes must be an array of node ids');
  if (targetNodes.length > nodes) throw new KernelError('E2BIG', `migrateRange: ${targetNodes.length} target nodes, but the machine has ${nodes} nodes`);
  const mask = new Uint8Array(nodes);
  for (const n of targetNodes as readonly unknown[]) {
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n >= nodes) {
      throw new KernelError('EINVAL', `migrateRange: target node ${String(n)} is not a node of this machine (0..${nodes - 1})`);
    }
    mask[n] = 1;
  }
  return mask;
}

/**
 * The page-frame state of one machine: sparse 128 MiB sections, per-zone buddy allocator with
 * per-migratetype free lists (orders 0..10), pageblock migratetypes and isolation.
 * Methods throw {@link KernelError} with the kernel's errno (EBUSY with `pfn` on isolation failure).
 */
export class PhysMem {
  /** @internal The native object (the first PhysMem made loads the addon). */
  readonly raw: RawPhysMem = new (loadAddon().PhysMem)();

  /** arch_add_memory / sparse_add_section: make 128 MiB-aligned sections present on a node. */
  addSections(start: number, nr: number, nid: number): void {
    this.raw.addSections(start, nr, nid);
  }

  /** sparse_remove_section: the range must no longer belong to any zone (else EBUSY). */
  removeSections(start: number, nr: number): void {
    this.raw.removeSections(start, nr);
  }

  /**
   * move_pfn_range_to_zone: grow the zone and node spans, initialise the memmap (PageOffline, or
   * PageReserved with `reserved`), set the pageblocks' migratetype, isolated with `isolate`.
   */
  moveRangeToZone(start: number, nr: number, nid: number, zone: ZoneType, opts: { reserved?: boolean; isolate?: boolean; migratetype?: Migratetype } = {}): void {
    this.raw.initRange(start, nr, nid, zoneIndex(zone), opts.reserved ?? false, opts.isolate ?? true, mtIndex(opts.migratetype ?? 'Movable'));
  }

  /** mhp_init_memmap_on_memory: self-hosted vmemmap pages (PageReserved, Unmovable pageblocks). */
  initMemmapOnMemory(start: number, nr: number, nid: number, zone: ZoneType): void {
    this.raw.initMemmapOnMemory(start, nr, nid, zoneIndex(zone));
  }

  /**
   * online_pages_range: free the range to the buddy in the kernel's chunks (order min(10, ffs(pfn))),
   * merging with free buddies; managed pages grow; sections are marked online unless `markOnline` is false.
   */
  onlinePagesRange(start: number, nr: number, markOnline = true): void {
    this.raw.onlinePagesRange(start, nr, markOnline);
  }

  /** Mark the sections of a 128 MiB-aligned range online (boot sections entirely reserved by memblock). */
  markSectionsOnline(start: number, nr: number): void {
    this.raw.markSectionsOnline(start, nr);
  }

  /** adjust_present_page_count for the zone holding `pfn`. */
  adjustPresentPages(pfn: number, delta: number): void {
    this.raw.adjustPresentPages(pfn, delta);
  }

  /**
   * start_isolate_page_range (MEMORY_OFFLINE): isolate every pageblock, or roll back and throw EBUSY
   * with the first unmovable (or already isolated) pfn. `undoMigratetype`: how rolled-back pageblocks
   * are re-typed ('Movable' on 6.x, 'keep' with the 7.x isolate bit).
   */
  isolateRange(start: number, nr: number, undoMigratetype: Migratetype | 'keep' = 'keep'): void {
    this.raw.isolateRange(start, nr, mtIndex(undoMigratetype));
  }

  /** undo_isolate_page_range: pages become allocatable again; 6.x sets the pageblocks 'Movable'. */
  undoIsolateRange(start: number, nr: number, migratetype: Migratetype | 'keep' = 'keep'): void {
    this.raw.undoIsolateRange(start, nr, mtIndex(migratetype));
  }

  /** test_pages_isolated: null when the range is fully isolated and free, else the first failing pfn. */
  testPagesIsolated(start: number, nr: number): number | null {
    const r = this.raw.testPagesIsolated(start, nr);
    return r < 0 ? null : r;
  }

  /** scan_movable_pages: the first movable (LRU, pinned included) allocated pfn, or null. */
  scanMovablePages(start: number, nr: number): number | null {
    const r = this.raw.scanMovablePages(start, nr);
    return r < 0 ? null : r;
  }

  /**
   * do_migrate_range over an isolated range: move every movable block to the allowed target nodes
   * (other N_MEMORY nodes, or the same node if it is the only one). Pinned blocks stay. A target that is
   * not a node of this machine is EINVAL, more targets than it has nodes E2BIG.
   */
  migrateRange(start: number, nr: number, targetNodes: readonly number[]): MigrateResult {
    return this.raw.migrateRange(start, nr, nodeMask(targetNodes, this.raw.nodeCount()));
  }

  /** __offline_isolated_pages: sections offline, free pages off the lists; returns the managed pages taken. */
  offlineIsolatedPages(start: number, nr: number): number {
    return this.raw.offlineIsolatedPages(start, nr);
  }

  /** remove_pfn_range_from_zone: poison the memmap and shrink zone/node spans. */
  removeRangeFromZone(start: number, nr: number): void {
    this.raw.removeRangeFromZone(start, nr);
  }

  /** Allocate `count` blocks; returns the head pfns (shorter than `count` when memory runs out). */
  alloc(req: AllocRequest): Float64Array {
    return this.raw.alloc(
      req.count,
      req.order ?? 0,
      kindIndex(req.kind ?? 'movable'),
      req.nid ?? 0,
      req.thisNode ?? false,
      req.highestZone === undefined ? -1 : zoneIndex(req.highestZone),
    );
  }

  /** Free allocated blocks by head pfn. A pfn that is not an allocated block → EINVAL, and nothing is freed. */
  free(pfns: Float64Array | readonly number[]): void {
    this.raw.free(pfnArray(pfns, 'free'));
  }

  /** Pin movable blocks: they stay movable for isolation but never migrate. */
  pin(pfns: Float64Array | readonly number[]): void {
    this.raw.pin(pfnArray(pfns, 'pin'));
  }

  /** Unpin pinned blocks. */
  unpin(pfns: Float64Array | readonly number[]): void {
    this.raw.unpin(pfnArray(pfns, 'unpin'));
  }

  /** memory_failure on a free page: it leaves the buddy and is marked HWPoison. EBUSY if in use. */
  hwpoison(pfn: number): void {
    this.raw.hwpoison(pfn);
  }

  /** One given free page taken off the buddy and allocated as `kind` (EBUSY when it is not free). */
  allocPage(pfn: number, kind: PageKind): void {
    this.raw.allocPage(pfn, kindIndex(kind));
  }

  /** Counters and free areas of a zone, or null if the zone never held memory. */
  zoneInfo(nid: number, zone: ZoneType): ZoneInfo | null {
    const r = this.raw.zoneInfo(nid, zoneIndex(zone));
    if (!r) return null;
    const freeArea = {} as Record<FreeList, number[]>;
    FREE_LISTS.forEach((l, li) => {
      freeArea[l] = Array.from({ length: MAX_ORDER + 1 }, (_, o) => r.nrFree[o * FREE_LISTS.length + li]!);
    });
    const [movable, unmovable, reclaimable, pinned, reserved] = Array.from(r.allocated);
    return {
      nid,
      zone,
      start: r.start,
      spanned: r.spanned,
      present: r.present,
      managed: r.managed,
      free: r.free,
      isolatedFree: r.isolatedFree,
      hwpoison: r.hwpoison,
      allocated: { movable: movable!, unmovable: unmovable!, reclaimable: reclaimable!, pinned: pinned!, reserved: reserved! },
      freeArea,
    };
  }

  /**
   * The counters of a zone that flows read on every step (zeros for a zone that never held memory): one
   * native call filling a buffer kept for it, then a new object the caller owns.
   */
  zoneCounters(nid: number, zone: ZoneType): { start: number; spanned: number; present: number; managed: number; free: number } {
    const b = this.#counters;
    this.raw.zoneCounters(nid, zoneIndex(zone), b);
    return { start: b[0]!, spanned: b[1]!, present: b[2]!, managed: b[3]!, free: b[4]! };
  }

  readonly #counters = new Float64Array(5);

  /** /proc/buddyinfo row of a zone: free blocks per order over all lists, or null. */
  buddyinfo(nid: number, zone: ZoneType): number[] | null {
    const z = this.zoneInfo(nid, zone);
    if (!z) return null;
    return z.freeArea.Movable.map((_, o) => FREE_LISTS.reduce((s, l) => s + z.freeArea[l][o]!, 0));
  }

  /** The node's span: the union of its zones' spans. */
  nodeSpan(nid: number): { start: number; spanned: number } {
    return this.raw.nodeSpan(nid);
  }

  /** Migratetype, isolate bit and zone of the pageblock holding `pfn`. */
  pageblockInfo(pfn: number): { migratetype: Migratetype; isolated: boolean; zone: ZoneType | null } {
    const r = this.raw.pageblockInfo(pfn);
    return { migratetype: MIGRATETYPES[r.migratetype]!, isolated: r.isolated, zone: r.zone < 0 ? null : ZONE_TYPES[r.zone]! };
  }

  /** Whether the section holding `pfn` is present and online, and its node (-1 when absent). */
  sectionInfo(pfn: number): { present: boolean; online: boolean; nid: number } {
    return this.raw.sectionInfo(pfn);
  }

  /** The state of one page and the block it belongs to. */
  pageState(pfn: number): { state: PageState; order: number; head: number } {
    const r = this.raw.pageState(pfn);
    return { state: PAGE_STATES[r.state]!, order: r.order, head: r.head };
  }

  /** Per-page state indices (into {@link PAGE_STATES}) of a range, in one call. */
  pageStates(start: number, nr: number): Uint8Array {
    return this.raw.pageStates(start, nr);
  }

  /** Every invariant violation found by a full scan (empty when consistent). */
  checkInvariants(): string[] {
    return this.raw.checkInvariants();
  }

  /** Node ids this machine knows: 1 + the highest node id of any section added (at most {@link MAX_NUMNODES}). */
  nodeCount(): number {
    return this.raw.nodeCount();
  }

  /** Bytes of native memory this machine's page state occupies. */
  nativeBytes(): number {
    return this.raw.nativeBytes();
  }
}
