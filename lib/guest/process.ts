/**
 * QEMU's process: started detached (its own session and process group, so one kill reaches QEMU and
 * anything it starts), under `setpriv --pdeathsig` where that exists (it then dies even if its owner is
 * SIGKILLed), tracked by lib/guest/cleanup.ts until it exits; why it exited, what its console shows
 * (a crash or not), stopping it, and the count of guests still alive.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import type { FileHandle } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { trackProcess } from './cleanup.js';
import { GuestError } from './errors.js';

/** Prefix of a guest's private directory under the temporary directory: `memhp-guest-<pid>-<start>-XXXXXX`. */
export const GUEST_DIR = 'memhp-guest-';

/** SIGKILL the process group of `child` (synchronous); nothing if it has exited. */
export function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

let setprivOk: boolean | undefined;
/** util-linux setpriv with --pdeathsig: QEMU then dies even if its owner is SIGKILLed. */
function pdeathsigWrapper(): string[] {
  setprivOk ??= spawnSync('setpriv', ['--pdeathsig', 'KILL', 'true']).status === 0;
  return setprivOk ? ['setpriv', '--pdeathsig', 'KILL', '--'] : [];
}

/** How to run QEMU: the binary, and the full argv (the parent-death wrapper where there is one, the binary, its arguments). */
export interface QemuCommand {
  /** The QEMU binary, as asked for (named when it cannot be started). */
  qemu: string;
  /** What is spawned: `argv[0]` and its arguments. */
  argv: string[];
}

/** The command that runs `qemu` with `args`. */
export function qemuCommand(qemu: string, args: string[]): QemuCommand {
  return { qemu, argv: [...pdeathsigWrapper(), qemu, ...args] };
}

/** A started QEMU. */
export interface QemuProcess {
  /** QEMU (or its `setpriv` wrapper, which execs it): the leader of its own process group. */
  child: ChildProcess;
  /** Resolves, never rejects, with why QEMU is gone (could not start, its exit code or signal, and its stderr). */
  exited: Promise<string>;
  /** The last 4000 characters QEMU wrote to stderr. */
  stderr(): string;
}

/**
 * Start `cmd` (from {@link qemuCommand}) detached, with `kernel` as its descriptor 3, and track its
 * process group until it exits. `kernel` is closed here: QEMU has its own copy of the descriptor.
 */
export async function spawnQemu(cmd: QemuCommand, kernel: FileHandle): Promise<QemuProcess> {
  // detached: own session and process group, so one kill reaches QEMU and anything it starts.
  let child: ChildProcess;
  try {
    child = spawn(cmd.argv[0]!, cmd.argv.slice(1), { detached: true, stdio: ['ignore', 'ignore', 'pipe', kernel.fd] });
  } finally {
    await kernel.close(); // QEMU has its own copy of the descriptor
  }
  const untrack = trackProcess(child.pid, true);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<string>((resolve) => {
    child.once('error', (e) => resolve(`could not start ${cmd.qemu}: ${e.message}`));
    child.once('exit', (code, sig) => resolve(`QEMU exited (${sig ?? `code ${code}`})${stderr ? `: ${stderr.trim()}` : ''}`));
  });
  void exited.then(untrack);
  return { child, exited, stderr: () => stderr };
}

/**
 * Stop QEMU: ask the guest to power off (`poweroff`, which exits QEMU at once) and give it a moment,
 * then kill the process group; resolves once QEMU has exited.
 */
export async function stopQemu(child: ChildProcess, poweroff: () => Promise<unknown>): Promise<void> {
  const gone = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  // poweroff -f exits QEMU at once; nothing in the guest needs flushing, so do not wait long.
  await Promise.race([poweroff().catch(() => undefined), gone]);
  await Promise.race([gone, new Promise((r) => setTimeout(r, 500))]);
  killGroup(child);
  await gone;
}

/** In a restored guest's directory: the console log of the boot that was saved. */
export const BOOT_CONSOLE = 'console.boot.log';

/** The last `lines` lines of a guest's console: the saved boot's log (after a restore), then QEMU's console.log. */
export async function consoleText(dir: string, lines: number): Promise<string> {
  const read = (f: string): Promise<string> => readFile(path.join(dir, f), 'utf8').catch(() => '');
  return (await read(BOOT_CONSOLE) + (await read('console.log'))).split('\n').slice(-lines).join('\n');
}

/** Console signs of a kernel crash (an oops); a panic for a missing /init is a harness bug, not a crash. */
export const CRASH = /Oops:|BUG:|general protection fault|Kernel panic/;

/** A guest that crashed (oops/panic on the console) before it was ready: worth one more try. */
export class BootCrash extends GuestError {
  constructor(message: string, console: string) {
    super(message, { console });
  }
}

const live = new Set<object>();

/** Count `guest` as alive until {@link forgetGuest} or until its QEMU has `exited`. */
export function countGuest(guest: object, exited: Promise<unknown>): void {
  live.add(guest);
  void exited.then(() => live.delete(guest));
}

/** Stop counting `guest` (closed). */
export function forgetGuest(guest: object): void {
  live.delete(guest);
}

/** QEMU processes this process started that are still alive (for leak checks). */
export function liveGuests(): number {
  return live.size;
}
