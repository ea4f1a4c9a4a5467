/**
 * The guest's initramfs, built on the fly: busybox-static, the `/init` agent and its system-call
 * helper `memhp-io` (lib/guest/helper.ts), the rendered probe
 * definitions, the chain-head calibration when there is one, and the kernel's modules. Written as an
 * uncompressed newc cpio archive (no root needed for device nodes, and no decompression in the guest).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { GuestError } from './errors.js';
import { guestHelper } from './helper.js';
import type { PreparedKernel } from './kernels.js';
import { probesFor, QEMU_DIR } from './probes.js';
import { readVerified, sha256, writeOwnFile } from './trust.js';

/** busybox-static's binary (Debian package busybox-static). */
export const BUSYBOX = '/bin/busybox';

/** One file, directory or device node of a cpio archive. */
export interface CpioEntry {
  /** Path inside the archive, without a leading slash. */
  name: string;
  /** Full st_mode, file type bits included (0o100755, 0o40755, 0o20600…). */
  mode: number;
  data?: Buffer;
  /** Device major/minor for character and block nodes. */
  rdev?: [number, number];
}

/** Serialise entries in the kernel's "newc" cpio format (init/initramfs.c). */
export function cpioNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const pad4 = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  let ino = 1;
  for (const e of [...entries, { name: 'TRAILER!!!', mode: 0 } as CpioEntry]) {
    const data = e.data ?? Buffer.alloc(0);
    const name = Buffer.from(e.name + '\0');
    const isDir = (e.mode & 0o170000) === 0o040000;
    const hdr =
      '070701' +
      [ino++, e.mode, 0, 0, isDir ? 2 : 1, 0, data.length, 0, 0, e.rdev?.[0] ?? 0, e.rdev?.[1] ?? 0, name.length, 0].map(hex).join('');
    parts.push(Buffer.from(hdr, 'latin1'), name, pad4(110 + name.length), data, pad4(data.length));
  }
  return Buffer.concat(parts);
}

/** What goes into one guest's initramfs beyond the fixed files. */
export interface InitramfsOptions {
  kernel: PreparedKernel;
  /** `symbol offset-from-_text` lines calibrated on an earlier boot; omitted → the guest scans kallsyms. */
  chainOffsets?: string;
}

/**
 * Build the initramfs for a kernel and write it to `out` (a new file renamed into place, never written through a link);
 * returns its sha256. The helper and every module are the bytes checked against the sha256 recorded
 * when they were built or unpacked (lib/guest/trust.ts): one that changed since is refused.
 */
export async function buildInitramfs(out: string, opts: InitramfsOptions): Promise<string> {
  if (!existsSync(BUSYBOX)) throw new GuestError(`${BUSYBOX} is missing: install the Debian package busybox-static`);
  const dir = (name: string): CpioEntry => ({ name, mode: 0o040755 });
  const file = (name: string, data: Buffer, mode = 0o100644): CpioEntry => ({ name, mode, data });
  const entries: CpioEntry[] = [
    ...['bin', 'sbin', 'dev', 'etc', 'proc', 'sys', 'tmp', 'root', 'lib', 'lib/modules'].map(dir),
    { name: 'dev/console', mode: 0o020600, rdev: [5, 1] },
    file('bin/busybox', await readFile(BUSYBOX), 0o100755),
    file('bin/memhp-io', await guestHelper(), 0o100755),
    // /init's interpreter; the other applet links are made by /init itself.
    { name: 'bin/sh', mode: 0o120777, data: Buffer.from('busybox') },
    file('init', await readFile(QEMU_DIR + 'init.sh'), 0o100755),
    file('probes.txt', Buffer.from(await probesFor(opts.kernel.layout))),
  ];
  if (opts.chainOffsets) entries.push(file('chain-offsets', Buffer.from(opts.chainOffsets)));
  for (const [name, p] of Object.entries(opts.kernel.modules)) entries.push(file(`lib/modules/${name}.ko`, await readVerified(p, opts.kernel.digests.modules[name])));
  const archive = cpioNewc(entries);
  await writeOwnFile(out, archive); // never through a link
  return sha256(archive);
}
