/**
 * The main-job demo (`npm start`): a simulation on the built-in default machine, no QEMU needed.
 *
 * The default machine is QEMU's pc with `-m 4G,slots=8,maxmem=8G`, one vCPU and two NUMA nodes (all boot
 * RAM and the vCPU on node 0, node 1 without a vCPU or memory, brought online by the DIMM as CXL memory is), running the newest
 * kernel profile. (With a vCPU on node 1 the second eject would fail too: the refused eject re-onlines
 * the blocks Normal, and a node-local kernel allocation at once takes a page of that first Normal memory.) A 1 GiB DIMM is hot-added on node 1,
 * its blocks onlined Movable through sysfs (as a udev rule would), a workload pins one page, the first
 * eject fails (the guest reports _OST 0x82 and keeps the DIMM), the page is unpinned and the second
 * eject succeeds. Every notifier event, uevent and QMP event is printed as it happens, with lsmem and
 * zone figures between the steps.
 */
import { KernelError } from '../errors.js';
import { Machine } from '../kernel/machine.js';
import { NOTIFY_OK } from '../kernel/notifier.js';
import type { TraceRecord } from '../kernel/trace.js';
import { ZONE_TYPES } from '../native/constants.js';
import { lsmem } from './lsmem.js';

/** Lines of text the demo prints. */
export type Printer = (line: string) => void;

const MEM = '/sys/devices/system/memory';

/** One trace record as a kernel engineer reads it. */
export function formatRecord(r: TraceRecord): string {
  if (r.type === 'notify') {
    const { type: _t, chain, action, value, ...payload } = r;
    const args = Object.entries(payload).map(([k, v]) => `${k}=${k.includes('pfn') || k === 'nr_pages' ? '0x' + Number(v).toString(16) : String(v)}`);
    return `notify  ${String(chain)}:${String(action)}(${String(value)}) ${args.join(' ')}`;
  }
  if (r.type === 'uevent') return `uevent  ${String(r.action)} ${String(r.devpath)}`;
  if (r.type === 'qmp-event') return `qmp     ${String(r.event)} ${JSON.stringify(r.data)}`;
  return `${r.type.padEnd(7)} ${JSON.stringify(r)}`;
}

function zoneLines(m: Machine): string[] {
  const rows = [['node', 'zone', 'start_pfn', 'spanned', 'present', 'managed', 'free']];
  for (let nid = 0; nid < m.nodes.possible; nid++)
    for (const zt of ZONE_TYPES) {
      const z = m.physmem.zoneInfo(nid, zt);
      if (z && (z.present || z.spanned)) rows.push([String(nid), zt, '0x' + z.start.toString(16), String(z.spanned), String(z.present), String(z.managed), String(z.free)]);
    }
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd());
}

/** Run the demo, printing through `print`. Resolves to the machine for inspection. */
export async function runDemo(print: Printer = console.log): Promise<Machine> {
  const m = await Machine.create({ kernel: 'latest', memory: '4G', nodes: 2, cpus: 1, maxMemory: '8G', slots: 8, autoOnline: 'offline' });
  let seen = 0;
  const flush = () => {
    for (const r of m.trace.events().slice(seen)) print(`  ${formatRecord(r)}`);
    seen = m.trace.length;
  };
  const show = async (title: string) => {
    flush();
    print('');
    print(`# ${title}`);
    for (const l of (await lsmem(m.sysfs, ['-o', 'RANGE,SIZE,STATE,BLOCK,NODE,ZONES'])).trimEnd().split('\n')) print(`  ${l}`);
    print('');
    for (const l of zoneLines(m)) print(`  ${l}`);
    print(`  ${(await m.sysfs.read('/proc/meminfo')).trim().replace(/\n/g, '   ')}`);
  };
  // A driver-style notifier, as a kernel module would register one.
  m.memoryNotifier.register((action, arg) => (void [action, arg], NOTIFY_OK), 0);

  print(`memhp demo: kernel ${m.kernel.name} (Debian ${m.kernel.release}) on QEMU pc -m 4G,slots=8,maxmem=8G -smp 1, 2 nodes (node 1 without a vCPU, offline until memory comes); block size ${m.blockSize / 2 ** 20} MiB`);
  await show('boot');

  print('');
  print('$ (qmp) object-add memory-backend-ram,id=mem-dimm1,size=1G; device_add pc-dimm,id=dimm1,memdev=mem-dimm1,node=1');
  await m.plugDimm({ id: 'dimm1', size: '1G', node: 1 });
  const dimm = m.dimms.get('dimm1')!;
  const blocks = m.sortedBlocks().filter((b) => b.startPfn * 4096 >= dimm.addr && b.startPfn * 4096 < dimm.addr + dimm.size);
  flush();
  print(`$ for b in ${blocks[0]!.name}..${blocks.at(-1)!.name}; do echo online_movable > ${MEM}/$b/state; done`);
  for (const b of blocks) await m.sysfs.write(`${MEM}/${b.name}/state`, 'online_movable');
  await show(`dimm1: 1 GiB at 0x${dimm.addr.toString(16)} on node 1, onlined Movable`);

  const anon = m.alloc({ count: 40000, kind: 'movable', nid: 1, thisNode: true });
  const thp = m.alloc({ count: 60, order: 9, kind: 'movable', nid: 1, thisNode: true });
  const pinned = anon[anon.length - 1]!;
  m.pin([pinned]);
  print('');
  print(`# workload: ${anon.length} anonymous pages and ${thp.length} THPs on node 1; pfn 0x${pinned.toString(16)} (memory${Math.floor(pinned / m.blockPages)}) pinned by a long-term GUP`);
  for (const l of zoneLines(m)) print(`  ${l}`);

  print('');
  print('$ (qmp) device_del dimm1   # the guest offlines the blocks in ascending order');
  try {
    await m.unplugDimm('dimm1');
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
    flush();
    print(`  -> refused: ${e.code} (${e.message})`);
  }
  await show('after the refused eject: the blocks the attempt offlined were re-onlined with the default policy');

  m.unpin([pinned]);
  print('');
  print(`# unpin pfn 0x${pinned.toString(16)}`);
  print('$ (qmp) device_del dimm1');
  await m.unplugDimm('dimm1');
  await show('dimm1 is gone: its pages migrated to node 0, node 1 is memoryless again');

  const bad = m.checkInvariants();
  print('');
  print(bad.length ? `invariant violations:\n${bad.join('\n')}` : `invariants: ok; lock validator: ${m.lockdep.reports.length} reports; native memory ${m.physmem.nativeBytes()} bytes`);
  return m;
}
