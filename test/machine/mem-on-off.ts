/**
 * The kernel's `tools/testing/selftests/memory-hotplug/mem-on-off-test.sh` (docs/kernel-behaviour.md#the-mem-on-off-selftest; the
 * script is byte-identical in 6.1, 6.12 and 7.3), replayed step by step through a {@link HotplugTarget}'s
 * sysfs and module calls only, so the same replay runs against the simulator and against a real guest.
 *
 * What the shell does implicitly is made explicit here: the `memory*` glob is expanded in byte order (the
 * C locale; digits collate the same in en_US), `grep -q offline` also matches `going-offline`, a failed
 * `echo` prints to stderr and the script goes on, `modprobe -q` ignores every failure, and `$RANDOM` is
 * bash's own generator ({@link bashRandom}) so a seed reproduces a real run's choices.
 */
import { KernelError } from '../../lib/errors.js';
import type { HotplugTarget } from '../../lib/kernel/target.js';

/** The part of a {@link HotplugTarget} the selftest touches: sysfs/debugfs and modprobe. */
export type MemOnOffTarget = Pick<HotplugTarget, 'sysfs' | 'loadModule' | 'unloadModule'>;

/** The script's options (`-e`, `-p`, `-r`) and the environment it finds. */
export interface MemOnOffOptions {
  /** `-e errno`: what the injector returns; default -12. The script exits 1 unless -4095 ≤ error < 0. */
  error?: number;
  /** `-p priority` of the injector's notifier; default 0. */
  priority?: number;
  /** `-r ratio`: percent of blocks to offline; default 2 (the Makefile's run_full_test uses 10). Must be 0..100. */
  ratio?: number;
  /** `$RANDOM`: integers 0..32767. Default: {@link bashRandom} seeded with `seed`. */
  random?: () => number;
  /** Seed of the default `$RANDOM` (as `RANDOM=seed` in bash); default 1. */
  seed?: number;
  /** The first sysfs mount point; default '/sys'. */
  sysfs?: string;
  /** The first debugfs mount point; default '/sys/kernel/debug'. */
  debugfs?: string;
}

/** What a run ends with: the script's exit status (0 pass, 1 fail, 4 skip) and what it printed. */
export interface MemOnOffResult {
  /** The exit status. */
  retval: number;
  /** stdout and stderr lines as a terminal shows them (output the script sends to /dev/null is left out). */
  log: string[];
}

/**
 * bash's `$RANDOM` (bash ≥ 5.1, variables.c `brand`): Park–Miller minimal standard generator on a 32-bit
 * seed, the two 16-bit halves xor-ed, 15 bits kept, and a value equal to the previous one drawn again.
 * `bashRandom(s)` yields what `RANDOM=s; echo $RANDOM $RANDOM …` prints.
 */
export function bashRandom(seed: number): () => number {
  let rseed = seed >>> 0;
  let last = 0;
  const intrand32 = (x: number): number => {
    // Schrage's method, as bash computes it in 32-bit signed arithmetic.
    const r = x === 0 ? 123459876 : x;
    const h = Math.trunc(r / 127773);
    const l = r - 127773 * h;
    const t = 16807 * l - 2836 * h;
    return t < 0 ? t + 0x7fffffff : t;
  };
  return () => {
    let rv: number;
    do {
      rseed = intrand32(rseed);
      rv = ((rseed >>> 16) ^ (rseed & 0xffff)) & 0x7fff;
    } while (rv === last);
    return (last = rv);
  };
}

/** A glob's expansion order in the C locale: byte order. */
function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const KSFT_SKIP = 4;

/** Signals the script's `exit n` from inside a helper. */
class Exit {
  constructor(readonly status: number) {}
}

/**
 * Run mem-on-off-test.sh against `target` (as root). Resolves with the exit status the script would
 * have; never rejects for a kernel error, since the script turns those into messages and `retval`.
 */
export async function memOnOffTest(target: MemOnOffTarget, opts: MemOnOffOptions = {}): Promise<MemOnOffResult> {
  const error = opts.error ?? -12;
  const priority = opts.priority ?? 0;
  const ratio = opts.ratio ?? 2;
  const random = opts.random ?? bashRandom(opts.seed ?? 1);
  const SYSFS = opts.sysfs ?? '/sys';
  const DEBUGFS = opts.debugfs ?? '/sys/kernel/debug';
  const MEM = `${SYSFS}/devices/system/memory`;
  const INJECT = `${DEBUGFS}/notifier-error-inject/memory`;
  const log: string[] = [];
  let retval = 0;
  const fs = target.sysfs;

  /** `echo value > path`: true on success; a failure prints bash's message to stderr unless `quiet` (2>/dev/null). */
  const echo = async (path: string, value: string, quiet: boolean): Promise<boolean> => {
    try {
      await fs.write(path, `${value}\n`);
      return true;
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      if (!quiet) log.push(`mem-on-off-test.sh: echo: write error: ${e.code}`);
      return false;
    }
  };
  /** `grep -q pattern path`, for the fixed strings the script greps for ('.*' matches any non-empty line). */
  const grep = async (pattern: string, path: string): Promise<boolean> => {
    let text: string;
    try {
      text = await fs.read(path);
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      return false;
    }
    return text.split('\n').some((line, i, all) => (i < all.length - 1 || line !== '') && (pattern === '.*' || line.includes(pattern)));
  };
  /** `$SYSFS/devices/system/memory/memory*`, expanded (an unmatched glob stays literal and then finds nothing). */
  const memoryGlob = async (): Promise<string[]> => {
    try {
      return (await fs.list(MEM)).filter((n) => n.startsWith('memory')).sort(byteOrder);
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      return [];
    }
  };
  const isDir = async (path: string): Promise<boolean> =>
    fs.list(path).then(
      () => true,
      (e: unknown) => {
        if (!(e instanceof KernelError)) throw e;
        return false;
      },
    );

  // hotpluggable_memory [state]: the numeric suffixes, in glob order.
  const hotpluggableMemory = async (state = '.*'): Promise<string[]> => {
    const out: string[] = [];
    for (const name of await memoryGlob()) {
      if ((await grep('1', `${MEM}/${name}/removable`)) && (await grep(state, `${MEM}/${name}/state`))) out.push(name.slice('memory'.length));
    }
    return out;
  };
  const hotpluggableOfflineMemory = () => hotpluggableMemory('offline');
  const hotpluggableOnlineMemory = () => hotpluggableMemory('online');
  const memoryIsOnline = (n: string) => grep('online', `${MEM}/memory${n}/state`);
  const memoryIsOffline = (n: string) => grep('offline', `${MEM}/memory${n}/state`);
  const onlineMemory = (n: string, quiet = false) => echo(`${MEM}/memory${n}/state`, 'online', quiet);
  const offlineMemory = (n: string, quiet = false) => echo(`${MEM}/memory${n}/state`, 'offline', quiet);

  // The *_expect_* helpers; `silent` is the caller's `&>/dev/null`.
  const onlineMemoryExpectSuccess = async (n: string, silent = false): Promise<boolean> => {
    if (!(await onlineMemory(n, silent))) {
      if (!silent) log.push(`online_memory_expect_success ${n}: unexpected fail`);
      return false;
    }
    if (!(await memoryIsOnline(n))) {
      if (!silent) log.push(`online_memory_expect_success ${n}: unexpected offline`);
      return false;
    }
    return true;
  };
  const onlineMemoryExpectFail = async (n: string): Promise<boolean> => {
    if (await onlineMemory(n, true)) {
      log.push(`online_memory_expect_fail ${n}: unexpected success`);
      return false;
    }
    if (!(await memoryIsOffline(n))) {
      log.push(`online_memory_expect_fail ${n}: unexpected online`);
      return false;
    }
    return true;
  };
  const offlineMemoryExpectSuccess = async (n: string, silent = false): Promise<boolean> => {
    if (!(await offlineMemory(n, silent))) {
      if (!silent) log.push(`offline_memory_expect_success ${n}: unexpected fail`);
      return false;
    }
    if (!(await memoryIsOffline(n))) {
      // sic: the script says "offline" here too
      if (!silent) log.push(`offline_memory_expect_success ${n}: unexpected offline`);
      return false;
    }
    return true;
  };
  const offlineMemoryExpectFail = async (n: string): Promise<boolean> => {
    if (await offlineMemory(n, true)) {
      log.push(`offline_memory_expect_fail ${n}: unexpected success`);
      return false;
    }
    if (!(await memoryIsOnline(n))) {
      log.push(`offline_memory_expect_fail ${n}: unexpected offline`);
      return false;
    }
    return true;
  };
  const onlineAllOfflineMemory = async (): Promise<void> => {
    for (const n of await hotpluggableOfflineMemory()) if (!(await onlineMemoryExpectSuccess(n))) retval = 1;
  };
  const printStatus = (what: string, status: string) => log.push(`\t\t${what.padEnd(37)}   ${status.padStart(12)}`);
  /** `/sbin/modprobe -q -r memory-notifier-error-inject`: the module, then its unused dependency; failures are silent. */
  const modprobeRemove = async (): Promise<void> => {
    try {
      await target.unloadModule('memory-notifier-error-inject');
    } catch {
      return;
    }
    await target.unloadModule('notifier-error-inject').catch(() => undefined);
  };

  const prerequisite = async (): Promise<void> => {
    const msg = 'skip all tests:';
    if (!(await isDir(SYSFS))) {
      log.push(`${msg} sysfs is not mounted`);
      throw new Exit(KSFT_SKIP);
    }
    const blocks = await memoryGlob();
    if (!blocks.length) {
      log.push(`${msg} memory hotplug is not supported`);
      throw new Exit(KSFT_SKIP);
    }
    let removable = false;
    for (const b of blocks) if (await grep('1', `${MEM}/${b}/removable`)) removable = true;
    if (!removable) {
      log.push(`${msg} no hot-pluggable memory`);
      throw new Exit(KSFT_SKIP);
    }
  };

  const prerequisiteExtra = async (): Promise<void> => {
    const msg = 'skip extra tests:';
    await modprobeRemove();
    await target.loadModule('memory-notifier-error-inject', { priority }).catch(() => undefined);
    if (!(await isDir(DEBUGFS))) {
      log.push(`${msg} debugfs is not mounted`);
      throw new Exit(retval);
    }
    if (!(await isDir(INJECT))) {
      log.push(`${msg} memory-notifier-error-inject module is not available`);
      throw new Exit(retval);
    }
  };

  try {
    // getopts: -r is range-checked as it is parsed; -e after the loop.
    if (!Number.isInteger(ratio) || ratio > 100 || ratio < 0) {
      log.push('The percentage should be an integer within 0~100 range');
      throw new Exit(1);
    }
    if (!(Number.isInteger(error) && error >= -4095 && error < 0)) {
      log.push('error code must be -4095 <= errno < 0');
      throw new Exit(1);
    }
    await prerequisite();
    log.push(`Test scope: ${ratio}% hotplug memory`);

    // Online all hot-pluggable memory.
    let num = (await hotpluggableOfflineMemory()).length;
    log.push('Changing all OFFLINE hot-pluggable memory blocks to ONLINE:', '');
    if (num > 0) {
      for (const n of await hotpluggableOfflineMemory()) {
        log.push(`\t\tOFFLINE -> ONLINE memory block (${n})`);
        if (!(await onlineMemoryExpectSuccess(n))) retval = 1;
      }
    } else log.push('\t\t SKIPPED - no hot-pluggable memory in OFFLINE state');

    // Offline $ratio percent of hot-pluggable memory: target = ceil(num * ratio / 100), as bc computes it.
    num = (await hotpluggableOnlineMemory()).length;
    const a = num * ratio;
    let targetCount = a % 100 ? Math.floor(a / 100) + 1 : a / 100;
    log.push('', `OFFLINE ${ratio}% hot-pluggable memory in ONLINE state (${targetCount} memory block(s))`);
    log.push(`Changing ${targetCount} out of ${num} OFFLINE memory block(s) to ONLINE:`, '');
    for (const n of await hotpluggableOnlineMemory()) {
      if (targetCount > 0) {
        const tmp = `ONLINE -> OFFLINE memory block (${n})`;
        if (await offlineMemoryExpectSuccess(n, true)) {
          targetCount--;
          printStatus(tmp, '[SUCCESS]');
        } else printStatus(tmp, '[FAILURE]');
      }
    }
    if (targetCount > 0) {
      retval = 1;
      log.push('\t\t FAILED - unable to offline some memory blocks, device busy?');
    }

    // Online all hot-pluggable memory again.
    num = (await hotpluggableOfflineMemory()).length;
    log.push('\t online all hot-pluggable memory in offline state:');
    if (num > 0) {
      for (const n of await hotpluggableOfflineMemory()) {
        log.push(`offline->online memory${n}`);
        if (!(await onlineMemoryExpectSuccess(n))) retval = 1;
      }
    } else log.push('\t\t SKIPPED - no hot-pluggable memory in offline state');

    // Test with memory notifier error injection.
    log.push('\t Test with memory notifier error injection');
    await prerequisiteExtra();

    // Offline $ratio percent of hot-pluggable memory, chosen at random; the outcome does not count.
    await echo(`${INJECT}/actions/MEM_GOING_OFFLINE/error`, '0', false);
    for (const n of await hotpluggableOnlineMemory()) {
      if (random() % 100 < ratio) await offlineMemoryExpectSuccess(n, true);
    }

    // Memory hot-add error handling (offline => online): every offline block must refuse to online.
    await echo(`${INJECT}/actions/MEM_GOING_ONLINE/error`, String(error), false);
    for (const n of await hotpluggableOfflineMemory()) if (!(await onlineMemoryExpectFail(n))) retval = 1;

    // Online all hot-pluggable memory.
    await echo(`${INJECT}/actions/MEM_GOING_ONLINE/error`, '0', false);
    await onlineAllOfflineMemory();

    // Memory hot-remove error handling (online => offline), on $ratio percent chosen at random.
    await echo(`${INJECT}/actions/MEM_GOING_OFFLINE/error`, String(error), false);
    for (const n of await hotpluggableOnlineMemory()) {
      if (random() % 100 < ratio) if (!(await offlineMemoryExpectFail(n))) retval = 1;
    }

    await echo(`${INJECT}/actions/MEM_GOING_OFFLINE/error`, '0', false);
    await modprobeRemove();

    // Restore memory before exit.
    await onlineAllOfflineMemory();
    return { retval, log };
  } catch (e) {
    if (e instanceof Exit) return { retval: e.status, log };
    throw e;
  }
}
