// An independent implementation of the ORIGINAL plain-text UDP chat, written from its description
// (and deliberately sharing no code with obrol), to test obrol's gateway and legacy client against:
//   1. a client's first datagram is its name;
//   2. a taken name gets `nama ini sudah diambil`, and the client may send another name;
//   3. otherwise the server records the address and sends `<name> has joined the chat` to everyone;
//   4. every later datagram is sent to everyone as `<name>: <text>`, the sender included;
//   5. clients read with a 1024-byte buffer;  6. there is no leave and no acknowledgement.
import dgram from 'node:dgram';

export const TAKEN = 'nama ini sudah diambil';
export const CLIENT_BUFFER = 1024;

const strict = new TextDecoder('utf-8', { fatal: true });

function bind(socket: dgram.Socket): Promise<number> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      socket.off('error', reject);
      resolve(socket.address().port);
    });
  });
}

/** The original server: a dict of address → name, and a broadcast. */
export class OriginalServer {
  readonly names = new Map<string, string>();
  private readonly addrs = new Map<string, { address: string; port: number }>();
  /** Every datagram received, raw, with its sender. */
  readonly received: { from: string; data: Buffer }[] = [];

  private constructor(
    private readonly socket: dgram.Socket,
    readonly port: number,
  ) {
    socket.on('message', (data, rinfo) => this.onMessage(data, rinfo));
  }

  static async start(): Promise<OriginalServer> {
    const socket = dgram.createSocket('udp4');
    const port = await bind(socket);
    return new OriginalServer(socket, port);
  }

  private onMessage(data: Buffer, rinfo: dgram.RemoteInfo): void {
    const key = `${rinfo.address}:${rinfo.port}`;
    this.received.push({ from: key, data });
    const text = data.toString('utf8');
    const name = this.names.get(key);
    if (name !== undefined) {
      this.broadcast(`${name}: ${text}`);
      return;
    }
    if ([...this.names.values()].includes(text)) {
      this.socket.send(Buffer.from(TAKEN, 'utf8'), rinfo.port, rinfo.address);
      return;
    }
    this.names.set(key, text);
    this.addrs.set(key, { address: rinfo.address, port: rinfo.port });
    this.broadcast(`${text} has joined the chat`);
  }

  private broadcast(line: string): void {
    const data = Buffer.from(line, 'utf8');
    for (const a of this.addrs.values()) this.socket.send(data, a.port, a.address);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

/** The original client: sends its name, then lines; prints whatever arrives, reading 1024 bytes. */
export class OriginalClient {
  /** Every datagram as it arrived (whole, so tests can check none was larger than the buffer). */
  readonly datagrams: Buffer[] = [];
  /** What the original client would print: the first 1024 bytes of each datagram, decoded. */
  readonly lines: string[] = [];
  /** Datagrams whose first 1024 bytes were not valid UTF-8 (the original would fail to decode them). */
  invalid = 0;
  private readonly waiters = new Set<() => void>();

  private constructor(
    private readonly socket: dgram.Socket,
    readonly serverPort: number,
    readonly port: number,
  ) {
    socket.on('message', (data) => {
      this.datagrams.push(data);
      try {
        this.lines.push(strict.decode(data.subarray(0, CLIENT_BUFFER)));
      } catch {
        this.invalid++;
      }
      for (const w of this.waiters) w();
    });
  }

  static async open(serverPort: number): Promise<OriginalClient> {
    const socket = dgram.createSocket('udp4');
    const port = await bind(socket);
    return new OriginalClient(socket, serverPort, port);
  }

  send(text: string | Uint8Array): void {
    this.socket.send(typeof text === 'string' ? Buffer.from(text, 'utf8') : text, this.serverPort, '127.0.0.1');
  }

  /** Sends a name and waits for the taken reply or our join announcement (step 2/3). */
  async join(name: string, timeoutMs = 5_000): Promise<'joined' | 'taken'> {
    const from = this.lines.length;
    this.send(name);
    const line = await this.waitFor((l) => l === TAKEN || l === `${name} has joined the chat`, timeoutMs, from);
    return line === TAKEN ? 'taken' : 'joined';
  }

  /** The first line (from index `from` on) that matches, or a rejection after timeoutMs. */
  waitFor(match: string | RegExp | ((l: string) => boolean), timeoutMs = 10_000, from = 0): Promise<string> {
    const ok = (l: string): boolean => (typeof match === 'string' ? l === match : match instanceof RegExp ? match.test(l) : match(l));
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = this.lines.slice(from).find(ok);
        if (found === undefined) return false;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${String(match)}; lines:\n${this.lines.join('\n')}`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

/** Resolves after ms: for checking that nothing arrives. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
