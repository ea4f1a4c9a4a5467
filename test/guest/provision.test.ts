/**
 * Slice 1 of the guest harness: host packages, kernel download through the private apt configuration,
 * cache + manifest, BTF-derived layout, probe rendering, initramfs, trace-line decoding.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { KERNEL_VERSIONS, LATEST, getProfile } from '../../lib/kernel/profile.js';
import { cpioNewc } from '../../lib/guest/initramfs.js';
import { KERNEL_SUITES, kernelManifest, prepareKernel, type PreparedKernel } from '../../lib/guest/kernels.js';
import { decodeTraceLine, effectiveProfile, probesFor, toTraceRecord } from '../../lib/guest/probes.js';

/** Every profile's kernel, the newest as 'latest' (lib/kernel/profile.ts). */
const SPECS = KERNEL_VERSIONS.map((v) => (v === LATEST ? 'latest' : v));

describe('guest provisioning (real Debian archive)', function () {
  // First run downloads ≈300 MB; later runs only re-resolve versions.
  this.timeout(0); // no wall-clock limit: waits on guests are bounded by their progress (lib/guest/progress.ts)
  const kernels: Record<string, PreparedKernel> = {};

  before(async () => {
    const t0 = Date.now();
    const ks = await Promise.all(SPECS.map((s) => prepareKernel(s)));
    SPECS.forEach((s, i) => (kernels[s] = ks[i]!));
    process.stderr.write(`      provisioning: ${Date.now() - t0} ms, ${ks.map((k) => `${k.release} ${(k.downloadBytes / 1e6).toFixed(1)} MB`).join(', ')}\n`);
  });

  it('resolves each suite to a kernel of the right series and records exact versions in the manifest', async () => {
    assert.match(kernels['6.1']!.release, /^6\.1\.\d+-\d+-amd64$/);
    assert.match(kernels['6.12']!.release, /^6\.12\.\d+\+deb13-amd64$/);
    assert.match(kernels.latest!.release, /^\d+\.\d+\.\d+\+deb\d+-amd64$/);
    const manifest = await kernelManifest();
    for (const spec of SPECS) {
      const suite = KERNEL_SUITES[spec];
      const m = manifest[suite];
      assert.ok(m, `manifest has ${suite}`);
      assert.equal(m.release, kernels[spec]!.release);
      for (const p of m.packages) {
        assert.match(p.version, /^\d/);
        assert.match(p.sha256, /^[0-9a-f]{64}$/);
      }
    }
  });

  it('7.x (sid, trixie-backports) splits the kernel into base/binary/modules packages; the modules come from the same version', () => {
    const names = kernels.latest!.packages.map((p) => p.name.replace(kernels.latest!.release, 'ABI'));
    if (names.length > 1) assert.deepEqual(names.slice(1).sort(), ['linux-base-ABI', 'linux-binary-ABI', 'linux-modules-ABI']);
    for (const k of Object.values(kernels)) {
      for (const m of ['notifier-error-inject', 'memory-notifier-error-inject']) assert.ok(existsSync(k.modules[m]!), `${k.release}: ${m}`);
    }
  });

  it('derives payload layouts from BTF that match the profiles', () => {
    for (const k of Object.values(kernels)) {
      const base = getProfile(k.release);
      assert.deepEqual(k.layout.memoryNotify.map((m) => m.name), [...base.memoryNotifyFields], k.release);
      assert.equal(k.layout.nodeNotify !== null, base.nodeActions !== null, k.release);
    }
    assert.equal(kernels['6.1']!.layout.memoryNotifyActionSize, 8);
  });

  it('renders the probe template with BTF offsets (chain probe fetches exactly the payload fields)', async () => {
    const p612 = await probesFor(kernels['6.12']!.layout);
    assert.match(p612, /^chain:memory_chain:memchain:altmap_start_pfn=\+0\(%dx\):u64 altmap_nr_pages=\+8\(%dx\):u64 start_pfn=\+16\(%dx\):u64 nr_pages=\+24\(%dx\):u64 status_change_nid_normal=\+32\(%dx\):s32 status_change_nid=\+36\(%dx\):s32$/m);
    assert.doesNotMatch(p612, /node_chain/);
    const pl = await probesFor(kernels.latest!.layout);
    assert.match(pl, /^chain:node_chain:nodechain:nid=\+0\(%dx\):s32$/m);
    assert.doesNotMatch(pl, /[{}]/);
  });

  it('writes newc cpio archives the kernel can unpack', () => {
    const a = cpioNewc([{ name: 'init', mode: 0o100755, data: Buffer.from('#!/bin/sh\n') }, { name: 'dev/console', mode: 0o020600, rdev: [5, 1] }]);
    assert.equal(a.toString('latin1', 0, 6), '070701');
    assert.equal(a.length % 4, 0);
    assert.ok(a.includes('TRAILER!!!'));
    assert.equal(parseInt(a.toString('latin1', 6 + 8 * 6, 6 + 8 * 7), 16), 10); // filesize of init
  });
});

describe('guest trace decoding', () => {
  it('turns kprobe and uevent lines into records with exactly the profile fields', async () => {
    const p = getProfile('6.1');
    const line = '    kworker/u8:1-62      [000] .....     6.297701: memchain: (blocking_notifier_call_chain+0x4/0x60) nh=0xffffffff917ceca0 action=8 start_pfn=1048576 nr_pages=32768 status_change_nid_normal=-1 status_change_nid=1';
    const r = decodeTraceLine(line)!;
    assert.equal(r.event, 'memchain');
    assert.equal(r.ts, 6.297701);
    assert.deepEqual(toTraceRecord(r, p), {
      type: 'notify', chain: 'memory', action: 'MEM_GOING_ONLINE', value: 8,
      start_pfn: 1048576, nr_pages: 32768, status_change_nid_normal: -1, status_change_nid: 1,
    });
    const ret = decodeTraceLine('  kworker/u8:1-62 [000] ..... 6.298053: offline_pages_ret: (memory_subsys_offline+0x101/0x1c0 <- offline_pages) ret=-16')!;
    assert.equal(ret.fields.ret, -16);
    assert.equal(toTraceRecord(ret, p), null);
    const z = decodeTraceLine('  kworker/u8:1-62 [001] d..1. 6.3: online_pages: (online_pages+0x4/0x700) pfn=1048576 nr_pages=32768 zone="Movable" znode=1')!;
    assert.equal(z.fields.zone, 'Movable');
    const u = decodeTraceLine('              sh-95      [001] .....    12.5: tracing_mark_write: uevent 1234 online memory /devices/system/memory/memory32')!;
    assert.deepEqual(toTraceRecord(u, p), { type: 'uevent', action: 'online', devpath: '/devices/system/memory/memory32' });
    assert.equal(decodeTraceLine('  sh-95 [001] ..... 12.6: tracing_mark_write: sync-95-12.6'), null);
  });

  it('names actions by the numbering the kernel declares in BTF', async () => {
    const stock = getProfile('6.12');
    const layout = { memoryNotify: [], nodeNotify: null, memoryNotifyActionSize: 8, zone: { name: 0, node: 0 }, resource: { start: 0, end: 8 },
      // What a 6.12.107 kernel declares (bit flags); the stock profile follows 6.12.117's enum.
      memoryActions: { MEM_ONLINE: 1, MEM_GOING_OFFLINE: 2, MEM_OFFLINE: 4, MEM_GOING_ONLINE: 8, MEM_CANCEL_ONLINE: 16, MEM_CANCEL_OFFLINE: 32, MEM_PREPARE_ONLINE: 64, MEM_FINISH_OFFLINE: 128 },
      nodeActions: null };
    const { profile, notes } = effectiveProfile(stock, layout);
    assert.equal(stock.actions.MEM_PREPARE_ONLINE, 6);
    assert.equal(profile.actions.MEM_PREPARE_ONLINE, 64);
    assert.ok(notes.some((n) => n.includes('MEM_PREPARE_ONLINE')));
    assert.ok(await readFile(new URL('../../qemu/init.sh', import.meta.url), 'utf8'));
  });

  it("takes the payload fields from the kernel's BTF when they differ from the profile's", () => {
    const stock = getProfile('7.3');
    const field = (name: string, offset: number, size: number) => ({ name, offset, size, signed: size === 4, kind: 'int' as const });
    const layout = { memoryNotify: [field('start_pfn', 0, 8), field('nr_pages', 8, 8), field('status_change_nid', 16, 4)], nodeNotify: null, memoryNotifyActionSize: 4,
      zone: { name: 0, node: 0 }, resource: { start: 0, end: 8 }, memoryActions: null, nodeActions: null };
    const { profile, notes } = effectiveProfile(stock, layout);
    assert.deepEqual([...profile.memoryNotifyFields], ['start_pfn', 'nr_pages', 'status_change_nid']);
    assert.ok(notes.some((n) => n.startsWith('struct memory_notify: profile 7.3 has start_pfn,nr_pages, kernel BTF has')));
    // A field memhp does not know keeps the profile's payload (and says so).
    const odd = effectiveProfile(stock, { ...layout, memoryNotify: [field('start_pfn', 0, 8), field('cookie', 8, 8)] });
    assert.deepEqual([...odd.profile.memoryNotifyFields], ['start_pfn', 'nr_pages']);
    assert.equal(odd.notes.length, 1);
  });
});
