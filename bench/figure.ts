/** One benchmark figure; names are read by other tools, so keep them stable. */
export interface Figure {
  /** The measured number. */
  value: number;
  /** Its unit, e.g. 'pages/s', 'bytes/page', 's', 'ratio'. */
  unit: string;
  /** The goal, for the readable table (e.g. '>= 20e6'). */
  goal?: string;
}

/** Run `fn` repeatedly for at least `minMs` and return seconds per call (best of the batches). */
export function timeIt(fn: () => void, minMs = 200): number {
  let best = Infinity;
  const end = performance.now() + minMs;
  do {
    const t0 = performance.now();
    fn();
    const dt = (performance.now() - t0) / 1000;
    if (dt < best) best = dt;
  } while (performance.now() < end);
  return best;
}

/** Seconds of CPU time this process has used (user + system). */
export function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/**
 * Run `fn` (which returns how many units of work it did) repeatedly for at least `minMs` of wall time
 * and at least three times; returns the best units per second of **CPU time**. Wall-clock time on a
 * shared host counts the time other processes held the core (this project's hosts run QEMU guests
 * beside the benchmarks) and swings several-fold; the CPU time of this single-threaded process does
 * not. Each call of `fn` should take well over a millisecond: `process.cpuUsage` counts microseconds.
 */
export function cpuRate(fn: () => number, minMs = 1000): number {
  let best = 0;
  const end = performance.now() + minMs;
  for (let i = 0; i < 3 || performance.now() < end; i++) {
    const c0 = cpuSeconds();
    const units = fn();
    const dt = cpuSeconds() - c0;
    if (dt > 0 && units / dt > best) best = units / dt;
  }
  return best;
}
