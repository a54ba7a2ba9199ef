// The benchmark harness's parts: payload timestamps, /proc readings, and one short real run of the load
// generator against a baseline relay and obrol's legacy side (full delivery at a low rate).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuMicros, decodePayload, encodePayload, parseProcStat, percentile, rssBytes } from '../src/bench/measure.js';
import { buildC, runOne, specs } from '../src/bench/harness.js';

test('bench: payloads carry sequence and send time in exactly B bytes; /proc stat parsing; percentiles', () => {
  const p = encodePayload(42, 1764000000123.456, 100);
  assert.equal(Buffer.byteLength(p), 100);
  assert.deepEqual(decodePayload(p), { seq: 42, sentAt: 1764000000123.456 });
  assert.equal(decodePayload('hello'), null);
  // A command name with spaces and parentheses must not shift the fields.
  const stat = '1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1000 10';
  assert.equal(parseProcStat(stat, 100), 3_000_000);
  assert.ok(cpuMicros(process.pid) > 0);
  assert.ok(rssBytes(process.pid) > 1 << 20);
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
      assert.ok(row.serverCpuUsPerDelivery >= 0 && Number.isFinite(row.p99Ms)); // /proc counts in 10 ms ticks: a light load may read 0
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
    }
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
});
