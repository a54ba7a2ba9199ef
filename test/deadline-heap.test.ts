import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DeadlineHeap } from '../src/util/deadline-heap.js';

test('equal deadlines pop in insertion order', () => {
  const heap = new DeadlineHeap<number>();
  for (let i = 0; i < 100; i++) heap.push(i % 3, i);
  const out: number[] = [];
  for (let e = heap.pop(); e; e = heap.pop()) out.push(e.key);
  const want = [0, 1, 2].flatMap((t) => Array.from({ length: 100 }, (_, i) => i).filter((i) => i % 3 === t));
  assert.deepEqual(out, want);
});

test('deadline heap pops in time order (property against a sorted array)', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 1000 }), fc.boolean()), { maxLength: 200 }), (ops) => {
      const heap = new DeadlineHeap<number>();
      const model: number[] = [];
      for (const [t, pop] of ops) {
        if (pop) {
          model.sort((a, b) => a - b);
          const want = model.shift();
          const got = heap.pop();
          assert.equal(got?.time, want);
        } else {
          heap.push(t, t);
          model.push(t);
        }
        assert.equal(heap.size, model.length);
      }
    }),
  );
});
