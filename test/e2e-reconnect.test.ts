// End to end: the server goes away and comes back; clients say so, reconnect by themselves, keep their
// names, and lose nothing typed during the outage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join, startServer, tempDir } from './helpers/cli.js';

for (const how of ['SIGTERM', 'SIGKILL'] as const) {
  test(`server stopped with ${how} and restarted: clients reconnect and nothing typed is lost`, { timeout: 90_000 }, async () => {
    const data = tempDir('obrol-data-');
    let server = await startServer([], data.path);
    const port = server.port;
    try {
      const alice = join('alice', port);
      await alice.waitFor('alice has joined the chat');
      const bob = join('bob', port);
      await alice.waitFor('bob has joined the chat');

      server.p.kill(how);
      await server.p.exited;
      alice.send('typed during the outage');
      // Both notice: a goodbye from a stopping server, or silence and then a refusal from a restarted one.
      await alice.waitFor(/reconnecting|no answer/, 20_000, 'stderr');

      server = await startServer(['--port', String(port)], data.path);
      await alice.waitFor('alice: typed during the outage', 30_000);
      await bob.waitFor(/connected to/, 30_000, 'stderr');
      bob.send('bob is back');
      await alice.waitFor('bob: bob is back', 15_000);

      alice.end();
      bob.end();
      assert.equal((await alice.exited).code, 0, alice.stderr.join('\n'));
      assert.equal((await bob.exited).code, 0, bob.stderr.join('\n'));
      // Exactly once: the message typed during the outage was posted a single time.
      assert.equal(alice.stdout.filter((l) => l === 'alice: typed during the outage').length, 1);
    } finally {
      await server.stop();
      data.remove();
    }
  });
}

test('the client keeps its session when its socket moves to a new port (roaming)', { timeout: 30_000 }, async () => {
  const { ObrolClient } = await import('../src/client/client.js');
  const server = await startServer();
  const dirs = [tempDir(), tempDir()];
  try {
    const a = new ObrolClient({ name: 'rover', host: '127.0.0.1', port: server.port, configDir: dirs[0]!.path });
    const b = new ObrolClient({ name: 'watcher', host: '127.0.0.1', port: server.port, configDir: dirs[1]!.path });
    const seen: string[] = [];
    const joins: string[] = [];
    b.on((ev) => {
      if (ev.type === 'message') seen.push(ev.body);
      if (ev.type === 'joined' || ev.type === 'left') joins.push(`${ev.type} ${ev.name}`);
    });
    await b.connect();
    await a.connect();
    for (let i = 0; i < 5; i++) await a.say(`before ${i}`);
    await a.rebind(); // a new source port, as after a NAT rebinding
    const sends = [];
    for (let i = 0; i < 5; i++) sends.push(a.say(`after ${i}`));
    await Promise.all(sends);
    const want = [...[0, 1, 2, 3, 4].map((i) => `before ${i}`), ...[0, 1, 2, 3, 4].map((i) => `after ${i}`)];
    for (let i = 0; i < 100 && seen.length < want.length; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(seen, want);
    assert.deepEqual(joins, ['joined watcher', 'joined rover'], 'no leave and no rejoin');
    await a.quit();
    await b.quit();
  } finally {
    await server.stop();
    for (const d of dirs) d.remove();
  }
});
