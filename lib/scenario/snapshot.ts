/**
 * Snapshots of `/sys/devices/system/memory`, the node files, and what hotplug changes in /proc
 * (zoneinfo, MemTotal, iomem) and `/sys/firmware/memmap`, built from the {@link HotplugTarget}
 * interface alone (`sysfs.list` + `sysfs.read`), so the same code reads a simulated Machine and a real
 * guest. {@link guestSnapshotter} is a faster path for a guest: the same snapshot in one agent round trip.
 */
import { KernelError } from '../errors.js';
import type { SysfsAccess } from '../kernel/target.js';
import type { BlockSnapshot, FileError, FileValue, MemmapEntrySnapshot, RamSnapshot, Snapshot, ZoneSnapshot } from './observation.js';

/** Root of the memory block devices. */
export const MEMORY_ROOT = '/sys/devices/system/memory';
/** Root of the node devices. */
export const NODE_ROOT = '/sys/devices/system/node';
/** The zone counters file. */
export const ZONEINFO = '/proc/zoneinfo';
/** The file MemTotal comes from. */
export const MEMINFO = '/proc/meminfo';
/** The physical address map. */
export const IOMEM = '/proc/iomem';
/** The firmware memory map (boot e820 entries and one per hot-added System RAM range). */
export const MEMMAP_ROOT = '/sys/firmware/memmap';
/** The fields of a {@link ZoneSnapshot}, in the order zoneinfo prints them. */
export const ZONE_FIELDS = ['spanned', 'present', 'managed', 'start_pfn'] as const;
/** The files of a firmware memmap entry. */
export const MEMMAP_ATTRS = ['start', 'end', 'type'] as const;
/** The flattened key of MemTotal (see {@link flattenSnapshot}). */
export const MEMTOTAL_KEY = `${MEMINFO} MemTotal`;
/** The flattened key of one zoneinfo counter: `/proc/zoneinfo node1 Movable present`. */
export const zoneinfoKey = (node: string, zone: string, field: (typeof ZONE_FIELDS)[number]): string => `${ZONEINFO} ${node} ${zone} ${field}`;
/** The parts of a key made by {@link zoneinfoKey}, or undefined for another key. */
export function parseZoneinfoKey(key: string): { node: string; zone: string; field: string } | undefined {
  const m = /^\/proc\/zoneinfo (node\d+) (\S+) (\S+)$/.exec(key);
  return m ? { node: m[1]!, zone: m[2]!, field: m[3]! } : undefined;
}

/** The per-block attributes a snapshot records, in the order `ls` shows them. */
export const BLOCK_ATTRS = ['online', 'phys_device', 'phys_index', 'removable', 'state', 'valid_zones'] as const;

/** Takes a snapshot (the runner's `snapshot` step). */
export type Snapshotter = (name?: string) => Promise<Snapshot>;

const byNumber = (prefix: string) => (a: string, b: string) => Number(a.slice(prefix.length)) - Number(b.slice(prefix.length));
const numbered = (entries: readonly string[], prefix: string): string[] =>
  entries.filter((e) => new RegExp(`^${prefix}\\d+$`).test(e)).sort(byNumber(prefix));

async function readValue(sysfs: SysfsAccess, p: string): Promise<FileValue> {
  try {
    return (await sysfs.read(p)).replace(/\n$/, '');
  } catch (e) {
    if (e instanceof KernelError) return { errno: e.code };
    throw e;
  }
}

/**
 * A snapshot through `sysfs.list` and `sysfs.read`: works on any HotplugTarget. One file at a time, as
 * one `cat` after another would: concurrent reads from one task would hold two blocks' device locks at
 * once, which the simulator's lock validator rightly reports as recursive locking.
 */
export async function takeSnapshot(sysfs: SysfsAccess, name?: string): Promise<Snapshot> {
  const blocks: Record<string, BlockSnapshot> = {};
  for (const b of numbered(await sysfs.list(MEMORY_ROOT), 'memory')) {
    const dir = `${MEMORY_ROOT}/${b}`;
    const attrs: Partial<Record<(typeof BLOCK_ATTRS)[number], FileValue>> = {};
    for (const a of BLOCK_ATTRS) attrs[a] = await readValue(sysfs, `${dir}/${a}`);
    blocks[b] = { ...(attrs as Record<(typeof BLOCK_ATTRS)[number], FileValue>), nodes: numbered(await sysfs.list(dir), 'node') };
  }
  const nodes: Record<string, string[]> = {};
  for (const n of numbered(await sysfs.list(NODE_ROOT), 'node')) nodes[n] = numbered(await sysfs.list(`${NODE_ROOT}/${n}`), 'memory');
  return {
    ...(name !== undefined ? { name } : {}),
    memory: {
      block_size_bytes: await readValue(sysfs, `${MEMORY_ROOT}/block_size_bytes`),
      auto_online_blocks: await readValue(sysfs, `${MEMORY_ROOT}/auto_online_blocks`),
      blocks,
    },
    node: {
      has_memory: await readValue(sysfs, `${NODE_ROOT}/has_memory`),
      has_normal_memory: await readValue(sysfs, `${NODE_ROOT}/has_normal_memory`),
      nodes,
    },
    ram: await takeRamSnapshot(sysfs),
  };
}

/**
 * The /proc part of a snapshot and (unless `memmap: false`) the firmware memory map, through
 * `sysfs.list` and `sysfs.read`.
 */
export async function takeRamSnapshot(sysfs: SysfsAccess, opts: { memmap?: boolean } = {}): Promise<RamSnapshot> {
  const zoneinfo = await readValue(sysfs, ZONEINFO);
  const meminfo = await readValue(sysfs, MEMINFO);
  const iomem = await readValue(sysfs, IOMEM);
  let entries: string[];
  try {
    entries = opts.memmap === false ? [] : numbered(await sysfs.list(MEMMAP_ROOT), '');
  } catch (e) {
    // No firmware map (CONFIG_FIRMWARE_MEMMAP off): no entries, as the guest script's failed `cd` gives.
    if (!(e instanceof KernelError)) throw e;
    entries = [];
  }
  const memmap: Record<string, MemmapEntrySnapshot> = {};
  for (const n of entries) {
    const e: Partial<Record<(typeof MEMMAP_ATTRS)[number], FileValue>> = {};
    for (const a of MEMMAP_ATTRS) e[a] = await readValue(sysfs, `${MEMMAP_ROOT}/${n}/${a}`);
    memmap[n] = e as MemmapEntrySnapshot;
  }
  return ramSnapshot(zoneinfo, meminfo, iomem, memmap);
}

/**
 * /proc/zoneinfo's counters by node and zone. Lines other than the zone headers and the four counters
 * are ignored, so the whole file and the guest script's filtered copy of it parse the same.
 */
export function parseZoneinfo(text: string): Record<string, Record<string, ZoneSnapshot>> {
  const out: Record<string, Record<string, ZoneSnapshot>> = {};
  let zone: Partial<Record<(typeof ZONE_FIELDS)[number], string>> | undefined;
  let at: [string, string] | undefined;
  const close = (): void => {
    if (at && zone) out[at[0]]![at[1]] = { spanned: zone.spanned ?? '', present: zone.present ?? '', managed: zone.managed ?? '', ...(zone.start_pfn !== undefined ? { start_pfn: zone.start_pfn } : {}) };
  };
  for (const line of text.split('\n')) {
    const h = /^Node (\d+), zone +(\S+)\s*$/.exec(line);
    if (h) {
      close();
      at = [`node${h[1]}`, h[2]!];
      out[at[0]] ??= {};
      zone = {};
      continue;
    }
    // `        spanned  65536` (a counter) and `  start_pfn:           1048576`.
    const f = /^\s+(spanned|present|managed|start_pfn:)\s+(\d+)\s*$/.exec(line);
    if (f && zone) zone[f[1]!.replace(':', '') as (typeof ZONE_FIELDS)[number]] = f[2]!;
  }
  close();
  return out;
}

/** The value of /proc/meminfo's MemTotal line ('670652 kB'), or '' when there is none. */
export function parseMemTotal(text: string): string {
  return /^MemTotal:\s*(.*?)\s*$/m.exec(text)?.[1] ?? '';
}

/** The top-level `System RAM` lines of /proc/iomem: range as printed → resource name. Nested lines start with a space. */
export function parseIomem(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+-[0-9a-f]+) : (System RAM.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** The /proc and firmware part of a snapshot from the three files' texts (or errnos) and the memmap entries. */
function ramSnapshot(zoneinfo: FileValue, meminfo: FileValue, iomem: FileValue, memmap: Record<string, MemmapEntrySnapshot>): RamSnapshot {
  return {
    zoneinfo: typeof zoneinfo === 'string' ? parseZoneinfo(zoneinfo) : zoneinfo,
    memTotal: typeof meminfo === 'string' ? parseMemTotal(meminfo) : meminfo,
    iomem: typeof iomem === 'string' ? parseIomem(iomem) : iomem,
    memmap,
  };
}

/** What {@link guestSnapshotter} needs of a guest: its sysfs and a shell through the agent. */
export interface ShellTarget {
  /** sysfs of the guest (used for the rare file the script could not read, to get its exact errno). */
  readonly sysfs: SysfsAccess;
  /** The guest agent. */
  readonly agent: { sh(script: string, timeoutMs?: number): Promise<string> };
}

// One pass in the guest's busybox sh. `read` is a shell builtin, so no process is forked per file,
// which matters under TCG. A file `read` cannot read is marked `!` and re-read through sysfs.read on the
// host side, so its errno is exactly what the generic path would record. /proc files come in sections
// (`%name`, then lines of the file) that the host parses as it parses the whole file. zoneinfo is the
// one fork: the builtin reads a byte per syscall, and one grep over its kilobytes (more per CPU) was
// faster under TCG than a read loop; iomem and meminfo are short (meminfo stops at its first line).
const SNAPSHOT_SCRIPT = `
r() { if IFS= read -r v 2>/dev/null < "$1"; then printf '%s\\t%s\\n' "$1" "$v"; else printf '%s\\t!\\n' "$1"; fi; }
if cd ${MEMORY_ROOT} 2>/dev/null; then
  r block_size_bytes; r auto_online_blocks
  for d in memory[0-9]*; do
    [ -d "$d" ] || continue
    for a in ${BLOCK_ATTRS.join(' ')}; do r "$d/$a"; done
    l=; for n in "$d"/node[0-9]*; do [ -e "$n" ] && l="$l \${n##*/}"; done
    printf '%s\\t@%s\\n' "$d" "$l"
  done
fi
if cd ${NODE_ROOT} 2>/dev/null; then
  r has_memory; r has_normal_memory
  for d in node[0-9]*; do
    [ -d "$d" ] || continue
    l=; for m in "$d"/memory[0-9]*; do [ -e "$m" ] && l="$l \${m##*/}"; done
    printf 'node:%s\\t@%s\\n' "$d" "$l"
  done
fi
if cd ${MEMMAP_ROOT} 2>/dev/null; then
  for d in [0-9]*; do
    [ -d "$d" ] || continue
    printf 'memmap:%s\\t@\\n' "$d"
    for a in ${MEMMAP_ATTRS.join(' ')}; do r "$d/$a"; done
  done
fi
printf '%%zoneinfo\\n'
grep -E '^Node|^ +(spanned|present|managed) |^ +start_pfn:' ${ZONEINFO} 2>/dev/null; [ $? -lt 2 ] || echo '!'
printf '%%meminfo\\n'
{ while IFS= read -r l; do case "$l" in MemTotal:*) printf '%s\\n' "$l"; break ;; esac; done < ${MEMINFO}; } 2>/dev/null || echo '!'
printf '%%iomem\\n'
{ while IFS= read -r l; do case "$l" in ' '*) ;; *' : System RAM'*) printf '%s\\n' "$l" ;; esac; done < ${IOMEM}; } 2>/dev/null || echo '!'
printf '%%end\\n'
`;

/**
 * A faster snapshot for a guest: one agent round trip running a shell script, instead of one round
 * trip per file. Produces exactly what {@link takeSnapshot} produces (the guest tests check this).
 */
export function guestSnapshotter(g: ShellTarget): Snapshotter {
  return async (name) => {
    const out = await g.agent.sh(SNAPSHOT_SCRIPT, 60_000);
    const files = new Map<string, string>();
    const dirs = { memory: new Map<string, string[]>(), node: new Map<string, string[]>(), memmap: new Map<string, string[]>() };
    const sections = new Map<string, string[]>();
    let section: string[] | undefined;
    for (const line of out.split('\n')) {
      if (line.startsWith('%')) {
        section = line === '%end' ? undefined : [];
        if (section) sections.set(line.slice(1), section);
        continue;
      }
      if (section) {
        section.push(line);
        continue;
      }
      const tab = line.indexOf('\t');
      if (tab < 0) continue;
      const key = line.slice(0, tab);
      const v = line.slice(tab + 1);
      if (v.startsWith('@')) {
        const [kind, dir] = key.includes(':') ? (key.split(':', 2) as [keyof typeof dirs, string]) : (['memory', key] as const);
        dirs[kind].set(dir, v.slice(1).split(' ').filter(Boolean));
      } else files.set(key, v);
    }
    const value = async (root: string, rel: string): Promise<FileValue> => {
      const v = files.get(rel);
      if (v === undefined) return { errno: 'ENOENT' };
      return v === '!' ? readValue(g.sysfs, `${root}/${rel}`) : v;
    };
    const proc = async (p: string): Promise<FileValue> => {
      const lines = sections.get(p.slice('/proc/'.length));
      if (lines === undefined) return { errno: 'ENOENT' };
      return lines.includes('!') ? readValue(g.sysfs, p) : lines.join('\n');
    };
    const blocks: [string, BlockSnapshot][] = [];
    for (const b of [...dirs.memory.keys()].sort(byNumber('memory'))) {
      const attrs: Partial<Record<(typeof BLOCK_ATTRS)[number], FileValue>> = {};
      for (const a of BLOCK_ATTRS) attrs[a] = await value(MEMORY_ROOT, `${b}/${a}`);
      blocks.push([b, { ...(attrs as Record<(typeof BLOCK_ATTRS)[number], FileValue>), nodes: (dirs.memory.get(b) ?? []).sort(byNumber('node')) }]);
    }
    const nodes = [...dirs.node.keys()].sort(byNumber('node')).map((n): [string, string[]] => [n, (dirs.node.get(n) ?? []).sort(byNumber('memory'))]);
    const memmap: Record<string, MemmapEntrySnapshot> = {};
    for (const n of [...dirs.memmap.keys()].sort(byNumber(''))) {
      const e: Partial<Record<(typeof MEMMAP_ATTRS)[number], FileValue>> = {};
      for (const a of MEMMAP_ATTRS) e[a] = await value(MEMMAP_ROOT, `${n}/${a}`);
      memmap[n] = e as MemmapEntrySnapshot;
    }
    return {
      ...(name !== undefined ? { name } : {}),
      memory: {
        block_size_bytes: await value(MEMORY_ROOT, 'block_size_bytes'),
        auto_online_blocks: await value(MEMORY_ROOT, 'auto_online_blocks'),
        blocks: Object.fromEntries(blocks),
      },
      node: {
        has_memory: await value(NODE_ROOT, 'has_memory'),
        has_normal_memory: await value(NODE_ROOT, 'has_normal_memory'),
        nodes: Object.fromEntries(nodes),
      },
      ram: ramSnapshot(await proc(ZONEINFO), await proc(MEMINFO), await proc(IOMEM), memmap),
    };
  };
}

/** `32-39` style list of the numbers in `memory32`..`memory39` (the kernel's node-list format). */
export function compactList(names: readonly string[]): string {
  const nums = names.map((n) => Number(/\d+$/.exec(n)?.[0] ?? NaN));
  if (nums.some((n) => Number.isNaN(n))) return names.join(' ');
  const parts: string[] = [];
  for (let i = 0; i < nums.length; ) {
    let j = i;
    while (j + 1 < nums.length && nums[j + 1] === nums[j]! + 1) j++;
    parts.push(j > i ? `${nums[i]}-${nums[j]}` : String(nums[i]));
    i = j + 1;
  }
  return parts.join(',');
}

/** Whether a snapshot part is the errno of a file that could not be read. */
export function isFileError(v: unknown): v is FileError {
  return typeof v === 'object' && v !== null && typeof (v as { errno?: unknown }).errno === 'string';
}

/** A file value as text: the text itself, or `<EIO>` for an unreadable file. */
export function fileValueText(v: FileValue): string {
  return typeof v === 'string' ? v : `<${v.errno}>`;
}

/**
 * The snapshot as `path → text`, one entry per file, link set, listing or /proc value, as a kernel
 * engineer would look it up: `/sys/devices/system/memory/memory32/valid_zones` → 'Movable',
 * `/sys/devices/system/memory/memory32/node*` → 'node1', `/sys/devices/system/node/node1/memory*` → '32-39',
 * `/proc/meminfo MemTotal` → '670652 kB', `/proc/zoneinfo node1 Movable present` → '65536' (no
 * start_pfn entry for an unpopulated zone, as the file has none), `/proc/iomem 100000000-10fffffff` →
 * 'System RAM', `/sys/firmware/memmap/7/type` → 'System RAM'.
 */
export function flattenSnapshot(s: Snapshot): Map<string, string> {
  const m = new Map<string, string>();
  m.set(`${MEMORY_ROOT}/block_size_bytes`, fileValueText(s.memory.block_size_bytes));
  m.set(`${MEMORY_ROOT}/auto_online_blocks`, fileValueText(s.memory.auto_online_blocks));
  for (const [b, blk] of Object.entries(s.memory.blocks)) {
    for (const a of BLOCK_ATTRS) m.set(`${MEMORY_ROOT}/${b}/${a}`, fileValueText(blk[a]));
    m.set(`${MEMORY_ROOT}/${b}/node*`, blk.nodes.join(' ') || '(none)');
  }
  m.set(`${NODE_ROOT}/has_memory`, fileValueText(s.node.has_memory));
  m.set(`${NODE_ROOT}/has_normal_memory`, fileValueText(s.node.has_normal_memory));
  for (const [n, mem] of Object.entries(s.node.nodes)) m.set(`${NODE_ROOT}/${n}/memory*`, mem.length ? compactList(mem) : '(none)');
  if (s.ram) for (const [k, v] of flattenRam(s.ram)) m.set(k, v);
  return m;
}

/** The /proc (and, unless `memmap: false`, firmware memmap) part of {@link flattenSnapshot}. */
export function flattenRam(ram: RamSnapshot, opts: { memmap?: boolean } = {}): Map<string, string> {
  const m = new Map<string, string>();
  const { zoneinfo, memTotal, iomem, memmap } = ram;
  m.set(MEMTOTAL_KEY, fileValueText(memTotal));
  if (isFileError(zoneinfo)) m.set(ZONEINFO, fileValueText(zoneinfo));
  else
    for (const [node, zones] of Object.entries(zoneinfo))
      for (const [zone, z] of Object.entries(zones)) for (const f of ZONE_FIELDS) if (z[f] !== undefined) m.set(zoneinfoKey(node, zone, f), z[f]);
  if (isFileError(iomem)) m.set(IOMEM, fileValueText(iomem));
  else for (const [range, res] of Object.entries(iomem)) m.set(`${IOMEM} ${range}`, res);
  if (opts.memmap !== false) for (const [n, e] of Object.entries(memmap)) for (const a of MEMMAP_ATTRS) m.set(`${MEMMAP_ROOT}/${n}/${a}`, fileValueText(e[a]));
  return m;
}
