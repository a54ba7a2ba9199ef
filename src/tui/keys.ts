// Raw terminal input to keys: escape sequences of xterm-like terminals (and tmux), Alt as an ESC prefix,
// control characters, and bracketed paste (which may arrive split over several reads). Sans-I/O.

export type Key =
  | { type: 'text'; text: string }
  | { type: 'paste'; text: string }
  | { type: 'enter' }
  | { type: 'newline' }
  | { type: 'tab' }
  | { type: 'backspace' }
  | { type: 'delete' }
  | { type: 'up' }
  | { type: 'down' }
  | { type: 'left' }
  | { type: 'right' }
  | { type: 'home' }
  | { type: 'end' }
  | { type: 'pageup' }
  | { type: 'pagedown' }
  | { type: 'f2' }
  | { type: 'escape' }
  | { type: 'ctrl'; key: string }
  | { type: 'alt'; key: string };

const PASTE_START = '\x1b[200~';
const PASTE_END = '\x1b[201~';
/** A paste larger than this is cut (the input line is not a file transfer). */
const PASTE_MAX = 256 * 1024;

const CSI: Record<string, Key> = {
  A: { type: 'up' },
  B: { type: 'down' },
  C: { type: 'right' },
  D: { type: 'left' },
  H: { type: 'home' },
  F: { type: 'end' },
  '1~': { type: 'home' },
  '7~': { type: 'home' },
  '4~': { type: 'end' },
  '8~': { type: 'end' },
  '3~': { type: 'delete' },
  '5~': { type: 'pageup' },
  '6~': { type: 'pagedown' },
  '12~': { type: 'f2' },
};
const SS3: Record<string, Key> = { A: { type: 'up' }, B: { type: 'down' }, C: { type: 'right' }, D: { type: 'left' }, H: { type: 'home' }, F: { type: 'end' }, Q: { type: 'f2' } };

export class KeyDecoder {
  private pending = '';
  private paste: string | null = null;

  /** Keys in `data`; an incomplete escape sequence waits for the next call. */
  feed(data: string): Key[] {
    const out: Key[] = [];
    let s = this.pending + data;
    this.pending = '';
    let text = '';
    const flushText = (): void => {
      if (text !== '') out.push({ type: 'text', text });
      text = '';
    };
    while (s.length > 0) {
      if (this.paste !== null) {
        const end = s.indexOf(PASTE_END);
        if (end < 0) {
          // Keep a possible partial end marker for the next read.
          const keep = partialSuffix(s, PASTE_END);
          this.paste = (this.paste + s.slice(0, s.length - keep)).slice(0, PASTE_MAX);
          this.pending = s.slice(s.length - keep);
          return out;
        }
        out.push({ type: 'paste', text: (this.paste + s.slice(0, end)).slice(0, PASTE_MAX).replace(/\r\n?/g, '\n') });
        this.paste = null;
        s = s.slice(end + PASTE_END.length);
        continue;
      }
      const c = s[0]!;
      if (c === '\x1b') {
        flushText();
        if (s.startsWith(PASTE_START)) {
          this.paste = '';
          s = s.slice(PASTE_START.length);
          continue;
        }
        if (s.length === 1) {
          out.push({ type: 'escape' });
          s = '';
          continue;
        }
        const m = /^\x1b\[([0-9;]*)([A-Za-z~])/.exec(s);
        if (m) {
          const code = m[2] === '~' ? `${m[1]!.split(';')[0]}~` : m[2]!;
          const k = CSI[code];
          if (k) out.push(k);
          else if (code === 'Z') out.push({ type: 'tab' });
          s = s.slice(m[0].length);
          continue;
        }
        if (/^\x1b\[[0-9;]*$/.test(s) || s === '\x1bO') {
          this.pending = s; // the rest of the sequence is in the next read
          return out;
        }
        const o = /^\x1bO([A-Z])/.exec(s);
        if (o) {
          const k = SS3[o[1]!];
          if (k) out.push(k);
          s = s.slice(3);
          continue;
        }
        // ESC then a character: Alt+character (Alt+Enter is a newline in the message).
        const next = String.fromCodePoint(s.codePointAt(1)!);
        if (next === '\r' || next === '\n') out.push({ type: 'newline' });
        else out.push({ type: 'alt', key: next.toLowerCase() });
        s = s.slice(1 + next.length);
        continue;
      }
      const code = c.charCodeAt(0);
      if (c === '\r') {
        flushText();
        out.push({ type: 'enter' });
      } else if (c === '\n') {
        flushText();
        out.push({ type: 'newline' });
      } else if (c === '\t') {
        flushText();
        out.push({ type: 'tab' });
      } else if (c === '\x7f' || c === '\b') {
        flushText();
        out.push({ type: 'backspace' });
      } else if (code < 0x20) {
        flushText();
        out.push({ type: 'ctrl', key: String.fromCharCode(code + 0x60) });
      } else {
        text += c;
      }
      s = s.slice(1);
    }
    flushText();
    return out;
  }
}

/** Length of the longest suffix of `s` that is a proper prefix of `marker`. */
function partialSuffix(s: string, marker: string): number {
  for (let n = Math.min(s.length, marker.length - 1); n > 0; n--) if (marker.startsWith(s.slice(s.length - n))) return n;
  return 0;
}
