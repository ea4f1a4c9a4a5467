/**
 * lsmem of a simulated machine: the machine's sysfs is exported to a temporary directory and the real
 * util-linux `lsmem --sysroot` reads it, so the columns, merging and JSON are lsmem's own.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MemhpError } from '../errors.js';
import type { Sysfs } from '../kernel/sysfs.js';

/** Run `lsmem --sysroot <export of sysfs> ...args`; resolves to its standard output. */
export async function lsmem(sysfs: Sysfs, args: readonly string[] = []): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'memhp-lsmem-'));
  try {
    await sysfs.exportTo(dir);
    const r = spawnSync('lsmem', ['--sysroot', dir, ...args], { encoding: 'utf8' });
    if (r.error) throw new MemhpError(`lsmem could not run (${r.error.message}); it is part of Debian's util-linux package`, { cause: r.error });
    if (r.status !== 0) throw new MemhpError(`lsmem failed (exit ${r.status}): ${r.stderr.trim()}`);
    return r.stdout;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
