import assert from 'node:assert/strict';
import { runDemo } from '../../lib/sim/demo.js';

describe('main-job demo (npm start)', () => {
  it('plugs a DIMM on node 1, onlines it Movable, refuses the eject while a page is pinned, then removes it', async function () {
    this.timeout(30_000);
    const lines: string[] = [];
    const m = await runDemo((l) => lines.push(l));
    const text = lines.join('\n');
    assert.match(text, /0x0000000140000000-0x000000017fffffff +1G online 40-47 +1 Movable/, 'lsmem shows the DIMM online Movable on node 1');
    assert.match(text, /notify {2}node:NODE_ADDING_FIRST_MEMORY\(1\) nid=1/);
    assert.match(text, /ACPI_DEVICE_OST .*"source":3,"status":130/, 'the first eject is refused with _OST 0x82');
    assert.match(text, /-> refused: EBUSY/);
    assert.match(text, /40-45 +1 +Normal/, 're-onlined blocks come back Normal under contig-zones (docs/kernel-behaviour.md#acpi-eject)');
    assert.match(text, /DEVICE_DELETED \{"device":"dimm1"/);
    assert.match(text, /invariants: ok; lock validator: 0 reports/);
    assert.equal(m.dimms.size, 0);
    assert.equal(await m.sysfs.read('/sys/devices/system/node/has_memory'), '0\n');
    assert.deepEqual(m.checkInvariants(), []);
  });
});
