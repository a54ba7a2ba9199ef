// The sans-I/O endpoints driven directly with a virtual clock: handshake, address validation and
// amplification, tampering, replay, expired cookies, server-key refusal, and roaming.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ServerEndpoint, type ServerEvent } from '../src/session/server-endpoint.js';
import { ClientEndpoint, type ClientEvent } from '../src/session/client-endpoint.js';
import { generateKeyPair } from '../src/crypto/noise.js';
import { decodePacket, encodeHello, PacketType, PROTOCOL_VERSION, ResetCode } from '../src/wire/packet.js';
import { COOKIE_WINDOW_MS, HELLO_PADDED_SIZE, IDLE_SWEEP_MS, IDLE_TIMEOUT_MS, KEEPALIVE_MS } from '../src/limits.js';
import { utf8Bytes, utf8Text } from '../src/wire/buf.js';
import type { Address } from '../src/session/address.js';
import { CloseCode } from '../src/session/close-codes.js';
import { pooledCopy } from '../src/util/bytes.js';

const random = (n: number) => new Uint8Array(randomBytes(n));
const serverAddr: Address = { address: '127.0.0.1', port: 6789 };

/** A client and a server endpoint wired back to back; `net` can observe, drop or rewrite datagrams. */
function pair(opts: { verify?: (k: Uint8Array) => { ok: true } | { ok: false; reason: string } } = {}) {
  let now = 1_000;
  const serverKey = generateKeyPair();
  const server = new ServerEndpoint({ staticKey: serverKey, random, now });
  const client = new ClientEndpoint({
    staticKey: generateKeyPair(),
    random,
    now,
    hello: utf8Bytes('hello'),
    verifyServerKey: opts.verify ?? (() => ({ ok: true })),
  });
  let clientAddr: Address = { address: '127.0.0.1', port: 40000 };
  const serverEvents: ServerEvent[] = [];
  const clientEvents: ClientEvent[] = [];
  const toServer: Uint8Array[] = [];
  const toClient: { to: Address; data: Uint8Array }[] = [];
  /** Moves datagrams both ways until quiet (bounded). */
  function settle(filter: (dir: 'up' | 'down', d: Uint8Array) => Uint8Array | null = (_dir, d) => d): void {
    for (let round = 0; round < 100; round++) {
      let moved = false;
      for (let d = client.pollTransmit(); d !== null; d = client.pollTransmit()) {
        toServer.push(d);
        const f = filter('up', d);
        // A copy, as a socket's receive memory would be: the server decrypts DATA in place.
        if (f) server.handleDatagram(now, clientAddr, f.slice());
        moved = true;
      }
      for (let t = server.pollTransmit(now); t !== null; t = server.pollTransmit(now)) {
        toClient.push(t);
        const f = filter('down', t.data);
        // A copy here too: the client also decrypts DATA in place, and toClient keeps what was sent.
        if (f && t.to.port === clientAddr.port) client.handleDatagram(now, f.slice());
        moved = true;
      }
      for (let e = server.pollEvent(now); e; e = server.pollEvent(now)) serverEvents.push(e);
      for (let e = client.pollEvent(); e; e = client.pollEvent()) clientEvents.push(e);
      if (!moved) return;
    }
  }
  /** To time t (not before now): timers on both sides, then datagrams through `filter`. */
  function advanceTo(t: number, filter?: Parameters<typeof settle>[0]): void {
    now = Math.max(now, t);
    server.handleTimeout(now);
    client.handleTimeout(now);
    settle(filter);
  }
  function advance(ms: number): void {
    const until = now + ms;
    for (let i = 0; i < 10_000; i++) {
      const next = Math.min(server.nextDeadline() ?? Infinity, client.nextDeadline() ?? Infinity, until);
      now = Math.max(now, next);
      server.handleTimeout(now);
      client.handleTimeout(now);
      settle();
      if (now >= until) return;
    }
  }
  return {
    server,
    client,
    serverKey,
    serverEvents,
    clientEvents,
    toServer,
    toClient,
    settle,
    advance,
    advanceTo,
    get now() {
      return now;
    },
    moveClient(port: number) {
      clientAddr = { address: '127.0.0.1', port };
    },
  };
}

function opened(p: ReturnType<typeof pair>): number {
  p.settle();
  const open = p.serverEvents.find((e) => e.type === 'session-open');
  assert.ok(open && open.type === 'session-open', 'session opened');
  assert.equal(utf8Text(open.hello), 'hello');
  // The server speaks first on the session (the chat layer's welcome); that opens the client.
  p.server.send(p.now, open.sid, 0, utf8Bytes('welcome'));
  p.settle();
  assert.equal(p.client.phase, 'open');
  return open.sid;
}

test('handshake: HELLO, COOKIE, HELLO+cookie, HS_REPLY, HS_FINISH, then encrypted data both ways', () => {
  const p = pair();
  const sid = opened(p);
  const kinds = p.toServer.map((d) => decodePacket(d)).map((d) => (d.ok ? d.value.type : 'bad'));
  assert.deepEqual(kinds.slice(0, 3), ['hello', 'hello', 'hs-finish']);
  assert.equal(p.toServer[0]!.length, HELLO_PADDED_SIZE);
  assert.ok(p.clientEvents.some((e) => e.type === 'open'));
  p.client.send(p.now, 1, utf8Bytes('hi server'));
  p.settle();
  const msg = p.serverEvents.find((e) => e.type === 'message' && e.stream === 1);
  assert.ok(msg && msg.type === 'message' && msg.sid === sid);
  assert.equal(utf8Text(msg.data), 'hi server');
  // Nothing after the handshake travels in clear.
  for (const d of p.toServer.slice(3)) assert.equal(Buffer.from(d).includes(Buffer.from('hi server')), false);
});

test('before validation the server never sends more bytes than it received', () => {
  const p = pair();
  opened(p);
  const { received, sent } = p.server.unvalidated;
  assert.ok(received > 0);
  assert.ok(sent <= received, `sent ${sent} > received ${received}`);
  // Spoofed-source HELLOs from many addresses: each gets one COOKIE, smaller than the HELLO.
  const server = new ServerEndpoint({ staticKey: generateKeyPair(), random, now: 0 });
  let inBytes = 0;
  let outBytes = 0;
  for (let i = 0; i < 1000; i++) {
    const hello = encodeHello(random(8), new Uint8Array(0), random(32));
    inBytes += hello.length;
    server.handleDatagram(0, { address: '10.9.8.7', port: 1000 + i }, hello);
    for (let t = server.pollTransmit(0); t; t = server.pollTransmit(0)) outBytes += t.data.length;
  }
  assert.equal(server.sessionCount, 0, 'no state for unvalidated addresses');
  assert.ok(outBytes / inBytes <= 1, `amplification ${outBytes / inBytes}`);
});

test('tampering: every byte of a recorded DATA packet, flipped in turn, is rejected', () => {
  const p = pair();
  opened(p);
  p.client.send(p.now, 1, utf8Bytes('tamper with me'));
  let recorded: Uint8Array | null = null;
  p.settle((dir, d) => {
    if (dir === 'up' && recorded === null && decodePacket(d).ok && d[0]! >= 0xfc) {
      recorded = d.slice();
      return null; // hold it back so the flipped copies are the first the server sees
    }
    return d;
  });
  assert.ok(recorded);
  const rec = recorded as Uint8Array;
  const before = p.serverEvents.length;
  const unknownBefore = p.server.drops.get('unknown-session') ?? 0;
  for (let i = 0; i < rec.length; i++) {
    for (const bit of [0x01, 0x80]) {
      const bad = rec.slice();
      bad[i] = bad[i]! ^ bit;
      p.server.handleDatagram(p.now, { address: '127.0.0.1', port: 40000 }, bad);
    }
  }
  // A flipped cid bit names no session: in the slot half it names another slot, in the check half it fails the check.
  assert.equal((p.server.drops.get('unknown-session') ?? 0) - unknownBefore, 16);
  p.settle();
  assert.equal(p.serverEvents.slice(before).filter((e) => e.type === 'message').length, 0, 'no flipped packet delivered');
  // The untouched packet is still accepted afterwards: nothing a forger sent changed the session.
  p.server.handleDatagram(p.now, { address: '127.0.0.1', port: 40000 }, rec);
  p.settle();
  assert.ok(p.serverEvents.slice(before).some((e) => e.type === 'message' && utf8Text(e.data) === 'tamper with me'));
});

test('replay: a packet delivered once is dropped when it comes again', () => {
  const p = pair();
  opened(p);
  p.client.send(p.now, 1, utf8Bytes('once'));
  p.settle();
  const last = p.toServer[p.toServer.length - 1]!;
  const dropsBefore = p.server.drops.get('replay') ?? 0;
  p.server.handleDatagram(p.now, { address: '127.0.0.1', port: 40000 }, last);
  assert.equal(p.server.drops.get('replay'), dropsBefore + 1);
});

test('client: DATA is opened in place; the same datagram again is a replay, and a forged one is left as it was', () => {
  const p = pair();
  const sid = opened(p);
  p.server.send(p.now, sid, 1, utf8Bytes('just once'));
  let recorded: Uint8Array | null = null;
  p.settle((dir, d) => {
    if (dir === 'down' && recorded === null && d[0]! >= 0xfc) {
      recorded = d.slice();
      return null;
    }
    return d;
  });
  assert.ok(recorded);
  const rec = recorded as Uint8Array;
  const forged = rec.slice();
  forged[forged.length - 1]! ^= 1;
  const forgedCopy = forged.slice();
  const messages = () => p.clientEvents.filter((e) => e.type === 'message' && utf8Text(e.data) === 'just once').length;
  p.client.handleDatagram(p.now, forged);
  assert.equal(p.client.drops.get('auth'), 1);
  assert.deepEqual(forged, forgedCopy, 'a refused datagram is not touched');
  const datagram = rec.slice();
  p.client.handleDatagram(p.now, datagram);
  assert.notDeepEqual(datagram, rec, 'opened where it lay');
  const plain = datagram.slice();
  datagram.fill(0); // the receive memory reused at once: the message was copied out of it
  for (let e = p.client.pollEvent(); e; e = p.client.pollEvent()) p.clientEvents.push(e);
  assert.equal(messages(), 1);
  datagram.set(plain);
  p.client.handleDatagram(p.now, datagram); // the same memory, now plaintext: refused by its packet number first
  p.client.handleDatagram(p.now, rec.slice());
  for (let e = p.client.pollEvent(); e; e = p.client.pollEvent()) p.clientEvents.push(e);
  assert.equal(messages(), 1);
  assert.equal(p.client.drops.get('replay'), 2);
});

test('pooledCopy: a copy in the buffer pool whose own slice() copies again, as a plain Uint8Array', () => {
  const src = new Uint8Array(150).map((_, i) => i);
  const a = pooledCopy(src);
  assert.deepEqual(a, src);
  assert.equal(Object.getPrototypeOf(a), Uint8Array.prototype);
  src[0] = 99;
  assert.equal(a[0], 0, 'a copy, not a view');
  const b = a.slice();
  b[1] = 77;
  assert.equal(a[1], 1, 'its slice() copies');
});

test('an expired cookie gets a fresh COOKIE, not a session', () => {
  const p = pair();
  p.settle((dir, d) => (dir === 'down' && d[0] === 0xfa ? null : d)); // drop HS_REPLY: keep the cookie'd HELLO
  const cookieHello = p.toServer[1]!;
  const server2 = new ServerEndpoint({ staticKey: p.serverKey, random, now: 0 });
  // A different server process (other secret) refuses it, as does the same one three windows later.
  server2.handleDatagram(0, { address: '127.0.0.1', port: 40000 }, cookieHello);
  const reply = server2.pollTransmit(0);
  assert.ok(reply && decodePacket(reply.data).ok);
  assert.equal(reply.data[0], 0xf9, 'COOKIE');
  const later = p.now + 3 * COOKIE_WINDOW_MS;
  p.server.handleDatagram(later, { address: '127.0.0.1', port: 40001 }, cookieHello);
  const r2 = p.server.pollTransmit(later);
  assert.equal(r2?.data[0], 0xf9);
});

test('a refused server key closes the attempt with the reason', () => {
  const p = pair({ verify: () => ({ ok: false, reason: 'key changed' }) });
  p.settle();
  const closed = p.clientEvents.find((e) => e.type === 'closed');
  assert.ok(closed && closed.type === 'closed');
  assert.equal(closed.kind, 'server-key');
  assert.equal(p.serverEvents.filter((e) => e.type === 'session-open').length, 0);
});

test('roaming: the session moves to a new address only after the path check', () => {
  const p = pair();
  const sid = opened(p);
  p.moveClient(40001);
  p.client.send(p.now, 1, utf8Bytes('from the new port'));
  p.settle();
  assert.ok(p.serverEvents.some((e) => e.type === 'message' && utf8Text(e.data) === 'from the new port'));
  assert.ok(p.serverEvents.some((e) => e.type === 'migrated' && e.sid === sid && e.to.port === 40001));
  assert.equal(p.server.addressOf(sid)?.port, 40001);
  p.server.send(p.now, sid, 1, utf8Bytes('to the new port'));
  p.settle();
  assert.ok(p.clientEvents.some((e) => e.type === 'message' && utf8Text(e.data) === 'to the new port'));
});

test('a replayed packet from a spoofed address cannot redirect a session', () => {
  const p = pair();
  const sid = opened(p);
  p.client.send(p.now, 1, utf8Bytes('x'));
  p.settle();
  const last = p.toServer[p.toServer.length - 1]!;
  p.server.handleDatagram(p.now, { address: '127.0.0.1', port: 50000 }, last);
  p.settle();
  assert.equal(p.server.addressOf(sid)?.port, 40000);
  assert.equal(p.toClient.filter((t) => t.to.port === 50000).length, 0, 'nothing sent to the spoofed address');
});

test('idle sessions time out on both sides; keepalives keep a quiet one alive', () => {
  const p = pair();
  opened(p);
  p.advance(120_000); // client keepalives every 15 s keep it open
  assert.equal(p.client.phase, 'open');
  assert.equal(p.server.sessionCount, 1);
});

test('keys rotate after a packet count; packets reordered across the switch still open', async () => {
  const { SecureChannel } = await import('../src/session/channel.js');
  const { NoiseHandshake } = await import('../src/crypto/noise.js');
  const { decodePacket: decode } = await import('../src/wire/packet.js');
  const prologue = utf8Bytes('obrol/1');
  const c = new NoiseHandshake({ initiator: true, prologue, staticKey: generateKeyPair() });
  const s = new NoiseHandshake({ initiator: false, prologue, staticKey: generateKeyPair() });
  s.readMessage(c.writeMessage(new Uint8Array(0)));
  c.readMessage(s.writeMessage(new Uint8Array(0)));
  s.readMessage(c.writeMessage(new Uint8Array(0)));
  const cid = new Uint8Array(8);
  const tx = new SecureChannel(c.split(), cid, 0, 5, 60_000);
  const rx = new SecureChannel(s.split(), cid, 0, 5, 60_000);
  const sealed = Array.from({ length: 20 }, (_, pn) => tx.seal(pn, pn, utf8Bytes(`p${pn}`)));
  const phases = sealed.map((d) => d[0]! & 1);
  assert.deepEqual(phases.slice(0, 6), [0, 0, 0, 0, 0, 1], 'the sixth packet uses the next key');
  // Deliver with neighbours swapped around every phase switch.
  const order = [0, 1, 2, 3, 5, 4, 6, 7, 8, 9, 11, 10, 12, 13, 14, 15, 17, 16, 18, 19];
  for (const pn of order) {
    const d = decode(sealed[pn]!);
    assert.ok(d.ok && d.value.type === 'data');
    if (!d.ok || d.value.type !== 'data') continue;
    const r = rx.open(pn, d.value.keyPhase, d.value.pn, d.value.header, d.value.sealed);
    assert.ok(r.ok, `packet ${pn}`);
    if (r.ok) assert.equal(utf8Text(r.payload), `p${pn}`);
  }
});

test('abuse limits: handshakes per IP per second and sessions per IP', () => {
  const server = new ServerEndpoint({ staticKey: generateKeyPair(), random, now: 0, handshakesPerIpPerSec: 2, sessionsPerIp: 3 });
  const from = (port: number) => ({ address: '127.0.0.7', port });
  const tryHandshake = (port: number, now: number): number => {
    const cid = random(8);
    server.handleDatagram(now, from(port), encodeHello(cid, new Uint8Array(0), random(32)));
    const cookie = server.pollTransmit(now)!;
    const d = decodePacket(cookie.data);
    assert.ok(d.ok && d.value.type === 'cookie');
    if (!d.ok || d.value.type !== 'cookie') return 0;
    server.handleDatagram(now, from(port), encodeHello(cid, d.value.cookie, generateKeyPair().publicKey));
    const reply = server.pollTransmit(now);
    return reply ? reply.data[0]! : 0;
  };
  assert.equal(tryHandshake(1, 0), 0xfa);
  assert.equal(tryHandshake(2, 0), 0xfa);
  assert.equal(tryHandshake(3, 0), 0, 'a third handshake in the same second is dropped');
  assert.equal(server.drops.get('handshake-rate'), 1);
  assert.equal(tryHandshake(4, 1000), 0xfa, 'the bucket refills');
  assert.equal(tryHandshake(5, 2000), 0xfe, 'a fourth pending session from one IP gets RESET busy');
});

test('a HELLO of another protocol version gets RESET "unsupported version", no larger than the HELLO; the client says so', () => {
  const p = pair();
  const hello = p.client.pollTransmit()!;
  assert.equal(hello[1], PROTOCOL_VERSION);
  const v1 = hello.slice();
  v1[1] = 1; // version 1 lacked MSG_WHOLE and MSG_NEXT
  p.server.handleDatagram(p.now, { address: '127.0.0.1', port: 40000 }, v1);
  const reply = p.server.pollTransmit(p.now)!;
  const d = decodePacket(reply.data);
  assert.ok(d.ok && d.value.type === 'reset' && d.value.code === ResetCode.BadVersion);
  assert.ok(reply.data.length <= v1.length);
  assert.equal(p.server.sessionCount, 0);
  p.client.handleDatagram(p.now, reply.data);
  const closed = [...Array(10)].map(() => p.client.pollEvent()).find((e) => e?.type === 'closed');
  assert.ok(closed && closed.type === 'closed' && closed.kind === 'version', JSON.stringify(closed));
  assert.match(closed.reason, /does not speak this protocol version/);
});

test('endpoint: with a transmit sink, datagrams go to it as they are sealed, in reused memory, and sessions work as with the queue', () => {
  let now = 1_000;
  const sent: { to: Address; data: Uint8Array; memory: ArrayBufferLike }[] = [];
  const server = new ServerEndpoint({ staticKey: generateKeyPair(), random, now });
  server.setTransmitSink((to, data) => sent.push({ to, data: data.slice(), memory: data.buffer }));
  const client = new ClientEndpoint({ staticKey: generateKeyPair(), random, now, hello: utf8Bytes('hello'), verifyServerKey: () => ({ ok: true }) });
  const from: Address = { address: '127.0.0.1', port: 40000 };
  const got: string[] = [];
  let sid = -1;
  const settle = (): void => {
    for (let round = 0; round < 50; round++) {
      let moved = false;
      for (let d = client.pollTransmit(); d !== null; d = client.pollTransmit(), moved = true) server.handleDatagram(now, from, d);
      server.flushTransmits(now);
      assert.equal(server.pollTransmit(now), null, 'nothing is queued once a sink is set');
      for (const t of sent.splice(0)) {
        assert.deepEqual(t.to, from);
        client.handleDatagram(now, t.data);
        moved = true;
      }
      for (let e = server.pollEvent(now); e; e = server.pollEvent(now)) if (e.type === 'session-open') sid = e.sid;
      for (let e = client.pollEvent(); e; e = client.pollEvent()) if (e.type === 'message') got.push(utf8Text(e.data) ?? '');
      if (!moved) return;
      now += 1;
    }
  };
  settle();
  assert.ok(sid >= 0, 'the handshake completed through the sink');
  const memories = new Set<ArrayBufferLike>();
  const offsets = new Set<number>();
  server.setTransmitSink((to, data) => {
    memories.add(data.buffer);
    offsets.add(data.byteOffset);
    sent.push({ to, data: data.slice(), memory: data.buffer });
  });
  for (let i = 0; i < 20; i++) assert.ok(server.send(now, sid, 0, utf8Bytes(`m${i}`)).ok);
  settle();
  assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => `m${i}`));
  assert.equal(memories.size, 1, 'every session datagram was sealed into the same memory');
  assert.deepEqual([...offsets], [0], 'at the same place');
});

test('endpoint: with a transmit arena, datagrams are sealed straight into it where it says; sessions, roaming probes and their copies work', () => {
  let now = 1_000;
  let bytes = new Uint8Array(64);
  let at = 0;
  let to: Address | null = null;
  let max = -1;
  const sent: { to: Address; data: Uint8Array }[] = [];
  const server = new ServerEndpoint({ staticKey: generateKeyPair(), random, now });
  server.setTransmitArena({
    reserve(dest, maxBytes) {
      assert.equal(max, -1, 'every reserve is committed before the next');
      // Each datagram somewhere new, in memory that grows: the endpoint must read `bytes` after reserving.
      at += 3;
      if (at + maxBytes > bytes.length) {
        const grown = new Uint8Array(2 * (at + maxBytes));
        grown.set(bytes);
        bytes = grown;
      }
      to = dest;
      max = maxBytes;
      return at;
    },
    get bytes() {
      return bytes;
    },
    commit(length) {
      assert.ok(length <= max && to !== null);
      sent.push({ to, data: bytes.slice(at, at + length) });
      at += length;
      max = -1;
    },
  });
  const client = new ClientEndpoint({ staticKey: generateKeyPair(), random, now, hello: utf8Bytes('hello'), verifyServerKey: () => ({ ok: true }) });
  let from: Address = { address: '127.0.0.1', port: 40000 };
  const got: string[] = [];
  const migrated: Address[] = [];
  let sid = -1;
  const settle = (): void => {
    for (let round = 0; round < 50; round++) {
      let moved = false;
      for (let d = client.pollTransmit(); d !== null; d = client.pollTransmit(), moved = true) server.handleDatagram(now, from, d);
      server.flushTransmits(now);
      assert.equal(server.pollTransmit(now), null, 'nothing is queued once an arena is set');
      for (const t of sent.splice(0)) {
        if (t.to.port === from.port) client.handleDatagram(now, t.data);
        moved = true;
      }
      for (let e = server.pollEvent(now); e; e = server.pollEvent(now)) {
        if (e.type === 'session-open') sid = e.sid;
        if (e.type === 'migrated') migrated.push(e.to);
      }
      for (let e = client.pollEvent(); e; e = client.pollEvent()) if (e.type === 'message') got.push(utf8Text(e.data) ?? '');
      if (!moved) return;
      now += 1;
    }
  };
  settle();
  assert.ok(sid >= 0, 'the handshake completed through the arena');
  for (let i = 0; i < 30; i++) assert.ok(server.send(now, sid, 0, utf8Bytes(`m${i}`.repeat(i * 20))).ok);
  settle();
  assert.deepEqual(got, Array.from({ length: 30 }, (_, i) => `m${i}`.repeat(i * 20)), 'short and fragmented messages, in order');
  // The client moves: the server challenges the new address and sends copies of its packets there too.
  from = { address: '127.0.0.1', port: 40001 };
  assert.ok(client.send(now, 0, utf8Bytes('from a new port')).ok);
  let copies = 0;
  for (let d = client.pollTransmit(); d !== null; d = client.pollTransmit()) server.handleDatagram(now, from, d);
  server.flushTransmits(now);
  for (const t of sent) if (t.to.port === 40001) copies++;
  assert.ok(copies >= 1, 'the path challenge went to the new address');
  settle();
  assert.deepEqual(migrated, [from], 'the session moved once the challenge was answered');
  assert.ok(server.send(now, sid, 0, utf8Bytes('after the move')).ok);
  settle();
  assert.equal(got.at(-1), 'after the move');
});

test('timers: a deadline that moves later as packets go out still fires exactly when due, never before', () => {
  const p = pair();
  const sid = opened(p);
  // From here the client hears nothing: every send waits for its probe timeout.
  let now = p.now;
  let last = -1;
  const sent: number[] = [];
  // 100 ms apart: the last goes out after the first one's probe timeout would have fired.
  for (let i = 0; i < 5; i++) {
    now += 100;
    assert.ok(p.server.send(now, sid, 0, utf8Bytes(`m${i}`)).ok);
    for (let t = p.server.pollTransmit(now); t !== null; t = p.server.pollTransmit(now)) sent.push(now);
    last = now;
  }
  assert.equal(sent.length, 5);
  const d = p.server.nextDeadline();
  assert.ok(d !== null && d > last, `the deadline ${d} follows the last send at ${last}, not the first`);
  p.server.handleTimeout(d - 1);
  assert.equal(p.server.pollTransmit(d - 1), null, 'nothing is resent before the deadline');
  assert.equal(p.server.nextDeadline(), d, 'and the deadline is unchanged');
  p.server.handleTimeout(d);
  assert.ok(p.server.pollTransmit(d) !== null, 'the probe goes out at the deadline');
});

test('channel: sealAt writes at an offset exactly what seal() returns, over every packet size', async () => {
  const { SecureChannel } = await import('../src/session/channel.js');
  const key = new Uint8Array(32).fill(4);
  const cid = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
  const a = new SecureChannel({ send: key.slice(), recv: key.slice() }, cid, 0, 7, 60_000);
  const b = new SecureChannel({ send: key.slice(), recv: key.slice() }, cid, 0, 7, 60_000);
  const frames = new Uint8Array(1300).map((_, i) => i);
  const out = new Uint8Array(2000);
  for (let pn = 0; pn < 40; pn++) {
    const len = (pn * 37) % 1200;
    const want = a.seal(pn, pn, frames.subarray(0, len));
    const size = b.sealAt(pn, pn, frames, len, out, 5 + pn);
    assert.equal(size, want.length);
    assert.deepEqual(out.subarray(5 + pn, 5 + pn + size), want, `packet ${pn}, ${len} bytes (the key rotates every 7)`);
  }
});

test('the slot of a closed session is reused by the next one; a late packet of the old session is an unknown session there', () => {
  let now = 1_000;
  const server = new ServerEndpoint({ staticKey: generateKeyPair(), random, now });
  const events: ServerEvent[] = [];
  /** Opens a client from `port`; returns it with every datagram it sent. */
  function connect(port: number) {
    const client = new ClientEndpoint({ staticKey: generateKeyPair(), random, now, hello: utf8Bytes(`c${port}`), verifyServerKey: () => ({ ok: true }) });
    const sent: Uint8Array[] = [];
    const from: Address = { address: '127.0.0.1', port };
    const pump = (): void => {
      for (let round = 0; round < 50; round++) {
        let moved = false;
        for (let d = client.pollTransmit(); d !== null; d = client.pollTransmit()) {
          sent.push(d.slice());
          server.handleDatagram(now, from, d);
          moved = true;
        }
        for (let t = server.pollTransmit(now); t !== null; t = server.pollTransmit(now)) {
          if (t.to.port === port) client.handleDatagram(now, t.data);
          moved = true;
        }
        for (let e = server.pollEvent(now); e; e = server.pollEvent(now)) {
          events.push(e);
          if (e.type === 'session-open' && e.addr.port === port) server.send(now, e.sid, 0, utf8Bytes('welcome'));
        }
        for (let e = client.pollEvent(); e; e = client.pollEvent());
        if (!moved) return;
      }
    };
    pump();
    assert.equal(client.phase, 'open');
    return { client, sent, pump };
  }
  const serverCidOf = (d: Uint8Array): string => Buffer.from(d.subarray(1, 9)).toString('hex');

  const a = connect(41000);
  a.client.send(now, 1, utf8Bytes('late'));
  const late = a.client.pollTransmit()!; // never delivered while a's session lives
  a.client.close(now, 0, 'bye');
  a.pump();
  assert.ok(events.some((e) => e.type === 'session-closed'));
  assert.equal(server.sessionCount, 0);

  now += 10;
  const b = connect(41001);
  b.client.send(now, 1, utf8Bytes('b here'));
  b.pump();
  const aCid = serverCidOf(a.sent.find((d) => d[0]! >= 0xfc)!);
  const bCid = serverCidOf(b.sent.find((d) => d[0]! >= 0xfc)!);
  assert.notEqual(aCid, bCid);
  assert.equal(aCid.slice(0, 8), bCid.slice(0, 8), 'b took the slot a left');

  const unknown = server.drops.get('unknown-session') ?? 0;
  const count = events.length;
  server.handleDatagram(now, { address: '127.0.0.1', port: 41000 }, late);
  assert.equal(server.drops.get('unknown-session'), unknown + 1);
  assert.equal(server.drops.get('auth') ?? 0, 0, 'refused by the check word, before any decryption');
  for (let e = server.pollEvent(now); e; e = server.pollEvent(now)) events.push(e);
  assert.equal(events.length, count);
  // b's session is untouched.
  b.client.send(now, 1, utf8Bytes('still here'));
  b.pump();
  assert.ok(events.slice(count).some((e) => e.type === 'message' && utf8Text(e.data) === 'still here'));
});

test('the server times out a silent session once the idle timeout has passed, within one idle sweep', () => {
  let now = 1_000;
  const server = new ServerEndpoint({ staticKey: generateKeyPair(), random, now });
  const client = new ClientEndpoint({ staticKey: generateKeyPair(), random, now, hello: utf8Bytes('hi'), verifyServerKey: () => ({ ok: true }) });
  const from: Address = { address: '127.0.0.1', port: 42000 };
  for (let round = 0; round < 50; round++) {
    let moved = false;
    for (let d = client.pollTransmit(); d !== null; d = client.pollTransmit(), moved = true) server.handleDatagram(now, from, d);
    for (let t = server.pollTransmit(now); t !== null; t = server.pollTransmit(now), moved = true) client.handleDatagram(now, t.data);
    for (let e = server.pollEvent(now); e; e = server.pollEvent(now)) if (e.type === 'session-open') server.send(now, e.sid, 0, utf8Bytes('welcome'));
    for (let e = client.pollEvent(); e; e = client.pollEvent());
    if (!moved) break;
  }
  assert.equal(client.phase, 'open');
  const lastHeard = now;
  // The client falls silent: only the server's clock runs, and what it sends is lost.
  let closed: Extract<ServerEvent, { type: 'session-closed' }> | null = null;
  let closedAt = 0;
  for (let i = 0; i < 100_000 && closed === null; i++) {
    const next = server.nextDeadline();
    assert.ok(next !== null, 'an open session always has a deadline');
    now = Math.max(now, next);
    server.handleTimeout(now);
    while (server.pollTransmit(now) !== null);
    for (let e = server.pollEvent(now); e; e = server.pollEvent(now)) if (e.type === 'session-closed') [closed, closedAt] = [e, now];
  }
  assert.ok(closed, 'the session closed');
  assert.equal(closed.code, CloseCode.IdleTimeout);
  assert.ok(closedAt >= lastHeard + IDLE_TIMEOUT_MS, `closed ${closedAt - lastHeard} ms after the last packet`);
  assert.ok(closedAt <= lastHeard + IDLE_TIMEOUT_MS + IDLE_SWEEP_MS, `closed ${closedAt - lastHeard} ms after the last packet`);
  assert.equal(server.sessionCount, 0);
});

test('channel: opens in place, leaves a refused datagram as it was, and after dispose has wiped its keys and refuses to work', async () => {
  const { SecureChannel, CHANNEL_RECORD_BYTES } = await import('../src/session/channel.js');
  const { KeyTable } = await import('../src/crypto/key-table.js');
  const table = new KeyTable(CHANNEL_RECORD_BYTES, 1);
  const key = new Uint8Array(32).fill(5);
  const cid = new Uint8Array(8).fill(3);
  const a = new SecureChannel({ send: key.slice(), recv: key.slice() }, cid, 0, 1000, 60_000, table);
  const b = new SecureChannel({ send: key.slice(), recv: key.slice() }, cid, 0, 1000, 60_000, table);
  assert.equal(table.records, 2);
  const d = a.seal(0, 7, utf8Bytes('in place'));
  const forged = d.slice();
  forged[20]! ^= 1;
  const before = forged.slice();
  assert.equal(b.openInPlace(0, 0, 7, forged), 'auth');
  assert.deepEqual(forged, before);
  const payload = b.openInPlace(0, 0, 7, d);
  assert.ok(payload instanceof Uint8Array);
  assert.equal(utf8Text(payload), 'in place');
  assert.equal(payload.buffer, d.buffer, 'a view of the datagram, not a copy');
  assert.equal(b.openInPlace(0, 0, 7, a.seal(0, 7, utf8Bytes('again'))), 'replay');
  a.dispose();
  a.dispose(); // twice is harmless
  assert.equal(table.records, 1);
  assert.throws(() => a.seal(0, 8, utf8Bytes('x')), /disposed/);
  assert.throws(() => a.openInPlace(0, 0, 8, d), /disposed/);
  // The record a held is zero now, and a new channel gets it with its own keys: b is unaffected.
  const c = new SecureChannel({ send: new Uint8Array(32).fill(1), recv: new Uint8Array(32).fill(1) }, cid, 0, 1000, 60_000, table);
  assert.equal(table.records, 2);
  const fromC = c.seal(0, 9, utf8Bytes('other keys'));
  assert.equal(b.openInPlace(0, 0, 9, fromC), 'auth');
  b.dispose();
  c.dispose();
  assert.equal(table.records, 0);
  assert.deepEqual(table.bytes, new Uint8Array(table.bytes.length), 'every key wiped');
});

test('server endpoint: a closed session gives its key record back', () => {
  const p = pair();
  const sid = opened(p);
  const table = (p.server as unknown as { keyTable: { records: number } }).keyTable;
  assert.equal(table.records, 1);
  p.server.close(p.now, sid, 0, 'bye');
  for (let i = 0; i < 50 && p.server.sessionCount > 0; i++) p.advance(200);
  assert.equal(p.server.sessionCount, 0);
  assert.equal(table.records, 0);
});

test('server endpoint: events come as datagrams arrive, output waits for flushTransmits, and a batch fanned out to a member leaves in one packet', () => {
  let now = 1_000;
  const sealed: { to: Address; data: Uint8Array }[] = [];
  const server = new ServerEndpoint({ staticKey: generateKeyPair(), random, now });
  server.setTransmitSink((to, data) => sealed.push({ to, data: data.slice() }));
  const mk = (port: number) => ({
    addr: { address: '127.0.0.1', port } as Address,
    ep: new ClientEndpoint({ staticKey: generateKeyPair(), random, now, hello: utf8Bytes(`hello ${port}`), verifyServerKey: () => ({ ok: true }) }),
    got: [] as string[],
  });
  const a = mk(40001);
  const b = mk(40002);
  const sids = new Map<number, number>(); // port -> sid
  const settle = (): void => {
    for (let round = 0; round < 50; round++) {
      let moved = false;
      for (const c of [a, b]) for (let d = c.ep.pollTransmit(); d !== null; d = c.ep.pollTransmit(), moved = true) server.handleDatagram(now, c.addr, d.slice());
      for (let e = server.pollEvent(now); e; e = server.pollEvent(now)) {
        if (e.type === 'session-open') {
          sids.set(e.addr.port, e.sid);
          server.send(now, e.sid, 0, utf8Bytes('welcome'));
        }
      }
      server.flushTransmits(now);
      for (const t of sealed.splice(0)) {
        (t.to.port === a.addr.port ? a : b).ep.handleDatagram(now, t.data);
        moved = true;
      }
      for (const c of [a, b]) for (let e = c.ep.pollEvent(); e; e = c.ep.pollEvent()) if (e.type === 'message') c.got.push(utf8Text(e.data) ?? '');
      if (!moved) return;
      now += 1;
    }
  };
  settle();
  const sidB = sids.get(b.addr.port)!;
  assert.ok(a.ep.phase === 'open' && b.ep.phase === 'open' && sidB !== undefined);
  // Five messages from a, each its own datagram, read as one batch: the server hears each at once,
  // relays it to b, and seals nothing until the batch ends.
  const datagrams: Uint8Array[] = [];
  for (let i = 0; i < 5; i++) {
    a.ep.send(now, 1, utf8Bytes(`line ${i}`));
    for (let d = a.ep.pollTransmit(); d !== null; d = a.ep.pollTransmit()) datagrams.push(d);
  }
  assert.equal(datagrams.length, 5);
  const heard: string[] = [];
  for (const d of datagrams) {
    server.handleDatagram(now, a.addr, d.slice());
    for (let e = server.pollEvent(now); e; e = server.pollEvent(now)) {
      if (e.type !== 'message') continue;
      heard.push(utf8Text(e.data) ?? '');
      assert.ok(server.send(now, sidB, 1, e.data).ok);
    }
    assert.equal(sealed.length, 0, 'nothing is sealed before flushTransmits');
  }
  assert.deepEqual(heard, ['line 0', 'line 1', 'line 2', 'line 3', 'line 4'], 'each message as its datagram arrived');
  server.flushTransmits(now);
  const toB = sealed.filter((t) => t.to.port === b.addr.port);
  assert.equal(toB.length, 1, "b's share of the batch is one packet");
  b.got.length = 0;
  settle();
  assert.deepEqual(b.got, ['line 0', 'line 1', 'line 2', 'line 3', 'line 4'], 'in order, each once');
  // A peer that closes gets its final ACK, and the server its session-closed, without a flush.
  a.ep.close(now, CloseCode.Normal, 'bye');
  let closeDatagram: Uint8Array | null = null;
  for (let d = a.ep.pollTransmit(); d !== null; d = a.ep.pollTransmit()) closeDatagram = d;
  assert.ok(closeDatagram);
  server.handleDatagram(now, a.addr, closeDatagram.slice());
  const ev = server.pollEvent(now);
  assert.ok(ev && ev.type === 'session-closed' && ev.byPeer, 'closed by the peer');
  assert.ok(sealed.some((t) => t.to.port === a.addr.port), 'the closing peer got a final packet');
});

test('keepalives: every other one is a NAT_KEEPALIVE the server ignores, so it answers half as many, and both sides stay open', () => {
  const p = pair();
  opened(p);
  p.advance(KEEPALIVE_MS + 1000); // past the ack of the welcome and the first keepalive
  const up0 = p.toServer.length;
  const down0 = p.toClient.length;
  p.advance(10 * 60_000);
  assert.equal(p.client.phase, 'open');
  assert.equal(p.server.sessionCount, 1);
  const up = p.toServer.slice(up0);
  const down = p.toClient.slice(down0);
  const nat = up.filter((d) => d.length === 1 && d[0] === PacketType.NatKeepalive).length;
  const data = up.filter((d) => d[0] === PacketType.Data0 || d[0] === PacketType.Data1).length;
  assert.equal(nat + data, up.length, 'nothing else went up');
  // Ten quiet minutes at one keepalive per KEEPALIVE_MS, every second one a PING.
  const keepalives = (10 * 60_000) / KEEPALIVE_MS;
  assert.ok(Math.abs(nat + data - keepalives) <= 2, `${nat} NAT keepalives and ${data} PINGs in ${keepalives} intervals`);
  assert.ok(Math.abs(nat - data) <= 1, `alternating: ${nat} and ${data}`);
  assert.equal(down.length, data, 'the server answered each PING and nothing else');
  assert.equal(p.server.natKeepalives, nat);
  assert.deepEqual([...p.server.drops.entries()], [], 'nothing was dropped');
  // Alone, from anywhere, it creates nothing and gets nothing; with anything after its byte it is malformed.
  const before = p.server.natKeepalives;
  p.server.handleDatagram(p.now, { address: '192.0.2.7', port: 9 }, Uint8Array.of(PacketType.NatKeepalive));
  assert.equal(p.server.pollTransmit(p.now), null);
  assert.equal(p.server.natKeepalives, before + 1);
  p.server.handleDatagram(p.now, { address: '192.0.2.7', port: 9 }, Uint8Array.of(PacketType.NatKeepalive, 0));
  assert.equal(p.server.pollTransmit(p.now), null);
  assert.equal(p.server.drops.get('malformed'), 1);
  assert.equal(p.server.sessionCount, 1);
});

test('keepalives: a client that hears nothing from the server still gives up within the idle timeout', () => {
  const p = pair();
  opened(p);
  const t0 = p.now;
  const silent = (dir: 'up' | 'down', d: Uint8Array) => (dir === 'down' ? null : d);
  for (let i = 0; i < 1000 && p.client.phase === 'open'; i++) {
    const next = Math.min(p.client.nextDeadline() ?? Infinity, p.server.nextDeadline() ?? Infinity);
    p.advanceTo(next, silent);
  }
  assert.equal(p.client.phase, 'closed');
  const closed = p.clientEvents.find((e) => e.type === 'closed');
  assert.ok(closed && closed.type === 'closed' && closed.kind === 'timeout', JSON.stringify(closed));
  assert.ok(p.now - t0 <= IDLE_TIMEOUT_MS + 1, `after ${p.now - t0} ms`);
});
