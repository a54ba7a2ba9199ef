// The full-screen client: the ink shell around the view model (view.ts), the input line (editor.ts) and
// the key decoder (keys.ts). It owns the terminal: alternate screen, raw mode, bracketed paste, resize,
// and at most one redraw every RENDER_INTERVAL_MS so a burst of messages never flickers.

import { createElement as h, type ReactElement } from 'react';
import type { Instance } from 'ink';
import { ObrolClient, ObrolClientError, LOBBY, type ChatEvent } from '../client/client.js';
import type { ChatClient } from '../client/legacy-client.js';
import { COMMAND_HELP, COMMAND_NAMES, CurrentRoom, parseInput, runInput } from '../cli/commands.js';
import { clock } from '../cli/format.js';
import { ChatView, type Line } from './view.js';
import { LineEditor } from './editor.js';
import { KeyDecoder, type Key } from './keys.js';
import { fit, width, type Row, type Seg, type Style } from './text.js';

/** About 30 frames a second at most. */
const RENDER_INTERVAL_MS = 33;
/** A paste of more lines than this asks before it is sent. */
const PASTE_CONFIRM_LINES = 5;
const MEMBERS_WIDTH = 18;
const CTRL_C_WINDOW_MS = 2_000;
const TUI_COMMANDS = ['/window', '/close', '/members', '/clear'];

const PALETTE = ['red', 'green', 'yellow', 'blue', 'magenta', 'cyan', 'redBright', 'greenBright', 'yellowBright', 'blueBright', 'magentaBright', 'cyanBright'];

interface Look {
  color?: string;
  dimColor?: boolean;
  bold?: boolean;
  inverse?: boolean;
  italic?: boolean;
}

function look(seg: Seg, colour: boolean): Look {
  const style: Style = seg.style;
  const c = (name: string): Look => (colour ? { color: name } : {});
  switch (style) {
    case 'time':
      return { dimColor: true };
    case 'nick':
      return colour && seg.colour !== undefined ? { color: PALETTE[seg.colour % PALETTE.length]! } : {};
    case 'own':
      return { bold: true };
    case 'pending':
      return { dimColor: true, italic: true };
    case 'failed':
      return { ...c('red'), dimColor: true };
    case 'action':
      return c('magenta');
    case 'notice':
      return c('cyan');
    case 'error':
      return { ...c('red'), bold: true };
    case 'history':
      return { dimColor: true };
    case 'highlight':
      return colour ? { color: 'yellowBright', bold: true } : { bold: true, inverse: true };
    case 'marker':
      return c('red');
    case 'day':
      return { bold: true };
    default:
      return {};
  }
}

type Ink = typeof import('ink');
let Text: Ink['Text'];

function rowElement(key: string, segs: Row, colour: boolean): ReactElement {
  return h(Text, { key, wrap: 'truncate' }, ...segs.map((s, i) => h(Text, { key: String(i), ...look(s, colour) }, s.text)));
}

export interface FullScreenOptions {
  /** For the status bar. */
  label: string;
  /** Events that arrived while connecting, before the screen existed. */
  early?: ChatEvent[];
}

/** Runs the full-screen client until the user quits; returns the exit code. */
export async function runFullScreen(client: ChatClient, opts: FullScreenOptions): Promise<number> {
  const stdin = process.stdin;
  const stdout = process.stdout;
  // ink draws nothing live when it believes it runs in CI (it reads CI when loaded). This runs only on a
  // terminal, where someone is looking, so say so before loading it.
  delete process.env.CI;
  delete process.env.CONTINUOUS_INTEGRATION;
  const ink = await import('ink');
  const { render, Box } = ink;
  Text = ink.Text;
  const colour = !('NO_COLOR' in process.env) || process.env.NO_COLOR === '';
  const view = new ChatView();
  const editor = new LineEditor();
  const decoder = new KeyDecoder();
  let showMembers = true;
  let confirmPaste: string | null = null;
  let lastCtrlC = 0;
  let exitCode = 0;
  let quitting = false;
  /** The connection is gone for good: the next key exits. */
  let over = false;
  let finished: (() => void) | null = null;
  const done = new Promise<void>((r) => (finished = r));

  // The room plain lines go to is the window you are in.
  const current = {
    get room(): string {
      return view.win.kind === 'room' ? view.win.name : LOBBY;
    },
    entered(): void {},
    left(): void {},
  } as unknown as CurrentRoom;

  stdout.write('\x1b[?1049h\x1b[?2004h'); // alternate screen, bracketed paste
  let instance: Instance | null = null;
  let timer: NodeJS.Timeout | null = null;
  let lastRender = 0;

  const frame = (): ReactElement => {
    const cols = Math.max(20, stdout.columns ?? 80);
    const rows = Math.max(6, stdout.rows ?? 24);
    const w = view.win;
    const members = showMembers && w.kind === 'room' ? [...w.members.values()].sort((a, b) => a.name.localeCompare(b.name)) : null;
    const msgCols = members ? cols - MEMBERS_WIDTH - 1 : cols;
    const area = rows - 3;
    const lines = view.visibleRows(area, msgCols);
    const out: ReactElement[] = [];
    const topic = w.kind === 'room' ? `${w.name}: ${w.topic || '(no topic)'}` : w.kind === 'private' ? `private conversation with ${w.name.slice(1)}` : `obrol — ${opts.label}`;
    const top = fit(topic, cols);
    out.push(h(Text, { key: 'top', inverse: true, wrap: 'truncate' }, top + ' '.repeat(Math.max(0, cols - width(top)))));
    for (let i = 0; i < area; i++) {
      const r = lines[i - (area - lines.length)] ?? [];
      if (!members) {
        out.push(rowElement(`r${i}`, r, colour));
        continue;
      }
      const used = r.reduce((n, s) => n + width(s.text), 0);
      const m = members[i];
      const label = m ? fit((m.away ? '~' : ' ') + m.name, MEMBERS_WIDTH) : '';
      out.push(rowElement(`r${i}`, [...r, { text: ' '.repeat(Math.max(0, msgCols - used)) + '│', style: 'time' }, { text: label, style: m?.away ? 'time' : 'plain' }], colour));
    }
    // Status bar: time, name, connection, window, activity.
    const st = client instanceof ObrolClient ? client.status : 'open';
    const rtt = client instanceof ObrolClient && client.rttMs !== null ? ` ${Math.round(client.rttMs)}ms` : '';
    const conn = st === 'open' ? `${opts.label}${rtt}` : `${opts.label} ${st.toUpperCase()}`;
    const act = view.activityList();
    const pending = client.pending > 0 ? ` [pending ${client.pending}]` : '';
    const status = `[${clock(Date.now())}] [${view.me ?? '…'}] [${conn}] [${view.current + 1}:${w.name}]${act ? ` [Act: ${act}]` : ''}${pending}`;
    const bar = confirmPaste !== null ? `paste ${confirmPaste.split('\n').length} lines as one message? y/n` : status;
    const barText = fit(bar, cols);
    out.push(h(Text, { key: 'status', inverse: true, wrap: 'truncate', ...(st !== 'open' && colour ? { color: 'yellow' } : {}) }, barText + ' '.repeat(Math.max(0, cols - width(barText)))));
    // Input line: a prompt, the text (newlines shown as ⏎), an inverse-video cursor; scrolled to keep it in view.
    const [before, after] = editor.split.map((s) => s.replace(/\n/g, '⏎')) as [string, string];
    const prompt = `[${w.kind === 'status' ? '(status)' : w.name}] `;
    const room = cols - width(prompt) - 1;
    let shown = before;
    while (width(shown) > room && shown.length > 0) shown = shown.slice(Math.max(1, Math.floor(shown.length / 8)));
    const cursorChar = after.length > 0 ? [...after][0]! : ' ';
    const rest = fit(after.slice(cursorChar.length), Math.max(0, room - width(shown) - width(cursorChar)));
    out.push(h(Text, { key: 'input', wrap: 'truncate' }, prompt, shown, h(Text, { inverse: true }, cursorChar), rest));
    return h(Box, { flexDirection: 'column', width: cols, height: rows }, ...out);
  };

  const draw = (): void => {
    timer = null;
    lastRender = Date.now();
    if (instance) instance.rerender(frame());
    else instance = render(frame(), { stdout, stdin, exitOnCtrlC: false, patchConsole: false });
  };
  const schedule = (): void => {
    if (timer !== null) return;
    timer = setTimeout(draw, Math.max(0, RENDER_INTERVAL_MS - (Date.now() - lastRender)));
  };

  const finish = (code: number): void => {
    if (finished === null) return;
    exitCode = code;
    const f = finished;
    finished = null;
    f();
  };

  for (const ev of opts.early ?? []) view.apply(ev, Date.now());
  client.on((ev: ChatEvent) => {
    view.apply(ev, Date.now());
    if (ev.type === 'closed') {
      over = true;
      if (quitting) finish(exitCode);
      else {
        exitCode = ev.kind === 'rejected' ? 2 : 1;
        view.info('press any key to exit', 'error');
      }
    }
    schedule();
  });

  const sendMessage = (target: string, body: string, action: boolean): void => {
    const line: Line = view.addPending(target, body, action, Date.now());
    const p = target.startsWith('@') && client instanceof ObrolClient ? client.msg(target.slice(1), body, { action }) : client.say(body, { room: target, action });
    p.catch((e: Error) => {
      view.failPending(line, e instanceof ObrolClientError ? e.message : String(e));
      schedule();
    });
  };

  const quit = (reason: string): void => {
    if (quitting) return;
    quitting = true;
    view.info('leaving…');
    schedule();
    void client.quit(reason).finally(() => finish(exitCode));
  };

  const submit = (line: string): void => {
    if (line === '') return;
    const [cmd, ...args] = line.trim().split(/\s+/);
    switch (cmd?.toLowerCase()) {
      case '/window':
      case '/win': {
        const n = Number(args[0]);
        if (!Number.isInteger(n) || n < 1 || n > view.windows.length) view.info(`usage: /window N, N from 1 to ${view.windows.length}`, 'error');
        else view.select(n - 1);
        return;
      }
      case '/close':
        if (view.win.kind === 'room') void runInput(client, { kind: 'part', room: view.win.name, reason: '' }, current).done?.catch(() => {});
        else if (view.win.kind === 'private') view.close(view.current);
        return;
      case '/members':
        showMembers = !showMembers;
        return;
      case '/clear':
        view.win.lines.length = 0;
        view.win.scrollRows = 0;
        return;
      case '/help':
        for (const l of COMMAND_HELP.split('\n')) view.info(l);
        view.info('  /window N          go to window N (also Alt+1..9, Ctrl+N/Ctrl+P); /close closes it');
        view.info('  /members           show or hide the member list (also F2); PgUp/PgDn scroll');
        return;
      default:
        break;
    }
    const input = parseInput(line);
    if (input.kind === 'say' || (input.kind === 'msg' && client instanceof ObrolClient)) {
      const target = input.kind === 'msg' ? `@${input.to}` : view.win.kind === 'status' ? null : view.win.name;
      if (target === null) {
        view.info('this is the status window: /join a room, or switch windows with Alt+2', 'error');
        return;
      }
      if (input.kind === 'msg') view.select(view.windows.indexOf(view.window(target)!));
      sendMessage(target, input.body, input.action);
      return;
    }
    const { result, done: d } = runInput(client, input, current);
    if (result.kind === 'quit') quit(result.reason);
    else if (result.kind === 'error') view.info(result.text, 'error');
    else if (result.kind === 'help') for (const l of COMMAND_HELP.split('\n')) view.info(l);
    d?.catch((e: Error) => {
      if (!(e instanceof ObrolClientError && e.kind === 'refused')) view.info(e.message, 'error');
      schedule();
    });
  };

  const onKey = (k: Key): void => {
    if (over && !quitting) return finish(exitCode);
    if (confirmPaste !== null) {
      const text = confirmPaste;
      confirmPaste = null;
      if (k.type === 'text' && k.text.toLowerCase() === 'y') submitRaw(text);
      else view.info('paste discarded');
      return;
    }
    const rows = Math.max(6, stdout.rows ?? 24) - 3;
    switch (k.type) {
      case 'text':
        editor.insert(k.text);
        break;
      case 'paste':
        if (!k.text.includes('\n')) editor.insert(k.text);
        else if (k.text.replace(/\n+$/, '').split('\n').length > PASTE_CONFIRM_LINES) confirmPaste = k.text.replace(/\n+$/, '');
        else editor.insert(k.text.replace(/\n+$/, ''));
        break;
      case 'enter':
        submitRaw(editor.take());
        break;
      case 'newline':
        editor.insert('\n');
        break;
      case 'tab':
        editor.complete(view.memberNames(), [...COMMAND_NAMES, ...TUI_COMMANDS]);
        break;
      case 'backspace':
        editor.backspace();
        break;
      case 'delete':
        editor.deleteForward();
        break;
      case 'left':
        editor.left();
        break;
      case 'right':
        editor.right();
        break;
      case 'home':
        editor.home();
        break;
      case 'end':
        editor.end();
        break;
      case 'up':
        editor.historyUp();
        break;
      case 'down':
        editor.historyDown();
        break;
      case 'pageup':
        view.scroll(1, rows);
        break;
      case 'pagedown':
        view.scroll(-1, rows);
        break;
      case 'f2':
        showMembers = !showMembers;
        break;
      case 'escape':
        break;
      case 'alt':
        if (/^[1-9]$/.test(k.key)) view.select(Number(k.key) - 1);
        else if (k.key === '0') view.select(9);
        else if (k.key === 'l') showMembers = !showMembers;
        break;
      case 'ctrl':
        switch (k.key) {
          case 'c':
            if (Date.now() - lastCtrlC < CTRL_C_WINDOW_MS) quit('');
            else view.info('press Ctrl+C again to quit (or type /quit)');
            lastCtrlC = Date.now();
            break;
          case 'n':
            view.next();
            break;
          case 'p':
            view.prev();
            break;
          case 'w':
            editor.deleteWord();
            break;
          case 'u':
            editor.killToStart();
            break;
          case 'k':
            editor.killToEnd();
            break;
          case 'a':
            editor.home();
            break;
          case 'e':
            editor.end();
            break;
          case 'l':
            instance?.clear();
            break;
          case 'd':
            if (editor.text === '') quit('');
            break;
          default:
            break;
        }
        break;
    }
  };

  /** A line (or multi-line message) entered: plain text keeps its newlines as one message. */
  const submitRaw = (line: string): void => {
    if (line.includes('\n') && !line.startsWith('/')) {
      const target = view.win.kind === 'status' ? null : view.win.name;
      if (target === null) view.info('this is the status window: /join a room, or switch windows with Alt+2', 'error');
      else sendMessage(target, line, false);
      return;
    }
    submit(line);
  };

  if (stdin.isTTY) stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  const onData = (data: string): void => {
    for (const k of decoder.feed(data)) onKey(k);
    schedule();
  };
  stdin.on('data', onData);
  stdin.resume();
  const onResize = (): void => {
    instance?.clear();
    schedule();
  };
  stdout.on('resize', onResize);
  // The clock and RTT in the status bar move on their own.
  const tick = setInterval(schedule, 1000);
  draw();

  await done;
  clearInterval(tick);
  if (timer) clearTimeout(timer);
  draw();
  stdin.off('data', onData);
  stdout.off('resize', onResize);
  (instance as Instance | null)?.unmount();
  if (stdin.isTTY) stdin.setRawMode(false);
  stdin.pause();
  stdout.write('\x1b[?2004l\x1b[?1049l');
  return exitCode;
}
