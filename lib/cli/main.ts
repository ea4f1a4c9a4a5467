/**
 * The `memhp` command line: one commander program, each sub-command built in its own module.
 *   memhp qmp …     hotplug memory of a running QEMU over QMP (lib/cli/qmp.ts)
 *   memhp demo      the main-job simulation (lib/sim/demo.ts)
 *   memhp lsmem     lsmem(1) of a simulated machine (lib/cli/lsmem.ts)
 *   memhp sim       a scenario on the simulator (lib/cli/sim.ts)
 *   memhp conform   a scenario on real guests and the simulator, diffed (lib/cli/conform.ts)
 */
import { Command } from 'commander';
import { runDemo } from '../sim/demo.js';
import { conformCommand } from './conform.js';
import { fuzzCommand } from './fuzz.js';
import { lsmemCommand } from './lsmem.js';
import { qmpCommand } from './qmp.js';
import { simCommand } from './sim.js';

/** Build the `memhp` program. */
export function program(): Command {
  const p = new Command().name('memhp').description('A memory-hotplug laboratory for Linux').showHelpAfterError();
  p.addCommand(qmpCommand());
  p.addCommand(lsmemCommand());
  p.addCommand(simCommand());
  p.addCommand(conformCommand());
  p.addCommand(fuzzCommand());
  p.command('demo')
    .description('run the built-in simulation: boot, plug a DIMM, run a workload, offline and unplug')
    .action(async () => {
      await runDemo();
    });
  return p;
}

/** Run `memhp` with process-style argv; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  await program().parseAsync(argv);
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}
