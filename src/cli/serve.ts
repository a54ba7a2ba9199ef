// `obrol serve`: run a server until SIGINT/SIGTERM.
import { parseArgs } from 'node:util';
import {
  DEFAULT_MTU,
  DEFAULT_PORT,
  FLOOD_BURST,
  FLOOD_RATE_PER_SEC,
  HISTORY_ON_JOIN,
  HISTORY_ON_JOIN_MAX,
  IDLE_TIMEOUT_MS,
  KEEPALIVE_PING_MS,
  HANDSHAKES_PER_IP_PER_SEC,
  LEGACY_CLIENTS_PER_IP,
  LEGACY_IDLE_MS,
  LEGACY_RATE_PER_SEC,
  SERVER_IDLE_TIMEOUT_MIN_MS,
  SESSIONS_PER_IP,
  MAX_MTU,
  MIN_MTU,
  RETAIN_DAYS,
  RETAIN_MESSAGES,
} from '../limits.js';
import { ObrolServer } from '../server/server.js';
import { formatAddr } from '../session/address.js';
import { defaultDataDir } from './paths.js';
import { intOption, UsageError } from './options.js';

export const SERVE_USAGE = `usage: obrol serve [--host H] [--port P] [--data DIR] [--memory] [--mtu N]
                   [--history N] [--retain-messages N] [--retain-days D]
                   [--flood-burst N] [--flood-rate N] [--idle-timeout SECONDS]
                   [--legacy [--legacy-idle SECONDS] [--legacy-rate N]]
                   [--sessions-per-ip N] [--handshakes-per-ip N]

  --host H            address to listen on (default 0.0.0.0; use :: for IPv6)
  --port P            UDP port (default ${DEFAULT_PORT})
  --data DIR          data directory: the server key and the history (history.db, SQLite) live here
                      (default $OBROL_DATA_DIR, else $XDG_DATA_HOME/obrol, else ~/.local/share/obrol)
  --memory            keep history in memory only: rooms, topics and messages go with a restart
  --history N         messages replayed to someone joining a room, 0..${HISTORY_ON_JOIN_MAX} (default ${HISTORY_ON_JOIN})
  --retain-messages N keep the last N messages per room (default ${RETAIN_MESSAGES}; 0: no limit)
  --retain-days D     delete messages older than D days (default ${RETAIN_DAYS === 0 ? '0: no limit' : RETAIN_DAYS})
  --mtu N             largest UDP payload to send, ${MIN_MTU}..${MAX_MTU} (default ${DEFAULT_MTU})
  --flood-burst N     messages a client may send at once (default ${FLOOD_BURST})
  --flood-rate N      messages per second a client may sustain (default ${FLOOD_RATE_PER_SEC})
  --idle-timeout S    end a session after S seconds of silence (default ${IDLE_TIMEOUT_MS / 1000}; under
                      ${SERVER_IDLE_TIMEOUT_MIN_MS / 1000} it warns: idle obrol clients PING every ${KEEPALIVE_PING_MS / 1000} s)
  --legacy            also speak the original plain-text protocol on the same port, so original
                      clients can chat in #lobby. Off by default: it is NOT encrypted or
                      authenticated (anyone can send as any legacy name from any address)
  --legacy-idle S     forget a legacy client after S seconds of silence (default ${LEGACY_IDLE_MS / 1000})
  --legacy-rate N     datagrams per second one legacy address may send, burst 2N (default ${LEGACY_RATE_PER_SEC})
  --sessions-per-ip N sessions (and legacy clients) from one IP address (default ${SESSIONS_PER_IP}, legacy ${LEGACY_CLIENTS_PER_IP});
                      raise it for load tests from one machine
  --handshakes-per-ip N  new sessions per second from one IP address (default ${HANDSHAKES_PER_IP_PER_SEC})`;

export async function serveMain(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      data: { type: 'string' },
      memory: { type: 'boolean' },
      history: { type: 'string' },
      'retain-messages': { type: 'string' },
      'retain-days': { type: 'string' },
      mtu: { type: 'string' },
      'flood-burst': { type: 'string' },
      'flood-rate': { type: 'string' },
      'idle-timeout': { type: 'string' },
      legacy: { type: 'boolean' },
      'legacy-idle': { type: 'string' },
      'legacy-rate': { type: 'string' },
      'sessions-per-ip': { type: 'string' },
      'handshakes-per-ip': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(SERVE_USAGE);
    return 0;
  }
  const port = intOption('--port', values.port, DEFAULT_PORT, 0, 65535);
  const mtu = intOption('--mtu', values.mtu, DEFAULT_MTU, MIN_MTU, MAX_MTU);
  const floodBurst = intOption('--flood-burst', values['flood-burst'], FLOOD_BURST, 1, 1_000_000);
  const floodRate = intOption('--flood-rate', values['flood-rate'], FLOOD_RATE_PER_SEC, 1, 1_000_000);
  const idle = intOption('--idle-timeout', values['idle-timeout'], IDLE_TIMEOUT_MS / 1000, 1, 86_400);
  const dataDir = values.data ?? defaultDataDir();
  const history = intOption('--history', values.history, HISTORY_ON_JOIN, 0, HISTORY_ON_JOIN_MAX);
  const retainMessages = intOption('--retain-messages', values['retain-messages'], RETAIN_MESSAGES, 0, Number.MAX_SAFE_INTEGER);
  const retainDays = intOption('--retain-days', values['retain-days'], RETAIN_DAYS, 0, 100_000);
  const memory = values.memory === true;
  const legacy = values.legacy === true;
  if (!legacy && values['legacy-idle'] !== undefined) throw new UsageError('--legacy-idle needs --legacy');
  const legacyIdle = intOption('--legacy-idle', values['legacy-idle'], LEGACY_IDLE_MS / 1000, 1, 86_400);
  if (!legacy && values['legacy-rate'] !== undefined) throw new UsageError('--legacy-rate needs --legacy');
  const legacyRate = intOption('--legacy-rate', values['legacy-rate'], LEGACY_RATE_PER_SEC, 1, 10_000_000);
  const perIp = values['sessions-per-ip'] === undefined ? undefined : intOption('--sessions-per-ip', values['sessions-per-ip'], SESSIONS_PER_IP, 1, 10_000_000);
  const handshakes = intOption('--handshakes-per-ip', values['handshakes-per-ip'], HANDSHAKES_PER_IP_PER_SEC, 1, 10_000_000);

  let server: ObrolServer;
  try {
    server = await ObrolServer.start({
      host: values.host,
      port,
      dataDir,
      memory,
      historyOnJoin: history,
      retention: { maxMessages: retainMessages, maxAgeMs: retainDays * 86_400_000 },
      endpoint: { mtu, idleTimeoutMs: idle * 1000, handshakesPerIpPerSec: handshakes, ...(perIp !== undefined ? { sessionsPerIp: perIp } : {}) },
      chatLimits: { floodBurst, floodRate },
      legacy: legacy
        ? {
            idleMs: legacyIdle * 1000,
            ...(values['legacy-rate'] !== undefined ? { ratePerSec: legacyRate, burst: 2 * legacyRate } : {}),
            ...(perIp !== undefined ? { clientsPerIp: perIp } : {}),
          }
        : undefined,
    });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE') throw new UsageError(`port ${port} is already in use; stop the other server or pick another --port`, 1);
    if (err.code === 'EADDRNOTAVAIL') throw new UsageError(`cannot listen on ${values.host}: no such local address`, 1);
    if (err.code === 'SQLITE_BUSY') throw new UsageError(`the history in ${dataDir} is in use by another server; stop it or use another --data`, 1);
    throw e;
  }
  // Handlers first: a signal sent the moment the ready line appears must find them in place.
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  const where = memory ? 'history in memory only (--memory)' : `data in ${dataDir}`;
  console.log(`obrol: listening on udp ${formatAddr(server.address())}, server key ${server.fingerprint}, ${where}`);
  if (legacy) console.log(`obrol: legacy plain-text protocol on, same port: unencrypted and unauthenticated; silent legacy clients leave after ${legacyIdle} s`);
  // Allowed (a program of one's own may keep its sessions busier), but obrol's own idle clients would be
  // dropped: say so where it is seen.
  if (idle * 1000 < SERVER_IDLE_TIMEOUT_MIN_MS) {
    console.error(
      `obrol: warning: --idle-timeout ${idle} is under ${SERVER_IDLE_TIMEOUT_MIN_MS / 1000} s: obrol clients PING an idle session every ${KEEPALIVE_PING_MS / 1000} s, so quiet ones will be dropped as timed out`,
    );
  }
  await stopped;
  await server.close();
  console.log('obrol: stopped');
  return 0;
}
