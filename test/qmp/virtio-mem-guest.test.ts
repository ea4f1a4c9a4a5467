/**
 * virtio-mem against a booted guest (the guest harness in lib/guest/): the guest's virtio_mem driver
 * plugs and unplugs what QEMU requests, and MemoryHotplug waits for it to converge. Checked on the
 * guest side too: memory blocks in sysfs, MemTotal, /proc/iomem, and the notifier trace.
 *
 * The guest has 512 MiB of boot RAM on node 0 and a memoryless node 1; hot-added memory is onlined
 * Movable (memhp_default_state=online_movable), so the driver can also take it out again.
 */
import assert from 'node:assert/strict';
import { Guest } from '../../lib/guest/guest.js';
import type { TraceRecord } from '../../lib/kernel/trace.js';
import { HotplugError, HotplugTimeoutError, QmpError } from '../../lib/qmp/errors.js';
import type { VirtioMemDevice } from '../../lib/qmp/hotplug.js';

// 6.1 is left out: its virtio core and virtio-pci are modules the harness does not ship.
const SPECS = ['latest', '6.12'] as const;
const MEM = '/sys/devices/system/memory';
const MiB = 2 ** 20;
const BLOCK = 128 * MiB;
const PAGES = BLOCK / 4096;
const INJECT = '/sys/kernel/debug/notifier-error-inject/memory/actions/MEM_GOING_OFFLINE/error';

const notifies = (recs: TraceRecord[]) => recs.filter((r) => r.type === 'notify');
const key = (r: TraceRecord) => `${String(r.action)}@${r.chain === 'node' ? `nid${String(r.nid)}` : String(r.start_pfn)}`;
const uevents = (recs: TraceRecord[]) => recs.filter((r) => r.type === 'uevent').map((r) => `${String(r.action)} ${String(r.devpath)}`);
const timings: string[] = [];

after(() => {
  if (timings.length) process.stderr.write(`      virtio-mem convergence: ${timings.join('; ')}\n`);
});

for (const spec of SPECS) {
  describe(`virtio-mem with a booted guest (kernel ${spec})`, function () {
    this.timeout(0); // no wall-clock limit: waits on guests are bounded by their progress (lib/guest/progress.ts)
    let g: Guest;
    let mark = 0;

    before(async function () {
      this.timeout(0); // no wall-clock limit: waits on guests are bounded by their progress (lib/guest/progress.ts)
      g = await Guest.boot({ kernel: spec, nodes: 2, memory: '512M', slots: 2, maxMemory: '8G', cmdline: ['memhp_default_state=online_movable'] });
    });
    after(async () => g?.close());

    /** Trace records since the last call (the guest's trace is fetched first). */
    const newRecords = async (): Promise<TraceRecord[]> => {
      await g.syncTrace();
      const recs = g.trace.events().slice(mark);
      mark += recs.length;
      return recs;
    };
    const device = async (id: string): Promise<VirtioMemDevice> => {
      const d = (await g.hotplug.listMemoryDevices()).find((x) => x.id === id);
      assert.ok(d?.type === 'virtio-mem', `${id} is a virtio-mem device`);
      return d;
    };
    /** The memory block numbers present in the guest at or above `from`. */
    const blocksFrom = async (from: number): Promise<number[]> =>
      (await g.sysfs.list(MEM)).flatMap((e) => (/^memory(\d+)$/.exec(e) ? [Number(e.slice(6))] : [])).filter((b) => b >= from).sort((a, b) => a - b);
    /** `state zone node` of each block. */
    const blockStates = async (blocks: number[]): Promise<string[]> =>
      (await g.agent.sh(blocks.map((b) => `echo "$(cat ${MEM}/memory${b}/state) $(cat ${MEM}/memory${b}/valid_zones) $(ls -d ${MEM}/memory${b}/node* | sed 's/.*node//')"`).join('; ')))
        .trim().split('\n');
    const memTotalKb = async (node?: number): Promise<number> => {
      const text = await g.sysfs.read(node === undefined ? '/proc/meminfo' : `/sys/devices/system/node/node${node}/meminfo`);
      const m = /MemTotal:\s+(\d+) kB/.exec(text);
      assert.ok(m, text);
      return Number(m[1]);
    };
    /** The notifier sequence of onlining (or offlining) blocks at `pfns`, in that order, per the booted profile. */
    const online = (pfns: number[], firstOfNode = -1): string[] =>
      pfns.flatMap((pfn, i) => [
        ...(g.kernel.prepareFinishEvents ? [`MEM_PREPARE_ONLINE@${pfn}`] : []),
        ...(g.kernel.nodeActions && i === firstOfNode ? ['NODE_ADDING_FIRST_MEMORY@nid1'] : []),
        `MEM_GOING_ONLINE@${pfn}`,
        ...(g.kernel.nodeActions && i === firstOfNode ? ['NODE_ADDED_FIRST_MEMORY@nid1'] : []),
        `MEM_ONLINE@${pfn}`,
      ]);
    const offline = (pfns: number[], lastOfNode = -1): string[] =>
      pfns.flatMap((pfn, i) => [
        ...(g.kernel.nodeActions && i === lastOfNode ? ['NODE_REMOVING_LAST_MEMORY@nid1'] : []),
        `MEM_GOING_OFFLINE@${pfn}`,
        ...(g.kernel.nodeActions && i === lastOfNode ? ['NODE_REMOVED_LAST_MEMORY@nid1'] : []),
        `MEM_OFFLINE@${pfn}`,
        ...(g.kernel.prepareFinishEvents ? [`MEM_FINISH_OFFLINE@${pfn}`] : []),
      ]);
    /**
     * Wait until the guest's state has caught up with QEMU's: node 1's MemTotal is `kb` and (when
     * given) the memory blocks from `from` on are `blocks`. QEMU's plugged size is not the guest's
     * state: growing, the driver has the device plug sub-blocks before it adds and onlines the memory
     * block; shrinking, 6.12's driver takes sub-blocks out of an online block, tells the device, and
     * offlines and removes the emptied block afterwards. Bounded by the guest's clock, not the host's.
     */
    const settles = async (kb: number, blocks?: { from: number; are: number[] }): Promise<void> => {
      const want = JSON.stringify({ kb, blocks: blocks?.are });
      await g.waitFor(
        'node 1 MemTotal and memory blocks',
        async () => JSON.stringify({ kb: await memTotalKb(1), blocks: blocks && (await blocksFrom(blocks.from)) }),
        (v) => v === want,
      );
    };
    const node1Settles = (kb: number): Promise<void> => settles(kb);
    /** Resize, wait for the guest to settle (see {@link settles}), record QEMU's and the guest's times. */
    const resize = async (id: string, size: string | number, kb: number, blocks?: { from: number; are: number[] }): Promise<VirtioMemDevice> => {
      const t0 = performance.now();
      const d = await g.hotplug.resizeVirtioMem(id, size);
      const qmpMs = performance.now() - t0;
      assert.equal(d.size, d.requestedSize);
      await settles(kb, blocks);
      timings.push(`${g.kernel.name} ${id} → ${size}: ${qmpMs.toFixed(0)} ms (guest ${(performance.now() - t0).toFixed(0)} ms)`);
      return d;
    };

    // vm0: 1 GiB at 4 GiB on node 1, 2 MiB device blocks (sub-block mode in the guest).
    let first = 0; // memory block number of vm0's start
    let pfn0 = 0;

    it('without the virtio_mem driver the device is added but a resize cannot converge', async () => {
      const d = await g.hotplug.addVirtioMem({ id: 'vm0', size: '1G', node: 1, requestedSize: 0 });
      assert.deepEqual([d.size, d.requestedSize, d.maxSize, d.blockSize, d.node], [0, 0, 1024 * MiB, 2 * MiB, 1]);
      first = d.memaddr / BLOCK;
      pfn0 = d.memaddr / 4096;
      const err = await g.hotplug.resizeVirtioMem('vm0', '256M', { timeoutMs: 1500 }).catch((e: unknown) => e);
      assert.ok(err instanceof HotplugTimeoutError, String(err));
      assert.deepEqual(err.details, { size: 0, startSize: 0, requestedSize: 256 * MiB });
      assert.match(err.message, /plugged 0 B of 256 MiB requested; the guest did not move/);
      assert.equal((await device('vm0')).requestedSize, 256 * MiB, 'the request stays set');
      assert.deepEqual(await blocksFrom(first), []);
      assert.equal(await g.sysfs.read('/sys/devices/system/node/has_memory'), '0\n');
      await newRecords();
    });

    it('loading the driver plugs the pending 256 MiB: two blocks online Movable on node 1, MemTotal +256 MiB exactly', async () => {
      const total0 = await memTotalKb();
      const t0 = performance.now();
      await g.loadModule('virtio_mem');
      const d = await g.hotplug.waitVirtioMem('vm0', { timeoutMs: 30_000 });
      const qmpMs = performance.now() - t0;
      await node1Settles(256 * 1024);
      timings.push(`${g.kernel.name} vm0 insmod + pending 256M: ${qmpMs.toFixed(0)} ms (guest ${(performance.now() - t0).toFixed(0)} ms)`);
      assert.equal(d.size, 256 * MiB);
      assert.deepEqual(await blocksFrom(first), [first, first + 1]);
      assert.deepEqual(await blockStates([first, first + 1]), ['online Movable 1', 'online Movable 1']);
      assert.equal(await g.sysfs.read('/sys/devices/system/node/has_memory'), '0-1\n');
      assert.equal((await memTotalKb()) - total0, 256 * 1024);
      // docs/kernel-behaviour.md#virtio-mem: driver-managed memory, one merged resource, inside the device's whole region.
      const iomem = await g.sysfs.read('/proc/iomem');
      const hex = (n: number): string => n.toString(16);
      assert.match(iomem, new RegExp(`^${hex(d.memaddr)}-${hex(d.memaddr + d.maxSize - 1)} : virtio\\d+\n  ${hex(d.memaddr)}-${hex(d.memaddr + 256 * MiB - 1)} : System RAM \\(virtio_mem\\)$`, 'm'), iomem);

      const recs = await newRecords();
      assert.deepEqual(notifies(recs).map(key), online([pfn0, pfn0 + PAGES], 0));
      for (const r of notifies(recs)) {
        if (r.chain !== 'memory') continue;
        assert.equal(r.nr_pages, PAGES, 'whole memory blocks go online');
        if (g.kernel.memoryNotifyFields.includes('status_change_nid') && r.action === 'MEM_GOING_ONLINE') {
          assert.equal(r.status_change_nid, r.start_pfn === pfn0 ? 1 : -1);
        }
      }
      const u = uevents(recs);
      for (const b of [first, first + 1]) {
        assert.ok(u.includes(`add /devices/system/memory/memory${b}`), `add uevent of memory${b}: ${u.join(', ')}`);
        assert.ok(u.includes(`online /devices/system/memory/memory${b}`), `online uevent of memory${b}`);
      }
    });

    it('resizes down to 128 MiB: the top block is offlined and removed, MemTotal −128 MiB', async () => {
      await resize('vm0', '128M', 128 * 1024, { from: first, are: [first] });
      const recs = await newRecords();
      assert.deepEqual(notifies(recs).map(key), offline([pfn0 + PAGES]));
      const u = uevents(recs);
      assert.ok(u.includes(`offline /devices/system/memory/memory${first + 1}`), u.join(', '));
      assert.ok(u.includes(`remove /devices/system/memory/memory${first + 1}`), u.join(', '));
    });

    it('resizes to 130 MiB: a whole block goes online, MemTotal counts only the plugged 2 MiB of it', async () => {
      await resize('vm0', '130M', 130 * 1024, { from: first, are: [first, first + 1] });
      assert.deepEqual(await blockStates([first, first + 1]), ['online Movable 1', 'online Movable 1']);
      assert.deepEqual(notifies(await newRecords()).map(key), online([pfn0 + PAGES]));
    });

    it('resizes to 0 while offlining fails (MEM_GOING_OFFLINE = -EBUSY): converges anyway, the emptied blocks stay online', async () => {
      await g.loadModule('notifier-error-inject');
      await g.loadModule('memory-notifier-error-inject');
      await g.sysfs.write(INJECT, '-16');
      await newRecords();
      await resize('vm0', 0, 0, { from: first, are: [first, first + 1] });
      // The driver takes the plugged sub-blocks out of the online blocks (alloc_contig_range, no
      // notifier), from the top, and tries to offline and remove each block it emptied: EBUSY, so
      // the blocks stay online, holding nothing.
      assert.deepEqual(notifies(await newRecords()).map(key), [
        `MEM_GOING_OFFLINE@${pfn0 + PAGES}`, `MEM_CANCEL_OFFLINE@${pfn0 + PAGES}`,
        `MEM_GOING_OFFLINE@${pfn0}`, `MEM_CANCEL_OFFLINE@${pfn0}`,
      ]);
      assert.deepEqual(await blockStates([first, first + 1]), ['online Movable 1', 'online Movable 1']);
      assert.equal(await g.sysfs.read('/sys/devices/system/node/has_memory'), '0-1\n', 'node 1 still has (empty) online blocks');
    });

    it('with the injection cleared, repeating the request makes the driver remove the emptied blocks', async () => {
      await g.sysfs.write(INJECT, '0');
      // Already converged in QEMU: returns at once, but the config change wakes the driver, which
      // retries what it left pending.
      assert.equal((await g.hotplug.resizeVirtioMem('vm0', 0)).size, 0);
      await settles(0, { from: first, are: [] });
      assert.equal(await g.sysfs.read('/sys/devices/system/node/has_memory'), '0\n');
      const recs = await newRecords();
      const seq = notifies(recs).map(key);
      // Which block goes first is the driver's choice; each goes through the full offline sequence.
      const order = seq.findIndex((k) => k.endsWith(`@${pfn0}`)) < seq.findIndex((k) => k.endsWith(`@${pfn0 + PAGES}`)) ? [pfn0, pfn0 + PAGES] : [pfn0 + PAGES, pfn0];
      assert.deepEqual(seq, offline(order, 1));
      const u = uevents(recs);
      for (const b of [first, first + 1]) assert.ok(u.includes(`remove /devices/system/memory/memory${b}`), u.join(', '));
    });

    it('QEMU refuses device_del of a virtio-mem device, and unplugDimm says so before sending anything', async () => {
      const err = await g.qmp.execute('device_del', { id: 'vm0' }).catch((e: unknown) => e);
      assert.ok(err instanceof QmpError, String(err));
      assert.equal(err.errorClass, 'GenericError');
      assert.match(err.desc, /cannot be unplugged/);
      const check = await g.hotplug.unplugDimm('vm0').catch((e: unknown) => e);
      assert.ok(check instanceof HotplugError && check.check === 'NO_SUCH_DEVICE', String(check));
      assert.match(check.message, /virtio-mem device, not a pc-dimm/);
      assert.ok(await device('vm0'));
    });

    it('a 128 MiB device block size (big-block mode): add waits for 256 MiB, shrinks by whole blocks', async () => {
      const t0 = performance.now();
      const d = await g.hotplug.addVirtioMem({ id: 'vm1', size: '512M', node: 1, blockSize: '128M', requestedSize: '256M', waitConverged: true });
      const qmpMs = performance.now() - t0;
      assert.deepEqual([d.size, d.requestedSize, d.blockSize], [256 * MiB, 256 * MiB, 128 * MiB]);
      await node1Settles(256 * 1024);
      timings.push(`${g.kernel.name} vm1 add with 256M: ${qmpMs.toFixed(0)} ms (guest ${(performance.now() - t0).toFixed(0)} ms)`);
      const b0 = d.memaddr / BLOCK;
      const p0 = d.memaddr / 4096;
      assert.deepEqual(await blockStates([b0, b0 + 1]), ['online Movable 1', 'online Movable 1']);
      assert.deepEqual(notifies(await newRecords()).map(key), online([p0, p0 + PAGES], 0));

      await resize('vm1', '128M', 128 * 1024, { from: b0, are: [b0] });
      assert.deepEqual(notifies(await newRecords()).map(key), offline([p0 + PAGES]));
      await resize('vm1', 0, 0, { from: b0, are: [] });
      assert.equal(await g.sysfs.read('/sys/devices/system/node/has_memory'), '0\n');
      const recs = await newRecords();
      assert.deepEqual(notifies(recs).map(key), offline([p0], 0));
      // QEMU's MEMORY_DEVICE_SIZE_CHANGE (rate-limited, so not one per step) reached the trace.
      assert.ok(g.trace.events().some((r) => r.type === 'qmp-event' && r.event === 'MEMORY_DEVICE_SIZE_CHANGE' && (r.data as { id?: string }).id === 'vm1'));
    });
  });
}
