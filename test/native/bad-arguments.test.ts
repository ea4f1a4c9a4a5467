import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { KernelError } from '../../lib/errors.js';
import {
  MIGRATETYPES,
  PAGE_KINDS,
  PhysMem,
  PAGEBLOCK_NR_PAGES as PB,
  PAGES_PER_SECTION as S,
  ZONE_TYPES,
  type Migratetype,
} from '../../lib/native/physmem.js';
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
  allocPage: [0, 1],
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
 * A fuzzer of well-typed but hostile calls: random ranges of any alignment (inside, across and beyond the
 * present sections), nodes, zones, flags and pfn lists, in random order on a small two-node machine.
 * Every call must either work or throw KernelError, and the page state must stay consistent after each
 * (present pages are kept in step the way the hotplug flows do it: adjust_present_page_count after a
 * range enters or leaves a zone).
 */
describe('fuzz: hostile well-typed call sequences keep the page state consistent', function () {
  // CI runs a fixed seed; MEMHP_FUZZ_RUNS and MEMHP_FUZZ_SEED run longer or other sequences.
  const RUNS = Number(process.env.MEMHP_FUZZ_RUNS ?? 1000);
  const SEED = Number(process.env.MEMHP_FUZZ_SEED ?? 20260113);
  this.timeout(Math.max(120_000, RUNS * 100));
  const SECTIONS = 5; // 0..3 present (0-1 node 0, 2-3 node 1), 4 absent
  const pfnArb = fc.oneof(
    fc.integer({ min: 0, max: SECTIONS }).map((s) => s * S),
    fc.integer({ min: 0, max: SECTIONS * 64 - 1 }).map((b) => b * PB),
    fc.integer({ min: 0, max: SECTIONS * 32 - 1 }).map((b) => b * 1024),
    fc.integer({ min: 0, max: SECTIONS * S - 1 }),
    fc.integer({ min: 0, max: 63 }).map((b) => 3 * S + b * PB), // the section that is in no zone yet
    fc.integer({ min: 0, max: 4 * PB - 1 }).map((p) => 3 * S + p), // … and ranges sharing its first pageblocks
  );
  const nrArb = fc.oneof(
    fc.constantFrom(S, 2 * S, PB, 1024, 1, 2, 3 * PB),
    fc.integer({ min: 1, max: 8 }).map((n) => n * PB),
    fc.integer({ min: 1, max: 2 * S }),
    fc.integer({ min: 1, max: 2 * PB }),
  );
  const mtArb = fc.constantFrom<Migratetype | 'keep'>(...MIGRATETYPES, 'keep');
  const rangeOps = ['removeSections', 'online', 'markOnline', 'isolate', 'undo', 'migrate', 'offline', 'remove', 'read', 'hotremove'] as const;
  type Op =
    | { op: 'add'; start: number; nr: number; nid: number }
    | { op: 'move' | 'memmap' | 'hotadd'; start: number; nr: number; follow: boolean; nid: number; zone: number; reserved: boolean; isolate: boolean; mt: number }
    | { op: (typeof rangeOps)[number]; start: number; nr: number; follow: boolean; flag: boolean; mt: Migratetype | 'keep'; targets: number[] }
    | { op: 'alloc'; count: number; order: number; kind: number; nid: number; thisNode: boolean; zone: number }
    | { op: 'free' | 'pin' | 'unpin'; pick: number; n: number; junk: number }
    | { op: 'poison'; pfn: number };
  // -1: the node that owns the range's first section, so that more calls get past the node check.
  const nidArb = fc.oneof({ arbitrary: fc.constant(-1), weight: 3 }, { arbitrary: fc.integer({ min: 0, max: 2 }), weight: 1 });
  // Weighted towards the calls that change pages; `add` is nearly always refused (the sections exist).
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    { arbitrary: fc.record({ op: fc.constant('add' as const), start: pfnArb, nr: nrArb, nid: fc.integer({ min: 0, max: 3 }) }), weight: 1 },
    {
      arbitrary: fc.record({
        op: fc.constantFrom('move' as const, 'memmap' as const, 'hotadd' as const), start: pfnArb, nr: nrArb, follow: fc.boolean(), nid: nidArb,
        zone: fc.integer({ min: 0, max: 3 }), reserved: fc.boolean(), isolate: fc.boolean(), mt: fc.integer({ min: 0, max: 2 }),
      }),
      weight: 4,
    },
    { arbitrary: fc.record({ op: fc.constantFrom(...rangeOps), start: pfnArb, nr: nrArb, follow: fc.boolean(), flag: fc.boolean(), mt: mtArb, targets: fc.subarray([0, 1, 2]) }), weight: 4 },
    {
      arbitrary: fc.record({
        op: fc.constant('alloc' as const), count: fc.integer({ min: 1, max: 3000 }), order: fc.integer({ min: 0, max: 10 }),
        kind: fc.integer({ min: 0, max: PAGE_KINDS.length - 1 }), nid: fc.integer({ min: 0, max: 2 }), thisNode: fc.boolean(), zone: fc.integer({ min: -1, max: 3 }),
      }),
      weight: 3,
    },
    { arbitrary: fc.record({ op: fc.constantFrom('free' as const, 'pin' as const, 'unpin' as const), pick: fc.nat(), n: fc.integer({ min: 1, max: 300 }), junk: fc.oneof(fc.constant(-1), pfnArb) }), weight: 2 },
    { arbitrary: fc.record({ op: fc.constant('poison' as const), pfn: pfnArb }), weight: 1 },
  );

  function machine(): PhysMem {
    const pm = new PhysMem();
    pm.addSections(0, 2 * S, 0);
    pm.addSections(2 * S, 2 * S, 1);
    for (const [start, nid, zone] of [[0, 0, 'Normal'], [S, 0, 'Movable'], [2 * S, 1, 'Normal']] as const) {
      pm.moveRangeToZone(start, S, nid, zone, { isolate: true });
      pm.onlinePagesRange(start, S);
      pm.adjustPresentPages(start, S);
      pm.undoIsolateRange(start, S, 'Movable');
    }
    return pm;
  }

  /** Runs one op; a KernelError is a refusal, anything else fails the test. */
  function step(pm: PhysMem, o: Op, held: number[]): void {
    const initialised = (start: number, nr: number): number => {
      try {
        return pm.pageStates(start, nr).reduce((a, st) => a + (st === 0 ? 0 : 1), 0);
      } catch {
        return -1;
      }
    };
    switch (o.op) {
      case 'add':
        return pm.addSections(o.start, o.nr, o.nid);
      case 'move':
      case 'memmap':
        if (o.op === 'move') pm.moveRangeToZone(o.start, o.nr, o.nid, ZONE_TYPES[o.zone]!, { reserved: o.reserved, isolate: o.isolate, migratetype: MIGRATETYPES[o.mt]! });
        else pm.initMemmapOnMemory(o.start, o.nr, o.nid, ZONE_TYPES[o.zone]!);
        return pm.adjustPresentPages(o.start, o.nr);
      case 'hotadd': // online_pages' page work on a hostile range
        pm.moveRangeToZone(o.start, o.nr, o.nid, ZONE_TYPES[o.zone]!, { isolate: true, migratetype: MIGRATETYPES[o.mt]! });
        pm.adjustPresentPages(o.start, o.nr);
        pm.onlinePagesRange(o.start, o.nr, o.reserved);
        // Isolation is per pageblock: undo it over the pageblocks the range touches.
        return pm.undoIsolateRange(o.start - (o.start % PB), Math.ceil((o.start + o.nr) / PB) * PB - (o.start - (o.start % PB)), o.isolate ? 'Movable' : 'keep');
      case 'hotremove': // offline_pages' page work on a hostile range
        pm.isolateRange(o.start, o.nr, o.mt);
        if (pm.scanMovablePages(o.start, o.nr) !== null) step(pm, { ...o, op: 'migrate' }, held);
        if (pm.testPagesIsolated(o.start, o.nr) !== null) return pm.undoIsolateRange(o.start, o.nr, o.mt);
        step(pm, { ...o, op: 'offline' }, held);
        return step(pm, { ...o, op: 'remove' }, held);
      case 'removeSections':
        return pm.removeSections(o.start, o.nr);
      case 'online':
        return pm.onlinePagesRange(o.start, o.nr, o.flag);
      case 'markOnline':
        return pm.markSectionsOnline(o.start, o.nr);
      case 'isolate':
        return pm.isolateRange(o.start, o.nr, o.mt);
      case 'undo':
        return pm.undoIsolateRange(o.start, o.nr, o.mt);
      case 'migrate': {
        const r = pm.migrateRange(o.start, o.nr, o.targets);
        const moved = new Map<number, number>();
        r.from.forEach((f, i) => moved.set(f, r.to[i]!));
        for (let i = 0; i < held.length; i++) held[i] = moved.get(held[i]!) ?? held[i]!;
        return;
      }
      case 'offline':
        pm.offlineIsolatedPages(o.start, o.nr);
        return pm.adjustPresentPages(o.start, -o.nr);
      case 'remove': {
        // adjust_present_page_count comes before remove_pfn_range_from_zone; undo it if the removal is refused.
        const present = initialised(o.start, o.nr);
        let adjusted = false;
        if (present > 0) {
          try {
            pm.adjustPresentPages(o.start, -present);
            adjusted = true;
          } catch {
            /* not in a zone: the removal is refused as well */
          }
        }
        try {
          return pm.removeRangeFromZone(o.start, o.nr);
        } catch (e) {
          if (adjusted) pm.adjustPresentPages(o.start, present);
          throw e;
        }
      }
      case 'read':
        pm.testPagesIsolated(o.start, o.nr);
        pm.scanMovablePages(o.start, o.nr);
        pm.pageState(o.start);
        pm.pageblockInfo(o.start);
        return void pm.pageStates(o.start, Math.min(o.nr, 4096));
      case 'alloc':
        held.push(...pm.alloc({ count: o.count, order: o.order, kind: PAGE_KINDS[o.kind]!, nid: o.nid, thisNode: o.thisNode, ...(o.zone >= 0 ? { highestZone: ZONE_TYPES[o.zone]! } : {}) }));
        return;
      case 'free':
      case 'pin':
      case 'unpin': {
        const at = held.length ? o.pick % held.length : 0;
        const batch = held.slice(at, at + o.n);
        if (o.junk >= 0) batch.push(o.junk); // often not an allocated block head: the whole call must be refused
        pm[o.op](batch);
        if (o.op === 'free') held.splice(at, o.n);
        return;
      }
      case 'poison':
        return pm.hwpoison(o.pfn);
    }
  }

  it('every call works or throws KernelError, and checkInvariants() stays clean after each', () => {
    const outcomes = new Map<string, { ok: number; refused: number }>();
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), (ops) => {
        const pm = machine();
        const held: number[] = [];
        let lastEnd: number | undefined;
        for (const op of ops) {
          // `follow`: the range starts where the previous one ended (adjacent pieces, as at boot).
          let o = 'follow' in op && op.follow && lastEnd !== undefined ? { ...op, start: lastEnd } : op;
          if ('nid' in o && o.nid < 0 && 'start' in o) o = { ...o, nid: Math.max(0, pm.sectionInfo(o.start).nid) };
          if ('nr' in o && 'start' in o) lastEnd = o.start + o.nr;
          const tally = outcomes.get(o.op) ?? { ok: 0, refused: 0 };
          outcomes.set(o.op, tally);
          try {
            step(pm, o, held);
            tally.ok++;
          } catch (e) {
            if (!(e instanceof KernelError)) throw e;
            tally.refused++;
          }
          assert.deepEqual(pm.checkInvariants(), [], `after ${JSON.stringify(o)}`);
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
    // The fuzzer must reach the page work, not only the argument checks.
    for (const op of ['move', 'hotadd', 'isolate', 'hotremove', 'alloc', 'free', 'pin'])
      assert.ok((outcomes.get(op)?.ok ?? 0) > 0, `${op} never succeeded: ${JSON.stringify([...outcomes])}`);
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
