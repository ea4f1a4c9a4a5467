import assert from 'node:assert/strict';
import { runDemo } from '../../lib/sim/demo.js';

describe('main-job demo (npm start)', () => {
  it('boots, plugs, runs a workload, fails one offline on a pinned page, then removes the DIMM cleanly', () => {
    const lines: string[] = [];
    const pm = runDemo((l) => lines.push(l));
    const text = lines.join('\n');
    assert.match(text, /^1\s+Movable\s+0x140000\s+262144\s+262144\s+262144\s+262144\s/m, 'the DIMM is onlined Movable on node 1');
    assert.match(text, /memory47: stuck: 1 pinned/, 'the pinned page blocks its block');
    assert.match(text, /memory47: offline \(1 blocks migrated\)/, 'after unpinning it goes');
    assert.match(text, /invariants: ok/);
    assert.equal(pm.zoneInfo(1, 'Movable')!.present, 0);
    assert.equal(pm.zoneInfo(1, 'Movable')!.spanned, 0);
    // Everything the workload had on node 1 now lives on node 0's Normal zone.
    const normal = pm.zoneInfo(0, 'Normal')!;
    assert.equal(normal.allocated.movable, 40000 + 60 * 512);
  });
});
