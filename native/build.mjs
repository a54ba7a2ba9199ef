// Builds the two native addons with the system C compiler, the way the benchmark builds bench/relay.c:
// native/udp_batch.c into build/udp_batch.node (sendmmsg/recvmmsg batches) and native/aead.c into
// build/aead.node (ChaCha20-Poly1305 on node's own OpenSSL). Run by `npm run build` (build:native). It
// never fails the build: without Linux, a compiler or node_api.h, or if compiling or loading fails, it
// says why, removes any stale addon, and exits 0; src/net/udp-batch.ts then sends with dgram, and
// src/crypto/primitives.ts seals with libsodium. Each outcome is also written to build/<name>.status.json
// ({ ok, reason, ... }) for the tests.
//
//   node native/build.mjs          CC=clang node native/build.mjs          OBROL_NODE_INCLUDE=DIR ...

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'build');

/** The addons: what each is for (said when it is not built), and a check that the library loaded is it. */
const ADDONS = [
  {
    name: 'udp_batch',
    what: 'sendmmsg batching',
    fallback: 'UDP batches are sent with dgram instead',
    linuxOnly: true,
    check: (a) => typeof a.sendBatch === 'function' && a.addrStride === 28,
  },
  {
    name: 'aead',
    what: "ChaCha20-Poly1305 on node's OpenSSL",
    fallback: 'packets are sealed with libsodium instead',
    linuxOnly: false,
    check: (a) => typeof a.seal === 'function' && typeof a.open === 'function' && typeof a.available === 'boolean',
  },
];

/** Directories that may hold node_api.h for the running node, most specific first. */
function includeCandidates() {
  const dirs = [];
  if (process.env.OBROL_NODE_INCLUDE) dirs.push(process.env.OBROL_NODE_INCLUDE);
  // Official tarballs, nvm, setup-node and distro packages: <prefix>/bin/node beside <prefix>/include/node.
  dirs.push(join(dirname(dirname(process.execPath)), 'include', 'node'));
  const prefix = process.config?.variables?.node_prefix;
  if (typeof prefix === 'string' && prefix !== '') dirs.push(join(prefix, 'include', 'node'));
  if (process.env.npm_config_nodedir) dirs.push(join(process.env.npm_config_nodedir, 'include', 'node'));
  // Headers node-gyp downloaded earlier, if any (never downloaded here).
  dirs.push(join(homedir(), '.cache', 'node-gyp', process.versions.node, 'include', 'node'));
  dirs.push('/usr/local/include/node', '/usr/include/node');
  return [...new Set(dirs)];
}

function finish(addon, status) {
  try {
    mkdirSync(outDir, { recursive: true });
    const statusFile = join(outDir, `${addon.name}.status.json`);
    writeFileSync(statusFile, JSON.stringify({ ...status, node: process.version, at: new Date().toISOString() }, null, 2) + '\n');
  } catch {
    // A status file is a courtesy; never fail the build over it.
  }
  if (status.ok) console.log(`native: built build/${addon.name}.node (${addon.what}; ${status.compiler})`);
  else {
    console.log(`native: ${addon.name}: ${status.reason}; ${addon.fallback}`);
    if (status.stderr) console.log(status.stderr.replace(/^/gm, '  '));
  }
}

function skip(addon, reason, extra = {}) {
  try {
    rmSync(join(outDir, `${addon.name}.node`), { force: true }); // a stale addon from an older source must not be loaded
  } catch {
    // ignore
  }
  finish(addon, { ok: false, reason, ...extra });
}

function build(addon) {
  const src = join(root, 'native', `${addon.name}.c`);
  const out = join(outDir, `${addon.name}.node`);
  if (process.platform !== 'linux' && addon.linuxOnly) return skip(addon, `skipped on ${process.platform} (${addon.what} is Linux only)`);
  if (process.platform === 'win32') return skip(addon, 'skipped on Windows (no cc build here)');
  if (!existsSync(src)) return skip(addon, `native/${addon.name}.c is missing`);
  const cc = process.env.CC || 'cc';
  const probe = spawnSync(cc, ['--version'], { encoding: 'utf8', timeout: 20_000 });
  if (probe.error || probe.status !== 0) return skip(addon, `no C compiler (${cc})`, { noCompiler: true });
  const compiler = `${cc}: ${(probe.stdout.split('\n')[0] ?? '').trim()}`;
  const include = includeCandidates().find((d) => existsSync(join(d, 'node_api.h')));
  if (!include) return skip(addon, 'node_api.h not found (set OBROL_NODE_INCLUDE to the directory holding it)', { noHeader: true, compiler });

  mkdirSync(outDir, { recursive: true });
  const tmp = join(outDir, `${addon.name}.tmp-${process.pid}.node`);
  const args = ['-std=gnu11', '-O2', '-shared', '-fPIC', '-fvisibility=hidden', '-Wall', '-Wextra', '-I', include, '-o', tmp, src];
  const r = spawnSync(cc, args, { encoding: 'utf8', timeout: 120_000 });
  if (r.error || r.status !== 0) {
    rmSync(tmp, { force: true });
    const why = (r.error?.message ?? r.stderr ?? '').trim().split('\n').slice(0, 20).join('\n');
    return skip(addon, `compiling native/${addon.name}.c failed`, { compiler, include, stderr: why });
  }
  if (r.stderr.trim() !== '') console.log(r.stderr.trim());
  // Load it before putting it in place: a library that does not load must not replace one that does.
  try {
    const lib = createRequire(import.meta.url)(tmp);
    if (!addon.check(lib)) throw new Error('unexpected exports');
  } catch (e) {
    rmSync(tmp, { force: true });
    return skip(addon, `the built addon does not load (${e instanceof Error ? e.message : String(e)})`, { compiler, include });
  }
  // rename: a process that has the old library loaded keeps its copy.
  renameSync(tmp, out);
  finish(addon, { ok: true, reason: 'built', compiler, include });
}

for (const addon of ADDONS) {
  try {
    build(addon);
  } catch (e) {
    skip(addon, `build error (${e instanceof Error ? e.message : String(e)})`);
  }
}
