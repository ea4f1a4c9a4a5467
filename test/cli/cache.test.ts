/**
 * `memhp cache`: listing and cleaning the kernel and snapshot caches. A temporary `$MEMHP_CACHE` is laid
 * out as lib/guest/kernels.ts lays it out (kernels/<release>/ with kernel.json, debs/, apt/<suite>/,
 * helper/<key>/, manifest.json), and its snapshots are saved through the snapshot cache's own code
 * (SnapshotCache.begin + commit); a second temporary directory serves as `$MEMHP_SNAPSHOT_DIR`.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { humanBytes, runCache, type CacheReport, type CleanReport } from '../../lib/cli/cache.js';
import { EXIT, type CliIo } from '../../lib/cli/io.js';
import { ownerTag } from '../../lib/guest/cleanup.js';
import { SNAPSHOT_FORMAT, SnapshotCache, snapshotKey, type SnapshotIdentity, type SnapshotMeta } from '../../lib/guest/snapshot.js';
import { writeOwnFile } from '../../lib/guest/trust.js';

function capture(): CliIo & { out: string; err: string } {
  const io = { out: '', err: '', stdout: (t: string) => void (io.out += t), stderr: (t: string) => void (io.err += t) };
  return io;
}

const cache = async (...args: string[]): Promise<{ code: number; out: string; err: string }> => {
  const io = capture();
  const code = await runCache(args, io);
  return { code, out: io.out, err: io.err };
};

const MiB = 2 ** 20;
const KERNELS = [
  { suite: 'bookworm', release: '6.1.0-57-amd64', version: '6.1.192-3', packages: ['linux-image-6.1.0-57-amd64'] },
  { suite: 'sid', release: '7.2.13+deb14-amd64', version: '7.2.13-1', packages: ['linux-image-7.2.13+deb14-amd64', 'linux-modules-7.2.13+deb14-amd64'] },
] as const;

let root: string;
let cdir: string;
let sdir: string;
let outside: string;
const saved = { cache: process.env.MEMHP_CACHE, snaps: process.env.MEMHP_SNAPSHOT_DIR, max: process.env.MEMHP_SNAPSHOT_CACHE_MAX };

const file = (p: string, bytes: number): void => {
  mkdirSync(path.dirname(p), { recursive: true, mode: 0o700 });
  writeFileSync(p, Buffer.alloc(bytes, 1), { mode: 0o644 });
};

/** Bytes the fixture puts in each place, for the totals. */
const expected = { kernel: 0, debs: 0, otherDebs: 0, apt: 0, helper: 0, manifest: 0, snapshots: 0 };

/** A saved guest, through the snapshot cache's own begin/commit. */
async function saveSnapshot(release: string, memory: number, nodes: number, cmdline: string[], imageBytes: number): Promise<string> {
  const args = ['@ACCEL', '-m', `${memory}B,slots=8,maxmem=${8 * 2 ** 30}B`, '-smp', String(nodes)];
  for (let n = 0; n < nodes && nodes > 1; n++) args.push('-numa', `node,nodeid=${n}`);
  const identity: SnapshotIdentity = { qemu: 'test', accel: 'tcg', args, release, vmlinuz: 'x', initramfs: 'y', hostCpu: '' };
  const key = snapshotKey(identity);
  const sc = new SnapshotCache(sdir, 2 ** 40);
  const p = await sc.begin(key);
  writeFileSync(p.image, Buffer.alloc(imageBytes, 2));
  writeFileSync(p.console, 'booted\n');
  const ready = { release, version: '1', pageSize: 4096 } as unknown as SnapshotMeta['host']['ready'];
  const meta: SnapshotMeta = {
    format: SNAPSHOT_FORMAT, key, created: new Date().toISOString(), identity, compression: 'zstd', imageBytes, imageSha256: 'z', saveMs: 400, bootMs: 4200,
    cmdline: ['console=ttyS0', 'loglevel=7', 'panic=-1', ...cmdline].join(' '),
    host: { ready, chainHeads: 'calibrated', traceOffset: 0, probes: [], pendingQmp: [], trace: [] },
  };
  assert.equal(await sc.commit(p, meta), true);
  return key;
}

/** A populated cache: two kernels with packages, an old package, apt state, two helper builds, the manifest, three snapshots. */
async function populate(): Promise<string[]> {
  Object.assign(expected, { kernel: 0, debs: 0, otherDebs: 0, apt: 0, helper: 0, manifest: 0, snapshots: 0 });
  mkdirSync(cdir, { recursive: true, mode: 0o700 });
  mkdirSync(sdir, { recursive: true, mode: 0o700 });
  const manifest: Record<string, unknown> = {};
  for (const k of KERNELS) {
    const dir = path.join(cdir, 'kernels', k.release);
    file(path.join(dir, 'vmlinuz'), 1 * MiB);
    file(path.join(dir, 'btf'), 100_000);
    file(path.join(dir, 'modules', 'virtio_mem.ko'), 20_000);
    const packages = k.packages.map((name, i) => ({ name, version: k.version, size: (2 + i) * MiB, sha256: 'x' }));
    const json = JSON.stringify({ suite: k.suite, release: k.release, version: k.version, packages }, null, 2);
    await writeOwnFile(path.join(dir, 'kernel.json'), json, 0o644);
    expected.kernel += MiB + 100_000 + 20_000 + Buffer.byteLength(json);
    for (const p of packages) {
      file(path.join(cdir, 'debs', `${p.name}_${p.version}_amd64.deb`), p.size);
      expected.debs += p.size;
    }
    manifest[k.suite] = { ...k, packages, dir };
  }
  file(path.join(cdir, 'debs', 'linux-image-6.1.0-56-amd64_6.1.190-1_amd64.deb'), 3 * MiB); // an older version
  expected.otherDebs = 3 * MiB;
  for (const s of ['bookworm', 'sid']) {
    file(path.join(cdir, 'apt', s, 'lists', 'Packages'), 500_000);
    file(path.join(cdir, 'apt', s, 'sources.list'), 100);
    expected.apt += 500_100;
  }
  for (const key of ['08badf287cbd97cb', '30df8c3e6b88f332']) {
    file(path.join(cdir, 'helper', key, 'memhp-io'), 700_000);
    expected.helper += 700_000;
  }
  const mtext = JSON.stringify({ kernels: manifest }, null, 2) + '\n';
  await writeOwnFile(path.join(cdir, 'manifest.json'), mtext, 0o644);
  expected.manifest = Buffer.byteLength(mtext);
  writeFileSync(path.join(cdir, 'notes.txt'), 'mine\n'); // not memhp's
  const keys = [
    await saveSnapshot(KERNELS[0].release, 512 * MiB, 1, [], 300_000),
    await saveSnapshot(KERNELS[1].release, 512 * MiB, 2, ['memhp_default_state=online_movable'], 400_000),
    await saveSnapshot(KERNELS[1].release, 1024 * MiB, 1, ['memhp_default_state=offline'], 500_000),
  ];
  for (const k of keys) for (const f of readdirSync(path.join(sdir, k))) expected.snapshots += statSync(path.join(sdir, k, f)).size;
  return keys;
}

describe('memhp cache', function () {
  this.timeout(60_000);

  beforeEach(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'memhp-cache-test-'));
    cdir = path.join(root, 'cache');
    sdir = path.join(root, 'snapshots');
    outside = path.join(root, 'outside');
    process.env.MEMHP_CACHE = cdir;
    process.env.MEMHP_SNAPSHOT_DIR = sdir;
    delete process.env.MEMHP_SNAPSHOT_CACHE_MAX;
  });
  afterEach(() => {
    for (const [k, v] of [['MEMHP_CACHE', saved.cache], ['MEMHP_SNAPSHOT_DIR', saved.snaps], ['MEMHP_SNAPSHOT_CACHE_MAX', saved.max]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    chmodSync(root, 0o700);
    rmSync(root, { recursive: true, force: true });
  });

  it('lists kernels with their packages, apt state, helper builds, the manifest and snapshots, with sizes and totals', async () => {
    const keys = await populate();
    const r = await cache();
    assert.deepEqual([r.code, r.err], [EXIT.OK, '']);
    const lines = r.out.split('\n');
    assert.match(lines[0]!, new RegExp(`^kernel cache ${cdir} \\(MEMHP_CACHE\\): \\d+\\.\\d MiB$`));
    assert.match(lines[1]!, /^ {2}KERNEL +SUITE +VERSION +UNPACKED +PACKAGES +TOTAL$/);
    assert.match(r.out, /^ {2}6\.1\.0-57-amd64 +bookworm +6\.1\.192-3 +1\.1 MiB +2\.0 MiB +3\.1 MiB$/m);
    assert.match(r.out, /^ {2}7\.2\.13\+deb14-amd64 +sid +7\.2\.13-1 +1\.1 MiB +5\.0 MiB +6\.1 MiB$/m);
    assert.match(r.out, /^ {2}other packages: 3\.0 MiB \(linux-image-6\.1\.0-56-amd64_6\.1\.190-1_amd64\.deb\)$/m);
    assert.match(r.out, /^ {2}apt state: 976\.8 KiB \(bookworm 488\.4 KiB, sid 488\.4 KiB\)$/m);
    assert.match(r.out, /^ {2}helper builds: 1\.3 MiB \(2, the newest built \d{4}-\d\d-\d\d \d\d:\d\d\)$/m);
    assert.match(r.out, /^ {2}manifest\.json: \d+ B$/m);
    assert.match(r.out, /^ {2}not memhp's, never removed: 5 B \(notes\.txt\)$/m);
    assert.match(r.out, new RegExp(`^snapshot cache ${sdir} \\(MEMHP_SNAPSHOT_DIR\\): 3 snapshots, 1\\.1 MiB, capped at 2\\.0 GiB$`, 'm'));
    assert.match(r.out, /^ {2}KEY +KERNEL +ACCEL +SIZE +SAVED +LAST USED +MACHINE$/m);
    assert.match(r.out, new RegExp(`^ {2}${keys[1]!.slice(0, 12)} +7\\.2\\.13\\+deb14-amd64 +tcg +\\d+\\.\\d KiB +[\\d-]+ [\\d:]+ +[\\d-]+ [\\d:]+ +512 MiB, maxmem 8 GiB, 8 slots, 2 cpus, 2 nodes, memhp_default_state=online_movable$`, 'm'));
    assert.match(r.out, new RegExp(`^ {2}${keys[2]!.slice(0, 12)} .* 1 GiB, maxmem 8 GiB, 8 slots, 1 cpu, 1 node, memhp_default_state=offline$`, 'm'));
    assert.match(lines.at(-2)!, /^total \d+\.\d MiB$/);
  });

  it('--json: the listing for machines, its sizes the bytes on disk', async () => {
    const keys = await populate();
    for (const args of [['--json'], ['list', '--json']]) {
      const r = await cache(...args);
      assert.deepEqual([r.code, r.err], [EXIT.OK, ''], args.join(' '));
      const j = JSON.parse(r.out) as CacheReport;
      assert.deepEqual(Object.keys(j), ['cache', 'snapshots', 'bytes']);
      assert.deepEqual(
        j.cache.kernels.map((k) => [k.release, k.suite, k.version, k.current, k.packages.length]),
        [
          ['6.1.0-57-amd64', 'bookworm', '6.1.192-3', true, 1],
          ['7.2.13+deb14-amd64', 'sid', '7.2.13-1', true, 2],
        ],
      );
      assert.equal(j.cache.kernels.reduce((t, k) => t + k.unpackedBytes, 0), expected.kernel);
      assert.equal(j.cache.kernels.reduce((t, k) => t + k.bytes - k.unpackedBytes, 0), expected.debs);
      assert.deepEqual(j.cache.packages, [{ file: 'linux-image-6.1.0-56-amd64_6.1.190-1_amd64.deb', bytes: expected.otherDebs }]);
      assert.deepEqual(j.cache.apt.map((a) => [a.suite, a.bytes]), [['bookworm', 500_100], ['sid', 500_100]]);
      assert.deepEqual(j.cache.helpers.map((h) => [h.key, h.bytes]), [['08badf287cbd97cb', 700_000], ['30df8c3e6b88f332', 700_000]]);
      assert.deepEqual(j.cache.manifest, { name: 'manifest.json', bytes: expected.manifest });
      assert.deepEqual(j.cache.other, [{ name: 'notes.txt', bytes: 5 }]);
      assert.equal(j.cache.bytes, expected.kernel + expected.debs + expected.otherDebs + expected.apt + expected.helper + expected.manifest + 5);
      assert.equal(j.snapshots.maxBytes, 2 * 2 ** 30);
      assert.deepEqual(j.snapshots.entries.map((e) => e.key).sort(), [...keys].sort());
      const e = j.snapshots.entries.find((x) => x.key === keys[1])!;
      assert.deepEqual(
        { release: e.release, accel: e.accel, machine: e.machine, cmdline: e.cmdline, imageBytes: e.imageBytes, bootMs: e.bootMs },
        { release: '7.2.13+deb14-amd64', accel: 'tcg', machine: '512 MiB, maxmem 8 GiB, 8 slots, 2 cpus, 2 nodes', cmdline: 'memhp_default_state=online_movable', imageBytes: 400_000, bootMs: 4200 },
      );
      assert.equal(j.snapshots.bytes, expected.snapshots);
      assert.equal(j.bytes, j.cache.bytes + j.snapshots.bytes);
    }
  });

  it('missing caches are listed as empty and not made', async () => {
    const r = await cache();
    assert.deepEqual([r.code, r.err], [EXIT.OK, '']);
    assert.equal(r.out, `kernel cache ${cdir} (MEMHP_CACHE): none yet\nsnapshot cache ${sdir} (MEMHP_SNAPSHOT_DIR): none yet, capped at 2.0 GiB\ntotal 0 B\n`);
    assert.equal(existsSync(cdir) || existsSync(sdir), false);
    const c = await cache('clean', '--all');
    assert.deepEqual([c.code, c.out, c.err], [EXIT.OK, 'nothing to remove\nfreed 0 B\n', '']);
    assert.equal(existsSync(cdir) || existsSync(sdir), false);
  });

  it('clean needs to be told what; --dry-run removes nothing', async () => {
    await populate();
    const r = await cache('clean');
    assert.deepEqual(r, { code: EXIT.TROUBLE, out: '', err: 'memhp cache: say what to remove: --snapshots, --kernels or --all (see: memhp cache clean --help)\n' });
    const bad = await cache('clean', '--everything');
    assert.equal(bad.code, EXIT.TROUBLE);
    assert.match(bad.err, /^memhp cache: unknown option '--everything'/);
    const before = JSON.parse((await cache('--json')).out) as CacheReport;
    const d = await cache('clean', '--all', '--dry-run');
    assert.equal(d.code, EXIT.OK, d.err);
    assert.match(d.out, /^would remove 3 snapshots \(1\.1 MiB\) from /m);
    assert.match(d.out, /^would remove 2 unpacked kernels \(2\.2 MiB\) from /m);
    assert.match(d.out, /^would free \d+\.\d MiB$/m);
    assert.deepEqual(JSON.parse((await cache('--json')).out), before);
  });

  it('clean --snapshots removes the saved guests and nothing else: not a link target, not a live save, not a stranger', async () => {
    const keys = await populate();
    // A link inside an entry, to a file outside: the link goes, the file stays.
    file(path.join(outside, 'precious'), 1000);
    symlinkSync(path.join(outside, 'precious'), path.join(sdir, keys[0]!, 'link'));
    symlinkSync(outside, path.join(sdir, keys[1]!, 'dirlink'));
    const links = lstatSync(path.join(sdir, keys[0]!, 'link')).size + lstatSync(path.join(sdir, keys[1]!, 'dirlink')).size;
    const live = path.join(sdir, `.tmp-${ownerTag()}-live`); // this process's own save in progress
    const dead = path.join(sdir, '.tmp-999999999-1-dead'); // a save whose process is gone
    file(path.join(live, 'image.zst'), 10);
    file(path.join(dead, 'image.zst'), 10);
    file(path.join(sdir, 'README'), 10);
    const r = await cache('clean', '--snapshots', '--json');
    assert.deepEqual([r.code, r.err], [EXIT.OK, '']);
    const j = JSON.parse(r.out) as CleanReport;
    assert.deepEqual(j.removed.map((x) => [x.kind, path.basename(x.path)]).sort(), [...keys.map((k) => ['snapshot', k]), ['unfinished save', path.basename(dead)]].sort());
    // The links count as themselves; the dead save's size is not known (it was reclaimed before it was measured).
    assert.equal(j.bytes, expected.snapshots + links);
    assert.deepEqual(readdirSync(sdir).sort(), [path.basename(live), 'README'].sort());
    assert.ok(existsSync(path.join(outside, 'precious')));
    assert.ok(existsSync(path.join(cdir, 'kernels', KERNELS[0].release, 'vmlinuz')));
    assert.ok(existsSync(path.join(cdir, 'manifest.json')));
  });

  it('clean --kernels removes unpacked kernels, packages and the manifest, and says what was freed', async () => {
    await populate();
    const r = await cache('clean', '--kernels');
    assert.deepEqual([r.code, r.err], [EXIT.OK, '']);
    assert.equal(
      r.out,
      `removed 2 unpacked kernels (2.2 MiB) from ${path.join(cdir, 'kernels')}\n` +
        `removed 4 packages (10.0 MiB) from ${path.join(cdir, 'debs')}\n` +
        `removed 1 manifest (${humanBytes(expected.manifest)}) from ${cdir}\n` +
        `freed ${((expected.kernel + expected.debs + expected.otherDebs + expected.manifest) / MiB).toFixed(1)} MiB\n`,
    );
    assert.deepEqual(readdirSync(path.join(cdir, 'kernels')), []);
    assert.deepEqual(readdirSync(path.join(cdir, 'debs')), []);
    assert.deepEqual(readdirSync(cdir).sort(), ['apt', 'debs', 'helper', 'kernels', 'notes.txt']);
    assert.equal(readdirSync(sdir).length, 3);
  });

  it('clean --all removes everything memhp made, and only that', async () => {
    await populate();
    const r = await cache('clean', '--all', '--json');
    assert.deepEqual([r.code, r.err], [EXIT.OK, '']);
    const j = JSON.parse(r.out) as CleanReport;
    assert.deepEqual(j.failed, []);
    const total = expected.kernel + expected.debs + expected.otherDebs + expected.apt + expected.helper + expected.manifest + expected.snapshots;
    assert.equal(j.bytes, total);
    assert.deepEqual(
      Object.entries(j.removed.reduce<Record<string, number>>((m, x) => ({ ...m, [x.kind]: (m[x.kind] ?? 0) + 1 }), {})).sort(),
      [['apt state', 2], ['helper build', 2], ['kernel', 2], ['manifest', 1], ['package', 4], ['snapshot', 3]],
    );
    for (const d of ['kernels', 'debs', 'apt', 'helper']) assert.deepEqual(readdirSync(path.join(cdir, d)), [], d);
    assert.deepEqual(readdirSync(sdir), []);
    assert.ok(existsSync(path.join(cdir, 'notes.txt')));
    const after = JSON.parse((await cache('--json')).out) as CacheReport;
    assert.deepEqual([after.cache.bytes, after.snapshots.bytes], [5, 0]);
  });

  it('refuses a cache another user could write (mode 0777), or a link in it, with the fix; removes nothing', async () => {
    await populate();
    chmodSync(cdir, 0o777);
    for (const args of [[], ['clean', '--kernels'], ['clean', '--all']]) {
      const r = await cache(...args);
      assert.equal(r.code, EXIT.TROUBLE, args.join(' '));
      assert.equal(r.out, '');
      assert.equal(
        r.err,
        `memhp cache: the memhp cache ${cdir} is not safe to use: it is writable by group or others (mode 0777); another user could change what QEMU boots or restores. Run chmod go-w ${cdir} (or chmod 700), or set MEMHP_CACHE to a directory of your own\n`,
      );
    }
    assert.equal(readdirSync(path.join(cdir, 'kernels')).length, 2);
    assert.equal(readdirSync(sdir).length, 3); // --all checks every directory first
    // The snapshot cache alone is another matter.
    assert.equal((await cache('clean', '--snapshots')).code, EXIT.OK);
    chmodSync(cdir, 0o700);
    chmodSync(sdir, 0o770);
    const s = await cache('clean', '--snapshots');
    assert.equal(s.code, EXIT.TROUBLE);
    assert.match(s.err, new RegExp(`^memhp cache: the snapshot cache ${sdir} is not safe to use: it is writable by group or others \\(mode 0770\\);.* or set MEMHP_SNAPSHOT_DIR to a directory of your own\\n$`));
    chmodSync(sdir, 0o700);
    // kernels/ a link to a directory elsewhere: refused, and what it points to is left alone.
    file(path.join(outside, '6.1.0-1-amd64', 'vmlinuz'), 100);
    rmSync(path.join(cdir, 'kernels'), { recursive: true });
    symlinkSync(outside, path.join(cdir, 'kernels'));
    const k = await cache('clean', '--kernels');
    assert.equal(k.code, EXIT.TROUBLE);
    assert.equal(k.err, `memhp cache: the memhp cache ${path.join(cdir, 'kernels')} is not safe to use: it is a symbolic link; another user could change what QEMU boots or restores. Remove it, or set MEMHP_CACHE to a directory of your own\n`);
    assert.ok(existsSync(path.join(outside, '6.1.0-1-amd64', 'vmlinuz')));
    assert.ok(existsSync(path.join(cdir, 'manifest.json')));
  });

  it('with the snapshot cache inside the kernel cache (the default), each byte is counted once', async () => {
    sdir = path.join(cdir, 'snapshots');
    delete process.env.MEMHP_SNAPSHOT_DIR;
    await populate();
    const j = JSON.parse((await cache('--json')).out) as CacheReport;
    assert.equal(j.snapshots.dir, sdir);
    assert.equal(j.snapshots.entries.length, 3);
    assert.deepEqual(j.cache.other, [{ name: 'notes.txt', bytes: 5 }]);
    assert.equal(j.bytes, j.cache.bytes + j.snapshots.bytes);
    assert.equal(j.snapshots.bytes, expected.snapshots);
    const r = await cache('clean', '--kernels');
    assert.equal(r.code, EXIT.OK, r.err);
    assert.equal(readdirSync(sdir).length, 3);
  });
});
