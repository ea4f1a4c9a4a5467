import { strict as assert } from 'node:assert';
import { MemhpError } from '../../lib/errors.js';
import { HotplugLocks, LOCK_CLASSES, Mutex, RwSemaphore } from '../../lib/kernel/locks.js';
import { currentTask, INIT_TASK, runTask, Task } from '../../lib/kernel/task.js';

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('kernel/task', () => {
  it('carries the task across awaits and timers; outside any task it is swapper/0', async () => {
    assert.equal(currentTask(), INIT_TASK);
    assert.equal(String(INIT_TASK).startsWith('swapper/0/'), true);
    const names = await Promise.all(
      ['a', 'b'].map((n) =>
        runTask(n, async () => {
          await tick();
          await new Promise((r) => setTimeout(r, 1));
          return currentTask().name;
        }),
      ),
    );
    assert.deepEqual(names, ['a', 'b']);
    const t = new Task('kworker');
    assert.equal(await runTask(t, () => currentTask()), t);
    assert.notEqual(new Task('x').id, new Task('x').id);
  });
});

describe('kernel/locks', () => {
  describe('Mutex', () => {
    it('is exclusive and hands off to waiters in FIFO order', async () => {
      const m = new Mutex('m');
      const order: string[] = [];
      await m.lock();
      assert.equal(m.isLocked(), true);
      const waiters = ['a', 'b', 'c'].map((n) => runTask(n, async () => {
        await m.lock();
        order.push(n);
        assert.equal(m.owner, currentTask());
        await tick();
        m.unlock();
      }));
      await tick();
      assert.deepEqual(order, []);
      assert.equal(m.trylock(), false, 'trylock fails while held');
      m.unlock();
      await Promise.all(waiters);
      assert.deepEqual(order, ['a', 'b', 'c']);
      assert.equal(m.isLocked(), false);
      assert.equal(m.trylock(), true);
      m.unlock();
    });

    it('unlock of an unlocked mutex throws', () => {
      assert.throws(() => new Mutex('m').unlock(), MemhpError);
    });

    it('acquires synchronously when free', () => {
      const m = new Mutex('m');
      void m.lock();
      assert.equal(m.isLocked(), true);
    });
  });

  describe('RwSemaphore', () => {
    it('shares among readers; a writer waits for all readers', async () => {
      const s = new RwSemaphore('s');
      await s.downRead();
      await s.downRead();
      assert.equal(s.readers, 2);
      let wrote = false;
      const w = s.downWrite().then(() => (wrote = true));
      await tick();
      assert.equal(wrote, false);
      s.upRead();
      await tick();
      assert.equal(wrote, false, 'one reader left');
      s.upRead();
      await w;
      assert.equal(wrote, true);
      assert.ok(s.writer);
      assert.equal(s.downReadTrylock(), false);
      assert.equal(s.downWriteTrylock(), false);
      s.upWrite();
      assert.equal(s.downWriteTrylock(), true);
      s.upWrite();
    });

    it('new readers wait behind a pending writer, then enter together', async () => {
      const s = new RwSemaphore('s');
      const order: string[] = [];
      await s.downRead();
      const w = s.downWrite().then(() => order.push('W'));
      const r1 = s.downRead().then(() => order.push('R1'));
      const r2 = s.downRead().then(() => order.push('R2'));
      await tick();
      assert.deepEqual(order, [], 'readers do not pass the pending writer');
      assert.equal(s.downReadTrylock(), false);
      s.upRead();
      await w;
      await tick();
      assert.deepEqual(order, ['W']);
      s.upWrite();
      await Promise.all([r1, r2]);
      assert.deepEqual(order, ['W', 'R1', 'R2']);
      assert.equal(s.readers, 2);
    });

    it('up without a holder throws', () => {
      assert.throws(() => new RwSemaphore('s').upRead(), MemhpError);
      assert.throws(() => new RwSemaphore('s').upWrite(), MemhpError);
    });
  });

  describe('HotplugLocks', () => {
    it('mem_hotplug_begin = cpus_read_lock + mem_hotplug_lock write; get_online_mems waits for it', async () => {
      const l = new HotplugLocks();
      assert.equal(l.memHotplugLock.lockClass, LOCK_CLASSES.mem_hotplug_lock);
      await l.memHotplugBegin();
      assert.equal(l.cpuHotplugLock.readers, 1);
      assert.ok(l.memHotplugLock.writer);
      let reading = false;
      const r = runTask('slab', async () => {
        await l.getOnlineMems();
        reading = true;
      });
      await tick();
      assert.equal(reading, false);
      l.memHotplugDone();
      await r;
      assert.equal(reading, true);
      assert.equal(l.cpuHotplugLock.readers, 0);
      // a writer now waits for that reader
      let began = false;
      const b = l.memHotplugBegin().then(() => (began = true));
      await tick();
      assert.equal(began, false);
      l.putOnlineMems();
      await b;
      l.memHotplugDone();
    });

    for (const sysfsRetryMs of [0, 2]) {
      it(`lock_device_hotplug_sysfs waits and retries, never fails (retry ${sysfsRetryMs} ms)`, async () => {
        const l = new HotplugLocks({ sysfsRetryMs });
        const order: string[] = [];
        await runTask('acpi', () => l.lockDeviceHotplug('acpi_device_hotplug'));
        const writers = ['echo1', 'echo2'].map((n) =>
          runTask(n, async () => {
            await l.lockDeviceHotplugSysfs('state_store');
            order.push(`${n} in`);
            await new Promise((r) => setTimeout(r, 3));
            order.push(`${n} out`);
            l.unlockDeviceHotplug();
          }),
        );
        await new Promise((r) => setTimeout(r, 10));
        assert.equal(order.length, 0, 'both writers wait while ACPI holds the lock');
        l.unlockDeviceHotplug();
        await Promise.all(writers);
        // never in parallel (docs/kernel-behaviour.md#locking)
        assert.equal(order.length, 4);
        assert.match(order[0]!, / in$/);
        assert.equal(order[1], order[0]!.replace('in', 'out'));
        assert.equal(l.deviceHotplugLock.isLocked(), false);
      });
    }

    it('device locks are one class, one instance per device', () => {
      const l = new HotplugLocks();
      const a = l.createDeviceLock('memory40');
      const b = l.createDeviceLock('memory41');
      assert.equal(a.lockClass, '&dev->mutex');
      assert.equal(a.lockClass, b.lockClass);
      assert.equal(a.name, 'memory40');
      void a.lock();
      assert.equal(b.trylock(), true, 'distinct instances');
    });
  });
});
