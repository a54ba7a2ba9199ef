// `obrol bench idle` for real, small: 200 sessions from 2 generator processes (2 shared sockets each) against
// a real server with a 3 s idle timeout and 0.5 s keepalives, measured over 4 s. Every session must open and
// still be alive at the end, and every process the run started must be gone when it returns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runIdle } from '../src/bench/idle.js';

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

test('bench idle: 200 sessions open over shared sockets and stay alive past the idle timeout', { timeout: 25_000 }, async () => {
  const r = await runIdle({
    sessions: 200,
    workers: 2,
    sockets: 2,
    rate: 400,
    inflight: 50,
    seconds: 4,
    keepaliveMs: 500,
    idleTimeoutS: 3,
    rooms: { kind: 'lobby' },
    openTimeoutS: 10,
    log: () => {},
  });
  assert.equal(r.opened, 200, `opened ${r.opened}, failures ${JSON.stringify(r.failures)}`);
  assert.equal(r.failed, 0);
  assert.ok(r.windowSeconds > r.idleTimeoutS, `window ${r.windowSeconds} s`);
  assert.deepEqual(r.closedAfterOpen, {}, 'no session closed');
  assert.equal(r.alive, 200);
  assert.equal(r.heardRecently, 200, 'every session heard from the server within a PING interval');
  // Keepalives flowed: one per session per 0.5 s, every other one a PING (each answered by an ack) and
  // the rest NAT_KEEPALIVEs, which the server does not answer.
  assert.ok(r.clientPacketsPerSec > 250, `client keepalives/s ${r.clientPacketsPerSec}`);
  assert.ok(r.serverPacketsPerSec > 125, `server packets/s ${r.serverPacketsPerSec}`);
  assert.ok(r.serverPacketsPerSec < 0.7 * r.clientPacketsPerSec, `the server answers about half: ${r.serverPacketsPerSec} of ${r.clientPacketsPerSec}`);
  assert.ok(r.serverRssMiB > 10 && Number.isFinite(r.serverCpuPct) && r.serverCpuPct >= 0);
  assert.ok(r.handshakesPerSec > 0 && r.handshakeP99Ms > 0);
  for (const pid of [r.pids.server, ...r.pids.workers]) assert.ok(gone(pid), `process ${pid} stopped`);
});
