/**
 * The differ: compares two observations of one scenario step by step (result, trace records,
 * snapshots, censuses; never a step's kernel log lines, see {@link STEP_FIELDS_COMPARED}) after the
 * normalisations of `normalise.ts`, and prints what differs the way a kernel engineer reads it (over
 * 400 lines: comparing and printing share one walk over the steps, kept together):
 *
 * ```text
 * step 1: plug d1 256M node=1
 *   notify memory MEM_GOING_ONLINE start_pfn=0x100000: guest has status_change_nid=1 / sim has status_change_nid=-1
 *   only guest: uevent online /devices/system/memory/memory33
 * step 2: snapshot plugged
 *   /sys/devices/system/memory/memory33/valid_zones: guest 'Normal Movable' vs sim 'Movable Normal'
 *   /proc/meminfo MemTotal: guest '+262144 kB' vs sim '+229376 kB'
 *   /proc/zoneinfo node1 Movable present: guest '65536' vs sim '57344'
 * ```
 *
 * (MemTotal guest vs sim is its change since the run's baseline snapshot: see `boot-reservations` in normalise.ts.)
 */
import type { JsonValue, TraceRecord } from '../kernel/trace.js';
import { exceptionMatches, type DifferenceKind, type DivergenceException } from './exceptions.js';
import { NORMALISATIONS, comparableStep, normalisationApplies, type Normalisation } from './normalise.js';

export { STEP_FIELDS_COMPARED, UNCOMPARED_STEP_FIELDS } from './normalise.js';
import type { Observation, Snapshot, StepObservation, StepResult } from './observation.js';
import { MEMMAP_ROOT, MEMORY_ROOT, NODE_ROOT, flattenSnapshot, fileValueText } from './snapshot.js';

export type { DifferenceKind } from './exceptions.js';

/** One thing that differs between the two observations. */
export interface Difference {
  /** The step it is in; undefined for the observation as a whole. */
  readonly step: number | undefined;
  /** That step's text. */
  readonly stepText?: string;
  /** Which part of the observation. */
  readonly kind: DifferenceKind;
  /** What differs: 'result', a record's identity (`notify memory MEM_ONLINE start_pfn=0x100000`), a sysfs path. */
  readonly subject: string;
  /** The printed line (without the step heading). */
  readonly text: string;
}

/** A difference covered by an exception. */
export interface ExceptedDifference {
  /** The difference. */
  readonly difference: Difference;
  /** The exception that covers it. */
  readonly exception: DivergenceException;
}

/** The outcome of {@link diffObservations}. */
export interface DiffReport {
  /** The scenario (of the first observation). */
  readonly scenario: string;
  /** The kernel profile (of the first observation). */
  readonly kernel: string;
  /** How the two sides are called in the output, e.g. ['guest', 'sim']. */
  readonly labels: readonly [string, string];
  /** Differences no exception covers. */
  readonly differences: readonly Difference[];
  /** Differences an exception covers. */
  readonly excepted: readonly ExceptedDifference[];
  /** Normalisations that changed something, with how many records or steps each touched. */
  readonly normalised: Readonly<Record<string, number>>;
  /** True when nothing differs outside the exceptions. */
  readonly ok: boolean;
}

/** Options of {@link diffObservations}. */
export interface DiffOptions {
  /** Names for the two sides; default their target kinds ('guest', 'sim'), made distinct when equal. */
  labels?: readonly [string, string];
  /** Documented divergences to set apart. */
  exceptions?: readonly DivergenceException[];
  /** The normalisation table; default {@link NORMALISATIONS}. Tests pass their own. */
  normalisations?: readonly Normalisation[];
}

// ---------------------------------------------------------------------------------------------
// Records as text.

const HEX_FIELD = /pfn|nr_pages/;

function fieldText(k: string, v: JsonValue | undefined): string {
  if (v === undefined) return `no ${k}`;
  if (typeof v === 'number' && HEX_FIELD.test(k) && Number.isInteger(v) && v >= 0) return `${k}=0x${v.toString(16)}`;
  return `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`;
}

/** The identity of a record, what a kernel engineer calls it: `notify memory MEM_GOING_ONLINE start_pfn=0x100000`. */
export function recordKey(r: TraceRecord): string {
  switch (r.type) {
    case 'notify': {
      const where = r.chain === 'node' ? fieldText('nid', r.nid) : fieldText('start_pfn', r.start_pfn);
      return `notify ${String(r.chain)} ${String(r.action)} ${where}`;
    }
    case 'uevent':
      return `uevent ${String(r.action)} ${String(r.devpath)}`;
    case 'qmp-event': {
      const d = r.data as { device?: JsonValue } | null;
      return `qmp ${String(r.event)}${d && typeof d === 'object' && 'device' in d ? ` ${String(d.device)}` : ''}`;
    }
    case 'lockdep':
      return `lockdep ${String(r.kind)}`;
  }
  // An observation read from a file may hold a record type this version does not know.
  return String((r as { type: unknown }).type);
}

const KEY_FIELDS: Record<string, readonly string[]> = {
  notify: ['type', 'chain', 'action', 'start_pfn', 'nid', 'value'],
  uevent: ['type', 'action', 'devpath'],
  'qmp-event': ['type', 'event'],
  lockdep: ['type', 'kind'],
};

/** A record on one line: its identity, then its other fields (`value` left out: the action names it). */
export function formatRecord(r: TraceRecord): string {
  const skip = KEY_FIELDS[r.type] ?? ['type'];
  const rest = Object.entries(r)
    .filter(([k]) => !skip.includes(k))
    .map(([k, v]) => fieldText(k, v));
  return [recordKey(r), ...rest].join(' ');
}

/** Key order does not matter in a record; a canonical JSON text to compare by. */
function canonical(v: JsonValue): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, JsonValue>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k]!)}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

// ---------------------------------------------------------------------------------------------
// Trace comparison.

/** Index pairs of a longest common subsequence of `a` and `b` (by equal strings). */
function lcs(a: readonly string[], b: readonly string[]): [number, number][] {
  const n = a.length;
  const m = b.length;
  const t = new Uint32Array((n + 1) * (m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--) t[i * (m + 1) + j] = a[i] === b[j] ? t[(i + 1) * (m + 1) + j + 1]! + 1 : Math.max(t[(i + 1) * (m + 1) + j]!, t[i * (m + 1) + j + 1]!);
  const out: [number, number][] = [];
  for (let i = 0, j = 0; i < n && j < m; ) {
    if (a[i] === b[j]) out.push([i++, j++]);
    else if (t[(i + 1) * (m + 1) + j]! >= t[i * (m + 1) + j + 1]!) i++;
    else j++;
  }
  return out;
}

function fieldDiff(a: TraceRecord, b: TraceRecord, la: string, lb: string): string {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => canonical(a[k] ?? null) !== canonical(b[k] ?? null) || (k in a) !== (k in b));
  return `${recordKey(a)}: ${la} has ${keys.map((k) => fieldText(k, a[k])).join(', ')} / ${lb} has ${keys.map((k) => fieldText(k, b[k])).join(', ')}`;
}

/** Compare one ordered stream of records. */
function diffStream(a: readonly TraceRecord[], b: readonly TraceRecord[], la: string, lb: string): { subject: string; text: string }[] {
  const ca = a.map(canonical);
  const cb = b.map(canonical);
  const anchors = [...lcs(ca, cb), [a.length, b.length] as [number, number]];
  const out: { subject: string; text: string; order: number }[] = [];
  const onlyA: { i: number; order: number }[] = [];
  const onlyB: { j: number; order: number }[] = [];
  let pi = 0;
  let pj = 0;
  for (const [ai, bj] of anchors) {
    // Between two anchors: records with the same identity on both sides differ in their fields.
    const ga = Array.from({ length: ai - pi }, (_, k) => pi + k);
    const gb = Array.from({ length: bj - pj }, (_, k) => pj + k);
    for (const i of ga) {
      const k = gb.findIndex((j) => recordKey(a[i]!) === recordKey(b[j]!));
      if (k >= 0) {
        const j = gb.splice(k, 1)[0]!;
        out.push({ subject: recordKey(a[i]!), text: fieldDiff(a[i]!, b[j]!, la, lb), order: i });
      } else onlyA.push({ i, order: i });
    }
    for (const j of gb) onlyB.push({ j, order: j });
    pi = ai + 1;
    pj = bj + 1;
  }
  // The same record unmatched on both sides is one record in another place.
  for (let x = 0; x < onlyA.length; x++) {
    const i = onlyA[x]!.i;
    const y = onlyB.findIndex(({ j }) => ca[i] === cb[j]);
    if (y < 0) continue;
    const j = onlyB.splice(y, 1)[0]!.j;
    onlyA.splice(x--, 1);
    out.push({ subject: recordKey(a[i]!), text: `order: ${formatRecord(a[i]!)} is record ${i + 1} of ${a.length} on ${la}, ${j + 1} of ${b.length} on ${lb}`, order: i });
  }
  for (const { i } of onlyA) out.push({ subject: recordKey(a[i]!), text: `only ${la}: ${formatRecord(a[i]!)}`, order: i });
  for (const { j } of onlyB) out.push({ subject: recordKey(b[j]!), text: `only ${lb}: ${formatRecord(b[j]!)}`, order: j });
  return out.sort((p, q) => p.order - q.order).map(({ subject, text }) => ({ subject, text }));
}

// ---------------------------------------------------------------------------------------------
// Snapshots and results.

const quote = (s: string): string => `'${s}'`;

/** A snapshot flattened (`flattenSnapshot`), its entries rewritten by the snapshot normalisations. */
type FlatSnapshot = Map<string, string>;

function diffSnapshots(fa: FlatSnapshot, fb: FlatSnapshot, a: Snapshot, b: Snapshot, la: string, lb: string): { subject: string; text: string }[] {
  const out: { subject: string; text: string }[] = [];
  const dirOnly = new Set<string>();
  // A whole block, node or firmware memmap directory on one side only: one line, not one per file.
  const dirs = (s: Snapshot): [string, string][] => [
    ...Object.entries(s.memory.blocks).map(([k, v]): [string, string] => [`${MEMORY_ROOT}/${k}`, `state=${fileValueText(v.state)} valid_zones=${quote(fileValueText(v.valid_zones))} ${v.nodes.join(' ')}`.trim()]),
    ...Object.entries(s.node.nodes).map(([k, v]): [string, string] => [`${NODE_ROOT}/${k}`, `${v.length} memory links`]),
    ...Object.entries(a.ram && b.ram ? (s.ram?.memmap ?? {}) : {}).map(([k, v]): [string, string] => [
      `${MEMMAP_ROOT}/${k}`,
      `${fileValueText(v.start)}-${fileValueText(v.end)} ${fileValueText(v.type)}`,
    ]),
  ];
  const da = new Map(dirs(a));
  const db = new Map(dirs(b));
  for (const [d, text] of da) if (!db.has(d)) (dirOnly.add(d), out.push({ subject: d, text: `${d}/: only ${la} has it (${text})` }));
  for (const [d, text] of db) if (!da.has(d)) (dirOnly.add(d), out.push({ subject: d, text: `${d}/: only ${lb} has it (${text})` }));
  const inDirOnly = (p: string): boolean => dirOnly.has(p.slice(0, p.lastIndexOf('/')));
  for (const p of new Set([...fa.keys(), ...fb.keys()])) {
    if (inDirOnly(p)) continue;
    const va = fa.get(p);
    const vb = fb.get(p);
    if (va === vb) continue;
    out.push({ subject: p, text: `${p}: ${la} ${va === undefined ? '(absent)' : quote(va)} vs ${lb} ${vb === undefined ? '(absent)' : quote(vb)}` });
  }
  return out;
}

/**
 * Compare two censuses (already normalised). A directory on one side only is one line, not one per
 * entry below it; so is a /proc file one side could not read.
 */
function diffCensus(ca: ReadonlyMap<string, string>, cb: ReadonlyMap<string, string>, la: string, lb: string): { subject: string; text: string }[] {
  const out: { subject: string; text: string }[] = [];
  const onlyDirs: string[] = [];
  const under = (p: string): boolean => onlyDirs.some((d) => p.startsWith(`${d}/`));
  for (const p of new Set([...ca.keys(), ...cb.keys()])) {
    if (under(p)) continue;
    const va = ca.get(p);
    const vb = cb.get(p);
    if (va === vb) continue;
    const dirA = va?.startsWith('dir ') && !vb?.startsWith('dir ');
    const dirB = vb?.startsWith('dir ') && !va?.startsWith('dir ');
    if (dirA || dirB) {
      onlyDirs.push(p);
      const [side, count] = dirA ? [la, [...ca.keys()].filter((k) => k.startsWith(`${p}/`)).length] : [lb, [...cb.keys()].filter((k) => k.startsWith(`${p}/`)).length];
      const other = dirA ? vb : va;
      out.push({ subject: p, text: `${p}/: only ${side} has this directory (${count} entries below)${other ? `; the other has ${other}` : ''}` });
      continue;
    }
    out.push({ subject: p, text: `${p}: ${la} ${va ?? '(absent)'} vs ${lb} ${vb ?? '(absent)'}` });
  }
  return out;
}

/** A result as one word or a quoted text: `ok`, `EBUSY`, `'Movable'` (a read), `n/a`. */
export function resultText(r: StepResult): string {
  if (r.status === 'error') return r.errno;
  if (r.status === 'n/a') return 'n/a';
  return r.value !== undefined ? JSON.stringify(r.value.replace(/\n$/, '')) : 'ok';
}

/**
 * One line per step with its result and time, unmet expectations flagged, for progress output and
 * JUnit `<system-out>`: `step 3: write …/memory32/state "offline" (expect EBUSY) → EINVAL  12 ms  UNMET expected EBUSY, got EINVAL`.
 */
export function formatSteps(o: Observation): string {
  const head = `${o.scenario} on ${o.target} ${o.kernel.release}: ${o.bootMs !== undefined ? `boot ${o.bootMs.toFixed(0)} ms, ` : ''}steps ${o.ms.toFixed(0)} ms`;
  return [head, ...o.steps.map((s) => `step ${s.index}: ${s.text} → ${resultText(s.result)}  ${s.ms.toFixed(0)} ms${s.unmet ? `  UNMET ${s.unmet}` : ''}`)].join('\n');
}

// ---------------------------------------------------------------------------------------------
// The differ.

function applicable(table: readonly Normalisation[], a: Observation, b: Observation): Normalisation[] {
  const profiles = [...new Set([a.kernel.profile, b.kernel.profile])];
  return table.filter((n) => normalisationApplies(n, profiles, [a.target, b.target]));
}

/** Compare two observations of the same scenario. */
export function diffObservations(a: Observation, b: Observation, opts: DiffOptions = {}): DiffReport {
  const labels: readonly [string, string] = opts.labels ?? (a.target !== b.target ? [a.target, b.target] : [`${a.target} ${a.kernel.release}`, `${b.target} ${b.kernel.release}`]);
  const [la, lb] = labels[0] === labels[1] ? [`${labels[0]} (a)`, `${labels[1]} (b)`] : labels;
  const norms = applicable(opts.normalisations ?? NORMALISATIONS, a, b);
  const normalised: Record<string, number> = {};
  const count = (n: Normalisation): void => void (normalised[n.name] = (normalised[n.name] ?? 0) + 1);
  const all: Difference[] = [];
  const meta = (subject: string, text: string): void => void all.push({ step: undefined, kind: 'meta', subject, text });

  if (a.scenario !== b.scenario) meta('scenario', `scenario: ${la} ran ${quote(a.scenario)}, ${lb} ran ${quote(b.scenario)}`);
  if (a.kernel.profile !== b.kernel.profile) meta('kernel', `kernel: ${la} ${a.kernel.profile} (${a.kernel.release}) vs ${lb} ${b.kernel.profile} (${b.kernel.release})`);
  if (a.steps.length !== b.steps.length) meta('steps', `steps: ${la} ran ${a.steps.length}, ${lb} ran ${b.steps.length}`);

  const normaliseTrace = (t: readonly TraceRecord[]): TraceRecord[] => {
    const out: TraceRecord[] = [];
    next: for (let r of t) {
      for (const n of norms) {
        if (!n.record) continue;
        const r2 = n.record(r);
        if (r2 !== r) count(n);
        if (r2 === null) continue next;
        r = r2;
      }
      out.push(r);
    }
    return out;
  };
  const streamOf = norms.find((n) => n.stream);
  // Snapshots are compared flattened, after the snapshot normalisations (each counted once per step it rewrote).
  // /proc and firmware entries only when both sides recorded them: an observation saved before snapshots did has none.
  const snapNorms = norms.filter((n) => n.snapshotEntry);
  const censusNorms = norms.filter((n) => n.censusEntry || n.snapshotEntry);
  /** A census with the census normalisations, and (on its /proc keys) the snapshot ones, applied. */
  const normaliseCensus = (c: Readonly<Record<string, string>>, base: FlatSnapshot | undefined, touched: Set<Normalisation>): FlatSnapshot => {
    const m = new Map<string, string>();
    for (const [p, v0] of Object.entries(c)) {
      let v = v0;
      for (const n of censusNorms) {
        const v2 = n.censusEntry ? n.censusEntry(p, v) : p.startsWith('/proc/') ? n.snapshotEntry!(p, v, base) : v;
        if (v2 !== v) (touched.add(n), (v = v2));
      }
      m.set(p, v);
    }
    return m;
  };
  const baseA = a.baseline && flattenSnapshot(a.baseline);
  const baseB = b.baseline && flattenSnapshot(b.baseline);
  const flatPair = (x: Snapshot, y: Snapshot): [FlatSnapshot, FlatSnapshot] => {
    const both = x.ram !== undefined && y.ram !== undefined;
    const flat = (s: Snapshot, base: FlatSnapshot | undefined, touched: Set<Normalisation>): FlatSnapshot => {
      const m = flattenSnapshot(both ? s : { ...s, ram: undefined });
      for (const [p, v0] of m) {
        let v = v0;
        for (const n of snapNorms) {
          const v2 = n.snapshotEntry!(p, v, base);
          if (v2 !== v) (touched.add(n), (v = v2));
        }
        m.set(p, v);
      }
      return m;
    };
    const touched = new Set<Normalisation>();
    const pair: [FlatSnapshot, FlatSnapshot] = [flat(x, baseA, touched), flat(y, baseB, touched)];
    for (const n of touched) count(n);
    return pair;
  };

  for (let i = 0; i < Math.min(a.steps.length, b.steps.length); i++) {
    const sa = comparableStep(a.steps[i]!);
    const sb = comparableStep(b.steps[i]!);
    const add = (kind: DifferenceKind, subject: string, text: string): void => void all.push({ step: i, stepText: sa.text, kind, subject, text });
    if (sa.text !== sb.text) {
      add('meta', 'step', `step text: ${la} ${quote(sa.text)} vs ${lb} ${quote(sb.text)}`);
      continue;
    }
    if (sa.unmet) add('expect', 'expect', `${la}: ${sa.unmet}`);
    if (sb.unmet) add('expect', 'expect', `${lb}: ${sb.unmet}`);
    const skip = norms.find((n) => n.skipStep?.(sa, sb));
    if (skip) {
      count(skip);
      continue;
    }
    const ra = resultText(sa.result);
    const rb = resultText(sb.result);
    if (ra !== rb) add('result', 'result', `result: ${la} ${ra} / ${lb} ${rb}`);
    const ta = normaliseTrace(sa.trace);
    const tb = normaliseTrace(sb.trace);
    if (streamOf?.stream) {
      const keys = [...new Set([...ta, ...tb].map(streamOf.stream))];
      if (keys.length > 1) count(streamOf);
      for (const k of keys) {
        const pick = (t: TraceRecord[]) => t.filter((r) => streamOf.stream!(r) === k);
        for (const d of diffStream(pick(ta), pick(tb), la, lb)) add('trace', d.subject, d.text);
      }
    } else for (const d of diffStream(ta, tb, la, lb)) add('trace', d.subject, d.text);
    if (sa.snapshot && sb.snapshot) {
      const [fa, fb] = flatPair(sa.snapshot, sb.snapshot);
      for (const d of diffSnapshots(fa, fb, sa.snapshot, sb.snapshot, la, lb)) add('snapshot', d.subject, d.text);
    } else if (sa.snapshot || sb.snapshot) add('snapshot', 'snapshot', `snapshot: only ${sa.snapshot ? la : lb} took one`);
    if (sa.census && sb.census) {
      const touched = new Set<Normalisation>();
      const ca = normaliseCensus(sa.census, baseA, touched);
      const cb = normaliseCensus(sb.census, baseB, touched);
      for (const n of touched) count(n);
      for (const d of diffCensus(ca, cb, la, lb)) add('census', d.subject, d.text);
    } else if (sa.census || sb.census) add('census', 'census', `census: only ${sa.census ? la : lb} took one`);
  }

  const differences: Difference[] = [];
  const excepted: ExceptedDifference[] = [];
  for (const d of all) {
    const e = opts.exceptions?.find((x) => exceptionMatches(x, { scenario: a.scenario, kernel: a.kernel.profile, step: d.step, kind: d.kind, text: d.text, ...(d.stepText !== undefined ? { stepText: d.stepText } : {}) }));
    if (e) excepted.push({ difference: d, exception: e });
    else differences.push(d);
  }
  return { scenario: a.scenario, kernel: a.kernel.profile, labels: [la, lb], differences, excepted, normalised, ok: differences.length === 0 };
}

function grouped(ds: readonly { d: Difference; suffix?: string }[]): string[] {
  const lines: string[] = [];
  let last: number | undefined | null = null;
  for (const { d, suffix } of ds) {
    if (d.step !== last) {
      if (d.step !== undefined) lines.push(`step ${d.step}: ${d.stepText ?? ''}`);
      last = d.step;
    }
    lines.push(`${d.step === undefined ? '' : '  '}${d.text}${suffix ?? ''}`);
  }
  return lines;
}

/** The report as text: a headline, then the differences grouped by step, then the excepted ones. */
export function formatDiff(r: DiffReport): string {
  const [la, lb] = r.labels;
  const norm = Object.entries(r.normalised).map(([k, v]) => `${k} ×${v}`);
  const head =
    `${r.scenario} on ${r.kernel}: ${la} vs ${lb}: ` +
    (r.differences.length ? `${r.differences.length} difference${r.differences.length === 1 ? '' : 's'}` : 'no differences') +
    (r.excepted.length ? `, ${r.excepted.length} excepted` : '') +
    (norm.length ? ` (normalised: ${norm.join(', ')})` : '');
  const lines = [head, ...grouped(r.differences.map((d) => ({ d })))];
  if (r.excepted.length) {
    // Each difference names its exception; each exception's reason is printed once, after them.
    lines.push('excepted:', ...grouped(r.excepted.map(({ difference: d, exception: e }) => ({ d, suffix: `  [${e.name}]` }))).map((l) => `  ${l}`));
    for (const e of new Set(r.excepted.map((x) => x.exception))) lines.push(`  [${e.name}] ${e.reason}`);
  }
  return lines.join('\n');
}
