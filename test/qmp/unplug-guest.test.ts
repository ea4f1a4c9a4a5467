/**
 * Unplug against a booted guest (the guest harness in lib/guest/): the guest accepts, and the guest
 * rejects because a block cannot be offlined (memory notifier error injection, MEM_GOING_OFFLINE = -EBUSY).
 */
import assert from 'node:assert/strict';
import type { QmpEvent } from '../../lib/qmp/client.js';
import type { UnplugRejectedError } from '../../lib/qmp/errors.js';
import type { MemoryHotplug } from '../../lib/qmp/hotplug.js';
import { Guest } from '../../lib/guest/guest.js';

/** The slice of the Guest class these tests use. */
interface GuestLike {
  readonly hotplug: MemoryHotplug;
  readonly qmp: MemoryHotplug['qmp'];
  readonly sysfs: { write(path: string, value: string): Promise<void> };
  loadModule(name: string): Promise<void>;
  close(): Promise<void>;
}

const INJECT = '/sys/kernel/debug/notifier-error-inject/memory/actions/MEM_GOING_OFFLINE/error';

describe('unplugDimm with a booted guest', function () {
  this.timeout(0); // no wall-clock limit: waits on guests are bounded by their progress (lib/guest/progress.ts)
  let g: GuestLike;

  before(async function () {
    g = await Guest.boot({ nodes: 2, memory: '512M', slots: 4, maxMemory: '8G', cmdline: ['memhp_default_state=online_movable'] });
  });
  after(async () => g?.close());

  const collect = (): { events: QmpEvent[]; stop(): void } => {
    const events: QmpEvent[] = [];
    const s = g.qmp.events(['ACPI_DEVICE_OST', 'DEVICE_DELETED', 'DEVICE_UNPLUG_GUEST_ERROR']);
    void (async () => { for await (const e of s) events.push(e); })().catch(() => undefined);
    return { events, stop: () => s.close() };
  };
  const objects = async (): Promise<string[]> =>
    (await g.qmp.execute<{ name: string }[]>('qom-list', { path: '/objects' })).map((o) => o.name);

  it('the guest accepts: _OST 0x84, DEVICE_DELETED, backend removed', async () => {
    await g.hotplug.plugDimm({ id: 'ok1', size: '256M', node: 1, waitOnline: true });
    const c = collect();
    await g.hotplug.unplugDimm('ok1');
    c.stop();
    const seen = c.events.map((e) => (e.event === 'ACPI_DEVICE_OST' ? `OST ${(e.data.info as { status: number }).status}` : e.event));
    assert.deepEqual(seen.slice(0, 2), ['OST 132', 'DEVICE_DELETED']);
    assert.ok(!(await g.hotplug.listMemoryDevices()).some((d) => d.id === 'ok1'));
    assert.ok(!(await objects()).includes('mem-ok1'));
  });

  it('the guest rejects when a block cannot be offlined: UnplugRejectedError 0x82 DEVICE_BUSY, DIMM stays', async () => {
    await g.hotplug.plugDimm({ id: 'busy1', size: '256M', node: 1, waitOnline: true });
    await g.loadModule('notifier-error-inject');
    await g.loadModule('memory-notifier-error-inject');
    await g.sysfs.write(INJECT, '-16');
    const err = (await g.hotplug.unplugDimm('busy1', { timeoutMs: 20_000 }).catch((e: unknown) => e)) as UnplugRejectedError;
    // By name: the dynamically imported guest module graph is a second instance under tsx, so instanceof fails.
    assert.equal(err.name, 'UnplugRejectedError', String(err));
    assert.equal(err.status, 0x82);
    assert.equal(err.code, 'EBUSY');
    assert.match(err.message, /0x82 DEVICE_BUSY/);
    assert.ok((await g.hotplug.listMemoryDevices()).some((d) => d.id === 'busy1'));
    assert.ok((await objects()).includes('mem-busy1'));
    // With the injection cleared, a retry goes through.
    await g.sysfs.write(INJECT, '0');
    await g.hotplug.unplugDimm('busy1');
  });
});
