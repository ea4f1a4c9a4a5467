/**
 * The boot memory map of QEMU's `pc` machine (i440FX + SeaBIOS), as a guest kernel sees it, and the
 * x86_64 facts derived from it: which RAM belongs to which node, the memory block size
 * (probe_memory_block_size), the device-memory window DIMMs are placed in, and the memblock reservations
 * boot leaves behind. Pure arithmetic on page frame numbers; nothing here touches a PhysMem.
 */
import { KernelError } from '../errors.js';
import { PAGE_SHIFT, PAGES_PER_SECTION } from '../native/constants.js';
import { formatSize } from '../size.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
/** pfn of 16 MiB: the end of ZONE_DMA. */
export const MAX_DMA_PFN = (16 * MiB) >> PAGE_SHIFT;
/** pfn of 4 GiB: the end of ZONE_DMA32. */
export const MAX_DMA32_PFN = (4 * GiB) / 4096;
/** Start of the AMD HyperTransport hole QEMU reserves below 1 TiB (e820 Reserved up to 1 TiB). */
export const AMD_HT_START = 0xfd00000000;
/** x86_64 MAX_PHYSMEM_BITS with 4-level paging: hot-added memory must end below 64 TiB. */
export const MAX_PHYSMEM_BYTES = 2 ** 46;

/** A half-open pfn range. */
export interface PfnRange {
  /** First pfn. */
  start: number;
  /** One past the last pfn. */
  end: number;
}

/** An e820 entry as /proc/iomem shows it (bytes, inclusive end as the kernel prints it is `end - 1`). */
export interface E820Entry {
  /** First byte. */
  start: number;
  /** One past the last byte. */
  end: number;
  /** 'System RAM' or 'Reserved'. */
  type: 'System RAM' | 'Reserved';
}

/** What the boot kernel holds in memblock and in the buddy allocator after boot. */
export interface BootAllocations {
  /** Physical address of the kernel image; default 16 MiB (CONFIG_PHYSICAL_START; a guest with KASLR differs). */
  kernelBase?: number;
  /** Bytes of kernel image, initramfs and early allocations around it; default 48 MiB. */
  kernelSize?: number;
  /** Bytes allocated top-down on each node beside the memmap (page tables, percpu areas); default 8 MiB. */
  memblockExtra?: number;
  /** Unmovable pages (slab, page tables) held in the buddy after boot; default 4096. */
  unmovablePages?: number;
  /** Reclaimable pages (dentries, inodes); default 1024. */
  reclaimablePages?: number;
  /** Movable pages (page cache, anonymous memory); default 8192. */
  movablePages?: number;
}

/** The defaults of {@link BootAllocations}: close to a small Debian guest. */
export const DEFAULT_BOOT_ALLOCATIONS: Required<BootAllocations> = {
  kernelBase: 16 * MiB,
  kernelSize: 48 * MiB,
  memblockExtra: 8 * MiB,
  unmovablePages: 4096,
  reclaimablePages: 1024,
  movablePages: 8192,
};

/** The boot memory map of a pc machine. */
export interface PcLayout {
  /** RAM below the PCI hole, bytes (`below_4g_mem_size`). */
  lowmem: number;
  /** RAM from 4 GiB, bytes (`above_4g_mem_size`). */
  highmem: number;
  /** The e820 map after the kernel's own trims, as /proc/iomem lists it at the top level. */
  e820: E820Entry[];
  /** memblock.memory per node: the present boot pfn ranges, ascending. */
  nodeRam: PfnRange[][];
  /** End of the highest boot RAM (`max_pfn`). */
  maxPfn: number;
  /** The memory block size in bytes (probe_memory_block_size). */
  blockSize: number;
  /** QEMU's device-memory window for DIMMs, bytes. */
  deviceMemory: { base: number; size: number };
}

/**
 * QEMU's pc memory map for `-m <ram>` split over nodes as `-numa node,mem=` does (consecutive RAM
 * offsets per node, the part beyond the low-RAM limit moved above 4 GiB), with `maxmem`/`slots`.
 * Low RAM: all of it below 3.5 GiB, else 3 GiB (gigabyte_align). SeaBIOS keeps 640 KiB–1 MiB and
 * the top 128 KiB of low RAM for itself (both observed on guests); the kernel reserves page 0.
 */
export function pcLayout(nodeMemory: readonly number[], maxMemory: number, slots: number): PcLayout {
  const ram = nodeMemory.reduce((a, b) => a + b, 0);
  if (ram < 128 * MiB) throw new KernelError('EINVAL', `boot memory must be at least 128 MiB, got ${ram} bytes`);
  if (maxMemory < ram) throw new KernelError('EINVAL', `maxMemory ${formatSize(maxMemory)} is below the boot memory ${formatSize(ram)} (QEMU refuses it: give a larger maxMemory)`);
  const lowmem = ram >= 0xe0000000 ? 0xc0000000 : ram;
  const highmem = ram - lowmem;
  const window = maxMemory - ram + slots * GiB;
  // QEMU >= 7.1 with an AMD-vendor vCPU (TCG's qemu64) moves RAM above 4 GiB to 1 TiB when the highest
  // guest address (device memory plus the 2 GiB 64-bit PCI hole) would reach the HyperTransport hole.
  const windowBase = (hi: number) => (highmem ? Math.ceil((hi + highmem) / GiB) * GiB : hi);
  const hi = windowBase(4 * GiB) + window + 2 * GiB > AMD_HT_START ? 2 ** 40 : 4 * GiB;
  const seabiosTop = lowmem - 128 * 1024;
  const e820: E820Entry[] = [
    { start: 0, end: 0x1000, type: 'Reserved' },
    { start: 0x1000, end: 0x9fc00, type: 'System RAM' },
    { start: 0x9fc00, end: 0xa0000, type: 'Reserved' },
    { start: 0xf0000, end: 0x100000, type: 'Reserved' },
    { start: 0x100000, end: seabiosTop, type: 'System RAM' },
    { start: seabiosTop, end: lowmem, type: 'Reserved' },
    { start: 0xfffc0000, end: 4 * GiB, type: 'Reserved' },
  ];
  if (highmem) e820.push({ start: hi, end: hi + highmem, type: 'System RAM' });
  e820.sort((a, b) => a.start - b.start);
  // Whole pages of System RAM, per node by RAM offset.
  const ramRanges = e820.filter((e) => e.type === 'System RAM').map((e) => ({ start: Math.ceil(e.start / 4096), end: Math.floor(e.end / 4096) }));
  const toPhys = (off: number) => (off < lowmem ? off : hi + off - lowmem);
  const nodeRam: PfnRange[][] = [];
  let off = 0;
  for (const m of nodeMemory) {
    const ranges: PfnRange[] = [];
    if (m > 0) {
      const pieces: PfnRange[] = off < lowmem && off + m > lowmem
        ? [{ start: off / 4096, end: lowmem / 4096 }, { start: toPhys(lowmem) / 4096, end: toPhys(off + m) / 4096 }]
        : [{ start: toPhys(off) / 4096, end: (toPhys(off + m - 1) + 1) / 4096 }];
      for (const p of pieces)
        for (const r of ramRanges) {
          const s = Math.max(p.start, r.start), e = Math.min(p.end, r.end);
          if (s < e) ranges.push({ start: s, end: e });
        }
    }
    nodeRam.push(ranges);
    off += m;
  }
  const maxPfn = Math.max(...ramRanges.map((r) => r.end));
  return {
    lowmem,
    highmem,
    e820,
    nodeRam,
    maxPfn,
    blockSize: probeMemoryBlockSize(maxPfn * 4096),
    deviceMemory: { base: windowBase(hi), size: window },
  };
}

/**
 * `probe_memory_block_size` on x86_64 in a VM (X86_FEATURE_HYPERVISOR, no CXL advice): 128 MiB below
 * 64 GiB of boot RAM end, else the largest power of two from 2 GiB down to 128 MiB dividing the end.
 */
export function probeMemoryBlockSize(bootMemEnd: number): number {
  if (bootMemEnd < 64 * GiB) return 128 * MiB;
  for (let bz = 2 * GiB; bz > 128 * MiB; bz /= 2) if (bootMemEnd % bz === 0) return bz;
  return 128 * MiB;
}

/** The zone a boot pfn belongs to by the zone limits (ZONE_DMA < 16 MiB ≤ ZONE_DMA32 < 4 GiB ≤ ZONE_NORMAL). */
export function bootZoneOf(pfn: number): 'DMA' | 'DMA32' | 'Normal' {
  return pfn < MAX_DMA_PFN ? 'DMA' : pfn < MAX_DMA32_PFN ? 'DMA32' : 'Normal';
}

/** Split pfn ranges at the zone limits. */
export function splitAtZones(ranges: readonly PfnRange[]): (PfnRange & { zone: 'DMA' | 'DMA32' | 'Normal' })[] {
  const out: (PfnRange & { zone: 'DMA' | 'DMA32' | 'Normal' })[] = [];
  for (const r of ranges) {
    let s = r.start;
    for (const limit of [MAX_DMA_PFN, MAX_DMA32_PFN, Infinity]) {
      const e = Math.min(r.end, limit);
      if (s < e) out.push({ start: s, end: e, zone: bootZoneOf(s) });
      s = Math.max(s, e);
    }
  }
  return out;
}

/** The QEMU node (proximity domain) of each vCPU on the pc machine: vCPU n on node n, the rest on node 0. */
export function cpuProximity(cpus: number, nodes: number): number[] {
  return Array.from({ length: cpus }, (_, c) => (nodes === 1 || c >= nodes ? 0 : c));
}

/**
 * The kernel's node id for each QEMU node, or undefined for a node the kernel never learns of.
 * QEMU's SRAT lists the vCPUs first, then each node's boot RAM, then the whole device-memory window
 * (when there is one) with the last node's proximity; Linux parses CPU affinity before memory affinity
 * and numbers the proximity domains as it first meets them (acpi_map_pxm_to_node). With a vCPU on
 * every node this is the identity; a node with neither a vCPU nor boot RAM that is not the last one
 * appears nowhere, and the last such node takes the next free id (guests: `nodes: 3, cpus: 1` has
 * possible nodes 0-1, QEMU node 2 being node 1).
 */
export function sratNodeIds(nodeMemory: readonly number[], cpus: number, hotplugWindow: boolean): (number | undefined)[] {
  const nids: (number | undefined)[] = nodeMemory.map(() => undefined);
  let next = 0;
  const meet = (pxm: number): void => {
    if (nids[pxm] === undefined) nids[pxm] = next++;
  };
  for (const pxm of cpuProximity(cpus, nodeMemory.length)) meet(pxm);
  nodeMemory.forEach((m, pxm) => m > 0 && meet(pxm));
  if (hotplugWindow) meet(nodeMemory.length - 1);
  return nids;
}

/**
 * memblock reservations left after boot, per node: the first MiB (x86 keeps it), the kernel image on
 * its node, and top-down from the end of each node's RAM its memmap (one `struct page`, 64 bytes, per
 * page of every present section) plus `memblockExtra`.
 */
export function memblockReserved(layout: PcLayout, a: Required<BootAllocations>): PfnRange[] {
  const out: PfnRange[] = [{ start: 0, end: 0x100 }, { start: Math.floor(a.kernelBase / 4096), end: Math.ceil((a.kernelBase + a.kernelSize) / 4096) }];
  for (const ranges of layout.nodeRam) {
    if (!ranges.length) continue;
    const sections = new Set<number>();
    for (const r of ranges) for (let s = Math.floor(r.start / PAGES_PER_SECTION); s * PAGES_PER_SECTION < r.end; s++) sections.add(s);
    let need = Math.ceil((sections.size * PAGES_PER_SECTION * 64 + a.memblockExtra) / 4096);
    for (let i = ranges.length - 1; i >= 0 && need > 0; i--) {
      const r = ranges[i]!;
      const take = Math.min(need, r.end - r.start);
      out.push({ start: r.end - take, end: r.end });
      need -= take;
    }
  }
  return out;
}

/** Subtract `holes` from `ranges` (both sorted or not); the result is sorted and disjoint. */
export function subtractRanges(ranges: readonly PfnRange[], holes: readonly PfnRange[]): PfnRange[] {
  let cur = ranges.map((r) => ({ ...r })).sort((a, b) => a.start - b.start);
  for (const h of holes) {
    const next: PfnRange[] = [];
    for (const r of cur) {
      if (h.end <= r.start || h.start >= r.end) next.push(r);
      else {
        if (r.start < h.start) next.push({ start: r.start, end: h.start });
        if (h.end < r.end) next.push({ start: h.end, end: r.end });
      }
    }
    cur = next;
  }
  return cur;
}
