import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DeadlineHeap } from '../src/util/deadline-heap.js';

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
