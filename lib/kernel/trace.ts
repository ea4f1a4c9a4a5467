/**
 * The trace: an append-only list of plain JSON records, identical in shape whether the simulator or a
 * guest produced them (docs/architecture.md#trace-records), so a differ can compare them directly.
 */

/** A JSON value, as a trace record may hold. */
export type JsonValue = string | number | boolean | null | readonly JsonValue[] | { readonly [key: string]: JsonValue };

/** Any trace record: a `type` discriminator plus plain JSON fields. */
export interface TraceRecord {
  /** What kind of record: 'notify', 'lockdep', 'uevent', 'qmp-event', ... */
  readonly type: string;
  readonly [key: string]: JsonValue;
}

/**
 * One notifier-chain call, recorded once per call before the first callback runs (where a kprobe on
 * `memory_notify` fires): `{"type":"notify","chain":"memory","action":"MEM_GOING_ONLINE","value":8, ...payload}`.
 * The payload fields are exactly the profile's `struct memory_notify` (or `node_notify`) fields.
 */
export interface NotifyRecord extends TraceRecord {
  readonly type: 'notify';
  /** 'memory' or 'node'. */
  readonly chain: string;
  /** The action's name, e.g. 'MEM_GOING_ONLINE', or its value in hex when the profile has no name for it. */
  readonly action: string;
  /** The action's numeric value under the profile. */
  readonly value: number;
}

/** A lock-validator report recorded in non-strict mode (see lockdep.ts for the fields). */
export interface LockdepRecord extends TraceRecord {
  readonly type: 'lockdep';
  /** 'inversion', 'recursive' or 'wait-cycle'. */
  readonly kind: string;
  /** The kernel's headline, e.g. 'possible circular locking dependency detected'. */
  readonly message: string;
}

/** An append-only list of trace records. */
export class Trace {
  readonly #records: TraceRecord[] = [];

  /** Append one record. */
  add(record: TraceRecord): void {
    this.#records.push(record);
  }

  /** The records so far, oldest first (a copy: the trace only grows). With `type`, only records of that type. */
  events(type?: string): TraceRecord[] {
    return type === undefined ? this.#records.slice() : this.#records.filter((r) => r.type === type);
  }

  /** How many records there are. */
  get length(): number {
    return this.#records.length;
  }
}
