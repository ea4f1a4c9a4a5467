/**
 * The simulator side of a scenario: a {@link Machine} built from the scenario's machine description
 * exactly as the guest side boots QEMU (same boot RAM, nodes, slots, maxmem and kernel command line,
 * see `guestBootOptions` in guest.ts), the shared runner, and the steps only a simulator can run: `alloc`,
 * `free`, `pin` and `unpin` drive the machine's page allocator, so a scenario can put an unmovable or
 * pinned page in the way of an offline; `insmod` loads a module without its dependencies, as on a guest.
 *
 * Two entry points: {@link runOnSimulator} makes, runs and closes a machine; {@link createSimMachine}
 * plus {@link runOnMachine} leave the machine open for a caller that wants to look at it afterwards
 * (`memhp sim` prints lsmem of it).
 */
import { KernelError } from '../errors.js';
import { Machine, type MachineOptions } from '../kernel/machine.js';
import { AddonLoadError } from '../native/addon.js';
import { ScenarioRunError } from './errors.js';
import type { Observation, StepObservation } from './observation.js';
import { runScenario, type RunOptions, type StepHandlers } from './run.js';
import { kernelCmdline, type MachineDescription, type Scenario, type ScenarioKernel } from './schema.js';
import { compactList } from './snapshot.js';

/** Options of {@link runOnSimulator} and {@link runOnMachine}. */
export interface SimRunOptions extends Omit<RunOptions, 'kind' | 'release'> {
  /** Which kernel profile to simulate. Default: the first the scenario names. */
  kernel?: ScenarioKernel;
  /**
   * Machine options beyond the scenario's description (lock validator mode, offline retry budget).
   * The machine itself (memory, nodes, slots, maxmem, command line) always comes from the scenario.
   */
  machine?: Pick<MachineOptions, 'lockdep' | 'offlineRetries' | 'bootAllocations'>;
}

/**
 * The `Machine.create` options for a machine description: the same fields `guestBootOptions`
 * gives QEMU (guest.ts), so both sides boot the same machine (vCPUs only show in the node devices' files).
 */
export function simMachineOptions(m: MachineDescription, kernel: ScenarioKernel): MachineOptions {
  return { kernel, memory: m.memory, nodes: m.nodes, slots: m.slots, maxMemory: m.maxMemory, cmdline: kernelCmdline(m.cmdline), ...(m.cpus !== undefined ? { cpus: m.cpus } : {}) };
}

/** The kernel a run uses: the one asked for, else the scenario's first. */
const kernelOf = (scenario: Scenario, kernel: ScenarioKernel | undefined): ScenarioKernel => kernel ?? scenario.machine.kernels[0] ?? 'latest';

/**
 * Build the simulated machine a scenario describes. A description the model refuses (boot RAM above
 * maxmem, a size that is not a block multiple) rejects with {@link ScenarioRunError} at step -1, as a
 * guest that does not boot does.
 */
export async function createSimMachine(scenario: Scenario, opts: Pick<SimRunOptions, 'kernel' | 'machine'> = {}): Promise<Machine> {
  const kernel = kernelOf(scenario, opts.kernel);
  try {
    return await Machine.create({ ...opts.machine, ...simMachineOptions(scenario.machine, kernel) });
  } catch (e) {
    // No simulator at all (the addon not built) is no scenario's fault: it passes as it is.
    if (e instanceof AddonLoadError) throw e;
    throw new ScenarioRunError(`${scenario.name}: cannot create the simulated machine for kernel ${kernel}: ${(e as Error).message}`, -1, undefined, e);
  }
}

/** A scenario that names an allocation it never made is a mistake in the scenario, not a kernel refusal: it ends the run. */
class UnknownAllocation extends Error {
  constructor(id: string, freedAt: number | undefined) {
    super(freedAt === undefined ? `no allocation named '${id}' (an earlier alloc step gives it with id: ${id})` : `allocation '${id}' was freed at step ${freedAt}`);
  }
}

/**
 * The simulator-only step handlers for one machine. Allocations are all or nothing: when the
 * allocator runs out part way, what it gave is freed again and the step fails ENOMEM, so a scenario's
 * later steps never depend on how far a failed allocation got. An alloc's result value names the
 * memory blocks its pages landed in (`memory32-33`), which is where it will get in an offline's way.
 */
export function simHandlers(machine: Machine): StepHandlers {
  const allocations = new Map<string, Float64Array>();
  // Ids stay taken once freed (no reuse): a second free names the step that freed it.
  const freed = new Map<string, number>();
  let anonymous = 0;
  const get = (id: string): Float64Array => {
    const pfns = allocations.get(id);
    if (!pfns) throw new UnknownAllocation(id, freed.get(id));
    return pfns;
  };
  return {
    // The step is insmod(8), not modprobe: a module whose dependency is not loaded fails ENOENT, as on a guest.
    insmod: async (s) => {
      await machine.insmod(s.module, s.params ?? {});
    },
    alloc: async (s) => {
      if (s.id !== undefined && (allocations.has(s.id) || freed.has(s.id))) throw new Error(`allocation id '${s.id}' is already in use`);
      const { id: _id, expect: _expect, ...req } = s;
      const pfns = machine.alloc(req);
      if (pfns.length < s.count) {
        machine.free(pfns);
        throw new KernelError('ENOMEM', `alloc: ${pfns.length} of ${s.count} blocks of order ${s.order ?? 0} (${s.kind ?? 'movable'}, node ${s.nid ?? 0}${s.thisNode ? ', __GFP_THISNODE' : ''}) before memory ran out`);
      }
      allocations.set(s.id ?? `#${anonymous++}`, pfns);
      const blocks = [...new Set(Array.from(pfns, (p) => Math.floor(p / machine.blockPages)))].sort((a, b) => a - b);
      return { value: `memory${compactList(blocks.map(String))}` };
    },
    free: async (s, { index }) => {
      machine.free(get(s.id));
      allocations.delete(s.id);
      freed.set(s.id, index);
    },
    pin: async (s) => {
      machine.pin(get(s.id));
    },
    unpin: async (s) => {
      machine.unpin(get(s.id));
    },
  };
}

/**
 * Run a scenario on a machine made by {@link createSimMachine} (or any Machine) with the simulator's
 * handlers. The machine is left open: who made it closes it.
 */
export async function runOnMachine(machine: Machine, scenario: Scenario, opts: Omit<SimRunOptions, 'kernel' | 'machine'> = {}): Promise<Observation> {
  // A step's kernel log lines: those Machine.dmesg gained since the step before ended.
  let mark = machine.dmesg.length;
  const kernelLog = async (): Promise<readonly string[]> => {
    const lines = machine.dmesg.slice(mark);
    mark = machine.dmesg.length;
    return lines;
  };
  return runScenario(machine, scenario, { ...opts, kind: 'sim', handlers: { ...simHandlers(machine), ...opts.handlers }, kernelLog });
}

/**
 * Simulate a scenario: build its machine for `kernel`, run the steps, close the machine. A refused
 * description or a run cut short rejects with {@link ScenarioRunError}.
 */
export async function runOnSimulator(scenario: Scenario, opts: SimRunOptions = {}): Promise<Observation> {
  const { kernel, machine: machineOpts, ...run } = opts;
  const machine = await createSimMachine(scenario, { ...(kernel ? { kernel } : {}), ...(machineOpts ? { machine: machineOpts } : {}) });
  try {
    return await runOnMachine(machine, scenario, run);
  } finally {
    await machine.close();
  }
}
