// A min-heap of (deadline, key) with lazy invalidation: the owner re-pushes when a key's deadline
// changes and pops entries whose deadline no longer matches. Lets one timer serve 100k sessions.
// Equal deadlines pop in insertion order, so a simulated network built on it is FIFO.

export class DeadlineHeap<K> {
  private readonly times: number[] = [];
  private readonly seqs: number[] = [];
  private readonly keys: K[] = [];
  private seq = 0;

  get size(): number {
    return this.times.length;
  }

  private less(t1: number, s1: number, t2: number, s2: number): boolean {
    return t1 < t2 || (t1 === t2 && s1 < s2);
  }

  push(time: number, key: K): void {
    const s = this.seq++;
    let i = this.times.length;
    this.times.push(time);
    this.seqs.push(s);
    this.keys.push(key);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(time, s, this.times[p]!, this.seqs[p]!)) break;
      this.times[i] = this.times[p]!;
      this.seqs[i] = this.seqs[p]!;
      this.keys[i] = this.keys[p]!;
      i = p;
    }
    this.times[i] = time;
    this.seqs[i] = s;
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
    const lastS = this.seqs.pop()!;
    const lastK = this.keys.pop()!;
    const m = n - 1;
    if (m > 0) {
      let i = 0;
      for (;;) {
        let c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && this.less(this.times[c + 1]!, this.seqs[c + 1]!, this.times[c]!, this.seqs[c]!)) c++;
        if (!this.less(this.times[c]!, this.seqs[c]!, lastT, lastS)) break;
        this.times[i] = this.times[c]!;
        this.seqs[i] = this.seqs[c]!;
        this.keys[i] = this.keys[c]!;
        i = c;
      }
      this.times[i] = lastT;
      this.seqs[i] = lastS;
      this.keys[i] = lastK;
    }
    return top;
  }
}
