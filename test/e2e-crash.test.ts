// The crash test: kill -9 the server while clients send, restart it on the same data, and check the
// promise of durable history: every message a client saw acknowledged is in the SQLite history exactly
// once, and every client ends up with every message of the room exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join as pathJoin } from 'node:path';
import Database from 'better-sqlite3';
import { join, startServer, tempDir, type Proc } from './helpers/cli.js';

const CLIENTS = 3;
const LINES = 120;

interface Event {
  type: string;
  room?: string;
  from?: string;
  text?: string;
  id?: number;
  own?: boolean;
}

test('crash: kill -9 while clients send; every acknowledged message is in history once and every client catches up', { timeout: 120_000 }, async () => {
  const data = tempDir('obrol-crash-');
  const flood = ['--flood-burst', '200', '--flood-rate', '200'];
  let server = await startServer(flood, data.path);
  const port = server.port;
  const clients: Proc[] = [];
  const timers: NodeJS.Timeout[] = [];
  try {
    for (let c = 0; c < CLIENTS; c++) {
      const p = join(`c${c}`, port, ['--json']);
      clients.push(p);
      await p.waitFor(/"type":"welcome"/);
    }
    const events = (p: Proc): Event[] => p.stdout.map((l) => JSON.parse(l) as Event);
    const acked = (p: Proc): Event[] => events(p).filter((e) => e.type === 'message' && e.own === true);

    // Each client types a line every 15 ms, across the crash and the restart.
    const typed = clients.map(() => 0);
    const allTyped = Promise.all(
      clients.map(
        (p, c) =>
          new Promise<void>((resolve) => {
            const t = setInterval(() => {
              p.send(`c${c}-${typed[c]!}`);
              if (++typed[c]! === LINES) {
                clearInterval(t);
                resolve();
              }
            }, 15);
            timers.push(t);
          }),
      ),
    );

    // Crash in the middle of it.
    const mid = Date.now() + 20_000;
    while (acked(clients[0]!).length < LINES / 3 && Date.now() < mid) await new Promise((r) => setTimeout(r, 10));
    server.p.kill('SIGKILL');
    await server.p.exited;
    const ackedBeforeCrash = clients.map((p) => acked(p).length);
    await new Promise((r) => setTimeout(r, 300));
    server = await startServer(['--port', String(port), ...flood], data.path);

    await allTyped;
    // Every line ends up acknowledged: the clients reconnect and resend what was not confirmed.
    const done = Date.now() + 60_000;
    while (clients.some((p) => acked(p).length < LINES) && Date.now() < done) await new Promise((r) => setTimeout(r, 50));
    for (const [c, p] of clients.entries()) assert.equal(acked(p).length, LINES, `c${c} saw all its lines acknowledged\n${p.stderr.join('\n')}`);
    assert.ok(ackedBeforeCrash.every((n) => n > 0 && n < LINES), `the crash hit mid-stream: ${ackedBeforeCrash.join(', ')}`);

    // Every client catches up to the whole room: every id once.
    const db = new Database(pathJoin(data.path, 'history.db'), { readonly: true });
    const rows = db.prepare("SELECT id, sender, body FROM messages WHERE room_key = '#lobby' ORDER BY id").all() as { id: number; sender: string; body: string }[];
    db.close();
    assert.equal(rows.length, CLIENTS * LINES, 'no message stored twice, none lost');
    const byBody = new Map(rows.map((r) => [r.body, r]));
    assert.equal(byBody.size, rows.length, 'each body once');
    for (const [c, p] of clients.entries()) {
      for (const e of acked(p)) {
        const row = byBody.get(e.text!);
        assert.ok(row, `acknowledged ${e.text} is in history`);
        assert.equal(row.id, e.id, `acknowledged ${e.text} kept its id`);
        assert.equal(row.sender, `c${c}`);
      }
    }
    const wantIds = rows.map((r) => r.id);
    const until = Date.now() + 30_000;
    const idsOf = (p: Proc) => events(p).filter((e) => e.type === 'message' && e.room === '#lobby').map((e) => e.id!);
    while (clients.some((p) => idsOf(p).length < wantIds.length) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    for (const [c, p] of clients.entries()) {
      const ids = idsOf(p);
      assert.deepEqual([...ids].sort((a, b) => a - b), wantIds, `c${c} has every message exactly once`);
    }

    for (const p of clients) p.end();
    for (const p of clients) assert.equal((await p.exited).code, 0, p.stderr.join('\n'));
  } finally {
    for (const t of timers) clearInterval(t);
    for (const p of clients) p.kill('SIGKILL');
    await server.stop();
    data.remove();
  }
});
