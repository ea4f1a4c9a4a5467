/**
 * A kernel pseudo filesystem (sysfs, debugfs, procfs) as user space sees it: paths resolve through
 * directories (static or computed, such as one `memoryN` per block) and symlinks to attributes with
 * the kernel's show/store semantics and errnos. `exportTo` writes the tree as real files so tools such
 * as `lsmem --sysroot` can read it.
 */
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { KernelError } from '../errors.js';
import type { SysfsAccess, TreeEntry } from './target.js';

/** An attribute file. Without `show` a read fails EACCES, without `store` a write does (kernfs_fop_open). */
export interface SysFile {
  readonly kind: 'file';
  /** Permission bits, as `ls -l` would show them (0444, 0644, 0200, 0600). */
  readonly mode: number;
  /** The file's text. */
  show?(): string | Promise<string>;
  /** Take a write; throw KernelError to fail it. `signal` aborts a long store (a signal to the writer). */
  store?(value: string, signal?: AbortSignal): void | Promise<void>;
}

/** A symbolic link; `target` is relative to the link's directory, as sysfs makes them. */
export interface SysLink {
  readonly kind: 'link';
  readonly target: string;
}

/** A directory: its entries by name, possibly computed on each lookup. */
export interface SysDir {
  readonly kind: 'dir';
  get(name: string): SysNode | undefined;
  /** Entry names, in any order. */
  list(): string[];
}

/** Any node of the tree. */
export type SysNode = SysFile | SysLink | SysDir;

/** A directory with a fixed set of entries (which may still change over time). */
export class StaticDir implements SysDir {
  readonly kind = 'dir';
  readonly entries = new Map<string, SysNode>();

  constructor(entries: Record<string, SysNode> = {}) {
    for (const [k, v] of Object.entries(entries)) this.entries.set(k, v);
  }

  get(name: string): SysNode | undefined {
    return this.entries.get(name);
  }

  list(): string[] {
    return [...this.entries.keys()];
  }

  /** Add or replace an entry; returns this directory. */
  set(name: string, node: SysNode): this {
    this.entries.set(name, node);
    return this;
  }

  /** The subdirectory `name`, created (static) when missing. */
  dir(name: string): StaticDir {
    const d = this.entries.get(name);
    if (d instanceof StaticDir) return d;
    const n = new StaticDir();
    this.entries.set(name, n);
    return n;
  }
}

/** A read-only attribute (0444). */
export function ro(show: () => string | Promise<string>): SysFile {
  return { kind: 'file', mode: 0o444, show };
}

/** A read-write attribute (0644 unless given). */
export function rw(show: () => string | Promise<string>, store: (value: string, signal?: AbortSignal) => void | Promise<void>, mode = 0o644): SysFile {
  return { kind: 'file', mode, show, store };
}

/** A write-only attribute (0200). */
export function wo(store: (value: string, signal?: AbortSignal) => void | Promise<void>): SysFile {
  return { kind: 'file', mode: 0o200, store };
}

/** A symlink. */
export function link(target: string): SysLink {
  return { kind: 'link', target };
}

const MAX_LINKS = 40; // ELOOP, as path_lookup gives up

/** Options of a write. */
export interface WriteOptions {
  /** Aborting it is a signal to the writer: a long offline fails EINTR. */
  signal?: AbortSignal;
}

/** The pseudo filesystem of a simulated machine, rooted at `/`. */
export class Sysfs implements SysfsAccess {
  /** The root directory. */
  readonly root: StaticDir;
  /** Runs every read and write as its own task, as each `cat` or `echo` is its own process. */
  readonly #run: <T>(fn: () => Promise<T>) => Promise<T>;

  constructor(root: StaticDir, run: <T>(fn: () => Promise<T>) => Promise<T> = (fn) => fn()) {
    this.root = root;
    this.#run = run;
  }

  /**
   * Resolve a path to a node, following symlinks; the final link too unless `noFollow`. As in
   * link_path_walk, everything a component is looked up in must be a directory: `file/`, `file/.` and
   * `file/..` are ENOTDIR (a trailing slash is a lookup of `.`, so it also follows a final link).
   */
  lookup(p: string, noFollow = false): { node: SysNode; path: string } {
    if (!p.startsWith('/')) throw new KernelError('ENOENT', `${p}: not an absolute path`);
    const split = (path: string): string[] => {
      const parts = path.split('/').filter((x) => x);
      if (path.endsWith('/') && parts.length) parts.push('.');
      return parts;
    };
    let parts = split(p);
    let stack: { node: SysDir; name: string }[] = [];
    let node: SysNode = this.root;
    let links = 0;
    for (let i = 0; i < parts.length; i++) {
      const name = parts[i]!;
      if (node.kind !== 'dir') throw new KernelError('ENOTDIR', `${p}: not a directory`);
      if (name === '.') continue;
      if (name === '..') {
        node = stack.pop()?.node ?? this.root;
        continue;
      }
      const next: SysNode | undefined = node.get(name);
      if (!next) throw new KernelError('ENOENT', `${p}: no such file or directory`);
      if (next.kind === 'link' && (i < parts.length - 1 || !noFollow)) {
        if (++links > MAX_LINKS) throw new KernelError('ELOOP', `${p}: too many levels of symbolic links`);
        const base = next.target.startsWith('/') ? [] : stack.map((s) => s.name);
        const resolved = [...base, ...split(next.target), ...parts.slice(i + 1)];
        parts = resolved;
        stack = [];
        node = this.root;
        i = -1;
        continue;
      }
      stack.push({ node, name });
      node = next;
    }
    return { node, path: '/' + stack.map((s) => s.name).join('/') };
  }

  /** Read a file: ENOENT, EISDIR for a directory, EACCES without a show method. */
  async read(p: string): Promise<string> {
    const { node } = this.lookup(p);
    if (node.kind === 'dir') throw new KernelError('EISDIR', `${p}: is a directory`);
    if (node.kind !== 'file' || !node.show) throw new KernelError('EACCES', `${p}: permission denied`);
    const show = node.show;
    return this.#run(async () => show());
  }

  /**
   * Write `value` as one write(2) of exactly these bytes. An empty write succeeds without calling the
   * store (sysfs_kf_write); a store error rejects with its KernelError.
   */
  async write(p: string, value: string, opts: WriteOptions = {}): Promise<void> {
    const { node } = this.lookup(p);
    if (node.kind === 'dir') throw new KernelError('EISDIR', `${p}: is a directory`);
    if (node.kind !== 'file' || !node.store) throw new KernelError('EACCES', `${p}: permission denied`);
    const store = node.store;
    if (value === '' && p.startsWith('/sys/') && !p.startsWith('/sys/kernel/debug/')) return;
    await this.#run(async () => {
      await store(value, opts.signal);
    });
  }

  /** Directory entries, sorted: ENOENT, ENOTDIR for a file. */
  async list(p: string): Promise<string[]> {
    const { node } = this.lookup(p);
    if (node.kind !== 'dir') throw new KernelError('ENOTDIR', `${p}: not a directory`);
    return node.list().sort();
  }

  /**
   * Every entry under each root (lstat semantics: links are entries, never followed), each directory's
   * entries sorted, and each regular file read as `cat` would (EACCES without a show method).
   */
  async walk(roots: readonly string[]): Promise<TreeEntry[]> {
    const out: TreeEntry[] = [];
    const visit = async (p: string, node: SysNode): Promise<void> => {
      if (node.kind === 'link') out.push({ path: p, type: 'link', mode: 0o777, target: node.target });
      else if (node.kind === 'file') {
        try {
          out.push({ path: p, type: 'file', mode: node.mode, value: await this.read(p) });
        } catch (e) {
          if (!(e instanceof KernelError)) throw e;
          out.push({ path: p, type: 'file', mode: node.mode, errno: e.code });
        }
      } else {
        out.push({ path: p, type: 'dir', mode: 0o755 });
        for (const name of node.list().sort()) {
          const child = node.get(name);
          if (child) await visit(`${p}/${name}`, child);
        }
      }
    };
    for (const root of roots) {
      let node: SysNode;
      try {
        node = this.lookup(root, true).node;
      } catch (e) {
        if (!(e instanceof KernelError)) throw e;
        out.push({ path: root, type: 'missing', mode: 0, errno: e.code });
        continue;
      }
      await visit(root.replace(/\/+$/, '') || '/', node);
    }
    return out;
  }

  /** Whether `p` exists (a dangling final link counts as existing). */
  exists(p: string): boolean {
    try {
      this.lookup(p, true);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Write the tree below `from` (default `/sys`) into `dir` as real files and relative symlinks: file
   * contents are what a read returns now, unreadable files are empty (mode kept). Returns the count of
   * files written. For `lsmem --sysroot DIR`.
   */
  async exportTo(dir: string, from = '/sys'): Promise<number> {
    // Read the whole tree before writing anything, so no file-system wait sits between two reads
    // (only `online`, which takes the device lock, may wait); then write the files concurrently.
    const dirs: string[] = [];
    const links: { target: string; at: string }[] = [];
    const files: { at: string; text: string; mode: number }[] = [];
    const walk = async (node: SysDir, rel: string): Promise<void> => {
      dirs.push(path.join(dir, rel));
      for (const name of node.list().sort()) {
        const child = node.get(name)!;
        const at = path.join(dir, rel, name);
        if (child.kind === 'dir') await walk(child, path.join(rel, name));
        else if (child.kind === 'link') links.push({ target: child.target, at });
        else {
          let text = '';
          const show = child.show;
          if (show) text = await (async () => show())().catch(() => '');
          files.push({ at, text, mode: child.mode });
        }
      }
    };
    const { node } = this.lookup(from);
    if (node.kind !== 'dir') throw new KernelError('ENOTDIR', `${from}: not a directory`);
    await walk(node, from);
    for (const d of dirs) await mkdir(d, { recursive: true });
    const jobs = [...links.map((l) => () => symlink(l.target, l.at)), ...files.map((f) => () => writeFile(f.at, f.text, { mode: f.mode }))];
    const workers = Array.from({ length: Math.min(32, jobs.length) }, async () => {
      for (let job = jobs.pop(); job; job = jobs.pop()) await job();
    });
    await Promise.all(workers);
    return files.length;
  }
}
