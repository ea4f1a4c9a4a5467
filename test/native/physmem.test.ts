import assert from 'node:assert/strict';
import fc from 'fast-check';
import { KernelError } from '../../lib/errors.js';
import { PhysMem, PAGES_PER_SECTION as S, PAGEBLOCK_NR_PAGES as PB, PAGE_STATES, type ZoneType } from '../../lib/native/physmem.js';

/** A section-aligned range onlined into a zone the way online_pages does it (6.x flavour). */
function online(pm: PhysMem, start: number, nr: number, nid: number, zone: ZoneType): void {
  pm.moveRangeToZone(start, nr, nid, zone, { isolate: true });
  pm.onlinePagesRange(start, nr);
  pm.adjustPresentPages(start, nr);
  pm.undoIsolateRange(start, nr, 'Movable');
}

/** The offline_pages page work; returns the managed pages taken. Throws what the kernel would. */
function offline(pm: PhysMem, start: number, nr: number, targets: number[]): number {
  pm.isolateRange(start, nr, 'Movable');
  for (let i = 0; i < 10; i++) {
    if (pm.scanMovablePages(start, nr) === null) break;
    const r = pm.migrateRange(start, nr, targets);
    if (r.enomem || r.pinned) {
      pm.undoIsolateRange(start, nr, 'Movable');
      throw new KernelError(r.enomem ? 'ENOMEM' : 'EBUSY', `migration left ${r.enomem} blocks (enomem) and ${r.pinned} pinned`);
    }
  }
  assert.equal(pm.testPagesIsolated(start, nr), null);
  const managed = pm.offlineIsolatedPages(start, nr);
  pm.adjustPresentPages(start, -nr);
  pm.removeRangeFromZone(start, nr);
  return managed;
}

function ok(pm: PhysMem): void {
  assert.deepEqual(pm.checkInvariants(), []);
}

function expectErr(fn: () => unknown, code: string, pfn?: number): KernelError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof KernelError, `expected KernelError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (pfn !== undefined) assert.equal(e.pfn, pfn, e.message);
    return e;
  }
  assert.fail(`expected ${code}`);
}

describe('native PhysMem', () => {
  describe('online and the buddy allocator', () => {
    it('markSectionsOnline: a boot section held entirely by memblock is online, and span shrinking sees it', () => {
    const pm = new PhysMem();
    pm.addSections(0, 2 * S, 0);
    pm.moveRangeToZone(0, 2 * S, 0, 'Normal', { reserved: true, isolate: false });
    pm.onlinePagesRange(S, S);
    pm.adjustPresentPages(0, 2 * S);
    assert.equal(pm.sectionInfo(0).online, false);
    pm.markSectionsOnline(0, S);
    assert.equal(pm.sectionInfo(0).online, true);
    expectErr(() => pm.markSectionsOnline(1, S), 'EINVAL');
    expectErr(() => pm.markSectionsOnline(4 * S, S), 'EINVAL');
    ok(pm);
  });

  it('onlines a section into 32 max-order blocks on the Movable list, present = managed = free', () => {
      const pm = new PhysMem();
      pm.addSections(S, S, 0);
      online(pm, S, S, 0, 'Normal');
      const z = pm.zoneInfo(0, 'Normal')!;
      assert.equal(z.present, S);
      assert.equal(z.managed, S);
      assert.equal(z.free, S);
      assert.equal(z.freeArea.Movable[10], 32);
      assert.deepEqual(pm.buddyinfo(0, 'Normal'), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32]);
      assert.equal(z.start, S);
      assert.equal(z.spanned, S);
      assert.equal(pm.sectionInfo(S).online, true);
      ok(pm);
    });

    it('offlining the pages after a block\'s own memmap takes the whole section offline (offline_mem_sections)', () => {
      const pm = new PhysMem();
      const vm = 2 * PB; // memmap_on_memory: the block's first pages hold its memmap
      pm.addSections(S, S, 0);
      pm.initMemmapOnMemory(S, vm, 0, 'Normal');
      online(pm, S + vm, S - vm, 0, 'Normal');
      assert.equal(pm.sectionInfo(S).online, true);
      offline(pm, S + vm, S - vm, [0]);
      assert.equal(pm.sectionInfo(S).online, false, 'the vmemmap pages\' section is offline too');
      assert.equal(pm.sectionInfo(2 * S - 1).online, false);
    });

    it('keeps onlined pages isolated (not allocatable) until undoIsolateRange', () => {
      const pm = new PhysMem();
      pm.addSections(0, S, 0);
      pm.moveRangeToZone(0, S, 0, 'Normal', { isolate: true });
      pm.onlinePagesRange(0, S);
      pm.adjustPresentPages(0, S);
      const z = pm.zoneInfo(0, 'Normal')!;
      assert.equal(z.free, 0);
      assert.equal(z.isolatedFree, S);
      assert.equal(z.freeArea.Isolate[10], 32);
      assert.equal(pm.alloc({ count: 1 }).length, 0);
      ok(pm);
      pm.undoIsolateRange(0, S, 'Movable');
      assert.equal(pm.alloc({ count: 1 }).length, 1);
      ok(pm);
    });

    it('frees in the kernel chunks: a range starting 512 pages in uses one order-9 then order-10 chunks', () => {
      const pm = new PhysMem();
      pm.addSections(0, S, 0);
      pm.initMemmapOnMemory(0, 512, 0, 'Normal');
      pm.moveRangeToZone(512, S - 512, 0, 'Normal', { isolate: true });
      pm.onlinePagesRange(512, S - 512);
      const z = pm.zoneInfo(0, 'Normal')!;
      assert.equal(z.freeArea.Isolate[9], 1);
      assert.equal(z.freeArea.Isolate[10], 31);
      assert.equal(z.managed, S - 512);
      assert.equal(z.allocated.reserved, 512);
      pm.adjustPresentPages(0, S);
      ok(pm);
    });

    it('conserves pages: allocated + free = managed through alloc and free of every order', () => {
      const pm = new PhysMem();
      pm.addSections(0, 2 * S, 0);
      online(pm, 0, 2 * S, 0, 'Normal');
      const held: Float64Array[] = [];
      for (let order = 0; order <= 10; order++) {
        held.push(pm.alloc({ count: 5, order, kind: order % 2 ? 'unmovable' : 'movable' }));
        const z = pm.zoneInfo(0, 'Normal')!;
        const used = z.allocated.movable + z.allocated.unmovable;
        assert.equal(z.free + used, z.managed);
        ok(pm);
      }
      for (const h of held) pm.free(h);
      const z = pm.zoneInfo(0, 'Normal')!;
      assert.equal(z.free, 2 * S);
      ok(pm);
    });

    it('merges every freed page back to max order, whatever the free order', () => {
      const pm = new PhysMem();
      pm.addSections(0, S, 0);
      online(pm, 0, S, 0, 'Normal');
      const pages = Array.from(pm.alloc({ count: S }));
      assert.equal(pages.length, S);
      assert.equal(pm.alloc({ count: 1 }).length, 0, 'the zone is exhausted');
      // A deterministic shuffle.
      let seed = 12345;
      for (let i = pages.length - 1; i > 0; i--) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        const j = seed % (i + 1);
        [pages[i], pages[j]] = [pages[j]!, pages[i]!];
      }
      pm.free(pages.slice(0, S / 2));
      ok(pm);
      pm.free(pages.slice(S / 2));
      assert.deepEqual(pm.buddyinfo(0, 'Normal'), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32]);
      ok(pm);
    });

    it('bulk paths (whole blocks taken or freed at once) end exactly where page-by-page operation does', () => {
      const bulk = new PhysMem();
      const single = new PhysMem();
      for (const pm of [bulk, single]) {
        pm.addSections(0, 2 * S, 0);
        online(pm, 0, 2 * S, 0, 'Normal');
      }
      const a = bulk.alloc({ count: 5000 });
      const b: number[] = [];
      for (let i = 0; i < 5000; i++) b.push(...single.alloc({ count: 1 }));
      assert.deepEqual(Array.from(a), b);
      const a2 = bulk.alloc({ count: 37, order: 3, kind: 'unmovable' });
      const b2: number[] = [];
      for (let i = 0; i < 37; i++) b2.push(...single.alloc({ count: 1, order: 3, kind: 'unmovable' }));
      assert.deepEqual(Array.from(a2), b2);
      bulk.free(a.slice(0, 4096));
      for (const p of a.slice(0, 4096)) single.free([p]);
      for (const pm of [bulk, single]) ok(pm);
      assert.deepEqual(bulk.zoneInfo(0, 'Normal'), single.zoneInfo(0, 'Normal'));
      assert.deepEqual(bulk.pageStates(0, 2 * S), single.pageStates(0, 2 * S));
    });

    it('hands out order-0 pages of a fresh block in ascending pfn order (expand keeps the low half)', () => {
      const pm = new PhysMem();
      pm.addSections(0, S, 0);
      online(pm, 0, S, 0, 'Normal');
      const a = Array.from(pm.alloc({ count: 8 }));
      for (let i = 1; i < a.length; i++) assert.equal(a[i], a[0]! + i);
    });

    it('steals a whole pageblock for an unmovable allocation and retypes it', () => {
      const pm = new PhysMem();
      pm.addSections(0, S, 0);
      online(pm, 0, S, 0, 'Normal');
      const [p] = pm.alloc({ count: 1, kind: 'unmovable' });
      assert.equal(pm.pageblockInfo(p!).migratetype, 'Unmovable');
      const z = pm.zoneInfo(0, 'Normal')!;
      assert.ok(z.freeArea.Unmovable.some((n) => n > 0), 'the rest of the stolen block is on the Unmovable lists');
      ok(pm);
    });

    it('rejects double free and bad pfns without freeing anything', () => {
      const pm = new PhysMem();
      pm.addSections(0, S, 0);
      online(pm, 0, S, 0, 'Normal');
      const a = pm.alloc({ count: 4 });
      pm.free([a[0]!]);
      const before = pm.zoneInfo(0, 'Normal')!.free;
      expectErr(() => pm.free([a[1]!, a[0]!]), 'EINVAL', a[0]);
      assert.equal(pm.zoneInfo(0, 'Normal')!.free, before, 'nothing freed');
      expectErr(() => pm.free([a[2]!, a[2]!]), 'EINVAL', a[2]);
      expectErr(() => pm.free([10 * S]), 'EINVAL');
      ok(pm);
    });

    it('falls back to the next zone and node in zonelist order, and honours thisNode', () => {
      const pm = new PhysMem();
      pm.addSections(0, S, 0);
      pm.addSections(S, S, 1);
      online(pm, 0, S, 0, 'Normal');
      online(pm, S, S, 1, 'Normal');
      const fromNode1 = pm.alloc({ count: S / 1024, order: 10, nid: 1 });
      assert.ok(fromNode1.every((p) => p >= S));
      const spill = pm.alloc({ count: 2, order: 10, nid: 1 });
      assert.ok(spill.every((p) => p < S), 'node 1 is full: falls back to node 0');
      assert.equal(pm.alloc({ count: 1, nid: 1, thisNode: true }).length, 0);
      ok(pm);
    });
  });

  describe('ZONE_MOVABLE', () => {
    it('never holds unmovable, reclaimable or reserved pages', () => {
      const pm = new PhysMem();
      pm.addSections(0, S, 0);
      online(pm, 0, S, 0, 'Movable');
      assert.equal(pm.alloc({ count: 10, kind: 'unmovable' }).length, 0);
      assert.equal(pm.alloc({ count: 10, kind: 'reclaimable' }).length, 0);
      assert.equal(pm.alloc({ count: 10, kind: 'movable' }).length, 10);
      expectErr(() => pm.alloc({ count: 1, kind: 'unmovable', highestZone: 'Movable' }), 'EINVAL');
      expectErr(() => pm.moveRangeToZone(0, S, 0, 'Movable'), 'EBUSY');
      ok(pm);
    });

    it('prefers Movable for movable allocations and Normal for kernel ones', () => {
      const pm = new PhysMem();
      pm.addSections(0, 2 * S, 0);
      online(pm, 0, S, 0, 'Normal');
      online(pm, S, S, 0, 'Movable');
      assert.ok(pm.alloc({ count: 4 }).every((p) => p >= S));
      assert.ok(pm.alloc({ count: 4, kind: 'unmovable' }).every((p) => p < S));
      ok(pm);
    });
  });

  describe('isolation', () => {
    it('fails EBUSY on an unmovable page in a kernel zone, naming the pfn, and rolls back', () => {
      const pm = new PhysMem();
      pm.addSections(0, 2 * S, 0);
      online(pm, 0, 2 * S, 0, 'Normal');
      // Fill the first section so the unmovable page lands in the second one.
      const filler = pm.alloc({ count: S / 1024 - 1, order: 10 });
      const [u] = pm.alloc({ count: 1, kind: 'unmovable' });
      assert.ok(u! >= 0);
      const sectionOf = Math.floor(u! / S) * S;
      const e = expectErr(() => pm.isolateRange(sectionOf, S, 'Movable'), 'EBUSY', u);
      assert.match(e.message, /unmovable page at pfn 0x/);
      for (let pb = sectionOf; pb < sectionOf + S; pb += PB) assert.equal(pm.pageblockInfo(pb).isolated, false);
      assert.equal(pm.zoneInfo(0, 'Normal')!.isolatedFree, 0);
      pm.free(filler);
      ok(pm);
    });

    it('reports an already isolated pageblock as EBUSY', () => {
      const pm = new PhysMem();
      pm.addSections(0, S, 0);
      online(pm, 0, S, 0, 'Normal');
      pm.isolateRange(4 * PB, PB);
      expectErr(() => pm.isolateRange(0, S), 'EBUSY', 4 * PB);
      assert.equal(pm.pageblockInfo(0).isolated, false, 'rolled back');
      assert.equal(pm.pageblockInfo(4 * PB).isolated, true, 'the earlier isolation stays');
      ok(pm);
    });

    it('treats reserved pages as unmovable even in ZONE_MOVABLE, and movable pages there as movable', () => {
      const pm = new PhysMem();
      pm.addSections(0, S, 0);
      // A Movable block with self-hosted vmemmap (memmap_on_memory): 512 PageReserved pages at its start.
      pm.initMemmapOnMemory(0, PB, 0, 'Movable');
      online(pm, PB, S - PB, 0, 'Movable');
      pm.adjustPresentPages(0, PB);
      ok(pm);
      expectErr(() => pm.isolateRange(0, S), 'EBUSY', 0);
      pm.alloc({ count: 100 });
      pm.isolateRange(PB, S - PB);
      assert.equal(pm.zoneInfo(0, 'Movable')!.free, 0);
      pm.undoIsolateRange(PB, S - PB);
      ok(pm);
    });

    it('treats unmovable and reclaimable allocations as unmovable in kernel zones only', () => {
      const pm = new PhysMem();
      pm.addSections(0, S, 0);
      online(pm, 0, S, 0, 'Normal');
      const [r] = pm.alloc({ count: 1, kind: 'reclaimable' });
      expectErr(() => pm.isolateRange(0, S), 'EBUSY', r);
      pm.free([r!]);
      pm.alloc({ count: 1000, order: 1 });
      pm.isolateRange(0, S);
      ok(pm);
    });

    it('splits a free max-order block that straddles the range boundary', () => {
      const pm = new PhysMem();
      pm.addSections(0, S, 0);
      online(pm, 0, S, 0, 'Normal');
      pm.isolateRange(PB, PB);
      const z = pm.zoneInfo(0, 'Normal')!;
      assert.equal(z.freeArea.Isolate[9], 1);
      assert.equal(z.freeArea.Movable[9], 1);
      ok(pm);
      pm.undoIsolateRange(PB, PB);
      assert.deepEqual(pm.buddyinfo(0, 'Normal'), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32], 'merged back on un-isolation');
      ok(pm);
    });

    it('6.x undo re-types pageblocks Movable; the 7.x bit keeps the migratetype', () => {
      const pm = new PhysMem();
      pm.addSections(0, S, 0);
      online(pm, 0, S, 0, 'Normal');
      const [u] = pm.alloc({ count: 1, kind: 'unmovable' });
      pm.free([u!]);
      const pb = Math.floor(u! / PB) * PB;
      assert.equal(pm.pageblockInfo(pb).migratetype, 'Unmovable');
      pm.isolateRange(pb, PB);
      pm.undoIsolateRange(pb, PB, 'keep');
      assert.equal(pm.pageblockInfo(pb).migratetype, 'Unmovable');
      pm.isolateRange(pb, PB);
      pm.undoIsolateRange(pb, PB, 'Movable');
      assert.equal(pm.pageblockInfo(pb).migratetype, 'Movable');
      ok(pm);
    });
  });

  describe('migration and offline', () => {
    it('offline takes exactly the free pages and shrinks present and managed', () => {
      const pm = new PhysMem();
      pm.addSections(0, 2 * S, 0);
      online(pm, 0, S, 0, 'Normal');
      online(pm, S, S, 0, 'Movable');
      const managed = offline(pm, S, S, [0]);
      assert.equal(managed, S);
      const z = pm.zoneInfo(0, 'Movable')!;
      assert.equal(z.present, 0);
      assert.equal(z.managed, 0);
      assert.equal(z.free, 0);
      assert.equal(z.spanned, 0);
      assert.equal(pm.sectionInfo(S).online, false);
      assert.ok(pm.pageStates(S, S).every((s) => PAGE_STATES[s] === 'uninit'));
      ok(pm);
    });

    it('migrates movable pages out, preserving counts and page order', () => {
      const pm = new PhysMem();
      pm.addSections(0, 2 * S, 0);
      online(pm, 0, S, 0, 'Normal');
      online(pm, S, S, 0, 'Movable');
      const held = pm.alloc({ count: 300, order: 2 });
      assert.ok(held.every((p) => p >= S), 'movable allocations prefer ZONE_MOVABLE');
      const before = pm.zoneInfo(0, 'Normal')!.free;
      pm.isolateRange(S, S);
      const r = pm.migrateRange(S, S, [0]);
      assert.equal(r.from.length, 300);
      assert.equal(r.enomem, 0);
      assert.ok(Array.from(r.to).every((p) => p < S));
      assert.ok(Array.from(r.order).every((o) => o === 2));
      assert.equal(pm.zoneInfo(0, 'Normal')!.free, before - 1200);
      assert.equal(pm.zoneInfo(0, 'Normal')!.allocated.movable, 1200);
      assert.equal(pm.scanMovablePages(S, S), null);
      assert.equal(pm.testPagesIsolated(S, S), null);
      ok(pm);
    });

    it('leaves blocks in place and reports ENOMEM when no target has room', () => {
      const pm = new PhysMem();
      pm.addSections(0, 2 * S, 0);
      online(pm, 0, S, 0, 'Normal');
      online(pm, S, S, 0, 'Movable');
      const mov = pm.alloc({ count: 10, order: 10 });
      const fill = pm.alloc({ count: S, kind: 'unmovable' });
      assert.equal(fill.length, S);
      expectErr(() => offline(pm, S, S, [0]), 'ENOMEM');
      assert.equal(pm.zoneInfo(0, 'Movable')!.allocated.movable, 10 * 1024);
      assert.equal(pm.pageblockInfo(S).isolated, false);
      assert.ok(mov.every((p) => pm.pageState(p).state === 'movable'));
      ok(pm);
    });

    it('never moves pinned pages; test_pages_isolated then fails on them', () => {
      const pm = new PhysMem();
      pm.addSections(0, 2 * S, 0);
      online(pm, 0, S, 0, 'Normal');
      online(pm, S, S, 0, 'Movable');
      const [p] = pm.alloc({ count: 1 });
      pm.pin([p!]);
      pm.isolateRange(S, S);
      const r = pm.migrateRange(S, S, [0]);
      assert.equal(r.pinned, 1);
      assert.equal(pm.scanMovablePages(S, S), p, 'a pinned page is still an LRU page for the scanner');
      assert.equal(pm.testPagesIsolated(S, S), p);
      expectErr(() => pm.offlineIsolatedPages(S, S), 'EBUSY', p);
      pm.undoIsolateRange(S, S);
      pm.unpin([p!]);
      assert.equal(offline(pm, S, S, [0]), S);
      ok(pm);
    });

    it('skips hwpoisoned pages when offlining, counting them as managed', () => {
      const pm = new PhysMem();
      pm.addSections(0, S, 0);
      online(pm, 0, S, 0, 'Normal');
      pm.hwpoison(1000);
      assert.equal(pm.pageState(1000).state, 'hwpoison');
      assert.equal(pm.zoneInfo(0, 'Normal')!.free, S - 1);
      ok(pm);
      assert.equal(offline(pm, 0, S, []), S);
      ok(pm);
    });
  });

  describe('zone span bookkeeping (docs/kernel-behaviour.md#zone-and-node-spans)', () => {
    function fourBlocks(): PhysMem {
      const pm = new PhysMem();
      pm.addSections(4 * S, 4 * S, 0);
      for (let i = 4; i < 8; i++) online(pm, i * S, S, 0, 'Movable');
      return pm;
    }

    it('a range in the middle leaves a hole and changes nothing', () => {
      const pm = fourBlocks();
      offline(pm, 5 * S, S, [0]);
      const z = pm.zoneInfo(0, 'Movable')!;
      assert.deepEqual([z.start, z.spanned], [4 * S, 4 * S]);
      ok(pm);
    });

    it('removing at the start moves the start to the next online pfn of the zone', () => {
      const pm = fourBlocks();
      offline(pm, 5 * S, S, [0]);
      offline(pm, 4 * S, S, [0]);
      const z = pm.zoneInfo(0, 'Movable')!;
      assert.deepEqual([z.start, z.spanned], [6 * S, 2 * S]);
      ok(pm);
    });

    it('removing at the end moves the end back to the last online pfn', () => {
      const pm = fourBlocks();
      offline(pm, 7 * S, S, [0]);
      const z = pm.zoneInfo(0, 'Movable')!;
      assert.deepEqual([z.start, z.spanned], [4 * S, 3 * S]);
      assert.deepEqual(pm.nodeSpan(0), { start: 4 * S, spanned: 3 * S });
      ok(pm);
    });

    it('removing the last online range empties the zone', () => {
      const pm = new PhysMem();
      pm.addSections(4 * S, S, 0);
      online(pm, 4 * S, S, 0, 'Movable');
      offline(pm, 4 * S, S, [0]);
      const z = pm.zoneInfo(0, 'Movable')!;
      assert.deepEqual([z.start, z.spanned], [0, 0]);
      assert.deepEqual(pm.nodeSpan(0), { start: 0, spanned: 0 });
      ok(pm);
    });

    it('grows the span over a gap when a block beyond the end comes online', () => {
      const pm = new PhysMem();
      pm.addSections(4 * S, 4 * S, 0);
      online(pm, 4 * S, S, 0, 'Movable');
      online(pm, 7 * S, S, 0, 'Movable');
      const z = pm.zoneInfo(0, 'Movable')!;
      assert.deepEqual([z.start, z.spanned], [4 * S, 4 * S]);
    });

    it('an online failure path (init, then remove) restores the empty span', () => {
      const pm = new PhysMem();
      pm.addSections(4 * S, S, 0);
      pm.moveRangeToZone(4 * S, S, 0, 'Normal', { reserved: true });
      pm.removeRangeFromZone(4 * S, S);
      const z = pm.zoneInfo(0, 'Normal')!;
      assert.deepEqual([z.start, z.spanned, z.present], [0, 0, 0]);
      ok(pm);
    });
  });

  describe('sections', () => {
    it('rejects overlapping and misaligned adds, and removal of zone memory', () => {
      const pm = new PhysMem();
      pm.addSections(0, 2 * S, 0);
      expectErr(() => pm.addSections(S, S, 0), 'EEXIST', S);
      expectErr(() => pm.addSections(3 * S + 1, S, 0), 'EINVAL');
      online(pm, 0, S, 0, 'Normal');
      expectErr(() => pm.removeSections(0, S), 'EBUSY');
      pm.removeSections(S, S);
      assert.equal(pm.sectionInfo(S).present, false);
      expectErr(() => pm.moveRangeToZone(S, S, 0, 'Normal'), 'EINVAL', S);
      ok(pm);
    });

    it('keeps uniform sections without a page array: a free section costs no per-page memory', () => {
      const pm = new PhysMem();
      pm.addSections(0, 64 * S, 0);
      online(pm, 0, 64 * S, 0, 'Normal');
      const perPage = pm.nativeBytes() / (64 * S);
      assert.ok(perPage < 0.05, `${perPage} bytes/page`);
      const a = pm.alloc({ count: 1 });
      assert.ok(pm.nativeBytes() >= 16384, 'a touched section gets its 4-bit page array');
      pm.free(a);
      assert.ok(pm.nativeBytes() / (64 * S) < 0.05, 'and drops it when the section is whole again');
    });
  });

  describe('property: random operation sequences keep every invariant', () => {
    type Op =
      | { op: 'alloc'; count: number; order: number; kind: 'movable' | 'unmovable' | 'reclaimable'; nid: number }
      | { op: 'free'; pick: number; n: number }
      | { op: 'pin'; pick: number }
      | { op: 'offline'; block: number }
      | { op: 'online'; block: number; zone: 'Normal' | 'Movable' }
      | { op: 'isolate'; block: number; pb: number; n: number }
      | { op: 'poison'; pfn: number };

    const BLOCKS = 6; // sections 0..5: node 0 owns 0..2, node 1 owns 3..5
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constant('alloc' as const), count: fc.integer({ min: 1, max: 300 }), order: fc.integer({ min: 0, max: 10 }), kind: fc.constantFrom('movable' as const, 'unmovable' as const, 'reclaimable' as const), nid: fc.integer({ min: 0, max: 1 }) }),
      fc.record({ op: fc.constant('free' as const), pick: fc.nat(), n: fc.integer({ min: 1, max: 200 }) }),
      fc.record({ op: fc.constant('pin' as const), pick: fc.nat() }),
      fc.record({ op: fc.constant('offline' as const), block: fc.integer({ min: 0, max: BLOCKS - 1 }) }),
      fc.record({ op: fc.constant('online' as const), block: fc.integer({ min: 0, max: BLOCKS - 1 }), zone: fc.constantFrom('Normal' as const, 'Movable' as const) }),
      fc.record({ op: fc.constant('isolate' as const), block: fc.integer({ min: 0, max: BLOCKS - 1 }), pb: fc.integer({ min: 0, max: 63 }), n: fc.integer({ min: 1, max: 8 }) }),
      fc.record({ op: fc.constant('poison' as const), pfn: fc.integer({ min: 0, max: BLOCKS * S - 1 }) }),
    );

    it('checkInvariants() is clean after every step', () => {
      fc.assert(
        fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), (ops) => {
          const pm = new PhysMem();
          pm.addSections(0, 3 * S, 0);
          pm.addSections(3 * S, 3 * S, 1);
          const isOnline = new Array<boolean>(BLOCKS).fill(false);
          for (let b = 0; b < BLOCKS; b++) {
            online(pm, b * S, S, b < 3 ? 0 : 1, b % 3 === 2 ? 'Movable' : 'Normal');
            isOnline[b] = true;
          }
          let held: number[] = [];
          for (const o of ops) {
            switch (o.op) {
              case 'alloc':
                held.push(...pm.alloc({ count: o.count, order: o.order, kind: o.kind, nid: o.nid }));
                break;
              case 'free': {
                if (!held.length) break;
                const at = o.pick % held.length;
                const batch = held.slice(at, at + o.n).filter((p) => pm.pageState(p).state !== 'pinned');
                pm.free(batch);
                const gone = new Set(batch);
                held = held.filter((p) => !gone.has(p));
                break;
              }
              case 'pin':
                if (held.length) {
                  const p = held[o.pick % held.length]!;
                  if (pm.pageState(p).state === 'movable') pm.pin([p]);
                }
                break;
              case 'offline': {
                if (!isOnline[o.block]) break;
                const start = o.block * S;
                const nid = o.block < 3 ? 0 : 1;
                try {
                  pm.isolateRange(start, S, 'Movable');
                } catch (e) {
                  assert.ok(e instanceof KernelError && e.code === 'EBUSY');
                  break;
                }
                const r = pm.migrateRange(start, S, [1 - nid, nid]);
                const moved = new Map<number, number>();
                r.from.forEach((f, i) => moved.set(f, r.to[i]!));
                held = held.map((p) => moved.get(p) ?? p);
                if (r.enomem || r.pinned) {
                  pm.undoIsolateRange(start, S, 'Movable');
                  break;
                }
                assert.equal(pm.testPagesIsolated(start, S), null);
                pm.offlineIsolatedPages(start, S);
                pm.adjustPresentPages(start, -S);
                pm.removeRangeFromZone(start, S);
                isOnline[o.block] = false;
                break;
              }
              case 'online':
                if (isOnline[o.block]) break;
                online(pm, o.block * S, S, o.block < 3 ? 0 : 1, o.zone);
                isOnline[o.block] = true;
                break;
              case 'isolate': {
                if (!isOnline[o.block]) break;
                const start = o.block * S + o.pb * PB;
                const n = Math.min(o.n, 64 - o.pb) * PB;
                try {
                  pm.isolateRange(start, n);
                  assert.deepEqual(pm.checkInvariants(), []);
                  pm.undoIsolateRange(start, n);
                } catch (e) {
                  assert.ok(e instanceof KernelError && e.code === 'EBUSY');
                }
                break;
              }
              case 'poison':
                if (isOnline[Math.floor(o.pfn / S)] && pm.pageState(o.pfn).state === 'free') pm.hwpoison(o.pfn);
                break;
            }
            assert.deepEqual(pm.checkInvariants(), [], `after ${JSON.stringify(o)}`);
          }
        }),
        { numRuns: 60, seed: 20261121 },
      );
    });
  });
});
