/**
 * Figures of the native page-frame core (issue 2). Every ratio is against a baseline measured in the
 * same run; absolute times are reported, never asserted.
 */
import { PhysMem, PAGES_PER_SECTION as S } from '../lib/native/physmem.js';
import { timeIt, type Figure } from './figure.js';

const TIB_SECTIONS = 8192; // 1 TiB of 128 MiB blocks

function onlineBlock(pm: PhysMem, start: number): void {
  pm.moveRangeToZone(start, S, 0, 'Normal', { isolate: true });
  pm.onlinePagesRange(start, S);
  pm.adjustPresentPages(start, S);
  pm.undoIsolateRange(start, S, 'Movable');
}

function offlineBlock(pm: PhysMem, start: number): void {
  pm.isolateRange(start, S, 'Movable');
  if (pm.scanMovablePages(start, S) !== null || pm.testPagesIsolated(start, S) !== null) throw new Error('block not offlinable');
  pm.offlineIsolatedPages(start, S);
  pm.adjustPresentPages(start, -S);
  pm.removeRangeFromZone(start, S);
}

function machine(sections: number): PhysMem {
  const pm = new PhysMem();
  pm.addSections(0, sections * S, 0);
  return pm;
}

/** Runs the native benchmarks and returns their figures. */
export async function figures(): Promise<Record<string, Figure>> {
  // Order-0 alloc + free through the bulk API, 256 Ki pages per batch on a 4 GiB zone.
  const pm = machine(32);
  for (let b = 0; b < 32; b++) onlineBlock(pm, b * S);
  const batch = 1 << 18;
  const t = timeIt(() => {
    const pfns = pm.alloc({ count: batch });
    if (pfns.length !== batch) throw new Error('allocation failed');
    pm.free(pfns);
  }, 1500);
  const allocFree = batch / t;
  // The same pages freed in a scrambled order: every free goes through the buddy-merge path.
  const scrambled = (pfns: Float64Array): Float64Array => {
    const out = new Float64Array(pfns.length);
    const stride = 4099; // coprime with the batch size: a fixed permutation
    for (let i = 0; i < pfns.length; i++) out[i] = pfns[(i * stride) % pfns.length]!;
    return out;
  };
  const tSlow = timeIt(() => {
    const pfns = pm.alloc({ count: batch });
    pm.free(scrambled(pfns));
  }, 1000);

  // 1 TiB: online then offline every block at the native level.
  const tib = machine(TIB_SECTIONS);
  const t0 = performance.now();
  for (let b = 0; b < TIB_SECTIONS; b++) onlineBlock(tib, b * S);
  const onlineMs = performance.now() - t0;
  const bytesPerPage = tib.nativeBytes() / (TIB_SECTIONS * S);
  for (let b = 0; b < TIB_SECTIONS; b++) offlineBlock(tib, b * S);
  const cycleS = (performance.now() - t0) / 1000;
  // The baseline: filling one bit per page of 1 TiB (a 32 MiB plane) with a TypedArray fill.
  const plane = new Uint8Array(32 << 20);
  const fillS = timeIt(() => plane.fill(0xff), 300);

  // 16 TiB created and fully onlined; RSS of the whole process afterwards.
  const big = machine(16 * TIB_SECTIONS);
  for (let b = 0; b < 16 * TIB_SECTIONS; b++) onlineBlock(big, b * S);
  const rss = process.memoryUsage().rss;
  if (big.zoneInfo(0, 'Normal')!.present !== 16 * TIB_SECTIONS * S) throw new Error('16 TiB machine not fully online');
  // The full invariant scan of that machine: every section is uniform (free in max-order blocks), so the
  // scan should cost per section, not per page.
  const tc = performance.now();
  const bad = big.checkInvariants();
  const checkS = (performance.now() - tc) / 1000;
  if (bad.length) throw new Error(`16 TiB machine inconsistent: ${bad[0]}`);

  return {
    alloc_free_pages_per_s: { value: Math.round(allocFree), unit: 'pages/s', goal: '>= 20e6' },
    alloc_free_scrambled_pages_per_s: { value: Math.round(batch / tSlow), unit: 'pages/s', goal: 'merge path, for reference' },
    native_bytes_per_page: { value: bytesPerPage, unit: 'bytes/page', goal: '<= 0.5' },
    online_offline_1tib_s: { value: cycleS, unit: 's', goal: '< 0.5' },
    online_offline_1tib_vs_fill_ratio: { value: cycleS / fillS, unit: 'ratio', goal: `1 TiB online ${onlineMs.toFixed(0)} ms` },
    rss_16tib_bytes: { value: rss, unit: 'bytes', goal: '<= 2 GiB' },
    check_invariants_16tib_s: { value: checkS, unit: 's', goal: '< 1 (uniform sections cost no page scan)' },
  };
}
