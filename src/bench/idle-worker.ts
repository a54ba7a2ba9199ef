// One generator process of `obrol bench idle`: opens its share of idle obrol sessions and keeps them alive.
//
// The sessions live in a SessionPool (many sessions over a few shared sockets, one timer for all their
// deadlines); this process paces the handshakes (a rate and a cap on those in flight) and counts.
// Driven by the harness (idle.ts) over IPC; the harness reads this process's CPU from /proc.

import type { CloseKind } from '../session/client-endpoint.js';
import { decodeServerMsg, encodeClientMsg } from '../wire/message.js';
import { now, SessionPool } from './session-pool.js';
import { keepalivePingMs } from '../limits.js';

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
  /** Open at report time, and of those, answered by the server within a PING interval plus 2 s. */
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

/** The join's ref in rooms mode: its `caughtup` reply marks the session opened. */
const JOIN_REF = 1;

let spec: OpenSpec;
let pool: SessionPool | null = null;
let state: Uint8Array = new Uint8Array(0);
let startedAt: Float64Array = new Float64Array(0);
let handshakeMs: Float64Array = new Float64Array(0);

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
const failures: Record<string, number> = {};
const closedAfterOpen: Record<string, number> = {};
let closedInWindow: Record<string, number> = {};

let measuring = false;
let markAt = 0;
let markSent = 0;
let markReceived = 0;
let windowMessages = 0;
let messagesAfterOpen = 0;

const bump = (r: Record<string, number>, k: string): void => {
  r[k] = (r[k] ?? 0) + 1;
};

function reply(m: unknown): void {
  if (process.connected) process.send?.(m);
}

function roomOf(i: number): string | null {
  const r = spec.rooms;
  return r.kind === 'rooms' ? `#idle-${spec.worker}-${Math.floor(i / r.size)}` : null;
}

function start(i: number): void {
  const t = now();
  state[i] = CONNECTING;
  startedAt[i] = t;
  if (Number.isNaN(firstStartAt)) firstStartAt = t;
  inflight++;
  // resume: the server does not put the session in #lobby (it rejoins "its rooms" itself: none, or one).
  pool!.start(i, encodeClientMsg({ type: 'hello', name: `i${spec.worker}_${i}`, resume: spec.rooms.kind !== 'lobby' }), t);
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
  settled();
}

/** A message from the server: only the replies that open a session are read. */
function onMessage(i: number, data: Uint8Array, t: number): void {
  if (state[i] !== CONNECTING) {
    messagesAfterOpen++;
    if (measuring) windowMessages++;
    return; // an idle session does not read what it is told
  }
  const d = decodeServerMsg(data);
  if (!d.ok) return;
  const m = d.value;
  if (m.type === 'welcome') {
    const room = roomOf(i);
    if (room === null) markOpened(i, t);
    else pool!.send(i, encodeClientMsg({ type: 'join', ref: JOIN_REF, room, since: null }), t);
  } else if (m.type === 'caughtup' && m.ref === JOIN_REF) markOpened(i, t);
  else if (m.type === 'rejected' || (m.type === 'error' && m.ref === JOIN_REF)) {
    markFailed(i, m.type === 'rejected' ? `rejected: ${m.reason}` : `join refused: ${m.text}`);
    pool!.eps[i]?.close(t, 0, 'refused');
  }
}

function onClosed(i: number, kind: CloseKind): void {
  if (state[i] === CONNECTING) return markFailed(i, kind);
  if (state[i] === CLOSED) return;
  state[i] = CLOSED;
  bump(closedAfterOpen, kind);
  if (measuring) bump(closedInWindow, kind);
}

/** Starts the handshakes that are due under the rate and the in-flight cap; returns when to look again. */
function startDue(t: number): number {
  if (!opening || inflight >= spec.inflight) return opening ? nextStartAt : Infinity;
  const burst = Math.max(1, spec.rate * 0.02);
  credit = Math.min(burst, credit + ((t - creditAt) * spec.rate) / 1000);
  creditAt = t;
  while (nextToStart < target && inflight < spec.inflight && credit >= 1) {
    credit -= 1;
    start(nextToStart++);
  }
  if (nextToStart >= target) nextStartAt = Infinity;
  else nextStartAt = inflight < spec.inflight ? now() + ((1 - credit) * 1000) / spec.rate : Infinity;
  return nextStartAt;
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
    const s = state[i] === OPEN ? pool?.eps[i]?.stats : null;
    if (!s) continue;
    sent += s.sentPackets + s.natKeepalivesSent; // every keepalive datagram, PING or NAT_KEEPALIVE
    received += s.recvPackets;
  }
  return { sent, received };
}

async function open(s: OpenSpec): Promise<void> {
  spec = s;
  state = new Uint8Array(s.count).fill(IDLE);
  startedAt = new Float64Array(s.count).fill(NaN);
  handshakeMs = new Float64Array(s.count).fill(NaN);
  pool = await SessionPool.open({
    host: s.host,
    port: s.port,
    count: s.count,
    sockets: s.sockets,
    tag: 0xa0 + (s.worker & 0x0f),
    keepaliveMs: s.keepaliveMs,
    idleTimeoutMs: s.idleTimeoutMs,
    hooks: { message: onMessage, closed: onClosed, tick: startDue },
  });
  target = s.count;
  opening = true;
  creditAt = now();
  credit = 1;
  if (s.count === 0) return finishOpening();
  startDue(now());
  pool.arm();
}

function report(): WorkerReport {
  const t = now();
  measuring = false;
  if (pool) pool.lateness.measuring = false;
  let alive = 0;
  let heard = 0;
  let maxSilence = 0;
  for (let i = 0; i < nextToStart; i++) {
    if (state[i] !== OPEN) continue;
    const st = pool?.eps[i]?.stats;
    if (!st) continue;
    alive++;
    const silent = t - st.lastReceiveAt;
    if (silent > maxSilence) maxSilence = silent;
    if (silent <= keepalivePingMs(spec.keepaliveMs, spec.idleTimeoutMs) + 2000) heard++;
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
    timerLateMaxMs: pool?.lateness.maxMs ?? 0,
    timerLateOver100ms: pool?.lateness.over100ms ?? 0,
    timerLateOver1s: pool?.lateness.over1s ?? 0,
    windowMs: t - markAt,
    unrouted: pool?.unrouted ?? 0,
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
        if (pool) Object.assign(pool.lateness, { measuring: true, maxMs: 0, over100ms: 0, over1s: 0 });
        measuring = true;
        reply({ type: 'marked' });
        break;
      }
      case 'report':
        reply({ type: 'report', report: report() });
        break;
      case 'stop':
        pool?.close();
        process.exit(0);
    }
  })().catch((e: unknown) => reply({ type: 'error', text: e instanceof Error ? (e.stack ?? e.message) : String(e) }));
});
