// End to end over a bad network: the real server, real CLI clients in line mode, and `obrol proxy` at
// 20% loss with duplication, reordering and delay. Every line reaches every other client exactly once,
// in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join, run, startServer } from './helpers/cli.js';

async function startProxy(to: number, seed: number): Promise<{ port: number; stop(): Promise<void> }> {
  const p = run([
    'proxy',
    '--listen', '0',
    '--to', `127.0.0.1:${to}`,
    '--loss', '0.2',
    '--dup', '0.05',
    '--reorder', '0.1',
    '--delay', '5ms',
    '--jitter', '5ms',
    '--seed', String(seed),
  ]);
  const line = await p.waitFor(/^obrol proxy: /, 10_000);
  const port = Number(/127\.0\.0\.1:(\d+) ->/.exec(line)![1]);
  return {
    port,
    async stop() {
      p.kill('SIGTERM');
      await p.exited;
    },
  };
}

test('1,000 lines through 20% loss, duplication and reordering arrive exactly once, in order', { timeout: 240_000 }, async () => {
  const LINES = 1000;
  // Flood limits raised: this test is about the network, not about pacing.
  const server = await startServer(['--flood-burst', '500', '--flood-rate', '500']);
  const proxy = await startProxy(server.port, 42);
  try {
    const receivers = [join('r1', proxy.port), join('r2', proxy.port)];
    for (const r of receivers) await r.waitFor(`${r === receivers[0] ? 'r1' : 'r2'} has joined the chat`, 30_000);
    const sender = join('sender', proxy.port);
    for (const r of receivers) await r.waitFor('sender has joined the chat', 30_000);
    const want = Array.from({ length: LINES }, (_, i) => `line ${i} ${'·'.repeat(i % 50)}`);
    for (const l of want) sender.send(l);
    sender.end();
    const exit = await sender.exited;
    assert.equal(exit.code, 0, `sender: ${sender.stderr.join('\n')}`);
    for (const r of receivers) {
      await r.waitFor(`sender: ${want[LINES - 1]}`, 60_000);
      const got = r.stdout.filter((l) => l.startsWith('sender: ')).map((l) => l.slice('sender: '.length));
      assert.equal(got.length, LINES, 'exactly once');
      assert.deepEqual(got, want, 'in order');
      r.end();
      assert.equal((await r.exited).code, 0);
    }
  } finally {
    await proxy.stop();
    await server.stop();
  }
});
