// End to end through the real CLI in line mode: every /command, as the people in the rooms see it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join, startServer } from './helpers/cli.js';

async function until(ok: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('commands: /join /me /topic /rooms /who /away /msg /nick /part /quit as everyone sees them', { timeout: 60_000 }, async () => {
  const server = await startServer();
  try {
    const alice = join('alice', server.port);
    await alice.waitFor('alice has joined the chat');
    const bob = join('bob', server.port);
    await alice.waitFor('bob has joined the chat');

    alice.send('/join #dev');
    await alice.waitFor('[#dev] alice has joined the chat');
    bob.send('/join #DEV'); // any spelling finds the room; it keeps its first one
    await alice.waitFor('[#dev] bob has joined the chat');
    await bob.waitFor('[#dev] bob has joined the chat');

    // Plain lines go to the room joined last.
    alice.send('hello dev');
    await bob.waitFor('[#dev] alice: hello dev');
    bob.send('/me waves');
    await alice.waitFor('[#dev] * bob waves');

    alice.send('/topic Rust and more');
    await bob.waitFor('[#dev] alice changed the topic of #dev to: Rust and more');
    bob.send('/topic');
    await bob.waitFor(/^\[#dev\] topic of #dev: Rust and more \(set by alice at \d\d:\d\d\)$/);

    alice.send('/rooms');
    await alice.waitFor('room #dev: 2 members, topic: Rust and more');
    await alice.waitFor('room #lobby: 2 members');
    alice.send('/who');
    await alice.waitFor('members of #dev: alice, bob');

    bob.send('/away lunch');
    await alice.waitFor('[#dev] bob is away: lunch');
    await alice.waitFor('bob is away: lunch'); // in #lobby too
    alice.send('/who #lobby');
    await alice.waitFor('members of #lobby: alice, bob (away)');

    alice.send('/msg bob psst');
    await bob.waitFor('[@alice] alice: psst');
    await alice.waitFor('[@bob] alice: psst');
    // The private message is answered with the away text (on another stream, so in its own time).
    await until(() => alice.stdout.filter((l) => l === 'bob is away: lunch').length === 2, 'the away reply to /msg');
    bob.send('/away');
    await alice.waitFor('[#dev] bob is back');

    bob.send('/nick robert');
    await bob.waitFor('you are now known as robert');
    await alice.waitFor('[#dev] bob is now known as robert');
    await alice.waitFor('bob is now known as robert');
    alice.send('/msg ROBERT hi again');
    await bob.waitFor('[@alice] alice: hi again');
    bob.send('/msg alice /me style: not a command inside /msg');
    await alice.waitFor('[@robert] robert: /me style: not a command inside /msg');

    alice.send('/part #dev see you');
    await bob.waitFor('[#dev] alice has left #dev (see you)');
    alice.send('back in the lobby'); // the current room falls back to #lobby
    await bob.waitFor('alice: back in the lobby');
    bob.send('/who #dev');
    await bob.waitFor('members of #dev: robert');

    alice.send('/quit bye all');
    await bob.waitFor('alice has left the chat (bye all)');
    assert.equal((await alice.exited).code, 0, alice.stderr.join('\n'));
    bob.end();
    assert.equal((await bob.exited).code, 0, bob.stderr.join('\n'));
    // Nothing twice.
    assert.equal(bob.stdout.filter((l) => l === '[#dev] alice: hello dev').length, 1);
  } finally {
    await server.stop();
  }
});

test('commands: unknown commands and bad arguments get clear errors; what was accepted still goes through', { timeout: 30_000 }, async () => {
  const server = await startServer();
  try {
    const bob = join('bob', server.port);
    await bob.waitFor('bob has joined the chat');
    const carol = join('carol', server.port);
    await carol.waitFor('carol has joined the chat');
    for (const line of ['/bogus', '/join', '/join lobby extra', '/msg bob', '/nick two words', '/msg nobody hi', '/part #nowhere', '/nick BOB', '/help', 'still here'])
      carol.send(line);
    await bob.waitFor('carol: still here');
    carol.end();
    const { code } = await carol.exited;
    const err = carol.stderr.join('\n');
    assert.match(err, /unknown command \/bogus; \/help lists the commands/);
    assert.match(err, /usage: \/join #room\n/);
    assert.match(err, /usage: \/join #room \(one room at a time\)/);
    assert.match(err, /usage: \/msg NAME TEXT/);
    assert.match(err, /usage: \/nick NEWNAME \(one word\)/);
    assert.match(err, /no one called nobody is online/);
    assert.match(err, /you are not in #nowhere; join it first/);
    assert.match(err, /the name "BOB" is already taken; choose another/);
    assert.match(err, /\/join #room {9}join a room/);
    assert.equal(code, 1, 'refused commands make line mode exit 1');
    bob.end();
    assert.equal((await bob.exited).code, 0);
  } finally {
    await server.stop();
  }
});
