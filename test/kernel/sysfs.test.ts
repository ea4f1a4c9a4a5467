/**
 * Path resolution of the simulated pseudo filesystems against Linux's: a trailing slash or a `.` or `..`
 * after a file is ENOTDIR (link_path_walk: every component but the last must be a directory, and a
 * trailing slash makes the last one a directory lookup too), also through a symlink to a file.
 */
import assert from 'node:assert/strict';
import { KernelError } from '../../lib/errors.js';
import { Machine } from '../../lib/kernel/machine.js';
import { link, ro, rw, StaticDir, Sysfs } from '../../lib/kernel/sysfs.js';

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof KernelError, String(e));
    return e.code;
  }
  return 'ok';
}

describe('Sysfs path resolution', () => {
  let value = 'online';
  const fs = new Sysfs(
    new StaticDir({
      sys: new StaticDir({
        dev: new StaticDir({ state: rw(() => `${value}\n`, (v) => void (value = v)), id: ro(() => '7\n') }),
        'to-state': link('dev/state'),
        'to-dev': link('dev'),
      }),
    }),
  );

  it('a trailing slash, `/.` or `/..` after a file is ENOTDIR for read, write and list (issue #13 row 9)', async () => {
    for (const p of ['/sys/dev/state/', '/sys/dev/state/.', '/sys/dev/state/..', '/sys/dev/state//', '/sys/to-state/', '/sys/dev/id/']) {
      assert.equal(await code(fs.read(p)), 'ENOTDIR', `read ${p}`);
      assert.equal(await code(fs.write(p, 'offline')), 'ENOTDIR', `write ${p}`);
      assert.equal(await code(fs.list(p)), 'ENOTDIR', `list ${p}`);
      assert.equal(fs.exists(p), false, `exists ${p}`);
    }
    assert.equal(value, 'online', 'no write went through');
  });

  it('directories keep accepting a trailing slash, `.` and `..`; files without one still work', async () => {
    assert.deepEqual(await fs.list('/sys/dev/'), ['id', 'state']);
    assert.deepEqual(await fs.list('/sys/to-dev/'), ['id', 'state']);
    assert.deepEqual(await fs.list('/sys/dev/./../dev/.'), ['id', 'state']);
    assert.equal(await fs.read('/sys/dev/../dev/./state'), 'online\n');
    assert.equal(await fs.read('/sys/to-state'), 'online\n');
    assert.equal(await code(fs.read('/sys/dev/')), 'EISDIR');
    await fs.write('/sys/dev/state', 'offline');
    assert.equal(value, 'offline');
    assert.equal(fs.exists('/sys/to-state'), true);
  });

  it('on a simulated machine: memoryN/state/ is ENOTDIR, as on Linux', async () => {
    const m = await Machine.create({ memory: '512M' });
    const state = '/sys/devices/system/memory/memory0/state';
    assert.equal(await m.sysfs.read(state), 'online\n');
    assert.equal(await code(m.sysfs.read(`${state}/`)), 'ENOTDIR');
    assert.equal(await code(m.sysfs.write(`${state}/`, 'offline')), 'ENOTDIR');
    assert.equal(await m.sysfs.read(state), 'online\n');
  });
});
