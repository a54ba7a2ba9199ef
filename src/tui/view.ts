// The full-screen client's view model: windows (the status window, rooms, private conversations) with
// scrollback, activity and highlight markers, member lists, pending own messages, and the rows to draw.
// Pure: events and the time come in, rows and status text go out; the ink shell (app.ts) draws them.

import type { ChatEvent } from '../client/client.js';
import { foldKey } from '../chat/names.js';
import { clock as localClock, peerOf } from '../cli/format.js';
import { nickColour, wrapSegs, width, type Row, type Seg } from './text.js';

/** Lines kept per window; the oldest go first. */
export const SCROLLBACK_LINES = 5000;
export const PALETTE_SIZE = 12;

/** How much happened in a window you are not looking at. */
export const Activity = { None: 0, Event: 1, Message: 2, Highlight: 3 } as const;
export type Activity = (typeof Activity)[keyof typeof Activity];

export interface Line {
  segs: Seg[];
  /** Columns of the prefix (time and nick), for indenting wrapped rows under the text. */
  indent: number;
  /** For own messages waiting for the server: the body, matched against the echo. */
  pending?: string;
  /** Wrapped rows for one width, reused until the width changes. */
  cache?: { cols: number; rows: Row[] };
}

export interface Member {
  name: string;
  away: boolean;
}

export class Window {
  readonly lines: Line[] = [];
  /** Rows hidden below the bottom of the view (0: following new lines). */
  scrollRows = 0;
  /** Index of the first line not yet seen when the window was last left; null: no marker. */
  unreadFrom: number | null = null;
  activity: Activity = Activity.None;
  highlights = 0;
  topic = '';
  readonly members = new Map<string, Member>();
  lastDay: string | null = null;

  constructor(
    /** 'status', '#room' or '@name'. */
    public name: string,
  ) {}

  get kind(): 'status' | 'room' | 'private' {
    return this.name === 'status' ? 'status' : this.name.startsWith('#') ? 'room' : 'private';
  }
}

export interface ViewOptions {
  /** Local day of a timestamp, e.g. "Tue 24 Nov 2026"; injected so tests do not depend on the zone. */
  dayOf?: (ts: number) => string;
  /** Local HH:MM of a timestamp. */
  clock?: (ts: number) => string;
}

const defaultDay = (ts: number): string =>
  new Date(ts).toLocaleDateString('en-GB', { weekday: 'short', day: 'numeric', month: 'short', year: 'numeric' }).replace(/,/g, '');

export class ChatView {
  readonly windows: Window[] = [new Window('status')];
  current = 0;
  me: string | null = null;
  /** Columns of the message area, for keeping a scrolled-up view still when lines arrive. */
  cols = 80;
  private readonly dayOf: (ts: number) => string;
  private readonly clock: (ts: number) => string;

  constructor(opts: ViewOptions = {}) {
    this.dayOf = opts.dayOf ?? defaultDay;
    this.clock = opts.clock ?? localClock;
  }

  get win(): Window {
    return this.windows[this.current]!;
  }

  /** The window of a room or conversation, opened at the end of the list if new. */
  window(name: string, open = true): Window | undefined {
    const key = foldKey(name);
    const w = this.windows.find((x) => foldKey(x.name) === key);
    if (w || !open) return w;
    const n = new Window(name);
    this.windows.push(n);
    return n;
  }

  select(index: number): void {
    if (index < 0 || index >= this.windows.length || index === this.current) return;
    const old = this.win;
    old.unreadFrom = old.lines.length;
    this.current = index;
    const w = this.win;
    w.activity = Activity.None;
    w.highlights = 0;
    if (w.unreadFrom !== null && w.unreadFrom >= w.lines.length) w.unreadFrom = null;
  }

  next(): void {
    this.select((this.current + 1) % this.windows.length);
  }

  prev(): void {
    this.select((this.current - 1 + this.windows.length) % this.windows.length);
  }

  close(index: number): void {
    if (index <= 0 || index >= this.windows.length) return;
    if (index === this.current) this.select(index - 1);
    else if (index < this.current) this.current--;
    this.windows.splice(index, 1);
  }

  /** PgUp/PgDn: by a page of `rows` minus one, so one row stays for context. */
  scroll(pages: number, rows: number): void {
    const w = this.win;
    const total = this.totalRows(w, this.cols);
    const page = Math.max(1, rows - 1);
    w.scrollRows = Math.max(0, Math.min(Math.max(0, total - rows), w.scrollRows + pages * page));
  }

  /** Adds a line to a window, with a day-change line first when the day changed. */
  add(w: Window, segs: Seg[], ts: number | null, opts: { activity?: Activity; indent?: number; pending?: string } = {}): Line {
    if (ts !== null) {
      const day = this.dayOf(ts);
      if (w.lastDay !== null && day !== w.lastDay) this.push(w, { segs: [{ text: `--- Day changed to ${day} ---`, style: 'day' }], indent: 0 });
      w.lastDay = day;
    }
    const line: Line = { segs, indent: opts.indent ?? 0, ...(opts.pending !== undefined ? { pending: opts.pending } : {}) };
    this.push(w, line);
    const level = opts.activity ?? Activity.Event;
    if (w !== this.win) {
      if (level > w.activity) w.activity = level;
      if (level === Activity.Highlight) w.highlights++;
    }
    return line;
  }

  private push(w: Window, line: Line): void {
    w.lines.push(line);
    // A scrolled-up view stays where it is.
    if (w.scrollRows > 0) w.scrollRows += this.rowsOf(line, this.cols).length;
    if (w.lines.length > SCROLLBACK_LINES) {
      w.lines.shift();
      if (w.unreadFrom !== null) w.unreadFrom = Math.max(0, w.unreadFrom - 1);
    }
  }

  info(text: string, style: 'notice' | 'error' = 'notice', where: Window = this.win): void {
    this.add(where, [{ text: `-!- ${text}`, style }], null, { activity: Activity.Event, indent: 4 });
  }

  /** Marks a name in a message: own name mentioned as a whole word. */
  mentions(body: string): boolean {
    if (this.me === null) return false;
    const esc = this.me.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    return new RegExp(`(^|[^\\p{L}\\p{N}_])${esc}($|[^\\p{L}\\p{N}_])`, 'iu').test(body);
  }

  private nickSegs(from: string, own: boolean): Seg[] {
    return [{ text: from, style: own ? 'own' : 'nick', colour: nickColour(from, PALETTE_SIZE) }];
  }

  /** An own message shown at once, marked pending until the server's echo confirms it. */
  addPending(target: string, body: string, action: boolean, now: number): Line {
    const w = this.window(target)!;
    const name = this.me ?? '?';
    const prefix: Seg[] = [{ text: `${this.clock(now)} `, style: 'time' }];
    const segs: Seg[] = action
      ? [...prefix, { text: `* ${name} `, style: 'pending' }, { text: body, style: 'pending' }]
      : [...prefix, { text: `<${name}> `, style: 'pending' }, { text: body, style: 'pending' }];
    return this.add(w, segs, null, { activity: Activity.None, indent: width(`${this.clock(now)} <${name}> `), pending: body });
  }

  /** The server refused a pending message: it stays, marked, with the reason. */
  failPending(line: Line, reason: string): void {
    if (line.pending === undefined) return;
    delete line.pending;
    line.segs = [...line.segs.map((s) => ({ ...s, style: 'failed' as const })), { text: ` [not sent: ${reason}]`, style: 'error' }];
    delete line.cache;
  }

  private messageSegs(ev: { ts: number; from: string; body: string; action: boolean; history: boolean; own: boolean }): { segs: Seg[]; indent: number } {
    const time: Seg = { text: `${this.clock(ev.ts)} `, style: ev.history ? 'history' : 'time' };
    const mark: Seg[] = ev.history ? [{ text: '⟲ ', style: 'history' }] : [];
    const high = !ev.own && this.mentions(ev.body);
    const bodyStyle = high ? 'highlight' : ev.history ? 'history' : 'plain';
    const nick = this.nickSegs(ev.from, ev.own);
    const segs: Seg[] = ev.action
      ? [time, ...mark, { text: '* ', style: 'action' }, ...nick, { text: ` ${ev.body}`, style: high ? 'highlight' : 'action' }]
      : [time, ...mark, { text: '<', style: 'plain' }, ...nick, { text: '> ', style: 'plain' }, { text: ev.body, style: bodyStyle }];
    const indent = width(time.text) + (ev.history ? 2 : 0) + (ev.action ? 2 + width(ev.from) + 1 : width(ev.from) + 3);
    return { segs, indent };
  }

  /** Turns a client event into lines, members and markers. */
  apply(ev: ChatEvent, now: number): void {
    switch (ev.type) {
      case 'welcome':
        this.me = ev.name;
        this.info(`you are ${ev.name}; messages up to ${ev.messageMax} bytes`, 'notice', this.windows[0]);
        return;
      case 'connected':
        this.info(`connected to ${ev.server}, server key ${ev.fingerprint}${ev.pinned === 'new' ? ' (new: pinned)' : ''}`, 'notice', this.windows[0]);
        return;
      case 'status':
        if (ev.status !== 'open' || this.windows[0]!.lines.length > 0) this.info(ev.detail, 'notice', this.windows[0]);
        return;
      case 'closed':
        this.info(`disconnected: ${ev.reason}`, 'error', this.windows[0]);
        return;
      case 'joined': {
        const w = this.window(ev.room)!;
        w.members.set(foldKey(ev.name), { name: ev.name, away: false });
        this.add(w, [{ text: `${this.clock(ev.ts)} `, style: 'time' }, { text: `-!- ${ev.name} has joined ${ev.room}`, style: 'notice' }], ev.ts, { indent: 6 });
        if (this.isMe(ev.name)) this.select(this.windows.indexOf(w));
        return;
      }
      case 'left': {
        const w = this.window(ev.room, false);
        if (!w) return;
        w.members.delete(foldKey(ev.name));
        const why = ev.why === 'part' ? `left ${ev.room}` : 'left the chat';
        const suffix = ev.why === 'timeout' ? ' (timed out)' : ev.why === 'lost' ? ' (connection lost)' : ev.reason ? ` (${ev.reason})` : '';
        this.add(w, [{ text: `${this.clock(ev.ts)} `, style: 'time' }, { text: `-!- ${ev.name} has ${why}${suffix}`, style: 'notice' }], ev.ts, { indent: 6 });
        if (this.isMe(ev.name) && ev.why === 'part') this.close(this.windows.indexOf(w));
        return;
      }
      case 'message': {
        const w = this.window(ev.room)!;
        if (ev.own && this.confirmPending(w, ev.body, ev.ts)) return;
        const { segs, indent } = this.messageSegs(ev);
        const high = !ev.own && !ev.history && this.mentions(ev.body);
        this.add(w, segs, ev.ts, { indent, activity: high ? Activity.Highlight : ev.history ? Activity.Event : Activity.Message });
        return;
      }
      case 'private': {
        const peer = peerOf(ev, this.me);
        const w = this.window(`@${peer}`)!;
        if (ev.own && this.confirmPending(w, ev.body, ev.ts)) return;
        const { segs, indent } = this.messageSegs(ev);
        // A private message is for you: it counts as a highlight.
        this.add(w, segs, ev.ts, { indent, activity: ev.own || ev.history ? Activity.Message : Activity.Highlight });
        return;
      }
      case 'topic': {
        const w = this.window(ev.room)!;
        w.topic = ev.topic;
        const text = ev.changed ? `${ev.by} changed the topic to: ${ev.topic}` : ev.topic === '' ? `no topic is set` : `topic: ${ev.topic} (set by ${ev.by})`;
        this.add(w, [{ text: `${this.clock(ev.ts || now)} `, style: 'time' }, { text: `-!- ${text}`, style: 'notice' }], ev.ts || now, { indent: 6 });
        return;
      }
      case 'nick': {
        if (ev.room === '') {
          this.me = ev.name;
          this.info(`you are now known as ${ev.name}`);
          return;
        }
        const w = this.window(ev.room, false);
        if (!w) return;
        w.members.delete(foldKey(ev.old));
        w.members.set(foldKey(ev.name), { name: ev.name, away: false });
        this.add(w, [{ text: `${this.clock(ev.ts)} `, style: 'time' }, { text: `-!- ${ev.old} is now known as ${ev.name}`, style: 'notice' }], ev.ts, { indent: 6 });
        return;
      }
      case 'away': {
        const text = ev.text === '' ? `${ev.name} is back` : `${ev.name} is away: ${ev.text}`;
        if (ev.room === '') return this.info(text);
        const w = this.window(ev.room, false);
        if (!w) return;
        const m = w.members.get(foldKey(ev.name));
        if (m) m.away = ev.text !== '';
        this.add(w, [{ text: `${this.clock(ev.ts)} `, style: 'time' }, { text: `-!- ${text}`, style: 'notice' }], ev.ts, { indent: 6, activity: Activity.None });
        return;
      }
      case 'members': {
        const w = this.window(ev.room)!;
        w.members.clear();
        for (const m of ev.members) w.members.set(foldKey(m.name), { ...m });
        if (ev.requested) {
          const names = ev.members.map((m) => (m.away ? `${m.name} (away)` : m.name)).join(', ');
          this.info(`members of ${ev.room}: ${names}${ev.omitted > 0 ? ` and ${ev.omitted} more` : ''}`, 'notice', w);
        }
        return;
      }
      case 'rooms':
        if (ev.rooms.length === 0) this.info('no rooms have members');
        for (const r of ev.rooms) this.info(`${r.name}: ${r.members} ${r.members === 1 ? 'member' : 'members'}${r.topic ? ` — ${r.topic}` : ''}`);
        return;
      case 'ok':
        this.info(ev.text);
        return;
      case 'error':
        this.info(ev.text, 'error');
        return;
      case 'caughtup':
        return;
    }
  }

  private isMe(name: string): boolean {
    return this.me !== null && foldKey(name) === foldKey(this.me);
  }

  /** The oldest pending line with this body becomes a confirmed message, in place. */
  private confirmPending(w: Window, body: string, ts: number): boolean {
    const line = w.lines.find((l) => l.pending === body);
    if (!line) return false;
    delete line.pending;
    line.segs = line.segs.map((s, i) => (i === 0 ? { text: `${this.clock(ts)} `, style: 'time' } : { ...s, style: i === 1 ? 'own' : s.style === 'pending' ? 'plain' : s.style }));
    delete line.cache;
    return true;
  }

  /** Whether a pending line is still waiting. */
  isPending(line: Line): boolean {
    return line.pending !== undefined;
  }

  rowsOf(line: Line, cols: number): Row[] {
    if (line.cache?.cols !== cols) line.cache = { cols, rows: wrapSegs(line.segs, cols, line.indent) };
    return line.cache.rows;
  }

  private totalRows(w: Window, cols: number): number {
    let n = 0;
    for (const l of w.lines) n += this.rowsOf(l, cols).length;
    return n;
  }

  /** The rows of the current window that fit `rows` × `cols`, with the unread marker, oldest first. */
  visibleRows(rows: number, cols: number): Row[] {
    this.cols = cols;
    const w = this.win;
    const need = rows + w.scrollRows;
    const out: Row[] = [];
    const marker: Row = [{ text: '─'.repeat(Math.max(0, cols - 6)) + ' new', style: 'marker' }];
    for (let i = w.lines.length - 1; i >= 0 && out.length < need; i--) {
      const r = this.rowsOf(w.lines[i]!, cols);
      for (let k = r.length - 1; k >= 0 && out.length < need; k--) out.push(r[k]!);
      if (w.unreadFrom === i && i > 0 && out.length < need) out.push(marker);
    }
    out.reverse();
    const end = out.length - Math.min(w.scrollRows, Math.max(0, out.length - rows));
    return out.slice(Math.max(0, end - rows), end);
  }

  /** irssi's activity list: windows with news, e.g. "2,3*" (* a highlight, with the count). */
  activityList(): string {
    const parts: string[] = [];
    this.windows.forEach((w, i) => {
      if (i === this.current || w.activity === Activity.None) return;
      parts.push(w.activity === Activity.Highlight ? `${i + 1}*${w.highlights > 1 ? w.highlights : ''}` : w.activity === Activity.Message ? `${i + 1}+` : `${i + 1}`);
    });
    return parts.join(',');
  }

  /** Members of the current window sorted by name, and names for completion. */
  memberNames(): string[] {
    const w = this.win;
    const names = [...w.members.values()].map((m) => m.name);
    if (w.kind === 'private') names.push(w.name.slice(1));
    return names.sort((a, b) => a.localeCompare(b));
  }
}
