/**
 * A small seeded PRNG for the fuzzer: xoshiro128** (Blackman and Vigna, 2018; 32-bit output, period
 * 2^128 - 1) seeded through splitmix32, so any 32-bit seed (0 included) gives a well-mixed state. Plain
 * integer arithmetic only: the same seed gives the same sequence on every platform and Node version.
 */

/** One round of splitmix32 (Steele, Lea and Flood): a well-mixed 32-bit value from any state. */
function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** Mix several integers (a campaign seed, a run index, a kernel's name) into one 32-bit seed. */
export function mixSeed(...parts: readonly (number | string)[]): number {
  const st = { s: 0x6d656d68 }; // 'memh'
  let h = 0;
  for (const p of parts) {
    const words = typeof p === 'number' ? [p >>> 0, Math.floor(p / 2 ** 32) >>> 0] : [...p].map((c) => c.codePointAt(0)!);
    for (const w of [...words, 0xffffffff]) {
      st.s = (st.s ^ w) | 0;
      h = (h ^ splitmix32(st)) >>> 0;
    }
  }
  return h;
}

const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k));

/** A seeded random source (xoshiro128**) with the draws the generator needs. */
export class Rng {
  #s: [number, number, number, number];

  /** Seed from a 32-bit integer (other numbers are reduced modulo 2^32). */
  constructor(seed: number) {
    const st = { s: seed | 0 };
    this.#s = [splitmix32(st), splitmix32(st), splitmix32(st), splitmix32(st)];
  }

  /** The next 32-bit unsigned integer. */
  next(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** A whole number in [lo, hi] (both inclusive; the range must be below 2^32). */
  int(lo: number, hi: number): number {
    const n = hi - lo + 1;
    // Rejection sampling: no modulo bias.
    const limit = Math.floor(2 ** 32 / n) * n;
    let x = this.next();
    while (x >= limit) x = this.next();
    return lo + (x % n);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p * 2 ** 32;
  }

  /** One element of a non-empty list, uniformly. */
  pick<T>(xs: readonly T[]): T {
    if (!xs.length) throw new RangeError('Rng.pick: empty list');
    return xs[this.int(0, xs.length - 1)]!;
  }

  /** One key of a table of weights (entries with weight 0 never come up; at least one must be positive). */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = (Object.entries(weights) as [K, number][]).filter(([, w]) => w > 0);
    const total = entries.reduce((t, [, w]) => t + w, 0);
    if (!(total > 0)) throw new RangeError('Rng.weighted: no positive weight');
    let x = (this.next() / 2 ** 32) * total;
    for (const [k, w] of entries) if ((x -= w) < 0) return k;
    return entries.at(-1)![0];
  }
}
