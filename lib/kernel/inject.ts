/**
 * The error-injection modules (lib/notifier-error-inject.c, lib/memory-notifier-error-inject.c;
 * kernel-spec.md §7.1): a notifier on the memory chain that vetoes MEM_GOING_ONLINE / MEM_GOING_OFFLINE
 * with the errno stored in its debugfs files.
 */
import { KernelError } from '../errors.js';
import { notifierFromErrno, NOTIFY_OK, type NotifierBlock, type NotifierChain } from './notifier.js';
import { memoryAction, type KernelProfile, type MemoryNotify } from './profile.js';
import { rw, StaticDir } from './sysfs.js';

const MAX_ERRNO = 4095;

/**
 * `kstrtoll(s, 0)`: optional sign, 0x/0 prefixes, one trailing newline; EINVAL on anything else, ERANGE
 * beyond 64 bits.
 */
export function kstrtoll(s: string): bigint {
  const m = /^([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\n?$/.exec(s);
  if (!m) throw new KernelError('EINVAL', `kstrtoll: invalid number ${JSON.stringify(s)}`);
  const digits = m[2]!;
  const mag = /^0[xX]/.test(digits) ? BigInt(digits) : digits.length > 1 && digits[0] === '0' ? BigInt('0o' + digits.slice(1)) : BigInt(digits);
  const v = m[1] === '-' ? -mag : mag;
  if (v > 2n ** 63n - 1n || v < -(2n ** 63n)) throw new KernelError('ERANGE', `kstrtoll: ${JSON.stringify(s)} out of range`);
  return v;
}

/** `kstrtoint(s, 0)`: as kstrtoll, ERANGE outside 32 bits. */
export function kstrtoint(s: string): number {
  const v = kstrtoll(s);
  if (v > 2n ** 31n - 1n || v < -(2n ** 31n)) throw new KernelError('ERANGE', `kstrtoint: ${JSON.stringify(s)} out of range`);
  return Number(v);
}

/** A loaded memory-notifier-error-inject instance. */
export class MemoryNotifierErrorInject {
  /** The stored errno per action (0 = none), as its `error` files hold them. */
  readonly errors = new Map<'MEM_GOING_ONLINE' | 'MEM_GOING_OFFLINE', number>([
    ['MEM_GOING_ONLINE', 0],
    ['MEM_GOING_OFFLINE', 0],
  ]);
  /** The notifier block on the memory chain. */
  readonly block: NotifierBlock<MemoryNotify>;
  /** `notifier-error-inject/memory/`. */
  readonly dir: StaticDir;

  /**
   * Register on `chain` with `priority` and build the debugfs directory. `log` receives the module's
   * pr_info lines (`Injecting error (-12) to MEM_GOING_ONLINE`).
   */
  constructor(profile: KernelProfile, chain: NotifierChain<MemoryNotify>, priority: number, log: (line: string) => void) {
    const byValue = new Map([...this.errors.keys()].map((name) => [memoryAction(profile, name), name] as const));
    this.block = chain.register((action) => {
      const name = byValue.get(action);
      const err = name ? this.errors.get(name)! : 0;
      if (!err) return NOTIFY_OK;
      log(`Injecting error (${err}) to ${name}`);
      return notifierFromErrno(err);
    }, priority);
    const actions = new StaticDir();
    for (const name of this.errors.keys()) {
      actions.dir(name).set(
        'error',
        rw(
          () => `${this.errors.get(name)}\n`,
          (value) => {
            // simple_attr_write keeps at most 23 bytes, then kstrtoll; debugfs_errno_set clamps the value
            // *as an int* to [-MAX_ERRNO, 0].
            const v = Number(BigInt.asIntN(32, kstrtoll(value.slice(0, 23))));
            this.errors.set(name, Math.min(0, Math.max(-MAX_ERRNO, v)));
          },
          0o600,
        ),
      );
    }
    this.dir = new StaticDir({ actions });
  }

  /** Unregister (waiting for calls in flight). */
  async unload(): Promise<void> {
    await this.block.unregister();
  }
}
