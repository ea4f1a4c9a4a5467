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
});
