// Many sessions' packet keys in one Uint8Array, a fixed-size record each, so sealing or opening a packet
// reaches its key in one cache line of one hot object instead of a typed array, its ArrayBuffer and an
// off-heap block, three cold reads each time a server touches an idle session (docs/PERFORMANCE.md).
// The aead addon takes (bytes, offset) for the key. Records are zeroed when released.

export class KeyTable {
  /** The records; replaced by a larger copy when the table grows, so read it at each use, never keep it. */
  bytes: Uint8Array;
  private readonly free: number[] = [];
  private top = 0;
  private inUse = 0;
  /** 1 for each record handed out: a second release of one would give two sessions the same keys. */
  private live: Uint8Array;

  constructor(
    /** Bytes per record (a multiple of 32). */
    readonly recordBytes: number,
    initialRecords = 16,
  ) {
    if (!Number.isInteger(recordBytes) || recordBytes <= 0 || recordBytes % 32 !== 0) throw new RangeError('recordBytes must be a positive multiple of 32');
    this.bytes = new Uint8Array(recordBytes * Math.max(1, initialRecords));
    this.live = new Uint8Array(Math.max(1, initialRecords));
  }

  /** Records handed out and not released. */
  get records(): number {
    return this.inUse;
  }

  /** A zeroed record; its offset in bytes. */
  alloc(): number {
    this.inUse++;
    let at = this.free.pop();
    if (at === undefined) {
      if (this.top + this.recordBytes > this.bytes.length) {
        const grown = new Uint8Array(this.bytes.length * 2);
        grown.set(this.bytes);
        this.bytes = grown;
        const live = new Uint8Array(this.live.length * 2);
        live.set(this.live);
        this.live = live;
      }
      at = this.top;
      this.top += this.recordBytes;
    }
    this.live[at / this.recordBytes] = 1;
    return at;
  }

  /** Wipes the record at offset and takes it back. */
  release(offset: number): void {
    if (!Number.isInteger(offset) || offset < 0 || offset % this.recordBytes !== 0 || offset >= this.top || this.live[offset / this.recordBytes] !== 1) {
      throw new RangeError(`no record in use at ${offset}`);
    }
    this.live[offset / this.recordBytes] = 0;
    this.bytes.fill(0, offset, offset + this.recordBytes);
    this.free.push(offset);
    this.inUse--;
  }
}
