#!/usr/bin/env node
// The `obrol` command: dispatches to serve, join, proxy and bench.
import { readFileSync } from 'node:fs';
import { joinMain, JOIN_USAGE } from './join.js';
import { serveMain, SERVE_USAGE } from './serve.js';
import { UsageError } from './options.js';
import { proxyMain } from '../proxy/cli.js';

const USAGE = `obrol: fast, reliable, encrypted group chat over UDP

usage: obrol serve [options]              run a server (default port 6789)
       obrol join NAME@HOST[:PORT] [...]  chat; line mode when stdin is not a terminal
       obrol proxy --listen PORT --to HOST:PORT [...]  a UDP impairment proxy for testing
       obrol bench [...]                  fan-out benchmark against C and Node relays (docs/PERFORMANCE.md)
       obrol bench idle [...]             N idle sessions: server memory and keepalive CPU
       obrol bench endpoint [...]         the session layer alone, in process: CPU per keepalive
       obrol --version

Run \`obrol COMMAND --help\` for a command's options.

${SERVE_USAGE}

${JOIN_USAGE}`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'serve':
      return serveMain(rest);
    case 'join':
      return joinMain(rest);
    case 'proxy':
      return proxyMain(rest);
    case 'bench':
      // Loaded on demand: the harness is not needed to chat.
      if (rest[0] === 'idle') return (await import('../bench/idle.js')).idleMain(rest.slice(1));
      if (rest[0] === 'endpoint') return (await import('../bench/endpoint.js')).endpointMain(rest.slice(1));
      return (await import('../bench/harness.js')).benchMain(rest);
    case '--version':
    case '-v':
      console.log(`obrol ${version()}`);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return 0;
    default:
      throw new UsageError(`unknown command "${cmd}"; the commands are serve, join, proxy and bench (obrol --help)`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`obrol: ${e.message}\n`);
      process.exitCode = e.exitCode;
    } else if (e instanceof TypeError && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`obrol: ${e.message}; see obrol --help\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`obrol: unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    }
  },
);
