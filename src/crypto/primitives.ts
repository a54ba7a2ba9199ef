// The primitives Noise needs per packet and per handshake, ChaCha20-Poly1305 (RFC 8439), X25519
// (RFC 7748) and SHA-256 with its HMAC (FIPS 180-4, RFC 2104), from implementations of the same
// published algorithms:
// - libsodium through sodium-native (prebuilt, shipped inside the npm package): one native call per
//   packet, measured about 10x cheaper than node:crypto for chat-sized packets (docs/PERFORMANCE.md);
// - node:crypto, when sodium-native cannot load here, or when OBROL_CRYPTO=node asks for it;
// - for the per-packet AEAD only, the ChaCha20 and Poly1305 of node's own OpenSSL through the aead addon
//   (./native-aead.ts), about twice as fast again, unless OBROL_CRYPTO names a backend.
// All produce the same bytes; test/crypto.test.ts checks them against each other, RFC 8439's and
// RFC 4231's vectors and the Noise vector.

import { createRequire } from 'node:module';
import { createCipheriv, createDecipheriv, createHash, createHmac, createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from 'node:crypto';
import { loadAeadAddon, type AeadAddon } from './native-aead.js';
import { pooledBytes } from '../util/bytes.js';

export const AEAD_KEY_LEN = 32;
export const AEAD_NONCE_LEN = 12;
export const AEAD_TAG_LEN = 16;
export const X25519_LEN = 32;
export const SHA256_LEN = 32;
/** SHA-256's block size, which HMAC pads its key to. */
const SHA256_BLOCK = 64;

export interface CryptoBackend {
  /** Who does X25519 and SHA-256. */
  readonly name: 'libsodium' | 'node:crypto';
  /** Who does ChaCha20-Poly1305: the same as name, or OpenSSL through the aead addon. */
  readonly aead: 'libsodium' | 'node:crypto' | 'openssl';
  /** Writes ciphertext then tag into out[offset .. offset + plaintext.length + 16). */
  sealInto(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, plaintext: Uint8Array, out: Uint8Array, offset: number): void;
  /** Where a backend can: seals plaintext[0, length) in place right after the header at
   * buf[offset, offset + headerLen) (the AD), under Noise's nonce for counter (an integer below 2^53) and
   * the key at keys[keyOffset, keyOffset + 32). noise.ts's sealPacket does the same with views elsewhere. */
  sealPacket?(keys: Uint8Array, keyOffset: number, counter: number, buf: Uint8Array, offset: number, headerLen: number, plaintext: Uint8Array, length: number): void;
  /** Where a backend can: opens buf[offset, offset + length) (header as AD, ciphertext, tag) in place, the
   * plaintext over the ciphertext; false, and nothing written, when the tag does not authenticate.
   * noise.ts's openPacket does the same with views and a copy elsewhere. */
  openPacket?(keys: Uint8Array, keyOffset: number, counter: number, buf: Uint8Array, offset: number, headerLen: number, length: number): boolean;
  /** The plaintext, or null when the tag does not authenticate. Never throws on bad input. */
  open(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, sealed: Uint8Array): Uint8Array | null;
  /** X25519(k, u); null for a result of all zeros (a low-order point) or a malformed input. */
  x25519(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | null;
  /** X25519(k, 9): the public key of a private key. */
  x25519Base(privateKey: Uint8Array): Uint8Array;
  /** SHA-256 of the parts, in order. */
  sha256(parts: readonly Uint8Array[]): Uint8Array;
  /** HMAC-SHA-256 (RFC 2104) under key of the parts, in order. */
  hmacSha256(key: Uint8Array, parts: readonly Uint8Array[]): Uint8Array;
}

/** The subset of sodium-native used here (it ships no type definitions). */
interface Sodium {
  crypto_aead_chacha20poly1305_ietf_encrypt(c: Uint8Array, m: Uint8Array, ad: Uint8Array | null, nsec: null, npub: Uint8Array, k: Uint8Array): number;
  crypto_aead_chacha20poly1305_ietf_decrypt(m: Uint8Array, nsec: null, c: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array): number;
  crypto_scalarmult(q: Uint8Array, n: Uint8Array, p: Uint8Array): void;
  crypto_scalarmult_base(q: Uint8Array, n: Uint8Array): void;
  crypto_hash_sha256(out: Uint8Array, m: Uint8Array): void;
}

/** The parts back to back in one buffer from Node's pool, after `pad` bytes left for the caller. */
function joined(pad: number, parts: readonly Uint8Array[]): Buffer {
  let n = pad;
  for (const p of parts) n += p.length;
  const buf = Buffer.allocUnsafe(n);
  let at = pad;
  for (const p of parts) {
    buf.set(p, at);
    at += p.length;
  }
  return buf;
}

function sodiumBackend(s: Sodium): CryptoBackend {
  return {
    name: 'libsodium',
    aead: 'libsodium',
    sealInto(key, nonce, ad, plaintext, out, offset) {
      s.crypto_aead_chacha20poly1305_ietf_encrypt(out.subarray(offset, offset + plaintext.length + AEAD_TAG_LEN), plaintext, ad, null, nonce, key);
    },
    open(key, nonce, ad, sealed) {
      if (sealed.length < AEAD_TAG_LEN || key.length !== AEAD_KEY_LEN || nonce.length !== AEAD_NONCE_LEN) return null;
      const out = pooledBytes(sealed.length - AEAD_TAG_LEN);
      try {
        s.crypto_aead_chacha20poly1305_ietf_decrypt(out, null, sealed, ad, nonce, key);
        return out;
      } catch {
        return null; // libsodium refuses a forged tag by throwing
      }
    },
    x25519(privateKey, publicKey) {
      if (privateKey.length !== X25519_LEN || publicKey.length !== X25519_LEN) return null;
      const out = new Uint8Array(X25519_LEN);
      try {
        s.crypto_scalarmult(out, privateKey, publicKey); // throws on an all-zero result
      } catch {
        return null;
      }
      return out;
    },
    x25519Base(privateKey) {
      const out = new Uint8Array(X25519_LEN);
      s.crypto_scalarmult_base(out, privateKey);
      return out;
    },
    sha256(parts) {
      const out = new Uint8Array(SHA256_LEN);
      s.crypto_hash_sha256(out, joined(0, parts));
      return out;
    },
    // RFC 2104 over libsodium's SHA-256 (which has no HMAC-SHA-256 export here): H((K ^ opad) || H((K ^ ipad) || m)).
    // Two native calls, against a createHmac object per call: Noise's HKDF makes three per mixKey.
    hmacSha256(key, parts) {
      let k = key;
      if (k.length > SHA256_BLOCK) {
        k = new Uint8Array(SHA256_LEN);
        s.crypto_hash_sha256(k, key);
      }
      const inner = joined(SHA256_BLOCK, parts);
      const outer = Buffer.allocUnsafe(SHA256_BLOCK + SHA256_LEN);
      for (let i = 0; i < SHA256_BLOCK; i++) {
        const b = i < k.length ? (k[i] as number) : 0;
        inner[i] = b ^ 0x36;
        outer[i] = b ^ 0x5c;
      }
      s.crypto_hash_sha256(outer.subarray(SHA256_BLOCK), inner);
      const out = new Uint8Array(SHA256_LEN);
      s.crypto_hash_sha256(out, outer);
      return out;
    },
  };
}

// DER prefixes that turn raw X25519 keys into what node:crypto imports (RFC 8410).
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

function privateKeyObject(raw: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
}

function publicKeyObject(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

export const nodeBackend: CryptoBackend = {
  name: 'node:crypto',
  aead: 'node:crypto',
  sealInto(key, nonce, ad, plaintext, out, offset) {
    const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_LEN });
    c.setAAD(ad, { plaintextLength: plaintext.length });
    const body = c.update(plaintext);
    c.final();
    out.set(body, offset);
    out.set(c.getAuthTag(), offset + body.length);
  },
  open(key, nonce, ad, sealed) {
    if (sealed.length < AEAD_TAG_LEN) return null;
    const ctLen = sealed.length - AEAD_TAG_LEN;
    try {
      const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_LEN });
      d.setAAD(ad, { plaintextLength: ctLen });
      d.setAuthTag(sealed.subarray(ctLen));
      const body = d.update(sealed.subarray(0, ctLen));
      d.final();
      return new Uint8Array(body.buffer, body.byteOffset, body.length);
    } catch {
      return null;
    }
  },
  x25519(privateKey, publicKey) {
    if (privateKey.length !== X25519_LEN || publicKey.length !== X25519_LEN) return null;
    let out: Buffer;
    try {
      out = diffieHellman({ privateKey: privateKeyObject(privateKey), publicKey: publicKeyObject(publicKey) });
    } catch {
      return null;
    }
    return out.every((b) => b === 0) ? null : new Uint8Array(out);
  },
  x25519Base(privateKey) {
    const pub = createPublicKey(privateKeyObject(privateKey)).export({ format: 'der', type: 'spki' });
    return new Uint8Array(pub.subarray(SPKI_PREFIX.length));
  },
  sha256(parts) {
    const h = createHash('sha256');
    for (const p of parts) h.update(p);
    return new Uint8Array(h.digest());
  },
  hmacSha256(key, parts) {
    const h = createHmac('sha256', key);
    for (const p of parts) h.update(p);
    return new Uint8Array(h.digest());
  },
};

/** base's primitives with ChaCha20-Poly1305 from the aead addon. */
function withNativeAead(base: CryptoBackend, a: AeadAddon): CryptoBackend {
  return {
    ...base,
    aead: 'openssl',
    sealInto(key, nonce, ad, plaintext, out, offset) {
      a.seal(key, nonce, ad, plaintext, out, offset);
    },
    sealPacket(keys, keyOffset, counter, buf, offset, headerLen, plaintext, length) {
      a.sealPacket(keys, keyOffset, counter, buf, offset, headerLen, plaintext, length);
    },
    openPacket(keys, keyOffset, counter, buf, offset, headerLen, length) {
      return a.openPacket(keys, keyOffset, counter, buf, offset, headerLen, length);
    },
    open(key, nonce, ad, sealed) {
      if (sealed.length < AEAD_TAG_LEN || key.length !== AEAD_KEY_LEN || nonce.length !== AEAD_NONCE_LEN) return null;
      const out = pooledBytes(sealed.length - AEAD_TAG_LEN);
      return a.open(key, nonce, ad, sealed, out) ? out : null;
    },
  };
}

/** libsodium when it loads and OBROL_CRYPTO is not "node"; node:crypto otherwise. */
function loadSodium(): CryptoBackend | null {
  if (process.env.OBROL_CRYPTO === 'node') return null;
  try {
    return sodiumBackend(createRequire(import.meta.url)('sodium-native') as Sodium);
  } catch {
    return null;
  }
}

export const sodium: CryptoBackend | null = loadSodium();
/** The aead addon's ChaCha20-Poly1305 over libsodium (or node:crypto), when the addon is usable; for tests. */
export const nativeAead: CryptoBackend | null = (() => {
  const a = loadAeadAddon();
  return a === null ? null : withNativeAead(sodium ?? nodeBackend, a);
})();
/** OBROL_CRYPTO=node or =sodium picks that backend for everything; by default the addon seals and opens. */
export const backend: CryptoBackend =
  process.env.OBROL_CRYPTO === 'node' ? nodeBackend : process.env.OBROL_CRYPTO === 'sodium' ? (sodium ?? nodeBackend) : (nativeAead ?? sodium ?? nodeBackend);
