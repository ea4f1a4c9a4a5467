import { strict as assert } from 'node:assert';
import { KernelError } from '../../lib/errors.js';
import { Lockdep, LockdepError } from '../../lib/kernel/lockdep.js';
import {
  NOTIFY_BAD,
  NOTIFY_DONE,
  NOTIFY_OK,
  NOTIFY_STOP,
  NOTIFY_STOP_MASK,
  NotifierChain,
  memoryNotifierChain,
  nodeNotifierChain,
  notifierFromErrno,
  notifierToErrno,
  type NotifierCallback,
} from '../../lib/kernel/notifier.js';
import { memoryAction, memoryNotify, PROFILES, type MemoryNotify } from '../../lib/kernel/profile.js';
import { runTask } from '../../lib/kernel/task.js';
import { Trace } from '../../lib/kernel/trace.js';

const errno = (code: string) => (e: unknown) => e instanceof KernelError && e.code === code;
const tick = () => new Promise<void>((r) => setImmediate(r));

/** A promise with its resolver, to hold an async callback open. */
function gate<T = void>() {
  let open!: (v: T) => void;
  const p = new Promise<T>((r) => (open = r));
  return { p, open };
}

describe('kernel/notifier', () => {
  describe('return values (include/linux/notifier.h)', () => {
    it('has the kernel constants', () => {
      assert.deepEqual([NOTIFY_DONE, NOTIFY_OK, NOTIFY_STOP_MASK, NOTIFY_BAD, NOTIFY_STOP], [0, 1, 0x8000, 0x8002, 0x8001]);
    });

    it('notifierFromErrno / notifierToErrno as the kernel', () => {
      assert.equal(notifierFromErrno(0), NOTIFY_OK);
      assert.equal(notifierFromErrno(-12), 0x800d);
      assert.equal(notifierFromErrno(-16), 0x8011);
      assert.equal(notifierFromErrno(-4095), 0x8000 | 4096);
      assert.equal(notifierToErrno(0x800d), -12);
      assert.equal(notifierToErrno(NOTIFY_BAD), -1); // -EPERM
      assert.equal(notifierToErrno(NOTIFY_STOP), 0);
      assert.equal(notifierToErrno(NOTIFY_OK), 0);
      assert.equal(notifierToErrno(NOTIFY_DONE), 0);
      assert.equal(notifierToErrno(13), -12); // an error without STOP_MASK still converts
      for (let e = -1; e >= -133; e--) assert.equal(notifierToErrno(notifierFromErrno(e)), e);
    });
  });

  for (const profile of Object.values(PROFILES)) {
    describe(`memory chain, profile ${profile.name}`, () => {
      const GOING_ONLINE = memoryAction(profile, 'MEM_GOING_ONLINE');
      const arg = memoryNotify(profile, { start_pfn: 0x100000, nr_pages: 0x8000, status_change_nid: 1, status_change_nid_normal: -1 });
      let chain: NotifierChain<MemoryNotify>;
      let trace: Trace;
      beforeEach(() => {
        trace = new Trace();
        chain = memoryNotifierChain(profile, { trace });
      });

      it('calls highest priority first, FIFO among equal priorities, with action, payload and self', () => {
        const seen: string[] = [];
        const cb = (tag: string): NotifierCallback<MemoryNotify> => (action, a, self) => {
          assert.equal(action, GOING_ONLINE);
          assert.equal(a, arg);
          assert.equal(self.callback.name, '');
          seen.push(`${tag}@${self.priority}`);
          return NOTIFY_OK;
        };
        chain.register(cb('a'), 0);
        chain.register(cb('b'), 10);
        chain.register(cb('c'), 0);
        chain.register(cb('d'), 100);
        chain.register(cb('e'), 10);
        chain.register(cb('f'), -5);
        assert.equal(chain.callChain(GOING_ONLINE, arg), NOTIFY_OK);
        assert.deepEqual(seen, ['d@100', 'b@10', 'e@10', 'a@0', 'c@0', 'f@-5']);
        assert.deepEqual(chain.blocks.map((b) => b.priority), [100, 10, 10, 0, 0, -5]);
      });

      it('registering the same callback twice → EEXIST; unknown unregister → ENOENT', async () => {
        const cb = () => NOTIFY_OK;
        const h = chain.register(cb, 0);
        assert.throws(() => chain.register(cb, 5), errno('EEXIST'));
        assert.equal(chain.blocks.length, 1);
        await h.unregister();
        assert.equal(chain.blocks.length, 0);
        await assert.rejects(h.unregister(), errno('ENOENT'));
        await assert.rejects(chain.unregister(() => NOTIFY_OK), errno('ENOENT'));
        chain.register(cb, 0); // registrable again once removed
        assert.equal(chain.blocks.length, 1);
      });

      it('returns NOTIFY_DONE for an empty chain and the last called value otherwise', () => {
        assert.equal(chain.callChain(GOING_ONLINE, arg), NOTIFY_DONE);
        chain.register(() => NOTIFY_OK, 2);
        chain.register(() => NOTIFY_DONE, 1);
        assert.equal(chain.callChain(GOING_ONLINE, arg), NOTIFY_DONE);
      });

      it('stops at NOTIFY_STOP_MASK (BAD, STOP, from_errno); an error without the mask does not stop', () => {
        let last = 0;
        const rets: number[] = [];
        chain.register(() => rets[0]!, 3);
        chain.register(() => rets[1]!, 2);
        chain.register(() => ((last += 1), NOTIFY_OK), 1);
        for (const stop of [NOTIFY_BAD, NOTIFY_STOP, notifierFromErrno(-12)]) {
          rets.splice(0, 2, NOTIFY_OK, stop);
          last = 0;
          assert.equal(chain.callChain(GOING_ONLINE, arg), stop);
          assert.equal(last, 0, 'the notifier after the stop is not called');
        }
        // 13 is -ENOMEM without STOP_MASK: the chain goes on and the last notifier's OK wins.
        rets.splice(0, 2, 13, NOTIFY_OK);
        assert.equal(chain.callChain(GOING_ONLINE, arg), NOTIFY_OK);
        assert.equal(last, 1);
        assert.equal(notifierToErrno(NOTIFY_STOP), 0, 'STOP stops the chain, yet the operation proceeds');
      });

      it('awaits async callbacks in order and returns a promise only then', async () => {
        const seen: string[] = [];
        chain.register(() => (seen.push('sync1'), NOTIFY_OK), 3);
        chain.register(async () => {
          await new Promise((r) => setTimeout(r, 5));
          seen.push('async');
          return NOTIFY_OK;
        }, 2);
        chain.register(() => (seen.push('sync2'), NOTIFY_DONE), 1);
        const r = chain.callChain(GOING_ONLINE, arg);
        assert.ok(r instanceof Promise);
        assert.deepEqual(seen, ['sync1']);
        assert.equal(await r, NOTIFY_DONE);
        assert.deepEqual(seen, ['sync1', 'async', 'sync2']);
        assert.equal(chain.rwsem.readers, 0);
      });

      it('an async NOTIFY_BAD stops the chain', async () => {
        let called = false;
        chain.register(async () => NOTIFY_BAD, 1);
        chain.register(() => ((called = true), NOTIFY_OK), 0);
        assert.equal(await chain.callChain(GOING_ONLINE, arg), NOTIFY_BAD);
        assert.equal(called, false);
      });

      it('an all-synchronous call returns a number, not a promise', () => {
        for (let i = 0; i < 8; i++) chain.register(() => NOTIFY_OK, i);
        assert.equal(typeof chain.callChain(GOING_ONLINE, arg), 'number');
      });

      it('an unregister during a call waits for the call to end', async () => {
        const g = gate();
        const order: string[] = [];
        const slow = chain.register(async () => {
          await g.p;
          order.push('callback done');
          return NOTIFY_OK;
        }, 0);
        const call = chain.callChain(GOING_ONLINE, arg);
        const un = slow.unregister().then(() => order.push('unregistered'));
        await tick();
        assert.equal(chain.blocks.length, 1, 'still registered while the call runs');
        assert.deepEqual(order, []);
        g.open();
        assert.equal(await call, NOTIFY_OK);
        await un;
        assert.deepEqual(order, ['callback done', 'unregistered']);
        assert.equal(chain.blocks.length, 0);
      });

      it('a register during a call waits for it; a new call waits behind the pending writer', async () => {
        const g = gate();
        const calls: string[] = [];
        chain.register(async () => (await g.p, calls.push('slow'), NOTIFY_OK), 0);
        const first = runTask('caller', () => chain.callChain(GOING_ONLINE, arg));
        await tick();
        const late = chain.register(() => (calls.push('late'), NOTIFY_OK), 9);
        const second = chain.callChain(GOING_ONLINE, arg); // reader behind the pending register
        assert.ok(second instanceof Promise);
        await tick();
        assert.equal(chain.blocks.length, 1);
        g.open();
        await first;
        await late.registered;
        await second;
        assert.deepEqual(calls, ['slow', 'late', 'slow'], 'the late block missed the first call, saw the second');
      });

      it("a callback's exception propagates and releases the rwsem", async () => {
        chain.register(() => {
          throw new Error('boom');
        }, 0);
        assert.throws(() => chain.callChain(GOING_ONLINE, arg), /boom/);
        assert.equal(chain.rwsem.readers, 0);
        await chain.unregister(chain.blocks[0]!.callback);
        chain.register(async () => Promise.reject(new Error('later')), 0);
        await assert.rejects(async () => chain.callChain(GOING_ONLINE, arg), /later/);
        assert.equal(chain.rwsem.readers, 0);
      });

      it('a callback returning a non-number is a TypeError', () => {
        chain.register((() => undefined) as unknown as NotifierCallback<MemoryNotify>, 0);
        assert.throws(() => chain.callChain(GOING_ONLINE, arg), TypeError);
        assert.equal(chain.rwsem.readers, 0);
      });

      it('records one notify record per call with exactly the profile payload fields', () => {
        chain.register(() => NOTIFY_OK, 0);
        chain.callChain(GOING_ONLINE, arg);
        chain.callChain(0x4000, { ...arg, bogus: 1 } as MemoryNotify);
        const recs = trace.events('notify');
        assert.equal(recs.length, 2);
        assert.deepEqual(recs[0], { type: 'notify', chain: 'memory', action: 'MEM_GOING_ONLINE', value: GOING_ONLINE, ...arg });
        assert.deepEqual(Object.keys(recs[0]!).slice(4), [...profile.memoryNotifyFields]);
        assert.equal(recs[1]!.action, '0x4000');
        assert.ok(!('bogus' in recs[1]!));
      });

      it('records a call on an empty chain too (the kprobe is on memory_notify)', () => {
        chain.callChain(GOING_ONLINE, arg);
        assert.equal(trace.events('notify').length, 1);
      });

      it('a callback registering on its own chain is reported, not left to hang (strict)', async () => {
        const lockdep = new Lockdep({ strict: true });
        const c = memoryNotifierChain(profile, { lockdep });
        let thrown: unknown;
        c.register(() => {
          try {
            c.register(() => NOTIFY_OK, 0);
          } catch (e) {
            thrown = e;
          }
          return NOTIFY_OK;
        }, 0);
        await runTask('udevd', () => c.callChain(GOING_ONLINE, arg));
        assert.ok(thrown instanceof LockdepError);
        assert.equal(thrown.kind, 'recursive');
        assert.deepEqual(thrown.report.chains[0]!.map((e) => [e.lock, e.mode, e.op]), [
          ['(memory_chain).rwsem', 'read', 'blocking_notifier_call_chain'],
          ['(memory_chain).rwsem', 'write', 'blocking_notifier_chain_register'],
        ]);
        assert.match(thrown.report.chains[0]![0]!.task, /^udevd\//);
        assert.equal(c.blocks.length, 1, 'the registration did not happen');
      });

      it('a callback unregistering itself is reported (strict: rejects; non-strict: record, then done after the call)', async () => {
        const lockdep = new Lockdep({ strict: true });
        const c = memoryNotifierChain(profile, { lockdep });
        let rejection: unknown;
        c.register((_a, _p, self) => {
          self.unregister().catch((e: unknown) => (rejection = e));
          return NOTIFY_OK;
        }, 0);
        await runTask('t', () => c.callChain(GOING_ONLINE, arg));
        await tick();
        assert.ok(rejection instanceof LockdepError && rejection.kind === 'recursive');
        assert.equal(c.blocks.length, 1);

        const t2 = new Trace();
        const c2 = memoryNotifierChain(profile, { lockdep: new Lockdep({ trace: t2 }), trace: t2 });
        let unregistered: Promise<void> | undefined;
        c2.register((_a, _p, self) => ((unregistered = self.unregister()), NOTIFY_OK), 0);
        await runTask('t', () => c2.callChain(GOING_ONLINE, arg));
        await unregistered;
        assert.equal(c2.blocks.length, 0);
        // The kernel task would block on its own rwsem: reported as recursion, then as a wait cycle.
        assert.deepEqual(t2.events('lockdep').map((r) => r.kind), ['recursive', 'wait-cycle']);
      });

      if (profile.nodeActions) {
        it('has a node chain recording {nid}', () => {
          const node = nodeNotifierChain(profile, { trace });
          const got: number[] = [];
          node.register((action, a) => (got.push(action, a.nid), NOTIFY_OK), 0);
          node.callChain(profile.nodeActions!.NODE_ADDING_FIRST_MEMORY, { nid: 1 });
          assert.deepEqual(got, [1, 1]);
          assert.deepEqual(trace.events('notify'), [{ type: 'notify', chain: 'node', action: 'NODE_ADDING_FIRST_MEMORY', value: 1, nid: 1 }]);
        });
      } else {
        it('has no node chain: register → ENOSYS', () => {
          const node = nodeNotifierChain(profile, { trace });
          assert.throws(() => node.register(() => NOTIFY_OK, 0), errno('ENOSYS'));
        });
      }
    });
  }
});
