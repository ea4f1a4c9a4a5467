/**
 * What the harness leaves behind, and how it is taken away. Every QEMU process group, zstd child and
 * private directory (a guest's sockets, initramfs and console; a snapshot entry being written; a kernel
 * being unpacked) is registered here while it exists. On SIGINT, SIGTERM or SIGHUP the handler kills
 * the processes with SIGKILL, waits until they are dead, removes the directories — all synchronously —
 * and then lets the signal do what it would have done; on process exit it does the same.
 *
 * SIGKILL runs no handler: QEMU then dies of its parent-death signal (lib/guest/process.ts), and the
 * directories stay. Their names carry their owner ({@link ownerTag}: pid and start time), so the next
 * run removes those whose owner is dead ({@link reclaimStale}); a live owner's are never touched.
 */
import { readFileSync, rmSync } from 'node:fs';
import { lstat, mkdtemp, readdir, rm } from 'node:fs/promises';
import path from 'node:path';

const procs = new Map<number, 'group' | 'process'>();
const dirs = new Set<string>();
let hooked = false;

/** A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or undefined when it is gone. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return f[0] === 'Z' ? undefined : f[19];
  } catch {
    return undefined;
  }
}

let tag: string | undefined;
/** This process as the owner of temporary things: `<pid>-<start time>` (the start time tells a reused pid apart). */
export function ownerTag(): string {
  tag ??= `${process.pid}-${startTime(process.pid) ?? '0'}`;
  return tag;
}

/** True when the process of an {@link ownerTag} still runs (same pid, same start time). */
export function ownerAlive(pid: number, start: string): boolean {
  return startTime(pid) === start;
}

/** Register a process (a whole process group when `group`) to be SIGKILLed if this process is signalled or exits; returns the unregistering function. */
export function trackProcess(pid: number | undefined, group: boolean): () => void {
  if (pid === undefined) return () => undefined;
  hook();
  procs.set(pid, group ? 'group' : 'process');
  return () => void procs.delete(pid);
}

/** Register a directory to be removed if this process is signalled or exits; returns the unregistering function. */
export function trackDir(dir: string): () => void {
  hook();
  dirs.add(dir);
  return () => void dirs.delete(dir);
}

/** Unregister a directory that is no longer ours to remove (renamed into place, say). */
export function releaseDir(dir: string): void {
  dirs.delete(dir);
}

/** Remove a registered directory now (and unregister it). */
export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  dirs.delete(dir);
}

/**
 * A new private (0700, mkdtemp) directory `<parent>/<prefix><ownerTag>-XXXXXX`, registered with
 * {@link trackDir}; remove it with {@link removeDir}.
 */
export async function ownedTempDir(parent: string, prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(parent, `${prefix}${ownerTag()}-`));
  trackDir(dir);
  return dir;
}

/**
 * Remove the entries of `parent` named `<prefix><pid>-<start>-…` that belong to this user and whose
 * owner is dead (SIGKILLed, or a crashed machine). Returns the names removed.
 */
export async function reclaimStale(parent: string, prefix: string): Promise<string[]> {
  const uid = process.getuid?.();
  const gone: string[] = [];
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d{1,10})-(\d+)-/.exec(name.slice(prefix.length));
    if (!m || ownerAlive(Number(m[1]), m[2]!)) continue;
    const p = path.join(parent, name);
    const st = await lstat(p).catch(() => undefined);
    if (!st || (uid !== undefined && st.uid !== uid)) continue;
    await rm(p, { recursive: true, force: true }).catch(() => undefined);
    gone.push(name);
  }
  return gone;
}

/** SIGKILL every registered process, wait (at most 2 s) until each is dead, remove every registered directory. Synchronous. */
function teardown(): void {
  for (const [pid, how] of procs) {
    try {
      process.kill(how === 'group' ? -pid : pid, 'SIGKILL');
    } catch {
      /* gone already */
    }
  }
  // Dead is a zombie or no process: it writes nothing more into the directories.
  const pending = new Set(procs.keys());
  const until = Date.now() + 2000;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  while (pending.size > 0 && Date.now() < until) {
    for (const pid of pending) if (startTime(pid) === undefined) pending.delete(pid);
    if (pending.size > 0) Atomics.wait(nap, 0, 0, 5);
  }
  procs.clear();
  for (const d of dirs) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      /* nothing more can be done in a signal handler */
    }
  }
  dirs.clear();
}

function hook(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', teardown);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      teardown();
      // Let the signal do what it would have done without us (with no other listener: terminate).
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}
