/**
 * `memhp sim`: run a scenario on the simulator (no QEMU) and print what happened: one line per step
 * with its result, then util-linux lsmem of the machine as the scenario left it. `--json` prints the
 * Observation instead, the same JSON a guest run produces, so it can be saved and diffed.
 *
 *   memhp sim SCENARIO [--kernel 6.12] [--json] [-- LSMEM-ARGS…]
 *
 * Exit codes, as diff(1) and cmp(1) use them: 0 every step met its expectation, 1 some step did not,
 * 2 trouble (an invalid scenario, a machine the model refuses, a run cut short).
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import type { Machine } from '../kernel/machine.js';
import { formatSteps } from '../scenario/diff.js';
import { ScenarioError, ScenarioRunError } from '../scenario/errors.js';
import type { Observation } from '../scenario/observation.js';
import { loadScenario, type ScenarioKernel } from '../scenario/schema.js';
import { createSimMachine, runOnMachine } from '../scenario/sim.js';
import { lsmem } from '../sim/lsmem.js';
import type { CliIo } from './qmp.js';

/** Exit codes of `memhp sim` and `memhp conform` (diff(1)'s convention). */
export const SCENARIO_EXIT = { OK: 0, DIFFERENT: 1, TROUBLE: 2 } as const;

/** The lsmem columns `memhp sim` shows by default: lsmem's own plus the node and zones a hotplug scenario is about. */
export const SIM_LSMEM_COLUMNS = 'RANGE,SIZE,STATE,REMOVABLE,BLOCK,NODE,ZONES';

const KERNELS = ['6.1', '6.12', '7.2', 'latest'] as const satisfies readonly ScenarioKernel[];

/** Parse a `--kernel` value; commander reports the error. */
export function kernelArg(v: string): ScenarioKernel {
  if (!(KERNELS as readonly string[]).includes(v)) throw new InvalidArgumentError(`unknown kernel '${v}' (expected ${KERNELS.join(', ')})`);
  return v as ScenarioKernel;
}

/** Where commands write when no CliIo is given. */
export const processIo: CliIo = {
  stdout: (t) => void process.stdout.write(t),
  stderr: (t) => void process.stderr.write(t),
};

/** How a scenario command reports a failure of its own (not a step's): the message, and the exit code 2. */
export function troubleMessage(e: unknown): string {
  if (e instanceof ScenarioError || e instanceof ScenarioRunError) return e.message;
  return e instanceof Error ? e.message : String(e);
}

/** What `memhp sim` prints for a finished run (text mode): step lines, then the lsmem table. */
export async function formatSimRun(o: Observation, machine: Machine, lsmemArgs: readonly string[] = []): Promise<string> {
  const table = await lsmem(machine.sysfs, lsmemArgs.length ? lsmemArgs : ['-o', SIM_LSMEM_COLUMNS]);
  const unmet = o.steps.filter((s) => s.unmet).length;
  const verdict = unmet ? `${unmet} step${unmet === 1 ? '' : 's'} did not meet ${unmet === 1 ? 'its' : 'their'} expectation` : 'every expectation met';
  return `${formatSteps(o)}\n${verdict}\n\n${table}`;
}

/**
 * Make commander's usage errors exit 2, not 1: 1 means "different" to these commands. (Commander calls
 * process.exit itself by default; an embedding caller replaces this with `exitOverride()`.)
 */
export function usageExitsTrouble(cmd: Command): Command {
  return cmd.exitOverride((err) => process.exit(err.exitCode === 0 ? SCENARIO_EXIT.OK : SCENARIO_EXIT.TROUBLE));
}

/** Options of {@link simCommand}. */
export interface CommandOptions {
  /** Output streams (tests capture them). */
  io?: CliIo;
  /** Receives the exit code; default sets `process.exitCode`. */
  onExit?: (code: number) => void;
}

/** Build the `sim` sub-command. */
export function simCommand(opts: CommandOptions = {}): Command {
  const io = opts.io ?? processIo;
  const onExit = opts.onExit ?? ((code: number) => void (process.exitCode = code));
  return usageExitsTrouble(new Command('sim'))
    .description('run a scenario on the simulator: step results, then lsmem of the machine (options after -- go to lsmem)')
    .argument('<scenario>', 'scenario file (.yaml, .yml or .json)')
    .argument('[lsmem-args...]', `lsmem options (default -o ${SIM_LSMEM_COLUMNS})`)
    .option('--kernel <version>', "kernel profile: 6.1, 6.12, 7.2 or latest (default: the scenario's first)", kernelArg)
    .option('--json', 'print the Observation as JSON instead')
    .action(async (file: string, lsmemArgs: string[], o: { kernel?: ScenarioKernel; json?: boolean }) => {
      let machine: Machine | undefined;
      try {
        const scenario = await loadScenario(file);
        machine = await createSimMachine(scenario, o.kernel ? { kernel: o.kernel } : {});
        const obs = await runOnMachine(machine, scenario);
        io.stdout(o.json ? `${JSON.stringify(obs, null, 2)}\n` : await formatSimRun(obs, machine, lsmemArgs));
        onExit(obs.steps.some((s) => s.unmet) ? SCENARIO_EXIT.DIFFERENT : SCENARIO_EXIT.OK);
      } catch (e) {
        // A run cut short still shows the steps it got through.
        if (e instanceof ScenarioRunError && e.observation) io.stdout(o.json ? `${JSON.stringify(e.observation, null, 2)}\n` : `${formatSteps(e.observation)}\n`);
        io.stderr(`memhp sim: ${troubleMessage(e)}\n`);
        onExit(SCENARIO_EXIT.TROUBLE);
      } finally {
        await machine?.close();
      }
    });
}

/**
 * Run one sub-command built by `make` with `argv` (the words after its name) and resolve with its exit
 * code; never calls process.exit, so tests and other CLIs can embed it. Usage errors exit 2.
 */
export async function runSubcommand(make: (o: Required<CommandOptions>) => Command, argv: readonly string[], io: CliIo = processIo): Promise<number> {
  let code: number = SCENARIO_EXIT.OK;
  const cmd = make({ io, onExit: (c) => void (code = c) });
  const root = new Command('memhp').addCommand(cmd);
  // Sub-commands inherit neither exitOverride nor output routing from the root, so set them on each.
  for (const c of [root, cmd]) c.exitOverride().configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
  try {
    await root.parseAsync([cmd.name(), ...argv], { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? SCENARIO_EXIT.OK : SCENARIO_EXIT.TROUBLE;
    throw e;
  }
  return code;
}

/** `memhp sim …` with `argv` after `sim`; resolves to the exit code. */
export function runSim(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  return runSubcommand(simCommand, argv, io);
}
