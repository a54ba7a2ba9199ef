// The chat logic, sans-I/O: the server shell calls it with each session's decoded messages and `now`,
// and it answers through `deliver` (to one session) and the hub (to a room). Names, rooms (behind Hub),
// history (behind Store), commands and flood control live here; sockets, sessions, clocks and
// encryption do not.
//
// Every command carries a ref and gets exactly one final reply carrying it (docs/PROTOCOL.md, "Commands"):
// say → its message echo, msg → its private echo, join/history → caughtup, list → the last rooms page,
// who → the last members page, topic (asking) → topic, the others → ok; or an error.

import {
  FLOOD_BURST,
  FLOOD_RATE_PER_SEC,
  HISTORY_ON_JOIN,
  HISTORY_PAGE_BYTES,
  HISTORY_PAGE_MESSAGES,
  LIST_MAX_ITEMS,
  MEMBERS_PER_REPLY,
  MESSAGE_MAX_BYTES,
  PRESENCE_COALESCE_MEMBERS,
  PRESENCE_COALESCE_MS,
  PRESENCE_FLUSH_GAP_MS,
  PRESENCE_NAMES_PER_MESSAGE,
  ROOMS_PER_REPLY,
  ROOMS_PER_SESSION,
  SHORT_TEXT_MAX_BYTES,
} from '../limits.js';
import { VARINT_MAX } from '../wire/buf.js';
import { ErrorCode, LeaveReason, type ClientMsg, type Departure, type MemberInfo, type RoomInfo } from '../wire/message.js';
import type { Store } from '../store/store.js';
import type { Deliver, Hub } from './hub.js';
import { checkName, checkRoom, foldKey } from './names.js';
import type { NameRegistry, SessionId } from './registry.js';

/** The room everyone starts in: the original chat's single room. */
export const LOBBY = '#lobby';

export interface ChatLimits {
  /** Largest message body in UTF-8 bytes. */
  messageMax: number;
  /** Flood control: commands a session may send at once... */
  floodBurst: number;
  /** ...and per second after that. */
  floodRate: number;
  /** Messages replayed to someone joining a room. */
  historyOnJoin: number;
}

export type ConnectResult = { ok: true; name: string } | { ok: false; code: ErrorCode; reason: string };

export interface ConnectOptions {
  /** The client's static key (hex): resends are recognised by it. Null for clients without one (legacy). */
  identity: string | null;
  /** The client rejoins its rooms itself (catching up); otherwise it is put in #lobby. */
  resume: boolean;
}

type Cmd<T extends ClientMsg['type']> = Extract<ClientMsg, { type: T }>;

/** Everything the chat keeps per registered session; room membership lives in the hub. */
interface Member {
  name: string;
  /** The registry key of `name`. */
  key: string;
  identity: string | null;
  /** Away text; '' when present. */
  away: string;
  /** Flood token bucket, in thousandths of a command so refills at integer `now` stay exact. */
  credit: number;
  creditAt: number;
}

/** A big room's joins and leaves waiting to be announced together. */
interface PendingPresence {
  room: string;
  since: number;
  joined: string[];
  left: Departure[];
}

/** One command's cost in bucket units (see Member.credit). */
const COMMAND_COST = 1000;
const PAGE = { maxMessages: HISTORY_PAGE_MESSAGES, maxBytes: HISTORY_PAGE_BYTES };

export class ChatCore {
  private readonly members = new Map<SessionId, Member>();
  /** Per room (by folded name): the sessions of its first MEMBERS_PER_REPLY members by key, which every
   * join is sent. Kept up to date as members join; null after a leave or a rename that may have changed
   * it, rebuilt from the whole room on the next join. So a join into a room of N costs O(log N) and not a
   * scan of N (100,000 joins into one room would otherwise be O(N²)). */
  private readonly firstMembers = new Map<string, SessionId[] | null>();
  /** By room key. */
  private readonly presence = new Map<string, PendingPresence>();
  private readonly hub: Hub;
  private readonly registry: NameRegistry;
  private readonly store: Store;
  private readonly deliver: Deliver;
  readonly limits: Readonly<ChatLimits>;

  constructor(opts: { hub: Hub; registry: NameRegistry; store: Store; deliver: Deliver; limits?: Partial<ChatLimits> }) {
    this.hub = opts.hub;
    this.registry = opts.registry;
    this.store = opts.store;
    this.deliver = opts.deliver;
    const limits: ChatLimits = {
      messageMax: opts.limits?.messageMax ?? MESSAGE_MAX_BYTES,
      floodBurst: opts.limits?.floodBurst ?? FLOOD_BURST,
      floodRate: opts.limits?.floodRate ?? FLOOD_RATE_PER_SEC,
      historyOnJoin: opts.limits?.historyOnJoin ?? HISTORY_ON_JOIN,
    };
    // They travel as varints in welcome, and a zero rate would never refill.
    for (const [k, v] of Object.entries(limits)) {
      const min = k === 'historyOnJoin' ? 0 : 1;
      if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`chat limit ${k} must be an integer ≥ ${min}, not ${v}`);
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

  /** Registers a session under a name and (unless resuming) puts it in #lobby. A refusal changes nothing. */
  connect(sid: SessionId, requestedName: string, now: number, opts: ConnectOptions = { identity: null, resume: false }): ConnectResult {
    if (this.members.has(sid)) return { ok: false, code: ErrorCode.BadRequest, reason: 'this session already has a name' };
    const check = checkName(requestedName);
    if (!check.ok) return check;
    if (!this.registry.claim(check.key, sid)) {
      return { ok: false, code: ErrorCode.NameTaken, reason: `the name "${check.name}" is already taken; choose another` };
    }
    const { messageMax, floodBurst, floodRate } = this.limits;
    const m: Member = { name: check.name, key: check.key, identity: opts.identity, away: '', credit: floodBurst * COMMAND_COST, creditAt: now };
    this.members.set(sid, m);
    this.deliver(sid, { type: 'welcome', name: check.name, messageMax, floodBurst, floodRate, serverTime: now });
    if (!opts.resume) this.joinRoom(sid, m, LOBBY, null, null, now);
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
      this.noteJoin(room, newSid, m);
      this.hub.leave(room, oldSid);
      this.noteLeave(room, oldSid);
    }
    return { ok: true, name: m.name };
  }

  handle(sid: SessionId, msg: ClientMsg, now: number): void {
    const m = this.members.get(sid);
    if (!m) return; // the shell closes a session whose connect failed; nothing it says counts
    if (msg.type === 'hello') return this.error(sid, ErrorCode.BadRequest, 'you already have a name: hello is only the first message', null);
    if (msg.type === 'quit') return this.disconnect(sid, LeaveReason.Quit, msg.reason, now);
    // Replies carry ref+1 as a varint, so the largest decodable ref cannot be answered: refuse it plainly.
    if (msg.ref >= VARINT_MAX) return this.error(sid, ErrorCode.BadRequest, `a ref must be below ${VARINT_MAX}`, null);
    // A message resent after a reconnect gets its original echo, not a second posting.
    if ((msg.type === 'say' || msg.type === 'msg') && m.identity !== null && this.echoResend(sid, m.identity, msg.ref)) return;
    if (!this.spend(m, now, msg.ref, sid)) return;
    switch (msg.type) {
      case 'say':
        return this.say(sid, m, msg, now);
      case 'join': {
        const r = checkRoom(msg.room);
        if (!r.ok) return this.error(sid, r.code, r.reason, msg.ref);
        return this.joinRoom(sid, m, r.name, msg.since, msg.ref, now);
      }
      case 'part':
        return this.part(sid, m, msg, now);
      case 'list':
        return this.list(sid, msg.ref);
      case 'who':
        return this.who(sid, msg);
      case 'msg':
        return this.privateMessage(sid, m, msg, now);
      case 'nick':
        return this.nick(sid, m, msg, now);
      case 'topic':
        return this.topic(sid, m, msg, now);
      case 'away':
        return this.setAway(sid, m, msg, now);
      case 'history':
        return this.history(sid, m, msg);
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
      this.noteLeave(room, sid);
      this.announceLeave(room, m.name, { name: m.name, why, reason: text }, now);
    }
    this.registry.release(m.key, sid);
  }

  /** The pending batch of a room that is big, or already batching (so announcements keep their order). */
  private batchFor(room: string, now: number): PendingPresence | null {
    const key = foldKey(room);
    let p = this.presence.get(key);
    if (!p && this.hub.members(room).size > PRESENCE_COALESCE_MEMBERS) this.presence.set(key, (p = { room, since: now, joined: [], left: [] }));
    return p ?? null;
  }

  /** Announces a join: to the room at once, or (big rooms) in the next batch; the newcomer hears it at once. */
  private announceJoin(room: string, sid: SessionId, name: string, now: number): void {
    const p = this.batchFor(room, now);
    if (!p) return this.hub.publish(room, { type: 'joined', room, name, ts: now });
    this.deliver(sid, { type: 'joined', room, name, ts: now });
    const k = foldKey(name);
    const i = p.left.findIndex((d) => foldKey(d.name) === k);
    if (i >= 0) p.left.splice(i, 1); // left and came back within the batch: nothing to say
    else p.joined.push(name);
  }

  /** Announces a leave (the leaver is no longer a member): at once, or in the next batch. */
  private announceLeave(room: string, name: string, d: Departure, now: number): void {
    const p = this.batchFor(room, now);
    if (!p) return this.hub.publish(room, { type: 'left', room, ...d, ts: now });
    const k = foldKey(name);
    const i = p.joined.findIndex((n) => foldKey(n) === k);
    if (i >= 0) p.joined.splice(i, 1); // came and went within the batch
    else p.left.push(d);
  }

  /** When the next presence batch is due (same clock as `now`), or null. */
  nextDeadline(): number | null {
    let next: number | null = null;
    for (const p of this.presence.values()) if (next === null || p.since + PRESENCE_COALESCE_MS < next) next = p.since + PRESENCE_COALESCE_MS;
    return next;
  }

  /** Announces the presence batches that are due: one message per room now, the rest of a big batch soon. */
  handleTimeout(now: number): void {
    for (const [key, p] of this.presence) {
      if (now < p.since + PRESENCE_COALESCE_MS) continue;
      const room = this.hub.roomName(p.room);
      if (room === undefined) {
        this.presence.delete(key); // everyone left
        continue;
      }
      const n = PRESENCE_NAMES_PER_MESSAGE;
      this.hub.publish(room, { type: 'presence', room, ts: now, joined: p.joined.splice(0, n), left: p.left.splice(0, n) });
      if (p.joined.length === 0 && p.left.length === 0) this.presence.delete(key);
      else p.since = now - PRESENCE_COALESCE_MS + PRESENCE_FLUSH_GAP_MS;
    }
  }

  private echoResend(sid: SessionId, identity: string, ref: number): boolean {
    const sent = this.store.findSent(identity, ref);
    if (!sent) return false;
    if (sent.kind === 'message') this.deliver(sid, { type: 'message', ...sent.message, history: false, ref });
    else this.deliver(sid, { type: 'private', ...sent.message, history: false, ref });
    return true;
  }

  /** Checks a message body; an error reply when it cannot be sent. */
  private bodyOk(sid: SessionId, body: string, ref: number): boolean {
    const { messageMax } = this.limits;
    if (body.length === 0) {
      this.error(sid, ErrorCode.MessageEmpty, 'nothing to send: the message is empty', ref);
      return false;
    }
    const size = Buffer.byteLength(body, 'utf8');
    if (size > messageMax) {
      this.error(sid, ErrorCode.MessageTooLong, `message is ${size} bytes; the limit is ${messageMax}: split it`, ref);
      return false;
    }
    return true;
  }

  private say(sid: SessionId, m: Member, msg: Cmd<'say'>, now: number): void {
    const { ref, room, body, action } = msg;
    if (!this.bodyOk(sid, body, ref)) return;
    const shown = this.memberRoom(sid, room);
    if (shown === undefined) return this.error(sid, ErrorCode.NotInRoom, notInRoom(room), ref);
    const stored = this.store.appendMessage({ key: foldKey(shown), name: shown }, { ts: now, from: m.name, body, action }, { identity: m.identity, ref });
    this.hub.publish(shown, { type: 'message', ...stored, history: false, ref }, sid);
  }

  /** Joins (if not yet a member: announced to the room), then sends topic, members and history. */
  private joinRoom(sid: SessionId, m: Member, room: string, since: number | null, ref: number | null, now: number): void {
    const key = foldKey(room);
    let shown = this.memberRoom(sid, room);
    if (shown === undefined) {
      if (this.hub.roomsOf(sid).size >= ROOMS_PER_SESSION) {
        return this.error(sid, ErrorCode.TooManyRooms, `you are in ${ROOMS_PER_SESSION} rooms, the most allowed: /part one first`, ref);
      }
      shown = this.hub.roomName(room) ?? this.store.ensureRoom(key, room).name;
      this.hub.join(shown, sid);
      this.noteJoin(shown, sid, m);
      this.announceJoin(shown, sid, m.name, now);
    }
    const rec = this.store.room(key);
    if (rec && rec.topic !== '') this.deliver(sid, { type: 'topic', ref: null, room: shown, topic: rec.topic, by: rec.topicBy, ts: rec.topicTs });
    // Only the first page of members: /who lists the rest. Sending all would make a big room's joins O(N²).
    this.sendMembers(sid, shown, null, MEMBERS_PER_REPLY);
    // The replay starts N messages back and comes in pages like any catch-up.
    const after = since ?? (this.store.firstOfLast(key, this.limits.historyOnJoin) ?? (rec?.lastId ?? 0) + 1) - 1;
    const page = this.store.roomAfter(key, after, PAGE, m.identity);
    for (const { ownRef, ...h } of page.messages) this.deliver(sid, { type: 'message', ...h, history: true, ref: ownRef ?? null });
    this.deliver(sid, { type: 'caughtup', ref, room: shown, more: page.more });
  }

  private part(sid: SessionId, m: Member, msg: Cmd<'part'>, now: number): void {
    const shown = this.memberRoom(sid, msg.room);
    if (shown === undefined) return this.error(sid, ErrorCode.NotInRoom, notInRoom(msg.room), msg.ref);
    const left: Departure = { name: m.name, why: LeaveReason.Part, reason: clampUtf8(msg.reason, SHORT_TEXT_MAX_BYTES) };
    // The leaver hears it at once, so it closes the room.
    this.deliver(sid, { type: 'left', room: shown, ...left, ts: now });
    this.hub.leave(shown, sid);
    this.noteLeave(shown, sid);
    this.announceLeave(shown, m.name, left, now);
    this.deliver(sid, { type: 'ok', ref: msg.ref, text: `you left ${shown}` });
  }

  private list(sid: SessionId, ref: number): void {
    const all = [...this.hub.rooms()].sort((a, b) => b.members - a.members || (a.name < b.name ? -1 : 1));
    const listed = all.slice(0, LIST_MAX_ITEMS);
    const infos: RoomInfo[] = listed.map((r) => ({ name: r.name, members: r.members, topic: this.store.room(foldKey(r.name))?.topic ?? '' }));
    const omitted = all.length - listed.length;
    for (let i = 0; i === 0 || i < infos.length; i += ROOMS_PER_REPLY) {
      const last = i + ROOMS_PER_REPLY >= infos.length;
      this.deliver(sid, { type: 'rooms', ref: last ? ref : null, rooms: infos.slice(i, i + ROOMS_PER_REPLY), last, omitted: last ? omitted : 0 });
    }
  }

  private who(sid: SessionId, msg: Cmd<'who'>): void {
    const r = checkRoom(msg.room);
    if (!r.ok) return this.error(sid, r.code, r.reason, msg.ref);
    const shown = this.hub.roomName(r.name);
    if (shown === undefined) return this.error(sid, ErrorCode.NotInRoom, `no one is in ${r.name}`, msg.ref);
    this.sendMembers(sid, shown, msg.ref, LIST_MAX_ITEMS);
  }

  /** A room's members sorted by name, in pages, at most `max`; the last page carries `ref`. */
  private sendMembers(sid: SessionId, room: string, ref: number | null, max: number): void {
    const roomKey = foldKey(room);
    let sids = max === MEMBERS_PER_REPLY ? this.firstMembers.get(roomKey) : null;
    if (!sids) {
      sids = this.firstOf(room, max);
      if (max === MEMBERS_PER_REPLY) this.firstMembers.set(roomKey, sids);
    }
    const listed: MemberInfo[] = [];
    for (const s of sids) {
      const m = this.members.get(s);
      if (m) listed.push({ name: m.name, away: m.away !== '' });
    }
    const omitted = Math.max(0, this.hub.members(room).size - listed.length);
    for (let i = 0; i === 0 || i < listed.length; i += MEMBERS_PER_REPLY) {
      const last = i + MEMBERS_PER_REPLY >= listed.length;
      this.deliver(sid, { type: 'members', ref: last ? ref : null, room, members: listed.slice(i, i + MEMBERS_PER_REPLY), last, omitted: last ? omitted : 0 });
    }
  }

  /** The sessions of a room's first `max` members by key (the folded name), by one bounded scan of it. */
  private firstOf(room: string, max: number): SessionId[] {
    const best: SessionId[] = [];
    const keys: string[] = [];
    for (const s of this.hub.members(room)) {
      const m = this.members.get(s);
      if (!m || (best.length === max && !(m.key < keys[max - 1]!))) continue;
      const at = sortedIndex(keys, m.key);
      best.splice(at, 0, s);
      keys.splice(at, 0, m.key);
      if (best.length > max) {
        best.pop();
        keys.pop();
      }
    }
    return best;
  }

  /** A member joined `room`: it enters the cached first page if it sorts there. */
  private noteJoin(room: string, sid: SessionId, m: Member): void {
    const roomKey = foldKey(room);
    const sids = this.firstMembers.get(roomKey);
    if (!sids) return; // nothing cached: the next join scans the room
    const keys = sids.map((s) => this.members.get(s)?.key ?? '');
    if (sids.length === MEMBERS_PER_REPLY && !(m.key < keys[keys.length - 1]!)) return;
    sids.splice(sortedIndex(keys, m.key), 0, sid);
    if (sids.length > MEMBERS_PER_REPLY) sids.pop();
  }

  /** A member left `room`: if it was on the cached first page, the page needs the next member in line. */
  private noteLeave(room: string, sid: SessionId): void {
    const roomKey = foldKey(room);
    if (this.hub.members(room).size === 0) this.firstMembers.delete(roomKey);
    else if (this.firstMembers.get(roomKey)?.includes(sid)) this.firstMembers.set(roomKey, null);
  }

  private privateMessage(sid: SessionId, m: Member, msg: Cmd<'msg'>, now: number): void {
    const { ref, body, action } = msg;
    if (!this.bodyOk(sid, body, ref)) return;
    const toSid = this.ownerOf(msg.to);
    const to = toSid === undefined ? undefined : this.members.get(toSid);
    if (toSid === undefined || to === undefined) {
      return this.error(sid, ErrorCode.NoSuchUser, `no one called ${msg.to} is online; private messages go only to people online`, ref);
    }
    if (toSid < 0) return this.error(sid, ErrorCode.NoSuchUser, `${to.name} uses an original client, which cannot receive private messages`, ref);
    const stored = this.store.appendPrivate({ ts: now, from: m.name, to: to.name, body, action }, { identity: m.identity, ref }, to.identity);
    if (toSid !== sid) this.deliver(toSid, { type: 'private', ...stored, history: false, ref: null });
    this.deliver(sid, { type: 'private', ...stored, history: false, ref });
    if (to.away !== '' && toSid !== sid) this.deliver(sid, { type: 'away', room: '', name: to.name, text: to.away, ts: now });
  }

  private nick(sid: SessionId, m: Member, msg: Cmd<'nick'>, now: number): void {
    const check = checkName(msg.name);
    if (!check.ok) return this.error(sid, check.code, check.reason, msg.ref);
    if (check.name === m.name) return this.deliver(sid, { type: 'ok', ref: msg.ref, text: `you are already ${m.name}` });
    if (check.key !== m.key && !this.registry.claim(check.key, sid)) {
      return this.error(sid, ErrorCode.NameTaken, `the name "${check.name}" is already taken; choose another`, msg.ref);
    }
    if (check.key !== m.key) this.registry.release(m.key, sid);
    const old = m.name;
    m.name = check.name;
    m.key = check.key;
    for (const room of this.hub.roomsOf(sid)) this.firstMembers.set(foldKey(room), null); // the order changed
    for (const room of this.hub.roomsOf(sid)) this.hub.publish(room, { type: 'nick', room, old, name: m.name, ts: now });
    this.deliver(sid, { type: 'nick', room: '', old, name: m.name, ts: now });
    this.deliver(sid, { type: 'ok', ref: msg.ref, text: `you are now known as ${m.name}` });
  }

  private topic(sid: SessionId, m: Member, msg: Cmd<'topic'>, now: number): void {
    const r = checkRoom(msg.room);
    if (!r.ok) return this.error(sid, r.code, r.reason, msg.ref);
    const key = foldKey(r.name);
    if (msg.topic === null) {
      const rec = this.store.room(key);
      const shown = this.hub.roomName(r.name) ?? rec?.name ?? r.name;
      return this.deliver(sid, { type: 'topic', ref: msg.ref, room: shown, topic: rec?.topic ?? '', by: rec?.topicBy ?? '', ts: rec?.topicTs ?? 0 });
    }
    const shown = this.memberRoom(sid, r.name);
    if (shown === undefined) return this.error(sid, ErrorCode.NotInRoom, notInRoom(r.name), msg.ref);
    const topic = msg.topic.replace(/[\r\n]+/g, ' ').trim();
    this.store.setTopic({ key, name: shown }, topic, m.name, now);
    this.hub.publish(shown, { type: 'topic', ref: null, room: shown, topic, by: m.name, ts: now });
    this.deliver(sid, { type: 'ok', ref: msg.ref, text: topic === '' ? `cleared the topic of ${shown}` : `set the topic of ${shown}` });
  }

  private setAway(sid: SessionId, m: Member, msg: Cmd<'away'>, now: number): void {
    const text = msg.text.replace(/[\r\n]+/g, ' ').trim();
    if (text === m.away) return this.deliver(sid, { type: 'ok', ref: msg.ref, text: text === '' ? 'you are not away' : 'you are already away' });
    m.away = text;
    const rooms = this.hub.roomsOf(sid);
    for (const room of rooms) this.hub.publish(room, { type: 'away', room, name: m.name, text, ts: now });
    if (rooms.size === 0) this.deliver(sid, { type: 'away', room: '', name: m.name, text, ts: now });
    this.deliver(sid, { type: 'ok', ref: msg.ref, text: text === '' ? 'you are back' : 'you are marked as away' });
  }

  private history(sid: SessionId, m: Member, msg: Cmd<'history'>): void {
    if (msg.room === null) {
      const page = m.identity === null ? { messages: [], more: false } : this.store.privatesAfter(m.identity, msg.after, PAGE);
      for (const { ownRef, ...p } of page.messages) this.deliver(sid, { type: 'private', ...p, history: true, ref: ownRef ?? null });
      return this.deliver(sid, { type: 'caughtup', ref: msg.ref, room: null, more: page.more });
    }
    const shown = this.memberRoom(sid, msg.room);
    if (shown === undefined) return this.error(sid, ErrorCode.NotInRoom, notInRoom(msg.room), msg.ref);
    const page = this.store.roomAfter(foldKey(shown), msg.after, PAGE, m.identity);
    for (const { ownRef, ...h } of page.messages) this.deliver(sid, { type: 'message', ...h, history: true, ref: ownRef ?? null });
    this.deliver(sid, { type: 'caughtup', ref: msg.ref, room: shown, more: page.more });
  }

  /** The display name of `room` if the session is in it. */
  private memberRoom(sid: SessionId, room: string): string | undefined {
    return this.hub.members(room).has(sid) ? this.hub.roomName(room) : undefined;
  }

  /** Takes one command from the session's token bucket; false (and an error reply) when it is empty. */
  private spend(m: Member, now: number, ref: number, sid: SessionId): boolean {
    const { floodBurst, floodRate } = this.limits;
    const elapsed = Math.max(0, now - m.creditAt); // a wall clock stepping back must not drain the bucket
    m.credit = Math.min(floodBurst * COMMAND_COST, m.credit + elapsed * floodRate); // ms × cmd/s = thousandths
    m.creditAt = now;
    if (m.credit >= COMMAND_COST) {
      m.credit -= COMMAND_COST;
      return true;
    }
    const per = floodRate === 1 ? 'message' : 'messages';
    this.error(sid, ErrorCode.SlowDown, `slow down: at most ${floodRate} ${per} per second (burst ${floodBurst}); this was not sent`, ref);
    return false;
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
export function clampUtf8(s: string, max: number): string {
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

/** Where `key` goes in the ascending `keys` (after equal ones). */
function sortedIndex(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (keys[mid]! <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
