// `obrol join`: connect and chat. On a terminal, a simple interactive prompt; otherwise line mode:
// each input line is a message (or a /command), each event one line on stdout (or JSON with --json).

import { createInterface, type Interface } from 'node:readline';
import { parseArgs } from 'node:util';
import { CONNECT_TIMEOUT_MS, DEFAULT_MTU, DRAIN_TIMEOUT_MS, LEGACY_CONNECT_TIMEOUT_MS, LEGACY_NAME_ATTEMPTS, MAX_MTU, MIN_MTU } from '../limits.js';
import { ObrolClient, ObrolClientError, type ChatEvent } from '../client/client.js';
import { LegacyClient, type ChatClient } from '../client/legacy-client.js';
import { ErrorCode } from '../wire/message.js';
import { formatJson, formatLine } from './format.js';
import { COMMAND_HELP, CurrentRoom, parseInput, runInput } from './commands.js';
import { runFullScreen } from '../tui/app.js';
import { intOption, UsageError } from './options.js';
import { parseHostPort, parseTarget } from './target.js';

export const JOIN_USAGE = `usage: obrol join NAME@HOST[:PORT] [--json] [--fingerprint FP] [--mtu N] [--timeout SECONDS]
       obrol join --name NAME --server HOST[:PORT] ...
       obrol join --legacy NAME@HOST[:PORT] [--json] [--timeout SECONDS]

  --json              print one JSON object per event (line mode)
  --fingerprint FP    the server key fingerprint you expect (as printed by obrol serve);
                      required to match on first contact, pinned afterwards
  --mtu N             largest UDP payload to send, ${MIN_MTU}..${MAX_MTU} (default ${DEFAULT_MTU})
  --timeout S         give up connecting after S seconds (default ${CONNECT_TIMEOUT_MS / 1000})
  --legacy            talk to an ORIGINAL plain-text chat server: no encryption, no
                      confirmations, one room; messages up to 1024 bytes

On a terminal you get a prompt; otherwise every input line is sent as a message, and every
event is printed as one line: "alice: hi", "bob has joined the chat".`;

/** Exit codes: 0 ok, 1 connection or delivery failure, 2 usage error or name rejected. */
const EXIT_FAILED = 1;
const EXIT_REJECTED = 2;

export { COMMAND_HELP, parseInput };

/** Our current name, for labelling private conversations. */
function me(client: ChatClient): string | null {
  return client instanceof ObrolClient ? client.registeredName : null;
}

export async function joinMain(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      name: { type: 'string' },
      server: { type: 'string' },
      json: { type: 'boolean' },
      fingerprint: { type: 'string' },
      mtu: { type: 'string' },
      timeout: { type: 'string' },
      legacy: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: true,
  });
  if (values.help) {
    console.log(JOIN_USAGE);
    return 0;
  }
  if (positionals.length > 1) throw new UsageError(`join takes one NAME@HOST[:PORT], got ${positionals.length} arguments`);
  let name = values.name;
  let host = '127.0.0.1';
  let port: number | undefined;
  if (positionals.length === 1) {
    const t = parseTarget(positionals[0]!);
    if ('error' in t) throw new UsageError(`${t.error}; write it as NAME@HOST[:PORT], e.g. alice@127.0.0.1`);
    ({ host, port } = t);
    name ??= t.name;
  }
  if (values.server !== undefined) {
    const hp = parseHostPort(values.server);
    if ('error' in hp) throw new UsageError(`--server: ${hp.error}`);
    ({ host, port } = hp);
  }
  if (name === undefined) throw new UsageError('who are you? give NAME@HOST or --name NAME');
  const mtu = intOption('--mtu', values.mtu, DEFAULT_MTU, MIN_MTU, MAX_MTU);
  const legacy = values.legacy === true;
  if (legacy && (values.fingerprint !== undefined || values.mtu !== undefined)) {
    throw new UsageError('--fingerprint and --mtu do not apply to --legacy: the original protocol has no server key and sends plain datagrams');
  }
  const timeout = intOption('--timeout', values.timeout, (legacy ? LEGACY_CONNECT_TIMEOUT_MS : CONNECT_TIMEOUT_MS) / 1000, 1, 3600);

  const client: ChatClient = legacy
    ? new LegacyClient({ name, host, port, connectTimeoutMs: timeout * 1000 })
    : new ObrolClient({ name, host, port, fingerprint: values.fingerprint, mtu, connectTimeoutMs: timeout * 1000 });
  const interactive = process.stdin.isTTY === true && process.stdout.isTTY === true;
  return interactive ? runInteractive(client) : runLineMode(client, values.json === true);
}

function describeFailure(e: unknown, client: ChatClient): { code: number; text: string } {
  const server = client.server;
  if (client instanceof LegacyClient && e instanceof ObrolClientError && e.kind === 'unreachable') {
    return { code: EXIT_FAILED, text: `cannot join the original chat server at ${server}: ${e.message}` };
  }
  if (e instanceof ObrolClientError) {
    switch (e.kind) {
      case 'rejected':
        return { code: EXIT_REJECTED, text: `name rejected: ${e.message}` };
      case 'unreachable':
        return { code: EXIT_FAILED, text: `cannot reach an obrol server at ${server}: ${e.message}. Is \`obrol serve\` running there, and is the port right?` };
      case 'server-key':
        return { code: EXIT_FAILED, text: e.message };
      default:
        return { code: EXIT_FAILED, text: `${e.kind}: ${e.message}` };
    }
  }
  return { code: EXIT_FAILED, text: String(e) };
}

/** Scripts and bots: stdin lines in, one event per stdout line out. */
async function runLineMode(client: ChatClient, json: boolean): Promise<number> {
  const out = (s: string): void => void process.stdout.write(s + '\n');
  const err = (s: string): void => void process.stderr.write(`obrol: ${s}\n`);
  let closedUnexpectedly: string | null = null;
  let wasDown = false;
  let quitting = false;
  const current = new CurrentRoom();
  client.on((ev: ChatEvent) => {
    const line = json ? formatJson(ev) : formatLine(ev, me(client));
    if (line !== null) out(line);
    if (ev.type === 'error' && !json) err(`error: ${ev.text}`);
    if (ev.type === 'ok' && !json) err(ev.text);
    // The first connection is reported by its result; later changes are news worth a line.
    if (ev.type === 'status' && !json && (ev.status !== 'connecting' && (ev.status !== 'open' || wasDown))) err(ev.detail);
    if (ev.type === 'status') wasDown = ev.status === 'reconnecting' || ev.status === 'unresponsive';
    if (ev.type === 'closed' && !quitting && ev.kind !== 'rejected') closedUnexpectedly = ev.reason;
  });

  let failed = 0;
  const sends: Promise<unknown>[] = [];
  let quitReason = '';
  const connecting = client.connect();

  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  const reading = (async () => {
    for await (const raw of rl) {
      const { result, done } = runInput(client, parseInput(raw), current);
      if (result.kind === 'quit') {
        quitReason = result.reason;
        break;
      }
      if (result.kind === 'help') err(COMMAND_HELP);
      else if (result.kind === 'error') err(result.text);
      if (done)
        sends.push(
          done.catch((e: Error) => {
            failed++;
            // A server refusal was already printed from its error event.
            if (!(e instanceof ObrolClientError && e.kind === 'refused')) err(`not done: ${e.message}`);
          }),
        );
    }
  })();

  try {
    await connecting;
  } catch (e) {
    rl.close();
    process.stdin.destroy();
    client.close(); // a LegacyClient keeps its socket after a taken name, for a retry
    const f = describeFailure(e, client);
    err(f.text);
    return f.code;
  }
  await reading;
  rl.close();
  process.stdin.destroy();

  const drained = await client.drain(DRAIN_TIMEOUT_MS);
  await Promise.allSettled(sends);
  if (closedUnexpectedly !== null) {
    err(`disconnected: ${closedUnexpectedly}`);
    return EXIT_FAILED;
  }
  if (!drained) {
    err(`${client.pending} message(s) were not confirmed by the server within ${DRAIN_TIMEOUT_MS / 1000} s`);
    client.close();
    return EXIT_FAILED;
  }
  quitting = true;
  await client.quit(quitReason);
  if (failed > 0) {
    err(`${failed} message(s) were refused; see the errors above`);
    return EXIT_FAILED;
  }
  return 0;
}

/** People: connect (asking for another name if an original server says it is taken), then full screen. */
async function runInteractive(client: ChatClient): Promise<number> {
  const early: ChatEvent[] = [];
  const off = client.on((ev) => early.push(ev));
  const legacy = client instanceof LegacyClient;
  process.stdout.write(legacy ? '* connecting to an original chat server (plain text: not encrypted, not authenticated)…\n' : `* connecting to ${client.server}…\n`);
  const rl: Interface = createInterface({ input: process.stdin, output: process.stdout, terminal: true });
  try {
    await connectInteractive(client, rl);
  } catch (e) {
    rl.close();
    off();
    client.close();
    const f = describeFailure(e, client);
    process.stderr.write(`obrol: ${f.text}\n`);
    return f.code;
  }
  rl.close();
  off();
  return runFullScreen(client, { label: client.server, early });
}

/** Connects; an original server's "name taken" asks at the prompt for another name, as the original client did. */
async function connectInteractive(client: ChatClient, rl: Interface): Promise<string> {
  if (!(client instanceof LegacyClient)) return client.connect();
  let next: string | undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      return await client.connect(next);
    } catch (e) {
      if (!(e instanceof ObrolClientError && e.code === ErrorCode.NameTaken) || attempt >= LEGACY_NAME_ATTEMPTS) throw e;
      process.stdout.write(`\r\x1b[K* ${e.message}\n`);
      const answer = await ask(rl, 'another name: ');
      if (answer === null || answer.trim() === '') throw e;
      next = answer.trim();
    }
  }
}

/** One answer from the prompt, or null when input ends first. */
function ask(rl: Interface, query: string): Promise<string | null> {
  return new Promise((resolve) => {
    const onClose = (): void => resolve(null);
    rl.once('close', onClose);
    rl.question(query, (answer) => {
      rl.off('close', onClose);
      resolve(answer);
    });
  });
}
