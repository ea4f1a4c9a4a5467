/**
 * `HotplugTarget`: what a simulated `Machine` and a real `Guest` both offer
 * (docs/architecture.md#one-interface-hotplugtarget), so a scenario runner is written once and the differ
 * compares like with like.
 */
import type { ErrnoCode } from '../errors.js';
import type { KernelProfile } from './profile.js';
import type { Trace } from './trace.js';

/** Reading and writing kernel pseudo files (sysfs, debugfs, procfs) as user space does. */
export interface SysfsAccess {
  /** The file's text, exactly as `cat` prints it. A missing path → KernelError ENOENT. */
  read(path: string): Promise<string>;
  /** Write `value` as `echo -n value > path` would; a failed write → KernelError with the kernel's errno. */
  write(path: string, value: string): Promise<void>;
  /** The entry names of a directory (files, subdirectories, symlinks), sorted. Missing → ENOENT, a file → ENOTDIR. */
  list(path: string): Promise<string[]>;
  /**
   * Every entry under each root, the root included, symlinks not followed (lstat, readlink, and a read
   * of each regular file), in walk order; a root that does not exist is one entry with errno ENOENT.
   */
  walk(roots: readonly string[]): Promise<TreeEntry[]>;
}

/** One entry of a {@link SysfsAccess.walk}: what `lstat`, `readlink` and `cat` say of a path. */
export interface TreeEntry {
  /** Absolute path, as walked (links in it not resolved). */
  readonly path: string;
  /** The file type; 'missing' for a root that does not exist. */
  readonly type: 'dir' | 'file' | 'link' | 'other' | 'missing';
  /** Permission bits (0o644); 0 for 'missing'. */
  readonly mode: number;
  /** A link's target as `readlink` returns it (relative, as sysfs makes them). */
  readonly target?: string;
  /** A regular file's text, when reading it succeeded. */
  readonly value?: string;
  /** The errno reading a regular file (or, for 'missing', looking the root up) failed with. */
  readonly errno?: ErrnoCode;
}

/** A pc-dimm to plug: its QEMU id, size (bytes or '1G'), and NUMA node (default 0). */
export interface DimmSpec {
  /** The device id (`device_add pc-dimm,id=…`). */
  id: string;
  /** Size in bytes, or a size string such as '1G'. */
  size: bigint | string;
  /** The DIMM's `node` property (its ACPI _PXM). Default 0. */
  node?: number;
}

/** A kernel that memory can be hot(un)plugged on: the simulator's `Machine` or a QEMU `Guest`. */
export interface HotplugTarget {
  /** The kernel-version profile (a Guest picks it from the booted kernel). */
  readonly kernel: KernelProfile;
  /** sysfs, debugfs and procfs of the kernel. */
  readonly sysfs: SysfsAccess;
  /** ACPI pc-dimm add: resolves when the kernel has added (and, per auto_online_blocks, onlined) the memory. */
  plugDimm(d: DimmSpec): Promise<void>;
  /** ACPI eject; a refusal rejects with KernelError EBUSY whose details carry the _OST status. */
  unplugDimm(id: string): Promise<void>;
  /** Load a kernel module (e.g. 'memory-notifier-error-inject' with `{priority}`). */
  loadModule(name: string, params?: Record<string, string | number>): Promise<void>;
  /** Unload a kernel module. */
  unloadModule(name: string): Promise<void>;
  /** Notifier, uevent and QMP-event records, the same shape on both sides. */
  readonly trace: Trace;
  /** Release everything (a Guest's QEMU is killed). */
  close(): Promise<void>;
}
