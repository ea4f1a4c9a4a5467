/**
 * A fuzz campaign: generated scenarios run on both sides (compare.ts), each new divergence confirmed
 * on the guest, shrunk and written to the findings directory (findings.ts), with `summary.json`
 * rewritten after every run so a long campaign can be watched and cut off.
 *
 * Per divergence: the original is run on the guest a second time. If the guest disagrees with itself
 * the finding is **unstable** (reported with the guest-vs-guest diff, not shrunk: shrinking needs a
 * stable oracle). Otherwise it is shrunk (shrink.ts) with candidates that must show the same signature.
 * A divergence with the signature of an earlier finding of the same kernel is a duplicate: counted,
 * not shrunk again. A simulator crash is a finding too, shrunk on the simulator alone.
 *
 * Scenario i for kernel k is generated from `mixSeed(seed, i, k)`, so a seed names the same scenarios
 * whatever other kernels a campaign runs.
 */
import { troubleMessage } from '../cli/sim.js';
import { diffObservations, formatDiff, formatSteps, type DiffReport } from '../scenario/diff.js';
import type { DivergenceException } from '../scenario/exceptions.js';
import { NORMALISATIONS, type Normalisation } from '../scenario/normalise.js';
import type { Observation } from '../scenario/observation.js';
import type { Scenario, ScenarioKernel } from '../scenario/schema.js';
import { compare, type Comparison, type FuzzTargets } from './compare.js';
import { tally, writeFinding, writeSummary, type CampaignSummary, type FindingFiles, type FindingRecord, type RunRecord, type RunVerdict } from './findings.js';
import { generateScenario } from './generate.js';
import { mixSeed } from './rng.js';
import { shrinkScenario } from './shrink.js';

/** What a campaign reports while it runs (for progress output). */
export type CampaignEvent =
  /** A run starts. */
  | { readonly type: 'run-start'; readonly kernel: ScenarioKernel; readonly index: number; readonly scenario: Scenario }
  /** A divergence is being confirmed (`rerun`) or shrunk (`shrink`, after each candidate). */
  | { readonly type: 'phase'; readonly phase: 'rerun' | 'shrink'; readonly scenario: string; readonly runs?: number; readonly steps?: number }
  /** A run ended; `finding` when it made a new one. */
  | { readonly type: 'run-end'; readonly record: RunRecord; readonly finding?: FindingRecord; readonly summary: CampaignSummary };

/** Options of {@link runCampaign}. */
export interface CampaignOptions {
  /** The campaign seed. */
  seed: number;
  /** Kernels; runs go round-robin over them. */
  kernels: readonly ScenarioKernel[];
  /** Runs per kernel; unbounded (until `timeMs`) when absent. One of the two must be given. */
  runs?: number;
  /** Wall-clock budget in milliseconds: no run, re-run or shrink candidate starts after it. */
  timeMs?: number;
  /** Where findings and summary.json go. */
  findingsDir: string;
  /** The two sides. */
  targets: FuzzTargets;
  /** Documented divergences. */
  exceptions?: readonly DivergenceException[];
  /** Where the exceptions came from (`a.yaml --exceptions dir/`), recorded in the summary and the findings' README. */
  exceptionsFile?: string;
  /** Shrink findings (default true). */
  shrink?: boolean;
  /** Candidate runs per finding (default 60); a simulator crash gets five times as many (they are milliseconds each). */
  shrinkRuns?: number;
  /** Whether guests are restored from the snapshot cache (recorded in the summary). */
  snapshot?: boolean;
  /** Step count bounds of generated scenarios (default 6–20). */
  minSteps?: number;
  /** See {@link CampaignOptions.minSteps}. */
  maxSteps?: number;
  /**
   * An earlier summary of this campaign (same seed and kernels) to continue: its runs and findings are
   * kept, the runs it made are not made again, a divergence with one of its signatures is a duplicate.
   * `runs` still counts per kernel over the whole campaign; `timeMs` bounds this session.
   */
  resume?: CampaignSummary;
  /**
   * Runs at a time (default 1): each keeps one guest busy, so up to the host's cores helps. The
   * scenarios, verdicts and findings are those of a serial campaign; only which of two runs that meet
   * the same new divergence becomes the finding may differ.
   */
  jobs?: number;
  /** The memhp version, recorded per session. */
  version?: string;
  /** Progress. */
  onEvent?: (e: CampaignEvent) => void;
}

/** The first difference of a report as one line: `step 3 (write …/memory32/state "offline"): result: guest ok / sim EBUSY`. */
export function headline(r: DiffReport): string {
  const d = r.differences[0];
  if (!d) return 'no difference';
  return d.step === undefined ? d.text : `step ${d.step} (${d.stepText ?? ''}): ${d.text}`;
}

/** The scenario without the steps after its first difference: they cannot change what came before. */
function cutAfter(s: Scenario, r: DiffReport): Scenario {
  const steps = r.differences.flatMap((d) => (d.step === undefined ? [] : [d.step]));
  return steps.length ? { ...s, steps: s.steps.slice(0, Math.min(...steps) + 1) } : s;
}

/**
 * The differ's table for a guest against its own re-run. Two boots of one machine differ in what
 * memblock kept for themselves (a page of MemTotal; a re-run that saves its guest boots with another
 * initramfs), the very reason `boot-reservations` compares those counters as changes since the
 * baseline between a guest and the simulator (lib/scenario/normalise.ts); so it applies here too.
 */
const GUEST_VS_GUEST: readonly Normalisation[] = NORMALISATIONS.map((n) => (n.name === 'boot-reservations' ? { ...n, scope: 'with-guest' } : n));

const pair = (c: Comparison): { guest?: Observation; sim?: Observation } => ({ ...(c.guest ? { guest: c.guest } : {}), ...(c.sim ? { sim: c.sim } : {}) });

/** Run a campaign; resolves with the final summary (also in `<findingsDir>/summary.json`). */
export async function runCampaign(o: CampaignOptions): Promise<CampaignSummary> {
  if (o.runs === undefined && o.timeMs === undefined) throw new RangeError('runCampaign: give runs, timeMs or both');
  const t0 = performance.now();
  const deadline = o.timeMs !== undefined ? t0 + o.timeMs : undefined;
  const late = (): boolean => deadline !== undefined && performance.now() >= deadline;
  const shrinkRuns = o.shrinkRuns ?? 60;
  const prior = o.resume;
  if (prior && (prior.seed !== o.seed || prior.kernels.join() !== o.kernels.join()))
    throw new RangeError(`cannot resume: the campaign was seed ${prior.seed} on ${prior.kernels.join(',')}, not seed ${o.seed} on ${o.kernels.join(',')}`);
  const before = prior?.elapsedMs ?? 0;
  const session = { startedAt: new Date().toISOString(), memhp: o.version ?? 'unknown', jobs: Math.max(1, o.jobs ?? 1), runs: 0, elapsedMs: 0 };
  const summary: CampaignSummary = {
    seed: o.seed,
    kernels: [...o.kernels],
    ...(o.runs !== undefined ? { runsPerKernel: o.runs } : {}),
    ...(o.timeMs !== undefined ? { timeBudgetMs: o.timeMs } : {}),
    startedAt: prior?.startedAt ?? session.startedAt,
    elapsedMs: before,
    sessions: [...(prior?.sessions ?? []), session],
    complete: false,
    scenariosRun: 0,
    agree: 0,
    divergences: 0,
    unstable: 0,
    simErrors: 0,
    errors: 0,
    timePerRunMs: { mean: 0, median: 0, min: 0, max: 0 },
    options: { shrink: o.shrink !== false, shrinkRuns, snapshot: o.snapshot !== false, ...(o.exceptionsFile ? { exceptions: o.exceptionsFile } : {}) },
    runs: [...(prior?.runs ?? [])],
    findings: (prior?.findings ?? []).map((f) => ({ ...f })),
  };
  const known = new Map<string, FindingRecord>(summary.findings.map((f) => [`${f.kernel} ${f.signature}`, f]));
  const made = new Set(summary.runs.map((r) => `${r.kernel} ${r.index}`));
  const close = (): void => {
    tally(summary, t0, before);
    session.elapsedMs = summary.elapsedMs - before;
  };
  const exceptions = o.exceptions ? { exceptions: o.exceptions } : {};

  /** A new finding (already shrunk): write its directory, remember its signature. */
  const record = async (kind: FindingRecord['kind'], name: string, kernel: ScenarioKernel, key: string, line: string, files: FindingFiles, shrink: { runs: number; complete: boolean }): Promise<FindingRecord> => {
    await writeFinding(o.findingsDir, name, files);
    const f: FindingRecord = {
      dir: name,
      kernel,
      kind,
      signature: key,
      headline: line,
      originalSteps: files.original.steps.length,
      minimalSteps: files.minimal.steps.length,
      shrinkRuns: shrink.runs,
      shrinkComplete: shrink.complete,
      duplicates: 0,
    };
    known.set(`${kernel} ${key}`, f);
    summary.findings.push(f);
    return f;
  };

  const comment = (name: string, kernel: ScenarioKernel, what: string, s: { from: number; to: number; runs: number; complete: boolean } | undefined): string =>
    [
      `memhp fuzz finding ${name} (seed ${o.seed}, kernel ${kernel}): ${what}`,
      s ? `Shrunk from ${s.from} to ${s.to} steps in ${s.runs} runs${s.complete ? '' : ' (cut short by the run budget or the time limit)'}; the generated scenario is original.yaml.` : 'Not shrunk; original.yaml is the same scenario.',
      `Run it: memhp conform scenario.yaml --kernel ${kernel}${o.exceptionsFile ? ` --exceptions ${o.exceptionsFile}` : ''}`,
    ].join('\n');

  /** Guest and simulator differ with a new signature: confirm, then shrink. */
  const diverged = async (scenario: Scenario, kernel: ScenarioKernel, name: string, c: Comparison): Promise<{ verdict: RunVerdict; finding: FindingRecord }> => {
    const key = c.signature!.key;
    const first = headline(c.report!);
    o.onEvent?.({ type: 'phase', phase: 'rerun', scenario: scenario.name });
    let rerun: Observation | undefined;
    let rerunError: string | undefined;
    try {
      rerun = await o.targets.guest(scenario, kernel, true);
    } catch (e) {
      rerunError = troubleMessage(e);
    }
    const self = rerun && diffObservations(c.guest!, rerun, { labels: ['guest', 'guest re-run'], normalisations: GUEST_VS_GUEST });
    if (!self || !self.ok) {
      const why = self ? `the guest disagrees with itself (${headline(self)})` : `the guest re-run failed (${rerunError})`;
      const described = { ...scenario, description: `unstable on ${kernel}: ${why}; guest vs simulator: ${first}` };
      const diff = `${self ? formatDiff(self) : `guest re-run failed: ${rerunError}`}\n\nguest (first run) vs simulator:\n${formatDiff(c.report!)}`;
      const files: FindingFiles = { minimal: described, original: scenario, comment: comment(name, kernel, 'unstable (the guest disagrees with itself)', undefined), diff, observations: { original: pair(c), ...(rerun ? { rerun } : {}) } };
      return { verdict: 'unstable', finding: await record('unstable', name, kernel, key, why, files, { runs: 0, complete: false }) };
    }
    let minimal = scenario;
    let evidence = c;
    let shrink = { runs: 0, complete: false };
    if (o.shrink !== false) {
      const r = await shrinkScenario(
        scenario,
        async (cand) => {
          const x = await compare(cand, kernel, o.targets, { ...exceptions, repeat: true });
          return x.signature?.key === key ? x : undefined;
        },
        { maxRuns: shrinkRuns, hints: [cutAfter(scenario, c.report!)], ...(deadline !== undefined ? { deadline } : {}), onTest: (e) => o.onEvent?.({ type: 'phase', phase: 'shrink', scenario: scenario.name, runs: e.runs, steps: e.steps }) },
      );
      minimal = r.scenario;
      evidence = r.evidence ?? c;
      shrink = { runs: r.runs, complete: !r.cutShort };
    }
    const line = headline(evidence.report!);
    const described = { ...minimal, description: `${kernel}: guest and simulator differ at ${line}` };
    const diff = `${formatDiff(evidence.report!)}${minimal !== scenario ? `\n\noriginal (${scenario.steps.length} steps):\n${formatDiff(c.report!)}` : ''}`;
    const files: FindingFiles = {
      minimal: described,
      original: scenario,
      comment: comment(name, kernel, 'guest and simulator differ', o.shrink !== false ? { from: scenario.steps.length, to: minimal.steps.length, ...shrink } : undefined),
      diff,
      observations: { minimal: pair(evidence), original: pair(c), rerun: rerun! },
    };
    return { verdict: 'diverge', finding: await record('divergence', name, kernel, key, line, files, shrink) };
  };

  /** The simulator could not complete the run: shrink on the simulator alone, then run the guest once for context. */
  const crashed = async (scenario: Scenario, kernel: ScenarioKernel, name: string, c: Comparison): Promise<FindingRecord> => {
    const sig = c.simFailure!.signature;
    let minimal = scenario;
    let shrink = { runs: 0, complete: false };
    if (o.shrink !== false) {
      const r = await shrinkScenario(scenario, async (cand) => ((await compare(cand, kernel, o.targets, { simOnly: true })).simFailure?.signature.key === sig.key ? true : undefined), {
        maxRuns: shrinkRuns * 5,
        hints: [{ ...scenario, steps: scenario.steps.slice(0, c.simFailure!.step + 1) }],
        ...(deadline !== undefined ? { deadline } : {}),
      });
      minimal = r.scenario;
      shrink = { runs: r.runs, complete: !r.cutShort };
    }
    const m = minimal === scenario ? c : await compare(minimal, kernel, o.targets, exceptions);
    const fail = m.simFailure ?? c.simFailure!;
    const diff = [`The simulator could not complete the run: ${fail.message}`, fail.partial ? formatSteps(fail.partial) : '', m.guest ? formatSteps(m.guest) : m.guestFailure ? `guest: ${m.guestFailure.message}` : ''].filter(Boolean).join('\n\n');
    const files: FindingFiles = {
      minimal: { ...minimal, description: `${kernel}: the simulator fails at step ${fail.step} (${fail.message.split('\n')[0]})` },
      original: scenario,
      comment: comment(name, kernel, 'the simulator crashes', o.shrink !== false ? { from: scenario.steps.length, to: minimal.steps.length, ...shrink } : undefined),
      diff,
      observations: { minimal: { ...pair(m), ...(fail.partial ? { sim: fail.partial } : {}) }, original: { ...pair(c), ...(c.simFailure?.partial ? { sim: c.simFailure.partial } : {}) } },
    };
    return record('sim-error', name, kernel, sig.key, fail.message.split('\n')[0]!, files, shrink);
  };

  // Work goes to `jobs` workers, each taking the next (index, kernel) when it is free: the guests are
  // QEMU processes, so N workers keep N guests running. A signature being confirmed and shrunk by one
  // worker is pending: another worker that meets it waits and counts a duplicate, it does not shrink it again.
  const pending = new Map<string, Promise<FindingRecord>>();
  const order = (r: RunRecord): number => r.index * o.kernels.length + o.kernels.indexOf(r.kernel);
  let saving = Promise.resolve();
  const save = (): Promise<void> => (saving = saving.then(() => writeSummary(o.findingsDir, summary)));
  function* work(): Generator<{ index: number; kernel: ScenarioKernel }> {
    for (let index = 0; o.runs === undefined || index < o.runs; index++) for (const kernel of o.kernels) if (!made.has(`${kernel} ${index}`)) yield { index, kernel };
  }
  const queue = work();
  let stoppedEarly = false;

  const run = async (index: number, kernel: ScenarioKernel): Promise<void> => {
    const scenarioSeed = mixSeed(o.seed, index, kernel);
    const name = `${kernel}-${o.seed}-${index}`;
    const scenario = generateScenario({ kernel, seed: scenarioSeed, name: `fuzz-${name}`, ...(o.minSteps ? { minSteps: o.minSteps } : {}), ...(o.maxSteps ? { maxSteps: o.maxSteps } : {}) });
    o.onEvent?.({ type: 'run-start', kernel, index, scenario });
    const r0 = performance.now();
    const c = await compare(scenario, kernel, o.targets, exceptions);
    let verdict: RunVerdict;
    let finding: FindingRecord | undefined;
    let repeats: FindingRecord | undefined;
    const key = c.simFailure?.signature.key ?? c.signature?.key;
    const k = `${kernel} ${key}`;
    const earlier = key !== undefined ? (known.get(k) ?? pending.get(k)) : undefined;
    if (earlier) {
      verdict = 'duplicate';
      repeats = await earlier;
      repeats.duplicates++;
    } else if (c.simFailure) {
      const p = crashed(scenario, kernel, name, c);
      pending.set(k, p);
      verdict = 'sim-error';
      finding = await p;
    } else if (c.guestFailure) verdict = 'error';
    else if (!c.signature) verdict = 'agree';
    else {
      const p = diverged(scenario, kernel, name, c);
      pending.set(k, p.then((x) => x.finding));
      ({ verdict, finding } = await p);
    }
    const rec: RunRecord = {
      kernel,
      index,
      scenario: scenario.name,
      scenarioSeed,
      steps: scenario.steps.length,
      verdict,
      simMs: Math.round(c.simMs),
      guestMs: Math.round(c.guestMs),
      ms: Math.round(performance.now() - r0),
      ...(key !== undefined ? { signature: key } : {}),
      ...(finding || repeats ? { finding: (finding ?? repeats)!.dir } : {}),
      ...(c.guestFailure && !c.simFailure ? { error: c.guestFailure.message } : {}),
    };
    // In campaign order whatever order the workers finish in, so a summary reads the same for any `jobs`.
    const at = summary.runs.findIndex((r) => order(r) > order(rec));
    summary.runs.splice(at < 0 ? summary.runs.length : at, 0, rec);
    session.runs++;
    close();
    await save();
    o.onEvent?.({ type: 'run-end', record: rec, ...(finding ? { finding } : {}), summary });
  };

  const worker = async (): Promise<void> => {
    for (let next = queue.next(); !next.done; next = queue.next()) {
      if (late()) {
        stoppedEarly = true;
        return;
      }
      await run(next.value.index, next.value.kernel);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.jobs ?? 1) }, worker));
  summary.complete = !stoppedEarly || o.runs === undefined;
  close();
  await save();
  return summary;
}

