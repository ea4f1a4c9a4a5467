/**
 * The one error path of the `memhp` command line: every failure is one line `memhp <command>: <message>`
 * and the same exit codes in every command (0, 1, 2, 64), the stack only with --debug; --help lists the
 * codes; --version prints the package's version; a reader that goes away ends the output quietly.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { main, version } from '../../lib/cli/main.js';
import { oneDimmPeer } from '../qmp/one-dimm-peer.js';
import { KERNEL_NAMES } from '../../lib/scenario/schema.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['node', 'memhp', ...args], { stdout: (t) => void (out += t), stderr: (t) => void (err += t) });
  return { code, out, err };
}

/** One line on stderr matching `message`, no stack, exit `code`. */
async function fails(args: string[], message: RegExp, code = 2): Promise<void> {
  const r = await run(args);
  assert.equal(r.code, code, `${args.join(' ')}: ${r.err}`);
  assert.equal(r.err.split('\n').length, 2, `one line: ${r.err}`);
  assert.match(r.err.slice(0, -1), message, args.join(' '));
  assert.doesNotMatch(r.err, /\n\s+at /);
}

const SOCKET = '/nonexistent/qmp.sock'; // never reached by a usage error: each fails before connecting
const KERNEL = `expected a kernel: ${KERNEL_NAMES.join(', ').replaceAll('.', '\\.')} \\(quote versions in YAML: '6\\.10' reads as 6\\.1\\)`;

/** memhp's bad inputs: arguments, the one line on stderr, the exit code. */
const TABLE: [string[], RegExp, number?][] = [
  // lsmem: the machine flags, checked by the scenario schema.
  [['lsmem', '--kernel', '4.19'], new RegExp(`^memhp lsmem: --kernel 4\\.19: ${KERNEL}$`)],
  [['lsmem', '--memory', '-1G'], /^memhp lsmem: --memory -1G: expected a size: a byte count or a string such as '256M' or '1G'$/],
  [['lsmem', '--memory', '0'], /^memhp lsmem: --memory 0: expected a size/],
  [['lsmem', '--nodes', '1000'], /^memhp lsmem: --nodes 1000: expected a node count \(1\.\.64\)$/],
  [['lsmem', '--nodes', 'two'], /^memhp lsmem: --nodes two: expected a node count \(1\.\.64\)$/],
  [['lsmem', '--nodes', '0'], /^memhp lsmem: --nodes 0: expected a node count \(1\.\.64\)$/],
  [['lsmem', '--plug', '1P@1'], /^memhp lsmem: --plug 1P@1: dimm0: not enough room below maxmem$/],
  [['lsmem', '--plug', '@1'], /^memhp lsmem: --plug @1: expected a size.* \(expected SIZE\[@NODE\], e\.g\. 1G@1\)$/],
  [['lsmem', '--cmdline', 'bogus=1'], /^memhp lsmem: --cmdline bogus=1: unknown kernel parameter 'bogus' \(memhp models: memhp_default_state, /],
  [['lsmem', '--cmdline', 'memhp_default_state=sideways'], /^memhp lsmem: --cmdline memhp_default_state=sideways: expected an online type \(offline, online, online_kernel, online_movable\)$/],
  [['lsmem', '--', '--sysroot', '/'], /^memhp lsmem: --sysroot is memhp's: lsmem reads the simulated machine's sysfs, exported for it$/],
  [['lsmem', '--kernl', '6.1'], /^memhp lsmem: unknown option '--kernl' \(Did you mean --kernel\?\) \(see: memhp lsmem --help\)$/],
  [['lsmem', '--summary=sometimes'], /^memhp lsmem: --summary sometimes: Allowed choices are never, always, only\. \(see: memhp lsmem --help\)$/],
  // sim
  [['sim'], /^memhp sim: missing required argument 'scenario' \(see: memhp sim --help\)$/],
  [['sim', '--kernel', '4.19', 'x.yaml'], new RegExp(`^memhp sim: --kernel 4\\.19: ${KERNEL} \\(see: memhp sim --help\\)$`)],
  [['sim', '/nonexistent/a.yaml'], /^memhp sim: ENOENT: no such file or directory, stat '\/nonexistent\/a\.yaml'$/],
  // qmp: usage errors are 2; a QEMU that cannot be reached is a failed operation, 1.
  [['qmp', '--socket', SOCKET, 'plug', '--size', '1G', '--node', '-1'], /^memhp qmp: --node -1: expected a node id \(see: memhp qmp --help\)$/],
  [['qmp', '--socket', SOCKET, '--timeout', '5x', 'list'], /^memhp qmp: --timeout 5x: expected milliseconds or a duration such as 500ms, 5s or 2m/],
  [['qmp', '--socket', SOCKET, 'events', '--count', 'x'], /^memhp qmp: --count x: expected a count of events/],
  [['qmp', '--socket', 'tcp:localhost', 'list'], /^memhp qmp: --socket tcp:localhost: expected a unix socket path or tcp:HOST:PORT \(a port in 1\.\.65535\)/],
  [['qmp', '--socket', 'tcp:localhost:99999', 'list'], /^memhp qmp: --socket tcp:localhost:99999: expected a unix socket path or tcp:HOST:PORT/],
  [['qmp', 'list'], /^memhp qmp: required option '--socket <path>' not specified \(see: memhp qmp --help\)$/],
  [['qmp', '--socket', 'package.json', 'list'], /^memhp qmp: cannot connect to QMP socket package\.json: it is a regular file, not a unix socket \(QEMU: -qmp unix:PATH,server=on,wait=off\)$/, 1],
  [['qmp', '--socket', SOCKET, '--timeout', '5s', 'list'], /^memhp qmp: cannot connect to QMP socket \/nonexistent\/qmp\.sock: connect ENOENT \/nonexistent\/qmp\.sock$/, 1],
  // cache
  [['cache', 'clean'], /^memhp cache: say what to remove: --snapshots, --kernels or --all \(see: memhp cache clean --help\)$/],
  [['cache', 'clean', '--kernel'], /^memhp cache: unknown option '--kernel' \(Did you mean --kernels\?\) \(see: memhp cache --help\)$/],
  [['cache', 'purge'], /^memhp cache: unknown command 'purge': expected list or clean \(see: memhp cache --help\)$/],
  // fuzz, and memhp itself
  [['fuzz', '--time', 'soon'], /^memhp fuzz: --time soon: expected a duration/],
  [['nosuch'], /^memhp: unknown command 'nosuch'/],
];

describe('memhp: one error path', () => {
  it('each bad input is one line `memhp <command>: <message>`, no stack, exit 2 (1 for a QEMU that cannot be reached)', async () => {
    for (const [args, message, code] of TABLE) await fails(args, message, code);
  });

  it('qmp: a tcp:HOST:PORT socket; --json is an array of outcomes, on success and on failure', async () => {
    const peer = await oneDimmPeer();
    const { port } = peer;
    try {
      const ok = await run(['qmp', '--socket', `tcp:127.0.0.1:${port}`, '--json', 'list']);
      assert.equal(ok.code, 0, ok.err);
      assert.deepEqual(JSON.parse(ok.out), [{ id: 'd1', ok: true, device: { type: 'dimm', id: 'd1', addr: 2 ** 32, size: 2 ** 30, slot: 0, node: 1, memdev: '/objects/mem-d1', hotplugged: true, hotpluggable: true } }]);
      const text = await run(['qmp', '--socket', `tcp:127.0.0.1:${port}`, 'list']);
      assert.deepEqual(text, { code: 0, out: 'd1\tdimm\t0x100000000\t1 GiB\tnode 1\tslot 0\n', err: '' });
    } finally {
      await peer.close();
    }
    // QEMU unreachable: the same shape, one outcome per device asked for, or one without an id.
    const unplug = await run(['qmp', '--socket', 'package.json', '--json', 'unplug', 'a', 'b']);
    assert.equal(unplug.code, 1);
    const error = { name: 'MemhpError', message: 'cannot connect to QMP socket package.json: it is a regular file, not a unix socket (QEMU: -qmp unix:PATH,server=on,wait=off)' };
    assert.deepEqual(JSON.parse(unplug.out), [
      { id: 'a', ok: false, error },
      { id: 'b', ok: false, error },
    ]);
    const list = await run(['qmp', '--socket', 'package.json', '--json', 'list']);
    assert.deepEqual(JSON.parse(list.out), [{ ok: false, error }]);
    assert.equal(list.err, `memhp qmp: ${error.message}\n`);
  });

  it('--debug (or MEMHP_DEBUG=1) adds the stack, and the stack of the cause', async () => {
    const r = await run(['--debug', 'lsmem', '--plug', '1P@1']);
    assert.equal(r.code, 2);
    assert.match(r.err, /^memhp lsmem: --plug 1P@1: dimm0: not enough room below maxmem\nMemhpError: /);
    assert.match(r.err, /\nCaused by: KernelError: dimm0: not enough room below maxmem\n {4}at Machine\.plugDimm /);
    process.env.MEMHP_DEBUG = '1';
    try {
      assert.match((await run(['lsmem', '--plug', '1P@1'])).err, /\n {4}at Machine\.plugDimm /);
    } finally {
      delete process.env.MEMHP_DEBUG;
    }
  });

  it('--help of memhp and of every command lists the exit codes', async () => {
    for (const args of [['--help'], ...['qmp', 'lsmem', 'sim', 'conform', 'fuzz', 'cache', 'demo'].map((c) => [c, '--help']), ['qmp', 'plug', '--help'], ['cache', 'clean', '--help']]) {
      const r = await run(args);
      assert.equal(r.code, 0, args.join(' '));
      assert.match(r.out, /\nExit codes:\n {2}0 {3}success\n {2}1 {3}a difference or an unmet expectation .*\n.*\n {2}2 {3}a usage error or trouble .*\n {2}64 {2}partial success \(qmp: some devices done; cache clean: some entries removed\)\n$/, args.join(' '));
    }
  });

  it('--version prints the package version, exit 0', async () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    assert.equal(version(), pkg.version);
    assert.deepEqual(await run(['--version']), { code: 0, out: `${pkg.version}\n`, err: '' });
  });

  it('a reader that goes away ends the output quietly (memhp sim … --json | head -1, memhp demo | head -1)', function () {
    this.timeout(60_000);
    // memhp as bin/memhp.js runs it, from the TypeScript sources.
    const memhp = `node --import tsx --input-type=module -e "process.exitCode = await (await import('./lib/cli/main.ts')).main(['node', 'memhp', ...process.argv.slice(1)])" --`;
    const s = 'test/scenarios/plug-online-movable.yaml';
    for (const cmd of [`sim ${s} ${s} ${s} ${s} --json`, 'demo']) {
      const r = spawnSync('bash', ['-c', `${memhp} ${cmd} | head -1; echo "exit \${PIPESTATUS[0]}" >&2`], { cwd: ROOT, encoding: 'utf8' });
      assert.equal(r.stdout.split('\n').length, 2, r.stdout);
      assert.equal(r.stderr, 'exit 0\n', cmd);
    }
  });
});
