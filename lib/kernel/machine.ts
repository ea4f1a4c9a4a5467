/**
 * `Machine`: a simulated x86_64 Linux kernel on QEMU's pc machine, as users touch it (docs/architecture.md#machine,
 * docs/architecture.md#stable-surface): boot memory laid out as QEMU does, memory blocks, zones and nodes, the hotplug
 * flows per kernel profile, sysfs/debugfs/procfs, ACPI pc-dimm plug and eject, error-injection modules,
 * notifier chains, locks with the validator, and the trace. Over 400 lines because it is the one façade
 * a user holds and QEMU's side of the machine (boot layout, ACPI plug and eject, modules); the kernel's
 * flows live in memory-block.ts and hotplug.ts. The ACPI memory-device driver (acpi_memhotplug.c) is
 * the part that could move out next.
 */
import { KernelError, MemhpError } from '../errors.js';
import { PAGES_PER_SECTION, ZONE_TYPES, type AllocRequest, type ZoneType } from '../native/constants.js';
import { PhysMem } from '../native/physmem.js';
import { kernelCmdline, resolveMachineSpec, type MachineSpec } from '../machine-spec.js';
import { sizeBytes, type Size } from '../size.js';
import { FirmwareMemmap } from './firmware-memmap.js';
import { __addMemory, addMemory, blocksOf, memmapOnMemoryPages, offlineAndRemoveMemory, removeMemory, tryRemoveMemory, type HotplugContext, type HotplugParams, type IomemResource, type NodeStates, type OnlinePolicy } from './hotplug.js';
import { MemoryNotifierErrorInject } from './inject.js';
import { kstrtoint } from './kstrtox.js';
import { AMD_HT_START, cpuProximity, DEFAULT_BOOT_ALLOCATIONS, memblockReserved, pcLayout, sratNodeIds, splitAtZones, subtractRanges, type BootAllocations, type PcLayout } from './layout.js';
import { Lockdep } from './lockdep.js';
import { HotplugLocks } from './locks.js';
import { deviceOffline, deviceOnline, memoryDevInit, onlineTypeFromStr, type MemoryBlock, type MemoryGroup } from './memory-block.js';
import { memoryNotifierChain, nodeNotifierChain, type NotifierChain } from './notifier.js';
import { getProfile, kstrtobool, parseMemmapOnMemory, type KernelProfile, type KernelSpec, type MemmapOnMemory, type MemoryHotplugParam, type MemoryNotify, type NodeNotify, type OnlineType } from './profile.js';
import { buildSysfs } from './machine-sysfs.js';
import { acpiSlotName } from './device-sysfs.js';
import { StaticDir, type Sysfs } from './sysfs.js';
import type { DimmSpec, HotplugTarget } from './target.js';
import { runTask } from './task.js';
import { Trace } from './trace.js';

/** One NUMA node's boot memory. */
export interface NodeSpec {
  /** Boot RAM on the node, a multiple of 128 MiB (0 for a memoryless node). */
  memory: Size;
}

/**
 * How to build a {@link Machine}: the {@link MachineSpec} every interface takes (defaults in
 * {@link MACHINE_DEFAULTS}, checked as a scenario's machine is), plus what only a simulation can set.
 */
export interface MachineOptions extends Omit<MachineSpec, 'nodes'> {
  /** '6.1' | '6.12' | '7.2' | 'latest' (default), or a release string such as '6.12.117+deb13-amd64'. */
  kernel?: KernelSpec | string;
  /** Node count (boot RAM on node 0, the rest memoryless), or each node's memory (then `memory` is ignored). */
  nodes?: number | NodeSpec[];
  /** `auto_online_blocks` at boot (overrides the command line); default: the profile's Debian default. */
  autoOnline?: OnlineType;
  /** `memory_hotplug.online_policy`; default 'contig-zones'. */
  onlinePolicy?: OnlinePolicy;
  /** `memory_hotplug.auto_movable_ratio`; default 301. */
  autoMovableRatio?: number;
  /** `memory_hotplug.auto_movable_numa_aware`; default true. */
  autoMovableNumaAware?: boolean;
  /** `memory_hotplug.memmap_on_memory`; default false. */
  memmapOnMemory?: MemmapOnMemory;
  /** The `movable_node` boot option; default false. */
  movableNode?: boolean;
  /** What boot leaves allocated (memblock reservations, kernel allocations); `false` for none at all. */
  bootAllocations?: BootAllocations | false;
  /** Lock validator: report by throwing (`'strict'`) or as trace records (default). */
  lockdep?: 'strict' | 'record';
  /** Retries of an offline that makes no progress before it fails EINTR (default 100, 1 ms apart). */
  offlineRetries?: number;
}

/** A pc-dimm plugged into the machine. */
export interface Dimm {
  /** QEMU device id. */
  readonly id: string;
  /** DIMM slot. */
  readonly slot: number;
  /** Physical address (bytes). */
  readonly addr: number;
  /** Size in bytes. */
  readonly size: number;
  /** Its `node` property. */
  readonly node: number;
  /** The kernel's static memory group, once the kernel added it. */
  group: MemoryGroup | null;
}

/** A kernel module the machine can load. */
interface LoadedModule {
  readonly deps: readonly string[];
  unload(): Promise<void>;
}

const GiB = 2 ** 30;
/** The modules memhp models, with what each needs loaded first (its symbol dependencies). */
const MODULE_DEPS: Readonly<Record<string, readonly string[]>> = {
  notifier_error_inject: [],
  memory_notifier_error_inject: ['notifier_error_inject'],
};
/** _OST source of an eject the platform requested (QEMU's device_del): ACPI_NOTIFY_EJECT_REQUEST. */
const ACPI_NOTIFY_EJECT_REQUEST = 3;
/** _OST source of an eject the OS started itself (a write to the device's `eject`): ACPI_OST_EC_OSPM_EJECT. */
const ACPI_OST_EC_OSPM_EJECT = 0x103;

function bytes(s: Size, what: string): number {
  const n = sizeBytes(s);
  if (n === null) throw new KernelError('EINVAL', `${what}: not a size in bytes: ${String(s)}`);
  return n;
}

/** Boot options from the command line, as the kernel parses them (invalid values ignored or rejected as it does). */
function parseCmdline(profile: KernelProfile, words: readonly string[]): Partial<HotplugParams> {
  const out: { -readonly [K in keyof HotplugParams]?: HotplugParams[K] } = {};
  for (const w of words) {
    const eq = w.indexOf('=');
    const key = eq < 0 ? w : w.slice(0, eq);
    const val = eq < 0 ? null : w.slice(eq + 1);
    // A parameter the kernel does not have is unknown: ignored (passed on to init).
    if (key.startsWith('memory_hotplug.') && !profile.memoryHotplugParams.includes(key.slice('memory_hotplug.'.length) as MemoryHotplugParam)) continue;
    try {
      if (key === 'memhp_default_state' && val !== null) out.autoOnline = onlineTypeFromStr(val);
      else if (key === 'movable_node') out.movableNode = true;
      else if (key === 'memory_hotplug.online_policy' && (val === 'contig-zones' || val === 'auto-movable')) out.onlinePolicy = val;
      else if (key === 'memory_hotplug.auto_movable_ratio' && val !== null && /^\d+$/.test(val)) out.autoMovableRatio = Number(val);
      else if (key === 'memory_hotplug.auto_movable_numa_aware') out.autoMovableNumaAware = val === null ? true : kstrtobool(profile, val);
      else if (key === 'memory_hotplug.memmap_on_memory') out.memmapOnMemory = parseMemmapOnMemory(profile, val);
    } catch {
      // The kernel ignores a bad value (memhp_default_state) or leaves the parameter at its default.
    }
  }
  return out;
}

/** A simulated machine. Create it with {@link Machine.create}. */
export class Machine implements HotplugTarget, HotplugContext {
  /** The kernel profile the machine runs. */
  readonly kernel: KernelProfile;
  /** Notifier, uevent and QMP-event records (and lockdep reports), in order. */
  readonly trace = new Trace();
  /** Kernel log lines memhp produces (pr_info/pr_warn of the modelled code paths). */
  readonly dmesg: string[] = [];
  /** The lock validator every lock reports to. */
  readonly lockdep: Lockdep;
  /** device_hotplug_lock, mem_hotplug_lock, cpu_hotplug_lock. */
  readonly locks: HotplugLocks;
  /** The memory notifier chain (`register_memory_notifier`). */
  readonly memoryNotifier: NotifierChain<MemoryNotify>;
  /** The node notifier chain (7.x; registering on other kernels throws ENOSYS). */
  readonly nodeNotifier: NotifierChain<NodeNotify>;
  /** Page-frame state and the buddy allocator. */
  readonly physmem = new PhysMem();
  /** sysfs, debugfs and procfs. */
  readonly sysfs: Sysfs;
  /** The boot memory map. */
  readonly layout: PcLayout;
  /** Pages per memory block. */
  readonly blockPages: number;
  /** Hotplug tunables (writable ones change through sysfs). */
  readonly params: HotplugParams;
  /** Node state masks. */
  readonly nodes: NodeStates;
  /** Memory block devices by id. */
  readonly blocks = new Map<number, MemoryBlock>();
  /** /proc/iomem resources memhp models. */
  readonly resources: IomemResource[] = [];
  /** /sys/firmware/memmap entries: raw e820 plus one per System RAM add, numbered as created. */
  readonly firmwareMemmap = new FirmwareMemmap();
  /** present_early_pages per `nid:zone`. */
  readonly earlyPresent = new Map<string, number>();
  /** See {@link MachineOptions.offlineRetries}. */
  readonly offlineRetries: number;
  /** DIMM slots. */
  readonly slots: number;
  /** vCPUs (`nr_cpu_ids`). */
  readonly cpus: number;
  /** QEMU's NUMA nodes (`-numa node`): what a DIMM's `node` property may name. */
  readonly numaNodes: number;
  /**
   * The kernel's node id of each QEMU node (its proximity domain), undefined for one the firmware
   * tables never name (see `sratNodeIds` in layout.ts). Kernel node ids are 0..`nodes.possible`-1.
   */
  readonly nidOfPxm: readonly (number | undefined)[];
  /** The kernel node of each vCPU. */
  readonly #cpuNids: readonly number[];
  /** `/sys/firmware/acpi/hotplug/<profile>/enabled`: whether the ACPI scan handlers take hotplug events. */
  readonly acpiHotplugEnabled = { memory: true, pci_root: true, processor: true };
  /** Plugged DIMMs by id. */
  readonly dimms = new Map<string, Dimm>();
  /** Loaded modules by name (dashes as underscores). */
  readonly modules = new Map<string, LoadedModule>();
  /** The loaded error injector, if any (debugfs `notifier-error-inject/memory`). */
  errorInject: MemoryNotifierErrorInject | null = null;
  /** @internal Debugfs root (`/sys/kernel/debug`). */
  readonly debugfs = new StaticDir();
  /** Called when block devices come and go, so sysfs can cache per-block directories (part of HotplugContext). */
  onBlocksChanged: (mem: MemoryBlock, added: boolean) => void = () => undefined;
  /** Work started by a sysfs write that returned before it finished (acpi_eject_store). */
  readonly #background = new Set<Promise<void>>();
  #nextGroup = 0;
  #closed = false;

  private constructor(opts: MachineOptions) {
    this.kernel = getProfile(opts.kernel ?? 'latest');
    const strict = opts.lockdep === 'strict';
    this.lockdep = new Lockdep({ strict, trace: this.trace });
    this.locks = new HotplugLocks({ lockdep: this.lockdep });
    this.memoryNotifier = memoryNotifierChain(this.kernel, { trace: this.trace, lockdep: this.lockdep });
    this.nodeNotifier = nodeNotifierChain(this.kernel, { trace: this.trace, lockdep: this.lockdep });
    const perNode = Array.isArray(opts.nodes) ? opts.nodes : undefined;
    const spec = resolveMachineSpec({ ...opts, nodes: Array.isArray(opts.nodes) ? opts.nodes.length : opts.nodes });
    const nodeMemory = perNode ? perNode.map((n, i) => bytes(n.memory, `nodes[${i}].memory`)) : [bytes(spec.memory, 'memory'), ...Array.from({ length: spec.nodes - 1 }, () => 0)];
    nodeMemory.forEach((m, i) => {
      if (m % (128 * 2 ** 20)) throw new KernelError('EINVAL', `nodes[${i}].memory: a multiple of 128 MiB, got ${m} bytes`);
    });
    const ram = nodeMemory.reduce((a, b) => a + b, 0);
    this.slots = spec.slots;
    this.cpus = spec.cpus ?? nodeMemory.length;
    const maxMemory = bytes(spec.maxMemory, 'maxMemory');
    this.layout = pcLayout(nodeMemory, maxMemory, this.slots);
    this.blockPages = this.layout.blockSize / 4096;
    // Words as given (checked above) go to the kernel's parser as they are: a bare
    // `memory_hotplug.memmap_on_memory` is true to 6.1's bool and no value at all to 6.12's.
    const cmd = parseCmdline(this.kernel, Array.isArray(opts.cmdline) ? (opts.cmdline as readonly string[]) : kernelCmdline(spec.cmdline));
    this.params = {
      autoOnline: opts.autoOnline ?? cmd.autoOnline ?? this.kernel.defaultOnlineType,
      onlinePolicy: opts.onlinePolicy ?? cmd.onlinePolicy ?? 'contig-zones',
      autoMovableRatio: opts.autoMovableRatio ?? cmd.autoMovableRatio ?? 301,
      autoMovableNumaAware: opts.autoMovableNumaAware ?? cmd.autoMovableNumaAware ?? true,
      memmapOnMemory: opts.memmapOnMemory ?? cmd.memmapOnMemory ?? false,
      movableNode: opts.movableNode ?? cmd.movableNode ?? false,
    };
    if (this.params.memmapOnMemory === 'force' && !this.kernel.memmapOnMemoryForce) throw new KernelError('EINVAL', `memmap_on_memory=force needs kernel 6.12 or later`);
    // Options of parameters the kernel does not have (5.10: none of mm/memory_hotplug.c's) are refused, not ignored.
    const has = (p: MemoryHotplugParam) => this.kernel.memoryHotplugParams.includes(p);
    if (this.params.memmapOnMemory !== false && !has('memmap_on_memory')) throw new KernelError('EINVAL', `memmap_on_memory: kernel ${this.kernel.name} has no such parameter`);
    if (this.params.onlinePolicy !== 'contig-zones' && !has('online_policy')) throw new KernelError('EINVAL', `online_policy: kernel ${this.kernel.name} has no such parameter`);
    this.numaNodes = nodeMemory.length;
    // QEMU's pc machine has a device-memory window when maxmem is above the boot RAM.
    this.nidOfPxm = sratNodeIds(nodeMemory, this.cpus, maxMemory > ram);
    this.#cpuNids = cpuProximity(this.cpus, nodeMemory.length).map((pxm) => this.nidOfPxm[pxm]!);
    // x86 brings a node online at boot when it has memory (numa_register_memblks) or a CPU
    // (init_cpu_to_node → init_memory_less_node); one with neither stays offline, without a sysfs
    // directory, until memory is added to it (guests of 6.1, 6.12 and 7.2 show node/online "0" then).
    this.nodes = { possible: this.nidOfPxm.filter((n) => n !== undefined).length, online: new Set(), memory: new Set(), normal: new Set() };
    nodeMemory.forEach((m, pxm) => m > 0 && this.nodes.online.add(this.nidOfPxm[pxm]!));
    for (const nid of this.#cpuNids) this.nodes.online.add(nid);
    this.offlineRetries = opts.offlineRetries ?? 100;
    this.#boot(opts.bootAllocations === false ? null : { ...DEFAULT_BOOT_ALLOCATIONS, ...opts.bootAllocations });
    this.sysfs = buildSysfs(this);
  }

  /** Boot a machine: memory laid out, zones initialised, boot allocations made, blocks online. */
  static async create(opts: MachineOptions = {}): Promise<Machine> {
    return new Machine(opts);
  }

  // Boot: sections, zones and memblock_free_all, then the kernel's own allocations, then the block devices.
  #boot(alloc: Required<BootAllocations> | null): void {
    const pm = this.physmem;
    const L = this.layout;
    for (const e of L.e820) this.resources.push({ start: e.start, end: e.end, name: e.type, hotplug: false });
    // QEMU >= 7.1 reserves the AMD HyperTransport hole below 1 TiB for AMD-vendor vCPUs (TCG's qemu64).
    this.resources.push({ start: AMD_HT_START, end: 2 ** 40, name: 'Reserved', hotplug: false });
    this.resources.sort((a, b) => a.start - b.start);
    const raw = [{ start: 0, end: 0x9fc00, type: 'System RAM' }, ...L.e820.slice(2).map((e) => ({ ...e })), { start: AMD_HT_START, end: 2 ** 40, type: 'Reserved' }];
    for (const e of raw) this.firmwareMemmap.addEntry(e);
    const reserved = alloc ? memblockReserved(L, alloc) : [{ start: 0, end: 0x100 }];
    const sections = new Map<number, number>();
    L.nodeRam.forEach((ranges, pxm) => {
      const nid = this.nidOfPxm[pxm]!;
      for (const r of ranges) for (let s = Math.floor(r.start / PAGES_PER_SECTION); s * PAGES_PER_SECTION < r.end; s++) sections.set(s, nid);
    });
    for (const [s, nid] of sections) pm.addSections(s * PAGES_PER_SECTION, PAGES_PER_SECTION, nid);
    const free: { start: number; end: number }[] = [];
    L.nodeRam.forEach((ranges, pxm) => {
      const nid = this.nidOfPxm[pxm]!;
      for (const piece of splitAtZones(ranges)) {
        const nr = piece.end - piece.start;
        pm.moveRangeToZone(piece.start, nr, nid, piece.zone, { reserved: true, isolate: false, migratetype: 'Movable' });
        pm.adjustPresentPages(piece.start, nr);
        const key = `${nid}:${piece.zone}`;
        this.earlyPresent.set(key, (this.earlyPresent.get(key) ?? 0) + nr);
        free.push(...subtractRanges([piece], reserved));
      }
      if (ranges.length) {
        this.nodes.memory.add(nid);
        this.nodes.normal.add(nid);
      }
    });
    // memblock_free_all frees to the tail of the free lists, so the lowest pages are handed out first;
    // freeing from the top down onto LIFO lists gives the same order.
    const pieces = free.flatMap((f) => {
      const out: { start: number; end: number }[] = [];
      for (let s = f.start; s < f.end; s = (Math.floor(s / PAGES_PER_SECTION) + 1) * PAGES_PER_SECTION)
        out.push({ start: s, end: Math.min(f.end, (Math.floor(s / PAGES_PER_SECTION) + 1) * PAGES_PER_SECTION) });
      return out;
    });
    pieces.sort((a, b) => b.start - a.start);
    for (const f of pieces) pm.onlinePagesRange(f.start, f.end - f.start, false);
    for (const s of sections.keys()) pm.markSectionsOnline(s * PAGES_PER_SECTION, PAGES_PER_SECTION);
    if (alloc) {
      pm.alloc({ count: alloc.unmovablePages, kind: 'unmovable' });
      pm.alloc({ count: alloc.reclaimablePages, kind: 'reclaimable' });
      pm.alloc({ count: alloc.movablePages, kind: 'movable' });
    }
    memoryDevInit(this, new Map([...sections].map(([sec, nid]) => [sec * PAGES_PER_SECTION, nid])));
  }

  /** The memory block size in bytes. */
  get blockSize(): number {
    return this.layout.blockSize;
  }

  /** Run `fn` as its own task (a user process, an ACPI worker) so locks and the validator tell tasks apart. */
  task<T>(name: string, fn: () => Promise<T>): Promise<T> {
    this.#checkOpen();
    return runTask(name, fn);
  }

  /**
   * `add_memory(nid, start, size)`: lock_device_hotplug + __add_memory (System RAM, no group). Returns
   * once the blocks exist and auto-online ran. E2BIG / EEXIST / EINVAL as the kernel returns them.
   */
  async addMemory(nid: number, start: bigint | number, size: bigint | number): Promise<void> {
    await this.task('add_memory', () => addMemory(this, nid, Number(start), Number(size)));
  }

  /** `remove_memory(start, size)`: EBUSY while a block of the range is online; EINVAL for a range that is not added memory. */
  removeMemory(start: bigint | number, size: bigint | number): Promise<void> {
    return this.task('remove_memory', () => removeMemory(this, Number(start), Number(size)));
  }

  /** `offline_and_remove_memory(start, size)`: offline all blocks (re-online them on failure), then remove. */
  offlineAndRemoveMemory(start: bigint | number, size: bigint | number): Promise<void> {
    return this.task('offline_and_remove_memory', () => offlineAndRemoveMemory(this, Number(start), Number(size)));
  }

  /** Where QEMU would put a DIMM of `size`: the first gap in the device-memory window (2 MiB aligned). */
  dimmAddress(size: number): number | null {
    const { base, size: window } = this.layout.deviceMemory;
    const used = [...this.dimms.values()].sort((a, b) => a.addr - b.addr);
    let addr = base;
    for (const d of used) {
      if (addr + size <= d.addr) break;
      addr = Math.max(addr, Math.ceil((d.addr + d.size) / (2 * 2 ** 20)) * 2 * 2 ** 20);
    }
    return addr + size <= base + window ? addr : null;
  }

  #qmpEvent(event: string, data: Record<string, string | number | Record<string, string | number>>): void {
    this.trace.add({ type: 'qmp-event', event, data });
  }

  /**
   * Plug a pc-dimm as QEMU and the guest's ACPI driver do: QEMU places it (first fit from the window
   * base) and raises the event; the kernel registers a static memory group, runs __add_memory under
   * device_hotplug_lock (auto-online per `auto_online_blocks`), binds the blocks and reports _OST.
   * QEMU-side refusals: EEXIST (id in use), ENOSPC (no slot or no room below maxmem), EINVAL (size
   * not a multiple of 2 MiB, no such node). A kernel refusal (a range not aligned to the block size,
   * scenario plug-refused) does not reject: as on a guest, the DIMM is plugged without memory, _OST says
   * success and only dmesg tells; ejecting it later succeeds.
   */
  async plugDimm(d: DimmSpec): Promise<void> {
    this.#checkOpen();
    const size = bytes(d.size, 'size');
    const node = d.node ?? 0;
    // QEMU's order (what the guest harness checks before device_add): the size, the id, then
    // memory_device_pre_plug's slot and room, and only then pc_dimm_realize's node.
    if (!size || size % (2 * 2 ** 20)) throw new KernelError('EINVAL', `${d.id}: size must be a non-zero multiple of 2 MiB`);
    if (this.dimms.has(d.id)) throw new KernelError('EEXIST', `device id '${d.id}' is already in use`);
    const used = new Set([...this.dimms.values()].map((x) => x.slot));
    let slot = 0;
    while (used.has(slot)) slot++;
    if (slot >= this.slots) throw new KernelError('ENOSPC', `${d.id}: no free DIMM slot (${this.slots} in use)`);
    const plugged = [...this.dimms.values()].reduce((a, x) => a + x.size, 0);
    const ram = this.layout.lowmem + this.layout.highmem;
    const maxmem = this.layout.deviceMemory.size - this.slots * GiB + ram;
    const addr = this.dimmAddress(size);
    if (ram + plugged + size > maxmem || addr === null) throw new KernelError('ENOSPC', `${d.id}: not enough room below maxmem`);
    if (!Number.isInteger(node) || node < 0 || node >= this.numaNodes) throw new KernelError('EINVAL', `${d.id}: node ${node} does not exist`);
    // acpi_memory_device_add: the node of the DIMM's _PXM, else (a proximity domain the SRAT never
    // named) memory_add_physaddr_to_nid, whose fallback for an address outside boot RAM is the node of
    // the first memory block: guests add such a DIMM to node 0.
    const nid = this.nidOfPxm[node] ?? this.nidOfPxm[this.layout.nodeRam.findIndex((r) => r.length > 0)]!;
    const dimm: Dimm = { id: d.id, slot, addr, size, node, group: null };
    this.dimms.set(d.id, dimm);
    await this.task('kworker/u8:0-kacpi_hotplug', async () => {
      await this.locks.lockDeviceHotplug('acpi_device_hotplug');
      try {
        // acpi_memory_device_add: a static group, __add_memory(mgid, …, MHP_NID_IS_MGID | MEMMAP hint).
        const group: MemoryGroup = { id: this.#nextGroup++, nid, maxPages: size / 4096, presentKernelPages: 0, presentMovablePages: 0 };
        // 6.1's driver asks only when mhp_supports_memmap_on_memory(size) holds: one block, parameter on.
        const hint = this.kernel.memmapOnMemoryAdd === 'per-block' || (size === this.blockSize && memmapOnMemoryPages(this) > 0);
        const pnp = acpiSlotName(slot);
        try {
          await __addMemory(this, nid, addr, size, { group, memmapOnMemory: hint });
        } catch (e) {
          // acpi_memory_device_add fails, but acpi_bus_attach ignores a handler's failure: the device
          // stays, without memory, and _OST still reports success (seen on 6.1, 6.12 and 7.2 guests).
          this.dmesg.push(e instanceof Error ? e.message : String(e), `acpi ${pnp}: add_memory failed`, `acpi ${pnp}: acpi_memory_enable_device() error`);
          return;
        }
        dimm.group = group;
        for (const b of blocksOf(this, addr, size)) b.firmwareNode = pnp;
      } finally {
        this.locks.unlockDeviceHotplug();
        this.#qmpEvent('ACPI_DEVICE_OST', { info: { device: d.id, slot: String(slot), 'slot-type': 'DIMM', source: 1, status: 0 } });
      }
    });
  }

  /** Eject a pc-dimm (QEMU's `device_del`): the guest's ACPI driver runs {@link #eject}; a refusal rejects EBUSY with _OST 0x82. */
  async unplugDimm(id: string): Promise<void> {
    this.#checkOpen();
    const dimm = this.dimms.get(id);
    if (!dimm) throw new KernelError('ENODEV', `Device '${id}' not found`);
    await this.#eject(dimm, ACPI_NOTIFY_EJECT_REQUEST);
  }

  /**
   * A write to the `eject` file of a DIMM slot's ACPI device (acpi_eject_store): '1' first, a slot
   * whose memory the driver holds, memory hotplug enabled; then the eject is scheduled and the write
   * returns at once, as on a guest: the eject runs in the background (its _OST source is the OSPM's).
   */
  acpiEjectStore(slot: number, value: string): void {
    this.#checkOpen();
    if (!value.length || value[0] !== '1') throw new KernelError('EINVAL', `eject: ${JSON.stringify(value)}`);
    const dimm = [...this.dimms.values()].find((d) => d.slot === slot);
    if (!dimm || !dimm.group || !this.acpiHotplugEnabled.memory) throw new KernelError('ENODEV', `eject: slot ${slot} has no ejectable device`);
    const job = this.#eject(dimm, ACPI_OST_EC_OSPM_EJECT).catch(() => undefined);
    this.#background.add(job);
    void job.then(() => this.#background.delete(job));
  }

  /**
   * acpi_scan_hot_remove for a DIMM, as the guest's ACPI driver runs it: offline its blocks in ascending
   * order (a second pass retries failures; blocks offlined meanwhile are re-onlined with the default
   * policy on failure → EBUSY, _OST 0x82, the DIMM stays), else remove the memory, _EJ0 (QEMU:
   * DEVICE_DELETED), and the final _OST with the request's source.
   */
  async #eject(dimm: Dimm, source: number): Promise<void> {
    const id = dimm.id;
    const ost = (status: number, withDevice = true, src = source) =>
      this.#qmpEvent('ACPI_DEVICE_OST', { info: { ...(withDevice ? { device: id } : {}), slot: String(dimm.slot), 'slot-type': 'DIMM', source: src, status } });
    await this.task('kworker/u8:0-kacpi_hotplug', async () => {
      await this.locks.lockDeviceHotplug('acpi_device_hotplug');
      try {
        // acpi_generic_hotplug_event: with the memory handler's hotplug disabled (/sys/firmware/acpi/
        // hotplug/memory/enabled = 0) an eject is refused at once, -EPERM → _OST 0x80 (not supported).
        if (!this.acpiHotplugEnabled.memory) {
          this.dmesg.push(`acpi ${acpiSlotName(dimm.slot)}: Eject disabled`);
          ost(0x80);
          throw new KernelError('EPERM', `${id}: guest refused the unplug: memory hotplug is disabled (/sys/firmware/acpi/hotplug/memory/enabled)`, { details: { ostStatus: 0x80 } });
        }
        // "Eject in progress" is reported for the eject request itself.
        ost(0x84, true, ACPI_NOTIFY_EJECT_REQUEST);
        const blocks = dimm.group ? blocksOf(this, dimm.addr, dimm.size) : [];
        // acpi_scan_try_to_offline: pass 1 over every block, pass 2 over the failures.
        const putOnline = new Set<MemoryBlock>();
        const failed: MemoryBlock[] = [];
        for (const mem of blocks) {
          try {
            if ((await deviceOffline(this, mem)) === 0) putOnline.add(mem);
          } catch {
            failed.push(mem);
          }
        }
        for (const mem of failed) {
          try {
            if ((await deviceOffline(this, mem)) === 0) putOnline.add(mem);
          } catch (e) {
            this.dmesg.push(`${mem.name}: Offline failed.`);
            for (const b of blocks) if (putOnline.has(b)) await deviceOnline(this, b).catch(() => 0);
            ost(0x82);
            throw new KernelError('EBUSY', `${id}: guest refused the unplug: ${mem.name} cannot be offlined (${e instanceof Error ? e.message : String(e)})`, { details: { ostStatus: 0x82 }, cause: e });
          }
        }
        if (dimm.group) await tryRemoveMemory(this, dimm.addr, dimm.size);
        this.dimms.delete(id);
        this.#qmpEvent('DEVICE_DELETED', { device: id, path: `/machine/peripheral/${id}` });
        ost(0, false);
      } finally {
        this.locks.unlockDeviceHotplug();
      }
    });
  }

  /**
   * Load a module as modprobe does: its dependencies first (`memory-notifier-error-inject` needs
   * `notifier-error-inject`), then the module ({@link insmod}). A dependency loaded here stays loaded
   * if the module then fails to load. EEXIST if loaded, ENOENT for a module memhp lacks, EINVAL for a
   * bad parameter value.
   */
  async loadModule(name: string, params: Record<string, string | number> = {}): Promise<void> {
    this.#checkOpen();
    const mod = name.replaceAll('-', '_');
    for (const dep of MODULE_DEPS[mod] ?? []) if (!this.modules.has(dep)) await this.insmod(dep);
    await this.insmod(name, params);
  }

  /**
   * Load one module as insmod(8) does (finit_module): its dependencies must be loaded (else ENOENT,
   * "Unknown symbol in module"); a parameter the module does not have is ignored, as the kernel does.
   * `memory-notifier-error-inject` (with `{priority}`) creates its debugfs files.
   */
  async insmod(name: string, params: Record<string, string | number> = {}): Promise<void> {
    this.#checkOpen();
    const mod = name.replaceAll('-', '_');
    if (this.modules.has(mod)) throw new KernelError('EEXIST', `module ${mod} is already loaded`);
    if (!(mod in MODULE_DEPS)) throw new KernelError('ENOENT', `Module ${name} not found`);
    const missing = MODULE_DEPS[mod]!.filter((d) => !this.modules.has(d));
    if (missing.length) throw new KernelError('ENOENT', `${mod}: Unknown symbol in module (needs ${missing.join(', ')})`);
    if (mod === 'notifier_error_inject') {
      this.debugfs.dir('notifier-error-inject');
      this.modules.set(mod, { deps: [], unload: async () => void this.debugfs.entries.delete('notifier-error-inject') });
      return;
    }
    let priority = 0;
    if (params.priority !== undefined) {
      try {
        priority = kstrtoint(String(params.priority));
      } catch (e) {
        throw new KernelError(e instanceof KernelError ? e.code : 'EINVAL', `${mod}: invalid value '${params.priority}' for parameter 'priority'`);
      }
    }
    const inj = new MemoryNotifierErrorInject(this.kernel, this.memoryNotifier, priority, (l) => this.dmesg.push(l));
    await inj.block.registered;
    this.debugfs.dir('notifier-error-inject').set('memory', inj.dir);
    this.errorInject = inj;
    this.modules.set(mod, {
      deps: ['notifier_error_inject'],
      unload: async () => {
        await inj.unload();
        this.debugfs.dir('notifier-error-inject').entries.delete('memory');
        this.errorInject = null;
      },
    });
  }

  /** Unload a module: ENOENT if not loaded, EAGAIN while another module depends on it. */
  async unloadModule(name: string): Promise<void> {
    const mod = name.replaceAll('-', '_');
    const m = this.modules.get(mod);
    if (!m) throw new KernelError('ENOENT', `module ${mod} is not loaded`);
    for (const [other, o] of this.modules) if (o.deps.includes(mod)) throw new KernelError('EAGAIN', `module ${mod} is in use by ${other}`);
    await m.unload();
    this.modules.delete(mod);
  }

  /** Allocate pages as a workload would (see {@link PhysMem.alloc}); returns the head pfns. */
  alloc(req: AllocRequest): Float64Array {
    return this.physmem.alloc(req);
  }

  /** Free pages by head pfn. */
  free(pfns: Float64Array | readonly number[]): void {
    this.physmem.free(pfns);
  }

  /** Pin movable pages (long-term GUP): they block offline until unpinned. */
  pin(pfns: Float64Array | readonly number[]): void {
    this.physmem.pin(pfns);
  }

  /** Unpin pages. */
  unpin(pfns: Float64Array | readonly number[]): void {
    this.physmem.unpin(pfns);
  }

  /**
   * memory_failure on a free page: it leaves the buddy as HWPoison and (6.2+) its block's nr_hwpoison
   * grows, so a later online of that block fails EHWPOISON. EBUSY for a page in use, ENXIO for no page.
   */
  hwpoison(pfn: number): void {
    const mem = this.blocks.get(Math.floor(pfn / this.blockPages));
    if (!mem || !this.physmem.sectionInfo(pfn).present) throw new KernelError('ENXIO', `pfn 0x${pfn.toString(16)} is not a valid page`);
    this.physmem.hwpoison(pfn);
    mem.nrHwpoison++;
  }

  /** The block holding a physical address, or undefined. */
  blockAt(phys: bigint | number): MemoryBlock | undefined {
    return this.blocks.get(Math.floor(Number(phys) / this.blockSize));
  }

  /** Blocks in ascending id order. */
  sortedBlocks(): MemoryBlock[] {
    return [...this.blocks.values()].sort((a, b) => a.id - b.id);
  }

  /** Every invariant violation of the page state and of the model (empty when consistent). */
  checkInvariants(): string[] {
    const bad = this.physmem.checkInvariants();
    for (const mem of this.blocks.values()) {
      if (mem.state === 'going-offline') continue;
      if ((mem.state === 'offline') !== mem.devOffline) bad.push(`${mem.name}: state ${mem.state} but device offline=${mem.devOffline}`);
      if (mem.state === 'offline' && mem.zone) bad.push(`${mem.name}: offline but zone ${mem.zone}`);
      if (mem.state === 'online' && mem.zone) {
        const z = this.physmem.zoneCounters(mem.nid, mem.zone);
        // Boot blocks may end in a hole beyond the zone span (memory23 of a 4 GiB pc): only intersection holds there.
        const covered = z.spanned > 0 && (mem.early ? mem.startPfn < z.start + z.spanned && mem.startPfn + mem.nrPages > z.start : mem.startPfn >= z.start && mem.startPfn + mem.nrPages <= z.start + z.spanned);
        if (!covered) bad.push(`${mem.name}: online in ${mem.zone} outside the zone span`);
      }
    }
    for (let nid = 0; nid < this.nodes.possible; nid++) {
      const present = ZONE_TYPES.reduce((a, z) => a + this.physmem.zoneCounters(nid, z).present, 0);
      if ((present > 0) !== this.nodes.memory.has(nid)) bad.push(`node${nid}: present ${present} but N_MEMORY ${this.nodes.memory.has(nid)}`);
    }
    return bad;
  }

  #checkOpen(): void {
    if (this.#closed) throw new MemhpError('machine is closed');
  }

  /** The vCPUs on a node, as QEMU's pc machine assigns them (see {@link MachineOptions.cpus}). */
  cpusOfNode(nid: number): number[] {
    return this.#cpuNids.flatMap((n, c) => (n === nid ? [c] : []));
  }

  /** Waits for background work (an eject started through sysfs); later calls throw. */
  async close(): Promise<void> {
    await Promise.all(this.#background);
    this.#closed = true;
  }
}

