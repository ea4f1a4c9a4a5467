/**
 * The shrinker: a diverging scenario down to a minimal one that still diverges the same way.
 *
 * 1. ddmin over the steps (Zeller and Hildebrandt, "Simplifying and Isolating Failure-Inducing Input",
 *    2002), complement form: split the steps into n chunks and drop one chunk at a time; on success
 *    go on with n - 1 chunks, else double n; it ends when single steps are tried and none can go,
 *    i.e. the scenario is 1-minimal.
 * 2. Simplify values, one at a time, keeping each change that still reproduces: the machine towards the
 *    defaults (512M, fewer nodes, 8 slots, 8G maxmem, each command-line parameter dropped), DIMMs
 *    smaller and on node 0, written strings halved, injection priority 0, module parameters and
 *    snapshot names dropped.
 *
 * "Still reproduces" is the caller's test: it runs the candidate (guest and simulator) and answers
 * with its evidence when the divergence has the same signature (signature.ts), else undefined. Every
 * distinct candidate costs one test; repeats are answered from memory. The run budget caps the tests;
 * when it (or the deadline) runs out, the smallest scenario found so far is the result.
 */
import { sizeBytes } from '../size.js';
import type { Scenario, Step } from '../scenario/schema.js';

/** Answers whether a candidate still shows the divergence: its evidence (e.g. the comparison), or undefined. */
export type ShrinkTest<T> = (candidate: Scenario) => Promise<T | undefined>;

/** Options of {@link shrinkScenario}. */
export interface ShrinkOptions {
  /** Most candidate tests (each a guest run plus a simulator run in a campaign). Default 60. */
  maxRuns?: number;
  /** `performance.now()` time after which no new test starts. */
  deadline?: number;
  /** Called after each test (progress). */
  onTest?: (e: { runs: number; steps: number; accepted: boolean }) => void;
  /**
   * Candidates to try first, in order, e.g. the scenario cut after its first differing step (later
   * steps cannot change what an earlier step observed, so that cut almost always holds).
   */
  hints?: readonly Scenario[];
}

/** What {@link shrinkScenario} found. */
export interface ShrinkResult<T> {
  /** The smallest scenario that still reproduces (the original when nothing smaller did). */
  readonly scenario: Scenario;
  /** The test's evidence for it (undefined when no candidate was accepted: the caller has the original's). */
  readonly evidence: T | undefined;
  /** Tests run (memoised repeats not counted). */
  readonly runs: number;
  /** Candidates accepted. */
  readonly accepted: number;
  /** True when the budget or the deadline stopped it before it was done. */
  readonly cutShort: boolean;
}

class OutOfBudget extends Error {}

/** The identity of a candidate for memoisation: everything but its name and description. */
const keyOf = (s: Scenario): string => JSON.stringify([s.machine, s.steps]);

/** Split `xs` into `n` nearly equal, non-empty chunks. */
function chunks<T>(xs: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < n; i++) out.push(xs.slice(Math.floor((i * xs.length) / n), Math.floor(((i + 1) * xs.length) / n)));
  return out.filter((c) => c.length > 0);
}

const MiB = 2 ** 20;

/** Simpler variants of one step, simplest first (none for steps without values to simplify). */
function simplerSteps(s: Step): Step[] {
  const out: Step[] = [];
  switch (s.op) {
    case 'plug': {
      if (s.node !== undefined) out.push({ ...s, node: undefined } as Step);
      const bytes = sizeBytes(s.size) ?? 0;
      const block = 128 * MiB;
      if (bytes > block && bytes % block === 0) {
        out.push({ ...s, size: '128M' });
        const half = Math.ceil(bytes / 2 / block) * block;
        if (half < bytes && half > block) out.push({ ...s, size: `${half / MiB}M` });
      }
      break;
    }
    case 'write':
      if (s.value.length > 2) out.push({ ...s, value: s.value.slice(0, Math.ceil(s.value.length / 2)) });
      break;
    case 'inject':
      if (s.priority !== 0) out.push({ ...s, priority: 0 });
      break;
    case 'insmod':
      if (s.params !== undefined) out.push({ op: 'insmod', module: s.module, ...(s.expect ? { expect: s.expect } : {}) });
      break;
    case 'snapshot':
      if (s.name !== undefined) out.push({ op: 'snapshot' });
      break;
    default:
      break;
  }
  // Drop the keys set to undefined so candidates compare (and print) as if written without them.
  return out.map((x) => Object.fromEntries(Object.entries(x).filter(([, v]) => v !== undefined)) as Step);
}

/** Simpler variants of the whole scenario, one change each: the machine first, then each step. */
function simplifications(s: Scenario): Scenario[] {
  const m = s.machine;
  const out: Scenario[] = [];
  const withMachine = (patch: Partial<Scenario['machine']>): Scenario => ({ ...s, machine: { ...m, ...patch } });
  if (m.memory !== '512M') out.push(withMachine({ memory: '512M' }));
  if (m.nodes > 1) out.push(withMachine({ nodes: 1 }), withMachine({ nodes: m.nodes - 1 }));
  if (m.slots !== 8) out.push(withMachine({ slots: 8 }));
  if (m.maxMemory !== '8G') out.push(withMachine({ maxMemory: '8G' }));
  if (m.cpus !== undefined) {
    const { cpus: _cpus, ...rest } = m;
    out.push({ ...s, machine: rest });
  }
  for (const k of Object.keys(m.cmdline) as (keyof typeof m.cmdline)[]) {
    const { [k]: _drop, ...cmdline } = m.cmdline;
    out.push(withMachine({ cmdline }));
  }
  s.steps.forEach((step, i) => {
    for (const simpler of simplerSteps(step)) out.push({ ...s, steps: s.steps.map((x, j) => (j === i ? simpler : x)) });
  });
  return out;
}

/**
 * Shrink `scenario` with `test` (see the module comment). The caller has checked that the original
 * reproduces; its steps are never reduced below one.
 */
export async function shrinkScenario<T>(scenario: Scenario, test: ShrinkTest<T>, opts: ShrinkOptions = {}): Promise<ShrinkResult<T>> {
  const maxRuns = opts.maxRuns ?? 60;
  const memo = new Map<string, T | undefined>();
  let runs = 0;
  let accepted = 0;
  let best = scenario;
  let evidence: T | undefined;
  const attempt = async (c: Scenario): Promise<boolean> => {
    const k = keyOf(c);
    if (!memo.has(k)) {
      if (runs >= maxRuns || (opts.deadline !== undefined && performance.now() >= opts.deadline)) throw new OutOfBudget();
      runs++;
      memo.set(k, await test(c));
      opts.onTest?.({ runs, steps: c.steps.length, accepted: memo.get(k) !== undefined });
    }
    const ev = memo.get(k);
    if (ev === undefined) return false;
    best = c;
    evidence = ev;
    accepted++;
    return true;
  };
  let cutShort = false;
  try {
    for (const h of opts.hints ?? []) if (h.steps.length > 0 && h.steps.length < best.steps.length) await attempt(h);
    // 1. ddmin over the steps.
    let n = 2;
    while (best.steps.length >= 2) {
      let reduced = false;
      const parts = chunks(best.steps, n);
      for (let i = 0; i < parts.length && !reduced; i++) {
        const rest = parts.filter((_, j) => j !== i).flat();
        if (rest.length && (await attempt({ ...best, steps: rest }))) {
          reduced = true;
          n = Math.max(n - 1, 2);
        }
      }
      if (!reduced) {
        if (n >= best.steps.length) break;
        n = Math.min(n * 2, best.steps.length);
      }
    }
    // 2. Simpler values, until a whole pass changes nothing.
    for (let changed = true; changed; ) {
      changed = false;
      for (const c of simplifications(best)) {
        if (await attempt(c)) {
          changed = true;
          break;
        }
      }
    }
  } catch (e) {
    if (!(e instanceof OutOfBudget)) throw e;
    cutShort = true;
  }
  return { scenario: best, evidence, runs, accepted, cutShort };
}
