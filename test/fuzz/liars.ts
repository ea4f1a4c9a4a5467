/**
 * Stand-ins for a guest in the fuzzer's simulator-only tests: the simulator with one deliberate lie,
 * so the divergence, its minimal scenario and its signature are known in advance.
 */
import { KernelError, type ErrnoCode } from '../../lib/errors.js';
import type { FuzzTargets } from '../../lib/fuzz/compare.js';
import type { Observation, Snapshot } from '../../lib/scenario/observation.js';
import { DEFAULT_HANDLERS, type StepHandlers } from '../../lib/scenario/run.js';
import { runOnSimulator } from '../../lib/scenario/sim.js';

/** A lie: a write to a path matching `path` that fails with `errno` is reported as failing with `instead`. */
export interface Lie {
  path: RegExp;
  errno: ErrnoCode;
  instead: ErrnoCode;
}

/** Write handlers that tell the lies. */
function lyingHandlers(lies: readonly Lie[]): StepHandlers {
  return {
    write: async (s, ctx) => {
      try {
        await DEFAULT_HANDLERS.write(s, ctx);
      } catch (e) {
        const lie = e instanceof KernelError ? lies.find((l) => l.errno === e.code && l.path.test(s.path)) : undefined;
        if (lie) throw new KernelError(lie.instead, `${s.path}: a lie (${lie.errno} told as ${lie.instead})`);
        throw e;
      }
    },
  };
}

/** A snapshot with `kB` more MemTotal: a guest that booted with a page more or less for itself. */
function moreMemTotal(s: Snapshot, kB: number): Snapshot {
  const t = s.ram && typeof s.ram.memTotal === 'string' ? /^(\d+) kB$/.exec(s.ram.memTotal) : null;
  return t && s.ram ? { ...s, ram: { ...s.ram, memTotal: `${Number(t[1]) + kB} kB` } } : s;
}

/** A census with `kB` more MemTotal. */
function censusMoreMemTotal(c: Readonly<Record<string, string>>, kB: number): Record<string, string> {
  const t = /^(\d+) kB$/.exec(c['/proc/meminfo MemTotal'] ?? '');
  return t ? { ...c, '/proc/meminfo MemTotal': `${Number(t[1]) + kB} kB` } : { ...c };
}

/** The simulator with its observation labelled as a guest's (and with `jitter` kB more MemTotal in every snapshot). */
async function asGuest(p: Promise<Observation>, jitter = 0): Promise<Observation> {
  const o = await p;
  if (!jitter) return { ...o, target: 'guest' };
  return {
    ...o,
    target: 'guest',
    ...(o.baseline ? { baseline: moreMemTotal(o.baseline, jitter) } : {}),
    steps: o.steps.map((st) => (st.snapshot ? { ...st, snapshot: moreMemTotal(st.snapshot, jitter) } : st.census ? { ...st, census: censusMoreMemTotal(st.census, jitter) } : st)),
  };
}

/**
 * Targets where the "guest" is the simulator telling `lies` (or, with `flaky`, telling them on every
 * other run only: a guest that disagrees with itself). With `bootJitter` every other guest run has a
 * page more MemTotal, baseline included, as two boots of one machine may. `calls` counts the guest runs.
 */
export function liarTargets(lies: readonly Lie[], opts: { flaky?: boolean; bootJitter?: boolean } = {}): FuzzTargets & { calls: number } {
  const t = {
    calls: 0,
    sim: (s: Parameters<FuzzTargets['sim']>[0], kernel: Parameters<FuzzTargets['sim']>[1]) => runOnSimulator(s, { kernel }),
    guest: (s: Parameters<FuzzTargets['guest']>[0], kernel: Parameters<FuzzTargets['guest']>[1]) => {
      const lying = !opts.flaky || t.calls % 2 === 0;
      const jitter = opts.bootJitter && t.calls % 2 === 1 ? 4 : 0;
      t.calls++;
      return asGuest(runOnSimulator(s, { kernel, ...(lying ? { handlers: lyingHandlers(lies) } : {}) }), jitter);
    },
  };
  return t;
}

/** The lie most tests use: an `online` write the kernel refuses EINVAL is told as E2BIG. */
export const ONLINE_EINVAL_AS_E2BIG: Lie = { path: /\/memory\d+\/online$/, errno: 'EINVAL', instead: 'E2BIG' };
