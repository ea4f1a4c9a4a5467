/**
 * Notifier chains with the semantics of kernel/notifier.c and include/linux/notifier.h: blocking chains sorted by priority (highest first, FIFO among equals), -EEXIST on a duplicate,
 * -ENOENT on an unknown unregister, the call returning the last called notifier's value and stopping
 * on NOTIFY_STOP_MASK, and an rw_semaphore that calls take for read and (un)registration for write.
 *
 * A chain knows nothing of a Machine: it is given a name, an optional action namer and payload fields
 * for its trace records, an optional trace and an optional lock validator.
 */
import { KernelError } from '../errors.js';
import type { Lockdep } from './lockdep.js';
import { RwSemaphore } from './locks.js';
import {
  memoryActionName,
  nodeActionName,
  type KernelProfile,
  type MemoryNotify,
  type NodeNotify,
} from './profile.js';
import type { JsonValue, Trace } from './trace.js';

/** Don't care. */
export const NOTIFY_DONE = 0x0000;
/** Suits me. */
export const NOTIFY_OK = 0x0001;
/** Don't call further notifiers. */
export const NOTIFY_STOP_MASK = 0x8000;
/** Bad/veto action: NOTIFY_STOP_MASK | 0x0002. */
export const NOTIFY_BAD = 0x8002;
/** Clean way to return from the notifier and stop further calls: NOTIFY_STOP_MASK | NOTIFY_OK. */
export const NOTIFY_STOP = 0x8001;

/** `notifier_from_errno`: 0 → NOTIFY_OK, else NOTIFY_STOP_MASK | (NOTIFY_OK - err); -12 → 0x800D. */
export function notifierFromErrno(err: number): number {
  return err ? NOTIFY_STOP_MASK | (NOTIFY_OK - err) : NOTIFY_OK;
}

/** `notifier_to_errno`: clear NOTIFY_STOP_MASK; a rest above NOTIFY_OK is NOTIFY_OK - rest, else 0 (NOTIFY_BAD → -EPERM, NOTIFY_STOP → 0). */
export function notifierToErrno(ret: number): number {
  ret &= ~NOTIFY_STOP_MASK;
  return ret > NOTIFY_OK ? NOTIFY_OK - ret : 0;
}

/**
 * A notifier callback (`notifier_fn_t`): the action's numeric value, the payload, and its own block
 * (`self`). It returns a NOTIFY_* value, or a promise of one (awaited before the next notifier runs).
 */
export type NotifierCallback<P> = (action: number, arg: P, self: NotifierBlock<P>) => number | PromiseLike<number>;

/** A registered callback (`struct notifier_block`): the handle `register` returns. */
export interface NotifierBlock<P> {
  /** The callback. */
  readonly callback: NotifierCallback<P>;
  /** Its priority; higher runs first. */
  readonly priority: number;
  /**
   * Resolves once the block is on the chain. That is at once, unless a call held the chain's rwsem:
   * then, as in the kernel, registration waits for the call to end.
   */
  readonly registered: Promise<void>;
  /** Unregister; resolves once off the chain (after any call in flight ends). A second unregister → ENOENT. */
  unregister(): Promise<void>;
}

/** Options of a {@link NotifierChain}. */
export interface NotifierChainOptions {
  /** The chain's name in trace records ('memory', 'node'); its rwsem's lock class is `(<name>_chain).rwsem`. */
  name: string;
  /** Names an action value for trace records (default: its hex value). */
  actionName?: (value: number) => string | undefined;
  /** The payload fields copied into trace records, in order (default: none). */
  payloadFields?: readonly string[];
  /** Where one `{"type":"notify"}` record per call goes. */
  trace?: Trace;
  /** The validator the chain's rwsem reports to. */
  lockdep?: Lockdep;
  /** When set, this kernel has no such chain: `register` throws ENOSYS with this reason. */
  unavailable?: string;
}

class Block<P extends object> implements NotifierBlock<P> {
  registered: Promise<void> = Promise.resolve();
  constructor(
    readonly chain: NotifierChain<P>,
    readonly callback: NotifierCallback<P>,
    readonly priority: number,
  ) {}
  unregister(): Promise<void> {
    return this.chain.unregister(this.callback);
  }
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

function checked(v: unknown): number {
  if (typeof v !== 'number') throw new TypeError(`notifier callback returned ${String(v)}, not a NOTIFY_* number`);
  return v;
}

/** A blocking notifier chain (`struct blocking_notifier_head`). `P` is the payload type. */
export class NotifierChain<P extends object = Readonly<Record<string, number>>> {
  /** The chain's name ('memory', 'node'). */
  readonly name: string;
  /** The chain's rw_semaphore: calls hold it for read, (un)registration for write. */
  readonly rwsem: RwSemaphore;
  readonly #options: NotifierChainOptions;
  // Sorted, replaced (never mutated) on change, so a call iterates the list it started with.
  #blocks: readonly Block<P>[] = [];
  // Membership once every queued (un)registration has run: duplicates and unknowns are judged on it.
  readonly #future = new Map<NotifierCallback<P>, Block<P>>();

  constructor(options: NotifierChainOptions) {
    this.#options = options;
    this.name = options.name;
    this.rwsem = new RwSemaphore(`(${options.name}_chain).rwsem`, { lockdep: options.lockdep });
  }

  /** The registered blocks in call order. */
  get blocks(): readonly NotifierBlock<P>[] {
    return this.#blocks;
  }

  /**
   * `blocking_notifier_chain_register`: add `callback` after every block of priority ≥ `priority`.
   * The same callback twice → KernelError EEXIST; a chain this kernel lacks → ENOSYS; a callback
   * registering on the chain that is calling it → a strict-mode LockdepError (thrown), or a lockdep record
   * and a registration that completes when the call ends (where the kernel would deadlock).
   */
  register(callback: NotifierCallback<P>, priority = 0): NotifierBlock<P> {
    if (this.#options.unavailable) throw new KernelError('ENOSYS', `${this.name} notifier chain: ${this.#options.unavailable}`);
    if (this.#future.has(callback)) {
      throw new KernelError('EEXIST', `notifier callback ${callback.name || '(anonymous)'} already registered`);
    }
    const block = new Block(this, callback, priority);
    this.#future.set(callback, block);
    let lock: true | Promise<void>;
    try {
      lock = this.rwsem.acquire('write', 'blocking_notifier_chain_register');
    } catch (e) {
      this.#future.delete(callback);
      throw e;
    }
    const insert = () => {
      const i = this.#blocks.findIndex((b) => priority > b.priority);
      this.#blocks = i < 0 ? [...this.#blocks, block] : [...this.#blocks.slice(0, i), block, ...this.#blocks.slice(i)];
      this.rwsem.upWrite();
    };
    if (lock === true) insert();
    else block.registered = lock.then(insert);
    return block;
  }

  /**
   * `blocking_notifier_chain_unregister`: resolves once `callback` is off the chain, waiting for a call
   * in flight. Unknown → KernelError ENOENT. From a callback of this chain → a strict-mode LockdepError,
   * or a lockdep record and a wait for the call to end.
   */
  unregister(callback: NotifierCallback<P>): Promise<void> {
    const block = this.#future.get(callback);
    if (!block) return Promise.reject(new KernelError('ENOENT', `${this.name} notifier chain: callback not registered`));
    this.#future.delete(callback);
    let lock: true | Promise<void>;
    try {
      lock = this.rwsem.acquire('write', 'blocking_notifier_chain_unregister');
    } catch (e) {
      this.#future.set(callback, block);
      return Promise.reject(e);
    }
    const drop = () => {
      this.#blocks = this.#blocks.filter((b) => b !== block);
      this.rwsem.upWrite();
    };
    if (lock !== true) return lock.then(drop);
    drop();
    return Promise.resolve();
  }

  /**
   * `blocking_notifier_call_chain`: call each block in order with (action, arg) until one returns a
   * value with NOTIFY_STOP_MASK; return the last value (NOTIFY_DONE for an empty chain, which takes no
   * lock). Returns a number when every callback returned one synchronously and the rwsem was free, else
   * a promise; a callback's exception propagates after the rwsem is released. A strict-mode LockdepError
   * (a callback calling its own chain) is thrown synchronously.
   */
  callChain(action: number, arg: P): number | Promise<number> {
    if (this.#options.trace) this.#record(action, arg);
    if (this.#blocks.length === 0) return NOTIFY_DONE;
    const lock = this.rwsem.acquire('read', 'blocking_notifier_call_chain');
    if (lock !== true) return lock.then(() => this.#run(action, arg));
    return this.#run(action, arg);
  }

  // Called with the rwsem held for read; releases it.
  #run(action: number, arg: P): number | Promise<number> {
    const blocks = this.#blocks;
    let ret = NOTIFY_DONE;
    for (let i = 0; i < blocks.length; i++) {
      const b = blocks[i]!;
      let v: number | PromiseLike<number>;
      try {
        v = b.callback(action, arg, b);
        if (typeof v !== 'number') {
          if (isThenable(v)) return this.#resume(v, i, blocks, action, arg);
          checked(v);
        }
      } catch (e) {
        this.rwsem.upRead();
        throw e;
      }
      ret = v as number;
      if (ret & NOTIFY_STOP_MASK) break;
    }
    this.rwsem.upRead();
    return ret;
  }

  // The rest of a call once a callback returned a promise: await each promise, keep the same order.
  async #resume(pending: PromiseLike<number>, i: number, blocks: readonly Block<P>[], action: number, arg: P): Promise<number> {
    try {
      let ret = checked(await pending);
      for (let j = i + 1; j < blocks.length && !(ret & NOTIFY_STOP_MASK); j++) {
        const b = blocks[j]!;
        const v = b.callback(action, arg, b);
        ret = checked(isThenable(v) ? await v : v);
      }
      return ret;
    } finally {
      this.rwsem.upRead();
    }
  }

  #record(action: number, arg: P): void {
    const o = this.#options;
    const payload: Record<string, JsonValue> = {};
    const a = arg as Readonly<Record<string, unknown>>;
    for (const f of o.payloadFields ?? []) {
      const v = a[f];
      if (typeof v === 'number') payload[f] = v;
    }
    o.trace!.add({ type: 'notify', chain: this.name, action: o.actionName?.(action) ?? `0x${action.toString(16)}`, value: action, ...payload });
  }
}

/** Options of the memory and node chains of a machine. */
export interface HotplugChainOptions {
  /** Where notify records go. */
  trace?: Trace;
  /** The lock validator. */
  lockdep?: Lockdep;
}

/**
 * The memory chain (`memory_chain`, registered on by `hotplug_memory_notifier`) of a profile: trace
 * records name actions and payload fields as that kernel does.
 */
export function memoryNotifierChain(profile: KernelProfile, options: HotplugChainOptions = {}): NotifierChain<MemoryNotify> {
  return new NotifierChain<MemoryNotify>({
    ...options,
    name: 'memory',
    actionName: (v) => memoryActionName(profile, v),
    payloadFields: profile.memoryNotifyFields,
  });
}

/**
 * The node chain (`node_chain`, `hotplug_node_notifier`, 7.x). On profiles without one the chain exists
 * but `register` throws ENOSYS.
 */
export function nodeNotifierChain(profile: KernelProfile, options: HotplugChainOptions = {}): NotifierChain<NodeNotify> {
  return new NotifierChain<NodeNotify>({
    ...options,
    name: 'node',
    actionName: (v) => nodeActionName(profile, v),
    payloadFields: profile.nodeNotifyFields ?? [],
    ...(profile.nodeActions ? {} : { unavailable: `kernel ${profile.name} has no node notifier chain` }),
  });
}
