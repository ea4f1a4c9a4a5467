/**
 * One error vocabulary (lib/errors.ts): `code` is the errno name on every error that carries one,
 * `KernelError(code, message, {details, cause})`, and `instanceof` holds for errors made by a second
 * copy of memhp (here: the same modules imported again under another URL, as two installed versions or
 * a native addon registered by the other copy would make them).
 */
import assert from 'node:assert/strict';
import { KernelError, MemhpError } from '../../lib/errors.js';
import { HotplugError, QmpError } from '../../lib/qmp/errors.js';
import { PhysMem } from '../../lib/native/physmem.js';

type ErrorsModule = typeof import('../../lib/errors.js');

describe('errors: one vocabulary', () => {
  it('KernelError takes details and a cause; fromErrno takes the same options', () => {
    const cause = new Error('guest said no');
    const e = new KernelError('EBUSY', 'memory40: busy', { details: { pfn: 0x148200, ostStatus: 0x82 }, cause });
    assert.equal(e.code, 'EBUSY');
    assert.equal(e.errno, 16);
    assert.equal(e.pfn, 0x148200);
    assert.deepEqual(e.details, { pfn: 0x148200, ostStatus: 0x82 });
    assert.equal(e.cause, cause);
    const f = KernelError.fromErrno(-4, 'signal backoff', { details: { pfn: 7 } });
    assert.equal(f.code, 'EINTR');
    assert.equal(f.pfn, 7);
    assert.ok(!('cause' in f), 'no cause unless given');
  });

  it('code is the errno name on HotplugError too', () => {
    const e = new HotplugError('ID_IN_USE', "device id 'd1' is already in use");
    assert.equal(e.code, 'EEXIST');
  });

  it('the native addon throws KernelError with its details', () => {
    const pm = new PhysMem();
    assert.throws(
      () => pm.onlinePagesRange(1, 1),
      (e: unknown) => e instanceof KernelError && e instanceof MemhpError && typeof e.code === 'string' && e.errno > 0,
    );
  });

  it('instanceof holds across two copies of memhp, by class and along the class chain, and not across classes', async () => {
    const url = new URL('../../lib/errors.js', import.meta.url).href;
    const other = (await import(`${url}?copy=2`)) as ErrorsModule;
    assert.notEqual(other.KernelError, KernelError, 'a second copy');
    const theirs = new other.KernelError('ENOSPC', 'no room');
    assert.ok(theirs instanceof KernelError);
    assert.ok(theirs instanceof MemhpError);
    assert.ok(theirs instanceof Error);
    assert.ok(!(theirs instanceof QmpError));
    const ours = new KernelError('EIO', 'x');
    assert.ok(ours instanceof other.KernelError && ours instanceof other.MemhpError);
    assert.ok(!(new Error('plain') instanceof KernelError));
    assert.ok(!({ name: 'KernelError', code: 'EIO' } instanceof KernelError), 'a look-alike object is not one');
    assert.ok(!(new other.MemhpError('base') instanceof KernelError), 'a base class is not its subclass');
  });
});
