// A minimal relay of the original plain-text chat protocol, as fast as plain C makes it: recvmmsg in
// batches, and the fan-out of each line as one sendmmsg batch. A baseline for `npm run bench`, not a
// server: no expiry, no rate limits, a fixed client table.
//
//   cc -O2 -o relay bench/relay.c && ./relay PORT
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 4096
#define BATCH 64
#define DGRAM 2048
#define NAME_MAX_LEN 256

struct client { struct sockaddr_in addr; char name[NAME_MAX_LEN]; size_t name_len; };
static struct client clients[MAX_CLIENTS];
static int nclients = 0;

static int find(const struct sockaddr_in *a) {
  for (int i = 0; i < nclients; i++)
    if (clients[i].addr.sin_port == a->sin_port && clients[i].addr.sin_addr.s_addr == a->sin_addr.s_addr) return i;
  return -1;
}

static int name_taken(const char *n, size_t len) {
  for (int i = 0; i < nclients; i++)
    if (clients[i].name_len == len && memcmp(clients[i].name, n, len) == 0) return 1;
  return 0;
}

static struct mmsghdr out[MAX_CLIENTS];
static struct iovec outv[MAX_CLIENTS];

/* Sends one line to every client, in sendmmsg batches. */
static void broadcast(int fd, const char *line, size_t len) {
  for (int i = 0; i < nclients; i++) {
    outv[i].iov_base = (void *)line;
    outv[i].iov_len = len;
    memset(&out[i].msg_hdr, 0, sizeof(out[i].msg_hdr));
    out[i].msg_hdr.msg_name = &clients[i].addr;
    out[i].msg_hdr.msg_namelen = sizeof(clients[i].addr);
    out[i].msg_hdr.msg_iov = &outv[i];
    out[i].msg_hdr.msg_iovlen = 1;
  }
  int sent = 0;
  while (sent < nclients) {
    int n = sendmmsg(fd, out + sent, (unsigned)(nclients - sent), 0);
    if (n <= 0) break; /* a full socket buffer drops the rest, as UDP would */
    sent += n;
  }
}

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: relay PORT\n"); return 2; }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int buf = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  struct sockaddr_in me = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1])) };
  inet_pton(AF_INET, "127.0.0.1", &me.sin_addr);
  if (bind(fd, (struct sockaddr *)&me, sizeof me) != 0) { perror("bind"); return 1; }
  printf("relay listening on 127.0.0.1:%s\n", argv[1]);
  fflush(stdout);

  static char bufs[BATCH][DGRAM];
  static struct sockaddr_in from[BATCH];
  static struct mmsghdr in[BATCH];
  static struct iovec inv[BATCH];
  static char line[DGRAM + NAME_MAX_LEN + 32];
  for (;;) {
    for (int i = 0; i < BATCH; i++) {
      inv[i].iov_base = bufs[i];
      inv[i].iov_len = DGRAM;
      memset(&in[i].msg_hdr, 0, sizeof(in[i].msg_hdr));
      in[i].msg_hdr.msg_name = &from[i];
      in[i].msg_hdr.msg_namelen = sizeof(from[i]);
      in[i].msg_hdr.msg_iov = &inv[i];
      in[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(fd, in, BATCH, MSG_WAITFORONE, NULL);
    if (n <= 0) continue;
    for (int i = 0; i < n; i++) {
      size_t len = in[i].msg_len;
      int c = find(&from[i]);
      if (c < 0) {
        if (len == 0 || len >= NAME_MAX_LEN || nclients >= MAX_CLIENTS) continue;
        if (name_taken(bufs[i], len)) {
          static const char taken[] = "nama ini sudah diambil";
          sendto(fd, taken, sizeof taken - 1, 0, (struct sockaddr *)&from[i], sizeof from[i]);
          continue;
        }
        struct client *k = &clients[nclients++];
        k->addr = from[i];
        memcpy(k->name, bufs[i], len);
        k->name_len = len;
        int m = snprintf(line, sizeof line, "%.*s has joined the chat", (int)len, bufs[i]);
        broadcast(fd, line, (size_t)m);
      } else {
        size_t m = clients[c].name_len;
        memcpy(line, clients[c].name, m);
        memcpy(line + m, ": ", 2);
        memcpy(line + m + 2, bufs[i], len);
        broadcast(fd, line, m + 2 + len);
      }
    }
  }
}
