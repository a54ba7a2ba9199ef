// A UDP peer address and the datagram-to-send type shared by the sans-I/O endpoints and their shells.

export interface Address {
  address: string;
  port: number;
}

export interface Transmit {
  to: Address;
  data: Uint8Array;
}

export function addrKey(a: Address): string {
  return `${a.address}|${a.port}`;
}

export function sameAddr(a: Address, b: Address): boolean {
  return a.port === b.port && a.address === b.address;
}

/** "host:port", with IPv6 hosts in brackets. */
export function formatAddr(a: Address): string {
  return a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

/**
 * Peers that get the same datagrams: a legacy room's clients, whose every line is the same bytes for all.
 * A shell sends one datagram to the whole group in one call (UdpBatchSender.pushGroup), where per-member
 * delivery would cost a call chain and a map lookup each. Members are kept dense, by a numeric key (a
 * session id); removal moves the last member into the hole, so the order is not the order of joining.
 */
export class AddressGroup {
  private readonly slotOf = new Map<number, number>();
  private keyAt: number[] = [];
  private addrAt: Address[] = [];
  /** For the sender: each member's index in its address table, or -1 (look it up), valid for `destEpoch`. */
  dest = new Int32Array(16);
  destEpoch = -1;

  get size(): number {
    return this.keyAt.length;
  }

  /** The member at index i, for 0 <= i < size. */
  keyOf(i: number): number {
    return this.keyAt[i]!;
  }

  addressOf(i: number): Address {
    return this.addrAt[i]!;
  }

  /** The member's index, or -1. */
  indexOf(key: number): number {
    return this.slotOf.get(key) ?? -1;
  }

  has(key: number): boolean {
    return this.slotOf.has(key);
  }

  /** Adds a member, or moves one already in to a new address. */
  add(key: number, addr: Address): void {
    const known = this.slotOf.get(key);
    if (known !== undefined) {
      this.addrAt[known] = addr;
      this.dest[known] = -1;
      return;
    }
    const i = this.keyAt.length;
    if (i >= this.dest.length) {
      const grown = new Int32Array(this.dest.length * 2);
      grown.set(this.dest);
      this.dest = grown;
    }
    this.keyAt.push(key);
    this.addrAt.push(addr);
    this.dest[i] = -1;
    this.slotOf.set(key, i);
  }

  /** Removes a member; false if it was not one. */
  remove(key: number): boolean {
    const i = this.slotOf.get(key);
    if (i === undefined) return false;
    this.slotOf.delete(key);
    const last = this.keyAt.length - 1;
    if (i !== last) {
      const movedKey = this.keyAt[last]!;
      this.keyAt[i] = movedKey;
      this.addrAt[i] = this.addrAt[last]!;
      this.dest[i] = this.dest[last]!;
      this.slotOf.set(movedKey, i);
    }
    this.keyAt.pop();
    this.addrAt.pop();
    return true;
  }
}
