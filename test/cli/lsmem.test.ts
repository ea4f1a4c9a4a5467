import assert from 'node:assert/strict';
import { lsmemCommand } from '../../lib/cli/lsmem.js';

async function run(args: string[]): Promise<string> {
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => ((out += String(chunk)), true)) as typeof process.stdout.write;
  try {
    await lsmemCommand().parseAsync(args, { from: 'user' });
  } finally {
    process.stdout.write = write;
  }
  return out;
}

describe('memhp lsmem', () => {
  it('prints util-linux lsmem of the simulated machine, with DIMMs plugged and lsmem options passed through', async () => {
    const table = await run(['--memory', '512M', '--nodes', '1']);
    assert.match(table, /^0x0000000000000000-0x000000001fffffff +512M online +yes +0-3$/m);
    assert.match(table, /Memory block size: +128M/);
    const json = JSON.parse(await run(['--kernel', '6.1', '--plug', '1G@1', '--', '-J', '-o', 'RANGE,STATE,NODE,ZONES'])) as { memory: { range: string; state: string; node: number; zones: string }[] };
    // 6.1's Debian default leaves hot-added memory offline; lsmem reads valid_zones of offline blocks.
    assert.deepEqual(json.memory.at(-1), { range: '0x0000000140000000-0x000000017fffffff', state: 'offline', node: 1, zones: 'Normal/Movable' });
  });
});
