/**
 * How a booted guest is a {@link HotplugTarget} (docs/architecture.md#one-interface-hotplugtarget), as
 * the simulator's `Machine` is one: sysfs through the agent, pc-dimm plug and unplug through QMP with
 * the guest's refusals turned into the simulator's `KernelError`s, kernel modules, and the trace, made
 * of the guest's kprobe and uevent lines and QMP events in the simulator's record shape and synced after
 * every step. `Guest` (lib/guest/guest.ts) delegates to a `GuestTarget`; QEMU's process and the boot
 * are not here.
 */
import { KernelError } from '../errors.js';
import { getProfile, profileForRelease, type KernelProfile } from '../kernel/profile.js';
import type { DimmSpec, HotplugTarget, SysfsAccess } from '../kernel/target.js';
import { Trace, type TraceRecord } from '../kernel/trace.js';
import type { QmpClient } from '../qmp/client.js';
import { GuestRejectedError, HotplugError } from '../qmp/errors.js';
import { MemoryHotplug } from '../qmp/hotplug.js';
import { base64, type AgentClient, type AgentReady } from './agent.js';
import type { KernelLayout } from './btf.js';
import { GuestError } from './errors.js';
import { decodeTraceLine, effectiveProfile, qmpTraceRecord, toTraceRecord, type ProbeRecord } from './probes.js';
import { consoleText } from './process.js';
import type { MachineOptions } from './qemu-cmdline.js';
import type { GuestHostState } from './snapshot.js';

/**
 * A refusal of the QMP layer as the {@link KernelError} a {@link HotplugTarget} reports (the same
 * errno the simulator gives); anything else (QEMU or connection trouble) unchanged.
 */
function asKernelError(e: unknown): unknown {
  if (e instanceof HotplugError) return new KernelError(e.code, e.message, { cause: e });
  if (e instanceof GuestRejectedError) return new KernelError(e.code ?? 'EIO', e.message, { details: e.status !== undefined ? { ostStatus: e.status } : {}, cause: e });
  return e;
}

/** The hotplug side of a guest: what `Guest` documents and delegates to, and the trace state a snapshot saves and restores. */
export class GuestTarget {
  /** The profile of the booted kernel (picked from its `uname -r`). */
  readonly kernel: KernelProfile;
  /** Where the booted kernel differs from the stock profile of its version (read from its BTF). */
  readonly profileNotes: string[];
  /** Notifier, uevent and QMP-event records, in the shape the simulator produces. */
  readonly trace = new Trace();
  /** sysfs (any path, really) of the guest; a refused write rejects with the guest's errno. */
  readonly sysfs: SysfsAccess;
  /** pc-dimm and virtio-mem hotplug over QMP, checked against the machine's slots, maxmem and nodes. */
  readonly hotplug: MemoryHotplug;
  #probes: ProbeRecord[] = [];
  #traceOffset = 0;
  /** Uevents that came through a sync but were numbered after its SEQNUM: they go with the next sync. */
  #laterUevents: ProbeRecord[] = [];
  #pendingQmp: TraceRecord[] = [];
  #events: ReturnType<QmpClient['events']>;

  /**
   * The target of a guest whose agent said READY with `release`, its kernel described by `layout`;
   * `dir` is the guest's private directory (its console log is quoted in errors).
   */
  constructor(
    readonly agent: AgentClient,
    readonly qmp: QmpClient,
    release: string,
    layout: KernelLayout,
    machine: Pick<MachineOptions, 'slots' | 'maxMemory' | 'nodes'>,
    readonly dir: string,
  ) {
    // A release without a profile of its own runs against the nearest older one, with a note saying so.
    const picked = profileForRelease(release);
    ({ profile: this.kernel, notes: this.profileNotes } = effectiveProfile(picked?.profile ?? getProfile(release), layout));
    if (picked && !picked.exact) {
      const warning = `kernel ${release} has no profile of its own: it runs against profile ${picked.profile.name}, the nearest older`;
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
    this.hotplug = new MemoryHotplug(qmp, { slots: machine.slots, maxMemory: machine.maxMemory, nodes: machine.nodes });
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

  /** The last lines of the kernel console (of a restored guest: the saved boot's, then its own). */
  consoleTail(lines = 40): Promise<string> {
    return consoleText(this.dir, lines);
  }

  /** `Guest.syncTrace`: fetch, decode and append the guest's new trace lines, then the QMP events. */
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

  /** `Guest.kernelLog`: the kernel log lines printed since the last call (`dmesg -c`), without their timestamps. */
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

  /** `Guest.waitFor`: poll `check` until `done` accepts its value, bounded by the guest's own clock. */
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

  /** `Guest.plugDimm`: plug a pc-dimm and wait for the guest's _OST, bounded by the guest's clock. */
  async plugDimm(d: DimmSpec): Promise<void> {
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

  /** `Guest.unplugDimm`: eject a pc-dimm and wait for DEVICE_DELETED or the guest's refusal. */
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

  /** The host-side state a restored copy of this guest must start from, with the boot's READY and chain heads. */
  hostState(ready: AgentReady, chainHeads: GuestHostState['chainHeads']): GuestHostState {
    return {
      ready,
      chainHeads,
      traceOffset: this.#traceOffset,
      probes: this.#probes.slice(),
      pendingQmp: this.#pendingQmp.slice(),
      trace: this.trace.events(),
    };
  }

  /** Start from the host-side state of the saved boot this guest was restored from. */
  adoptHostState(host: GuestHostState): void {
    this.#traceOffset = host.traceOffset;
    this.#probes = host.probes.slice();
    this.#pendingQmp.unshift(...host.pendingQmp);
    for (const r of host.trace) this.trace.add(r);
  }

  /** How many QMP events wait for the next sync: a mark for {@link dropPendingQmp}. */
  pendingQmpMark(): number {
    return this.#pendingQmp.length;
  }

  /** Take the QMP events that came after `mark` and that `drop` accepts out of the next sync (a save's own STOP/RESUME). */
  dropPendingQmp(mark: number, drop: (r: TraceRecord) => boolean): void {
    const kept = this.#pendingQmp.slice(mark).filter((r) => !drop(r));
    this.#pendingQmp.splice(mark, Infinity, ...kept);
  }

  /** Stop taking QMP events (the guest is closing). */
  closeEvents(): void {
    this.#events.close();
  }
}
