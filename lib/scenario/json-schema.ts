/**
 * A JSON Schema (draft-07) of scenario files, generated from the zod schema in schema.ts, so editors
 * validate and complete YAML and JSON scenarios (`npm run schema` writes `docs/scenario.schema.json`;
 * docs/scenarios.md#json-schema says how an editor uses it).
 *
 * `z.toJSONSchema` describes what a zod schema *outputs*, and in `io: 'input'` mode it takes the inner
 * schema of each `z.preprocess` as the input. The scenario schema preprocesses a lot (YAML reads `6.12`
 * as a number, `unplug: d1` is a shorthand, a cmdline may be a list of words, booleans are kstrtobool's
 * spellings), so each preprocessed node is widened here to what the preprocess really takes. Nothing
 * is assumed: every widening is found by asking the zod schema itself (`safeParse` of probe values),
 * and test/scenario/json-schema.test.ts checks that the schema and zod agree on a corpus of documents.
 */
import { z } from 'zod';
import { ERRNO } from '../errors.js';
import { machineSchema, STEP_OPS, STEP_SCHEMAS } from './schema.js';

/** A JSON Schema object, as plain JSON. */
export type JsonSchema = { [key: string]: unknown };

/** Largest errno a notifier can return (MAX_ERRNO). */
const MAX_ERRNO = 4095;
/** `E<n>` for 1..4095, as isErrnoCode accepts it. */
const ERRNO_NUMBER_PATTERN = '^E([1-9][0-9]{0,2}|[1-3][0-9]{3}|40[0-8][0-9]|409[0-5])$';
/** The spellings a boolean may take, probed against each boolean node. */
const BOOL_WORDS = ['1', '0', 'y', 'n', 'yes', 'no', 'on', 'off', 'true', 'false', 't', 'f'];

/** Shared definitions: the errno names (133 of them) are written once. */
const DEFINITIONS: Record<string, JsonSchema> = {
  errno: {
    description: 'An errno name, or E<n> for a number without a name (1..4095).',
    anyOf: [
      { type: 'string', enum: Object.keys(ERRNO) },
      { type: 'string', pattern: ERRNO_NUMBER_PATTERN },
    ],
  },
  expect: {
    description: "What the step expects: 'ok', or the errno the kernel fails it with. Unchecked when absent.",
    anyOf: [{ const: 'ok' }, { $ref: '#/definitions/errno' }],
  },
};

const accepts = (s: z.ZodType, v: unknown): boolean => s.safeParse(v).success;

/** Replace the contents of `json` in place (the parent holds a reference to this very object). */
function replace(json: JsonSchema, next: JsonSchema): void {
  for (const k of Object.keys(json)) delete json[k];
  Object.assign(json, next);
}

const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function caseVariants(w: string): string[] {
  return [...new Set([w, w.toUpperCase(), w[0]!.toUpperCase() + w.slice(1)])];
}

/** A regular expression for the text of a value `schema` accepts (the value of a `name=value` word). */
function valuePattern(schema: JsonSchema): string {
  const alts = (schema.anyOf as JsonSchema[] | undefined) ?? [schema];
  const out: string[] = [];
  for (const a of alts) {
    if (a.anyOf) out.push(valuePattern(a));
    else if (Array.isArray(a.enum)) out.push(...a.enum.map((v) => escapeRegex(String(v))));
    else if (a.const !== undefined) out.push(escapeRegex(String(a.const)));
    else if (typeof a.pattern === 'string') out.push(a.pattern.replace(/^\^|\$$/g, ''));
    else if (a.type === 'integer') out.push('[0-9]+');
    else if (a.type !== 'boolean') out.push('.*');
  }
  return [...new Set(out)].join('|');
}

/** Widen the JSON of one `z.preprocess` node (`inner` is what toJSONSchema made of its output schema). */
function widenPreprocess(node: z.ZodType, inner: JsonSchema): JsonSchema {
  // draft-07 output wraps a lone $ref in allOf (a $ref may not have siblings there); unwrap it.
  const all = inner.allOf as JsonSchema[] | undefined;
  if (Object.keys(inner).length === 1 && all?.length === 1) inner = all[0]!;
  const alts: JsonSchema[] = [inner];
  const type = inner.type;
  if (type === 'string' || type === undefined) {
    // numberAsText: YAML's `512` or `6.12` read as numbers where text is meant; errno numbers.
    if (accepts(node, 12) && accepts(node, -12) && !accepts(node, 0)) {
      alts.push({ type: 'integer', minimum: -MAX_ERRNO, maximum: MAX_ERRNO, not: { const: 0 } });
    } else if (accepts(node, 1)) {
      alts.push(accepts(node, 0) ? { type: 'number' } : { type: 'integer', minimum: 1 });
    }
  } else if (type === 'boolean') {
    // kstrtobool's spellings (and YAML's true/false).
    const words = BOOL_WORDS.flatMap(caseVariants).filter((w) => accepts(node, w));
    if (words.length) alts.push({ type: 'string', enum: words });
    const nums = [0, 1].filter((n) => accepts(node, n));
    if (nums.length) alts.push({ type: 'integer', enum: nums });
  } else if (type === 'integer') {
    if (accepts(node, '1')) alts.push({ type: 'string', pattern: '^[0-9]+$' });
  } else if (type === 'array') {
    // One value instead of a list, and version numbers YAML reads as numbers.
    const items = inner.items as JsonSchema | undefined;
    const values = Array.isArray(items?.enum) ? (items.enum as unknown[]) : [];
    const numeric = values.filter((v): v is string => typeof v === 'string' && String(Number(v)) === v).map(Number);
    const numbers = numeric.filter((n) => accepts(node, [n]));
    if (items && numbers.length) inner.items = { anyOf: [items, { type: 'number', enum: numbers }] };
    const first = values[0];
    if (first !== undefined && accepts(node, first)) alts.unshift(inner.items as JsonSchema);
  } else if (type === 'object') {
    const props = (inner.properties ?? {}) as Record<string, JsonSchema>;
    // `- uninject:` (null) is the step without arguments.
    if (accepts(node, null)) alts.push({ type: 'null' });
    // The shorthand `unplug: d1`: the field a bare value fills is the one zod fills or complains about.
    const probe = node.safeParse('\u0001');
    const field = probe.success
      ? Object.keys(probe.data as object)[0]
      : probe.error.issues.find((i) => i.path.length === 1 && typeof i.path[0] === 'string' && i.path[0] in props)?.path[0];
    if (typeof field === 'string' && props[field]) alts.push(props[field]);
    // A kernel command line as a list of words: `name` or `name=value`.
    if (accepts(node, [])) {
      const words = Object.entries(props).map(([name, value]) => {
        const bare = accepts(node, [name]) ? '|' : '';
        return `${escapeRegex(name)}(${bare}=(${valuePattern(value)}))`;
      });
      alts.push({ type: 'array', items: { type: 'string', pattern: `^(${words.join('|')})$` } });
    }
  }
  return alts.length === 1 ? inner : { anyOf: alts };
}

/** The override hook of z.toJSONSchema: custom types (errno names) and preprocessed nodes. */
function override(ctx: { zodSchema: z.core.$ZodTypes; jsonSchema: JsonSchema }): void {
  const node = ctx.zodSchema as unknown as z.ZodType;
  const def = ctx.zodSchema._zod.def;
  // zod names `startsWith` a format; JSON Schema has no such format, and its pattern already says it.
  if (ctx.jsonSchema.format === 'starts_with') delete ctx.jsonSchema.format;
  if (def.type === 'custom') {
    // expectSchema ('ok' or an errno name) and errnoNameSchema.
    replace(ctx.jsonSchema, { $ref: accepts(node, 'ok') ? '#/definitions/expect' : '#/definitions/errno' });
  } else if (def.type === 'pipe' && def.in._zod.def.type === 'transform') {
    const inner = { ...ctx.jsonSchema };
    replace(ctx.jsonSchema, widenPreprocess(node, inner));
  }
}

/** What z.toJSONSchema makes of one zod schema, with the widenings above. */
function toJson(schema: z.ZodType): JsonSchema {
  const out = z.toJSONSchema(schema, { io: 'input', target: 'draft-07', unrepresentable: 'any', override }) as JsonSchema;
  delete out.$schema;
  return out;
}

/** The JSON Schema of a scenario document. */
export function scenarioJsonSchema(): JsonSchema {
  const machine = toJson(machineSchema);
  // Defaults sit behind preprocessing, where toJSONSchema drops them: take them from zod itself.
  const { kernels, ...defaults } = machineSchema.parse({});
  const props = machine.properties as Record<string, JsonSchema>;
  for (const [k, v] of Object.entries({ kernel: kernels, ...defaults })) if (props[k] && props[k].default === undefined) props[k].default = v;

  const bare = STEP_OPS.filter((op) => accepts(STEP_SCHEMAS[op], null));
  const step: JsonSchema = {
    anyOf: [
      ...STEP_OPS.map((op) => ({
        type: 'object',
        properties: { [op]: toJson(STEP_SCHEMAS[op]) },
        required: [op],
        additionalProperties: false,
      })),
      { type: 'string', enum: bare },
    ],
  };
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'memhp scenario',
    description: 'A machine and the steps run on it, alike on the simulator (memhp sim) and on a real guest (memhp conform). Reference: docs/scenarios.md.',
    type: 'object',
    properties: {
      // As schema.ts's scenarioSchema has them (not exported); the test compares verdicts with zod.
      name: { type: 'string', pattern: '^[\\w.@+-]+$', description: 'Default: the file name without its extension.' },
      description: { type: 'string' },
      machine,
      steps: { type: 'array', minItems: 1, items: step },
    },
    required: ['steps'],
    additionalProperties: false,
    definitions: DEFINITIONS,
  };
}

/** The committed file's text: {@link scenarioJsonSchema} as indented JSON with a final newline. */
export function scenarioJsonSchemaText(): string {
  return `${JSON.stringify(scenarioJsonSchema(), null, 2)}\n`;
}
