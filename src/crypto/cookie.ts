// Stateless address-validation cookies (docs/PROTOCOL.md "COOKIE"): a MAC over the client's address, its
// connection id and a time window, under a secret the server rotates. The server keeps no per-address
// state to issue or check one.

import { timingSafeEqual } from 'node:crypto';
import { backend } from './primitives.js';
import { COOKIE_SECRET_ROTATE_MS, COOKIE_WINDOW_MS } from '../limits.js';

const MAC_LEN = 16;
export const COOKIE_LEN = 4 + MAC_LEN;
const LABEL = Buffer.from('obrol cookie', 'ascii');

export interface CookieAddress {
  address: string;
  port: number;
}

export class CookieJar {
  private secret: Uint8Array;
  private previous: Uint8Array | null = null;
  private rotatedAt: number;

  constructor(
    private readonly randomSecret: () => Uint8Array,
    now: number,
  ) {
    this.secret = randomSecret();
    this.rotatedAt = now;
  }

  private rotate(now: number): void {
    if (now - this.rotatedAt < COOKIE_SECRET_ROTATE_MS) return;
    // After a long pause both secrets are stale: a cookie outlives at most one rotation.
    this.previous = now - this.rotatedAt < 2 * COOKIE_SECRET_ROTATE_MS ? this.secret : null;
    this.secret = this.randomSecret();
    this.rotatedAt = now;
  }

  private mac(secret: Uint8Array, window: number, addr: CookieAddress, cid: Uint8Array): Uint8Array {
    const head = Buffer.alloc(6);
    head.writeUInt32BE(window >>> 0, 0);
    head.writeUInt16BE(addr.port & 0xffff, 4);
    const parts = [LABEL, head.subarray(0, 4), Buffer.from(addr.address, 'utf8'), head.subarray(4), cid];
    return backend.hmacSha256(secret, parts).subarray(0, MAC_LEN);
  }

  mint(now: number, addr: CookieAddress, cid: Uint8Array): Uint8Array {
    this.rotate(now);
    const window = Math.floor(now / COOKIE_WINDOW_MS);
    const out = new Uint8Array(COOKIE_LEN);
    new DataView(out.buffer).setUint32(0, window >>> 0);
    out.set(this.mac(this.secret, window, addr, cid), 4);
    return out;
  }

  verify(now: number, addr: CookieAddress, cid: Uint8Array, cookie: Uint8Array): boolean {
    if (cookie.length !== COOKIE_LEN) return false;
    this.rotate(now);
    const window = new DataView(cookie.buffer, cookie.byteOffset, cookie.byteLength).getUint32(0);
    const current = Math.floor(now / COOKIE_WINDOW_MS) >>> 0;
    // Valid in its own window and the next one.
    if (window !== current && window !== ((current - 1) >>> 0)) return false;
    const given = cookie.subarray(4);
    for (const secret of [this.secret, this.previous]) {
      if (secret !== null && timingSafeEqual(this.mac(secret, window, addr, cid), given)) return true;
    }
    return false;
  }
}
