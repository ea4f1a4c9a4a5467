/**
 * Guest boot versus snapshot restore (lib/guest/snapshot.ts), on the 'latest' kernel under the
 * accelerator `Guest.boot` picks (TCG here), with a private snapshot directory:
 *
 * - `guest_boot_ms`: median of 3 plain boots, QEMU start to the agent's READY;
 * - `guest_snapshot_save_ms`, `guest_snapshot_image_mib`: one boot saved (guest paused, zstd -1 stream,
 *   hashing and storing the entry);
 * - `guest_snapshot_restore_ms`: median of 5 restores, QEMU start to a verified, usable guest;
 * - `guest_restore_speedup`: boot / restore.
 *
 * Needs QEMU, zstd and the kernel; when the first boot fails with a harness error, or no image can be
 * saved, it reports nothing rather than fail the other figures. About 25 s.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GuestError } from '../lib/guest/errors.js';
import { Guest, type GuestOptions } from '../lib/guest/guest.js';
import type { Figure } from './figure.js';

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The snapshot figures. */
export async function figures(): Promise<Record<string, Figure>> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'memhp-bench-snapshots-'));
  const machine: GuestOptions = { kernel: 'latest', nodes: 2, cmdline: ['memhp_default_state=online_movable'], prepare: { progress: false } };
  const boot = async (o: GuestOptions): Promise<Guest['boot']> => {
    const g = await Guest.boot(o);
    await g.close();
    return g.boot;
  };
  const boots: number[] = [];
  try {
    for (let i = 0; i < 3; i++) boots.push((await boot(machine)).bootMs);
    const saved = await boot({ ...machine, snapshot: 'reuse', snapshotDir: dir });
    if (saved.path !== 'booted-and-saved') {
      process.stderr.write(`snapshot bench: no image saved (${saved.snapshotReason ?? saved.path}), no figures\n`);
      return {};
    }
    const restores: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await boot({ ...machine, snapshot: 'reuse', snapshotDir: dir });
      if (r.path !== 'restored') throw new Error(`snapshot bench: restore ${i} ${r.path}: ${r.snapshotReason ?? ''}`);
      restores.push(r.bootMs);
    }
    const b = median(boots);
    const r = median(restores);
    return {
      guest_boot_ms: { value: Math.round(b), unit: 'ms' },
      guest_snapshot_save_ms: { value: Math.round(saved.saveMs!), unit: 'ms' },
      guest_snapshot_image_mib: { value: Number(((saved.snapshotBytes ?? 0) / 2 ** 20).toFixed(1)), unit: 'MiB' },
      guest_snapshot_restore_ms: { value: Math.round(r), unit: 'ms', goal: '< 1000' },
      guest_restore_speedup: { value: Number((b / r).toFixed(1)), unit: 'ratio', goal: '>= 4' },
    };
  } catch (e) {
    // No QEMU, no kernel, no network for the first download: the other figures still stand.
    if (!(e instanceof GuestError) || boots.length > 0) throw e;
    process.stderr.write(`snapshot bench: cannot run guests here (${e.message.split('\n')[0]}), no figures\n`);
    return {};
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
