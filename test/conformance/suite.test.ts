/**
 * The conformance suite (issue 7): every scenario under test/scenarios/ on every kernel it names (6.1,
 * 6.12, latest), on a real Debian guest under QEMU and on the simulator, compared step by step; the
 * exceptions file holds the documented divergences. JUnit XML goes to $MEMHP_JUNIT (default: the
 * temporary directory). Per-case times are printed. Guests run one after another (TCG takes a core).
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runConform } from '../../lib/cli/conform.js';

const DIR = 'test/scenarios';

describe('conformance suite: every scenario, guest vs simulator, on 6.1, 6.12 and latest', function () {
  this.timeout(20 * 60_000);

  it('finds no difference outside the exceptions file, and writes JUnit', async () => {
    const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort().map((f) => path.join(DIR, f));
    assert.ok(files.length >= 20, `at least 20 scenarios, found ${files.length}`);
    const junit = process.env.MEMHP_JUNIT ?? path.join(os.tmpdir(), `memhp-conformance-${process.pid}.xml`);
    let out = '';
    let err = '';
    const code = await runConform(
      [...files, '--kernel', '6.1,6.12,latest', '--exceptions', path.join(DIR, 'exceptions/guest-harness.yaml'), '--junit', junit],
      { stdout: (t) => void (out += t), stderr: (t) => void (err += t) },
    );
    const summary = out.split('\n').filter((l) => / on [\d.a-z]+: |^ {2}sim |runs:/.test(l));
    console.log(summary.map((l) => `      ${l}`).join('\n'));
    // On failure the whole report: the diff text of the differing cases says what differed and where.
    assert.equal(code, 0, `memhp conform exited ${code}\n${out}\n${err}`);
    const xml = await readFile(junit, 'utf8');
    assert.match(xml, /<testsuite name="memhp conformance 6\.1" /);
    assert.doesNotMatch(xml, /<failure|<error/);
  });
});
