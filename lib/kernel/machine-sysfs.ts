/**
 * The files of a simulated machine: `/sys/devices/system/memory`, `/sys/devices/system/node`,
 * `/sys/bus/memory`, `/sys/module/memory_hotplug`, `/sys/firmware/memmap` and `/sys/firmware/acpi/hotplug`,
 * the DIMM slots' ACPI devices, debugfs, and the `/proc` files memory hotplug changes (meminfo, zoneinfo,
 * buddyinfo, iomem), each with the kernel's text format and write errnos.
 */
import { KernelError } from '../errors.js';
import { ZONE_TYPES } from '../native/constants.js';
import { validZones } from './hotplug.js';
import { onlineStore, onlineTypeFromStr, stateStore, type MemoryBlock } from './memory-block.js';
import { kstrtoull } from './kstrtox.js';
import { formatMemmapOnMemory, kstrtobool, sysfsStreq, type MemoryHotplugParam } from './profile.js';
import { link, ro, rw, StaticDir, Sysfs, wo, type SysDir, type SysNode } from './sysfs.js';
import type { Machine } from './machine.js';
import {
  acpiHotplugDir,
  acpiSlots,
  MEMORY_HOTPLUG_CONTROLLER,
  memoryBusFiles,
  nodeDeviceFiles,
  nodeList,
  powerDir,
  type HugePool,
  type MemoryFailureStats,
} from './device-sysfs.js';

export { nodeList } from './device-sysfs.js';

/** A pfn as the kernel's `%#lx` prints it. */
function hexPfn(pfn: number): string {
  return `0x${pfn.toString(16)}`;
}

/** A directory computed from a getter and a lister. */
class ComputedDir implements SysDir {
  readonly kind = 'dir';
  constructor(
    readonly get: (name: string) => SysNode | undefined,
    readonly list: () => string[],
  ) {}
}

/** `/sys/devices/system/memory/memoryN`. */
function blockDir(m: Machine, mem: MemoryBlock): SysDir {
  const files = new StaticDir({
    phys_index: ro(() => `${mem.id.toString(16).padStart(8, '0')}\n`),
    state: rw(
      () => `${mem.state}\n`,
      (v, signal) => stateStore(m, mem, v, signal),
    ),
    // online_show takes the device lock: a read during an offline waits for its outcome. Each read
    // is its own process (task), so two concurrent readers are not one task locking twice.
    online: rw(
      () =>
        m.task('cat', async () => {
          await mem.deviceLock.lock('online_show');
          const v = mem.devOffline ? 0 : 1;
          mem.deviceLock.unlock();
          return `${v}\n`;
        }),
      (v, signal) => onlineStore(m, mem, v, signal),
    ),
    phys_device: ro(() => '0\n'),
    removable: ro(() => '1\n'),
    valid_zones: ro(() => (mem.state === 'online' ? `${mem.zone ?? 'none'}\n` : `${validZones(m, mem)}\n`)),
    // A synthetic uevent (udevadm trigger) reaches listeners like a real one: it goes to the trace.
    uevent: rw(
      () => '',
      (v) => m.trace.add({ type: 'uevent', action: parseSynthUevent(v), devpath: mem.devpath }),
    ),
    subsystem: link('../../../../bus/memory'),
    power: powerDir(),
  });
  const dynamic = () => {
    const d: Record<string, SysNode> = { [`node${mem.nid}`]: link(`../../node/node${mem.nid}`) };
    if (mem.firmwareNode) d.firmware_node = link(`../../../${MEMORY_HOTPLUG_CONTROLLER}/${mem.firmwareNode}`);
    return d;
  };
  return new ComputedDir(
    (name) => files.get(name) ?? dynamic()[name],
    () => [...files.list(), ...Object.keys(dynamic())],
  );
}

function memoryRoot(m: Machine, mf: (nid: number) => MemoryFailureStats): SysDir {
  const dirs = new Map<number, SysDir>();
  m.onBlocksChanged = (mem, added) => void (added ? dirs.set(mem.id, blockDir(m, mem)) : dirs.delete(mem.id));
  for (const mem of m.blocks.values()) dirs.set(mem.id, blockDir(m, mem));
  // Both stores turn any kstrtoull failure (ERANGE included) into EINVAL, then shift to a pfn.
  const pfnOf = (v: string): number => {
    try {
      return Number(kstrtoull(v) >> 12n);
    } catch {
      throw new KernelError('EINVAL', `invalid physical address ${JSON.stringify(v)}`);
    }
  };
  // pfn_valid: the section has a memmap (every present section belongs to a block device);
  // pfn_to_online_page: and it is online.
  const section = (pfn: number) => (m.blocks.has(Math.floor(pfn / m.blockPages)) ? m.physmem.sectionInfo(pfn) : { present: false, online: false });
  // memory_failure(pfn, MF_SW_SIMULATED): ENXIO outside online memory ("memory outside kernel
  // control"), EHWPOISON when TestSetPageHWPoison finds the page already poisoned.
  const hardOffline = (v: string) => {
    const pfn = pfnOf(v);
    const s = section(pfn);
    if (!s.present) throw new KernelError(m.kernel.memoryFailureOutsideErrno, `${hexPfn(pfn)}: no memmap`);
    if (!s.online) throw new KernelError('ENXIO', `${hexPfn(pfn)}: memory outside kernel control`);
    // A page already poisoned is refused before any action_result, so it is not counted (6.12, 7.2
    // guests); a handled free page counts as recovered on its node (memory_failure_stats, 6.8+).
    if (m.physmem.pageState(pfn).state === 'hwpoison') {
      if (m.kernel.memoryFailureAlreadyPoisoned === 'ok') return; // 5.10: logged, and success
      throw new KernelError('EHWPOISON', `${hexPfn(pfn)}: already hardware poisoned`);
    }
    m.hwpoison(pfn);
    const stats = mf(m.blocks.get(Math.floor(pfn / m.blockPages))!.nid);
    stats.total++;
    stats.recovered++;
  };
  // soft_offline_page(pfn, 0): ENXIO without a memmap, EIO for an offline section, success for a
  // page already poisoned ("page already poisoned"), EIO for a page it cannot handle (neither free
  // nor LRU/movable: kernel, slab, reserved; "unhandlable page"), EBUSY when migration fails (pinned).
  const softOffline = (v: string) => {
    const pfn = pfnOf(v);
    const s = section(pfn);
    if (!s.present) throw new KernelError('ENXIO', `${hexPfn(pfn)}: no such page`);
    if (!s.online) throw new KernelError('EIO', `${hexPfn(pfn)}: page is offline`);
    const state = m.physmem.pageState(pfn).state;
    if (state === 'hwpoison') return;
    if (state === 'pinned') throw new KernelError('EBUSY', `${hexPfn(pfn)}: page migration failed`);
    if (state !== 'free' && state !== 'movable') throw new KernelError('EIO', `${hexPfn(pfn)}: unhandlable page`);
    // A movable page in use would be migrated first; Machine.hwpoison takes free pages only (EBUSY).
    m.hwpoison(pfn);
  };
  const files = new StaticDir({
    block_size_bytes: ro(() => `${m.blockSize.toString(16)}\n`),
    auto_online_blocks: rw(
      () => `${m.params.autoOnline}\n`,
      (v) => void (m.params.autoOnline = onlineTypeFromStr(v)),
    ),
    soft_offline_page: wo(softOffline),
    hard_offline_page: wo(hardOffline),
    uevent: rootUevent(),
    power: powerDir(),
  });
  if (m.kernel.crashHotplugAttr) files.set('crash_hotplug', ro(() => '0\n'));
  return new ComputedDir(
    (name) => {
      const b = /^memory(0|[1-9]\d*)$/.exec(name);
      return b ? dirs.get(Number(b[1])) : files.get(name);
    },
    () => [...files.list(), ...[...dirs.keys()].map((id) => `memory${id}`)],
  );
}

/** The actions `kobject_action_type` knows, in the kernel's table order. */
const KOBJ_ACTIONS = ['add', 'remove', 'change', 'move', 'online', 'offline', 'bind', 'unbind'] as const;

/**
 * Parse a write to a device's `uevent` as `kobject_synth_uevent` does: an action name, optionally
 * followed by ` <UUID>` and ` KEY=VALUE` pairs of alphanumerics; one trailing newline (or NUL) is
 * dropped. Anything else is EINVAL. Returns the action.
 */
export function parseSynthUevent(value: string): (typeof KOBJ_ACTIONS)[number] {
  const v = value.endsWith('\n') || value.endsWith('\0') ? value.slice(0, -1) : value;
  const sp = v.indexOf(' ');
  const action = KOBJ_ACTIONS.find((a) => a === (sp < 0 ? v : v.slice(0, sp)));
  if (!action) throw new KernelError('EINVAL', `synth uevent: unknown uevent action string ${JSON.stringify(value)}`);
  if (sp >= 0 && !/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}( [A-Za-z0-9]+=[A-Za-z0-9]+)*$/.test(v.slice(sp + 1)))
    throw new KernelError('EINVAL', `synth uevent: incorrect uevent action arguments ${JSON.stringify(value)}`);
  return action;
}

/**
 * `uevent` of a device outside any bus or class (the `memory` and `node` roots): it reads empty and a
 * valid synthetic uevent is accepted but filtered out (dev_uevent_filter), so nothing is emitted.
 */
function rootUevent() {
  return rw(
    () => '',
    (v) => void parseSynthUevent(v),
  );
}

function nodeRoot(m: Machine, mf: (nid: number) => MemoryFailureStats): SysDir {
  const all = () => Array.from({ length: m.nodes.possible }, (_, i) => i);
  const kb = (pages: number) => `${String(pages * 4).padStart(8)} kB`;
  const pools = new Map<number, HugePool>();
  const pool = (nid: number): HugePool => pools.get(nid) ?? (pools.set(nid, { pfns: [] }), pools.get(nid)!);
  const dirs = new Map<number, SysDir>();
  const nodeDir = (nid: number): SysDir => {
    const cached = dirs.get(nid);
    if (cached) return cached;
    const files = new StaticDir({
      ...nodeDeviceFiles(m, nid, mf(nid), pool(nid), parseSynthUevent),
      meminfo: ro(() => {
        let total = 0;
        let free = 0;
        for (const z of ZONE_TYPES) {
          const info = m.physmem.zoneInfo(nid, z);
          total += info?.managed ?? 0;
          free += info?.free ?? 0;
        }
        return `Node ${nid} MemTotal:       ${kb(total)}\nNode ${nid} MemFree:        ${kb(free)}\nNode ${nid} MemUsed:        ${kb(total - free)}\n`;
      }),
    });
    const blocks = () => m.sortedBlocks().filter((b) => b.nid === nid);
    // node_hugetlb_work (5.10): the hstate attributes follow N_MEMORY.
    const hugepages = () => !m.kernel.nodeHugepagesWithMemoryOnly || m.nodes.memory.has(nid);
    const dir = new ComputedDir(
      (name) => {
        const b = /^memory(0|[1-9]\d*)$/.exec(name);
        if (!b) return name === 'hugepages' && !hugepages() ? undefined : files.get(name);
        const mem = m.blocks.get(Number(b[1]));
        return mem && mem.nid === nid ? link(`../../memory/${name}`) : undefined;
      },
      () => [...files.list().filter((f) => f !== 'hugepages' || hugepages()), ...blocks().map((b) => b.name)],
    );
    dirs.set(nid, dir);
    return dir;
  };
  const files = new StaticDir({
    possible: ro(() => nodeList(all())),
    online: ro(() => nodeList(m.nodes.online)),
    has_memory: ro(() => nodeList(m.nodes.memory)),
    has_normal_memory: ro(() => nodeList(m.nodes.normal)),
    has_cpu: ro(() => nodeList(all().filter((n) => m.cpusOfNode(n).length > 0))),
    // N_GENERIC_INITIATOR: QEMU's pc machine describes no generic initiators, so the list is empty.
    has_generic_initiator: ro(() => '\n'),
    uevent: rootUevent(),
    power: powerDir(),
  });
  return new ComputedDir(
    (name) => {
      const n = /^node(0|[1-9]\d*)$/.exec(name);
      return n && m.nodes.online.has(Number(n[1])) ? nodeDir(Number(n[1])) : files.get(name);
    },
    () => [...files.list(), ...[...m.nodes.online].map((n) => `node${n}`)],
  );
}

/** `/sys/module/memory_hotplug/parameters/`: the profile's module parameters of mm/memory_hotplug.c. */
function parameters(m: Machine): StaticDir {
  const all: Record<MemoryHotplugParam, SysNode> = {
    online_policy: rw(
      () => `${m.params.onlinePolicy}\n`,
      (v) => {
        // sysfs_match_string over the policy names (sysfs_streq).
        const s = (['contig-zones', 'auto-movable'] as const).find((p) => sysfsStreq(v, p));
        if (s === undefined) throw new KernelError('EINVAL', `online_policy: invalid value ${JSON.stringify(v)}`);
        m.params.onlinePolicy = s;
      },
    ),
    auto_movable_ratio: rw(
      () => `${m.params.autoMovableRatio}\n`,
      // param_set_uint: kstrtouint(val, 0), so a sign is EINVAL and more than 32 bits ERANGE.
      (v) => {
        const n = kstrtoull(v);
        if (n > 0xffffffffn) throw new KernelError('ERANGE', `auto_movable_ratio: ${JSON.stringify(v)} out of range`);
        m.params.autoMovableRatio = Number(n);
      },
    ),
    auto_movable_numa_aware: rw(
      () => (m.params.autoMovableNumaAware ? 'Y\n' : 'N\n'),
      (v) => void (m.params.autoMovableNumaAware = kstrtobool(m.kernel, v)),
    ),
    memmap_on_memory: ro(() => formatMemmapOnMemory(m.params.memmapOnMemory)),
  };
  return new StaticDir(Object.fromEntries(m.kernel.memoryHotplugParams.map((p) => [p, all[p]])));
}

function firmwareMemmap(m: Machine): SysDir {
  const hex = (n: number) => `0x${n.toString(16)}\n`;
  return new ComputedDir(
    (name) => {
      const e = /^(0|[1-9]\d*)$/.test(name) ? m.firmwareMemmap.get(Number(name)) : undefined;
      return e && new StaticDir({ start: ro(() => hex(e.start)), end: ro(() => hex(e.end - 1)), type: ro(() => `${e.type}\n`) });
    },
    () => [...m.firmwareMemmap.keys()].map(String),
  );
}

/** `/proc/zoneinfo`: per node and zone the header, free pages, spanned, present, managed and start_pfn. */
function zoneinfo(m: Machine): string {
  let out = '';
  for (const nid of [...m.nodes.online].sort((a, b) => a - b)) {
    for (const zone of [...ZONE_TYPES, 'Device'] as const) {
      const z = zone === 'Device' ? null : m.physmem.zoneInfo(nid, zone);
      out += `Node ${nid}, zone ${zone.padStart(8)}\n  pages free     ${z?.free ?? 0}\n`;
      out += `        spanned  ${z?.spanned ?? 0}\n        present  ${z?.present ?? 0}\n        managed  ${z?.managed ?? 0}\n`;
      if (z && z.present) out += `  start_pfn:           ${z.start}\n`;
    }
  }
  return out;
}

function meminfo(m: Machine): string {
  let total = 0;
  let free = 0;
  for (let nid = 0; nid < m.nodes.possible; nid++)
    for (const z of ZONE_TYPES) {
      const info = m.physmem.zoneInfo(nid, z);
      total += info?.managed ?? 0;
      free += info?.free ?? 0;
    }
  const line = (label: string, pages: number) => `${(label + ':').padEnd(16)}${String(pages * 4).padStart(8)} kB\n`;
  return line('MemTotal', total) + line('MemFree', free);
}

function buddyinfo(m: Machine): string {
  let out = '';
  for (const nid of [...m.nodes.online].sort((a, b) => a - b))
    for (const zone of ZONE_TYPES) {
      const z = m.physmem.zoneInfo(nid, zone);
      if (!z || !z.present) continue;
      out += `Node ${nid}, zone ${zone.padStart(8)} ${m.physmem.buddyinfo(nid, zone)!.map((n) => String(n).padStart(6) + ' ').join('')}\n`;
    }
  return out;
}

/** `/proc/iomem` top level, as root reads it: boot e820 entries and hot-added System RAM. */
function iomem(m: Machine): string {
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  return [...m.resources]
    .sort((a, b) => a.start - b.start)
    .map((r) => `${hex(r.start)}-${hex(r.end - 1)} : ${r.name}\n`)
    .join('');
}

/** The machine's pseudo filesystems. */
export function buildSysfs(m: Machine): Sysfs {
  const root = new StaticDir();
  const sys = root.dir('sys');
  const system = sys.dir('devices').dir('system');
  const stats = new Map<number, MemoryFailureStats>();
  const mf = (nid: number): MemoryFailureStats => stats.get(nid) ?? (stats.set(nid, { total: 0, ignored: 0, failed: 0, delayed: 0, recovered: 0 }), stats.get(nid)!);
  system.set('memory', memoryRoot(m, mf));
  system.set('node', nodeRoot(m, mf));
  const bus = sys.dir('bus').dir('memory');
  for (const [k, v] of Object.entries(memoryBusFiles(m, parseSynthUevent))) bus.set(k, v);
  bus.set(
    'devices',
    new ComputedDir(
      (name) => (/^memory(0|[1-9]\d*)$/.test(name) && m.blocks.has(Number(name.slice(6))) ? link(`../../../devices/system/memory/${name}`) : undefined),
      () => m.sortedBlocks().map((b) => b.name),
    ),
  );
  // A built-in file without module parameters has no /sys/module/<name> (5.10's mm/memory_hotplug.c).
  if (m.kernel.memoryHotplugParams.length) sys.dir('module').dir('memory_hotplug').set('parameters', parameters(m)).set('uevent', wo((v) => void parseSynthUevent(v)));
  sys.dir('firmware').set('memmap', firmwareMemmap(m));
  sys.dir('firmware').dir('acpi').set('hotplug', acpiHotplugDir(m));
  const [sb, bus0, controller] = MEMORY_HOTPLUG_CONTROLLER.split('/') as [string, string, string];
  sys.dir('devices').dir(sb).dir(bus0).set(controller, acpiSlots(m, parseSynthUevent));
  sys.dir('kernel').set('debug', m.debugfs);
  const proc = root.dir('proc');
  proc.set('meminfo', ro(() => meminfo(m)));
  proc.set('zoneinfo', ro(() => zoneinfo(m)));
  proc.set('buddyinfo', ro(() => buddyinfo(m)));
  proc.set('iomem', ro(() => iomem(m)));
  return new Sysfs(root, (fn) => m.task('sh', fn));
}
