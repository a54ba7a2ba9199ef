// The obrol client library: a typed chat client over the sans-I/O ClientEndpoint.
// It owns the socket, the timer, server-key pinning, pacing within the server's flood limits,
// reconnecting with backoff, the record of commands sent but not yet confirmed by the server (resent
// after a reconnect; the server recognises a resent ref and does not post it twice), and catch-up:
// after a reconnect or a restart it rejoins its rooms and replays exactly what it missed (catchup.ts).

import dgram from 'node:dgram';
import { randomBytes, randomInt } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  AWAY_MAX_BYTES,
  DEFAULT_PORT,
  FLOOD_BURST,
  HISTORY_REQUESTS_IN_FLIGHT,
  SHORT_TEXT_MAX_BYTES,
  TOPIC_MAX_BYTES,
  FLOOD_RATE_PER_SEC,
  MESSAGE_MAX_BYTES,
  QUIT_WAIT_MS,
  RECONNECT_MAX_MS,
  RECONNECT_MIN_MS,
  STALL_AFTER_MS,
} from '../limits.js';
import { fingerprint, type KeyPair } from '../crypto/noise.js';
import { configDir, KnownServers, loadOrCreateKeyPair } from '../crypto/keystore.js';
import { ClientEndpoint, type CloseKind, type ServerKeyVerdict } from '../session/client-endpoint.js';
import { CloseCode } from '../session/close-codes.js';
import {
  decodeServerMsg,
  encodeClientMsg,
  ErrorCode,
  LeaveReason,
  type ClientMsg,
  type MemberInfo,
  type RoomInfo,
  type ServerMsg,
} from '../wire/message.js';
import { utf8Bytes } from '../wire/buf.js';
import { checkName, checkRoom, foldKey } from '../chat/names.js';
import { CatchUpState } from './catchup.js';
import { readState, stateFilePath, writeState } from './state-file.js';

export const LOBBY = '#lobby';
/** The stream a client sends its commands on (stream 0 is control): one stream keeps them in order. */
const SEND_STREAM = 1;
/** How long the state file may lag behind: written at most this often, and on close. */
const STATE_WRITE_DELAY_MS = 1_000;

export interface ClientOptions {
  name: string;
  host: string;
  port?: number;
  /** Expected server key fingerprint for a verified first contact (as printed by `obrol serve`). */
  fingerprint?: string;
  /** Defaults to the XDG config dir (OBROL_CONFIG_DIR overrides). */
  configDir?: string;
  /** A fixed identity instead of the config dir's (tests, bots). */
  identity?: KeyPair;
  mtu?: number;
  connectTimeoutMs?: number;
  /** Reconnect after losing an established session (default true). */
  reconnect?: boolean;
  /**
   * Where to remember rooms and last seen message ids between runs, so a restart catches up. Default: under
   * the config dir, per server and name, unless a fixed `identity` was given; null: remember nothing.
   */
  stateFile?: string | null;
}

export type LeaveWhy = 'quit' | 'timeout' | 'lost' | 'kicked' | 'part';

/** Connection status for people: shown in status bars and on stderr. */
export type Status = 'connecting' | 'open' | 'unresponsive' | 'reconnecting';

export type { MemberInfo, RoomInfo };

export type ChatEvent =
  | { type: 'connected'; server: string; fingerprint: string; pinned: 'new' | 'known' }
  | { type: 'status'; status: Status; detail: string }
  | { type: 'welcome'; name: string; messageMax: number; floodBurst: number; floodRate: number }
  | { type: 'joined'; room: string; name: string; ts: number }
  | { type: 'left'; room: string; name: string; why: LeaveWhy; reason: string; ts: number }
  | (Omit<Extract<ServerMsg, { type: 'message' }>, 'ref'> & {
      /** True for the echo of a message this client sent. */
      own: boolean;
    })
  | (Omit<Extract<ServerMsg, { type: 'private' }>, 'ref'> & { own: boolean })
  /** A room's topic: `changed` when someone just set it, otherwise shown on join or asked for. */
  | { type: 'topic'; room: string; topic: string; by: string; ts: number; changed: boolean }
  /** Someone in `room` changed name; room '' is this client's own new name. */
  | { type: 'nick'; room: string; old: string; name: string; ts: number }
  /** Someone's away text ('' when back); room '' answers a private message to someone away. */
  | { type: 'away'; room: string; name: string; text: string; ts: number }
  /** A room's members: `requested` by /who, or (false) the first page sent on joining. */
  | { type: 'members'; room: string; members: MemberInfo[]; omitted: number; requested: boolean }
  | { type: 'rooms'; rooms: RoomInfo[]; omitted: number }
  /** A replay (join or reconnect) of a room (null: of private messages) is complete. */
  | { type: 'caughtup'; room: string | null }
  /** A command worked; `text` says what happened. */
  | { type: 'ok'; text: string }
  | { type: 'error'; code: ErrorCode; text: string; ref: number | null }
  | { type: 'closed'; kind: ClientFailure; reason: string };

/** How a connection or a message failed: a session close kind, the name refused, a message refused by
 * the server ('refused'), or a message refused locally before sending ('invalid'). */
export type ClientFailure = CloseKind | 'rejected' | 'refused' | 'invalid';

/** A failure the user can act on; `kind` says which. */
export class ObrolClientError extends Error {
  constructor(
    readonly kind: ClientFailure,
    message: string,
    readonly code?: ErrorCode,
  ) {
    super(message);
    this.name = 'ObrolClientError';
  }
}

export interface SentMessage {
  id: number;
  ts: number;
  room: string;
}

export interface SentPrivate {
  id: number;
  ts: number;
  to: string;
}

type Command = Exclude<ClientMsg, { type: 'hello' | 'quit' }>;
/** The reply that completes a command (see docs/PROTOCOL.md, "Commands"). */
type Reply = ServerMsg;

interface Outgoing {
  ref: number;
  msg: Command;
  /** Sent by the client itself (catch-up): not resent after a reconnect, which starts catch-up over. */
  internal: boolean;
  resolve: (reply: Reply) => void;
  reject: (e: Error) => void;
}

const WHY: Record<LeaveReason, LeaveWhy> = {
  [LeaveReason.Quit]: 'quit',
  [LeaveReason.TimedOut]: 'timeout',
  [LeaveReason.ConnectionLost]: 'lost',
  [LeaveReason.Kicked]: 'kicked',
  [LeaveReason.Part]: 'part',
};

/** Close kinds after which trying again cannot help. */
const FINAL: ReadonlySet<ClientFailure> = new Set(['rejected', 'server-key', 'version', 'local']);

const noop = (): void => {};

type RoomMessage = Extract<ServerMsg, { type: 'message' }>;
type PrivateMessage = Extract<ServerMsg, { type: 'private' }>;

export class ObrolClient {
  private socket: dgram.Socket | null = null;
  private endpoint: ClientEndpoint | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly listeners = new Set<(ev: ChatEvent) => void>();
  /** Refs start at a random point so a restarted client's refs do not look like resends. */
  private nextRef = randomInt(0, 2 ** 40);
  /** Sent to the endpoint, waiting for the server's reply, in ref order. */
  private readonly unconfirmed = new Map<number, Outgoing>();
  /** Waiting for a flood-control token (or a session) before going to the endpoint. */
  private readonly queue: Outgoing[] = [];
  private tokens = FLOOD_BURST;
  private tokensAt = 0;
  private flood = { burst: FLOOD_BURST, rate: FLOOD_RATE_PER_SEC };
  private name: string | null = null;
  private serverLabel = '';
  private target: { address: string; port: number; family: 4 | 6 } | null = null;
  private phase: 'idle' | 'connecting' | 'open' | 'waiting' | 'closed' = 'idle';
  private welcomedOnce = false;
  private backoff = RECONNECT_MIN_MS;
  private reconnectAt: number | null = null;
  private lastStatus: Status | null = null;
  private closeWaiters: (() => void)[] = [];
  private quitting = false;
  /** Whether the last handshake pinned the server's key for the first time. */
  private pinned: 'new' | 'known' = 'known';
  private readonly identity: KeyPair;
  private readonly known: KnownServers;
  private readonly catchup = new CatchUpState<RoomMessage, PrivateMessage>(foldKey);
  /** Pages of a members or rooms reply, until its last page. */
  private membersPages = new Map<string, MemberInfo[]>();
  private roomsPages: RoomInfo[] = [];
  private readonly stateFile: string | null;
  private stateTimer: NodeJS.Timeout | null = null;

  messageMax = MESSAGE_MAX_BYTES;

  constructor(private readonly opts: ClientOptions) {
    const dir = opts.configDir ?? configDir();
    this.identity = opts.identity ?? loadOrCreateKeyPair(join(dir, 'identity.key'));
    this.known = new KnownServers(join(dir, 'known_servers'));
    const server = `${opts.host}:${opts.port ?? DEFAULT_PORT}`;
    this.stateFile = opts.stateFile !== undefined ? opts.stateFile : opts.identity ? null : stateFilePath(dir, server, opts.name);
    const saved = this.stateFile === null ? null : readState(this.stateFile);
    if (saved) this.catchup.restore(saved.rooms, saved.lastPrivate);
  }

  /** The server's address as "host:port", once resolved. */
  get server(): string {
    return this.serverLabel || `${this.opts.host}:${this.opts.port ?? DEFAULT_PORT}`;
  }

  /** The name the server registered for us, once welcomed. */
  get registeredName(): string | null {
    return this.name;
  }

  /** Commands sent or queued but not yet confirmed by the server. */
  get pending(): number {
    let n = this.queue.length;
    for (const o of this.unconfirmed.values()) if (!o.internal) n++;
    return n;
  }

  get status(): Status | 'closed' {
    return this.phase === 'closed' ? 'closed' : (this.lastStatus ?? 'connecting');
  }

  get rttMs(): number | null {
    return this.endpoint?.stats?.srttMs ?? null;
  }

  /** This client's public key fingerprint: its identity, to which the server binds its name. */
  get identityFingerprint(): string {
    return fingerprint(this.identity.publicKey);
  }

  /** The rooms this client is in (as far as it knows). */
  get rooms(): string[] {
    return this.catchup.joinedRooms().map((r) => r.room);
  }

  on(listener: (ev: ChatEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(ev: ChatEvent): void {
    for (const l of this.listeners) l(ev);
  }

  private setStatus(status: Status, detail: string): void {
    if (status === this.lastStatus) return;
    this.lastStatus = status;
    this.emit({ type: 'status', status, detail });
  }

  /** Connects, handshakes and registers the name. Resolves with the registered name. */
  async connect(): Promise<string> {
    if (this.phase !== 'idle') throw new Error('connect() may be called once');
    this.phase = 'connecting';
    const port = this.opts.port ?? DEFAULT_PORT;
    const { address, family } = await lookup(this.opts.host);
    this.target = { address, port, family: family === 6 ? 6 : 4 };
    this.serverLabel = family === 6 ? `[${address}]:${port}` : `${address}:${port}`;
    const welcomed = new Promise<string>((resolve, reject) => {
      const off = this.on((ev) => {
        if (ev.type === 'welcome') {
          off();
          resolve(ev.name);
        } else if (ev.type === 'closed') {
          off();
          reject(new ObrolClientError(ev.kind, ev.reason));
        }
      });
    });
    await this.openSocket();
    this.startAttempt();
    return welcomed;
  }

  /** Moves to a new local socket (a new source port), as after a NAT rebinding; the session survives. */
  async rebind(): Promise<void> {
    await this.openSocket();
    this.pump();
  }

  private async openSocket(): Promise<void> {
    const t = this.target!;
    const socket = dgram.createSocket(t.family === 6 ? 'udp6' : 'udp4');
    socket.on('message', (m) => {
      if (socket === this.socket) this.onDatagram(m);
    });
    socket.on('error', () => {
      /* ICMP port unreachable surfaces here on a connected socket; the timers decide what it means. */
    });
    await new Promise<void>((resolve) => socket.connect(t.port, t.address, resolve));
    const old = this.socket;
    this.socket = socket;
    old?.close();
  }

  private verifyServerKey(key: Uint8Array): ServerKeyVerdict {
    const pinKey = `${this.opts.host}:${this.opts.port ?? DEFAULT_PORT}`;
    const fp = fingerprint(key);
    if (this.opts.fingerprint !== undefined && this.opts.fingerprint !== fp) {
      return { ok: false, reason: serverKeyMismatch(pinKey, this.opts.fingerprint, fp, 'the --fingerprint you gave') };
    }
    const c = this.known.check(pinKey, key);
    if (c.status === 'mismatch') {
      return { ok: false, reason: serverKeyMismatch(pinKey, c.pinnedFingerprint, c.fingerprint, this.known.file) };
    }
    this.pinned = c.status === 'new' ? 'new' : 'known';
    if (c.status === 'new') this.known.pin(pinKey, key);
    return { ok: true };
  }

  private startAttempt(): void {
    this.reconnectAt = null;
    this.phase = 'connecting';
    this.setStatus(this.welcomedOnce ? 'reconnecting' : 'connecting', `connecting to ${this.serverLabel}`);
    // Resuming: we rejoin our rooms ourselves, each from its last seen id, instead of landing in #lobby.
    const resume = this.catchup.joinedRooms().length > 0 || this.welcomedOnce;
    this.endpoint = new ClientEndpoint({
      staticKey: this.identity,
      random: (n) => new Uint8Array(randomBytes(n)),
      now: monoNow(),
      hello: encodeClientMsg({ type: 'hello', name: this.name ?? this.opts.name, resume }),
      verifyServerKey: (k) => this.verifyServerKey(k),
      mtu: this.opts.mtu,
      connectTimeoutMs: this.opts.connectTimeoutMs,
    });
    this.pump();
  }

  /**
   * Sends a message. Resolves when the server confirms it (its echo carries our ref), rejects when the
   * server refuses it or the client closes first. Never silently drops: every call settles. While the
   * server is unreachable the message waits and is sent when the connection returns.
   */
  async say(body: string, opts: { room?: string; action?: boolean } = {}): Promise<SentMessage> {
    this.checkBody(body);
    const room = opts.room ?? LOBBY;
    const r = await this.command((ref) => ({ type: 'say', ref, room, body, action: opts.action ?? false }));
    if (r.type !== 'message') throw unexpected(r);
    return { id: r.id, ts: r.ts, room: r.room };
  }

  /** A private message to someone online; both sides see it as a `private` event. */
  async msg(to: string, body: string, opts: { action?: boolean } = {}): Promise<SentPrivate> {
    this.checkBody(body);
    const n = checkName(to);
    if (!n.ok) throw new ObrolClientError('invalid', n.reason, n.code);
    const r = await this.command((ref) => ({ type: 'msg', ref, to: n.name, body, action: opts.action ?? false }));
    if (r.type !== 'private') throw unexpected(r);
    return { id: r.id, ts: r.ts, to: r.to };
  }

  /** Joins a room (created if needed); resolves once its recent history has been replayed. */
  async join(room: string): Promise<string> {
    const r = checkRoom(room);
    if (!r.ok) throw new ObrolClientError('invalid', r.reason, r.code);
    const reply = await this.command((ref) => ({ type: 'join', ref, room: r.name, since: this.catchup.inRoom(r.name) ? this.lastSeenIn(r.name) : null }));
    return reply.type === 'caughtup' && reply.room !== null ? reply.room : r.name;
  }

  async part(room: string, reason = ''): Promise<void> {
    const r = checkRoom(room);
    if (!r.ok) throw new ObrolClientError('invalid', r.reason, r.code);
    this.checkShort(reason, SHORT_TEXT_MAX_BYTES, 'a part message');
    await this.command((ref) => ({ type: 'part', ref, room: r.name, reason }));
  }

  /** Every room with members; also emitted as a `rooms` event. */
  async listRooms(): Promise<{ rooms: RoomInfo[]; omitted: number }> {
    const r = await this.command((ref) => ({ type: 'list', ref }));
    if (r.type !== 'rooms') throw unexpected(r);
    return { rooms: r.rooms, omitted: r.omitted };
  }

  /** A room's members; also emitted as a `members` event. */
  async who(room: string): Promise<{ members: MemberInfo[]; omitted: number }> {
    const c = checkRoom(room);
    if (!c.ok) throw new ObrolClientError('invalid', c.reason, c.code);
    const r = await this.command((ref) => ({ type: 'who', ref, room: c.name }));
    if (r.type !== 'members') throw unexpected(r);
    return { members: r.members, omitted: r.omitted };
  }

  /** Changes name; resolves with the new name. */
  async nick(name: string): Promise<string> {
    const n = checkName(name);
    if (!n.ok) throw new ObrolClientError('invalid', n.reason, n.code);
    await this.command((ref) => ({ type: 'nick', ref, name: n.name }));
    return this.name ?? n.name;
  }

  /** Without `text`, asks for the topic (also emitted as a `topic` event); with it, sets it ('' clears). */
  async topic(room: string, text?: string): Promise<{ topic: string; by: string; ts: number }> {
    const c = checkRoom(room);
    if (!c.ok) throw new ObrolClientError('invalid', c.reason, c.code);
    if (text !== undefined) this.checkShort(text, TOPIC_MAX_BYTES, 'a topic');
    const r = await this.command((ref) => ({ type: 'topic', ref, room: c.name, topic: text ?? null }));
    if (r.type === 'topic') return { topic: r.topic, by: r.by, ts: r.ts };
    return { topic: text ?? '', by: this.name ?? '', ts: Date.now() };
  }

  /** Sets an away text, or ('' ) clears it. */
  async away(text: string): Promise<void> {
    this.checkShort(text, AWAY_MAX_BYTES, 'an away text');
    await this.command((ref) => ({ type: 'away', ref, text }));
  }

  private checkBody(body: string): void {
    const size = utf8Bytes(body).length;
    if (body.length === 0) throw new ObrolClientError('invalid', 'nothing to send', ErrorCode.MessageEmpty);
    if (size > this.messageMax) {
      throw new ObrolClientError('invalid', `message is ${size} bytes; the limit is ${this.messageMax}: split it`, ErrorCode.MessageTooLong);
    }
  }

  private checkShort(text: string, max: number, what: string): void {
    const size = utf8Bytes(text).length;
    if (size > max) throw new ObrolClientError('invalid', `${what} is at most ${max} bytes; this one has ${size}`, ErrorCode.TextTooLong);
  }

  private lastSeenIn(room: string): number {
    return this.catchup.joinedRooms().find((r) => foldKey(r.room) === foldKey(room))?.lastSeen ?? 0;
  }

  /** Queues a command; resolves with the server's final reply to it, rejects on an error reply. */
  private command(make: (ref: number) => Command, internal = false): Promise<Reply> {
    if (this.phase === 'closed') return Promise.reject(new ObrolClientError('local', 'the client is closed'));
    return new Promise<Reply>((resolve, reject) => {
      const ref = this.nextRef++;
      this.queue.push({ ref, msg: make(ref), internal, resolve, reject });
      this.pump();
    });
  }

  /** Queues a catch-up request of the client's own, ahead of or behind what the user queued. */
  private internal(msg: (ref: number) => Command, front: boolean): void {
    const ref = this.nextRef++;
    const o: Outgoing = { ref, msg: msg(ref), internal: true, resolve: noop, reject: noop };
    if (front) this.queue.unshift(o);
    else this.queue.push(o);
  }

  /** Resolves true once nothing is pending, false if that takes longer than timeoutMs. */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.pending > 0 && this.phase !== 'closed') {
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.pending === 0;
  }

  /** Leaves gracefully: the server announces the reason; resolves when the session has closed. */
  async quit(reason = ''): Promise<void> {
    if (this.phase === 'closed') return;
    this.quitting = true; // no reconnect from here on
    const ep = this.endpoint;
    if (ep && ep.phase === 'open') {
      ep.send(monoNow(), SEND_STREAM, encodeClientMsg({ type: 'quit', reason }));
      const done = new Promise<void>((resolve) => this.closeWaiters.push(resolve));
      const timeout = new Promise<void>((resolve) => setTimeout(resolve, QUIT_WAIT_MS).unref());
      this.pump();
      await Promise.race([done, timeout]);
    }
    this.shutdown('local', 'quit');
  }

  /** Closes at once without telling the server (it will time the session out). */
  close(): void {
    this.shutdown('local', 'closed');
  }

  private onDatagram(m: Buffer): void {
    if (!this.endpoint) return;
    this.endpoint.handleDatagram(monoNow(), new Uint8Array(m.buffer, m.byteOffset, m.length));
    this.pump();
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.flood.burst, this.tokens + ((now - this.tokensAt) / 1000) * this.flood.rate);
    this.tokensAt = now;
  }

  private historyInFlight(): number {
    let n = 0;
    for (const o of this.unconfirmed.values()) if (o.msg.type === 'join' || o.msg.type === 'history') n++;
    return n;
  }

  /** Moves paced commands to the endpoint, endpoint output to the socket, endpoint events to listeners. */
  private pump(): void {
    const ep = this.endpoint;
    if (!ep || this.phase === 'closed') return;
    const now = monoNow();
    if (ep.phase === 'open' && this.phase === 'open') {
      this.refill(now);
      let replaying = this.historyInFlight();
      while (this.queue.length > 0 && this.tokens >= 1) {
        const o = this.queue[0]!;
        // A replay can be a large burst from the server: a few at a time keep its send buffer for us small.
        if ((o.msg.type === 'join' || o.msg.type === 'history') && replaying >= HISTORY_REQUESTS_IN_FLIGHT) break;
        const r = ep.send(now, SEND_STREAM, encodeClientMsg(o.msg));
        if (!r.ok) break;
        this.queue.shift();
        const c = o.msg;
        if (c.type === 'join' || c.type === 'history') {
          replaying++;
          if (c.room === null) this.catchup.catchingPrivate();
          else this.catchup.catching(c.room);
        }
        this.tokens -= 1;
        this.unconfirmed.set(o.ref, o);
      }
    }
    this.flushEndpoint();
    if (!this.isClosed()) this.armTimer(now); // flushing may have closed us
  }

  private isClosed(): boolean {
    return this.phase === 'closed';
  }

  private flushEndpoint(): void {
    const ep = this.endpoint;
    if (!ep) return;
    for (let d = ep.pollTransmit(); d !== null; d = ep.pollTransmit()) this.socket?.send(d);
    for (let ev = ep.pollEvent(); ev !== null; ev = ep.pollEvent()) {
      switch (ev.type) {
        case 'open':
          this.emit({ type: 'connected', server: this.serverLabel, fingerprint: fingerprint(ev.serverKey), pinned: this.pinned });
          break;
        case 'message':
          this.onServerMessage(ev.data);
          break;
        case 'delivered':
          break;
        case 'closed':
          this.onSessionClosed(ev.kind, ev.code, ev.reason);
          return;
      }
    }
  }

  /** A session ended: retry where that can help, otherwise close for good. */
  private onSessionClosed(kind: CloseKind, code: number, reason: string): void {
    if (this.quitting) {
      for (const w of this.closeWaiters) w();
      this.closeWaiters = [];
      return;
    }
    const retry =
      this.opts.reconnect !== false &&
      this.welcomedOnce &&
      !FINAL.has(kind) &&
      code !== CloseCode.NameRejected &&
      code !== CloseCode.Replaced;
    if (!retry) {
      const why = code === CloseCode.Replaced ? 'another client with your identity took over this name' : reason;
      this.shutdown(kind, why);
      return;
    }
    // Unconfirmed commands go back to the front of the queue, in order, to be resent; our own catch-up
    // requests are dropped, as catch-up starts over after the welcome.
    const back = [...this.unconfirmed.values()].filter((o) => !o.internal);
    this.unconfirmed.clear();
    for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i]!.internal) this.queue.splice(i, 1);
    this.queue.unshift(...back);
    this.catchup.resetCatching();
    this.membersPages.clear();
    this.roomsPages = [];
    this.endpoint = null;
    this.phase = 'waiting';
    const delay = Math.min(this.backoff, RECONNECT_MAX_MS) * (0.75 + Math.random() * 0.5);
    this.backoff = Math.min(this.backoff * 2, RECONNECT_MAX_MS);
    this.reconnectAt = monoNow() + delay;
    this.setStatus('reconnecting', `${describeClose(kind, reason)}; reconnecting in ${(delay / 1000).toFixed(1)} s`);
    this.armTimer(monoNow());
  }

  /** The command a reply with this ref completes, removed from the waiting set. */
  private settle(ref: number | null): Outgoing | undefined {
    if (ref === null) return undefined;
    const o = this.unconfirmed.get(ref);
    if (o) this.unconfirmed.delete(ref);
    return o;
  }

  private onWelcome(m: Extract<ServerMsg, { type: 'welcome' }>): void {
    this.name = m.name;
    this.messageMax = m.messageMax;
    // Pace a little under the announced limits so jitter cannot push us over.
    this.flood = { burst: Math.max(1, Math.floor(m.floodBurst / 2)), rate: Math.max(0.1, m.floodRate * 0.9) };
    this.tokens = this.flood.burst;
    this.tokensAt = monoNow();
    this.phase = 'open';
    this.backoff = RECONNECT_MIN_MS;
    this.setStatus('open', `connected to ${this.serverLabel}`);
    // Catch up first (rooms from their last seen ids, then private messages), then resend the rest.
    const rooms = this.catchup.joinedRooms();
    this.internal((ref) => ({ type: 'history', ref, room: null, after: this.catchup.lastPrivate }), true);
    for (let i = rooms.length - 1; i >= 0; i--) {
      const r = rooms[i]!;
      this.internal((ref) => ({ type: 'join', ref, room: r.room, since: r.lastSeen }), true);
    }
    if (!this.welcomedOnce) {
      this.welcomedOnce = true;
      this.emit({ type: 'welcome', name: m.name, messageMax: m.messageMax, floodBurst: m.floodBurst, floodRate: m.floodRate });
    }
    this.pump();
  }

  private onServerMessage(data: Uint8Array): void {
    const d = decodeServerMsg(data);
    if (!d.ok) return; // a server bug or a newer server: ignore what we cannot read
    const m = d.value;
    switch (m.type) {
      case 'welcome':
        this.onWelcome(m);
        break;
      case 'rejected':
        this.shutdown('rejected', m.reason);
        break;
      case 'joined':
        if (this.isMe(m.name)) this.catchup.entered(m.room);
        this.emit({ type: 'joined', room: m.room, name: m.name, ts: m.ts });
        this.saveStateSoon();
        break;
      case 'left':
        if (this.isMe(m.name)) this.catchup.left(m.room);
        this.emit({ type: 'left', room: m.room, name: m.name, why: WHY[m.why], reason: m.reason, ts: m.ts });
        this.saveStateSoon();
        break;
      case 'presence':
        // A big room's batch: the same events as one by one. Our own join and leave came on their own.
        for (const name of m.joined) if (!this.isMe(name)) this.emit({ type: 'joined', room: m.room, name, ts: m.ts });
        for (const d of m.left) if (!this.isMe(d.name)) this.emit({ type: 'left', room: m.room, name: d.name, why: WHY[d.why], reason: d.reason, ts: m.ts });
        break;
      // A ref marks our own message: the echo, the answer to a resend, or a replay of what we sent (which
      // can come before the answer to its resend, after a server crash lost the echo).
      case 'message': {
        const o = this.settle(m.ref);
        if (o) o.resolve(m);
        if (this.catchup.roomMessage(m.room, m, m.history)) this.emitMessage(m, m.ref !== null);
        this.saveStateSoon();
        break;
      }
      case 'private': {
        const o = this.settle(m.ref);
        if (o) o.resolve(m);
        if (this.catchup.privateMessage(m, m.history)) this.emitPrivate(m, m.ref !== null);
        this.saveStateSoon();
        break;
      }
      case 'caughtup': {
        const o = this.settle(m.ref);
        if (m.room === null) {
          const c = this.catchup.privateCaughtUp(m.more);
          if (c.more) this.internal((ref) => ({ type: 'history', ref, room: null, after: c.after }), true);
          else for (const p of c.release) this.emitPrivate(p, p.ref !== null);
        } else {
          const room = m.room;
          const c = this.catchup.roomCaughtUp(room, m.more);
          if (c.more) this.internal((ref) => ({ type: 'history', ref, room, after: c.after }), true);
          else for (const x of c.release) this.emitMessage(x, x.ref !== null);
        }
        if (!m.more) this.emit({ type: 'caughtup', room: m.room });
        o?.resolve(m);
        this.pump();
        break;
      }
      case 'members': {
        const o = this.settle(m.ref);
        const acc = (this.membersPages.get(m.room) ?? []).concat(m.members);
        if (!m.last) {
          this.membersPages.set(m.room, acc);
          break;
        }
        this.membersPages.delete(m.room);
        this.emit({ type: 'members', room: m.room, members: acc, omitted: m.omitted, requested: o !== undefined });
        o?.resolve({ ...m, members: acc });
        break;
      }
      case 'rooms': {
        const o = this.settle(m.ref);
        const acc = this.roomsPages.concat(m.rooms);
        if (!m.last) {
          this.roomsPages = acc;
          break;
        }
        this.roomsPages = [];
        this.emit({ type: 'rooms', rooms: acc, omitted: m.omitted });
        o?.resolve({ ...m, rooms: acc });
        break;
      }
      case 'topic': {
        const o = this.settle(m.ref);
        this.emit({ type: 'topic', room: m.room, topic: m.topic, by: m.by, ts: m.ts, changed: m.ref === null && m.ts > 0 && !this.joiningNow(m.room) });
        o?.resolve(m);
        break;
      }
      case 'nick':
        if (m.room === '') {
          this.name = m.name;
        }
        this.emit({ type: 'nick', room: m.room, old: m.old, name: m.name, ts: m.ts });
        break;
      case 'away':
        this.emit({ type: 'away', room: m.room, name: m.name, text: m.text, ts: m.ts });
        break;
      case 'ok': {
        const o = this.settle(m.ref);
        if (o && !o.internal) this.emit({ type: 'ok', text: m.text });
        o?.resolve(m);
        break;
      }
      case 'error': {
        const o = this.settle(m.ref);
        if (o) o.reject(new ObrolClientError('refused', m.text, m.code));
        // A refused join, or a catch-up of a room we are no longer in: forget the room.
        const c = o?.msg;
        if ((c?.type === 'join' || (c?.type === 'history' && m.code === ErrorCode.NotInRoom)) && c.room !== null) this.catchup.left(c.room);
        this.emit({ type: 'error', code: m.code, text: m.text, ref: m.ref });
        this.pump();
        break;
      }
    }
  }

  /** Whether a topic is arriving as part of our own join (shown as information, not as a change). */
  private joiningNow(room: string): boolean {
    for (const o of this.unconfirmed.values()) if (o.msg.type === 'join' && foldKey(o.msg.room) === foldKey(room)) return true;
    return false;
  }

  private isMe(name: string): boolean {
    return this.name !== null && foldKey(name) === foldKey(this.name);
  }

  private emitMessage(m: RoomMessage, own: boolean): void {
    this.emit({ type: 'message', room: m.room, id: m.id, ts: m.ts, from: m.from, body: m.body, action: m.action, history: m.history, own });
  }

  private emitPrivate(m: PrivateMessage, own: boolean): void {
    this.emit({ type: 'private', id: m.id, ts: m.ts, from: m.from, to: m.to, body: m.body, action: m.action, history: m.history, own });
  }

  private saveStateSoon(): void {
    if (this.stateFile === null || this.stateTimer !== null) return;
    this.stateTimer = setTimeout(() => {
      this.stateTimer = null;
      this.saveState();
    }, STATE_WRITE_DELAY_MS);
    this.stateTimer.unref();
  }

  private saveState(): void {
    if (this.stateFile === null) return;
    try {
      writeState(this.stateFile, { rooms: this.catchup.joinedRooms(), lastPrivate: this.catchup.lastPrivate });
    } catch {
      // Losing the state file costs a replay of recent history at the next start, nothing more.
    }
  }

  private armTimer(now: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    let next: number | null = this.reconnectAt;
    const ep = this.endpoint;
    if (ep) {
      const d = ep.nextDeadline();
      if (d !== null) next = next === null ? d : Math.min(next, d);
      if (this.queue.length > 0 && ep.phase === 'open' && this.phase === 'open') {
        const tokenAt = now + Math.max(0, ((1 - this.tokens) / this.flood.rate) * 1000);
        next = next === null ? tokenAt : Math.min(next, tokenAt);
      }
      // While messages wait for confirmation, look at the connection's health every so often.
      if (this.unconfirmed.size > 0 || this.lastStatus === 'unresponsive') next = next === null ? now + 500 : Math.min(next, now + 500);
    }
    if (next === null) return;
    this.timer = setTimeout(() => this.onTimer(), Math.max(0, next - now));
  }

  private onTimer(): void {
    this.timer = null;
    const now = monoNow();
    if (this.reconnectAt !== null && now >= this.reconnectAt) {
      this.startAttempt();
      return;
    }
    const ep = this.endpoint;
    if (!ep) return this.armTimer(now);
    ep.handleTimeout(now);
    const stats = ep.stats;
    if (stats && this.phase === 'open') {
      const silent = now - stats.lastReceiveAt;
      if (this.unconfirmed.size > 0 && silent >= STALL_AFTER_MS) {
        this.setStatus('unresponsive', `no answer from ${this.serverLabel} for ${(silent / 1000).toFixed(0)} s; still trying`);
      } else if (silent < STALL_AFTER_MS) {
        this.setStatus('open', `connected to ${this.serverLabel}`);
      }
    }
    this.pump();
  }

  private shutdown(kind: ClientFailure, reason: string): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.stateTimer) clearTimeout(this.stateTimer);
    this.stateTimer = null;
    if (this.welcomedOnce) this.saveState();
    const err = new ObrolClientError(kind, reason);
    for (const o of [...this.unconfirmed.values(), ...this.queue]) o.reject(err);
    this.unconfirmed.clear();
    this.queue.length = 0;
    this.socket?.close();
    this.socket = null;
    this.endpoint = null;
    this.emit({ type: 'closed', kind, reason });
    for (const w of this.closeWaiters) w();
    this.closeWaiters = [];
  }
}

function unexpected(r: Reply): Error {
  return new ObrolClientError('refused', `unexpected reply ${r.type} from the server`);
}

function describeClose(kind: CloseKind, reason: string): string {
  switch (kind) {
    case 'timeout':
      return 'the server stopped answering';
    case 'reset':
      return 'the server lost our session (it may have restarted)';
    case 'unreachable':
      return `cannot reach the server (${reason})`;
    default:
      return reason || kind;
  }
}

function serverKeyMismatch(server: string, expected: string, got: string, source: string): string {
  return [
    '@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@',
    '@    WARNING: THE SERVER KEY HAS CHANGED. NOT CONNECTING.  @',
    '@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@',
    `Someone could be impersonating ${server}, or its operator replaced its key.`,
    `Expected (${source}): ${expected}`,
    `Received:  ${got}`,
    `If the change is legitimate, remove the line for ${server} from the known servers file and connect again.`,
  ].join('\n');
}

function monoNow(): number {
  return performance.now();
}
