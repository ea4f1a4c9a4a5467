/**
 * The hotplug locks (device_hotplug_lock, the device locks, mem_hotplug_lock, cpu_hotplug_lock): async `Mutex` and `RwSemaphore`, acquired by the current task
 * (task.ts) and reported to an optional lock validator (lockdep.ts), plus `HotplugLocks`, the set a
 * machine has: device_hotplug_lock, mem_hotplug_lock, cpu_hotplug_lock and the device locks of memory
 * block devices, with the kernel's helpers around them.
 *
 * Uncontended acquisitions complete synchronously (the returned promise is already resolved and the
 * lock is held before the call returns), so code that takes and drops a lock without yielding stays fast.
 */
import { MemhpError } from '../errors.js';
import type { Lockdep, LockInstance, LockMode } from './lockdep.js';
import { currentTask, type Task } from './task.js';

/** Lock class names, as lockdep prints them. */
export const LOCK_CLASSES = {
  /** The global device hotplug mutex (`lock_device_hotplug`). */
  device_hotplug_lock: 'device_hotplug_lock',
  /** `device_lock(dev)` = `mutex_lock(&dev->mutex)`: one class for every device. */
  device_lock: '&dev->mutex',
  /** The memory hotplug percpu rwsem. */
  mem_hotplug_lock: 'mem_hotplug_lock',
  /** The CPU hotplug percpu rwsem (`cpus_read_lock`). */
  cpu_hotplug_lock: 'cpu_hotplug_lock',
} as const;

/** Options of a lock. */
export interface LockOptions {
  /** The instance name for reports (default: the class name), e.g. 'memory40'. */
  name?: string;
  /** The validator to report to. */
  lockdep?: Lockdep;
}

type Waiter = { task: Task; mode: LockMode; op: string; resolve: () => void };

const RESOLVED: Promise<void> = Promise.resolve();

/** A sleeping mutex (`struct mutex`): FIFO hand-off to waiters, no barging past them. */
export class Mutex implements LockInstance {
  /** The lock class. */
  readonly lockClass: string;
  /** The instance name. */
  readonly name: string;
  /** The validator this lock reports to, if any. */
  readonly lockdep: Lockdep | undefined;
  #owner: Task | null = null;
  #queue: Waiter[] = [];
  #onFree: (() => void)[] = [];

  constructor(lockClass: string, options: LockOptions = {}) {
    this.lockClass = lockClass;
    this.name = options.name ?? lockClass;
    this.lockdep = options.lockdep;
  }

  /** The holding task, or null. */
  get owner(): Task | null {
    return this.#owner;
  }

  /** Whether some task holds the mutex (`mutex_is_locked`). */
  isLocked(): boolean {
    return this.#owner !== null;
  }

  /** `mutex_lock`: resolves once the current task holds it; rejects only with a strict-mode LockdepError. */
  lock(op = 'mutex_lock'): Promise<void> {
    const task = currentTask();
    try {
      this.lockdep?.attempt(task, this, 'write', op, false);
      if (this.#owner === null) {
        this.#grant(task, op);
        return RESOLVED;
      }
      this.lockdep?.waitBegin(task, this, 'write', op, true);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve) => this.#queue.push({ task, mode: 'write', op, resolve }));
  }

  /** `mutex_trylock`: take it if free and return true, else false. */
  trylock(op = 'mutex_trylock'): boolean {
    if (this.#owner !== null) return false;
    const task = currentTask();
    this.lockdep?.attempt(task, this, 'write', op, true);
    this.#grant(task, op);
    return true;
  }

  /** `mutex_unlock`: hand the mutex to the first waiter, or free it. Unlocking a free mutex throws. */
  unlock(): void {
    const owner = this.#owner;
    if (owner === null) throw new MemhpError(`${this.name}: mutex_unlock of an unlocked mutex`);
    this.lockdep?.released(owner, this);
    const next = this.#queue.shift();
    if (next) {
      this.lockdep?.waitEnd(next.task, this);
      this.#grant(next.task, next.op);
      next.resolve();
      return;
    }
    this.#owner = null;
    const waiters = this.#onFree;
    this.#onFree = [];
    for (const w of waiters) w();
  }

  /**
   * Resolves the next time the mutex becomes free (not handed to a queued waiter), without taking it: a
   * polling task (lock_device_hotplug_sysfs) waits here instead of sleeping a fixed interval. The wait is
   * reported to the validator as an unqueued wait, so a cycle through it is still found.
   */
  waitUnlocked(op = 'mutex_trylock'): Promise<void> {
    if (this.#owner === null) return RESOLVED;
    const task = currentTask();
    try {
      this.lockdep?.waitBegin(task, this, 'write', op, false);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve) =>
      this.#onFree.push(() => {
        this.lockdep?.waitEnd(task, this);
        resolve();
      }),
    );
  }

  #grant(task: Task, op: string): void {
    this.#owner = task;
    this.lockdep?.acquired(task, this, 'write', op);
  }
}

/**
 * A reader-writer semaphore (`struct rw_semaphore`, and the percpu rwsems mem_hotplug_lock and
 * cpu_hotplug_lock, which behave the same to their users): writers wait for all readers; a new reader
 * waits behind a pending writer; waiters are served in FIFO order, consecutive readers together.
 */
export class RwSemaphore implements LockInstance {
  /** The lock class. */
  readonly lockClass: string;
  /** The instance name. */
  readonly name: string;
  /** The validator this lock reports to, if any. */
  readonly lockdep: Lockdep | undefined;
  #readers = 0;
  #writer: Task | null = null;
  #queue: Waiter[] = [];

  constructor(lockClass: string, options: LockOptions = {}) {
    this.lockClass = lockClass;
    this.name = options.name ?? lockClass;
    this.lockdep = options.lockdep;
  }

  /** How many readers hold it. */
  get readers(): number {
    return this.#readers;
  }

  /** The task holding it for write, or null. */
  get writer(): Task | null {
    return this.#writer;
  }

  /** `down_read`. Rejects only with a strict-mode LockdepError. */
  downRead(op = 'down_read'): Promise<void> {
    return settle(() => this.acquire('read', op));
  }

  /** `down_write`. Rejects only with a strict-mode LockdepError. */
  downWrite(op = 'down_write'): Promise<void> {
    return settle(() => this.acquire('write', op));
  }

  /** `down_read_trylock`: true if taken now. */
  downReadTrylock(op = 'down_read_trylock'): boolean {
    return this.#try('read', op);
  }

  /** `down_write_trylock`: true if taken now. */
  downWriteTrylock(op = 'down_write_trylock'): boolean {
    return this.#try('write', op);
  }

  /**
   * A blocking acquire that completes synchronously when it can: returns true when the lock is now held,
   * else a promise resolved when it is. A strict-mode LockdepError is thrown synchronously. This is what
   * notifier chains use so that an all-synchronous call never waits for a microtask.
   */
  acquire(mode: LockMode, op: string): true | Promise<void> {
    const task = currentTask();
    this.lockdep?.attempt(task, this, mode, op, false);
    if (this.#canGrant(mode)) {
      this.#grant(task, mode, op);
      return true;
    }
    this.lockdep?.waitBegin(task, this, mode, op, true);
    return new Promise((resolve) => this.#queue.push({ task, mode, op, resolve }));
  }

  /** `up_read`. Throws if no reader holds it. */
  upRead(): void {
    if (this.#readers === 0) throw new MemhpError(`${this.name}: up_read without a reader`);
    this.lockdep?.released(currentTask(), this);
    if (--this.#readers === 0 && this.#queue.length > 0) this.#wake();
  }

  /** `up_write`. Throws if no writer holds it. */
  upWrite(): void {
    const writer = this.#writer;
    if (writer === null) throw new MemhpError(`${this.name}: up_write without a writer`);
    this.lockdep?.released(writer, this);
    this.#writer = null;
    if (this.#queue.length > 0) this.#wake();
  }

  #canGrant(mode: LockMode): boolean {
    // An empty queue also means no pending writer, so a reader may join the current readers.
    return this.#writer === null && this.#queue.length === 0 && (mode === 'read' || this.#readers === 0);
  }

  #try(mode: LockMode, op: string): boolean {
    if (!this.#canGrant(mode)) return false;
    const task = currentTask();
    this.lockdep?.attempt(task, this, mode, op, true);
    this.#grant(task, mode, op);
    return true;
  }

  #grant(task: Task, mode: LockMode, op: string): void {
    if (mode === 'write') this.#writer = task;
    else this.#readers++;
    this.lockdep?.acquired(task, this, mode, op);
  }

  #wake(): void {
    while (this.#queue.length > 0 && this.#writer === null) {
      const head = this.#queue[0]!;
      if (head.mode === 'write' && this.#readers > 0) return;
      this.#queue.shift();
      this.lockdep?.waitEnd(head.task, this);
      this.#grant(head.task, head.mode, head.op);
      head.resolve();
      if (head.mode === 'write') return;
    }
  }
}

function settle(fn: () => true | Promise<void>): Promise<void> {
  try {
    const r = fn();
    return r === true ? RESOLVED : r;
  } catch (e) {
    return Promise.reject(e);
  }
}

/** Options of {@link HotplugLocks}. */
export interface HotplugLocksOptions {
  /** The validator every lock reports to. */
  lockdep?: Lockdep;
  /**
   * How lock_device_hotplug_sysfs waits after a failed trylock. The kernel sleeps 5 ms and restarts the
   * syscall; 0 (the default) waits until the mutex is released instead. Both retry the trylock and
   * succeed on the first attempt that finds the mutex free, neither queues nor fails, so the outcome is
   * the same; only simulated wall time differs.
   */
  sysfsRetryMs?: number;
}

/** The hotplug locks of one machine, outermost first: device_hotplug_lock → device_lock → cpu_hotplug_lock → mem_hotplug_lock. */
export class HotplugLocks {
  /** The validator, if any. */
  readonly lockdep: Lockdep | undefined;
  /** device_hotplug_lock. */
  readonly deviceHotplugLock: Mutex;
  /** cpu_hotplug_lock. */
  readonly cpuHotplugLock: RwSemaphore;
  /** mem_hotplug_lock. */
  readonly memHotplugLock: RwSemaphore;
  /** See {@link HotplugLocksOptions.sysfsRetryMs}. */
  readonly sysfsRetryMs: number;

  constructor(options: HotplugLocksOptions = {}) {
    const lockdep = options.lockdep;
    this.lockdep = lockdep;
    this.deviceHotplugLock = new Mutex(LOCK_CLASSES.device_hotplug_lock, { lockdep });
    this.cpuHotplugLock = new RwSemaphore(LOCK_CLASSES.cpu_hotplug_lock, { lockdep });
    this.memHotplugLock = new RwSemaphore(LOCK_CLASSES.mem_hotplug_lock, { lockdep });
    this.sysfsRetryMs = options.sysfsRetryMs ?? 0;
  }

  /** A new device lock (`dev->mutex`) for the device `name`, e.g. 'memory40'; all share one lock class. */
  createDeviceLock(name: string): Mutex {
    return new Mutex(LOCK_CLASSES.device_lock, { name, lockdep: this.lockdep });
  }

  /** `lock_device_hotplug`. */
  lockDeviceHotplug(op = 'lock_device_hotplug'): Promise<void> {
    return this.deviceHotplugLock.lock(op);
  }

  /** `unlock_device_hotplug`. */
  unlockDeviceHotplug(): void {
    this.deviceHotplugLock.unlock();
  }

  /**
   * `lock_device_hotplug_sysfs`: trylock; when taken, wait (see {@link HotplugLocksOptions.sysfsRetryMs})
   * and try again, as the restarted syscall does. Never fails for contention: the writer just waits.
   */
  async lockDeviceHotplugSysfs(op = 'lock_device_hotplug_sysfs'): Promise<void> {
    const mutex = this.deviceHotplugLock;
    while (!mutex.trylock(op)) {
      if (this.sysfsRetryMs > 0) await this.#sleepOn(mutex, op, this.sysfsRetryMs);
      else await mutex.waitUnlocked(op);
    }
  }

  /** `cpus_read_lock`. */
  cpusReadLock(op = 'cpus_read_lock'): Promise<void> {
    return this.cpuHotplugLock.downRead(op);
  }

  /** `cpus_read_unlock`. */
  cpusReadUnlock(): void {
    this.cpuHotplugLock.upRead();
  }

  /** `mem_hotplug_begin`: cpus_read_lock, then mem_hotplug_lock for write. */
  async memHotplugBegin(op = 'mem_hotplug_begin'): Promise<void> {
    await this.cpusReadLock(op);
    try {
      await this.memHotplugLock.downWrite(op);
    } catch (e) {
      this.cpusReadUnlock();
      throw e;
    }
  }

  /** `mem_hotplug_done`: the reverse of mem_hotplug_begin. */
  memHotplugDone(): void {
    this.memHotplugLock.upWrite();
    this.cpusReadUnlock();
  }

  /** `get_online_mems`: mem_hotplug_lock for read, so memory cannot vanish meanwhile. */
  getOnlineMems(op = 'get_online_mems'): Promise<void> {
    return this.memHotplugLock.downRead(op);
  }

  /** `put_online_mems`. */
  putOnlineMems(): void {
    this.memHotplugLock.upRead();
  }

  // msleep(ms) while polling a mutex: reported as an unqueued wait so a cycle through it is still seen.
  async #sleepOn(mutex: Mutex, op: string, ms: number): Promise<void> {
    const task = currentTask();
    this.lockdep?.waitBegin(task, mutex, 'write', op, false);
    try {
      await new Promise((r) => setTimeout(r, ms));
    } finally {
      this.lockdep?.waitEnd(task, mutex);
    }
  }
}
