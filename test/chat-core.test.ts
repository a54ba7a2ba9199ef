// The chat core, sans-I/O: exactly what each session is delivered, in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ChatCore } from '../src/chat/core.js';
import { MemoryHub } from '../src/chat/hub.js';
import { MemoryNameRegistry } from '../src/chat/registry.js';
import { checkName, checkRoom } from '../src/chat/names.js';
import { ErrorCode, LeaveReason, type ServerMsg } from '../src/wire/message.js';
import { NAME_MAX_CHARS } from '../src/limits.js';

function setup(limits = {}) {
  const inbox = new Map<number, ServerMsg[]>();
  const deliver = (to: number, msg: ServerMsg) => {
    if (!inbox.has(to)) inbox.set(to, []);
    inbox.get(to)!.push(msg);
  };
  const chat = new ChatCore({ hub: new MemoryHub(deliver), registry: new MemoryNameRegistry(), deliver, limits });
  const take = (sid: number) => {
    const got = inbox.get(sid) ?? [];
    inbox.set(sid, []);
    return got;
  };
  return { chat, take };
}

test('names: valid names in many scripts are accepted as NFC', () => {
  for (const n of ['alice', 'Ärger', 'Łukasz', '山田', 'emoji🙂', 'a', 'x'.repeat(32), 'O\u0308sten']) {
    const r = checkName(n);
    assert.ok(r.ok, `${n}: ${r.ok ? '' : r.reason}`);
    if (r.ok) assert.equal(r.name, n.normalize('NFC'));
  }
});

test('names: each rejection carries its reason', () => {
  const cases: [string, ErrorCode, RegExp][] = [
    ['', ErrorCode.NameInvalid, /empty/],
    ['   ', ErrorCode.NameInvalid, /empty/],
    ['a b', ErrorCode.NameInvalid, /spaces/],
    ['x'.repeat(33), ErrorCode.NameTooLong, /at most 32/],
    ['tab\tx', ErrorCode.NameInvalid, /spaces|U\+0009/],
    ['bell\u0007', ErrorCode.NameInvalid, /U\+0007 \(control character\)/],
    ['zero\u200bwidth', ErrorCode.NameInvalid, /U\+200B/],
    ['bob: hi', ErrorCode.NameInvalid, /spaces|":"/],
    ['a:b', ErrorCode.NameInvalid, /":"/],
    ['me@host', ErrorCode.NameInvalid, /"@"/],
    ['#room', ErrorCode.NameInvalid, /start with "#"/],
    ['/cmd', ErrorCode.NameInvalid, /start with "\/"/],
  ];
  for (const [name, code, reason] of cases) {
    const r = checkName(name);
    assert.equal(r.ok, false, JSON.stringify(name));
    if (!r.ok) {
      assert.equal(r.code, code, JSON.stringify(name));
      assert.match(r.reason, reason, JSON.stringify(name));
    }
  }
  assert.equal(checkName('🙂'.repeat(32)).ok, true, 'length counts code points, not UTF-16 units');
});

test('names: the key folds case and normalisation', () => {
  const keys = ['Ärger', 'äRGER', 'A\u0308rger'].map((n) => {
    const r = checkName(n);
    assert.ok(r.ok);
    return r.ok ? r.key : '';
  });
  assert.equal(new Set(keys).size, 1);
});

test('names: checkName never throws; accepted names are NFC, short, with no spaces or controls', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (s) => {
      const r = checkName(s);
      if (r.ok) {
        assert.equal(r.name, r.name.normalize('NFC'));
        assert.ok([...r.name].length <= NAME_MAX_CHARS && r.name.length > 0);
        assert.ok(!/[\p{White_Space}\p{Cc}\p{Cf}]/u.test(r.name));
      }
    }),
    { numRuns: 3000 },
  );
});

test('rooms: must start with # and follow the name rules', () => {
  assert.equal(checkRoom('#lobby').ok, true);
  assert.equal(checkRoom('lobby').ok, false);
  assert.equal(checkRoom('#').ok, false);
  assert.equal(checkRoom('#a b').ok, false);
});

test('join: welcome to the newcomer, then "joined" to everyone including the newcomer', () => {
  const { chat, take } = setup();
  assert.deepEqual(chat.connect(1, 'alice', 1000), { ok: true, name: 'alice' });
  const a = take(1);
  assert.equal(a[0]!.type, 'welcome');
  assert.deepEqual(a[1], { type: 'joined', room: '#lobby', name: 'alice', ts: 1000 });
  chat.connect(2, 'bob', 2000);
  assert.deepEqual(take(1), [{ type: 'joined', room: '#lobby', name: 'bob', ts: 2000 }]);
  assert.deepEqual(take(2).map((m) => m.type), ['welcome', 'joined']);
});

test('a taken name (any case or normalisation) is refused and nothing changes', () => {
  const { chat, take } = setup();
  chat.connect(1, 'Ärger', 0);
  take(1);
  for (const n of ['äRGER', 'A\u0308rger']) {
    const r = chat.connect(2, n, 0);
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.code, ErrorCode.NameTaken);
      assert.match(r.reason, /already taken/);
    }
  }
  assert.deepEqual(take(1), []);
  assert.deepEqual(take(2), []);
  assert.equal(chat.sessionCount, 1);
});

test('say: everyone gets the message with increasing ids; only the sender copy carries its ref', () => {
  const { chat, take } = setup();
  chat.connect(1, 'alice', 0);
  chat.connect(2, 'bob', 0);
  take(1);
  take(2);
  chat.handle(1, { type: 'say', ref: 7, room: '#lobby', body: 'hi', action: false }, 10);
  chat.handle(2, { type: 'say', ref: 0, room: '#lobby', body: 'hey', action: true }, 11);
  const a = take(1);
  const b = take(2);
  assert.deepEqual(a, [
    { type: 'message', room: '#lobby', id: 1, ts: 10, from: 'alice', body: 'hi', action: false, ref: 7 },
    { type: 'message', room: '#lobby', id: 2, ts: 11, from: 'bob', body: 'hey', action: true, ref: null },
  ]);
  assert.deepEqual(b, [
    { type: 'message', room: '#lobby', id: 1, ts: 10, from: 'alice', body: 'hi', action: false, ref: null },
    { type: 'message', room: '#lobby', id: 2, ts: 11, from: 'bob', body: 'hey', action: true, ref: 0 },
  ]);
});

test('say: empty, too long, wrong room and flooding are refused with the ref; nothing reaches others', () => {
  const { chat, take } = setup({ messageMax: 10, floodBurst: 2, floodRate: 1 });
  chat.connect(1, 'alice', 0);
  chat.connect(2, 'bob', 0);
  take(1);
  take(2);
  const say = (ref: number, body: string, room = '#lobby', now = 0) => chat.handle(1, { type: 'say', ref, room, body, action: false }, now);
  say(1, '');
  say(2, 'x'.repeat(11));
  say(3, 'ok', '#elsewhere');
  say(4, 'one');
  say(5, 'two');
  say(6, 'three'); // over the burst of 2
  const errs = take(1).filter((m) => m.type === 'error');
  assert.deepEqual(
    errs.map((m) => (m.type === 'error' ? [m.ref, m.code] : [])),
    [
      [1, ErrorCode.MessageEmpty],
      [2, ErrorCode.MessageTooLong],
      [3, ErrorCode.NotInRoom],
      [6, ErrorCode.SlowDown],
    ],
  );
  assert.deepEqual(take(2).map((m) => (m.type === 'message' ? m.body : m.type)), ['one', 'two']);
  say(7, 'later', '#lobby', 1500); // a token has refilled
  assert.deepEqual(take(2).map((m) => (m.type === 'message' ? m.body : m.type)), ['later']);
});

test('disconnect: "left" with the reason to the others, the name is free again, and it is idempotent', () => {
  const { chat, take } = setup();
  chat.connect(1, 'alice', 0);
  chat.connect(2, 'bob', 0);
  take(1);
  chat.disconnect(2, LeaveReason.TimedOut, '', 5);
  chat.disconnect(2, LeaveReason.TimedOut, '', 6);
  assert.deepEqual(take(1), [{ type: 'left', room: '#lobby', name: 'bob', why: LeaveReason.TimedOut, reason: '', ts: 5 }]);
  assert.equal(chat.connect(3, 'BOB', 7).ok, true);
});
