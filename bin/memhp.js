#!/usr/bin/env node
// The memhp CLI, from the compiled TypeScript (`npm ci` builds it through the prepare script).
import { main } from '../dist/lib/cli/main.js';

process.exitCode = await main(process.argv);
