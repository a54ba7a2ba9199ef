// A minimal relay of the original plain-text chat protocol on Node's dgram: one send per recipient.
// A baseline for `npm run bench`, not a server.
//
//   node bench/relay-node.mjs PORT
import dgram from 'node:dgram';

const port = Number(process.argv[2] ?? 6789);
const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
const byAddr = new Map(); // "ip:port" -> { name, address, port }
const names = new Set();

function broadcast(line) {
  const data = Buffer.from(line, 'utf8');
  for (const c of byAddr.values()) socket.send(data, c.port, c.address);
}

socket.on('message', (msg, r) => {
  const key = `${r.address}:${r.port}`;
  const c = byAddr.get(key);
  if (!c) {
    const name = msg.toString('utf8');
    if (names.has(name)) return void socket.send('nama ini sudah diambil', r.port, r.address);
    names.add(name);
    byAddr.set(key, { name, address: r.address, port: r.port });
    broadcast(`${name} has joined the chat`);
    return;
  }
  broadcast(`${c.name}: ${msg.toString('utf8')}`);
});
socket.bind(port, '127.0.0.1', () => console.log(`relay listening on 127.0.0.1:${socket.address().port}`));
