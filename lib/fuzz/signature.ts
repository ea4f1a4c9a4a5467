/**
 * The signature of a divergence: what a shrink candidate must still show to count as the same bug.
 *
 * It is taken at the FIRST step where the two sides differ (later differences are usually its fallout:
 * a block left online on one side differs in every later snapshot). It holds the step's operation (and
 * for `write`/`read` its path) and, per difference at that step, its kind and what it is about with
 * every number masked: `result EINVAL/ok`, `trace only-a uevent online /devices/system/memory/memory#`,
 * `snapshot /sys/devices/system/memory/memory#/valid_zones`. Masking keeps it stable when dropping
 * steps moves a DIMM to another address or renumbers its blocks; the errno names and record kinds keep
 * it from wandering into a different bug.
 */
import type { DiffReport, Difference } from '../scenario/diff.js';
import type { Observation, StepResult } from '../scenario/observation.js';

/** A divergence's signature; two are the same bug when their {@link Signature.key}s are equal. */
export interface Signature {
  /** The operation of the first differing step, with its path for a read or write (`write /sys/devices/system/memory/memory#/state`); `run` for whole-run differences. */
  readonly step: string;
  /** The masked differences at that step, sorted and without repeats. */
  readonly parts: readonly string[];
  /** `step` and `parts` as one comparable string. */
  readonly key: string;
}

/** Every run of digits (decimal or hex after 0x) as `#`: `memory33` → `memory#`, `start_pfn=0x108000` → `start_pfn=#`. */
export function maskNumbers(s: string): string {
  return s.replace(/0x[0-9a-f]+/gi, '#').replace(/\d+/g, '#');
}

/** A result as a class: `ok`, `value` (a read's text), the errno name, or `n/a`. */
export function resultClass(r: StepResult | undefined): string {
  if (!r) return 'none';
  if (r.status === 'error') return r.errno;
  if (r.status === 'n/a') return 'n/a';
  return r.value !== undefined ? 'value' : 'ok';
}

/** What a trace difference's printed line says happened: a record on one side only, out of order, or with other fields. */
function traceShape(d: Difference, labels: readonly [string, string]): string {
  if (d.text.startsWith(`only ${labels[0]}:`)) return 'only-a';
  if (d.text.startsWith(`only ${labels[1]}:`)) return 'only-b';
  if (d.text.startsWith('order:')) return 'order';
  return 'fields';
}

/** The step word of a step text, with the path for reads and writes: `write /sys/…/memory#/state`. */
function stepOf(stepText: string | undefined): string {
  const [op = 'run', arg] = (stepText ?? 'run').split(' ');
  return maskNumbers(op === 'write' || op === 'read' ? `${op} ${arg ?? ''}` : op);
}

/**
 * The signature of a report of `a` against `b` (the observations it compared, for the results), or
 * undefined when nothing differs outside the exceptions.
 */
export function divergenceSignature(report: DiffReport, a: Observation, b: Observation): Signature | undefined {
  if (report.ok) return undefined;
  const stepped = report.differences.filter((d) => d.step !== undefined);
  const first = stepped.length ? Math.min(...stepped.map((d) => d.step!)) : undefined;
  const at = first === undefined ? report.differences : stepped.filter((d) => d.step === first);
  const parts = new Set<string>();
  for (const d of at) {
    if (d.kind === 'result') parts.add(`result ${resultClass(a.steps[d.step!]?.result)}/${resultClass(b.steps[d.step!]?.result)}`);
    else if (d.kind === 'trace') parts.add(`trace ${traceShape(d, report.labels)} ${maskNumbers(d.subject)}`);
    else parts.add(`${d.kind} ${maskNumbers(d.subject)}`);
  }
  const step = first === undefined ? 'run' : stepOf(at[0]?.stepText);
  const sorted = [...parts].sort();
  return { step, parts: sorted, key: `${step} | ${sorted.join('; ')}` };
}

/** The signature of a simulator run that could not complete: the failing step's operation and the masked message. */
export function crashSignature(stepText: string | undefined, message: string): Signature {
  const step = stepOf(stepText);
  const parts = [`sim-error ${maskNumbers(message.split('\n')[0]!.replace(/^[^:]*: /, ''))}`];
  return { step, parts, key: `${step} | ${parts[0]}` };
}
