import { strict as assert } from 'node:assert';
import { Lockdep, LockdepError, type LockChainEntry, type LockdepReport } from '../../lib/kernel/lockdep.js';
import { HotplugLocks, Mutex, RwSemaphore } from '../../lib/kernel/locks.js';
import { memoryNotifierChain, NOTIFY_OK, type NotifierChain } from '../../lib/kernel/notifier.js';
import { memoryAction, memoryNotify, PROFILES, type KernelProfile, type MemoryNotify } from '../../lib/kernel/profile.js';
import { INIT_TASK, runTask, Task } from '../../lib/kernel/task.js';
import { Trace } from '../../lib/kernel/trace.js';

const tick = () => new Promise<void>((r) => setImmediate(r));
const steps = (c: readonly LockChainEntry[]) => c.map((e) => `${e.task.split('/')[0]}:${e.lock}:${e.mode}:${e.op}`);

function gate() {
  let open!: () => void;
  const p = new Promise<void>((r) => (open = r));
  return { p, open };
}

/** A machine's worth of locks and a memory chain, with a validator. */
function machine(profile: KernelProfile, strict: boolean) {
  const trace = new Trace();
  const lockdep = new Lockdep({ strict, trace });
  const locks = new HotplugLocks({ lockdep });
  const chain = memoryNotifierChain(profile, { lockdep, trace });
  chain.register(() => NOTIFY_OK, 0);
  return { trace, lockdep, locks, chain };
}

/**
 * The add path (add_memory → add_memory_resource): mem_hotplug_begin, create the block device (now
 * visible to user space: `created` opens), then device_register takes its device_lock.
 */
async function addMemory(locks: HotplugLocks, dev: Mutex, withDhl: boolean, created: () => void, resume: Promise<void>) {
  if (withDhl) await locks.lockDeviceHotplug('add_memory');
  await locks.memHotplugBegin('add_memory_resource');
  try {
    created();
    await resume; // user space gets to run
    await dev.lock('device_register');
    dev.unlock();
  } finally {
    locks.memHotplugDone();
    if (withDhl) locks.unlockDeviceHotplug();
  }
}

/** `echo online > memoryN/state`: state_store → device_online → memory_block_online → online_pages. */
async function sysfsOnline(m: ReturnType<typeof machine>, profile: KernelProfile, dev: Mutex, withDhl: boolean) {
  if (withDhl) await m.locks.lockDeviceHotplugSysfs('state_store');
  await dev.lock('device_online');
  await m.locks.memHotplugBegin('memory_block_online');
  const arg = memoryNotify(profile, { start_pfn: 0x140000, nr_pages: 0x8000 });
  await m.chain.callChain(memoryAction(profile, 'MEM_GOING_ONLINE'), arg);
  await m.chain.callChain(memoryAction(profile, 'MEM_ONLINE'), arg);
  m.locks.memHotplugDone();
  dev.unlock();
  if (withDhl) m.locks.unlockDeviceHotplug();
}

/** Add memory40 while user space onlines it "too fast" (Documentation/core-api/memory-hotplug.rst). */
function race(m: ReturnType<typeof machine>, profile: KernelProfile, withDhl: boolean) {
  const dev = m.locks.createDeviceLock('memory40');
  const created = gate();
  const resume = gate();
  const add = runTask('acpi_hotplug', () => addMemory(m.locks, dev, withDhl, created.open, resume.p));
  const online = runTask('udev', async () => {
    await created.p;
    const done = sysfsOnline(m, profile, dev, withDhl);
    await tick();
    resume.open(); // the add path goes on while user space is in the middle of device_online
    await done;
  });
  return { add, online };
}

describe('kernel/lockdep', () => {
  for (const profile of Object.values(PROFILES)) {
    describe(`documented inversion: add memory vs a too-fast online (profile ${profile.name})`, () => {
      it('without device_hotplug_lock: reported with both chains, then the real deadlock', async () => {
        const m = machine(profile, false);
        const { add, online } = race(m, profile, false);
        let settled = false;
        void Promise.race([add, online]).then(() => (settled = true));
        await new Promise((r) => setTimeout(r, 20));
        assert.equal(settled, false, 'the two tasks are deadlocked');
        const recs = m.trace.events('lockdep');
        const first = recs[0] as unknown as LockdepReport;
        assert.equal(first.kind, 'inversion');
        assert.match(first.message, /trying to acquire &dev->mutex \[device_register\] while holding mem_hotplug_lock/);
        // chain 0: the add path (task, lock, operation); chain 1: device_online, which took the reverse order
        assert.deepEqual(steps(first.chains[0]!), [
          'acpi_hotplug:cpu_hotplug_lock:read:add_memory_resource',
          'acpi_hotplug:mem_hotplug_lock:write:add_memory_resource',
          'acpi_hotplug:&dev->mutex:write:device_register',
        ]);
        assert.deepEqual(steps(first.chains[1]!), [
          'udev:&dev->mutex:write:device_online',
          'udev:cpu_hotplug_lock:read:memory_block_online',
          'udev:mem_hotplug_lock:write:memory_block_online',
        ]);
        assert.equal(first.chains[1]![0]!.instance, 'memory40');
        // cpu_hotplug_lock (read) closes the same cycle through a pending CPU-hotplug writer: also reported
        const kinds = recs.map((r) => r.kind);
        assert.deepEqual(kinds, ['inversion', 'inversion', 'wait-cycle']);
        const cycle = recs[2] as unknown as LockdepReport;
        assert.deepEqual(cycle.chains.map((c) => c[c.length - 1]!.lock).sort(), ['&dev->mutex', 'mem_hotplug_lock']);
      });

      it('without device_hotplug_lock, strict: the add path gets a LockdepError and both tasks finish', async () => {
        const m = machine(profile, true);
        const { add, online } = race(m, profile, false);
        const err = await add.then(() => null, (e: unknown) => e);
        assert.ok(err instanceof LockdepError);
        assert.equal(err.kind, 'inversion');
        assert.deepEqual(err.report.chains.map((c) => c[c.length - 1]!.op), ['device_register', 'memory_block_online']);
        await online; // the validator broke the deadlock
        assert.equal(m.trace.events('lockdep').length, 0, 'strict mode throws instead of recording');
        assert.equal(m.lockdep.reports.length, 1);
      });

      it('with device_hotplug_lock held as the kernel does: silent, even once both orders are known', async () => {
        for (const strict of [false, true]) {
          const m = machine(profile, strict);
          // a first online of a boot block records device_lock → mem_hotplug_lock under device_hotplug_lock
          await runTask('udev', () => sysfsOnline(m, profile, m.locks.createDeviceLock('memory39'), true));
          const { add, online } = race(m, profile, true);
          await Promise.all([add, online]);
          // the same orders again, as if the race went the other way
          await runTask('udev', () => sysfsOnline(m, profile, m.locks.createDeviceLock('memory41'), true));
          assert.deepEqual(m.lockdep.reports, []);
          assert.deepEqual(m.trace.events('lockdep'), []);
          assert.ok(m.trace.events('notify').length >= 6);
        }
      });
    });

    describe(`recursive read of write-held mem_hotplug_lock (profile ${profile.name})`, () => {
      const action = memoryAction(profile, 'MEM_GOING_ONLINE');
      const arg = memoryNotify(profile, { start_pfn: 0x140000, nr_pages: 0x8000 });
      const withCallback = (m: ReturnType<typeof machine>, chain: NotifierChain<MemoryNotify>, got: unknown[]) =>
        chain.register(() => {
          m.locks.getOnlineMems('slab_mem_going_online_callback').catch((e: unknown) => got.push(e));
          return NOTIFY_OK;
        }, 1);

      it('strict: get_online_mems in a notifier callback rejects with a recursive report', async () => {
        const m = machine(profile, true);
        const got: unknown[] = [];
        withCallback(m, m.chain, got);
        await runTask('udev', async () => {
          await m.locks.memHotplugBegin('memory_block_online');
          await m.chain.callChain(action, arg);
          m.locks.memHotplugDone();
        });
        await tick();
        const e = got[0];
        assert.ok(e instanceof LockdepError);
        assert.equal(e.kind, 'recursive');
        assert.match(e.message, /recursive read of write-held mem_hotplug_lock/);
        assert.deepEqual(steps(e.report.chains[0]!), [
          'udev:cpu_hotplug_lock:read:memory_block_online',
          'udev:mem_hotplug_lock:write:memory_block_online',
          'udev:(memory_chain).rwsem:read:blocking_notifier_call_chain',
          'udev:mem_hotplug_lock:read:slab_mem_going_online_callback',
        ]);
        assert.equal(m.locks.memHotplugLock.readers, 0);
      });

      it('non-strict: a lockdep record, then the self-deadlock as a wait cycle', async () => {
        const m = machine(profile, false);
        withCallback(m, m.chain, []);
        await runTask('udev', async () => {
          await m.locks.memHotplugBegin('memory_block_online');
          await m.chain.callChain(action, arg);
        });
        const recs = m.trace.events('lockdep');
        assert.deepEqual(recs.map((r) => r.kind), ['recursive', 'wait-cycle']);
        assert.match(String(recs[0]!.message), /recursive read of write-held mem_hotplug_lock/);
      });
    });
  }

  describe('order graph', () => {
    it('reports AB-BA the first time the reverse order is attempted, with both chains, once', async () => {
      const trace = new Trace();
      const ld = new Lockdep({ trace });
      const a = new Mutex('A', { lockdep: ld });
      const b = new Mutex('B', { lockdep: ld });
      for (let i = 0; i < 2; i++) {
        await runTask('t1', async () => {
          await a.lock('op1');
          await b.lock('op2');
          b.unlock();
          a.unlock();
        });
      }
      assert.equal(ld.reports.length, 0, 'one order alone is fine');
      for (let i = 0; i < 2; i++) {
        await runTask('t2', async () => {
          await b.lock('op3');
          await a.lock('op4');
          a.unlock();
          b.unlock();
        });
      }
      assert.equal(ld.reports.length, 1);
      const r = ld.reports[0]!;
      assert.equal(r.kind, 'inversion');
      assert.deepEqual(r.chains.map(steps), [
        ['t2:B:write:op3', 't2:A:write:op4'],
        ['t1:A:write:op1', 't1:B:write:op2'],
      ]);
      assert.equal(trace.events('lockdep').length, 1);
      assert.deepEqual(JSON.parse(JSON.stringify(trace.events('lockdep')[0])).chains, r.chains);
    });

    it('strict: the reverse-order lock() rejects and the lock is not taken', async () => {
      const ld = new Lockdep({ strict: true });
      const a = new Mutex('A', { lockdep: ld });
      const b = new Mutex('B', { lockdep: ld });
      await a.lock();
      await b.lock();
      b.unlock();
      a.unlock();
      await b.lock();
      await assert.rejects(a.lock(), (e: unknown) => e instanceof LockdepError && e.kind === 'inversion');
      assert.equal(a.isLocked(), false);
      assert.deepEqual(ld.heldLocks(INIT_TASK).map((e) => e.lock), ['B']);
      b.unlock();
    });

    it('finds a cycle through three classes and three tasks', async () => {
      const ld = new Lockdep();
      const [a, b, c] = ['A', 'B', 'C'].map((n) => new Mutex(n, { lockdep: ld }));
      const nest = (x: Mutex, y: Mutex, name: string) =>
        runTask(name, async () => {
          await x.lock(`${name}1`);
          await y.lock(`${name}2`);
          y.unlock();
          x.unlock();
        });
      await nest(a!, b!, 'p');
      await nest(b!, c!, 'q');
      assert.equal(ld.reports.length, 0);
      await nest(c!, a!, 'r');
      assert.equal(ld.reports.length, 1);
      assert.deepEqual(ld.reports[0]!.chains.map(steps), [
        ['r:C:write:r1', 'r:A:write:r2'],
        ['p:A:write:p1', 'p:B:write:p2'],
        ['q:B:write:q1', 'q:C:write:q2'],
      ]);
    });

    it('a common gate lock held exclusively silences an inversion; a shared read does not', async () => {
      for (const [gateMode, expected] of [['write', 0], ['read', 1], ['mixed', 0]] as const) {
        const ld = new Lockdep();
        const g = new RwSemaphore('G', { lockdep: ld });
        const a = new Mutex('A', { lockdep: ld });
        const b = new Mutex('B', { lockdep: ld });
        const under = (first: boolean, x: Mutex, y: Mutex) =>
          runTask('t', async () => {
            const read = gateMode === 'read' || (gateMode === 'mixed' && first);
            await (read ? g.downRead() : g.downWrite());
            await x.lock();
            await y.lock();
            y.unlock();
            x.unlock();
            if (read) g.upRead();
            else g.upWrite();
          });
        await under(true, a, b);
        await under(false, b, a);
        assert.equal(ld.reports.length, expected, gateMode);
      }
    });

    it('trylocks are not checked (they cannot deadlock)', async () => {
      const ld = new Lockdep({ strict: true });
      const a = new Mutex('A', { lockdep: ld });
      const b = new Mutex('B', { lockdep: ld });
      await a.lock();
      await b.lock();
      b.unlock();
      a.unlock();
      await b.lock();
      assert.equal(a.trylock(), true);
      assert.deepEqual(ld.heldLocks(INIT_TASK).map((e) => e.lock), ['B', 'A']);
      a.unlock();
      b.unlock();
    });

    it('two device locks at once are recursive locking of one class', async () => {
      const ld = new Lockdep({ strict: true });
      const l = new HotplugLocks({ lockdep: ld });
      const d40 = l.createDeviceLock('memory40');
      const d41 = l.createDeviceLock('memory41');
      await d40.lock('device_offline');
      await assert.rejects(d41.lock('device_offline'), (e: unknown) => e instanceof LockdepError && e.kind === 'recursive');
      assert.equal(d41.isLocked(), false);
    });
  });

  describe('wait cycles', () => {
    it('non-strict: a real AB-BA deadlock is reported with each task waiting', async () => {
      const trace = new Trace();
      const ld = new Lockdep({ trace });
      const a = new Mutex('A', { lockdep: ld });
      const b = new Mutex('B', { lockdep: ld });
      const both = gate();
      void runTask('t1', async () => {
        await a.lock('t1a');
        await both.p;
        await b.lock('t1b');
      });
      void runTask('t2', async () => {
        await b.lock('t2b');
        both.open();
        await tick();
        await a.lock('t2a');
      });
      await new Promise((r) => setTimeout(r, 10));
      const cycle = ld.reports.find((r) => r.kind === 'wait-cycle');
      assert.ok(cycle);
      assert.deepEqual(cycle.chains.map(steps), [
        ['t2:B:write:t2b', 't2:A:write:t2a'],
        ['t1:A:write:t1a', 't1:B:write:t1b'],
      ]);
      assert.match(cycle.message, /^deadlock: t2\/\d+ waits for A, t1\/\d+ waits for B$/);
    });

    it('strict: a wait cycle the order graph cannot see (through a polling sysfs writer) rejects the closing wait', async () => {
      const ld = new Lockdep({ strict: true });
      const l = new HotplugLocks({ lockdep: ld });
      const other = new Mutex('B', { lockdep: ld });
      const t2holds = gate();
      const acpi = new Task('acpi');
      await runTask(acpi, () => l.lockDeviceHotplug());
      const polling = runTask('echo', async () => {
        await other.lock('echo_b');
        t2holds.open();
        await l.lockDeviceHotplugSysfs(); // a model bug: polling while holding B
        other.unlock();
        l.unlockDeviceHotplug();
      });
      await t2holds.p;
      await tick();
      const err = await runTask(acpi, () => other.lock('acpi_b')).then(() => null, (e: unknown) => e);
      assert.ok(err instanceof LockdepError);
      assert.equal(err.kind, 'wait-cycle');
      assert.equal(ld.reports.filter((r) => r.kind === 'inversion').length, 0);
      l.unlockDeviceHotplug();
      await polling;
    });

    it('a rwsem reader behind a writer that waits for that reader is a cycle', async () => {
      const ld = new Lockdep();
      const s = new RwSemaphore('S', { lockdep: ld });
      const other = new Mutex('M', { lockdep: ld });
      await runTask('r', async () => {
        await s.downRead('r1');
        void runTask('w', () => s.downWrite('w1'));
        await tick();
        void other.lock('m');
        void s.downRead('r2'); // recursive read behind the pending writer
      });
      await tick();
      const kinds = ld.reports.map((r) => r.kind);
      assert.deepEqual(kinds, ['recursive', 'wait-cycle']);
      assert.equal(ld.reports[1]!.chains.length, 2);
    });
  });
});
