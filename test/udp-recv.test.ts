// The batching UDP receiver (src/net/udp-recv.ts) and the addon's recvmmsg half (native/udp_batch.c), on
// real sockets on 127.0.0.1 and ::1: every datagram arrives once, intact, with the source dgram would
// report, in fewer calls than datagrams; closing frees the port; and a server whose receive memory is
// scrubbed after every batch still carries handshakes, fragmented messages and legacy lines.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Address } from '../src/session/address.js';

const root = fileURLToPath(new URL('..', import.meta.url));
if (!existsSync(join(root, 'build', 'udp_batch.status.json')))
  spawnSync(process.execPath, [join(root, 'native', 'build.mjs')], { stdio: 'ignore', timeout: 120_000 });

const { loadUdpBatchAddon, socketFd, udpBatchAddonError } = await import('../src/net/udp-batch.js');
const { UdpBatchReceiver } = await import('../src/net/udp-recv.js');
const { ObrolServer } = await import('../src/server/server.js');
const { ObrolClient } = await import('../src/client/client.js');
const { generateKeyPair } = await import('../src/crypto/noise.js');
const { tempDir } = await import('./helpers/cli.js');

const NO_ADDON = loadUdpBatchAddon() ? false : `the addon is not loaded: ${udpBatchAddonError()}`;

type Family = 'udp4' | 'udp6';

function bind(t: TestContext, type: Family, host: string, port = 0): Promise<dgram.Socket> {
  const s = dgram.createSocket({ type, recvBufferSize: 4 << 20 });
  t.after(() => new Promise<void>((r) => { try { s.close(() => r()); } catch { r(); } }));
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.bind(port, host, () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

interface Got {
  text: string;
  from: Address;
}

async function until(cond: () => boolean, ms: number, what: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

for (const native of [true, false]) {
  for (const type of ['udp4', 'udp6'] as const) {
    const host = type === 'udp4' ? '127.0.0.1' : '::1';
    test(`${native ? 'recvmmsg' : 'dgram'} on ${type}: every datagram once, intact, with the source dgram reports`, { skip: native && NO_ADDON }, async (t) => {
      const server = await bind(t, type, host);
      const a = await bind(t, type, host);
      const b = await bind(t, type, host);
      const got: Got[] = [];
      let batches = 0;
      const rx = new UdpBatchReceiver(server, (data, from) => got.push({ text: Buffer.from(data).toString('latin1'), from }), () => batches++, { native });
      t.after(() => rx.close());
      assert.equal(rx.native, native, rx.fallbackReason ?? '');
      const port = server.address().port;
      const sent: string[] = [];
      // Sizes from empty to the largest UDP payload over IPv6: each slot holds any of them.
      const sizes = [0, 1, 100, 1199, 1200, 1500, 9000, 65_000];
      for (let i = 0; i < 400; i++) {
        const len = sizes[i % sizes.length] ?? 0;
        const body = `${i}:`.padEnd(Math.max(len, 0), String.fromCharCode(97 + (i % 26))).slice(0, len);
        sent.push(body);
        (i % 2 === 0 ? a : b).send(Buffer.from(body, 'latin1'), port, host);
      }
      await until(() => got.length >= 400, 5000, () => `${got.length} of 400`);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(got.length, 400);
      // Each sender's datagrams arrive in its order, from its own address and port.
      for (const [sock, parity] of [[a, 0], [b, 1]] as const) {
        const mine = got.filter((g) => g.from.port === sock.address().port);
        assert.deepEqual(mine.map((g) => g.text), sent.filter((_, i) => i % 2 === parity));
        for (const g of mine) assert.equal(g.from.address, sock.address().address);
      }
      if (native) {
        assert.equal(rx.stats.datagrams, 400);
        assert.equal(rx.stats.truncated, 0);
        // Sent in one turn of the loop, so they were waiting together: far fewer calls than datagrams.
        assert.ok(batches > 0 && batches < 200, `${batches} batches for 400 datagrams`);
        assert.equal(rx.stats.batches, batches);
        // One Address object per source, so maps keyed by its string see the same string.
        const fromA = got.filter((g) => g.from.port === a.address().port);
        assert.ok(fromA.every((g) => g.from === fromA[0]?.from));
      } else assert.equal(batches, 0);
    });
  }
}

test('recvmmsg: closing the receiver and the socket frees the port, and nothing is read after close()', { skip: NO_ADDON }, async (t) => {
  const first = await bind(t, 'udp4', '127.0.0.1');
  const port = first.address().port;
  const got: string[] = [];
  const rx = new UdpBatchReceiver(first, (d) => got.push(Buffer.from(d).toString()), () => {});
  assert.ok(rx.native);
  const sender = await bind(t, 'udp4', '127.0.0.1');
  sender.send('one', port, '127.0.0.1');
  await until(() => got.length === 1, 2000, () => 'the first datagram');
  rx.close();
  sender.send('two', port, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(got, ['one']);
  await new Promise<void>((r) => first.close(() => r()));
  // The addon read a dup of the fd: had it stayed open, the port would still be bound.
  const again = await bind(t, 'udp4', '127.0.0.1', port);
  assert.equal(again.address().port, port);
});

test('recvmmsg: closing only the socket stops the receiver too, so the port is free', { skip: NO_ADDON }, async (t) => {
  const first = await bind(t, 'udp4', '127.0.0.1');
  const port = first.address().port;
  const rx = new UdpBatchReceiver(first, () => {}, () => {});
  assert.ok(rx.native);
  await new Promise<void>((r) => first.close(() => r()));
  const again = await bind(t, 'udp4', '127.0.0.1', port);
  assert.equal(again.address().port, port);
});

test('recvmmsg: a socket error (ICMP port unreachable on a connected socket) is counted, and reading goes on', { skip: NO_ADDON }, async (t) => {
  const peer = await bind(t, 'udp4', '127.0.0.1');
  const port = peer.address().port;
  const client = dgram.createSocket('udp4');
  t.after(() => new Promise<void>((r) => { try { client.close(() => r()); } catch { r(); } }));
  client.on('error', () => {});
  await new Promise<void>((r) => client.connect(port, '127.0.0.1', r));
  const got: string[] = [];
  const rx = new UdpBatchReceiver(client, (d) => got.push(Buffer.from(d).toString()), () => {});
  t.after(() => rx.close());
  assert.ok(rx.native);
  // Nobody listens on the port any more: the kernel answers our datagram with port unreachable.
  await new Promise<void>((r) => peer.close(() => r()));
  client.send('anyone?');
  await until(() => rx.stats.errors > 0, 2000, () => 'the socket error');
  // libuv stops a poll on a socket error; the receiver must have started it again.
  const back = await bind(t, 'udp4', '127.0.0.1', port);
  back.send('still here', client.address().port, '127.0.0.1');
  await until(() => got.includes('still here'), 2000, () => `got ${JSON.stringify(got)}`);
});

test('recvmmsg: an exception in a handler is counted, and the rest of the batch and later ones are handled', { skip: NO_ADDON }, async (t) => {
  const server = await bind(t, 'udp4', '127.0.0.1');
  const got: string[] = [];
  const rx = new UdpBatchReceiver(
    server,
    (d) => {
      const s = Buffer.from(d).toString();
      if (s.startsWith('boom')) throw new Error('handler failed');
      got.push(s);
    },
    () => {},
  );
  t.after(() => rx.close());
  const sender = await bind(t, 'udp4', '127.0.0.1');
  const port = server.address().port;
  for (const s of ['a', 'boom1', 'b', 'boom2', 'c']) sender.send(s, port, '127.0.0.1');
  await until(() => got.length === 3, 2000, () => `got ${JSON.stringify(got)}`);
  sender.send('after', port, '127.0.0.1');
  await until(() => got.includes('after'), 2000, () => `got ${JSON.stringify(got)}`);
  assert.deepEqual(got, ['a', 'b', 'c', 'after']);
  assert.equal(rx.stats.handlerErrors, 2);
});

test('recvWatch refuses what is not a bound UDP socket, and bad arguments, with TypeError or RangeError', { skip: NO_ADDON }, async (t) => {
  const a = loadUdpBatchAddon()!;
  const data = new Uint8Array(65_536);
  const meta = new Uint32Array(a.recvMeta);
  const names = new Uint8Array(a.recvName);
  const file = openSync(fileURLToPath(import.meta.url), 'r');
  t.after(() => closeSync(file));
  assert.throws(() => a.recvWatch(file, data, meta, names, 65_536, () => {}), TypeError);
  const udp = await bind(t, 'udp4', '127.0.0.1');
  const fd = socketFd(udp);
  assert.ok(fd >= 0);
  assert.throws(() => a.recvWatch(fd, data, meta, names, 0, () => {}), RangeError);
  assert.throws(() => a.recvWatch(fd, data, meta, names, 65_536 * 2, () => {}), RangeError);
  assert.throws(() => a.recvWatch(fd, data, new Uint32Array(0), names, 65_536, () => {}), RangeError);
  assert.throws(() => a.recvWatch(fd, data, new Int32Array(a.recvMeta) as unknown as Uint32Array, names, 65_536, () => {}), TypeError);
  assert.throws(() => a.recvWatch(fd, data, meta, names, 65_536, 'no' as unknown as () => void), TypeError);
  assert.throws(() => a.recvClose({} as never), TypeError);
});

test('a server whose receive memory is overwritten after every batch still works end to end', { skip: NO_ADDON, timeout: 60_000 }, async (t) => {
  // Any handler that kept a view of a received datagram past its call would now read 0xa5 bytes.
  const data = tempDir('obrol-scrub-');
  const configs = [tempDir(), tempDir(), tempDir()];
  t.after(() => [data, ...configs].forEach((d) => d.remove()));
  const server = await ObrolServer.start({
    host: '127.0.0.1',
    port: 0,
    dataDir: data.path,
    memory: true,
    staticKey: generateKeyPair(),
    legacy: {},
    receive: { scrub: true },
    chatLimits: { floodBurst: 1000, floodRate: 1000 },
  });
  t.after(() => server.close());
  assert.equal(server.receivePath, 'recvmmsg');
  const addr = server.address();
  const clients = await Promise.all(
    ['ana', 'ben', 'cai'].map(async (name, i) => {
      const c = new ObrolClient({ host: addr.address, port: addr.port, name, configDir: configs[i]!.path, connectTimeoutMs: 5000, reconnect: false });
      await c.connect();
      return c;
    }),
  );
  t.after(() => clients.forEach((c) => c.close()));
  const legacy = await bind(t, 'udp4', '127.0.0.1');
  const lines: string[] = [];
  legacy.on('message', (m) => lines.push(m.toString()));
  legacy.send('dee', addr.port, addr.address);
  await until(() => lines.includes('dee has joined the chat'), 3000, () => JSON.stringify(lines));

  const [ana, ben, cai] = clients as [InstanceType<typeof ObrolClient>, InstanceType<typeof ObrolClient>, InstanceType<typeof ObrolClient>];
  const heard: string[] = [];
  cai.on((e) => {
    if (e.type === 'message' && e.from !== 'cai') heard.push(`${e.from}:${e.body.length}:${e.body.slice(0, 12)}`);
  });
  // Long messages travel as several fragments, reassembled from many datagrams across batches.
  const long = (c: string, n: number): string => `${c}-start-`.padEnd(n, c);
  const said: Promise<unknown>[] = [];
  for (let i = 0; i < 20; i++) said.push(ana.say(long('a', 3000 + i)), ben.say(long('b', 50 + i)));
  legacy.send('plain line from dee', addr.port, addr.address);
  await Promise.race([Promise.all(said), new Promise((_, reject) => setTimeout(() => reject(new Error('messages not confirmed within 10 s')), 10_000).unref())]);
  await until(() => heard.length >= 41, 10_000, () => `${heard.length} of 41`);
  const fromAna = heard.filter((h) => h.startsWith('ana:'));
  assert.deepEqual(fromAna, Array.from({ length: 20 }, (_, i) => `ana:${3000 + i}:${long('a', 12)}`));
  assert.deepEqual(heard.filter((h) => h.startsWith('ben:')).length, 20);
  assert.ok(heard.includes(`dee:19:plain line f`), JSON.stringify(heard.filter((h) => h.startsWith('dee'))));
  assert.equal(server.counters.internalErrors, 0);
  assert.ok(server.receiveStats.batches > 0 && server.receiveStats.batches <= server.receiveStats.datagrams);
});

test("the benchmarks' session pool, reading with recvmmsg into memory scrubbed after every batch, opens sessions and chats through a real server", { skip: NO_ADDON, timeout: 60_000 }, async (t) => {
  const { SessionPool } = await import('../src/bench/session-pool.js');
  const { decodeServerMsg, encodeClientMsg } = await import('../src/wire/message.js');
  const data = tempDir('obrol-pool-');
  t.after(() => data.remove());
  const server = await ObrolServer.start({ host: '127.0.0.1', port: 0, dataDir: data.path, memory: true, staticKey: generateKeyPair(), chatLimits: { floodBurst: 1000, floodRate: 1000 } });
  t.after(() => server.close());
  const N = 40;
  const welcomed = new Set<number>();
  const heard = new Map<number, string[]>();
  const pool = await SessionPool.open({
    host: '127.0.0.1',
    port: server.address().port,
    count: N,
    sockets: 2,
    tag: 0xc1,
    scrubReceives: true,
    hooks: {
      message: (i, bytes) => {
        const d = decodeServerMsg(bytes);
        if (!d.ok) return;
        if (d.value.type === 'welcome') welcomed.add(i);
        if (d.value.type === 'message' && d.value.room === '#lobby') heard.set(i, [...(heard.get(i) ?? []), `${d.value.from}:${d.value.body}`]);
      },
      closed: () => {},
    },
  });
  t.after(() => pool.close());
  assert.equal(pool.batchedReceives, true);
  for (let i = 0; i < N; i++) pool.start(i, encodeClientMsg({ type: 'hello', name: `p${i}`, resume: false }));
  pool.arm();
  await until(() => welcomed.size === N, 10_000, () => `${welcomed.size} of ${N} welcomed`);
  // Messages longer than a datagram arrive in fragments, reassembled across receive batches.
  const body = (i: number): string => `from p${i} `.padEnd(1500 + i, String.fromCharCode(97 + (i % 26)));
  for (let i = 0; i < 5; i++) pool.send(i, encodeClientMsg({ type: 'say', ref: 1, room: '#lobby', body: body(i), action: false }));
  pool.arm();
  const want = Array.from({ length: 5 }, (_, i) => `p${i}:${body(i)}`).sort();
  await until(() => [...Array(N).keys()].every((i) => (heard.get(i)?.length ?? 0) >= 5), 10_000, () => `${[...heard.values()].filter((h) => h.length >= 5).length} of ${N} heard all five`);
  for (let i = 0; i < N; i++) assert.deepEqual([...heard.get(i)!].sort(), want, `session ${i}`);
  assert.equal(pool.unrouted, 0);
});
