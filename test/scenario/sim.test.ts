/**
 * The simulator runner: every scenario of test/scenarios/ on each kernel it names, the machine built as the guest
 * is booted, the simulator-only steps (alloc, free, pin, unpin) with their schema, and the differ
 * catching a deliberate divergence between two simulator runs. (Guest against simulator is checked in
 * test/cli/sim.test.ts through `memhp conform`, on one real guest.)
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { LATEST } from '../../lib/kernel/profile.js';
import { diffObservations, formatDiff } from '../../lib/scenario/diff.js';
import { ScenarioError, ScenarioRunError } from '../../lib/scenario/errors.js';
import { validateExceptions } from '../../lib/scenario/exceptions.js';
import { guestBootOptions } from '../../lib/scenario/guest.js';
import type { StepObservation } from '../../lib/scenario/observation.js';
import { DEFAULT_HANDLERS } from '../../lib/scenario/run.js';
import { SCENARIO_KERNELS, loadScenario, parseScenario, stepText, type Scenario } from '../../lib/scenario/schema.js';
import { createSimMachine, runOnMachine, runOnSimulator, simMachineOptions } from '../../lib/scenario/sim.js';

const SCENARIOS = fileURLToPath(new URL('../scenarios/', import.meta.url));
const EXAMPLES = ['plug-online-movable', 'inject-going-online', 'sysfs-writes'] as const;
const load = (name: string): Promise<Scenario> => loadScenario(`${SCENARIOS}${name}.yaml`);
const results = (steps: readonly StepObservation[]): string[] =>
  steps.map((s) => (s.result.status === 'error' ? s.result.errno : s.result.status === 'ok' && s.result.value !== undefined ? s.result.value : s.result.status));

describe('simulator runner', () => {
  // Every scenario of the suite, on every kernel it names: fast, and the first thing a model change breaks.
  for (const file of readdirSync(SCENARIOS).filter((f) => /\.(ya?ml|json)$/.test(f)).sort()) {
    const scenario = parseScenario(readFileSync(`${SCENARIOS}${file}`, 'utf8'), { source: file, defaultName: file.replace(/\.\w+$/, '') });
    for (const kernel of scenario.machine.kernels) {
      it(`${scenario.name} on ${kernel}: every expectation met, no lock-validator report, model invariants hold`, async () => {
        const m = await createSimMachine(scenario, { kernel, machine: { lockdep: 'strict' } });
        try {
          const o = await runOnMachine(m, scenario);
          assert.equal(o.target, 'sim');
          assert.equal(o.kernel.profile, kernel === 'latest' ? LATEST : kernel);
          assert.equal(o.bootMs, undefined);
          assert.deepEqual(o.steps.filter((x) => x.unmet).map((x) => `${x.index} ${x.text}: ${x.unmet}`), []);
          assert.ok(o.steps.every((x) => x.result.status !== 'n/a' || x.step.op === 'sh'), 'the simulator runs every step but a guest shell script, alloc included');
          assert.deepEqual(o.steps.flatMap((x) => x.trace).filter((r) => r.type === 'lockdep'), []);
          assert.deepEqual(m.checkInvariants(), []);
        } finally {
          await m.close();
        }
      });
    }
  }

  for (const file of EXAMPLES) {
    it(`${file}: snapshots taken on every kernel`, async () => {
      for (const kernel of SCENARIO_KERNELS) {
        const o = await runOnSimulator(await load(file), { kernel });
        assert.ok(o.steps.some((x) => x.snapshot && Object.keys(x.snapshot.memory.blocks).length >= 4), kernel);
      }
    });
  }

  it('builds the machine the guest boots: same RAM, nodes, vCPUs, slots, maxmem and command line', async () => {
    const s = parseScenario('machine: {memory: 1G, nodes: 3, cpus: 4, slots: 5, maxMemory: 12G, cmdline: [memhp_default_state=online_kernel, movable_node]}\nsteps: [snapshot]');
    assert.deepEqual(simMachineOptions(s.machine, '6.12'), guestBootOptions(s.machine, '6.12'));
    const m = await createSimMachine(s, { kernel: '6.12' });
    try {
      assert.equal(m.kernel.name, '6.12');
      assert.equal(m.slots, 5);
      assert.equal(m.nodes.possible, 3);
      assert.equal(m.params.autoOnline, 'online_kernel');
      assert.equal(m.params.movableNode, true);
      assert.equal(await m.sysfs.read('/sys/devices/system/memory/auto_online_blocks'), 'online_kernel\n');
    } finally {
      await m.close();
    }
    // Default kernel: the scenario's first.
    const o = await runOnSimulator(parseScenario("machine: {kernel: ['6.1', latest]}\nsteps: [snapshot]"));
    assert.equal(o.kernel.profile, '6.1');
  });

  it('a machine the model refuses: ScenarioRunError before the first step', async () => {
    const s = parseScenario('machine: {memory: 16G, maxMemory: 8G}\nsteps: [snapshot]', { defaultName: 'too-big' });
    const err = (await runOnSimulator(s, { kernel: '6.12' }).catch((e: unknown) => e)) as ScenarioRunError;
    assert.ok(err instanceof ScenarioRunError, String(err));
    assert.equal(err.step, -1);
    assert.match(err.message, /^too-big: cannot create the simulated machine for kernel 6\.12: maxMemory .* below the boot memory/);
  });
});

describe('simulator-only steps: alloc, free, pin, unpin', () => {
  const PINNED = `
name: pinned-eject
machine: {memory: 512M, nodes: 2, cmdline: [memhp_default_state=online_movable]}
steps:
  - plug: {id: d1, size: 256M, node: 1}
  - alloc: {id: w, count: 100, order: 9, nid: 1, thisNode: true}
  - pin: w
  - unplug: {id: d1, expect: EBUSY}
  - snapshot: refused
  - unpin: w
  - unplug: {id: d1, expect: ok}
  - alloc: {count: 1, order: 9, nid: 1, thisNode: true, expect: ENOMEM}
  - alloc: {id: u, count: 4, kind: unmovable}
  - free: {id: u, expect: ok}
`;

  it('parse with an id shorthand; errors name the field; text as a kernel engineer says it', () => {
    const s = parseScenario(PINNED);
    assert.deepEqual(s.steps[2], { op: 'pin', id: 'w' });
    assert.deepEqual(s.steps[9], { op: 'free', id: 'u', expect: 'ok' });
    assert.deepEqual(parseScenario('steps: [{unpin: 7}]').steps[0], { op: 'unpin', id: '7' }, 'YAML numbers are ids as text');
    assert.deepEqual(s.steps.map(stepText).slice(1, 3), ['alloc w count=100 order=9 nid=1 __GFP_THISNODE', 'pin w']);
    assert.equal(stepText(s.steps[9]!), 'free u (expect ok)');
    assert.throws(() => parseScenario('steps: [{free: {id: w, size: 1}}]'), (e: ScenarioError) => e instanceof ScenarioError && e.issues[0]!.path === 'steps[0].free.size' && /unknown field 'size' of free/.test(e.issues[0]!.message));
    assert.throws(() => parseScenario('steps: [{pin: ""}]'), (e: ScenarioError) => e.issues[0]!.path === 'steps[0].pin.id' && e.issues[0]!.message === 'expected an allocation id');
    assert.throws(() => parseScenario('steps: [pin]'), (e: ScenarioError) => e.issues[0]!.path === 'steps[0].pin.id');
  });

  for (const kernel of SCENARIO_KERNELS) {
    it(`on ${kernel}: pinned pages make the eject fail EBUSY, unpinned they migrate away; ENOMEM is all or nothing`, async () => {
      const s = parseScenario(PINNED);
      const m = await createSimMachine(s, { kernel });
      try {
        const free0 = m.physmem.zoneInfo(0, 'DMA32')!.free;
        const o = await runOnMachine(m, s);
        assert.deepEqual(o.steps.filter((x) => x.unmet).map((x) => `${x.index} ${x.text}: ${x.unmet}`), []);
        const res = results(o.steps);
        assert.match(res[8]!, /^memory[0-3]$/, 'unmovable pages come from boot memory (node 0 is the only node left)');
        assert.deepEqual(res, ['ok', 'memory32-33', 'ok', 'EBUSY', 'ok', 'ok', 'ok', 'ENOMEM', res[8], 'ok']);
        const refused = o.steps[3]!.result;
        assert.ok(refused.status === 'error' && /memory32 cannot be offlined.*pinned/.test(refused.message), JSON.stringify(refused));
        // The refused eject re-onlined what it had offlined: the DIMM is all there, online.
        const snap = o.steps[4]!.snapshot!;
        assert.deepEqual([snap.memory.blocks.memory32?.state, snap.memory.blocks.memory33?.state], ['online', 'online']);
        // The 100 movable order-9 blocks went to node 0 when the DIMM left; the ENOMEM alloc left nothing behind.
        assert.equal(m.dimms.size, 0);
        assert.equal(m.physmem.zoneInfo(0, 'DMA32')!.free, free0 - 100 * 512);
        assert.deepEqual(m.checkInvariants(), []);
      } finally {
        await m.close();
      }
    });
  }

  it('an allocation id that was never made, made twice or freed twice ends the run (a scenario mistake, not a kernel refusal)', async () => {
    for (const [text, msg] of [
      ['steps: [{pin: w}]', /step 0 \(pin w\) failed: no allocation named 'w'/],
      ['steps: [{alloc: {id: w, count: 1}}, {alloc: {id: w, count: 1}}]', /step 1 .* allocation id 'w' is already in use/],
      ['steps: [{alloc: {id: w, count: 1}}, {free: w}, {free: w}]', /step 2 \(free w\) failed: allocation 'w' was freed at step 1/],
    ] as const) {
      const err = (await runOnSimulator(parseScenario(text), { kernel: '6.12' }).catch((e: unknown) => e)) as ScenarioRunError;
      assert.ok(err instanceof ScenarioRunError, String(err));
      assert.match(err.message, msg);
    }
  });

  it('are not applicable on a guest (the built-in handlers)', async () => {
    for (const op of ['alloc', 'free', 'pin', 'unpin'] as const) {
      const out = await (DEFAULT_HANDLERS[op] as (s: unknown, c: unknown) => Promise<{ notApplicable?: string }>)({ op, id: 'w', count: 1 }, {});
      assert.match(out.notApplicable ?? '', new RegExp(`^${op} drives the simulator's page allocator`));
    }
  });
});

describe('the differ on simulator runs', () => {
  it('an identical run shows no difference; a deliberate divergence is reported at its step, and an exception can cover it', async () => {
    const s = await load('plug-online-movable');
    const a = await runOnSimulator(s, { kernel: '6.12' });
    const same = diffObservations(a, await runOnSimulator(s, { kernel: '6.12' }), { labels: ['model', 'again'] });
    assert.equal(same.ok, true, formatDiff(same));
    // The divergence: a "model" that plugs the DIMM on node 0 instead of the node asked for.
    const b = await runOnSimulator(s, {
      kernel: '6.12',
      handlers: { plug: async (st, { target }) => target.plugDimm({ id: st.id, size: st.size, node: 0 }) },
    });
    const r = diffObservations(a, b, { labels: ['model', 'broken'] });
    assert.equal(r.ok, false);
    const text = formatDiff(r);
    assert.match(text, /^plug-online-movable on 6\.12: model vs broken: \d+ differences/);
    const plug = r.differences.filter((d) => d.step === 1);
    assert.ok(plug.some((d) => d.kind === 'trace' && /notify memory MEM_GOING_ONLINE start_pfn=0x100000: model has status_change_nid=1.* \/ broken has status_change_nid=-1/.test(d.text)), text);
    assert.ok(r.differences.some((d) => d.step === 2 && d.kind === 'snapshot' && d.text === "/sys/devices/system/node/has_memory: model '0-1' vs broken '0'"), text);
    assert.ok(r.differences.some((d) => d.step === 2 && d.text === "/sys/devices/system/memory/memory32/node*: model 'node1' vs broken 'node0'"), text);
    assert.match(text, /^step 1: plug d1 256M node=1 \(expect ok\)$/m);
    // Documented, the same divergence no longer fails the comparison.
    const ex = validateExceptions([{ name: 'wrong-node', reason: 'deliberate: the broken model ignores node', kernels: ['6.12'], scenario: 'plug-*' }]);
    const excepted = diffObservations(a, b, { labels: ['model', 'broken'], exceptions: ex });
    assert.equal(excepted.ok, true);
    assert.equal(excepted.excepted.length, r.differences.length);
  });
});
