/**
 * The main-job demo: a small simulation on the built-in default machine, at the page-frame level,
 * printing zone and free-page figures as /proc/zoneinfo and /proc/buddyinfo would.
 *
 * The default machine is QEMU's `pc` with `-m 4G,maxmem=8G -numa node x2`: 3 GiB of low RAM (DMA below
 * 16 MiB, DMA32 up to the PCI hole) and 1 GiB from 4 GiB on node 0; node 1 starts memoryless. A 1 GiB
 * DIMM is hot-added on node 1 and onlined Movable, a workload runs, and the DIMM's blocks are offlined.
 */
import { KernelError } from '../errors.js';
import { PhysMem, PAGES_PER_SECTION as S, ZONE_TYPES, type ZoneType } from '../native/physmem.js';

const GiB = 262144; // pages
const MiB16 = 4096; // pages: the end of ZONE_DMA

/** Lines of text the demo prints. */
export type Printer = (line: string) => void;

function zoneTable(pm: PhysMem, nodes: number): string[] {
  const rows = [['node', 'zone', 'start_pfn', 'spanned', 'present', 'managed', 'free', 'buddyinfo (order 0..10)']];
  for (let nid = 0; nid < nodes; nid++)
    for (const zt of ZONE_TYPES) {
      const z = pm.zoneInfo(nid, zt);
      if (!z || (z.present === 0 && z.spanned === 0)) continue;
      rows.push([String(nid), zt, '0x' + z.start.toString(16), String(z.spanned), String(z.present), String(z.managed), String(z.free), pm.buddyinfo(nid, zt)!.join(' ')]);
    }
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd());
}

function onlineRange(pm: PhysMem, start: number, nr: number, nid: number, zone: ZoneType): void {
  pm.moveRangeToZone(start, nr, nid, zone, { isolate: true });
  pm.onlinePagesRange(start, nr);
  pm.adjustPresentPages(start, nr);
  pm.undoIsolateRange(start, nr, 'Movable');
}

/** Offline one 128 MiB block the way offline_pages does its page work; returns what happened. */
function offlineBlock(pm: PhysMem, start: number, targets: number[]): string {
  try {
    pm.isolateRange(start, S, 'Movable');
  } catch (e) {
    if (e instanceof KernelError) return `EBUSY (${e.message})`;
    throw e;
  }
  let moved = 0;
  while (pm.scanMovablePages(start, S) !== null) {
    const r = pm.migrateRange(start, S, targets);
    moved += r.from.length;
    if (r.pinned || r.enomem) {
      pm.undoIsolateRange(start, S, 'Movable');
      return `stuck: ${r.pinned} pinned and ${r.enomem} unmigratable blocks (the kernel retries until a signal: EINTR)`;
    }
  }
  pm.offlineIsolatedPages(start, S);
  pm.adjustPresentPages(start, -S);
  pm.removeRangeFromZone(start, S);
  return `offline (${moved} blocks migrated)`;
}

/** Run the demo, printing through `print`. Returns the machine for inspection. */
export function runDemo(print: Printer = console.log): PhysMem {
  const pm = new PhysMem();
  // Boot RAM: 0-3 GiB and 4-5 GiB on node 0 (pc machine, -m 4G).
  pm.addSections(0, 3 * GiB, 0);
  pm.addSections(4 * GiB, GiB, 0);
  pm.moveRangeToZone(1, MiB16 - 1, 0, 'DMA', { reserved: true, isolate: false });
  pm.moveRangeToZone(MiB16, 3 * GiB - MiB16, 0, 'DMA32', { reserved: true, isolate: false });
  pm.moveRangeToZone(4 * GiB, GiB, 0, 'Normal', { reserved: true, isolate: false });
  // memblock_free_all: everything but the first MiB and the kernel image (16..64 MiB) goes to the buddy.
  pm.onlinePagesRange(256, MiB16 - 256);
  pm.onlinePagesRange(16384, 3 * GiB - 16384);
  pm.onlinePagesRange(4 * GiB, GiB);
  pm.adjustPresentPages(1, MiB16 - 1);
  pm.adjustPresentPages(MiB16, 3 * GiB - MiB16);
  pm.adjustPresentPages(4 * GiB, GiB);
  // Boot-time kernel allocations (slab, page tables) scattered over the kernel zones.
  pm.alloc({ count: 3000, order: 0, kind: 'unmovable' });
  pm.alloc({ count: 200, order: 3, kind: 'reclaimable' });
  print('# boot: pc machine, 4 GiB on node 0, node 1 memoryless');
  zoneTable(pm, 2).forEach((l) => print(l));

  // Hot-add a 1 GiB DIMM on node 1 at the start of the device-memory window (5 GiB), online_movable.
  const dimm = 5 * GiB;
  pm.addSections(dimm, GiB, 1);
  for (let b = dimm; b < dimm + GiB; b += S) onlineRange(pm, b, S, 1, 'Movable');
  print('');
  print('# plug: 1 GiB DIMM at 0x140000000 on node 1, 8 blocks onlined Movable');
  zoneTable(pm, 2).forEach((l) => print(l));

  // A workload: page cache and anonymous memory prefer ZONE_MOVABLE; one page gets pinned.
  const anon = pm.alloc({ count: 40000, kind: 'movable', nid: 1 });
  const thp = pm.alloc({ count: 60, order: 9, kind: 'movable', nid: 1 });
  pm.pin([anon[12345]!]);
  print('');
  print(`# workload: ${anon.length} anonymous pages and ${thp.length} THPs on node 1, one page pinned`);
  zoneTable(pm, 2).forEach((l) => print(l));

  print('');
  print('# unplug attempt: offline the DIMM blocks in ascending order');
  for (let b = dimm; b < dimm + GiB; b += S) print(`memory${b / S}: ${offlineBlock(pm, b, [0])}`);
  pm.unpin([anon[12345]!]);
  print('# unpin, retry the blocks still online');
  for (let b = dimm; b < dimm + GiB; b += S) if (pm.sectionInfo(b).online) print(`memory${b / S}: ${offlineBlock(pm, b, [0])}`);
  pm.removeSections(dimm, GiB);
  print('# the DIMM is removed; node 1 is memoryless again');
  zoneTable(pm, 2).forEach((l) => print(l));
  const bad = pm.checkInvariants();
  print('');
  print(bad.length ? `invariant violations:\n${bad.join('\n')}` : `invariants: ok (native memory ${pm.nativeBytes()} bytes)`);
  return pm;
}
