/**
 * Differential throughput, guest + simulator, with a warm snapshot cache (each case runs once to save
 * its machine, then is timed on a restored guest), on the 'latest' kernel with a private snapshot
 * directory:
 *
 * - `fuzz_scenarios_per_min`: three fixed generated scenarios (lib/fuzz/generate.ts, seeds 1–3) through
 *   the fuzzer's `compare` (simulator, guest, diff, signature); `fuzz_sim_scenarios_per_min`: the
 *   simulator alone on the same scenarios;
 * - `conform_cases_per_min`: three suite scenarios through `conformScenario` (what `memhp conform`
 *   runs per case); `conform_sim_cases_per_min`: the simulator alone on them;
 * - `sim_vs_guest_speedup`: all six cases, guest + simulator time over simulator time.
 *
 * Needs QEMU and the kernel; when the first guest cannot boot it reports nothing rather than fail the
 * other figures. About a minute and a half under TCG.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { conformScenario } from '../lib/cli/conform.js';
import { compare, defaultTargets } from '../lib/fuzz/compare.js';
import { generateScenario } from '../lib/fuzz/generate.js';
import { mixSeed } from '../lib/fuzz/rng.js';
import { GuestError } from '../lib/guest/errors.js';
import { ScenarioRunError } from '../lib/scenario/errors.js';
import { loadScenario, type Scenario } from '../lib/scenario/schema.js';
import { runOnSimulator } from '../lib/scenario/sim.js';
import type { Figure } from './figure.js';

const KERNEL = 'latest' as const;
const SUITE = ['plug-online-movable', 'inject-going-online', 'invalid-writes'];
const SCENARIOS = fileURLToPath(new URL('../test/scenarios/', import.meta.url));
/** Simulator repetitions per case (milliseconds each, so many are needed for a stable rate). */
const SIM_REPS = 20;

const perMin = (cases: number, ms: number): number => Number(((cases * 60_000) / ms).toFixed(1));

/** Milliseconds of `fn`. */
async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Mean milliseconds of one simulator run of each case, over {@link SIM_REPS} rounds. */
async function simMs(cases: readonly Scenario[]): Promise<number> {
  let total = 0;
  for (let i = 0; i < SIM_REPS; i++) for (const s of cases) total += await time(() => runOnSimulator(s, { kernel: KERNEL }));
  return total / SIM_REPS;
}

/** The fuzz and conform throughput figures. */
export async function figures(): Promise<Record<string, Figure>> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'memhp-bench-fuzz-'));
  const fuzzCases = [1, 2, 3].map((i) => generateScenario({ kernel: KERNEL, seed: mixSeed(i, 0, KERNEL), name: `bench-fuzz-${i}` }));
  const suiteCases = await Promise.all(SUITE.map((n) => loadScenario(path.join(SCENARIOS, `${n}.yaml`))));
  const targets = defaultTargets({ snapshot: true, snapshotDir: dir });
  const boot = { snapshot: 'reuse' as const, snapshotDir: dir };
  let warmed = 0;
  try {
    // Warm: each machine booted once and saved (a failed boot here means no guests on this host).
    for (const s of fuzzCases) {
      await targets.guest(s, KERNEL, true);
      warmed++;
    }
    for (const s of suiteCases) {
      const c = await conformScenario(s, KERNEL, { boot });
      if (c.error) throw new Error(`fuzz bench: ${s.name}: ${c.error}`);
    }
    let fuzzMs = 0;
    for (const s of fuzzCases) {
      const c = await compare(s, KERNEL, targets, { repeat: true });
      if (c.guestFailure || c.simFailure) throw new Error(`fuzz bench: ${s.name}: ${(c.guestFailure ?? c.simFailure)!.message}`);
      fuzzMs += c.simMs + c.guestMs;
    }
    let conformMs = 0;
    for (const s of suiteCases) {
      conformMs += await time(async () => {
        const c = await conformScenario(s, KERNEL, { boot });
        if (c.error) throw new Error(`fuzz bench: ${s.name}: ${c.error}`);
      });
    }
    const fuzzSim = await simMs(fuzzCases);
    const conformSim = await simMs(suiteCases);
    return {
      fuzz_scenarios_per_min: { value: perMin(fuzzCases.length, fuzzMs), unit: 'scenarios/min' },
      fuzz_sim_scenarios_per_min: { value: perMin(fuzzCases.length, fuzzSim), unit: 'scenarios/min' },
      conform_cases_per_min: { value: perMin(suiteCases.length, conformMs), unit: 'cases/min' },
      conform_sim_cases_per_min: { value: perMin(suiteCases.length, conformSim), unit: 'cases/min' },
      sim_vs_guest_speedup: { value: Number(((fuzzMs + conformMs) / (fuzzSim + conformSim)).toFixed(0)), unit: 'ratio' },
    };
  } catch (e) {
    // No QEMU, no kernel, no network for the first download: the other figures still stand.
    const cause = e instanceof ScenarioRunError ? e.cause : e;
    if (!(cause instanceof GuestError) || warmed > 0) throw e;
    process.stderr.write(`fuzz bench: cannot run guests here (${cause.message.split('\n')[0]}), no figures\n`);
    return {};
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
