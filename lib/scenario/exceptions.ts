/**
 * The exceptions file: divergences between a guest and the simulator that are known, understood and
 * accepted for now, each with its reason and the kernels it concerns. A difference an exception
 * matches is reported as excepted and does not fail a conformance run. JSON or YAML:
 *
 * ```yaml
 * exceptions:
 *   - name: reonline-zone-after-failed-eject
 *     reason: the model re-onlines with the default policy but keeps Movable
 *     kernels: [6.1, 6.12, latest]
 *     scenario: unplug-rejected*          # optional, * is a wildcard
 *     step: 5                             # optional
 *     kind: snapshot                      # optional: meta, result, trace, snapshot, census, expect
 *     match: 'memory3[2-9]/valid_zones'   # optional regular expression on the printed difference
 *     stepMatch: 'hard_offline_page'      # optional regular expression on the step's text
 * ```
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { LATEST } from '../kernel/profile.js';
import { ScenarioError } from './errors.js';
import { KERNEL_NAMES, parseDocument, zodIssues, type ScenarioFormat, type ScenarioKernel } from './schema.js';

/** What part of an observation a difference is in. */
export type DifferenceKind = 'meta' | 'result' | 'trace' | 'snapshot' | 'census' | 'expect';

/** One documented divergence. */
export interface DivergenceException {
  /** Short stable name. */
  readonly name: string;
  /** Why the divergence exists and is accepted (what is missing in the model, or what the guest does oddly). */
  readonly reason: string;
  /** The kernel profiles it concerns ('latest' is stored as the profile it stands for). */
  readonly kernels: readonly string[];
  /** Scenario name, `*` a wildcard; any when absent. */
  readonly scenario?: string;
  /** Step index; any when absent. */
  readonly step?: number;
  /** Which kind of difference; any when absent. */
  readonly kind?: DifferenceKind;
  /** Regular expression the printed difference must match; any when absent. */
  readonly match?: string;
  /**
   * Regular expression the step's text must match (`write /sys/devices/system/memory/hard_offline_page "0x100000000"`):
   * a divergence of one kind of step in any scenario, as generated ones are; any when absent.
   */
  readonly stepMatch?: string;
}

const KINDS = ['meta', 'result', 'trace', 'snapshot', 'census', 'expect'] as const satisfies readonly DifferenceKind[];

const regex = z.string().refine((s) => {
  try {
    new RegExp(s);
    return true;
  } catch {
    return false;
  }
}, 'expected a regular expression');

const exceptionSchema = z.strictObject({
  name: z.string({ error: 'expected a name' }).min(1, 'expected a name'),
  reason: z.string({ error: 'expected the reason for the divergence' }).min(1, 'expected the reason for the divergence'),
  kernels: z
    .array(
      z.preprocess((v) => (typeof v === 'number' ? String(v) : v), z.enum(KERNEL_NAMES as [ScenarioKernel, ...ScenarioKernel[]], { error: `expected a kernel: ${KERNEL_NAMES.join(', ')}` })),
      { error: 'expected the list of kernels it concerns' },
    )
    .min(1, 'expected at least one kernel')
    .transform((ks) => [...new Set(ks.map((k) => (k === 'latest' ? LATEST : k)))]),
  scenario: z.string().optional(),
  step: z.number().int().min(0, 'expected a step index').optional(),
  kind: z.enum(KINDS, { error: `expected one of ${KINDS.join(', ')}` }).optional(),
  match: regex.optional(),
  stepMatch: regex.optional(),
});

const fileSchema = z.preprocess((v) => (Array.isArray(v) ? { exceptions: v } : v), z.strictObject({ exceptions: z.array(exceptionSchema).default([]) }));

/** Validate a parsed exceptions document (a list, or `{exceptions: [...]}`). Invalid → {@link ScenarioError} naming the field. */
export function validateExceptions(doc: unknown, source?: string): DivergenceException[] {
  const r = fileSchema.safeParse(doc ?? []);
  if (!r.success) throw new ScenarioError(source, zodIssues(r.error));
  const names = new Set<string>();
  for (const [i, e] of r.data.exceptions.entries()) {
    if (names.has(e.name)) throw new ScenarioError(source, [{ path: `exceptions[${i}].name`, message: `duplicate name '${e.name}'` }]);
    names.add(e.name);
  }
  return r.data.exceptions;
}

/** Read an exceptions file (`.json`, `.yaml`, `.yml`). */
export async function loadExceptions(file: string): Promise<DivergenceException[]> {
  const text = await readFile(file, 'utf8');
  const format: ScenarioFormat = path.extname(file).toLowerCase() === '.json' ? 'json' : 'yaml';
  return validateExceptions(parseDocument(text, format, file), file);
}

/**
 * Read exceptions from files and directories (a directory: every `.yaml`, `.yml` and `.json` in it, by
 * name). Names must be unique across all of them.
 */
export async function loadExceptionsFrom(paths: readonly string[]): Promise<DivergenceException[]> {
  const files: string[] = [];
  for (const p of paths) {
    if ((await stat(p)).isDirectory()) files.push(...(await readdir(p)).filter((f) => /\.(ya?ml|json)$/i.test(f)).sort().map((f) => path.join(p, f)));
    else files.push(p);
  }
  const out: DivergenceException[] = [];
  const from = new Map<string, string>();
  for (const f of files) {
    for (const [i, e] of (await loadExceptions(f)).entries()) {
      const other = from.get(e.name);
      if (other !== undefined) throw new ScenarioError(f, [{ path: `exceptions[${i}].name`, message: `duplicate name '${e.name}' (also in ${other})` }]);
      from.set(e.name, f);
      out.push(e);
    }
  }
  return out;
}

const glob = (pattern: string): RegExp => new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);

/** The facts of a difference an exception is matched against. */
export interface ExceptionSubject {
  /** Scenario name. */
  readonly scenario: string;
  /** Kernel profile name. */
  readonly kernel: string;
  /** Step index, undefined for whole-observation differences. */
  readonly step: number | undefined;
  /** Difference kind. */
  readonly kind: DifferenceKind;
  /** The printed difference. */
  readonly text: string;
  /** The step's text, for step differences. */
  readonly stepText?: string;
}

/** Whether an exception covers a difference. */
export function exceptionMatches(e: DivergenceException, d: ExceptionSubject): boolean {
  if (!e.kernels.includes(d.kernel)) return false;
  if (e.scenario !== undefined && !glob(e.scenario).test(d.scenario)) return false;
  if (e.step !== undefined && e.step !== d.step) return false;
  if (e.kind !== undefined && e.kind !== d.kind) return false;
  if (e.match !== undefined && !new RegExp(e.match).test(d.text)) return false;
  if (e.stepMatch !== undefined && (d.stepText === undefined || !new RegExp(e.stepMatch).test(d.stepText))) return false;
  return true;
}
