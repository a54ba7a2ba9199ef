// `obrol proxy`: a UDP impairment proxy for trying obrol (or anything on UDP) over a bad network.

import { parseArgs } from 'node:util';
import { UsageError, intOption } from '../cli/options.js';
import { parseHostPort } from '../cli/target.js';
import { parseDuration, validateImpairment } from './impairment.js';
import { startProxy } from './proxy.js';

export const PROXY_USAGE = `usage: obrol proxy --listen PORT --to HOST:PORT [--loss 0.2] [--dup 0.05] [--reorder 0.1]
                   [--delay 30ms] [--jitter 20ms] [--seed N] [--host H]

  --listen PORT   the port clients send to (0 picks a free one)
  --to HOST:PORT  where datagrams go, e.g. an obrol server
  --loss P        probability a datagram is dropped (each direction)
  --dup P         probability a datagram is delivered twice
  --reorder P     probability a datagram is held back so later ones overtake it
  --delay D       added one-way delay, e.g. 30ms or 0.5s
  --jitter D      random extra delay, up to D
  --seed N        makes a run repeatable (default 1)
  --host H        address to listen on (default 127.0.0.1)`;

function probability(flag: string, raw: string | undefined): number {
  if (raw === undefined) return 0;
  const n = Number(raw);
  if (raw.trim() === '' || !(n >= 0 && n <= 1)) throw new UsageError(`${flag} is a probability between 0 and 1, not "${raw}"`);
  return n;
}

function duration(flag: string, raw: string | undefined): number {
  if (raw === undefined) return 0;
  const ms = parseDuration(raw);
  if (ms === null) throw new UsageError(`${flag} takes a duration like 30ms or 1s, not "${raw}"`);
  return ms;
}

export async function proxyMain(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: 'string' },
      to: { type: 'string' },
      loss: { type: 'string' },
      dup: { type: 'string' },
      reorder: { type: 'string' },
      delay: { type: 'string' },
      jitter: { type: 'string' },
      seed: { type: 'string' },
      host: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(PROXY_USAGE);
    return 0;
  }
  if (values.listen === undefined || values.to === undefined) throw new UsageError(`proxy needs --listen PORT and --to HOST:PORT\n${PROXY_USAGE}`);
  const listenPort = intOption('--listen', values.listen, 0, 0, 65535);
  const to = parseHostPort(values.to);
  if ('error' in to) throw new UsageError(`--to: ${to.error}`);
  const opts = {
    listenHost: values.host ?? '127.0.0.1',
    listenPort,
    toHost: to.host,
    toPort: to.port,
    loss: probability('--loss', values.loss),
    dup: probability('--dup', values.dup),
    reorder: probability('--reorder', values.reorder),
    delayMs: duration('--delay', values.delay),
    jitterMs: duration('--jitter', values.jitter),
    seed: intOption('--seed', values.seed, 1, 0, 2 ** 31),
  };
  const bad = validateImpairment(opts);
  if (bad) throw new UsageError(bad);
  const proxy = await startProxy(opts);
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  console.log(
    `obrol proxy: ${opts.listenHost}:${proxy.port} -> ${to.host}:${to.port} ` +
      `(loss ${opts.loss}, dup ${opts.dup}, reorder ${opts.reorder}, delay ${opts.delayMs}ms, jitter ${opts.jitterMs}ms, seed ${opts.seed})`,
  );
  await stopped;
  await proxy.close();
  return 0;
}
