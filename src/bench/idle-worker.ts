// One generator process of `obrol bench idle`: opens its share of idle obrol sessions and keeps them alive.
//
// Far cheaper than one ObrolClient per session: it drives the sans-I/O ClientEndpoint directly, many
// sessions share a few UDP sockets (the server tells sessions apart by connection id, not by address),
// and one timer serves every session's deadlines (handshake retransmissions, acks, keepalive PINGs) from
// a deadline heap, as the server does. Handshakes are paced (a rate and a cap on those in flight).
// Driven by the harness (idle.ts) over IPC; the harness reads this process's CPU from /proc.

import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { generateKeyPair } from '../crypto/noise.js';
import { ClientEndpoint, type CloseKind, type ServerKeyVerdict } from '../session/client-endpoint.js';
import { DeadlineHeap } from '../util/deadline-heap.js';
import { bytesEqual } from '../util/bytes.js';
import { decodeServerMsg, encodeClientMsg } from '../wire/message.js';
import { CID_LEN, PacketType } from '../wire/packet.js';

/** Where sessions go once registered: #lobby (what every obrol client does), no room, or rooms of K members. */
export type RoomMode = { kind: 'lobby' } | { kind: 'none' } | { kind: 'rooms'; size: number };

export interface OpenSpec {
  host: string;
  port: number;
  /** This worker's index: it prefixes names and marks connection ids. */
  worker: number;
  count: number;
  /** Handshakes this worker may start per second, and at most this many at once. */
  rate: number;
  inflight: number;
  sockets: number;
  keepaliveMs: number;
  idleTimeoutMs: number;
  rooms: RoomMode;
}

export type ToIdleWorker =
  | { type: 'open'; spec: OpenSpec }
  /** Stop starting handshakes (the harness's opening deadline passed). */
  | { type: 'stop-opening' }
  | { type: 'status' }
  /** The measured window starts: reset the window's counters. */
  | { type: 'mark' }
  | { type: 'report' }
  | { type: 'stop' };

export interface WorkerStatus {
  started: number;
  opened: number;
  failed: number;
  inflight: number;
  alive: number;
  /** Application messages received by open sessions so far (presence and the like). */
  messages: number;
}

export interface WorkerReport {
  worker: number;
  count: number;
  started: number;
  opened: number;
  failed: number;
  /** Why handshakes failed (close kind or rejection). */
  failures: Record<string, number>;
  /** Sessions that closed after opening, by kind, over the whole run and within the window. */
  closedAfterOpen: Record<string, number>;
  closedInWindow: Record<string, number>;
  /** Open at report time, and of those, answered by the server within a keepalive period plus 2 s. */
  alive: number;
  heardRecently: number;
  /** Longest time an open session had gone without hearing from the server, at report time (ms). */
  maxSilenceMs: number;
  /** Start of the first handshake to the last session opened (ms), and each session's handshake time. */
  openSpanMs: number;
  handshakeMs: number[];
  /** Packets sent and received by open sessions within the window. */
  windowPacketsSent: number;
  windowPacketsReceived: number;
  /** Application messages received after opening (presence and the like), within the window. */
  windowMessages: number;
  /** How late the timer ran session deadlines within the window: max and the count over 100 ms / 1 s. */
  timerLateMaxMs: number;
  timerLateOver100ms: number;
  timerLateOver1s: number;
  windowMs: number;
  unrouted: number;
  rssBytes: number;
}

// Session states.
const IDLE = 0;
const CONNECTING = 1;
const OPEN = 2;
const CLOSED = 3;

/** Deadlines run per timer callback at most, so socket reads are never starved for long. */
const MAX_DEADLINES_PER_TICK = 20_000;
/** The join's ref in rooms mode: its `caughtup` reply marks the session opened. */
const JOIN_REF = 1;

let spec: OpenSpec;
let eps: (ClientEndpoint | null)[] = [];
let state: Uint8Array = new Uint8Array(0);
let deadlines: Float64Array = new Float64Array(0);
let startedAt: Float64Array = new Float64Array(0);
let handshakeMs: Float64Array = new Float64Array(0);
const heap = new DeadlineHeap<number>();
let sockets: dgram.Socket[] = [];
const serverCids = new Map<string, number>();
let serverKey: Uint8Array | null = null;
/** The first byte of every connection id this worker makes: routes replies without a lookup. */
let cidTag = 0;

let nextToStart = 0;
/** Sessions to start: the count, or fewer once the harness stops the opening. */
let target = 0;
let inflight = 0;
let opened = 0;
let failed = 0;
let credit = 0;
let creditAt = 0;
let nextStartAt = Infinity;
let opening = false;
let firstStartAt = NaN;
let lastOpenedAt = NaN;
let unrouted = 0;
const failures: Record<string, number> = {};
const closedAfterOpen: Record<string, number> = {};
let closedInWindow: Record<string, number> = {};

let measuring = false;
let markAt = 0;
let markSent = 0;
let markReceived = 0;
let windowMessages = 0;
let messagesAfterOpen = 0;
let lateMax = 0;
let lateOver100 = 0;
let lateOver1s = 0;

let timer: NodeJS.Timeout | null = null;
let timerAt = Infinity;

const now = (): number => performance.now();
const bump = (r: Record<string, number>, k: string): void => {
  r[k] = (r[k] ?? 0) + 1;
};

function reply(m: unknown): void {
  if (process.connected) process.send?.(m);
}

function verifyServerKey(k: Uint8Array): ServerKeyVerdict {
  if (serverKey === null) serverKey = k.slice();
  return bytesEqual(k, serverKey) ? { ok: true } : { ok: false, reason: 'the server key changed during the run' };
}

/** A connection id that names its session: tag, 3 random bytes, the session's index. */
function cidFor(i: number): (n: number) => Uint8Array {
  return (n) => {
    const b = new Uint8Array(randomBytes(n));
    if (n === CID_LEN) {
      b[0] = cidTag;
      new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(4, i);
    }
    return b;
  };
}

/** The session a datagram from the server is for, or -1. */
function route(b: Uint8Array): number {
  if (b.length < 2 + CID_LEN) return -1;
  const t = b[0]!;
  let off: number;
  if (t === PacketType.Data0 || t === PacketType.Data1) off = 1;
  else if (t === PacketType.Cookie || t === PacketType.HsReply) off = 2;
  else if (t === PacketType.Reset) {
    // A RESET echoes our cid (answering HELLO) or the server's (answering DATA).
    const s = serverCids.get(Buffer.from(b.buffer, b.byteOffset + 2, CID_LEN).toString('latin1'));
    if (s !== undefined) return eps[s] === null ? -1 : s;
    off = 2;
  } else return -1;
  if (b[off] !== cidTag) return -1;
  const i = ((b[off + 4]! << 24) | (b[off + 5]! << 16) | (b[off + 6]! << 8) | b[off + 7]!) >>> 0;
  if (i >= spec.count || eps[i] === null) return -1;
  if (t === PacketType.HsReply && b.length >= 2 + 2 * CID_LEN) serverCids.set(Buffer.from(b.buffer, b.byteOffset + 2 + CID_LEN, CID_LEN).toString('latin1'), i);
  return i;
}

function roomOf(i: number): string | null {
  const r = spec.rooms;
  return r.kind === 'rooms' ? `#idle-${spec.worker}-${Math.floor(i / r.size)}` : null;
}

function start(i: number): void {
  const identity = generateKeyPair();
  const t = now();
  const ep = new ClientEndpoint({
    staticKey: identity,
    random: cidFor(i),
    now: t,
    // resume: the server does not put the session in #lobby (it rejoins "its rooms" itself: none, or one).
    hello: encodeClientMsg({ type: 'hello', name: `i${spec.worker}_${i}`, resume: spec.rooms.kind !== 'lobby' }),
    verifyServerKey,
    keepaliveMs: spec.keepaliveMs,
    idleTimeoutMs: spec.idleTimeoutMs,
  });
  eps[i] = ep;
  state[i] = CONNECTING;
  startedAt[i] = t;
  if (Number.isNaN(firstStartAt)) firstStartAt = t;
  inflight++;
  service(i, t);
}

function settled(): void {
  inflight--;
  if (opening && nextToStart === target && opened + failed === target) finishOpening();
}

function finishOpening(): void {
  if (!opening) return;
  opening = false;
  nextStartAt = Infinity;
  reply({ type: 'opened', status: status() });
}

function markOpened(i: number, t: number): void {
  state[i] = OPEN;
  opened++;
  handshakeMs[i] = t - startedAt[i]!;
  lastOpenedAt = t;
  settled();
}

function markFailed(i: number, why: string): void {
  state[i] = CLOSED;
  failed++;
  bump(failures, why);
  eps[i] = null;
  settled();
}

/** Moves a session's output to its socket, handles its events, and files its next deadline. */
function service(i: number, t: number): void {
  const ep = eps[i]!;
  const sock = sockets[i % sockets.length]!;
  for (let d = ep.pollTransmit(); d !== null; d = ep.pollTransmit()) sock.send(d);
  for (let ev = ep.pollEvent(); ev !== null; ev = ep.pollEvent()) {
    if (ev.type === 'message') {
      if (state[i] !== CONNECTING) {
        messagesAfterOpen++;
        if (measuring) windowMessages++;
        continue; // an idle session does not read what it is told
      }
      const d = decodeServerMsg(ev.data);
      if (!d.ok) continue;
      const m = d.value;
      if (m.type === 'welcome') {
        const room = roomOf(i);
        if (room === null) markOpened(i, t);
        else {
          ep.send(t, 1, encodeClientMsg({ type: 'join', ref: JOIN_REF, room, since: null }));
          for (let x = ep.pollTransmit(); x !== null; x = ep.pollTransmit()) sock.send(x);
        }
      } else if (m.type === 'caughtup' && m.ref === JOIN_REF) markOpened(i, t);
      else if (m.type === 'rejected' || (m.type === 'error' && m.ref === JOIN_REF)) {
        ep.close(t, 0, 'refused');
        markFailed(i, m.type === 'rejected' ? `rejected: ${m.reason}` : `join refused: ${m.text}`);
        return;
      }
    } else if (ev.type === 'closed') {
      onClosed(i, ev.kind);
      return;
    }
  }
  const d = ep.nextDeadline();
  if (d === null) deadlines[i] = Infinity;
  else if (d !== deadlines[i]) {
    deadlines[i] = d;
    heap.push(d, i);
  }
}

function onClosed(i: number, kind: CloseKind): void {
  if (state[i] === CONNECTING) return markFailed(i, kind);
  state[i] = CLOSED;
  eps[i] = null;
  deadlines[i] = Infinity;
  bump(closedAfterOpen, kind);
  if (measuring) bump(closedInWindow, kind);
}

/** Starts the handshakes that are due under the rate and the in-flight cap. */
function startDue(t: number): void {
  if (!opening) return;
  const burst = Math.max(1, spec.rate * 0.02);
  credit = Math.min(burst, credit + ((t - creditAt) * spec.rate) / 1000);
  creditAt = t;
  while (nextToStart < target && inflight < spec.inflight && credit >= 1) {
    credit -= 1;
    start(nextToStart++);
  }
  if (nextToStart >= target) nextStartAt = Infinity;
  else nextStartAt = inflight < spec.inflight ? now() + ((1 - credit) * 1000) / spec.rate : Infinity;
}

function arm(): void {
  for (;;) {
    const t = heap.peekTime();
    if (t === null || deadlines[heap.peekKey()!] === t) break;
    heap.pop(); // stale
  }
  const next = Math.min(heap.peekTime() ?? Infinity, nextStartAt);
  if (next === timerAt) return;
  if (timer) clearTimeout(timer);
  timer = null;
  timerAt = next;
  if (next === Infinity) return;
  timer = setTimeout(onTimer, Math.max(0, next - now()));
}

function onTimer(): void {
  timer = null;
  timerAt = Infinity;
  const t = now();
  for (let n = 0; n < MAX_DEADLINES_PER_TICK; n++) {
    const at = heap.peekTime();
    if (at === null || at > t) break;
    const i = heap.pop()!.key;
    if (deadlines[i] !== at) continue;
    deadlines[i] = NaN; // refiled by service() whatever the new deadline is
    const ep = eps[i];
    if (!ep) continue;
    if (measuring) {
      const late = t - at;
      if (late > lateMax) lateMax = late;
      if (late > 100) lateOver100++;
      if (late > 1000) lateOver1s++;
    }
    ep.handleTimeout(t);
    service(i, t);
  }
  startDue(t);
  arm();
}

function onDatagram(msg: Buffer): void {
  const b = new Uint8Array(msg.buffer, msg.byteOffset, msg.length);
  const i = route(b);
  if (i < 0) {
    unrouted++;
    return;
  }
  const t = now();
  eps[i]!.handleDatagram(t, b);
  service(i, t);
  if (opening && inflight < spec.inflight) startDue(t);
  arm();
}

function status(): WorkerStatus {
  let alive = 0;
  for (let i = 0; i < nextToStart; i++) if (state[i] === OPEN) alive++;
  return { started: nextToStart, opened, failed, inflight, alive, messages: messagesAfterOpen };
}

function packetTotals(): { sent: number; received: number } {
  let sent = 0;
  let received = 0;
  for (let i = 0; i < nextToStart; i++) {
    const s = state[i] === OPEN ? eps[i]?.stats : null;
    if (!s) continue;
    sent += s.sentPackets;
    received += s.recvPackets;
  }
  return { sent, received };
}

async function open(s: OpenSpec): Promise<void> {
  spec = s;
  cidTag = 0xa0 + (s.worker & 0x0f);
  eps = new Array<ClientEndpoint | null>(s.count).fill(null);
  state = new Uint8Array(s.count).fill(IDLE);
  deadlines = new Float64Array(s.count).fill(Infinity);
  startedAt = new Float64Array(s.count).fill(NaN);
  handshakeMs = new Float64Array(s.count).fill(NaN);
  for (let k = 0; k < s.sockets; k++) {
    const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
    sock.on('message', onDatagram);
    sock.on('error', () => {
      /* ICMP unreachable after the server stops; the sessions' timers decide what it means */
    });
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    await new Promise<void>((r) => sock.connect(s.port, s.host, () => r()));
    sockets.push(sock);
  }
  target = s.count;
  opening = true;
  creditAt = now();
  credit = 1;
  if (s.count === 0) return finishOpening();
  startDue(now());
  arm();
}

function report(): WorkerReport {
  const t = now();
  measuring = false;
  let alive = 0;
  let heard = 0;
  let maxSilence = 0;
  for (let i = 0; i < nextToStart; i++) {
    if (state[i] !== OPEN) continue;
    const st = eps[i]?.stats;
    if (!st) continue;
    alive++;
    const silent = t - st.lastReceiveAt;
    if (silent > maxSilence) maxSilence = silent;
    if (silent <= spec.keepaliveMs + 2000) heard++;
  }
  const p = packetTotals();
  const hs: number[] = [];
  for (const x of handshakeMs) if (!Number.isNaN(x)) hs.push(x);
  return {
    worker: spec.worker,
    count: spec.count,
    started: nextToStart,
    opened,
    failed,
    failures,
    closedAfterOpen,
    closedInWindow,
    alive,
    heardRecently: heard,
    maxSilenceMs: maxSilence,
    openSpanMs: lastOpenedAt - firstStartAt,
    handshakeMs: hs,
    windowPacketsSent: p.sent - markSent,
    windowPacketsReceived: p.received - markReceived,
    windowMessages,
    timerLateMaxMs: lateMax,
    timerLateOver100ms: lateOver100,
    timerLateOver1s: lateOver1s,
    windowMs: t - markAt,
    unrouted,
    rssBytes: process.memoryUsage().rss,
  };
}

process.on('message', (m: ToIdleWorker) => {
  void (async () => {
    switch (m.type) {
      case 'open':
        await open(m.spec);
        break;
      case 'stop-opening':
        // No more starts; the ones in flight settle within their connect timeout.
        target = nextToStart;
        nextStartAt = Infinity;
        if (opening && opened + failed === target) finishOpening();
        break;
      case 'status':
        reply({ type: 'status', status: status() });
        break;
      case 'mark': {
        const p = packetTotals();
        markSent = p.sent;
        markReceived = p.received;
        markAt = now();
        closedInWindow = {};
        windowMessages = 0;
        lateMax = 0;
        lateOver100 = 0;
        lateOver1s = 0;
        measuring = true;
        reply({ type: 'marked' });
        break;
      }
      case 'report':
        reply({ type: 'report', report: report() });
        break;
      case 'stop':
        if (timer) clearTimeout(timer);
        for (const s of sockets) s.close();
        process.exit(0);
    }
  })().catch((e: unknown) => reply({ type: 'error', text: e instanceof Error ? (e.stack ?? e.message) : String(e) }));
});
