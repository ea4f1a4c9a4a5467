/**
 * The sysfs ABI of the simulated machine, file by file (docs/kernel-behaviour.md#memory-block-devices to docs/kernel-behaviour.md#zone-selection), with the kernel's
 * text and write errno per profile, plus the node, bus, firmware-memmap and /proc files a hotplug
 * changes (docs/kernel-behaviour.md#adding-memory, docs/kernel-behaviour.md#removing-memory). Values marked "guest" were read on booted Debian 6.1.0-56,
 * 6.12.117 and 7.2.13 guests (512M, 2 nodes) with the harness of lib/guest.
 */
import assert from 'node:assert/strict';
import { KernelError } from '../../lib/errors.js';
import { Machine, type MachineOptions } from '../../lib/kernel/machine.js';
import { NOTIFY_BAD, NOTIFY_OK, notifierFromErrno } from '../../lib/kernel/notifier.js';
import type { SysFile } from '../../lib/kernel/sysfs.js';
import type { TraceRecord } from '../../lib/kernel/trace.js';

const M = '/sys/devices/system/memory';
const N = '/sys/devices/system/node';
const P = '/sys/module/memory_hotplug/parameters';
const KERNELS = ['6.1', '6.12', '7.2'] as const;

/** 'ok' or the errno name of a write, so a table of writes reads as one assertion. */
async function result(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'ok',
    (e: unknown) => (e instanceof KernelError ? e.code : `not a KernelError: ${String(e)}`),
  );
}

/** Write each value to `path`; the outcome per value. */
async function writes(m: Machine, path: string, values: readonly string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const v of values) out[v] = await result(m.sysfs.write(path, v));
  return out;
}

/** The permission bits of a file. */
function mode(m: Machine, path: string): number {
  const { node } = m.sysfs.lookup(path);
  assert.equal(node.kind, 'file', path);
  return (node as SysFile).mode;
}

/** A symlink's target as readlink(2) shows it. */
function readlink(m: Machine, path: string): string {
  const { node } = m.sysfs.lookup(path, true);
  assert.equal(node.kind, 'link', path);
  return node.kind === 'link' ? node.target : '';
}

/** `action memoryN` for every uevent record (from `from` on). */
function uevents(m: Machine, from = 0): string[] {
  return m.trace
    .events()
    .slice(from)
    .filter((r: TraceRecord) => r.type === 'uevent')
    .map((r) => `${String(r.action)} ${String(r.devpath).replace('/devices/system/memory/', '')}`);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** MemTotal of /proc/meminfo in kB. */
async function memTotal(m: Machine): Promise<number> {
  const t = /^MemTotal: +(\d+) kB$/m.exec(await m.sysfs.read('/proc/meminfo'));
  assert.ok(t, 'MemTotal line');
  return Number(t[1]);
}

/** One zone of /proc/zoneinfo: its counters and start_pfn (absent for an empty zone). */
async function zone(m: Machine, nid: number, name: string): Promise<{ free: number; spanned: number; present: number; managed: number; start?: number }> {
  const text = await m.sysfs.read('/proc/zoneinfo');
  const head = `Node ${nid}, zone ${name.padStart(8)}\n`;
  const at = text.indexOf(head);
  assert.ok(at >= 0, `no ${head.trim()} in zoneinfo`);
  const body = text.slice(at + head.length).split(/^Node /m)[0]!;
  const num = (re: RegExp) => Number(re.exec(body)?.[1] ?? NaN);
  const start = /^ {2}start_pfn: +(\d+)$/m.exec(body);
  return {
    free: num(/^ {2}pages free +(\d+)$/m),
    spanned: num(/^ {8}spanned +(\d+)$/m),
    present: num(/^ {8}present +(\d+)$/m),
    managed: num(/^ {8}managed +(\d+)$/m),
    ...(start ? { start: Number(start[1]) } : {}),
  };
}

async function machine(o: MachineOptions): Promise<Machine> {
  return Machine.create({ memory: '4G', nodes: 2, ...o });
}

describe('sysfs ABI: /sys/devices/system/memory (docs/kernel-behaviour.md#memory-block-devices)', () => {
  for (const kernel of KERNELS) {
    it(`${kernel}: the root files, their modes and texts; crash_hotplug only from 6.12`, async () => {
      const m = await machine({ kernel });
      const files = (await m.sysfs.list(M)).filter((n) => !/^memory\d+$/.test(n));
      // guest: `ls -l /sys/devices/system/memory` on 6.1 and 7.2 (probe is off in Debian's configs).
      const expected = ['auto_online_blocks', 'block_size_bytes', ...(kernel === '6.1' ? [] : ['crash_hotplug']), 'hard_offline_page', 'power', 'soft_offline_page', 'uevent'];
      assert.deepEqual(files, expected);
      assert.equal(await m.sysfs.read(`${M}/block_size_bytes`), '8000000\n');
      assert.equal(await m.sysfs.read(`${M}/auto_online_blocks`), kernel === '6.1' ? 'offline\n' : 'online\n');
      assert.equal(await result(m.sysfs.read(`${M}/crash_hotplug`)), kernel === '6.1' ? 'ENOENT' : 'ok');
      if (kernel !== '6.1') assert.equal(await m.sysfs.read(`${M}/crash_hotplug`), '0\n');
      assert.equal(mode(m, `${M}/block_size_bytes`), 0o444);
      assert.equal(mode(m, `${M}/auto_online_blocks`), 0o644);
      assert.equal(mode(m, `${M}/soft_offline_page`), 0o200);
      assert.equal(mode(m, `${M}/hard_offline_page`), 0o200);
      assert.equal(mode(m, `${M}/uevent`), 0o644);
      // kernfs_fop_open refuses a write to a file without a write bit, even for root.
      assert.equal(await result(m.sysfs.write(`${M}/block_size_bytes`, '10000000')), 'EACCES');
      if (kernel !== '6.1') assert.equal(await result(m.sysfs.write(`${M}/crash_hotplug`, '1')), 'EACCES');
      assert.equal(await result(m.sysfs.read(`${M}/hard_offline_page`)), 'EACCES');
      assert.equal(await result(m.sysfs.read(`${M}/soft_offline_page`)), 'EACCES');
      // The root device has no bus: uevent reads empty; a valid action is accepted and filtered out.
      assert.equal(await m.sysfs.read(`${M}/uevent`), '');
      assert.deepEqual(await writes(m, `${M}/uevent`, ['change', 'add\n', 'foo', 'ad']), { change: 'ok', 'add\n': 'ok', foo: 'EINVAL', ad: 'EINVAL' });
      assert.deepEqual(uevents(m), []);
    });
  }

  it('auto_online_blocks: the four mhp_online_type strings (sysfs_streq), EINVAL otherwise with the value kept', async () => {
    const m = await machine({ kernel: '6.12' });
    const p = `${M}/auto_online_blocks`;
    for (const v of ['offline', 'online_kernel', 'online_movable', 'online']) {
      await m.sysfs.write(p, v);
      assert.equal(await m.sysfs.read(p), `${v}\n`);
      await m.sysfs.write(p, `${v}\n`);
      assert.equal(await m.sysfs.read(p), `${v}\n`);
    }
    const bad = ['Online', 'ONLINE', ' online', 'online ', 'online\n\n', '\0online', 'movable', 'foo', '1'];
    assert.deepEqual(await writes(m, p, bad), Object.fromEntries(bad.map((v) => [v, 'EINVAL'])));
    assert.equal(await m.sysfs.read(p), 'online\n');
    // The store reads a C string: what follows a NUL is not seen (guests accept 'offline\0garbage' in state too).
    await m.sysfs.write(p, 'online_movable\0garbage');
    assert.equal(await m.sysfs.read(p), 'online_movable\n');
  });

  it('memhp_default_state= sets auto_online_blocks at boot; a value the kernel would ignore is refused, as a scenario refuses it', async () => {
    assert.equal(await (await machine({ kernel: '6.1', cmdline: ['memhp_default_state=online_movable'] })).sysfs.read(`${M}/auto_online_blocks`), 'online_movable\n');
    assert.equal(await (await machine({ kernel: '6.12', cmdline: ['memhp_default_state=offline'] })).sysfs.read(`${M}/auto_online_blocks`), 'offline\n');
    for (const v of ['bogus', 'Online'])
      await assert.rejects(machine({ kernel: '6.1', cmdline: [`memhp_default_state=${v}`] }), (e) => e instanceof KernelError && e.code === 'EINVAL' && /^cmdline\.memhp_default_state: expected an online type \(offline, online, online_kernel, online_movable\)$/.test((e as Error).message));
  });

  it('auto_online_blocks affects only memory added later (docs/kernel-behaviour.md#default-online-type-and-auto-online): blocks already there keep their state', async () => {
    const m = await machine({ kernel: '6.12' });
    const states = async (ids: number[]) => Promise.all(ids.map(async (id) => `${(await m.sysfs.read(`${M}/memory${id}/state`)).trim()} ${(await m.sysfs.read(`${M}/memory${id}/valid_zones`)).trim()}`));
    await m.plugDimm({ id: 'd1', size: '256M' }); // memory40..41, default 'online' under contig-zones
    assert.deepEqual(await states([40, 41]), ['online Normal', 'online Normal']);
    await m.sysfs.write(`${M}/auto_online_blocks`, 'offline');
    assert.deepEqual(await states([40, 41]), ['online Normal', 'online Normal']);
    await m.plugDimm({ id: 'd2', size: '256M' }); // memory42..43
    // Normal now spans memory32..41, so 42 is outside every span: the kernel zone comes first.
    assert.deepEqual(await states([42, 43]), ['offline Normal Movable', 'offline Normal Movable']);
    await m.sysfs.write(`${M}/auto_online_blocks`, 'online_movable');
    assert.deepEqual(await states([42, 43]), ['offline Normal Movable', 'offline Normal Movable']);
    await m.addMemory(1, 0x200000000n, 1n << 28n); // add_memory honours it as the ACPI path does
    assert.deepEqual(await states([64, 65]), ['online Movable', 'online Movable']);
    await m.sysfs.write(`${M}/auto_online_blocks`, 'online_kernel');
    await m.plugDimm({ id: 'd3', size: '128M', node: 1 });
    assert.deepEqual(await states([44]), ['online Normal']);
    assert.deepEqual(m.checkInvariants(), []);
  });
});

describe('sysfs ABI: memoryN (docs/kernel-behaviour.md#memory-block-devices)', () => {
  it('the per-block files, modes and links; phys_index in %08x; removable and phys_device constant', async () => {
    const m = await machine({ kernel: '6.12', autoOnline: 'offline' });
    // guest: `ls -l memory1` on 6.1 and 7.2.
    assert.deepEqual(await m.sysfs.list(`${M}/memory33`), ['node0', 'online', 'phys_device', 'phys_index', 'power', 'removable', 'state', 'subsystem', 'uevent', 'valid_zones']);
    for (const [f, bits] of [['state', 0o644], ['online', 0o644], ['uevent', 0o644], ['phys_index', 0o444], ['phys_device', 0o444], ['removable', 0o444], ['valid_zones', 0o444]] as const) {
      assert.equal(mode(m, `${M}/memory33/${f}`), bits, f);
    }
    assert.equal(await m.sysfs.read(`${M}/memory0/phys_index`), '00000000\n');
    assert.equal(await m.sysfs.read(`${M}/memory39/phys_index`), '00000027\n');
    for (const f of ['phys_index', 'phys_device', 'removable', 'valid_zones']) assert.equal(await result(m.sysfs.write(`${M}/memory33/${f}`, '1')), 'EACCES', f);
    assert.equal(readlink(m, `${M}/memory33/node0`), '../../node/node0');
    assert.equal(readlink(m, `${M}/memory33/subsystem`), '../../../../bus/memory');
    assert.equal(m.sysfs.lookup(`${M}/memory33/subsystem`).path, '/sys/bus/memory');
    assert.equal(m.sysfs.lookup(`${M}/memory33/node0`).path, `${N}/node0`);
    assert.equal(await m.sysfs.read(`${M}/memory33/uevent`), '');
    await m.plugDimm({ id: 'd1', size: '1G' });
    for (const id of [...range(0, 23), ...range(32, 47)]) {
      assert.equal(await m.sysfs.read(`${M}/memory${id}/removable`), '1\n'); // offline DIMM blocks too (docs/kernel-behaviour.md#memory-block-devices)
      assert.equal(await m.sysfs.read(`${M}/memory${id}/phys_device`), '0\n');
    }
    assert.equal(await m.sysfs.read(`${M}/memory47/phys_index`), '0000002f\n');
    assert.deepEqual(await m.sysfs.list(`${M}/memory40`), ['firmware_node', 'node0', 'online', 'phys_device', 'phys_index', 'power', 'removable', 'state', 'subsystem', 'uevent', 'valid_zones']);
    // guest (7.2): memory32 of the first DIMM links to the first slot's PNP0C80 device.
    assert.equal(readlink(m, `${M}/memory40/firmware_node`), '../../../LNXSYSTM:00/LNXSYBUS:00/PNP0A06:04/PNP0C80:00');
    assert.ok(!(await m.sysfs.list(`${M}/memory33`)).includes('firmware_node'), 'boot blocks have no ACPI companion');
    assert.equal(await result(m.sysfs.read(`${M}/memory48/state`)), 'ENOENT');
    assert.equal(await result(m.sysfs.read(`${M}/memory24/state`)), 'ENOENT'); // the PCI hole has no blocks
  });

  it('a synthetic uevent (udevadm trigger) is parsed as kobject_synth_uevent does and reaches the trace', async () => {
    const m = await machine({ kernel: '7.2' });
    const uuid = '12345678-1234-1234-1234-123456789abc';
    // guest: the same table on 6.1, 6.12 and 7.2.
    const table = await writes(m, `${M}/memory33/uevent`, ['foo', 'add', 'online\n', 'add ', `add ${uuid}`, `add ${uuid} A=B`, `add ${uuid} A_1=B`, `change ${uuid}A=B`, 'ad', '']);
    assert.deepEqual(table, { foo: 'EINVAL', add: 'ok', 'online\n': 'ok', 'add ': 'EINVAL', [`add ${uuid}`]: 'ok', [`add ${uuid} A=B`]: 'ok', [`add ${uuid} A_1=B`]: 'EINVAL', [`change ${uuid}A=B`]: 'EINVAL', ad: 'EINVAL', '': 'ok' });
    assert.deepEqual(uevents(m), ['add memory33', 'online memory33', 'add memory33', 'add memory33']);
    assert.equal(await m.sysfs.read(`${M}/memory33/state`), 'online\n', 'a synthetic event changes nothing');
  });
});

describe('sysfs ABI: state and online writes (docs/kernel-behaviour.md#writes-to-state-and-online)', () => {
  for (const kernel of KERNELS) {
    it(`${kernel}: state EINVAL for "already", online succeeds silently; bad strings; kstrtobool forms`, async () => {
      const m = await machine({ kernel });
      const b = `${M}/memory33`;
      const before = m.trace.length;
      // Online block: every online type to `state` is "already online" → EINVAL; `online` ← true succeeds.
      assert.deepEqual(await writes(m, `${b}/state`, ['online', 'online_kernel', 'online_movable']), { online: 'EINVAL', online_kernel: 'EINVAL', online_movable: 'EINVAL' });
      assert.deepEqual(await writes(m, `${b}/online`, ['1', 'y', 'Y', 't', 'T', 'yes', 'on', 'ON', 'oN\n', '1\n']), Object.fromEntries(['1', 'y', 'Y', 't', 'T', 'yes', 'on', 'ON', 'oN\n', '1\n'].map((v) => [v, 'ok'])));
      assert.equal(m.trace.length, before, 'no notifier call and no uevent for an "already online" write');
      const bad = ['foo', 'Online', 'ONLINE', ' online', 'online ', 'online\n\n', 'Offline', 'online-movable', '1'];
      assert.deepEqual(await writes(m, `${b}/state`, bad), Object.fromEntries(bad.map((v) => [v, 'EINVAL'])));
      const badBool = ['2', 'x', 'o', 'O', 'enable', 'disable', '-1', ' 1'];
      // 'e'/'d' (enable/disable) are EINVAL on 6.1 and 6.12; 7.2 accepts them (see the report).
      const tested = kernel === '7.2' ? badBool.filter((v) => !/^[eEdD]/.test(v)) : badBool;
      assert.deepEqual(await writes(m, `${b}/online`, tested), Object.fromEntries(tested.map((v) => [v, 'EINVAL'])));
      // guest (7.2.13): 'enable' is true there, so `online` ← enable is "already online" and succeeds.
      if (kernel === '7.2') assert.deepEqual(await writes(m, `${b}/online`, ['enable', 'E']), { enable: 'ok', E: 'ok' });
      assert.equal(await m.sysfs.read(`${b}/state`), 'online\n');
      assert.equal(m.trace.length, before);

      // kstrtobool reads two letters at most: 'oF' is off.
      await m.sysfs.write(`${b}/online`, 'oF');
      assert.equal(await m.sysfs.read(`${b}/state`), 'offline\n');
      assert.equal(await m.sysfs.read(`${b}/online`), '0\n');
      assert.deepEqual(uevents(m), ['offline memory33']);
      const mark = m.trace.length;
      assert.deepEqual(await writes(m, `${b}/state`, ['offline', 'offline\n']), { offline: 'EINVAL', 'offline\n': 'EINVAL' });
      assert.deepEqual(await writes(m, `${b}/online`, ['0', 'n', 'N', 'f', 'F', 'no', 'off', 'OFF']), Object.fromEntries(['0', 'n', 'N', 'f', 'F', 'no', 'off', 'OFF'].map((v) => [v, 'ok'])));
      assert.equal(m.trace.length, mark);
      // guest (6.12): the refused state writes above stored online_type = online_movable, and
      // device_online returned 1 before memory_subsys_online could reset it; so this `online` ← 1
      // onlines Movable, not in valid_zones' first zone.
      assert.equal(await m.sysfs.read(`${b}/valid_zones`), 'Normal Movable\n');
      await m.sysfs.write(`${b}/online`, 'Yes');
      assert.equal(await m.sysfs.read(`${b}/valid_zones`), 'Movable\n');
      // That online attempt reset it: the next `online` ← 1 takes the policy's zone (MMOP_ONLINE).
      await m.sysfs.write(`${b}/state`, 'offline\n');
      assert.equal(await m.sysfs.read(`${b}/valid_zones`), 'Normal Movable\n');
      await m.sysfs.write(`${b}/online`, '1');
      assert.equal(await m.sysfs.read(`${b}/valid_zones`), 'Normal\n');
      await m.sysfs.write(`${b}/state`, 'offline');
      await m.sysfs.write(`${b}/state`, 'online_movable\n');
      assert.equal(await m.sysfs.read(`${b}/state`), 'online\n');
      assert.equal(await m.sysfs.read(`${b}/online`), '1\n');
      assert.equal(await m.sysfs.read(`${b}/valid_zones`), 'Movable\n');
      assert.deepEqual(uevents(m), ['offline memory33', 'online memory33', 'offline memory33', 'online memory33', 'offline memory33', 'online memory33']);
      assert.deepEqual(m.checkInvariants(), []);
    });
  }

  it('memory0 (DMA and DMA32) and memory23 (a hole at its end) refuse offline with EINVAL through both files (docs/kernel-behaviour.md#errors-of-state-and-online-writes, docs/kernel-behaviour.md#block-ids-and-the-pc-boot-map)', async () => {
    const m = await machine({ kernel: '6.12' });
    assert.equal(await m.sysfs.read(`${M}/memory0/valid_zones`), 'none\n');
    assert.equal(await m.sysfs.read(`${M}/memory1/valid_zones`), 'DMA32\n');
    assert.equal(await m.sysfs.read(`${M}/memory23/valid_zones`), 'DMA32\n');
    assert.equal(await m.sysfs.read(`${M}/memory32/valid_zones`), 'Normal\n');
    for (const b of ['memory0', 'memory23']) {
      assert.equal(await result(m.sysfs.write(`${M}/${b}/state`, 'offline')), 'EINVAL', b);
      assert.equal(await result(m.sysfs.write(`${M}/${b}/online`, '0')), 'EINVAL', b);
      assert.equal(await m.sysfs.read(`${M}/${b}/state`), 'online\n');
    }
    assert.deepEqual(uevents(m), []);
  });
});

describe('sysfs ABI: notifier vetoes seen through state and online (docs/kernel-behaviour.md#writes-to-state-and-online, docs/kernel-behaviour.md#notifier-chains)', () => {
  for (const kernel of KERNELS) {
    it(`${kernel}: NOTIFY_BAD is EPERM, notifier_from_errno(-e) is e, through both files; nothing changes, no uevent`, async () => {
      const m = await machine({ kernel, autoOnline: 'offline' });
      await m.plugDimm({ id: 'd1', size: '128M', node: 1 });
      const goingOnline = m.kernel.actions.MEM_GOING_ONLINE;
      const goingOffline = m.kernel.actions.MEM_GOING_OFFLINE;
      let veto = NOTIFY_BAD;
      const h = m.memoryNotifier.register((action) => (action === goingOnline || action === goingOffline ? veto : NOTIFY_OK), 0);
      const mark = m.trace.events('uevent').length;
      assert.equal(await result(m.sysfs.write(`${M}/memory40/state`, 'online_movable')), 'EPERM');
      assert.equal(await result(m.sysfs.write(`${M}/memory40/online`, '1')), 'EPERM');
      veto = notifierFromErrno(-16);
      assert.equal(await result(m.sysfs.write(`${M}/memory40/state`, 'online')), 'EBUSY');
      veto = notifierFromErrno(-28);
      assert.equal(await result(m.sysfs.write(`${M}/memory40/online`, 'y')), 'ENOSPC');
      assert.equal(await m.sysfs.read(`${M}/memory40/state`), 'offline\n');
      assert.equal(await m.sysfs.read(`${M}/memory40/online`), '0\n');
      assert.equal(await m.sysfs.read(`${M}/memory40/valid_zones`), 'Normal Movable\n');
      veto = NOTIFY_OK;
      await m.sysfs.write(`${M}/memory40/state`, 'online_movable');
      veto = notifierFromErrno(-12);
      assert.equal(await result(m.sysfs.write(`${M}/memory40/state`, 'offline')), 'ENOMEM');
      veto = NOTIFY_BAD;
      assert.equal(await result(m.sysfs.write(`${M}/memory40/online`, '0')), 'EPERM');
      assert.equal(await m.sysfs.read(`${M}/memory40/state`), 'online\n');
      assert.equal(await m.sysfs.read(`${M}/memory40/valid_zones`), 'Movable\n');
      assert.deepEqual(m.trace.events('uevent').slice(mark).map((r) => r.action), ['online']);
      await h.unregister();
      await m.sysfs.write(`${M}/memory40/online`, '0');
      assert.deepEqual(m.checkInvariants(), []);
    });
  }
});

describe('sysfs ABI: valid_zones as zones grow and shrink (docs/kernel-behaviour.md#valid_zones, docs/kernel-behaviour.md#zone-selection)', () => {
  const zones = async (m: Machine, ids: number[]) => Promise.all(ids.map(async (id) => (await m.sysfs.read(`${M}/memory${id}/valid_zones`)).trim()));

  for (const kernel of KERNELS) {
    it(`${kernel}: contig-zones follows span intersection, not adjacency`, async () => {
      const m = await machine({ kernel, autoOnline: 'offline' });
      await m.plugDimm({ id: 'd1', size: '1G' }); // memory40..47 on node 0, right after Normal (32..39)
      assert.deepEqual(await zones(m, range(40, 47)), Array(8).fill('Normal Movable'));
      await m.sysfs.write(`${M}/memory40/state`, 'online_movable');
      assert.deepEqual(await zones(m, [40, 41]), ['Movable', 'Normal Movable']);
      await m.sysfs.write(`${M}/memory42/state`, 'online_movable');
      // memory41 now lies inside the Movable span (40..42) and outside Normal's.
      assert.deepEqual(await zones(m, [40, 41, 42, 43]), ['Movable', 'Movable Normal', 'Movable', 'Normal Movable']);
      await m.sysfs.write(`${M}/memory47/state`, 'online_movable');
      assert.deepEqual(await zones(m, [41, 43, 44, 45, 46]), Array(5).fill('Movable Normal'));
      // A kernel block inside the Movable span: Normal grows to 32..44 and overlaps Movable; where both
      // spans intersect, contig-zones picks the kernel zone (no movable_node).
      await m.sysfs.write(`${M}/memory44/state`, 'online_kernel');
      assert.deepEqual(await zones(m, [41, 43, 44, 45, 46]), ['Normal Movable', 'Normal Movable', 'Normal', 'Movable Normal', 'Movable Normal']);
      // Shrink: offlining the span's ends pulls it in; the emptied zone intersects nothing.
      await m.sysfs.write(`${M}/memory44/state`, 'offline');
      await m.sysfs.write(`${M}/memory47/state`, 'offline');
      assert.deepEqual(await zones(m, [41, 43, 44, 47]), ['Movable Normal', 'Normal Movable', 'Normal Movable', 'Normal Movable']);
      await m.sysfs.write(`${M}/memory42/state`, 'offline');
      assert.deepEqual(await zones(m, [41, 42]), ['Normal Movable', 'Normal Movable']);
      await m.sysfs.write(`${M}/memory40/state`, 'offline');
      assert.deepEqual(await zones(m, range(40, 47)), Array(8).fill('Normal Movable'));
      assert.deepEqual(m.checkInvariants(), []);
    });
  }

  it('an offline block inside DMA32 offers DMA32 first: "DMA32 Movable"', async () => {
    const m = await machine({ kernel: '6.12' });
    await m.sysfs.write(`${M}/memory5/state`, 'offline');
    assert.deepEqual(await zones(m, [5]), ['DMA32 Movable']);
    await m.sysfs.write(`${M}/memory5/online`, '1');
    assert.deepEqual(await zones(m, [5]), ['DMA32']);
  });

  it('movable_node: a block outside every span defaults to Movable', async () => {
    const m = await machine({ kernel: '6.12', autoOnline: 'offline', cmdline: ['movable_node'] });
    await m.plugDimm({ id: 'd1', size: '256M', node: 1 });
    await m.plugDimm({ id: 'd0', size: '256M', node: 0 });
    assert.deepEqual(await zones(m, [40, 41, 42, 43]), ['Movable Normal', 'Movable Normal', 'Movable Normal', 'Movable Normal']);
    await m.sysfs.write(`${M}/memory40/online`, '1');
    assert.deepEqual(await zones(m, [40]), ['Movable']);
    await m.sysfs.write(`${M}/memory41/state`, 'online_kernel'); // an explicit type still wins
    assert.deepEqual(await zones(m, [41]), ['Normal']);
  });

  it('auto-movable: the ratio against boot kernel pages decides; a static group needs its whole remainder to fit', async () => {
    const m = await machine({ kernel: '6.12', nodes: 1, autoOnline: 'offline', onlinePolicy: 'auto-movable' });
    // Boot kernel zones: DMA 3998 + DMA32 782304 + Normal 262144 = 1048446 present pages (guest numbers).
    await m.plugDimm({ id: 'd1', size: '1G' }); // 262144 pages
    assert.deepEqual(await zones(m, [40, 47]), ['Movable Normal', 'Movable Normal']);
    const ratio = `${P}/auto_movable_ratio`;
    await m.sysfs.write(ratio, '25'); // 25% of 1048446 = 262111 < 262144
    assert.deepEqual(await zones(m, [40, 47]), ['Normal Movable', 'Normal Movable']);
    await m.sysfs.write(ratio, '26'); // 272595 ≥ 262144
    assert.deepEqual(await zones(m, [40, 47]), ['Movable Normal', 'Movable Normal']);
    await m.sysfs.write(ratio, '0');
    assert.deepEqual(await zones(m, [40]), ['Normal Movable']);
    await m.sysfs.write(ratio, '10'); // 104844: one 128M block fits, the 1G group does not
    await m.plugDimm({ id: 'd2', size: '128M' }); // memory48
    assert.deepEqual(await zones(m, [40, 48]), ['Normal Movable', 'Movable Normal']);
    await m.sysfs.write(`${M}/memory48/online`, '1');
    assert.deepEqual(await zones(m, [48]), ['Movable']);
    // Once part of a group is online in a kernel zone, the rest of it follows, whatever the ratio.
    await m.sysfs.write(ratio, '301');
    assert.deepEqual(await zones(m, [41]), ['Movable Normal']);
    await m.sysfs.write(`${M}/memory40/state`, 'online_kernel');
    assert.deepEqual(await zones(m, [41, 47]), ['Normal Movable', 'Normal Movable']);
    await m.sysfs.write(`${M}/memory41/online`, '1');
    assert.deepEqual(await zones(m, [41]), ['Normal']);
    assert.deepEqual(m.checkInvariants(), []);
  });

  it('auto-movable with auto_movable_numa_aware: a memoryless node has no kernel pages to balance against', async () => {
    const m = await machine({ kernel: '7.2', autoOnline: 'offline', cmdline: ['memory_hotplug.online_policy=auto-movable'] });
    await m.plugDimm({ id: 'd1', size: '1G', node: 1 });
    assert.deepEqual(await zones(m, [40]), ['Normal Movable']);
    await m.sysfs.write(`${P}/auto_movable_numa_aware`, 'N');
    assert.deepEqual(await zones(m, [40]), ['Movable Normal']);
    await m.sysfs.write(`${P}/online_policy`, 'contig-zones');
    assert.deepEqual(await zones(m, [40]), ['Normal Movable']);
    await m.sysfs.write(`${P}/online_policy`, 'auto-movable\n');
    await m.sysfs.write(`${P}/auto_movable_numa_aware`, 'on');
    assert.deepEqual(await zones(m, [40]), ['Normal Movable']);
  });
});

describe('sysfs ABI: /sys/module/memory_hotplug/parameters (docs/kernel-behaviour.md#zone-selection)', () => {
  for (const kernel of KERNELS) {
    it(`${kernel}: defaults, modes, and each parameter's parser`, async () => {
      const m = await machine({ kernel });
      assert.deepEqual(await m.sysfs.list(P), ['auto_movable_numa_aware', 'auto_movable_ratio', 'memmap_on_memory', 'online_policy']);
      const read = async () => Object.fromEntries(await Promise.all((await m.sysfs.list(P)).map(async (f) => [f, await m.sysfs.read(`${P}/${f}`)])));
      assert.deepEqual(await read(), { auto_movable_numa_aware: 'Y\n', auto_movable_ratio: '301\n', memmap_on_memory: 'N\n', online_policy: 'contig-zones\n' });
      assert.equal(mode(m, `${P}/memmap_on_memory`), 0o444);
      for (const f of ['auto_movable_numa_aware', 'auto_movable_ratio', 'online_policy']) assert.equal(mode(m, `${P}/${f}`), 0o644);
      // guest: EACCES on all three ("Permission denied" at open).
      assert.equal(await result(m.sysfs.write(`${P}/memmap_on_memory`, '1')), 'EACCES');

      // online_policy: sysfs_match_string, one trailing newline allowed.
      const policy = await writes(m, `${P}/online_policy`, ['auto-movable', 'Auto-movable', 'auto-movable\n\n', ' contig-zones', 'auto', 'contig-zones\n']);
      assert.deepEqual(policy, { 'auto-movable': 'ok', 'Auto-movable': 'EINVAL', 'auto-movable\n\n': 'EINVAL', ' contig-zones': 'EINVAL', auto: 'EINVAL', 'contig-zones\n': 'ok' });
      assert.equal(await m.sysfs.read(`${P}/online_policy`), 'contig-zones\n');

      // auto_movable_ratio: param_set_uint = kstrtouint(val, 0). guest: -1 EINVAL, 2^32 ERANGE.
      const ratio = `${P}/auto_movable_ratio`;
      const cases: [string, string, string][] = [
        ['150', 'ok', '150'], ['0x20', 'ok', '32'], ['010', 'ok', '8'], ['+7', 'ok', '7'], ['4294967295', 'ok', '4294967295'], ['0\n', 'ok', '0'],
        ['-1', 'EINVAL', '0'], ['4294967296', 'ERANGE', '0'], ['99999999999999999999', 'ERANGE', '0'], ['abc', 'EINVAL', '0'], [' 5', 'EINVAL', '0'], ['5 ', 'EINVAL', '0'], ['08', 'EINVAL', '0'], ['1.5', 'EINVAL', '0'],
      ];
      for (const [v, r, after] of cases) {
        assert.equal(await result(m.sysfs.write(ratio, v)), r, JSON.stringify(v));
        assert.equal(await m.sysfs.read(ratio), `${after}\n`, JSON.stringify(v));
      }

      // auto_movable_numa_aware: param_set_bool = kstrtobool; reads back Y/N.
      const numa = `${P}/auto_movable_numa_aware`;
      for (const [v, after] of [['N', 'N'], ['y', 'Y'], ['off', 'N'], ['1', 'Y'], ['no', 'N'], ['True', 'Y']] as const) {
        await m.sysfs.write(numa, v);
        assert.equal(await m.sysfs.read(numa), `${after}\n`);
      }
      const badBool = kernel === '7.2' ? ['2', 'o', 'x'] : ['2', 'o', 'x', 'e', 'd'];
      assert.deepEqual(await writes(m, numa, badBool), Object.fromEntries(badBool.map((v) => [v, 'EINVAL'])));
      assert.equal(await m.sysfs.read(numa), 'Y\n');
    });
  }

  it('the command line sets them; memmap_on_memory parses bool on 6.1 and bool-or-force from 6.12', async () => {
    const params = async (kernel: (typeof KERNELS)[number], cmdline: string[]) => {
      const m = await machine({ kernel, cmdline });
      return Object.fromEntries(await Promise.all((await m.sysfs.list(P)).map(async (f) => [f, (await m.sysfs.read(`${P}/${f}`)).trim()])));
    };
    assert.deepEqual(await params('6.12', ['memory_hotplug.online_policy=auto-movable', 'memory_hotplug.auto_movable_ratio=150', 'memory_hotplug.auto_movable_numa_aware=N', 'memory_hotplug.memmap_on_memory=1']), {
      auto_movable_numa_aware: 'N', auto_movable_ratio: '150', memmap_on_memory: 'Y', online_policy: 'auto-movable',
    });
    const mmo = async (kernel: (typeof KERNELS)[number], word: string) => (await params(kernel, [word])).memmap_on_memory;
    assert.equal(await mmo('6.1', 'memory_hotplug.memmap_on_memory=1'), 'Y');
    assert.equal(await mmo('6.1', 'memory_hotplug.memmap_on_memory'), 'Y'); // a bare bool parameter is true
    assert.equal(await mmo('6.1', 'memory_hotplug.memmap_on_memory=force'), 'N'); // kstrtobool: 'f' is false
    for (const k of ['6.12', '7.2'] as const) {
      assert.equal(await mmo(k, 'memory_hotplug.memmap_on_memory=force'), 'force');
      assert.equal(await mmo(k, 'memory_hotplug.memmap_on_memory=y'), 'Y');
      assert.equal(await mmo(k, 'memory_hotplug.memmap_on_memory'), 'N'); // its ops need a value
    }
    // Values outside what memhp takes are refused with the scenario schema's message, not parsed.
    await assert.rejects(params('6.1', ['memory_hotplug.online_policy=Auto-movable']), /^KernelError: cmdline\.memory_hotplug\.online_policy: expected contig-zones or auto-movable$/);
    await assert.rejects(params('6.1', ['memory_hotplug.auto_movable_ratio=-3']), /cmdline\.memory_hotplug\.auto_movable_ratio: expected a percentage/);
    await assert.rejects(params('6.12', ['memory_hotplug.memmap_on_memory=FORCE']), /cmdline\.memory_hotplug\.memmap_on_memory: expected a boolean \(1\/0, Y\/N\) or force/);
    await assert.rejects(params('6.12', ['bogus=1']), /unknown kernel parameter 'bogus'/);
  });
});

describe('sysfs ABI: nodes, /sys/bus/memory and /sys/firmware/memmap (docs/kernel-behaviour.md#memory-block-devices, docs/kernel-behaviour.md#adding-memory)', () => {
  it('node masks and both link directions follow a plug on node 1, an online to a kernel zone, and the unplug', async () => {
    // Node 1 without a vCPU: no node-local allocation takes a page of its Normal memory, so it can go again.
    const m = await machine({ kernel: '6.12', cpus: 1, cmdline: ['memhp_default_state=online_movable'] });
    // guest: node root entries (plus has_generic_initiator, empty on QEMU pc). Node 1, with neither memory
    // nor a vCPU, is possible but not online and has no directory (scenario node-without-cpu-or-memory).
    assert.deepEqual(await m.sysfs.list(N), ['has_cpu', 'has_generic_initiator', 'has_memory', 'has_normal_memory', 'node0', 'online', 'possible', 'power', 'uevent']);
    const masks = async () => Object.fromEntries(await Promise.all(['possible', 'online', 'has_cpu', 'has_memory', 'has_normal_memory', 'has_generic_initiator'].map(async (f) => [f, await m.sysfs.read(`${N}/${f}`)])));
    assert.deepEqual(await masks(), { possible: '0-1\n', online: '0\n', has_cpu: '0\n', has_memory: '0\n', has_normal_memory: '0\n', has_generic_initiator: '\n' });
    assert.equal(await m.sysfs.read(`${N}/uevent`), '');
    assert.equal(await result(m.sysfs.write(`${N}/uevent`, 'foo')), 'EINVAL');
    const node1 = async () => (await m.sysfs.list(`${N}/node1`)).filter((n) => /^memory\d+$/.test(n));
    assert.equal(await result(m.sysfs.list(`${N}/node1`)), 'ENOENT');

    await m.plugDimm({ id: 'd1', size: '1G', node: 1 });
    assert.deepEqual(await masks(), { possible: '0-1\n', online: '0-1\n', has_cpu: '0\n', has_memory: '0-1\n', has_normal_memory: '0\n', has_generic_initiator: '\n' });
    assert.deepEqual(await node1(), range(40, 47).map((i) => `memory${i}`));
    assert.ok(!(await m.sysfs.list(`${N}/node0`)).includes('memory40'));
    for (const i of range(40, 47)) {
      assert.equal(readlink(m, `${N}/node1/memory${i}`), `../../memory/memory${i}`);
      assert.equal(readlink(m, `${M}/memory${i}/node1`), '../../node/node1');
      assert.equal(m.sysfs.lookup(`${N}/node1/memory${i}`).path, `${M}/memory${i}`);
      assert.equal(await m.sysfs.read(`${N}/node1/memory${i}/phys_index`), `${i.toString(16).padStart(8, '0')}\n`);
      assert.equal(await result(m.sysfs.read(`${M}/memory${i}/node0/possible`)), 'ENOENT');
    }
    assert.deepEqual(await m.sysfs.list(`${M}/memory40/node1`), await m.sysfs.list(`${N}/node1`));
    // guest: "Node 1 MemTotal:        1048576 kB" once 1 GiB is online on the node.
    assert.match(await m.sysfs.read(`${N}/node1/meminfo`), /^Node 1 MemTotal: {8}1048576 kB\nNode 1 MemFree: +\d+ kB\nNode 1 MemUsed: +\d+ kB\n/);

    // A Movable-only node never enters N_NORMAL_MEMORY; one kernel block puts it there.
    await m.sysfs.write(`${M}/memory47/state`, 'offline');
    await m.sysfs.write(`${M}/memory47/state`, 'online_kernel');
    assert.equal(await m.sysfs.read(`${N}/has_normal_memory`), '0-1\n');
    await m.sysfs.write(`${M}/memory47/state`, 'offline');
    assert.equal(await m.sysfs.read(`${N}/has_normal_memory`), '0\n');
    assert.equal(await m.sysfs.read(`${N}/has_memory`), '0-1\n');

    await m.unplugDimm('d1');
    // try_offline_node: spanning nothing and without a vCPU, node 1 goes offline again, its directory too.
    assert.deepEqual(await masks(), { possible: '0-1\n', online: '0\n', has_cpu: '0\n', has_memory: '0\n', has_normal_memory: '0\n', has_generic_initiator: '\n' });
    assert.equal(await result(m.sysfs.list(`${N}/node1`)), 'ENOENT');
    assert.equal(await result(m.sysfs.read(`${N}/node1/memory40`)), 'ENOENT');
    assert.deepEqual(m.checkInvariants(), []);
  });

  it('/sys/bus/memory/devices links every block device, and only those', async () => {
    const m = await machine({ kernel: '6.1' });
    const blocks = async () => (await m.sysfs.list(M)).filter((n) => /^memory\d+$/.test(n)).sort();
    assert.deepEqual(await m.sysfs.list('/sys/bus/memory/devices'), await blocks());
    assert.equal(readlink(m, '/sys/bus/memory/devices/memory33'), '../../../devices/system/memory/memory33');
    assert.equal(m.sysfs.lookup('/sys/bus/memory/devices/memory33').path, `${M}/memory33`);
    await m.plugDimm({ id: 'd1', size: '512M', node: 1 });
    assert.deepEqual(await m.sysfs.list('/sys/bus/memory/devices'), await blocks());
    assert.equal(await m.sysfs.read('/sys/bus/memory/devices/memory43/state'), 'offline\n');
    assert.equal(await m.sysfs.read('/sys/bus/memory/devices/memory43/subsystem/devices/memory43/phys_index'), '0000002b\n');
    await m.unplugDimm('d1');
    assert.deepEqual(await m.sysfs.list('/sys/bus/memory/devices'), await blocks());
    assert.equal(await result(m.sysfs.read('/sys/bus/memory/devices/memory40/state')), 'ENOENT');
  });

  it('/sys/firmware/memmap: the raw e820 table of a 512M pc guest, then one System RAM entry per DIMM', async () => {
    const m = await Machine.create({ kernel: '7.2', memory: '512M', nodes: 2, autoOnline: 'online_movable' });
    const memmap = async () => {
      const out: string[] = [];
      for (const n of (await m.sysfs.list('/sys/firmware/memmap')).sort((a, b) => Number(a) - Number(b))) {
        const f = async (x: string) => (await m.sysfs.read(`/sys/firmware/memmap/${n}/${x}`)).trim();
        out.push(`${n} ${await f('start')} ${await f('end')} ${await f('type')}`);
      }
      return out;
    };
    // guest: identical on 6.1 and 7.2 (-m 512M, QEMU 7.2).
    const boot = ['0 0x0 0x9fbff System RAM', '1 0x9fc00 0x9ffff Reserved', '2 0xf0000 0xfffff Reserved', '3 0x100000 0x1ffdffff System RAM', '4 0x1ffe0000 0x1fffffff Reserved', '5 0xfffc0000 0xffffffff Reserved', '6 0xfd00000000 0xffffffffff Reserved'];
    assert.deepEqual(await memmap(), boot);
    await m.plugDimm({ id: 'd1', size: '1G', node: 1 });
    assert.deepEqual(await memmap(), [...boot, '7 0x100000000 0x13fffffff System RAM']); // guest
    await m.plugDimm({ id: 'd2', size: '256M' });
    assert.deepEqual(await memmap(), [...boot, '7 0x100000000 0x13fffffff System RAM', '8 0x140000000 0x14fffffff System RAM']);
    await m.unplugDimm('d1');
    assert.deepEqual(await memmap(), [...boot, '8 0x140000000 0x14fffffff System RAM']);
    // map_entries_nr only counts up: the same range plugged again gets a new number.
    await m.plugDimm({ id: 'd3', size: '1G', node: 1 });
    assert.deepEqual(await memmap(), [...boot, '8 0x140000000 0x14fffffff System RAM', '9 0x100000000 0x13fffffff System RAM']);
    assert.equal(mode(m, '/sys/firmware/memmap/9/type'), 0o444);
  });
});

describe('NUMA node ids as the kernel numbers them from the SRAT (docs/kernel-behaviour.md#node-states)', () => {
  const linkedNode = async (m: Machine, block: number) => (await m.sysfs.list(`${M}/memory${block}`)).filter((f) => /^node\d+$/.test(f)).join();
  for (const [nodes, cpus, possible, online, plugs] of [
    // [QEMU nodes, vCPUs, node/possible, node/online at boot, [DIMM's QEMU node, kernel node it lands on]…]
    [3, 1, '0-1', '0', [[2, 'node1'], [1, 'node0']]],
    [4, 2, '0-2', '0-1', [[3, 'node2'], [2, 'node0']]],
    [2, 1, '0-1', '0', [[1, 'node1']]],
    [3, 3, '0-2', '0-2', [[2, 'node2'], [1, 'node1']]],
  ] as const) {
    it(`${nodes} QEMU nodes, ${cpus} vCPU(s): possible ${possible}; ${plugs.map(([q, k]) => `QEMU node ${q} → ${k}`).join(', ')}`, async () => {
      const m = await Machine.create({ kernel: '6.12', memory: '512M', nodes, cpus, cmdline: ['memhp_default_state=online_movable'] });
      assert.equal(await m.sysfs.read(`${N}/possible`), `${possible}\n`);
      assert.equal(await m.sysfs.read(`${N}/online`), `${online}\n`);
      let block = 32;
      for (const [q, k] of plugs) {
        await m.plugDimm({ id: `d${q}`, size: '128M', node: q });
        assert.equal(await linkedNode(m, block++), k);
      }
      assert.deepEqual(m.checkInvariants(), []);
    });
  }

  it('without a hotplug window (maxmem = RAM) a node with neither vCPU nor memory does not exist at all', async () => {
    const m = await Machine.create({ kernel: '7.2', memory: '512M', nodes: 3, cpus: 1, maxMemory: '512M', slots: 0 });
    assert.equal(await m.sysfs.read(`${N}/possible`), '0\n');
  });
});

describe('sysfs ABI: /proc/meminfo, /proc/zoneinfo and /proc/iomem (docs/kernel-behaviour.md#acpi-plug, docs/kernel-behaviour.md#adding-memory, docs/kernel-behaviour.md#memmap_on_memory, docs/kernel-behaviour.md#zone-and-node-spans)', () => {
  for (const kernel of KERNELS) {
    it(`${kernel}: MemTotal grows by exactly 1048576 kB for 1 GiB online_movable and returns after the unplug`, async () => {
      const m = await machine({ kernel, cmdline: ['memhp_default_state=online_movable'] });
      assert.match(await m.sysfs.read('/proc/meminfo'), /^MemTotal: {7}[ \d]{7}\d kB\nMemFree: {8}[ \d]{7}\d kB\n/);
      const t0 = await memTotal(m);
      await m.plugDimm({ id: 'd1', size: '1G', node: 1 });
      assert.equal((await memTotal(m)) - t0, 1048576);
      await m.sysfs.write(`${M}/memory44/state`, 'offline');
      assert.equal((await memTotal(m)) - t0, 1048576 - 131072);
      await m.unplugDimm('d1');
      assert.equal(await memTotal(m), t0);
    });
  }

  for (const kernel of KERNELS) {
    const perGiB = kernel === '6.1' ? 1048576 : 1032192; // 6.1's ACPI driver asks only for one-block DIMMs
    it(`${kernel}: memmap_on_memory=1 adds ${perGiB} kB per GiB; zoneinfo present counts the vmemmap pages, managed does not`, async () => {
      const m = await machine({ kernel, cmdline: ['memhp_default_state=online_movable', 'memory_hotplug.memmap_on_memory=1'] });
      const t0 = await memTotal(m);
      await m.plugDimm({ id: 'd1', size: '1G', node: 1 });
      assert.equal((await memTotal(m)) - t0, perGiB);
      const z = await zone(m, 1, 'Movable');
      assert.deepEqual({ spanned: z.spanned, present: z.present, managed: z.managed, start: z.start }, { spanned: 262144, present: 262144, managed: perGiB / 4, start: 0x140000 });
      assert.match(await m.sysfs.read(`${N}/node1/meminfo`), new RegExp(`^Node 1 MemTotal: +${perGiB} kB$`, 'm'));
      await m.unplugDimm('d1');
      assert.equal(await memTotal(m), t0);
    });
  }

  it('zoneinfo of Movable after a plug and as its blocks go offline: the span shrinks from the ends, an empty zone spans 0', async () => {
    const m = await machine({ kernel: '7.2', cmdline: ['memhp_default_state=online_movable'] });
    assert.deepEqual(await zone(m, 1, 'Movable'), { free: 0, spanned: 0, present: 0, managed: 0 });
    await m.plugDimm({ id: 'd1', size: '1G', node: 1 }); // pfn 0x140000 = 1310720
    assert.deepEqual(await zone(m, 1, 'Movable'), { free: 262144, spanned: 262144, present: 262144, managed: 262144, start: 1310720 });
    const off = async (id: number) => m.sysfs.write(`${M}/memory${id}/state`, 'offline');
    await off(40);
    assert.deepEqual(await zone(m, 1, 'Movable'), { free: 229376, spanned: 229376, present: 229376, managed: 229376, start: 1343488 });
    await off(47);
    assert.equal((await zone(m, 1, 'Movable')).spanned, 196608);
    await off(43); // a hole in the middle: present drops, the span stays
    assert.deepEqual(await zone(m, 1, 'Movable'), { free: 163840, spanned: 196608, present: 163840, managed: 163840, start: 1343488 });
    for (const id of [41, 42, 44, 45, 46]) await off(id);
    // docs/kernel-behaviour.md#zone-and-node-spans, guest: the emptied zone reads spanned 0, present 0, managed 0, without start_pfn.
    assert.deepEqual(await zone(m, 1, 'Movable'), { free: 0, spanned: 0, present: 0, managed: 0 });
    assert.deepEqual(await zone(m, 1, 'Normal'), { free: 0, spanned: 0, present: 0, managed: 0 });
    await m.sysfs.write(`${M}/memory45/state`, 'online_movable');
    assert.deepEqual(await zone(m, 1, 'Movable'), { free: 32768, spanned: 32768, present: 32768, managed: 32768, start: 45 * 32768 });
    assert.deepEqual(m.checkInvariants(), []);
  });

  it('iomem: one System RAM entry per DIMM, not merged, gone after the unplug; add_memory too (docs/kernel-behaviour.md#adding-memory)', async () => {
    // Movable, so the DIMM can go again (a node's first Normal memory keeps a page of the kernel's).
    const m = await machine({ kernel: '6.12', autoOnline: 'online_movable' });
    const ram = async () => (await m.sysfs.read('/proc/iomem')).split('\n').filter((l) => l.endsWith(' : System RAM'));
    // guest (-m 4G layout, scaled from the 512M guest): %08x at least, wider above 4 GiB.
    assert.deepEqual(await ram(), ['00001000-0009fbff : System RAM', '00100000-bffdffff : System RAM', '100000000-13fffffff : System RAM']);
    await m.plugDimm({ id: 'd1', size: '1G', node: 1 });
    await m.plugDimm({ id: 'd2', size: '1G', node: 1 });
    assert.deepEqual((await ram()).slice(3), ['140000000-17fffffff : System RAM', '180000000-1bfffffff : System RAM']);
    await m.unplugDimm('d1');
    assert.deepEqual((await ram()).slice(3), ['180000000-1bfffffff : System RAM']);
    await m.addMemory(0, 0x200000000n, 1n << 28n);
    assert.equal(await result(m.addMemory(0, 0x208000000n, 1n << 28n)), 'EEXIST');
    assert.deepEqual((await ram()).slice(3), ['180000000-1bfffffff : System RAM', '200000000-20fffffff : System RAM']);
    for (const id of [64, 65]) await m.sysfs.write(`${M}/memory${id}/state`, 'offline');
    await m.removeMemory(0x200000000n, 1n << 28n);
    assert.deepEqual((await ram()).slice(3), ['180000000-1bfffffff : System RAM']);
  });
});

describe('sysfs ABI: uevents in the kernel order (docs/kernel-behaviour.md#writes-to-state-and-online, docs/kernel-behaviour.md#adding-memory, docs/kernel-behaviour.md#removing-memory, docs/kernel-behaviour.md#acpi-eject)', () => {
  for (const kernel of KERNELS) {
    it(`${kernel}: add for every block before any online; offline for every block before any remove`, async () => {
      const m = await machine({ kernel, cmdline: ['memhp_default_state=online_movable'] });
      await m.plugDimm({ id: 'd1', size: '1G', node: 1 });
      const blocks = range(40, 47);
      assert.deepEqual(uevents(m), [...blocks.map((b) => `add memory${b}`), ...blocks.map((b) => `online memory${b}`)]);
      const mark = m.trace.length;
      await m.unplugDimm('d1');
      assert.deepEqual(uevents(m, mark), [...blocks.map((b) => `offline memory${b}`), ...blocks.map((b) => `remove memory${b}`)]);
    });
  }

  it('auto_online_blocks=offline: add only; a failed online emits nothing; removing offline blocks emits remove only', async () => {
    const m = await machine({ kernel: '6.1' });
    await m.plugDimm({ id: 'd1', size: '256M', node: 1 });
    assert.deepEqual(uevents(m), ['add memory40', 'add memory41']);
    await m.loadModule('memory-notifier-error-inject', { priority: 0 });
    const err = '/sys/kernel/debug/notifier-error-inject/memory/actions/MEM_GOING_ONLINE/error';
    await m.sysfs.write(err, '-12');
    assert.equal(await result(m.sysfs.write(`${M}/memory40/state`, 'online_movable')), 'ENOMEM');
    assert.equal(await result(m.sysfs.write(`${M}/memory40/online`, '1')), 'ENOMEM');
    assert.equal(await m.sysfs.read(`${M}/memory40/state`), 'offline\n');
    await m.sysfs.write(err, '0');
    // Movable: a kernel-zone block that is a node's first memory keeps a page of the kernel's (kswapd's).
    await m.sysfs.write(`${M}/memory40/state`, 'online_movable');
    await m.sysfs.write(`${M}/memory40/online`, '0');
    const mark = m.trace.length;
    await m.unplugDimm('d1');
    assert.deepEqual(uevents(m), ['add memory40', 'add memory41', 'online memory40', 'offline memory40', 'remove memory40', 'remove memory41']);
    assert.deepEqual(m.trace.events().slice(mark).filter((r) => r.type === 'notify'), [], 'no notifier event for offline blocks');
  });
});

describe('sysfs ABI: hwpoison through hard_offline_page and soft_offline_page (docs/kernel-behaviour.md#other-files)', () => {
  for (const kernel of KERNELS) {
    it(`${kernel}: a poisoned page ${kernel === '6.1' ? 'does not stop' : 'makes'} the next online of its block ${kernel === '6.1' ? '' : 'fail EHWPOISON'}`.trimEnd(), async () => {
      const m = await machine({ kernel, autoOnline: 'offline' });
      await m.plugDimm({ id: 'd1', size: '256M', node: 1 }); // memory40..41 at 0x140000000
      const hard = `${M}/hard_offline_page`;
      const soft = `${M}/soft_offline_page`;
      // guest: offline memory → hard ENXIO ("memory outside kernel control"), soft EIO.
      assert.equal(await result(m.sysfs.write(hard, '0x140000000')), 'ENXIO');
      assert.equal(await result(m.sysfs.write(soft, '0x140000000')), 'EIO');
      await m.sysfs.write(`${M}/memory40/state`, 'online_movable');
      await m.sysfs.write(`${M}/memory41/state`, 'online_movable');
      // guest: poison once, EHWPOISON the second time; soft offline of a poisoned page succeeds.
      await m.sysfs.write(hard, '0x140000000');
      assert.equal(await result(m.sysfs.write(hard, '5368709120\n')), 'EHWPOISON');
      assert.equal(await result(m.sysfs.write(soft, '0x140000000')), 'ok');
      await m.sysfs.write(soft, '0x148001000'); // a free page of memory41
      assert.equal(await result(m.sysfs.write(hard, '0x148001000')), 'EHWPOISON');
      // Parsing: kstrtoull base 0; every failure (a sign, garbage, more than 64 bits) is EINVAL.
      for (const f of [hard, soft]) assert.deepEqual(await writes(m, f, ['abc', '-1', '0x', ' 0x140000000', '0x10000000000000000']), { abc: 'EINVAL', '-1': 'EINVAL', '0x': 'EINVAL', ' 0x140000000': 'EINVAL', '0x10000000000000000': 'EINVAL' });
      // guest: beyond RAM, soft offline finds no memmap (ENXIO); so does hard offline on 6.1 and 6.12.
      assert.equal(await result(m.sysfs.write(soft, '0x800000000')), 'ENXIO');
      assert.equal(await result(m.sysfs.write(hard, '0x800000000')), kernel === '7.2' ? 'EBUSY' : 'ENXIO');
      // guest (6.12): pfn 1 is a kernel page: soft offline cannot handle it (EIO), hard offline
      // gives EBUSY ("recovery action for get hwpoison page: Ignored").
      assert.equal(await result(m.sysfs.write(soft, '0x1000')), 'EIO');
      assert.equal(await result(m.sysfs.write(hard, '0x1000')), 'EBUSY');

      await m.sysfs.write(`${M}/memory40/state`, 'offline'); // the poisoned page does not stop the offline
      const mark = m.trace.length;
      const online = await result(m.sysfs.write(`${M}/memory40/state`, 'online_movable'));
      if (kernel === '6.1') {
        assert.equal(online, 'ok');
        assert.equal(await m.sysfs.read(`${M}/memory40/state`), 'online\n');
      } else {
        assert.equal(online, 'EHWPOISON');
        assert.equal(await result(m.sysfs.write(`${M}/memory40/online`, '1')), 'EHWPOISON');
        assert.equal(await m.sysfs.read(`${M}/memory40/state`), 'offline\n');
        assert.equal(await m.sysfs.read(`${M}/memory40/online`), '0\n');
        // memory_block_online checks the counter first: no notifier call, no uevent.
        assert.deepEqual(m.trace.events().slice(mark), []);
        await m.sysfs.write(`${M}/memory41/state`, 'offline');
        assert.equal(await result(m.sysfs.write(`${M}/memory41/state`, 'online')), 'EHWPOISON');
      }
      assert.deepEqual(m.checkInvariants(), []);
    });
  }
});
