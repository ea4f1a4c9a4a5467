/**
 * `memhp-io`, the guest agent's system-call helper (qemu/memhp-io.c): built once per source and
 * compiler as a static x86_64 binary with the host's C compiler (the same toolchain node-gyp needs),
 * cached beside the kernels, and shipped in every initramfs as `/bin/memhp-io`. It gives the host what
 * the kernel returned, exactly: the bytes of a file, the errno number of a failed write, a tree's
 * types, modes and link targets, and every uevent with its SEQNUM.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { ensureDebianPackages } from '../host/packages.js';
import { GuestError } from './errors.js';
import { cacheDir } from './kernels.js';
import { QEMU_DIR } from './probes.js';

const run = promisify(execFile);

/** The helper's source in the package. */
export const HELPER_SOURCE = path.join(QEMU_DIR, 'memhp-io.c');

/** Debian packages the helper's build needs: a C compiler and glibc's static library. */
const BUILD_PACKAGES = ['gcc', 'libc6-dev'] as const;

let built: Promise<string> | undefined;

/**
 * The path of the built helper: from the cache when this source was built by this compiler before,
 * else compiled now (`cc -static -Os`). One build per process at most.
 */
export function guestHelper(): Promise<string> {
  built ??= build().catch((e: unknown) => {
    built = undefined;
    throw e;
  });
  return built;
}

async function build(): Promise<string> {
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
  const dir = path.join(cacheDir(), 'helper', key);
  const out = path.join(dir, 'memhp-io');
  if (existsSync(out)) return out;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${out}.tmp-${process.pid}`;
  try {
    await run(cc, ['-static', '-Os', '-s', '-Wall', '-o', tmp, HELPER_SOURCE]);
  } catch (e) {
    await rm(tmp, { force: true });
    const stderr = (e as { stderr?: string }).stderr?.trim() ?? '';
    // The usual cause on a fresh machine: no static libc (Debian's libc6-dev).
    if (/cannot find -lc|crt1\.o|No such file/.test(stderr)) {
      await ensureDebianPackages(BUILD_PACKAGES);
      await run(cc, ['-static', '-Os', '-s', '-Wall', '-o', tmp, HELPER_SOURCE]);
    } else {
      throw new GuestError(`cannot build the guest helper ${HELPER_SOURCE} with ${cc}: ${stderr || (e as Error).message}`, { cause: e });
    }
  }
  await rename(tmp, out); // concurrent builders each rename a complete file
  return out;
}
