// udp_batch: hands the kernel a whole batch of UDP datagrams in sendmmsg(2) calls. A Node-API addon in
// plain C (node_api.h only); src/net/udp-batch.ts wraps it and falls back to dgram when it is absent.
//
//   sendBatch(fd, data, meta, count, addrs[, out]) -> number processed
//     fd     a bound UDP socket (checked: SO_TYPE, SO_DOMAIN, SO_PROTOCOL); sends never block
//     data   Uint8Array: the datagrams back to back
//     meta   Uint32Array or Int32Array: (offset, length, addressIndex) per datagram
//     count  datagrams to send, meta.length >= 3 * count
//     addrs  Uint8Array of packed socket addresses, UDP_BATCH_STRIDE bytes each (see packAddress)
//     out    optional Uint32Array/Int32Array, length >= 2: [sent, skipped with an error, last errno]
//   Every argument and every meta entry is checked before anything is sent: bad input throws a
//   TypeError or RangeError and sends nothing. Datagrams go out in sendmmsg chunks of UDP_BATCH_CHUNK,
//   in order. EAGAIN/EWOULDBLOCK/ENOBUFS, or an error that concerns the socket rather than one datagram,
//   stops the batch; an error that concerns one datagram (EMSGSIZE, EHOSTUNREACH, EACCES, ...) skips it
//   and goes on. The return value is how many datagrams from the start were dealt with (sent or skipped):
//   the caller sends datagrams [returned, count) another way.
//
//   packAddress(addrs, index, ip, port, v6socket) -> boolean
//     writes the sockaddr_in/sockaddr_in6 for ip:port at addrs[index * STRIDE], zero padded. IPv4 on a
//     udp6 socket becomes IPv4-mapped (::ffff:a.b.c.d); "fe80::1%eth0" and "fe80::1%2" set the scope id.
//     false (nothing written) when ip is not an address literal the socket's family can reach.
//
//   addrStride, chunk, abi: numbers.

#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define UDP_BATCH_ABI 1
#define UDP_BATCH_STRIDE 28
#define UDP_BATCH_CHUNK 256
#define UDP_BATCH_MAX_EINTR 16
#define UDP_BATCH_IP_MAX 95 /* INET6_ADDRSTRLEN + '%' + IFNAMSIZ, with room to spare */

_Static_assert(sizeof(struct sockaddr_in6) <= UDP_BATCH_STRIDE, "sockaddr_in6 must fit the stride");
_Static_assert(sizeof(struct sockaddr_in) <= UDP_BATCH_STRIDE, "sockaddr_in must fit the stride");
_Static_assert(offsetof(struct sockaddr, sa_family) == 0, "the family must come first");

/* Throws (unless an exception is already pending) and returns NULL, the value a failing callback returns. */
static napi_value throw_type(napi_env env, const char *msg) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

static napi_value throw_range(napi_env env, const char *msg) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return NULL;
}

/* A JS number that is an integer in [min, max]; 0 after throwing otherwise. */
static int get_int(napi_env env, napi_value v, const char *what, double min, double max, int64_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) {
    throw_type(env, what);
    return 0;
  }
  double d = 0;
  if (napi_get_value_double(env, v, &d) != napi_ok) {
    throw_type(env, what);
    return 0;
  }
  if (!(d >= min && d <= max) || d != (double)(int64_t)d) {
    throw_range(env, what);
    return 0;
  }
  *out = (int64_t)d;
  return 1;
}

/* A typed array of the given kind(s); 0 after throwing otherwise. Detached buffers give length 0. */
static int get_typed(napi_env env, napi_value v, int want_u8, const char *what, void **data, size_t *len,
                     napi_typedarray_type *kind) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) {
    throw_type(env, what);
    return 0;
  }
  napi_typedarray_type t;
  size_t n = 0;
  void *p = NULL;
  if (napi_get_typedarray_info(env, v, &t, &n, &p, NULL, NULL) != napi_ok) {
    throw_type(env, what);
    return 0;
  }
  int ok = want_u8 ? (t == napi_uint8_array) : (t == napi_uint32_array || t == napi_int32_array);
  if (!ok) {
    throw_type(env, what);
    return 0;
  }
  if (p == NULL) n = 0;
  *data = p;
  *len = n;
  if (kind) *kind = t;
  return 1;
}

/* The length of the sockaddr at p, or 0 if its family is neither AF_INET nor AF_INET6. */
static socklen_t addr_len(const uint8_t *p) {
  sa_family_t fam;
  memcpy(&fam, p, sizeof fam);
  if (fam == AF_INET) return (socklen_t)sizeof(struct sockaddr_in);
  if (fam == AF_INET6) return (socklen_t)sizeof(struct sockaddr_in6);
  return 0;
}

/* Errors that concern the socket (or the call) rather than one datagram: retrying the next datagram
 * would fail the same way, so the batch stops and the caller's fallback reports the error. */
static int socket_error(int e) {
  switch (e) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case ENOBUFS:
    case EINTR:
    case EBADF:
    case ENOTSOCK:
    case EFAULT:
    case EOPNOTSUPP:
    case EPIPE:
    case ENOTCONN:
    case EISCONN:
    case EDESTADDRREQ:
    case ENOMEM:
      return 1;
    default:
      return 0;
  }
}

static napi_value send_batch(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return throw_type(env, "bad call");
  if (argc < 5) return throw_type(env, "sendBatch(fd, data, meta, count, addrs[, out]) takes 5 or 6 arguments");

  int64_t fd64 = 0, count64 = 0;
  if (!get_int(env, argv[0], "fd must be an integer in [0, 2^31)", 0, 2147483647.0, &fd64)) return NULL;
  void *data_p = NULL, *meta_p = NULL, *addrs_p = NULL, *out_p = NULL;
  size_t data_len = 0, meta_len = 0, addrs_len = 0, out_len = 0;
  napi_typedarray_type meta_kind;
  if (!get_typed(env, argv[1], 1, "data must be a Uint8Array", &data_p, &data_len, NULL)) return NULL;
  if (!get_typed(env, argv[2], 0, "meta must be a Uint32Array or Int32Array", &meta_p, &meta_len, &meta_kind))
    return NULL;
  if (!get_int(env, argv[3], "count must be an integer in [0, 2^32)", 0, 4294967295.0, &count64)) return NULL;
  if (!get_typed(env, argv[4], 1, "addrs must be a Uint8Array", &addrs_p, &addrs_len, NULL)) return NULL;
  if (argc >= 6) {
    napi_valuetype t;
    if (napi_typeof(env, argv[5], &t) != napi_ok) return throw_type(env, "out must be a Uint32Array or Int32Array");
    if (t != napi_undefined) {
      if (!get_typed(env, argv[5], 0, "out must be a Uint32Array or Int32Array", &out_p, &out_len, NULL)) return NULL;
      if (out_len < 2) return throw_range(env, "out must hold at least 2 elements");
    }
  }

  const int fd = (int)fd64;
  const size_t count = (size_t)count64;
  const uint32_t *meta = (const uint32_t *)meta_p; /* int32 and uint32 share the layout; signs checked below */
  const uint8_t *data = (const uint8_t *)data_p;
  const uint8_t *addrs = (const uint8_t *)addrs_p;
  const size_t naddrs = addrs_len / UDP_BATCH_STRIDE;

  if (count > meta_len / 3) return throw_range(env, "meta must hold 3 entries (offset, length, addressIndex) per datagram");

  /* Every entry is checked before the first datagram leaves, so a throw means nothing was sent. */
  for (size_t i = 0; i < count; i++) {
    uint32_t off = meta[3 * i], len = meta[3 * i + 1], ai = meta[3 * i + 2];
    if (meta_kind == napi_int32_array && ((off | len | ai) & 0x80000000u))
      return throw_range(env, "meta entries must not be negative");
    if ((uint64_t)off + (uint64_t)len > (uint64_t)data_len) return throw_range(env, "a datagram lies outside data");
    if ((size_t)ai >= naddrs) return throw_range(env, "an address index lies outside addrs");
    if (addr_len(addrs + (size_t)ai * UDP_BATCH_STRIDE) == 0)
      return throw_range(env, "an address entry is neither AF_INET nor AF_INET6");
  }

  /* The fd must be a UDP socket: sendmmsg on a stream socket would write into its byte stream, and on an
   * ICMP datagram socket it would send pings. Three getsockopt calls per batch, not per datagram. */
  int so_type = 0, so_domain = 0, so_protocol = 0;
  socklen_t so_len = sizeof so_type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &so_type, &so_len) != 0) return throw_type(env, "fd is not an open socket");
  so_len = sizeof so_domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &so_domain, &so_len) != 0) return throw_type(env, "fd is not an open socket");
  so_len = sizeof so_protocol;
  if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &so_protocol, &so_len) != 0) return throw_type(env, "fd is not an open socket");
  if (so_type != SOCK_DGRAM || (so_domain != AF_INET && so_domain != AF_INET6) || so_protocol != IPPROTO_UDP)
    return throw_type(env, "fd is not a UDP socket");

  struct mmsghdr msgs[UDP_BATCH_CHUNK];
  struct iovec iov[UDP_BATCH_CHUNK];
  size_t done = 0; /* datagrams dealt with: sent or skipped */
  uint32_t sent = 0, skipped = 0;
  int last_errno = 0;
  int stop = 0;

  /* Each pass of the outer loop fills one chunk; each pass of the inner loop sends at least one datagram,
   * skips one, retries after EINTR (at most UDP_BATCH_MAX_EINTR times in a row), or stops. */
  while (done < count && !stop) {
    size_t n = count - done;
    if (n > UDP_BATCH_CHUNK) n = UDP_BATCH_CHUNK;
    for (size_t k = 0; k < n; k++) {
      size_t i = done + k;
      const uint8_t *a = addrs + (size_t)meta[3 * i + 2] * UDP_BATCH_STRIDE;
      iov[k].iov_base = data ? (void *)(data + meta[3 * i]) : NULL; /* NULL only with length 0 */
      iov[k].iov_len = meta[3 * i + 1];
      memset(&msgs[k], 0, sizeof msgs[k]);
      msgs[k].msg_hdr.msg_name = (void *)a;
      msgs[k].msg_hdr.msg_namelen = addr_len(a);
      msgs[k].msg_hdr.msg_iov = &iov[k];
      msgs[k].msg_hdr.msg_iovlen = 1;
    }
    size_t pos = 0;
    int eintr = 0;
    while (pos < n) {
      int r = sendmmsg(fd, msgs + pos, (unsigned)(n - pos), MSG_DONTWAIT);
      if (r > 0) {
        pos += (size_t)r;
        sent += (uint32_t)r;
        eintr = 0;
        continue;
      }
      if (r == 0) { /* not expected from Linux; never spin on it */
        stop = 1;
        break;
      }
      int e = errno;
      last_errno = e;
      if (e == EINTR && ++eintr <= UDP_BATCH_MAX_EINTR) continue;
      if (socket_error(e)) {
        stop = 1;
        break;
      }
      /* This datagram failed on its own (too big, unreachable, refused by a firewall, ...): skip it. */
      pos++;
      skipped++;
      eintr = 0;
    }
    done += pos;
  }

  if (out_p) {
    uint32_t *o = (uint32_t *)out_p;
    o[0] = sent;
    o[1] = skipped;
    if (out_len >= 3) o[2] = (uint32_t)last_errno;
  }
  napi_value result;
  if (napi_create_double(env, (double)done, &result) != napi_ok) return NULL;
  return result;
}

/* Parses ip into a sockaddr for a socket of the given family; 0 if it is not a literal that family reaches. */
static int parse_addr(const char *ip, int port, int v6sock, uint8_t out[UDP_BATCH_STRIDE]) {
  char host[UDP_BATCH_IP_MAX + 1];
  size_t len = strlen(ip);
  if (len == 0 || len > UDP_BATCH_IP_MAX) return 0;
  memcpy(host, ip, len + 1);
  char *zone = strchr(host, '%');
  if (zone) *zone++ = '\0';

  struct in_addr a4;
  struct in6_addr a6;
  memset(out, 0, UDP_BATCH_STRIDE);
  if (inet_pton(AF_INET, host, &a4) == 1) {
    if (zone) return 0;
    if (!v6sock) {
      struct sockaddr_in s;
      memset(&s, 0, sizeof s);
      s.sin_family = AF_INET;
      s.sin_port = htons((uint16_t)port);
      s.sin_addr = a4;
      memcpy(out, &s, sizeof s);
      return 1;
    }
    struct sockaddr_in6 s;
    memset(&s, 0, sizeof s);
    s.sin6_family = AF_INET6;
    s.sin6_port = htons((uint16_t)port);
    s.sin6_addr.s6_addr[10] = 0xff;
    s.sin6_addr.s6_addr[11] = 0xff;
    memcpy(&s.sin6_addr.s6_addr[12], &a4, 4);
    memcpy(out, &s, sizeof s);
    return 1;
  }
  if (inet_pton(AF_INET6, host, &a6) == 1) {
    if (!v6sock) return 0; /* as dgram: a udp4 socket does not take IPv6 literals, mapped ones included */
    struct sockaddr_in6 s;
    memset(&s, 0, sizeof s);
    s.sin6_family = AF_INET6;
    s.sin6_port = htons((uint16_t)port);
    s.sin6_addr = a6;
    if (zone) {
      if (*zone == '\0') return 0;
      char *end = NULL;
      errno = 0;
      unsigned long id = strtoul(zone, &end, 10);
      if (end && *end == '\0' && errno == 0 && zone[0] >= '0' && zone[0] <= '9') {
        if (id > 0xffffffffUL) return 0;
        s.sin6_scope_id = (uint32_t)id;
      } else {
        unsigned idx = if_nametoindex(zone);
        if (idx == 0) return 0;
        s.sin6_scope_id = idx;
      }
    }
    memcpy(out, &s, sizeof s);
    return 1;
  }
  return 0;
}

static napi_value pack_address(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return throw_type(env, "bad call");
  if (argc < 5) return throw_type(env, "packAddress(addrs, index, ip, port, v6socket) takes 5 arguments");

  void *addrs_p = NULL;
  size_t addrs_len = 0;
  int64_t index = 0, port = 0;
  if (!get_typed(env, argv[0], 1, "addrs must be a Uint8Array", &addrs_p, &addrs_len, NULL)) return NULL;
  if (!get_int(env, argv[1], "index must be an integer in [0, 2^31)", 0, 2147483647.0, &index)) return NULL;
  if ((uint64_t)(index + 1) * UDP_BATCH_STRIDE > (uint64_t)addrs_len) return throw_range(env, "index lies outside addrs");

  napi_valuetype t;
  if (napi_typeof(env, argv[2], &t) != napi_ok || t != napi_string) return throw_type(env, "ip must be a string");
  if (!get_int(env, argv[3], "port must be an integer in [0, 65535]", 0, 65535.0, &port)) return NULL;
  bool v6 = false;
  if (napi_typeof(env, argv[4], &t) != napi_ok || t != napi_boolean) return throw_type(env, "v6socket must be a boolean");
  if (napi_get_value_bool(env, argv[4], &v6) != napi_ok) return throw_type(env, "v6socket must be a boolean");

  size_t ip_len = 0;
  if (napi_get_value_string_utf8(env, argv[2], NULL, 0, &ip_len) != napi_ok) return throw_type(env, "ip must be a string");
  int ok = 0;
  uint8_t packed[UDP_BATCH_STRIDE];
  if (ip_len > 0 && ip_len <= UDP_BATCH_IP_MAX) {
    char ip[UDP_BATCH_IP_MAX + 1];
    size_t got = 0;
    if (napi_get_value_string_utf8(env, argv[2], ip, sizeof ip, &got) != napi_ok) return throw_type(env, "ip must be a string");
    /* An embedded NUL would make the C string shorter than the JS one: not an address. */
    if (got == ip_len && strlen(ip) == got) ok = parse_addr(ip, (int)port, v6 ? 1 : 0, packed);
  }
  if (ok) memcpy((uint8_t *)addrs_p + (size_t)index * UDP_BATCH_STRIDE, packed, UDP_BATCH_STRIDE);
  napi_value result;
  if (napi_get_boolean(env, ok ? true : false, &result) != napi_ok) return NULL;
  return result;
}

static int set_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn) != napi_ok) return 0;
  return napi_set_named_property(env, exports, name, fn) == napi_ok;
}

static int set_num(napi_env env, napi_value exports, const char *name, int v) {
  napi_value n;
  if (napi_create_int32(env, v, &n) != napi_ok) return 0;
  return napi_set_named_property(env, exports, name, n) == napi_ok;
}

NAPI_MODULE_INIT() {
  if (!set_fn(env, exports, "sendBatch", send_batch) || !set_fn(env, exports, "packAddress", pack_address) ||
      !set_num(env, exports, "addrStride", UDP_BATCH_STRIDE) || !set_num(env, exports, "chunk", UDP_BATCH_CHUNK) ||
      !set_num(env, exports, "abi", UDP_BATCH_ABI))
    return NULL;
  return exports;
}
