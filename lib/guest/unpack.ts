/**
 * Unpacking a kernel's Debian packages into a private stage directory, with no shell: `dpkg-deb
 * --fsys-tarfile` piped into `tar` (each spawned with an argument vector), modules decompressed by
 * `xz`/`zstd` likewise. The stage is this process's own 0700 directory (lib/guest/cleanup.ts
 * `ownedTempDir`), so the digests taken here are of the bytes the verified packages held.
 */
import { execFile, spawn } from 'node:child_process';
import { chmod, mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { btfFromBzImage } from './btf.js';
import { GuestError } from './errors.js';
import { sha256 } from './trust.js';

const run = promisify(execFile);

/** What {@link unpackDebs} left in `<stage>/out`, and the sha256 of each file. */
export interface Unpacked {
  /** `<stage>/out`: `vmlinuz`, `btf`, `config` (when the package has one), `modules/<name>.ko`. */
  out: string;
  /** Paths relative to {@link out}, each with its sha256. */
  files: Record<string, string>;
  /** The kernel's BTF (`btf`). */
  btf: Buffer;
  /** Module names found. */
  modules: string[];
}

async function findFiles(dir: string, pred: (name: string) => boolean, out: string[] = []): Promise<string[]> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await findFiles(p, pred, out);
    else if (e.isFile() && pred(e.name)) out.push(p);
  }
  return out;
}

/** `dpkg-deb --fsys-tarfile deb | tar -x -C dir --wildcards --no-anchored patterns…`; a pattern a package lacks is no error (the caller checks what came out). */
function extract(deb: string, dir: string, patterns: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const dpkg = spawn('dpkg-deb', ['--fsys-tarfile', deb], { stdio: ['ignore', 'pipe', 'ignore'] });
    const tar = spawn('tar', ['-x', '--no-same-permissions', '-C', dir, '--wildcards', '--no-anchored', ...patterns], { stdio: ['pipe', 'ignore', 'ignore'] });
    tar.stdin.on('error', () => undefined); // EPIPE when tar stops early; what came out is checked
    dpkg.stdout.pipe(tar.stdin);
    let open = 2;
    const closed = (): void => void (--open === 0 && resolve());
    for (const c of [dpkg, tar]) c.once('error', (e) => reject(new GuestError(`cannot unpack ${deb}: ${e.message}`, { cause: e }))).once('close', closed);
  });
}

/**
 * Unpack only what the harness needs from `debs` — vmlinuz, config and the named modules — into
 * `<stage>/out`, modules as plain ELF (busybox insmod takes no compressed module; 6.12+ ship them
 * compressed), and extract the bzImage's BTF. Throws a {@link GuestError} when vmlinuz or a module is missing.
 */
export async function unpackDebs(debs: readonly string[], stage: string, release: string, modules: readonly string[]): Promise<Unpacked> {
  const x = path.join(stage, 'x');
  const out = path.join(stage, 'out');
  await mkdir(x, { mode: 0o700 });
  await mkdir(path.join(out, 'modules'), { recursive: true, mode: 0o700 });
  const patterns = ['*/vmlinuz*', '*/config-*', '*/config', ...modules.flatMap((m) => [`*/${m}.ko`, `*/${m}.ko.xz`, `*/${m}.ko.zst`])];
  for (const deb of debs) await extract(deb, x, patterns);
  const what = debs.map((d) => path.basename(d)).join(', ');
  const vmlinuz = (await findFiles(x, (n) => n === 'vmlinuz' || n === `vmlinuz-${release}`))[0];
  if (!vmlinuz) throw new GuestError(`no vmlinuz in ${what}`);
  await rename(vmlinuz, path.join(out, 'vmlinuz'));
  const rel = ['vmlinuz'];
  const config = (await findFiles(x, (n) => n === 'config' || n === `config-${release}`))[0];
  if (config) {
    await rename(config, path.join(out, 'config'));
    rel.push('config');
  }
  const found: string[] = [];
  for (const f of await findFiles(x, (n) => /\.ko(\.xz|\.zst)?$/.test(n))) {
    const name = path.basename(f).replace(/\.ko(\.xz|\.zst)?$/, '');
    if (!modules.includes(name) || found.includes(name)) continue;
    const dst = path.join(out, 'modules', `${name}.ko`);
    if (f.endsWith('.xz')) await writeFile(dst, (await run('xz', ['-dc', f], { encoding: 'buffer', maxBuffer: 256 << 20 })).stdout);
    else if (f.endsWith('.zst')) await run('zstd', ['-dq', f, '-o', dst]);
    else await rename(f, dst);
    found.push(name);
    rel.push(`modules/${name}.ko`);
  }
  for (const m of modules) if (!found.includes(m)) throw new GuestError(`module ${m} is not in ${what}`);
  const btf = await btfFromBzImage(path.join(out, 'vmlinuz'));
  await writeFile(path.join(out, 'btf'), btf);
  rel.push('btf');
  const files: Record<string, string> = {};
  for (const r of rel) {
    await chmod(path.join(out, r), 0o644);
    files[r] = sha256(await readFile(path.join(out, r)));
  }
  return { out, files, btf, modules: found };
}
