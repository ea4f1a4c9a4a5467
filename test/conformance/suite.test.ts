/**
 * The conformance suite (issue 7): every scenario under test/scenarios/ on every profile's kernel that
 * it names (lib/kernel/profile.ts `KERNEL_VERSIONS`, the newest as `latest`), on a real Debian guest
 * under QEMU and on the simulator, compared step by step; the
 * exceptions file holds the documented divergences. JUnit XML goes to $MEMHP_JUNIT (default: the
 * temporary directory). Per-case times are printed. Guests run one after another (TCG takes a core).
 * Guests come from the snapshot cache when it has their machine (`memhp conform`'s default; the first
 * boot of a machine saves it): how each came up and the boot, restore and save times are printed too.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runConform } from '../../lib/cli/conform.js';
import { bootHistory, type BootInfo } from '../../lib/guest/guest.js';
import { KERNEL_VERSIONS, LATEST } from '../../lib/kernel/profile.js';

const DIR = 'test/scenarios';
/** Every profile (lib/kernel/profile.ts), the newest as 'latest'. */
const KERNELS = KERNEL_VERSIONS.map((v) => (v === LATEST ? 'latest' : v));

describe(`conformance suite: every scenario, guest vs simulator, on ${KERNELS.join(', ')}`, function () {
  this.timeout(0); // no wall-clock limit: waits on guests are bounded by their progress (lib/guest/progress.ts)

  it('finds no difference outside the exceptions file, and writes JUnit', async () => {
    const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort().map((f) => path.join(DIR, f));
    assert.ok(files.length >= 20, `at least 20 scenarios, found ${files.length}`);
    const junit = process.env.MEMHP_JUNIT ?? path.join(os.tmpdir(), `memhp-conformance-${process.pid}.xml`);
    let out = '';
    let err = '';
    const code = await runConform(
      [...files, '--kernel', KERNELS.join(','), '--exceptions', path.join(DIR, 'exceptions'), '--junit', junit],
      { stdout: (t) => void (out += t), stderr: (t) => void (err += t) },
    );
    const summary = out.split('\n').filter((l) => / on [\d.a-z]+: |^ {2}sim |runs:/.test(l));
    console.log(summary.map((l) => `      ${l}`).join('\n'));
    console.log(bootReport(bootHistory()));
    // On failure the whole report: the diff text of the differing cases says what differed and where.
    assert.equal(code, 0, `memhp conform exited ${code}\n${out}\n${err}`);
    const xml = await readFile(junit, 'utf8');
    // One testsuite per profile, named by the profile ('latest' runs as the newest one).
    for (const v of KERNEL_VERSIONS) assert.ok(xml.includes(`<testsuite name="memhp conformance ${v}" `), `a testsuite for ${v}`);
    assert.doesNotMatch(xml, /<failure|<error/);
  });
});

/** How the guests came up: per path, how many and their boot (restore) times; the saves' cost and size. */
function bootReport(boots: readonly BootInfo[]): string {
  const ms = (xs: number[]): string => {
    if (!xs.length) return '-';
    const s = [...xs].sort((a, b) => a - b);
    return `median ${s[Math.floor(s.length / 2)]!.toFixed(0)} ms (${s[0]!.toFixed(0)}–${s.at(-1)!.toFixed(0)}), total ${(xs.reduce((t, x) => t + x, 0) / 1000).toFixed(1)} s`;
  };
  const lines = (['booted', 'booted-and-saved', 'restored'] as const).map((p) => {
    const of = boots.filter((b) => b.path === p);
    return `${p}: ${of.length}, ${ms(of.map((b) => b.bootMs))}`;
  });
  const saved = boots.filter((b) => b.saveMs !== undefined);
  if (saved.length) lines.push(`saves: ${ms(saved.map((b) => b.saveMs!))}, images ${(saved.reduce((t, b) => t + (b.snapshotBytes ?? 0), 0) / 2 ** 20).toFixed(0)} MiB`);
  const reasons = new Map<string, number>();
  for (const b of boots) if (b.snapshotReason) reasons.set(`${b.path}: ${b.snapshotReason}`, (reasons.get(`${b.path}: ${b.snapshotReason}`) ?? 0) + 1);
  for (const [r, n] of reasons) lines.push(`${n}× ${r}`);
  for (const b of boots.filter((x) => x.attempts > 1)) lines.push(`${b.ready.release} ${b.path} after ${b.attempts} attempts: ${b.accelReason}`);
  return lines.map((l) => `      guests ${l}`).join('\n');
}
