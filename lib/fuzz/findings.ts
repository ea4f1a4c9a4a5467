/**
 * What a campaign leaves behind in its findings directory:
 *
 * ```text
 * <findings>/summary.json                    the campaign: seed, kernels, every run with its verdict and times
 * <findings>/<kernel>-<seed>-<index>/
 *   scenario.yaml                            the minimal scenario: a suite file, `memhp conform` runs it
 *   original.yaml                            the generated scenario it was shrunk from
 *   diff.txt                                 formatDiff of the minimal scenario (then of the original)
 *   observations.json                        both sides' observations of both (and an unstable one's re-run)
 * ```
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Observation } from '../scenario/observation.js';
import type { Scenario, ScenarioKernel } from '../scenario/schema.js';
import { scenarioYaml } from './document.js';

/** How a run ended. */
export type RunVerdict =
  /** Guest and simulator agree (outside the exceptions). */
  | 'agree'
  /** They differ, with a signature not seen before in the campaign: a new finding. */
  | 'diverge'
  /** They differ with the signature of an earlier finding (not shrunk again). */
  | 'duplicate'
  /** They differ, and the guest disagrees with itself on a re-run: an unstable finding. */
  | 'unstable'
  /** The simulator could not complete the run (a model crash): a finding. */
  | 'sim-error'
  /** The guest could not complete the run (harness trouble or a scenario that killed it). */
  | 'error';

/** One run of the campaign. */
export interface RunRecord {
  /** The kernel, as asked for ('latest' stays 'latest'). */
  readonly kernel: ScenarioKernel;
  /** The run's index for this kernel (from 0). */
  readonly index: number;
  /** The generated scenario's name. */
  readonly scenario: string;
  /** The seed the scenario was generated from (`mixSeed(seed, index, kernel)`). */
  readonly scenarioSeed: number;
  /** Its step count. */
  readonly steps: number;
  /** How it ended. */
  readonly verdict: RunVerdict;
  /** Simulator milliseconds. */
  readonly simMs: number;
  /** Guest milliseconds (boot or restore included). */
  readonly guestMs: number;
  /** The whole run in milliseconds, re-run and shrinking included. */
  readonly ms: number;
  /** The divergence's signature key. */
  readonly signature?: string;
  /** The finding's directory name (a new finding, or the one a duplicate repeats). */
  readonly finding?: string;
  /** Why the run could not complete. */
  readonly error?: string;
}

/** One finding. */
export interface FindingRecord {
  /** Its directory under the findings directory: `<kernel>-<seed>-<index>`. */
  readonly dir: string;
  /** The kernel. */
  readonly kernel: ScenarioKernel;
  /** What kind of finding. */
  readonly kind: 'divergence' | 'unstable' | 'sim-error';
  /** The signature key. */
  readonly signature: string;
  /** The first difference (or the failure), one line. */
  readonly headline: string;
  /** Steps of the generated scenario. */
  readonly originalSteps: number;
  /** Steps of the minimal one. */
  readonly minimalSteps: number;
  /** Candidate runs the shrinker made. */
  readonly shrinkRuns: number;
  /** Whether the shrinker ran to its end (false: cut short by its budget or the deadline, or not run). */
  readonly shrinkComplete: boolean;
  /** Later runs with the same signature. */
  duplicates: number;
}

/** `summary.json`. */
export interface CampaignSummary {
  /** The campaign seed. */
  readonly seed: number;
  /** The kernels, as asked for. */
  readonly kernels: readonly ScenarioKernel[];
  /** Runs per kernel asked for (absent: until the time budget ran out). */
  readonly runsPerKernel?: number;
  /** The time budget in milliseconds, if any. */
  readonly timeBudgetMs?: number;
  /** When the campaign started (ISO 8601). */
  readonly startedAt: string;
  /** Milliseconds spent running it, over all its sessions. */
  elapsedMs: number;
  /** Each time the campaign was run or resumed (`memhp fuzz --resume`), in order; absent in summaries of older memhp. */
  sessions?: CampaignSession[];
  /** Whether the campaign ran to its end (false while running, or when stopped by the time budget before all runs). */
  complete: boolean;
  /** Scenarios run. */
  scenariosRun: number;
  /** Runs where guest and simulator agreed. */
  agree: number;
  /** Runs where they differed (new findings, duplicates and unstable ones). */
  divergences: number;
  /** Unstable findings. */
  unstable: number;
  /** Simulator crashes. */
  simErrors: number;
  /** Runs the guest could not complete. */
  errors: number;
  /** Milliseconds per run (each run's `ms`). */
  timePerRunMs: { mean: number; median: number; min: number; max: number };
  /** Options that shape the campaign. */
  readonly options: { readonly shrink: boolean; readonly shrinkRuns: number; readonly snapshot: boolean; readonly exceptions?: string };
  /** Every run, in order. */
  readonly runs: RunRecord[];
  /** Every finding, in order. */
  readonly findings: FindingRecord[];
}

/** One session of a campaign: a `memhp fuzz` that started it or resumed it. */
export interface CampaignSession {
  /** When the session started (ISO 8601). */
  readonly startedAt: string;
  /** The memhp version that ran it (a resumed campaign may span versions). */
  readonly memhp: string;
  /** Runs at a time (`--jobs`); absent in summaries of older memhp. */
  readonly jobs?: number;
  /** Runs it made. */
  runs: number;
  /** Milliseconds it ran. */
  elapsedMs: number;
}

/**
 * Recompute the counters and timings of a summary from its runs; `startedAt` is the current session's
 * start (`performance.now()`), `before` the milliseconds of earlier sessions.
 */
export function tally(s: CampaignSummary, startedAt: number, before = 0): void {
  const count = (...v: RunVerdict[]): number => s.runs.filter((r) => v.includes(r.verdict)).length;
  s.scenariosRun = s.runs.length;
  s.agree = count('agree');
  s.divergences = count('diverge', 'duplicate', 'unstable');
  s.unstable = count('unstable');
  s.simErrors = count('sim-error');
  s.errors = count('error');
  s.elapsedMs = Math.round(before + performance.now() - startedAt);
  const ms = s.runs.map((r) => r.ms).sort((a, b) => a - b);
  s.timePerRunMs = ms.length
    ? { mean: Math.round(ms.reduce((t, x) => t + x, 0) / ms.length), median: Math.round(ms[Math.floor(ms.length / 2)]!), min: Math.round(ms[0]!), max: Math.round(ms.at(-1)!) }
    : { mean: 0, median: 0, min: 0, max: 0 };
}

/** Write a file through a temporary name, so a reader never sees half of it. */
async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

/** Write `summary.json` into the findings directory. */
export async function writeSummary(dir: string, s: CampaignSummary): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeAtomic(path.join(dir, 'summary.json'), `${JSON.stringify(s, null, 2)}\n`);
}

/**
 * Read the `summary.json` of an earlier campaign, to resume it. Throws a RangeError naming the file when
 * it is missing, is not JSON, or lacks what resuming needs (seed, kernels, runs, findings).
 */
export async function readSummary(dir: string): Promise<CampaignSummary> {
  const file = path.join(dir, 'summary.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new RangeError(`no campaign to resume in ${dir}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new RangeError(`${file} is not JSON: ${(e as Error).message}`);
  }
  const s = v as Partial<CampaignSummary> | null;
  const bad = (what: string): never => {
    throw new RangeError(`${file} is not a memhp fuzz summary: ${what}`);
  };
  if (typeof s !== 'object' || s === null) return bad('not an object');
  if (!Number.isSafeInteger(s.seed)) bad("no whole number 'seed'");
  if (!Array.isArray(s.kernels) || !s.kernels.every((k) => typeof k === 'string')) bad("no list of 'kernels'");
  if (!Array.isArray(s.runs) || !s.runs.every((r: Partial<RunRecord>) => typeof r === 'object' && r !== null && typeof r.kernel === 'string' && Number.isSafeInteger(r.index) && typeof r.verdict === 'string')) bad("'runs' is not a list of runs");
  if (!Array.isArray(s.findings) || !s.findings.every((f: Partial<FindingRecord>) => typeof f === 'object' && f !== null && typeof f.kernel === 'string' && typeof f.signature === 'string')) bad("'findings' is not a list of findings");
  return s as CampaignSummary;
}

/** Observations of one scenario, guest and simulator. */
export interface ObservedPair {
  /** The guest's observation. */
  readonly guest?: Observation;
  /** The simulator's observation. */
  readonly sim?: Observation;
}

/** What a finding's directory holds. */
export interface FindingFiles {
  /** The minimal scenario (with a description of what it shows). */
  readonly minimal: Scenario;
  /** The generated scenario. */
  readonly original: Scenario;
  /** A comment for the head of scenario.yaml (how it was found, how to run it). */
  readonly comment: string;
  /** The text of diff.txt. */
  readonly diff: string;
  /** The content of observations.json. */
  readonly observations: { readonly minimal?: ObservedPair; readonly original: ObservedPair; readonly rerun?: Observation };
}

/** Write a finding's directory `<findings>/<name>/`; returns its path. */
export async function writeFinding(findingsDir: string, name: string, f: FindingFiles): Promise<string> {
  const dir = path.join(findingsDir, name);
  await mkdir(dir, { recursive: true });
  await writeAtomic(path.join(dir, 'scenario.yaml'), scenarioYaml(f.minimal, f.comment));
  await writeAtomic(path.join(dir, 'original.yaml'), scenarioYaml(f.original, `The generated scenario ${name} was shrunk from (memhp fuzz).`));
  await writeAtomic(path.join(dir, 'diff.txt'), `${f.diff.trimEnd()}\n`);
  await writeAtomic(path.join(dir, 'observations.json'), `${JSON.stringify(f.observations, null, 2)}\n`);
  return dir;
}
