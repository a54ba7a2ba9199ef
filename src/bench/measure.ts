// Pure pieces of the benchmark harness: payloads that carry their send time, /proc readings, percentiles.

import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

/** The clock shared by every process on the machine, in milliseconds with sub-ms precision. */
export function sharedNow(now: () => number): number {
  return performance.timeOrigin + now();
}

/** A message body of exactly `bytes` bytes (at least 24) carrying a sequence number and its send time. */
export function encodePayload(seq: number, sentAt: number, bytes: number): string {
  const head = `B${seq}:${sentAt.toFixed(3)}:`;
  return head + 'x'.repeat(Math.max(0, bytes - head.length));
}

export function decodePayload(body: string): { seq: number; sentAt: number } | null {
  const m = /^B(\d+):(\d+\.\d+):/.exec(body);
  return m ? { seq: Number(m[1]), sentAt: Number(m[2]) } : null;
}

let ticks: number | null = null;
/** Clock ticks per second for /proc CPU times. */
export function clockTicks(): number {
  if (ticks === null) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** utime + stime of a process in microseconds, from the text of /proc/PID/stat. */
export function parseProcStat(text: string, hz: number): number {
  // The command name is in parentheses and may contain spaces: fields count from the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error('unreadable /proc stat');
  return ((utime + stime) * 1e6) / hz;
}

export function cpuMicros(pid: number): number {
  return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'), clockTicks());
}

/** Resident set size in bytes, from /proc/PID/status. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
