// Runs the real `obrol` CLI (the built dist/) as a child process and watches its output line by line.
import { after } from 'node:test';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as pathJoin } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface Proc {
  proc: ChildProcessWithoutNullStreams;
  stdout: string[];
  stderr: string[];
  /** Resolves with the first stdout line matching, or rejects after timeoutMs with what was seen. */
  waitFor(match: string | RegExp, timeoutMs?: number, stream?: 'stdout' | 'stderr'): Promise<string>;
  /** Resolves once `count` stdout lines exist. */
  waitLines(count: number, timeoutMs?: number): Promise<string[]>;
  send(line: string): void;
  end(): void;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
}

/** Every process a test started and has not seen exit: a failed test must not leave clients running
 * (a client reconnects forever, and its pipes would keep the test file from ever finishing). */
const running = new Set<ChildProcessWithoutNullStreams>();
after(() => {
  for (const p of running) p.kill('SIGKILL');
});

export function run(args: string[], env: Record<string, string> = {}): Proc {
  const proc = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env, NO_COLOR: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  running.add(proc);
  proc.on('exit', () => running.delete(proc));
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters = new Set<() => void>();
  const collect = (into: string[]) => {
    let partial = '';
    return (chunk: Buffer) => {
      partial += chunk.toString('utf8');
      const parts = partial.split('\n');
      partial = parts.pop()!;
      into.push(...parts);
      for (const w of waiters) w();
    };
  };
  proc.stdout.on('data', collect(stdout));
  proc.stderr.on('data', collect(stderr));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => {
      // Let the last output chunks arrive before anyone inspects them.
      setImmediate(() => {
        for (const w of waiters) w();
        resolve({ code, signal });
      });
    }),
  );
  const until = <T>(check: () => T | undefined, timeoutMs: number, what: () => string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const tryNow = (): boolean => {
        const v = check();
        if (v === undefined) return false;
        waiters.delete(onChange);
        clearTimeout(timer);
        resolve(v);
        return true;
      };
      const onChange = (): void => void tryNow();
      const timer = setTimeout(() => {
        waiters.delete(onChange);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what()}\nstdout:\n${stdout.join('\n')}\nstderr:\n${stderr.join('\n')}`));
      }, timeoutMs);
      waiters.add(onChange);
      tryNow();
    });
  return {
    proc,
    stdout,
    stderr,
    waitFor(match, timeoutMs = 10_000, stream = 'stdout') {
      const lines = stream === 'stdout' ? stdout : stderr;
      const ok = (l: string) => (typeof match === 'string' ? l === match : match.test(l));
      return until(() => lines.find(ok), timeoutMs, () => `${stream} line ${String(match)}`);
    },
    waitLines(count, timeoutMs = 10_000) {
      return until(() => (stdout.length >= count ? stdout.slice() : undefined), timeoutMs, () => `${count} stdout lines`);
    },
    send(line) {
      proc.stdin.write(line + '\n');
    },
    end() {
      proc.stdin.end();
    },
    exited,
    kill(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    },
  };
}

export function tempDir(prefix = 'obrol-test-'): { path: string; remove(): void } {
  const path = mkdtempSync(pathJoin(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Starts `obrol serve` on an ephemeral loopback port; returns it once it prints its ready line. */
export async function startServer(extra: string[] = [], dataDir?: string): Promise<{ p: Proc; port: number; dir: string; stop(): Promise<void> }> {
  const dir = dataDir ?? tempDir('obrol-server-').path;
  const p = run(['serve', '--host', '127.0.0.1', '--port', '0', '--data', dir, ...extra]);
  const line = await p.waitFor(/listening on udp/, 15_000);
  const port = Number(/:(\d+),/.exec(line)![1]);
  return {
    p,
    port,
    dir,
    async stop() {
      p.kill('SIGTERM');
      await p.exited;
      if (dataDir === undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts `obrol join NAME@127.0.0.1:PORT` in line mode with its own config dir. */
export function join(name: string, port: number, extra: string[] = [], configDir?: string): Proc & { configDir: string } {
  const dir = configDir ?? tempDir('obrol-client-').path;
  const p = run(['join', `${name}@127.0.0.1:${port}`, ...extra], { OBROL_CONFIG_DIR: dir });
  return Object.assign(p, { configDir: dir });
}
