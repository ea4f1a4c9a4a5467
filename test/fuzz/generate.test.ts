/**
 * The fuzzer's generator (lib/fuzz/generate.ts) and its PRNG (lib/fuzz/rng.ts), simulator only: every
 * generated scenario is valid and survives the YAML round trip, the same seed gives the same scenario,
 * the generator keeps its promises (no boot-block state/online writes, no page offlining of boot
 * memory, no target-specific steps, `force` only where the kernel has it), and its block writes land on
 * the blocks the plugs made.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { scenarioDocument, scenarioYaml } from '../../lib/fuzz/document.js';
import { generateScenario } from '../../lib/fuzz/generate.js';
import { mixSeed, Rng } from '../../lib/fuzz/rng.js';
import { kstrtoull } from '../../lib/kernel/kstrtox.js';
import { getProfile } from '../../lib/kernel/profile.js';
import { parseScenario, SCENARIO_KERNELS, validateScenario, type Scenario } from '../../lib/scenario/schema.js';
import { runOnSimulator } from '../../lib/scenario/sim.js';
import { sizeBytes } from '../../lib/size.js';

const BLOCK = 128 * 2 ** 20;
const kernel = fc.constantFrom(...SCENARIO_KERNELS);
const seed = fc.integer({ min: 0, max: 2 ** 32 - 1 });

/** The address a `*_offline_page` write names, if the kernel would parse one. */
function address(v: string): bigint | undefined {
  try {
    return kstrtoull(v);
  } catch {
    return undefined;
  }
}

describe('fuzz: PRNG', () => {
  it('xoshiro128** is deterministic per seed, and int() stays in range without bias to one end', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const xs = Array.from({ length: 1000 }, () => a.next());
    assert.deepEqual(Array.from({ length: 1000 }, () => b.next()), xs);
    assert.notDeepEqual(Array.from({ length: 1000 }, () => new Rng(43).next()), xs.slice(0, 1));
    const r = new Rng(7);
    const counts = [0, 0, 0, 0, 0, 0];
    for (let i = 0; i < 60_000; i++) counts[r.int(0, 5)]!++;
    for (const c of counts) assert.ok(c > 9_000 && c < 11_000, `uniform: ${counts.join(' ')}`);
    assert.ok(Array.from({ length: 1000 }, () => r.int(-3, 3)).every((x) => x >= -3 && x <= 3));
    assert.throws(() => r.weighted({ a: 0 }), RangeError);
  });

  it('mixSeed tells apart every part: seed, index, kernel', () => {
    const seeds = new Set<number>();
    for (const k of SCENARIO_KERNELS) for (let s = 0; s < 20; s++) for (let i = 0; i < 50; i++) seeds.add(mixSeed(s, i, k));
    assert.equal(seeds.size, SCENARIO_KERNELS.length * 20 * 50);
    assert.equal(mixSeed(1, 2, 'latest'), mixSeed(1, 2, 'latest'));
    assert.notEqual(mixSeed(1, 23), mixSeed(12, 3));
  });
});

describe('fuzz: scenario generator', function () {
  this.timeout(120_000);

  it('every scenario is valid, round-trips through YAML and JSON, and is the same again from its seed (3000 seeds)', () => {
    fc.assert(
      fc.property(seed, kernel, (sd, k) => {
        const s = generateScenario({ kernel: k, seed: sd });
        assert.deepEqual(validateScenario(scenarioDocument(s)), s);
        assert.deepEqual(parseScenario(scenarioYaml(s, 'a comment')), s);
        assert.deepEqual(parseScenario(JSON.stringify(scenarioDocument(s))), s);
        assert.deepEqual(generateScenario({ kernel: k, seed: sd }), s);
      }),
      { numRuns: 3000 },
    );
  });

  it('keeps its promises about machines and steps (3000 seeds)', () => {
    fc.assert(
      fc.property(seed, kernel, (sd, k) => {
        const s = generateScenario({ kernel: k, seed: sd });
        const m = s.machine;
        assert.deepEqual(m.kernels, [k]);
        assert.ok(['512M', '1G', '2G'].includes(m.memory), m.memory);
        assert.ok(m.nodes >= 1 && m.nodes <= 3);
        assert.ok(m.cpus === undefined || (m.nodes > 1 && m.cpus >= 1 && m.cpus <= m.nodes + 1), `cpus ${m.cpus} on ${m.nodes} nodes`);
        assert.ok(sizeBytes(m.maxMemory)! > sizeBytes(m.memory)!, 'maxmem above boot RAM');
        if (m.cmdline['memory_hotplug.memmap_on_memory'] === 'force') assert.ok(getProfile(k).memmapOnMemoryForce, `force on ${k}`);
        assert.ok(s.steps.length >= 6 && s.steps.length <= 20, `${s.steps.length} steps`);
        assert.ok(['snapshot', 'census'].includes(s.steps.at(-1)!.op), 'ends with a snapshot or a census');
        const bootBlocks = sizeBytes(m.memory)! / BLOCK;
        for (const st of s.steps) {
          assert.ok(!['alloc', 'free', 'pin', 'unpin', 'sh'].includes(st.op), `no ${st.op}`);
          if (st.op !== 'write') continue;
          const b = /\/memory(\d+)\/(state|online)$/.exec(st.path);
          if (b) assert.ok(Number(b[1]) >= bootBlocks, `${st.path}: a boot block`);
          if (/_offline_page$/.test(st.path)) {
            const a = address(st.value);
            assert.ok(a === undefined || a >= 4n * 2n ** 30n, `${st.path} ${JSON.stringify(st.value)}: boot memory`);
          }
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('different seeds give different scenarios, with the odd values the brief asks for', () => {
    const all: Scenario[] = Array.from({ length: 2000 }, (_, i) => generateScenario({ kernel: 'latest', seed: i }));
    const distinct = new Set(all.map((s) => JSON.stringify([s.machine, s.steps])));
    assert.ok(distinct.size >= 1990, `${distinct.size} distinct of 2000`);
    const values = all.flatMap((s) => s.steps.flatMap((st) => (st.op === 'write' ? [st.value] : [])));
    const has = (what: string, p: (v: string) => boolean): void => assert.ok(values.some(p), `some value with ${what}`);
    has('a NUL in the middle', (v) => /.\0./.test(v));
    has('a leading newline', (v) => v.startsWith('\n') && v.length > 1);
    has('a trailing space', (v) => /\S $/.test(v));
    has('a sign', (v) => /^[+-]\d/.test(v));
    has('a 0x base', (v) => /^-?0[xX][0-9a-fA-F]/.test(v));
    has('an octal number', (v) => /^0[0-7]+$/.test(v));
    has('a string longer than a page', (v) => v.length > 4096);
    has('the empty string', (v) => v === '');
    const steps = all.flatMap((s) => s.steps);
    const plugs = steps.flatMap((st) => (st.op === 'plug' ? [st] : []));
    assert.ok(plugs.some((p) => (sizeBytes(p.size)! % BLOCK) !== 0), 'unaligned DIMMs');
    assert.ok(plugs.some((p) => sizeBytes(p.size)! >= 16 * 2 ** 30), 'DIMMs too big for maxmem');
    const injects = steps.flatMap((st) => (st.op === 'inject' ? [st] : []));
    assert.ok(injects.some((i) => i.errno === 'E4095') && injects.some((i) => /^E\d+$/.test(i.errno)), 'errno numbers up to 4095');
    assert.ok(injects.some((i) => i.priority < 0) && injects.some((i) => i.priority >= 2147483647), 'negative and INT_MAX-ish priorities');
    assert.ok(steps.some((st) => st.op === 'rmmod' && st.module === 'notifier-error-inject'), 'unloads in orders that fail');
    assert.ok(all.some((s) => s.machine.cpus !== undefined && s.machine.cpus < s.machine.nodes), 'nodes without a vCPU');
    assert.ok(all.some((s) => s.machine.cpus !== undefined && s.machine.cpus > s.machine.nodes), 'more vCPUs than nodes');
  });

  it('on the simulator, block writes land on the blocks the plugs made, and most steps touch hot-plugged memory', async () => {
    let blockWrites = 0;
    let landed = 0;
    let hotSteps = 0;
    let steps = 0;
    for (let i = 0; i < 150; i++) {
      const k = SCENARIO_KERNELS[i % SCENARIO_KERNELS.length]!;
      const s = generateScenario({ kernel: k, seed: mixSeed(99, i, k) });
      const o = await runOnSimulator(s, { kernel: k });
      assert.equal(o.steps.length, s.steps.length, 'the simulator ran every step');
      for (const st of o.steps) {
        steps++;
        const path = st.step.op === 'write' || st.step.op === 'read' ? st.step.path : '';
        const b = /\/memory(\d+)\//.exec(path);
        if (st.step.op === 'plug' || st.step.op === 'unplug' || (b && Number(b[1]) >= 32) || /_offline_page$/.test(path)) hotSteps++;
        if (st.step.op === 'write' && /\/memory\d+\/(state|online)$/.test(path)) {
          blockWrites++;
          if (!(st.result.status === 'error' && st.result.errno === 'ENOENT')) landed++;
        }
      }
    }
    assert.ok(landed / blockWrites > 0.75, `${landed} of ${blockWrites} block writes found their block`);
    assert.ok(hotSteps / steps > 0.5, `${hotSteps} of ${steps} steps touch hot-plugged memory`);
  });
});

