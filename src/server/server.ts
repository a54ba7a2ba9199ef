// The server shell: one UDP socket, one timer, and the glue between the sans-I/O session endpoint
// and the sans-I/O chat core. Everything that can be decided without I/O is decided in those two.

import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DEFAULT_PORT, MAX_DATAGRAM, MAX_STREAMS, RETAIN_DAYS, RETAIN_MESSAGES, RETENTION_SWEEP_MS, SERVER_SEND_RUN_DATAGRAMS } from '../limits.js';
import { fingerprint, type KeyPair } from '../crypto/noise.js';
import { loadOrCreateKeyPair } from '../crypto/keystore.js';
import { ServerEndpoint, type ServerEndpointOptions, type SessionId } from '../session/server-endpoint.js';
import type { Address } from '../session/address.js';
import { ChatCore } from '../chat/core.js';
import { MemoryHub } from '../chat/hub.js';
import { MemoryNameRegistry } from '../chat/registry.js';
import {
  decodeClientMsg,
  encodeServerMsg,
  ErrorCode,
  LeaveReason,
  type ServerMsg,
} from '../wire/message.js';
import { isObrolDatagram } from '../wire/packet.js';
import { CloseCode } from '../session/close-codes.js';
import { Identities } from './identities.js';
import type { Retention, Store } from '../store/store.js';
import { SqliteStore } from '../store/sqlite.js';
import { LegacyGateway, type LegacyStats } from '../legacy/gateway.js';
import { UdpBatchSender } from '../net/udp-batch.js';
import { UdpBatchReceiver, type UdpReceiverOptions } from '../net/udp-recv.js';

export interface ServerOptions {
  host?: string;
  port?: number;
  /** Where the server keeps its static key and its history (history.db). */
  dataDir: string;
  /** Keep history in memory only: nothing survives a restart. */
  memory?: boolean;
  /** Messages replayed on join (default HISTORY_ON_JOIN). */
  historyOnJoin?: number;
  retention?: Partial<Retention>;
  /** Overrides of endpoint limits (tests use small ones). */
  endpoint?: Partial<Omit<ServerEndpointOptions, 'staticKey' | 'random' | 'now'>>;
  chatLimits?: { messageMax?: number; floodBurst?: number; floodRate?: number };
  /** For tests: a store of their own. */
  store?: Store;
  /** For tests: a fixed key instead of the data dir's. */
  staticKey?: KeyPair;
  /** Also speak the original plain-text protocol on the same port (off by default: it is unauthenticated). */
  legacy?: { idleMs?: number; ratePerSec?: number; burst?: number; clientsPerIp?: number };
  /** How the socket is read (tests: scrub, or dgram's events instead of recvmmsg). */
  receive?: UdpReceiverOptions;
}

export interface ServerCounters {
  datagramsIn: number;
  datagramsOut: number;
  bytesIn: number;
  bytesOut: number;
  notObrol: number;
  badMessages: number;
  internalErrors: number;
}

/** Streams are per session: stream 0 carries control messages, each room and each private conversation
 * ('@' + peer) gets its own, so a loss in one does not hold up the others. */
class StreamMap {
  private readonly bySession = new Map<SessionId, Map<string, number>>();

  /** `key` is the room's lower-cased name, or '@' and the peer's. */
  streamFor(sid: SessionId, key: string): number {
    let m = this.bySession.get(sid);
    if (!m) this.bySession.set(sid, (m = new Map()));
    let s = m.get(key);
    if (s === undefined) {
      // Stream ids are never reused within a session; past MAX_STREAMS rooms share the last one.
      s = Math.min(m.size + 1, MAX_STREAMS - 1);
      m.set(key, s);
    }
    return s;
  }

  forget(sid: SessionId): void {
    this.bySession.delete(sid);
  }
}

export class ObrolServer {
  private readonly socket: dgram.Socket;
  /** What a turn sends leaves in sendmmsg calls of SERVER_SEND_RUN_DATAGRAMS at most (dgram where the addon
   * is not built). */
  private readonly out: UdpBatchSender;
  private readonly endpoint: ServerEndpoint;
  readonly chat: ChatCore;
  /** Original-protocol clients, as chat sessions with negative ids; null unless enabled. */
  private readonly legacy: LegacyGateway | null;
  private readonly streams = new StreamMap();
  private readonly identities = new Identities();
  readonly store: Store;
  private readonly retention: Retention;
  private sweeper: NodeJS.Timeout | null = null;
  /** The last two messages encoded, with their stream keys: a fan-out delivers one object to every member
   * (and another, with its ref, to the sender), so each is encoded once, not once per member. */
  private encoded: Encoded[] = [];
  private timer: NodeJS.Timeout | null = null;
  private timerAt: number | null = null;
  private closed = false;
  private flushQueued: NodeJS.Immediate | null = null;
  private readonly receiver: UdpBatchReceiver;
  /** The end of a turn of input (a recvmmsg batch, the datagrams dgram read in one event-loop turn, a
   * timer): seal what the sessions have to send, hand it to the kernel (sendmmsg runs of
   * SERVER_SEND_RUN_DATAGRAMS, the first leaving while the rest are sealed), re-arm the
   * timer. Sealing once per turn rather than per datagram lets a member's share of several messages in
   * one batch leave in one packet. */
  private readonly endTurn = (): void => {
    this.flushQueued = null;
    try {
      this.endpoint.flushTransmits(monoNow());
      this.flushSocket();
      this.arm();
    } catch (e) {
      this.counters.internalErrors++;
      if (process.env.OBROL_DEBUG) console.error(e);
    }
  };
  readonly counters: ServerCounters = {
    datagramsIn: 0,
    datagramsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    notObrol: 0,
    badMessages: 0,
    internalErrors: 0,
  };
  readonly fingerprint: string;

  private constructor(
    socket: dgram.Socket,
    readonly staticKey: KeyPair,
    store: Store,
    opts: ServerOptions,
  ) {
    this.socket = socket;
    this.out = new UdpBatchSender(socket, { maxBatch: SERVER_SEND_RUN_DATAGRAMS });
    this.fingerprint = fingerprint(staticKey.publicKey);
    this.endpoint = new ServerEndpoint({
      ...opts.endpoint,
      staticKey,
      random: (n) => new Uint8Array(randomBytes(n)),
      now: monoNow(),
      deliveryEvents: false,
    });
    // Each datagram is sealed straight into the send batch's memory.
    const out = this.out;
    const counters = this.counters;
    this.endpoint.setTransmitArena({
      reserve: (to, maxBytes) => out.reserve(to.port, to.address, maxBytes),
      get bytes() {
        return out.bytes;
      },
      commit(length) {
        counters.datagramsOut++;
        counters.bytesOut += length;
        out.commit(length);
      },
    });
    const deliver = (to: SessionId, msg: ServerMsg): void => this.deliver(to, msg);
    this.store = store;
    this.retention = {
      maxMessages: opts.retention?.maxMessages ?? RETAIN_MESSAGES,
      maxAgeMs: opts.retention?.maxAgeMs ?? RETAIN_DAYS * 86_400_000,
    };
    const hub = new MemoryHub(deliver);
    this.chat = new ChatCore({
      hub,
      registry: new MemoryNameRegistry(),
      store,
      deliver,
      limits: { ...opts.chatLimits, historyOnJoin: opts.historyOnJoin },
    });
    this.sweep();
    this.sweeper = setInterval(() => this.sweep(), RETENTION_SWEEP_MS).unref();
    // The gateway runs on the endpoint's monotonic clock; the chat core stamps wall-clock time.
    this.legacy = opts.legacy ? new LegacyGateway(this.chat, { ...opts.legacy, chatTime: () => Date.now() }) : null;
    // The gateway hands a room's line to every member as one object, never changed once handed out: it is
    // copied into the send batch once and queued once per member. A room's publish reaches the gateway
    // once (the hub's group delivery), and its line all the room's legacy members in one pushGroup.
    if (this.legacy) {
      hub.setGroupDelivery(this.legacy);
      this.legacy.setTransmitSink(
        (to, data) => {
          this.counters.datagramsOut++;
          this.counters.bytesOut += data.length;
          this.out.pushShared(data, to.port, to.address);
        },
        (group, data, except) => {
          const n = this.out.pushGroup(data, group, except);
          this.counters.datagramsOut += n;
          this.counters.bytesOut += n * data.length;
        },
      );
    }
    this.receiver = new UdpBatchReceiver(socket, (data, from) => this.onDatagram(data, from), () => this.onBatchEnd(), opts.receive);
  }

  static async start(opts: ServerOptions): Promise<ObrolServer> {
    const staticKey = opts.staticKey ?? loadOrCreateKeyPair(join(opts.dataDir, 'server.key'));
    let store = opts.store;
    if (!store) {
      if (!opts.memory) mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
      store = new SqliteStore(opts.memory ? ':memory:' : join(opts.dataDir, 'history.db'));
    }
    const host = opts.host ?? '0.0.0.0';
    const socket = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(opts.port ?? DEFAULT_PORT, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    const server = new ObrolServer(socket, staticKey, store, opts);
    socket.on('error', () => {
      server.counters.internalErrors++; // e.g. ICMP unreachable surfacing as a send error: never fatal
    });
    return server;
  }

  address(): Address {
    const a = this.socket.address();
    return { address: a.address, port: a.port };
  }

  get sessionCount(): number {
    return this.endpoint.sessionCount;
  }

  get drops(): ReadonlyMap<string, number> {
    return this.endpoint.drops;
  }

  get unvalidatedBytes(): { received: number; sent: number } {
    return this.endpoint.unvalidated;
  }

  /** Applies retention; a failure is counted, never fatal. */
  private sweep(): void {
    try {
      this.store.prune(Date.now(), this.retention);
    } catch (e) {
      this.counters.internalErrors++;
      if (process.env.OBROL_DEBUG) console.error(e);
    }
  }

  get legacyStats(): Readonly<LegacyStats> | null {
    return this.legacy?.stats ?? null;
  }

  private flushSocket(): void {
    try {
      this.out.flush();
    } catch (e) {
      this.counters.internalErrors++; // the socket closed under us: nothing left to send on it
      if (process.env.OBROL_DEBUG) console.error(e);
    }
  }

  /** One datagram; data is valid only during the call (see UdpBatchReceiver). */
  private onDatagram(data: Uint8Array, from: Address): void {
    this.counters.datagramsIn++;
    this.counters.bytesIn += data.length;
    try {
      const bytes = data.length > MAX_DATAGRAM ? data.subarray(0, MAX_DATAGRAM) : data;
      if (isObrolDatagram(bytes)) {
        this.endpoint.handleDatagram(monoNow(), from, bytes);
      } else if (this.legacy) {
        this.legacy.handleDatagram(monoNow(), from, bytes);
      } else {
        this.counters.notObrol++;
      }
      this.pump();
      // With recvmmsg, onBatchEnd ends the turn; with dgram, the event loop's next check phase, once it
      // has run every datagram it read in this turn (libuv reads up to 32 per socket).
      if (!this.receiver.native && this.flushQueued === null) this.flushQueued = setImmediate(this.endTurn);
    } catch (e) {
      // A bug must not take the server down for everyone; count it and carry on.
      this.counters.internalErrors++;
      if (process.env.OBROL_DEBUG) console.error(e);
    }
  }

  /** After a batch of datagrams read by recvmmsg. */
  private onBatchEnd(): void {
    if (this.flushQueued !== null) clearImmediate(this.flushQueued);
    this.endTurn();
  }

  /** Runs the chat layer on the endpoint's events (what it sends waits for endTurn). */
  private pump(): void {
    const now = monoNow();
    for (;;) {
      const ev = this.endpoint.pollEvent(now);
      if (ev === null) break;
      switch (ev.type) {
        case 'session-open':
          this.identities.bind(ev.sid, ev.clientKey);
          this.onSessionOpen(ev.sid, ev.hello);
          break;
        case 'message':
          this.onMessage(ev.sid, ev.data);
          break;
        case 'session-closed': {
          const why = ev.code === CloseCode.IdleTimeout ? LeaveReason.TimedOut : ev.byPeer ? LeaveReason.Quit : LeaveReason.ConnectionLost;
          this.chat.disconnect(ev.sid, why, ev.byPeer ? '' : ev.reason, Date.now());
          this.streams.forget(ev.sid);
          this.identities.unbind(ev.sid);
          break;
        }
        case 'delivered':
        case 'migrated':
          break;
      }
    }
  }

  private onSessionOpen(sid: SessionId, hello: Uint8Array): void {
    const d = decodeClientMsg(hello);
    if (!d.ok || d.value.type !== 'hello') {
      this.counters.badMessages++;
      this.reject(sid, ErrorCode.BadRequest, 'the first message must be hello');
      return;
    }
    // The same key asking for the name it holds is that client reconnecting: hand the name over quietly.
    const holder = this.chat.ownerOf(d.value.name);
    if (holder !== undefined && holder !== sid && this.identities.sameKey(holder, sid)) {
      this.chat.resume(sid, holder, Date.now());
      this.endpoint.close(monoNow(), holder, CloseCode.Replaced, 'replaced by a newer session of the same client');
      return;
    }
    const r = this.chat.connect(sid, d.value.name, Date.now(), { identity: this.identities.of(sid), resume: d.value.resume });
    if (!r.ok) this.reject(sid, r.code, r.reason);
  }

  private reject(sid: SessionId, code: ErrorCode, reason: string): void {
    const now = monoNow();
    this.endpoint.send(now, sid, 0, encodeServerMsg({ type: 'rejected', code, reason }));
    this.endpoint.close(now, sid, CloseCode.NameRejected, reason);
  }

  private onMessage(sid: SessionId, data: Uint8Array): void {
    const d = decodeClientMsg(data);
    if (!d.ok) {
      this.counters.badMessages++;
      this.deliver(sid, { type: 'error', code: ErrorCode.BadRequest, text: `malformed message (${d.error.code})`, ref: null });
      return;
    }
    const msg = d.value;
    try {
      this.chat.handle(sid, msg, Date.now());
    } catch (e) {
      // Most likely the store (a full disk): the client hears it failed, and nothing was acknowledged.
      this.counters.internalErrors++;
      if (process.env.OBROL_DEBUG) console.error(e);
      const ref = 'ref' in msg ? msg.ref : null;
      this.deliver(sid, { type: 'error', code: ErrorCode.ServerError, text: 'the server failed to do that; try again later', ref });
    }
    if (msg.type === 'quit') this.endpoint.close(monoNow(), sid, CloseCode.Normal, msg.reason);
  }

  private deliver(to: SessionId, msg: ServerMsg): void {
    if (to < 0) {
      this.legacy?.deliver(to, msg); // legacy sessions have negative ids
      return;
    }
    let e = this.encoded[0]?.msg === msg ? this.encoded[0] : this.encoded[1]?.msg === msg ? this.encoded[1] : undefined;
    if (!e) {
      // The session layer only reads the bytes; each session encrypts its own copy.
      e = { msg, bytes: encodeServerMsg(msg), roomKey: roomStreamKey(msg) };
      this.encoded = [e, ...this.encoded.slice(0, 1)];
    }
    const stream = e.roomKey === null ? this.streamOf(to, msg) : e.roomKey === '' ? 0 : this.streams.streamFor(to, e.roomKey);
    const r = this.endpoint.send(monoNow(), to, stream, e.bytes);
    if (!r.ok && r.reason === 'buffer-full') {
      this.endpoint.close(monoNow(), to, CloseCode.TooSlow, 'too slow: the server stopped queueing messages for you');
    }
  }

  /** The stream of a message whose stream depends on its recipient (private ones). */
  private streamOf(to: SessionId, msg: ServerMsg): number {
    if (msg.type !== 'private' || msg.history) return 0; // a replayed private message goes with its caughtup, on stream 0
    const me = this.chat.nameOf(to);
    return this.streams.streamFor(to, '@' + (msg.from === me ? msg.to : msg.from).toLowerCase());
  }

  /** How datagrams arrive: through the recvmmsg addon, or with dgram and why. */
  get receivePath(): string {
    return this.receiver.native ? 'recvmmsg' : `dgram (${this.receiver.fallbackReason ?? 'unknown'})`;
  }

  get receiveStats(): Readonly<UdpBatchReceiver['stats']> {
    return this.receiver.stats;
  }

  /** How datagrams leave: through the sendmmsg addon, or with dgram and why. */
  get sendPath(): string {
    return this.out.native ? 'sendmmsg' : `dgram (${this.out.fallbackReason ?? 'unknown'})`;
  }

  private arm(): void {
    if (this.closed) return;
    const a = this.endpoint.nextDeadline();
    const b = this.legacy?.nextDeadline() ?? null;
    // The chat runs on the wall clock: its deadline, moved to the monotonic one.
    const c = this.chat.nextDeadline();
    const chat = c === null ? null : monoNow() + Math.max(0, c - Date.now());
    let next = a;
    if (b !== null && (next === null || b < next)) next = b;
    if (chat !== null && (next === null || chat < next)) next = chat;
    if (next === this.timerAt) return;
    // An armed timer is kept for a deadline that moved later (in a busy room every delivery moves one):
    // it fires early, finds nothing due, and arms again, instead of a clearTimeout and setTimeout per batch.
    if (this.timer !== null && this.timerAt !== null && (next === null || next > this.timerAt)) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = next;
    if (next === null) return;
    this.timer = setTimeout(() => this.onTimer(), Math.max(0, next - monoNow()));
  }

  private onTimer(): void {
    this.timer = null;
    this.timerAt = null;
    try {
      const now = monoNow();
      this.endpoint.handleTimeout(now);
      this.legacy?.handleTimeout(now);
      this.chat.handleTimeout(Date.now());
      this.pump();
      this.endTurn();
    } catch (e) {
      this.counters.internalErrors++;
      if (process.env.OBROL_DEBUG) console.error(e);
      this.arm();
    }
  }

  /** Stops the server: tells every client, gives the goodbyes a moment to leave, closes the socket. */
  async close(): Promise<void> {
    if (this.closed) return;
    const now = monoNow();
    for (const sid of this.endpoint.sessionIds()) this.endpoint.close(now, sid, CloseCode.ShuttingDown, 'server shutting down');
    this.endpoint.flushTransmits(now);
    if (this.flushQueued !== null) clearImmediate(this.flushQueued);
    this.flushQueued = null;
    this.flushSocket();
    this.closed = true;
    // Closing the socket would discard datagrams still queued in it: let the goodbyes leave first.
    if (this.out.inFlight > 0) await Promise.race([this.out.idle(), new Promise((r) => setTimeout(r, 500))]);
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    this.receiver.close();
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
    this.store.close();
  }
}

interface Encoded {
  msg: ServerMsg;
  bytes: Uint8Array;
  /** The room stream's key ('' for stream 0), or null when the stream depends on the recipient. */
  roomKey: string | null;
}

/** Which stream a message goes on, when that is the same for every recipient: its room's, or 0. */
function roomStreamKey(msg: ServerMsg): string | null {
  switch (msg.type) {
    case 'joined':
    case 'left':
    case 'message':
    case 'members':
    case 'topic':
    case 'nick':
    case 'away':
    case 'presence':
      return msg.room.toLowerCase();
    case 'caughtup':
      return msg.room === null ? '' : msg.room.toLowerCase();
    case 'private':
      return null;
    default:
      return '';
  }
}

/** Monotonic milliseconds for the protocol's timers (wall-clock jumps must not fire or stall them). */
export function monoNow(): number {
  return performance.now();
}
