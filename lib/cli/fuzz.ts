/**
 * `memhp fuzz`: differential fuzzing of the simulator against real guest kernels (lib/fuzz/). Random
 * valid scenarios run on a guest and on the simulator per kernel, diffed as `memhp conform` diffs them;
 * every new divergence is confirmed on the guest, shrunk to a minimal scenario and written to the
 * findings directory with `summary.json` for the campaign.
 *
 *   memhp fuzz [--seed N] [--kernel 6.1,6.12,latest] [--runs N] [--time DURATION] [--findings DIR]
 *              [--exceptions FILE|DIR]… [--no-snapshot] [--no-shrink] [--shrink-runs N] [--jobs N] [--json]
 *
 * The same seed gives the same scenarios. `--runs` counts scenarios per kernel; `--time` bounds the
 * campaign by wall-clock (no run or shrink candidate starts after it); without either, 10 runs per
 * kernel. On a terminal a progress bar (stderr), otherwise one line per scenario.
 *
 * Exit codes: 0 no unexplained divergence, 1 divergences found (unstable ones and simulator crashes
 * included; they take precedence), 2 trouble (bad arguments or files, a guest run that could not
 * complete, a findings directory that cannot be written).
 */
import path from 'node:path';
import cliProgress from 'cli-progress';
import { Command, InvalidArgumentError } from 'commander';
import { SCENARIO_KERNELS, type ScenarioKernel } from '../scenario/schema.js';
import { loadExceptionsFrom, type DivergenceException } from '../scenario/exceptions.js';
import { runCampaign, type CampaignEvent } from '../fuzz/campaign.js';
import { defaultTargets } from '../fuzz/compare.js';
import { readSummary, type CampaignSummary, type RunRecord } from '../fuzz/findings.js';
import { kernelListArg } from './conform.js';
import { durationArg, failureText, processIo, runSubcommand, version, type CliIo, type CommandOptions } from './io.js';
import { SCENARIO_EXIT } from './sim.js';

export { durationArg };

/** Parse a whole number option (`--seed`, `--runs`, `--shrink-runs`) of at least `min`. */
export function wholeArg(min: number): (v: string) => number {
  return (v) => {
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(Number(v)) || Number(v) < min) throw new InvalidArgumentError(`expected a whole number of at least ${min}, got '${v}'`);
    return Number(v);
  };
}

interface FuzzCliOpts {
  seed?: number;
  kernel?: ScenarioKernel[];
  runs?: number;
  time?: number;
  findings: string;
  exceptions: string[];
  snapshot: boolean;
  shrink: boolean;
  shrinkRuns: number;
  json?: boolean;
  resume?: boolean;
  jobs: number;
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** One line for a finished run: `fuzz-latest-1-3 (14 steps): DIVERGES → latest-1-3, shrunk to 2 steps in 23 runs: step 1 (…): …`. */
export function runLine(r: RunRecord, s: CampaignSummary): string {
  const head = `${r.scenario} (${r.steps} steps): `;
  const times = `sim ${r.simMs} ms, guest ${secs(r.guestMs)}, total ${secs(r.ms)}`;
  const f = s.findings.find((x) => x.dir === r.finding);
  switch (r.verdict) {
    case 'agree':
      return `${head}agree (${times})`;
    case 'error':
      return `${head}ERROR (${times}): ${(r.error ?? '').split('\n')[0]}`;
    case 'duplicate':
      return `${head}diverges as ${r.finding} did (${times})`;
    case 'unstable':
      return `${head}UNSTABLE → ${r.finding}: ${f?.headline ?? ''} (${times})`;
    default:
      return `${head}${r.verdict === 'sim-error' ? 'SIMULATOR CRASH' : 'DIVERGES'} → ${r.finding}, ${f && f.shrinkRuns ? `shrunk to ${plural(f.minimalSteps, 'step')} in ${plural(f.shrinkRuns, 'run')}` : 'not shrunk'}: ${f?.headline ?? ''} (${times})`;
  }
}

/** The closing report: counts, time per run, and each finding with its first difference. */
export function summaryText(s: CampaignSummary, dir: string): string {
  const found = s.findings.length;
  const lines = [
    `${s.scenariosRun} scenario${s.scenariosRun === 1 ? '' : 's'} (seed ${s.seed}, ${s.kernels.join(', ')}): ${s.agree} agree, ${s.divergences} diverge (${found} finding${found === 1 ? '' : 's'}, of which ${s.unstable} unstable), ${s.simErrors} simulator crash${s.simErrors === 1 ? '' : 'es'}, ${s.errors} could not complete; ${secs(s.timePerRunMs.mean)} per run (median ${secs(s.timePerRunMs.median)}), ${secs(s.elapsedMs)} in all`,
  ];
  for (const f of s.findings)
    lines.push(`  ${path.join(dir, f.dir)}: ${f.kind}, ${f.originalSteps} → ${plural(f.minimalSteps, 'step')}${f.duplicates ? `, seen ${f.duplicates} more time${f.duplicates === 1 ? '' : 's'}` : ''}: ${f.headline}`);
  return `${lines.join('\n')}\n`;
}

/** Progress on a terminal: one bar (runs, or seconds of the time budget), divergences and what is running. */
function progressBar(o: FuzzCliOpts, kernels: number): { onEvent: (e: CampaignEvent) => void; stop: () => void } {
  const byRuns = o.runs !== undefined;
  const bar = new cliProgress.MultiBar(
    { format: ` fuzz [{bar}] ${byRuns ? '{value}/{total} runs' : '{value}/{total} s, {done} runs'} | {div} diverged, {found} findings | {current}`, hideCursor: true, stream: process.stderr, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  const t0 = performance.now();
  const b = bar.create(byRuns ? o.runs! * kernels : Math.ceil(o.time! / 1000), 0, { done: 0, div: 0, found: 0, current: 'starting' });
  const tick = byRuns ? undefined : setInterval(() => b.update(Math.min(Math.floor((performance.now() - t0) / 1000), b.getTotal())), 1000);
  return {
    onEvent: (e) => {
      if (e.type === 'run-start') b.update({ current: `${e.scenario.name} (${e.scenario.steps.length} steps)` });
      else if (e.type === 'phase') b.update({ current: `${e.scenario}: ${e.phase === 'rerun' ? 're-running on the guest' : `shrinking, run ${e.runs} (${e.steps} steps)`}` });
      else {
        const s = e.summary;
        const payload = { done: s.scenariosRun, div: s.divergences, found: s.findings.length };
        if (byRuns) b.update(s.scenariosRun, payload);
        else b.update(payload);
        if (e.finding || e.record.verdict === 'error') bar.log(`${runLine(e.record, s)}\n`);
      }
    },
    stop: () => {
      if (tick) clearInterval(tick);
      bar.update(); // flushes lines logged since the last redraw
      bar.stop();
    },
  };
}

/** Build the `fuzz` sub-command. */
export function fuzzCommand(opts: CommandOptions = {}): Command {
  const io = opts.io ?? processIo;
  const onExit = opts.onExit ?? ((code: number) => void (process.exitCode = code));
  return new Command('fuzz')
    .description('differential fuzzing: random scenarios on real guests and on the simulator, divergences shrunk to minimal scenarios')
    .option('--seed <n>', 'campaign seed: the same seed gives the same scenarios (default: random, printed)', wholeArg(0))
    .option('--kernel <list>', `kernels, e.g. 6.1,6.12,latest (default ${SCENARIO_KERNELS.join(',')})`, kernelListArg)
    .option('--runs <n>', 'scenarios per kernel (default 10 without --time)', wholeArg(1))
    .option('--time <duration>', 'wall-clock budget, e.g. 90s, 15m, 1h30m', durationArg)
    .option('--findings <dir>', 'findings directory', './memhp-findings')
    .option('--exceptions <path>', 'documented divergences: a YAML or JSON file, or a directory of them (repeatable), as for memhp conform', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--no-snapshot', 'boot every guest kernel instead of restoring a saved guest of the same machine')
    .option('--no-shrink', 'report divergences as generated, without shrinking them')
    .option('--shrink-runs <n>', 'candidate runs (guest + simulator) per finding', wholeArg(1), 60)
    .option('--jobs <n>', 'guests at a time (default 1; up to the number of host cores helps)', wholeArg(1), 1)
    .option('--json', 'print the campaign summary as JSON at the end instead of text')
    .option('--resume', "continue the campaign whose summary.json is in --findings: its runs are kept and the rest made (its seed, kernels and exceptions unless given; --runs counts per kernel over the whole campaign, --time bounds this session)")
    .action(async (o: FuzzCliOpts, cmd: Command) => {
      let exceptions: DivergenceException[] | undefined;
      let prior: CampaignSummary | undefined;
      let priorKernels: ScenarioKernel[] | undefined;
      try {
        if (o.resume) {
          prior = await readSummary(o.findings);
          priorKernels = kernelListArg(prior.kernels.join(','));
          if (o.seed !== undefined && o.seed !== prior.seed) throw new Error(`--seed ${o.seed}: the campaign in ${o.findings} is seed ${prior.seed}`);
          if (o.kernel && o.kernel.join() !== priorKernels.join()) throw new Error(`--kernel ${o.kernel.join(',')}: the campaign in ${o.findings} runs ${priorKernels.join(',')}`);
          if (o.runs === undefined && o.time === undefined && prior.runsPerKernel === undefined) throw new Error(`the campaign in ${o.findings} was bounded by time only: give --runs or --time to resume it`);
          if (!o.exceptions.length && prior.options.exceptions) o.exceptions = prior.options.exceptions.split(' --exceptions ');
        }
        if (o.exceptions.length) exceptions = await loadExceptionsFrom(o.exceptions);
      } catch (e) {
        io.stderr(failureText(cmd, e));
        return onExit(SCENARIO_EXIT.TROUBLE);
      }
      const seed = prior?.seed ?? o.seed ?? Math.floor(Math.random() * 2 ** 32);
      const kernels = priorKernels ?? o.kernel ?? [...SCENARIO_KERNELS];
      const runs = o.runs ?? prior?.runsPerKernel ?? (o.time === undefined ? 10 : undefined);
      const bounds = [runs !== undefined && `${runs} run${runs === 1 ? '' : 's'} per kernel`, o.time !== undefined && `at most ${secs(o.time)}`].filter(Boolean).join(', ');
      if (!o.json) io.stdout(`memhp fuzz: ${prior ? `resuming after ${plural(prior.runs.length, 'run')}, ` : ''}seed ${seed}, kernels ${kernels.join(', ')}, ${bounds}; findings in ${o.findings}\n`);
      const bar = !o.json && io === processIo && process.stderr.isTTY ? progressBar({ ...o, ...(runs !== undefined ? { runs } : {}) }, kernels.length) : undefined;
      let summary: CampaignSummary;
      try {
        summary = await runCampaign({
          seed,
          kernels,
          ...(runs !== undefined ? { runs } : {}),
          ...(o.time !== undefined ? { timeMs: o.time } : {}),
          findingsDir: o.findings,
          targets: defaultTargets({ snapshot: o.snapshot }),
          ...(exceptions ? { exceptions } : {}),
          ...(o.exceptions.length ? { exceptionsFile: o.exceptions.join(' --exceptions ') } : {}),
          shrink: o.shrink,
          shrinkRuns: o.shrinkRuns,
          jobs: o.jobs,
          snapshot: o.snapshot,
          ...(prior ? { resume: prior } : {}),
          version: version(),
          onEvent: (e) => {
            bar?.onEvent(e);
            if (!bar && !o.json && e.type === 'run-end') io.stdout(`${runLine(e.record, e.summary)}\n`);
          },
        });
      } catch (e) {
        io.stderr(failureText(cmd, e));
        return onExit(SCENARIO_EXIT.TROUBLE);
      } finally {
        bar?.stop();
      }
      io.stdout(o.json ? `${JSON.stringify(summary, null, 2)}\n` : summaryText(summary, o.findings));
      onExit(summary.divergences + summary.simErrors > 0 ? SCENARIO_EXIT.DIFFERENT : summary.errors > 0 ? SCENARIO_EXIT.TROUBLE : SCENARIO_EXIT.OK);
    });
}

/** `memhp fuzz …` with `argv` after `fuzz`; resolves to the exit code. */
export function runFuzz(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  return runSubcommand(fuzzCommand, argv, io);
}
