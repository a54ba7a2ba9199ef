// Name and room rules. Both are compared case-insensitively after Unicode NFC, so "Ärger", "äRGER"
// and a decomposed "A\u0308rger" are one name.

import { NAME_MAX_CHARS, ROOM_MAX_CHARS } from '../limits.js';
import { ErrorCode } from '../wire/message.js';

export type NameCheck = { ok: true; name: string; key: string } | { ok: false; code: ErrorCode; reason: string };

/** Ambiguous in `name: text` lines, `* name action`, `NAME@HOST` addresses and `a,b` lists. */
const NAME_RESERVED: ReadonlySet<string> = new Set([':', '@', ',', '*', '!']);
/** Rooms are listed with commas (`/join #a,#b`). */
const ROOM_RESERVED: ReadonlySet<string> = new Set([',']);

// One pass finds any suspect character; classifying it is only for the reason text.
const SUSPECT = /[\p{C}\p{Zl}\p{Zp}\p{White_Space}]/u;
const CLASSES: readonly (readonly [RegExp, string])[] = [
  [/\p{Cc}/u, 'control character'],
  [/\p{Cf}/u, 'invisible formatting character'],
  [/\p{Cs}/u, 'lone surrogate'],
  [/\p{Co}/u, 'private-use character'],
  [/\p{Cn}/u, 'unassigned character'],
  [/\p{Zl}/u, 'line separator'],
  [/\p{Zp}/u, 'paragraph separator'],
  [/\p{White_Space}/u, 'space character'],
];
const BLANK = /^\p{White_Space}*$/u;

/** The case-insensitive key under which a name or room is unique. Never throws. */
export function foldKey(s: string): string {
  // ASCII is its own NFC form, and lower-cases to ASCII: the common case skips both normalisations.
  if (ASCII.test(s)) return s.toLowerCase();
  return s.normalize('NFC').toLowerCase().normalize('NFC');
}
const ASCII = /^[\x00-\x7f]*$/;

function codePointLabel(ch: string): string {
  return 'U+' + (ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0');
}

/** Length in code points: an emoji is one, as users count. */
function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** The reason `s` has a character forbidden in `what`, or null. */
function badCharacter(s: string, what: 'names' | 'room names', reserved: ReadonlySet<string>): string | null {
  for (const ch of s) {
    if (ch === ' ') return `${what} cannot contain spaces`;
    if (SUSPECT.test(ch)) {
      const label = CLASSES.find(([re]) => re.test(ch))?.[1] ?? 'invisible character';
      return `${what} cannot contain ${codePointLabel(ch)} (${label})`;
    }
    if (reserved.has(ch)) return `${what} cannot contain "${ch}"`;
  }
  return null;
}

function invalid(code: ErrorCode, reason: string): NameCheck {
  return { ok: false, code, reason };
}

export function checkName(raw: string): NameCheck {
  const name = raw.normalize('NFC');
  if (BLANK.test(name)) return invalid(ErrorCode.NameInvalid, 'a name cannot be empty');
  const chars = codePoints(name);
  if (chars > NAME_MAX_CHARS) {
    return invalid(ErrorCode.NameTooLong, `a name is at most ${NAME_MAX_CHARS} characters; this one has ${chars}`);
  }
  const bad = badCharacter(name, 'names', NAME_RESERVED);
  if (bad !== null) return invalid(ErrorCode.NameInvalid, bad);
  if (name.startsWith('#')) return invalid(ErrorCode.NameInvalid, 'a name cannot start with "#" (that marks a room)');
  if (name.startsWith('/')) return invalid(ErrorCode.NameInvalid, 'a name cannot start with "/" (that marks a command)');
  return { ok: true, name, key: foldKey(name) };
}

// There is no room-specific error code: a bad room name in a request is a BadRequest.
export function checkRoom(raw: string): NameCheck {
  const room = raw.normalize('NFC');
  if (!room.startsWith('#')) return invalid(ErrorCode.BadRequest, 'a room name starts with "#", e.g. #lobby');
  const chars = codePoints(room);
  if (chars < 2) return invalid(ErrorCode.BadRequest, 'a room name needs something after "#", e.g. #lobby');
  if (chars > ROOM_MAX_CHARS) {
    return invalid(ErrorCode.BadRequest, `a room name is at most ${ROOM_MAX_CHARS} characters; this one has ${chars}`);
  }
  const bad = badCharacter(room, 'room names', ROOM_RESERVED);
  if (bad !== null) return invalid(ErrorCode.BadRequest, bad);
  return { ok: true, name: room, key: foldKey(room) };
}
