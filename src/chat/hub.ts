// Room membership and fan-out. Behind an interface so a Redis-backed hub can spread a room
// over several server nodes without touching the chat logic.
//
// Rooms are found case-insensitively (foldKey, the key checkRoom gives), in any spelling; messages carry
// the room's display name: its spelling when it was created. The caller validates room names (checkRoom)
// before join; the other methods accept any string, and an unknown room simply has no members.

import type { ServerMsg } from '../wire/message.js';
import { foldKey } from './names.js';
import type { SessionId } from './registry.js';

export type Deliver = (to: SessionId, msg: ServerMsg) => void;

/** What is published to a room: presence changes, messages, topics, renames and away changes. */
export type RoomEvent = Extract<ServerMsg, { type: 'joined' | 'left' | 'message' | 'topic' | 'nick' | 'away' | 'presence' }>;

export interface Hub {
  /** Adds a session to a room; a room without members is created, with this spelling as its display name. */
  join(room: string, sid: SessionId): void;
  leave(room: string, sid: SessionId): void;
  /** Members of a room on this node. A live view: copy it before changing membership while iterating. */
  members(room: string): ReadonlySet<SessionId>;
  /** Display names of the rooms a session is in. A live view, as members(). */
  roomsOf(sid: SessionId): ReadonlySet<string>;
  /** A room's display name, or undefined when it has no members (anywhere). */
  roomName(room: string): string | undefined;
  /**
   * Delivers msg to every member. A `message`'s `ref` is the sender's and reaches only `echoTo`, whose copy
   * (the echo) confirms the message; every other member gets it with `ref: null`. Published once with the
   * ref set, so a distributed hub carries (msg, echoTo) once and strips the ref where it delivers.
   */
  publish(room: string, msg: RoomEvent, echoTo?: SessionId): void;
  /** Every room with members: display name and member count. */
  rooms(): Iterable<{ name: string; members: number }>;
}

/**
 * Takes a room's deliveries to the sessions it owns in one call per publish, not one per member: the
 * legacy gateway, which sends a room's line to all its clients at once (every original client gets the
 * same bytes). The hub tells it who joins and leaves each room, by room key (foldKey).
 */
export interface GroupDelivery {
  owns(sid: SessionId): boolean;
  joined(roomKey: string, sid: SessionId): void;
  left(roomKey: string, sid: SessionId): void;
  /** msg to echoTo, others to every other member it owns in the room. */
  publish(roomKey: string, msg: RoomEvent, others: RoomEvent, echoTo: SessionId | undefined): void;
}

interface Room {
  readonly name: string;
  readonly members: Set<SessionId>;
  /** The members delivered to one by one, once the group has owned any (until then, all of members). */
  direct: Set<SessionId> | null;
  /** Members the group owns. */
  grouped: number;
}

const NONE: ReadonlySet<never> = new Set();

export class MemoryHub implements Hub {
  /** Rooms with members, by key; an empty room is forgotten. */
  private readonly byKey = new Map<string, Room>();
  private readonly joined = new Map<SessionId, Set<string>>();

  private group: GroupDelivery | null = null;

  constructor(private readonly deliver: Deliver) {}

  /** Hands the group's members their deliveries in one call per publish; set before anyone joins. */
  setGroupDelivery(group: GroupDelivery): void {
    if (this.byKey.size > 0) throw new Error('setGroupDelivery: rooms already have members');
    this.group = group;
  }

  join(room: string, sid: SessionId): void {
    const key = foldKey(room);
    let r = this.byKey.get(key);
    if (!r) this.byKey.set(key, (r = { name: room, members: new Set(), direct: null, grouped: 0 }));
    if (r.members.has(sid)) return;
    r.members.add(sid);
    if (this.group?.owns(sid)) {
      if (r.grouped++ === 0 && r.direct === null) r.direct = new Set([...r.members].filter((m) => m !== sid));
      this.group.joined(key, sid);
    } else r.direct?.add(sid);
    let mine = this.joined.get(sid);
    if (!mine) this.joined.set(sid, (mine = new Set()));
    mine.add(r.name);
  }

  leave(room: string, sid: SessionId): void {
    const key = foldKey(room);
    const r = this.byKey.get(key);
    if (!r || !r.members.delete(sid)) return;
    if (this.group?.owns(sid)) {
      r.grouped--; // direct stays, kept in step: a publish may be iterating it
      this.group.left(key, sid);
    } else r.direct?.delete(sid);
    if (r.members.size === 0) this.byKey.delete(key);
    const mine = this.joined.get(sid);
    mine?.delete(r.name);
    if (mine?.size === 0) this.joined.delete(sid);
  }

  members(room: string): ReadonlySet<SessionId> {
    return this.byKey.get(foldKey(room))?.members ?? NONE;
  }

  roomsOf(sid: SessionId): ReadonlySet<string> {
    return this.joined.get(sid) ?? NONE;
  }

  roomName(room: string): string | undefined {
    return this.byKey.get(foldKey(room))?.name;
  }

  publish(room: string, msg: RoomEvent, echoTo?: SessionId): void {
    const key = foldKey(room);
    const r = this.byKey.get(key);
    if (!r) return;
    const others: RoomEvent = msg.type === 'message' && msg.ref !== null ? { ...msg, ref: null } : msg;
    // The group first: a publish made by a delivery below (a too-slow peer dropped, its leave announced)
    // then reaches the group after this one, as it does the direct members.
    if (r.grouped > 0) this.group!.publish(key, msg, others, echoTo);
    // Live iteration: a member removed by a delivery (e.g. the shell dropping a too-slow peer) gets no more.
    for (const sid of r.direct ?? r.members) this.deliver(sid, sid === echoTo ? msg : others);
  }

  *rooms(): Iterable<{ name: string; members: number }> {
    for (const r of this.byKey.values()) yield { name: r.name, members: r.members.size };
  }
}
