/**
 * `memhp-io`, the guest agent's system-call helper (qemu/memhp-io.c): built once per source and
 * compiler as a static x86_64 binary with the host's C compiler (the same toolchain node-gyp needs),
 * cached beside the kernels with its sha256 (`helper/<key>/memhp-io.sha256`), and shipped in every initramfs as `/bin/memhp-io`. It gives the host what
 * the kernel returned, exactly: the bytes of a file, the errno number of a failed write, a tree's
 * types, modes and link targets, and every uevent with its SEQNUM.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { ensureDebianPackages } from '../host/packages.js';
import { GuestError } from './errors.js';
import { cacheDir } from './kernels.js';
import { QEMU_DIR } from './probes.js';
import { CACHE_ROLE, DigestMismatch, fileMatches, readOwnFile, readVerified, sha256, trustedDir, trustedSubdir, writeOwnFile } from './trust.js';

const run = promisify(execFile);

/** The helper's source in the package. */
export const HELPER_SOURCE = path.join(QEMU_DIR, 'memhp-io.c');

/** Debian packages the helper's build needs: a C compiler and glibc's static library. */
const BUILD_PACKAGES = ['gcc', 'libc6-dev'] as const;

/** Builds by cache directory: the helper's file and the sha256 recorded when it was built. */
const builds = new Map<string, Promise<{ file: string; digest: string }>>();

/**
 * The built helper's bytes, checked against the sha256 recorded when it was built: from the cache when
 * this source was built by this compiler before, else compiled now (`cc -static -Os`). A cached binary
 * that no longer matches (or has no digest: built by an older memhp) is built again, never shipped.
 * The directory is checked as the rest of the cache (lib/guest/trust.ts `trustedDir`).
 */
export async function guestHelper(): Promise<Buffer> {
  const cache = cacheDir();
  for (let attempt = 0; ; attempt++) {
    let b = builds.get(cache);
    if (!b) {
      b = build(cache);
      builds.set(cache, b);
      b.catch(() => builds.delete(cache));
    }
    const { file, digest } = await b;
    try {
      return await readVerified(file, digest);
    } catch (e) {
      const gone = e instanceof DigestMismatch || (e as NodeJS.ErrnoException).code === 'ENOENT';
      if (!gone || attempt > 0) throw e;
      if (builds.get(cache) === b) builds.delete(cache); // changed since it was built: build again
    }
  }
}

/** `cc -static -Os` into a new file beside `out`; returns its name. */
async function compile(cc: string, out: string): Promise<string> {
  const tmp = `${out}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const args = ['-static', '-Os', '-s', '-Wall', '-o', tmp, HELPER_SOURCE];
  try {
    await run(cc, args);
  } catch (e) {
    await rm(tmp, { force: true });
    const stderr = (e as { stderr?: string }).stderr?.trim() ?? '';
    // The usual cause on a fresh machine: no static libc (Debian's libc6-dev).
    if (!/cannot find -lc|crt1\.o|No such file/.test(stderr)) {
      throw new GuestError(`cannot build the guest helper ${HELPER_SOURCE} with ${cc}: ${stderr || (e as Error).message}`, { cause: e });
    }
    await ensureDebianPackages(BUILD_PACKAGES);
    await run(cc, args).catch(async (e2: unknown) => {
      await rm(tmp, { force: true });
      throw e2;
    });
  }
  return tmp;
}

async function build(cache: string): Promise<{ file: string; digest: string }> {
  const cc = process.env.CC || 'cc';
  const source = await readFile(HELPER_SOURCE);
  let version: string;
  try {
    version = (await run(cc, ['--version'])).stdout;
  } catch {
    await ensureDebianPackages(BUILD_PACKAGES);
    version = (await run(cc, ['--version'])).stdout;
  }
  const key = createHash('sha256').update(source).update(version).digest('hex').slice(0, 16);
  await trustedDir(cache, CACHE_ROLE);
  await trustedSubdir(path.join(cache, 'helper'), CACHE_ROLE);
  const dir = path.join(cache, 'helper', key);
  await trustedSubdir(dir, CACHE_ROLE);
  const out = path.join(dir, 'memhp-io');
  const digestFile = path.join(dir, 'memhp-io.sha256');
  const recorded = await readOwnFile(digestFile).then((b) => b.toString('latin1').trim(), () => undefined);
  if (recorded && (await fileMatches(out, recorded))) return { file: out, digest: recorded };
  const tmp = await compile(cc, out);
  const digest = sha256(await readFile(tmp)); // our own new file in our own directory
  await rename(tmp, out); // concurrent builders each rename a complete file (the build is deterministic)
  await writeOwnFile(digestFile, digest + '\n', 0o644);
  return { file: out, digest };
}
