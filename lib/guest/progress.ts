/**
 * Waits on a guest bounded by the guest's own progress. Under TCG the guest's clocks follow the host's
 * (no icount), so on a loaded host a wall-clock deadline, or even the guest's uptime, passes while the
 * guest got a fraction of a CPU. What the guest really got is QEMU's CPU time: a boot or a request that
 * has not finished after QEMU ran for `seconds` of CPU has failed, however long the host made it wait.
 *
 * A QEMU that gets no CPU at all (stopped, or a host frozen by something else) never uses its budget;
 * so that nothing waits forever, the bound also expires after `wallFactor` (20) times its budget of
 * wall-clock time — far beyond anything a busy but working host produces.
 */
import { readFileSync } from 'node:fs';

/** USER_HZ: /proc/<pid>/stat counts CPU time in these ticks on every Linux architecture memhp runs on. */
const USER_HZ = 100;

/** CPU seconds (user + system, all threads) a live process has used, or undefined once it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Fields after the command name (which may hold spaces and parentheses): state is field 3, utime 14, stime 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / USER_HZ;
  } catch {
    return undefined;
  }
}

/** A clock for timeouts: call `onExpire` once `seconds` of progress have passed; returns a cancel function. */
export type ProgressTimer = (seconds: number, onExpire: () => void) => () => void;

/** Wall-clock seconds: the timer of a client with no guest process to watch. */
export const wallTimer: ProgressTimer = (seconds, onExpire) => {
  const t = setTimeout(onExpire, seconds * 1000);
  return () => clearTimeout(t);
};

/**
 * A timer that expires once process `pid` (QEMU) has used `seconds` of CPU since it was set, or after
 * `wallFactor` times `seconds` of wall-clock time, whichever comes first; also when the process is gone.
 * Polled every `pollMs` (250).
 */
export function cpuTimer(pid: number, opts: { wallFactor?: number; pollMs?: number } = {}): ProgressTimer {
  return (seconds, onExpire) => {
    const start = cpuSeconds(pid) ?? 0;
    const wallEnd = performance.now() + seconds * 1000 * (opts.wallFactor ?? 20);
    const t = setInterval(() => {
      const now = cpuSeconds(pid);
      if (now === undefined || now - start >= seconds || performance.now() >= wallEnd) {
        clearInterval(t);
        onExpire();
      }
    }, opts.pollMs ?? 250);
    t.unref?.();
    return () => clearInterval(t);
  };
}
