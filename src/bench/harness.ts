// `npm run bench` / `obrol bench`: fan-out throughput, latency and server CPU per delivered message, for
// obrol and for two baselines of the original protocol in the same run (a Node dgram relay and a C relay
// with recvmmsg/sendmmsg), alternating servers between runs because this machine's speed drifts.
//
// Server CPU per delivered message (from /proc/PID/stat over the measured window) is the primary
// figure: it does not depend on the load generator keeping up.

import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { loadUdpBatchAddon, udpBatchAddonError } from '../net/udp-batch.js';
import { backend as cryptoBackend } from '../crypto/primitives.js';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuMicros, percentile, rssBytes, sharedNow } from './measure.js';
import type { FromWorker, ObrolClients, Proto, ToWorker } from './load-worker.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const CLI = join(root, 'dist', 'cli', 'main.js');

/** Every client comes from 127.0.0.1 and sends far above a person's rate: lift the per-IP and flood limits. */
const LOAD_TEST_FLAGS = ['--flood-rate', '1000000', '--flood-burst', '1000000', '--sessions-per-ip', '1000000', '--handshakes-per-ip', '1000000'];

export interface ServerSpec {
  name: string;
  proto: Proto;
  start(port: number): ChildProcess;
}

export interface Row {
  server: string;
  clients: number;
  senders: number;
  bytes: number;
  offeredPerSec: number;
  deliveriesPerSec: number;
  deliveryRatio: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  serverCpuUsPerDelivery: number;
  serverRssMiB: number;
  generatorCpuPct: number;
  joinMs: number;
  /** After the joins, until the server went quiet: the cost of announcing them. */
  settleMs: number;
}

export function buildC(): string | null {
  const cc = spawnSync('cc', ['--version']);
  if (cc.status !== 0) return null;
  const out = join(root, 'build', 'relay');
  mkdirSync(dirname(out), { recursive: true });
  const r = spawnSync('cc', ['-O2', '-o', out, join(root, 'bench', 'relay.c')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cc failed: ${r.stderr}`);
  return out;
}

export function specs(which: string[], cRelay: string | null, dataDir: string, profileDir?: string): ServerSpec[] {
  // --profile: obrol's servers write a V8 CPU profile (open it in Chrome DevTools) when they stop.
  const node = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  const all: ServerSpec[] = [
    { name: 'node-relay', proto: 'legacy', start: (p) => spawn(process.execPath, [join(root, 'bench', 'relay-node.mjs'), String(p)], { stdio: 'ignore' }) },
    {
      name: 'obrol --legacy',
      proto: 'legacy',
      start: (p) =>
        spawn(process.execPath, [...node, CLI, 'serve', '--host', '127.0.0.1', '--port', String(p), '--data', join(dataDir, `l${p}`), '--memory', '--legacy', ...LOAD_TEST_FLAGS, '--legacy-rate', '1000000'], { stdio: 'ignore' }),
    },
    {
      name: 'obrol',
      proto: 'obrol',
      start: (p) =>
        spawn(process.execPath, [...node, CLI, 'serve', '--host', '127.0.0.1', '--port', String(p), '--data', join(dataDir, `o${p}`), '--memory', ...LOAD_TEST_FLAGS], { stdio: 'ignore' }),
    },
  ];
  if (cRelay) all.unshift({ name: 'c-relay', proto: 'legacy', start: (p) => spawn(cRelay, [String(p)], { stdio: 'ignore' }) });
  return all.filter((s) => which.includes(s.name));
}

function ask(w: ChildProcess, m: ToWorker, want: FromWorker['type']): Promise<FromWorker> {
  return new Promise((resolve, reject) => {
    const on = (r: FromWorker): void => {
      if (r.type === 'error') {
        w.off('message', on);
        reject(new Error(r.text));
      } else if (r.type === want) {
        w.off('message', on);
        resolve(r);
      }
    };
    w.on('message', on);
    w.send(m);
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runOne(
  spec: ServerSpec,
  o: { clients: number; senders: number; rate: number; bytes: number; seconds: number; workers: number; port: number; obrolClients?: ObrolClients },
): Promise<Row> {
  const server = spec.start(o.port);
  await sleep(spec.proto === 'obrol' || spec.name.startsWith('obrol') ? 1500 : 400);
  const workers: ChildProcess[] = [];
  try {
    for (let i = 0; i < o.workers; i++) workers.push(fork(join(here, 'load-worker.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    const names = Array.from({ length: o.clients }, (_, i) => `u${i}`);
    const t0 = performance.now();
    const joined = await Promise.all(
      workers.map((w, i) => {
        const mine = names.filter((_, k) => k % o.workers === i);
        const senders = Math.floor(o.senders / o.workers) + (i < o.senders % o.workers ? 1 : 0);
        return ask(
          w,
          { type: 'setup', proto: spec.proto, host: '127.0.0.1', port: o.port, names: mine, senders, bytes: o.bytes, worker: i, obrolClients: o.obrolClients ?? 'pool' },
          'joined',
        );
      }),
    );
    const joinMs = performance.now() - t0;
    const failed = joined.reduce((n, j) => n + (j.type === 'joined' ? j.failed : 0), 0);
    if (failed > 0) throw new Error(`${failed} clients failed to join ${spec.name}`);
    // Announcing the joins may go on after the last client is registered (the original protocol's O(N²)
    // join lines, or presence batches): measure until the server is quiet (under 20% of a core), so the
    // fan-out window measures fan-out.
    const settleStart = performance.now();
    for (let quiet = 0; quiet < 2 && performance.now() - settleStart < 60_000; ) {
      const c0 = cpuMicros(server.pid!);
      await sleep(300);
      quiet = cpuMicros(server.pid!) - c0 < 0.2 * 300_000 ? quiet + 1 : 0;
    }
    const settleMs = performance.now() - settleStart;
    const start = sharedNow(() => performance.now()) + 200;
    const warm = 1000;
    const measureFrom = start + warm;
    const measureTo = measureFrom + o.seconds * 1000;
    const perSender = o.rate / o.senders;
    for (const w of workers) w.send({ type: 'run', ratePerSender: perSender, startAt: start, measureFrom, measureTo } satisfies ToWorker);
    await sleep(measureFrom - sharedNow(() => performance.now()));
    const cpu0 = cpuMicros(server.pid!);
    const gen0 = workers.reduce((n, w) => n + cpuMicros(w.pid!), 0);
    await sleep(measureTo - sharedNow(() => performance.now()));
    const cpu1 = cpuMicros(server.pid!);
    const gen1 = workers.reduce((n, w) => n + cpuMicros(w.pid!), 0);
    const rss = rssBytes(server.pid!);
    await sleep(1500); // let the last deliveries of the window arrive
    const results = await Promise.all(workers.map((w) => ask(w, { type: 'report' }, 'result')));
    let sent = 0;
    let received = 0;
    const lat: number[] = [];
    for (const r of results) {
      if (r.type !== 'result') continue;
      sent += r.sent;
      received += r.received;
      for (const x of r.latencies) lat.push(x);
    }
    lat.sort((a, b) => a - b);
    const expected = sent * o.clients;
    return {
      server: spec.name,
      clients: o.clients,
      senders: o.senders,
      bytes: o.bytes,
      offeredPerSec: sent / o.seconds,
      deliveriesPerSec: received / o.seconds,
      deliveryRatio: expected > 0 ? received / expected : NaN,
      p50Ms: percentile(lat, 50),
      p99Ms: percentile(lat, 99),
      p999Ms: percentile(lat, 99.9),
      serverCpuUsPerDelivery: received > 0 ? (cpu1 - cpu0) / received : NaN,
      serverRssMiB: rss / 2 ** 20,
      generatorCpuPct: ((gen1 - gen0) / (o.seconds * 1e6)) * 100,
      joinMs,
      settleMs,
    };
  } finally {
    for (const w of workers) if (w.connected) w.send({ type: 'stop' } satisfies ToWorker);
    await sleep(200);
    for (const w of workers) if (w.exitCode === null) w.kill('SIGKILL');
    server.kill('SIGTERM');
    await new Promise((r) => (server.exitCode !== null ? r(null) : server.once('exit', r)));
  }
}

const median = (xs: number[]): number => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function table(rows: Row[]): string {
  const by = (n: string) => rows.find((r) => r.server === n);
  const c = by('c-relay');
  const node = by('node-relay');
  const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');
  const lines = [
    '| server | clients | offered msg/s | deliveries/s | delivered | p50 ms | p99 ms | p99.9 ms | server CPU µs/delivery | × C relay | × Node relay | server RSS MiB | generator CPU % | join ms | settle ms |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.server} | ${r.clients} | ${f(r.offeredPerSec, 0)} | ${f(r.deliveriesPerSec, 0)} | ${f(r.deliveryRatio * 100, 2)}% | ${f(r.p50Ms, 2)} | ${f(r.p99Ms, 2)} | ${f(r.p999Ms, 2)} | ${f(r.serverCpuUsPerDelivery, 2)} | ${c ? f(r.serverCpuUsPerDelivery / c.serverCpuUsPerDelivery, 2) : '–'} | ${node ? f(r.serverCpuUsPerDelivery / node.serverCpuUsPerDelivery, 2) : '–'} | ${f(r.serverRssMiB, 0)} | ${f(r.generatorCpuPct, 0)} | ${f(r.joinMs, 0)} | ${f(r.settleMs, 0)} |`,
    );
  }
  return lines.join('\n');
}

export async function benchMain(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      clients: { type: 'string', default: '100' },
      senders: { type: 'string', default: '10' },
      rate: { type: 'string', default: '500' },
      bytes: { type: 'string', default: '100' },
      seconds: { type: 'string', default: '5' },
      runs: { type: 'string', default: '3' },
      workers: { type: 'string', default: '1' },
      'obrol-clients': { type: 'string', default: 'pool' },
      servers: { type: 'string', default: 'c-relay,node-relay,obrol-legacy,obrol' },
      json: { type: 'string' },
      profile: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(`usage: obrol bench [--clients N] [--senders S] [--rate R] [--bytes B] [--seconds D] [--runs K]
                   [--workers W] [--servers c-relay,node-relay,obrol-legacy,obrol] [--json FILE]
                   [--profile DIR] [--obrol-clients pool|library]

Starts each server in turn on 127.0.0.1, N simulated clients (over W generator processes), S of them
sending B-byte messages at R messages/s in total, and reports throughput, delivery, latency and the
server's CPU time per delivered message, as ratios to the C and Node relays. Servers alternate over K runs;
the table shows medians.

  --obrol-clients pool     obrol's clients are sessions of a pool in each generator process, sharing 8
                           sockets and one timer (default: the generator then keeps up with the server)
  --obrol-clients library  one ObrolClient each, with its own socket and timers, as a program using the
                           client library would`);
    return 0;
  }
  const n = (s: string | undefined, d: number) => (s === undefined ? d : Number(s));
  const o = {
    clients: n(values.clients, 100),
    senders: n(values.senders, 10),
    rate: n(values.rate, 500),
    bytes: n(values.bytes, 100),
    seconds: n(values.seconds, 5),
    workers: n(values.workers, 1),
    port: 0,
    obrolClients: values['obrol-clients'] as ObrolClients,
  };
  if (o.obrolClients !== 'pool' && o.obrolClients !== 'library') throw new Error('--obrol-clients must be pool or library');
  const which = values.servers!.split(',').map((s) => (s === 'obrol-legacy' ? 'obrol --legacy' : s));
  const cRelay = which.includes('c-relay') ? buildC() : null;
  if (which.includes('c-relay') && !cRelay) console.error('bench: no C compiler (cc): the C relay baseline is skipped');
  const data = mkdtempSync(join(tmpdir(), 'obrol-bench-data-'));
  const list = specs(which, cRelay, data, values.profile);
  const all: Row[] = [];
  let port = 20000 + Math.floor(Math.random() * 20000);
  try {
    for (let run = 0; run < n(values.runs, 3); run++) {
      for (const spec of run % 2 === 0 ? list : [...list].reverse()) {
        const row = await runOne(spec, { ...o, port: port++ });
        all.push(row);
        console.error(`run ${run + 1} ${spec.name}: ${row.serverCpuUsPerDelivery.toFixed(2)} µs/delivery, ${(row.deliveryRatio * 100).toFixed(2)}% delivered, p99 ${row.p99Ms.toFixed(2)} ms`);
      }
    }
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
  const medians: Row[] = list.map((s) => {
    const rs = all.filter((r) => r.server === s.name);
    const m = (k: keyof Row) => median(rs.map((r) => r[k] as number));
    return {
      server: s.name,
      clients: o.clients,
      senders: o.senders,
      bytes: o.bytes,
      offeredPerSec: m('offeredPerSec'),
      deliveriesPerSec: m('deliveriesPerSec'),
      deliveryRatio: m('deliveryRatio'),
      p50Ms: m('p50Ms'),
      p99Ms: m('p99Ms'),
      p999Ms: m('p999Ms'),
      serverCpuUsPerDelivery: m('serverCpuUsPerDelivery'),
      serverRssMiB: m('serverRssMiB'),
      generatorCpuPct: m('generatorCpuPct'),
      joinMs: m('joinMs'),
      settleMs: m('settleMs'),
    };
  });
  // The obrol servers load the same modules: what they find here is what they run with.
  const sendPath = process.env.OBROL_NO_SENDMMSG === '1' ? 'dgram (OBROL_NO_SENDMMSG=1)' : loadUdpBatchAddon() ? 'sendmmsg' : `dgram (${udpBatchAddonError() ?? ''})`;
  const recvPath = process.env.OBROL_NO_RECVMMSG === '1' ? 'dgram (OBROL_NO_RECVMMSG=1)' : loadUdpBatchAddon() ? 'recvmmsg' : 'dgram';
  const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.version}; obrol sends with ${sendPath} and reads with ${recvPath}, ChaCha20-Poly1305 from ${cryptoBackend.aead} and X25519 from ${cryptoBackend.name}; obrol clients: ${o.obrolClients === 'pool' ? 'sessions of a pool per generator' : 'one ObrolClient each'}`;
  console.log(`\n${o.clients} clients, ${o.senders} senders, ${o.rate} msg/s offered, ${o.bytes}-byte messages, ${o.seconds} s × ${n(values.runs, 3)} runs (medians); ${machine}\n`);
  console.log(table(medians));
  if (values.json) writeFileSync(values.json, JSON.stringify({ machine, options: o, runs: all, medians }, null, 2) + '\n');
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  benchMain(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
