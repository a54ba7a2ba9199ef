// The floor of a native data plane: builds bench/plane.c (the system compiler and OpenSSL's headers,
// Debian's libssl-dev) and runs it alternately in its modes, the C relay's plain fan-out, the least
// per-delivery work of obrol's send path done in C by slot (seal, sent record, acks opened and applied),
// and the same without waking for acks (`lazy`), at the benchmark's two fixed loads. Prints each run's
// JSON and a table of medians.
//
//   npm run bench:plane     node bench/plane.mjs [--seconds 8] [--rounds 3] [--ack-at-once]
//
// --ack-at-once: the receivers ack as soon as an ack is due, not on their shared 10 ms tick.
//
// What it is for, and what it leaves out, is in bench/plane.c's header and docs/PERFORMANCE.md.

import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function arg(name, dflt, max) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v <= 0 || v > max) throw new Error(`--${name} wants a whole number from 1 to ${max}`);
  return v;
}

const seconds = arg('seconds', 8, 600);
const rounds = arg('rounds', 3, 50);
const ackAtOnce = process.argv.includes('--ack-at-once');
/** The harness's fixed loads, with about the acks per delivery obrol's clients send at each. */
const LOADS = [
  { members: 1000, rate: 10, ackEvery: 2 },
  { members: 100, rate: 500, ackEvery: 4 },
];

const out = join(root, 'build', 'plane');
mkdirSync(dirname(out), { recursive: true });
const cc = spawnSync('cc', ['-O2', '-o', out, join(root, 'bench', 'plane.c'), '-lcrypto'], { encoding: 'utf8' });
if (cc.error || cc.status !== 0) {
  console.error(`could not build bench/plane.c (needs cc and OpenSSL's headers, e.g. apt-get install -y gcc libssl-dev):\n${cc.stderr ?? cc.error}`);
  process.exit(1);
}

console.log(`plane bench: ${cpus().length} cores (${cpus()[0]?.model.trim()}), ${seconds} s per run, ${rounds} rounds, alternating, acks ${ackAtOnce ? 'at once' : 'on a 10 ms tick'}`);
const results = new Map();
for (let r = 0; r < rounds; r++) {
  for (const load of LOADS) {
    for (const mode of ['relay', 'plane', 'lazy']) {
      const run = spawnSync(out, [mode, String(seconds), String(load.rate), String(load.members), String(load.ackEvery)], {
        encoding: 'utf8',
        timeout: (seconds + 30) * 1000,
        env: ackAtOnce ? { ...process.env, PLANE_ACK_AT_ONCE: '1' } : process.env,
      });
      if (run.status !== 0) {
        console.error(`${mode} failed: ${run.stderr || run.error}`);
        process.exit(1);
      }
      const line = run.stdout.trim();
      console.log(line);
      const j = JSON.parse(line);
      const key = `${load.members}|${load.rate}|${mode}`;
      results.set(key, [...(results.get(key) ?? []), j]);
    }
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
console.log('\n| members | msg/s | relay µs / delivery | plane µs / delivery (× relay by round) | lazy µs / delivery (× relay by round) | acks / delivery | EVP seal ns, warm |');
console.log('|---|---|---|---|---|---|---|');
for (const load of LOADS) {
  const runs = (mode) => results.get(`${load.members}|${load.rate}|${mode}`);
  const relay = runs('relay');
  const us = (mode) => {
    const r = runs(mode);
    const ratios = r.map((x, i) => (x.cpuUsPerDelivery / relay[i].cpuUsPerDelivery).toFixed(2));
    return `${median(r.map((x) => x.cpuUsPerDelivery)).toFixed(2)} (${ratios.join(', ')})`;
  };
  const plane = runs('plane');
  console.log(
    `| ${load.members} | ${load.rate} | ${median(relay.map((x) => x.cpuUsPerDelivery)).toFixed(2)} | ${us('plane')} | ${us('lazy')} | ${median(plane.map((x) => x.acksPerDelivery)).toFixed(2)} | ${median(plane.map((x) => x.sealNsWarm)).toFixed(0)} |`,
  );
}
