// The chat core, sans-I/O: exactly what each session is delivered, in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ChatCore, type ChatLimits } from '../src/chat/core.js';
import { MemoryHub } from '../src/chat/hub.js';
import { MemoryNameRegistry } from '../src/chat/registry.js';
import { decodeServerMsg, encodeServerMsg, ErrorCode, LeaveReason, type ServerMsg } from '../src/wire/message.js';
import { FLOOD_BURST, FLOOD_RATE_PER_SEC, MESSAGE_MAX_BYTES, PRESENCE_COALESCE_MEMBERS, PRESENCE_COALESCE_MS, SHORT_TEXT_MAX_BYTES } from '../src/limits.js';
import { SqliteStore } from '../src/store/sqlite.js';

function setup(limits: Partial<ChatLimits> = {}) {
  const inbox = new Map<number, ServerMsg[]>();
  const deliver = (to: number, msg: ServerMsg) => {
    // Everything delivered must survive the wire: this also bounds error texts and reasons.
    const d = decodeServerMsg(encodeServerMsg(msg));
    assert.ok(d.ok, `undecodable ${msg.type}: ${d.ok ? '' : d.error.message}`);
    assert.deepEqual(d.value, msg);
    if (!inbox.has(to)) inbox.set(to, []);
    inbox.get(to)!.push(msg);
  };
  const hub = new MemoryHub(deliver);
  const registry = new MemoryNameRegistry();
  const store = new SqliteStore(':memory:');
  const chat = new ChatCore({ hub, registry, store, deliver, limits });
  const take = (sid: number) => {
    const got = inbox.get(sid) ?? [];
    inbox.set(sid, []);
    return got;
  };
  const say = (sid: number, ref: number, body: string, now = 0, room = '#lobby', action = false) =>
    chat.handle(sid, { type: 'say', ref, room, body, action }, now);
  return { chat, hub, registry, store, take, say };
}

type WelcomeLimits = Pick<ChatLimits, 'messageMax' | 'floodBurst' | 'floodRate'>;
const welcome = (name: string, serverTime: number, l: WelcomeLimits = { messageMax: MESSAGE_MAX_BYTES, floodBurst: FLOOD_BURST, floodRate: FLOOD_RATE_PER_SEC }) =>
  ({ type: 'welcome', name, messageMax: l.messageMax, floodBurst: l.floodBurst, floodRate: l.floodRate, serverTime }) as const;
const joined = (name: string, ts: number) => ({ type: 'joined', room: '#lobby', name, ts }) as const;
const msg = (id: number, ts: number, from: string, body: string, ref: number | null, action = false, history = false) =>
  ({ type: 'message', room: '#lobby', id, ts, from, body, action, history, ref }) as const;
const members = (...names: string[]) =>
  ({ type: 'members', ref: null, room: '#lobby', members: names.map((name) => ({ name, away: false })), last: true, omitted: 0 }) as const;
const caughtup = (ref: number | null = null, room: string | null = '#lobby') => ({ type: 'caughtup', ref, room, more: false }) as const;
/** What a newcomer to an empty #lobby without history gets. */
const arrival = (name: string, ts: number, l?: WelcomeLimits, others: string[] = []) =>
  [welcome(name, ts, l), joined(name, ts), members(...[name, ...others].sort()), caughtup()] as const;
const bodies = (ms: ServerMsg[]) => ms.map((m) => (m.type === 'message' ? m.body : m.type));

test('join: welcome with the limits to the newcomer, then "joined" to everyone including the newcomer', () => {
  const { chat, take } = setup();
  assert.deepEqual(chat.connect(1, 'alice', 1000), { ok: true, name: 'alice' });
  assert.deepEqual(take(1), arrival('alice', 1000));
  assert.deepEqual(chat.connect(2, 'bob', 2000), { ok: true, name: 'bob' });
  assert.deepEqual(take(1), [joined('bob', 2000)]);
  assert.deepEqual(take(2), arrival('bob', 2000, undefined, ['alice']));
  assert.equal(chat.sessionCount, 2);
  assert.equal(chat.nameOf(2), 'bob');
  assert.equal(chat.nameOf(3), undefined);
});

test('join: the name is registered as NFC; custom limits are announced in welcome', () => {
  const limits = { messageMax: 100, floodBurst: 3, floodRate: 2 };
  const { chat, take } = setup(limits);
  assert.deepEqual(chat.connect(1, 'O\u0308sten', 5), { ok: true, name: '\u00d6sten' });
  assert.deepEqual(take(1), arrival('\u00d6sten', 5, limits));
  assert.equal(chat.ownerOf('öSTEN'), 1);
});

test('join: an invalid name is refused with its reason and nothing changes', () => {
  const { chat, take } = setup();
  assert.deepEqual(chat.connect(1, 'a b', 0), { ok: false, code: ErrorCode.NameInvalid, reason: 'names cannot contain spaces' });
  assert.deepEqual(chat.connect(1, 'x'.repeat(40), 0), {
    ok: false,
    code: ErrorCode.NameTooLong,
    reason: 'a name is at most 32 characters; this one has 40',
  });
  assert.deepEqual(take(1), []);
  assert.equal(chat.sessionCount, 0);
  assert.equal(chat.nameOf(1), undefined);
});

test('join: a taken name, in any case or normalisation, is refused and nothing changes', () => {
  const { chat, take, registry } = setup();
  chat.connect(1, 'Ärger', 0);
  take(1);
  for (const n of ['Ärger', 'äRGER', 'A\u0308rger', 'ÄRGER']) {
    assert.deepEqual(chat.connect(2, n, 1), {
      ok: false,
      code: ErrorCode.NameTaken,
      reason: `the name "${n.normalize('NFC')}" is already taken; choose another`,
    });
  }
  assert.deepEqual(take(1), []);
  assert.deepEqual(take(2), []);
  assert.equal(chat.sessionCount, 1);
  assert.equal(registry.ownerOf('ärger'), 1);
  // The refused session kept nothing: it can still register another name.
  assert.equal(chat.connect(2, 'bob', 2).ok, true);
});

test('join: a session that already has a name cannot connect again', () => {
  const { chat, take } = setup();
  chat.connect(1, 'alice', 0);
  take(1);
  assert.deepEqual(chat.connect(1, 'alice2', 1), { ok: false, code: ErrorCode.BadRequest, reason: 'this session already has a name' });
  assert.deepEqual(take(1), []);
  assert.equal(chat.ownerOf('alice2'), undefined);
});

test('say: everyone gets the message with increasing ids; only the sender copy carries its ref', () => {
  const { chat, take, say } = setup();
  for (const [sid, name] of [[1, 'alice'], [2, 'bob'], [3, 'carol']] as const) chat.connect(sid, name, 0);
  [1, 2, 3].forEach(take);
  say(1, 7, 'hi', 10);
  say(2, 0, 'waves', 11, '#lobby', true);
  say(3, 7, '   ', 12, '#LOBBY'); // blank is still something; the room in any case
  assert.deepEqual(take(1), [msg(1, 10, 'alice', 'hi', 7), msg(2, 11, 'bob', 'waves', null, true), msg(3, 12, 'carol', '   ', null)]);
  assert.deepEqual(take(2), [msg(1, 10, 'alice', 'hi', null), msg(2, 11, 'bob', 'waves', 0, true), msg(3, 12, 'carol', '   ', null)]);
  assert.deepEqual(take(3), [msg(1, 10, 'alice', 'hi', null), msg(2, 11, 'bob', 'waves', null, true), msg(3, 12, 'carol', '   ', 7)]);
});

test('say: empty, too long and wrong room are refused with the ref and the limit; nothing reaches others', () => {
  const { chat, take, say } = setup({ messageMax: 10 });
  chat.connect(1, 'alice', 0);
  chat.connect(2, 'bob', 0);
  [1, 2].forEach(take);
  say(1, 1, '');
  say(1, 2, 'x'.repeat(11));
  say(1, 3, 'é'.repeat(6)); // 6 characters, 12 bytes: the limit is in bytes
  say(1, 4, 'ok', 0, '#elsewhere');
  say(1, 5, 'ok', 0, 'lobby');
  say(1, 6, 'ok', 0, '#' + 'x'.repeat(2000)); // the text stays short whatever the client sent
  assert.deepEqual(take(1), [
    { type: 'error', code: ErrorCode.MessageEmpty, text: 'nothing to send: the message is empty', ref: 1 },
    { type: 'error', code: ErrorCode.MessageTooLong, text: 'message is 11 bytes; the limit is 10: split it', ref: 2 },
    { type: 'error', code: ErrorCode.MessageTooLong, text: 'message is 12 bytes; the limit is 10: split it', ref: 3 },
    { type: 'error', code: ErrorCode.NotInRoom, text: 'you are not in #elsewhere; join it first', ref: 4 },
    { type: 'error', code: ErrorCode.NotInRoom, text: 'no such room: a room name starts with "#", e.g. #lobby', ref: 5 },
    { type: 'error', code: ErrorCode.NotInRoom, text: 'no such room: a room name is at most 64 characters; this one has 2001', ref: 6 },
  ]);
  assert.deepEqual(take(2), []);
  // Refusals use no ids; a message exactly at the limit goes through.
  say(1, 7, 'é'.repeat(5), 1);
  assert.deepEqual(take(2), [msg(1, 1, 'alice', 'ééééé', null)]);
});

test('say: messages sent while flooding are refused with the ref and the limits, never delivered; the bucket refills with time', () => {
  const { chat, take, say } = setup({ floodBurst: 2, floodRate: 1 });
  chat.connect(1, 'alice', 0);
  chat.connect(2, 'bob', 0);
  [1, 2].forEach(take);
  say(1, 1, 'one');
  say(1, 2, 'two');
  say(1, 3, 'three');
  assert.deepEqual(take(1).at(-1), {
    type: 'error',
    code: ErrorCode.SlowDown,
    text: 'slow down: at most 1 message per second (burst 2); this was not sent',
    ref: 3,
  });
  assert.deepEqual(bodies(take(2)), ['one', 'two']);
  say(1, 4, 'early', 999);
  assert.deepEqual(take(2), []);
  say(1, 5, 'later', 1000); // exactly one token back
  assert.deepEqual(take(2), [msg(3, 1000, 'alice', 'later', null)]);
  // Refused attempts do not spend: after a long pause only the burst is available.
  say(1, 6, 'a', 60_000);
  say(1, 7, 'b', 60_000);
  say(1, 8, 'c', 60_000);
  assert.deepEqual(bodies(take(2)), ['a', 'b']);
});

test('say: at the default limits, a burst of 20 then one message per 100 ms passes; the 21st at once does not', () => {
  const { chat, take, say } = setup();
  chat.connect(1, 'alice', 0);
  chat.connect(2, 'bob', 0);
  [1, 2].forEach(take);
  for (let i = 0; i < FLOOD_BURST; i++) say(1, i, `m${i}`, 0);
  say(1, 100, 'too many', 0);
  const refused = take(1).filter((m) => m.type === 'error');
  assert.deepEqual(refused, [
    {
      type: 'error',
      code: ErrorCode.SlowDown,
      text: 'slow down: at most 10 messages per second (burst 20); this was not sent',
      ref: 100,
    },
  ]);
  // Paced exactly at the rate, for a long time: never refused (the bucket arithmetic is exact).
  for (let i = 1; i <= 1000; i++) say(1, 200 + i, `p${i}`, i * (1000 / FLOOD_RATE_PER_SEC));
  assert.equal(take(1).filter((m) => m.type === 'error').length, 0);
  assert.equal(take(2).length, FLOOD_BURST + 1000);
});

test('say: a wall clock stepping back does not drain the bucket', () => {
  const { chat, take, say } = setup({ floodBurst: 2, floodRate: 1 });
  chat.connect(1, 'alice', 10_000);
  take(1);
  say(1, 1, 'a', 10_000);
  say(1, 2, 'b', 5_000); // the clock went back 5 s
  say(1, 3, 'c', 6_000); // a second after that: one token again
  assert.deepEqual(bodies(take(1)), ['a', 'b', 'c']);
});

test('hello after connect and an unechoable ref are bad requests; a session without a name is ignored', () => {
  const { chat, take } = setup();
  chat.connect(1, 'alice', 0);
  take(1);
  chat.handle(1, { type: 'hello', name: 'alice', resume: false }, 1);
  assert.deepEqual(take(1), [{ type: 'error', code: ErrorCode.BadRequest, text: 'you already have a name: hello is only the first message', ref: null }]);
  // The largest ref the decoder accepts cannot travel back as ref+1: refused without echoing it.
  chat.handle(1, { type: 'say', ref: Number.MAX_SAFE_INTEGER, room: '#lobby', body: 'hi', action: false }, 1);
  assert.deepEqual(take(1), [{ type: 'error', code: ErrorCode.BadRequest, text: `a ref must be below ${Number.MAX_SAFE_INTEGER}`, ref: null }]);
  chat.handle(9, { type: 'say', ref: 0, room: '#lobby', body: 'hi', action: false }, 2);
  chat.handle(9, { type: 'quit', reason: '' }, 2);
  assert.deepEqual(take(1), []);
  assert.deepEqual(take(9), []);
});

test('disconnect: "left" with the reason to the others, the name is free again, and it is idempotent', () => {
  const { chat, take, registry } = setup();
  chat.connect(1, 'alice', 0);
  chat.connect(2, 'bob', 0);
  [1, 2].forEach(take);
  chat.disconnect(2, LeaveReason.TimedOut, '', 5);
  chat.disconnect(2, LeaveReason.ConnectionLost, 'again', 6);
  chat.disconnect(99, LeaveReason.Quit, 'never here', 6);
  assert.deepEqual(take(1), [{ type: 'left', room: '#lobby', name: 'bob', why: LeaveReason.TimedOut, reason: '', ts: 5 }]);
  assert.deepEqual(take(2), []);
  assert.equal(chat.sessionCount, 1);
  assert.equal(registry.ownerOf('bob'), undefined);
  assert.deepEqual(chat.connect(3, 'BOB', 7), { ok: true, name: 'BOB' });
  assert.deepEqual(take(1), [joined('BOB', 7)]);
});

test('quit: the reason reaches the room; a long reason is cut to fit the wire', () => {
  const { chat, take, say } = setup();
  chat.connect(1, 'alice', 0);
  chat.connect(2, 'bob', 0);
  [1, 2].forEach(take);
  chat.handle(2, { type: 'quit', reason: 'bye all' }, 3);
  assert.deepEqual(take(1), [{ type: 'left', room: '#lobby', name: 'bob', why: LeaveReason.Quit, reason: 'bye all', ts: 3 }]);
  say(2, 1, 'ghost', 4);
  assert.deepEqual(take(1), []);
  assert.deepEqual(take(2), []);
  // The shell may pass its own (longer) close reason: cut at a character, never past the limit.
  chat.connect(3, 'carol', 5);
  take(1);
  chat.disconnect(3, LeaveReason.ConnectionLost, '🙂'.repeat(300), 6);
  const [left] = take(1);
  assert.ok(left?.type === 'left');
  if (left?.type === 'left') {
    assert.ok(Buffer.byteLength(left.reason) <= SHORT_TEXT_MAX_BYTES);
    assert.match(left.reason, /^(🙂)+…$/u);
  }
});

test('ids keep increasing after the room empties and is forgotten', () => {
  const { chat, hub, take, say } = setup();
  chat.connect(1, 'alice', 0);
  say(1, 0, 'first', 1);
  chat.disconnect(1, LeaveReason.Quit, '', 2);
  assert.equal(hub.members('#lobby').size, 0);
  assert.equal(hub.roomName('#lobby'), undefined);
  take(1);
  chat.connect(2, 'bob', 3);
  say(2, 0, 'second', 4);
  assert.deepEqual(take(2).at(-1), msg(2, 4, 'bob', 'second', 0));
});

test('resume: a reconnecting client keeps its name, rooms and flood bucket without leaving or joining', () => {
  const { chat, take, say } = setup({ floodBurst: 1, floodRate: 1 });
  chat.connect(1, 'alice', 0);
  chat.connect(2, 'bob', 0);
  say(1, 0, 'hi', 0);
  [1, 2].forEach(take);
  assert.deepEqual(chat.resume(3, 1, 10), { ok: true, name: 'alice' });
  assert.deepEqual(take(3), [welcome('alice', 10, { messageMax: MESSAGE_MAX_BYTES, floodBurst: 1, floodRate: 1 })]);
  assert.deepEqual(take(2), []);
  assert.equal(chat.ownerOf('alice'), 3);
  assert.equal(chat.nameOf(1), undefined);
  say(3, 1, 'again', 10); // the bucket came along: still empty 10 ms later
  assert.equal(take(3)[0]?.type, 'error');
  say(3, 2, 'back', 1000);
  assert.deepEqual(take(2), [msg(2, 1000, 'alice', 'back', null)]);
  assert.equal(chat.resume(4, 1, 11).ok, false, 'the old session has nothing left to resume');
});

test('replay: a client gets its own messages back with their refs (a crash can lose the echo of a stored one); others get none', () => {
  const { chat, take, say } = setup();
  chat.connect(1, 'alice', 0, { identity: 'a1', resume: false });
  chat.connect(2, 'bob', 0, { identity: 'b2', resume: false });
  say(1, 41, 'stored, echo lost', 10);
  say(2, 7, 'from bob', 20);
  chat.handle(1, { type: 'msg', ref: 42, to: 'bob', body: 'psst', action: false }, 30);
  chat.disconnect(1, LeaveReason.ConnectionLost, '', 40);
  [1, 2].forEach(take);
  const refs = (ms: ServerMsg[], type: 'message' | 'private') =>
    ms.flatMap((m) => (m.type === type ? [[m.body, m.ref, m.history] as const] : []));
  // Alice's next session, same key: the join's replay, then a catch-up of the room and of private messages.
  chat.connect(3, 'alice', 50, { identity: 'a1', resume: true });
  take(3);
  chat.handle(3, { type: 'join', ref: 1, room: '#lobby', since: 0 }, 60);
  assert.deepEqual(refs(take(3), 'message'), [['stored, echo lost', 41, true], ['from bob', null, true]]);
  chat.handle(3, { type: 'history', ref: 2, room: '#lobby', after: 0 }, 70);
  assert.deepEqual(refs(take(3), 'message'), [['stored, echo lost', 41, true], ['from bob', null, true]]);
  chat.handle(3, { type: 'history', ref: 3, room: null, after: 0 }, 80);
  assert.deepEqual(refs(take(3), 'private'), [['psst', 42, true]]);
  // Bob asking the same gets only his own refs.
  chat.handle(2, { type: 'history', ref: 4, room: '#lobby', after: 0 }, 90);
  assert.deepEqual(refs(take(2), 'message'), [['stored, echo lost', null, true], ['from bob', 7, true]]);
  chat.handle(2, { type: 'history', ref: 5, room: null, after: 0 }, 100);
  assert.deepEqual(refs(take(2), 'private'), [['psst', null, true]]);
  // A client without a key (an original-protocol one) gets no refs at all.
  chat.connect(4, 'carol', 110);
  assert.deepEqual(refs(take(4), 'message'), [['stored, echo lost', null, true], ['from bob', null, true]]);
});

test('hub: rooms are found in any case, shown as first created, and forgotten when empty', () => {
  const got: [number, ServerMsg][] = [];
  const hub = new MemoryHub((to, m) => got.push([to, m]));
  hub.join('#Rust', 1);
  hub.join('#RUST', 2);
  assert.deepEqual([...hub.members('#rust')], [1, 2]);
  assert.equal(hub.roomName('#rUsT'), '#Rust');
  assert.deepEqual([...hub.roomsOf(2)], ['#Rust']);
  const m: ServerMsg = { type: 'message', room: '#Rust', id: 2, ts: 0, from: 'a', body: 'x', action: false, history: false, ref: 5 };
  hub.publish('#rust', m, 1);
  hub.publish('#rust', m); // without an echo target nobody sees the ref
  assert.deepEqual(got.map(([to, x]) => [to, x.type === 'message' ? x.ref : -1]), [[1, 5], [2, null], [1, null], [2, null]]);
  hub.leave('#rust', 1);
  hub.leave('#Rust', 2);
  hub.leave('#Rust', 2);
  assert.equal(hub.roomName('#rust'), undefined);
  assert.equal(hub.roomsOf(2).size, 0);
  hub.join('#RUST', 3);
  assert.equal(hub.roomName('#rust'), '#RUST');
  assert.deepEqual([...hub.rooms()], [{ name: '#RUST', members: 1 }]);
});

test('limits: a zero or fractional limit is refused at construction', () => {
  const hub = new MemoryHub(() => {});
  const registry = new MemoryNameRegistry();
  for (const limits of [{ floodRate: 0 }, { floodBurst: 1.5 }, { messageMax: -1 }]) {
    assert.throws(() => new ChatCore({ hub, registry, store: new SqliteStore(':memory:'), deliver: () => {}, limits }), RangeError);
  }
});

test('model: under any sequence of connects, says and leaves, each session sees only its rooms\' traffic, once, in id order', () => {
  type Op =
    | { op: 'connect'; sid: number; name: string }
    | { op: 'say'; sid: number; body: string }
    | { op: 'leave'; sid: number };
  const sid = fc.integer({ min: 1, max: 6 });
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ op: fc.constant('connect' as const), sid, name: fc.constantFrom('ann', 'ANN', 'bo', 'Bo', 'cy', 'a b', '') }),
    fc.record({ op: fc.constant('say' as const), sid, body: fc.constantFrom('', 'x', 'hello') }),
    fc.record({ op: fc.constant('leave' as const), sid }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const limits = { messageMax: MESSAGE_MAX_BYTES, floodBurst: 3, floodRate: 1 };
      const { chat, take, say } = setup(limits);
      const names = new Map<number, string>(); // the model: who is in #lobby under which name
      let now = 0;
      let lastId = 0;
      let ref = 0;
      for (const o of ops) {
        now += 100;
        const before = new Map([...names.keys()].map((s) => [s, take(s)] as const));
        for (const [s, got] of before) assert.deepEqual(got, [], `stray delivery to ${s}`);
        if (o.op === 'connect') {
          const r = chat.connect(o.sid, o.name, now);
          const taken = [...names.values()].some((n) => n.toLowerCase() === o.name.toLowerCase());
          assert.equal(r.ok, !names.has(o.sid) && !taken && o.name !== '' && !o.name.includes(' '));
          if (r.ok) {
            names.set(o.sid, r.name);
            const got = take(o.sid);
            assert.deepEqual(got.slice(0, 2), [welcome(r.name, now, limits), joined(r.name, now)]);
            assert.deepEqual(got.at(-1), caughtup());
            // The replay: the last 50 messages of #lobby, oldest first, marked as history.
            const replay = got.filter((m) => m.type === 'message');
            assert.ok(replay.every((m) => m.type === 'message' && m.history && m.ref === null));
            const want = Array.from({ length: Math.min(50, lastId) }, (_, i) => lastId - Math.min(50, lastId) + 1 + i);
            assert.deepEqual(replay.map((m) => (m.type === 'message' ? m.id : -1)), want);
            for (const s of names.keys()) if (s !== o.sid) assert.deepEqual(take(s), [joined(r.name, now)]);
          } else if (!names.has(o.sid)) assert.deepEqual(take(o.sid), []);
        } else if (o.op === 'say') {
          say(o.sid, ++ref, o.body, now);
          const from = names.get(o.sid);
          const own = take(o.sid);
          if (from === undefined) {
            assert.deepEqual(own, []);
            continue;
          }
          const last = own.at(-1);
          if (last?.type === 'message') {
            assert.equal(last.id, ++lastId);
            assert.deepEqual(last, msg(lastId, now, from, o.body, ref));
            for (const s of names.keys()) if (s !== o.sid) assert.deepEqual(take(s), [msg(lastId, now, from, o.body, null)]);
          } else {
            assert.equal(last?.type, 'error');
            assert.ok(last?.type === 'error' && last.ref === ref);
            for (const s of names.keys()) assert.deepEqual(take(s), []);
          }
        } else {
          const name = names.get(o.sid);
          chat.disconnect(o.sid, LeaveReason.Quit, 'bye', now);
          names.delete(o.sid);
          take(o.sid);
          for (const s of names.keys()) {
            assert.deepEqual(take(s), name === undefined ? [] : [{ type: 'left', room: '#lobby', name, why: LeaveReason.Quit, reason: 'bye', ts: now }]);
          }
        }
        assert.equal(chat.sessionCount, names.size);
      }
    }),
    { numRuns: 300 },
  );
});

test('presence: a big room hears joins and leaves in batches; the newcomer and the leaver hear their own at once', () => {
  const { chat, take } = setup({ floodBurst: 1000, floodRate: 1000 });
  const n = PRESENCE_COALESCE_MEMBERS;
  for (let i = 1; i <= n; i++) chat.connect(i, `u${i}`, 0);
  for (let i = 1; i <= n; i++) take(i);
  assert.equal(chat.nextDeadline(), null);
  // The room has n members: the next join makes it big.
  chat.connect(100, 'late', 1000);
  assert.deepEqual(take(100).slice(0, 2), [welcome('late', 1000, { messageMax: MESSAGE_MAX_BYTES, floodBurst: 1000, floodRate: 1000 }), joined('late', 1000)], 'the newcomer hears its join at once');
  assert.deepEqual(take(1), [], 'the others wait for the batch');
  chat.connect(101, 'later', 1100);
  chat.connect(102, 'brief', 1200);
  chat.disconnect(102, LeaveReason.Quit, '', 1300); // came and went within the batch: never announced
  chat.disconnect(5, LeaveReason.TimedOut, '', 1400);
  take(100);
  take(101);
  assert.equal(chat.nextDeadline(), 1000 + PRESENCE_COALESCE_MS);
  chat.handleTimeout(1000 + PRESENCE_COALESCE_MS - 1);
  assert.deepEqual(take(1), []);
  chat.handleTimeout(1000 + PRESENCE_COALESCE_MS);
  const batch = { type: 'presence', room: '#lobby', ts: 1000 + PRESENCE_COALESCE_MS, joined: ['late', 'later'], left: [{ name: 'u5', why: LeaveReason.TimedOut, reason: '' }] };
  assert.deepEqual(take(1), [batch]);
  assert.deepEqual(take(100), [batch]);
  assert.equal(chat.nextDeadline(), null);
  for (let i = 2; i <= n; i++) take(i);
  // Another join keeps the room big; a part: the leaver hears it at once (and closes the room), the room
  // with the next batch.
  chat.connect(103, 'more', 2900);
  take(103);
  chat.handle(2, { type: 'part', ref: 1, room: '#lobby', reason: 'bye' }, 3000);
  assert.deepEqual(take(2), [
    { type: 'left', room: '#lobby', name: 'u2', why: LeaveReason.Part, reason: 'bye', ts: 3000 },
    { type: 'ok', ref: 1, text: 'you left #lobby' },
  ]);
  assert.deepEqual(take(1), []);
  chat.handleTimeout(2900 + PRESENCE_COALESCE_MS);
  assert.deepEqual(take(1), [{ type: 'presence', room: '#lobby', ts: 2900 + PRESENCE_COALESCE_MS, joined: ['more'], left: [{ name: 'u2', why: LeaveReason.Part, reason: 'bye' }] }]);
  // Back to PRESENCE_COALESCE_MEMBERS members: announcements are immediate again.
  chat.disconnect(3, LeaveReason.Quit, '', 4000);
  assert.deepEqual(take(1), [{ type: 'left', room: '#lobby', name: 'u3', why: LeaveReason.Quit, reason: '', ts: 4000 }]);
});

test('member lists: a join lists the first 100 members by folded name and counts the rest; /who lists them all, sorted', () => {
  const { chat, take } = setup({ floodBurst: 1e6, floodRate: 1e6 });
  const names = Array.from({ length: 250 }, (_, i) => `${'QwErTy'[i % 6]}user${(i * 7919) % 1000}`);
  names.forEach((n, i) => assert.ok(chat.connect(i + 1, n, 0).ok));
  const sorted = [...names].sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1));
  const replies = (sid: number) => take(sid).filter((m): m is Extract<ServerMsg, { type: 'members' }> => m.type === 'members');
  const onJoin = replies(250);
  assert.deepEqual(onJoin.flatMap((m) => m.members.map((x) => x.name)), sorted.slice(0, 100));
  assert.equal(onJoin.at(-1)!.omitted, 150);
  chat.handle(250, { type: 'who', ref: 9, room: '#lobby' }, 0);
  const who = replies(250);
  assert.deepEqual(who.flatMap((m) => m.members.map((x) => x.name)), sorted);
  assert.equal(who.at(-1)!.omitted, 0);
  assert.equal(who.at(-1)!.ref, 9);
});

test('join member pages: the cached first page always equals a full sort of the room, over any joins, parts, quits, renames and resumes', () => {
  type Op = { k: 'join' | 'part' | 'quit' | 'nick' | 'resume'; who: number; room: number; name: number };
  const op = fc.record({
    k: fc.constantFrom<Op['k']>('join', 'join', 'join', 'part', 'quit', 'nick', 'resume'),
    who: fc.nat({ max: 179 }),
    room: fc.nat({ max: 1 }),
    name: fc.nat({ max: 999 }),
  });
  fc.assert(
    fc.property(fc.array(op, { minLength: 1, maxLength: 300 }), (ops) => {
      const { chat, take } = setup({ floodBurst: 1e9, floodRate: 1e9 });
      const rooms = ['#big', '#small'];
      const alive = new Map<number, string>(); // sid -> name
      const inRoom = [new Set<number>(), new Set<number>()];
      let nextSid = 1;
      const fresh = (who: number) => `n${who}x${nextSid}`;
      // 150 members in #big to begin with, so its first page is bounded.
      for (let i = 0; i < 150; i++) {
        const sid = nextSid++;
        const name = `Pre${(i * 37) % 150}`;
        assert.ok(chat.connect(sid, name, 0).ok);
        alive.set(sid, name);
        chat.handle(sid, { type: 'join', ref: 1, room: '#big', since: null }, 0);
        inRoom[0]!.add(sid);
      }
      for (const sid of alive.keys()) take(sid);
      for (const o of ops) {
        const sids = [...alive.keys()];
        const sid = sids.length > 0 ? sids[o.who % sids.length]! : -1;
        if (o.k === 'join' || sid === -1) {
          const s = nextSid++;
          const name = fresh(o.who);
          assert.ok(chat.connect(s, name, 0).ok);
          alive.set(s, name);
          take(s);
          chat.handle(s, { type: 'join', ref: 2, room: rooms[o.room]!, since: null }, 0);
          inRoom[o.room]!.add(s);
          const pages = take(s).filter((m): m is Extract<ServerMsg, { type: 'members' }> => m.type === 'members' && m.room === rooms[o.room]);
          const want = [...inRoom[o.room]!].map((x) => alive.get(x)!).sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : a.toLowerCase() > b.toLowerCase() ? 1 : 0));
          assert.deepEqual(pages.flatMap((p) => p.members.map((x) => x.name)), want.slice(0, 100));
          assert.equal(pages.at(-1)!.omitted, Math.max(0, want.length - 100));
        } else if (o.k === 'part') {
          chat.handle(sid, { type: 'part', ref: 3, room: rooms[o.room]!, reason: '' }, 0);
          inRoom[o.room]!.delete(sid);
        } else if (o.k === 'quit') {
          chat.disconnect(sid, LeaveReason.Quit, '', 0);
          alive.delete(sid);
          inRoom[0]!.delete(sid);
          inRoom[1]!.delete(sid);
        } else if (o.k === 'nick') {
          const name = `R${o.name}`;
          chat.handle(sid, { type: 'nick', ref: 4, name }, 0);
          if (chat.nameOf(sid) === name) alive.set(sid, name);
        } else {
          const s = nextSid++;
          assert.ok(chat.resume(s, sid, 0).ok);
          alive.set(s, alive.get(sid)!);
          alive.delete(sid);
          for (const r of inRoom) if (r.delete(sid)) r.add(s);
        }
        for (const x of alive.keys()) take(x);
      }
    }),
    { numRuns: 40 },
  );
});

test('hub: a group delivery gets one call per publish for the members it owns, before the others get one delivery each', () => {
  const log: string[] = [];
  let onDeliver = (_to: number): void => {};
  const hub = new MemoryHub((to, m) => {
    log.push(`deliver ${to} ${m.type}${m.type === 'message' ? ` ref=${m.ref}` : ''}`);
    onDeliver(to);
  });
  hub.setGroupDelivery({
    owns: (sid) => sid < 0,
    joined: (key, sid) => log.push(`joined ${key} ${sid}`),
    left: (key, sid) => log.push(`left ${key} ${sid}`),
    publish: (key, m, others, echoTo) => log.push(`publish ${key} ${m.type === 'message' ? `ref=${m.ref} others ref=${others.type === 'message' ? others.ref : '-'}` : m.type} echo=${echoTo}`),
  });
  for (const sid of [1, -1, -2, 2, -1]) hub.join(sid === 2 ? '#LOBBY' : '#lobby', sid);
  assert.deepEqual(log.splice(0), ['joined #lobby -1', 'joined #lobby -2'], 'a second join is no news');
  assert.deepEqual([...hub.members('#Lobby')].sort((a, b) => a - b), [-2, -1, 1, 2], 'members() still lists everyone');
  hub.publish('#Lobby', msg(1, 0, 'x', 'hi', 7), -1);
  assert.deepEqual(log.splice(0), ['publish #lobby ref=7 others ref=null echo=-1', 'deliver 1 message ref=null', 'deliver 2 message ref=null']);
  hub.publish('#lobby', msg(2, 0, 'x', 'hi', 8), 2);
  assert.deepEqual(log.splice(0), ['publish #lobby ref=8 others ref=null echo=2', 'deliver 1 message ref=null', 'deliver 2 message ref=8']);
  hub.leave('#lobby', -2);
  hub.leave('#lobby', -1);
  hub.join('#lobby', 3);
  assert.deepEqual(log.splice(0), ['left #lobby -2', 'left #lobby -1']);
  // No group member left: no group call. A delivery that removes a member (a too-slow peer dropped) still
  // stops that member's delivery, on the one-by-one set that is kept in step.
  onDeliver = (to) => {
    if (to === 1) hub.leave('#lobby', 2);
  };
  hub.publish('#lobby', joined('y', 0));
  assert.deepEqual(log.splice(0), ['deliver 1 joined', 'deliver 3 joined']);
  assert.throws(() => hub.setGroupDelivery({ owns: () => false, joined() {}, left() {}, publish() {} }), /already have members/);
});
