// The server side of obrol's session layer, sans-I/O. It takes (now, source address, datagram) and
// produces datagrams to send, events for the chat layer, and its next deadline. It owns address
// validation (stateless cookies), the Noise XX handshake, per-session packet protection and reliability,
// roaming (path challenge), and the per-IP handshake/session limits. No sockets, timers or clocks here.

import {
  CONNECT_TIMEOUT_MS,
  DEFAULT_MTU,
  HANDSHAKE_BUCKETS_MAX,
  HANDSHAKES_PER_IP_PER_SEC,
  IDLE_SWEEP_MS,
  IDLE_TIMEOUT_MS,
  MAX_DATAGRAM,
  MAX_SESSIONS,
  RECV_BUFFER_MAX_BYTES,
  SEND_BUFFER_MAX_BYTES,
  SESSIONS_PER_IP,
} from '../limits.js';
import { CookieJar } from '../crypto/cookie.js';
import { NoiseError, NoiseHandshake, type KeyPair } from '../crypto/noise.js';
import {
  AEAD_TAG_LEN,
  CID_LEN,
  DATA_HEADER_LEN,
  dataKeyPhase,
  dataPn,
  decodePacket,
  encodeCookie,
  encodeHsReply,
  encodeReset,
  isDataPacket,
  PROTOCOL_VERSION,
  ResetCode,
  type Packet,
} from '../wire/packet.js';
import type { Frame } from '../wire/frame.js';
import { DeadlineHeap } from '../util/deadline-heap.js';
import { bytesEqual, hex } from '../util/bytes.js';
import { Connection, SERVER_ACK_DELAYS, type ConnectionConfig } from './connection.js';
import { CHANNEL_RECORD_BYTES, SecureChannel } from './channel.js';
import { KeyTable } from '../crypto/key-table.js';
import { addrKey, sameAddr, type Address, type Transmit } from './address.js';
import { NOISE_PROLOGUE } from './handshake.js';

/** How long a path probe to a new address may run before a new packet from there must restart it. */
const PATH_PROBE_MS = 2_000;
/** Packets duplicated to a not-yet-validated address during a probe; bounds what a spoofer can steer. */
const PATH_PROBE_MAX_PACKETS = 4;

export type SessionId = number;

/** Where datagrams go as they are produced, once set (setTransmitSink). `data` is valid only during the
 * call: the endpoint seals the next datagram into the same memory. */
export type TransmitSink = (to: Address, data: Uint8Array) => void;

/**
 * Memory the shell sends from (its send batch), which datagrams are sealed straight into once set
 * (setTransmitArena): no copy and no views per datagram. reserve() gives the offset in `bytes` of room
 * for a datagram of at most maxBytes to `to` (read `bytes` after it: the memory may be new); commit()
 * queues the datagram just written there, `length` bytes.
 */
export interface TransmitArena {
  reserve(to: Address, maxBytes: number): number;
  readonly bytes: Uint8Array;
  commit(length: number): void;
}

export type ServerEvent =
  | {
      type: 'session-open';
      sid: SessionId;
      addr: Address;
      /** The client's long-term public key, authenticated by the handshake. */
      clientKey: Uint8Array;
      /** The ClientHello payload of HS_FINISH. */
      hello: Uint8Array;
    }
  | { type: 'message'; sid: SessionId; stream: number; data: Uint8Array }
  | { type: 'delivered'; sid: SessionId; stream: number; seq: number }
  | { type: 'session-closed'; sid: SessionId; code: number; reason: string; byPeer: boolean }
  | { type: 'migrated'; sid: SessionId; from: Address; to: Address };

/** Why a datagram was dropped; counted, never thrown. */
export type DropReason =
  | 'malformed'
  | 'bad-version'
  | 'bad-cookie-hello'
  | 'handshake-failed'
  | 'handshake-rate'
  | 'too-many-sessions'
  | 'unknown-session'
  | 'replay'
  | 'auth'
  | 'frames'
  | 'over-buffer'
  | 'unexpected';

export interface ServerEndpointOptions {
  staticKey: KeyPair;
  random: (n: number) => Uint8Array;
  now: number;
  mtu?: number;
  idleTimeoutMs?: number;
  sendBufferMax?: number;
  recvBufferMax?: number;
  maxSessions?: number;
  sessionsPerIp?: number;
  handshakesPerIpPerSec?: number;
  /** false: no 'delivered' events (the chat server has no use for them, and in a busy room they are an
   * event per recipient per message). Default true. */
  deliveryEvents?: boolean;
}

interface Pending {
  kind: 'pending';
  /** Where our cid points (see ServerEndpoint.slots), and the cid's other half, which must match. */
  slot: number;
  check: number;
  clientCid: Uint8Array;
  addr: Address;
  hs: NoiseHandshake;
  reply: Uint8Array;
  expires: number;
  /** When HS_REPLY first went out: HS_FINISH a round trip later gives a first RTT estimate. */
  sentAt: number;
  resent: boolean;
}

interface Session {
  kind: 'session';
  sid: SessionId;
  /** Where our cid points (see ServerEndpoint.slots), and the cid's other half, which must match. */
  slot: number;
  check: number;
  ip: string;
  addr: Address;
  conn: Connection;
  channel: SecureChannel;
  /** When the connection next wants handleTimeout (its nextDeadline), or null. */
  deadline: number | null;
  /** The time of this session's live entry in the timer heap, or null: never later than deadline. A
   * deadline that moves later (every packet sent moves the probe timeout) leaves the entry where it is;
   * when that entry comes up, it is filed again at the deadline of then. */
  filed: number | null;
  /** In `dirty`, waiting for flushSession. */
  dirty: boolean;
  probe: { addr: Address; data: Uint8Array; until: number; dupLeft: number } | null;
}

export class ServerEndpoint {
  /**
   * Handshakes and sessions by slot. Our cid for each is its slot (xored with slotMask) and a random
   * check word: a packet's cid finds its entry with an array index and one comparison of numbers, not a
   * hash lookup and a byte compare. At 100,000 sessions, with keepalives arriving in random order, the
   * hash table and the cid bytes were cache misses costing about 4 µs per packet. The cid is no secret
   * (it travels in clear, and AEAD authenticates every packet); the check word refuses a stale or made-up
   * cid before any decryption. Freed slots are reused: a packet for a closed session then meets another
   * check word, and is an unknown session as before.
   */
  private readonly slots: (Pending | Session | undefined)[] = [];
  private readonly freeSlots: number[] = [];
  private liveSlots = 0;
  private readonly slotMask: number;
  /** When each slot's session last received a packet it accepted: the idle sweep's input (IDLE_SWEEP_MS). */
  private lastHeard = new Float64Array(1024);
  private nextSweep: number;
  private readonly pendingByHello = new Map<string, Pending>();
  private readonly sessions = new Map<SessionId, Session>();
  private readonly sessionsPerIp = new Map<string, number>();
  private readonly handshakeBuckets = new Map<string, { tokens: number; at: number }>();
  /** Sessions' deadlines by slot (an array index, not a map lookup per timer; a slot's entry is current
   * only while it is the session's `filed` time). In a busy room every delivery moves its session's
   * deadline later; filing each move was a push and later a pop of a stale entry per delivery (5% of the
   * server's time at 100 clients). Now a session is filed again only when its entry comes up: about
   * once per probe timeout. */
  private readonly timers = new DeadlineHeap<number>();
  private readonly pendingTimers = new DeadlineHeap<number>();
  /** Sessions touched since the last flush, each once (Session.dirty): the objects themselves, so a flush
   * does not look each one up again among 100,000. */
  private readonly dirty: Session[] = [];
  private readonly out: Transmit[] = [];
  private sink: TransmitSink | null = null;
  private arena: TransmitArena | null = null;
  /** Where datagrams are sealed for the sink: one reused buffer, large enough for any datagram we build. */
  private readonly sealScratch = new Uint8Array(MAX_DATAGRAM);
  /** Every session's keys and peer cid, a record each (see KeyTable). */
  private readonly keyTable = new KeyTable(CHANNEL_RECORD_BYTES, 1024);
  private readonly events: ServerEvent[] = [];
  private readonly cookies: CookieJar;
  private readonly connConfig: ConnectionConfig;
  private nextSid = 1;

  readonly drops = new Map<DropReason, number>();
  /** Bytes received from and sent to addresses that have not completed a handshake (amplification audit). */
  readonly unvalidated = { received: 0, sent: 0 };
  /** NAT_KEEPALIVE datagrams received (and ignored). */
  natKeepalives = 0;

  constructor(private readonly opts: ServerEndpointOptions) {
    this.cookies = new CookieJar(() => opts.random(32), opts.now);
    this.slotMask = u32le(opts.random(4), 0);
    this.nextSweep = opts.now + IDLE_SWEEP_MS;
    const mtu = opts.mtu ?? DEFAULT_MTU;
    this.connConfig = {
      maxPayload: mtu - DATA_HEADER_LEN - AEAD_TAG_LEN,
      keepaliveMs: null,
      ...SERVER_ACK_DELAYS,
      idleTimeoutMs: opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS,
      idleWatchedByOwner: true,
      sendBufferMax: opts.sendBufferMax ?? SEND_BUFFER_MAX_BYTES,
      recvBufferMax: opts.recvBufferMax ?? RECV_BUFFER_MAX_BYTES,
      deliveryEvents: opts.deliveryEvents ?? true,
    };
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  private drop(reason: DropReason): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
  }

  private emit(to: Address, data: Uint8Array, validated: boolean): void {
    if (!validated) this.unvalidated.sent += data.length;
    if (this.arena !== null) {
      const at = this.arena.reserve(to, data.length);
      this.arena.bytes.set(data, at);
      this.arena.commit(data.length);
    } else if (this.sink !== null) this.sink(to, data);
    else this.out.push({ to, data });
  }

  /**
   * Hands every datagram to sink as it is produced, sealed into memory reused for the next one, instead of
   * queueing a copy for pollTransmit/drainTransmits (which then return nothing): the shell's fast path, one
   * allocation fewer per datagram. What is already queued goes to sink first. Still no I/O here: the
   * sink is the shell's.
   */
  setTransmitSink(sink: TransmitSink): void {
    this.arena = null;
    this.sink = sink;
    for (const t of this.out.splice(0, this.out.length)) sink(t.to, t.data);
  }

  /** Seals every datagram straight into the shell's send memory (see TransmitArena) instead of a sink or
   * the queue; what is already queued goes there first. */
  setTransmitArena(arena: TransmitArena): void {
    this.sink = null;
    this.arena = arena;
    for (const t of this.out.splice(0, this.out.length)) this.emit(t.to, t.data, true);
  }

  /** Produces what every session has to send now (to the sink, or the queue without one). */
  flushTransmits(now: number): void {
    this.flushDirty(now);
  }

  /**
   * One datagram from the network. A DATA packet is decrypted in place: datagram is the endpoint's to
   * overwrite (the shell's receive memory), and nothing here keeps a view of it past this call.
   */
  handleDatagram(now: number, from: Address, datagram: Uint8Array): void {
    // DATA, nearly every datagram, read in place: no packet object or views (decodePacket's checks, the
    // same as isDataPacket's, are what a test holds them to).
    if (isDataPacket(datagram)) return this.onData(now, from, datagram);
    const decoded = decodePacket(datagram);
    if (!decoded.ok) return this.drop('malformed');
    const p = decoded.value;
    switch (p.type) {
      case 'hello':
        this.unvalidated.received += datagram.length;
        return this.onHello(now, from, p);
      case 'hs-finish':
        return this.onHsFinish(now, from, p);
      case 'nat-keepalive':
        // Its work was done on the way (NAT bindings refreshed); it proves nothing, so it keeps no session
        // alive and gets no answer.
        this.natKeepalives++;
        return;
      default:
        // COOKIE, HS_REPLY and RESET only travel to clients.
        return this.drop('unexpected');
    }
  }

  private onHello(now: number, from: Address, p: Extract<Packet, { type: 'hello' }>): void {
    if (p.version !== PROTOCOL_VERSION) {
      this.drop('bad-version');
      return this.emit(from, encodeReset(p.cid, ResetCode.BadVersion), false);
    }
    if (p.cookie.length === 0 || !this.cookies.verify(now, from, p.cid, p.cookie)) {
      if (p.cookie.length > 0) this.drop('bad-cookie-hello');
      return this.emit(from, encodeCookie(p.cid, this.cookies.mint(now, from, p.cid)), false);
    }
    // The address is validated from here on.
    const helloKey = `${addrKey(from)}|${hex(p.cid)}`;
    const existing = this.pendingByHello.get(helloKey);
    if (existing) {
      existing.resent = true; // our HS_REPLY was lost
      return this.emit(from, existing.reply, true);
    }

    if (!this.takeHandshakeToken(now, from.address)) return this.drop('handshake-rate');
    const maxSessions = this.opts.maxSessions ?? MAX_SESSIONS;
    const perIp = this.opts.sessionsPerIp ?? SESSIONS_PER_IP;
    if (this.liveSlots >= maxSessions || (this.sessionsPerIp.get(from.address) ?? 0) >= perIp) {
      this.drop('too-many-sessions');
      return this.emit(from, encodeReset(p.cid, ResetCode.Busy), true);
    }

    const hs = new NoiseHandshake({ initiator: false, prologue: NOISE_PROLOGUE, staticKey: this.opts.staticKey });
    let reply: Uint8Array;
    try {
      hs.readMessage(p.noise);
      reply = hs.writeMessage(new Uint8Array(0));
    } catch (e) {
      if (e instanceof NoiseError) return this.drop('handshake-failed');
      throw e;
    }
    const slot = this.freeSlots.pop() ?? this.slots.length;
    const check = u32le(this.opts.random(4), 0);
    const cid = new Uint8Array(CID_LEN);
    putU32le(cid, 0, slot ^ this.slotMask);
    putU32le(cid, 4, check);
    const pending: Pending = {
      kind: 'pending',
      slot,
      check,
      // A copy: p.cid is a view into the 1200-byte HELLO datagram, which the session would keep alive.
      clientCid: p.cid.slice(),
      addr: from,
      hs,
      reply: encodeHsReply(p.cid, cid, reply),
      expires: now + CONNECT_TIMEOUT_MS,
      sentAt: now,
      resent: false,
    };
    this.slots[slot] = pending;
    this.liveSlots++;
    this.pendingByHello.set(helloKey, pending);
    this.countIp(from.address, +1);
    this.pendingTimers.push(pending.expires, slot);
    this.emit(from, pending.reply, true);
  }

  private onHsFinish(now: number, from: Address, p: Extract<Packet, { type: 'hs-finish' }>): void {
    const entry = this.lookup(p.cid);
    if (!entry) return this.drop('unknown-session');
    if (entry.kind === 'session') return; // a retransmitted HS_FINISH; our DATA will reach the client
    if (!sameAddr(entry.addr, from)) return this.drop('unexpected');
    let hello: Uint8Array;
    try {
      hello = entry.hs.readMessage(p.noise);
    } catch (e) {
      if (e instanceof NoiseError) return this.drop('handshake-failed');
      throw e;
    }
    const clientKey = entry.hs.remoteStatic;
    if (clientKey === null) return this.drop('handshake-failed');
    const keys = entry.hs.split();
    this.pendingByHello.delete(`${addrKey(entry.addr)}|${hex(entry.clientCid)}`);
    const sid = this.nextSid++;
    const session: Session = {
      kind: 'session',
      sid,
      slot: entry.slot,
      check: entry.check,
      ip: from.address,
      addr: from,
      conn: new Connection(this.connConfig, now, entry.resent ? undefined : now - entry.sentAt),
      channel: new SecureChannel({ send: keys.send, recv: keys.recv }, entry.clientCid, now, undefined, undefined, this.keyTable),
      deadline: null,
      filed: null,
      dirty: false,
      probe: null,
    };
    this.slots[entry.slot] = session;
    this.heard(entry.slot, now);
    this.sessions.set(sid, session);
    this.events.push({ type: 'session-open', sid, addr: from, clientKey, hello });
    this.touch(session);
  }

  private onData(now: number, from: Address, datagram: Uint8Array): void {
    const entry = this.lookup(datagram, 1);
    if (entry?.kind === 'pending') return this.drop('unexpected'); // DATA overtook HS_FINISH; it will be resent
    if (!entry) {
      this.drop('unknown-session');
      // Tell a client whose server restarted to reconnect now rather than after its idle timeout.
      // 11 bytes in answer to at least 29: never an amplifier.
      if (datagram.length > 11) this.emit(from, encodeReset(datagram.subarray(1, 1 + CID_LEN), ResetCode.UnknownSession), false);
      return;
    }
    const s = entry;
    const pn = dataPn(datagram);
    const payload = s.channel.openInPlace(now, dataKeyPhase(datagram), pn, datagram);
    if (typeof payload === 'string') return this.drop(payload);
    const verdict = s.conn.onPacket(now, pn, payload);
    if (verdict === 'accepted') this.lastHeard[s.slot] = now;
    else if (verdict === 'malformed') this.drop('frames');
    else if (verdict === 'over-buffer') this.drop('over-buffer');
    // Its events now, its output at flushTransmits: the replies to a whole batch of datagrams (a room's
    // fan-out of several messages) then share packets.
    if (!this.collectEvents(now, s)) return;
    if (!sameAddr(from, s.addr)) this.startProbe(now, s, from);
    this.touch(s);
  }

  /** An authenticated packet came from a new address: challenge it before moving the session. */
  private startProbe(now: number, s: Session, to: Address): void {
    if (s.probe && sameAddr(s.probe.addr, to) && now < s.probe.until) return;
    const data = this.opts.random(8);
    s.probe = { addr: to, data, until: now + PATH_PROBE_MS, dupLeft: PATH_PROBE_MAX_PACKETS };
    s.conn.sendFrame({ type: 'path-challenge', data }, now);
  }

  private onPathResponse(s: Session, data: Uint8Array): void {
    if (!s.probe || !bytesEqual(s.probe.data, data)) return;
    const from = s.addr;
    s.addr = s.probe.addr;
    s.probe = null;
    if (from.address !== s.addr.address) {
      this.countIp(from.address, -1);
      this.countIp(s.addr.address, +1);
      s.ip = s.addr.address;
    }
    this.events.push({ type: 'migrated', sid: s.sid, from, to: s.addr });
  }

  /** Queue an application message on a session's stream. */
  send(now: number, sid: SessionId, stream: number, data: Uint8Array): ReturnType<Connection['send']> {
    const s = this.sessions.get(sid);
    if (!s) return { ok: false, reason: 'closed' };
    const r = s.conn.send(stream, data, now);
    this.touch(s);
    return r;
  }

  close(now: number, sid: SessionId, code: number, reason: string): void {
    const s = this.sessions.get(sid);
    if (!s) return;
    s.conn.close(code, reason, now);
    this.touch(s);
  }

  sendFrameTo(now: number, sid: SessionId, f: Frame): void {
    const s = this.sessions.get(sid);
    if (!s) return;
    s.conn.sendFrame(f, now);
    this.touch(s);
  }

  sessionIds(): SessionId[] {
    return [...this.sessions.keys()];
  }

  addressOf(sid: SessionId): Address | undefined {
    return this.sessions.get(sid)?.addr;
  }

  statsOf(sid: SessionId): Connection['stats'] | undefined {
    return this.sessions.get(sid)?.conn.stats;
  }

  /** Mark a session as possibly having output and events, and refresh its timer. */
  private touch(s: Session): void {
    if (s.dirty) return;
    s.dirty = true;
    this.dirty.push(s);
  }

  /** Seals and hands out everything the session has to send, collects its events, files its deadline. */
  private flushSession(now: number, s: Session): void {
    this.transmit(now, s);
    if (!this.collectEvents(now, s)) return;
    const d = s.conn.nextDeadline();
    s.deadline = d;
    if (d !== null && (s.filed === null || d < s.filed)) {
      s.filed = d;
      this.timers.push(d, s.slot);
    }
  }

  /** Seals every packet the session's connection has to send, into the arena or the sink or the queue. */
  private transmit(now: number, s: Session): void {
    const sink = this.sink;
    const arena = this.arena;
    for (;;) {
      const tx = s.conn.pollTransmit(now);
      if (tx === null) break;
      if (s.probe !== null && now >= s.probe.until) s.probe = null;
      const probe = s.probe;
      const dup = probe !== null && probe.dupLeft > 0;
      // The datagram as bytes of its own, where a probe's copy needs them (into the arena, it is sealed in
      // place, and the next reserve may send and reuse that memory).
      let datagram: Uint8Array | null = null;
      if (arena !== null) {
        const at = arena.reserve(s.addr, DATA_HEADER_LEN + tx.length + AEAD_TAG_LEN);
        const size = s.channel.sealAt(now, tx.pn, tx.bytes, tx.length, arena.bytes, at);
        if (dup) datagram = arena.bytes.slice(at, at + size);
        arena.commit(size);
      } else {
        datagram = s.channel.seal(now, tx.pn, tx.payload, sink !== null ? this.sealScratch : null);
        if (sink !== null) sink(s.addr, datagram);
        else this.out.push({ to: s.addr, data: datagram });
      }
      if (dup && datagram !== null) {
        probe.dupLeft--;
        this.emit(probe.addr, datagram, true);
      }
    }
  }

  /** Moves the connection's events into the endpoint's queue; false when the session closed (it is gone).
   * A connection makes events only when a packet arrives or a timer fires. */
  private collectEvents(now: number, s: Session): boolean {
    for (;;) {
      const ev = s.conn.pollEvent();
      if (ev === null) return true;
      switch (ev.type) {
        case 'message':
          this.events.push({ type: 'message', sid: s.sid, stream: ev.stream, data: ev.data });
          break;
        case 'delivered':
          this.events.push({ type: 'delivered', sid: s.sid, stream: ev.stream, seq: ev.seq });
          break;
        case 'path-response':
          this.onPathResponse(s, ev.data);
          break;
        case 'path-challenge':
          break; // the connection answers challenges itself
        case 'closed':
          this.transmit(now, s); // a peer's CLOSE gets its final ACK before the session goes
          this.removeSession(s);
          this.events.push({ type: 'session-closed', sid: s.sid, code: ev.code, reason: ev.reason, byPeer: ev.byPeer });
          return false;
      }
    }
  }

  private removeSession(s: Session): void {
    s.channel.dispose();
    this.sessions.delete(s.sid);
    this.freeSlot(s.slot);
    this.countIp(s.ip, -1);
  }

  /** Next datagram to send, or null. Call until null after every input. */
  pollTransmit(now: number): Transmit | null {
    if (this.out.length === 0 && this.dirty.length > 0) this.flushDirty(now);
    return this.out.shift() ?? null;
  }

  /** Drains all output at once (the shell's fast path). */
  drainTransmits(now: number): Transmit[] {
    this.flushDirty(now);
    return this.out.splice(0, this.out.length);
  }

  private flushDirty(now: number): void {
    // A flush may touch more sessions: they are appended, and flushed in this same loop.
    const dirty = this.dirty;
    for (let i = 0; i < dirty.length; i++) {
      const s = dirty[i]!;
      s.dirty = false;
      if (this.slots[s.slot] === s) this.flushSession(now, s); // else removed: a flush still queued is skipped
    }
    dirty.length = 0;
  }

  /** The next event. Events are collected as packets arrive and timers fire; output waits for
   * flushTransmits (or pollTransmit, drainTransmits, handleTimeout). */
  pollEvent(_now: number): ServerEvent | null {
    return this.events.shift() ?? null;
  }

  nextDeadline(): number | null {
    // Bounded: each pass drops an entry, or files a session later than the entry it removes (at most
    // once per session: the new entry is at its deadline, where the loop stops).
    for (;;) {
      const t = this.timers.peekTime();
      if (t === null) break;
      const s = this.slots[this.timers.peekKey()!];
      if (s === undefined || s.kind !== 'session' || s.filed !== t) {
        this.timers.pop(); // stale: superseded by an earlier entry, or the slot's session is gone
        continue;
      }
      if (s.deadline !== null && s.deadline <= t) break;
      this.timers.pop();
      s.filed = s.deadline;
      if (s.deadline !== null) this.timers.push(s.deadline, s.slot); // it moved later since it was filed
    }
    let next = this.timers.peekTime() ?? Infinity;
    const p = this.pendingTimers.peekTime();
    if (p !== null && p < next) next = p;
    if (this.sessions.size > 0 && this.nextSweep < next) next = this.nextSweep;
    return next === Infinity ? null : next;
  }

  handleTimeout(now: number): void {
    for (;;) {
      const t = this.timers.peekTime();
      if (t === null || t > now) break;
      const s = this.slots[this.timers.pop()!.key];
      if (s === undefined || s.kind !== 'session' || s.filed !== t) continue;
      s.filed = null;
      if (s.deadline === null) continue;
      if (s.deadline > now) {
        // Moved later since it was filed: not due yet.
        s.filed = s.deadline;
        this.timers.push(s.deadline, s.slot);
        continue;
      }
      s.deadline = null;
      s.conn.onTimeout(now);
      this.touch(s);
    }
    for (;;) {
      const t = this.pendingTimers.peekTime();
      if (t === null || t > now) break;
      const { key: slot } = this.pendingTimers.pop()!;
      const p = this.slots[slot];
      if (p && p.kind === 'pending' && p.expires <= now) {
        this.freeSlot(slot);
        this.pendingByHello.delete(`${addrKey(p.addr)}|${hex(p.clientCid)}`);
        this.countIp(p.addr.address, -1);
      }
    }
    if (now >= this.nextSweep) this.sweepIdle(now);
    this.flushDirty(now);
  }

  /** Times out every session that has heard nothing for the idle timeout: one pass over lastHeard. */
  private sweepIdle(now: number): void {
    this.nextSweep = now + IDLE_SWEEP_MS;
    const before = now - this.connConfig.idleTimeoutMs;
    const heard = this.lastHeard;
    const n = Math.min(this.slots.length, heard.length);
    for (let slot = 0; slot < n; slot++) {
      if (heard[slot]! > before) continue;
      const s = this.slots[slot];
      if (s === undefined || s.kind !== 'session') continue;
      s.conn.onTimeout(now);
      this.touch(s);
    }
  }

  private heard(slot: number, now: number): void {
    if (slot >= this.lastHeard.length) {
      const grown = new Float64Array(Math.max(this.lastHeard.length * 2, slot + 1));
      grown.set(this.lastHeard);
      this.lastHeard = grown;
    }
    this.lastHeard[slot] = now;
  }

  private takeHandshakeToken(now: number, ip: string): boolean {
    const rate = this.opts.handshakesPerIpPerSec ?? HANDSHAKES_PER_IP_PER_SEC;
    let b = this.handshakeBuckets.get(ip);
    if (!b) {
      // Bounded: forget full buckets when the map grows, they carry no information.
      if (this.handshakeBuckets.size >= HANDSHAKE_BUCKETS_MAX) {
        for (const [k, v] of this.handshakeBuckets) if (v.tokens + ((now - v.at) / 1000) * rate >= rate) this.handshakeBuckets.delete(k);
        if (this.handshakeBuckets.size >= HANDSHAKE_BUCKETS_MAX) return false; // under a handshake storm: refuse new IPs
      }
      b = { tokens: rate, at: now };
      this.handshakeBuckets.set(ip, b);
    }
    b.tokens = Math.min(rate, b.tokens + ((now - b.at) / 1000) * rate);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private countIp(ip: string, delta: number): void {
    const n = (this.sessionsPerIp.get(ip) ?? 0) + delta;
    if (n <= 0) this.sessionsPerIp.delete(ip);
    else this.sessionsPerIp.set(ip, n);
  }

  private freeSlot(slot: number): void {
    this.slots[slot] = undefined;
    this.freeSlots.push(slot);
    this.liveSlots--;
  }

  /** The session or handshake whose cid this is: the slot finds it, the check word must match. */
  private lookup(bytes: Uint8Array, at = 0): Pending | Session | undefined {
    const slot = (u32le(bytes, at) ^ this.slotMask) >>> 0;
    if (slot >= this.slots.length) return undefined;
    const e = this.slots[slot];
    return e !== undefined && e.check === u32le(bytes, at + 4) ? e : undefined;
  }
}

function u32le(b: Uint8Array, at: number): number {
  return ((b[at] ?? 0) | ((b[at + 1] ?? 0) << 8) | ((b[at + 2] ?? 0) << 16) | ((b[at + 3] ?? 0) << 24)) >>> 0;
}

function putU32le(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
  b[at + 2] = (v >>> 16) & 0xff;
  b[at + 3] = (v >>> 24) & 0xff;
}
