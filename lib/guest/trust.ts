/**
 * Trust in the caches. What the harness boots or restores — a kernel, its modules, the guest helper,
 * a snapshot image — comes out of `$MEMHP_CACHE` and `$MEMHP_SNAPSHOT_DIR`, and QEMU may run as root:
 * whoever can write there could feed QEMU a crafted kernel or migration stream. So a cache directory
 * must belong to this user and be writable by no one else, and so must every directory above it unless
 * it is root's or sticky (as /tmp), and every symbolic link on the way ({@link trustedDir}); new
 * directories are made 0700. Inside, files are read without following links and only when they are
 * this user's and writable by no one else ({@link readOwnFile}), written as a new temporary file that
 * is renamed into place ({@link writeOwnFile}), and whatever is booted is checked against the sha256
 * recorded when it was made ({@link openVerified}, {@link readVerified}).
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants, type BigIntStats, type Stats } from 'node:fs';
import { lstat, mkdir, open, realpath, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { GuestError } from './errors.js';

/** What a directory is, for messages: its name and the variable that moves it. */
export interface DirRole {
  what: string;
  env: string;
}

/** The kernel, helper and apt cache (lib/guest/kernels.ts `cacheDir`). */
export const CACHE_ROLE: DirRole = { what: 'the memhp cache', env: 'MEMHP_CACHE' };
/** The snapshot cache (lib/guest/snapshot.ts `snapshotDir`). */
export const SNAPSHOT_ROLE: DirRole = { what: 'the snapshot cache', env: 'MEMHP_SNAPSHOT_DIR' };

const uid = (): number => process.getuid?.() ?? 0;
const octal = (mode: number): string => '0' + (mode & 0o7777).toString(8);
const elsewhere = (role: DirRole): string => `, or set ${role.env} to a directory of your own`;

/** The refusal of a directory whose owner or mode lets another user change what is in it. */
function unsafe(dir: string, role: DirRole, why: string, fix: string): GuestError {
  return new GuestError(`${role.what} ${dir} is not safe to use: ${why}; another user could change what QEMU boots or restores. ${fix}${elsewhere(role)}`);
}

/** The directory itself: this user's, writable by no one else. */
function checkOwnDir(dir: string, st: Stats, role: DirRole): void {
  if (!st.isDirectory()) throw unsafe(dir, role, 'it is not a directory', `Remove it`);
  if (st.uid !== uid()) throw unsafe(dir, role, `it belongs to uid ${st.uid}, not to you (uid ${uid()})`, `Run chown -R ${uid()} ${dir}`);
  if (st.mode & 0o022) throw unsafe(dir, role, `it is writable by group or others (mode ${octal(st.mode)})`, `Run chmod go-w ${dir} (or chmod 700)`);
}

/**
 * Make `dir` (missing directories 0700) and check that only this user can change it: the directory is
 * this user's and writable by no one else; each directory above it, by its real path, is this user's
 * or root's and writable by no one else unless sticky; each symbolic link on the way is this user's or
 * root's. Throws a {@link GuestError} saying what to do.
 */
export async function trustedDir(dir: string, role: DirRole): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const trustedOwner = (u: number): boolean => u === 0 || u === uid();
  // The path as given: a link on it is followed, so only its owner (or root) may be able to repoint it.
  const parts = path.resolve(dir).split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const p = '/' + parts.slice(0, i).join('/');
    const l = await lstat(p);
    if (l.isSymbolicLink() && !trustedOwner(l.uid)) throw unsafe(dir, role, `the symbolic link ${p} belongs to uid ${l.uid}`, `Use a path without it`);
  }
  // The real path: every directory above must keep others from renaming or replacing what is below.
  const real = await realpath(dir);
  checkOwnDir(dir, await lstat(real), role);
  for (let p = path.dirname(real); ; p = path.dirname(p)) {
    const st = await stat(p);
    if (!trustedOwner(st.uid)) throw unsafe(dir, role, `the directory above it, ${p}, belongs to uid ${st.uid}`, `Move it`);
    if (st.mode & 0o022 && !(st.mode & 0o1000)) throw unsafe(dir, role, `the directory above it, ${p}, is writable by others and not sticky (mode ${octal(st.mode)})`, `Move it`);
    if (p === '/') break;
  }
}

/** Make `dir` (0700) inside a {@link trustedDir}, and check it is a real directory, this user's, writable by no one else. */
export async function trustedSubdir(dir: string, role: DirRole): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  if (st.isSymbolicLink()) throw unsafe(dir, role, 'it is a symbolic link', 'Remove it');
  checkOwnDir(dir, st, role);
}

/** Check, without making it, that `dir` is a real directory (not a link), this user's, writable by no one else; ENOENT passes through. */
export async function checkOwnSubdir(dir: string, role: DirRole): Promise<void> {
  const st = await lstat(dir);
  if (st.isSymbolicLink()) throw unsafe(dir, role, 'it is a symbolic link', 'Remove it');
  checkOwnDir(dir, st, role);
}

/** A file that may be used: a regular file, this user's, writable by no one else. */
export function checkOwnFile(file: string, st: Stats | BigIntStats): void {
  if (!st.isFile()) throw new GuestError(`${file} is not a regular file; remove it`);
  if (Number(st.uid) !== uid()) throw new GuestError(`${file} belongs to uid ${st.uid}, not to you (uid ${uid()}); remove it`);
  if (Number(st.mode) & 0o022) throw new GuestError(`${file} is writable by group or others (mode ${octal(Number(st.mode))}); remove it`);
}

/** Open a file for reading without following a link (a link is refused), and check it with {@link checkOwnFile}. */
export async function openOwnFile(file: string): Promise<FileHandle> {
  let f: FileHandle;
  try {
    f = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw new GuestError(`${file} is a symbolic link, which memhp does not follow in its caches; remove it`, { cause: e });
    throw e;
  }
  try {
    checkOwnFile(file, await f.stat());
    return f;
  } catch (e) {
    await f.close();
    throw e;
  }
}

/** The contents of a file of the caches ({@link openOwnFile}); ENOENT passes through as it is. */
export async function readOwnFile(file: string): Promise<Buffer> {
  const f = await openOwnFile(file);
  try {
    return await f.readFile();
  } finally {
    await f.close();
  }
}

/**
 * Write a file of the caches: a new temporary file beside it (O_CREAT|O_EXCL|O_NOFOLLOW, so never
 * through a link), renamed over it (rename replaces a link, it does not follow one).
 */
export async function writeOwnFile(file: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const f = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    await f.writeFile(data);
  } catch (e) {
    await f.close();
    await rm(tmp, { force: true });
    throw e;
  }
  await f.close();
  try {
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** sha256 of bytes, hex. */
export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Digests of open files by what identifies their contents: device, inode, size, mtime and ctime (in
 * ns). Any write changes mtime and ctime, and no user can set ctime, so a hit is the same bytes.
 */
const digests = new Map<string, string>();

/** sha256 of an open file's contents (read from offset 0), remembered by {@link digests}. */
export async function fileDigest(f: FileHandle): Promise<string> {
  const st = await f.stat({ bigint: true });
  const id = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  const known = digests.get(id);
  if (known) return known;
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  for (let pos = 0; ; ) {
    const { bytesRead } = await f.read(buf, 0, buf.length, pos);
    if (bytesRead === 0) break;
    h.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  const d = h.digest('hex');
  digests.set(id, d);
  return d;
}

/** A file that does not match the sha256 recorded for it. */
export class DigestMismatch extends GuestError {}

/**
 * Open a file of the caches ({@link openOwnFile}) and check its contents against `digest`; the open
 * handle is returned, so the caller uses the inode that was checked (QEMU gets it as /dev/fd/N), not
 * whatever the path names later.
 */
export async function openVerified(file: string, digest: string | undefined): Promise<FileHandle> {
  const f = await openOwnFile(file);
  try {
    const d = await fileDigest(f);
    if (!digest || d !== digest) throw new DigestMismatch(`${file} does not match the sha256 recorded when it was made (${digest ?? 'none recorded'}, found ${d})`);
    return f;
  } catch (e) {
    await f.close();
    throw e;
  }
}

/** True when the file is usable ({@link openOwnFile}) and matches `digest`; false when it is missing, changed, or not safe. */
export async function fileMatches(file: string, digest: string | undefined): Promise<boolean> {
  try {
    await (await openVerified(file, digest)).close();
    return true;
  } catch {
    return false;
  }
}

/** The contents of a file of the caches, checked against `digest` as read: these bytes are the ones that were checked. */
export async function readVerified(file: string, digest: string | undefined): Promise<Buffer> {
  const data = await readOwnFile(file);
  const d = sha256(data);
  if (!digest || d !== digest) throw new DigestMismatch(`${file} does not match the sha256 recorded when it was made (${digest ?? 'none recorded'}, found ${d})`);
  return data;
}
