/**
 * Byte sizes as users write them (`'4G'`, `'128M'`, `'0x8000000'`, `1n << 30n`), read with QEMU's
 * binary units. Shared by the simulator and the QMP layer.
 */

/** A size in bytes: a number, a bigint, or a string such as `'128M'`, `'1G'`, `'1GiB'`, `'0x8000000'`. */
export type Size = number | bigint | string;

const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };

/** The byte count of a {@link Size}, or null when it is not a non-negative whole number of bytes (below 2^53). */
export function sizeBytes(s: Size): number | null {
  let n: number;
  if (typeof s === 'string') {
    const m = /^\s*(0x[0-9a-f]+|\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$/i.exec(s);
    n = m ? Number(m[1]) * (UNITS[(m[2] ?? '').toUpperCase()] ?? NaN) : NaN;
  } else n = Number(s);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}

/** `128 MiB`, `1 GiB`, or bytes when no binary unit divides evenly. */
export function formatSize(n: number): string {
  for (const u of ['P', 'T', 'G', 'M', 'K'] as const) {
    const f = UNITS[u] as number;
    if (n >= f && n % f === 0) return `${n / f} ${u}iB`;
  }
  return `${n} B`;
}
