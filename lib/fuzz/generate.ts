/**
 * The fuzzer's scenario generator: random but valid scenarios (every one passes `validateScenario`),
 * deterministic from a seed. A machine (boot RAM, nodes, vCPUs, slots, maxmem and a kernel command line drawn
 * from the modelled parameters), then 6–20 steps weighted towards hot-plugged memory: plugs and
 * unplugs, writes of valid and odd values to every writable attribute, error injection, module loads
 * and unloads, reads, snapshots, the ACPI hotplug switch; a snapshot or (one in four) a census at the end.
 *
 * The generator follows where QEMU puts each DIMM (first fit from 4 GiB, 2 MiB aligned, as
 * `Machine.dimmAddress` does) so that its block writes name the blocks a plug creates (`memory32` for
 * the first DIMM on these machines). It never writes `state`/`online` of boot blocks (which boot pages
 * a guest kernel allocated is not deterministic) and never points `hard_offline_page` or
 * `soft_offline_page` at boot memory (poisoning a page the guest's own kernel or agent uses kills it);
 * boot blocks are still read. Steps one side cannot run (`alloc`, `free`, `pin`, `unpin`, `sh`) are
 * never generated.
 */
import { errnoCode, ERRNO } from '../errors.js';
import { getProfile } from '../kernel/profile.js';
import { INJECT_BASE_MODULE, INJECT_DIR, INJECT_MODULE } from '../scenario/run.js';
import { validateScenario, type InjectAction, type Scenario, type ScenarioKernel } from '../scenario/schema.js';
import { Rng } from './rng.js';
import { addressText, valueFor, type ValueKind } from './values.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const BLOCK = 128 * MiB;
/** Where QEMU's pc machine starts the device-memory window on these machines (below 3.5 GiB of RAM). */
const DIMM_BASE = 4 * GiB;
const MEM = '/sys/devices/system/memory';
const NODE = '/sys/devices/system/node';
const PARAMS = '/sys/module/memory_hotplug/parameters';

/** Options of {@link generateScenario}. */
export interface GenerateOptions {
  /** The kernel the scenario is for (`machine.kernel` names only it; `memmap_on_memory=force` only where the profile has it). */
  kernel: ScenarioKernel;
  /** The scenario's own seed (a campaign derives it with `mixSeed(seed, index, kernel)`). */
  seed: number;
  /** The scenario's name; default `fuzz-<seed>`. */
  name?: string;
  /** Fewest steps, the final snapshot included. Default 6. */
  minSteps?: number;
  /** Most steps, the final snapshot included. Default 20. */
  maxSteps?: number;
}

/** A DIMM as the generator believes the machine placed it. */
interface DimmModel {
  readonly id: string;
  readonly size: number;
  readonly addr: number;
  /** The block ids the kernel adds for it: none when start or size is not block aligned (add_memory refuses). */
  readonly blocks: readonly number[];
}

/** What the generator tracks while it writes steps. */
interface Model {
  readonly rng: Rng;
  readonly ram: number;
  readonly maxmem: number;
  readonly nodes: number;
  readonly slots: number;
  readonly dimms: Map<string, DimmModel>;
  /** Ids once plugged (for plugs that reuse one and unplugs of a DIMM already gone). */
  readonly usedIds: Set<string>;
  /** Blocks of DIMMs since unplugged. */
  readonly goneBlocks: Set<number>;
  nextId: number;
}

type Doc = Record<string, unknown>;

const sizeText = (bytes: number): string => (bytes % GiB === 0 && bytes >= GiB ? `${bytes / GiB}G` : `${bytes / MiB}M`);

/** The address QEMU gives a DIMM of `size`: the first 2 MiB-aligned gap from the window base (`Machine.dimmAddress`). */
function placeDimm(m: Model, size: number): number {
  let addr = DIMM_BASE;
  for (const d of [...m.dimms.values()].sort((a, b) => a.addr - b.addr)) {
    if (addr + size <= d.addr) break;
    addr = Math.max(addr, Math.ceil((d.addr + d.size) / (2 * MiB)) * 2 * MiB);
  }
  return addr;
}

const hotBlocks = (m: Model): number[] => [...m.dimms.values()].flatMap((d) => d.blocks);
const plugged = (m: Model): number => [...m.dimms.values()].reduce((t, d) => t + d.size, 0);

// ---------------------------------------------------------------------------------------------
// The machine.

function machineDoc(rng: Rng, kernel: ScenarioKernel): { doc: Doc; ram: number; maxmem: number; nodes: number; slots: number } {
  const ram = rng.pick([512 * MiB, 512 * MiB, 512 * MiB, GiB, GiB, 2 * GiB]);
  const nodes = rng.pick([1, 1, 2, 2, 2, 3, 3]);
  const slots = rng.pick([1, 2, 4, 4, 8, 8, 8]);
  const maxmem = rng.chance(0.4) ? 8 * GiB : ram + rng.pick([1, 2, 4]) * GiB;
  const cmdline: Doc = {};
  if (rng.chance(0.75)) cmdline.memhp_default_state = rng.weighted({ online_movable: 4, offline: 3, online: 2, online_kernel: 1 });
  if (rng.chance(0.3)) cmdline['memory_hotplug.online_policy'] = rng.pick(['contig-zones', 'auto-movable']);
  if (rng.chance(0.15)) cmdline['memory_hotplug.auto_movable_ratio'] = rng.pick([0, 50, 100, 301, 1000, 3000]);
  if (rng.chance(0.1)) cmdline['memory_hotplug.auto_movable_numa_aware'] = rng.chance(0.5);
  if (rng.chance(0.2)) cmdline['memory_hotplug.memmap_on_memory'] = rng.pick<boolean | 'force'>(getProfile(kernel).memmapOnMemoryForce ? [true, false, 'force'] : [true, false]);
  if (rng.chance(0.1)) cmdline.movable_node = true;
  // Fewer vCPUs than nodes leaves nodes without a CPU (kswapd, has_cpu and the node's first block differ); more go to node 0.
  const cpus = nodes > 1 && rng.chance(0.3) ? rng.int(1, nodes + 1) : undefined;
  return { doc: { kernel: [kernel], memory: sizeText(ram), nodes, ...(cpus !== undefined ? { cpus } : {}), slots, maxMemory: sizeText(maxmem), cmdline }, ram, maxmem, nodes, slots };
}

// ---------------------------------------------------------------------------------------------
// Steps.

function plugStep(m: Model): Doc {
  const { rng } = m;
  const room = m.maxmem - m.ram - plugged(m);
  let size: number;
  const kind = rng.weighted({ aligned: 70, unaligned: 13, odd: 4, tooBig: 13 });
  if (kind === 'aligned') size = BLOCK * rng.pick([1, 1, 2, 2, 3, 4, 8]);
  else if (kind === 'unaligned') size = MiB * rng.pick([2, 64, 64, 192, 192, 320, 130]);
  else if (kind === 'odd') size = MiB * rng.pick([3, 129, 1]);
  else size = rng.chance(0.7) ? Math.max(BLOCK, Math.ceil((room + 1) / BLOCK) * BLOCK) : 16 * GiB;
  const reuse = m.usedIds.size > 0 && rng.chance(0.1);
  const id = reuse ? rng.pick([...m.usedIds]) : `d${++m.nextId}`;
  const node = rng.chance(0.9) ? rng.int(0, m.nodes - 1) : m.nodes + rng.int(0, 4);
  // What QEMU and the ACPI driver will do with it (Machine.plugDimm's checks, in its order).
  const slotFree = m.dimms.size < m.slots;
  const fits = size <= room;
  if (!m.dimms.has(id) && size % (2 * MiB) === 0 && node < m.nodes && slotFree && fits) {
    const addr = placeDimm(m, size);
    const aligned = addr % BLOCK === 0 && size % BLOCK === 0;
    const blocks = aligned ? Array.from({ length: size / BLOCK }, (_, i) => addr / BLOCK + i) : [];
    m.dimms.set(id, { id, size, addr, blocks });
    for (const b of blocks) m.goneBlocks.delete(b);
  }
  m.usedIds.add(id);
  const doc: Doc = { id, size: sizeText(size) };
  if (node !== 0 || rng.chance(0.3)) doc.node = node;
  return { plug: doc };
}

function unplugStep(m: Model): Doc {
  const { rng } = m;
  const live = [...m.dimms.keys()];
  const gone = [...m.usedIds].filter((id) => !m.dimms.has(id));
  const which = rng.weighted({ live: live.length ? 80 : 0, gone: gone.length ? 10 : 0, unknown: 10 });
  const id = which === 'live' ? rng.pick(live) : which === 'gone' ? rng.pick(gone) : rng.pick(['nope', 'dimm9', 'd99']);
  const d = m.dimms.get(id);
  // Assume the eject goes through; a refused one (an injected veto, a busy Normal block) leaves blocks the generator still targets, which is fine.
  if (d) {
    m.dimms.delete(id);
    for (const b of d.blocks) m.goneBlocks.add(b);
  }
  return { unplug: { id } };
}

/** A block id to write: mostly a hot-plugged one, sometimes one that is gone or never existed. */
function blockTarget(m: Model): number {
  const { rng } = m;
  const hot = hotBlocks(m);
  const which = rng.weighted({ hot: hot.length ? 85 : 0, gone: m.goneBlocks.size ? 8 : 0, never: 7 });
  if (which === 'hot') return rng.pick(hot);
  if (which === 'gone') return rng.pick([...m.goneBlocks]);
  const ids = new Set([...hot, ...m.goneBlocks]);
  let id = rng.chance(0.5) ? rng.int(32, 120) : rng.int(200, 99999);
  while (ids.has(id) || id < m.ram / BLOCK) id++;
  return id;
}

function blockWriteStep(m: Model): Doc {
  const id = blockTarget(m);
  const attr = m.rng.chance(0.55) ? 'state' : 'online';
  return { write: { path: `${MEM}/memory${id}/${attr}`, value: valueFor(m.rng, attr === 'state' ? 'online-type' : 'bool') } };
}

const PARAM_FILES: readonly (readonly [string, ValueKind, number])[] = [
  [`${MEM}/auto_online_blocks`, 'online-type', 4],
  [`${PARAMS}/online_policy`, 'policy', 2],
  [`${PARAMS}/auto_movable_ratio`, 'uint', 2],
  [`${PARAMS}/auto_movable_numa_aware`, 'bool', 2],
  [`${PARAMS}/memmap_on_memory`, 'bool', 1],
];

function paramWriteStep(m: Model): Doc {
  const i = Number(m.rng.weighted(Object.fromEntries(PARAM_FILES.map(([, , w], k) => [String(k), w]))));
  const [path, kind] = PARAM_FILES[i]!;
  return { write: { path, value: valueFor(m.rng, kind) } };
}

/** `soft_offline_page`, `hard_offline_page` and `probe` (absent on Debian's x86 kernels), never at boot memory. */
function pageOfflineStep(m: Model): Doc {
  const { rng } = m;
  const file = rng.weighted({ soft_offline_page: 5, hard_offline_page: 5, probe: 1 });
  const dimms = [...m.dimms.values()];
  const where = rng.weighted({ dimm: dimms.length ? 55 : 0, beyond: 20, junk: 25 });
  let value: string;
  if (where === 'dimm') {
    // The DIMM's last MiB: a freshly onlined zone hands out its lowest pages first (FPI_TO_TAIL), so the
    // guest's own allocations are least likely there.
    const d = rng.pick(dimms);
    value = addressText(rng, d.addr + d.size - MiB + rng.int(0, 255) * 4096);
  } else if (where === 'beyond') value = addressText(rng, rng.pick([m.maxmem + 64 * GiB, 2 ** 40 + 4096, 2 ** 46, DIMM_BASE + 64 * GiB]));
  else value = rng.pick(['', 'x', '-1', '0x', '18446744073709551616', '0x10000000000000000', ' 0x100000000', '0x100000000\0', '-0x100000000']);
  return { write: { path: `${MEM}/${file}`, value } };
}

function ueventWriteStep(m: Model): Doc {
  const { rng } = m;
  const hot = hotBlocks(m);
  const where = rng.weighted({ hot: hot.length ? 5 : 0, boot: 2, root: 2, node: 1 });
  const path =
    where === 'hot' ? `${MEM}/memory${rng.pick(hot)}/uevent` : where === 'boot' ? `${MEM}/memory${rng.int(0, m.ram / BLOCK - 1)}/uevent` : where === 'root' ? `${MEM}/uevent` : `${NODE}/uevent`;
  return { write: { path, value: valueFor(rng, 'uevent') } };
}

/** A write to a read-only attribute (EACCES), or to one this kernel lacks. */
function readOnlyWriteStep(m: Model): Doc {
  const { rng } = m;
  const hot = hotBlocks(m);
  const block = hot.length ? rng.pick(hot) : rng.int(0, m.ram / BLOCK - 1);
  const path = rng.pick([
    `${MEM}/memory${block}/valid_zones`,
    `${MEM}/memory${block}/phys_index`,
    `${MEM}/memory${block}/removable`,
    `${MEM}/memory${block}/phys_device`,
    `${MEM}/block_size_bytes`,
    `${MEM}/crash_hotplug`,
    `${NODE}/has_memory`,
    `${NODE}/possible`,
  ]);
  return { write: { path, value: valueFor(rng, 'any') } };
}

const COMMON_ERRNOS = ['EBUSY', 'ENOMEM', 'EINVAL', 'EPERM', 'EIO', 'ENOSPC', 'EAGAIN', 'EEXIST', 'ENODEV', 'ERANGE', 'EHWPOISON', 'ECANCELED', 'EINTR'];

function errnoName(rng: Rng): string {
  const kind = rng.weighted({ common: 60, named: 20, number: 15, restart: 5 });
  if (kind === 'common') return rng.pick(COMMON_ERRNOS);
  if (kind === 'named') return rng.pick(Object.keys(ERRNO));
  // Kernel-internal codes (ERESTARTSYS 512 … 517) and numbers without a name, up to MAX_ERRNO.
  const n = kind === 'restart' ? rng.int(512, 517) : rng.pick([134, 200, 1000, 4094, 4095, rng.int(134, 4095)]);
  return errnoCode(n)!;
}

function priority(rng: Rng): number {
  if (rng.chance(0.55)) return 0;
  return rng.pick([-100, 100, 1, -1, 2147483647, -2147483648, 2147483648, rng.int(-1000, 1000)]);
}

const ACTIONS: readonly InjectAction[] = ['MEM_GOING_ONLINE', 'MEM_GOING_OFFLINE'];

function injectStep(m: Model): Doc {
  const { rng } = m;
  const p = priority(rng);
  return { inject: { action: rng.pick(ACTIONS), errno: errnoName(rng), ...(p !== 0 || rng.chance(0.2) ? { priority: p } : {}) } };
}

function moduleStep(m: Model): Doc {
  const { rng } = m;
  const module = rng.weighted({ [INJECT_MODULE]: 5, [INJECT_BASE_MODULE]: 4, 'no-such-module': 1 });
  if (rng.chance(0.4)) return { rmmod: { module } };
  const doc: Doc = { module };
  if (module === INJECT_MODULE && rng.chance(0.5)) {
    doc.params = rng.chance(0.8) ? { priority: priority(rng) } : rng.pick<Record<string, string | number>>([{ priority: 'abc' }, { priority: '0x10' }, { priority: '-0' }, { foo: 1 }]);
  }
  return { insmod: doc };
}

function readStep(m: Model): Doc {
  const { rng } = m;
  const hot = hotBlocks(m);
  const where = rng.weighted({ hot: hot.length ? 40 : 0, boot: 15, root: 30, missing: 15 });
  const attrs = ['state', 'online', 'valid_zones', 'phys_index', 'phys_device', 'removable'];
  // The ACPI device of a hot-added block's slot, through its firmware_node link.
  const firmware = ['firmware_node/status', 'firmware_node/path', 'firmware_node/physical_node/phys_index', 'firmware_node/physical_node1/state'];
  let path: string;
  if (where === 'hot') path = `${MEM}/memory${rng.pick(hot)}/${rng.chance(0.2) ? rng.pick(firmware) : rng.pick(attrs)}`;
  else if (where === 'boot') path = `${MEM}/memory${rng.int(0, m.ram / BLOCK - 1)}/${rng.pick(attrs)}`;
  else if (where === 'root')
    path = rng.pick([
      `${MEM}/block_size_bytes`,
      `${MEM}/auto_online_blocks`,
      `${MEM}/crash_hotplug`,
      `${MEM}/soft_offline_page`,
      `${NODE}/has_memory`,
      `${NODE}/has_normal_memory`,
      `${NODE}/possible`,
      `${NODE}/online`,
      `${NODE}/has_cpu`,
      `${NODE}/has_generic_initiator`,
      `${NODE}/node${rng.int(0, m.nodes)}`,
      '/sys/firmware/acpi/hotplug/memory/enabled',
      ...PARAM_FILES.map(([p]) => p).filter((p) => p.startsWith(PARAMS)),
      `${INJECT_DIR}/${rng.pick(ACTIONS)}/error`,
    ]);
  else path = rng.pick([`${MEM}/memory${rng.int(200, 9999)}/state`, `${MEM}/probe`, `${MEM}/memory0/bogus`, `${PARAMS}/bogus`, `${NODE}/node9/has_memory`]);
  return { read: { path } };
}

/** The step kinds and their weights in the model's current state: most steps touch hot-plugged memory. */
function stepWeights(m: Model): Record<string, number> {
  const hot = hotBlocks(m).length > 0;
  return {
    plug: m.dimms.size === 0 ? 30 : m.dimms.size < m.slots ? 12 : 3,
    unplug: m.dimms.size ? 8 : 1,
    blockWrite: hot ? 32 : 3,
    paramWrite: 7,
    pageOffline: 3,
    ueventWrite: 2,
    readOnlyWrite: 2,
    inject: 5,
    uninject: 2,
    errorWrite: 2,
    module: 3,
    read: 10,
    acpiHotplug: 1,
    snapshot: 2,
  };
}

function stepDoc(m: Model): Doc | string {
  const { rng } = m;
  switch (rng.weighted(stepWeights(m))) {
    case 'plug':
      return plugStep(m);
    case 'unplug':
      return unplugStep(m);
    case 'blockWrite':
      return blockWriteStep(m);
    case 'paramWrite':
      return paramWriteStep(m);
    case 'pageOffline':
      return pageOfflineStep(m);
    case 'ueventWrite':
      return ueventWriteStep(m);
    case 'readOnlyWrite':
      return readOnlyWriteStep(m);
    case 'inject':
      return injectStep(m);
    case 'uninject':
      return rng.chance(0.5) ? 'uninject' : { uninject: { action: rng.pick(ACTIONS) } };
    case 'errorWrite':
      return { write: { path: `${INJECT_DIR}/${rng.pick(ACTIONS)}/error`, value: valueFor(rng, 'errno-int') } };
    case 'module':
      return moduleStep(m);
    case 'read':
      return readStep(m);
    case 'acpiHotplug':
      // Memory hotplug of the ACPI scan handler on and off: ejects are then refused (_OST 0x80).
      return { write: { path: '/sys/firmware/acpi/hotplug/memory/enabled', value: rng.chance(0.8) ? rng.pick(['0', '1']) : valueFor(rng, 'uint') } };
    default:
      return rng.chance(0.5) ? 'snapshot' : { snapshot: { name: `mid${rng.int(1, 9)}` } };
  }
}

/**
 * A random valid scenario for one kernel, the same for the same options. Throws only if the generator
 * itself is wrong (the scenario would not validate).
 */
export function generateScenario(opts: GenerateOptions): Scenario {
  const rng = new Rng(opts.seed);
  const machine = machineDoc(rng, opts.kernel);
  const m: Model = { rng, ram: machine.ram, maxmem: machine.maxmem, nodes: machine.nodes, slots: machine.slots, dimms: new Map(), usedIds: new Set(), goneBlocks: new Set(), nextId: 0 };
  const n = rng.int(opts.minSteps ?? 6, opts.maxSteps ?? 20);
  const steps: (Doc | string)[] = [];
  for (let i = 0; i < n - 1; i++) steps.push(stepDoc(m));
  // A census now and then instead: every file of the hotplug trees, not only the snapshot's.
  steps.push(rng.chance(0.25) ? 'census' : rng.chance(0.7) ? 'snapshot' : { snapshot: { name: 'end' } });
  const name = opts.name ?? `fuzz-${(opts.seed >>> 0).toString(16).padStart(8, '0')}`;
  return validateScenario({ name, machine: machine.doc, steps }, { source: `generated scenario ${name}` });
}
