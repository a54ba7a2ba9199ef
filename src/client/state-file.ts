// What a client remembers between runs, per server and name: its rooms and the last message id it saw in
// each, and the last private message id. A restarted client rejoins those rooms and catches up from there.
// A missing or unreadable file just means a fresh start.

import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface ClientState {
  rooms: { room: string; lastSeen: number }[];
  lastPrivate: number;
}

const MAX_ROOMS = 1000;

export function stateFilePath(dir: string, server: string, name: string): string {
  const safe = `${server}-${name.normalize('NFC').toLowerCase()}`.replace(/[^\p{L}\p{N}._-]+/gu, '_').slice(0, 200);
  return join(dir, 'state', `${safe}.json`);
}

export function readState(file: string): ClientState | null {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
  if (typeof raw !== 'object' || raw === null) return null;
  const o = raw as Record<string, unknown>;
  const isId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (!Array.isArray(o.rooms) || !isId(o.lastPrivate)) return null;
  const rooms: ClientState['rooms'] = [];
  for (const r of o.rooms.slice(0, MAX_ROOMS) as unknown[]) {
    if (typeof r !== 'object' || r === null) continue;
    const { room, lastSeen } = r as Record<string, unknown>;
    if (typeof room === 'string' && room.startsWith('#') && isId(lastSeen)) rooms.push({ room, lastSeen });
  }
  return { rooms, lastPrivate: o.lastPrivate };
}

/** Writes atomically (temp file, then rename), so a crash never leaves half a file. */
export function writeState(file: string, state: ClientState): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state) + '\n', { mode: 0o600 });
  renameSync(tmp, file);
}
