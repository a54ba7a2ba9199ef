// History and catch-up end to end: the replay on join, a restarted client catching up on exactly what it
// missed, a restarted server keeping rooms, topics and history, and --memory keeping nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPair } from '../src/crypto/noise.js';
import { join, startServer, tempDir } from './helpers/cli.js';

const HIST = /^\[history \d\d:\d\d\] /;

test('history: a joiner gets the last N messages marked as history, in line and JSON mode', { timeout: 30_000 }, async () => {
  const server = await startServer(['--history', '3']);
  try {
    const alice = join('alice', server.port);
    await alice.waitFor('alice has joined the chat');
    for (let i = 1; i <= 5; i++) alice.send(`m${i}`);
    await alice.waitFor('alice: m5');
    const bob = join('bob', server.port);
    await bob.waitFor('bob has joined the chat');
    await bob.waitFor(/\] alice: m5$/);
    assert.deepEqual(
      bob.stdout.filter((l) => HIST.test(l)).map((l) => l.replace(HIST, '')),
      ['alice: m3', 'alice: m4', 'alice: m5'],
    );
    const carol = join('carol', server.port, ['--json']);
    await carol.waitFor(/"text":"m5"/);
    const replay = carol.stdout.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.type === 'message');
    assert.deepEqual(replay.map((e) => [e.text, e.history, e.id]), [
      ['m3', true, 3],
      ['m4', true, 4],
      ['m5', true, 5],
    ]);
    alice.send('live');
    await carol.waitFor(/"text":"live"/);
    const live = JSON.parse(carol.stdout.find((l) => l.includes('"text":"live"'))!) as Record<string, unknown>;
    assert.equal(live.history, undefined, 'live messages are not marked');
    assert.equal(live.id, 6);
    for (const p of [alice, bob, carol]) p.end();
    for (const p of [alice, bob, carol]) assert.equal((await p.exited).code, 0);
  } finally {
    await server.stop();
  }
});

test('catch-up: a client restarted with the same identity rejoins its rooms and gets exactly what it missed', { timeout: 60_000 }, async () => {
  const server = await startServer(['--history', '50']);
  try {
    const alice = join('alice', server.port);
    await alice.waitFor('alice has joined the chat');
    alice.send('/join #dev');
    await alice.waitFor('[#dev] alice has joined the chat');
    let bob = join('bob', server.port);
    const bobConfig = bob.configDir;
    await bob.waitFor('bob has joined the chat');
    bob.send('/join #dev');
    await alice.waitFor('[#dev] bob has joined the chat');
    alice.send('seen before'); // to #dev
    await bob.waitFor('[#dev] alice: seen before');
    alice.send('/part #dev');
    await bob.waitFor('[#dev] alice has left #dev');
    alice.send('lobby seen');
    await bob.waitFor('alice: lobby seen');
    bob.end();
    assert.equal((await bob.exited).code, 0);

    // While bob is away: messages in both of his rooms.
    alice.send('lobby missed 1');
    alice.send('/join #dev');
    alice.send('dev missed');
    alice.send('/part #dev');
    alice.send('lobby missed 2');
    await alice.waitFor('alice: lobby missed 2');

    bob = join('bob', server.port, [], bobConfig);
    await bob.waitFor(/\] alice: lobby missed 2$/, 20_000);
    await bob.waitFor(/\] \[#dev\] alice: dev missed$/, 20_000);
    alice.send('live again');
    await bob.waitFor('alice: live again');
    const got = bob.stdout.filter((l) => l.includes('alice: '));
    assert.deepEqual(
      got.map((l) => l.replace(HIST, '')).sort(),
      ['[#dev] alice: dev missed', 'alice: live again', 'alice: lobby missed 1', 'alice: lobby missed 2'].sort(),
      'exactly the missed messages, nothing seen before, nothing twice',
    );
    assert.ok(got.filter((l) => l.includes('missed')).every((l) => HIST.test(l)), 'replayed lines are marked');
    // Rejoining is announced once per room (the server had seen bob leave), never twice.
    assert.equal(bob.stdout.filter((l) => l === 'bob has joined the chat').length, 1);
    assert.equal(bob.stdout.filter((l) => l === '[#dev] bob has joined the chat').length, 1);
    for (const p of [alice, bob]) p.end();
    for (const p of [alice, bob]) assert.equal((await p.exited).code, 0);
  } finally {
    await server.stop();
  }
});

test('server restart: rooms, topics and history survive; --memory keeps nothing', { timeout: 60_000 }, async () => {
  const data = tempDir('obrol-data-');
  try {
    let server = await startServer([], data.path);
    const alice = join('alice', server.port);
    await alice.waitFor('alice has joined the chat');
    alice.send('/join #Ops');
    alice.send('/topic on call: alice');
    alice.send('disk 90%');
    await alice.waitFor('[#Ops] alice: disk 90%');
    alice.end();
    await alice.exited;
    await server.stop();

    server = await startServer(['--port', String(server.port)], data.path);
    const bob = join('bob', server.port);
    await bob.waitFor('bob has joined the chat');
    bob.send('/join #ops');
    await bob.waitFor(/^\[#Ops\] topic of #Ops: on call: alice \(set by alice at \d\d:\d\d\)$/);
    await bob.waitFor(/^\[history \d\d:\d\d\] \[#Ops\] alice: disk 90%$/);
    bob.send('fixed');
    await bob.waitFor('[#Ops] bob: fixed');
    bob.end();
    await bob.exited;
    await server.stop();

    const mem = await startServer(['--memory']);
    const carol = join('carol', mem.port);
    await carol.waitFor('carol has joined the chat');
    carol.send('/join #ops');
    carol.send('/topic');
    await carol.waitFor('[#ops] #ops has no topic');
    carol.end();
    assert.equal((await carol.exited).code, 0);
    await mem.stop();
  } finally {
    data.remove();
  }
});

test('catch-up after a lost connection: private and room messages sent meanwhile arrive once', { timeout: 30_000 }, async () => {
  const { ObrolClient } = await import('../src/client/client.js');
  const server = await startServer();
  const dirs = [tempDir(), tempDir()];
  try {
    const bobKey = generateKeyPair();
    const state = `${dirs[1]!.path}/bob-state.json`;
    const alice = new ObrolClient({ name: 'alice', host: '127.0.0.1', port: server.port, configDir: dirs[0]!.path });
    const seen: string[] = [];
    const bob = new ObrolClient({ name: 'bob', host: '127.0.0.1', port: server.port, configDir: dirs[1]!.path, identity: bobKey, stateFile: state });
    bob.on((ev) => {
      if (ev.type === 'private' || ev.type === 'message') seen.push(`${ev.history ? 'h ' : ''}${ev.from}: ${ev.body}`);
    });
    await alice.connect();
    await bob.connect();
    await alice.msg('bob', 'dm 1');
    await alice.say('room 1');
    const deadline = Date.now() + 5000;
    while (seen.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    bob.close(); // gone without a word: the server still holds bob's session (and name)

    await alice.msg('bob', 'dm 2'); // into the dead session, and into history
    await alice.say('room 2');
    const bob2 = new ObrolClient({ name: 'bob', host: '127.0.0.1', port: server.port, configDir: dirs[1]!.path, identity: bobKey, stateFile: state });
    const seen2: string[] = [];
    bob2.on((ev) => {
      if (ev.type === 'private' || ev.type === 'message') seen2.push(`${ev.history ? 'h ' : ''}${ev.from}: ${ev.body}`);
    });
    assert.equal(await bob2.connect(), 'bob', 'the same identity takes its name back at once');
    const until = Date.now() + 10_000;
    while (seen2.length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 300)); // anything extra would show up now
    assert.deepEqual(seen, ['alice: dm 1', 'alice: room 1']);
    assert.deepEqual(seen2.sort(), ['h alice: dm 2', 'h alice: room 2']);
    await bob2.quit();
    await alice.quit();
  } finally {
    await server.stop();
    for (const d of dirs) d.remove();
  }
});
