// ChaCha20-Poly1305 from native/aead.c (built into build/aead.node by `npm run build`): RFC 8439's AEAD
// on the ChaCha20 and Poly1305 of the OpenSSL inside this node, which the addon finds at load time and
// checks against the RFC 8439 test vector. About twice as fast as libsodium's portable ChaCha20 for
// chat-sized packets (docs/PERFORMANCE.md). Absent or unusable, primitives.ts keeps libsodium.

import { loadAddon, type AddonLoad } from '../util/native-addon.js';

/** The addon's exports (see native/aead.c for the exact contract). */
export interface AeadAddon {
  /** Writes ciphertext then the 16-byte tag at out[offset ..). */
  seal(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, plaintext: Uint8Array, out: Uint8Array, offset: number): void;
  /** Seals plaintext[0, length) right after the header at buf[offset, offset + headerLen), which is the
   * AD, under Noise's nonce for counter (an integer below 2^53) and the key at keys[keyOffset ..). */
  sealPacket(keys: Uint8Array, keyOffset: number, counter: number, buf: Uint8Array, offset: number, headerLen: number, plaintext: Uint8Array, length: number): void;
  /** Opens buf[offset, offset + length) (header, ciphertext, tag) in place: true and the plaintext over the
   * ciphertext when the tag authenticates; false and nothing written otherwise. */
  openPacket(keys: Uint8Array, keyOffset: number, counter: number, buf: Uint8Array, offset: number, headerLen: number, length: number): boolean;
  /** Writes sealed.length - 16 bytes of plaintext into out when the tag authenticates; false otherwise. */
  open(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, sealed: Uint8Array, out: Uint8Array): boolean;
  readonly available: boolean;
  readonly reason: string;
  readonly abi: number;
}

const AEAD_ABI = 3;

function isAeadAddon(x: unknown): x is AeadAddon {
  if (typeof x !== 'object' || x === null) return false;
  const a = x as Record<string, unknown>;
  return typeof a.seal === 'function' && typeof a.sealPacket === 'function' && typeof a.openPacket === 'function' && typeof a.open === 'function' && typeof a.available === 'boolean' && typeof a.reason === 'string' && a.abi === AEAD_ABI;
}

let state: AddonLoad<AeadAddon> | undefined;

/** The addon when it is built, loads and passed its self-test; else null (aeadAddonError says why). */
export function loadAeadAddon(): AeadAddon | null {
  if (state) return state.addon;
  const loaded = loadAddon('aead', isAeadAddon);
  // It loads without the OpenSSL symbols, and says so: then it is not used.
  state = loaded.addon !== null && !loaded.addon.available ? { addon: null, error: loaded.addon.reason } : loaded;
  return state.addon;
}

/** Why the addon is not in use, or null if it is. */
export function aeadAddonError(): string | null {
  loadAeadAddon();
  return state?.error ?? null;
}
