/**
 * drivers/base/memory.c, and the generic device online/offline core of drivers/base/core.c as far as
 * memory blocks use it: `struct memory_block`, memory_dev_init, create_memory_block_devices /
 * remove_memory_block_devices, the `state` and `online` stores, device_online / device_offline,
 * memory_subsys_online / _offline, memory_block_change_state, memory_block_online / _offline and
 * memory_notify. The page work behind them is mm/memory_hotplug.c (hotplug.ts), which calls back into
 * this file as the kernel's does (create_memory_block_devices, online_memory_block): the two modules
 * import each other, functions only.
 */
import { KernelError } from '../errors.js';
import { ZONE_TYPES, type ZoneType } from '../native/constants.js';
import { adjustPresentPageCount, offlinePages, onlinePages, zoneForPfnRange, type HotplugContext } from './hotplug.js';
import type { Mutex } from './locks.js';
import { notifierToErrno } from './notifier.js';
import { kstrtobool, memoryAction, memoryNotify as memoryNotifyArg, sysfsStreq, type MemoryActionName, type MemoryNotify, type OnlineType } from './profile.js';

/** `enum mmop`: the online types by their number (MMOP_OFFLINE 0 … MMOP_ONLINE_MOVABLE 3). */
export const MMOP: readonly OnlineType[] = ['offline', 'online', 'online_kernel', 'online_movable'];

/** What a block's `state` stores: MEM_GOING_OFFLINE only while an offline runs (no going-online state exists). */
export type BlockState = 'online' | 'offline' | 'going-offline';

/**
 * A memory group (`struct memory_group`): a static one per ACPI DIMM (max_pages = its size), with the
 * present pages of its blocks per zone kind, which the auto-movable policy reads.
 */
export interface MemoryGroup {
  /** The group id (`mgid`). */
  readonly id: number;
  /** The node all its memory belongs to. */
  readonly nid: number;
  /** Static group: the DIMM's size in pages. */
  readonly maxPages: number;
  /** Present pages onlined to ZONE_MOVABLE. */
  presentMovablePages: number;
  /** Present pages onlined to kernel zones. */
  presentKernelPages: number;
}

/** `struct memory_block` plus its `struct device` bits (offline flag, device lock). */
export class MemoryBlock {
  /** The block id: `memory<id>` in sysfs. */
  readonly id: number;
  /** First pfn. */
  readonly startPfn: number;
  /** Pages in the block (memory_block_size_bytes / PAGE_SIZE). */
  readonly nrPages: number;
  /** The node (a boot block spanning several keeps the last one seen). */
  nid: number;
  /** MEM_ONLINE / MEM_OFFLINE / MEM_GOING_OFFLINE. */
  state: BlockState;
  /** The MMOP type the next online uses; reset to offline after every online attempt. */
  onlineType: OnlineType = 'offline';
  /** The single zone managing the block, or null (offline, or boot memory spanning zones or nodes). */
  zone: ZoneType | null;
  /** Self-hosted memmap pages at the block start (memmap_on_memory), 0 without. */
  readonly nrVmemmapPages: number;
  /** The memory group (an ACPI DIMM), or null for boot memory. */
  readonly group: MemoryGroup | null;
  /** Hardware-poisoned pages in the block (`nr_hwpoison`, counted on 6.2+). */
  nrHwpoison = 0;
  /** Whether the block's sections are early (boot) sections. */
  readonly early: boolean;
  /** The generic device's offline flag (changed only by device_online / device_offline). */
  devOffline: boolean;
  /** `dev->mutex`. */
  readonly deviceLock: Mutex;
  /** The ACPI companion (`firmware_node`), e.g. 'PNP0C80:00', for DIMM blocks once bound. */
  firmwareNode: string | null = null;

  constructor(o: {
    id: number;
    nrPages: number;
    nid: number;
    state: 'online' | 'offline';
    zone: ZoneType | null;
    nrVmemmapPages: number;
    group: MemoryGroup | null;
    early: boolean;
    deviceLock: Mutex;
  }) {
    this.id = o.id;
    this.nrPages = o.nrPages;
    this.startPfn = o.id * o.nrPages;
    this.nid = o.nid;
    this.state = o.state;
    this.zone = o.zone;
    this.nrVmemmapPages = o.nrVmemmapPages;
    this.group = o.group;
    this.early = o.early;
    this.deviceLock = o.deviceLock;
    this.devOffline = o.state === 'offline';
  }

  /** `memory<id>`. */
  get name(): string {
    return `memory${this.id}`;
  }

  /** The uevent devpath: `/devices/system/memory/memory<id>`. */
  get devpath(): string {
    return `/devices/system/memory/${this.name}`;
  }
}

/** `mhp_online_type_from_str`: one of the four MMOP strings (sysfs_streq), else EINVAL. */
export function onlineTypeFromStr(s: string): OnlineType {
  const t = MMOP.find((x) => sysfsStreq(s, x));
  if (t === undefined) throw new KernelError('EINVAL', `invalid online type ${JSON.stringify(s)}`);
  return t;
}

/** `kobject_uevent` of a memory block device. */
function uevent(ctx: HotplugContext, mem: MemoryBlock, action: 'add' | 'remove' | 'online' | 'offline'): void {
  ctx.trace.add({ type: 'uevent', action, devpath: mem.devpath });
}

/** `memory_notify(action, arg)`: the memory chain; returns 0 or a negative errno (notifier_to_errno). */
export async function memoryNotify(ctx: HotplugContext, action: MemoryActionName, arg: MemoryNotify): Promise<number> {
  const v = ctx.memoryNotifier.callChain(memoryAction(ctx.kernel, action), arg);
  return notifierToErrno(typeof v === 'number' ? v : await v);
}

/**
 * `memory_dev_init` → `add_boot_memory_block`: one online block per block-aligned range holding a
 * present boot section (`sections`: section start pfn → nid). Its zone is the one zone whose span
 * intersects it, else NULL (memory0 spans DMA and DMA32).
 */
export function memoryDevInit(ctx: HotplugContext, sections: ReadonlyMap<number, number>): void {
  const blockIds = new Map<number, number>();
  for (const [pfn, nid] of sections) blockIds.set(Math.floor(pfn / ctx.blockPages), nid);
  for (const [id, nid] of [...blockIds].sort((a, b) => a[0] - b[0])) {
    const start = id * ctx.blockPages;
    const hits: ZoneType[] = [];
    const nids = new Set<number>();
    for (let n = 0; n < ctx.nodes.possible; n++)
      for (const z of ZONE_TYPES) {
        const info = ctx.physmem.zoneInfo(n, z);
        if (info && info.spanned && start < info.start + info.spanned && start + ctx.blockPages > info.start) (hits.push(z), nids.add(n));
      }
    const zone = hits.length === 1 && nids.size === 1 ? hits[0]! : null;
    ctx.blocks.set(id, new MemoryBlock({ id, nrPages: ctx.blockPages, nid, state: 'online', zone, nrVmemmapPages: 0, group: null, early: true, deviceLock: ctx.locks.createDeviceLock(`memory${id}`) }));
  }
}

/**
 * `create_memory_block_devices(start, size, vmemmap_pages, group)`, mem_hotplug_lock held: an offline
 * block device per block of the range (KOBJ_ADD; the bus probe takes and drops its device lock). On a
 * failure (EEXIST) the blocks it made are removed again.
 */
export async function createMemoryBlockDevices(ctx: HotplugContext, startPfn: number, nrPages: number, nrVmemmapPages: number, group: MemoryGroup | null, nid: number): Promise<MemoryBlock[]> {
  const created: MemoryBlock[] = [];
  try {
    for (let id = startPfn / ctx.blockPages; id < (startPfn + nrPages) / ctx.blockPages; id++) {
      if (ctx.blocks.has(id)) throw new KernelError('EEXIST', `memory${id} already exists`);
      const mem = new MemoryBlock({ id, nrPages: ctx.blockPages, nid, state: 'offline', zone: null, nrVmemmapPages, group, early: false, deviceLock: ctx.locks.createDeviceLock(`memory${id}`) });
      ctx.blocks.set(id, mem);
      ctx.onBlocksChanged(mem, true);
      uevent(ctx, mem, 'add');
      created.push(mem);
      // device_add → bus_probe_device → device_lock(dev): taken under mem_hotplug_lock.
      await mem.deviceLock.lock('device_register');
      mem.deviceLock.unlock();
    }
  } catch (e) {
    removeMemoryBlockDevices(ctx, created);
    throw e;
  }
  return created;
}

/** `remove_memory_block_devices`: each block's device goes (KOBJ_REMOVE). */
export function removeMemoryBlockDevices(ctx: HotplugContext, blocks: readonly MemoryBlock[]): void {
  for (const mem of blocks) {
    ctx.blocks.delete(mem.id);
    ctx.onBlocksChanged(mem, false);
    uevent(ctx, mem, 'remove');
  }
}

/** The PREPARE_ONLINE / FINISH_OFFLINE payload of 6.12; status_change_nid* are left uninitialised there (read as 0 on guests). */
function altmapArg(ctx: HotplugContext, mem: MemoryBlock): MemoryNotify {
  const vm = mem.nrVmemmapPages;
  return memoryNotifyArg(ctx.kernel, {
    altmap_start_pfn: mem.startPfn,
    altmap_nr_pages: vm,
    start_pfn: mem.startPfn + vm,
    nr_pages: mem.nrPages - vm,
    status_change_nid_normal: 0,
    status_change_nid: 0,
  });
}

/** `memory_block_online(mem)`: the zone, the self-hosted memmap, online_pages under mem_hotplug_lock. */
export async function memoryBlockOnline(ctx: HotplugContext, mem: MemoryBlock): Promise<void> {
  const p = ctx.kernel;
  if (p.hwpoisonCheck && mem.nrHwpoison) throw new KernelError('EHWPOISON', `${mem.name}: ${mem.nrHwpoison} hwpoisoned pages`);
  const zone = zoneForPfnRange(ctx, mem.onlineType, mem.nid, mem.group, mem.startPfn, mem.nrPages);
  const vm = mem.nrVmemmapPages;
  const pm = ctx.physmem;
  await ctx.locks.memHotplugBegin('memory_block_online');
  try {
    if (p.prepareFinishEvents) {
      const err = await memoryNotify(ctx, 'MEM_PREPARE_ONLINE', altmapArg(ctx, mem));
      if (err) throw KernelError.fromErrno(err, `${mem.name}: MEM_PREPARE_ONLINE vetoed`);
    }
    if (vm) pm.initMemmapOnMemory(mem.startPfn, vm, mem.nid, zone);
    try {
      await onlinePages(ctx, mem.startPfn + vm, mem.nrPages - vm, mem.nid, zone, mem.group);
    } catch (e) {
      if (vm) pm.removeRangeFromZone(mem.startPfn, vm);
      if (p.prepareFinishEvents) await memoryNotify(ctx, 'MEM_FINISH_OFFLINE', altmapArg(ctx, mem));
      throw e;
    }
    if (vm) adjustPresentPageCount(ctx, mem.startPfn, vm, mem.nid, zone, mem.group, mem.early);
    mem.zone = zone;
  } finally {
    ctx.locks.memHotplugDone();
  }
}

/** `memory_block_offline(mem)`: EINVAL for a block without a single zone; offline_pages under mem_hotplug_lock. */
export async function memoryBlockOffline(ctx: HotplugContext, mem: MemoryBlock, signal?: AbortSignal): Promise<void> {
  const zone = mem.zone;
  if (!zone) throw new KernelError('EINVAL', `${mem.name}: spans several zones or nodes (zone is NULL)`);
  const vm = mem.nrVmemmapPages;
  await ctx.locks.memHotplugBegin('memory_block_offline');
  try {
    if (vm) adjustPresentPageCount(ctx, mem.startPfn, -vm, mem.nid, zone, mem.group, mem.early);
    try {
      await offlinePages(ctx, mem.startPfn + vm, mem.nrPages - vm, mem.nid, zone, mem.group, signal);
    } catch (e) {
      if (vm) adjustPresentPageCount(ctx, mem.startPfn, vm, mem.nid, zone, mem.group, mem.early);
      throw e;
    }
    if (vm) ctx.physmem.removeRangeFromZone(mem.startPfn, vm);
    mem.zone = null;
    if (ctx.kernel.prepareFinishEvents) await memoryNotify(ctx, 'MEM_FINISH_OFFLINE', altmapArg(ctx, mem));
  } finally {
    ctx.locks.memHotplugDone();
  }
}

/**
 * `memory_block_change_state(mem, to, from)`: EINVAL unless the block is in `from`; shows
 * going-offline while an offline runs; the state becomes `to` on success, `from` on failure.
 */
async function memoryBlockChangeState(ctx: HotplugContext, mem: MemoryBlock, to: 'online' | 'offline', from: 'online' | 'offline', signal?: AbortSignal): Promise<void> {
  if (mem.state !== from) throw new KernelError('EINVAL', `${mem.name}: state is ${mem.state}, not ${from}`);
  if (to === 'offline') mem.state = 'going-offline';
  try {
    if (to === 'online') await memoryBlockOnline(ctx, mem);
    else await memoryBlockOffline(ctx, mem, signal);
    mem.state = to;
  } catch (e) {
    mem.state = from;
    throw e;
  }
}

/** `memory_subsys_online`: 0 if already online; MMOP_OFFLINE means MMOP_ONLINE (automatic zone); online_type is reset whatever happens. */
async function memorySubsysOnline(ctx: HotplugContext, mem: MemoryBlock): Promise<void> {
  if (mem.state === 'online') return;
  if (mem.onlineType === 'offline') mem.onlineType = 'online';
  try {
    await memoryBlockChangeState(ctx, mem, 'online', 'offline');
  } finally {
    mem.onlineType = 'offline';
  }
}

/** `memory_subsys_offline`: 0 if already offline. */
async function memorySubsysOffline(ctx: HotplugContext, mem: MemoryBlock, signal?: AbortSignal): Promise<void> {
  if (mem.state === 'offline') return;
  await memoryBlockChangeState(ctx, mem, 'offline', 'online', signal);
}

/**
 * `device_online(dev)`: under the device lock, the bus online callback when the device is marked
 * offline (then a KOBJ_ONLINE uevent), else 1 ("already online").
 */
export async function deviceOnline(ctx: HotplugContext, mem: MemoryBlock): Promise<0 | 1> {
  await mem.deviceLock.lock('device_online');
  try {
    if (!mem.devOffline) return 1;
    await memorySubsysOnline(ctx, mem);
    uevent(ctx, mem, 'online');
    mem.devOffline = false;
    return 0;
  } finally {
    mem.deviceLock.unlock();
  }
}

/** `device_offline(dev)`: the mirror of {@link deviceOnline}; 1 when already offline. */
export async function deviceOffline(ctx: HotplugContext, mem: MemoryBlock, signal?: AbortSignal): Promise<0 | 1> {
  await mem.deviceLock.lock('device_offline');
  try {
    if (mem.devOffline) return 1;
    await memorySubsysOffline(ctx, mem, signal);
    uevent(ctx, mem, 'offline');
    mem.devOffline = true;
    return 0;
  } finally {
    mem.deviceLock.unlock();
  }
}

/** `online_memory_block`, the auto-online walk's callback: device_online with `auto_online_blocks`' type. */
export function onlineMemoryBlock(ctx: HotplugContext, mem: MemoryBlock): Promise<0 | 1> {
  mem.onlineType = ctx.params.autoOnline;
  return deviceOnline(ctx, mem);
}

// A write that waited for device_hotplug_lock restarts its syscall; if the block was removed meanwhile
// (an eject), its attribute is gone and kernfs fails the write ENODEV without touching anything.
function checkRegistered(ctx: HotplugContext, mem: MemoryBlock): void {
  if (ctx.blocks.get(mem.id) !== mem) throw new KernelError('ENODEV', `${mem.name}: no such device (removed)`);
}

/** `state_store`: the four MMOP strings (else EINVAL), under lock_device_hotplug_sysfs; "already in that state" is EINVAL. */
export async function stateStore(ctx: HotplugContext, mem: MemoryBlock, value: string, signal?: AbortSignal): Promise<void> {
  const type = onlineTypeFromStr(value);
  await ctx.locks.lockDeviceHotplugSysfs();
  try {
    checkRegistered(ctx, mem);
    let r: 0 | 1;
    if (type === 'offline') r = await deviceOffline(ctx, mem, signal);
    else {
      mem.onlineType = type;
      r = await deviceOnline(ctx, mem);
    }
    if (r > 0) throw new KernelError('EINVAL', `${mem.name}: already ${type === 'offline' ? 'offline' : 'online'}`);
  } finally {
    ctx.locks.unlockDeviceHotplug();
  }
}

/** `online_store` of the generic device: kstrtobool, under lock_device_hotplug_sysfs; "already" is success. */
export async function onlineStore(ctx: HotplugContext, mem: MemoryBlock, value: string, signal?: AbortSignal): Promise<void> {
  const on = kstrtobool(ctx.kernel, value);
  await ctx.locks.lockDeviceHotplugSysfs();
  try {
    checkRegistered(ctx, mem);
    await (on ? deviceOnline(ctx, mem) : deviceOffline(ctx, mem, signal));
  } finally {
    ctx.locks.unlockDeviceHotplug();
  }
}
