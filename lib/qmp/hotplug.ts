/**
 * Memory hotplug orchestration over QMP, checked the way libvirt and Kata check it: every
 * precondition QEMU or the guest would otherwise trip over is tested before anything is sent; a
 * half-done plug is rolled back; an unplug waits for the guest's verdict and names it.
 *
 * {@link MemoryHotplug} is the one entry point and its methods are documented here; the work is in
 * memory-devices.ts (device types, limits, the checks both kinds share), pc-dimm.ts (plug and
 * unplug with ACPI's `_OST`), virtio-mem.ts (add, resize and convergence) and wait.ts (deadlines).
 * This module re-exports their public types, so importers need only it.
 */
import { formatSize, type Size } from '../size.js';
import type { QmpClient } from './client.js';
import {
  listMemoryDevices,
  machineLimits,
  MiB,
  parseSize,
  type DimmDevice,
  type MachineLimits,
  type MemoryDevice,
  type MemoryHotplugContext,
  type Plan,
  type VirtioMemDevice,
} from './memory-devices.js';
import { planPlugDimm, planUnplugDimm, plugDimm, unplugDimm, type PlugDimmOptions } from './pc-dimm.js';
import {
  addVirtioMem,
  planAddVirtioMem,
  planResizeVirtioMem,
  resizeVirtioMem,
  waitVirtioMem,
  type AddVirtioMemOptions,
  type ConvergeOptions,
} from './virtio-mem.js';
import type { WaitOptions } from './wait.js';

export { formatSize, parseSize, type Size };
export type { DimmDevice, MachineLimits, MemoryDevice, OtherMemoryDevice, Plan, QmpStep, VirtioMemDevice } from './memory-devices.js';
export type { PlugDimmOptions } from './pc-dimm.js';
export type { AddVirtioMemOptions, ConvergeOptions } from './virtio-mem.js';
export type { WaitOptions } from './wait.js';

/** Options of {@link MemoryHotplug}. */
export interface MemoryHotplugOptions {
  /** The guest's memory block size (`/sys/devices/system/memory/block_size_bytes`); default 128 MiB. */
  blockSize?: Size;
  /** Used when QEMU does not report them (older QEMU has no `memory` property on /machine). */
  slots?: number;
  maxMemory?: Size;
  nodes?: number;
  /** Default deadline for waiting on the guest (unplug, online, resize); default 30 s. */
  timeoutMs?: number;
}

/** Memory hotplug of one QEMU machine through a {@link QmpClient}. */
export class MemoryHotplug {
  /** The guest memory block size every DIMM size and address must be a multiple of. */
  readonly blockSize: number;
  readonly #opts: MemoryHotplugOptions;
  /** What pc-dimm.ts and virtio-mem.ts use of this instance. */
  readonly #ctx: MemoryHotplugContext;

  constructor(
    readonly qmp: QmpClient,
    opts: MemoryHotplugOptions = {},
  ) {
    this.#opts = opts;
    this.blockSize = parseSize(opts.blockSize ?? 128 * MiB);
    this.#ctx = {
      qmp,
      blockSize: this.blockSize,
      timeoutMs: opts.timeoutMs ?? 30_000,
      // The instance's own queries, so the operations see the devices its callers see.
      listMemoryDevices: () => this.listMemoryDevices(),
      machineLimits: (devices) => this.machineLimits(devices),
    };
  }

  /** All memory devices (`query-memory-devices`), in QEMU's order. */
  async listMemoryDevices(): Promise<MemoryDevice[]> {
    return listMemoryDevices(this.qmp);
  }

  /** Slots, maxmem, boot RAM, used device memory and node count, from QEMU or the options. */
  async machineLimits(devices?: MemoryDevice[]): Promise<MachineLimits> {
    return machineLimits(this.qmp, this.#opts, devices, () => this.listMemoryDevices());
  }

  /** Check a pc-dimm plug and return the commands it would send, sending nothing that changes the machine. */
  async planPlugDimm(o: PlugDimmOptions): Promise<Plan> {
    return planPlugDimm(this.#ctx, o);
  }

  /**
   * Plug a pc-dimm: check, `object-add` the backend, `device_add` the DIMM (removing the backend
   * again if QEMU refuses), and optionally wait for the guest to take it.
   * @throws HotplugError a check failed; QmpError QEMU refused (rolled back); PlugRejectedError the guest failed to add it
   */
  async plugDimm(o: PlugDimmOptions): Promise<DimmDevice> {
    return plugDimm(this.#ctx, o);
  }

  /** Check an unplug and return its commands (device_del, then object-del of the backend). */
  async planUnplugDimm(id: string): Promise<Plan & { device: DimmDevice }> {
    return planUnplugDimm(this.#ctx, id);
  }

  /**
   * Unplug a pc-dimm: `device_del`, wait for DEVICE_DELETED, then `object-del` the backend. The
   * event listeners are opened before `device_del`, so a fast guest cannot be missed.
   * @throws UnplugRejectedError the guest refused (`_OST` 0x01, 0x80–0x83, or DEVICE_UNPLUG_GUEST_ERROR); the DIMM stays
   * @throws HotplugTimeoutError no verdict in time; the eject request stays pending in QEMU
   */
  async unplugDimm(id: string, opts: WaitOptions = {}): Promise<void> {
    return unplugDimm(this.#ctx, id, opts);
  }

  /** Check a virtio-mem add and return its commands. */
  async planAddVirtioMem(o: AddVirtioMemOptions): Promise<Plan> {
    return planAddVirtioMem(this.#ctx, o);
  }

  /**
   * Add a virtio-mem device (backend + virtio-mem-pci), rolling back the backend if QEMU refuses the
   * device; with `waitConverged`, wait until the guest has plugged the requested size.
   * The device stays for the life of the machine: QEMU (7.2) refuses `device_del` of virtio-mem
   * devices, so memory goes back by resizing to 0.
   * @throws HotplugError a check failed; QmpError QEMU refused (rolled back); HotplugTimeoutError no convergence (the device stays)
   */
  async addVirtioMem(o: AddVirtioMemOptions): Promise<VirtioMemDevice> {
    return addVirtioMem(this.#ctx, o);
  }

  /**
   * Wait until virtio-mem device `id` has plugged its requested size, changing nothing: for a device
   * added before the guest's driver was bound (the driver plugs the pending request when it probes),
   * or after a resize that timed out.
   * @throws HotplugError NO_SUCH_DEVICE; HotplugTimeoutError as {@link MemoryHotplug.resizeVirtioMem}
   */
  async waitVirtioMem(id: string, opts: ConvergeOptions = {}): Promise<VirtioMemDevice> {
    return waitVirtioMem(this.#ctx, id, opts);
  }

  /** The `qom-set` a resize sends. */
  async planResizeVirtioMem(id: string, requestedSize: Size): Promise<Plan & { device: VirtioMemDevice; requested: number }> {
    return planResizeVirtioMem(this.#ctx, id, requestedSize);
  }

  /**
   * Ask a virtio-mem device for a new size (`qom-set requested-size`) and wait until the guest's
   * plugged size equals it. The guest's virtio_mem driver does the work: it adds and onlines memory
   * blocks (or plugs sub-blocks of blocks it already has) to grow, and to shrink it offlines and
   * removes whole blocks, or, where offlining fails, takes single sub-blocks out of online blocks.
   * Convergence is QEMU's view of the device. When shrinking, the guest gives the memory up before it
   * tells the device, so it is gone from the guest by then; when growing, the driver has the device
   * plug sub-blocks first and adds and onlines the memory block afterwards, so the memory can show up
   * in the guest (sysfs, MemTotal) a little later.
   * Setting the size a device already has returns at once, but still notifies the guest, which makes
   * its driver retry pending work (e.g. removing blocks it emptied while offlining them failed).
   * @throws HotplugError a check failed (nothing sent)
   * @throws HotplugTimeoutError no convergence in time, with `details.size` (reached), `details.startSize`
   *   and `details.requestedSize`; `requested-size` stays set and the guest keeps working towards it
   */
  async resizeVirtioMem(id: string, requestedSize: Size, opts: ConvergeOptions = {}): Promise<VirtioMemDevice> {
    return resizeVirtioMem(this.#ctx, id, requestedSize, opts);
  }
}
