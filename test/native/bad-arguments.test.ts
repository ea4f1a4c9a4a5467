import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { KernelError } from '../../lib/errors.js';
import { PhysMem, PAGES_PER_SECTION as S } from '../../lib/native/physmem.js';
import type { RawPhysMem } from '../../lib/native/types.js';

// Every native entry point with a valid argument list; each argument is then replaced by bad values.
const VALID: Record<keyof RawPhysMem, unknown[]> = {
  addSections: [4 * S, S, 0],
  removeSections: [S, S],
  initRange: [2 * S, S, 0, 2, false, true, 1],
  initMemmapOnMemory: [2 * S, 512, 0, 2],
  onlinePagesRange: [0, S, true],
  adjustPresentPages: [0, 0],
  markSectionsOnline: [0, S],
  isolateRange: [0, 512, -1],
  undoIsolateRange: [0, 512, -1],
  testPagesIsolated: [0, 512],
  scanMovablePages: [0, 512],
  migrateRange: [0, 512, new Uint8Array([1])],
  offlineIsolatedPages: [0, 512],
  removeRangeFromZone: [2 * S, S],
  alloc: [1, 0, 0, 0, false, -1],
  free: [new Float64Array([0])],
  pin: [new Float64Array([0])],
  unpin: [new Float64Array([0])],
  hwpoison: [0],
  zoneInfo: [0, 2],
  zoneCounters: [0, 2, new Float64Array(5)],
  nodeSpan: [0],
  pageblockInfo: [0],
  sectionInfo: [0],
  pageState: [0],
  pageStates: [0, 16],
  checkInvariants: [],
  nativeBytes: [],
  nodeCount: [],
};

const BAD: unknown[] = [undefined, null, 'x', '12', {}, [], -1, 0.5, NaN, Infinity, -Infinity, 2 ** 60, 1e300, true, 12n, new Float32Array(2), new Uint8Array(2), () => 0, Symbol('s')];

function fresh(): RawPhysMem {
  const pm = new PhysMem();
  pm.addSections(0, 2 * S, 0);
  pm.moveRangeToZone(0, S, 0, 'Normal');
  pm.adjustPresentPages(0, S); // at rest: present counts the initialised pages
  return pm.raw;
}

describe('native entry points with bad arguments', () => {
  for (const [method, args] of Object.entries(VALID) as [keyof RawPhysMem, unknown[]][]) {
    it(`${method}: every bad argument throws KernelError, never crashes`, () => {
      let calls = 0;
      for (let i = 0; i < args.length; i++) {
        for (const bad of BAD) {
          const pm = fresh();
          const argv = [...args];
          argv[i] = bad;
          try {
            (pm[method] as (...a: unknown[]) => unknown).apply(pm, argv);
            // Some "bad" values are legal for some parameters (0.5 is not, -1 is for undoMigratetype,
            // a Uint8Array is for migrateRange): then the call must have worked on a consistent state.
            // adjustPresentPages is one step of a flow and legitimately leaves present out of step.
            if (method !== 'adjustPresentPages') assert.deepEqual(pm.checkInvariants(), [], `${method}(${String(argv[i])}) left an inconsistent state`);
          } catch (e) {
            assert.ok(e instanceof KernelError, `${method} arg ${i} = ${String(bad)}: ${String(e)}`);
            assert.ok(e.errno > 0);
          }
          calls++;
        }
      }
      // Missing arguments altogether.
      if (args.length) {
        const pm = fresh();
        assert.throws(() => (pm[method] as () => unknown).call(pm), KernelError);
      }
      assert.equal(calls, args.length * BAD.length);
    });
  }

  it('out-of-range pfns and nodes are EINVAL with a message naming the argument', () => {
    const pm = fresh();
    assert.throws(() => pm.addSections(2 ** 41, S, 0), (e: KernelError) => e.code === 'EINVAL' && /start/.test(e.message));
    assert.throws(() => pm.addSections(4 * S, S, 5000), (e: KernelError) => e.code === 'EINVAL' && /nid/.test(e.message));
    assert.throws(() => pm.alloc(1, 11, 0, 0, false, -1), (e: KernelError) => e.code === 'EINVAL' && /order/.test(e.message));
    assert.throws(() => pm.isolateRange(1, 512, -1), (e: KernelError) => e.code === 'EINVAL' && /aligned/.test(e.message));
    assert.throws(() => pm.pageState(10 * S), (e: KernelError) => e.code === 'EINVAL' && e.pfn === 10 * S);
  });
});

/**
 * Another thread rewrites the argument arrays while the native call runs (a Float64Array or Uint8Array on
 * a SharedArrayBuffer): every call must read its arguments once, so it either works on one consistent
 * reading or fails with KernelError, and the page state stays consistent either way.
 */
describe('argument arrays on a SharedArrayBuffer that another thread keeps changing', function () {
  this.timeout(120_000);
  const BOGUS = 2 ** 39; // a pfn below MAX_PFN in no present section

  // Until ctl[0] is set: the last pfn and one random pfn go BOGUS and back, the mask bytes flip. The
  // Atomics loads between the stores keep the compiler from dropping any of them.
  const MUTATOR = `
    const { workerData, parentPort } = require('node:worker_threads');
    const a = new Float64Array(workerData.pfns), orig = new Float64Array(workerData.orig);
    const mask = new Uint8Array(workerData.mask), ctl = new Int32Array(workerData.ctl);
    const last = a.length - 1;
    const spin = () => { for (let k = 0; k < 64 && Atomics.load(ctl, 0) === 0; k++); };
    let x = 12345;
    parentPort.postMessage('running');
    while (Atomics.load(ctl, 0) === 0) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const i = x % a.length;
      a[last] = ${BOGUS};
      a[i] = ${BOGUS};
      spin();
      a[last] = orig[last];
      a[i] = orig[i];
      mask[0] ^= 1;
      mask[1] ^= x & 1;
      spin();
    }`;

  it('pin, unpin, free and migrateRange never crash and never corrupt the page state', async () => {
    const N = 16384;
    const pm = new PhysMem();
    pm.addSections(0, 2 * S, 0);
    pm.addSections(2 * S, 2 * S, 1);
    for (const [start, nid] of [[0, 0], [S, 0], [2 * S, 1], [3 * S, 1]] as const) {
      pm.moveRangeToZone(start, S, nid, 'Normal', { isolate: true });
      pm.onlinePagesRange(start, S);
      pm.adjustPresentPages(start, S);
      pm.undoIsolateRange(start, S, 'Movable');
    }
    const sab = (bytes: number): SharedArrayBuffer => new SharedArrayBuffer(bytes);
    const buffers = { pfns: sab(8 * N), orig: sab(8 * N), mask: sab(2), ctl: sab(4) };
    const pfns = new Float64Array(buffers.pfns);
    const orig = new Float64Array(buffers.orig);
    const mask = new Uint8Array(buffers.mask);
    const refill = (): void => {
      const got = pm.alloc({ count: N, nid: 0 });
      assert.equal(got.length, N);
      orig.set(got);
      pfns.set(got);
    };
    refill();
    const worker = new Worker(MUTATOR, { eval: true, workerData: buffers });
    await new Promise((resolve) => worker.once('message', resolve));
    const outcomes = { ok: 0, einval: 0 };
    try {
      for (let round = 0; round < 150; round++) {
        for (const call of [() => pm.pin(pfns), () => pm.unpin(pfns), () => pm.free(pfns)]) {
          try {
            call();
            outcomes.ok++;
          } catch (e) {
            assert.ok(e instanceof KernelError && e.code === 'EINVAL', String(e));
            outcomes.einval++;
          }
        }
        // Whatever happened, no page of the batch may be left half pinned or half freed.
        if (pm.zoneInfo(0, 'Normal')!.allocated.movable + pm.zoneInfo(0, 'Normal')!.allocated.pinned < N) {
          pm.free(orig.filter((p) => pm.pageState(p).state !== 'free'));
          refill();
        }
        if (round % 10 === 0) {
          pm.alloc({ count: 256, nid: 1, thisNode: true });
          pm.isolateRange(2 * S, S, 'Movable');
          pm.raw.migrateRange(2 * S, S, mask);
          pm.undoIsolateRange(2 * S, S, 'Movable');
          assert.deepEqual(pm.checkInvariants(), []);
        }
      }
    } finally {
      Atomics.store(new Int32Array(buffers.ctl), 0, 1);
      await worker.terminate();
    }
    assert.deepEqual(pm.checkInvariants(), []);
    assert.ok(outcomes.einval > 0, 'the mutator made some calls fail');
    assert.ok(outcomes.ok > 0, 'and some calls pass validation and run');
  });
});
