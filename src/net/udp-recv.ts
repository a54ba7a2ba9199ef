// Batched UDP receives: the server reads its socket with recvmmsg(2) through the native addon
// (native/udp_batch.c), many datagrams per system call and one call into JavaScript per batch, instead of
// dgram's recvmsg, 64 KiB allocation, address string and callback per datagram. Without the addon (or
// OBROL_NO_RECVMMSG=1) it listens to dgram's 'message' events: same datagrams, more CPU.
//
// The contract that makes this cheap: the bytes handed to onDatagram are a view into memory that the
// next batch overwrites, so a handler copies whatever it keeps beyond the call (the session layer
// decrypts into fresh memory and copies what it keeps of a handshake). `scrub` fills each batch's memory
// after use, so a test catches any handler that keeps a view.

import type dgram from 'node:dgram';
import { RECV_ADDRESS_CACHE_MAX, RECV_BATCH_SLOTS, RECV_SLOT_BYTES } from '../limits.js';
import type { Address } from '../session/address.js';
import { loadUdpBatchAddon, socketFd, stateAccessor, udpBatchAddonError, type RecvWatcher, type UdpBatchAddon } from './udp-batch.js';

export interface UdpReceiverOptions {
  /** false: always dgram's events. Default: the addon if it loads, unless OBROL_NO_RECVMMSG=1. */
  native?: boolean;
  /** Datagrams per recvmmsg call (default RECV_BATCH_SLOTS). */
  slots?: number;
  /** Overwrite each batch's memory after the handlers ran (tests: a handler that keeps a view breaks). */
  scrub?: boolean;
}

export interface UdpReceiverStats {
  /** Batches read by the addon (each one call into JavaScript). */
  batches: number;
  datagrams: number;
  /** Datagrams longer than a slot: dropped (a slot holds the largest UDP payload, so never expected). */
  truncated: number;
  /** Reads that failed (errno in lastErrno); the socket keeps being read. */
  errors: number;
  lastErrno: number;
  /** Exceptions out of the handlers: counted, and the rest of the batch still handled. */
  handlerErrors: number;
}

export type DatagramHandler = (data: Uint8Array, from: Address) => void;

export class UdpBatchReceiver {
  /** Whether datagrams come from the addon's recvmmsg. */
  readonly native: boolean;
  /** Why native is false, or null. */
  readonly fallbackReason: string | null;
  readonly stats: UdpReceiverStats = { batches: 0, datagrams: 0, truncated: 0, errors: 0, lastErrno: 0, handlerErrors: 0 };

  private readonly socket: dgram.Socket;
  private readonly onDatagram: DatagramHandler;
  private readonly onBatchEnd: () => void;
  private readonly scrub: boolean;
  private addon: UdpBatchAddon | null = null;
  private watcher: RecvWatcher | null = null;
  private data = new Uint8Array(0);
  private meta = new Uint32Array(0);
  private names = new Uint8Array(0);
  private metaStride = 0;
  private nameStride = 0;
  /** Sources as Address objects, one per IPv4 address and port (key ip * 65536 + port), so that the
   * session layer's maps see the same string each time; emptied when full (spoofed sources). */
  private readonly v4 = new Map<number, Address>();
  private readonly v6 = new Map<string, Address>();
  private readonly onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    this.onDatagram(new Uint8Array(msg.buffer, msg.byteOffset, msg.length), { address: rinfo.address, port: rinfo.port });
  };

  /**
   * Starts reading socket, which must be bound. onDatagram runs for each datagram, and onBatchEnd after each
   * batch the addon read (never without it: dgram's events have no batches; check `native`). With the
   * addon, an exception out of either is counted (stats.handlerErrors) and the batch goes on; without it,
   * it goes where dgram's would, to 'uncaughtException'.
   */
  constructor(socket: dgram.Socket, onDatagram: DatagramHandler, onBatchEnd: () => void, opts: UdpReceiverOptions = {}) {
    this.socket = socket;
    this.onDatagram = onDatagram;
    this.onBatchEnd = onBatchEnd;
    this.scrub = opts.scrub ?? false;
    const wanted = opts.native ?? process.env.OBROL_NO_RECVMMSG !== '1';
    let reason: string | null = null;
    if (!wanted) reason = opts.native === false ? 'disabled by the caller' : 'disabled by OBROL_NO_RECVMMSG=1';
    else reason = this.startNative(opts.slots ?? RECV_BATCH_SLOTS);
    this.fallbackReason = reason;
    this.native = reason === null;
    if (!this.native) socket.on('message', this.onMessage);
    // The addon reads a dup of the fd: it must stop with the socket, or the port would stay bound.
    else socket.once('close', () => this.close());
  }

  /** Stops reading (the socket itself stays open). */
  close(): void {
    if (this.watcher !== null && this.addon !== null) this.addon.recvClose(this.watcher);
    this.watcher = null;
    this.socket.off('message', this.onMessage);
  }

  /** Takes the socket's reading over from dgram; null when it did, else why not. */
  private startNative(slots: number): string | null {
    const addon = loadUdpBatchAddon();
    if (addon === null) return udpBatchAddonError() ?? 'the addon is not available';
    if (typeof addon.recvWatch !== 'function') return 'the addon has no recvWatch';
    const state = stateAccessor(this.socket)?.();
    const handle = state?.handle;
    const fd = socketFd(this.socket);
    if (!handle || fd < 0) return 'the socket is not bound, or its fd is not readable here';
    const stop = handle.recvStop;
    if (typeof stop !== 'function') return "this Node's dgram handle has no recvStop";
    this.metaStride = addon.recvMeta;
    this.nameStride = addon.recvName;
    this.data = new Uint8Array(slots * RECV_SLOT_BYTES);
    this.meta = new Uint32Array(slots * this.metaStride);
    this.names = new Uint8Array(slots * this.nameStride);
    let watcher: RecvWatcher;
    try {
      watcher = addon.recvWatch(fd, this.data, this.meta, this.names, RECV_SLOT_BYTES, (count, errno) => this.onBatch(count, errno));
    } catch (e) {
      return `recvWatch failed: ${e instanceof Error ? e.message : String(e)}`;
    }
    // From here the addon reads; dgram must not, or the two would split the datagrams between them.
    try {
      (stop as (this: unknown) => unknown).call(handle);
    } catch (e) {
      addon.recvClose(watcher);
      return `recvStop failed: ${e instanceof Error ? e.message : String(e)}`;
    }
    this.addon = addon;
    this.watcher = watcher;
    return null;
  }

  private onBatch(count: number, errno: number): void {
    if (count <= 0) {
      this.stats.errors++;
      this.stats.lastErrno = errno;
      return;
    }
    this.stats.batches++;
    const meta = this.meta;
    const ms = this.metaStride;
    for (let i = 0; i < count; i++) {
      const m = i * ms;
      const len = meta[m] ?? 0;
      if ((meta[m + 1] ?? 0) !== 0) {
        this.stats.truncated++;
        continue;
      }
      const from = this.source(meta[m + 2] ?? 0, meta[m + 3] ?? 0, meta[m + 4] ?? 0, i, meta[m + 5] ?? 0);
      if (from === null) continue;
      this.stats.datagrams++;
      const off = i * RECV_SLOT_BYTES;
      try {
        this.onDatagram(this.data.subarray(off, off + len), from);
      } catch {
        this.stats.handlerErrors++;
      }
    }
    if (this.scrub) for (let i = 0; i < count; i++) this.data.fill(0xa5, i * RECV_SLOT_BYTES, i * RECV_SLOT_BYTES + (meta[i * ms] ?? 0));
    try {
      this.onBatchEnd();
    } catch {
      this.stats.handlerErrors++;
    }
  }

  private source(family: number, port: number, ip: number, slot: number, nameLen: number): Address | null {
    if (family === 4) {
      const key = ip * 65536 + port;
      let a = this.v4.get(key);
      if (a === undefined) {
        if (this.v4.size >= RECV_ADDRESS_CACHE_MAX) this.v4.clear();
        a = { address: `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`, port };
        this.v4.set(key, a);
      }
      return a;
    }
    if (family === 6 && nameLen > 0) {
      const off = slot * this.nameStride;
      const text = String.fromCharCode(...this.names.subarray(off, off + nameLen));
      const key = `${text}|${port}`;
      let a = this.v6.get(key);
      if (a === undefined) {
        if (this.v6.size >= RECV_ADDRESS_CACHE_MAX) this.v6.clear();
        a = { address: text, port };
        this.v6.set(key, a);
      }
      return a;
    }
    return null;
  }
}
