/**
 * The real util-linux `lsmem --sysroot DIR` reading a simulated machine's exported sysfs
 * (`Sysfs.exportTo`): what it prints must agree with the model — block ranges merged as lsmem merges
 * them (by the columns shown, or `--split`), sizes, states, removability, nodes, zones, and the
 * summary lines. lsmem ships in Debian's util-linux; a host without it gets it installed.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ensureDebianPackages } from '../../lib/host/packages.js';
import { validZones } from '../../lib/kernel/hotplug.js';
import { Machine } from '../../lib/kernel/machine.js';

const run = promisify(execFile);
const M = '/sys/devices/system/memory';
const ALL = 'RANGE,SIZE,STATE,REMOVABLE,BLOCK,NODE,ZONES';

/**
 * Export the machine's /sys once and run lsmem on it with each argument list (C locale: lsmem's
 * labels are translated); the outputs in order.
 */
async function lsmemRuns(m: Machine, runs: readonly (readonly string[])[]): Promise<string[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'memhp-lsmem-test-'));
  try {
    await m.sysfs.exportTo(dir);
    const out: string[] = [];
    for (const args of runs) out.push((await run('lsmem', ['--sysroot', dir, ...args], { env: { ...process.env, LC_ALL: 'C' } })).stdout);
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function lsmem(m: Machine, args: readonly string[] = []): Promise<string> {
  return (await lsmemRuns(m, [args]))[0]!;
}

/** One row of `lsmem -J -b`. */
interface Row {
  range?: string;
  size?: number;
  state?: string;
  removable?: boolean;
  block?: string;
  node?: number;
  zones?: string;
}

function jsonArgs(columns: string, extra: readonly string[] = []): string[] {
  return ['-J', '-b', '-o', columns, ...extra];
}

function rows(stdout: string): Row[] {
  return (JSON.parse(stdout) as { memory: Row[] }).memory;
}

async function lsmemJson(m: Machine, columns: string, extra: readonly string[] = []): Promise<Row[]> {
  return rows(await lsmem(m, jsonArgs(columns, extra)));
}

/** lsmem's zone names (`zone_names[]`, matched with strcasecmp): the kernel's `none` prints as None. */
function lsmemZone(word: string): string {
  const names = ['DMA', 'DMA32', 'Normal', 'Highmem', 'Movable', 'Device', 'None'];
  return names.find((n) => n.toLowerCase() === word.toLowerCase()) ?? 'Unknown';
}

/**
 * The rows lsmem should print, computed from the model's blocks the way lsmem merges: consecutive
 * block ids join while every attribute it splits by is equal. By default it splits by the columns
 * shown (STATE, REMOVABLE, NODE, ZONES); `split` overrides that like `--split`. REMOVABLE is printed
 * only for online blocks (lsmem's choice; sysfs says 1 for all).
 */
function modelRows(m: Machine, columns: string, split?: readonly string[]): Row[] {
  const cols = columns.split(',');
  const by = new Set((split ?? cols).map((c) => c.toLowerCase()));
  const attrs = m.sortedBlocks().map((mem) => ({
    id: mem.id,
    state: mem.state,
    removable: mem.state === 'online',
    node: mem.nid,
    zones: (mem.state === 'online' ? (mem.zone ?? 'none') : validZones(m, mem)).split(' ').map(lsmemZone).join('/'),
  }));
  const groups: (typeof attrs)[] = [];
  for (const a of attrs) {
    const g = groups.at(-1);
    const last = g?.at(-1);
    const same = last && last.id + 1 === a.id && (['state', 'removable', 'node', 'zones'] as const).every((k) => !by.has(k) || last[k] === a[k]);
    if (g && same) g.push(a);
    else groups.push([a]);
  }
  const hex = (n: number) => `0x${n.toString(16).padStart(16, '0')}`;
  return groups.map((g) => {
    const first = g[0]!;
    const last = g.at(-1)!;
    const full: Required<Row> = {
      range: `${hex(first.id * m.blockSize)}-${hex((last.id + 1) * m.blockSize - 1)}`,
      size: g.length * m.blockSize,
      state: first.state,
      removable: first.removable,
      block: g.length === 1 ? `${first.id}` : `${first.id}-${last.id}`,
      node: first.node,
      zones: first.zones,
    };
    return Object.fromEntries(cols.map((c) => [c.toLowerCase(), full[c.toLowerCase() as keyof Row]])) as Row;
  });
}

/** The three summary lines of `lsmem -b`, from the model. */
function modelSummary(m: Machine): string {
  const online = m.sortedBlocks().filter((b) => b.state === 'online').length * m.blockSize;
  const offline = m.blocks.size * m.blockSize - online;
  const line = (label: string, n: number) => `${label.padEnd(23)} ${String(n).padStart(15)}`; // "%-23s %15s"
  return [line('Memory block size:', m.blockSize), line('Total online memory:', online), line('Total offline memory:', offline)].join('\n');
}

/** Compare lsmem with the model (one export): the full column set, a state-only set, `--split`, the summary. */
async function assertAgrees(m: Machine): Promise<void> {
  const [all, state, split, table] = await lsmemRuns(m, [jsonArgs(ALL), jsonArgs('RANGE,SIZE,STATE,BLOCK'), jsonArgs('RANGE,BLOCK', ['--split', 'node,zones']), ['-b']]);
  assert.deepEqual(rows(all!), modelRows(m, ALL));
  assert.deepEqual(rows(state!), modelRows(m, 'RANGE,SIZE,STATE,BLOCK'));
  assert.deepEqual(rows(split!), modelRows(m, 'RANGE,BLOCK', ['node', 'zones']));
  assert.ok(table!.endsWith(`\n\n${modelSummary(m)}\n`), `summary lines of:\n${table}`);
}

describe('lsmem --sysroot on the exported sysfs of a Machine', function () {
  this.timeout(120_000); // a first run may install util-linux

  before(async () => {
    await ensureDebianPackages(['util-linux']);
    await run('lsmem', ['--version']); // lsmem is util-linux's since 2.30; fail here, plainly, if not
  });

  it('after boot: the default table and summary of a 4G pc machine', async () => {
    const m = await Machine.create({ kernel: '6.12', memory: '4G', nodes: 2 });
    assert.equal(
      await lsmem(m),
      [
        'RANGE                                 SIZE  STATE REMOVABLE BLOCK',
        '0x0000000000000000-0x00000000bfffffff   3G online       yes  0-23',
        '0x0000000100000000-0x000000013fffffff   1G online       yes 32-39',
        '',
        'Memory block size:       128M',
        'Total online memory:       4G',
        'Total offline memory:      0B',
        '',
      ].join('\n'),
    );
    // With ZONES shown, memory0 (valid_zones `none`, DMA and DMA32 in one block) is a row of its own.
    assert.equal(
      await lsmem(m, ['-o', ALL]),
      [
        'RANGE                                  SIZE  STATE REMOVABLE BLOCK NODE  ZONES',
        '0x0000000000000000-0x0000000007ffffff  128M online       yes     0    0   None',
        '0x0000000008000000-0x00000000bfffffff  2.9G online       yes  1-23    0  DMA32',
        '0x0000000100000000-0x000000013fffffff    1G online       yes 32-39    0 Normal',
        '',
        'Memory block size:       128M',
        'Total online memory:       4G',
        'Total offline memory:      0B',
        '',
      ].join('\n'),
    );
    await assertAgrees(m);
    // -a: one row per block device, none merged.
    assert.deepEqual((await lsmemJson(m, 'BLOCK', ['-a'])).map((r) => r.block), m.sortedBlocks().map((b) => String(b.id)));
  });

  for (const kernel of ['6.1', '6.12', '7.2'] as const) {
    it(`${kernel}: after a 1 GiB plug on node 1 with the profile's default auto-online`, async () => {
      const m = await Machine.create({ kernel, memory: '4G', nodes: 2 });
      await m.plugDimm({ id: 'd1', size: '1G', node: 1 });
      const rows = await lsmemJson(m, ALL);
      // 6.1's Debian default leaves the DIMM offline; 6.12 and 7.2 online it (contig-zones: Normal).
      assert.deepEqual(rows.at(-1), {
        range: '0x0000000140000000-0x000000017fffffff',
        size: 2 ** 30,
        state: kernel === '6.1' ? 'offline' : 'online',
        removable: kernel !== '6.1',
        block: '40-47',
        node: 1,
        zones: kernel === '6.1' ? 'Normal/Movable' : 'Normal',
      });
      await assertAgrees(m);
    });
  }

  it('online_movable on node 1, then some blocks offlined: rows split by state and zones; the default table ignores nodes', async () => {
    const m = await Machine.create({ kernel: '7.2', memory: '4G', nodes: 2, cmdline: ['memhp_default_state=online_movable'] });
    await m.plugDimm({ id: 'd1', size: '1G', node: 1 });
    // Without NODE or ZONES columns lsmem does not split by them: node 0's Normal and node 1's Movable
    // blocks are one row.
    assert.match(await lsmem(m), /^0x0000000100000000-0x000000017fffffff +2G +online +yes +32-47$/m);
    assert.deepEqual((await lsmemJson(m, ALL)).slice(-2), [
      { range: '0x0000000100000000-0x000000013fffffff', size: 2 ** 30, state: 'online', removable: true, block: '32-39', node: 0, zones: 'Normal' },
      { range: '0x0000000140000000-0x000000017fffffff', size: 2 ** 30, state: 'online', removable: true, block: '40-47', node: 1, zones: 'Movable' },
    ]);
    for (const id of [42, 43, 45, 47]) await m.sysfs.write(`${M}/memory${id}/state`, 'offline');
    // 42, 43 and 45 lie inside the Movable span (40..46 once 47 is gone): "Movable Normal". 47 is
    // outside every span: "Normal Movable".
    assert.deepEqual(
      (await lsmemJson(m, 'BLOCK,STATE,REMOVABLE,ZONES')).slice(-6),
      [
        { block: '40-41', state: 'online', removable: true, zones: 'Movable' },
        { block: '42-43', state: 'offline', removable: false, zones: 'Movable/Normal' },
        { block: '44', state: 'online', removable: true, zones: 'Movable' },
        { block: '45', state: 'offline', removable: false, zones: 'Movable/Normal' },
        { block: '46', state: 'online', removable: true, zones: 'Movable' },
        { block: '47', state: 'offline', removable: false, zones: 'Normal/Movable' },
      ],
    );
    const table = await lsmem(m);
    assert.match(table, /^0x0000000150000000-0x000000015fffffff +256M +offline +42-43$/m); // REMOVABLE left blank
    assert.match(table, /^0x0000000100000000-0x000000014fffffff +1\.3G +online +yes +32-41$/m);
    assert.match(table, /\nMemory block size: +128M\nTotal online memory: +4.5G\nTotal offline memory: +512M\n$/);
    await assertAgrees(m);
    await m.unplugDimm('d1');
    await assertAgrees(m);
    assert.equal((await lsmemJson(m, 'BLOCK')).at(-1)?.block, '32-39');
  });

  it('boot blocks offlined and a DIMM added with add_memory on a memoryless node: DMA32 and node splits', async () => {
    const m = await Machine.create({ kernel: '6.1', memory: '4G', nodes: 3, cmdline: ['movable_node'] });
    for (const id of [5, 6, 20]) await m.sysfs.write(`${M}/memory${id}/online`, '0');
    await m.addMemory(2, 0x200000000n, 1n << 28n); // memory64..65, offline (6.1), movable_node: Movable first
    const rows = await lsmemJson(m, ALL);
    assert.deepEqual(
      rows.map((r) => `${r.block} ${r.state} ${r.node} ${r.zones}`),
      ['0 online 0 None', '1-4 online 0 DMA32', '5-6 offline 0 DMA32/Movable', '7-19 online 0 DMA32', '20 offline 0 DMA32/Movable', '21-23 online 0 DMA32', '32-39 online 0 Normal', '64-65 offline 2 Movable/Normal'],
    );
    await assertAgrees(m);
    assert.deepEqual(m.checkInvariants(), []);
  });
});
