// `npm run bench:idle` / `obrol bench idle`: N idle obrol sessions on one server, and what they cost it.
//
// Starts `obrol serve` on 127.0.0.1 and W generator processes (idle-worker.ts) that open N sessions over a
// few shared UDP sockets, paced, and keep every one alive with its keepalives. Once all are open (and the
// server has settled), it measures over a window longer than the idle timeout: the server's RSS
// (/proc/PID/status VmRSS) and CPU (utime + stime from /proc/PID/stat) as % of one core, the generators'
// CPU, and whether every session is still alive at the end (no close seen by its client, and an answer from
// the server within the last keepalive period). Also the handshake rate reached while opening.

import { fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { IDLE_TIMEOUT_MS, KEEPALIVE_MS, MAX_SESSIONS } from '../limits.js';
import { cpuMicros, percentile, rssBytes } from './measure.js';
import type { OpenSpec, RoomMode, ToIdleWorker, WorkerReport, WorkerStatus } from './idle-worker.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const CLI = join(root, 'dist', 'cli', 'main.js');

export interface IdleOptions {
  sessions: number;
  workers: number;
  /** UDP sockets per worker, shared by its sessions. */
  sockets: number;
  /** Handshakes per second, in total, and at most this many in flight per worker. */
  rate: number;
  inflight: number;
  /** The measured window, after every session is open. */
  seconds: number;
  keepaliveMs: number;
  /** The server's --idle-timeout (whole seconds), also the clients' idle timeout. */
  idleTimeoutS: number;
  rooms: RoomMode;
  /** Give up opening after this long (the sessions opened by then are measured). */
  openTimeoutS: number;
  /** Write a V8 CPU profile of the server here (when it stops). */
  profileDir?: string;
  /** Take a heap snapshot of the server here after the window. */
  heapSnapshotDir?: string;
  /** After the window, read the server's memory (V8 heap, external) before and after a full GC. */
  heapStats?: boolean;
  log?: (line: string) => void;
}

export interface IdleResult {
  sessions: number;
  rooms: string;
  workers: number;
  socketsPerWorker: number;
  keepaliveMs: number;
  idleTimeoutS: number;
  opened: number;
  failed: number;
  failures: Record<string, number>;
  openSeconds: number;
  handshakesPerSec: number;
  handshakeP50Ms: number;
  handshakeP99Ms: number;
  /** Server CPU time per opened session while opening (handshake, registration, room join), µs. */
  serverCpuUsPerOpen: number;
  /** CPU while opening, % of one core: the server's, and the generators' (all processes). */
  openServerCpuPct: number;
  openGeneratorCpuPct: number;
  settleMs: number;
  windowSeconds: number;
  /** Open at the end of the window, and of those, answered by the server within a PING interval (keepalivePingMs). */
  alive: number;
  heardRecently: number;
  maxSilenceMs: number;
  closedAfterOpen: Record<string, number>;
  closedInWindow: Record<string, number>;
  serverRssBaseMiB: number;
  serverRssMiB: number;
  serverRssPeakMiB: number;
  /** (RSS at the end − RSS before any session) / sessions alive, and RSS / sessions alive. */
  rssPerSessionKiB: number;
  rssTotalPerSessionKiB: number;
  /** Server CPU in the window, % of one core. */
  serverCpuPct: number;
  /** Datagrams the clients sent and packets they received per second in the window (keepalives, PING or
   * NAT_KEEPALIVE, and the acks to the PINGs). */
  clientPacketsPerSec: number;
  serverPacketsPerSec: number;
  serverCpuUsPerKeepalive: number;
  /** Application messages the sessions received in the window (0 when idle really is idle). */
  windowMessages: number;
  generatorCpuPct: number;
  generatorRssMiB: number;
  timerLateMaxMs: number;
  timerLateOver1s: number;
  heapSnapshotBytes: number | null;
  /** --heap-stats: the server's process.memoryUsage() before and after a full GC, at the end of the window. */
  serverMemory: { base: NodeJS.MemoryUsage; before: NodeJS.MemoryUsage; after: NodeJS.MemoryUsage } | null;
  /** The processes the run started (all stopped when it returns). */
  pids: { server: number; workers: number[] };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** A guard for a race: it must not keep the process alive once the race is won. */
const guard = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());

function ask<T>(w: ChildProcess, m: ToIdleWorker, want: string, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    if (!w.connected) return reject(new Error(`generator ${w.pid} is gone`));
    const timer = setTimeout(() => {
      w.off('message', on);
      reject(new Error(`generator ${w.pid} did not answer ${m.type} within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (r: { type: string; text?: string }): void => {
      if (r.type === 'error') {
        clearTimeout(timer);
        w.off('message', on);
        reject(new Error(r.text));
      } else if (r.type === want) {
        clearTimeout(timer);
        w.off('message', on);
        resolve(r as T);
      }
    };
    w.on('message', on);
    w.send(m);
  });
}

function waitFor(w: ChildProcess, want: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      w.off('message', on);
      resolve(false);
    }, timeoutMs);
    const on = (r: { type: string }): void => {
      if (r.type !== want) return;
      clearTimeout(timer);
      w.off('message', on);
      resolve(true);
    };
    w.on('message', on);
  });
}

function startServer(o: IdleOptions, dataDir: string): Promise<{ proc: ChildProcess; port: number }> {
  const node: string[] = [];
  if (o.profileDir) node.push('--cpu-prof', '--cpu-prof-dir', resolve(o.profileDir));
  if (o.heapSnapshotDir) node.push('--heapsnapshot-signal=SIGUSR2');
  else if (o.heapStats) node.push('--expose-gc', '--import', pathToFileURL(join(here, 'heap-probe.js')).href);
  // Every session comes from 127.0.0.1 at a generator's pace: lift the per-IP limits (flags, not defaults).
  const args = [
    ...node, CLI, 'serve', '--host', '127.0.0.1', '--port', '0', '--data', dataDir, '--memory',
    '--sessions-per-ip', '1000000', '--handshakes-per-ip', '1000000', '--idle-timeout', String(o.idleTimeoutS),
  ];
  const proc = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'inherit'],
    cwd: o.heapSnapshotDir ? resolve(o.heapSnapshotDir) : dataDir,
    env: { ...process.env, OBROL_HEAP_PROBE: join(dataDir, 'memory.jsonl') },
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`the server did not start within 15 s: ${out}`));
    }, 15_000);
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString('utf8');
      const m = /listening on udp [^\s]+:(\d+),/.exec(out);
      if (m) {
        clearTimeout(timer);
        proc.stdout!.removeAllListeners('data');
        proc.stdout!.resume(); // keep draining what it prints later
        resolve({ proc, port: Number(m[1]) });
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code}) before it was ready: ${out}`));
    });
  });
}

function roomsLabel(r: RoomMode): string {
  return r.kind === 'rooms' ? `rooms of ${r.size}` : r.kind;
}

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

export async function runIdle(o: IdleOptions): Promise<IdleResult> {
  const log = o.log ?? ((l: string) => console.error(l));
  if (o.sessions > MAX_SESSIONS) throw new Error(`--sessions ${o.sessions} is over the server's MAX_SESSIONS (${MAX_SESSIONS})`);
  const dataDir = mkdtempSync(join(tmpdir(), 'obrol-idle-'));
  const workers: ChildProcess[] = [];
  let server: ChildProcess | null = null;
  let stopping = false;
  let workerDied: string | null = null;
  const check = (): void => {
    if (workerDied) throw new Error(workerDied);
  };
  // Should this process die without reaching `finally`, it takes its children with it.
  const killAll = (): void => {
    for (const p of [...workers, server]) if (p && p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  };
  process.once('exit', killAll);
  try {
    const s = await startServer(o, dataDir);
    server = s.proc;
    const spid = server.pid!;
    await sleep(500);
    const rssBase = rssBytes(spid);
    let rssPeak = rssBase;
    const probeFile = join(dataDir, 'memory.jsonl');
    const memBase = o.heapStats && !o.heapSnapshotDir ? await memoryProbe(server, probeFile, 0) : null;

    for (let i = 0; i < o.workers; i++) {
      const w = fork(join(here, 'idle-worker.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      w.on('error', () => {
        /* a send to a generator that died: its exit is what counts */
      });
      w.once('exit', (code, signal) => {
        if (!stopping) workerDied ??= `generator ${i} (pid ${w.pid}) exited (${signal ?? code}) during the run`;
      });
      workers.push(w);
    }
    const counts = workers.map((_, i) => Math.floor(o.sessions / o.workers) + (i < o.sessions % o.workers ? 1 : 0));
    // Opening is timed from when every generator has loaded and answers (about 150 ms after the fork):
    // starting node is the generator's cost, not the server's.
    await Promise.all(workers.map((w) => ask<{ status: WorkerStatus }>(w, { type: 'status' }, 'status', 30_000)));
    const openCpu0 = cpuMicros(spid);
    const openGen0 = workers.reduce((n, w) => n + cpuMicros(w.pid!), 0);
    const t0 = performance.now();
    const done = workers.map((w) => waitFor(w, 'opened', (o.openTimeoutS + 60) * 1000));
    for (let i = 0; i < workers.length; i++) {
      const spec: OpenSpec = {
        host: '127.0.0.1',
        port: s.port,
        worker: i,
        count: counts[i]!,
        rate: o.rate / o.workers,
        inflight: o.inflight,
        sockets: o.sockets,
        keepaliveMs: o.keepaliveMs,
        idleTimeoutMs: o.idleTimeoutS * 1000,
        rooms: o.rooms,
      };
      workers[i]!.send({ type: 'open', spec } satisfies ToIdleWorker);
    }
    // Progress, and the opening deadline: after it, no new handshakes start and what is open is measured.
    let allDone = false;
    void Promise.all(done).then(() => (allDone = true));
    let stopped = false;
    let lastLog = performance.now();
    let lastCpu = openCpu0;
    while (!allDone && performance.now() - t0 < (o.openTimeoutS + 60) * 1000) {
      await sleep(250);
      check();
      rssPeak = Math.max(rssPeak, rssBytes(spid));
      if (!stopped && performance.now() - t0 > o.openTimeoutS * 1000) {
        stopped = true;
        log(`idle: opening deadline (${o.openTimeoutS} s) passed: no new handshakes; measuring what is open`);
        for (const w of workers) if (w.connected) w.send({ type: 'stop-opening' } satisfies ToIdleWorker);
      }
      if (performance.now() - lastLog >= 5000 && !allDone) {
        const st = await Promise.all(workers.map((w) => ask<{ status: WorkerStatus }>(w, { type: 'status' }, 'status', 30_000)));
        const sum = st.reduce((a, x) => ({ opened: a.opened + x.status.opened, failed: a.failed + x.status.failed, inflight: a.inflight + x.status.inflight }), { opened: 0, failed: 0, inflight: 0 });
        const cpu = cpuMicros(spid);
        const dt = performance.now() - lastLog;
        log(`idle: ${((performance.now() - t0) / 1000).toFixed(0)} s: ${sum.opened} open, ${sum.failed} failed, ${sum.inflight} in flight; server ${(rssBytes(spid) / 2 ** 20).toFixed(0)} MiB, ${(((cpu - lastCpu) / (dt * 1000)) * 100).toFixed(0)}% CPU`);
        lastCpu = cpu;
        lastLog = performance.now();
      }
    }
    if (!allDone) throw new Error('the generators did not finish opening');
    const openCpu1 = cpuMicros(spid);
    const openGen1 = workers.reduce((n, w) => n + cpuMicros(w.pid!), 0);
    const openUs = (performance.now() - t0) * 1000;
    const openedStatus = await Promise.all(workers.map((w) => ask<{ status: WorkerStatus }>(w, { type: 'status' }, 'status', 30_000)));
    const openedNow = openedStatus.reduce((n, x) => n + x.status.opened, 0);
    log(`idle: ${openedNow} of ${o.sessions} sessions open after ${((performance.now() - t0) / 1000).toFixed(1)} s; settling`);

    // Let the server finish what the opening left it (presence batches to the sessions) before the window:
    // idle means the sessions receive nothing but acks, for 1 s running.
    const settleStart = performance.now();
    const messages = async (): Promise<number> =>
      (await Promise.all(workers.map((w) => ask<{ status: WorkerStatus }>(w, { type: 'status' }, 'status', 30_000)))).reduce((n, x) => n + x.status.messages, 0);
    let seen = await messages();
    for (let quiet = 0; quiet < 2 && performance.now() - settleStart < 60_000; ) {
      await sleep(500);
      check();
      rssPeak = Math.max(rssPeak, rssBytes(spid));
      const now = await messages();
      quiet = now === seen ? quiet + 1 : 0;
      seen = now;
    }
    const settleMs = performance.now() - settleStart;

    await Promise.all(workers.map((w) => ask(w, { type: 'mark' }, 'marked', 30_000)));
    const w0 = performance.now();
    const cpu0 = cpuMicros(spid);
    const gen0 = workers.reduce((n, w) => n + cpuMicros(w.pid!), 0);
    log(`idle: measuring for ${o.seconds} s`);
    const end = w0 + o.seconds * 1000;
    let nextLog = w0 + 15_000;
    while (performance.now() < end) {
      await sleep(Math.min(1000, Math.max(0, end - performance.now())));
      check();
      rssPeak = Math.max(rssPeak, rssBytes(spid));
      if (performance.now() >= nextLog && performance.now() < end - 1000) {
        const c = cpuMicros(spid);
        log(`idle: window ${((performance.now() - w0) / 1000).toFixed(0)} s: server ${(rssBytes(spid) / 2 ** 20).toFixed(0)} MiB, ${(((c - cpu0) / ((performance.now() - w0) * 1000)) * 100).toFixed(1)}% CPU so far`);
        nextLog += 15_000;
      }
    }
    const cpu1 = cpuMicros(spid);
    const gen1 = workers.reduce((n, w) => n + cpuMicros(w.pid!), 0);
    const windowUs = (performance.now() - w0) * 1000;
    const rssEnd = rssBytes(spid);
    rssPeak = Math.max(rssPeak, rssEnd);
    const reports = (await Promise.all(workers.map((w) => ask<{ report: WorkerReport }>(w, { type: 'report' }, 'report', 60_000)))).map((r) => r.report);

    let heapSnapshotBytes: number | null = null;
    if (o.heapSnapshotDir) heapSnapshotBytes = await heapSnapshot(server, resolve(o.heapSnapshotDir), log);
    let serverMemory: IdleResult['serverMemory'] = null;
    const memEnd = memBase ? await memoryProbe(server, probeFile, 1) : null;
    if (memBase && memEnd) serverMemory = { base: memBase.after, before: memEnd.before, after: memEnd.after };

    const sum = (k: keyof WorkerReport): number => reports.reduce((n, r) => n + (r[k] as number), 0);
    const failures: Record<string, number> = {};
    const closedAfterOpen: Record<string, number> = {};
    const closedInWindow: Record<string, number> = {};
    for (const r of reports) {
      addCounts(failures, r.failures);
      addCounts(closedAfterOpen, r.closedAfterOpen);
      addCounts(closedInWindow, r.closedInWindow);
    }
    const hs = reports.flatMap((r) => r.handshakeMs).sort((a, b) => a - b);
    const opened = sum('opened');
    const openSeconds = Math.max(...reports.map((r) => r.openSpanMs)) / 1000;
    const alive = sum('alive');
    const windowS = windowUs / 1e6;
    const clientPackets = sum('windowPacketsSent');
    return {
      sessions: o.sessions,
      rooms: roomsLabel(o.rooms),
      workers: o.workers,
      socketsPerWorker: o.sockets,
      keepaliveMs: o.keepaliveMs,
      idleTimeoutS: o.idleTimeoutS,
      opened,
      failed: sum('failed'),
      failures,
      openSeconds,
      handshakesPerSec: openSeconds > 0 ? opened / openSeconds : NaN,
      handshakeP50Ms: percentile(hs, 50),
      handshakeP99Ms: percentile(hs, 99),
      serverCpuUsPerOpen: opened > 0 ? (openCpu1 - openCpu0) / opened : NaN,
      openServerCpuPct: ((openCpu1 - openCpu0) / openUs) * 100,
      openGeneratorCpuPct: ((openGen1 - openGen0) / openUs) * 100,
      settleMs,
      windowSeconds: windowS,
      alive,
      heardRecently: sum('heardRecently'),
      maxSilenceMs: Math.max(...reports.map((r) => r.maxSilenceMs)),
      closedAfterOpen,
      closedInWindow,
      serverRssBaseMiB: rssBase / 2 ** 20,
      serverRssMiB: rssEnd / 2 ** 20,
      serverRssPeakMiB: rssPeak / 2 ** 20,
      rssPerSessionKiB: alive > 0 ? (rssEnd - rssBase) / alive / 1024 : NaN,
      rssTotalPerSessionKiB: alive > 0 ? rssEnd / alive / 1024 : NaN,
      serverCpuPct: ((cpu1 - cpu0) / windowUs) * 100,
      clientPacketsPerSec: clientPackets / windowS,
      serverPacketsPerSec: sum('windowPacketsReceived') / windowS,
      serverCpuUsPerKeepalive: clientPackets > 0 ? (cpu1 - cpu0) / clientPackets : NaN,
      windowMessages: sum('windowMessages'),
      generatorCpuPct: ((gen1 - gen0) / windowUs) * 100,
      generatorRssMiB: sum('rssBytes') / 2 ** 20,
      timerLateMaxMs: Math.max(...reports.map((r) => r.timerLateMaxMs)),
      timerLateOver1s: sum('timerLateOver1s'),
      heapSnapshotBytes,
      serverMemory,
      pids: { server: spid, workers: workers.map((w) => w.pid!) },
    };
  } finally {
    stopping = true;
    for (const w of workers) if (w.connected) w.send({ type: 'stop' } satisfies ToIdleWorker);
    await sleep(300);
    await Promise.all(
      workers.map(async (w) => {
        if (w.exitCode !== null || w.signalCode !== null) return;
        const exited = new Promise((r) => w.once('exit', r));
        w.kill('SIGKILL');
        await Promise.race([exited, guard(5000)]);
      }),
    );
    if (server && server.exitCode === null && server.signalCode === null) {
      const srv = server;
      const exited = new Promise((r) => srv.once('exit', r));
      srv.kill('SIGTERM');
      // A CPU profile is written on exit; give it time, then make sure.
      if ((await Promise.race([exited.then(() => true), guard(30_000).then(() => false)])) === false) {
        srv.kill('SIGKILL');
        await exited;
      }
    }
    process.off('exit', killAll);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** SIGUSR2 to heap-probe.js: the server's memory before and after a full GC (the probe's `n`th line). */
async function memoryProbe(server: ChildProcess, file: string, n: number): Promise<{ before: NodeJS.MemoryUsage; after: NodeJS.MemoryUsage } | null> {
  server.kill('SIGUSR2');
  for (const t0 = performance.now(); performance.now() - t0 < 60_000; ) {
    await sleep(250);
    if (!existsSync(file)) continue;
    const line = readFileSync(file, 'utf8').split('\n')[n];
    if (line) return JSON.parse(line) as { before: NodeJS.MemoryUsage; after: NodeJS.MemoryUsage };
  }
  return null;
}

/** SIGUSR2 (--heapsnapshot-signal): waits for the snapshot file to stop growing; its size in bytes. */
async function heapSnapshot(server: ChildProcess, dir: string, log: (l: string) => void): Promise<number | null> {
  const before = new Set(readdirSync(dir));
  log('idle: taking a heap snapshot of the server');
  server.kill('SIGUSR2');
  const t0 = performance.now();
  let last = -1;
  let stable = 0;
  while (performance.now() - t0 < 300_000) {
    await sleep(1000);
    const f = readdirSync(dir).find((n) => n.endsWith('.heapsnapshot') && !before.has(n));
    if (!f) continue;
    const size = statSync(join(dir, f)).size;
    stable = size === last && size > 0 ? stable + 1 : 0;
    last = size;
    if (stable >= 3) {
      log(`idle: heap snapshot ${join(dir, f)}: ${(size / 2 ** 20).toFixed(0)} MiB`);
      return size;
    }
  }
  return null;
}

const f = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : '–');

export function idleTable(rows: IdleResult[]): string {
  const lines = [
    '| sessions | rooms | opened | alive at end | closed in window | handshakes/s | handshake p50 / p99 ms | server RSS MiB | RSS per session KiB (total / over base) | server CPU % of a core | keepalive packets/s | server µs per keepalive | generator CPU % |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const closed = Object.values(r.closedInWindow).reduce((a, b) => a + b, 0);
    lines.push(
      `| ${r.sessions} | ${r.rooms} | ${r.opened} | ${r.alive} (${r.heardRecently} answered) | ${closed} | ${f(r.handshakesPerSec, 0)} | ${f(r.handshakeP50Ms, 1)} / ${f(r.handshakeP99Ms, 1)} | ${f(r.serverRssMiB, 0)} | ${f(r.rssTotalPerSessionKiB, 2)} / ${f(r.rssPerSessionKiB, 2)} | ${f(r.serverCpuPct, 1)} | ${f(r.clientPacketsPerSec, 0)} | ${f(r.serverCpuUsPerKeepalive, 1)} | ${f(r.generatorCpuPct, 0)} |`,
    );
  }
  return lines.join('\n');
}

export const IDLE_USAGE = `usage: obrol bench idle [--sessions N] [--workers W] [--sockets S] [--rate R] [--inflight K]
                        [--seconds D] [--rooms lobby|none|K] [--keepalive SECONDS] [--idle-timeout SECONDS]
                        [--open-timeout SECONDS] [--json FILE] [--profile DIR] [--heap-snapshot DIR] [--heap-stats]

Starts \`obrol serve\` on 127.0.0.1 and opens N idle sessions to it from W generator processes (S UDP
sockets each, sessions multiplexed over them by connection id), at most R handshakes per second in total
and K in flight per worker. Each session registers a unique name, then only sends its keepalives. Once all
are open, measures for D seconds (default 60: longer than the idle timeout): server RSS and CPU (% of one
core), sessions still alive, generator CPU; and the handshake rate reached while opening.

  --rooms lobby   every session lands in #lobby, as every obrol client does (default)
  --rooms none    sessions in no room (hello with resume): the session layer's cost alone
  --rooms K       sessions join rooms of K members each (#idle-W-n)
  --keepalive S   the clients' keepalive interval (default ${KEEPALIVE_MS / 1000})
  --idle-timeout S  the server's --idle-timeout and the clients' (default ${IDLE_TIMEOUT_MS / 1000})
  --profile DIR   the server writes a V8 CPU profile to DIR when it stops
  --heap-snapshot DIR  a heap snapshot of the server after the window, in DIR
  --heap-stats    the server's V8 heap and external memory after the window, before and after a full GC`;

export async function idleMain(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      sessions: { type: 'string', default: '10000' },
      workers: { type: 'string' },
      sockets: { type: 'string', default: '4' },
      rate: { type: 'string', default: '1000' },
      inflight: { type: 'string', default: '100' },
      seconds: { type: 'string', default: '60' },
      rooms: { type: 'string', default: 'lobby' },
      keepalive: { type: 'string' },
      'idle-timeout': { type: 'string' },
      'open-timeout': { type: 'string' },
      json: { type: 'string' },
      profile: { type: 'string' },
      'heap-snapshot': { type: 'string' },
      'heap-stats': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(IDLE_USAGE);
    return 0;
  }
  const num = (name: string, s: string | undefined, d: number, min: number, max: number): number => {
    const x = s === undefined ? d : Number(s);
    if (!Number.isFinite(x) || x < min || x > max) throw new Error(`--${name} must be a number from ${min} to ${max}`);
    return x;
  };
  const sessions = Math.floor(num('sessions', values.sessions, 10_000, 1, MAX_SESSIONS));
  const roomsArg = values.rooms!;
  const rooms: RoomMode =
    roomsArg === 'lobby' ? { kind: 'lobby' } : roomsArg === 'none' ? { kind: 'none' } : { kind: 'rooms', size: Math.floor(num('rooms', roomsArg, 0, 1, MAX_SESSIONS)) };
  const rate = num('rate', values.rate, 1000, 1, 1e6);
  const o: IdleOptions = {
    sessions,
    workers: Math.floor(num('workers', values.workers, sessions > 20_000 ? 2 : 1, 1, 16)),
    sockets: Math.floor(num('sockets', values.sockets, 4, 1, 256)),
    rate,
    inflight: Math.floor(num('inflight', values.inflight, 100, 1, 100_000)),
    seconds: num('seconds', values.seconds, 60, 1, 86_400),
    keepaliveMs: num('keepalive', values.keepalive, KEEPALIVE_MS / 1000, 0.1, 3600) * 1000,
    idleTimeoutS: Math.floor(num('idle-timeout', values['idle-timeout'], IDLE_TIMEOUT_MS / 1000, 1, 86_400)),
    rooms,
    openTimeoutS: num('open-timeout', values['open-timeout'], Math.ceil((sessions / rate) * 3 + 60), 1, 86_400),
    profileDir: values.profile,
    heapSnapshotDir: values['heap-snapshot'],
    heapStats: values['heap-stats'] === true,
  };
  // Interrupted: exit, so the run's exit hook stops the server and the generators.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(sig === 'SIGINT' ? 130 : 143));
  if (o.seconds * 1000 <= o.idleTimeoutS * 1000) console.error(`idle: note: a ${o.seconds} s window is not longer than the ${o.idleTimeoutS} s idle timeout`);
  const r = await runIdle(o);
  const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.version}`;
  console.log(
    `\n${r.sessions} idle sessions (${r.rooms}), ${r.workers} generator process(es) × ${r.socketsPerWorker} sockets, keepalive ${r.keepaliveMs / 1000} s, idle timeout ${r.idleTimeoutS} s, ${f(r.windowSeconds, 0)} s window; ${machine}\n`,
  );
  console.log(idleTable([r]));
  const closed = Object.entries(r.closedAfterOpen).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  const fails = Object.entries(r.failures).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  console.log(
    `\nopening: ${f(r.openSeconds, 1)} s, ${f(r.serverCpuUsPerOpen, 0)} µs of server CPU per session; server ${f(r.openServerCpuPct, 0)}% and generators ${f(r.openGeneratorCpuPct, 0)}% CPU; failed handshakes: ${fails}; settle ${f(r.settleMs / 1000, 1)} s` +
      `\nserver RSS: ${f(r.serverRssBaseMiB, 0)} MiB before the sessions, peak ${f(r.serverRssPeakMiB, 0)} MiB; closes after opening: ${closed}; longest silence ${f(r.maxSilenceMs / 1000, 1)} s` +
      `\ngenerators: ${f(r.generatorRssMiB, 0)} MiB RSS, timer late by up to ${f(r.timerLateMaxMs, 0)} ms (${r.timerLateOver1s} deadlines over 1 s); ${r.windowMessages} messages to idle sessions in the window`,
  );
  const m = r.serverMemory;
  if (m) {
    const mib = (x: number): string => f(x / 2 ** 20, 0);
    console.log(
      `server memory: RSS ${mib(m.before.rss)} MiB; V8 heap ${mib(m.before.heapUsed)} MiB used of ${mib(m.before.heapTotal)} committed, ${mib(m.after.heapUsed)} MiB live after a full GC` +
        ` (${f((m.after.heapUsed - m.base.heapUsed) / Math.max(1, r.alive), 0)} B per session over ${mib(m.base.heapUsed)} MiB before the sessions);` +
        ` outside the heap: external ${mib(m.before.external)} MiB (array buffers ${mib(m.before.arrayBuffers)} MiB); RSS after the GC ${mib(m.after.rss)} MiB`,
    );
  }
  if (values.json) writeFileSync(values.json, JSON.stringify({ machine, options: { ...o, log: undefined }, result: r }, null, 2) + '\n');
  const ok = r.opened === r.sessions && r.alive === r.opened && r.heardRecently === r.alive;
  return ok ? 0 : 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  idleMain(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
