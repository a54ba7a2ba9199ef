// What a bad network does to one datagram, decided from a seeded PRNG: dropped, duplicated, delayed with
// jitter, or held back so later datagrams overtake it. Sans-I/O: the proxy shell does the sending.

import { Rng } from './rng.js';

export interface ImpairmentOptions {
  loss: number;
  dup: number;
  reorder: number;
  delayMs: number;
  jitterMs: number;
  seed: number;
}

export const NO_IMPAIRMENT: ImpairmentOptions = { loss: 0, dup: 0, reorder: 0, delayMs: 0, jitterMs: 0, seed: 1 };

/** Checks options, returning a message that says what to fix, or null when they are valid. */
export function validateImpairment(o: ImpairmentOptions): string | null {
  for (const k of ['loss', 'dup', 'reorder'] as const) {
    if (!(o[k] >= 0 && o[k] <= 1)) return `--${k} is a probability between 0 and 1, not ${o[k]}`;
  }
  for (const [k, v] of [['delay', o.delayMs], ['jitter', o.jitterMs]] as const) {
    if (!(v >= 0 && v <= 60_000)) return `--${k} must be between 0ms and 60s, not ${v}ms`;
  }
  if (!Number.isInteger(o.seed)) return `--seed must be a whole number, not ${o.seed}`;
  return null;
}

/** Parses `30ms`, `1.5s` or a bare number of milliseconds; null when it is none of those. */
export function parseDuration(s: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(s.trim());
  if (!m) return null;
  const n = Number(m[1]);
  return m[2] === 's' ? n * 1000 : n;
}

export class Impairment {
  private readonly rng: Rng;
  private lastInOrder = -Infinity;
  readonly stats = { seen: 0, dropped: 0, duplicated: 0, reordered: 0 };

  constructor(private readonly o: ImpairmentOptions) {
    const err = validateImpairment(o);
    if (err) throw new RangeError(err);
    this.rng = new Rng(o.seed);
  }

  private delay(): number {
    return this.o.delayMs + (this.o.jitterMs > 0 ? this.rng.next() * this.o.jitterMs : 0);
  }

  /** The times at which to deliver one datagram that arrived at `now`: none (lost), one, or two (duplicated). */
  decide(now: number): number[] {
    this.stats.seen++;
    if (this.rng.next() < this.o.loss) {
      this.stats.dropped++;
      return [];
    }
    // Jitter varies the delay but keeps order, as a queue does; only `reorder` lets datagrams overtake.
    const inOrder = Math.max(now + this.delay(), this.lastInOrder);
    this.lastInOrder = inOrder;
    const times = [inOrder];
    if (this.rng.next() < this.o.reorder) {
      // Hold it back long enough for the next few datagrams to overtake it.
      this.stats.reordered++;
      times[0] = inOrder + Math.max(5, this.o.delayMs + this.o.jitterMs) * (1 + this.rng.next());
    }
    if (this.rng.next() < this.o.dup) {
      this.stats.duplicated++;
      times.push(inOrder);
    }
    return times;
  }
}
