// Terminal text: display widths (wide CJK and emoji take two columns, combining marks none) and wrapping
// of styled text into rows that never exceed the width and never split a grapheme.

import stringWidth from 'string-width';

const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

export function graphemes(s: string): string[] {
  const out: string[] = [];
  for (const { segment } of segmenter.segment(s)) out.push(segment);
  return out;
}

/**
 * Text from other people, made safe to draw: control characters (an ESC could move the cursor, clear the
 * screen or retitle the terminal) become U+FFFD; newlines stay, for multi-line messages; a tab is a space.
 */
export function sanitize(s: string): string {
  return s.replace(/\t/g, ' ').replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g, '\ufffd');
}

/** Columns a string takes on a terminal. */
export function width(s: string): number {
  return stringWidth(s);
}

/** How a piece of text is shown; the renderer maps styles to colours (or not, under NO_COLOR). */
export type Style =
  | 'plain'
  | 'time'
  | 'nick'
  | 'own'
  | 'pending'
  | 'failed'
  | 'action'
  | 'notice'
  | 'error'
  | 'history'
  | 'highlight'
  | 'marker'
  | 'day';

export interface Seg {
  text: string;
  style: Style;
  /** Palette index for nick colours. */
  colour?: number;
}

/** A row as rendered: segments whose widths add up to at most the row width. */
export type Row = Seg[];

interface Cell {
  g: string;
  w: number;
  seg: number;
}

/**
 * Wraps styled text to `cols` columns: breaks after the last space that fits, else inside a word; '\n'
 * starts a new row. Rows after the first are indented by `indent` columns (under the text, irssi-style).
 */
export function wrapSegs(segs: Seg[], cols: number, indent = 0): Row[] {
  const width0 = Math.max(1, cols);
  const ind = indent < width0 - 4 ? indent : 0; // a very narrow terminal gets no indent
  const cells: Cell[] = [];
  segs.forEach((s, i) => {
    for (const g of graphemes(sanitize(s.text))) cells.push({ g, w: g === '\n' ? 0 : width(g), seg: i });
  });
  const rows: Cell[][] = [];
  let row: Cell[] = [];
  let used = 0;
  let lastSpace = -1;
  const limit = (): number => (rows.length === 0 ? width0 : width0 - ind);
  const flush = (): void => {
    rows.push(row);
    row = [];
    used = 0;
    lastSpace = -1;
  };
  for (const c of cells) {
    if (c.g === '\n') {
      flush();
      continue;
    }
    if (used + c.w > limit() && row.length > 0) {
      if (lastSpace > 0 && c.g !== ' ') {
        const carry = row.slice(lastSpace + 1);
        row = row.slice(0, lastSpace);
        flush();
        for (const k of carry) {
          row.push(k);
          used += k.w;
        }
        if (used + c.w > limit() && row.length > 0) flush(); // the carried word and this one still do not fit
      } else {
        flush();
        if (c.g === ' ') continue; // a break at a space swallows it
      }
    }
    if (c.g === ' ') lastSpace = row.length;
    row.push(c);
    used += c.w;
  }
  rows.push(row);
  return rows.map((r, i) => {
    const out: Row = [];
    if (i > 0 && ind > 0) out.push({ text: ' '.repeat(ind), style: 'plain' });
    for (const c of r) {
      const s = segs[c.seg]!;
      const last = out[out.length - 1];
      if (last && last.style === s.style && last.colour === s.colour && out.length > (i > 0 && ind > 0 ? 1 : 0)) last.text += c.g;
      else out.push({ text: c.g, style: s.style, ...(s.colour !== undefined ? { colour: s.colour } : {}) });
    }
    return out;
  });
}

/** Plain text wrapped to `cols` (tests and simple callers). */
export function wrap(text: string, cols: number): string[] {
  return wrapSegs([{ text, style: 'plain' }], cols).map((r) => r.map((s) => s.text).join(''));
}

/** The longest prefix of `s` that fits `cols` columns. */
export function fit(s: string, cols: number): string {
  let used = 0;
  let out = '';
  for (const g of graphemes(sanitize(s))) {
    const w = width(g);
    if (used + w > cols) break;
    out += g;
    used += w;
  }
  return out;
}

/** A stable colour per name: FNV-1a of the case-folded name into a palette of `size`. */
export function nickColour(name: string, size: number): number {
  let h = 0x811c9dc5;
  for (const ch of name.normalize('NFC').toLowerCase()) {
    h ^= ch.codePointAt(0)!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % size;
}
