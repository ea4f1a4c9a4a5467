/**
 * Host side of the guest agent's line protocol (qemu/init.sh) over the guest's second serial port,
 * a unix socket on the host. One request at a time (the agent is a shell loop); every request has an
 * id, every answer is one line `@@ID ok|err ERRNO|fail [BASE64]`, so framing is unambiguous whatever
 * the payload holds.
 */
import net from 'node:net';
import { errnoCode, isErrnoCode, KernelError, type ErrnoCode } from '../errors.js';
import type { TreeEntry } from '../kernel/target.js';
import { GuestError } from './errors.js';
import { wallTimer, type ProgressTimer } from './progress.js';

/** The agent's `@@READY` line. */
export interface AgentReady {
  /** Guest uptime (s) when the agent started serving. */
  uptime: number;
  /** `uname -r` of the guest. */
  release: string;
  probesOk: number;
  probesFailed: number;
}

/** One answer of the agent; an errno is the failing system call's, as its name (`E<n>` without one). */
export type AgentReply = { status: 'ok'; data: string } | { status: 'err'; errno: ErrnoCode; data: string } | { status: 'fail'; data: string };

/** The agent's errno word: a number (memhp-io reports the system call's errno), or an errno name. */
function errnoWord(w: string | undefined): ErrnoCode | undefined {
  if (w !== undefined && /^\d+$/.test(w)) return errnoCode(Number(w));
  return w !== undefined && isErrnoCode(w) ? w : undefined;
}

const TREE_TYPES: Readonly<Record<string, TreeEntry['type']>> = { d: 'dir', f: 'file', l: 'link', o: 'other' };

/** Parse memhp-io's census lines (`PATH TAB TYPE TAB MODE TAB VALUE`; qemu/memhp-io.c). */
export function parseCensus(text: string): TreeEntry[] {
  const out: TreeEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [p = '', t = '', mode = '0', v = ''] = line.split('\t');
    const type = TREE_TYPES[t] ?? 'other';
    const base = { path: p, type, mode: parseInt(mode, 8) };
    if (type === 'link') out.push({ ...base, target: v });
    else if (v.startsWith('=')) out.push({ ...base, value: dec(v.slice(1)) });
    else if (v.startsWith('!')) {
      const errno = errnoWord(v.slice(1)) ?? 'EIO';
      // lstat failed: a root that is not there.
      out.push(t === 'o' && mode === '0' ? { path: p, type: 'missing', mode: 0, errno } : { ...base, errno });
    } else out.push(base);
  }
  return out;
}

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
  #pending: { id: number; resolve(r: AgentReply): void; reject(e: unknown): void; timer: () => void } | undefined;
  #closed: GuestError | undefined;
  /** Called with each line that is not protocol (there should be none; kept for diagnosis). */
  onNoise: (line: string) => void = () => undefined;

  private constructor(
    private readonly sock: net.Socket,
    private readonly timer: ProgressTimer,
  ) {
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

  /**
   * Connect to the socket, retrying while QEMU has not created it yet. Request timeouts run on `timer`
   * (the guest's progress: {@link cpuTimer} of its QEMU; wall-clock seconds by default).
   */
  static async connect(socketPath: string, timeoutMs = 10_000, timer: ProgressTimer = wallTimer): Promise<AgentClient> {
    let expired = false;
    const cancel = timer(timeoutMs / 1000, () => void (expired = true));
    try {
      for (;;) {
        try {
          const sock = await new Promise<net.Socket>((resolve, reject) => {
            const s = net.connect(socketPath);
            s.once('connect', () => (s.removeAllListeners('error'), resolve(s)));
            s.once('error', reject);
          });
          return new AgentClient(sock, timer);
        } catch (e) {
          if (expired) throw new GuestError(`cannot connect to the guest agent at ${socketPath}`, { cause: e });
          await new Promise((r) => setTimeout(r, 10));
        }
      }
    } finally {
      cancel();
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
    p.timer();
    const w = rest.split(' ');
    if (w[0] === 'ok') p.resolve({ status: 'ok', data: dec(w[1]) });
    else if (w[0] === 'err') {
      const errno = errnoWord(w[1]);
      if (errno) p.resolve({ status: 'err', errno, data: dec(w[2]) });
      else p.resolve({ status: 'fail', data: `an error without an errno: ${rest}` });
    }
    else p.resolve({ status: 'fail', data: dec(w[1]) || rest });
  }

  #fail(e: GuestError): void {
    if (this.#closed) return;
    this.#closed = e;
    this.#rejectReady(e);
    const p = this.#pending;
    this.#pending = undefined;
    if (p) (p.timer(), p.reject(e));
  }

  /**
   * Send one request (`cmd` and its words; a word must not contain whitespace: base64 it) and wait
   * for its answer. Requests are queued; a timeout (`timeoutMs` of the client's progress clock, from
   * when the request is sent) rejects with {@link GuestError}.
   */
  request(cmd: string, args: readonly string[] = [], timeoutMs = 30_000): Promise<AgentReply> {
    const run = async (): Promise<AgentReply> => {
      if (this.#closed) throw this.#closed;
      const id = this.#nextId++;
      return new Promise<AgentReply>((resolve, reject) => {
        const timer = this.timer(timeoutMs / 1000, () => {
          this.#pending = undefined;
          reject(new GuestError(`agent: no answer to '${cmd}' within ${timeoutMs} ms of the guest's progress`));
        });
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
    if (r.status === 'err') throw new KernelError(r.errno, `${what}: ${r.data.trim() || r.errno}`);
    throw new GuestError(`agent refused '${cmd}': ${r.data.trim()}`);
  }

  /** Read a file in the guest. */
  read(path: string): Promise<string> {
    return this.call('read', [enc(path)], path);
  }

  /** Write a value (exactly these bytes, in one write) to a file in the guest. */
  async write(path: string, value: string): Promise<void> {
    await this.call('write', [enc(path), enc(value)], `${path}: write '${value}'`);
  }

  /** Every regular file under a directory: path → content, or the errno name when it cannot be read. */
  async dump(path: string): Promise<Map<string, { value: string } | { errno: ErrnoCode }>> {
    const out = new Map<string, { value: string } | { errno: ErrnoCode }>();
    for (const e of await this.census([path])) {
      if (e.type === 'missing') throw new KernelError(e.errno ?? 'ENOENT', `${path}: cannot dump`);
      if (e.type === 'file') out.set(e.path, e.value !== undefined ? { value: e.value } : { errno: e.errno ?? 'EIO' });
    }
    return out;
  }

  /** Walk trees in the guest (lstat, readlink, read each file): {@link TreeEntry}s in walk order. */
  async census(roots: readonly string[]): Promise<TreeEntry[]> {
    if (roots.some((r) => !r.startsWith('/') || /\s/.test(r))) throw new GuestError(`census: roots must be absolute paths without spaces: ${roots.join(' ')}`);
    return parseCensus(await this.call('census', roots, 'census', 60_000));
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
