/**
 * Reading the kernel's own type information (BTF) out of a Debian `vmlinuz`, so that kprobe argument
 * offsets are derived from the kernel being booted instead of being hard-coded per version.
 *
 * Path: bzImage → compressed payload (setup header fields) → `xz`/`zstd` → vmlinux (ELF) → `.BTF`
 * section → the few structs and prototypes the probes need ({@link KernelLayout}).
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { GuestError } from './errors.js';

/** One member of a C struct as BTF describes it. */
export interface BtfMember {
  name: string;
  /** Byte offset inside the struct. */
  offset: number;
  /** Size in bytes of the member's (resolved) type. */
  size: number;
  /** True for signed integers. */
  signed: boolean;
  /** Resolved kind: 'int', 'enum', 'ptr', 'struct', 'array', … */
  kind: string;
}

/** The facts about one kernel build that the guest probes are generated from. */
export interface KernelLayout {
  /** `struct memory_notify`, in declaration order. */
  memoryNotify: BtfMember[];
  /** `struct node_notify` (7.x), or null when the kernel has no node notifier. */
  nodeNotify: BtfMember[] | null;
  /** Size in bytes of the first parameter of `memory_notify()` (unsigned long 8, enum 4). */
  memoryNotifyActionSize: number;
  /** Byte offsets in `struct zone` of `name` (a `const char *`) and `node` (int). */
  zone: { name: number; node: number };
  /** Offsets in `struct resource` of `start` and `end`. */
  resource: { start: number; end: number };
  /**
   * Memory-notifier action values when the kernel declares them as an enum (`enum memory_block_state`,
   * 7.x and late 6.12 stable kernels); null when they are #defines (then the profile's table holds).
   */
  memoryActions: Record<string, number> | null;
  /** Node-notifier action values when declared as an enum, else null. */
  nodeActions: Record<string, number> | null;
}

const KIND = ['void', 'int', 'ptr', 'array', 'struct', 'union', 'enum', 'fwd', 'typedef', 'volatile', 'const', 'restrict', 'func', 'func_proto', 'var', 'datasec', 'float', 'decl_tag', 'type_tag', 'enum64'] as const;

interface BtfType {
  kind: string;
  name: string;
  size: number; // size or referenced type id, per kind
  vlen: number;
  kflag: boolean;
  intSigned?: boolean;
  members?: { name: string; type: number; bitOffset: number }[];
  params?: { name: string; type: number }[];
  enumerators?: { name: string; value: number }[];
}

/** A parsed `.BTF` blob, enough to look up structs and function prototypes by name. */
export class Btf {
  private readonly types: BtfType[] = [{ kind: 'void', name: '', size: 0, vlen: 0, kflag: false }];
  private readonly byName = new Map<string, number[]>();

  constructor(buf: Buffer) {
    if (buf.readUInt16LE(0) !== 0xeb9f) throw new GuestError('not a BTF blob (bad magic)');
    const hdrLen = buf.readUInt32LE(4);
    const typeOff = hdrLen + buf.readUInt32LE(8);
    const typeLen = buf.readUInt32LE(12);
    const strOff = hdrLen + buf.readUInt32LE(16);
    const str = (off: number): string => {
      const start = strOff + off;
      return buf.toString('latin1', start, buf.indexOf(0, start));
    };
    let p = typeOff;
    const end = typeOff + typeLen;
    while (p < end) {
      const nameOff = buf.readUInt32LE(p);
      const info = buf.readUInt32LE(p + 4);
      const size = buf.readUInt32LE(p + 8);
      p += 12;
      const vlen = info & 0xffff;
      const kind: string = KIND[(info >>> 24) & 0x1f] ?? 'unknown';
      const kflag = (info >>> 31) === 1;
      const t: BtfType = { kind, name: str(nameOff), size, vlen, kflag };
      switch (kind) {
        case 'int':
          t.intSigned = ((buf.readUInt32LE(p) >>> 24) & 1) === 1;
          p += 4;
          break;
        case 'array':
          p += 12;
          break;
        case 'struct':
        case 'union':
          t.members = [];
          for (let i = 0; i < vlen; i++, p += 12) {
            const off = buf.readUInt32LE(p + 8);
            t.members.push({ name: str(buf.readUInt32LE(p)), type: buf.readUInt32LE(p + 4), bitOffset: kflag ? off & 0xffffff : off });
          }
          break;
        case 'enum':
          t.enumerators = [];
          for (let i = 0; i < vlen; i++, p += 8) t.enumerators.push({ name: str(buf.readUInt32LE(p)), value: buf.readInt32LE(p + 4) });
          break;
        case 'enum64':
          p += 12 * vlen;
          break;
        case 'func_proto':
          t.params = [];
          for (let i = 0; i < vlen; i++, p += 8) t.params.push({ name: str(buf.readUInt32LE(p)), type: buf.readUInt32LE(p + 4) });
          break;
        case 'var':
        case 'decl_tag':
          p += 4;
          break;
        case 'datasec':
          p += 12 * vlen;
          break;
        case 'unknown':
          throw new GuestError(`BTF: unknown type kind ${(info >>> 24) & 0x1f}`);
        default:
          break;
      }
      const id = this.types.length;
      this.types.push(t);
      if (t.name) {
        const ids = this.byName.get(t.name);
        if (ids) ids.push(id);
        else this.byName.set(t.name, [id]);
      }
    }
  }

  /** The id of the first type of this kind and name, with a definition (not a forward declaration). */
  private find(kind: string, name: string): number | undefined {
    return this.byName.get(name)?.find((id) => this.types[id]!.kind === kind);
  }

  /** Follow typedefs and qualifiers down to the underlying type. */
  private resolve(id: number): BtfType {
    let t = this.types[id]!;
    while (['typedef', 'volatile', 'const', 'restrict', 'type_tag'].includes(t.kind)) t = this.types[t.size]!;
    return t;
  }

  private describe(name: string, type: number, offset: number): BtfMember {
    const t = this.resolve(type);
    const size = t.kind === 'ptr' ? 8 : t.kind === 'int' || t.kind === 'enum' || t.kind === 'enum64' || t.kind === 'struct' || t.kind === 'union' ? t.size : 0;
    return { name, offset, size, signed: t.kind === 'int' ? t.intSigned === true : t.kind === 'enum', kind: t.kind };
  }

  /** The members of `struct <name>`, or null when the kernel has no such struct. */
  struct(name: string): BtfMember[] | null {
    const id = this.find('struct', name);
    if (id === undefined) return null;
    return this.types[id]!.members!.map((m) => this.describe(m.name, m.type, m.bitOffset / 8));
  }

  /**
   * The enumerators of the first enum that has an enumerator called `member`, or null (the constants
   * are then #defines, which BTF does not record).
   */
  enumWith(member: string): Record<string, number> | null {
    for (const t of this.types) {
      if (t.kind === 'enum' && t.enumerators?.some((e) => e.name === member)) {
        return Object.fromEntries(t.enumerators.map((e) => [e.name, e.value]));
      }
    }
    return null;
  }

  /** The parameters of function `<name>`, or null when BTF does not describe it. */
  funcParams(name: string): BtfMember[] | null {
    const id = this.find('func', name);
    if (id === undefined) return null;
    const proto = this.types[this.types[id]!.size]!;
    return (proto.params ?? []).map((p) => this.describe(p.name, p.type, 0));
  }
}

/** Decompress the kernel image payload of a bzImage and return vmlinux (an ELF file). */
export async function extractVmlinux(bzImage: Buffer): Promise<Buffer> {
  if (bzImage.toString('latin1', 0x202, 0x206) !== 'HdrS') throw new GuestError('not a bzImage (no HdrS setup header)');
  const setupSects = bzImage.readUInt8(0x1f1) || 4;
  const start = (setupSects + 1) * 512 + bzImage.readUInt32LE(0x248);
  // The build appends the uncompressed size (4 bytes) after the compressed stream; decompressors
  // would take it for a second, broken stream.
  const payload = bzImage.subarray(start, start + bzImage.readUInt32LE(0x24c) - 4);
  let tool: [string, string[]];
  if (payload.readUInt32LE(0) === 0xfd2fb528) tool = ['zstd', ['-dc', '-q']];
  else if (payload.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) tool = ['xz', ['-dc', '--single-stream']];
  else throw new GuestError(`bzImage payload has an unsupported compression (magic ${payload.subarray(0, 6).toString('hex')})`);
  return new Promise((resolve, reject) => {
    const child = execFile(tool[0], tool[1], { encoding: 'buffer', maxBuffer: 512 << 20 }, (err, stdout) => {
      if (err) reject(new GuestError(`${tool[0]} could not decompress the kernel image: ${err.message}`, { cause: err }));
      else resolve(stdout);
    });
    child.stdin!.on('error', () => undefined); // the tool's exit is reported above
    child.stdin!.end(payload);
  });
}

/** The `.BTF` section of an ELF64 vmlinux. */
export function elfSection(elf: Buffer, name: string): Buffer | null {
  if (elf.readUInt32BE(0) !== 0x7f454c46) throw new GuestError('vmlinux is not an ELF file');
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const shstrndx = elf.readUInt16LE(0x3e);
  const sh = (i: number) => {
    const o = shoff + i * shentsize;
    return { name: elf.readUInt32LE(o), offset: Number(elf.readBigUInt64LE(o + 24)), size: Number(elf.readBigUInt64LE(o + 32)) };
  };
  const strtab = sh(shstrndx);
  for (let i = 0; i < shnum; i++) {
    const s = sh(i);
    const at = strtab.offset + s.name;
    if (elf.toString('latin1', at, elf.indexOf(0, at)) === name) return elf.subarray(s.offset, s.offset + s.size);
  }
  return null;
}

/** The BTF blob of a bzImage file (decompressing it on the way). */
export async function btfFromBzImage(path: string): Promise<Buffer> {
  const vmlinux = await extractVmlinux(await readFile(path));
  const btf = elfSection(vmlinux, '.BTF');
  if (!btf) throw new GuestError(`${path}: the kernel has no .BTF section (CONFIG_DEBUG_INFO_BTF is off)`);
  return Buffer.from(btf); // copy, so the 60 MB vmlinux can be freed
}

function need<T>(v: T | null | undefined, what: string): T {
  if (v === null || v === undefined) throw new GuestError(`kernel BTF lacks ${what}`);
  return v;
}

/** Derive the probe layout of a kernel from its BTF. */
export function kernelLayout(btf: Btf): KernelLayout {
  const member = (s: BtfMember[], n: string, what: string) => need(s.find((m) => m.name === n), `${what}.${n}`);
  const zone = need(btf.struct('zone'), 'struct zone');
  const res = need(btf.struct('resource'), 'struct resource');
  const params = need(btf.funcParams('memory_notify'), 'function memory_notify');
  return {
    memoryNotify: need(btf.struct('memory_notify'), 'struct memory_notify'),
    nodeNotify: btf.struct('node_notify'),
    memoryNotifyActionSize: need(params[0], 'memory_notify parameter 0').size,
    zone: { name: member(zone, 'name', 'zone').offset, node: member(zone, 'node', 'zone').offset },
    resource: { start: member(res, 'start', 'resource').offset, end: member(res, 'end', 'resource').offset },
    memoryActions: btf.enumWith('MEM_GOING_ONLINE'),
    nodeActions: btf.enumWith('NODE_ADDING_FIRST_MEMORY'),
  };
}
