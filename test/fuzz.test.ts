// Hostile input on a real socket: 100,000 random and mutated datagrams from many source ports while
// real clients chat. The server stays up, the clients lose nothing, state and memory stay bounded, and
// unvalidated addresses never get more bytes than they sent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { ObrolServer } from '../src/server/server.js';
import { ObrolClient } from '../src/client/client.js';
import { generateKeyPair } from '../src/crypto/noise.js';
import { encodeHello } from '../src/wire/packet.js';
import { Rng } from '../src/proxy/rng.js';
import { tempDir } from './helpers/cli.js';

test('100,000 random and mutated datagrams from 64 source ports while clients chat', { timeout: 120_000 }, async (t) => {
  const data = tempDir();
  const cfg = [tempDir(), tempDir()];
  const server = await ObrolServer.start({ host: '127.0.0.1', port: 0, dataDir: data.path, staticKey: generateKeyPair(), chatLimits: { floodBurst: 1000, floodRate: 1000 } });
  const port = server.address().port;
  const sockets: dgram.Socket[] = [];
  try {
    const alice = new ObrolClient({ name: 'alice', host: '127.0.0.1', port, configDir: cfg[0]!.path });
    const bob = new ObrolClient({ name: 'bob', host: '127.0.0.1', port, configDir: cfg[1]!.path });
    const bobSaw: string[] = [];
    bob.on((ev) => {
      if (ev.type === 'message' && ev.from === 'alice') bobSaw.push(ev.body);
    });
    await alice.connect();
    await bob.connect();

    // Real packets to mutate: what a client sends, captured by a sniffing socket in front of nobody.
    const seeds: Uint8Array[] = [encodeHello(new Uint8Array(8), new Uint8Array(0), new Uint8Array(32))];
    const tap = dgram.createSocket('udp4');
    tap.on('message', (m) => seeds.length < 64 && seeds.push(new Uint8Array(m)));
    await new Promise<void>((r) => tap.bind(0, '127.0.0.1', r));
    const spy = new ObrolClient({ name: 'spy', host: '127.0.0.1', port: tap.address().port, configDir: cfg[0]!.path, connectTimeoutMs: 500 });
    await spy.connect().catch(() => undefined);
    tap.close();

    for (let i = 0; i < 64; i++) {
      const s = dgram.createSocket('udp4');
      s.on('message', (m) => {
        received += m.length;
      });
      await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
      sockets.push(s);
    }
    let received = 0;
    let sent = 0;
    const rng = new Rng(12345);
    const heapBefore = process.memoryUsage().heapUsed;
    const chat: Promise<unknown>[] = [];
    const TOTAL = 100_000;
    const inBefore = server.counters.datagramsIn;
    for (let i = 0; i < TOTAL; i++) {
      let d: Uint8Array;
      const kind = rng.int(4);
      if (kind === 0) {
        d = new Uint8Array(rng.int(1300));
        for (let j = 0; j < d.length; j++) d[j] = rng.int(256);
      } else {
        // A real packet with a few bytes changed, truncated or extended; sometimes its first byte kept.
        const src = seeds[rng.int(seeds.length)]!;
        d = src.slice(0, kind === 1 ? rng.int(src.length + 1) : src.length);
        for (let k = 0, n = 1 + rng.int(4); k < n && d.length > 0; k++) d[rng.int(d.length)] = rng.int(256);
        if (kind === 3 && d.length > 0) d[0] = 0xf8 + rng.int(8);
      }
      sent += d.length;
      sockets[i % sockets.length]!.send(d, port, '127.0.0.1');
      if (i % 1000 === 0) chat.push(alice.say(`message ${i / 1000}`));
      // Keep the kernel's receive buffer from overflowing, so the server really reads what we send.
      if (i % 100 === 99) {
        for (let w = 0; w < 200 && server.counters.datagramsIn < inBefore + i - 300; w++) await new Promise((r) => setImmediate(r));
      }
    }
    for (let w = 0; w < 500 && server.counters.datagramsIn < inBefore + TOTAL * 0.95; w++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(server.counters.datagramsIn - inBefore >= TOTAL * 0.95, `the server read ${server.counters.datagramsIn - inBefore} of ${TOTAL}`);
    await Promise.all(chat);
    for (let i = 0; i < 200 && bobSaw.length < chat.length; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(bobSaw, Array.from({ length: chat.length }, (_, i) => `message ${i}`), 'the chat lost nothing');

    assert.equal(server.counters.internalErrors, 0, 'no exception escaped the receive path');
    assert.equal(server.sessionCount, 2, 'garbage created no sessions');
    const { received: uIn, sent: uOut } = server.unvalidatedBytes;
    assert.ok(uOut <= uIn, `unvalidated addresses got ${uOut} bytes for ${uIn}`);
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
    assert.ok(heapGrowth < 64 * 1024 * 1024, `heap grew ${heapGrowth} bytes`);
    const drops = Object.fromEntries(server.drops);
    t.diagnostic(
      `sent ${sent} bytes of garbage; fuzzers received ${received} bytes; amplification to unvalidated addresses ${(uOut / Math.max(1, uIn)).toFixed(3)}; drops ${JSON.stringify(drops)}; not-obrol ${server.counters.notObrol}`,
    );
    assert.ok(received <= sent);
    await alice.quit();
    await bob.quit();
  } finally {
    for (const s of sockets) s.close();
    await server.close();
    data.remove();
    for (const d of cfg) d.remove();
  }
});
