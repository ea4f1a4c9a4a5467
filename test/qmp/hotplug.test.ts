import assert from 'node:assert/strict';
import type { QmpClient } from '../../lib/qmp/client.js';
import { HotplugError, HotplugTimeoutError, QmpError } from '../../lib/qmp/errors.js';
import { MemoryHotplug, formatSize, parseSize, type DimmDevice } from '../../lib/qmp/hotplug.js';
import { QemuFixture } from './qemu-fixture.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

describe('parseSize / formatSize', () => {
  it('reads QEMU-style sizes and rejects nonsense', () => {
    assert.equal(parseSize('128M'), 128 * MiB);
    assert.equal(parseSize('1GiB'), GiB);
    assert.equal(parseSize('0x8000000'), 128 * MiB);
    assert.equal(parseSize(4096n), 4096);
    assert.equal(parseSize('1.5G'), 1.5 * GiB);
    for (const bad of ['1X', '', '-1', 'G', '0.3K']) assert.throws(() => parseSize(bad), HotplugError, bad);
    assert.equal(formatSize(256 * MiB), '256 MiB');
    assert.equal(formatSize(100), '100 B');
  });
});

describe('MemoryHotplug on a paused, guest-less QEMU', function () {
  this.timeout(60_000);
  let qemu: QemuFixture;
  let qmp: QmpClient;
  let hp: MemoryHotplug;

  const objects = async (): Promise<string[]> =>
    (await qmp.execute<{ name: string }[]>('qom-list', { path: '/objects' })).map((o) => o.name).filter((n) => n !== 'type');

  before(async () => {
    qemu = await QemuFixture.start({ memory: '1G', slots: 4, maxmem: '8G', nodes: 2 });
    qmp = await qemu.connect();
    hp = new MemoryHotplug(qmp, { timeoutMs: 1500 });
  });
  after(async () => {
    await qmp?.close();
    await qemu?.stop();
  });

  it('reads the machine limits QEMU 7.2 provides', async () => {
    assert.deepEqual(await hp.listMemoryDevices(), []);
    assert.deepEqual(await hp.machineLimits(), { slots: 4, maxMemory: 8 * GiB, baseMemory: GiB, usedMemory: 0, nodes: 2 });
  });

  it('plugs a DIMM and lists it', async () => {
    const d = await hp.plugDimm({ size: '256M', node: 1 });
    assert.deepEqual(d, {
      type: 'dimm', id: 'dimm0', addr: 4 * GiB, size: 256 * MiB, slot: 0, node: 1,
      memdev: '/objects/mem-dimm0', hotplugged: true, hotpluggable: true,
    } satisfies DimmDevice);
    assert.deepEqual(await hp.listMemoryDevices(), [d]);
    assert.deepEqual(await qmp.execute('query-memory-size-summary'), { 'base-memory': GiB, 'plugged-memory': 256 * MiB });
    const d1 = await hp.plugDimm({ id: 'big', size: '1G', addr: 6 * GiB });
    assert.equal(d1.addr, 6 * GiB);
    assert.equal(d1.node, 0);
  });

  it('checks before sending anything', async () => {
    const before = await objects();
    const refused = async (o: Parameters<MemoryHotplug['plugDimm']>[0], check: string, re: RegExp): Promise<void> => {
      await assert.rejects(hp.plugDimm(o), (e: unknown) => e instanceof HotplugError && e.check === check && re.test(e.message));
    };
    await refused({ size: '100M' }, 'UNALIGNED', /not a multiple of the guest memory block size 128 MiB/);
    await refused({ size: '128M', addr: 0x100100000 }, 'UNALIGNED', /addr/);
    await refused({ size: '128M', node: 2 }, 'NO_SUCH_NODE', /node 2 does not exist \(the machine has 2 nodes\)/);
    await refused({ id: 'dimm0', size: '128M' }, 'ID_IN_USE', /dimm0/);
    await refused({ size: '6G' }, 'NO_HEADROOM', /free 5888 MiB/);
    // A custom block size (e.g. a guest with 2 GiB blocks) moves the alignment check.
    await assert.rejects(new MemoryHotplug(qmp, { blockSize: '2G' }).plugDimm({ size: '1G' }), /block size 2 GiB/);
    assert.deepEqual(await objects(), before);
    assert.equal((await hp.listMemoryDevices()).length, 2);
  });

  it('rolls back the backend when QEMU refuses device_add', async () => {
    const before = await objects();
    const plan = await hp.planPlugDimm({ id: 'clash', size: '128M', addr: 4 * GiB }); // dimm0 lives there
    assert.deepEqual(plan.steps.map((s) => s.execute), ['object-add', 'device_add']);
    const err = await hp.plugDimm({ id: 'clash', size: '128M', addr: 4 * GiB }).catch((e: unknown) => e);
    assert.ok(err instanceof QmpError, String(err));
    assert.equal(err.command.execute, 'device_add');
    assert.match(err.desc, /address range conflicts with memory device id='dimm0'/);
    assert.deepEqual(await objects(), before);
    assert.ok(!(await hp.listMemoryDevices()).some((d) => d.id === 'clash'));
  });

  it('refuses when the slots are used up', async () => {
    await hp.plugDimm({ size: '128M' });
    await hp.plugDimm({ size: '128M' });
    await assert.rejects(hp.plugDimm({ size: '128M' }), (e: unknown) => e instanceof HotplugError && e.check === 'NO_FREE_SLOT' && /4 of 4/.test(e.message));
  });

  it('an unplug with no guest to answer times out, and the DIMM stays', async () => {
    const t0 = Date.now();
    const err = await hp.unplugDimm('dimm0', { timeoutMs: 500 }).catch((e: unknown) => e);
    assert.ok(err instanceof HotplugTimeoutError, String(err));
    assert.match(err.message, /never answered the eject request/);
    assert.ok(Date.now() - t0 < 3000);
    assert.ok((await hp.listMemoryDevices()).some((d) => d.id === 'dimm0'));
    assert.ok((await objects()).includes('mem-dimm0'));
    await assert.rejects(hp.unplugDimm('nope'), (e: unknown) => e instanceof HotplugError && e.check === 'NO_SUCH_DEVICE');
  });

  it('waitOnline with no guest times out and leaves the DIMM plugged', async () => {
    const q = await QemuFixture.start({ slots: 2 });
    const c = await q.connect();
    try {
      const h = new MemoryHotplug(c);
      const err = await h.plugDimm({ id: 'w', size: '128M', waitOnline: true, timeoutMs: 300 }).catch((e: unknown) => e);
      assert.ok(err instanceof HotplugTimeoutError, String(err));
      assert.match(err.message, /no _OST/);
      assert.deepEqual((await h.listMemoryDevices()).map((d) => d.id), ['w']);
      let seen: DimmDevice | undefined;
      await h.plugDimm({ id: 'v', size: '128M', waitOnline: async (d) => void (seen = d) });
      assert.equal(seen?.id, 'v');
    } finally {
      await c.close();
      await q.stop();
    }
  });

  describe('virtio-mem', () => {
    let q: QemuFixture;
    let c: QmpClient;
    let h: MemoryHotplug;
    before(async () => {
      q = await QemuFixture.start({ maxmem: '4G' });
      c = await q.connect();
      h = new MemoryHotplug(c);
    });
    after(async () => {
      await c?.close();
      await q?.stop();
    });

    it('adds a device and counts its whole size against maxmem', async () => {
      const d = await h.addVirtioMem({ size: '2G', node: 1, requestedSize: 0 });
      assert.equal(d.id, 'vmem0');
      assert.equal(d.type, 'virtio-mem');
      assert.deepEqual([d.maxSize, d.size, d.requestedSize, d.node, d.blockSize], [2 * GiB, 0, 0, 1, 2 * MiB]);
      assert.equal((await h.machineLimits()).usedMemory, 2 * GiB);
      await assert.rejects(h.plugDimm({ size: '2G' }), (e: unknown) => e instanceof HotplugError && e.check === 'NO_HEADROOM');
    });

    it('checks a resize and sends requested-size through qom-set', async () => {
      await assert.rejects(h.resizeVirtioMem('vmem0', '3M'), (e: unknown) => e instanceof HotplugError && e.check === 'UNALIGNED');
      await assert.rejects(h.resizeVirtioMem('vmem0', '4G'), (e: unknown) => e instanceof HotplugError && e.check === 'NO_HEADROOM');
      await assert.rejects(h.resizeVirtioMem('dimm0', '128M'), (e: unknown) => e instanceof HotplugError && e.check === 'NO_SUCH_DEVICE');
      // No guest driver: the plugged size never moves, and the wait says so.
      const err = await h.resizeVirtioMem('vmem0', '256M', { timeoutMs: 400, pollMs: 50 }).catch((e: unknown) => e);
      assert.ok(err instanceof HotplugTimeoutError, String(err));
      assert.deepEqual(err.details, { size: 0, startSize: 0, requestedSize: 256 * MiB });
      const [d] = await h.listMemoryDevices();
      assert.equal(d?.type === 'virtio-mem' && d.requestedSize, 256 * MiB);
      // Already converged: returns at once.
      assert.equal((await h.resizeVirtioMem('vmem0', 0)).size, 0);
    });

    it('rolls back the backend when QEMU refuses the device', async () => {
      // 3 MiB divides the size (our check passes) but is not a power of two (QEMU's check fails).
      const err = await h.addVirtioMem({ id: 'bad', size: '6M', blockSize: '3M', node: 1, memdev: 'mb' }).catch((e: unknown) => e);
      assert.ok(err instanceof QmpError, String(err));
      assert.match(err.desc, /power of two/);
      const objs = (await c.execute<{ name: string }[]>('qom-list', { path: '/objects' })).map((o) => o.name);
      assert.ok(!objs.includes('mb'));
    });
  });
});
