/**
 * Kernel-version profiles: every behavioural difference between the kernels memhp models lives in this
 * one table. Flows read fields of the profile; they never test a version string. Over 400 lines
 * because it is that one table (a field's meaning is documented once, beside its values per kernel).
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

/** Fields of `struct node_notify` (7.x). */
export type NodeNotifyField = 'nid';

/** Node states set when a node gains memory (N_HIGH_MEMORY only in legacy layouts). */
export type NodeStateName = 'N_NORMAL_MEMORY' | 'N_HIGH_MEMORY' | 'N_MEMORY';

/** A module parameter of mm/memory_hotplug.c. */
export type MemoryHotplugParam = 'online_policy' | 'auto_movable_ratio' | 'auto_movable_numa_aware' | 'memmap_on_memory';

/** A Debian suite that serves a kernel memhp boots (lib/guest/apt.ts). */
export type DebianSuite = 'bullseye' | 'bookworm' | 'trixie' | 'trixie-backports' | 'sid';

/** The value of `memory_hotplug.memmap_on_memory`: off, on, or (6.12+) `force`. */
export type MemmapOnMemory = boolean | 'force';

/** One kernel version's behaviour, as far as memory hotplug can observe it. */
export interface KernelProfile {
  /** Profile name: '6.1', '6.12', '7.2', or a legacy name. */
  readonly name: string;
  /** The Debian kernel release the profile was read from. */
  readonly release: string;
  /** The Debian suite whose newest kernel the harness boots for this profile (lib/guest/kernels.ts). */
  readonly debianSuite: DebianSuite;
  /** True for profiles kept only to decode old payload layouts (not bootable, not simulated end to end). */
  readonly legacy: boolean;
  /** Numeric value of each memory-notifier action this version has. */
  readonly actions: Readonly<Partial<Record<MemoryActionName, number>>>;
  /** How MEM_* are numbered: `#define`d bit flags (1 << n, up to 6.18) or `enum memory_block_state` (0..5, 6.19+). */
  readonly actionEncoding: 'bitflags' | 'enum';
  /** Numeric value of each node-notifier action, or null when the version has no node chain. */
  readonly nodeActions: Readonly<Record<NodeActionName, number>> | null;
  /** The fields of `struct memory_notify`, in declaration order. */
  readonly memoryNotifyFields: readonly MemoryNotifyField[];
  /** The fields of `struct node_notify`, or null when the version has no node chain. */
  readonly nodeNotifyFields: readonly NodeNotifyField[] | null;
  /** Whether MEM_PREPARE_ONLINE / MEM_FINISH_OFFLINE are sent around every online / successful offline. */
  readonly prepareFinishEvents: boolean;
  /** Order in which node states are set when a node gains memory (`node_states_set_node`). */
  readonly nodeStateSetOrder: readonly NodeStateName[];
  /** The default of `auto_online_blocks` in Debian's config (CONFIG_MHP_DEFAULT_ONLINE_TYPE). */
  readonly defaultOnlineType: OnlineType;
  /** Whether `online` also accepts e/E (true) and d/D (false) (kstrtobool, 7.3+). */
  readonly kstrtoboolEnableDisable: boolean;
  /** Whether kstrtobool accepts t/T (true) and f/F (false) (5.10 takes only 1/y/Y, 0/n/N and on/off). */
  readonly kstrtoboolTrueFalse: boolean;
  /**
   * The module parameters of mm/memory_hotplug.c (`/sys/module/memory_hotplug/parameters/`, and
   * `memory_hotplug.<name>=` on the command line): memmap_on_memory came with 5.12, online_policy and
   * the auto_movable_* with 5.15; a kernel without any has no `/sys/module/memory_hotplug` at all.
   */
  readonly memoryHotplugParams: readonly MemoryHotplugParam[];
  /** What `hard_offline_page` (memory_failure) returns for an address without a memmap (beyond RAM). */
  readonly memoryFailureOutsideErrno: 'ENXIO' | 'EBUSY';
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
  /**
   * How add_memory treats MHP_MEMMAP_ON_MEMORY: 'single-block' (6.1: honoured only for a one-block add,
   * EINVAL otherwise, so the ACPI driver sets it only then) or 'per-block' (6.12+: a hint, one altmap per block).
   */
  readonly memmapOnMemoryAdd: 'single-block' | 'per-block';
  /** Whether the root `crash_hotplug` attribute exists. */
  readonly crashHotplugAttr: boolean;
  /** Whether node devices have `memory_failure/` counters (6.8+, per-node memory-failure statistics). */
  readonly nodeMemoryFailureStats: boolean;
  /** Whether node devices have the (empty, on QEMU) `x86/` attribute group (arch_node_dev_group, not on 5.10). */
  readonly nodeArchDir: boolean;
  /**
   * Whether a node's `hugepages/` exists only while the node has memory (5.10: hugetlb_register_node
   * checks N_MEMORY, and node_memory_callback re-registers it when a node gains or loses its memory)
   * rather than for every node device.
   */
  readonly nodeHugepagesWithMemoryOnly: boolean;
  /** What `hard_offline_page` of a page already poisoned returns: EHWPOISON, or success (5.10's memory_failure returns 0). */
  readonly memoryFailureAlreadyPoisoned: 'EHWPOISON' | 'ok';
  /** Whether node devices have the `reclaim` attribute (per-node proactive reclaim, 6.16+). */
  readonly nodeReclaimAttr: boolean;
  /**
   * Whether the ACPI device objects of the DIMM slots (PNP0C80:NN) have a `power/` directory: up to
   * 7.2 they do; the 7.3.4 guest has none (the device core adds no PM sysfs group for them).
   */
  readonly acpiDevicePowerDir: boolean;
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

const MEM_ENUM = {
  MEM_ONLINE: 0,
  MEM_GOING_OFFLINE: 1,
  MEM_OFFLINE: 2,
  MEM_GOING_ONLINE: 3,
  MEM_CANCEL_ONLINE: 4,
  MEM_CANCEL_OFFLINE: 5,
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
  actionEncoding: 'bitflags',
  nodeNotifyFields: null,
  prepareFinishEvents: false,
  kstrtoboolEnableDisable: false,
  kstrtoboolTrueFalse: true,
  memoryHotplugParams: ['online_policy', 'auto_movable_ratio', 'auto_movable_numa_aware', 'memmap_on_memory'],
  memoryFailureOutsideErrno: 'ENXIO',
  memmapOnMemoryForce: true,
  hwpoisonCheck: true,
  memmapInitState: 'offline',
  isolation: 'migratetype',
  memmapOnMemoryAdd: 'per-block',
  crashHotplugAttr: true,
  nodeMemoryFailureStats: true,
  nodeReclaimAttr: false,
  nodeArchDir: true,
  nodeHugepagesWithMemoryOnly: false,
  memoryFailureAlreadyPoisoned: 'EHWPOISON',
  acpiDevicePowerDir: true,
  removeDevicesBeforeLock: false,
  nodeActions: null,
  nodeStateSetOrder: ['N_NORMAL_MEMORY', 'N_MEMORY'],
} as const;

/** The 6.1 profile (5.10 differs from it in the fields its guest showed). */
const V6_1 = {
  ...base,
  name: '6.1',
  release: '6.1.192',
  debianSuite: 'bookworm',
  actions: MEM_BITFLAGS,
  memoryNotifyFields: ['start_pfn', 'nr_pages', 'status_change_nid_normal', 'status_change_nid'],
  defaultOnlineType: 'offline',
  memmapOnMemoryForce: false,
  hwpoisonCheck: false,
  memmapInitState: 'reserved',
  memmapOnMemoryAdd: 'single-block',
  crashHotplugAttr: false,
  nodeMemoryFailureStats: false,
  removeDevicesBeforeLock: true,
} as const satisfies KernelProfile;

/** The 7.2 profile (7.3 differs from it in one field). */
const V7_2 = {
  ...base,
  name: '7.2',
  release: '7.2.13',
  debianSuite: 'sid',
  actions: MEM_ENUM,
  actionEncoding: 'enum',
  nodeActions: NODE_ACTIONS,
  memoryNotifyFields: ['start_pfn', 'nr_pages'],
  nodeNotifyFields: ['nid'],
  nodeStateSetOrder: ['N_MEMORY', 'N_NORMAL_MEMORY'],
  defaultOnlineType: 'online',
  isolation: 'bit',
  nodeReclaimAttr: true,
  // kstrtobool's e/E/d/D: the 7.2.13 guest already accepts them (echo d > online offlines).
  kstrtoboolEnableDisable: true,
  // Observed on the 7.2.13 guest: hard_offline_page beyond RAM fails EBUSY (6.1/6.12: ENXIO; offline memory: ENXIO on all).
  memoryFailureOutsideErrno: 'EBUSY',
} as const satisfies KernelProfile;

/** The profiles memhp simulates and boots, by name. */
export const PROFILES = {
  // 5.10 is 6.1 but for what its guest showed (struct memory_notify, kstrtobool, sysfs, memory_failure).
  '5.10': {
    ...V6_1,
    name: '5.10',
    release: '5.10.262',
    debianSuite: 'bullseye',
    // x86_64 has no CONFIG_HIGHMEM: status_change_nid_high stays NUMA_NO_NODE and N_HIGH_MEMORY is N_NORMAL_MEMORY.
    memoryNotifyFields: ['start_pfn', 'nr_pages', 'status_change_nid_normal', 'status_change_nid_high', 'status_change_nid'],
    kstrtoboolTrueFalse: false,
    memoryHotplugParams: [],
    // Seen on the 5.10.262 guest: no x86/ in node devices, hugepages/ only on nodes with memory, and
    // a second hard_offline_page of a page succeeds.
    nodeArchDir: false,
    nodeHugepagesWithMemoryOnly: true,
    memoryFailureAlreadyPoisoned: 'ok',
  },
  '6.1': V6_1,
  '6.12': {
    ...base,
    name: '6.12',
    // Debian's trixie kernel (6.12.117, read from its BTF) declares `enum memory_block_state` with
    // PREPARE/FINISH appended; 6.12.107 used bit flags 1..128.
    // The booted guest is the oracle, so the profile follows it.
    release: '6.12.117',
    debianSuite: 'trixie',
    actions: { ...MEM_ENUM, MEM_PREPARE_ONLINE: 6, MEM_FINISH_OFFLINE: 7 },
    actionEncoding: 'enum',
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
  '7.2': V7_2,
  // 7.3 is 7.2 but for what its guest showed: PNP0C80:NN has no power/ (7.2.13 has one).
  '7.3': { ...V7_2, name: '7.3', release: '7.3.4', debianSuite: 'trixie-backports', acpiDevicePowerDir: false },
} as const satisfies Record<string, KernelProfile>;

/**
 * Profiles kept only to decode the older `struct memory_notify` layouts of the reference texts; flows
 * never run on them. Fields other than actions, payload and node states are those of the oldest
 * simulated profile, as the older kernels had none of the later features.
 */
export const LEGACY_PROFILES = {
  /** Documentation/memory-hotplug.txt as patched in Oct 2007 (2.6.24): {start_pfn, nr_pages, status_change_nid}, N_HIGH_MEMORY. */
  'legacy-2007': {
    ...PROFILES['6.1'],
    name: 'legacy-2007',
    release: '2.6.24',
    legacy: true,
    actions: MEM_BITFLAGS,
    memoryNotifyFields: ['start_pfn', 'nr_pages', 'status_change_nid'],
    nodeStateSetOrder: ['N_HIGH_MEMORY'],
    memmapOnMemoryForce: false,
  },
  /** core-api/memory-hotplug.rst before the highmem leftovers were removed (≈3.8 to ≈5.15): + status_change_nid_normal/_high. */
  'legacy-nid-high': {
    ...PROFILES['6.1'],
    name: 'legacy-nid-high',
    release: '≈3.8–5.15',
    legacy: true,
    actions: MEM_BITFLAGS,
    memoryNotifyFields: ['start_pfn', 'nr_pages', 'status_change_nid_normal', 'status_change_nid_high', 'status_change_nid'],
    nodeStateSetOrder: ['N_NORMAL_MEMORY', 'N_HIGH_MEMORY', 'N_MEMORY'],
    memmapOnMemoryForce: false,
  },
} as const satisfies Record<string, KernelProfile>;

/** The name of a legacy (decode-only) profile. */
export type LegacyProfileName = keyof typeof LEGACY_PROFILES;

/** A kernel version memhp simulates: a key of {@link PROFILES}. */
export type KernelVersion = keyof typeof PROFILES;

/** What `Machine.create({kernel})` and `Guest.boot({kernel})` accept: a version or 'latest'. */
export type KernelSpec = KernelVersion | 'latest';

/** The newest modelled version, what 'latest' means. */
export const LATEST: KernelVersion = '7.3';

/** Every kernel version memhp simulates, oldest first: the one kernel table the CLI, schema and harness derive theirs from. */
export const KERNEL_VERSIONS: readonly KernelVersion[] = (Object.keys(PROFILES) as KernelVersion[]).sort((a, b) => {
  const [am = 0, an = 0] = a.split('.').map(Number);
  const [bm = 0, bn = 0] = b.split('.').map(Number);
  return am - bm || an - bn;
});

/**
 * The profile for a version name. Accepts 'latest' and full release strings such as '6.12.107+deb13-amd64'
 * (matched on major.minor; a release between two profiles gets the nearest older one, see
 * {@link profileForRelease}), so a guest can pick its profile from `uname -r`. Legacy profile names
 * ('legacy-2007', 'legacy-nid-high') are accepted too. Unknown versions → KernelError EINVAL.
 */
export function getProfile(version: string = 'latest'): KernelProfile {
  if (version === 'latest') return PROFILES[LATEST];
  if (Object.hasOwn(PROFILES, version)) return PROFILES[version as KernelVersion];
  if (Object.hasOwn(LEGACY_PROFILES, version)) return LEGACY_PROFILES[version as LegacyProfileName];
  const p = /^\d+\.\d+/.test(version) ? profileForRelease(version) : undefined;
  if (p) return p.profile;
  throw new KernelError('EINVAL', `unknown kernel version '${version}' (known: ${[...Object.keys(PROFILES), 'latest', ...Object.keys(LEGACY_PROFILES)].join(', ')})`);
}

/**
 * The profile a kernel release runs against: the one of its major.minor, else the nearest older
 * profile (`exact: false`, so the caller can warn), or undefined when the release is older than every
 * profile or not a version at all.
 */
export function profileForRelease(release: string): { profile: KernelProfile; exact: boolean } | undefined {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return undefined;
  const v = [Number(m[1]), Number(m[2])];
  let best: KernelVersion | undefined;
  for (const k of KERNEL_VERSIONS) {
    const [a = 0, b = 0] = k.split('.').map(Number);
    if (a < v[0]! || (a === v[0] && b <= v[1]!)) best = k;
  }
  return best ? { profile: PROFILES[best], exact: best === `${v[0]}.${v[1]}` } : undefined;
}

/** The action name for a numeric memory-notifier value under a profile, or undefined. */
export function memoryActionName(profile: KernelProfile, value: number): MemoryActionName | undefined {
  let names = actionNames.get(profile);
  if (!names) actionNames.set(profile, (names = new Map(Object.entries(profile.actions).map(([n, v]) => [v, n as MemoryActionName]))));
  return names.get(value);
}

// Trace records name every notifier call; a per-profile reverse map keeps that off the hot path.
const actionNames = new WeakMap<KernelProfile, Map<number, MemoryActionName>>();

/** The action name for a numeric node-notifier value under a profile, or undefined. */
export function nodeActionName(profile: KernelProfile, value: number): NodeActionName | undefined {
  if (!profile.nodeActions) return undefined;
  for (const [name, v] of Object.entries(profile.nodeActions)) if (v === value) return name as NodeActionName;
  return undefined;
}

/** The memory-notifier action value for a name under a profile; KernelError EINVAL if the version lacks it. */
export function memoryAction(profile: KernelProfile, name: MemoryActionName): number {
  const v = profile.actions[name];
  if (v === undefined) throw new KernelError('EINVAL', `${name} does not exist in kernel ${profile.name}`);
  return v;
}

/** A `struct memory_notify` as a notifier callback receives it: exactly the profile's fields. */
export type MemoryNotify = Readonly<Partial<Record<MemoryNotifyField, number>>>;

/** A `struct node_notify` (7.x). */
export interface NodeNotify {
  /** The node gaining its first or losing its last memory. */
  readonly nid: number;
}

// Unsigned long fields are zero when a flow does not set them; nids are NUMA_NO_NODE (-1), "no change".
const FIELD_DEFAULT: Record<MemoryNotifyField, number> = {
  altmap_start_pfn: 0,
  altmap_nr_pages: 0,
  start_pfn: 0,
  nr_pages: 0,
  status_change_nid_normal: -1,
  status_change_nid_high: -1,
  status_change_nid: -1,
};

/**
 * Build the payload the profile's kernel would pass: exactly its `memory_notify` fields, in declaration
 * order, taken from `values`; fields the version lacks are dropped, missing ones get the default
 * (0, or -1 for status_change_nid*).
 */
export function memoryNotify(profile: KernelProfile, values: MemoryNotify): MemoryNotify {
  const out: Partial<Record<MemoryNotifyField, number>> = {};
  for (const f of profile.memoryNotifyFields) out[f] = values[f] ?? FIELD_DEFAULT[f];
  return out;
}

/** One field of the x86_64 (LP64) layout of `struct memory_notify`. */
export interface StructField {
  /** The C field name. */
  readonly name: MemoryNotifyField;
  /** Byte offset in the struct. */
  readonly offset: number;
  /** `unsigned long` (8 bytes) or `int` (4 bytes, signed). */
  readonly type: 'unsigned long' | 'int';
}

/** The x86_64 layout of the profile's `struct memory_notify`: field offsets and the padded struct size. */
export function memoryNotifyLayout(profile: KernelProfile): { fields: readonly StructField[]; size: number } {
  const fields: StructField[] = [];
  let offset = 0;
  for (const name of profile.memoryNotifyFields) {
    const type = name.startsWith('status_change_nid') ? 'int' : 'unsigned long';
    const size = type === 'int' ? 4 : 8;
    offset = Math.ceil(offset / size) * size;
    fields.push({ name, offset, type });
    offset += size;
  }
  return { fields, size: Math.ceil(offset / 8) * 8 };
}

/**
 * Decode a raw little-endian `struct memory_notify` (as a kprobe or a memory dump sees it) under a profile,
 * legacy layouts included. A buffer shorter than the struct → KernelError EINVAL.
 */
export function decodeMemoryNotify(profile: KernelProfile, bytes: Uint8Array): MemoryNotify {
  const { fields, size } = memoryNotifyLayout(profile);
  if (bytes.byteLength < size) {
    throw new KernelError('EINVAL', `struct memory_notify of ${profile.name} needs ${size} bytes, got ${bytes.byteLength}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Partial<Record<MemoryNotifyField, number>> = {};
  for (const f of fields) {
    out[f.name] = f.type === 'int' ? view.getInt32(f.offset, true) : Number(view.getBigUint64(f.offset, true));
  }
  return out;
}

/**
 * `kstrtobool` as the profile's kernel parses it (lib/kstrtox.c): only the first character counts
 * (`1 y Y` → true, `0 n N` → false; with `kstrtoboolTrueFalse` also `t T` and `f F`), or the first
 * two for `on`/`off` in any case; with `kstrtoboolEnableDisable` also `e E` → true and `d D` → false. Anything else → KernelError EINVAL.
 */
export function kstrtobool(profile: KernelProfile, s: string): boolean {
  const c = s[0];
  if (c !== undefined && (profile.kstrtoboolTrueFalse ? '1yYtT' : '1yY').includes(c)) return true;
  if (c !== undefined && (profile.kstrtoboolTrueFalse ? '0nNfF' : '0nN').includes(c)) return false;
  if (profile.kstrtoboolEnableDisable && (c === 'e' || c === 'E')) return true;
  if (profile.kstrtoboolEnableDisable && (c === 'd' || c === 'D')) return false;
  if (c === 'o' || c === 'O') {
    const d = s[1];
    if (d === 'n' || d === 'N') return true;
    if (d === 'f' || d === 'F') return false;
  }
  throw new KernelError('EINVAL', `kstrtobool: invalid boolean ${JSON.stringify(s)}`);
}

/** The C string a store sees: the bytes up to the first NUL (kernfs NUL-terminates the written buffer). */
export function cString(s: string): string {
  const nul = s.indexOf('\0');
  return nul < 0 ? s : s.slice(0, nul);
}

/** `sysfs_streq`: equal as C strings, allowing one trailing newline on either side. */
export function sysfsStreq(a: string, b: string): boolean {
  const x = cString(a);
  const y = cString(b);
  return x === y || x === `${y}\n` || y === `${x}\n`;
}

/**
 * Parse `memory_hotplug.memmap_on_memory=<s>` as the profile's kernel does. 6.1 registers a plain bool
 * parameter (a bare `memory_hotplug.memmap_on_memory`, `s === null`, means true). 6.12+ use their own ops:
 * `force`/`FORCE`, else kstrtobool; those ops lack KERNEL_PARAM_OPS_FL_NOARG, so a bare parameter is
 * EINVAL. Invalid values → KernelError EINVAL. Note the kstrtobool quirk: on 6.1 `force` reads as false
 * (its first letter is `f`), and on 6.12+ so does `Force`.
 */
export function parseMemmapOnMemory(profile: KernelProfile, s: string | null): MemmapOnMemory {
  if (s === null) {
    if (profile.memmapOnMemoryForce) throw new KernelError('EINVAL', 'memmap_on_memory: a value is required');
    return true;
  }
  if (profile.memmapOnMemoryForce && (sysfsStreq(s, 'force') || sysfsStreq(s, 'FORCE'))) return 'force';
  return kstrtobool(profile, s);
}

/** What `/sys/module/memory_hotplug/parameters/memmap_on_memory` reads: `Y\n`, `N\n` or `force\n`. */
export function formatMemmapOnMemory(value: MemmapOnMemory): string {
  return value === 'force' ? 'force\n' : value ? 'Y\n' : 'N\n';
}
