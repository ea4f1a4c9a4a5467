/**
 * A guest and the snapshot cache (lib/guest/snapshot.ts), for one boot attempt (lib/guest/launch.ts):
 * find the machine's saved idle guest by its key, prepare QEMU to load it (`-incoming defer`) and load
 * it, prove that the restored guest is that machine and give it the host-side state of the saved boot;
 * or, after a plain boot, save the booted guest for the next time. A restore that fails in any way
 * removes the entry ({@link RestoreFailed}) and the kernel is booted instead.
 */
import { copyFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { QmpClient } from '../qmp/client.js';
import type { Accel } from './accel.js';
import { GuestError } from './errors.js';
import type { BootInfo } from './guest.js';
import type { PreparedKernel } from './kernels.js';
import { BOOT_CONSOLE } from './process.js';
import { qemuArgs, type MachineOptions } from './qemu-cmdline.js';
import {
  haveZstd,
  hostCpuIdentity,
  qemuIdentity,
  restoreUnsafe,
  SAVE_EVENTS,
  SNAPSHOT_FORMAT,
  snapshotKey,
  type SnapshotCache,
  type SnapshotEntry,
  type SnapshotIdentity,
} from './snapshot.js';
import { loadVm, saveVm } from './stream.js';
import type { GuestTarget } from './target.js';
import { readOwnFile } from './trust.js';

/** In a guest's directory: the unix socket a snapshot is saved or restored through (lib/guest/stream.ts). */
const MIGRATION_SOCKET = 'migrate.sock';

/** What a snapshot-enabled attempt needs: the cache, and whether to try a restore at all. */
export interface SnapshotPlan {
  cache: SnapshotCache;
  tryRestore: boolean;
  /** Why an earlier restore failed, carried into the fallback boot's {@link BootInfo.snapshotReason}. */
  note?: string;
}

/** A restore that did not give a usable guest; its entry is removed and the kernel is booted instead. */
export class RestoreFailed extends GuestError {
  /** One line for {@link BootInfo.snapshotReason} (the message also carries the console tail). */
  readonly reason: string;

  private constructor(reason: string, options: { cause: unknown; console: string }) {
    super(reason, options);
    this.reason = reason;
  }

  /** Remove the entry and make the error. */
  static async drop(cache: SnapshotCache, entry: SnapshotEntry, msg: string, cause: unknown, console: string): Promise<RestoreFailed> {
    await cache.remove(entry.key);
    return new RestoreFailed(`restore of snapshot ${entry.key} failed, entry removed: ${msg.replaceAll('\n', ' ')}`, { cause, console });
  }
}

/** What the snapshot cache holds for a machine. */
export interface SnapshotLookup {
  /** What the key is made of; undefined when snapshots are unavailable (then nothing is saved). */
  identity: SnapshotIdentity | undefined;
  key: string | undefined;
  /** The entry to restore, if there is one and a restore is to be tried. */
  entry: SnapshotEntry | undefined;
  /** Why there is no entry, or no identity, when that is worth saying ({@link BootInfo.snapshotReason}). */
  note: string | undefined;
}

/**
 * Look the machine up in the cache: its key is computed from the finished command line (`args` with
 * placeholders for the per-boot paths) and the initramfs, the QEMU binary and, under KVM, the host CPU.
 */
export async function lookupSnapshot(
  snap: SnapshotPlan,
  o: MachineOptions,
  prepared: PreparedKernel,
  accel: Accel,
  qemu: string,
  cmdline: string,
  initrdSha256: string,
): Promise<SnapshotLookup> {
  let identity: SnapshotIdentity | undefined;
  let key: string | undefined;
  let entry: SnapshotEntry | undefined;
  let note = snap.note;
  try {
    const unsafe = restoreUnsafe(prepared.release, accel);
    if (unsafe) throw new GuestError(unsafe);
    if (!(await haveZstd())) throw new GuestError('zstd is not installed');
    identity = {
      qemu: await qemuIdentity(qemu),
      accel: accel === 'kvm' ? 'kvm' : 'tcg',
      // The kernel's path in the cache, not the descriptor QEMU gets: keys stay those of earlier versions.
      args: qemuArgs(o, ['@ACCEL'], cmdline, { kernel: prepared.vmlinuz, initrd: '@INITRD', console: '@CONSOLE', ctl: '@AGENT', qmp: '@QMP' }),
      release: prepared.release,
      vmlinuz: prepared.digests.vmlinuz,
      initramfs: initrdSha256,
      hostCpu: accel === 'kvm' ? await hostCpuIdentity() : '',
    };
    key = snapshotKey(identity);
    entry = snap.tryRestore ? await snap.cache.lookup(key, (why) => (note = why)) : undefined;
  } catch (e) {
    identity = undefined;
    note = `snapshots unavailable: ${(e as Error).message}`;
  }
  return { identity, key, entry, note };
}

/** Before QEMU starts to restore `entry` into the guest directory `dir`: the QEMU arguments that make it wait for the stream. */
export async function prepareRestore(dir: string, entry: SnapshotEntry): Promise<string[]> {
  // The boot's console log, read before the restored guest's own (consoleTail), as after a fresh boot.
  // Not appended to by QEMU: `-serial file:PATH,append=on` is no option, it names a file 'PATH,append=on'.
  const log = await readOwnFile(entry.console).catch(() => undefined);
  if (log) await writeFile(path.join(dir, BOOT_CONSOLE), log);
  return ['-incoming', 'defer'];
}

/** Load the checked image `data` into the QEMU of the guest directory `dir` (started by {@link prepareRestore}'s arguments). */
export function loadSnapshot(qmp: QmpClient, dir: string, data: Buffer, timeoutMs: number): Promise<void> {
  return loadVm(qmp, path.join(dir, MIGRATION_SOCKET), data, timeoutMs);
}

/**
 * After a restore: prove that the guest answers on the new agent socket and is the machine the key
 * promised (its `uname -r` and `/proc/cmdline`), set its wall clock (it stood still in the image,
 * while a fresh boot would read the host's), and take over the host-side state of the saved boot.
 */
export async function adoptRestored(target: GuestTarget, prepared: PreparedKernel, entry: SnapshotEntry, cmdline: string, timeoutMs: number): Promise<void> {
  const out = await target.agent.sh(`uname -r; cat /proc/cmdline; date -u -s @${Math.round(Date.now() / 1000)} >/dev/null 2>&1`, timeoutMs);
  const [release = '', cmd = ''] = out.split('\n');
  const host = entry.meta.host;
  if (release !== prepared.release || release !== host.ready.release) {
    throw new GuestError(`the restored guest runs '${release}': expected ${prepared.release}, and the entry says ${host.ready.release}`);
  }
  if (cmd.trim() !== cmdline) throw new GuestError(`the restored guest's command line is '${cmd.trim()}', not '${cmdline}'`);
  target.adoptHostState(host);
}

/**
 * Save this freshly booted, idle guest into the cache, then let it run on. A save that fails is
 * noted in {@link BootInfo.snapshotReason} and the guest is used anyway, as long as it still answers.
 */
export async function saveBooted(target: GuestTarget, boot: BootInfo, cache: SnapshotCache, key: string, identity: SnapshotIdentity, cmdline: string): Promise<void> {
  const p = await cache.begin(key);
  const mark = target.pendingQmpMark();
  const t0 = performance.now();
  try {
    let saved: { bytes: number; sha256: string };
    try {
      saved = await saveVm(target.qmp, path.join(target.dir, MIGRATION_SOCKET), p.image);
    } finally {
      await target.qmp.execute('cont');
    }
    // The save's STOP/RESUME are in the QMP stream before this reply; once it is in and a macrotask
    // has passed, the target's event loop has queued them, and they are taken out again.
    await target.qmp.execute('query-status');
    await new Promise((r) => setImmediate(r));
    target.dropPendingQmp(mark, (r) => r.type === 'qmp-event' && SAVE_EVENTS.has(String(r.event)));
    const pausedMs = performance.now() - t0;
    const { bytes: imageBytes, sha256: imageSha256 } = saved;
    await copyFile(path.join(target.dir, 'console.log'), p.console).catch(() => undefined);
    await cache.commit(p, {
      format: SNAPSHOT_FORMAT,
      key,
      created: new Date().toISOString(),
      identity,
      compression: 'zstd',
      imageBytes,
      imageSha256,
      saveMs: pausedMs,
      bootMs: boot.bootMs,
      cmdline,
      host: target.hostState(boot.ready, boot.chainHeads),
    });
    const evicted = await cache.evict(key);
    if (evicted.includes(key)) boot.snapshotReason = `saved, then evicted: ${imageBytes} bytes alone exceed the cache's cap of ${cache.maxBytes}`;
    Object.assign(boot, { path: 'booted-and-saved', saveMs: performance.now() - t0, snapshotBytes: imageBytes });
  } catch (e) {
    await cache.abort(p);
    boot.snapshotReason = `not saved: ${(e as Error).message}`;
    const alive = await target.agent.request('ping', [], 10_000).then((r) => r.status === 'ok', () => false);
    if (!alive) throw new GuestError(`the guest did not survive being saved: ${(e as Error).message}`, { cause: e, console: await target.consoleTail() });
  }
}
