// Byte-level reading and writing. The only place that computes offsets into buffers.
// Reader methods throw WireError on any out-of-bounds or malformed field; the codec's public
// decode functions catch it and return a typed error, so nothing escapes into a receive loop.

export type WireErrorCode =
  | 'truncated' // a field runs past the end of the buffer
  | 'trailing' // bytes left over after a complete value
  | 'bad-type' // unknown packet, frame or message type
  | 'bad-version' // unsupported protocol version
  | 'bad-varint' // varint out of the range the field allows
  | 'bad-length' // a length field outside its limit
  | 'bad-utf8' // text that is not valid UTF-8
  | 'bad-value'; // a field whose value is outside its domain

export class WireError extends Error {
  constructor(
    readonly code: WireErrorCode,
    readonly detail: string,
  ) {
    super(`${code}: ${detail}`);
    this.name = 'WireError';
  }
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: WireError };

/** Runs a decoder, turning WireError into a typed failure. Other exceptions are bugs and propagate. */
export function decodeWith<T>(bytes: Uint8Array, decode: (r: Reader) => T, allowTrailing = false): Decoded<T> {
  try {
    const r = new Reader(bytes);
    const value = decode(r);
    if (!allowTrailing && r.remaining !== 0) throw new WireError('trailing', `${r.remaining} bytes after value`);
    return { ok: true, value };
  } catch (e) {
    if (e instanceof WireError) return { ok: false, error: e };
    throw e;
  }
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

export function utf8Bytes(s: string): Uint8Array {
  return utf8Encoder.encode(s);
}

/** Strict UTF-8 decode; returns null for invalid input (overlongs, surrogates, truncation). */
export function utf8Text(b: Uint8Array): string | null {
  try {
    return utf8Decoder.decode(b);
  } catch {
    return null;
  }
}

/** Longest text Reader.text decodes without TextDecoder when it is ASCII (an argument list for fromCharCode).
 * Node 20 on the AMD EPYC VM: fromCharCode 88–106 ns up to 12 bytes, 133 at 16, 563 at 100; TextDecoder
 * 96–120 ns at any of these. So names and rooms take the fast path and message bodies do not. */
const ASCII_FAST_MAX = 12;

/** Big-endian 32-bit unsigned at b[p..p+4), which the caller has checked is in range. */
function be32(b: Uint8Array, p: number): number {
  return b[p]! * 0x100_0000 + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
}

/** Largest value a QUIC-style varint carries here; 2^53-1 keeps it exact in a JS number. */
export const VARINT_MAX = Number.MAX_SAFE_INTEGER;

export class Reader {
  private pos = 0;

  // Reads index the bytes directly: a DataView per decode was an allocation, and asking a small typed
  // array for its .buffer makes V8 move its bytes off the heap (a malloc and a copy) on every packet.
  constructor(readonly bytes: Uint8Array) {}

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.bytes.length - this.pos;
  }

  private need(n: number, what: string): void {
    if (n > this.remaining) throw new WireError('truncated', `${what}: need ${n}, have ${this.remaining}`);
  }

  u8(what = 'u8'): number {
    this.need(1, what);
    return this.bytes[this.pos++]!;
  }

  u16(what = 'u16'): number {
    this.need(2, what);
    const b = this.bytes;
    const p = this.pos;
    this.pos += 2;
    return (b[p]! << 8) | b[p + 1]!;
  }

  u32(what = 'u32'): number {
    this.need(4, what);
    const v = be32(this.bytes, this.pos);
    this.pos += 4;
    return v;
  }

  /** 64-bit big-endian unsigned, must fit in 2^53-1. */
  u64(what = 'u64'): number {
    this.need(8, what);
    const hi = be32(this.bytes, this.pos);
    const lo = be32(this.bytes, this.pos + 4);
    if (hi > 0x1f_ffff) throw new WireError('bad-value', `${what}: exceeds 2^53`);
    this.pos += 8;
    return hi * 0x1_0000_0000 + lo;
  }

  /** QUIC variable-length integer (RFC 9000 §16), limited to [0, max]. Non-minimal encodings are accepted, as in QUIC. */
  varint(what = 'varint', max = VARINT_MAX): number {
    this.need(1, what);
    const b = this.bytes;
    const first = b[this.pos]!;
    const len = 1 << (first >> 6);
    this.need(len, what);
    let v = first & 0x3f;
    for (let i = 1; i < len; i++) v = v * 256 + b[this.pos + i]!;
    if (v > max) throw new WireError('bad-varint', `${what}: ${v} > ${max}`);
    this.pos += len;
    return v;
  }

  bytesN(n: number, what = 'bytes'): Uint8Array {
    this.need(n, what);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Length-prefixed (varint) bytes with a maximum length. */
  lenBytes(max: number, what = 'bytes'): Uint8Array {
    const n = this.varint(`${what} length`);
    if (n > max) throw new WireError('bad-length', `${what}: ${n} > ${max}`);
    return this.bytesN(n, what);
  }

  /** Length-prefixed strict UTF-8 text, at most maxBytes long. */
  text(maxBytes: number, what = 'text'): string {
    const b = this.lenBytes(maxBytes, what);
    // Short ASCII (names, rooms) without the decoder: every byte below 0x80 is valid UTF-8 as it is.
    if (b.length <= ASCII_FAST_MAX) {
      let i = 0;
      while (i < b.length && (b[i] as number) < 0x80) i++;
      if (i === b.length) return String.fromCharCode.apply(null, b as unknown as number[]);
    }
    const s = utf8Text(b);
    if (s === null) throw new WireError('bad-utf8', what);
    return s;
  }

  rest(): Uint8Array {
    const out = this.bytes.subarray(this.pos);
    this.pos = this.bytes.length;
    return out;
  }
}

export function varintSize(v: number): number {
  if (v < 0x40) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x4000_0000) return 4;
  return 8;
}

export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;

  constructor(initial = 256) {
    this.buf = new Uint8Array(initial);
    this.view = new DataView(this.buf.buffer);
  }

  get length(): number {
    return this.pos;
  }

  /** Empties the writer for reuse, with room for at least `capacity` bytes. */
  reset(capacity = 0): this {
    this.pos = 0;
    if (this.buf.length < capacity) {
      this.buf = new Uint8Array(capacity);
      this.view = new DataView(this.buf.buffer);
    }
    return this;
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.room(1);
    this.view.setUint8(this.pos++, v);
    return this;
  }

  u16(v: number): this {
    this.room(2);
    this.view.setUint16(this.pos, v);
    this.pos += 2;
    return this;
  }

  u32(v: number): this {
    this.room(4);
    this.view.setUint32(this.pos, v);
    this.pos += 4;
    return this;
  }

  u64(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`u64 out of range: ${v}`);
    this.room(8);
    this.view.setUint32(this.pos, Math.floor(v / 0x1_0000_0000));
    this.view.setUint32(this.pos + 4, v >>> 0);
    this.pos += 8;
    return this;
  }

  varint(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint out of range: ${v}`);
    const n = varintSize(v);
    this.room(n);
    if (n === 1) {
      this.view.setUint8(this.pos, v);
    } else if (n === 2) {
      this.view.setUint16(this.pos, v | 0x4000);
    } else if (n === 4) {
      this.view.setUint32(this.pos, (v | 0x8000_0000) >>> 0);
    } else {
      this.view.setUint32(this.pos, (Math.floor(v / 0x1_0000_0000) | 0xc000_0000) >>> 0);
      this.view.setUint32(this.pos + 4, v >>> 0);
    }
    this.pos += n;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  lenBytes(b: Uint8Array): this {
    return this.varint(b.length).bytes(b);
  }

  text(s: string): this {
    // ASCII (names, most chat) is written in place: no encoder call and no temporary array per string.
    const n = s.length;
    const head = varintSize(n);
    this.room(head + n);
    const buf = this.buf;
    let p = this.pos + head;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      buf[p++] = c;
    }
    if (i < n) return this.lenBytes(utf8Bytes(s)); // not ASCII: what was copied is overwritten
    this.varint(n);
    this.pos += n;
    return this;
  }

  zeros(n: number): this {
    this.room(n);
    this.buf.fill(0, this.pos, this.pos + n);
    this.pos += n;
    return this;
  }

  /** The written bytes (a copy-free view, valid until the writer is reset or written again). */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }

  /** The memory written so far is memory[0, length): no view made (valid until the next write or reset). */
  get memory(): Uint8Array {
    return this.buf;
  }
}
