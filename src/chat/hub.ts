// Room membership, fan-out and message ids. Behind an interface so a Redis-backed hub can spread a room
// over several server nodes without touching the chat logic.

import type { ServerMsg } from '../wire/message.js';
import type { SessionId } from './registry.js';
import { foldKey } from './names.js';

export type Deliver = (to: SessionId, msg: ServerMsg) => void;

export interface Hub {
  join(room: string, sid: SessionId): void;
  leave(room: string, sid: SessionId): void;
  /** Members of a room on this node. */
  members(room: string): ReadonlySet<SessionId>;
  roomsOf(sid: SessionId): ReadonlySet<string>;
  /**
   * Delivers msg to every member. When `echo` is given, that member gets `echo.msg` instead: the sender's
   * copy of a message carries the sender's ref, which confirms it.
   */
  publish(room: string, msg: ServerMsg, echo?: { to: SessionId; msg: ServerMsg }): void;
  /** The next message id of a room: increasing from 1, never reused while the server runs. */
  nextMessageId(room: string): number;
}

const NONE: ReadonlySet<never> = new Set();

export class MemoryHub implements Hub {
  private readonly rooms = new Map<string, Set<SessionId>>();
  private readonly sessionRooms = new Map<SessionId, Set<string>>();
  private readonly lastId = new Map<string, number>();

  constructor(private readonly deliver: Deliver) {}

  join(room: string, sid: SessionId): void {
    const key = foldKey(room);
    let m = this.rooms.get(key);
    if (!m) this.rooms.set(key, (m = new Set()));
    m.add(sid);
    let r = this.sessionRooms.get(sid);
    if (!r) this.sessionRooms.set(sid, (r = new Set()));
    r.add(key);
  }

  leave(room: string, sid: SessionId): void {
    const key = foldKey(room);
    const m = this.rooms.get(key);
    if (m) {
      m.delete(sid);
      if (m.size === 0) this.rooms.delete(key); // empty rooms are forgotten; only their id counter stays
    }
    const r = this.sessionRooms.get(sid);
    if (r) {
      r.delete(key);
      if (r.size === 0) this.sessionRooms.delete(sid);
    }
  }

  members(room: string): ReadonlySet<SessionId> {
    return this.rooms.get(foldKey(room)) ?? NONE;
  }

  roomsOf(sid: SessionId): ReadonlySet<string> {
    return this.sessionRooms.get(sid) ?? NONE;
  }

  publish(room: string, msg: ServerMsg, echo?: { to: SessionId; msg: ServerMsg }): void {
    for (const sid of this.members(room)) this.deliver(sid, echo && echo.to === sid ? echo.msg : msg);
  }

  nextMessageId(room: string): number {
    const key = foldKey(room);
    const id = (this.lastId.get(key) ?? 0) + 1;
    this.lastId.set(key, id);
    return id;
  }
}
