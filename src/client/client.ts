// The obrol client library: a typed chat client over the sans-I/O ClientEndpoint.
// It owns the socket, the timer, server-key pinning, pacing within the server's flood limits,
// reconnecting with backoff, and the record of messages sent but not yet confirmed by the server's echo
// (resent after a reconnect; the server recognises a resent ref and does not post it twice).

import dgram from 'node:dgram';
import { randomBytes, randomInt } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  DEFAULT_PORT,
  FLOOD_BURST,
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
import { decodeServerMsg, encodeClientMsg, ErrorCode, LeaveReason, type ClientMsg, type ServerMsg } from '../wire/message.js';
import { utf8Bytes } from '../wire/buf.js';

export const LOBBY = '#lobby';
/** The stream a client sends its messages on (stream 0 is control). */
const SEND_STREAM = 1;

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
}

export type LeaveWhy = 'quit' | 'timeout' | 'lost' | 'kicked';

/** Connection status for people: shown in status bars and on stderr. */
export type Status = 'connecting' | 'open' | 'unresponsive' | 'reconnecting';

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

interface Outgoing {
  ref: number;
  msg: Extract<ClientMsg, { type: 'say' }>;
  resolve: (m: SentMessage) => void;
  reject: (e: Error) => void;
}

const WHY: Record<LeaveReason, LeaveWhy> = {
  [LeaveReason.Quit]: 'quit',
  [LeaveReason.TimedOut]: 'timeout',
  [LeaveReason.ConnectionLost]: 'lost',
  [LeaveReason.Kicked]: 'kicked',
};

/** Close kinds after which trying again cannot help. */
const FINAL: ReadonlySet<ClientFailure> = new Set(['rejected', 'server-key', 'version', 'local']);

export class ObrolClient {
  private socket: dgram.Socket | null = null;
  private endpoint: ClientEndpoint | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly listeners = new Set<(ev: ChatEvent) => void>();
  /** Refs start at a random point so a restarted client's refs do not look like resends. */
  private nextRef = randomInt(0, 2 ** 40);
  /** Sent to the endpoint, waiting for the server's echo, in ref order. */
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

  messageMax = MESSAGE_MAX_BYTES;

  constructor(private readonly opts: ClientOptions) {
    const dir = opts.configDir ?? configDir();
    this.identity = opts.identity ?? loadOrCreateKeyPair(join(dir, 'identity.key'));
    this.known = new KnownServers(join(dir, 'known_servers'));
  }

  /** The server's address as "host:port", once resolved. */
  get server(): string {
    return this.serverLabel || `${this.opts.host}:${this.opts.port ?? DEFAULT_PORT}`;
  }

  /** The name the server registered for us, once welcomed. */
  get registeredName(): string | null {
    return this.name;
  }

  /** Messages sent or queued but not yet confirmed by the server. */
  get pending(): number {
    return this.unconfirmed.size + this.queue.length;
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
    this.endpoint = new ClientEndpoint({
      staticKey: this.identity,
      random: (n) => new Uint8Array(randomBytes(n)),
      now: monoNow(),
      hello: encodeClientMsg({ type: 'hello', name: this.name ?? this.opts.name }),
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
  say(body: string, opts: { room?: string; action?: boolean } = {}): Promise<SentMessage> {
    const room = opts.room ?? LOBBY;
    const size = utf8Bytes(body).length;
    if (body.length === 0) return Promise.reject(new ObrolClientError('invalid', 'nothing to send', ErrorCode.MessageEmpty));
    if (size > this.messageMax) {
      return Promise.reject(
        new ObrolClientError('invalid', `message is ${size} bytes; the limit is ${this.messageMax}: split it`, ErrorCode.MessageTooLong),
      );
    }
    if (this.phase === 'closed') return Promise.reject(new ObrolClientError('local', 'the client is closed'));
    return new Promise<SentMessage>((resolve, reject) => {
      const ref = this.nextRef++;
      this.queue.push({ ref, msg: { type: 'say', ref, room, body, action: opts.action ?? false }, resolve, reject });
      this.pump();
    });
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
      ep.send(monoNow(), 0, encodeClientMsg({ type: 'quit', reason }));
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

  /** Moves paced messages to the endpoint, endpoint output to the socket, endpoint events to listeners. */
  private pump(): void {
    const ep = this.endpoint;
    if (!ep || this.phase === 'closed') return;
    const now = monoNow();
    if (ep.phase === 'open' && this.phase === 'open') {
      this.refill(now);
      while (this.queue.length > 0 && this.tokens >= 1) {
        const o = this.queue.shift()!;
        const r = ep.send(now, SEND_STREAM, encodeClientMsg(o.msg));
        if (!r.ok) {
          this.queue.unshift(o);
          break;
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
    // Unconfirmed messages go back to the front of the queue, in order, to be resent.
    const back = [...this.unconfirmed.values()];
    this.unconfirmed.clear();
    this.queue.unshift(...back);
    this.endpoint = null;
    this.phase = 'waiting';
    const delay = Math.min(this.backoff, RECONNECT_MAX_MS) * (0.75 + Math.random() * 0.5);
    this.backoff = Math.min(this.backoff * 2, RECONNECT_MAX_MS);
    this.reconnectAt = monoNow() + delay;
    this.setStatus('reconnecting', `${describeClose(kind, reason)}; reconnecting in ${(delay / 1000).toFixed(1)} s`);
    this.armTimer(monoNow());
  }

  private onServerMessage(data: Uint8Array): void {
    const d = decodeServerMsg(data);
    if (!d.ok) return; // a server bug or a newer server: ignore what we cannot read
    const m = d.value;
    switch (m.type) {
      case 'welcome':
        this.name = m.name;
        this.messageMax = m.messageMax;
        // Pace a little under the announced limits so jitter cannot push us over.
        this.flood = { burst: Math.max(1, Math.floor(m.floodBurst / 2)), rate: Math.max(0.1, m.floodRate * 0.9) };
        this.tokens = this.flood.burst;
        this.tokensAt = monoNow();
        this.phase = 'open';
        this.backoff = RECONNECT_MIN_MS;
        this.setStatus('open', `connected to ${this.serverLabel}`);
        if (!this.welcomedOnce) {
          this.welcomedOnce = true;
          this.emit({ type: 'welcome', name: m.name, messageMax: m.messageMax, floodBurst: m.floodBurst, floodRate: m.floodRate });
        }
        this.pump();
        break;
      case 'rejected':
        this.shutdown('rejected', m.reason);
        break;
      case 'joined':
        this.emit({ type: 'joined', room: m.room, name: m.name, ts: m.ts });
        break;
      case 'left':
        this.emit({ type: 'left', room: m.room, name: m.name, why: WHY[m.why], reason: m.reason, ts: m.ts });
        break;
      case 'message': {
        const o = m.ref !== null ? this.unconfirmed.get(m.ref) : undefined;
        if (o) {
          this.unconfirmed.delete(o.ref);
          o.resolve({ id: m.id, ts: m.ts, room: m.room });
        }
        this.emit({ type: 'message', room: m.room, id: m.id, ts: m.ts, from: m.from, body: m.body, action: m.action, own: o !== undefined });
        break;
      }
      case 'error': {
        const o = m.ref !== null ? this.unconfirmed.get(m.ref) : undefined;
        if (o) {
          this.unconfirmed.delete(o.ref);
          o.reject(new ObrolClientError('refused', m.text, m.code));
        }
        this.emit({ type: 'error', code: m.code, text: m.text, ref: m.ref });
        break;
      }
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
