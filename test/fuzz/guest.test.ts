/**
 * `memhp fuzz` against real guests, as a user runs it: a small fixed-seed campaign (3 scenarios on
 * each of 6.1, 6.12 and latest, a short shrink budget) completes, writes summary.json, and finds no
 * divergence outside the exceptions: the simulator agrees with the real kernels on scenarios nobody
 * wrote. Findings are printed with their diffs; one the guest does not reproduce itself (unstable) is
 * reported but does not fail the run. Guests are saved to a private snapshot directory (the shared
 * cache is left alone). About 2–3 minutes under TCG.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runFuzz } from '../../lib/cli/fuzz.js';
import { compare, defaultTargets } from '../../lib/fuzz/compare.js';
import type { CampaignSummary } from '../../lib/fuzz/findings.js';
import { loadExceptionsFrom } from '../../lib/scenario/exceptions.js';
import { loadScenario } from '../../lib/scenario/schema.js';
import { ourQemus } from '../qemus.js';

const EXCEPTIONS = 'test/scenarios/exceptions';

describe('memhp fuzz on real guests', function () {
  this.timeout(0); // no wall-clock limit: waits on guests are bounded by their progress (lib/guest/progress.ts)
  let dir: string;
  let savedSnapshotDir: string | undefined;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'memhp-fuzz-guest-'));
    savedSnapshotDir = process.env.MEMHP_SNAPSHOT_DIR;
    process.env.MEMHP_SNAPSHOT_DIR = path.join(dir, 'snapshots');
  });
  after(async () => {
    if (savedSnapshotDir === undefined) delete process.env.MEMHP_SNAPSHOT_DIR;
    else process.env.MEMHP_SNAPSHOT_DIR = savedSnapshotDir;
    await rm(dir, { recursive: true, force: true });
  });

  it('--seed 1 --runs 3 on 6.1, 6.12 and latest completes and finds no divergence outside the exceptions', async () => {
    const findings = path.join(dir, 'findings');
    let out = '';
    let err = '';
    const code = await runFuzz(['--seed', '1', '--kernel', '6.1,6.12,latest', '--runs', '3', '--shrink-runs', '3', '--findings', findings, '--exceptions', EXCEPTIONS], {
      stdout: (t) => void (out += t),
      stderr: (t) => void (err += t),
    });
    console.log(out.replace(/^/gm, '      '));
    const s = JSON.parse(await readFile(path.join(findings, 'summary.json'), 'utf8')) as CampaignSummary;
    assert.equal(s.complete, true, err);
    assert.equal(s.scenariosRun, 9);
    assert.deepEqual(s.runs.map((r) => `${r.kernel} ${r.index}`), ['6.1 0', '6.12 0', 'latest 0', '6.1 1', '6.12 1', 'latest 1', '6.1 2', '6.12 2', 'latest 2']);
    assert.equal(s.errors, 0, `runs that could not complete:\n${s.runs.filter((r) => r.error).map((r) => `${r.scenario}: ${r.error}`).join('\n')}`);
    assert.equal(code, s.divergences + s.simErrors > 0 ? 1 : 0);
    assert.ok(s.runs.every((r) => r.guestMs > 0 && r.ms >= r.guestMs));
    assert.deepEqual(ourQemus(), [], 'no QEMU left running');

    const exceptions = await loadExceptionsFrom([EXCEPTIONS]);
    const targets = defaultTargets();
    for (const f of s.findings) {
      const fdir = path.join(findings, f.dir);
      console.log(`      --- ${f.dir} (${f.kind})\n${(await readFile(path.join(fdir, 'diff.txt'), 'utf8')).replace(/^/gm, '      ')}`);
      const min = await loadScenario(path.join(fdir, 'scenario.yaml'));
      assert.equal(min.steps.length, f.minimalSteps);
      assert.ok(min.description, 'the minimal scenario says what it shows');
      if (f.kind === 'unstable') continue;
      const again = await compare(min, f.kernel, targets, { exceptions, repeat: true });
      if (f.kind === 'sim-error') assert.equal(again.simFailure?.signature.key, f.signature, `${f.dir}: the simulator fails the same way`);
      else assert.equal(again.signature?.key, f.signature, `${f.dir}: the minimal scenario reproduces its divergence`);
    }
    assert.equal(s.divergences + s.simErrors, 0, `the simulator disagrees with a guest:\n${out}`);
  });
});
