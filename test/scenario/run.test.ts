/**
 * The runner's own mechanics, on a recording stand-in for the HotplugTarget interface (not a model
 * of any kernel, and not QEMU: real behaviour is checked on guests in guest.test.ts). What it checks:
 * the calls each step makes, results and unmet expectations, trace slicing per step, snapshots built
 * from sysfs.list/read, and how a non-kernel failure ends a run.
 */
import assert from 'node:assert/strict';
import { KernelError } from '../../lib/errors.js';
import { Machine } from '../../lib/kernel/machine.js';
import { getProfile, type KernelProfile } from '../../lib/kernel/profile.js';
import type { HotplugTarget, SysfsAccess } from '../../lib/kernel/target.js';
import { Trace } from '../../lib/kernel/trace.js';
import { ScenarioRunError } from '../../lib/scenario/errors.js';
import { INJECT_DIR, runScenario } from '../../lib/scenario/run.js';
import { kernelCmdline, loadScenario, parseScenario } from '../../lib/scenario/schema.js';

/** Files by path; directories are implied by paths. Writes are recorded; `refuse` maps a path to the errno its writes get. */
class RecordingTarget implements HotplugTarget {
  readonly kernel: KernelProfile = getProfile('6.12');
  readonly trace = new Trace();
  readonly calls: string[] = [];
  readonly files = new Map<string, string>();
  readonly refuse = new Map<string, 'EINVAL' | 'EBUSY'>();
  readonly sysfs: SysfsAccess = {
    read: async (p) => {
      const v = this.files.get(p);
      if (v === undefined) throw new KernelError('ENOENT', `${p}: no such file`);
      return v;
    },
    write: async (p, v) => {
      this.calls.push(`write ${p} ${v}`);
      const e = this.refuse.get(p);
      if (e) throw new KernelError(e, `${p}: refused`);
      this.files.set(p, `${v}\n`);
      this.trace.add({ type: 'uevent', action: 'change', devpath: p });
    },
    list: async (p) => {
      const names = new Set<string>();
      for (const f of this.files.keys()) if (f.startsWith(`${p}/`)) names.add(f.slice(p.length + 1).split('/')[0]!);
      if (names.size === 0) throw new KernelError('ENOENT', `${p}: cannot list`);
      return [...names].sort();
    },
    // Files only (directories are implied): enough for the runner, which only passes walks through.
    walk: async (roots) => [...this.files].filter(([f]) => roots.some((r) => f.startsWith(`${r}/`))).sort().map(([path, value]) => ({ path, type: 'file' as const, mode: 0o644, value })),
  };
  constructor() {
    const mem = '/sys/devices/system/memory';
    this.files.set(`${mem}/block_size_bytes`, '8000000\n');
    this.files.set(`${mem}/auto_online_blocks`, 'offline\n');
    for (const [a, v] of Object.entries({ online: '1', phys_device: '0', phys_index: '00000001', removable: '1', state: 'online', valid_zones: 'DMA32' })) this.files.set(`${mem}/memory1/${a}`, `${v}\n`);
    this.files.set(`${mem}/memory1/node0`, '(link)');
    this.files.set('/sys/devices/system/node/has_memory', '0\n');
    this.files.set('/sys/devices/system/node/has_normal_memory', '0\n');
    this.files.set('/sys/devices/system/node/node0/memory1', '(link)');
  }
  async plugDimm(d: { id: string; size: bigint | string; node?: number }): Promise<void> {
    this.calls.push(`plug ${d.id} ${String(d.size)} ${d.node ?? '-'}`);
    this.trace.add({ type: 'notify', chain: 'memory', action: 'MEM_GOING_ONLINE', value: 3, start_pfn: 0x100000 });
  }
  async unplugDimm(id: string): Promise<void> {
    this.calls.push(`unplug ${id}`);
    if (id === 'stuck') throw new Error('QMP connection lost');
    throw new KernelError('EBUSY', `${id}: guest refused the unplug`);
  }
  async loadModule(name: string, params?: Record<string, string | number>): Promise<void> {
    this.calls.push(`insmod ${name}${Object.entries(params ?? {}).map(([k, v]) => ` ${k}=${v}`).join('')}`);
  }
  async unloadModule(name: string): Promise<void> {
    this.calls.push(`rmmod ${name}`);
  }
  async close(): Promise<void> {}
}

const ERR = `${INJECT_DIR}/MEM_GOING_ONLINE/error`;
const ERR_OFF = `${INJECT_DIR}/MEM_GOING_OFFLINE/error`;

describe('scenario runner', () => {
  it('makes the calls each step stands for, records results and unmet expectations', async () => {
    const t = new RecordingTarget();
    t.refuse.set('/sys/devices/system/memory/memory1/state', 'EINVAL');
    const s = parseScenario(`
name: mechanics
steps:
  - plug: {id: d1, size: 1G, node: 1}
  - inject: {action: MEM_GOING_ONLINE, errno: ENOMEM}
  - inject: {action: MEM_GOING_OFFLINE, errno: -16}
  - inject: {action: MEM_GOING_OFFLINE, errno: EBUSY, priority: 100}
  - uninject: MEM_GOING_OFFLINE
  - uninject
  - write: {path: /sys/devices/system/memory/memory1/state, value: offline, expect: EBUSY}
  - read: {path: /sys/devices/system/memory/memory1/valid_zones, value: Normal}
  - read: /sys/devices/system/memory/memory9/state
  - unplug: {id: d1, expect: EBUSY}
  - alloc: {count: 1, expect: ENOMEM}
  - rmmod: memory-notifier-error-inject
  - inject: {action: MEM_GOING_ONLINE, errno: E1000}
`);
    const o = await runScenario(t, s);
    assert.equal(o.target, 'sim');
    assert.deepEqual(o.kernel, { profile: '6.12', release: t.kernel.release });
    assert.deepEqual(t.calls, [
      'plug d1 1G 1',
      'insmod notifier-error-inject',
      'insmod memory-notifier-error-inject priority=0',
      `write ${ERR} -12`,
      `write ${ERR_OFF} -16`,
      // Another priority is another module load; the base module stays.
      'rmmod memory-notifier-error-inject',
      'insmod memory-notifier-error-inject priority=100',
      `write ${ERR_OFF} -16`,
      `write ${ERR_OFF} 0`,
      `write ${ERR} 0`,
      `write ${ERR_OFF} 0`,
      'write /sys/devices/system/memory/memory1/state offline',
      'unplug d1',
      'rmmod memory-notifier-error-inject',
      'insmod memory-notifier-error-inject priority=0',
      `write ${ERR} -1000`,
    ]);
    const res = o.steps.map((x) => (x.result.status === 'error' ? x.result.errno : x.result.status === 'ok' && x.result.value !== undefined ? x.result.value : x.result.status));
    assert.deepEqual(res, ['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'EINVAL', 'DMA32\n', 'ENOENT', 'EBUSY', 'n/a', 'ok', 'ok']);
    assert.deepEqual(
      o.steps.filter((x) => x.unmet).map((x) => `${x.index}: ${x.unmet}`),
      ['6: expected EBUSY, got EINVAL', '7: expected "Normal", read "DMA32"'],
      'an n/a step is not held to its expectation',
    );
    // Each step has the records made during it, and only those.
    assert.deepEqual(o.steps[0]!.trace, [{ type: 'notify', chain: 'memory', action: 'MEM_GOING_ONLINE', value: 3, start_pfn: 0x100000 }]);
    assert.deepEqual(o.steps[1]!.trace.map((r) => r.devpath), [ERR]);
    assert.deepEqual(o.steps[6]!.trace, [], 'a refused write records nothing');
    assert.ok(o.steps.every((x) => x.ms >= 0));
  });

  it('builds snapshots from sysfs.list and sysfs.read, /proc and the firmware map included', async () => {
    const t = new RecordingTarget();
    t.files.set('/proc/zoneinfo', 'Node 0, zone      DMA\n  pages free     3\n        spanned  4095\n        present  3998\n        managed  3840\n  start_pfn:           1\nNode 0, zone  Movable\n        spanned  0\n        present  0\n        managed  0\n');
    t.files.set('/proc/meminfo', 'MemTotal:          15360 kB\nMemFree:            1024 kB\n');
    t.files.set('/proc/iomem', '00000000-00000fff : Reserved\n00001000-0009fbff : System RAM\n  01000000-01ffffff : Kernel code\n');
    for (const [a, v] of Object.entries({ start: '0x0', end: '0x9fbff', type: 'System RAM' })) t.files.set(`/sys/firmware/memmap/0/${a}`, `${v}\n`);
    const o = await runScenario(t, parseScenario('steps: [{snapshot: now}]'), { kind: 'guest', release: 'x' });
    assert.deepEqual(o.steps[0]!.snapshot, {
      name: 'now',
      memory: {
        block_size_bytes: '8000000',
        auto_online_blocks: 'offline',
        blocks: { memory1: { online: '1', phys_device: '0', phys_index: '00000001', removable: '1', state: 'online', valid_zones: 'DMA32', nodes: ['node0'] } },
      },
      node: { has_memory: '0', has_normal_memory: '0', nodes: { node0: ['memory1'] } },
      ram: {
        zoneinfo: { node0: { DMA: { spanned: '4095', present: '3998', managed: '3840', start_pfn: '1' }, Movable: { spanned: '0', present: '0', managed: '0' } } },
        memTotal: '15360 kB',
        iomem: { '00001000-0009fbff': 'System RAM' },
        memmap: { 0: { start: '0x0', end: '0x9fbff', type: 'System RAM' } },
      },
    });
    assert.equal(o.target, 'guest');
    // A target without these files: their errnos, and no firmware map.
    const bare = await runScenario(new RecordingTarget(), parseScenario('steps: [snapshot]'));
    assert.deepEqual(bare.steps[0]!.snapshot!.ram, { zoneinfo: { errno: 'ENOENT' }, memTotal: { errno: 'ENOENT' }, iomem: { errno: 'ENOENT' }, memmap: {} });
  });

  it('takes a baseline snapshot before step 0; a failing one ends the run at step -1', async () => {
    const t = new RecordingTarget();
    const o = await runScenario(t, parseScenario('steps: [{write: {path: /sys/devices/system/memory/auto_online_blocks, value: online}}, snapshot]'));
    assert.equal(o.baseline?.name, 'baseline');
    assert.equal(o.baseline?.memory.auto_online_blocks, 'offline');
    assert.equal(o.steps[1]!.snapshot!.memory.auto_online_blocks, 'online');
    const err = (await runScenario(t, parseScenario('name: nobase\nsteps: [snapshot]'), {
      snapshot: async () => {
        throw new Error('agent went away');
      },
    }).catch((e: unknown) => e)) as ScenarioRunError;
    assert.ok(err instanceof ScenarioRunError, String(err));
    assert.equal(err.step, -1);
    assert.equal(err.message, 'nobase: baseline snapshot before step 0 failed: agent went away');
    assert.deepEqual(err.observation?.steps, []);
  });

  it('a handler replaces a built-in one (as the simulator runner will for alloc)', async () => {
    const t = new RecordingTarget();
    const o = await runScenario(t, parseScenario('steps: [{alloc: {count: 4, kind: pinned}}]'), {
      handlers: {
        alloc: async (s) => {
          if (s.kind === 'pinned') throw new KernelError('ENOMEM', 'no memory');
        },
      },
    });
    assert.deepEqual(o.steps[0]!.result, { status: 'error', errno: 'ENOMEM', message: 'no memory' });
  });

  it('a KernelError of another copy of memhp (a dynamic import under tsx) is still a kernel refusal; a look-alike is not', async () => {
    const other = (await import(`${new URL('../../lib/errors.js', import.meta.url).href}?copy=run`)) as typeof import('../../lib/errors.js');
    const s = parseScenario('steps: [{alloc: {count: 1}}, {alloc: {count: 2}}]');
    const o = await runScenario(new RecordingTarget(), { ...s, steps: s.steps.slice(0, 1) }, { handlers: { alloc: async () => Promise.reject(new other.KernelError('EBUSY', 'refused')) } });
    assert.deepEqual(o.steps[0]!.result, { status: 'error', errno: 'EBUSY', message: 'refused' });
    const lookAlike = Object.assign(new Error('refused'), { name: 'KernelError', code: 'EBUSY' });
    await assert.rejects(runScenario(new RecordingTarget(), s, { handlers: { alloc: async () => Promise.reject(lookAlike) } }), ScenarioRunError);
  });

  it('a failure that is not the kernel ends the run with the steps so far', async () => {
    const t = new RecordingTarget();
    const seen: number[] = [];
    const err = (await runScenario(t, parseScenario('name: cut\nsteps: [snapshot, {unplug: stuck}, snapshot]'), { onStep: (s) => seen.push(s.index) }).catch((e: unknown) => e)) as ScenarioRunError;
    assert.ok(err instanceof ScenarioRunError);
    assert.equal(err.step, 1);
    assert.equal(err.message, 'cut: step 1 (unplug stuck) failed: QMP connection lost');
    assert.equal((err.cause as Error).message, 'QMP connection lost');
    assert.equal(err.observation!.steps.length, 1);
    assert.deepEqual(seen, [0]);
  });
});

describe('scenario runner on the simulated Machine', () => {
  // The runner is written once: the simulator's Machine runs the example scenarios through it
  // unchanged. (The simulator runner proper, with alloc and the differ against a guest, comes later.)
  for (const [file, kernel] of [['plug-online-movable', 'latest'], ['inject-going-online', '6.12'], ['sysfs-writes', '6.1']] as const) {
    it(`${file} on ${kernel}: every expectation met, snapshots taken, no lock-validator report`, async () => {
      const s = await loadScenario(new URL(`../scenarios/${file}.yaml`, import.meta.url).pathname);
      const m = s.machine;
      const machine = await Machine.create({ kernel, memory: m.memory, nodes: m.nodes, slots: m.slots, maxMemory: m.maxMemory, cmdline: kernelCmdline(m.cmdline) });
      try {
        const o = await runScenario(machine, s);
        assert.deepEqual(o.steps.filter((x) => x.unmet).map((x) => `${x.index} ${x.text}: ${x.unmet}`), []);
        assert.ok(o.steps.some((x) => x.snapshot && Object.keys(x.snapshot.memory.blocks).length >= 4));
        assert.deepEqual(o.steps.flatMap((x) => x.trace).filter((r) => r.type === 'lockdep'), []);
      } finally {
        await machine.close();
      }
    });
  }
});
