/**
 * Stand-ins for a guest in the fuzzer's simulator-only tests: the simulator with one deliberate lie,
 * so the divergence, its minimal scenario and its signature are known in advance.
 */
import { KernelError, type ErrnoCode } from '../../lib/errors.js';
import type { FuzzTargets } from '../../lib/fuzz/compare.js';
import { isKernelError } from '../../lib/scenario/errors.js';
import type { Observation } from '../../lib/scenario/observation.js';
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
        const lie = isKernelError(e) ? lies.find((l) => l.errno === e.code && l.path.test(s.path)) : undefined;
        if (lie) throw new KernelError(lie.instead, `${s.path}: a lie (${lie.errno} told as ${lie.instead})`);
        throw e;
      }
    },
  };
}

/** The simulator with its observation labelled as a guest's. */
async function asGuest(o: Promise<Observation>): Promise<Observation> {
  return { ...(await o), target: 'guest' };
}

/**
 * Targets where the "guest" is the simulator telling `lies` (or, with `flaky`, telling them on every
 * other run only: a guest that disagrees with itself). `calls` counts the guest runs.
 */
export function liarTargets(lies: readonly Lie[], opts: { flaky?: boolean } = {}): FuzzTargets & { calls: number } {
  const t = {
    calls: 0,
    sim: (s: Parameters<FuzzTargets['sim']>[0], kernel: Parameters<FuzzTargets['sim']>[1]) => runOnSimulator(s, { kernel }),
    guest: (s: Parameters<FuzzTargets['guest']>[0], kernel: Parameters<FuzzTargets['guest']>[1]) => {
      const lying = !opts.flaky || t.calls % 2 === 0;
      t.calls++;
      return asGuest(runOnSimulator(s, { kernel, ...(lying ? { handlers: lyingHandlers(lies) } : {}) }));
    },
  };
  return t;
}

/** The lie most tests use: an `online` write the kernel refuses EINVAL is told as E2BIG. */
export const ONLINE_EINVAL_AS_E2BIG: Lie = { path: /\/memory\d+\/online$/, errno: 'EINVAL', instead: 'E2BIG' };
