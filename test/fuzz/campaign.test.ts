/**
 * Fuzz campaigns (lib/fuzz/campaign.ts) on the simulator only: the "guest" is the simulator with a
 * deliberate lie (test/fuzz/liars.ts). Findings are written, shrunk and reproduce; duplicates are not
 * shrunk again; a guest that disagrees with itself gives an unstable finding; a simulator crash is a
 * finding of its own; the same seed gives the same campaign; the time budget holds. And the `memhp
 * fuzz` argument parsing (the CLI against real guests is in test/fuzz/guest.test.ts).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { durationArg, runFuzz } from '../../lib/cli/fuzz.js';
import { runCampaign, type CampaignOptions } from '../../lib/fuzz/campaign.js';
import { compare, type FuzzTargets } from '../../lib/fuzz/compare.js';
import { readSummary, type CampaignSummary } from '../../lib/fuzz/findings.js';
import { DEFAULT_HANDLERS } from '../../lib/scenario/run.js';
import { loadScenario } from '../../lib/scenario/schema.js';
import { runOnSimulator } from '../../lib/scenario/sim.js';
import { liarTargets, ONLINE_EINVAL_AS_E2BIG } from './liars.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'memhp-fuzz-test-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const campaign = (o: Partial<CampaignOptions> & Pick<CampaignOptions, 'targets'>, sub = 'findings'): Promise<CampaignSummary> =>
  runCampaign({ seed: 3, kernels: ['6.1', 'latest'], runs: 12, findingsDir: path.join(dir, sub), ...o });

describe('fuzz: campaign on the simulator against a lying simulator', function () {
  this.timeout(120_000);

  it('writes each new divergence shrunk, with a scenario that reproduces it; duplicates are counted, not shrunk', async () => {
    const targets = liarTargets([ONLINE_EINVAL_AS_E2BIG]);
    const s = await campaign({ targets });
    assert.equal(s.scenariosRun, 24);
    assert.equal(s.complete, true);
    assert.equal(s.agree + s.divergences + s.simErrors + s.errors, s.scenariosRun);
    assert.ok(s.findings.length >= 1 && s.findings.length <= 2, `one finding per kernel at most: ${s.findings.map((f) => f.dir).join(', ')}`);
    const dups = s.runs.filter((r) => r.verdict === 'duplicate');
    assert.equal(s.divergences, s.findings.length + dups.length);
    assert.equal(s.findings.reduce((t, f) => t + f.duplicates, 0), dups.length);
    for (const d of dups) assert.ok(s.findings.some((f) => f.dir === d.finding && f.signature === d.signature && f.kernel === d.kernel));
    // Guest runs: one per scenario, plus per finding a re-run and its shrink candidates.
    assert.equal(targets.calls, s.scenariosRun + s.findings.reduce((t, f) => t + 1 + f.shrinkRuns, 0));
    for (const f of s.findings) {
      const fdir = path.join(dir, 'findings', f.dir);
      for (const file of ['scenario.yaml', 'original.yaml', 'diff.txt', 'observations.json']) assert.ok(existsSync(path.join(fdir, file)), `${f.dir}/${file}`);
      const min = await loadScenario(path.join(fdir, 'scenario.yaml'));
      const orig = await loadScenario(path.join(fdir, 'original.yaml'));
      assert.ok(min.steps.length === f.minimalSteps && orig.steps.length === f.originalSteps);
      // Minimal: the plugs that make the block (the shrinker drops steps, it does not merge plugs), then the write.
      assert.deepEqual(min.steps.map((st) => st.op), [...min.steps.slice(0, -1).map(() => 'plug'), 'write'], `${f.dir}: ${min.steps.map((st) => st.op).join(', ')}`);
      assert.ok(min.steps.length <= 3, `${f.dir}: ${min.steps.length} steps`);
      assert.match(min.description ?? '', /guest and simulator differ at step \d+ \(write .*\/online/);
      const again = await compare(min, f.kernel, targets);
      assert.equal(again.signature?.key, f.signature, `${f.dir} reproduces`);
      assert.match(await readFile(path.join(fdir, 'diff.txt'), 'utf8'), /result: guest E2BIG \/ sim EINVAL/);
      const obs = JSON.parse(await readFile(path.join(fdir, 'observations.json'), 'utf8')) as { minimal: { guest: unknown; sim: unknown }; original: unknown; rerun: unknown };
      assert.ok(obs.minimal.guest && obs.minimal.sim && obs.original && obs.rerun);
    }
    const onDisk = JSON.parse(await readFile(path.join(dir, 'findings', 'summary.json'), 'utf8')) as CampaignSummary;
    assert.deepEqual(onDisk.runs, s.runs);
    assert.deepEqual(onDisk.findings, s.findings);
  });

  it('is deterministic: the same seed runs the same scenarios with the same verdicts and minimal scenarios', async () => {
    const a = await campaign({ targets: liarTargets([ONLINE_EINVAL_AS_E2BIG]) }, 'a');
    const b = await campaign({ targets: liarTargets([ONLINE_EINVAL_AS_E2BIG]) }, 'b');
    const strip = (s: CampaignSummary) => s.runs.map(({ ms: _ms, simMs: _s, guestMs: _g, ...r }) => r);
    assert.deepEqual(strip(a), strip(b));
    for (const f of a.findings) assert.equal(await readFile(path.join(dir, 'a', f.dir, 'scenario.yaml'), 'utf8'), await readFile(path.join(dir, 'b', f.dir, 'scenario.yaml'), 'utf8'));
    const other = await runCampaign({ seed: 4, kernels: ['6.1', 'latest'], runs: 12, findingsDir: path.join(dir, 'c'), targets: liarTargets([ONLINE_EINVAL_AS_E2BIG]) });
    assert.notDeepEqual(other.runs.map((r) => r.scenarioSeed), a.runs.map((r) => r.scenarioSeed));
  });

  it('resumes: a campaign continued from its summary makes the runs it had not made, and ends as one uninterrupted campaign', async () => {
    const whole = await campaign({ targets: liarTargets([ONLINE_EINVAL_AS_E2BIG]) }, 'whole');
    const first = liarTargets([ONLINE_EINVAL_AS_E2BIG]);
    const part = await campaign({ targets: first, runs: 5, version: '1.0.0' }, 'parts');
    assert.equal(part.scenariosRun, 10);
    const again = liarTargets([ONLINE_EINVAL_AS_E2BIG]);
    const rest = await campaign({ targets: again, resume: await readSummary(path.join(dir, 'parts')), version: '1.0.1' }, 'parts');
    const strip = (s: CampaignSummary) => s.runs.map(({ ms: _ms, simMs: _s, guestMs: _g, ...r }) => r);
    assert.deepEqual(strip(rest), strip(whole));
    assert.deepEqual(rest.findings.map(({ shrinkRuns: _r, ...f }) => f), whole.findings.map(({ shrinkRuns: _r, ...f }) => f));
    assert.equal(rest.complete, true);
    // The resumed session ran only the 14 runs left (and what its new findings' re-runs and shrinks needed).
    const newFindings = rest.findings.slice(part.findings.length);
    assert.equal(again.calls, 14 + newFindings.reduce((t, f) => t + 1 + f.shrinkRuns, 0));
    assert.deepEqual(rest.sessions?.map((x) => [x.memhp, x.runs]), [['1.0.0', 10], ['1.0.1', 14]]);
    assert.ok(rest.elapsedMs >= part.elapsedMs);
    assert.equal(rest.startedAt, part.startedAt);
    await assert.rejects(campaign({ targets: again, seed: 4, resume: rest }, 'parts'), /cannot resume: the campaign was seed 3 on 6\.1,latest, not seed 4/);
    await assert.rejects(readSummary(path.join(dir, 'nothing')), /no campaign to resume in .*nothing: cannot read .*summary\.json \(ENOENT\)/);
  });

  it('with several jobs runs the same scenarios to the same verdicts, in campaign order, each divergence shrunk once', async () => {
    const serial = await campaign({ targets: liarTargets([ONLINE_EINVAL_AS_E2BIG]) }, 'serial');
    const liar = liarTargets([ONLINE_EINVAL_AS_E2BIG]);
    // Guests that take their time in an order of their own, so the workers finish out of order.
    let n = 0;
    const slow: FuzzTargets = { sim: liar.sim, guest: async (...a) => (await new Promise((r) => setTimeout(r, [7, 1, 4, 0, 9][n++ % 5])), liar.guest(...a)) };
    const par = await campaign({ targets: slow, jobs: 3 }, 'parallel');
    const key = (r: CampaignSummary['runs'][number]) => [r.kernel, r.index, r.scenarioSeed, r.signature ?? '-', r.verdict === 'duplicate' ? 'diverge' : r.verdict];
    assert.deepEqual(par.runs.map(key), serial.runs.map(key));
    assert.deepEqual(par.runs.map((r) => `${r.index} ${r.kernel}`), serial.runs.map((r) => `${r.index} ${r.kernel}`));
    const sigs = (s: CampaignSummary) => s.findings.map((f) => `${f.kernel} ${f.signature}`).sort();
    assert.deepEqual(sigs(par), sigs(serial));
    assert.equal(new Set(sigs(par)).size, par.findings.length, 'one finding per signature');
    assert.equal(par.findings.reduce((t, f) => t + f.duplicates, 0), par.runs.filter((r) => r.verdict === 'duplicate').length);
    assert.equal(liar.calls, par.scenariosRun + par.findings.reduce((t, f) => t + 1 + f.shrinkRuns, 0));
    assert.deepEqual((await readSummary(path.join(dir, 'parallel'))).runs, par.runs);
    assert.equal(par.sessions?.[0]?.jobs, 3);
  });

  it('a guest that disagrees with itself gives an unstable finding with the guest-vs-guest diff, not shrunk', async () => {
    const s = await campaign({ targets: liarTargets([ONLINE_EINVAL_AS_E2BIG], { flaky: true }), kernels: ['latest'], runs: 30 });
    const f = s.findings.find((x) => x.kind === 'unstable');
    assert.ok(f, `an unstable finding among ${JSON.stringify(s.runs.map((r) => r.verdict))}`);
    assert.equal(f.shrinkRuns, 0);
    assert.equal(f.minimalSteps, f.originalSteps);
    assert.equal(s.unstable, s.runs.filter((r) => r.verdict === 'unstable').length);
    const diff = await readFile(path.join(dir, 'findings', f.dir, 'diff.txt'), 'utf8');
    assert.match(diff, /guest vs guest re-run: \d+ difference/);
    assert.match(diff, /guest \(first run\) vs simulator:/);
    assert.match((await loadScenario(path.join(dir, 'findings', f.dir, 'scenario.yaml'))).description ?? '', /^unstable on latest: the guest disagrees with itself/);
  });

  it('a guest whose boots differ by a page of MemTotal is not unstable: boot-dependent counters compare as changes', async () => {
    const s = await campaign({ targets: liarTargets([ONLINE_EINVAL_AS_E2BIG], { bootJitter: true }), kernels: ['latest'], runs: 30 });
    assert.ok(s.findings.length > 0);
    assert.deepEqual(s.findings.map((f) => f.kind), s.findings.map(() => 'divergence'));
    assert.ok(s.findings.every((f) => f.minimalSteps <= 3), s.findings.map((f) => `${f.dir}: ${f.minimalSteps} steps`).join(', '));
  });

  it('a simulator crash is a finding, shrunk on the simulator alone', async () => {
    const honest = liarTargets([]);
    const crashing: FuzzTargets = {
      guest: honest.guest,
      sim: (sc, kernel) =>
        runOnSimulator(sc, {
          kernel,
          handlers: {
            write: async (st, ctx) => {
              if (st.path.endsWith('/auto_movable_ratio')) throw new TypeError('model bug: ratio');
              return DEFAULT_HANDLERS.write(st, ctx);
            },
          },
        }),
    };
    const s = await campaign({ targets: crashing, kernels: ['latest'], runs: 20 });
    const f = s.findings.find((x) => x.kind === 'sim-error');
    assert.ok(f, 'a simulator crash among 20 scenarios');
    assert.equal(f.minimalSteps, 1);
    assert.match(f.headline, /model bug: ratio/);
    const min = await loadScenario(path.join(dir, 'findings', f.dir, 'scenario.yaml'));
    assert.ok(min.steps[0]!.op === 'write' && min.steps[0].path.endsWith('/auto_movable_ratio'));
    assert.match(await readFile(path.join(dir, 'findings', f.dir, 'diff.txt'), 'utf8'), /The simulator could not complete the run/);
    assert.equal(s.simErrors, s.runs.filter((r) => r.verdict === 'sim-error').length);
  });

  it('keeps to its time budget, and --no-shrink leaves findings as generated', async () => {
    const timed = await campaign({ targets: liarTargets([ONLINE_EINVAL_AS_E2BIG]), runs: 1000, timeMs: 300 });
    assert.ok(timed.scenariosRun < 2000 && timed.elapsedMs < 5000, `${timed.scenariosRun} runs in ${timed.elapsedMs} ms`);
    assert.equal(timed.complete, false);
    const raw = await campaign({ targets: liarTargets([ONLINE_EINVAL_AS_E2BIG]), shrink: false }, 'raw');
    assert.ok(raw.findings.length > 0);
    for (const f of raw.findings) assert.equal(f.minimalSteps, f.originalSteps);
  });
});

describe('memhp fuzz: arguments', () => {
  it('reads durations and refuses bad arguments with exit code 2', async () => {
    assert.equal(durationArg('90'), 90_000);
    assert.equal(durationArg('1h30m'), 5_400_000);
    assert.equal(durationArg('500ms'), 500);
    assert.throws(() => durationArg('soon'));
    assert.throws(() => durationArg('10 m'));
    const quiet = { stdout: () => undefined, stderr: () => undefined };
    assert.equal(await runFuzz(['--time', 'soon'], quiet), 2);
    assert.equal(await runFuzz(['--runs', '0'], quiet), 2);
    assert.equal(await runFuzz(['--kernel', '4.19'], quiet), 2);
    let err = '';
    assert.equal(await runFuzz(['--exceptions', path.join(dir, 'missing.yaml'), '--runs', '1'], { stdout: () => undefined, stderr: (t) => void (err += t) }), 2);
    assert.match(err, /missing\.yaml/);
  });

  it('--resume needs a summary of the same campaign, and a bound when the campaign had only a time budget', async () => {
    const run = async (args: string[]): Promise<[number, string]> => {
      let err = '';
      const code = await runFuzz(args, { stdout: () => undefined, stderr: (t) => void (err += t) });
      return [code, err];
    };
    const none = await run(['--resume', '--findings', path.join(dir, 'none')]);
    assert.equal(none[0], 2);
    assert.match(none[1], /^memhp fuzz: no campaign to resume in .*none: cannot read .*summary\.json \(ENOENT\)\n$/);
    await campaign({ targets: liarTargets([]), runs: undefined, timeMs: 1, kernels: ['6.1'] }, 'timed');
    const timed = path.join(dir, 'timed');
    assert.match((await run(['--resume', '--findings', timed]))[1], /was bounded by time only: give --runs or --time to resume it/);
    assert.match((await run(['--resume', '--findings', timed, '--seed', '4', '--runs', '1']))[1], /--seed 4: the campaign in .* is seed 3/);
    assert.match((await run(['--resume', '--findings', timed, '--kernel', 'latest', '--runs', '1']))[1], /--kernel latest: the campaign in .* runs 6\.1/);
  });
});
