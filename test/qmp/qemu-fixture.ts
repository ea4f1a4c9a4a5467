/**
 * A paused, guest-less QEMU for the QMP tests: `-S`, no firmware run, NUMA nodes, a QMP unix socket
 * in a private 0700 directory. QEMU runs in its own process group and is killed when the test process
 * exits, even if a test forgot to stop it. (The real guest launcher lives in lib/guest/.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ensureDebianPackages } from '../../lib/host/packages.js';
import { QmpClient } from '../../lib/qmp/client.js';

export interface QemuFixtureOptions {
  /** Boot RAM (on node 0); default '1G'. */
  memory?: string;
  slots?: number;
  /** Default '8G'. */
  maxmem?: string;
  /** NUMA nodes; node 0 holds the boot RAM, the others are memoryless. Default 2. */
  nodes?: number;
  /** QMP monitors to open (QEMU serves one client per monitor); default 1. */
  monitors?: number;
  extraArgs?: string[];
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of running) if (p.pid) try { process.kill(-p.pid, 'SIGKILL'); } catch { /* already gone */ }
});

/** One QEMU process and its QMP socket path. */
export class QemuFixture {
  private constructor(
    readonly dir: string,
    /** One socket per monitor. */
    readonly qmpPaths: string[],
    readonly proc: ChildProcess,
    private readonly exited: Promise<void>,
  ) {}

  /** Install QEMU if needed (CI runs as root on a fresh Debian 12) and start a paused machine. */
  static async start(opts: QemuFixtureOptions = {}): Promise<QemuFixture> {
    await ensureDebianPackages(['qemu-system-x86']);
    const dir = await mkdtemp(path.join(tmpdir(), 'memhp-qmp-')); // mkdtemp makes it 0700
    const qmpPaths = Array.from({ length: opts.monitors ?? 1 }, (_, i) => path.join(dir, `qmp${i}.sock`));
    const memory = opts.memory ?? '1G';
    const nodes = opts.nodes ?? 2;
    const numa = [`-object`, `memory-backend-ram,id=ram0,size=${memory}`, '-numa', 'node,nodeid=0,memdev=ram0'];
    for (let n = 1; n < nodes; n++) numa.push('-numa', `node,nodeid=${n}`);
    const args = [
      '-S', '-accel', 'tcg', '-nodefaults', '-display', 'none', '-no-user-config',
      '-m', `${memory},slots=${opts.slots ?? 4},maxmem=${opts.maxmem ?? '8G'}`,
      ...(nodes > 0 ? numa : []),
      ...qmpPaths.flatMap((p) => ['-qmp', `unix:${p},server=on,wait=off`]),
      ...(opts.extraArgs ?? []),
    ];
    const log = await open(path.join(dir, 'qemu.log'), 'w');
    const proc = spawn('qemu-system-x86_64', args, { detached: true, stdio: ['ignore', log.fd, log.fd] });
    await log.close();
    running.add(proc);
    proc.unref(); // a forgotten fixture must not keep mocha alive; the exit hook kills it
    const exited = new Promise<void>((resolve) => proc.once('exit', () => (running.delete(proc), resolve())));
    const f = new QemuFixture(dir, qmpPaths, proc, exited);
    const early = exited.then(async () => {
      throw new Error(`QEMU exited at start: ${await readFile(path.join(dir, 'qemu.log'), 'utf8')}`);
    });
    try {
      // Wait until the socket answers, so tests start against a ready monitor.
      const probe = await Promise.race([QmpClient.connect(qmpPaths[0] as string, { timeoutMs: 15_000 }), early]);
      await probe.close();
    } catch (e) {
      await f.stop();
      throw e;
    }
    early.catch(() => undefined);
    return f;
  }

  /** The first monitor's socket. */
  get qmpPath(): string {
    return this.qmpPaths[0] as string;
  }

  /** A fresh QMP connection to monitor `n` (each serves one client at a time: close it before opening another). */
  connect(n = 0): Promise<QmpClient> {
    return QmpClient.connect(this.qmpPaths[n] as string);
  }

  /** Kill the process group and remove the directory. */
  async stop(): Promise<void> {
    const pid = this.proc.pid;
    if (pid && running.has(this.proc)) {
      try { process.kill(-pid, 'SIGTERM'); } catch { /* gone */ }
      const t = setTimeout(() => { try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ } }, 3000);
      await this.exited;
      clearTimeout(t);
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}
