// The packet protection of one established session: DATA header, AEAD with the packet number as
// explicit nonce, key phases (Noise Rekey), and the replay window. Sans-I/O and clock-free: `now` comes in.

import { REKEY_AFTER_MS, REKEY_AFTER_PACKETS } from '../limits.js';
import { KeyTable } from '../crypto/key-table.js';
import { openPacket, rekey, sealPacket, TAGLEN, type TransportKey } from '../crypto/noise.js';
import { ReplayWindow } from '../crypto/replay.js';
import { CID_LEN, DATA_HEADER_LEN, writeDataHeaderFrom } from '../wire/packet.js';
import { pooledBytes } from '../util/bytes.js';

/** How long the previous receive key stays usable for reordered packets after the peer rotates. */
const OLD_KEY_GRACE_MS = 3_000;

// A channel's record in its KeyTable: both keys, the previous receive key and the peer's connection id,
// in two cache lines.
const KEY_BYTES = 32;
const SEND_KEY = 0;
const RECV_KEY = 32;
const PREV_RECV_KEY = 64;
const PEER_CID = 96;
export const CHANNEL_RECORD_BYTES = 128;

/** The table of channels made without one (clients, tests): a server gives its sessions a table of their own. */
const sharedTable = new KeyTable(CHANNEL_RECORD_BYTES);
/** A channel dropped without dispose() gives its record back when it is collected. */
const unreleased = new FinalizationRegistry<{ table: KeyTable; base: number }>(({ table, base }) => table.release(base));

export interface ChannelKeys {
  send: TransportKey;
  recv: TransportKey;
}

export type OpenResult =
  | { ok: true; payload: Uint8Array }
  | { ok: false; reason: 'replay' | 'auth' };

export class SecureChannel {
  private sendPhase: 0 | 1 = 0;
  private sentWithKey = 0;
  private sendKeySince: number;

  private recvPhase: 0 | 1 = 0;
  private hasPrevRecvKey = false;
  private prevRecvUntil = 0;
  private readonly replay = new ReplayWindow();
  /** The record's offset in table.bytes; -1 once disposed. */
  private base: number;
  private readonly table: KeyTable;

  constructor(
    keys: ChannelKeys,
    /** The peer's connection id: the destination of every packet we send. */
    readonly peerCid: Uint8Array,
    now: number,
    private readonly rekeyAfterPackets = REKEY_AFTER_PACKETS,
    private readonly rekeyAfterMs = REKEY_AFTER_MS,
    /** Where the keys live (a server passes one table for all its sessions). */
    table: KeyTable = sharedTable,
  ) {
    if (keys.send.length !== KEY_BYTES || keys.recv.length !== KEY_BYTES) throw new RangeError(`a transport key is ${KEY_BYTES} bytes`);
    if (peerCid.length !== CID_LEN) throw new RangeError(`a connection id is ${CID_LEN} bytes`);
    if (table.recordBytes < CHANNEL_RECORD_BYTES) throw new RangeError(`the key table's records must hold ${CHANNEL_RECORD_BYTES} bytes`);
    this.table = table;
    const base = table.alloc();
    this.base = base;
    const b = table.bytes;
    b.set(keys.send, base + SEND_KEY);
    b.set(keys.recv, base + RECV_KEY);
    b.set(peerCid, base + PEER_CID);
    this.sendKeySince = now;
    unreleased.register(this, { table, base }, this);
  }

  get keyPhase(): 0 | 1 {
    return this.sendPhase;
  }

  /** Wipes the keys and gives the record back; the channel seals and opens nothing after this. */
  dispose(): void {
    if (this.base < 0) return;
    unreleased.unregister(this);
    const base = this.base;
    this.base = -1;
    this.table.release(base);
  }

  private live(): number {
    if (this.base < 0) throw new Error('the channel is disposed');
    return this.base;
  }

  /** Seals frames into a complete DATA datagram: in `into` (a view of its start is returned) when given and
   * large enough, else in new memory. */
  seal(now: number, pn: number, payload: Uint8Array, into: Uint8Array | null = null): Uint8Array {
    const size = DATA_HEADER_LEN + payload.length + TAGLEN;
    if (into !== null && into.length >= size) {
      this.sealAt(now, pn, payload, payload.length, into, 0);
      return into.subarray(0, size);
    }
    const out = pooledBytes(size);
    this.sealAt(now, pn, payload, payload.length, out, 0);
    return out;
  }

  /** Seals frames (payload[0, length)) into a complete DATA datagram at out[offset ..), which must have room
   * for DATA_HEADER_LEN + length + TAGLEN bytes; returns that size. No allocation, no views: the fan-out's
   * path, sealing straight into the send batch. */
  sealAt(now: number, pn: number, payload: Uint8Array, length: number, out: Uint8Array, offset: number): number {
    const base = this.live();
    if (this.sentWithKey >= this.rekeyAfterPackets || now - this.sendKeySince >= this.rekeyAfterMs) {
      const b = this.table.bytes;
      b.set(rekey(b.subarray(base + SEND_KEY, base + SEND_KEY + KEY_BYTES)), base + SEND_KEY);
      this.sendPhase = this.sendPhase === 0 ? 1 : 0;
      this.sentWithKey = 0;
      this.sendKeySince = now;
    }
    this.sentWithKey++;
    const keys = this.table.bytes;
    writeDataHeaderFrom(out, offset, this.sendPhase, keys, base + PEER_CID, pn);
    sealPacket(keys, base + SEND_KEY, pn, out, offset, DATA_HEADER_LEN, payload, length);
    return DATA_HEADER_LEN + length + TAGLEN;
  }

  /**
   * Authenticates and decrypts a whole DATA datagram in place (its header is the AD): the payload, a view of
   * datagram where the ciphertext was, or why it was refused (replayed, or forged: then datagram is
   * untouched). The caller must not need the ciphertext afterwards, and must copy what it keeps of the
   * payload beyond the datagram's memory.
   */
  openInPlace(now: number, keyPhase: 0 | 1, pn: number, datagram: Uint8Array): Uint8Array | 'replay' | 'auth' {
    const base = this.live();
    if (!this.replay.check(pn)) return 'replay';
    const length = datagram.length;
    const b = this.table.bytes;
    let ok: boolean;
    if (keyPhase === this.recvPhase) {
      ok = openPacket(b, base + RECV_KEY, pn, datagram, 0, DATA_HEADER_LEN, length);
    } else if (this.hasPrevRecvKey && now < this.prevRecvUntil && openPacket(b, base + PREV_RECV_KEY, pn, datagram, 0, DATA_HEADER_LEN, length)) {
      ok = true; // the other phase: a late packet under the previous key
    } else {
      // Or the peer's next key.
      const next = rekey(b.subarray(base + RECV_KEY, base + RECV_KEY + KEY_BYTES));
      ok = openPacket(next, 0, pn, datagram, 0, DATA_HEADER_LEN, length);
      if (ok) {
        b.copyWithin(base + PREV_RECV_KEY, base + RECV_KEY, base + RECV_KEY + KEY_BYTES);
        b.set(next, base + RECV_KEY);
        this.hasPrevRecvKey = true;
        this.prevRecvUntil = now + OLD_KEY_GRACE_MS;
        this.recvPhase = keyPhase;
      }
    }
    if (!ok) return 'auth';
    this.replay.accept(pn);
    return datagram.subarray(DATA_HEADER_LEN, length - TAGLEN);
  }

  /** Authenticates and decrypts a DATA packet given as header and sealed part (a copy is opened; the inputs
   * stay as they are); replayed and forged packets are refused. */
  open(now: number, keyPhase: 0 | 1, pn: number, header: Uint8Array, sealed: Uint8Array): OpenResult {
    if (header.length !== DATA_HEADER_LEN) return { ok: false, reason: 'auth' };
    const copy = pooledBytes(header.length + sealed.length);
    copy.set(header, 0);
    copy.set(sealed, header.length);
    const r = this.openInPlace(now, keyPhase, pn, copy);
    return typeof r === 'string' ? { ok: false, reason: r } : { ok: true, payload: r };
  }
}
