/**
 * The `memhp` command line: one commander program, each sub-command built in its own module.
 *   memhp qmp …     hotplug memory of a running QEMU over QMP (lib/cli/qmp.ts)
 *   memhp demo      the main-job simulation (lib/sim/demo.ts)
 *   memhp lsmem     lsmem(1) of a simulated machine (lib/cli/lsmem.ts)
 *   memhp sim       scenarios on the simulator (lib/cli/sim.ts)
 *   memhp conform   scenarios on real guests and the simulator, diffed (lib/cli/conform.ts)
 *   memhp fuzz      random scenarios on real guests and the simulator, divergences shrunk (lib/cli/fuzz.ts)
 *   memhp cache     list or remove the cached kernels and guest snapshots (lib/cli/cache.ts)
 *
 * One error path (lib/cli/io.ts): a failure is one line `memhp <command>: <message>` on stderr, with
 * the stack only under `--debug` or MEMHP_DEBUG=1. The exit codes are the same in every command
 * ({@link EXIT}): 0 success, 1 a difference, unmet expectation or failed operation, 2 a usage error
 * or trouble, 64 partial success (qmp).
 *
 * A sub-command's module is imported only when that command runs (or its help is asked for), so
 * `memhp --help`, `--version`, `memhp qmp` and `memhp cache` load neither the simulator nor its native addon; the
 * addon itself is loaded by the first simulated machine (lib/native/addon.ts).
 */
import { Command, Help } from 'commander';
import { EXIT, failureText, processIo, runCommand, version, type CliIo, type CommandOptions } from './io.js';

export { EXIT, version };

/** A sub-command's factory, as each lib/cli module exports it. */
type CommandFactory = (opts: CommandOptions) => Command;

/** `memhp demo`: the demo's modules are imported when it runs. */
function demoCommand(opts: CommandOptions): Command {
  const io = opts.io ?? processIo;
  return new Command('demo')
    .description('run the built-in simulation: boot, plug a DIMM, run a workload, offline and unplug')
    .action(async () => {
      const { runDemo } = await import('../sim/demo.js');
      const m = await runDemo((line) => io.stdout(`${line}\n`));
      await m.close();
    });
}

/**
 * The sub-commands, in `--help` order: how `memhp --help` lists each (its term and description, kept
 * equal to the command's own by test/cli/native-boundary.test.ts) and how its module is imported.
 */
const SUBCOMMANDS: Record<string, { term: string; description: string; load: () => Promise<CommandFactory> }> = {
  qmp: {
    term: 'qmp [options]',
    description: 'hot-plug memory into a running QEMU over QMP',
    load: async () => (await import('./qmp.js')).qmpCommand,
  },
  lsmem: {
    term: 'lsmem [options]',
    description: "lsmem(1) of a simulated machine: util-linux lsmem reads the machine's sysfs (arguments after -- go to lsmem)",
    load: async () => (await import('./lsmem.js')).lsmemCommand,
  },
  sim: {
    term: 'sim [options] <scenario...>',
    description: 'run scenarios on the simulator: step results, then lsmem of the machine (arguments after -- go to lsmem)',
    load: async () => (await import('./sim.js')).simCommand,
  },
  conform: {
    term: 'conform [options] <scenario...>',
    description: 'run scenarios on real guests and on the simulator, per kernel, and print what differs',
    load: async () => (await import('./conform.js')).conformCommand,
  },
  fuzz: {
    term: 'fuzz [options]',
    description: 'differential fuzzing: random scenarios on real guests and on the simulator, divergences shrunk to minimal scenarios',
    load: async () => (await import('./fuzz.js')).fuzzCommand,
  },
  cache: {
    term: 'cache',
    description: 'the cached kernels and guest snapshots: list them (cache list, the default) or remove them (cache clean)',
    load: async () => (await import('./cache.js')).cacheCommand,
  },
  demo: {
    term: 'demo',
    description: 'run the built-in simulation: boot, plug a DIMM, run a workload, offline and unplug',
    load: async () => demoCommand,
  },
};

/** The names of memhp's sub-commands, in `--help` order. */
export const COMMAND_NAMES: readonly string[] = Object.keys(SUBCOMMANDS);

/** Import a sub-command's module; resolves to its factory. */
export function loadCommand(name: string): Promise<CommandFactory> {
  const c = SUBCOMMANDS[name];
  if (!c) throw new Error(`memhp has no command '${name}'`);
  return c.load();
}

/**
 * Build the `memhp` program; its commands write through `opts.io` and report exit codes to
 * `opts.onExit`. The commands in `loaded` (imported by {@link loadCommand}) are built in full; every
 * other command is listed by name and description only.
 */
export function program(opts: CommandOptions = {}, loaded: ReadonlyMap<string, CommandFactory> = new Map()): Command {
  const p = new Command()
    .name('memhp')
    .description('A memory-hotplug laboratory for Linux')
    .version(version(), '--version', 'print the version')
    .option('--debug', 'print the stack of an error too (or MEMHP_DEBUG=1)');
  const help = new Help();
  p.configureHelp({ subcommandTerm: (c) => (loaded.has(c.name()) ? undefined : SUBCOMMANDS[c.name()]?.term) ?? help.subcommandTerm(c) });
  for (const [name, c] of Object.entries(SUBCOMMANDS)) {
    const make = loaded.get(name);
    p.addCommand(
      make
        ? make(opts)
        : new Command(name).description(c.description).action(() => {
            throw new Error(`memhp ${name}: the command was not loaded (import it with loadCommand)`);
          }),
    );
  }
  return p;
}

/** The sub-command `args` (the words after `memhp`) run or ask help for: `sim` in `--debug sim x` and in `help sim`. */
function commandOf(args: readonly string[]): string | undefined {
  const words = args.filter((a) => !a.startsWith('-'));
  return words[0] === 'help' ? words[1] : words[0];
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
  const args = argv.slice(2);
  const name = commandOf(args);
  const loaded = new Map<string, CommandFactory>();
  if (name && name in SUBCOMMANDS) {
    try {
      loaded.set(name, await loadCommand(name));
    } catch (e) {
      io.stderr(failureText(new Command('memhp').addCommand(new Command(name)).commands[0]!, e, args.includes('--debug') || process.env.MEMHP_DEBUG === '1'));
      return EXIT.TROUBLE;
    }
  }
  return runCommand((o) => program(o, loaded), args, io);
}
