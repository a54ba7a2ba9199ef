// Persistent keys and trust on first use: the server's static key in its data dir, each client's
// identity key and its known-servers file in its config dir (XDG), like ssh's known_hosts.

import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fingerprint, generateKeyPair, keyPairFromPrivate, type KeyPair } from './noise.js';

const KEY_FILE_TYPE = 'obrol-x25519';

/** Loads a key pair, or creates one (file mode 0600, directory 0700) when the file does not exist. */
export function loadOrCreateKeyPair(file: string): KeyPair {
  if (existsSync(file)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      throw new Error(`${file} is not a key file (not JSON); move it away and a new key will be made`);
    }
    const p = parsed as { type?: unknown; public?: unknown; private?: unknown };
    if (p.type !== KEY_FILE_TYPE || typeof p.private !== 'string') {
      throw new Error(`${file} is not an obrol key file; move it away and a new key will be made`);
    }
    const priv = Buffer.from(p.private, 'base64');
    if (priv.length !== 32) throw new Error(`${file}: the private key must be 32 bytes`);
    const pair = keyPairFromPrivate(new Uint8Array(priv));
    if (typeof p.public === 'string' && Buffer.from(p.public, 'base64').compare(Buffer.from(pair.publicKey)) !== 0) {
      throw new Error(`${file}: the public key does not match the private key`);
    }
    return pair;
  }
  const pair = generateKeyPair();
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const body = JSON.stringify({
    type: KEY_FILE_TYPE,
    public: Buffer.from(pair.publicKey).toString('base64'),
    private: Buffer.from(pair.privateKey).toString('base64'),
  });
  // Write then rename, so a crash never leaves half a key behind.
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, body + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
  return pair;
}

/** `$OBROL_CONFIG_DIR`, else `$XDG_CONFIG_HOME/obrol`, else `~/.config/obrol`. */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.OBROL_CONFIG_DIR) return env.OBROL_CONFIG_DIR;
  if (env.XDG_CONFIG_HOME) return join(env.XDG_CONFIG_HOME, 'obrol');
  return join(homedir(), '.config', 'obrol');
}

export type PinCheck =
  | { status: 'new' }
  | { status: 'match' }
  | { status: 'mismatch'; pinnedFingerprint: string; fingerprint: string };

/** The known-servers file: one `host:port fingerprint` line per server. */
export class KnownServers {
  constructor(readonly file: string) {}

  private read(): Map<string, string> {
    const m = new Map<string, string>();
    if (!existsSync(this.file)) return m;
    for (const line of readFileSync(this.file, 'utf8').split('\n')) {
      const t = line.trim();
      if (t === '' || t.startsWith('#')) continue;
      const sp = t.lastIndexOf(' ');
      if (sp > 0) m.set(t.slice(0, sp), t.slice(sp + 1));
    }
    return m;
  }

  check(server: string, publicKey: Uint8Array): PinCheck {
    const pinned = this.read().get(server);
    const fp = fingerprint(publicKey);
    if (pinned === undefined) return { status: 'new' };
    if (pinned === fp) return { status: 'match' };
    return { status: 'mismatch', pinnedFingerprint: pinned, fingerprint: fp };
  }

  pin(server: string, publicKey: Uint8Array): void {
    const m = this.read();
    m.set(server, fingerprint(publicKey));
    mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
    const body = [...m].map(([k, v]) => `${k} ${v}`).join('\n') + '\n';
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, body, { mode: 0o600 });
    renameSync(tmp, this.file);
  }
}
