/**
 * `memhp lsmem`: lsmem of a simulated machine; lsmem's options without `--`, `--sysroot` refused, and the
 * machine flags checked by the scenario schema's validators (the same message as a scenario file gets).
 */
import assert from 'node:assert/strict';
import { runSubcommand, type CliIo } from '../../lib/cli/io.js';
import { lsmemArgs, lsmemCommand } from '../../lib/cli/lsmem.js';
import { KernelError } from '../../lib/errors.js';
import { Guest } from '../../lib/guest/guest.js';
import { Machine } from '../../lib/kernel/machine.js';
import { ScenarioError } from '../../lib/scenario/errors.js';
import { validateScenario } from '../../lib/scenario/schema.js';

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const io: CliIo & { out: string; err: string } = { out: '', err: '', stdout: (t) => void (io.out += t), stderr: (t) => void (io.err += t) };
  const code = await runSubcommand(lsmemCommand, args, io);
  return { code, out: io.out, err: io.err };
}

/** The message a scenario file gets for `machine` (its one issue, without the path). */
function scenarioMessage(machine: Record<string, unknown>): string {
  try {
    validateScenario({ machine, steps: ['snapshot'] });
  } catch (e) {
    assert.ok(e instanceof ScenarioError);
    assert.equal(e.issues.length, 1, e.message);
    return e.issues[0]!.message;
  }
  assert.fail(`${JSON.stringify(machine)} is valid`);
}

type Row = { range: string; state: string; node: number; zones: string };

describe('memhp lsmem', () => {
  it('prints util-linux lsmem of the simulated machine, with DIMMs plugged and lsmem options passed through', async () => {
    // The defaults are every machine's (lib/machine-spec.ts): 512M of boot RAM on one node.
    const table = await run([]);
    assert.equal(table.code, 0, table.err);
    assert.match(table.out, /^0x0000000000000000-0x000000001fffffff +512M online +yes +0-3$/m);
    assert.match(table.out, /Memory block size: +128M/);
    // After -- as before, and as memhp lsmem's own options.
    for (const lsmemOpts of [['--', '-J', '-o', 'RANGE,STATE,NODE,ZONES'], ['-J', '-o', 'RANGE,STATE,NODE,ZONES'], ['--json', '--output=RANGE,STATE,NODE,ZONES']]) {
      const r = await run(['--kernel', '6.1', '--memory', '4G', '--nodes', '2', '--max-memory', '64G', '--plug', '1G@1', ...lsmemOpts]);
      assert.equal(r.code, 0, r.err);
      const json = JSON.parse(r.out) as { memory: Row[] };
      // 6.1's Debian default leaves hot-added memory offline; lsmem reads valid_zones of offline blocks.
      assert.deepEqual(json.memory.at(-1), { range: '0x0000000140000000-0x000000017fffffff', state: 'offline', node: 1, zones: 'Normal/Movable' }, lsmemOpts.join(' '));
    }
    const raw = await run(['-rn', '-o', 'SIZE,STATE', '--summary=never']);
    assert.deepEqual(raw, { code: 0, out: '512M online\n', err: '' });
  });

  it('refuses --sysroot in every spelling lsmem takes: it would show the host', async () => {
    for (const args of [['--', '--sysroot', '/'], ['--', '--sysroot=/'], ['--', '--sysr', '/'], ['--', '-Js', '/'], ['--', '-s/'], ['--sysroot', '/'], ['-s', '/']]) {
      const r = await run(args);
      assert.equal(r.code, 2, args.join(' '));
      assert.equal(r.out, '');
      assert.equal(r.err, "memhp lsmem: --sysroot is memhp's: lsmem reads the simulated machine's sysfs, exported for it\n");
    }
    // -o and -S take the rest of the word: an 's' there is a column list, not --sysroot.
    assert.deepEqual(lsmemArgs({}, ['-oSIZE,STATE', '-S', '-s']), ['-oSIZE,STATE', '-S', '-s']);
  });

  it('checks the machine flags as a scenario, Machine.create and Guest.boot check the machine: the same message for the same bad value', async () => {
    const cases: [string[], Record<string, unknown>][] = [
      [['--nodes', 'two'], { nodes: 'two' }],
      [['--nodes', '0'], { nodes: 0 }],
      [['--nodes', '1000'], { nodes: 1000 }],
      [['--memory', '-1G'], { memory: '-1G' }],
      [['--max-memory', 'lots'], { maxMemory: 'lots' }],
      [['--kernel', '4.19'], { kernel: '4.19' }],
      [['--cmdline', 'bogus=1'], { cmdline: ['bogus=1'] }],
      [['--cmdline', 'memhp_default_state=sideways'], { cmdline: ['memhp_default_state=sideways'] }],
      [['--cmdline', 'movable_node', '--cmdline', 'memory_hotplug.auto_movable_ratio=lots'], { cmdline: ['movable_node', 'memory_hotplug.auto_movable_ratio=lots'] }],
    ];
    for (const [flags, machine] of cases) {
      const r = await run(flags);
      assert.equal(r.code, 2, flags.join(' '));
      const value = flags.at(-1)!;
      const message = scenarioMessage(machine);
      assert.equal(r.err, `memhp lsmem: ${flags.at(-2)} ${value}: ${message}\n`);
      if ('kernel' in machine) continue; // a kernel is the profile table's to refuse (lib/kernel/profile.ts)
      // The TypeScript API: the same check (before any QEMU is started), naming the field as the scenario does.
      for (const create of [() => Machine.create(machine), () => Guest.boot(machine)]) {
        await assert.rejects(create(), (e: unknown) => {
          assert.ok(e instanceof KernelError && e.code === 'EINVAL', String(e));
          const field = Object.keys(machine)[0]!;
          assert.ok(e.message.startsWith(`${field}`) && e.message.includes(`: ${message}`), `${e.message} vs ${message}`);
          return true;
        });
      }
    }
    // --plug's size and node: the plug step's validator.
    assert.equal((await run(['--plug', '1Q@1'])).err, "memhp lsmem: --plug 1Q@1: expected a size: a byte count or a string such as '256M' or '1G' (expected SIZE[@NODE], e.g. 1G@1)\n");
    assert.equal((await run(['--plug', '1G@one'])).err, 'memhp lsmem: --plug 1G@one: expected a node id (expected SIZE[@NODE], e.g. 1G@1)\n');
    // A value the schema takes but the model refuses: the model's message, under its flag.
    assert.equal((await run(['--nodes', '1', '--plug', '1G@1'])).err, 'memhp lsmem: --plug 1G@1: dimm0: node 1 does not exist\n');
  });
});
