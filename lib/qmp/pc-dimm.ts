/**
 * pc-dimm hotplug, the operations behind {@link MemoryHotplug}'s `planPlugDimm`, `plugDimm`,
 * `planUnplugDimm` and `unplugDimm` (documented there): plug a DIMM and wait for the guest's ACPI
 * `_OST` (Device Check) or a caller's own check, unplug one and wait for DEVICE_DELETED or the
 * guest's refusal. What a DIMM is plugged against (slots, maxmem, nodes, block size) is checked with
 * memory-devices.ts; ACPI's eject protocol, which virtio-mem does not use, stays here.
 */
import { MemhpError } from '../errors.js';
import type { Size } from '../size.js';
import { HotplugError, HotplugTimeoutError, PlugRejectedError, QmpTimeoutError, UnplugRejectedError, ostStatusName } from './errors.js';
import type { MemoryHotplug } from './hotplug.js';
import {
  addPlan,
  applyAdd,
  checkAligned,
  checkHeadroom,
  checkNode,
  MiB,
  num,
  parseSize,
  pickIds,
  type DimmDevice,
  type MemoryHotplugContext,
  type Plan,
  type QmpStep,
} from './memory-devices.js';
import { deadline, nextEvent, type WaitOptions } from './wait.js';

/** Options of {@link MemoryHotplug.plugDimm}. */
export interface PlugDimmOptions extends WaitOptions {
  id?: string;
  size: Size;
  node?: number;
  /** Guest-physical address; QEMU picks the first fit when absent. */
  addr?: Size;
  /** Backend object id; default `mem-<id>`. */
  memdev?: string;
  /**
   * Refuse a size or address that is not a multiple of the guest's memory block size (default true).
   * QEMU takes such a DIMM and the guest kernel then fails to add it, reporting only in dmesg
   * (scenario plug-refused): false lets a test observe exactly that.
   */
  checkBlockSize?: boolean;
  /**
   * Wait until the guest has taken the memory: `true` waits for ACPI_DEVICE_OST (Device Check,
   * status 0), i.e. the guest's ACPI driver added it (auto-onlining follows the guest's policy); a
   * function is awaited instead (e.g. a guest agent polling sysfs for `online`).
   */
  waitOnline?: boolean | ((dev: DimmDevice, signal: AbortSignal) => Promise<void>);
}

const OST_DEVICE_CHECK = 1;
const OST_EJECT_REQUEST = 3;
const OST_OSPM_EJECT = 0x103;
/** libvirt's rule for a DIMM: these statuses on an eject mean the guest said no. */
const isEjectRejection = (status: number): boolean => status === 0x01 || (status >= 0x80 && status <= 0x83);

/** {@link MemoryHotplug.planPlugDimm}: the checks of a pc-dimm plug, and its commands. */
export async function planPlugDimm(ctx: MemoryHotplugContext, o: PlugDimmOptions): Promise<Plan> {
  const size = parseSize(o.size);
  const addr = o.addr !== undefined ? parseSize(o.addr) : undefined;
  const unit = o.checkBlockSize === false ? 2 * MiB : ctx.blockSize;
  checkAligned('size', size, unit, ctx.blockSize);
  if (addr !== undefined) checkAligned('addr', addr, unit, ctx.blockSize);
  const devices = await ctx.listMemoryDevices();
  const limits = await ctx.machineLimits(devices);
  const { id, memdev } = await pickIds(ctx.qmp, o.id, o.memdev, 'dimm');

  const used = devices.filter((d) => d.type === 'dimm' || d.type === 'nvdimm').length;
  if (limits.slots !== undefined && used >= limits.slots) {
    throw new HotplugError('NO_FREE_SLOT', `${id}: no free DIMM slot (${used} of ${limits.slots} in use)`);
  }
  checkHeadroom(id, size, limits);
  checkNode(id, o.node, limits);

  const dev: Record<string, unknown> = { driver: 'pc-dimm', id, memdev };
  if (o.node !== undefined) dev.node = o.node;
  if (addr !== undefined) dev.addr = addr;
  return addPlan(id, memdev, size, dev);
}

/** {@link MemoryHotplug.plugDimm}: plan, add with rollback, then the wait `waitOnline` asks for. */
export async function plugDimm(ctx: MemoryHotplugContext, o: PlugDimmOptions): Promise<DimmDevice> {
  const plan = await planPlugDimm(ctx, o);
  const ost = o.waitOnline === true ? waitOst(ctx, plan.id, OST_DEVICE_CHECK, o) : undefined;
  try {
    await applyAdd(ctx.qmp, plan);
  } catch (e) {
    ost?.cancel();
    throw e;
  }
  const dev = (await ctx.listMemoryDevices()).find((d): d is DimmDevice => d.type === 'dimm' && d.id === plan.id);
  if (!dev) throw new MemhpError(`${plan.id}: device_add succeeded but QEMU does not list the DIMM`);
  if (ost) {
    const status = await ost.status.catch((e: unknown) => {
      if (!(e instanceof QmpTimeoutError)) throw e;
      // The DIMM stays: QEMU has it, and a guest that boots later will still take it.
      throw new HotplugTimeoutError(`${plan.id}: wait for the guest`, e.timeoutMs, {},
        'the guest never reported the DIMM (no _OST); the DIMM stays plugged');
    });
    if (status !== 0) throw new PlugRejectedError(plan.id, status);
  } else if (typeof o.waitOnline === 'function') {
    const dl = deadline(`${plan.id}: wait for online`, o.timeoutMs ?? ctx.timeoutMs, o.signal);
    try {
      await o.waitOnline(dev, dl.signal);
    } finally {
      dl.done();
    }
  }
  return dev;
}

/** {@link MemoryHotplug.planUnplugDimm}: the DIMM named `id`, and the commands that remove it. */
export async function planUnplugDimm(ctx: MemoryHotplugContext, id: string): Promise<Plan & { device: DimmDevice }> {
  const found = (await ctx.listMemoryDevices()).find((d) => d.id === id);
  if (found?.type === 'virtio-mem') {
    throw new HotplugError('NO_SUCH_DEVICE', `${id}: a virtio-mem device, not a pc-dimm; QEMU does not unplug virtio-mem devices (resize it to 0 instead)`);
  }
  const device = found?.type === 'dimm' ? found : undefined;
  if (!device) throw new HotplugError('NO_SUCH_DEVICE', `${id}: no such pc-dimm`);
  const memdev = device.memdev.replace(/^\/objects\//, '');
  return {
    id,
    memdev,
    device,
    steps: [
      { execute: 'device_del', arguments: { id } },
      { execute: 'object-del', arguments: { id: memdev } },
    ],
  };
}

/** {@link MemoryHotplug.unplugDimm}: device_del, the guest's verdict, then object-del. */
export async function unplugDimm(ctx: MemoryHotplugContext, id: string, opts: WaitOptions = {}): Promise<void> {
  const plan = await planUnplugDimm(ctx, id);
  const [del, objDel] = plan.steps as [QmpStep, QmpStep];
  const events = ctx.qmp.events(['DEVICE_DELETED', 'ACPI_DEVICE_OST', 'DEVICE_UNPLUG_GUEST_ERROR', 'MEM_UNPLUG_ERROR']);
  const timeoutMs = opts.timeoutMs ?? ctx.timeoutMs;
  const dl = deadline(`device_del ${id}`, timeoutMs, opts.signal);
  let lastOst: number | undefined;
  try {
    await ctx.qmp.execute(del.execute, del.arguments, { signal: dl.signal });
    for (;;) {
      const e = await nextEvent(events, dl.signal);
      if (e.event === 'DEVICE_DELETED' && e.data.device === id) break;
      if (e.event === 'DEVICE_UNPLUG_GUEST_ERROR' && e.data.device === id) throw new UnplugRejectedError(id, lastOst, e.event);
      if (e.event === 'MEM_UNPLUG_ERROR' && e.data.device === id) throw new UnplugRejectedError(id, lastOst, e.event);
      const info = e.event === 'ACPI_DEVICE_OST' ? (e.data.info as Record<string, unknown> | undefined) : undefined;
      // After the DIMM is gone the final _OST may carry only the slot, so match either.
      if (info && info['slot-type'] === 'DIMM' && (info.device === id || (info.device === undefined && info.slot === String(plan.device.slot)))) {
        const source = num(info.source);
        if (source !== OST_EJECT_REQUEST && source !== OST_OSPM_EJECT) continue;
        lastOst = num(info.status);
        if (isEjectRejection(lastOst)) throw new UnplugRejectedError(id, lastOst);
      }
    }
  } catch (e) {
    if (e instanceof QmpTimeoutError && dl.signal.reason === e) {
      const hint =
        lastOst === undefined
          ? 'the guest never answered the eject request (no _OST): no guest running, or no ACPI memory hotplug in it; the request stays pending'
          : `last _OST ${ostStatusName(lastOst)}; the request stays pending`;
      throw new HotplugTimeoutError(`device_del ${id}`, timeoutMs, { lastOstStatus: lastOst }, hint);
    }
    throw e;
  } finally {
    dl.done();
    events.close();
  }
  await ctx.qmp.execute(objDel.execute, objDel.arguments);
}

/** Arm a wait for the guest's _OST on `id` for `source`; resolves with its status. */
function waitOst(ctx: MemoryHotplugContext, id: string, source: number, o: WaitOptions): { status: Promise<number>; cancel(): void } {
  const ac = new AbortController();
  const dl = deadline(`${id}: wait for the guest's _OST`, o.timeoutMs ?? ctx.timeoutMs, o.signal);
  const onDl = (): void => ac.abort(dl.signal.reason);
  dl.signal.addEventListener('abort', onDl, { once: true });
  const status = ctx.qmp
    .waitForEvent('ACPI_DEVICE_OST', {
      signal: ac.signal,
      timeoutMs: Infinity,
      predicate: (e) => {
        const info = e.data.info as Record<string, unknown> | undefined;
        return info?.device === id && num(info.source) === source;
      },
    })
    .then((e) => num((e.data.info as Record<string, unknown>).status))
    .finally(() => dl.done());
  status.catch(() => undefined); // awaited later, or cancelled
  return { status, cancel: () => ac.abort(new MemhpError('cancelled')) };
}
