/**
 * The guest-progress clock (lib/guest/progress.ts): a bound on a wait is QEMU's CPU time, so a process
 * starved of CPU by a loaded host does not time out, and one that works does. Real processes: a busy
 * loop and a sleeper stand in for a booting and an idle QEMU.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpuSeconds, cpuTimer } from '../../lib/guest/progress.js';

const busy = (): ChildProcess => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
const sleeper = (): ChildProcess => spawn('sleep', ['60'], { stdio: 'ignore' });
const expiry = (pid: number, seconds: number, opts = {}): Promise<number> =>
  new Promise((resolve) => {
    const t0 = performance.now();
    cpuTimer(pid, { pollMs: 20, ...opts })(seconds, () => resolve(performance.now() - t0));
  });

describe('guest progress clock', function () {
  this.timeout(60_000);
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
  });

  it('reads a process’s CPU seconds from /proc, and nothing for a process that is gone', () => {
    const t = cpuSeconds(process.pid);
    assert.ok(t !== undefined && t > 0, `${t}`);
    assert.equal(cpuSeconds(2 ** 22 + 1), undefined);
  });

  it('expires once the process has used its budget of CPU', async () => {
    const c = busy();
    children.push(c);
    const ms = await expiry(c.pid!, 0.3);
    assert.ok(cpuSeconds(c.pid!)! >= 0.3, 'the busy process used the budget');
    assert.ok(ms >= 250, `not before the CPU was used (${ms} ms)`);
  });

  it('does not expire while the process gets no CPU, until the last-resort wall bound', async () => {
    const c = sleeper();
    children.push(c);
    let fired = false;
    const cancel = cpuTimer(c.pid!, { pollMs: 20 })(0.2, () => void (fired = true));
    await new Promise((r) => setTimeout(r, 1500)); // seven times the budget in wall time
    assert.equal(fired, false, 'an idle (or starved) process keeps its budget');
    cancel();
    const ms = await expiry(c.pid!, 0.1, { wallFactor: 5 });
    assert.ok(ms >= 450 && ms < 5000, `the wall bound is the budget times wallFactor (${ms} ms)`);
  });

  it('expires when the process is gone', async () => {
    const c = sleeper();
    const p = expiry(c.pid!, 100);
    c.kill('SIGKILL');
    assert.ok((await p) < 5000);
  });
});
