/**
 * checkInvariants() accounts a uniform section (no page array) per pageblock or max-order block: these
 * machines hold uniform sections of every kind, with the zones and isolation differing from block to
 * block, and the recount must agree with the counters exactly (a miscount shows as a violation).
 */
import assert from 'node:assert/strict';
import { PhysMem, PAGES_PER_SECTION as S, PAGEBLOCK_NR_PAGES as PB } from '../../lib/native/physmem.js';

describe('checkInvariants on uniform sections', () => {
  it('free sections whose max-order blocks lie in two zones and are partly isolated', () => {
    const pm = new PhysMem();
    pm.addSections(0, 2 * S, 0);
    pm.moveRangeToZone(0, S / 2, 0, 'DMA32', { isolate: false });
    pm.moveRangeToZone(S / 2, S / 2 + S, 0, 'Normal', { isolate: false });
    pm.onlinePagesRange(0, S / 2);
    pm.onlinePagesRange(S / 2, S / 2 + S);
    pm.adjustPresentPages(0, S / 2);
    pm.adjustPresentPages(S / 2, S / 2 + S);
    // Both sections are now free in max-order blocks only, which is the uniform encoding.
    assert.ok(pm.nativeBytes() < S / 2, `${pm.nativeBytes()} bytes: no page array is left`);
    pm.isolateRange(S / 2, 4 * PB);
    pm.isolateRange(S + 8 * PB, 2 * PB);
    assert.deepEqual(pm.checkInvariants(), []);
    assert.equal(pm.zoneInfo(0, 'DMA32')!.free, S / 2);
    assert.equal(pm.zoneInfo(0, 'Normal')!.isolatedFree, 6 * PB);
    assert.equal(pm.zoneInfo(0, 'Normal')!.freeArea.Isolate[10], 3);
  });

  it('sections that are uninitialised, PageOffline or PageReserved throughout', () => {
    const pm = new PhysMem();
    pm.addSections(0, 4 * S, 1);
    pm.moveRangeToZone(S, S, 1, 'Normal', { isolate: true }); // PageOffline
    pm.moveRangeToZone(2 * S, S, 1, 'Normal', { reserved: true, isolate: false }); // PageReserved
    pm.adjustPresentPages(S, 2 * S);
    assert.deepEqual(pm.checkInvariants(), []);
    const z = pm.zoneInfo(1, 'Normal')!;
    assert.deepEqual([z.present, z.managed, z.allocated.reserved], [2 * S, 0, S]);
    // Present counts exactly the initialised pages: one too many or too few is reported.
    pm.adjustPresentPages(S, -1);
    assert.match(pm.checkInvariants().join('\n'), /present 65535, counted 65536/);
  });
});
