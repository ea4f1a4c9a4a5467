/**
 * Migration streams of the snapshot cache, with no shell anywhere: QEMU migrates to, or loads from, a
 * unix socket in the guest's private 0700 directory (`unix:` URIs; QEMU 7.2's migration/socket.c), and
 * zstd runs as a child of this process, spawned with an argument vector, the socket itself as its
 * stdin (save) or stdout (restore). This process writes the compressed image, hashing it as it goes
 * (save), or feeds zstd the image bytes it has already verified (restore: lib/guest/snapshot.ts
 * `SnapshotCache.read`), so what QEMU loads is exactly what was checked.
 *
 * QEMU 7.2 has no `file:` migration URI; `exec:` would run a command line through `/bin/sh -c`, and
 * `fd:` needs a descriptor passed over QMP with SCM_RIGHTS, which a Node socket cannot send.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import net from 'node:net';
import type { QmpClient } from '../qmp/client.js';
import { trackProcess } from './cleanup.js';
import { GuestError } from './errors.js';

/** What a save wrote. */
export interface SavedImage {
  /** Bytes of the compressed image. */
  bytes: number;
  /** sha256 of the compressed image, computed from the bytes as they were written. */
  sha256: string;
}

interface MigrationInfo {
  status?: string;
  'error-desc'?: string;
}

/** zstd as a child of this process (no shell), registered for cleanup; resolves with its exit, stderr included. */
function zstd(args: string[], stdio: [net.Socket | 'pipe', net.Socket | 'pipe']): { child: ChildProcess; done: Promise<void> } {
  const child = spawn('zstd', args, { stdio: [stdio[0], stdio[1], 'pipe'] });
  const untrack = trackProcess(child.pid, false);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (e) => reject(new GuestError(`cannot run zstd: ${e.message}`, { cause: e })));
    child.once('close', (code, sig) => {
      untrack();
      if (code === 0) resolve();
      else reject(new GuestError(`zstd ${args.join(' ')} failed (${sig ?? `exit ${code}`})${err.trim() ? `: ${err.trim()}` : ''}`));
    });
  });
  done.catch(() => undefined);
  return { child, done };
}

function kill(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** Poll query-migrate until the outgoing migration completes; rejects when it fails or the deadline passes. */
async function migrated(qmp: QmpClient, until: number, timeoutMs: number): Promise<void> {
  for (;;) {
    const info = await qmp.execute<MigrationInfo>('query-migrate');
    if (info.status === 'completed') return;
    if (info.status === 'failed' || info.status === 'cancelled') throw new GuestError(`saving the guest failed: ${info['error-desc'] ?? info.status}`);
    if (performance.now() > until) {
      await qmp.execute('migrate_cancel').catch(() => undefined);
      throw new GuestError(`saving the guest did not complete within ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Save a running guest to `image` (a new file, 0600; zstd -1): pause it, migrate with no bandwidth limit
 * (QEMU's default is 32 MiB/s) to a unix socket at `sock`, and compress what arrives. The guest is left
 * paused (QEMU's `postmigrate`): the caller resumes it with `cont` whatever happened.
 */
export async function saveVm(qmp: QmpClient, sock: string, image: string, timeoutMs = 120_000): Promise<SavedImage> {
  const until = performance.now() + timeoutMs;
  await rm(sock, { force: true });
  // pauseOnConnect: this process never reads the connection; zstd does.
  const server = net.createServer({ pauseOnConnect: true });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(sock, resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  // O_EXCL | O_NOFOLLOW: a new file, never one a link points to.
  const out = await open(image, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  let z: ReturnType<typeof zstd> | undefined;
  try {
    await qmp.execute('migrate-set-parameters', { 'max-bandwidth': 2 ** 40 });
    // Paused first: the image is one consistent idle state, written in one pass without dirty-page rounds.
    await qmp.execute('stop');
    await qmp.execute('migrate', { uri: `unix:${sock}` });
    const done = migrated(qmp, until, timeoutMs);
    done.catch(() => undefined);
    const conn = await Promise.race([accepted, done.then(() => Promise.reject(new GuestError('the migration completed without connecting')))]);
    server.close();
    z = zstd(['-q', '-1', '-c'], [conn, 'pipe']);
    conn.destroy(); // zstd has its own descriptor
    const h = createHash('sha256');
    let bytes = 0;
    for await (const chunk of z.child.stdout! as AsyncIterable<Buffer>) {
      h.update(chunk);
      bytes += chunk.length;
      await out.write(chunk);
    }
    await Promise.all([done, z.done]);
    return { bytes, sha256: h.digest('hex') };
  } catch (e) {
    if (z) kill(z.child);
    throw e;
  } finally {
    server.close();
    await out.close();
  }
}

/**
 * Load a verified image into a QEMU started with `-incoming defer`: QEMU listens on the unix socket
 * `sock`, zstd -d writes the decompressed stream into it, this process feeds zstd `image`. Then run the
 * guest (the stream was taken paused, so QEMU stays paused after loading). QEMU 7.2 exits when a
 * stream does not load; the caller watches for that.
 */
export async function loadVm(qmp: QmpClient, sock: string, image: Buffer, timeoutMs = 120_000): Promise<void> {
  await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
  const done = qmp.waitForEvent('MIGRATION', {
    predicate: (e) => e.data.status === 'completed' || e.data.status === 'failed',
    timeoutMs,
  });
  done.catch(() => undefined);
  await rm(sock, { force: true });
  await qmp.execute('migrate-incoming', { uri: `unix:${sock}` });
  const conn = net.connect(sock);
  conn.pause(); // zstd writes into it; this process reads nothing
  await new Promise<void>((resolve, reject) => conn.once('error', reject).once('connect', resolve));
  const z = zstd(['-dcq'], ['pipe', conn]);
  conn.destroy();
  try {
    const stdin = z.child.stdin!;
    stdin.on('error', () => undefined); // EPIPE when QEMU refuses the stream and exits; z.done says why
    stdin.end(image);
    const e = await done;
    if (e.data.status !== 'completed') throw new GuestError('QEMU could not load the snapshot');
    // zstd checked the frame checksum at the end of the stream.
    await z.done;
  } catch (e) {
    kill(z.child);
    throw e;
  }
  await qmp.execute('cont');
}
