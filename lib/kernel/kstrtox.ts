/**
 * Integer parsing as lib/kstrtox.c does it with base 0 (what sysfs, debugfs and module parameters use):
 * an optional sign, `0x` hex or `0` octal prefixes, one trailing newline allowed; EINVAL for anything
 * else, ERANGE beyond the type (an overflowing run of digits is ERANGE even with junk after it).
 */
import { KernelError } from '../errors.js';

/** The value of a digit in any base up to 16, or 99 for a character that is none. */
function digit(c: string | undefined): number {
  if (c === undefined) return 99;
  const d = parseInt(c, 16);
  return Number.isNaN(d) ? 99 : d;
}

/**
 * _kstrtoull after an optional sign the caller allows: _parse_integer_fixup_radix (base 0: `0x` + a hex
 * digit is hex, a leading `0` octal, else decimal), _parse_integer over the longest run of digits —
 * overflow is ERANGE whatever follows — then no digits EINVAL, one `\n`, and anything left EINVAL.
 */
function magnitude(raw: string, signs: string, what: string, base: 0 | 10 = 0): { neg: boolean; mag: bigint } {
  // The parser reads a C string: it ends at the first NUL, whatever the write held after it.
  const nul = raw.indexOf('\0');
  const s = nul < 0 ? raw : raw.slice(0, nul);
  let i = 0;
  const neg = s[0] === '-' && signs.includes('-');
  if (neg || (s[0] === '+' && signs.includes('+'))) i = 1;
  let b: number = base;
  if (b === 0) b = s[i] === '0' ? ((s[i + 1] === 'x' || s[i + 1] === 'X') && digit(s[i + 2]) < 16 ? 16 : 8) : 10;
  if (b === 16) i += 2;
  let mag = 0n;
  let n = 0;
  for (; digit(s[i]) < b; i++, n++) mag = mag * BigInt(b) + BigInt(digit(s[i]));
  if (mag >= 1n << 64n) throw new KernelError('ERANGE', `${what}: ${JSON.stringify(s)} out of range`);
  if (n === 0) throw new KernelError('EINVAL', `${what}: invalid number ${JSON.stringify(s)}`);
  if (s[i] === '\n') i++;
  if (i < s.length) throw new KernelError('EINVAL', `${what}: invalid number ${JSON.stringify(s)}`);
  return { neg, mag };
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
