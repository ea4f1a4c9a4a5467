/**
 * Loads the C++ addon (built by node-gyp, found by `bindings`) and registers {@link KernelError} with
 * it, so native code throws the same typed errors as TypeScript code. Nothing is loaded on import: the
 * first {@link loadAddon} call (the first `PhysMem` made) loads it, so modules that need only constants
 * (`constants.ts`), and commands that simulate nothing (`memhp qmp`, `--help`), run without a build.
 *
 * `MEMHP_NATIVE=/path/to/memhp.node` loads a specific build instead (the sanitizer run uses it).
 */
import { createRequire } from 'node:module';
import { KernelError, MemhpError } from '../errors.js';
import type { NativeAddon } from './types.js';

const require = createRequire(import.meta.url);

/** What to run when the addon cannot be loaded: in a project that installed memhp, and in a clone of it. */
export const ADDON_BUILD_HINT = 'build it with `npm rebuild memhp` (in a project using memhp) or `npx node-gyp rebuild` (in a clone of memhp; needs g++, make and python3)';

/** Thrown when the addon cannot be loaded: one line naming the build that failed to load and how to build it. */
export class AddonLoadError extends MemhpError {}

let addon: NativeAddon | undefined;

/** The addon, loaded on the first call (once per process); {@link AddonLoadError} when it is not built or does not load. */
export function loadAddon(): NativeAddon {
  if (addon) return addon;
  const explicit = process.env.MEMHP_NATIVE;
  let loaded: NativeAddon;
  try {
    loaded = (explicit ? require(explicit) : require('bindings')('memhp')) as NativeAddon;
  } catch (e) {
    // `bindings` lists every path it tried, require adds its stack: the first line says what failed.
    const why = (e instanceof Error ? e.message : String(e)).split('\n')[0]!.trim();
    const which = explicit ? `MEMHP_NATIVE=${explicit}` : 'memhp.node';
    throw new AddonLoadError(`the simulator's native addon does not load (${which}: ${why}); ${ADDON_BUILD_HINT}`, { cause: e });
  }
  // The native side constructs errors as `new KernelError(code, message, {details: {pfn}})`.
  loaded.setErrorClass(KernelError);
  addon = loaded;
  return loaded;
}
