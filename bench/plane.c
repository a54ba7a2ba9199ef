// What a native data plane would cost at least: the per-delivery work of obrol's send path done in C,
// by slot, beside the same fan-out sent plainly (the C relay's loop), on the same sockets in the same
// minutes. A measurement for docs/PERFORMANCE.md ("What should move them next", item 1), not a server.
//
// The sender (this process, measured with getrusage) holds N member slots: a ChaCha20-Poly1305 context
// each way, packet and message counters, the peer's address and a ring of sent-packet records, as a
// native Connection would. Every 1/RATE s it fans one 100-byte message out to all N:
//   relay   the same bytes to every member in sendmmsg calls of all of them, as bench/relay.c;
//   plane   for each member: a DATA header (13 bytes: type, cid, packet number) and a whole-message
//           frame built in place, sealed (header as AD, 16-byte tag), a sent record kept, sendmmsg runs
//           of 256 while the rest is sealed, as the server's batches go;
//   lazy    the same as plane, but the sender does not wake for acks: it sleeps until the next message
//           is due and reads what has come in first (a server whose acks wait for its next wake-up);
// and between fan-outs it reads what comes back: in plane mode, each receiver acks every ACK_EVERY-th
// packet (default 2: about what obrol's clients send at 1,000 clients and 10 msg/s; 4 at 100 clients and
// 500 msg/s) with a sealed 45-byte datagram, sent on a shared 10 ms tick as obrol's simulated clients'
// acks are (their ack timers share a 10 ms grid), which the sender opens and applies (retiring sent
// records); with PLANE_ACK_AT_ONCE set in the environment, each ack leaves as soon as it is due, so most
// reach the sender during its fan-out rather than on a tick. The receivers, N sockets on 127.0.0.1, are
// a child process whose CPU is not counted.
//
// It is the least such a plane would do: no retransmission, loss detection, congestion window or
// reassembly, and OpenSSL's EVP interface for the AEAD, whose per-call set-up costs more than the
// addon's direct calls (native/aead.c); the seal alone is timed warm at start so it can be set apart.
//
//   cc -O2 -o build/plane bench/plane.c -lcrypto && build/plane relay|plane|lazy SECONDS RATE MEMBERS [ACK_EVERY]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_MEMBERS 4096
#define RUN 256          /* datagrams per sendmmsg while sealing, as SERVER_SEND_RUN_DATAGRAMS */
#define HDR 13           /* obrol's DATA header: type, 8-byte cid, 4-byte packet number */
#define TAG 16
#define PAYLOAD 100
#define RING 64          /* sent records kept per member */
#define DGRAM_MAX 256
#define ACK_LEN (HDR + 16 + TAG)

struct sent { uint32_t pn; uint32_t len; double at; };
struct slot {
  EVP_CIPHER_CTX *enc, *dec;
  uint32_t next_pn, next_seq;
  uint32_t ring_head, ring_len;
  struct sent ring[RING];
  struct sockaddr_in addr;
};

static struct slot *slots;
static int members;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
}

/* Each member's two keys, the same in both processes. */
static void key_of(int slot, int dir, unsigned char key[32]) {
  for (int i = 0; i < 32; i++) key[i] = (unsigned char)(slot * 131 + dir * 17 + i * 7);
}

static EVP_CIPHER_CTX *aead(int slot, int dir, int encrypt) {
  unsigned char key[32];
  key_of(slot, dir, key);
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  if (!c || EVP_CipherInit_ex(c, EVP_chacha20_poly1305(), NULL, key, NULL, encrypt) != 1) { fprintf(stderr, "EVP init failed\n"); exit(1); }
  return c;
}

static void nonce_of(uint32_t pn, unsigned char nonce[12]) {
  memset(nonce, 0, 12);
  for (int i = 0; i < 4; i++) nonce[4 + i] = (unsigned char)(pn >> (8 * i));
}

static void put_header(unsigned char *p, unsigned char type, uint32_t slot, uint32_t pn) {
  p[0] = type;
  memset(p + 1, 0, 8);
  memcpy(p + 1, &slot, 4);
  memcpy(p + 9, &pn, 4);
}

/* Seals p[HDR, HDR + len) in place with p[0, HDR) as AD; the tag follows. Returns the datagram's length. */
static int seal(EVP_CIPHER_CTX *c, uint32_t pn, unsigned char *p, int len) {
  unsigned char nonce[12];
  int outl;
  nonce_of(pn, nonce);
  EVP_CipherInit_ex(c, NULL, NULL, NULL, nonce, 1);
  EVP_CipherUpdate(c, NULL, &outl, p, HDR);
  EVP_CipherUpdate(c, p + HDR, &outl, p + HDR, len);
  EVP_CipherFinal_ex(c, p + HDR + len, &outl);
  EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, TAG, p + HDR + len);
  return HDR + len + TAG;
}

static int open_in_place(EVP_CIPHER_CTX *c, uint32_t pn, unsigned char *p, int n) {
  unsigned char nonce[12];
  int outl, len = n - HDR - TAG;
  if (len < 0) return -1;
  nonce_of(pn, nonce);
  EVP_CipherInit_ex(c, NULL, NULL, NULL, nonce, 0);
  EVP_CipherUpdate(c, NULL, &outl, p, HDR);
  EVP_CipherUpdate(c, p + HDR, &outl, p + HDR, len);
  EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, TAG, p + HDR + len);
  return EVP_CipherFinal_ex(c, p + HDR + len, &outl) == 1 ? len : -1;
}

/* The receivers: N sockets; in plane mode each acks every ack_every-th packet it gets. Acks due leave
 * together on a 10 ms tick, as obrol's simulated clients' do (their ack timers share a 10 ms grid), so the
 * sender reads them in batches; or, with at_once, after each read of the sockets. Runs until killed,
 * until the sender is gone, or until `until`. */
static void receivers(int n, int ack, int ack_every, int at_once, int report, struct sockaddr_in server, double until) {
  int ep = epoll_create1(0);
  int *fds = calloc((size_t)n, sizeof(int));
  uint32_t *got = calloc((size_t)n, sizeof(uint32_t)), *ack_pn = calloc((size_t)n, sizeof(uint32_t));
  int64_t *due = malloc((size_t)n * sizeof(int64_t)); /* the largest packet number to ack, or -1 */
  EVP_CIPHER_CTX **enc = calloc((size_t)n, sizeof(*enc));
  for (int i = 0; i < n; i++) {
    due[i] = -1;
    fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int buf = 1 << 20;
    setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    struct sockaddr_in a = { .sin_family = AF_INET };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(fds[i], (struct sockaddr *)&a, sizeof a) != 0) { perror("bind"); exit(1); }
    socklen_t al = sizeof a;
    getsockname(fds[i], (struct sockaddr *)&a, &al);
    if (write(report, &a.sin_port, sizeof a.sin_port) != sizeof a.sin_port) exit(1);
    struct epoll_event e = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e);
    if (ack) enc[i] = aead(i, 1, 1);
  }
  close(report);
  struct epoll_event evs[256];
  unsigned char b[DGRAM_MAX], out[ACK_LEN];
  double tick = now_s() + 0.010;
  while (now_s() < until) {
    int wait_ms = at_once ? 100 : (int)((tick - now_s()) * 1000) + 1;
    int k = epoll_wait(ep, evs, 256, wait_ms > 0 ? wait_ms : 0);
    for (int j = 0; j < k; j++) {
      uint32_t i = evs[j].data.u32;
      for (;;) {
        ssize_t r = recv(fds[i], b, sizeof b, 0);
        if (r < 0) break;
        if (!ack || r < HDR || ++got[i] % (uint32_t)ack_every != 0) continue;
        uint32_t pn;
        memcpy(&pn, b + 9, 4);
        due[i] = pn;
      }
    }
    if (!at_once) {
      if (now_s() < tick) continue;
      tick += 0.010;
    }
    for (int i = 0; ack && i < n; i++) {
      if (due[i] < 0) continue;
      uint32_t pn = (uint32_t)due[i];
      due[i] = -1;
      put_header(out, 2, (uint32_t)i, ack_pn[i]);
      memset(out + HDR, 0, 16);
      memcpy(out + HDR, &pn, 4); /* the largest packet number received */
      seal(enc[i], ack_pn[i]++, out, 16);
      sendto(fds[i], out, ACK_LEN, 0, (struct sockaddr *)&server, sizeof server);
    }
  }
}

static struct mmsghdr msgs[MAX_MEMBERS];
static struct iovec iovs[MAX_MEMBERS];
static unsigned char arena[MAX_MEMBERS][DGRAM_MAX];
static unsigned char payload[PAYLOAD];

static void send_runs(int fd, int from, int to) {
  while (from < to) {
    int r = sendmmsg(fd, msgs + from, (unsigned)(to - from), 0);
    if (r <= 0) return; /* a full buffer drops the rest, as UDP would */
    from += r;
  }
}

static void fanout_relay(int fd) {
  for (int i = 0; i < members; i++) {
    iovs[i].iov_base = payload;
    iovs[i].iov_len = PAYLOAD;
    memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
    msgs[i].msg_hdr.msg_name = &slots[i].addr;
    msgs[i].msg_hdr.msg_namelen = sizeof slots[i].addr;
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  send_runs(fd, 0, members);
}

static void fanout_plane(int fd, double t) {
  int sent = 0;
  for (int i = 0; i < members; i++) {
    struct slot *s = &slots[i];
    unsigned char *p = arena[i];
    uint32_t pn = s->next_pn++;
    put_header(p, 1, (uint32_t)i, pn);
    /* A whole-message frame: type, stream 1, seq, length (varints under 128 here but the seq), data. */
    int n = 0;
    unsigned char *f = p + HDR;
    f[n++] = 0x07;
    f[n++] = 1;
    uint32_t seq = s->next_seq++;
    do { f[n++] = (unsigned char)((seq & 0x7f) | (seq > 0x7f ? 0x80 : 0)); seq >>= 7; } while (seq);
    f[n++] = PAYLOAD;
    memcpy(f + n, payload, PAYLOAD);
    n += PAYLOAD;
    int len = seal(s->enc, pn, p, n);
    if (s->ring_len == RING) { s->ring_head = (s->ring_head + 1) % RING; s->ring_len--; } /* oldest forgotten */
    s->ring[(s->ring_head + s->ring_len++) % RING] = (struct sent){ pn, (uint32_t)len, t };
    iovs[i].iov_base = p;
    iovs[i].iov_len = (size_t)len;
    memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
    msgs[i].msg_hdr.msg_name = &s->addr;
    msgs[i].msg_hdr.msg_namelen = sizeof s->addr;
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    if (i + 1 - sent == RUN) { send_runs(fd, sent, i + 1); sent = i + 1; }
  }
  send_runs(fd, sent, members);
}

/* Reads and applies what has arrived (acks), without waiting. Returns the acks applied. */
static long drain(int fd) {
  static unsigned char bufs[64][DGRAM_MAX];
  static struct mmsghdr in[64];
  static struct iovec inv[64];
  long applied = 0;
  for (;;) {
    for (int i = 0; i < 64; i++) {
      inv[i].iov_base = bufs[i];
      inv[i].iov_len = DGRAM_MAX;
      memset(&in[i].msg_hdr, 0, sizeof in[i].msg_hdr);
      in[i].msg_hdr.msg_iov = &inv[i];
      in[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(fd, in, 64, MSG_DONTWAIT, NULL);
    if (n <= 0) return applied;
    for (int k = 0; k < n; k++) {
      unsigned char *p = bufs[k];
      int len = (int)in[k].msg_len;
      if (len != ACK_LEN || p[0] != 2) continue;
      uint32_t slot, pn, largest;
      memcpy(&slot, p + 1, 4);
      memcpy(&pn, p + 9, 4);
      if (slot >= (uint32_t)members) continue;
      struct slot *s = &slots[slot];
      if (open_in_place(s->dec, pn, p, len) < 0) continue;
      memcpy(&largest, p + HDR, 4);
      while (s->ring_len > 0 && s->ring[s->ring_head].pn <= largest) { s->ring_head = (s->ring_head + 1) % RING; s->ring_len--; }
      applied++;
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 5 && argc != 6) { fprintf(stderr, "usage: plane relay|plane|lazy SECONDS RATE MEMBERS [ACK_EVERY]\n"); return 2; }
  int lazy = strcmp(argv[1], "lazy") == 0, plane = lazy || strcmp(argv[1], "plane") == 0;
  if (!plane && strcmp(argv[1], "relay") != 0) { fprintf(stderr, "MODE is relay, plane or lazy\n"); return 2; }
  double seconds = atof(argv[2]), rate = atof(argv[3]);
  members = atoi(argv[4]);
  int ack_every = argc == 6 ? atoi(argv[5]) : 2;
  int at_once = getenv("PLANE_ACK_AT_ONCE") != NULL;
  if (seconds <= 0 || seconds > 600 || rate <= 0 || rate > 10000 || members < 1 || members > MAX_MEMBERS || ack_every < 1 || ack_every > 1000) { fprintf(stderr, "out of range\n"); return 2; }
  memset(payload, 'x', PAYLOAD);

  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int buf = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  struct sockaddr_in me = { .sin_family = AF_INET };
  inet_pton(AF_INET, "127.0.0.1", &me.sin_addr);
  if (bind(fd, (struct sockaddr *)&me, sizeof me) != 0) { perror("bind"); return 1; }
  socklen_t ml = sizeof me;
  getsockname(fd, (struct sockaddr *)&me, &ml);

  int pipefd[2];
  if (pipe(pipefd) != 0) { perror("pipe"); return 1; }
  pid_t child = fork();
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) _exit(1);
    close(pipefd[0]);
    receivers(members, plane, ack_every, at_once, pipefd[1], me, now_s() + seconds + 60);
    _exit(0);
  }
  close(pipefd[1]);
  slots = calloc((size_t)members, sizeof *slots);
  for (int i = 0; i < members; i++) {
    uint16_t port;
    if (read(pipefd[0], &port, sizeof port) != sizeof port) { fprintf(stderr, "receivers failed\n"); kill(child, SIGTERM); return 1; }
    slots[i].addr = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = port };
    inet_pton(AF_INET, "127.0.0.1", &slots[i].addr.sin_addr);
    slots[i].enc = aead(i, 0, 1);
    slots[i].dec = aead(i, 1, 0);
  }

  /* The seal alone, warm: one context, 200,000 packets. */
  double seal_ns;
  {
    unsigned char p[DGRAM_MAX];
    memset(p, 1, sizeof p);
    EVP_CIPHER_CTX *c = aead(0, 0, 1);
    double t0 = now_s();
    for (uint32_t i = 0; i < 200000; i++) seal(c, i, p, PAYLOAD + 4);
    seal_ns = (now_s() - t0) / 200000 * 1e9;
    EVP_CIPHER_CTX_free(c);
  }

  double interval = 1.0 / rate, warm = 1.0, start = now_s(), next = start, t0 = 0, c0 = 0;
  long deliveries = 0, acks = 0;
  int measuring = 0;
  for (;;) {
    double t = now_s();
    if (!measuring && t >= start + warm) { measuring = 1; t0 = t; c0 = cpu_s(); deliveries = acks = 0; }
    if (measuring && t >= t0 + seconds) break;
    if (t >= next) {
      if (plane) fanout_plane(fd, t); else fanout_relay(fd);
      deliveries += members;
      next += interval;
      if (next < t) next = t + interval;
    }
    long a = drain(fd);
    acks += a;
    double wait = next - now_s();
    if (wait > 0) {
      struct pollfd pf = { .fd = fd, .events = POLLIN };
      struct timespec ts = { .tv_sec = (time_t)wait, .tv_nsec = (long)((wait - (double)(time_t)wait) * 1e9) };
      if (lazy) nanosleep(&ts, NULL);
      else ppoll(&pf, 1, &ts, NULL);
    }
  }
  double cpu = cpu_s() - c0, elapsed = now_s() - t0;
  kill(child, SIGTERM);
  waitpid(child, NULL, 0);
  printf("{\"mode\":\"%s\",\"ackAtOnce\":%s,\"members\":%d,\"rate\":%g,\"seconds\":%.2f,\"deliveries\":%ld,\"acksPerDelivery\":%.3f,"
         "\"cpuUsPerDelivery\":%.3f,\"sealNsWarm\":%.0f}\n",
         argv[1], at_once ? "true" : "false", members, rate, elapsed, deliveries, deliveries ? (double)acks / (double)deliveries : 0.0,
         deliveries ? cpu / (double)deliveries * 1e6 : 0.0, seal_ns);
  return 0;
}
