// The reliability core of a session, sans-I/O: packet numbers, selective acks, RFC 9002 loss detection
// and probe timeouts, NewReno congestion control, fragmentation and reassembly of messages, in-order
// exactly-once delivery per stream, keepalive, idle timeout and graceful close.
//
// It knows nothing of encryption or headers: the endpoint seals each payload it returns under its packet
// number, and feeds it each authenticated payload. Simpler than QUIC where chat allows: messages are
// fragmented once, at send time, into fixed chunks that are retransmitted whole; streams carry messages,
// not bytes; there is one packet number space.
//
// Memory bound per session: the send side holds at most sendBufferMax bytes of unacknowledged message data
// (SEND_BUFFER_MAX_BYTES, 1 MiB) plus per-packet records for what is in flight (bounded by the congestion
// window); the receive side holds at most recvBufferMax bytes of out-of-order or partial data
// (RECV_BUFFER_MAX_BYTES, 256 KiB) and MAX_ACK_RANGES ack ranges. An idle session holds neither: a few
// hundred bytes of counters.

import {
  ACK_EVERY_PACKETS,
  ACK_TIMER_SLOT_MS,
  CLIENT_MAX_ACK_DELAY_MS,
  CLOSING_LINGER_MS,
  INITIAL_CWND_PACKETS,
  INITIAL_RTT_MS,
  LOSS_PACKET_THRESHOLD,
  LOSS_TIME_THRESHOLD,
  MAX_ACK_DELAY_MS,
  MAX_ACK_RANGES,
  MAX_PACKET_NUMBER,
  MAX_PTO_MS,
  MAX_REORDER_PACKETS,
  MAX_REORDER_TIME_FACTOR,
  MAX_STREAMS,
  MIN_CWND_PACKETS,
  TIMER_GRANULARITY_MS,
} from '../limits.js';
import { Writer } from '../wire/buf.js';
import { pooledCopy } from '../util/bytes.js';
import { decodeFrames, encodeFrame, frameSize, isAckEliciting, MSG_HEADER_MAX, newPacketContext, type AckRange, type Frame } from '../wire/frame.js';

/** Declared-lost packet numbers remembered for spotting spurious losses. */
const DECLARED_LOST_MEMORY = 256;
/** Every packet's frames are built here and sealed from here: no allocation per packet. */
const scratch = new Writer(2048);
/** A packet pollTransmit built: its frames are bytes[0, length) of the shared scratch memory. */
export class PolledPacket {
  pn = 0;
  bytes: Uint8Array = new Uint8Array(0);
  length = 0;
  /** The frames as a view of their own (sealAt takes bytes and length and needs none). */
  get payload(): Uint8Array {
    return this.bytes.subarray(0, this.length);
  }
}
/** What pollTransmit returns, reused like scratch: valid until the next pollTransmit of any connection. */
const transmit = new PolledPacket();
/** The MSG_NEXT context of the packet being built (frames of one packet only). */
const packetContext = newPacketContext();
/** Room kept in every packet for an ACK frame, so a full-size fragment always fits beside one. */
const ACK_RESERVE = 80;

export interface ConnectionConfig {
  /** Plaintext frame bytes per packet: the MTU less the DATA header and the AEAD tag. */
  maxPayload: number;
  /** Send a keepalive after this long without sending anything; null to only answer (servers). */
  keepaliveMs: number | null;
  /** For an owner that sends NAT_KEEPALIVE datagrams (takeNatKeepalive after every pollTransmit loop): a
   * keepalive is a PING only when no ack-eliciting packet has gone out for about this long, else a
   * NAT_KEEPALIVE (keepalivePingMs in limits.ts). Unset: every keepalive is a PING. */
  keepalivePingMs?: number;
  idleTimeoutMs: number;
  /** The owner watches the idle timeout (it calls onTimeout once nothing has been received for
   * idleTimeoutMs), so nextDeadline leaves it out: the server's endpoint sweeps all sessions at once. */
  idleWatchedByOwner?: boolean;
  sendBufferMax: number;
  recvBufferMax: number;
  /** false: no 'delivered' events (default true). */
  deliveryEvents?: boolean;
  /** Longest we hold back an ack (default MAX_ACK_DELAY_MS). */
  maxAckDelayMs?: number;
  /** Longest the peer holds back its acks, which our probe timeout waits for (default MAX_ACK_DELAY_MS). */
  peerMaxAckDelayMs?: number;
}

/** The ack delays of each side: a client holds its acks back longer (CLIENT_MAX_ACK_DELAY_MS), and the
 * server's probe timeout waits for that; the server acks within MAX_ACK_DELAY_MS. */
export const CLIENT_ACK_DELAYS = { maxAckDelayMs: CLIENT_MAX_ACK_DELAY_MS, peerMaxAckDelayMs: MAX_ACK_DELAY_MS } as const;
export const SERVER_ACK_DELAYS = { maxAckDelayMs: MAX_ACK_DELAY_MS, peerMaxAckDelayMs: CLIENT_MAX_ACK_DELAY_MS } as const;

export type ConnectionEvent =
  | { type: 'message'; stream: number; seq: number; data: Uint8Array }
  | { type: 'delivered'; stream: number; seq: number }
  | { type: 'closed'; code: number; reason: string; byPeer: boolean }
  | { type: 'path-response'; data: Uint8Array }
  | { type: 'path-challenge'; data: Uint8Array };

export type SendResult = { ok: true; seq: number } | { ok: false; reason: 'buffer-full' | 'too-large' | 'closed' };

export interface ConnectionStats {
  srttMs: number;
  rttvarMs: number;
  minRttMs: number;
  cwnd: number;
  bytesInFlight: number;
  sentPackets: number;
  recvPackets: number;
  lostPackets: number;
  spuriousLosses: number;
  retransmittedBytes: number;
  ackFramesSent: number;
  ackFramesReceived: number;
  /** NAT_KEEPALIVE datagrams handed to the owner (takeNatKeepalive). */
  natKeepalivesSent: number;
  ptoCount: number;
  bufferedSendBytes: number;
  bufferedRecvBytes: number;
  lastReceiveAt: number;
}

/** One message being sent; delivered once every chunk is acknowledged. */
interface OutMessage {
  stream: number;
  seq: number;
  unackedBytes: number;
}

/** A fragment of a message: fixed at send time, retransmitted whole. */
interface Chunk {
  kind: 'chunk';
  msg: OutMessage;
  total: number;
  offset: number;
  data: Uint8Array;
  acked: boolean;
  /** Waiting in a send queue (so a loss does not queue it twice). */
  queued: boolean;
}

/** The send queue: chunks themselves (no wrapper per chunk), and the CLOSE. */
type QueueItem = Chunk | { kind: 'close' };

interface SentPacket {
  pn: number;
  time: number;
  size: number;
  /** The chunks it carried: most packets carry one, which needs no array (an ack then reads one object
   * fewer, cold, per packet). */
  chunk: Chunk | null;
  moreChunks: Chunk[] | null;
  close: boolean;
  /** Largest packet number in the ACK frame this packet carried, or -1: once the peer acknowledges this
   * packet it knows about everything up to there, and we stop reporting it (RFC 9000 §13.2.4). */
  ackLargest: number;
}

/** Ack-eliciting packets in flight, in packet-number order (they are sent in that order): an array with
 * holes where acknowledged or lost packets were, trimmed from the front. Cheaper than a Map on every
 * packet sent and acknowledged: no hashing, no entry objects, the oldest at the head. */
class SentPackets {
  private a: (SentPacket | null)[] = [];
  private head = 0;
  /** Nulls in a[head..]. */
  private holes = 0;
  size = 0;

  /** Indexes to scan (at(k) for start <= k < end; null at a hole). */
  get start(): number {
    return this.head;
  }
  get end(): number {
    return this.a.length;
  }
  at(k: number): SentPacket | null {
    return this.a[k]!;
  }
  push(p: SentPacket): void {
    this.a.push(p);
    this.size++;
  }
  remove(k: number): void {
    this.a[k] = null;
    this.size--;
    this.holes++;
  }
  first(): SentPacket | null {
    for (let k = this.head; k < this.a.length; k++) if (this.a[k] !== null) return this.a[k]!;
    return null;
  }
  /** Drops the holes at the front, and compacts when holes outnumber packets: call after removals. */
  tidy(): void {
    const a = this.a;
    if (this.size === 0) {
      a.length = 0;
      this.head = this.holes = 0;
      return;
    }
    while (a[this.head] === null) {
      this.head++;
      this.holes--;
    }
    if (this.holes > 16 && this.holes > this.size) {
      let w = 0;
      for (let k = this.head; k < a.length; k++) if (a[k] !== null) a[w++] = a[k]!;
      a.length = w;
      this.head = this.holes = 0;
    } else if (this.head > 64 && 2 * this.head > a.length) {
      a.copyWithin(0, this.head);
      a.length -= this.head;
      this.head = 0;
    }
  }
}

interface InStream {
  nextSeq: number;
  /** Partially received or out-of-order messages by seq. */
  pending: Map<number, { total: number; got: number; parts: Map<number, Uint8Array> }>;
}

export class Connection {
  private readonly cfg: ConnectionConfig;
  private readonly chunkMax: number;
  private readonly maxAckDelay: number;
  private readonly peerMaxAckDelay: number;
  private readonly deliveryEvents: boolean;
  private st: 'open' | 'closing' | 'closed' = 'open';
  private readonly events: ConnectionEvent[] = [];

  // ---- send side
  private nextPn = 0;
  private readonly nextSeq = new Map<number, number>();
  private readonly queue: QueueItem[] = [];
  private readonly retx: Chunk[] = [];
  private readonly sent = new SentPackets();
  private readonly pathFrames: Frame[] = [];
  private pingPending = false;
  /** A keepalive is due that only has to refresh NAT bindings: the owner sends NAT_KEEPALIVE. */
  private natKeepalivePending = false;
  /** cfg.keepalivePingMs, or 0: every keepalive is a PING. */
  private readonly pingEveryMs: number;
  private bufferedSend = 0;
  private bytesInFlight = 0;
  private lastSendAt: number;
  private lastAckElicitingAt: number | null = null;
  private probeBudget = 0;
  private closeInfo: { code: number; reason: string } | null = null;
  private closingDeadline: number | null = null;

  // ---- recovery
  private srtt = INITIAL_RTT_MS;
  private rttvar = INITIAL_RTT_MS / 2;
  private minRtt = Infinity;
  private hasRttSample = false;
  private largestAcked = -1;
  private lossTime: number | null = null;
  private ptoCount = 0;
  private cwnd: number;
  private ssthresh = Infinity;
  private recoveryStart = -Infinity;
  /** Window before the last congestion event, restored if that loss proves spurious. */
  private undo: { cwnd: number; ssthresh: number } | null = null;
  /** Reordering tolerance: widened each time a packet declared lost is acknowledged after all. */
  private packetThreshold = LOSS_PACKET_THRESHOLD;
  private timeThreshold = LOSS_TIME_THRESHOLD;
  /** Recently declared-lost packet numbers, to recognise spurious losses (bounded, oldest dropped). */
  private declaredLost: Set<number> | null = null; // created at the first loss: most sessions never lose one

  // ---- receive side
  private readonly ranges: AckRange[] = []; // descending, merged, all above ackFloor
  /** Packet numbers at or below this count as received: the peer has seen our acks for them, or they
   * fell off the end of the ranges. A late packet down there is dropped as a duplicate; its sender has
   * declared it lost by then and resent its data. */
  private ackFloor = -1;
  private largestRecv = -1;
  /** An ack-eliciting packet carrying an ACK frame is in flight (a PING added to an ack-only packet, so
   * that a peer that only receives still learns when to forget old ranges). */
  private ackOfAckInFlight = false;
  private largestRecvAt = 0;
  private ackElicitingUnacked = 0;
  private ackDeadline: number | null = null;
  private ackNow = false;
  /** Packets arrived since our last ACK frame: only then is an ACK worth piggybacking. */
  private unackedArrivals = false;
  /** Of those, ones that asked for an ack. Without loss only these are worth an ACK frame on our next
   * packet: the peer keeps no record of a packet that asked for nothing (an ACK of its own), so
   * acknowledging one tells it nothing (RFC 9000 §13.2.1); in a room's fan-out that was an ACK frame in
   * nearly every packet. After a loss (several ranges) every arrival is acknowledged again, so that a
   * lost ACK of ours is repeated soon and the peer learns what it may forget (§13.2.4). */
  private unackedEliciting = false;
  private readonly streams = new Map<number, InStream>();
  private bufferedRecv = 0;
  private lastReceiveAt: number;
  private finalAck = false;

  // Counters, as fields rather than an object of their own: one object fewer to reach on every packet.
  private sentPackets = 0;
  private recvPackets = 0;
  private lostPackets = 0;
  private spuriousLosses = 0;
  private retransmittedBytes = 0;
  private ackFramesSent = 0;
  private ackFramesReceived = 0;
  private natKeepalivesSent = 0;

  /** cfg may be shared by many connections (it is read, never written); initialRttMs is an RTT measured
   * during the handshake, used until the first ack gives a sample. */
  constructor(cfg: ConnectionConfig, now: number, initialRttMs?: number) {
    this.cfg = cfg;
    this.chunkMax = cfg.maxPayload - ACK_RESERVE - MSG_HEADER_MAX;
    this.maxAckDelay = cfg.maxAckDelayMs ?? MAX_ACK_DELAY_MS;
    this.peerMaxAckDelay = cfg.peerMaxAckDelayMs ?? MAX_ACK_DELAY_MS;
    this.deliveryEvents = cfg.deliveryEvents !== false;
    this.pingEveryMs = cfg.keepalivePingMs ?? 0;
    if (this.chunkMax < 64) throw new RangeError(`maxPayload ${cfg.maxPayload} is too small`);
    this.cwnd = INITIAL_CWND_PACKETS * cfg.maxPayload;
    if (initialRttMs !== undefined && initialRttMs >= 0) this.updateRtt(Math.max(initialRttMs, TIMER_GRANULARITY_MS), 0);
    this.lastSendAt = now;
    this.lastReceiveAt = now;
  }

  get state(): 'open' | 'closing' | 'closed' {
    return this.st;
  }

  get stats(): ConnectionStats {
    return {
      srttMs: this.srtt,
      rttvarMs: this.rttvar,
      minRttMs: this.minRtt,
      cwnd: this.cwnd,
      bytesInFlight: this.bytesInFlight,
      ptoCount: this.ptoCount,
      bufferedSendBytes: this.bufferedSend,
      bufferedRecvBytes: this.bufferedRecv,
      lastReceiveAt: this.lastReceiveAt,
      sentPackets: this.sentPackets,
      recvPackets: this.recvPackets,
      lostPackets: this.lostPackets,
      spuriousLosses: this.spuriousLosses,
      retransmittedBytes: this.retransmittedBytes,
      ackFramesSent: this.ackFramesSent,
      ackFramesReceived: this.ackFramesReceived,
      natKeepalivesSent: this.natKeepalivesSent,
    };
  }

  // ==== sending ==================================================================================

  send(stream: number, data: Uint8Array, _now: number): SendResult {
    if (this.st !== 'open') return { ok: false, reason: 'closed' };
    if (!Number.isInteger(stream) || stream < 0 || stream >= MAX_STREAMS) throw new RangeError(`stream ${stream}`);
    if (data.length > 0xffff_ffff) return { ok: false, reason: 'too-large' };
    if (this.bufferedSend + data.length > this.cfg.sendBufferMax) return { ok: false, reason: 'buffer-full' };
    const seq = this.nextSeq.get(stream) ?? 0;
    this.nextSeq.set(stream, seq + 1);
    const msg: OutMessage = { stream, seq, unackedBytes: data.length };
    // Fragment once; an empty message is one empty chunk.
    let offset = 0;
    do {
      // A message that fits one chunk keeps the caller's array: a fan-out's recipients then share it.
      const part = offset === 0 && data.length <= this.chunkMax ? data : data.subarray(offset, offset + this.chunkMax);
      this.queue.push({ kind: 'chunk', msg, total: data.length, offset, data: part, acked: false, queued: true });
      offset += part.length;
    } while (offset < data.length);
    this.bufferedSend += data.length;
    return { ok: true, seq };
  }

  /** Best-effort frames (path challenge and response): sent in the next packet, never retransmitted. */
  sendFrame(f: Frame, _now: number): void {
    if (this.st === 'closed') return;
    this.pathFrames.push(f);
  }

  close(code: number, reason: string, now: number): void {
    if (this.st !== 'open') return;
    this.st = 'closing';
    this.closeInfo = { code, reason };
    this.queue.push({ kind: 'close' });
    this.closingDeadline = now + Math.max(CLOSING_LINGER_MS, 3 * this.ptoDuration());
  }

  /** Builds the next packet to send, or null when nothing is due. The result is a shared object and its
   * bytes a shared scratch buffer, both valid until the next pollTransmit of any connection: seal it (or
   * copy it) at once. */
  pollTransmit(now: number): PolledPacket | null {
    if (this.st === 'closed' && !this.finalAck) return null;
    if (this.nextPn > MAX_PACKET_NUMBER) return null;
    const wantAck = this.ranges.length > 0 && (this.ackNow || this.finalAck || (this.ackDeadline !== null && now >= this.ackDeadline));
    const canSendData = this.st !== 'closed' && (this.bytesInFlight < this.cwnd || this.probeBudget > 0);
    const hasData = this.retx.length > 0 || this.queue.length > 0 || this.pingPending || this.pathFrames.length > 0;
    if (!wantAck && !(canSendData && hasData)) return null;

    const w = scratch.reset(this.cfg.maxPayload);
    let budget = this.cfg.maxPayload;
    let ackIncluded = false;
    let ackLargest = -1;
    const worthAck = this.unackedEliciting || (this.unackedArrivals && this.ranges.length > 1);
    if (this.ranges.length > 0 && (wantAck || (canSendData && hasData && worthAck))) {
      const ack = this.buildAck(now);
      encodeFrame(w, ack);
      budget -= frameSize(ack);
      ackIncluded = true;
      ackLargest = this.ranges[0]!.hi;
    }
    let firstChunk: Chunk | null = null;
    let moreChunks: Chunk[] | null = null;
    const ctx = packetContext;
    ctx.stream = -1;
    ctx.seq = -1;
    let closeSent = false;
    let elicits = false;
    if (canSendData) {
      if (this.pathFrames.length > 0) {
        for (const f of this.pathFrames.splice(0)) {
          encodeFrame(w, f);
          budget -= frameSize(f);
          elicits = true;
        }
      }
      // Retransmissions first, then new data in order; stop at the first chunk that does not fit.
      while (this.retx.length > 0) {
        const c = this.retx[0]!;
        if (c.acked) {
          this.retx.shift();
          c.queued = false;
          continue;
        }
        const f = chunkFrame(c);
        if (frameSize(f) > budget) break;
        this.retx.shift();
        c.queued = false;
        encodeFrame(w, f, ctx);
        budget = this.cfg.maxPayload - w.length;
        if (firstChunk === null) firstChunk = c;
        else (moreChunks ??= []).push(c);
        this.retransmittedBytes += c.data.length;
      }
      while (this.queue.length > 0 && this.retx.length === 0) {
        const item = this.queue[0]!;
        if (item.kind === 'close') {
          const f: Frame = { type: 'close', code: this.closeInfo!.code, reason: this.closeInfo!.reason };
          if (frameSize(f) > budget) break;
          this.queue.shift();
          encodeFrame(w, f);
          budget -= frameSize(f);
          closeSent = true;
          break;
        }
        const f = chunkFrame(item);
        if (frameSize(f) > budget) break;
        this.queue.shift();
        item.queued = false;
        encodeFrame(w, f, ctx);
        budget = this.cfg.maxPayload - w.length;
        if (firstChunk === null) firstChunk = item;
        else (moreChunks ??= []).push(item);
      }
      if (firstChunk !== null || closeSent) elicits = true;
      // Old ranges linger only until the peer acknowledges an ACK frame that carried them; a packet with
      // nothing else to elicit that acknowledgement gets a PING (one such packet in flight at a time).
      const lingering = ackIncluded && this.ranges.length > 1 && !this.ackOfAckInFlight;
      if ((this.pingPending || lingering) && !elicits && budget >= 1) {
        encodeFrame(w, { type: 'ping' });
        elicits = true;
      }
      if (elicits) this.pingPending = false;
    }
    if (!ackIncluded && !elicits) return null;

    const pn = this.nextPn++;
    const length = w.length;
    this.sentPackets++;
    this.lastSendAt = now;
    this.natKeepalivePending = false; // this packet refreshes the NAT bindings too
    if (ackIncluded) {
      this.unackedArrivals = false;
      this.unackedEliciting = false;
      this.ackFramesSent++;
      this.ackElicitingUnacked = 0;
      this.ackDeadline = null;
      this.ackNow = false;
      this.finalAck = false;
    }
    if (elicits) {
      const size = length;
      this.sent.push({ pn, time: now, size, chunk: firstChunk, moreChunks, close: closeSent, ackLargest });
      if (ackLargest >= 0) this.ackOfAckInFlight = true;
      this.bytesInFlight += size;
      this.lastAckElicitingAt = now;
      if (this.probeBudget > 0) this.probeBudget--;
    }
    transmit.pn = pn;
    transmit.bytes = w.memory;
    transmit.length = length;
    return transmit;
  }

  private buildAck(now: number): Frame {
    // Keep the frame within ACK_RESERVE by dropping the oldest ranges.
    const ranges = this.ranges.slice();
    let f: Frame = { type: 'ack', ranges, delayUs: Math.max(0, Math.round((now - this.largestRecvAt) * 1000)) };
    while (ranges.length > 1 && frameSize(f) > ACK_RESERVE) {
      ranges.pop();
      f = { type: 'ack', ranges, delayUs: f.delayUs };
    }
    return f;
  }

  // ==== receiving ================================================================================

  onPacket(now: number, pn: number, payload: Uint8Array): 'accepted' | 'duplicate' | 'malformed' | 'over-buffer' {
    if (this.st === 'closed') return 'duplicate';
    const decoded = decodeFrames(payload);
    if (!decoded.ok) return 'malformed';
    const frames = decoded.value;
    if (this.isReceived(pn)) return 'duplicate';
    // Refuse, unacknowledged, a packet whose new data would overflow the receive buffer.
    let incoming = 0;
    for (const f of frames) if (f.type === 'msg') incoming += this.newBytes(f);
    if (this.bufferedRecv + incoming > this.cfg.recvBufferMax) return 'over-buffer';

    this.recvPackets++;
    this.lastReceiveAt = now;
    const outOfOrder = this.largestRecv >= 0 && pn !== this.largestRecv + 1;
    this.recordReceived(pn, now);
    this.unackedArrivals = true;
    let elicits = false;
    let pinged = false;
    for (const f of frames) {
      if (isAckEliciting(f)) elicits = true;
      switch (f.type) {
        case 'ack':
          this.ackFramesReceived++;
          this.onAck(now, f.ranges, f.delayUs);
          break;
        case 'msg':
          this.onMsg(f);
          break;
        case 'close':
          this.onPeerClose(f.code, f.reason);
          break;
        case 'path-challenge':
          this.pathFrames.push({ type: 'path-response', data: f.data.slice() });
          this.events.push({ type: 'path-challenge', data: f.data.slice() });
          break;
        case 'path-response':
          this.events.push({ type: 'path-response', data: f.data.slice() });
          break;
        case 'ping':
          pinged = true;
          break;
        case 'padding':
          break;
      }
    }
    if (elicits) {
      this.unackedEliciting = true;
      this.ackElicitingUnacked++;
      // On a grid of ACK_TIMER_SLOT_MS, never later than our max ack delay: a server's delayed acks to many
      // sessions then fall due together and leave in one batch, not one timer and one system call each.
      if (this.ackDeadline === null) this.ackDeadline = Math.max(now, Math.floor((now + this.maxAckDelay) / ACK_TIMER_SLOT_MS) * ACK_TIMER_SLOT_MS);
      // Ack at once when a gap appears, so the sender detects the loss quickly.
      // And at once for a PING, which asks for nothing else (a keepalive, or a sender's probe): the acks to a
      // batch of keepalives then leave with that batch, no timer each, and a probing sender hears sooner.
      if (this.ackElicitingUnacked >= ACK_EVERY_PACKETS || outOfOrder || pinged) this.ackNow = true;
    }
    return 'accepted';
  }

  private isReceived(pn: number): boolean {
    if (pn <= this.ackFloor) return true;
    for (const r of this.ranges) {
      if (pn > r.hi) return false;
      if (pn >= r.lo) return true;
    }
    return false;
  }

  /** Forgets the ranges at or below pn: everything there counts as received from now on. */
  private raiseAckFloor(pn: number): void {
    if (pn <= this.ackFloor) return;
    this.ackFloor = pn;
    const rs = this.ranges;
    while (rs.length > 0 && rs[rs.length - 1]!.hi <= pn) rs.pop();
    if (rs.length > 0 && rs[rs.length - 1]!.lo <= pn) rs[rs.length - 1]!.lo = pn + 1;
  }

  private recordReceived(pn: number, now: number): void {
    const rs = this.ranges;
    if (pn > this.largestRecv) {
      this.largestRecv = pn;
      this.largestRecvAt = now;
    }
    let i = 0;
    while (i < rs.length && rs[i]!.lo > pn) i++;
    // rs[i] is the first range with lo <= pn (pn is not inside any range).
    const above = i > 0 ? rs[i - 1]! : null;
    const below = i < rs.length ? rs[i]! : null;
    if (above && above.lo === pn + 1 && below && below.hi === pn - 1) {
      above.lo = below.lo;
      rs.splice(i, 1);
    } else if (above && above.lo === pn + 1) above.lo = pn;
    else if (below && below.hi === pn - 1) below.hi = pn;
    else rs.splice(i, 0, { hi: pn, lo: pn });
    if (rs.length > MAX_ACK_RANGES) {
      rs.length = MAX_ACK_RANGES;
      this.ackFloor = Math.max(this.ackFloor, rs[rs.length - 1]!.lo - 1);
    }
  }

  private inStream(stream: number): InStream {
    let s = this.streams.get(stream);
    if (!s) this.streams.set(stream, (s = { nextSeq: 0, pending: new Map() }));
    return s;
  }

  /** Bytes a MSG frame would add to the receive buffer (0 for data already held or delivered). */
  private newBytes(f: Extract<Frame, { type: 'msg' }>): number {
    const s = this.streams.get(f.stream);
    if (s && f.seq < s.nextSeq) return 0;
    const p = s?.pending.get(f.seq);
    if (p?.parts.has(f.offset)) return 0;
    return f.data.length;
  }

  private onMsg(f: Extract<Frame, { type: 'msg' }>): void {
    const s = this.inStream(f.stream);
    if (f.seq < s.nextSeq) return; // delivered already: a retransmission
    if (f.seq === s.nextSeq && f.offset === 0 && f.data.length === f.total && s.pending.size === 0) {
      // The common case, a whole message in order: delivered at once, without a reassembly record.
      this.events.push({ type: 'message', stream: f.stream, seq: f.seq, data: pooledCopy(f.data) });
      s.nextSeq++;
      return;
    }
    let p = s.pending.get(f.seq);
    if (!p) {
      p = { total: f.total, got: 0, parts: new Map() };
      s.pending.set(f.seq, p);
    }
    if (p.total !== f.total || p.parts.has(f.offset)) return; // inconsistent or duplicate fragment
    p.parts.set(f.offset, pooledCopy(f.data));
    p.got += f.data.length;
    this.bufferedRecv += f.data.length;
    // Deliver every complete message at the head of the stream, in order.
    for (;;) {
      const head = s.pending.get(s.nextSeq);
      if (!head || head.got < head.total || (head.total === 0 && head.parts.size === 0)) break;
      s.pending.delete(s.nextSeq);
      this.bufferedRecv -= head.got;
      this.events.push({ type: 'message', stream: f.stream, seq: s.nextSeq, data: assemble(head.total, head.parts) });
      s.nextSeq++;
    }
  }

  private onPeerClose(code: number, reason: string): void {
    if (this.st === 'closed') return;
    this.st = 'closed';
    this.ackNow = true;
    this.finalAck = true; // acknowledge the CLOSE so the peer stops resending it
    this.events.push({ type: 'closed', code, reason, byPeer: true });
  }

  // ==== recovery (RFC 9002) =======================================================================

  private onAck(now: number, ranges: AckRange[], delayUs: number): void {
    const largest = ranges[0]!.hi;
    let newlyAcked = false;
    let largestNewlyAcked: SentPacket | null = null;
    // bytesInFlight > 0 exactly when sent is not empty (every record has a size): an idle session's ack
    // then does not touch the array of packets in flight at all.
    if (this.bytesInFlight > 0) {
      const sent = this.sent;
      for (let k = sent.start, end = sent.end; k < end; k++) {
        const p = sent.at(k);
        if (p === null) continue;
        const pn = p.pn;
        if (pn > largest) break;
        if (!inRanges(pn, ranges)) continue;
        sent.remove(k);
        newlyAcked = true;
        if (!largestNewlyAcked || pn > largestNewlyAcked.pn) largestNewlyAcked = p;
        this.bytesInFlight -= p.size;
        this.onPacketAcked(p);
      }
      sent.tidy();
    }
    this.checkSpuriousLoss(ranges);
    if (!newlyAcked) return;
    if (largest > this.largestAcked) this.largestAcked = largest;
    if (largestNewlyAcked && largestNewlyAcked.pn === largest) {
      this.updateRtt(now - largestNewlyAcked.time, Math.min(delayUs / 1000, this.peerMaxAckDelay));
    }
    this.ptoCount = 0;
    this.detectLosses(now);
  }

  /** An ack for a packet we declared lost: it was reordered, not lost. Undo the cut and tolerate more. */
  private checkSpuriousLoss(ranges: AckRange[]): void {
    if (this.declaredLost === null) return;
    let spurious = false;
    for (const pn of this.declaredLost) {
      if (inRanges(pn, ranges)) {
        this.declaredLost.delete(pn);
        spurious = true;
      }
    }
    if (!spurious) return;
    this.spuriousLosses++;
    this.packetThreshold = Math.min(this.packetThreshold + 1, MAX_REORDER_PACKETS);
    this.timeThreshold = Math.min(this.timeThreshold + 0.125, MAX_REORDER_TIME_FACTOR);
    if (this.undo) {
      this.cwnd = Math.max(this.cwnd, this.undo.cwnd);
      this.ssthresh = this.undo.ssthresh;
      this.undo = null;
      this.recoveryStart = -Infinity;
    }
  }

  private onPacketAcked(p: SentPacket): void {
    if (p.ackLargest >= 0) {
      this.ackOfAckInFlight = false;
      this.raiseAckFloor(p.ackLargest);
    }
    if (p.chunk !== null) this.onChunkAcked(p.chunk);
    if (p.moreChunks !== null) for (const c of p.moreChunks) this.onChunkAcked(c);
    if (p.close && this.st === 'closing') this.finishClose();
    // NewReno: grow only for packets sent after the current recovery period began.
    if (p.time <= this.recoveryStart) return;
    if (this.cwnd < this.ssthresh) this.cwnd += p.size;
    else this.cwnd += (this.cfg.maxPayload * p.size) / this.cwnd;
  }

  private onChunkAcked(c: Chunk): void {
    if (c.acked) return;
    c.acked = true;
    this.bufferedSend -= c.data.length;
    // Only delivery events need the message's count (a chat server asks for none: one cold object fewer).
    if (!this.deliveryEvents) return;
    c.msg.unackedBytes -= c.data.length;
    if (c.msg.unackedBytes === 0 && (c.data.length > 0 || c.total === 0)) {
      this.events.push({ type: 'delivered', stream: c.msg.stream, seq: c.msg.seq });
    }
  }

  private updateRtt(latest: number, ackDelay: number): void {
    if (!this.hasRttSample) {
      this.hasRttSample = true;
      this.minRtt = latest;
      this.srtt = latest;
      this.rttvar = latest / 2;
      return;
    }
    this.minRtt = Math.min(this.minRtt, latest);
    const adjusted = latest >= this.minRtt + ackDelay ? latest - ackDelay : latest;
    this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - adjusted);
    this.srtt = 0.875 * this.srtt + 0.125 * adjusted;
  }

  private detectLosses(now: number): void {
    this.lossTime = null;
    const lossDelay = Math.max(this.timeThreshold * Math.max(this.srtt, this.hasRttSample ? this.minRtt : this.srtt), TIMER_GRANULARITY_MS);
    let lostAny = false;
    let latestLostTime = -Infinity;
    const sent = this.sent;
    for (let k = sent.start, end = sent.end; k < end; k++) {
      const p = sent.at(k);
      if (p === null) continue;
      const pn = p.pn;
      if (pn > this.largestAcked) break;
      // Compare as lossTime is computed (time + delay), so a timer that fires at lossTime always acts.
      if (this.largestAcked - pn >= this.packetThreshold || p.time + lossDelay <= now) {
        sent.remove(k);
        this.bytesInFlight -= p.size;
        this.lostPackets++;
        const lost = (this.declaredLost ??= new Set());
        lost.add(pn);
        if (p.ackLargest >= 0) this.ackOfAckInFlight = false;
        if (lost.size > DECLARED_LOST_MEMORY) lost.delete(lost.values().next().value!);
        this.requeue(p);
        lostAny = true;
        latestLostTime = Math.max(latestLostTime, p.time);
      } else {
        const t = p.time + lossDelay;
        this.lossTime = this.lossTime === null ? t : Math.min(this.lossTime, t);
      }
    }
    sent.tidy();
    if (lostAny && latestLostTime > this.recoveryStart) {
      this.undo = { cwnd: this.cwnd, ssthresh: this.ssthresh };
      this.recoveryStart = now;
      this.ssthresh = Math.max(this.cwnd / 2, MIN_CWND_PACKETS * this.cfg.maxPayload);
      this.cwnd = this.ssthresh;
    }
  }

  /** Puts a lost packet's unacknowledged chunks (and its CLOSE) back in line, in order, at the front. */
  private requeue(p: SentPacket): void {
    const again = chunksOf(p).filter((c) => !c.acked && !c.queued);
    for (const c of again) c.queued = true;
    this.retx.push(...again);
    if (p.close && this.st === 'closing') this.queue.unshift({ kind: 'close' });
  }

  private ptoDuration(): number {
    return this.srtt + Math.max(4 * this.rttvar, TIMER_GRANULARITY_MS) + this.peerMaxAckDelay;
  }

  private ptoTime(): number | null {
    if (this.bytesInFlight === 0 || this.lastAckElicitingAt === null) return null;
    return this.lastAckElicitingAt + Math.min(this.ptoDuration() * 2 ** this.ptoCount, MAX_PTO_MS);
  }

  // ==== timers ===================================================================================

  nextDeadline(): number | null {
    if (this.st === 'closed') return this.finalAck ? this.lastReceiveAt : null;
    let t = this.cfg.idleWatchedByOwner === true ? Infinity : this.lastReceiveAt + this.cfg.idleTimeoutMs;
    if (this.ackDeadline !== null && this.ackDeadline < t) t = this.ackDeadline;
    const recovery = this.lossTime ?? this.ptoTime();
    if (recovery !== null && recovery < t) t = recovery;
    // Once a PING is pending the keepalive timer has done its job; a past deadline would spin the caller.
    if (this.cfg.keepaliveMs !== null && !this.pingPending && !this.natKeepalivePending && this.lastSendAt + this.cfg.keepaliveMs < t) t = this.lastSendAt + this.cfg.keepaliveMs;
    if (this.closingDeadline !== null && this.closingDeadline < t) t = this.closingDeadline;
    return t === Infinity ? null : t;
  }

  onTimeout(now: number): void {
    if (this.st === 'closed') return;
    if (now >= this.lastReceiveAt + this.cfg.idleTimeoutMs) {
      this.st = 'closed';
      this.events.push({ type: 'closed', code: 1, reason: 'idle timeout', byPeer: false });
      return;
    }
    if (this.closingDeadline !== null && now >= this.closingDeadline) return this.finishClose();
    if (this.lossTime !== null && now >= this.lossTime) {
      this.detectLosses(now);
    } else {
      const pto = this.ptoTime();
      if (pto !== null && now >= pto) {
        this.ptoCount++;
        this.probeBudget = 2;
        // Probe with the oldest data still unacknowledged, or a PING.
        const oldest = this.sent.first();
        const resend = oldest ? chunksOf(oldest).filter((c) => !c.acked && !c.queued) : [];
        if (resend.length > 0) {
          for (const c of resend) c.queued = true;
          this.retx.unshift(...resend);
        } else this.pingPending = true;
      }
    }
    if (this.cfg.keepaliveMs !== null && now >= this.lastSendAt + this.cfg.keepaliveMs) {
      // A PING when the peer has had nothing to answer for about pingEveryMs (half a keepalive of slack
      // for timers that fire late); otherwise the bindings only need traffic, which asks for no answer.
      const sinceEliciting = this.lastAckElicitingAt === null ? Infinity : now - this.lastAckElicitingAt;
      if (this.pingEveryMs === 0 || sinceEliciting >= this.pingEveryMs - this.cfg.keepaliveMs / 2) this.pingPending = true;
      else this.natKeepalivePending = true;
    }
  }

  /** Whether a NAT_KEEPALIVE is due: the owner sends one (it is not a packet of this connection, which
   * counts it as sent now). Call after pollTransmit, which sends it along if a packet leaves anyway. */
  takeNatKeepalive(now: number): boolean {
    if (!this.natKeepalivePending || this.st !== 'open') return false;
    this.natKeepalivePending = false;
    this.lastSendAt = now;
    this.natKeepalivesSent++;
    return true;
  }

  private finishClose(): void {
    if (this.st === 'closed') return;
    this.st = 'closed';
    const info = this.closeInfo ?? { code: 0, reason: '' };
    this.events.push({ type: 'closed', code: info.code, reason: info.reason, byPeer: false });
  }

  pollEvent(): ConnectionEvent | null {
    return this.events.shift() ?? null;
  }
}

/** A sent packet's chunks as one array (for the loss and probe paths, not the ack's). */
function chunksOf(p: SentPacket): Chunk[] {
  if (p.chunk === null) return [];
  return p.moreChunks === null ? [p.chunk] : [p.chunk, ...p.moreChunks];
}

function chunkFrame(c: Chunk): Frame {
  return { type: 'msg', stream: c.msg.stream, seq: c.msg.seq, total: c.total, offset: c.offset, data: c.data };
}

function inRanges(pn: number, ranges: AckRange[]): boolean {
  for (const r of ranges) {
    if (pn > r.hi) return false;
    if (pn >= r.lo) return true;
  }
  return false;
}

function assemble(total: number, parts: Map<number, Uint8Array>): Uint8Array {
  if (parts.size === 1) {
    const only = parts.values().next().value as Uint8Array;
    if (only.length === total) return only;
  }
  const out = new Uint8Array(total);
  for (const [offset, data] of parts) out.set(data, offset);
  return out;
}
