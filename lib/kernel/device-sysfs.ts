/**
 * The driver-core and ACPI files around the memory and node devices, as a guest's census shows them:
 * every device's `power/` directory (drivers/base/power/sysfs.c), the node device's files
 * (drivers/base/node.c, mm/hugetlb.c, mm/memory-failure.c, mm/vmscan.c), the memory bus's files
 * (drivers/base/bus.c), `/sys/firmware/acpi/hotplug` (drivers/acpi/sysfs.c) and the ACPI devices of
 * the DIMM slots that hot-added memory blocks link to (drivers/acpi/device_sysfs.c, acpi_memhotplug.c).
 */
import { KernelError } from '../errors.js';
import { kstrtoull } from './kstrtox.js';
import { kstrtobool, sysfsStreq } from './profile.js';
import { link, ro, rw, StaticDir, wo, type SysDir, type SysNode } from './sysfs.js';
import type { Machine } from './machine.js';

/**
 * `power/` of a device that never enabled runtime PM (memory blocks, nodes, ACPI devices): runtime PM
 * disabled ("unsupported"), `control` switches between allowed ("auto") and forbidden ("on", which
 * takes a usage count), no autosuspend (EIO both ways), asynchronous suspend off.
 */
export function powerDir(): StaticDir {
  let forbidden = false;
  let asyncSuspend = false;
  return new StaticDir({
    async: rw(
      () => (asyncSuspend ? 'enabled\n' : 'disabled\n'),
      (v) => {
        if (sysfsStreq(v, 'enabled')) asyncSuspend = true;
        else if (sysfsStreq(v, 'disabled')) asyncSuspend = false;
        else throw new KernelError('EINVAL', `power/async: ${JSON.stringify(v)}`);
      },
    ),
    autosuspend_delay_ms: rw(
      () => {
        throw new KernelError('EIO', 'power/autosuspend_delay_ms: autosuspend not in use');
      },
      () => {
        throw new KernelError('EIO', 'power/autosuspend_delay_ms: autosuspend not in use');
      },
    ),
    control: rw(
      () => (forbidden ? 'on\n' : 'auto\n'),
      (v) => {
        if (sysfsStreq(v, 'auto')) forbidden = false;
        else if (sysfsStreq(v, 'on')) forbidden = true;
        else throw new KernelError('EINVAL', `power/control: ${JSON.stringify(v)}`);
      },
    ),
    runtime_active_kids: ro(() => '0\n'),
    runtime_active_time: ro(() => '0\n'),
    runtime_enabled: ro(() => (forbidden ? 'disabled & forbidden\n' : 'disabled\n')),
    runtime_status: ro(() => 'unsupported\n'),
    runtime_suspended_time: ro(() => '0\n'),
    runtime_usage: ro(() => (forbidden ? '1\n' : '0\n')),
  });
}

/** A device's `uevent` when it has no environment of its own: reads empty; a write is a synthetic uevent (parsed, not traced). */
export function silentUevent(parse: (v: string) => unknown): SysNode {
  return rw(
    () => '',
    (v) => void parse(v),
  );
}

/** A cpumask as `%*pb` prints it: hex, 32-bit groups separated by commas, as many digits as `nr_cpu_ids` needs. */
export function cpumask(cpus: readonly number[], nrCpuIds: number): string {
  const digits = Math.max(1, Math.ceil(nrCpuIds / 4));
  let v = 0n;
  for (const c of cpus) v |= 1n << BigInt(c);
  const hex = v.toString(16).padStart(digits, '0');
  const groups: string[] = [];
  for (let end = hex.length; end > 0; end -= 8) groups.unshift(hex.slice(Math.max(0, end - 8), end));
  return `${groups.join(',')}\n`;
}

/** Per-node `memory_failure/` counters (6.8+: `struct memory_failure_stats`). */
export interface MemoryFailureStats {
  total: number;
  ignored: number;
  failed: number;
  delayed: number;
  recovered: number;
}

/** A node's hugetlb pool of one size: the huge pages the node holds (2 MiB: order 9). */
export interface HugePool {
  pfns: number[];
}

/** The node device files beside its memory links (drivers/base/node.c and friends). */
export function nodeDeviceFiles(m: Machine, nid: number, mf: MemoryFailureStats, pool: HugePool, parseUevent: (v: string) => unknown): Record<string, SysNode> {
  const cpus = m.cpusOfNode(nid);
  const files: Record<string, SysNode> = {
    // compact_store: any write compacts the node (sysfs_compact_node); memhp's buddy has nothing to gain.
    compact: wo(() => undefined),
    cpulist: ro(() => nodeList(cpus)),
    cpumap: ro(() => cpumask(cpus, m.cpus)),
    // QEMU's default SLIT: 10 to itself, 20 to every other node; node_read_distance lists the online nodes.
    distance: ro(() => `${[...m.nodes.online].sort((a, b) => a - b).map((j) => (j === nid ? 10 : 20)).join(' ')}\n`),
    hugepages: new StaticDir({ 'hugepages-2048kB': hugepagesDir(m, nid, pool) }),
    subsystem: link('../../../../bus/node'),
    power: powerDir(),
    uevent: silentUevent(parseUevent),
  };
  // arch_node_dev_group (x86/, empty without SGX EPC on the node): not on 5.10.
  if (m.kernel.nodeArchDir) files.x86 = new StaticDir();
  for (const c of cpus) files[`cpu${c}`] = link(`../../cpu/cpu${c}`);
  if (m.kernel.nodeMemoryFailureStats) {
    files.memory_failure = new StaticDir(Object.fromEntries((['delayed', 'failed', 'ignored', 'recovered', 'total'] as const).map((k) => [k, ro(() => `${mf[k]}\n`)])));
  }
  // reclaim_store (7.x, proactive reclaim per node): memhp keeps no page cache or anonymous LRU to
  // reclaim from, so a valid request reclaims nothing and fails as the kernel then does (EAGAIN).
  if (m.kernel.nodeReclaimAttr) files.reclaim = wo((v) => void parseReclaim(v));
  return files;
}

/** A nodemask or cpumask as `%*pbl` prints it: `0`, `0-1`, `0,2-3`, or empty; with its newline. */
export function nodeList(nodes: Iterable<number>): string {
  const s = [...new Set(nodes)].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < s.length; ) {
    let j = i;
    while (j + 1 < s.length && s[j + 1] === s[j]! + 1) j++;
    out.push(i === j ? `${s[i]}` : `${s[i]}-${s[j]}`);
    i = j + 1;
  }
  return out.join(',') + '\n';
}

/** `reclaim` takes `<size> [swappiness=N|max]`; memparse sizes. Nothing is reclaimable here: EAGAIN. */
function parseReclaim(v: string): never {
  const words = v.replace(/\n$/, '').trim().split(/\s+/);
  if (!words[0] || !/^\d+[kKmMgGtTpPeE]?$/.test(words[0]) || words.slice(1).some((w) => !/^swappiness=(\d+|max)$/.test(w))) throw new KernelError('EINVAL', `reclaim: ${JSON.stringify(v)}`);
  throw new KernelError('EAGAIN', `reclaim: nothing reclaimable`);
}

/**
 * `hugepages/hugepages-2048kB/` of a node: `nr_hugepages` grows the pool by allocating 2 MiB blocks on
 * the node (as many as it can get, as the kernel does) and shrinks it by freeing them.
 */
function hugepagesDir(m: Machine, nid: number, pool: HugePool): StaticDir {
  return new StaticDir({
    free_hugepages: ro(() => `${pool.pfns.length}\n`),
    nr_hugepages: rw(
      () => `${pool.pfns.length}\n`,
      (v) => {
        let n: bigint;
        try {
          n = kstrtoull(v, 10);
        } catch {
          throw new KernelError('EINVAL', `nr_hugepages: ${JSON.stringify(v)}`);
        }
        const want = Number(n > 1_000_000n ? 1_000_000n : n);
        if (want > pool.pfns.length) {
          const got = m.alloc({ count: want - pool.pfns.length, order: 9, kind: 'movable', nid, thisNode: true });
          pool.pfns.push(...got);
        } else if (want < pool.pfns.length) m.free(pool.pfns.splice(want));
      },
    ),
    surplus_hugepages: ro(() => '0\n'),
  });
}

/** `/sys/firmware/acpi/hotplug`: the ACPI hotplug profiles QEMU's pc machine has, all enabled. */
export function acpiHotplugDir(m: Machine): StaticDir {
  const enabled = (what: 'memory' | 'pci_root' | 'processor') =>
    new StaticDir({
      enabled: rw(
        () => (m.acpiHotplugEnabled[what] ? '1\n' : '0\n'),
        // hotplug_enabled_store: a decimal 0 or 1 (kstrtouint base 10); 6.1, 6.12 and 7.2 guests refuse
        // '979', '10', '0x1', 'n', 'on' and 'Yes' alike with EINVAL.
        (v) => {
          let n: bigint;
          try {
            n = kstrtoull(v, 10);
          } catch {
            throw new KernelError('EINVAL', `hotplug/${what}/enabled: ${JSON.stringify(v)}`);
          }
          if (n > 1n) throw new KernelError('EINVAL', `hotplug/${what}/enabled: ${JSON.stringify(v)}`);
          m.acpiHotplugEnabled[what] = n === 1n;
        },
      ),
    });
  return new StaticDir({
    // force_remove_store: enabling it is no longer supported.
    force_remove: rw(
      () => '0\n',
      (v) => {
        if (kstrtobool(m.kernel, v)) throw new KernelError('EINVAL', 'force_remove: enabling it is no longer supported');
      },
    ),
    memory: enabled('memory'),
    pci_root: enabled('pci_root'),
    processor: enabled('processor'),
  });
}

/** The ACPI device of DIMM slot `slot` (QEMU's `\_SB.MHPC.MPxx`, a PNP0C80 under the PNP0A06 memory hotplug controller). */
export function acpiSlotName(slot: number): string {
  return `PNP0C80:${slot.toString(16).padStart(2, '0')}`;
}

/** Path of the memory hotplug controller's ACPI device, relative to /sys/devices. */
export const MEMORY_HOTPLUG_CONTROLLER = 'LNXSYSTM:00/LNXSYBUS:00/PNP0A06:04';

/**
 * The ACPI devices of the DIMM slots: one per slot, present (`status` 15) while a DIMM is in it,
 * `physical_node`, `physical_node1`, … linking to the memory blocks the driver bound, in the order it
 * bound them (ascending); `eject` ejects the DIMM as a guest-initiated ACPI eject.
 */
export function acpiSlots(m: Machine, parseUevent: (v: string) => unknown): SysDir {
  const slotDir = (slot: number): SysDir => {
    const pnp = acpiSlotName(slot);
    const files = new StaticDir({
      eject: wo((v) => m.acpiEjectStore(slot, v)),
      hid: ro(() => 'PNP0C80\n'),
      modalias: ro(() => 'acpi:PNP0C80:\n'),
      path: ro(() => `\\_SB_.MHPC.MP${slot.toString(16).toUpperCase().padStart(2, '0')}\n`),
      status: ro(() => ([...m.dimms.values()].some((d) => d.slot === slot) ? '15\n' : '0\n')),
      subsystem: link('../../../../../bus/acpi'),
      uevent: rw(
        () => 'MODALIAS=acpi:PNP0C80:\n',
        (v) => void parseUevent(v),
      ),
      uid: ro(() => `0x${slot.toString(16).toUpperCase().padStart(2, '0')}\n`),
    });
    if (m.kernel.acpiDevicePowerDir) files.set('power', powerDir());
    const physical = (): Record<string, SysNode> => {
      const bound = m.sortedBlocks().filter((b) => b.firmwareNode === pnp);
      return Object.fromEntries(bound.map((b, i) => [i === 0 ? 'physical_node' : `physical_node${i}`, link(`../../../../system/memory/${b.name}`)]));
    };
    return {
      kind: 'dir',
      get: (name) => files.get(name) ?? physical()[name],
      list: () => [...files.list(), ...Object.keys(physical())],
    };
  };
  const dirs = new Map<string, SysDir>();
  return {
    kind: 'dir',
    get: (name) => {
      const s = /^PNP0C80:([0-9a-f]{2})$/.exec(name);
      const slot = s ? parseInt(s[1]!, 16) : -1;
      if (slot < 0 || slot >= m.slots) return undefined;
      if (!dirs.has(name)) dirs.set(name, slotDir(slot));
      return dirs.get(name);
    },
    list: () => Array.from({ length: m.slots }, (_, i) => acpiSlotName(i)),
  };
}

/** The memory bus's own files (drivers/base/bus.c): no drivers, autoprobe on. */
export function memoryBusFiles(m: Machine, parseUevent: (v: string) => unknown): Record<string, SysNode> {
  let autoprobe = true;
  return {
    drivers: new StaticDir(),
    drivers_autoprobe: rw(
      () => (autoprobe ? '1\n' : '0\n'),
      // drivers_autoprobe_store: '0' as the first byte turns it off, anything else on.
      (v) => void (autoprobe = v[0] !== '0'),
    ),
    // drivers_probe_store: the device by name (sysfs_streq), re-probed; memory blocks have no driver.
    drivers_probe: wo((v) => {
      if (!m.sortedBlocks().some((b) => sysfsStreq(v, b.name))) throw new KernelError('ENODEV', `drivers_probe: no device ${JSON.stringify(v)}`);
    }),
    uevent: wo((v) => void parseUevent(v)),
  };
}
