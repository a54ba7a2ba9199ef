// Micro benchmark of the sender's CPU per datagram: fan-outs of 150-byte datagrams to 100 receiver
// sockets on 127.0.0.1, sent (a) one dgram socket.send each, as the server does today, (b) through
// UdpBatchSender with the fallback forced (OBROL_NO_SENDMMSG=1 behaviour), (c) through UdpBatchSender's
// sendmmsg addon, (d) the same on a worker thread: the main thread copies each fan-out's datagrams into
// shared memory and wakes the worker, which sends them (the worker-thread lever, as a server
// would use it to move its sends off the thread that runs the sessions). The receivers live in a child
// process that drains them, so their CPU is not counted.
//
//   npm run bench:udp       node bench/udp-batch.mjs [--seconds 3] [--rate 200] [--burst 5] [--rounds 3]
//
// Every mode sends the same paced load (rate fan-outs per second, each to every receiver) for the same
// time. The result is the sender's whole CPU (process.cpuUsage, all threads) over a run divided by the
// datagrams, minus the same paced loop sending nothing (its timer wakeups); it includes dgram's deferred
// sends and callbacks. "inside the call" is only the CPU within the fan-out calls (push+flush, or the
// send loop): dgram does its sending later, in process.nextTick, so for dgram it is not comparable.
// Loopback delivery into the receivers' sockets (and waking the receiver) runs in the sender's system
// call, so every mode includes the kernel's work of delivering each datagram. For (d), "inside the
// call" is the main thread's share (the copy and the wake-up); the whole figure includes the worker.

import dgram from 'node:dgram';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';
import { isMainThread, Worker, workerData } from 'node:worker_threads';

const RECEIVERS = 100;
const SIZE = 150;
/** Fan-outs the worker mode's ring holds: the main thread waits when the worker is this far behind. */
const RING_SLOTS = 64;
/** The ring's control words: fan-outs written, fan-outs sent, stop. */
const WRITTEN = 0;
const DONE = 1;
const STOP = 2;

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} wants a positive number`);
  return v;
}

// --- the worker thread of mode (d): sends the fan-outs the main thread writes into the ring -----------
if (!isMainThread) {
  const { UdpBatchSender } = await import('../dist/net/udp-batch.js');
  const { ctrlBuffer, ringBuffer, ports } = workerData;
  const ctrl = new Int32Array(ctrlBuffer);
  const ring = new Uint8Array(ringBuffer);
  const socket = dgram.createSocket('udp4');
  await new Promise((r) => socket.bind(0, '127.0.0.1', r));
  const b = new UdpBatchSender(socket);
  // Bounded: it ends on STOP, which the main thread sets once its runs are done.
  for (let done = 0; Atomics.load(ctrl, STOP) === 0; ) {
    const written = Atomics.load(ctrl, WRITTEN);
    if (written === done) {
      Atomics.wait(ctrl, WRITTEN, written, 100);
      continue;
    }
    for (; done < written; done++) {
      const slot = (done % RING_SLOTS) * RECEIVERS * SIZE;
      for (let i = 0; i < ports.length; i++) b.push(ring.subarray(slot + i * SIZE, slot + (i + 1) * SIZE), ports[i], '127.0.0.1');
      b.flush();
      Atomics.store(ctrl, DONE, done + 1);
      Atomics.notify(ctrl, DONE);
    }
  }
  socket.close();
}

// --- the receiver child: 100 sockets, counts, answers "count" and "stop" over IPC -------------------
else if (process.argv[2] === '--receivers') {
  const sockets = [];
  let got = 0;
  let bad = 0;
  for (let i = 0; i < RECEIVERS; i++) {
    const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 1 << 20 });
    s.on('message', (m) => {
      got++;
      if (m.length !== SIZE) bad++;
    });
    sockets.push(s);
  }
  await Promise.all(sockets.map((s) => new Promise((r) => s.bind(0, '127.0.0.1', r))));
  process.on('message', (msg) => {
    if (msg === 'count') process.send({ got, bad });
    else if (msg === 'stop') {
      let open = sockets.length;
      for (const s of sockets) s.close(() => --open === 0 && process.exit(0));
    }
  });
  process.send({ ports: sockets.map((s) => s.address().port) });
} else {
  await main();
}

async function main() {
  const seconds = arg('seconds', 3);
  const rate = arg('rate', 200); // fan-outs per second: 200 x 100 receivers = 20,000 datagrams/s
  const rounds = arg('rounds', 3);
  const burst = arg('burst', 5); // fan-outs per timer wakeup
  const { UdpBatchSender, udpBatchAddonError } = await import('../dist/net/udp-batch.js');

  const child = fork(fileURLToPath(import.meta.url), ['--receivers'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ask = (msg) =>
    new Promise((resolve) => {
      child.once('message', resolve);
      child.send(msg);
    });
  const { ports } = await new Promise((resolve) => child.once('message', resolve));

  const socket = dgram.createSocket('udp4');
  await new Promise((r) => socket.bind(0, '127.0.0.1', r));
  // Each recipient gets its own bytes, as encrypted fan-out does.
  const payloads = ports.map((_, i) => new Uint8Array(SIZE).fill(i & 255));

  let inflight = 0;
  const onSent = () => inflight--;
  let sender = null; // mode (d)'s worker, started once
  const ctrl = new Int32Array(new SharedArrayBuffer(3 * 4));
  const ring = new Uint8Array(new SharedArrayBuffer(RING_SLOTS * RECEIVERS * SIZE));
  const modes = {
    // The same paced loop sending nothing: what the other modes pay besides sending.
    idle: () => () => {},
    dgram: () => () => {
      for (let i = 0; i < ports.length; i++) {
        inflight++;
        socket.send(payloads[i], ports[i], '127.0.0.1', onSent);
      }
    },
    'batch (fallback)': () => {
      const b = new UdpBatchSender(socket, { native: false });
      return () => {
        for (let i = 0; i < ports.length; i++) b.push(payloads[i], ports[i], '127.0.0.1');
        b.flush();
      };
    },
    'batch (sendmmsg)': () => {
      const b = new UdpBatchSender(socket);
      if (!b.native) return null;
      return () => {
        for (let i = 0; i < ports.length; i++) b.push(payloads[i], ports[i], '127.0.0.1');
        b.flush();
      };
    },
    'batch (sendmmsg) on a worker thread': () => {
      if (!new UdpBatchSender(socket).native) return null;
      sender ??= new Worker(new URL(import.meta.url), { workerData: { ctrlBuffer: ctrl.buffer, ringBuffer: ring.buffer, ports } });
      return () => {
        const written = Atomics.load(ctrl, WRITTEN);
        // The worker is a whole ring behind: wait for it (bounded: it sends a slot within milliseconds).
        for (let d = Atomics.load(ctrl, DONE); written - d >= RING_SLOTS; d = Atomics.load(ctrl, DONE)) Atomics.wait(ctrl, DONE, d, 100);
        const slot = (written % RING_SLOTS) * RECEIVERS * SIZE;
        for (let i = 0; i < ports.length; i++) ring.set(payloads[i], slot + i * SIZE);
        Atomics.store(ctrl, WRITTEN, written + 1);
        Atomics.notify(ctrl, WRITTEN);
      };
    },
  };
  // Mode (d) is done when the worker has sent everything written.
  const drained = () => Atomics.load(ctrl, DONE) === Atomics.load(ctrl, WRITTEN);

  console.log(`udp-batch bench: node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'})`);
  console.log(
    `${rate} fan-outs/s (${burst} per wakeup) x ${RECEIVERS} receivers x ${SIZE} B = ${rate * RECEIVERS} datagrams/s, ${seconds} s per run, ${rounds} rounds`,
  );
  const results = {};
  for (let round = 0; round < rounds; round++) {
    for (const [name, make] of Object.entries(modes)) {
      const fanout = make();
      if (!fanout) {
        if (round === 0) console.log(`${name}: skipped (${udpBatchAddonError() ?? 'native off'})`);
        continue;
      }
      for (let w = 0; w < 20; w++) fanout(); // warm up
      await new Promise((r) => setTimeout(r, 200));
      const before = await ask('count');
      const total = Math.round(seconds * rate);
      let sent = 0;
      let sendUs = 0;
      const t0 = process.cpuUsage();
      const start = performance.now();
      // Paced: fan-out k leaves at start + k/rate; a bounded number of fan-outs, then wait for callbacks.
      await new Promise((resolve) => {
        const tick = () => {
          // Whole bursts: each wakeup sends `burst` fan-outs (one flush each), so that the cost of a timer
          // wakeup (large on this VM) weighs less; the idle run measures what remains of it.
          const due = Math.min(total, burst * (Math.floor(((performance.now() - start) * rate) / (1000 * burst)) + 1));
          while (sent < due) {
            const c0 = process.cpuUsage();
            fanout();
            const c = process.cpuUsage(c0);
            sendUs += c.user + c.system;
            sent++;
          }
          if (sent >= total) resolve();
          else setTimeout(tick, Math.max(0, start + (sent * 1000) / rate - performance.now()));
        };
        tick();
      });
      for (let w = 0; w < 200 && inflight > 0; w++) await new Promise((r) => setImmediate(r));
      for (let w = 0; w < 2000 && !drained(); w++) await new Promise((r) => setTimeout(r, 1));
      const cpu = process.cpuUsage(t0);
      await new Promise((r) => setTimeout(r, 300));
      const after = await ask('count');
      const datagrams = sent * RECEIVERS;
      const r = (results[name] ??= { process: [], send: [], delivered: [] });
      r.process.push((cpu.user + cpu.system) / datagrams);
      r.send.push(sendUs / datagrams);
      r.delivered.push(name === 'idle' ? 1 : (after.got - before.got) / datagrams);
      if (after.bad !== 0) throw new Error('a datagram arrived with the wrong size');
    }
  }
  console.log('');
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const idle = med(results.idle.process);
  console.log(`idle loop: ${idle.toFixed(2)} µs per (would-be) datagram, subtracted below`);
  console.log('');
  console.log('| sender | CPU µs / datagram | runs (idle included) | inside the call | delivered |');
  console.log('|---|---|---|---|---|');
  for (const [name, r] of Object.entries(results)) {
    if (name === 'idle') continue;
    console.log(
      `| ${name} | ${(med(r.process) - idle).toFixed(2)} | ${r.process.map((x) => x.toFixed(2)).join(', ')} | ${med(r.send).toFixed(2)} | ${(100 * Math.min(...r.delivered)).toFixed(1)}% |`,
    );
  }
  if (sender) {
    const ended = new Promise((r) => sender.once('exit', r));
    Atomics.store(ctrl, STOP, 1);
    Atomics.notify(ctrl, WRITTEN);
    await ended;
  }
  const exited = new Promise((r) => child.once('exit', r));
  child.send('stop');
  const timer = setTimeout(() => child.kill(), 5000); // only this child, by its handle
  await exited;
  clearTimeout(timer);
  await new Promise((r) => socket.close(r));
}
