/**
 * `Guest`: a real Debian kernel under QEMU, driven like the simulator (docs/architecture.md#one-interface-hotplugtarget).
 *
 * Boot: prepare the kernel (download/cache), build the initramfs, start QEMU in its own process group
 * with sockets in a private 0700 directory, wait for the agent's READY. Hotplug goes through QMP; the
 * guest's kprobe/uevent lines and QMP events become trace records. QEMU never outlives its owner:
 * `close()`, every failure path, process exit and SIGINT/SIGTERM/SIGHUP kill the whole process group
 * and remove the private directory (lib/guest/cleanup.ts), and where `setpriv` exists QEMU also gets
 * SIGKILL when the owning process dies abruptly (parent-death signal); a boot removes the directories
 * such an owner left.
 *
 * With `snapshot: 'reuse'` a boot first looks for a saved, idle guest of the same machine in the
 * snapshot cache (lib/guest/snapshot.ts) and loads it instead of booting the kernel; a plain boot then
 * saves its guest for the next time. A restore that fails in any way removes the entry and boots.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { KernelError } from '../errors.js';
import { getProfile, profileForRelease, type KernelProfile } from '../kernel/profile.js';
import type { HotplugTarget, SysfsAccess } from '../kernel/target.js';
import { Trace, type TraceRecord } from '../kernel/trace.js';
import { QmpClient } from '../qmp/client.js';
import { GuestRejectedError, HotplugError, type HOTPLUG_CHECK_ERRNO } from '../qmp/errors.js';
import { MemoryHotplug, parseSize, type Size } from '../qmp/hotplug.js';
import { accelArgs, detectAccel, type Accel } from './accel.js';
import { AgentClient, base64, type AgentReady } from './agent.js';
import { ownedTempDir, reclaimStale, removeDir, trackProcess } from './cleanup.js';
import { GuestError } from './errors.js';
import { buildInitramfs } from './initramfs.js';
import { prepareKernel, type GuestKernelSpec, type PreparedKernel, type PrepareOptions } from './kernels.js';
import { decodeTraceLine, effectiveProfile, qmpTraceRecord, toTraceRecord, type ProbeRecord } from './probes.js';
import { cpuTimer } from './progress.js';
import {
  haveZstd,
  hostCpuIdentity,
  qemuIdentity,
  restoreUnsafe,
  SAVE_EVENTS,
  SNAPSHOT_FORMAT,
  SnapshotCache,
  snapshotKey,
  type GuestHostState,
  type SnapshotEntry,
  type SnapshotIdentity,
} from './snapshot.js';
import { loadVm, saveVm } from './stream.js';
import { openVerified, readOwnFile, writeOwnFile } from './trust.js';

/** A machine description and how to boot it. */
export interface GuestOptions {
  /** Which Debian kernel; default 'latest' (the newest profile's suite, lib/guest/kernels.ts `KERNEL_SUITES`). */
  kernel?: GuestKernelSpec;
  /** Boot RAM, all on node 0; default '512M'. */
  memory?: Size;
  /** DIMM slots; default 8. */
  slots?: number;
  /** `maxmem`; default '8G'. */
  maxMemory?: Size;
  /** NUMA nodes: node 0 has the boot RAM, nodes 1.. are memoryless; one vCPU per node. Default 1. */
  nodes?: number;
  /** vCPUs; default max(nodes, 1). */
  cpus?: number;
  /** Extra kernel command line words, e.g. `memhp_default_state=online_movable`. */
  cmdline?: string[];
  /** 'auto' (default): KVM when it works, else multi-threaded TCG. */
  accel?: Accel | 'auto';
  /**
   * Bound for one boot attempt to reach READY, in milliseconds of QEMU's CPU time (lib/guest/progress.ts:
   * the guest's progress, not the host's clock); default 60 s (a TCG boot uses 3.5–7 s).
   */
  readyTimeoutMs?: number;
  /** Kernel provisioning options (cache directory, progress bar). */
  prepare?: PrepareOptions;
  /** QEMU binary; default `qemu-system-x86_64`. */
  qemu?: string;
  /**
   * 'reuse': restore a saved, idle guest of the same machine from the snapshot cache when there is one
   * (about 0.5 s instead of a 3.5–7 s boot), else boot the kernel and save the booted guest for next
   * time (costs ~0.4 s and ~40 MB in the cache; see lib/guest/snapshot.ts for the key and the size cap,
   * `$MEMHP_SNAPSHOT_CACHE_MAX`, default 2 GiB). Kernels whose restored guests are unreliable (Debian
   * 6.12 under TCG, `restoreUnsafe`) always boot. 'off' (default): always boot the kernel.
   */
  snapshot?: 'reuse' | 'off';
  /** The snapshot cache's directory; default `$MEMHP_SNAPSHOT_DIR`, else `<cache dir>/snapshots`. */
  snapshotDir?: string;
  /**
   * Told what the boot is doing as it goes (progress output, `memhp conform`): 'kernel' while the
   * kernel is made ready (checked in the cache, or downloaded and unpacked), 'setup' while the
   * accelerator is chosen, the initramfs built and the snapshot cache looked up, then 'booting' or
   * 'restoring' when QEMU starts (again on a retry or after a failed restore), 'saving' while a booted
   * guest is saved to the snapshot cache.
   */
  onPhase?: (phase: BootPhase) => void;
}

/** What a boot is doing, for {@link GuestOptions.onPhase}. */
export type BootPhase = 'kernel' | 'setup' | 'booting' | 'restoring' | 'saving';

/** How the boot went. */
export interface BootInfo {
  accel: Accel;
  /** Why this accelerator (KVM detection verdict, retries). */
  accelReason: string;
  /** Host wall-clock ms from starting QEMU to READY (of the successful attempt). */
  bootMs: number;
  /** Attempts it took (a guest crash during boot under MTTCG is retried on single-threaded TCG). */
  attempts: number;
  ready: AgentReady;
  /** Whether chain-head addresses came from a calibration (fast) or a kallsyms scan. */
  chainHeads: 'calibrated' | 'kallsyms';
  /**
   * How the guest came up: its kernel booted; booted and then saved to the snapshot cache; or
   * restored from the cache. For 'restored', {@link bootMs} runs from starting QEMU to a verified,
   * usable guest (stream loaded, agent answering as the same machine, probes checked).
   */
  path: 'booted' | 'booted-and-saved' | 'restored';
  /** With snapshots on: why no restore or no save happened when one could have (a failed restore and its error, a skipped save). */
  snapshotReason?: string;
  /** ms the save cost this boot ('booted-and-saved'): the guest paused while the stream was written, then the entry hashed and stored. */
  saveMs?: number;
  /** Bytes of the compressed image saved or restored. */
  snapshotBytes?: number;
  /** The snapshot cache key of this machine (with snapshots on). */
  snapshotKey?: string;
}

/** The per-boot paths of a QEMU command line; placeholders stand in for them in a snapshot key. */
interface BootPaths {
  /** The bzImage: `/dev/fd/3`, the descriptor of the file that was checked, on a real command line. */
  kernel: string;
  initrd: string;
  console: string;
  ctl: string;
  qmp: string;
}

/** What a snapshot-enabled attempt needs: the cache, and whether to try a restore at all. */
interface SnapshotPlan {
  cache: SnapshotCache;
  tryRestore: boolean;
  /** Why an earlier restore failed, carried into the fallback boot's {@link BootInfo.snapshotReason}. */
  note?: string;
}

const boots: BootInfo[] = [];
/** {@link bootHistory} keeps this many (a long-lived process boots without end). */
const BOOT_HISTORY = 1000;

/** The successful boots of this process (the last 1000), oldest first: boot paths and times, for reports. */
export function bootHistory(): BootInfo[] {
  return boots.slice();
}

const live = new Set<Guest>();
/** Prefix of a guest's private directory under the temporary directory: `memhp-guest-<pid>-<start>-XXXXXX`. */
const GUEST_DIR = 'memhp-guest-';

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

let setprivOk: boolean | undefined;
/** util-linux setpriv with --pdeathsig: QEMU then dies even if its owner is SIGKILLed. */
function pdeathsigWrapper(): string[] {
  setprivOk ??= spawnSync('setpriv', ['--pdeathsig', 'KILL', 'true']).status === 0;
  return setprivOk ? ['setpriv', '--pdeathsig', 'KILL', '--'] : [];
}

/** In a guest's directory: the unix socket a snapshot is saved or restored through (lib/guest/stream.ts). */
const MIGRATION_SOCKET = 'migrate.sock';

/** In a restored guest's directory: the console log of the boot that was saved. */
const BOOT_CONSOLE = 'console.boot.log';

/** The last `lines` lines of a guest's console: the saved boot's log (after a restore), then QEMU's console.log. */
async function consoleText(dir: string, lines: number): Promise<string> {
  const read = (f: string): Promise<string> => readFile(path.join(dir, f), 'utf8').catch(() => '');
  return (await read(BOOT_CONSOLE) + (await read('console.log'))).split('\n').slice(-lines).join('\n');
}

/** Console signs of a kernel crash (an oops); a panic for a missing /init is a harness bug, not a crash. */
const CRASH = /Oops:|BUG:|general protection fault|Kernel panic/;

/**
 * A refusal of the QMP layer as the {@link KernelError} a {@link HotplugTarget} reports (the same
 * errno the simulator gives); anything else (QEMU or connection trouble) unchanged.
 */
function asKernelError(e: unknown): unknown {
  if (e instanceof HotplugError) return new KernelError(e.code, e.message, { cause: e });
  if (e instanceof GuestRejectedError) return new KernelError(e.code ?? 'EIO', e.message, { details: e.status !== undefined ? { ostStatus: e.status } : {}, cause: e });
  return e;
}

/** A booted guest. Create with {@link Guest.boot}; always {@link Guest.close} it. */
export class Guest implements HotplugTarget {
  /** The profile of the booted kernel (picked from its `uname -r`). */
  readonly kernel: KernelProfile;
  /** Where the booted kernel differs from the stock profile of its version (read from its BTF). */
  readonly profileNotes: string[];
  /** Notifier, uevent and QMP-event records, in the shape the simulator produces. */
  readonly trace = new Trace();
  /** sysfs (any path, really) of the guest; a refused write rejects with the guest's errno. */
  readonly sysfs: SysfsAccess;
  readonly hotplug: MemoryHotplug;
  #probes: ProbeRecord[] = [];
  #traceOffset = 0;
  /** Uevents that came through a sync but were numbered after its SEQNUM: they go with the next sync. */
  #laterUevents: ProbeRecord[] = [];
  #pendingQmp: TraceRecord[] = [];
  #events: ReturnType<QmpClient['events']>;
  #closing: Promise<void> | undefined;

  private constructor(
    readonly options: Required<Pick<GuestOptions, 'memory' | 'slots' | 'maxMemory' | 'nodes'>> & GuestOptions,
    readonly prepared: PreparedKernel,
    readonly boot: BootInfo,
    /** The guest agent (read/write/dump/trace/insmod/sh). */
    readonly agent: AgentClient,
    /** The QMP connection to this guest's QEMU. */
    readonly qmp: QmpClient,
    private readonly child: ChildProcess,
    /** Private 0700 directory holding the sockets, the initramfs and the console log. */
    readonly dir: string,
  ) {
    // A release without a profile of its own runs against the nearest older one, with a note saying so.
    const picked = profileForRelease(boot.ready.release);
    ({ profile: this.kernel, notes: this.profileNotes } = effectiveProfile(picked?.profile ?? getProfile(boot.ready.release), prepared.layout));
    if (picked && !picked.exact) {
      const warning = `kernel ${boot.ready.release} has no profile of its own: it runs against profile ${picked.profile.name}, the nearest older`;
      this.profileNotes.unshift(warning);
      process.emitWarning(warning, { code: 'MEMHP_NEAREST_PROFILE' });
    }
    this.sysfs = {
      read: (p) => this.agent.read(p),
      list: async (p) => {
        const q = `'${p.replaceAll("'", "'\\''")}'`;
        const out = await this.agent.sh(`if [ -d ${q} ]; then ls -1A ${q}; elif [ -e ${q} ]; then echo @ENOTDIR; else echo @ENOENT; fi`);
        const lines = out.split('\n').filter(Boolean);
        if (lines[0] === '@ENOENT' || lines[0] === '@ENOTDIR') throw new KernelError(lines[0].slice(1) as 'ENOENT' | 'ENOTDIR', `${p}: cannot list`);
        return lines.sort();
      },
      write: async (p, v) => {
        try {
          await this.agent.write(p, v);
        } finally {
          await this.syncTrace();
        }
      },
      walk: (roots) => this.agent.census(roots),
    };
    this.hotplug = new MemoryHotplug(qmp, { slots: options.slots, maxMemory: options.maxMemory, nodes: options.nodes });
    const events = qmp.events();
    this.#events = events;
    void (async () => {
      try {
        for await (const e of events) this.#pendingQmp.push(qmpTraceRecord(e.event, e.data));
      } catch {
        /* connection gone: close() or QEMU exit */
      }
    })();
  }

  /** QEMU's process id (the leader of its own process group). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /**
   * Boot a guest and wait until its agent is ready. With `snapshot: 'reuse'`, restore the machine's
   * saved idle guest instead when the cache has one (any failure: the entry is removed and the kernel
   * boots), else boot and save; {@link BootInfo.path} says which.
   */
  static async boot(opts: GuestOptions = {}): Promise<Guest> {
    const o = { memory: '512M', slots: 8, maxMemory: '8G', nodes: 1, ...opts };
    await reclaimStale(os.tmpdir(), GUEST_DIR); // what SIGKILLed owners left
    const cache = o.snapshot === 'reuse' ? new SnapshotCache(o.snapshotDir) : undefined;
    await cache?.check(); // a snapshot directory another user could write is refused, not skipped
    o.onPhase?.('kernel');
    const prepared = await prepareKernel(o.kernel ?? 'latest', o.prepare);
    o.onPhase?.('setup');
    let accel: Accel;
    let reason: string;
    if (!o.accel || o.accel === 'auto') ({ accel, reason } = await detectAccel(o.qemu));
    else [accel, reason] = [o.accel, 'requested'];
    let snap: SnapshotPlan | undefined = cache ? { cache, tryRestore: true } : undefined;
    let attempts = 0;
    for (;;) {
      attempts++;
      try {
        const g = await Guest.#attempt(o, prepared, accel, reason, attempts, snap);
        if (boots.push(g.boot) > BOOT_HISTORY) boots.shift();
        return g;
      } catch (e) {
        if (e instanceof RestoreFailed && snap) {
          // The entry is gone already; boot the kernel (and save a fresh image) instead.
          snap = { cache: snap.cache, tryRestore: false, note: e.reason };
          attempts--;
          continue;
        }
        if (!(e instanceof BootCrash) || attempts >= 3) throw e;
        // A crash while booting (seen: an int3 oops from text patching under MTTCG) is retried; KVM
        // falls back to TCG, MTTCG to single-threaded TCG.
        const next: Accel = accel === 'kvm' ? 'tcg' : 'tcg-single';
        reason += `; attempt ${attempts} on ${accel} crashed during boot, retried on ${next}`;
        accel = next;
      }
    }
  }

  /** QEMU's command line for a machine (without the QEMU binary). */
  static #args(o: GuestOptions & { memory: Size; slots: number; maxMemory: Size; nodes: number }, prepared: PreparedKernel, accel: string[], cmdline: string, p: BootPaths): string[] {
    const mem = parseSize(o.memory);
    const cpus = o.cpus ?? Math.max(o.nodes, 1);
    const numa: string[] = [];
    if (o.nodes > 1) {
      numa.push('-object', `memory-backend-ram,id=ram0,size=${mem}`, '-numa', `node,nodeid=0,cpus=0,memdev=ram0`);
      for (let n = 1; n < o.nodes; n++) numa.push('-numa', `node,nodeid=${n}${n < cpus ? `,cpus=${n}` : ''}`);
    }
    return [
      ...accel,
      '-m', `${mem}B,slots=${o.slots},maxmem=${parseSize(o.maxMemory)}B`,
      '-smp', String(cpus),
      ...numa,
      '-kernel', p.kernel,
      '-initrd', p.initrd,
      '-append', cmdline,
      '-display', 'none', '-no-reboot', '-nodefaults',
      '-serial', `file:${p.console}`,
      '-serial', `unix:${p.ctl},server=on,wait=off`,
      '-qmp', `unix:${p.qmp},server=on,wait=off`,
    ];
  }

  /**
   * One boot attempt. With a snapshot plan, the machine's key is computed from the finished command
   * line and initramfs; when the cache has the entry QEMU starts with `-incoming defer` and loads it,
   * else the kernel boots and the booted guest is saved. A failed restore removes the entry and
   * rejects with {@link RestoreFailed}; QEMU is killed and the directory removed on every failure.
   */
  static async #attempt(o: GuestOptions & { memory: Size; slots: number; maxMemory: Size; nodes: number }, prepared: PreparedKernel, accel: Accel, reason: string, attempts: number, snap?: SnapshotPlan): Promise<Guest> {
    const dir = await ownedTempDir(os.tmpdir(), GUEST_DIR); // mkdtemp makes it 0700
    try {
      return await Guest.#launch(dir, o, prepared, accel, reason, attempts, snap);
    } catch (e) {
      await removeDir(dir);
      throw e;
    }
  }

  /** {@link Guest.#attempt} in the private directory `dir`; on success the guest owns it, and {@link Guest.close} removes it. */
  static async #launch(dir: string, o: GuestOptions & { memory: Size; slots: number; maxMemory: Size; nodes: number }, prepared: PreparedKernel, accel: Accel, reason: string, attempts: number, snap?: SnapshotPlan): Promise<Guest> {
    const calibration = path.join(prepared.dir, 'chain-offsets');
    const chainOffsets = existsSync(calibration) ? (await readOwnFile(calibration)).toString('utf8') : undefined;
    const initrd = path.join(dir, 'initramfs.cpio');
    const initrdSha256 = await buildInitramfs(initrd, { kernel: prepared, ...(chainOffsets ? { chainOffsets } : {}) });
    const console = path.join(dir, 'console.log');
    const ctl = path.join(dir, 'agent.sock');
    const qmpSock = path.join(dir, 'qmp.sock');
    const cmdline = ['console=ttyS0', 'loglevel=7', 'panic=-1', ...(o.cmdline ?? [])].join(' ');
    const args = Guest.#args(o, prepared, accelArgs(accel), cmdline, { kernel: '/dev/fd/3', initrd, console, ctl, qmp: qmpSock });
    const qemu = o.qemu ?? 'qemu-system-x86_64';
    let identity: SnapshotIdentity | undefined;
    let key: string | undefined;
    let entry: SnapshotEntry | undefined;
    let snapNote = snap?.note;
    if (snap) {
      try {
        const unsafe = restoreUnsafe(prepared.release, accel);
        if (unsafe) throw new GuestError(unsafe);
        if (!(await haveZstd())) throw new GuestError('zstd is not installed');
        identity = {
          qemu: await qemuIdentity(qemu),
          accel: accel === 'kvm' ? 'kvm' : 'tcg',
          // The kernel's path in the cache, not the descriptor QEMU gets: keys stay those of earlier versions.
          args: Guest.#args(o, prepared, ['@ACCEL'], cmdline, { kernel: prepared.vmlinuz, initrd: '@INITRD', console: '@CONSOLE', ctl: '@AGENT', qmp: '@QMP' }),
          release: prepared.release,
          vmlinuz: prepared.digests.vmlinuz,
          initramfs: initrdSha256,
          hostCpu: accel === 'kvm' ? await hostCpuIdentity() : '',
        };
        key = snapshotKey(identity);
        entry = snap.tryRestore ? await snap.cache.lookup(key, (why) => (snapNote = why)) : undefined;
      } catch (e) {
        identity = undefined;
        snapNote = `snapshots unavailable: ${(e as Error).message}`;
      }
    }
    if (entry) {
      // The boot's console log, read before the restored guest's own (consoleTail), as after a fresh boot.
      // Not appended to by QEMU: `-serial file:PATH,append=on` is no option, it names a file 'PATH,append=on'.
      const log = await readOwnFile(entry.console).catch(() => undefined);
      if (log) await writeFile(path.join(dir, BOOT_CONSOLE), log);
      args.push('-incoming', 'defer');
    }
    // Read and hashed while QEMU starts (about as long: ~55 ms for 43 MB), checked before the stream is loaded.
    const image = entry ? snap!.cache.read(entry) : undefined;
    image?.catch(() => undefined);
    const cmd = [...pdeathsigWrapper(), qemu, ...args];
    // QEMU reads the bzImage through its descriptor 3: the very file checked against its digest here.
    const kernel = await openVerified(prepared.vmlinuz, prepared.digests.vmlinuz);
    o.onPhase?.(entry ? 'restoring' : 'booting');
    const t0 = performance.now();
    // detached: own session and process group, so one kill reaches QEMU and anything it starts.
    let child: ChildProcess;
    try {
      child = spawn(cmd[0]!, cmd.slice(1), { detached: true, stdio: ['ignore', 'ignore', 'pipe', kernel.fd] });
    } finally {
      await kernel.close(); // QEMU has its own copy of the descriptor
    }
    const untrack = trackProcess(child.pid, true);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const exited = new Promise<string>((resolve) => {
      child.once('error', (e) => resolve(`could not start ${qemu}: ${e.message}`));
      child.once('exit', (code, sig) => resolve(`QEMU exited (${sig ?? `code ${code}`})${stderr ? `: ${stderr.trim()}` : ''}`));
    });
    void exited.then(untrack);
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
      const said = stderr.trim() && !msg.includes(stderr.trim()) ? `; QEMU said: ${stderr.trim()}` : '';
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
        await Promise.race([loadVm(qmp, path.join(dir, MIGRATION_SOCKET), data, timeoutMs), died, deadline]);
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
    let g: Guest;
    try {
      g = new Guest(o, prepared, info, agent, qmp, child, dir); // picks the profile from READY's release
    } catch (e) {
      return fail((e as Error).message, e);
    }
    live.add(g);
    void exited.then(() => live.delete(g));
    try {
      if (entry) await g.#adopt(entry, cmdline, Math.min(timeoutMs, 30_000));
      await g.#checkProbes();
      if (!chainOffsets) await g.#calibrate(calibration);
      if (entry) {
        info.bootMs = performance.now() - t0;
        await snap!.cache.touch(entry.key);
      } else if (snap && identity && key) {
        if (!chainOffsets) info.snapshotReason = 'not saved: this boot calibrated the chain offsets, so the next boot of this kernel has another initramfs';
        else {
          o.onPhase?.('saving');
          await g.#save(snap.cache, key, identity, cmdline);
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

  /**
   * After a restore: prove that the guest answers on the new agent socket and is the machine the key
   * promised (its `uname -r` and `/proc/cmdline`), set its wall clock (it stood still in the image,
   * while a fresh boot would read the host's), and take over the host-side state of the saved boot.
   */
  async #adopt(entry: SnapshotEntry, cmdline: string, timeoutMs: number): Promise<void> {
    const out = await this.agent.sh(`uname -r; cat /proc/cmdline; date -u -s @${Math.round(Date.now() / 1000)} >/dev/null 2>&1`, timeoutMs);
    const [release = '', cmd = ''] = out.split('\n');
    const host = entry.meta.host;
    if (release !== this.prepared.release || release !== host.ready.release) {
      throw new GuestError(`the restored guest runs '${release}': expected ${this.prepared.release}, and the entry says ${host.ready.release}`);
    }
    if (cmd.trim() !== cmdline) throw new GuestError(`the restored guest's command line is '${cmd.trim()}', not '${cmdline}'`);
    this.#traceOffset = host.traceOffset;
    this.#probes = host.probes.slice();
    this.#pendingQmp.unshift(...host.pendingQmp);
    for (const r of host.trace) this.trace.add(r);
  }

  /** The host-side state a restored copy of this guest must start from. */
  #hostState(): GuestHostState {
    return {
      ready: this.boot.ready,
      chainHeads: this.boot.chainHeads,
      traceOffset: this.#traceOffset,
      probes: this.#probes.slice(),
      pendingQmp: this.#pendingQmp.slice(),
      trace: this.trace.events(),
    };
  }

  /**
   * Save this freshly booted, idle guest into the cache, then let it run on. A save that fails is
   * noted in {@link BootInfo.snapshotReason} and the guest is used anyway, as long as it still answers.
   */
  async #save(cache: SnapshotCache, key: string, identity: SnapshotIdentity, cmdline: string): Promise<void> {
    const p = await cache.begin(key);
    const mark = this.#pendingQmp.length;
    const t0 = performance.now();
    try {
      let saved: { bytes: number; sha256: string };
      try {
        saved = await saveVm(this.qmp, path.join(this.dir, MIGRATION_SOCKET), p.image);
      } finally {
        await this.qmp.execute('cont');
      }
      // The save's STOP/RESUME are in the QMP stream before this reply; once it is in and a macrotask
      // has passed, the event loop of the constructor has queued them, and they are taken out again.
      await this.qmp.execute('query-status');
      await new Promise((r) => setImmediate(r));
      const kept = this.#pendingQmp.slice(mark).filter((r) => !(r.type === 'qmp-event' && SAVE_EVENTS.has(String(r.event))));
      this.#pendingQmp.splice(mark, Infinity, ...kept);
      const pausedMs = performance.now() - t0;
      const { bytes: imageBytes, sha256: imageSha256 } = saved;
      await copyFile(path.join(this.dir, 'console.log'), p.console).catch(() => undefined);
      await cache.commit(p, {
        format: SNAPSHOT_FORMAT,
        key,
        created: new Date().toISOString(),
        identity,
        compression: 'zstd',
        imageBytes,
        imageSha256,
        saveMs: pausedMs,
        bootMs: this.boot.bootMs,
        cmdline,
        host: this.#hostState(),
      });
      const evicted = await cache.evict(key);
      if (evicted.includes(key)) this.boot.snapshotReason = `saved, then evicted: ${imageBytes} bytes alone exceed the cache's cap of ${cache.maxBytes}`;
      Object.assign(this.boot, { path: 'booted-and-saved', saveMs: performance.now() - t0, snapshotBytes: imageBytes });
    } catch (e) {
      await cache.abort(p);
      this.boot.snapshotReason = `not saved: ${(e as Error).message}`;
      const alive = await this.agent.request('ping', [], 10_000).then((r) => r.status === 'ok', () => false);
      if (!alive) throw new GuestError(`the guest did not survive being saved: ${(e as Error).message}`, { cause: e, console: await this.consoleTail() });
    }
  }

  /** The chain probes are what the trace is made of: without them the guest is of no use. */
  async #checkProbes(): Promise<void> {
    const events = await this.agent.read('/sys/kernel/tracing/kprobe_events');
    const want = ['memchain', ...(this.kernel.nodeActions ? ['nodechain'] : [])];
    for (const ev of want) {
      if (!new RegExp(`^p:hp/${ev} `, 'm').test(events)) {
        throw new GuestError(`chain probe ${ev} is not installed in the guest`, { console: await this.consoleTail() });
      }
    }
  }

  /** Store `symbol offset-from-_text` for the chain heads so later boots skip the kallsyms scan. */
  async #calibrate(file: string): Promise<void> {
    const syms = await this.agent.call('chains');
    const addr = new Map(syms.split('\n').filter(Boolean).map((l) => [l.split(' ')[2]!, BigInt('0x' + l.split(' ')[0])]));
    const text = addr.get('_text');
    if (text === undefined) return;
    const lines = [...addr].filter(([s]) => s !== '_text').map(([s, a]) => `${s} ${a - text}`);
    await writeOwnFile(file, lines.join('\n') + '\n', 0o644);
  }

  /** The last lines of the kernel console (of a restored guest: the saved boot's, then its own). */
  consoleTail(lines = 40): Promise<string> {
    return consoleText(this.dir, lines);
  }

  /**
   * Fetch the guest's new trace lines (everything recorded before this call), decode them, append
   * notify/uevent records to {@link trace}, then the QMP events that arrived meanwhile (a QMP event
   * is the consequence of guest work, so it goes after the guest records of the same step).
   *
   * Uevents belong to a sync by the kernel's SEQNUM, not by when they arrived: the guest answers with
   * the kernel's uevent sequence number at the sync (after its listener has handled every uevent up
   * to it), and a uevent numbered above that was raised after the sync point, so it waits for the
   * next sync even if it came through with this one.
   */
  async syncTrace(): Promise<void> {
    const data = await this.agent.call('trace', [String(this.#traceOffset)], 'trace', 30_000);
    const head = /^seqnum (\d+)\n/.exec(data);
    if (!head) throw new GuestError(`trace sync: no uevent sequence number in the answer: ${JSON.stringify(data.slice(0, 80))}`);
    const seqnum = Number(head[1]);
    const log = data.slice(head[0].length);
    const end = log.lastIndexOf('\n') + 1;
    this.#traceOffset += Buffer.byteLength(log.slice(0, end));
    // Held back at the previous sync (numbered after it) come first: they were numbered before these.
    const records = this.#laterUevents.splice(0);
    for (const line of log.slice(0, end).split('\n')) {
      if (line.includes('tracing_mark_write: uevent-lost')) {
        throw new GuestError('trace sync: the guest lost uevents (netlink ENOBUFS); this observation is not evidence', { console: await this.consoleTail() });
      }
      const r = decodeTraceLine(line);
      if (r) records.push(r);
    }
    for (const r of records) {
      if (r.event === 'uevent' && Number(r.fields.SEQNUM) > seqnum) this.#laterUevents.push(r);
      else this.#record(r);
    }
    for (const q of this.#pendingQmp.splice(0)) this.trace.add(q);
  }

  #record(r: ProbeRecord): void {
    this.#probes.push(r);
    const t = toTraceRecord(r, this.kernel);
    if (t) this.trace.add(t);
  }

  /**
   * The kernel log lines printed since the last call, without their timestamps: `dmesg -c` reads the
   * ring buffer (written as printk runs, unlike the console, which 7.x prints from a thread) and clears it.
   */
  async kernelLog(): Promise<string[]> {
    const out = await this.agent.sh('dmesg -c');
    return out
      .split('\n')
      .map((l) => l.replace(/^\[\s*\d+\.\d+\] ?/, ''))
      .filter((l) => l.length > 0);
  }

  /** The guest's uptime in seconds (its own clock, /proc/uptime). */
  async uptime(): Promise<number> {
    return Number((await this.agent.read('/proc/uptime')).split(' ')[0]);
  }

  /**
   * Poll `check` until `done` accepts its value, and return that value. The wait is bounded by the
   * guest's own clock: it fails (GuestError, with the last value) once the guest's uptime has advanced
   * `guestSeconds` (default 30) since the wait began, however long that takes on a loaded host.
   */
  async waitFor<T>(what: string, check: () => Promise<T>, done: (v: T) => boolean, opts: { guestSeconds?: number; pollMs?: number } = {}): Promise<T> {
    const end = (await this.uptime()) + (opts.guestSeconds ?? 30);
    for (;;) {
      const v = await check();
      if (done(v)) return v;
      if ((await this.uptime()) > end) throw new GuestError(`${what}: not reached within ${opts.guestSeconds ?? 30} s of guest time; last seen ${JSON.stringify(v)}`);
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 20));
    }
  }

  /** Every decoded probe hit and uevent so far (timing probes and return values included), guest clock. */
  probeRecords(): ProbeRecord[] {
    return this.#probes.slice();
  }

  /**
   * Plug a pc-dimm (ACPI); resolves when the guest reported the device added (_OST Device Check
   * success). Sizes need only be 2 MiB multiples, as for QEMU: a DIMM not aligned to the block size is
   * plugged and the guest kernel fails to add it (scenario plug-refused), as on the simulator. A refused
   * check rejects with the Machine's errno ({@link HOTPLUG_CHECK_ERRNO}), a guest failure with EIO
   * (or the errno its _OST status stands for).
   */
  async plugDimm(d: { id: string; size: bigint | string; node?: number }): Promise<void> {
    const bound = this.#guestBound(`plug ${d.id}: wait for the guest's _OST`);
    try {
      await this.hotplug.plugDimm({ id: d.id, size: d.size, ...(d.node !== undefined ? { node: d.node } : {}), checkBlockSize: false, waitOnline: true, timeoutMs: Infinity, signal: bound.signal });
    } catch (e) {
      throw asKernelError(e);
    } finally {
      bound.done();
      await this.syncTrace();
    }
  }

  /**
   * A bound for a wait on this guest by the guest's own clock: the signal aborts (GuestError) once the
   * guest's uptime has advanced `guestSeconds` since the wait began, polled through the agent; on a
   * loaded host the guest runs slower and so does the bound.
   */
  #guestBound(what: string, guestSeconds = 60): { signal: AbortSignal; done(): void } {
    const ac = new AbortController();
    let running = true;
    void (async () => {
      try {
        const end = (await this.uptime()) + guestSeconds;
        while (running) {
          await new Promise((r) => setTimeout(r, 250));
          if (running && (await this.uptime()) > end) ac.abort(new GuestError(`${what}: no answer within ${guestSeconds} s of guest time`));
        }
      } catch (e) {
        if (running) ac.abort(e); // the agent is gone: so is the guest
      }
    })();
    return { signal: ac.signal, done: () => void (running = false) };
  }

  /**
   * Unplug a pc-dimm (ACPI eject); resolves on DEVICE_DELETED. A guest refusal rejects with a
   * {@link KernelError} (EBUSY for _OST 0x82) whose details carry the _OST status; an unknown id
   * with ENODEV, as on the simulator.
   */
  async unplugDimm(id: string): Promise<void> {
    const bound = this.#guestBound(`unplug ${id}: wait for the guest's verdict`);
    try {
      await this.hotplug.unplugDimm(id, { timeoutMs: Infinity, signal: bound.signal });
    } catch (e) {
      throw asKernelError(e);
    } finally {
      bound.done();
      await this.syncTrace();
    }
  }

  /** insmod a module shipped with this kernel (`/lib/modules/<name>.ko` in the guest). */
  async loadModule(name: string, params: Record<string, string | number> = {}): Promise<void> {
    const p = Object.entries(params).map(([k, v]) => `${k}=${v}`).join(' ');
    await this.agent.call('insmod', [name, base64(p)], `insmod ${name}`);
    await this.syncTrace();
  }

  /** rmmod a module. */
  async unloadModule(name: string): Promise<void> {
    await this.agent.call('rmmod', [name], `rmmod ${name}`);
    await this.syncTrace();
  }

  /** SIGKILL QEMU's process group now (synchronous); {@link Guest.close} still has to be called to remove the directory. */
  kill(): void {
    killGroup(this.child);
  }

  /** Stop the guest: power it off politely for a moment, then kill QEMU's process group; remove the private directory. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const gone = new Promise<void>((resolve) => {
        if (this.child.exitCode !== null || this.child.signalCode !== null) resolve();
        else this.child.once('exit', () => resolve());
      });
      // poweroff -f exits QEMU at once; nothing in the guest needs flushing, so do not wait long.
      await Promise.race([this.agent.request('poweroff', [], 1000).catch(() => undefined), gone]);
      await Promise.race([gone, new Promise((r) => setTimeout(r, 500))]);
      this.kill();
      await gone;
      this.#events.close();
      this.agent.close();
      await this.qmp.close().catch(() => undefined);
      live.delete(this);
      await removeDir(this.dir);
    })();
    return this.#closing;
  }
}

/** A guest that crashed (oops/panic on the console) before it was ready: worth one more try. */
class BootCrash extends GuestError {
  constructor(message: string, console: string) {
    super(message, { console });
  }
}

/** A restore that did not give a usable guest; its entry is removed and the kernel is booted instead. */
class RestoreFailed extends GuestError {
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

/** QEMU processes this process started that are still alive (for leak checks). */
export function liveGuests(): number {
  return live.size;
}
