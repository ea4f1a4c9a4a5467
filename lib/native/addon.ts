/**
 * Loads the C++ addon (built by node-gyp, found by `bindings`) and registers {@link KernelError} with
 * it, so native code throws the same typed errors as TypeScript code.
 *
 * `MEMHP_NATIVE=/path/to/memhp.node` loads a specific build instead (the sanitizer run uses it).
 */
import { createRequire } from 'node:module';
import { KernelError } from '../errors.js';
import type { NativeAddon } from './types.js';

const require = createRequire(import.meta.url);

function load(): NativeAddon {
  const explicit = process.env.MEMHP_NATIVE;
  const addon = (explicit ? require(explicit) : require('bindings')('memhp')) as NativeAddon;
  // The native side constructs errors as `new KernelError(code, message, {details: {pfn}})`.
  addon.setErrorClass(KernelError);
  return addon;
}

/** The loaded addon; loaded once per process. */
export const native: NativeAddon = load();
