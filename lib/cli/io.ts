/**
 * What every `memhp` command shares: the exit codes, where output goes, and the one way a failure is
 * reported — one line `memhp <command>: <message>` on stderr, the stack only under `--debug` or
 * MEMHP_DEBUG=1. {@link runCommand} parses and runs a command tree so (lib/cli/main.ts, and the
 * `run*` helpers tests and other programs embed).
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError } from 'commander';

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

/** The exit codes of every memhp command. */
export const EXIT = {
  /** Success: every expectation met, no difference, every operation done. */
  OK: 0,
  /** A difference, an unmet expectation, or a failed operation (qmp: refused, timed out, QEMU unreachable). */
  FAILURE: 1,
  /** A usage error or trouble: bad arguments or files, a run that could not complete. */
  TROUBLE: 2,
  /** Partial success (qmp): some devices done, or a virtio-mem resize that moved but did not converge. */
  PARTIAL: 64,
} as const;

/** The exit codes as `--help` lists them (and README.md, "Set up and run"). */
export const EXIT_CODES_HELP = `
Exit codes:
  0   success
  1   a difference or an unmet expectation (sim, conform, fuzz); a failed operation (qmp: refused,
      timed out, QEMU unreachable)
  2   a usage error or trouble (bad arguments or files, a run that could not complete)
  64  partial success (qmp: some devices done; cache clean: some entries removed)`;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parse a duration: `90` (seconds), `90s`, `15m`, `1h30m`, `500ms`. Returns milliseconds. */
export function durationArg(v: string): number {
  const t = v.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t) * 1000;
  const parts = [...t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)];
  if (!parts.length || parts.map((p) => p[0]).join('') !== t) throw new InvalidArgumentError('expected a duration such as 90s, 15m or 1h30m');
  return parts.reduce((ms, p) => ms + Number(p[1]) * UNITS[p[2]!]!, 0);
}

/** Where a command writes (tests capture it) and, for `-`, what it reads. */
export interface CliIo {
  /** Standard output. */
  stdout(text: string): void;
  /** Standard error. */
  stderr(text: string): void;
  /** Standard input, for a scenario given as `-`; default `process.stdin`. */
  stdin?: NodeJS.ReadableStream;
}

/** The process's own streams. */
export const processIo: CliIo = {
  stdout: (t) => void process.stdout.write(t),
  stderr: (t) => void process.stderr.write(t),
};

/** Options of a sub-command factory (`simCommand`, `qmpCommand`, …). */
export interface CommandOptions {
  /** Output streams (tests capture them). */
  io?: CliIo;
  /** Receives the exit code; default sets `process.exitCode`. */
  onExit?: (code: number) => void;
}

/** The sub-command of `memhp` a command belongs to: `qmp` for `memhp qmp plug`; '' for `memhp` itself. */
export function commandName(cmd: Command): string {
  let c = cmd;
  while (c.parent?.parent) c = c.parent;
  return c.parent ? c.name() : '';
}

/** Whether a failure carries its stack: `--debug` was given (a global option of `memhp`), or MEMHP_DEBUG=1. */
export function debugWanted(cmd?: Command): boolean {
  return process.env.MEMHP_DEBUG === '1' || (cmd?.optsWithGlobals<{ debug?: boolean }>().debug ?? false);
}

/** One failure as memhp reports it: `memhp <command>: <message>`, plus the stack under `--debug`. */
export function failureText(cmd: Command, e: unknown, debug = debugWanted(cmd)): string {
  const name = commandName(cmd);
  const message = (e instanceof Error ? e.message : String(e)).trim();
  let stack = '';
  // Under --debug the stack, and the stack of each cause (an error rethrown with context).
  for (let c: unknown = e, n = 0; debug && c instanceof Error && n < 5; c = c.cause, n++) stack += `${n ? 'Caused by: ' : ''}${c.stack ?? c.message}\n`;
  return `memhp${name ? ` ${name}` : ''}: ${message}\n${stack}`;
}

/** Route a command tree's output to `io`, make commander throw instead of exiting, and word its usage errors as ours. */
function configure(cmd: Command, io: CliIo): void {
  cmd.exitOverride().configureOutput({
    writeOut: io.stdout,
    writeErr: io.stderr,
    // Commander's "error: unknown option '-x'\n(Did you mean …?)" → one line with the command's name.
    outputError: (text, write) => {
      const name = commandName(cmd);
      let message = text.replace(/^error: /, '').trim().replace(/\s*\n\s*/g, ' ');
      // "option '--node <n>' argument '-1' is invalid. expected a node id" → "--node -1: expected a node id"
      const bad = /^option '(?:-\w, )?(--?[\w-]+)[^']*' argument '(.*)' is invalid\. (.*)$/.exec(message);
      if (bad) message = `${bad[1]} ${bad[2]}: ${bad[3]}`;
      write(`memhp${name ? ` ${name}` : ''}: ${message} (see: memhp${name ? ` ${name}` : ''} --help)\n`);
    },
  });
  cmd.addHelpText('after', EXIT_CODES_HELP);
  for (const c of cmd.commands) configure(c, io);
}

const PASSTHROUGH = Symbol.for('memhp.PassthroughCommand');

/**
 * A sub-command that hands the arguments after `--` to another program (lsmem): {@link runCommand}
 * takes them off before commander parses, which would mix them with the command's own operands.
 */
export class PassthroughCommand extends Command {
  /** The arguments after the first `--`, verbatim. */
  passthrough: string[] = [];

  /**
   * By brand, not by prototype: lib/cli/main.ts imports its commands when they run, and a host that
   * loads main.ts as CommonJS (mocha with tsx) gets a second copy of this module for them.
   */
  static override [Symbol.hasInstance](v: unknown): boolean {
    return typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[PASSTHROUGH] === true;
  }

  /** The brand {@link PassthroughCommand}'s `instanceof` checks. */
  readonly [PASSTHROUGH] = true;
}

/** Take the arguments after `--` off for a {@link PassthroughCommand} (the root's options take no values). */
function splitPassthrough(root: Command, args: readonly string[]): string[] {
  const at = args.findIndex((a) => !a.startsWith('-'));
  const sub = at < 0 ? undefined : root.commands.find((c) => c.name() === args[at]);
  const dashes = args.indexOf('--', at + 1);
  if (!(sub instanceof PassthroughCommand) || dashes < 0) return [...args];
  sub.passthrough = args.slice(dashes + 1);
  return args.slice(0, dashes);
}

/**
 * Build a command tree with `make` and run it on `args` (the words after `memhp`); resolves to the exit
 * code and never throws or calls process.exit (`args` may be computed from the built root). A usage
 * error is one line and exit 2; an error an action throws is one line (the stack under `--debug`) and
 * exit 2; an action reports its own exit code through `onExit`.
 */
export async function runCommand(
  make: (o: Required<CommandOptions>) => Command,
  args: readonly string[] | ((root: Command) => readonly string[]),
  io: CliIo = processIo,
): Promise<number> {
  let code: number = EXIT.OK;
  const root = make({ io, onExit: (c) => void (code = c) });
  configure(root, io);
  const argv = typeof args === 'function' ? args(root) : args;
  // The command a thrown error is reported under: the one whose action ran, else the one named.
  let active: Command = root.commands.find((c) => c.name() === argv.find((a) => !a.startsWith('-'))) ?? root;
  root.hook('preAction', (_root, action) => void (active = action));
  try {
    await root.parseAsync(splitPassthrough(root, argv), { from: 'user' });
  } catch (e) {
    // --help and --version end here with exit code 0; a usage error was printed by outputError.
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.OK : EXIT.TROUBLE;
    io.stderr(failureText(active, e, debugWanted(active) || argv.includes('--debug')));
    return EXIT.TROUBLE;
  }
  return code;
}

/**
 * `memhp <sub> …` for one sub-command built by `make`, with `args` the words after its name: a root
 * with `--debug` and only that sub-command, run by {@link runCommand}.
 */
export function runSubcommand(make: (o: Required<CommandOptions>) => Command, args: readonly string[], io: CliIo = processIo): Promise<number> {
  const root = (o: Required<CommandOptions>): Command => new Command('memhp').option('--debug', 'print the stack of an error too (or MEMHP_DEBUG=1)').addCommand(make(o));
  return runCommand(root, (r) => [r.commands[0]!.name(), ...args], io);
}
