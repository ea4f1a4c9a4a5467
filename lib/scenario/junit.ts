/**
 * JUnit XML for CI systems: one `<testsuite>` per kernel, one `<testcase>` per scenario. A case fails
 * when its observations differ outside the exceptions (or an expectation is unmet), and errors when a
 * run could not complete. Excepted divergences and per-step timings go to `<system-out>`. The format is
 * small enough to write by hand; only escaping needs care.
 */
import { formatDiff, type DiffReport } from './diff.js';

/** One scenario on one kernel, as a conformance run ends. */
export interface ConformanceCase {
  /** Scenario name. */
  readonly scenario: string;
  /** Kernel profile name ('6.12'). */
  readonly kernel: string;
  /** The comparison; absent when the run failed. */
  readonly report?: DiffReport;
  /** Why the run failed (boot failure, QEMU died), when it did. */
  readonly error?: string;
  /** Wall-clock seconds for the case (boot + both runs + diff). */
  readonly seconds?: number;
  /** Extra text for `<system-out>` (per-step timings). */
  readonly output?: string;
}

// XML 1.0 cannot carry most C0 controls even escaped; drop them (guest console tails contain some).
// eslint-disable-next-line no-control-regex
const INVALID = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;

/** Escape text for an XML attribute or element. */
export function xmlEscape(s: string): string {
  return s.replace(INVALID, '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

const attrs = (o: Record<string, string | number | undefined>): string =>
  Object.entries(o)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${k}="${xmlEscape(String(v))}"`)
    .join('');

/** The JUnit XML document for a set of cases. `name` prefixes suite names (default 'memhp conformance'). */
export function toJUnit(cases: readonly ConformanceCase[], name = 'memhp conformance'): string {
  const kernels = [...new Set(cases.map((c) => c.kernel))];
  const secs = (cs: readonly ConformanceCase[]): string => cs.reduce((t, c) => t + (c.seconds ?? 0), 0).toFixed(3);
  const failed = (c: ConformanceCase): boolean => !c.error && !!c.report && !c.report.ok;
  const out = ['<?xml version="1.0" encoding="UTF-8"?>'];
  out.push(`<testsuites${attrs({ name, tests: cases.length, failures: cases.filter(failed).length, errors: cases.filter((c) => c.error).length, time: secs(cases) })}>`);
  for (const k of kernels) {
    const cs = cases.filter((c) => c.kernel === k);
    out.push(`  <testsuite${attrs({ name: `${name} ${k}`, tests: cs.length, failures: cs.filter(failed).length, errors: cs.filter((c) => c.error).length, skipped: 0, time: secs(cs) })}>`);
    for (const c of cs) {
      out.push(`    <testcase${attrs({ name: c.scenario, classname: `memhp.conform.${k}`, time: (c.seconds ?? 0).toFixed(3) })}>`);
      if (c.error) out.push(`      <error${attrs({ message: c.error.split('\n')[0], type: 'run' })}>${xmlEscape(c.error)}</error>`);
      else if (c.report && !c.report.ok) {
        const n = c.report.differences.length;
        out.push(`      <failure${attrs({ message: `${n} difference${n === 1 ? '' : 's'} between ${c.report.labels.join(' and ')}`, type: 'divergence' })}>${xmlEscape(formatDiff(c.report))}</failure>`);
      }
      const sysout = [c.report && c.report.ok && c.report.excepted.length ? formatDiff(c.report) : undefined, c.output].filter(Boolean).join('\n');
      if (sysout) out.push(`      <system-out>${xmlEscape(sysout)}</system-out>`);
      out.push('    </testcase>');
    }
    out.push('  </testsuite>');
  }
  out.push('</testsuites>');
  return out.join('\n') + '\n';
}
