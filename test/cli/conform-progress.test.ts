/**
 * `memhp conform`'s progress output without a guest: the key=value lines of a finished case (not on a
 * terminal) for each way a guest comes up, the timing line of the report, and the live line a terminal
 * gets (test/cli/sim.test.ts checks the same lines on a real 6.12 guest).
 */
import assert from 'node:assert/strict';
import { caseEndLine, caseStartLine, lineProgress, liveProgress, timingText, type ConformRun } from '../../lib/cli/conform.js';
import type { BootInfo } from '../../lib/guest/guest.js';
import type { DiffReport } from '../../lib/scenario/diff.js';
import type { GuestBootSummary, Observation } from '../../lib/scenario/observation.js';

const obs = (target: 'guest' | 'sim', ms: number, guestBoot?: GuestBootSummary): Observation => ({
  scenario: 'plug-online-movable',
  target,
  kernel: { profile: '7.2', release: '7.2.13+deb14-amd64' },
  steps: [],
  ms,
  ...(guestBoot ? { bootMs: guestBoot.ms, guestBoot } : {}),
});

const run = (guestBoot: GuestBootSummary, ok = true, prepareMs?: number): ConformRun => ({
  scenario: 'plug-online-movable',
  kernel: '7.2',
  report: { ok } as DiffReport,
  seconds: 2.0344,
  ...(prepareMs !== undefined ? { prepareMs } : {}),
  guest: obs('guest', 1290.4, guestBoot),
  sim: obs('sim', 14.2),
});

describe('memhp conform progress', () => {
  it('a case starts: one line; so does a kernel download', () => {
    assert.equal(caseStartLine(2, 5, 'plug-online-movable', '6.12'), '[2/5] start scenario=plug-online-movable kernel=6.12');
    let err = '';
    const p = lineProgress({ stdout: () => undefined, stderr: (t) => void (err += t) });
    p.start(2, 5, 'plug-online-movable', '6.12');
    for (const percent of [0, 50, 100]) p.progress({ phase: 'download', what: 'linux trixie (linux-image-6.12.118+deb13-amd64)', bytes: 108_523_212, percent });
    p.progress({ phase: 'booting' });
    assert.equal(err, '[2/5] start scenario=plug-online-movable kernel=6.12\n[2/5] download what="linux trixie (linux-image-6.12.118+deb13-amd64)" bytes=108523212\n');
  });

  it('a case ends: result, how the guest came up, the times, key=value', () => {
    assert.equal(
      caseEndLine(2, 5, run({ path: 'restored', ms: 611.8, accel: 'tcg' }, true, 95.2)),
      '[2/5] end scenario=plug-online-movable kernel=7.2 result=agree prepare_ms=95 guest=restored boot_ms=612 steps_ms=1290 sim_ms=14 total_ms=2034 accel=tcg',
    );
    assert.equal(
      caseEndLine(1, 1, run({ path: 'booted-and-saved', ms: 4210, saveMs: 402.5, accel: 'tcg' }, false)),
      '[1/1] end scenario=plug-online-movable kernel=7.2 result=differ guest=booted-and-saved boot_ms=4210 save_ms=403 steps_ms=1290 sim_ms=14 total_ms=2034 accel=tcg',
    );
    assert.equal(
      caseEndLine(1, 1, run({ path: 'booted', ms: 5000, accel: 'tcg', snapshotReason: 'snapshots unavailable: restored 6.12 guests crash "now and then"' })),
      '[1/1] end scenario=plug-online-movable kernel=7.2 result=agree guest=booted boot_ms=5000 steps_ms=1290 sim_ms=14 total_ms=2034 accel=tcg snapshot_reason="snapshots unavailable: restored 6.12 guests crash \\"now and then\\""',
    );
    // A run that could not complete: no guest observation, the error's first line.
    assert.equal(
      caseEndLine(3, 3, { scenario: 'x', kernel: '6.1', error: 'x: cannot boot kernel 6.1: QEMU exited\nconsole…', seconds: 1.5, sim: obs('sim', 3) }),
      '[3/3] end scenario=x kernel=6.1 result=error sim_ms=3 total_ms=1500 error="x: cannot boot kernel 6.1: QEMU exited"',
    );
  });

  it("the report's timing line says how the guest came up", () => {
    assert.equal(timingText(run({ path: 'restored', ms: 611.8, accel: 'tcg' }, true, 95.2)), 'sim 14 ms, guest prepared in 0.1 s, restored in 0.6 s + steps 1.3 s, total 2.0 s');
    assert.equal(timingText(run({ path: 'booted-and-saved', ms: 4210, saveMs: 402.5, accel: 'tcg' })), 'sim 14 ms, guest booted in 4.2 s and saved in 0.4 s + steps 1.3 s, total 2.0 s');
    assert.equal(timingText(run({ path: 'booted', ms: 4210, accel: 'kvm' })), 'sim 14 ms, guest booted in 4.2 s + steps 1.3 s, total 2.0 s');
  });

  it('on a terminal: one live line, redrawn in place, cleared around report output, with every phase and a kernel download', () => {
    let err = '';
    let out = '';
    const stream = { columns: 120, write: (t: string) => void (err += t) } as unknown as NodeJS.WriteStream;
    const p = liveProgress(stream, (t) => void (out += t));
    const last = (): string => err.slice(err.lastIndexOf('\r\x1b[K') + 4);
    p.start(1, 3, 'plug-online-movable', '7.2');
    assert.match(last(), /^\[1\/3\] plug-online-movable on 7\.2 · starting, 0\.0 s \| 0 agree, 0 differ \| 0\.0 s in all$/);
    p.progress({ phase: 'sim' });
    assert.match(last(), /· simulator, /);
    p.progress({ phase: 'kernel' });
    assert.match(last(), /· checking the kernel, /);
    p.progress({ phase: 'download', what: 'linux sid (linux-image-7.2.13+deb14-amd64)', bytes: 119e6, percent: 45.2 });
    assert.match(last(), /· downloading linux sid \(linux-image-7\.2\.13\+deb14-amd64\): 45 % of 119\.0 MB, /);
    p.progress({ phase: 'setup' });
    assert.match(last(), /· building the initramfs, /);
    p.progress({ phase: 'restoring' });
    assert.match(last(), /· restoring the guest, /);
    p.progress({ phase: 'up', boot: { path: 'restored', bootMs: 612 } as BootInfo });
    p.progress({ phase: 'steps', done: 3, steps: 7 });
    assert.match(last(), /^\[1\/3\] plug-online-movable on 7\.2 · restored in 0\.6 s; steps 3\/7, \d+\.\d s \| 0 agree/);
    (stream as { columns: number }).columns = 50;
    p.progress({ phase: 'steps', done: 4, steps: 7 });
    assert.equal(last(), '[1/3] plug-online-movable on 7.2 · restored in 0…'); // cut to the terminal's width
    (stream as { columns: number }).columns = 120;
    p.end(1, 3, run({ path: 'restored', ms: 612, accel: 'tcg' }), { agree: 1, differ: 0, errors: 0 });
    err = '';
    p.stdout('report\n');
    assert.equal(out, 'report\n');
    assert.match(err, /^\r\x1b\[K\r\x1b\[K\[1\/3\] .* \| 1 agree, 0 differ \| /); // cleared, then drawn again below the report
    p.end(2, 3, { scenario: 'x', kernel: '6.1', error: 'gone' }, { agree: 1, differ: 0, errors: 1 });
    p.start(3, 3, 'y', '6.1');
    assert.match(last(), /\| 1 agree, 0 differ, 1 could not complete \|/);
    err = '';
    p.stop();
    assert.equal(err, '\r\x1b[K');
  });
});
