/**
 * The raw shape of the C++ addon, exactly as `native/physmem_js.cc` defines it. Code outside
 * `lib/native/` uses the typed {@link PhysMem} wrapper in `physmem.ts` instead.
 */

/** Raw result of `migrateRange`. */
export interface RawMigrateResult {
  from: Float64Array;
  to: Float64Array;
  order: Uint8Array;
  enomem: number;
  pinned: number;
}

/** Raw zone counters. */
export interface RawZoneInfo {
  /** zone_start_pfn */
  start: number;
  /** spanned_pages */
  spanned: number;
  present: number;
  managed: number;
  /** NR_FREE_PAGES: free pages outside isolated pageblocks. */
  free: number;
  /** Free pages on the Isolate lists. */
  isolatedFree: number;
  hwpoison: number;
  allocated: Float64Array;
  nrFree: Float64Array;
}

/** The native PhysMem object (integers for zone types, migratetypes and kinds). */
export interface RawPhysMem {
  addSections(start: number, nr: number, nid: number): void;
  removeSections(start: number, nr: number): void;
  initRange(start: number, nr: number, nid: number, zone: number, reserved: boolean, isolate: boolean, migratetype: number): void;
  initMemmapOnMemory(start: number, nr: number, nid: number, zone: number): void;
  onlinePagesRange(start: number, nr: number, markOnline: boolean): void;
  adjustPresentPages(pfn: number, delta: number): void;
  markSectionsOnline(start: number, nr: number): void;
  isolateRange(start: number, nr: number, undoMigratetype: number): void;
  undoIsolateRange(start: number, nr: number, migratetype: number): void;
  testPagesIsolated(start: number, nr: number): number;
  scanMovablePages(start: number, nr: number): number;
  migrateRange(start: number, nr: number, nodeMask: Uint8Array): RawMigrateResult;
  offlineIsolatedPages(start: number, nr: number): number;
  removeRangeFromZone(start: number, nr: number): void;
  alloc(count: number, order: number, kind: number, nid: number, thisNode: boolean, highestZone: number): Float64Array;
  free(pfns: Float64Array): void;
  pin(pfns: Float64Array): void;
  unpin(pfns: Float64Array): void;
  hwpoison(pfn: number): void;
  allocPage(pfn: number, kind: number): void;
  zoneInfo(nid: number, zone: number): RawZoneInfo | null;
  zoneCounters(nid: number, zone: number, out: Float64Array): void;
  nodeSpan(nid: number): { start: number; spanned: number };
  pageblockInfo(pfn: number): { migratetype: number; isolated: boolean; zone: number };
  sectionInfo(pfn: number): { present: boolean; online: boolean; nid: number };
  pageState(pfn: number): { state: number; order: number; head: number };
  pageStates(start: number, nr: number): Uint8Array;
  checkInvariants(): string[];
  nativeBytes(): number;
  nodeCount(): number;
}

/** The addon's exports. */
export interface NativeAddon {
  setErrorClass(ctor: new (code: never, message: string, details?: Record<string, unknown>) => Error): void;
  PhysMem: new () => RawPhysMem;
}
