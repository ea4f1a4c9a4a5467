/**
 * The scenario format (docs/scenarios.md is its reference): one JSON or YAML document drives the simulator and a
 * real guest alike. It is validated with zod; an invalid document gets a {@link ScenarioError} that
 * names the path of every bad field (`steps[3].plug.size`) and what was expected there. Over 400 lines
 * because the format's hand-written types (its TSDoc is the reference) sit beside the validators that are
 * checked against them at compile time; the machine part lives in lib/machine-spec.ts.
 *
 * Names are the kernel's: command-line parameters as the kernel spells them, online types as `state`
 * takes them, notifier actions as `include/linux/memory.h` has them, errno names.
 *
 * ```yaml
 * name: plug-online-movable
 * machine:
 *   kernel: [6.1, 6.12, latest]
 *   memory: 512M
 *   nodes: 2
 *   cmdline: [memhp_default_state=online_movable]
 * steps:
 *   - plug: {id: d1, size: 1G, node: 1}
 *   - snapshot
 *   - write: {path: /sys/devices/system/memory/memory32/state, value: offline}
 *   - inject: {action: MEM_GOING_ONLINE, errno: ENOMEM}
 *   - write: {path: /sys/devices/system/memory/memory32/state, value: online, expect: ENOMEM}
 *   - uninject
 *   - unplug: d1
 * ```
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { errnoCode, isErrnoCode, type ErrnoCode } from '../errors.js';
import { KERNEL_VERSIONS, LATEST, type KernelSpec } from '../kernel/profile.js';
import { count, list, machineFieldsShape, numberAsText, sizeText, uint, unknownKey, type ResolvedMachineSpec, type SizeText } from '../machine-spec.js';
import { PAGE_KINDS, ZONE_TYPES, type AllocRequest } from '../native/constants.js';
import { ScenarioError, type ScenarioIssue } from './errors.js';

export { kernelCmdline, type KernelCmdline, type SizeText } from '../machine-spec.js';

// ---------------------------------------------------------------------------------------------
// Types (hand-written for their TSDoc; the schemas below are checked against them).

/** A kernel a scenario runs on: a modelled version, or 'latest' (the newest profile's kernel, lib/kernel/profile.ts `LATEST`). */
export type ScenarioKernel = KernelSpec;

/** What a step expects: `'ok'`, or the errno name the kernel should fail it with (`'EBUSY'`). */
export type Expect = 'ok' | ErrnoCode;

/**
 * The machine a scenario runs on: QEMU's `pc` machine, or the simulator's model of it. Its fields and
 * defaults are every interface's (lib/machine-spec.ts); a scenario adds the kernels it is meant for.
 */
export interface MachineDescription extends ResolvedMachineSpec {
  /** The kernels the scenario is meant for (a run picks one). Default: all of them. */
  kernels: ScenarioKernel[];
}

/** `plug`: ACPI pc-dimm add (`device_add pc-dimm,id=…,node=…`). */
export interface PlugStep {
  op: 'plug';
  /** The device id. */
  id: string;
  /** The DIMM size. */
  size: SizeText;
  /** The DIMM's node (ACPI _PXM). Default 0. */
  node?: number;
  /** Expected outcome; unchecked when absent. */
  expect?: Expect;
}

/** `unplug`: ACPI eject (`device_del`); a guest refusal is EBUSY. */
export interface UnplugStep {
  op: 'unplug';
  /** The device id. */
  id: string;
  /** Expected outcome; unchecked when absent. */
  expect?: Expect;
}

/** `write`: `echo -n value > path`. */
export interface WriteStep {
  op: 'write';
  /** Absolute path (sysfs, debugfs). */
  path: string;
  /** The bytes written. */
  value: string;
  /** Expected outcome; unchecked when absent. */
  expect?: Expect;
}

/** `read`: `cat path`; the step's result value is the file's text. */
export interface ReadStep {
  op: 'read';
  /** Absolute path. */
  path: string;
  /** Expected outcome; unchecked when absent. */
  expect?: Expect;
  /** Expected text, compared without its trailing newline; unchecked when absent. */
  value?: string;
}

/** Notifier actions the memory notifier error-injection module has a file for. */
export type InjectAction = 'MEM_GOING_ONLINE' | 'MEM_GOING_OFFLINE';

/**
 * `inject`: make the memory notifier chain fail `action` with `-errno`: load
 * `memory-notifier-error-inject` (with `priority`) and write to
 * `/sys/kernel/debug/notifier-error-inject/memory/actions/<action>/error`.
 */
export interface InjectStep {
  op: 'inject';
  /** The action to fail. */
  action: InjectAction;
  /** The error the notifier returns (written as its negative number). */
  errno: ErrnoCode;
  /**
   * The module's notifier priority (a module parameter). Default 0. A priority other than the loaded
   * module's reloads it, which clears the other action's injected error too.
   */
  priority: number;
}

/** `uninject`: write 0 to the error file of `action`, or of both actions. The module stays loaded. */
export interface UninjectStep {
  op: 'uninject';
  /** The action to stop failing; all when absent. */
  action?: InjectAction;
}

/** `insmod`: load a kernel module. */
export interface InsmodStep {
  op: 'insmod';
  /** Module name, e.g. 'memory-notifier-error-inject'. */
  module: string;
  /** Module parameters. */
  params?: Record<string, string | number>;
  /** Expected outcome; unchecked when absent. */
  expect?: Expect;
}

/** `rmmod`: unload a kernel module. */
export interface RmmodStep {
  op: 'rmmod';
  /** Module name. */
  module: string;
  /** Expected outcome; unchecked when absent. */
  expect?: Expect;
}

/** `alloc`: allocate pages in the simulated machine (simulator only; a guest reports it not applicable). */
export interface AllocStep extends AllocRequest {
  op: 'alloc';
  /** A name for the allocation, for later steps. */
  id?: string;
  /** Expected outcome; unchecked when absent. */
  expect?: Expect;
}

/** `free`: free every page of an earlier `alloc` by its id (simulator only, like `alloc`). */
export interface FreeStep {
  op: 'free';
  /** The `id` of the allocation. */
  id: string;
  /** Expected outcome; unchecked when absent. */
  expect?: Expect;
}

/** `pin`: pin the pages of an earlier movable `alloc` (long-term GUP): they block offline until unpinned (simulator only). */
export interface PinStep {
  op: 'pin';
  /** The `id` of the allocation. */
  id: string;
  /** Expected outcome; unchecked when absent. */
  expect?: Expect;
}

/** `unpin`: unpin the pages of an earlier `alloc` (simulator only). */
export interface UnpinStep {
  op: 'unpin';
  /** The `id` of the allocation. */
  id: string;
  /** Expected outcome; unchecked when absent. */
  expect?: Expect;
}

/**
 * `sh`: run a shell script in the guest (guest only; the simulator reports it not applicable), e.g. a
 * workload that makes the kernel allocate what the simulator gets from `alloc`. A non-zero exit status
 * is an error (EIO); the output is the step's value.
 */
export interface ShStep {
  op: 'sh';
  /** The script, run by the guest's busybox `sh`. */
  script: string;
  /** Expected outcome; unchecked when absent. */
  expect?: Expect;
}

/** `snapshot`: record /sys/devices/system/memory, the node files, /proc/zoneinfo, MemTotal, /proc/iomem System RAM and /sys/firmware/memmap. */
export interface SnapshotStep {
  op: 'snapshot';
  /** A label for the snapshot. */
  name?: string;
}

/**
 * `census`: every file, directory and link under the hotplug trees (memory and node devices, the
 * memory bus, firmware memmap, ACPI hotplug, the ACPI devices memory blocks link to, the
 * memory_hotplug parameters, the error-injection debugfs) with type, mode, link target and value,
 * and the hotplug lines of /proc (lib/scenario/census.ts).
 */
export interface CensusStep {
  op: 'census';
  /** A label for the census. */
  name?: string;
}

/** One step of a scenario, discriminated by `op` (the key it was written under). */
export type Step =
  | PlugStep
  | UnplugStep
  | WriteStep
  | ReadStep
  | InjectStep
  | UninjectStep
  | InsmodStep
  | RmmodStep
  | AllocStep
  | FreeStep
  | PinStep
  | UnpinStep
  | ShStep
  | SnapshotStep
  | CensusStep;

/** The name of a step operation. */
export type StepOp = Step['op'];

/** A validated scenario. */
export interface Scenario {
  /** The scenario's name (default: the file name without extension). */
  name: string;
  /** What the scenario shows. */
  description?: string;
  /** The machine it runs on. */
  machine: MachineDescription;
  /** What it does, in order. */
  steps: Step[];
}

// ---------------------------------------------------------------------------------------------
// Schemas.

/**
 * The kernels a full run visits, in order: every profile's version (lib/kernel/profile.ts), the newest
 * as 'latest'.
 */
export const SCENARIO_KERNELS: readonly ScenarioKernel[] = [...KERNEL_VERSIONS.filter((v) => v !== LATEST), 'latest'];
/** The kernels a scenario may name: every version, and 'latest'. */
export const KERNEL_NAMES: readonly ScenarioKernel[] = [...KERNEL_VERSIONS, 'latest'];
const ERRNO_EXAMPLES = 'such as EBUSY, EINVAL, ENOMEM, or E<n> for a number without a name';
const INJECT_ACTIONS = ['MEM_GOING_ONLINE', 'MEM_GOING_OFFLINE'] as const satisfies readonly InjectAction[];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const errnoNameSchema = z.custom<ErrnoCode>((v) => typeof v === 'string' && isErrnoCode(v), { error: `expected an errno name ${ERRNO_EXAMPLES}` });
const expectSchema = z.custom<Expect>((v) => v === 'ok' || (typeof v === 'string' && isErrnoCode(v)), { error: `expected 'ok' or an errno name ${ERRNO_EXAMPLES}` });
const deviceId = z.string({ error: 'expected a device id' }).regex(/^[A-Za-z][A-Za-z0-9_.-]*$/, 'expected a QEMU device id: a letter, then letters, digits, _ . -');
const sysPath = z.string({ error: 'expected an absolute path' }).startsWith('/', 'expected an absolute path');
const allocId = z.preprocess(numberAsText, z.string({ error: 'expected an allocation id' }).min(1, 'expected an allocation id'));
const moduleName = z.string({ error: 'expected a module name' }).regex(/^[A-Za-z0-9_-]+$/, "expected a module name such as 'memory-notifier-error-inject'");

/**
 * The validator of `machine.kernel` (one kernel or a list); the CLI's `--kernel` flags use it too.
 *
 * @internal
 */
export const kernelsSchema = z.preprocess(
  (v) => (Array.isArray(v) ? v.map(numberAsText) : v === undefined ? undefined : [numberAsText(v)]),
  z
    .array(z.enum(KERNEL_NAMES as [ScenarioKernel, ...ScenarioKernel[]], { error: `expected a kernel: ${list(KERNEL_NAMES)} (quote versions in YAML: '6.10' reads as 6.1)` }))
    .min(1, 'expected at least one kernel'),
);

/**
 * The validator of `machine`; `memhp lsmem` checks its flags with it (lib/cli/lsmem.ts).
 *
 * @internal
 */
export const machineSchema = z
  .strictObject({ kernel: kernelsSchema.default([...SCENARIO_KERNELS]), ...machineFieldsShape }, { error: unknownKey('machine field', ['kernel', ...Object.keys(machineFieldsShape)]) })
  .transform(({ kernel, ...rest }): MachineDescription => ({ kernels: kernel, ...rest }));

/** An object schema whose bare-value shorthand (`unplug: d1`) fills `field`; null/absent is `{}`. */
function args<S extends z.core.$ZodShape>(op: string, shape: S, shorthand?: keyof S & string) {
  return z.preprocess(
    (v) => (v === null || v === undefined ? {} : shorthand && (typeof v === 'string' || typeof v === 'number') ? { [shorthand]: v } : v),
    z.strictObject(shape, {
      error: (iss) =>
        iss.code === 'unrecognized_keys'
          ? `unknown field ${iss.keys.map((k) => `'${k}'`).join(', ')} of ${op} (expected: ${list(Object.keys(shape))})`
          : iss.code === 'invalid_type' && iss.expected === 'object'
            ? `expected the fields of ${op} (${list(Object.keys(shape))})${shorthand ? ` or just its ${shorthand}` : ''}`
            : undefined,
    }),
  );
}

/**
 * The validator of each step's fields, by operation; `memhp lsmem --plug` uses `plug`'s.
 *
 * @internal
 */
export const STEP_SCHEMAS = {
  plug: args('plug', { id: deviceId, size: sizeText, node: uint('a node id').optional(), expect: expectSchema.optional() }),
  unplug: args('unplug', { id: deviceId, expect: expectSchema.optional() }, 'id'),
  write: args('write', {
    path: sysPath,
    value: z.preprocess(numberAsText, z.string({ error: 'expected the text to write' })),
    expect: expectSchema.optional(),
  }),
  read: args('read', { path: sysPath, expect: expectSchema.optional(), value: z.preprocess(numberAsText, z.string()).optional() }, 'path'),
  inject: args('inject', {
    action: z.enum(INJECT_ACTIONS, { error: `expected a notifier action with an error-injection file (${list(INJECT_ACTIONS)})` }),
    // An errno name, or its number with either sign as the `error` file takes it.
    errno: z.preprocess((v) => (typeof v === 'number' ? (errnoCode(v) ?? v) : v), errnoNameSchema),
    priority: z.number({ error: 'expected a notifier priority (an integer)' }).int('expected a notifier priority (an integer)').default(0),
  }),
  uninject: args('uninject', { action: z.enum(INJECT_ACTIONS, { error: `expected ${list(INJECT_ACTIONS)}` }).optional() }, 'action'),
  insmod: args('insmod', {
    module: moduleName,
    params: z.record(z.string(), z.union([z.string(), z.number()], { error: 'expected a parameter value (text or number)' })).optional(),
    expect: expectSchema.optional(),
  }, 'module'),
  rmmod: args('rmmod', { module: moduleName, expect: expectSchema.optional() }, 'module'),
  alloc: args('alloc', {
    id: allocId.optional(),
    count: count('a block count (1..)', 1, Number.MAX_SAFE_INTEGER),
    order: count('an order (0..10)', 0, 10).optional(),
    kind: z.enum(PAGE_KINDS, { error: `expected a page kind (${list(PAGE_KINDS)})` }).optional(),
    nid: uint('a node id').optional(),
    thisNode: z.boolean().optional(),
    highestZone: z.enum(ZONE_TYPES, { error: `expected a zone (${list(ZONE_TYPES)})` }).optional(),
    expect: expectSchema.optional(),
  }),
  free: args('free', { id: allocId, expect: expectSchema.optional() }, 'id'),
  pin: args('pin', { id: allocId, expect: expectSchema.optional() }, 'id'),
  unpin: args('unpin', { id: allocId, expect: expectSchema.optional() }, 'id'),
  sh: args('sh', { script: z.string({ error: 'expected a shell script' }).min(1, 'expected a shell script'), expect: expectSchema.optional() }, 'script'),
  snapshot: args('snapshot', { name: z.preprocess(numberAsText, z.string()).optional() }, 'name'),
  census: args('census', { name: z.preprocess(numberAsText, z.string()).optional() }, 'name'),
} as const;

/** The step operations, in the order the format documents them. */
export const STEP_OPS = Object.keys(STEP_SCHEMAS) as StepOp[];

// The schemas must produce exactly the documented step shapes (checked at compile time).
type Args<K extends StepOp> = Omit<Extract<Step, { op: K }>, 'op'>;
const _shapes: { [K in StepOp]: z.ZodType<Args<K>> } = STEP_SCHEMAS;
void _shapes;

const stepShape = Object.fromEntries(STEP_OPS.map((op) => [op, STEP_SCHEMAS[op].optional()])) as { [K in StepOp]: z.ZodOptional<(typeof STEP_SCHEMAS)[K]> };

const stepSchema = z.preprocess(
  // A bare word is a step without arguments: `- snapshot`, `- census`, `- uninject`.
  (v) => (typeof v === 'string' ? { [v]: null } : isObject(v) && Object.keys(v).length === 0 ? undefined : v),
  z
    .strictObject(stepShape, {
      error: (iss) =>
        iss.code === 'unrecognized_keys'
          ? `unknown step ${iss.keys.map((k) => `'${k}'`).join(', ')} (expected one of: ${list(STEP_OPS)})`
          : iss.code === 'invalid_type' && iss.expected === 'object'
            ? `expected a step: an object with one key (${list(STEP_OPS)}) or a bare word such as snapshot`
            : undefined,
    })
    .superRefine((o, ctx) => {
      const keys = Object.keys(o);
      // Zero keys means the object had only unknown ones (an empty step never gets here): already reported.
      if (keys.length > 1) ctx.addIssue({ code: 'custom', message: `expected exactly one operation per step (${list(STEP_OPS)}), got ${list(keys)}` });
    })
    .transform((o, ctx): Step => {
      // zod runs this even after a non-fatal issue (an unknown key); there is then nothing to build.
      const first = Object.entries(o)[0] as [StepOp, object] | undefined;
      if (!first) {
        if (ctx.issues.length === 0) ctx.addIssue({ code: 'custom', message: 'expected a step' });
        return z.NEVER;
      }
      return { op: first[0], ...first[1] } as Step;
    }),
);

const scenarioSchema = z.strictObject(
  {
    name: z.string({ error: 'expected a scenario name' }).regex(/^[\w.@+-]+$/, 'expected a name of letters, digits and . _ - + @').optional(),
    description: z.string().optional(),
    machine: machineSchema.default(() => machineSchema.parse({})),
    steps: z.array(stepSchema, { error: 'expected a list of steps' }).min(1, 'expected at least one step'),
  },
  { error: unknownKey('top-level field', ['name', 'description', 'machine', 'steps']) },
);

// ---------------------------------------------------------------------------------------------
// Loading.

/** `steps[3].plug.size` from zod's path array. */
export function formatPath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const k of p) {
    if (typeof k === 'number') out += `[${k}]`;
    else {
      const s = String(k);
      out += /^[A-Za-z_$][\w$]*$/.test(s) ? (out ? `.${s}` : s) : `[${JSON.stringify(s)}]`;
    }
  }
  return out;
}

/** Turn zod issues into scenario issues: the path of the bad field, and zod's (or our) message. */
export function zodIssues(error: z.ZodError): ScenarioIssue[] {
  return error.issues.map((i) => {
    // Unrecognized keys are reported on the object; name the key itself in the path.
    const p = i.code === 'unrecognized_keys' && i.keys.length === 1 ? [...i.path, i.keys[0]!] : i.path;
    return { path: formatPath(p), message: i.message };
  });
}

/** The document format: by file extension, or sniffed ('{' starts JSON). */
export type ScenarioFormat = 'json' | 'yaml';

/** Parse JSON or YAML text to a plain value; syntax errors become a {@link ScenarioError} with the line. */
export function parseDocument(text: string, format: ScenarioFormat, source?: string): unknown {
  try {
    if (format === 'json') return JSON.parse(text) as unknown;
    return parseYaml(text, { prettyErrors: true }) as unknown;
  } catch (e) {
    const where = e instanceof YAMLParseError && e.linePos ? `line ${e.linePos[0].line}: ` : '';
    throw new ScenarioError(source, [{ path: '', message: `not valid ${format.toUpperCase()}: ${where}${(e as Error).message.split('\n')[0]}` }], { cause: e });
  }
}

/** Validate a parsed document as a scenario. `defaultName` names it when it has no `name`. */
export function validateScenario(doc: unknown, opts: { source?: string; defaultName?: string } = {}): Scenario {
  const r = scenarioSchema.safeParse(doc);
  if (!r.success) throw new ScenarioError(opts.source, zodIssues(r.error));
  const { name, description, machine, steps } = r.data;
  return { name: name ?? opts.defaultName ?? 'scenario', ...(description !== undefined ? { description } : {}), machine, steps };
}

/** Default cap on the size of a scenario document: the suite's files are a few KiB. */
export const MAX_SCENARIO_BYTES = 2 ** 20;
/** Default cap on the steps of a scenario. */
export const MAX_SCENARIO_STEPS = 10_000;

/** Caps of {@link parseScenario} and {@link loadScenario}; parsing and validation cost grows with both. */
export interface ScenarioLimits {
  /** Longest document in bytes (UTF-8); default {@link MAX_SCENARIO_BYTES}. */
  maxBytes?: number;
  /** Most steps; default {@link MAX_SCENARIO_STEPS}. */
  maxSteps?: number;
}

function tooBig(source: string | undefined, bytes: number, maxBytes: number): ScenarioError {
  return new ScenarioError(source, [{ path: '', message: `the document is ${bytes} bytes, larger than the ${maxBytes}-byte cap (maxBytes)` }]);
}

/**
 * Parse and validate scenario text. Format: given, else JSON when the text starts with `{`, else YAML.
 * Text over `maxBytes`, or with more than `maxSteps` steps, is refused before it is parsed or validated.
 */
export function parseScenario(text: string, opts: { format?: ScenarioFormat; source?: string; defaultName?: string } & ScenarioLimits = {}): Scenario {
  const maxBytes = opts.maxBytes ?? MAX_SCENARIO_BYTES;
  const maxSteps = opts.maxSteps ?? MAX_SCENARIO_STEPS;
  // A string has at most as many UTF-16 units as UTF-8 bytes, so the cheap test goes first.
  if (text.length > maxBytes) throw tooBig(opts.source, Buffer.byteLength(text), maxBytes);
  const bytes = Buffer.byteLength(text);
  if (bytes > maxBytes) throw tooBig(opts.source, bytes, maxBytes);
  const format = opts.format ?? (text.trimStart().startsWith('{') ? 'json' : 'yaml');
  const doc = parseDocument(text, format, opts.source);
  const steps = typeof doc === 'object' && doc !== null ? (doc as { steps?: unknown }).steps : undefined;
  if (Array.isArray(steps) && steps.length > maxSteps) {
    throw new ScenarioError(opts.source, [{ path: 'steps', message: `${steps.length} steps, more than the ${maxSteps}-step cap (maxSteps)` }]);
  }
  return validateScenario(doc, opts);
}

/** Read, parse and validate a scenario file (`.json`, `.yaml`, `.yml`); it is named after the file by default. */
export async function loadScenario(file: string, limits: ScenarioLimits = {}): Promise<Scenario> {
  const maxBytes = limits.maxBytes ?? MAX_SCENARIO_BYTES;
  const { size } = await stat(file);
  if (size > maxBytes) throw tooBig(file, size, maxBytes); // before reading it
  const text = await readFile(file, 'utf8');
  const ext = path.extname(file).toLowerCase();
  const format: ScenarioFormat | undefined = ext === '.json' ? 'json' : ext === '.yaml' || ext === '.yml' ? 'yaml' : undefined;
  return parseScenario(text, { ...limits, source: file, defaultName: path.basename(file, ext), ...(format ? { format } : {}) });
}

// ---------------------------------------------------------------------------------------------
// Rendering.

/** A step as a kernel engineer would say it: `plug d1 1G node=1`, `write …/memory32/state 'offline' (expect EBUSY)`. */
export function stepText(s: Step): string {
  const exp = 'expect' in s && s.expect !== undefined ? ` (expect ${s.expect})` : '';
  switch (s.op) {
    case 'plug':
      return `plug ${s.id} ${s.size}${s.node !== undefined ? ` node=${s.node}` : ''}${exp}`;
    case 'unplug':
      return `unplug ${s.id}${exp}`;
    case 'write':
      return `write ${s.path} ${JSON.stringify(s.value)}${exp}`;
    case 'read':
      return `read ${s.path}${s.value !== undefined ? ` (expect ${JSON.stringify(s.value)})` : ''}${exp}`;
    case 'inject':
      return `inject ${s.action} -${s.errno}${s.priority ? ` priority=${s.priority}` : ''}`;
    case 'uninject':
      return `uninject ${s.action ?? 'all'}`;
    case 'insmod':
      return `insmod ${s.module}${Object.entries(s.params ?? {}).map(([k, v]) => ` ${k}=${v}`).join('')}${exp}`;
    case 'rmmod':
      return `rmmod ${s.module}${exp}`;
    case 'alloc': {
      const o = [`count=${s.count}`, s.order !== undefined && `order=${s.order}`, s.kind && `kind=${s.kind}`, s.nid !== undefined && `nid=${s.nid}`, s.thisNode && '__GFP_THISNODE', s.highestZone && `highestZone=${s.highestZone}`];
      return `alloc${s.id ? ` ${s.id}` : ''} ${o.filter(Boolean).join(' ')}${exp}`;
    }
    case 'free':
    case 'pin':
    case 'unpin':
      return `${s.op} ${s.id}${exp}`;
    case 'sh': {
      const line = s.script.trim().split('\n')[0]!;
      return `sh ${JSON.stringify(line.length > 60 ? `${line.slice(0, 57)}...` : line)}${exp}`;
    }
    case 'snapshot':
    case 'census':
      return `${s.op}${s.name ? ` ${s.name}` : ''}`;
  }
}
