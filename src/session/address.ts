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
