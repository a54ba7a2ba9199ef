// `obrol bench endpoint`, small: every session's keepalive is answered in each round, in either order, and
// no session closes (the bench throws if one does).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keepaliveBench } from '../src/bench/endpoint.js';

for (const order of ['random', 'sequential'] as const) {
  test(`bench endpoint: 300 sessions, 3 rounds of keepalives in ${order} order, one PING each per round`, () => {
    const r = keepaliveBench({ sessions: 300, rounds: 3, order });
    assert.equal(r.sessions, 300);
    assert.equal(r.keepalives, 900);
    assert.ok(Number.isFinite(r.usPerKeepalive) && r.usPerKeepalive > 0);
  });
}
