/**
 * The snapshot cache of booted guests (lib/guest/snapshot.ts). Without QEMU: the key, the size cap and
 * its least-recently-used eviction, racing saves. On real 7.2 ('latest') guests: a saved and a restored guest are
 * observed exactly as a freshly booted one (the same scenario, compared by the differ); a restored
 * Guest keeps the boot's host-side state; an image that is corrupted, of another machine, or restores
 * a guest that is not the one its entry claims is refused, removed, and replaced by a boot; a save
 * keeps the cache under its cap; 6.12 guests are never saved (their restores crash now and then); and
 * no QEMU is left running.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bootHistory, Guest, liveGuests, type BootInfo, type GuestOptions } from '../../lib/guest/guest.js';
import {
  DEFAULT_SNAPSHOT_CACHE_MAX,
  SNAPSHOT_FORMAT,
  SnapshotCache,
  snapshotCacheMax,
  snapshotDir,
  snapshotKey,
  restoreUnsafe,
  type SnapshotIdentity,
  type SnapshotMeta,
} from '../../lib/guest/snapshot.js';
import { diffObservations, formatDiff } from '../../lib/scenario/diff.js';
import { NORMALISATIONS } from '../../lib/scenario/normalise.js';
import { runOnGuest } from '../../lib/scenario/guest.js';
import type { Observation } from '../../lib/scenario/observation.js';
import { loadScenario, type Scenario } from '../../lib/scenario/schema.js';
import { ourQemus } from '../qemus.js';

const SCENARIOS = fileURLToPath(new URL('../scenarios/', import.meta.url));


const identity = (over: Partial<SnapshotIdentity> = {}): SnapshotIdentity => ({
  qemu: 'QEMU emulator version 7.2.22',
  accel: 'tcg',
  args: ['-accel', 'tcg,thread=multi', '-m', '536870912B', '-initrd', '@INITRD'],
  release: '6.12.117+deb13-amd64',
  vmlinuz: 'a'.repeat(64),
  initramfs: 'b'.repeat(64),
  hostCpu: '',
  ...over,
});

/** A fake complete entry of `bytes` bytes, last used at `mtime` (s since the epoch). */
async function fakeEntry(cache: SnapshotCache, key: string, bytes: number, mtime: number): Promise<void> {
  const p = await cache.begin(key);
  writeFileSync(p.image, Buffer.alloc(bytes));
  const meta = { format: SNAPSHOT_FORMAT, key } as SnapshotMeta;
  assert.equal(await cache.commit(p, meta), true);
  const metaBytes = statSync(path.join(cache.dir, key, 'meta.json')).size;
  // Pad the image so that the entry is exactly `bytes` in all.
  writeFileSync(path.join(cache.dir, key, 'image.zst'), Buffer.alloc(bytes - metaBytes));
  utimesSync(path.join(cache.dir, key), mtime, mtime);
}

describe('snapshot cache (no QEMU)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'memhp-snaptest-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('the key changes with everything that decides the guest state, and only with that', () => {
    const k = snapshotKey(identity());
    assert.match(k, /^[0-9a-f]{32}$/);
    assert.equal(snapshotKey(identity()), k);
    for (const over of [
      { accel: 'kvm' as const },
      { qemu: 'QEMU emulator version 8.2.0' },
      { args: ['-accel', 'tcg,thread=multi', '-m', '1073741824B', '-initrd', '@INITRD'] },
      { release: '6.1.0-56-amd64' },
      { vmlinuz: 'c'.repeat(64) },
      { initramfs: 'd'.repeat(64) },
      { hostCpu: 'some CPU' },
    ]) {
      assert.notEqual(snapshotKey(identity(over)), k, JSON.stringify(over));
    }
  });

  it('6.12 guests are never saved nor restored under TCG (their restores crash now and then); 6.1 and 7.2 are', () => {
    assert.match(restoreUnsafe('6.12.117+deb13-amd64', 'tcg') ?? '', /6\.12 guests crash/);
    assert.match(restoreUnsafe('6.12.117+deb13-amd64', 'tcg-single') ?? '', /6\.12 guests crash/);
    assert.equal(restoreUnsafe('6.12.117+deb13-amd64', 'kvm'), undefined);
    assert.equal(restoreUnsafe('6.1.0-56-amd64', 'tcg'), undefined);
    assert.equal(restoreUnsafe('7.2.13+deb14-amd64', 'tcg'), undefined);
  });

  it('lives in $MEMHP_SNAPSHOT_DIR, else under the cache directory ($MEMHP_CACHE)', () => {
    const saved = [process.env.MEMHP_SNAPSHOT_DIR, process.env.MEMHP_CACHE] as const;
    try {
      delete process.env.MEMHP_SNAPSHOT_DIR;
      process.env.MEMHP_CACHE = '/var/cache/memhp-test';
      assert.equal(snapshotDir(), '/var/cache/memhp-test/snapshots');
      assert.equal(new SnapshotCache().dir, '/var/cache/memhp-test/snapshots');
      process.env.MEMHP_SNAPSHOT_DIR = '/srv/snapshots';
      assert.equal(snapshotDir(), '/srv/snapshots');
    } finally {
      for (const [k, v] of [['MEMHP_SNAPSHOT_DIR', saved[0]], ['MEMHP_CACHE', saved[1]]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('the cap is 2 GiB unless $MEMHP_SNAPSHOT_CACHE_MAX says otherwise', () => {
    const saved = process.env.MEMHP_SNAPSHOT_CACHE_MAX;
    try {
      delete process.env.MEMHP_SNAPSHOT_CACHE_MAX;
      assert.equal(snapshotCacheMax(), DEFAULT_SNAPSHOT_CACHE_MAX);
      assert.equal(DEFAULT_SNAPSHOT_CACHE_MAX, 2 * 2 ** 30);
      process.env.MEMHP_SNAPSHOT_CACHE_MAX = '500M';
      assert.equal(snapshotCacheMax(), 500 * 2 ** 20);
      assert.equal(new SnapshotCache(dir).maxBytes, 500 * 2 ** 20);
      process.env.MEMHP_SNAPSHOT_CACHE_MAX = '0';
      assert.equal(snapshotCacheMax(), 0);
      process.env.MEMHP_SNAPSHOT_CACHE_MAX = 'lots';
      assert.throws(() => snapshotCacheMax(), /MEMHP_SNAPSHOT_CACHE_MAX: not a size/);
    } finally {
      if (saved === undefined) delete process.env.MEMHP_SNAPSHOT_CACHE_MAX;
      else process.env.MEMHP_SNAPSHOT_CACHE_MAX = saved;
    }
  });

  it('evicts least recently used entries (mtime; a restore touches) until the cache fits its cap', async () => {
    const cache = new SnapshotCache(dir, 2500);
    const t = Math.floor(Date.now() / 1000);
    await fakeEntry(cache, 'aaaa', 1000, t - 300);
    await fakeEntry(cache, 'bbbb', 1000, t - 200);
    await fakeEntry(cache, 'cccc', 1000, t - 100);
    assert.deepEqual((await cache.entries()).map((e) => [e.key, e.bytes]), [['aaaa', 1000], ['bbbb', 1000], ['cccc', 1000]]);
    await cache.touch('aaaa'); // used now: most recent
    assert.deepEqual(await cache.evict(), ['bbbb']);
    assert.deepEqual((await cache.entries()).map((e) => e.key), ['cccc', 'aaaa']);
    assert.equal(await cache.lookup('bbbb'), undefined);
    assert.equal((await cache.lookup('aaaa'))?.key, 'aaaa');

    // The entry just written goes last, even when it is the oldest by mtime.
    await fakeEntry(cache, 'dddd', 1000, t - 1000);
    assert.deepEqual(await cache.evict('dddd'), ['cccc']);
    assert.deepEqual((await cache.entries()).map((e) => e.key).sort(), ['aaaa', 'dddd']);

    // An entry larger than the cap alone is not kept either.
    const tiny = new SnapshotCache(dir, 500);
    assert.deepEqual(await tiny.evict('dddd'), ['aaaa', 'dddd']);
    assert.deepEqual(await tiny.entries(), []);
  });

  it('a partial entry is no entry; a saver that died leaves a temporary directory that eviction removes', async () => {
    const cache = new SnapshotCache(dir, 10_000);
    const p = await cache.begin('eeee');
    writeFileSync(p.image, 'x');
    assert.equal(await cache.lookup('eeee'), undefined, 'not renamed into place yet');
    const dead = await cache.begin('ffff');
    const old = Date.now() / 1000 - 2 * 3600;
    utimesSync(dead.tmp, old, old);
    await cache.evict();
    assert.equal(existsSync(dead.tmp), false, 'a two-hour-old temporary directory is removed');
    assert.equal(existsSync(p.tmp), true, 'a fresh one (a save in progress) is not');
    await cache.abort(p);

    // meta.json without an image, of another format, or naming another key: no entry.
    mkdirSync(path.join(dir, 'gggg'));
    writeFileSync(path.join(dir, 'gggg', 'meta.json'), JSON.stringify({ format: SNAPSHOT_FORMAT, key: 'gggg' }));
    assert.equal(await cache.lookup('gggg'), undefined);
    writeFileSync(path.join(dir, 'gggg', 'image.zst'), 'x');
    assert.equal((await cache.lookup('gggg'))?.key, 'gggg');
    writeFileSync(path.join(dir, 'gggg', 'meta.json'), JSON.stringify({ format: SNAPSHOT_FORMAT + 1, key: 'gggg' }));
    assert.equal(await cache.lookup('gggg'), undefined);
    writeFileSync(path.join(dir, 'gggg', 'meta.json'), JSON.stringify({ format: SNAPSHOT_FORMAT, key: 'hhhh' }));
    assert.equal(await cache.lookup('gggg'), undefined);
    writeFileSync(path.join(dir, 'gggg', 'meta.json'), '{"format":');
    assert.equal(await cache.lookup('gggg'), undefined);
  });

  it('two processes saving the same machine: the first rename wins, the second drops its copy', async () => {
    const cache = new SnapshotCache(dir, 10_000);
    const a = await cache.begin('kkkk');
    const b = await cache.begin('kkkk');
    writeFileSync(a.image, 'from a');
    writeFileSync(b.image, 'from b');
    const meta = { format: SNAPSHOT_FORMAT, key: 'kkkk' } as SnapshotMeta;
    assert.equal(await cache.commit(a, meta), true);
    assert.equal(await cache.commit(b, meta), false);
    assert.equal(readFileSync(path.join(dir, 'kkkk', 'image.zst'), 'utf8'), 'from a');
    assert.equal(existsSync(b.tmp), false);
  });
});

describe('snapshots of real guests (7.2)', function () {
  this.timeout(0); // no wall-clock limit: waits on guests are bounded by their progress (lib/guest/progress.ts)
  const KERNEL = '7.2' as const;
  let dir: string;
  let scenario: Scenario;
  const times: string[] = [];
  const last = (): BootInfo => bootHistory().at(-1)!;
  const note = (what: string, b: BootInfo): void =>
    void times.push(
      `${what}: ${b.path} in ${b.bootMs.toFixed(0)} ms${b.saveMs ? ` + save ${b.saveMs.toFixed(0)} ms (${((b.snapshotBytes ?? 0) / 2 ** 20).toFixed(1)} MiB)` : ''}` +
        (b.snapshotReason ? ` [${b.snapshotReason.slice(0, 200)}]` : ''),
    );
  /** The single entry of the machine the scenario describes (the test cache holds one machine at a time until the cap test). */
  const entryOf = (key: string): { dir: string; image: string; meta: SnapshotMeta } => {
    const d = path.join(dir, key);
    return { dir: d, image: path.join(d, 'image.zst'), meta: JSON.parse(readFileSync(path.join(d, 'meta.json'), 'utf8')) as SnapshotMeta };
  };

  /** Machine A, the one plug-online-movable describes. */
  const optsA = (): GuestOptions => ({ kernel: KERNEL, nodes: 2, slots: 4, maxMemory: '8G', cmdline: ['memhp_default_state=online_movable'], snapshot: 'reuse', snapshotDir: dir });

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'memhp-snapshots-'));
    scenario = await loadScenario(`${SCENARIOS}plug-online-movable.yaml`);
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    if (times.length) process.stderr.write(`      snapshot timings:\n        ${times.join('\n        ')}\n`);
    assert.equal(liveGuests(), 0, 'every guest closed');
    assert.deepEqual(ourQemus(), [], 'no QEMU left running');
  });

  it('a saved and a restored guest are observed exactly as a freshly booted one (plug, offline, unplug, sysfs, trace)', async () => {
    const run = (snapshot: 'off' | 'reuse'): Promise<Observation> => runOnGuest(scenario, { kernel: KERNEL, boot: { snapshot, snapshotDir: dir } });
    // First a plain boot: it also calibrates the chain offsets if this kernel never booted here.
    const fresh = await run('off');
    note('fresh boot', last());
    assert.equal(last().path, 'booted');
    const saved = await run('reuse');
    note('boot and save', last());
    assert.equal(last().path, 'booted-and-saved', last().snapshotReason);
    const key = last().snapshotKey!;
    assert.ok(existsSync(path.join(dir, key, 'image.zst')));
    const restored = await run('reuse');
    note('restore', last());
    assert.equal(last().path, 'restored', last().snapshotReason);
    assert.equal(last().snapshotKey, key);

    for (const o of [fresh, saved, restored]) assert.deepEqual(o.steps.filter((s) => s.unmet).map((s) => `${s.index}: ${s.unmet}`), []);
    // The restored guest is a copy of the saved one: the differ's default table, nothing more.
    const same = diffObservations(restored, saved, { labels: ['restored', 'saved'] });
    assert.equal(same.ok, true, formatDiff(same));
    // Two boots differ in what memblock reserves at boot (MemTotal, a boot zone's managed pages: seen 408504
    // and 408508 kB on three plain boots of this machine), so a boot is compared with a boot as a guest is with
    // the simulator: by their change since the baseline snapshot.
    const boots = NORMALISATIONS.map((n) => (n.name === 'boot-reservations' ? { ...n, scope: 'always' as const } : n));
    for (const [o, label] of [[saved, 'saved'], [restored, 'restored']] as const) {
      const r = diffObservations(o, fresh, { labels: [label, 'fresh'], normalisations: boots });
      assert.equal(r.ok, true, formatDiff(r));
    }
    // The steps did something: notifier records on plug and unplug, and QMP events of the new QEMU.
    const kinds = (o: Observation): string[] => [...new Set(o.steps.flatMap((s) => s.trace.map((t) => t.type)))].sort();
    assert.deepEqual(kinds(restored), ['notify', 'qmp-event', 'uevent']);
    assert.ok(restored.bootMs! < fresh.bootMs!, `a restore (${restored.bootMs} ms) is faster than a boot (${fresh.bootMs} ms)`);
  });

  it('a restored Guest has the boot\'s READY, probes and console, the host\'s clock, and no QMP events of the save', async () => {
    const g = await Guest.boot(optsA());
    try {
      note('restore (Guest.boot)', g.boot);
      assert.equal(g.boot.path, 'restored');
      const meta = entryOf(g.boot.snapshotKey!).meta;
      assert.deepEqual(g.boot.ready, meta.host.ready);
      assert.equal(g.boot.ready.release, g.prepared.release);
      assert.equal(g.boot.ready.probesFailed, 0);
      assert.equal(g.kernel.name, '7.2');
      assert.equal(meta.cmdline, 'console=ttyS0 loglevel=7 panic=-1 memhp_default_state=online_movable');
      assert.equal(meta.identity.accel, g.boot.accel === 'kvm' ? 'kvm' : 'tcg');
      assert.match(await g.consoleTail(400), /Linux version 7\.2/, "the boot's console log is there");
      const guestNow = Number((await g.agent.sh('date +%s')).trim());
      assert.ok(Math.abs(guestNow - Date.now() / 1000) < 60, `guest clock ${guestNow} is the host's`);
      assert.deepEqual(await g.qmp.execute('query-status'), { status: 'running', singlestep: false, running: true });
      await g.syncTrace();
      assert.deepEqual(g.trace.events(), [], 'nothing recorded before the first step, no STOP/RESUME/MIGRATION');
      await g.plugDimm({ id: 'd1', size: '128M', node: 1 });
      assert.equal((await g.sysfs.read('/sys/devices/system/memory/memory32/state')).trim(), 'online');
      assert.deepEqual(
        g.trace.events('notify').map((r) => r.action),
        ['NODE_ADDING_FIRST_MEMORY', 'MEM_GOING_ONLINE', 'NODE_ADDED_FIRST_MEMORY', 'MEM_ONLINE'],
      );
      assert.deepEqual(g.trace.events('qmp-event').map((r) => r.event), ['ACPI_DEVICE_OST']);
    } finally {
      await g.close();
    }
  });

  it('a restored guest that is not the machine its entry claims is refused: entry removed, kernel booted and saved again', async () => {
    const key = bootHistory().at(-1)!.snapshotKey!;
    const e = entryOf(key);
    const meta = { ...e.meta, host: { ...e.meta.host, ready: { ...e.meta.host.ready, release: '7.2.0-bogus' } } };
    writeFileSync(path.join(e.dir, 'meta.json'), JSON.stringify(meta));
    const g = await Guest.boot(optsA());
    try {
      note('refused restore, then boot and save', g.boot);
      assert.equal(g.boot.path, 'booted-and-saved');
      assert.match(g.boot.snapshotReason ?? '', new RegExp(`^restore of snapshot ${key} failed, entry removed: the restored guest runs '7\\.2\\.[^']+': expected .*the entry says 7\\.2\\.0-bogus$`));
      assert.equal((await g.agent.sh('uname -r')).trim(), g.prepared.release);
      assert.equal(entryOf(key).meta.host.ready.release, g.prepared.release, 'a new, good entry');
    } finally {
      await g.close();
    }
  });

  it('a corrupted image: its sha256 (in meta.json, which only this user writes) refuses it, the entry goes, the kernel boots, and the new image restores', async () => {
    const key = bootHistory().at(-1)!.snapshotKey!;
    const e = entryOf(key);
    const f = await open(e.image, 'r+');
    await f.write(Buffer.alloc(4096, 0x5a), 0, 4096, Math.floor(e.meta.imageBytes / 2));
    await f.close();
    const g = await Guest.boot(optsA());
    try {
      note('corrupted image, then boot and save', g.boot);
      assert.equal(g.boot.path, 'booted-and-saved');
      assert.match(g.boot.snapshotReason ?? '', /failed, entry removed: \S*\/image\.zst does not match the sha256 recorded when it was made/);
      assert.notEqual(entryOf(key).meta.imageSha256, e.meta.imageSha256, 'a new image');
    } finally {
      await g.close();
    }
    const h = await Guest.boot(optsA());
    try {
      note('restore of the new image', h.boot);
      assert.equal(h.boot.path, 'restored');
    } finally {
      await h.close();
    }
  });

  it("a stream QEMU refuses (another machine's image, checksum and all): entry removed, kernel booted", async () => {
    const keyA = bootHistory().at(-1)!.snapshotKey!;
    const a = entryOf(keyA);
    // Machine B: one node, 8 slots; then give it machine A's image (and A's checksum, so only QEMU can tell).
    const optsB: GuestOptions = { kernel: KERNEL, cmdline: ['memhp_default_state=online_movable'], snapshot: 'reuse', snapshotDir: dir };
    const g = await Guest.boot(optsB);
    const keyB = g.boot.snapshotKey!;
    await g.close();
    note('machine B: boot and save', g.boot);
    assert.equal(g.boot.path, 'booted-and-saved');
    assert.notEqual(keyB, keyA);
    const b = entryOf(keyB);
    cpSync(a.image, b.image);
    writeFileSync(path.join(b.dir, 'meta.json'), JSON.stringify({ ...b.meta, imageSha256: a.meta.imageSha256 }));
    const h = await Guest.boot(optsB);
    try {
      note("machine B from A's image, then boot and save", h.boot);
      assert.equal(h.boot.path, 'booted-and-saved');
      // QEMU 7.2 refuses the stream and says why on stderr (machine A's RAM is memory-backend ram0, B's is pc.ram).
      assert.match(h.boot.snapshotReason ?? '', new RegExp(`^restore of snapshot ${keyB} failed, entry removed: .*QEMU said: .*ramblock`, 'i'));
      assert.equal(h.boot.ready.release, h.prepared.release);
    } finally {
      await h.close();
    }
  });

  it('a save keeps the cache under its cap ($MEMHP_SNAPSHOT_CACHE_MAX): the least recently used machine goes', async () => {
    const cache = new SnapshotCache(dir, Infinity);
    const before = await cache.entries();
    assert.equal(before.length, 2, 'machines A and B');
    const [older, newer] = before;
    // Room for about two and a half images: the third machine's save evicts the least recently used one.
    const saved = process.env.MEMHP_SNAPSHOT_CACHE_MAX;
    process.env.MEMHP_SNAPSHOT_CACHE_MAX = String(Math.floor(2.5 * Math.max(older!.bytes, newer!.bytes)));
    let g: Guest | undefined;
    try {
      g = await Guest.boot({ kernel: KERNEL, nodes: 3, cmdline: ['memhp_default_state=online_movable'], snapshot: 'reuse', snapshotDir: dir });
      note('machine C: boot and save', g.boot);
      assert.equal(g.boot.path, 'booted-and-saved');
    } finally {
      await g?.close();
      if (saved === undefined) delete process.env.MEMHP_SNAPSHOT_CACHE_MAX;
      else process.env.MEMHP_SNAPSHOT_CACHE_MAX = saved;
    }
    const after = (await cache.entries()).map((e) => e.key);
    assert.deepEqual(after, [newer!.key, g.boot.snapshotKey], `evicted ${older!.key}`);
  });

  it('a 6.12 guest boots and is not saved, and says why', async () => {
    const before = (await new SnapshotCache(dir, Infinity).entries()).map((e) => e.key);
    const g = await Guest.boot({ ...optsA(), kernel: '6.12' });
    try {
      note('6.12 with snapshots on', g.boot);
      assert.equal(g.boot.path, 'booted');
      assert.match(g.boot.snapshotReason ?? '', /^snapshots unavailable: restored 6\.12 guests crash/);
    } finally {
      await g.close();
    }
    assert.deepEqual((await new SnapshotCache(dir, Infinity).entries()).map((e) => e.key), before);
  });
});
