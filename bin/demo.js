#!/usr/bin/env node
// The main-job demo (`npm start`): `memhp demo`, a simulation on the built-in default machine, no QEMU
// needed. Plain JavaScript over the compiled library, as bin/memhp.js is; a failure is memhp's one line.
import { main } from '../dist/lib/cli/main.js';

process.exitCode = await main([process.argv[0], 'memhp', 'demo']);
