// A min-heap of (deadline, key) with lazy invalidation: the owner re-pushes when a key's deadline
// changes and pops entries whose deadline no longer matches. Lets one timer serve 100k sessions.

export class DeadlineHeap<K> {
  private readonly times: number[] = [];
  private readonly keys: K[] = [];

  get size(): number {
    return this.times.length;
  }

  push(time: number, key: K): void {
    let i = this.times.length;
    this.times.push(time);
    this.keys.push(key);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.times[p]! <= time) break;
      this.times[i] = this.times[p]!;
      this.keys[i] = this.keys[p]!;
      i = p;
    }
    this.times[i] = time;
    this.keys[i] = key;
  }

  peekTime(): number | null {
    return this.times.length > 0 ? this.times[0]! : null;
  }

  peekKey(): K | undefined {
    return this.keys[0];
  }

  pop(): { time: number; key: K } | null {
    const n = this.times.length;
    if (n === 0) return null;
    const top = { time: this.times[0]!, key: this.keys[0]! };
    const lastT = this.times.pop()!;
    const lastK = this.keys.pop()!;
    if (n > 1) {
      let i = 0;
      const half = (n - 1) >> 1;
      while (i < half) {
        let c = 2 * i + 1;
        if (c + 1 < n - 1 && this.times[c + 1]! < this.times[c]!) c++;
        if (this.times[c]! >= lastT) break;
        this.times[i] = this.times[c]!;
        this.keys[i] = this.keys[c]!;
        i = c;
      }
      this.times[i] = lastT;
      this.keys[i] = lastK;
    }
    return top;
  }
}
