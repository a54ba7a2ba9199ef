// A client for an ORIGINAL server (the plain-text UDP chat obrol grew out of), with the same public
// shape as ObrolClient so the CLI can drive either. The original protocol: send a name, then lines;
// the server broadcasts `<name> has joined the chat` and `<name>: <text>`, or answers a taken name
// with `nama ini sudah diambil`. It has no acks, ids, timestamps, leave or encryption.

import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { DEFAULT_PORT, LEGACY_CONNECT_TIMEOUT_MS, LEGACY_DATAGRAM_MAX } from '../limits.js';
import { ErrorCode } from '../wire/message.js';
import { utf8Bytes } from '../wire/buf.js';
import { LEGACY_TAKEN_REPLY } from '../legacy/gateway.js';
import { LOBBY, ObrolClientError, type ChatEvent, type ClientFailure, type LeaveWhy, type SentMessage } from './client.js';

export interface LegacyClientOptions {
  name: string;
  host: string;
  port?: number;
  /** How long connect() waits for the join announcement or the taken reply. */
  connectTimeoutMs?: number;
}

/** What `obrol join` needs from a client: both ObrolClient and LegacyClient fit. */
export interface ChatClient {
  readonly server: string;
  readonly pending: number;
  connect(): Promise<string>;
  on(listener: (ev: ChatEvent) => void): () => void;
  say(body: string, opts?: { room?: string; action?: boolean }): Promise<SentMessage>;
  drain(timeoutMs: number): Promise<boolean>;
  quit(reason?: string): Promise<void>;
  close(): void;
}

const JOINED = ' has joined the chat';
const LEFT = ' has left the chat';
const LEFT_SUFFIX: Record<string, LeaveWhy> = { 'timed out': 'timeout', 'connection lost': 'lost', kicked: 'kicked' };

/** Every original line is one of these; `unknown` is a line only some other server sends. */
export type LegacyLine =
  | { type: 'taken' }
  | { type: 'joined'; name: string }
  | { type: 'left'; name: string; why: LeaveWhy; reason: string }
  | { type: 'message'; from: string; body: string; action: boolean }
  | { type: 'unknown'; text: string };

/**
 * Reads one datagram's text. `X: text` splits at the first ": "; a prefix with a space is only a
 * name if no better reading exists, so obrol's `* bob says: hi` (an action) stays an action.
 */
export function parseLegacyLine(line: string): LegacyLine {
  if (line === LEGACY_TAKEN_REPLY) return { type: 'taken' };
  // A name holding ": " means the line is a message that happens to end like an announcement.
  if (line.endsWith(JOINED) && line.length > JOINED.length && !line.slice(0, -JOINED.length).includes(': ')) {
    return { type: 'joined', name: line.slice(0, -JOINED.length) };
  }
  const left = line.indexOf(LEFT);
  if (left > 0 && !line.slice(0, left).includes(': ')) {
    const rest = line.slice(left + LEFT.length);
    const name = line.slice(0, left);
    if (rest === '') return { type: 'left', name, why: 'quit', reason: '' };
    const m = /^ \((.*)\)$/s.exec(rest);
    if (m) {
      const why = LEFT_SUFFIX[m[1]!];
      return why ? { type: 'left', name, why, reason: '' } : { type: 'left', name, why: 'quit', reason: m[1]! };
    }
  }
  const colon = line.indexOf(': ');
  const prefix = colon > 0 ? line.slice(0, colon) : null;
  if (prefix !== null && !/\s/u.test(prefix)) return { type: 'message', from: prefix, body: line.slice(colon + 2), action: false };
  const action = /^\* (\S+) (.*)$/su.exec(line);
  if (action) return { type: 'message', from: action[1]!, body: action[2]!, action: true };
  if (prefix !== null) return { type: 'message', from: prefix, body: line.slice(colon + 2), action: false };
  return { type: 'unknown', text: line };
}

type State = 'idle' | 'naming' | 'refused' | 'open' | 'closed';

export class LegacyClient implements ChatClient {
  private socket: dgram.Socket | null = null;
  private readonly listeners = new Set<(ev: ChatEvent) => void>();
  private state: State = 'idle';
  private name: string;
  private serverLabel = '';
  private nextId = 1;
  /** Lines said before the join announcement, sent once it arrives (as ObrolClient queues them). */
  private readonly queue: { data: Uint8Array; resolve: (m: SentMessage) => void; reject: (e: Error) => void }[] = [];
  /** Settles the connect() in flight. */
  private naming: { resolve: (name: string) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | null = null;

  /** The original server relays any datagram, but original clients read only LEGACY_DATAGRAM_MAX bytes. */
  readonly messageMax = LEGACY_DATAGRAM_MAX;

  constructor(private readonly opts: LegacyClientOptions) {
    this.name = opts.name.normalize('NFC');
  }

  get server(): string {
    return this.serverLabel || `${this.opts.host}:${this.opts.port ?? DEFAULT_PORT}`;
  }

  get registeredName(): string | null {
    return this.state === 'open' ? this.name : null;
  }

  /** 0 once joined: the original protocol acknowledges nothing, so a message is done once sent.
   * Before the join, the lines waiting for it. */
  get pending(): number {
    return this.queue.length;
  }

  on(listener: (ev: ChatEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(ev: ChatEvent): void {
    for (const l of this.listeners) l(ev);
  }

  /**
   * Sends the name and resolves with it once the server announces our join. A taken name rejects
   * with kind 'rejected' (code NameTaken) and leaves the client usable: call connect(otherName) to try
   * again on the same socket, as the original client does. No answer rejects with 'unreachable'.
   */
  async connect(name?: string): Promise<string> {
    if (this.state !== 'idle' && this.state !== 'refused') throw new Error('connect() may be called again only after a taken name');
    if (name !== undefined) this.name = name.normalize('NFC');
    const size = utf8Bytes(this.name).length;
    if (size === 0 || size > LEGACY_DATAGRAM_MAX) {
      throw new ObrolClientError('rejected', `a name must be 1..${LEGACY_DATAGRAM_MAX} bytes`, ErrorCode.NameInvalid);
    }
    this.state = 'naming';
    if (!this.socket) {
      try {
        await this.open();
      } catch (e) {
        this.shutdown('unreachable', `cannot resolve ${this.opts.host}: ${(e as Error).message}`);
        throw new ObrolClientError('unreachable', `cannot resolve ${this.opts.host}`);
      }
    }
    const socket = this.socket;
    if (!socket) throw new ObrolClientError('local', 'the client is closed');
    const timeoutMs = this.opts.connectTimeoutMs ?? LEGACY_CONNECT_TIMEOUT_MS;
    const joined = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.naming = null;
        // Silence is also how an obrol gateway answers a taken name shorter than its 22-byte reply.
        const reason = `no answer within ${timeoutMs / 1000} s (is an original chat server running there? a taken short name also gets no answer from an obrol gateway)`;
        this.shutdown('unreachable', reason);
        reject(new ObrolClientError('unreachable', reason));
      }, timeoutMs);
      this.naming = { resolve, reject, timer };
    });
    socket.send(utf8Bytes(this.name));
    return joined;
  }

  private async open(): Promise<void> {
    const port = this.opts.port ?? DEFAULT_PORT;
    const { address, family } = await lookup(this.opts.host);
    this.serverLabel = family === 6 ? `[${address}]:${port}` : `${address}:${port}`;
    // Original servers send at most LEGACY_DATAGRAM_MAX, but read whatever arrives whole.
    const socket = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4', recvBufferSize: 1 << 20 });
    this.socket = socket;
    socket.on('message', (m) => this.onDatagram(m));
    socket.on('error', () => {
      /* ICMP port unreachable surfaces here on a connected socket; the connect timeout decides. */
    });
    await new Promise<void>((resolve) => socket.connect(port, address, resolve));
  }

  /** Sends one line. Resolves once handed to the network: the original protocol confirms nothing. */
  say(body: string, opts: { room?: string; action?: boolean } = {}): Promise<SentMessage> {
    const room = opts.room ?? LOBBY;
    if (body.length === 0) return Promise.reject(new ObrolClientError('invalid', 'nothing to send', ErrorCode.MessageEmpty));
    if (opts.action) return Promise.reject(new ObrolClientError('invalid', 'the original chat protocol has no actions (/me)', ErrorCode.BadRequest));
    if (room.toLowerCase() !== LOBBY) return Promise.reject(new ObrolClientError('invalid', `the original chat protocol has only one room, not ${room}`, ErrorCode.NotInRoom));
    const data = utf8Bytes(body);
    if (data.length > LEGACY_DATAGRAM_MAX) {
      return Promise.reject(
        new ObrolClientError(
          'invalid',
          `message is ${data.length} bytes; original clients read at most ${LEGACY_DATAGRAM_MAX}: split it`,
          ErrorCode.MessageTooLong,
        ),
      );
    }
    if (this.state === 'closed') return Promise.reject(new ObrolClientError('local', 'the client is closed'));
    return new Promise<SentMessage>((resolve, reject) => {
      if (this.state === 'open') this.send(data, resolve, reject);
      else this.queue.push({ data, resolve, reject });
    });
  }

  private send(data: Uint8Array, resolve: (m: SentMessage) => void, reject: (e: Error) => void): void {
    const socket = this.socket;
    if (!socket) return reject(new ObrolClientError('local', 'the client is closed'));
    socket.send(data, (err) => {
      if (err) reject(new ObrolClientError('local', `send failed: ${err.message}`));
      else resolve({ id: this.nextId++, ts: Date.now(), room: LOBBY });
    });
  }

  /** Resolves true once the lines said before the join have been sent (no acks to wait for). */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length > 0 && this.state !== 'closed') {
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.queue.length === 0;
  }

  /** The original protocol has no leave: the server forgets us when it times us out (an obrol gateway does). */
  async quit(_reason = ''): Promise<void> {
    this.shutdown('local', 'quit');
  }

  close(): void {
    this.shutdown('local', 'closed');
  }

  private onDatagram(m: Buffer): void {
    const text = m.toString('utf8');
    const line = parseLegacyLine(text);
    if (this.state === 'naming') {
      if (line.type === 'taken') {
        this.state = 'refused';
        this.settle()?.reject(new ObrolClientError('rejected', `the name ${this.name} is already taken`, ErrorCode.NameTaken));
        return;
      }
      if (line.type === 'joined' && line.name === this.name) {
        this.state = 'open';
        // The original protocol has no welcome; a synthetic one tells JSON readers we are in.
        this.emit({ type: 'welcome', name: this.name, messageMax: this.messageMax, floodBurst: 0, floodRate: 0 });
        this.emitLine(line);
        this.settle()?.resolve(this.name);
        for (const q of this.queue.splice(0)) this.send(q.data, q.resolve, q.reject);
        return;
      }
      return; // nothing else is addressed to a client that has not joined
    }
    if (this.state === 'open') this.emitLine(line);
  }

  private settle(): { resolve: (name: string) => void; reject: (e: Error) => void } | null {
    const n = this.naming;
    if (!n) return null;
    clearTimeout(n.timer);
    this.naming = null;
    return n;
  }

  private emitLine(line: LegacyLine): void {
    // No ids or timestamps on the wire: local receive time and a local counter stand in.
    const ts = Date.now();
    switch (line.type) {
      case 'joined':
        this.emit({ type: 'joined', room: LOBBY, name: line.name, ts });
        break;
      case 'left':
        this.emit({ type: 'left', room: LOBBY, name: line.name, why: line.why, reason: line.reason, ts });
        break;
      case 'message':
        this.emit({ type: 'message', room: LOBBY, id: this.nextId++, ts, from: line.from, body: line.body, action: line.action, history: false, own: line.from === this.name });
        break;
      case 'taken':
      case 'unknown':
        // Not a chat line (an obrol gateway's error text, say): show it as the server said it.
        this.emit({ type: 'error', code: ErrorCode.BadRequest, text: line.type === 'taken' ? LEGACY_TAKEN_REPLY : line.text, ref: null });
        break;
    }
  }

  private shutdown(kind: ClientFailure, reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    const err = new ObrolClientError(kind, reason);
    this.settle()?.reject(err);
    for (const q of this.queue.splice(0)) q.reject(err);
    this.socket?.close();
    this.socket = null;
    this.emit({ type: 'closed', kind, reason });
  }
}
