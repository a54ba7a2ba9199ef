// Name and room rules. Names are compared case-insensitively after Unicode NFC, so "Ärger", "äRGER"
// and a decomposed "A\u0308rger" are one name.

import { NAME_MAX_CHARS, ROOM_MAX_CHARS } from '../limits.js';
import { ErrorCode } from '../wire/message.js';

export type NameCheck = { ok: true; name: string; key: string } | { ok: false; code: ErrorCode; reason: string };

/** Characters that would make `name: text` lines, `NAME@HOST` addresses or lists ambiguous. */
const RESERVED = new Set([':', '@', ',', '*', '!']);
const WHITESPACE = /\p{White_Space}/u;
const FORBIDDEN_CLASS: [RegExp, string][] = [
  [/\p{Cc}/u, 'control character'],
  [/\p{Cf}/u, 'invisible formatting character'],
  [/\p{Co}/u, 'private-use character'],
  [/\p{Cn}/u, 'unassigned character'],
  [/\p{Cs}/u, 'lone surrogate'],
  [/[\u2028\u2029]/u, 'line separator'],
];

function codePoint(ch: string): string {
  return 'U+' + ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
}

/** The case-insensitive key under which a name or room is unique. */
export function foldKey(s: string): string {
  return s.normalize('NFC').toLowerCase().normalize('NFC');
}

function checkChars(s: string, what: 'names' | 'room names', extraReserved: ReadonlySet<string>): string | null {
  for (const ch of s) {
    if (ch === ' ') return `${what} cannot contain spaces`;
    if (WHITESPACE.test(ch)) return `${what} cannot contain ${codePoint(ch)} (whitespace)`;
    for (const [re, label] of FORBIDDEN_CLASS) if (re.test(ch)) return `${what} cannot contain ${codePoint(ch)} (${label})`;
    if (RESERVED.has(ch) || extraReserved.has(ch)) return `${what} cannot contain "${ch}"`;
  }
  return null;
}

export function checkName(raw: string): NameCheck {
  const name = raw.normalize('NFC');
  if (name.length === 0 || name.trim().length === 0) return { ok: false, code: ErrorCode.NameInvalid, reason: 'a name cannot be empty' };
  const chars = [...name].length;
  if (chars > NAME_MAX_CHARS) {
    return { ok: false, code: ErrorCode.NameTooLong, reason: `a name is at most ${NAME_MAX_CHARS} characters; this one has ${chars}` };
  }
  const bad = checkChars(name, 'names', new Set());
  if (bad !== null) return { ok: false, code: ErrorCode.NameInvalid, reason: bad };
  if (name.startsWith('#') || name.startsWith('/')) {
    return { ok: false, code: ErrorCode.NameInvalid, reason: `a name cannot start with "${name[0]}" (that marks rooms and commands)` };
  }
  return { ok: true, name, key: foldKey(name) };
}

export function checkRoom(raw: string): NameCheck {
  const room = raw.normalize('NFC');
  if (!room.startsWith('#')) return { ok: false, code: ErrorCode.BadRequest, reason: 'a room name starts with #, e.g. #lobby' };
  const chars = [...room].length;
  if (chars < 2) return { ok: false, code: ErrorCode.BadRequest, reason: 'a room name needs at least one character after #' };
  if (chars > ROOM_MAX_CHARS) return { ok: false, code: ErrorCode.BadRequest, reason: `a room name is at most ${ROOM_MAX_CHARS} characters` };
  const bad = checkChars(room.slice(1), 'room names', new Set(['#']));
  if (bad !== null) return { ok: false, code: ErrorCode.BadRequest, reason: bad };
  return { ok: true, name: room, key: foldKey(room) };
}
