// How chat events print: the original chat's plain lines, or one JSON object per event.
import type { ChatEvent } from '../client/client.js';
import { LOBBY } from '../client/client.js';

const LEAVE_SUFFIX: Record<string, string> = { timeout: ' (timed out)', lost: ' (connection lost)', kicked: ' (kicked)' };

/** The original formats (`alice: hi`, `bob has joined the chat`); rooms other than #lobby are prefixed. */
export function formatLine(ev: ChatEvent): string | null {
  const prefix = 'room' in ev && ev.room.toLowerCase() !== LOBBY ? `[${ev.room}] ` : '';
  switch (ev.type) {
    case 'joined':
      return `${prefix}${ev.name} has joined the chat`;
    case 'left': {
      const suffix = ev.why === 'quit' ? (ev.reason ? ` (${ev.reason})` : '') : (LEAVE_SUFFIX[ev.why] ?? '');
      return `${prefix}${ev.name} has left the chat${suffix}`;
    }
    case 'message':
      return ev.action ? `${prefix}* ${ev.from} ${ev.body}` : `${prefix}${ev.from}: ${ev.body}`;
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
      });
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
