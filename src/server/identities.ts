// Which client key each session authenticated with, and a short memory of the echoes sent for each
// key's recent refs: a client that reconnects resends what it never saw confirmed, and the server must
// answer such a resend with the original echo instead of posting the message twice.

import { RESEND_MEMORY_IDENTITIES, RESEND_MEMORY_REFS } from '../limits.js';
import type { SessionId } from '../session/server-endpoint.js';
import type { ServerMsg } from '../wire/message.js';
import { hex } from '../util/bytes.js';

export class Identities {
  private readonly keyOf = new Map<SessionId, string>();
  /** Per key, ref → echo; both maps are kept in least-recently-used-first order. */
  private readonly echoes = new Map<string, Map<number, ServerMsg>>();

  bind(sid: SessionId, clientKey: Uint8Array): void {
    this.keyOf.set(sid, hex(clientKey));
  }

  unbind(sid: SessionId): void {
    this.keyOf.delete(sid);
  }

  sameKey(a: SessionId, b: SessionId): boolean {
    const ka = this.keyOf.get(a);
    return ka !== undefined && ka === this.keyOf.get(b);
  }

  /** Remembers the echo the server sent for a session's ref. */
  remember(sid: SessionId, ref: number, echo: ServerMsg): void {
    const key = this.keyOf.get(sid);
    if (key === undefined) return;
    let m = this.echoes.get(key);
    if (m) this.echoes.delete(key);
    else m = new Map();
    this.echoes.set(key, m);
    m.set(ref, echo);
    if (m.size > RESEND_MEMORY_REFS) m.delete(m.keys().next().value!);
    if (this.echoes.size > RESEND_MEMORY_IDENTITIES) this.echoes.delete(this.echoes.keys().next().value!);
  }

  /** The echo already sent for this ref by this session's key, if it is a resend. */
  recall(sid: SessionId, ref: number): ServerMsg | undefined {
    const key = this.keyOf.get(sid);
    return key === undefined ? undefined : this.echoes.get(key)?.get(ref);
  }
}
