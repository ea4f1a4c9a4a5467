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
