// The client side of obrol's session layer, sans-I/O: one connection attempt to one server.
// HELLO (padded) -> COOKIE -> HELLO with cookie -> HS_REPLY -> HS_FINISH -> DATA. Reconnecting is the
// client library's job: it makes a new ClientEndpoint and carries unacknowledged messages over.

import {
  CONNECT_TIMEOUT_MS,
  DEFAULT_MTU,
  IDLE_TIMEOUT_MS,
  KEEPALIVE_MS,
  keepalivePingMs,
  RECV_BUFFER_MAX_BYTES,
  SEND_BUFFER_MAX_BYTES,
} from '../limits.js';
import { NoiseError, NoiseHandshake, type KeyPair } from '../crypto/noise.js';
import {
  AEAD_TAG_LEN,
  CID_LEN,
  DATA_HEADER_LEN,
  dataKeyPhase,
  dataPn,
  decodePacket,
  encodeHello,
  encodeHsFinish,
  encodeNatKeepalive,
  isDataPacket,
  ResetCode,
} from '../wire/packet.js';
import { CLIENT_ACK_DELAYS, Connection } from './connection.js';
import { SecureChannel } from './channel.js';
import { NOISE_PROLOGUE } from './handshake.js';
import { bytesEqual as eq } from '../util/bytes.js';

/** First handshake retransmission delay; doubles per retry up to the cap. */
const HANDSHAKE_RTO_MS = 250;
const HANDSHAKE_RTO_MAX_MS = 2_000;

export type CloseKind =
  | 'unreachable' // no answer within the connect timeout
  | 'server-key' // the server's key was refused (pinning)
  | 'reset' // the server does not know this session (it restarted)
  | 'busy' // the server refused a new session
  | 'version' // the server does not speak our version
  | 'peer' // the server closed the session
  | 'timeout' // nothing heard for the idle timeout
  | 'local'; // we closed it

export type ClientEvent =
  | { type: 'open'; serverKey: Uint8Array }
  | { type: 'message'; stream: number; data: Uint8Array }
  | { type: 'delivered'; stream: number; seq: number }
  | { type: 'closed'; kind: CloseKind; code: number; reason: string };

export type ServerKeyVerdict = { ok: true } | { ok: false; reason: string };

export interface ClientEndpointOptions {
  staticKey: KeyPair;
  random: (n: number) => Uint8Array;
  now: number;
  /** The ClientHello, sent encrypted in HS_FINISH. */
  hello: Uint8Array;
  /** Called with the server's static key once the handshake proves the server holds it. */
  verifyServerKey: (key: Uint8Array) => ServerKeyVerdict;
  mtu?: number;
  connectTimeoutMs?: number;
  keepaliveMs?: number;
  idleTimeoutMs?: number;
}

type State =
  | { name: 'hello'; cookie: Uint8Array }
  | { name: 'finish'; finish: Uint8Array; conn: Connection; channel: SecureChannel; serverKey: Uint8Array }
  | { name: 'open'; conn: Connection; channel: SecureChannel }
  | { name: 'closed' };

export class ClientEndpoint {
  readonly cid: Uint8Array;
  private state: State;
  private readonly hs: NoiseHandshake;
  private readonly noise1: Uint8Array;
  private readonly out: Uint8Array[] = [];
  private readonly events: ClientEvent[] = [];
  private rto = HANDSHAKE_RTO_MS;
  private resendAt: number;
  private readonly connectDeadline: number;
  private helloSentAt: number | null = null;
  private helloResent = false;
  readonly drops = new Map<string, number>();

  constructor(private readonly opts: ClientEndpointOptions) {
    this.cid = opts.random(CID_LEN);
    this.hs = new NoiseHandshake({ initiator: true, prologue: NOISE_PROLOGUE, staticKey: opts.staticKey });
    this.noise1 = this.hs.writeMessage(new Uint8Array(0));
    this.state = { name: 'hello', cookie: new Uint8Array(0) };
    this.connectDeadline = opts.now + (opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);
    this.resendAt = opts.now + this.rto;
    this.out.push(encodeHello(this.cid, new Uint8Array(0), this.noise1));
  }

  get phase(): 'connecting' | 'open' | 'closed' {
    return this.state.name === 'open' ? 'open' : this.state.name === 'closed' ? 'closed' : 'connecting';
  }

  get stats(): Connection['stats'] | null {
    return this.state.name === 'open' || this.state.name === 'finish' ? this.state.conn.stats : null;
  }

  private drop(reason: string): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
  }

  /** The session is over: its keys are wiped. */
  private toClosed(): void {
    const st = this.state;
    if (st.name === 'finish' || st.name === 'open') st.channel.dispose();
    this.state = { name: 'closed' };
  }

  private fail(kind: CloseKind, code: number, reason: string): void {
    this.toClosed();
    this.out.length = 0;
    this.events.push({ type: 'closed', kind, code, reason });
  }

  /**
   * One datagram from the server. A DATA packet, nearly every datagram, is read and decrypted in place:
   * datagram is the endpoint's to overwrite (a fresh dgram buffer, or the shell's receive memory), and
   * nothing here keeps a view of it past this call.
   */
  handleDatagram(now: number, datagram: Uint8Array): void {
    if (isDataPacket(datagram)) return this.onData(now, datagram);
    const d = decodePacket(datagram);
    if (!d.ok) return this.drop('malformed');
    const p = d.value;
    const st = this.state;
    switch (p.type) {
      case 'cookie':
        if (st.name !== 'hello' || !eq(p.cid, this.cid)) return this.drop('unexpected');
        st.cookie = p.cookie.slice(); // p is a view into the datagram, which the reader reuses
        this.out.push(encodeHello(this.cid, st.cookie, this.noise1));
        this.helloSentAt = now;
        this.rto = HANDSHAKE_RTO_MS;
        this.resendAt = now + this.rto;
        return;
      case 'hs-reply': {
        if (st.name !== 'hello' || !eq(p.clientCid, this.cid)) return this.drop('unexpected');
        try {
          this.hs.readMessage(p.noise);
        } catch (e) {
          if (e instanceof NoiseError) return this.drop('handshake');
          throw e;
        }
        const serverKey = this.hs.remoteStatic;
        if (serverKey === null) return this.drop('handshake');
        const verdict = this.opts.verifyServerKey(serverKey);
        if (!verdict.ok) return this.fail('server-key', 0, verdict.reason);
        const noise3 = this.hs.writeMessage(this.opts.hello);
        const keys = this.hs.split();
        const mtu = this.opts.mtu ?? DEFAULT_MTU;
        const conn = new Connection(
          {
            maxPayload: mtu - DATA_HEADER_LEN - AEAD_TAG_LEN,
            keepaliveMs: this.opts.keepaliveMs ?? KEEPALIVE_MS,
            // Every other keepalive a NAT_KEEPALIVE, which the server need not answer (pump sends it).
            keepalivePingMs: keepalivePingMs(this.opts.keepaliveMs ?? KEEPALIVE_MS, this.opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS),
            ...CLIENT_ACK_DELAYS,
            idleTimeoutMs: this.opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS,
            sendBufferMax: SEND_BUFFER_MAX_BYTES,
            recvBufferMax: RECV_BUFFER_MAX_BYTES,
          },
          now,
          // The HELLO/HS_REPLY exchange is a round trip: a better first estimate than the default.
          this.helloSentAt !== null && !this.helloResent ? now - this.helloSentAt : undefined,
        );
        const finish = encodeHsFinish(p.serverCid, noise3);
        this.state = { name: 'finish', finish, conn, channel: new SecureChannel(keys, p.serverCid.slice(), now), serverKey };
        this.out.push(finish);
        this.rto = HANDSHAKE_RTO_MS;
        this.resendAt = now + this.rto;
        return;
      }
      case 'reset': {
        // A RESET echoes the cid of the packet it answers: ours for HELLO, the server's for DATA.
        const serverCid = st.name === 'open' || st.name === 'finish' ? st.channel.peerCid : null;
        if (!eq(p.cid, this.cid) && !(serverCid && eq(p.cid, serverCid))) return this.drop('unknown-cid');
        if (p.code === ResetCode.BadVersion) return this.fail('version', 0, 'the server does not speak this protocol version');
        if (p.code === ResetCode.Busy) return this.fail('busy', 0, 'the server is at its session limit; try again later');
        if (st.name === 'open') return this.fail('reset', 0, 'the server no longer knows this session (it may have restarted)');
        return this.drop('unexpected');
      }
      default:
        return this.drop('unexpected');
    }
  }

  /** A DATA packet (isDataPacket), its fields read where they lie and its payload opened in place. */
  private onData(now: number, datagram: Uint8Array): void {
    const st = this.state;
    if (st.name !== 'finish' && st.name !== 'open') return this.drop('unexpected');
    const cid = this.cid;
    for (let i = 0; i < CID_LEN; i++) if (datagram[1 + i] !== cid[i]) return this.drop('unknown-cid');
    const pn = dataPn(datagram);
    const payload = st.channel.openInPlace(now, dataKeyPhase(datagram), pn, datagram);
    if (typeof payload === 'string') return this.drop(payload);
    if (st.name === 'finish') {
      // The server's first DATA proves it completed the handshake.
      this.state = { name: 'open', conn: st.conn, channel: st.channel };
      this.events.push({ type: 'open', serverKey: st.serverKey });
    }
    const verdict = st.conn.onPacket(now, pn, payload);
    if (verdict !== 'accepted' && verdict !== 'duplicate') this.drop(verdict);
    this.pump(now);
  }

  /** Moves the connection's output and events out; closes us when it closes. */
  private pump(now: number): void {
    const st = this.state;
    if (st.name !== 'open') return;
    for (;;) {
      const tx = st.conn.pollTransmit(now);
      if (tx === null) break;
      this.out.push(st.channel.seal(now, tx.pn, tx.payload));
    }
    if (st.conn.takeNatKeepalive(now)) this.out.push(encodeNatKeepalive());
    for (;;) {
      const ev = st.conn.pollEvent();
      if (ev === null) break;
      switch (ev.type) {
        case 'message':
          this.events.push({ type: 'message', stream: ev.stream, data: ev.data });
          break;
        case 'delivered':
          this.events.push({ type: 'delivered', stream: ev.stream, seq: ev.seq });
          break;
        case 'closed': {
          const kind: CloseKind = ev.byPeer ? 'peer' : ev.code === 1 ? 'timeout' : 'local';
          this.toClosed();
          this.events.push({ type: 'closed', kind, code: ev.code, reason: ev.reason });
          return;
        }
        case 'path-challenge':
        case 'path-response':
          break; // answered by the connection; the client never migrates the server
      }
    }
  }

  /** Queue an application message. Before the session opens it waits in the connection's buffer. */
  send(now: number, stream: number, data: Uint8Array): ReturnType<Connection['send']> {
    const st = this.state;
    if (st.name !== 'open' && st.name !== 'finish') return { ok: false, reason: 'closed' };
    const r = st.conn.send(stream, data, now);
    this.pump(now);
    return r;
  }

  close(now: number, code: number, reason: string): void {
    const st = this.state;
    if (st.name === 'open') {
      st.conn.close(code, reason, now);
      this.pump(now);
    } else if (st.name !== 'closed') {
      this.fail('local', code, reason);
    }
  }

  pollTransmit(): Uint8Array | null {
    return this.out.shift() ?? null;
  }

  pollEvent(): ClientEvent | null {
    return this.events.shift() ?? null;
  }

  nextDeadline(): number | null {
    const st = this.state;
    if (st.name === 'closed') return null;
    if (st.name === 'open') return st.conn.nextDeadline();
    return Math.min(this.resendAt, this.connectDeadline);
  }

  handleTimeout(now: number): void {
    const st = this.state;
    if (st.name === 'open') {
      st.conn.onTimeout(now);
      this.pump(now);
      return;
    }
    if (st.name === 'closed') return;
    if (now >= this.connectDeadline) {
      return this.fail('unreachable', 0, 'no answer from the server');
    }
    if (now >= this.resendAt) {
      this.helloResent = true; // an RTT measured across a retransmission would be ambiguous
      this.out.push(st.name === 'hello' ? encodeHello(this.cid, st.cookie, this.noise1) : st.finish);
      this.rto = Math.min(this.rto * 2, HANDSHAKE_RTO_MAX_MS);
      this.resendAt = now + this.rto;
    }
  }
}
