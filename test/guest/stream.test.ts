/**
 * Snapshot streams without a shell (lib/guest/stream.ts): while a real 7.2 guest is saved and then
 * restored, every process is watched. zstd must be a child of this process, started with an argument
 * vector (no `sh -c`), and QEMU must start no process at all.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Guest, type GuestOptions } from '../../lib/guest/guest.js';
import { ourQemus } from '../qemus.js';

interface Seen {
  pid: number;
  ppid: number;
  /** The argument vector last seen (a fork shows its parent's until it execs). */
  argv: string[];
}

/** The children of a process, from /proc/PID/task/TID/children (cheap enough to poll every few ms). */
function children(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      try {
        out.push(...readFileSync(`/proc/${pid}/task/${t}/children`, 'latin1').split(' ').filter(Boolean).map(Number));
      } catch {
        /* thread gone */
      }
    }
  } catch {
    /* process gone */
  }
  return out;
}

/** Every descendant of this process, polled every few ms until stopped. */
function watchDescendants(): { stop(): Seen[] } {
  const seen = new Map<number, Seen>();
  const poll = (): void => {
    const todo = [process.pid];
    while (todo.length) {
      const pp = todo.pop()!;
      for (const p of children(pp)) {
        todo.push(p);
        try {
          const argv = readFileSync(`/proc/${p}/cmdline`, 'latin1').split('\0').filter(Boolean);
          if (argv.length) seen.set(p, { pid: p, ppid: pp, argv });
        } catch {
          /* gone */
        }
      }
    }
  };
  const timer = setInterval(poll, 3);
  return {
    stop: () => {
      clearInterval(timer);
      return [...seen.values()];
    },
  };
}

describe('snapshot streams without a shell (7.2)', function () {
  this.timeout(0); // no wall-clock limit: waits on guests are bounded by their progress (lib/guest/progress.ts)
  let dir: string;
  before(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'memhp-streamtest-'))));
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(ourQemus(), [], 'no QEMU left running');
  });

  it('save and restore: zstd is a child of this process with an argument vector, and QEMU starts no process', async () => {
    const opts: GuestOptions = { kernel: 'latest', nodes: 2, cmdline: ['memhp_default_state=online_movable'], snapshot: 'reuse', snapshotDir: dir, prepare: { progress: false } };
    const watch = watchDescendants();
    let seen: Seen[];
    try {
      const a = await Guest.boot(opts);
      await a.close();
      assert.equal(a.boot.path, 'booted-and-saved', a.boot.snapshotReason);
      const b = await Guest.boot(opts);
      await b.close();
      assert.equal(b.boot.path, 'restored', b.boot.snapshotReason);
    } finally {
      seen = watch.stop();
    }
    // setpriv execs QEMU: the guests' QEMUs are children of this process.
    const qemus = seen.filter((p) => p.ppid === process.pid && p.argv.some((a) => a.includes('qemu-system')) && p.argv.some((a) => a.includes('memhp-guest-'))).map((p) => p.pid);
    assert.equal(qemus.length, 2, 'two QEMUs watched');
    assert.deepEqual(seen.filter((p) => qemus.includes(p.ppid)).map((p) => p.argv.join(' ')), [], 'QEMU started nothing');
    // zstd itself, or a shell line running it; not `zstd --version` (lib/guest/snapshot.ts haveZstd).
    const zstds = seen.filter((p) => (/(^|\/)zstd$/.test(p.argv[0]!) || p.argv.some((a) => a.startsWith('zstd '))) && !p.argv.includes('--version'));
    assert.deepEqual(
      zstds.map((p) => ({ parent: p.ppid === process.pid ? 'this process' : p.ppid, argv: p.argv })),
      [
        { parent: 'this process', argv: ['zstd', '-q', '-1', '-c'] },
        { parent: 'this process', argv: ['zstd', '-dcq'] },
      ],
    );
  });
});
