/**
 * virtio-mem hotplug, the operations behind {@link MemoryHotplug}'s `planAddVirtioMem`,
 * `addVirtioMem`, `waitVirtioMem`, `planResizeVirtioMem` and `resizeVirtioMem` (documented there): add
 * a device, ask it for a new size, and wait until the guest's driver has plugged what was asked. A
 * virtio-mem device is never unplugged and has no `_OST`; its one wait is convergence, polled because
 * QEMU's size-change events are rate-limited and can be stale, which is why it is apart from pc-dimm.ts.
 */
import { formatSize, type Size } from '../size.js';
import { HotplugError, HotplugTimeoutError, QmpTimeoutError } from './errors.js';
import type { MemoryHotplug } from './hotplug.js';
import {
  addPlan,
  applyAdd,
  checkHeadroom,
  checkNode,
  MiB,
  parseSize,
  pickIds,
  type MemoryHotplugContext,
  type Plan,
  type QmpStep,
  type VirtioMemDevice,
} from './memory-devices.js';
import { deadline, nextEvent, sleep, type WaitOptions } from './wait.js';

/** How to wait for a virtio-mem device to converge (its plugged `size` to equal `requested-size`). */
export interface ConvergeOptions extends WaitOptions {
  /**
   * Poll `query-memory-devices` this often (ms); default 100. MEMORY_DEVICE_SIZE_CHANGE only wakes
   * the wait early: QEMU rate-limits it to one per second per device and it carries the size at the
   * moment it was queued, so it is often an intermediate size and the last one can come a second late.
   */
  pollMs?: number;
}

/** Options of {@link MemoryHotplug.addVirtioMem}. */
export interface AddVirtioMemOptions extends ConvergeOptions {
  id?: string;
  /** The device's maximum size (the backend size). */
  size: Size;
  requestedSize?: Size;
  /**
   * virtio-mem block size; default QEMU's (2 MiB on x86 with THP). Smaller than the guest memory
   * block (128 MiB) makes Linux drive it in sub-block mode (SBM), a multiple of it in big-block mode (BBM).
   */
  blockSize?: Size;
  node?: number;
  memdev?: string;
  /**
   * Wait until the guest has plugged `requestedSize` (as {@link MemoryHotplug.resizeVirtioMem} does);
   * needs a guest whose virtio_mem driver is bound. Default false: return once QEMU has the device.
   */
  waitConverged?: boolean;
}

/** Why a virtio-mem device may have stopped short of its requested size, judged by where it stopped. */
function convergeHint(startSize: number, size: number, requested: number): string {
  if (size === startSize) return 'the guest did not move (is its virtio_mem driver loaded and the guest running?)';
  if (size < requested) return 'the guest plugged part of it (out of guest memory for the memmap, or hot-added memory left offline)';
  return 'the guest unplugged part of it and keeps retrying (memory it cannot migrate, e.g. blocks onlined to ZONE_NORMAL)';
}

/** {@link MemoryHotplug.planAddVirtioMem}: the checks of a virtio-mem add, and its commands. */
export async function planAddVirtioMem(ctx: MemoryHotplugContext, o: AddVirtioMemOptions): Promise<Plan> {
  const size = parseSize(o.size);
  const requested = o.requestedSize !== undefined ? parseSize(o.requestedSize) : undefined;
  const blockSize = o.blockSize !== undefined ? parseSize(o.blockSize) : undefined;
  const unit = blockSize ?? 2 * MiB;
  for (const [what, v] of [['size', size], ['requested-size', requested]] as const) {
    if (v !== undefined && v % unit !== 0) {
      throw new HotplugError('UNALIGNED', `${what} ${formatSize(v)} is not a multiple of the virtio-mem block size ${formatSize(unit)}`);
    }
  }
  if (requested !== undefined && requested > size) {
    throw new HotplugError('BAD_ARGUMENT', `requested-size ${formatSize(requested)} exceeds the device size ${formatSize(size)}`);
  }
  const limits = await ctx.machineLimits();
  const { id, memdev } = await pickIds(ctx.qmp, o.id, o.memdev, 'vmem');
  checkHeadroom(id, size, limits);
  checkNode(id, o.node, limits);
  const dev: Record<string, unknown> = { driver: 'virtio-mem-pci', id, memdev };
  if (o.node !== undefined) dev.node = o.node;
  if (blockSize !== undefined) dev['block-size'] = blockSize;
  if (requested !== undefined) dev['requested-size'] = requested;
  return addPlan(id, memdev, size, dev);
}

/** {@link MemoryHotplug.addVirtioMem}: plan, add with rollback, and with `waitConverged` wait for the guest. */
export async function addVirtioMem(ctx: MemoryHotplugContext, o: AddVirtioMemOptions): Promise<VirtioMemDevice> {
  const plan = await planAddVirtioMem(ctx, o);
  const add = async (): Promise<VirtioMemDevice> => (await applyAdd(ctx.qmp, plan), virtioMem(ctx, plan.id));
  if (!o.waitConverged) return add();
  // Listening starts before device_add: a bound driver starts plugging as soon as it probes the device.
  return converge(ctx, `add ${plan.id}`, plan.id, o, async () => {
    const dev = await add();
    return { start: dev, requested: dev.requestedSize };
  });
}

/** {@link MemoryHotplug.waitVirtioMem}: wait for device `id` to converge, changing nothing. */
export async function waitVirtioMem(ctx: MemoryHotplugContext, id: string, opts: ConvergeOptions = {}): Promise<VirtioMemDevice> {
  return converge(ctx, `wait for ${id}`, id, opts, async () => {
    const dev = await virtioMem(ctx, id);
    return { start: dev, requested: dev.requestedSize };
  });
}

/** {@link MemoryHotplug.planResizeVirtioMem}: the checks of a resize, and its `qom-set`. */
export async function planResizeVirtioMem(ctx: MemoryHotplugContext, id: string, requestedSize: Size): Promise<Plan & { device: VirtioMemDevice; requested: number }> {
  const device = await virtioMem(ctx, id);
  const requested = parseSize(requestedSize);
  if (requested % device.blockSize !== 0) {
    throw new HotplugError('UNALIGNED', `${id}: ${formatSize(requested)} is not a multiple of its block size ${formatSize(device.blockSize)}`);
  }
  if (requested > device.maxSize) {
    throw new HotplugError('NO_HEADROOM', `${id}: ${formatSize(requested)} exceeds its maximum ${formatSize(device.maxSize)}`);
  }
  return {
    id,
    memdev: device.memdev.replace(/^\/objects\//, ''),
    device,
    requested,
    steps: [{ execute: 'qom-set', arguments: { path: `/machine/peripheral/${id}`, property: 'requested-size', value: requested } }],
  };
}

/** {@link MemoryHotplug.resizeVirtioMem}: set `requested-size`, then wait for the guest to converge. */
export async function resizeVirtioMem(ctx: MemoryHotplugContext, id: string, requestedSize: Size, opts: ConvergeOptions = {}): Promise<VirtioMemDevice> {
  const plan = await planResizeVirtioMem(ctx, id, requestedSize);
  const [set] = plan.steps as [QmpStep];
  return converge(ctx, `resize ${id}`, id, opts, async (signal) => {
    await ctx.qmp.execute(set.execute, set.arguments, { signal });
    return { start: plan.device, requested: plan.requested };
  });
}

/**
 * Run `act` (which changes device `id` and says from what size to what size), then wait until the
 * device has plugged the requested size: poll query-memory-devices every `pollMs`, earlier when a
 * MEMORY_DEVICE_SIZE_CHANGE of the device arrives (listened to from before `act`).
 */
async function converge(
  ctx: MemoryHotplugContext,
  what: string,
  id: string,
  o: ConvergeOptions,
  act: (signal: AbortSignal) => Promise<{ start: VirtioMemDevice; requested: number }>,
): Promise<VirtioMemDevice> {
  const events = ctx.qmp.events(['MEMORY_DEVICE_SIZE_CHANGE']);
  const timeoutMs = o.timeoutMs ?? ctx.timeoutMs;
  const dl = deadline(what, timeoutMs, o.signal);
  const mine = async (): Promise<void> => {
    for (;;) {
      const e = await nextEvent(events, dl.signal);
      if (e.data.id === id || e.data['qom-path'] === `/machine/peripheral/${id}`) return;
    }
  };
  let target: { start: VirtioMemDevice; requested: number } | undefined;
  let dev: VirtioMemDevice | undefined;
  try {
    target = await act(dl.signal);
    // One pending read across iterations, so no event is swallowed by an abandoned reader.
    let next = mine();
    next.catch(() => undefined); // may be left pending when we return
    for (;;) {
      dev = await virtioMem(ctx, id);
      if (dev.size === target.requested) return dev;
      const nap = sleep(o.pollMs ?? 100, dl.signal);
      const woke = await Promise.race([next.then(() => true), nap.then(() => false)]).finally(() => nap.cancel());
      if (woke) (next = mine()).catch(() => undefined);
    }
  } catch (e) {
    if (e instanceof QmpTimeoutError && dl.signal.reason === e && target) {
      const { start, requested } = target;
      const size = dev?.size ?? start.size;
      throw new HotplugTimeoutError(what, timeoutMs, { size, startSize: start.size, requestedSize: requested },
        `plugged ${formatSize(size)} of ${formatSize(requested)} requested; ${convergeHint(start.size, size, requested)}`);
    }
    throw e;
  } finally {
    dl.done();
    events.close();
  }
}

/** The virtio-mem device `id` as QEMU lists it now. */
async function virtioMem(ctx: MemoryHotplugContext, id: string): Promise<VirtioMemDevice> {
  const d = (await ctx.listMemoryDevices()).find((x): x is VirtioMemDevice => x.type === 'virtio-mem' && x.id === id);
  if (!d) throw new HotplugError('NO_SUCH_DEVICE', `${id}: no such virtio-mem device`);
  return d;
}
