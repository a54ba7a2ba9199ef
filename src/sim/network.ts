// A deterministic simulated network with a virtual clock for sans-I/O Connections: every datagram's fate
// (loss, duplication, reordering, delay) comes from a seeded PRNG, so a failure replays from its seed.
import { Impairment, type ImpairmentOptions } from '../proxy/impairment.js';
import { Connection, type ConnectionConfig, type ConnectionEvent } from '../session/connection.js';
import { DeadlineHeap } from '../util/deadline-heap.js';

export type Link = Omit<ImpairmentOptions, 'seed'>;

interface InFlight {
  to: number;
  from: number;
  pn: number;
  payload: Uint8Array;
}

/** A node holds one Connection per peer. */
export class SimNode {
  readonly conns = new Map<number, Connection>();
  constructor(readonly id: number) {}
}

export class SimNet {
  now = 0;
  private readonly heap = new DeadlineHeap<number>();
  private readonly packets = new Map<number, InFlight>();
  private nextKey = 0;
  private readonly links = new Map<string, Impairment>();
  private readonly timers = new DeadlineHeap<[number, number]>();
  private readonly deadlines = new Map<string, number>();
  private readonly dirty = new Set<SimNode>();
  readonly nodes: SimNode[] = [];
  /** Datagrams handed to the network and the bytes they would take on the wire (13 header + 16 tag each). */
  readonly wire = { datagrams: 0, bytes: 0 };

  constructor(
    readonly seed: number,
    private readonly link: Link,
  ) {}

  addNode(): SimNode {
    const n = new SimNode(this.nodes.length);
    this.nodes.push(n);
    return n;
  }

  /** Connects a and b with a pair of Connections. */
  connect(a: SimNode, b: SimNode, cfgA: ConnectionConfig, cfgB: ConnectionConfig): void {
    a.conns.set(b.id, new Connection(cfgA, this.now));
    b.conns.set(a.id, new Connection(cfgB, this.now));
  }

  private impairment(from: number, to: number): Impairment {
    const key = `${from}>${to}`;
    let imp = this.links.get(key);
    if (!imp) this.links.set(key, (imp = new Impairment({ ...this.link, seed: (this.seed * 7919 + from * 104729 + to) >>> 0 })));
    return imp;
  }

  /** Moves every due datagram and timer up to `until`, calling onEvent for connection events. */
  run(until: number, onEvent: (node: SimNode, peer: number, ev: ConnectionEvent) => void, maxSteps = 50_000_000): void {
    // The test may have queued sends on any connection since the last run.
    for (const n of this.nodes) this.dirty.add(n);
    for (let steps = 0; steps < maxSteps; steps++) {
      this.flushDirty(onEvent);
      const nextPacket = this.heap.peekTime();
      const nextTimer = this.peekTimer();
      const next = Math.min(nextPacket ?? Infinity, nextTimer ?? Infinity);
      if (next > until) {
        this.now = until;
        return;
      }
      this.now = Math.max(this.now, next);
      if (nextPacket !== null && nextPacket <= this.now) {
        const { key } = this.heap.pop()!;
        const p = this.packets.get(key)!;
        this.packets.delete(key);
        const node = this.nodes[p.to]!;
        node.conns.get(p.from)?.onPacket(this.now, p.pn, p.payload);
        this.dirty.add(node);
      } else {
        const { key } = this.timers.pop()!;
        const [nodeId, peer] = key;
        this.deadlines.delete(`${nodeId}>${peer}`); // fired: the flush below files the next one
        const node = this.nodes[nodeId]!;
        const c = node.conns.get(peer)!;
        const d = c.nextDeadline();
        if (d !== null && d <= this.now) c.onTimeout(this.now);
        this.dirty.add(node);
      }
    }
    throw new Error(`seed ${this.seed}: simulation did not settle in ${maxSteps} steps`);
  }

  /** The earliest live connection deadline (stale heap entries are dropped on the way). */
  private peekTimer(): number | null {
    for (;;) {
      const t = this.timers.peekTime();
      if (t === null) return null;
      const [nodeId, peer] = this.timers.peekKey()!;
      if (this.deadlines.get(`${nodeId}>${peer}`) === t) return t;
      this.timers.pop();
    }
  }

  private flushDirty(onEvent: (node: SimNode, peer: number, ev: ConnectionEvent) => void): void {
    // An event handler may send on other connections of its node, dirtying it again: loop until quiet.
    for (let round = 0; this.dirty.size > 0 && round < 1000; round++) {
      const nodes = [...this.dirty];
      this.dirty.clear();
      for (const n of nodes) this.flushNode(n, onEvent);
    }
  }

  /** Sends everything a node's connections have to send, hands out their events, and files their timers. */
  private flushNode(n: SimNode, onEvent: (node: SimNode, peer: number, ev: ConnectionEvent) => void): void {
    for (const [peer, c] of n.conns) {
      for (let tx = c.pollTransmit(this.now); tx !== null; tx = c.pollTransmit(this.now)) {
        this.wire.datagrams++;
        this.wire.bytes += tx.payload.length + 13 + 16;
        const payload = tx.payload.slice(); // pollTransmit's payload is only valid until its next call
        for (const at of this.impairment(n.id, peer).decide(this.now)) {
          const key = this.nextKey++;
          this.packets.set(key, { to: peer, from: n.id, pn: tx.pn, payload });
          this.heap.push(at, key);
        }
      }
      // A NAT_KEEPALIVE is one unencrypted byte that the peer discards: it costs the wire, nothing else.
      if (c.takeNatKeepalive(this.now)) {
        this.wire.datagrams++;
        this.wire.bytes += 1;
      }
      for (let ev = c.pollEvent(); ev !== null; ev = c.pollEvent()) {
        onEvent(n, peer, ev);
        this.dirty.add(n);
      }
      const d = c.nextDeadline();
      const k = `${n.id}>${peer}`;
      if (d !== this.deadlines.get(k)) {
        if (d === null) this.deadlines.delete(k);
        else {
          this.deadlines.set(k, d);
          this.timers.push(d, [n.id, peer]);
        }
      }
    }
  }
}
