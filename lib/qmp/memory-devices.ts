/**
 * What the two kinds of memory hotplug (pc-dimm.ts, virtio-mem.ts) share: the devices as
 * `query-memory-devices` reports them, the machine's limits, the checks every plug makes against them
 * before anything is sent, and the two-step add (backend, then device) with its rollback. The checks
 * live here, apart from the operations, because libvirt and Kata check the same things for both kinds:
 * a precondition QEMU or the guest would trip over is refused with a {@link HotplugError} first.
 */
import { formatSize, sizeBytes, type Size } from '../size.js';
import type { QmpClient } from './client.js';
import { HotplugError, HotplugRollbackError } from './errors.js';
import type { MemoryHotplug } from './hotplug.js';

/** Parse a {@link Size} to a byte count (binary units, as QEMU reads `-m`). Throws {@link HotplugError} BAD_ARGUMENT. */
export function parseSize(s: Size): number {
  const n = sizeBytes(s);
  if (n === null) throw new HotplugError('BAD_ARGUMENT', `not a size in bytes: ${String(s)}`);
  return n;
}

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

/** One entry of `query-memory-devices`, by the kind of device. */
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

/**
 * What the operations of pc-dimm.ts and virtio-mem.ts need of their {@link MemoryHotplug}: its
 * connection, guest block size and default deadline, and its device and limit queries.
 */
export interface MemoryHotplugContext {
  readonly qmp: QmpClient;
  /** The guest memory block size every DIMM size and address must be a multiple of. */
  readonly blockSize: number;
  /** Default deadline of a wait on the guest (ms). */
  readonly timeoutMs: number;
  listMemoryDevices(): Promise<MemoryDevice[]>;
  machineLimits(devices?: MemoryDevice[]): Promise<MachineLimits>;
}

/** One MiB: the unit of QEMU's alignment rules. */
export const MiB = 2 ** 20;

/** A number QEMU sent, as a number (NaN when absent). */
export function num(v: unknown): number {
  return typeof v === 'number' ? v : Number(v ?? NaN);
}

/** One entry of `query-memory-devices` as a {@link MemoryDevice}. */
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

/** All memory devices (`query-memory-devices`), in QEMU's order. */
export async function listMemoryDevices(qmp: QmpClient): Promise<MemoryDevice[]> {
  const raw = await qmp.execute<{ type: string; data: Record<string, unknown> }[]>('query-memory-devices');
  return raw.map(toDevice);
}

/**
 * Slots, maxmem, boot RAM, used device memory and node count, from QEMU or `fallback` (the instance's
 * options); the devices are `devices`, or else `list()` asked after QEMU's limits.
 */
export async function machineLimits(
  qmp: QmpClient,
  fallback: { slots?: number; maxMemory?: Size; nodes?: number },
  devices: MemoryDevice[] | undefined,
  list: () => Promise<MemoryDevice[]>,
): Promise<MachineLimits> {
  const summary = await qmp.execute<{ 'base-memory': number; 'plugged-memory'?: number }>('query-memory-size-summary');
  // QEMU ≥ 5.x exposes -m as /machine.memory = {size, slots, max-size}.
  const mem = await qmp
    .execute<{ size: number; slots: number; 'max-size': number }>('qom-get', { path: '/machine', property: 'memory' })
    .catch(() => undefined);
  // There is no QMP query for the NUMA layout of a machine with memoryless nodes; HMP has one.
  const numa = await qmp
    .execute<string>('human-monitor-command', { 'command-line': 'info numa' })
    .then((s) => /^(\d+) nodes/.exec(s)?.[1])
    .catch(() => undefined);
  const devs = devices ?? (await list());
  const used = devs.reduce((a, d) => a + footprint(d), 0);
  const maxMemory = mem?.['max-size'] ?? (fallback.maxMemory !== undefined ? parseSize(fallback.maxMemory) : undefined);
  return {
    slots: mem?.slots ?? fallback.slots,
    maxMemory,
    baseMemory: summary['base-memory'],
    usedMemory: Math.max(used, summary['plugged-memory'] ?? 0),
    // Without -numa QEMU has 0 nodes, yet node 0 is valid.
    nodes: numa !== undefined ? Math.max(1, Number(numa)) : fallback.nodes,
  };
}

/** Refuse a size of 0, and a size or address that is not a multiple of `unit` (naming the guest's block size when it is that). */
export function checkAligned(what: string, v: number, unit: number, blockSize: number): void {
  if (v === 0 && what === 'size') throw new HotplugError('BAD_ARGUMENT', 'size must not be 0');
  if (v % unit !== 0) {
    throw new HotplugError('UNALIGNED',
      unit === blockSize
        ? `${what} ${formatSize(v)} (0x${v.toString(16)}) is not a multiple of the guest memory block size ${formatSize(unit)}; the guest would reject it`
        : `${what} ${formatSize(v)} (0x${v.toString(16)}) is not a multiple of ${formatSize(unit)}`);
  }
}

/** Refuse a device of `size` bytes that does not fit under maxmem (when it is known). */
export function checkHeadroom(id: string, size: number, l: MachineLimits): void {
  if (l.maxMemory === undefined) return;
  const free = l.maxMemory - l.baseMemory - l.usedMemory;
  if (size > free) {
    throw new HotplugError('NO_HEADROOM',
      `${id}: ${formatSize(size)} does not fit under maxmem ${formatSize(l.maxMemory)} (boot ${formatSize(l.baseMemory)}, plugged ${formatSize(l.usedMemory)}, free ${formatSize(free)})`);
  }
}

/** Refuse a NUMA node the machine does not have. */
export function checkNode(id: string, node: number | undefined, l: MachineLimits): void {
  if (node === undefined) return;
  if (!Number.isInteger(node) || node < 0 || (l.nodes !== undefined && node >= l.nodes)) {
    throw new HotplugError('NO_SUCH_NODE', `${id}: node ${node} does not exist (the machine has ${l.nodes ?? '?'} nodes)`);
  }
}

/** The device id (given or the first free `<prefix>N`) and backend id, both unused. */
export async function pickIds(qmp: QmpClient, id: string | undefined, memdev: string | undefined, prefix: string): Promise<{ id: string; memdev: string }> {
  const names = async (path: string): Promise<Set<string>> =>
    new Set((await qmp.execute<{ name: string }[]>('qom-list', { path })).map((p) => p.name));
  const [devices, objects] = await Promise.all([names('/machine/peripheral'), names('/objects')]);
  let n = 0;
  const pick = id ?? (() => { while (devices.has(`${prefix}${n}`) || objects.has(`mem-${prefix}${n}`)) n++; return `${prefix}${n}`; })();
  if (devices.has(pick)) throw new HotplugError('ID_IN_USE', `device id ${pick} is already in use`);
  const mem = memdev ?? `mem-${pick}`;
  if (objects.has(mem)) throw new HotplugError('ID_IN_USE', `object id ${mem} is already in use`);
  return { id: pick, memdev: mem };
}

/** The two steps of every memory-device add: a RAM backend, then the device that uses it. */
export function addPlan(id: string, memdev: string, size: number, dev: Record<string, unknown>): Plan {
  return {
    id,
    memdev,
    steps: [
      { execute: 'object-add', arguments: { 'qom-type': 'memory-backend-ram', id: memdev, size } },
      { execute: 'device_add', arguments: dev },
    ],
  };
}

/** object-add then device_add; object-del the backend again when device_add fails. */
export async function applyAdd(qmp: QmpClient, plan: Plan): Promise<void> {
  const [obj, dev] = plan.steps as [QmpStep, QmpStep];
  await qmp.execute(obj.execute, obj.arguments);
  try {
    await qmp.execute(dev.execute, dev.arguments);
  } catch (e) {
    try {
      await qmp.execute('object-del', { id: plan.memdev });
    } catch (rollback) {
      throw new HotplugRollbackError(e, plan.memdev, rollback);
    }
    throw e;
  }
}
