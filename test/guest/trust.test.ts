/**
 * Trust in the caches (lib/guest/trust.ts): `$MEMHP_CACHE` and `$MEMHP_SNAPSHOT_DIR` are refused, with
 * what to do, when another user could write them; directories are made 0700; the manifest is neither
 * read nor written through a link; a kernel, module or helper that changed after it was made is
 * unpacked or built again, never booted; snapshot images are read only when they are this user's.
 * The kernel tests unpack the 'latest' kernel into a temporary cache seeded with the apt lists and
 * packages of the usual cache (hard links), so they download nothing when that cache is warm.
 */
import assert from 'node:assert/strict';
import {
  chmodSync, chownSync, copyFileSync, cpSync, existsSync, linkSync, lchownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GuestError } from '../../lib/guest/errors.js';
import { Guest } from '../../lib/guest/guest.js';
import { buildInitramfs } from '../../lib/guest/initramfs.js';
import { KERNEL_SUITES, cacheDir, kernelManifest, prepareKernel, type PrepareOptions, type PreparedKernel } from '../../lib/guest/kernels.js';
import { SNAPSHOT_FORMAT, SnapshotCache, type SnapshotMeta } from '../../lib/guest/snapshot.js';
import { CACHE_ROLE, sha256, trustedDir } from '../../lib/guest/trust.js';
import { ourQemus } from '../qemus.js';

const ROOT = process.getuid?.() === 0;

/** A temporary cache with the apt lists of the latest kernel's suite and the kernel packages of the usual cache (hard links where possible). */
function seedCache(dst: string): void {
  const src = cacheDir();
  const suite = KERNEL_SUITES.latest;
  mkdirSync(dst, { recursive: true, mode: 0o700 });
  if (existsSync(path.join(src, 'apt', suite))) cpSync(path.join(src, 'apt', suite), path.join(dst, 'apt', suite), { recursive: true, preserveTimestamps: true });
  mkdirSync(path.join(dst, 'debs'), { recursive: true, mode: 0o700 });
  for (const f of existsSync(path.join(src, 'debs')) ? readdirSync(path.join(src, 'debs')) : []) {
    if (!/^linux-.*\+deb\d+-amd64_/.test(f)) continue;
    try {
      linkSync(path.join(src, 'debs', f), path.join(dst, 'debs', f));
    } catch {
      copyFileSync(path.join(src, 'debs', f), path.join(dst, 'debs', f));
    }
  }
}

const prep = (cache: string): PrepareOptions => ({ cache, progress: false, ensureHost: false });
const refusal = (re: RegExp) => (e: unknown): boolean => e instanceof GuestError && re.test(e.message);
const fileSha = (f: string): string => sha256(readFileSync(f));

/** Change bytes in the middle of a file, in place (same size). */
async function tamper(file: string): Promise<void> {
  const f = await open(file, 'r+');
  const { size } = await f.stat();
  await f.write(Buffer.alloc(64, 0xcc), 0, 64, Math.floor(size / 2));
  await f.close();
}

/** The files of a newc cpio archive (lib/guest/initramfs.ts cpioNewc). */
function cpioFiles(a: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (let off = 0; ; ) {
    const field = (i: number): number => parseInt(a.toString('latin1', off + 6 + 8 * i, off + 14 + 8 * i), 16);
    const size = field(6);
    const nameLen = field(11);
    const name = a.toString('latin1', off + 110, off + 110 + nameLen - 1);
    if (name === 'TRAILER!!!') return out;
    const data = off + 110 + nameLen + ((4 - ((110 + nameLen) % 4)) % 4);
    out.set(name, a.subarray(data, data + size));
    off = data + size + ((4 - (size % 4)) % 4);
  }
}

describe('cache directories must be this user\'s alone', function () {
  this.timeout(0); // no wall-clock limit: waits on guests are bounded by their progress (lib/guest/progress.ts)
  let root: string;
  let cache: string;
  beforeEach(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'memhp-trusttest-'));
    cache = path.join(root, 'cache');
    seedCache(cache);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('missing directories are made 0700', async () => {
    const d = path.join(root, 'new', 'cache');
    await trustedDir(d, CACHE_ROLE);
    assert.equal(statSync(path.join(root, 'new')).mode & 0o777, 0o700);
    assert.equal(statSync(d).mode & 0o777, 0o700);
  });

  it('a cache writable by group or others is refused, saying what to do', async () => {
    for (const mode of [0o770, 0o707]) {
      chmodSync(cache, mode);
      await assert.rejects(prepareKernel('latest', prep(cache)), refusal(/^the memhp cache .* is not safe to use: it is writable by group or others \(mode 0(770|707)\); .*Run chmod go-w .*, or set MEMHP_CACHE to a directory of your own$/));
    }
  });

  it("a cache of another user's is refused (as root: one chowned to 65534; otherwise root's /)", async () => {
    // Not root, this user cannot give a directory away, but root's own directories are another user's.
    const theirs = ROOT ? cache : '/';
    const [owner, me] = ROOT ? [65534, 0] : [0, process.getuid!()];
    if (ROOT) chownSync(cache, 65534, 65534);
    await assert.rejects(trustedDir(theirs, CACHE_ROLE), refusal(new RegExp(`it belongs to uid ${owner}, not to you \\(uid ${me}\\).*Run chown -R ${me} .*MEMHP_CACHE`)));
    if (ROOT) await assert.rejects(prepareKernel('latest', prep(cache)), refusal(/it belongs to uid 65534, not to you \(uid 0\).*Run chown -R 0 .*MEMHP_CACHE/));
  });

  it('a cache under a directory others can write is refused unless that directory is sticky (as /tmp)', async () => {
    const open = path.join(root, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    await assert.rejects(trustedDir(path.join(open, 'cache'), CACHE_ROLE), refusal(/the directory above it, .*\/open, is writable by others and not sticky \(mode 0777\)/));
    chmodSync(open, 0o1777);
    await trustedDir(path.join(open, 'cache'), CACHE_ROLE);
  });

  it("a cache reached through another user's symbolic link is refused (as root: lchown 65534)", async function () {
    if (!ROOT) this.skip();
    const link = path.join(root, 'link');
    symlinkSync(cache, link);
    lchownSync(link, 65534, 65534);
    await assert.rejects(trustedDir(link, CACHE_ROLE), refusal(/the symbolic link .*\/link belongs to uid 65534/));
  });

  it('a snapshot directory writable by others is refused before QEMU starts', async () => {
    const snaps = path.join(root, 'snapshots');
    mkdirSync(snaps);
    chmodSync(snaps, 0o777);
    await assert.rejects(new SnapshotCache(snaps).check(), refusal(/^the snapshot cache .* writable by group or others.*MEMHP_SNAPSHOT_DIR/));
    await assert.rejects(Guest.boot({ kernel: 'latest', snapshot: 'reuse', snapshotDir: snaps, prepare: prep(cache) }), refusal(/^the snapshot cache .*MEMHP_SNAPSHOT_DIR/));
    assert.deepEqual(ourQemus(), []);
  });

  it('a manifest that is a symbolic link is refused, and nothing is written through it', async () => {
    const victim = path.join(root, 'elsewhere.json');
    const crafted = JSON.stringify({ kernels: { sid: { suite: 'sid', release: 'x', vmlinuz: '/crafted/bzImage', modules: {}, dir: '/crafted' } } });
    writeFileSync(victim, crafted);
    symlinkSync(victim, path.join(cache, 'manifest.json'));
    await assert.rejects(kernelManifest(cache), refusal(/manifest\.json is a symbolic link/));
    await assert.rejects(prepareKernel('latest', prep(cache)), refusal(/manifest\.json is a symbolic link/));
    assert.equal(readFileSync(victim, 'utf8'), crafted);
  });
});

describe('cached kernels and the helper are checked before they are booted', function () {
  this.timeout(0); // no wall-clock limit: waits on guests are bounded by their progress (lib/guest/progress.ts)
  let root: string;
  let cache: string;
  let k: PreparedKernel;
  /** sha256 of every file as first unpacked, relative to the kernel's directory. */
  const genuine = new Map<string, string>();
  let fresh = 0;
  /** The same cache under another spelling: prepareKernel's per-process memo does not know it, as a new process would not. */
  const anew = (): string => cache + '/'.repeat(++fresh);

  before(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'memhp-trusttest-'));
    cache = path.join(root, 'cache');
    seedCache(cache);
    k = await prepareKernel('latest', prep(cache));
    for (const f of [k.vmlinuz, ...Object.values(k.modules)]) genuine.set(path.relative(k.dir, f), fileSha(f));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('a changed bzImage or module is unpacked again from the verified package', async () => {
    for (const rel of ['vmlinuz', 'modules/memory-notifier-error-inject.ko']) {
      await tamper(path.join(k.dir, rel));
      const again = await prepareKernel('latest', prep(cache));
      assert.equal(fileSha(path.join(again.dir, rel)), genuine.get(rel), `${rel} unpacked again`);
      const restarted = await prepareKernel('latest', prep(anew()));
      assert.equal(fileSha(restarted.vmlinuz), genuine.get('vmlinuz'));
    }
  });

  it("kernel.json cannot send a boot elsewhere: the files are the kernel directory's own, and checked", async () => {
    const info = path.join(k.dir, 'kernel.json');
    const j = JSON.parse(readFileSync(info, 'utf8')) as PreparedKernel;
    writeFileSync(info, JSON.stringify({ ...j, vmlinuz: '/etc/hostname', modules: Object.fromEntries(Object.keys(j.modules).map((m) => [m, '/etc/hostname'])) }));
    const again = await prepareKernel('latest', prep(anew()));
    assert.equal(again.vmlinuz, path.join(again.dir, 'vmlinuz'));
    for (const [m, f] of Object.entries(again.modules)) assert.equal(f, path.join(again.dir, 'modules', `${m}.ko`));
    assert.equal(fileSha(again.vmlinuz), genuine.get('vmlinuz'));
  });

  it('a kernel unpacked before digests were recorded is unpacked again', async () => {
    const info = path.join(k.dir, 'kernel.json');
    const j = JSON.parse(readFileSync(info, 'utf8')) as Record<string, unknown>;
    delete j.digests;
    writeFileSync(info, JSON.stringify(j));
    await tamper(path.join(k.dir, 'vmlinuz'));
    const again = await prepareKernel('latest', prep(anew()));
    assert.equal(fileSha(again.vmlinuz), genuine.get('vmlinuz'));
    assert.ok((JSON.parse(readFileSync(info, 'utf8')) as { digests?: object }).digests, 'digests recorded now');
  });

  it('an initramfs is not built from a module that changed after prepareKernel', async () => {
    const out = path.join(root, 'initramfs.cpio');
    const mod = k.modules['memory-notifier-error-inject']!;
    await tamper(mod);
    await assert.rejects(buildInitramfs(out, { kernel: k }), refusal(/memory-notifier-error-inject\.ko does not match the sha256 recorded/));
    k = await prepareKernel('latest', prep(cache)); // unpacked again
    await buildInitramfs(out, { kernel: k });
    const files = cpioFiles(readFileSync(out));
    assert.equal(sha256(files.get('lib/modules/memory-notifier-error-inject.ko')!), genuine.get('modules/memory-notifier-error-inject.ko'));
  });

  it('a changed helper binary is built again, never shipped in an initramfs', async () => {
    const saved = process.env.MEMHP_CACHE;
    process.env.MEMHP_CACHE = cache; // the helper lives in the cache directory
    try {
      const out = path.join(root, 'initramfs.cpio');
      await buildInitramfs(out, { kernel: k });
      const helper = cpioFiles(readFileSync(out)).get('bin/memhp-io')!;
      const [key] = readdirSync(path.join(cache, 'helper'));
      const bin = path.join(cache, 'helper', key!, 'memhp-io');
      assert.equal(fileSha(bin), sha256(helper));
      await tamper(bin);
      await buildInitramfs(out, { kernel: k });
      assert.equal(sha256(cpioFiles(readFileSync(out)).get('bin/memhp-io')!), sha256(helper), 'the genuine helper');
      assert.equal(fileSha(bin), sha256(helper), 'built again');
    } finally {
      if (saved === undefined) delete process.env.MEMHP_CACHE;
      else process.env.MEMHP_CACHE = saved;
    }
  });

  it('a guest boots the genuine kernel after its cached bzImage was changed', async () => {
    await tamper(k.vmlinuz);
    const g = await Guest.boot({ kernel: 'latest', prepare: prep(cache) });
    try {
      assert.equal(g.boot.ready.release, k.release);
      assert.equal(fileSha(g.prepared.vmlinuz), genuine.get('vmlinuz'));
    } finally {
      await g.close();
    }
  });
});

describe('snapshot entries are read only when they are this user\'s, and as checked', () => {
  let dir: string;
  let cache: SnapshotCache;
  const image = Buffer.from('a migration stream, compressed');
  beforeEach(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'memhp-trustsnap-'));
    cache = new SnapshotCache(path.join(dir, 'snapshots'), Infinity);
    const p = await cache.begin('kkkk');
    writeFileSync(p.image, image, { mode: 0o600 });
    assert.equal(await cache.commit(p, { format: SNAPSHOT_FORMAT, key: 'kkkk', imageBytes: image.length, imageSha256: sha256(image) } as SnapshotMeta), true);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('the snapshot directory and its entries are made 0700', () => {
    assert.equal(statSync(cache.dir).mode & 0o777, 0o700);
    assert.equal(statSync(path.join(cache.dir, 'kkkk')).mode & 0o777, 0o700);
    assert.equal(statSync(path.join(cache.dir, 'kkkk', 'meta.json')).mode & 0o777, 0o600);
  });

  it('read() gives the bytes it checked; the file changing afterwards changes nothing', async () => {
    const e = (await cache.lookup('kkkk'))!;
    const data = await cache.read(e);
    writeFileSync(e.image, Buffer.alloc(image.length, 0x41));
    assert.equal(sha256(data), e.meta.imageSha256);
  });

  it("an image that is a link, writable by others, or another user's is refused", async () => {
    const e = (await cache.lookup('kkkk'))!;
    const real = path.join(dir, 'real.zst');
    writeFileSync(real, image);
    rmSync(e.image);
    symlinkSync(real, e.image);
    await assert.rejects(cache.read(e), refusal(/image\.zst is a symbolic link/));
    rmSync(e.image);
    writeFileSync(e.image, image);
    chmodSync(e.image, 0o666);
    await assert.rejects(cache.read(e), refusal(/image\.zst is writable by group or others \(mode 0666\)/));
    if (ROOT) {
      chmodSync(e.image, 0o600);
      chownSync(e.image, 65534, 65534);
      await assert.rejects(cache.read(e), refusal(/image\.zst belongs to uid 65534/));
    }
  });

  it('an entry whose meta.json is a link is no entry', async () => {
    const meta = path.join(cache.dir, 'kkkk', 'meta.json');
    const real = path.join(dir, 'meta.json');
    cpSync(meta, real);
    rmSync(meta);
    symlinkSync(real, meta);
    let why = '';
    assert.equal(await cache.lookup('kkkk', (w) => (why = w)), undefined);
    assert.match(why, /^snapshot kkkk refused and removed: .*meta\.json is a symbolic link/);
    assert.equal(existsSync(path.join(cache.dir, 'kkkk')), false, 'removed, so a boot can save it again');
  });

  it('an entry directory writable by others is refused and removed', async () => {
    chmodSync(path.join(cache.dir, 'kkkk'), 0o777);
    let why = '';
    assert.equal(await cache.lookup('kkkk', (w) => (why = w)), undefined);
    assert.match(why, /writable by group or others \(mode 0777\).*MEMHP_SNAPSHOT_DIR/);
    assert.equal(existsSync(path.join(cache.dir, 'kkkk')), false);
  });
});
