// Loaded into the server by `obrol bench idle --heap-stats` (node --expose-gc --import): on SIGUSR2 it appends
// one JSON line to $OBROL_HEAP_PROBE with the process's memory before and after a full GC, so the harness can
// tell live objects from garbage and from memory outside the V8 heap. The server's code is not involved.
import { appendFileSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';

const file = process.env.OBROL_HEAP_PROBE;
if (file) {
  process.on('SIGUSR2', () => {
    const before = process.memoryUsage();
    (globalThis as { gc?: () => void }).gc?.();
    const after = process.memoryUsage();
    appendFileSync(file, JSON.stringify({ before, after, heap: getHeapStatistics() }) + '\n');
  });
}
