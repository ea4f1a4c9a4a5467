/**
 * The kernel's memory-hotplug selftest (mem-on-off-test.sh, docs/kernel-behaviour.md#the-mem-on-off-selftest) replayed against the
 * simulator's sysfs on each profile: it must pass (exit 0) where a QEMU guest passes, and fail where the
 * kernel would make it fail.
 */
import assert from 'node:assert/strict';
import { KernelError } from '../../lib/errors.js';
import { Machine } from '../../lib/kernel/machine.js';
import type { KernelVersion } from '../../lib/kernel/profile.js';
import { bashRandom, memOnOffTest, type MemOnOffTarget } from './mem-on-off.js';

const PROFILES: readonly KernelVersion[] = ['6.1', '6.12', '7.2'];
const M = '/sys/devices/system/memory';

/** A 4 GiB pc guest with a 512 MiB DIMM on node 1: boot blocks that offline, some that cannot, and hot-added ones. */
async function guestLike(kernel: KernelVersion): Promise<Machine> {
  const m = await Machine.create({ kernel, memory: '4G', nodes: 2 });
  await m.plugDimm({ id: 'dimm1', size: '512M', node: 1 });
  return m;
}

async function states(m: Machine): Promise<string[]> {
  const out: string[] = [];
  for (const b of m.sortedBlocks()) out.push(`${b.name}=${(await m.sysfs.read(`${M}/${b.name}/state`)).trim()}`);
  return out;
}

describe('mem-on-off-test.sh: $RANDOM', () => {
  it('bashRandom reproduces bash 5.2 (RANDOM=42; echo $RANDOM $RANDOM $RANDOM)', () => {
    const r42 = bashRandom(42);
    assert.deepEqual([r42(), r42(), r42()], [17772, 26794, 1435]);
    const r1 = bashRandom(1);
    assert.deepEqual([r1(), r1(), r1()], [16807, 10791, 19566]);
  });
});

describe('mem-on-off-test.sh against the simulator (docs/kernel-behaviour.md#the-mem-on-off-selftest)', () => {
  // Seeds chosen so that step 7 offlines some blocks (then step 8 has offline blocks to veto) and
  // step 10 tries some offlines: the injected paths really run.
  const runs = [
    { ratio: 2, seed: 3 },
    { ratio: 10, seed: 1 },
  ];
  for (const kernel of PROFILES) {
    for (const { ratio, seed } of runs) {
      it(`${kernel}: -r ${ratio} (RANDOM=${seed}) passes, every veto was the injector's, and everything is online again`, async () => {
        const m = await guestLike(kernel);
        const { retval, log } = await memOnOffTest(m, { ratio, seed });
        assert.equal(retval, 0, log.join('\n'));
        assert.equal(log[0], `Test scope: ${ratio}% hotplug memory`);
        // Step 4: ceil(36 blocks × ratio / 100) successes, in glob order (memory0 fails first: zone NULL).
        assert.equal(m.blocks.size, 36);
        const want = Math.ceil((36 * ratio) / 100);
        const statusLines = log.filter((l) => /ONLINE -> OFFLINE/.test(l));
        assert.equal(statusLines.filter((l) => l.endsWith('[SUCCESS]')).length, want);
        // printf '\t\t%-37s   %12s\n' "ONLINE -> OFFLINE memory block (0)" "[FAILURE]", as bash prints it
        assert.equal(statusLines[0], '\t\tONLINE -> OFFLINE memory block (0)' + ' '.repeat(9) + '[FAILURE]');
        assert.match(statusLines[1]!, /\(1\).*\[SUCCESS\]$/);
        if (want > 1) assert.match(statusLines[2]!, /\(10\)/, 'glob order is byte order: memory1, memory10, …');
        // Steps 8 and 10 reached the injector, and nothing else vetoed.
        const inj = m.dmesg.filter((l) => l.startsWith('Injecting error'));
        assert.ok(inj.includes('Injecting error (-12) to MEM_GOING_ONLINE'), 'step 8 vetoed an online');
        assert.ok(inj.includes('Injecting error (-12) to MEM_GOING_OFFLINE'), 'step 10 vetoed an offline');
        assert.deepEqual([...m.modules.keys()], [], 'modprobe -r took the module and its dependency');
        assert.ok((await states(m)).every((s) => s.endsWith('=online')), 'step 12 onlined everything');
        assert.deepEqual(m.checkInvariants(), []);
        assert.deepEqual(m.lockdep.reports, []);
      });
    }
  }

  it('6.1 leaves hot-added memory offline: step 3 onlines the DIMM blocks first', async () => {
    const m = await guestLike('6.1');
    const { retval, log } = await memOnOffTest(m, { ratio: 2, seed: 3 });
    assert.equal(retval, 0, log.join('\n'));
    assert.deepEqual(log.filter((l) => l.startsWith('\t\tOFFLINE -> ONLINE')), [40, 41, 42, 43].map((n) => `\t\tOFFLINE -> ONLINE memory block (${n})`));
  });

  it('-e -16 -p 5 passes as well, and the injector ran at priority 5', async () => {
    const m = await guestLike('7.2');
    const loads: unknown[] = [];
    const target: MemOnOffTarget = {
      sysfs: m.sysfs,
      loadModule: (n, p) => (loads.push([n, p]), m.loadModule(n, p)),
      unloadModule: (n) => m.unloadModule(n),
    };
    const { retval, log } = await memOnOffTest(target, { ratio: 10, seed: 1, error: -16, priority: 5 });
    assert.equal(retval, 0, log.join('\n'));
    assert.deepEqual(loads, [['memory-notifier-error-inject', { priority: 5 }]]);
    assert.ok(m.dmesg.includes('Injecting error (-16) to MEM_GOING_ONLINE'));
  });

  it('-r 100 fails (exit 1): boot blocks in use cannot all be offlined', async () => {
    const m = await guestLike('6.12');
    const { retval, log } = await memOnOffTest(m, { ratio: 100, seed: 1 });
    assert.equal(retval, 1);
    assert.ok(log.includes('\t\t FAILED - unable to offline some memory blocks, device busy?'));
  });

  it('fails (exit 1) on a kernel whose error file rejects negative values (vanilla 6.1.0): onlines are not vetoed', async () => {
    const m = await guestLike('6.1');
    const vanilla: MemOnOffTarget = {
      loadModule: (n, p) => m.loadModule(n, p),
      unloadModule: (n) => m.unloadModule(n),
      sysfs: {
        read: (p) => m.sysfs.read(p),
        list: (p) => m.sysfs.list(p),
        walk: (r) => m.sysfs.walk(r),
        write: async (p, v) => {
          if (p.endsWith('/error') && v.startsWith('-')) throw new KernelError('EINVAL', 'simple_attr_write: kstrtoull');
          return m.sysfs.write(p, v);
        },
      },
    };
    const { retval, log } = await memOnOffTest(vanilla, { ratio: 10, seed: 1 });
    assert.equal(retval, 1);
    assert.ok(log.some((l) => /^online_memory_expect_fail \d+: unexpected success$/.test(l)), log.join('\n'));
    assert.ok(log.some((l) => /^offline_memory_expect_fail \d+: unexpected success$/.test(l)), log.join('\n'));
  });

  it('skips the injection part, with the result so far, when the module cannot be loaded', async () => {
    const m = await guestLike('7.2');
    const noModule: MemOnOffTarget = {
      sysfs: m.sysfs,
      loadModule: async (n) => {
        throw new KernelError('ENOENT', `Module ${n} not found`);
      },
      unloadModule: (n) => m.unloadModule(n),
    };
    const { retval, log } = await memOnOffTest(noModule, { ratio: 2 });
    assert.equal(retval, 0);
    assert.equal(log.at(-1), 'skip extra tests: memory-notifier-error-inject module is not available');
    assert.deepEqual(m.dmesg.filter((l) => l.startsWith('Injecting')), []);
  });

  it('option checks (exit 1) and the skip without memory blocks (exit 4)', async () => {
    const m = await guestLike('6.12');
    const mark = m.trace.length;
    assert.deepEqual(await memOnOffTest(m, { error: 0 }), { retval: 1, log: ['error code must be -4095 <= errno < 0'] });
    assert.deepEqual(await memOnOffTest(m, { error: -4096 }), { retval: 1, log: ['error code must be -4095 <= errno < 0'] });
    assert.deepEqual(await memOnOffTest(m, { ratio: 101 }), { retval: 1, log: ['The percentage should be an integer within 0~100 range'] });
    assert.deepEqual(await memOnOffTest(m, { sysfs: '/nonexistent' }), { retval: 4, log: ['skip all tests: sysfs is not mounted'] });
    assert.deepEqual(await memOnOffTest(m, { sysfs: '/proc' }), { retval: 4, log: ['skip all tests: memory hotplug is not supported'] });
    assert.equal(m.trace.length, mark, 'nothing was touched');
  });
});
