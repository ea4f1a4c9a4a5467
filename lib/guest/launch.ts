/**
 * One boot attempt of `Guest.boot` (lib/guest/guest.ts, which retries): in a private 0700 directory,
 * build the initramfs and QEMU's command line (lib/guest/qemu-cmdline.ts), start QEMU
 * (lib/guest/process.ts) and wait for the agent's READY, bounded by QEMU's CPU time
 * (lib/guest/progress.ts); with a snapshot plan, restore the machine's saved guest instead when the
 * cache has one, or save the booted guest (lib/guest/restore.ts). Then check the chain probes and
 * calibrate their addresses for the next boot. Every failure kills QEMU and removes the directory, and
 * says whether it was a crash worth a retry ({@link BootCrash}) or a failed restore ({@link RestoreFailed}).
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QmpClient } from '../qmp/client.js';
import { accelArgs, type Accel } from './accel.js';
import { AgentClient, type AgentReady } from './agent.js';
import { ownedTempDir, removeDir } from './cleanup.js';
import { GuestError } from './errors.js';
import type { BootInfo, Guest, GuestOptions } from './guest.js';
import { buildInitramfs } from './initramfs.js';
import type { PreparedKernel } from './kernels.js';
import { BootCrash, consoleText, countGuest, CRASH, GUEST_DIR, killGroup, qemuCommand, spawnQemu } from './process.js';
import { cpuTimer } from './progress.js';
import { kernelCommandLine, qemuArgs, type MachineOptions } from './qemu-cmdline.js';
import { adoptRestored, loadSnapshot, lookupSnapshot, prepareRestore, RestoreFailed, saveBooted, type SnapshotLookup, type SnapshotPlan } from './restore.js';
import { GuestTarget } from './target.js';
import { openVerified, readOwnFile, writeOwnFile } from './trust.js';

/** The options of an attempt: `Guest.boot`'s, with the machine's defaults filled in. */
export type LaunchOptions = GuestOptions & MachineOptions;

/** Makes the `Guest` of a ready QEMU (the class's constructor is private to it). */
export type GuestFactory = (boot: BootInfo, target: GuestTarget, child: ChildProcess, dir: string) => Guest;

const NO_SNAPSHOT: SnapshotLookup = { identity: undefined, key: undefined, entry: undefined, note: undefined };

/**
 * One boot attempt. With a snapshot plan, the machine's key is computed from the finished command
 * line and initramfs; when the cache has the entry QEMU starts with `-incoming defer` and loads it,
 * else the kernel boots and the booted guest is saved. A failed restore removes the entry and
 * rejects with {@link RestoreFailed}; QEMU is killed and the directory removed on every failure.
 */
export async function launch(o: LaunchOptions, prepared: PreparedKernel, accel: Accel, reason: string, attempts: number, snap: SnapshotPlan | undefined, make: GuestFactory): Promise<Guest> {
  const dir = await ownedTempDir(os.tmpdir(), GUEST_DIR); // mkdtemp makes it 0700
  try {
    return await launchIn(dir, o, prepared, accel, reason, attempts, snap, make);
  } catch (e) {
    await removeDir(dir);
    throw e;
  }
}

/** {@link launch} in the private directory `dir`; on success the guest owns it, and `Guest.close` removes it. */
async function launchIn(dir: string, o: LaunchOptions, prepared: PreparedKernel, accel: Accel, reason: string, attempts: number, snap: SnapshotPlan | undefined, make: GuestFactory): Promise<Guest> {
  const calibration = path.join(prepared.dir, 'chain-offsets');
  const chainOffsets = existsSync(calibration) ? (await readOwnFile(calibration)).toString('utf8') : undefined;
  const initrd = path.join(dir, 'initramfs.cpio');
  const initrdSha256 = await buildInitramfs(initrd, { kernel: prepared, ...(chainOffsets ? { chainOffsets } : {}) });
  const console = path.join(dir, 'console.log');
  const ctl = path.join(dir, 'agent.sock');
  const qmpSock = path.join(dir, 'qmp.sock');
  const cmdline = kernelCommandLine(o);
  const args = qemuArgs(o, accelArgs(accel), cmdline, { kernel: '/dev/fd/3', initrd, console, ctl, qmp: qmpSock });
  const qemu = o.qemu ?? 'qemu-system-x86_64';
  const { identity, key, entry, note: snapNote } = snap ? await lookupSnapshot(snap, o, prepared, accel, qemu, cmdline, initrdSha256) : NO_SNAPSHOT;
  if (entry) args.push(...(await prepareRestore(dir, entry)));
  // Read and hashed while QEMU starts (about as long: ~55 ms for 43 MB), checked before the stream is loaded.
  const image = entry ? snap!.cache.read(entry) : undefined;
  image?.catch(() => undefined);
  const cmd = qemuCommand(qemu, args);
  // QEMU reads the bzImage through its descriptor 3: the very file checked against its digest here.
  const kernel = await openVerified(prepared.vmlinuz, prepared.digests.vmlinuz);
  o.onPhase?.(entry ? 'restoring' : 'booting');
  const t0 = performance.now();
  const { child, exited, stderr } = await spawnQemu(cmd, kernel);
  const tail = (): Promise<string> => consoleText(dir, 40);
  let agent: AgentClient | undefined;
  let qmp: QmpClient | undefined;
  const fail = async (msg: string, cause?: unknown): Promise<never> => {
    killGroup(child);
    await exited;
    agent?.close();
    await qmp?.close().catch(() => undefined);
    const log = await tail();
    await removeDir(dir);
    // QEMU says on stderr why it refused a stream (e.g. `Unknown ramblock "ram0"`).
    const said = stderr().trim() && !msg.includes(stderr().trim()) ? `; QEMU said: ${stderr().trim()}` : '';
    if (entry) throw await RestoreFailed.drop(snap!.cache, entry, msg + said, cause, log);
    if (CRASH.test(log)) throw new BootCrash(`${msg}; the guest crashed while booting`, log);
    throw new GuestError(`${msg} (kernel ${prepared.release}, ${accel})`, { cause, console: log });
  };
  const timeoutMs = o.readyTimeoutMs ?? 60_000;
  // Every wait on this guest is bounded by its progress: QEMU's CPU time (lib/guest/progress.ts).
  const progress = cpuTimer(child.pid ?? -1);
  let cancel: (() => void) | undefined;
  const deadline = new Promise<never>((_, reject) => {
    cancel = progress(timeoutMs / 1000, () => reject(new GuestError(`guest not ready after ${timeoutMs / 1000} s of QEMU CPU time`)));
  });
  deadline.catch(() => undefined);
  const died = exited.then((why) => Promise.reject(new GuestError(`guest died before it was ready: ${why}`)));
  let ready: AgentReady;
  try {
    [agent, qmp] = await Promise.race([Promise.all([AgentClient.connect(ctl, 10_000, progress), QmpClient.connect(qmpSock)]), died, deadline]);
    if (entry) {
      const data = await image!;
      // A restored guest does not send READY again: the boot's is in the entry.
      await Promise.race([loadSnapshot(qmp, dir, data, timeoutMs), died, deadline]);
      ready = entry.meta.host.ready;
    } else ready = await Promise.race([agent.ready, died, deadline]);
  } catch (e) {
    return fail((e as Error).message, e);
  } finally {
    cancel?.();
  }
  const bootMs = performance.now() - t0;
  if (!agent || !qmp) return fail('no agent or QMP connection');
  const info: BootInfo = entry
    ? { accel, accelReason: `${reason}; restored from snapshot ${entry.key} (saved ${entry.meta.created})`, bootMs, attempts, ready, chainHeads: entry.meta.host.chainHeads, path: 'restored', snapshotBytes: entry.meta.imageBytes }
    : { accel, accelReason: reason, bootMs, attempts, ready, chainHeads: chainOffsets ? 'calibrated' : 'kallsyms', path: 'booted' };
  if (key) info.snapshotKey = key;
  if (snapNote) info.snapshotReason = snapNote;
  let target: GuestTarget;
  let g: Guest;
  try {
    target = new GuestTarget(agent, qmp, ready.release, prepared.layout, o, dir); // picks the profile from READY's release
    g = make(info, target, child, dir);
  } catch (e) {
    return fail((e as Error).message, e);
  }
  countGuest(g, exited);
  try {
    if (entry) await adoptRestored(target, prepared, entry, cmdline, Math.min(timeoutMs, 30_000));
    await checkProbes(target);
    if (!chainOffsets) await calibrate(target, calibration);
    if (entry) {
      info.bootMs = performance.now() - t0;
      await snap!.cache.touch(entry.key);
    } else if (snap && identity && key) {
      if (!chainOffsets) info.snapshotReason = 'not saved: this boot calibrated the chain offsets, so the next boot of this kernel has another initramfs';
      else {
        o.onPhase?.('saving');
        await saveBooted(target, info, snap.cache, key, identity, cmdline);
      }
    }
  } catch (e) {
    // A crash right after READY (seen under MTTCG: a panic in an interrupt while the probes are read)
    // is still a boot crash, and is retried like one.
    const log = await g.consoleTail(200);
    await g.close();
    if (entry) throw await RestoreFailed.drop(snap!.cache, entry, (e as Error).message, e, log);
    if (CRASH.test(log)) throw new BootCrash(`${(e as Error).message}; the guest crashed while booting`, log);
    throw e;
  }
  return g;
}

/** The chain probes are what the trace is made of: without them the guest is of no use. */
async function checkProbes(target: GuestTarget): Promise<void> {
  const events = await target.agent.read('/sys/kernel/tracing/kprobe_events');
  const want = ['memchain', ...(target.kernel.nodeActions ? ['nodechain'] : [])];
  for (const ev of want) {
    if (!new RegExp(`^p:hp/${ev} `, 'm').test(events)) {
      throw new GuestError(`chain probe ${ev} is not installed in the guest`, { console: await target.consoleTail() });
    }
  }
}

/** Store `symbol offset-from-_text` for the chain heads so later boots skip the kallsyms scan. */
async function calibrate(target: GuestTarget, file: string): Promise<void> {
  const syms = await target.agent.call('chains');
  const addr = new Map(syms.split('\n').filter(Boolean).map((l) => [l.split(' ')[2]!, BigInt('0x' + l.split(' ')[0])]));
  const text = addr.get('_text');
  if (text === undefined) return;
  const lines = [...addr].filter(([s]) => s !== '_text').map(([s, a]) => `${s} ${a - text}`);
  await writeOwnFile(file, lines.join('\n') + '\n', 0o644);
}
