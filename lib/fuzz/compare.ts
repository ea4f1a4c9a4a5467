/**
 * One fuzz run: a scenario on the simulator and on a real guest, diffed exactly as `memhp conform`
 * does it (lib/cli/conform.ts: the simulator first, then the guest; `diffObservations(guest, sim)`
 * with the exceptions), plus the divergence's {@link Signature}.
 *
 * The snapshot cache pays only for a machine that runs again: generated machines are nearly all
 * different, and saving a booted guest costs about as much as a third of a boot. So a scenario's first
 * run boots without saving; its re-run and its shrink candidates (`repeat`) go through the cache,
 * the first of them saving the machine and the others restoring it in about half a second.
 *
 * The two sides are {@link FuzzTargets}, so the whole pipeline (shrinking, findings) also runs with two
 * simulators, one of them deliberately wrong, in the tests.
 */
import { diffObservations, type DiffReport } from '../scenario/diff.js';
import { ScenarioRunError } from '../scenario/errors.js';
import type { DivergenceException } from '../scenario/exceptions.js';
import { runOnGuest } from '../scenario/guest.js';
import type { Observation } from '../scenario/observation.js';
import { stepText, type Scenario, type ScenarioKernel } from '../scenario/schema.js';
import { runOnSimulator } from '../scenario/sim.js';
import { troubleMessage } from '../cli/sim.js';
import { crashSignature, divergenceSignature, type Signature } from './signature.js';

/** The two sides a fuzz run compares. */
export interface FuzzTargets {
  /**
   * The reference: runs a scenario on a real guest (or, in tests, on whatever stands in for one).
   * `repeat` is set when the same machine has run before and will likely run again (a re-run, a shrink candidate).
   */
  readonly guest: (s: Scenario, kernel: ScenarioKernel, repeat?: boolean) => Promise<Observation>;
  /** The side under test: the simulator. */
  readonly sim: (s: Scenario, kernel: ScenarioKernel) => Promise<Observation>;
}

/** Options of {@link defaultTargets}. */
export interface TargetOptions {
  /** Use the snapshot cache for repeated runs (default); false boots every guest, as `memhp conform --no-snapshot`. */
  snapshot?: boolean;
  /** The snapshot cache's directory (default: the shared cache, see lib/guest/snapshot.ts). */
  snapshotDir?: string;
}

/** Real guests (`runOnGuest`) against the simulator (`runOnSimulator`). */
export function defaultTargets(o: TargetOptions = {}): FuzzTargets {
  return {
    guest: (s, kernel, repeat) =>
      runOnGuest(s, { kernel, boot: { snapshot: o.snapshot !== false && repeat ? 'reuse' : 'off', prepare: { progress: false }, ...(o.snapshotDir ? { snapshotDir: o.snapshotDir } : {}) } }),
    sim: (s, kernel) => runOnSimulator(s, { kernel }),
  };
}

/** A side that could not complete its run. */
export interface RunFailure {
  /** The step it failed at (-1: before the first, e.g. a machine the model refuses or a guest that did not boot). */
  readonly step: number;
  /** The failure, as `memhp conform` prints it. */
  readonly message: string;
  /** The signature of the failure (for a simulator crash, what a shrink candidate must reproduce). */
  readonly signature: Signature;
  /** What was observed before it. */
  readonly partial?: Observation;
}

/** The outcome of one {@link compare}. */
export interface Comparison {
  /** The differ's report (when both sides completed). */
  readonly report?: DiffReport;
  /** The guest's observation. */
  readonly guest?: Observation;
  /** The simulator's observation. */
  readonly sim?: Observation;
  /** The divergence's signature; undefined when the sides agree (or one failed). */
  readonly signature?: Signature;
  /** Set when the simulator could not complete the run (a model crash: a finding of its own). */
  readonly simFailure?: RunFailure;
  /** Set when the guest could not complete the run (harness trouble, or a scenario that killed the guest). */
  readonly guestFailure?: RunFailure;
  /** Wall-clock milliseconds of the simulator run. */
  readonly simMs: number;
  /** Wall-clock milliseconds of the guest run, boot or restore included. */
  readonly guestMs: number;
}

function failure(scenario: Scenario, e: unknown): RunFailure {
  const step = e instanceof ScenarioRunError ? e.step : -1;
  const partial = e instanceof ScenarioRunError ? e.observation : undefined;
  const cause = e instanceof ScenarioRunError && e.cause instanceof Error ? e.cause.message : troubleMessage(e);
  const at = step >= 0 ? scenario.steps[step] : undefined;
  return { step, message: troubleMessage(e), signature: crashSignature(at ? stepText(at) : 'machine', cause), ...(partial ? { partial } : {}) };
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value?: T; error?: unknown; ms: number }> {
  const t0 = performance.now();
  try {
    return { value: await fn(), ms: performance.now() - t0 };
  } catch (error) {
    return { error, ms: performance.now() - t0 };
  }
}

/** Options of {@link compare}. */
export interface CompareOptions {
  /** Documented divergences, as `memhp conform --exceptions` takes them. */
  exceptions?: readonly DivergenceException[];
  /** Run only the simulator (a simulator crash's shrink candidates need no guest). */
  simOnly?: boolean;
  /** Passed to the guest target: the machine runs again (see {@link FuzzTargets.guest}). */
  repeat?: boolean;
}

/** Run `scenario` on both sides for `kernel` and diff the observations (guest first in the report, as conform does). */
export async function compare(scenario: Scenario, kernel: ScenarioKernel, targets: FuzzTargets, opts: CompareOptions = {}): Promise<Comparison> {
  // The simulator first: it takes milliseconds, and a model crash is known before a guest boots.
  const s = await timed(() => targets.sim(scenario, kernel));
  const simFailure = s.error !== undefined ? failure(scenario, s.error) : undefined;
  if (opts.simOnly) return { ...(s.value ? { sim: s.value } : {}), ...(simFailure ? { simFailure } : {}), simMs: s.ms, guestMs: 0 };
  const g = await timed(() => targets.guest(scenario, kernel, opts.repeat === true));
  const guestFailure = g.error !== undefined ? failure(scenario, g.error) : undefined;
  const base = { simMs: s.ms, guestMs: g.ms, ...(simFailure ? { simFailure } : {}), ...(guestFailure ? { guestFailure } : {}) };
  if (!s.value || !g.value) return { ...base, ...(s.value ? { sim: s.value } : {}), ...(g.value ? { guest: g.value } : {}) };
  const report = diffObservations(g.value, s.value, opts.exceptions ? { exceptions: opts.exceptions } : {});
  const signature = divergenceSignature(report, g.value, s.value);
  return { ...base, report, guest: g.value, sim: s.value, ...(signature ? { signature } : {}) };
}
