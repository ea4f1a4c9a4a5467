/**
 * The `memhp` command line: one commander program, each sub-command built in its own module.
 *   memhp qmp …     hotplug memory of a running QEMU over QMP (lib/cli/qmp.ts)
 *   memhp demo      the main-job simulation (lib/sim/demo.ts)
 *   memhp lsmem     lsmem(1) of a simulated machine (lib/cli/lsmem.ts)
 *   memhp sim       scenarios on the simulator (lib/cli/sim.ts)
 *   memhp conform   scenarios on real guests and the simulator, diffed (lib/cli/conform.ts)
 *   memhp fuzz      random scenarios on real guests and the simulator, divergences shrunk (lib/cli/fuzz.ts)
 *
 * One error path (lib/cli/io.ts): a failure is one line `memhp <command>: <message>` on stderr, with
 * the stack only under `--debug` or MEMHP_DEBUG=1. The exit codes are the same in every command
 * ({@link EXIT}): 0 success, 1 a difference, unmet expectation or failed operation, 2 a usage error
 * or trouble, 64 partial success (qmp).
 */
import { Command } from 'commander';
import { runDemo } from '../sim/demo.js';
import { conformCommand } from './conform.js';
import { fuzzCommand } from './fuzz.js';
import { EXIT, processIo, runCommand, version, type CliIo, type CommandOptions } from './io.js';
import { lsmemCommand } from './lsmem.js';
import { qmpCommand } from './qmp.js';
import { simCommand } from './sim.js';

export { EXIT, version };

/** Build the `memhp` program; its commands write through `opts.io` and report exit codes to `opts.onExit`. */
export function program(opts: CommandOptions = {}): Command {
  const io = opts.io ?? processIo;
  const p = new Command()
    .name('memhp')
    .description('A memory-hotplug laboratory for Linux')
    .version(version(), '--version', 'print the version')
    .option('--debug', 'print the stack of an error too (or MEMHP_DEBUG=1)');
  p.addCommand(qmpCommand(opts));
  p.addCommand(lsmemCommand(opts));
  p.addCommand(simCommand(opts));
  p.addCommand(conformCommand(opts));
  p.addCommand(fuzzCommand(opts));
  p.command('demo')
    .description('run the built-in simulation: boot, plug a DIMM, run a workload, offline and unplug')
    .action(async () => {
      const m = await runDemo((line) => io.stdout(`${line}\n`));
      await m.close();
    });
  return p;
}

let quietOnEpipe = false;

/** Run `memhp` with process-style argv (`['node', 'memhp', …]`); resolves to the exit code. Nothing is thrown. */
export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  if (io === processIo && !quietOnEpipe) {
    quietOnEpipe = true;
    // A reader that went away (`memhp demo | head -3`, `memhp sim x.yaml --json | head -1`) ends the output, quietly.
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : EXIT.OK);
      process.stderr.write(`memhp: standard output: ${e.message}\n`);
      process.exit(EXIT.TROUBLE);
    });
  }
  return runCommand((o) => program(o), argv.slice(2), io);
}
