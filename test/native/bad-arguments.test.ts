import assert from 'node:assert/strict';
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
