/**
 * A guest's owner process for test/guest/cleanup.test.ts: `node --import tsx test/guest/owner.ts MODE`.
 * Boots a 'latest' guest (snapshots on when `$MEMHP_SNAPSHOT_DIR` is set) and says on stdout what it
 * is doing, one line each: `BOOTING <pid>`, `READY <qemu pid> <path>`, `STEP <n>`, `CLOSED`.
 *
 * MODE `steps`: after the boot, run steps (plug and unplug a DIMM, read sysfs) until signalled.
 * MODE `once`: after the boot, close the guest and exit 0.
 */
import { Guest } from '../../lib/guest/guest.js';

const mode = process.argv[2];
if (mode !== 'steps' && mode !== 'once') throw new Error(`owner.ts: unknown mode ${mode}`);
const snapshotDir = process.env.MEMHP_SNAPSHOT_DIR;
console.log(`BOOTING ${process.pid}`);
const g = await Guest.boot({
  kernel: 'latest',
  nodes: 2,
  cmdline: ['memhp_default_state=online_movable'],
  prepare: { progress: false },
  ...(snapshotDir ? { snapshot: 'reuse' as const, snapshotDir } : {}),
});
console.log(`READY ${g.pid} ${g.boot.path}`);
if (mode === 'once') {
  await g.close();
  console.log('CLOSED');
} else {
  for (let n = 0; ; n++) {
    await g.plugDimm({ id: `d${n}`, size: '128M', node: 1 });
    await g.sysfs.read('/sys/devices/system/memory/block_size_bytes');
    await g.unplugDimm(`d${n}`);
    console.log(`STEP ${n}`);
  }
}
