/**
 * What a scenario run observed: every step's result, the trace records it produced, and sysfs
 * snapshots. Plain JSON (no bigint, no classes), so an observation can be saved, printed with `--json`
 * and diffed against one made elsewhere (a guest run against a simulator run).
 */
import type { ErrnoCode } from '../errors.js';
import type { TraceRecord } from '../kernel/trace.js';
import type { Step } from './schema.js';

/** Which kind of target produced an observation. */
export type TargetKind = 'guest' | 'sim';

/** A pseudo file that could not be read: the errno reading it gave. */
export interface FileError {
  /** e.g. 'ENOENT', 'EACCES'. */
  readonly errno: ErrnoCode;
}

/** The text of a pseudo file without its one trailing newline, or the errno reading it gave. */
export type FileValue = string | FileError;

/** One `/sys/devices/system/memory/memoryN/` directory. */
export interface BlockSnapshot {
  /** `state`: online, offline, going-offline. */
  readonly state: FileValue;
  /** `online`: 1 or 0. */
  readonly online: FileValue;
  /** `valid_zones`, e.g. 'Normal Movable', 'Movable', 'none'. */
  readonly valid_zones: FileValue;
  /** `phys_index`: the block id as %08x. */
  readonly phys_index: FileValue;
  /** `removable`: always 1 on the modelled kernels. */
  readonly removable: FileValue;
  /** `phys_device`: 0 on x86. */
  readonly phys_device: FileValue;
  /** The `nodeN` links in the block's directory, e.g. ['node1'] (normally exactly one). */
  readonly nodes: readonly string[];
}

/** One zone of `/proc/zoneinfo`: the page counts memory hotplug changes, as printed. */
export interface ZoneSnapshot {
  /** `spanned`: pages from the zone's first to its last pfn, holes included. */
  readonly spanned: string;
  /** `present`: pages that exist in the span. */
  readonly present: string;
  /** `managed`: pages the buddy allocator was given. */
  readonly managed: string;
  /** `start_pfn`, which the kernel prints only for a populated zone (present > 0). */
  readonly start_pfn?: string;
}

/** One `/sys/firmware/memmap/N/` directory (values as printed: '0x100000000', 'System RAM'). */
export interface MemmapEntrySnapshot {
  /** `start`, inclusive. */
  readonly start: FileValue;
  /** `end`, inclusive. */
  readonly end: FileValue;
  /** `type`, e.g. 'System RAM', 'Reserved'. */
  readonly type: FileValue;
}

/** What memory hotplug changes outside the memory block devices: /proc and the firmware memory map. */
export interface RamSnapshot {
  /** `/proc/zoneinfo`: by node ('node1') and zone ('Movable'), in the file's order; the errno if unreadable. */
  readonly zoneinfo: Readonly<Record<string, Readonly<Record<string, ZoneSnapshot>>>> | FileError;
  /** The `MemTotal` value of `/proc/meminfo` ('670652 kB'); '' if the file has no such line. */
  readonly memTotal: FileValue;
  /**
   * The top-level `System RAM` resources of `/proc/iomem` as root reads them, in the file's order:
   * range as printed ('100000000-10fffffff') → name ('System RAM', or e.g. 'System RAM (virtio_mem)').
   */
  readonly iomem: Readonly<Record<string, string>> | FileError;
  /** `/sys/firmware/memmap/N/` by N, in numeric order (empty when the directory does not exist). */
  readonly memmap: Readonly<Record<string, MemmapEntrySnapshot>>;
}

/** The memory-block view of sysfs at one moment, and what hotplug changes in /proc and the firmware map. */
export interface Snapshot {
  /** The label the snapshot step gave, if any. */
  readonly name?: string;
  /** `/sys/devices/system/memory/`. */
  readonly memory: {
    /** `block_size_bytes` (hex, e.g. '8000000'). */
    readonly block_size_bytes: FileValue;
    /** `auto_online_blocks`: offline, online, online_kernel, online_movable. */
    readonly auto_online_blocks: FileValue;
    /** Each `memoryN` directory, by name, in block order. */
    readonly blocks: Readonly<Record<string, BlockSnapshot>>;
  };
  /** `/sys/devices/system/node/`. */
  readonly node: {
    /** `has_memory`: a node list such as '0-1'. */
    readonly has_memory: FileValue;
    /** `has_normal_memory`: a node list. */
    readonly has_normal_memory: FileValue;
    /** Each `nodeN` directory, by name, with the `memoryM` links it holds in block order. */
    readonly nodes: Readonly<Record<string, readonly string[]>>;
  };
  /** /proc/zoneinfo, MemTotal, /proc/iomem and /sys/firmware/memmap; absent in observations saved before snapshots recorded them. */
  readonly ram?: RamSnapshot;
}

/** What a step returned: success (with a read's text), the kernel's errno, or not applicable on this target. */
export type StepResult =
  | { readonly status: 'ok'; readonly value?: string }
  | { readonly status: 'error'; readonly errno: ErrnoCode; readonly message: string }
  | { readonly status: 'n/a'; readonly reason: string };

/** One step of a run. */
export interface StepObservation {
  /** Position in the scenario, from 0. */
  readonly index: number;
  /** The step as text (`plug d1 1G node=1`). */
  readonly text: string;
  /** The step itself. */
  readonly step: Step;
  /** Its result. */
  readonly result: StepResult;
  /** Set when the step had an `expect` (or a read `value`) that the result did not meet: what was wrong. */
  readonly unmet?: string;
  /** The target's trace records from the step's start to its end. */
  readonly trace: readonly TraceRecord[];
  /** For a `snapshot` step. */
  readonly snapshot?: Snapshot;
  /**
   * Kernel log lines the step produced, in order, without timestamps (the simulator: the Machine.dmesg
   * lines appended while it ran; a guest: `dmesg -c` after it); absent when it logged none. Never compared.
   */
  readonly dmesg?: readonly string[];
  /** For a `census` step: path (or /proc key) → its line (lib/scenario/census.ts). */
  readonly census?: Readonly<Record<string, string>>;
  /** Wall-clock milliseconds the step took (host clock). */
  readonly ms: number;
}

/** How a guest came up, from its `BootInfo` (lib/guest/guest.ts). */
export interface GuestBootSummary {
  /** Its kernel booted; booted and then saved to the snapshot cache; or restored from the cache. */
  readonly path: 'booted' | 'booted-and-saved' | 'restored';
  /** Host ms from starting QEMU to a usable guest (for a restore: stream loaded, guest checked). */
  readonly ms: number;
  /** ms the save took ('booted-and-saved'). */
  readonly saveMs?: number;
  /** With snapshots on: why no restore or no save happened when one could have. */
  readonly snapshotReason?: string;
  /** The accelerator: 'kvm', 'tcg' or 'tcg-single'. */
  readonly accel: string;
}

/** A whole run. */
export interface Observation {
  /** The scenario's name. */
  readonly scenario: string;
  /** Guest or simulator. */
  readonly target: TargetKind;
  /** The kernel: its profile name ('6.12') and release ('6.12.117+deb13-amd64' on a guest). */
  readonly kernel: { readonly profile: string; readonly release: string };
  /** Every step, in order (fewer than the scenario has when a run was cut short). */
  readonly steps: readonly StepObservation[];
  /** Milliseconds for all steps. */
  readonly ms: number;
  /** Milliseconds to boot the guest (guest runs only). */
  readonly bootMs?: number;
  /** How the guest came up (guest runs only): booted, booted and saved, or restored from the snapshot cache. */
  readonly guestBoot?: GuestBootSummary;
  /**
   * A snapshot taken before step 0. The differ measures boot-dependent counters (MemTotal, managed
   * pages of boot zones) from it; absent in observations saved before runs took one.
   */
  readonly baseline?: Snapshot;
}
