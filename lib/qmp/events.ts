/**
 * Event subscriptions of a {@link QmpClient}: each subscriber has its own bounded queue, so one that
 * never reads costs at most its cap, and learns it fell behind from a {@link QmpEventOverflowError}.
 */
import type { MemhpError } from '../errors.js';
import { QmpConnectionError, QmpEventOverflowError } from './errors.js';

/** An asynchronous event. `data` is `{}` when QEMU sent none (STOP, RESUME, …). */
export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  /** QEMU's host clock when it emitted the event. */
  timestamp: { seconds: number; microseconds: number };
}

/** A live event subscription; iterate it, and close it when done. */
export type QmpEventStream = AsyncIterableIterator<QmpEvent> & { close(): void };

/** Default cap of events one subscriber may leave unread. */
export const DEFAULT_MAX_QUEUED_EVENTS = 10_000;
/** Default cap of event-line bytes one subscriber may leave unread. */
export const DEFAULT_MAX_QUEUED_EVENT_BYTES = 64 * 2 ** 20;

/** @internal What the client delivers events to. */
export interface Subscriber {
  names: ReadonlySet<string> | undefined;
  /** `bytes`: the length of the event's line, what holding it costs. */
  push(e: QmpEvent, bytes: number): void;
  end(err: QmpConnectionError, byUser: boolean): void;
}

type Reader = { resolve(r: IteratorResult<QmpEvent>): void; reject(e: unknown): void };

/**
 * @internal A subscription registered in `subs` (or ended at once with `closed`). Past either cap the
 * subscriber is removed from `subs` at once: what it had queued stays readable, then the overflow error.
 */
export function eventStream(
  names: string[] | undefined,
  subs: Set<Subscriber>,
  closed: QmpConnectionError | undefined,
  caps: { maxEvents: number; maxBytes: number },
): QmpEventStream {
  const buffered: { e: QmpEvent; bytes: number }[] = [];
  let bufferedBytes = 0;
  const readers: Reader[] = [];
  let ended: { err?: MemhpError } | undefined;
  const flush = (r: Reader): void => {
    const err = ended?.err;
    if (ended) ended = {}; // report a loss once, then plain "done"
    if (err) r.reject(err);
    else r.resolve({ value: undefined, done: true });
  };
  const sub: Subscriber = {
    names: names ? new Set(names) : undefined,
    push: (e, bytes) => {
      const r = readers.shift();
      if (r) return r.resolve({ value: e, done: false });
      const byCount = buffered.length >= caps.maxEvents;
      if (byCount || bufferedBytes + bytes > caps.maxBytes) {
        subs.delete(sub);
        ended = { err: byCount ? new QmpEventOverflowError(caps.maxEvents, 'events') : new QmpEventOverflowError(caps.maxBytes, 'bytes') };
        return;
      }
      buffered.push({ e, bytes });
      bufferedBytes += bytes;
    },
    end: (err, byUser) => {
      subs.delete(sub);
      if (ended) {
        if (byUser) ended = {}; // closed by its reader: an overflow need not be reported any more
        return;
      }
      ended = byUser ? {} : { err };
      for (const r of readers.splice(0)) flush(r);
    },
  };
  const close = (): void => sub.end(new QmpConnectionError('event stream closed'), true);
  if (closed) sub.end(closed, false);
  else subs.add(sub);
  return {
    next: () =>
      new Promise<IteratorResult<QmpEvent>>((resolve, reject) => {
        const b = buffered.shift();
        if (b) {
          bufferedBytes -= b.bytes;
          resolve({ value: b.e, done: false });
        } else if (ended) flush({ resolve, reject });
        else readers.push({ resolve, reject });
      }),
    return: async () => {
      close();
      return { value: undefined, done: true };
    },
    close,
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
