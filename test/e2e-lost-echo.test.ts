// A crash between storing a message and its echo reaching the client: the message is in history but the
// client never saw it confirmed. After the reconnect the client's catch-up replays it before its resend
// is answered, and the replay must tell the client it is its own (the crash test hits this by chance;
// here a relay in the test drops everything the server sends until the crash).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { join as pathJoin } from 'node:path';
import Database from 'better-sqlite3';
import { join, startServer, tempDir } from './helpers/cli.js';

interface Event {
  type: string;
  text?: string;
  own?: boolean;
  history?: boolean;
}

test('lost echo: a message stored before a crash, its echo dropped, is shown once as the client\'s own after the reconnect', { timeout: 60_000 }, async () => {
  const data = tempDir('obrol-lost-echo-');
  let server = await startServer([], data.path);
  const port = server.port;
  // The relay: the client talks to it, it talks to the server from one socket; server-to-client traffic
  // is dropped while `dropping`.
  const front = dgram.createSocket('udp4');
  const back = dgram.createSocket('udp4');
  let client: { address: string; port: number } | null = null;
  let dropping = false;
  let dropped = 0;
  front.on('message', (d, from) => {
    client = { address: from.address, port: from.port };
    back.send(d, port, '127.0.0.1');
  });
  back.on('message', (d) => {
    if (dropping) dropped++;
    else if (client) front.send(d, client.port, client.address);
  });
  await new Promise<void>((r) => front.bind(0, '127.0.0.1', r));
  await new Promise<void>((r) => back.bind(0, '127.0.0.1', r));
  const alice = join('alice', front.address().port, ['--json']);
  try {
    await alice.waitFor(/"type":"welcome"/);
    await alice.waitFor(/"type":"caughtup"/);
    dropping = true;
    alice.send('stored, echo lost');
    // Wait until the server has stored it (the store commits before the echo is sent).
    const stored = (): boolean => {
      const db = new Database(pathJoin(data.path, 'history.db'), { readonly: true });
      try {
        return (db.prepare("SELECT count(*) AS n FROM messages WHERE body = 'stored, echo lost'").get() as { n: number }).n === 1;
      } finally {
        db.close();
      }
    };
    const until = Date.now() + 10_000;
    while (!stored() && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    assert.ok(stored(), 'the server stored the message');
    server.p.kill('SIGKILL');
    await server.p.exited;
    assert.ok(dropped > 0, 'the echo was sent and dropped');
    const events = (): Event[] => alice.stdout.map((l) => JSON.parse(l) as Event);
    assert.deepEqual(events().filter((e) => e.text === 'stored, echo lost'), [], 'not confirmed before the crash');

    server = await startServer(['--port', String(port)], data.path);
    dropping = false;
    // The client reconnects, catches up, resends: the message shows once, as its own.
    await alice.waitFor(/"text":"stored, echo lost"/, 30_000);
    alice.send('after');
    await alice.waitFor(/"text":"after"/, 15_000);
    const shown = events().filter((e) => e.text === 'stored, echo lost');
    assert.equal(shown.length, 1, JSON.stringify(shown));
    assert.equal(shown[0]!.own, true, `shown as the client's own: ${JSON.stringify(shown[0])}`);
    alice.end();
    assert.equal((await alice.exited).code, 0, alice.stderr.join('\n'));
  } finally {
    alice.kill('SIGKILL');
    front.close();
    back.close();
    await server.stop();
    data.remove();
  }
});
