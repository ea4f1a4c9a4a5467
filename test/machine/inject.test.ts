/**
 * memory-notifier-error-inject on the simulated kernel (docs/kernel-behaviour.md#error-injection,
 * docs/kernel-behaviour.md#notifier-event-sequences): the debugfs `error` files' parsing and clamping, module load/unload, the injector's place in the
 * chain by priority, the event sequence of a vetoed online and offline per profile, and the failures that
 * happen before the chain is called (no injection message, no event).
 */
import assert from 'node:assert/strict';
import { KernelError } from '../../lib/errors.js';
import { Machine } from '../../lib/kernel/machine.js';
import { NOTIFY_OK } from '../../lib/kernel/notifier.js';
import { getProfile, type KernelVersion } from '../../lib/kernel/profile.js';
import type { TraceRecord } from '../../lib/kernel/trace.js';

const M = '/sys/devices/system/memory';
const DEBUG = '/sys/kernel/debug/notifier-error-inject';
const ACTIONS = `${DEBUG}/memory/actions`;
const ON = `${ACTIONS}/MEM_GOING_ONLINE/error`;
const OFF = `${ACTIONS}/MEM_GOING_OFFLINE/error`;
const PROFILES: readonly KernelVersion[] = ['5.10', '6.1', '6.12', '7.2', '7.3'];
/** The first DIMM of a 512M pc machine lands at 4 GiB: memory32, pfn 0x100000. */
const DIMM_PFN = 0x100000;
const BLOCK = 0x8000;

function code(e: unknown): string {
  return e instanceof KernelError ? e.code : `not a KernelError: ${String(e)}`;
}

/** Resolve to the errno code a promise rejects with, or 'ok'. */
function outcome(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'ok',
    (e: unknown) => code(e),
  );
}

/** Notifier records after `mark`, as `chain:ACTION` plus their payload fields. */
function notifies(m: Machine, mark = 0): { seq: string[]; payloads: Record<string, unknown>[] } {
  const recs = m.trace.events().slice(mark).filter((r): r is TraceRecord => r.type === 'notify');
  return {
    seq: recs.map((r) => `${String(r.chain)}:${String(r.action)}`),
    payloads: recs.map(({ type, chain, action, value, ...payload }) => (void type, void chain, void action, void value, payload)),
  };
}

function injections(m: Machine): string[] {
  return m.dmesg.filter((l) => l.startsWith('Injecting error'));
}

async function injector(kernel: KernelVersion = '6.12', priority = 0): Promise<Machine> {
  const m = await Machine.create({ kernel, memory: '512M', bootAllocations: false });
  await m.loadModule('memory-notifier-error-inject', { priority });
  return m;
}

describe('memory-notifier-error-inject: the error files (docs/kernel-behaviour.md#error-injection)', () => {
  it('read 0 after load; -12 reads back; 12 clamps to 0, -5000 to -4095; mode 0600; only the two GOING actions', async () => {
    const m = await injector();
    assert.deepEqual(await m.sysfs.list(ACTIONS), ['MEM_GOING_OFFLINE', 'MEM_GOING_ONLINE']);
    assert.deepEqual(await m.sysfs.list(`${ACTIONS}/MEM_GOING_ONLINE`), ['error']);
    const node = m.sysfs.lookup(ON).node;
    assert.equal(node.kind === 'file' && node.mode, 0o600);
    for (const f of [ON, OFF]) assert.equal(await m.sysfs.read(f), '0\n');
    const cases: [string, string][] = [
      ['-12\n', '-12\n'],
      ['12\n', '0\n'],
      ['-5000\n', '-4095\n'],
      ['-4095', '-4095\n'],
      ['-4096', '-4095\n'],
      ['-1', '-1\n'],
      ['0', '0\n'],
      ['1', '0\n'],
    ];
    for (const [write, read] of cases) {
      await m.sysfs.write(ON, write);
      assert.equal(await m.sysfs.read(ON), read, `after writing ${JSON.stringify(write)}`);
    }
    // The two files are independent.
    await m.sysfs.write(OFF, '-16');
    assert.equal(await m.sysfs.read(ON), '0\n');
    assert.equal(await m.sysfs.read(OFF), '-16\n');
  });

  it('non-numbers → EINVAL and the old value stays (kstrtoll: optional sign, one trailing newline, nothing else)', async () => {
    const m = await injector();
    await m.sysfs.write(ON, '-12');
    for (const bad of ['abc', 'abc\n', '-12abc', ' -12', '-12 ', '-12\n\n', '--12', '+-12', '-+12', '-', '+', '0x', '-0x', '08', '-09', '1e3', '-12.0', '\n']) {
      assert.equal(await outcome(m.sysfs.write(ON, bad)), 'EINVAL', `writing ${JSON.stringify(bad)}`);
      assert.equal(await m.sysfs.read(ON), '-12\n', `after writing ${JSON.stringify(bad)}`);
    }
  });

  it('kstrtoll base 0: hex (0x/0X) and octal (leading 0), + and - signs', async () => {
    const m = await injector();
    const cases: [string, string][] = [
      ['-0x10\n', '-16\n'],
      ['-0X1f', '-31\n'],
      ['-010', '-8\n'],
      ['-00', '0\n'],
      ['-0', '0\n'],
      ['+0', '0\n'],
      ['0x10', '0\n'],
      ['-0xfff', '-4095\n'],
      ['-0x1000', '-4095\n'],
      ['-014', '-12\n'],
      ['+12', '0\n'],
    ];
    for (const [write, read] of cases) {
      await m.sysfs.write(ON, write);
      assert.equal(await m.sysfs.read(ON), read, `after writing ${JSON.stringify(write)}`);
    }
  });

  it('ERANGE beyond a signed 64-bit value, and the old value stays', async () => {
    const m = await injector();
    await m.sysfs.write(OFF, '-7');
    for (const big of ['9223372036854775808', '-9223372036854775809', '18446744073709551615', '18446744073709551616', '-18446744073709551615', '0x10000000000000000', '-0x8000000000000001']) {
      assert.equal(await outcome(m.sysfs.write(OFF, big)), 'ERANGE', `writing ${big}`);
      assert.equal(await m.sysfs.read(OFF), '-7\n', `after writing ${big}`);
    }
    // The extremes that fit are accepted, then truncated to int: LLONG_MAX is 0x7fffffffffffffff, (int) -1.
    await m.sysfs.write(OFF, '9223372036854775807');
    assert.equal(await m.sysfs.read(OFF), '-1\n');
  });

  it('clamp_t(int, val, -4095, 0): the 64-bit value is truncated to int before clamping', async () => {
    const m = await injector();
    const cases: [string, string][] = [
      ['4294967284', '-12\n'], // 0xfffffff4: (int) -12
      ['0x1fffffff4', '-12\n'], // the high bits are dropped
      ['-4294967296', '0\n'], // -2^32: low 32 bits 0
      ['-4294967308', '-12\n'], // -2^32 - 12
      ['2147483648', '-4095\n'], // (int) INT_MIN, clamped up
      ['-2147483649', '0\n'], // (int) INT_MAX, clamped down
      ['-9223372036854775808', '0\n'], // LLONG_MIN: low 32 bits 0
      ['4294963201', '-4095\n'], // (int) -4095
    ];
    for (const [write, read] of cases) {
      await m.sysfs.write(ON, '-3');
      await m.sysfs.write(ON, write);
      assert.equal(await m.sysfs.read(ON), read, `after writing ${write}`);
    }
  });

  it('simple_attr_write parses at most 23 bytes (set_buf[24]) and claims the whole write', async () => {
    const m = await injector();
    const fits = '-' + '0'.repeat(20) + '12'; // 23 bytes: octal 012 = 10
    await m.sysfs.write(ON, fits);
    assert.equal(await m.sysfs.read(ON), '-10\n');
    const cut = '-' + '0'.repeat(21) + '14'; // 24 bytes: only "-000…01" is parsed
    await m.sysfs.write(ON, cut);
    assert.equal(await m.sysfs.read(ON), '-1\n');
    // Trailing spaces beyond byte 23 are never seen, but those within it are: EINVAL.
    assert.equal(await outcome(m.sysfs.write(ON, '-12' + ' '.repeat(30))), 'EINVAL');
    assert.equal(await m.sysfs.read(ON), '-1\n');
  });
});

describe('memory-notifier-error-inject: load and unload (docs/kernel-behaviour.md#error-injection)', () => {
  it('files appear and disappear; EEXIST on a second load; notifier-error-inject is a dependency (EAGAIN while in use)', async () => {
    const m = await Machine.create({ kernel: '7.2', memory: '512M', bootAllocations: false });
    assert.equal(await outcome(m.sysfs.list(DEBUG)), 'ENOENT');
    assert.equal(m.memoryNotifier.blocks.length, 0);
    await m.loadModule('memory-notifier-error-inject');
    assert.deepEqual(await m.sysfs.list(DEBUG), ['memory']);
    assert.deepEqual([...m.modules.keys()].sort(), ['memory_notifier_error_inject', 'notifier_error_inject']);
    assert.equal(m.memoryNotifier.blocks.length, 1);
    assert.equal(await outcome(m.loadModule('memory-notifier-error-inject')), 'EEXIST');
    assert.equal(await outcome(m.loadModule('memory_notifier_error_inject')), 'EEXIST', 'modules are one name with - or _');
    assert.equal(m.memoryNotifier.blocks.length, 1, 'a refused second load registers nothing');
    assert.equal(await outcome(m.unloadModule('notifier-error-inject')), 'EAGAIN');
    assert.equal(await m.sysfs.read(ON), '0\n');
    await m.sysfs.write(ON, '-12');
    await m.unloadModule('memory-notifier-error-inject');
    assert.equal(await outcome(m.sysfs.read(ON)), 'ENOENT');
    assert.deepEqual(await m.sysfs.list(DEBUG), [], 'notifier-error-inject keeps its directory');
    assert.equal(m.memoryNotifier.blocks.length, 0);
    assert.equal(await outcome(m.unloadModule('memory-notifier-error-inject')), 'ENOENT');
    await m.unloadModule('notifier-error-inject');
    assert.equal(await outcome(m.sysfs.list(DEBUG)), 'ENOENT');
    assert.equal(await outcome(m.unloadModule('notifier-error-inject')), 'ENOENT');
    // A fresh load starts from zero, and with the dependency already there it is not loaded twice.
    await m.loadModule('notifier-error-inject');
    await m.loadModule('memory-notifier-error-inject');
    assert.equal(await m.sysfs.read(ON), '0\n');
    assert.equal(await outcome(m.loadModule('no-such-module')), 'ENOENT');
  });

  it('an unloaded injector vetoes nothing, even with an error stored when it went', async () => {
    const m = await injector('6.1');
    await m.sysfs.write(`${M}/memory1/state`, 'offline');
    await m.sysfs.write(ON, '-12');
    assert.equal(await outcome(m.sysfs.write(`${M}/memory1/state`, 'online')), 'ENOMEM');
    await m.unloadModule('memory-notifier-error-inject');
    await m.sysfs.write(`${M}/memory1/state`, 'online');
    assert.equal(await m.sysfs.read(`${M}/memory1/state`), 'online\n');
    assert.deepEqual(injections(m), ['Injecting error (-12) to MEM_GOING_ONLINE']);
  });

  it('the priority parameter: kstrtoint base 0 (a string or number), a bad value → EINVAL and no injector', async () => {
    const m = await Machine.create({ kernel: '6.12', memory: '512M', bootAllocations: false });
    await m.loadModule('memory-notifier-error-inject', { priority: '0x10' });
    assert.equal(m.memoryNotifier.blocks[0]!.priority, 16);
    await m.unloadModule('memory-notifier-error-inject');
    await m.loadModule('memory-notifier-error-inject', { priority: -3 });
    assert.equal(m.memoryNotifier.blocks[0]!.priority, -3);
    await m.unloadModule('memory-notifier-error-inject');
    assert.equal(await outcome(m.loadModule('memory-notifier-error-inject', { priority: 'abc' })), 'EINVAL');
    // An int parameter out of range is kstrtoint's ERANGE, as the kernel's param_set_int returns it.
    assert.equal(await outcome(m.loadModule('memory-notifier-error-inject', { priority: '4294967296' })), 'ERANGE');
    assert.equal(m.memoryNotifier.blocks.length, 0);
    assert.equal(await outcome(m.sysfs.read(ON)), 'ENOENT');
    // modprobe loaded the dependency first; it stays loaded after the failed load.
    assert.ok(m.modules.has('notifier_error_inject'));
  });

  it('unload waits for a chain call in flight (unregister takes the chain rwsem for write), which still vetoes', async () => {
    const m = await injector('7.2');
    await m.sysfs.write(`${M}/memory2/state`, 'offline');
    await m.sysfs.write(ON, '-12');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inCall = new Promise<void>((r) => (entered = r));
    // A slow notifier above the injector: the GOING_ONLINE call is in flight while it waits.
    m.memoryNotifier.register(async (action) => {
      if (action === m.kernel.actions.MEM_GOING_ONLINE) {
        entered();
        await gate;
      }
      return NOTIFY_OK;
    }, 10);
    const online = outcome(m.sysfs.write(`${M}/memory2/state`, 'online'));
    await inCall;
    let unloaded = false;
    const unload = m.unloadModule('memory-notifier-error-inject').then(() => void (unloaded = true));
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(unloaded, false, 'unload returned while a call was in flight');
    release();
    assert.equal(await online, 'ENOMEM');
    await unload;
    assert.deepEqual(injections(m), ['Injecting error (-12) to MEM_GOING_ONLINE']);
    assert.equal(m.memoryNotifier.blocks.length, 1);
    assert.deepEqual(m.lockdep.reports, []);
  });
});

describe('memory-notifier-error-inject: its place in the chain (docs/kernel-behaviour.md#notifier-event-sequences, docs/kernel-behaviour.md#notifier-chains, docs/kernel-behaviour.md#error-injection)', () => {
  for (const kernel of PROFILES) {
    it(`${kernel}: notifiers above the injector (or equal and earlier) see GOING_x; all see CANCEL_x; numeric actions of the profile`, async () => {
      const m = await Machine.create({ kernel, memory: '512M', bootAllocations: false });
      const seen = new Map<string, number[]>();
      const logger = (name: string, prio: number) => {
        seen.set(name, []);
        m.memoryNotifier.register((action) => (seen.get(name)!.push(action), NOTIFY_OK), prio);
      };
      logger('above', 1);
      logger('equal-before', 0);
      await m.loadModule('memory-notifier-error-inject', { priority: 0 });
      logger('equal-after', 0);
      logger('below', -1);
      const a = m.kernel.actions;
      const values: Record<KernelVersion, [number, number, number, number]> = {
        '5.10': [8, 16, 2, 32],
        '6.1': [8, 16, 2, 32],
        '6.12': [a.MEM_GOING_ONLINE!, a.MEM_CANCEL_ONLINE!, a.MEM_GOING_OFFLINE!, a.MEM_CANCEL_OFFLINE!],
        '7.2': [3, 4, 1, 5],
        '7.3': [3, 4, 1, 5],
      };
      const [goingOnline, cancelOnline, goingOffline, cancelOffline] = values[kernel];
      await m.sysfs.write(OFF, '-16');
      assert.equal(await outcome(m.sysfs.write(`${M}/memory2/state`, 'offline')), 'EBUSY');
      assert.deepEqual(Object.fromEntries(seen), {
        above: [goingOffline, cancelOffline],
        'equal-before': [goingOffline, cancelOffline],
        'equal-after': [cancelOffline],
        below: [cancelOffline],
      });
      await m.sysfs.write(OFF, '0');
      await m.sysfs.write(`${M}/memory2/state`, 'offline');
      for (const l of seen.values()) l.length = 0;
      await m.sysfs.write(ON, '-12');
      assert.equal(await outcome(m.sysfs.write(`${M}/memory2/state`, 'online')), 'ENOMEM');
      const pf = kernel === '6.12' ? [a.MEM_PREPARE_ONLINE!] : [];
      const fin = kernel === '6.12' ? [a.MEM_FINISH_OFFLINE!] : [];
      // PREPARE_ONLINE and FINISH_OFFLINE pass the injector (it returns NOTIFY_OK for them).
      assert.deepEqual(Object.fromEntries(seen), {
        above: [...pf, goingOnline, cancelOnline, ...fin],
        'equal-before': [...pf, goingOnline, cancelOnline, ...fin],
        'equal-after': [...pf, cancelOnline, ...fin],
        below: [...pf, cancelOnline, ...fin],
      });
      assert.deepEqual(injections(m), ['Injecting error (-16) to MEM_GOING_OFFLINE', 'Injecting error (-12) to MEM_GOING_ONLINE']);
    });
  }

  it('the vetoed offline the same way: GOING_OFFLINE above the injector only, CANCEL_OFFLINE everywhere (6.1 numbers)', async () => {
    const m = await Machine.create({ kernel: '6.1', memory: '512M', bootAllocations: false });
    const seen: Record<string, number[]> = { above: [], below: [] };
    m.memoryNotifier.register((action) => (seen.above!.push(action), NOTIFY_OK), 7);
    m.memoryNotifier.register((action) => (seen.below!.push(action), NOTIFY_OK), 3);
    await m.loadModule('memory-notifier-error-inject', { priority: 5 });
    await m.sysfs.write(OFF, '-16');
    assert.equal(await outcome(m.sysfs.write(`${M}/memory2/state`, 'offline')), 'EBUSY');
    assert.deepEqual(seen, { above: [2, 32], below: [32] });
    assert.equal(await m.sysfs.read(`${M}/memory2/state`), 'online\n');
  });
});

describe('memory-notifier-error-inject: event sequences of a vetoed online and offline per profile (docs/kernel-behaviour.md#notifier-event-sequences, docs/kernel-behaviour.md#notifier-payloads)', () => {
  const nid = (n: number) => ({ status_change_nid_normal: n, status_change_nid: n });
  const plain = { start_pfn: DIMM_PFN, nr_pages: BLOCK };
  const second = { start_pfn: DIMM_PFN + BLOCK, nr_pages: BLOCK };
  // What a kprobe on memory_notify / node_notify records, per profile (altmap fields 0 outside PREPARE/FINISH on 6.12;
  // their status_change_nid* are uninitialised in the kernel and read as 0 on guests).
  const payload = (kernel: KernelVersion, p: typeof plain, normal: number, node: number) =>
    kernel === '5.10'
      ? { ...p, status_change_nid_normal: normal, status_change_nid_high: -1, status_change_nid: node }
      : kernel === '6.1'
      ? { ...p, status_change_nid_normal: normal, status_change_nid: node }
      : kernel === '6.12'
        ? { altmap_start_pfn: 0, altmap_nr_pages: 0, ...p, status_change_nid_normal: normal, status_change_nid: node }
        : p;
  const altmap = (p: typeof plain) => ({ altmap_start_pfn: p.start_pfn, altmap_nr_pages: 0, ...p, ...nid(0) });

  for (const kernel of PROFILES) {
    it(`${kernel}: first memory of node 1 vetoed at GOING_ONLINE, a later online vetoed, the last memory vetoed at GOING_OFFLINE`, async () => {
      const m = await Machine.create({ kernel, memory: '512M', nodes: 2, autoOnline: 'offline' });
      await m.plugDimm({ id: 'dimm1', size: '256M', node: 1 });
      await m.loadModule('memory-notifier-error-inject');
      const S = (id: number) => `${M}/memory${id}/state`;
      const expectSeq = (mark: number, want: [string, object][], what: string) => {
        const got = notifies(m, mark);
        assert.deepEqual(got.seq, want.map((w) => w[0]), what);
        assert.deepEqual(got.payloads, want.map((w) => w[1]), `${what}: payloads`);
      };
      const uevents = () => m.trace.events('uevent').length;

      // 1. online_kernel of memory32, the first memory of node 1, vetoed.
      await m.sysfs.write(ON, '-12');
      let mark = m.trace.length;
      const ue = uevents();
      assert.equal(await outcome(m.sysfs.write(S(32), 'online_kernel')), 'ENOMEM');
      const goingFirst = payload(kernel, plain, 1, 1);
      expectSeq(mark, {
        '5.10': [['memory:MEM_GOING_ONLINE', goingFirst], ['memory:MEM_CANCEL_ONLINE', goingFirst]] as [string, object][],
        '6.1': [['memory:MEM_GOING_ONLINE', goingFirst], ['memory:MEM_CANCEL_ONLINE', goingFirst]] as [string, object][],
        '6.12': [['memory:MEM_PREPARE_ONLINE', altmap(plain)], ['memory:MEM_GOING_ONLINE', goingFirst], ['memory:MEM_CANCEL_ONLINE', goingFirst], ['memory:MEM_FINISH_OFFLINE', altmap(plain)]] as [string, object][],
        '7.2': [['node:NODE_ADDING_FIRST_MEMORY', { nid: 1 }], ['memory:MEM_GOING_ONLINE', plain], ['memory:MEM_CANCEL_ONLINE', plain], ['node:NODE_CANCEL_ADDING_FIRST_MEMORY', { nid: 1 }]] as [string, object][],
        '7.3': [['node:NODE_ADDING_FIRST_MEMORY', { nid: 1 }], ['memory:MEM_GOING_ONLINE', plain], ['memory:MEM_CANCEL_ONLINE', plain], ['node:NODE_CANCEL_ADDING_FIRST_MEMORY', { nid: 1 }]] as [string, object][],
      }[kernel], 'vetoed first online');
      assert.equal(uevents(), ue, 'a failed online sends no uevent');
      assert.equal(await m.sysfs.read(S(32)), 'offline\n');
      assert.equal(await m.sysfs.read('/sys/devices/system/node/has_memory'), '0\n');
      assert.equal(await m.sysfs.read(`${M}/memory32/valid_zones`), 'Normal Movable\n', 'the vetoed range left the zone again');

      // 2. With memory32 online, a vetoed online_movable of memory33 is no node's first memory.
      await m.sysfs.write(ON, '0');
      await m.sysfs.write(S(32), 'online_movable');
      await m.sysfs.write(ON, '-4095');
      mark = m.trace.length;
      assert.equal(await outcome(m.sysfs.write(S(33), 'online_movable')), 'E4095');
      const going2 = payload(kernel, second, -1, -1);
      expectSeq(mark, {
        '5.10': [['memory:MEM_GOING_ONLINE', going2], ['memory:MEM_CANCEL_ONLINE', going2]] as [string, object][],
        '6.1': [['memory:MEM_GOING_ONLINE', going2], ['memory:MEM_CANCEL_ONLINE', going2]] as [string, object][],
        '6.12': [['memory:MEM_PREPARE_ONLINE', altmap(second)], ['memory:MEM_GOING_ONLINE', going2], ['memory:MEM_CANCEL_ONLINE', going2], ['memory:MEM_FINISH_OFFLINE', altmap(second)]] as [string, object][],
        '7.2': [['memory:MEM_GOING_ONLINE', second], ['memory:MEM_CANCEL_ONLINE', second]] as [string, object][],
        '7.3': [['memory:MEM_GOING_ONLINE', second], ['memory:MEM_CANCEL_ONLINE', second]] as [string, object][],
      }[kernel], 'vetoed second online');

      // 3. Both online; a vetoed offline of memory33 (node 1 keeps memory32).
      await m.sysfs.write(ON, '0');
      await m.sysfs.write(S(33), 'online_movable');
      await m.sysfs.write(OFF, '-16');
      mark = m.trace.length;
      assert.equal(await outcome(m.sysfs.write(S(33), 'offline')), 'EBUSY');
      expectSeq(mark, [['memory:MEM_GOING_OFFLINE', going2], ['memory:MEM_CANCEL_OFFLINE', going2]], 'vetoed offline, not the last memory');
      assert.equal(await m.sysfs.read(S(33)), 'online\n');

      // 4. memory33 offline for real; then the vetoed offline of memory32, node 1's last memory.
      await m.sysfs.write(OFF, '0');
      await m.sysfs.write(S(33), 'offline');
      await m.sysfs.write(OFF, '-16');
      mark = m.trace.length;
      assert.equal(await outcome(m.sysfs.write(S(32), 'offline')), 'EBUSY');
      const last = payload(kernel, plain, -1, 1);
      expectSeq(mark, {
        '5.10': [['memory:MEM_GOING_OFFLINE', last], ['memory:MEM_CANCEL_OFFLINE', last]] as [string, object][],
        '6.1': [['memory:MEM_GOING_OFFLINE', last], ['memory:MEM_CANCEL_OFFLINE', last]] as [string, object][],
        '6.12': [['memory:MEM_GOING_OFFLINE', last], ['memory:MEM_CANCEL_OFFLINE', last]] as [string, object][],
        '7.2': [['node:NODE_REMOVING_LAST_MEMORY', { nid: 1 }], ['memory:MEM_GOING_OFFLINE', plain], ['memory:MEM_CANCEL_OFFLINE', plain], ['node:NODE_CANCEL_REMOVING_LAST_MEMORY', { nid: 1 }]] as [string, object][],
        '7.3': [['node:NODE_REMOVING_LAST_MEMORY', { nid: 1 }], ['memory:MEM_GOING_OFFLINE', plain], ['memory:MEM_CANCEL_OFFLINE', plain], ['node:NODE_CANCEL_REMOVING_LAST_MEMORY', { nid: 1 }]] as [string, object][],
      }[kernel], 'vetoed offline of the last memory');
      assert.equal(await m.sysfs.read(S(32)), 'online\n');
      assert.equal(await m.sysfs.read('/sys/devices/system/node/has_memory'), '0-1\n');
      assert.deepEqual(injections(m), [
        'Injecting error (-12) to MEM_GOING_ONLINE',
        'Injecting error (-4095) to MEM_GOING_ONLINE',
        'Injecting error (-16) to MEM_GOING_OFFLINE',
        'Injecting error (-16) to MEM_GOING_OFFLINE',
      ]);

      // 5. Without the injector the same offline goes through: the veto was the only obstacle.
      await m.unloadModule('memory-notifier-error-inject');
      await m.sysfs.write(S(32), 'offline');
      assert.equal(await m.sysfs.read('/sys/devices/system/node/has_memory'), '0\n');
      assert.deepEqual(m.checkInvariants(), []);
      assert.deepEqual(m.lockdep.reports, []);
    });
  }
});

describe('memory-notifier-error-inject: failures before the chain is called (docs/kernel-behaviour.md#notifier-event-sequences, docs/kernel-behaviour.md#error-injection)', () => {
  for (const kernel of PROFILES) {
    it(`${kernel}: zone==NULL, holes, isolation EBUSY, already-in-state and bad strings keep their errno: no injection, no event`, async () => {
      const m = await Machine.create({ kernel, memory: '4G' });
      await m.loadModule('memory-notifier-error-inject');
      await m.sysfs.write(ON, '-12');
      await m.sysfs.write(OFF, '-12');
      const mark = m.trace.length;
      const S = (id: number) => `${M}/memory${id}/state`;
      assert.equal(await outcome(m.sysfs.write(S(0), 'offline')), 'EINVAL', 'memory0 spans DMA and DMA32');
      assert.equal(await outcome(m.sysfs.write(S(23), 'offline')), 'EINVAL', 'memory23 has holes');
      assert.equal(await outcome(m.sysfs.write(S(32), 'offline')), 'EBUSY', 'memory32 holds kernel allocations');
      assert.equal(await outcome(m.sysfs.write(S(39), 'offline')), 'EBUSY', 'memory39 holds kernel allocations');
      assert.equal(await outcome(m.sysfs.write(S(1), 'online')), 'EINVAL', 'already online');
      assert.equal(await outcome(m.sysfs.write(S(1), 'online_movable')), 'EINVAL', 'already online');
      assert.equal(await outcome(m.sysfs.write(S(1), 'offlin')), 'EINVAL');
      await m.sysfs.write(`${M}/memory1/online`, '1'); // already online: success, nothing called
      assert.deepEqual(notifies(m, mark).seq, []);
      assert.deepEqual(m.trace.events().slice(mark), []);
      assert.deepEqual(injections(m), []);
      // The contrast: an offlinable block reaches the chain and gets the injected errno.
      assert.equal(await outcome(m.sysfs.write(S(33), 'offline')), 'ENOMEM');
      assert.deepEqual(injections(m), ['Injecting error (-12) to MEM_GOING_OFFLINE']);
      for (const id of [0, 1, 23, 32, 33, 39]) assert.equal(await m.sysfs.read(S(id)), 'online\n');
      assert.deepEqual(m.checkInvariants(), []);
    });

    const noCheck = !getProfile(kernel).hwpoisonCheck; // 5.10, 6.1
    it(`${kernel}: a block with a hwpoisoned page: ${noCheck ? 'no hwpoison check, the injector vetoes' : 'EHWPOISON before any event'}`, async () => {
      const m = await Machine.create({ kernel, memory: '4G' });
      const mem = m.blocks.get(33)!;
      let pfn = mem.startPfn;
      while (m.physmem.pageState(pfn).state !== 'free') pfn++;
      m.hwpoison(pfn);
      await m.sysfs.write(`${M}/memory33/state`, 'offline'); // a hwpoisoned page does not stop an offline
      await m.loadModule('memory-notifier-error-inject');
      await m.sysfs.write(ON, '-12');
      const mark = m.trace.length;
      const r = await outcome(m.sysfs.write(`${M}/memory33/state`, 'online'));
      if (noCheck) {
        assert.equal(r, 'ENOMEM');
        assert.deepEqual(notifies(m, mark).seq, ['memory:MEM_GOING_ONLINE', 'memory:MEM_CANCEL_ONLINE']);
        assert.deepEqual(injections(m), ['Injecting error (-12) to MEM_GOING_ONLINE']);
      } else {
        assert.equal(r, 'EHWPOISON');
        assert.deepEqual(m.trace.events().slice(mark), []);
        assert.deepEqual(injections(m), []);
      }
      assert.equal(await m.sysfs.read(`${M}/memory33/state`), 'offline\n');
    });
  }
});
