/**
 * Choosing QEMU's accelerator: KVM only when it demonstrably runs guest code, else TCG.
 *
 * `/dev/kvm` existing proves little: on some hosts it belongs to a PVM (nested, paravirtual) provider
 * that cannot run a stock kernel at useful speed. So KVM must (1) open, (2) sit on a CPU with VMX or
 * SVM, and (3) run a 64 KiB firmware that writes to isa-debug-exit, within a short deadline.
 */
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** The accelerator a guest runs on. 'tcg' is multi-threaded TCG; 'tcg-single' the one-thread fallback. */
export type Accel = 'kvm' | 'tcg' | 'tcg-single';

/** The verdict of {@link detectAccel}. */
export interface AccelChoice {
  accel: Accel;
  /** Why: what was checked and what failed. */
  reason: string;
}

/** QEMU arguments for an accelerator. */
export function accelArgs(a: Accel): string[] {
  if (a === 'kvm') return ['-accel', 'kvm', '-cpu', 'host'];
  return ['-accel', a === 'tcg' ? 'tcg,thread=multi' : 'tcg,thread=single'];
}

/** A firmware image whose reset vector does `mov al,0x31; out 0xf4,al; hlt`: QEMU exits with (0x31<<1)|1. */
function probeFirmware(): Buffer {
  const rom = Buffer.alloc(64 * 1024, 0xf4); // hlt everywhere
  Buffer.from([0xb0, 0x31, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd]).copy(rom, 0xfff0);
  return rom;
}

/** Run the probe firmware under an accelerator; true when it ran to the debug-exit port in time. */
export async function runsFirmware(accel: Accel, timeoutMs = 5000, qemu = 'qemu-system-x86_64'): Promise<boolean> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'memhp-accel-'));
  try {
    const bios = path.join(dir, 'probe.rom');
    await writeFile(bios, probeFirmware());
    const args = [...accelArgs(accel), '-bios', bios, '-display', 'none', '-nodefaults', '-no-reboot', '-m', '16M',
      '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04'];
    return await new Promise<boolean>((resolve) => {
      const child = execFile(qemu, args, { timeout: timeoutMs, killSignal: 'SIGKILL' }, () => resolve(child.exitCode === 99));
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

let cached: Promise<AccelChoice> | undefined;

/** Pick the accelerator once per process: KVM when it works, otherwise multi-threaded TCG. */
export function detectAccel(qemu = 'qemu-system-x86_64'): Promise<AccelChoice> {
  cached ??= (async (): Promise<AccelChoice> => {
    try {
      await access('/dev/kvm', constants.R_OK | constants.W_OK);
    } catch {
      return { accel: 'tcg', reason: '/dev/kvm is missing or not accessible' };
    }
    const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
    const flags = /^flags\s*:(.*)$/m.exec(cpuinfo)?.[1]?.split(/\s+/) ?? [];
    if (!flags.includes('vmx') && !flags.includes('svm')) {
      const pvm = await access('/sys/module/kvm_pvm').then(() => true, () => false);
      return { accel: 'tcg', reason: `/dev/kvm exists but the CPU has neither vmx nor svm${pvm ? ' (provider: kvm_pvm)' : ''}` };
    }
    if (!(await runsFirmware('kvm', 5000, qemu))) return { accel: 'tcg', reason: 'KVM did not run a probe firmware within 5 s' };
    return { accel: 'kvm', reason: 'KVM ran the probe firmware' };
  })();
  return cached;
}
