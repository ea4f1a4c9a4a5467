/**
 * `npm run bench [-- --json] [-- --only NAME]`: runs every `bench/*.bench.ts` module in this one
 * process and prints its figures, as a table or as `{"figures": {"<name>": {"value", "unit"}}}`.
 * Each module exports `figures(): Promise<Record<string, Figure>>`; ratios are measured against a
 * baseline in the same run, never against a fixed time.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Command } from 'commander';
import type { Figure } from './figure.js';

const program = new Command()
  .name('memhp-bench')
  .option('--json', 'print {"figures": {...}} as JSON')
  .option('--only <substring>', 'run only modules whose file name contains this')
  .parse(process.argv);
const opts = program.opts<{ json?: boolean; only?: string }>();

const here = dirname(fileURLToPath(import.meta.url));
const modules = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts') && (!opts.only || f.includes(opts.only)))
  .sort();

const figures: Record<string, Figure> = {};
for (const file of modules) {
  const mod = (await import(pathToFileURL(join(here, file)).href)) as {
    figures: () => Promise<Record<string, Figure>>;
  };
  Object.assign(figures, await mod.figures());
}

if (opts.json) {
  // The JSON shape other tools read: {"figures": {name: {value, unit}}}; goals are for the table only.
  const out = Object.fromEntries(Object.entries(figures).map(([k, f]) => [k, { value: f.value, unit: f.unit }]));
  process.stdout.write(JSON.stringify({ figures: out }, null, 2) + '\n');
} else {
  const rows = Object.entries(figures).map(([name, f]) => [
    name,
    formatValue(f.value),
    f.unit,
    f.goal ?? '',
  ]);
  const header = ['figure', 'value', 'unit', 'goal'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 1 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

function formatValue(v: number): string {
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(4);
}
