/**
 * The driver-core and ACPI files of a simulated machine (lib/kernel/device-sysfs.ts) as the census of
 * 6.1, 6.12 and 7.2 guests shows them, stores that read their value as a C string, and the census
 * itself (lib/scenario/census.ts) on the simulator and in the differ.
 */
import assert from 'node:assert/strict';
import { KernelError } from '../../lib/errors.js';
import { cpumask } from '../../lib/kernel/device-sysfs.js';
import { Machine } from '../../lib/kernel/machine.js';
import { sysfsStreq } from '../../lib/kernel/profile.js';
import { entryText, resolveLink, takeCensus } from '../../lib/scenario/census.js';
import { diffObservations } from '../../lib/scenario/diff.js';
import type { Observation } from '../../lib/scenario/observation.js';

const M = '/sys/devices/system/memory';
const N = '/sys/devices/system/node';
const SLOT0 = '/sys/devices/LNXSYSTM:00/LNXSYBUS:00/PNP0A06:04/PNP0C80:00';
const code = (p: Promise<unknown>): Promise<string> => p.then(() => 'ok', (e: unknown) => (e instanceof KernelError ? e.code : String(e)));

describe('driver-core and ACPI files', () => {
  it('sysfs_streq compares C strings, one trailing newline allowed on either side', () => {
    assert.ok(sysfsStreq('offline', 'offline') && sysfsStreq('offline\n', 'offline') && sysfsStreq('offline', 'offline\n'));
    assert.ok(sysfsStreq('offline\0garbage', 'offline'), 'the store sees the bytes up to the NUL');
    assert.ok(!sysfsStreq('offline\n\n', 'offline') && !sysfsStreq('\0offline', 'offline') && !sysfsStreq('offlin', 'offline'));
  });

  it('state, online, auto_online_blocks and numbers stop at a NUL, as on 6.1, 6.12 and 7.2 guests', async () => {
    const m = await Machine.create({ kernel: '7.2', memory: '512M', nodes: 2, cmdline: ['memhp_default_state=online_movable'] });
    await m.plugDimm({ id: 'd1', size: '256M', node: 1 });
    await m.sysfs.write(`${M}/memory32/state`, 'offline\0garbage');
    assert.equal(await m.sysfs.read(`${M}/memory32/state`), 'offline\n');
    await m.sysfs.write(`${M}/auto_online_blocks`, 'online_kernel\0x');
    assert.equal(await m.sysfs.read(`${M}/auto_online_blocks`), 'online_kernel\n');
    await m.sysfs.write('/sys/module/memory_hotplug/parameters/auto_movable_ratio', '42\0junk');
    assert.equal(await m.sysfs.read('/sys/module/memory_hotplug/parameters/auto_movable_ratio'), '42\n');
    assert.equal(await code(m.sysfs.write(`${M}/memory32/state`, '\0online')), 'EINVAL', 'an empty C string is no online type');
    await m.close();
  });

  it('power/: runtime PM unsupported, control toggles a usage count, autosuspend EIO both ways', async () => {
    const m = await Machine.create({ kernel: '6.12', memory: '512M' });
    const P = `${M}/memory1/power`;
    assert.deepEqual(await m.sysfs.list(P), ['async', 'autosuspend_delay_ms', 'control', 'runtime_active_kids', 'runtime_active_time', 'runtime_enabled', 'runtime_status', 'runtime_suspended_time', 'runtime_usage']);
    assert.equal(await m.sysfs.read(`${P}/runtime_status`), 'unsupported\n');
    assert.equal(await code(m.sysfs.read(`${P}/autosuspend_delay_ms`)), 'EIO');
    assert.equal(await code(m.sysfs.write(`${P}/autosuspend_delay_ms`, '100')), 'EIO');
    await m.sysfs.write(`${P}/control`, 'on\n');
    assert.deepEqual([await m.sysfs.read(`${P}/control`), await m.sysfs.read(`${P}/runtime_usage`), await m.sysfs.read(`${P}/runtime_enabled`)], ['on\n', '1\n', 'disabled & forbidden\n']);
    assert.equal(await code(m.sysfs.write(`${P}/control`, 'off')), 'EINVAL');
    await m.sysfs.write(`${P}/control`, 'auto');
    assert.equal(await m.sysfs.read(`${P}/runtime_usage`), '0\n');
    assert.equal(await m.sysfs.read(`${N}/power/control`), 'auto\n', 'every device has its own');
    await m.close();
  });

  it('node devices: cpus, distances, hugepages from the node, memory_failure from 6.12, reclaim on 7.2', async () => {
    for (const kernel of ['6.1', '6.12', '7.2'] as const) {
      const m = await Machine.create({ kernel, memory: '512M', nodes: 2, cpus: 3, cmdline: ['memhp_default_state=online_movable'] });
      assert.deepEqual([await m.sysfs.read(`${N}/node0/cpulist`), await m.sysfs.read(`${N}/node0/cpumap`), await m.sysfs.read(`${N}/node1/cpulist`)], ['0,2\n', '5\n', '1\n']);
      assert.equal(await m.sysfs.read(`${N}/node1/distance`), '20 10\n');
      assert.equal(m.sysfs.lookup(`${N}/node0/cpu2`, true).node.kind, 'link');
      assert.equal(m.sysfs.exists(`${N}/node1/memory_failure/total`), kernel !== '6.1');
      assert.equal(m.sysfs.exists(`${N}/node1/reclaim`), kernel === '7.2');
      await m.plugDimm({ id: 'd1', size: '256M', node: 1 });
      const H = `${N}/node1/hugepages/hugepages-2048kB`;
      await m.sysfs.write(`${H}/nr_hugepages`, '4');
      assert.deepEqual([await m.sysfs.read(`${H}/nr_hugepages`), await m.sysfs.read(`${H}/free_hugepages`)], ['4\n', '4\n']);
      assert.equal(await code(m.sysfs.write(`${M}/memory32/state`, 'offline')), 'ok', 'free huge pages migrate away');
      await m.sysfs.write(`${H}/nr_hugepages`, '0');
      assert.equal(await code(m.sysfs.write(`${H}/nr_hugepages`, '0x10')), 'EINVAL', 'base 10');
      assert.deepEqual(m.checkInvariants(), []);
      await m.close();
    }
    assert.equal(cpumask([0, 33], 40), '02,00000001\n', 'the leading 32-bit group as wide as its bits need');
  });

  it("the kernel takes the first page of a node's first Normal block at once: hard offline EBUSY there, EBUSY offline", async () => {
    const m = await Machine.create({ kernel: '6.12', memory: '512M', cmdline: ['memhp_default_state=online_kernel'] });
    await m.plugDimm({ id: 'd1', size: '256M' });
    assert.deepEqual([m.physmem.pageState(0x100000).state, m.physmem.pageState(0x100001).state, m.physmem.pageState(0x108000).state], ['unmovable', 'free', 'free']);
    assert.equal(await code(m.sysfs.write(`${M}/hard_offline_page`, '0x100000000')), 'EBUSY');
    assert.equal(await code(m.sysfs.write(`${M}/memory32/state`, 'offline')), 'EBUSY');
    assert.equal(await code(m.sysfs.write(`${M}/memory33/state`, 'offline')), 'ok', 'the second Normal block is not taken');
    await m.close();
    // A node without a vCPU: its first memory, if Normal, feeds its new kswapd and kcompactd threads;
    // Normal memory it gets after some Movable memory has no taker.
    const cpuless = await Machine.create({ kernel: '7.2', memory: '512M', nodes: 3, cpus: 2, cmdline: ['memhp_default_state=online_kernel'] });
    await cpuless.plugDimm({ id: 'd1', size: '128M', node: 2 });
    assert.equal(await code(cpuless.sysfs.write(`${M}/memory32/state`, 'offline')), 'EBUSY', "node 2's first memory");
    await cpuless.sysfs.write(`${M}/auto_online_blocks`, 'online_movable');
    await cpuless.plugDimm({ id: 'd2', size: '128M', node: 1 });
    await cpuless.plugDimm({ id: 'd3', size: '128M', node: 1 });
    await cpuless.sysfs.write(`${M}/memory34/state`, 'offline');
    await cpuless.sysfs.write(`${M}/memory34/state`, 'online_kernel');
    assert.equal(await code(cpuless.sysfs.write(`${M}/memory34/state`, 'offline')), 'EBUSY', "node 1's first Normal block, with node 1's vCPU");
    await cpuless.close();
    const memOnly = await Machine.create({ kernel: '7.2', memory: '512M', nodes: 2, cpus: 1, cmdline: ['memhp_default_state=online_movable'] });
    await memOnly.plugDimm({ id: 'd1', size: '256M', node: 1 });
    await memOnly.sysfs.write(`${M}/memory33/state`, 'offline');
    await memOnly.sysfs.write(`${M}/memory33/state`, 'online_kernel');
    assert.equal(await code(memOnly.sysfs.write(`${M}/memory33/state`, 'offline')), 'ok', 'a memory-only node with memory already: no taker');
    await memOnly.close();
  });

  it('hard_offline_page counts per node in memory_failure/ (recovered; a page already poisoned is not counted)', async () => {
    const m = await Machine.create({ kernel: '7.2', memory: '512M', nodes: 2, cmdline: ['memhp_default_state=online_movable'] });
    await m.plugDimm({ id: 'd1', size: '128M', node: 1 });
    const addr = '0x100001000';
    await m.sysfs.write(`${M}/hard_offline_page`, addr);
    assert.equal(await code(m.sysfs.write(`${M}/hard_offline_page`, addr)), 'EHWPOISON');
    const F = `${N}/node1/memory_failure`;
    assert.deepEqual(await Promise.all(['total', 'recovered', 'failed', 'ignored', 'delayed'].map((f) => m.sysfs.read(`${F}/${f}`))), ['1\n', '1\n', '0\n', '0\n', '0\n']);
    assert.equal(await m.sysfs.read(`${N}/node0/memory_failure/total`), '0\n');
    await m.close();
  });

  it("a DIMM slot's ACPI device: status, physical_node links in bind order, and eject as a guest does it", async () => {
    const m = await Machine.create({ kernel: '7.2', memory: '512M', nodes: 2, cmdline: ['memhp_default_state=online_movable'] });
    assert.equal(await m.sysfs.read(`${SLOT0}/status`), '0\n');
    await m.plugDimm({ id: 'd1', size: '256M', node: 1 });
    assert.deepEqual(
      await Promise.all(['hid', 'modalias', 'path', 'status', 'uid', 'uevent'].map((f) => m.sysfs.read(`${SLOT0}/${f}`))),
      ['PNP0C80\n', 'acpi:PNP0C80:\n', '\\_SB_.MHPC.MP00\n', '15\n', '0x00\n', 'MODALIAS=acpi:PNP0C80:\n'],
    );
    assert.equal(m.sysfs.lookup(`${SLOT0}/physical_node1`).path, `${M}/memory33`);
    assert.equal(m.sysfs.lookup(`${M}/memory32/firmware_node`).path, SLOT0);
    assert.equal(await code(m.sysfs.write(`${SLOT0}/eject`, '0')), 'EINVAL');
    assert.equal(await code(m.sysfs.write(SLOT0.replace(/:00$/, ':01') + '/eject', '1')), 'ENODEV', 'an empty slot');
    const mark = m.trace.length;
    await m.sysfs.write(`${SLOT0}/eject`, '1'); // returns before the eject is done, as acpi_eject_store does
    await m.close(); // waits for the background eject
    const qmp = m.trace.events().slice(mark).filter((r) => r.type === 'qmp-event');
    assert.deepEqual(
      qmp.map((r) => JSON.stringify(r.data)),
      [
        '{"info":{"device":"d1","slot":"0","slot-type":"DIMM","source":3,"status":132}}',
        '{"device":"d1","path":"/machine/peripheral/d1"}',
        '{"info":{"slot":"0","slot-type":"DIMM","source":259,"status":0}}',
      ],
      'as a 7.2 guest reports an OS-initiated eject',
    );
    assert.equal(m.dimms.size, 0);
  });

  it("a DIMM slot's ACPI device has power/ up to 7.2 and none on 7.3 (acpiDevicePowerDir, as the 7.3.4 guest shows)", async () => {
    for (const kernel of ['6.1', '6.12', '7.2', '7.3'] as const) {
      const m = await Machine.create({ kernel, memory: '512M' });
      assert.equal(m.sysfs.exists(`${SLOT0}/power`), kernel !== '7.3', kernel);
      assert.equal(m.sysfs.exists(`${SLOT0}/status`), true, kernel);
      await m.close();
    }
  });

  it('/sys/firmware/acpi/hotplug and the memory bus files', async () => {
    const m = await Machine.create({ kernel: '6.1', memory: '512M' });
    assert.equal(await m.sysfs.read('/sys/firmware/acpi/hotplug/memory/enabled'), '1\n');
    assert.equal(await code(m.sysfs.write('/sys/firmware/acpi/hotplug/force_remove', '1')), 'EINVAL');
    await m.sysfs.write('/sys/firmware/acpi/hotplug/force_remove', '0');
    assert.equal(await code(m.sysfs.write('/sys/firmware/acpi/hotplug/memory/enabled', 'x')), 'EINVAL');
    for (const v of ['979', '10', '0x1', 'n', 'on', 'Yes']) assert.equal(await code(m.sysfs.write('/sys/firmware/acpi/hotplug/memory/enabled', v)), 'EINVAL', v);
    await m.sysfs.write('/sys/firmware/acpi/hotplug/memory/enabled', '0\n');
    assert.equal(await m.sysfs.read('/sys/firmware/acpi/hotplug/memory/enabled'), '0\n');
    await m.sysfs.write('/sys/firmware/acpi/hotplug/memory/enabled', '01');
    assert.equal(await m.sysfs.read('/sys/firmware/acpi/hotplug/memory/enabled'), '1\n');
    assert.deepEqual(await m.sysfs.list('/sys/bus/memory'), ['devices', 'drivers', 'drivers_autoprobe', 'drivers_probe', 'uevent']);
    assert.equal(await code(m.sysfs.write('/sys/bus/memory/drivers_probe', 'memory1')), 'ok');
    assert.equal(await code(m.sysfs.write('/sys/bus/memory/drivers_probe', 'memory99')), 'ENODEV');
    await m.sysfs.write('/sys/bus/memory/drivers_autoprobe', '0');
    assert.equal(await m.sysfs.read('/sys/bus/memory/drivers_autoprobe'), '0\n');
    await m.close();
  });
});

describe('census', () => {
  it('lines: types, octal modes, values, errnos, absolute link targets', () => {
    assert.equal(resolveLink('/sys/devices/system/memory/memory32/node1', '../../node/node1'), '/sys/devices/system/node/node1');
    assert.equal(entryText({ path: '/a', type: 'file', mode: 0o644, value: 'online\n' }), 'file 644 "online\\n"');
    assert.equal(entryText({ path: '/a', type: 'file', mode: 0o200, errno: 'EACCES' }), 'file 200 <EACCES>');
    assert.equal(entryText({ path: '/a/b', type: 'link', mode: 0o777, target: '../c' }), 'link /c');
    assert.equal(entryText({ path: '/x', type: 'missing', mode: 0, errno: 'ENOENT' }), 'missing <ENOENT>');
  });

  it('walks the hotplug trees, the ACPI devices the blocks link to, and the /proc lines of a machine', async () => {
    const m = await Machine.create({ kernel: '6.12', memory: '512M', nodes: 2, cmdline: ['memhp_default_state=online_movable'] });
    await m.plugDimm({ id: 'd1', size: '256M', node: 1 });
    const c = await takeCensus(m.sysfs);
    assert.equal(c[`${M}/memory33/valid_zones`], 'file 444 "Movable\\n"');
    assert.equal(c[`${M}/hard_offline_page`], 'file 200 <EACCES>');
    assert.equal(c[`${SLOT0}/physical_node`], `link ${M}/memory32`);
    assert.equal(c['/sys/kernel/debug/notifier-error-inject'], 'missing <ENOENT>');
    assert.equal(c['/proc/zoneinfo node1 Movable present'], '65536');
    assert.ok(!Object.keys(c).some((k) => k.includes('PNP0C80:01')), 'only the slots memory links to');
    await m.close();
  });

  it('the differ: one line for a directory on one side, normalised live counters, census exceptions', () => {
    const obs = (census: Record<string, string>, target: 'guest' | 'sim'): Observation => ({
      scenario: 's',
      target,
      kernel: { profile: '7.2', release: '7.2' },
      ms: 0,
      steps: [{ index: 0, text: 'census', step: { op: 'census' }, result: { status: 'ok' }, trace: [], census, ms: 0 }],
    });
    const guest = {
      [`${N}/node0`]: 'dir 755',
      [`${N}/node0/vmstat`]: 'file 444 "nr_free_pages 5\\n"',
      [`${N}/node0/x86`]: 'dir 755',
      [`${N}/node0/x86/a`]: 'file 444 "1\\n"',
      [`${N}/node0/x86/b`]: 'file 444 "2\\n"',
      [`${M}/memory0/state`]: 'file 644 "online\\n"',
    };
    const sim = { [`${N}/node0`]: 'dir 755', [`${N}/node0/vmstat`]: 'file 444 "nr_free_pages 7\\n"', [`${M}/memory0/state`]: 'file 644 "offline\\n"' };
    const r = diffObservations(obs(guest, 'guest'), obs(sim, 'sim'));
    assert.deepEqual(
      r.differences.map((d) => `${d.kind} ${d.text}`),
      [`census ${N}/node0/x86/: only guest has this directory (2 entries below)`, `census ${M}/memory0/state: guest file 644 "online\\n" vs sim file 644 "offline\\n"`],
    );
    assert.equal(r.normalised['live-counters'], 1);
  });
});
