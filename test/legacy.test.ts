// The original plain-text protocol, both directions: the sans-I/O gateway (unit), the real server with
// original and obrol clients in one #lobby (end to end), and `obrol join --legacy` against an
// independent original server (test/helpers/original.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LEGACY_DATAGRAM_MAX, MESSAGE_MAX_BYTES } from '../src/limits.js';
import { ErrorCode, LeaveReason, type ClientMsg, type ServerMsg } from '../src/wire/message.js';
import { LEGACY_TAKEN_REPLY, LegacyGateway, splitLine, type ChatCoreLike, type LegacyGatewayOptions } from '../src/legacy/gateway.js';
import { parseLegacyLine } from '../src/client/legacy-client.js';
import type { Address, Transmit } from '../src/session/address.js';
import { join, run, startServer, tempDir } from './helpers/cli.js';
import { OriginalClient, OriginalServer, sleep, TAKEN } from './helpers/original.js';
import { ChatCore } from '../src/chat/core.js';
import { MemoryHub } from '../src/chat/hub.js';
import { MemoryNameRegistry } from '../src/chat/registry.js';
import { SqliteStore } from '../src/store/sqlite.js';

// ---- A small chat core: just enough of ChatCore's contract to drive the gateway ----------------

class FakeChat implements ChatCoreLike {
  readonly members = new Map<number, string>();
  readonly calls: string[] = [];
  readonly said: { sid: number; body: string }[] = [];
  /** Deliveries to positive (obrol) session ids. */
  readonly obrol: { to: number; msg: ServerMsg }[] = [];
  private nextId = 1;
  history: string[] = [];
  deliverLegacy: (to: number, msg: ServerMsg) => void = () => {};

  private deliver(to: number, msg: ServerMsg): void {
    if (to < 0) this.deliverLegacy(to, msg);
    else this.obrol.push({ to, msg });
  }

  private all(msg: ServerMsg): void {
    for (const sid of this.members.keys()) this.deliver(sid, msg);
  }

  connect(sid: number, name: string, now: number): { ok: true; name: string } | { ok: false; code: ErrorCode; reason: string } {
    this.calls.push(`connect ${sid} ${name}`);
    if (name.length === 0 || /[\s:@,*!]/u.test(name) || [...name].length > 32) return { ok: false, code: ErrorCode.NameInvalid, reason: 'bad name' };
    for (const n of this.members.values()) if (n.toLowerCase() === name.toLowerCase()) return { ok: false, code: ErrorCode.NameTaken, reason: 'taken' };
    this.members.set(sid, name);
    this.deliver(sid, { type: 'welcome', name, messageMax: MESSAGE_MAX_BYTES, floodBurst: 20, floodRate: 10, serverTime: now });
    this.all({ type: 'joined', room: '#lobby', name, ts: now });
    // History replay, as a chat core may do for a newcomer.
    for (const h of this.history) this.deliver(sid, { type: 'message', room: '#lobby', id: 0, ts: now, from: 'olga', body: h, action: false, history: true, ref: null });
    return { ok: true, name };
  }

  handle(sid: number, msg: ClientMsg, now: number): void {
    const from = this.members.get(sid);
    if (from === undefined || msg.type !== 'say') return;
    if (Buffer.byteLength(msg.body) > MESSAGE_MAX_BYTES) {
      this.deliver(sid, { type: 'error', code: ErrorCode.MessageTooLong, text: 'message too long: split it', ref: msg.ref });
      return;
    }
    this.said.push({ sid, body: msg.body });
    const id = this.nextId++;
    for (const to of this.members.keys()) {
      this.deliver(to, { type: 'message', room: msg.room, id, ts: now, from, body: msg.body, action: msg.action, history: false, ref: to === sid ? msg.ref : null });
    }
  }

  disconnect(sid: number, why: LeaveReason, reason: string, now: number): void {
    const name = this.members.get(sid);
    this.calls.push(`disconnect ${sid} ${why}`);
    if (name === undefined) return;
    this.members.delete(sid);
    this.all({ type: 'left', room: '#lobby', name, why, reason, ts: now });
  }

  /** An obrol client (positive id) in the room, to watch what the legacy side causes. */
  addObrol(sid: number, name: string): void {
    this.members.set(sid, name);
  }
}

/** sink: the gateway hands datagrams to a transmit sink as the server has it do, instead of its queue. */
function setup(opts: LegacyGatewayOptions = {}, sink = false): { chat: FakeChat; gw: LegacyGateway; drain(): Transmit[] } {
  const chat = new FakeChat();
  const gw = new LegacyGateway(chat, opts);
  chat.deliverLegacy = (to, msg) => gw.deliver(to, msg);
  let sunk: Transmit[] = [];
  if (sink) gw.setTransmitSink((to, data) => sunk.push({ to, data }));
  const drain = (): Transmit[] => {
    if (sink) {
      assert.equal(gw.pollTransmit(), null, 'with a sink nothing stays queued');
      const out = sunk;
      sunk = [];
      return out;
    }
    const out: Transmit[] = [];
    for (let t = gw.pollTransmit(); t !== null && out.length < 100_000; t = gw.pollTransmit()) out.push(t);
    return out;
  };
  return { chat, gw, drain };
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder('utf-8', { fatal: true }).decode(b);
const at = (port: number, address = '10.0.0.1'): Address => ({ address, port });
const to = (ts: Transmit[], a: Address): string[] => ts.filter((t) => t.to.port === a.port && t.to.address === a.address).map((t) => dec(t.data));
const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/** Checks the datagrams of a split line: size, strict UTF-8, head on each, exact re-join. */
function checkSplit(datagrams: Uint8Array[], head: string, body: string, opts: { graphemeSafe: boolean }): void {
  let rejoined = '';
  const cuts: number[] = [];
  for (const d of datagrams) {
    assert.ok(d.length <= LEGACY_DATAGRAM_MAX, `datagram of ${d.length} bytes`);
    const text = dec(d); // throws on a cut inside a code point
    assert.ok(text.startsWith(head), `datagram does not start with ${JSON.stringify(head)}`);
    rejoined += text.slice(head.length);
    cuts.push(rejoined.length);
  }
  assert.equal(rejoined, body);
  if (opts.graphemeSafe) {
    const boundaries = new Set([...graphemes.segment(body)].map((s) => s.index));
    boundaries.add(body.length);
    for (const c of cuts) assert.ok(boundaries.has(c), `cut at ${c} splits a grapheme cluster`);
  }
}

/** ~n bytes of mixed text: ASCII words, Latin accents, CJK, emoji with ZWJ and flags, Devanagari, Hangul. */
function mixedText(minBytes: number): string {
  const parts = ['hello ', 'wörld ', 'é', '你好世界', '🌍', '👨‍👩‍👧‍👦', ' ', '🇮🇩', 'क्षि', '한국어 ', 'ñandú, ', '👍🏽'];
  let s = '';
  for (let i = 0; Buffer.byteLength(s) < minBytes && i < 100_000; i++) s += parts[i % parts.length];
  return s;
}

// ---- Unit: the sans-I/O gateway --------------------------------------------------------------

for (const sink of [false, true])
test(`gateway: a name registers a negative session; the join reaches legacy clients in the original format${sink ? ', through a sink' : ''}`, () => {
  const { chat, gw, drain } = setup({}, sink);
  chat.addObrol(7, 'olga');
  chat.history = ['earlier', 'x'.repeat(5000)];
  const a = at(1000);
  const b = at(1001);
  gw.handleDatagram(0, a, enc('alice'));
  gw.handleDatagram(0, b, enc('bob\r\n')); // some clients end the name with a newline
  assert.deepEqual(chat.calls, ['connect -1 alice', 'connect -2 bob']);
  const out = drain();
  assert.deepEqual(to(out, a), ['alice has joined the chat', 'bob has joined the chat']);
  assert.deepEqual(to(out, b), ['bob has joined the chat']);
  assert.deepEqual(
    chat.obrol.map((d) => d.msg.type === 'joined' && d.msg.name),
    ['alice', 'bob'],
  );
  assert.equal(gw.nameOf(a), 'alice');
  assert.equal(gw.clientCount, 2);
  assert.equal(gw.stats.registered, 2);
  // A registration is answered with the one join line: no history replay to the (spoofable) address.
  assert.equal(gw.stats.historySkipped, 4);
});

test('gateway: lines become say to #lobby; messages, actions, leaves and errors are formatted for original clients', () => {
  const { chat, gw, drain } = setup();
  chat.addObrol(7, 'olga');
  const a = at(1000);
  gw.handleDatagram(0, a, enc('alice'));
  drain();
  gw.handleDatagram(1, a, enc('hi 🌍 你好\n'));
  assert.deepEqual(chat.said, [{ sid: -1, body: 'hi 🌍 你好' }]);
  assert.deepEqual(to(drain(), a), ['alice: hi 🌍 你好']); // the echo, as the original server sends
  const olgaSaw = chat.obrol.at(-1)!.msg;
  assert.ok(olgaSaw.type === 'message' && olgaSaw.from === 'alice' && olgaSaw.room === '#lobby');

  gw.deliver(-1, { type: 'message', room: '#lobby', id: 9, ts: 1, from: 'olga', body: 'waves', action: true, history: false, ref: null });
  gw.deliver(-1, { type: 'left', room: '#lobby', name: 'olga', why: LeaveReason.Quit, reason: 'see you', ts: 1 });
  gw.deliver(-1, { type: 'left', room: '#lobby', name: 'olga', why: LeaveReason.TimedOut, reason: '', ts: 1 });
  gw.deliver(-1, { type: 'left', room: '#lobby', name: 'olga', why: LeaveReason.Quit, reason: '', ts: 1 });
  gw.deliver(-1, { type: 'error', code: ErrorCode.SlowDown, text: 'slow down: 10 messages per second', ref: 3 });
  gw.deliver(-1, { type: 'welcome', name: 'alice', messageMax: 1, floodBurst: 1, floodRate: 1, serverTime: 1 });
  assert.deepEqual(to(drain(), a), [
    '* olga waves',
    'olga has left the chat (see you)',
    'olga has left the chat (timed out)',
    'olga has left the chat',
    'slow down: 10 messages per second',
  ]);

  // Empty lines and text that is not UTF-8 are dropped, counted, and never reach the chat.
  gw.handleDatagram(2, a, new Uint8Array(0));
  gw.handleDatagram(2, a, enc('\r\n'));
  gw.handleDatagram(2, a, Uint8Array.of(0x68, 0xc3, 0x28));
  assert.equal(chat.said.length, 1);
  assert.equal(gw.stats.emptyIgnored, 2);
  assert.equal(gw.stats.badUtf8, 1);

  // Too long: the chat core refuses, and the refusal reaches the sender as a line.
  gw.handleDatagram(3, a, new Uint8Array(MESSAGE_MAX_BYTES + 1).fill(0x61));
  assert.deepEqual(to(drain(), a), ['message too long: split it']);

  gw.deliver(-99, { type: 'joined', room: '#lobby', name: 'x', ts: 1 });
  assert.equal(gw.stats.deliverUnknown, 1);
  assert.equal(drain().length, 0);
});

test('gateway on the real chat core: a room line reaches its legacy members in one group call; joins go one by one, held; leavers leave the group', () => {
  const obrol: { to: number; msg: ServerMsg }[] = [];
  let gw: LegacyGateway | null = null;
  const deliver = (to: number, msg: ServerMsg): void => {
    if (to < 0) gw?.deliver(to, msg);
    else obrol.push({ to, msg });
  };
  const hub = new MemoryHub(deliver);
  const store = new SqliteStore(':memory:');
  const chat = new ChatCore({ hub, registry: new MemoryNameRegistry(), store, deliver });
  gw = new LegacyGateway(chat, { idleMs: 1000 });
  hub.setGroupDelivery(gw);
  const single: Transmit[] = [];
  const grouped: { to: number[]; line: string }[] = [];
  gw.setTransmitSink(
    (t, data) => single.push({ to: t, data }),
    (g, data, except) => {
      const ports: number[] = [];
      for (let i = 0; i < g.size; i++) if (!except.includes(g.keyOf(i))) ports.push(g.addressOf(i).port);
      grouped.push({ to: ports.sort((a, b) => a - b), line: dec(data) });
    },
  );
  assert.ok(chat.connect(1, 'olga', 0).ok); // an obrol member of #lobby
  [at(1), at(2), at(3)].forEach((a, i) => gw!.handleDatagram(0, a, enc(`u${i}`)));
  // A registration's datagrams are held (it may yet be refused), so its join line goes one by one.
  assert.deepEqual(grouped, []);
  assert.deepEqual(to(single, at(1)), ['u0 has joined the chat', 'u1 has joined the chat', 'u2 has joined the chat']);
  assert.deepEqual(to(single, at(3)), ['u2 has joined the chat']);
  single.length = 0;

  gw.handleDatagram(600, at(2), enc('hello'));
  chat.handle(1, { type: 'say', ref: 5, room: '#lobby', body: 'hey', action: false }, 700);
  // The sender's own copy is the same line (as the original echoes it): one call for all three.
  assert.deepEqual(grouped.splice(0), [
    { to: [1, 2, 3], line: 'u1: hello' },
    { to: [1, 2, 3], line: 'olga: hey' },
  ]);
  assert.deepEqual(single, []);
  assert.deepEqual(obrol.filter((d) => d.msg.type === 'message').map((d) => (d.msg.type === 'message' ? d.msg.body : '')), ['hello', 'hey']);
  assert.equal(gw.stats.datagramsOut, 1 + 2 + 3 + 2 * 3, 'three join lines, then two lines to three');

  // u0 and u2 are silent past idleMs: they leave the chat and the group, one after the other.
  gw.handleTimeout(1200);
  assert.deepEqual(grouped.splice(0), [
    { to: [2, 3], line: 'u0 has left the chat (timed out)' },
    { to: [2], line: 'u2 has left the chat (timed out)' },
  ]);
  gw.handleDatagram(1300, at(2), enc('bye'));
  assert.deepEqual(grouped.splice(0), [{ to: [2], line: 'u1: bye' }]);
  assert.deepEqual(single, []);
  store.close();
});

test('gateway: through a sink, a line goes to every member as the same bytes, one object', () => {
  const { chat, gw, drain } = setup({}, true);
  const members = [at(1), at(2), at(3), at(4)];
  members.forEach((a, i) => gw.handleDatagram(0, a, enc(`u${i}`)));
  drain();
  gw.handleDatagram(1, members[0]!, enc('hello all'));
  const out = drain();
  assert.equal(out.length, 4);
  assert.ok(out.every((t) => t.data === out[0]!.data), 'one Uint8Array for the whole room');
  assert.deepEqual(out.map((t) => dec(t.data)), Array(4).fill('u0: hello all'));
  assert.equal(chat.said.length, 1);
});

for (const sink of [false, true])
test(`gateway: a taken or invalid name gets exactly the original reply, only when no larger than the datagram, and no state${sink ? ', through a sink' : ''}`, () => {
  const { chat, gw, drain } = setup({}, sink);
  const longName = 'a_rather_long_name_xyz1'; // 23 bytes: a reply of 22 does not amplify
  gw.handleDatagram(0, at(1), enc(longName));
  gw.handleDatagram(0, at(2), enc('alice'));
  drain();

  const c = at(3);
  gw.handleDatagram(1, c, enc(longName.toUpperCase()));
  let out = drain();
  assert.equal(out.length, 1);
  assert.deepEqual(out[0]!.to, c);
  assert.deepEqual([...out[0]!.data], [...Buffer.from('nama ini sudah diambil', 'utf8')]);
  assert.equal(out[0]!.data.length, 22);
  assert.equal(LEGACY_TAKEN_REPLY, 'nama ini sudah diambil');

  // A short taken name would get 22 bytes for 5: it is dropped instead (counted).
  gw.handleDatagram(2, c, enc('ALICE'));
  assert.equal(drain().length, 0);
  assert.equal(gw.stats.repliesSuppressed, 1);

  // Invalid names and non-UTF-8 names get the same (only) refusal the original protocol has.
  gw.handleDatagram(3, c, enc('not a valid name: has spaces'));
  gw.handleDatagram(3, c, new Uint8Array(30).fill(0xc0));
  out = drain();
  assert.deepEqual(out.map((t) => dec(t.data)), [TAKEN, TAKEN]);

  // Nothing was kept: the address may still register, as the original client would try.
  assert.equal(gw.nameOf(c), undefined);
  gw.handleDatagram(4, c, enc('carol'));
  assert.deepEqual(to(drain(), c), ['carol has joined the chat']);
  assert.equal(gw.stats.namesRefused, 4);
  assert.equal(chat.members.size, 3);
});

test('gateway: an unregistered address never gets more than one reply, nor more bytes, per datagram (property)', () => {
  const names = ['alice', 'a_rather_long_name_xyz1', 'bob'];
  const datagram = fc.oneof(
    fc.constantFrom(...names, ...names.map((n) => n.toUpperCase()), 'x', '', 'with space but long enough to answer'),
    fc.string({ maxLength: 40 }),
    fc.uint8Array({ maxLength: 40 }),
  );
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 6 }), datagram), { maxLength: 60 }), (seq) => {
      const { gw, drain } = setup({ burst: 1000 });
      // Three names taken by other addresses first.
      names.forEach((n, i) => gw.handleDatagram(0, at(100 + i), enc(n)));
      drain();
      let now = 1;
      for (const [port, d] of seq) {
        const a = at(port);
        const bytes = typeof d === 'string' ? enc(d) : d;
        const wasRegistered = gw.nameOf(a) !== undefined;
        gw.handleDatagram(now++, a, bytes);
        const replies = drain().filter((t) => t.to.port === port);
        if (!wasRegistered && gw.nameOf(a) === undefined) {
          assert.ok(replies.length <= 1, `${replies.length} replies`);
          for (const r of replies) assert.ok(r.data.length <= bytes.length, `${r.data.length} bytes for ${bytes.length}`);
        }
      }
    }),
    { numRuns: 300 },
  );
});

test('splitLine: at most 1024 bytes per datagram, on grapheme boundaries, each with the head, re-joining exactly', () => {
  for (const n of [1100, 5000, 16 * 1024]) {
    const body = mixedText(n);
    const d = splitLine('alice: ', body);
    assert.ok(d.length >= Math.ceil(Buffer.byteLength(body) / LEGACY_DATAGRAM_MAX));
    checkSplit(d, 'alice: ', body, { graphemeSafe: true });
  }
  // Exactly 1024 bytes is one datagram; one more byte makes two.
  assert.equal(splitLine('bob: ', 'x'.repeat(1019)).length, 1);
  assert.equal(splitLine('bob: ', 'x'.repeat(1020)).length, 2);
  // Long runs of 3- and 4-byte characters with no spaces.
  checkSplit(splitLine('bob: ', '你'.repeat(2000)), 'bob: ', '你'.repeat(2000), { graphemeSafe: true });
  checkSplit(splitLine('bob: ', '🌍'.repeat(1000)), 'bob: ', '🌍'.repeat(1000), { graphemeSafe: true });
  // A decomposed accent stays with its letter.
  const decomposed = 'e\u0301'.repeat(1000);
  checkSplit(splitLine('bob: ', decomposed), 'bob: ', decomposed, { graphemeSafe: true });
  // One grapheme cluster larger than a datagram (a letter with 700 combining marks) is cut between code points.
  const zalgo = 'a' + '\u0301'.repeat(700) + ' tail';
  checkSplit(splitLine('bob: ', zalgo), 'bob: ', zalgo, { graphemeSafe: false });
  // Prefers to cut after a space when one is near the end.
  const words = 'lorem ipsum dolor '.repeat(200);
  for (const d of splitLine('bob: ', words).slice(0, -1)) assert.ok(dec(d).endsWith(' '));
  // An action keeps its head on every piece.
  const act = mixedText(3000);
  checkSplit(splitLine('* bob ', act), '* bob ', act, { graphemeSafe: true });
});

test('splitLine: random Unicode text always splits into valid, bounded, re-joinable datagrams (property)', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme', minLength: 0, maxLength: 3000 }), fc.constantFrom('a: ', 'ñandú: ', '* 你好 ', '🌍🌍: '), (body, head) => {
      checkSplit(splitLine(head, body), head, body, { graphemeSafe: true });
    }),
    { numRuns: 200 },
  );
});

test('gateway: a long obrol message reaches legacy clients as several <name>: datagrams of at most 1024 bytes', () => {
  const { chat, gw, drain } = setup();
  chat.addObrol(7, 'olga');
  const a = at(1000);
  const b = at(1001);
  gw.handleDatagram(0, a, enc('alice'));
  gw.handleDatagram(0, b, enc('bob'));
  drain();
  const body = mixedText(5000);
  for (const sid of chat.members.keys()) {
    gw.deliver(sid, { type: 'message', room: '#lobby', id: 1, ts: 1, from: 'olga', body, action: false, history: false, ref: null });
  }
  const out = drain();
  for (const who of [a, b]) {
    const mine = out.filter((t) => t.to.port === who.port).map((t) => t.data);
    assert.ok(mine.length >= 5, `${mine.length} datagrams`);
    checkSplit(mine, 'olga: ', body, { graphemeSafe: true });
  }
  assert.equal(gw.stats.linesSplit, 1, 'a broadcast is formatted once for every legacy recipient');
});

test('gateway: silent clients expire as timed out; any datagram keeps a client alive', () => {
  const { chat, gw, drain } = setup({ idleMs: 1000 });
  chat.addObrol(7, 'olga');
  const a = at(1000);
  const b = at(1001);
  assert.equal(gw.nextDeadline(), null);
  gw.handleDatagram(0, a, enc('alice'));
  gw.handleDatagram(100, b, enc('bob'));
  assert.equal(gw.nextDeadline(), 1000);
  gw.handleDatagram(900, a, new Uint8Array(0)); // an empty line still shows alice is there
  assert.equal(gw.nextDeadline(), 1100);
  drain();
  gw.handleTimeout(1099);
  assert.equal(gw.clientCount, 2);
  gw.handleTimeout(1100);
  assert.deepEqual(chat.calls.filter((c) => c.startsWith('disconnect')), [`disconnect -2 ${LeaveReason.TimedOut}`]);
  assert.equal(gw.nameOf(b), undefined);
  const left = chat.obrol.at(-1)!.msg;
  assert.ok(left.type === 'left' && left.name === 'bob' && left.why === LeaveReason.TimedOut);
  assert.deepEqual(to(drain(), a), ['bob has left the chat (timed out)']);
  assert.equal(gw.nextDeadline(), 1900);
  gw.handleTimeout(5000);
  assert.equal(gw.clientCount, 0);
  assert.equal(gw.nextDeadline(), null);
  assert.equal(gw.stats.expired, 2);
  // An expired address is a stranger again: its next datagram is a name.
  gw.handleDatagram(6000, b, enc('hello'));
  assert.equal(gw.nameOf(b), 'hello');
});

test('gateway: per-address token bucket, for registered and unregistered addresses; the stranger table is bounded', () => {
  const { chat, gw } = setup({ burst: 5, ratePerSec: 2, maxBuckets: 2 });
  const a = at(1000);
  gw.handleDatagram(0, a, enc('alice')); // token 1 of 5
  for (let i = 0; i < 10; i++) gw.handleDatagram(0, a, enc(`m${i}`));
  assert.equal(chat.said.length, 4);
  assert.equal(gw.stats.rateLimited, 6);
  gw.handleDatagram(1000, a, enc('later')); // 2 tokens refilled after 1 s
  gw.handleDatagram(1000, a, enc('later2'));
  gw.handleDatagram(1000, a, enc('later3'));
  assert.deepEqual(chat.said.slice(4).map((s) => s.body), ['later', 'later2']);

  // Name attempts from a stranger are limited the same way.
  const s = at(2000);
  const before = chat.calls.length;
  for (let i = 0; i < 20; i++) gw.handleDatagram(5000, s, enc('x x')); // invalid: stays a stranger
  assert.equal(chat.calls.length - before, 5, 'only the burst reaches the chat core');
  assert.equal(gw.stats.namesRefused, 5);
  // With room for only two tracked strangers, the least recently heard is forgotten (and starts afresh).
  gw.handleDatagram(5000, at(2001), enc('x x'));
  gw.handleDatagram(5000, at(2002), enc('x x'));
  gw.handleDatagram(5000, s, enc('x x'));
  assert.equal(gw.stats.namesRefused, 8);
});

test('gateway: the client table is bounded, in total and per IP', () => {
  const { gw, drain } = setup({ maxClients: 3, clientsPerIp: 2 });
  gw.handleDatagram(0, at(1, '10.0.0.1'), enc('a1'));
  gw.handleDatagram(0, at(2, '10.0.0.1'), enc('a2'));
  gw.handleDatagram(0, at(3, '10.0.0.1'), enc('a3_with_a_name_long_enough'));
  assert.equal(gw.nameOf(at(3, '10.0.0.1')), undefined);
  gw.handleDatagram(0, at(1, '10.0.0.2'), enc('b1'));
  gw.handleDatagram(0, at(2, '10.0.0.2'), enc('b2_with_a_name_long_enough'));
  assert.equal(gw.clientCount, 3);
  const out = drain();
  assert.deepEqual(to(out, at(3, '10.0.0.1')), [TAKEN]);
  assert.deepEqual(to(out, at(2, '10.0.0.2')), [TAKEN]);
});

test('parseLegacyLine reads every original line and obrol gateway line', () => {
  assert.deepEqual(parseLegacyLine(TAKEN), { type: 'taken' });
  assert.deepEqual(parseLegacyLine('bob has joined the chat'), { type: 'joined', name: 'bob' });
  assert.deepEqual(parseLegacyLine('bob has left the chat'), { type: 'left', name: 'bob', why: 'quit', reason: '' });
  assert.deepEqual(parseLegacyLine('bob has left the chat (timed out)'), { type: 'left', name: 'bob', why: 'timeout', reason: '' });
  assert.deepEqual(parseLegacyLine('bob has left the chat (bye now)'), { type: 'left', name: 'bob', why: 'quit', reason: 'bye now' });
  assert.deepEqual(parseLegacyLine('bob: hi: there'), { type: 'message', from: 'bob', body: 'hi: there', action: false });
  assert.deepEqual(parseLegacyLine('bob: I has joined the chat'), { type: 'message', from: 'bob', body: 'I has joined the chat', action: false });
  assert.deepEqual(parseLegacyLine('* bob says: hi'), { type: 'message', from: 'bob', body: 'says: hi', action: true });
  assert.deepEqual(parseLegacyLine('john doe: hi'), { type: 'message', from: 'john doe', body: 'hi', action: false });
  assert.deepEqual(parseLegacyLine('something else'), { type: 'unknown', text: 'something else' });
});

// ---- End to end: the real server with --legacy, original clients and obrol clients -------------

test('e2e: original and obrol clients share #lobby: joins, messages, actions, Unicode, unique names', async () => {
  const server = await startServer(['--legacy']);
  const originals: OriginalClient[] = [];
  const open = async (): Promise<OriginalClient> => {
    const c = await OriginalClient.open(server.port);
    originals.push(c);
    return c;
  };
  try {
    const olga = await open();
    assert.equal(await olga.join('olga'), 'joined');
    const alice = join('alice', server.port);
    await alice.waitFor('alice has joined the chat');
    await olga.waitFor('alice has joined the chat');
    const oleg = await open();
    assert.equal(await oleg.join('oleg'), 'joined');
    await alice.waitFor('oleg has joined the chat');
    await olga.waitFor('oleg has joined the chat');

    olga.send('hi 🌍 你好 ñandú');
    await alice.waitFor('olga: hi 🌍 你好 ñandú');
    await olga.waitFor('olga: hi 🌍 你好 ñandú'); // the sender gets its own line, as in the original
    await oleg.waitFor('olga: hi 🌍 你好 ñandú');
    alice.send('héllo wörld 👨‍👩‍👧‍👦 🇮🇩');
    await olga.waitFor('alice: héllo wörld 👨‍👩‍👧‍👦 🇮🇩');
    await oleg.waitFor('alice: héllo wörld 👨‍👩‍👧‍👦 🇮🇩');
    alice.send('/me waves');
    await olga.waitFor('* alice waves');

    // One namespace across both protocols: an obrol client cannot take an original client's name…
    const olga2 = join('OLGA', server.port);
    assert.equal((await olga2.exited).code, 2);
    assert.match(olga2.stderr.join('\n'), /name rejected/);
    // …and an original client cannot take an obrol client's. A name datagram shorter than the
    // 22-byte reply gets no reply at all (the server never amplifies to an unregistered address).
    const mallory = await open();
    mallory.send('alice');
    await sleep(500);
    assert.equal(mallory.lines.length, 0, mallory.lines.join("\n"));
    const longName = 'a_rather_long_name_xyz1';
    const lng = join(longName, server.port);
    await lng.waitFor(`${longName} has joined the chat`);
    assert.equal(await mallory.join(longName.toUpperCase()), 'taken');
    assert.deepEqual([...mallory.datagrams[0]!], [...Buffer.from('nama ini sudah diambil')]);
    // As the original client does, it tries another name.
    assert.equal(await mallory.join('mallory'), 'joined');
    await alice.waitFor('mallory has joined the chat');
    // Original clients' messages are history like any other; original clients get no replay (their
    // protocol has none).
    const late = join('late', server.port);
    await late.waitFor(/^\[history \d\d:\d\d\] olga: hi 🌍 你好 ñandú$/);
    late.end();
    assert.equal((await late.exited).code, 0);
    assert.ok(!mallory.lines.some((l) => l.includes('ñandú')), mallory.lines.join('\n'));

    lng.end();
    alice.end();
    assert.equal((await lng.exited).code, 0, lng.stderr.join('\n'));
    assert.equal((await alice.exited).code, 0, alice.stderr.join('\n'));
    await olga.waitFor('alice has left the chat');
    for (const c of originals) {
      assert.equal(c.invalid, 0);
      for (const d of c.datagrams) assert.ok(d.length <= LEGACY_DATAGRAM_MAX);
    }
  } finally {
    await Promise.all(originals.map((c) => c.close()));
    await server.stop();
  }
});

test('e2e: a 5000-byte obrol message reaches original clients as <name>: datagrams of at most 1024 bytes that re-join', async () => {
  const server = await startServer(['--legacy']);
  const olga = await OriginalClient.open(server.port);
  try {
    assert.equal(await olga.join('olga'), 'joined');
    const alice = join('alice', server.port);
    await olga.waitFor('alice has joined the chat');
    const body = mixedText(5000);
    alice.send(body);
    alice.send('END');
    await olga.waitFor('alice: END');
    await alice.waitFor(`alice: ${body}`); // obrol clients get it whole
    const from = olga.lines.indexOf('alice has joined the chat') + 1;
    const end = olga.lines.indexOf('alice: END');
    const pieces = olga.datagrams.slice(from, end);
    assert.ok(pieces.length >= 5, `${pieces.length} datagrams`);
    checkSplit(pieces, 'alice: ', body, { graphemeSafe: true });
    alice.end();
    assert.equal((await alice.exited).code, 0, alice.stderr.join('\n'));
  } finally {
    await olga.close();
    await server.stop();
  }
});

test('e2e: a silent original client times out and obrol clients see it leave', async () => {
  const server = await startServer(['--legacy', '--legacy-idle', '1']);
  const sleepy = await OriginalClient.open(server.port);
  try {
    const alice = join('alice', server.port);
    await alice.waitFor('alice has joined the chat');
    assert.equal(await sleepy.join('sleepy'), 'joined');
    await alice.waitFor('sleepy has joined the chat');
    await alice.waitFor('sleepy has left the chat (timed out)', 5_000);
    // Forgotten: its next datagram is a name again.
    assert.equal(await sleepy.join('sleepy2'), 'joined');
    alice.end();
    assert.equal((await alice.exited).code, 0, alice.stderr.join('\n'));
  } finally {
    await sleepy.close();
    await server.stop();
  }
});

test('e2e: without --legacy the server ignores plain-text datagrams', async () => {
  const server = await startServer();
  const c = await OriginalClient.open(server.port);
  try {
    c.send('a_rather_long_name_xyz1');
    await sleep(300);
    assert.deepEqual(c.lines, []);
  } finally {
    await c.close();
    await server.stop();
  }
});

// ---- End to end: `obrol join --legacy` against an independent original server ------------------

test('e2e: obrol join --legacy chats with original clients on an original server', async () => {
  const srv = await OriginalServer.start();
  const orig = await OriginalClient.open(srv.port);
  const dir = tempDir();
  const env = { OBROL_CONFIG_DIR: dir.path };
  try {
    assert.equal(await orig.join('orig'), 'joined');
    const leo = run(['join', '--legacy', `leo@127.0.0.1:${srv.port}`], env);
    await leo.waitFor('leo has joined the chat');
    await orig.waitFor('leo has joined the chat');
    orig.send('hi 🌍 你好');
    await leo.waitFor('orig: hi 🌍 你好');
    leo.send('halo dunia 👋 ñandú');
    await orig.waitFor('leo: halo dunia 👋 ñandú');
    await leo.waitFor('leo: halo dunia 👋 ñandú');
    leo.end();
    assert.equal((await leo.exited).code, 0, leo.stderr.join('\n'));
    assert.deepEqual(leo.stdout, ['leo has joined the chat', 'orig: hi 🌍 你好', 'leo: halo dunia 👋 ñandú']);
    // The name went out as exactly its bytes, the line as exactly its bytes.
    const fromLeo = srv.received.filter((r) => r.from !== srv.received[0]!.from).map((r) => r.data.toString('utf8'));
    assert.deepEqual(fromLeo, ['leo', 'halo dunia 👋 ñandú']);

    // JSON mode works the same way.
    const jay = run(['join', '--legacy', '--json', `jay@127.0.0.1:${srv.port}`], env);
    const joined = JSON.parse(await jay.waitFor(/"type":"joined"/)) as Record<string, unknown>;
    assert.equal(joined.from, 'jay');
    orig.send('ping');
    const msg = JSON.parse(await jay.waitFor(/"text":"ping"/)) as Record<string, unknown>;
    assert.equal(msg.from, 'orig');
    assert.equal(msg.own, false);
    jay.end();
    assert.equal((await jay.exited).code, 0, jay.stderr.join('\n'));

    // A taken name: exit 2 with the reason.
    const dup = run(['join', '--legacy', `orig@127.0.0.1:${srv.port}`], env);
    dup.end();
    assert.equal((await dup.exited).code, 2);
    assert.match(dup.stderr.join('\n'), /name rejected: the name orig is already taken/);

    // More than an original client can read is refused locally, with what to do.
    const big = run(['join', '--legacy', `big@127.0.0.1:${srv.port}`], env);
    await big.waitFor('big has joined the chat');
    big.send('x'.repeat(LEGACY_DATAGRAM_MAX + 1));
    big.end();
    assert.equal((await big.exited).code, 1);
    assert.match(big.stderr.join('\n'), /1025 bytes; original clients read at most 1024: split it/);
    assert.ok(!srv.received.some((r) => r.data.length > LEGACY_DATAGRAM_MAX));
  } finally {
    await orig.close();
    await srv.close();
    dir.remove();
  }
});

test('e2e: obrol join --legacy with no original server exits 1 after its timeout', async () => {
  const dir = tempDir();
  try {
    const p = run(['join', '--legacy', '--timeout', '1', 'leo@127.0.0.1:9'], { OBROL_CONFIG_DIR: dir.path });
    p.end();
    const r = await p.exited;
    assert.equal(r.code, 1);
    assert.match(p.stderr.join('\n'), /cannot join the original chat server at 127\.0\.0\.1:9/);
  } finally {
    dir.remove();
  }
});
