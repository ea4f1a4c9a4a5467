/**
 * `HotplugTarget`: what a simulated `Machine` and a real `Guest` both offer (DESIGN.md, "One interface
 * for simulator and guest"), so a scenario runner is written once and the differ compares like with like.
 */
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
