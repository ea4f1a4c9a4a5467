/**
 * A scenario file is bounded before it is parsed: by bytes (default 1 MiB) and by steps (default
 * 10 000), each a ScenarioError that says which cap and how to raise it (issue #13 row 12).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ScenarioError } from '../../lib/scenario/errors.js';
import { loadScenario, MAX_SCENARIO_BYTES, MAX_SCENARIO_STEPS, parseScenario } from '../../lib/scenario/schema.js';

const STEP = '  - write: {path: /sys/devices/system/memory/memory32/state, value: offline}\n';

function scenario(steps: number): string {
  return `name: big\nsteps:\n${STEP.repeat(steps)}`;
}

function refusal(fn: () => unknown): ScenarioError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ScenarioError, String(e));
    return e;
  }
  assert.fail('the scenario was accepted');
}

describe('scenario size caps', function () {
  this.timeout(60_000); // bounds a hang; nothing here is timed
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'memhp-scenario-cap-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it('defaults: 1 MiB and 10 000 steps', () => {
    assert.equal(MAX_SCENARIO_BYTES, 2 ** 20);
    assert.equal(MAX_SCENARIO_STEPS, 10_000);
  });

  it('a 48 MB file of 625 000 steps is refused by its size, before it is read', async () => {
    const file = path.join(dir, 'huge.yaml');
    const text = scenario(625_000);
    assert.ok(text.length > 48e6);
    await writeFile(file, text);
    const e = await loadScenario(file).then(
      () => assert.fail('accepted'),
      (err: unknown) => err,
    );
    assert.ok(e instanceof ScenarioError, String(e));
    assert.equal(e.source, file);
    assert.match(e.message, /larger than the 1048576-byte cap \(maxBytes\)/);
  });

  it('a 50 MB string is refused by parseScenario alike, JSON or YAML', () => {
    const text = `{"name": "big", "steps": [${'"snapshot",'.repeat(5_000_000)}"snapshot"]}`;
    assert.ok(text.length > 50e6);
    assert.match(refusal(() => parseScenario(text)).message, /larger than the 1048576-byte cap/);
    assert.match(refusal(() => parseScenario('#'.repeat(2 ** 20) + '\nsteps: [snapshot]')).message, /byte cap/);
  });

  it('more steps than the cap are refused with the path and the count, before validation', () => {
    const e = refusal(() => parseScenario(scenario(MAX_SCENARIO_STEPS + 1)));
    assert.deepEqual(e.issues.map((i) => i.path), ['steps']);
    assert.match(e.message, /10001 steps, more than the 10000-step cap \(maxSteps\)/);
    assert.equal(parseScenario(scenario(MAX_SCENARIO_STEPS)).steps.length, MAX_SCENARIO_STEPS);
  });

  it('both caps are options of parseScenario and loadScenario', async () => {
    assert.match(refusal(() => parseScenario(scenario(3), { maxSteps: 2 })).message, /2-step cap/);
    assert.equal(parseScenario(scenario(3), { maxSteps: 3 }).steps.length, 3);
    assert.match(refusal(() => parseScenario(scenario(3), { maxBytes: 100 })).message, /100-byte cap/);
    const file = path.join(dir, 'small.yaml');
    await writeFile(file, scenario(20));
    await assert.rejects(loadScenario(file, { maxSteps: 10 }), /10-step cap/);
    await assert.rejects(loadScenario(file, { maxBytes: 500 }), /500-byte cap/);
    assert.equal((await loadScenario(file)).steps.length, 20);
  });
});
