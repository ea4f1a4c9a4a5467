/**
 * `memhp sim` and `memhp conform` as a user runs them: output, `--json`, JUnit, exit codes. `sim` needs
 * no QEMU; `conform` boots ONE real guest (6.12) for one small scenario whose two wrong expectations
 * make a known difference, one of them covered by an exceptions file.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runConform } from '../../lib/cli/conform.js';
import { Readable } from 'node:stream';
import type { CliIo } from '../../lib/cli/io.js';
import { runSim, SCENARIO_EXIT } from '../../lib/cli/sim.js';
import { liveGuests } from '../../lib/guest/guest.js';
import type { Observation } from '../../lib/scenario/observation.js';
import { KERNEL_NAMES } from '../../lib/scenario/schema.js';

const SCENARIOS = fileURLToPath(new URL('../scenarios/', import.meta.url));

function capture(stdin?: NodeJS.ReadableStream): CliIo & { out: string; err: string } {
  const io = { out: '', err: '', stdout: (t: string) => void (io.out += t), stderr: (t: string) => void (io.err += t), ...(stdin ? { stdin } : {}) };
  return io;
}

let dir: string;
const file = async (name: string, text: string): Promise<string> => {
  const p = path.join(dir, name);
  await writeFile(p, text);
  return p;
};

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'memhp-cli-sim-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('memhp sim', () => {
  it('prints each step with its result, then lsmem with nodes and zones; exit 0', async () => {
    const io = capture();
    const code = await runSim([`${SCENARIOS}plug-online-movable.yaml`, '--kernel', '6.12'], io);
    assert.equal(code, SCENARIO_EXIT.OK, io.err);
    assert.equal(io.err, '');
    const lines = io.out.split('\n');
    assert.match(lines[0]!, /^plug-online-movable on sim 6\.12\.\d+: steps \d+ ms$/);
    assert.match(io.out, /^step 1: plug d1 256M node=1 \(expect ok\) → ok {2}\d+ ms$/m);
    assert.match(io.out, /^step 4: read \/sys\/devices\/system\/memory\/memory33\/valid_zones \(expect "Normal Movable"\) → "Normal Movable" {2}\d+ ms$/m);
    assert.match(io.out, /^every expectation met$/m);
    // lsmem after the last step (the DIMM is gone): boot memory only.
    assert.match(io.out, /^RANGE +SIZE +STATE +REMOVABLE +BLOCK +NODE +ZONES$/m);
    assert.match(io.out, /^0x0000000008000000-0x000000001fffffff +384M +online +yes +1-3 +0 +DMA32$/m);
    assert.match(io.out, /^Total online memory: +512M$/m);
  });

  it('--json prints the Observation; options after -- go to lsmem', async () => {
    const io = capture();
    assert.equal(await runSim([`${SCENARIOS}inject-going-online.yaml`, '--json'], io), SCENARIO_EXIT.OK, io.err);
    const o = JSON.parse(io.out) as Observation;
    assert.equal(o.target, 'sim');
    assert.equal(o.kernel.profile, '5.10', "the scenario's first kernel");
    assert.equal(o.steps.length, 9);
    assert.deepEqual(o.steps[3]!.result.status === 'error' && o.steps[3]!.result.errno, 'ENOMEM');
    assert.ok(o.steps[3]!.trace.some((r) => r.type === 'notify' && r.action === 'MEM_CANCEL_ONLINE'));
    const lsmemJson = capture();
    assert.equal(await runSim([`${SCENARIOS}sysfs-writes.yaml`, '--', '-J', '-o', 'RANGE,STATE'], lsmemJson), SCENARIO_EXIT.OK, lsmemJson.err);
    const table = JSON.parse(lsmemJson.out.slice(lsmemJson.out.indexOf('\n\n') + 2)) as { memory: { range: string; state: string }[] };
    assert.deepEqual(table.memory, [{ range: '0x0000000000000000-0x000000001fffffff', state: 'online' }]);
  });

  it("takes several files and '-' for standard input; --json is one line per file; the worst exit code", async () => {
    const unmet = await file('unmet-2.yaml', 'steps:\n  - write: {path: /sys/devices/system/memory/memory0/state, value: offline, expect: ok}\n');
    const io = capture(Readable.from([Buffer.from('name: from-stdin\nsteps: [snapshot]\n')]));
    assert.equal(await runSim([`${SCENARIOS}sysfs-writes.yaml`, '-', unmet, '--json'], io), SCENARIO_EXIT.DIFFERENT, io.err);
    const lines = io.out.trimEnd().split('\n');
    assert.deepEqual(lines.map((l) => (JSON.parse(l) as Observation).scenario), ['sysfs-writes', 'from-stdin', 'unmet-2']);
    const text = capture();
    assert.equal(await runSim([`${SCENARIOS}sysfs-writes.yaml`, `${SCENARIOS}plug-online-movable.yaml`], text), SCENARIO_EXIT.OK, text.err);
    assert.match(text.out, /^sysfs-writes on sim [^\n]*\n(.*\n)*\nplug-online-movable on sim /m);
    // A missing file among them: trouble (2) beats a difference (1); the others still run.
    const missing = capture();
    assert.equal(await runSim([unmet, path.join(dir, 'missing.yaml')], missing), SCENARIO_EXIT.TROUBLE);
    assert.match(missing.out, /^1 step did not meet its expectation$/m);
    assert.match(missing.err, /^memhp sim: ENOENT: .*missing\.yaml/);
    const twice = capture();
    assert.equal(await runSim(['-', '-'], twice), SCENARIO_EXIT.TROUBLE);
    assert.match(twice.err, /^memhp sim: '-' \(standard input\) can be given once/);
  });

  it("a failed step prints the kernel's message; kernel log lines are the step's dmesg, all of them with -v", async () => {
    const f = await file('small-dimm.yaml', "machine: {kernel: '6.12', nodes: 2}\nsteps:\n  - plug: {id: d1, size: 64M, node: 1}\n  - plug: {id: d2, size: 128M, node: 5, expect: ok}\n");
    const io = capture();
    assert.equal(await runSim([f], io), SCENARIO_EXIT.DIFFERENT, io.err);
    // QEMU takes a 64 MiB DIMM; the guest's add_memory refuses a range smaller than a memory block and says so only in its log.
    assert.match(io.out, /^step 0: plug d1 64M node=1 → ok {2}\d+ ms\n {2}dmesg: Block size \[0x8000000\] unaligned hotplug range: start 0x100000000, size 0x4000000\n {2}dmesg: … 2 more lines \(-v shows them\)$/m);
    assert.match(io.out, /^step 1: plug d2 128M node=5 \(expect ok\) → EINVAL {2}\d+ ms {2}UNMET expected ok, got EINVAL\n {2}EINVAL: d2: node 5 does not exist$/m);
    const verbose = capture();
    await runSim([f, '-v'], verbose);
    assert.match(verbose.out, /^ {2}dmesg: acpi PNP0C80:00: add_memory failed\n {2}dmesg: acpi PNP0C80:00: acpi_memory_enable_device\(\) error$/m);
    const json = capture();
    await runSim([f, '--json'], json);
    const o = JSON.parse(json.out) as Observation;
    assert.equal(o.steps[0]!.dmesg?.length, 3);
    assert.equal(o.steps[1]!.dmesg, undefined, 'a step that logged nothing has no dmesg');
  });

  it('takes lsmem options without --, refuses --sysroot', async () => {
    const io = capture();
    assert.equal(await runSim([`${SCENARIOS}sysfs-writes.yaml`, '-J', '-o', 'RANGE,STATE'], io), SCENARIO_EXIT.OK, io.err);
    const table = JSON.parse(io.out.slice(io.out.indexOf('\n\n') + 2)) as { memory: { range: string; state: string }[] };
    assert.deepEqual(table.memory, [{ range: '0x0000000000000000-0x000000001fffffff', state: 'online' }]);
    const sys = capture();
    assert.equal(await runSim([`${SCENARIOS}sysfs-writes.yaml`, '--', '--sysroot=/'], sys), SCENARIO_EXIT.TROUBLE);
    assert.equal(sys.out, '');
    assert.match(sys.err, /^memhp sim: --sysroot is memhp's/);
  });

  it('exit 1 when a step misses its expectation', async () => {
    const f = await file('unmet.yaml', 'steps:\n  - write: {path: /sys/devices/system/memory/memory0/state, value: offline, expect: ok}\n  - snapshot\n');
    const io = capture();
    assert.equal(await runSim([f], io), SCENARIO_EXIT.DIFFERENT);
    assert.match(io.out, /^step 0: write \/sys\/devices\/system\/memory\/memory0\/state "offline" \(expect ok\) → EINVAL {2}\d+ ms {2}UNMET expected ok, got EINVAL$/m);
    assert.match(io.out, /^1 step did not meet its expectation$/m);
  });

  it('exit 2 for an invalid scenario, an unknown kernel, a missing argument, a run cut short', async () => {
    const bad = await file('bad.yaml', 'steps:\n  - plug: {id: d1, size: lots}\n');
    let io = capture();
    assert.equal(await runSim([bad], io), SCENARIO_EXIT.TROUBLE);
    assert.match(io.err, /^memhp sim: .*bad\.yaml: steps\[0\]\.plug\.size: expected a size/);
    io = capture();
    assert.equal(await runSim([bad, '--kernel', '4.19'], io), SCENARIO_EXIT.TROUBLE);
    assert.equal(io.err, `memhp sim: --kernel 4.19: expected a kernel: ${KERNEL_NAMES.join(', ')} (quote versions in YAML: '6.10' reads as 6.1) (see: memhp sim --help)\n`);
    io = capture();
    assert.equal(await runSim([], io), SCENARIO_EXIT.TROUBLE);
    assert.match(io.err, /missing required argument 'scenario'/);
    const cut = await file('cut.yaml', 'steps:\n  - snapshot\n  - pin: w\n  - snapshot\n');
    io = capture();
    assert.equal(await runSim([cut], io), SCENARIO_EXIT.TROUBLE);
    assert.match(io.out, /^step 0: snapshot → ok/m, 'the steps before the failure are shown');
    assert.match(io.err, /^memhp sim: cut: step 1 \(pin w\) failed: no allocation named 'w'/);
  });
});

describe('memhp conform', function () {
  this.timeout(0); // no wall-clock limit: waits on guests are bounded by their progress (lib/guest/progress.ts)

  after(() => assert.equal(liveGuests(), 0, 'every guest closed'));

  it('one scenario on a real 6.12 guest: the diff, excepted differences apart, JUnit, exit 1', async () => {
    // Two wrong expectations, the same on both sides (the kernel refuses both writes EINVAL): each shows
    // up once per side. The exceptions file covers step 2's; step 1's is an unexplained difference.
    const scenario = await file(
      'conform-cli.yaml',
      `name: conform-cli
machine: {kernel: ['6.12'], memory: 512M}
steps:
  - read: {path: /sys/devices/system/memory/memory1/state, value: online}
  - write: {path: /sys/devices/system/memory/memory1/state, value: online, expect: ok}
  - write: {path: /sys/devices/system/memory/memory0/state, value: offline, expect: EBUSY}
  - alloc: {count: 8, order: 9}
  - snapshot
`,
    );
    const exceptions = await file('exceptions.yaml', "exceptions:\n  - {name: wrong-expectation, reason: deliberate, kernels: ['6.12'], scenario: conform-*, step: 2, kind: expect}\n");
    const junit = path.join(dir, 'junit.xml');
    const io = capture();
    const code = await runConform([scenario, '--kernel', '6.1,6.12', '--exceptions', exceptions, '--junit', junit], io);
    process.stderr.write(`      ${io.out.split('\n').filter((l) => /sim \d+ ms/.test(l)).join('\n      ')}\n`);
    assert.equal(code, SCENARIO_EXIT.DIFFERENT, io.out + io.err);
    // Not a terminal: on stderr a line as the case starts, and one as it ends with how the guest came up
    // (6.12 under TCG always boots: its restored guests are not trusted) and the times.
    const progress = io.err.split('\n');
    assert.equal(progress.length, 3, io.err);
    assert.equal(progress[0], '[1/1] start scenario=conform-cli kernel=6.12');
    assert.match(
      progress[1]!,
      /^\[1\/1\] end scenario=conform-cli kernel=6\.12 result=differ prepare_ms=\d+ guest=(booted|booted-and-saved|restored) boot_ms=\d+ (save_ms=\d+ )?steps_ms=\d+ sim_ms=\d+ total_ms=\d+ accel=(kvm|tcg|tcg-single)( snapshot_reason="[^"]+")?$/,
    );
    if (/accel=tcg/.test(progress[1]!)) assert.match(progress[1]!, / guest=booted .* snapshot_reason="snapshots unavailable: restored 6\.12 guests crash now and then under TCG/);
    const ms = (k: string): number => Number(new RegExp(` ${k}=(\\d+)`).exec(progress[1]!)![1]);
    assert.ok(ms('total_ms') >= ms('prepare_ms') + ms('boot_ms') + ms('steps_ms') + ms('sim_ms') - 4, progress[1]);
    assert.equal(progress[2], '');
    assert.match(io.out, /^conform-cli: skipped on 6\.1 \(the scenario is for 6\.12\)$/m);
    assert.match(io.out, /^conform-cli on 6\.12: guest vs sim: 2 differences, 2 excepted \(normalised: not-applicable-steps ×1, boot-reservations ×1\)$/m);
    assert.match(io.out, /^step 1: write \/sys\/devices\/system\/memory\/memory1\/state "online" \(expect ok\)\n {2}guest: expected ok, got EINVAL\n {2}sim: expected ok, got EINVAL$/m);
    assert.match(io.out, /^excepted:\n {2}step 2: .*\n {4}guest: expected EBUSY, got EINVAL {2}\[wrong-expectation\]$/m);
    assert.match(io.out, /^ {2}sim \d+ ms, guest prepared in \d+\.\d s, (booted|restored) in \d+\.\d s( and saved in \d+\.\d s)? \+ steps \d+\.\d s, total \d+\.\d s$/m);
    assert.match(io.out, /^1 run: 0 agree, 1 differ, 0 could not complete; \d+\.\d s$/m);
    const xml = await readFile(junit, 'utf8');
    assert.match(xml, /<testsuite name="memhp conformance 6\.12" tests="1" failures="1" errors="0" skipped="0" time="[\d.]+">/);
    assert.match(xml, /<failure message="2 differences between guest and sim" type="divergence">/);
    assert.match(xml, /<system-out>conform-cli on guest 6\.12\.[^:]+: boot \d+ ms, steps \d+ ms\n/);
  });

  it('exit 0 when nothing is left to compare; exit 2 for an invalid exceptions file or scenario', async () => {
    const only612 = await file('only-6.12.yaml', "machine: {kernel: ['6.12']}\nsteps: [snapshot]\n");
    let io = capture();
    assert.equal(await runConform([only612, '--kernel', '6.1,latest', '--json'], io), SCENARIO_EXIT.OK, io.err);
    assert.deepEqual(JSON.parse(io.out), []);
    assert.equal(io.err, ''); // --json: no progress
    io = capture();
    assert.equal(await runConform([only612, '--kernel', '6.1'], io), SCENARIO_EXIT.OK, io.err);
    assert.equal(io.out, 'only-6.12: skipped on 6.1 (the scenario is for 6.12)\n0 runs: 0 agree, 0 differ, 0 could not complete; 0.0 s\n');
    assert.equal(io.err, ''); // no case, no progress line
    const bad = await file('bad-exceptions.yaml', 'exceptions:\n  - {name: x, kernels: [6.12]}\n');
    io = capture();
    assert.equal(await runConform([`${SCENARIOS}sysfs-writes.yaml`, '--exceptions', bad], io), SCENARIO_EXIT.TROUBLE);
    assert.match(io.err, /^memhp conform: .*bad-exceptions\.yaml: exceptions\[0\]\.reason: expected the reason for the divergence$/m);
    io = capture();
    assert.equal(await runConform([path.join(dir, 'missing.yaml')], io), SCENARIO_EXIT.TROUBLE);
    assert.match(io.err, /ENOENT/);
    io = capture();
    assert.equal(await runConform([`${SCENARIOS}sysfs-writes.yaml`, '--kernel', ','], io), SCENARIO_EXIT.TROUBLE);
    assert.match(io.err, /expected a kernel list/);
  });
});
