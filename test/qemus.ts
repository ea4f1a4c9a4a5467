/**
 * Live QEMU processes this test process started through the harness: their command line names a
 * memhp-guest- directory and their parent is this process (setpriv execs QEMU), so guests of other
 * test runs on the same host do not count. Tests assert it is empty after a guest is closed.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** State and parent of a live process, or undefined when it is gone (a zombie counts as gone). */
function procStat(pid: number | string): { state: string; ppid: number } | undefined {
  try {
    const m = /^\d+ \(.*\) (\S) (\d+)/s.exec(readFileSync(`/proc/${pid}/stat`, 'latin1'));
    return m && m[1] !== 'Z' ? { state: m[1]!, ppid: Number(m[2]) } : undefined;
  } catch {
    return undefined;
  }
}

/** QEMUs of the harness whose parent is `parent` (default this process). */
export function ourQemus(parent = process.pid): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'latin1');
      if (cmd.includes('qemu-system') && cmd.includes('memhp-guest-') && procStat(d)?.ppid === parent) out.push(Number(d));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** True while a process runs (not a zombie). */
export function alive(pid: number): boolean {
  return procStat(pid) !== undefined;
}

/** Every live descendant of `pid` (children, their children, …). */
export function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const s = procStat(d);
    if (s) parent.set(Number(d), s.ppid);
  }
  const out: number[] = [];
  const want = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [p, pp] of parent) {
      if (want.has(pp) && !want.has(p)) {
        want.add(p);
        out.push(p);
        grew = true;
      }
    }
  }
  return out;
}
