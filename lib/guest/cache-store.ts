/**
 * What the guest harness keeps on disk, looked at and removed (docs/cache.md): the kernel cache
 * (`$MEMHP_CACHE`: each unpacked kernel with its Debian packages, other packages, the private apt state
 * per suite, the builds of the guest helper, the manifest) and the snapshot cache (`$MEMHP_SNAPSHOT_DIR`:
 * each saved guest with its kernel, machine, size and times). `memhp cache` (lib/cli/cache.ts) shows it.
 *
 * Both use a directory only when memhp trusts it, as a guest boot does (trust.ts `trustedDir`): one
 * another user could write is refused with the fix. Cleaning removes only what memhp makes there, by
 * name (a snapshot key, a kernel release, a `linux-*.deb`, a helper key, an apt suite), never follows a
 * symbolic link (a link is removed, not what it points to), and leaves the temporary directories of
 * memhp processes that still run. Missing directories are empty, and are not made.
 */
import type { Stats } from 'node:fs';
import { lstat, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { formatSize } from '../size.js';
import { reclaimStale } from './cleanup.js';
import type { GuestError } from './errors.js';
import { cacheDir, debFile, KERNEL_SUITES, RELEASE, type PackageRecord } from './kernels.js';
import { HARNESS_CMDLINE } from './qemu-cmdline.js';
import { snapshotCacheMax, snapshotDir, type SnapshotMeta } from './snapshot.js';
import { CACHE_ROLE, checkOwnSubdir, readOwnFile, SNAPSHOT_ROLE, trustedDir, type DirRole } from './trust.js';

/** One unpacked kernel of the cache (`kernels/<release>/`) and its packages in `debs/`. */
export interface CachedKernelInfo {
  release: string;
  /** The Debian suite it came from, when known (the manifest, or its kernel.json). */
  suite?: string;
  /** The Debian package version, from its kernel.json. */
  version?: string;
  /** True when the manifest names it as its suite's kernel (the one a boot uses offline). */
  current: boolean;
  dir: string;
  /** Bytes of the unpacked tree (vmlinuz, BTF, modules, kernel.json, the chain-offset calibration). */
  unpackedBytes: number;
  /** Its packages found in `debs/`. */
  packages: { file: string; bytes: number }[];
  /** unpackedBytes plus the packages' bytes. */
  bytes: number;
}

/** One saved guest of the snapshot cache (`<key>/`). */
export interface SnapshotInfo {
  key: string;
  dir: string;
  bytes: number;
  /** When it was last restored (or saved): the entry's mtime, the order eviction goes by. */
  lastUsed: string;
  /** From its meta.json; absent when that cannot be read as this user's own file. */
  created?: string;
  release?: string;
  accel?: string;
  /** The machine, in words: `512 MiB, maxmem 8 GiB, 8 slots, 1 cpu, 1 node`. */
  machine?: string;
  /** Kernel command line words beyond the harness's own. */
  cmdline?: string;
  imageBytes?: number;
  bootMs?: number;
}

/** A file or directory with its size. */
export interface SizedEntry {
  name: string;
  bytes: number;
}

/** What `memhp cache list --json` prints. */
export interface CacheReport {
  cache: {
    dir: string;
    /** False when the directory does not exist. */
    exists: boolean;
    kernels: CachedKernelInfo[];
    /** Packages in `debs/` that belong to no unpacked kernel (older versions). */
    packages: { file: string; bytes: number }[];
    /** The private apt state (indices, configuration) per Debian suite. */
    apt: { suite: string; bytes: number }[];
    /** Builds of the guest helper memhp-io (`helper/<key>/`), one per source and compiler. */
    helpers: { key: string; bytes: number; built: string }[];
    /** manifest.json, when there is one. */
    manifest?: SizedEntry;
    /** Temporary entries of running or dead memhp processes (`kernels/.stage-*`). */
    partial: SizedEntry[];
    /** Anything else in the directory (not memhp's; never removed). */
    other: SizedEntry[];
    bytes: number;
  };
  snapshots: {
    dir: string;
    exists: boolean;
    /** The size cap (`MEMHP_SNAPSHOT_CACHE_MAX`); absent when the variable is not a size. */
    maxBytes?: number;
    /** Most recently used first. */
    entries: SnapshotInfo[];
    /** Saves in progress, or left by a dead process (`.tmp-*`). */
    partial: SizedEntry[];
    other: SizedEntry[];
    bytes: number;
  };
  bytes: number;
}

/** A snapshot entry's name: its key, 32 hex digits (lib/guest/snapshot.ts `snapshotKey`). */
const SNAPSHOT_KEY = /^[0-9a-f]{32}$/;
/** A helper build's directory name (lib/guest/helper.ts). */
const HELPER_KEY = /^[0-9a-f]{16}$/;
/** A package `apt-get download` made in `debs/`. */
const DEB = /^linux-[\w.+~-]+_[\w.+~-]+_amd64\.deb$/;
/** The cache's own top-level entries. */
const CACHE_NAMES = new Set(['apt', 'debs', 'kernels', 'helper', 'manifest.json']);
const SUITES = new Set<string>(Object.values(KERNEL_SUITES));

const lstatOrUndefined = (p: string): Promise<Stats | undefined> =>
  lstat(p).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });

/** Bytes of a file or a tree, by lstat: a symbolic link counts as itself and is never followed. */
export async function treeBytes(p: string): Promise<number> {
  const st = await lstatOrUndefined(p);
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  let n = 0;
  for (const name of await readdir(p).catch(() => [] as string[])) n += await treeBytes(path.join(p, name));
  return n;
}

const names = async (dir: string): Promise<string[]> => (await readdir(dir).catch(() => [] as string[])).sort();

/**
 * Whether a cache directory exists; when it does, it must be trusted ({@link trustedDir}: this
 * user's, writable by no one else, nor replaceable through a directory above it), else a
 * {@link GuestError} says what to do. A missing one is not made.
 */
async function trustedIfThere(dir: string, role: DirRole): Promise<boolean> {
  if (!(await lstatOrUndefined(dir))) return false;
  await trustedDir(dir, role);
  return true;
}

/** A subdirectory of a trusted cache: undefined when missing; refused when it is a link or not this user's alone. */
async function subdir(dir: string, role: DirRole): Promise<string | undefined> {
  if (!(await lstatOrUndefined(dir))) return undefined;
  await checkOwnSubdir(dir, role);
  return dir;
}

/** A JSON file of the caches, read as the harness reads them (not through a link, this user's own); undefined if it cannot be. */
async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    const v = JSON.parse((await readOwnFile(file)).toString('utf8')) as unknown;
    return v !== null && typeof v === 'object' ? (v as T) : undefined;
  } catch {
    return undefined;
  }
}

/** A snapshot's machine, in words, from the QEMU arguments of its identity. */
function machineText(args: readonly string[]): string | undefined {
  const at = (flag: string): string | undefined => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const m = /^(\d+)B,slots=(\d+),maxmem=(\d+)B$/.exec(at('-m') ?? '');
  if (!m) return undefined;
  const cpus = Number(at('-smp') ?? 1);
  const nodes = args.filter((a, i) => args[i - 1] === '-numa' && a.startsWith('node,')).length || 1;
  return `${formatSize(Number(m[1]))}, maxmem ${formatSize(Number(m[3]))}, ${m[2]} slots, ${cpus} cpu${cpus === 1 ? '' : 's'}, ${nodes} node${nodes === 1 ? '' : 's'}`;
}

/** Look at the caches, without changing them. Throws a {@link GuestError} for a directory memhp does not trust. */
export async function inspectCache(): Promise<CacheReport> {
  const cdir = cacheDir();
  const sdir = snapshotDir();
  const cacheThere = await trustedIfThere(cdir, CACHE_ROLE);
  const snapThere = await trustedIfThere(sdir, SNAPSHOT_ROLE);
  const cache: CacheReport['cache'] = { dir: cdir, exists: cacheThere, kernels: [], packages: [], apt: [], helpers: [], partial: [], other: [], bytes: 0 };
  if (cacheThere) {
    const manifest = (await readJson<{ kernels?: Record<string, { release?: string }> }>(path.join(cdir, 'manifest.json')))?.kernels ?? {};
    const debsDir = await subdir(path.join(cdir, 'debs'), CACHE_ROLE);
    const debs = new Map<string, number>();
    if (debsDir) for (const f of await names(debsDir)) debs.set(f, await treeBytes(path.join(debsDir, f)));
    const kernelsDir = await subdir(path.join(cdir, 'kernels'), CACHE_ROLE);
    for (const name of kernelsDir ? await names(kernelsDir) : []) {
      const dir = path.join(kernelsDir!, name);
      if (name.startsWith('.stage-')) {
        cache.partial.push({ name: path.join('kernels', name), bytes: await treeBytes(dir) });
        continue;
      }
      const k = await readJson<{ suite?: string; version?: string; packages?: Pick<PackageRecord, 'name' | 'version'>[] }>(path.join(dir, 'kernel.json'));
      const suiteOf = Object.entries(manifest).find(([, m]) => m?.release === name)?.[0];
      const packages: CachedKernelInfo['packages'] = [];
      for (const p of Array.isArray(k?.packages) ? k.packages : []) {
        if (typeof p?.name !== 'string' || typeof p.version !== 'string') continue;
        const file = debFile(p);
        const bytes = debs.get(file);
        if (bytes === undefined) continue;
        packages.push({ file, bytes });
        debs.delete(file);
      }
      const unpackedBytes = await treeBytes(dir);
      const suite = suiteOf ?? (typeof k?.suite === 'string' ? k.suite : undefined);
      cache.kernels.push({
        release: name,
        ...(suite ? { suite } : {}),
        ...(typeof k?.version === 'string' ? { version: k.version } : {}),
        current: suiteOf !== undefined,
        dir,
        unpackedBytes,
        packages,
        bytes: unpackedBytes + packages.reduce((t, p) => t + p.bytes, 0),
      });
    }
    cache.packages = [...debs].map(([file, bytes]) => ({ file, bytes }));
    const aptDir = await subdir(path.join(cdir, 'apt'), CACHE_ROLE);
    for (const suite of aptDir ? await names(aptDir) : []) cache.apt.push({ suite, bytes: await treeBytes(path.join(aptDir!, suite)) });
    const helperDir = await subdir(path.join(cdir, 'helper'), CACHE_ROLE);
    for (const key of helperDir ? await names(helperDir) : []) {
      const dir = path.join(helperDir!, key);
      const st = (await lstatOrUndefined(path.join(dir, 'memhp-io'))) ?? (await lstatOrUndefined(dir));
      cache.helpers.push({ key, bytes: await treeBytes(dir), built: st ? st.mtime.toISOString() : '' });
    }
    const mst = await lstatOrUndefined(path.join(cdir, 'manifest.json'));
    if (mst) cache.manifest = { name: 'manifest.json', bytes: mst.size };
    for (const name of await names(cdir)) {
      // The snapshot cache is listed as such, wherever it is.
      if (CACHE_NAMES.has(name) || path.resolve(cdir, name) === path.resolve(sdir)) continue;
      cache.other.push({ name, bytes: await treeBytes(path.join(cdir, name)) });
    }
    cache.bytes =
      cache.kernels.reduce((t, k) => t + k.bytes, 0) +
      [...cache.packages, ...cache.apt, ...cache.helpers, ...cache.partial, ...cache.other].reduce((t, e) => t + e.bytes, 0) +
      (cache.manifest?.bytes ?? 0);
  }

  let maxBytes: number | undefined;
  try {
    maxBytes = snapshotCacheMax();
  } catch {
    /* not a size: the next guest boot says so */
  }
  const snapshots: CacheReport['snapshots'] = { dir: sdir, exists: snapThere, ...(maxBytes !== undefined ? { maxBytes } : {}), entries: [], partial: [], other: [], bytes: 0 };
  if (snapThere) {
    for (const name of await names(sdir)) {
      const dir = path.join(sdir, name);
      const st = await lstatOrUndefined(dir);
      if (!st) continue;
      const bytes = await treeBytes(dir);
      if (name.startsWith('.tmp-')) snapshots.partial.push({ name, bytes });
      else if (!SNAPSHOT_KEY.test(name) || !st.isDirectory()) snapshots.other.push({ name, bytes });
      else {
        const meta = await readJson<SnapshotMeta>(path.join(dir, 'meta.json'));
        const id = meta?.identity;
        const machine = Array.isArray(id?.args) ? machineText(id.args) : undefined;
        const extra = typeof meta?.cmdline === 'string' ? meta.cmdline.split(' ').filter((w) => w && !HARNESS_CMDLINE.includes(w)).join(' ') : '';
        snapshots.entries.push({
          key: name,
          dir,
          bytes,
          lastUsed: st.mtime.toISOString(),
          ...(typeof meta?.created === 'string' ? { created: meta.created } : {}),
          ...(typeof id?.release === 'string' ? { release: id.release } : {}),
          ...(typeof id?.accel === 'string' ? { accel: id.accel } : {}),
          ...(machine ? { machine } : {}),
          ...(extra ? { cmdline: extra } : {}),
          ...(typeof meta?.imageBytes === 'number' ? { imageBytes: meta.imageBytes } : {}),
          ...(typeof meta?.bootMs === 'number' ? { bootMs: Math.round(meta.bootMs) } : {}),
        });
      }
    }
    snapshots.entries.sort((a, b) => b.lastUsed.localeCompare(a.lastUsed) || a.key.localeCompare(b.key));
    snapshots.bytes = [...snapshots.entries, ...snapshots.partial, ...snapshots.other].reduce((t, e) => t + e.bytes, 0);
  }
  // With the snapshot cache inside the kernel cache (the default), each byte is counted once.
  return { cache, snapshots, bytes: cache.bytes + snapshots.bytes };
}

/** What `memhp cache clean` removes. */
export interface CleanWhat {
  snapshots?: boolean;
  kernels?: boolean;
  /** Kernels and snapshots, and the apt state and helper builds too. */
  all?: boolean;
  /** Say what would be removed, remove nothing. */
  dryRun?: boolean;
}

/** One thing `clean` removed (or would remove, or could not). */
export interface Removed {
  kind: 'snapshot' | 'unfinished save' | 'kernel' | 'package' | 'manifest' | 'apt state' | 'helper build' | 'unfinished kernel';
  path: string;
  bytes: number;
  /** Why it could not be removed. */
  error?: string;
}

/** What `memhp cache clean --json` prints. */
export interface CleanReport {
  dryRun: boolean;
  removed: Removed[];
  failed: Removed[];
  /** Bytes freed (with --dry-run: that would be). */
  bytes: number;
}

/**
 * Remove what `what` names from the caches: only entries memhp makes, by name; links are removed, not
 * followed; temporary directories of live memhp processes are left. Throws a {@link GuestError} for a
 * directory memhp does not trust, before removing anything.
 */
export async function cleanCache(what: CleanWhat): Promise<CleanReport> {
  const kernels = what.kernels || what.all;
  const snapshots = what.snapshots || what.all;
  const cdir = cacheDir();
  const sdir = snapshotDir();
  const targets: Omit<Removed, 'bytes'>[] = [];
  const push = (kind: Removed['kind'], p: string): number => targets.push({ kind, path: p });
  // Temporary directories of dead memhp processes, removed as the harness removes them (lib/guest/cleanup.ts).
  const reclaimed: Removed[] = [];
  const reclaim = async (dir: string, prefix: string, kind: Removed['kind']): Promise<void> => {
    if (!what.dryRun) for (const name of await reclaimStale(dir, prefix)) reclaimed.push({ kind, path: path.join(dir, name), bytes: 0 });
  };

  // Every directory is checked before anything is removed.
  const cacheThere = kernels && (await trustedIfThere(cdir, CACHE_ROLE));
  const snapThere = snapshots && (await trustedIfThere(sdir, SNAPSHOT_ROLE));
  const sub = async (name: string): Promise<string | undefined> => (cacheThere ? subdir(path.join(cdir, name), CACHE_ROLE) : undefined);
  const kdir = kernels ? await sub('kernels') : undefined;
  const ddir = kernels ? await sub('debs') : undefined;
  const adir = what.all ? await sub('apt') : undefined;
  const hdir = what.all ? await sub('helper') : undefined;

  if (snapThere) {
    for (const name of await names(sdir)) if (SNAPSHOT_KEY.test(name)) push('snapshot', path.join(sdir, name));
    await reclaim(sdir, '.tmp-', 'unfinished save');
  }
  if (kdir) {
    for (const name of await names(kdir)) if (RELEASE.test(name)) push('kernel', path.join(kdir, name));
    await reclaim(kdir, '.stage-', 'unfinished kernel');
  }
  if (ddir) for (const name of await names(ddir)) if (DEB.test(name)) push('package', path.join(ddir, name));
  if (kernels && cacheThere && (await lstatOrUndefined(path.join(cdir, 'manifest.json')))) push('manifest', path.join(cdir, 'manifest.json'));
  if (adir) for (const name of await names(adir)) if (SUITES.has(name)) push('apt state', path.join(adir, name));
  if (hdir) for (const name of await names(hdir)) if (HELPER_KEY.test(name)) push('helper build', path.join(hdir, name));

  // Reclaimed temporaries are gone already: listed, their size unknown.
  const report: CleanReport = { dryRun: what.dryRun ?? false, removed: reclaimed, failed: [], bytes: 0 };
  for (const t of targets) {
    const bytes = await treeBytes(t.path);
    try {
      // fs.rm removes a link itself and never descends through one.
      if (!what.dryRun) await rm(t.path, { recursive: true, force: true });
      report.removed.push({ ...t, bytes });
      report.bytes += bytes;
    } catch (e) {
      report.failed.push({ ...t, bytes, error: (e as Error).message });
    }
  }
  return report;
}
