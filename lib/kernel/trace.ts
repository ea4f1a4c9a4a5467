/**
 * The trace: an append-only list of plain JSON records, identical in shape whether the simulator or a
 * guest produced them (docs/architecture.md#trace-records), so a differ can compare them directly.
 */

/** A JSON value, as a trace record may hold. */
export type JsonValue = string | number | boolean | null | readonly JsonValue[] | { readonly [key: string]: JsonValue };

/** What every trace record is: plain JSON fields (the differ compares them by name). */
interface JsonRecord {
  readonly [field: string]: JsonValue;
}

/**
 * One notifier-chain call, recorded once per call before the first callback runs (where a kprobe on
 * `memory_notify` fires): `{"type":"notify","chain":"memory","action":"MEM_GOING_ONLINE","value":8, ...payload}`.
 * The payload fields are exactly the profile's `struct memory_notify` (or `node_notify`) fields.
 */
export interface NotifyRecord extends JsonRecord {
  readonly type: 'notify';
  /** 'memory' or 'node'. */
  readonly chain: string;
  /** The action's name, e.g. 'MEM_GOING_ONLINE', or its value in hex when the profile has no name for it. */
  readonly action: string;
  /** The action's numeric value under the profile. */
  readonly value: number;
}

/** A kobject uevent of a memory block: `{"type":"uevent","action":"online","devpath":"/devices/system/memory/memory32"}`. */
export interface UeventRecord extends JsonRecord {
  readonly type: 'uevent';
  /** add, remove, online, offline, change, …. */
  readonly action: string;
  /** The device path, without /sys. */
  readonly devpath: string;
}

/** A QMP event QEMU (or the simulator's model of it) sent: `{"type":"qmp-event","event":"DEVICE_DELETED","data":{…}}`. */
export interface QmpEventRecord extends JsonRecord {
  readonly type: 'qmp-event';
  /** The event name. */
  readonly event: string;
  /** Its data, as JSON. */
  readonly data: JsonValue;
}

/** A lock-validator report recorded in non-strict mode (see lockdep.ts for the fields). */
export interface LockdepRecord extends JsonRecord {
  readonly type: 'lockdep';
  /** 'inversion', 'recursive' or 'wait-cycle'. */
  readonly kind: string;
  /** The kernel's headline, e.g. 'possible circular locking dependency detected'. */
  readonly message: string;
}

/** Any trace record; `type` tells which. */
export type TraceRecord = NotifyRecord | UeventRecord | QmpEventRecord | LockdepRecord;

/** The kinds of trace record. */
export type TraceRecordType = TraceRecord['type'];

/** An append-only list of trace records. */
export class Trace {
  readonly #records: TraceRecord[] = [];

  /** Append one record. */
  add(record: TraceRecord): void {
    this.#records.push(record);
  }

  /** The records so far, oldest first (a copy: the trace only grows). */
  events(): TraceRecord[];
  /** Only the records of one type, typed as such. */
  events<T extends TraceRecordType>(type: T): Extract<TraceRecord, { type: T }>[];
  events(type?: TraceRecordType): TraceRecord[] {
    return type === undefined ? this.#records.slice() : this.#records.filter((r) => r.type === type);
  }

  /** How many records there are. */
  get length(): number {
    return this.#records.length;
  }
}
