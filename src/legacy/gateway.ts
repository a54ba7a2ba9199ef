// The legacy gateway: speaks the original plain-text UDP chat (a name datagram, then lines of text)
// and turns each original client into a chat session of the ChatCore, so both kinds of client share
// #lobby. Sans-I/O like the endpoints: the shell feeds datagrams and the time, and sends what it polls.
//
// The original protocol is unauthenticated: anyone can send from any address, under any free name.
// What this module guarantees (docs/PROTOCOL.md, "Legacy plain-text protocol"):
// - an address that has not registered gets at most one reply per datagram it sent, and never more
//   bytes than that datagram had (so the 22-byte "name taken" reply needs a name datagram of 22+ bytes);
// - no datagram to a legacy client exceeds LEGACY_DATAGRAM_MAX (the original client's read buffer);
// - per-address rate limits and bounded tables (LEGACY_MAX_CLIENTS, LEGACY_CLIENTS_PER_IP).

import {
  LEGACY_CLIENTS_PER_IP,
  LEGACY_DATAGRAM_MAX,
  LEGACY_IDLE_MS,
  LEGACY_MAX_CLIENTS,
  LEGACY_RATE_BUCKETS_MAX,
  LEGACY_RATE_BURST,
  LEGACY_RATE_PER_SEC,
} from '../limits.js';
import { addrKey, AddressGroup, type Address, type Transmit } from '../session/address.js';
import type { GroupDelivery, RoomEvent } from '../chat/hub.js';
import { utf8Bytes, utf8Text } from '../wire/buf.js';
import { LeaveReason, type ClientMsg, type ErrorCode, type ServerMsg } from '../wire/message.js';
import { LOBBY, type ChatEvent, type LeaveWhy } from '../client/client.js';
import { formatLine } from '../cli/format.js';

/** The original server's only refusal, byte for byte ("this name is already taken"). */
export const LEGACY_TAKEN_REPLY = 'nama ini sudah diambil';
const TAKEN_BYTES = utf8Bytes(LEGACY_TAKEN_REPLY);

/** The part of ChatCore the gateway drives; legacy session ids are negative. */
export interface ChatCoreLike {
  connect(
    sid: number,
    requestedName: string,
    now: number,
  ): { ok: true; name: string } | { ok: false; code: ErrorCode; reason: string };
  handle(sid: number, msg: ClientMsg, now: number): void;
  disconnect(sid: number, why: LeaveReason, reason: string, now: number): void;
}

/** Sends one datagram to every member of a group but those keyed in except (at most two). */
export type GroupSink = (group: AddressGroup, data: Uint8Array, except: readonly number[]) => void;

export interface LegacyGatewayOptions {
  /** Silence after which a legacy client is disconnected as timed out. */
  idleMs?: number;
  /** Per-address token bucket on incoming datagrams. */
  ratePerSec?: number;
  burst?: number;
  maxClients?: number;
  clientsPerIp?: number;
  /** Unregistered addresses whose rate is tracked at once. */
  maxBuckets?: number;
  /**
   * Maps the gateway's clock (monotonic, shared with the endpoint's timers) to the wall-clock
   * milliseconds the chat core stamps messages with. Default: the same number (tests).
   */
  chatTime?: (now: number) => number;
}

export interface LegacyStats {
  datagramsIn: number;
  datagramsOut: number;
  bytesOut: number;
  registered: number;
  /** Name datagrams refused by the chat core or our tables (taken, invalid, full). */
  namesRefused: number;
  /** Refusals not answered because the reply would have been larger than the datagram (amplification). */
  repliesSuppressed: number;
  rateLimited: number;
  emptyIgnored: number;
  badUtf8: number;
  expired: number;
  /** Long lines sent as several datagrams. */
  linesSplit: number;
  /** Deliveries for a legacy session that no longer exists. */
  deliverUnknown: number;
  /** Messages the chat core replayed to a joining legacy client, not sent (see deliver). */
  historySkipped: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

interface Client {
  sid: number;
  addr: Address;
  key: string;
  name: string;
  lastHeard: number;
  bucket: Bucket;
  nextRef: number;
  /** Inside chat.connect(): only the join announcement may reach it (see deliver). */
  joining: boolean;
}

const WHY: Record<LeaveReason, LeaveWhy> = {
  [LeaveReason.Quit]: 'quit',
  [LeaveReason.TimedOut]: 'timeout',
  [LeaveReason.ConnectionLost]: 'lost',
  [LeaveReason.Kicked]: 'kicked',
  [LeaveReason.Part]: 'part',
};

export class LegacyGateway implements GroupDelivery {
  private readonly idleMs: number;
  private readonly rate: number;
  private readonly burst: number;
  private readonly maxClients: number;
  private readonly perIp: number;
  private readonly maxBuckets: number;
  private readonly chatTime: (now: number) => number;
  /** Registered clients by address, kept in order of last datagram: the first one expires first. */
  private readonly byAddr = new Map<string, Client>();
  private readonly bySid = new Map<number, Client>();
  private readonly ipCount = new Map<string, number>();
  /** Rate buckets of unregistered addresses, least recently heard first. */
  private readonly buckets = new Map<string, Bucket>();
  private nextSid = -1;
  private out: Transmit[] = [];
  private outHead = 0;
  /** Where datagrams go as they are produced, once set (setTransmitSink); null: the queue. */
  private sink: ((to: Address, data: Uint8Array) => void) | null = null;
  /** Where a room's line goes once for all its legacy members (setTransmitSink); null: one by one. */
  private groupSink: GroupSink | null = null;
  /** Each room's legacy members, by room key, as the hub reports them (GroupDelivery). */
  private readonly groups = new Map<string, AddressGroup>();
  /** Inside chat.connect(): datagrams are queued even with a sink, so a refused registration can take back
   * what the core queued for it (unqueue). */
  private holding = false;
  /** The last line formatted, and the message it came from: a fan-out formats once, not once per member. */
  private cache: { msg: ServerMsg; line: string; datagrams: Uint8Array[] } | null = null;
  readonly stats: LegacyStats = {
    datagramsIn: 0,
    datagramsOut: 0,
    bytesOut: 0,
    registered: 0,
    namesRefused: 0,
    repliesSuppressed: 0,
    rateLimited: 0,
    emptyIgnored: 0,
    badUtf8: 0,
    expired: 0,
    linesSplit: 0,
    deliverUnknown: 0,
    historySkipped: 0,
  };

  constructor(
    private readonly chat: ChatCoreLike,
    opts: LegacyGatewayOptions = {},
  ) {
    this.idleMs = opts.idleMs ?? LEGACY_IDLE_MS;
    this.rate = opts.ratePerSec ?? LEGACY_RATE_PER_SEC;
    this.burst = opts.burst ?? LEGACY_RATE_BURST;
    this.maxClients = opts.maxClients ?? LEGACY_MAX_CLIENTS;
    this.perIp = opts.clientsPerIp ?? LEGACY_CLIENTS_PER_IP;
    this.maxBuckets = opts.maxBuckets ?? LEGACY_RATE_BUCKETS_MAX;
    this.chatTime = opts.chatTime ?? ((now) => now);
  }

  get clientCount(): number {
    return this.byAddr.size;
  }

  /** The registered name of the legacy client at `from`, if any. */
  nameOf(from: Address): string | undefined {
    return this.byAddr.get(addrKey(from))?.name;
  }

  /** One datagram that is not obrol's (its first byte is below 0xF5). */
  handleDatagram(now: number, from: Address, bytes: Uint8Array): void {
    this.stats.datagramsIn++;
    const key = addrKey(from);
    const client = this.byAddr.get(key);
    if (client) this.fromClient(now, client, bytes);
    else this.fromStranger(now, from, key, bytes);
  }

  private fromClient(now: number, c: Client, bytes: Uint8Array): void {
    // Any datagram shows the client is still there; re-inserting keeps byAddr in expiry order.
    c.lastHeard = now;
    this.byAddr.delete(c.key);
    this.byAddr.set(c.key, c);
    if (!take(c.bucket, now, this.rate, this.burst)) {
      this.stats.rateLimited++;
      return;
    }
    const text = utf8Text(bytes);
    if (text === null) {
      this.stats.badUtf8++;
      return;
    }
    const body = stripNewline(text);
    if (body.length === 0) {
      this.stats.emptyIgnored++;
      return;
    }
    // Too long, too fast: the chat core decides and answers with an error line.
    this.chat.handle(c.sid, { type: 'say', ref: c.nextRef++, room: LOBBY, body, action: false }, this.chatTime(now));
  }

  private fromStranger(now: number, from: Address, key: string, bytes: Uint8Array): void {
    let bucket = this.buckets.get(key);
    if (bucket) this.buckets.delete(key);
    else {
      bucket = { tokens: this.burst, at: now };
      // Bounded: forget the least recently heard address. It only gets a fresh bucket back.
      if (this.buckets.size >= this.maxBuckets) {
        const oldest = this.buckets.keys().next();
        if (!oldest.done) this.buckets.delete(oldest.value);
      }
    }
    this.buckets.set(key, bucket);
    if (!take(bucket, now, this.rate, this.burst)) {
      this.stats.rateLimited++;
      return;
    }

    const text = utf8Text(bytes);
    const name = text === null ? null : stripNewline(text);
    if (name === null || this.byAddr.size >= this.maxClients || (this.ipCount.get(from.address) ?? 0) >= this.perIp) {
      // The original protocol has one refusal; the original client answers it by asking for another name.
      this.refuse(from, bytes.length);
      return;
    }

    const c: Client = { sid: this.nextSid--, addr: { ...from }, key, name, lastHeard: now, bucket, nextRef: 0, joining: true };
    // Registered before connect(): the core delivers the join announcement to the newcomer inside it.
    this.byAddr.set(key, c);
    this.bySid.set(c.sid, c);
    const mark = this.out.length;
    const held = this.holding;
    this.holding = true;
    let r: ReturnType<ChatCoreLike['connect']>;
    try {
      r = this.chat.connect(c.sid, name, this.chatTime(now));
    } finally {
      this.holding = held;
      c.joining = false;
    }
    if (!r.ok) {
      this.byAddr.delete(key);
      this.bySid.delete(c.sid);
      this.leaveGroups(c.sid);
      this.unqueue(mark); // nothing the core queued for it may leave
      this.refuse(from, bytes.length);
      this.release();
      return;
    }
    this.release();
    c.name = r.name;
    this.buckets.delete(key);
    this.ipCount.set(from.address, (this.ipCount.get(from.address) ?? 0) + 1);
    this.stats.registered++;
  }

  /** Replies "name taken" only if that is no larger than what the address sent (no amplification). */
  private refuse(to: Address, receivedBytes: number): void {
    this.stats.namesRefused++;
    if (receivedBytes < TAKEN_BYTES.length) {
      this.stats.repliesSuppressed++;
      return;
    }
    this.push({ ...to }, TAKEN_BYTES);
  }

  /** The shell routes every chat delivery for a negative session id here. */
  deliver(sid: number, msg: ServerMsg): void {
    const c = this.bySid.get(sid);
    if (!c) {
      this.stats.deliverUnknown++;
      return;
    }
    // A registration answers one (spoofable) datagram with one line: no history replay, which the
    // original protocol never had either.
    if (c.joining && msg.type !== 'joined') {
      if (msg.type === 'message') this.stats.historySkipped++;
      return;
    }
    for (const data of this.datagramsFor(msg)) this.push(c.addr, data);
  }

  // ---- GroupDelivery: the hub hands a room's publish to all of its legacy members in one call ----

  /** Legacy sessions have negative ids (the server routes deliveries by the sign too). */
  owns(sid: number): boolean {
    return sid < 0;
  }

  joined(roomKey: string, sid: number): void {
    const c = this.bySid.get(sid);
    if (!c) return;
    let g = this.groups.get(roomKey);
    if (!g) this.groups.set(roomKey, (g = new AddressGroup()));
    g.add(sid, c.addr);
  }

  left(roomKey: string, sid: number): void {
    const g = this.groups.get(roomKey);
    if (g?.remove(sid) && g.size === 0) this.groups.delete(roomKey);
  }

  publish(roomKey: string, msg: RoomEvent, others: RoomEvent, echoTo: number | undefined): void {
    const g = this.groups.get(roomKey);
    if (!g) return;
    if (this.groupSink === null || this.holding) {
      // One by one: into the queue, or held while a registration may still be refused (unqueue).
      for (let i = 0; i < g.size; i++) {
        const sid = g.keyOf(i);
        this.deliver(sid, sid === echoTo ? msg : others);
      }
      return;
    }
    const lines = this.datagramsFor(others);
    // The sender's own line is the same text (the original echoes `<name>: <text>` too), which the cache
    // returns as the same array; should it ever differ, the sender gets its own.
    const own = echoTo !== undefined && g.has(echoTo) && this.datagramsFor(msg) !== lines ? echoTo : undefined;
    const except = own === undefined ? [] : [own];
    const n = g.size - except.length;
    for (const d of lines) {
      this.stats.datagramsOut += n;
      this.stats.bytesOut += n * d.length;
      this.groupSink(g, d, except);
    }
    if (own !== undefined) this.deliver(own, msg);
  }

  private datagramsFor(msg: ServerMsg): Uint8Array[] {
    // A fan-out hands every member the same object: format it once.
    if (this.cache?.msg === msg) return this.cache.datagrams;
    if (msg.type === 'presence') {
      // The original protocol announces each join and leave on its own line.
      const each: ServerMsg[] = [
        ...msg.joined.map((name): ServerMsg => ({ type: 'joined', room: msg.room, name, ts: msg.ts })),
        ...msg.left.map((d): ServerMsg => ({ type: 'left', room: msg.room, ...d, ts: msg.ts })),
      ];
      return each.flatMap((m) => this.datagramsFor(m));
    }
    const ev = toEvent(msg);
    let line: string | null;
    let body = '';
    if (ev === null) line = null;
    else if (ev.type === 'error') line = ev.text;
    else {
      line = formatLine(ev);
      if (ev.type === 'message') body = ev.body;
    }
    if (line === null || line.length === 0) return [];
    if (this.cache?.line === line) {
      this.cache.msg = msg;
      return this.cache.datagrams;
    }
    // Continuation datagrams of a message repeat everything before the body: `<name>: ` or `* <name> `.
    const datagrams = body.length > 0 ? splitLine(line.slice(0, line.length - body.length), body) : splitLine('', line);
    if (datagrams.length > 1) this.stats.linesSplit++;
    this.cache = { msg, line, datagrams };
    return datagrams;
  }

  private push(to: Address, data: Uint8Array): void {
    this.stats.datagramsOut++;
    this.stats.bytesOut += data.length;
    if (this.sink !== null && !this.holding) this.sink(to, data);
    else this.out.push({ to, data });
  }

  /** With a sink, what was held during a registration goes to it now. */
  private release(): void {
    if (this.sink === null || this.holding) return;
    for (let t = this.pollTransmit(); t !== null; t = this.pollTransmit()) this.sink(t.to, t.data);
  }

  /**
   * Hands every datagram to sink as it is produced instead of queueing it for pollTransmit (the shell's
   * fast path: no Transmit per delivery). A fan-out hands the same Uint8Array for every member, and the
   * gateway never writes into one it has handed out, so the sink may send it once to many. What is
   * queued goes to sink first. With groupSink, a room's line goes to all its legacy members in one call.
   */
  setTransmitSink(sink: (to: Address, data: Uint8Array) => void, groupSink?: GroupSink): void {
    this.sink = sink;
    this.groupSink = groupSink ?? null;
    this.release();
  }

  private unqueue(mark: number): void {
    for (let i = Math.max(mark, this.outHead); i < this.out.length; i++) {
      this.stats.datagramsOut--;
      this.stats.bytesOut -= this.out[i]!.data.length;
    }
    this.out.length = Math.max(mark, this.outHead);
  }

  pollTransmit(): Transmit | null {
    if (this.outHead >= this.out.length) {
      this.out = [];
      this.outHead = 0;
      return null;
    }
    return this.out[this.outHead++]!;
  }

  /** When handleTimeout next has something to do (the same clock as handleDatagram's now). */
  nextDeadline(): number | null {
    const first = this.byAddr.values().next();
    return first.done ? null : first.value.lastHeard + this.idleMs;
  }

  /** Disconnects every client silent for idleMs; the room sees `X has left the chat (timed out)`. */
  handleTimeout(now: number): void {
    // Each pass removes one client, so the loop is bounded by the table size.
    for (let n = this.byAddr.size; n > 0; n--) {
      const first = this.byAddr.values().next();
      if (first.done || first.value.lastHeard + this.idleMs > now) break;
      const c = first.value;
      this.forget(c);
      this.stats.expired++;
      this.chat.disconnect(c.sid, LeaveReason.TimedOut, '', this.chatTime(now));
    }
  }

  private leaveGroups(sid: number): void {
    for (const [key, g] of this.groups) if (g.remove(sid) && g.size === 0) this.groups.delete(key);
  }

  private forget(c: Client): void {
    this.byAddr.delete(c.key);
    this.bySid.delete(c.sid);
    this.leaveGroups(c.sid); // the hub's leave follows (chat.disconnect): nothing more goes to this address
    const n = (this.ipCount.get(c.addr.address) ?? 1) - 1;
    if (n <= 0) this.ipCount.delete(c.addr.address);
    else this.ipCount.set(c.addr.address, n);
  }
}

/** Refills and takes one token; false when the bucket is empty. */
function take(b: Bucket, now: number, rate: number, burst: number): boolean {
  b.tokens = Math.min(burst, b.tokens + (Math.max(0, now - b.at) / 1000) * rate);
  b.at = now;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

/** Some original clients end what they send with a newline: it terminates the line, it is not content. */
function stripNewline(s: string): string {
  if (s.endsWith('\r\n')) return s.slice(0, -2);
  if (s.endsWith('\n')) return s.slice(0, -1);
  return s;
}

function toEvent(m: ServerMsg): ChatEvent | null {
  switch (m.type) {
    case 'joined':
      return { type: 'joined', room: m.room, name: m.name, ts: m.ts };
    case 'left':
      return { type: 'left', room: m.room, name: m.name, why: WHY[m.why], reason: m.reason, ts: m.ts };
    case 'message':
      // The original protocol has no history: a legacy client sees only what happens while it is there.
      if (m.history) return null;
      return { type: 'message', room: m.room, id: m.id, ts: m.ts, from: m.from, body: m.body, action: m.action, history: false, own: m.ref !== null };
    case 'nick':
      return m.room === '' ? null : { type: 'nick', room: m.room, old: m.old, name: m.name, ts: m.ts };
    case 'error':
      return { type: 'error', code: m.code, text: m.text, ref: m.ref };
    case 'welcome':
    case 'rejected':
    case 'private':
    case 'ok':
    case 'members':
    case 'rooms':
    case 'topic':
    case 'away':
    case 'caughtup':
    case 'presence': // expanded by datagramsFor
      return null; // the original protocol has none of these
  }
}

const graphemes: Intl.Segmenter | null = typeof Intl.Segmenter === 'function' ? new Intl.Segmenter(undefined, { granularity: 'grapheme' }) : null;

/** UTF-8 length of a code point (a lone surrogate encodes as U+FFFD, 3 bytes, as TextEncoder does). */
function cpBytes(cp: number): number {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

function strBytes(s: string): number {
  let n = 0;
  for (const ch of s) n += cpBytes(ch.codePointAt(0)!);
  return n;
}

/** Pieces of `s` that are never split: grapheme clusters, or code points within an oversized cluster. */
function* units(s: string, budget: number): Generator<{ text: string; bytes: number; space: boolean }> {
  const segs: Iterable<string> = graphemes ? (function* () {
    for (const g of graphemes.segment(s)) yield g.segment;
  })() : s;
  for (const seg of segs) {
    const bytes = strBytes(seg);
    if (bytes <= budget) yield { text: seg, bytes, space: /^\s+$/u.test(seg) };
    else for (const ch of seg) yield { text: ch, bytes: cpBytes(ch.codePointAt(0)!), space: false };
  }
}

/**
 * Encodes `head + body` as datagrams of at most `max` bytes. A line too long for one is cut on
 * character boundaries (grapheme clusters when possible, preferring just after a space in the last
 * half), and every piece starts with `head`, so `<name>: ` heads every datagram and the bodies
 * concatenate back to the original text exactly.
 */
export function splitLine(head: string, body: string, max = LEGACY_DATAGRAM_MAX): Uint8Array[] {
  const whole = utf8Bytes(head + body);
  if (whole.length <= max) return [whole];
  // A head that leaves no room (cannot happen with NAME_MAX_CHARS) is dropped rather than looping.
  if (strBytes(head) > max / 2) {
    head = '';
  }
  const budget = max - strBytes(head);
  const pieces: string[] = [];
  let cur: string[] = [];
  let curBytes = 0;
  // Index in `cur` just after the last whitespace unit, and the byte count up to it.
  let spaceAt = -1;
  let spaceBytes = 0;
  for (const u of units(body, budget)) {
    // At most two passes: a break after a space keeps no space, so a second one empties `cur`.
    while (curBytes + u.bytes > budget && cur.length > 0) {
      if (spaceAt > 0 && spaceBytes >= budget / 2) {
        pieces.push(cur.slice(0, spaceAt).join(''));
        cur = cur.slice(spaceAt);
        curBytes -= spaceBytes;
      } else {
        pieces.push(cur.join(''));
        cur = [];
        curBytes = 0;
      }
      spaceAt = -1;
      spaceBytes = 0;
    }
    cur.push(u.text);
    curBytes += u.bytes;
    if (u.space) {
      spaceAt = cur.length;
      spaceBytes = curBytes;
    }
  }
  if (cur.length > 0) pieces.push(cur.join(''));
  return pieces.map((p) => utf8Bytes(head + p));
}
