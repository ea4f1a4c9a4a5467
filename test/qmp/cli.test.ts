import assert from 'node:assert/strict';
import { EXIT, runQmp } from '../../lib/cli/qmp.js';
import type { QmpClient } from '../../lib/qmp/client.js';
import { QemuFixture } from './qemu-fixture.js';

/** Run `memhp qmp --socket S ...args`, capturing output. */
async function cli(socket: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runQmp(['--socket', socket, ...args], { stdout: (t) => void (out += t), stderr: (t) => void (err += t) });
  return { code, out, err };
}

describe('memhp qmp (CLI) on a paused QEMU', function () {
  this.timeout(60_000);
  let qemu: QemuFixture;
  let sock: string;
  let side: QmpClient; // the second monitor, for the test's own commands while the CLI holds the first

  before(async () => {
    qemu = await QemuFixture.start({ monitors: 2 });
    sock = qemu.qmpPath;
    side = await qemu.connect(1);
  });
  after(async () => {
    await side?.close();
    await qemu?.stop();
  });

  it('lists nothing on a fresh machine', async () => {
    assert.deepEqual(await cli(sock, 'list'), { code: EXIT.OK, out: '', err: '' });
    const r = await cli(sock, '--json', 'list');
    assert.deepEqual(JSON.parse(r.out), []);
  });

  it('--dry-run prints the QMP it would send and sends nothing', async () => {
    const r = await cli(sock, '--dry-run', 'plug', '--size', '256M', '--node', '1', '--id', 'x');
    assert.equal(r.code, EXIT.OK);
    assert.deepEqual(r.out.trim().split('\n').map((l) => JSON.parse(l)), [
      { execute: 'object-add', arguments: { 'qom-type': 'memory-backend-ram', id: 'mem-x', size: 256 * 2 ** 20 } },
      { execute: 'device_add', arguments: { driver: 'pc-dimm', id: 'x', memdev: 'mem-x', node: 1 } },
    ]);
    assert.deepEqual(await side.execute('query-memory-devices'), []);
  });

  it('plugs, lists, and reports a partial success with 64', async () => {
    const r = await cli(sock, 'plug', '--size', '256M', '--node', '1');
    assert.equal(r.code, EXIT.OK, r.err);
    assert.match(r.out, /^plugged dimm0\tdimm\t0x100000000\t256 MiB\tnode 1\tslot 0\n$/);
    const p = await cli(sock, '--json', 'plug', '--size', '128M', '--id', 'a', '--id', 'dimm0');
    assert.equal(p.code, EXIT.PARTIAL);
    const outcomes = JSON.parse(p.out) as { id: string; ok: boolean; error?: { check: string } }[];
    assert.deepEqual(outcomes.map((o) => [o.id, o.ok, o.error?.check]), [['a', true, undefined], ['dimm0', false, 'ID_IN_USE']]);
    assert.match(p.err, /device id dimm0 is already in use/);
    const l = await cli(sock, 'list');
    assert.equal(l.out.trim().split('\n').length, 2);
  });

  it('fails with 1 on a refused check, a guest that never answers, or a missing device', async () => {
    const u = await cli(sock, 'plug', '--size', '100M');
    assert.equal(u.code, EXIT.FAILURE);
    assert.match(u.err, /block size 128 MiB/);
    const t = await cli(sock, '--json', '--timeout', '300', 'unplug', 'a');
    assert.equal(t.code, EXIT.FAILURE);
    assert.equal((JSON.parse(t.out) as { error: { name: string } }[])[0]?.error.name, 'HotplugTimeoutError');
    assert.equal((await cli(sock, 'unplug', 'nope')).code, EXIT.FAILURE);
    const d = await cli(sock, '--dry-run', 'unplug', 'dimm0');
    assert.deepEqual(d.out.trim().split('\n').map((l) => JSON.parse(l)), [
      { execute: 'device_del', arguments: { id: 'dimm0' } },
      { execute: 'object-del', arguments: { id: 'mem-dimm0' } },
    ]);
  });

  it('adds virtio-mem and fails a resize that cannot converge without a guest', async () => {
    const a = await cli(sock, 'plug', '--virtio-mem', '--size', '1G', '--node', '1');
    assert.equal(a.code, EXIT.OK, a.err);
    assert.match(a.out, /^added vmem0\tvirtio-mem\t/);
    const d = await cli(sock, '--dry-run', 'resize', 'vmem0', '128M');
    assert.deepEqual(JSON.parse(d.out), { execute: 'qom-set', arguments: { path: '/machine/peripheral/vmem0', property: 'requested-size', value: 128 * 2 ** 20 } });
    const r = await cli(sock, '--timeout', '300', 'resize', 'vmem0', '128M');
    assert.equal(r.code, EXIT.FAILURE);
    assert.match(r.err, /plugged 0 B of 128 MiB requested/);
  });

  it('prints events as they come', async () => {
    const run = cli(sock, '--json', '--timeout', '10000', 'events', 'RESUME', 'STOP', '--count', '2');
    await new Promise((r) => setTimeout(r, 300)); // let the CLI connect and subscribe
    await side.execute('cont');
    await side.execute('stop');
    const r = await run;
    assert.equal(r.code, EXIT.OK, r.err);
    assert.deepEqual(r.out.trim().split('\n').map((l) => (JSON.parse(l) as { event: string }).event), ['RESUME', 'STOP']);
    const quiet = await cli(sock, '--timeout', '100', 'events');
    assert.deepEqual(quiet, { code: EXIT.OK, out: '', err: '' });
  });

  it('exits 2 on usage errors, 1 on an unreachable socket, 0 on --help', async () => {
    assert.equal((await runQmp(['list'], { stdout: () => undefined, stderr: () => undefined })), EXIT.TROUBLE);
    assert.equal((await cli(sock, 'plug')).code, EXIT.TROUBLE); // --size missing
    const c = await cli(`${qemu.dir}/nope.sock`, 'list');
    assert.equal(c.code, EXIT.FAILURE);
    assert.match(c.err, /cannot connect/);
    let help = '';
    assert.equal(await runQmp(['--help'], { stdout: (t) => void (help += t), stderr: () => undefined }), EXIT.OK);
    assert.match(help, /plug/);
  });
});
