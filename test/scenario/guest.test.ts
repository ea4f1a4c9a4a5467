/**
 * Real guests run the example scenarios end to end (one boot each, three kernels between them):
 * results, notifier records, uevents, QMP events and snapshots (sysfs, zoneinfo, MemTotal, iomem, firmware
 * memmap) as the kernel produces them, the fast snapshot equal to the generic one, the differ on real observations, and QEMU gone after every run,
 * including a run cut short and a boot that fails.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { liveGuests } from '../../lib/guest/guest.js';
import { LATEST } from '../../lib/kernel/profile.js';
import type { TraceRecord } from '../../lib/kernel/trace.js';
import { diffObservations, formatDiff } from '../../lib/scenario/diff.js';
import { ScenarioRunError } from '../../lib/scenario/errors.js';
import { runOnGuest } from '../../lib/scenario/guest.js';
import type { FileValue, Observation, RamSnapshot, StepObservation, ZoneSnapshot } from '../../lib/scenario/observation.js';
import { loadScenario, parseScenario, type Scenario } from '../../lib/scenario/schema.js';
import { runOnSimulator } from '../../lib/scenario/sim.js';
import { takeSnapshot } from '../../lib/scenario/snapshot.js';
import { ourQemus } from '../qemus.js';

const SCENARIOS = fileURLToPath(new URL('../scenarios/', import.meta.url));
const load = (name: string): Promise<Scenario> => loadScenario(`${SCENARIOS}${name}.yaml`);


const notifies = (s: StepObservation): string[] =>
  s.trace.filter((r) => r.type === 'notify').map((r) => `${String(r.action)}@${r.chain === 'node' ? `nid${String(r.nid)}` : `0x${Number(r.start_pfn).toString(16)}`}`);
const uevents = (s: StepObservation): string[] => s.trace.filter((r) => r.type === 'uevent').map((r) => `${String(r.action)} ${String(r.devpath).replace('/devices/system/memory/', '')}`);
const qmp = (s: StepObservation): string[] => s.trace.filter((r) => r.type === 'qmp-event').map((r) => String(r.event));
const timings: string[] = [];
const timing = (o: Observation): void =>
  void timings.push(`${o.scenario} on ${o.kernel.release}: boot ${((o.bootMs ?? 0) / 1000).toFixed(1)} s, steps ${(o.ms / 1000).toFixed(2)} s (${o.steps.map((s) => `${s.text.split(' ')[0]} ${s.ms.toFixed(0)}`).join(', ')} ms)`);
/** An observation as it comes back from a JSON file. */
const viaJson = (o: Observation): Observation => JSON.parse(JSON.stringify(o)) as Observation;

describe('scenarios on real guests', function () {
  this.timeout(0); // no wall-clock limit: waits on guests are bounded by their progress (lib/guest/progress.ts)

  after(function () {
    if (timings.length) process.stderr.write(`      scenario timings:\n        ${timings.join('\n        ')}\n`);
    assert.equal(liveGuests(), 0, 'every guest closed');
    assert.deepEqual(ourQemus(), [], 'no QEMU left running');
  });

  it('plug-online-movable on latest: plug on node 1, offline one block, unplug', async () => {
    const scenario = await load('plug-online-movable');
    const checked: string[] = [];
    const o = await runOnGuest(scenario, {
      kernel: 'latest',
      handlers: {
        // The fast (script) snapshot and the generic one (sysfs.list + sysfs.read) must agree on a real guest.
        snapshot: async (s, ctx) => {
          const fast = await ctx.snapshot(s.name);
          if (s.name === 'plugged' || s.name === 'one-offline') {
            assert.equal(ourQemus().length, 1, 'the QEMU check sees the running guest');
            assert.deepEqual(await takeSnapshot(ctx.target.sysfs, s.name), fast, s.name);
            checked.push(s.name);
          }
          return { snapshot: fast };
        },
      },
    });
    timing(o);
    assert.deepEqual(checked, ['plugged', 'one-offline']);
    assert.equal(o.target, 'guest');
    assert.equal(o.kernel.profile, LATEST);
    assert.match(o.kernel.release, /^7\./);
    assert.ok(o.bootMs! > 0 && o.ms > 0 && o.steps.every((s) => s.ms > 0));
    assert.deepEqual(o.steps.map((s) => s.result.status), ['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok']);
    assert.deepEqual(o.steps.filter((s) => s.unmet).map((s) => `${s.index}: ${s.unmet}`), []);
    const [boot, plug, plugged, offline, read, oneOffline, unplug, unplugged] = o.steps as StepObservation[] & { length: 8 };

    // Boot: 512 MiB in memory0..3, node 1 memoryless.
    assert.deepEqual(Object.keys(boot!.snapshot!.memory.blocks), ['memory0', 'memory1', 'memory2', 'memory3']);
    assert.equal(boot!.snapshot!.memory.block_size_bytes, '8000000');
    assert.equal(boot!.snapshot!.memory.auto_online_blocks, 'online_movable');
    assert.equal(boot!.snapshot!.memory.blocks.memory0!.valid_zones, 'none');
    assert.deepEqual(boot!.snapshot!.node, { has_memory: '0', has_normal_memory: '0', nodes: { node0: ['memory0', 'memory1', 'memory2', 'memory3'], node1: [] } });

    // Plug: the DIMM lands at 4 GiB (pfn 0x100000, memory32..33); 7.x adds the node chain around the first block.
    assert.deepEqual(notifies(plug!), [
      'NODE_ADDING_FIRST_MEMORY@nid1',
      'MEM_GOING_ONLINE@0x100000',
      'NODE_ADDED_FIRST_MEMORY@nid1',
      'MEM_ONLINE@0x100000',
      'MEM_GOING_ONLINE@0x108000',
      'MEM_ONLINE@0x108000',
    ]);
    assert.deepEqual(uevents(plug!).sort(), ['add memory32', 'add memory33', 'online memory32', 'online memory33']);
    assert.deepEqual(qmp(plug!), ['ACPI_DEVICE_OST']);
    const going = plug!.trace.find((r) => r.action === 'MEM_GOING_ONLINE') as TraceRecord;
    assert.deepEqual(Object.keys(going), ['type', 'chain', 'action', 'value', 'start_pfn', 'nr_pages'], '7.x memory_notify has no status_change_nid');
    for (const b of ['memory32', 'memory33']) {
      assert.deepEqual(plugged!.snapshot!.memory.blocks[b], { online: '1', phys_device: '0', phys_index: b === 'memory32' ? '00000020' : '00000021', removable: '1', state: 'online', valid_zones: 'Movable', nodes: ['node1'] });
    }
    assert.deepEqual(plugged!.snapshot!.node, { has_memory: '0-1', has_normal_memory: '0', nodes: { node0: ['memory0', 'memory1', 'memory2', 'memory3'], node1: ['memory32', 'memory33'] } });

    // /proc and the firmware map (docs/kernel-behaviour.md#acpi-plug, docs/kernel-behaviour.md#other-files): 65536 pages in node 1's Movable zone, MemTotal
    // up by 256 MiB from the baseline, one System RAM resource and one firmware memmap entry for the DIMM.
    const ram = (st: StepObservation | undefined): RamSnapshot => st!.snapshot!.ram!;
    const zones = (st: StepObservation | undefined) => ram(st).zoneinfo as Record<string, Record<string, ZoneSnapshot>>;
    const kB = (v: FileValue): number => Number(/^(\d+) kB$/.exec(String(v))![1]);
    assert.deepEqual(Object.keys(zones(boot)), ['node0', 'node1']);
    assert.deepEqual(Object.keys(zones(boot).node0!), ['DMA', 'DMA32', 'Normal', 'Movable', 'Device']);
    assert.deepEqual(zones(boot).node0!.DMA, { spanned: '4095', present: '3998', managed: '3840', start_pfn: '1' });
    assert.deepEqual(zones(boot).node1!.Movable, { spanned: '0', present: '0', managed: '0' });
    assert.deepEqual(zones(plugged).node1!.Movable, { spanned: '65536', present: '65536', managed: '65536', start_pfn: '1048576' });
    assert.deepEqual(o.baseline, { ...boot!.snapshot!, name: 'baseline' });
    assert.equal(kB(ram(plugged).memTotal) - kB(o.baseline!.ram!.memTotal), 262144);
    assert.deepEqual(Object.entries(ram(plugged).iomem).slice(-1), [['100000000-10fffffff', 'System RAM']]);
    const fw = Object.values(ram(plugged).memmap);
    assert.equal(fw.length, Object.keys(ram(boot).memmap).length + 1);
    assert.deepEqual(fw.at(-1), { start: '0x100000000', end: '0x10fffffff', type: 'System RAM' });

    // Offline the second block by hand: not the node's last memory, so no node event.
    assert.deepEqual(notifies(offline!), ['MEM_GOING_OFFLINE@0x108000', 'MEM_OFFLINE@0x108000']);
    assert.deepEqual(uevents(offline!), ['offline memory33']);
    assert.deepEqual(read!.result, { status: 'ok', value: 'Normal Movable\n' });
    assert.equal(oneOffline!.snapshot!.memory.blocks.memory33!.state, 'offline');
    assert.equal(oneOffline!.snapshot!.memory.blocks.memory33!.valid_zones, 'Normal Movable');
    assert.deepEqual(zones(oneOffline).node1!.Movable, { spanned: '32768', present: '32768', managed: '32768', start_pfn: '1048576' }, 'the span shrinks');

    // Unplug: ACPI offlines the remaining block (the node's last memory), removes both, QEMU deletes the DIMM;
    // zoneinfo, MemTotal, iomem and the firmware map are as at boot again (docs/kernel-behaviour.md#acpi-eject).
    assert.deepEqual(notifies(unplug!), ['NODE_REMOVING_LAST_MEMORY@nid1', 'MEM_GOING_OFFLINE@0x100000', 'NODE_REMOVED_LAST_MEMORY@nid1', 'MEM_OFFLINE@0x100000']);
    assert.deepEqual(uevents(unplug!).sort(), ['offline memory32', 'remove memory32', 'remove memory33']);
    assert.deepEqual(qmp(unplug!).slice(0, 2), ['ACPI_DEVICE_OST', 'DEVICE_DELETED']);
    assert.deepEqual(unplugged!.snapshot, { ...boot!.snapshot!, name: 'unplugged' });

    // The observation survives JSON and equals itself under the differ.
    const r = diffObservations(o, viaJson(o));
    assert.equal(r.ok, true, formatDiff(r));
  });

  it('paths with spaces reach the guest; a NUL in a path or a lone surrogate in a value is not applicable, not a result', async () => {
    const scenario = parseScenario(`
machine: {kernel: ['6.1'], memory: 512M}
steps:
  - sh: 'touch "/tmp/a b"'
  - write: {path: /tmp/a b, value: "x y\\0z"}
  - read: {path: /tmp/a b, value: "x y\\0z"}
  - read: {path: "/tmp/a\\0b"}
  - write: {path: /tmp/a b, value: "\\ud800"}
`);
    const o = await runOnGuest(scenario, { kernel: '6.1' });
    timing(o);
    assert.deepEqual(o.steps.map((x) => x.result.status), ['ok', 'ok', 'ok', 'n/a', 'n/a']);
    assert.deepEqual(o.steps.filter((x) => x.unmet).map((x) => x.unmet), []);
  });

  it('a step\'s kernel log lines are in its observation, as on the simulator: a 64 MiB DIMM the kernel cannot add', async () => {
    const scenario = parseScenario(`
machine: {kernel: ['latest'], memory: 512M}
steps:
  - plug: {id: d1, size: 64M}
  - sh: 'echo memhp-marker > /dev/kmsg'
  - snapshot
`);
    const o = await runOnGuest(scenario, { kernel: 'latest' });
    timing(o);
    const sim = await runOnSimulator(scenario, { kernel: 'latest' });
    assert.deepEqual(o.steps[0]!.dmesg, sim.steps[0]!.dmesg, 'the same lines as the simulator');
    assert.match(o.steps[0]!.dmesg!.join('\n'), /^Block size \[0x8000000\] unaligned hotplug range: start 0x100000000, size 0x4000000$/m);
    assert.ok(o.steps[1]!.dmesg?.some((l) => l.endsWith('memhp-marker')), `step 1 logged the marker: ${JSON.stringify(o.steps[1]!.dmesg)}`);
    assert.equal(o.steps[2]!.dmesg, undefined, 'a step that printed nothing has no dmesg');
  });

  it('inject-going-online on 6.12: the injected ENOMEM vetoes the online; the differ ignores the uninitialised nids', async () => {
    const o = await runOnGuest(await load('inject-going-online'), { kernel: '6.12' });
    timing(o);
    assert.equal(o.kernel.profile, '6.12');
    assert.deepEqual(o.steps.filter((s) => s.unmet).map((s) => `${s.index}: ${s.unmet}`), []);
    const [plug, , inject, failed, , , online] = o.steps;
    assert.deepEqual(notifies(plug!), [], 'memhp_default_state=offline: an add sends no notifier event');
    assert.deepEqual(uevents(plug!).sort(), ['add memory32', 'add memory33']);
    assert.equal(inject!.result.status, 'ok');
    assert.deepEqual(failed!.result.status === 'error' && failed!.result.errno, 'ENOMEM');
    assert.deepEqual(notifies(failed!), ['MEM_PREPARE_ONLINE@0x100000', 'MEM_GOING_ONLINE@0x100000', 'MEM_CANCEL_ONLINE@0x100000', 'MEM_FINISH_OFFLINE@0x100000']);
    assert.deepEqual(uevents(failed!), [], 'a failed online sends no uevent');
    assert.deepEqual(notifies(online!), ['MEM_PREPARE_ONLINE@0x100000', 'MEM_GOING_ONLINE@0x100000', 'MEM_ONLINE@0x100000']);

    // Real 6.12 records: other values in PREPARE/FINISH's status_change_nid* are normalised away, in GOING_ONLINE they are not.
    const edit = (action: string, field: string): Observation => {
      const c = viaJson(o) as unknown as { steps: { trace: Record<string, unknown>[] }[] };
      const rec = c.steps[3]!.trace.find((t) => t.action === action)!;
      rec[field] = 42;
      return c as unknown as Observation;
    };
    assert.equal(diffObservations(o, edit('MEM_PREPARE_ONLINE', 'status_change_nid')).ok, true);
    assert.equal(diffObservations(o, edit('MEM_FINISH_OFFLINE', 'status_change_nid_normal')).ok, true);
    const r = diffObservations(o, edit('MEM_GOING_ONLINE', 'status_change_nid'), { labels: ['guest', 'edited'] });
    assert.deepEqual(
      r.differences.map((d) => `${d.step}: ${d.text}`),
      ['3: notify memory MEM_GOING_ONLINE start_pfn=0x100000: guest has status_change_nid=1 / edited has status_change_nid=42'],
    );
  });

  it('sysfs-writes on 6.1, cut short by a harness failure: the error carries the steps so far, QEMU is gone', async () => {
    const base = await load('sysfs-writes');
    // One more step whose handler fails the way a harness does (not a kernel refusal).
    const scenario: Scenario = { ...base, steps: [...base.steps, ...parseScenario('steps: [{snapshot: boom}]').steps] };
    const err = (await runOnGuest(scenario, {
      kernel: '6.1',
      handlers: {
        snapshot: async (s, ctx) => {
          if (s.name === 'boom') throw new Error('agent went away');
          return { snapshot: await ctx.snapshot(s.name) };
        },
      },
    }).catch((e: unknown) => e)) as ScenarioRunError;
    assert.ok(err instanceof ScenarioRunError, String(err));
    assert.equal(err.step, 11);
    assert.match(err.message, /^sysfs-writes: step 11 \(snapshot boom\) failed: agent went away$/);
    const o = err.observation!;
    timing(o);
    assert.ok(o.bootMs! > 0, 'the partial observation has the boot time');
    assert.equal(o.kernel.profile, '6.1');
    assert.equal(o.steps.length, 11);
    assert.deepEqual(o.steps.filter((s) => s.unmet).map((s) => `${s.index}: ${s.unmet}`), []);
    assert.deepEqual(
      o.steps.map((s) => (s.result.status === 'error' ? s.result.errno : s.result.status)),
      ['ok', 'EINVAL', 'EINVAL', 'EINVAL', 'EINVAL', 'ok', 'EINVAL', 'EINVAL', 'ENOENT', 'n/a', 'ok'],
    );
    assert.deepEqual(o.steps.flatMap((s) => s.trace), [], 'refused and no-op writes send no event');
    assert.equal(liveGuests(), 0);
    assert.deepEqual(ourQemus(), []);
  });

  it('a machine QEMU refuses: ScenarioRunError before the first step, nothing left running', async () => {
    const s = parseScenario('machine: {memory: 16G, maxMemory: 8G}\nsteps: [snapshot]', { defaultName: 'too-big' });
    const err = (await runOnGuest(s, { kernel: '6.12' }).catch((e: unknown) => e)) as ScenarioRunError;
    assert.ok(err instanceof ScenarioRunError, String(err));
    assert.equal(err.step, -1);
    assert.match(err.message, /^too-big: cannot boot kernel 6\.12: /);
    assert.deepEqual(ourQemus(), []);
  });
});
