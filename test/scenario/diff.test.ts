/**
 * The differ on hand-built observations: equal, differing fields, missing/extra/moved records, snapshot
 * and result differences, normalisations applied only where the table says, exceptions, JUnit output.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { LATEST } from '../../lib/kernel/profile.js';
import type { TraceRecord } from '../../lib/kernel/trace.js';
import { diffObservations, formatDiff, formatRecord, formatSteps, UNCOMPARED_STEP_FIELDS } from '../../lib/scenario/diff.js';
import { ScenarioError } from '../../lib/scenario/errors.js';
import { loadExceptions, validateExceptions } from '../../lib/scenario/exceptions.js';
import { toJUnit, type ConformanceCase } from '../../lib/scenario/junit.js';
import { NORMALISATIONS } from '../../lib/scenario/normalise.js';
import type { BlockSnapshot, Observation, Snapshot, StepObservation, StepResult, TargetKind } from '../../lib/scenario/observation.js';
import { stepText, type Step } from '../../lib/scenario/schema.js';

const MEM = '/sys/devices/system/memory';

const notify = (action: string, value: number, start_pfn: number, extra: Record<string, number> = {}): TraceRecord => ({
  type: 'notify',
  chain: 'memory',
  action,
  value,
  start_pfn,
  nr_pages: 32768,
  ...extra,
});
const uevent = (action: string, block: number): TraceRecord => ({ type: 'uevent', action, devpath: `/devices/system/memory/memory${block}` });
const ost: TraceRecord = { type: 'qmp-event', event: 'ACPI_DEVICE_OST', data: { info: { source: 1, status: 0 } } };

const block = (state: string, zones: string, node = 'node1'): BlockSnapshot => ({
  state,
  online: state === 'online' ? '1' : '0',
  valid_zones: zones,
  phys_index: '00000020',
  removable: '1',
  phys_device: '0',
  nodes: [node],
});
const snap = (blocks: Record<string, BlockSnapshot>, hasMemory = '0-1'): Snapshot => ({
  memory: { block_size_bytes: '8000000', auto_online_blocks: 'online_movable', blocks },
  node: { has_memory: hasMemory, has_normal_memory: '0', nodes: { node0: ['memory0'], node1: Object.keys(blocks).filter((b) => b !== 'memory0') } },
});

interface StepSpec {
  step: Step;
  result?: StepResult;
  trace?: TraceRecord[];
  snapshot?: Snapshot;
  unmet?: string;
}

function obs(target: TargetKind, profile: string, steps: StepSpec[]): Observation {
  return {
    scenario: 'hand-built',
    target,
    kernel: { profile, release: `${profile}.0` },
    ms: 1,
    steps: steps.map(
      (s, index): StepObservation => ({
        index,
        text: stepText(s.step),
        step: s.step,
        result: s.result ?? { status: 'ok' },
        trace: s.trace ?? [],
        ...(s.snapshot ? { snapshot: s.snapshot } : {}),
        ...(s.unmet ? { unmet: s.unmet } : {}),
        ms: 1,
      }),
    ),
  };
}

const PLUG: Step = { op: 'plug', id: 'd1', size: '256M', node: 1 };
const OFFLINE: Step = { op: 'write', path: `${MEM}/memory33/state`, value: 'offline' };
const SNAP: Step = { op: 'snapshot', name: 'plugged' };
const plugTrace = (nid1: number): TraceRecord[] => [
  notify('MEM_GOING_ONLINE', 3, 0x100000, { status_change_nid: nid1 }),
  uevent('add', 32),
  notify('MEM_ONLINE', 0, 0x100000, { status_change_nid: nid1 }),
  uevent('online', 32),
  notify('MEM_GOING_ONLINE', 3, 0x108000, { status_change_nid: -1 }),
  notify('MEM_ONLINE', 0, 0x108000, { status_change_nid: -1 }),
  uevent('online', 33),
];
const base = (target: TargetKind): StepSpec[] => [
  { step: PLUG, trace: [...plugTrace(1), ost] },
  { step: SNAP, snapshot: snap({ memory32: block('online', 'Movable'), memory33: block('online', 'Movable') }) },
  { step: OFFLINE, trace: [notify('MEM_GOING_OFFLINE', 1, 0x108000), notify('MEM_OFFLINE', 2, 0x108000), uevent('offline', 33)] },
  { step: { op: 'alloc', count: 1 }, result: target === 'guest' ? { status: 'n/a', reason: 'guest' } : { status: 'ok' } },
];

describe('differ', () => {
  it('equal observations (guest vs sim, n/a steps aside): no differences', () => {
    const r = diffObservations(obs('guest', '6.1', base('guest')), obs('sim', '6.1', base('sim')));
    assert.equal(r.ok, true, formatDiff(r));
    assert.deepEqual(r.labels, ['guest', 'sim']);
    assert.deepEqual(r.normalised, { 'trace-streams': 2, 'not-applicable-steps': 1 });
    assert.equal(formatDiff(r), 'hand-built on 6.1: guest vs sim: no differences (normalised: trace-streams ×2, not-applicable-steps ×1)');
  });

  it("never compares a step's kernel log lines (dmesg): their wording and timing are each target's own", () => {
    assert.deepEqual([...UNCOMPARED_STEP_FIELDS].sort(), ['dmesg', 'index', 'ms', 'step']);
    const guest = obs('guest', '6.12', base('guest'));
    const sim = obs('sim', '6.12', base('sim'));
    // The guest logged two lines at the plug, the simulator one other line; the offline logged only on the simulator.
    const logged = (o: Observation, logs: Record<number, string[]>): Observation => ({ ...o, steps: o.steps.map((s) => (logs[s.index] ? { ...s, dmesg: logs[s.index]! } : s)) });
    const a = logged(guest, { 0: ['[   12.345678] acpi PNP0C80:00: add_memory failed', 'Block size [0x8000000] unaligned hotplug range'] });
    const b = logged(sim, { 0: ['acpi PNP0C80:00: add_memory failed'], 2: ['memory33: Offline failed.'] });
    const r = diffObservations(a, b);
    assert.equal(r.ok, true, formatDiff(r));
    assert.deepEqual(r, diffObservations(guest, sim));
    // With a real difference beside it, only that difference is reported.
    const wrong = diffObservations(a, { ...b, steps: b.steps.map((s) => (s.index === 2 ? { ...s, result: { status: 'error', errno: 'EBUSY', message: 'memory33: Offline failed.' } } : s)) });
    assert.deepEqual(
      wrong.differences.map((d) => [d.step, d.kind]),
      [[2, 'result']],
    );
  });

  it('compares QMP events: an _OST status or a DEVICE_DELETED the simulator got wrong is a difference', () => {
    const g = base('guest');
    const s = base('sim');
    s[0]!.trace = [...plugTrace(1), { type: 'qmp-event', event: 'ACPI_DEVICE_OST', data: { info: { source: 1, status: 0x82 } } }];
    g[2]!.trace = [...g[2]!.trace!, { type: 'qmp-event', event: 'DEVICE_DELETED', data: { device: 'd1' } }];
    const r = diffObservations(obs('guest', '6.1', g), obs('sim', '6.1', s));
    assert.equal(r.ok, false);
    assert.deepEqual(
      r.differences.map((d) => d.text),
      [
        'qmp ACPI_DEVICE_OST: guest has data={"info":{"source":1,"status":0}} / sim has data={"info":{"source":1,"status":130}}',
        'only guest: qmp DEVICE_DELETED d1 data={"device":"d1"}',
      ],
    );
  });

  it('prints a differing field, a missing record and a differing sysfs value the way a kernel engineer reads them', () => {
    const g = base('guest');
    const s = base('sim');
    s[0]!.trace = [...plugTrace(-1).filter((r) => !(r.type === 'uevent' && r.action === 'online' && String(r.devpath).endsWith('33'))), ost];
    s[1]!.snapshot = snap({ memory32: block('online', 'Movable'), memory33: block('online', 'Movable Normal') });
    s[2]!.result = { status: 'error', errno: 'EBUSY', message: 'memory33: offline failed' };
    const r = diffObservations(obs('guest', '6.1', g), obs('sim', '6.1', s));
    assert.equal(r.ok, false);
    assert.equal(
      formatDiff(r),
      [
        'hand-built on 6.1: guest vs sim: 5 differences (normalised: trace-streams ×2, not-applicable-steps ×1)',
        'step 0: plug d1 256M node=1',
        '  notify memory MEM_GOING_ONLINE start_pfn=0x100000: guest has status_change_nid=1 / sim has status_change_nid=-1',
        '  notify memory MEM_ONLINE start_pfn=0x100000: guest has status_change_nid=1 / sim has status_change_nid=-1',
        '  only guest: uevent online /devices/system/memory/memory33',
        'step 1: snapshot plugged',
        "  /sys/devices/system/memory/memory33/valid_zones: guest 'Movable' vs sim 'Movable Normal'",
        'step 2: write /sys/devices/system/memory/memory33/state "offline"',
        '  result: guest ok / sim EBUSY',
      ].join('\n'),
    );
    assert.deepEqual(
      r.differences.map((d) => [d.step, d.kind]),
      [
        [0, 'trace'],
        [0, 'trace'],
        [0, 'trace'],
        [1, 'snapshot'],
        [2, 'result'],
      ],
    );
  });

  it('reports extra records, a block only one side has, and a record in another place', () => {
    const a = obs('sim', '6.1', [
      { step: PLUG, trace: [notify('MEM_GOING_ONLINE', 8, 0x100000), notify('MEM_ONLINE', 1, 0x100000), uevent('online', 32)] },
      { step: SNAP, snapshot: snap({ memory32: block('online', 'Movable') }) },
    ]);
    const b = obs('sim', '6.1', [
      { step: PLUG, trace: [notify('MEM_GOING_ONLINE', 8, 0x100000), uevent('online', 32), notify('MEM_ONLINE', 1, 0x100000), notify('MEM_CANCEL_ONLINE', 16, 0x108000)] },
      { step: SNAP, snapshot: snap({ memory32: block('online', 'Movable'), memory33: block('offline', 'Normal Movable') }) },
    ]);
    const r = diffObservations(a, b, { labels: ['model', 'fixed'] });
    const lines = formatDiff(r).split('\n').slice(1);
    assert.deepEqual(lines, [
      'step 0: plug d1 256M node=1',
      // sim vs sim: no stream split, so the order of uevents among notifier records counts.
      '  order: notify memory MEM_ONLINE start_pfn=0x100000 nr_pages=0x8000 is record 2 of 3 on model, 3 of 4 on fixed',
      '  only fixed: notify memory MEM_CANCEL_ONLINE start_pfn=0x108000 nr_pages=0x8000',
      'step 1: snapshot plugged',
      "  /sys/devices/system/memory/memory33/: only fixed has it (state=offline valid_zones='Normal Movable' node1)",
      "  /sys/devices/system/node/node1/memory*: model '32' vs fixed '32-33'",
    ]);
  });

  it('reports different step counts, different kernels and unmet expectations', () => {
    const a = obs('guest', '6.12', [{ step: PLUG, unmet: 'expected ok, got EBUSY', result: { status: 'error', errno: 'EBUSY', message: '' } }, { step: SNAP }]);
    const b = obs('sim', '6.1', [{ step: PLUG }]);
    const r = diffObservations(a, b);
    assert.deepEqual(
      r.differences.map((d) => d.text),
      ['kernel: guest 6.12 (6.12.0) vs sim 6.1 (6.1.0)', 'steps: guest ran 2, sim ran 1', 'guest: expected ok, got EBUSY', 'result: guest EBUSY / sim ok'],
    );
  });

  describe('normalisations apply only to the fields and kernels the table lists', () => {
    const prepare = (nid: number, altmap = 0x100000): TraceRecord => ({
      type: 'notify',
      chain: 'memory',
      action: 'MEM_PREPARE_ONLINE',
      value: 6,
      altmap_start_pfn: altmap,
      altmap_nr_pages: 0,
      start_pfn: 0x100000,
      nr_pages: 32768,
      status_change_nid_normal: nid,
      status_change_nid: nid,
    });
    const going = (nid: number): TraceRecord => ({ ...prepare(nid), action: 'MEM_GOING_ONLINE', value: 3, altmap_start_pfn: 0 });
    const run = (profile: string, a: TraceRecord[], b: TraceRecord[], kinds: [TargetKind, TargetKind] = ['guest', 'sim']) =>
      diffObservations(obs(kinds[0], profile, [{ step: PLUG, trace: a }]), obs(kinds[1], profile, [{ step: PLUG, trace: b }]));

    it('6.12: status_change_nid* of MEM_PREPARE_ONLINE are ignored', () => {
      const r = run('6.12', [prepare(0)], [prepare(-1)]);
      assert.equal(r.ok, true, formatDiff(r));
      assert.equal(r.normalised['prepare-finish-status-nids'], 2);
    });
    it('6.12: MEM_FINISH_OFFLINE too, guest vs guest as well', () => {
      const fin = (nid: number): TraceRecord => ({ ...prepare(nid), action: 'MEM_FINISH_OFFLINE', value: 7 });
      assert.equal(run('6.12', [fin(0)], [fin(1)], ['guest', 'guest']).ok, true);
    });
    it('6.12: other fields of MEM_PREPARE_ONLINE still count', () => {
      const r = run('6.12', [prepare(0)], [prepare(-1, 0x100200)]);
      assert.deepEqual(
        r.differences.map((d) => d.text),
        ['notify memory MEM_PREPARE_ONLINE start_pfn=0x100000: guest has altmap_start_pfn=0x100000 / sim has altmap_start_pfn=0x100200'],
      );
    });
    it('6.12: status_change_nid of MEM_GOING_ONLINE still counts', () => {
      const r = run('6.12', [going(1)], [going(-1)]);
      assert.deepEqual(
        r.differences.map((d) => d.text),
        ['notify memory MEM_GOING_ONLINE start_pfn=0x100000: guest has status_change_nid_normal=1, status_change_nid=1 / sim has status_change_nid_normal=-1, status_change_nid=-1'],
      );
    });
    it('6.1 and 7.2: the 6.12 normalisation does not apply', () => {
      for (const k of ['6.1', '7.2']) {
        const r = run(k, [prepare(0)], [prepare(-1)]);
        assert.equal(r.differences.length, 1, k);
        assert.equal(r.normalised['prepare-finish-status-nids'], undefined);
      }
    });
    it('QMP events are compared guest vs sim too', () => {
      assert.deepEqual(
        run('7.2', [ost], []).differences.map((d) => d.text),
        ['only guest: qmp ACPI_DEVICE_OST data={"info":{"source":1,"status":0}}'],
      );
      const r = run('7.2', [ost], [], ['guest', 'guest']);
      assert.deepEqual(
        r.differences.map((d) => d.text),
        ['only guest 7.2.0 (a): qmp ACPI_DEVICE_OST data={"info":{"source":1,"status":0}}'],
      );
    });
    it('uevent interleaving is ignored with a guest, not sim vs sim', () => {
      const a = [notify('MEM_GOING_ONLINE', 3, 0x100000), notify('MEM_ONLINE', 0, 0x100000), uevent('online', 32)];
      const b = [notify('MEM_GOING_ONLINE', 3, 0x100000), uevent('online', 32), notify('MEM_ONLINE', 0, 0x100000)];
      assert.equal(run('7.2', a, b).ok, true);
      assert.equal(run('7.2', a, b, ['sim', 'sim']).differences.length, 1);
      // The order of uevents among themselves still counts with a guest.
      const r = run('7.2', [uevent('online', 32), uevent('online', 33)], [uevent('online', 33), uevent('online', 32)]);
      assert.equal(r.differences.length, 1);
      assert.match(r.differences[0]!.text, /^order: uevent online/);
    });
    it('every table entry has a name, a reason and kernels', () => {
      const names = new Set<string>();
      for (const n of NORMALISATIONS) {
        assert.ok(n.name && !names.has(n.name) && n.reason.length > 20 && (n.kernels === 'all' || n.kernels.length > 0), n.name);
        assert.ok(n.record || n.stream || n.skipStep || n.snapshotEntry || n.censusEntry, `${n.name} does something`);
        names.add(n.name);
      }
    });
  });

  describe('exceptions', () => {
    const g = base('guest');
    const s = base('sim');
    s[1]!.snapshot = snap({ memory32: block('online', 'Movable'), memory33: block('online', 'Normal') });
    const exceptions = validateExceptions({
      exceptions: [
        { name: 'zones-6.1', reason: 'the model re-picks the zone differently (docs/kernel-behaviour.md#acpi-eject)', kernels: [6.1], scenario: 'hand-*', kind: 'snapshot', match: 'memory33/valid_zones' },
        { name: 'other-kernel', reason: 'only on 7.x', kernels: ['latest'], match: 'valid_zones' },
      ],
    });

    it('sets matching differences apart with their reason; the case passes', () => {
      const r = diffObservations(obs('guest', '6.1', g), obs('sim', '6.1', s), { exceptions });
      assert.equal(r.ok, true);
      assert.equal(r.excepted.length, 1);
      assert.equal(r.excepted[0]!.exception.name, 'zones-6.1');
      assert.match(formatDiff(r), /1 excepted[\s\S]*excepted:\n {2}step 1: snapshot plugged\n {4}.*valid_zones: guest 'Movable' vs sim 'Normal' {2}\[zones-6\.1\]\n {2}\[zones-6\.1\] the model re-picks/);
    });

    it('applies only to the kernels listed (latest is the newest profile)', () => {
      const r = diffObservations(obs('guest', LATEST, g), obs('sim', LATEST, s), { exceptions });
      assert.equal(r.excepted[0]?.exception.name, 'other-kernel');
      const r2 = diffObservations(obs('guest', '6.12', g), obs('sim', '6.12', s), { exceptions });
      assert.equal(r2.ok, false);
      assert.equal(r2.excepted.length, 0);
    });

    it('stepMatch names one kind of step in any scenario: the suite\'s hard_offline_page entry covers a block\'s first page only', async () => {
      const suite = await loadExceptions(path.join(import.meta.dirname, '../scenarios/exceptions/model.yaml'));
      const write = (value: string): Step => ({ op: 'write', path: `${MEM}/hard_offline_page`, value });
      const pair = (value: string) =>
        diffObservations(obs('guest', '6.12', [{ step: write(value) }]), obs('sim', '6.12', [{ step: write(value), result: { status: 'error', errno: 'EBUSY', message: 'EBUSY' } }]), { exceptions: suite });
      for (const v of ['0x100000000', '0x100000000\0', '0x148000000\n']) {
        const r = pair(v);
        assert.equal(r.ok, true, v);
        assert.equal(r.excepted[0]?.exception.name, 'memory-failure-on-a-node-first-normal-page');
      }
      for (const v of ['0x100001000', '0x100000000 ']) assert.equal(pair(v).ok, false, v);
    });

    it('an invalid exceptions file names the bad field', async () => {
      const bad: [unknown, RegExp][] = [
        [[{ name: 'x', kernels: ['6.1'] }], /^exceptions\[0\]\.reason: expected the reason/],
        [{ exceptions: [{ name: 'x', reason: 'r', kernels: [] }] }, /^exceptions\[0\]\.kernels: expected at least one kernel$/],
        [[{ name: 'x', reason: 'r', kernels: ['6.1', '4.19'] }], /^exceptions\[0\]\.kernels\[1\]: expected a kernel/],
        [[{ name: 'x', reason: 'r', kernels: ['6.1'], match: '(' }], /^exceptions\[0\]\.match: expected a regular expression$/],
        [[{ name: 'x', reason: 'r', kernels: ['6.1'], kind: 'sysfs' }], /^exceptions\[0\]\.kind: expected one of meta, result, trace, snapshot, census, expect$/],
        [[{ name: 'x', reason: 'r', kernels: ['6.1'] }, { name: 'x', reason: 'r', kernels: ['6.1'] }], /^exceptions\[1\]\.name: duplicate name 'x'$/],
      ];
      for (const [doc, want] of bad) {
        assert.throws(() => validateExceptions(doc), (e: unknown) => e instanceof ScenarioError && e.issues.some((i) => want.test(`${i.path}: ${i.message}`)), JSON.stringify(doc));
      }
      const dir = await mkdtemp(path.join(os.tmpdir(), 'memhp-exceptions-'));
      try {
        const f = path.join(dir, 'exceptions.yaml');
        await writeFile(f, 'exceptions:\n  - name: a\n    reason: because\n    kernels: [6.12, latest]\n    step: 2\n');
        assert.deepEqual(await loadExceptions(f), [{ name: 'a', reason: 'because', kernels: ['6.12', LATEST], step: 2 }]);
        await writeFile(f, 'exceptions:\n  - name: a\n    kernels: 6.1\n');
        await assert.rejects(loadExceptions(f), (e: unknown) => e instanceof ScenarioError && e.message.startsWith(`${f}: 2 problems`));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });

  it('lists steps with results, times and unmet expectations', () => {
    const o = obs('guest', '6.1', [{ step: PLUG }, { step: { ...OFFLINE, expect: 'EBUSY' }, result: { status: 'error', errno: 'EINVAL', message: '' }, unmet: 'expected EBUSY, got EINVAL' }]);
    assert.equal(
      formatSteps({ ...o, bootMs: 4321.4 }),
      [
        'hand-built on guest 6.1.0: boot 4321 ms, steps 1 ms',
        'step 0: plug d1 256M node=1 → ok  1 ms',
        'step 1: write /sys/devices/system/memory/memory33/state "offline" (expect EBUSY) → EINVAL  1 ms  UNMET expected EBUSY, got EINVAL',
      ].join('\n'),
    );
  });

  it('formats records with pfns in hex and other fields as they are', () => {
    assert.equal(formatRecord(notify('MEM_GOING_ONLINE', 3, 0x140000, { status_change_nid: 1 })), 'notify memory MEM_GOING_ONLINE start_pfn=0x140000 nr_pages=0x8000 status_change_nid=1');
    assert.equal(formatRecord({ type: 'notify', chain: 'node', action: 'NODE_ADDING_FIRST_MEMORY', value: 1, nid: 1 }), 'notify node NODE_ADDING_FIRST_MEMORY nid=1');
    assert.equal(formatRecord({ type: 'qmp-event', event: 'DEVICE_DELETED', data: { device: 'd1' } }), 'qmp DEVICE_DELETED d1 data={"device":"d1"}');
  });
});

/** A small XML well-formedness check: one root, balanced tags, quoted attributes, only the five entities. */
function wellFormed(xml: string): void {
  const body = xml.replace(/^<\?xml [^?]*\?>\n/, '');
  const stack: string[] = [];
  let roots = 0;
  const token = /<\/?([A-Za-z_][\w.-]*)((?:\s+[A-Za-z_][\w.-]*="[^"<]*")*)\s*(\/?)>|([^<]+)|(<)/g;
  for (const m of body.matchAll(token)) {
    if (m[5]) assert.fail(`stray '<' at ${m.index}`);
    if (m[4] !== undefined) {
      assert.doesNotMatch(m[4], /&(?!(amp|lt|gt|quot|apos);)/, 'bare & in text');
      assert.doesNotMatch(m[4], /[\u0000-\u0008\u000B\u000C\u000E-\u001F]/, 'control character in text');
      if (stack.length === 0) assert.match(m[4], /^\s*$/, 'text outside the root');
      continue;
    }
    for (const a of (m[2] ?? '').matchAll(/="([^"]*)"/g)) assert.doesNotMatch(a[1]!, /&(?!(amp|lt|gt|quot|apos);)|[<>\u0000-\u001F]/, 'bad attribute value');
    if (m[0].startsWith('</')) assert.equal(stack.pop(), m[1], `closing </${m[1]}>`);
    else if (m[3] !== '/') {
      if (stack.length === 0) roots++;
      stack.push(m[1]!);
    } else if (stack.length === 0) roots++;
  }
  assert.deepEqual(stack, [], 'every element closed');
  assert.equal(roots, 1, 'one root element');
}

describe('JUnit output', () => {
  const g = base('guest');
  const s = base('sim');
  s[2]!.result = { status: 'error', errno: 'EBUSY', message: '' };
  const failing = diffObservations(obs('guest', '6.12', g), obs('sim', '6.12', s));
  const passing = diffObservations(obs('guest', '6.1', base('guest')), obs('sim', '6.1', base('sim')));
  const cases: ConformanceCase[] = [
    { scenario: 'plug <&> "quoted" \'s', kernel: '6.1', report: passing, seconds: 7.5, output: 'step 0 plug: 812 ms\u0007' },
    { scenario: 'offline-busy', kernel: '6.12', report: failing, seconds: 6 },
    { scenario: 'boot-fails', kernel: '7.2', error: 'cannot boot kernel latest: QEMU exited (code 1): <stderr> & more\n--- console ---\n\u001b[0mPanic', seconds: 0.2 },
  ];
  const xml = toJUnit(cases);

  it('is well-formed XML', () => {
    wellFormed(xml);
    assert.ok(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites '));
  });

  it('has one suite per kernel, failures for differences and errors for failed runs, with the diff text', () => {
    assert.match(xml, /<testsuites name="memhp conformance" tests="3" failures="1" errors="1" time="13\.700">/);
    assert.match(xml, /<testsuite name="memhp conformance 6\.12" tests="1" failures="1" errors="0" skipped="0" time="6\.000">/);
    assert.match(xml, /<testcase name="plug &lt;&amp;&gt; &quot;quoted&quot; &apos;s" classname="memhp\.conform\.6\.1" time="7\.500">/);
    assert.match(xml, /<failure message="1 difference between guest and sim" type="divergence">hand-built on 6\.12: guest vs sim: 1 difference/);
    assert.match(xml, /\nstep 2: write \/sys\/devices\/system\/memory\/memory33\/state &quot;offline&quot;\n {2}result: guest ok \/ sim EBUSY<\/failure>/);
    assert.match(xml, /<error message="cannot boot kernel latest: QEMU exited \(code 1\): &lt;stderr&gt; &amp; more" type="run">/);
    assert.match(xml, /<system-out>step 0 plug: 812 ms<\/system-out>/);
  });
});
