/**
 * Kernel-version profiles: every behavioural difference between the kernels memhp models lives in this
 * one table (kernel-spec.md §9). Flows read fields of the profile; they never test a version string.
 */
import { KernelError } from '../errors.js';

/** Names of memory-notifier actions across all versions (`include/linux/memory.h`). */
export type MemoryActionName =
  | 'MEM_ONLINE'
  | 'MEM_GOING_OFFLINE'
  | 'MEM_OFFLINE'
  | 'MEM_GOING_ONLINE'
  | 'MEM_CANCEL_ONLINE'
  | 'MEM_CANCEL_OFFLINE'
  | 'MEM_PREPARE_ONLINE'
  | 'MEM_FINISH_OFFLINE';

/** Names of node-notifier actions (`include/linux/node.h`, 7.x only). */
export type NodeActionName =
  | 'NODE_ADDING_FIRST_MEMORY'
  | 'NODE_ADDED_FIRST_MEMORY'
  | 'NODE_CANCEL_ADDING_FIRST_MEMORY'
  | 'NODE_REMOVING_LAST_MEMORY'
  | 'NODE_REMOVED_LAST_MEMORY'
  | 'NODE_CANCEL_REMOVING_LAST_MEMORY';

/** Fields a version's `struct memory_notify` may have, in declaration order. */
export type MemoryNotifyField =
  | 'altmap_start_pfn'
  | 'altmap_nr_pages'
  | 'start_pfn'
  | 'nr_pages'
  | 'status_change_nid_normal'
  | 'status_change_nid_high'
  | 'status_change_nid';

/** The online types of `enum mmop` as user space writes them. */
export type OnlineType = 'offline' | 'online' | 'online_kernel' | 'online_movable';

/** Node states whose order of change on online differs between versions. */
export type NodeStateName = 'N_NORMAL_MEMORY' | 'N_MEMORY';

/** One kernel version's behaviour, as far as memory hotplug can observe it. */
export interface KernelProfile {
  /** Profile name: '6.1', '6.12', '7.2', or a legacy name. */
  readonly name: string;
  /** The Debian kernel release the profile was read from (kernel-spec.md §0). */
  readonly release: string;
  /** True for profiles kept only to decode old payload layouts (not bootable, not simulated end to end). */
  readonly legacy: boolean;
  /** Numeric value of each memory-notifier action this version has. */
  readonly actions: Readonly<Partial<Record<MemoryActionName, number>>>;
  /** Numeric value of each node-notifier action, or null when the version has no node chain. */
  readonly nodeActions: Readonly<Record<NodeActionName, number>> | null;
  /** The fields of `struct memory_notify`, in declaration order. */
  readonly memoryNotifyFields: readonly MemoryNotifyField[];
  /** Whether MEM_PREPARE_ONLINE / MEM_FINISH_OFFLINE are sent around every online / successful offline. */
  readonly prepareFinishEvents: boolean;
  /** Order in which node states are set when a node gains memory (`node_states_set_node`). */
  readonly nodeStateSetOrder: readonly NodeStateName[];
  /** The default of `auto_online_blocks` in Debian's config (kernel-spec.md §2.8). */
  readonly defaultOnlineType: OnlineType;
  /** Whether `online` also accepts e/E (true) and d/D (false) (kstrtobool, 7.3+). */
  readonly kstrtoboolEnableDisable: boolean;
  /** Whether `memory_hotplug.memmap_on_memory` accepts `force`. */
  readonly memmapOnMemoryForce: boolean;
  /** Whether online of a block with hwpoisoned pages fails with EHWPOISON. */
  readonly hwpoisonCheck: boolean;
  /** Page state after `move_pfn_range_to_zone`: PageReserved (6.1) or PageOffline (6.12+). */
  readonly memmapInitState: 'reserved' | 'offline';
  /**
   * Page isolation: 'migratetype' (MIGRATE_ISOLATE; undo sets pageblocks MOVABLE) or 'bit'
   * (PB_migrate_isolate; the pageblock keeps its migratetype).
   */
  readonly isolation: 'migratetype' | 'bit';
  /** Managed pages removed on offline: all nr_pages (6.1) or only those actually managed (6.12+). */
  readonly offlineManagedDecrement: 'nr_pages' | 'managed';
  /** Whether the root `crash_hotplug` attribute exists. */
  readonly crashHotplugAttr: boolean;
  /** Whether block devices are removed before mem_hotplug_begin in try_remove_memory (6.1). */
  readonly removeDevicesBeforeLock: boolean;
}

const MEM_BITFLAGS = {
  MEM_ONLINE: 1 << 0,
  MEM_GOING_OFFLINE: 1 << 1,
  MEM_OFFLINE: 1 << 2,
  MEM_GOING_ONLINE: 1 << 3,
  MEM_CANCEL_ONLINE: 1 << 4,
  MEM_CANCEL_OFFLINE: 1 << 5,
} as const;

const NODE_ACTIONS = {
  NODE_ADDING_FIRST_MEMORY: 1 << 0,
  NODE_ADDED_FIRST_MEMORY: 1 << 1,
  NODE_CANCEL_ADDING_FIRST_MEMORY: 1 << 2,
  NODE_REMOVING_LAST_MEMORY: 1 << 3,
  NODE_REMOVED_LAST_MEMORY: 1 << 4,
  NODE_CANCEL_REMOVING_LAST_MEMORY: 1 << 5,
} as const;

const base = {
  legacy: false,
  prepareFinishEvents: false,
  kstrtoboolEnableDisable: false,
  memmapOnMemoryForce: true,
  hwpoisonCheck: true,
  memmapInitState: 'offline',
  isolation: 'migratetype',
  offlineManagedDecrement: 'managed',
  crashHotplugAttr: true,
  removeDevicesBeforeLock: false,
  nodeActions: null,
  nodeStateSetOrder: ['N_NORMAL_MEMORY', 'N_MEMORY'],
} as const;

/** The profiles memhp simulates and boots, by name. */
export const PROFILES = {
  '6.1': {
    ...base,
    name: '6.1',
    release: '6.1.192',
    actions: MEM_BITFLAGS,
    memoryNotifyFields: ['start_pfn', 'nr_pages', 'status_change_nid_normal', 'status_change_nid'],
    defaultOnlineType: 'offline',
    memmapOnMemoryForce: false,
    hwpoisonCheck: false,
    memmapInitState: 'reserved',
    offlineManagedDecrement: 'nr_pages',
    crashHotplugAttr: false,
    removeDevicesBeforeLock: true,
  },
  '6.12': {
    ...base,
    name: '6.12',
    release: '6.12.107',
    actions: { ...MEM_BITFLAGS, MEM_PREPARE_ONLINE: 1 << 6, MEM_FINISH_OFFLINE: 1 << 7 },
    memoryNotifyFields: [
      'altmap_start_pfn',
      'altmap_nr_pages',
      'start_pfn',
      'nr_pages',
      'status_change_nid_normal',
      'status_change_nid',
    ],
    prepareFinishEvents: true,
    defaultOnlineType: 'online',
  },
  '7.2': {
    ...base,
    name: '7.2',
    release: '7.2.13',
    actions: {
      MEM_ONLINE: 0,
      MEM_GOING_OFFLINE: 1,
      MEM_OFFLINE: 2,
      MEM_GOING_ONLINE: 3,
      MEM_CANCEL_ONLINE: 4,
      MEM_CANCEL_OFFLINE: 5,
    },
    nodeActions: NODE_ACTIONS,
    memoryNotifyFields: ['start_pfn', 'nr_pages'],
    nodeStateSetOrder: ['N_MEMORY', 'N_NORMAL_MEMORY'],
    defaultOnlineType: 'online',
    isolation: 'bit',
  },
} as const satisfies Record<string, KernelProfile>;

/** A kernel version memhp simulates: '6.1', '6.12' or '7.2'. */
export type KernelVersion = keyof typeof PROFILES;

/** What `Machine.create({kernel})` and `Guest.boot({kernel})` accept: a version or 'latest'. */
export type KernelSpec = KernelVersion | 'latest';

/** The newest modelled version, what 'latest' means. */
export const LATEST: KernelVersion = '7.2';

/**
 * The profile for a version name. Accepts 'latest' and full release strings such as '6.12.107+deb13-amd64'
 * (matched on major.minor, then on major for 7.x), so a guest can pick its profile from `uname -r`.
 * Unknown versions → KernelError EINVAL.
 */
export function getProfile(version: string = 'latest'): KernelProfile {
  if (version === 'latest') return PROFILES[LATEST];
  if (version in PROFILES) return PROFILES[version as KernelVersion];
  const m = /^(\d+)\.(\d+)/.exec(version);
  if (m) {
    const mm = `${m[1]}.${m[2]}`;
    if (mm in PROFILES) return PROFILES[mm as KernelVersion];
    // Every 7.x kernel memhp knows behaves as 7.2 does (kernel-spec.md §12.2).
    if (m[1] === '7') return PROFILES['7.2'];
  }
  throw new KernelError('EINVAL', `unknown kernel version '${version}' (known: ${Object.keys(PROFILES).join(', ')}, latest)`);
}

/** The action name for a numeric memory-notifier value under a profile, or undefined. */
export function memoryActionName(profile: KernelProfile, value: number): MemoryActionName | undefined {
  for (const [name, v] of Object.entries(profile.actions)) if (v === value) return name as MemoryActionName;
  return undefined;
}

/** The action name for a numeric node-notifier value under a profile, or undefined. */
export function nodeActionName(profile: KernelProfile, value: number): NodeActionName | undefined {
  if (!profile.nodeActions) return undefined;
  for (const [name, v] of Object.entries(profile.nodeActions)) if (v === value) return name as NodeActionName;
  return undefined;
}
