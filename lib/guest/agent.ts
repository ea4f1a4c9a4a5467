/**
 * Host side of the guest agent's line protocol (qemu/init.sh) over the guest's second serial port,
 * a unix socket on the host. One request at a time (the agent is a shell loop); every request has an
 * id, every answer is one line `@@ID ok|err ERRNO|fail [BASE64]`, so framing is unambiguous whatever
 * the payload holds.
 */
import net from 'node:net';
import { isErrnoCode, KernelError } from '../errors.js';
import { GuestError } from './errors.js';

/** The agent's `@@READY` line. */
export interface AgentReady {
  /** Guest uptime (s) when the agent started serving. */
  uptime: number;
  /** `uname -r` of the guest. */
  release: string;
  probesOk: number;
  probesFailed: number;
}

/** One answer of the agent. */
export type AgentReply = { status: 'ok'; data: string } | { status: 'err'; errno: string; data: string } | { status: 'fail'; data: string };

const enc = (s: string): string => Buffer.from(s).toString('base64');
const dec = (s: string | undefined): string => (s ? Buffer.from(s, 'base64').toString('utf8') : '');

/** A connection to the agent. Create it with {@link AgentClient.connect}. */
export class AgentClient {
  readonly ready: Promise<AgentReady>;
  #resolveReady!: (r: AgentReady) => void;
  #rejectReady!: (e: unknown) => void;
  #buf = '';
  #nextId = 1;
  #chain: Promise<unknown> = Promise.resolve();
  #pending: { id: number; resolve(r: AgentReply): void; reject(e: unknown): void; timer: NodeJS.Timeout } | undefined;
  #closed: GuestError | undefined;
  /** Called with each line that is not protocol (there should be none; kept for diagnosis). */
  onNoise: (line: string) => void = () => undefined;

  private constructor(private readonly sock: net.Socket) {
    this.ready = new Promise((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.ready.catch(() => undefined);
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => this.#onData(d));
    sock.on('error', (e) => this.#fail(new GuestError(`agent channel error: ${e.message}`, { cause: e })));
    sock.on('close', () => this.#fail(new GuestError('agent channel closed (QEMU exited?)')));
  }

  /** Connect to the socket, retrying while QEMU has not created it yet. */
  static async connect(socketPath: string, timeoutMs = 10_000): Promise<AgentClient> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      try {
        const sock = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(socketPath);
          s.once('connect', () => (s.removeAllListeners('error'), resolve(s)));
          s.once('error', reject);
        });
        return new AgentClient(sock);
      } catch (e) {
        if (Date.now() > until) throw new GuestError(`cannot connect to the guest agent at ${socketPath}`, { cause: e });
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }

  #onData(d: string): void {
    this.#buf += d;
    let nl: number;
    while ((nl = this.#buf.indexOf('\n')) >= 0) {
      const line = this.#buf.slice(0, nl).replace(/\r$/, '');
      this.#buf = this.#buf.slice(nl + 1);
      this.#onLine(line);
    }
  }

  #onLine(line: string): void {
    const m = /^@@(\S+) ?(.*)$/.exec(line);
    if (!m) return this.onNoise(line);
    const [, tag, rest] = m as unknown as [string, string, string];
    if (tag === 'READY') {
      const [uptime, release, ok, bad] = rest.split(' ');
      this.#resolveReady({ uptime: Number(uptime), release: release ?? '', probesOk: Number(ok), probesFailed: Number(bad) });
      return;
    }
    const p = this.#pending;
    if (!p || String(p.id) !== tag) return this.onNoise(line); // a late answer to a timed-out request
    this.#pending = undefined;
    clearTimeout(p.timer);
    const w = rest.split(' ');
    if (w[0] === 'ok') p.resolve({ status: 'ok', data: dec(w[1]) });
    else if (w[0] === 'err') p.resolve({ status: 'err', errno: w[1] ?? 'EIO', data: dec(w[2]) });
    else p.resolve({ status: 'fail', data: dec(w[1]) || rest });
  }

  #fail(e: GuestError): void {
    if (this.#closed) return;
    this.#closed = e;
    this.#rejectReady(e);
    const p = this.#pending;
    this.#pending = undefined;
    if (p) (clearTimeout(p.timer), p.reject(e));
  }

  /**
   * Send one request (`cmd` and its words; a word must not contain whitespace: base64 it) and wait
   * for its answer. Requests are queued; a timeout rejects with {@link GuestError}.
   */
  request(cmd: string, args: readonly string[] = [], timeoutMs = 30_000): Promise<AgentReply> {
    const run = async (): Promise<AgentReply> => {
      if (this.#closed) throw this.#closed;
      const id = this.#nextId++;
      return new Promise<AgentReply>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.#pending = undefined;
          reject(new GuestError(`agent: no answer to '${cmd}' within ${timeoutMs} ms`));
        }, timeoutMs);
        this.#pending = { id, resolve, reject, timer };
        this.sock.write(`${[id, cmd, ...args].join(' ')}\n`);
      });
    };
    const p = this.#chain.then(run, run);
    this.#chain = p.catch(() => undefined);
    return p;
  }

  /** Like {@link request} but an `err` answer rejects with {@link KernelError} and `fail` with {@link GuestError}. */
  async call(cmd: string, args: readonly string[] = [], what = cmd, timeoutMs?: number): Promise<string> {
    const r = await this.request(cmd, args, timeoutMs);
    if (r.status === 'ok') return r.data;
    if (r.status === 'err') {
      const code = isErrnoCode(r.errno) ? r.errno : 'EIO';
      throw new KernelError(code, `${what}: ${r.data.trim() || r.errno}`, { guestErrno: r.errno });
    }
    throw new GuestError(`agent refused '${cmd}': ${r.data.trim()}`);
  }

  /** Read a file in the guest. */
  read(path: string): Promise<string> {
    return this.call('read', [path], path);
  }

  /** Write a value (exactly these bytes, in one write) to a file in the guest. */
  async write(path: string, value: string): Promise<void> {
    await this.call('write', [path, enc(value)], `${path}: write '${value}'`);
  }

  /** Every regular file under a directory: path → content, or the errno name when it cannot be read. */
  async dump(path: string): Promise<Map<string, { value: string } | { errno: string }>> {
    const out = new Map<string, { value: string } | { errno: string }>();
    for (const line of (await this.call('dump', [path], path, 60_000)).split('\n')) {
      const [p, st, v] = line.split(' ');
      if (!p) continue;
      out.set(p, st === 'ok' ? { value: dec(v) } : { errno: v ?? 'EIO' });
    }
    return out;
  }

  /** Run a shell script in the guest; its combined output. */
  sh(script: string, timeoutMs?: number): Promise<string> {
    return this.call('sh', [enc(script)], 'sh', timeoutMs);
  }

  /** Close the channel (the guest is not told). */
  close(): void {
    this.#fail(new GuestError('agent channel closed by the host'));
    this.sock.destroy();
  }
}

export { enc as base64 };
