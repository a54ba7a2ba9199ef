// What the chat remembers across restarts: rooms (display name, topic, last message id), room messages
// and private messages. Behind an interface so the chat core does not know about SQLite; SqliteStore is
// the implementation (a file by default, ':memory:' for --memory).
//
// Every write is committed before it returns: the server echoes (acknowledges) a message only after
// appendMessage/appendPrivate returned, so a crash cannot lose an acknowledged message.

export interface RoomRecord {
  /** foldKey() of the name: how the room is found. */
  key: string;
  /** The spelling it was created with, shown everywhere. */
  name: string;
  topic: string;
  topicBy: string;
  topicTs: number;
  /** The last message id given out in this room; ids are never reused, even after pruning. */
  lastId: number;
}

export interface RoomRef {
  key: string;
  name: string;
}

export interface StoredMessage {
  /** The room's display name. */
  room: string;
  id: number;
  ts: number;
  from: string;
  body: string;
  action: boolean;
}

export interface StoredPrivate {
  /** Increasing over all private messages of the server. */
  id: number;
  ts: number;
  from: string;
  to: string;
  body: string;
  action: boolean;
}

/** A stored message as a replay gives it: with `ownRef`, the ref it was sent under, when the client asking
 * is its sender (by client key). A client whose resend is still waiting for its echo then knows the
 * replayed message for its own, which it is: a crash can leave the message stored and the echo unsent,
 * and the catch-up after the reconnect replays it before the resend is answered. */
export type Replayed<T> = T & { ownRef?: number };

/** Who sent a message: a client key (hex) and its ref, so a resend after a reconnect is recognised. */
export interface Origin {
  identity: string | null;
  ref: number | null;
}

export interface NewMessage {
  ts: number;
  from: string;
  body: string;
  action: boolean;
}

export type SentRecord = { kind: 'message'; message: StoredMessage } | { kind: 'private'; message: StoredPrivate };

export interface PageLimits {
  maxMessages: number;
  maxBytes: number;
}

export interface Retention {
  /** Messages kept per room (and private messages kept in all); 0 keeps all. */
  maxMessages: number;
  /** Age in ms after which messages go; 0 keeps them forever. */
  maxAgeMs: number;
}

export interface Store {
  room(key: string): RoomRecord | undefined;
  /**
   * The room's record, or a fresh one with `name` as its display name. A room is written only with its
   * first message or topic, so joining rooms cannot fill the disk.
   */
  ensureRoom(key: string, name: string): RoomRecord;
  setTopic(room: RoomRef, topic: string, by: string, ts: number): void;
  /** Stores a message and gives it the room's next id. */
  appendMessage(room: RoomRef, m: NewMessage, origin: Origin): StoredMessage;
  /** Stores a private message between two client keys (null for a party without one). */
  appendPrivate(m: NewMessage & { to: string }, from: Origin, toIdentity: string | null): StoredPrivate;
  /** What a client key already sent under this ref, if anything (a resend). */
  findSent(identity: string, ref: number): SentRecord | undefined;
  /** The id of the oldest of a room's last `count` messages, or null when it has none. */
  firstOfLast(roomKey: string, count: number): number | null;
  /** Messages of a room after id `after`, oldest first, one page; `more` when the page was cut short. Those
   * sent under the client key `requester` carry their ref (Replayed). */
  roomAfter(roomKey: string, after: number, page: PageLimits, requester?: string | null): { messages: Replayed<StoredMessage>[]; more: boolean };
  /** Private messages sent or received by a client key after id `after`, one page; those it sent carry their
   * ref (Replayed). */
  privatesAfter(identity: string, after: number, page: PageLimits): { messages: Replayed<StoredPrivate>[]; more: boolean };
  /** Deletes what retention no longer keeps; returns how many messages went. */
  prune(now: number, r: Retention): number;
  close(): void;
}

/** Bytes a message counts against a history page: its texts plus a little framing. */
export function pageCost(m: { from: string; body: string }): number {
  return Buffer.byteLength(m.body, 'utf8') + Buffer.byteLength(m.from, 'utf8') + 32;
}
