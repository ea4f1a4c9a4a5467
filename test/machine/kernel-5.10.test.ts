/**
 * What the 5.10 profile changes in a simulated machine, each as the 5.10.262 guest showed it in the
 * conformance suite (docs/kernel-behaviour.md#profiles): no module parameters in mm/memory_hotplug.c,
 * kstrtobool without t/f, node devices without x86/ and with hugepages/ only while the node has
 * memory, a second hard_offline_page of a page that succeeds, and the nid_high payload field.
 */
import assert from 'node:assert/strict';
import { KernelError } from '../../lib/errors.js';
import { Machine } from '../../lib/kernel/machine.js';

const M = '/sys/devices/system/memory';
const N = '/sys/devices/system/node';
const code = (p: Promise<unknown>): Promise<string> => p.then(() => 'ok', (e: unknown) => (e instanceof KernelError ? e.code : String(e)));

describe('kernel 5.10 in the simulator', () => {
  it('has no /sys/module/memory_hotplug; memory_hotplug.* on the command line is ignored and the same options are refused', async () => {
    const m = await Machine.create({ kernel: '5.10', memory: '512M', cmdline: ['memory_hotplug.online_policy=auto-movable', 'memory_hotplug.memmap_on_memory=1', 'memhp_default_state=online'] });
    assert.equal(m.sysfs.exists('/sys/module/memory_hotplug'), false);
    assert.equal(m.params.onlinePolicy, 'contig-zones');
    assert.equal(m.params.memmapOnMemory, false);
    assert.equal(await m.sysfs.read(`${M}/auto_online_blocks`), 'online\n');
    await m.close();
    await assert.rejects(Machine.create({ kernel: '5.10', memory: '512M', onlinePolicy: 'auto-movable' }), (e: unknown) => e instanceof KernelError && e.code === 'EINVAL');
    await assert.rejects(Machine.create({ kernel: '5.10', memory: '512M', memmapOnMemory: true }), (e: unknown) => e instanceof KernelError && e.code === 'EINVAL');
    const m61 = await Machine.create({ kernel: '6.1', memory: '512M' });
    assert.equal(m61.sysfs.exists('/sys/module/memory_hotplug/parameters/online_policy'), true);
    await m61.close();
  });

  it('online takes 1/y/on but not t/f (kstrtobool of 5.10)', async () => {
    const m = await Machine.create({ kernel: '5.10', memory: '512M', autoOnline: 'offline' });
    await m.plugDimm({ id: 'd1', size: '128M' });
    await m.sysfs.write(`${M}/memory32/state`, 'online_movable');
    assert.equal(await code(m.sysfs.write(`${M}/memory32/online`, 'false')), 'EINVAL');
    assert.equal(await m.sysfs.read(`${M}/memory32/state`), 'online\n');
    assert.equal(await code(m.sysfs.write(`${M}/memory32/online`, 'n')), 'ok');
    assert.equal(await code(m.sysfs.write(`${M}/memory32/online`, 'true')), 'EINVAL');
    assert.equal(await m.sysfs.read(`${M}/memory32/state`), 'offline\n');
    assert.equal(await code(m.sysfs.write(`${M}/memory32/online`, 'on')), 'ok');
    assert.equal(await m.sysfs.read(`${M}/memory32/state`), 'online\n');
    await m.close();
  });

  it('node devices: no x86/, hugepages/ only while the node has memory', async () => {
    const m = await Machine.create({ kernel: '5.10', memory: '512M', nodes: 2, cpus: 2, autoOnline: 'online_movable' });
    assert.equal(m.sysfs.exists(`${N}/node0/x86`), false);
    assert.equal(m.sysfs.exists(`${N}/node0/hugepages/hugepages-2048kB/nr_hugepages`), true);
    assert.equal(m.sysfs.exists(`${N}/node1/hugepages`), false, 'node 1 has a CPU but no memory');
    assert.ok(!(await m.sysfs.list(`${N}/node1`)).includes('hugepages'));
    await m.plugDimm({ id: 'd1', size: '256M', node: 1 });
    assert.equal(m.sysfs.exists(`${N}/node1/hugepages/hugepages-2048kB/nr_hugepages`), true);
    await m.unplugDimm('d1');
    assert.equal(m.sysfs.exists(`${N}/node1/hugepages`), false, 'gone again with the memory');
    await m.close();
    const m61 = await Machine.create({ kernel: '6.1', memory: '512M', nodes: 2, cpus: 2 });
    assert.equal(m61.sysfs.exists(`${N}/node0/x86`), true);
    assert.equal(m61.sysfs.exists(`${N}/node1/hugepages`), true);
    await m61.close();
  });

  it('a second hard_offline_page of the same page succeeds (6.1+: EHWPOISON)', async () => {
    for (const [kernel, again] of [['5.10', 'ok'], ['6.1', 'EHWPOISON']] as const) {
      const m = await Machine.create({ kernel, memory: '512M', autoOnline: 'online_movable' });
      await m.plugDimm({ id: 'd1', size: '128M' });
      await m.sysfs.write(`${M}/hard_offline_page`, '0x100100000');
      assert.equal(await code(m.sysfs.write(`${M}/hard_offline_page`, '0x100100000')), again, kernel);
      await m.close();
    }
  });

  it('notifiers get status_change_nid_high, always NUMA_NO_NODE (x86_64 has no highmem)', async () => {
    const m = await Machine.create({ kernel: '5.10', memory: '512M', nodes: 2, autoOnline: 'online_kernel' });
    const seen: Record<string, number>[] = [];
    m.memoryNotifier.register((_action, arg) => (seen.push({ ...(arg as Record<string, number>) }), 0), 0);
    await m.plugDimm({ id: 'd1', size: '128M', node: 1 });
    assert.deepEqual(seen[0], { start_pfn: 0x100000, nr_pages: 32768, status_change_nid_normal: 1, status_change_nid_high: -1, status_change_nid: 1 });
    await m.close();
  });
});
