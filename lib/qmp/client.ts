/**
 * A typed QMP (QEMU Machine Protocol) client, modelled on Python's qemu.qmp: greeting and capability
 * negotiation, an id on every command, at most {@link MAX_IN_FLIGHT} in-band commands in flight,
 * out-of-band commands when QEMU offers them, events with their timestamps, and a deadline and an
 * AbortSignal per call. A little over 400 lines: one protocol state machine, kept whole.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { MemhpError } from '../errors.js';
import { QmpConnectionError, QmpError, QmpTimeoutError, type QmpCommand } from './errors.js';
import { DEFAULT_MAX_QUEUED_EVENT_BYTES, DEFAULT_MAX_QUEUED_EVENTS, eventStream, type QmpEvent, type QmpEventStream, type Subscriber } from './events.js';
import { framingLimits, LineFramer, type FramingLimits } from './framing.js';

export { QmpConnectionError, QmpError, QmpEventOverflowError, QmpTimeoutError, type QmpCommand } from './errors.js';
export { DEFAULT_MAX_QUEUED_EVENT_BYTES, DEFAULT_MAX_QUEUED_EVENTS, type QmpEvent, type QmpEventStream } from './events.js';
export { DEFAULT_MAX_DEPTH, DEFAULT_MAX_LINE_BYTES } from './framing.js';

/** QEMU's greeting, `{"QMP": {...}}`, the first line on every connection. */
export interface QmpGreeting {
  version: { qemu: { major: number; minor: number; micro: number }; package: string };
  /** Capabilities QEMU offers, e.g. `['oob']`. */
  capabilities: string[];
}

/** Options of {@link QmpClient.connect} and {@link QmpClient.fromStream}. */
export interface QmpConnectOptions {
  /** Deadline for connecting, the greeting and negotiation; default 10 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Default deadline of each later call (execute, waitForEvent); default 60 s; `Infinity` for none. */
  callTimeoutMs?: number;
  /**
   * A line longer than this is a protocol error that ends the connection; default 64 MiB
   * ({@link DEFAULT_MAX_LINE_BYTES}), at most `buffer.constants.MAX_STRING_LENGTH`.
   */
  maxLineBytes?: number;
  /** JSON nested deeper than this is a protocol error; default 1024, QEMU's own limit ({@link DEFAULT_MAX_DEPTH}). */
  maxDepth?: number;
  /**
   * Events an {@link QmpClient.events} subscriber may leave unread; one more closes that subscription with
   * {@link QmpEventOverflowError}. Default 10 000.
   */
  maxQueuedEvents?: number;
  /** The same cap in bytes of event lines queued unread per subscriber; default 64 MiB. */
  maxQueuedEventBytes?: number;
  /** connect(): retry a socket that is missing or refuses until the deadline (QEMU still starting); default true. */
  retry?: boolean;
}

/** Options of {@link QmpClient.execute}. */
export interface QmpExecuteOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Send as `exec-oob` (needs QEMU to have offered OOB, and a command that allows it). */
  oob?: boolean;
}

/** Options of {@link QmpClient.waitForEvent}. */
export interface QmpWaitOptions {
  predicate?: (e: QmpEvent) => boolean;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** QEMU's QMP_REQ_QUEUE_LEN_MAX: more in-band requests than this make the monitor stop reading. */
export const MAX_IN_FLIGHT = 8;

interface Call {
  command: QmpCommand;
  inBand: boolean;
  /** True once the caller got an answer, an error, a timeout or an abort. */
  settled: boolean;
  settle(err: unknown, value?: unknown): void;
}

/** Arms a timer and an abort listener that call `fire`; returns the disarming function. */
function arm(what: string, timeoutMs: number | undefined, signal: AbortSignal | undefined, fire: (e: unknown) => void): () => void {
  const timer =
    timeoutMs !== undefined && Number.isFinite(timeoutMs)
      ? setTimeout(() => fire(new QmpTimeoutError(what, timeoutMs)), timeoutMs)
      : undefined;
  const onAbort = (): void => fire(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  return () => {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isGreeting(v: unknown): v is QmpGreeting {
  return isObject(v) && isObject(v.version) && Array.isArray(v.capabilities);
}

function positiveInt(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < 1) throw new MemhpError(`QMP: ${name} must be a positive integer, not ${v}`);
  return v;
}

/** The bounds of one connection, checked before anything is connected. */
interface Bounds {
  framing: FramingLimits;
  maxQueuedEvents: number;
  maxQueuedEventBytes: number;
}

function bounds(opts: QmpConnectOptions): Bounds {
  return {
    framing: framingLimits(opts.maxLineBytes, opts.maxDepth),
    maxQueuedEvents: positiveInt('maxQueuedEvents', opts.maxQueuedEvents, DEFAULT_MAX_QUEUED_EVENTS),
    maxQueuedEventBytes: positiveInt('maxQueuedEventBytes', opts.maxQueuedEventBytes, DEFAULT_MAX_QUEUED_EVENT_BYTES),
  };
}

/**
 * Where {@link QmpClient.connect} connects: `tcp:HOST:PORT` (QEMU's `-qmp tcp:HOST:PORT,server=on,wait=off`;
 * an IPv6 host in brackets, `tcp:[::1]:4444`) is a TCP address, anything else a unix socket path.
 * Throws a {@link MemhpError} for a `tcp:` address without a host or a port in 1..65535.
 */
export function qmpAddress(socket: string): net.NetConnectOpts {
  if (!socket.startsWith('tcp:')) return { path: socket };
  const m = /^tcp:(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(socket);
  const port = Number(m?.[3]);
  if (!m || !(port >= 1 && port <= 65535)) throw new MemhpError(`${socket}: expected tcp:HOST:PORT (a port in 1..65535), e.g. tcp:127.0.0.1:4444`);
  return { host: m[1] ?? m[2]!, port };
}

/** A connected QMP session. Create it with {@link QmpClient.connect} or {@link QmpClient.fromStream}. */
export class QmpClient {
  readonly #stream: Duplex;
  readonly #callTimeoutMs: number;
  readonly #framer: LineFramer;
  readonly #maxQueuedEvents: number;
  readonly #maxQueuedEventBytes: number;
  #greeting: QmpGreeting | undefined;
  #onGreeting: { resolve(g: QmpGreeting): void; reject(e: unknown): void } | undefined;
  #oob = false;
  #nextId = 1;
  /** Sent, not yet answered by QEMU; includes calls whose caller gave up (they still hold a slot). */
  readonly #sent = new Map<string, Call>();
  readonly #queue: { call: Call; line: string }[] = [];
  #inFlight = 0;
  readonly #subs = new Set<Subscriber>();
  #closed: QmpConnectionError | undefined;
  readonly #streamClosed: Promise<void>;

  private constructor(stream: Duplex, opts: QmpConnectOptions, b: Bounds) {
    this.#stream = stream;
    this.#callTimeoutMs = opts.callTimeoutMs ?? 60_000;
    this.#framer = new LineFramer(b.framing);
    this.#maxQueuedEvents = b.maxQueuedEvents;
    this.#maxQueuedEventBytes = b.maxQueuedEventBytes;
    this.#streamClosed = new Promise((resolve) => stream.once('close', () => resolve()));
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    stream.on('end', () => {
      const pending = this.#framer.pendingBytes;
      const tail = pending ? ` in the middle of a line (${pending} bytes unterminated)` : '';
      this.#fail(new QmpConnectionError(`QMP connection closed by the peer${tail}`));
    });
    stream.on('error', (e: Error) => this.#fail(new QmpConnectionError(`QMP connection error: ${e.message}`, { cause: e })));
    stream.on('close', () => this.#fail(new QmpConnectionError('QMP connection closed')));
  }

  /**
   * Connect to QEMU's QMP unix socket (`-qmp unix:PATH,server=on,wait=off`) or TCP socket (`tcp:HOST:PORT`,
   * {@link qmpAddress}), read the greeting and negotiate capabilities. A socket that does not exist yet
   * or refuses is retried until the deadline, so a freshly started QEMU can be connected to at once.
   */
  static async connect(socketPath: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    bounds(opts); // refuse bad options before connecting
    const address = qmpAddress(socketPath);
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const until = Date.now() + timeoutMs;
    for (;;) {
      opts.signal?.throwIfAborted();
      let sock: net.Socket;
      try {
        sock = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.createConnection(address);
          s.once('connect', () => {
            s.off('error', reject);
            resolve(s);
          });
          s.once('error', reject);
        });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if ((code === 'ENOENT' || code === 'ECONNREFUSED') && opts.retry !== false && Date.now() + 50 < until) {
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        throw new QmpConnectionError(`cannot connect to QMP socket ${socketPath}: ${(e as Error).message}`, { cause: e });
      }
      return QmpClient.fromStream(sock, { ...opts, timeoutMs: Math.max(1, until - Date.now()) });
    }
  }

  /** Speak QMP over any connected duplex stream (a socket pair in tests, a chardev, …). */
  static async fromStream(stream: Duplex, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const c = new QmpClient(stream, opts, bounds(opts));
    const timeoutMs = opts.timeoutMs ?? 10_000;
    try {
      const greeting = await new Promise<QmpGreeting>((resolve, reject) => {
        const disarm = arm('QMP greeting', timeoutMs, opts.signal, (e) => {
          // QEMU serves one client at a time: a second one is accepted but never greeted.
          reject(e instanceof QmpTimeoutError ? new QmpTimeoutError(`${e.what} (is another client connected?)`, timeoutMs) : e);
        });
        c.#onGreeting = {
          resolve: (g) => (disarm(), resolve(g)),
          reject: (e) => (disarm(), reject(e)),
        };
        if (c.#closed) c.#onGreeting.reject(c.#closed);
      });
      c.#greeting = greeting;
      const oob = greeting.capabilities.includes('oob');
      await c.execute('qmp_capabilities', oob ? { enable: ['oob'] } : undefined, { timeoutMs, signal: opts.signal });
      c.#oob = oob;
      return c;
    } catch (e) {
      c.#fail(new QmpConnectionError('QMP negotiation failed', { cause: e }));
      await c.#streamClosed;
      throw e;
    }
  }

  /** The greeting QEMU sent (version, offered capabilities). */
  get greeting(): QmpGreeting {
    return this.#greeting as QmpGreeting;
  }

  /** True when OOB was negotiated, so `execute(..., {oob: true})` is possible. */
  get oob(): boolean {
    return this.#oob;
  }

  /** The error that ended the connection, or undefined while it is open. */
  get closedReason(): QmpConnectionError | undefined {
    return this.#closed;
  }

  /**
   * Run one command and resolve with its `return` value. Rejects with {@link QmpError} when QEMU
   * answers with an error, {@link QmpTimeoutError} after the deadline, the signal's reason on abort,
   * {@link QmpConnectionError} when the connection ends first. In-band commands beyond
   * {@link MAX_IN_FLIGHT} wait in a queue, in order.
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: QmpExecuteOptions = {}): Promise<T> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (opts.signal?.aborted) return Promise.reject(opts.signal.reason);
    const oob = opts.oob ?? false;
    if (oob && !this.#oob) return Promise.reject(new MemhpError(`${command}: QEMU did not offer OOB, cannot send exec-oob`));
    const msg: QmpCommand = oob ? { 'exec-oob': command, id: this.#nextId++ } : { execute: command, id: this.#nextId++ };
    if (args !== undefined) msg.arguments = args;
    const line = `${JSON.stringify(msg)}\n`;

    return new Promise<T>((resolve, reject) => {
      const call: Call = {
        command: msg,
        inBand: !oob,
        settled: false,
        settle: (err, value) => {
          if (call.settled) return;
          call.settled = true;
          disarm();
          if (err === undefined) resolve(value as T);
          else reject(err);
        },
      };
      const disarm = arm(command, opts.timeoutMs ?? this.#callTimeoutMs, opts.signal, (e) => {
        const queued = this.#queue.findIndex((q) => q.call === call);
        if (queued >= 0) this.#queue.splice(queued, 1);
        call.settle(e);
      });
      if (oob) this.#send(call, line);
      else {
        this.#queue.push({ call, line });
        this.#pump();
      }
    });
  }

  /**
   * Wait for the next event called `name` (that satisfies `predicate`). The listener is armed when
   * this is called, so call it before the command that causes the event and await it afterwards.
   */
  waitForEvent(name: string, opts: QmpWaitOptions = {}): Promise<QmpEvent> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (opts.signal?.aborted) return Promise.reject(opts.signal.reason);
    return new Promise<QmpEvent>((resolve, reject) => {
      const done = (err: unknown, e?: QmpEvent): void => {
        this.#subs.delete(sub);
        disarm();
        if (err === undefined) resolve(e as QmpEvent);
        else reject(err);
      };
      const sub: Subscriber = {
        names: new Set([name]),
        push: (e) => {
          let ok: boolean;
          try {
            ok = opts.predicate ? opts.predicate(e) : true;
          } catch (err) {
            return done(err);
          }
          if (ok) done(undefined, e);
        },
        end: (err) => done(err),
      };
      const disarm = arm(`event ${name}`, opts.timeoutMs ?? this.#callTimeoutMs, opts.signal, (err) => done(err));
      this.#subs.add(sub);
    });
  }

  /**
   * Subscribe to events (all, or those named). Events are buffered from this call on until read, up to
   * `maxQueuedEvents` events and `maxQueuedEventBytes` bytes: a subscriber that falls further behind
   * gets what it had queued, then {@link QmpEventOverflowError}, and is unsubscribed (others go on).
   * Iteration ends when the stream is closed or the client is closed, and throws
   * {@link QmpConnectionError} if the connection is lost.
   */
  events(names?: string[]): QmpEventStream {
    return eventStream(names, this.#subs, this.#closed, { maxEvents: this.#maxQueuedEvents, maxBytes: this.#maxQueuedEventBytes });
  }

  /** Close the connection. Pending and queued calls reject with {@link QmpConnectionError}. Idempotent. */
  async close(): Promise<void> {
    this.#fail(new QmpConnectionError('QMP connection closed by the client'), true);
    await this.#streamClosed;
  }

  #send(call: Call, line: string): void {
    this.#sent.set(JSON.stringify(call.command.id), call);
    if (call.inBand) this.#inFlight++;
    this.#stream.write(line);
  }

  #pump(): void {
    while (this.#inFlight < MAX_IN_FLIGHT && !this.#closed) {
      const next = this.#queue.shift();
      if (!next) return;
      this.#send(next.call, next.line);
    }
  }

  #onData(chunk: Buffer): void {
    if (this.#closed) return;
    const err = this.#framer.push(chunk, (text, bytes) => (this.#onLine(text, bytes), !this.#closed));
    if (err && !this.#closed) this.#fail(new QmpConnectionError(`QMP protocol error: ${err}`));
  }

  #onLine(text: string, bytes: number): void {
    if (!text.trim()) return;
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      return this.#fail(new QmpConnectionError(`QMP protocol error: malformed JSON: ${text.slice(0, 200)}`));
    }
    if (!isObject(msg)) return this.#fail(new QmpConnectionError(`QMP protocol error: not an object: ${text.slice(0, 200)}`));

    if (!this.#greeting && this.#onGreeting) {
      if (!isGreeting(msg.QMP)) return this.#fail(new QmpConnectionError(`QMP protocol error: bad greeting: ${text.slice(0, 200)}`));
      this.#greeting = msg.QMP;
      return this.#onGreeting.resolve(msg.QMP);
    }
    if (typeof msg.event === 'string') return this.#onEvent(msg, bytes);
    if (!('return' in msg) && !('error' in msg)) {
      return this.#fail(new QmpConnectionError(`QMP protocol error: unexpected message: ${text.slice(0, 200)}`));
    }
    const error = isObject(msg.error) ? msg.error : undefined;
    if (msg.id === undefined) {
      // QEMU could not tie its answer to a command (e.g. it failed to parse one): the stream is out of sync.
      const why = error ? `${String(error.desc)} (${String(error.class)})` : text.slice(0, 200);
      return this.#fail(new QmpConnectionError(`QMP protocol error: reply without id: ${why}`));
    }
    const key = JSON.stringify(msg.id);
    const call = this.#sent.get(key);
    if (!call) return this.#fail(new QmpConnectionError(`QMP protocol error: reply to unknown id ${key}`));
    this.#sent.delete(key);
    if (call.inBand) this.#inFlight--;
    if (error) call.settle(new QmpError(String(error.class), String(error.desc), call.command));
    else call.settle(undefined, msg.return);
    this.#pump();
  }

  #onEvent(msg: Record<string, unknown>, bytes: number): void {
    const ts = isObject(msg.timestamp) ? msg.timestamp : {};
    const e: QmpEvent = {
      event: msg.event as string,
      data: isObject(msg.data) ? msg.data : {},
      timestamp: { seconds: Number(ts.seconds ?? 0), microseconds: Number(ts.microseconds ?? 0) },
    };
    // Old QEMU drops commands over its queue limit and says so with an event naming the id.
    if (e.event === 'COMMAND_DROPPED') {
      const key = JSON.stringify(e.data.id);
      const call = this.#sent.get(key);
      if (call) {
        this.#sent.delete(key);
        if (call.inBand) this.#inFlight--;
        call.settle(new QmpError('CommandDropped', String(e.data.reason), call.command));
        this.#pump();
      }
    }
    for (const s of [...this.#subs]) if (!s.names || s.names.has(e.event)) s.push(e, bytes);
  }

  #fail(err: QmpConnectionError, byUser = false): void {
    if (this.#closed) return;
    this.#closed = err;
    this.#onGreeting?.reject(err);
    for (const c of this.#sent.values()) c.settle(err);
    for (const q of this.#queue) q.call.settle(err);
    this.#sent.clear();
    this.#queue.length = 0;
    for (const s of [...this.#subs]) s.end(err, byUser);
    this.#framer.clear();
    this.#stream.destroy();
  }
}
