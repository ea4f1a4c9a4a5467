/**
 * The `memhp` command line: one commander program, each sub-command built in its own module.
 *   memhp qmp …     hotplug memory of a running QEMU over QMP (lib/cli/qmp.ts)
 *   memhp demo      the main-job simulation (lib/sim/demo.ts)
 *   memhp lsmem     lsmem(1) of a simulated machine (lib/cli/lsmem.ts)
 *   memhp sim       a scenario on the simulator (lib/cli/sim.ts)
 *   memhp conform   a scenario on real guests and the simulator, diffed (lib/cli/conform.ts)
 *   memhp fuzz      random scenarios on real guests and the simulator, divergences shrunk (lib/cli/fuzz.ts)
 *
 * One error path: a failure is one line `memhp <command>: <message>` on stderr, with the stack only
 * under `--debug` or MEMHP_DEBUG=1; exit 2 for usage errors and trouble (sub-commands keep their own
 * documented codes: 1 a difference or failed operation, 64 partial success).
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { runDemo } from '../sim/demo.js';
import { conformCommand } from './conform.js';
import { fuzzCommand } from './fuzz.js';
import { lsmemCommand } from './lsmem.js';
import { qmpCommand } from './qmp.js';
import { simCommand } from './sim.js';

/** memhp's version, from its package.json (two levels up from lib/cli, three from dist/lib/cli). */
export function version(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'memhp' && pkg.version) return pkg.version;
    } catch {
      /* not this level */
    }
  }
  return 'unknown';
}

/** Build the `memhp` program. */
export function program(): Command {
  const p = new Command()
    .name('memhp')
    .description('A memory-hotplug laboratory for Linux')
    .version(version(), '--version', 'print the version')
    .option('--debug', 'print the stack of an error too (or MEMHP_DEBUG=1)')
    .showHelpAfterError()
    .exitOverride();
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

/** Exit code of a usage error or of trouble (as in every sub-command). */
const TROUBLE = 2;

/** Run `memhp` with process-style argv; resolves to the exit code. Nothing is thrown. */
export async function main(argv: string[], stderr: (text: string) => void = (t) => void process.stderr.write(t)): Promise<number> {
  const p = program();
  // A reader that went away (`memhp demo | head -3`) ends the output, quietly.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
  });
  try {
    await p.parseAsync(argv);
  } catch (e) {
    // --help and --version end through here with exit code 0; a usage error was already printed.
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : TROUBLE;
    const debug = argv.includes('--debug') || process.env.MEMHP_DEBUG === '1';
    const command = argv.slice(2).find((a) => !a.startsWith('-'));
    const message = e instanceof Error ? e.message : String(e);
    stderr(`memhp${command ? ` ${command}` : ''}: ${message}\n${debug && e instanceof Error && e.stack ? `${e.stack}\n` : ''}`);
    return TROUBLE;
  }
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}
