/**
 * The mixed workload of issue 15 item 5: order-0..3 allocations and frees in a seeded random
 * interleaving, freed in scrambled order, through the bulk calls a workload uses (`alloc({count,
 * order})`, `free(pfns)`, as `Machine.alloc` / `Machine.free` and the scenario runner call them).
 *
 * Each step is one call: an allocation of 1..`maxBatch` blocks of one random order 0..3, or a free of
 * 1..`maxBatch` live blocks picked at random among all live blocks, in the random order they were picked
 * (so neighbours are almost never freed together and nearly every free goes through the merge path).
 * Whether a step allocates or frees keeps the live pages between `lo` and `hi` of the zone: below `lo`
 * it allocates, above `hi` it frees, in between it flips a coin. An op is one block allocated or freed.
 */
import type { PhysMem } from '../lib/native/physmem.js';

/** mulberry32: a small seeded PRNG, so every run (and every build) makes the same calls. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Options of {@link MixedWorkload}. */
export interface MixedOptions {
  /** Pages of the zone the workload runs in (occupancy is measured against it). */
  zonePages: number;
  /** Seed of the interleaving. */
  seed: number;
  /** Largest number of blocks in one call. */
  maxBatch: number;
  /** Occupancy below which a step always allocates. */
  lo: number;
  /** Occupancy above which a step always frees. */
  hi: number;
  /** Called with every array of pfns an allocation returned (to pin the sequence in a test). */
  onAlloc?: (pfns: Float64Array, order: number) => void;
}

/**
 * A seeded mixed alloc/free workload over one PhysMem; {@link step} makes one call. A live block is
 * kept as `pfn + order / 4` (exact: pfns are below 2^40), so picking one at random touches one array.
 */
export class MixedWorkload {
  private live: Float64Array;
  private n = 0;
  /** Pages currently allocated by this workload. */
  livePages = 0;
  private readonly rand: () => number;

  /** Sets up an empty workload; nothing is allocated until {@link step}. */
  constructor(
    private readonly pm: PhysMem,
    private readonly o: MixedOptions,
  ) {
    this.rand = prng(o.seed);
    this.live = new Float64Array(1 << 16);
  }

  /** One call; returns the blocks it allocated or freed (0 when an allocation found no memory). */
  step(): number {
    const occ = this.livePages / this.o.zonePages;
    const r = this.rand();
    const doAlloc = this.n === 0 || occ < this.o.lo || (occ <= this.o.hi && r < 0.5);
    const count = 1 + Math.floor(this.rand() * this.o.maxBatch);
    if (doAlloc) {
      const order = Math.floor(this.rand() * 4);
      const got = this.pm.alloc({ count, order });
      this.o.onAlloc?.(got, order);
      this.push(got, order);
      return got.length;
    }
    const k = Math.min(count, this.n);
    // Partial Fisher-Yates: the k picked blocks end up at the tail, in the order they were picked.
    const live = this.live;
    for (let i = 0; i < k; i++) {
      const last = this.n - 1 - i;
      const j = Math.floor(this.rand() * (last + 1));
      const v = live[j]!;
      live[j] = live[last]!;
      const pfn = Math.floor(v);
      live[last] = pfn;
      this.livePages -= 1 << ((v - pfn) * 4);
    }
    this.n -= k;
    this.pm.free(live.subarray(this.n, this.n + k));
    return k;
  }

  private push(pfns: Float64Array, order: number): void {
    const need = this.n + pfns.length;
    if (need > this.live.length) {
      let cap = this.live.length;
      while (cap < need) cap *= 2;
      const l = new Float64Array(cap);
      l.set(this.live.subarray(0, this.n));
      this.live = l;
    }
    const live = this.live;
    const tag = order / 4;
    for (let i = 0, at = this.n; i < pfns.length; i++, at++) live[at] = pfns[i]! + tag;
    this.n = need;
    this.livePages += pfns.length << order;
  }
}
