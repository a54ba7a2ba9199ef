// Protocol efficiency of the session layer, measured on the seeded simulated network (virtual time, so
// the numbers are properties of the protocol, not of this machine's speed): latency p50/p99 and goodput
// at several loss rates, bytes on the wire per payload byte, and acks the server receives per message it
// fans out in a busy room.

import { IDLE_TIMEOUT_MS, KEEPALIVE_MS, RECV_BUFFER_MAX_BYTES, SEND_BUFFER_MAX_BYTES } from '../limits.js';
import { CLIENT_ACK_DELAYS, SERVER_ACK_DELAYS, type ConnectionConfig, type ConnectionEvent } from '../session/connection.js';
import { SimNet, type Link, type SimNode } from '../sim/network.js';
import { Rng } from '../proxy/rng.js';

const MAX_PAYLOAD = 1200 - 13 - 16;
const client: ConnectionConfig = {
  maxPayload: MAX_PAYLOAD,
  keepaliveMs: KEEPALIVE_MS,
  idleTimeoutMs: IDLE_TIMEOUT_MS,
  sendBufferMax: SEND_BUFFER_MAX_BYTES,
  recvBufferMax: RECV_BUFFER_MAX_BYTES,
  ...CLIENT_ACK_DELAYS,
};
const server: ConnectionConfig = { ...client, keepaliveMs: null, ...SERVER_ACK_DELAYS };

export interface SessionBenchRow {
  loss: number;
  messages: number;
  messageBytes: number;
  ratePerSec: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  goodputKBps: number;
  wireOverhead: number;
  retransmittedShare: number;
  /** Which side sends: the client (its own messages) or the server (a room's messages to one member). */
  from: 'client' | 'server';
  /** ACK frames the receiver sent per message. */
  acksPerMessage: number;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** One sender, one receiver: chat-sized messages at a steady rate over a lossy path. */
export function pointToPoint(
  loss: number,
  opts: { messages?: number; size?: number; rate?: number; seed?: number; link?: Partial<Link>; from?: 'client' | 'server' } = {},
): SessionBenchRow {
  const from = opts.from ?? 'client';
  const messages = opts.messages ?? 5000;
  const size = opts.size ?? 100;
  const rate = opts.rate ?? 200;
  const net = new SimNet(opts.seed ?? 1, { loss, dup: 0, reorder: 0, delayMs: 20, jitterMs: 5, ...opts.link });
  const a = net.addNode();
  const b = net.addNode();
  if (from === 'client') net.connect(a, b, client, server);
  else net.connect(a, b, server, client);
  const sentAt: number[] = [];
  const latencies: number[] = [];
  let lastDelivery = 0;
  const onEvent = (node: SimNode, _peer: number, ev: ConnectionEvent): void => {
    if (node !== b || ev.type !== 'message') return;
    latencies.push(net.now - sentAt[ev.seq]!);
    lastDelivery = net.now;
  };
  const interval = 1000 / rate;
  const conn = a.conns.get(b.id)!;
  for (let i = 0; i < messages; i++) {
    sentAt.push(net.now);
    const data = new Uint8Array(size).fill(i & 0xff);
    if (!conn.send(1, data, net.now).ok) throw new Error('send buffer full: lower the rate');
    net.run(net.now + interval, onEvent);
  }
  for (let i = 0; i < 600 && latencies.length < messages; i++) net.run(net.now + 100, onEvent);
  latencies.sort((x, y) => x - y);
  const stats = conn.stats;
  const payload = messages * size;
  return {
    loss,
    messages,
    messageBytes: size,
    ratePerSec: rate,
    latencyP50Ms: percentile(latencies, 50),
    latencyP99Ms: percentile(latencies, 99),
    goodputKBps: payload / 1024 / (lastDelivery / 1000),
    wireOverhead: net.wire.bytes / payload,
    retransmittedShare: stats.retransmittedBytes / payload,
    from,
    acksPerMessage: b.conns.get(a.id)!.stats.ackFramesSent / messages,
  };
}

export interface BulkRow {
  loss: number;
  messageBytes: number;
  messages: number;
  goodputKBps: number;
  wireOverhead: number;
}

/** As fast as the congestion window allows: messages queue, so they share packets. */
export function bulk(loss: number, size: number, messages = 20_000, seed = 3): BulkRow {
  const net = new SimNet(seed, { loss, dup: 0, reorder: 0, delayMs: 20, jitterMs: 5 });
  const a = net.addNode();
  const b = net.addNode();
  net.connect(a, b, client, server);
  const conn = a.conns.get(b.id)!;
  let got = 0;
  let queued = 0;
  const data = new Uint8Array(size);
  for (let i = 0; i < 60_000 && got < messages; i++) {
    while (queued < messages && conn.send(1, data, net.now).ok) queued++;
    net.run(net.now + 10, (node, _peer, ev) => {
      if (node === b && ev.type === 'message') got++;
    });
  }
  return { loss, messageBytes: size, messages, goodputKBps: (messages * size) / 1024 / (net.now / 1000), wireOverhead: net.wire.bytes / (messages * size) };
}

export interface BusyRoomRow {
  clients: number;
  messages: number;
  loss: number;
  deliveries: number;
  acksPerDelivery: number;
  wireOverhead: number;
}

/** A server fanning out every message of `clients` members to all of them. */
export function busyRoom(clients: number, messages: number, loss: number, seed = 7): BusyRoomRow {
  const net = new SimNet(seed, { loss, dup: 0, reorder: 0, delayMs: 15, jitterMs: 5 });
  const hub = net.addNode();
  const members: SimNode[] = [];
  for (let i = 0; i < clients; i++) {
    const c = net.addNode();
    net.connect(c, hub, client, server);
    members.push(c);
  }
  const rng = new Rng(seed);
  let deliveries = 0;
  let payload = 0;
  const onEvent = (node: SimNode, _peer: number, ev: ConnectionEvent): void => {
    if (ev.type !== 'message') return;
    if (node === hub) {
      for (const m of members) hub.conns.get(m.id)!.send(1, ev.data, net.now);
    } else deliveries++;
  };
  for (let sent = 0; sent < messages; ) {
    for (let i = 0; i < 25 && sent < messages; i++, sent++) {
      const data = new Uint8Array(100);
      members[rng.int(clients)]!.conns.get(hub.id)!.send(1, data, net.now);
      payload += data.length * (clients + 1);
    }
    net.run(net.now + 100, onEvent);
  }
  for (let i = 0; i < 600 && deliveries < messages * clients; i++) net.run(net.now + 100, onEvent);
  let acks = 0;
  for (const m of members) acks += hub.conns.get(m.id)!.stats.ackFramesReceived;
  return { clients, messages, loss, deliveries, acksPerDelivery: acks / deliveries, wireOverhead: net.wire.bytes / payload };
}

export function sessionReport(): { pointToPoint: SessionBenchRow[]; bulk: BulkRow[]; busyRoom: BusyRoomRow[]; markdown: string } {
  const p2p = [
    ...[0, 0.01, 0.05, 0.2].map((loss) => pointToPoint(loss)),
    // A quiet room: one member's share of a fan-out, where the client's longer ack delay shows.
    ...[0, 0.01, 0.05].map((loss) => pointToPoint(loss, { from: 'server', rate: 10, messages: 1000 })),
  ];
  const rooms = [busyRoom(50, 5000, 0), busyRoom(50, 5000, 0.05)];
  const bulks = [bulk(0, 100), bulk(0.05, 100), bulk(0, 1000), bulk(0.05, 1000)];
  const md = [
    '| sender | loss | messages (bytes, rate) | latency p50 | latency p99 | goodput | wire bytes / payload | retransmitted | receiver acks / message |',
    '|---|---|---|---|---|---|---|---|---|',
    ...p2p.map(
      (r) =>
        `| ${r.from} | ${(r.loss * 100).toFixed(0)}% | ${r.messages} (${r.messageBytes} B, ${r.ratePerSec}/s) | ${r.latencyP50Ms.toFixed(1)} ms | ${r.latencyP99Ms.toFixed(1)} ms | ${r.goodputKBps.toFixed(1)} KiB/s | ${r.wireOverhead.toFixed(3)} | ${(r.retransmittedShare * 100).toFixed(1)}% | ${r.acksPerMessage.toFixed(2)} |`,
    ),
    '',
    '| bulk (queue-limited) | loss | goodput | wire bytes / payload |',
    '|---|---|---|---|',
    ...bulks.map((r) => `| ${r.messages} × ${r.messageBytes} B | ${(r.loss * 100).toFixed(0)}% | ${r.goodputKBps.toFixed(0)} KiB/s | ${r.wireOverhead.toFixed(3)} |`),
    '',
    '| busy room | loss | deliveries | acks received by the server per delivered message | wire bytes / payload |',
    '|---|---|---|---|---|',
    ...rooms.map(
      (r) => `| ${r.clients} clients, ${r.messages} messages | ${(r.loss * 100).toFixed(0)}% | ${r.deliveries} | ${r.acksPerDelivery.toFixed(3)} | ${r.wireOverhead.toFixed(3)} |`,
    ),
  ].join('\n');
  return { pointToPoint: p2p, bulk: bulks, busyRoom: rooms, markdown: md };
}

// Run directly: `node dist/bench/session.js` prints the tables (npm run bench:session).
if (import.meta.url === `file://${process.argv[1]}`) {
  const r = sessionReport();
  console.log('Session layer on the simulated network (one-way delay 20 ms ± 5 ms; virtual time):\n');
  console.log(r.markdown);
}
