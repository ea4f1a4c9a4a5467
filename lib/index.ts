/**
 * memhp: a memory-hotplug laboratory for Linux. The stable public surface (docs/architecture.md#stable-surface) is exported
 * from here; deeper modules may change between versions.
 */
export { MemhpError, KernelError, ERRNO, errnoName, errnoCode, type ErrnoCode, type NamedErrno, type KernelErrorDetails } from './errors.js';
export {
  NOTIFY_DONE,
  NOTIFY_OK,
  NOTIFY_BAD,
  NOTIFY_STOP,
  NOTIFY_STOP_MASK,
  notifierFromErrno,
  notifierToErrno,
  NotifierChain,
  memoryNotifierChain,
  nodeNotifierChain,
} from './kernel/notifier.js';
export { PROFILES, LATEST, getProfile, memoryActionName, nodeActionName, type KernelProfile, type KernelVersion, type KernelSpec } from './kernel/profile.js';
export { Trace, type TraceRecord } from './kernel/trace.js';
export type { HotplugTarget, SysfsAccess, DimmSpec } from './kernel/target.js';
export { Machine, type MachineOptions, type NodeSpec, type Dimm } from './kernel/machine.js';
export { MemoryBlock, type MemoryGroup, type BlockState } from './kernel/memory-block.js';
export { Sysfs, type WriteOptions } from './kernel/sysfs.js';
export type { HotplugParams, OnlinePolicy, NodeStates } from './kernel/hotplug.js';
export type { BootAllocations } from './kernel/layout.js';
export { sizeBytes, formatSize, type Size } from './size.js';
export { Lockdep, LockdepError } from './kernel/lockdep.js';
export { Mutex, RwSemaphore, HotplugLocks } from './kernel/locks.js';
export { runTask, currentTask } from './kernel/task.js';
export {
  PhysMem,
  ZONE_TYPES,
  MIGRATETYPES,
  FREE_LISTS,
  PAGE_KINDS,
  PAGE_STATES,
  type ZoneType,
  type Migratetype,
  type FreeList,
  type PageKind,
  type PageState,
  type ZoneInfo,
  type MigrateResult,
  type AllocRequest,
} from './native/physmem.js';
export { QmpClient, type QmpEvent } from './qmp/client.js';
export { QmpError, QmpConnectionError, QmpEventOverflowError, QmpTimeoutError, HotplugError, HOTPLUG_CHECK_ERRNO, type HotplugCheck, GuestRejectedError, PlugRejectedError, UnplugRejectedError, HotplugTimeoutError } from './qmp/errors.js';
export { MemoryHotplug } from './qmp/hotplug.js';
export { Guest, type GuestOptions, type BootInfo, type BootPhase } from './guest/guest.js';
export { GuestError } from './guest/errors.js';
export { prepareKernel, kernelManifest, type PreparedKernel, type GuestKernelSpec } from './guest/kernels.js';
export * from './scenario/index.js';
