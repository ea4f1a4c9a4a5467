/**
 * `memhp lsmem`: lsmem(1) of a simulated machine — the built-in default one, or one described by flags,
 * optionally with DIMMs plugged first. Options after `--` go to the real util-linux lsmem, which reads
 * the machine's exported sysfs (`-J`, `-o RANGE,SIZE,STATE,REMOVABLE,BLOCK,NODE,ZONES`, `-a`, …).
 *
 *   memhp lsmem [--kernel 6.12] [--memory 4G] [--nodes 2] [--plug 1G@1 …] [--cmdline WORD …] [-- -J]
 */
import { Command } from 'commander';
import { MemhpError } from '../errors.js';
import { Machine } from '../kernel/machine.js';
import { lsmem } from '../sim/lsmem.js';

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

/** The `lsmem` sub-command. */
export function lsmemCommand(): Command {
  return new Command('lsmem')
    .description('lsmem of a simulated machine (options after -- go to lsmem, e.g. -- -J)')
    .option('--kernel <version>', 'kernel profile: 6.1, 6.12, 7.2 or latest', 'latest')
    .option('--memory <size>', 'boot RAM on node 0', '4G')
    .option('--nodes <n>', 'NUMA nodes (node 1.. memoryless)', '2')
    .option('--max-memory <size>', 'maxmem', '64G')
    .option('--plug <size@node>', 'plug a pc-dimm first (repeatable), e.g. 1G@1', collect, [])
    .option('--cmdline <word>', 'kernel command line word (repeatable), e.g. memhp_default_state=online_movable', collect, [])
    .argument('[lsmem-args...]', 'arguments for lsmem')
    .action(async (args: string[], o: { kernel: string; memory: string; nodes: string; maxMemory: string; plug: string[]; cmdline: string[] }) => {
      const m = await Machine.create({ kernel: o.kernel, memory: o.memory, nodes: Number(o.nodes), maxMemory: o.maxMemory, cmdline: o.cmdline });
      let i = 0;
      for (const p of o.plug) {
        const [size, node] = p.split('@');
        if (!size) throw new MemhpError(`--plug ${p}: expected SIZE[@NODE]`);
        await m.plugDimm({ id: `dimm${i++}`, size, node: node === undefined ? 0 : Number(node) });
      }
      process.stdout.write(await lsmem(m.sysfs, args));
    });
}
