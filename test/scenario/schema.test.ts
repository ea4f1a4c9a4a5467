/**
 * The scenario format: the example files load, YAML and JSON give the same scenario, shorthands
 * expand, and every kind of bad field is reported by its path with what was expected.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MemhpError } from '../../lib/errors.js';
import { ScenarioError } from '../../lib/scenario/errors.js';
import { KERNEL_NAMES, SCENARIO_KERNELS, kernelCmdline, loadScenario, parseScenario, stepText, type Scenario } from '../../lib/scenario/schema.js';

const SCENARIOS = fileURLToPath(new URL('../scenarios/', import.meta.url));

/** The error a scenario text gets, as `path: message` lines. */
function issues(text: string, format?: 'json' | 'yaml'): string[] {
  try {
    parseScenario(text, format ? { format } : {});
  } catch (e) {
    assert.ok(e instanceof ScenarioError && e instanceof MemhpError, String(e));
    return e.issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message));
  }
  assert.fail('the scenario was accepted');
}

const STEPS3 = `
steps:
  - snapshot
  - write: {path: /sys/devices/system/memory/memory32/state, value: offline}
  - read: /sys/devices/system/memory/memory32/state
`;

describe('scenario format', () => {
  it('loads every example in test/scenarios', async () => {
    const files = (await readdir(SCENARIOS)).filter((f) => /\.(ya?ml|json)$/.test(f));
    assert.ok(files.length >= 3, files.join(' '));
    for (const f of files) {
      const s = await loadScenario(path.join(SCENARIOS, f));
      assert.equal(s.name, path.basename(f, path.extname(f)), 'the name matches the file');
      assert.ok(s.steps.length > 0);
    }
  });

  it('YAML and JSON load the same scenario (list and map forms of the command line, number and text sizes)', async () => {
    const yaml = await loadScenario(path.join(SCENARIOS, 'plug-online-movable.yaml'));
    const json = parseScenario(
      JSON.stringify({
        name: 'plug-online-movable',
        description: 'plug onto node 1 with memhp_default_state=online_movable, offline one block, unplug',
        machine: { kernel: ['5.10', '6.1', '6.12', '7.2', 'latest'], memory: '512M', nodes: 2, slots: 4, maxMemory: '8G', cmdline: { memhp_default_state: 'online_movable' } },
        steps: [
          { snapshot: 'boot' },
          { plug: { id: 'd1', size: '256M', node: 1, expect: 'ok' } },
          { snapshot: { name: 'plugged' } },
          { write: { path: '/sys/devices/system/memory/memory33/state', value: 'offline', expect: 'ok' } },
          { read: { path: '/sys/devices/system/memory/memory33/valid_zones', value: 'Normal Movable' } },
          { snapshot: 'one-offline' },
          { unplug: { id: 'd1', expect: 'ok' } },
          { snapshot: 'unplugged' },
        ],
      }),
    );
    assert.deepEqual(json, yaml);
    // JSON is YAML: the YAML reader gives the same again.
    const raw = JSON.stringify({ name: 'x', machine: { cmdline: ['movable_node'] }, steps: ['snapshot', { unplug: 'd1' }] });
    assert.deepEqual(parseScenario(raw, { format: 'yaml' }), parseScenario(raw, { format: 'json' }));
  });

  it('fills defaults and expands shorthands', () => {
    const s: Scenario = parseScenario(`
steps:
  - snapshot
  - unplug: d1
  - uninject
  - rmmod: memory-notifier-error-inject
  - inject: {action: MEM_GOING_OFFLINE, errno: -16}
  - write: {path: /sys/devices/system/memory/memory32/online, value: 0}
  - plug: {id: d2, size: 1073741824}
`);
    assert.deepEqual(s.machine, { kernels: [...SCENARIO_KERNELS], memory: '512M', nodes: 1, slots: 8, maxMemory: '8G', cmdline: {} });
    assert.deepEqual(s.steps, [
      { op: 'snapshot' },
      { op: 'unplug', id: 'd1' },
      { op: 'uninject' },
      { op: 'rmmod', module: 'memory-notifier-error-inject' },
      { op: 'inject', action: 'MEM_GOING_OFFLINE', errno: 'EBUSY', priority: 0 },
      { op: 'write', path: '/sys/devices/system/memory/memory32/online', value: '0' },
      { op: 'plug', id: 'd2', size: '1073741824' },
    ]);
    assert.deepEqual(s.steps.map(stepText), [
      'snapshot',
      'unplug d1',
      'uninject all',
      'rmmod memory-notifier-error-inject',
      'inject MEM_GOING_OFFLINE -EBUSY',
      'write /sys/devices/system/memory/memory32/online "0"',
      'plug d2 1073741824',
    ]);
  });

  it('reads kernel versions YAML takes for numbers, and renders the command line with kernel names', () => {
    const s = parseScenario(`
machine:
  kernel: 6.12
  cmdline: [memhp_default_state=offline, memory_hotplug.online_policy=auto-movable, memory_hotplug.auto_movable_ratio=100, memory_hotplug.memmap_on_memory=force, movable_node, memory_hotplug.auto_movable_numa_aware=N]
${STEPS3}`);
    assert.deepEqual(s.machine.kernels, ['6.12']);
    assert.deepEqual(s.machine.cmdline, {
      memhp_default_state: 'offline',
      'memory_hotplug.online_policy': 'auto-movable',
      'memory_hotplug.auto_movable_ratio': 100,
      'memory_hotplug.memmap_on_memory': 'force',
      movable_node: true,
      'memory_hotplug.auto_movable_numa_aware': false,
    });
    assert.deepEqual(kernelCmdline(s.machine.cmdline), [
      'memhp_default_state=offline',
      'memory_hotplug.online_policy=auto-movable',
      'memory_hotplug.auto_movable_ratio=100',
      'memory_hotplug.auto_movable_numa_aware=0',
      'memory_hotplug.memmap_on_memory=force',
      'movable_node',
    ]);
    const m = parseScenario(`machine: {cmdline: {memory_hotplug.memmap_on_memory: true}}\n${STEPS3}`);
    assert.deepEqual(kernelCmdline(m.machine.cmdline), ['memory_hotplug.memmap_on_memory=1']);
  });

  describe('errors name the bad field and what was expected', () => {
    const cases: [string, string, RegExp][] = [
      [
        'a bad size in the fourth step',
        `${STEPS3}  - plug: {id: d1, size: lots}\n`,
        /^steps\[3\]\.plug\.size: expected a size: a byte count or a string such as '256M' or '1G'$/,
      ],
      ['an unknown step', `steps:\n  - plgu: {id: d1, size: 1G}\n`, /^steps\[0\]\.plgu: unknown step 'plgu' \(expected one of: plug, unplug, write, read, inject, uninject, insmod, rmmod, alloc, free, pin, unpin, sh, snapshot, census\)$/],
      ['an unknown field of a step', `steps:\n  - plug: {id: d1, size: 1G, nod: 1}\n`, /^steps\[0\]\.plug\.nod: unknown field 'nod' of plug \(expected: id, size, node, expect\)$/],
      ['a missing field', `steps:\n  - plug: {id: d1}\n`, /^steps\[0\]\.plug\.size: expected a size/],
      ['a misspelt errno', `${STEPS3}  - write: {path: /sys/x, value: '1', expect: EBUZY}\n`, /^steps\[3\]\.write\.expect: expected 'ok' or an errno name such as EBUSY/],
      ['a relative path', `steps:\n  - read: {path: sys/devices}\n`, /^steps\[0\]\.read\.path: expected an absolute path$/],
      ['an action without an injection file', `steps:\n  - inject: {action: MEM_ONLINE, errno: ENOMEM}\n`, /^steps\[0\]\.inject\.action: expected a notifier action with an error-injection file \(MEM_GOING_ONLINE, MEM_GOING_OFFLINE\)$/],
      ['an out-of-range errno number', `steps:\n  - inject: {action: MEM_GOING_ONLINE, errno: -5000}\n`, /^steps\[0\]\.inject\.errno: expected an errno name/],
      ['two operations in one step', `steps:\n  - {snapshot: a, unplug: d1}\n`, /^steps\[0\]: expected exactly one operation per step .* got unplug, snapshot$|^steps\[0\]: expected exactly one operation per step .* got snapshot, unplug$/],
      ['a step that is a number', `steps:\n  - 42\n`, /^steps\[0\]: expected a step: an object with one key/],
      ['an empty step', `steps:\n  - {}\n`, /^steps\[0\]: expected a step: an object with one key/],
      ['an alloc order above MAX_ORDER', `steps:\n  - alloc: {count: 1, order: 11}\n`, /^steps\[0\]\.alloc\.order: expected an order \(0\.\.10\)$/],
      ['no steps', `machine: {memory: 1G}\n`, /^steps: expected a list of steps$/],
      ['an empty step list', `steps: []\n`, /^steps: expected at least one step$/],
      ['an unknown kernel', `machine: {kernel: [6.1, '6.5']}\n${STEPS3}`, new RegExp(`^machine\\.kernel\\[1\\]: expected a kernel: ${KERNEL_NAMES.join(', ').replaceAll('.', '\\.')}`)],
      ['an unknown machine field', `machine: {maxmem: 8G}\n${STEPS3}`, /^machine\.maxmem: unknown machine field 'maxmem' \(expected one of: kernel, memory, nodes, cpus, slots, maxMemory, cmdline\)$/],
      ['a misspelt online type', `machine: {cmdline: [memhp_default_state=online_moveable]}\n${STEPS3}`, /^machine\.cmdline\.memhp_default_state: expected an online type \(offline, online, online_kernel, online_movable\)$/],
      ['an unknown kernel parameter', `machine: {cmdline: [memhp_default_stat=online]}\n${STEPS3}`, /^machine\.cmdline\.memhp_default_stat: unknown kernel parameter 'memhp_default_stat'/],
      ['a bad boolean parameter', `machine: {cmdline: [memory_hotplug.memmap_on_memory=maybe]}\n${STEPS3}`, /^machine\.cmdline\["memory_hotplug\.memmap_on_memory"\]: expected a boolean \(1\/0, Y\/N\) or force$/],
      ['zero nodes', `machine: {nodes: 0}\n${STEPS3}`, /^machine\.nodes: expected a node count \(1\.\.64\)$/],
      ['an unknown top-level field', `stpes: []\n${STEPS3}`, /^stpes: unknown top-level field 'stpes' \(expected one of: name, description, machine, steps\)$/],
      ['a bad device id', `steps:\n  - unplug: '1dimm'\n`, /^steps\[0\]\.unplug\.id: expected a QEMU device id/],
    ];
    for (const [what, text, want] of cases) {
      it(what, () => {
        const got = issues(text);
        assert.ok(got.some((l) => want.test(l)), `wanted ${want}, got:\n${got.join('\n')}`);
      });
    }

    it('reports every problem at once, and a JSON document the same way', () => {
      const got = issues(JSON.stringify({ machine: { nodes: -1 }, steps: [{ plug: { id: 'd1', size: 'x' } }, { write: { path: '/x' } }] }), 'json');
      assert.deepEqual(
        got.map((l) => l.split(':')[0]),
        ['machine.nodes', 'steps[0].plug.size', 'steps[1].write.value'],
      );
    });

    it('reports a YAML syntax error with its line', () => {
      const got = issues('steps:\n  - plug: {id: d1, size: 1G\n  - snapshot\n');
      assert.match(got[0]!, /^not valid YAML: line \d+: /);
    });

    it('names the file in the message of a bad file', async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'memhp-scenario-'));
      try {
        const bad = path.join(dir, 'bad.yaml');
        await writeFile(bad, `${STEPS3}  - plug: {id: d1, size: lots}\n  - unplug: {id: d1, expect: nope}\n`);
        const err = (await loadScenario(bad).catch((e: unknown) => e)) as ScenarioError;
        assert.ok(err instanceof ScenarioError);
        assert.equal(err.source, bad);
        assert.match(err.message, new RegExp(`^${bad}: 2 problems:\\n  steps\\[3\\]\\.plug\\.size: .*\\n  steps\\[4\\]\\.unplug\\.expect: `));
        const json = path.join(dir, 'bad.json');
        await writeFile(json, '{"steps": [{"snapshot": 1}, {"read": {"path": 3}}]}');
        await assert.rejects(loadScenario(json), (e: unknown) => e instanceof ScenarioError && /steps\[1\]\.read\.path: expected an absolute path/.test(e.message));
        const broken = path.join(dir, 'broken.json');
        await writeFile(broken, '{"steps": [');
        await assert.rejects(loadScenario(broken), /broken\.json: not valid JSON/);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
});
