/**
 * The published package, as a user gets it: `npm pack` holds only what a user runs (the compiled
 * library, the CLI, the addon's sources and the guest harness's files; no tests, benches, source maps
 * or `@internal` members), and installed from the tarball into an empty project — the addon built from
 * source, quietly, and no dev dependency present — `memhp --version`, `memhp sim` on a scenario, the
 * demo and the README's TypeScript example run.
 *
 * `npm install` takes the runtime dependencies from npm's cache when it can (--prefer-offline) and
 * from the registry otherwise.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const PKG = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string; license: string; repository?: { url: string } };

/** The environment of a user's shell: none of npm's lifecycle variables (under `npm test` they name this repository as the prefix), no memhp overrides. */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && !k.startsWith('MEMHP_')) env[k] = v;
  return env;
}

interface Run {
  code: number;
  out: string;
  err: string;
}

/** Run a program; resolves with its exit code and output, never rejects. */
function run(file: string, args: readonly string[], cwd: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, env: userEnv(), encoding: 'utf8', maxBuffer: 64 << 20 }, (e, out, err) =>
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : -1) : 0, out, err }),
    );
  });
}

function ok(r: Run, what: string): Run {
  assert.equal(r.code, 0, `${what} failed (exit ${r.code}):\n${r.out}\n${r.err}`);
  return r;
}

describe('the npm package', function () {
  // npm pack compiles the library (tsc), npm install compiles the addon (node-gyp): on a loaded 2-CPU host, minutes.
  this.timeout(600_000);
  let work: string;
  let tarball: string;
  let project: string;

  before(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'memhp-package-'));
    ok(await run('npm', ['pack', '--pack-destination', work, '--silent'], ROOT), 'npm pack');
    const tgz = readdirSync(work).filter((f) => f.endsWith('.tgz'));
    assert.deepEqual(tgz, [`memhp-${PKG.version}.tgz`]);
    tarball = path.join(work, tgz[0]!);
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('holds only what a user runs, with a LICENSE, a repository and no @internal declarations', async () => {
    const files = ok(await run('tar', ['-tzf', tarball], work), 'tar -t')
      .out.split('\n')
      .filter(Boolean)
      .map((f) => f.replace(/^package\//, ''));
    const allowed = [/^(LICENSE|README\.md|package\.json|binding\.gyp)$/, /^bin\/(memhp|demo)\.js$/, /^scripts\/install\.js$/, /^native\/[\w-]+\.(cc|h)$/, /^qemu\/[\w.-]+$/, /^dist\/lib\/[\w/-]+\.(js|d\.ts)$/];
    const stray = files.filter((f) => !allowed.some((re) => re.test(f)));
    assert.deepEqual(stray, [], 'files a user does not run');
    for (const f of ['LICENSE', 'bin/memhp.js', 'bin/demo.js', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/cli/main.js', 'native/page_alloc.cc', 'qemu/init.sh']) assert.ok(files.includes(f), f);
    assert.ok(!files.some((f) => /^(dist\/)?(test|bench)\//.test(f) || f.endsWith('.ts') && !f.endsWith('.d.ts')), 'no tests, benches or TypeScript sources');

    const unpacked = path.join(work, 'unpacked');
    ok(await run('mkdir', ['-p', unpacked], work), 'mkdir');
    ok(await run('tar', ['-xzf', tarball, '-C', unpacked], work), 'tar -x');
    const pkg = JSON.parse(readFileSync(path.join(unpacked, 'package/package.json'), 'utf8')) as typeof PKG;
    assert.equal(pkg.license, 'MIT');
    assert.match(readFileSync(path.join(unpacked, 'package/LICENSE'), 'utf8'), /^MIT License\n/);
    assert.match(pkg.repository?.url ?? '', /^git\+https:\/\/.+\.git$/);
    const internal = ok(await run('grep', ['-rl', '--include=*.d.ts', '@internal', 'package/dist'], unpacked).then((r) => ({ ...r, code: r.code === 1 ? 0 : r.code })), 'grep');
    assert.equal(internal.out, '', 'declarations marked @internal are stripped (stripInternal)');
  });

  it('installs into an empty project quietly, and memhp --version, sim, the demo and the README example run', async () => {
    project = path.join(work, 'project');
    ok(await run('mkdir', ['-p', project], work), 'mkdir');
    writeFileSync(path.join(project, 'package.json'), `${JSON.stringify({ name: 'memhp-user', version: '1.0.0', private: true, type: 'module' }, null, 2)}\n`);
    // --foreground-scripts shows what memhp's install step prints: nothing when the build succeeds.
    const install = ok(await run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts'], project), 'npm install');
    assert.doesNotMatch(install.out + install.err, /gyp info|g\+\+|CXX\(target\)/, 'the addon builds quietly');
    const installed = readdirSync(path.join(project, 'node_modules'));
    for (const dev of ['tsx', 'typescript', 'mocha', 'node-gyp', 'fast-check']) assert.ok(!installed.includes(dev), `dev dependency ${dev} installed`);

    const version = ok(await run('npx', ['--no', '--', 'memhp', '--version'], project), 'memhp --version');
    assert.equal(version.out, `${PKG.version}\n`);

    const scenario = path.join(ROOT, 'test/scenarios/plug-online-movable.yaml');
    const sim = ok(await run('npx', ['--no', '--', 'memhp', 'sim', scenario], project), 'memhp sim');
    assert.match(sim.out, /^plug-online-movable /m);
    assert.match(sim.out, /Total online memory:/);
    assert.equal(sim.err, '');

    const demo = ok(await run('node', ['node_modules/memhp/bin/demo.js'], project), 'bin/demo.js');
    assert.match(demo.out, /\ninvariants: ok; lock validator: 0 reports; native memory \d+ bytes\n$/);

    // The README's example, compiled against the installed package's types (every .d.ts checked) and run.
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const example = /The simulator from TypeScript:\n\n```ts\n([^]*?)\n```/.exec(readme)?.[1];
    assert.ok(example?.includes("from 'memhp'"), "README: the TypeScript example importing 'memhp'");
    writeFileSync(path.join(project, 'example.ts'), `${example}\nconsole.log(\`trace records: \${m.trace.events().length}\`);\nawait m.close();\n`);
    const tsconfig = {
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        skipLibCheck: false,
        types: ['node'],
        typeRoots: [path.join(ROOT, 'node_modules/@types')],
      },
      files: ['example.ts'],
    };
    writeFileSync(path.join(project, 'tsconfig.json'), `${JSON.stringify(tsconfig, null, 2)}\n`);
    ok(await run(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], project), 'tsc example.ts');
    const ran = ok(await run('node', ['example.js'], project), 'example.js');
    assert.match(ran.out, /^trace records: [1-9]\d*\n$/);
  });
});
