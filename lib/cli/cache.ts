/**
 * `memhp cache`: what the guest harness keeps on disk, and removing it (docs/cache.md).
 *
 *   memhp cache [list] [--json]
 *   memhp cache clean (--snapshots | --kernels | --all) [--dry-run] [--json]
 *
 * `list` shows the kernel cache (`$MEMHP_CACHE`: each unpacked kernel with its Debian packages, other
 * packages, the private apt state per suite, the builds of the guest helper, the manifest) and the
 * snapshot cache (`$MEMHP_SNAPSHOT_DIR`: each saved guest with its kernel, machine, size and times),
 * with sizes and totals. `clean` removes snapshots, kernels (unpacked trees, packages, manifest) or all
 * of it (also the apt state and the helper builds), and says what it freed.
 *
 * Both use a directory only when memhp trusts it, as a guest boot does (lib/guest/trust.ts
 * `trustedDir`): one another user could write is refused with the fix. `clean` removes only what
 * memhp makes there, by name (a snapshot key, a kernel release, a `linux-*.deb`, a helper key, an apt
 * suite), never follows a symbolic link (a link is removed, not what it points to), and leaves the
 * temporary directories of memhp processes that still run. Missing directories are empty, and are
 * not made.
 *
 * Exit codes: 0 done; 1 nothing could be removed; 2 a usage error or an untrusted directory; 64 some
 * entries removed and some not.
 */
import path from 'node:path';
import { Command } from 'commander';
import { cleanCache, inspectCache, type CacheReport, type CleanReport, type CleanWhat, type Removed } from '../guest/cache-store.js';
import { EXIT, failureText, processIo, runSubcommand, type CliIo, type CommandOptions } from './io.js';

export type { CacheReport, CleanReport, CleanWhat, Removed } from '../guest/cache-store.js';

/** `31.4 MiB`: bytes in binary units, one decimal. */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** A table: columns padded to their widest cell, the last column not padded. */
function table(rows: string[][], indent = '  '): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => indent + r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ').trimEnd());
}

const when = (iso: string | undefined): string => (iso ? iso.replace('T', ' ').slice(0, 16) : '-');
const count = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** `memhp cache list` as text. */
export function listText(r: CacheReport): string {
  const out: string[] = [];
  const c = r.cache;
  out.push(`kernel cache ${c.dir} (MEMHP_CACHE): ${c.exists ? humanBytes(c.bytes) : 'none yet'}`);
  if (c.kernels.length) {
    const rows = [['KERNEL', 'SUITE', 'VERSION', 'UNPACKED', 'PACKAGES', 'TOTAL']];
    for (const k of c.kernels)
      rows.push([k.release, `${k.suite ?? '?'}${k.current ? '' : ' (old)'}`, k.version ?? '?', humanBytes(k.unpackedBytes), humanBytes(k.packages.reduce((t, p) => t + p.bytes, 0)), humanBytes(k.bytes)]);
    out.push(...table(rows));
  } else if (c.exists) out.push('  no kernels');
  const line = (what: string, entries: { bytes: number }[], detail = ''): void => {
    if (entries.length) out.push(`  ${what}: ${humanBytes(entries.reduce((t, e) => t + e.bytes, 0))}${detail ? ` (${detail})` : ''}`);
  };
  line('other packages', c.packages, c.packages.map((p) => p.file).join(', '));
  line('apt state', c.apt, c.apt.map((a) => `${a.suite} ${humanBytes(a.bytes)}`).join(', '));
  line('helper builds', c.helpers, `${c.helpers.length}, the newest built ${when(c.helpers.map((h) => h.built).sort().at(-1))}`);
  if (c.manifest) line('manifest.json', [c.manifest]);
  line('unfinished', c.partial, c.partial.map((e) => e.name).join(', '));
  line('not memhp\'s, never removed', c.other, c.other.map((e) => e.name).join(', '));

  const s = r.snapshots;
  out.push(
    `snapshot cache ${s.dir} (MEMHP_SNAPSHOT_DIR): ${s.exists ? `${count(s.entries.length, 'snapshot')}, ${humanBytes(s.bytes)}` : 'none yet'}${s.maxBytes !== undefined ? `, capped at ${humanBytes(s.maxBytes)}` : ''}`,
  );
  if (s.entries.length) {
    const rows = [['KEY', 'KERNEL', 'ACCEL', 'SIZE', 'SAVED', 'LAST USED', 'MACHINE']];
    for (const e of s.entries) rows.push([e.key.slice(0, 12), e.release ?? '?', e.accel ?? '?', humanBytes(e.bytes), when(e.created), when(e.lastUsed), `${e.machine ?? '?'}${e.cmdline ? `, ${e.cmdline}` : ''}`]);
    out.push(...table(rows));
  }
  line('unfinished saves', s.partial, s.partial.map((e) => e.name).join(', '));
  line("not memhp's, never removed", s.other, s.other.map((e) => e.name).join(', '));
  out.push(`total ${humanBytes(r.bytes)}`);
  return `${out.join('\n')}\n`;
}

const KIND_PLURAL: Record<Removed['kind'], [string, string]> = {
  snapshot: ['snapshot', 'snapshots'],
  'unfinished save': ['unfinished save', 'unfinished saves'],
  kernel: ['unpacked kernel', 'unpacked kernels'],
  'unfinished kernel': ['unfinished kernel', 'unfinished kernels'],
  package: ['package', 'packages'],
  manifest: ['manifest', 'manifests'],
  'apt state': ['apt state', 'apt states'],
  'helper build': ['helper build', 'helper builds'],
};

/** `memhp cache clean` as text: per kind, how many and their size; the failures; what was freed. */
export function cleanText(r: CleanReport): string {
  const verb = r.dryRun ? 'would remove' : 'removed';
  const out: string[] = [];
  const kinds = [...new Set(r.removed.map((x) => x.kind))];
  for (const k of kinds) {
    const of = r.removed.filter((x) => x.kind === k);
    const dirs = [...new Set(of.map((x) => path.dirname(x.path)))];
    out.push(`${verb} ${of.length} ${KIND_PLURAL[k][of.length === 1 ? 0 : 1]} (${humanBytes(of.reduce((t, x) => t + x.bytes, 0))}) from ${dirs.join(', ')}`);
  }
  if (!r.removed.length && !r.failed.length) out.push('nothing to remove');
  for (const f of r.failed) out.push(`could not remove ${f.path}: ${f.error}`);
  out.push(`${r.dryRun ? 'would free' : 'freed'} ${humanBytes(r.bytes)}`);
  return `${out.join('\n')}\n`;
}

/** Build the `cache` sub-command. */
export function cacheCommand(opts: CommandOptions = {}): Command {
  const io = opts.io ?? processIo;
  const onExit = opts.onExit ?? ((code: number) => void (process.exitCode = code));
  const cache = new Command('cache').description('the cached kernels and guest snapshots: list them (cache list, the default) or remove them (cache clean)');
  cache
    .command('list', { isDefault: true })
    .description('list the cached kernels, packages, apt state, helper builds and snapshots, with sizes (the default)')
    .option('--json', 'print the listing as JSON')
    // list being the default, `memhp cache purge` lands here: say so, rather than "too many arguments for 'list'".
    .allowExcessArguments(true)
    .action(async (o: { json?: boolean }, cmd: Command) => {
      if (cmd.args.length) {
        io.stderr(failureText(cmd, new Error(`unknown command '${cmd.args[0]}': expected list or clean (see: memhp cache --help)`)));
        return onExit(EXIT.TROUBLE);
      }
      const r = await inspectCache();
      io.stdout(o.json ? `${JSON.stringify(r, null, 2)}\n` : listText(r));
      onExit(EXIT.OK);
    });
  cache
    .command('clean')
    .description('remove cached snapshots, kernels, or everything; says what it freed')
    .option('--snapshots', 'remove the saved guests')
    .option('--kernels', 'remove the unpacked kernels, their packages and the manifest')
    .option('--all', 'remove the kernels, the snapshots, the apt state and the helper builds')
    .option('-n, --dry-run', 'say what would be removed, remove nothing')
    .option('--json', 'print what was removed as JSON')
    .action(async (o: CleanWhat & { json?: boolean }, cmd: Command) => {
      if (!o.snapshots && !o.kernels && !o.all) {
        io.stderr(failureText(cmd, new Error('say what to remove: --snapshots, --kernels or --all (see: memhp cache clean --help)')));
        return onExit(EXIT.TROUBLE);
      }
      const r = await cleanCache(o);
      io.stdout(o.json ? `${JSON.stringify(r, null, 2)}\n` : cleanText(r));
      onExit(r.failed.length === 0 ? EXIT.OK : r.removed.length ? EXIT.PARTIAL : EXIT.FAILURE);
    });
  return cache;
}

/** `memhp cache …` with `argv` after `cache`; resolves to the exit code. */
export function runCache(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  return runSubcommand(cacheCommand, argv, io);
}
