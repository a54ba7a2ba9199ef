// Noise_XX_25519_ChaChaPoly_SHA256 (Noise Protocol Framework, revision 34): SHA-256 from node:crypto,
// ChaCha20-Poly1305 and X25519 from ./primitives.ts (libsodium, or node:crypto where it cannot load).
//
// Why XX: the client learns the server's static key during the handshake, so it can pin it on first use
// and refuse a changed key later (as ssh does); and the handshake carries the client's static key, to
// which the server binds the client's name. Transport messages use explicit nonces (the packet number
// travels in clear), as WireGuard does, because UDP reorders and loses packets.

import { createHash, randomBytes } from 'node:crypto';
import { backend } from './primitives.js';

export const PROTOCOL_NAME = 'Noise_XX_25519_ChaChaPoly_SHA256';
const DHLEN = 32;
const HASHLEN = 32;
export const TAGLEN = 16;

/** Malformed or unauthenticated handshake input; callers catch it and drop the packet. */
export class NoiseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoiseError';
  }
}

export interface KeyPair {
  publicKey: Uint8Array;
  privateKey: Uint8Array;
}

/** A 32-byte ChaCha20-Poly1305 key for one direction of a session. */
export type TransportKey = Uint8Array;

export function generateKeyPair(): KeyPair {
  const privateKey = new Uint8Array(randomBytes(DHLEN));
  return { publicKey: backend.x25519Base(privateKey), privateKey };
}

/** The key pair of a raw 32-byte private key (for fixed keys in test vectors and key files). */
export function keyPairFromPrivate(privateKey: Uint8Array): KeyPair {
  if (privateKey.length !== DHLEN) throw new NoiseError('a private key is 32 bytes');
  return { publicKey: backend.x25519Base(privateKey), privateKey: new Uint8Array(privateKey) };
}

/** X25519. A result of all zeros means a low-order public key: refused, as the Noise spec allows. */
export function dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  if (publicKey.length !== DHLEN) throw new NoiseError('a public key is 32 bytes');
  const out = backend.x25519(privateKey, publicKey);
  if (out === null) throw new NoiseError('invalid or low-order public key');
  return out;
}

/** "SHA256:" and the unpadded base64 of SHA-256 of the public key, as ssh prints fingerprints. */
export function fingerprint(publicKey: Uint8Array): string {
  return 'SHA256:' + createHash('sha256').update(publicKey).digest('base64').replace(/=+$/, '');
}

// ---- AEAD with explicit nonces ----------------------------------------------------------------

const nonceBuf = Buffer.alloc(12);
const MAX_NONCE = 2n ** 64n - 1n;

function setNonce(n: number | bigint): Buffer {
  // Noise's ChaChaPoly nonce: 32 zero bits, then the counter as 64-bit little-endian.
  nonceBuf.writeUInt32LE(0, 0);
  if (typeof n === 'number' && Number.isSafeInteger(n) && n >= 0) {
    // The common case, without a BigInt per packet.
    nonceBuf.writeUInt32LE(n % 2 ** 32, 4);
    nonceBuf.writeUInt32LE(Math.floor(n / 2 ** 32), 8);
  } else nonceBuf.writeBigUInt64LE(BigInt(n), 4);
  return nonceBuf;
}

/** ChaCha20-Poly1305 encryption; returns ciphertext followed by the 16-byte tag. */
export function seal(key: TransportKey, nonce: number | bigint, ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const out = new Uint8Array(plaintext.length + TAGLEN);
  sealInto(key, nonce, ad, plaintext, out, 0);
  return out;
}

/** seal() writing ciphertext and tag into `out` at `offset` (a datagram after its header: one allocation). */
export function sealInto(key: TransportKey, nonce: number | bigint, ad: Uint8Array, plaintext: Uint8Array, out: Uint8Array, offset: number): void {
  backend.sealInto(key, setNonce(nonce), ad, plaintext, out, offset);
}

/** A datagram sealed in place: plaintext[0, length) goes, encrypted and tagged, right after the header at
 * buf[offset, offset + headerLen), which is the AD, under the key at keys[keyOffset, keyOffset + 32) (a
 * KeyTable's bytes, or any array holding the key). One native call and no views where the backend has
 * sealPacket (the aead addon); the same bytes through sealInto otherwise. */
export function sealPacket(keys: Uint8Array, keyOffset: number, nonce: number, buf: Uint8Array, offset: number, headerLen: number, plaintext: Uint8Array, length: number): void {
  if (backend.sealPacket !== undefined && Number.isSafeInteger(nonce) && nonce >= 0) {
    backend.sealPacket(keys, keyOffset, nonce, buf, offset, headerLen, plaintext, length);
    return;
  }
  if (length > plaintext.length) throw new RangeError('length is beyond plaintext');
  const key = keys.subarray(keyOffset, keyOffset + 32);
  backend.sealInto(key, setNonce(nonce), buf.subarray(offset, offset + headerLen), plaintext.subarray(0, length), buf, offset + headerLen);
}

/** A datagram opened in place: buf[offset, offset + length) is the header (the AD), the ciphertext and the
 * tag. True, with the plaintext over the ciphertext, when it authenticates under the key at
 * keys[keyOffset, keyOffset + 32); false, and nothing written, otherwise. Never throws on bad input. */
export function openPacket(keys: Uint8Array, keyOffset: number, nonce: number, buf: Uint8Array, offset: number, headerLen: number, length: number): boolean {
  if (length < headerLen + TAGLEN || offset + length > buf.length) return false;
  if (backend.openPacket !== undefined && Number.isSafeInteger(nonce) && nonce >= 0) {
    return backend.openPacket(keys, keyOffset, nonce, buf, offset, headerLen, length);
  }
  const key = keys.subarray(keyOffset, keyOffset + 32);
  const body = offset + headerLen;
  const plain = backend.open(key, setNonce(nonce), buf.subarray(offset, body), buf.subarray(body, offset + length));
  if (plain === null) return false;
  buf.set(plain, body);
  return true;
}

/** ChaCha20-Poly1305 decryption; null when the tag does not authenticate. Never throws on bad input. */
export function open(key: TransportKey, nonce: number | bigint, ad: Uint8Array, sealed: Uint8Array): Uint8Array | null {
  return backend.open(key, setNonce(nonce), ad, sealed);
}

/** Noise REKEY(k): the first 32 bytes of ENCRYPT(k, 2^64-1, empty, 32 zero bytes). */
export function rekey(key: TransportKey): TransportKey {
  return seal(key, MAX_NONCE, new Uint8Array(0), new Uint8Array(32)).subarray(0, 32);
}

// ---- Symmetric state ---------------------------------------------------------------------------

function hash(...parts: Uint8Array[]): Uint8Array {
  return backend.sha256(parts);
}

function hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  return backend.hmacSha256(key, parts);
}

/** Noise HKDF with two outputs. */
function hkdf2(ck: Uint8Array, ikm: Uint8Array): [Uint8Array, Uint8Array] {
  const temp = hmac(ck, ikm);
  const out1 = hmac(temp, Uint8Array.of(1));
  const out2 = hmac(temp, out1, Uint8Array.of(2));
  return [out1, out2];
}

class SymmetricState {
  private ck: Uint8Array;
  h: Uint8Array;
  private k: Uint8Array | null = null;
  private n = 0n;

  constructor(prologue: Uint8Array) {
    const name = Buffer.from(PROTOCOL_NAME, 'ascii');
    // A name of at most HASHLEN bytes is used as h directly, zero-padded (ours is exactly 32).
    if (name.length <= HASHLEN) {
      this.h = new Uint8Array(HASHLEN);
      this.h.set(name);
    } else this.h = hash(name);
    this.ck = this.h.slice();
    this.mixHash(prologue);
  }

  mixHash(data: Uint8Array): void {
    this.h = hash(this.h, data);
  }

  mixKey(ikm: Uint8Array): void {
    const [ck, k] = hkdf2(this.ck, ikm);
    this.ck = ck;
    this.k = k.subarray(0, 32);
    this.n = 0n;
  }

  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    let out: Uint8Array;
    if (this.k === null) out = plaintext;
    else out = seal(this.k, this.n++, this.h, plaintext);
    this.mixHash(out);
    return out;
  }

  decryptAndHash(ciphertext: Uint8Array): Uint8Array {
    let out: Uint8Array;
    if (this.k === null) out = ciphertext;
    else {
      const p = open(this.k, this.n, this.h, ciphertext);
      if (p === null) throw new NoiseError('handshake message does not authenticate');
      this.n++;
      out = p;
    }
    this.mixHash(ciphertext);
    return out;
  }

  split(): [TransportKey, TransportKey] {
    const [k1, k2] = hkdf2(this.ck, new Uint8Array(0));
    return [k1.subarray(0, 32), k2.subarray(0, 32)];
  }
}

// ---- The XX handshake --------------------------------------------------------------------------

export interface HandshakeOptions {
  initiator: boolean;
  prologue: Uint8Array;
  staticKey: KeyPair;
  /** A fixed ephemeral key, for test vectors only. */
  ephemeral?: KeyPair;
}

/**
 *   -> e
 *   <- e, ee, s, es
 *   -> s, se
 */
export class NoiseHandshake {
  private readonly ss: SymmetricState;
  private readonly s: KeyPair;
  private e: KeyPair | null = null;
  private re: Uint8Array | null = null;
  private rs: Uint8Array | null = null;
  /** Index of the next message pattern (0, 1, 2); 3 when complete. */
  private step = 0;
  private failed = false;

  constructor(private readonly opts: HandshakeOptions) {
    this.ss = new SymmetricState(opts.prologue);
    this.s = opts.staticKey;
  }

  get complete(): boolean {
    return this.step === 3;
  }

  /** The peer's static public key, once a message carrying it has been read. */
  get remoteStatic(): Uint8Array | null {
    return this.rs;
  }

  get handshakeHash(): Uint8Array {
    return this.ss.h;
  }

  private myTurn(): boolean {
    // The initiator writes messages 0 and 2, the responder message 1.
    return this.opts.initiator === (this.step % 2 === 0);
  }

  private newEphemeral(): KeyPair {
    const e = this.opts.ephemeral ?? generateKeyPair();
    this.e = e;
    this.ss.mixHash(e.publicKey);
    return e;
  }

  writeMessage(payload: Uint8Array): Uint8Array {
    if (this.failed) throw new NoiseError('handshake already failed');
    if (this.step >= 3 || !this.myTurn()) throw new Error('not our turn to write a handshake message');
    const parts: Uint8Array[] = [];
    switch (this.step) {
      case 0: // -> e
        parts.push(this.newEphemeral().publicKey);
        break;
      case 1: // <- e, ee, s, es
        parts.push(this.newEphemeral().publicKey);
        this.ss.mixKey(dh(this.e!.privateKey, this.re!));
        parts.push(this.ss.encryptAndHash(this.s.publicKey));
        this.ss.mixKey(dh(this.s.privateKey, this.re!));
        break;
      case 2: // -> s, se
        parts.push(this.ss.encryptAndHash(this.s.publicKey));
        this.ss.mixKey(dh(this.s.privateKey, this.re!));
        break;
    }
    parts.push(this.ss.encryptAndHash(payload));
    this.step++;
    return Buffer.concat(parts);
  }

  readMessage(message: Uint8Array): Uint8Array {
    if (this.failed) throw new NoiseError('handshake already failed');
    if (this.step >= 3 || this.myTurn()) throw new NoiseError('unexpected handshake message');
    try {
      let off = 0;
      const take = (n: number): Uint8Array => {
        if (message.length - off < n) throw new NoiseError('handshake message too short');
        const out = message.subarray(off, off + n);
        off += n;
        return out;
      };
      switch (this.step) {
        case 0: // -> e
          this.re = take(DHLEN).slice();
          this.ss.mixHash(this.re);
          break;
        case 1: // <- e, ee, s, es
          this.re = take(DHLEN).slice();
          this.ss.mixHash(this.re);
          this.ss.mixKey(dh(this.e!.privateKey, this.re));
          this.rs = this.ss.decryptAndHash(take(DHLEN + TAGLEN)).slice();
          this.ss.mixKey(dh(this.e!.privateKey, this.rs));
          break;
        case 2: // -> s, se
          this.rs = this.ss.decryptAndHash(take(DHLEN + TAGLEN)).slice();
          this.ss.mixKey(dh(this.e!.privateKey, this.rs));
          break;
      }
      const payload = this.ss.decryptAndHash(message.subarray(off)).slice();
      this.step++;
      return payload;
    } catch (e) {
      this.failed = true; // a handshake state is single-use once input fails to authenticate
      throw e instanceof NoiseError ? e : new NoiseError(String(e));
    }
  }

  /** Transport keys after the last message: `send` encrypts what this side sends. */
  split(): { send: TransportKey; recv: TransportKey } {
    if (!this.complete) throw new Error('handshake not complete');
    const [c1, c2] = this.ss.split();
    return this.opts.initiator ? { send: c1, recv: c2 } : { send: c2, recv: c1 };
  }
}
