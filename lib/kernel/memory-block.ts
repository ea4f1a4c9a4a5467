/**
 * Memory block devices (drivers/base/memory.c) and the generic device online/offline core
 * (drivers/base/core.c) as far as memory blocks use it: `struct memory_block`, the `state` and
 * `online` stores, device_online / device_offline, memory_subsys_online / _offline and
 * memory_block_change_state (drivers/base/memory.c). The page work behind them is in hotplug.ts.
 */
import { KernelError } from '../errors.js';
import type { ZoneType } from '../native/physmem.js';
import type { Mutex } from './locks.js';
import { sysfsStreq, type OnlineType } from './profile.js';

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

/** What the device core needs from the machine to online or offline a block. */
export interface BlockActions {
  /** memory_block_online (hotplug.ts): 0 or throws KernelError. */
  memoryBlockOnline(mem: MemoryBlock, signal?: AbortSignal): Promise<void>;
  /** memory_block_offline. */
  memoryBlockOffline(mem: MemoryBlock, signal?: AbortSignal): Promise<void>;
  /** kobject_uevent for the block. */
  uevent(mem: MemoryBlock, action: 'online' | 'offline'): void;
}

/**
 * `memory_block_change_state(mem, to, from)`: EINVAL unless the block is in `from`; shows
 * going-offline while an offline runs; the state becomes `to` on success, `from` on failure.
 */
async function memoryBlockChangeState(k: BlockActions, mem: MemoryBlock, to: 'online' | 'offline', from: 'online' | 'offline', signal?: AbortSignal): Promise<void> {
  if (mem.state !== from) throw new KernelError('EINVAL', `${mem.name}: state is ${mem.state}, not ${from}`);
  if (to === 'offline') mem.state = 'going-offline';
  try {
    if (to === 'online') await k.memoryBlockOnline(mem, signal);
    else await k.memoryBlockOffline(mem, signal);
    mem.state = to;
  } catch (e) {
    mem.state = from;
    throw e;
  }
}

/** `memory_subsys_online`: 0 if already online; MMOP_OFFLINE means MMOP_ONLINE (automatic zone); online_type is reset whatever happens. */
async function memorySubsysOnline(k: BlockActions, mem: MemoryBlock, signal?: AbortSignal): Promise<void> {
  if (mem.state === 'online') return;
  if (mem.onlineType === 'offline') mem.onlineType = 'online';
  try {
    await memoryBlockChangeState(k, mem, 'online', 'offline', signal);
  } finally {
    mem.onlineType = 'offline';
  }
}

/** `memory_subsys_offline`: 0 if already offline. */
async function memorySubsysOffline(k: BlockActions, mem: MemoryBlock, signal?: AbortSignal): Promise<void> {
  if (mem.state === 'offline') return;
  await memoryBlockChangeState(k, mem, 'offline', 'online', signal);
}

/**
 * `device_online(dev)`: under the device lock, the bus online callback when the device is marked
 * offline (then a KOBJ_ONLINE uevent), else 1 ("already online").
 */
export async function deviceOnline(k: BlockActions, mem: MemoryBlock, signal?: AbortSignal): Promise<0 | 1> {
  await mem.deviceLock.lock('device_online');
  try {
    if (!mem.devOffline) return 1;
    await memorySubsysOnline(k, mem, signal);
    k.uevent(mem, 'online');
    mem.devOffline = false;
    return 0;
  } finally {
    mem.deviceLock.unlock();
  }
}

/** `device_offline(dev)`: the mirror of {@link deviceOnline}; 1 when already offline. */
export async function deviceOffline(k: BlockActions, mem: MemoryBlock, signal?: AbortSignal): Promise<0 | 1> {
  await mem.deviceLock.lock('device_offline');
  try {
    if (mem.devOffline) return 1;
    await memorySubsysOffline(k, mem, signal);
    k.uevent(mem, 'offline');
    mem.devOffline = true;
    return 0;
  } finally {
    mem.deviceLock.unlock();
  }
}
