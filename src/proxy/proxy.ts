// The impairment proxy's shell: one listening socket, one upstream socket per client address (so replies
// find their way back, as through a NAT), and an Impairment deciding each datagram's fate per direction.

import dgram from 'node:dgram';
import { PROXY_IDLE_MS, PROXY_MAX_MAPPINGS } from '../limits.js';
import { Impairment, type ImpairmentOptions } from './impairment.js';

export interface ProxyOptions extends ImpairmentOptions {
  listenHost: string;
  listenPort: number;
  toHost: string;
  toPort: number;
}

interface Mapping {
  client: { address: string; port: number };
  upstream: dgram.Socket;
  lastActive: number;
}

export interface ProxyHandle {
  port: number;
  stats(): { up: Impairment['stats']; down: Impairment['stats']; mappings: number };
  close(): Promise<void>;
}

export async function startProxy(o: ProxyOptions): Promise<ProxyHandle> {
  const up = new Impairment({ ...o, seed: o.seed * 2 });
  const down = new Impairment({ ...o, seed: o.seed * 2 + 1 });
  const family = o.listenHost.includes(':') ? 'udp6' : 'udp4';
  const listener = dgram.createSocket(family);
  const mappings = new Map<string, Mapping>();
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;

  const later = (at: number, fn: () => void): void => {
    const t = setTimeout(() => {
      timers.delete(t);
      if (!closed) fn();
    }, Math.max(0, at - Date.now()));
    timers.add(t);
  };

  const forget = (key: string): void => {
    const m = mappings.get(key);
    if (!m) return;
    mappings.delete(key);
    m.upstream.close();
  };

  const mappingFor = (client: { address: string; port: number }): Mapping => {
    const key = `${client.address}|${client.port}`;
    let m = mappings.get(key);
    if (m) {
      // Keep the map in least-recently-active order.
      mappings.delete(key);
      mappings.set(key, m);
      return m;
    }
    if (mappings.size >= PROXY_MAX_MAPPINGS) forget(mappings.keys().next().value!);
    const upstream = dgram.createSocket(family);
    upstream.on('error', () => {}); // ICMP unreachable from a stopped target: not the proxy's problem
    upstream.on('message', (data) => {
      for (const at of down.decide(Date.now())) later(at, () => listener.send(data, client.port, client.address));
    });
    upstream.connect(o.toPort, o.toHost);
    m = { client, upstream, lastActive: Date.now() };
    mappings.set(key, m);
    return m;
  };

  listener.on('error', () => {});
  listener.on('message', (data, rinfo) => {
    const m = mappingFor({ address: rinfo.address, port: rinfo.port });
    m.lastActive = Date.now();
    for (const at of up.decide(Date.now())) {
      later(at, () => {
        // The upstream socket connects asynchronously; before that, address the datagram explicitly.
        try {
          m.upstream.send(data);
        } catch {
          m.upstream.send(data, o.toPort, o.toHost);
        }
      });
    }
  });

  const sweep = setInterval(() => {
    const cutoff = Date.now() - PROXY_IDLE_MS;
    for (const [key, m] of mappings) if (m.lastActive < cutoff) forget(key);
  }, Math.min(PROXY_IDLE_MS, 10_000));
  sweep.unref();

  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.bind(o.listenPort, o.listenHost, () => {
      listener.off('error', reject);
      resolve();
    });
  });

  return {
    port: listener.address().port,
    stats: () => ({ up: { ...up.stats }, down: { ...down.stats }, mappings: mappings.size }),
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(sweep);
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const key of [...mappings.keys()]) forget(key);
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}
