// The crypto layer: Noise XX handshake and transport, cookies, the replay window, key files and pinning.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { dh, fingerprint, generateKeyPair, NoiseError, NoiseHandshake, open, openPacket, rekey, seal, sealInto, sealPacket } from '../src/crypto/noise.js';
import { KeyTable } from '../src/crypto/key-table.js';
import { CookieJar } from '../src/crypto/cookie.js';
import { ReplayWindow } from '../src/crypto/replay.js';
import { configDir, KnownServers, loadOrCreateKeyPair } from '../src/crypto/keystore.js';
import { COOKIE_SECRET_ROTATE_MS, COOKIE_WINDOW_MS, REPLAY_WINDOW_PACKETS } from '../src/limits.js';
import { backend, nativeAead, nodeBackend, sodium } from '../src/crypto/primitives.js';
import { aeadAddonError, loadAeadAddon } from '../src/crypto/native-aead.js';
import { tempDir } from './helpers/cli.js';

const prologue = new TextEncoder().encode('obrol/1');

function handshake() {
  const serverKey = generateKeyPair();
  const clientKey = generateKeyPair();
  const client = new NoiseHandshake({ initiator: true, prologue, staticKey: clientKey });
  const server = new NoiseHandshake({ initiator: false, prologue, staticKey: serverKey });
  const m1 = client.writeMessage(new Uint8Array(0));
  server.readMessage(m1);
  const m2 = server.writeMessage(new Uint8Array(0));
  client.readMessage(m2);
  const m3 = client.writeMessage(new TextEncoder().encode('hello'));
  const payload = server.readMessage(m3);
  return { client, server, serverKey, clientKey, m1, m2, m3, payload };
}

test('XX handshake: both sides learn the other static key, agree on keys and hash; message sizes', () => {
  const h = handshake();
  assert.equal(new TextDecoder().decode(h.payload), 'hello');
  assert.deepEqual(h.client.remoteStatic, h.serverKey.publicKey);
  assert.deepEqual(h.server.remoteStatic, h.clientKey.publicKey);
  assert.deepEqual(h.client.handshakeHash, h.server.handshakeHash);
  const c = h.client.split();
  const s = h.server.split();
  assert.deepEqual(c.send, s.recv);
  assert.deepEqual(c.recv, s.send);
  assert.notDeepEqual(c.send, c.recv);
  // Noise XX with empty payloads: 32, 96 and 64 bytes (message 3 carries 5 payload bytes here).
  assert.equal(h.m1.length, 32);
  assert.equal(h.m2.length, 96);
  assert.equal(h.m3.length, 64 + 5);
});

test('a tampered handshake message is refused with NoiseError, and the state is then unusable', () => {
  for (const which of ['m2', 'm3'] as const) {
    const serverKey = generateKeyPair();
    const client = new NoiseHandshake({ initiator: true, prologue, staticKey: generateKeyPair() });
    const server = new NoiseHandshake({ initiator: false, prologue, staticKey: serverKey });
    server.readMessage(client.writeMessage(new Uint8Array(0)));
    const m2 = server.writeMessage(new Uint8Array(0));
    if (which === 'm2') {
      const bad = m2.slice();
      bad[40]! ^= 1;
      assert.throws(() => client.readMessage(bad), NoiseError);
      assert.throws(() => client.readMessage(m2), NoiseError);
    } else {
      client.readMessage(m2);
      const m3 = client.writeMessage(new Uint8Array(0));
      const bad = m3.slice();
      bad[bad.length - 1]! ^= 0x80;
      assert.throws(() => server.readMessage(bad), NoiseError);
    }
  }
});

test('a different prologue fails the handshake', () => {
  const client = new NoiseHandshake({ initiator: true, prologue, staticKey: generateKeyPair() });
  const server = new NoiseHandshake({ initiator: false, prologue: new TextEncoder().encode('other/1'), staticKey: generateKeyPair() });
  server.readMessage(client.writeMessage(new Uint8Array(0)));
  assert.throws(() => client.readMessage(server.writeMessage(new Uint8Array(0))), NoiseError);
});

test('transport: open() refuses any flipped bit, a wrong nonce or wrong associated data; rekey changes the key', () => {
  const { send } = handshake().client.split();
  const ad = new Uint8Array([1, 2, 3]);
  const ct = seal(send, 7, ad, new TextEncoder().encode('secret'));
  assert.equal(new TextDecoder().decode(open(send, 7, ad, ct)!), 'secret');
  for (let i = 0; i < ct.length; i++) {
    const bad = ct.slice();
    bad[i]! ^= 1;
    assert.equal(open(send, 7, ad, bad), null);
  }
  assert.equal(open(send, 8, ad, ct), null);
  assert.equal(open(send, 7, new Uint8Array([1, 2, 4]), ct), null);
  assert.equal(open(send, 7, ad, ct.subarray(0, 10)), null);
  const next = rekey(send);
  assert.equal(next.length, 32);
  assert.notDeepEqual(next, send);
  assert.equal(open(next, 7, ad, ct), null);
});

test('dh refuses low-order points (an all-zero shared secret)', () => {
  assert.throws(() => dh(generateKeyPair().privateKey, new Uint8Array(32)), NoiseError);
  assert.match(fingerprint(new Uint8Array(32)), /^SHA256:[A-Za-z0-9+/]{43}$/);
});

test('cookies: valid for their address, port and cid, in their window and the next, across one rotation', () => {
  let n = 0;
  const jar = new CookieJar(() => new Uint8Array(32).fill(++n), 0);
  const addr = { address: '192.0.2.1', port: 4000 };
  const cid = new Uint8Array(8).fill(9);
  const c = jar.mint(1000, addr, cid);
  assert.ok(jar.verify(1000, addr, cid, c));
  assert.ok(jar.verify(COOKIE_WINDOW_MS + 1000, addr, cid, c), 'next window');
  assert.ok(!jar.verify(2 * COOKIE_WINDOW_MS + 1000, addr, cid, c), 'two windows later');
  assert.ok(!jar.verify(1000, { ...addr, port: 4001 }, cid, c));
  assert.ok(!jar.verify(1000, { ...addr, address: '192.0.2.2' }, cid, c));
  assert.ok(!jar.verify(1000, addr, new Uint8Array(8), c));
  // Minted just before a rotation, checked just after: the previous secret still counts.
  const t = COOKIE_SECRET_ROTATE_MS - 10;
  const late = jar.mint(t, addr, cid);
  assert.ok(jar.verify(t + 20, addr, cid, late));
  const t2 = t + 20 + COOKIE_SECRET_ROTATE_MS;
  jar.mint(t2, addr, cid); // a second rotation
  assert.ok(!jar.verify(t2, addr, cid, late));
});

test('cookies: random bytes never verify and never throw', () => {
  const jar = new CookieJar(() => new Uint8Array(32).fill(1), 0);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), (b) => {
      assert.equal(jar.verify(0, { address: '127.0.0.1', port: 1 }, new Uint8Array(8), b), false);
    }),
  );
});

test('replay window: accepts each packet number once, refuses ones too old (against a model)', () => {
  fc.assert(
    fc.property(fc.array(fc.nat({ max: 6000 }), { maxLength: 400 }), (pns) => {
      const w = new ReplayWindow();
      const seen = new Set<number>();
      let top = -1;
      for (const pn of pns) {
        const want = !seen.has(pn) && !(top >= 0 && top - pn >= REPLAY_WINDOW_PACKETS);
        assert.equal(w.check(pn), want, `pn ${pn}`);
        if (want) {
          w.accept(pn);
          seen.add(pn);
          top = Math.max(top, pn);
        }
      }
    }),
  );
});

test('key files: created 0600 and reloaded; a malformed file is refused, not overwritten', () => {
  const dir = tempDir();
  try {
    const file = join(dir.path, 'nested', 'server.key');
    const a = loadOrCreateKeyPair(file);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(loadOrCreateKeyPair(file), a);
    const bad = join(dir.path, 'bad.key');
    writeFileSync(bad, 'not a key');
    assert.throws(() => loadOrCreateKeyPair(bad), /not a key file/);
    assert.equal(readFileSync(bad, 'utf8'), 'not a key');
  } finally {
    dir.remove();
  }
});

test('known servers: new, then match, then a loud mismatch; config dir precedence', () => {
  const dir = tempDir();
  try {
    const ks = new KnownServers(join(dir.path, 'known_servers'));
    const k1 = generateKeyPair().publicKey;
    const k2 = generateKeyPair().publicKey;
    assert.deepEqual(ks.check('chat.example:6789', k1), { status: 'new' });
    ks.pin('chat.example:6789', k1);
    assert.ok(existsSync(ks.file));
    assert.deepEqual(ks.check('chat.example:6789', k1), { status: 'match' });
    assert.deepEqual(ks.check('chat.example:6789', k2), { status: 'mismatch', pinnedFingerprint: fingerprint(k1), fingerprint: fingerprint(k2) });
    assert.deepEqual(ks.check('other:6789', k2), { status: 'new' });
    assert.equal(configDir({ OBROL_CONFIG_DIR: '/x', XDG_CONFIG_HOME: '/y' }), '/x');
    assert.equal(configDir({ XDG_CONFIG_HOME: '/y' }), '/y/obrol');
  } finally {
    dir.remove();
  }
});

test('seal: a number nonce encodes as the same 64-bit counter as a bigint, above 2^32 too; sealInto matches seal', () => {
  const key = new Uint8Array(32).fill(7);
  const ad = new Uint8Array([1, 2, 3]);
  const pt = new TextEncoder().encode('nonce check');
  for (const n of [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 5, 2 ** 53 - 1]) {
    assert.deepEqual(seal(key, n, ad, pt), seal(key, BigInt(n), ad, pt), `nonce ${n}`);
    const out = new Uint8Array(4 + pt.length + 16);
    sealInto(key, n, ad, pt, out, 4);
    assert.deepEqual(out.subarray(4), seal(key, n, ad, pt));
  }
});

// OBROL_CRYPTO=node keeps libsodium from loading at all (that is what it is for), so there is nothing to compare.
const sodiumOff = process.env.OBROL_CRYPTO === 'node' ? 'OBROL_CRYPTO=node: libsodium is not loaded' : false;

test('backends: libsodium and node:crypto agree on ChaCha20-Poly1305 and X25519 for any input; both refuse forgeries', { skip: sodiumOff }, () => {
  assert.ok(sodium, 'sodium-native should load on this machine (it ships a prebuilt linux-x64 binary)');
  assert.equal(backend.name, process.env.OBROL_CRYPTO === 'node' ? 'node:crypto' : 'libsodium');
  const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
  fc.assert(
    fc.property(bytes(32), bytes(12), fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ maxLength: 1500 }), fc.nat(), (key, nonce, ad, pt, flip) => {
      const a = new Uint8Array(pt.length + 16);
      const b = new Uint8Array(pt.length + 16);
      sodium!.sealInto(key, nonce, ad, pt, a, 0);
      nodeBackend.sealInto(key, nonce, ad, pt, b, 0);
      assert.deepEqual(a, b);
      assert.deepEqual(sodium!.open(key, nonce, ad, a), pt);
      assert.deepEqual(nodeBackend.open(key, nonce, ad, a), pt);
      const bad = a.slice();
      bad[flip % bad.length]! ^= 1 << flip % 8;
      assert.equal(sodium!.open(key, nonce, ad, bad), null);
      assert.equal(nodeBackend.open(key, nonce, ad, bad), null);
    }),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(bytes(32), bytes(32), (k, u) => {
      assert.deepEqual(sodium!.x25519Base(k), nodeBackend.x25519Base(k));
      const pub = nodeBackend.x25519Base(u);
      assert.deepEqual(sodium!.x25519(k, pub), nodeBackend.x25519(k, pub));
    }),
    { numRuns: 100 },
  );
  // Low-order points (RFC 7748 §6.1 says check for the all-zero result): both refuse them.
  for (const low of [new Uint8Array(32), Uint8Array.of(1, ...new Uint8Array(31))]) {
    const k = generateKeyPair().privateKey;
    assert.equal(sodium!.x25519(k, low), null);
    assert.equal(nodeBackend.x25519(k, low), null);
  }
  assert.equal(sodium!.open(new Uint8Array(32), new Uint8Array(12), new Uint8Array(0), new Uint8Array(15)), null);
});

// A node that links OpenSSL statically (the official builds) exports its ChaCha20 and Poly1305, which
// native/aead.c uses; a node on a shared OpenSSL does not, and then libsodium seals.
const staticOpenssl = (process.config.variables as Record<string, unknown>).node_shared_openssl === false && process.platform === 'linux';

test('native AEAD: the addon is used where node links OpenSSL statically, and seals RFC 8439 §2.8.2 exactly', () => {
  if (staticOpenssl) assert.ok(nativeAead, `the aead addon should work with this node: ${aeadAddonError()}`);
  if (!nativeAead) return;
  const expected = process.env.OBROL_CRYPTO === 'node' ? 'node:crypto' : process.env.OBROL_CRYPTO === 'sodium' ? 'libsodium' : 'openssl';
  assert.equal(backend.aead, expected);
  const hex = (h: string) => new Uint8Array(Buffer.from(h.replace(/\s+/g, ''), 'hex'));
  const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
  const nonce = hex('070000004041424344454647');
  const ad = hex('50515253c0c1c2c3c4c5c6c7');
  const pt = new Uint8Array(Buffer.from("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it."));
  const ct = hex(`d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b
    1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116`);
  const tag = hex('1ae10b594f09e26a7e902ecbd0600691');
  const out = new Uint8Array(3 + pt.length + 16);
  nativeAead.sealInto(key, nonce, ad, pt, out, 3);
  assert.deepEqual(out.subarray(3, 3 + pt.length), ct);
  assert.deepEqual(out.subarray(3 + pt.length), tag);
  assert.deepEqual(nativeAead.open(key, nonce, ad, out.subarray(3)), pt);
  // Bad arguments throw before anything is written; a short or forged packet opens to null.
  const addon = loadAeadAddon()!;
  const small = new Uint8Array(pt.length + 15);
  assert.throws(() => addon.seal(key, nonce, ad, pt, small, 0), RangeError);
  assert.deepEqual(small, new Uint8Array(pt.length + 15));
  assert.throws(() => addon.seal(key.subarray(1), nonce, ad, pt, out, 0), RangeError);
  assert.throws(() => addon.seal(key, nonce.subarray(1), ad, pt, out, 0), RangeError);
  assert.throws(() => addon.seal(key, nonce, ad, pt, out.subarray(0, pt.length + 16), 1), RangeError);
  const overlap = new Uint8Array(pt.length + 40);
  overlap.set(pt, 0);
  assert.throws(() => addon.seal(key, nonce, ad, overlap.subarray(0, pt.length), overlap, 8), RangeError, 'out overlapping the plaintext');
  assert.throws(() => addon.open(key, nonce, ad, out.subarray(3), new Uint8Array(pt.length - 1)), RangeError);
  assert.equal(nativeAead.open(key, nonce, ad, new Uint8Array(15)), null);
  assert.equal(nativeAead.open(key, nonce, new Uint8Array(0), out.subarray(3)), null, 'other AD');
});

test('native AEAD: agrees with node:crypto for any key, nonce, AD and length, in place too; refuses every forgery', () => {
  if (!nativeAead) return;
  const native = nativeAead;
  const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
  fc.assert(
    fc.property(bytes(32), bytes(12), fc.uint8Array({ maxLength: 70 }), fc.uint8Array({ maxLength: 2100 }), fc.nat(), fc.nat(64), (key, nonce, ad, pt, flip, offset) => {
      const a = new Uint8Array(offset + pt.length + 16);
      const b = new Uint8Array(pt.length + 16);
      native.sealInto(key, nonce, ad, pt, a, offset);
      nodeBackend.sealInto(key, nonce, ad, pt, b, 0);
      assert.deepEqual(a.subarray(offset), b);
      assert.deepEqual(native.open(key, nonce, ad, b), pt);
      // In place, as a datagram sealed where its plaintext was.
      const inPlace = new Uint8Array(pt.length + 16);
      inPlace.set(pt);
      native.sealInto(key, nonce, ad, inPlace.subarray(0, pt.length), inPlace, 0);
      assert.deepEqual(inPlace, b);
      const bad = b.slice();
      bad[flip % bad.length]! ^= 1 << flip % 8;
      assert.equal(native.open(key, nonce, ad, bad), null);
      assert.equal(nodeBackend.open(key, nonce, ad, bad), null);
    }),
    { numRuns: 400 },
  );
  // Both sides of the one-pass limit (2048 bytes) and of Poly1305's 16-byte blocks, and a long AD.
  const key = new Uint8Array(32).fill(9);
  const nonce = new Uint8Array(12).fill(3);
  for (const n of [0, 1, 15, 16, 17, 63, 64, 65, 2047, 2048, 2049, 2100, 4000]) {
    for (const ad of [new Uint8Array(13).fill(1), new Uint8Array(300).fill(2)]) {
      const pt = new Uint8Array(n).map((_, i) => i * 7);
      const a = new Uint8Array(n + 16);
      const b = new Uint8Array(n + 16);
      nativeAead.sealInto(key, nonce, ad, pt, a, 0);
      nodeBackend.sealInto(key, nonce, ad, pt, b, 0);
      assert.deepEqual(a, b, `${n} bytes, ${ad.length}-byte AD`);
      assert.deepEqual(nativeAead.open(key, nonce, ad, a), pt);
      a[n] = a[n]! ^ 0x80;
      assert.equal(nativeAead.open(key, nonce, ad, a), null);
    }
  }
});

test('backends: SHA-256 and HMAC-SHA-256 match RFC 4231 and each other for any key and parts', { skip: sodiumOff }, () => {
  const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
  const ascii = (s: string) => new Uint8Array(Buffer.from(s, 'ascii'));
  // RFC 4231 test cases 1, 2 and 6 (a key longer than the 64-byte block is hashed first).
  const vectors: [Uint8Array, Uint8Array, string][] = [
    [new Uint8Array(20).fill(0x0b), ascii('Hi There'), 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7'],
    [ascii('Jefe'), ascii('what do ya want for nothing?'), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'],
    [new Uint8Array(131).fill(0xaa), ascii('Test Using Larger Than Block-Size Key - Hash Key First'), '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54'],
  ];
  for (const b of [sodium!, nodeBackend]) {
    for (const [key, data, mac] of vectors) {
      assert.deepEqual(b.hmacSha256(key, [data]), hex(mac), `${b.name}: HMAC of ${data.length} bytes under a ${key.length}-byte key`);
      assert.deepEqual(b.hmacSha256(key, [data.subarray(0, 3), new Uint8Array(0), data.subarray(3)]), hex(mac), `${b.name}: in parts`);
    }
    assert.deepEqual(b.sha256([ascii('ab'), ascii('c')]), hex('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'), `${b.name}: SHA-256("abc")`);
  }
  const parts = fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 5 });
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 150 }), parts, (key, ps) => {
      assert.deepEqual(sodium!.hmacSha256(key, ps), nodeBackend.hmacSha256(key, ps));
      assert.deepEqual(sodium!.sha256(ps), nodeBackend.sha256(ps));
    }),
    { numRuns: 500 },
  );
});

/** Noise's nonce for counter n, as the packet functions build it. */
function counterNonce(n: number): Uint8Array {
  const b = Buffer.alloc(12);
  b.writeUInt32LE(n % 2 ** 32, 4);
  b.writeUInt32LE(Math.floor(n / 2 ** 32), 8);
  return new Uint8Array(b);
}

test('sealPacket and openPacket: keys at an offset in a table, in place, the same bytes as node:crypto; a forgery writes nothing', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.nat(7),
      fc.nat({ max: 2 ** 40 }),
      fc.uint8Array({ maxLength: 2100 }),
      fc.nat(40),
      fc.nat(),
      (key, slot, counter, pt, offset, flip) => {
        const keys = new Uint8Array(8 * 64).fill(0xee);
        keys.set(key, slot * 64);
        const header = new Uint8Array(13).map((_, i) => i + counter);
        const buf = new Uint8Array(offset + 13 + pt.length + 16 + 5);
        buf.set(header, offset);
        sealPacket(keys, slot * 64, counter, buf, offset, 13, pt, pt.length);
        const expected = new Uint8Array(pt.length + 16);
        nodeBackend.sealInto(key, counterNonce(counter), header, pt, expected, 0);
        assert.deepEqual(buf.subarray(offset + 13, offset + 13 + pt.length + 16), expected);
        const length = 13 + pt.length + 16;
        const bad = buf.slice();
        bad[offset + (flip % length)]! ^= 1 << flip % 8;
        const before = bad.slice();
        assert.equal(openPacket(keys, slot * 64, counter, bad, offset, 13, length), false);
        assert.deepEqual(bad, before, 'a refused packet is left as it was');
        assert.equal(openPacket(keys, slot * 64, counter + 1, buf, offset, 13, length), false, 'another counter');
        assert.equal(openPacket(keys, slot * 64, counter, buf, offset, 13, length), true);
        assert.deepEqual(buf.subarray(offset + 13, offset + 13 + pt.length), pt);
      },
    ),
    { numRuns: 300 },
  );
  // Too short for a tag, or beyond the buffer: refused, never thrown.
  const keys = new Uint8Array(32);
  assert.equal(openPacket(keys, 0, 0, new Uint8Array(28), 0, 13, 28), false);
  assert.equal(openPacket(keys, 0, 0, new Uint8Array(40), 20, 13, 29), false);
});

test('native AEAD: the table functions check their arguments before touching anything', () => {
  const addon = loadAeadAddon();
  if (!addon || !nativeAead) return;
  const keys = new Uint8Array(64);
  const buf = new Uint8Array(100);
  const pt = new Uint8Array(10);
  assert.throws(() => addon.sealPacket(keys, 33, 0, buf, 0, 13, pt, 10), RangeError, 'no whole key at the offset');
  assert.throws(() => addon.openPacket(keys, 40, 0, buf, 0, 13, 40), RangeError);
  assert.throws(() => addon.openPacket(keys, 0, -1, buf, 0, 13, 40), RangeError, 'a negative counter');
  assert.throws(() => addon.openPacket(keys, 0, 2 ** 53, buf, 0, 13, 40), RangeError);
  assert.throws(() => addon.openPacket(keys, 0, 0, buf, 90, 13, 40), RangeError, 'beyond buf');
  assert.throws(() => addon.sealPacket(keys, 0, 0, buf, 80, 13, pt, 10), RangeError, 'no room for the tag');
  assert.throws(() => addon.sealPacket(keys, 0, 0, buf, 0, 13, pt, 11), RangeError, 'beyond plaintext');
  assert.deepEqual(buf, new Uint8Array(100));
  assert.equal(addon.openPacket(keys, 0, 0, buf, 0, 13, 28), false, 'shorter than header and tag');
});

test('KeyTable: records are zeroed, reused, kept across growth, and never released twice', () => {
  const t = new KeyTable(64, 2);
  const a = t.alloc();
  const b = t.alloc();
  t.bytes.fill(7, a, a + 64);
  t.bytes.fill(9, b, b + 64);
  const c = t.alloc(); // grows
  assert.equal(t.records, 3);
  assert.deepEqual(t.bytes.subarray(a, a + 64), new Uint8Array(64).fill(7));
  assert.deepEqual(t.bytes.subarray(b, b + 64), new Uint8Array(64).fill(9));
  assert.deepEqual(t.bytes.subarray(c, c + 64), new Uint8Array(64));
  t.release(a);
  assert.deepEqual(t.bytes.subarray(a, a + 64), new Uint8Array(64), 'wiped on release');
  assert.throws(() => t.release(a), RangeError, 'a second release would hand one record to two owners');
  assert.throws(() => t.release(b + 1), RangeError);
  assert.throws(() => t.release(64 * 50), RangeError);
  assert.equal(t.alloc(), a, 'reused');
  assert.equal(t.records, 3);
  assert.throws(() => new KeyTable(48), RangeError);
});
