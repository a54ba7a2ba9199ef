// Name and room rules: what is accepted, each rejection with its reason, and the case/NFC key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkName, checkRoom, foldKey } from '../src/chat/names.js';
import { ErrorCode } from '../src/wire/message.js';
import { NAME_MAX_CHARS, ROOM_MAX_CHARS, SHORT_TEXT_MAX_BYTES } from '../src/limits.js';

const cps = (s: string) => [...s].length;
const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

test('names: names in many scripts, with accents and emoji, are accepted as NFC', () => {
  const valid = [
    'alice', 'a', '_', 'jean-luc', "o'brien", 'x.y', 'a#b', 'a/b', 'Zoë', 'Ärger', 'Łukasz', 'Ελένη',
    'Дмитрий', '山田', '김민준', 'محمد', 'emoji🙂', '🙂', '❤️', '🇮🇩', '👍🏽', 'x'.repeat(NAME_MAX_CHARS),
    '🙂'.repeat(NAME_MAX_CHARS), '山'.repeat(NAME_MAX_CHARS),
  ];
  for (const n of valid) {
    const r = checkName(n);
    assert.ok(r.ok, `${n}: ${r.ok ? '' : r.reason}`);
    if (r.ok) assert.equal(r.name, n.normalize('NFC'));
  }
  const decomposed = checkName('O\u0308sten');
  assert.ok(decomposed.ok);
  if (decomposed.ok) assert.equal(decomposed.name, '\u00d6sten', 'registered as NFC');
});

test('names: each rejection class carries its code and reason', () => {
  const cases: [string, ErrorCode, string][] = [
    ['', ErrorCode.NameInvalid, 'a name cannot be empty'],
    ['   ', ErrorCode.NameInvalid, 'a name cannot be empty'],
    ['\u3000\t', ErrorCode.NameInvalid, 'a name cannot be empty'],
    ['x'.repeat(33), ErrorCode.NameTooLong, 'a name is at most 32 characters; this one has 33'],
    ['🙂'.repeat(33), ErrorCode.NameTooLong, 'a name is at most 32 characters; this one has 33'],
    ['a b', ErrorCode.NameInvalid, 'names cannot contain spaces'],
    [' alice', ErrorCode.NameInvalid, 'names cannot contain spaces'],
    ['tab\tx', ErrorCode.NameInvalid, 'names cannot contain U+0009 (control character)'],
    ['new\nline', ErrorCode.NameInvalid, 'names cannot contain U+000A (control character)'],
    ['bell\u0007', ErrorCode.NameInvalid, 'names cannot contain U+0007 (control character)'],
    ['del\u007f', ErrorCode.NameInvalid, 'names cannot contain U+007F (control character)'],
    ['nel\u0085', ErrorCode.NameInvalid, 'names cannot contain U+0085 (control character)'],
    ['zero\u200bwidth', ErrorCode.NameInvalid, 'names cannot contain U+200B (invisible formatting character)'],
    ['evil\u202eplh', ErrorCode.NameInvalid, 'names cannot contain U+202E (invisible formatting character)'],
    ['soft\u00adhyphen', ErrorCode.NameInvalid, 'names cannot contain U+00AD (invisible formatting character)'],
    ['bom\ufeff', ErrorCode.NameInvalid, 'names cannot contain U+FEFF (invisible formatting character)'],
    ['lone\ud800', ErrorCode.NameInvalid, 'names cannot contain U+D800 (lone surrogate)'],
    ['priv\ue000', ErrorCode.NameInvalid, 'names cannot contain U+E000 (private-use character)'],
    ['plane15\u{f0000}', ErrorCode.NameInvalid, 'names cannot contain U+F0000 (private-use character)'],
    ['gap\u0378', ErrorCode.NameInvalid, 'names cannot contain U+0378 (unassigned character)'],
    ['non\uffff', ErrorCode.NameInvalid, 'names cannot contain U+FFFF (unassigned character)'],
    ['line\u2028x', ErrorCode.NameInvalid, 'names cannot contain U+2028 (line separator)'],
    ['para\u2029x', ErrorCode.NameInvalid, 'names cannot contain U+2029 (paragraph separator)'],
    ['no\u00a0break', ErrorCode.NameInvalid, 'names cannot contain U+00A0 (space character)'],
    ['ideo\u3000sp', ErrorCode.NameInvalid, 'names cannot contain U+3000 (space character)'],
    ['a:b', ErrorCode.NameInvalid, 'names cannot contain ":"'],
    ['bob:', ErrorCode.NameInvalid, 'names cannot contain ":"'],
    ['me@host', ErrorCode.NameInvalid, 'names cannot contain "@"'],
    ['a,b', ErrorCode.NameInvalid, 'names cannot contain ","'],
    ['*star', ErrorCode.NameInvalid, 'names cannot contain "*"'],
    ['hey!', ErrorCode.NameInvalid, 'names cannot contain "!"'],
    ['#room', ErrorCode.NameInvalid, 'a name cannot start with "#" (that marks a room)'],
    ['/cmd', ErrorCode.NameInvalid, 'a name cannot start with "/" (that marks a command)'],
  ];
  for (const [name, code, reason] of cases) {
    const r = checkName(name);
    assert.deepEqual(r, { ok: false, code, reason }, JSON.stringify(name));
  }
});

test('names: the key folds case and normalisation, and nothing else', () => {
  const key = (n: string) => {
    const r = checkName(n);
    assert.ok(r.ok, n);
    return r.ok ? r.key : '';
  };
  assert.equal(new Set(['Ärger', 'äRGER', 'A\u0308rger', 'a\u0308RGER', 'ÄRGER'].map(key)).size, 1);
  assert.equal(key('Alice'), key('alice'));
  assert.equal(key('ΕΛΈΝΗ'), key('ελένη'));
  assert.notEqual(key('alice'), key('alicé'));
  assert.notEqual(key('bob'), key('b0b'));
  assert.equal(key('Ärger'), foldKey('A\u0308RGER'));
});

test('names: checkName never throws; accepted names are NFC, 1..32 code points, with no space, control or reserved character', () => {
  // Plain strings rarely hit the interesting classes, so also draw from a hostile alphabet.
  const tricky = fc.constantFrom(
    'a', 'Z', 'é', 'e\u0301', 'A\u0308', 'ß', 'İ', '山', '🙂', '\u200d', '\ufe0f', ' ', '\t', '\u00a0', '\u2028', '\u200b',
    '\ud800', '\udc00', '\ue000', '\u0378', ':', '@', ',', '*', '!', '#', '/', '\u0000', '\u0301',
  );
  const input = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.string({ unit: 'grapheme', maxLength: 40 }),
    fc.array(tricky, { maxLength: 40 }).map((a) => a.join('')),
  );
  fc.assert(
    fc.property(input, (s) => {
      const r = checkName(s);
      if (!r.ok) {
        assert.ok(r.code === ErrorCode.NameInvalid || r.code === ErrorCode.NameTooLong);
        assert.ok(r.reason.length > 0 && bytes(r.reason) <= SHORT_TEXT_MAX_BYTES);
        return;
      }
      assert.equal(r.name, r.name.normalize('NFC'));
      assert.ok(cps(r.name) >= 1 && cps(r.name) <= NAME_MAX_CHARS);
      assert.ok(!/[\p{White_Space}\p{C}\p{Zl}\p{Zp}:@,*!]/u.test(r.name), JSON.stringify(r.name));
      assert.ok(!r.name.startsWith('#') && !r.name.startsWith('/'));
      assert.equal(r.key, foldKey(r.name));
      // Any normalisation of an accepted name is the same name.
      assert.deepEqual(checkName(r.name.normalize('NFD')), r);
    }),
    { numRuns: 5000 },
  );
});

test('rooms: start with #, 2..64 code points, no spaces, commas or invisible characters; keys fold case', () => {
  for (const room of ['#lobby', '#a', '#Rust', '#日本語', '#🙂', '#a:b', '#x-y_z', '##ops', '#' + 'x'.repeat(ROOM_MAX_CHARS - 1)]) {
    const r = checkRoom(room);
    assert.ok(r.ok, `${room}: ${r.ok ? '' : r.reason}`);
  }
  assert.deepEqual(checkRoom('#Lobby'), { ok: true, name: '#Lobby', key: '#lobby' });
  assert.deepEqual(checkRoom('#A\u0308rger'), { ok: true, name: '#Ärger', key: '#ärger' });
  const bad: [string, string][] = [
    ['lobby', 'a room name starts with "#", e.g. #lobby'],
    ['', 'a room name starts with "#", e.g. #lobby'],
    ['#', 'a room name needs something after "#", e.g. #lobby'],
    ['#' + 'x'.repeat(ROOM_MAX_CHARS), `a room name is at most ${ROOM_MAX_CHARS} characters; this one has ${ROOM_MAX_CHARS + 1}`],
    ['#a b', 'room names cannot contain spaces'],
    ['#a,#b', 'room names cannot contain ","'],
    ['#a\u0007', 'room names cannot contain U+0007 (control character)'],
    ['#a\u200b', 'room names cannot contain U+200B (invisible formatting character)'],
    ['#a\u3000', 'room names cannot contain U+3000 (space character)'],
  ];
  for (const [room, reason] of bad) assert.deepEqual(checkRoom(room), { ok: false, code: ErrorCode.BadRequest, reason }, JSON.stringify(room));
});

test('rooms: checkRoom never throws; accepted rooms are NFC and within bounds', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (s) => {
      const r = checkRoom('#' + s);
      if (!r.ok) return assert.ok(bytes(r.reason) <= SHORT_TEXT_MAX_BYTES);
      assert.equal(r.name, r.name.normalize('NFC'));
      assert.ok(cps(r.name) >= 2 && cps(r.name) <= ROOM_MAX_CHARS);
      assert.ok(!/[\p{White_Space}\p{C},]/u.test(r.name));
    }),
    { numRuns: 3000 },
  );
});

test('foldKey: the ASCII fast path folds exactly as NFC, lower case, NFC does', () => {
  const slow = (s: string) => s.normalize('NFC').toLowerCase().normalize('NFC');
  fc.assert(fc.property(fc.string({ unit: 'grapheme-ascii' }), (s) => assert.equal(foldKey(s), slow(s))), { numRuns: 2000 });
  fc.assert(fc.property(fc.string({ unit: 'binary' }), (s) => assert.equal(foldKey(s), slow(s))), { numRuns: 2000 });
  for (const s of ['ALICE', 'Émile', 'E\u0301MILE', 'ǅ', 'İstanbul', 'ß']) assert.equal(foldKey(s), slow(s));
});
