/**
 * A private apt configuration per Debian suite, under the cache directory: its own sources.list,
 * lists and caches (the host's apt sources and state are never read or changed). Packages it
 * downloads are verified by apt against the archive's signed indices (lib/guest/kernels.ts checks
 * each .deb's sha256 from them again before unpacking).
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { GuestError } from './errors.js';
import type { KernelSuite } from './kernels.js';
import { CACHE_ROLE, trustedSubdir, writeOwnFile } from './trust.js';

const run = promisify(execFile);

const MIRROR = () => process.env.MEMHP_DEBIAN_MIRROR || 'http://deb.debian.org/debian';
const SECURITY_MIRROR = () => process.env.MEMHP_DEBIAN_SECURITY_MIRROR || 'http://deb.debian.org/debian-security';
const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

function sourcesList(suite: KernelSuite): string {
  const o = `[arch=amd64 signed-by=${KEYRING}]`;
  const lines = [`deb ${o} ${MIRROR()} ${suite} main`];
  // Stable kernels get their updates through the security archive (sid and backports have none).
  if (suite !== 'sid' && !suite.endsWith('-backports')) lines.push(`deb ${o} ${SECURITY_MIRROR()} ${suite}-security main`);
  return lines.join('\n') + '\n';
}

/** A private apt configuration for one suite: every directory apt would use is redirected into the cache (0700 directories). */
export class PrivateApt {
  readonly root: string;
  constructor(readonly suite: KernelSuite, cache: string) {
    this.root = path.join(cache, 'apt', suite);
  }

  private opts(): string[] {
    const r = this.root;
    const o: Record<string, string> = {
      'Dir::State': r,
      'Dir::State::Lists': `${r}/lists`,
      'Dir::State::status': `${r}/status`,
      'Dir::Cache': `${r}/cache`,
      'Dir::Cache::Archives': `${r}/cache/archives`,
      'Dir::Etc::SourceList': `${r}/sources.list`,
      'Dir::Etc::SourceParts': `${r}/empty`,
      'Dir::Etc::Preferences': `${r}/empty/preferences`,
      'Dir::Etc::PreferencesParts': `${r}/empty`,
      'APT::Architecture': 'amd64',
      'APT::Architectures': 'amd64',
      'Acquire::Languages': 'none',
      'APT::Get::List-Cleanup': 'true',
    };
    // apt drops to user _apt for downloads; it cannot write into root's cache directory.
    if (process.getuid?.() === 0) o['APT::Sandbox::User'] = 'root';
    return Object.entries(o).flatMap(([k, v]) => ['-o', `${k}=${v}`]);
  }

  /** Make the directories and write sources.list (never through a link); the cache itself is checked by the caller. */
  async setup(): Promise<void> {
    await trustedSubdir(path.dirname(this.root), CACHE_ROLE);
    await trustedSubdir(this.root, CACHE_ROLE);
    for (const d of ['lists/partial', 'cache/archives/partial', 'empty']) await mkdir(path.join(this.root, d), { recursive: true, mode: 0o700 });
    await writeOwnFile(path.join(this.root, 'sources.list'), sourcesList(this.suite), 0o644);
    if (!existsSync(path.join(this.root, 'status'))) await writeOwnFile(path.join(this.root, 'status'), '', 0o644);
  }

  /** `apt-get update` unless the lists are younger than `maxAgeMs`. Returns false when it failed but old lists exist. */
  async update(maxAgeMs: number): Promise<boolean> {
    const stamp = path.join(this.root, 'updated');
    const age = existsSync(stamp) ? Date.now() - (await stat(stamp)).mtimeMs : Infinity;
    if (age < maxAgeMs) return true;
    try {
      await run('apt-get', [...this.opts(), '-q', 'update'], { maxBuffer: 16 << 20 });
      await writeOwnFile(stamp, new Date().toISOString() + '\n', 0o644);
      return true;
    } catch (e) {
      if (existsSync(stamp)) return false; // offline: keep using what was resolved before
      throw new GuestError(`apt-get update for ${this.suite} failed: ${(e as { stderr?: string }).stderr ?? String(e)}`, { cause: e });
    }
  }

  /** Fields of the candidate version of a package (`apt-cache show --no-all-versions`). */
  async show(pkg: string): Promise<Record<string, string>> {
    const { stdout } = await run('apt-cache', [...this.opts(), 'show', '--no-all-versions', pkg], { maxBuffer: 16 << 20 });
    const f: Record<string, string> = {};
    let key = '';
    for (const line of stdout.split('\n')) {
      if (line === '') break;
      if (/^\s/.test(line)) f[key] += '\n' + line.trim();
      else {
        const i = line.indexOf(':');
        key = line.slice(0, i);
        f[key] = line.slice(i + 1).trim();
      }
    }
    return f;
  }

  /** `apt-get download` into `dir`, reporting progress (percent of this batch) through `onProgress`. */
  download(pkgs: string[], dir: string, onProgress: (pct: number) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn('apt-get', [...this.opts(), '-q', '-o', 'APT::Status-Fd=3', 'download', ...pkgs], {
        cwd: dir,
        stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
      });
      let err = '';
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      child.stdout!.resume();
      let buf = '';
      (child.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => {
        buf += d.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const m = /^dlstatus:[^:]*:([\d.]+):/.exec(buf.slice(0, nl));
          if (m) onProgress(Number(m[1]));
          buf = buf.slice(nl + 1);
        }
      });
      child.on('error', reject);
      child.on('close', (code) => {
        if (code === 0) resolve();
        else reject(new GuestError(`apt-get download ${pkgs.join(' ')} failed (exit ${code}): ${err.trim()}`));
      });
    });
  }
}
