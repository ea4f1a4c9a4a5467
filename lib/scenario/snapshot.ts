/**
 * Snapshots of `/sys/devices/system/memory` and the node files, built from the {@link HotplugTarget}
 * interface alone (`sysfs.list` + `sysfs.read`), so the same code reads a simulated Machine and a real
 * guest. {@link guestSnapshotter} is a faster path for a guest: the same snapshot in one agent round trip.
 */
import type { SysfsAccess } from '../kernel/target.js';
import { isKernelError } from './errors.js';
import type { BlockSnapshot, FileValue, Snapshot } from './observation.js';

/** Root of the memory block devices. */
export const MEMORY_ROOT = '/sys/devices/system/memory';
/** Root of the node devices. */
export const NODE_ROOT = '/sys/devices/system/node';
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
    if (isKernelError(e)) return { errno: e.code };
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
// host side, so its errno is exactly what the generic path would record.
const SNAPSHOT_SCRIPT = `
r() { if IFS= read -r v 2>/dev/null < "$1"; then printf '%s\\t%s\\n' "$1" "$v"; else printf '%s\\t!\\n' "$1"; fi; }
cd ${MEMORY_ROOT} || exit 0
r block_size_bytes; r auto_online_blocks
for d in memory[0-9]*; do
  [ -d "$d" ] || continue
  for a in ${BLOCK_ATTRS.join(' ')}; do r "$d/$a"; done
  l=; for n in "$d"/node[0-9]*; do [ -e "$n" ] && l="$l \${n##*/}"; done
  printf '%s\\t@%s\\n' "$d" "$l"
done
cd ${NODE_ROOT} || exit 0
r has_memory; r has_normal_memory
for d in node[0-9]*; do
  [ -d "$d" ] || continue
  l=; for m in "$d"/memory[0-9]*; do [ -e "$m" ] && l="$l \${m##*/}"; done
  printf 'node:%s\\t@%s\\n' "$d" "$l"
done
`;

/**
 * A faster snapshot for a guest: one agent round trip running a shell script, instead of one round
 * trip per file. Produces exactly what {@link takeSnapshot} produces (the guest tests check this).
 */
export function guestSnapshotter(g: ShellTarget): Snapshotter {
  return async (name) => {
    const out = await g.agent.sh(SNAPSHOT_SCRIPT, 60_000);
    const files = new Map<string, string>();
    const memLinks = new Map<string, string[]>();
    const nodeLinks = new Map<string, string[]>();
    for (const line of out.split('\n')) {
      const tab = line.indexOf('\t');
      if (tab < 0) continue;
      const key = line.slice(0, tab);
      const v = line.slice(tab + 1);
      if (v.startsWith('@')) (key.startsWith('node:') ? nodeLinks : memLinks).set(key.replace(/^node:/, ''), v.slice(1).split(' ').filter(Boolean));
      else files.set(key, v);
    }
    const value = async (root: string, rel: string): Promise<FileValue> => {
      const v = files.get(rel);
      if (v === undefined) return { errno: 'ENOENT' };
      return v === '!' ? readValue(g.sysfs, `${root}/${rel}`) : v;
    };
    const blocks: [string, BlockSnapshot][] = [];
    for (const b of [...memLinks.keys()].sort(byNumber('memory'))) {
      const attrs: Partial<Record<(typeof BLOCK_ATTRS)[number], FileValue>> = {};
      for (const a of BLOCK_ATTRS) attrs[a] = await value(MEMORY_ROOT, `${b}/${a}`);
      blocks.push([b, { ...(attrs as Record<(typeof BLOCK_ATTRS)[number], FileValue>), nodes: (memLinks.get(b) ?? []).sort(byNumber('node')) }]);
    }
    const nodes = [...nodeLinks.keys()].sort(byNumber('node')).map((n): [string, string[]] => [n, (nodeLinks.get(n) ?? []).sort(byNumber('memory'))]);
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

/** A file value as text: the text itself, or `<EIO>` for an unreadable file. */
export function fileValueText(v: FileValue): string {
  return typeof v === 'string' ? v : `<${v.errno}>`;
}

/**
 * The snapshot as `path → text`, one entry per file, link set or listing, as a kernel engineer would
 * look it up: `/sys/devices/system/memory/memory32/valid_zones` → 'Movable',
 * `/sys/devices/system/memory/memory32/node*` → 'node1', `/sys/devices/system/node/node1/memory*` → '32-39'.
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
  return m;
}
