// Parsing of `NAME@HOST[:PORT]` and `HOST[:PORT]` (IPv6 in brackets: `alice@[::1]:6789`).
import { DEFAULT_PORT } from '../limits.js';

export interface HostPort {
  host: string;
  port: number;
}

export function parseHostPort(s: string, defaultPort = DEFAULT_PORT): HostPort | { error: string } {
  let host = s;
  let port = defaultPort;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (bracket) {
    host = bracket[1]!;
    if (bracket[2] !== undefined) port = Number(bracket[2]);
  } else {
    const colons = s.split(':').length - 1;
    if (colons === 1) {
      const i = s.lastIndexOf(':');
      host = s.slice(0, i);
      const p = s.slice(i + 1);
      if (!/^\d+$/.test(p)) return { error: `"${p}" is not a port number` };
      port = Number(p);
    }
  }
  if (host === '') return { error: 'the host is empty' };
  if (!Number.isInteger(port) || port < 1 || port > 65535) return { error: `port ${port} is outside 1..65535` };
  return { host, port };
}

/** Splits `NAME@HOST[:PORT]` at the last '@' (names cannot contain '@'). */
export function parseTarget(s: string): ({ name: string } & HostPort) | { error: string } {
  const at = s.lastIndexOf('@');
  if (at <= 0) return { error: `"${s}" is not NAME@HOST[:PORT]` };
  const hp = parseHostPort(s.slice(at + 1));
  if ('error' in hp) return hp;
  return { name: s.slice(0, at), ...hp };
}
