/**
 * Errors of the QMP layer. A {@link QmpError} is QEMU saying no to one command; a
 * {@link QmpConnectionError} means the connection itself is gone or unusable; the hotplug errors
 * describe what the orchestrator (or the guest) refused.
 */
import { MemhpError, type ErrnoCode } from '../errors.js';

/** A command exactly as it went on the wire. */
export interface QmpCommand {
  execute?: string;
  'exec-oob'?: string;
  arguments?: Record<string, unknown>;
  id: unknown;
}

/** QEMU answered a command with `{"error": {"class", "desc"}}`. */
export class QmpError extends MemhpError {
  /** QEMU's error class, e.g. `'GenericError'`, `'CommandNotFound'`, `'DeviceNotFound'`. */
  readonly errorClass: string;
  /** QEMU's human-readable description. */
  readonly desc: string;
  /** The command that was sent, with its id. */
  readonly command: QmpCommand;

  constructor(errorClass: string, desc: string, command: QmpCommand) {
    super(`${command.execute ?? command['exec-oob']}: ${desc} (${errorClass})`);
    this.errorClass = errorClass;
    this.desc = desc;
    this.command = command;
  }
}

/** The connection failed, was closed, or the peer broke the protocol. Every pending call gets one. */
export class QmpConnectionError extends MemhpError {}

/**
 * An event subscriber fell behind: more events (or event bytes) than its cap were queued unread, so the
 * subscription was closed instead of growing without bound. Other subscribers and the connection go on.
 */
export class QmpEventOverflowError extends MemhpError {
  /** The cap that was passed, in events or in bytes as {@link QmpEventOverflowError.unit} says. */
  readonly limit: number;
  readonly unit: 'events' | 'bytes';

  constructor(limit: number, unit: 'events' | 'bytes') {
    const option = unit === 'events' ? 'maxQueuedEvents' : 'maxQueuedEventBytes';
    super(`QMP event subscriber fell behind: more than ${limit} ${unit === 'events' ? 'events' : 'bytes of events'} queued unread (${option}); the subscription is closed`);
    this.limit = limit;
    this.unit = unit;
  }
}

/** A call's own deadline passed. The command may still complete inside QEMU. */
export class QmpTimeoutError extends MemhpError {
  /** What was being waited for: a command name or `event NAME`. */
  readonly what: string;
  readonly timeoutMs: number;

  constructor(what: string, timeoutMs: number) {
    super(`${what}: no answer within ${timeoutMs} ms`);
    this.what = what;
    this.timeoutMs = timeoutMs;
  }
}

/** Why the orchestrator refused to start a hotplug (nothing was sent to QEMU). */
export type HotplugCheck =
  | 'NO_FREE_SLOT'
  | 'NO_HEADROOM'
  | 'UNALIGNED'
  | 'NO_SUCH_NODE'
  | 'NO_SUCH_DEVICE'
  | 'ID_IN_USE'
  | 'BAD_ARGUMENT';

/**
 * The errno a {@link HotplugTarget} reports for each refused check, the same the simulator's Machine
 * gives for the same refusal, so a scenario step reads alike on a guest and on the simulator.
 */
export const HOTPLUG_CHECK_ERRNO: Readonly<Record<HotplugCheck, ErrnoCode>> = {
  NO_FREE_SLOT: 'ENOSPC',
  NO_HEADROOM: 'ENOSPC',
  UNALIGNED: 'EINVAL',
  NO_SUCH_NODE: 'EINVAL',
  NO_SUCH_DEVICE: 'ENODEV',
  ID_IN_USE: 'EEXIST',
  BAD_ARGUMENT: 'EINVAL',
};

/** A pre-flight check failed; `check` says which. */
export class HotplugError extends MemhpError {
  readonly check: HotplugCheck;

  constructor(check: HotplugCheck, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.check = check;
  }

  /** The errno name for this refusal ({@link HOTPLUG_CHECK_ERRNO}). */
  get code(): ErrnoCode {
    return HOTPLUG_CHECK_ERRNO[this.check];
  }
}

/** ACPI `_OST` status codes (include/linux/acpi.h), by value. */
export const OST_STATUS: Readonly<Record<number, string>> = {
  0x00: 'SUCCESS',
  0x01: 'NON_SPECIFIC_FAILURE',
  0x02: 'UNRECOGNIZED_NOTIFY',
  0x80: 'EJECT_NOT_SUPPORTED',
  0x81: 'DEVICE_IN_USE',
  0x82: 'DEVICE_BUSY',
  0x83: 'EJECT_DEPENDENCY_BUSY',
  0x84: 'EJECT_IN_PROGRESS',
};

/** `0x82 DEVICE_BUSY`, or the bare hex value for codes memhp does not know. */
export function ostStatusName(status: number): string {
  const hex = `0x${status.toString(16).padStart(2, '0')}`;
  return OST_STATUS[status] ? `${hex} ${OST_STATUS[status]}` : hex;
}

/** The guest reported failure through ACPI `_OST` (or QEMU reported a guest-side unplug error). */
export class GuestRejectedError extends MemhpError {
  readonly device: string;
  /** The `_OST` status the guest reported; undefined when only DEVICE_UNPLUG_GUEST_ERROR was seen. */
  readonly status: number | undefined;
  /**
   * The guest kernel's errno, reversed from acpi_device_hotplug's mapping (-EPERM → 0x80,
   * -EBUSY → 0x82); undefined for statuses that lose it (0x01 stands for "anything else").
   */
  readonly code: ErrnoCode | undefined;

  constructor(device: string, operation: 'plug' | 'unplug', status: number | undefined, event: string) {
    const what = status === undefined ? event : `_OST ${ostStatusName(status)}`;
    super(`${device}: guest rejected ${operation} (${what})`);
    this.device = device;
    this.status = status;
    this.code = status === 0x80 ? 'EPERM' : status === 0x82 ? 'EBUSY' : undefined;
  }
}

/** The guest refused to eject a DIMM (`_OST` 0x01 / 0x80–0x83, or DEVICE_UNPLUG_GUEST_ERROR). The DIMM stays. */
export class UnplugRejectedError extends GuestRejectedError {
  constructor(device: string, status: number | undefined, event = 'ACPI_DEVICE_OST') {
    super(device, 'unplug', status, event);
  }
}

/** The guest failed to add a plugged DIMM (`_OST` Device Check with a failure status). The DIMM stays in QEMU. */
export class PlugRejectedError extends GuestRejectedError {
  constructor(device: string, status: number) {
    super(device, 'plug', status, 'ACPI_DEVICE_OST');
  }
}

/** device_add failed and so did the rollback: the memory backend `memdev` is left behind. */
export class HotplugRollbackError extends MemhpError {
  readonly memdev: string;
  readonly rollbackError: unknown;

  constructor(original: unknown, memdev: string, rollbackError: unknown) {
    super(`${(original as Error).message}; rollback (object-del ${memdev}) failed too: ${(rollbackError as Error).message}`, { cause: original });
    this.memdev = memdev;
    this.rollbackError = rollbackError;
  }
}

/** A hotplug did not complete in time (no DEVICE_DELETED, no convergence, no online report). */
export class HotplugTimeoutError extends QmpTimeoutError {
  /** Facts gathered while waiting, e.g. the last `_OST` status or the size reached. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(what: string, timeoutMs: number, details: Record<string, unknown> = {}, hint = '') {
    super(what, timeoutMs);
    this.details = details;
    if (hint) this.message += `; ${hint}`;
  }
}
