/**
 * Figures of the native page-frame core (issue 2). Every ratio is against a baseline measured in the
 * same run; absolute times are reported, never asserted.
 */
import { PhysMem, PAGES_PER_SECTION as S } from '../lib/native/physmem.js';
import { cpuRate, cpuSeconds, timeIt, type Figure } from './figure.js';
import { MixedWorkload } from './mixed.js';

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

/**
 * The mixed workload (bench/mixed.ts) fragmenting 1 TiB; returns its ops per CPU second while 97-99%
 * full and the native bytes per page afterwards.
 */
function fragmented(): { fragRate: number; fragBytes: number } {
  // The workload allocates until 97% of the zone is in use (the top of
  // memory first, as the buddy's LIFO lists hand it out, so down to the lowest 3%: nearly every section
  // gets a page array), then keeps live pages between 97% and 99% for 8M more ops, its frees leaving
  // holes all over the terabyte that later allocations only partly refill. A loaded machine runs that
  // way: free memory a few percent (the watermarks), scattered. The native bytes per page are taken after.
  const frag = machine(TIB_SECTIONS);
  for (let b = 0; b < TIB_SECTIONS; b++) onlineBlock(frag, b * S);
  const fw = new MixedWorkload(frag, { zonePages: TIB_SECTIONS * S, seed: 2, maxBatch: 1024, lo: 0.97, hi: 0.99 });
  while (fw.livePages < 0.97 * TIB_SECTIONS * S) fw.step();
  const fc0 = cpuSeconds();
  let fragOps = 0;
  while (fragOps < 8e6) fragOps += fw.step();
  const fragRate = fragOps / (cpuSeconds() - fc0);
  const fragBytes = frag.nativeBytes() / (TIB_SECTIONS * S);
  const fragBad = frag.checkInvariants();
  if (fragBad.length) throw new Error(`fragmented 1 TiB machine inconsistent: ${fragBad[0]}`);
  return { fragRate, fragBytes };
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

  // The mixed workload of issue 15 (bench/mixed.ts) on the same 4 GiB zone, emptied first: live pages
  // swing between 1/4 and 3/4 of the zone, calls of up to 1024 blocks (512 on average). Best of
  // batches of >= 500k ops, by CPU time (see cpuRate).
  const mixed = new MixedWorkload(pm, { zonePages: 32 * S, seed: 1, maxBatch: 1024, lo: 0.25, hi: 0.75 });
  for (let ops = 0; ops < 1e6; ) ops += mixed.step(); // warm: the zone fragmented, the JIT settled
  const mixedRate = cpuRate(() => {
    let ops = 0;
    while (ops < 5e5) ops += mixed.step();
    return ops;
  }, 1500);

  const { fragRate, fragBytes } = fragmented();

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
    alloc_free_mixed_ops_per_s: { value: Math.round(mixedRate), unit: 'ops/s', goal: '>= 21e6 (CPU time)' },
    alloc_free_mixed_1tib_ops_per_s: { value: Math.round(fragRate), unit: 'ops/s', goal: 'for reference (CPU time, 97-99% full)' },
    native_bytes_per_page_fragmented: { value: fragBytes, unit: 'bytes/page', goal: '<= 0.6' },
    native_bytes_per_page: { value: bytesPerPage, unit: 'bytes/page', goal: '<= 0.5' },
    online_offline_1tib_s: { value: cycleS, unit: 's', goal: '< 0.5' },
    online_offline_1tib_vs_fill_ratio: { value: cycleS / fillS, unit: 'ratio', goal: `1 TiB online ${onlineMs.toFixed(0)} ms` },
    rss_16tib_bytes: { value: rss, unit: 'bytes', goal: '<= 2 GiB' },
    check_invariants_16tib_s: { value: checkS, unit: 's', goal: '< 1 (uniform sections cost no page scan)' },
  };
}
