// `npm run schema`: write docs/scenario.schema.json, the JSON Schema of scenario files generated from
// the zod schema (lib/scenario/json-schema.ts). test/scenario/json-schema.test.ts fails when the
// committed file differs from what this writes.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { scenarioJsonSchemaText } from '../lib/scenario/json-schema.js';

const out = fileURLToPath(new URL('../docs/scenario.schema.json', import.meta.url));
writeFileSync(out, scenarioJsonSchemaText());
console.log(`wrote ${out}`);
