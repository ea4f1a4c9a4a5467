/**
 * Robustness: random operations on simulated machines of each profile — sysfs onlines and offlines
 * through `state` and `online`, offlines with a pending signal, DIMM plug and eject, add_memory /
 * remove_memory / offline_and_remove_memory, page allocation, freeing, pinning and poisoning, the error
 * injector (load, unload, error files), extra logging notifiers, a vetoing node notifier (7.x), and groups
 * of writers started together — with everything the kernel guarantees checked after every step
 * (docs/kernel-behaviour.md#writes-to-state-and-online, docs/kernel-behaviour.md#online-and-offline-sequences, docs/kernel-behaviour.md#notifier-chains, docs/kernel-behaviour.md#error-injection):
 *
 * - `m.checkInvariants()` is empty and the lock validator has no report;
 * - each block's `state` and `online` files agree with the block, no block is left `going-offline`;
 * - zone spans cover their online blocks, and an unpopulated zone spans nothing;
 * - the notifier trace parses per profile: every MEM_GOING_x is followed by x or CANCEL_x with the same
 *   payload, 6.12's PREPARE_ONLINE/FINISH_OFFLINE wrap onlines (and follow successful offlines), 7.x's
 *   NODE_* events come exactly when a node gains its first or loses its last memory, and N_MEMORY as the
 *   events tell it equals `has_memory`; uevents match ONLINE/OFFLINE events one for one;
 * - a sequential write whose outcome the kernel fixes has that outcome (an online without a veto
 *   succeeds; an injected errno comes back as that errno; a pending signal never lets an offline succeed).
 *
 * The run is sized by {@link TOTAL_OPS} (MEMHP_PROPERTY_OPS, e.g. `npm run test:property-1m`); the seed is
 * printed (set PROPERTY_SEED to replay a run).
 */
import { nodeList } from '../../lib/kernel/machine-sysfs.js';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { errnoCode, KernelError } from '../../lib/errors.js';
import { Machine, type MachineOptions } from '../../lib/kernel/machine.js';
import type { MemoryBlock } from '../../lib/kernel/memory-block.js';
import { notifierFromErrno, NOTIFY_DONE, NOTIFY_OK, type NotifierBlock } from '../../lib/kernel/notifier.js';
import type { MemoryNotify, NodeNotify } from '../../lib/kernel/profile.js';
import type { TraceRecord } from '../../lib/kernel/trace.js';
import { ZONE_TYPES, type PageKind } from '../../lib/native/physmem.js';

/** Random operations per CI run, over all machine configurations (a concurrent group counts each of its members). */
const CI_OPS = 100_000;
/** Operations of this run: MEMHP_PROPERTY_OPS when set (a longer run, or a quick local one), else {@link CI_OPS}. */
const TOTAL_OPS = ((): number => {
  const v = process.env.MEMHP_PROPERTY_OPS;
  if (v === undefined || v === '') return CI_OPS;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`MEMHP_PROPERTY_OPS must be a positive integer, not '${v}'`);
  return n;
})();
/** Longest operation sequence one machine runs (fast-check shrinks failing sequences from there). */
const MAX_SEQ = 200;

const M = '/sys/devices/system/memory';
const INJECT = '/sys/kernel/debug/notifier-error-inject/memory/actions';
const ERROR_FILE = { ON: `${INJECT}/MEM_GOING_ONLINE/error`, OFF: `${INJECT}/MEM_GOING_OFFLINE/error` } as const;
const MiB = 2 ** 20;
const BLOCK = 128 * MiB;
/** add_memory ranges live far above the DIMM window, so ACPI placement and add_memory never collide. */
const ADD_BASE = 64 * 2 ** 30;
const ADD_SLOTS = 3;

/**
 * Machine configurations: every profile, with different policies, so the flows take different branches.
 * They are small (boot memory 128–384 MiB, at most 384 MiB of DIMMs and 384 MiB added) because the native
 * invariant scan after every step costs time in proportion to the pages present.
 */
const CONFIGS: { name: string; opts: MachineOptions }[] = [
  { name: '6.1, auto-online off, 2 nodes', opts: { kernel: '6.1', memory: '128M', nodes: 2, maxMemory: '512M' } },
  { name: '6.12, online_movable, memmap_on_memory', opts: { kernel: '6.12', memory: '128M', nodes: 2, maxMemory: '512M', autoOnline: 'online_movable', memmapOnMemory: true } },
  { name: '7.2, auto-movable, 3 nodes', opts: { kernel: '7.2', memory: '128M', nodes: 3, maxMemory: '512M', onlinePolicy: 'auto-movable', autoMovableRatio: 100 } },
  { name: '7.2, boot memory on 2 nodes, movable_node', opts: { kernel: '7.2', nodes: [{ memory: '128M' }, { memory: '256M' }], maxMemory: '768M', movableNode: true } },
];
// A short retry budget keeps offlines stuck on pinned pages (EINTR) short.
const COMMON: MachineOptions = { slots: 3, offlineRetries: 1 };

// ─── Operations ─────────────────────────────────────────────────────────────────────────────────────

type Write = { k: 'state'; b: number; v: string } | { k: 'online'; b: number; v: string } | { k: 'abort'; b: number; later: boolean };
type Op =
  | Write
  | { k: 'read'; b: number }
  | { k: 'plug'; d: number; blocks: number; node: number }
  | { k: 'unplug'; d: number }
  | { k: 'add'; slot: number; blocks: number; node: number; misalign: boolean }
  | { k: 'remove'; r: number; first: number; blocks: number; andOffline: boolean }
  | { k: 'alloc'; count: number; order: number; kind: PageKind; node: number; thisNode: boolean }
  | { k: 'free'; i: number }
  | { k: 'pin'; i: number }
  | { k: 'unpin'; i: number }
  | { k: 'poison'; b: number; off: number }
  | { k: 'load'; priority: number }
  | { k: 'unload'; dep: boolean }
  | { k: 'inject'; file: 'ON' | 'OFF'; v: string }
  | { k: 'logger'; priority: number; async: boolean }
  | { k: 'nodeVeto'; errno: number }
  | { k: 'group'; ops: Op[] };

/**
 * Whether a group may run sysfs writers beside a DIMM eject: a `state` write that waits for
 * device_hotplug_lock while the eject removes its block must fail ENODEV without any event (the
 * kernel's restarted write finds the attribute gone). This race once ran the write on the removed block.
 */
const WRITERS_RACE_EJECT = true;

const pick = fc.nat({ max: 1 << 16 });
const stateValues = ['online', 'online_kernel', 'online_movable', 'offline', 'offline\n', 'online_movable\n', 'Online', 'foo', ''];
const onlineValues = ['1', '0', '1\n', '0\n', 'y', 'n', 'on', 'off', 'yes', '2', 'x', 'Off'];
const injectValues = ['-12', '-12\n', '0', '-16', '-1', '-4095', '12', '-5000', 'abc', '-0x10', '-22', '0'];

const writeArb: fc.Arbitrary<Write> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ k: fc.constant('state' as const), b: pick, v: fc.constantFrom(...stateValues) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('online' as const), b: pick, v: fc.constantFrom(...onlineValues) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('abort' as const), b: pick, later: fc.boolean() }) },
);

function opArb(nodes: number, nodeChain: boolean): fc.Arbitrary<Op> {
  const node = fc.nat({ max: nodes - 1 });
  const plug = fc.record({ k: fc.constant('plug' as const), d: fc.nat({ max: 3 }), blocks: fc.integer({ min: 1, max: 2 }), node });
  const unplug = fc.record({ k: fc.constant('unplug' as const), d: fc.nat({ max: 3 }) });
  const alloc = fc.record({
    k: fc.constant('alloc' as const),
    count: fc.integer({ min: 1, max: 16 }),
    order: fc.oneof({ weight: 6, arbitrary: fc.nat({ max: 3 }) }, { weight: 1, arbitrary: fc.nat({ max: 10 }) }),
    kind: fc.oneof({ weight: 5, arbitrary: fc.constant<PageKind>('movable') }, { weight: 2, arbitrary: fc.constant<PageKind>('unmovable') }, { weight: 1, arbitrary: fc.constantFrom<PageKind>('reclaimable', 'pinned') }),
    node,
    thisNode: fc.boolean(),
  });
  const free = fc.record({ k: fc.constant('free' as const), i: pick });
  const read = fc.record({ k: fc.constant('read' as const), b: pick });
  // A group: writers, readers and allocations (and at most one ACPI event) started without awaiting each other.
  const members = (withWriters: boolean) => {
    const others: fc.WeightedArbitrary<Op>[] = [{ weight: 1, arbitrary: read }, { weight: 1, arbitrary: alloc }, { weight: 1, arbitrary: free }];
    return fc.array(fc.oneof(...(withWriters ? [{ weight: 4, arbitrary: writeArb as fc.Arbitrary<Op> }] : []), ...others), { minLength: 2, maxLength: 4 });
  };
  const group = fc
    .oneof(
      fc.tuple(members(true), fc.option(plug, { freq: 4 })),
      // An eject runs beside writers only when WRITERS_RACE_EJECT allows it (see there).
      fc.tuple(members(WRITERS_RACE_EJECT), unplug),
    )
    .map(([ops, acpi]): Op => ({ k: 'group', ops: acpi ? [...ops, acpi] : ops }));
  const arbs: fc.WeightedArbitrary<Op>[] = [
    { weight: 30, arbitrary: writeArb },
    { weight: 2, arbitrary: read },
    { weight: 4, arbitrary: plug },
    { weight: 3, arbitrary: unplug },
    { weight: 4, arbitrary: fc.record({ k: fc.constant('add' as const), slot: fc.nat({ max: ADD_SLOTS - 1 }), blocks: fc.integer({ min: 1, max: 2 }), node, misalign: fc.nat({ max: 4 }).map((x) => x === 0) }) },
    { weight: 4, arbitrary: fc.record({ k: fc.constant('remove' as const), r: pick, first: pick, blocks: fc.integer({ min: 1, max: 3 }), andOffline: fc.boolean() }) },
    { weight: 12, arbitrary: alloc },
    { weight: 10, arbitrary: free },
    { weight: 3, arbitrary: fc.record({ k: fc.constant('pin' as const), i: pick }) },
    { weight: 3, arbitrary: fc.record({ k: fc.constant('unpin' as const), i: pick }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('poison' as const), b: pick, off: fc.nat({ max: 32767 }) }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('load' as const), priority: fc.integer({ min: -1, max: 1 }) }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('unload' as const), dep: fc.boolean() }) },
    { weight: 6, arbitrary: fc.record({ k: fc.constant('inject' as const), file: fc.constantFrom('ON' as const, 'OFF' as const), v: fc.constantFrom(...injectValues) }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('logger' as const), priority: fc.integer({ min: -2, max: 2 }), async: fc.boolean() }) },
    { weight: 10, arbitrary: group },
  ];
  if (nodeChain) arbs.push({ weight: 1, arbitrary: fc.record({ k: fc.constant('nodeVeto' as const), errno: fc.constantFrom(0, 0, -11, -95) }) });
  return fc.oneof(...arbs);
}

// ─── The trace, parsed per profile ──────────────────────────────────────────────────────────────────

/** A property violation: the message names the step, so a shrunk counterexample reads as a repro. */
class Violation extends Error {}

function fail(msg: string): never {
  throw new Violation(msg);
}

function payload(r: TraceRecord): string {
  const { type, chain, action, value, ...rest } = r;
  void type, void chain, void action, void value;
  return JSON.stringify(rest);
}

type Pending = {
  kind: 'online' | 'offline';
  expect: readonly string[];
  prepare?: TraceRecord;
  going?: TraceRecord;
  nodeNid?: number;
};

/**
 * Reads notifier records one operation at a time (device_hotplug_lock keeps operations from
 * interleaving) and keeps N_MEMORY as the events announce it: NODE_ADDED_FIRST / NODE_REMOVED_LAST on
 * 7.x, status_change_nid of ONLINE / OFFLINE on 6.x.
 */
class TraceChecker {
  readonly memory: Set<number>;
  #cur: Pending | null = null;

  constructor(
    readonly m: Machine,
    memory: Iterable<number>,
  ) {
    this.memory = new Set(memory);
  }

  get idle(): boolean {
    return this.#cur === null;
  }

  /** Feed one notify record; `nidOf` maps a start pfn to the node of its block. */
  feed(r: TraceRecord, nidOf: (pfn: number) => number | undefined): void {
    const p = this.m.kernel;
    const nodeChain = p.nodeActions !== null;
    const tok = r.chain === 'node' ? `N:${String(r.action)}` : String(r.action);
    const num = (f: string) => r[f] as number;
    const blockNid = (): number => {
      const nid = nidOf(num('start_pfn'));
      if (nid === undefined) fail(`${tok}: start_pfn ${num('start_pfn')} is in no block`);
      return nid;
    };
    const cur = this.#cur;
    if (!cur) {
      switch (tok) {
        case 'MEM_PREPARE_ONLINE':
          if (!p.prepareFinishEvents) fail(`${tok} on ${p.name}`);
          if (num('altmap_start_pfn') + num('altmap_nr_pages') !== num('start_pfn')) fail(`${tok}: altmap ${payload(r)} does not end at start_pfn`);
          this.#cur = { kind: 'online', expect: ['MEM_GOING_ONLINE'], prepare: r };
          return;
        case 'N:NODE_ADDING_FIRST_MEMORY':
          if (this.memory.has(num('nid'))) fail(`${tok} for node ${num('nid')}, which has memory`);
          this.#cur = { kind: 'online', expect: ['MEM_GOING_ONLINE', 'MEM_CANCEL_ONLINE'], nodeNid: num('nid') };
          return;
        case 'N:NODE_REMOVING_LAST_MEMORY':
          if (!this.memory.has(num('nid'))) fail(`${tok} for node ${num('nid')}, which has no memory`);
          this.#cur = { kind: 'offline', expect: ['MEM_GOING_OFFLINE', 'MEM_CANCEL_OFFLINE'], nodeNid: num('nid') };
          return;
        case 'MEM_GOING_ONLINE':
          if (p.prepareFinishEvents) fail(`${tok} without MEM_PREPARE_ONLINE on ${p.name}`);
          this.#cur = { kind: 'online', expect: [tok] };
          return this.feed(r, nidOf);
        case 'MEM_GOING_OFFLINE':
          this.#cur = { kind: 'offline', expect: [tok] };
          return this.feed(r, nidOf);
        default:
          fail(`${tok} ${payload(r)} outside an online or offline`);
      }
    }
    if (!cur.expect.includes(tok)) fail(`${tok} ${payload(r)} where ${cur.expect.join(' or ')} was due (${cur.kind})`);
    const done = () => void (this.#cur = null);
    const sameAsGoing = () => {
      if (cur.going && payload(r) !== payload(cur.going)) fail(`${tok} payload ${payload(r)} differs from ${String(cur.going.action)} ${payload(cur.going)}`);
    };
    const nodeMatches = () => {
      if (num('nid') !== cur.nodeNid) fail(`${tok} for node ${num('nid')}, the operation began for node ${cur.nodeNid}`);
    };
    switch (tok) {
      case 'MEM_GOING_ONLINE': {
        if (cur.prepare && (num('start_pfn') !== (cur.prepare.start_pfn as number) || num('nr_pages') !== (cur.prepare.nr_pages as number)))
          fail(`${tok} ${payload(r)} is not the range of MEM_PREPARE_ONLINE ${payload(cur.prepare)}`);
        const nid = blockNid();
        if (nodeChain) {
          if (cur.nodeNid === undefined && !this.memory.has(nid)) fail(`${tok} onlines the first memory of node ${nid} without NODE_ADDING_FIRST_MEMORY`);
          if (cur.nodeNid !== undefined && cur.nodeNid !== nid) fail(`${tok} of a node-${nid} block after NODE_ADDING_FIRST_MEMORY for node ${cur.nodeNid}`);
        } else {
          const want = this.memory.has(nid) ? -1 : nid;
          if (num('status_change_nid') !== want) fail(`${tok} ${payload(r)}: status_change_nid should be ${want} (node ${nid}, N_MEMORY ${[...this.memory].join(',')})`);
        }
        cur.going = r;
        cur.expect = cur.nodeNid !== undefined ? ['N:NODE_ADDED_FIRST_MEMORY', 'MEM_CANCEL_ONLINE'] : ['MEM_ONLINE', 'MEM_CANCEL_ONLINE'];
        return;
      }
      case 'N:NODE_ADDED_FIRST_MEMORY':
        nodeMatches();
        this.memory.add(num('nid'));
        cur.expect = ['MEM_ONLINE'];
        return;
      case 'MEM_ONLINE':
        sameAsGoing();
        if (!nodeChain && num('status_change_nid') >= 0) this.memory.add(num('status_change_nid'));
        return done();
      case 'MEM_CANCEL_ONLINE':
        if (!cur.going && cur.nodeNid === undefined) fail(`${tok} without GOING_ONLINE or a node event`);
        sameAsGoing();
        if (cur.nodeNid !== undefined) cur.expect = ['N:NODE_CANCEL_ADDING_FIRST_MEMORY'];
        else if (cur.prepare) cur.expect = ['MEM_FINISH_OFFLINE'];
        else done();
        return;
      case 'N:NODE_CANCEL_ADDING_FIRST_MEMORY':
      case 'N:NODE_CANCEL_REMOVING_LAST_MEMORY':
        nodeMatches();
        return done();
      case 'MEM_FINISH_OFFLINE': {
        const ref = cur.prepare ?? cur.going!;
        if (num('start_pfn') !== (ref.start_pfn as number) || num('nr_pages') !== (ref.nr_pages as number) || num('altmap_start_pfn') + num('altmap_nr_pages') !== num('start_pfn'))
          fail(`${tok} ${payload(r)} does not match ${String(ref.action)} ${payload(ref)}`);
        if (cur.prepare && payload(r) !== payload(cur.prepare)) fail(`${tok} ${payload(r)} differs from MEM_PREPARE_ONLINE ${payload(cur.prepare)}`);
        return done();
      }
      case 'MEM_GOING_OFFLINE': {
        const nid = blockNid();
        if (!this.memory.has(nid)) fail(`${tok} of a block of node ${nid}, which has no memory`);
        if (nodeChain) {
          if (cur.nodeNid !== undefined && cur.nodeNid !== nid) fail(`${tok} of a node-${nid} block after NODE_REMOVING_LAST_MEMORY for node ${cur.nodeNid}`);
        } else if (num('status_change_nid') !== -1 && num('status_change_nid') !== nid) fail(`${tok} ${payload(r)}: status_change_nid is neither -1 nor the block's node ${nid}`);
        cur.going = r;
        cur.expect = cur.nodeNid !== undefined ? ['N:NODE_REMOVED_LAST_MEMORY', 'MEM_CANCEL_OFFLINE'] : ['MEM_OFFLINE', 'MEM_CANCEL_OFFLINE'];
        return;
      }
      case 'N:NODE_REMOVED_LAST_MEMORY':
        nodeMatches();
        this.memory.delete(num('nid'));
        cur.expect = ['MEM_OFFLINE'];
        return;
      case 'MEM_OFFLINE':
        sameAsGoing();
        if (!nodeChain && num('status_change_nid') >= 0) this.memory.delete(num('status_change_nid'));
        if (p.prepareFinishEvents) cur.expect = ['MEM_FINISH_OFFLINE'];
        else done();
        return;
      case 'MEM_CANCEL_OFFLINE':
        if (!cur.going && cur.nodeNid === undefined) fail(`${tok} without GOING_OFFLINE or a node event`);
        sameAsGoing();
        if (cur.nodeNid !== undefined) cur.expect = ['N:NODE_CANCEL_REMOVING_LAST_MEMORY'];
        else done();
        return;
      default:
        fail(`unexpected ${tok}`);
    }
  }
}

// ─── Running a sequence ─────────────────────────────────────────────────────────────────────────────

type Outcome = 'ok' | string;

interface Ctx {
  readonly m: Machine;
  readonly nodes: number;
  /** Allocations made by the test (head pfn and kind); stale after a migration, so checked before use. */
  allocs: { pfn: number; kind: PageKind }[];
  /** Pinned heads: pinned pages never migrate, so these must stay exactly where they are. */
  pinned: number[];
  /** add_memory ranges still present: block-aligned [start, start + blocks × 128 MiB). */
  ranges: { start: number; blocks: number }[];
  logger: NotifierBlock<MemoryNotify> | null;
  nodeVeto: NotifierBlock<NodeNotify> | null;
  nodeVetoErrno: number;
  /** Outcomes a write inside the current group may have. */
  groupCodes: Set<Outcome>;
  checker: TraceChecker;
  traceSeen: number;
  ops: number;
  step: number;
  log: string[];
}

function codeOf(e: unknown): string {
  if (e instanceof KernelError) return e.code;
  if (e instanceof Violation) throw e;
  // Anything but a KernelError is a bug in the model (a TypeError, a lock misuse …).
  throw new Violation(`threw ${e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e)}`);
}

async function run(p: Promise<unknown> | (() => unknown)): Promise<Outcome> {
  try {
    await (typeof p === 'function' ? p() : p);
    return 'ok';
  } catch (e) {
    return codeOf(e);
  }
}

function errCode(errno: number): string {
  return errnoCode(errno) ?? `bad errno ${errno}`;
}

async function injected(m: Machine, file: 'ON' | 'OFF'): Promise<number> {
  if (!m.modules.has('memory_notifier_error_inject')) return 0;
  return Number((await m.sysfs.read(ERROR_FILE[file])).trim());
}

function blockAt(m: Machine, b: number): MemoryBlock {
  const blocks = m.sortedBlocks();
  return blocks[b % blocks.length]!;
}

/** A page's state, or null when its section is gone (the memory was removed). */
function pageState(m: Machine, pfn: number): { state: string; order: number; head: number } | null {
  try {
    return m.physmem.pageState(pfn);
  } catch (e) {
    codeOf(e);
    return null;
  }
}

const ONLINE_TYPES = ['online', 'online_kernel', 'online_movable', 'offline'];

/** What the write would ask: 'online'/'offline' (a change), 'noop' (already there, success), 'EINVAL', or 'empty'. */
function intent(w: Write, mem: MemoryBlock): 'online' | 'offline' | 'noop' | 'EINVAL' | 'empty' {
  if (w.k === 'abort') return mem.state === 'offline' ? 'EINVAL' : 'offline';
  if (w.k === 'state') {
    if (w.v === '') return 'empty';
    const t = w.v.endsWith('\n') ? w.v.slice(0, -1) : w.v;
    if (!ONLINE_TYPES.includes(t)) return 'EINVAL';
    const want = t === 'offline' ? 'offline' : 'online';
    return mem.state === want ? 'EINVAL' : want;
  }
  // kstrtobool as 6.1–7.2 parse it: the first character, or o+n / o+f.
  const c = w.v[0] ?? '';
  let on: boolean | null = null;
  if ('1yYtT'.includes(c) && c) on = true;
  else if ('0nNfF'.includes(c) && c) on = false;
  else if (c === 'o' || c === 'O') on = 'nN'.includes(w.v[1] ?? '_') ? true : 'fF'.includes(w.v[1] ?? '_') ? false : null;
  if (on === null) return 'EINVAL';
  const want = on ? 'online' : 'offline';
  return mem.state === want ? 'noop' : want;
}

/** The outcomes the kernel allows for a write to `mem` now, and whether it must leave no trace. */
async function expected(ctx: Ctx, w: Write, mem: MemoryBlock): Promise<{ allowed: Set<Outcome>; quiet: boolean; change: 'online' | 'offline' | null }> {
  const m = ctx.m;
  const it = intent(w, mem);
  if (it === 'EINVAL') return { allowed: new Set(['EINVAL']), quiet: true, change: null };
  if (it === 'noop' || it === 'empty') return { allowed: new Set(['ok']), quiet: true, change: null };
  const veto = ctx.nodeVeto && m.kernel.nodeActions ? errCode(ctx.nodeVetoErrno) : null;
  if (it === 'online') {
    if (m.kernel.hwpoisonCheck && mem.nrHwpoison > 0) return { allowed: new Set(['EHWPOISON']), quiet: true, change: 'online' };
    const inj = await injected(m, 'ON');
    const one = veto && !m.nodes.memory.has(mem.nid) ? veto : inj ? errCode(inj) : 'ok';
    return { allowed: new Set([one]), quiet: false, change: 'online' };
  }
  if (!mem.zone) return { allowed: new Set(['EINVAL']), quiet: true, change: 'offline' };
  const allowed = new Set<Outcome>();
  if (mem.early) allowed.add('EINVAL'); // memory holes
  if (mem.zone !== 'Movable') allowed.add('EBUSY'); // unmovable pages: ZONE_MOVABLE never has any
  const inj = await injected(m, 'OFF');
  if (inj) allowed.add(errCode(inj)); // and then neither success nor EINTR: the veto comes first
  else {
    allowed.add('EINTR');
    if (w.k !== 'abort' || w.later) allowed.add('ok'); // a signal pending from the start never lets an offline through
  }
  if (veto) allowed.add(veto);
  return { allowed, quiet: false, change: 'offline' };
}

function writeBlock(m: Machine, w: Write, mem: MemoryBlock): Promise<void> {
  if (w.k === 'abort') {
    const ac = new AbortController();
    if (w.later) setImmediate(() => ac.abort());
    else ac.abort();
    return m.sysfs.write(`${M}/${mem.name}/state`, 'offline', { signal: ac.signal });
  }
  return m.sysfs.write(`${M}/${mem.name}/${w.k}`, w.v);
}

function dimmBlocks(m: Machine, id: string): MemoryBlock[] {
  const d = m.dimms.get(id);
  if (!d) return [];
  return m.sortedBlocks().filter((b) => b.startPfn * 4096 >= d.addr && b.startPfn * 4096 < d.addr + d.size);
}

/** New blocks after an add: online unless auto-online is off or something would veto the online. */
async function checkAutoOnline(ctx: Ctx, blocks: MemoryBlock[], what: string): Promise<void> {
  const m = ctx.m;
  if (m.params.autoOnline === 'offline') {
    for (const b of blocks) if (b.state !== 'offline') fail(`${what}: ${b.name} is ${b.state} with auto_online_blocks=offline`);
    return;
  }
  if ((await injected(m, 'ON')) || ctx.nodeVeto) return;
  for (const b of blocks) if (b.state !== 'online') fail(`${what}: ${b.name} stayed ${b.state} with auto_online_blocks=${m.params.autoOnline} and nothing vetoing`);
}

/** One operation. `alone` = no other operation runs meanwhile, so its exact outcome can be predicted. */
async function exec(ctx: Ctx, op: Op, alone: boolean): Promise<string> {
  const m = ctx.m;
  ctx.ops++;
  switch (op.k) {
    case 'state':
    case 'online':
    case 'abort': {
      const mem = blockAt(m, op.b);
      const before = mem.state;
      const zone = mem.zone;
      const marks = m.trace.length;
      const exp = alone ? await expected(ctx, op, mem) : null;
      const r = await run(writeBlock(m, op, mem));
      if (exp) {
        if (!exp.allowed.has(r)) fail(`${mem.name} (${before}, zone ${zone}, nid ${mem.nid}): ${op.k} ${JSON.stringify(op.k === 'abort' ? 'offline+signal' : op.v)} → ${r}, expected ${[...exp.allowed].join('|')}`);
        const want = r === 'ok' && exp.change ? exp.change : before;
        if (mem.state !== want) fail(`${mem.name}: ${op.k} → ${r} left it ${mem.state}, expected ${want}`);
        if (exp.quiet && m.trace.length !== marks) fail(`${mem.name}: ${op.k} → ${r} should send no event, sent ${JSON.stringify(m.trace.events().slice(marks))}`);
      } else if (!ctx.groupCodes.has(r)) fail(`${mem.name}: ${op.k} beside other writers → ${r}, expected one of ${[...ctx.groupCodes].join('|')}`);
      return `${mem.name} ${op.k}=${JSON.stringify(op.k === 'abort' ? 'signal' : op.v)} → ${r}`;
    }
    case 'read': {
      const mem = blockAt(m, op.b);
      const state = await run(async () => {
        const s = await m.sysfs.read(`${M}/${mem.name}/state`);
        if (!['online\n', 'offline\n', 'going-offline\n'].includes(s)) fail(`${mem.name}/state reads ${JSON.stringify(s)}`);
        const o = await m.sysfs.read(`${M}/${mem.name}/online`);
        if (o !== '0\n' && o !== '1\n') fail(`${mem.name}/online reads ${JSON.stringify(o)}`);
        const vz = await m.sysfs.read(`${M}/${mem.name}/valid_zones`);
        if (!/^(none|DMA|DMA32|Normal|Movable)( (DMA|DMA32|Normal|Movable))*\n$/.test(vz)) fail(`${mem.name}/valid_zones reads ${JSON.stringify(vz)}`);
      });
      if (state !== 'ok' && state !== 'ENOENT') fail(`reading ${mem.name} → ${state}`);
      return `read ${mem.name} → ${state}`;
    }
    case 'plug': {
      const id = `d${op.d}`;
      const had = m.dimms.has(id);
      const inj = alone ? await injected(m, 'ON') : 0;
      const r = await run(m.plugDimm({ id, size: BigInt(op.blocks * BLOCK), node: op.node }));
      const allowed = had ? ['EEXIST'] : ['ok', 'ENOSPC'];
      if (!allowed.includes(r)) fail(`plug ${id} (${op.blocks} blocks, node ${op.node}) → ${r}, expected ${allowed.join('|')}`);
      if (r === 'ok' && alone) {
        const blocks = dimmBlocks(m, id);
        if (blocks.length !== op.blocks) fail(`plug ${id}: ${blocks.length} blocks appeared, not ${op.blocks}`);
        for (const b of blocks) if (b.nid !== op.node) fail(`plug ${id}: ${b.name} is on node ${b.nid}, not ${op.node}`);
        if (!inj) await checkAutoOnline(ctx, blocks, `plug ${id}`);
      }
      return `plug ${id} ${op.blocks}×128M node ${op.node} → ${r}`;
    }
    case 'unplug': {
      const id = `d${op.d}`;
      const had = m.dimms.has(id);
      const blocks = dimmBlocks(m, id);
      const inj = alone ? await injected(m, 'OFF') : 0;
      const r = await run(m.unplugDimm(id));
      const allowed = !had ? ['ENODEV'] : alone && inj && blocks.some((b) => b.state === 'online') ? ['EBUSY'] : ['ok', 'EBUSY'];
      if (!allowed.includes(r)) fail(`unplug ${id} (${blocks.map((b) => `${b.name}:${b.state}`).join(' ')}) → ${r}, expected ${allowed.join('|')}`);
      if (r === 'ok') {
        if (m.dimms.has(id)) fail(`unplug ${id} succeeded but the DIMM stayed`);
        for (const b of blocks) if (m.blocks.get(b.id) === b) fail(`unplug ${id} succeeded but ${b.name} stayed`);
      } else if (r === 'EBUSY' && !m.dimms.has(id)) fail(`unplug ${id} was refused but the DIMM went`);
      return `unplug ${id} → ${r}`;
    }
    case 'add': {
      const start = ADD_BASE + op.slot * BLOCK + (op.misalign ? 64 * MiB : 0);
      const size = op.blocks * BLOCK;
      const overlap = ctx.ranges.some((x) => x.start < start + size && start < x.start + x.blocks * BLOCK);
      const want = overlap ? 'EEXIST' : op.misalign ? 'EINVAL' : 'ok';
      const inj = alone ? await injected(m, 'ON') : 0;
      const r = await run(m.addMemory(op.node, BigInt(start), BigInt(size)));
      if (r !== want) fail(`add_memory(${op.node}, 0x${start.toString(16)}, ${op.blocks} blocks) → ${r}, expected ${want}`);
      if (r === 'ok') {
        ctx.ranges.push({ start, blocks: op.blocks });
        const blocks = Array.from({ length: op.blocks }, (_, i) => m.blocks.get(start / BLOCK + i));
        if (blocks.some((b) => !b || b.nid !== op.node)) fail(`add_memory: blocks ${blocks.map((b) => b?.name ?? 'missing').join(' ')} on node ${op.node}`);
        if (!inj) await checkAutoOnline(ctx, blocks as MemoryBlock[], 'add_memory');
      }
      return `add_memory(${op.node}, 0x${start.toString(16)}, ${op.blocks}×128M) → ${r}`;
    }
    case 'remove': {
      if (!ctx.ranges.length) return 'remove: nothing added';
      const ri = op.r % ctx.ranges.length;
      const range = ctx.ranges[ri]!;
      const first = op.first % range.blocks;
      const n = Math.min(op.blocks, range.blocks - first);
      const start = range.start + first * BLOCK;
      const blocks = Array.from({ length: n }, (_, i) => m.blocks.get(start / BLOCK + i)!);
      const anyOnline = blocks.some((b) => b.state !== 'offline');
      let r: Outcome;
      if (op.andOffline) {
        const inj = alone ? await injected(m, 'OFF') : 0;
        r = await run(m.offlineAndRemoveMemory(BigInt(start), BigInt(n * BLOCK)));
        if (r === 'ok' && inj && anyOnline) fail(`offline_and_remove_memory went through an injected GOING_OFFLINE veto`);
        const allowed = new Set(['ok', 'EBUSY', 'EINTR']);
        if (inj) allowed.add(errCode(inj));
        if (ctx.nodeVeto) allowed.add(errCode(ctx.nodeVetoErrno));
        if (!allowed.has(r)) fail(`offline_and_remove_memory of ${blocks.map((b) => `${b.name}:${b.state}`).join(' ')} → ${r}, expected ${[...allowed].join('|')}`);
      } else {
        r = await run(m.removeMemory(BigInt(start), BigInt(n * BLOCK)));
        const want = anyOnline ? 'EBUSY' : 'ok';
        if (r !== want) fail(`remove_memory of ${blocks.map((b) => `${b.name}:${b.state}`).join(' ')} → ${r}, expected ${want}`);
      }
      if (r === 'ok') {
        for (const b of blocks) if (m.blocks.has(b.id)) fail(`removed ${b.name} is still there`);
        const rest = [first ? { start: range.start, blocks: first } : null, first + n < range.blocks ? { start: start + n * BLOCK, blocks: range.blocks - first - n } : null];
        ctx.ranges.splice(ri, 1, ...rest.filter((x) => x !== null));
      } else for (const b of blocks) if (m.blocks.get(b.id) !== b) fail(`failed removal took ${b.name}`);
      return `${op.andOffline ? 'offline_and_remove' : 'remove'}(${blocks.map((b) => b.name).join(',')}) → ${r}`;
    }
    case 'alloc': {
      const pfns = m.alloc({ count: op.count, order: op.order, kind: op.kind, nid: op.node, thisNode: op.thisNode });
      for (const pfn of pfns) {
        if (op.kind === 'pinned') ctx.pinned.push(pfn);
        else if (ctx.allocs.length < 4096) ctx.allocs.push({ pfn, kind: op.kind });
      }
      return `alloc ${op.count}×order ${op.order} ${op.kind} node ${op.node}${op.thisNode ? ' thisnode' : ''} → ${pfns.length}`;
    }
    case 'free': {
      if (!ctx.allocs.length) return 'free: nothing';
      const [a] = ctx.allocs.splice(op.i % ctx.allocs.length, 1);
      const st = pageState(m, a!.pfn);
      if (!st || st.head !== a!.pfn || !['movable', 'unmovable', 'reclaimable'].includes(st.state)) return `free 0x${a!.pfn.toString(16)}: gone (${st?.state ?? 'removed'})`;
      const r = await run(() => m.free([a!.pfn]));
      if (r !== 'ok') fail(`free of allocated head 0x${a!.pfn.toString(16)} (${st.state}, order ${st.order}) → ${r}`);
      return `free 0x${a!.pfn.toString(16)}`;
    }
    case 'pin': {
      const movable = ctx.allocs.filter((x) => x.kind === 'movable');
      if (!movable.length) return 'pin: nothing';
      const a = movable[op.i % movable.length]!;
      ctx.allocs.splice(ctx.allocs.indexOf(a), 1);
      const st = pageState(m, a.pfn);
      if (!st || st.head !== a.pfn || st.state !== 'movable') return `pin 0x${a.pfn.toString(16)}: gone (${st?.state ?? 'removed'})`;
      const r = await run(() => m.pin([a.pfn]));
      if (r !== 'ok') fail(`pin of movable head 0x${a.pfn.toString(16)} → ${r}`);
      ctx.pinned.push(a.pfn);
      return `pin 0x${a.pfn.toString(16)}`;
    }
    case 'unpin': {
      if (!ctx.pinned.length) return 'unpin: nothing';
      const [pfn] = ctx.pinned.splice(op.i % ctx.pinned.length, 1);
      const r = await run(() => m.unpin([pfn!]));
      if (r !== 'ok') fail(`unpin of pinned head 0x${pfn!.toString(16)} → ${r}`);
      ctx.allocs.push({ pfn: pfn!, kind: 'movable' });
      return `unpin 0x${pfn!.toString(16)}`;
    }
    case 'poison': {
      const online = m.sortedBlocks().filter((b) => b.state === 'online');
      if (!online.length) return 'poison: no online block';
      const mem = online[op.b % online.length]!;
      let pfn = mem.startPfn + (op.off % mem.nrPages);
      const end = Math.min(pfn + 64, mem.startPfn + mem.nrPages);
      while (pfn < end && pageState(m, pfn)?.state !== 'free') pfn++;
      if (pfn === end) return `poison ${mem.name}: no free page near`;
      const r = await run(() => m.hwpoison(pfn));
      if (r !== 'ok') fail(`hwpoison of free pfn 0x${pfn.toString(16)} → ${r}`);
      return `hwpoison 0x${pfn.toString(16)} (${mem.name})`;
    }
    case 'load': {
      const loaded = m.modules.has('memory_notifier_error_inject');
      const r = await run(m.loadModule('memory-notifier-error-inject', { priority: op.priority }));
      if (r !== (loaded ? 'EEXIST' : 'ok')) fail(`loadModule (loaded: ${loaded}) → ${r}`);
      return `load injector priority ${op.priority} → ${r}`;
    }
    case 'unload': {
      const mem = m.modules.has('memory_notifier_error_inject');
      const dep = m.modules.has('notifier_error_inject');
      const r = await run(m.unloadModule(op.dep ? 'notifier-error-inject' : 'memory-notifier-error-inject'));
      const want = op.dep ? (mem ? 'EAGAIN' : dep ? 'ok' : 'ENOENT') : mem ? 'ok' : 'ENOENT';
      if (r !== want) fail(`unload ${op.dep ? 'notifier-error-inject' : 'memory-notifier-error-inject'} → ${r}, expected ${want}`);
      return `unload ${op.dep ? 'dep' : 'injector'} → ${r}`;
    }
    case 'inject': {
      const loaded = m.modules.has('memory_notifier_error_inject');
      const r = await run(m.sysfs.write(ERROR_FILE[op.file], op.v));
      const want = !loaded ? 'ENOENT' : op.v === 'abc' ? 'EINVAL' : 'ok';
      if (r !== want) fail(`echo ${JSON.stringify(op.v)} > ${op.file} error → ${r}, expected ${want}`);
      return `inject ${op.file} ${JSON.stringify(op.v)} → ${r}`;
    }
    case 'logger': {
      if (ctx.logger) {
        await ctx.logger.unregister();
        ctx.logger = null;
        return 'logger off';
      }
      ctx.logger = m.memoryNotifier.register(op.async ? async () => (await null, NOTIFY_OK) : () => NOTIFY_DONE, op.priority);
      await ctx.logger.registered;
      return `logger on, priority ${op.priority}${op.async ? ', async' : ''}`;
    }
    case 'nodeVeto': {
      if (ctx.nodeVeto) await ctx.nodeVeto.unregister();
      ctx.nodeVeto = null;
      if (op.errno) {
        const a = m.kernel.nodeActions!;
        const err = op.errno;
        ctx.nodeVeto = m.nodeNotifier.register((action) => (action === a.NODE_ADDING_FIRST_MEMORY || action === a.NODE_REMOVING_LAST_MEMORY ? notifierFromErrno(err) : NOTIFY_OK), 0);
        ctx.nodeVetoErrno = err;
        await ctx.nodeVeto.registered;
      }
      return `node veto ${op.errno}`;
    }
    case 'group': {
      ctx.ops--; // the group itself is not an operation; its members are
      // What any member write may end with, whatever the order the locks give them (the injector's
      // errors do not change inside a group).
      ctx.groupCodes = new Set(['ok', 'EINVAL', 'EBUSY', 'EINTR', 'EHWPOISON']);
      for (const f of ['ON', 'OFF'] as const) {
        const inj = await injected(m, f);
        if (inj) ctx.groupCodes.add(errCode(inj));
      }
      if (ctx.nodeVeto) ctx.groupCodes.add(errCode(ctx.nodeVetoErrno));
      // A writer that waited for device_hotplug_lock while an eject in the group removed its block.
      if (op.ops.some((o) => o.k === 'unplug')) ctx.groupCodes.add('ENODEV');
      const results = await Promise.all(op.ops.map((o) => exec(ctx, o, false)));
      return `together: ${results.join('; ')}`;
    }
  }
}

/** Everything that must hold between operations. `nids` maps block ids (before and after the step) to nodes. */
async function checkStep(ctx: Ctx, nids: Map<number, number>, blocksBefore: number): Promise<void> {
  const m = ctx.m;
  const bad = m.checkInvariants();
  if (bad.length) fail(`checkInvariants: ${bad.slice(0, 5).join('; ')}`);
  if (m.lockdep.reports.length) fail(`lockdep: ${JSON.stringify(m.lockdep.reports[0])}`);
  // zoneInfo builds the free-area arrays natively: fetch each zone once per step.
  const zones = new Map<string, ReturnType<typeof m.physmem.zoneInfo>>();
  const zoneInfo = (nid: number, zone: (typeof ZONE_TYPES)[number]) => {
    const k = `${nid}:${zone}`;
    if (!zones.has(k)) zones.set(k, m.physmem.zoneInfo(nid, zone));
    return zones.get(k)!;
  };
  // Blocks vs sysfs.
  const names = (await m.sysfs.list(M)).filter((n) => /^memory\d+$/.test(n));
  const want = m.sortedBlocks().map((b) => b.name).sort();
  if (names.join() !== want.join()) fail(`sysfs lists ${names.join(',')}, the machine has ${want.join(',')}`);
  for (const b of m.blocks.values()) {
    if (b.state === 'going-offline') fail(`${b.name} left going-offline`);
    const s = await m.sysfs.read(`${M}/${b.name}/state`);
    if (s !== `${b.state}\n`) fail(`${b.name}/state reads ${JSON.stringify(s)}, the block is ${b.state}`);
    const o = await m.sysfs.read(`${M}/${b.name}/online`);
    if (o !== (b.state === 'online' ? '1\n' : '0\n')) fail(`${b.name}/online reads ${JSON.stringify(o)}, the block is ${b.state}`);
    if (b.state === 'online' && b.zone) {
      const z = zoneInfo(b.nid, b.zone);
      const end = b.startPfn + b.nrPages;
      const covers = z && (b.early ? b.startPfn < z.start + z.spanned && end > z.start : z.start <= b.startPfn && end <= z.start + z.spanned);
      if (!covers) fail(`${b.name} online in ${b.zone} of node ${b.nid}, whose span ${z ? `[${z.start}, ${z.start + z.spanned})` : 'is empty'} does not cover [${b.startPfn}, ${end})`);
    }
  }
  for (let nid = 0; nid < ctx.nodes; nid++)
    for (const zone of ZONE_TYPES) {
      const z = zoneInfo(nid, zone);
      if (z && z.present === 0 && z.spanned !== 0) fail(`node ${nid} ${zone}: no present pages but spans [${z.start}, ${z.start + z.spanned})`);
    }
  // Pinned pages never move.
  for (const pfn of ctx.pinned) {
    const st = pageState(m, pfn);
    if (!st || st.head !== pfn || st.state !== 'pinned') fail(`pinned page 0x${pfn.toString(16)} is now ${st ? `${st.state} (head 0x${st.head.toString(16)})` : 'removed'}`);
  }
  // The trace since the last step.
  const recs = m.trace.events().slice(ctx.traceSeen);
  ctx.traceSeen += recs.length;
  const count = { online: 0, offline: 0, add: 0, remove: 0, MEM_ONLINE: 0, MEM_OFFLINE: 0 };
  for (const r of recs) {
    if (r.type === 'lockdep') fail(`lockdep record ${JSON.stringify(r)}`);
    if (r.type === 'uevent') count[r.action as 'online']++;
    if (r.type !== 'notify') continue;
    if (r.action === 'MEM_ONLINE' || r.action === 'MEM_OFFLINE') count[r.action]++;
    ctx.checker.feed(r, (pfn) => nids.get(Math.floor(pfn / m.blockPages)));
  }
  if (!ctx.checker.idle) fail('an online or offline left its notifier sequence unfinished');
  if (count.online !== count.MEM_ONLINE || count.offline !== count.MEM_OFFLINE)
    fail(`uevents online ${count.online} / offline ${count.offline}, but MEM_ONLINE ${count.MEM_ONLINE} / MEM_OFFLINE ${count.MEM_OFFLINE}`);
  if (blocksBefore + count.add - count.remove !== m.blocks.size) fail(`${blocksBefore} blocks + ${count.add} add − ${count.remove} remove uevents ≠ ${m.blocks.size} blocks`);
  const mem = nodeList(m.nodes.memory);
  if (nodeList(ctx.checker.memory) !== mem) fail(`the events say N_MEMORY is ${nodeList(ctx.checker.memory).trim() || '(none)'}, the machine has ${mem.trim()}`);
  if ((await m.sysfs.read('/sys/devices/system/node/has_memory')) !== mem) fail('has_memory disagrees with N_MEMORY');
  for (const n of m.nodes.normal) if (!m.nodes.memory.has(n)) fail(`node ${n} in N_NORMAL_MEMORY but not N_MEMORY`);
}

/** Run one sequence on a fresh machine; returns the number of operations. Throws a Violation naming the step. */
async function runSequence(cfg: MachineOptions, ops: Op[]): Promise<number> {
  const m = await Machine.create({ ...COMMON, ...cfg });
  const nodes = Array.isArray(cfg.nodes) ? cfg.nodes.length : (cfg.nodes ?? 1);
  const ctx: Ctx = { m, nodes, allocs: [], pinned: [], ranges: [], logger: null, nodeVeto: null, nodeVetoErrno: 0, groupCodes: new Set(), checker: new TraceChecker(m, m.nodes.memory), traceSeen: m.trace.length, ops: 0, step: 0, log: [] };
  for (const op of ops) {
    ctx.step++;
    const nids = new Map([...m.blocks.values()].map((b) => [b.id, b.nid]));
    const blocksBefore = m.blocks.size;
    try {
      ctx.log.push(await exec(ctx, op, true));
      for (const b of m.blocks.values()) nids.set(b.id, b.nid);
      await checkStep(ctx, nids, blocksBefore);
    } catch (e) {
      if (e instanceof Violation) throw new Violation(`step ${ctx.step} ${JSON.stringify(op)}: ${e.message}\n  last steps:\n    ${ctx.log.slice(-8).join('\n    ')}`);
      throw e;
    }
  }
  await m.close();
  return ctx.ops;
}

describe('Machine: random operations with the kernel guarantees checked after every step (property)', function () {
  this.timeout(Math.max(30 * 60_000, TOTAL_OPS * 10)); // a hang bound, generous for any machine
  it(`${TOTAL_OPS} operations over ${CONFIGS.length} machine configurations of 6.1, 6.12 and 7.2`, async () => {
    if (process.env.MEMHP_PROPERTY_OPS === undefined) assert.ok(TOTAL_OPS >= CI_OPS, 'the CI budget is at least 100 000 operations');
    const seed = process.env.PROPERTY_SEED ? Number(process.env.PROPERTY_SEED) : Math.floor(Math.random() * 2 ** 31);
    const t0 = performance.now();
    let total = 0;
    let sequences = 0;
    for (const [ci, { name, opts }] of CONFIGS.entries()) {
      const nodes = Array.isArray(opts.nodes) ? opts.nodes.length : (opts.nodes ?? 1);
      const arb = fc.array(opArb(nodes, opts.kernel === '7.2'), { minLength: 1, maxLength: MAX_SEQ, size: 'max' });
      const quota = Math.ceil(TOTAL_OPS / CONFIGS.length);
      let done = 0;
      // Rounds of runs until the quota is met, so the count does not depend on the lengths drawn.
      for (let round = 0; done < quota; round++) {
        const roundSeed = (seed + ci * 7919 + round * 104729) % 2 ** 31;
        await fc.assert(
          fc.asyncProperty(arb, async (ops) => {
            done += await runSequence(opts, ops);
            sequences++;
          }),
          { numRuns: 10, seed: roundSeed },
        ).catch((e: unknown) => {
          const cause = e instanceof Error && e.cause instanceof Error ? `\n${e.cause.message}` : '';
          throw new Error(`${name}: property failed (PROPERTY_SEED=${seed}, round seed ${roundSeed})\n${e instanceof Error ? e.message : String(e)}${cause}`);
        });
      }
      total += done;
    }
    const seconds = (performance.now() - t0) / 1000;
    console.log(`      property: ${total} operations (≥ ${TOTAL_OPS}) in ${sequences} sequences on ${CONFIGS.length} configurations, ${seconds.toFixed(1)} s, PROPERTY_SEED=${seed}`);
    assert.ok(total >= TOTAL_OPS, `${total} operations ran, fewer than ${TOTAL_OPS}`);
  });
});
