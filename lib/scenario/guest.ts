/**
 * The guest side of a scenario: boot a real Debian kernel under QEMU from the scenario's machine
 * description, run the steps with the shared runner, and always close the guest, so QEMU never
 * outlives a run, whether it succeeds, a step fails, or the boot does.
 */
import { Guest, type BootInfo, type GuestOptions } from '../guest/guest.js';
import { DEFAULT_HANDLERS, type StepOutcome } from './run.js';
import { ScenarioRunError } from './errors.js';
import type { GuestBootSummary, Observation } from './observation.js';
import { runScenario, type RunOptions } from './run.js';
import { KernelError } from '../errors.js';
import { base64 } from '../guest/agent.js';
import { kernelCmdline, type MachineDescription, type Scenario, type ScenarioKernel, type ShStep } from './schema.js';
import { guestSnapshotter } from './snapshot.js';

/** Options of {@link runOnGuest}. */
export interface GuestRunOptions extends Omit<RunOptions, 'kind' | 'release' | 'snapshot'> {
  /** Which kernel to boot. Default: the first the scenario names. */
  kernel?: ScenarioKernel;
  /**
   * Harness options passed to `Guest.boot` (accelerator, provisioning, timeouts, snapshot cache); the
   * machine itself comes from the scenario. `boot.snapshot` defaults to 'reuse' here: many scenarios
   * share a machine, and a restored idle guest behaves as a freshly booted one (test/guest/snapshot.test.ts).
   */
  boot?: Pick<GuestOptions, 'accel' | 'readyTimeoutMs' | 'prepare' | 'qemu' | 'snapshot' | 'snapshotDir' | 'onPhase'>;
  /**
   * 'script' (default): one agent round trip per snapshot ({@link guestSnapshotter});
   * 'sysfs': the generic path, one round trip per file, as on any HotplugTarget.
   */
  snapshot?: 'script' | 'sysfs';
  /** Called once the guest is up, before the steps (progress output): how it came up. */
  onBooted?: (boot: BootInfo) => void;
}

/** The `Guest.boot` options for a machine description. */
export function guestBootOptions(m: MachineDescription, kernel: ScenarioKernel): GuestOptions {
  return {
    kernel,
    memory: m.memory,
    nodes: m.nodes,
    slots: m.slots,
    maxMemory: m.maxMemory,
    ...(m.cpus !== undefined ? { cpus: m.cpus } : {}),
    cmdline: kernelCmdline(m.cmdline),
  };
}

/**
 * The `sh` step on a guest: the script through the agent (written to a file first, so `exit` and any
 * quoting in it behave as in a script); a non-zero exit status rejects with EIO, the output is the value.
 */
async function runSh(g: Guest, s: ShStep): Promise<{ value: string }> {
  const out = await g.agent.sh(`echo ${base64(s.script)} | base64 -d > /tmp/memhp-step.sh; sh /tmp/memhp-step.sh; echo "@status=$?"`, 10 * 60_000);
  await g.syncTrace();
  const m = /@status=(\d+)\n?$/.exec(out);
  const text = m ? out.slice(0, m.index) : out;
  if (!m || m[1] !== '0') throw new KernelError('EIO', `sh: exit status ${m?.[1] ?? 'unknown'}${text.trim() ? `: ${text.trim().slice(-500)}` : ''}`);
  return { value: text };
}

/**
 * Why a path or value cannot reach a guest's kernel as the scenario has it, if so: a path is a C
 * string (no NUL), and a value is sent as UTF-8 bytes (a lone UTF-16 surrogate has no such bytes).
 */
function inexpressible(path: string, value?: string): StepOutcome | undefined {
  if (path.includes('\0')) return { notApplicable: 'a path with a NUL in it cannot be opened: the kernel takes a C string' };
  if (value !== undefined && Buffer.from(value).toString() !== value) return { notApplicable: 'a value with a lone UTF-16 surrogate has no bytes to write' };
  return undefined;
}

/** How the guest came up, for its observation. */
function bootSummary(g: Guest): GuestBootSummary {
  const b = g.boot;
  return { path: b.path, ms: b.bootMs, accel: b.accel, ...(b.saveMs !== undefined ? { saveMs: b.saveMs } : {}), ...(b.snapshotReason ? { snapshotReason: b.snapshotReason } : {}) };
}

/**
 * Boot a guest for the scenario, run it, close the guest. A boot failure or a harness failure during
 * the run rejects with {@link ScenarioRunError} (the guest is closed first).
 */
export async function runOnGuest(scenario: Scenario, opts: GuestRunOptions = {}): Promise<Observation> {
  const kernel = opts.kernel ?? scenario.machine.kernels[0] ?? 'latest';
  let g: Guest;
  try {
    g = await Guest.boot({ snapshot: 'reuse', ...opts.boot, ...guestBootOptions(scenario.machine, kernel) });
  } catch (e) {
    throw new ScenarioRunError(`${scenario.name}: cannot boot kernel ${kernel}: ${(e as Error).message}`, -1, undefined, e);
  }
  try {
    const { boot: _boot, snapshot, kernel: _kernel, onBooted, ...run } = opts;
    onBooted?.(g.boot);
    const obs = await runScenario(g, scenario, {
      ...run,
      kind: 'guest',
      release: g.boot.ready.release,
      kernelLog: () => g.kernelLog(),
      handlers: {
        sh: (s) => runSh(g, s),
        write: async (s, ctx) => inexpressible(s.path, s.value) ?? DEFAULT_HANDLERS.write(s, ctx),
        read: async (s, ctx) => inexpressible(s.path) ?? DEFAULT_HANDLERS.read(s, ctx),
        ...run.handlers,
      },
      ...(snapshot === 'sysfs' ? {} : { snapshot: guestSnapshotter(g) }),
    });
    return { ...obs, bootMs: g.boot.bootMs, guestBoot: bootSummary(g) };
  } catch (e) {
    if (e instanceof ScenarioRunError && e.observation) {
      throw new ScenarioRunError(e.message, e.step, { ...e.observation, bootMs: g.boot.bootMs, guestBoot: bootSummary(g) }, e.cause);
    }
    throw e;
  } finally {
    await g.close();
  }
}
