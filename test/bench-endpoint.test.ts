// `obrol bench endpoint`, small: every session's keepalive is answered in each round, in either order, and
// no session closes (the bench throws if one does).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fanoutBench, keepaliveBench } from '../src/bench/endpoint.js';

for (const order of ['random', 'sequential'] as const) {
  test(`bench endpoint: 300 sessions, 3 rounds of keepalives in ${order} order, one PING each per round`, () => {
    const r = keepaliveBench({ sessions: 300, rounds: 3, order });
    assert.equal(r.sessions, 300);
    assert.equal(r.keepalives, 900);
    assert.ok(Number.isFinite(r.usPerKeepalive) && r.usPerKeepalive > 0);
  });
}

test('bench endpoint --fanout: 20 sessions, 200 messages, every one delivered and acked as a client would', () => {
  const r = fanoutBench({ sessions: 20, messages: 200, bytes: 100, stepMs: 2 });
  assert.equal(r.deliveries, 20 * 200);
  assert.ok(Number.isFinite(r.usPerDelivery) && r.usPerDelivery > 0);
  // Clients ack every few packets: well above none, well below one per delivery.
  assert.ok(r.ackDatagramsPerDelivery > 0.1 && r.ackDatagramsPerDelivery < 0.6, `acks per delivery ${r.ackDatagramsPerDelivery}`);
});

test('bench endpoint --fanout --evict-mib: caches written through before each message, the same deliveries and acks', () => {
  const r = fanoutBench({ sessions: 20, messages: 50, bytes: 100, stepMs: 100, evictMiB: 2 });
  assert.equal(r.deliveries, 20 * 50);
  assert.ok(Number.isFinite(r.usPerDelivery) && r.usPerDelivery > 0);
  // A message every 100 ms: each client acks on its 150 ms timer, about every other message.
  assert.ok(r.ackDatagramsPerDelivery > 0.3 && r.ackDatagramsPerDelivery < 0.8, `acks per delivery ${r.ackDatagramsPerDelivery}`);
});
