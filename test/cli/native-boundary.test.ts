/**
 * The lazy native boundary: the addon is loaded by the first simulated machine, never by an import.
 * `memhp --help`, `--version`, `memhp qmp` and `memhp cache` run without a built addon (`MEMHP_NATIVE=/nonexistent`);
 * a simulator command without one says, in one line, how to build it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMMAND_NAMES, loadCommand, program } from '../../lib/cli/main.js';
import { oneDimmPeer } from '../qmp/one-dimm-peer.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Run node on `script` (an ES module, TypeScript allowed) in the repository, with `env` added; never rejects. */
function node(script: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script, '--', ...args],
      { cwd: ROOT, env: { ...process.env, MEMHP_DEBUG: '', ...env }, encoding: 'utf8' },
      (e, out, err) => resolve({ code: e ? (typeof e.code === 'number' ? e.code : -1) : 0, out, err }),
    );
  });
}

/** memhp as bin/memhp.js runs it, from the TypeScript sources, without an addon to load. */
const memhp = (...args: string[]) =>
  node("process.exitCode = await (await import('./lib/cli/main.ts')).main(['node', 'memhp', ...process.argv.slice(1)])", args, { MEMHP_NATIVE: '/nonexistent' });

describe('the native boundary: the addon is loaded by the first PhysMem, not by an import', function () {
  this.timeout(120_000);

  it('importing the CLI, the layout, the schema, the scenario runner or the package loads no addon; the first PhysMem does', async () => {
    const r = await node(
      `import { createRequire } from 'node:module';
       const cache = createRequire(import.meta.url).cache;
       const addons = () => Object.keys(cache).filter((k) => k.endsWith('.node')).length;
       for (const m of ['./lib/cli/main.ts', './lib/kernel/layout.ts', './lib/scenario/schema.ts', './lib/scenario/index.ts', './lib/native/constants.ts', './lib/index.ts']) await import(m);
       const before = addons();
       const { PhysMem } = await import('./lib/native/physmem.ts');
       const imported = addons();
       new PhysMem();
       console.log(JSON.stringify({ before, imported, made: addons() }));`,
      [],
    );
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(JSON.parse(r.out), { before: 0, imported: 0, made: 1 });
  });

  it('memhp --help, --version, qmp --help and help qmp run with MEMHP_NATIVE=/nonexistent', async () => {
    const help = await memhp('--help');
    assert.deepEqual([help.code, help.err], [0, '']);
    assert.match(help.out, /^Usage: memhp \[options\] \[command\]\n/);
    for (const name of COMMAND_NAMES) assert.match(help.out, new RegExp(`\\n  ${name} `), name);
    assert.deepEqual(await memhp('--version'), { code: 0, out: `${VERSION}\n`, err: '' });
    for (const args of [['qmp', '--help'], ['help', 'qmp']]) {
      const r = await memhp(...args);
      assert.deepEqual([r.code, r.err], [0, ''], args.join(' '));
      assert.match(r.out, /^Usage: memhp qmp \[options\] \[command\]\n[^]*\n {2}plug \[options\]/, args.join(' '));
    }
  });

  it('memhp qmp lists the devices of a QMP peer with MEMHP_NATIVE=/nonexistent', async () => {
    const peer = await oneDimmPeer();
    const { port } = peer;
    try {
      assert.deepEqual(await memhp('qmp', '--socket', `tcp:127.0.0.1:${port}`, 'list'), { code: 0, out: 'd1\tdimm\t0x100000000\t1 GiB\tnode 1\tslot 0\n', err: '' });
    } finally {
      await peer.close();
    }
    // No QEMU: the QMP failure, not an addon's.
    assert.deepEqual(await memhp('qmp', '--socket', '/nonexistent/qmp.sock', 'list'), {
      code: 1,
      out: '',
      err: 'memhp qmp: cannot connect to QMP socket /nonexistent/qmp.sock: connect ENOENT /nonexistent/qmp.sock\n',
    });
  });

  it('memhp cache lists and cleans with MEMHP_NATIVE=/nonexistent', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'memhp-native-cache-'));
    try {
      const env = { MEMHP_NATIVE: '/nonexistent', MEMHP_CACHE: path.join(dir, 'cache'), MEMHP_SNAPSHOT_DIR: path.join(dir, 'snapshots') };
      const run = (...args: string[]) => node("process.exitCode = await (await import('./lib/cli/main.ts')).main(['node', 'memhp', ...process.argv.slice(1)])", args, env);
      const list = await run('cache');
      assert.deepEqual([list.code, list.err], [0, '']);
      assert.match(list.out, /^kernel cache .* none yet\nsnapshot cache .* none yet/);
      assert.deepEqual(await run('cache', 'clean', '--all'), { code: 0, out: 'nothing to remove\nfreed 0 B\n', err: '' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a simulator command without the addon is one line saying how to build it, exit 2', async () => {
    const s = 'test/scenarios/plug-online-movable.yaml';
    const line = (cmd: string) =>
      new RegExp(
        `^memhp ${cmd}: the simulator's native addon does not load \\(MEMHP_NATIVE=/nonexistent: Cannot find module '/nonexistent'\\); ` +
          'build it with `npm rebuild memhp` \\(in a project using memhp\\) or `npx node-gyp rebuild` \\(in a clone of memhp; needs g\\+\\+, make and python3\\)\\n$',
      );
    for (const [cmd, args] of [
      ['sim', [s, s]],
      ['lsmem', []],
      ['demo', []],
    ] as const) {
      const r = await memhp(cmd, ...args);
      assert.equal(r.code, 2, `${cmd}: ${r.err}`);
      assert.equal(r.out, '', cmd);
      assert.match(r.err, line(cmd));
    }
  });

  it('memhp --help lists each command as the command itself describes it', async () => {
    const loaded = new Map(await Promise.all(COMMAND_NAMES.map(async (n) => [n, await loadCommand(n)] as const)));
    assert.equal(program({}, new Map()).helpInformation(), program({}, loaded).helpInformation());
  });
});
