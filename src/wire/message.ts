// Chat messages: what travels inside a stream once the session layer has reassembled it.
// Layout per docs/PROTOCOL.md "Chat messages". Decoding validates every field against src/limits.ts.

import {
  AWAY_MAX_BYTES,
  LIST_MAX_ITEMS,
  MEMBERS_PER_REPLY,
  MESSAGE_MAX_BYTES,
  NAME_MAX_CHARS,
  ROOM_MAX_CHARS,
  PRESENCE_NAMES_PER_MESSAGE,
  ROOMS_PER_REPLY,
  SHORT_TEXT_MAX_BYTES,
  TOPIC_MAX_BYTES,
} from '../limits.js';
import { decodeWith, type Decoded, Reader, VARINT_MAX, WireError, Writer } from './buf.js';

// A name or room is at most N code points; a code point is at most 4 UTF-8 bytes.
const NAME_MAX_BYTES = NAME_MAX_CHARS * 4;
const ROOM_MAX_BYTES = ROOM_MAX_CHARS * 4;

export const ErrorCode = {
  NameTaken: 1,
  NameTooLong: 2,
  NameInvalid: 3,
  MessageTooLong: 4,
  MessageEmpty: 5,
  SlowDown: 6,
  NotInRoom: 7,
  ServerFull: 8,
  BadRequest: 9,
  NoSuchUser: 10,
  TooManyRooms: 11,
  TextTooLong: 12,
  /** The server failed (e.g. could not store a message): try again later. */
  ServerError: 13,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];
const ERROR_CODES = new Set<number>(Object.values(ErrorCode));

/** Why someone left a room. */
export const LeaveReason = { Quit: 0, TimedOut: 1, ConnectionLost: 2, Kicked: 3, Part: 4 } as const;
export type LeaveReason = (typeof LeaveReason)[keyof typeof LeaveReason];
const LEAVE_REASONS = new Set<number>(Object.values(LeaveReason));

/** Flag bits of say/msg/message/private. */
const FLAG_ACTION = 1;
/** Replayed from history (join replay or catch-up), not live. Server to client only. */
const FLAG_HISTORY = 2;

export interface MemberInfo {
  name: string;
  away: boolean;
}

export interface Departure {
  name: string;
  why: LeaveReason;
  reason: string;
}

export interface RoomInfo {
  name: string;
  members: number;
  topic: string;
}

export type ClientMsg =
  /** The first message of a session. `resume`: the client rejoins its rooms itself (catch-up), so the server
   * does not put it in #lobby. */
  | { type: 'hello'; name: string; resume: boolean }
  | { type: 'say'; ref: number; room: string; body: string; action: boolean }
  | { type: 'quit'; reason: string }
  /** `since`: the last message id the client has of this room; null asks for the usual join replay. */
  | { type: 'join'; ref: number; room: string; since: number | null }
  | { type: 'part'; ref: number; room: string; reason: string }
  | { type: 'list'; ref: number }
  | { type: 'who'; ref: number; room: string }
  | { type: 'msg'; ref: number; to: string; body: string; action: boolean }
  | { type: 'nick'; ref: number; name: string }
  /** `topic` null asks for the topic; a string sets it ('' clears). */
  | { type: 'topic'; ref: number; room: string; topic: string | null }
  /** '' clears away. */
  | { type: 'away'; ref: number; text: string }
  /** Next catch-up page after message `after`: of a room, or (room null) of one's private conversations. */
  | { type: 'history'; ref: number; room: string | null; after: number };

export type ServerMsg =
  | { type: 'welcome'; name: string; messageMax: number; floodBurst: number; floodRate: number; serverTime: number }
  | { type: 'rejected'; code: ErrorCode; reason: string }
  | { type: 'joined'; room: string; name: string; ts: number }
  | { type: 'left'; room: string; name: string; why: LeaveReason; reason: string; ts: number }
  | {
      type: 'message';
      room: string;
      /** Increasing per room, never reused (it survives restarts with the history). */
      id: number;
      ts: number;
      from: string;
      body: string;
      action: boolean;
      history: boolean;
      /** The sender's ref, only in the echo to the sender; null for everyone else. */
      ref: number | null;
    }
  | {
      type: 'private';
      /** Increasing over all private messages of the server. */
      id: number;
      ts: number;
      from: string;
      to: string;
      body: string;
      action: boolean;
      history: boolean;
      ref: number | null;
    }
  | { type: 'error'; code: ErrorCode; text: string; ref: number | null }
  /** A command done; `text` says what happened, for people. */
  | { type: 'ok'; ref: number | null; text: string }
  /** A page of a room's members; `omitted` is how many were not listed (after the last page). */
  | { type: 'members'; ref: number | null; room: string; members: MemberInfo[]; last: boolean; omitted: number }
  | { type: 'rooms'; ref: number | null; rooms: RoomInfo[]; last: boolean; omitted: number }
  /** A room's topic: on join, on change (by, ts of the change) and on request. '' means none. */
  | { type: 'topic'; ref: number | null; room: string; topic: string; by: string; ts: number }
  /** A name change, seen in each room the person is in; room '' tells the person themself. */
  | { type: 'nick'; room: string; old: string; name: string; ts: number }
  | { type: 'away'; room: string; name: string; text: string; ts: number }
  /** The end of a history page: `more` means the client should ask for the next one (after its last id). */
  | { type: 'caughtup'; ref: number | null; room: string | null; more: boolean }
  /** A big room's joins and leaves of the last moments, together (PRESENCE_COALESCE_MEMBERS). */
  | { type: 'presence'; room: string; ts: number; joined: string[]; left: Departure[] };

const C = { hello: 0x01, say: 0x02, quit: 0x03, join: 0x04, part: 0x05, list: 0x06, who: 0x07, msg: 0x08, nick: 0x09, topic: 0x0a, away: 0x0b, history: 0x0c } as const;
const S = {
  welcome: 0x81,
  rejected: 0x82,
  joined: 0x83,
  left: 0x84,
  message: 0x85,
  error: 0x86,
  private: 0x87,
  ok: 0x88,
  members: 0x89,
  rooms: 0x8a,
  topic: 0x8b,
  nick: 0x8c,
  away: 0x8d,
  caughtup: 0x8e,
  presence: 0x8f,
} as const;

// Optional numbers travel as n+1 so that 0 can mean "none".
function writeOpt(w: Writer, v: number | null): void {
  w.varint(v === null ? 0 : v + 1);
}
function readOpt(r: Reader, what: string): number | null {
  const v = r.varint(what);
  return v === 0 ? null : v - 1;
}
/** A ref or id the client chose: replies carry it +1, so the largest varint cannot be used. */
function readChosen(r: Reader, what: string): number {
  return r.varint(what, VARINT_MAX - 1);
}
function writeOptText(w: Writer, s: string | null): void {
  if (s === null) w.u8(0);
  else w.u8(1).text(s);
}
function readOptText(r: Reader, max: number, what: string): string | null {
  const tag = r.u8(what);
  if (tag === 0) return null;
  if (tag !== 1) throw new WireError('bad-value', `${what} tag ${tag}`);
  return r.text(max, what);
}

function readErrorCode(r: Reader): ErrorCode {
  const c = r.u8('code');
  if (!ERROR_CODES.has(c)) throw new WireError('bad-value', `error code ${c}`);
  return c as ErrorCode;
}

function readFlags(r: Reader, allowed: number): number {
  const f = r.u8('flags');
  if ((f & ~allowed) !== 0) throw new WireError('bad-value', `flags ${f}`);
  return f;
}

function readBool(r: Reader, what: string): boolean {
  const b = r.u8(what);
  if (b > 1) throw new WireError('bad-value', `${what} ${b}`);
  return b === 1;
}

function readCount(r: Reader, max: number, what: string): number {
  return r.varint(what, max);
}

export function encodeClientMsg(m: ClientMsg): Uint8Array {
  const w = new Writer(64);
  switch (m.type) {
    case 'hello':
      w.u8(C.hello).text(m.name).u8(m.resume ? 1 : 0);
      break;
    case 'say':
      w.u8(C.say).varint(m.ref).text(m.room).text(m.body).u8(m.action ? FLAG_ACTION : 0);
      break;
    case 'quit':
      w.u8(C.quit).text(m.reason);
      break;
    case 'join':
      w.u8(C.join).varint(m.ref).text(m.room);
      writeOpt(w, m.since);
      break;
    case 'part':
      w.u8(C.part).varint(m.ref).text(m.room).text(m.reason);
      break;
    case 'list':
      w.u8(C.list).varint(m.ref);
      break;
    case 'who':
      w.u8(C.who).varint(m.ref).text(m.room);
      break;
    case 'msg':
      w.u8(C.msg).varint(m.ref).text(m.to).text(m.body).u8(m.action ? FLAG_ACTION : 0);
      break;
    case 'nick':
      w.u8(C.nick).varint(m.ref).text(m.name);
      break;
    case 'topic':
      w.u8(C.topic).varint(m.ref).text(m.room);
      writeOptText(w, m.topic);
      break;
    case 'away':
      w.u8(C.away).varint(m.ref).text(m.text);
      break;
    case 'history':
      w.u8(C.history).varint(m.ref);
      writeOptText(w, m.room);
      w.varint(m.after);
      break;
  }
  return w.finish();
}

export function decodeClientMsg(bytes: Uint8Array): Decoded<ClientMsg> {
  return decodeWith(bytes, (r): ClientMsg => {
    const t = r.u8('type');
    switch (t) {
      case C.hello:
        return { type: 'hello', name: r.text(NAME_MAX_BYTES, 'name'), resume: readBool(r, 'resume') };
      case C.say: {
        const ref = readChosen(r, 'ref');
        const room = r.text(ROOM_MAX_BYTES, 'room');
        const body = r.text(MESSAGE_MAX_BYTES, 'body');
        return { type: 'say', ref, room, body, action: (readFlags(r, FLAG_ACTION) & FLAG_ACTION) !== 0 };
      }
      case C.quit:
        return { type: 'quit', reason: r.text(SHORT_TEXT_MAX_BYTES, 'reason') };
      case C.join:
        return { type: 'join', ref: readChosen(r, 'ref'), room: r.text(ROOM_MAX_BYTES, 'room'), since: readOpt(r, 'since') };
      case C.part:
        return { type: 'part', ref: readChosen(r, 'ref'), room: r.text(ROOM_MAX_BYTES, 'room'), reason: r.text(SHORT_TEXT_MAX_BYTES, 'reason') };
      case C.list:
        return { type: 'list', ref: readChosen(r, 'ref') };
      case C.who:
        return { type: 'who', ref: readChosen(r, 'ref'), room: r.text(ROOM_MAX_BYTES, 'room') };
      case C.msg: {
        const ref = readChosen(r, 'ref');
        const to = r.text(NAME_MAX_BYTES, 'to');
        const body = r.text(MESSAGE_MAX_BYTES, 'body');
        return { type: 'msg', ref, to, body, action: (readFlags(r, FLAG_ACTION) & FLAG_ACTION) !== 0 };
      }
      case C.nick:
        return { type: 'nick', ref: readChosen(r, 'ref'), name: r.text(NAME_MAX_BYTES, 'name') };
      case C.topic:
        return { type: 'topic', ref: readChosen(r, 'ref'), room: r.text(ROOM_MAX_BYTES, 'room'), topic: readOptText(r, TOPIC_MAX_BYTES, 'topic') };
      case C.away:
        return { type: 'away', ref: readChosen(r, 'ref'), text: r.text(AWAY_MAX_BYTES, 'away') };
      case C.history:
        return { type: 'history', ref: readChosen(r, 'ref'), room: readOptText(r, ROOM_MAX_BYTES, 'room'), after: r.varint('after') };
      default:
        throw new WireError('bad-type', `client message type ${t}`);
    }
  });
}

export function encodeServerMsg(m: ServerMsg): Uint8Array {
  const w = new Writer(64);
  switch (m.type) {
    case 'welcome':
      w.u8(S.welcome).text(m.name).varint(m.messageMax).varint(m.floodBurst).varint(m.floodRate).u64(m.serverTime);
      break;
    case 'rejected':
      w.u8(S.rejected).u8(m.code).text(m.reason);
      break;
    case 'joined':
      w.u8(S.joined).text(m.room).text(m.name).u64(m.ts);
      break;
    case 'left':
      w.u8(S.left).text(m.room).text(m.name).u8(m.why).text(m.reason).u64(m.ts);
      break;
    case 'message':
      w.u8(S.message).text(m.room).varint(m.id).u64(m.ts).text(m.from).text(m.body);
      w.u8((m.action ? FLAG_ACTION : 0) | (m.history ? FLAG_HISTORY : 0));
      writeOpt(w, m.ref);
      break;
    case 'private':
      w.u8(S.private).varint(m.id).u64(m.ts).text(m.from).text(m.to).text(m.body);
      w.u8((m.action ? FLAG_ACTION : 0) | (m.history ? FLAG_HISTORY : 0));
      writeOpt(w, m.ref);
      break;
    case 'error':
      w.u8(S.error).u8(m.code).text(m.text);
      writeOpt(w, m.ref);
      break;
    case 'ok':
      w.u8(S.ok);
      writeOpt(w, m.ref);
      w.text(m.text);
      break;
    case 'members':
      w.u8(S.members);
      writeOpt(w, m.ref);
      w.text(m.room).varint(m.members.length);
      for (const x of m.members) w.text(x.name).u8(x.away ? 1 : 0);
      w.u8(m.last ? 1 : 0).varint(m.omitted);
      break;
    case 'rooms':
      w.u8(S.rooms);
      writeOpt(w, m.ref);
      w.varint(m.rooms.length);
      for (const x of m.rooms) w.text(x.name).varint(x.members).text(x.topic);
      w.u8(m.last ? 1 : 0).varint(m.omitted);
      break;
    case 'topic':
      w.u8(S.topic);
      writeOpt(w, m.ref);
      w.text(m.room).text(m.topic).text(m.by).u64(m.ts);
      break;
    case 'nick':
      w.u8(S.nick).text(m.room).text(m.old).text(m.name).u64(m.ts);
      break;
    case 'away':
      w.u8(S.away).text(m.room).text(m.name).text(m.text).u64(m.ts);
      break;
    case 'caughtup':
      w.u8(S.caughtup);
      writeOpt(w, m.ref);
      writeOptText(w, m.room);
      w.u8(m.more ? 1 : 0);
      break;
    case 'presence':
      w.u8(S.presence).text(m.room).u64(m.ts).varint(m.joined.length);
      for (const n of m.joined) w.text(n);
      w.varint(m.left.length);
      for (const d of m.left) w.text(d.name).u8(d.why).text(d.reason);
      break;
  }
  return w.finish();
}

export function decodeServerMsg(bytes: Uint8Array): Decoded<ServerMsg> {
  return decodeWith(bytes, (r): ServerMsg => {
    const t = r.u8('type');
    switch (t) {
      case S.welcome:
        return {
          type: 'welcome',
          name: r.text(NAME_MAX_BYTES, 'name'),
          messageMax: r.varint('message_max'),
          floodBurst: r.varint('flood_burst'),
          floodRate: r.varint('flood_rate'),
          serverTime: r.u64('server_time'),
        };
      case S.rejected:
        return { type: 'rejected', code: readErrorCode(r), reason: r.text(SHORT_TEXT_MAX_BYTES, 'reason') };
      case S.joined:
        return { type: 'joined', room: r.text(ROOM_MAX_BYTES, 'room'), name: r.text(NAME_MAX_BYTES, 'name'), ts: r.u64('ts') };
      case S.left: {
        const room = r.text(ROOM_MAX_BYTES, 'room');
        const name = r.text(NAME_MAX_BYTES, 'name');
        const why = r.u8('why');
        if (!LEAVE_REASONS.has(why)) throw new WireError('bad-value', `leave reason ${why}`);
        return { type: 'left', room, name, why: why as LeaveReason, reason: r.text(SHORT_TEXT_MAX_BYTES, 'reason'), ts: r.u64('ts') };
      }
      case S.message: {
        const room = r.text(ROOM_MAX_BYTES, 'room');
        const id = r.varint('id');
        const ts = r.u64('ts');
        const from = r.text(NAME_MAX_BYTES, 'from');
        const body = r.text(MESSAGE_MAX_BYTES, 'body');
        const f = readFlags(r, FLAG_ACTION | FLAG_HISTORY);
        return { type: 'message', room, id, ts, from, body, action: (f & FLAG_ACTION) !== 0, history: (f & FLAG_HISTORY) !== 0, ref: readOpt(r, 'ref') };
      }
      case S.private: {
        const id = r.varint('id');
        const ts = r.u64('ts');
        const from = r.text(NAME_MAX_BYTES, 'from');
        const to = r.text(NAME_MAX_BYTES, 'to');
        const body = r.text(MESSAGE_MAX_BYTES, 'body');
        const f = readFlags(r, FLAG_ACTION | FLAG_HISTORY);
        return { type: 'private', id, ts, from, to, body, action: (f & FLAG_ACTION) !== 0, history: (f & FLAG_HISTORY) !== 0, ref: readOpt(r, 'ref') };
      }
      case S.error:
        return { type: 'error', code: readErrorCode(r), text: r.text(SHORT_TEXT_MAX_BYTES, 'text'), ref: readOpt(r, 'ref') };
      case S.ok:
        return { type: 'ok', ref: readOpt(r, 'ref'), text: r.text(SHORT_TEXT_MAX_BYTES, 'text') };
      case S.members: {
        const ref = readOpt(r, 'ref');
        const room = r.text(ROOM_MAX_BYTES, 'room');
        const n = readCount(r, MEMBERS_PER_REPLY, 'member count');
        const members: MemberInfo[] = [];
        for (let i = 0; i < n; i++) members.push({ name: r.text(NAME_MAX_BYTES, 'member'), away: readBool(r, 'away') });
        return { type: 'members', ref, room, members, last: readBool(r, 'last'), omitted: r.varint('omitted') };
      }
      case S.rooms: {
        const ref = readOpt(r, 'ref');
        const n = readCount(r, ROOMS_PER_REPLY, 'room count');
        const rooms: RoomInfo[] = [];
        for (let i = 0; i < n; i++) rooms.push({ name: r.text(ROOM_MAX_BYTES, 'room'), members: r.varint('members'), topic: r.text(TOPIC_MAX_BYTES, 'topic') });
        return { type: 'rooms', ref, rooms, last: readBool(r, 'last'), omitted: r.varint('omitted', LIST_MAX_ITEMS * 1000) };
      }
      case S.topic:
        return {
          type: 'topic',
          ref: readOpt(r, 'ref'),
          room: r.text(ROOM_MAX_BYTES, 'room'),
          topic: r.text(TOPIC_MAX_BYTES, 'topic'),
          by: r.text(NAME_MAX_BYTES, 'by'),
          ts: r.u64('ts'),
        };
      case S.nick:
        return { type: 'nick', room: r.text(ROOM_MAX_BYTES, 'room'), old: r.text(NAME_MAX_BYTES, 'old'), name: r.text(NAME_MAX_BYTES, 'name'), ts: r.u64('ts') };
      case S.away:
        return { type: 'away', room: r.text(ROOM_MAX_BYTES, 'room'), name: r.text(NAME_MAX_BYTES, 'name'), text: r.text(AWAY_MAX_BYTES, 'away'), ts: r.u64('ts') };
      case S.caughtup:
        return { type: 'caughtup', ref: readOpt(r, 'ref'), room: readOptText(r, ROOM_MAX_BYTES, 'room'), more: readBool(r, 'more') };
      case S.presence: {
        const room = r.text(ROOM_MAX_BYTES, 'room');
        const ts = r.u64('ts');
        const nj = readCount(r, PRESENCE_NAMES_PER_MESSAGE, 'joined count');
        const joined: string[] = [];
        for (let i = 0; i < nj; i++) joined.push(r.text(NAME_MAX_BYTES, 'joined'));
        const nl = readCount(r, PRESENCE_NAMES_PER_MESSAGE, 'left count');
        const left: Departure[] = [];
        for (let i = 0; i < nl; i++) {
          const name = r.text(NAME_MAX_BYTES, 'left');
          const why = r.u8('why');
          if (!LEAVE_REASONS.has(why)) throw new WireError('bad-value', `leave reason ${why}`);
          left.push({ name, why: why as LeaveReason, reason: r.text(SHORT_TEXT_MAX_BYTES, 'reason') });
        }
        return { type: 'presence', room, ts, joined, left };
      }
      default:
        throw new WireError('bad-type', `server message type ${t}`);
    }
  });
}

/**
 * Where the body of a live room message starts in an encoded server message (its length is the varint
 * before it, its text not checked), or -1 for anything else: another type, a history replay, or bytes
 * decodeServerMsg would refuse before the body. For readers that need only the body's bytes (the load
 * generator), which would otherwise decode every field into a string.
 */
export function roomMessageBodyAt(bytes: Uint8Array): number {
  if (bytes[0] !== S.message) return -1;
  try {
    const r = new Reader(bytes);
    r.u8();
    r.lenBytes(ROOM_MAX_BYTES, 'room');
    r.varint('id');
    r.u64('ts');
    r.lenBytes(NAME_MAX_BYTES, 'from');
    const n = r.varint('body length');
    if (n > MESSAGE_MAX_BYTES) return -1;
    const at = r.offset;
    r.bytesN(n, 'body');
    return (r.u8('flags') & FLAG_HISTORY) === 0 ? at : -1;
  } catch (e) {
    if (e instanceof WireError) return -1;
    throw e;
  }
}
