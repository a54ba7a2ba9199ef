// The benchmark harness's parts: payload timestamps, /proc readings, and one short real run of the load
// generator against a baseline relay and obrol's legacy side (full delivery at a low rate).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dgram from 'node:dgram';
import { cpuMicros, cpuNanos, cpuTimes, parseSchedstat, decodePayload, encodePayload, PAYLOAD_MIN_BYTES, parseProcStat, parseProcStatTimes, readPayloadTimes, percentile, rssBytes, udpInodes, udpPortOwner } from '../src/bench/measure.js';
import { buildC, FIND_MAX, findMax, keptUp, parseTarget, runOne, searchMax, specs, type TargetSpec } from '../src/bench/harness.js';
import { OriginalServer } from './helpers/original.js';

test('bench: payloads carry sequence, due and send times in exactly B bytes; /proc stat parsing; percentiles', () => {
  const p = encodePayload(42, 1764000000123.456, 1764000000125.5, 100);
  assert.equal(Buffer.byteLength(p), 100);
  assert.deepEqual(decodePayload(p), { seq: 42, dueAt: 1764000000123.456, sentAt: 1764000000125.5 });
  assert.equal(decodePayload('hello'), null);
  // The head fits the smallest --bytes at a sequence number of a billion.
  assert.equal(Buffer.byteLength(encodePayload(1e9, 1764000000123.456, 1764000000123.456, PAYLOAD_MIN_BYTES)), PAYLOAD_MIN_BYTES);
  // The generator's byte reader agrees with the string one, at any offset, and refuses what is not a payload.
  const out = { dueAt: NaN, sentAt: NaN };
  assert.ok(readPayloadTimes(Buffer.from(`bz1u7: ${p}`), 7, out));
  assert.deepEqual(out, { dueAt: 1764000000123.456, sentAt: 1764000000125.5 });
  for (const bad of ['hello', 'B:1.5:2.5:', 'B12:', 'B12:34', 'B12:34.:', 'B12:.5:1.5:', 'B12:3.5', 'B12:3.5:', 'B12:3.5:4.:', 'B12:3.5:4.5', 'x12:3.5:4.5:']) {
    const o = { dueAt: -1, sentAt: -1 };
    assert.equal(readPayloadTimes(Buffer.from(bad), 0, o), false, bad);
    assert.deepEqual(o, { dueAt: -1, sentAt: -1 }, `${bad} leaves the reading alone`);
  }
  for (let i = 0; i < 200; i++) {
    const t = Math.round(Math.random() * 2e15) / 1000;
    const q = encodePayload(i, t, t + Math.round(Math.random() * 1e6) / 1000, 60);
    const d = decodePayload(q)!;
    assert.ok(readPayloadTimes(Buffer.from(q), 0, out), q);
    assert.deepEqual(out, { dueAt: d.dueAt, sentAt: d.sentAt }, q);
  }
  // A command name with spaces and parentheses must not shift the fields.
  const stat = '1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1000 10';
  assert.equal(parseProcStat(stat, 100), 3_000_000);
  assert.deepEqual(parseProcStatTimes(stat, 100), { user: 2_500_000, kernel: 500_000 });
  assert.ok(cpuMicros(process.pid) > 0);
  assert.ok(rssBytes(process.pid) > 1 << 20);
  assert.equal(parseSchedstat('187278279 33388929 675\n'), 187_278_279);
  assert.throws(() => parseSchedstat('x 1 2\n'));
  assert.ok(Number.isNaN(cpuNanos(2 ** 22 + 1)), 'no such process'); // above the kernel's pid_max

  assert.equal(percentile([1, 2, 3, 4], 50), 3);
  assert.ok(Number.isNaN(percentile([], 50)));
});

test('bench: a short real run delivers everything to every client and measures the server', { timeout: 60_000 }, async () => {
  const data = mkdtempSync(join(tmpdir(), 'obrol-bench-test-'));
  try {
    const c = buildC();
    for (const spec of specs([c ? 'c-relay' : 'node-relay', 'obrol --legacy'], c, data)) {
      const row = await runOne(spec, { clients: 12, senders: 3, rate: 60, bytes: 100, seconds: 1, workers: 2, port: 30000 + Math.floor(Math.random() * 20000) });
      assert.equal(row.deliveryRatio, 1, `${spec.name} delivered everything`);
      assert.ok(row.offeredPerSec > 30, `${spec.name} offered ${row.offeredPerSec}`);
      assert.ok(row.serverCpuUsPerDelivery >= 0 && Number.isFinite(row.p99Ms));
      // The split comes from /proc/PID/stat's 10 ms ticks: a light load may have none, and then no split.
      const split = row.serverUserUsPerDelivery + row.serverKernelUsPerDelivery;
      assert.ok(Number.isNaN(split) || Math.abs(split - row.serverCpuUsPerDelivery) < 1e-6, 'user and kernel add up to the whole');
      assert.equal(row.datagramsPerDelivery, 1, `${spec.name}: one line, one datagram`);
    }
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
});

test('bench: obrol clients as pool sessions and as ObrolClients both join and get every message', { timeout: 90_000 }, async () => {
  const data = mkdtempSync(join(tmpdir(), 'obrol-bench-test-'));
  try {
    const [spec] = specs(['obrol'], null, data);
    for (const obrolClients of ['pool', 'library'] as const) {
      const row = await runOne(spec!, { clients: 12, senders: 3, rate: 60, bytes: 100, seconds: 1, workers: 2, port: 30000 + Math.floor(Math.random() * 20000), obrolClients });
      assert.equal(row.deliveryRatio, 1, `${obrolClients}: everything delivered`);
      assert.ok(row.offeredPerSec > 30, `${obrolClients}: offered ${row.offeredPerSec}`);
      assert.ok(row.joinMs > 0 && Number.isFinite(row.p99Ms));
      // Pool sessions count their datagrams: at most one per message, beyond the server's few ack-only
      // packets to the senders; library clients do not count them.
      if (obrolClients === 'pool') assert.ok(row.datagramsPerDelivery > 0.2 && row.datagramsPerDelivery < 1.3, `datagrams per delivery ${row.datagramsPerDelivery}`);
      else assert.ok(Number.isNaN(row.datagramsPerDelivery));
    }
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
});

test('bench: a target is found by its UDP port in /proc, and must be a loopback address', async () => {
  const table = [
    '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops',
    '  812: 0100007F:1A85 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 424242 2 0000000000000000 0',
    '  813: 00000000:1A86 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 515151 2 0000000000000000 0',
  ].join('\n');
  assert.deepEqual(udpInodes(table, 6789), [424242]);
  assert.deepEqual(udpInodes(table, 6790), [515151]);
  assert.deepEqual(udpInodes(table, 6791), []);
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  try {
    assert.equal(udpPortOwner(socket.address().port), process.pid);
  } finally {
    socket.close();
  }
  assert.deepEqual(parseTarget('127.0.0.1:6789'), { host: '127.0.0.1', port: 6789 });
  assert.deepEqual(parseTarget('localhost:6789'), { host: '127.0.0.1', port: 6789 });
  assert.throws(() => parseTarget('10.0.0.1:6789'), /this machine/);
  assert.throws(() => parseTarget('127.0.0.1:70000'), /this machine/);
  assert.throws(() => parseTarget('127.0.0.1'), /this machine/);
});

test('bench: --find-max halves, doubles and bisects to the limit, within its steps', async () => {
  for (const [start, limit] of [
    [10, 137],
    [500, 137],
    [137, 137],
    [10, 10_000],
  ] as const) {
    const tried: number[] = [];
    const r = await searchMax(start, async (rate) => (tried.push(rate), rate <= limit), FIND_MAX.maxSteps);
    assert.ok(r.lo <= limit && limit < r.hi, `start ${start}, limit ${limit}: ${r.lo}..${r.hi} brackets it`);
    assert.ok(r.hi / r.lo <= FIND_MAX.resolution || r.tries === FIND_MAX.maxSteps, `start ${start}: ${r.lo}..${r.hi} after ${r.tries}`);
    assert.equal(tried.length, r.tries);
    assert.ok(r.tries <= FIND_MAX.maxSteps);
  }
  // Nothing keeps up: no maximum, and the search stops below 1 msg/s.
  const none = await searchMax(8, async () => false, FIND_MAX.maxSteps);
  assert.ok(Number.isNaN(none.lo) && none.hi === 1 && none.tries === 4);
  // Out of steps before a failure: the limit is not reached.
  const open = await searchMax(8, async () => true, 3);
  assert.ok(open.lo === 32 && Number.isNaN(open.hi));
  const w = { askedPerSec: 100, offeredPerSec: 99, deliveriesPerSec: 990, deliveryRatio: 1, p50Ms: 1, p99Ms: 5, p999Ms: 9, serverCpuUsPerDelivery: 2, serverUserUsPerDelivery: 1, serverKernelUsPerDelivery: 1, serverCpuPct: 10, serverRssMiB: 20, generatorCpuPct: 10, datagramsPerDelivery: 1, clientsLost: 0 };
  assert.ok(keptUp(w, 50));
  assert.ok(!keptUp({ ...w, p99Ms: 51 }, 50), 'latency over the bound');
  assert.ok(!keptUp({ ...w, deliveryRatio: 0.99 }, 50), 'loss');
  assert.ok(!keptUp({ ...w, offeredPerSec: 80 }, 50), 'the generator fell behind');
  assert.ok(!keptUp({ ...w, clientsLost: 3 }, 50), 'the server dropped clients');
  // Stopped (clients dropped) after the second try: no more windows.
  const tried: number[] = [];
  const stopped = await searchMax(10, async (rate) => (tried.push(rate), rate <= 10), FIND_MAX.maxSteps, () => tried.length >= 2);
  assert.deepEqual(tried, [10, 20]);
  assert.ok(stopped.lo === 10 && stopped.hi === 20 && stopped.tries === 2);
});

test('bench: a server given by address (an original server) is loaded and measured; --find-max runs on it', { timeout: 90_000 }, async () => {
  const original = await OriginalServer.start();
  try {
    const target: TargetSpec = { name: 'original', proto: 'legacy', host: '127.0.0.1', port: original.port, pid: udpPortOwner(original.port) };
    assert.equal(target.pid, process.pid);
    const o = { clients: 8, senders: 2, rate: 20, bytes: 100, seconds: 0.5, workers: 1, port: 0 };
    const row = await runOne(target, o);
    assert.equal(row.deliveryRatio, 1, 'the original delivered everything');
    assert.ok(row.offeredPerSec > 10 && Number.isFinite(row.serverCpuUsPerDelivery) && row.serverRssMiB > 1 && Number.isFinite(row.serverKiBPerClient));
    // Two windows on the same joined clients: 20 msg/s, then 40, both kept up; the limit is not reached.
    const max = await findMax({ ...target }, o, 1000, 2);
    assert.equal(max.steps.length, 2);
    assert.deepEqual(max.steps.map((s) => [s.rate, s.kept]), [
      [20, true],
      [40, true],
    ]);
    assert.equal(max.maxPerSec, 40);
    assert.equal(max.limitedBy, 'not reached');
    assert.equal(max.atMax?.deliveryRatio, 1, 'the second window counted only its own messages');
  } finally {
    await original.close();
  }
});

test('cpuMicros reads schedstat to the microsecond, and agrees with /proc/PID/stat over a busy stretch', { skip: Number.isNaN(cpuNanos(process.pid)) ? 'no schedstat here' : false }, () => {
  const stat = (): number => {
    const t = cpuTimes(process.pid);
    return t.user + t.kernel;
  };
  const s0 = stat();
  const c0 = cpuMicros(process.pid);
  // Spin until 200 ms of CPU have passed (bounded by 10 s of wall time). A running thread's schedstat is
  // brought up to date at each scheduler tick (a sleeping one's when it stops), so readings step by a
  // few ms here, not by stat's 10.
  const until = Date.now() + 10_000;
  let c = c0;
  while (c - c0 < 200_000 && Date.now() < until) c = cpuMicros(process.pid);
  const s1 = stat();
  const c1 = cpuMicros(process.pid);
  assert.ok(c1 - c0 >= 200_000, `${c1 - c0} µs of CPU in 10 s of spinning`);
  // Both count the same time: stat in 10 ms ticks, read at slightly different moments.
  assert.ok(Math.abs(s1 - s0 - (c1 - c0)) < 40_000, `stat ${s1 - s0} µs against schedstat ${c1 - c0} µs`);
});
