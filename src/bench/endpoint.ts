// The server endpoint's own CPU, in process (no sockets, no event loop): keepalives of many idle sessions,
// and a room's fan-out. Precise where the socket benchmarks are noisy, so a change to the session layer can
// be measured alone. `--order random` feeds the keepalives in a shuffled order, as they arrive at a real
// server: each session's state is then cold in the CPU's caches, which costs more than the code itself
// at 100,000 sessions (see docs/PERFORMANCE.md).

import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { cpus } from 'node:os';
import { generateKeyPair } from '../crypto/noise.js';
import { KEEPALIVE_MS, MAX_DATAGRAM } from '../limits.js';
import { ClientEndpoint } from '../session/client-endpoint.js';
import { ServerEndpoint, type SessionId } from '../session/server-endpoint.js';
import { utf8Bytes } from '../wire/buf.js';
import { Rng } from '../proxy/rng.js';

const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

interface Rig {
  server: ServerEndpoint;
  clients: ClientEndpoint[];
  sids: SessionId[];
  /** Datagrams the server produced since the last take, by client index. */
  take(): { to: number; data: Uint8Array }[];
  now: number;
}

/** N clients with open sessions to one server endpoint; client i is at port i + 1. */
function rig(n: number, start: number): Rig {
  let now = start;
  // As the chat server runs it: no delivery events.
  const server = new ServerEndpoint({ staticKey: generateKeyPair(), random, now, sessionsPerIp: n, handshakesPerIpPerSec: 1e9, maxSessions: n, deliveryEvents: false });
  let out: { to: number; data: Uint8Array }[] = [];
  server.setTransmitSink((to, data) => out.push({ to: to.port - 1, data: data.slice() }));
  const clients: ClientEndpoint[] = [];
  const sids: SessionId[] = [];
  const identity = generateKeyPair(); // one client key for all: the server does not care, and it is faster
  for (let i = 0; i < n; i++) {
    const c = new ClientEndpoint({ staticKey: identity, random, now, hello: utf8Bytes('hello'), verifyServerKey: () => ({ ok: true }) });
    clients.push(c);
    const from = { address: '127.0.0.1', port: i + 1 };
    for (let round = 0; round < 8 && c.phase !== 'open'; round++) {
      for (let d = c.pollTransmit(); d; d = c.pollTransmit()) server.handleDatagram(now, from, d);
      server.flushTransmits(now);
      for (const t of out.splice(0)) clients[t.to]!.handleDatagram(now, t.data);
      for (let e = server.pollEvent(now); e; e = server.pollEvent(now)) {
        if (e.type === 'session-open') {
          sids[i] = e.sid;
          server.send(now, e.sid, 0, utf8Bytes('welcome')); // the server speaks first, which opens the client
        }
      }
      for (let e = c.pollEvent(); e; e = c.pollEvent());
    }
    if (c.phase !== 'open') throw new Error(`session ${i} did not open`);
  }
  return {
    server,
    clients,
    sids,
    take: () => {
      const t = out;
      out = [];
      return t;
    },
    get now() {
      return now;
    },
    set now(t: number) {
      now = t;
    },
  };
}

/** Fisher-Yates with the project's seeded PRNG, so a round's order is the same from run to run. */
function shuffle(a: number[], seed: number): void {
  const rng = new Rng(seed);
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.nextU32() % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
}

export interface EndpointBenchResult {
  sessions: number;
  order: 'random' | 'sequential';
  keepalives: number;
  /** Server endpoint CPU per keepalive: PING handled, ACK sealed, timers kept. */
  usPerKeepalive: number;
  heapMiB: number;
}

/** Every client's keepalive fires; the server handles them in batches of 16 (as recvmmsg hands them over)
 * from one reused buffer (as the receiver's memory is), in the given order. Only the server's calls are timed. */
export function keepaliveBench(o: { sessions: number; rounds: number; order: 'random' | 'sequential' }): EndpointBenchResult {
  const r = rig(o.sessions, 1_000);
  const arena = new Uint8Array(MAX_DATAGRAM);
  let ns = 0n;
  let count = 0;
  for (let round = 0; round < o.rounds + 1; round++) {
    r.now += KEEPALIVE_MS;
    const pings: Uint8Array[] = [];
    const from: number[] = [];
    r.clients.forEach((c, i) => {
      c.handleTimeout(r.now);
      for (let d = c.pollTransmit(); d; d = c.pollTransmit()) {
        pings.push(d);
        from.push(i);
      }
    });
    const order = pings.map((_, i) => i);
    if (o.order === 'random') shuffle(order, round + 1);
    const t0 = process.hrtime.bigint();
    for (let k = 0; k < order.length; k++) {
      const d = pings[order[k]!]!;
      arena.set(d);
      r.server.handleDatagram(r.now, { address: '127.0.0.1', port: from[order[k]!]! + 1 }, arena.subarray(0, d.length));
      if ((k & 15) === 15) r.server.flushTransmits(r.now);
    }
    r.server.flushTransmits(r.now);
    r.server.handleTimeout(r.now);
    const dt = process.hrtime.bigint() - t0;
    if (round > 0) {
      // The first round warms the code up.
      ns += dt;
      count += pings.length;
    }
    for (const t of r.take()) r.clients[t.to]!.handleDatagram(r.now, t.data);
    for (const c of r.clients) for (let e = c.pollEvent(); e; e = c.pollEvent());
    for (let e = r.server.pollEvent(r.now); e; e = r.server.pollEvent(r.now));
  }
  if (r.server.sessionCount !== o.sessions) throw new Error(`${o.sessions - r.server.sessionCount} sessions closed during the run`);
  return { sessions: o.sessions, order: o.order, keepalives: count, usPerKeepalive: Number(ns) / 1000 / count, heapMiB: process.memoryUsage().heapUsed / 2 ** 20 };
}

export interface FanoutBenchResult {
  sessions: number;
  messages: number;
  deliveries: number;
  /** Server endpoint CPU per delivered message: sealing it, acks received for it, timers, events. */
  usPerDelivery: number;
  /** Datagrams the server received (acks) per delivery. */
  ackDatagramsPerDelivery: number;
}

/** A room's fan-out: every stepMs one message goes to all N sessions (as the chat layer sends one object to
 * every member), each client acks as it would (every few packets, or on its ack timer), and the server
 * handles the acks in batches of 16 and its timers. Only the server's calls are timed; the server seals
 * into one reused arena, as into the shell's send batch. */
export function fanoutBench(o: { sessions: number; messages: number; bytes: number; stepMs: number; evictMiB?: number }): FanoutBenchResult {
  const r = rig(o.sessions, 1_000);
  // Written through, untimed, before each message: the caches then hold none of the sessions' state, as
  // on a server whose members each hear a message every 100 ms while the kernel and other work run.
  const evict = new Uint8Array((o.evictMiB ?? 0) << 20);
  let evictSum = 0;
  // The server seals into one arena, as the shell's send batch; sliced out untimed.
  let arena = new Uint8Array(1 << 20);
  let used = 0;
  let to = 0;
  const sent: { to: number; off: number; len: number }[] = [];
  r.server.setTransmitArena({
    reserve(dest, maxBytes) {
      if (used + maxBytes > arena.length) {
        const grown = new Uint8Array(Math.max(arena.length * 2, used + maxBytes));
        grown.set(arena.subarray(0, used));
        arena = grown;
      }
      to = dest.port - 1;
      return used;
    },
    get bytes() {
      return arena;
    },
    commit(length) {
      sent.push({ to, off: used, len: length });
      used += length;
    },
  });
  const take = (): { to: number; data: Uint8Array }[] => {
    const t = sent.map((x) => ({ to: x.to, data: arena.slice(x.off, x.off + x.len) }));
    sent.length = 0;
    used = 0;
    return t;
  };
  take();
  const body = new Uint8Array(o.bytes).fill(0x61);
  const recv = new Uint8Array(MAX_DATAGRAM);
  let ns = 0n;
  let acks = 0;
  const warm = Math.min(200, Math.floor(o.messages / 5));
  let deliveries = 0;
  for (let m = 0; m < o.messages + warm; m++) {
    r.now += o.stepMs;
    const now = r.now;
    const pending: { from: number; data: Uint8Array }[] = [];
    // Client side, untimed: timers, then what the last round delivered.
    r.clients.forEach((c, i) => {
      const d = c.nextDeadline();
      if (d !== null && d <= now) c.handleTimeout(now);
      for (let x = c.pollTransmit(); x; x = c.pollTransmit()) pending.push({ from: i, data: x });
      for (let e = c.pollEvent(); e; e = c.pollEvent());
    });
    for (let i = 0; i < evict.length; i += 64) evictSum += evict[i] = (evict[i]! + 1) & 0xff;
    const t0 = process.hrtime.bigint();
    for (let k = 0; k < pending.length; k++) {
      const p = pending[k]!;
      recv.set(p.data);
      r.server.handleDatagram(now, { address: '127.0.0.1', port: p.from + 1 }, recv.subarray(0, p.data.length));
      if ((k & 15) === 15) r.server.flushTransmits(now);
    }
    const sd = r.server.nextDeadline();
    if (sd !== null && sd <= now) r.server.handleTimeout(now);
    for (let e = r.server.pollEvent(now); e; e = r.server.pollEvent(now));
    for (const sid of r.sids) r.server.send(now, sid, 0, body);
    r.server.flushTransmits(now);
    const dt = process.hrtime.bigint() - t0;
    if (m >= warm) {
      ns += dt;
      acks += pending.length;
      deliveries += r.sids.length;
    }
    for (const t of take()) r.clients[t.to]!.handleDatagram(now, t.data);
  }
  if (r.server.sessionCount !== o.sessions) throw new Error(`${o.sessions - r.server.sessionCount} sessions closed during the run`);
  if (evictSum < 0) throw new Error('unreachable'); // keeps the eviction loop from being optimised away
  return { sessions: o.sessions, messages: o.messages, deliveries, usPerDelivery: Number(ns) / 1000 / deliveries, ackDatagramsPerDelivery: acks / deliveries };
}

export const ENDPOINT_USAGE = `usage: npm run bench:endpoint -- [--sessions N] [--rounds R] [--order random|sequential|both]
       npm run bench:endpoint -- --fanout [--sessions N] [--messages M] [--bytes B] [--step-ms T] [--evict-mib E]

The server endpoint alone, in process: N open sessions (default 20000), R rounds (default 5) in which
every client sends its keepalive PING and the server answers it. Prints the server endpoint's CPU per
keepalive. --order random (the default with both) feeds the PINGs shuffled, as a real server receives
them.

--fanout: a room instead. Every T ms (default 2) one B-byte message (default 100) goes to all N sessions
(default 100), M times (default 5000); the clients ack as they would. Prints the server endpoint's CPU
per delivered message: the part of npm run bench's figure that is obrol's own code, without the kernel.
--evict-mib E writes through E MiB (untimed) before each message, so that the sessions' state is cold
in the caches, as on a socket server whose members each hear a message every 100 ms (64 is more than
this kind of machine's last-level cache); 0, the default, leaves them warm.`;

export function endpointMain(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    options: {
      sessions: { type: 'string', default: '20000' },
      rounds: { type: 'string', default: '5' },
      order: { type: 'string', default: 'both' },
      fanout: { type: 'boolean', default: false },
      messages: { type: 'string', default: '5000' },
      bytes: { type: 'string', default: '100' },
      'step-ms': { type: 'string', default: '2' },
      'evict-mib': { type: 'string', default: '0' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(ENDPOINT_USAGE);
    return 0;
  }
  if (values.fanout) {
    const sessions = values.sessions === '20000' ? 100 : Number(values.sessions);
    const messages = Number(values.messages);
    const bytes = Number(values.bytes);
    const stepMs = Number(values['step-ms']);
    if (!Number.isInteger(sessions) || sessions < 1 || sessions > 100_000) throw new Error('--sessions must be an integer from 1 to 100000');
    if (!Number.isInteger(messages) || messages < 10 || messages > 1_000_000) throw new Error('--messages must be an integer from 10 to 1000000');
    if (!Number.isInteger(bytes) || bytes < 1 || bytes > 4000) throw new Error('--bytes must be an integer from 1 to 4000');
    if (!(stepMs > 0 && stepMs <= 1000)) throw new Error('--step-ms must be a number of milliseconds in (0, 1000]');
    const evictMiB = Number(values['evict-mib']);
    if (!Number.isInteger(evictMiB) || evictMiB < 0 || evictMiB > 1024) throw new Error('--evict-mib must be an integer from 0 to 1024');
    console.log(`server endpoint in process, a room's fan-out; ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}\n`);
    console.log('| sessions | messages | bytes | deliveries | µs per delivery | ack datagrams per delivery |');
    console.log('|---|---|---|---|---|---|');
    const r = fanoutBench({ sessions, messages, bytes, stepMs, evictMiB });
    console.log(`| ${r.sessions} | ${r.messages} | ${bytes} | ${r.deliveries} | ${r.usPerDelivery.toFixed(2)} | ${r.ackDatagramsPerDelivery.toFixed(3)} |`);
    return 0;
  }
  const sessions = Number(values.sessions);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(sessions) || sessions < 1 || sessions > 1_000_000) throw new Error('--sessions must be an integer from 1 to 1000000');
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 1000) throw new Error('--rounds must be an integer from 1 to 1000');
  const o = values.order;
  const orders: ('random' | 'sequential')[] | null = o === 'both' ? ['sequential', 'random'] : o === 'random' ? ['random'] : o === 'sequential' ? ['sequential'] : null;
  if (orders === null) throw new Error('--order must be random, sequential or both');
  console.log(`server endpoint in process; ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}\n`);
  console.log('| sessions | order | keepalives | µs per keepalive | heap MiB |');
  console.log('|---|---|---|---|---|');
  for (const order of orders) {
    const r = keepaliveBench({ sessions, rounds, order });
    console.log(`| ${r.sessions} | ${r.order} | ${r.keepalives} | ${r.usPerKeepalive.toFixed(2)} | ${r.heapMiB.toFixed(0)} |`);
  }
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    process.exitCode = endpointMain(process.argv.slice(2));
  } catch (e) {
    console.error(`bench:endpoint: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 2;
  }
}
