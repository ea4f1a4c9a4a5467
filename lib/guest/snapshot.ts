/**
 * Snapshots of booted guests: the first boot of a machine saves the idle guest (right after the boot
 * checks, before any test step) as a QEMU migration stream; later boots of the same machine start
 * QEMU with `-incoming defer` and load it, which takes about half a second instead of a 3.5–7 s
 * TCG boot.
 *
 * The stream goes through a unix socket and a zstd child of this process (lib/guest/stream.ts: no
 * shell), compressed with zstd -1: an idle 512 MiB guest is a ~98 MB stream (mostly kernel, initramfs
 * and page cache; zero pages are not sent) that zstd -1 makes ~43 MB at about the same save and
 * restore time.
 *
 * The directory must be this user's alone ({@link SnapshotCache.check}; lib/guest/trust.ts, docs/cache.md):
 * an image is restored only when it is this user's and matches the sha256 in its `meta.json`.
 *
 * An entry is a directory `<key>/` under {@link snapshotDir} (`$MEMHP_SNAPSHOT_DIR`) holding
 * `image.zst`, `meta.json` (the host-side state the `Guest` object needs after a restore) and
 * `console.log` (the boot's console). It is written under a temporary name `.tmp-<pid>-<start>-…`
 * and renamed into place, so a racing process either wins or finds the entry complete; the temporary
 * directory is removed when the save fails or its process is signalled (lib/guest/cleanup.ts), and by
 * the next lookup or save when its process was SIGKILLed. The cache is capped
 * ({@link snapshotCacheMax}): after each save the least recently used entries (directory mtime,
 * touched on every restore) are removed until it fits.
 *
 * Some kernels are never saved nor restored ({@link restoreUnsafe}): restored Debian 6.12 guests
 * crash now and then under TCG, so they always boot.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, readdir, readFile, rename, rm, stat, utimes } from 'node:fs/promises';
import path from 'node:path';
import type { TraceRecord } from '../kernel/trace.js';
import { sizeBytes } from '../size.js';
import type { AgentReady } from './agent.js';
import { ownedTempDir, reclaimStale, releaseDir, removeDir } from './cleanup.js';
import { GuestError } from './errors.js';
import { cacheDir } from './kernels.js';
import type { ProbeRecord } from './probes.js';
import { checkOwnSubdir, readOwnFile, readVerified, SNAPSHOT_ROLE, trustedDir, writeOwnFile } from './trust.js';

/** Version of the entry layout and of {@link SnapshotMeta}; part of every key, so a change invalidates old entries. */
export const SNAPSHOT_FORMAT = 1;

/** Default size cap of the snapshot cache: 2 GiB (the conformance suite's ~38 machines take ~1.7 GB). */
export const DEFAULT_SNAPSHOT_CACHE_MAX = 2 * 2 ** 30;

/**
 * Where snapshots live: `$MEMHP_SNAPSHOT_DIR`, else `<cacheDir()>/snapshots` (`$MEMHP_CACHE/snapshots`,
 * else `~/.cache/memhp/snapshots`).
 */
export function snapshotDir(): string {
  return process.env.MEMHP_SNAPSHOT_DIR || path.join(cacheDir(), 'snapshots');
}

/**
 * The cache's size cap in bytes: `$MEMHP_SNAPSHOT_CACHE_MAX` (a size such as `4G`, `500M` or bytes;
 * `0` keeps nothing), else {@link DEFAULT_SNAPSHOT_CACHE_MAX}.
 */
export function snapshotCacheMax(): number {
  const env = process.env.MEMHP_SNAPSHOT_CACHE_MAX;
  if (!env) return DEFAULT_SNAPSHOT_CACHE_MAX;
  const n = sizeBytes(env);
  if (n === null) throw new GuestError(`MEMHP_SNAPSHOT_CACHE_MAX: not a size: '${env}'`);
  return n;
}

/**
 * Kernels whose restored guests are not trustworthy, with the evidence. Debian's 6.12 under TCG (QEMU
 * 7.2): about 2 % of restored guests (35 of ~1,700, MTTCG) die at their first agent commands after the
 * restore (not a fixed time after it) — mostly a double fault in `__kmalloc_node_track_caller` while
 * a kworker creates a worker, the same registers every time, with EFLAGS holding a pointer (TCG's
 * lazy flags out of step); once a NULL-pointer oops. Single-threaded TCG: 0 of 250 with one vCPU but
 * 14 of ~130 with two (the agent's shell killed by a general protection fault). The guest that was
 * saved never failed. 6.1 (0 of 300, one and two vCPUs) and 7.2 (0 of 370, one to three vCPUs) were
 * clean, and so were their ~70 restores in two conformance-suite runs.
 */
const RESTORE_UNSAFE: readonly { release: RegExp; accel: 'tcg' | 'kvm'; why: string }[] = [
  { release: /^6\.12\./, accel: 'tcg', why: 'restored 6.12 guests crash now and then under TCG (about 2 %: a double fault in kmalloc; QEMU 7.2)' },
];

/** Why guests of this kernel are neither saved nor restored on this accelerator, or undefined when they may be. */
export function restoreUnsafe(release: string, accel: 'tcg' | 'tcg-single' | 'kvm'): string | undefined {
  const kind = accel === 'kvm' ? 'kvm' : 'tcg';
  return RESTORE_UNSAFE.find((u) => u.accel === kind && u.release.test(release))?.why;
}

/** Everything that decides the state of a booted guest; hashed into a {@link snapshotKey}. */
export interface SnapshotIdentity {
  /** {@link qemuIdentity} of the QEMU binary. */
  qemu: string;
  /**
   * The accelerator's kind (a TCG image must not be restored under KVM, nor the other way). Both TCG
   * modes are 'tcg': the stream does not depend on the threading (a guest booted single-threaded after
   * an MTTCG crash is saved for, and restored on, MTTCG).
   */
  accel: 'tcg' | 'kvm';
  /** The full QEMU argument list, with the accelerator (`@ACCEL`) and per-boot paths (sockets, console, initramfs) replaced by placeholders. */
  args: string[];
  /** `uname -r` of the kernel. */
  release: string;
  /** sha256 of the bzImage. */
  vmlinuz: string;
  /** sha256 of the initramfs (it changes with the agent, the probes, the chain-offset calibration). */
  initramfs: string;
  /** Under KVM, the host CPU (`-cpu host` exposes it to the guest); empty under TCG. */
  hostCpu: string;
}

/** The cache key of a machine: a hex digest of its identity (and of {@link SNAPSHOT_FORMAT}). */
export function snapshotKey(id: SnapshotIdentity): string {
  return createHash('sha256').update(JSON.stringify({ format: SNAPSHOT_FORMAT, ...id })).digest('hex').slice(0, 32);
}

const qemuIds = new Map<string, Promise<string>>();

/** Find a command on $PATH (as the shell would); the name itself when it has a slash or is not found. */
function onPath(cmd: string): string {
  if (cmd.includes('/')) return path.resolve(cmd);
  for (const d of (process.env.PATH ?? '').split(':')) {
    const p = path.join(d || '.', cmd);
    if (existsSync(p)) return p;
  }
  return cmd;
}

/**
 * The identity of a QEMU binary: its `--version` line (with Debian's package version) and the
 * binary's path, size and mtime, so a rebuilt or reinstalled QEMU never loads an old stream. Once per
 * process and binary.
 */
export function qemuIdentity(qemu = 'qemu-system-x86_64'): Promise<string> {
  let p = qemuIds.get(qemu);
  if (!p) {
    p = (async () => {
      const bin = onPath(qemu);
      const version = await new Promise<string>((resolve, reject) => {
        execFile(bin, ['--version'], { timeout: 10_000 }, (err, out) => (err ? reject(err) : resolve(out.split('\n')[0]!.trim())));
      });
      const st = await stat(bin);
      return `${version} (${bin} ${st.size} ${Math.round(st.mtimeMs)})`;
    })();
    qemuIds.set(qemu, p);
    p.catch(() => qemuIds.delete(qemu));
  }
  return p;
}

/** The host CPU as `-cpu host` shows it to a KVM guest (model and flags); '' when the file cannot be read. */
export async function hostCpuIdentity(): Promise<string> {
  const info = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const model = /^model name\s*:(.*)$/m.exec(info)?.[1]?.trim() ?? '';
  const flags = /^flags\s*:(.*)$/m.exec(info)?.[1]?.trim() ?? '';
  return model || flags ? `${model} ${createHash('sha256').update(flags).digest('hex').slice(0, 16)}` : '';
}

/** What the host-side `Guest` object held right after boot, to be given back to it after a restore. */
export interface GuestHostState {
  /** The agent's READY line of the boot (a restored guest does not send it again). */
  ready: AgentReady;
  /** Where the chain-head addresses came from on that boot. */
  chainHeads: 'calibrated' | 'kallsyms';
  /** Byte offset into the guest's trace log the host had consumed. */
  traceOffset: number;
  /** Decoded probe hits so far. */
  probes: ProbeRecord[];
  /** QMP events received but not yet moved into the trace (the save's own STOP/RESUME left out). */
  pendingQmp: TraceRecord[];
  /** Trace records so far. */
  trace: TraceRecord[];
}

/** `meta.json` of an entry. */
export interface SnapshotMeta {
  format: typeof SNAPSHOT_FORMAT;
  key: string;
  /** ISO time of the save. */
  created: string;
  /** What the key was made of, for people reading the cache. */
  identity: SnapshotIdentity;
  /** Stream compression. */
  compression: 'zstd';
  /** Bytes of `image.zst`. */
  imageBytes: number;
  /**
   * sha256 of `image.zst`, checked before a restore: zstd verifies its checksum only at the end of the
   * frame, after QEMU has taken in every page, so a flipped byte could otherwise load silently.
   */
  imageSha256: string;
  /** ms the guest was paused for the save. */
  saveMs: number;
  /** ms the boot that saved it took (QEMU start to READY). */
  bootMs: number;
  /** The kernel command line; a restored guest's `/proc/cmdline` must read the same. */
  cmdline: string;
  host: GuestHostState;
}

/** A complete entry found by {@link SnapshotCache.lookup}. */
export interface SnapshotEntry {
  key: string;
  dir: string;
  /** The compressed migration stream. */
  image: string;
  /** The console log of the boot that was saved (may be missing). */
  console: string;
  meta: SnapshotMeta;
}

/** An entry being written (a private temporary directory); {@link SnapshotCache.commit} or {@link SnapshotCache.abort} it. */
export interface PendingSnapshot {
  key: string;
  tmp: string;
  /** Where the migration stream goes. */
  image: string;
  /** Where the boot's console log goes. */
  console: string;
}

const TMP = '.tmp-';
/** A temporary directory older than this belongs to a saver that died (older layouts did not name their owner): removed by {@link SnapshotCache.evict}. */
const STALE_TMP_MS = 3600_000;

/**
 * The snapshot cache: a directory of entries keyed by {@link snapshotKey}, capped in size (least
 * recently used out first). Safe across processes: entries appear by an atomic rename and disappear
 * by removal; a process that reads an entry another one just removed sees a failed restore and boots.
 */
export class SnapshotCache {
  /**
   * @param dir Default {@link snapshotDir}.
   * @param maxBytes Size cap; default {@link snapshotCacheMax} (`$MEMHP_SNAPSHOT_CACHE_MAX`, 2 GiB).
   */
  constructor(
    readonly dir: string = snapshotDir(),
    readonly maxBytes: number = snapshotCacheMax(),
  ) {}

  #entryDir(key: string): string {
    return path.join(this.dir, key);
  }

  /** Remove the temporary directories of savers that are dead (SIGKILLed); returns their names. */
  reclaim(): Promise<string[]> {
    return reclaimStale(this.dir, TMP);
  }

  /**
   * Make the cache directory (0700) if it is missing, and refuse it (a {@link GuestError} saying what
   * to do) when another user could change what is in it: lib/guest/trust.ts `trustedDir`.
   */
  check(): Promise<void> {
    return trustedDir(this.dir, SNAPSHOT_ROLE);
  }

  /**
   * The complete entry for a key, or undefined (none, partial, or of another format). An entry that is
   * not this user's alone (a link, a directory or meta.json another user owns or can write) is removed,
   * and `onRefused` told why.
   */
  async lookup(key: string, onRefused?: (why: string) => void): Promise<SnapshotEntry | undefined> {
    await this.check();
    await this.reclaim();
    const dir = this.#entryDir(key);
    let meta: SnapshotMeta;
    try {
      await checkOwnSubdir(dir, SNAPSHOT_ROLE);
      meta = JSON.parse((await readOwnFile(path.join(dir, 'meta.json'))).toString('utf8')) as SnapshotMeta;
    } catch (e) {
      if (e instanceof GuestError) {
        onRefused?.(`snapshot ${key} refused and removed: ${e.message}`);
        await this.remove(key);
      }
      return undefined;
    }
    const image = path.join(dir, 'image.zst');
    if (meta.format !== SNAPSHOT_FORMAT || meta.key !== key || !existsSync(image)) return undefined;
    return { key, dir, image, console: path.join(dir, 'console.log'), meta };
  }

  /**
   * The entry's image, read into memory (never through a link, only when this user's and writable by
   * no one else) and checked against the sha256 in its meta.json, which only this user can have
   * written: a restore streams these very bytes into QEMU (lib/guest/stream.ts `loadVm`), not the
   * file, which could change after the check. Throws a GuestError (`DigestMismatch` for changed bytes).
   */
  read(entry: SnapshotEntry): Promise<Buffer> {
    return readVerified(entry.image, entry.meta.imageSha256);
  }

  /** Mark an entry used now (the LRU order is the directories' mtime). */
  async touch(key: string): Promise<void> {
    const now = new Date();
    await utimes(this.#entryDir(key), now, now).catch(() => undefined);
  }

  /** Remove an entry (a bad image, an evicted one). */
  async remove(key: string): Promise<void> {
    await rm(this.#entryDir(key), { recursive: true, force: true });
  }

  /** Start writing an entry in a private temporary directory (removed if this process is signalled). */
  async begin(key: string): Promise<PendingSnapshot> {
    await this.check();
    await this.reclaim();
    const tmp = await ownedTempDir(this.dir, TMP);
    return { key, tmp, image: path.join(tmp, 'image.zst'), console: path.join(tmp, 'console.log') };
  }

  /**
   * Write the meta and rename the entry into place. False when another process put the same entry
   * there first (ours is dropped; both describe the same machine).
   */
  async commit(p: PendingSnapshot, meta: SnapshotMeta): Promise<boolean> {
    await writeOwnFile(path.join(p.tmp, 'meta.json'), JSON.stringify(meta) + '\n');
    try {
      await rename(p.tmp, this.#entryDir(p.key));
      releaseDir(p.tmp);
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      await this.abort(p);
      if (code === 'ENOTEMPTY' || code === 'EEXIST') return false;
      throw e;
    }
  }

  /** Drop an unfinished entry. */
  async abort(p: PendingSnapshot): Promise<void> {
    await removeDir(p.tmp);
  }

  /** The complete entries with their size and last use, least recently used first. */
  async entries(): Promise<{ key: string; bytes: number; mtimeMs: number }[]> {
    const out: { key: string; bytes: number; mtimeMs: number }[] = [];
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (name.startsWith(TMP)) continue;
      const dir = this.#entryDir(name);
      try {
        const st = await lstat(dir);
        if (!st.isDirectory()) continue;
        let bytes = 0;
        for (const f of await readdir(dir)) bytes += (await lstat(path.join(dir, f)).catch(() => ({ size: 0 }))).size;
        out.push({ key: name, bytes, mtimeMs: st.mtimeMs });
      } catch {
        /* removed meanwhile */
      }
    }
    return out.sort((a, b) => a.mtimeMs - b.mtimeMs || a.key.localeCompare(b.key));
  }

  /**
   * Remove least recently used entries until the cache fits {@link maxBytes}; `keep` (the entry just
   * written) goes last, and only if it alone is over the cap. Also removes temporary directories of
   * savers that died. Returns the keys removed.
   */
  async evict(keep?: string): Promise<string[]> {
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (!name.startsWith(TMP)) continue;
      const st = await lstat(path.join(this.dir, name)).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > STALE_TMP_MS) await rm(path.join(this.dir, name), { recursive: true, force: true });
    }
    const all = await this.entries();
    const order = [...all.filter((e) => e.key !== keep), ...all.filter((e) => e.key === keep)];
    let total = all.reduce((t, e) => t + e.bytes, 0);
    const removed: string[] = [];
    for (const e of order) {
      if (total <= this.maxBytes) break;
      await this.remove(e.key);
      total -= e.bytes;
      removed.push(e.key);
    }
    return removed;
  }
}

/** QMP events a save causes on the saved guest's QEMU; not guest behaviour, so kept out of its trace. */
export const SAVE_EVENTS: ReadonlySet<string> = new Set(['STOP', 'RESUME', 'MIGRATION', 'MIGRATION_PASS']);

/** zstd on $PATH (Debian package zstd, one of the harness's host packages)? Checked once per process. */
let zstdOk: Promise<boolean> | undefined;
/** True when the zstd command runs. */
export function haveZstd(): Promise<boolean> {
  zstdOk ??= new Promise((resolve) => execFile('zstd', ['--version'], { timeout: 10_000 }, (err) => resolve(!err)));
  return zstdOk;
}
