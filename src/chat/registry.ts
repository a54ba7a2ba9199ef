// Who holds which name. Behind an interface so a Redis-backed registry can serve several server nodes.

export type SessionId = number;

export interface NameRegistry {
  /** Claims a name key for a session; false when another session holds it. */
  claim(key: string, owner: SessionId): boolean;
  /** Releases a name key, only if `owner` holds it. */
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
