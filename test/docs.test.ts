/**
 * The documents in the repository stay true to it: no tracked file sends the reader to notes outside
 * the repository, every `docs/<doc>.md#<anchor>` cited anywhere (and every link between the docs) names
 * a heading that exists, docs/scenarios.md documents every machine field and every step operation and
 * field of the scenario schema, and docs/cli.md every MEMHP_* variable the code reads.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineSchema, STEP_OPS, STEP_SCHEMAS } from '../lib/scenario/schema.js';
import { z } from 'zod';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

/** Tracked text files, by path relative to the root: git's list, or outside a checkout (an unpacked tarball) every file but built and installed ones. */
function trackedFiles(): string[] {
  const listed = existsSync(path.join(ROOT, '.git'))
    ? execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0')
    : readdirSync(ROOT, { recursive: true, encoding: 'utf8' }).filter((f) => !/^(node_modules|build|dist|\.git)(\/|$)/.test(f) && statSync(path.join(ROOT, f)).isFile());
  return listed.filter((f) => f && existsSync(path.join(ROOT, f)) && !/\.(node|png|jpg|gz|zst|xz)$/.test(f));
}

const read = (f: string): string => readFileSync(path.join(ROOT, f), 'utf8');

/** GitHub's anchor of a Markdown heading: lower case, punctuation but `-` and `_` dropped, spaces → `-`. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

/** The anchors of a Markdown file's headings. */
function anchors(doc: string): Set<string> {
  const text = read(doc).replace(/```[\s\S]*?```/g, '');
  return new Set([...text.matchAll(/^#{1,6} +(.+)$/gm)].map((m) => slug(m[1]!)));
}

// Spelled in pieces, so this file does not match itself.
const OUTSIDE = [['..', 'shared'].join('/'), ['kernel', 'spec'].join('-'), ['DESIGN', 'md'].join('.')];

describe('docs', () => {
  it('no tracked file refers to notes outside the repository', () => {
    const hits: string[] = [];
    for (const f of trackedFiles()) {
      read(f)
        .split('\n')
        .forEach((line, i) => {
          if (OUTSIDE.some((p) => line.includes(p))) hits.push(`${f}:${i + 1}: ${line.trim()}`);
        });
    }
    assert.deepEqual(hits, []);
  });

  it('every docs/<doc>.md#<anchor> cited in the repository, and every link between the docs, exists', () => {
    const cache = new Map<string, Set<string>>();
    const anchorsOf = (doc: string): Set<string> | undefined => {
      if (!existsSync(path.join(ROOT, doc))) return undefined;
      if (!cache.has(doc)) cache.set(doc, anchors(doc));
      return cache.get(doc);
    };
    const bad: string[] = [];
    let cited = 0;
    for (const f of trackedFiles()) {
      const text = read(f);
      const refs: [string, string][] = [...text.matchAll(/\bdocs\/([\w.-]+\.md)#([\w-]+)/g)].map((m) => [`docs/${m[1]}`, m[2]!]);
      if (f.startsWith('docs/') && f.endsWith('.md')) {
        // Links inside the docs: `](other.md#anchor)` and `](#anchor)`.
        for (const m of text.matchAll(/\]\(([\w.-]+\.md)?#([\w-]+)\)/g)) refs.push([m[1] ? `docs/${m[1]}` : f, m[2]!]);
      }
      for (const [doc, anchor] of refs) {
        cited++;
        const known = anchorsOf(doc);
        if (!known) bad.push(`${f}: ${doc} does not exist`);
        else if (!known.has(anchor)) bad.push(`${f}: ${doc}#${anchor} is not a heading of ${doc}`);
      }
    }
    assert.ok(cited > 50, `only ${cited} citations found`);
    assert.deepEqual(bad, []);
  });

  it('docs/scenarios.md documents every machine field, step operation and step field', () => {
    const doc = read('docs/scenarios.md');
    const section = (heading: string): string => {
      const start = doc.indexOf(`\n### ${heading}\n`);
      assert.ok(start >= 0, `docs/scenarios.md has no '### ${heading}'`);
      const end = doc.indexOf('\n## ', start + 1);
      const next = doc.indexOf('\n### ', start + 1);
      return doc.slice(start, Math.min(...[end, next].filter((i) => i > 0), doc.length));
    };
    const fieldsOf = (s: z.ZodType): string[] => {
      const json = z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as { properties?: object; anyOf?: { properties?: object }[] };
      const obj = json.properties ? json : json.anyOf?.find((a) => a.properties);
      return Object.keys(obj?.properties ?? {});
    };
    const missing: string[] = [];
    const machine = doc.slice(doc.indexOf('\n## Machine\n'), doc.indexOf('\n### Kernel command line\n'));
    for (const f of fieldsOf(machineSchema)) if (!machine.includes(`| \`${f}\` |`)) missing.push(`machine.${f}`);
    for (const op of STEP_OPS) {
      const text = section(op);
      for (const f of fieldsOf(STEP_SCHEMAS[op])) if (!text.includes(`| \`${f}\` |`)) missing.push(`${op}.${f}`);
    }
    assert.deepEqual(missing, []);
  });

  it('docs/cli.md lists every MEMHP_* environment variable the code reads', () => {
    const used = new Set<string>();
    for (const f of trackedFiles().filter((f) => /^(lib|scripts|test|bench|bin|\.ci)\//.test(f) || f === 'package.json')) {
      for (const m of read(f).matchAll(/process\.env\.(MEMHP_\w+)|\$\{?(MEMHP_\w+)|^(MEMHP_\w+)=|\b(MEMHP_\w+)=/gm)) used.add((m[1] ?? m[2] ?? m[3] ?? m[4])!);
    }
    assert.ok(used.size >= 8, [...used].join(' '));
    const cli = read('docs/cli.md');
    assert.deepEqual([...used].filter((v) => !cli.includes(`\`${v}\``)).sort(), []);
  });
});
