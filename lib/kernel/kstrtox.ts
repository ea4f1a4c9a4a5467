/**
 * Integer parsing as lib/kstrtox.c does it with base 0 (what sysfs, debugfs and module parameters use):
 * an optional sign, `0x` hex or `0` octal prefixes, one trailing newline allowed; EINVAL for anything
 * else, ERANGE beyond the type.
 */
import { KernelError } from '../errors.js';

// _kstrtoull: the magnitude after an optional sign the caller allows; base 0 reads 0x/0 prefixes, base 10 none.
function magnitude(raw: string, signs: string, what: string, base: 0 | 10 = 0): { neg: boolean; mag: bigint } {
  // The parser reads a C string: it ends at the first NUL, whatever the write held after it.
  const nul = raw.indexOf('\0');
  const s = nul < 0 ? raw : raw.slice(0, nul);
  const digits = base === 10 ? '[0-9]+' : '0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*';
  const m = new RegExp(`^([${signs}]?)(${digits})\\n?$`).exec(s);
  if (!m) throw new KernelError('EINVAL', `${what}: invalid number ${JSON.stringify(s)}`);
  const d = m[2]!;
  const mag = base === 10 ? BigInt(d) : /^0[xX]/.test(d) ? BigInt(d) : d.length > 1 && d[0] === '0' ? BigInt('0o' + d.slice(1)) : BigInt(d);
  if (mag >= 1n << 64n) throw new KernelError('ERANGE', `${what}: ${JSON.stringify(s)} out of range`);
  return { neg: m[1] === '-', mag };
}

/** `kstrtoull(s, base)` (base 0 by default): an optional `+`; a `-` is EINVAL. */
export function kstrtoull(s: string, base: 0 | 10 = 0): bigint {
  return magnitude(s, '+', 'kstrtoull', base).mag;
}

/** `kstrtoll(s, 0)`: signed 64 bits. */
export function kstrtoll(s: string): bigint {
  const { neg, mag } = magnitude(s, '+-', 'kstrtoll');
  const v = neg ? -mag : mag;
  if (v > 2n ** 63n - 1n || v < -(2n ** 63n)) throw new KernelError('ERANGE', `kstrtoll: ${JSON.stringify(s)} out of range`);
  return v;
}

/** `kstrtoint(s, 0)`: as kstrtoll, ERANGE outside 32 bits. */
export function kstrtoint(s: string): number {
  const v = kstrtoll(s);
  if (v > 2n ** 31n - 1n || v < -(2n ** 31n)) throw new KernelError('ERANGE', `kstrtoint: ${JSON.stringify(s)} out of range`);
  return Number(v);
}
