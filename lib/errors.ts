/**
 * The one error hierarchy of memhp.
 *
 * Every error memhp raises on purpose is a {@link MemhpError}. Errors that the simulated (or real)
 * kernel would return to user space are {@link KernelError}s carrying the Linux errno; other layers
 * (QMP, guest harness, scenario files) add their own subclasses of {@link MemhpError}.
 */

/**
 * Linux x86_64 errno numbers by name (include/uapi/asm-generic/errno-base.h and errno.h; aliases such as
 * EWOULDBLOCK left out so every number has one name).
 */
export const ERRNO = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, ENOEXEC: 8, EBADF: 9, ECHILD: 10, EAGAIN: 11,
  ENOMEM: 12, EACCES: 13, EFAULT: 14, ENOTBLK: 15, EBUSY: 16, EEXIST: 17, EXDEV: 18, ENODEV: 19, ENOTDIR: 20,
  EISDIR: 21, EINVAL: 22, ENFILE: 23, EMFILE: 24, ENOTTY: 25, ETXTBSY: 26, EFBIG: 27, ENOSPC: 28, ESPIPE: 29,
  EROFS: 30, EMLINK: 31, EPIPE: 32, EDOM: 33, ERANGE: 34, EDEADLK: 35, ENAMETOOLONG: 36, ENOLCK: 37, ENOSYS: 38,
  ENOTEMPTY: 39, ELOOP: 40, ENOMSG: 42, EIDRM: 43, ECHRNG: 44, EL2NSYNC: 45, EL3HLT: 46, EL3RST: 47, ELNRNG: 48,
  EUNATCH: 49, ENOCSI: 50, EL2HLT: 51, EBADE: 52, EBADR: 53, EXFULL: 54, ENOANO: 55, EBADRQC: 56, EBADSLT: 57,
  EBFONT: 59, ENOSTR: 60, ENODATA: 61, ETIME: 62, ENOSR: 63, ENONET: 64, ENOPKG: 65, EREMOTE: 66, ENOLINK: 67,
  EADV: 68, ESRMNT: 69, ECOMM: 70, EPROTO: 71, EMULTIHOP: 72, EDOTDOT: 73, EBADMSG: 74, EOVERFLOW: 75, ENOTUNIQ: 76,
  EBADFD: 77, EREMCHG: 78, ELIBACC: 79, ELIBBAD: 80, ELIBSCN: 81, ELIBMAX: 82, ELIBEXEC: 83, EILSEQ: 84,
  ERESTART: 85, ESTRPIPE: 86, EUSERS: 87, ENOTSOCK: 88, EDESTADDRREQ: 89, EMSGSIZE: 90, EPROTOTYPE: 91,
  ENOPROTOOPT: 92, EPROTONOSUPPORT: 93, ESOCKTNOSUPPORT: 94, EOPNOTSUPP: 95, EPFNOSUPPORT: 96, EAFNOSUPPORT: 97,
  EADDRINUSE: 98, EADDRNOTAVAIL: 99, ENETDOWN: 100, ENETUNREACH: 101, ENETRESET: 102, ECONNABORTED: 103,
  ECONNRESET: 104, ENOBUFS: 105, EISCONN: 106, ENOTCONN: 107, ESHUTDOWN: 108, ETOOMANYREFS: 109, ETIMEDOUT: 110,
  ECONNREFUSED: 111, EHOSTDOWN: 112, EHOSTUNREACH: 113, EALREADY: 114, EINPROGRESS: 115, ESTALE: 116, EUCLEAN: 117,
  ENOTNAM: 118, ENAVAIL: 119, EISNAM: 120, EREMOTEIO: 121, EDQUOT: 122, ENOMEDIUM: 123, EMEDIUMTYPE: 124,
  ECANCELED: 125, ENOKEY: 126, EKEYEXPIRED: 127, EKEYREVOKED: 128, EKEYREJECTED: 129, EOWNERDEAD: 130,
  ENOTRECOVERABLE: 131, ERFKILL: 132, EHWPOISON: 133,
} as const;

/** A named errno. */
export type NamedErrno = keyof typeof ERRNO;

/**
 * An errno name: a named one (`'EBUSY'`), or `E<n>` for a number without a name, which the kernel can
 * still return (a notifier may veto with any value down to -4095, MAX_ERRNO).
 */
export type ErrnoCode = NamedErrno | `E${number}`;

const ERRNO_BY_NUMBER: ReadonlyMap<number, NamedErrno> = new Map(
  (Object.entries(ERRNO) as [NamedErrno, number][]).map(([k, v]) => [v, k]),
);

/** The name of a (positive or negative) errno number, or undefined when it has none. */
export function errnoName(errno: number): NamedErrno | undefined {
  return ERRNO_BY_NUMBER.get(Math.abs(errno));
}

/** The errno code of a number: its name, else `E<n>`, for 1..4095 (MAX_ERRNO); undefined otherwise. */
export function errnoCode(errno: number): ErrnoCode | undefined {
  const n = Math.abs(errno);
  if (!Number.isInteger(n) || n < 1 || n > 4095) return undefined;
  return errnoName(n) ?? `E${n}`;
}

/** True when `code` is an errno code: a known name, or `E<n>` with n in 1..4095. */
export function isErrnoCode(code: string): code is ErrnoCode {
  if (Object.prototype.hasOwnProperty.call(ERRNO, code)) return true;
  const m = /^E([1-9]\d{0,3})$/.exec(code);
  return m !== null && Number(m[1]) <= 4095;
}

/** The positive errno number of a code. */
export function errnoNumber(code: ErrnoCode): number {
  return Object.prototype.hasOwnProperty.call(ERRNO, code) ? ERRNO[code as NamedErrno] : Number(code.slice(1));
}

/** Where an error records the names of its class chain, so `instanceof` holds across copies of memhp. */
const CLASS_CHAIN = Symbol.for('memhp.error.classChain');

/**
 * Base class of every error memhp raises deliberately. `instanceof` tests the class by name along the
 * error's class chain as well as by prototype, so an error made by a second copy of memhp (two versions in
 * one dependency tree, or a native addon loaded from the other copy) is still a `KernelError` here.
 */
export class MemhpError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    const chain: string[] = [];
    for (let c: unknown = new.target; typeof c === 'function' && c !== Error; c = Object.getPrototypeOf(c)) chain.push((c as { name: string }).name);
    Object.defineProperty(this, CLASS_CHAIN, { value: chain, enumerable: false });
  }

  /** `x instanceof C`: by prototype, or by C's name in the class chain a memhp error of any copy carries. */
  static override [Symbol.hasInstance](x: unknown): boolean {
    if (Function.prototype[Symbol.hasInstance].call(this, x)) return true;
    const chain = typeof x === 'object' && x !== null ? (x as { [CLASS_CHAIN]?: unknown })[CLASS_CHAIN] : undefined;
    return Array.isArray(chain) && chain.includes(this.name);
  }
}

/** Extra, machine-readable facts attached to a {@link KernelError}. */
export interface KernelErrorDetails {
  /** The first offending page frame, e.g. the unmovable page that made isolation fail. */
  pfn?: number;
  /** Anything else worth keeping (object name, operation). */
  [key: string]: unknown;
}

/** Options of a {@link KernelError}. */
export interface KernelErrorOptions {
  /** Machine-readable facts ({@link KernelErrorDetails}). */
  details?: KernelErrorDetails;
  /** The error this one reports (a guest's refusal, a failure rethrown with context). */
  cause?: unknown;
}

/**
 * An error the Linux kernel would return: `code` is the errno name (`'EBUSY'`), `errno` its positive
 * number (16), and the message names the object (`memory40: offline failed: unmovable page at pfn 0x148200`).
 * The native addon throws this same class (it is registered at addon load).
 */
export class KernelError extends MemhpError {
  /** The errno name, e.g. `'EINVAL'`. */
  readonly code: ErrnoCode;
  /** The positive errno number, e.g. 22. */
  readonly errno: number;
  /** The first offending pfn, when the kernel would have one (isolation, test_pages_isolated). */
  readonly pfn?: number;
  /** Further facts about the failure. */
  readonly details: KernelErrorDetails;

  constructor(code: ErrnoCode, message: string, options: KernelErrorOptions = {}) {
    super(message, 'cause' in options ? { cause: options.cause } : undefined);
    if (!isErrnoCode(code)) throw new TypeError(`KernelError: unknown errno code ${String(code)}`);
    this.code = code;
    this.errno = errnoNumber(code);
    this.details = options.details ?? {};
    if (typeof this.details.pfn === 'number') this.pfn = this.details.pfn;
  }

  /** Build a KernelError from a negative (kernel style) or positive errno number. */
  static fromErrno(errno: number, message: string, options?: KernelErrorOptions): KernelError {
    const code = errnoCode(errno);
    if (!code) throw new TypeError(`KernelError: not an errno: ${errno}`);
    return new KernelError(code, message, options);
  }
}
