// Chat messages: what travels inside a stream once the session layer has reassembled it.
// Layout per docs/PROTOCOL.md "Chat messages". Decoding validates every field against src/limits.ts.

import {
  MESSAGE_MAX_BYTES,
  NAME_MAX_CHARS,
  ROOM_MAX_CHARS,
  SHORT_TEXT_MAX_BYTES,
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
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];
const ERROR_CODES = new Set<number>(Object.values(ErrorCode));

/** Why someone left a room. */
export const LeaveReason = { Quit: 0, TimedOut: 1, ConnectionLost: 2, Kicked: 3 } as const;
export type LeaveReason = (typeof LeaveReason)[keyof typeof LeaveReason];
const LEAVE_REASONS = new Set<number>(Object.values(LeaveReason));

/** Flag bits of say/message. */
export const MSG_ACTION = 1;
const MSG_FLAGS_MASK = MSG_ACTION;

export type ClientMsg =
  | { type: 'hello'; name: string }
  | { type: 'say'; ref: number; room: string; body: string; action: boolean }
  | { type: 'quit'; reason: string };

export type ServerMsg =
  | { type: 'welcome'; name: string; messageMax: number; floodBurst: number; floodRate: number; serverTime: number }
  | { type: 'rejected'; code: ErrorCode; reason: string }
  | { type: 'joined'; room: string; name: string; ts: number }
  | { type: 'left'; room: string; name: string; why: LeaveReason; reason: string; ts: number }
  | {
      type: 'message';
      room: string;
      id: number;
      ts: number;
      from: string;
      body: string;
      action: boolean;
      /** The sender's ref, only in the echo to the sender; null for everyone else. */
      ref: number | null;
    }
  | { type: 'error'; code: ErrorCode; text: string; ref: number | null };

const C = { hello: 0x01, say: 0x02, quit: 0x03 } as const;
const S = { welcome: 0x81, rejected: 0x82, joined: 0x83, left: 0x84, message: 0x85, error: 0x86 } as const;

// ref travels as ref+1 so that 0 can mean "none".
function writeRef(w: Writer, ref: number | null): void {
  w.varint(ref === null ? 0 : ref + 1);
}
function readRef(r: Reader): number | null {
  const v = r.varint('ref');
  return v === 0 ? null : v - 1;
}

function readErrorCode(r: Reader): ErrorCode {
  const c = r.u8('code');
  if (!ERROR_CODES.has(c)) throw new WireError('bad-value', `error code ${c}`);
  return c as ErrorCode;
}

function readFlags(r: Reader): boolean {
  const f = r.u8('flags');
  if ((f & ~MSG_FLAGS_MASK) !== 0) throw new WireError('bad-value', `flags ${f}`);
  return (f & MSG_ACTION) !== 0;
}

export function encodeClientMsg(m: ClientMsg): Uint8Array {
  const w = new Writer(64);
  switch (m.type) {
    case 'hello':
      w.u8(C.hello).text(m.name);
      break;
    case 'say':
      w.u8(C.say).varint(m.ref).text(m.room).text(m.body).u8(m.action ? MSG_ACTION : 0);
      break;
    case 'quit':
      w.u8(C.quit).text(m.reason);
      break;
  }
  return w.finish();
}

export function decodeClientMsg(bytes: Uint8Array): Decoded<ClientMsg> {
  return decodeWith(bytes, (r): ClientMsg => {
    const t = r.u8('type');
    switch (t) {
      case C.hello:
        return { type: 'hello', name: r.text(NAME_MAX_BYTES, 'name') };
      case C.say: {
        // Replies carry ref+1 (0 means none), so the largest ref must leave room for that.
        const ref = r.varint('ref', VARINT_MAX - 1);
        const room = r.text(ROOM_MAX_BYTES, 'room');
        const body = r.text(MESSAGE_MAX_BYTES, 'body');
        return { type: 'say', ref, room, body, action: readFlags(r) };
      }
      case C.quit:
        return { type: 'quit', reason: r.text(SHORT_TEXT_MAX_BYTES, 'reason') };
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
      w.u8(S.message).text(m.room).varint(m.id).u64(m.ts).text(m.from).text(m.body).u8(m.action ? MSG_ACTION : 0);
      writeRef(w, m.ref);
      break;
    case 'error':
      w.u8(S.error).u8(m.code).text(m.text);
      writeRef(w, m.ref);
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
        const action = readFlags(r);
        return { type: 'message', room, id, ts, from, body, action, ref: readRef(r) };
      }
      case S.error:
        return { type: 'error', code: readErrorCode(r), text: r.text(SHORT_TEXT_MAX_BYTES, 'text'), ref: readRef(r) };
      default:
        throw new WireError('bad-type', `server message type ${t}`);
    }
  });
}
