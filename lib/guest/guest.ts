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
 *
 * This file is the entry point: the options, the boot and its retries, the public methods. One boot
 * attempt is lib/guest/launch.ts, QEMU's command line qemu-cmdline.ts, its process process.ts, the
 * snapshot cache's part restore.ts; the methods delegate to target.ts, which makes a booted guest a
 * `HotplugTarget`.
 */
import type { ChildProcess } from 'node:child_process';
import os from 'node:os';
import type { KernelError } from '../errors.js';
import type { KernelProfile } from '../kernel/profile.js';
import type { HotplugTarget, SysfsAccess } from '../kernel/target.js';
import type { Trace } from '../kernel/trace.js';
import type { QmpClient } from '../qmp/client.js';
import type { HOTPLUG_CHECK_ERRNO } from '../qmp/errors.js';
import { kernelCmdline, resolveMachineSpec, type MachineSpec } from '../machine-spec.js';
import type { MemoryHotplug } from '../qmp/hotplug.js';
import { detectAccel, type Accel } from './accel.js';
import type { AgentClient, AgentReady } from './agent.js';
import { reclaimStale, removeDir } from './cleanup.js';
import { prepareKernel, type GuestKernelSpec, type PreparedKernel, type PrepareOptions } from './kernels.js';
import { launch } from './launch.js';
import type { ProbeRecord } from './probes.js';
import { BootCrash, consoleText, forgetGuest, GUEST_DIR, killGroup, stopQemu } from './process.js';
import { RestoreFailed, type SnapshotPlan } from './restore.js';
import { SnapshotCache } from './snapshot.js';
import type { GuestTarget } from './target.js';

/**
 * A machine description and how to boot it. The machine fields are the {@link MachineSpec} every
 * interface takes, with the same defaults and checks (lib/machine-spec.ts); `cmdline` words are passed
 * to the kernel as given once checked.
 */
export interface GuestOptions extends MachineSpec {
  /** Which Debian kernel; default 'latest' (the newest profile's suite, lib/guest/kernels.ts `KERNEL_SUITES`). */
  kernel?: GuestKernelSpec;
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

const boots: BootInfo[] = [];
/** {@link bootHistory} keeps this many (a long-lived process boots without end). */
const BOOT_HISTORY = 1000;

/** The successful boots of this process (the last 1000), oldest first: boot paths and times, for reports. */
export function bootHistory(): BootInfo[] {
  return boots.slice();
}


/** A booted guest. Create with {@link Guest.boot}; always {@link Guest.close} it. */
export class Guest implements HotplugTarget {
  /** The profile of the booted kernel (picked from its `uname -r`). */
  readonly kernel: KernelProfile;
  /** Where the booted kernel differs from the stock profile of its version (read from its BTF). */
  readonly profileNotes: string[];
  /** Notifier, uevent and QMP-event records, in the shape the simulator produces. */
  readonly trace: Trace;
  /** sysfs (any path, really) of the guest; a refused write rejects with the guest's errno. */
  readonly sysfs: SysfsAccess;
  readonly hotplug: MemoryHotplug;
  /** The guest agent (read/write/dump/trace/insmod/sh). */
  readonly agent: AgentClient;
  /** The QMP connection to this guest's QEMU. */
  readonly qmp: QmpClient;
  #target: GuestTarget;
  #closing: Promise<void> | undefined;

  private constructor(
    readonly options: Required<Pick<GuestOptions, 'memory' | 'slots' | 'maxMemory' | 'nodes'>> & GuestOptions,
    readonly prepared: PreparedKernel,
    readonly boot: BootInfo,
    target: GuestTarget,
    private readonly child: ChildProcess,
    /** Private 0700 directory holding the sockets, the initramfs and the console log. */
    readonly dir: string,
  ) {
    this.#target = target;
    ({ kernel: this.kernel, profileNotes: this.profileNotes, trace: this.trace, sysfs: this.sysfs, hotplug: this.hotplug, agent: this.agent, qmp: this.qmp } = target);
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
    const spec = resolveMachineSpec(opts);
    const o = {
      ...opts,
      memory: spec.memory,
      slots: spec.slots,
      maxMemory: spec.maxMemory,
      nodes: spec.nodes,
      ...(spec.cpus !== undefined ? { cpus: spec.cpus } : {}),
      cmdline: Array.isArray(opts.cmdline) ? [...(opts.cmdline as readonly string[])] : kernelCmdline(spec.cmdline),
    };
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
        const g = await launch(o, prepared, accel, reason, attempts, snap, (info, target, child, dir) => new Guest(o, prepared, info, target, child, dir));
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
  syncTrace(): Promise<void> {
    return this.#target.syncTrace();
  }

  /**
   * The kernel log lines printed since the last call, without their timestamps: `dmesg -c` reads the
   * ring buffer (written as printk runs, unlike the console, which 7.x prints from a thread) and clears it.
   */
  kernelLog(): Promise<string[]> {
    return this.#target.kernelLog();
  }

  /** The guest's uptime in seconds (its own clock, /proc/uptime). */
  uptime(): Promise<number> {
    return this.#target.uptime();
  }

  /**
   * Poll `check` until `done` accepts its value, and return that value. The wait is bounded by the
   * guest's own clock: it fails (GuestError, with the last value) once the guest's uptime has advanced
   * `guestSeconds` (default 30) since the wait began, however long that takes on a loaded host.
   */
  waitFor<T>(what: string, check: () => Promise<T>, done: (v: T) => boolean, opts: { guestSeconds?: number; pollMs?: number } = {}): Promise<T> {
    return this.#target.waitFor(what, check, done, opts);
  }

  /** Every decoded probe hit and uevent so far (timing probes and return values included), guest clock. */
  probeRecords(): ProbeRecord[] {
    return this.#target.probeRecords();
  }

  /**
   * Plug a pc-dimm (ACPI); resolves when the guest reported the device added (_OST Device Check
   * success). Sizes need only be 2 MiB multiples, as for QEMU: a DIMM not aligned to the block size is
   * plugged and the guest kernel fails to add it (scenario plug-refused), as on the simulator. A refused
   * check rejects with the Machine's errno ({@link HOTPLUG_CHECK_ERRNO}), a guest failure with EIO
   * (or the errno its _OST status stands for).
   */
  plugDimm(d: { id: string; size: bigint | string; node?: number }): Promise<void> {
    return this.#target.plugDimm(d);
  }

  /**
   * Unplug a pc-dimm (ACPI eject); resolves on DEVICE_DELETED. A guest refusal rejects with a
   * {@link KernelError} (EBUSY for _OST 0x82) whose details carry the _OST status; an unknown id
   * with ENODEV, as on the simulator.
   */
  unplugDimm(id: string): Promise<void> {
    return this.#target.unplugDimm(id);
  }

  /** insmod a module shipped with this kernel (`/lib/modules/<name>.ko` in the guest). */
  loadModule(name: string, params: Record<string, string | number> = {}): Promise<void> {
    return this.#target.loadModule(name, params);
  }

  /** rmmod a module. */
  unloadModule(name: string): Promise<void> {
    return this.#target.unloadModule(name);
  }

  /** SIGKILL QEMU's process group now (synchronous); {@link Guest.close} still has to be called to remove the directory. */
  kill(): void {
    killGroup(this.child);
  }

  /** Stop the guest: power it off politely for a moment, then kill QEMU's process group; remove the private directory. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await stopQemu(this.child, () => this.agent.request('poweroff', [], 1000));
      this.#target.closeEvents();
      this.agent.close();
      await this.qmp.close().catch(() => undefined);
      forgetGuest(this);
      await removeDir(this.dir);
    })();
    return this.#closing;
  }
}

export { liveGuests } from './process.js';
