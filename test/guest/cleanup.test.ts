/**
 * Nothing of a guest outlives its owner (lib/guest/cleanup.ts): an owner process (test/guest/owner.ts)
 * signalled while its guest boots, runs steps or is being saved to the snapshot cache takes QEMU and
 * its helpers down and removes its private directory and the partial snapshot entry, then dies of the
 * signal; what a SIGKILLed owner leaves is reclaimed by the next boot; a boot that fails leaves nothing.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ownedTempDir, ownerTag, reclaimStale, removeDir } from '../../lib/guest/cleanup.js';
import { GuestError } from '../../lib/guest/errors.js';
import { Guest } from '../../lib/guest/guest.js';
import { HotplugError } from '../../lib/qmp/errors.js';
import { alive, descendants, ourQemus } from '../qemus.js';

const OWNER = fileURLToPath(new URL('./owner.ts', import.meta.url));

/** An owner process and its stdout, line by line. */
class Owner {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #waiters: (() => void)[] = [];

  constructor(mode: 'steps' | 'once', env: Record<string, string>) {
    this.child = spawn(process.execPath, ['--import', 'tsx', OWNER, mode], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    this.child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const parts = out.split('\n');
      out = parts.pop()!;
      this.lines.push(...parts);
      for (const w of this.#waiters.splice(0)) w();
    });
    this.child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        if (code) process.stderr.write(`owner exited ${code}: ${err}\n`);
        resolve({ code, signal });
        for (const w of this.#waiters.splice(0)) w();
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Wait until `ready()` holds; checked on every line and every 20 ms; fails when the owner exits first. */
  async until<T>(what: string, ready: () => T | undefined): Promise<T> {
    for (;;) {
      const v = ready();
      if (v !== undefined) return v;
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`the owner exited before ${what}: ${this.lines.join(' | ')}`);
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        setTimeout(r, 20);
      });
    }
  }
}

describe('reclaiming what dead owners left (no QEMU)', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'memhp-reclaimtest-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("removes a dead owner's directories (gone pid, or a reused pid with another start time), never a live owner's or another user's", async () => {
    const [pid, start] = ownerTag().split('-');
    const mine = await ownedTempDir(dir, 'memhp-guest-');
    assert.match(path.basename(mine), new RegExp(`^memhp-guest-${pid}-${start}-\\w{6}$`));
    for (const n of ['memhp-guest-2147483647-1-aaaaaa', `memhp-guest-${pid}-${Number(start) + 1}-bbbbbb`, 'memhp-guest-cccccc', 'other-1-1-dddddd']) mkdirSync(path.join(dir, n));
    const others = path.join(dir, 'memhp-guest-2147483647-1-eeeeee');
    mkdirSync(others);
    if (process.getuid?.() === 0) chownSync(others, 65534, 65534);
    const gone = await reclaimStale(dir, 'memhp-guest-');
    assert.deepEqual(gone.sort(), ['memhp-guest-2147483647-1-aaaaaa', `memhp-guest-${pid}-${Number(start) + 1}-bbbbbb`, ...(process.getuid?.() === 0 ? [] : ['memhp-guest-2147483647-1-eeeeee'])].sort());
    assert.ok(existsSync(mine), "a live owner's directory stays");
    assert.ok(existsSync(path.join(dir, 'memhp-guest-cccccc')), 'a directory that names no owner stays (older layouts; another run may use it)');
    await removeDir(mine);
  });
});

describe('cleanup of guests on signals, SIGKILL and failures', function () {
  this.timeout(0); // no wall-clock limit: waits on guests are bounded by their progress (lib/guest/progress.ts)
  let root: string;
  let tmp: string;
  let snaps: string;
  const guestDirs = (): string[] => readdirSync(tmp).filter((n) => n.startsWith('memhp-guest-'));
  const partials = (): string[] => (existsSync(snaps) ? readdirSync(snaps).filter((n) => n.startsWith('.tmp-')) : []);
  const entries = (): string[] => (existsSync(snaps) ? readdirSync(snaps).filter((n) => !n.startsWith('.')) : []);

  beforeEach(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'memhp-cleanuptest-'));
    tmp = path.join(root, 'tmp');
    snaps = path.join(root, 'snapshots');
    mkdirSync(tmp);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  /** Signal the owner; it must die of that signal, and take every process it had started with it. */
  async function kill(o: Owner, sig: NodeJS.Signals): Promise<void> {
    const started = descendants(o.pid);
    assert.ok(started.length > 0, 'the owner has a QEMU');
    o.child.kill(sig);
    const { signal } = await o.exited;
    assert.equal(signal, sig, `the owner died of ${sig}`);
    // Killed before the owner exited (or by the parent-death signal): reaped by init at once.
    for (;;) {
      const left = started.filter(alive);
      if (left.length === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  const qemuStarted = (o: Owner) => (): number | undefined => ourQemus(o.pid)[0];

  it('SIGINT while the guest boots: QEMU gone, no directory left', async () => {
    const o = new Owner('steps', { TMPDIR: tmp });
    await o.until('QEMU started', qemuStarted(o));
    assert.ok(!o.lines.some((l) => l.startsWith('READY')), 'still booting');
    assert.equal(guestDirs().length, 1);
    await kill(o, 'SIGINT');
    assert.deepEqual(guestDirs(), []);
  });

  it('SIGTERM while steps run: QEMU gone, no directory left', async () => {
    const o = new Owner('steps', { TMPDIR: tmp });
    await o.until('a step', () => (o.lines.includes('STEP 0') ? true : undefined));
    await kill(o, 'SIGTERM');
    assert.deepEqual(guestDirs(), []);
  });

  it('SIGTERM while the booted guest is saved: QEMU and zstd gone, no directory, no partial entry', async () => {
    const o = new Owner('steps', { TMPDIR: tmp, MEMHP_SNAPSHOT_DIR: snaps });
    await o.until('the save', () => (partials().length > 0 ? true : undefined));
    await kill(o, 'SIGTERM');
    assert.deepEqual(guestDirs(), []);
    assert.deepEqual(partials(), []);
    assert.deepEqual(entries(), [], 'nothing committed');
  });

  it('SIGKILL during a save leaves the directory and the partial entry; the next boot reclaims both', async () => {
    const o = new Owner('steps', { TMPDIR: tmp, MEMHP_SNAPSHOT_DIR: snaps });
    await o.until('the save', () => (partials().length > 0 ? true : undefined));
    await kill(o, 'SIGKILL');
    assert.equal(guestDirs().length, 1, 'SIGKILL runs no handler: the directory stays');
    assert.equal(partials().length, 1, 'and so does the partial entry');
    const next = new Owner('once', { TMPDIR: tmp, MEMHP_SNAPSHOT_DIR: snaps });
    assert.deepEqual(await next.exited, { code: 0, signal: null });
    assert.match(next.lines.join('\n'), /^READY \d+ booted-and-saved\nCLOSED$/m);
    assert.deepEqual(guestDirs(), []);
    assert.deepEqual(partials(), []);
    assert.equal(entries().length, 1, 'the new run saved its guest');
  });

  it('a boot that fails after the directory was made leaves nothing', async () => {
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    try {
      // A machine memhp's checks accept and QEMU refuses (maxmem below the RAM): QEMU exits at once.
      await assert.rejects(Guest.boot({ kernel: 'latest', memory: '1G', maxMemory: '512M', prepare: { progress: false } }), (e: unknown) => e instanceof HotplugError || e instanceof GuestError);
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
    assert.deepEqual(guestDirs(), []);
    assert.deepEqual(ourQemus(), []);
  });
});
