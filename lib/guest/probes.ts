/**
 * Guest kprobes: render `qemu/probes.tmpl` for one kernel from its BTF layout, and turn the lines the
 * guest's trace_pipe produced into memhp trace records (docs/architecture.md#trace-records: notify / uevent / qmp-event).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { memoryActionName, nodeActionName, type KernelProfile, type MemoryNotifyField } from '../kernel/profile.js';

const NOTIFY_FIELDS: readonly MemoryNotifyField[] = ['altmap_start_pfn', 'altmap_nr_pages', 'start_pfn', 'nr_pages', 'status_change_nid_normal', 'status_change_nid_high', 'status_change_nid'];
import type { JsonValue, NotifyRecord, TraceRecord } from '../kernel/trace.js';
import type { BtfMember, KernelLayout } from './btf.js';
import { GuestError } from './errors.js';

/** Directory of the guest-side files (`init.sh`, `probes.tmpl`). */
export const QEMU_DIR = qemuDir();

// lib/guest/ under tsx, dist/lib/guest/ once compiled: the package's qemu/ is two or three levels up.
function qemuDir(): string {
  for (const up of ['../../qemu/', '../../../qemu/']) {
    const dir = fileURLToPath(new URL(up, import.meta.url));
    if (existsSync(dir + 'init.sh')) return dir;
  }
  return fileURLToPath(new URL('../../qemu/', import.meta.url));
}

/** Any decoded line of the guest's trace, with its guest timestamp: every probe hit and every uevent. */
export interface ProbeRecord {
  /** Probe event name (`memchain`, `online_pages_ret`, …), or `uevent`. */
  event: string;
  /** Guest trace clock, seconds. */
  ts: number;
  cpu: number;
  task: string;
  /** Probe arguments (numbers where they fit, else strings), or SEQNUM/ACTION/SUBSYSTEM/DEVPATH of a uevent. */
  fields: Record<string, number | string>;
}

function fetchType(m: BtfMember): string {
  if (m.kind === 'ptr') return 'x64';
  if (![1, 2, 4, 8].includes(m.size)) throw new GuestError(`cannot fetch member ${m.name} of size ${m.size}`);
  return `${m.signed ? 's' : 'u'}${m.size * 8}`;
}

function fetchArgs(members: BtfMember[], reg: string): string {
  return members.map((m) => `${m.name}=+${m.offset}(${reg}):${fetchType(m)}`).join(' ');
}

/** Render the probe template for one kernel: the `/probes.txt` of its initramfs. */
export function renderProbes(template: string, layout: KernelLayout): string {
  const out: string[] = [];
  for (let line of template.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    if (line.startsWith('?node ')) {
      if (!layout.nodeNotify) continue;
      line = line.slice('?node '.length);
    }
    line = line
      .replace('{ACTION_TYPE}', layout.memoryNotifyActionSize === 4 ? 'u32' : 'u64')
      .replace(/\{MEMORY_NOTIFY:([^}]+)\}/g, (_, reg: string) => fetchArgs(layout.memoryNotify, reg))
      .replace(/\{NODE_NOTIFY:([^}]+)\}/g, (_, reg: string) => fetchArgs(layout.nodeNotify ?? [], reg))
      .replaceAll('{ZONE_NAME}', String(layout.zone.name))
      .replaceAll('{ZONE_NODE}', String(layout.zone.node))
      .replaceAll('{RES_START}', String(layout.resource.start))
      .replaceAll('{RES_END}', String(layout.resource.end));
    if (/\{[A-Z_]+(:[^}]*)?\}/.test(line)) throw new GuestError(`probe template: unknown placeholder in '${line}'`);
    out.push(line);
  }
  return out.join('\n') + '\n';
}

/** Read `qemu/probes.tmpl` and render it for a kernel. */
export async function probesFor(layout: KernelLayout): Promise<string> {
  return renderProbes(await readFile(QEMU_DIR + 'probes.tmpl', 'utf8'), layout);
}

const LINE = /^\s*(.*)-(\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(\d+)\]\s+(?:\S+\s+)?(\d+\.\d+): (\w+): (.*)$/;
const ARG = /(\w+)=("(?:[^"\\]|\\.)*"|\S+)/g;

function value(v: string): number | string {
  if (v.startsWith('"')) return v.slice(1, -1);
  if (/^-?\d+$/.test(v) || /^0x[0-9a-f]+$/i.test(v)) {
    const n = Number(v.startsWith('-') ? v : BigInt(v));
    return Number.isSafeInteger(n) ? n : v;
  }
  return v;
}

/**
 * Decode one line of the guest's trace_pipe. Returns null for lines that are not records (the
 * harness's own sync markers, headers, lost-events notes).
 */
export function decodeTraceLine(line: string): ProbeRecord | null {
  const m = LINE.exec(line);
  if (!m) return null;
  const [, task, , cpu, ts, event, rest] = m as unknown as [string, string, string, string, string, string, string];
  const base = { ts: Number(ts), cpu: Number(cpu), task: task.trim() };
  if (event === 'tracing_mark_write') {
    const u = /^uevent (\d+) (\S+) (\S*) (\S+)/.exec(rest);
    if (!u) return null;
    return { ...base, event: 'uevent', fields: { SEQNUM: Number(u[1]), ACTION: u[2]!, SUBSYSTEM: u[3]!, DEVPATH: u[4]! } };
  }
  const at = /^\((.*?)\)\s?(.*)$/.exec(rest);
  const fields: Record<string, number | string> = {};
  for (const a of (at ? at[2]! : rest).matchAll(ARG)) fields[a[1]!] = value(a[2]!);
  return { ...base, event, fields };
}

/**
 * The profile a guest's records are named with: the stock profile of its version, with the action
 * numbering replaced by what the kernel's BTF declares (a stable update can renumber: Debian's 6.12.117
 * uses `enum memory_block_state`, not the bit flags of 6.12.107). `notes` lists every difference.
 */
export function effectiveProfile(base: KernelProfile, layout: KernelLayout): { profile: KernelProfile; notes: string[] } {
  const notes: string[] = [];
  const merge = <K extends string>(stock: Readonly<Partial<Record<K, number>>> | null, btf: Record<string, number> | null, what: string) => {
    if (!btf || !stock) return stock;
    const out: Partial<Record<K, number>> = {};
    for (const [name, value] of Object.entries(btf)) {
      out[name as K] = value;
      const old = (stock as Record<string, number | undefined>)[name];
      if (old !== value) notes.push(`${what} ${name}: profile ${base.name} says ${old ?? 'absent'}, kernel BTF says ${value}`);
    }
    for (const name of Object.keys(stock)) if (!(name in btf)) notes.push(`${what} ${name}: in profile ${base.name}, not in the kernel`);
    return out;
  };
  const actions = merge(base.actions, layout.memoryActions, 'memory action');
  const nodeActions = merge(base.nodeActions, layout.nodeActions, 'node action');
  const btfFields = layout.memoryNotify.map((m) => m.name);
  const fields = btfFields.join(',');
  // The payload is what the kernel's struct has, when memhp knows every field of it.
  let memoryNotifyFields = base.memoryNotifyFields;
  if (fields !== base.memoryNotifyFields.join(',')) {
    notes.push(`struct memory_notify: profile ${base.name} has ${base.memoryNotifyFields.join(',')}, kernel BTF has ${fields}`);
    if (btfFields.every((f): f is MemoryNotifyField => (NOTIFY_FIELDS as readonly string[]).includes(f))) memoryNotifyFields = btfFields;
  }
  if (notes.length === 0) return { profile: base, notes };
  return { profile: { ...base, actions: actions ?? base.actions, nodeActions: (nodeActions ?? base.nodeActions) as KernelProfile['nodeActions'], memoryNotifyFields }, notes };
}

/** Subsystems whose uevents go into the shared trace (the simulator models memory block devices). */
export const TRACED_UEVENT_SUBSYSTEMS: ReadonlySet<string> = new Set(['memory']);

/** The shared-shape record for a probe record, or null when it has none (timing probes, return values). */
export function toTraceRecord(r: ProbeRecord, profile: KernelProfile): TraceRecord | null {
  if (r.event === 'memchain' || r.event === 'nodechain') {
    const v = Number(r.fields.action);
    const memory = r.event === 'memchain';
    const name = memory ? memoryActionName(profile, v) : nodeActionName(profile, v);
    const rec: Record<string, JsonValue> = { type: 'notify', chain: memory ? 'memory' : 'node', action: name ?? `0x${v.toString(16)}`, value: v };
    // Exactly the profile's payload fields, in its order (the probe fetched what BTF has).
    const fields: readonly string[] = memory ? profile.memoryNotifyFields : ['nid'];
    for (const f of fields) {
      const x = r.fields[f];
      if (typeof x === 'number') rec[f] = x;
    }
    return rec as NotifyRecord;
  }
  if (r.event === 'uevent' && TRACED_UEVENT_SUBSYSTEMS.has(String(r.fields.SUBSYSTEM))) {
    return { type: 'uevent', action: String(r.fields.ACTION), devpath: String(r.fields.DEVPATH) };
  }
  return null;
}

/** A QMP event as a trace record. */
export function qmpTraceRecord(event: string, data: Record<string, unknown>): TraceRecord {
  return { type: 'qmp-event', event, data: JSON.parse(JSON.stringify(data)) as JsonValue };
}
