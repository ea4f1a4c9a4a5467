/**
 * `memhp conform`: differential conformance. Each scenario runs on a real guest (Debian's kernel under
 * QEMU) and on the simulator, per kernel; the differ prints what differs step by step, documented
 * divergences (an exceptions file) are set apart, and JUnit XML is written for CI if asked.
 *
 *   memhp conform SCENARIO… [--kernel 6.1,6.12,latest] [--exceptions FILE|DIR]… [--junit FILE] [--json] [--no-snapshot]
 *
 * Without --kernel a scenario runs on the kernels it names. With it, on those of the list the
 * scenario names (a scenario for 6.12+ is skipped on 6.1, and says so). Guests run one after another:
 * a TCG boot takes a core for seconds, and two at once only slow each other down. A machine's first boot
 * saves the booted guest in the snapshot cache and later runs of the same machine restore it in about
 * half a second (lib/guest/snapshot.ts); --no-snapshot boots every guest's kernel.
 *
 * Exit codes (diff(1)'s): 0 no difference outside the exceptions, 1 an unexplained difference (an unmet
 * expectation counts), 2 trouble (an invalid file, a run that could not complete).
 */
import { writeFile } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import { getProfile } from '../kernel/profile.js';
import { diffObservations, formatDiff, formatSteps, type DiffReport } from '../scenario/diff.js';
import { ScenarioRunError } from '../scenario/errors.js';
import { loadExceptionsFrom, type DivergenceException } from '../scenario/exceptions.js';
import { runOnGuest, type GuestRunOptions } from '../scenario/guest.js';
import { toJUnit, type ConformanceCase } from '../scenario/junit.js';
import type { Observation } from '../scenario/observation.js';
import { loadScenario, type Scenario, type ScenarioKernel } from '../scenario/schema.js';
import { runOnSimulator } from '../scenario/sim.js';
import { failureText, processIo, runSubcommand, type CliIo, type CommandOptions } from './io.js';
import { SCENARIO_EXIT, formatStepsWithDetails, kernelArg, troubleMessage } from './sim.js';

/** The profile a kernel name stands for ('latest' → '7.2'), to compare kernel lists. */
const profileOf = (k: ScenarioKernel): string => getProfile(k).name;

/** Parse `--kernel 6.1,6.12,latest`. */
export function kernelListArg(v: string): ScenarioKernel[] {
  const ks = v.split(',').map((s) => s.trim()).filter(Boolean);
  if (!ks.length) throw new InvalidArgumentError('expected a kernel list such as 6.1,6.12,latest');
  return ks.map(kernelArg);
}

/** The kernels a scenario runs on: those asked for that it names (all it names when none are asked for). */
export function kernelsFor(scenario: Scenario, asked: readonly ScenarioKernel[] | undefined): { run: ScenarioKernel[]; skipped: ScenarioKernel[] } {
  if (!asked) return { run: [...scenario.machine.kernels], skipped: [] };
  const named = new Set(scenario.machine.kernels.map(profileOf));
  return { run: asked.filter((k) => named.has(profileOf(k))), skipped: asked.filter((k) => !named.has(profileOf(k))) };
}

/** One scenario on one kernel, with both observations (absent when a run failed) and timings. */
export interface ConformRun extends ConformanceCase {
  /** The guest's observation. */
  readonly guest?: Observation;
  /** The simulator's observation. */
  readonly sim?: Observation;
}

/** Options of {@link conformScenario}. */
export interface ConformOptions {
  /** Documented divergences. */
  exceptions?: readonly DivergenceException[];
  /** Harness options for the guest (accelerator, timeouts). */
  boot?: GuestRunOptions['boot'];
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** The timing line of a case: `sim 12 ms, guest boot 4.2 s + steps 1.3 s, total 5.8 s`. */
export function timingText(c: ConformRun): string {
  const parts: string[] = [];
  if (c.sim) parts.push(`sim ${c.sim.ms.toFixed(0)} ms`);
  if (c.guest) parts.push(`guest boot ${secs(c.guest.bootMs ?? 0)} + steps ${secs(c.guest.ms)}`);
  if (c.seconds !== undefined) parts.push(`total ${c.seconds.toFixed(1)} s`);
  return parts.join(', ');
}

/**
 * Run a scenario on the simulator and on a guest for one kernel and compare. A run that could not
 * complete is the case's `error` (with the steps it got through in `output`), never a rejection.
 */
export async function conformScenario(scenario: Scenario, kernel: ScenarioKernel, opts: ConformOptions = {}): Promise<ConformRun> {
  const t0 = performance.now();
  const seconds = (): number => (performance.now() - t0) / 1000;
  let sim: Observation | undefined;
  let guest: Observation | undefined;
  try {
    // The simulator first: it takes milliseconds, and a model failure is reported without a boot.
    sim = await runOnSimulator(scenario, { kernel });
    guest = await runOnGuest(scenario, { kernel, ...(opts.boot ? { boot: opts.boot } : {}) });
  } catch (e) {
    const partial = e instanceof ScenarioRunError ? e.observation : undefined;
    const output = [sim && formatSteps(sim), partial && formatSteps(partial)].filter(Boolean).join('\n');
    return { scenario: scenario.name, kernel: profileOf(kernel), error: troubleMessage(e), seconds: seconds(), ...(output ? { output } : {}), ...(sim ? { sim } : {}), ...(partial?.target === 'guest' ? { guest: partial } : {}) };
  }
  const report: DiffReport = diffObservations(guest, sim, { ...(opts.exceptions ? { exceptions: opts.exceptions } : {}) });
  return { scenario: scenario.name, kernel: report.kernel, report, seconds: seconds(), output: `${formatStepsWithDetails(guest, true)}\n${formatStepsWithDetails(sim, true)}`, guest, sim };
}

interface ConformCliOpts {
  kernel?: ScenarioKernel[];
  junit?: string;
  exceptions: string[];
  json?: boolean;
  verbose?: boolean;
  /** False with --no-snapshot. */
  snapshot: boolean;
}

/** Build the `conform` sub-command. */
export function conformCommand(opts: CommandOptions = {}): Command {
  const io = opts.io ?? processIo;
  const onExit = opts.onExit ?? ((code: number) => void (process.exitCode = code));
  return new Command('conform')
    .description('run scenarios on real guests and on the simulator, per kernel, and print what differs')
    .argument('<scenario...>', 'scenario files (.yaml, .yml or .json)')
    .option('--kernel <list>', "kernels, e.g. 6.1,6.12,latest (default: each scenario's own)", kernelListArg)
    .option('--exceptions <path>', 'documented divergences: a YAML or JSON file, or a directory of them (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--junit <file>', 'write JUnit XML here')
    .option('--json', 'print the reports and both observations as JSON instead of text')
    .option('-v, --verbose', 'print both runs step by step, also when they agree')
    .option('--no-snapshot', 'boot every guest kernel instead of restoring a saved guest of the same machine')
    .action(async (files: string[], o: ConformCliOpts, cmd: Command) => {
      let exceptions: DivergenceException[] = [];
      const scenarios: Scenario[] = [];
      try {
        exceptions = await loadExceptionsFrom(o.exceptions);
        for (const f of files) scenarios.push(await loadScenario(f));
      } catch (e) {
        io.stderr(failureText(cmd, e));
        return onExit(SCENARIO_EXIT.TROUBLE);
      }
      const runs: ConformRun[] = [];
      for (const s of scenarios) {
        const { run, skipped } = kernelsFor(s, o.kernel);
        if (skipped.length && !o.json) io.stdout(`${s.name}: skipped on ${skipped.join(', ')} (the scenario is for ${s.machine.kernels.join(', ')})\n`);
        for (const k of run) {
          const c = await conformScenario(s, k, { exceptions, boot: { snapshot: o.snapshot ? 'reuse' : 'off' } });
          runs.push(c);
          if (o.json) continue;
          if (c.error) io.stdout(`${s.name} on ${c.kernel}: ERROR (${timingText(c)})\n  ${c.error.split('\n').join('\n  ')}\n${c.output ? `${c.output}\n` : ''}`);
          else io.stdout(`${formatDiff(c.report!)}\n  ${timingText(c)}\n${o.verbose ? `${c.output}\n` : ''}`);
        }
      }
      const failed = runs.filter((c) => c.report && !c.report.ok).length;
      const errors = runs.filter((c) => c.error).length;
      if (o.json) io.stdout(`${JSON.stringify(runs, null, 2)}\n`);
      else io.stdout(`${runs.length} run${runs.length === 1 ? '' : 's'}: ${runs.length - failed - errors} agree, ${failed} differ, ${errors} could not complete; ${runs.reduce((t, c) => t + (c.seconds ?? 0), 0).toFixed(1)} s\n`);
      if (o.junit) {
        try {
          await writeFile(o.junit, toJUnit(runs));
        } catch (e) {
          io.stderr(failureText(cmd, new Error(`cannot write ${o.junit}: ${troubleMessage(e)}`, { cause: e })));
          return onExit(SCENARIO_EXIT.TROUBLE);
        }
      }
      onExit(errors ? SCENARIO_EXIT.TROUBLE : failed ? SCENARIO_EXIT.DIFFERENT : SCENARIO_EXIT.OK);
    });
}

/** `memhp conform …` with `argv` after `conform`; resolves to the exit code. */
export function runConform(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  return runSubcommand(conformCommand, argv, io);
}
