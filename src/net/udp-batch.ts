// Batched UDP sends: queue datagrams with push(), hand them to the kernel with flush() in as few
// sendmmsg(2) calls as the native addon (native/udp_batch.c, built into build/udp_batch.node by
// `npm run build`) needs, and send with dgram whatever it did not send. Without the addon (no C compiler,
// not Linux, OBROL_NO_SENDMMSG=1) every datagram goes through socket.send: same results, more CPU.
//
// The Node internals this needs (the socket's fd, its type, whether it is connected) are read here and
// nowhere else, behind typed accessors; if they are not where this Node keeps them, the fallback is used.

import type dgram from 'node:dgram';
import { isIPv4 } from 'node:net';
import { UDP_BATCH_MAX_ADDRESSES, UDP_BATCH_MAX_BYTES, UDP_BATCH_MAX_DATAGRAMS } from '../limits.js';
import { loadAddon, type AddonLoad } from '../util/native-addon.js';
import type { AddressGroup } from '../session/address.js';

/** The addon's exports (see native/udp_batch.c for the exact contract). */
export interface UdpBatchAddon {
  /** Sends datagrams [0, count) in sendmmsg chunks; returns how many from the start were sent or skipped
   * because of an error of their own. out, if given, receives [sent, skipped, last errno]. */
  sendBatch(
    fd: number,
    data: Uint8Array,
    meta: Uint32Array | Int32Array,
    count: number,
    addrs: Uint8Array,
    out?: Uint32Array | Int32Array,
  ): number;
  /** Writes the sockaddr for ip:port at addrs[index * addrStride]; false if ip is not a literal the
   * socket's family can reach (IPv4 on a udp6 socket becomes IPv4-mapped). */
  packAddress(addrs: Uint8Array, index: number, ip: string, port: number, v6socket: boolean): boolean;
  readonly addrStride: number;
  readonly chunk: number;
  readonly abi: number;
  /** Reads fd in recvmmsg batches whenever it is readable (a poll on a dup of fd; the caller stops dgram's
   * own reading). Slots of slotSize bytes in data; recvMeta uint32s per slot in meta (length, flags,
   * family, port, IPv4 address in host order, IPv6 text length); recvName bytes per slot in names (the
   * IPv6 source as text). callback(count, errno) runs once per batch; the slots are valid during it. */
  recvWatch(
    fd: number,
    data: Uint8Array,
    meta: Uint32Array,
    names: Uint8Array,
    slotSize: number,
    callback: (count: number, errno: number) => void,
  ): RecvWatcher;
  /** Stops a watcher and closes its dup; idempotent, safe inside its callback. */
  recvClose(watcher: RecvWatcher): void;
  readonly recvMeta: number;
  readonly recvName: number;
}

/** An opaque handle from recvWatch. */
export type RecvWatcher = { readonly __recvWatcher: unique symbol };

const ADDON_ABI = 2;
const ADDR_STRIDE = 28;

let addonState: AddonLoad<UdpBatchAddon> | undefined;

function isAddon(x: unknown): x is UdpBatchAddon {
  if (typeof x !== 'object' || x === null) return false;
  const a = x as Record<string, unknown>;
  return typeof a.sendBatch === 'function' && typeof a.packAddress === 'function' && a.addrStride === ADDR_STRIDE && a.abi === ADDON_ABI;
}

/** The native addon, loaded once; null (see udpBatchAddonError) when it is not available here. */
export function loadUdpBatchAddon(): UdpBatchAddon | null {
  if (addonState) return addonState.addon;
  if (process.platform !== 'linux') {
    addonState = { addon: null, error: `not on Linux (${process.platform})` };
    return null;
  }
  addonState = loadAddon('udp_batch', isAddon);
  return addonState.addon;
}

/** Why the addon is not available, or null if it is. */
export function udpBatchAddonError(): string | null {
  loadUdpBatchAddon();
  return addonState?.error ?? null;
}

// --- Node's dgram internals, typed at the boundary --------------------------------------------------

interface UdpHandle {
  fd?: unknown;
  recvStop?: unknown;
}

export interface DgramState {
  handle: UdpHandle | null;
  connectState?: unknown;
}

/** Reads the socket's internal state without the deprecated `_handle` getter (it warns, DEP0112). */
export function stateAccessor(socket: dgram.Socket): (() => DgramState | null) | null {
  const sym = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  if (sym === undefined) return null;
  const holder = socket as unknown as Record<symbol, unknown>;
  const probe = holder[sym];
  if (typeof probe !== 'object' || probe === null || !('handle' in probe)) return null;
  return () => {
    const st = holder[sym];
    return typeof st === 'object' && st !== null ? (st as DgramState) : null;
  };
}

/** The fd of a bound, open UDP socket on this platform, else -1. Reads Node internals; for tests and logs. */
export function socketFd(socket: dgram.Socket): number {
  const fd = stateAccessor(socket)?.()?.handle?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : -1;
}

function socketType(socket: dgram.Socket): 'udp4' | 'udp6' | null {
  const t = (socket as unknown as { type?: unknown }).type;
  return t === 'udp4' || t === 'udp6' ? t : null;
}

// --- the sender ---------------------------------------------------------------------------------------

export interface UdpBatchOptions {
  /** false: always send with dgram. Default: the addon if it loads, unless OBROL_NO_SENDMMSG=1. */
  native?: boolean;
  /** push() flushes first when this many datagrams are queued (default UDP_BATCH_MAX_DATAGRAMS). */
  maxBatch?: number;
  /** push() flushes first when the queued datagrams would exceed this many bytes (default UDP_BATCH_MAX_BYTES). */
  maxBatchBytes?: number;
  /** Packed destination addresses kept between flushes; past it the cache is emptied (default UDP_BATCH_MAX_ADDRESSES). */
  maxAddresses?: number;
  /** For tests: an addon to use instead of build/udp_batch.node. */
  addon?: UdpBatchAddon;
}

export interface UdpBatchStats {
  /** Datagrams accepted by push(). */
  pushed: number;
  /** flush() calls that had something to send (including those push() made). */
  flushes: number;
  /** Flushes push() made because a batch was full. */
  autoFlushes: number;
  /** Calls into the addon. */
  nativeCalls: number;
  /** Datagrams the kernel accepted from the addon. */
  nativeSent: number;
  /** Datagrams the addon skipped because of an error of their own (EMSGSIZE, EHOSTUNREACH, ...). */
  nativeSkipped: number;
  /** Calls into the addon that threw (a bug: the whole batch went to dgram). */
  nativeThrew: number;
  /** The last errno the addon saw (0: none). */
  lastErrno: number;
  /** Datagrams handed to socket.send. */
  fallbackSent: number;
  /** socket.send calls that failed (in their callback, or by throwing). */
  fallbackErrors: number;
}

interface Dest {
  port: number;
  /** For socket.send: an IPv4 literal on a udp6 socket is sent to its IPv4-mapped form, as the addon does. */
  sendAddress: string;
  /** Packed into addrs at this entry's index. */
  packed: boolean;
}


/** A copy of data, from Buffer's pool when small (much cheaper than a new ArrayBuffer per datagram). */
function copyOf(data: Uint8Array): Uint8Array {
  const b = Buffer.allocUnsafe(data.length);
  b.set(data);
  return b;
}

/** Throws as socket.send does on a bad port, and on an empty address. */
function checkDestination(port: number, address: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`port must be an integer in [1, 65535], not ${port}`);
  if (typeof address !== 'string' || address === '') throw new TypeError('address must be a non-empty string');
}

function positiveInt(v: number | undefined, dflt: number, what: string): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${what} must be a positive integer`);
  return v;
}

export class UdpBatchSender {
  /** Whether flush() uses the addon (it still sends with dgram what the addon could not). */
  readonly native: boolean;
  /** Why native is false, or null. */
  readonly fallbackReason: string | null;
  readonly stats: UdpBatchStats = {
    pushed: 0,
    flushes: 0,
    autoFlushes: 0,
    nativeCalls: 0,
    nativeSent: 0,
    nativeSkipped: 0,
    nativeThrew: 0,
    lastErrno: 0,
    fallbackSent: 0,
    fallbackErrors: 0,
  };

  private readonly socket: dgram.Socket;
  private readonly addon: UdpBatchAddon | null;
  private readonly state: (() => DgramState | null) | null;
  private readonly v6: boolean;
  private readonly maxBatch: number;
  private readonly maxBatchBytes: number;
  private readonly maxAddresses: number;

  // The queue: datagrams back to back in arena, (offset, length, destination index) in meta.
  private arena = new Uint8Array(64 * 1024);
  private used = 0;
  private meta = new Uint32Array(3 * 256);
  private count = 0;
  // Destinations: "address|port" -> index into dests and addrs (addrs: ADDR_STRIDE bytes each).
  private readonly destIndex = new Map<string, Map<number, number>>();
  private destCount = 0;
  private dests: Dest[] = [];
  /** Bumped when the address table starts over: a group's cached indexes (AddressGroup.dest) are then stale. */
  private destEpoch = 0;
  private addrs = new Uint8Array(ADDR_STRIDE * 256);
  private readonly out = new Uint32Array(3);
  // Datagrams dgram sends, each a copy: all of them without the addon, else those whose destination
  // the addon could not pack. Copies come from Buffer's pool: dgram may hold them until they leave.
  private dgData: Uint8Array[] = [];
  private dgPort: number[] = [];
  private dgAddress: string[] = [];
  private dgramBytes = 0;
  // The datagram reserve() made room for: its destination (index, or -1 without the addon) and the most
  // commit() may take (-1: nothing reserved).
  private resDest = -1;
  private resPort = 0;
  private resAddress = '';
  private resMax = -1;
  // pushShared: the data object last pushed through it and where its copy is in the arena (-1: none, or
  // it went to dgram); lastNativeAt is where commit() put the last datagram it queued for the addon.
  private sharedData: Uint8Array | null = null;
  private sharedAt = -1;
  private lastNativeAt = -1;

  private sending = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly onSent = (err: Error | null): void => {
    this.sending--;
    if (err) this.stats.fallbackErrors++;
    if (this.sending === 0 && this.idleWaiters.length > 0) for (const w of this.idleWaiters.splice(0)) w();
  };

  constructor(socket: dgram.Socket, opts: UdpBatchOptions = {}) {
    this.socket = socket;
    this.maxBatch = positiveInt(opts.maxBatch, UDP_BATCH_MAX_DATAGRAMS, 'maxBatch');
    this.maxBatchBytes = positiveInt(opts.maxBatchBytes, UDP_BATCH_MAX_BYTES, 'maxBatchBytes');
    this.maxAddresses = positiveInt(opts.maxAddresses, UDP_BATCH_MAX_ADDRESSES, 'maxAddresses');
    const type = socketType(socket);
    this.v6 = type === 'udp6';
    const wanted = opts.native ?? process.env.OBROL_NO_SENDMMSG !== '1';
    let reason: string | null = null;
    let addon: UdpBatchAddon | null = null;
    let state: (() => DgramState | null) | null = null;
    if (!wanted) reason = opts.native === false ? 'disabled by the caller' : 'disabled by OBROL_NO_SENDMMSG=1';
    else if ((addon = opts.addon ?? loadUdpBatchAddon()) === null) reason = udpBatchAddonError() ?? 'the addon is not available';
    else if (type === null) reason = 'the socket type is not known';
    else if ((state = stateAccessor(socket)) === null) reason = "this Node's dgram internals are not the expected ones";
    this.fallbackReason = reason;
    this.native = reason === null;
    this.addon = this.native ? addon : null;
    this.state = this.native ? state : null;
  }

  /** Datagrams queued and not yet flushed. */
  get pending(): number {
    return this.count + this.dgData.length;
  }

  /** Datagrams handed to socket.send whose callback has not run yet. */
  get inFlight(): number {
    return this.sending;
  }

  /** Queues a copy of data for address:port (an IP literal; a host name is resolved by dgram). The caller may
   * reuse data at once. Throws as socket.send does on a bad port. */
  push(data: Uint8Array, port: number, address: string): void {
    if (!(data instanceof Uint8Array)) throw new TypeError('data must be a Uint8Array');
    const at = this.reserve(port, address, data.length);
    this.arena.set(data, at);
    this.commit(data.length);
  }

  /**
   * push() for a datagram that goes to many: the same data object pushed again (to any destination) before
   * the next flush is queued as another reference to the copy already in the batch, not copied again.
   * The caller promises not to change data until the flush: a legacy room's line to every member.
   */
  pushShared(data: Uint8Array, port: number, address: string): void {
    if (data === this.sharedData && this.sharedAt >= 0 && this.pending < this.maxBatch) {
      checkDestination(port, address);
      const di = this.dest(address, port);
      if (this.dests[di]?.packed === true) {
        this.queueNative(this.sharedAt, data.length, di);
        this.stats.pushed++;
        return;
      }
    }
    this.push(data, port, address);
    this.sharedData = data;
    this.sharedAt = this.lastNativeAt;
  }

  /**
   * push() of one datagram to every member of a group but those keyed in `except`: one copy of data per
   * batch, and per member a queue entry written from the group's cached address index, no lookup and no
   * call. The caller may reuse data at once. Queued after everything pushed before, as push() would.
   * Returns how many datagrams it queued.
   */
  pushGroup(data: Uint8Array, group: AddressGroup, except: readonly number[] = []): number {
    if (!(data instanceof Uint8Array)) throw new TypeError('data must be a Uint8Array');
    const n = group.size;
    const skipA = except.length > 0 ? group.indexOf(except[0]!) : -1;
    const skipB = except.length > 1 ? group.indexOf(except[1]!) : -1;
    for (let k = 2; k < except.length; k++) if (group.indexOf(except[k]!) >= 0) throw new RangeError('pushGroup takes at most two members to skip');
    const queued = n - (skipA >= 0 ? 1 : 0) - (skipB >= 0 && skipB !== skipA ? 1 : 0);
    if (this.addon === null) {
      for (let i = 0; i < n; i++) {
        if (i === skipA || i === skipB) continue;
        const a = group.addressOf(i);
        this.push(data, a.port, a.address);
      }
      return queued;
    }
    const length = data.length;
    let at = -1; // where this batch's copy of data is, once made
    for (let i = 0; i < n; i++) {
      if (i === skipA || i === skipB) continue;
      if (at < 0 || this.pending >= this.maxBatch) {
        // Full, or the first member: flush if needed (the copy does not survive a flush), copy once.
        this.makeRoom(length);
        at = this.used;
        this.arena.set(data, at);
        this.used += length;
        this.resMax = -1;
        this.lastNativeAt = -1;
        // The address table starts over only in a flush, and makeRoom is where this loop can flush.
        if (group.destEpoch !== this.destEpoch) {
          group.dest.fill(-1);
          group.destEpoch = this.destEpoch;
        }
      }
      let di = group.dest[i]!;
      if (di < 0) {
        const a = group.addressOf(i);
        checkDestination(a.port, a.address);
        di = group.dest[i] = this.dest(a.address, a.port);
      }
      this.stats.pushed++;
      const dest = this.dests[di]!;
      if (dest.packed) this.queueNative(at, length, di);
      else this.queueDgram(copyOf(data), dest.port, dest.sendAddress);
    }
    return queued;
  }

  /**
   * Room in `bytes` for one datagram of at most maxBytes to address:port, at the offset returned: write it
   * there, then commit() its length. Flushes first when the batch is full. Read `bytes` after the call
   * (it may be new memory). Throws as push() does on a bad port or address.
   */
  reserve(port: number, address: string, maxBytes: number): number {
    checkDestination(port, address);
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new RangeError('maxBytes must be a non-negative integer');
    this.makeRoom(maxBytes);
    this.resDest = this.addon !== null ? this.dest(address, port) : -1;
    this.resPort = port;
    this.resAddress = address;
    this.resMax = maxBytes;
    return this.used;
  }

  /** Flushes when the batch is full or maxBytes more would overflow it, and grows the arena to hold them. */
  private makeRoom(maxBytes: number): void {
    if (this.pending > 0 && (this.pending >= this.maxBatch || this.used + this.dgramBytes + maxBytes > this.maxBatchBytes)) {
      this.stats.autoFlushes++;
      this.flush();
    }
    if (this.used + maxBytes > this.arena.length) {
      const grown = new Uint8Array(Math.max(this.arena.length * 2, this.used + maxBytes));
      grown.set(this.arena.subarray(0, this.used));
      this.arena = grown;
    }
  }

  /** The memory reserve() hands out. */
  get bytes(): Uint8Array {
    return this.arena;
  }

  /** Queues the datagram written at the offset the last reserve() returned: its first `length` bytes. */
  commit(length: number): void {
    if (this.resMax < 0) throw new Error('commit() without reserve()');
    if (!Number.isSafeInteger(length) || length < 0 || length > this.resMax) throw new RangeError(`length must be an integer in [0, ${this.resMax}]`);
    this.resMax = -1;
    this.stats.pushed++;
    this.lastNativeAt = -1;
    const di = this.resDest;
    const dest = di >= 0 ? this.dests[di] : undefined;
    if (dest === undefined || !dest.packed) {
      // No addon, or an address it cannot take (a host name, an IPv6 literal on a udp4 socket): dgram sends
      // a copy, and the arena space is given back.
      this.queueDgram(copyOf(this.arena.subarray(this.used, this.used + length)), this.resPort, dest?.sendAddress ?? this.sendAddress(this.resAddress));
      return;
    }
    this.lastNativeAt = this.used;
    this.queueNative(this.used, length, di);
    this.used += length;
  }

  /** A datagram for dgram to send at the flush: a copy of its own, which dgram may hold until it leaves. */
  private queueDgram(copy: Uint8Array, port: number, address: string): void {
    this.dgData.push(copy);
    this.dgPort.push(port);
    this.dgAddress.push(address);
    this.dgramBytes += copy.length;
  }

  /** A meta entry: `length` bytes at `at` in the arena, to destination di. */
  private queueNative(at: number, length: number, di: number): void {
    if (3 * (this.count + 1) > this.meta.length) {
      const grown = new Uint32Array(this.meta.length * 2);
      grown.set(this.meta);
      this.meta = grown;
    }
    const m = 3 * this.count;
    this.meta[m] = at;
    this.meta[m + 1] = length;
    this.meta[m + 2] = di;
    this.count++;
  }

  /** Sends everything queued: one call into the addon, then socket.send for what it did not send. */
  flush(): void {
    const count = this.count;
    const qData = this.dgData;
    const qPort = this.dgPort;
    const qAddress = this.dgAddress;
    this.resMax = -1; // a reservation does not survive a flush: its memory is reused
    this.sharedData = null;
    this.sharedAt = -1;
    if (count === 0 && qData.length === 0) return;
    this.stats.flushes++;
    let done = 0;
    const fd = count > 0 ? this.nativeFd() : -1;
    if (fd >= 0 && this.addon) {
      this.stats.nativeCalls++;
      try {
        this.out.fill(0);
        done = this.addon.sendBatch(fd, this.arena, this.meta, count, this.addrs, this.out);
        if (!(done >= 0 && done <= count)) done = 0;
        this.stats.nativeSent += this.out[0] ?? 0;
        this.stats.nativeSkipped += this.out[1] ?? 0;
        if ((this.out[2] ?? 0) !== 0) this.stats.lastErrno = this.out[2] ?? 0;
      } catch {
        this.stats.nativeThrew++;
        done = 0;
      }
    }
    // The queue is emptied before socket.send runs: if it throws (a closed socket), nothing stays queued.
    const arena = this.arena;
    const meta = this.meta;
    const dests = this.dests;
    this.count = 0;
    this.used = 0;
    if (qData.length > 0) {
      this.dgData = [];
      this.dgPort = [];
      this.dgAddress = [];
      this.dgramBytes = 0;
    }
    const total = count - done + qData.length;
    let handed = 0;
    try {
      for (let i = done; i < count; i++) {
        const m = 3 * i;
        const off = meta[m] ?? 0;
        const dest = dests[meta[m + 2] ?? 0];
        // A copy: dgram may keep the buffer until the datagram leaves, and the arena is reused.
        if (dest !== undefined) this.fallback(copyOf(arena.subarray(off, off + (meta[m + 1] ?? 0))), dest.port, dest.sendAddress);
        handed++;
      }
      for (let i = 0; i < qData.length; i++) {
        this.fallback(qData[i] as Uint8Array, qPort[i] ?? 0, qAddress[i] ?? '');
        handed++;
      }
    } catch (e) {
      // socket.send threw (the socket is closed, or connected): the rest of the batch is dropped, as
      // each of its sends would have thrown too.
      this.stats.fallbackErrors += total - handed;
      throw e;
    } finally {
      if (this.destCount > this.maxAddresses) {
        this.destIndex.clear();
        this.destCount = 0;
        this.dests = [];
        this.destEpoch++;
      }
    }
  }

  /** Resolves when every datagram handed to socket.send has left (or failed). */
  idle(): Promise<void> {
    if (this.sending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** The socket's fd when the addon may send on it now, else -1: not bound, closed, connected (dgram then
   * refuses an address), or dgram still has sends queued (the addon would overtake them). */
  private nativeFd(): number {
    if (!this.state) return -1;
    const st = this.state();
    const handle = st?.handle;
    if (!st || !handle || st.connectState !== 0) return -1;
    const fd = handle.fd;
    if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) return -1;
    if (this.socket.getSendQueueCount() !== 0) return -1;
    return fd;
  }

  private fallback(data: Uint8Array, port: number, address: string): void {
    this.sending++;
    try {
      this.socket.send(data, port, address, this.onSent);
    } catch (e) {
      this.sending--;
      throw e;
    }
    this.stats.fallbackSent++;
  }

  /** For socket.send: an IPv4 literal on a udp6 socket goes to its IPv4-mapped form, as the addon sends it. */
  private sendAddress(address: string): string {
    return this.v6 && isIPv4(address) ? `::ffff:${address}` : address;
  }

  private dest(address: string, port: number): number {
    // Keyed by the address string, then the port: callers pass the same string object for a peer each
    // time, whose hash V8 keeps, where a fresh "address|port" key would be built and hashed per datagram.
    let byPort = this.destIndex.get(address);
    if (byPort === undefined) this.destIndex.set(address, (byPort = new Map()));
    const known = byPort.get(port);
    if (known !== undefined) return known;
    const index = this.dests.length;
    if (ADDR_STRIDE * (index + 1) > this.addrs.length) {
      const grown = new Uint8Array(this.addrs.length * 2);
      grown.set(this.addrs);
      this.addrs = grown;
    }
    const packed = this.addon !== null && this.addon.packAddress(this.addrs, index, address, port, this.v6);
    this.dests.push({ port, sendAddress: this.sendAddress(address), packed });
    byPort.set(port, index);
    this.destCount++;
    return index;
  }
}
