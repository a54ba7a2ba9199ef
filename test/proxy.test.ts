// The impairment proxy: its seeded decisions, duration parsing, and real datagrams through it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { Impairment, parseDuration } from '../src/proxy/impairment.js';
import { startProxy } from '../src/proxy/proxy.js';

const base = { loss: 0, dup: 0, reorder: 0, delayMs: 0, jitterMs: 0, seed: 7 };

test('impairment rates match the options, and a seed replays exactly', () => {
  const imp = new Impairment({ ...base, loss: 0.2, dup: 0.05, reorder: 0.1, delayMs: 30, jitterMs: 20 });
  const N = 100_000;
  let delivered = 0;
  for (let i = 0; i < N; i++) delivered += imp.decide(i).length;
  assert.ok(Math.abs(imp.stats.dropped / N - 0.2) < 0.01);
  assert.ok(Math.abs(imp.stats.duplicated / (N - imp.stats.dropped) - 0.05) < 0.01);
  assert.ok(Math.abs(imp.stats.reordered / (N - imp.stats.dropped) - 0.1) < 0.01);
  assert.equal(delivered, N - imp.stats.dropped + imp.stats.duplicated);
  const a = new Impairment({ ...base, loss: 0.3, jitterMs: 5 });
  const b = new Impairment({ ...base, loss: 0.3, jitterMs: 5 });
  for (let i = 0; i < 1000; i++) assert.deepEqual(a.decide(i), b.decide(i));
});

test('without reorder, jitter keeps datagrams in order', () => {
  const imp = new Impairment({ ...base, delayMs: 10, jitterMs: 50 });
  let last = -Infinity;
  for (let i = 0; i < 10_000; i++) {
    const [t] = imp.decide(i / 10);
    assert.ok(t! >= last);
    last = t!;
  }
});

test('durations and bad options', () => {
  assert.equal(parseDuration('30ms'), 30);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('250'), 250);
  assert.equal(parseDuration('fast'), null);
  assert.throws(() => new Impairment({ ...base, loss: 1.5 }), /probability/);
  assert.throws(() => new Impairment({ ...base, delayMs: -1 }), /delay/);
});

test('real datagrams through the proxy: each client gets its own replies; loss and duplication show', async () => {
  const echo = dgram.createSocket('udp4');
  echo.on('message', (m, r) => echo.send(m, r.port, r.address));
  await new Promise<void>((r) => echo.bind(0, '127.0.0.1', r));
  const target = echo.address().port;
  const run = async (opts: Partial<typeof base>, count: number) => {
    const proxy = await startProxy({ ...base, ...opts, listenHost: '127.0.0.1', listenPort: 0, toHost: '127.0.0.1', toPort: target });
    const clients = [0, 1].map(() => dgram.createSocket('udp4'));
    const got: string[][] = [[], []];
    clients.forEach((c, i) => c.on('message', (m) => got[i]!.push(m.toString())));
    await Promise.all(clients.map((c) => new Promise<void>((r) => c.bind(0, '127.0.0.1', r))));
    for (let n = 0; n < count; n++) {
      clients.forEach((c, i) => c.send(`${i}:${n}`, proxy.port, '127.0.0.1'));
      if (n % 20 === 0) await new Promise((r) => setTimeout(r, 2));
    }
    await new Promise((r) => setTimeout(r, 300));
    const stats = proxy.stats();
    for (const c of clients) c.close();
    await proxy.close();
    return { got, stats };
  };
  try {
    const clean = await run({}, 200);
    for (const i of [0, 1]) assert.deepEqual(clean.got[i], Array.from({ length: 200 }, (_, n) => `${i}:${n}`), 'in order, to the right client');
    const lossy = await run({ loss: 0.3, dup: 0.1 }, 200);
    for (const i of [0, 1]) {
      for (const m of lossy.got[i]!) assert.ok(m.startsWith(`${i}:`));
      const share = new Set(lossy.got[i]).size / 200;
      assert.ok(share > 0.35 && share < 0.65, `about 0.7 * 0.7 survive the round trip, got ${share}`);
    }
    assert.ok(lossy.stats.up.duplicated > 0 && lossy.stats.up.dropped > 0);
  } finally {
    echo.close();
  }
});
