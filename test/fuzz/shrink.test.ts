/**
 * The shrinker (lib/fuzz/shrink.ts) and the divergence signature (lib/fuzz/signature.ts), on the
 * simulator only: the "guest" is the simulator with a deliberate lie (test/fuzz/liars.ts), so the
 * minimal scenario is known — ddmin must find it, simplify the machine and values around it, and never
 * trade the divergence it was given for another one.
 */
import assert from 'node:assert/strict';
import { compare, type FuzzTargets } from '../../lib/fuzz/compare.js';
import { generateScenario } from '../../lib/fuzz/generate.js';
import { shrinkScenario } from '../../lib/fuzz/shrink.js';
import { maskNumbers } from '../../lib/fuzz/signature.js';
import { mixSeed } from '../../lib/fuzz/rng.js';
import { parseScenario, type Scenario, type ScenarioKernel } from '../../lib/scenario/schema.js';
import { liarTargets, ONLINE_EINVAL_AS_E2BIG } from './liars.js';

/** The shrink test a campaign uses: the candidate diverges with the same signature. */
function sameDivergence(targets: FuzzTargets, kernel: ScenarioKernel, key: string) {
  return async (c: Scenario) => {
    const r = await compare(c, kernel, targets);
    return r.signature?.key === key ? r : undefined;
  };
}

const NOISY = parseScenario(`
name: noisy
machine: {kernel: [latest], memory: 1G, nodes: 3, slots: 2, maxMemory: 4G, cmdline: [memhp_default_state=online_movable, memory_hotplug.online_policy=auto-movable, movable_node]}
steps:
  - read: /sys/devices/system/node/has_memory
  - plug: {id: d1, size: 256M, node: 2}
  - write: {path: /sys/module/memory_hotplug/parameters/auto_movable_ratio, value: '0x10'}
  - plug: {id: d2, size: 512M, node: 1}
  - write: {path: /sys/devices/system/memory/memory34/state, value: offline}
  - snapshot: {name: mid}
  - inject: {action: MEM_GOING_ONLINE, errno: ENOMEM, priority: 100}
  - write: {path: /sys/devices/system/memory/memory34/state, value: online_movable}
  - uninject
  - read: /sys/devices/system/memory/memory33/valid_zones
  - write: {path: /sys/devices/system/memory/memory33/online, value: "bogus\\nvalue"}
  - write: {path: /sys/devices/system/memory/auto_online_blocks, value: offline}
  - unplug: d2
  - snapshot
`);

describe('fuzz: divergence signature', () => {
  it('masks every number, so a moved DIMM or renumbered block is the same divergence', () => {
    assert.equal(maskNumbers('/sys/devices/system/memory/memory33/state'), '/sys/devices/system/memory/memory#/state');
    assert.equal(maskNumbers('notify memory MEM_ONLINE start_pfn=0x108000'), 'notify memory MEM_ONLINE start_pfn=#');
  });

  it('is taken at the first differing step: the op, the path and the errno pair', async () => {
    const r = await compare(NOISY, 'latest', liarTargets([ONLINE_EINVAL_AS_E2BIG]));
    assert.equal(r.signature?.key, 'write /sys/devices/system/memory/memory#/online | result E2BIG/EINVAL');
    const moved = parseScenario(`
machine: {kernel: [latest]}
steps:
  - plug: {id: x, size: 1G}
  - write: {path: /sys/devices/system/memory/memory39/online, value: xyz}
`);
    assert.equal((await compare(moved, 'latest', liarTargets([ONLINE_EINVAL_AS_E2BIG]))).signature?.key, r.signature?.key);
  });
});

describe('fuzz: shrinker', function () {
  this.timeout(120_000);

  it('ddmin finds the two steps a synthetic failure needs among 16, and they are 1-minimal', async () => {
    const steps = Array.from({ length: 16 }, (_, i) => `  - read: /sys/devices/system/memory/memory${i}/state`).join('\n');
    const s = parseScenario(`name: synthetic\nsteps:\n${steps}\n`);
    const needs = (c: Scenario): boolean => ['memory3/', 'memory11/'].every((p) => c.steps.some((x) => x.op === 'read' && x.path.includes(p)));
    let tests = 0;
    const r = await shrinkScenario(s, async (c) => (tests++, needs(c) ? c.steps.length : undefined));
    assert.deepEqual(r.scenario.steps.map((x) => (x.op === 'read' ? x.path : x.op)), ['/sys/devices/system/memory/memory3/state', '/sys/devices/system/memory/memory11/state']);
    assert.equal(r.runs, tests);
    assert.ok(r.runs <= 40, `${r.runs} tests`);
    assert.equal(r.cutShort, false);
  });

  it('tries its hints first: a cut after the first difference saves most of ddmin', async () => {
    const steps = Array.from({ length: 16 }, (_, i) => `  - read: /sys/devices/system/memory/memory${i}/state`).join('\n');
    const s = parseScenario(`name: synthetic\nsteps:\n${steps}\n`);
    const tried: number[] = [];
    const needs = async (c: Scenario) => (tried.push(c.steps.length), c.steps.some((x) => x.op === 'read' && x.path.includes('memory2/')) ? true : undefined);
    const plain = await shrinkScenario(s, needs);
    const plainRuns = tried.length;
    tried.length = 0;
    const hinted = await shrinkScenario(s, needs, { hints: [{ ...s, steps: s.steps.slice(0, 3) }] });
    assert.equal(tried[0], 3, 'the hint is the first candidate');
    assert.deepEqual(hinted.scenario.steps, plain.scenario.steps);
    assert.equal(hinted.scenario.steps.length, 1);
    assert.ok(hinted.runs < plainRuns, `${hinted.runs} runs with the hint, ${plainRuns} without`);
  });

  it('stops at its run budget with the smallest scenario found so far', async () => {
    const r = await shrinkScenario(NOISY, async (c) => (c.steps.length > 3 ? true : undefined), { maxRuns: 3 });
    assert.equal(r.runs, 3);
    assert.equal(r.cutShort, true);
    assert.ok(r.scenario.steps.length < NOISY.steps.length && r.scenario.steps.length > 3);
  });

  it('shrinks a lying online errno to plug + write on a default machine, with a shorter value', async () => {
    const targets = liarTargets([ONLINE_EINVAL_AS_E2BIG]);
    const first = await compare(NOISY, 'latest', targets);
    const r = await shrinkScenario(NOISY, sameDivergence(targets, 'latest', first.signature!.key));
    const min = r.scenario;
    assert.deepEqual(min.steps.map((x) => x.op), ['plug', 'write']);
    assert.ok(min.steps[0]!.op === 'plug' && min.steps[0].size === '256M' && min.steps[0].node === undefined, 'a 256M DIMM on node 0: the smallest that has memory33');
    assert.equal(min.steps[1]!.op === 'write' && min.steps[1].path, '/sys/devices/system/memory/memory33/online');
    assert.ok(min.steps[1]!.op === 'write' && min.steps[1].value.length <= 3, 'the value was halved');
    assert.deepEqual({ ...min.machine }, { kernels: ['latest'], memory: '512M', nodes: 1, slots: 8, maxMemory: '8G', cmdline: {} });
    assert.equal(r.evidence?.signature?.key, first.signature!.key);
    assert.equal(r.cutShort, false);
  });

  it('generated scenarios with the lie shrink to at most three steps ending in the lying write (the plugs that make its block, the write)', async () => {
    const targets = liarTargets([ONLINE_EINVAL_AS_E2BIG]);
    let shrunk = 0;
    for (let i = 0; i < 300 && shrunk < 6; i++) {
      const k: ScenarioKernel = (['6.1', '6.12', 'latest'] as const)[i % 3];
      const s = generateScenario({ kernel: k, seed: mixSeed(5, i, k) });
      const c = await compare(s, k, targets);
      if (!c.signature) continue;
      shrunk++;
      const r = await shrinkScenario(s, sameDivergence(targets, k, c.signature.key));
      const last = r.scenario.steps.at(-1)!;
      assert.ok(r.scenario.steps.length <= 3 && r.scenario.steps.slice(0, -1).every((x) => x.op === 'plug'), `${s.name}: ${r.scenario.steps.length} steps left`);
      assert.ok(last.op === 'write' && /\/online$/.test(last.path), `${s.name}: ends in ${last.op}`);
      assert.ok(r.runs <= 60);
    }
    assert.equal(shrunk, 6, 'six generated scenarios showed the lie');
  });

  it('keeps to the divergence it was given: a second lie in the same scenario is never traded for it', async () => {
    const targets = liarTargets([ONLINE_EINVAL_AS_E2BIG, { path: /auto_online_blocks$/, errno: 'EINVAL', instead: 'ENOSPC' }]);
    const s = parseScenario(`
machine: {kernel: [latest]}
steps:
  - plug: {id: d1, size: 128M}
  - write: {path: /sys/devices/system/memory/auto_online_blocks, value: sideways}
  - write: {path: /sys/devices/system/memory/memory32/online, value: sideways}
  - snapshot
`);
    const c = await compare(s, 'latest', targets);
    assert.equal(c.signature?.key, 'write /sys/devices/system/memory/auto_online_blocks | result ENOSPC/EINVAL');
    const r = await shrinkScenario(s, sameDivergence(targets, 'latest', c.signature!.key));
    assert.deepEqual(r.scenario.steps.map((x) => (x.op === 'write' ? x.path : x.op)), ['/sys/devices/system/memory/auto_online_blocks']);
  });
});
