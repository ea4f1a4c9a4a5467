/**
 * The one error hierarchy of memhp.
 *
 * Every error memhp raises on purpose is a {@link MemhpError}. Errors that the simulated (or real)
 * kernel would return to user space are {@link KernelError}s carrying the Linux errno; other layers
 * (QMP, guest harness, scenario files) add their own subclasses of {@link MemhpError}.
 */

/** Linux x86_64 errno numbers, by name, for the errors memory hotplug can produce. */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENOSPC: 28,
  ERANGE: 34,
  EDEADLK: 35,
  ENOSYS: 38,
  ENODATA: 61,
  EOPNOTSUPP: 95,
  ETIMEDOUT: 110,
  ECANCELED: 125,
  EHWPOISON: 133,
} as const;

/** The name of an errno memhp knows, e.g. `'EBUSY'`. */
export type ErrnoCode = keyof typeof ERRNO;

const ERRNO_BY_NUMBER: ReadonlyMap<number, ErrnoCode> = new Map(
  (Object.entries(ERRNO) as [ErrnoCode, number][]).map(([k, v]) => [v, k]),
);

/** The errno name for a (positive or negative) errno number, or undefined if memhp does not know it. */
export function errnoName(errno: number): ErrnoCode | undefined {
  return ERRNO_BY_NUMBER.get(Math.abs(errno));
}

/** True when `code` names an errno memhp knows. */
export function isErrnoCode(code: string): code is ErrnoCode {
  return Object.prototype.hasOwnProperty.call(ERRNO, code);
}

/** Base class of every error memhp raises deliberately. */
export class MemhpError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Extra, machine-readable facts attached to a {@link KernelError}. */
export interface KernelErrorDetails {
  /** The first offending page frame, e.g. the unmovable page that made isolation fail. */
  pfn?: number;
  /** Anything else worth keeping (object name, operation). */
  [key: string]: unknown;
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

  constructor(code: ErrnoCode, message: string, details: KernelErrorDetails = {}) {
    super(message);
    if (!isErrnoCode(code)) throw new TypeError(`KernelError: unknown errno code ${String(code)}`);
    this.code = code;
    this.errno = ERRNO[code];
    this.details = details;
    if (typeof details.pfn === 'number') this.pfn = details.pfn;
  }

  /** Build a KernelError from a negative (kernel style) or positive errno number. */
  static fromErrno(errno: number, message: string, details?: KernelErrorDetails): KernelError {
    const code = errnoName(errno);
    if (!code) throw new TypeError(`KernelError: unknown errno ${errno}`);
    return new KernelError(code, message, details);
  }
}
