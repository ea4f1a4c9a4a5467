import { strict as assert } from 'node:assert';
import { KernelError } from '../../lib/errors.js';
import {
  LATEST,
  LEGACY_PROFILES,
  PROFILES,
  decodeMemoryNotify,
  formatMemmapOnMemory,
  getProfile,
  kstrtobool,
  memoryAction,
  memoryActionName,
  memoryNotify,
  memoryNotifyLayout,
  nodeActionName,
  parseMemmapOnMemory,
  profileForRelease,
  sysfsStreq,
  type KernelProfile,
  type MemoryActionName,
} from '../../lib/kernel/profile.js';

const errno = (code: string) => (e: unknown) => e instanceof KernelError && e.code === code;

// docs/kernel-behaviour.md#notifier-action-values, one column per version.
const ACTIONS: Record<string, Partial<Record<MemoryActionName, number>>> = {
  '5.10': { MEM_ONLINE: 1, MEM_GOING_OFFLINE: 2, MEM_OFFLINE: 4, MEM_GOING_ONLINE: 8, MEM_CANCEL_ONLINE: 16, MEM_CANCEL_OFFLINE: 32 },
  '6.1': { MEM_ONLINE: 1, MEM_GOING_OFFLINE: 2, MEM_OFFLINE: 4, MEM_GOING_ONLINE: 8, MEM_CANCEL_ONLINE: 16, MEM_CANCEL_OFFLINE: 32 },
  // Debian 6.12.117 (the trixie kernel the harness boots) declares enum memory_block_state, read from
  // its BTF; the bit flags 1..128 were those of 6.12.107.
  '6.12': {
    MEM_ONLINE: 0, MEM_GOING_OFFLINE: 1, MEM_OFFLINE: 2, MEM_GOING_ONLINE: 3, MEM_CANCEL_ONLINE: 4, MEM_CANCEL_OFFLINE: 5,
    MEM_PREPARE_ONLINE: 6, MEM_FINISH_OFFLINE: 7,
  },
  '7.2': { MEM_ONLINE: 0, MEM_GOING_OFFLINE: 1, MEM_OFFLINE: 2, MEM_GOING_ONLINE: 3, MEM_CANCEL_ONLINE: 4, MEM_CANCEL_OFFLINE: 5 },
  '7.3': { MEM_ONLINE: 0, MEM_GOING_OFFLINE: 1, MEM_OFFLINE: 2, MEM_GOING_ONLINE: 3, MEM_CANCEL_ONLINE: 4, MEM_CANCEL_OFFLINE: 5 },
};

const FIELDS: Record<string, string[]> = {
  // 5.10 still carries status_change_nid_high (always NUMA_NO_NODE on x86_64, which has no highmem).
  '5.10': ['start_pfn', 'nr_pages', 'status_change_nid_normal', 'status_change_nid_high', 'status_change_nid'],
  '6.1': ['start_pfn', 'nr_pages', 'status_change_nid_normal', 'status_change_nid'],
  '6.12': ['altmap_start_pfn', 'altmap_nr_pages', 'start_pfn', 'nr_pages', 'status_change_nid_normal', 'status_change_nid'],
  '7.2': ['start_pfn', 'nr_pages'],
  '7.3': ['start_pfn', 'nr_pages'],
  'legacy-2007': ['start_pfn', 'nr_pages', 'status_change_nid'],
  'legacy-nid-high': ['start_pfn', 'nr_pages', 'status_change_nid_normal', 'status_change_nid_high', 'status_change_nid'],
};

const ALL: KernelProfile[] = [...Object.values(PROFILES), ...Object.values(LEGACY_PROFILES)];

describe('kernel/profile', () => {
  for (const p of Object.values(PROFILES) as KernelProfile[]) {
    describe(`profile ${p.name}`, () => {
      it('has the memory action values its guest kernel declares, and names them back', () => {
        assert.deepEqual({ ...p.actions }, ACTIONS[p.name]);
        for (const [name, v] of Object.entries(ACTIONS[p.name]!)) {
          assert.equal(memoryActionName(p, v), name);
          assert.equal(memoryAction(p, name as MemoryActionName), v);
        }
        assert.equal(memoryActionName(p, 999), undefined);
      });

      it('numbers actions as bit flags on 5.10 and 6.1 and as an enum on the 6.12.117 and 7.x guests', () => {
        const values = Object.values(p.actions);
        const bitflags = values.every((v) => v > 0 && (v & (v - 1)) === 0);
        assert.equal(p.actionEncoding, bitflags ? 'bitflags' : 'enum');
        assert.equal(p.actionEncoding, p.name === '5.10' || p.name === '6.1' ? 'bitflags' : 'enum');
      });

      it('has MEM_PREPARE_ONLINE / MEM_FINISH_OFFLINE exactly when it sends them', () => {
        assert.equal(p.prepareFinishEvents, 'MEM_PREPARE_ONLINE' in p.actions);
        assert.equal(p.prepareFinishEvents, 'MEM_FINISH_OFFLINE' in p.actions);
        if (!p.prepareFinishEvents) assert.throws(() => memoryAction(p, 'MEM_PREPARE_ONLINE'), errno('EINVAL'));
      });

      it('has the memory_notify fields of its version, and a node chain with {nid} only on 7.x', () => {
        assert.deepEqual([...p.memoryNotifyFields], FIELDS[p.name]);
        const has7 = p.name.startsWith('7.');
        assert.equal(p.nodeActions !== null, has7);
        assert.deepEqual(p.nodeNotifyFields, has7 ? ['nid'] : null);
        if (p.nodeActions) {
          assert.deepEqual({ ...p.nodeActions }, {
            NODE_ADDING_FIRST_MEMORY: 1, NODE_ADDED_FIRST_MEMORY: 2, NODE_CANCEL_ADDING_FIRST_MEMORY: 4,
            NODE_REMOVING_LAST_MEMORY: 8, NODE_REMOVED_LAST_MEMORY: 16, NODE_CANCEL_REMOVING_LAST_MEMORY: 32,
          });
          assert.equal(nodeActionName(p, 1), 'NODE_ADDING_FIRST_MEMORY');
          assert.equal(nodeActionName(p, 32), 'NODE_CANCEL_REMOVING_LAST_MEMORY');
        } else {
          assert.equal(nodeActionName(p, 1), undefined);
        }
      });

      it('sets node states in the version order and defaults auto-online as Debian does', () => {
        assert.deepEqual([...p.nodeStateSetOrder], p.name.startsWith('7.') ? ['N_MEMORY', 'N_NORMAL_MEMORY'] : ['N_NORMAL_MEMORY', 'N_MEMORY']);
        assert.equal(p.defaultOnlineType, p.name === '5.10' || p.name === '6.1' ? 'offline' : 'online');
        assert.equal(p.legacy, false);
      });

      it('parses kstrtobool by the first character(s), t/f and e/d only where the profile says', () => {
        for (const s of ['1', 'y', 'Y', 'yes', '1\n', 'on', 'ON', 'oN\n', 'Online']) assert.equal(kstrtobool(p, s), true, s);
        for (const s of ['0', 'n', 'N', 'no', '0\n', 'off', 'OFF', 'oF']) assert.equal(kstrtobool(p, s), false, s);
        for (const s of ['', '2', 'x', 'o', 'ox', ' 1', '\n']) assert.throws(() => kstrtobool(p, s), errno('EINVAL'), s);
        // 5.10's kstrtobool has no t/T/f/F (the 5.10.262 guest refuses `true`/`false`: online-file).
        assert.equal(p.kstrtoboolTrueFalse, p.name !== '5.10');
        for (const s of ['t', 'T', 'true\n']) p.kstrtoboolTrueFalse ? assert.equal(kstrtobool(p, s), true, s) : assert.throws(() => kstrtobool(p, s), errno('EINVAL'), s);
        for (const s of ['f', 'F', 'false']) p.kstrtoboolTrueFalse ? assert.equal(kstrtobool(p, s), false, s) : assert.throws(() => kstrtobool(p, s), errno('EINVAL'), s);
        // 6.1/6.12 do not take e/d; the 7.2.13 and 7.3.4 guests do (docs/kernel-behaviour.md#kstrtobool).
        assert.equal(p.kstrtoboolEnableDisable, p.name.startsWith('7.'));
        if (p.kstrtoboolEnableDisable) {
          assert.equal(kstrtobool(p, 'enable'), true);
          assert.equal(kstrtobool(p, 'Disable'), false);
        } else {
          assert.throws(() => kstrtobool(p, 'enable'), errno('EINVAL'));
          assert.throws(() => kstrtobool(p, 'd'), errno('EINVAL'));
        }
      });

      it('parses and prints memmap_on_memory as its kernel does', () => {
        assert.equal(parseMemmapOnMemory(p, 'Y'), true);
        assert.equal(parseMemmapOnMemory(p, '0\n'), false);
        assert.throws(() => parseMemmapOnMemory(p, 'maybe'), errno('EINVAL'));
        if (p.memmapOnMemoryForce) {
          assert.equal(parseMemmapOnMemory(p, 'force'), 'force');
          assert.equal(parseMemmapOnMemory(p, 'FORCE\n'), 'force');
          assert.equal(parseMemmapOnMemory(p, 'Force'), false); // not 'force': kstrtobool reads the 'F'
          assert.throws(() => parseMemmapOnMemory(p, null), errno('EINVAL'));
        } else if (p.memoryHotplugParams.includes('memmap_on_memory')) {
          assert.equal(parseMemmapOnMemory(p, 'force'), false); // a plain bool: kstrtobool reads the 'f'
          assert.equal(parseMemmapOnMemory(p, null), true);
        }
        assert.equal(p.memmapOnMemoryForce, p.name !== '5.10' && p.name !== '6.1');
        // 5.10 has no module parameters in mm/memory_hotplug.c at all (memmap_on_memory: 5.12, online_policy: 5.15).
        assert.deepEqual([...p.memoryHotplugParams], p.name === '5.10' ? [] : ['online_policy', 'auto_movable_ratio', 'auto_movable_numa_aware', 'memmap_on_memory']);
      });

      it('builds payloads with exactly its fields, defaults 0 and -1', () => {
        const all = { altmap_start_pfn: 0x100000, altmap_nr_pages: 512, start_pfn: 0x100200, nr_pages: 0x7e00, status_change_nid_normal: 1, status_change_nid_high: 1, status_change_nid: 1 };
        const payload = memoryNotify(p, all);
        assert.deepEqual(Object.keys(payload), FIELDS[p.name]);
        for (const k of Object.keys(payload)) assert.equal(payload[k as keyof typeof payload], all[k as keyof typeof all]);
        const sparse = memoryNotify(p, { start_pfn: 5 });
        assert.equal(sparse.start_pfn, 5);
        assert.equal(sparse.nr_pages, 0);
        if ('status_change_nid' in sparse) assert.equal(sparse.status_change_nid, -1);
      });
    });
  }

  describe('legacy profiles', () => {
    it('decode the 2007 and status_change_nid_high layouts by name', () => {
      assert.equal(getProfile('legacy-2007'), LEGACY_PROFILES['legacy-2007']);
      assert.equal(getProfile('legacy-nid-high'), LEGACY_PROFILES['legacy-nid-high']);
      for (const p of Object.values(LEGACY_PROFILES)) {
        assert.equal(p.legacy, true);
        assert.deepEqual([...p.memoryNotifyFields], FIELDS[p.name]);
        assert.deepEqual({ ...p.actions }, ACTIONS['6.1']);
        assert.equal(p.nodeActions, null);
      }
      assert.deepEqual([...LEGACY_PROFILES['legacy-2007'].nodeStateSetOrder], ['N_HIGH_MEMORY']);
    });

    it('are not simulated versions', () => {
      assert.ok(!('legacy-2007' in PROFILES));
    });
  });

  describe('struct memory_notify layout and decoding (x86_64)', () => {
    const SIZES: Record<string, number> = { '5.10': 32, '6.1': 24, '6.12': 40, '7.2': 16, '7.3': 16, 'legacy-2007': 24, 'legacy-nid-high': 32 };
    for (const p of ALL) {
      it(`${p.name}: ${SIZES[p.name]} bytes, round-trips every field`, () => {
        const { fields, size } = memoryNotifyLayout(p);
        assert.equal(size, SIZES[p.name]);
        const buf = new Uint8Array(size + 3).subarray(3); // unaligned view on purpose
        const view = new DataView(buf.buffer, buf.byteOffset);
        const expected: Record<string, number> = {};
        fields.forEach((f, i) => {
          const v = f.type === 'int' ? -1 - i : 0x140000 + i;
          expected[f.name] = v;
          if (f.type === 'int') view.setInt32(f.offset, v, true);
          else view.setBigUint64(f.offset, BigInt(v), true);
        });
        assert.deepEqual(decodeMemoryNotify(p, buf), expected);
        assert.throws(() => decodeMemoryNotify(p, buf.subarray(1)), errno('EINVAL'));
      });
    }
    it('puts the ints of 6.1 at 16 and 20', () => {
      assert.deepEqual(memoryNotifyLayout(PROFILES['6.1']).fields.map((f) => f.offset), [0, 8, 16, 20]);
    });
  });

  describe('getProfile', () => {
    it('resolves latest, release strings, releases between profiles, and rejects unknown versions', () => {
      assert.equal(getProfile(), PROFILES[LATEST]);
      assert.equal(getProfile('latest'), PROFILES['7.3']);
      assert.equal(getProfile('6.12.107+deb13-amd64'), PROFILES['6.12']);
      assert.equal(getProfile('6.1.0-37-amd64'), PROFILES['6.1']);
      assert.equal(getProfile('7.3.4+deb13-amd64'), PROFILES['7.3']);
      assert.equal(getProfile('7.3.0-rc7'), PROFILES['7.3']);
      // No profile of its own: the nearest older one.
      assert.equal(getProfile('7.4.1'), PROFILES['7.3']);
      assert.equal(getProfile('6.19.2'), PROFILES['6.12']);
      assert.equal(getProfile('6.10'), PROFILES['6.1']);
      assert.equal(getProfile('5.10.0-46-amd64'), PROFILES['5.10']);
      assert.equal(getProfile('5.15.0'), PROFILES['5.10']);
      assert.throws(() => getProfile('4.19.0-27-amd64'), errno('EINVAL'));
      assert.throws(() => getProfile('toString'), errno('EINVAL'));
    });

    it('profileForRelease says whether the release has its own profile', () => {
      assert.deepEqual(profileForRelease('7.3.4+deb13-amd64'), { profile: PROFILES['7.3'], exact: true });
      assert.deepEqual(profileForRelease('7.5.0'), { profile: PROFILES['7.3'], exact: false });
      assert.deepEqual(profileForRelease('6.13.0'), { profile: PROFILES['6.12'], exact: false });
      assert.equal(profileForRelease('4.19.0'), undefined);
      assert.equal(profileForRelease('sid'), undefined);
    });
  });

  it('sysfsStreq allows one trailing newline', () => {
    assert.ok(sysfsStreq('force\n', 'force'));
    assert.ok(!sysfsStreq('force\n\n', 'force'));
    assert.ok(!sysfsStreq('Force', 'force'));
  });

  it('formats memmap_on_memory as the parameter reads back', () => {
    assert.equal(formatMemmapOnMemory(true), 'Y\n');
    assert.equal(formatMemmapOnMemory(false), 'N\n');
    assert.equal(formatMemmapOnMemory('force'), 'force\n');
  });
});
