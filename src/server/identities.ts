// Which client key each session authenticated with: a reconnecting client is recognised by its key, and
// its resent messages by (key, ref) in the store.

import type { SessionId } from '../session/server-endpoint.js';
import { hex } from '../util/bytes.js';

export class Identities {
  private readonly keyOf = new Map<SessionId, string>();

  bind(sid: SessionId, clientKey: Uint8Array): void {
    this.keyOf.set(sid, hex(clientKey));
  }

  unbind(sid: SessionId): void {
    this.keyOf.delete(sid);
  }

  /** The session's client key in hex. */
  of(sid: SessionId): string | null {
    return this.keyOf.get(sid) ?? null;
  }

  sameKey(a: SessionId, b: SessionId): boolean {
    const ka = this.keyOf.get(a);
    return ka !== undefined && ka === this.keyOf.get(b);
  }
}
