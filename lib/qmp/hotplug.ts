/**
 * Memory hotplug orchestration over QMP, checked the way libvirt and Kata check it: every
 * precondition QEMU or the guest would otherwise trip over is tested before anything is sent; a
 * half-done plug is rolled back; an unplug waits for the guest's verdict and names it.
 */
import { formatSize, sizeBytes, type Size } from '../size.js';
import { MemhpError } from '../errors.js';
import type { QmpClient, QmpEvent, QmpEventStream } from './client.js';
import {
  HotplugError,
  HotplugRollbackError,
  HotplugTimeoutError,
  PlugRejectedError,
  QmpTimeoutError,
  UnplugRejectedError,
  ostStatusName,
} from './errors.js';

/** Parse a {@link Size} to a byte count (binary units, as QEMU reads `-m`). Throws {@link HotplugError} BAD_ARGUMENT. */
export function parseSize(s: Size): number {
  const n = sizeBytes(s);
  if (n === null) throw new HotplugError('BAD_ARGUMENT', `not a size in bytes: ${String(s)}`);
  return n;
}

export { formatSize, type Size };

/** A pc-dimm (or nvdimm), as `query-memory-devices` reports it. */
export interface DimmDevice {
  type: 'dimm' | 'nvdimm';
  id: string | undefined;
  addr: number;
  size: number;
  slot: number;
  node: number;
  /** QOM path of the backend, e.g. `/objects/mem-dimm1`. */
  memdev: string;
  hotplugged: boolean;
  hotpluggable: boolean;
}

/** A virtio-mem device: `size` is what the guest has plugged, `requestedSize` what the host asked for. */
export interface VirtioMemDevice {
  type: 'virtio-mem';
  id: string | undefined;
  memaddr: number;
  size: number;
  requestedSize: number;
  maxSize: number;
  blockSize: number;
  node: number;
  memdev: string;
}

/** Memory devices memhp does not drive (virtio-pmem, sgx-epc, …); `data` is QEMU's as is. */
export interface OtherMemoryDevice {
  type: 'other';
  qemuType: string;
  id: string | undefined;
  /** Bytes of the device-memory window the device takes, when QEMU says. */
  size: number;
  data: Record<string, unknown>;
}

export type MemoryDevice = DimmDevice | VirtioMemDevice | OtherMemoryDevice;

/** What the machine allows; fields QEMU could not tell (and the caller did not give) are undefined. */
export interface MachineLimits {
  slots: number | undefined;
  /** `maxmem`: boot RAM + the device-memory window. */
  maxMemory: number | undefined;
  /** Boot RAM (`base-memory`). */
  baseMemory: number;
  /** Device memory in use: plugged DIMMs plus the full `max-size` of each virtio-mem device. */
  usedMemory: number;
  /** NUMA node count (at least 1). */
  nodes: number | undefined;
}

/** One command of a plan, as it will be sent. */
export interface QmpStep {
  execute: string;
  arguments: Record<string, unknown>;
}

/** The commands an operation will send, in order, after its checks passed. */
export interface Plan {
  /** The device id (generated when the caller gave none). */
  id: string;
  /** The backend object id. */
  memdev: string;
  steps: QmpStep[];
}

/** Options of {@link MemoryHotplug}. */
export interface MemoryHotplugOptions {
  /** The guest's memory block size (`/sys/devices/system/memory/block_size_bytes`); default 128 MiB. */
  blockSize?: Size;
  /** Used when QEMU does not report them (older QEMU has no `memory` property on /machine). */
  slots?: number;
  maxMemory?: Size;
  nodes?: number;
  /** Default deadline for waiting on the guest (unplug, online, resize); default 30 s. */
  timeoutMs?: number;
}

/** Deadline and cancellation of one operation. */
export interface WaitOptions {
  /** Wall-clock bound in ms (default the instance's, 30 s); `Infinity` for none but `signal`. */
  timeoutMs?: number;
  /** Aborting it ends the wait with its reason. */
  signal?: AbortSignal;
}

/** Options of {@link MemoryHotplug.plugDimm}. */
export interface PlugDimmOptions extends WaitOptions {
  id?: string;
  size: Size;
  node?: number;
  /** Guest-physical address; QEMU picks the first fit when absent. */
  addr?: Size;
  /** Backend object id; default `mem-<id>`. */
  memdev?: string;
  /**
   * Refuse a size or address that is not a multiple of the guest's memory block size (default true).
   * QEMU takes such a DIMM and the guest kernel then fails to add it, reporting only in dmesg
   * (scenario plug-refused): false lets a test observe exactly that.
   */
  checkBlockSize?: boolean;
  /**
   * Wait until the guest has taken the memory: `true` waits for ACPI_DEVICE_OST (Device Check,
   * status 0), i.e. the guest's ACPI driver added it (auto-onlining follows the guest's policy); a
   * function is awaited instead (e.g. a guest agent polling sysfs for `online`).
   */
  waitOnline?: boolean | ((dev: DimmDevice, signal: AbortSignal) => Promise<void>);
}

/** How to wait for a virtio-mem device to converge (its plugged `size` to equal `requested-size`). */
export interface ConvergeOptions extends WaitOptions {
  /**
   * Poll `query-memory-devices` this often (ms); default 100. MEMORY_DEVICE_SIZE_CHANGE only wakes
   * the wait early: QEMU rate-limits it to one per second per device and it carries the size at the
   * moment it was queued, so it is often an intermediate size and the last one can come a second late.
   */
  pollMs?: number;
}

/** Options of {@link MemoryHotplug.addVirtioMem}. */
export interface AddVirtioMemOptions extends ConvergeOptions {
  id?: string;
  /** The device's maximum size (the backend size). */
  size: Size;
  requestedSize?: Size;
  /**
   * virtio-mem block size; default QEMU's (2 MiB on x86 with THP). Smaller than the guest memory
   * block (128 MiB) makes Linux drive it in sub-block mode (SBM), a multiple of it in big-block mode (BBM).
   */
  blockSize?: Size;
  node?: number;
  memdev?: string;
  /**
   * Wait until the guest has plugged `requestedSize` (as {@link MemoryHotplug.resizeVirtioMem} does);
   * needs a guest whose virtio_mem driver is bound. Default false: return once QEMU has the device.
   */
  waitConverged?: boolean;
}

const MiB = 2 ** 20;
const OST_DEVICE_CHECK = 1;
const OST_EJECT_REQUEST = 3;
const OST_OSPM_EJECT = 0x103;
/** libvirt's rule for a DIMM: these statuses on an eject mean the guest said no. */
const isEjectRejection = (status: number): boolean => status === 0x01 || (status >= 0x80 && status <= 0x83);

function num(v: unknown): number {
  return typeof v === 'number' ? v : Number(v ?? NaN);
}

function toDevice(raw: { type: string; data: Record<string, unknown> }): MemoryDevice {
  const d = raw.data;
  const id = typeof d.id === 'string' ? d.id : undefined;
  if (raw.type === 'dimm' || raw.type === 'nvdimm') {
    return {
      type: raw.type, id, addr: num(d.addr), size: num(d.size), slot: num(d.slot), node: num(d.node),
      memdev: String(d.memdev), hotplugged: d.hotplugged === true, hotpluggable: d.hotpluggable === true,
    };
  }
  if (raw.type === 'virtio-mem') {
    return {
      type: 'virtio-mem', id, memaddr: num(d.memaddr), size: num(d.size), requestedSize: num(d['requested-size']),
      maxSize: num(d['max-size']), blockSize: num(d['block-size']), node: num(d.node), memdev: String(d.memdev),
    };
  }
  return { type: 'other', qemuType: raw.type, id, size: num(d.size ?? 0) || 0, data: d };
}

/** Bytes of the device-memory window a device occupies. */
function footprint(d: MemoryDevice): number {
  return d.type === 'virtio-mem' ? d.maxSize : d.type === 'other' && d.qemuType === 'sgx-epc' ? 0 : d.size;
}

/** Resolves after `ms`, or rejects with the signal's reason; `cancel()` leaves no timer or listener behind. */
function sleep(ms: number, signal: AbortSignal): Promise<void> & { cancel(): void } {
  let cancel = (): void => undefined;
  const p = new Promise<void>((resolve, reject) => {
    const onAbort = (): void => (clearTimeout(t), reject(signal.reason));
    const t = setTimeout(() => (signal.removeEventListener('abort', onAbort), resolve()), ms);
    cancel = () => (clearTimeout(t), signal.removeEventListener('abort', onAbort));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Object.assign(p, { cancel });
}

/**
 * An AbortSignal that fires on the caller's signal or after `timeoutMs` (with a {@link QmpTimeoutError});
 * `Infinity` leaves the bound to the caller's signal alone (a Guest bounds its waits by the guest's clock).
 */
function deadline(what: string, timeoutMs: number, signal?: AbortSignal): { signal: AbortSignal; done(): void } {
  const ac = new AbortController();
  const t = Number.isFinite(timeoutMs) ? setTimeout(() => ac.abort(new QmpTimeoutError(what, timeoutMs)), timeoutMs) : undefined;
  const onAbort = (): void => ac.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  return {
    signal: ac.signal,
    done: () => (clearTimeout(t), signal?.removeEventListener('abort', onAbort)),
  };
}

/** The next event of a stream, or the signal's reason. */
function nextEvent(events: QmpEventStream, signal: AbortSignal): Promise<QmpEvent> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    events.next().then(
      (r) => (signal.removeEventListener('abort', onAbort), r.done ? reject(new MemhpError('QMP event stream ended')) : resolve(r.value)),
      (e: unknown) => (signal.removeEventListener('abort', onAbort), reject(e)),
    );
  });
}

/** The two steps of every memory-device add: a RAM backend, then the device that uses it. */
function addPlan(id: string, memdev: string, size: number, dev: Record<string, unknown>): Plan {
  return {
    id,
    memdev,
    steps: [
      { execute: 'object-add', arguments: { 'qom-type': 'memory-backend-ram', id: memdev, size } },
      { execute: 'device_add', arguments: dev },
    ],
  };
}

/** Why a virtio-mem device may have stopped short of its requested size, judged by where it stopped. */
function convergeHint(startSize: number, size: number, requested: number): string {
  if (size === startSize) return 'the guest did not move (is its virtio_mem driver loaded and the guest running?)';
  if (size < requested) return 'the guest plugged part of it (out of guest memory for the memmap, or hot-added memory left offline)';
  return 'the guest unplugged part of it and keeps retrying (memory it cannot migrate, e.g. blocks onlined to ZONE_NORMAL)';
}

/** Memory hotplug of one QEMU machine through a {@link QmpClient}. */
export class MemoryHotplug {
  /** The guest memory block size every DIMM size and address must be a multiple of. */
  readonly blockSize: number;
  readonly #opts: MemoryHotplugOptions;
  readonly #timeoutMs: number;

  constructor(
    readonly qmp: QmpClient,
    opts: MemoryHotplugOptions = {},
  ) {
    this.#opts = opts;
    this.blockSize = parseSize(opts.blockSize ?? 128 * MiB);
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
  }

  /** All memory devices (`query-memory-devices`), in QEMU's order. */
  async listMemoryDevices(): Promise<MemoryDevice[]> {
    const raw = await this.qmp.execute<{ type: string; data: Record<string, unknown> }[]>('query-memory-devices');
    return raw.map(toDevice);
  }

  /** Slots, maxmem, boot RAM, used device memory and node count, from QEMU or the options. */
  async machineLimits(devices?: MemoryDevice[]): Promise<MachineLimits> {
    const summary = await this.qmp.execute<{ 'base-memory': number; 'plugged-memory'?: number }>('query-memory-size-summary');
    // QEMU ≥ 5.x exposes -m as /machine.memory = {size, slots, max-size}.
    const mem = await this.qmp
      .execute<{ size: number; slots: number; 'max-size': number }>('qom-get', { path: '/machine', property: 'memory' })
      .catch(() => undefined);
    // There is no QMP query for the NUMA layout of a machine with memoryless nodes; HMP has one.
    const numa = await this.qmp
      .execute<string>('human-monitor-command', { 'command-line': 'info numa' })
      .then((s) => /^(\d+) nodes/.exec(s)?.[1])
      .catch(() => undefined);
    const devs = devices ?? (await this.listMemoryDevices());
    const used = devs.reduce((a, d) => a + footprint(d), 0);
    const maxMemory = mem?.['max-size'] ?? (this.#opts.maxMemory !== undefined ? parseSize(this.#opts.maxMemory) : undefined);
    return {
      slots: mem?.slots ?? this.#opts.slots,
      maxMemory,
      baseMemory: summary['base-memory'],
      usedMemory: Math.max(used, summary['plugged-memory'] ?? 0),
      // Without -numa QEMU has 0 nodes, yet node 0 is valid.
      nodes: numa !== undefined ? Math.max(1, Number(numa)) : this.#opts.nodes,
    };
  }

  /** Check a pc-dimm plug and return the commands it would send, sending nothing that changes the machine. */
  async planPlugDimm(o: PlugDimmOptions): Promise<Plan> {
    const size = parseSize(o.size);
    const addr = o.addr !== undefined ? parseSize(o.addr) : undefined;
    const unit = o.checkBlockSize === false ? 2 * MiB : this.blockSize;
    this.#checkAligned('size', size, unit);
    if (addr !== undefined) this.#checkAligned('addr', addr, unit);
    const devices = await this.listMemoryDevices();
    const limits = await this.machineLimits(devices);
    const { id, memdev } = await this.#ids(o.id, o.memdev, 'dimm');

    const used = devices.filter((d) => d.type === 'dimm' || d.type === 'nvdimm').length;
    if (limits.slots !== undefined && used >= limits.slots) {
      throw new HotplugError('NO_FREE_SLOT', `${id}: no free DIMM slot (${used} of ${limits.slots} in use)`);
    }
    this.#checkHeadroom(id, size, limits);
    this.#checkNode(id, o.node, limits);

    const dev: Record<string, unknown> = { driver: 'pc-dimm', id, memdev };
    if (o.node !== undefined) dev.node = o.node;
    if (addr !== undefined) dev.addr = addr;
    return addPlan(id, memdev, size, dev);
  }

  /**
   * Plug a pc-dimm: check, `object-add` the backend, `device_add` the DIMM (removing the backend
   * again if QEMU refuses), and optionally wait for the guest to take it.
   * @throws HotplugError a check failed; QmpError QEMU refused (rolled back); PlugRejectedError the guest failed to add it
   */
  async plugDimm(o: PlugDimmOptions): Promise<DimmDevice> {
    const plan = await this.planPlugDimm(o);
    const ost = o.waitOnline === true ? this.#waitOst(plan.id, OST_DEVICE_CHECK, o) : undefined;
    try {
      await this.#applyAdd(plan);
    } catch (e) {
      ost?.cancel();
      throw e;
    }
    const dev = (await this.listMemoryDevices()).find((d): d is DimmDevice => d.type === 'dimm' && d.id === plan.id);
    if (!dev) throw new MemhpError(`${plan.id}: device_add succeeded but QEMU does not list the DIMM`);
    if (ost) {
      const status = await ost.status.catch((e: unknown) => {
        if (!(e instanceof QmpTimeoutError)) throw e;
        // The DIMM stays: QEMU has it, and a guest that boots later will still take it.
        throw new HotplugTimeoutError(`${plan.id}: wait for the guest`, e.timeoutMs, {},
          'the guest never reported the DIMM (no _OST); the DIMM stays plugged');
      });
      if (status !== 0) throw new PlugRejectedError(plan.id, status);
    } else if (typeof o.waitOnline === 'function') {
      const dl = deadline(`${plan.id}: wait for online`, o.timeoutMs ?? this.#timeoutMs, o.signal);
      try {
        await o.waitOnline(dev, dl.signal);
      } finally {
        dl.done();
      }
    }
    return dev;
  }

  /** Check an unplug and return its commands (device_del, then object-del of the backend). */
  async planUnplugDimm(id: string): Promise<Plan & { device: DimmDevice }> {
    const found = (await this.listMemoryDevices()).find((d) => d.id === id);
    if (found?.type === 'virtio-mem') {
      throw new HotplugError('NO_SUCH_DEVICE', `${id}: a virtio-mem device, not a pc-dimm; QEMU does not unplug virtio-mem devices (resize it to 0 instead)`);
    }
    const device = found?.type === 'dimm' ? found : undefined;
    if (!device) throw new HotplugError('NO_SUCH_DEVICE', `${id}: no such pc-dimm`);
    const memdev = device.memdev.replace(/^\/objects\//, '');
    return {
      id,
      memdev,
      device,
      steps: [
        { execute: 'device_del', arguments: { id } },
        { execute: 'object-del', arguments: { id: memdev } },
      ],
    };
  }

  /**
   * Unplug a pc-dimm: `device_del`, wait for DEVICE_DELETED, then `object-del` the backend. The
   * event listeners are opened before `device_del`, so a fast guest cannot be missed.
   * @throws UnplugRejectedError the guest refused (`_OST` 0x01, 0x80–0x83, or DEVICE_UNPLUG_GUEST_ERROR); the DIMM stays
   * @throws HotplugTimeoutError no verdict in time; the eject request stays pending in QEMU
   */
  async unplugDimm(id: string, opts: WaitOptions = {}): Promise<void> {
    const plan = await this.planUnplugDimm(id);
    const [del, objDel] = plan.steps as [QmpStep, QmpStep];
    const events = this.qmp.events(['DEVICE_DELETED', 'ACPI_DEVICE_OST', 'DEVICE_UNPLUG_GUEST_ERROR', 'MEM_UNPLUG_ERROR']);
    const timeoutMs = opts.timeoutMs ?? this.#timeoutMs;
    const dl = deadline(`device_del ${id}`, timeoutMs, opts.signal);
    let lastOst: number | undefined;
    try {
      await this.qmp.execute(del.execute, del.arguments, { signal: dl.signal });
      for (;;) {
        const e = await nextEvent(events, dl.signal);
        if (e.event === 'DEVICE_DELETED' && e.data.device === id) break;
        if (e.event === 'DEVICE_UNPLUG_GUEST_ERROR' && e.data.device === id) throw new UnplugRejectedError(id, lastOst, e.event);
        if (e.event === 'MEM_UNPLUG_ERROR' && e.data.device === id) throw new UnplugRejectedError(id, lastOst, e.event);
        const info = e.event === 'ACPI_DEVICE_OST' ? (e.data.info as Record<string, unknown> | undefined) : undefined;
        // After the DIMM is gone the final _OST may carry only the slot, so match either.
        if (info && info['slot-type'] === 'DIMM' && (info.device === id || (info.device === undefined && info.slot === String(plan.device.slot)))) {
          const source = num(info.source);
          if (source !== OST_EJECT_REQUEST && source !== OST_OSPM_EJECT) continue;
          lastOst = num(info.status);
          if (isEjectRejection(lastOst)) throw new UnplugRejectedError(id, lastOst);
        }
      }
    } catch (e) {
      if (e instanceof QmpTimeoutError && dl.signal.reason === e) {
        const hint =
          lastOst === undefined
            ? 'the guest never answered the eject request (no _OST): no guest running, or no ACPI memory hotplug in it; the request stays pending'
            : `last _OST ${ostStatusName(lastOst)}; the request stays pending`;
        throw new HotplugTimeoutError(`device_del ${id}`, timeoutMs, { lastOstStatus: lastOst }, hint);
      }
      throw e;
    } finally {
      dl.done();
      events.close();
    }
    await this.qmp.execute(objDel.execute, objDel.arguments);
  }

  /** Check a virtio-mem add and return its commands. */
  async planAddVirtioMem(o: AddVirtioMemOptions): Promise<Plan> {
    const size = parseSize(o.size);
    const requested = o.requestedSize !== undefined ? parseSize(o.requestedSize) : undefined;
    const blockSize = o.blockSize !== undefined ? parseSize(o.blockSize) : undefined;
    const unit = blockSize ?? 2 * MiB;
    for (const [what, v] of [['size', size], ['requested-size', requested]] as const) {
      if (v !== undefined && v % unit !== 0) {
        throw new HotplugError('UNALIGNED', `${what} ${formatSize(v)} is not a multiple of the virtio-mem block size ${formatSize(unit)}`);
      }
    }
    if (requested !== undefined && requested > size) {
      throw new HotplugError('BAD_ARGUMENT', `requested-size ${formatSize(requested)} exceeds the device size ${formatSize(size)}`);
    }
    const limits = await this.machineLimits();
    const { id, memdev } = await this.#ids(o.id, o.memdev, 'vmem');
    this.#checkHeadroom(id, size, limits);
    this.#checkNode(id, o.node, limits);
    const dev: Record<string, unknown> = { driver: 'virtio-mem-pci', id, memdev };
    if (o.node !== undefined) dev.node = o.node;
    if (blockSize !== undefined) dev['block-size'] = blockSize;
    if (requested !== undefined) dev['requested-size'] = requested;
    return addPlan(id, memdev, size, dev);
  }

  /**
   * Add a virtio-mem device (backend + virtio-mem-pci), rolling back the backend if QEMU refuses the
   * device; with `waitConverged`, wait until the guest has plugged the requested size.
   * The device stays for the life of the machine: QEMU (7.2) refuses `device_del` of virtio-mem
   * devices, so memory goes back by resizing to 0.
   * @throws HotplugError a check failed; QmpError QEMU refused (rolled back); HotplugTimeoutError no convergence (the device stays)
   */
  async addVirtioMem(o: AddVirtioMemOptions): Promise<VirtioMemDevice> {
    const plan = await this.planAddVirtioMem(o);
    const add = async (): Promise<VirtioMemDevice> => (await this.#applyAdd(plan), this.#virtioMem(plan.id));
    if (!o.waitConverged) return add();
    // Listening starts before device_add: a bound driver starts plugging as soon as it probes the device.
    return this.#converge(`add ${plan.id}`, plan.id, o, async () => {
      const dev = await add();
      return { start: dev, requested: dev.requestedSize };
    });
  }

  /**
   * Wait until virtio-mem device `id` has plugged its requested size, changing nothing: for a device
   * added before the guest's driver was bound (the driver plugs the pending request when it probes),
   * or after a resize that timed out.
   * @throws HotplugError NO_SUCH_DEVICE; HotplugTimeoutError as {@link MemoryHotplug.resizeVirtioMem}
   */
  async waitVirtioMem(id: string, opts: ConvergeOptions = {}): Promise<VirtioMemDevice> {
    return this.#converge(`wait for ${id}`, id, opts, async () => {
      const dev = await this.#virtioMem(id);
      return { start: dev, requested: dev.requestedSize };
    });
  }

  /** The `qom-set` a resize sends. */
  async planResizeVirtioMem(id: string, requestedSize: Size): Promise<Plan & { device: VirtioMemDevice; requested: number }> {
    const device = await this.#virtioMem(id);
    const requested = parseSize(requestedSize);
    if (requested % device.blockSize !== 0) {
      throw new HotplugError('UNALIGNED', `${id}: ${formatSize(requested)} is not a multiple of its block size ${formatSize(device.blockSize)}`);
    }
    if (requested > device.maxSize) {
      throw new HotplugError('NO_HEADROOM', `${id}: ${formatSize(requested)} exceeds its maximum ${formatSize(device.maxSize)}`);
    }
    return {
      id,
      memdev: device.memdev.replace(/^\/objects\//, ''),
      device,
      requested,
      steps: [{ execute: 'qom-set', arguments: { path: `/machine/peripheral/${id}`, property: 'requested-size', value: requested } }],
    };
  }

  /**
   * Ask a virtio-mem device for a new size (`qom-set requested-size`) and wait until the guest's
   * plugged size equals it. The guest's virtio_mem driver does the work: it adds and onlines memory
   * blocks (or plugs sub-blocks of blocks it already has) to grow, and to shrink it offlines and
   * removes whole blocks, or, where offlining fails, takes single sub-blocks out of online blocks.
   * Convergence is QEMU's view of the device. When shrinking, the guest gives the memory up before it
   * tells the device, so it is gone from the guest by then; when growing, the driver has the device
   * plug sub-blocks first and adds and onlines the memory block afterwards, so the memory can show up
   * in the guest (sysfs, MemTotal) a little later.
   * Setting the size a device already has returns at once, but still notifies the guest, which makes
   * its driver retry pending work (e.g. removing blocks it emptied while offlining them failed).
   * @throws HotplugError a check failed (nothing sent)
   * @throws HotplugTimeoutError no convergence in time, with `details.size` (reached), `details.startSize`
   *   and `details.requestedSize`; `requested-size` stays set and the guest keeps working towards it
   */
  async resizeVirtioMem(id: string, requestedSize: Size, opts: ConvergeOptions = {}): Promise<VirtioMemDevice> {
    const plan = await this.planResizeVirtioMem(id, requestedSize);
    const [set] = plan.steps as [QmpStep];
    return this.#converge(`resize ${id}`, id, opts, async (signal) => {
      await this.qmp.execute(set.execute, set.arguments, { signal });
      return { start: plan.device, requested: plan.requested };
    });
  }

  /**
   * Run `act` (which changes device `id` and says from what size to what size), then wait until the
   * device has plugged the requested size: poll query-memory-devices every `pollMs`, earlier when a
   * MEMORY_DEVICE_SIZE_CHANGE of the device arrives (listened to from before `act`).
   */
  async #converge(
    what: string,
    id: string,
    o: ConvergeOptions,
    act: (signal: AbortSignal) => Promise<{ start: VirtioMemDevice; requested: number }>,
  ): Promise<VirtioMemDevice> {
    const events = this.qmp.events(['MEMORY_DEVICE_SIZE_CHANGE']);
    const timeoutMs = o.timeoutMs ?? this.#timeoutMs;
    const dl = deadline(what, timeoutMs, o.signal);
    const mine = async (): Promise<void> => {
      for (;;) {
        const e = await nextEvent(events, dl.signal);
        if (e.data.id === id || e.data['qom-path'] === `/machine/peripheral/${id}`) return;
      }
    };
    let target: { start: VirtioMemDevice; requested: number } | undefined;
    let dev: VirtioMemDevice | undefined;
    try {
      target = await act(dl.signal);
      // One pending read across iterations, so no event is swallowed by an abandoned reader.
      let next = mine();
      next.catch(() => undefined); // may be left pending when we return
      for (;;) {
        dev = await this.#virtioMem(id);
        if (dev.size === target.requested) return dev;
        const nap = sleep(o.pollMs ?? 100, dl.signal);
        const woke = await Promise.race([next.then(() => true), nap.then(() => false)]).finally(() => nap.cancel());
        if (woke) (next = mine()).catch(() => undefined);
      }
    } catch (e) {
      if (e instanceof QmpTimeoutError && dl.signal.reason === e && target) {
        const { start, requested } = target;
        const size = dev?.size ?? start.size;
        throw new HotplugTimeoutError(what, timeoutMs, { size, startSize: start.size, requestedSize: requested },
          `plugged ${formatSize(size)} of ${formatSize(requested)} requested; ${convergeHint(start.size, size, requested)}`);
      }
      throw e;
    } finally {
      dl.done();
      events.close();
    }
  }

  async #virtioMem(id: string): Promise<VirtioMemDevice> {
    const d = (await this.listMemoryDevices()).find((x): x is VirtioMemDevice => x.type === 'virtio-mem' && x.id === id);
    if (!d) throw new HotplugError('NO_SUCH_DEVICE', `${id}: no such virtio-mem device`);
    return d;
  }

  /** object-add then device_add; object-del the backend again when device_add fails. */
  async #applyAdd(plan: Plan): Promise<void> {
    const [obj, dev] = plan.steps as [QmpStep, QmpStep];
    await this.qmp.execute(obj.execute, obj.arguments);
    try {
      await this.qmp.execute(dev.execute, dev.arguments);
    } catch (e) {
      try {
        await this.qmp.execute('object-del', { id: plan.memdev });
      } catch (rollback) {
        throw new HotplugRollbackError(e, plan.memdev, rollback);
      }
      throw e;
    }
  }

  /** Arm a wait for the guest's _OST on `id` for `source`; resolves with its status. */
  #waitOst(id: string, source: number, o: WaitOptions): { status: Promise<number>; cancel(): void } {
    const ac = new AbortController();
    const dl = deadline(`${id}: wait for the guest's _OST`, o.timeoutMs ?? this.#timeoutMs, o.signal);
    const onDl = (): void => ac.abort(dl.signal.reason);
    dl.signal.addEventListener('abort', onDl, { once: true });
    const status = this.qmp
      .waitForEvent('ACPI_DEVICE_OST', {
        signal: ac.signal,
        timeoutMs: Infinity,
        predicate: (e) => {
          const info = e.data.info as Record<string, unknown> | undefined;
          return info?.device === id && num(info.source) === source;
        },
      })
      .then((e) => num((e.data.info as Record<string, unknown>).status))
      .finally(() => dl.done());
    status.catch(() => undefined); // awaited later, or cancelled
    return { status, cancel: () => ac.abort(new MemhpError('cancelled')) };
  }

  #checkAligned(what: string, v: number, unit: number): void {
    if (v === 0 && what === 'size') throw new HotplugError('BAD_ARGUMENT', 'size must not be 0');
    if (v % unit !== 0) {
      throw new HotplugError('UNALIGNED',
        unit === this.blockSize
          ? `${what} ${formatSize(v)} (0x${v.toString(16)}) is not a multiple of the guest memory block size ${formatSize(unit)}; the guest would reject it`
          : `${what} ${formatSize(v)} (0x${v.toString(16)}) is not a multiple of ${formatSize(unit)}`);
    }
  }

  #checkHeadroom(id: string, size: number, l: MachineLimits): void {
    if (l.maxMemory === undefined) return;
    const free = l.maxMemory - l.baseMemory - l.usedMemory;
    if (size > free) {
      throw new HotplugError('NO_HEADROOM',
        `${id}: ${formatSize(size)} does not fit under maxmem ${formatSize(l.maxMemory)} (boot ${formatSize(l.baseMemory)}, plugged ${formatSize(l.usedMemory)}, free ${formatSize(free)})`);
    }
  }

  #checkNode(id: string, node: number | undefined, l: MachineLimits): void {
    if (node === undefined) return;
    if (!Number.isInteger(node) || node < 0 || (l.nodes !== undefined && node >= l.nodes)) {
      throw new HotplugError('NO_SUCH_NODE', `${id}: node ${node} does not exist (the machine has ${l.nodes ?? '?'} nodes)`);
    }
  }

  /** The device id (given or the first free `<prefix>N`) and backend id, both unused. */
  async #ids(id: string | undefined, memdev: string | undefined, prefix: string): Promise<{ id: string; memdev: string }> {
    const names = async (path: string): Promise<Set<string>> =>
      new Set((await this.qmp.execute<{ name: string }[]>('qom-list', { path })).map((p) => p.name));
    const [devices, objects] = await Promise.all([names('/machine/peripheral'), names('/objects')]);
    let n = 0;
    const pick = id ?? (() => { while (devices.has(`${prefix}${n}`) || objects.has(`mem-${prefix}${n}`)) n++; return `${prefix}${n}`; })();
    if (devices.has(pick)) throw new HotplugError('ID_IN_USE', `device id ${pick} is already in use`);
    const mem = memdev ?? `mem-${pick}`;
    if (objects.has(mem)) throw new HotplugError('ID_IN_USE', `object id ${mem} is already in use`);
    return { id: pick, memdev: mem };
  }
}
