/**
 * The public PhysMem calls check what the kernel guarantees the functions they model (alignment, zone,
 * isolation, argument sizes) and refuse with a typed KernelError instead of corrupting the page state.
 */
import assert from 'node:assert/strict';
import { KernelError } from '../../lib/errors.js';
import { PhysMem, PAGES_PER_SECTION as S, PAGEBLOCK_NR_PAGES as PB, type ZoneType } from '../../lib/native/physmem.js';

/** A section-aligned range onlined into a zone the way online_pages does it (6.x flavour). */
function online(pm: PhysMem, start: number, nr: number, nid: number, zone: ZoneType): void {
  pm.moveRangeToZone(start, nr, nid, zone, { isolate: true });
  pm.onlinePagesRange(start, nr);
  pm.adjustPresentPages(start, nr);
  pm.undoIsolateRange(start, nr, 'Movable');
}

function expectErr(fn: () => unknown, code: string, message?: RegExp): KernelError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof KernelError, `expected KernelError ${code}, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return e;
  }
  assert.fail(`expected ${code}`);
}

describe('PhysMem preconditions', () => {
  describe('offlineIsolatedPages (__offline_isolated_pages) on the range offline_pages guarantees', () => {
    it('refuses a range whose end splits a free max-order buddy, taking nothing (issue #13 row 5)', () => {
      const pm = new PhysMem();
      pm.addSections(0, 2 * S, 0);
      online(pm, 0, S, 0, 'Normal');
      online(pm, S, S, 0, 'Normal');
      pm.isolateRange(S, S, 'Movable');
      // 61 pageblocks: the end falls in the middle of the free order-10 block at S + 30720.
      const nr = 61 * PB;
      assert.equal(nr, 31_232);
      expectErr(() => pm.offlineIsolatedPages(S, nr), 'EINVAL', /splits the free order-10 block/);
      assert.deepEqual(pm.checkInvariants(), []);
      assert.equal(pm.zoneInfo(0, 'Normal')!.managed, 2 * S, 'no managed page was taken');
      assert.equal(pm.sectionInfo(S).online, true);
      pm.undoIsolateRange(S, S, 'Movable');
      assert.equal(pm.alloc({ count: 2 * S }).length, 2 * S, 'every page is still allocatable');
      assert.deepEqual(pm.checkInvariants(), []);
    });

    it('refuses a range whose start splits a free buddy, and a range over two zones', () => {
      const pm = new PhysMem();
      pm.addSections(0, 2 * S, 0);
      online(pm, 0, S, 0, 'Normal');
      online(pm, S, S, 0, 'Movable');
      pm.isolateRange(0, 2 * S, 'Movable');
      expectErr(() => pm.offlineIsolatedPages(PB, S - PB), 'EINVAL', /splits the free order-10 block/);
      expectErr(() => pm.offlineIsolatedPages(S - 1024, 2048), 'EINVAL', /several zones/);
      assert.deepEqual(pm.checkInvariants(), []);
      // The same ranges on block boundaries are fine.
      assert.equal(pm.offlineIsolatedPages(S - 1024, 1024), 1024);
      pm.adjustPresentPages(S - 1024, -1024);
      assert.equal(pm.offlineIsolatedPages(S, S), S);
      pm.adjustPresentPages(S, -S);
      assert.deepEqual(pm.checkInvariants(), []);
    });
  });

  describe('pageblock flags stay alike over every block (found by the hostile-call fuzzer)', () => {
    it('moveRangeToZone into a pageblock that already holds free pages keeps them on the right free list', () => {
      const pm = new PhysMem();
      pm.addSections(0, S, 0);
      pm.moveRangeToZone(0, 100, 0, 'Normal', { isolate: true, migratetype: 'Unmovable' });
      pm.adjustPresentPages(0, 100);
      pm.onlinePagesRange(0, 100);
      pm.undoIsolateRange(0, PB, 'Movable');
      // memmap_init_range sets a migratetype at pageblock-aligned pfns only: pageblock 0 keeps Movable.
      pm.moveRangeToZone(100, 50, 0, 'Normal', { isolate: true, migratetype: 'Unmovable' });
      pm.adjustPresentPages(100, 50);
      assert.deepEqual(pm.checkInvariants(), []);
      assert.equal(pm.pageblockInfo(0).migratetype, 'Movable');
      // A range that starts a pageblock sets it, moving the free pages already there to the new list.
      pm.moveRangeToZone(PB + 10, 10, 0, 'Normal', { isolate: false, migratetype: 'Movable' });
      pm.adjustPresentPages(PB + 10, 10);
      pm.onlinePagesRange(PB + 10, 10);
      pm.moveRangeToZone(PB, 10, 0, 'Normal', { isolate: true, migratetype: 'Reclaimable' });
      pm.adjustPresentPages(PB, 10);
      assert.deepEqual(pm.checkInvariants(), []);
      assert.deepEqual(pm.pageblockInfo(PB), { migratetype: 'Reclaimable', isolated: true, zone: 'Normal' });
      assert.equal(pm.zoneInfo(0, 'Normal')!.isolatedFree, 10);
    });

    it('isolating or un-isolating half of an order-10 block in use is refused; a free one is split', () => {
      const pm = new PhysMem();
      pm.addSections(0, S, 0);
      online(pm, 0, S, 0, 'Movable');
      const [big] = pm.alloc({ count: 1, order: 10 });
      const e = expectErr(() => pm.isolateRange(big! + PB, PB), 'EBUSY', /crosses the range boundary/);
      assert.equal(e.pfn, big);
      expectErr(() => pm.isolateRange(big! - PB, PB * 2), 'EBUSY', /crosses the range boundary/);
      assert.equal(pm.pageblockInfo(big!).isolated, false);
      pm.isolateRange(big!, 2 * PB);
      expectErr(() => pm.undoIsolateRange(big!, PB), 'EINVAL', /crosses the range boundary/);
      pm.undoIsolateRange(big!, 2 * PB);
      assert.deepEqual(pm.checkInvariants(), []);
      // Free: isolating both halves merges them into an isolated order-10 block; undoing one half splits it.
      pm.free([big!]);
      pm.isolateRange(0, S);
      pm.undoIsolateRange(PB, PB);
      assert.deepEqual(pm.checkInvariants(), []);
      assert.equal(pm.pageState(PB).order, 9);
      pm.undoIsolateRange(0, S);
      assert.deepEqual(pm.checkInvariants(), []);
      assert.equal(pm.pageState(0).order, 10, 'and the halves merge again once both are back');
    });
  });

  it('adjustPresentPages keeps present pages inside the zone span', () => {
    const pm = new PhysMem();
    pm.addSections(0, 2 * S, 0);
    online(pm, 0, S, 0, 'Normal');
    expectErr(() => pm.adjustPresentPages(0, 1), 'EINVAL', /span/);
    expectErr(() => pm.adjustPresentPages(0, -S - 1), 'EINVAL', /negative/);
    assert.deepEqual(pm.checkInvariants(), []);
  });

  describe('argument arrays of the typed façade (issue #13 row 11)', () => {
    const machine = (): PhysMem => {
      const pm = new PhysMem();
      pm.addSections(0, S, 0);
      pm.addSections(S, S, 1);
      online(pm, 0, S, 0, 'Normal');
      online(pm, S, S, 1, 'Normal');
      pm.isolateRange(S, S, 'Movable');
      return pm;
    };

    it('migrateRange: target nodes are node ids of this machine, checked before the node mask is sized by them', () => {
      const pm = machine();
      assert.equal(pm.nodeCount(), 2);
      for (const bad of [[2 ** 40], [1e9], [2], [-1], [0.5], [NaN], ['0' as unknown as number]]) {
        expectErr(() => pm.migrateRange(S, S, bad), 'EINVAL', /target node/);
      }
      expectErr(() => pm.migrateRange(S, S, null as unknown as number[]), 'EINVAL', /targetNodes/);
      expectErr(() => pm.migrateRange(S, S, Array.from({ length: 200_000 }, () => 0)), 'E2BIG', /200000 target nodes/);
      assert.equal(pm.migrateRange(S, S, [0, 1]).enomem, 0);
      assert.deepEqual(pm.checkInvariants(), []);
    });

    it('the native node mask is bounded by MAX_NUMNODES', () => {
      const pm = machine();
      expectErr(() => pm.raw.migrateRange(S, S, new Uint8Array(1025)), 'E2BIG');
      assert.equal(pm.raw.migrateRange(S, S, new Uint8Array(1024).fill(1)).enomem, 0);
    });

    it('free, pin and unpin take a Float64Array or an array of numbers, anything else is EINVAL', () => {
      const pm = machine();
      for (const bad of [null, undefined, 'x', 5, {}, new Uint8Array(1)]) {
        for (const call of [pm.free, pm.pin, pm.unpin]) expectErr(() => call.call(pm, bad as unknown as number[]), 'EINVAL', /pfns/);
      }
      const [p] = pm.alloc({ count: 1 });
      pm.pin([p!]);
      pm.unpin(new Float64Array([p!]));
      pm.free([p!]);
      assert.deepEqual(pm.checkInvariants(), []);
    });

    it('pageStates checks the range before sizing its result by it', () => {
      const pm = machine();
      expectErr(() => pm.pageStates(4 * S, 2 ** 30), 'EINVAL', /not in a present section/);
      expectErr(() => pm.pageStates(0, 2 ** 30 + 1), 'EINVAL', /nr/);
      assert.equal(pm.pageStates(0, 16).length, 16);
    });
  });
});
