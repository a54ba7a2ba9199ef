// The chat logic, sans-I/O: the server shell calls it with each session's decoded messages and `now`,
// and it answers through `deliver`. Names, rooms (behind Hub) and flood control live here; sockets,
// sessions and encryption do not.

import { FLOOD_BURST, FLOOD_RATE_PER_SEC, MESSAGE_MAX_BYTES } from '../limits.js';
import { utf8Bytes } from '../wire/buf.js';
import { ErrorCode, LeaveReason, type ClientMsg, type ServerMsg } from '../wire/message.js';
import type { Deliver, Hub } from './hub.js';
import { checkName, foldKey } from './names.js';
import type { NameRegistry, SessionId } from './registry.js';

/** The room everyone starts in: the original chat's single room. */
export const LOBBY = '#lobby';

export interface ChatLimits {
  messageMax: number;
  floodBurst: number;
  floodRate: number;
}

interface Member {
  name: string;
  key: string;
  /** Flood control: a token bucket refilled at floodRate per second up to floodBurst. */
  tokens: number;
  tokensAt: number;
}

export type ConnectResult = { ok: true; name: string } | { ok: false; code: ErrorCode; reason: string };

export class ChatCore {
  private readonly members = new Map<SessionId, Member>();
  private readonly hub: Hub;
  private readonly registry: NameRegistry;
  private readonly deliver: Deliver;
  readonly limits: ChatLimits;

  constructor(opts: { hub: Hub; registry: NameRegistry; deliver: Deliver; limits?: Partial<ChatLimits> }) {
    this.hub = opts.hub;
    this.registry = opts.registry;
    this.deliver = opts.deliver;
    this.limits = {
      messageMax: opts.limits?.messageMax ?? MESSAGE_MAX_BYTES,
      floodBurst: opts.limits?.floodBurst ?? FLOOD_BURST,
      floodRate: opts.limits?.floodRate ?? FLOOD_RATE_PER_SEC,
    };
  }

  get sessionCount(): number {
    return this.members.size;
  }

  nameOf(sid: SessionId): string | undefined {
    return this.members.get(sid)?.name;
  }

  /** The session holding a name (compared as names are: case-insensitively after NFC). */
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
    const { floodBurst, floodRate, messageMax } = this.limits;
    this.members.set(sid, { name: check.name, key: check.key, tokens: floodBurst, tokensAt: now });
    this.deliver(sid, { type: 'welcome', name: check.name, messageMax, floodBurst, floodRate, serverTime: now });
    this.hub.join(LOBBY, sid);
    this.hub.publish(LOBBY, { type: 'joined', room: LOBBY, name: check.name, ts: now });
    return { ok: true, name: check.name };
  }

  /**
   * Hands a registered session's name and rooms to a new session of the same client (a reconnect),
   * without announcing a leave and a join. The caller has checked that both belong to one identity.
   */
  resume(newSid: SessionId, oldSid: SessionId, now: number): ConnectResult {
    const m = this.members.get(oldSid);
    if (!m || this.members.has(newSid)) return { ok: false, code: ErrorCode.BadRequest, reason: 'nothing to resume' };
    this.members.delete(oldSid);
    this.members.set(newSid, m);
    this.registry.release(m.key, oldSid);
    this.registry.claim(m.key, newSid);
    const { floodBurst, floodRate, messageMax } = this.limits;
    this.deliver(newSid, { type: 'welcome', name: m.name, messageMax, floodBurst, floodRate, serverTime: now });
    for (const room of [...this.hub.roomsOf(oldSid)]) {
      this.hub.leave(room, oldSid);
      this.hub.join(room, newSid);
    }
    return { ok: true, name: m.name };
  }

  handle(sid: SessionId, msg: ClientMsg, now: number): void {
    const m = this.members.get(sid);
    if (!m) return; // a session that never registered has nothing to say
    switch (msg.type) {
      case 'hello':
        this.error(sid, ErrorCode.BadRequest, 'already registered: hello is only the first message', null);
        return;
      case 'say':
        this.say(sid, m, msg, now);
        return;
      case 'quit':
        this.disconnect(sid, LeaveReason.Quit, msg.reason, now);
        return;
    }
  }

  private say(sid: SessionId, m: Member, msg: Extract<ClientMsg, { type: 'say' }>, now: number): void {
    const { ref, room, body } = msg;
    if (body.length === 0) return this.error(sid, ErrorCode.MessageEmpty, 'nothing to send: the message is empty', ref);
    const size = utf8Bytes(body).length;
    if (size > this.limits.messageMax) {
      return this.error(sid, ErrorCode.MessageTooLong, `message is ${size} bytes; the limit is ${this.limits.messageMax}: split it`, ref);
    }
    if (!this.hub.roomsOf(sid).has(foldKey(room))) {
      return this.error(sid, ErrorCode.NotInRoom, `you are not in ${room}; join it first`, ref);
    }
    const { floodBurst, floodRate } = this.limits;
    m.tokens = Math.min(floodBurst, m.tokens + ((now - m.tokensAt) / 1000) * floodRate);
    m.tokensAt = now;
    if (m.tokens < 1) {
      return this.error(
        sid,
        ErrorCode.SlowDown,
        `slow down: at most ${floodRate} messages per second (burst ${floodBurst}); this message was not sent`,
        ref,
      );
    }
    m.tokens -= 1;
    const shown = this.displayRoom(room);
    const out: ServerMsg = { type: 'message', room: shown, id: this.hub.nextMessageId(shown), ts: now, from: m.name, body, action: msg.action, ref: null };
    this.hub.publish(shown, out, { to: sid, msg: { ...out, ref } });
  }

  /** Rooms are shown with the spelling they were first created with. */
  private displayRoom(room: string): string {
    return foldKey(room) === LOBBY ? LOBBY : room;
  }

  private error(sid: SessionId, code: ErrorCode, text: string, ref: number | null): void {
    this.deliver(sid, { type: 'error', code, text, ref });
  }

  /** Ends a session's presence: `left` to each of its rooms, name released. Idempotent. */
  disconnect(sid: SessionId, why: LeaveReason, reason: string, now: number): void {
    const m = this.members.get(sid);
    if (!m) return;
    this.members.delete(sid);
    for (const roomKey of [...this.hub.roomsOf(sid)]) {
      this.hub.leave(roomKey, sid);
      const room = this.displayRoom(roomKey);
      this.hub.publish(room, { type: 'left', room, name: m.name, why, reason, ts: now });
    }
    this.registry.release(m.key, sid);
  }
}
