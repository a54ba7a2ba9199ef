// Sliding-window replay protection over packet numbers (RFC 6479 style, as WireGuard uses): a packet
// number is accepted once, and only if it is not older than the window behind the highest seen.

import { REPLAY_WINDOW_PACKETS } from '../limits.js';

const WORD = 32;

export class ReplayWindow {
  private readonly bits: Uint32Array;
  private readonly words: number;
  /** Highest packet number accepted so far; -1 before the first. */
  private top = -1;

  constructor(readonly size = REPLAY_WINDOW_PACKETS) {
    this.words = Math.ceil(size / WORD) + 1; // one spare word so the window slides a word at a time
    this.bits = new Uint32Array(this.words);
  }

  /** Whether pn would be accepted; no state changes, so call it before spending time on decryption. */
  check(pn: number): boolean {
    if (!Number.isInteger(pn) || pn < 0) return false;
    if (pn > this.top) return true;
    if (this.top - pn >= this.size) return false;
    const word = Math.floor(pn / WORD) % this.words;
    return (this.bits[word]! & (1 << pn % WORD)) === 0;
  }

  /** Records pn as seen; call only after the packet authenticated. */
  accept(pn: number): void {
    if (!this.check(pn)) return;
    if (pn > this.top) {
      const fromWord = this.top < 0 ? 0 : Math.floor(this.top / WORD) + 1;
      const toWord = Math.floor(pn / WORD);
      // Clear the words the window slides over (at most all of them).
      for (let w = fromWord, n = 0; w <= toWord && n < this.words; w++, n++) this.bits[w % this.words] = 0;
      this.top = pn;
    }
    const word = Math.floor(pn / WORD) % this.words;
    this.bits[word] = this.bits[word]! | (1 << pn % WORD);
  }
}
