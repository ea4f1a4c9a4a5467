/**
 * Live QEMU processes this test process started through the harness: their command line names a
 * memhp-guest- directory and their parent is this process (setpriv execs QEMU), so guests of other
 * test runs on the same host do not count. Tests assert it is empty after a guest is closed.
 */
import { readdirSync, readFileSync } from 'node:fs';

export function ourQemus(): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'latin1');
      const stat = /^\d+ \(.*\) (\S) (\d+)/.exec(readFileSync(`/proc/${d}/stat`, 'latin1'));
      if (cmd.includes('qemu-system') && cmd.includes('memhp-guest-') && stat && stat[1] !== 'Z' && Number(stat[2]) === process.pid) out.push(Number(d));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}
