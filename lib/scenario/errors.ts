/**
 * Errors of the scenario layer: a bad scenario or exceptions file, and a run that could not go on.
 * A kernel's refusal inside a step is not an error here: it is the step's result (an errno name).
 */
import { MemhpError } from '../errors.js';
import type { Observation } from './observation.js';

/** One problem in a scenario (or exceptions) file: where, and what was expected there. */
export interface ScenarioIssue {
  /** The path of the bad field, e.g. `steps[3].plug.size`; empty for the document itself. */
  readonly path: string;
  /** What is wrong or what was expected, e.g. `expected a size such as '1G' or a byte count`. */
  readonly message: string;
}

/**
 * An invalid scenario or exceptions file. The message lists every issue as `path: message`, prefixed
 * with the file name when there is one; {@link ScenarioError.issues} has them one by one.
 */
export class ScenarioError extends MemhpError {
  /** The file (or other source label) the document came from, if known. */
  readonly source: string | undefined;
  /** Every problem found, in document order. */
  readonly issues: readonly ScenarioIssue[];

  constructor(source: string | undefined, issues: readonly ScenarioIssue[], options?: { cause?: unknown }) {
    const lines = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message));
    const head = source ? `${source}: ` : '';
    super(lines.length === 1 ? head + lines[0] : `${head}${lines.length} problems:\n  ${lines.join('\n  ')}`, options);
    this.source = source;
    this.issues = issues;
  }
}

/**
 * A run that stopped because something other than the kernel failed (QEMU died, a QMP command was
 * refused, the agent timed out). `observation` holds the steps completed so far; `cause` the failure.
 */
export class ScenarioRunError extends MemhpError {
  /** Index of the step that failed, or -1 when the run failed before its first step (boot). */
  readonly step: number;
  /** What was observed before the failure. */
  readonly observation: Observation | undefined;

  constructor(message: string, step: number, observation: Observation | undefined, cause: unknown) {
    super(message, { cause });
    this.step = step;
    this.observation = observation;
  }
}
