/**
 * The error-injection modules (lib/notifier-error-inject.c, lib/memory-notifier-error-inject.c;
 * lib/notifier-error-inject.c): a notifier on the memory chain that vetoes MEM_GOING_ONLINE / MEM_GOING_OFFLINE
 * with the errno stored in its debugfs files.
 */
import { kstrtoll } from './kstrtox.js';
import { notifierFromErrno, NOTIFY_OK, type NotifierBlock, type NotifierChain } from './notifier.js';
import { memoryAction, type KernelProfile, type MemoryNotify } from './profile.js';
import { rw, StaticDir } from './sysfs.js';

const MAX_ERRNO = 4095;

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
