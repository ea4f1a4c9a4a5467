/**
 * Values the generator writes: per kind of attribute, the valid spellings the kernel's parser takes
 * and a mix of near misses — odd bytes (a NUL in the middle, leading or doubled newlines, spaces),
 * signs, bases (0x, leading 0 octal, 08), out-of-range numbers, very long strings and the empty write.
 * The parsers they aim at: `mhp_online_type_from_str` (sysfs_streq), `kstrtobool`, `kstrtouint` and
 * `kstrtoll` with base 0 (lib/kstrtox.c), `param_set_*`, and `kobject_synth_uevent`.
 */
import type { Rng } from './rng.js';

/** The kinds of value an attribute takes. */
export type ValueKind = 'online-type' | 'bool' | 'uint' | 'errno-int' | 'policy' | 'uevent' | 'any';

const ONLINE_TYPES = ['online', 'offline', 'online_kernel', 'online_movable'] as const;

/** Strings no parser takes: they must fail the same way everywhere. */
const JUNK = ['', ' ', '\n', '\0', 'x', 'bogus', '-', '+', '0x', '\t1', 'on line', 'Y\0N', '\\n', '%s%s%n', 'ÿ', '\u00e9t\u00e9', '\x7f'];

/** A string of `n` copies of `c` (for very long writes: longer than a page, longer than simple_attr's 23-byte buffer). */
const long = (c: string, n: number): string => c.repeat(n);

/** Decorate a valid spelling with the odd bytes parsers trip over (sysfs_streq allows one trailing newline only). */
function decorate(rng: Rng, v: string): string {
  switch (rng.int(0, 11)) {
    case 0:
      return `${v}\n`;
    case 1:
      return `${v}\n\n`;
    case 2:
      return `\n${v}`;
    case 3:
      return ` ${v}`;
    case 4:
      return `${v} `;
    case 5:
      return `${v}\0`;
    case 6: {
      const i = rng.int(0, v.length);
      return `${v.slice(0, i)}\0${v.slice(i)}`;
    }
    case 7:
      return v.toUpperCase();
    case 8:
      return `${v}${v}`;
    case 9:
      return v.slice(0, Math.max(0, v.length - 1));
    case 10:
      return `${v}\r\n`;
    default:
      return `${v}\0${rng.pick(JUNK)}`;
  }
}

/** A number as text in one of kstrtox's bases, or a spelling it refuses. */
function numberText(rng: Rng, n: bigint): string {
  const neg = n < 0n;
  const mag = neg ? -n : n;
  const sign = neg ? '-' : rng.chance(0.1) ? '+' : '';
  switch (rng.int(0, 5)) {
    case 0:
      return `${sign}0x${mag.toString(16)}`;
    case 1:
      return `${sign}0${mag.toString(8)}`;
    case 2:
      return `${sign}0X${mag.toString(16).toUpperCase()}`;
    default:
      return `${sign}${mag}`;
  }
}

function uintValue(rng: Rng): string {
  const n = rng.pick([0n, 1n, 50n, 100n, 301n, 1000n, 65535n, 2n ** 31n - 1n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 64n, -1n, BigInt(rng.int(0, 5000))]);
  const t = numberText(rng, n);
  if (rng.chance(0.25)) return decorate(rng, t);
  if (rng.chance(0.08)) return rng.pick(['08', '0o17', '1e3', '1.5', '0b1', '١٢']);
  return t;
}

function errnoIntValue(rng: Rng): string {
  const n = rng.pick([0n, -1n, -12n, -16n, -22n, -4095n, -4096n, -5000n, 12n, -(2n ** 31n), -(2n ** 31n) - 1n, 2n ** 32n - 12n, -(2n ** 63n), -BigInt(rng.int(1, 4095))]);
  const t = numberText(rng, n);
  if (rng.chance(0.2)) return decorate(rng, t);
  // simple_attr_write keeps 23 bytes: a number padded past them.
  if (rng.chance(0.1)) return `-${long('0', rng.int(20, 26))}${rng.int(1, 99)}`;
  return t;
}

const BOOLS = ['1', '0', 'y', 'n', 'Y', 'N', 'yes', 'no', 'on', 'off', 'On', 'OFF', 'true', 'false', 't', 'f', 'e', 'd', 'E', 'D', 'enable', 'disable', 'o', 'ok', 'ox', '2', '-1', '+1', '01', '10'];

function boolValue(rng: Rng): string {
  const v = rng.pick(BOOLS);
  return rng.chance(0.25) ? decorate(rng, v) : v;
}

function onlineTypeValue(rng: Rng): string {
  if (rng.chance(0.65)) return rng.pick(ONLINE_TYPES);
  if (rng.chance(0.6)) return decorate(rng, rng.pick(ONLINE_TYPES));
  return rng.pick(['going-offline', 'online_foo', 'Online', 'kernel', 'movable', 'online_', '1', '0', 'online-movable', 'online movable']);
}

function policyValue(rng: Rng): string {
  const v = rng.pick(['contig-zones', 'auto-movable']);
  if (rng.chance(0.6)) return v;
  if (rng.chance(0.6)) return decorate(rng, v);
  return rng.pick(['auto_movable', 'contig_zones', 'auto', 'Auto-Movable', 'none']);
}

function ueventValue(rng: Rng): string {
  const action = rng.pick(['add', 'remove', 'change', 'online', 'offline', 'move', 'bind', 'unbind', 'bogus', 'ADD']);
  switch (rng.int(0, 5)) {
    case 0:
      return `${action}\n`;
    case 1:
      return `${action} 6b0ae5b4-3c2a-4d3e-9f10-1234567890ab`;
    case 2:
      return `${action} 6b0ae5b4-3c2a-4d3e-9f10-1234567890ab FOO=bar`;
    case 3:
      return `${action} not-a-uuid`;
    default:
      return action;
  }
}

/**
 * A value for an attribute of `kind`. Mostly what its parser takes; about a third of the time a near
 * miss or plain junk (the empty write, a NUL, a very long string).
 */
export function valueFor(rng: Rng, kind: ValueKind): string {
  if (rng.chance(0.05)) return rng.pick(JUNK);
  if (rng.chance(0.02)) return long(rng.pick(['1', 'a', ' ', '0']), rng.pick([23, 24, 4095, 4096, 4097, 5000]));
  switch (kind) {
    case 'online-type':
      return onlineTypeValue(rng);
    case 'bool':
      return boolValue(rng);
    case 'uint':
      return uintValue(rng);
    case 'errno-int':
      return errnoIntValue(rng);
    case 'policy':
      return policyValue(rng);
    case 'uevent':
      return ueventValue(rng);
    case 'any':
      return rng.pick([onlineTypeValue, boolValue, uintValue, policyValue])(rng);
  }
}

/**
 * A physical address as text for `soft_offline_page` / `hard_offline_page`: hex mostly, sometimes
 * decimal, sometimes with odd bytes around it — never digits dropped or doubled, which would name
 * another address (possibly boot memory).
 */
export function addressText(rng: Rng, addr: number): string {
  const t = rng.chance(0.75) ? `0x${addr.toString(16)}` : String(addr);
  if (!rng.chance(0.15)) return t;
  return rng.pick([`${t}\n`, `${t}\n\n`, `\n${t}`, ` ${t}`, `${t} `, `${t}\0`, `${t}\0x`, `+${t}`, `${t}\r\n`]);
}
