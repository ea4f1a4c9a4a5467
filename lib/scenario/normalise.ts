/**
 * The normalisations the differ applies before comparing two observations: the ONE place where
 * a known, explained difference between a guest and the simulator (or two guest runs) is smoothed
 * over. Each entry says what it does, why, and for which kernels. Keep this table short: a divergence
 * that is not a property of how we observe belongs in the exceptions file, or in a fix to the model.
 * Which fields of a step are compared at all is {@link STEP_FIELDS_COMPARED}.
 */
import type { JsonValue, TraceRecord } from '../kernel/trace.js';
import type { StepObservation, TargetKind } from './observation.js';
import { MEMTOTAL_KEY, parseZoneinfoKey, zoneinfoKey } from './snapshot.js';

/**
 * Whether the differ (lib/scenario/diff.ts) compares each field of a {@link StepObservation}: a field
 * added to it does not compile until it is listed here. `dmesg` is not compared: kernel log lines
 * differ in wording, rate limiting and timing between the simulator and a guest (and between kernel
 * builds); they explain a result, and the result and the trace are what is compared. `index` and
 * `step` are implied by `text`; `ms` is the host's clock.
 */
export const STEP_FIELDS_COMPARED: { readonly [K in keyof StepObservation]-?: boolean } = {
  index: false,
  text: true,
  step: false,
  result: true,
  unmet: true,
  trace: true,
  snapshot: true,
  dmesg: false,
  census: true,
  ms: false,
};

/** The fields of a step observation the differ never looks at ({@link STEP_FIELDS_COMPARED}). */
export const UNCOMPARED_STEP_FIELDS: readonly (keyof StepObservation)[] = (Object.keys(STEP_FIELDS_COMPARED) as (keyof StepObservation)[]).filter((k) => !STEP_FIELDS_COMPARED[k]);

/** A step without its kernel log lines, as the differ takes it: no comparison of lib/scenario/diff.ts can read them. */
export function comparableStep(s: StepObservation): StepObservation {
  const { dmesg: _dmesg, ...rest } = s;
  return rest;
}

/** When a normalisation applies, by the kinds of the two observations compared. */
export type NormalisationScope =
  /** Whatever is compared. */
  | 'always'
  /** When at least one side is a guest. */
  | 'with-guest'
  /** When one side is a guest and the other the simulator. */
  | 'guest-vs-sim';

/** One entry of {@link NORMALISATIONS}. */
export interface Normalisation {
  /** Short stable name, shown in the differ's summary (`normalised: qmp-events ×3`). */
  readonly name: string;
  /** Why the difference is not a divergence. */
  readonly reason: string;
  /** Kernel profile names it applies to ('6.12'), or 'all'. */
  readonly kernels: readonly string[] | 'all';
  /** Which comparisons it applies to. */
  readonly scope: NormalisationScope;
  /** Rewrite one trace record, or drop it (null). Return the record itself when it does not apply. */
  readonly record?: (r: TraceRecord) => TraceRecord | null;
  /** Split a step's trace into streams, each compared in order on its own; the key of a record's stream. */
  readonly stream?: (r: TraceRecord) => string;
  /** True when a step pair is not compared at all. */
  readonly skipStep?: (a: StepObservation, b: StepObservation) => boolean;
  /**
   * Rewrite one entry of a flattened snapshot (`flattenSnapshot`: path → text), given the same
   * observation's baseline snapshot flattened alike (undefined when it has none). Return the text
   * itself when it does not apply.
   */
  readonly snapshotEntry?: (path: string, value: string, baseline: ReadonlyMap<string, string> | undefined) => string;
  /** Rewrite one line of a census (lib/scenario/census.ts): path → line. Return the line itself when it does not apply. */
  readonly censusEntry?: (path: string, line: string) => string;
}

/** `value` as its signed change from `base` ('+262144', '-8 kB'), when both are a count with the same unit. */
function change(value: string, base: string | undefined): string | undefined {
  const v = /^(\d+)( kB)?$/.exec(value);
  const b = base === undefined ? null : /^(\d+)( kB)?$/.exec(base);
  if (!v || !b || v[2] !== b[2]) return undefined;
  const d = Number(v[1]) - Number(b[1]);
  return `${d < 0 ? '-' : '+'}${Math.abs(d)}${v[2] ?? ''}`;
}

const without = (r: TraceRecord, fields: readonly string[]): TraceRecord => {
  const out: Record<string, JsonValue> = {};
  for (const [k, v] of Object.entries(r)) if (!fields.includes(k)) out[k] = v;
  return out as TraceRecord;
};

/** The normalisations, in the order they are applied. */
export const NORMALISATIONS: readonly Normalisation[] = [
  {
    name: 'prepare-finish-status-nids',
    reason:
      '6.12 does not initialise status_change_nid / status_change_nid_normal of struct memory_notify for ' +
      'MEM_PREPARE_ONLINE and MEM_FINISH_OFFLINE: a guest shows stack contents there',
    kernels: ['6.12'],
    scope: 'always',
    record: (r) =>
      r.type === 'notify' && r.chain === 'memory' && (r.action === 'MEM_PREPARE_ONLINE' || r.action === 'MEM_FINISH_OFFLINE')
        ? without(r, ['status_change_nid', 'status_change_nid_normal'])
        : r,
  },
  {
    name: 'lockdep',
    reason: "lock-validator reports are the simulator's own; Debian kernels are built without lockdep",
    kernels: 'all',
    scope: 'guest-vs-sim',
    record: (r) => (r.type === 'lockdep' ? null : r),
  },
  {
    name: 'trace-streams',
    reason:
      "a guest's uevents reach the trace through a user-space helper (busybox uevent → trace_marker) and its QMP " +
      'events through the host, so where they fall among the kprobe records is not the kernel\'s order: notifier ' +
      'records, uevents and QMP events are each compared in order, but not their interleaving',
    kernels: 'all',
    scope: 'with-guest',
    stream: (r) => (r.type === 'uevent' ? 'uevent' : r.type === 'qmp-event' ? 'qmp-event' : 'kernel'),
  },
  {
    name: 'boot-reservations',
    reason:
      'MemTotal and the managed pages of a zone populated at boot leave out what memblock kept for the kernel ' +
      "image, initrd, per-cpu areas, page tables and the memmap, which depends on the guest kernel's build and " +
      'the simulator only approximates: both are compared as their change since the baseline snapshot taken ' +
      'before step 0 (spanned, present, start_pfn and the managed pages of zones only hotplug populated are ' +
      'compared as they are)',
    kernels: 'all',
    scope: 'guest-vs-sim',
    snapshotEntry: (p, v, base) => {
      if (!base) return v;
      if (p === MEMTOTAL_KEY) return change(v, base.get(p)) ?? v;
      const k = parseZoneinfoKey(p);
      if (k?.field !== 'managed') return v;
      const present = base.get(zoneinfoKey(k.node, k.zone, 'present'));
      return present !== undefined && present !== '0' ? (change(v, base.get(p)) ?? v) : v;
    },
  },
  {
    name: 'live-counters',
    reason:
      "a node's meminfo, numastat and vmstat are the running kernel's allocation counters, which the simulator does " +
      'not keep; the census compares their type and mode, and the hotplug counters they hold are compared where they ' +
      'are exact: /proc/zoneinfo spanned, present, managed and start_pfn, and MemTotal',
    kernels: 'all',
    scope: 'always',
    censusEntry: (p, line) => (/^\/sys\/devices\/system\/node\/node\d+\/(meminfo|numastat|vmstat)$/.test(p) ? line.replace(/^(file \d+) .*$/s, '$1 <live counters>') : line),
  },
  {
    name: 'not-applicable-steps',
    reason: 'a step one target cannot run (alloc on a guest) says nothing about the other: its result and trace are not compared',
    kernels: 'all',
    scope: 'always',
    skipStep: (a, b) => a.result.status === 'n/a' || b.result.status === 'n/a',
  },
];

/** Whether a normalisation applies to a comparison of kernel `profile` between targets of these kinds. */
export function normalisationApplies(n: Normalisation, profiles: readonly string[], kinds: readonly [TargetKind, TargetKind]): boolean {
  if (n.kernels !== 'all' && !profiles.some((p) => n.kernels.includes(p))) return false;
  const guests = kinds.filter((k) => k === 'guest').length;
  if (n.scope === 'with-guest') return guests > 0;
  if (n.scope === 'guest-vs-sim') return guests === 1 && kinds.includes('sim');
  return true;
}
