// The packet protection of one established session: DATA header, AEAD with the packet number as
// explicit nonce, key phases (Noise Rekey), and the replay window. Sans-I/O and clock-free: `now` comes in.

import { REKEY_AFTER_MS, REKEY_AFTER_PACKETS } from '../limits.js';
import { open, rekey, sealPacket, TAGLEN, type TransportKey } from '../crypto/noise.js';
import { ReplayWindow } from '../crypto/replay.js';
import { DATA_HEADER_LEN, writeDataHeader } from '../wire/packet.js';

/** How long the previous receive key stays usable for reordered packets after the peer rotates. */
const OLD_KEY_GRACE_MS = 3_000;

export interface ChannelKeys {
  send: TransportKey;
  recv: TransportKey;
}

export type OpenResult =
  | { ok: true; payload: Uint8Array }
  | { ok: false; reason: 'replay' | 'auth' };

export class SecureChannel {
  private sendKey: TransportKey;
  private sendPhase: 0 | 1 = 0;
  private sentWithKey = 0;
  private sendKeySince: number;

  private recvKey: TransportKey;
  private recvPhase: 0 | 1 = 0;
  private prevRecvKey: TransportKey | null = null;
  private prevRecvUntil = 0;
  private readonly replay = new ReplayWindow();

  constructor(
    keys: ChannelKeys,
    /** The peer's connection id: the destination of every packet we send. */
    readonly peerCid: Uint8Array,
    now: number,
    private readonly rekeyAfterPackets = REKEY_AFTER_PACKETS,
    private readonly rekeyAfterMs = REKEY_AFTER_MS,
  ) {
    this.sendKey = keys.send;
    this.recvKey = keys.recv;
    this.sendKeySince = now;
  }

  get keyPhase(): 0 | 1 {
    return this.sendPhase;
  }

  /** Seals frames into a complete DATA datagram: in `into` (a view of its start is returned) when given and
   * large enough, else in new memory. */
  seal(now: number, pn: number, payload: Uint8Array, into: Uint8Array | null = null): Uint8Array {
    const size = DATA_HEADER_LEN + payload.length + TAGLEN;
    if (into !== null && into.length >= size) {
      this.sealAt(now, pn, payload, payload.length, into, 0);
      return into.subarray(0, size);
    }
    // Memory from Node's buffer pool (a typed array over 64 bytes is otherwise a malloc of its own), seen
    // as a plain Uint8Array so that slice() still copies.
    const pooled = Buffer.allocUnsafe(size);
    const out = new Uint8Array(pooled.buffer, pooled.byteOffset, size);
    this.sealAt(now, pn, payload, payload.length, out, 0);
    return out;
  }

  /** Seals frames (payload[0, length)) into a complete DATA datagram at out[offset ..), which must have room
   * for DATA_HEADER_LEN + length + TAGLEN bytes; returns that size. No allocation, no views: the fan-out's
   * path, sealing straight into the send batch. */
  sealAt(now: number, pn: number, payload: Uint8Array, length: number, out: Uint8Array, offset: number): number {
    if (this.sentWithKey >= this.rekeyAfterPackets || now - this.sendKeySince >= this.rekeyAfterMs) {
      this.sendKey = rekey(this.sendKey);
      this.sendPhase = this.sendPhase === 0 ? 1 : 0;
      this.sentWithKey = 0;
      this.sendKeySince = now;
    }
    this.sentWithKey++;
    writeDataHeader(out, this.sendPhase, this.peerCid, pn, offset);
    sealPacket(this.sendKey, pn, out, offset, DATA_HEADER_LEN, payload, length);
    return DATA_HEADER_LEN + length + TAGLEN;
  }

  /** Authenticates and decrypts a DATA packet; replayed and forged packets are refused. */
  open(now: number, keyPhase: 0 | 1, pn: number, header: Uint8Array, sealed: Uint8Array): OpenResult {
    if (!this.replay.check(pn)) return { ok: false, reason: 'replay' };
    let payload: Uint8Array | null;
    if (keyPhase === this.recvPhase) {
      payload = open(this.recvKey, pn, header, sealed);
    } else {
      // The other phase: a late packet under the previous key, or the peer's next key.
      payload = this.prevRecvKey !== null && now < this.prevRecvUntil ? open(this.prevRecvKey, pn, header, sealed) : null;
      if (payload !== null) {
        this.replay.accept(pn);
        return { ok: true, payload };
      }
      const next = rekey(this.recvKey);
      payload = open(next, pn, header, sealed);
      if (payload !== null) {
        this.prevRecvKey = this.recvKey;
        this.prevRecvUntil = now + OLD_KEY_GRACE_MS;
        this.recvKey = next;
        this.recvPhase = keyPhase;
      }
    }
    if (payload === null) return { ok: false, reason: 'auth' };
    this.replay.accept(pn);
    return { ok: true, payload };
  }
}
