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
//   recvWatch(fd, data, meta, names, slotSize, callback) -> watcher
//     reads the UDP socket fd in recvmmsg(2) batches whenever it is readable, from the event loop (a
//     uv_poll_t on a dup of fd, so the caller must stop dgram's own reading). data holds slots of slotSize
//     bytes, one per datagram; meta RECV_META uint32s per slot: length, flags (1: truncated), family (4 or
//     6), port, IPv4 address (host order), length of the IPv6 text in names; names RECV_NAME bytes per slot
//     (the IPv6 source as text, with %scope when it has one). callback(count, errno) runs once per batch,
//     count > 0, or count 0 with the errno of a failed read; the slots are valid only during the call.
//     At most RECV_ROUNDS batches per wake-up, so one busy socket cannot starve the loop's timers.
//   recvClose(watcher): stops reading and closes the dup; idempotent, and safe inside the callback.
//
//   addrStride, chunk, abi, recvMeta, recvName: numbers.

#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include "napi_errors.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define UDP_BATCH_ABI 2
#define UDP_BATCH_STRIDE 28
#define UDP_BATCH_CHUNK 256
#define UDP_BATCH_MAX_EINTR 16
#define RECV_META 6
#define RECV_NAME 64
#define RECV_MAX_SLOTS 1024
#define RECV_ROUNDS 4
#define UDP_BATCH_IP_MAX 95 /* INET6_ADDRSTRLEN + '%' + IFNAMSIZ, with room to spare */

_Static_assert(sizeof(struct sockaddr_in6) <= UDP_BATCH_STRIDE, "sockaddr_in6 must fit the stride");
_Static_assert(sizeof(struct sockaddr_in) <= UDP_BATCH_STRIDE, "sockaddr_in must fit the stride");
_Static_assert(offsetof(struct sockaddr, sa_family) == 0, "the family must come first");

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

/* 1 if fd is an open IPv4 or IPv6 UDP socket; else 0 after throwing. */
static int check_udp_socket(napi_env env, int fd) {
  int so_type = 0, so_domain = 0, so_protocol = 0;
  socklen_t so_len = sizeof so_type;
  int open = getsockopt(fd, SOL_SOCKET, SO_TYPE, &so_type, &so_len) == 0;
  so_len = sizeof so_domain;
  open = open && getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &so_domain, &so_len) == 0;
  so_len = sizeof so_protocol;
  open = open && getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &so_protocol, &so_len) == 0;
  if (!open) {
    throw_type(env, "fd is not an open socket");
    return 0;
  }
  if (so_type != SOCK_DGRAM || (so_domain != AF_INET && so_domain != AF_INET6) || so_protocol != IPPROTO_UDP) {
    throw_type(env, "fd is not a UDP socket");
    return 0;
  }
  return 1;
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
  if (!check_udp_socket(env, fd)) return NULL;

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


/* ---- receiving ---------------------------------------------------------------------------------- */

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback, data, meta, names;
  napi_async_context async;
  int fd; /* our dup */
  size_t slots, slot_size;
  int closed, release_refs;
  struct mmsghdr *msgs;
  struct iovec *iov;
  struct sockaddr_storage *from;
} recv_watcher;

/* libuv's close callback, a loop turn after recv_stop: nothing of this watcher is in use any more (it may
 * have been stopped from inside its own callback, which still used the async context then). */
static void recv_free(uv_handle_t *h) {
  recv_watcher *w = (recv_watcher *)h->data;
  if (w->release_refs) {
    if (w->callback) napi_delete_reference(w->env, w->callback);
    if (w->data) napi_delete_reference(w->env, w->data);
    if (w->meta) napi_delete_reference(w->env, w->meta);
    if (w->names) napi_delete_reference(w->env, w->names);
    if (w->async) napi_async_destroy(w->env, w->async);
  }
  free(w->msgs);
  free(w->iov);
  free(w->from);
  free(w);
}

/* Stops reading and closes the dup now; the rest goes in recv_free. */
static void recv_stop(recv_watcher *w, int release_refs) {
  if (w->closed) return;
  w->closed = 1;
  w->release_refs = release_refs;
  uv_poll_stop(&w->poll);
  if (w->fd >= 0) close(w->fd);
  w->fd = -1;
  uv_close((uv_handle_t *)&w->poll, recv_free);
}

static void recv_cleanup_hook(void *arg) {
  recv_watcher *w = (recv_watcher *)arg;
  recv_stop(w, 0); /* the environment is going: its references go with it */
}

static int typed_ptr(napi_env env, napi_ref ref, void **p, size_t *bytes) {
  napi_value v;
  napi_typedarray_type t;
  size_t n = 0;
  if (napi_get_reference_value(env, ref, &v) != napi_ok || v == NULL) return 0;
  if (napi_get_typedarray_info(env, v, &t, &n, p, NULL, NULL) != napi_ok) return 0;
  *bytes = n * (t == napi_uint8_array ? 1 : 4);
  return *p != NULL;
}

/* Calls callback(count, errno); 0 if the watcher was closed or the call failed. */
static int recv_deliver(recv_watcher *w, int count, int err) {
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return 0;
  int ok = 0;
  napi_value fn, recv, argv[2], result;
  if (napi_get_reference_value(env, w->callback, &fn) == napi_ok && fn != NULL && napi_get_global(env, &recv) == napi_ok &&
      napi_create_int32(env, count, &argv[0]) == napi_ok && napi_create_int32(env, err, &argv[1]) == napi_ok) {
    napi_status st = napi_make_callback(env, w->async, recv, fn, 2, argv, &result);
    if (st == napi_ok) ok = 1;
    else {
      bool pending = false;
      napi_value exc;
      /* An exception out of the callback goes where an event handler's would: 'uncaughtException'. */
      if (napi_is_exception_pending(env, &pending) == napi_ok && pending && napi_get_and_clear_last_exception(env, &exc) == napi_ok)
        napi_fatal_exception(env, exc);
    }
  }
  napi_close_handle_scope(env, scope);
  return ok && !w->closed;
}

static int recv_round(recv_watcher *w, struct mmsghdr *msgs, struct iovec *iov, struct sockaddr_storage *from);

static void recv_on_readable(uv_poll_t *h, int status, int events) {
  recv_watcher *w = (recv_watcher *)h->data;
  (void)events;
  if (w->closed) return;
  if (status < 0) {
    /* libuv stops a poll on EPOLLERR, which a pending socket error raises (ICMP port unreachable on a
     * connected socket, say). Take the error (reading SO_ERROR clears it), report it, and poll again; a
     * socket that cannot even answer getsockopt is not polled again. */
    int soerr = 0;
    socklen_t len = sizeof soerr;
    int ok = getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0;
    if (!recv_deliver(w, 0, ok && soerr != 0 ? soerr : -status) || !ok) return;
    if (uv_poll_start(&w->poll, UV_READABLE, recv_on_readable) != 0) return;
  }
  struct mmsghdr *msgs = w->msgs;
  struct iovec *iov = w->iov;
  struct sockaddr_storage *from = w->from;
  for (int round = 0; round < RECV_ROUNDS && !w->closed; round++) {
    napi_handle_scope scope;
    if (napi_open_handle_scope(w->env, &scope) != napi_ok) return;
    int more = recv_round(w, msgs, iov, from);
    napi_close_handle_scope(w->env, scope);
    if (!more) return;
  }
}

/* One recvmmsg call and its callback, inside a handle scope; 1 if the socket may hold more. */
static int recv_round(recv_watcher *w, struct mmsghdr *msgs, struct iovec *iov, struct sockaddr_storage *from) {
  uint8_t *data = NULL, *names = NULL;
  uint32_t *meta = NULL;
  size_t data_bytes = 0, meta_bytes = 0, names_bytes = 0;
  if (!typed_ptr(w->env, w->data, (void **)&data, &data_bytes) || !typed_ptr(w->env, w->meta, (void **)&meta, &meta_bytes) ||
      !typed_ptr(w->env, w->names, (void **)&names, &names_bytes))
    return 0;
  size_t slots = w->slots;
  /* The JS side may not have shrunk its arrays under us, but check: never write past them. */
  if (data_bytes < slots * w->slot_size || meta_bytes < slots * RECV_META * 4 || names_bytes < slots * RECV_NAME) return 0;
  for (size_t i = 0; i < slots; i++) {
    iov[i].iov_base = data + i * w->slot_size;
    iov[i].iov_len = w->slot_size;
    memset(&msgs[i], 0, sizeof msgs[i]);
    msgs[i].msg_hdr.msg_name = &from[i];
    msgs[i].msg_hdr.msg_namelen = sizeof from[i];
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  int n;
  int eintr = 0;
  do {
    n = recvmmsg(w->fd, msgs, (unsigned)slots, MSG_DONTWAIT, NULL);
  } while (n < 0 && errno == EINTR && ++eintr <= UDP_BATCH_MAX_EINTR);
  if (n < 0) {
    int e = errno;
    if (e != EAGAIN && e != EWOULDBLOCK) recv_deliver(w, 0, e);
    return 0;
  }
  if (n == 0) return 0;
  for (int i = 0; i < n; i++) {
    uint32_t *m = meta + (size_t)i * RECV_META;
    m[0] = msgs[i].msg_len;
    m[1] = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? 1u : 0u;
    m[5] = 0;
    const struct sockaddr *sa = (const struct sockaddr *)&from[i];
    if (sa->sa_family == AF_INET) {
      const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
      m[2] = 4;
      m[3] = ntohs(s4->sin_port);
      m[4] = ntohl(s4->sin_addr.s_addr);
    } else if (sa->sa_family == AF_INET6) {
      const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
      char text[INET6_ADDRSTRLEN + 1 + IF_NAMESIZE + 1];
      m[2] = 6;
      m[3] = ntohs(s6->sin6_port);
      m[4] = 0;
      if (inet_ntop(AF_INET6, &s6->sin6_addr, text, sizeof text) == NULL) text[0] = 0;
      size_t len = strlen(text);
      if (s6->sin6_scope_id != 0 && len > 0) {
        /* As Node spells it: the interface's name, else its index. */
        char ifname[IF_NAMESIZE];
        if (if_indextoname(s6->sin6_scope_id, ifname) != NULL) snprintf(text + len, sizeof text - len, "%%%s", ifname);
        else snprintf(text + len, sizeof text - len, "%%%u", (unsigned)s6->sin6_scope_id);
        len = strlen(text);
      }
      if (len > RECV_NAME) len = 0;
      memcpy(names + (size_t)i * RECV_NAME, text, len);
      m[5] = (uint32_t)len;
    } else {
      m[2] = 0; /* not expected from a UDP socket; the JS side drops it */
      m[3] = 0;
      m[4] = 0;
    }
  }
  if (!recv_deliver(w, n, 0)) return 0;
  return (size_t)n == slots; /* fewer: drained */
}

static napi_value recv_watch(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return throw_type(env, "bad call");
  if (argc < 6) return throw_type(env, "recvWatch(fd, data, meta, names, slotSize, callback) takes 6 arguments");
  int64_t fd64 = 0, slot64 = 0;
  if (!get_int(env, argv[0], "fd must be an integer in [0, 2^31)", 0, 2147483647.0, &fd64)) return NULL;
  void *data_p = NULL, *meta_p = NULL, *names_p = NULL;
  size_t data_len = 0, meta_len = 0, names_len = 0;
  napi_typedarray_type meta_kind;
  if (!get_typed(env, argv[1], 1, "data must be a Uint8Array", &data_p, &data_len, NULL)) return NULL;
  if (!get_typed(env, argv[2], 0, "meta must be a Uint32Array", &meta_p, &meta_len, &meta_kind)) return NULL;
  if (meta_kind != napi_uint32_array) return throw_type(env, "meta must be a Uint32Array");
  if (!get_typed(env, argv[3], 1, "names must be a Uint8Array", &names_p, &names_len, NULL)) return NULL;
  if (!get_int(env, argv[4], "slotSize must be an integer in [1, 65536]", 1, 65536.0, &slot64)) return NULL;
  napi_valuetype t;
  if (napi_typeof(env, argv[5], &t) != napi_ok || t != napi_function) return throw_type(env, "callback must be a function");
  size_t slots = data_len / (size_t)slot64;
  if (slots > RECV_MAX_SLOTS) slots = RECV_MAX_SLOTS;
  if (meta_len / RECV_META < slots) slots = meta_len / RECV_META;
  if (names_len / RECV_NAME < slots) slots = names_len / RECV_NAME;
  if (slots == 0) return throw_range(env, "data, meta and names must hold at least one slot");

  const int fd = (int)fd64;
  if (!check_udp_socket(env, fd)) return NULL;

  uv_loop_t *loop = NULL;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == NULL) return throw_type(env, "no event loop");
  recv_watcher *w = (recv_watcher *)calloc(1, sizeof *w);
  if (w == NULL) return throw_type(env, "out of memory");
  w->env = env;
  w->slots = slots;
  w->slot_size = (size_t)slot64;
  w->msgs = (struct mmsghdr *)calloc(slots, sizeof *w->msgs);
  w->iov = (struct iovec *)calloc(slots, sizeof *w->iov);
  w->from = (struct sockaddr_storage *)calloc(slots, sizeof *w->from);
  w->fd = w->msgs && w->iov && w->from ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;
  if (w->fd < 0) {
    free(w->msgs);
    free(w->iov);
    free(w->from);
    free(w);
    return throw_type(env, "recvWatch: out of memory, or the dup of fd failed");
  }
  napi_value name;
  if (uv_poll_init_socket(loop, &w->poll, w->fd) != 0) {
    close(w->fd);
    free(w->msgs);
    free(w->iov);
    free(w->from);
    free(w);
    return throw_type(env, "uv_poll_init failed");
  }
  w->poll.data = w;
  if (napi_create_string_utf8(env, "obrol.udpRecv", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &w->async) != napi_ok || napi_create_reference(env, argv[5], 1, &w->callback) != napi_ok ||
      napi_create_reference(env, argv[1], 1, &w->data) != napi_ok || napi_create_reference(env, argv[2], 1, &w->meta) != napi_ok ||
      napi_create_reference(env, argv[3], 1, &w->names) != napi_ok || uv_poll_start(&w->poll, UV_READABLE, recv_on_readable) != 0) {
    /* Unlikely; recv_free releases whatever was created. */
    recv_stop(w, 1);
    return throw_type(env, "recvWatch could not start");
  }
  napi_add_env_cleanup_hook(env, recv_cleanup_hook, w);
  napi_value ext;
  if (napi_create_external(env, w, NULL, NULL, &ext) != napi_ok) return NULL;
  return ext;
}

static napi_value recv_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return throw_type(env, "recvClose(watcher)");
  napi_valuetype t;
  void *p = NULL;
  if (napi_typeof(env, argv[0], &t) != napi_ok || t != napi_external || napi_get_value_external(env, argv[0], &p) != napi_ok || p == NULL)
    return throw_type(env, "watcher must come from recvWatch");
  recv_watcher *w = (recv_watcher *)p;
  if (!w->closed) {
    napi_remove_env_cleanup_hook(env, recv_cleanup_hook, w);
    recv_stop(w, 1);
  }
  return NULL;
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
      !set_num(env, exports, "abi", UDP_BATCH_ABI) || !set_fn(env, exports, "recvWatch", recv_watch) ||
      !set_fn(env, exports, "recvClose", recv_close) || !set_num(env, exports, "recvMeta", RECV_META) ||
      !set_num(env, exports, "recvName", RECV_NAME))
    return NULL;
  return exports;
}
