/**
 * The census: every file, directory and link of the trees memory hotplug touches, with its type, mode,
 * link target and readable value, plus the hotplug lines of /proc — taken alike on a guest and on the
 * simulator (through {@link SysfsAccess.walk}) so the differ can compare whole trees, not only the
 * files a scenario author thought of. A census is flat: path → one line of text.
 *
 * ```text
 * /sys/devices/system/memory/memory32                 dir 755
 * /sys/devices/system/memory/memory32/state           file 644 "online\n"
 * /sys/devices/system/memory/hard_offline_page        file 200 <EACCES>
 * /sys/devices/system/memory/memory32/node1           link /sys/devices/system/node/node1
 * /sys/kernel/debug/notifier-error-inject             missing <ENOENT>
 * /proc/zoneinfo node1 Movable present                32768
 * ```
 *
 * Links are shown resolved to absolute paths (the kernel makes them relative from wherever the link
 * lives). The /proc lines have the keys of a flattened snapshot, so the snapshot normalisations
 * (boot reservations) apply to them unchanged.
 */
import path from 'node:path';
import type { SysfsAccess, TreeEntry } from '../kernel/target.js';
import { MEMMAP_ROOT, MEMORY_ROOT, NODE_ROOT, flattenRam, takeRamSnapshot } from './snapshot.js';

/** The trees a census walks (then the ACPI device directories the memory blocks link to). */
export const CENSUS_ROOTS: readonly string[] = [
  MEMORY_ROOT,
  NODE_ROOT,
  '/sys/bus/memory',
  MEMMAP_ROOT,
  '/sys/firmware/acpi/hotplug',
  '/sys/module/memory_hotplug',
  '/sys/kernel/debug/notifier-error-inject',
];

/** A census: path (or /proc key) → its line, in walk order. */
export type Census = Readonly<Record<string, string>>;

/** A link's target as an absolute, normalised path. */
export function resolveLink(at: string, target: string): string {
  return path.posix.resolve(path.posix.dirname(at), target);
}

/** The census line of one walked entry. */
export function entryText(e: TreeEntry): string {
  const mode = e.mode.toString(8);
  switch (e.type) {
    case 'dir':
      return `dir ${mode}`;
    case 'link':
      return `link ${resolveLink(e.path, e.target ?? '')}`;
    case 'file':
      return `file ${mode} ${e.value !== undefined ? JSON.stringify(e.value) : `<${e.errno ?? 'EIO'}>`}`;
    case 'missing':
      return `missing <${e.errno ?? 'ENOENT'}>`;
    default:
      return `other ${mode}`;
  }
}

/** A block's `firmware_node` link: where the census finds the ACPI devices of hot-added memory. */
const FIRMWARE_NODE = /^\/sys\/devices\/system\/memory\/memory\d+\/firmware_node$/;

/** Take a census of a target (two walks — the trees, then the ACPI devices they link to — and the /proc files). */
export async function takeCensus(sysfs: SysfsAccess): Promise<Census> {
  const entries = await sysfs.walk(CENSUS_ROOTS);
  const acpi = [...new Set(entries.filter((e) => e.type === 'link' && FIRMWARE_NODE.test(e.path)).map((e) => resolveLink(e.path, e.target ?? '')))].sort();
  if (acpi.length) entries.push(...(await sysfs.walk(acpi)));
  const out: Record<string, string> = {};
  for (const e of entries) out[e.path] = entryText(e);
  for (const [k, v] of flattenRam(await takeRamSnapshot(sysfs, { memmap: false }), { memmap: false })) out[k] = v;
  return out;
}

/** The directory entries of a census: `path → line` for every `dir` line. */
export function censusDirs(c: Census): Set<string> {
  return new Set(Object.entries(c).filter(([, v]) => v.startsWith('dir ')).map(([k]) => k));
}
