/**
 * The JSON Schema of scenario files (docs/scenario.schema.json, docs/scenarios.md#json-schema): the
 * committed file is what `npm run schema` generates from the zod schema, a real validator (ajv)
 * accepts every suite scenario with it, and ajv and zod give the same verdict on a corpus of good and
 * bad documents, so the generated schema cannot drift from the one memhp enforces.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { scenarioJsonSchema, scenarioJsonSchemaText } from '../../lib/scenario/json-schema.js';
import { parseScenario } from '../../lib/scenario/schema.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const COMMITTED = path.join(ROOT, 'docs/scenario.schema.json');
const SCENARIOS = path.join(ROOT, 'test/scenarios');

function validator() {
  const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false });
  return ajv.compile(JSON.parse(readFileSync(COMMITTED, 'utf8')) as object);
}

function zodAccepts(text: string): boolean {
  try {
    parseScenario(text, { format: 'yaml' });
    return true;
  } catch {
    return false;
  }
}

/** Documents both validators must accept. */
const GOOD = [
  'steps: [snapshot]',
  'steps: [census, uninject]',
  'machine: {kernel: 6.12}\nsteps: [snapshot]',
  'machine: {kernel: [6.1, "6.12", 7.2, latest]}\nsteps: [snapshot]',
  'machine: {memory: 536870912, maxMemory: 16G, nodes: 2, cpus: 2, slots: 0}\nsteps: [snapshot]',
  'machine: {cmdline: [memhp_default_state=online_movable, movable_node, memory_hotplug.memmap_on_memory=force]}\nsteps: [snapshot]',
  'machine: {cmdline: {memory_hotplug.auto_movable_ratio: "301", memory_hotplug.auto_movable_numa_aware: N, movable_node: true}}\nsteps: [snapshot]',
  'steps:\n  - plug: {id: d1, size: 1G, node: 1, expect: ok}\n  - unplug: d1\n  - unplug: {id: d1, expect: EBUSY}',
  'steps:\n  - write: {path: /sys/devices/system/memory/auto_online_blocks, value: 1, expect: E4000}',
  'steps:\n  - read: /sys/devices/system/memory/block_size_bytes\n  - read: {path: /proc/meminfo, value: x}',
  'steps:\n  - inject: {action: MEM_GOING_ONLINE, errno: -12, priority: -100}\n  - inject: {action: MEM_GOING_OFFLINE, errno: EBUSY}\n  - uninject: MEM_GOING_ONLINE\n  - uninject:',
  'steps:\n  - insmod: memory-notifier-error-inject\n  - insmod: {module: x, params: {priority: 1, a: b}, expect: ENOENT}\n  - rmmod: x',
  'steps:\n  - alloc: {id: a, count: 4, order: 9, kind: movable, nid: 0, thisNode: true, highestZone: Normal}\n  - pin: a\n  - unpin: {id: a}\n  - free: 7',
  'steps:\n  - sh: "echo hi"\n  - snapshot: before\n  - census: {name: 3}',
  'name: my.scenario-1\ndescription: text\nsteps: [snapshot]',
];

/** Documents both validators must refuse. */
const BAD = [
  'steps: []',
  'machine: {}',
  'bogus: 1\nsteps: [snapshot]',
  'name: "a b"\nsteps: [snapshot]',
  'machine: {kernel: 5.10}\nsteps: [snapshot]',
  'machine: {kernel: []}\nsteps: [snapshot]',
  'machine: {nodes: 0}\nsteps: [snapshot]',
  'machine: {nodes: two}\nsteps: [snapshot]',
  'machine: {slots: 257}\nsteps: [snapshot]',
  'machine: {ram: 1G}\nsteps: [snapshot]',
  'machine: {cmdline: [bogus=1]}\nsteps: [snapshot]',
  'machine: {cmdline: [memhp_default_state=sideways]}\nsteps: [snapshot]',
  'machine: {cmdline: {movable_node: maybe}}\nsteps: [snapshot]',
  'steps: [plug]',
  'steps: [{}]',
  'steps: [{snapshot: null, census: null}]',
  'steps: [{frobnicate: 1}]',
  'steps:\n  - plug: {id: d1}',
  'steps:\n  - plug: {id: 1d, size: 1G}',
  'steps:\n  - plug: {id: d1, size: 1G, szie: 1G}',
  'steps:\n  - plug: {id: d1, size: 1G, expect: EWHATEVER}',
  'steps:\n  - unplug: {id: d1, expect: E4096}',
  'steps:\n  - write: {path: relative, value: x}',
  'steps:\n  - inject: {action: MEM_ONLINE, errno: ENOMEM}',
  'steps:\n  - inject: {action: MEM_GOING_ONLINE, errno: 0}',
  'steps:\n  - alloc: {count: 1, order: 11}',
  'steps:\n  - sh: ""',
  'steps:\n  - plug: {id: d1, size: 1.5}',
];

/** Values JSON Schema cannot check (size arithmetic): the schema accepts them, memhp refuses them. */
const ZOD_ONLY = ['machine: {memory: sideways}\nsteps: [snapshot]', 'steps:\n  - plug: {id: d1, size: 0M}'];

describe('scenario JSON Schema', () => {
  it('docs/scenario.schema.json is what `npm run schema` generates', () => {
    assert.equal(readFileSync(COMMITTED, 'utf8'), scenarioJsonSchemaText(), 'run `npm run schema` and commit docs/scenario.schema.json');
  });

  it('is a valid draft-07 schema that ajv compiles in strict mode', () => {
    assert.equal(scenarioJsonSchema().$schema, 'http://json-schema.org/draft-07/schema#');
    assert.equal(typeof validator(), 'function');
  });

  it('accepts every scenario of the suite (test/scenarios/*.yaml)', () => {
    const validate = validator();
    const files = readdirSync(SCENARIOS).filter((f) => f.endsWith('.yaml'));
    assert.ok(files.length >= 10, files.join(' '));
    for (const f of files) {
      const doc = parseYaml(readFileSync(path.join(SCENARIOS, f), 'utf8')) as unknown;
      assert.ok(validate(doc), `${f}: ${JSON.stringify(validate.errors?.slice(0, 3))}`);
    }
  });

  it('gives the verdict zod gives on good and bad documents', () => {
    const validate = validator();
    for (const text of GOOD) {
      assert.ok(zodAccepts(text), `zod refuses:\n${text}`);
      assert.ok(validate(parseYaml(text)), `the JSON Schema refuses:\n${text}\n${JSON.stringify(validate.errors?.slice(0, 3))}`);
    }
    for (const text of BAD) {
      assert.ok(!zodAccepts(text), `zod accepts:\n${text}`);
      assert.ok(!validate(parseYaml(text)), `the JSON Schema accepts:\n${text}`);
    }
    for (const text of ZOD_ONLY) {
      assert.ok(!zodAccepts(text), `zod accepts:\n${text}`);
      assert.ok(validate(parseYaml(text)), `the JSON Schema refuses:\n${text}`);
    }
  });
});
