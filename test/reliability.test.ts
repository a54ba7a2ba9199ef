// The reliability core on a seeded simulated network with a virtual clock: exactly-once, in-order
// delivery per stream under loss, duplication, reordering and delay; bounded buffers; liveness.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CLIENT_ACK_DELAYS, Connection, SERVER_ACK_DELAYS, type ConnectionConfig, type ConnectionEvent } from '../src/session/connection.js';
import { decodeFrames, encodeFrames, type Frame } from '../src/wire/frame.js';
import { Rng } from '../src/proxy/rng.js';
import { SimNet, type Link, type SimNode } from '../src/sim/network.js';
import { IDLE_TIMEOUT_MS, KEEPALIVE_MS, MAX_ACK_RANGES, RECV_BUFFER_MAX_BYTES, SEND_BUFFER_MAX_BYTES } from '../src/limits.js';

const MAX_PAYLOAD = 1200 - 13 - 16;
const clientCfg: ConnectionConfig = {
  maxPayload: MAX_PAYLOAD,
  keepaliveMs: KEEPALIVE_MS,
  idleTimeoutMs: IDLE_TIMEOUT_MS,
  sendBufferMax: SEND_BUFFER_MAX_BYTES,
  recvBufferMax: RECV_BUFFER_MAX_BYTES,
  ...CLIENT_ACK_DELAYS,
};
const serverCfg: ConnectionConfig = { ...clientCfg, keepaliveMs: null, ...SERVER_ACK_DELAYS };

/** A message body that says who sent it and which it is, padded to a chosen size. */
function body(sender: number, stream: number, n: number, size: number): Uint8Array {
  const head = new TextEncoder().encode(`${sender}/${stream}/${n}/`);
  const out = new Uint8Array(Math.max(size, head.length));
  out.set(head);
  for (let i = head.length; i < out.length; i++) out[i] = (n + i) & 0xff;
  return out;
}

function parse(data: Uint8Array): { sender: number; stream: number; n: number } {
  const text = new TextDecoder().decode(data.subarray(0, 40));
  const [sender, stream, n] = text.split('/').map(Number);
  return { sender: sender!, stream: stream!, n: n! };
}

// ---- frames ----------------------------------------------------------------------------------------

const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  fc.constant({ type: 'ping' } as Frame),
  fc
    .array(fc.tuple(fc.nat({ max: 50 }), fc.nat({ max: 50 })), { minLength: 1, maxLength: MAX_ACK_RANGES })
    .chain((parts) => {
      // Build descending, non-touching ranges from (gap, length) pairs.
      let hi = parts.reduce((a, [g, l]) => a + g + l + 2, 0) + 10;
      const ranges = parts.map(([gap, len]) => {
        const r = { hi, lo: hi - len };
        hi = r.lo - gap - 2;
        return r;
      });
      return fc.nat({ max: 100_000 }).map((delayUs) => ({ type: 'ack', ranges, delayUs }) as Frame);
    }),
  fc
    .tuple(fc.nat({ max: 255 }), fc.nat({ max: 1e9 }), fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.nat({ max: 1000 }))
    .map(([stream, seq, data, extra]) => ({ type: 'msg', stream, seq, total: data.length + extra, offset: extra, data }) as Frame),
  fc.tuple(fc.nat({ max: 10 }), fc.string({ maxLength: 40 })).map(([code, reason]) => ({ type: 'close', code, reason }) as Frame),
  fc.uint8Array({ minLength: 8, maxLength: 8 }).map((data) => ({ type: 'path-challenge', data }) as Frame),
  fc.uint8Array({ minLength: 8, maxLength: 8 }).map((data) => ({ type: 'path-response', data }) as Frame),
);

test('frames round-trip, and random or mutated bytes never crash the decoder', () => {
  fc.assert(
    fc.property(fc.array(frameArb, { maxLength: 6 }), (frames) => {
      const d = decodeFrames(encodeFrames(frames));
      assert.ok(d.ok);
      assert.deepEqual(JSON.parse(JSON.stringify(d.value)), JSON.parse(JSON.stringify(frames)));
    }),
  );
  fc.assert(
    fc.property(fc.array(frameArb, { minLength: 1, maxLength: 4 }), fc.nat(), fc.integer({ min: 0, max: 255 }), (frames, pos, byte) => {
      const b = encodeFrames(frames).slice();
      b[pos % b.length] = byte;
      const d = decodeFrames(b);
      if (!d.ok) return;
      for (const f of d.value) {
        if (f.type === 'msg') assert.ok(f.offset + f.data.length <= f.total);
        if (f.type === 'ack') for (const r of f.ranges) assert.ok(r.lo >= 0 && r.lo <= r.hi);
      }
    }),
    { numRuns: 5000 },
  );
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => void decodeFrames(b)), { numRuns: 5000 });
});

test('compact message frames: a whole message is MSG_WHOLE, the next one of its stream MSG_NEXT; both decode to msg frames', () => {
  const data = (n: number) => new Uint8Array(100).fill(n);
  const frames: Frame[] = [
    { type: 'msg', stream: 3, seq: 20_000, total: 100, offset: 0, data: data(1) },
    { type: 'msg', stream: 3, seq: 20_001, total: 100, offset: 0, data: data(2) },
    { type: 'msg', stream: 3, seq: 20_002, total: 100, offset: 0, data: data(3) },
    { type: 'msg', stream: 4, seq: 0, total: 100, offset: 0, data: data(4) },
  ];
  const bytes = encodeFrames(frames);
  // MSG_WHOLE: type, stream, seq (4 bytes), length (2); MSG_NEXT: type, length; then MSG_WHOLE again.
  assert.equal(bytes.length, 1 + 1 + 4 + 2 + 100 + 2 * (1 + 2 + 100) + (1 + 1 + 1 + 2 + 100));
  assert.deepEqual(bytes[0], 0x07);
  assert.deepEqual(bytes[108], 0x08);
  const d = decodeFrames(bytes);
  assert.ok(d.ok);
  assert.deepEqual(d.value, frames);
  // A fragment sets the context too; MSG_NEXT with no message before it in the packet is malformed.
  const frag: Frame = { type: 'msg', stream: 1, seq: 5, total: 3000, offset: 1000, data: data(9) };
  const after = decodeFrames(encodeFrames([frag, { type: 'msg', stream: 1, seq: 6, total: 100, offset: 0, data: data(8) }]));
  const second = after.ok ? after.value[1] : undefined;
  assert.ok(second?.type === 'msg' && second.seq === 6 && second.stream === 1);
  assert.equal(decodeFrames(Uint8Array.of(0x08, 1, 0xaa)).ok, false);
  assert.equal(decodeFrames(Uint8Array.of(0x01, 0x08, 1, 0xaa)).ok, false);
});

// ---- unit behaviour ----------------------------------------------------------------------------------

/** Two connections wired directly; `drop(pn, dir)` decides losses. */
function direct(drop: (dir: 'ab' | 'ba', pn: number) => boolean = () => false, cfg: { a?: ConnectionConfig; b?: ConnectionConfig } = {}) {
  let now = 0;
  const a = new Connection(cfg.a ?? clientCfg, now);
  const b = new Connection(cfg.b ?? serverCfg, now);
  const evA: ConnectionEvent[] = [];
  const evB: ConnectionEvent[] = [];
  const pump = () => {
    for (let i = 0; i < 1000; i++) {
      let moved = false;
      for (let t = a.pollTransmit(now); t; t = a.pollTransmit(now)) {
        moved = true;
        if (!drop('ab', t.pn)) b.onPacket(now, t.pn, t.payload);
      }
      for (let t = b.pollTransmit(now); t; t = b.pollTransmit(now)) {
        moved = true;
        if (!drop('ba', t.pn)) a.onPacket(now, t.pn, t.payload);
      }
      for (let e = a.pollEvent(); e; e = a.pollEvent()) evA.push(e);
      for (let e = b.pollEvent(); e; e = b.pollEvent()) evB.push(e);
      if (!moved) return;
    }
  };
  const advance = (ms: number) => {
    const until = now + ms;
    for (let i = 0; i < 100_000 && now < until; i++) {
      pump();
      const next = Math.min(a.nextDeadline() ?? Infinity, b.nextDeadline() ?? Infinity, until);
      now = Math.max(now, next);
      if (a.nextDeadline() !== null && a.nextDeadline()! <= now) a.onTimeout(now);
      if (b.nextDeadline() !== null && b.nextDeadline()! <= now) b.onTimeout(now);
    }
    pump();
  };
  return { a, b, evA, evB, pump, advance, get now() { return now; } };
}

test('with deliveryEvents false, messages are still acknowledged and freed, with no delivered events', () => {
  const d = direct(() => false, { a: { ...clientCfg, deliveryEvents: false } });
  for (let i = 0; i < 20; i++) assert.ok(d.a.send(0, body(0, i, 0, 300), d.now).ok);
  d.advance(5_000);
  assert.equal(d.evB.filter((e) => e.type === 'message').length, 20);
  assert.equal(d.evA.filter((e) => e.type === 'delivered').length, 0);
  assert.equal(d.a.stats.bufferedSendBytes, 0, 'every message was acknowledged and let go');
});

test('a 16 KiB+ message is fragmented, reassembled, and reported delivered', () => {
  const d = direct((dir, pn) => dir === 'ab' && pn % 3 === 1); // lose every third packet one way
  const big = body(0, 1, 0, 17_000);
  assert.deepEqual(d.a.send(1, big, d.now), { ok: true, seq: 0 });
  d.advance(10_000);
  const msgs = d.evB.filter((e) => e.type === 'message');
  assert.equal(msgs.length, 1);
  const m0 = msgs[0];
  assert.deepEqual(m0?.type === 'message' && m0.data, big);
  assert.ok(d.evA.some((e) => e.type === 'delivered' && e.seq === 0));
  assert.equal(d.a.stats.bufferedSendBytes, 0);
});

test('a loss on one stream does not hold back another stream', () => {
  let dropped = false;
  const d = direct((dir, pn) => {
    if (dir === 'ab' && pn === 0 && !dropped) return (dropped = true);
    return false;
  });
  d.a.send(1, body(0, 1, 0, 10), d.now); // goes in packet 0, which is lost
  d.pump();
  d.a.send(2, body(0, 2, 0, 10), d.now); // packet 1
  d.pump();
  const first = d.evB.filter((e) => e.type === 'message');
  assert.equal(first.length, 1);
  const f0 = first[0];
  assert.equal(f0?.type === 'message' && f0.stream, 2, 'stream 2 delivered while stream 1 waits');
  d.advance(5_000);
  assert.equal(d.evB.filter((e) => e.type === 'message').length, 2);
});

test('probe timeouts back off while the peer is silent, then recovery is quick', () => {
  let blackhole = true;
  const d = direct(() => blackhole);
  d.a.send(1, body(0, 1, 0, 10), d.now);
  d.advance(20_000);
  const sent = d.a.stats.sentPackets;
  assert.ok(sent >= 4 && sent <= 10, `backoff keeps retransmissions few (${sent})`);
  assert.ok(d.a.stats.ptoCount >= 3);
  blackhole = false;
  d.advance(11_000);
  assert.equal(d.evB.filter((e) => e.type === 'message').length, 1);
});

test('keepalives hold a quiet session open; silence ends it with idle timeout (code 1)', () => {
  const d = direct();
  d.advance(10 * 60_000);
  assert.equal(d.a.state, 'open');
  assert.equal(d.b.state, 'open');
  const cut = direct(() => true);
  cut.advance(IDLE_TIMEOUT_MS + 1000);
  const closed = cut.evA.find((e) => e.type === 'closed');
  assert.ok(closed && closed.type === 'closed' && closed.code === 1 && !closed.byPeer);
});

test('a keepalive PING is acknowledged at once, not after the ack delay; a message still waits for it', () => {
  let now = 0;
  const a = new Connection(clientCfg, now);
  const b = new Connection(serverCfg, now);
  // Open both ways first: the first packets carry handshake-time acks of their own.
  a.send(1, new Uint8Array([1]), now);
  for (let t = a.pollTransmit(now); t; t = a.pollTransmit(now)) b.onPacket(now, t.pn, t.payload);
  now += 1000;
  b.onTimeout(now);
  for (let t = b.pollTransmit(now); t; t = b.pollTransmit(now)) a.onPacket(now, t.pn, t.payload);
  // A message: the server holds its ack back (ack delay), so nothing leaves at once.
  now += 1000;
  a.send(1, new Uint8Array([2]), now);
  for (let t = a.pollTransmit(now); t; t = a.pollTransmit(now)) b.onPacket(now, t.pn, t.payload);
  assert.equal(b.pollTransmit(now), null, 'an ack for a message waits for the ack delay');
  now += 1000;
  b.onTimeout(now);
  for (let t = b.pollTransmit(now); t; t = b.pollTransmit(now)) a.onPacket(now, t.pn, t.payload);
  // Quiet until the client's keepalive: its PING is answered in the same instant.
  const ka = a.nextDeadline();
  assert.ok(ka !== null);
  now = ka;
  a.onTimeout(now);
  let pings = 0;
  for (let t = a.pollTransmit(now); t; t = a.pollTransmit(now)) {
    pings++;
    b.onPacket(now, t.pn, t.payload);
  }
  assert.equal(pings, 1);
  const reply = b.pollTransmit(now);
  assert.ok(reply !== null, 'the PING is acked at once');
  const frames = decodeFrames(reply.payload);
  assert.ok(frames.ok && frames.value.some((f) => f.type === 'ack'));
});

test('graceful close reaches the peer even when the first CLOSE is lost', () => {
  let first = true;
  const d = direct((dir, _pn) => {
    if (dir === 'ab' && first && d.a.state === 'closing') return !(first = false);
    return false;
  });
  d.a.close(0, 'bye', d.now);
  d.advance(5_000);
  assert.ok(d.evB.some((e) => e.type === 'closed' && e.byPeer && e.reason === 'bye'));
  assert.ok(d.evA.some((e) => e.type === 'closed' && !e.byPeer));
});

test('the send buffer is bounded: send() refuses instead of queueing without end', () => {
  const d = direct(() => true);
  let refused = false;
  for (let i = 0; i < 200 && !refused; i++) refused = !d.a.send(1, new Uint8Array(16 * 1024), d.now).ok;
  assert.ok(refused);
  assert.ok(d.a.stats.bufferedSendBytes <= SEND_BUFFER_MAX_BYTES);
});

test('the receive buffer is bounded: a packet that would overflow it is refused unacknowledged', () => {
  const b = new Connection({ ...serverCfg, recvBufferMax: 2000 }, 0);
  const frag = (seq: number, offset: number) => encodeFrames([{ type: 'msg', stream: 1, seq, total: 5000, offset, data: new Uint8Array(1000) }]);
  assert.equal(b.onPacket(0, 0, frag(1, 0)), 'accepted'); // seq 1 waits for seq 0
  assert.equal(b.onPacket(0, 1, frag(1, 1000)), 'accepted');
  assert.equal(b.onPacket(0, 2, frag(1, 2000)), 'over-buffer');
  assert.ok(b.stats.bufferedRecvBytes <= 2000);
  assert.equal(b.onPacket(0, 3, new Uint8Array([0xee])), 'malformed');
});

// ---- simulations --------------------------------------------------------------------------------------

interface SimResult {
  simulatedSeconds: number;
  wallMs: number;
  overhead: number;
  acksPerDelivery: number;
}

/** Two endpoints; 10,000 messages of mixed sizes on several streams, with a long idle stretch. */
function twoEndpoints(seed: number, link: Link): SimResult {
  const started = Date.now();
  const net = new SimNet(seed, link);
  const a = net.addNode();
  const b = net.addNode();
  net.connect(a, b, clientCfg, serverCfg);
  const rng = new Rng(seed);
  const STREAMS = 4;
  const TOTAL = 10_000;
  const next = new Array<number>(STREAMS).fill(0);
  const got = new Array<number>(STREAMS).fill(0);
  const delivered = new Set<string>();
  let payloadBytes = 0;
  const backlog: { stream: number; data: Uint8Array }[] = [];
  const onEvent = (node: SimNode, _peer: number, ev: ConnectionEvent) => {
    if (ev.type === 'message') {
      assert.equal(node, b);
      const m = parse(ev.data);
      assert.equal(m.stream, ev.stream, `seed ${seed}`);
      assert.equal(m.n, got[ev.stream], `seed ${seed}: stream ${ev.stream} out of order or duplicated`);
      got[ev.stream]!++;
    } else if (ev.type === 'delivered') {
      const k = `${ev.stream}/${ev.seq}`;
      assert.ok(!delivered.has(k), `seed ${seed}: delivered twice`);
      delivered.add(k);
    } else if (ev.type === 'closed') {
      assert.fail(`seed ${seed}: session closed: ${ev.reason}`);
    }
  };
  let sent = 0;
  for (let round = 0; sent < TOTAL; round++) {
    // 20 messages every 100 ms of simulated time; sizes from 10 bytes to 3 KiB (some need fragments).
    for (let i = 0; i < 20 && sent < TOTAL; i++, sent++) {
      const stream = rng.int(STREAMS);
      const size = rng.next() < 0.1 ? 1200 + rng.int(2000) : 10 + rng.int(200);
      backlog.push({ stream, data: body(0, stream, next[stream]!++, size) });
      payloadBytes += size;
    }
    while (backlog.length > 0) {
      const m = backlog[0]!;
      if (!a.conns.get(b.id)!.send(m.stream, m.data, net.now).ok) break;
      backlog.shift();
    }
    net.run(net.now + 100, onEvent);
    for (const n of [a, b]) {
      const s = n.conns.values().next().value!.stats;
      assert.ok(s.bufferedSendBytes <= SEND_BUFFER_MAX_BYTES && s.bufferedRecvBytes <= RECV_BUFFER_MAX_BYTES, `seed ${seed}: buffers bounded`);
    }
    if (round === 200) net.run(net.now + 1_800_000, onEvent); // half an hour of silence: keepalives only
  }
  for (let i = 0; i < 600 && delivered.size < TOTAL; i++) {
    while (backlog.length > 0 && a.conns.get(b.id)!.send(backlog[0]!.stream, backlog[0]!.data, net.now).ok) backlog.shift();
    net.run(net.now + 1000, onEvent);
  }
  assert.deepEqual(got, next, `seed ${seed}: every message exactly once`);
  assert.equal(delivered.size, TOTAL, `seed ${seed}: every message confirmed`);
  const server = b.conns.get(a.id)!.stats;
  return {
    simulatedSeconds: net.now / 1000,
    wallMs: Date.now() - started,
    overhead: net.wire.bytes / payloadBytes,
    acksPerDelivery: server.ackFramesReceived / TOTAL,
  };
}

for (const loss of [0, 0.05, 0.15, 0.3]) {
  test(`simulation: 2 endpoints, 10,000 messages at ${loss * 100}% loss with duplication, reordering and delay`, (t) => {
    const seed = 1000 + loss * 100;
    const r = twoEndpoints(seed, { loss, dup: 0.05, reorder: 0.1, delayMs: 20, jitterMs: 10 });
    t.diagnostic(`seed ${seed}: ${r.simulatedSeconds.toFixed(0)} simulated s in ${r.wallMs} ms; wire/payload ${r.overhead.toFixed(3)}`);
  });
}

/** One server relaying every message of 50 clients to all 50, like a busy room. */
function busyRoom(seed: number, link: Link, clients = 50, total = 10_000): SimResult {
  const started = Date.now();
  const net = new SimNet(seed, link);
  const server = net.addNode();
  const cs: SimNode[] = [];
  for (let i = 0; i < clients; i++) {
    const c = net.addNode();
    net.connect(c, server, clientCfg, serverCfg);
    cs.push(c);
  }
  const rng = new Rng(seed);
  const sentBy = new Array<number>(clients).fill(0);
  const relayOrder: string[] = [];
  const seenBy = cs.map(() => [] as string[]);
  const backlogs = cs.map(() => [] as Uint8Array[]);
  let payloadBytes = 0;
  const onEvent = (node: SimNode, peer: number, ev: ConnectionEvent) => {
    if (ev.type === 'closed') assert.fail(`seed ${seed}: ${node.id}-${peer} closed: ${ev.reason}`);
    if (ev.type !== 'message') return;
    if (node === server) {
      // Relay to everyone, the sender included, on the room's stream.
      const m = parse(ev.data);
      relayOrder.push(`${m.sender}/${m.n}`);
      for (const c of cs) {
        const r = server.conns.get(c.id)!.send(1, ev.data, net.now);
        assert.ok(r.ok, `seed ${seed}: server send buffer to ${c.id} full`);
      }
    } else {
      const m = parse(ev.data);
      seenBy[node.id - 1]!.push(`${m.sender}/${m.n}`);
    }
  };
  let sent = 0;
  while (sent < total) {
    for (let i = 0; i < 25 && sent < total; i++, sent++) {
      const who = rng.int(clients);
      const size = 20 + rng.int(120);
      backlogs[who]!.push(body(who, 1, sentBy[who]!++, size));
      payloadBytes += size * clients;
    }
    cs.forEach((c, i) => {
      const q = backlogs[i]!;
      while (q.length > 0 && c.conns.get(server.id)!.send(1, q[0]!, net.now).ok) q.shift();
    });
    net.run(net.now + 100, onEvent);
  }
  for (let i = 0; i < 600 && seenBy.some((s) => s.length < total); i++) net.run(net.now + 1000, onEvent);
  net.run(net.now + 1_000_000, onEvent); // a quiet quarter of an hour: keepalives keep all 50 sessions
  assert.equal(relayOrder.length, total, `seed ${seed}: the server got every message once`);
  for (const [i, s] of seenBy.entries()) assert.deepEqual(s, relayOrder, `seed ${seed}: client ${i} got every message once, in the room's order`);
  let acks = 0;
  for (const c of cs) acks += server.conns.get(c.id)!.stats.ackFramesReceived;
  return {
    simulatedSeconds: net.now / 1000,
    wallMs: Date.now() - started,
    overhead: net.wire.bytes / payloadBytes,
    acksPerDelivery: acks / (total * clients),
  };
}

for (const loss of [0, 0.2]) {
  test(`simulation: 50 clients and a server, 10,000 messages fanned out to all at ${loss * 100}% loss`, (t) => {
    const seed = 2000 + loss * 100;
    const r = busyRoom(seed, { loss, dup: 0.05, reorder: 0.1, delayMs: 15, jitterMs: 10 });
    t.diagnostic(
      `seed ${seed}: ${r.simulatedSeconds.toFixed(0)} simulated s in ${r.wallMs} ms; acks received by the server per delivered message ${r.acksPerDelivery.toFixed(3)}`,
    );
  });
}

test('acks stay small under loss: ranges the peer has seen acknowledged are forgotten (RFC 9000 §13.2.4)', () => {
  // a sends, b only acknowledges: b's ack-only packets get a PING while old ranges linger, so a's ack of
  // them tells b what it may forget. Without that, every lost packet would leave a range in every ACK.
  const rng = new Rng(11);
  let now = 0;
  const a = new Connection(clientCfg, now);
  const b = new Connection(serverCfg, now);
  const kept: { pn: number; payload: Uint8Array }[] = [];
  let widest = 0;
  let acks = 0;
  const got: number[] = [];
  const step = () => {
    for (let t = a.pollTransmit(now); t; t = a.pollTransmit(now)) {
      if (t.pn < 50) kept.push({ pn: t.pn, payload: t.payload.slice() });
      if (rng.next() >= 0.1) b.onPacket(now, t.pn, t.payload);
    }
    for (let t = b.pollTransmit(now); t; t = b.pollTransmit(now)) {
      const d = decodeFrames(t.payload);
      assert.ok(d.ok);
      for (const f of d.value) {
        if (f.type !== 'ack') continue;
        acks++;
        if (now > 1000) widest = Math.max(widest, f.ranges.length);
      }
      if (rng.next() >= 0.1) a.onPacket(now, t.pn, t.payload);
    }
    for (let e = b.pollEvent(); e; e = b.pollEvent()) if (e.type === 'message') got.push(parse(e.data).n);
    for (let e = a.pollEvent(); e; e = a.pollEvent());
    for (const c of [a, b]) if (c.nextDeadline() !== null && c.nextDeadline()! <= now) c.onTimeout(now);
  };
  for (let i = 0; i < 3000; i++) {
    assert.ok(a.send(1, body(0, 1, i, 100), now).ok);
    for (let ms = 0; ms < 5; ms++, now++) step();
  }
  for (let ms = 0; ms < 10_000 && got.length < 3000; ms++, now++) step();
  assert.deepEqual(got, Array.from({ length: 3000 }, (_, i) => i), 'exactly once, in order');
  assert.ok(acks > 100);
  // The client acks the server's ack-only packets after up to CLIENT_MAX_ACK_DELAY_MS, so ranges linger a little longer.
  assert.ok(widest <= 16, `ACK frames carry at most half the ranges at 10% loss (widest: ${widest}; ${MAX_ACK_RANGES} without forgetting)`);
  // A very late copy of an early packet is a duplicate now, and delivers nothing again.
  for (const k of kept) assert.equal(b.onPacket(now, k.pn, k.payload), 'duplicate');
  for (let e = b.pollEvent(); e; e = b.pollEvent()) assert.notEqual(e.type, 'message');
});

test('a client holds its acks back longer than the server: a quiet room costs half the acks, and nothing is resent for it', () => {
  // The server (b) fans a message out to this client every 60 ms, as in a quiet room.
  const quietRoom = (serverWaits: ConnectionConfig, clientAcks: ConnectionConfig) => {
    const d = direct(() => false, { a: clientAcks, b: serverWaits });
    // A burst first (acked at once, every ACK_EVERY_PACKETS packets): the server measures a short RTT.
    for (let i = 0; i < 8; i++) assert.ok(d.b.send(1, body(1, 1, 100 + i, 100), d.now).ok);
    d.advance(500);
    for (let i = 0; i < 100; i++) {
      assert.ok(d.b.send(1, body(1, 1, i, 100), d.now).ok);
      d.advance(60);
    }
    d.advance(1_000);
    assert.equal(d.evA.filter((e) => e.type === 'message').length, 108);
    return { acks: d.a.stats.ackFramesSent, retransmitted: d.b.stats.retransmittedBytes };
  };
  const roles = quietRoom(serverCfg, clientCfg);
  assert.equal(roles.retransmitted, 0, 'nothing resent: the probe timeout allows for the client ack delay');
  assert.ok(roles.acks <= 60, `${roles.acks} acks for 108 packets`);
  // A client acking within the server's 25 ms: an ack per packet.
  const eager = quietRoom(serverCfg, { ...clientCfg, ...SERVER_ACK_DELAYS });
  assert.ok(eager.acks >= 100, `${eager.acks} acks for 108 packets`);
  assert.equal(eager.retransmitted, 0);
});
