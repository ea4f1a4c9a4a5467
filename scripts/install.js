#!/usr/bin/env node
// npm's install step for memhp: build the native simulator from source (`node-gyp rebuild`; no
// prebuilt binaries), quietly. Success prints nothing; a failure prints node-gyp's whole output, then
// what the build needs. `npm install --foreground-scripts --loglevel verbose` (or MEMHP_INSTALL_VERBOSE=1)
// shows the build as it runs.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const loglevel = process.env.npm_config_loglevel ?? '';
const verbose = process.env.MEMHP_INSTALL_VERBOSE === '1' || ['info', 'verbose', 'silly'].includes(loglevel);

/** node-gyp: the project's own (node_modules/.bin, first on a lifecycle script's PATH), else npm's. */
function gyp(args, stdio) {
  const r = spawnSync('node-gyp', args, { stdio });
  if (r.error?.code === 'ENOENT' && process.env.npm_config_node_gyp) {
    return spawnSync(process.execPath, [process.env.npm_config_node_gyp, ...args], { stdio });
  }
  return r;
}

if (verbose) {
  const r = gyp(['rebuild'], 'inherit');
  process.exit(r.status ?? 1);
}

// stdout and stderr into one file, in the order node-gyp, make and g++ wrote them.
const dir = mkdtempSync(path.join(tmpdir(), 'memhp-install-'));
const logFile = path.join(dir, 'node-gyp.log');
const fd = openSync(logFile, 'w');
const r = gyp(['rebuild'], ['ignore', fd, fd]);
closeSync(fd);
if (r.status !== 0) {
  process.stderr.write(readFileSync(logFile, 'utf8'));
  const why = r.error ? r.error.message : r.signal ? `killed by ${r.signal}` : `exit code ${r.status}`;
  process.stderr.write(
    `memhp: building the native simulator failed (node-gyp rebuild: ${why}). It is built from source and needs ` +
      'a C++17 compiler, make and python3 (Debian: apt-get install g++ make python3); then run `npm rebuild memhp`.\n',
  );
}
rmSync(dir, { recursive: true, force: true });
process.exit(r.status ?? 1);
