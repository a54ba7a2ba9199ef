// The client's catch-up bookkeeping, sans-I/O: replayed and live messages interleaved in any order the
// streams allow still show every id exactly once, in a gap-free order per room.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CatchUpState } from '../src/client/catchup.js';

type M = { id: number; ref: number | null };
const m = (id: number, ref: number | null = null): M => ({ id, ref });
const fold = (s: string) => s.toLowerCase();

test('catch-up: live messages wait for the replay; duplicates and old ids are dropped; paging asks after the last shown', () => {
  const c = new CatchUpState<M, M>(fold);
  c.restore([{ room: '#Dev', lastSeen: 10 }], 3);
  assert.deepEqual(c.joinedRooms(), [{ room: '#Dev', lastSeen: 10 }]);
  c.catching('#dev');
  assert.equal(c.roomMessage('#DEV', m(14), false), false, 'live during catch-up: held');
  assert.equal(c.roomMessage('#dev', m(9), true), false, 'already seen');
  assert.equal(c.roomMessage('#dev', m(11), true), true);
  assert.equal(c.roomMessage('#dev', m(12), true), true);
  assert.deepEqual(c.roomCaughtUp('#dev', true), { more: true, after: 12 });
  assert.equal(c.roomMessage('#dev', m(13), true), true);
  assert.equal(c.roomMessage('#dev', m(14), true), true, 'the next page reaches the held one');
  assert.equal(c.roomMessage('#dev', m(15), false), false, 'still catching: held');
  assert.deepEqual(c.roomCaughtUp('#dev', false), { more: false, release: [m(15)] }, '14 was replayed, so only 15 is released');
  assert.equal(c.roomMessage('#dev', m(15), false), false, 'a duplicate after release');
  assert.equal(c.roomMessage('#dev', m(16), false), true);
  assert.equal(c.roomMessage('#elsewhere', m(1), false), true, 'a room we do not track is shown');
  c.left('#DEV');
  assert.deepEqual(c.joinedRooms(), []);
  // Private messages: one track.
  c.catchingPrivate();
  assert.equal(c.privateMessage(m(5), false), false);
  assert.equal(c.privateMessage(m(4), true), true);
  assert.deepEqual(c.privateCaughtUp(false), { more: false, release: [m(5)] });
  assert.equal(c.lastPrivate, 5);
});

test('catch-up: a lost connection drops what was held; the replay after it brings it back once', () => {
  const c = new CatchUpState<M, M>(fold);
  c.entered('#lobby');
  c.roomMessage('#lobby', m(1), false);
  c.catching('#lobby');
  c.roomMessage('#lobby', m(2, 7), false); // an own echo, held
  c.resetCatching();
  assert.deepEqual(c.joinedRooms(), [{ room: '#lobby', lastSeen: 1 }], 'rejoin from 1');
  c.catching('#lobby');
  assert.equal(c.roomMessage('#lobby', m(2), true), true);
  assert.deepEqual(c.roomCaughtUp('#lobby', false), { more: false, release: [] });
});

test('catch-up model: any split of a room into replay pages and live arrivals shows 1..n exactly once, in order', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 1, max: 10 }), fc.array(fc.boolean(), { maxLength: 200 }), (seen, pageSize, coin) => {
      // The server side: messages 1..n exist; more arrive live while the client pages through the replay.
      let n = seen + 5;
      const c = new CatchUpState<M, M>(fold);
      c.restore([{ room: '#r', lastSeen: seen }], 0);
      c.catching('#r');
      const shown: number[] = [];
      let after = seen;
      let flips = 0;
      for (let guard = 0; guard < 1000; guard++) {
        // Stream order: a page of replay, then whatever was published live meanwhile.
        const page = [];
        for (let id = after + 1; id <= Math.min(n, after + pageSize); id++) page.push(id);
        for (const id of page) if (c.roomMessage('#r', m(id), true)) shown.push(id);
        const more = page.length === pageSize && page.at(-1)! < n;
        if (coin[flips++] ?? false) {
          n++;
          if (c.roomMessage('#r', m(n), false)) shown.push(n);
        }
        const r = c.roomCaughtUp('#r', more);
        if (r.more) {
          after = r.after;
          continue;
        }
        shown.push(...r.release.map((x) => x.id));
        break;
      }
      // Whatever was published and not shown yet arrives live now.
      for (let id = seen + 1; id <= n; id++) if (c.roomMessage('#r', m(id), false)) shown.push(id);
      assert.deepEqual(shown, Array.from({ length: n - seen }, (_, i) => seen + 1 + i));
    }),
    { numRuns: 500 },
  );
});
