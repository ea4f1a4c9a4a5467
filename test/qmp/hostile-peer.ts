/**
 * A hostile QMP peer for tests: a real unix-socket server in a private temporary directory that greets
 * and negotiates like QEMU, then answers each command through a script that may write any bytes at all
 * (a line of hundreds of MB, millions of nested brackets, an event flood) or nothing.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';

/** A command as the client sent it. */
export interface WireCommand {
  execute?: string;
  'exec-oob'?: string;
  id: unknown;
  arguments?: Record<string, unknown>;
}

/** One accepted connection, as the script sees it. */
export interface PeerConnection {
  readonly sock: net.Socket;
  /** Answer a command with `{"return": value, "id": id}`. */
  reply(id: unknown, value?: unknown): void;
  /** Write raw bytes, waiting for the socket to drain; false once the client has gone. */
  write(bytes: Buffer | string): Promise<boolean>;
  /** Write `chunk` repeatedly until `total` bytes are out or the client hangs up; returns the bytes written. */
  stream(chunk: Buffer, total: number): Promise<number>;
}

/** What the peer does with each command after negotiation. */
export type PeerScript = (cmd: WireCommand, conn: PeerConnection) => void | Promise<void>;

/** The QEMU greeting line. */
export function greeting(capabilities: string[] = []): string {
  return `${JSON.stringify({ QMP: { version: { qemu: { major: 9, minor: 2, micro: 0 }, package: '' }, capabilities } })}\n`;
}

/** An event line as QEMU writes it. */
export function eventLine(event: string, data: unknown): string {
  return `${JSON.stringify({ event, data, timestamp: { seconds: 1700000000, microseconds: 1 } })}\n`;
}

function connection(sock: net.Socket): PeerConnection {
  const gone = (): boolean => sock.destroyed || !sock.writable;
  const write = async (bytes: Buffer | string): Promise<boolean> => {
    if (gone()) return false;
    if (!sock.write(bytes)) {
      await new Promise<void>((resolve) => {
        const done = (): void => (sock.off('drain', done), sock.off('close', done), resolve());
        sock.once('drain', done);
        sock.once('close', done);
      });
    }
    return !gone();
  };
  return {
    sock,
    reply: (id, value = {}) => void sock.write(`${JSON.stringify({ return: value, id })}\n`),
    write,
    stream: async (chunk, total) => {
      let sent = 0;
      while (sent < total && (await write(chunk))) sent += chunk.length;
      return sent;
    },
  };
}

/** The server; `path` is the socket to give the client or the CLI. */
export class HostilePeer {
  /** Scripts still running, so {@link HostilePeer.stop} can wait for them. */
  readonly #running = new Set<Promise<void>>();
  readonly #sockets = new Set<net.Socket>();

  private constructor(
    readonly dir: string,
    readonly path: string,
    private readonly server: net.Server,
  ) {}

  /**
   * Listen; every connection is greeted, negotiated (unless `negotiate` is false: then `qmp_capabilities`
   * goes to the script too), then handed to `script` command by command.
   */
  static async start(script: PeerScript, opts: { capabilities?: string[]; negotiate?: boolean } = {}): Promise<HostilePeer> {
    const dir = await mkdtemp(path.join(tmpdir(), 'memhp-hostile-'));
    const file = path.join(dir, 'qmp.sock');
    const server = net.createServer();
    const peer = new HostilePeer(dir, file, server);
    server.on('connection', (sock) => {
      peer.#sockets.add(sock);
      sock.on('error', () => undefined); // EPIPE/ECONNRESET when the client gives up: expected here
      const conn = connection(sock);
      sock.write(greeting(opts.capabilities));
      const lines = createInterface({ input: sock, crlfDelay: Infinity });
      // A destroyed socket need not emit 'end', which is what would end the line iterator.
      sock.on('close', () => (peer.#sockets.delete(sock), lines.close()));
      const run = (async () => {
        for await (const line of lines) {
          const cmd = JSON.parse(line) as WireCommand;
          if (cmd.execute === 'qmp_capabilities' && opts.negotiate !== false) conn.reply(cmd.id);
          else await script(cmd, conn);
        }
      })().catch(() => undefined);
      peer.#running.add(run);
      void run.finally(() => peer.#running.delete(run));
    });
    await new Promise<void>((resolve) => server.listen(file, resolve));
    return peer;
  }

  /** Close every connection and the server, and remove the directory. */
  async stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await Promise.all(this.#running);
    await new Promise((r) => this.server.close(r));
    await rm(this.dir, { recursive: true, force: true });
  }
}
