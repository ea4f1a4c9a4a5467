/**
 * Guest kernels from Debian's archive: resolved by version at run time through a private apt
 * configuration (its own sources.list, lists and caches under the cache directory; the host's apt
 * sources and state are never read or changed), downloaded and verified by apt, unpacked, and
 * described (BTF layout) once; everything is cached under `$MEMHP_CACHE` (default `~/.cache/memhp`)
 * with a manifest recording the exact package versions.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import cliProgress from 'cli-progress';
import { ensureDebianPackages } from '../host/packages.js';
import { Btf, btfFromBzImage, kernelLayout, type KernelLayout } from './btf.js';
import { ownedTempDir, reclaimStale, removeDir } from './cleanup.js';
import { GuestError } from './errors.js';

const run = promisify(execFile);

/** Host packages the harness needs: QEMU, the guest's userland, and decompressors for kernel images and modules. */
export const HOST_PACKAGES = ['qemu-system-x86', 'busybox-static', 'xz-utils', 'zstd'] as const;

/** Which guest kernel: a Debian release's newest kernel. '7.2' and 'latest' both mean sid's newest. */
export type GuestKernelSpec = '6.1' | '6.12' | '7.2' | 'latest' | 'sid';

/** A Debian suite the harness fetches kernels from. */
export type KernelSuite = 'bookworm' | 'trixie' | 'sid';

/** Where each kernel spec comes from. */
export const KERNEL_SUITES: Readonly<Record<GuestKernelSpec, KernelSuite>> = {
  '6.1': 'bookworm',
  '6.12': 'trixie',
  '7.2': 'sid',
  latest: 'sid',
  sid: 'sid',
};

/** Modules copied out of the kernel package by default (error injection, virtio-mem). */
export const DEFAULT_MODULES = ['notifier-error-inject', 'memory-notifier-error-inject', 'virtio_mem'] as const;

/** One downloaded Debian package, as recorded in the manifest. */
export interface PackageRecord {
  name: string;
  version: string;
  size: number;
  sha256: string;
}

/** A kernel ready to boot: everything in the cache, described. */
export interface PreparedKernel {
  suite: KernelSuite;
  /** `uname -r` of the kernel, e.g. '6.12.117+deb13-amd64'. */
  release: string;
  /** Debian source version, e.g. '6.12.117-1'. */
  version: string;
  packages: PackageRecord[];
  /** Bytes downloaded for this kernel (the .deb files). */
  downloadBytes: number;
  /** The bzImage. */
  vmlinuz: string;
  /** Uncompressed module files by module name (`notifier-error-inject` → path). */
  modules: Record<string, string>;
  layout: KernelLayout;
  /** Cache directory of this kernel (also holds the chain-offset calibration). */
  dir: string;
}

interface Manifest {
  kernels: Record<string, PreparedKernel & { resolvedAt: string }>;
}

/** The cache directory: `$MEMHP_CACHE`, else `~/.cache/memhp`. */
export function cacheDir(): string {
  return process.env.MEMHP_CACHE || path.join(os.homedir(), '.cache', 'memhp');
}

const MIRROR = () => process.env.MEMHP_DEBIAN_MIRROR || 'http://deb.debian.org/debian';
const SECURITY_MIRROR = () => process.env.MEMHP_DEBIAN_SECURITY_MIRROR || 'http://deb.debian.org/debian-security';
const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

function sourcesList(suite: KernelSuite): string {
  const o = `[arch=amd64 signed-by=${KEYRING}]`;
  const lines = [`deb ${o} ${MIRROR()} ${suite} main`];
  // Stable kernels get their updates through the security archive.
  if (suite !== 'sid') lines.push(`deb ${o} ${SECURITY_MIRROR()} ${suite}-security main`);
  return lines.join('\n') + '\n';
}

/** A private apt configuration for one suite: every directory apt would use is redirected into the cache. */
class PrivateApt {
  readonly root: string;
  constructor(readonly suite: KernelSuite, cache: string) {
    this.root = path.join(cache, 'apt', suite);
  }

  private opts(): string[] {
    const r = this.root;
    const o: Record<string, string> = {
      'Dir::State': r,
      'Dir::State::Lists': `${r}/lists`,
      'Dir::State::status': `${r}/status`,
      'Dir::Cache': `${r}/cache`,
      'Dir::Cache::Archives': `${r}/cache/archives`,
      'Dir::Etc::SourceList': `${r}/sources.list`,
      'Dir::Etc::SourceParts': `${r}/empty`,
      'Dir::Etc::Preferences': `${r}/empty/preferences`,
      'Dir::Etc::PreferencesParts': `${r}/empty`,
      'APT::Architecture': 'amd64',
      'APT::Architectures': 'amd64',
      'Acquire::Languages': 'none',
      'APT::Get::List-Cleanup': 'true',
    };
    // apt drops to user _apt for downloads; it cannot write into root's cache directory.
    if (process.getuid?.() === 0) o['APT::Sandbox::User'] = 'root';
    return Object.entries(o).flatMap(([k, v]) => ['-o', `${k}=${v}`]);
  }

  async setup(): Promise<void> {
    for (const d of ['lists/partial', 'cache/archives/partial', 'empty']) await mkdir(path.join(this.root, d), { recursive: true });
    await writeFile(path.join(this.root, 'sources.list'), sourcesList(this.suite));
    if (!existsSync(path.join(this.root, 'status'))) await writeFile(path.join(this.root, 'status'), '');
  }

  /** `apt-get update` unless the lists are younger than `maxAgeMs`. Returns false when it failed but old lists exist. */
  async update(maxAgeMs: number): Promise<boolean> {
    const stamp = path.join(this.root, 'updated');
    const age = existsSync(stamp) ? Date.now() - (await stat(stamp)).mtimeMs : Infinity;
    if (age < maxAgeMs) return true;
    try {
      await run('apt-get', [...this.opts(), '-q', 'update'], { maxBuffer: 16 << 20 });
      await writeFile(stamp, new Date().toISOString() + '\n');
      return true;
    } catch (e) {
      if (existsSync(stamp)) return false; // offline: keep using what was resolved before
      throw new GuestError(`apt-get update for ${this.suite} failed: ${(e as { stderr?: string }).stderr ?? String(e)}`, { cause: e });
    }
  }

  /** Fields of the candidate version of a package (`apt-cache show --no-all-versions`). */
  async show(pkg: string): Promise<Record<string, string>> {
    const { stdout } = await run('apt-cache', [...this.opts(), 'show', '--no-all-versions', pkg], { maxBuffer: 16 << 20 });
    const f: Record<string, string> = {};
    let key = '';
    for (const line of stdout.split('\n')) {
      if (line === '') break;
      if (/^\s/.test(line)) f[key] += '\n' + line.trim();
      else {
        const i = line.indexOf(':');
        key = line.slice(0, i);
        f[key] = line.slice(i + 1).trim();
      }
    }
    return f;
  }

  /** `apt-get download` into `dir`, reporting progress (percent of this batch) through `onProgress`. */
  download(pkgs: string[], dir: string, onProgress: (pct: number) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn('apt-get', [...this.opts(), '-q', '-o', 'APT::Status-Fd=3', 'download', ...pkgs], {
        cwd: dir,
        stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
      });
      let err = '';
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      child.stdout!.resume();
      let buf = '';
      (child.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => {
        buf += d.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const m = /^dlstatus:[^:]*:([\d.]+):/.exec(buf.slice(0, nl));
          if (m) onProgress(Number(m[1]));
          buf = buf.slice(nl + 1);
        }
      });
      child.on('error', reject);
      child.on('close', (code) => {
        if (code === 0) resolve();
        else reject(new GuestError(`apt-get download ${pkgs.join(' ')} failed (exit ${code}): ${err.trim()}`));
      });
    });
  }
}

/** Options of {@link prepareKernel}. */
export interface PrepareOptions {
  /** Cache directory; default {@link cacheDir}. */
  cache?: string;
  /** Re-read the archive's indices when they are older than this; default 6 h. */
  maxListAgeMs?: number;
  /** Show a progress bar: true, false, or 'auto' (when stderr is a terminal); default 'auto'. */
  progress?: boolean | 'auto';
  /** Module names to copy out of the package; default {@link DEFAULT_MODULES}. */
  modules?: readonly string[];
  /** Install missing host packages first (as root; else throw naming the command); default true. */
  ensureHost?: boolean;
}

/** Bump when {@link KernelLayout} gains facts, so cached kernels are re-described from their BTF. */
const LAYOUT_VERSION = 2;

const locks = new Map<string, Promise<PreparedKernel>>();

async function readManifest(cache: string): Promise<Manifest> {
  try {
    return JSON.parse(await readFile(path.join(cache, 'manifest.json'), 'utf8')) as Manifest;
  } catch {
    return { kernels: {} };
  }
}

let manifestWrite: Promise<void> = Promise.resolve();
async function recordInManifest(cache: string, k: PreparedKernel): Promise<void> {
  // Serialise read-modify-write: several kernels may be prepared at once.
  manifestWrite = manifestWrite.then(async () => {
    const m = await readManifest(cache);
    m.kernels[k.suite] = { ...k, resolvedAt: new Date().toISOString() };
    const tmp = path.join(cache, `manifest.json.${process.pid}`);
    await writeFile(tmp, JSON.stringify(m, null, 2) + '\n');
    await rename(tmp, path.join(cache, 'manifest.json'));
  });
  return manifestWrite;
}

/** Resolved packages of one kernel: the image package and, on sid, the split base/binary/modules packages. */
async function resolvePackages(apt: PrivateApt): Promise<{ release: string; version: string; pkgs: PackageRecord[] }> {
  const meta = await apt.show('linux-image-amd64');
  const dep = /linux-image-(\d[^\s,(]*-amd64)\b/.exec(meta.Depends ?? '');
  if (!dep) throw new GuestError(`${apt.suite}: linux-image-amd64 does not name a kernel (Depends: ${meta.Depends})`);
  const release = dep[1]!;
  const image = await apt.show(`linux-image-${release}`);
  const names = [`linux-image-${release}`];
  // Sid's linux-image-<abi> is a meta package: the kernel lives in linux-{base,binary,modules}-<abi>.
  for (const m of (image.Depends ?? '').matchAll(/linux-(base|binary|modules)-([^\s,(]+)/g)) if (m[2] === release) names.push(m[0]);
  const pkgs: PackageRecord[] = [];
  for (const n of names) {
    const f = n === names[0] ? image : await apt.show(n);
    pkgs.push({ name: n, version: f.Version!, size: Number(f.Size), sha256: f.SHA256! });
  }
  return { release, version: image.Version!, pkgs };
}

function debFile(p: PackageRecord): string {
  return `${p.name}_${p.version.replace(/^\d+:/, '')}_amd64.deb`;
}

async function sha256(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex');
}

async function findFiles(dir: string, pred: (name: string) => boolean, out: string[] = []): Promise<string[]> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await findFiles(p, pred, out);
    else if (pred(e.name)) out.push(p);
  }
  return out;
}

/** Unpack only what the harness needs from the .deb files: vmlinuz, config and the named modules. */
async function unpack(debs: string[], stage: string, modules: readonly string[]): Promise<void> {
  await mkdir(stage, { recursive: true });
  const patterns = ['*/vmlinuz*', '*/config-*', '*/config', ...modules.flatMap((m) => [`*/${m}.ko`, `*/${m}.ko.xz`, `*/${m}.ko.zst`])];
  for (const deb of debs) {
    await new Promise<void>((resolve, reject) => {
      const sh = `dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" --wildcards --no-anchored ${patterns.map((p) => `'${p}'`).join(' ')} 2>/dev/null; exit 0`;
      execFile('sh', ['-c', sh, 'unpack', deb, stage], (e) => (e ? reject(e) : resolve()));
    });
  }
}

/**
 * Make one guest kernel ready: resolve the suite's newest kernel, download its packages (verified by
 * apt against the archive's signed indices) unless already cached, unpack the kernel and modules,
 * derive the probe layout from the kernel's BTF, and record it all in the manifest.
 */
export function prepareKernel(spec: GuestKernelSpec, opts: PrepareOptions = {}): Promise<PreparedKernel> {
  const suite = KERNEL_SUITES[spec];
  if (!suite) return Promise.reject(new GuestError(`unknown guest kernel '${spec}' (known: ${Object.keys(KERNEL_SUITES).join(', ')})`));
  const cache = opts.cache ?? cacheDir();
  const key = `${cache}\0${suite}`;
  let p = locks.get(key);
  if (!p) {
    p = doPrepare(suite, cache, opts);
    locks.set(key, p);
    p.catch(() => locks.delete(key));
  }
  return p;
}

async function doPrepare(suite: KernelSuite, cache: string, opts: PrepareOptions): Promise<PreparedKernel> {
  if (opts.ensureHost !== false) await ensureDebianPackages(HOST_PACKAGES);
  const apt = new PrivateApt(suite, cache);
  await apt.setup();
  const fresh = await apt.update(opts.maxListAgeMs ?? 6 * 3600_000);
  let resolved: Awaited<ReturnType<typeof resolvePackages>>;
  try {
    resolved = await resolvePackages(apt);
  } catch (e) {
    const old = (await readManifest(cache)).kernels[suite];
    if (!fresh && old) return old; // offline and the lists are unusable: the last good kernel
    throw e;
  }
  const modules = opts.modules ?? DEFAULT_MODULES;
  const dir = path.join(cache, 'kernels', resolved.release);
  const infoFile = path.join(dir, 'kernel.json');
  if (existsSync(infoFile)) {
    const k = JSON.parse(await readFile(infoFile, 'utf8')) as PreparedKernel & { layoutVersion?: number };
    if (k.version === resolved.version && modules.every((m) => m in k.modules)) {
      if (k.layoutVersion !== LAYOUT_VERSION) {
        // The harness learned to read more from BTF since this kernel was cached: re-derive.
        k.layout = kernelLayout(new Btf(await readFile(path.join(dir, 'btf'))));
        k.layoutVersion = LAYOUT_VERSION;
        await writeFile(infoFile, JSON.stringify(k, null, 2) + '\n');
      }
      await recordInManifest(cache, k);
      return k;
    }
  }

  const debDir = path.join(cache, 'debs');
  await mkdir(debDir, { recursive: true });
  const missing: PackageRecord[] = [];
  for (const p of resolved.pkgs) {
    const f = path.join(debDir, debFile(p));
    if (!existsSync(f) || (await sha256(f)) !== p.sha256) missing.push(p);
  }
  if (missing.length > 0) await downloadWithProgress(apt, missing, debDir, opts.progress ?? 'auto');
  for (const p of resolved.pkgs) {
    const f = path.join(debDir, debFile(p));
    if (!existsSync(f)) throw new GuestError(`apt-get download did not produce ${f}`);
  }

  const kernels = path.join(cache, 'kernels');
  await mkdir(kernels, { recursive: true });
  await reclaimStale(kernels, '.stage-'); // left by a SIGKILLed run
  const stage = await ownedTempDir(kernels, '.stage-');
  try {
    return await unpackKernel(suite, cache, resolved, debDir, stage, modules, dir, infoFile);
  } finally {
    await removeDir(stage);
  }
}

/** Unpack a kernel's packages through `stage` into its directory `dir` and describe it. */
async function unpackKernel(suite: KernelSuite, cache: string, resolved: Awaited<ReturnType<typeof resolvePackages>>, debDir: string, stage: string, modules: readonly string[], dir: string, infoFile: string): Promise<PreparedKernel> {
  await unpack(resolved.pkgs.map((p) => path.join(debDir, debFile(p))), stage, modules);
  const vmlinuzSrc = (await findFiles(stage, (n) => n === 'vmlinuz' || n === `vmlinuz-${resolved.release}`))[0];
  if (!vmlinuzSrc) throw new GuestError(`no vmlinuz in ${resolved.pkgs.map((p) => p.name).join(', ')}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(path.join(dir, 'modules'), { recursive: true });
  const vmlinuz = path.join(dir, 'vmlinuz');
  await rename(vmlinuzSrc, vmlinuz);
  const config = (await findFiles(stage, (n) => n === 'config' || n === `config-${resolved.release}`))[0];
  if (config) await rename(config, path.join(dir, 'config'));
  const mods: Record<string, string> = {};
  for (const f of await findFiles(stage, (n) => /\.ko(\.xz|\.zst)?$/.test(n))) {
    const name = path.basename(f).replace(/\.ko(\.xz|\.zst)?$/, '');
    const out = path.join(dir, 'modules', `${name}.ko`);
    // busybox insmod takes plain ELF modules; 6.12+ ship them compressed.
    if (f.endsWith('.xz')) await run('sh', ['-c', 'xz -dc "$1" > "$2"', 'xz', f, out]);
    else if (f.endsWith('.zst')) await run('zstd', ['-dq', f, '-o', out]);
    else await rename(f, out);
    mods[name] = out;
  }
  for (const m of modules) if (!mods[m]) throw new GuestError(`module ${m} is not in ${resolved.pkgs.map((p) => p.name).join(', ')}`);

  const btf = await btfFromBzImage(vmlinuz);
  await writeFile(path.join(dir, 'btf'), btf);
  const layout = kernelLayout(new Btf(btf));
  const k: PreparedKernel = {
    suite,
    release: resolved.release,
    version: resolved.version,
    packages: resolved.pkgs,
    downloadBytes: resolved.pkgs.reduce((s, p) => s + p.size, 0),
    vmlinuz,
    modules: mods,
    layout,
    dir,
  };
  await writeFile(infoFile, JSON.stringify({ ...k, layoutVersion: LAYOUT_VERSION }, null, 2) + '\n');
  await recordInManifest(cache, k);
  return k;
}

let multibar: cliProgress.MultiBar | undefined;
let barsOpen = 0;

async function downloadWithProgress(apt: PrivateApt, pkgs: PackageRecord[], dir: string, progress: boolean | 'auto'): Promise<void> {
  const total = pkgs.reduce((s, p) => s + p.size, 0);
  const mb = (n: number) => (n / 1e6).toFixed(1);
  const show = progress === 'auto' ? process.stderr.isTTY === true : progress;
  if (!show) {
    process.stderr.write(`memhp: downloading ${pkgs.map((p) => `${p.name} ${p.version}`).join(', ')} (${mb(total)} MB)\n`);
    await apt.download(pkgs.map((p) => `${p.name}=${p.version}`), dir, () => undefined);
    return;
  }
  multibar ??= new cliProgress.MultiBar(
    { format: ' {name} [{bar}] {percentage}% | {value}/{total} MB', hideCursor: true, clearOnComplete: false, stream: process.stderr },
    cliProgress.Presets.shades_classic,
  );
  barsOpen++;
  const bar = multibar.create(Number(mb(total)), 0, { name: `linux ${apt.suite}`.padEnd(14) });
  try {
    await apt.download(pkgs.map((p) => `${p.name}=${p.version}`), dir, (pct) => bar.update(Number(mb((total * pct) / 100))));
    bar.update(Number(mb(total)));
  } finally {
    if (--barsOpen === 0) {
      multibar.stop();
      multibar = undefined;
    }
  }
}

/** The recorded manifest: per suite, the kernel last prepared (exact package versions, sizes, paths). */
export async function kernelManifest(cache = cacheDir()): Promise<Manifest['kernels']> {
  return (await readManifest(cache)).kernels;
}
