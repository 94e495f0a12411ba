/*
 * Load generator and target server for bench/run.ts, compiled at bench time with cc.
 * One process holds both ends (clients and the target server, on threads); the proxy under
 * test runs in its own process. Loopback only: the target listens on 127.0.0.1 and the
 * proxy must be on 127.0.0.0/8. Every loop is bounded in time and count.
 *
 *   loadgen bulk PROXY up|down STREAMS SECONDS
 *       STREAMS tunnels; "up" clients write and the target counts, "down" the target writes
 *       and the clients count. Prints bytes and MiB/s over SECONDS after a 0.5 s warm-up.
 *   loadgen rate PROXY CONCURRENCY SECONDS MAX
 *       CONCURRENCY clients loop: connect, SOCKS5 handshake + CONNECT, send 32 bytes, read the
 *       target's 32-byte answer, close. Prints completed connections per second.
 *   loadgen idle PROXY COUNT
 *       Opens COUNT tunnels (each carries one 32-byte exchange), prints {"opened":N,...},
 *       then holds them until a line (or EOF) on stdin, at most 300 s.
 *
 * PROXY is "direct" (no proxy: the physical limit) or IPV4:PORT of a SOCKS5 proxy (no auth,
 * CONNECT with an IPv4 address, so no name resolution is measured).
 * With LOADGEN_PID=<pid> in the environment, bulk and rate also report "proxy_cpu": the CPU
 * seconds (user + system, all threads) that process and its child processes used during the
 * measured window, and "proxy_user": its user-space part.
 * Output: one JSON line on stdout. Failure: a message on stderr, exit 1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (128 * 1024)
#define MSG 32
#define MAX_THREADS 256
#define MAX_IDLE 20000

enum mode { BULK_UP, BULK_DOWN, RATE, IDLE };
static enum mode mode;
static int use_proxy;
static struct sockaddr_in proxy_addr, target_addr;
static int listen_fd;
static atomic_int stop_flag;
static atomic_llong bytes_total, ok_count, err_count, ready_count;
static double deadline;
static long max_conns;
static long watch_pid; /* LOADGEN_PID: the proxy, whose CPU time over the window is reported */
static int idle_fds[MAX_IDLE * 2];
static atomic_int idle_n;

/* utime + stime and utime alone (clock ticks), and parent of process `pid` from /proc/<pid>/stat; -1 if gone. */
static int read_stat(long pid, long *ppid, unsigned long long *ticks, unsigned long long *uticks) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  unsigned long long ut = 0, st = 0;
  /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
  if (sscanf(p + 2, "%*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", ppid, &ut, &st) != 3) return -1;
  *ticks = ut + st;
  *uticks = ut;
  return 0;
}

/*
 * CPU seconds (user + system, all threads) used so far by process `pid` and every process
 * below it (dante serves from child processes), and in `user` the user-space part of it
 * (what the proxy's own code and runtime cost; the rest is the kernel's socket work); -1 if
 * unknown.
 */
static double proc_cpu(long pid, double *user) {
  *user = -1;
  if (pid <= 0) return -1;
  enum { MAXP = 32768 };
  static long pids[MAXP], ppids[MAXP];
  static unsigned long long ticks[MAXP], uticks[MAXP];
  static char in_tree[MAXP];
  int n = 0;
  DIR *d = opendir("/proc");
  if (!d) return -1;
  struct dirent *e;
  while ((e = readdir(d)) && n < MAXP) {
    char *end;
    long p = strtol(e->d_name, &end, 10);
    if (*end || p <= 0) continue;
    if (read_stat(p, &ppids[n], &ticks[n], &uticks[n]) == 0) pids[n++] = p;
  }
  closedir(d);
  unsigned long long total = 0, utotal = 0;
  int found = 0;
  memset(in_tree, 0, (size_t)n);
  for (int i = 0; i < n; i++)
    if (pids[i] == pid) in_tree[i] = 1, found = 1;
  if (!found) return -1;
  /* Mark descendants: repeat until no change (trees are shallow). */
  for (int changed = 1; changed;) {
    changed = 0;
    for (int i = 0; i < n; i++) {
      if (in_tree[i]) continue;
      for (int j = 0; j < n; j++)
        if (in_tree[j] && pids[j] == ppids[i]) {
          in_tree[i] = 1, changed = 1;
          break;
        }
    }
  }
  for (int i = 0; i < n; i++)
    if (in_tree[i]) total += ticks[i], utotal += uticks[i];
  *user = (double)utotal / (double)sysconf(_SC_CLK_TCK);
  return (double)total / (double)sysconf(_SC_CLK_TCK);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void set_timeouts(int fd, int secs) {
  struct timeval tv = {secs, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int read_full(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

static int write_full(int fd, const void *buf, size_t n) {
  size_t put = 0;
  while (put < n) {
    ssize_t r = write(fd, (const char *)buf + put, n - put);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    put += (size_t)r;
  }
  return 0;
}

static void keep_idle(int fd) {
  int i = atomic_fetch_add(&idle_n, 1);
  if (i < MAX_IDLE * 2) idle_fds[i] = fd;
  else close(fd);
}

/* A connection to the target, through the SOCKS5 proxy when one is set; -1 on failure. */
static int open_tunnel(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  set_timeouts(fd, 10);
  struct sockaddr_in *dst = use_proxy ? &proxy_addr : &target_addr;
  if (connect(fd, (struct sockaddr *)dst, sizeof *dst) < 0) goto fail;
  if (use_proxy) {
    unsigned char greet[3] = {5, 1, 0}, method[2];
    if (write_full(fd, greet, 3) || read_full(fd, method, 2) || method[0] != 5 || method[1] != 0) goto fail;
    unsigned char req[10] = {5, 1, 0, 1};
    memcpy(req + 4, &target_addr.sin_addr, 4);
    memcpy(req + 8, &target_addr.sin_port, 2);
    unsigned char rep[4 + 1 + 255 + 2];
    if (write_full(fd, req, 10) || read_full(fd, rep, 4) || rep[0] != 5 || rep[1] != 0) goto fail;
    size_t rest;
    if (rep[3] == 1) rest = 4 + 2;
    else if (rep[3] == 4) rest = 16 + 2;
    else if (rep[3] == 3) {
      if (read_full(fd, rep + 4, 1)) goto fail;
      rest = (size_t)rep[4] + 2;
    } else goto fail;
    if (read_full(fd, rep + 5, rest)) goto fail;
  }
  return fd;
fail:
  close(fd);
  return -1;
}

/* ---- target server ---- */

static void *serve_bulk_conn(void *arg) {
  int fd = (int)(long)arg;
  char *buf = malloc(BUF_SIZE);
  memset(buf, 'x', BUF_SIZE);
  while (!atomic_load(&stop_flag)) {
    if (mode == BULK_UP) {
      ssize_t r = read(fd, buf, BUF_SIZE);
      if (r <= 0) break;
      atomic_fetch_add(&bytes_total, r);
    } else {
      if (write(fd, buf, BUF_SIZE) <= 0) break;
    }
  }
  free(buf);
  close(fd);
  return NULL;
}

static void *server_thread(void *arg) {
  (void)arg;
  char msg[MSG];
  memset(msg, 'r', MSG);
  for (;;) {
    int fd = accept(listen_fd, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        usleep(10000);
        continue;
      }
      return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    set_timeouts(fd, 10);
    if (mode == BULK_UP || mode == BULK_DOWN) {
      pthread_t t;
      if (pthread_create(&t, NULL, serve_bulk_conn, (void *)(long)fd) == 0) pthread_detach(t);
      else close(fd);
      continue;
    }
    char req[MSG];
    if (read_full(fd, req, MSG) || write_full(fd, msg, MSG)) {
      close(fd);
      continue;
    }
    if (mode == RATE) close(fd); /* the target closes first, like an HTTP/1.0 server */
    else keep_idle(fd);
  }
}

/* ---- clients ---- */

static void *bulk_client(void *arg) {
  (void)arg;
  int fd = open_tunnel();
  if (fd < 0) {
    atomic_fetch_add(&err_count, 1);
    return NULL;
  }
  atomic_fetch_add(&ready_count, 1);
  char *buf = malloc(BUF_SIZE);
  memset(buf, 'u', BUF_SIZE);
  while (!atomic_load(&stop_flag)) {
    if (mode == BULK_UP) {
      if (write(fd, buf, BUF_SIZE) <= 0) break;
    } else {
      ssize_t r = read(fd, buf, BUF_SIZE);
      if (r <= 0) break;
      atomic_fetch_add(&bytes_total, r);
    }
  }
  free(buf);
  return NULL; /* the socket stays open until exit, so the measurement window ends cleanly */
}

static void *rate_client(void *arg) {
  (void)arg;
  char msg[MSG], ans[MSG];
  memset(msg, 'q', MSG);
  while (now() < deadline && atomic_load(&ok_count) + atomic_load(&err_count) < max_conns) {
    int fd = open_tunnel();
    if (fd < 0 || write_full(fd, msg, MSG) || read_full(fd, ans, MSG)) {
      if (fd >= 0) close(fd);
      if (atomic_fetch_add(&err_count, 1) > 1000) break;
      continue;
    }
    close(fd);
    atomic_fetch_add(&ok_count, 1);
  }
  return NULL;
}

static long idle_target;
static atomic_long idle_claimed;
static void *idle_client(void *arg) {
  (void)arg;
  char msg[MSG], ans[MSG];
  memset(msg, 'q', MSG);
  while (atomic_fetch_add(&idle_claimed, 1) < idle_target && now() < deadline) {
    int fd = open_tunnel();
    if (fd < 0 || write_full(fd, msg, MSG) || read_full(fd, ans, MSG)) {
      if (fd >= 0) close(fd);
      atomic_fetch_add(&err_count, 1);
      continue;
    }
    keep_idle(fd);
    atomic_fetch_add(&ok_count, 1);
  }
  return NULL;
}

static void start_threads(int n, void *(*fn)(void *), pthread_t *ids) {
  for (int i = 0; i < n; i++)
    if (pthread_create(&ids[i], NULL, fn, NULL) != 0) die("pthread_create");
}

static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

static long arg_long(const char *s, long lo, long hi, const char *what) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == 0 || *end != 0 || v < lo || v > hi) {
    fprintf(stderr, "loadgen: bad %s '%s' (%ld..%ld)\n", what, s, lo, hi);
    exit(2);
  }
  return v;
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen bulk PROXY up|down STREAMS SECONDS\n"
          "       loadgen rate PROXY CONCURRENCY SECONDS MAX\n"
          "       loadgen idle PROXY COUNT\n"
          "PROXY: direct | 127.x.y.z:PORT (SOCKS5)\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 3) usage();
  signal(SIGPIPE, SIG_IGN);
  if (getenv("LOADGEN_PID")) watch_pid = atol(getenv("LOADGEN_PID"));
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  if (strcmp(argv[2], "direct") != 0) {
    char host[64];
    const char *colon = strrchr(argv[2], ':');
    if (!colon || colon - argv[2] >= (long)sizeof host) usage();
    memcpy(host, argv[2], (size_t)(colon - argv[2]));
    host[colon - argv[2]] = 0;
    proxy_addr.sin_family = AF_INET;
    proxy_addr.sin_port = htons((unsigned short)arg_long(colon + 1, 1, 65535, "proxy port"));
    if (inet_pton(AF_INET, host, &proxy_addr.sin_addr) != 1 || strncmp(host, "127.", 4) != 0) {
      fprintf(stderr, "loadgen: proxy must be a 127.0.0.0/8 address, got '%s'\n", host);
      exit(2);
    }
    use_proxy = 1;
  }

  listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  if (listen_fd < 0) die("socket");
  int one = 1;
  setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  target_addr.sin_family = AF_INET;
  target_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  target_addr.sin_port = 0;
  if (bind(listen_fd, (struct sockaddr *)&target_addr, sizeof target_addr) < 0) die("bind");
  if (listen(listen_fd, 4096) < 0) die("listen");
  socklen_t len = sizeof target_addr;
  if (getsockname(listen_fd, (struct sockaddr *)&target_addr, &len) < 0) die("getsockname");

  static pthread_t servers[MAX_THREADS], clients[MAX_THREADS];
  double t0, t1;
  if (strcmp(argv[1], "bulk") == 0) {
    if (argc != 6) usage();
    if (strcmp(argv[3], "up") == 0) mode = BULK_UP;
    else if (strcmp(argv[3], "down") == 0) mode = BULK_DOWN;
    else usage();
    int streams = (int)arg_long(argv[4], 1, 64, "stream count");
    double secs = (double)arg_long(argv[5], 1, 60, "seconds");
    start_threads(1, server_thread, servers);
    start_threads(streams, bulk_client, clients);
    for (int i = 0; i < 1000 && atomic_load(&ready_count) + atomic_load(&err_count) < streams; i++) sleep_s(0.01);
    if (atomic_load(&ready_count) != streams) {
      fprintf(stderr, "loadgen: only %lld of %d tunnels opened\n", (long long)atomic_load(&ready_count), streams);
      exit(1);
    }
    sleep_s(0.5);
    long long b0 = atomic_load(&bytes_total);
    double u0, u1;
    double c0 = proc_cpu(watch_pid, &u0);
    t0 = now();
    sleep_s(secs);
    long long b1 = atomic_load(&bytes_total);
    double c1 = proc_cpu(watch_pid, &u1);
    t1 = now();
    atomic_store(&stop_flag, 1);
    double mib = (double)(b1 - b0) / (1024.0 * 1024.0);
    printf("{\"bytes\":%lld,\"seconds\":%.3f,\"mibps\":%.1f,\"streams\":%d,\"proxy_cpu\":%.3f,\"proxy_user\":%.3f}\n", b1 - b0,
           t1 - t0, mib / (t1 - t0), streams, c0 < 0 || c1 < 0 ? -1.0 : c1 - c0, u0 < 0 || u1 < 0 ? -1.0 : u1 - u0);
  } else if (strcmp(argv[1], "rate") == 0) {
    if (argc != 6) usage();
    mode = RATE;
    int conc = (int)arg_long(argv[3], 1, 200, "concurrency");
    double secs = (double)arg_long(argv[4], 1, 60, "seconds");
    max_conns = arg_long(argv[5], 1, 10000000, "max connections");
    int nserv = conc + 8 > 64 ? 64 : conc + 8;
    start_threads(nserv, server_thread, servers);
    double u0, u1;
    double c0 = proc_cpu(watch_pid, &u0);
    t0 = now();
    deadline = t0 + secs;
    start_threads(conc, rate_client, clients);
    for (int i = 0; i < conc; i++) pthread_join(clients[i], NULL);
    t1 = now();
    sleep_s(0.05); /* the proxy finishes the last closes */
    double c1 = proc_cpu(watch_pid, &u1);
    long long ok = atomic_load(&ok_count);
    printf("{\"ok\":%lld,\"errors\":%lld,\"seconds\":%.3f,\"rate\":%.1f,\"concurrency\":%d,\"proxy_cpu\":%.3f,\"proxy_user\":%.3f}\n",
           ok, (long long)atomic_load(&err_count), t1 - t0, (double)ok / (t1 - t0), conc, c0 < 0 || c1 < 0 ? -1.0 : c1 - c0,
           u0 < 0 || u1 < 0 ? -1.0 : u1 - u0);
  } else if (strcmp(argv[1], "idle") == 0) {
    if (argc != 4) usage();
    mode = IDLE;
    idle_target = arg_long(argv[3], 1, MAX_IDLE, "tunnel count");
    int nclient = 8;
    t0 = now();
    deadline = t0 + 120;
    start_threads(16, server_thread, servers);
    start_threads(nclient, idle_client, clients);
    for (int i = 0; i < nclient; i++) pthread_join(clients[i], NULL);
    t1 = now();
    printf("{\"opened\":%lld,\"errors\":%lld,\"seconds\":%.3f}\n", (long long)atomic_load(&ok_count),
           (long long)atomic_load(&err_count), t1 - t0);
    fflush(stdout);
    alarm(300);
    char line[16];
    if (fgets(line, sizeof line, stdin) == NULL) {
    }
  } else {
    usage();
  }
  fflush(stdout);
  _exit(0);
}
