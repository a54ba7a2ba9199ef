// Exactly-once across reconnects, sans-I/O: which message ids a client has shown per room and of its
// private conversations, and what to do with each message that arrives.
//
// A catch-up (a join with `since`, or a history request) replays messages after the last id seen, in
// pages. Live messages that arrive meanwhile are held back until the replay reaches them, so the next
// page can ask "after the last id seen" without skipping anything; ids at or below it are duplicates.

export interface Numbered {
  id: number;
}

interface Track<T extends Numbered> {
  /** The last id shown; 0 before any. */
  lastSeen: number;
  catching: boolean;
  held: T[];
}

/** What the client should do after a `caughtup`: ask for the next page, or show what was held back. */
export type CaughtUp<T> = { more: true; after: number } | { more: false; release: T[] };

/** Held-back live messages per track; beyond this the oldest are dropped (the replay brings them). */
const HELD_MAX = 10_000;

class Tracks<T extends Numbered> {
  private readonly tracks = new Map<string, Track<T>>();

  constructor(private readonly fold: (k: string) => string) {}

  get(key: string): Track<T> | undefined {
    return this.tracks.get(this.fold(key));
  }

  ensure(key: string, lastSeen = 0): Track<T> {
    const k = this.fold(key);
    let t = this.tracks.get(k);
    if (!t) this.tracks.set(k, (t = { lastSeen, catching: false, held: [] }));
    return t;
  }

  delete(key: string): void {
    this.tracks.delete(this.fold(key));
  }

  entries(): IterableIterator<[string, Track<T>]> {
    return this.tracks.entries();
  }
}

/** Show a replayed message? Only if it is new. */
function replayed<T extends Numbered>(t: Track<T>, m: T): boolean {
  if (m.id <= t.lastSeen) return false;
  t.lastSeen = m.id;
  return true;
}

/** Show a live message now? Held back while catching up; a duplicate never. */
function live<T extends Numbered>(t: Track<T>, m: T): boolean {
  if (t.catching) {
    if (t.held.length >= HELD_MAX) t.held.shift();
    t.held.push(m);
    return false;
  }
  return replayed(t, m);
}

function caughtUp<T extends Numbered>(t: Track<T>, more: boolean): CaughtUp<T> {
  if (more) return { more: true, after: t.lastSeen };
  t.catching = false;
  const release = t.held.filter((m) => replayed(t, m));
  t.held = [];
  return { more: false, release };
}

/** Per-room and private-conversation catch-up state of one client. */
export class CatchUpState<R extends Numbered, P extends Numbered> {
  private readonly rooms: Tracks<R>;
  private readonly dm: Track<P> = { lastSeen: 0, catching: false, held: [] };
  /** Display names by folded key, for rejoining. */
  private readonly names = new Map<string, string>();

  constructor(private readonly fold: (room: string) => string) {
    this.rooms = new Tracks<R>(fold);
  }

  /** Rooms the client is in, with the last id seen in each. */
  joinedRooms(): { room: string; lastSeen: number }[] {
    return [...this.rooms.entries()].map(([k, t]) => ({ room: this.names.get(k) ?? k, lastSeen: t.lastSeen }));
  }

  get lastPrivate(): number {
    return this.dm.lastSeen;
  }

  inRoom(room: string): boolean {
    return this.rooms.get(room) !== undefined;
  }

  /** Restores what a previous run saw (the client's state file). */
  restore(rooms: { room: string; lastSeen: number }[], lastPrivate: number): void {
    for (const r of rooms) this.entered(r.room, r.lastSeen);
    this.dm.lastSeen = Math.max(this.dm.lastSeen, lastPrivate);
  }

  /** The client is (or is becoming) a member; a replay follows. */
  entered(room: string, lastSeen = 0): void {
    this.names.set(this.fold(room), room);
    this.rooms.ensure(room, lastSeen);
  }

  /** A join or history request for the room went out: hold live messages until its caughtup. */
  catching(room: string): void {
    this.entered(room);
    this.rooms.ensure(room).catching = true;
  }

  left(room: string): void {
    this.rooms.delete(room);
    this.names.delete(this.fold(room));
  }

  catchingPrivate(): void {
    this.dm.catching = true;
  }

  /**
   * A room message arrived; true if it should be shown now. A message for a room the client is not
   * tracking (an echo after leaving, say) is shown.
   */
  roomMessage(room: string, m: R, history: boolean): boolean {
    const t = this.rooms.get(room);
    if (!t) return true;
    return history ? replayed(t, m) : live(t, m);
  }

  privateMessage(m: P, history: boolean): boolean {
    return history ? replayed(this.dm, m) : live(this.dm, m);
  }

  roomCaughtUp(room: string, more: boolean): CaughtUp<R> {
    const t = this.rooms.get(room);
    return t ? caughtUp(t, more) : { more: false, release: [] };
  }

  privateCaughtUp(more: boolean): CaughtUp<P> {
    return caughtUp(this.dm, more);
  }

  /** After a lost connection: every catch-up starts over, so what was held will be replayed or resent. */
  resetCatching(): void {
    for (const [, t] of this.rooms.entries()) {
      t.catching = false;
      t.held = [];
    }
    this.dm.catching = false;
    this.dm.held = [];
  }
}
