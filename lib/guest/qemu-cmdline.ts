/**
 * QEMU's command line for a guest: the machine (`-m` with its DIMM slots and `maxmem`, `-smp`, the NUMA
 * nodes), the kernel and its command line, the initramfs, and the serial console, agent and QMP sockets.
 * A snapshot key is made of the same words with placeholders for the per-boot paths (lib/guest/restore.ts),
 * so anything added here changes every key.
 */
import { parseSize, type Size } from '../qmp/hotplug.js';

/** The machine a command line describes: the `Guest.boot` options with their defaults filled in. */
export interface MachineOptions {
  /** Boot RAM, all on node 0. */
  memory: Size;
  /** DIMM slots. */
  slots: number;
  /** `maxmem`. */
  maxMemory: Size;
  /** NUMA nodes: node 0 has the boot RAM, nodes 1.. are memoryless. */
  nodes: number;
  /** vCPUs; default max(nodes, 1). */
  cpus?: number;
  /** Extra kernel command line words. */
  cmdline?: string[];
}

/** The harness's own kernel command line words, before the machine's (a snapshot's listing leaves them out). */
export const HARNESS_CMDLINE: readonly string[] = ['console=ttyS0', 'loglevel=7', 'panic=-1'];

/** The kernel command line of a guest: the harness's words, then the machine's. */
export function kernelCommandLine(o: MachineOptions): string {
  return [...HARNESS_CMDLINE, ...(o.cmdline ?? [])].join(' ');
}

/** The per-boot paths of a QEMU command line; placeholders stand in for them in a snapshot key. */
export interface BootPaths {
  /** The bzImage: `/dev/fd/3`, the descriptor of the file that was checked, on a real command line. */
  kernel: string;
  initrd: string;
  console: string;
  ctl: string;
  qmp: string;
}

/** QEMU's command line for a machine (without the QEMU binary). */
export function qemuArgs(o: MachineOptions, accel: string[], cmdline: string, p: BootPaths): string[] {
  const mem = parseSize(o.memory);
  const cpus = o.cpus ?? Math.max(o.nodes, 1);
  const numa: string[] = [];
  if (o.nodes > 1) {
    numa.push('-object', `memory-backend-ram,id=ram0,size=${mem}`, '-numa', `node,nodeid=0,cpus=0,memdev=ram0`);
    for (let n = 1; n < o.nodes; n++) numa.push('-numa', `node,nodeid=${n}${n < cpus ? `,cpus=${n}` : ''}`);
  }
  return [
    ...accel,
    '-m', `${mem}B,slots=${o.slots},maxmem=${parseSize(o.maxMemory)}B`,
    '-smp', String(cpus),
    ...numa,
    '-kernel', p.kernel,
    '-initrd', p.initrd,
    '-append', cmdline,
    '-display', 'none', '-no-reboot', '-nodefaults',
    '-serial', `file:${p.console}`,
    '-serial', `unix:${p.ctl},server=on,wait=off`,
    '-qmp', `unix:${p.qmp},server=on,wait=off`,
  ];
}
