// aead: ChaCha20-Poly1305 (RFC 8439 §2.8) on the ChaCha20 and Poly1305 of the OpenSSL inside the running
// node, for the per-packet seal and open. A Node-API addon in plain C; src/crypto/native-aead.ts loads it
// and src/crypto/primitives.ts uses it when it is available, else libsodium.
//
// Why: libsodium's ChaCha20 here is its portable code, about 850 ns to seal a 130-byte packet; OpenSSL's
// EVP interface costs as much in per-call set-up (about 650 ns for 1 byte). OpenSSL's own ChaCha20_ctr32
// (assembly with SSSE3/AVX2/AVX-512 paths) and Poly1305 do the same work in about 430 ns. They are the
// functions OpenSSL's EVP ChaCha20-Poly1305 is built from; node links OpenSSL statically and exports its
// symbols, but these two are not in OpenSSL's public headers, so they are looked up at load time
// (dlsym) and checked before use:
// - all five symbols present, and Poly1305's context no larger than the room kept for it here;
// - the RFC 8439 §2.8.2 test vector seals to the published ciphertext and tag, and opens again;
// otherwise `available` is false, `reason` says why, and the caller keeps libsodium. A node built
// against a shared OpenSSL (which hides these symbols) lands there too.
//
// The construction is RFC 8439's, as OpenSSL's EVP does it: the Poly1305 key is the first 32 bytes of
// the ChaCha20 block with counter 0; the ciphertext is ChaCha20 from counter 1; the tag is Poly1305 over
// AD, zero padding to 16, ciphertext, zero padding to 16, and the two lengths as 64-bit little-endian.
//
//   seal(key, nonce, ad, plaintext, out, offset)   writes ciphertext and tag at out[offset ..)
//   open(key, nonce, ad, sealed, out) -> boolean   out gets sealed.length - 16 bytes of plaintext when
//                                                  the tag authenticates; false (out untouched) otherwise
//   sealPacket(keys, keyOffset, counter, buf, offset, headerLen, plaintext, length)
//       a datagram in place: the AD is buf[offset, offset + headerLen), the first `length` bytes of
//       plaintext are sealed right after it; the nonce is Noise's, 32 zero bits and the counter (an
//       integer below 2^53) as 64-bit little-endian; the key is keys[keyOffset, keyOffset + 32), a
//       table of many sessions' keys. No views, key objects or nonce buffers to make per packet.
//   openPacket(keys, keyOffset, counter, buf, offset, headerLen, length) -> boolean
//       the reverse, in place: buf[offset, offset + length) is header, ciphertext and tag; on success
//       the plaintext replaces the ciphertext, on failure nothing is written.
//   available: boolean, reason: string, abi: number
// key 32 bytes, nonce 12, all Uint8Arrays; bad arguments throw TypeError or RangeError.

#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include "napi_errors.h"

#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define AEAD_ABI 3
#define KEY_LEN 32
#define NONCE_LEN 12
#define TAG_LEN 16
/* Room for OpenSSL's POLY1305 context (248 bytes in OpenSSL 3.0 on x86-64). */
#define POLY_CTX_ROOM 512

typedef void (*chacha20_ctr32_fn)(unsigned char *out, const unsigned char *inp, size_t len, const unsigned int key[8],
                                  const unsigned int counter[4]);
typedef size_t (*poly1305_ctx_size_fn)(void);
typedef void (*poly1305_init_fn)(void *ctx, const unsigned char key[32]);
typedef void (*poly1305_update_fn)(void *ctx, const unsigned char *inp, size_t len);
typedef void (*poly1305_final_fn)(void *ctx, unsigned char mac[16]);

static chacha20_ctr32_fn chacha20_ctr32;
static poly1305_init_fn poly1305_init;
static poly1305_update_fn poly1305_update;
static poly1305_final_fn poly1305_final;
static size_t poly_ctx_size;
static const char *unavailable = NULL; /* NULL: available */

static const unsigned char zeros[16];

static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A memset the compiler may not drop (the barrier says the memory is read): key material must not
 * outlive the call. A byte-by-byte volatile loop would cost more than the Poly1305 it cleans up after. */
static void wipe(void *p, size_t n) {
  memset(p, 0, n);
  __asm__ __volatile__("" : : "r"(p) : "memory");
}

typedef struct {
  unsigned int key[8];
  unsigned int counter[4];
} chacha_state;

static void chacha_setup(chacha_state *st, const unsigned char *key, const unsigned char *nonce) {
  for (int i = 0; i < 8; i++) st->key[i] = le32(key + 4 * i);
  st->counter[0] = 0;
  st->counter[1] = le32(nonce);
  st->counter[2] = le32(nonce + 4);
  st->counter[3] = le32(nonce + 8);
}

/* Packets up to this size are done in one ChaCha20 call and one Poly1305 update, through buffers on the
 * stack: each call into OpenSSL costs about 60 ns before its first byte, which for a chat packet is a
 * third of the work (two ChaCha20 calls and five updates measured 410 ns for 130 bytes, this 265 ns).
 * Larger ones stream. */
#define ONE_PASS_MAX 2048
#define MAC_ONE_PASS_MAX (ONE_PASS_MAX + 128)

/* Poly1305 under polykey over ad, zero padding to 16, ct, zero padding to 16, and both lengths. */
static void poly_tag(const unsigned char polykey[32], const unsigned char *ad, size_t adlen, const unsigned char *ct,
                     size_t ctlen, unsigned char tag[TAG_LEN]) {
  _Alignas(64) unsigned char ctx[POLY_CTX_ROOM];
  unsigned char lens[16];
  put_le64(lens, (uint64_t)adlen);
  put_le64(lens + 8, (uint64_t)ctlen);
  poly1305_init(ctx, polykey);
  const size_t adpad = (16 - adlen % 16) % 16, ctpad = (16 - ctlen % 16) % 16;
  if (adlen + adpad + ctlen + ctpad + 16 <= MAC_ONE_PASS_MAX) {
    unsigned char mac[MAC_ONE_PASS_MAX];
    size_t n = 0;
    memcpy(mac, ad, adlen);
    n += adlen;
    memset(mac + n, 0, adpad);
    n += adpad;
    memcpy(mac + n, ct, ctlen);
    n += ctlen;
    memset(mac + n, 0, ctpad);
    n += ctpad;
    memcpy(mac + n, lens, 16);
    n += 16;
    poly1305_update(ctx, mac, n);
  } else {
    if (adlen > 0) poly1305_update(ctx, ad, adlen);
    if (adpad) poly1305_update(ctx, zeros, adpad);
    if (ctlen > 0) poly1305_update(ctx, ct, ctlen);
    if (ctpad) poly1305_update(ctx, zeros, ctpad);
    poly1305_update(ctx, lens, sizeof lens);
  }
  poly1305_final(ctx, tag);
  wipe(ctx, poly_ctx_size);
}

/* ChaCha20 from counter 0 over 64 zero bytes and then in[0, len): ks gets the Poly1305 key block (its first
 * 32 bytes are the key) followed by in XORed with the keystream from counter 1. ks holds 64 + len bytes. */
static void keystream_pass(chacha_state *st, const unsigned char *in, size_t len, unsigned char *ks) {
  memset(ks, 0, 64);
  if (len > 0) memcpy(ks + 64, in, len);
  st->counter[0] = 0;
  chacha20_ctr32(ks, ks, 64 + len, st->key, st->counter);
}

/* The Poly1305 key of st, for a packet too large for one pass. */
static void poly_key(chacha_state *st, unsigned char block[64]) {
  memset(block, 0, 64);
  st->counter[0] = 0;
  chacha20_ctr32(block, block, 64, st->key, st->counter);
}

static void do_seal(const unsigned char *key, const unsigned char *nonce, const unsigned char *ad, size_t adlen,
                    const unsigned char *pt, size_t len, unsigned char *out) {
  chacha_state st;
  chacha_setup(&st, key, nonce);
  if (len <= ONE_PASS_MAX) {
    unsigned char ks[64 + ONE_PASS_MAX];
    keystream_pass(&st, pt, len, ks);
    memcpy(out, ks + 64, len);
    poly_tag(ks, ad, adlen, out, len, out + len);
    wipe(ks, 64); /* the rest is the ciphertext */
  } else {
    unsigned char block[64];
    poly_key(&st, block);
    st.counter[0] = 1;
    chacha20_ctr32(out, pt, len, st.key, st.counter);
    poly_tag(block, ad, adlen, out, len, out + len);
    wipe(block, sizeof block);
  }
  wipe(&st, sizeof st);
}

/* 1 and the plaintext in out when the tag authenticates; 0 and out untouched otherwise. */
static int do_open(const unsigned char *key, const unsigned char *nonce, const unsigned char *ad, size_t adlen,
                   const unsigned char *sealed, size_t len, unsigned char *out) {
  chacha_state st;
  unsigned char tag[TAG_LEN];
  chacha_setup(&st, key, nonce);
  int ok;
  if (len <= ONE_PASS_MAX) {
    unsigned char ks[64 + ONE_PASS_MAX];
    keystream_pass(&st, sealed, len, ks);
    poly_tag(ks, ad, adlen, sealed, len, tag);
    unsigned char diff = 0;
    for (int i = 0; i < TAG_LEN; i++) diff |= (unsigned char)(tag[i] ^ sealed[len + i]); /* constant time */
    ok = diff == 0;
    if (ok) memcpy(out, ks + 64, len);
    wipe(ks, 64 + len);
  } else {
    unsigned char block[64];
    poly_key(&st, block);
    poly_tag(block, ad, adlen, sealed, len, tag);
    wipe(block, sizeof block);
    unsigned char diff = 0;
    for (int i = 0; i < TAG_LEN; i++) diff |= (unsigned char)(tag[i] ^ sealed[len + i]);
    ok = diff == 0;
    if (ok) {
      st.counter[0] = 1;
      chacha20_ctr32(out, sealed, len, st.key, st.counter);
    }
  }
  wipe(&st, sizeof st);
  return ok;
}

/* RFC 8439 §2.8.2. */
static int self_test(void) {
  static const unsigned char key[32] = {0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a,
                                        0x8b, 0x8c, 0x8d, 0x8e, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x95,
                                        0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f};
  static const unsigned char nonce[12] = {0x07, 0x00, 0x00, 0x00, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47};
  static const unsigned char ad[12] = {0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7};
  static const char pt[] = "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
                           "sunscreen would be it.";
  static const unsigned char ct[114] = {
      0xd3, 0x1a, 0x8d, 0x34, 0x64, 0x8e, 0x60, 0xdb, 0x7b, 0x86, 0xaf, 0xbc, 0x53, 0xef, 0x7e, 0xc2, 0xa4, 0xad, 0xed,
      0x51, 0x29, 0x6e, 0x08, 0xfe, 0xa9, 0xe2, 0xb5, 0xa7, 0x36, 0xee, 0x62, 0xd6, 0x3d, 0xbe, 0xa4, 0x5e, 0x8c, 0xa9,
      0x67, 0x12, 0x82, 0xfa, 0xfb, 0x69, 0xda, 0x92, 0x72, 0x8b, 0x1a, 0x71, 0xde, 0x0a, 0x9e, 0x06, 0x0b, 0x29, 0x05,
      0xd6, 0xa5, 0xb6, 0x7e, 0xcd, 0x3b, 0x36, 0x92, 0xdd, 0xbd, 0x7f, 0x2d, 0x77, 0x8b, 0x8c, 0x98, 0x03, 0xae, 0xe3,
      0x28, 0x09, 0x1b, 0x58, 0xfa, 0xb3, 0x24, 0xe4, 0xfa, 0xd6, 0x75, 0x94, 0x55, 0x85, 0x80, 0x8b, 0x48, 0x31, 0xd7,
      0xbc, 0x3f, 0xf4, 0xde, 0xf0, 0x8e, 0x4b, 0x7a, 0x9d, 0xe5, 0x76, 0xd2, 0x65, 0x86, 0xce, 0xc6, 0x4b, 0x61, 0x16};
  static const unsigned char tag[16] = {0x1a, 0xe1, 0x0b, 0x59, 0x4f, 0x09, 0xe2, 0x6a,
                                        0x7e, 0x90, 0x2e, 0xcb, 0xd0, 0x60, 0x06, 0x91};
  const size_t len = sizeof pt - 1; /* 114 */
  unsigned char sealed[114 + TAG_LEN], back[114];
  do_seal(key, nonce, ad, sizeof ad, (const unsigned char *)pt, len, sealed);
  if (len != sizeof ct || memcmp(sealed, ct, len) != 0 || memcmp(sealed + len, tag, TAG_LEN) != 0) return 0;
  if (!do_open(key, nonce, ad, sizeof ad, sealed, len, back) || memcmp(back, pt, len) != 0) return 0;
  unsigned char inplace[114 + TAG_LEN]; /* as openPacket opens: the plaintext over the ciphertext */
  memcpy(inplace, sealed, sizeof inplace);
  if (!do_open(key, nonce, ad, sizeof ad, inplace, len, inplace) || memcmp(inplace, pt, len) != 0) return 0;
  sealed[0] ^= 1;
  if (do_open(key, nonce, ad, sizeof ad, sealed, len, back)) return 0;
  return 1;
}

static void load(void) {
  chacha20_ctr32 = (chacha20_ctr32_fn)dlsym(RTLD_DEFAULT, "ChaCha20_ctr32");
  poly1305_ctx_size_fn ctx_size = (poly1305_ctx_size_fn)dlsym(RTLD_DEFAULT, "Poly1305_ctx_size");
  poly1305_init = (poly1305_init_fn)dlsym(RTLD_DEFAULT, "Poly1305_Init");
  poly1305_update = (poly1305_update_fn)dlsym(RTLD_DEFAULT, "Poly1305_Update");
  poly1305_final = (poly1305_final_fn)dlsym(RTLD_DEFAULT, "Poly1305_Final");
  if (!chacha20_ctr32 || !ctx_size || !poly1305_init || !poly1305_update || !poly1305_final)
    unavailable = "this node does not export OpenSSL's ChaCha20_ctr32 and Poly1305 (a shared OpenSSL?)";
  else if ((poly_ctx_size = ctx_size()) > POLY_CTX_ROOM || poly_ctx_size == 0)
    unavailable = "OpenSSL's Poly1305 context is larger than expected";
  else if (!self_test())
    unavailable = "the RFC 8439 test vector failed";
}

/* ---- Node-API ------------------------------------------------------------------------------------- */

/* A Uint8Array's bytes; 0 after throwing otherwise. A detached or empty array has length 0. */
static int get_u8(napi_env env, napi_value v, const char *what, unsigned char **data, size_t *len) {
  napi_typedarray_type t;
  void *p = NULL;
  size_t n = 0;
  if (napi_get_typedarray_info(env, v, &t, &n, &p, NULL, NULL) != napi_ok || t != napi_uint8_array) {
    throw_type(env, what);
    return 0;
  }
  static unsigned char empty[1];
  *data = p != NULL ? (unsigned char *)p : empty;
  *len = p != NULL ? n : 0;
  return 1;
}

/* key, nonce, ad and the data argument, checked. */
static int get_common(napi_env env, napi_value *argv, unsigned char **key, unsigned char **nonce, unsigned char **ad,
                      size_t *adlen, unsigned char **data, size_t *datalen, const char *data_what) {
  size_t klen = 0, nlen = 0;
  if (!get_u8(env, argv[0], "key must be a Uint8Array", key, &klen)) return 0;
  if (klen != KEY_LEN) {
    throw_range(env, "key must be 32 bytes");
    return 0;
  }
  if (!get_u8(env, argv[1], "nonce must be a Uint8Array", nonce, &nlen)) return 0;
  if (nlen != NONCE_LEN) {
    throw_range(env, "nonce must be 12 bytes");
    return 0;
  }
  if (!get_u8(env, argv[2], "ad must be a Uint8Array", ad, adlen)) return 0;
  return get_u8(env, argv[3], data_what, data, datalen);
}

static napi_value seal(napi_env env, napi_callback_info info) {
  if (unavailable) return throw_type(env, unavailable);
  napi_value argv[6];
  if (!get_args(env, info, 6, argv, "seal(key, nonce, ad, plaintext, out, offset) takes 6 arguments")) return NULL;
  unsigned char *key, *nonce, *ad, *pt, *out;
  size_t adlen, len, outlen;
  if (!get_common(env, argv, &key, &nonce, &ad, &adlen, &pt, &len, "plaintext must be a Uint8Array")) return NULL;
  if (!get_u8(env, argv[4], "out must be a Uint8Array", &out, &outlen)) return NULL;
  uint32_t offset = 0;
  if (napi_get_value_uint32(env, argv[5], &offset) != napi_ok) return throw_type(env, "offset must be a number");
  if ((uint64_t)offset + len + TAG_LEN > outlen) return throw_range(env, "out is too small for ciphertext and tag at offset");
  /* Overlap other than exact in-place would corrupt the plaintext as it is read. */
  unsigned char *dst = out + offset;
  if (dst != pt && dst < pt + len && pt < dst + len + TAG_LEN) return throw_range(env, "out overlaps plaintext");
  do_seal(key, nonce, ad, adlen, pt, len, dst);
  return NULL;
}

/* keys[keyOffset, keyOffset + 32): a key kept in a table of keys (one Uint8Array for many sessions, so a
 * packet reaches its key in one cold cache line, not three objects). */
static int get_table_key(napi_env env, napi_value table, napi_value offset_v, const unsigned char **key) {
  unsigned char *keys;
  size_t keyslen;
  uint32_t key_offset = 0;
  if (!get_u8(env, table, "keys must be a Uint8Array", &keys, &keyslen)) return 0;
  if (napi_get_value_uint32(env, offset_v, &key_offset) != napi_ok) {
    throw_type(env, "keyOffset must be a number");
    return 0;
  }
  if ((uint64_t)key_offset + KEY_LEN > keyslen) {
    throw_range(env, "keyOffset leaves no 32-byte key in keys");
    return 0;
  }
  *key = keys + key_offset;
  return 1;
}

/* Noise's nonce: 32 zero bits, then the counter (an integer below 2^53, checked) as 64-bit little-endian. */
static int get_counter_nonce(napi_env env, napi_value v, unsigned char nonce[NONCE_LEN]) {
  double counter = -1;
  if (napi_get_value_double(env, v, &counter) != napi_ok) {
    throw_type(env, "counter must be a number");
    return 0;
  }
  if (!(counter >= 0 && counter <= 9007199254740991.0) || counter != (double)(uint64_t)counter) {
    throw_range(env, "counter must be an integer in [0, 2^53)");
    return 0;
  }
  memset(nonce, 0, 4);
  put_le64(nonce + 4, (uint64_t)counter);
  return 1;
}

/* The arguments sealPacket and openPacket share: (keys, keyOffset, counter, buf, offset, headerLen). */
typedef struct {
  const unsigned char *key;
  unsigned char nonce[NONCE_LEN];
  unsigned char *buf;
  size_t buflen;
  uint32_t offset, header_len;
} packet_args;

static int get_packet_args(napi_env env, napi_value *argv, packet_args *a) {
  if (!get_table_key(env, argv[0], argv[1], &a->key)) return 0;
  if (!get_counter_nonce(env, argv[2], a->nonce)) return 0;
  if (!get_u8(env, argv[3], "buf must be a Uint8Array", &a->buf, &a->buflen)) return 0;
  if (napi_get_value_uint32(env, argv[4], &a->offset) != napi_ok) {
    throw_type(env, "offset must be a number");
    return 0;
  }
  if (napi_get_value_uint32(env, argv[5], &a->header_len) != napi_ok) {
    throw_type(env, "headerLen must be a number");
    return 0;
  }
  return 1;
}

static napi_value seal_packet(napi_env env, napi_callback_info info) {
  if (unavailable) return throw_type(env, unavailable);
  napi_value argv[8];
  if (!get_args(env, info, 8, argv, "sealPacket(keys, keyOffset, counter, buf, offset, headerLen, plaintext, length) takes 8 arguments"))
    return NULL;
  packet_args a;
  unsigned char *pt;
  size_t ptcap;
  uint32_t len = 0;
  if (!get_packet_args(env, argv, &a)) return NULL;
  if (!get_u8(env, argv[6], "plaintext must be a Uint8Array", &pt, &ptcap)) return NULL;
  if (napi_get_value_uint32(env, argv[7], &len) != napi_ok) return throw_type(env, "length must be a number");
  if (len > ptcap) return throw_range(env, "length is beyond plaintext");
  if ((uint64_t)a.offset + a.header_len + len + TAG_LEN > a.buflen)
    return throw_range(env, "buf is too small for header, ciphertext and tag at offset");
  unsigned char *dst = a.buf + a.offset + a.header_len;
  if (dst != pt && dst < pt + len && pt < dst + len + TAG_LEN) return throw_range(env, "the datagram overlaps plaintext");
  do_seal(a.key, a.nonce, a.buf + a.offset, a.header_len, pt, len, dst);
  return NULL;
}

/* A datagram opened in place: buf[offset, offset + headerLen) is the AD, then ciphertext, then the tag, to
 * offset + length. The plaintext replaces the ciphertext when the tag authenticates; otherwise nothing
 * is written. */
static napi_value open_packet(napi_env env, napi_callback_info info) {
  if (unavailable) return throw_type(env, unavailable);
  napi_value argv[7];
  if (!get_args(env, info, 7, argv, "openPacket(keys, keyOffset, counter, buf, offset, headerLen, length) takes 7 arguments"))
    return NULL;
  packet_args a;
  uint32_t len = 0;
  if (!get_packet_args(env, argv, &a)) return NULL;
  if (napi_get_value_uint32(env, argv[6], &len) != napi_ok) return throw_type(env, "length must be a number");
  if ((uint64_t)a.offset + len > a.buflen) return throw_range(env, "offset + length is beyond buf");
  int ok = 0;
  if (len >= (uint64_t)a.header_len + TAG_LEN) {
    unsigned char *ct = a.buf + a.offset + a.header_len;
    ok = do_open(a.key, a.nonce, a.buf + a.offset, a.header_len, ct, len - a.header_len - TAG_LEN, ct);
  }
  napi_value result;
  if (napi_get_boolean(env, ok ? true : false, &result) != napi_ok) return NULL;
  return result;
}

static napi_value open_(napi_env env, napi_callback_info info) {
  if (unavailable) return throw_type(env, unavailable);
  napi_value argv[5];
  if (!get_args(env, info, 5, argv, "open(key, nonce, ad, sealed, out) takes 5 arguments")) return NULL;
  unsigned char *key, *nonce, *ad, *sealed, *out;
  size_t adlen, len, outlen;
  if (!get_common(env, argv, &key, &nonce, &ad, &adlen, &sealed, &len, "sealed must be a Uint8Array")) return NULL;
  if (!get_u8(env, argv[4], "out must be a Uint8Array", &out, &outlen)) return NULL;
  int ok = 0;
  if (len >= TAG_LEN) {
    size_t ctlen = len - TAG_LEN;
    if (outlen < ctlen) return throw_range(env, "out is too small for the plaintext");
    if (out != sealed && out < sealed + len && sealed < out + ctlen) return throw_range(env, "out overlaps sealed");
    ok = do_open(key, nonce, ad, adlen, sealed, ctlen, out);
  }
  napi_value result;
  if (napi_get_boolean(env, ok ? true : false, &result) != napi_ok) return NULL;
  return result;
}

NAPI_MODULE_INIT() {
  load();
  napi_value v;
  if (napi_create_function(env, "seal", NAPI_AUTO_LENGTH, seal, NULL, &v) != napi_ok ||
      napi_set_named_property(env, exports, "seal", v) != napi_ok)
    return NULL;
  if (napi_create_function(env, "sealPacket", NAPI_AUTO_LENGTH, seal_packet, NULL, &v) != napi_ok ||
      napi_set_named_property(env, exports, "sealPacket", v) != napi_ok)
    return NULL;
  if (napi_create_function(env, "openPacket", NAPI_AUTO_LENGTH, open_packet, NULL, &v) != napi_ok ||
      napi_set_named_property(env, exports, "openPacket", v) != napi_ok)
    return NULL;
  if (napi_create_function(env, "open", NAPI_AUTO_LENGTH, open_, NULL, &v) != napi_ok ||
      napi_set_named_property(env, exports, "open", v) != napi_ok)
    return NULL;
  if (napi_get_boolean(env, unavailable == NULL, &v) != napi_ok || napi_set_named_property(env, exports, "available", v) != napi_ok)
    return NULL;
  if (napi_create_string_utf8(env, unavailable ? unavailable : "OpenSSL ChaCha20_ctr32 and Poly1305, RFC 8439 vector checked",
                              NAPI_AUTO_LENGTH, &v) != napi_ok ||
      napi_set_named_property(env, exports, "reason", v) != napi_ok)
    return NULL;
  if (napi_create_int32(env, AEAD_ABI, &v) != napi_ok || napi_set_named_property(env, exports, "abi", v) != napi_ok) return NULL;
  return exports;
}
