/**
 * Task identity. Every simulated operation (a sysfs write, an ACPI event, add_memory) runs as a task;
 * `AsyncLocalStorage` carries it across awaits so the locks and the lock validator know who holds what,
 * as the kernel knows `current`.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

/** A simulated kernel task: a name for reports and a unique id. */
export class Task {
  static #nextId = 1;
  /** Unique per process, increasing. */
  readonly id: number;
  /** Shown in lock-validator reports, e.g. 'udevd' or 'kworker/u8:1'. */
  readonly name: string;

  constructor(name: string) {
    this.id = Task.#nextId++;
    this.name = name;
  }

  /** `name/id`, the way reports print a task. */
  toString(): string {
    return `${this.name}/${this.id}`;
  }
}

const storage = new AsyncLocalStorage<Task>();

/**
 * The task code outside {@link runTask} runs as. Like the kernel's swapper/0 it is one task: two
 * concurrent operations started outside runTask look like one task to the validator, so flows wrap
 * each operation in runTask.
 */
export const INIT_TASK = new Task('swapper/0');

/** The current task (`current`): the innermost {@link runTask}, else {@link INIT_TASK}. */
export function currentTask(): Task {
  return storage.getStore() ?? INIT_TASK;
}

/**
 * Run `fn` as a new task named `name` (or as the given Task) and return its result. Everything `fn`
 * awaits or schedules, notifier callbacks included, runs as that task.
 */
export function runTask<T>(name: string | Task, fn: () => T | Promise<T>): Promise<T> {
  const task = typeof name === 'string' ? new Task(name) : name;
  return storage.run(task, async () => fn());
}
