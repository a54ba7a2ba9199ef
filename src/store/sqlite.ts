// The Store on SQLite (better-sqlite3), in WAL mode. Every call is one synchronous transaction, committed
// when it returns: with synchronous=NORMAL a WAL commit survives the process being killed (kill -9);
// `durable: 'full'` also survives power loss, at the cost of an fsync per message.

import Database from 'better-sqlite3';
import type {
  NewMessage,
  Origin,
  PageLimits,
  Replayed,
  Retention,
  RoomRecord,
  RoomRef,
  SentRecord,
  Store,
  StoredMessage,
  StoredPrivate,
} from './store.js';
import { pageCost } from './store.js';
import { SENT_REF_CACHE_KEYS } from '../limits.js';

const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS rooms (
  key       TEXT PRIMARY KEY,
  name      TEXT NOT NULL,
  topic     TEXT NOT NULL DEFAULT '',
  topic_by  TEXT NOT NULL DEFAULT '',
  topic_ts  INTEGER NOT NULL DEFAULT 0,
  last_id   INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE TABLE IF NOT EXISTS messages (
  room_key  TEXT NOT NULL,
  id        INTEGER NOT NULL,
  ts        INTEGER NOT NULL,
  sender    TEXT NOT NULL,
  sender_key TEXT,
  ref       INTEGER,
  body      TEXT NOT NULL,
  action    INTEGER NOT NULL,
  PRIMARY KEY (room_key, id)
) STRICT, WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_ref ON messages (sender_key, ref) WHERE sender_key IS NOT NULL AND ref IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_by_ts ON messages (ts);
CREATE TABLE IF NOT EXISTS privates (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  ts        INTEGER NOT NULL,
  sender    TEXT NOT NULL,
  sender_key TEXT,
  recipient TEXT NOT NULL,
  recipient_key TEXT,
  ref       INTEGER,
  body      TEXT NOT NULL,
  action    INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS privates_by_ref ON privates (sender_key, ref) WHERE sender_key IS NOT NULL AND ref IS NOT NULL;
CREATE INDEX IF NOT EXISTS privates_by_sender ON privates (sender_key, id);
CREATE INDEX IF NOT EXISTS privates_by_recipient ON privates (recipient_key, id);
CREATE INDEX IF NOT EXISTS privates_by_ts ON privates (ts);
`;

interface RoomRow {
  key: string;
  name: string;
  topic: string;
  topic_by: string;
  topic_ts: number;
  last_id: number;
}
interface MessageRow {
  room_key: string;
  id: number;
  ts: number;
  sender: string;
  body: string;
  action: number;
  /** Replays only: the ref, when the client asking sent it. */
  own_ref?: number | null;
}
interface PrivateRow {
  id: number;
  ts: number;
  sender: string;
  recipient: string;
  body: string;
  action: number;
  own_ref?: number | null;
}

export interface SqliteStoreOptions {
  /** 'normal' (default) survives a crash of the process; 'full' also a crash of the machine. */
  durable?: 'normal' | 'full';
}

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  /** Rooms that are on disk, by key; small (one row per room that ever had a message or topic). */
  private readonly rooms = new Map<string, RoomRecord>();
  private readonly q: ReturnType<typeof prepare>;
  /** The largest private message id ever given (AUTOINCREMENT never reuses one): a catch-up past it needs no query. */
  private lastPrivateId = 0;
  /** The largest ref stored for a client key, for keys looked up since the store opened: a ref above it
   * (every new message) is not a resend, and needs no query. An overestimate after a prune only costs a query. */
  private readonly maxRef = new Map<string, number>();

  /** `file` is a path, or ':memory:' for a store that lives as long as the process. */
  constructor(file: string, opts: SqliteStoreOptions = {}) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${opts.durable === 'full' ? 'FULL' : 'NORMAL'}`);
    this.db.pragma('foreign_keys = OFF');
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      this.db.close();
      throw new Error(`${file} was written by a newer obrol (schema ${version}; this one knows ${SCHEMA_VERSION})`);
    }
    this.db.exec(SCHEMA);
    this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
    this.q = prepare(this.db);
    for (const r of this.q.allRooms.all() as RoomRow[]) this.rooms.set(r.key, fromRoomRow(r));
    // Messages appended since the last prune are newer than rooms.last_id.
    for (const row of this.q.lastIds.all() as { room_key: string; id: number }[]) {
      const r = this.rooms.get(row.room_key);
      if (r && row.id > r.lastId) r.lastId = row.id;
    }
    this.lastPrivateId = (this.q.lastPrivateId.get() as { id: number } | undefined)?.id ?? 0;
  }

  room(key: string): RoomRecord | undefined {
    return this.rooms.get(key);
  }

  ensureRoom(key: string, name: string): RoomRecord {
    return this.rooms.get(key) ?? { key, name, topic: '', topicBy: '', topicTs: 0, lastId: 0 };
  }

  /** The on-disk record of a room, written now if it was not yet. */
  private persisted(room: RoomRef): RoomRecord {
    let r = this.rooms.get(room.key);
    if (!r) {
      r = { key: room.key, name: room.name, topic: '', topicBy: '', topicTs: 0, lastId: 0 };
      this.q.insertRoom.run(r.key, r.name);
      this.rooms.set(r.key, r);
    }
    return r;
  }

  setTopic(room: RoomRef, topic: string, by: string, ts: number): void {
    this.db.transaction(() => {
      const r = this.persisted(room);
      this.q.setTopic.run(topic, by, ts, r.key);
      Object.assign(r, { topic, topicBy: by, topicTs: ts });
    })();
  }

  appendMessage(room: RoomRef, m: NewMessage, origin: Origin): StoredMessage {
    // One statement, so one implicit transaction: rooms.last_id is written by prune() (which may empty a
    // room) and recovered as max(last_id, max(id)) on open, not updated per message.
    const r = this.persisted(room);
    const id = r.lastId + 1;
    this.q.insertMessage.run(r.key, id, m.ts, m.from, origin.identity, origin.ref, m.body, m.action ? 1 : 0);
    r.lastId = id; // only after the insert succeeded
    this.noteRef(origin);
    return { room: r.name, id, ts: m.ts, from: m.from, body: m.body, action: m.action };
  }

  appendPrivate(m: NewMessage & { to: string }, from: Origin, toIdentity: string | null): StoredPrivate {
    const info = this.q.insertPrivate.run(m.ts, m.from, from.identity, m.to, toIdentity, from.ref, m.body, m.action ? 1 : 0);
    const id = Number(info.lastInsertRowid);
    if (id > this.lastPrivateId) this.lastPrivateId = id;
    this.noteRef(from);
    return { id, ts: m.ts, from: m.from, to: m.to, body: m.body, action: m.action };
  }

  private noteRef(o: Origin): void {
    if (o.identity === null || o.ref === null) return;
    const known = this.maxRef.get(o.identity);
    if (known !== undefined && o.ref > known) this.maxRef.set(o.identity, o.ref);
  }

  findSent(identity: string, ref: number): SentRecord | undefined {
    let max = this.maxRef.get(identity);
    if (max === undefined) {
      const row = this.q.maxRefs.get(identity, identity) as { m: number | null } | undefined;
      max = row?.m ?? -1;
      if (this.maxRef.size >= SENT_REF_CACHE_KEYS) this.maxRef.clear(); // bounded; forgotten keys are asked again
      this.maxRef.set(identity, max);
    }
    if (ref > max) return undefined;
    const m = this.q.messageByRef.get(identity, ref) as MessageRow | undefined;
    if (m) return { kind: 'message', message: this.fromMessageRow(m) };
    const p = this.q.privateByRef.get(identity, ref) as PrivateRow | undefined;
    if (p) return { kind: 'private', message: fromPrivateRow(p) };
    return undefined;
  }

  firstOfLast(roomKey: string, count: number): number | null {
    if (count <= 0 || (this.rooms.get(roomKey)?.lastId ?? 0) === 0) return null;
    // The newest row when the room has fewer than `count`.
    const row = (this.q.nthFromEnd.get(roomKey, count - 1) ?? this.q.oldest.get(roomKey)) as { id: number } | undefined;
    return row?.id ?? null;
  }

  roomAfter(roomKey: string, after: number, page: PageLimits, requester: string | null = null): { messages: Replayed<StoredMessage>[]; more: boolean } {
    // Up to date (every join of a quiet room, every reconnect): nothing to ask SQLite.
    if (after >= (this.rooms.get(roomKey)?.lastId ?? 0)) return { messages: [], more: false };
    const rows = this.q.roomAfter.all(requester, roomKey, after, page.maxMessages + 1) as MessageRow[];
    return cut(rows.map((r) => this.fromMessageRow(r)), page);
  }

  privatesAfter(identity: string, after: number, page: PageLimits): { messages: Replayed<StoredPrivate>[]; more: boolean } {
    if (after >= this.lastPrivateId) return { messages: [], more: false };
    const rows = this.q.privatesAfter.all(identity, after, identity, identity, after, page.maxMessages + 1) as PrivateRow[];
    return cut(rows.map(fromPrivateRow), page);
  }

  prune(now: number, r: Retention): number {
    return this.db.transaction((): number => {
      let gone = 0;
      // Kept where a prune that empties a room cannot lose it: ids are never reused.
      for (const room of this.rooms.values()) this.q.setLastId.run(room.lastId, room.key);
      if (r.maxAgeMs > 0) {
        const before = now - r.maxAgeMs;
        gone += this.q.pruneMessagesByAge.run(before).changes;
        gone += this.q.prunePrivatesByAge.run(before).changes;
      }
      if (r.maxMessages > 0) {
        for (const room of this.rooms.values()) {
          if (room.lastId > r.maxMessages) gone += this.q.pruneRoomByCount.run(room.key, room.lastId - r.maxMessages).changes;
        }
        gone += this.q.prunePrivatesByCount.run(r.maxMessages).changes;
      }
      return gone;
    })();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  private fromMessageRow(r: MessageRow): Replayed<StoredMessage> {
    const name = this.rooms.get(r.room_key)?.name ?? r.room_key;
    const m: Replayed<StoredMessage> = { room: name, id: r.id, ts: r.ts, from: r.sender, body: r.body, action: r.action !== 0 };
    if (r.own_ref !== undefined && r.own_ref !== null) m.ownRef = r.own_ref;
    return m;
  }
}

function prepare(db: Database.Database) {
  return {
    allRooms: db.prepare('SELECT key, name, topic, topic_by, topic_ts, last_id FROM rooms'),
    insertRoom: db.prepare('INSERT INTO rooms (key, name) VALUES (?, ?)'),
    setTopic: db.prepare('UPDATE rooms SET topic = ?, topic_by = ?, topic_ts = ? WHERE key = ?'),
    setLastId: db.prepare('UPDATE rooms SET last_id = ? WHERE key = ?'),
    maxRefs: db.prepare(
      `SELECT max(m) AS m FROM (SELECT max(ref) AS m FROM messages WHERE sender_key = ? AND ref IS NOT NULL
       UNION ALL SELECT max(ref) FROM privates WHERE sender_key = ? AND ref IS NOT NULL)`,
    ),
    lastPrivateId: db.prepare("SELECT seq AS id FROM sqlite_sequence WHERE name = 'privates'"),
    lastIds: db.prepare('SELECT room_key, max(id) AS id FROM messages GROUP BY room_key'),
    insertMessage: db.prepare('INSERT INTO messages (room_key, id, ts, sender, sender_key, ref, body, action) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
    insertPrivate: db.prepare(
      'INSERT INTO privates (ts, sender, sender_key, recipient, recipient_key, ref, body, action) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    messageByRef: db.prepare('SELECT room_key, id, ts, sender, body, action FROM messages WHERE sender_key = ? AND ref = ?'),
    privateByRef: db.prepare('SELECT id, ts, sender, recipient, body, action FROM privates WHERE sender_key = ? AND ref = ?'),
    nthFromEnd: db.prepare('SELECT id FROM messages WHERE room_key = ? ORDER BY id DESC LIMIT 1 OFFSET ?'),
    oldest: db.prepare('SELECT id FROM messages WHERE room_key = ? ORDER BY id LIMIT 1'),
    // own_ref: the ref, for the client key asking (NULL matches nothing).
    roomAfter: db.prepare(
      'SELECT room_key, id, ts, sender, body, action, CASE WHEN sender_key = ? THEN ref END AS own_ref FROM messages WHERE room_key = ? AND id > ? ORDER BY id LIMIT ?',
    ),
    privatesAfter: db.prepare(
      `SELECT id, ts, sender, recipient, body, action, ref AS own_ref FROM privates WHERE sender_key = ? AND id > ?
       UNION SELECT id, ts, sender, recipient, body, action, CASE WHEN sender_key = ? THEN ref END FROM privates WHERE recipient_key = ? AND id > ?
       ORDER BY id LIMIT ?`,
    ),
    pruneMessagesByAge: db.prepare('DELETE FROM messages WHERE ts < ?'),
    prunePrivatesByAge: db.prepare('DELETE FROM privates WHERE ts < ?'),
    pruneRoomByCount: db.prepare('DELETE FROM messages WHERE room_key = ? AND id <= ?'),
    prunePrivatesByCount: db.prepare('DELETE FROM privates WHERE id <= (SELECT max(id) FROM privates) - ?'),
  };
}

function fromRoomRow(r: RoomRow): RoomRecord {
  return { key: r.key, name: r.name, topic: r.topic, topicBy: r.topic_by, topicTs: r.topic_ts, lastId: r.last_id };
}

function fromPrivateRow(r: PrivateRow): Replayed<StoredPrivate> {
  const m: Replayed<StoredPrivate> = { id: r.id, ts: r.ts, from: r.sender, to: r.recipient, body: r.body, action: r.action !== 0 };
  if (r.own_ref !== undefined && r.own_ref !== null) m.ownRef = r.own_ref;
  return m;
}

/** The page the limits allow from rows fetched with one extra (which tells whether there is more). */
function cut<T extends { from: string; body: string }>(rows: T[], page: PageLimits): { messages: T[]; more: boolean } {
  const out: T[] = [];
  let bytes = 0;
  for (const m of rows) {
    if (out.length >= page.maxMessages) break;
    const c = pageCost(m);
    // Always at least one message, so a page of one huge message still makes progress.
    if (out.length > 0 && bytes + c > page.maxBytes) break;
    out.push(m);
    bytes += c;
  }
  return { messages: out, more: out.length < rows.length };
}
