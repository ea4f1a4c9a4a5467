/**
 * mm/memory_hotplug.c, step by step in the kernel's order and per profile: zone selection,
 * online_pages / offline_pages, node_states_set_node / _clear_node, add_memory_resource, __add_memory /
 * add_memory, try_remove_memory / remove_memory, offline_and_remove_memory. Each flow finishes its own
 * work (resources, the firmware memmap) under the locks the kernel holds. Page work goes to the native
 * PhysMem, one bulk call per step; notifier events go through the machine's chains; locks through
 * HotplugLocks so the validator sees every flow. The block devices are drivers/base/memory.c
 * (memory-block.ts). Over 400 lines because it is one kernel file, kept whole.
 */
import { ERRNO, KernelError } from '../errors.js';
import { PAGEBLOCK_NR_PAGES, PAGES_PER_SECTION, ZONE_TYPES, type ZoneType } from '../native/constants.js';
import type { PhysMem } from '../native/physmem.js';
import type { FirmwareMemmap } from './firmware-memmap.js';
import type { HotplugLocks } from './locks.js';
import { MAX_PHYSMEM_BYTES } from './layout.js';
import { createMemoryBlockDevices, deviceOffline, deviceOnline, memoryNotify, onlineMemoryBlock, removeMemoryBlockDevices, type MemoryBlock, type MemoryGroup } from './memory-block.js';
import { notifierToErrno, type NotifierChain } from './notifier.js';
import { memoryNotify as memoryNotifyArg, type KernelProfile, type MemmapOnMemory, type MemoryNotify, type NodeActionName, type NodeNotify, type OnlineType } from './profile.js';
import type { Trace } from './trace.js';

/** `memory_hotplug.online_policy`. */
export type OnlinePolicy = 'contig-zones' | 'auto-movable';

/** The tunables of memory hotplug (module parameters, `auto_online_blocks`, boot options). */
export interface HotplugParams {
  /** `auto_online_blocks` / memhp_default_state. */
  autoOnline: OnlineType;
  /** `memory_hotplug.online_policy`. */
  onlinePolicy: OnlinePolicy;
  /** `memory_hotplug.auto_movable_ratio` (percent). */
  autoMovableRatio: number;
  /** `memory_hotplug.auto_movable_numa_aware`. */
  autoMovableNumaAware: boolean;
  /** `memory_hotplug.memmap_on_memory` (boot only). */
  readonly memmapOnMemory: MemmapOnMemory;
  /** The `movable_node` boot option. */
  readonly movableNode: boolean;
}

/** Node state masks (`node_states[]`). */
export interface NodeStates {
  /** Possible nodes: 0..possible-1. */
  readonly possible: number;
  /** N_ONLINE: nodes with a pgdat. */
  readonly online: Set<number>;
  /** N_MEMORY. */
  readonly memory: Set<number>;
  /** N_NORMAL_MEMORY (= N_HIGH_MEMORY on x86_64). */
  readonly normal: Set<number>;
}

/** An /proc/iomem resource memhp models: boot e820 entries and hot-added System RAM (bytes). */
export interface IomemResource {
  /** First byte. */
  start: number;
  /** One past the last byte. */
  end: number;
  /** 'System RAM' or 'Reserved'. */
  name: string;
  /** Hot-added (removable) rather than boot. */
  hotplug: boolean;
}

/** Everything the flows read and change: the Machine provides it. */
export interface HotplugContext {
  readonly kernel: KernelProfile;
  readonly physmem: PhysMem;
  readonly locks: HotplugLocks;
  readonly memoryNotifier: NotifierChain<MemoryNotify>;
  readonly nodeNotifier: NotifierChain<NodeNotify>;
  readonly trace: Trace;
  readonly params: HotplugParams;
  readonly nodes: NodeStates;
  /** Memory block devices by id. */
  readonly blocks: Map<number, MemoryBlock>;
  /** Pages per memory block. */
  readonly blockPages: number;
  /** /proc/iomem. */
  readonly resources: IomemResource[];
  /** /sys/firmware/memmap. */
  readonly firmwareMemmap: FirmwareMemmap;
  /** present_early_pages per `nid:zone`. */
  readonly earlyPresent: Map<string, number>;
  /** How many times an offline that makes no progress retries before it fails EINTR. */
  readonly offlineRetries: number;
  /** The vCPUs on a node. */
  cpusOfNode(nid: number): number[];
  /** Told when block devices come and go (sysfs keeps their directories). */
  onBlocksChanged(mem: MemoryBlock, added: boolean): void;
}

const SECTION = PAGES_PER_SECTION;

function hexRange(startPfn: number, nr: number): string {
  const f = (n: number) => '0x' + n.toString(16).padStart(8, '0');
  return `[mem ${f(startPfn * 4096)}-${f((startPfn + nr) * 4096 - 1)}]`;
}

/** A zone's span, or an empty span. */
export function zoneSpan(ctx: HotplugContext, nid: number, zone: ZoneType): Readonly<{ start: number; spanned: number; present: number }> {
  return ctx.physmem.zoneCounters(nid, zone);
}

/** `zone_intersects`: an empty zone never intersects. */
export function zoneIntersects(ctx: HotplugContext, nid: number, zone: ZoneType, start: number, nr: number): boolean {
  const z = zoneSpan(ctx, nid, zone);
  return z.spanned > 0 && start < z.start + z.spanned && start + nr > z.start;
}

const KERNEL_ZONES = ['DMA', 'DMA32', 'Normal'] as const;

function nodePresent(ctx: HotplugContext, nid: number, zones: readonly ZoneType[] = ZONE_TYPES): number {
  let n = 0;
  for (const z of zones) n += zoneSpan(ctx, nid, z).present;
  return n;
}

/** `default_kernel_zone_for_pfn`: the first of DMA, DMA32 whose span intersects, else Normal. */
export function defaultKernelZoneForPfn(ctx: HotplugContext, nid: number, start: number, nr: number): ZoneType {
  for (const z of ['DMA', 'DMA32'] as const) if (zoneIntersects(ctx, nid, z, start, nr)) return z;
  return 'Normal';
}

/** `auto_movable_can_online_movable` for a node, or system-wide with nid -1 (no dynamic groups, no CMA). */
function autoMovableCanOnlineMovable(ctx: HotplugContext, nid: number, nrPages: number): boolean {
  let movable = 0;
  let kernelEarly = 0;
  for (let n = 0; n < ctx.nodes.possible; n++) {
    if (nid >= 0 && n !== nid) continue;
    movable += zoneSpan(ctx, n, 'Movable').present;
    for (const z of ['DMA', 'DMA32', 'Normal'] as const) kernelEarly += ctx.earlyPresent.get(`${n}:${z}`) ?? 0;
  }
  movable += nrPages;
  return movable <= Math.floor((ctx.params.autoMovableRatio * kernelEarly) / 100);
}

/** `auto_movable_zone_for_pfn` (static groups and plain ranges; virtio-mem's dynamic groups are not modelled). */
function autoMovableZoneForPfn(ctx: HotplugContext, nid: number, group: MemoryGroup | null, start: number, nr: number): ZoneType {
  const p = ctx.params;
  if (p.autoMovableRatio > 0) {
    let need = nr;
    if (group) need = group.presentKernelPages ? -1 : group.maxPages - group.presentMovablePages;
    if (need >= 0 && autoMovableCanOnlineMovable(ctx, -1, need) && (!p.autoMovableNumaAware || autoMovableCanOnlineMovable(ctx, nid, need))) return 'Movable';
  }
  return defaultKernelZoneForPfn(ctx, nid, start, nr);
}

/** `zone_for_pfn_range`: the zone an online of this type would use now. */
export function zoneForPfnRange(ctx: HotplugContext, type: OnlineType, nid: number, group: MemoryGroup | null, start: number, nr: number): ZoneType {
  if (type === 'online_kernel') return defaultKernelZoneForPfn(ctx, nid, start, nr);
  if (type === 'online_movable') return 'Movable';
  if (ctx.params.onlinePolicy === 'auto-movable') return autoMovableZoneForPfn(ctx, nid, group, start, nr);
  // default_zone_for_pfn: inherit the zone when exactly one span intersects.
  const kernelZone = defaultKernelZoneForPfn(ctx, nid, start, nr);
  const inKernel = zoneIntersects(ctx, nid, kernelZone, start, nr);
  const inMovable = zoneIntersects(ctx, nid, 'Movable', start, nr);
  if (inKernel !== inMovable) return inKernel ? kernelZone : 'Movable';
  return ctx.params.movableNode ? 'Movable' : kernelZone;
}

/** `valid_zones` of an offline block: the default zone, then online_kernel's and online_movable's when they differ. */
export function validZones(ctx: HotplugContext, mem: MemoryBlock): string {
  const args = [mem.nid, mem.group, mem.startPfn, mem.nrPages] as const;
  const first = zoneForPfnRange(ctx, 'online', ...args);
  const words = [first];
  for (const t of ['online_kernel', 'online_movable'] as const) {
    const z = zoneForPfnRange(ctx, t, ...args);
    if (z !== first) words.push(z);
  }
  return words.join(' ');
}

/** `adjust_present_page_count`: zone, node, early pages and the group's per-kind count. */
export function adjustPresentPageCount(ctx: HotplugContext, pfn: number, nr: number, nid: number, zone: ZoneType, group: MemoryGroup | null, early: boolean): void {
  ctx.physmem.adjustPresentPages(pfn, nr);
  if (early) {
    const key = `${nid}:${zone}`;
    ctx.earlyPresent.set(key, (ctx.earlyPresent.get(key) ?? 0) + nr);
  }
  if (group) {
    if (zone === 'Movable') group.presentMovablePages += nr;
    else group.presentKernelPages += nr;
  }
}

async function nodeNotifyCall(ctx: HotplugContext, action: NodeActionName, nid: number): Promise<number> {
  const v = ctx.nodeNotifier.callChain(ctx.kernel.nodeActions![action], { nid });
  return notifierToErrno(typeof v === 'number' ? v : await v);
}

function checkAligned(what: string, pfn: number, nr: number): void {
  if (!nr || pfn % PAGEBLOCK_NR_PAGES || (pfn + nr) % SECTION) throw new KernelError('EINVAL', `${what} ${hexRange(pfn, nr)}: range not pageblock/section aligned`);
}

function isEarly(ctx: HotplugContext, pfn: number): boolean {
  return ctx.blocks.get(Math.floor(pfn / ctx.blockPages))?.early ?? false;
}

/**
 * `online_pages(pfn, nr, zone, group)`, mem_hotplug_lock held for write. Events and node states per
 * profile; on a veto the CANCEL events go to the whole chain and the range leaves the zone again.
 */
export async function onlinePages(ctx: HotplugContext, pfn: number, nr: number, nid: number, zone: ZoneType, group: MemoryGroup | null): Promise<void> {
  const p = ctx.kernel;
  checkAligned('online_pages', pfn, nr);
  const pm = ctx.physmem;
  pm.moveRangeToZone(pfn, nr, nid, zone, { reserved: p.memmapInitState === 'reserved', isolate: true, migratetype: 'Movable' });
  const kernelZone = zone !== 'Movable';
  const arg = memoryNotifyArg(p, {
    start_pfn: pfn,
    nr_pages: nr,
    status_change_nid_normal: kernelZone && !ctx.nodes.normal.has(nid) ? nid : -1,
    status_change_nid: ctx.nodes.memory.has(nid) ? -1 : nid,
  });
  const nodeArg = p.nodeActions && !ctx.nodes.memory.has(nid) ? nid : -1;
  let err = 0;
  if (nodeArg >= 0) err = await nodeNotifyCall(ctx, 'NODE_ADDING_FIRST_MEMORY', nid);
  if (!err) err = await memoryNotify(ctx, 'MEM_GOING_ONLINE', arg);
  if (err) {
    await memoryNotify(ctx, 'MEM_CANCEL_ONLINE', arg);
    if (nodeArg >= 0) await nodeNotifyCall(ctx, 'NODE_CANCEL_ADDING_FIRST_MEMORY', nid);
    pm.removeRangeFromZone(pfn, nr);
    throw KernelError.fromErrno(err, `online_pages ${hexRange(pfn, nr)} failed`, { details: { pfn } });
  }
  const firstNormal = kernelZone && (pm.zoneInfo(nid, 'Normal')?.managed ?? 0) === 0;
  const firstMemory = !ctx.nodes.memory.has(nid);
  pm.onlinePagesRange(pfn, nr);
  adjustPresentPageCount(ctx, pfn, nr, nid, zone, group, isEarly(ctx, pfn));
  nodeStatesSetNode(ctx, nid, zone);
  pm.undoIsolateRange(pfn, nr, p.isolation === 'migratetype' ? 'Movable' : 'keep');
  if (zone === 'Normal' && firstNormal) firstNormalPageTaken(ctx, nid, pfn, nr, firstMemory);
  if (nodeArg >= 0) await nodeNotifyCall(ctx, 'NODE_ADDED_FIRST_MEMORY', nid);
  await memoryNotify(ctx, 'MEM_ONLINE', arg);
}

/** `node_states_set_node(nid, arg)`: N_NORMAL_MEMORY for a kernel zone, N_MEMORY, in the profile's order. */
function nodeStatesSetNode(ctx: HotplugContext, nid: number, zone: ZoneType): void {
  const gainsNormal = zone !== 'Movable' && !ctx.nodes.normal.has(nid);
  const gainsMemory = !ctx.nodes.memory.has(nid);
  for (const st of ctx.kernel.nodeStateSetOrder) {
    if (st === 'N_MEMORY' && gainsMemory) ctx.nodes.memory.add(nid);
    if (st === 'N_NORMAL_MEMORY' && gainsNormal) ctx.nodes.normal.add(nid);
  }
}

/** `node_states_clear_node(nid, arg)`: what the offline of `nr` pages of `zone` takes from the node. */
function nodeStatesClearNode(ctx: HotplugContext, nid: number, zone: ZoneType, lastMemory: boolean): void {
  if (zone !== 'Movable' && nodePresent(ctx, nid, KERNEL_ZONES) === 0) ctx.nodes.normal.delete(nid);
  if (lastMemory) ctx.nodes.memory.delete(nid);
}

/**
 * What the rest of the kernel does at once with a node's first ZONE_NORMAL memory: it takes the
 * range's first page (a page table, guests' dump_page shows), so the block cannot be offlined again
 * (EBUSY) while later Normal blocks of the node can (their pages go to the tail of the free lists).
 * Two allocators get there first: the node's new kswapd and kcompactd threads (kswapd_run /
 * kcompactd_run) when this online gives the node its first memory, their stacks from the node, vCPU or
 * not; and node-local GFP_KERNEL allocations of a vCPU on the node. Seen alike on 6.1, 6.12 and 7.2
 * guests: node 0 of a 512 MiB one-vCPU machine every time, a memory-only node's first memory every time,
 * a hot-added node with a vCPU in 5 of 6 runs (which vCPU allocates next).
 */
function firstNormalPageTaken(ctx: HotplugContext, nid: number, pfn: number, nr: number, firstMemory: boolean): void {
  if (!firstMemory && ctx.cpusOfNode(nid).length === 0) return;
  // The zone's only free pages are this range's, and the buddy hands out its first page first.
  for (let p = pfn; p < pfn + nr; p++) {
    if (ctx.physmem.pageState(p).state !== 'free') continue;
    ctx.physmem.allocPage(p, 'unmovable');
    return;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The N_MEMORY nodes a page of `nid` may migrate to: the others, or `nid` itself when it is the only one. */
function migrationTargets(ctx: HotplugContext, nid: number): number[] {
  const t = [...ctx.nodes.memory].filter((n) => n !== nid);
  return t.length ? t : [nid];
}

/** Pages of [start, start+nr) covered by System RAM resources (`walk_system_ram_range`). */
function systemRamPages(ctx: HotplugContext, start: number, nr: number): number {
  let n = 0;
  for (const r of ctx.resources) {
    if (r.name !== 'System RAM') continue;
    const s = Math.max(start, Math.ceil(r.start / 4096));
    const e = Math.min(start + nr, Math.floor(r.end / 4096));
    if (s < e) n += e - s;
  }
  return n;
}

/**
 * `offline_pages(start, nr, zone, group)`, mem_hotplug_lock held for write: holes and multizone checks,
 * isolation (EBUSY, no events), GOING_OFFLINE, the migration loop (EINTR on `signal` or when the retry
 * budget runs out), then the pages leave the buddy, node states, OFFLINE, spans shrink.
 */
export async function offlinePages(ctx: HotplugContext, start: number, nr: number, nid: number, zone: ZoneType, group: MemoryGroup | null, signal?: AbortSignal): Promise<void> {
  const p = ctx.kernel;
  const pm = ctx.physmem;
  const what = `memory offlining ${hexRange(start, nr)} failed due to`;
  checkAligned('offline_pages', start, nr);
  if (systemRamPages(ctx, start, nr) !== nr) throw new KernelError('EINVAL', `${what} memory holes`);
  if (pm.pageblockInfo(start).zone !== zone || pm.pageblockInfo(start + nr - 1).zone !== zone) throw new KernelError('EINVAL', `${what} multizone range`);
  const undoMt = p.isolation === 'migratetype' ? 'Movable' : 'keep';
  try {
    pm.isolateRange(start, nr, undoMt);
  } catch (e) {
    if (e instanceof KernelError) throw new KernelError(e.code, `${what} failure to isolate range (${e.message})`, { details: e.details, cause: e });
    throw e;
  }
  const lowPresent = nodePresent(ctx, nid, KERNEL_ZONES);
  const allPresent = lowPresent + zoneSpan(ctx, nid, 'Movable').present;
  const arg = memoryNotifyArg(p, {
    start_pfn: start,
    nr_pages: nr,
    status_change_nid_normal: zone !== 'Movable' && nr >= lowPresent ? nid : -1,
    status_change_nid: nr >= allPresent ? nid : -1,
  });
  const nodeArg = p.nodeActions && nr >= allPresent ? nid : -1;
  const fail = async (err: number, reason: string, details = {}): Promise<never> => {
    pm.undoIsolateRange(start, nr, undoMt);
    await memoryNotify(ctx, 'MEM_CANCEL_OFFLINE', arg);
    if (nodeArg >= 0) await nodeNotifyCall(ctx, 'NODE_CANCEL_REMOVING_LAST_MEMORY', nid);
    throw KernelError.fromErrno(err, `${what} ${reason}`, { details });
  };
  let err = 0;
  if (nodeArg >= 0) {
    err = await nodeNotifyCall(ctx, 'NODE_REMOVING_LAST_MEMORY', nid);
    if (err) await fail(err, 'node notifier failure');
  }
  err = await memoryNotify(ctx, 'MEM_GOING_OFFLINE', arg);
  if (err) await fail(err, 'notifier failure');
  // The kernel's migration loop has no timeout: it runs until nothing movable is left or a signal is
  // pending (EINTR, "signal backoff"). Here a pass that makes no progress (pinned pages, no room on the
  // targets, pages not yet isolated) waits a millisecond so other tasks can run (an unpin, an abort), and
  // `offlineRetries` such waits in all stand in for the user's Ctrl-C.
  const end = start + nr;
  let stalls = 0;
  const stalled = async (why: string, details = {}): Promise<void> => {
    if (++stalls > ctx.offlineRetries) await fail(-ERRNO.EINTR, `signal backoff (no progress after ${ctx.offlineRetries} retries: ${why})`, details);
    await sleep(1);
  };
  for (;;) {
    for (let pfn = start; ; ) {
      if (signal?.aborted) await fail(-ERRNO.EINTR, 'signal backoff');
      const found = pm.scanMovablePages(pfn, end - pfn);
      if (found === null) break;
      pfn = found;
      const r = pm.migrateRange(pfn, end - pfn, migrationTargets(ctx, nid));
      if (r.pinned || r.enomem) await stalled(`${r.pinned} pinned, ${r.enomem} without room`, { pfn });
    }
    const busy = pm.testPagesIsolated(start, nr);
    if (busy === null) break;
    await stalled(`pfn 0x${busy.toString(16)} still in use`, { pfn: busy });
  }
  // offlineIsolatedPages takes the managed pages it found, as 6.12+ does; 6.1 subtracts nr_pages. The
  // two differ only for PageOffline pages, which no flow here leaves in an offlined range.
  pm.offlineIsolatedPages(start, nr);
  adjustPresentPageCount(ctx, start, -nr, nid, zone, group, isEarly(ctx, start));
  nodeStatesClearNode(ctx, nid, zone, nr >= allPresent);
  if (nodeArg >= 0) await nodeNotifyCall(ctx, 'NODE_REMOVED_LAST_MEMORY', nid);
  await memoryNotify(ctx, 'MEM_OFFLINE', arg);
  pm.removeRangeFromZone(start, nr);
}

/** add_memory flags (`mhp_t`). */
export interface AddMemoryOptions {
  /** The static memory group (MHP_NID_IS_MGID): an ACPI DIMM. */
  group?: MemoryGroup;
  /** MHP_MEMMAP_ON_MEMORY. */
  memmapOnMemory?: boolean;
}

/** Self-hosted memmap pages per block when memmap_on_memory applies (`mhp_supports_memmap_on_memory`), else 0. */
export function memmapOnMemoryPages(ctx: HotplugContext): number {
  const mode = ctx.params.memmapOnMemory;
  if (!mode) return 0;
  const vmemmap = (ctx.blockPages * 64) / 4096; // struct page is 64 bytes
  // The vmemmap must be PMD-aligned (x86); its page count pageblock-aligned, or rounded up in force mode.
  if ((vmemmap * 4096) % (2 * 1024 * 1024)) return 0;
  const pages = mode === 'force' ? Math.ceil(vmemmap / PAGEBLOCK_NR_PAGES) * PAGEBLOCK_NR_PAGES : vmemmap;
  if (mode !== 'force' && vmemmap % PAGEBLOCK_NR_PAGES) return 0;
  return pages < ctx.blockPages ? pages : 0;
}

/** `register_memory_resource`: the System RAM resource of the range; E2BIG beyond the addressable range, EEXIST on overlap. */
function registerMemoryResource(ctx: HotplugContext, start: number, size: number): IomemResource {
  const range = `[${'0x' + start.toString(16)}-${'0x' + (start + size - 1).toString(16)}]`;
  if (!(size > 0) || start < 0 || start + size > MAX_PHYSMEM_BYTES)
    throw new KernelError('E2BIG', `Hotplug memory ${range} exceeds maximum addressable range [0x0-0x${(MAX_PHYSMEM_BYTES - 1).toString(16)}]`);
  if (ctx.resources.some((r) => r.start < start + size && start < r.end)) throw new KernelError('EEXIST', `Unable to reserve System RAM region ${range}`);
  const res: IomemResource = { start, end: start + size, name: 'System RAM', hotplug: true };
  ctx.resources.push(res);
  ctx.resources.sort((a, b) => a.start - b.start);
  return res;
}

/**
 * `add_memory_resource(nid, res, flags)` with device_hotplug_lock held: the range must be block aligned
 * (check_hotplug_memory_range: EINVAL) on a possible node; under mem_hotplug_lock the node goes online,
 * the sections are added (arch_add_memory), the block devices created and, for System RAM, the
 * firmware memmap entry made; then the blocks are onlined per `auto_online_blocks`. Returns the blocks.
 */
export async function addMemoryResource(ctx: HotplugContext, nid: number, res: IomemResource, opts: AddMemoryOptions = {}): Promise<MemoryBlock[]> {
  const start = res.start;
  const size = res.end - res.start;
  const range = `[${'0x' + start.toString(16)}-${'0x' + (start + size - 1).toString(16)}]`;
  const blockBytes = ctx.blockPages * 4096;
  if (start % blockBytes || size % blockBytes) throw new KernelError('EINVAL', `Block size [0x${blockBytes.toString(16)}] unaligned hotplug range: start 0x${start.toString(16)}, size 0x${size.toString(16)}`);
  if (opts.group) nid = opts.group.nid;
  if (!Number.isInteger(nid) || nid < 0 || nid >= ctx.nodes.possible) throw new KernelError('EINVAL', `add_memory: node ${nid} is not possible`);
  let vm = 0;
  if (opts.memmapOnMemory) {
    if (ctx.kernel.memmapOnMemoryAdd === 'single-block') {
      if (size !== blockBytes || !memmapOnMemoryPages(ctx)) throw new KernelError('EINVAL', `add_memory ${range}: memmap_on_memory not supported for this range`);
    }
    vm = memmapOnMemoryPages(ctx);
  }
  let created: MemoryBlock[];
  await ctx.locks.memHotplugBegin('add_memory_resource');
  try {
    ctx.nodes.online.add(nid);
    ctx.physmem.addSections(start / 4096, size / 4096, nid);
    created = await createMemoryBlockDevices(ctx, start / 4096, size / 4096, vm, opts.group ?? null, nid);
    if (res.name === 'System RAM') ctx.firmwareMemmap.addEntry({ start, end: start + size, type: 'System RAM' });
  } finally {
    ctx.locks.memHotplugDone();
  }
  // walk_memory_blocks(…, online_memory_block): the walk ends at the first block that fails to go
  // online (add_memory_resource ignores the error), so the blocks after it are not even tried: they
  // stay offline, with no notifier call (seen on 6.1, 6.12 and 7.2 guests with GOING_ONLINE vetoed).
  if (ctx.params.autoOnline !== 'offline') {
    for (const mem of created) if ((await onlineMemoryBlock(ctx, mem).catch(() => -1)) !== 0) break;
  }
  return created;
}

/**
 * `__add_memory(nid, start, size, flags)` with device_hotplug_lock held: the System RAM resource, then
 * {@link addMemoryResource}; the resource is released if that fails.
 */
export async function __addMemory(ctx: HotplugContext, nid: number, start: number, size: number, opts: AddMemoryOptions = {}): Promise<MemoryBlock[]> {
  const res = registerMemoryResource(ctx, start, size);
  try {
    return await addMemoryResource(ctx, nid, res, opts);
  } catch (e) {
    ctx.resources.splice(ctx.resources.indexOf(res), 1);
    throw e;
  }
}

/** `add_memory(nid, start, size, flags)`: {@link __addMemory} under device_hotplug_lock. */
export async function addMemory(ctx: HotplugContext, nid: number, start: number, size: number, opts: AddMemoryOptions = {}): Promise<MemoryBlock[]> {
  await ctx.locks.lockDeviceHotplug('add_memory');
  try {
    return await __addMemory(ctx, nid, start, size, opts);
  } finally {
    ctx.locks.unlockDeviceHotplug();
  }
}

/** The blocks of a block-aligned range; EINVAL if the range is misaligned or a block does not exist. */
export function blocksOf(ctx: HotplugContext, start: number, size: number): MemoryBlock[] {
  const blockBytes = ctx.blockPages * 4096;
  if (!(size > 0) || start % blockBytes || size % blockBytes) throw new KernelError('EINVAL', `range 0x${start.toString(16)}+0x${size.toString(16)} is not block aligned`);
  const out: MemoryBlock[] = [];
  for (let id = start / blockBytes; id < (start + size) / blockBytes; id++) {
    const b = ctx.blocks.get(id);
    if (!b) throw new KernelError('EINVAL', `memory${id} does not exist`);
    out.push(b);
  }
  return out;
}

/**
 * `try_remove_memory(start, size)` with device_hotplug_lock held: EBUSY unless every block is offline;
 * the firmware memmap entry goes, the block devices (KOBJ_REMOVE; on 6.1 before mem_hotplug_begin), then
 * the sections and the resource.
 */
export async function tryRemoveMemory(ctx: HotplugContext, start: number, size: number): Promise<void> {
  const blocks = blocksOf(ctx, start, size);
  for (const b of blocks) {
    if (b.state !== 'offline') {
      const s = b.startPfn * 4096;
      throw new KernelError('EBUSY', `removing memory fails, because memory [0x${s.toString(16)}-0x${(s + b.nrPages * 4096 - 1).toString(16)}] is onlined`);
    }
  }
  ctx.firmwareMemmap.removeEntry(start, start + size, 'System RAM');
  if (ctx.kernel.removeDevicesBeforeLock) removeMemoryBlockDevices(ctx, blocks);
  await ctx.locks.memHotplugBegin('try_remove_memory');
  try {
    if (!ctx.kernel.removeDevicesBeforeLock) removeMemoryBlockDevices(ctx, blocks);
    ctx.physmem.removeSections(start / 4096, size / 4096);
    // release_mem_region_adjustable: drop (or trim) the System RAM resources of the range.
    for (let i = ctx.resources.length - 1; i >= 0; i--) {
      const r = ctx.resources[i]!;
      if (!r.hotplug || r.end <= start || r.start >= start + size) continue;
      const rest = [r.start < start ? { ...r, end: start } : null, r.end > start + size ? { ...r, start: start + size } : null].filter((x) => x !== null);
      ctx.resources.splice(i, 1, ...rest);
    }
    if (blocks.length) tryOfflineNode(ctx, blocks[0]!.nid);
  } finally {
    ctx.locks.memHotplugDone();
  }
}

/**
 * `try_offline_node(nid)`: a node that spans no pages any more, has no memory block left (an offline
 * block spans nothing but still links to the node: check_no_memblock_for_node_cb) and has no CPU goes
 * offline again, and its device (the sysfs directory) with it.
 */
function tryOfflineNode(ctx: HotplugContext, nid: number): void {
  if (ZONE_TYPES.some((z) => zoneSpan(ctx, nid, z).spanned > 0)) return;
  for (const b of ctx.blocks.values()) if (b.nid === nid) return;
  if (ctx.cpusOfNode(nid).length) return;
  ctx.nodes.online.delete(nid);
}

/** `remove_memory(start, size)`: {@link tryRemoveMemory} under device_hotplug_lock. */
export async function removeMemory(ctx: HotplugContext, start: number, size: number): Promise<void> {
  await ctx.locks.lockDeviceHotplug('remove_memory');
  try {
    await tryRemoveMemory(ctx, start, size);
  } finally {
    ctx.locks.unlockDeviceHotplug();
  }
}

/**
 * `offline_and_remove_memory(start, size)`: offline every block (remembering its zone kind), roll back by
 * re-onlining the blocks this call offlined on the first failure (and, on 6.12-style kernels, when the
 * removal fails), else remove. Takes device_hotplug_lock.
 */
export async function offlineAndRemoveMemory(ctx: HotplugContext, start: number, size: number): Promise<void> {
  await ctx.locks.lockDeviceHotplug('offline_and_remove_memory');
  let blocks: MemoryBlock[];
  try {
    blocks = blocksOf(ctx, start, size);
  } catch (e) {
    ctx.locks.unlockDeviceHotplug();
    throw e;
  }
  const offlined: { mem: MemoryBlock; type: OnlineType }[] = [];
  const rollback = async () => {
    for (const { mem, type } of offlined) {
      mem.onlineType = type;
      await deviceOnline(ctx, mem).catch(() => 0); // only warns in the kernel
    }
  };
  try {
    for (const mem of blocks) {
      const type: OnlineType = mem.zone === 'Movable' ? 'online_movable' : 'online_kernel';
      try {
        if ((await deviceOffline(ctx, mem)) === 0) offlined.push({ mem, type });
      } catch (e) {
        await rollback();
        throw e;
      }
    }
    try {
      await tryRemoveMemory(ctx, start, size);
    } catch (e) {
      await rollback();
      throw e;
    }
  } finally {
    ctx.locks.unlockDeviceHotplug();
  }
}
