// Pure pieces of the benchmark harness: payloads that carry their send time, /proc readings, percentiles.

import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

/** The clock shared by every process on the machine, in milliseconds with sub-ms precision. */
export function sharedNow(now: () => number): number {
  return performance.timeOrigin + now();
}

/** A message body of exactly `bytes` bytes (at least PAYLOAD_MIN_BYTES) carrying a sequence number, the
 * time it was due by the sender's schedule and the time it was sent. A window counts messages by when
 * they were due, so a generator that stalls across a window's edge still offers the window what it asked
 * (the stalled messages leave late, and their latency says so); latency is measured from the send. */
export function encodePayload(seq: number, dueAt: number, sentAt: number, bytes: number): string {
  const head = `B${seq}:${dueAt.toFixed(3)}:${sentAt.toFixed(3)}:`;
  return head + 'x'.repeat(Math.max(0, bytes - head.length));
}

/** The smallest --bytes: a payload's head at a realistic sequence number and clock. */
export const PAYLOAD_MIN_BYTES = 48;

export interface PayloadTimes {
  dueAt: number;
  sentAt: number;
}

export function decodePayload(body: string): ({ seq: number } & PayloadTimes) | null {
  const m = /^B(\d+):(\d+\.\d+):(\d+\.\d+):/.exec(body);
  return m ? { seq: Number(m[1]), dueAt: Number(m[2]), sentAt: Number(m[3]) } : null;
}

/** Reads a decimal `digits.digits` at data[i] followed by ':'; returns the index after the ':', or -1.
 * The value is left in `decimalOut`. */
let decimalOut = 0;
function readDecimal(data: Uint8Array, i: number): number {
  const end = data.length;
  let whole = 0;
  const wholeStart = i;
  while (i < end && data[i]! >= 0x30 && data[i]! <= 0x39) whole = whole * 10 + (data[i++]! - 0x30);
  if (i === wholeStart || i >= end || data[i] !== 0x2e /* . */) return -1;
  i++;
  let frac = 0;
  let scale = 1;
  const fracStart = i;
  while (i < end && data[i]! >= 0x30 && data[i]! <= 0x39) {
    frac = frac * 10 + (data[i++]! - 0x30);
    scale *= 10;
  }
  if (i === fracStart || i >= end || data[i] !== 0x3a /* : */) return -1;
  decimalOut = whole + frac / scale;
  return i + 1;
}

/** The times of a payload that starts at data[at], read from the bytes as decodePayload reads the string
 * (the load generator's receive path, without a string or an object per datagram), into `out`; false
 * when it is not one. */
export function readPayloadTimes(data: Uint8Array, at: number, out: PayloadTimes): boolean {
  const end = data.length;
  let i = at;
  if (i >= end || data[i] !== 0x42 /* B */) return false;
  i++;
  const seqStart = i;
  while (i < end && data[i]! >= 0x30 && data[i]! <= 0x39) i++;
  if (i === seqStart || i >= end || data[i] !== 0x3a /* : */) return false;
  i = readDecimal(data, i + 1);
  if (i < 0) return false;
  const dueAt = decimalOut;
  i = readDecimal(data, i);
  if (i < 0) return false;
  out.dueAt = dueAt;
  out.sentAt = decimalOut;
  return true;
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

/** A process's CPU time in microseconds: user and kernel (all its threads). */
export interface CpuTimes {
  user: number;
  kernel: number;
}

/** utime and stime from the text of /proc/PID/stat. */
export function parseProcStatTimes(text: string, hz: number): CpuTimes {
  // The command name is in parentheses and may contain spaces: fields count from the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error('unreadable /proc stat');
  return { user: (utime * 1e6) / hz, kernel: (stime * 1e6) / hz };
}

/** utime + stime, in microseconds. */
export function parseProcStat(text: string, hz: number): number {
  const t = parseProcStatTimes(text, hz);
  return t.user + t.kernel;
}

export function cpuTimes(pid: number): CpuTimes {
  return parseProcStatTimes(readFileSync(`/proc/${pid}/stat`, 'utf8'), clockTicks());
}

/** Nanoseconds on the CPU, the first field of /proc/PID/task/TID/schedstat. */
export function parseSchedstat(text: string): number {
  const ns = Number(text.slice(0, text.indexOf(' ')));
  if (!Number.isSafeInteger(ns) || ns < 0) throw new Error('unreadable schedstat');
  return ns;
}

/** The process's CPU time in nanoseconds: the sum of its threads' schedstat, exact for a thread asleep when
 * read and at most a scheduler tick behind for one running. NaN where the kernel keeps none.
 * /proc/PID/stat truncates to clock ticks (10 ms), which at 1,000 clients and 10 msg/s over a 5 s window
 * is 0.2 µs per delivery, 3–8% of what is measured. A thread that exits meanwhile takes its time with it
 * here; the benchmark's servers keep theirs. */
export function cpuNanos(pid: number): number {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return NaN;
  }
  let sum = 0;
  for (const tid of tids) {
    try {
      sum += parseSchedstat(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && existsSync(`/proc/${pid}/task`)) continue; // a thread gone
      return NaN;
    }
  }
  return sum;
}

/** CPU time in microseconds (all threads): from schedstat where the kernel keeps it, else /proc/PID/stat. */
export function cpuMicros(pid: number): number {
  const ns = cpuNanos(pid);
  if (Number.isFinite(ns)) return ns / 1000;
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

/** The socket inodes bound to a local UDP port, from the text of /proc/net/udp or /proc/net/udp6. */
export function udpInodes(table: string, port: number): number[] {
  const out: number[] = [];
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
    const local = f[1];
    if (local === undefined || f[9] === undefined) continue;
    const colon = local.lastIndexOf(':');
    if (parseInt(local.slice(colon + 1), 16) !== port) continue;
    const inode = Number(f[9]);
    if (Number.isInteger(inode) && inode > 0) out.push(inode);
  }
  return out;
}

/** The PID of a process on this machine with a UDP socket bound to `port`, or null when none can be seen
 * (another user's process hides its file descriptors). */
export function udpPortOwner(port: number): number | null {
  const inodes = new Set<number>();
  for (const t of ['/proc/net/udp', '/proc/net/udp6']) {
    try {
      for (const i of udpInodes(readFileSync(t, 'utf8'), port)) inodes.add(i);
    } catch {
      // no IPv6 table
    }
  }
  if (inodes.size === 0) return null;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to read
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m && inodes.has(Number(m[1]))) return Number(pid);
    }
  }
  return null;
}
