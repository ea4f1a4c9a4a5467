/**
 * QmpClient and `memhp qmp` against a hostile QMP peer speaking raw bytes on a real unix socket: a reply
 * line of 600 MB, a reply nested 5 M levels deep, an event flood that one subscriber never reads, and a
 * peer that negotiates and then never answers. Each must end in a typed error or a bound, never in a
 * dead process, a blocked event loop or unbounded memory.
 */
import assert from 'node:assert/strict';
import { constants } from 'node:buffer';
import { EXIT, runQmp } from '../../lib/cli/qmp.js';
import { MemhpError } from '../../lib/errors.js';
import { QmpClient, QmpConnectionError, type QmpConnectOptions, type QmpEvent } from '../../lib/qmp/client.js';
import { QmpEventOverflowError } from '../../lib/qmp/errors.js';
import { eventLine, HostilePeer, type PeerScript, type WireCommand } from './hostile-peer.js';

const MiB = 2 ** 20;

/** A reply line `{"return": [[…]], "id": id}`: arrays nested `n` deep. */
function nested(id: unknown, n: number): Buffer {
  return Buffer.concat([Buffer.from('{"return": '), Buffer.alloc(n, '['), Buffer.alloc(n, ']'), Buffer.from(`, "id": ${JSON.stringify(id)}}\n`)]);
}

/** Writes one reply line of `bytes` bytes (a string of x) to `cmd`, in 1 MiB chunks, until the client hangs up. */
async function hugeLine(cmd: WireCommand, c: Parameters<PeerScript>[1], bytes: number): Promise<void> {
  if (!(await c.write('{"return": "'))) return;
  await c.stream(Buffer.alloc(MiB, 'x'), bytes);
  await c.write(`", "id": ${JSON.stringify(cmd.id)}}\n`);
}

/** `memhp qmp --socket S ...args`, capturing output. */
async function cli(socket: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runQmp(['--socket', socket, ...args], { stdout: (t) => void (out += t), stderr: (t) => void (err += t) });
  return { code, out, err };
}

describe('QMP against a hostile peer (raw bytes on a unix socket)', function () {
  this.timeout(20_000);
  let peer: HostilePeer | undefined;
  let client: QmpClient | undefined;
  afterEach(async () => {
    await client?.close();
    await peer?.stop();
    client = undefined;
    peer = undefined;
  });

  const connect = async (script: PeerScript, opts: QmpConnectOptions = {}): Promise<QmpClient> => {
    peer = await HostilePeer.start(script);
    client = await QmpClient.connect(peer.path, { timeoutMs: 5000, ...opts });
    return client;
  };

  describe('row 1: a reply line of 600 MB', () => {
    it('is refused at the line limit (64 MiB by default) with a QmpConnectionError; the process lives on', async () => {
      const c = await connect((cmd, conn) => hugeLine(cmd, conn, 600 * MiB));
      const err = await c.execute('big', undefined, { timeoutMs: 60_000 }).catch((e: unknown) => e);
      assert.ok(err instanceof QmpConnectionError, String(err));
      assert.match(err.message, /line longer than 67108864 bytes/);
      assert.equal(c.closedReason, err);
    });

    it('the limit is an option, and one above the longest string V8 can make is refused up front', async () => {
      const c = await connect((cmd, conn) => hugeLine(cmd, conn, 3 * MiB), { maxLineBytes: 2 * MiB });
      await assert.rejects(c.execute('big'), (e: unknown) => e instanceof QmpConnectionError && /longer than 2097152 bytes/.test(e.message));
      const tooBig = constants.MAX_STRING_LENGTH + 1;
      await assert.rejects(QmpClient.connect(peer!.path, { maxLineBytes: tooBig }), (e: unknown) => e instanceof MemhpError && /maxLineBytes/.test(e.message));
    });
  });

  describe('row 3: a reply nested 5 M levels deep (10 MB)', () => {
    it('is refused while it streams in, before JSON.parse; execute() settles with a typed error', async () => {
      const c = await connect((cmd, conn) => conn.write(nested(cmd.id, 5_000_000)).then(() => undefined));
      const err = await c.execute('deep', undefined, { timeoutMs: 1500 }).catch((e: unknown) => e);
      assert.ok(err instanceof QmpConnectionError, `expected a QmpConnectionError, got ${Array.isArray(err) ? 'a parsed reply' : String(err)}`);
      assert.match(err.message, /nested deeper than 1024 levels/);
    });

    it('accepts nesting up to the limit (QEMU stops at 1024), brackets inside strings, and a smaller maxDepth', async () => {
      const c = await connect(async (cmd, conn) => {
        if (cmd.execute === 'ok') await conn.write(nested(cmd.id, 1023));
        else if (cmd.execute === 'str') conn.reply(cmd.id, `"\\[${'['.repeat(5000)}`);
        else await conn.write(`{"return": ${'{"a": '.repeat(200)}1${'}'.repeat(200)}, "id": ${JSON.stringify(cmd.id)}}\n`);
      }, { maxDepth: 1024 });
      let v: unknown = await c.execute('ok');
      let depth = 0;
      while (Array.isArray(v)) (v = v[0]), depth++;
      assert.equal(depth, 1023); // plus the reply object itself: 1024 levels
      assert.equal((await c.execute<string>('str')).length, 5003);
      await c.close();
      client = await QmpClient.connect(peer!.path, { timeoutMs: 5000, maxDepth: 100 });
      await assert.rejects(client.execute('objects'), /nested deeper than 100 levels/);
    });
  });

  describe('row 4: an event flood with a subscriber that never reads', () => {
    const flood = (n: number): PeerScript => async (cmd, conn) => {
      if (cmd.execute !== 'flood') return conn.reply(cmd.id);
      const lines: string[] = [];
      for (let i = 0; i < n; i++) lines.push(eventLine('FLOOD', { n: i }));
      await conn.write(lines.join('') + eventLine('END', {}));
      conn.reply(cmd.id);
    };

    it('closes that subscription with QmpEventOverflowError after its cap; other subscribers get every event', async () => {
      const c = await connect(flood(5000), { maxQueuedEvents: 1000 });
      const idle = c.events();
      const reader = c.events();
      const seen = (async () => {
        let n = 0;
        for await (const e of reader) if (++n && e.event === 'END') break;
        return n;
      })();
      const end = c.waitForEvent('END');
      await c.execute('flood');
      await end;
      assert.equal(await seen, 5001);
      // The idle subscriber still gets what it had queued, then the overflow, then the end.
      const got: QmpEvent[] = [];
      const err = await (async () => {
        for await (const e of idle) got.push(e);
      })().catch((e: unknown) => e);
      assert.ok(err instanceof QmpEventOverflowError, String(err));
      assert.equal(err.limit, 1000);
      assert.match(err.message, /more than 1000 events/);
      assert.equal(got.length, 1000);
      assert.deepEqual(got[999]?.data, { n: 999 });
      assert.deepEqual(await idle.next(), { value: undefined, done: true });
      assert.deepEqual(await c.execute('still-alive'), {}); // the connection is unaffected
    });

    it('caps by default (10 000 events), and bounds the queued bytes too', async () => {
      const c = await connect(flood(12_000));
      const idle = c.events(['FLOOD']);
      await c.execute('flood');
      let n = 0;
      await assert.rejects(
        (async () => {
          for await (const _ of idle) n++;
        })(),
        (e: unknown) => e instanceof QmpEventOverflowError && e.limit === 10_000,
      );
      assert.equal(n, 10_000);
      // Each event line is about 90 bytes; 4 KiB holds fewer than 50 of them.
      await c.close();
      client = await QmpClient.connect(peer!.path, { timeoutMs: 5000, maxQueuedEventBytes: 4096 });
      const byBytes = client.events();
      await client.execute('flood');
      let m = 0;
      await assert.rejects(
        (async () => {
          for await (const _ of byBytes) m++;
        })(),
        (e: unknown) => e instanceof QmpEventOverflowError && /bytes/.test(e.message),
      );
      assert.ok(m > 0 && m < 50, `${m} events queued within 4 KiB`);
    });
  });

  describe('the memhp qmp CLI', () => {
    it('row 7: --timeout bounds every QMP command, against a peer that negotiates and then never answers', async () => {
      peer = await HostilePeer.start(() => undefined);
      const r = await cli(peer.path, '--json', '--timeout', '2000', 'plug', '--size', '128M');
      assert.equal(r.code, EXIT.FAILURE);
      assert.match(r.err, /query-memory-devices: no answer within 2000 ms/);
      assert.equal((JSON.parse(r.out) as { error: { name: string } }[])[0]?.error.name, 'QmpTimeoutError');
      const l = await cli(peer.path, '--timeout', '500', 'list');
      assert.equal(l.code, EXIT.FAILURE);
      assert.match(l.err, /no answer within 500 ms/);
      await peer.stop();
      // A peer that greets and never answers qmp_capabilities: the connection is bounded alike.
      peer = await HostilePeer.start(() => undefined, { negotiate: false });
      const n = await cli(peer.path, '--timeout', '1000', 'list');
      assert.equal(n.code, EXIT.FAILURE);
      // connect() hands the greeting and negotiation what is left of its deadline: 1000 ms or a little less.
      const ms = Number(/qmp_capabilities: no answer within (\d+) ms/.exec(n.err)?.[1]);
      assert.ok(ms > 0 && ms <= 1000, n.err);
    });

    it('row 1: a 600 MB reply fails the command with exit 1, not the process', async () => {
      peer = await HostilePeer.start((cmd, conn) => hugeLine(cmd, conn, 600 * MiB));
      const r = await cli(peer.path, 'list');
      assert.equal(r.code, EXIT.FAILURE);
      assert.match(r.err, /line longer than 67108864 bytes/);
    });

    it('row 3: a reply nested 5 M levels deep fails the command with exit 1', async () => {
      peer = await HostilePeer.start((cmd, conn) => conn.write(nested(cmd.id, 5_000_000)).then(() => undefined));
      const r = await cli(peer.path, '--timeout', '1500', 'list');
      assert.equal(r.code, EXIT.FAILURE);
      assert.match(r.err, /nested deeper than 1024 levels/);
    });

    it('row 4: an unplug whose device_del answer comes after an event flood fails with the overflow, not a hang', async () => {
      const dimm = { id: 'd1', addr: 2 ** 32, size: 128 * MiB, slot: 0, node: 0, memdev: '/objects/mem-d1', hotplugged: true, hotpluggable: true };
      // _OST of another DIMM: events the unplug listens to, and ignores.
      const ost = eventLine('ACPI_DEVICE_OST', { info: { device: 'other', 'slot-type': 'DIMM', slot: '5', source: 3, status: 0x84 } });
      peer = await HostilePeer.start(async (cmd, conn) => {
        if (cmd.execute === 'query-memory-devices') return conn.reply(cmd.id, [{ type: 'dimm', data: dimm }]);
        if (cmd.execute === 'device_del') await conn.write(ost.repeat(12_000));
        conn.reply(cmd.id);
      });
      const r = await cli(peer.path, '--timeout', '10000', 'unplug', 'd1');
      assert.equal(r.code, EXIT.FAILURE);
      assert.match(r.err, /more than 10000 events queued unread/);
    });
  });
});
