// Outer packets: the unencrypted headers of every obrol datagram (docs/PROTOCOL.md "Packets").
// The first byte of every packet is in 0xF5..0xFF, which never starts valid UTF-8, so one port can
// also serve the original plain-text protocol.

import { HELLO_PADDED_SIZE } from '../limits.js';
import { decodeWith, type Decoded, WireError, Writer } from './buf.js';

/** 2: MSG_WHOLE and MSG_NEXT frames (a version-1 peer could not read them, so it is told so by RESET). */
export const PROTOCOL_VERSION = 2;
export const CID_LEN = 8;
/** Bytes before the ciphertext of a DATA packet: type, cid, packet number. Also its AEAD associated data. */
export const DATA_HEADER_LEN = 1 + CID_LEN + 4;
export const AEAD_TAG_LEN = 16;
export const COOKIE_MAX_LEN = 64;
/** Noise messages are small (XX message 2 is 96 bytes plus payload); this bounds what we parse. */
export const NOISE_MSG_MAX_LEN = 1024;

export const PacketType = {
  /** One byte, client to server, for NAT bindings only: no session, no authentication, no answer. */
  NatKeepalive: 0xf7,
  Hello: 0xf8,
  Cookie: 0xf9,
  HsReply: 0xfa,
  HsFinish: 0xfb,
  Data0: 0xfc,
  Data1: 0xfd,
  Reset: 0xfe,
} as const;

export const ResetCode = { UnknownSession: 1, BadVersion: 2, Busy: 3 } as const;
export type ResetCode = (typeof ResetCode)[keyof typeof ResetCode];

export type Packet =
  | { type: 'hello'; version: number; cid: Uint8Array; cookie: Uint8Array; noise: Uint8Array }
  | { type: 'cookie'; version: number; cid: Uint8Array; cookie: Uint8Array }
  | { type: 'hs-reply'; version: number; clientCid: Uint8Array; serverCid: Uint8Array; noise: Uint8Array }
  | { type: 'hs-finish'; version: number; cid: Uint8Array; noise: Uint8Array }
  /** header is the 13 bytes of associated data; sealed is ciphertext plus tag. */
  | { type: 'data'; keyPhase: 0 | 1; cid: Uint8Array; pn: number; header: Uint8Array; sealed: Uint8Array }
  | { type: 'reset'; version: number; cid: Uint8Array; code: ResetCode }
  | { type: 'nat-keepalive' };

/** True when a datagram's first byte marks it as obrol's rather than the original text protocol. */
export function isObrolDatagram(b: Uint8Array): boolean {
  return b.length > 0 && b[0]! >= 0xf5;
}

export function encodeHello(cid: Uint8Array, cookie: Uint8Array, noise: Uint8Array): Uint8Array {
  const w = new Writer(HELLO_PADDED_SIZE);
  w.u8(PacketType.Hello).u8(PROTOCOL_VERSION).bytes(cid).lenBytes(cookie).lenBytes(noise);
  if (w.length > HELLO_PADDED_SIZE) throw new RangeError('hello does not fit its padded size');
  w.zeros(HELLO_PADDED_SIZE - w.length);
  return w.finish();
}

export function encodeCookie(cid: Uint8Array, cookie: Uint8Array): Uint8Array {
  return new Writer(16 + cookie.length).u8(PacketType.Cookie).u8(PROTOCOL_VERSION).bytes(cid).lenBytes(cookie).finish();
}

export function encodeHsReply(clientCid: Uint8Array, serverCid: Uint8Array, noise: Uint8Array): Uint8Array {
  return new Writer(24 + noise.length)
    .u8(PacketType.HsReply)
    .u8(PROTOCOL_VERSION)
    .bytes(clientCid)
    .bytes(serverCid)
    .lenBytes(noise)
    .finish();
}

export function encodeHsFinish(serverCid: Uint8Array, noise: Uint8Array): Uint8Array {
  return new Writer(16 + noise.length).u8(PacketType.HsFinish).u8(PROTOCOL_VERSION).bytes(serverCid).lenBytes(noise).finish();
}

/** The NAT_KEEPALIVE datagram: its type byte alone. */
export function encodeNatKeepalive(): Uint8Array {
  return Uint8Array.of(PacketType.NatKeepalive);
}

export function encodeReset(cid: Uint8Array, code: ResetCode): Uint8Array {
  return new Writer(11).u8(PacketType.Reset).u8(PROTOCOL_VERSION).bytes(cid).u8(code).finish();
}

/** Writes the 13-byte DATA header into out[at, at + 13). */
export function writeDataHeader(out: Uint8Array, keyPhase: 0 | 1, cid: Uint8Array, pn: number, at = 0): void {
  writeDataHeaderFrom(out, at, keyPhase, cid, 0, pn);
}

/** writeDataHeader with the connection id at src[srcAt, srcAt + 8) (a session's record in a KeyTable):
 * byte by byte, which for 8 bytes is cheaper than set() and needs no view. */
export function writeDataHeaderFrom(out: Uint8Array, at: number, keyPhase: 0 | 1, src: Uint8Array, srcAt: number, pn: number): void {
  out[at] = PacketType.Data0 | keyPhase;
  for (let i = 0; i < CID_LEN; i++) out[at + 1 + i] = src[srcAt + i]!;
  // Big-endian by hand: a DataView per packet is an allocation on the hottest path.
  out[at + 1 + CID_LEN] = pn >>> 24;
  out[at + 2 + CID_LEN] = (pn >>> 16) & 0xff;
  out[at + 3 + CID_LEN] = (pn >>> 8) & 0xff;
  out[at + 4 + CID_LEN] = pn & 0xff;
}

/** Whether bytes is a DATA packet as decodePacket reads one (its type, and room for header and tag): then
 * dataKeyPhase, dataPn and the cid at bytes[1, 9) read its fields in place, with no views or objects. */
export function isDataPacket(bytes: Uint8Array): boolean {
  const t = bytes[0];
  return (t === PacketType.Data0 || t === PacketType.Data1) && bytes.length >= DATA_HEADER_LEN + AEAD_TAG_LEN;
}

export function dataKeyPhase(bytes: Uint8Array): 0 | 1 {
  return (bytes[0]! & 1) as 0 | 1;
}

export function dataPn(bytes: Uint8Array): number {
  const at = 1 + CID_LEN;
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

/**
 * Decodes any obrol packet. Never throws; a malformed datagram yields a typed error to count and drop.
 * For long-header packets a version other than ours decodes (so the server can answer RESET) but the
 * caller must check it.
 */
export function decodePacket(bytes: Uint8Array): Decoded<Packet> {
  return decodeWith(bytes, (r): Packet => {
    const t = r.u8('type');
    switch (t) {
      case PacketType.Data0:
      case PacketType.Data1: {
        const cid = r.bytesN(CID_LEN, 'cid');
        const pn = r.u32('pn');
        if (r.remaining < AEAD_TAG_LEN) throw new WireError('truncated', 'data packet shorter than its tag');
        return {
          type: 'data',
          keyPhase: (t & 1) as 0 | 1,
          cid,
          pn,
          header: bytes.subarray(0, DATA_HEADER_LEN),
          sealed: r.rest(),
        };
      }
      case PacketType.Hello: {
        if (bytes.length !== HELLO_PADDED_SIZE) throw new WireError('bad-length', `hello of ${bytes.length} bytes`);
        const version = r.u8('version');
        const cid = r.bytesN(CID_LEN, 'cid');
        if (version !== PROTOCOL_VERSION) {
          r.rest(); // a future version's layout is unknown: keep only what RESET needs
          return { type: 'hello', version, cid, cookie: new Uint8Array(0), noise: new Uint8Array(0) };
        }
        const cookie = r.lenBytes(COOKIE_MAX_LEN, 'cookie');
        const noise = r.lenBytes(NOISE_MSG_MAX_LEN, 'noise');
        const padding = r.rest();
        // A plain loop: some() with a closure was a call per byte of the 1,100 bytes of padding.
        let nonzero = 0;
        for (let i = 0; i < padding.length; i++) nonzero |= padding[i]!;
        if (nonzero !== 0) throw new WireError('bad-value', 'hello padding is not zero');
        return { type: 'hello', version, cid, cookie, noise };
      }
      case PacketType.Cookie: {
        const version = r.u8('version');
        if (version !== PROTOCOL_VERSION) throw new WireError('bad-version', `${version}`);
        return { type: 'cookie', version, cid: r.bytesN(CID_LEN, 'cid'), cookie: r.lenBytes(COOKIE_MAX_LEN, 'cookie') };
      }
      case PacketType.HsReply: {
        const version = r.u8('version');
        if (version !== PROTOCOL_VERSION) throw new WireError('bad-version', `${version}`);
        return {
          type: 'hs-reply',
          version,
          clientCid: r.bytesN(CID_LEN, 'client cid'),
          serverCid: r.bytesN(CID_LEN, 'server cid'),
          noise: r.lenBytes(NOISE_MSG_MAX_LEN, 'noise'),
        };
      }
      case PacketType.HsFinish: {
        const version = r.u8('version');
        if (version !== PROTOCOL_VERSION) throw new WireError('bad-version', `${version}`);
        return { type: 'hs-finish', version, cid: r.bytesN(CID_LEN, 'cid'), noise: r.lenBytes(NOISE_MSG_MAX_LEN, 'noise') };
      }
      case PacketType.Reset: {
        const version = r.u8('version');
        const cid = r.bytesN(CID_LEN, 'cid');
        const code = r.u8('code');
        if (code < 1 || code > 3) throw new WireError('bad-value', `reset code ${code}`);
        return { type: 'reset', version, cid, code: code as ResetCode };
      }
      case PacketType.NatKeepalive:
        return { type: 'nat-keepalive' };
      default:
        throw new WireError('bad-type', `packet type 0x${t.toString(16)}`);
    }
  });
}
