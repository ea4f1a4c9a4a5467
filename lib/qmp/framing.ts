/**
 * QMP framing: bytes from the socket cut into newline-terminated lines, with the two bounds a hostile or
 * broken peer must not get past. A line longer than `maxLineBytes` is refused as it grows (V8 cannot make
 * a string above `buffer.constants.MAX_STRING_LENGTH`, so the bound stays below it), and JSON nested deeper
 * than `maxDepth` is refused while it streams in, before `JSON.parse` ever sees it: QEMU's own parser stops
 * at 1024 levels (MAX_NESTING in json_message_process_token), so deeper is not QEMU, and parsing millions
 * of levels would hold the event loop for seconds, past every deadline.
 */
import { constants } from 'node:buffer';
import { MemhpError } from '../errors.js';

/** Default longest line: far above any real reply (query-qmp-schema is a few hundred KiB), far below V8's string limit. */
export const DEFAULT_MAX_LINE_BYTES = 64 * 2 ** 20;
/** Default deepest nesting: QEMU's MAX_NESTING (qobject/json-streamer.c). */
export const DEFAULT_MAX_DEPTH = 1024;

/** The bounds of {@link LineFramer}. */
export interface FramingLimits {
  maxLineBytes: number;
  maxDepth: number;
}

/** Checks the two options; a bad value is a programming error of the caller, refused at once. */
export function framingLimits(maxLineBytes = DEFAULT_MAX_LINE_BYTES, maxDepth = DEFAULT_MAX_DEPTH): FramingLimits {
  // UTF-8 never decodes to more UTF-16 units than it has bytes, so this bound keeps toString() safe.
  if (!Number.isSafeInteger(maxLineBytes) || maxLineBytes < 1 || maxLineBytes > constants.MAX_STRING_LENGTH) {
    throw new MemhpError(`QMP: maxLineBytes must be an integer in 1..${constants.MAX_STRING_LENGTH} (the longest string V8 can make), not ${maxLineBytes}`);
  }
  if (!Number.isSafeInteger(maxDepth) || maxDepth < 1) throw new MemhpError(`QMP: maxDepth must be a positive integer, not ${maxDepth}`);
  return { maxLineBytes, maxDepth };
}

const NL = 0x0a;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

/**
 * Cuts a byte stream into lines and tracks each line's JSON nesting as its bytes arrive, so each byte is
 * looked at once and a bad line is refused without waiting for its end. A JSON string cannot hold a raw
 * newline, so every newline ends a line.
 */
export class LineFramer {
  readonly #limits: FramingLimits;
  #chunks: Buffer[] = [];
  #bytes = 0;
  #depth = 0;
  #inString = false;
  #escaped = false;

  constructor(limits: FramingLimits) {
    this.#limits = limits;
  }

  /** Bytes of the unterminated line held so far. */
  get pendingBytes(): number {
    return this.#bytes;
  }

  /**
   * Feed one chunk. `onLine` gets each complete line as text and its length in bytes, and returns false
   * to stop (the connection ended). Returns a protocol error message when the peer broke a bound; the
   * framer is then unusable.
   */
  push(chunk: Buffer, onLine: (text: string, bytes: number) => boolean): string | undefined {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(NL, start);
      const end = nl === -1 ? chunk.length : nl;
      if (this.#bytes + (end - start) > this.#limits.maxLineBytes) return this.#fail(`line longer than ${this.#limits.maxLineBytes} bytes`);
      const tooDeep = this.#scan(chunk, start, end);
      if (tooDeep) return this.#fail(tooDeep);
      if (nl === -1) {
        this.#chunks.push(chunk.subarray(start));
        this.#bytes += chunk.length - start;
        return undefined;
      }
      const part = chunk.subarray(start, nl);
      // Concatenate once per line: a 10 MB reply arrives in hundreds of chunks.
      const line = this.#bytes ? Buffer.concat([...this.#chunks, part]) : part;
      this.#reset();
      start = nl + 1;
      let text: string;
      try {
        text = line.toString('utf8');
      } catch (e) {
        // Unreachable with the bound above; kept so a decoding failure can never escape as an exception.
        return this.#fail(`line of ${line.length} bytes cannot be decoded: ${(e as Error).message}`);
      }
      if (!onLine(text, line.length)) return undefined;
    }
    return undefined;
  }

  /** Forget the partial line (the connection is gone). */
  clear(): void {
    this.#reset();
  }

  #scan(buf: Buffer, from: number, to: number): string | undefined {
    let depth = this.#depth;
    let inString = this.#inString;
    let escaped = this.#escaped;
    const max = this.#limits.maxDepth;
    for (let i = from; i < to; i++) {
      const b = buf[i]!;
      if (inString) {
        if (escaped) escaped = false;
        else if (b === BACKSLASH) escaped = true;
        else if (b === QUOTE) inString = false;
      } else if (b === QUOTE) inString = true;
      else if (b === OPEN_ARRAY || b === OPEN_OBJECT) {
        if (++depth > max) return `JSON nested deeper than ${max} levels`;
      } else if (b === CLOSE_ARRAY || b === CLOSE_OBJECT) depth--; // unbalanced input is JSON.parse's to refuse
    }
    this.#depth = depth;
    this.#inString = inString;
    this.#escaped = escaped;
    return undefined;
  }

  #reset(): void {
    this.#chunks = [];
    this.#bytes = 0;
    this.#depth = 0;
    this.#inString = false;
    this.#escaped = false;
  }

  #fail(why: string): string {
    this.#reset();
    return why;
  }
}
