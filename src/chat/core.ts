// The chat logic, sans-I/O: the server shell calls it with each session's decoded messages and `now`,
// and it answers through `deliver` (to one session) and the hub (to a room). Names, rooms (behind Hub)
// and flood control live here; sockets, sessions, clocks and encryption do not.

import { FLOOD_BURST, FLOOD_RATE_PER_SEC, MESSAGE_MAX_BYTES, SHORT_TEXT_MAX_BYTES } from '../limits.js';
import { VARINT_MAX } from '../wire/buf.js';
import { ErrorCode, LeaveReason, type ClientMsg } from '../wire/message.js';
import type { Deliver, Hub } from './hub.js';
import { checkName, checkRoom, foldKey } from './names.js';
import type { NameRegistry, SessionId } from './registry.js';

/** The room everyone starts in: the original chat's single room. */
export const LOBBY = '#lobby';

export interface ChatLimits {
  /** Largest message body in UTF-8 bytes. */
  messageMax: number;
  /** Flood control: messages a session may send at once... */
  floodBurst: number;
  /** ...and per second after that. */
  floodRate: number;
}

export type ConnectResult = { ok: true; name: string } | { ok: false; code: ErrorCode; reason: string };

type Say = Extract<ClientMsg, { type: 'say' }>;

/** Everything the chat keeps per registered session; room membership lives in the hub. */
interface Member {
  name: string;
  /** The registry key of `name`. */
  key: string;
  /** Flood token bucket, in thousandths of a message so refills at integer `now` stay exact. */
  credit: number;
  creditAt: number;
}

/** One message's cost in bucket units (see Member.credit). */
const MESSAGE_COST = 1000;

export class ChatCore {
  private readonly members = new Map<SessionId, Member>();
  private readonly hub: Hub;
  private readonly registry: NameRegistry;
  private readonly deliver: Deliver;
  readonly limits: Readonly<ChatLimits>;

  constructor(opts: { hub: Hub; registry: NameRegistry; deliver: Deliver; limits?: Partial<ChatLimits> }) {
    this.hub = opts.hub;
    this.registry = opts.registry;
    this.deliver = opts.deliver;
    const limits: ChatLimits = {
      messageMax: opts.limits?.messageMax ?? MESSAGE_MAX_BYTES,
      floodBurst: opts.limits?.floodBurst ?? FLOOD_BURST,
      floodRate: opts.limits?.floodRate ?? FLOOD_RATE_PER_SEC,
    };
    // They travel as varints in welcome, and a zero rate would never refill.
    for (const [k, v] of Object.entries(limits)) {
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`chat limit ${k} must be a positive integer, not ${v}`);
    }
    this.limits = Object.freeze(limits);
  }

  get sessionCount(): number {
    return this.members.size;
  }

  nameOf(sid: SessionId): string | undefined {
    return this.members.get(sid)?.name;
  }

  /** The session holding a name, compared as names are (case-insensitively after NFC). */
  ownerOf(name: string): SessionId | undefined {
    return this.registry.ownerOf(foldKey(name));
  }

  /** Registers a session under a name and puts it in #lobby. A refusal changes nothing. */
  connect(sid: SessionId, requestedName: string, now: number): ConnectResult {
    if (this.members.has(sid)) return { ok: false, code: ErrorCode.BadRequest, reason: 'this session already has a name' };
    const check = checkName(requestedName);
    if (!check.ok) return check;
    if (!this.registry.claim(check.key, sid)) {
      return { ok: false, code: ErrorCode.NameTaken, reason: `the name "${check.name}" is already taken; choose another` };
    }
    const { messageMax, floodBurst, floodRate } = this.limits;
    this.members.set(sid, { name: check.name, key: check.key, credit: floodBurst * MESSAGE_COST, creditAt: now });
    this.deliver(sid, { type: 'welcome', name: check.name, messageMax, floodBurst, floodRate, serverTime: now });
    this.hub.join(LOBBY, sid);
    this.hub.publish(LOBBY, { type: 'joined', room: LOBBY, name: check.name, ts: now });
    return { ok: true, name: check.name };
  }

  /**
   * Hands a registered session's name, rooms and flood bucket to a new session of the same client (a
   * reconnect), without announcing a leave and a join. The caller has checked both belong to one identity.
   */
  resume(newSid: SessionId, oldSid: SessionId, now: number): ConnectResult {
    const m = this.members.get(oldSid);
    if (!m || this.members.has(newSid)) return { ok: false, code: ErrorCode.BadRequest, reason: 'nothing to resume' };
    this.members.delete(oldSid);
    this.members.set(newSid, m);
    this.registry.release(m.key, oldSid);
    this.registry.claim(m.key, newSid);
    const { messageMax, floodBurst, floodRate } = this.limits;
    this.deliver(newSid, { type: 'welcome', name: m.name, messageMax, floodBurst, floodRate, serverTime: now });
    // Join before leaving, so a room the old session was alone in keeps its display name.
    for (const room of [...this.hub.roomsOf(oldSid)]) {
      this.hub.join(room, newSid);
      this.hub.leave(room, oldSid);
    }
    return { ok: true, name: m.name };
  }

  handle(sid: SessionId, msg: ClientMsg, now: number): void {
    const m = this.members.get(sid);
    if (!m) return; // the shell closes a session whose connect failed; nothing it says counts
    switch (msg.type) {
      case 'hello':
        this.error(sid, ErrorCode.BadRequest, 'you already have a name: hello is only the first message', null);
        return;
      case 'say':
        this.say(sid, m, msg, now);
        return;
      case 'quit':
        this.disconnect(sid, LeaveReason.Quit, msg.reason, now);
        return;
      default: {
        const never: never = msg;
        return never;
      }
    }
  }

  /** Ends a session's presence: `left` to the rest of each of its rooms, name released. Idempotent. */
  disconnect(sid: SessionId, why: LeaveReason, reason: string, now: number): void {
    const m = this.members.get(sid);
    if (!m) return;
    this.members.delete(sid);
    const text = clampUtf8(reason, SHORT_TEXT_MAX_BYTES); // longer would fail every client's decode
    for (const room of [...this.hub.roomsOf(sid)]) {
      this.hub.leave(room, sid);
      this.hub.publish(room, { type: 'left', room, name: m.name, why, reason: text, ts: now });
    }
    this.registry.release(m.key, sid);
  }

  private say(sid: SessionId, m: Member, msg: Say, now: number): void {
    const { ref, room, body, action } = msg;
    const { messageMax, floodBurst, floodRate } = this.limits;
    // Replies carry ref+1 as a varint, so the largest decodable ref cannot be echoed: refuse it plainly.
    if (ref >= VARINT_MAX) return this.error(sid, ErrorCode.BadRequest, `a ref must be below ${VARINT_MAX}`, null);
    if (body.length === 0) return this.error(sid, ErrorCode.MessageEmpty, 'nothing to send: the message is empty', ref);
    const size = Buffer.byteLength(body, 'utf8');
    if (size > messageMax) {
      return this.error(sid, ErrorCode.MessageTooLong, `message is ${size} bytes; the limit is ${messageMax}: split it`, ref);
    }
    const shown = this.hub.members(room).has(sid) ? this.hub.roomName(room) : undefined;
    if (shown === undefined) return this.error(sid, ErrorCode.NotInRoom, notInRoom(room), ref);
    // Only messages that would reach others cost a token: flood control protects the room.
    if (!this.spend(m, now)) {
      const per = floodRate === 1 ? 'message' : 'messages';
      const text = `slow down: at most ${floodRate} ${per} per second (burst ${floodBurst}); this message was not sent`;
      return this.error(sid, ErrorCode.SlowDown, text, ref);
    }
    const id = this.hub.nextMessageId(shown);
    this.hub.publish(shown, { type: 'message', room: shown, id, ts: now, from: m.name, body, action, ref }, sid);
  }

  /** Takes one message from the session's token bucket; false when it is empty. */
  private spend(m: Member, now: number): boolean {
    const { floodBurst, floodRate } = this.limits;
    const elapsed = Math.max(0, now - m.creditAt); // a wall clock stepping back must not drain the bucket
    m.credit = Math.min(floodBurst * MESSAGE_COST, m.credit + elapsed * floodRate); // ms × msg/s = thousandths
    m.creditAt = now;
    if (m.credit < MESSAGE_COST) return false;
    m.credit -= MESSAGE_COST;
    return true;
  }

  private error(sid: SessionId, code: ErrorCode, text: string, ref: number | null): void {
    this.deliver(sid, { type: 'error', code, text: clampUtf8(text, SHORT_TEXT_MAX_BYTES), ref });
  }
}

function notInRoom(room: string): string {
  const r = checkRoom(room);
  return r.ok ? `you are not in ${r.name}; join it first` : `no such room: ${r.reason}`;
}

const ELLIPSIS = '…';

/** `s` cut to at most `max` UTF-8 bytes at a code point boundary, marked with an ellipsis when cut. */
function clampUtf8(s: string, max: number): string {
  if (s.length * 3 <= max || Buffer.byteLength(s, 'utf8') <= max) return s; // a UTF-16 unit is ≤ 3 bytes
  const room = max - Buffer.byteLength(ELLIPSIS, 'utf8');
  let used = 0;
  let end = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch, 'utf8');
    if (used + n > room) break;
    used += n;
    end += ch.length;
  }
  return s.slice(0, end) + ELLIPSIS;
}
