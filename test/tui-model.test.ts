// The full-screen client's model, without a terminal: wrapping and widths, the line editor (history and
// completion), windows with activity and highlights, scrollback and paging, pending messages, day
// changes, and the key decoder (including bracketed paste split across reads).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fit, graphemes, nickColour, width, wrap, wrapSegs } from '../src/tui/text.js';
import { LineEditor } from '../src/tui/editor.js';
import { Activity, ChatView, SCROLLBACK_LINES } from '../src/tui/view.js';
import { KeyDecoder } from '../src/tui/keys.js';
import type { ChatEvent } from '../src/client/client.js';

const rowText = (r: { text: string }[]) => r.map((s) => s.text).join('');

test('text: widths of wide characters, emoji and combining marks; wrapping never splits a grapheme', () => {
  assert.equal(width('日本語'), 6);
  assert.equal(width('👍🏽'), 2);
  assert.equal(width('e\u0301'), 1);
  assert.equal(width('é'), 1);
  assert.deepEqual(wrap('hello world this is a test', 10), ['hello', 'world this', 'is a test']);
  assert.deepEqual(wrap('日本語のテキストです', 7), ['日本語', 'のテキ', 'ストで', 'す']);
  assert.deepEqual(wrap('aaaaaaaaaaaaaaaaaa', 8), ['aaaaaaaa', 'aaaaaaaa', 'aa']);
  assert.deepEqual(wrap('two\nlines', 20), ['two', 'lines']);
  assert.deepEqual(wrap('👍🏽👍🏽👍🏽', 5), ['👍🏽👍🏽', '👍🏽']);
  // Continuation rows are indented under the text.
  const rows = wrapSegs([{ text: '12:00 <al> ', style: 'time' }, { text: 'one two three four', style: 'plain' }], 20, 11);
  assert.deepEqual(rows.map(rowText), ['12:00 <al> one two', '           three', '           four']);
  assert.equal(nickColour('Alice', 12), nickColour('alice', 12), 'the colour ignores case');
  // Control characters from other people never reach the terminal.
  assert.deepEqual(wrap('a\x1b[2Jb\x07c\u009bd', 40), ['a\ufffd[2Jb\ufffdc\ufffdd']);
  assert.equal(fit('topic\x1b]0;owned\x07', 40), 'topic\ufffd]0;owned\ufffd');
});

test('text: any text wraps into rows no wider than the width that join back to the text', () => {
  const piece = fc.constantFrom('a', 'bb ', ' ', '日', '👍🏽', 'e\u0301', 'xyz', '  ', 'ß');
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 40 }), fc.integer({ min: 2, max: 30 }), (parts, cols) => {
      const text = parts.join('');
      const rows = wrap(text, cols);
      for (const r of rows) assert.ok(width(r) <= cols, `${JSON.stringify(r)} fits ${cols}`);
      // Only spaces are lost at breaks; no grapheme is split.
      assert.equal(rows.join('').replace(/ /g, ''), text.replace(/ /g, ''));
      for (const r of rows) assert.deepEqual(graphemes(r).join(''), r);
    }),
    { numRuns: 500 },
  );
});

test('editor: editing is grapheme aware; Ctrl+W, Ctrl+U, Ctrl+K; history keeps the draft', () => {
  const e = new LineEditor();
  e.insert('héllo 👍🏽 wörld');
  e.left();
  e.left();
  e.backspace();
  assert.equal(e.text, 'héllo 👍🏽 wöld');
  e.end();
  e.deleteWord();
  assert.equal(e.text, 'héllo 👍🏽 ');
  e.deleteWord();
  assert.equal(e.text, 'héllo ');
  e.home();
  e.right();
  e.killToEnd();
  assert.equal(e.text, 'h');
  e.end();
  e.insert('ey');
  e.left();
  e.killToStart();
  assert.equal(e.text, 'y');
  e.set('first');
  assert.equal(e.take(), 'first');
  e.insert('second');
  e.take();
  e.insert('draft');
  e.historyUp();
  assert.equal(e.text, 'second');
  e.historyUp();
  assert.equal(e.text, 'first');
  e.historyUp();
  assert.equal(e.text, 'first', 'stops at the oldest');
  e.historyDown();
  e.historyDown();
  assert.equal(e.text, 'draft', 'the draft comes back');
});

test('editor: Tab completes names (": " at the start of a line) and commands, cycling through matches', () => {
  const e = new LineEditor();
  const names = ['alice', 'Albert', 'bob'];
  const cmds = ['/join', '/quit', '/query'];
  e.insert('al');
  e.complete(names, cmds);
  assert.equal(e.text, 'Albert: ');
  e.complete(names, cmds);
  assert.equal(e.text, 'alice: ', 'a second Tab cycles');
  e.set('hi B');
  e.complete(names, cmds);
  assert.equal(e.text, 'hi bob ');
  e.set('/q');
  e.complete(names, cmds);
  assert.equal(e.text, '/query ');
  e.complete(names, cmds);
  assert.equal(e.text, '/quit ');
  e.set('zz');
  e.complete(names, cmds);
  assert.equal(e.text, 'zz', 'no match changes nothing');
});

const day = (ts: number) => `day${Math.floor(ts / 86_400_000)}`;
const clock = (ts: number) => String(Math.floor(ts / 1000) % 100).padStart(2, '0') + 's';
const msg = (room: string, from: string, body: string, ts = 1000, extra: Partial<Extract<ChatEvent, { type: 'message' }>> = {}): ChatEvent => ({
  type: 'message',
  room,
  id: 1,
  ts,
  from,
  body,
  action: false,
  history: false,
  own: false,
  ...extra,
});

test('windows: rooms and conversations open windows; activity, highlights and the activity list', () => {
  const v = new ChatView({ dayOf: day, clock });
  v.apply({ type: 'welcome', name: 'alice', messageMax: 100, floodBurst: 1, floodRate: 1 }, 0);
  v.apply({ type: 'joined', room: '#lobby', name: 'alice', ts: 1000 }, 0);
  assert.equal(v.win.name, '#lobby', 'joining selects the room');
  v.apply({ type: 'joined', room: '#dev', name: 'alice', ts: 1000 }, 0);
  assert.equal(v.current, 2);
  v.apply(msg('#lobby', 'bob', 'hello all'), 0);
  v.apply({ type: 'private', id: 1, ts: 1000, from: 'carol', to: 'alice', body: 'psst', action: false, history: false, own: false }, 0);
  assert.deepEqual(v.windows.map((w) => w.name), ['status', '#lobby', '#dev', '@carol']);
  assert.equal(v.windows[1]!.activity, Activity.Message);
  assert.equal(v.windows[3]!.activity, Activity.Highlight, 'a private message is for you');
  v.apply(msg('#lobby', 'bob', 'ALICE: look'), 0);
  v.apply(msg('#lobby', 'bob', 'malice is not a mention'), 0);
  assert.equal(v.windows[1]!.activity, Activity.Highlight);
  assert.equal(v.windows[1]!.highlights, 1);
  assert.equal(v.activityList(), '2*,4*');
  v.apply(msg('#dev', 'bob', 'alice here, in the window you look at'), 0);
  assert.equal(v.windows[2]!.activity, Activity.None, 'the current window never marks');
  v.select(1);
  assert.equal(v.windows[1]!.activity, Activity.None);
  assert.equal(v.activityList(), '4*');
  v.next();
  v.next();
  assert.equal(v.win.name, '@carol');
  v.next();
  assert.equal(v.win.name, 'status', 'wraps around');
  v.prev();
  assert.equal(v.win.name, '@carol');
  v.apply({ type: 'left', room: '#dev', name: 'alice', why: 'part', reason: '', ts: 2000 }, 0);
  assert.deepEqual(v.windows.map((w) => w.name), ['status', '#lobby', '@carol'], 'parting closes the room window');
  assert.equal(v.win.name, '@carol');
});

test('windows: members follow joins, leaves, renames and away; pending own messages are confirmed or failed in place', () => {
  const v = new ChatView({ dayOf: day, clock });
  v.apply({ type: 'welcome', name: 'alice', messageMax: 100, floodBurst: 1, floodRate: 1 }, 0);
  v.apply({ type: 'joined', room: '#lobby', name: 'alice', ts: 1000 }, 0);
  v.apply({ type: 'members', room: '#lobby', members: [{ name: 'alice', away: false }, { name: 'bob', away: true }], omitted: 0, requested: false }, 0);
  v.apply({ type: 'nick', room: '#lobby', old: 'bob', name: 'robert', ts: 1000 }, 0);
  v.apply({ type: 'joined', room: '#lobby', name: 'carol', ts: 1000 }, 0);
  v.apply({ type: 'away', room: '#lobby', name: 'carol', text: 'lunch', ts: 1000 }, 0);
  assert.deepEqual(v.memberNames(), ['alice', 'carol', 'robert']);
  assert.equal(v.win.members.get('carol')?.away, true);

  const a = v.addPending('#lobby', 'one', false, 5000);
  const b = v.addPending('#lobby', 'two', false, 5000);
  assert.ok(v.isPending(a) && v.isPending(b));
  assert.match(rowText(v.rowsOf(a, 80)[0]!), /<alice> one$/);
  v.apply(msg('#lobby', 'alice', 'one', 6000, { own: true }), 0);
  assert.ok(!v.isPending(a), 'the echo confirms it');
  assert.equal(rowText(v.rowsOf(a, 80)[0]!), '06s <alice> one', 'with the server time');
  v.failPending(b, 'slow down');
  assert.equal(rowText(v.rowsOf(b, 80)[0]!), '05s <alice> two [not sent: slow down]');
  const before = v.win.lines.length;
  v.apply(msg('#lobby', 'alice', 'from another device', 7000, { own: true }), 0);
  assert.equal(v.win.lines.length, before + 1, 'an own message with no pending line is simply shown');
});

test('scrollback: capped per window; PgUp/PgDn by pages; a scrolled view stays put; unread marker; day changes', () => {
  const v = new ChatView({ dayOf: day, clock });
  v.apply({ type: 'welcome', name: 'alice', messageMax: 100, floodBurst: 1, floodRate: 1 }, 0);
  v.apply({ type: 'joined', room: '#lobby', name: 'alice', ts: 1000 }, 0);
  for (let i = 0; i < SCROLLBACK_LINES + 100; i++) v.apply(msg('#lobby', 'bob', `m${i}`, 2000), 0);
  assert.equal(v.win.lines.length, SCROLLBACK_LINES);
  const bottom = v.visibleRows(10, 40).map(rowText);
  assert.equal(bottom.length, 10);
  assert.match(bottom[9]!, new RegExp(`m${SCROLLBACK_LINES + 99}$`));
  v.scroll(1, 10); // PgUp: 9 rows
  const up = v.visibleRows(10, 40).map(rowText);
  assert.match(up[9]!, new RegExp(`m${SCROLLBACK_LINES + 90}$`));
  v.apply(msg('#lobby', 'bob', 'new while scrolled', 2000), 0);
  assert.deepEqual(v.visibleRows(10, 40).map(rowText), up, 'the view does not move');
  v.scroll(-5, 10);
  assert.match(v.visibleRows(10, 40).map(rowText)[9]!, /new while scrolled$/, 'PgDn returns to the bottom');
  for (let i = 0; i < 10_000; i++) v.scroll(1, 10);
  assert.match(v.visibleRows(10, 40).map(rowText)[0]!, /m101$/, 'PgUp stops at the oldest line kept (5000 of them)');

  // Unread marker: leave the window, come back, and the first unseen line has a marker above it.
  v.scroll(-10_000, 10);
  v.select(0);
  v.apply(msg('#lobby', 'bob', 'unseen', 2000), 0);
  v.select(1);
  const rows = v.visibleRows(10, 40).map(rowText);
  assert.match(rows[8]!, /─+ new$/);
  assert.match(rows[9]!, /unseen$/);

  v.apply(msg('#lobby', 'bob', 'tomorrow', 2000 + 86_400_000), 0);
  const last = v.visibleRows(10, 40).map(rowText);
  assert.equal(last[8], '--- Day changed to day1 ---');
  assert.match(last[9]!, /tomorrow$/);
  // History is marked as such.
  v.apply(msg('#lobby', 'bob', 'old news', 2000 + 86_400_000, { history: true }), 0);
  assert.match(v.visibleRows(10, 40).map(rowText)[9]!, /⟲ <bob> old news$/);
});

test('keys: escape sequences, Alt, control keys, and a bracketed paste split across reads', () => {
  const d = new KeyDecoder();
  assert.deepEqual(d.feed('hi\r'), [{ type: 'text', text: 'hi' }, { type: 'enter' }]);
  assert.deepEqual(d.feed('\x1b[A\x1b[B\x1b[5~\x1b[6~\x1bOQ\x1b[3~'), [
    { type: 'up' },
    { type: 'down' },
    { type: 'pageup' },
    { type: 'pagedown' },
    { type: 'f2' },
    { type: 'delete' },
  ]);
  assert.deepEqual(d.feed('\x1b2\x0e\x10\x17\t\x7f\x1b\r'), [
    { type: 'alt', key: '2' },
    { type: 'ctrl', key: 'n' },
    { type: 'ctrl', key: 'p' },
    { type: 'ctrl', key: 'w' },
    { type: 'tab' },
    { type: 'backspace' },
    { type: 'newline' },
  ]);
  assert.deepEqual(d.feed('\x1b[20'), [], 'an incomplete sequence waits');
  assert.deepEqual(d.feed('0~line one\r\nline'), []);
  assert.deepEqual(d.feed(' two\x1b[20'), []);
  assert.deepEqual(d.feed('1~x'), [{ type: 'paste', text: 'line one\nline two' }, { type: 'text', text: 'x' }]);
  assert.deepEqual(d.feed('日本👍🏽'), [{ type: 'text', text: '日本👍🏽' }]);
  assert.deepEqual(d.feed('\x1b'), [{ type: 'escape' }]);
});
