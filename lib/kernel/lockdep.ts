/**
 * A lockdep-like lock validator. Locks report to it (attempt, wait, acquired, released); it keeps each
 * task's held-lock stack, a global order graph between lock *classes* (all memory block device locks
 * are one class, as in lockdep) and who waits for whom. It reports:
 *
 * - `inversion`: the first time an order is attempted whose reverse is already in the graph ("possible
 *   circular locking dependency detected"), with both acquisition chains;
 * - `recursive`: a task taking a lock class it already holds ("possible recursive locking detected"),
 *   e.g. a notifier callback calling get_online_mems() under mem_hotplug_begin(), or registering on
 *   its own chain;
 * - `wait-cycle`: tasks really waiting for each other (a deadlock that happened).
 *
 * Unlike lockdep, an edge remembers the other locks its task held exclusively ("gate locks", as in the
 * Goodlock algorithm): a cycle whose edges share a gate cannot deadlock, because the gate serialises
 * them. That is how device_hotplug_lock makes the add-vs-online inversion of
 * Documentation/core-api/memory-hotplug.rst harmless, and why the validator stays silent when the
 * kernel's locking is followed. (The kernel itself marks dev->mutex novalidate; memhp validates it.)
 *
 * In strict mode a report is thrown as a {@link LockdepError} from the acquiring call, which then does
 * not take the lock; otherwise it is appended to the trace as a `{"type":"lockdep"}` record and the
 * acquisition proceeds, possibly into a real deadlock, which the wait-cycle detector then reports.
 */
import { MemhpError } from '../errors.js';
import type { Task } from './task.js';
import type { Trace } from './trace.js';

/** How a lock is held: `write` is exclusive (a mutex, or an rwsem taken for write). */
export type LockMode = 'read' | 'write';

/** What the validator knows of a lock instance; implemented by `Mutex` and `RwSemaphore`. */
export interface LockInstance {
  /** The lock class, e.g. 'mem_hotplug_lock' or '&dev->mutex' (shared by every device lock). */
  readonly lockClass: string;
  /** The instance, e.g. 'memory40' for a device lock; the class name for a global lock. */
  readonly name: string;
}

/** One step of an acquisition chain: which task took (or tried) which lock, how, and in which operation. */
export type LockChainEntry = {
  /** The task, printed as `name/id`. */
  readonly task: string;
  /** The lock class. */
  readonly lock: string;
  /** The lock instance. */
  readonly instance: string;
  /** 'read' or 'write'. */
  readonly mode: LockMode;
  /** The operation label given to the acquire call, e.g. 'device_online'. */
  readonly op: string;
};

/** The kind of a validator report. */
export type LockdepReportKind = 'inversion' | 'recursive' | 'wait-cycle';

/**
 * A validator report. `chains[0]` is always the reporting task's chain (its held locks, then the lock it
 * is trying to take). For an inversion the following chains are the earlier acquisitions that recorded
 * the reverse order, one per edge of the reverse path (one for a plain AB-BA); for a wait cycle, one
 * chain per other task in the cycle, each ending with the lock it waits for.
 */
export type LockdepReport = {
  readonly kind: LockdepReportKind;
  /** One line: the kernel's headline and the locks involved. */
  readonly message: string;
  readonly chains: readonly (readonly LockChainEntry[])[];
};

/** A validator report raised in strict mode, from the acquire call that triggered it. */
export class LockdepError extends MemhpError {
  /** The report. */
  readonly report: LockdepReport;
  /** `report.kind`, for quick checks. */
  readonly kind: LockdepReportKind;

  constructor(report: LockdepReport) {
    super(formatReport(report));
    this.report = report;
    this.kind = report.kind;
  }
}

/** A report as text: the headline, then each chain as `task: lock(instance) mode [op] -> ...`. */
export function formatReport(report: LockdepReport): string {
  const chain = (c: readonly LockChainEntry[]) =>
    c.map((e) => `${e.task} ${e.lock}${e.instance !== e.lock ? `(${e.instance})` : ''} ${e.mode} [${e.op}]`).join(' -> ');
  return [report.message, ...report.chains.map((c, i) => `  #${i}: ${chain(c)}`)].join('\n');
}

/** Options of a {@link Lockdep}. */
export interface LockdepOptions {
  /** Throw reports as LockdepError instead of recording them (default false). */
  strict?: boolean;
  /** Where non-strict reports go, as `{"type":"lockdep"}` records. */
  trace?: Trace;
}

type Held = { lock: LockInstance; mode: LockMode; op: string };
type Gates = ReadonlyMap<LockInstance, LockMode>;
type Witness = { chain: LockChainEntry[]; gates: Gates };
type Waiting = { lock: LockInstance; mode: LockMode; op: string; queued: boolean };

// Distinct gate sets kept per edge; a few suffice to tell gated from ungated orders.
const MAX_WITNESSES = 8;

/** The lock validator. One per simulated machine; locks created with it report to it. */
export class Lockdep {
  /** Whether reports are thrown (true) or recorded (false). */
  readonly strict: boolean;
  /** Every distinct report so far, in order, in either mode. */
  readonly reports: LockdepReport[] = [];

  readonly #trace: Trace | undefined;
  readonly #held = new Map<Task, Held[]>();
  readonly #holders = new Map<LockInstance, Task[]>();
  readonly #waiters = new Map<LockInstance, Task[]>();
  readonly #waiting = new Map<Task, Waiting>();
  // Order graph: class -> class -> witnesses of that order.
  readonly #edges = new Map<string, Map<string, Witness[]>>();
  // Acquisition contexts already validated (lockdep's chain cache): same held set + same new lock.
  readonly #validated = new Set<string>();
  // Class reachability in the order graph, cleared when a class edge is added: most acquisitions have
  // no reverse path at all, and this answers them without the iterative-deepening search.
  readonly #reach = new Map<string, boolean>();
  readonly #reported = new Set<string>();
  readonly #ids = new WeakMap<LockInstance, number>();
  #nextId = 1;

  constructor(options: LockdepOptions = {}) {
    this.strict = options.strict ?? false;
    this.#trace = options.trace;
  }

  /** The locks `task` holds, outermost first. */
  heldLocks(task: Task): readonly LockChainEntry[] {
    return (this.#held.get(task) ?? []).map((h) => entry(task, h));
  }

  /**
   * A task is about to take `lock`. Blocking attempts are checked for recursion and inversion and add
   * the order to the graph; trylocks cannot deadlock and are not checked (as in lockdep).
   */
  attempt(task: Task, lock: LockInstance, mode: LockMode, op: string, trylock: boolean): void {
    if (trylock) return;
    const held = this.#held.get(task) ?? [];
    const key = held.map((h) => `${this.#id(h.lock)}${h.mode[0]}`).join(',') + `>${lock.lockClass}:${mode[0]}`;
    if (this.#validated.has(key)) return;
    const want: Held = { lock, mode, op };
    let chainMemo: LockChainEntry[] | undefined;
    const chain = () => (chainMemo ??= [...held, want].map((h) => entry(task, h)));

    const same = held.find((h) => h.lock.lockClass === lock.lockClass);
    if (same) {
      // As lockdep: a recursion is reported alone, and adds no order (the class would depend on itself).
      const what =
        same.mode === 'write' && mode === 'read' ? `recursive ${mode} of write-held ${lock.lockClass}` : `${lock.lockClass} ${mode} while holding it (${same.mode})`;
      this.#report(`recursive:${lock.lockClass}:${same.mode}>${mode}`, {
        kind: 'recursive',
        message: `possible recursive locking detected: ${task} ${what} [${op}, held since ${same.op}]`,
        chains: [chain()],
      });
      this.#validated.add(key);
      return;
    }

    // Innermost held lock first, so the report names the order the task is actually violating.
    for (let i = held.length - 1; i >= 0; i--) {
      const h = held[i]!;
      if (!this.#reachable(lock.lockClass, h.lock.lockClass)) continue;
      const path = this.#reversePath(lock.lockClass, h.lock.lockClass, gatesWithout(held, h));
      if (!path) continue;
      const classes = [h.lock.lockClass, lock.lockClass, ...path.map((w) => w.chain[w.chain.length - 1]!.lock)];
      this.#report(`inversion:${[...new Set(classes)].sort().join(',')}`, {
        kind: 'inversion',
        message:
          `possible circular locking dependency detected: ${task} is trying to acquire ${lock.lockClass} [${op}] ` +
          `while holding ${h.lock.lockClass} [${h.op}], and ${lock.lockClass} already depends on ${h.lock.lockClass}`,
        chains: [chain(), ...path.map((w) => w.chain)],
      });
    }

    for (const h of held) this.#addWitness(h.lock.lockClass, lock.lockClass, () => gatesWithout(held, h), chain);
    this.#validated.add(key);
  }

  /** `task` now holds `lock`. */
  acquired(task: Task, lock: LockInstance, mode: LockMode, op: string): void {
    push(this.#held, task, { lock, mode, op });
    push(this.#holders, lock, task);
  }

  /** `task` (or, when it holds no such lock, whichever task does: rwsem readers may be released by another task) released `lock`. */
  released(task: Task, lock: LockInstance): void {
    let owner = task;
    if (!this.#held.get(task)?.some((h) => h.lock === lock)) owner = this.#holders.get(lock)?.[0] ?? task;
    const held = this.#held.get(owner);
    if (held) {
      const i = held.findLastIndex((h) => h.lock === lock);
      if (i >= 0) held.splice(i, 1);
      if (held.length === 0) this.#held.delete(owner);
    }
    remove(this.#holders, lock, owner);
  }

  /**
   * `task` starts waiting for `lock` (`queued`: in the lock's FIFO, so tasks queued earlier block it too;
   * otherwise it polls, as lock_device_hotplug_sysfs does). Reports a wait cycle through `task`; in strict
   * mode the wait is abandoned (the caller must not enqueue) and the LockdepError thrown.
   */
  waitBegin(task: Task, lock: LockInstance, mode: LockMode, op: string, queued: boolean): void {
    this.#waiting.set(task, { lock, mode, op, queued });
    if (queued) push(this.#waiters, lock, task);
    const cycle = this.#waitCycle(task);
    if (!cycle) return;
    const chains = cycle.map((t) => {
      const w = this.#waiting.get(t)!;
      return [...(this.#held.get(t) ?? []), w].map((h) => entry(t, h));
    });
    try {
      this.#report(`wait-cycle:${cycle.map((t) => t.id).sort().join(',')}:${lock.lockClass}`, {
        kind: 'wait-cycle',
        message: `deadlock: ${cycle.map((t) => `${t} waits for ${this.#waiting.get(t)!.lock.name}`).join(', ')}`,
        chains,
      });
    } catch (e) {
      this.waitEnd(task, lock);
      throw e;
    }
  }

  /** `task` stopped waiting for `lock` (granted, or gave up). */
  waitEnd(task: Task, lock: LockInstance): void {
    const w = this.#waiting.get(task);
    if (w?.lock !== lock) return;
    this.#waiting.delete(task);
    if (w.queued) remove(this.#waiters, lock, task);
  }

  #id(lock: LockInstance): number {
    let id = this.#ids.get(lock);
    if (id === undefined) this.#ids.set(lock, (id = this.#nextId++));
    return id;
  }

  #addWitness(from: string, to: string, gatesOf: () => Gates, chain: () => LockChainEntry[]): void {
    let out = this.#edges.get(from);
    if (!out) this.#edges.set(from, (out = new Map()));
    let ws = out.get(to);
    if (!ws) {
      out.set(to, (ws = []));
      this.#reach.clear(); // a new class edge: reachability may have changed
    }
    if (ws.length >= MAX_WITNESSES) return;
    const gates = gatesOf();
    const key = gateKey(gates);
    if (!ws.some((x) => gateKey(x.gates) === key)) ws.push({ chain: chain(), gates });
  }

  /** Whether class `to` is reachable from `from` in the order graph at all (gates ignored); cached per graph shape. */
  #reachable(from: string, to: string): boolean {
    const k = `${from}\0${to}`;
    let r = this.#reach.get(k);
    if (r === undefined) {
      const seen = new Set([from]);
      const queue = [from];
      r = false;
      while (queue.length && !r) {
        for (const next of this.#edges.get(queue.shift()!)?.keys() ?? []) {
          if (next === to) r = true;
          else if (!seen.has(next)) (seen.add(next), queue.push(next));
        }
      }
      this.#reach.set(k, r);
    }
    return r;
  }

  /**
   * A path from class `from` to class `to` in the order graph whose witnesses are pairwise ungated and
   * ungated by `gates` (the current task's other held locks), or null.
   */
  #reversePath(from: string, to: string, gates: Gates): Witness[] | null {
    if (!this.#reachable(from, to)) return null;
    const chosen: Witness[] = [];
    const onPath = new Set<string>([from]);
    const dfs = (cls: string, depth: number): boolean => {
      for (const [next, ws] of this.#edges.get(cls) ?? []) {
        if (onPath.has(next) || (next !== to && depth <= 1)) continue;
        for (const w of ws) {
          if (gated(w.gates, gates) || chosen.some((c) => gated(c.gates, w.gates))) continue;
          chosen.push(w);
          if (next === to) return true;
          onPath.add(next);
          if (dfs(next, depth - 1)) return true;
          onPath.delete(next);
          chosen.pop();
        }
      }
      return false;
    };
    // Iterative deepening: the shortest reverse path is the one worth reporting.
    for (let depth = 1; depth <= this.#edges.size; depth++) if (dfs(from, depth)) return chosen;
    return null;
  }

  /** The tasks of a wait cycle through `start`, starting with it, or null. */
  #waitCycle(start: Task): Task[] | null {
    const path: Task[] = [];
    const seen = new Set<Task>();
    const dfs = (t: Task): boolean => {
      const w = this.#waiting.get(t);
      if (!w) return false;
      path.push(t);
      seen.add(t);
      const holders = this.#holders.get(w.lock) ?? [];
      const queue = w.queued ? this.#waiters.get(w.lock) ?? [] : [];
      const ahead = queue.slice(0, Math.max(0, queue.indexOf(t)));
      // Tasks queued ahead first: a reader behind a pending writer waits for that writer, not itself.
      for (const b of [...ahead, ...holders]) {
        if (b === start) return true;
        if (!seen.has(b) && dfs(b)) return true;
      }
      path.pop();
      return false;
    };
    return dfs(start) ? path : null;
  }

  #report(key: string, report: LockdepReport): void {
    const fresh = !this.#reported.has(key);
    if (fresh) {
      this.#reported.add(key);
      this.reports.push(report);
    }
    if (this.strict) throw new LockdepError(report);
    if (fresh) this.#trace?.add({ type: 'lockdep', kind: report.kind, message: report.message, chains: report.chains });
  }
}

function entry(task: Task, h: Held): LockChainEntry {
  return { task: String(task), lock: h.lock.lockClass, instance: h.lock.name, mode: h.mode, op: h.op };
}

function gatesWithout(held: readonly Held[], except: Held): Gates {
  const g = new Map<LockInstance, LockMode>();
  for (const h of held) if (h !== except && h.lock !== except.lock) g.set(h.lock, h.mode === 'write' || g.get(h.lock) === 'write' ? 'write' : 'read');
  return g;
}

/** Two acquisitions are serialised by a lock both held, unless both held it for read. */
function gated(a: Gates, b: Gates): boolean {
  for (const [lock, m] of a) {
    const n = b.get(lock);
    if (n !== undefined && (m === 'write' || n === 'write')) return true;
  }
  return false;
}

const gateIds = new WeakMap<Gates, string>();
let nextGateLock = 1;
const gateLockIds = new WeakMap<LockInstance, number>();
function gateKey(g: Gates): string {
  let k = gateIds.get(g);
  if (k === undefined) {
    const parts: string[] = [];
    for (const [lock, m] of g) {
      let id = gateLockIds.get(lock);
      if (id === undefined) gateLockIds.set(lock, (id = nextGateLock++));
      parts.push(`${id}${m[0]}`);
    }
    gateIds.set(g, (k = parts.sort().join(',')));
  }
  return k;
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const a = m.get(k);
  if (a) a.push(v);
  else m.set(k, [v]);
}

function remove<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const a = m.get(k);
  if (!a) return;
  const i = a.indexOf(v);
  if (i >= 0) a.splice(i, 1);
  if (a.length === 0) m.delete(k);
}
