// End to end: the real server and real CLI clients as child processes on 127.0.0.1, checking the exact
// lines each client prints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join, run, startServer, tempDir } from './helpers/cli.js';

test('joins, duplicate names, messages to all, Unicode, quitting: exact lines per client', async () => {
  const server = await startServer();
  try {
    const alice = join('alice', server.port);
    await alice.waitFor('alice has joined the chat');
    const bob = join('bob', server.port);
    await bob.waitFor('bob has joined the chat');
    await alice.waitFor('bob has joined the chat');

    // A taken name, differing only in case, is refused with the reason and exit code 2.
    const carol = join('ALICE', server.port);
    const carolExit = await carol.exited;
    assert.equal(carolExit.code, 2);
    assert.match(carol.stderr.join('\n'), /name rejected: .*already taken/);
    assert.deepEqual(carol.stdout, []);

    alice.send('hi');
    await bob.waitFor('alice: hi');
    bob.send('héllo wörld 🌍 你好');
    await alice.waitFor('bob: héllo wörld 🌍 你好');
    bob.send('/me waves');
    await alice.waitFor('* bob waves');
    bob.end(); // end of input: drain, leave, exit 0
    const bobExit = await bob.exited;
    assert.equal(bobExit.code, 0, bob.stderr.join('\n'));
    await alice.waitFor('bob has left the chat');

    alice.end();
    assert.equal((await alice.exited).code, 0, alice.stderr.join('\n'));

    assert.deepEqual(alice.stdout, [
      'alice has joined the chat',
      'bob has joined the chat',
      'alice: hi',
      'bob: héllo wörld 🌍 你好',
      '* bob waves',
      'bob has left the chat',
    ]);
    assert.deepEqual(bob.stdout, [
      'bob has joined the chat',
      'alice: hi',
      'bob: héllo wörld 🌍 你好',
      '* bob waves',
    ]);
  } finally {
    await server.stop();
  }
});

test('the name is free again after its holder quits; /quit message is shown to the room', async () => {
  const server = await startServer();
  try {
    const alice = join('alice', server.port);
    await alice.waitFor('alice has joined the chat');
    const bob = join('bob', server.port);
    await alice.waitFor('bob has joined the chat');
    bob.send('/quit see you');
    assert.equal((await bob.exited).code, 0);
    await alice.waitFor('bob has left the chat (see you)');
    const bob2 = join('Bob', server.port);
    await alice.waitFor('Bob has joined the chat');
    bob2.end();
    alice.end();
    assert.equal((await bob2.exited).code, 0);
    assert.equal((await alice.exited).code, 0);
  } finally {
    await server.stop();
  }
});

test('JSON mode prints one object per event with type, room, from, text, id and ts', async () => {
  const server = await startServer();
  try {
    const bot = join('bot', server.port, ['--json']);
    await bot.waitFor(/"type":"joined"/);
    bot.send('ping');
    const line = await bot.waitFor(/"type":"message"/);
    const ev = JSON.parse(line) as Record<string, unknown>;
    assert.equal(ev.room, '#lobby');
    assert.equal(ev.from, 'bot');
    assert.equal(ev.text, 'ping');
    assert.equal(typeof ev.id, 'number');
    assert.ok(typeof ev.ts === 'number' && Math.abs((ev.ts as number) - Date.now()) < 60_000);
    bot.end();
    assert.equal((await bot.exited).code, 0);
  } finally {
    await server.stop();
  }
});

test('bad input gets clear errors and nothing already accepted is lost', async () => {
  const server = await startServer();
  try {
    for (const [name, reason] of [
      ['a b', /spaces/],
      ['x'.repeat(33), /32/],
      ['tab\there', /U\+0009/],
    ] as const) {
      const p = join(name, server.port);
      const r = await p.exited;
      assert.equal(r.code, 2, `name ${JSON.stringify(name)}`);
      assert.match(p.stderr.join('\n'), reason);
    }
    const alice = join('alice', server.port);
    await alice.waitFor('alice has joined the chat');
    alice.send('before');
    alice.send('');
    alice.send('y'.repeat(16 * 1024 + 1));
    alice.send('/nosuchcommand');
    alice.send('after');
    await alice.waitFor('alice: after');
    alice.end();
    const r = await alice.exited;
    assert.equal(r.code, 1, 'a refused message makes line mode exit 1');
    const err = alice.stderr.join('\n');
    assert.match(err, /empty line/);
    assert.match(err, /16385 bytes; the limit is 16384/);
    assert.match(err, /unknown command \/nosuchcommand/);
    assert.deepEqual(alice.stdout, ['alice has joined the chat', 'alice: before', 'alice: after']);
  } finally {
    await server.stop();
  }
});

test('an unreachable server exits 1 after a bounded wait and names the address', async () => {
  const dir = tempDir();
  try {
    // Port 9 (discard) on loopback: nothing listens there.
    const p = run(['join', 'alice@127.0.0.1:9', '--timeout', '2'], { OBROL_CONFIG_DIR: dir.path });
    p.end();
    const started = Date.now();
    const r = await p.exited;
    assert.equal(r.code, 1);
    assert.ok(Date.now() - started < 10_000);
    assert.match(p.stderr.join('\n'), /cannot reach an obrol server at 127\.0\.0\.1:9/);
  } finally {
    dir.remove();
  }
});

test('serve stops cleanly on SIGINT and SIGTERM', async () => {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    const server = await startServer();
    server.p.kill(sig);
    const r = await server.p.exited;
    assert.equal(r.code, 0, `${sig}: ${server.p.stderr.join('\n')}`);
    await server.stop();
  }
});

test('server identity: pinned on first use, a changed key is refused loudly, --fingerprint verifies first contact', async () => {
  const client = tempDir('obrol-client-');
  const first = await startServer();
  const port = first.port;
  try {
    const a = join('alice', port, [], client.path);
    await a.waitFor('alice has joined the chat');
    a.end();
    assert.equal((await a.exited).code, 0);
    const fp = /server key (SHA256:\S+),/.exec(first.p.stdout.join('\n'))![1]!;
    await first.stop();

    // Same address, new key (another data dir): refused, with ssh's kind of warning.
    const second = await startServer(['--port', String(port)]);
    try {
      const b = join('alice', port, [], client.path);
      b.end();
      assert.equal((await b.exited).code, 1);
      const err = b.stderr.join('\n');
      assert.match(err, /THE SERVER KEY HAS CHANGED/);
      assert.match(err, new RegExp(fp.replace(/[+/]/g, '\\$&')));
      // A fresh client given the wrong fingerprint is refused; given the right one, it connects.
      const fresh = tempDir('obrol-client-');
      const c = join('carol', port, ['--fingerprint', fp], fresh.path);
      c.end();
      assert.equal((await c.exited).code, 1);
      const rightFp = /server key (SHA256:\S+),/.exec(second.p.stdout.join('\n'))![1]!;
      const d = join('dave', port, ['--fingerprint', rightFp], fresh.path);
      await d.waitFor('dave has joined the chat');
      d.end();
      assert.equal((await d.exited).code, 0);
      fresh.remove();
    } finally {
      await second.stop();
    }
  } finally {
    client.remove();
  }
});

test('piping a file through line mode at the default flood limits never trips them: the client paces itself', { timeout: 60_000 }, async () => {
  const server = await startServer(); // defaults: burst 20, 10 messages per second
  try {
    const watcher = join('watcher', server.port);
    await watcher.waitFor('watcher has joined the chat');
    const bot = join('bot', server.port);
    await watcher.waitFor('bot has joined the chat');
    const lines = Array.from({ length: 60 }, (_, i) => `line ${i}`);
    for (const l of lines) bot.send(l);
    bot.end();
    const r = await bot.exited;
    assert.equal(r.code, 0, bot.stderr.join('\n'));
    assert.doesNotMatch(bot.stderr.join('\n'), /slow down/);
    await watcher.waitFor('bot: line 59', 10_000);
    assert.deepEqual(
      watcher.stdout.filter((l) => l.startsWith('bot: ')),
      lines.map((l) => `bot: ${l}`),
    );
    watcher.end();
    await watcher.exited;
  } finally {
    await server.stop();
  }
});

test('serve: an idle timeout shorter than idle clients ping is taken with a warning that says why', async () => {
  const server = await startServer(['--memory', '--idle-timeout', '20']);
  try {
    await server.p.waitFor(/warning: --idle-timeout 20 is under 35 s: obrol clients PING an idle session every 30 s/, 5_000, 'stderr');
  } finally {
    await server.stop();
  }
  const quiet = await startServer(['--memory']);
  try {
    assert.ok(!quiet.p.stderr.some((l) => l.includes('warning')), quiet.p.stderr.join('\n'));
  } finally {
    await quiet.stop();
  }
});
