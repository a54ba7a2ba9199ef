// Codec properties: decode(encode(x)) == x, and arbitrary or mutated bytes never crash the decoder nor
// decode to an invalid value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decodeClientMsg,
  decodeServerMsg,
  encodeClientMsg,
  encodeServerMsg,
  ErrorCode,
  LeaveReason,
  roomMessageBodyAt,
  type ClientMsg,
  type ServerMsg,
} from '../src/wire/message.js';
import {
  decodePacket,
  encodeCookie,
  encodeHello,
  encodeHsFinish,
  encodeHsReply,
  encodeNatKeepalive,
  encodeReset,
  dataKeyPhase,
  dataPn,
  isDataPacket,
  isObrolDatagram,
  writeDataHeader,
  DATA_HEADER_LEN,
  PROTOCOL_VERSION,
  ResetCode,
  type Packet,
} from '../src/wire/packet.js';
import { Reader, Writer, WireError, utf8Bytes } from '../src/wire/buf.js';
import { HELLO_PADDED_SIZE, MEMBERS_PER_REPLY, MESSAGE_MAX_BYTES, NAME_MAX_CHARS, ROOMS_PER_REPLY, SHORT_TEXT_MAX_BYTES } from '../src/limits.js';

const text = (maxLength: number) => fc.string({ unit: 'binary', maxLength });
const u64 = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const varint = fc.oneof(fc.integer({ min: 0, max: 63 }), fc.integer({ min: 0, max: 2 ** 30 }), u64);
const errorCode = fc.constantFrom(...Object.values(ErrorCode));
const ref = fc.option(fc.integer({ min: 0, max: 2 ** 40 }), { nil: null });

const chosen = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER - 1 });
const optText = (n: number) => fc.option(text(n), { nil: null });

const clientMsg: fc.Arbitrary<ClientMsg> = fc.oneof(
  fc.record({ type: fc.constant('hello' as const), name: text(NAME_MAX_CHARS), resume: fc.boolean() }),
  fc.record({ type: fc.constant('say' as const), ref: chosen, room: text(20), body: text(300), action: fc.boolean() }),
  fc.record({ type: fc.constant('quit' as const), reason: text(50) }),
  fc.record({ type: fc.constant('join' as const), ref: chosen, room: text(20), since: fc.option(fc.integer({ min: 0, max: 2 ** 40 }), { nil: null }) }),
  fc.record({ type: fc.constant('part' as const), ref: chosen, room: text(20), reason: text(50) }),
  fc.record({ type: fc.constant('list' as const), ref: chosen }),
  fc.record({ type: fc.constant('who' as const), ref: chosen, room: text(20) }),
  fc.record({ type: fc.constant('msg' as const), ref: chosen, to: text(NAME_MAX_CHARS), body: text(300), action: fc.boolean() }),
  fc.record({ type: fc.constant('nick' as const), ref: chosen, name: text(NAME_MAX_CHARS) }),
  fc.record({ type: fc.constant('topic' as const), ref: chosen, room: text(20), topic: optText(90) }),
  fc.record({ type: fc.constant('away' as const), ref: chosen, text: text(50) }),
  fc.record({ type: fc.constant('history' as const), ref: chosen, room: optText(20), after: u64 }),
);

const serverMsg: fc.Arbitrary<ServerMsg> = fc.oneof(
  fc.record({
    type: fc.constant('welcome' as const),
    name: text(NAME_MAX_CHARS),
    messageMax: varint,
    floodBurst: varint,
    floodRate: varint,
    serverTime: u64,
  }),
  fc.record({ type: fc.constant('rejected' as const), code: errorCode, reason: text(80) }),
  fc.record({ type: fc.constant('joined' as const), room: text(20), name: text(NAME_MAX_CHARS), ts: u64 }),
  fc.record({
    type: fc.constant('left' as const),
    room: text(20),
    name: text(NAME_MAX_CHARS),
    why: fc.constantFrom(...Object.values(LeaveReason)),
    reason: text(40),
    ts: u64,
  }),
  fc.record({
    type: fc.constant('message' as const),
    room: text(20),
    id: varint,
    ts: u64,
    from: text(NAME_MAX_CHARS),
    body: text(300),
    action: fc.boolean(),
    history: fc.boolean(),
    ref,
  }),
  fc.record({
    type: fc.constant('private' as const),
    id: varint,
    ts: u64,
    from: text(NAME_MAX_CHARS),
    to: text(NAME_MAX_CHARS),
    body: text(300),
    action: fc.boolean(),
    history: fc.boolean(),
    ref,
  }),
  fc.record({ type: fc.constant('error' as const), code: errorCode, text: text(80), ref }),
  fc.record({ type: fc.constant('ok' as const), ref, text: text(80) }),
  fc.record({
    type: fc.constant('members' as const),
    ref,
    room: text(20),
    members: fc.array(fc.record({ name: text(NAME_MAX_CHARS), away: fc.boolean() }, { noNullPrototype: true }), { maxLength: MEMBERS_PER_REPLY }),
    last: fc.boolean(),
    omitted: fc.integer({ min: 0, max: 100_000 }),
  }),
  fc.record({
    type: fc.constant('rooms' as const),
    ref,
    rooms: fc.array(fc.record({ name: text(20), members: varint, topic: text(90) }, { noNullPrototype: true }), { maxLength: ROOMS_PER_REPLY }),
    last: fc.boolean(),
    omitted: fc.integer({ min: 0, max: 100_000 }),
  }),
  fc.record({ type: fc.constant('topic' as const), ref, room: text(20), topic: text(90), by: text(NAME_MAX_CHARS), ts: u64 }),
  fc.record({ type: fc.constant('nick' as const), room: text(20), old: text(NAME_MAX_CHARS), name: text(NAME_MAX_CHARS), ts: u64 }),
  fc.record({ type: fc.constant('away' as const), room: text(20), name: text(NAME_MAX_CHARS), text: text(50), ts: u64 }),
  fc.record({ type: fc.constant('caughtup' as const), ref, room: optText(20), more: fc.boolean() }),
  fc.record({
    type: fc.constant('presence' as const),
    room: text(20),
    ts: u64,
    joined: fc.array(text(NAME_MAX_CHARS), { maxLength: 20 }),
    left: fc.array(
      fc.record({ name: text(NAME_MAX_CHARS), why: fc.constantFrom(...Object.values(LeaveReason)), reason: text(40) }, { noNullPrototype: true }),
      { maxLength: 20 },
    ),
  }),
);

const cid = fc.uint8Array({ minLength: 8, maxLength: 8 });
/** A packet's bytes and what decoding them must give. */
type Case = { bytes: Uint8Array; want: Partial<Packet> };
const packet: fc.Arbitrary<Case> = fc.oneof(
  fc.tuple(cid, fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 200 })).map(([c, k, n]): Case => ({
    bytes: encodeHello(c, k, n),
    want: { type: 'hello', version: PROTOCOL_VERSION, cid: c, cookie: k, noise: n },
  })),
  fc.tuple(cid, fc.uint8Array({ maxLength: 64 })).map(([c, k]): Case => ({
    bytes: encodeCookie(c, k),
    want: { type: 'cookie', version: PROTOCOL_VERSION, cid: c, cookie: k },
  })),
  fc.tuple(cid, cid, fc.uint8Array({ maxLength: 300 })).map(([c, s, n]): Case => ({
    bytes: encodeHsReply(c, s, n),
    want: { type: 'hs-reply', version: PROTOCOL_VERSION, clientCid: c, serverCid: s, noise: n },
  })),
  fc.tuple(cid, fc.uint8Array({ maxLength: 300 })).map(([c, n]): Case => ({
    bytes: encodeHsFinish(c, n),
    want: { type: 'hs-finish', version: PROTOCOL_VERSION, cid: c, noise: n },
  })),
  fc.tuple(cid, fc.constantFrom(...Object.values(ResetCode))).map(([c, code]): Case => ({
    bytes: encodeReset(c, code),
    want: { type: 'reset', version: PROTOCOL_VERSION, cid: c, code },
  })),
  fc.constant<Case>({ bytes: encodeNatKeepalive(), want: { type: 'nat-keepalive' } }),
  fc.tuple(cid, fc.constantFrom(0 as const, 1 as const), fc.integer({ min: 0, max: 0xffffffff }), fc.uint8Array({ minLength: 16, maxLength: 300 })).map(
    ([c, phase, pn, sealed]): Case => {
      const bytes = new Uint8Array(DATA_HEADER_LEN + sealed.length);
      writeDataHeader(bytes, phase, c, pn);
      bytes.set(sealed, DATA_HEADER_LEN);
      return { bytes, want: { type: 'data', keyPhase: phase, cid: c, pn, sealed } };
    },
  ),
);

/** Everything a decoded value must satisfy, whatever bytes it came from. */
function assertValidText(s: string, maxBytes: number): void {
  assert.equal(typeof s, 'string');
  assert.ok(utf8Bytes(s).length <= maxBytes, 'text within its limit');
  assert.ok(!/[\ud800-\udfff]/u.test(s), 'no lone surrogates');
}

function assertValidServerMsg(m: ServerMsg): void {
  switch (m.type) {
    case 'message':
      assertValidText(m.body, MESSAGE_MAX_BYTES);
      assert.ok(Number.isSafeInteger(m.id) && m.id >= 0);
      assert.ok(m.ref === null || (Number.isSafeInteger(m.ref) && m.ref >= 0));
      break;
    case 'error':
    case 'rejected':
      assert.ok(Object.values(ErrorCode).includes(m.code));
      assertValidText(m.type === 'error' ? m.text : m.reason, SHORT_TEXT_MAX_BYTES);
      break;
    case 'left':
      assert.ok(Object.values(LeaveReason).includes(m.why));
      break;
    default:
      break;
  }
}

test('varints round-trip at every length boundary', () => {
  for (const v of [0, 63, 64, 16383, 16384, 2 ** 30 - 1, 2 ** 30, Number.MAX_SAFE_INTEGER]) {
    const bytes = new Writer().varint(v).finish();
    assert.equal(new Reader(bytes).varint(), v);
  }
  assert.throws(() => new Reader(new Uint8Array([0x40])).varint(), WireError);
});

test('client messages round-trip', () => {
  fc.assert(fc.property(clientMsg, (m) => assert.deepEqual(decodeClientMsg(encodeClientMsg(m)), { ok: true, value: { ...m } })));
});

test('server messages round-trip', () => {
  fc.assert(fc.property(serverMsg, (m) => assert.deepEqual(decodeServerMsg(encodeServerMsg(m)), { ok: true, value: { ...m } })));
});

test('roomMessageBodyAt finds the body of exactly the live room messages decodeServerMsg reads, for any bytes', () => {
  const check = (b: Uint8Array): void => {
    const at = roomMessageBodyAt(b);
    const d = decodeServerMsg(b);
    if (d.ok && d.value.type === 'message' && !d.value.history) {
      const body = utf8Bytes(d.value.body);
      assert.ok(at > 0);
      assert.deepEqual(b.subarray(at, at + body.length), body);
    } else if (d.ok) {
      assert.equal(at, -1);
    } else {
      // Bytes the decoder refuses after the flags (a bad ref, say) may still show a body: it only has to lie inside.
      assert.ok(at === -1 || (at > 0 && at <= b.length));
    }
  };
  fc.assert(fc.property(serverMsg, (m) => check(encodeServerMsg(m))), { numRuns: 2000 });
  fc.assert(
    fc.property(serverMsg, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat({ max: 8 }), (m, pos, byte, cut) => {
      const b = encodeServerMsg(m).slice();
      b[pos % b.length] = byte;
      check(b.subarray(0, Math.max(0, b.length - cut)));
    }),
    { numRuns: 2000 },
  );
  assert.equal(roomMessageBodyAt(new Uint8Array(0)), -1);
});

test('random bytes never crash the message decoders and never decode to invalid values', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (b) => {
      const c = decodeClientMsg(b);
      if (c.ok && c.value.type === 'say') assertValidText(c.value.body, MESSAGE_MAX_BYTES);
      const s = decodeServerMsg(b);
      if (s.ok) assertValidServerMsg(s.value);
    }),
    { numRuns: 5000 },
  );
});

test('mutated messages never crash the decoder and stay valid', () => {
  fc.assert(
    fc.property(serverMsg, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat({ max: 8 }), (m, pos, byte, cut) => {
      const b = encodeServerMsg(m).slice();
      b[pos % b.length] = byte;
      const d = decodeServerMsg(b.subarray(0, Math.max(0, b.length - cut)));
      if (d.ok) assertValidServerMsg(d.value);
    }),
    { numRuns: 5000 },
  );
});

test('invalid UTF-8 text is refused with bad-utf8', () => {
  // say with body = [0xC0 0xAF] (an overlong '/')
  const bytes = new Writer().u8(0x02).varint(1).text('#lobby').lenBytes(new Uint8Array([0xc0, 0xaf])).u8(0).finish();
  const d = decodeClientMsg(bytes);
  assert.equal(d.ok, false);
  if (!d.ok) assert.equal(d.error.code, 'bad-utf8');
});

test('a say whose ref could not be echoed (ref+1 past 2^53-1) is refused when decoded', () => {
  const bytes = new Writer().u8(0x02).varint(Number.MAX_SAFE_INTEGER).text('#lobby').text('hi').u8(0).finish();
  const d = decodeClientMsg(bytes);
  assert.equal(d.ok, false);
  if (!d.ok) assert.equal(d.error.code, 'bad-varint');
});

test('a message over the size limit is refused, not cut', () => {
  const body = 'x'.repeat(MESSAGE_MAX_BYTES + 1);
  const d = decodeClientMsg(encodeClientMsg({ type: 'say', ref: 0, room: '#lobby', body, action: false }));
  assert.equal(d.ok, false);
  if (!d.ok) assert.equal(d.error.code, 'bad-length');
});

test('packets round-trip and every obrol packet starts with a byte that cannot start UTF-8', () => {
  fc.assert(
    fc.property(packet, ({ bytes, want }) => {
      assert.ok(bytes[0]! >= 0xf5, 'first byte in 0xF5..0xFF');
      assert.ok(isObrolDatagram(bytes));
      const d = decodePacket(bytes);
      assert.ok(d.ok, d.ok ? '' : d.error.message);
      for (const [k, v] of Object.entries(want)) assert.deepEqual((d.value as Record<string, unknown>)[k], v, k);
    }),
  );
});

test('HELLO is always padded to exactly the padded size, and other sizes are refused', () => {
  const h = encodeHello(new Uint8Array(8), new Uint8Array(20), new Uint8Array(32));
  assert.equal(h.length, HELLO_PADDED_SIZE);
  assert.equal(decodePacket(h.subarray(0, HELLO_PADDED_SIZE - 1)).ok, false);
  const bigger = new Uint8Array(HELLO_PADDED_SIZE + 1);
  bigger.set(h);
  assert.equal(decodePacket(bigger).ok, false);
});

test('a HELLO whose padding is not all zero is refused, wherever the nonzero byte is', () => {
  const h = encodeHello(new Uint8Array(8), new Uint8Array(20), new Uint8Array(32));
  assert.equal(decodePacket(h).ok, true);
  for (const at of [HELLO_PADDED_SIZE - 1, HELLO_PADDED_SIZE - 600, HELLO_PADDED_SIZE - 1000]) {
    const bad = h.slice();
    bad[at] = 0x80;
    const d = decodePacket(bad);
    assert.equal(d.ok, false);
    if (!d.ok) assert.equal(d.error.code, 'bad-value');
  }
});

test('random and mutated packets never crash the decoder', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 1300 }), (b) => {
      decodePacket(b);
    }),
    { numRuns: 5000 },
  );
  fc.assert(
    fc.property(packet, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat({ max: 20 }), ({ bytes }, pos, byte, cut) => {
      const b = bytes.slice();
      b[pos % b.length] = byte;
      const d = decodePacket(b.subarray(0, Math.max(0, b.length - cut)));
      if (d.ok && d.value.type === 'data') assert.ok(d.value.sealed.length >= 16);
      if (d.ok && d.value.type === 'hello') assert.equal(d.value.cid.length, 8);
    }),
    { numRuns: 5000 },
  );
});

test('no valid UTF-8 text is mistaken for an obrol packet', () => {
  fc.assert(fc.property(fc.string({ unit: 'binary', minLength: 1 }), (s) => assert.equal(isObrolDatagram(utf8Bytes(s)), false)));
});

test('wire: text is written as the varint length and the UTF-8 bytes, and read back, for any string (the ASCII fast paths included)', () => {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }); // a leading U+FEFF is text, not a mark
  const anyText = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 300 }), // any UTF-16, lone surrogates included
    fc.string({ unit: fc.integer({ min: 0, max: 0x7f }).map((c) => String.fromCharCode(c)), maxLength: 300 }),
    fc.tuple(fc.string({ maxLength: 80 }), fc.constantFrom('\ufeff', 'é', '😀', '\u{10ffff}', '\ud800'), fc.string({ maxLength: 80 })).map(([a, b, c]) => a + b + c),
  );
  fc.assert(
    fc.property(anyText, fc.nat({ max: 3 }), (s, before) => {
      const w = new Writer(4).zeros(before).text(s);
      const utf8 = utf8Bytes(s); // lone surrogates become U+FFFD, as TextEncoder does
      const expected = new Writer().zeros(before).varint(utf8.length).bytes(utf8).finish();
      assert.deepEqual(w.finish(), expected);
      const r = new Reader(w.finish());
      r.bytesN(before);
      assert.equal(r.text(100_000), decoder.decode(utf8));
      assert.equal(r.remaining, 0);
    }),
    { numRuns: 2000 },
  );
  // Bytes that are not UTF-8 are refused on the fast path's length too.
  assert.throws(() => new Reader(Uint8Array.of(2, 0x41, 0xff)).text(10), (e: unknown) => e instanceof WireError && e.code === 'bad-utf8');
});

test('isDataPacket, dataKeyPhase and dataPn read exactly what decodePacket reads, for any bytes', () => {
  const check = (b: Uint8Array): void => {
    const d = decodePacket(b);
    const isData = d.ok && d.value.type === 'data';
    assert.equal(isDataPacket(b), isData);
    if (d.ok && d.value.type === 'data') {
      assert.equal(dataKeyPhase(b), d.value.keyPhase);
      assert.equal(dataPn(b), d.value.pn);
      assert.deepEqual(b.subarray(1, 9), d.value.cid);
    }
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), check), { numRuns: 2000 });
  // And DATA-typed bytes of every length around the header and tag, with packet numbers up to 2^32 - 1.
  fc.assert(
    fc.property(fc.constantFrom(0xfc, 0xfd), fc.uint8Array({ minLength: 8, maxLength: 8 }), fc.nat({ max: 0xffffffff }), fc.nat(40), (type, cid, pn, rest) => {
      const b = new Uint8Array(DATA_HEADER_LEN + rest);
      writeDataHeader(b, (type & 1) as 0 | 1, cid, pn);
      check(b);
      assert.equal(isDataPacket(b), rest >= 16);
    }),
    { numRuns: 500 },
  );
});
