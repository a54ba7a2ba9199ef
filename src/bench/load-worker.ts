// One load-generator process of `obrol bench`: runs a share of the simulated clients (original protocol
// or obrol's), sends paced messages from its senders, and measures what its clients receive. Driven by
// the harness over IPC; the harness reads this process's CPU from /proc.
//
// obrol's clients are sessions of a SessionPool by default (a few shared sockets, one timer), so that
// the generator is not what limits the joins or the latency; `clients: 'library'` runs one ObrolClient
// each instead, with its own socket and timers, as a user's program would.

import dgram from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '../crypto/noise.js';
import { ObrolClient } from '../client/client.js';
import { decodeServerMsg, encodeClientMsg, roomMessageBodyAt } from '../wire/message.js';
import { decodePayload, encodePayload, readPayloadTimes, sharedNow, type PayloadTimes } from './measure.js';
import { UdpBatchReceiver } from '../net/udp-recv.js';
import { SessionPool } from './session-pool.js';
import { LEGACY_TAKEN_REPLY } from '../legacy/gateway.js';

export type Proto = 'legacy' | 'obrol';
/** How obrol's clients are simulated: sessions of a pool (light), or one ObrolClient each. */
export type ObrolClients = 'pool' | 'library';

/** Handshakes a worker's pool has in flight at most while its clients join. */
const POOL_JOINS_IN_FLIGHT = 1000;
/** recvmmsg slots per legacy client socket (each slot's memory is reserved at 64 KiB, but only its first
 * page is touched by a chat line). */
const LEGACY_RECV_SLOTS = 8;
/** Sockets a worker's pool shares among its clients. */
const POOL_SOCKETS = 8;

export type ToWorker =
  /** Answered with 'ready' once the worker has loaded, so that the joins are timed from there. */
  | { type: 'ping' }
  | { type: 'setup'; proto: Proto; host: string; port: number; names: string[]; senders: number; bytes: number; worker: number; obrolClients: ObrolClients }
  | { type: 'run'; ratePerSender: number; startAt: number; measureFrom: number; measureTo: number }
  | { type: 'report' }
  | { type: 'stop' };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'joined'; ms: number; failed: number }
  /** arrived and datagrams: benchmark messages (of any window) and datagrams that reached this worker's
   * clients between measureFrom and measureTo, by arrival time (null: not counted, as with library
   * clients; IPC would turn a NaN into null anyway). */
  | { type: 'result'; sent: number; received: number; latencies: number[]; arrived: number | null; datagrams: number | null; lost: number }
  | { type: 'error'; text: string };

/** Latency samples kept per worker; beyond this, a uniform sample (reservoir). */
const SAMPLES_MAX = 200_000;

interface Sim {
  send(body: string): void;
  close(): void;
}

const now = (): number => sharedNow(() => performance.now());
let measureFrom = Infinity;
let measureTo = -Infinity;
let received = 0;
let seen = 0;
/** Benchmark messages that reached this worker's clients, from any window, and the datagrams that did
 * (NaN while a library client, which does not count them, is among the clients). */
let arrivedTotal = 0;
let datagramsTotal = 0;
/** The pools, which count the datagrams that reached their sessions themselves. */
const pools: SessionPool[] = [];
/** obrol clients whose session closed after they joined (the server dropped them, say as too slow). */
let lost = 0;
interface Counts {
  arrived: number;
  datagrams: number;
}
const snapshot = (): Counts => ({ arrived: arrivedTotal, datagrams: pools.reduce((n, p) => n + p.datagramsIn, datagramsTotal) });
/** The counts when the current window began and ended (null: not yet). */
let atFrom: Counts | null = null;
let atTo: Counts | null = null;
const latencies: number[] = [];
let seed = 12345;
const rand = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);

function onBody(body: string): void {
  const p = decodePayload(body);
  if (p) onTimes(p);
}

/** A message due at t.dueAt and sent at t.sentAt arrived: counted in the window it was due in. */
function onTimes(t: PayloadTimes): void {
  arrivedTotal++;
  if (!(t.dueAt >= measureFrom && t.dueAt <= measureTo)) return;
  received++;
  const lat = now() - t.sentAt;
  seen++;
  if (latencies.length < SAMPLES_MAX) latencies.push(lat);
  else {
    const j = Math.floor(rand() * seen);
    if (j < SAMPLES_MAX) latencies[j] = lat;
  }
}

/** The legacy receive path's reused reading of a payload's times. */
const times: PayloadTimes = { dueAt: 0, sentAt: 0 };

async function legacyClient(host: string, port: number, name: string): Promise<Sim> {
  const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  let settle: ((ok: boolean) => void) | null = null;
  const joined = new Promise<boolean>((r) => (settle = r));
  // Batched reads where the addon loads (a few small slots: a thousand of these sockets share a process),
  // and the send time read from the bytes: the generator then costs less per delivery than the servers it
  // measures, which --find-max needs.
  new UdpBatchReceiver(
    s,
    (data) => {
      datagramsTotal++;
      if (settle !== null) {
        const line = Buffer.from(data.buffer, data.byteOffset, data.length).toString('utf8');
        if (line === `${name} has joined the chat`) settle(true);
        else if (line === LEGACY_TAKEN_REPLY) settle(false);
        else return;
        settle = null;
        return;
      }
      // "<name>: <payload>"
      for (let i = 0; i + 1 < data.length; i++) {
        if (data[i] === 0x3a && data[i + 1] === 0x20) {
          if (readPayloadTimes(data, i + 2, times)) onTimes(times);
          return;
        }
      }
    },
    () => {},
    { slots: LEGACY_RECV_SLOTS },
  );
  s.send(name, port, host);
  // No answer at all: the original server sends nothing else, so go on (and the delivery ratio will say).
  const timeout = setTimeout(() => {
    settle?.(true);
    settle = null;
  }, 20_000);
  const ok = await joined;
  clearTimeout(timeout);
  if (!ok) {
    s.close();
    throw new Error(`the name ${name} is taken`);
  }
  return { send: (b) => s.send(b, port, host), close: () => s.close() };
}

async function obrolClient(host: string, port: number, name: string, dir: string): Promise<Sim> {
  const c = new ObrolClient({ name, host, port, identity: generateKeyPair(), configDir: dir, stateFile: null, reconnect: false });
  let joined = false;
  c.on((ev) => {
    if (ev.type === 'message' && !ev.history) onBody(ev.body);
    else if (ev.type === 'closed' && joined) lost++;
  });
  await c.connect();
  joined = true;
  return { send: (b) => void c.say(b).catch(() => {}), close: () => c.close() };
}

/** Joins all `names` as sessions of one pool; resolves with the joined clients and the failures. */
async function obrolPool(host: string, port: number, names: string[], worker: number): Promise<{ sims: Sim[]; failed: number }> {
  const JOINING = 0;
  const JOINED = 1;
  const FAILED = 2;
  const state = new Uint8Array(names.length).fill(JOINING);
  let started = 0;
  let settled = 0;
  let failed = 0;
  let done: (() => void) | null = null;
  const allSettled = new Promise<void>((r) => (done = r));
  const settle = (i: number, ok: boolean): void => {
    state[i] = ok ? JOINED : FAILED;
    settled++;
    if (!ok) failed++;
    if (settled === names.length) done?.();
  };
  let ref = 1;
  const startDue = (t: number): number => {
    while (started < names.length && started - settled < POOL_JOINS_IN_FLIGHT) {
      pool.start(started, encodeClientMsg({ type: 'hello', name: names[started]!, resume: false }), t);
      started++;
    }
    return Infinity; // started again as joins settle
  };
  const pool: SessionPool = await SessionPool.open({
    host,
    port,
    count: names.length,
    sockets: POOL_SOCKETS,
    tag: 0xb0 + (worker & 0x0f),
    hooks: {
      message: (i, data) => {
        // A joined client's room messages, nearly all it receives: the send time read from the body's
        // bytes, as for original clients, not every field decoded into a string.
        if (state[i] === JOINED) {
          const at = roomMessageBodyAt(data);
          if (at >= 0) {
            if (readPayloadTimes(data, at, times)) onTimes(times);
            return;
          }
        }
        const d = decodeServerMsg(data);
        if (!d.ok) return;
        const m = d.value;
        if (state[i] === JOINING) {
          // The welcome comes once the server has registered the name and put the session in #lobby.
          if (m.type === 'welcome') settle(i, true);
          else if (m.type === 'rejected') settle(i, false);
        } else if (m.type === 'message' && !m.history) onBody(m.body);
      },
      closed: (i) => {
        if (state[i] === JOINING) settle(i, false);
        else if (state[i] === JOINED) lost++;
      },
      tick: startDue,
    },
  });
  closers.push(() => pool.close());
  pools.push(pool);
  if (names.length === 0) return { sims: [], failed: 0 };
  startDue(performance.now());
  pool.arm();
  const timeout = setTimeout(() => done?.(), 30_000);
  await allSettled;
  clearTimeout(timeout);
  const sims: Sim[] = [];
  for (let i = 0; i < names.length; i++) {
    if (state[i] !== JOINED) continue;
    sims.push({
      send: (body) => {
        pool.send(i, encodeClientMsg({ type: 'say', ref: ref++, room: '#lobby', body, action: false }));
        pool.arm();
      },
      close: () => pool.closeSession(i),
    });
  }
  return { sims, failed: failed + (names.length - settled) };
}

/** Run at stop, after every client's close. */
const closers: (() => void)[] = [];
let sims: Sim[] = [];
let senders: Sim[] = [];
let bytes = 100;
let sent = 0;
let timer: NodeJS.Timeout | null = null;
let dir: string | null = null;

function reply(m: FromWorker): void {
  process.send?.(m);
}

process.on('message', (m: ToWorker) => {
  void (async () => {
    switch (m.type) {
      case 'ping':
        reply({ type: 'ready' });
        break;
      case 'setup': {
        bytes = m.bytes;
        dir = mkdtempSync(join(tmpdir(), 'obrol-bench-'));
        const t0 = performance.now();
        let failed = 0;
        if (m.proto === 'obrol' && m.obrolClients === 'pool') {
          const r = await obrolPool(m.host, m.port, m.names, m.worker);
          sims = r.sims;
          failed = r.failed;
        } else {
          if (m.proto === 'obrol' && m.names.length > 0) datagramsTotal = NaN; // library clients do not count their datagrams
          for (let i = 0; i < m.names.length; i += 50) {
            // In batches, so a thousand handshakes do not all start in the same millisecond.
            const batch = m.names.slice(i, i + 50).map((n) =>
              (m.proto === 'legacy' ? legacyClient(m.host, m.port, n) : obrolClient(m.host, m.port, n, dir!)).catch(() => {
                failed++;
                return null;
              }),
            );
            for (const s of await Promise.all(batch)) if (s) sims.push(s);
          }
        }
        senders = sims.slice(0, m.senders);
        reply({ type: 'joined', ms: performance.now() - t0, failed });
        break;
      }
      case 'run': {
        // Each run is a window of its own (find-max runs several on the same clients): what arrives late
        // from an earlier one carries an earlier send time and is not counted.
        if (timer) clearInterval(timer);
        timer = null;
        measureFrom = m.measureFrom;
        measureTo = m.measureTo;
        sent = 0;
        received = 0;
        seen = 0;
        latencies.length = 0;
        // Datagrams per message, by arrival over the window (they carry no due time of their own).
        atFrom = atTo = null;
        setTimeout(() => (atFrom = snapshot()), Math.max(0, measureFrom - now()));
        setTimeout(() => (atTo = snapshot()), Math.max(0, measureTo - now()));
        const interval = 5;
        let next = 0;
        const begin = (): void => {
          const start = now();
          timer = setInterval(() => {
            const t = now();
            // A message still unsent 200 ms after the window is not offered: the generator fell behind.
            if (t > measureTo + 200) {
              if (timer) clearInterval(timer);
              timer = null;
              return;
            }
            // Each sender sends what is due by now at its rate, round-robin. Message k is due when
            // (k + 1) messages are, and counts in the window it was due in, however late it leaves.
            const perMs = (m.ratePerSender * senders.length) / 1000;
            const due = Math.floor((t - start) * perMs);
            for (; next < due; next++) {
              const dueAt = start + (next + 1) / perMs;
              senders[next % senders.length]!.send(encodePayload(next, dueAt, now(), bytes));
              if (dueAt >= measureFrom && dueAt <= measureTo) sent++;
            }
          }, interval);
        };
        setTimeout(begin, Math.max(0, m.startAt - now()));
        break;
      }
      case 'report':
        reply({
          type: 'result',
          sent,
          received,
          latencies,
          arrived: atFrom && atTo ? atTo.arrived - atFrom.arrived : null,
          datagrams: atFrom && atTo && Number.isFinite(datagramsTotal) ? atTo.datagrams - atFrom.datagrams : null,
          lost,
        });
        break;
      case 'stop':
        if (timer) clearInterval(timer);
        for (const s of sims) s.close();
        sims = [];
        for (const c of closers) c();
        if (dir) rmSync(dir, { recursive: true, force: true });
        process.exit(0);
    }
  })().catch((e: unknown) => reply({ type: 'error', text: String(e) }));
});
