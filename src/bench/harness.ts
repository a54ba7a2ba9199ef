// `npm run bench` / `obrol bench`: fan-out throughput, latency and server CPU per delivered message, for
// obrol and for two baselines of the original protocol in the same run (a Node dgram relay and a C relay
// with recvmmsg/sendmmsg), alternating servers between runs because this machine's speed drifts.
//
// Server CPU per delivered message (the server's threads' schedstat over the measured window) is the
// primary figure: it does not depend on the load generator keeping up.

import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { loadUdpBatchAddon, udpBatchAddonError } from '../net/udp-batch.js';
import { backend as cryptoBackend } from '../crypto/primitives.js';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuMicros, cpuTimes, PAYLOAD_MIN_BYTES, percentile, rssBytes, sharedNow, udpPortOwner } from './measure.js';
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

export interface Row extends Window {
  server: string;
  clients: number;
  senders: number;
  bytes: number;
  joinMs: number;
  /** After the joins, until the server went quiet: the cost of announcing them. */
  settleMs: number;
  /** Memory per client: what the server's RSS grew by from before the first join to after the joins had
   * settled, per client (KiB; NaN when the server's process is not known). */
  serverKiBPerClient: number;
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

/** A server already running on this machine (--target): the harness only loads it. */
export interface TargetSpec {
  name: string;
  proto: Proto;
  host: string;
  port: number;
  /** Its process, for CPU and memory (null: those figures are not measured). */
  pid: number | null;
}

export interface RunOptions {
  clients: number;
  senders: number;
  rate: number;
  bytes: number;
  seconds: number;
  workers: number;
  /** Where a started server listens (a target has its own). */
  port: number;
  obrolClients?: ObrolClients;
}

/** A server under load with every client joined: what one or more measuring windows run on. */
interface Loaded {
  spec: ServerSpec | TargetSpec;
  pid: number | null;
  workers: ChildProcess[];
  clients: number;
  senders: number;
  joinMs: number;
  settleMs: number;
  /** See Row. */
  serverKiBPerClient: number;
  stop(): Promise<void>;
}

/** One measuring window at one offered rate. */
export interface Window {
  askedPerSec: number;
  offeredPerSec: number;
  deliveriesPerSec: number;
  deliveryRatio: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  serverCpuUsPerDelivery: number;
  /** Its two parts: the server's own code (user) and the kernel's work for it (system calls, loopback). */
  serverUserUsPerDelivery: number;
  serverKernelUsPerDelivery: number;
  /** Server CPU over the window, % of one core (all its threads). */
  serverCpuPct: number;
  serverRssMiB: number;
  generatorCpuPct: number;
  /** Datagrams the clients received per message they received (1 for the original protocol; obrol packs
   * a member's share of messages that reach the server together into one packet). */
  datagramsPerDelivery: number;
  /** obrol clients the server had dropped by the end of the window, since they joined (too slow, say). */
  clientsLost: number;
}

const isStarted = (s: ServerSpec | TargetSpec): s is ServerSpec => 'start' in s;

/** Until the server is quiet (under 20% of a core for two readings), at most `maxMs`; a fixed wait when
 * its CPU cannot be read. */
async function quiet(pid: number | null, maxMs: number): Promise<void> {
  if (pid === null) return sleep(Math.min(maxMs, 2000));
  const t0 = performance.now();
  for (let calm = 0; calm < 2 && performance.now() - t0 < maxMs; ) {
    const c0 = cpuMicros(pid);
    await sleep(300);
    calm = cpuMicros(pid) - c0 < 0.2 * 300_000 ? calm + 1 : 0;
  }
}

/** Starts (or attaches to) the server and the generator processes, and joins every client into #lobby. */
async function load(spec: ServerSpec | TargetSpec, o: RunOptions): Promise<Loaded> {
  const child = isStarted(spec) ? spec.start(o.port) : null;
  const host = isStarted(spec) ? '127.0.0.1' : spec.host;
  const port = isStarted(spec) ? o.port : spec.port;
  const pid = child ? child.pid! : (spec as TargetSpec).pid;
  const workers: ChildProcess[] = [];
  const stop = async (): Promise<void> => {
    for (const w of workers) if (w.connected) w.send({ type: 'stop' } satisfies ToWorker);
    await sleep(200);
    for (const w of workers) if (w.exitCode === null) w.kill('SIGKILL');
    if (child) {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    }
  };
  try {
    if (child) await sleep(spec.proto === 'obrol' || spec.name.startsWith('obrol') ? 1500 : 400);
    for (let i = 0; i < o.workers; i++) workers.push(fork(join(here, 'load-worker.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    // Names of this run's own: an original server never forgets a name, so a second run against the same
    // one would find every name taken.
    const tag = Math.floor(Math.random() * 36 ** 4).toString(36);
    const names = Array.from({ length: o.clients }, (_, i) => `b${tag}u${i}`);
    // The joins are timed from when every generator process has started (about 150 ms here), not from
    // the fork: starting node is the generator's cost, not the server's.
    await Promise.all(workers.map((w) => ask(w, { type: 'ping' }, 'ready')));
    const rssBeforeJoinsBytes = pid === null ? NaN : rssBytes(pid);
    const t0 = performance.now();
    const joined = await Promise.all(
      workers.map((w, i) => {
        const mine = names.filter((_, k) => k % o.workers === i);
        const senders = Math.floor(o.senders / o.workers) + (i < o.senders % o.workers ? 1 : 0);
        return ask(w, { type: 'setup', proto: spec.proto, host, port, names: mine, senders, bytes: o.bytes, worker: i, obrolClients: o.obrolClients ?? 'pool' }, 'joined');
      }),
    );
    const joinMs = performance.now() - t0;
    const failed = joined.reduce((n, j) => n + (j.type === 'joined' ? j.failed : 0), 0);
    if (failed > 0) throw new Error(`${failed} clients failed to join ${spec.name}`);
    // Announcing the joins may go on after the last client is registered (the original protocol's O(N²)
    // join lines, or presence batches): measure once the server is quiet, so the window measures fan-out.
    const settleStart = performance.now();
    await quiet(pid, 60_000);
    const settleMs = performance.now() - settleStart;
    const serverKiBPerClient = pid === null || o.clients === 0 ? NaN : (rssBytes(pid) - rssBeforeJoinsBytes) / o.clients / 1024;
    return { spec, pid, workers, clients: o.clients, senders: o.senders, joinMs, settleMs, serverKiBPerClient, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** One window: the senders offer `rate` messages/s in all for `seconds` after a 1 s warm-up. */
async function measure(l: Loaded, rate: number, seconds: number): Promise<Window> {
  const { pid, workers } = l;
  const start = sharedNow(() => performance.now()) + 200;
  const warm = 1000;
  const measureFrom = start + warm;
  const measureTo = measureFrom + seconds * 1000;
  for (const w of workers) w.send({ type: 'run', ratePerSender: rate / l.senders, startAt: start, measureFrom, measureTo } satisfies ToWorker);
  await sleep(measureFrom - sharedNow(() => performance.now()));
  const none = { user: NaN, kernel: NaN };
  const t0 = pid === null ? none : cpuTimes(pid);
  const cpu0 = pid === null ? NaN : cpuMicros(pid);
  const gen0 = workers.reduce((n, w) => n + cpuMicros(w.pid!), 0);
  await sleep(measureTo - sharedNow(() => performance.now()));
  const t1 = pid === null ? none : cpuTimes(pid);
  const cpu1 = pid === null ? NaN : cpuMicros(pid);
  // The total from schedstat (measure.ts); its split into user and kernel time as /proc/PID/stat's clock
  // ticks divide it (none in a window without ticks).
  const ticked = t1.user - t0.user + (t1.kernel - t0.kernel);
  const userShare = ticked > 0 ? (t1.user - t0.user) / ticked : NaN;
  const gen1 = workers.reduce((n, w) => n + cpuMicros(w.pid!), 0);
  const rss = pid === null ? NaN : rssBytes(pid);
  await sleep(1500); // let the last deliveries of the window arrive
  const results = await Promise.all(workers.map((w) => ask(w, { type: 'report' }, 'result')));
  let sent = 0;
  let received = 0;
  let arrived = 0;
  let datagrams = 0;
  let lost = 0;
  const lat: number[] = [];
  for (const r of results) {
    if (r.type !== 'result') continue;
    sent += r.sent;
    received += r.received;
    arrived += r.arrived ?? NaN;
    datagrams += r.datagrams ?? NaN;
    lost += r.lost;
    for (const x of r.latencies) lat.push(x);
  }
  lat.sort((a, b) => a - b);
  const expected = sent * l.clients;
  return {
    askedPerSec: rate,
    offeredPerSec: sent / seconds,
    deliveriesPerSec: received / seconds,
    deliveryRatio: expected > 0 ? received / expected : NaN,
    p50Ms: percentile(lat, 50),
    p99Ms: percentile(lat, 99),
    p999Ms: percentile(lat, 99.9),
    serverCpuUsPerDelivery: received > 0 ? (cpu1 - cpu0) / received : NaN,
    serverUserUsPerDelivery: received > 0 ? (userShare * (cpu1 - cpu0)) / received : NaN,
    serverKernelUsPerDelivery: received > 0 ? ((1 - userShare) * (cpu1 - cpu0)) / received : NaN,
    serverCpuPct: ((cpu1 - cpu0) / (seconds * 1e6)) * 100,
    serverRssMiB: rss / 2 ** 20,
    generatorCpuPct: ((gen1 - gen0) / (seconds * 1e6)) * 100,
    datagramsPerDelivery: arrived > 0 ? datagrams / arrived : NaN,
    clientsLost: lost,
  };
}

/** One server at one fixed rate: the benchmark's primary figure. */
export async function runOne(spec: ServerSpec | TargetSpec, o: RunOptions): Promise<Row> {
  const l = await load(spec, o);
  try {
    const w = await measure(l, o.rate, o.seconds);
    return { server: spec.name, clients: o.clients, senders: o.senders, bytes: o.bytes, ...w, joinMs: l.joinMs, settleMs: l.settleMs, serverKiBPerClient: l.serverKiBPerClient };
  } finally {
    await l.stop();
  }
}

/** What --find-max counts as keeping up: everything delivered (a datagram in a thousand may be lost by a
 * protocol without retransmission), the generator offering what was asked, and p99 under the bound (a
 * server that falls behind queues, and its latency grows through the window). */
export const FIND_MAX = {
  minDelivery: 0.999,
  minOffered: 0.95,
  defaultMaxP99Ms: 50,
  /** Windows per server at most: the doubling and then the bisection. */
  maxSteps: 12,
  /** The bisection stops when the bounds are this close (ratio). */
  resolution: 1.1,
};

export interface FindMaxRow {
  server: string;
  clients: number;
  senders: number;
  bytes: number;
  /** The highest rate that kept up, messages/s offered (NaN: not even the lowest tried). */
  maxPerSec: number;
  /** The window at that rate. */
  atMax: Window | null;
  /** The lowest rate tried that did not keep up, and its window. */
  failed: Window | null;
  /** What the lowest failing window points at: the server's or the generator's CPU (at 90% of a core or
   * more), both (the machine is full), or neither (loss or latency below a full core). */
  limitedBy: 'server' | 'generator' | 'server and generator' | 'latency or loss' | 'clients dropped' | 'not reached';
  steps: { rate: number; kept: boolean; window: Window }[];
  joinMs: number;
}

export function keptUp(w: Window, maxP99Ms: number): boolean {
  return w.clientsLost === 0 && w.deliveryRatio >= FIND_MAX.minDelivery && w.offeredPerSec >= FIND_MAX.minOffered * w.askedPerSec && w.p99Ms <= maxP99Ms;
}

/** The search of --find-max over `tryRate` (true: kept up): from `start`, halving until a rate keeps up,
 * doubling until one does not, then bisecting (geometrically) until the bounds are within
 * FIND_MAX.resolution; at most `maxSteps` tries. lo is the highest rate that kept up (NaN: none), hi the
 * lowest that did not (NaN: none within the steps). */
export async function searchMax(
  start: number,
  tryRate: (rate: number) => Promise<boolean>,
  maxSteps: number,
  stopped: () => boolean = () => false,
): Promise<{ lo: number; hi: number; tries: number }> {
  let lo = NaN;
  let hi = NaN;
  let tries = 0;
  const attempt = async (rate: number): Promise<boolean> => {
    tries++;
    return tryRate(rate);
  };
  let rate = start;
  while (tries < maxSteps && !stopped() && Number.isNaN(lo) && rate >= 1) {
    if (await attempt(rate)) lo = rate;
    else {
      hi = rate;
      rate /= 2;
    }
  }
  while (tries < maxSteps && !stopped() && !Number.isNaN(lo) && Number.isNaN(hi)) {
    rate = lo * 2;
    if (await attempt(rate)) lo = rate;
    else hi = rate;
  }
  while (tries < maxSteps && !stopped() && !Number.isNaN(lo) && !Number.isNaN(hi) && hi / lo > FIND_MAX.resolution) {
    rate = Math.sqrt(lo * hi);
    if (await attempt(rate)) lo = rate;
    else hi = rate;
  }
  return { lo, hi, tries };
}

/** The highest rate with full delivery and bounded p99, on one set of joined clients: doubling from
 * `o.rate` (halving first if that already fails), then bisecting. */
export async function findMax(spec: ServerSpec | TargetSpec, o: RunOptions, maxP99Ms: number, maxSteps = FIND_MAX.maxSteps): Promise<FindMaxRow> {
  let l = await load(spec, o);
  const steps: FindMaxRow['steps'] = [];
  // A window first that is not a step: a server's first seconds of load also compile its code, which
  // would otherwise count against the first rate tried.
  const warmUp = async (): Promise<void> => {
    await measure(l, o.rate, o.seconds);
    await quiet(l.pid, 10_000);
  };
  const joinMs = l.joinMs; // the first join's: later ones follow a restart
  try {
    await warmUp();
    const tryRate = async (rate: number): Promise<boolean> => {
      const window = await measure(l, rate, o.seconds);
      const kept = keptUp(window, maxP99Ms);
      steps.push({ rate, kept, window });
      const dropped = window.clientsLost > 0 ? `, ${window.clientsLost} clients dropped by the server` : '';
      console.error(`  ${spec.name} at ${rate.toFixed(0)} msg/s: ${(window.deliveryRatio * 100).toFixed(2)}% delivered, p99 ${window.p99Ms.toFixed(1)} ms, server ${window.serverCpuPct.toFixed(0)}%, generator ${window.generatorCpuPct.toFixed(0)}%${dropped} → ${kept ? 'kept up' : 'did not'}`);
      if (!kept && isStarted(spec)) {
        // A reliable server that fell behind holds a backlog (or has dropped the clients it was too slow
        // for), which the next window would inherit: start it afresh, with fresh clients.
        await l.stop();
        l = await load(spec, o);
        await warmUp();
      } else await quiet(l.pid, 10_000); // drain what a failed window queued before the next
      return kept;
    };
    // A server of someone else's that dropped clients leaves fewer to measure: the search ends there.
    const { lo, hi } = await searchMax(o.rate, tryRate, maxSteps, () => !isStarted(spec) && steps.some((s) => s.window.clientsLost > 0));
    const atMax = steps.find((s) => s.kept && s.rate === lo)?.window ?? null;
    const failed = steps.find((s) => !s.kept && s.rate === hi)?.window ?? null;
    let limitedBy: FindMaxRow['limitedBy'] = 'not reached';
    if (failed) {
      const gen = failed.generatorCpuPct >= 90 * o.workers;
      const srv = failed.serverCpuPct >= 90;
      limitedBy = failed.clientsLost > 0 ? 'clients dropped' : gen && srv ? 'server and generator' : gen ? 'generator' : srv ? 'server' : 'latency or loss';
    }
    return { server: spec.name, clients: o.clients, senders: o.senders, bytes: o.bytes, maxPerSec: lo, atMax, failed, limitedBy, steps, joinMs };
  } finally {
    await l.stop();
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
    '| server | clients | offered msg/s | deliveries/s | delivered | p50 ms | p99 ms | p99.9 ms | server CPU µs/delivery | user / kernel µs | datagrams / delivery | × C relay | × Node relay | server RSS MiB | KiB per client (joins) | generator CPU % | join ms | settle ms |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.server} | ${r.clients} | ${f(r.offeredPerSec, 0)} | ${f(r.deliveriesPerSec, 0)} | ${f(r.deliveryRatio * 100, 2)}% | ${f(r.p50Ms, 2)} | ${f(r.p99Ms, 2)} | ${f(r.p999Ms, 2)} | ${f(r.serverCpuUsPerDelivery, 2)} | ${f(r.serverUserUsPerDelivery, 2)} / ${f(r.serverKernelUsPerDelivery, 2)} | ${f(r.datagramsPerDelivery, 2)} | ${c ? f(r.serverCpuUsPerDelivery / c.serverCpuUsPerDelivery, 2) : '–'} | ${node ? f(r.serverCpuUsPerDelivery / node.serverCpuUsPerDelivery, 2) : '–'} | ${f(r.serverRssMiB, 0)} | ${f(r.serverKiBPerClient, 1)} | ${f(r.generatorCpuPct, 0)} | ${f(r.joinMs, 0)} | ${f(r.settleMs, 0)} |`,
    );
  }
  return lines.join('\n');
}

function findMaxTable(rows: FindMaxRow[]): string {
  const f = (x: number | undefined, d = 1) => (x !== undefined && Number.isFinite(x) ? x.toFixed(d) : '–');
  const c = rows.find((r) => r.server === 'c-relay');
  const node = rows.find((r) => r.server === 'node-relay');
  const lines = [
    '| server | clients | max msg/s | deliveries/s | × C relay | × Node relay | p99 ms at max | server CPU µs/delivery at max | user / kernel µs | datagrams / delivery | server CPU % at max | generator CPU % at max | next step failed on | windows |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.server} | ${r.clients} | ${f(r.maxPerSec, 0)} | ${f(r.atMax?.deliveriesPerSec, 0)} | ${c ? f(r.maxPerSec / c.maxPerSec, 2) : '–'} | ${node ? f(r.maxPerSec / node.maxPerSec, 2) : '–'} | ${f(r.atMax?.p99Ms, 2)} | ${f(r.atMax?.serverCpuUsPerDelivery, 2)} | ${f(r.atMax?.serverUserUsPerDelivery, 2)} / ${f(r.atMax?.serverKernelUsPerDelivery, 2)} | ${f(r.atMax?.datagramsPerDelivery, 2)} | ${f(r.atMax?.serverCpuPct, 0)} | ${f(r.atMax?.generatorCpuPct, 0)} | ${r.limitedBy} | ${r.steps.length} |`,
    );
  }
  return lines.join('\n');
}

/** --target HOST:PORT: an IPv4 loopback address (the harness reads the server's CPU from this machine's
 * /proc, and its clients bind 127.0.0.1). */
export function parseTarget(text: string): { host: string; port: number } {
  const m = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new Error(`--target ${text}: give a server on this machine as 127.0.0.1:PORT`);
  return { host: m[1] === 'localhost' ? '127.0.0.1' : m[1]!, port };
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
      runs: { type: 'string' },
      workers: { type: 'string', default: '1' },
      'obrol-clients': { type: 'string', default: 'pool' },
      servers: { type: 'string' },
      target: { type: 'string' },
      'target-proto': { type: 'string', default: 'legacy' },
      'target-pid': { type: 'string' },
      'target-name': { type: 'string' },
      'find-max': { type: 'boolean', default: false },
      'max-p99': { type: 'string', default: String(FIND_MAX.defaultMaxP99Ms) },
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
                   [--target 127.0.0.1:PORT [--target-proto legacy|obrol] [--target-pid PID] [--target-name NAME]]
                   [--find-max [--max-p99 MS]]

Starts each server in turn on 127.0.0.1, N simulated clients (over W generator processes), S of them
sending B-byte messages at R messages/s in total, and reports throughput, delivery, latency and the
server's CPU time per delivered message, as ratios to the C and Node relays, with the server's memory
(RSS, and what it grew by per client over the joins), the generator's CPU and the join time. Servers
alternate over K runs (default 3, 1 with --find-max); the table shows medians.

  --obrol-clients pool     obrol's clients are sessions of a pool in each generator process, sharing 8
                           sockets and one timer (default: the generator then keeps up with the server)
  --obrol-clients library  one ObrolClient each, with its own socket and timers, as a program using the
                           client library would
  --target ADDR            also load a server that is already running here (the original Python server,
                           say), speaking --target-proto (default legacy: the original protocol). Its CPU
                           and memory are read from /proc for the process that has the port open, or for
                           --target-pid. With --target, --servers defaults to the two relays.
  --find-max               instead of one rate, search each server for the highest rate with full delivery
                           (${FIND_MAX.minDelivery * 100}%), the generator keeping pace, and p99 at most --max-p99 ms (default
                           ${FIND_MAX.defaultMaxP99Ms}): doubling from R, then bisecting, on the same joined clients, after one
                           warm-up window at R; at most ${FIND_MAX.maxSteps} windows of D seconds per server. A server the
                           harness started is started afresh, with fresh clients, after a window it did not keep up
                           with (obrol's reliable sessions would carry that window's backlog into the next); a
                           --target server is only given time to drain, and its search ends if it drops clients`);
    return 0;
  }
  const num = (name: string, s: string | undefined, d: number, min = 1): number => {
    const v = s === undefined ? d : Number(s);
    if (!Number.isFinite(v) || v < min) throw new Error(`--${name} ${s}: give a number of at least ${min}`);
    return v;
  };
  const o: RunOptions = {
    clients: num('clients', values.clients, 100),
    senders: num('senders', values.senders, 10),
    rate: num('rate', values.rate, 500, 0.1),
    bytes: num('bytes', values.bytes, 100, PAYLOAD_MIN_BYTES),
    seconds: num('seconds', values.seconds, 5, 0.5),
    workers: num('workers', values.workers, 1),
    port: 0,
    obrolClients: values['obrol-clients'] as ObrolClients,
  };
  if (o.senders > o.clients) throw new Error(`--senders ${o.senders}: at most --clients (${o.clients})`);
  if (o.obrolClients !== 'pool' && o.obrolClients !== 'library') throw new Error('--obrol-clients must be pool or library');
  const runs = num('runs', values.runs, values['find-max'] ? 1 : 3);
  const maxP99 = num('max-p99', values['max-p99'], FIND_MAX.defaultMaxP99Ms, 0.1);
  let target: TargetSpec | null = null;
  if (values.target !== undefined) {
    const { host, port } = parseTarget(values.target);
    const proto = values['target-proto'];
    if (proto !== 'legacy' && proto !== 'obrol') throw new Error(`--target-proto ${proto}: legacy or obrol`);
    const pid = values['target-pid'] !== undefined ? num('target-pid', values['target-pid'], 1) : udpPortOwner(port);
    if (pid === null) console.error(`bench: no process here has UDP port ${port} open that this user can see; ${values.target}'s CPU and memory are not measured (--target-pid PID)`);
    target = { name: values['target-name'] ?? values.target, proto, host, port, pid };
  }
  const which = (values.servers ?? (target ? 'c-relay,node-relay' : 'c-relay,node-relay,obrol-legacy,obrol')).split(',').filter((s) => s !== '').map((s) => (s === 'obrol-legacy' ? 'obrol --legacy' : s));
  const known = ['c-relay', 'node-relay', 'obrol --legacy', 'obrol'];
  for (const w of which) if (!known.includes(w)) throw new Error(`--servers: unknown server "${w}" (c-relay, node-relay, obrol-legacy, obrol)`);
  const cRelay = which.includes('c-relay') ? buildC() : null;
  if (which.includes('c-relay') && !cRelay) console.error('bench: no C compiler (cc): the C relay baseline is skipped');
  const data = mkdtempSync(join(tmpdir(), 'obrol-bench-data-'));
  const list: (ServerSpec | TargetSpec)[] = [...specs(which, cRelay, data, values.profile), ...(target ? [target] : [])];
  if (list.length === 0) throw new Error('bench: no server to measure (--servers, --target)');
  const all: Row[] = [];
  const maxima: FindMaxRow[] = [];
  let port = 20000 + Math.floor(Math.random() * 20000);
  try {
    for (let run = 0; run < runs; run++) {
      for (const spec of run % 2 === 0 ? list : [...list].reverse()) {
        if (values['find-max']) {
          const r = await findMax(spec, { ...o, port: port++ }, maxP99);
          maxima.push(r);
          console.error(`run ${run + 1} ${spec.name}: max ${r.maxPerSec.toFixed(0)} msg/s (next step: ${r.limitedBy})`);
        } else {
          const row = await runOne(spec, { ...o, port: port++ });
          all.push(row);
          const dropped = row.clientsLost > 0 ? `; the server dropped ${row.clientsLost} clients: the load is more than it or the generator keeps up with` : '';
          console.error(`run ${run + 1} ${spec.name}: ${row.serverCpuUsPerDelivery.toFixed(2)} µs/delivery, ${(row.deliveryRatio * 100).toFixed(2)}% delivered, p99 ${row.p99Ms.toFixed(2)} ms${dropped}`);
        }
      }
    }
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
  // The obrol servers load the same modules: what they find here is what they run with.
  const sendPath = process.env.OBROL_NO_SENDMMSG === '1' ? 'dgram (OBROL_NO_SENDMMSG=1)' : loadUdpBatchAddon() ? 'sendmmsg' : `dgram (${udpBatchAddonError() ?? ''})`;
  const recvPath = process.env.OBROL_NO_RECVMMSG === '1' ? 'dgram (OBROL_NO_RECVMMSG=1)' : loadUdpBatchAddon() ? 'recvmmsg' : 'dgram';
  const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.version}; obrol sends with ${sendPath} and reads with ${recvPath}, ChaCha20-Poly1305 from ${cryptoBackend.aead} and X25519 from ${cryptoBackend.name}; obrol clients: ${o.obrolClients === 'pool' ? 'sessions of a pool per generator' : 'one ObrolClient each'}`;
  if (values['find-max']) {
    // Per server, the run whose maximum is the median (a real window, not a blend of several).
    const rows = list.map((s) => {
      const rs = maxima.filter((r) => r.server === s.name).sort((a, b) => (Number.isNaN(a.maxPerSec) ? -1 : a.maxPerSec) - (Number.isNaN(b.maxPerSec) ? -1 : b.maxPerSec));
      return rs[Math.floor((rs.length - 1) / 2)]!;
    });
    console.log(`\n${o.clients} clients, ${o.senders} senders, ${o.bytes}-byte messages, --find-max from ${o.rate} msg/s (p99 ≤ ${maxP99} ms, ${FIND_MAX.minDelivery * 100}% delivered), ${o.seconds} s windows × ${runs} runs (the median run); ${machine}\n`);
    console.log(findMaxTable(rows));
    if (values.json) writeFileSync(values.json, JSON.stringify({ machine, options: { ...o, findMax: true, maxP99Ms: maxP99 }, runs: maxima, medians: rows }, null, 2) + '\n');
    return 0;
  }
  const medians: Row[] = list.map((s) => {
    const rs = all.filter((r) => r.server === s.name);
    const m = (k: keyof Window | 'joinMs' | 'settleMs' | 'serverKiBPerClient') => median(rs.map((r) => r[k]));
    return {
      server: s.name,
      clients: o.clients,
      senders: o.senders,
      bytes: o.bytes,
      askedPerSec: o.rate,
      offeredPerSec: m('offeredPerSec'),
      deliveriesPerSec: m('deliveriesPerSec'),
      deliveryRatio: m('deliveryRatio'),
      p50Ms: m('p50Ms'),
      p99Ms: m('p99Ms'),
      p999Ms: m('p999Ms'),
      serverCpuUsPerDelivery: m('serverCpuUsPerDelivery'),
      serverUserUsPerDelivery: m('serverUserUsPerDelivery'),
      serverKernelUsPerDelivery: m('serverKernelUsPerDelivery'),
      datagramsPerDelivery: m('datagramsPerDelivery'),
      clientsLost: Math.max(...rs.map((r) => r.clientsLost)),
      serverCpuPct: m('serverCpuPct'),
      serverRssMiB: m('serverRssMiB'),
      serverKiBPerClient: m('serverKiBPerClient'),
      generatorCpuPct: m('generatorCpuPct'),
      joinMs: m('joinMs'),
      settleMs: m('settleMs'),
    };
  });
  console.log(`\n${o.clients} clients, ${o.senders} senders, ${o.rate} msg/s offered, ${o.bytes}-byte messages, ${o.seconds} s × ${runs} runs (medians); ${machine}\n`);
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
