// The members page a newcomer gets and /who's pages: the first names by lower-cased name, picked without
// sorting the whole room (FirstByKey), exactly as a full sort would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ChatCore, FirstByKey } from '../src/chat/core.js';
import { MemoryHub } from '../src/chat/hub.js';
import { MemoryNameRegistry } from '../src/chat/registry.js';
import { SqliteStore } from '../src/store/sqlite.js';
import type { ServerMsg } from '../src/wire/message.js';
import { MEMBERS_PER_REPLY } from '../src/limits.js';

test('FirstByKey: the max smallest keys in order, as sorting everything would give', () => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.string({ maxLength: 6 }), { maxLength: 300 }), fc.nat(320), (keys, max) => {
      const f = new FirstByKey<number>(max);
      keys.forEach((k, i) => f.offer(k, i));
      const want = keys.map((k, i) => [k, i] as const).sort((a, b) => (a[0] < b[0] ? -1 : 1)).slice(0, max).map(([, i]) => i);
      assert.deepEqual(f.sorted(), want);
      assert.equal(f.seen, keys.length);
    }),
    { numRuns: 300 },
  );
});

test('members: a newcomer to a room of 250 gets the first 100 names by lower-cased name; /who pages them all', () => {
  const inbox = new Map<number, ServerMsg[]>();
  const deliver = (to: number, m: ServerMsg): void => void (inbox.get(to) ?? inbox.set(to, []).get(to)!).push(m);
  const chat = new ChatCore({ hub: new MemoryHub(deliver), registry: new MemoryNameRegistry(), store: new SqliteStore(':memory:'), deliver });
  // Mixed case, joined in a scrambled order.
  const names = Array.from({ length: 250 }, (_, i) => (i % 3 === 0 ? `User${(i * 7919) % 1000}` : `user${(i * 7919) % 1000}x`));
  names.forEach((n, i) => assert.ok(chat.connect(i + 1, n, 1000 + i).ok));
  const sid = 1000;
  assert.ok(chat.connect(sid, 'Zed', 5000).ok);
  const all = [...names, 'Zed'].sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1));
  const page = inbox.get(sid)!.filter((m) => m.type === 'members');
  assert.equal(page.length, 1);
  assert.deepEqual(page[0], {
    type: 'members',
    ref: null,
    room: '#lobby',
    members: all.slice(0, MEMBERS_PER_REPLY).map((name) => ({ name, away: false })),
    last: true,
    omitted: all.length - MEMBERS_PER_REPLY,
  });
  inbox.set(sid, []);
  chat.handle(sid, { type: 'who', ref: 7, room: '#lobby' }, 6000);
  const pages = inbox.get(sid)!.filter((m) => m.type === 'members');
  assert.equal(pages.length, Math.ceil(all.length / MEMBERS_PER_REPLY));
  assert.deepEqual(pages.flatMap((m) => (m.type === 'members' ? m.members.map((x) => x.name) : [])), all);
  assert.deepEqual(pages.map((m) => (m.type === 'members' ? [m.ref, m.last, m.omitted] : [])), [[null, false, 0], [null, false, 0], [7, true, 0]]);
});
