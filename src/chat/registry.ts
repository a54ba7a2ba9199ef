// Who holds which name. Behind an interface so a Redis-backed registry can serve several server nodes;
// keys are checkName()'s case-insensitive keys.

export type SessionId = number;

export interface NameRegistry {
  /** Claims a key for a session; false when another session holds it. Claiming a key one holds is true. */
  claim(key: string, owner: SessionId): boolean;
  /** Releases a key, only if `owner` holds it, so a stale release cannot free someone else's name. */
  release(key: string, owner: SessionId): void;
  ownerOf(key: string): SessionId | undefined;
}

export class MemoryNameRegistry implements NameRegistry {
  private readonly owners = new Map<string, SessionId>();

  claim(key: string, owner: SessionId): boolean {
    const cur = this.owners.get(key);
    if (cur !== undefined && cur !== owner) return false;
    this.owners.set(key, owner);
    return true;
  }

  release(key: string, owner: SessionId): void {
    if (this.owners.get(key) === owner) this.owners.delete(key);
  }

  ownerOf(key: string): SessionId | undefined {
    return this.owners.get(key);
  }
}
