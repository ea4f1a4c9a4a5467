/**
 * Host provisioning: make sure Debian packages the harness needs (qemu-system-x86, busybox-static, …)
 * are installed. As root they are installed with apt-get; otherwise the error says exactly what to run.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { MemhpError } from '../errors.js';

const run = promisify(execFile);

/** A host set-up problem (missing packages, no permission to install them). */
export class HostError extends MemhpError {}

async function isInstalled(pkg: string): Promise<boolean> {
  try {
    const { stdout } = await run('dpkg-query', ['-W', '-f=${Status}', pkg]);
    return stdout.trim() === 'install ok installed';
  } catch {
    return false;
  }
}

let updated: Promise<void> | undefined;
let installing: Promise<void> = Promise.resolve();

/**
 * Ensure every named Debian package is installed. Installs the missing ones with apt-get when running
 * as root (one `apt-get update` per process); otherwise throws {@link HostError} naming the command to run.
 * Concurrent calls are serialised so apt's lock is never contended by memhp itself.
 */
export async function ensureDebianPackages(pkgs: readonly string[]): Promise<void> {
  const job = installing.then(async () => {
    const missing: string[] = [];
    for (const p of pkgs) if (!(await isInstalled(p))) missing.push(p);
    if (missing.length === 0) return;
    const cmd = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
    if (process.getuid?.() !== 0) {
      throw new HostError(`missing Debian packages: ${missing.join(', ')}; install them with: sudo ${cmd}`);
    }
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const opts = { env, maxBuffer: 64 << 20 };
    try {
      updated ??= run('apt-get', ['update', '-q'], opts).then(() => undefined);
      await updated;
      await run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], opts);
    } catch (e) {
      updated = undefined;
      const err = e as { stderr?: string; message: string };
      throw new HostError(`could not install ${missing.join(', ')} (${cmd}): ${err.stderr?.trim() || err.message}`, { cause: e });
    }
  });
  installing = job.catch(() => undefined);
  return job;
}
