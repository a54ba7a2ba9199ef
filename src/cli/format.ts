// How chat events print: the original chat's plain lines, or one JSON object per event.
import type { ChatEvent } from '../client/client.js';
import { LOBBY } from '../client/client.js';

const LEAVE_SUFFIX: Record<string, string> = { timeout: ' (timed out)', lost: ' (connection lost)', kicked: ' (kicked)' };

/** Local HH:MM of a server timestamp. */
export function clock(ts: number): string {
  const d = new Date(ts);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

function roomPrefix(room: string): string {
  return room === '' || room.toLowerCase() === LOBBY ? '' : `[${room}] `;
}

/** The other party of a private message, seen by `me`. */
export function peerOf(ev: { from: string; to: string }, me: string | null): string {
  return me !== null && ev.from.toLowerCase() === me.toLowerCase() ? ev.to : ev.from;
}

/**
 * The original formats (`alice: hi`, `bob has joined the chat`); rooms other than #lobby are prefixed
 * with `[#room] `, private conversations with `[@name] `, replayed history with `[history HH:MM] `.
 * `me` is our current name (private messages are labelled with the other party).
 */
export function formatLine(ev: ChatEvent, me: string | null = null): string | null {
  switch (ev.type) {
    case 'joined':
      return `${roomPrefix(ev.room)}${ev.name} has joined the chat`;
    case 'left': {
      if (ev.why === 'part') return `${roomPrefix(ev.room)}${ev.name} has left ${ev.room}${ev.reason ? ` (${ev.reason})` : ''}`;
      const suffix = ev.why === 'quit' ? (ev.reason ? ` (${ev.reason})` : '') : (LEAVE_SUFFIX[ev.why] ?? '');
      return `${roomPrefix(ev.room)}${ev.name} has left the chat${suffix}`;
    }
    case 'message': {
      const p = (ev.history ? `[history ${clock(ev.ts)}] ` : '') + roomPrefix(ev.room);
      return ev.action ? `${p}* ${ev.from} ${ev.body}` : `${p}${ev.from}: ${ev.body}`;
    }
    case 'private': {
      const p = (ev.history ? `[history ${clock(ev.ts)}] ` : '') + `[@${peerOf(ev, me)}] `;
      return ev.action ? `${p}* ${ev.from} ${ev.body}` : `${p}${ev.from}: ${ev.body}`;
    }
    case 'topic':
      if (ev.changed) return `${roomPrefix(ev.room)}${ev.by} ${ev.topic === '' ? `cleared the topic of ${ev.room}` : `changed the topic of ${ev.room} to: ${ev.topic}`}`;
      return ev.topic === '' ? `${roomPrefix(ev.room)}${ev.room} has no topic` : `${roomPrefix(ev.room)}topic of ${ev.room}: ${ev.topic} (set by ${ev.by} at ${clock(ev.ts)})`;
    case 'nick':
      return ev.room === '' ? `you are now known as ${ev.name}` : `${roomPrefix(ev.room)}${ev.old} is now known as ${ev.name}`;
    case 'away':
      return ev.text === '' ? `${roomPrefix(ev.room)}${ev.name} is back` : `${roomPrefix(ev.room)}${ev.name} is away: ${ev.text}`;
    case 'members': {
      if (!ev.requested) return null; // the list sent on joining is for full-screen clients' member lists
      const names = ev.members.map((m) => (m.away ? `${m.name} (away)` : m.name)).join(', ');
      return `members of ${ev.room}: ${names}${ev.omitted > 0 ? ` and ${ev.omitted} more` : ''}`;
    }
    case 'rooms': {
      if (ev.rooms.length === 0) return 'no rooms have members';
      const lines = ev.rooms.map((r) => `room ${r.name}: ${r.members} ${r.members === 1 ? 'member' : 'members'}${r.topic ? `, topic: ${r.topic}` : ''}`);
      if (ev.omitted > 0) lines.push(`(and ${ev.omitted} more rooms)`);
      return lines.join('\n');
    }
    default:
      return null;
  }
}

/** One JSON object per event with the fields scripts need: type, room, from, text, id, ts. */
export function formatJson(ev: ChatEvent): string | null {
  switch (ev.type) {
    case 'joined':
      return JSON.stringify({ type: 'joined', room: ev.room, from: ev.name, ts: ev.ts });
    case 'left':
      return JSON.stringify({ type: 'left', room: ev.room, from: ev.name, why: ev.why, text: ev.reason, ts: ev.ts });
    case 'message':
      return JSON.stringify({
        type: ev.action ? 'action' : 'message',
        room: ev.room,
        from: ev.from,
        text: ev.body,
        id: ev.id,
        ts: ev.ts,
        own: ev.own,
        ...(ev.history ? { history: true } : {}),
      });
    case 'private':
      return JSON.stringify({
        type: 'private',
        from: ev.from,
        to: ev.to,
        text: ev.body,
        action: ev.action,
        id: ev.id,
        ts: ev.ts,
        own: ev.own,
        ...(ev.history ? { history: true } : {}),
      });
    case 'topic':
      return JSON.stringify({ type: 'topic', room: ev.room, text: ev.topic, from: ev.by, ts: ev.ts, changed: ev.changed });
    case 'nick':
      return JSON.stringify({ type: 'nick', room: ev.room, from: ev.old, name: ev.name, ts: ev.ts });
    case 'away':
      return JSON.stringify({ type: 'away', room: ev.room, from: ev.name, text: ev.text, ts: ev.ts });
    case 'members':
      return JSON.stringify({ type: 'members', room: ev.room, members: ev.members, omitted: ev.omitted, requested: ev.requested });
    case 'rooms':
      return JSON.stringify({ type: 'rooms', rooms: ev.rooms, omitted: ev.omitted });
    case 'caughtup':
      return JSON.stringify({ type: 'caughtup', room: ev.room });
    case 'ok':
      return JSON.stringify({ type: 'ok', text: ev.text });
    case 'error':
      return JSON.stringify({ type: 'error', code: ev.code, text: ev.text, ref: ev.ref });
    case 'welcome':
      return JSON.stringify({ type: 'welcome', from: ev.name });
    case 'status':
      return JSON.stringify({ type: 'status', status: ev.status, text: ev.detail });
    default:
      return null;
  }
}
