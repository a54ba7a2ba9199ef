// The SQLite store on real files: what is written survives reopening, ids are never reused, resends are
// found by (client key, ref), pages respect both limits, and retention deletes exactly what it should.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore } from '../src/store/sqlite.js';
import { tempDir } from './helpers/cli.js';

const lobby = { key: '#lobby', name: '#Lobby' };
const m = (ts: number, body: string, from = 'alice', action = false) => ({ ts, from, body, action });
const none = { identity: null, ref: null };
const BIG = { maxMessages: 1000, maxBytes: 1 << 20 };
/** Everything a room still has, oldest first. */
const all = (s: SqliteStore, key: string) => s.roomAfter(key, 0, BIG).messages;

function withStore(fn: (file: string, open: () => SqliteStore) => void): void {
  const dir = tempDir('obrol-store-');
  const file = join(dir.path, 'history.db');
  const opened: SqliteStore[] = [];
  try {
    fn(file, () => {
      const s = new SqliteStore(file);
      opened.push(s);
      return s;
    });
  } finally {
    for (const s of opened) s.close();
    dir.remove();
  }
}

test('store: messages get increasing ids per room and survive reopening, with room names and topics', () => {
  withStore((file, open) => {
    const s = open();
    assert.equal(s.room('#lobby'), undefined, 'a room is not written before its first message or topic');
    assert.deepEqual(s.ensureRoom('#lobby', '#Lobby'), { key: '#lobby', name: '#Lobby', topic: '', topicBy: '', topicTs: 0, lastId: 0 });
    assert.equal(s.room('#lobby'), undefined);
    assert.deepEqual(s.appendMessage(lobby, m(10, 'one'), none), { room: '#Lobby', id: 1, ts: 10, from: 'alice', body: 'one', action: false });
    assert.equal(s.appendMessage(lobby, m(11, 'two', 'bob', true), none).id, 2);
    assert.equal(s.appendMessage({ key: '#dev', name: '#Dev' }, m(12, 'elsewhere'), none).id, 1);
    s.setTopic(lobby, 'welcome all', 'bob', 13);
    s.close();

    const again = open();
    assert.deepEqual(again.room('#lobby'), { key: '#lobby', name: '#Lobby', topic: 'welcome all', topicBy: 'bob', topicTs: 13, lastId: 2 });
    assert.deepEqual(again.ensureRoom('#lobby', '#LOBBY').name, '#Lobby', 'the first spelling stays');
    assert.deepEqual(
      all(again, '#lobby').map((x) => [x.id, x.body, x.from, x.action]),
      [
        [1, 'one', 'alice', false],
        [2, 'two', 'bob', true],
      ],
    );
    assert.equal(again.appendMessage(lobby, m(14, 'three'), none).id, 3);
    // A real SQLite file in WAL mode that another reader sees.
    const raw = new Database(file, { readonly: true });
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal((raw.prepare('SELECT count(*) AS n FROM messages').get() as { n: number }).n, 4);
    raw.close();
  });
});

test('store: a resend is found by client key and ref, for room and private messages; a second insert is refused', () => {
  withStore((_file, open) => {
    const s = open();
    const sent = s.appendMessage(lobby, m(1, 'hi'), { identity: 'k1', ref: 7 });
    const dm = s.appendPrivate({ ...m(2, 'psst'), to: 'bob' }, { identity: 'k1', ref: 8 }, 'k2');
    assert.deepEqual(s.findSent('k1', 7), { kind: 'message', message: sent });
    assert.deepEqual(s.findSent('k1', 8), { kind: 'private', message: dm });
    assert.equal(s.findSent('k2', 7), undefined, 'refs belong to one client key');
    assert.equal(s.findSent('k1', 9), undefined);
    assert.throws(() => s.appendMessage(lobby, m(3, 'again'), { identity: 'k1', ref: 7 }), /UNIQUE/);
    // What the store remembers of a key's largest ref keeps up with what is stored after it looked.
    const later = s.appendMessage(lobby, m(3, 'later'), { identity: 'k1', ref: 9 });
    assert.deepEqual(s.findSent('k1', 9), { kind: 'message', message: later });
    const dm2 = s.appendPrivate({ ...m(3, 'psst again'), to: 'bob' }, { identity: 'k1', ref: 12 }, 'k2');
    assert.deepEqual(s.findSent('k1', 12), { kind: 'private', message: dm2 });
    assert.equal(s.findSent('k1', 10), undefined, 'below the largest, not stored');
    assert.equal(s.findSent('k1', 13), undefined);
    assert.equal(s.appendMessage(lobby, m(4, 'next'), none).id, 3, 'the failed insert used no id');
    // Messages without a key (original clients) never collide.
    s.appendMessage(lobby, m(5, 'a'), none);
    s.appendMessage(lobby, m(6, 'b'), none);
  });
});

test('store: pages stop at the message count or the byte budget, always with at least one message, and say whether there is more', () => {
  withStore((_file, open) => {
    const s = open();
    for (let i = 1; i <= 10; i++) s.appendMessage(lobby, m(i, 'x'.repeat(100)), none);
    const p1 = s.roomAfter('#lobby', 0, { maxMessages: 4, maxBytes: 1 << 20 });
    assert.deepEqual(p1.messages.map((x) => x.id), [1, 2, 3, 4]);
    assert.equal(p1.more, true);
    const p2 = s.roomAfter('#lobby', 4, { maxMessages: 100, maxBytes: 300 }); // each costs 100 + 5 + 32
    assert.deepEqual(p2.messages.map((x) => x.id), [5, 6]);
    assert.equal(p2.more, true);
    const p3 = s.roomAfter('#lobby', 6, { maxMessages: 100, maxBytes: 1 });
    assert.deepEqual(p3.messages.map((x) => x.id), [7], 'one message even over the budget');
    const last = s.roomAfter('#lobby', 7, BIG);
    assert.deepEqual(last.messages.map((x) => x.id), [8, 9, 10]);
    assert.equal(last.more, false);
    assert.deepEqual(s.roomAfter('#lobby', 10, BIG), { messages: [], more: false });
    assert.deepEqual(s.roomAfter('#nowhere', 0, BIG), { messages: [], more: false });
    assert.equal(s.firstOfLast('#lobby', 3), 8);
    assert.equal(s.firstOfLast('#lobby', 50), 1, 'fewer than asked: the oldest');
    assert.equal(s.firstOfLast('#lobby', 0), null);
    assert.equal(s.firstOfLast('#nowhere', 5), null);
  });
});

test('store: private messages are found by either party\'s key, in id order, and not by others', () => {
  withStore((_file, open) => {
    const s = open();
    s.appendPrivate({ ...m(1, 'a→b'), to: 'bob' }, { identity: 'ka', ref: 1 }, 'kb');
    s.appendPrivate({ ...m(2, 'c→a', 'carol'), to: 'alice' }, { identity: 'kc', ref: 1 }, 'ka');
    s.appendPrivate({ ...m(3, 'b→c', 'bob'), to: 'carol' }, { identity: 'kb', ref: 2 }, 'kc');
    const ofA = s.privatesAfter('ka', 0, BIG).messages;
    assert.deepEqual(ofA.map((x) => [x.id, x.body]), [
      [1, 'a→b'],
      [2, 'c→a'],
    ]);
    assert.deepEqual(s.privatesAfter('ka', 1, BIG).messages.map((x) => x.id), [2]);
    assert.deepEqual(s.privatesAfter('kb', 0, BIG).messages.map((x) => x.id), [1, 3]);
    assert.deepEqual(s.privatesAfter('kz', 0, BIG), { messages: [], more: false });
    const page = s.privatesAfter('kc', 0, { maxMessages: 1, maxBytes: 1 << 20 });
    assert.deepEqual([page.messages.map((x) => x.id), page.more], [[2], true]);
    assert.deepEqual(s.privatesAfter('kb', 3, BIG), { messages: [], more: false }, 'caught up');
    s.close();
    // Reopened: the store still knows how far private ids went, so catch-up finds what is there.
    const again = open();
    assert.deepEqual(again.privatesAfter('kb', 1, BIG).messages.map((x) => x.id), [3]);
    assert.deepEqual(again.roomAfter('#lobby', 0, BIG), { messages: [], more: false });
    assert.equal(again.appendPrivate({ ...m(4, 'a→c'), to: 'carol' }, { identity: 'ka', ref: 2 }, 'kc').id, 4);
    assert.deepEqual(again.privatesAfter('kc', 3, BIG).messages.map((x) => x.body), ['a→c']);
  });
});

test('store: retention by count keeps the newest per room, by age drops the old; ids are never reused', () => {
  withStore((_file, open) => {
    const s = open();
    const dev = { key: '#dev', name: '#dev' };
    for (let i = 1; i <= 10; i++) s.appendMessage(lobby, m(i * 1000, `l${i}`), none);
    for (let i = 1; i <= 3; i++) s.appendMessage(dev, m(i * 1000, `d${i}`), none);
    for (let i = 1; i <= 6; i++) s.appendPrivate({ ...m(i * 1000, `p${i}`), to: 'bob' }, none, null);
    assert.equal(s.prune(100_000, { maxMessages: 0, maxAgeMs: 0 }), 0, 'zero keeps everything');
    assert.equal(s.prune(100_000, { maxMessages: 4, maxAgeMs: 0 }), 6 + 0 + 2);
    assert.deepEqual(all(s, '#lobby').map((x) => x.id), [7, 8, 9, 10]);
    assert.deepEqual(all(s, '#dev').map((x) => x.id), [1, 2, 3]);
    // By age: everything stamped before now - maxAge goes (lobby 7 and 8, dev all three, privates 3 to 6).
    assert.equal(s.prune(10_000, { maxMessages: 0, maxAgeMs: 1_500 }), 2 + 3 + 4);
    assert.deepEqual(all(s, '#lobby').map((x) => x.id), [9, 10]);
    assert.deepEqual(all(s, '#dev'), []);
    assert.equal(s.appendMessage(dev, m(20_000, 'after'), none).id, 4, 'an emptied room keeps counting');
    assert.equal(s.appendPrivate({ ...m(20_000, 'p7'), to: 'bob' }, none, null).id, 7);
    s.close();
    // Reopened: the count goes on from what was appended after the last prune, and from what a prune emptied.
    const s2 = open();
    assert.equal(s2.appendMessage(dev, m(21_000, 'reopened'), none).id, 5);
    assert.equal(s2.prune(100_000, { maxMessages: 0, maxAgeMs: 1_000 }), 2 + 2 + 1);
    assert.deepEqual(all(s2, '#dev'), []);
    s2.close();
    assert.equal(open().appendMessage(dev, m(30_000, 'again'), none).id, 6, 'an emptied room keeps counting across restarts');
  });
});

test('store: a database from a newer obrol is refused with a clear message', () => {
  withStore((file, open) => {
    open().close();
    const raw = new Database(file);
    raw.pragma('user_version = 99');
    raw.close();
    assert.throws(() => open(), /newer obrol \(schema 99; this one knows 1\)/);
  });
});
