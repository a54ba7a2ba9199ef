// Many obrol sessions in one generator process, far cheaper than one ObrolClient each: the sans-I/O
// ClientEndpoint driven directly, sessions sharing a few UDP sockets (the server tells them apart by
// connection id, not by address), and one timer serving every session's deadlines (handshake
// retransmissions, acks, keepalive PINGs) from a deadline heap, as the server does. What the sessions
// do with their messages is the owner's (hooks): `bench idle` keeps them idle, the load generator of
// `bench` has them chat.

import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { UdpBatchSender } from '../net/udp-batch.js';
import { UdpBatchReceiver } from '../net/udp-recv.js';
import { performance } from 'node:perf_hooks';
import { generateKeyPair } from '../crypto/noise.js';
import { ClientEndpoint, type CloseKind, type ServerKeyVerdict } from '../session/client-endpoint.js';
import { DeadlineHeap } from '../util/deadline-heap.js';
import { bytesEqual } from '../util/bytes.js';
import { CID_LEN, PacketType } from '../wire/packet.js';

/** Deadlines run per timer callback at most, so socket reads are never starved for long. */
const MAX_DEADLINES_PER_TICK = 20_000;

export interface SessionPoolHooks {
  /** An application message from the server to session i (a view valid during the call). */
  message(i: number, data: Uint8Array, t: number): void;
  /** Session i closed (it is gone from the pool). */
  closed(i: number, kind: CloseKind): void;
  /** After every datagram and timer run: the owner may start sessions; returns when it next wants to
   * (Infinity: not before the next datagram). */
  tick?(t: number): number;
}

export interface SessionPoolOptions {
  host: string;
  port: number;
  /** Sessions at most; a session's index is in its connection id. */
  count: number;
  sockets: number;
  /** Marks this pool's connection ids (one byte): routes replies without a lookup. */
  tag: number;
  keepaliveMs?: number;
  idleTimeoutMs?: number;
  /** Overwrite each receive batch's memory after use (tests: a session that keeps a view breaks). */
  scrubReceives?: boolean;
  hooks: SessionPoolHooks;
}

export const now = (): number => performance.now();

export class SessionPool {
  readonly eps: (ClientEndpoint | null)[];
  /** Datagrams from the server that named no session of this pool. */
  unrouted = 0;
  /** Datagrams from the server that reached a session of this pool. */
  datagramsIn = 0;
  /** How late the timer ran deadlines, while `measuring`: max and the count over 100 ms / 1 s. */
  readonly lateness = { measuring: false, maxMs: 0, over100ms: 0, over1s: 0 };

  private readonly o: SessionPoolOptions;
  private readonly deadlines: Float64Array;
  private readonly heap = new DeadlineHeap<number>();
  private readonly sockets: dgram.Socket[] = [];
  // Each socket is read with recvmmsg and written with sendmmsg when the addon loads (dgram otherwise):
  // the generator's cost per datagram then stays well below the server's.
  private readonly receivers: UdpBatchReceiver[] = [];
  private readonly senders: UdpBatchSender[] = [];
  private flushQueued = false;
  private readonly flushAll = (): void => {
    this.flushQueued = false;
    for (const s of this.senders) if (s.pending > 0) s.flush();
  };
  private readonly serverCids = new Map<string, number>();
  private serverKey: Uint8Array | null = null;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private ownerNext = Infinity;
  private readonly onTimer = (): void => this.runTimers();

  private constructor(o: SessionPoolOptions) {
    this.o = o;
    this.eps = new Array<ClientEndpoint | null>(o.count).fill(null);
    this.deadlines = new Float64Array(o.count).fill(Infinity);
  }

  /** Binds the sockets (each connected to the server). */
  static async open(o: SessionPoolOptions): Promise<SessionPool> {
    const pool = new SessionPool(o);
    for (let k = 0; k < o.sockets; k++) {
      const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
      sock.on('error', () => {
        /* ICMP unreachable after the server stops; the sessions' timers decide what it means */
      });
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
      pool.sockets.push(sock);
      pool.senders.push(new UdpBatchSender(sock));
      pool.receivers.push(new UdpBatchReceiver(sock, (data) => pool.onDatagram(data), () => pool.onBatchEnd(), { scrub: o.scrubReceives ?? false }));
    }
    return pool;
  }

  /** Starts session i's handshake with this ClientHello payload; a fresh identity key each. */
  start(i: number, hello: Uint8Array, t = now()): void {
    const ep = new ClientEndpoint({
      staticKey: generateKeyPair(),
      random: this.cidFor(i),
      now: t,
      hello,
      verifyServerKey: (k) => this.verifyServerKey(k),
      keepaliveMs: this.o.keepaliveMs,
      idleTimeoutMs: this.o.idleTimeoutMs,
    });
    this.eps[i] = ep;
    this.service(i, t);
  }

  /** Queues an application message on session i (stream 1, as ObrolClient sends its commands). */
  send(i: number, data: Uint8Array, t = now()): void {
    const ep = this.eps[i];
    if (!ep) return;
    ep.send(t, 1, data);
    this.service(i, t);
  }

  /** Closes session i; its CLOSE leaves now. */
  closeSession(i: number, t = now()): void {
    const ep = this.eps[i];
    if (!ep) return;
    ep.close(t, 0, 'bye');
    this.service(i, t);
  }

  /** Re-arms the timer: call after starting or sending outside a hook. */
  arm(): void {
    for (;;) {
      const t = this.heap.peekTime();
      if (t === null || this.deadlines[this.heap.peekKey()!] === t) break;
      this.heap.pop(); // stale
    }
    const next = Math.min(this.heap.peekTime() ?? Infinity, this.ownerNext);
    if (next === this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = next;
    if (next === Infinity) return;
    this.timer = setTimeout(this.onTimer, Math.max(0, next - now()));
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.flushAll();
    for (const r of this.receivers) r.close();
    for (const s of this.sockets) s.close();
  }

  /** Whether the sockets are read with recvmmsg (the addon loaded). */
  get batchedReceives(): boolean {
    return this.receivers.every((r) => r.native);
  }

  private verifyServerKey(k: Uint8Array): ServerKeyVerdict {
    if (this.serverKey === null) this.serverKey = k.slice();
    return bytesEqual(k, this.serverKey) ? { ok: true } : { ok: false, reason: 'the server key changed during the run' };
  }

  /** A connection id that names its session: tag, 3 random bytes, the session's index. */
  private cidFor(i: number): (n: number) => Uint8Array {
    return (n) => {
      const b = new Uint8Array(randomBytes(n));
      if (n === CID_LEN) {
        b[0] = this.o.tag;
        new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(4, i);
      }
      return b;
    };
  }

  /** The session a datagram from the server is for, or -1. */
  private route(b: Uint8Array): number {
    if (b.length < 2 + CID_LEN) return -1;
    const t = b[0]!;
    let off: number;
    if (t === PacketType.Data0 || t === PacketType.Data1) off = 1;
    else if (t === PacketType.Cookie || t === PacketType.HsReply) off = 2;
    else if (t === PacketType.Reset) {
      // A RESET echoes our cid (answering HELLO) or the server's (answering DATA).
      const s = this.serverCids.get(Buffer.from(b.buffer, b.byteOffset + 2, CID_LEN).toString('latin1'));
      if (s !== undefined) return this.eps[s] === null ? -1 : s;
      off = 2;
    } else return -1;
    if (b[off] !== this.o.tag) return -1;
    const i = ((b[off + 4]! << 24) | (b[off + 5]! << 16) | (b[off + 6]! << 8) | b[off + 7]!) >>> 0;
    if (i >= this.o.count || this.eps[i] === null) return -1;
    if (t === PacketType.HsReply && b.length >= 2 + 2 * CID_LEN) this.serverCids.set(Buffer.from(b.buffer, b.byteOffset + 2 + CID_LEN, CID_LEN).toString('latin1'), i);
    return i;
  }

  /** Moves session i's output to its socket, hands its events to the hooks, and files its next deadline. */
  private service(i: number, t: number): void {
    const ep = this.eps[i];
    if (!ep) return;
    const out = this.senders[i % this.senders.length]!;
    const { host, port } = this.o;
    for (let d = ep.pollTransmit(); d !== null; d = ep.pollTransmit()) out.push(d, port, host);
    this.flushSoon();
    for (let ev = ep.pollEvent(); ev !== null; ev = ep.pollEvent()) {
      if (ev.type === 'message') {
        this.o.hooks.message(i, ev.data, t);
        if (this.eps[i] !== ep) return; // the hook closed it
      } else if (ev.type === 'closed') {
        this.eps[i] = null;
        this.deadlines[i] = Infinity;
        this.o.hooks.closed(i, ev.kind);
        return;
      }
    }
    if (this.eps[i] !== ep) return;
    // What the hooks queued (a join, a say) leaves with the rest.
    for (let d = ep.pollTransmit(); d !== null; d = ep.pollTransmit()) out.push(d, port, host);
    const d = ep.nextDeadline();
    if (d === null) this.deadlines[i] = Infinity;
    else if (d !== this.deadlines[i]) {
      this.deadlines[i] = d;
      this.heap.push(d, i);
    }
  }

  private runTimers(): void {
    this.timer = null;
    this.timerAt = Infinity;
    const t = now();
    const late = this.lateness;
    for (let n = 0; n < MAX_DEADLINES_PER_TICK; n++) {
      const at = this.heap.peekTime();
      if (at === null || at > t) break;
      const i = this.heap.pop()!.key;
      if (this.deadlines[i] !== at) continue;
      this.deadlines[i] = NaN; // refiled by service() whatever the new deadline is
      const ep = this.eps[i];
      if (!ep) continue;
      if (late.measuring) {
        const l = t - at;
        if (l > late.maxMs) late.maxMs = l;
        if (l > 100) late.over100ms++;
        if (l > 1000) late.over1s++;
      }
      ep.handleTimeout(t);
      this.service(i, t);
    }
    this.ownerNext = this.o.hooks.tick?.(t) ?? Infinity;
    this.arm();
    this.flushAll();
  }

  /** Sends what is queued once the current task's work is done (a batch end or a timer run flushes sooner). */
  private flushSoon(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(this.flushAll);
  }

  /** One datagram from the server: b is valid only during the call (the receiver reuses its memory). */
  private onDatagram(b: Uint8Array): void {
    const i = this.route(b);
    if (i < 0) {
      this.unrouted++;
      return;
    }
    this.datagramsIn++;
    const t = now();
    this.eps[i]!.handleDatagram(t, b);
    this.service(i, t);
    // With recvmmsg, the owner's tick, the timer and the sends wait for the end of the batch.
    if (!this.receivers[0]!.native) this.onBatchEnd(t);
  }

  private onBatchEnd(t = now()): void {
    if (this.o.hooks.tick) this.ownerNext = this.o.hooks.tick(t);
    this.arm();
    this.flushAll();
  }
}
