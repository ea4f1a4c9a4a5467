/**
 * A validated {@link Scenario} back to the document form of the suite's files (`steps: [{plug: {…}}]`,
 * `machine.kernel`, the command line as kernel words), and as YAML text that `loadScenario` reads back to
 * the same scenario (odd bytes such as NUL and CR come out as YAML escapes).
 */
import { Document, isMap, isSeq } from 'yaml';
import { kernelCmdline, type Scenario, type Step } from '../scenario/schema.js';

/** One step in the file form: `{plug: {id, size}}`, or a bare word for a step without arguments (`snapshot`). */
export function stepDocument(s: Step): Record<string, unknown> | string {
  const { op, ...args } = s;
  // An inject's default priority and absent optional fields are left out, as a person would write it.
  const fields = Object.fromEntries(Object.entries(args).filter(([k, v]) => v !== undefined && !(op === 'inject' && k === 'priority' && v === 0)));
  return Object.keys(fields).length ? { [op]: fields } : op;
}

/** The scenario as a plain document that `validateScenario` turns back into the same scenario. */
export function scenarioDocument(s: Scenario): Record<string, unknown> {
  const { kernels, cmdline, cpus, ...machine } = s.machine;
  return {
    name: s.name,
    ...(s.description !== undefined ? { description: s.description } : {}),
    machine: { kernel: kernels, ...machine, ...(cpus !== undefined ? { cpus } : {}), cmdline: kernelCmdline(cmdline) },
    steps: s.steps.map(stepDocument),
  };
}

/** The scenario as a YAML file of the suite, with an optional leading comment (each line prefixed `# `). */
export function scenarioYaml(s: Scenario, comment?: string): string {
  const head = comment ? `${comment.split('\n').map((l) => `# ${l}`.trimEnd()).join('\n')}\n` : '';
  // Flow style for step arguments and the kernel list keeps one step per line, as the suite's files are written.
  const doc = new Document(scenarioDocument(s));
  const kernels = doc.getIn(['machine', 'kernel']);
  if (isSeq(kernels)) kernels.flow = true;
  const steps = doc.get('steps');
  if (isSeq(steps)) for (const item of steps.items) if (isMap(item)) for (const pair of item.items) if (isMap(pair.value) || isSeq(pair.value)) pair.value.flow = true;
  return head + doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}
