/**
 * Machine basics: the pc boot layout as a Debian guest shows it (docs/kernel-behaviour.md#geometry), the block
 * state machine through sysfs (docs/kernel-behaviour.md#writes-to-state-and-online), and the notifier/uevent/QMP sequence of a DIMM
 * plug and unplug per profile (docs/kernel-behaviour.md#notifier-event-sequences, docs/kernel-behaviour.md#acpi-memory-hotplug).
 */
import assert from 'node:assert/strict';
import { KernelError } from '../../lib/errors.js';
import { Machine } from '../../lib/kernel/machine.js';
import type { TraceRecord } from '../../lib/kernel/trace.js';

const M = '/sys/devices/system/memory';

function code(e: unknown): string {
  return e instanceof KernelError ? e.code : `not a KernelError: ${String(e)}`;
}

function seq(records: TraceRecord[]): string[] {
  return records
    .filter((r) => r.type !== 'lockdep')
    .map((r) => (r.type === 'notify' ? `${r.chain}:${String(r.action)}` : r.type === 'uevent' ? `${String(r.action)} ${String(r.devpath).replace('/devices/system/memory/', '')}` : `${String(r.event)}`));
}

describe('Machine: boot layout of QEMU pc', () => {
  it('512M: memory0..3, memory0 none, memory3 ends in the SeaBIOS hole, the zoneinfo of a guest', async () => {
    const m = await Machine.create({ kernel: '6.12', memory: '512M' });
    assert.deepEqual((await m.sysfs.list(M)).filter((n) => n.startsWith('memory')), ['memory0', 'memory1', 'memory2', 'memory3']);
    assert.equal(await m.sysfs.read(`${M}/block_size_bytes`), '8000000\n');
    assert.equal(await m.sysfs.read(`${M}/memory0/valid_zones`), 'none\n');
    assert.equal(await m.sysfs.read(`${M}/memory1/valid_zones`), 'DMA32\n');
    assert.equal(await m.sysfs.read(`${M}/memory3/phys_index`), '00000003\n');
    const zi = await m.sysfs.read('/proc/zoneinfo');
    // Observed on Debian guests (-m 512M): DMA spanned 4095 present 3998 managed 3840, DMA32 spanned = present 126944.
    assert.match(zi, /zone {6}DMA\n {2}pages free {5}\d+\n {8}spanned {2}4095\n {8}present {2}3998\n {8}managed {2}3840\n {2}start_pfn: {11}1\n/);
    assert.match(zi, /zone {4}DMA32\n {2}pages free {5}\d+\n {8}spanned {2}126944\n {8}present {2}126944\n/);
    assert.match(await m.sysfs.read('/proc/iomem'), /^00100000-1ffdffff : System RAM\n1ffe0000-1fffffff : Reserved\n/m);
    await assert.rejects(m.sysfs.write(`${M}/memory0/state`, 'offline'), (e) => code(e) === 'EINVAL');
    await assert.rejects(m.sysfs.write(`${M}/memory3/state`, 'offline'), (e) => code(e) === 'EINVAL' && /memory holes/.test(String(e)));
    assert.deepEqual(m.checkInvariants(), []);
  });

  it('4G: low RAM to 3 GiB and 1 GiB from 4 GiB, memory0..23 and memory32..39; kernel allocations busy memory32 and memory39', async () => {
    const m = await Machine.create({ kernel: '7.2', memory: '4G' });
    const ids = m.sortedBlocks().map((b) => b.id);
    assert.deepEqual(ids, [...Array.from({ length: 24 }, (_, i) => i), ...Array.from({ length: 8 }, (_, i) => 32 + i)]);
    const results: Record<number, string> = {};
    for (const id of ids) {
      results[id] = await m.sysfs.write(`${M}/memory${id}/state`, 'offline').then(() => 'ok', (e) => code(e));
    }
    assert.equal(results[0], 'EINVAL');
    assert.equal(results[23], 'EINVAL');
    assert.equal(results[32], 'EBUSY');
    assert.equal(results[39], 'EBUSY');
    assert.equal(results[33], 'ok');
    assert.equal(results[1], 'ok');
    assert.deepEqual(m.checkInvariants(), []);
  });

  it('a 64 GiB pc guest ends RAM at 65 GiB and gets 1 GiB blocks (docs/kernel-behaviour.md#memory-block-size)', async () => {
    const m = await Machine.create({ memory: '64G', maxMemory: '72G', bootAllocations: false });
    assert.equal(await m.sysfs.read(`${M}/block_size_bytes`), '40000000\n');
  });
});

describe('Machine: the block state machine through sysfs', () => {
  it('state vs online on an online and an offline block (docs/kernel-behaviour.md#writes-to-state-and-online)', async () => {
    const m = await Machine.create({ kernel: '6.12', memory: '4G' });
    await assert.rejects(m.sysfs.write(`${M}/memory33/state`, 'online'), (e) => code(e) === 'EINVAL');
    await m.sysfs.write(`${M}/memory33/online`, '1');
    await m.sysfs.write(`${M}/memory33/online`, 'yes');
    await assert.rejects(m.sysfs.write(`${M}/memory33/online`, '2'), (e) => code(e) === 'EINVAL');
    await assert.rejects(m.sysfs.write(`${M}/memory33/state`, 'Online'), (e) => code(e) === 'EINVAL');
    await assert.rejects(m.sysfs.write(`${M}/memory33/state`, 'foo'), (e) => code(e) === 'EINVAL');
    assert.equal(m.trace.events('uevent').length, 0);
    await m.sysfs.write(`${M}/memory33/state`, 'offline\n');
    assert.equal(await m.sysfs.read(`${M}/memory33/state`), 'offline\n');
    assert.equal(await m.sysfs.read(`${M}/memory33/online`), '0\n');
    assert.equal(await m.sysfs.read(`${M}/memory33/valid_zones`), 'Normal Movable\n');
    await assert.rejects(m.sysfs.write(`${M}/memory33/state`, 'offline'), (e) => code(e) === 'EINVAL');
    await m.sysfs.write(`${M}/memory33/online`, '0');
    await m.sysfs.write(`${M}/memory33/state`, 'online_movable');
    assert.equal(await m.sysfs.read(`${M}/memory33/valid_zones`), 'Movable\n');
    assert.equal(await m.sysfs.read(`${M}/memory33/online`), '1\n');
    assert.deepEqual(seq(m.trace.events()), [
      'memory:MEM_GOING_OFFLINE', 'memory:MEM_OFFLINE', 'memory:MEM_FINISH_OFFLINE', 'offline memory33',
      'memory:MEM_PREPARE_ONLINE', 'memory:MEM_GOING_ONLINE', 'memory:MEM_ONLINE', 'online memory33',
    ]);
    await assert.rejects(m.sysfs.read(`${M}/memory99/state`), (e) => code(e) === 'ENOENT');
    await assert.rejects(m.sysfs.read(`${M}/soft_offline_page`), (e) => code(e) === 'EACCES');
    await assert.rejects(m.sysfs.write(`${M}/block_size_bytes`, '1'), (e) => code(e) === 'EACCES');
    assert.deepEqual(m.checkInvariants(), []);
  });

  it('an offline stuck on a pinned page fails EINTR when its signal fires, and the block stays online', async () => {
    const m = await Machine.create({ kernel: '7.2', memory: '512M', nodes: 2, autoOnline: 'online_movable' });
    await m.plugDimm({ id: 'd1', size: '128M', node: 1 });
    const pfns = m.alloc({ count: 1, kind: 'movable', nid: 1, thisNode: true });
    m.pin(pfns);
    const ac = new AbortController();
    const write = m.sysfs.write(`${M}/memory32/state`, 'offline', { signal: ac.signal });
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(await m.sysfs.read(`${M}/memory32/state`), 'going-offline\n');
    ac.abort();
    await assert.rejects(write, (e) => code(e) === 'EINTR');
    assert.equal(await m.sysfs.read(`${M}/memory32/state`), 'online\n');
    m.unpin(pfns);
    await m.sysfs.write(`${M}/memory32/state`, 'offline');
    assert.deepEqual(m.checkInvariants(), []);
  });
});

describe('Machine: ACPI pc-dimm plug and unplug per profile (docs/kernel-behaviour.md#notifier-event-sequences, docs/kernel-behaviour.md#acpi-memory-hotplug)', () => {
  const expected: Record<string, string[]> = {
    '6.1': ['add memory32', 'memory:MEM_GOING_ONLINE', 'memory:MEM_ONLINE', 'online memory32', 'ACPI_DEVICE_OST',
      'ACPI_DEVICE_OST', 'memory:MEM_GOING_OFFLINE', 'memory:MEM_OFFLINE', 'offline memory32', 'remove memory32', 'DEVICE_DELETED', 'ACPI_DEVICE_OST'],
    '6.12': ['add memory32', 'memory:MEM_PREPARE_ONLINE', 'memory:MEM_GOING_ONLINE', 'memory:MEM_ONLINE', 'online memory32', 'ACPI_DEVICE_OST',
      'ACPI_DEVICE_OST', 'memory:MEM_GOING_OFFLINE', 'memory:MEM_OFFLINE', 'memory:MEM_FINISH_OFFLINE', 'offline memory32', 'remove memory32', 'DEVICE_DELETED', 'ACPI_DEVICE_OST'],
    '7.2': ['add memory32', 'node:NODE_ADDING_FIRST_MEMORY', 'memory:MEM_GOING_ONLINE', 'node:NODE_ADDED_FIRST_MEMORY', 'memory:MEM_ONLINE', 'online memory32', 'ACPI_DEVICE_OST',
      'ACPI_DEVICE_OST', 'node:NODE_REMOVING_LAST_MEMORY', 'memory:MEM_GOING_OFFLINE', 'node:NODE_REMOVED_LAST_MEMORY', 'memory:MEM_OFFLINE', 'offline memory32', 'remove memory32', 'DEVICE_DELETED', 'ACPI_DEVICE_OST'],
  };
  for (const kernel of ['6.1', '6.12', '7.2'] as const) {
    it(`${kernel}: 128M on memoryless node 1 with online_movable, then ejected`, async () => {
      const m = await Machine.create({ kernel, memory: '512M', nodes: 2, cmdline: ['memhp_default_state=online_movable'] });
      const total = await m.sysfs.read('/proc/meminfo');
      await m.plugDimm({ id: 'dimm1', size: '128M', node: 1 });
      assert.equal(await m.sysfs.read('/sys/devices/system/node/has_memory'), '0-1\n');
      assert.equal(await m.sysfs.read('/sys/devices/system/node/has_normal_memory'), '0\n');
      assert.equal(await m.sysfs.read(`${M}/memory32/valid_zones`), 'Movable\n');
      const nodeFiles = ['compact', 'cpu1', 'cpulist', 'cpumap', 'distance', 'hugepages', 'meminfo', 'memory32', 'power', 'subsystem', 'uevent', 'x86'];
      if (kernel !== '6.1') nodeFiles.splice(nodeFiles.indexOf('memory32') + 1, 0, 'memory_failure');
      if (kernel === '7.2') nodeFiles.splice(nodeFiles.indexOf('power') + 1, 0, 'reclaim');
      assert.deepEqual(await m.sysfs.list('/sys/devices/system/node/node1'), nodeFiles);
      assert.equal(await m.sysfs.read(`${M}/memory32/node1/has_memory`).catch((e) => code(e)), 'ENOENT');
      assert.match(await m.sysfs.read('/proc/iomem'), /^100000000-107ffffff : System RAM$/m);
      await m.unplugDimm('dimm1');
      assert.equal(await m.sysfs.read('/proc/meminfo'), total);
      assert.deepEqual(seq(m.trace.events()), expected[kernel]);
      assert.deepEqual(m.checkInvariants(), []);
      assert.deepEqual(m.lockdep.reports, []);
    });
  }

  it('a DIMM not aligned to the block size: _OST success, no blocks, dmesg says why, the eject succeeds (as on guests)', async () => {
    const m = await Machine.create({ kernel: '7.2', memory: '512M', cmdline: ['memhp_default_state=online_movable'] });
    const before = await m.sysfs.list(M);
    await m.plugDimm({ id: 'd1', size: '192M' });
    await m.plugDimm({ id: 'd2', size: '256M' }); // first fit at 4G+192M: the start is unaligned
    assert.deepEqual(await m.sysfs.list(M), before);
    assert.deepEqual(
      m.dmesg.filter((l) => /unaligned|PNP0C80/.test(l)).slice(0, 3),
      ['Block size [0x8000000] unaligned hotplug range: start 0x100000000, size 0xc000000', 'acpi PNP0C80:00: add_memory failed', 'acpi PNP0C80:00: acpi_memory_enable_device() error'],
    );
    assert.ok(m.dmesg.includes('Block size [0x8000000] unaligned hotplug range: start 0x10c000000, size 0x10000000'));
    await m.unplugDimm('d1');
    await m.unplugDimm('d2');
    assert.deepEqual(seq(m.trace.events()), ['ACPI_DEVICE_OST', 'ACPI_DEVICE_OST', 'ACPI_DEVICE_OST', 'DEVICE_DELETED', 'ACPI_DEVICE_OST', 'ACPI_DEVICE_OST', 'DEVICE_DELETED', 'ACPI_DEVICE_OST']);
    assert.ok(m.trace.events().every((r) => r.type !== 'qmp-event' || (r.data as { info?: { status: number } }).info?.status !== 1));
    await m.plugDimm({ id: 'd3', size: '256M' });
    assert.equal(await m.sysfs.read(`${M}/memory33/valid_zones`), 'Movable\n');
    await assert.rejects(m.unplugDimm('nope'), (e) => code(e) === 'ENODEV');
    await assert.rejects(m.plugDimm({ id: 'd3', size: '128M' }), (e) => code(e) === 'EEXIST');
    assert.deepEqual(m.checkInvariants(), []);
  });
});
