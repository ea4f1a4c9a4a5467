/**
 * `memhp qmp`: memory hotplug of a running QEMU over its QMP socket.
 *
 *   memhp qmp --socket PATH|tcp:HOST:PORT plug --size 1G [--id ID]... [--node N] [--addr A] [--wait-ost]
 *   memhp qmp --socket PATH plug --virtio-mem --size 4G [--requested-size 1G] [--virtio-block-size 2M]
 *   memhp qmp --socket PATH unplug ID...
 *   memhp qmp --socket PATH list
 *   memhp qmp --socket PATH resize ID SIZE
 *   memhp qmp --socket PATH events [NAME...] [--count N]
 *
 * Exit codes follow chmem(8) (lib/cli/io.ts): 0 success, 1 failure (refused, timed out, QEMU
 * unreachable), 2 a usage error, 64 partial success (some devices done, or a virtio-mem resize that
 * moved but did not converge). `--json` prints one shape whatever happens: an array of {@link Outcome}s.
 */
import { stat } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { MemhpError } from '../errors.js';
import { QmpClient, qmpAddress, type QmpEvent } from '../qmp/client.js';
import { HotplugError, HotplugTimeoutError, QmpError, GuestRejectedError } from '../qmp/errors.js';
import { MemoryHotplug, formatSize, type MemoryDevice, type Plan, type QmpStep } from '../qmp/hotplug.js';

import { durationArg, EXIT, failureText, processIo, runSubcommand, type CliIo, type CommandOptions } from './io.js';

export { EXIT, type CliIo };

interface GlobalOpts {
  socket: string;
  dryRun?: boolean;
  json?: boolean;
  timeout?: number;
  blockSize?: string;
}

/**
 * What `memhp qmp --json` prints, always as an array of these: one per device a command acted on (plug,
 * unplug, resize) or listed (list); a failure of the command as a whole (QEMU unreachable, a refused
 * query) is one outcome per device asked for, or a single one without an id.
 */
export interface Outcome {
  /** The device id, when there is one. */
  id?: string;
  /** Whether the operation on this device succeeded. */
  ok: boolean;
  /** The device as QEMU lists it afterwards. */
  device?: MemoryDevice;
  /** Why it failed: the error's class name and message, and the QMP error class, check or _OST status. */
  error?: { name: string; message: string } & Record<string, unknown>;
}

/** A whole number option (`--node`, `--count`); `what` names it in the error. */
const wholeArg =
  (what: string) =>
  (v: string): number => {
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new InvalidArgumentError(`expected ${what}`);
    return Number(v);
  };

/** `--timeout`: milliseconds (`300`), or a duration with its unit (`500ms`, `5s`, `2m`). */
export function timeoutArg(v: string): number {
  if (/^\d+$/.test(v)) return Number(v);
  try {
    return durationArg(v);
  } catch {
    throw new InvalidArgumentError('expected milliseconds or a duration such as 500ms, 5s or 2m');
  }
}

/** `--socket`: a unix socket path, or `tcp:HOST:PORT` checked as {@link qmpAddress} checks it. */
function socketArg(v: string): string {
  try {
    qmpAddress(v);
  } catch {
    throw new InvalidArgumentError('expected a unix socket path or tcp:HOST:PORT (a port in 1..65535)');
  }
  return v;
}

/** Refuse a `--socket` path that exists but is not a socket (connect(2) would only say ECONNREFUSED). */
async function checkSocket(socket: string): Promise<void> {
  if (socket.startsWith('tcp:')) return;
  const st = await stat(socket).catch(() => undefined); // a missing path: connect() says ENOENT
  if (!st || st.isSocket()) return;
  const what = st.isFile() ? 'a regular file' : st.isDirectory() ? 'a directory' : 'another kind of file';
  throw new MemhpError(`cannot connect to QMP socket ${socket}: it is ${what}, not a unix socket (QEMU: -qmp unix:PATH,server=on,wait=off)`);
}

function describeError(e: unknown): NonNullable<Outcome['error']> {
  const err = e instanceof Error ? e : new Error(String(e));
  const extra: Record<string, unknown> = {};
  if (e instanceof QmpError) Object.assign(extra, { class: e.errorClass, desc: e.desc, command: e.command });
  if (e instanceof HotplugError) extra.check = e.check;
  if (e instanceof GuestRejectedError) Object.assign(extra, { status: e.status, code: e.code });
  if (e instanceof HotplugTimeoutError) Object.assign(extra, e.details);
  return { name: err.name, message: err.message, ...extra };
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function describeDevice(d: MemoryDevice): string {
  if (d.type === 'virtio-mem') {
    return `${d.id ?? '-'}\tvirtio-mem\t${hex(d.memaddr)}\t${formatSize(d.size)} of ${formatSize(d.maxSize)} (requested ${formatSize(d.requestedSize)})\tnode ${d.node}`;
  }
  if (d.type === 'other') return `${d.id ?? '-'}\t${d.qemuType}\t-\t${formatSize(d.size)}`;
  return `${d.id ?? '-'}\t${d.type}\t${hex(d.addr)}\t${formatSize(d.size)}\tnode ${d.node}\tslot ${d.slot}`;
}

/** Runs one sub-command with a connection, printing results; returns the exit code. */
type Body = (hp: MemoryHotplug, g: GlobalOpts, io: CliIo, cmd: Command) => Promise<number>;

interface PlugOpts {
  size: string;
  id: string[];
  node?: number;
  addr?: string;
  waitOst?: boolean;
  /** The deprecated name of waitOst. */
  waitOnline?: boolean;
  virtioMem?: boolean;
  requestedSize?: string;
  virtioBlockSize?: string;
}

function printPlan(io: CliIo, plans: Plan[]): void {
  const steps: QmpStep[] = plans.flatMap((p) => p.steps);
  for (const s of steps) io.stdout(`${JSON.stringify(s)}\n`);
}

/** Report outcomes of a multi-device operation; the exit code is 0, 1 or 64 as chmem's. */
function report(io: CliIo, g: GlobalOpts, outcomes: Outcome[], verb: string): number {
  if (g.json) io.stdout(`${JSON.stringify(outcomes, null, 2)}\n`);
  for (const o of outcomes) {
    if (o.ok && !g.json) io.stdout(`${verb} ${o.device ? describeDevice(o.device) : o.id}\n`);
    if (!o.ok) io.stderr(`memhp qmp: ${o.error?.message}\n`);
  }
  const ok = outcomes.filter((o) => o.ok).length;
  return ok === outcomes.length ? EXIT.OK : ok === 0 ? EXIT.FAILURE : EXIT.PARTIAL;
}

/**
 * Build the `qmp` sub-command. Mount it with `program.addCommand(qmpCommand())`; each action
 * sets `process.exitCode` unless `onExit` is given.
 */
export function qmpCommand(opts: CommandOptions = {}): Command {
  const io = opts.io ?? processIo;
  const onExit = opts.onExit ?? ((code: number) => void (process.exitCode = code));

  const qmp = new Command('qmp')
    .description('hot-plug memory into a running QEMU over QMP')
    .requiredOption('--socket <path>', 'QMP unix socket (-qmp unix:PATH,server=on,wait=off), or tcp:HOST:PORT (-qmp tcp:HOST:PORT,server=on,wait=off)', socketArg)
    .option('--dry-run', 'check, then print the QMP commands instead of sending them')
    .option('--json', 'machine-readable output')
    .option('--timeout <ms>', 'deadline of the connection, of each QMP command and of each wait for the guest, in ms or with a unit (5s); events: how long to listen', timeoutArg)
    .option('--block-size <size>', "the guest's memory block size", '128M');

  /**
   * Wrap a body: connect, run, close, and turn any error into exit code 1 (with --json, an outcome for
   * each device in `ids`, or one without an id). `--timeout` bounds the connection and every command the
   * body sends (a QEMU that greets and then stalls must not hold the CLI for the client's default
   * minute); `events` only listens for that long, so it connects with the usual 5 s.
   */
  const action =
    (body: Body, opts: { listen?: boolean; ids?: (cmd: Command) => string[] } = {}) =>
    async (...args: unknown[]): Promise<void> => {
      const cmd = args[args.length - 1] as Command;
      const g = cmd.optsWithGlobals<GlobalOpts>();
      let client: QmpClient | undefined;
      let code: number;
      try {
        const timeoutMs = g.timeout === undefined || opts.listen ? 5000 : Math.max(1, g.timeout);
        await checkSocket(g.socket);
        client = await QmpClient.connect(g.socket, { timeoutMs, retry: false, ...(g.timeout !== undefined ? { callTimeoutMs: Math.max(1, g.timeout) } : {}) });
        code = await body(new MemoryHotplug(client, { blockSize: g.blockSize, timeoutMs: g.timeout }), g, io, cmd);
      } catch (e) {
        const ids = opts.ids?.(cmd) ?? [];
        const error = describeError(e);
        if (g.json) io.stdout(`${JSON.stringify(ids.length ? ids.map((id): Outcome => ({ id, ok: false, error })) : [{ ok: false, error }], null, 2)}\n`);
        io.stderr(failureText(cmd, e));
        code = EXIT.FAILURE;
      } finally {
        await client?.close();
      }
      onExit(code);
    };

  qmp
    .command('plug')
    .description('plug a pc-dimm per --id (one with a generated id if none), or a virtio-mem device')
    .requiredOption('--size <size>', 'DIMM size, or the virtio-mem maximum size (e.g. 1G)')
    .option('--id <id>', 'device id (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--node <n>', 'NUMA node', wholeArg('a node id'))
    .option('--addr <addr>', 'guest-physical address (pc-dimm)')
    .option('--wait-ost', "wait for the guest's ACPI _OST success report (pc-dimm): its driver added the memory; whether the blocks are online is the guest's auto-online policy, which QMP cannot see")
    .addOption(new Option('--wait-online', 'deprecated name of --wait-ost').hideHelp())
    .option('--virtio-mem', 'add a virtio-mem-pci device instead of a pc-dimm')
    .option('--requested-size <size>', 'virtio-mem: initial requested size')
    .option('--virtio-block-size <size>', 'virtio-mem: block size')
    .action(
      action(async (hp, g, out, cmd) => {
        const o = cmd.opts<PlugOpts>();
        const ids: (string | undefined)[] = o.id.length ? o.id : [undefined];
        if (o.virtioMem) {
          const vo = { size: o.size, node: o.node, requestedSize: o.requestedSize, blockSize: o.virtioBlockSize };
          const plans = await Promise.all(ids.map((id) => hp.planAddVirtioMem({ ...vo, id })));
          if (g.dryRun) return printPlan(out, plans), EXIT.OK;
          const outcomes: Outcome[] = [];
          for (const p of plans) {
            outcomes.push(await hp.addVirtioMem({ ...vo, id: p.id }).then(
              (device) => ({ id: p.id, ok: true, device }),
              (e: unknown) => ({ id: p.id, ok: false, error: describeError(e) }),
            ));
          }
          return report(out, g, outcomes, 'added');
        }
        if (o.waitOnline) out.stderr('memhp qmp: --wait-online is deprecated: it waits for _OST, not for online blocks; use --wait-ost\n');
        const po = { size: o.size, node: o.node, addr: o.addr, waitOnline: o.waitOst || o.waitOnline, timeoutMs: g.timeout };
        if (g.dryRun) return printPlan(out, await Promise.all(ids.map((id) => hp.planPlugDimm({ ...po, id })))), EXIT.OK;
        const outcomes: Outcome[] = [];
        for (const id of ids) {
          outcomes.push(await hp.plugDimm({ ...po, id }).then(
            (device) => ({ id: device.id ?? '', ok: true, device }),
            (e: unknown) => ({ id: id ?? '(new)', ok: false, error: describeError(e) }),
          ));
        }
        return report(out, g, outcomes, 'plugged');
      }, { ids: (cmd) => cmd.opts<PlugOpts>().id }),
    );

  qmp
    .command('unplug')
    .description('unplug pc-dimms: device_del, wait for DEVICE_DELETED, object-del')
    .argument('<id...>', 'device ids')
    .action(
      action(async (hp, g, out, cmd) => {
        const unplugIds = cmd.processedArgs[0] as string[];
        if (g.dryRun) return printPlan(out, await Promise.all(unplugIds.map((id) => hp.planUnplugDimm(id)))), EXIT.OK;
        const outcomes: Outcome[] = [];
        for (const id of unplugIds) {
          outcomes.push(await hp.unplugDimm(id, { timeoutMs: g.timeout }).then(
            () => ({ id, ok: true }),
            (e: unknown) => ({ id, ok: false, error: describeError(e) }),
          ));
        }
        return report(out, g, outcomes, 'unplugged');
      }, { ids: (cmd) => cmd.processedArgs[0] as string[] }),
    );

  qmp
    .command('list')
    .description('list memory devices (query-memory-devices)')
    .action(
      action(async (hp, g, out) => {
        const devices = await hp.listMemoryDevices();
        if (g.json) out.stdout(`${JSON.stringify(devices.map((device): Outcome => ({ ...(device.id !== undefined ? { id: device.id } : {}), ok: true, device })), null, 2)}\n`);
        else for (const d of devices) out.stdout(`${describeDevice(d)}\n`);
        return EXIT.OK;
      }),
    );

  qmp
    .command('resize')
    .description('set a virtio-mem requested-size and wait until the guest has plugged it')
    .argument('<id>', 'virtio-mem device id')
    .argument('<size>', 'new requested size')
    .action(
      action(async (hp, g, out, cmd) => {
        const [id, size] = cmd.processedArgs as [string, string];
        if (g.dryRun) return printPlan(out, [await hp.planResizeVirtioMem(id, size)]), EXIT.OK;
        try {
          const device = await hp.resizeVirtioMem(id, size, { timeoutMs: g.timeout });
          return report(out, g, [{ id, ok: true, device }], 'resized');
        } catch (e) {
          const d = e instanceof HotplugTimeoutError ? e.details : undefined;
          report(out, g, [{ id, ok: false, error: describeError(e) }], 'resized');
          // The guest moved towards the target but did not reach it: partial, as chmem counts it.
          return d && d.size !== d.startSize ? EXIT.PARTIAL : EXIT.FAILURE;
        }
      }, { ids: (cmd) => [cmd.processedArgs[0] as string] }),
    );

  qmp
    .command('events')
    .description('print QMP events (all, or those named) until --count, --timeout or Ctrl-C')
    .argument('[name...]', 'event names, e.g. DEVICE_DELETED ACPI_DEVICE_OST')
    .option('--count <n>', 'stop after this many events', wholeArg('a count of events'))
    .action(
      action(async (hp, g, out, cmd) => {
        const names = cmd.processedArgs[0] as string[];
        const { count } = cmd.opts<{ count?: number }>();
        const stream = hp.qmp.events(names.length ? names : undefined);
        const stop = (): void => stream.close();
        const timer = g.timeout !== undefined ? setTimeout(stop, g.timeout) : undefined;
        process.once('SIGINT', stop);
        let n = 0;
        try {
          if (count === 0) return EXIT.OK;
          for await (const e of stream as AsyncIterable<QmpEvent>) {
            const t = `${e.timestamp.seconds}.${String(e.timestamp.microseconds).padStart(6, '0')}`;
            out.stdout(g.json ? `${JSON.stringify(e)}\n` : `${t} ${e.event} ${JSON.stringify(e.data)}\n`);
            if (++n === count) break;
          }
        } finally {
          clearTimeout(timer);
          process.off('SIGINT', stop);
          stream.close();
        }
        return EXIT.OK;
      }, { listen: true }),
    );

  return qmp;
}

/**
 * Run `memhp qmp` with `argv` (the words after `qmp`) and resolve with the exit code; never calls
 * process.exit, so tests and other CLIs can embed it. Usage errors exit 2.
 */
export function runQmp(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  return runSubcommand(qmpCommand, argv, io);
}
