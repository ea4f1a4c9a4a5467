/**
 * One machine description for every way in. `Machine.create`, `Guest.boot`, a scenario's `machine:`
 * and `memhp lsmem`'s flags describe QEMU's `pc` machine with the same fields, filled from one table
 * of defaults ({@link MACHINE_DEFAULTS}) and checked by one validator, so the same bad value gets the
 * same message everywhere (`nodes: expected a node count (1..64)`), whichever door it came in by.
 *
 * The kernel command line is checked here by what memhp models, with the kernel's parameter names;
 * how each kernel version then reads an accepted value (kstrtobool's spellings, `force`) is the
 * profile's business (lib/kernel/profile.ts).
 */
import { z } from 'zod';
import { KernelError } from './errors.js';
import type { OnlineType } from './kernel/profile.js';
import type { Size } from './size.js';
import { sizeBytes } from './size.js';

/** A size as text: a byte count or a string with a binary unit as QEMU reads `-m` ('512M', '1G'). */
export type SizeText = string;

/** The memory-hotplug parameters of the kernel command line, by their kernel names. */
export interface KernelCmdline {
  /** `memhp_default_state=`: the online type of hot-added blocks (sets auto_online_blocks). */
  memhp_default_state?: OnlineType;
  /** `memory_hotplug.online_policy=`: zone selection for MMOP_ONLINE. */
  'memory_hotplug.online_policy'?: 'contig-zones' | 'auto-movable';
  /** `memory_hotplug.auto_movable_ratio=` (percent, default 301). */
  'memory_hotplug.auto_movable_ratio'?: number;
  /** `memory_hotplug.auto_movable_numa_aware=` (default Y). */
  'memory_hotplug.auto_movable_numa_aware'?: boolean;
  /** `memory_hotplug.memmap_on_memory=`: on, off, or (6.12+) `force`. */
  'memory_hotplug.memmap_on_memory'?: boolean | 'force';
  /** `movable_node`: hotpluggable nodes' memory goes to ZONE_MOVABLE. */
  movable_node?: boolean;
}

/**
 * The machine as every interface takes it: QEMU's `pc` machine (`-m MEMORY,slots=SLOTS,maxmem=MAXMEMORY
 * -smp CPUS`, NUMA nodes) and the memory-hotplug words of the kernel command line. Absent fields take
 * {@link MACHINE_DEFAULTS}.
 */
export interface MachineSpec {
  /** Boot RAM, all on node 0 (`-m`). */
  memory?: Size;
  /** NUMA nodes: node 0 has the boot RAM, nodes 1.. start memoryless (with a vCPU each while vCPUs last). */
  nodes?: number;
  /** vCPUs (`-smp`); default one per node. With several nodes vCPU n is on node n, the rest on node 0. */
  cpus?: number;
  /** DIMM slots (`-m …,slots=`). */
  slots?: number;
  /** `-m …,maxmem=`: boot RAM plus the hotplug window. */
  maxMemory?: Size;
  /** Memory-hotplug kernel parameters: words as on a command line (`memhp_default_state=online_movable`) or a map. */
  cmdline?: readonly string[] | KernelCmdline;
}

/** A {@link MachineSpec} checked and completed from {@link MACHINE_DEFAULTS}. */
export interface ResolvedMachineSpec {
  /** Boot RAM. */
  memory: SizeText;
  /** NUMA nodes. */
  nodes: number;
  /** vCPUs, when given (the default, one per node, is the consumer's to apply). */
  cpus?: number;
  /** DIMM slots. */
  slots: number;
  /** maxmem. */
  maxMemory: SizeText;
  /** The kernel parameters. */
  cmdline: KernelCmdline;
}

/**
 * The defaults of every machine field, the same for the simulator, guests, scenarios and the CLI: a
 * small guest that boots fast under TCG, with room for a few GiB of DIMMs. The kernel defaults to the
 * newest profile ('latest'); a scenario without `kernel:` runs on all of them.
 */
export const MACHINE_DEFAULTS = { kernel: 'latest', memory: '512M', nodes: 1, slots: 8, maxMemory: '8G' } as const;

const ONLINE_TYPES = ['offline', 'online', 'online_kernel', 'online_movable'] as const satisfies readonly OnlineType[];

/** @internal Items joined for a message. */
export const list = (xs: readonly string[]): string => xs.join(', ');
/** @internal YAML reads `6.12` and `1` as numbers (and callers may give bigints); where text is meant, take the number's text. */
export const numberAsText = (v: unknown): unknown => (typeof v === 'number' || typeof v === 'bigint' ? String(v) : v);

/** @internal A positive size. */
export const sizeText = z.preprocess(
  numberAsText,
  z
    .string({ error: "expected a size: a byte count or a string such as '256M' or '1G'" })
    .refine((s) => (sizeBytes(s) ?? 0) > 0, "expected a size: a byte count or a string such as '256M' or '1G'"),
);
/** @internal A whole number of at least 0. */
export const uint = (what: string) => z.number({ error: `expected ${what}` }).int(`expected ${what}`).min(0, `expected ${what}`);
/** @internal A whole number in [min, max], with one message for every way of missing it. */
export const count = (what: string, min: number, max: number) =>
  z.number({ error: `expected ${what}` }).int(`expected ${what}`).min(min, `expected ${what}`).max(max, `expected ${what}`);

/** @internal An error map for strict objects: name the unknown key and the known ones. */
export function unknownKey(what: string, known: readonly string[]) {
  return (iss: { code?: string; keys?: string[] }): string | undefined =>
    iss.code === 'unrecognized_keys' ? `unknown ${what} ${(iss.keys ?? []).map((k) => `'${k}'`).join(', ')} (expected one of: ${list(known)})` : undefined;
}

/** kstrtobool's spellings, plus YAML's true/false. */
const kernelBool = z.preprocess((v) => {
  if (typeof v === 'number' && (v === 0 || v === 1)) return v === 1;
  if (typeof v !== 'string') return v;
  if (/^(1|y|yes|on|true)$/i.test(v)) return true;
  if (/^(0|n|no|off|false)$/i.test(v)) return false;
  return v;
}, z.boolean({ error: 'expected a boolean (1/0, Y/N, on/off)' }));

const cmdlineSchema = z.preprocess(
  // The list form is what a kernel command line looks like: `word` or `name=value`.
  (v) => {
    if (!Array.isArray(v) || !v.every((w) => typeof w === 'string')) return v;
    const o: Record<string, unknown> = {};
    for (const w of v as string[]) {
      const eq = w.indexOf('=');
      o[eq < 0 ? w : w.slice(0, eq)] = eq < 0 ? true : w.slice(eq + 1);
    }
    return o;
  },
  z.strictObject(
    {
      memhp_default_state: z.enum(ONLINE_TYPES, { error: `expected an online type (${list(ONLINE_TYPES)})` }).optional(),
      'memory_hotplug.online_policy': z.enum(['contig-zones', 'auto-movable'], { error: 'expected contig-zones or auto-movable' }).optional(),
      'memory_hotplug.auto_movable_ratio': z.preprocess((v) => (typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v), uint('a percentage (a whole number)')).optional(),
      'memory_hotplug.auto_movable_numa_aware': kernelBool.optional(),
      'memory_hotplug.memmap_on_memory': z.union([z.literal('force'), kernelBool], { error: 'expected a boolean (1/0, Y/N) or force' }).optional(),
      movable_node: kernelBool.optional(),
    },
    {
      error: (iss) =>
        iss.code === 'unrecognized_keys'
          ? `unknown kernel parameter ${iss.keys.map((k) => `'${k}'`).join(', ')} (memhp models: memhp_default_state, memory_hotplug.online_policy, memory_hotplug.auto_movable_ratio, memory_hotplug.auto_movable_numa_aware, memory_hotplug.memmap_on_memory, movable_node)`
          : iss.code === 'invalid_type' && iss.expected === 'object'
            ? "expected kernel parameters: a list of words such as 'memhp_default_state=online_movable', or a map"
            : undefined,
    },
  ),
);

/** The machine fields other than the kernel, for {@link machineFieldsSchema} and the scenario schema. */
const MACHINE_FIELDS = ['memory', 'nodes', 'cpus', 'slots', 'maxMemory', 'cmdline'] as const;

/**
 * The validator of the machine fields (all but the kernel), with {@link MACHINE_DEFAULTS}; the
 * scenario schema adds `kernel` (a list) to it.
 *
 * @internal
 */
export const machineFieldsShape = {
  memory: sizeText.default(MACHINE_DEFAULTS.memory),
  nodes: count('a node count (1..64)', 1, 64).default(MACHINE_DEFAULTS.nodes),
  cpus: count('a vCPU count (1..288)', 1, 288).optional(),
  slots: count('a slot count (0..256)', 0, 256).default(MACHINE_DEFAULTS.slots),
  maxMemory: sizeText.default(MACHINE_DEFAULTS.maxMemory),
  cmdline: cmdlineSchema.default({}),
};

const machineFieldsSchema = z.strictObject(machineFieldsShape, { error: unknownKey('machine field', MACHINE_FIELDS) });

/**
 * Check a {@link MachineSpec} and complete it from {@link MACHINE_DEFAULTS}. A bad field throws a
 * `KernelError` EINVAL naming the field and what was expected there, the message a scenario file and
 * the CLI give for the same value. Fields outside the spec (a `Machine.create` option such as
 * `autoOnline`) are the caller's and ignored here.
 */
export function resolveMachineSpec(spec: MachineSpec): ResolvedMachineSpec {
  const picked = Object.fromEntries(MACHINE_FIELDS.filter((k) => spec[k] !== undefined).map((k) => [k, spec[k]]));
  const r = machineFieldsSchema.safeParse(picked);
  if (r.success) return r.data as ResolvedMachineSpec;
  const text = r.error.issues.map((i) => {
    const p = i.code === 'unrecognized_keys' && i.keys.length === 1 ? [...i.path, i.keys[0]!] : i.path;
    const field = p.map(String).join('.');
    const given = p.length === 1 ? spec[p[0] as keyof MachineSpec] : undefined;
    return `${field}: ${i.message}${given !== undefined && typeof given !== 'object' ? `, got ${JSON.stringify(typeof given === 'bigint' ? String(given) : given)}` : ''}`;
  });
  throw new KernelError('EINVAL', text.join('; '));
}

/** The parameters in the order {@link kernelCmdline} writes them (the order of {@link KernelCmdline}). */
const CMDLINE_ORDER: readonly (keyof KernelCmdline)[] = [
  'memhp_default_state',
  'memory_hotplug.online_policy',
  'memory_hotplug.auto_movable_ratio',
  'memory_hotplug.auto_movable_numa_aware',
  'memory_hotplug.memmap_on_memory',
  'movable_node',
];

/** The kernel command-line words of a machine description, e.g. `['memhp_default_state=online_movable']`. */
export function kernelCmdline(c: KernelCmdline): string[] {
  const out: string[] = [];
  for (const k of CMDLINE_ORDER) {
    const v = c[k];
    if (v === undefined) continue;
    if (k === 'movable_node') {
      if (v) out.push(k);
    } else out.push(`${k}=${v === true ? '1' : v === false ? '0' : String(v)}`);
  }
  return out;
}
