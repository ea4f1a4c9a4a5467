/**
 * Guest kernels from Debian's archive: resolved by version at run time through a private apt
 * configuration (lib/guest/apt.ts; the host's apt sources and state are never read or changed),
 * downloaded and verified by apt, unpacked (lib/guest/unpack.ts), and described (BTF layout) once;
 * everything is cached under `$MEMHP_CACHE` (default `~/.cache/memhp`) with a manifest recording the
 * exact package versions. The cache must be this user's alone, and each kernel's files are used only
 * while they match the sha256 recorded when they were unpacked (lib/guest/trust.ts, docs/cache.md).
 */
import { rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { ensureDebianPackages } from '../host/packages.js';
import { KERNEL_VERSIONS, LATEST, PROFILES, type DebianSuite, type KernelVersion } from '../kernel/profile.js';
import { PrivateApt } from './apt.js';
import { Btf, kernelLayout, type KernelLayout } from './btf.js';
import { ownedTempDir, reclaimStale, removeDir } from './cleanup.js';
import { GuestError } from './errors.js';
import { CACHE_ROLE, fileMatches, readOwnFile, readVerified, trustedDir, trustedSubdir, writeOwnFile } from './trust.js';
import { unpackDebs } from './unpack.js';

/** Host packages the harness needs: QEMU, the guest's userland, and decompressors for kernel images and modules. */
export const HOST_PACKAGES = ['qemu-system-x86', 'busybox-static', 'xz-utils', 'zstd'] as const;

/** Which guest kernel: a profile's version (its Debian suite's newest kernel), 'latest' (the newest profile's), or 'sid'. */
export type GuestKernelSpec = KernelVersion | 'latest' | 'sid';

/** A Debian suite the harness fetches kernels from. */
export type KernelSuite = DebianSuite;

/** Where each kernel spec comes from: derived from the profiles' `debianSuite` (lib/kernel/profile.ts). */
export const KERNEL_SUITES: Readonly<Record<GuestKernelSpec, KernelSuite>> = {
  ...(Object.fromEntries(KERNEL_VERSIONS.map((v) => [v, PROFILES[v].debianSuite])) as Record<KernelVersion, KernelSuite>),
  latest: PROFILES[LATEST].debianSuite,
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
  /** sha256 of the files, recorded when they were unpacked from the verified packages; checked before each use. */
  digests: KernelDigests;
}

/** sha256 of a cached kernel's files (in its kernel.json, written only by this user: lib/guest/trust.ts). */
export interface KernelDigests {
  /** The bzImage. */
  vmlinuz: string;
  /** The BTF extracted from it, which the probe layout is derived from. */
  btf: string;
  /** Each module file, by module name. */
  modules: Record<string, string>;
}

interface Manifest {
  kernels: Record<string, PreparedKernel & { resolvedAt: string }>;
}

/** The cache directory: `$MEMHP_CACHE`, else `~/.cache/memhp`. */
export function cacheDir(): string {
  return process.env.MEMHP_CACHE || path.join(os.homedir(), '.cache', 'memhp');
}

/** Options of {@link prepareKernel}. */
export interface PrepareOptions {
  /** Cache directory; default {@link cacheDir}. */
  cache?: string;
  /** Re-read the archive's indices when they are older than this; default 6 h. */
  maxListAgeMs?: number;
  /** Show a progress bar: true, false, or 'auto' (when stderr is a terminal); default 'auto'. */
  progress?: boolean | 'auto';
  /**
   * Told how a download goes instead of any bar or line on stderr (a caller that shows its own
   * progress, as `memhp conform` on a terminal): what is downloaded, its bytes, and the percentage done.
   */
  onDownload?: (what: string, bytes: number, percent: number) => void;
  /** Module names to copy out of the package; default {@link DEFAULT_MODULES}. */
  modules?: readonly string[];
  /** Install missing host packages first (as root; else throw naming the command); default true. */
  ensureHost?: boolean;
}

/** Bump when {@link KernelLayout} gains facts, so cached kernels are re-described from their BTF. */
const LAYOUT_VERSION = 2;

/** A `uname -r` as Debian names its kernels (a directory name: no slash, no leading dot). */
export const RELEASE = /^\d[\w.+~-]*$/;
/** A module name (a file name in the kernel's directory). */
const MODULE = /^[\w-]+$/;

const locks = new Map<string, Promise<PreparedKernel>>();

async function readManifest(cache: string): Promise<Manifest> {
  let raw: Buffer;
  try {
    raw = await readOwnFile(path.join(cache, 'manifest.json')); // never through a link
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { kernels: {} };
    throw e;
  }
  try {
    const m = JSON.parse(raw.toString('utf8')) as Partial<Manifest> | null;
    if (m && typeof m.kernels === 'object' && m.kernels) return m as Manifest;
  } catch {
    /* a torn or foreign file: start again */
  }
  return { kernels: {} };
}

let manifestWrite: Promise<void> = Promise.resolve();
function recordInManifest(cache: string, k: PreparedKernel): Promise<void> {
  // Serialise read-modify-write: several kernels may be prepared at once. A failed write does not stop later ones.
  manifestWrite = manifestWrite.catch(() => undefined).then(async () => {
    const m = await readManifest(cache);
    m.kernels[k.suite] = { ...k, resolvedAt: new Date().toISOString() };
    await writeOwnFile(path.join(cache, 'manifest.json'), JSON.stringify(m, null, 2) + '\n', 0o644);
  });
  return manifestWrite;
}

/** Resolved packages of one kernel: the image package and, on sid and trixie-backports (7.x), the split base/binary/modules packages. */
async function resolvePackages(apt: PrivateApt): Promise<{ release: string; version: string; pkgs: PackageRecord[] }> {
  const meta = await apt.show('linux-image-amd64');
  const dep = /linux-image-(\d[^\s,(]*-amd64)\b/.exec(meta.Depends ?? '');
  if (!dep) throw new GuestError(`${apt.suite}: linux-image-amd64 does not name a kernel (Depends: ${meta.Depends})`);
  const release = dep[1]!;
  if (!RELEASE.test(release)) throw new GuestError(`${apt.suite}: '${release}' is not a kernel release name`);
  const image = await apt.show(`linux-image-${release}`);
  const names = [`linux-image-${release}`];
  // 7.x's linux-image-<abi> is a meta package: the kernel lives in linux-{base,binary,modules}-<abi>.
  for (const m of (image.Depends ?? '').matchAll(/linux-(base|binary|modules)-([^\s,(]+)/g)) if (m[2] === release) names.push(m[0]);
  const pkgs: PackageRecord[] = [];
  for (const n of names) {
    const f = n === names[0] ? image : await apt.show(n);
    pkgs.push({ name: n, version: f.Version!, size: Number(f.Size), sha256: f.SHA256! });
  }
  return { release, version: image.Version!, pkgs };
}

/** The file name of a downloaded package in `<cache>/debs/`, as `apt-get download` names it. */
export function debFile(p: Pick<PackageRecord, 'name' | 'version'>): string {
  return `${p.name}_${p.version.replace(/^\d+:/, '')}_amd64.deb`;
}

/** The files of a kernel directory: always these paths, whatever its kernel.json says. */
function kernelFiles(dir: string, modules: readonly string[]): { vmlinuz: string; btf: string; modules: Record<string, string> } {
  return {
    vmlinuz: path.join(dir, 'vmlinuz'),
    btf: path.join(dir, 'btf'),
    modules: Object.fromEntries(modules.map((m) => [m, path.join(dir, 'modules', `${m}.ko`)])),
  };
}

/** True when every file of a prepared kernel still matches the sha256 recorded when it was unpacked. */
async function intact(k: PreparedKernel): Promise<boolean> {
  const d = k.digests;
  const checks: [string, string | undefined][] = [[k.vmlinuz, d.vmlinuz], [path.join(k.dir, 'btf'), d.btf], ...Object.entries(k.modules).map(([m, f]): [string, string | undefined] => [f, d.modules[m]])];
  for (const [f, digest] of checks) if (!(await fileMatches(f, digest))) return false;
  return true;
}

type StoredKernel = Partial<PreparedKernel> & { layoutVersion?: number };

/** A kernel directory's kernel.json (this user's, not a link), or undefined. */
async function storedKernel(dir: string): Promise<StoredKernel | undefined> {
  try {
    const j = JSON.parse((await readOwnFile(path.join(dir, 'kernel.json'))).toString('utf8')) as unknown;
    return j !== null && typeof j === 'object' ? (j as StoredKernel) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The kernel unpacked in `dir`, when its kernel.json is of `version` (any when undefined), has the
 * `modules`, and records digests that every file still matches; else undefined. A version match alone
 * is not enough: a kernel unpacked before digests were recorded is unpacked again, once.
 */
async function cachedKernel(suite: KernelSuite, dir: string, version: string | undefined, modules: readonly string[]): Promise<PreparedKernel | undefined> {
  const k = await storedKernel(dir);
  const d = k?.digests;
  if (!k || !d || typeof d.modules !== 'object' || k.release !== path.basename(dir) || typeof k.version !== 'string') return undefined;
  if (version !== undefined && k.version !== version) return undefined;
  const names = Object.keys(d.modules);
  if (!names.every((m) => MODULE.test(m)) || !modules.every((m) => names.includes(m))) return undefined;
  const files = kernelFiles(dir, names);
  let layout = k.layout;
  const prepared: PreparedKernel = { suite, release: k.release, version: k.version, packages: k.packages ?? [], downloadBytes: k.downloadBytes ?? 0, vmlinuz: files.vmlinuz, modules: files.modules, layout: layout!, dir, digests: d };
  if (!(await intact(prepared))) return undefined;
  if (k.layoutVersion !== LAYOUT_VERSION || !layout) {
    // The harness learned to read more from BTF since this kernel was cached: re-derive.
    layout = prepared.layout = kernelLayout(new Btf(await readVerified(files.btf, d.btf)));
    await writeOwnFile(path.join(dir, 'kernel.json'), JSON.stringify({ ...prepared, layoutVersion: LAYOUT_VERSION }, null, 2) + '\n', 0o644);
  }
  return prepared;
}

/**
 * Make one guest kernel ready: resolve the suite's newest kernel, download its packages (verified by
 * apt against the archive's signed indices, and by their sha256 here) unless already cached, unpack
 * the kernel and modules, derive the probe layout from the kernel's BTF, and record it all with the
 * sha256 of every file. A cached kernel is used only while its files match those digests; a kernel
 * prepared earlier in this process is checked again on every call. The cache directory must be this
 * user's alone (lib/guest/trust.ts `trustedDir`).
 */
export async function prepareKernel(spec: GuestKernelSpec, opts: PrepareOptions = {}): Promise<PreparedKernel> {
  const suite = KERNEL_SUITES[spec];
  if (!suite) throw new GuestError(`unknown guest kernel '${spec}' (known: ${Object.keys(KERNEL_SUITES).join(', ')})`);
  const cache = opts.cache ?? cacheDir();
  const key = `${cache}\0${suite}`;
  const known = locks.get(key);
  if (known) {
    const k = await known;
    if (await intact(k)) return k;
    if (locks.get(key) === known) locks.delete(key); // changed since: prepare it again
  }
  let p = locks.get(key);
  if (!p) {
    p = doPrepare(suite, cache, opts);
    locks.set(key, p);
    p.catch(() => locks.delete(key));
  }
  return p;
}

async function doPrepare(suite: KernelSuite, cache: string, opts: PrepareOptions): Promise<PreparedKernel> {
  await trustedDir(cache, CACHE_ROLE);
  await readManifest(cache); // a manifest that is a link, or another user's, is refused before any work
  const modules = opts.modules ?? DEFAULT_MODULES;
  for (const m of modules) if (!MODULE.test(m)) throw new GuestError(`'${m}' is not a module name`);
  if (opts.ensureHost !== false) await ensureDebianPackages(HOST_PACKAGES);
  const apt = new PrivateApt(suite, cache);
  await apt.setup();
  const fresh = await apt.update(opts.maxListAgeMs ?? 6 * 3600_000);
  const kernels = path.join(cache, 'kernels');
  await trustedSubdir(kernels, CACHE_ROLE);
  let resolved: Awaited<ReturnType<typeof resolvePackages>>;
  try {
    resolved = await resolvePackages(apt);
  } catch (e) {
    // Offline and the lists are unusable: the last good kernel, if its files are still the ones unpacked.
    const old = (await readManifest(cache)).kernels[suite];
    const k = !fresh && old && RELEASE.test(old.release) ? await cachedKernel(suite, path.join(kernels, old.release), undefined, modules) : undefined;
    if (k) return k;
    throw e;
  }
  const dir = path.join(kernels, resolved.release);
  const cached = await cachedKernel(suite, dir, resolved.version, modules);
  if (cached) {
    await recordInManifest(cache, cached);
    return cached;
  }

  const debDir = path.join(cache, 'debs');
  await trustedSubdir(debDir, CACHE_ROLE);
  const missing: PackageRecord[] = [];
  for (const p of resolved.pkgs) if (!(await fileMatches(path.join(debDir, debFile(p)), p.sha256))) missing.push(p);
  if (missing.length > 0) await downloadWithProgress(apt, missing, debDir, opts.progress ?? 'auto', opts.onDownload);
  for (const p of resolved.pkgs) {
    const f = path.join(debDir, debFile(p));
    if (!(await fileMatches(f, p.sha256))) throw new GuestError(`apt-get download did not produce ${f} with the sha256 of the archive's signed index (${p.sha256})`);
  }

  await reclaimStale(kernels, '.stage-'); // left by a SIGKILLed run
  const stage = await ownedTempDir(kernels, '.stage-');
  try {
    const debs = resolved.pkgs.map((p) => path.join(debDir, debFile(p)));
    const k = await unpackKernel(suite, resolved, debs, stage, modules, dir);
    await recordInManifest(cache, k);
    return k;
  } finally {
    await removeDir(stage);
  }
}

/**
 * Unpack a kernel's verified packages through `stage` and move the files into its directory `dir`,
 * each by a rename (a boot that opened the old file keeps it; a link in the way is replaced, not
 * followed). The directory is emptied first only when it held another version of the kernel.
 */
async function unpackKernel(suite: KernelSuite, resolved: Awaited<ReturnType<typeof resolvePackages>>, debs: string[], stage: string, modules: readonly string[], dir: string): Promise<PreparedKernel> {
  const u = await unpackDebs(debs, stage, resolved.release, modules);
  if ((await storedKernel(dir))?.version !== resolved.version) await rm(dir, { recursive: true, force: true });
  await trustedSubdir(dir, CACHE_ROLE);
  await trustedSubdir(path.join(dir, 'modules'), CACHE_ROLE);
  for (const rel of Object.keys(u.files)) await rename(path.join(u.out, rel), path.join(dir, rel));
  const files = kernelFiles(dir, u.modules);
  const k: PreparedKernel = {
    suite,
    release: resolved.release,
    version: resolved.version,
    packages: resolved.pkgs,
    downloadBytes: resolved.pkgs.reduce((s, p) => s + p.size, 0),
    vmlinuz: files.vmlinuz,
    modules: files.modules,
    layout: kernelLayout(new Btf(u.btf)),
    dir,
    digests: {
      vmlinuz: u.files.vmlinuz!,
      btf: u.files.btf!,
      modules: Object.fromEntries(u.modules.map((m) => [m, u.files[`modules/${m}.ko`]!])),
    },
  };
  await writeOwnFile(path.join(dir, 'kernel.json'), JSON.stringify({ ...k, layoutVersion: LAYOUT_VERSION }, null, 2) + '\n', 0o644);
  return k;
}

let multibar: cliProgress.MultiBar | undefined;
let barsOpen = 0;

async function downloadWithProgress(apt: PrivateApt, pkgs: PackageRecord[], dir: string, progress: boolean | 'auto', onDownload?: PrepareOptions['onDownload']): Promise<void> {
  const total = pkgs.reduce((s, p) => s + p.size, 0);
  if (onDownload) {
    const what = `linux ${apt.suite} (${pkgs.map((p) => p.name).join(', ')})`;
    onDownload(what, total, 0);
    await apt.download(pkgs.map((p) => `${p.name}=${p.version}`), dir, (pct) => onDownload(what, total, pct));
    onDownload(what, total, 100);
    return;
  }
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
