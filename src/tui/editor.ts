// The input line: grapheme-aware editing, input history (Up/Down keep the draft), and Tab completion of
// names and /commands. Pure state; the full-screen client maps keys to these methods.

import { graphemes } from './text.js';

/** Lines of input history kept. */
const HISTORY_MAX = 500;

interface Completion {
  /** Where the completed word starts (grapheme index) and what it was. */
  start: number;
  matches: string[];
  index: number;
  /** The text after the cursor when completion began. */
  tail: string[];
  atLineStart: boolean;
}

export class LineEditor {
  private buf: string[] = [];
  private cur = 0;
  private readonly history: string[] = [];
  /** Position in history while browsing; history.length means the draft. */
  private browsing: number | null = null;
  private draft = '';
  private completion: Completion | null = null;

  get text(): string {
    return this.buf.join('');
  }

  /** The cursor as a grapheme index. */
  get cursor(): number {
    return this.cur;
  }

  /** Text before and after the cursor, for drawing it. */
  get split(): [string, string] {
    return [this.buf.slice(0, this.cur).join(''), this.buf.slice(this.cur).join('')];
  }

  set(text: string): void {
    this.buf = graphemes(text);
    this.cur = this.buf.length;
    this.completion = null;
  }

  insert(text: string): void {
    const g = graphemes(text);
    this.buf.splice(this.cur, 0, ...g);
    this.cur += g.length;
    this.completion = null;
  }

  left(): void {
    this.cur = Math.max(0, this.cur - 1);
    this.completion = null;
  }

  right(): void {
    this.cur = Math.min(this.buf.length, this.cur + 1);
    this.completion = null;
  }

  home(): void {
    this.cur = 0;
    this.completion = null;
  }

  end(): void {
    this.cur = this.buf.length;
    this.completion = null;
  }

  backspace(): void {
    if (this.cur === 0) return;
    this.buf.splice(this.cur - 1, 1);
    this.cur--;
    this.completion = null;
  }

  deleteForward(): void {
    this.buf.splice(this.cur, 1);
    this.completion = null;
  }

  /** Ctrl+W: the word before the cursor, and the spaces after it. */
  deleteWord(): void {
    let i = this.cur;
    while (i > 0 && /\s/.test(this.buf[i - 1]!)) i--;
    while (i > 0 && !/\s/.test(this.buf[i - 1]!)) i--;
    this.buf.splice(i, this.cur - i);
    this.cur = i;
    this.completion = null;
  }

  /** Ctrl+U. */
  killToStart(): void {
    this.buf.splice(0, this.cur);
    this.cur = 0;
    this.completion = null;
  }

  /** Ctrl+K. */
  killToEnd(): void {
    this.buf.splice(this.cur);
    this.completion = null;
  }

  /** Enter: the line, cleared and remembered in history. */
  take(): string {
    const line = this.text;
    if (line !== '' && this.history[this.history.length - 1] !== line) {
      this.history.push(line);
      if (this.history.length > HISTORY_MAX) this.history.shift();
    }
    this.set('');
    this.browsing = null;
    this.draft = '';
    return line;
  }

  historyUp(): void {
    if (this.history.length === 0) return;
    if (this.browsing === null) {
      this.draft = this.text;
      this.browsing = this.history.length;
    }
    if (this.browsing === 0) return;
    this.browsing--;
    this.set(this.history[this.browsing]!);
  }

  historyDown(): void {
    if (this.browsing === null) return;
    this.browsing++;
    if (this.browsing >= this.history.length) {
      this.browsing = null;
      this.set(this.draft);
      return;
    }
    this.set(this.history[this.browsing]!);
  }

  /**
   * Tab: completes the word before the cursor from `names` (or `commands` for a word starting with '/'),
   * case-insensitively; each further Tab cycles. A name at the start of the line gets ": ", elsewhere " ".
   */
  complete(names: readonly string[], commands: readonly string[]): void {
    let c = this.completion;
    if (c === null) {
      let start = this.cur;
      while (start > 0 && !/\s/.test(this.buf[start - 1]!)) start--;
      const word = this.buf.slice(start, this.cur).join('');
      if (word === '') return;
      const pool = word.startsWith('/') && start === 0 ? commands : names;
      const lower = word.toLowerCase();
      const matches = [...new Set(pool.filter((n) => n.toLowerCase().startsWith(lower)))].sort((a, b) => a.localeCompare(b));
      if (matches.length === 0) return;
      c = { start, matches, index: -1, tail: this.buf.slice(this.cur), atLineStart: start === 0 && !word.startsWith('/') };
    }
    c.index = (c.index + 1) % c.matches.length;
    const m = c.matches[c.index]!;
    const suffix = m.startsWith('/') ? ' ' : c.atLineStart ? ': ' : ' ';
    const ins = graphemes(m + suffix);
    this.buf = [...this.buf.slice(0, c.start), ...ins, ...c.tail];
    this.cur = c.start + ins.length;
    this.completion = c;
  }
}
