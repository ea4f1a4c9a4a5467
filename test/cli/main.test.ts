/**
 * The one error path of the `memhp` command line: a failure is one line `memhp <command>: <message>`
 * and exit 2, the stack only with --debug; --version prints the package's version.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { main, version } from '../../lib/cli/main.js';

async function run(args: string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const code = await main(['node', 'memhp', ...args], (t) => void (err += t));
  return { code, err };
}

describe('memhp: one error path', () => {
  it('an unknown kernel is one line on stderr and exit 2, no stack', async () => {
    const r = await run(['lsmem', '--kernel', 'no-such-kernel']);
    assert.equal(r.code, 2);
    assert.match(r.err, /^memhp lsmem: unknown kernel version 'no-such-kernel' \(known: 6\.1, 6\.12, 7\.2, latest/);
    assert.equal(r.err.trim().split('\n').length, 1, r.err);
  });

  it('--debug (or MEMHP_DEBUG=1) adds the stack', async () => {
    const r = await run(['--debug', 'lsmem', '--kernel', 'no-such-kernel']);
    assert.equal(r.code, 2);
    assert.match(r.err, /\n {4}at getProfile /);
  });

  it('--version prints the package version, exit 0', async () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    assert.equal(version(), pkg.version);
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((t: string) => (out.push(String(t)), true)) as typeof process.stdout.write;
    try {
      assert.equal((await run(['--version'])).code, 0);
    } finally {
      process.stdout.write = write;
    }
    assert.equal(out.join('').trim(), pkg.version);
  });
});
