/**
 * The /proc and firmware part of snapshots: parsing zoneinfo, meminfo and iomem as the kernel prints
 * them, the guest script's output parsed into the same snapshot as the generic path, the flattened
 * paths, what the simulator shows after a plug, and how the differ compares it: boot-dependent counters
 * as their change from the baseline (guest vs simulator only), everything else exactly.
 */
import assert from 'node:assert/strict';
import { Machine } from '../../lib/kernel/machine.js';
import { KernelError } from '../../lib/errors.js';
import { diffObservations, formatDiff } from '../../lib/scenario/diff.js';
import type { Observation, RamSnapshot, Snapshot, TargetKind, ZoneSnapshot } from '../../lib/scenario/observation.js';
import { flattenSnapshot, guestSnapshotter, parseIomem, parseMemTotal, parseZoneinfo, takeSnapshot } from '../../lib/scenario/snapshot.js';
import { stepText, type Step } from '../../lib/scenario/schema.js';

// A 6.12 guest's /proc/zoneinfo, shortened: the lines a snapshot keeps and some it must skip.
const ZONEINFO = `Node 0, zone      DMA
  per-node stats
      nr_inactive_anon 0
      pgpromote_success 0
  pages free     3584
        boost    0
        min      14
        promo    42
        spanned  4095
        present  3998
        managed  3840
        cma      0
        protection: (0, 396, 396, 396, 396)
  pagesets
    cpu: 0
              count: 0
  node_unreclaimable:  0
  start_pfn:           1
Node 0, zone    DMA32
  pages free     90000
        spanned  126944
        present  126944
        managed  98287
  start_pfn:           4096
Node 0, zone  Movable
  pages free     0
        spanned  0
        present  0
        managed  0
        protection: (0, 0, 0, 0, 0)
Node 1, zone  Movable
  pages free     65000
        spanned  65536
        present  65536
        managed  65536
  start_pfn:           1048576
`;

const IOMEM = `00000000-00000fff : Reserved
00001000-0009fbff : System RAM
000a0000-000bffff : PCI Bus 0000:00
00100000-1ffdffff : System RAM
  09000000-09ffffff : Kernel code
1ffe0000-1fffffff : Reserved
100000000-10fffffff : System RAM
140000000-147ffffff : System RAM (virtio_mem)
fd00000000-ffffffffff : Reserved
`;

describe('snapshots of /proc and the firmware memory map', () => {
  it('parses zoneinfo per node and zone; start_pfn only where the kernel prints it', () => {
    assert.deepEqual(parseZoneinfo(ZONEINFO), {
      node0: {
        DMA: { spanned: '4095', present: '3998', managed: '3840', start_pfn: '1' },
        DMA32: { spanned: '126944', present: '126944', managed: '98287', start_pfn: '4096' },
        Movable: { spanned: '0', present: '0', managed: '0' },
      },
      node1: { Movable: { spanned: '65536', present: '65536', managed: '65536', start_pfn: '1048576' } },
    });
  });

  it('keeps the top-level System RAM lines of iomem and the MemTotal value of meminfo', () => {
    assert.deepEqual(parseIomem(IOMEM), {
      '00001000-0009fbff': 'System RAM',
      '00100000-1ffdffff': 'System RAM',
      '100000000-10fffffff': 'System RAM',
      '140000000-147ffffff': 'System RAM (virtio_mem)',
    });
    assert.equal(parseMemTotal('MemTotal:         670652 kB\nMemFree:          621360 kB\n'), '670652 kB');
    assert.equal(parseMemTotal('MemFree:          621360 kB\n'), '');
  });

  it('the guest script output parses into what the generic path reads, an unreadable file re-read for its errno', async () => {
    // What SNAPSHOT_SCRIPT prints for a one-block machine (zoneinfo filtered by its grep), with meminfo unreadable.
    const grep = ZONEINFO.split('\n').filter((l) => /^Node|^ +(spanned|present|managed) |^ +start_pfn:/.test(l));
    const out = [
      'block_size_bytes\t8000000',
      'auto_online_blocks\tonline_movable',
      ...['online\t1', 'phys_device\t0', 'phys_index\t00000000', 'removable\t1', 'state\tonline', 'valid_zones\tnone'].map((l) => `memory0/${l}`),
      'memory0\t@ node0',
      'has_memory\t0',
      'has_normal_memory\t0',
      'node:node0\t@ memory0',
      'memmap:10\t@',
      '10/start\t0x100000000',
      '10/end\t0x10fffffff',
      '10/type\tSystem RAM',
      'memmap:9\t@',
      '9/start\t0x0',
      '9/end\t!',
      '9/type\tSystem RAM',
      '%zoneinfo',
      ...grep,
      '%meminfo',
      '!',
      '%iomem',
      ...IOMEM.split('\n').filter((l) => l.includes(' : System RAM') && !l.startsWith(' ')),
      '%end',
    ].join('\n');
    const reads: string[] = [];
    const snap = await guestSnapshotter({
      agent: { sh: async () => out },
      sysfs: {
        read: async (p) => {
          reads.push(p);
          throw new KernelError(p.endsWith('meminfo') ? 'EACCES' : 'EIO', `${p}: cannot read`);
        },
        walk: async () => [],
        write: async () => {},
        list: async () => [],
      },
    })('s');
    assert.deepEqual(reads, ['/sys/firmware/memmap/9/end', '/proc/meminfo']);
    assert.deepEqual(snap.ram, {
      zoneinfo: parseZoneinfo(ZONEINFO),
      memTotal: { errno: 'EACCES' },
      iomem: parseIomem(IOMEM),
      memmap: { 9: { start: '0x0', end: { errno: 'EIO' }, type: 'System RAM' }, 10: { start: '0x100000000', end: '0x10fffffff', type: 'System RAM' } },
    });
    assert.deepEqual(Object.keys(snap.ram!.memmap), ['9', '10']);
  });

  it('flattens to paths a kernel engineer looks up', () => {
    const ram: RamSnapshot = {
      zoneinfo: parseZoneinfo(ZONEINFO),
      memTotal: '670652 kB',
      iomem: { '100000000-10fffffff': 'System RAM' },
      memmap: { 7: { start: '0x100000000', end: '0x10fffffff', type: 'System RAM' } },
    };
    const f = flattenSnapshot(snapshot(ram));
    const proc = [...f].filter(([k]) => !k.startsWith('/sys/devices'));
    assert.deepEqual(proc.slice(0, 6), [
      ['/proc/meminfo MemTotal', '670652 kB'],
      ['/proc/zoneinfo node0 DMA spanned', '4095'],
      ['/proc/zoneinfo node0 DMA present', '3998'],
      ['/proc/zoneinfo node0 DMA managed', '3840'],
      ['/proc/zoneinfo node0 DMA start_pfn', '1'],
      ['/proc/zoneinfo node0 DMA32 spanned', '126944'],
    ]);
    assert.equal(f.get('/proc/zoneinfo node1 Movable present'), '65536');
    assert.equal(f.has('/proc/zoneinfo node0 Movable start_pfn'), false, 'an unpopulated zone has no start_pfn');
    assert.deepEqual(proc.slice(-4), [
      ['/proc/iomem 100000000-10fffffff', 'System RAM'],
      ['/sys/firmware/memmap/7/start', '0x100000000'],
      ['/sys/firmware/memmap/7/end', '0x10fffffff'],
      ['/sys/firmware/memmap/7/type', 'System RAM'],
    ]);
    const unreadable = flattenSnapshot(snapshot({ zoneinfo: { errno: 'EACCES' }, memTotal: { errno: 'EACCES' }, iomem: { errno: 'EIO' }, memmap: {} }));
    assert.equal(unreadable.get('/proc/zoneinfo'), '<EACCES>');
    assert.equal(unreadable.get('/proc/iomem'), '<EIO>');
    assert.equal(unreadable.get('/proc/meminfo MemTotal'), '<EACCES>');
    assert.equal([...flattenSnapshot(snapshot(undefined)).keys()].filter((k) => !k.startsWith('/sys/devices')).length, 0, 'an old snapshot has none');
  });

  it('the simulator: a 1 GiB DIMM onlined Movable (docs/kernel-behaviour.md#acpi-plug), and back after the unplug (docs/kernel-behaviour.md#acpi-eject)', async () => {
    const m = await Machine.create({ kernel: '6.12', memory: '512M', nodes: 2, maxMemory: '8G', autoOnline: 'online_movable' });
    try {
      const before = await takeSnapshot(m.sysfs);
      await m.plugDimm({ id: 'd1', size: '1G', node: 1 });
      const after = await takeSnapshot(m.sysfs);
      const kB = (s: Snapshot) => Number(/^(\d+) kB$/.exec(String(s.ram!.memTotal))![1]);
      assert.equal(kB(after) - kB(before), 1048576);
      assert.deepEqual((after.ram!.zoneinfo as Record<string, Record<string, ZoneSnapshot>>).node1!.Movable, { spanned: '262144', present: '262144', managed: '262144', start_pfn: '1048576' });
      assert.deepEqual(Object.entries(after.ram!.iomem).slice(-1), [['100000000-13fffffff', 'System RAM']]);
      assert.deepEqual(Object.values(after.ram!.memmap).at(-1), { start: '0x100000000', end: '0x13fffffff', type: 'System RAM' });
      await m.unplugDimm('d1');
      assert.deepEqual((await takeSnapshot(m.sysfs)).ram, before.ram);
    } finally {
      await m.close();
    }
  });

  describe('the differ', () => {
    const SNAP: Step = { op: 'snapshot', name: 'plugged' };
    /** A DMA32-only boot (DMA32 managed and MemTotal given), then a 1 GiB DIMM in node 1's Movable zone. */
    const ram = (o: { dma32Managed: number; movable?: Partial<ZoneSnapshot>; extraKb?: number; dimm?: boolean }): RamSnapshot => {
      const movable = o.movable ? { spanned: '262144', present: '262144', managed: '262144', start_pfn: '1048576', ...o.movable } : { spanned: '0', present: '0', managed: '0' };
      return {
        zoneinfo: {
          node0: { DMA32: { spanned: '126944', present: '126944', managed: String(o.dma32Managed), start_pfn: '4096' }, Movable: { spanned: '0', present: '0', managed: '0' } },
          node1: { Movable: movable },
        },
        memTotal: `${(o.dma32Managed + Number(movable.managed)) * 4 + (o.extraKb ?? 0)} kB`,
        iomem: { '00100000-1ffdffff': 'System RAM', ...(o.dimm !== false && o.movable ? { '100000000-13fffffff': 'System RAM' } : {}) },
        memmap: {
          3: { start: '0x100000', end: '0x1ffdffff', type: 'System RAM' },
          ...(o.dimm !== false && o.movable ? { 7: { start: '0x100000000', end: '0x13fffffff', type: 'System RAM' } } : {}),
        },
      };
    };
    const obs = (target: TargetKind, boot: RamSnapshot | undefined, plugged: RamSnapshot | undefined): Observation => ({
      scenario: 'hand-built',
      target,
      kernel: { profile: '6.12', release: '6.12.0' },
      ms: 1,
      ...(boot ? { baseline: snapshot(boot, 'baseline') } : {}),
      steps: [{ index: 0, text: stepText(SNAP), step: SNAP, result: { status: 'ok' }, trace: [], snapshot: snapshot(plugged, 'plugged'), ms: 1 }],
    });
    // The guest's memblock keeps more than the simulator's: DMA32 managed and MemTotal differ from boot on.
    const guest = (plugged: Parameters<typeof ram>[0] = { dma32Managed: 98287, movable: {} }) => obs('guest', ram({ dma32Managed: 98287 }), ram(plugged));
    const sim = (plugged: Parameters<typeof ram>[0] = { dma32Managed: 110560, movable: {} }) => obs('sim', ram({ dma32Managed: 110560 }), ram(plugged));

    it('guest vs sim: MemTotal and the managed pages of boot zones compared as their change from the baseline', () => {
      const r = diffObservations(guest(), sim());
      assert.equal(r.ok, true, formatDiff(r));
      assert.deepEqual(r.normalised, { 'boot-reservations': 1 });
      assert.equal(formatDiff(r), 'hand-built on 6.12: guest vs sim: no differences (normalised: boot-reservations ×1)');
    });

    it('a different change is reported as the change; Movable, iomem and memmap exactly', () => {
      // The simulator grew DMA32 by 8 pages (MemTotal follows), counted 512 pages fewer in Movable, and missed the resources.
      const r = diffObservations(guest(), sim({ dma32Managed: 110568, movable: { present: '261632', managed: '261632' }, dimm: false }));
      assert.equal(
        formatDiff(r),
        [
          'hand-built on 6.12: guest vs sim: 6 differences (normalised: boot-reservations ×1)',
          'step 0: snapshot plugged',
          "  /sys/firmware/memmap/7/: only guest has it (0x100000000-0x13fffffff System RAM)",
          "  /proc/meminfo MemTotal: guest '+1048576 kB' vs sim '+1046560 kB'",
          "  /proc/zoneinfo node0 DMA32 managed: guest '+0' vs sim '+8'",
          "  /proc/zoneinfo node1 Movable present: guest '262144' vs sim '261632'",
          "  /proc/zoneinfo node1 Movable managed: guest '262144' vs sim '261632'",
          "  /proc/iomem 100000000-13fffffff: guest 'System RAM' vs sim (absent)",
        ].join('\n'),
      );
      assert.ok(r.differences.every((d) => d.kind === 'snapshot' && d.step === 0));
    });

    it('a real divergence in Movable present alone is one difference', () => {
      const r = diffObservations(guest(), sim({ dma32Managed: 110560, movable: { present: '229376' } }));
      assert.deepEqual(r.differences.map((d) => d.text), ["/proc/zoneinfo node1 Movable present: guest '262144' vs sim '229376'"]);
    });

    it('guest vs guest and sim vs sim: absolute values', () => {
      const r = diffObservations(guest(), obs('guest', ram({ dma32Managed: 98283 }), ram({ dma32Managed: 98283, movable: {} })));
      assert.deepEqual(r.normalised, {});
      assert.deepEqual(
        r.differences.map((d) => d.text),
        ["/proc/meminfo MemTotal: guest 6.12.0 (a) '1441724 kB' vs guest 6.12.0 (b) '1441708 kB'", "/proc/zoneinfo node0 DMA32 managed: guest 6.12.0 (a) '98287' vs guest 6.12.0 (b) '98283'"],
      );
      assert.equal(diffObservations(sim(), sim()).ok, true);
    });

    it('without a baseline the values stay absolute; an observation saved before snapshots had /proc compares on sysfs alone', () => {
      const r = diffObservations(obs('guest', undefined, ram({ dma32Managed: 98287, movable: {} })), sim());
      assert.deepEqual(
        r.differences.map((d) => d.text),
        ["/proc/meminfo MemTotal: guest '1441724 kB' vs sim '+1048576 kB'", "/proc/zoneinfo node0 DMA32 managed: guest '98287' vs sim '+0'"],
      );
      const old = obs('guest', undefined, undefined);
      assert.equal(diffObservations(old, sim()).ok, true);
      assert.equal(diffObservations(old, old).ok, true);
      const viaJson = JSON.parse(JSON.stringify(old)) as Observation;
      assert.equal(viaJson.steps[0]!.snapshot!.ram, undefined);
      assert.equal(diffObservations(viaJson, sim()).ok, true);
    });
  });
});

/** A one-block snapshot around a given /proc and firmware part (none: as saved before snapshots recorded it). */
function snapshot(ram: RamSnapshot | undefined, name?: string): Snapshot {
  return {
    ...(name ? { name } : {}),
    memory: {
      block_size_bytes: '8000000',
      auto_online_blocks: 'online_movable',
      blocks: { memory0: { online: '1', phys_device: '0', phys_index: '00000000', removable: '1', state: 'online', valid_zones: 'none', nodes: ['node0'] } },
    },
    node: { has_memory: '0', has_normal_memory: '0', nodes: { node0: ['memory0'] } },
    ...(ram ? { ram } : {}),
  };
}
