/**
 * The deadlines of memory hotplug's waits on the guest (pc-dimm.ts, virtio-mem.ts): one AbortSignal per
 * operation that fires on the caller's signal or the timeout, and the two ways of waiting under it
 * (the next QMP event, a nap). Each leaves no timer or listener behind, since a Guest runs many
 * operations on one long-lived connection.
 */
import { MemhpError } from '../errors.js';
import type { QmpEvent, QmpEventStream } from './client.js';
import { QmpTimeoutError } from './errors.js';

/** Deadline and cancellation of one operation. */
export interface WaitOptions {
  /** Wall-clock bound in ms (default the instance's, 30 s); `Infinity` for none but `signal`. */
  timeoutMs?: number;
  /** Aborting it ends the wait with its reason. */
  signal?: AbortSignal;
}

/** Resolves after `ms`, or rejects with the signal's reason; `cancel()` leaves no timer or listener behind. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> & { cancel(): void } {
  let cancel = (): void => undefined;
  const p = new Promise<void>((resolve, reject) => {
    const onAbort = (): void => (clearTimeout(t), reject(signal.reason));
    const t = setTimeout(() => (signal.removeEventListener('abort', onAbort), resolve()), ms);
    cancel = () => (clearTimeout(t), signal.removeEventListener('abort', onAbort));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Object.assign(p, { cancel });
}

/**
 * An AbortSignal that fires on the caller's signal or after `timeoutMs` (with a {@link QmpTimeoutError});
 * `Infinity` leaves the bound to the caller's signal alone (a Guest bounds its waits by the guest's clock).
 */
export function deadline(what: string, timeoutMs: number, signal?: AbortSignal): { signal: AbortSignal; done(): void } {
  const ac = new AbortController();
  const t = Number.isFinite(timeoutMs) ? setTimeout(() => ac.abort(new QmpTimeoutError(what, timeoutMs)), timeoutMs) : undefined;
  const onAbort = (): void => ac.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  return {
    signal: ac.signal,
    done: () => (clearTimeout(t), signal?.removeEventListener('abort', onAbort)),
  };
}

/** The next event of a stream, or the signal's reason. */
export function nextEvent(events: QmpEventStream, signal: AbortSignal): Promise<QmpEvent> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    events.next().then(
      (r) => (signal.removeEventListener('abort', onAbort), r.done ? reject(new MemhpError('QMP event stream ended')) : resolve(r.value)),
      (e: unknown) => (signal.removeEventListener('abort', onAbort), reject(e)),
    );
  });
}
