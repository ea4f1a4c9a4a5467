/**
 * `memhp sim`: run scenarios on the simulator (no QEMU) and print what happened: for each file one line
 * per step with its result (a failed step with the kernel's message, the kernel log lines a step
 * produced with -v), then util-linux lsmem of the machine as the scenario left it. `--json` prints each
 * Observation instead, one JSON line per file: the same JSON a guest run produces, to save and diff.
 *
 *   memhp sim SCENARIO… [--kernel 6.12] [--json] [-v] [LSMEM OPTIONS] [-- LSMEM-ARGS…]
 *
 * `-` reads a scenario from standard input. lsmem's output options are taken as in `memhp lsmem`
 * (lib/cli/lsmem.ts), `-J` for its `--json`; arguments after `--` go to lsmem verbatim.
 *
 * Exit codes, as diff(1) and cmp(1) use them: 0 every step met its expectation, 1 some step did not,
 * 2 trouble (an invalid scenario, a machine the model refuses, a run cut short); the worst over the files.
 */
import { Command, InvalidArgumentError } from 'commander';
import type { Machine } from '../kernel/machine.js';
import { AddonLoadError } from '../native/addon.js';
import { formatSteps } from '../scenario/diff.js';
import { ScenarioError, ScenarioRunError } from '../scenario/errors.js';
import type { Observation, StepObservation } from '../scenario/observation.js';
import { KERNEL_NAMES, kernelsSchema, loadScenario, MAX_SCENARIO_BYTES, parseScenario, zodIssues, type Scenario, type ScenarioKernel } from '../scenario/schema.js';
import { createSimMachine, runOnMachine } from '../scenario/sim.js';
import { lsmem } from '../sim/lsmem.js';
import { EXIT, failureText, PassthroughCommand, processIo, runSubcommand, type CliIo, type CommandOptions } from './io.js';
import { addLsmemOptions, choosesColumns, lsmemArgs, type LsmemFlags } from './lsmem.js';

export { processIo, runSubcommand, type CommandOptions };

/** Exit codes of `memhp sim` and `memhp conform` (diff(1)'s convention; {@link EXIT} of every command). */
export const SCENARIO_EXIT = { OK: EXIT.OK, DIFFERENT: EXIT.FAILURE, TROUBLE: EXIT.TROUBLE } as const;

/** The lsmem columns `memhp sim` shows by default: lsmem's own plus the node and zones a hotplug scenario is about. */
export const SIM_LSMEM_COLUMNS = 'RANGE,SIZE,STATE,REMOVABLE,BLOCK,NODE,ZONES';

/** Parse a `--kernel` value with the scenario schema's validator (the message a scenario file gets); commander reports the error. */
export function kernelArg(v: string): ScenarioKernel {
  const r = kernelsSchema.safeParse(v);
  if (!r.success) throw new InvalidArgumentError(zodIssues(r.error)[0]!.message);
  return r.data[0]!;
}

/** How a scenario command reports a failure of its own (not a step's): the message. */
export function troubleMessage(e: unknown): string {
  if (e instanceof ScenarioError || e instanceof ScenarioRunError) return e.message;
  return e instanceof Error ? e.message : String(e);
}

/**
 * The lines under a step: why it failed (the kernel's message, or why it does not apply), and the kernel
 * log lines it produced — all of them for a failed or unmet step or with `verbose`, else the first and
 * how many more (a step that succeeded and still logged is one a user wants to know about: a 64 MiB
 * DIMM is taken by QEMU, then refused by the guest's add_memory, which only the log tells).
 */
export function stepDetails(s: StepObservation, verbose = false): string[] {
  const out: string[] = [];
  if (s.result.status === 'error') out.push(`  ${s.result.errno}: ${s.result.message}`);
  if (s.result.status === 'n/a') out.push(`  n/a: ${s.result.reason}`);
  const log = s.dmesg ?? [];
  if (verbose || s.unmet || s.result.status === 'error' || log.length === 1) out.push(...log.map((l) => `  dmesg: ${l}`));
  else if (log.length) out.push(`  dmesg: ${log[0]!}`, `  dmesg: … ${log.length - 1} more line${log.length === 2 ? '' : 's'} (-v shows them)`);
  return out;
}

/** The step lines of a run (formatSteps' lines of lib/scenario/diff.ts), each followed by {@link stepDetails}. */
export function formatStepsWithDetails(o: Observation, verbose = false): string {
  const [head] = formatSteps({ ...o, steps: [] }).split('\n');
  const lines = [head!];
  for (const s of o.steps) lines.push(formatSteps({ ...o, steps: [s] }).split('\n').slice(1).join('\n'), ...stepDetails(s, verbose));
  return lines.join('\n');
}

/** What `memhp sim` prints for a finished run (text mode): step lines, the verdict, then the lsmem table. */
export async function formatSimRun(o: Observation, machine: Machine, lsmemArguments: readonly string[] = ['-o', SIM_LSMEM_COLUMNS], verbose = false): Promise<string> {
  const table = await lsmem(machine.sysfs, lsmemArguments);
  const unmet = o.steps.filter((s) => s.unmet).length;
  const verdict = unmet ? `${unmet} step${unmet === 1 ? '' : 's'} did not meet ${unmet === 1 ? 'its' : 'their'} expectation` : 'every expectation met';
  return `${formatStepsWithDetails(o, verbose)}\n${verdict}\n\n${table}`;
}

/** Read a scenario from a stream, refusing more than {@link MAX_SCENARIO_BYTES} as a file is refused. */
export async function readScenarioStream(input: NodeJS.ReadableStream, source = 'stdin'): Promise<Scenario> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of input) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    bytes += b.length;
    if (bytes > MAX_SCENARIO_BYTES) throw new ScenarioError(source, [{ path: '', message: `the document is more than ${MAX_SCENARIO_BYTES} bytes, larger than the cap (maxBytes)` }]);
    chunks.push(b);
  }
  return parseScenario(Buffer.concat(chunks).toString('utf8'), { source, defaultName: source });
}

interface SimCliOpts extends LsmemFlags {
  kernel?: ScenarioKernel;
  json?: boolean;
  verbose?: boolean;
}

/** Build the `sim` sub-command. */
export function simCommand(opts: CommandOptions = {}): Command {
  const io = opts.io ?? processIo;
  const onExit = opts.onExit ?? ((code: number) => void (process.exitCode = code));
  const cmd = new PassthroughCommand('sim')
    .description('run scenarios on the simulator: step results, then lsmem of the machine (arguments after -- go to lsmem)')
    .argument('<scenario...>', "scenario files (.yaml, .yml or .json); '-' reads one from standard input")
    .option('--kernel <version>', `kernel profile: ${KERNEL_NAMES.join(', ')} (default: each scenario's first)`, kernelArg)
    .option('--json', 'print each Observation as one line of JSON instead')
    .option('-v, --verbose', "print every kernel log line of every step (default: a failed or unmet step's, and another's first)");
  addLsmemOptions(cmd, { json: false });
  return cmd.action(async (files: string[], o: SimCliOpts) => {
    const args = lsmemArgs(o, cmd.passthrough);
    const table = choosesColumns(o, cmd.passthrough) ? args : ['-o', SIM_LSMEM_COLUMNS, ...args];
    if (files.filter((f) => f === '-').length > 1) cmd.error("'-' (standard input) can be given once", { exitCode: EXIT.TROUBLE });
    let worst: number = EXIT.OK;
    for (const [i, file] of files.entries()) {
      if (i && !o.json) io.stdout('\n');
      worst = Math.max(worst, await simOne(cmd, io, file, o, table));
    }
    onExit(worst);
  });
}

/** Run one scenario file and print it; resolves to its exit code. */
async function simOne(cmd: Command, io: CliIo, file: string, o: SimCliOpts, table: readonly string[]): Promise<number> {
  let machine: Machine | undefined;
  try {
    const scenario = file === '-' ? await readScenarioStream(io.stdin ?? process.stdin) : await loadScenario(file);
    machine = await createSimMachine(scenario, o.kernel ? { kernel: o.kernel } : {});
    const obs = await runOnMachine(machine, scenario);
    io.stdout(o.json ? `${JSON.stringify(obs)}\n` : await formatSimRun(obs, machine, table, o.verbose));
    return obs.steps.some((s) => s.unmet) ? EXIT.FAILURE : EXIT.OK;
  } catch (e) {
    // No simulator at all is no scenario's fault: reported once, as memhp's trouble (runCommand).
    if (e instanceof AddonLoadError) throw e;
    // A run cut short still shows the steps it got through.
    if (e instanceof ScenarioRunError && e.observation) io.stdout(o.json ? `${JSON.stringify(e.observation)}\n` : `${formatStepsWithDetails(e.observation, o.verbose)}\n`);
    io.stderr(failureText(cmd, e));
    return EXIT.TROUBLE;
  } finally {
    await machine?.close();
  }
}

/** `memhp sim …` with `argv` after `sim`; resolves to the exit code. */
export function runSim(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  return runSubcommand(simCommand, argv, io);
}
