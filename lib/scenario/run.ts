/**
 * The scenario runner, written once against {@link HotplugTarget}: the simulator's Machine and a QEMU
 * Guest run the same steps through the same code, so their observations compare like with like.
 *
 * A kernel refusal (a KernelError) is a step's result, never the end of a run. Anything else
 * (QEMU gone, QMP refused, agent timeout) stops the run with a {@link ScenarioRunError} holding what was
 * observed so far.
 */
import { errnoNumber, KernelError } from '../errors.js';
import type { HotplugTarget } from '../kernel/target.js';
import { ScenarioRunError } from './errors.js';
import type { Observation, Snapshot, StepObservation, StepResult, TargetKind } from './observation.js';
import { stepText, type InjectAction, type Scenario, type Step, type StepOp } from './schema.js';
import { takeCensus, type Census } from './census.js';
import { takeSnapshot, type Snapshotter } from './snapshot.js';

/** The debugfs directory of the memory notifier error-injection module. */
export const INJECT_DIR = '/sys/kernel/debug/notifier-error-inject/memory/actions';
/** The module the `inject` step loads (after its base module `notifier-error-inject`). */
export const INJECT_MODULE = 'memory-notifier-error-inject';
/** The module `memory-notifier-error-inject` depends on; loaded first, as busybox insmod does not resolve dependencies. */
export const INJECT_BASE_MODULE = 'notifier-error-inject';

/** What a step handler reports besides success: a read's text, a snapshot, or why the step does not apply. */
export interface StepOutcome {
  /** The text a read returned. */
  value?: string;
  /** The snapshot a `snapshot` step took. */
  snapshot?: Snapshot;
  /** The census a `census` step took. */
  census?: Census;
  /** Set when the step cannot run on this target (e.g. `alloc` on a guest): why. */
  notApplicable?: string;
}

/** Mutable state a run carries between steps. */
export interface RunState {
  /** The `priority` parameter the injection module was loaded with, or undefined when it is not loaded. */
  injectPriority: number | undefined;
  /** Whether the run loaded the injection base module. */
  injectBaseLoaded: boolean;
}

/** What a step handler gets besides its step. */
export interface StepContext {
  /** The target the run drives. */
  readonly target: HotplugTarget;
  /** The scenario being run. */
  readonly scenario: Scenario;
  /** The step's index. */
  readonly index: number;
  /** State shared by the steps of this run. */
  readonly state: RunState;
  /** Takes a snapshot of the target. */
  readonly snapshot: Snapshotter;
}

/** Runs one kind of step. Throwing a KernelError makes it the step's result; anything else ends the run. */
export type StepHandler<S extends Step = Step> = (step: S, ctx: StepContext) => Promise<StepOutcome | void>;

/** Handlers by step operation; a runner for a particular target overrides some (the simulator: `alloc`). */
export type StepHandlers = { [K in StepOp]?: StepHandler<Extract<Step, { op: K }>> };

/** Options of {@link runScenario}. */
export interface RunOptions {
  /** Which kind of target this is (the differ uses it to pick normalisations). Default 'sim'. */
  kind?: TargetKind;
  /** The kernel release to record. Default: the target profile's release. */
  release?: string;
  /** Handlers replacing or adding to the built-in ones. */
  handlers?: StepHandlers;
  /** How to take a snapshot. Default: {@link takeSnapshot} over `target.sysfs`. */
  snapshot?: Snapshotter;
  /** Called after each step (progress output). */
  onStep?: (s: StepObservation) => void;
  /**
   * The kernel log lines the target printed since the last call (its dmesg). Called once before step 0
   * (those lines are the boot's and are dropped) and after each step: a step's lines are its `dmesg`.
   */
  kernelLog?: () => Promise<readonly string[]>;
}

async function loadInjection(ctx: StepContext, priority: number): Promise<void> {
  const { target, state } = ctx;
  if (state.injectPriority === priority) return;
  // The priority is a module parameter: another priority needs a reload.
  if (state.injectPriority !== undefined) {
    await target.unloadModule(INJECT_MODULE);
    state.injectPriority = undefined;
  }
  if (!state.injectBaseLoaded) {
    await target.loadModule(INJECT_BASE_MODULE);
    state.injectBaseLoaded = true;
  }
  await target.loadModule(INJECT_MODULE, { priority });
  state.injectPriority = priority;
}

const injectFile = (a: InjectAction): string => `${INJECT_DIR}/${a}/error`;

/** The built-in handlers: everything a HotplugTarget can do. `alloc`, `free`, `pin` and `unpin` are not applicable here (the simulator runner supplies them). */
export const DEFAULT_HANDLERS: Required<StepHandlers> = {
  plug: async (s, { target }) => {
    await target.plugDimm({ id: s.id, size: s.size, ...(s.node !== undefined ? { node: s.node } : {}) });
  },
  unplug: async (s, { target }) => {
    await target.unplugDimm(s.id);
  },
  write: async (s, { target }) => {
    await target.sysfs.write(s.path, s.value);
  },
  read: async (s, { target }) => ({ value: await target.sysfs.read(s.path) }),
  inject: async (s, ctx) => {
    await loadInjection(ctx, s.priority);
    await ctx.target.sysfs.write(injectFile(s.action), String(-errnoNumber(s.errno)));
  },
  uninject: async (s, { target, state }) => {
    if (state.injectPriority === undefined) return;
    for (const a of s.action ? [s.action] : (['MEM_GOING_ONLINE', 'MEM_GOING_OFFLINE'] as const)) await target.sysfs.write(injectFile(a), '0');
  },
  insmod: async (s, { target }) => {
    await target.loadModule(s.module, s.params ?? {});
  },
  rmmod: async (s, { target, state }) => {
    await target.unloadModule(s.module);
    if (s.module === INJECT_MODULE) state.injectPriority = undefined;
    if (s.module === INJECT_BASE_MODULE) state.injectBaseLoaded = false;
  },
  alloc: async () => ({ notApplicable: "alloc drives the simulator's page allocator; a guest has no equivalent" }),
  free: async () => ({ notApplicable: "free drives the simulator's page allocator; a guest has no equivalent" }),
  pin: async () => ({ notApplicable: "pin drives the simulator's page allocator; a guest has no equivalent" }),
  unpin: async () => ({ notApplicable: "unpin drives the simulator's page allocator; a guest has no equivalent" }),
  sh: async () => ({ notApplicable: 'sh runs a script in a guest; the simulator has no shell' }),
  snapshot: async (s, ctx) => ({ snapshot: await ctx.snapshot(s.name) }),
  census: async (_s, { target }) => ({ census: await takeCensus(target.sysfs) }),
};

/** Whether the result meets the step's `expect` (and a read's `value`); what was wrong if not. */
export function checkExpectation(step: Step, result: StepResult): string | undefined {
  if (result.status === 'n/a') return undefined;
  const got = result.status === 'ok' ? 'ok' : result.errno;
  if ('expect' in step && step.expect !== undefined && step.expect !== got) return `expected ${step.expect}, got ${got}`;
  if (step.op === 'read' && step.value !== undefined && result.status === 'ok') {
    const text = (result.value ?? '').replace(/\n$/, '');
    if (text !== step.value) return `expected ${JSON.stringify(step.value)}, read ${JSON.stringify(text)}`;
  }
  return undefined;
}

/**
 * Run a scenario's steps on a target and return what was observed. The target is not closed: who
 * made it closes it (see {@link runOnGuest} for a guest).
 */
export async function runScenario(target: HotplugTarget, scenario: Scenario, opts: RunOptions = {}): Promise<Observation> {
  const handlers = { ...DEFAULT_HANDLERS, ...opts.handlers } as Required<StepHandlers>;
  const snapshot = opts.snapshot ?? ((name?: string) => takeSnapshot(target.sysfs, name));
  const state: RunState = { injectPriority: undefined, injectBaseLoaded: false };
  const steps: StepObservation[] = [];
  let baseline: Snapshot | undefined;
  let t0 = performance.now();
  const observation = (): Observation => ({
    scenario: scenario.name,
    target: opts.kind ?? 'sim',
    kernel: { profile: target.kernel.name, release: opts.release ?? target.kernel.release },
    steps: steps.slice(),
    ms: performance.now() - t0,
    ...(baseline ? { baseline } : {}),
  });
  // The state before step 0, whatever the scenario's steps snapshot: the differ measures boot-dependent
  // counters (MemTotal, managed pages of boot zones) as their change from it (see normalise.ts).
  try {
    baseline = await snapshot('baseline');
  } catch (e) {
    throw new ScenarioRunError(`${scenario.name}: baseline snapshot before step 0 failed: ${(e as Error).message ?? String(e)}`, -1, observation(), e);
  }
  const kernelLog = opts.kernelLog;
  if (kernelLog) await kernelLog().catch((e: unknown) => Promise.reject(new ScenarioRunError(`${scenario.name}: cannot read the kernel log: ${(e as Error).message}`, -1, observation(), e)));
  t0 = performance.now(); // `ms` counts the steps only
  for (const [index, step] of scenario.steps.entries()) {
    const text = stepText(step);
    const ctx: StepContext = { target, scenario, index, state, snapshot };
    const traceStart = target.trace.length;
    const s0 = performance.now();
    let result: StepResult;
    let snap: Snapshot | undefined;
    let census: Census | undefined;
    try {
      const handler = handlers[step.op] as StepHandler;
      const out = (await handler(step, ctx)) ?? {};
      snap = out.snapshot;
      census = out.census;
      result = out.notApplicable !== undefined ? { status: 'n/a', reason: out.notApplicable } : { status: 'ok', ...(out.value !== undefined ? { value: out.value } : {}) };
    } catch (e) {
      if (!(e instanceof KernelError)) {
        throw new ScenarioRunError(`${scenario.name}: step ${index} (${text}) failed: ${(e as Error).message ?? String(e)}`, index, observation(), e);
      }
      result = { status: 'error', errno: e.code, message: e.message };
    }
    const ms = performance.now() - s0;
    const unmet = checkExpectation(step, result);
    let dmesg: readonly string[] = [];
    try {
      if (kernelLog) dmesg = await kernelLog();
    } catch (e) {
      throw new ScenarioRunError(`${scenario.name}: step ${index} (${text}): cannot read the kernel log: ${(e as Error).message ?? String(e)}`, index, observation(), e);
    }
    const so: StepObservation = {
      index,
      text,
      step,
      result,
      ...(unmet !== undefined ? { unmet } : {}),
      trace: target.trace.events().slice(traceStart),
      ...(snap ? { snapshot: snap } : {}),
      ...(census ? { census } : {}),
      ...(dmesg.length ? { dmesg } : {}),
      ms,
    };
    steps.push(so);
    opts.onStep?.(so);
  }
  return observation();
}
