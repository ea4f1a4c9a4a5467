/**
 * Pins the buddy allocator's choices: which pfns a seeded mixed sequence of bulk allocations and
 * scrambled frees gets back is observable in the model (the kernel's buddy order), so any change to the
 * free lists, the merge path or the N-API layer must leave this digest alone. The expected digests were
 * recorded with the allocator before its hot paths were rewritten (issue 15 item 5).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { KernelError } from '../../lib/errors.js';
import { PhysMem, PAGES_PER_SECTION as S, type PageKind, type ZoneType } from '../../lib/native/physmem.js';
import { prng } from '../../bench/mixed.js';

function online(pm: PhysMem, start: number, nr: number, nid: number, zone: ZoneType): void {
  pm.moveRangeToZone(start, nr, nid, zone, { isolate: true });
  pm.onlinePagesRange(start, nr);
  pm.adjustPresentPages(start, nr);
  pm.undoIsolateRange(start, nr, 'Movable');
}


/**
 * `steps` calls on a two-node machine (Normal + Movable on node 0, Normal on node 1): allocations of
 * 1..`maxBatch` blocks of order 0..3 (sometimes 9) of every kind, frees of random live blocks in the
 * order picked. Occupancy swings up to out-of-memory, so fallbacks, stealing and other nodes are hit.
 * Returns a digest of every pfn handed out, of the free areas afterwards, and the invariant report.
 */
function run(seed: number, steps: number, maxBatch: number): string {
  const pm = new PhysMem();
  pm.addSections(0, 6 * S, 0);
  pm.addSections(6 * S, 2 * S, 1);
  online(pm, 0, 4 * S, 0, 'Normal');
  online(pm, 4 * S, 2 * S, 0, 'Movable');
  online(pm, 6 * S, 2 * S, 1, 'Normal');
  const rand = prng(seed);
  const kinds: PageKind[] = ['movable', 'movable', 'unmovable', 'reclaimable'];
  const h = createHash('sha256');
  let live: number[] = [];
  for (let i = 0; i < steps; i++) {
    const phase = Math.floor(i / 200) % 2; // 200 steps filling, 200 draining
    if (live.length === 0 || rand() < (phase === 0 ? 0.7 : 0.3)) {
      const order = rand() < 0.05 ? 9 : Math.floor(rand() * 4);
      const kind = kinds[Math.floor(rand() * kinds.length)]!;
      const nid = rand() < 0.2 ? 1 : 0;
      const got = pm.alloc({ count: 1 + Math.floor(rand() * maxBatch), order, kind, nid });
      h.update(`a${order}${kind}${nid}:`).update(new Uint8Array(got.buffer, got.byteOffset, got.byteLength));
      live.push(...got);
    } else {
      const k = 1 + Math.floor(rand() * Math.min(maxBatch, live.length));
      const out: number[] = [];
      for (let j = 0; j < k; j++) {
        const x = Math.floor(rand() * live.length);
        out.push(live[x]!);
        live[x] = live[live.length - 1]!;
        live.pop();
      }
      pm.free(out);
      h.update(`f${k}`);
    }
  }
  for (const [nid, zone] of [[0, 'Normal'], [0, 'Movable'], [1, 'Normal']] as const) h.update(JSON.stringify(pm.zoneInfo(nid, zone)));
  const bad = pm.checkInvariants();
  assert.deepEqual(bad, []);
  live = [];
  return h.digest('hex').slice(0, 16);
}

describe('allocator sequence (buddy order pinned)', () => {
  it('a seeded mixed alloc/free sequence returns the same pfns as the reference allocator', () => {
    assert.equal(run(1, 2000, 512), '0f87366d0318ba4b');
    assert.equal(run(7, 3000, 64), 'a1b4fd6d585cff1c');
  });

  it('a bulk free refuses its first bad element, in array order, and frees nothing', () => {
    const pm = new PhysMem();
    pm.addSections(0, S, 0);
    online(pm, 0, S, 0, 'Normal');
    const got = pm.alloc({ count: 40 });
    const refuses = (pfns: number[], text: RegExp): void => {
      assert.throws(() => pm.free(pfns), (e: unknown) => e instanceof KernelError && e.code === 'EINVAL' && text.test(e.message));
    };
    refuses([got[0]!, 64 * S, Number.NaN], /is not present/);
    refuses([got[1]!, Number.NaN, 64 * S], /is not a valid page frame number/);
    refuses([...got.subarray(0, 30), got[0]! + 0.5], /is not a valid page frame number/);
    assert.equal(pm.zoneInfo(0, 'Normal')!.allocated.movable, 40);
    // A pfn listed twice is found in the second pass, after the blocks before it were freed.
    refuses([got[2]!, got[2]!], /freed twice in one call \(1 blocks/);
    assert.equal(pm.zoneInfo(0, 'Normal')!.allocated.movable, 39);
    pm.free(got.filter((p) => p !== got[2]));
    assert.deepEqual(pm.checkInvariants(), []);
  });
});
