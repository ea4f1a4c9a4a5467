/**
 * `memhp lsmem`: lsmem(1) of a simulated machine — the built-in default one, or one described by flags,
 * optionally with DIMMs plugged first. The real util-linux lsmem reads the machine's exported sysfs.
 *
 *   memhp lsmem [--kernel 6.12] [--memory 4G] [--nodes 2] [--max-memory 8G] [--plug 1G@1 …] [--cmdline WORD …] [LSMEM OPTIONS] [-- ARGS]
 *
 * The machine flags are checked, and their defaults taken, as a scenario's machine (lib/machine-spec.ts),
 * so a bad value gets the message a scenario file gets. lsmem's own output options (-J, -P, -r, -a, -b, -n,
 * -o LIST, --output-all, -S LIST, --summary[=WHEN]) are options of `memhp lsmem` and `memhp sim` too;
 * arguments after `--` go to lsmem verbatim. `--sysroot` is refused: memhp sets it to the machine.
 */
import { Command, Option } from 'commander';
import { MemhpError } from '../errors.js';
import { Machine } from '../kernel/machine.js';
import { MACHINE_DEFAULTS } from '../machine-spec.js';
import { KERNEL_NAMES, machineSchema, STEP_SCHEMAS, zodIssues } from '../scenario/schema.js';
import { simMachineOptions } from '../scenario/sim.js';
import { lsmem } from '../sim/lsmem.js';
import { PassthroughCommand, processIo, type CommandOptions } from './io.js';

/** lsmem's output options as memhp parsed them. */
export interface LsmemFlags {
  /** -J, --json of `memhp lsmem`. */
  json?: boolean;
  /** -J of `memhp sim` (its --json prints the Observation). */
  J?: boolean;
  /** -P, --pairs. */
  pairs?: boolean;
  /** -r, --raw. */
  raw?: boolean;
  /** -a, --all. */
  all?: boolean;
  /** -b, --bytes. */
  bytes?: boolean;
  /** -n, --noheadings. */
  noheadings?: boolean;
  /** -o, --output LIST. */
  output?: string;
  /** --output-all. */
  outputAll?: boolean;
  /** -S, --split LIST. */
  split?: string;
  /** --summary[=WHEN]: true without a value. */
  summary?: string | true;
  /** -s, --sysroot: declared only to be refused. */
  sysroot?: string;
}

/** Declare lsmem's output options on `cmd`, last (grouped in its help); `json: false` leaves `--json` to the command. */
export function addLsmemOptions(cmd: Command, { json }: { json: boolean }): Command {
  cmd.optionsGroup('lsmem options:');
  cmd
    .option(json ? '-J, --json' : '-J', json ? 'JSON output' : "lsmem's JSON output (--json prints the Observation)")
    .option('-P, --pairs', 'key="value" output')
    .option('-r, --raw', 'raw output')
    .option('-a, --all', 'list each memory block')
    .option('-b, --bytes', 'SIZE in bytes')
    .option('-n, --noheadings', 'no headings')
    .option('-o, --output <list>', 'output columns, e.g. RANGE,SIZE,STATE,BLOCK,NODE,ZONES')
    .option('--output-all', 'all columns')
    .option('-S, --split <list>', 'split ranges by these columns')
    .addOption(new Option('--summary [when]', 'when to print the summary').choices(['never', 'always', 'only']))
    .addOption(new Option('-s, --sysroot <dir>').hideHelp());
  return cmd;
}

/** `--sysroot` in any spelling getopt_long takes (`-s`, `-sDIR`, `-Js`, `--sys`, `--sysroot=DIR`). */
function namesSysroot(arg: string): boolean {
  if (/^--sy(s(r(o(o(t)?)?)?)?)?(=|$)/.test(arg)) return true;
  if (!/^-[^-]/.test(arg)) return false;
  // A cluster of lsmem's short flags; -o and -S take the rest of the word as their value.
  for (const c of arg.slice(1)) {
    if (c === 's') return true;
    if (c === 'o' || c === 'S') return false;
  }
  return false;
}

/** The lsmem arguments for `o` and the words after `--`; an Error for `--sysroot`. */
export function lsmemArgs(o: LsmemFlags, passthrough: readonly string[] = []): string[] {
  const raw = passthrough.findIndex((a, i) => namesSysroot(a) && !['-o', '-S', '--output', '--split'].includes(passthrough[i - 1] ?? ''));
  if (o.sysroot !== undefined || raw >= 0) throw new MemhpError("--sysroot is memhp's: lsmem reads the simulated machine's sysfs, exported for it");
  const flags: [boolean | undefined, string][] = [
    [o.json || o.J, '-J'],
    [o.pairs, '-P'],
    [o.raw, '-r'],
    [o.all, '-a'],
    [o.bytes, '-b'],
    [o.noheadings, '-n'],
    [o.outputAll, '--output-all'],
  ];
  return [
    ...flags.filter(([on]) => on).map(([, f]) => f),
    ...(o.output !== undefined ? ['-o', o.output] : []),
    ...(o.split !== undefined ? ['-S', o.split] : []),
    ...(o.summary === true ? ['--summary'] : o.summary !== undefined ? [`--summary=${o.summary}`] : []),
    ...passthrough,
  ];
}

/** Whether `o` chose lsmem's columns (so a command's default columns do not apply). */
export function choosesColumns(o: LsmemFlags, passthrough: readonly string[]): boolean {
  return o.output !== undefined || o.outputAll === true || passthrough.length > 0;
}

/** The machine flags of `memhp lsmem`, as commander hands them over (text, checked by {@link machineOptionsFromFlags}). */
export interface MachineFlags {
  /** --kernel: a profile name. */
  kernel: string;
  /** --memory: boot RAM. */
  memory?: string;
  /** --nodes: the NUMA node count. */
  nodes?: string;
  /** --max-memory: maxmem. */
  maxMemory?: string;
  /** --plug SIZE[@NODE], each. */
  plug: string[];
  /** --cmdline WORD, each. */
  cmdline: string[];
}

/** A whole number as the schema takes it; anything else as the text given, for the schema to refuse. */
const wholeNumber = (v: string | undefined): number | string | undefined => (v !== undefined && /^\d+$/.test(v) ? Number(v) : v);

const FLAG_OF: Record<string, keyof MachineFlags> = { kernel: 'kernel', memory: 'memory', nodes: 'nodes', maxMemory: 'maxMemory', cmdline: 'cmdline' };
const flagName = (k: string): string => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/**
 * The `Machine.create` options for lsmem's flags, checked by the scenario schema's machine validator:
 * the same message as a scenario gets for the same bad value (`--nodes two: expected a node count (1..64)`).
 */
export function machineOptionsFromFlags(o: MachineFlags): ReturnType<typeof simMachineOptions> {
  const r = machineSchema.safeParse({ kernel: o.kernel, memory: o.memory, nodes: wholeNumber(o.nodes), maxMemory: o.maxMemory, cmdline: o.cmdline });
  if (!r.success) {
    const messages = zodIssues(r.error);
    throw new MemhpError(
      r.error.issues
        .map((issue, n) => {
          const message = messages[n]!.message;
          const flag = FLAG_OF[String(issue.path[0])];
          if (!flag) return message;
          // For --cmdline, the word the issue is about: the parameter's name is the path's second part.
          const key = issue.code === 'unrecognized_keys' ? issue.keys[0] : issue.path[1];
          const word = flag === 'cmdline' ? (o.cmdline.find((w) => w.split('=')[0] === key) ?? o.cmdline.join(' ')) : String(o[flag]);
          return `${flagName(flag)} ${word}: ${message}`;
        })
        .join('; '),
    );
  }
  const [kernel] = r.data.kernels;
  return simMachineOptions(r.data, kernel!);
}

/** Parse `--plug SIZE[@NODE]` with the scenario's plug validator. */
export function plugFromFlag(text: string, id: string): { id: string; size: string; node: number } {
  const at = text.lastIndexOf('@');
  const [size, node] = at < 0 ? [text, '0'] : [text.slice(0, at), text.slice(at + 1)];
  const r = STEP_SCHEMAS.plug.safeParse({ id, size, node: wholeNumber(node) });
  if (!r.success) throw new MemhpError(`--plug ${text}: ${zodIssues(r.error).map((i) => i.message).join('; ')} (expected SIZE[@NODE], e.g. 1G@1)`);
  return { id, size: r.data.size, node: r.data.node ?? 0 };
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

/** The `lsmem` sub-command. */
export function lsmemCommand(opts: CommandOptions = {}): Command {
  const io = opts.io ?? processIo;
  const cmd = new PassthroughCommand('lsmem')
    .description("lsmem(1) of a simulated machine: util-linux lsmem reads the machine's sysfs (arguments after -- go to lsmem)")
    .option('--kernel <version>', `kernel profile: ${KERNEL_NAMES.join(', ')}`, MACHINE_DEFAULTS.kernel)
    .option('--memory <size>', `boot RAM on node 0 (default ${MACHINE_DEFAULTS.memory})`)
    .option('--nodes <n>', `NUMA nodes, node 1.. memoryless (default ${MACHINE_DEFAULTS.nodes})`)
    .option('--max-memory <size>', `maxmem (default ${MACHINE_DEFAULTS.maxMemory})`)
    .option('--plug <size@node>', 'plug a pc-dimm first (repeatable), e.g. 1G@1', collect, [])
    .option('--cmdline <word>', 'kernel command line word (repeatable), e.g. memhp_default_state=online_movable', collect, []);
  addLsmemOptions(cmd, { json: true });
  return cmd.action(async (o: MachineFlags & LsmemFlags) => {
    const args = lsmemArgs(o, cmd.passthrough);
    const plugs = o.plug.map((p, i) => [p, plugFromFlag(p, `dimm${i}`)] as const);
    const m = await Machine.create(machineOptionsFromFlags(o));
    try {
      for (const [text, p] of plugs) {
        await m.plugDimm(p).catch((e: unknown) => {
          throw new MemhpError(`--plug ${text}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
        });
      }
      io.stdout(await lsmem(m.sysfs, args));
    } finally {
      await m.close();
    }
  });
}
