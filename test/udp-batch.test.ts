// The batching UDP sender (src/net/udp-batch.ts) and its addon (native/udp_batch.c), on real sockets on
// 127.0.0.1 and ::1 only: batches arrive intact through sendmmsg and through the dgram fallback, bad
// arguments to the addon throw instead of crashing, and the addon is really loaded where it can be built.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import fc from 'fast-check';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const statusFile = join(root, 'build', 'udp_batch.status.json');
// Run on its own (not after `npm run build`), build the addon first: it is what this file tests.
if (!existsSync(statusFile)) spawnSync(process.execPath, [join(root, 'native', 'build.mjs')], { stdio: 'ignore', timeout: 120_000 });

const { UdpBatchSender, loadUdpBatchAddon, socketFd, udpBatchAddonError } = await import('../src/net/udp-batch.js');
const { AddressGroup } = await import('../src/session/address.js');
type Addon = NonNullable<ReturnType<typeof loadUdpBatchAddon>>;

const addon = loadUdpBatchAddon();
const NO_ADDON = addon ? false : `the addon is not loaded: ${udpBatchAddonError()}`;

type Family = 'udp4' | 'udp6';
const LOOPBACK: Record<Family, string> = { udp4: '127.0.0.1', udp6: '::1' };

function bind(t: TestContext, type: Family, host: string): Promise<dgram.Socket> {
  const s = dgram.createSocket({ type, recvBufferSize: 1 << 20 });
  t.after(() => new Promise<void>((r) => { try { s.close(() => r()); } catch { r(); } }));
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.bind(0, host, () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

async function ipv6Missing(t: TestContext): Promise<string | false> {
  try {
    await bind(t, 'udp6', '::1');
    return false;
  } catch (e) {
    return `no IPv6 loopback here (${(e as NodeJS.ErrnoException).code ?? String(e)})`;
  }
}

interface Receiver {
  socket: dgram.Socket;
  port: number;
  got: Buffer[];
}

async function receivers(t: TestContext, n: number, type: Family, host = LOOPBACK[type]): Promise<Receiver[]> {
  const out: Receiver[] = [];
  for (let i = 0; i < n; i++) {
    const socket = await bind(t, type, host);
    const r: Receiver = { socket, port: socket.address().port, got: [] };
    socket.on('message', (m) => r.got.push(m));
    out.push(r);
  }
  return out;
}

/** Datagram seq: 4-byte seq, then a pattern of seq; lengths 4..1203, varied. */
function datagram(seq: number): Uint8Array {
  const len = 4 + ((seq * 7919) % 1200);
  const d = new Uint8Array(len);
  new DataView(d.buffer).setUint32(0, seq);
  for (let j = 4; j < len; j++) d[j] = (seq * 31 + j) & 255;
  return d;
}

/** Pushes count datagrams round robin to the receivers (at most ~75 each, within a default receive buffer). */
function pushBatch(sender: InstanceType<typeof UdpBatchSender>, rx: Receiver[], count: number, host: (r: Receiver) => string): Map<Receiver, Set<number>> {
  const want = new Map<Receiver, Set<number>>(rx.map((r) => [r, new Set<number>()]));
  for (let seq = 0; seq < count; seq++) {
    const r = rx[seq % rx.length]!;
    const d = datagram(seq);
    sender.push(d, r.port, host(r));
    d.fill(0xee); // push copies: reusing the buffer at once must not change what is sent
    want.get(r)!.add(seq);
  }
  return want;
}

async function assertArrived(want: Map<Receiver, Set<number>>): Promise<void> {
  const deadline = Date.now() + 5000;
  const done = () => [...want].every(([r, seqs]) => r.got.length >= seqs.size);
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  for (const [r, seqs] of want) {
    assert.equal(r.got.length, seqs.size, `receiver on port ${r.port}: ${r.got.length} of ${seqs.size} datagrams`);
    const seen = new Set<number>();
    for (const m of r.got) {
      const seq = m.readUInt32BE(0);
      assert.ok(seqs.has(seq), `receiver on port ${r.port} got seq ${seq}, meant for another`);
      assert.ok(!seen.has(seq), `seq ${seq} twice`);
      seen.add(seq);
      assert.deepEqual(new Uint8Array(m), datagram(seq), `seq ${seq} arrived changed`);
    }
  }
}

const BATCH = 600;

test('the addon is built and loaded where a C compiler exists', (t) => {
  if (process.platform !== 'linux') return t.skip(`sendmmsg batching is Linux only (${process.platform})`);
  const cc = process.env.CC || 'cc';
  const probe = spawnSync(cc, ['--version'], { stdio: 'ignore', timeout: 20_000 });
  if (probe.error || probe.status !== 0) return t.skip(`no C compiler (${cc}): the dgram fallback is what runs here`);
  const status = existsSync(statusFile) ? (JSON.parse(readFileSync(statusFile, 'utf8')) as { ok?: boolean; noHeader?: boolean; reason?: string }) : null;
  if (status?.noHeader) return t.skip(`a compiler but no node_api.h: ${status.reason}`);
  assert.ok(addon, `native/build.mjs: ${status?.reason ?? 'no status'}; loading: ${udpBatchAddonError()}`);
  assert.equal(addon.addrStride, 28);
  assert.equal(addon.chunk, 256);
});

for (const forced of [false, true]) {
  const how = forced ? 'with the dgram fallback forced (OBROL_NO_SENDMMSG=1)' : 'through sendmmsg';
  const skip = forced ? false : NO_ADDON;

  test(`udp4: ${BATCH} datagrams of varied sizes to 8 receivers arrive intact, ${how}`, { skip }, async (t) => {
    const rx = await receivers(t, 8, 'udp4');
    const socket = await bind(t, 'udp4', '127.0.0.1');
    const before = process.env.OBROL_NO_SENDMMSG;
    if (forced) process.env.OBROL_NO_SENDMMSG = '1';
    const sender = new UdpBatchSender(socket);
    if (before === undefined) delete process.env.OBROL_NO_SENDMMSG;
    else process.env.OBROL_NO_SENDMMSG = before;
    assert.equal(sender.native, !forced);
    if (forced) assert.match(sender.fallbackReason ?? '', /OBROL_NO_SENDMMSG/);

    const want = pushBatch(sender, rx, BATCH, () => '127.0.0.1');
    assert.equal(sender.pending, BATCH);
    sender.flush();
    assert.equal(sender.pending, 0);
    await sender.idle();
    await assertArrived(want);
    assert.equal(sender.stats.pushed, BATCH);
    assert.equal(sender.stats.flushes, 1);
    if (forced) {
      assert.equal(sender.stats.nativeCalls, 0);
      assert.equal(sender.stats.fallbackSent, BATCH);
    } else {
      assert.equal(sender.stats.nativeCalls, 1);
      assert.equal(sender.stats.nativeSent, BATCH);
      assert.equal(sender.stats.fallbackSent, 0);
    }
    assert.equal(sender.stats.fallbackErrors, 0);

    // The arena, the meta and the address cache are reused: a second batch arrives as intact.
    for (const r of rx) r.got.length = 0;
    const again = pushBatch(sender, rx, BATCH, () => '127.0.0.1');
    sender.flush();
    await sender.idle();
    await assertArrived(again);
  });

  test(`udp6: ${BATCH} datagrams to 8 receivers on ::1 arrive intact, ${how}`, { skip }, async (t) => {
    const missing = await ipv6Missing(t);
    if (missing) return t.skip(missing);
    const rx = await receivers(t, 8, 'udp6');
    const socket = await bind(t, 'udp6', '::1');
    const sender = new UdpBatchSender(socket, { native: !forced });
    assert.equal(sender.native, !forced);
    const want = pushBatch(sender, rx, BATCH, () => '::1');
    sender.flush();
    await sender.idle();
    await assertArrived(want);
    assert.equal(forced ? sender.stats.fallbackSent : sender.stats.nativeSent, BATCH);
  });

  test(`udp6 bound to an IPv4-mapped address sends to IPv4 receivers, plain and mapped, ${how}`, { skip }, async (t) => {
    const rx = await receivers(t, 6, 'udp4');
    let socket: dgram.Socket;
    try {
      socket = await bind(t, 'udp6', '::ffff:127.0.0.1');
    } catch (e) {
      return t.skip(`cannot bind udp6 to ::ffff:127.0.0.1 here (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    const sender = new UdpBatchSender(socket, { native: !forced });
    // Half the receivers addressed as 127.0.0.1, half as ::ffff:127.0.0.1.
    const want = pushBatch(sender, rx, 300, (r) => (r.port % 2 === 0 ? '127.0.0.1' : '::ffff:127.0.0.1'));
    sender.flush();
    await sender.idle();
    await assertArrived(want);
    assert.equal(forced ? sender.stats.fallbackSent : sender.stats.nativeSent, 300);
    assert.equal(sender.stats.fallbackErrors, 0);
  });
}

for (const forced of [false, true]) {
  const how = forced ? 'through dgram' : 'through sendmmsg';
  test(`reserve and commit: datagrams written in place arrive intact, across auto-flushes and a growing arena, ${how}`, { skip: forced ? false : NO_ADDON }, async (t) => {
    const rx = await receivers(t, 4, 'udp4');
    const socket = await bind(t, 'udp4', '127.0.0.1');
    // A small batch: reserve() must flush on its own, and hand out memory that may be new.
    const sender = new UdpBatchSender(socket, { native: !forced, maxBatch: 37, maxBatchBytes: 20_000 });
    const want = new Map<Receiver, Set<number>>(rx.map((r) => [r, new Set<number>()]));
    for (let seq = 0; seq < 200; seq++) {
      const r = rx[seq % rx.length]!;
      const d = datagram(seq);
      const at = sender.reserve(r.port, '127.0.0.1', d.length + 40); // room for more than is written
      sender.bytes.set(d, at);
      sender.commit(d.length);
      want.get(r)!.add(seq);
    }
    sender.flush();
    await sender.idle();
    await assertArrived(want);
    assert.equal(sender.stats.pushed, 200);
    assert.ok(sender.stats.autoFlushes >= 5, `auto-flushes: ${sender.stats.autoFlushes}`);
    // Misuse is refused, and queues nothing.
    assert.throws(() => sender.commit(10), /without reserve/);
    sender.reserve(rx[0]!.port, '127.0.0.1', 100);
    assert.throws(() => sender.commit(101), RangeError);
    sender.reserve(rx[0]!.port, '127.0.0.1', 100);
    sender.flush();
    assert.throws(() => sender.commit(10), /without reserve/, 'a flush ends the reservation');
    assert.equal(sender.pending, 0);
    assert.throws(() => sender.reserve(0, '127.0.0.1', 10), RangeError);
  });
}

for (const forced of [false, true]) {
  test(`pushShared: one line to many arrives intact at each, across other pushes and an auto-flush, ${forced ? 'through dgram' : 'through sendmmsg'}`, { skip: forced ? false : NO_ADDON }, async (t) => {
    const rx = await receivers(t, 6, 'udp4');
    const socket = await bind(t, 'udp4', '127.0.0.1');
    const sender = new UdpBatchSender(socket, { native: !forced, maxBatch: 10 });
    const want = new Map<Receiver, Set<number>>(rx.map((r) => [r, new Set<number>()]));
    let seq = 0;
    for (let round = 0; round < 5; round++) {
      const line = datagram(seq++);
      const lineSeq = seq - 1;
      for (const r of rx) {
        sender.pushShared(line, r.port, '127.0.0.1');
        want.get(r)!.add(lineSeq);
        // Another datagram between two references to the line: the line's copy must stay as it was.
        if (r.port % 2 === 0) {
          const other = datagram(seq++);
          sender.push(other, r.port, '127.0.0.1');
          other.fill(0xee);
          want.get(r)!.add(seq - 1);
        }
      }
    }
    sender.flush();
    await sender.idle();
    // Each receiver gets the round's line once: datagram() numbers are unique, so assertArrived sees each.
    await assertArrived(want);
    assert.ok(sender.stats.autoFlushes >= 2, 'batches of 10 flushed in the middle of a room');
  });
}

test('a datagram the kernel refuses is skipped, the rest of the batch is sent', { skip: NO_ADDON }, async (t) => {
  const rx = await receivers(t, 2, 'udp4');
  const socket = await bind(t, 'udp4', '127.0.0.1');
  const sender = new UdpBatchSender(socket);
  const want = new Map<Receiver, Set<number>>(rx.map((r) => [r, new Set<number>()]));
  for (let seq = 0; seq < 40; seq++) {
    const r = rx[seq % 2]!;
    if (seq % 10 === 5) {
      sender.push(new Uint8Array(65_508), r.port, '127.0.0.1'); // over the IPv4 UDP maximum: EMSGSIZE
    } else {
      sender.push(datagram(seq), r.port, '127.0.0.1');
      want.get(r)!.add(seq);
    }
  }
  sender.flush();
  await assertArrived(want);
  assert.equal(sender.stats.nativeSent, 36);
  assert.equal(sender.stats.nativeSkipped, 4);
  assert.equal(sender.stats.lastErrno, constants.errno.EMSGSIZE);
  assert.equal(sender.stats.fallbackSent, 0, 'a skipped datagram is not retried through dgram');
});

test('what the addon leaves unsent (EAGAIN) goes through dgram, in the same flush', { skip: NO_ADDON }, async (t) => {
  const real = addon as Addon;
  let calls = 0;
  // The real addon, except that it stops after the first 150 datagrams as a full socket buffer would.
  const partial: Addon = {
    ...real,
    packAddress: (...a) => real.packAddress(...a),
    sendBatch: (fd, data, meta, count, addrs, out) => {
      calls++;
      return real.sendBatch(fd, data, meta, Math.min(count, 150), addrs, out);
    },
  };
  const rx = await receivers(t, 5, 'udp4');
  const socket = await bind(t, 'udp4', '127.0.0.1');
  const sender = new UdpBatchSender(socket, { addon: partial });
  const want = pushBatch(sender, rx, 400, () => '127.0.0.1');
  sender.flush();
  assert.equal(sender.inFlight, 250);
  await sender.idle();
  await assertArrived(want);
  assert.equal(calls, 1);
  assert.equal(sender.stats.nativeSent, 150);
  assert.equal(sender.stats.fallbackSent, 250);
});

test('destinations the addon cannot take go through dgram: a host name, an IPv6 literal on udp4', { skip: NO_ADDON }, async (t) => {
  const rx = await receivers(t, 2, 'udp4');
  const socket = await bind(t, 'udp4', '127.0.0.1');
  const sender = new UdpBatchSender(socket);
  const want = new Map<Receiver, Set<number>>(rx.map((r) => [r, new Set<number>()]));
  sender.push(datagram(1), rx[0]!.port, '127.0.0.1');
  want.get(rx[0]!)!.add(1);
  sender.push(datagram(2), rx[1]!.port, 'localhost'); // resolved by dgram (to 127.0.0.1 on udp4)
  want.get(rx[1]!)!.add(2);
  sender.push(datagram(3), rx[1]!.port, '::1'); // dgram refuses it on udp4, as socket.send would
  sender.flush();
  await sender.idle();
  await assertArrived(want);
  assert.equal(sender.stats.nativeSent, 1);
  assert.equal(sender.stats.fallbackSent, 2);
  assert.equal(sender.stats.fallbackErrors, 1);
});

test('push() checks its arguments as socket.send does, and flushes by itself when a batch is full', async (t) => {
  const rx = await receivers(t, 1, 'udp4');
  const socket = await bind(t, 'udp4', '127.0.0.1');
  for (const native of addon ? [true, false] : [false]) {
    rx[0]!.got.length = 0;
    const sender = new UdpBatchSender(socket, { native, maxBatch: 50 });
    assert.throws(() => sender.push(new Uint8Array(1), 0, '127.0.0.1'), RangeError);
    assert.throws(() => sender.push(new Uint8Array(1), 65536, '127.0.0.1'), RangeError);
    assert.throws(() => sender.push(new Uint8Array(1), 1.5, '127.0.0.1'), RangeError);
    assert.throws(() => sender.push('x' as unknown as Uint8Array, 9, '127.0.0.1'), TypeError);
    assert.throws(() => sender.push(new Uint8Array(1), 9, ''), TypeError);
    assert.equal(sender.pending, 0);
    const want = pushBatch(sender, rx, 120, () => '127.0.0.1');
    assert.equal(sender.stats.autoFlushes, 2);
    assert.equal(sender.pending, 20);
    sender.flush();
    await sender.idle();
    await assertArrived(want);

    // By bytes too: 10 datagrams of 1000 bytes with a 4000-byte bound flush after 4 and after 8.
    const bySize = new UdpBatchSender(socket, { native, maxBatchBytes: 4000 });
    for (let i = 0; i < 10; i++) bySize.push(new Uint8Array(1000), rx[0]!.port, '127.0.0.1');
    assert.equal(bySize.stats.autoFlushes, 2);
    assert.equal(bySize.pending, 2);
    bySize.flush();
    await bySize.idle();
    const deadline = Date.now() + 5000;
    while (rx[0]!.got.length < 130 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(rx[0]!.got.length, 130);
  }
  assert.throws(() => new UdpBatchSender(socket, { maxBatch: 0 }), RangeError);
  assert.throws(() => new UdpBatchSender(socket, { maxAddresses: 1.5 }), RangeError);
});

for (const forced of [false, true]) {
  test(`pushGroup: a line to every member but those skipped, across auto-flushes, leaves and joins, ${forced ? 'through dgram' : 'through sendmmsg'}`, { skip: forced ? false : NO_ADDON }, async (t) => {
    const rx = await receivers(t, 8, 'udp4');
    const socket = await bind(t, 'udp4', '127.0.0.1');
    const sender = new UdpBatchSender(socket, { native: !forced, maxBatch: 5 });
    const group = new AddressGroup();
    const key = (r: Receiver) => -1 - rx.indexOf(r);
    for (const r of rx) group.add(key(r), { address: '127.0.0.1', port: r.port });
    const want = new Map<Receiver, Set<number>>(rx.map((r) => [r, new Set<number>()]));
    let seq = 0;
    const line = (skip: Receiver[]): void => {
      const d = datagram(seq);
      const n = sender.pushGroup(d, group, skip.map(key));
      d.fill(0xee); // the caller may reuse it at once
      const to = rx.filter((r) => group.has(key(r)) && !skip.includes(r));
      assert.equal(n, to.length);
      for (const r of to) want.get(r)!.add(seq);
      seq++;
    };
    line([]);
    // A datagram of its own between two group lines: both lines and it arrive.
    sender.push(datagram(seq), rx[0]!.port, '127.0.0.1');
    want.get(rx[0]!)!.add(seq++);
    line([rx[2]!]);
    group.remove(key(rx[3]!));
    group.remove(key(rx[7]!)); // the last member: nothing moves
    line([rx[3]!, rx[5]!]); // rx[3] is no member any more: only rx[5] is skipped
    group.add(key(rx[3]!), { address: '127.0.0.1', port: rx[3]!.port });
    line([rx[0]!, rx[6]!]);
    assert.throws(() => sender.pushGroup(datagram(0), group, [key(rx[0]!), key(rx[1]!), key(rx[2]!)]), RangeError);
    sender.flush();
    await sender.idle();
    await assertArrived(want);
    assert.ok(sender.stats.autoFlushes >= 4, 'groups of 8 in batches of 5');
    if (!forced) assert.equal(sender.stats.nativeSent, [...want.values()].reduce((a, s) => a + s.size, 0));
  });
}

test('AddressGroup keeps members dense: add, move, remove in any order agree with a map (property)', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: -6, max: -1 }), fc.integer({ min: 1, max: 65535 })), { maxLength: 60 }), (ops) => {
      const g = new AddressGroup();
      const model = new Map<number, number>();
      for (const [add, k, port] of ops) {
        if (add) {
          g.dest.fill(7);
          g.add(k, { address: '127.0.0.1', port });
          model.set(k, port);
          assert.equal(g.dest[g.indexOf(k)], -1, 'a new or moved member is looked up again');
        } else assert.equal(g.remove(k), model.delete(k));
        assert.equal(g.size, model.size);
        for (let i = 0; i < g.size; i++) {
          assert.equal(g.indexOf(g.keyOf(i)), i);
          assert.equal(g.addressOf(i).port, model.get(g.keyOf(i)));
        }
        for (const mk of model.keys()) assert.ok(g.has(mk));
      }
    }),
  );
});

test('pushGroup: once the address cache starts over, a group looks its members up again, and every line arrives', { skip: NO_ADDON }, async (t) => {
  const rx = await receivers(t, 8, 'udp4');
  const socket = await bind(t, 'udp4', '127.0.0.1');
  const sender = new UdpBatchSender(socket, { maxAddresses: 3 });
  const group = new AddressGroup();
  rx.forEach((r, i) => group.add(-1 - i, { address: '127.0.0.1', port: r.port }));
  const want = new Map<Receiver, Set<number>>(rx.map((r) => [r, new Set<number>()]));
  for (let seq = 0; seq < 4; seq++) {
    sender.pushGroup(datagram(seq), group);
    for (const r of rx) want.get(r)!.add(seq);
    sender.flush(); // 8 addresses > 3: the cache starts over after each flush
  }
  await assertArrived(want);
  assert.equal(sender.stats.nativeSent, 32);
});

test('the address cache is bounded: past maxAddresses it starts over, and every datagram still arrives', { skip: NO_ADDON }, async (t) => {
  const rx = await receivers(t, 12, 'udp4');
  const socket = await bind(t, 'udp4', '127.0.0.1');
  const sender = new UdpBatchSender(socket, { maxAddresses: 5 });
  for (let round = 0; round < 3; round++) {
    for (const r of rx) r.got.length = 0;
    const want = pushBatch(sender, rx, 48, () => '127.0.0.1');
    sender.flush();
    await assertArrived(want);
  }
  assert.equal(sender.stats.nativeSent, 3 * 48);
});

test('flush() on a closed socket throws as socket.send does, and leaves nothing queued', async (t) => {
  for (const native of addon ? [false, true] : [false]) {
    const socket = await bind(t, 'udp4', '127.0.0.1');
    const sender = new UdpBatchSender(socket, { native });
    assert.equal(sender.native, native);
    sender.push(datagram(1), 9, '127.0.0.1');
    sender.push(datagram(2), 9, '127.0.0.1');
    await new Promise<void>((r) => socket.close(() => r()));
    assert.throws(() => sender.flush(), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
    assert.equal(sender.pending, 0);
    assert.equal(sender.stats.nativeCalls, 0, 'no native call on a closed socket');
    assert.equal(sender.stats.fallbackErrors, 2);
    assert.equal(sender.inFlight, 0);
  }
});

test('the addon rejects bad arguments with TypeError or RangeError and sends nothing', { skip: NO_ADDON }, async (t) => {
  const a = addon as Addon;
  const rx = await receivers(t, 1, 'udp4');
  const socket = await bind(t, 'udp4', '127.0.0.1');
  const fd = socketFd(socket);
  assert.ok(fd >= 0);
  const addrs = new Uint8Array(28 * 2); // entry 0: the receiver; entry 1: all zero (no family)
  assert.equal(a.packAddress(addrs, 0, '127.0.0.1', rx[0]!.port, false), true);
  const data = new Uint8Array(100);
  const meta = new Uint32Array([0, 10, 0, 10, 20, 0]);
  const call = (...args: unknown[]) => (a.sendBatch as (...x: unknown[]) => number)(...args);

  const type: unknown[][] = [
    [],
    [fd, data, meta, 2],
    ['3', data, meta, 2, addrs],
    [fd, [1, 2, 3], meta, 2, addrs],
    [fd, new Uint16Array(10), meta, 2, addrs],
    [fd, data, new Float64Array(6), 2, addrs],
    [fd, data, [0, 10, 0], 1, addrs],
    [fd, data, meta, '2', addrs],
    [fd, data, meta, 2, new Int8Array(56)],
    [fd, data, meta, 2, addrs, new Uint8Array(4)],
    [fd, data, meta, 2, addrs, {}],
  ];
  for (const args of type) assert.throws(() => call(...args), TypeError, `args ${JSON.stringify(args.map(String))}`);

  const range: unknown[][] = [
    [-1, data, meta, 2, addrs],
    [1.5, data, meta, 2, addrs],
    [2 ** 31, data, meta, 2, addrs],
    [NaN, data, meta, 2, addrs],
    [fd, data, meta, -1, addrs],
    [fd, data, meta, 3, addrs], // meta holds 2
    [fd, data, meta, 2 ** 32, addrs],
    [fd, data, new Uint32Array([95, 10, 0]), 1, addrs], // past the end of data
    [fd, data, new Uint32Array([0xffffffff, 2, 0]), 1, addrs], // offset + length overflows 32 bits
    [fd, data, new Uint32Array([0, 101, 0]), 1, addrs],
    [fd, data, new Uint32Array([0, 10, 2]), 1, addrs], // no such address
    [fd, data, new Uint32Array([0, 10, 1]), 1, addrs], // an address with no family
    [fd, data, new Uint32Array([0, 10, 0]), 1, addrs.subarray(0, 27)], // a truncated entry
    [fd, data, new Int32Array([0, -1, 0]), 1, addrs],
    [fd, data, new Int32Array([-5, 1, 0]), 1, addrs],
    [fd, data, meta, 2, addrs, new Uint32Array(1)],
    // One bad entry after good ones: nothing is sent at all.
    [fd, data, new Uint32Array([0, 10, 0, 0, 10, 0, 0, 10, 7]), 3, addrs],
  ];
  for (const args of range) assert.throws(() => call(...args), RangeError, `args ${JSON.stringify(args.map(String))}`);

  // An fd that is not a socket, or not a datagram socket: TypeError, nothing written to it.
  const dir = mkdtempSync(join(tmpdir(), 'obrol-udp-batch-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = openSync(join(dir, 'f'), 'w');
  try {
    assert.throws(() => call(file, data, meta, 2, addrs), TypeError);
  } finally {
    closeSync(file);
  }
  assert.equal(readFileSync(join(dir, 'f')).length, 0);
  assert.throws(() => call(2 ** 31 - 1, data, meta, 2, addrs), TypeError, 'an fd that is not open');

  // A connected TCP socket: sendmmsg would write the datagrams into its stream. TypeError, nothing written.
  const tcpGot: Buffer[] = [];
  const conns: net.Socket[] = [];
  const server = net.createServer((c) => {
    conns.push(c);
    c.on('data', (d) => tcpGot.push(d));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  // Connections first, or server.close() would wait for them.
  t.after(() => {
    client.destroy();
    for (const c of conns) c.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  await new Promise<void>((r) => client.once('connect', () => r()));
  const tcpFd = (client as unknown as { _handle: { fd: number } })._handle.fd;
  assert.ok(tcpFd >= 0);
  assert.throws(() => call(tcpFd, data, meta, 2, addrs), TypeError);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(tcpGot.length, 0);
  client.destroy();

  // packAddress.
  const pcall = (...args: unknown[]) => (a.packAddress as (...x: unknown[]) => boolean)(...args);
  assert.throws(() => pcall(), TypeError);
  assert.throws(() => pcall([], 0, '127.0.0.1', 1, false), TypeError);
  assert.throws(() => pcall(addrs, 0, 127, 1, false), TypeError);
  assert.throws(() => pcall(addrs, 0, '127.0.0.1', 1, 0), TypeError);
  assert.throws(() => pcall(addrs, 2, '127.0.0.1', 1, false), RangeError);
  assert.throws(() => pcall(addrs, -1, '127.0.0.1', 1, false), RangeError);
  assert.throws(() => pcall(addrs.subarray(0, 20), 0, '127.0.0.1', 1, false), RangeError);
  assert.throws(() => pcall(addrs, 0, '127.0.0.1', 65536, false), RangeError);
  for (const bad of ['', 'localhost', '127.0.0.1.5', '1.2.3.4%eth0', '::1%', '::1%nosuchif0', 'x'.repeat(5000), '127.0.0.1\0junk', '::g'])
    assert.equal(pcall(addrs, 1, bad, 1, true), false, `packAddress(${JSON.stringify(bad.slice(0, 20))})`);
  assert.equal(pcall(addrs, 1, '::1', 1, false), false, 'IPv6 on a udp4 socket');
  assert.equal(pcall(addrs, 1, '::ffff:127.0.0.1', 1, false), false, 'mapped on a udp4 socket, as dgram');
  assert.deepEqual(addrs.subarray(28), new Uint8Array(28), 'a refused address writes nothing');

  // Nothing reached the receiver through all of that.
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(rx[0]!.got.length, 0);
  // And the function still works.
  assert.equal(call(fd, data, meta, 2, addrs), 2);
  const deadline = Date.now() + 2000;
  while (rx[0]!.got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(rx[0]!.got.length, 2);
});

test('packAddress writes sockaddr_in / sockaddr_in6 as the kernel reads them', { skip: NO_ADDON }, () => {
  const a = addon as Addon;
  const addrs = new Uint8Array(28);
  const dv = new DataView(addrs.buffer);
  const little = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  assert.equal(a.packAddress(addrs, 0, '127.0.0.1', 0x1234, false), true);
  assert.equal(dv.getUint16(0, little), 2); // AF_INET
  assert.equal(dv.getUint16(2), 0x1234);
  assert.deepEqual([...addrs.subarray(4, 8)], [127, 0, 0, 1]);
  assert.deepEqual(addrs.subarray(8), new Uint8Array(20));

  assert.equal(a.packAddress(addrs, 0, '10.1.2.3', 53, true), true); // IPv4-mapped on udp6
  assert.equal(dv.getUint16(0, little), 10); // AF_INET6
  assert.equal(dv.getUint16(2), 53);
  assert.deepEqual([...addrs.subarray(8, 24)], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3]);

  assert.equal(a.packAddress(addrs, 0, 'fe80::1%7', 9, true), true);
  assert.deepEqual([...addrs.subarray(8, 24)], [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  assert.equal(dv.getUint32(24, little), 7); // scope id
  assert.equal(a.packAddress(addrs, 0, 'fe80::1%lo', 9, true), true);
  assert.equal(dv.getUint32(24, little), 1); // lo is interface 1 on Linux
});

test('random arguments never crash the addon: each call returns or throws TypeError/RangeError', { skip: NO_ADDON }, async (t) => {
  const a = addon as Addon;
  const rx = await receivers(t, 1, 'udp4');
  const socket = await bind(t, 'udp4', '127.0.0.1');
  const fd = socketFd(socket);
  // Only entry 0 is a real address (the receiver); entry 1 has no family. Addresses are never random.
  const addrs = new Uint8Array(56);
  a.packAddress(addrs, 0, '127.0.0.1', rx[0]!.port, false);
  let seed = 12345;
  const rnd = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
  const pick = (): number => [0, 1, 2, 3, 10, 99, 100, 101, 255, 0x7fffffff, 0x80000000, 0xffffffff][rnd(12)]!;
  let sent = 0;
  for (let i = 0; i < 3000; i++) {
    const data = new Uint8Array(rnd(200));
    const n = rnd(8);
    const meta = rnd(2) ? new Uint32Array(3 * n + rnd(2)) : new Int32Array(3 * n + rnd(2));
    for (let k = 0; k < meta.length; k++) meta[k] = k % 3 === 2 ? rnd(3) : rnd(3) === 0 ? pick() : rnd(120);
    const count = rnd(4) === 0 ? pick() : rnd(n + 2);
    try {
      const r = a.sendBatch(fd, data, meta, count, rnd(10) === 0 ? addrs.subarray(0, rnd(56)) : addrs);
      assert.ok(Number.isInteger(r) && r >= 0 && r <= count);
      sent += r;
    } catch (e) {
      assert.ok(e instanceof TypeError || e instanceof RangeError, String(e));
    }
  }
  assert.ok(sent > 0, 'some random batches were valid');
});
