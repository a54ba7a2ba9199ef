// What a typed line means: a message to the current room, or a /command. Shared by line mode, the
// simple prompt and the full-screen client, so all three understand the same commands.

import { ObrolClient, LOBBY } from '../client/client.js';
import type { ChatClient } from '../client/legacy-client.js';
import { checkName, checkRoom, foldKey } from '../chat/names.js';

export const COMMAND_HELP = `commands:
  /join #room         join a room (created if needed); your lines then go there
  /part [#room] [MSG] leave a room (default: the current one)
  /rooms              list rooms with member counts and topics
  /who [#room]        list a room's members
  /msg NAME TEXT      private message; both of you see it as [@name]
  /me ACTION          an action line: * you ACTION
  /nick NEW           change your name
  /topic [TEXT]       show or set the current room's topic (/topic #room ... for another)
  /away [TEXT]        mark yourself away with TEXT, or back without
  /quit [MESSAGE]     leave (rooms see MESSAGE)
  /help               this list
  //text              send a line that starts with a slash`;

/** The commands, for completion. */
export const COMMAND_NAMES = ['/join', '/part', '/rooms', '/who', '/msg', '/me', '/nick', '/topic', '/away', '/quit', '/help'] as const;

export type Input =
  | { kind: 'say'; body: string; action: boolean }
  | { kind: 'quit'; reason: string }
  | { kind: 'help' }
  | { kind: 'join'; room: string }
  | { kind: 'part'; room: string | null; reason: string }
  | { kind: 'rooms' }
  | { kind: 'who'; room: string | null }
  | { kind: 'msg'; to: string; body: string; action: boolean }
  | { kind: 'nick'; name: string }
  | { kind: 'topic'; room: string | null; topic: string | null }
  | { kind: 'away'; text: string }
  | { kind: 'error'; text: string }
  | { kind: 'empty' };

/** Splits off the first word. */
function word(s: string): [string, string] {
  const t = s.replace(/^\s+/, '');
  const i = t.search(/\s/);
  return i < 0 ? [t, ''] : [t.slice(0, i), t.slice(i + 1)];
}

/** Parses one input line into what to do with it; bad arguments give an error that says what to type. */
export function parseInput(line: string): Input {
  if (line.length === 0) return { kind: 'empty' };
  if (!line.startsWith('/') || line.startsWith('//')) return { kind: 'say', body: line.startsWith('//') ? line.slice(1) : line, action: false };
  const [cmdRaw, rest] = word(line);
  const cmd = cmdRaw.toLowerCase();
  switch (cmd) {
    case '/quit':
    case '/exit':
      return { kind: 'quit', reason: rest };
    case '/help':
      return { kind: 'help' };
    case '/me':
      return rest.trim() === '' ? { kind: 'error', text: '/me needs an action, e.g. /me waves' } : { kind: 'say', body: rest, action: true };
    case '/join':
    case '/j': {
      const [room, extra] = word(rest);
      if (room === '') return { kind: 'error', text: 'usage: /join #room' };
      const r = checkRoom(room.startsWith('#') ? room : `#${room}`);
      if (!r.ok) return { kind: 'error', text: `/join: ${r.reason}` };
      if (extra.trim() !== '') return { kind: 'error', text: 'usage: /join #room (one room at a time)' };
      return { kind: 'join', room: r.name };
    }
    case '/part':
    case '/leave': {
      const [first, after] = word(rest);
      if (first.startsWith('#')) {
        const r = checkRoom(first);
        if (!r.ok) return { kind: 'error', text: `/part: ${r.reason}` };
        return { kind: 'part', room: r.name, reason: after.trim() };
      }
      return { kind: 'part', room: null, reason: rest.trim() };
    }
    case '/rooms':
    case '/list':
      return rest.trim() === '' ? { kind: 'rooms' } : { kind: 'error', text: 'usage: /rooms (no arguments)' };
    case '/who':
    case '/names': {
      const [room] = word(rest);
      if (room === '') return { kind: 'who', room: null };
      const r = checkRoom(room);
      return r.ok ? { kind: 'who', room: r.name } : { kind: 'error', text: `/who: ${r.reason}` };
    }
    case '/msg':
    case '/query': {
      const [to, body] = word(rest);
      if (to === '' || body.trim() === '') return { kind: 'error', text: 'usage: /msg NAME TEXT' };
      const n = checkName(to);
      if (!n.ok) return { kind: 'error', text: `/msg: ${n.reason}` };
      return { kind: 'msg', to: n.name, body, action: false };
    }
    case '/nick': {
      const [name, extra] = word(rest);
      if (name === '' || extra.trim() !== '') return { kind: 'error', text: 'usage: /nick NEWNAME (one word)' };
      const n = checkName(name);
      return n.ok ? { kind: 'nick', name: n.name } : { kind: 'error', text: `/nick: ${n.reason}` };
    }
    case '/topic': {
      const [first, after] = word(rest);
      const r = first.startsWith('#') ? checkRoom(first) : null;
      if (r?.ok) return { kind: 'topic', room: r.name, topic: after.trim() === '' ? null : after.trim() };
      return { kind: 'topic', room: null, topic: rest.trim() === '' ? null : rest.trim() };
    }
    case '/away':
      return { kind: 'away', text: rest.trim() };
    case '/back':
      return { kind: 'away', text: '' };
    default:
      return { kind: 'error', text: `unknown command ${cmd}; /help lists the commands (start a line with // to send a slash)` };
  }
}

/** Where plain lines go: the room joined last, back to the previous one on /part. */
export class CurrentRoom {
  private readonly stack: string[] = [LOBBY];

  get room(): string {
    return this.stack[this.stack.length - 1] ?? LOBBY;
  }

  entered(room: string): void {
    this.left(room);
    this.stack.push(room);
  }

  left(room: string): void {
    const k = foldKey(room);
    for (let i = this.stack.length - 1; i >= 0; i--) if (foldKey(this.stack[i]!) === k) this.stack.splice(i, 1);
  }
}

export type CommandResult = { kind: 'sent' } | { kind: 'quit'; reason: string } | { kind: 'help' } | { kind: 'error'; text: string } | { kind: 'none' };

/**
 * Starts what a parsed line asks for. `track` is a promise for the outcome, for callers that count
 * failures (line mode); it never rejects with anything but the client's errors.
 */
export function runInput(client: ChatClient, input: Input, current: CurrentRoom): { result: CommandResult; done: Promise<unknown> | null } {
  const none = { result: { kind: 'none' } as CommandResult, done: null };
  switch (input.kind) {
    case 'empty':
      return { result: { kind: 'error', text: 'skipped an empty line: there is nothing to send' }, done: null };
    case 'error':
      return { result: { kind: 'error', text: input.text }, done: null };
    case 'help':
      return { result: { kind: 'help' }, done: null };
    case 'quit':
      return { result: { kind: 'quit', reason: input.reason }, done: null };
    case 'say':
      return { result: { kind: 'sent' }, done: client.say(input.body, { room: current.room, action: input.action }) };
    default:
      break;
  }
  if (!(client instanceof ObrolClient)) {
    return { result: { kind: 'error', text: `the original protocol has one room and no commands but /me, /quit and /help` }, done: null };
  }
  switch (input.kind) {
    case 'join':
      current.entered(input.room);
      return { result: { kind: 'sent' }, done: client.join(input.room) };
    case 'part': {
      const room = input.room ?? current.room;
      current.left(room);
      return { result: { kind: 'sent' }, done: client.part(room, input.reason) };
    }
    case 'rooms':
      return { result: { kind: 'sent' }, done: client.listRooms() };
    case 'who':
      return { result: { kind: 'sent' }, done: client.who(input.room ?? current.room) };
    case 'msg':
      return { result: { kind: 'sent' }, done: client.msg(input.to, input.body, { action: input.action }) };
    case 'nick':
      return { result: { kind: 'sent' }, done: client.nick(input.name) };
    case 'topic':
      return { result: { kind: 'sent' }, done: client.topic(input.room ?? current.room, input.topic ?? undefined) };
    case 'away':
      return { result: { kind: 'sent' }, done: client.away(input.text) };
  }
  return none;
}
