/**
 * Real guests: boot each Debian kernel under QEMU, talk to the agent, plug and unplug a 1 GiB DIMM on
 * node 1, and check sysfs, the notifier sequence (docs/kernel-behaviour.md#notifier-event-sequences), uevents and QMP events. Also
 * checks that QEMU never outlives its owner.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { KernelError } from '../../lib/errors.js';
import { GuestError } from '../../lib/guest/errors.js';
import { Guest } from '../../lib/guest/guest.js';
import { LATEST } from '../../lib/kernel/profile.js';
import type { TraceRecord } from '../../lib/kernel/trace.js';
import { ourQemus } from '../qemus.js';

const SPECS = ['6.1', '6.12', 'latest'] as const;
const MEM = '/sys/devices/system/memory';


const alive = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return !/^\d+ \(.*\) Z/.test(stat); // a zombie is dead
  } catch {
    return false;
  }
};

async function waitGone(pid: number, ms = 5000): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !alive(pid);
}

const notifies = (recs: TraceRecord[]) => recs.filter((r) => r.type === 'notify');
const key = (r: TraceRecord) => `${String(r.action)}@${r.chain === 'node' ? `nid${String(r.nid)}` : String(r.start_pfn)}`;
const timings: string[] = [];

after(function () {
  if (timings.length) process.stderr.write(`      guest timings: ${timings.join('; ')}\n`);
  assert.deepEqual(ourQemus(), [], 'no QEMU of the harness is left running');
});

for (const spec of SPECS) {
  describe(`guest kernel ${spec} under QEMU`, function () {
    this.timeout(0); // no wall-clock limit: waits on guests are bounded by their progress (lib/guest/progress.ts)
    let g: Guest;

    before(async function () {
      this.timeout(0); // no wall-clock limit: waits on guests are bounded by their progress (lib/guest/progress.ts)
      g = await Guest.boot({ kernel: spec, nodes: 2, cmdline: ['memhp_default_state=online_movable'] });
      timings.push(`${g.boot.ready.release} boot ${(g.boot.bootMs / 1000).toFixed(2)} s (${g.boot.accel}, chain heads ${g.boot.chainHeads})`);
    });
    after(async () => {
      await g?.close();
    });

    it('boots the kernel it was asked for and picks the profile from uname -r', () => {
      assert.equal(g.boot.ready.release, g.prepared.release);
      assert.equal(g.boot.ready.probesFailed, 0, 'every probe installed');
      assert.equal(g.kernel.name, spec === 'latest' ? LATEST : spec);
    });

    it('agent: reads, writes with the guest errno, ENOENT, dump, and survives bad commands', async () => {
      assert.equal(await g.sysfs.read(`${MEM}/block_size_bytes`), '8000000\n');
      const entries = await g.sysfs.list(MEM);
      assert.ok(entries.includes('memory0') && entries.includes('block_size_bytes'), entries.join(' '));
      await assert.rejects(g.sysfs.list(`${MEM}/nonexistent`), (e: unknown) => e instanceof KernelError && e.code === 'ENOENT');
      await assert.rejects(g.sysfs.list(`${MEM}/block_size_bytes`), (e: unknown) => e instanceof KernelError && e.code === 'ENOTDIR');
      assert.equal(await g.sysfs.read('/sys/devices/system/node/has_memory'), '0\n');
      await assert.rejects(g.sysfs.write(`${MEM}/memory0/state`, 'offline'), (e: unknown) => e instanceof KernelError && e.code === 'EINVAL');
      await assert.rejects(g.sysfs.write(`${MEM}/memory1/state`, 'bogus'), (e: unknown) => e instanceof KernelError && e.code === 'EINVAL');
      await assert.rejects(g.sysfs.read(`${MEM}/memory999/state`), (e: unknown) => e instanceof KernelError && e.code === 'ENOENT');
      await assert.rejects(g.sysfs.write(`${MEM}/memory999/state`, 'online'), (e: unknown) => e instanceof KernelError && e.code === 'ENOENT');
      await assert.rejects(g.agent.call('frobnicate', ['x']), GuestError);
      const weird = await g.agent.request('sh', ['!!!not-base64!!!']);
      assert.ok(weird.status === 'ok' || weird.status === 'fail');
      assert.equal(await g.agent.call('ping'), 'pong\n');
      await g.agent.sh('touch /tmp/x');
      await g.sysfs.write('/tmp/x', 'two\nlines \u00e9');
      assert.equal(await g.sysfs.read('/tmp/x'), 'two\nlines \u00e9');
      const d = await g.agent.dump(`${MEM}/memory1`);
      assert.deepEqual(d.get(`${MEM}/memory1/state`), { value: 'online\n' });
      // Exact bytes, exact errnos (memhp-io): a NUL and what follows it reach the kernel, a zero-length
      // write is one write(2) of zero bytes, and an errno without a strerror text in any table is its number.
      await g.sysfs.write('/tmp/x', 'a\0b\n');
      assert.equal(await g.sysfs.read('/tmp/x'), 'a\0b\n');
      await g.sysfs.write(`${MEM}/auto_online_blocks`, '');
      await assert.rejects(g.sysfs.write(`${MEM}/block_size_bytes`, '1'), (e: unknown) => e instanceof KernelError && e.code === 'EACCES');
    });

    it('plugs 1 GiB on node 1: 8 blocks online in Movable, with the exact notifier sequence', async () => {
      const before = g.trace.length;
      const t0 = performance.now();
      await g.plugDimm({ id: 'd1', size: '1G', node: 1 });
      const plugMs = performance.now() - t0;
      const [dev] = await g.hotplug.listMemoryDevices();
      assert.ok(dev && dev.type === 'dimm' && dev.id === 'd1');
      const first = dev.addr / 0x8000000;
      const blocks = Array.from({ length: 8 }, (_, i) => first + i);
      const state = await g.agent.sh(blocks.map((b) => `echo "$(cat ${MEM}/memory${b}/state) $(cat ${MEM}/memory${b}/valid_zones) $(ls -d ${MEM}/memory${b}/node* | sed 's/.*node//')"`).join('; '));
      assert.deepEqual(state.trim().split('\n'), blocks.map(() => 'online Movable 1'));
      assert.equal(await g.sysfs.read('/sys/devices/system/node/has_memory'), '0-1\n');

      const k = g.kernel;
      const pfn0 = dev.addr / 4096;
      const expected: string[] = [];
      blocks.forEach((_, i) => {
        const pfn = pfn0 + i * 32768;
        if (k.prepareFinishEvents) expected.push(`MEM_PREPARE_ONLINE@${pfn}`);
        if (k.nodeActions && i === 0) expected.push('NODE_ADDING_FIRST_MEMORY@nid1');
        expected.push(`MEM_GOING_ONLINE@${pfn}`);
        if (k.nodeActions && i === 0) expected.push('NODE_ADDED_FIRST_MEMORY@nid1');
        expected.push(`MEM_ONLINE@${pfn}`);
      });
      const recs = g.trace.events().slice(before);
      assert.deepEqual(notifies(recs).map(key), expected);
      for (const r of notifies(recs)) {
        if (r.chain !== 'memory') continue;
        assert.equal(r.value, k.actions[r.action as keyof typeof k.actions]);
        assert.deepEqual(Object.keys(r), ['type', 'chain', 'action', 'value', ...k.memoryNotifyFields]);
        if (k.memoryNotifyFields.includes('status_change_nid') && (r.action === 'MEM_GOING_ONLINE' || r.action === 'MEM_ONLINE')) {
          assert.equal(r.status_change_nid, r.start_pfn === pfn0 ? 1 : -1, 'node 1 changes state on its first block only');
          assert.equal(r.status_change_nid_normal, -1, 'Movable memory does not make node 1 N_NORMAL_MEMORY');
        }
      }
      const uevents = recs.filter((r) => r.type === 'uevent').map((r) => `${String(r.action)} ${String(r.devpath)}`);
      for (const b of blocks) {
        assert.ok(uevents.includes(`add /devices/system/memory/memory${b}`), `add uevent of memory${b}`);
        assert.ok(uevents.includes(`online /devices/system/memory/memory${b}`), `online uevent of memory${b}`);
      }
      assert.ok(recs.some((r) => r.type === 'qmp-event' && r.event === 'ACPI_DEVICE_OST'));
      timings.push(`${spec} plug ${plugMs.toFixed(0)} ms`);
      // The errno of a veto the agent never heard of is its number (E4000): memhp-io reports numbers.
      await g.loadModule('notifier-error-inject');
      await g.loadModule('memory-notifier-error-inject');
      await assert.rejects(g.loadModule('memory-notifier-error-inject'), (e: unknown) => e instanceof KernelError && e.code === 'EEXIST');
      const inject = '/sys/kernel/debug/notifier-error-inject/memory/actions/MEM_GOING_OFFLINE/error';
      await g.sysfs.write(inject, '-4000');
      await assert.rejects(g.sysfs.write(`${MEM}/memory${blocks.at(-1)!}/state`, 'offline'), (e: unknown) => e instanceof KernelError && e.code === 'E4000');
      await g.sysfs.write(inject, '0');
      await g.unloadModule('memory_notifier_error_inject');
      await assert.rejects(g.unloadModule('memory_notifier_error_inject'), (e: unknown) => e instanceof KernelError && e.code === 'ENOENT');
      await g.unloadModule('notifier_error_inject');
    });

    it('unplugs it: DEVICE_DELETED, blocks gone, the exact offline sequence', async () => {
      const before = g.trace.length;
      const [dev] = await g.hotplug.listMemoryDevices();
      assert.ok(dev && dev.type === 'dimm');
      const pfn0 = dev.addr / 4096;
      const first = dev.addr / 0x8000000;
      const t0 = performance.now();
      await g.unplugDimm('d1');
      const unplugMs = performance.now() - t0;
      const recs = g.trace.events().slice(before);
      assert.ok(recs.some((r) => r.type === 'qmp-event' && r.event === 'DEVICE_DELETED' && (r.data as { device?: string }).device === 'd1'));
      const k = g.kernel;
      const expected: string[] = [];
      for (let i = 0; i < 8; i++) {
        const pfn = pfn0 + i * 32768;
        if (k.nodeActions && i === 7) expected.push('NODE_REMOVING_LAST_MEMORY@nid1');
        expected.push(`MEM_GOING_OFFLINE@${pfn}`);
        if (k.nodeActions && i === 7) expected.push('NODE_REMOVED_LAST_MEMORY@nid1');
        expected.push(`MEM_OFFLINE@${pfn}`);
        if (k.prepareFinishEvents) expected.push(`MEM_FINISH_OFFLINE@${pfn}`);
      }
      assert.deepEqual(notifies(recs).map(key), expected);
      const left = await g.agent.sh(`ls -d ${MEM}/memory* | sed 's/.*memory//' | sort -n | tr '\\n' ' '`);
      for (let b = first; b < first + 8; b++) assert.ok(!left.split(' ').includes(String(b)), `memory${b} is gone`);
      assert.equal(await g.sysfs.read('/sys/devices/system/node/has_memory'), '0\n');
      assert.deepEqual(await g.hotplug.listMemoryDevices(), []);
      timings.push(`${spec} unplug ${unplugMs.toFixed(0)} ms`);
    });
  });
}

describe('QEMU lifetime', function () {
  this.timeout(0); // no wall-clock limit: waits on guests are bounded by their progress (lib/guest/progress.ts)

  // The owner dies without calling close(): on a normal exit the exit hook kills QEMU's group; on
  // SIGKILL (no hook runs) the parent-death signal does.
  for (const how of ['process.exit', 'SIGKILL'] as const) {
    it(`QEMU dies when its owner ends by ${how}`, async () => {
      const script = `
        import { Guest } from ${JSON.stringify(new URL('../../lib/guest/guest.ts', import.meta.url).pathname)};
        const g = await Guest.boot({ kernel: '6.12' });
        console.log('PID ' + g.pid);
        ${how === 'process.exit' ? 'process.exit(3);' : 'setInterval(() => {}, 1000);'}`;
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      const pid = await new Promise<number>((resolve, reject) => {
        let out = '';
        child.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /PID (\d+)/.exec(out);
          if (m) resolve(Number(m[1]));
        });
        child.once('exit', (c) => reject(new Error(`owner exited (${c}) before the guest was up: ${out}`)));
      });
      if (how === 'SIGKILL') {
        assert.ok(alive(pid), 'QEMU runs while its owner lives');
        child.kill('SIGKILL');
      }
      assert.ok(await waitGone(pid), `QEMU ${pid} is gone`);
    });
  }
});
