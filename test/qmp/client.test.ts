import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import {
  MAX_IN_FLIGHT,
  QmpClient,
  QmpConnectionError,
  QmpError,
  QmpTimeoutError,
  type QmpEvent,
} from '../../lib/qmp/client.js';
import { QemuFixture } from './qemu-fixture.js';

describe('QmpClient against real QEMU', function () {
  this.timeout(60_000);
  let qemu: QemuFixture;
  let qmp: QmpClient;

  before(async () => {
    qemu = await QemuFixture.start();
  });
  after(async () => qemu?.stop());
  beforeEach(async () => {
    qmp = await qemu.connect();
  });
  afterEach(async () => qmp?.close());

  it('parses the greeting and negotiates OOB', () => {
    assert.equal(qmp.greeting.version.qemu.major >= 7, true);
    assert.ok(qmp.greeting.capabilities.includes('oob'));
    assert.equal(qmp.oob, true);
  });

  it('executes commands and returns their value', async () => {
    const s = await qmp.execute<{ status: string; running: boolean }>('query-status');
    assert.deepEqual(s, { status: 'prelaunch', running: false, singlestep: false });
  });

  it('raises QmpError with class, desc and the command sent', async () => {
    const err = await qmp.execute('no-such-command', { x: 1 }).catch((e: unknown) => e);
    assert.ok(err instanceof QmpError);
    assert.equal(err.errorClass, 'CommandNotFound');
    assert.match(err.desc, /no-such-command/);
    assert.equal(err.command.execute, 'no-such-command');
    assert.deepEqual(err.command.arguments, { x: 1 });
    assert.equal(typeof err.command.id, 'number');
  });

  it('queues more than 8 concurrent commands and answers all of them', async () => {
    const rs = await Promise.all(Array.from({ length: 25 }, () => qmp.execute<{ status: string }>('query-status')));
    assert.equal(rs.length, 25);
    for (const r of rs) assert.equal(r.status, 'prelaunch');
  });

  it('sends exec-oob when asked and QEMU answers it', async () => {
    // query-status does not allow OOB: QEMU's refusal proves the command went out as exec-oob.
    const err = await qmp.execute('query-status', undefined, { oob: true }).catch((e: unknown) => e);
    assert.ok(err instanceof QmpError, String(err));
    assert.equal(err.command['exec-oob'], 'query-status');
    assert.match(err.desc, /OOB/i);
    // migrate-pause does allow OOB; without a postcopy migration QEMU refuses it with GenericError.
    const err2 = await qmp.execute('migrate-pause', undefined, { oob: true }).catch((e: unknown) => e);
    assert.ok(err2 instanceof QmpError);
    assert.equal(err2.errorClass, 'GenericError');
  });

  it('delivers events with timestamps to listeners opened before the command', async () => {
    const stream = qmp.events(['RESUME', 'STOP']);
    const resumed = qmp.waitForEvent('RESUME');
    const before = Date.now() / 1000;
    await qmp.execute('cont');
    const e = await resumed;
    assert.equal(e.event, 'RESUME');
    assert.deepEqual(e.data, {});
    assert.ok(e.timestamp.seconds >= Math.floor(before) - 1 && e.timestamp.microseconds >= 0);
    await qmp.execute('stop');
    const seen: string[] = [];
    for await (const ev of stream) {
      seen.push(ev.event);
      if (seen.length === 2) break; // break closes the stream
    }
    assert.deepEqual(seen, ['RESUME', 'STOP']);
  });

  it('times out and aborts per call, without disturbing the connection', async () => {
    const t = await qmp.waitForEvent('NEVER', { timeoutMs: 50 }).catch((e: unknown) => e);
    assert.ok(t instanceof QmpTimeoutError);
    const ac = new AbortController();
    const p = qmp.waitForEvent('NEVER', { signal: ac.signal });
    ac.abort(new Error('stop waiting'));
    await assert.rejects(p, /stop waiting/);
    await assert.rejects(qmp.execute('query-status', undefined, { signal: AbortSignal.abort() }), { name: 'AbortError' });
    assert.equal(typeof (await qmp.execute<{ status: string }>('query-status')).status, 'string');
  });

  it('close() rejects pending calls with a connection error', async () => {
    const pending = assert.rejects(qmp.waitForEvent('NEVER'), QmpConnectionError);
    await qmp.close();
    await pending;
    await assert.rejects(qmp.execute('query-status'), QmpConnectionError);
  });

  it('a second client is accepted but not greeted while one is connected', async () => {
    const err = await QmpClient.connect(qemu.qmpPath, { timeoutMs: 300 }).catch((e: unknown) => e);
    assert.ok(err instanceof QmpTimeoutError);
    assert.match(err.message, /another client/);
  });
});

/** A scripted QMP peer on a unix socket in a private tmp dir. */
class Peer {
  private constructor(
    private readonly dir: string,
    private readonly server: net.Server,
    readonly sock: net.Socket,
    readonly client: QmpClient,
    private readonly lines: AsyncIterator<string>,
  ) {}

  static async open(capabilities: string[] = ['oob'], opts: { maxLineBytes?: number } = {}): Promise<Peer> {
    const dir = await mkdtemp(path.join(tmpdir(), 'memhp-qmp-peer-'));
    const file = path.join(dir, 's.sock');
    const accepted = new Promise<net.Socket>((resolve) => {
      const server = net.createServer((s) => resolve(s));
      server.listen(file);
      servers.set(file, server);
    });
    const clientP = QmpClient.connect(file, { timeoutMs: 2000, ...opts });
    const sock = await accepted;
    const lines = createInterface({ input: sock, crlfDelay: Infinity })[Symbol.asyncIterator]();
    sock.write(`${JSON.stringify({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: '' }, capabilities } })}\n`);
    const neg = JSON.parse((await lines.next()).value as string) as { id: unknown; arguments?: unknown; execute: string };
    assert.equal(neg.execute, 'qmp_capabilities');
    assert.deepEqual(neg.arguments, capabilities.includes('oob') ? { enable: ['oob'] } : undefined);
    sock.write(`{"return": {}, "id": ${JSON.stringify(neg.id)}}\r\n`);
    const server = servers.get(file) as net.Server;
    return new Peer(dir, server, sock, await clientP, lines);
  }

  async read(): Promise<{ execute?: string; 'exec-oob'?: string; id: unknown; arguments?: Record<string, unknown> }> {
    return JSON.parse((await this.lines.next()).value as string);
  }

  reply(id: unknown, value: unknown = {}): void {
    this.sock.write(`${JSON.stringify({ return: value, id })}\n`);
  }

  event(name: string, data?: unknown): void {
    this.sock.write(`${JSON.stringify({ event: name, data, timestamp: { seconds: 1700000000, microseconds: 42 } })}\n`);
  }

  async close(): Promise<void> {
    await this.client.close();
    this.sock.destroy();
    await new Promise((r) => this.server.close(r));
    await rm(this.dir, { recursive: true, force: true });
  }
}
const servers = new Map<string, net.Server>();

describe('QmpClient parser and flow control (scripted peer on a unix socket)', function () {
  this.timeout(20_000);
  let p: Peer;
  afterEach(async () => p?.close());

  it('negotiates without OOB when it is not offered and refuses exec-oob then', async () => {
    p = await Peer.open([]);
    assert.equal(p.client.oob, false);
    await assert.rejects(p.client.execute('migrate-pause', undefined, { oob: true }), /did not offer OOB/);
  });

  it('matches out-of-order replies by id; events interleave; bytes may trickle', async () => {
    p = await Peer.open();
    const events: QmpEvent[] = [];
    const stream = p.client.events();
    const a = p.client.execute('a');
    const b = p.client.execute('b');
    const c = p.client.execute('c', undefined, { oob: true });
    const [ma, mb, mc] = [await p.read(), await p.read(), await p.read()];
    assert.equal(mc['exec-oob'], 'c');
    assert.notEqual(ma.id, mb.id);
    p.reply(mc.id, 'C');
    p.event('E1', { n: 1 });
    p.reply(mb.id, 'B');
    // One reply, one byte at a time.
    for (const ch of `${JSON.stringify({ return: 'A', id: ma.id })}\n`) p.sock.write(ch);
    p.event('E2');
    assert.deepEqual(await Promise.all([a, b, c]), ['A', 'B', 'C']);
    for await (const e of stream) if (events.push(e) === 2) break;
    assert.deepEqual(events.map((e) => [e.event, e.data]), [['E1', { n: 1 }], ['E2', {}]]);
    assert.deepEqual(events[0]?.timestamp, { seconds: 1700000000, microseconds: 42 });
  });

  it(`keeps at most ${MAX_IN_FLIGHT} in-band commands in flight, OOB aside, and queues the rest in order`, async () => {
    p = await Peer.open();
    const calls = Array.from({ length: 12 }, (_, i) => p.client.execute(`c${i}`));
    const got: { execute?: string; id: unknown }[] = [];
    for (let i = 0; i < MAX_IN_FLIGHT; i++) got.push(await p.read());
    const oob = p.client.execute('o', undefined, { oob: true });
    const o = await p.read(); // OOB overtakes the queue
    assert.equal(o['exec-oob'], 'o');
    p.reply(o.id, 'o');
    assert.equal(await oob, 'o');
    for (const m of got.splice(0, 4)) p.reply(m.id, m.execute);
    for (let i = 0; i < 4; i++) got.push(await p.read());
    assert.deepEqual(got.map((m) => m.execute), ['c4', 'c5', 'c6', 'c7', 'c8', 'c9', 'c10', 'c11']);
    for (const m of got) p.reply(m.id, m.execute);
    assert.deepEqual(await Promise.all(calls), calls.map((_, i) => `c${i}`));
  });

  it('a timed-out command keeps its slot until QEMU answers it late', async () => {
    p = await Peer.open();
    const slow = Array.from({ length: MAX_IN_FLIGHT }, (_, i) =>
      assert.rejects(p.client.execute(`s${i}`, undefined, { timeoutMs: 30 }), QmpTimeoutError),
    );
    const sent = await Promise.all(slow.map(() => p.read()));
    await Promise.all(slow);
    const next = p.client.execute('next');
    await new Promise((r) => setTimeout(r, 50));
    p.reply(sent[0]?.id, 'late'); // ignored, but frees one slot
    const m = await p.read();
    assert.equal(m.execute, 'next');
    p.reply(m.id, 42);
    assert.equal(await next, 42);
  });

  it('accepts lines of 10 MB and more', async () => {
    p = await Peer.open();
    const big = 'x'.repeat(12 * 1024 * 1024);
    const r = p.client.execute<string>('big');
    const m = await p.read();
    const line = Buffer.from(`${JSON.stringify({ return: big, id: m.id })}\n`);
    for (let o = 0; o < line.length; o += 65536) p.sock.write(line.subarray(o, o + 65536));
    assert.equal((await r).length, big.length);
  });

  it('a line over maxLineBytes is fatal', async () => {
    p = await Peer.open(['oob'], { maxLineBytes: 1024 });
    const r = assert.rejects(p.client.execute('x'), (e: unknown) => e instanceof QmpConnectionError && /longer than 1024/.test(e.message));
    await p.read();
    p.sock.write('"' + 'y'.repeat(4096));
    await r;
  });

  const fatal: [string, (id: unknown) => string, RegExp][] = [
    ['malformed JSON', () => '{"return": {}, "id": \n', /malformed JSON/],
    ['a non-object message', () => '[1,2]\n', /not an object/],
    ['an error reply without id', () => '{"error": {"class": "GenericError", "desc": "JSON parse error"}}\n', /without id: JSON parse error/],
    ['a reply to an unknown id', () => '{"return": {}, "id": 999999}\n', /unknown id/],
  ];
  for (const [what, line, re] of fatal) {
    it(`${what} is fatal to the connection`, async () => {
      p = await Peer.open();
      const r = assert.rejects(p.client.execute('x'), (e: unknown) => e instanceof QmpConnectionError && re.test(e.message));
      const ev = assert.rejects(p.client.waitForEvent('E'), QmpConnectionError);
      const it = p.client.events();
      const m = await p.read();
      p.sock.write(line(m.id));
      await r;
      await ev;
      await assert.rejects(it.next(), QmpConnectionError);
      assert.deepEqual(await it.next(), { value: undefined, done: true });
      await assert.rejects(p.client.execute('y'), QmpConnectionError);
    });
  }

  it('a truncated line followed by close rejects pending calls', async () => {
    p = await Peer.open();
    const r = assert.rejects(p.client.execute('x'), /unterminated/);
    const m = await p.read();
    p.sock.end(`{"return": {}, "id": ${JSON.stringify(m.id)}`);
    await r;
  });

  it('close() rejects sent and queued calls', async () => {
    p = await Peer.open();
    const calls = Array.from({ length: 10 }, () => assert.rejects(p.client.execute('x'), QmpConnectionError));
    await p.read();
    await p.client.close();
    await Promise.all(calls);
  });

  it('rejects a bad greeting', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'memhp-qmp-peer-'));
    const file = path.join(dir, 's.sock');
    const server = net.createServer((s) => s.write('{"hello": 1}\n')).listen(file);
    await assert.rejects(QmpClient.connect(file, { timeoutMs: 2000 }), /bad greeting/);
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  it('fromStream speaks QMP over any duplex stream', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'memhp-qmp-peer-'));
    const file = path.join(dir, 's.sock');
    const server = net
      .createServer((s) => {
        s.write('{"QMP": {"version": {"qemu": {"major": 9, "minor": 0, "micro": 0}, "package": ""}, "capabilities": []}}\n');
        createInterface({ input: s }).on('line', (l) => {
          const m = JSON.parse(l) as { id: unknown; execute: string };
          s.write(`${JSON.stringify({ return: m.execute === 'qmp_capabilities' ? {} : 'pong', id: m.id })}\n`);
        });
      })
      .listen(file);
    const sock = net.createConnection(file);
    const c = await QmpClient.fromStream(sock);
    assert.equal(c.greeting.version.qemu.major, 9);
    assert.equal(await c.execute('ping'), 'pong');
    await c.close();
    server.close();
    await rm(dir, { recursive: true, force: true });
  });
});
