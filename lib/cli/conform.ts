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
 * Progress goes to stderr as each case runs, except with --json: on a terminal one live line (case
 * i/N, scenario, kernel, what it is doing — simulator, kernel, booting or restoring the guest, saving
 * it, steps — and the time), otherwise one line when a case starts and one, key=value, when it ends
 * with how the guest came up and the times ({@link caseStartLine}, {@link caseEndLine}).
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
import type { BootInfo, BootPhase } from '../guest/guest.js';
import { runOnGuest, type GuestRunOptions } from '../scenario/guest.js';
import { toJUnit, type ConformanceCase } from '../scenario/junit.js';
import type { Observation } from '../scenario/observation.js';
import { loadScenario, type Scenario, type ScenarioKernel } from '../scenario/schema.js';
import { runOnSimulator } from '../scenario/sim.js';
import { failureText, processIo, runSubcommand, type CliIo, type CommandOptions } from './io.js';
import { SCENARIO_EXIT, formatStepsWithDetails, kernelArg, troubleMessage } from './sim.js';

/** The profile a kernel name stands for ('latest' → the newest profile), to compare kernel lists. */
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
  /**
   * ms from the start of the guest's turn to QEMU's start: the kernel checked in the cache (or
   * downloaded and unpacked), the initramfs built, the snapshot cache looked up.
   */
  readonly prepareMs?: number;
}

/** Options of {@link conformScenario}. */
export interface ConformOptions {
  /** Documented divergences. */
  exceptions?: readonly DivergenceException[];
  /** Harness options for the guest (accelerator, timeouts). */
  boot?: GuestRunOptions['boot'];
  /** Told what the case is doing as it goes (progress output). */
  onProgress?: (p: CaseProgress) => void;
}

/**
 * What a case is doing: the simulator run, then the guest's boot phases ('kernel', with 'download'
 * while a kernel's packages download, 'setup', 'booting' or 'restoring', 'saving'), 'up' once the
 * guest is ready (with how it came up), then each step done.
 */
export type CaseProgress =
  | { phase: 'sim' }
  | { phase: BootPhase }
  | { phase: 'download'; what: string; bytes: number; percent: number }
  | { phase: 'up'; boot: BootInfo }
  | { phase: 'steps'; done: number; steps: number };

const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** How the guest came up, in words: `booted in 4.2 s`, `booted in 4.2 s and saved in 0.4 s`, `restored in 0.6 s`. */
function cameUp(o: Observation): string {
  const b = o.guestBoot;
  if (!b) return `boot ${secs(o.bootMs ?? 0)}`;
  if (b.path === 'restored') return `restored in ${secs(b.ms)}`;
  return `booted in ${secs(b.ms)}${b.path === 'booted-and-saved' && b.saveMs !== undefined ? ` and saved in ${secs(b.saveMs)}` : ''}`;
}

/** The timing line of a case: `sim 12 ms, guest prepared in 0.9 s, booted in 4.2 s + steps 1.3 s, total 6.8 s` (or `…, restored in 0.6 s + …`). */
export function timingText(c: ConformRun): string {
  const parts: string[] = [];
  if (c.sim) parts.push(`sim ${c.sim.ms.toFixed(0)} ms`);
  if (c.guest) parts.push(`guest ${c.prepareMs !== undefined ? `prepared in ${secs(c.prepareMs)}, ` : ''}${cameUp(c.guest)} + steps ${secs(c.guest.ms)}`);
  if (c.seconds !== undefined) parts.push(`total ${c.seconds.toFixed(1)} s`);
  return parts.join(', ');
}

/** A key=value field of a progress line; the value quoted (JSON) when it has spaces, quotes or `=`. */
const field = (k: string, v: string | number): string => `${k}=${typeof v === 'number' || /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v)}`;

/** The line of a starting case (stderr, not on a terminal): `[1/3] start scenario=plug-online-movable kernel=6.12`. */
export function caseStartLine(i: number, n: number, scenario: string, kernel: string): string {
  return `[${i}/${n}] start ${field('scenario', scenario)} ${field('kernel', kernel)}`;
}

/**
 * The line of a finished case (stderr, not on a terminal): the result, how the guest came up and the
 * times, e.g. `[1/3] end scenario=plug-online-movable kernel=6.12 result=agree prepare_ms=850
 * guest=restored boot_ms=612 steps_ms=1290 sim_ms=14 total_ms=2900 accel=tcg`; `save_ms`,
 * `snapshot_reason` and `error` when there are. The total also holds closing the guest and the diff.
 */
export function caseEndLine(i: number, n: number, c: ConformRun): string {
  const g = c.guest;
  const b = g?.guestBoot;
  const f: string[] = [field('scenario', c.scenario), field('kernel', c.kernel), field('result', c.error ? 'error' : c.report?.ok ? 'agree' : 'differ')];
  if (c.prepareMs !== undefined) f.push(field('prepare_ms', Math.round(c.prepareMs)));
  if (g) f.push(field('guest', b?.path ?? 'booted'), field('boot_ms', Math.round(b?.ms ?? g.bootMs ?? 0)));
  if (b?.saveMs !== undefined) f.push(field('save_ms', Math.round(b.saveMs)));
  if (g) f.push(field('steps_ms', Math.round(g.ms)));
  if (c.sim) f.push(field('sim_ms', Math.round(c.sim.ms)));
  if (c.seconds !== undefined) f.push(field('total_ms', Math.round(c.seconds * 1000)));
  if (b) f.push(field('accel', b.accel));
  if (b?.snapshotReason) f.push(field('snapshot_reason', b.snapshotReason));
  if (c.error) f.push(field('error', c.error.split('\n')[0]!));
  return `[${i}/${n}] end ${f.join(' ')}`;
}

/** What a case is doing, in words, for the live line. */
function phaseText(p: CaseProgress, up?: BootInfo): string {
  switch (p.phase) {
    case 'sim':
      return 'simulator';
    case 'kernel':
      return 'checking the kernel';
    case 'download':
      return `downloading ${p.what}: ${p.percent.toFixed(0)} % of ${(p.bytes / 1e6).toFixed(1)} MB`;
    case 'setup':
      return 'building the initramfs';
    case 'booting':
      return 'booting the guest';
    case 'restoring':
      return 'restoring the guest';
    case 'saving':
      return 'saving the booted guest';
    case 'up':
    case 'steps': {
      const how = up ? `${up.path === 'restored' ? 'restored' : 'booted'} in ${secs(up.bootMs)}; ` : '';
      return p.phase === 'up' ? `${how}steps starting` : `${how}steps ${p.done}/${p.steps}`;
    }
  }
}

/** Progress of a conform run: told when each case starts, how it goes, and when it ends. */
export interface ConformProgress {
  start(i: number, n: number, scenario: string, kernel: string): void;
  progress(p: CaseProgress): void;
  end(i: number, n: number, c: ConformRun, tally: { agree: number; differ: number; errors: number }): void;
  /** Write report text to stdout (on a terminal, around the live line). */
  stdout(text: string): void;
  stop(): void;
}

/** Not on a terminal: a line on stderr when a case starts and one when it ends; one when a kernel download starts. */
export function lineProgress(io: CliIo): ConformProgress {
  let at = '';
  return {
    start: (i, n, s, k) => {
      at = `[${i}/${n}]`;
      io.stderr(`${caseStartLine(i, n, s, k)}\n`);
    },
    progress: (p) => {
      if (p.phase === 'download' && p.percent === 0) io.stderr(`${at} download ${field('what', p.what)} ${field('bytes', p.bytes)}\n`);
    },
    end: (i, n, c) => io.stderr(`${caseEndLine(i, n, c)}\n`),
    stdout: (t) => io.stdout(t),
    stop: () => undefined,
  };
}

/**
 * On a terminal: one live line on stderr, redrawn every half second and cleared around report output:
 * `[2/5] plug-online-movable on 6.12 · booting the guest, 3.2 s | 1 agree, 0 differ | 14.0 s in all`,
 * cut to the terminal's width. A kernel download shows in it too (the harness draws no bar of its own then).
 */
export function liveProgress(stream: NodeJS.WriteStream = process.stderr, stdout: (t: string) => void = processIo.stdout): ConformProgress {
  const t0 = performance.now();
  let caseT0 = t0;
  let head = '';
  let phase: CaseProgress | undefined;
  let up: BootInfo | undefined;
  let tally = '0 agree, 0 differ';
  let shown = false;
  const clear = (): void => {
    if (shown) stream.write('\r\x1b[K');
    shown = false;
  };
  const draw = (): void => {
    if (!head) return clear();
    const now = performance.now();
    const line = `${head} · ${phase ? phaseText(phase, up) : 'starting'}, ${secs(now - caseT0)} | ${tally} | ${secs(now - t0)} in all`;
    const width = Math.max((stream.columns ?? 100) - 1, 20);
    stream.write(`\r\x1b[K${line.length > width ? `${line.slice(0, width - 1)}…` : line}`);
    shown = true;
  };
  const tick = setInterval(draw, 500);
  tick.unref();
  return {
    start: (i, n, s, k) => {
      head = `[${i}/${n}] ${s} on ${k}`;
      caseT0 = performance.now();
      phase = undefined;
      up = undefined;
      draw();
    },
    progress: (p) => {
      if (p.phase === 'up') up = p.boot;
      phase = p;
      draw();
    },
    end: (_i, _n, _c, t) => {
      tally = `${t.agree} agree, ${t.differ} differ${t.errors ? `, ${t.errors} could not complete` : ''}`;
    },
    stdout: (t) => {
      clear();
      stdout(t);
      draw();
    },
    stop: () => {
      clearInterval(tick);
      head = '';
      clear();
    },
  };
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
  const tell = opts.onProgress;
  // From the guest's turn to QEMU's start: the kernel checked (or downloaded), the initramfs built, the snapshot looked up.
  let guestT0: number | undefined;
  let prepareMs: number | undefined;
  const onPhase = (phase: BootPhase): void => {
    if ((phase === 'booting' || phase === 'restoring') && prepareMs === undefined && guestT0 !== undefined) prepareMs = performance.now() - guestT0;
    tell?.({ phase });
  };
  const prep = (): { prepareMs?: number } => (prepareMs !== undefined ? { prepareMs } : {});
  try {
    // The simulator first: it takes milliseconds, and a model failure is reported without a boot.
    tell?.({ phase: 'sim' });
    sim = await runOnSimulator(scenario, { kernel });
    const steps = scenario.steps.length;
    guestT0 = performance.now();
    guest = await runOnGuest(scenario, {
      kernel,
      boot: {
        ...opts.boot,
        onPhase,
        // Downloads report to the progress output instead of drawing their own bar.
        ...(tell ? { prepare: { ...opts.boot?.prepare, onDownload: (what: string, bytes: number, percent: number) => tell({ phase: 'download', what, bytes, percent }) } } : {}),
      },
      ...(tell ? { onBooted: (boot: BootInfo) => tell({ phase: 'up', boot }), onStep: (s: { index: number }) => tell({ phase: 'steps', done: s.index + 1, steps }) } : {}),
    });
  } catch (e) {
    const partial = e instanceof ScenarioRunError ? e.observation : undefined;
    const output = [sim && formatSteps(sim), partial && formatSteps(partial)].filter(Boolean).join('\n');
    return { scenario: scenario.name, kernel: profileOf(kernel), error: troubleMessage(e), seconds: seconds(), ...prep(), ...(output ? { output } : {}), ...(sim ? { sim } : {}), ...(partial?.target === 'guest' ? { guest: partial } : {}) };
  }
  const report: DiffReport = diffObservations(guest, sim, { ...(opts.exceptions ? { exceptions: opts.exceptions } : {}) });
  return { scenario: scenario.name, kernel: report.kernel, report, seconds: seconds(), ...prep(), output: `${formatStepsWithDetails(guest, true)}
${formatStepsWithDetails(sim, true)}`, guest, sim };
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
      const total = scenarios.reduce((n, s) => n + kernelsFor(s, o.kernel).run.length, 0);
      // Progress on stderr: a live line on a terminal, else a line per case start and end; none with --json.
      const progress = o.json ? undefined : io === processIo && process.stderr.isTTY ? liveProgress() : lineProgress(io);
      const out = (t: string): void => (progress ? progress.stdout(t) : io.stdout(t));
      const tally = { agree: 0, differ: 0, errors: 0 };
      try {
        for (const s of scenarios) {
          const { run, skipped } = kernelsFor(s, o.kernel);
          if (skipped.length && !o.json) out(`${s.name}: skipped on ${skipped.join(', ')} (the scenario is for ${s.machine.kernels.join(', ')})\n`);
          for (const k of run) {
            const i = runs.length + 1;
            progress?.start(i, total, s.name, profileOf(k));
            const c = await conformScenario(s, k, { exceptions, boot: { snapshot: o.snapshot ? 'reuse' : 'off' }, ...(progress ? { onProgress: (p: CaseProgress) => progress.progress(p) } : {}) });
            runs.push(c);
            if (c.error) tally.errors++;
            else if (c.report?.ok) tally.agree++;
            else tally.differ++;
            progress?.end(i, total, c, tally);
            if (o.json) continue;
            if (c.error) out(`${s.name} on ${c.kernel}: ERROR (${timingText(c)})\n  ${c.error.split('\n').join('\n  ')}\n${c.output ? `${c.output}\n` : ''}`);
            else out(`${formatDiff(c.report!)}\n  ${timingText(c)}\n${o.verbose ? `${c.output}\n` : ''}`);
          }
        }
      } finally {
        progress?.stop();
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
