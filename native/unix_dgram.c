/*
 * svp_unix_dgram: AF_UNIX datagram sockets for Node-API (Node, Deno, Bun).
 *
 * Node has no AF_UNIX datagram sockets, and servald's MDP socket lives in the Linux abstract
 * namespace, where the address length must count exactly the name. Addresses cross this
 * boundary as the raw bytes of sun_path (abstract names start with a NUL byte; an empty
 * address means "autobind" / "unnamed sender").
 *
 * Two ways to receive:
 * - event-loop mode (open(cb, 1), under Node): the socket is watched by the JS thread's own
 *   libuv loop (uv_poll, its functions looked up at run time) and datagrams go to JS straight
 *   from the poll callback, a batch in one callback scope. No thread hop: one wake-up per
 *   batch instead of two, which matters on a busy machine (each MSP round trip waits for it).
 *   When the loop or those functions are not there, open() falls back to:
 * - thread mode (open(cb) or the fallback; Deno, Bun): one reader thread per socket blocks in
 *   poll() on the socket and a wake pipe, and hands each datagram to JS through a thread-safe
 *   function. It never blocks on JS: when MAX_PENDING events wait for the JS thread it stops
 *   reading, so the kernel queue (and the sender) wait.
 * close() stops the watcher (or wakes and joins the thread) and closes the descriptors before
 * returning.
 *
 * JS API (all synchronous):
 *   open(cb[, mode]) -> handle cb(kind, data, addr): kind 0 datagram (Uint8Array, Uint8Array),
 *                              1 writable, 2 receive error (data = errno name), 3 fatal error
 *                              (the reader stopped; data = errno name)
 *   bind(h, addr)              addr: Uint8Array sun_path bytes; empty = autobind
 *   connect(h, addr)
 *   send(h, data, addr|null)   -> 0, or an errno name ("EAGAIN", "ECONNREFUSED", ...)
 *   address(h) -> Uint8Array   getsockname()
 *   wantWritable(h)            one "writable" event when the socket (or connected peer) has room
 *   ref(h, on), close(h)
 *   mode(h) -> 0 thread, 1 event loop
 *   peerCred(fd) -> {pid, uid, gid} | null
 *                              the credentials of the process at the other end of a connected
 *                              AF_UNIX stream socket `fd` (any socket, e.g. one node:net
 *                              accepted), as the kernel recorded them at connect():
 *                              getsockopt(SO_PEERCRED). null where the platform has no
 *                              SO_PEERCRED; throws the errno name on failure (EBADF, ENOTSOCK).
 *   dup(fd) -> fd              a second descriptor (close-on-exec) for the same open socket:
 *                              how Node 20, which has no reusePort, lets several event loops
 *                              (worker threads) accept on one listening socket, each closing
 *                              only its own descriptor (src/platform/loops.ts)
 *   socketFilter(fd, prog|null) attach a classic BPF program (Uint8Array of struct
 *                              sock_filter, 8 bytes each, native byte order) to socket `fd`
 *                              (SO_ATTACH_FILTER), or detach it (null; no error when none is
 *                              attached): how the embedded node's overlay drops a flood in the
 *                              kernel (src/platform/udp.ts); throws the errno name on failure
 */
#define NAPI_VERSION 8
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <dlfcn.h>
#ifdef __linux__
#include <linux/filter.h>
#endif
#if defined(__has_include)
#if __has_include(<uv.h>)
#include <uv.h>
#define HAVE_UV 1
#endif
#endif

#define MAX_DGRAM 65536
#define MAX_PENDING 256
#define BATCH 64

typedef struct {
  int fd, wake_r, wake_w;
  pthread_t thread;
  napi_threadsafe_function tsfn;
  atomic_int closing, want_write, pending, paused;
  int closed, refs; /* main thread only; refs: the JS handle and the tsfn (or the uv watcher) */
  /* event-loop mode */
  int loop_mode;
  void *watcher; /* uv_poll_t, uv_handle_size(UV_POLL) bytes */
  napi_env env;
  napi_ref cb, resource;
  napi_async_context actx;
  uint8_t *buf;
} Sock;

typedef struct {
  int kind, err;
  size_t len, alen;
  uint8_t *data;
  uint8_t addr[sizeof(((struct sockaddr_un *)0)->sun_path)];
} Event;

static const char *errname(int e) {
  switch (e) {
    case EAGAIN: return "EAGAIN";
    case EINTR: return "EINTR";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ECONNRESET: return "ECONNRESET";
    case ENOENT: return "ENOENT";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EMSGSIZE: return "EMSGSIZE";
    case ENOBUFS: return "ENOBUFS";
    case ENOMEM: return "ENOMEM";
    case ENOTCONN: return "ENOTCONN";
    case EDESTADDRREQ: return "EDESTADDRREQ";
    case EINVAL: return "EINVAL";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EBADF: return "EBADF";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOTDIR: return "ENOTDIR";
    case EROFS: return "EROFS";
    default: return "EIO";
  }
}

static void set_cloexec_nonblock(int fd) {
  fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void wake(Sock *s) {
  char b = 1;
  ssize_t r = write(s->wake_w, &b, 1); /* a full pipe is already a pending wake-up */
  (void)r;
}

static void free_if_unowned(Sock *s) {
  if (--s->refs == 0) free(s);
}

static napi_value throw_errno(napi_env env, const char *what, int e) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(e));
  napi_throw_error(env, errname(e), msg);
  return NULL;
}

/* Runs on the JS thread. env == NULL when the function is being torn down. */
static void call_js(napi_env env, napi_value cb, void *ctx, void *data) {
  Sock *s = ctx;
  Event *ev = data;
  /* resume a paused reader once half the backlog is gone (never after close: the pipe is shut) */
  if (atomic_fetch_sub(&s->pending, 1) == MAX_PENDING / 2 && atomic_load(&s->paused) && !s->closed) wake(s);
  if (env != NULL && cb != NULL && !atomic_load(&s->closing)) {
    napi_value argv[3], undef, ab;
    void *p;
    napi_get_undefined(env, &undef);
    napi_create_int32(env, ev->kind, &argv[0]);
    argv[1] = argv[2] = undef;
    if (ev->kind == 0) {
      napi_create_arraybuffer(env, ev->len, &p, &ab);
      if (ev->len) memcpy(p, ev->data, ev->len);
      napi_create_typedarray(env, napi_uint8_array, ev->len, ab, 0, &argv[1]);
      napi_create_arraybuffer(env, ev->alen, &p, &ab);
      if (ev->alen) memcpy(p, ev->addr, ev->alen);
      napi_create_typedarray(env, napi_uint8_array, ev->alen, ab, 0, &argv[2]);
    } else if (ev->kind >= 2) {
      napi_create_string_utf8(env, errname(ev->err), NAPI_AUTO_LENGTH, &argv[1]);
    }
    napi_call_function(env, undef, cb, 3, argv, NULL);
  }
  free(ev->data);
  free(ev);
}

static int emit(Sock *s, Event *ev) {
  atomic_fetch_add(&s->pending, 1);
  if (napi_call_threadsafe_function(s->tsfn, ev, napi_tsfn_nonblocking) != napi_ok) {
    atomic_fetch_sub(&s->pending, 1);
    free(ev->data);
    free(ev);
    return -1;
  }
  return 0;
}

static int emit_simple(Sock *s, int kind, int err) {
  Event *ev = calloc(1, sizeof *ev);
  if (!ev) return -1;
  ev->kind = kind;
  ev->err = err;
  return emit(s, ev);
}

/* Reads up to BATCH datagrams. Returns -1 when the socket is unusable. */
static int read_batch(Sock *s, uint8_t *buf) {
  for (int i = 0; i < BATCH && atomic_load(&s->pending) < MAX_PENDING; i++) {
    struct sockaddr_un sa;
    socklen_t salen = sizeof sa;
    memset(&sa, 0, sizeof sa);
    ssize_t n = recvfrom(s->fd, buf, MAX_DGRAM, MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)&sa, &salen);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      if (errno == EINTR) continue;
      int e = errno, transient = e == ECONNREFUSED || e == ECONNRESET || e == ENOBUFS || e == ENOMEM;
      emit_simple(s, transient ? 2 : 3, e);
      return transient ? 0 : -1;
    }
    if ((size_t)n > MAX_DGRAM) { /* never deliver a truncated datagram */
      emit_simple(s, 2, EMSGSIZE);
      continue;
    }
    Event *ev = calloc(1, sizeof *ev);
    if (!ev || (n > 0 && !(ev->data = malloc((size_t)n)))) {
      free(ev);
      emit_simple(s, 2, ENOMEM);
      continue;
    }
    ev->len = (size_t)n;
    if (n > 0) memcpy(ev->data, buf, (size_t)n);
    size_t alen = salen > offsetof(struct sockaddr_un, sun_path) ? salen - offsetof(struct sockaddr_un, sun_path) : 0;
    if (alen > sizeof ev->addr) alen = sizeof ev->addr;
    if (alen > 0 && sa.sun_path[0] != 0) alen = strnlen(sa.sun_path, alen); /* pathname: drop the NUL */
    memcpy(ev->addr, sa.sun_path, alen);
    ev->alen = alen;
    if (emit(s, ev) != 0) return -1;
  }
  return 0;
}

static void *reader(void *arg) {
  Sock *s = arg;
  uint8_t *buf = malloc(MAX_DGRAM);
  while (buf && !atomic_load(&s->closing)) {
    /* paused is set before pending is read, so call_js cannot miss the wake-up */
    atomic_store(&s->paused, 1);
    int full = atomic_load(&s->pending) >= MAX_PENDING;
    if (!full) atomic_store(&s->paused, 0);
    struct pollfd p[2] = {
      {s->fd, (short)((full ? 0 : POLLIN) | (atomic_load(&s->want_write) ? POLLOUT : 0)), 0},
      {s->wake_r, POLLIN, 0},
    };
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      emit_simple(s, 3, errno);
      break;
    }
    if (atomic_load(&s->closing)) break;
    if (p[1].revents) {
      char drain[64];
      while (read(s->wake_r, drain, sizeof drain) > 0) {}
    }
    if (p[0].revents & (POLLHUP | POLLNVAL)) { /* never expected (no shutdown); do not spin on it */
      emit_simple(s, 3, p[0].revents & POLLNVAL ? EBADF : ECONNRESET);
      break;
    }
    if ((p[0].revents & POLLOUT) && atomic_exchange(&s->want_write, 0)) emit_simple(s, 1, 0);
    if ((p[0].revents & (POLLIN | POLLERR)) && read_batch(s, buf) != 0) break;
  }
  if (!buf) emit_simple(s, 3, ENOMEM);
  free(buf);
  napi_release_threadsafe_function(s->tsfn, napi_tsfn_release);
  return NULL;
}

static void tsfn_finalize(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  free_if_unowned(data);
}

static void loop_close(Sock *s);

static void do_close(Sock *s) {
  if (s->closed) return;
  s->closed = 1;
  atomic_store(&s->closing, 1);
  if (s->loop_mode) {
    loop_close(s);
    return;
  }
  wake(s);
  pthread_join(s->thread, NULL);
  close(s->fd);
  close(s->wake_r);
  close(s->wake_w);
}

static void handle_finalize(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  do_close(data);
  free_if_unowned(data);
}

static Sock *get_sock(napi_env env, napi_value v) {
  Sock *s = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, (void **)&s) != napi_ok || !s) {
    napi_throw_type_error(env, "EINVAL", "not a socket handle");
    return NULL;
  }
  if (s->closed) {
    napi_throw_error(env, "EBADF", "socket is closed");
    return NULL;
  }
  return s;
}

/* Fills sa from a Uint8Array of sun_path bytes; returns the address length or 0 after throwing. */
static socklen_t get_addr(napi_env env, napi_value v, struct sockaddr_un *sa) {
  void *p;
  size_t len;
  napi_typedarray_type t;
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (napi_get_typedarray_info(env, v, &t, &len, &p, NULL, NULL) != napi_ok || t != napi_uint8_array) {
    napi_throw_type_error(env, "EINVAL", "address must be a Uint8Array");
    return 0;
  }
  if (len > sizeof sa->sun_path) {
    throw_errno(env, "address", ENAMETOOLONG);
    return 0;
  }
  if (len) memcpy(sa->sun_path, p, len);
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
}

#ifdef HAVE_UV
/* libuv as the host exports it (Node does), looked up at run time so that the addon loads
 * anywhere; any function missing means thread mode. */
static struct {
  int state; /* 0 not looked up, 1 usable, -1 not */
  int (*poll_init)(uv_loop_t *, uv_poll_t *, int);
  int (*poll_start)(uv_poll_t *, int, uv_poll_cb);
  int (*poll_stop)(uv_poll_t *);
  void (*close)(uv_handle_t *, uv_close_cb);
  void (*ref)(uv_handle_t *);
  void (*unref)(uv_handle_t *);
  size_t (*handle_size)(uv_handle_type);
  void (*set_data)(uv_handle_t *, void *);
  void *(*get_data)(const uv_handle_t *);
} uvf;

static int uv_usable(void) {
  if (uvf.state == 0) {
    uvf.poll_init = (int (*)(uv_loop_t *, uv_poll_t *, int))dlsym(RTLD_DEFAULT, "uv_poll_init");
    uvf.poll_start = (int (*)(uv_poll_t *, int, uv_poll_cb))dlsym(RTLD_DEFAULT, "uv_poll_start");
    uvf.poll_stop = (int (*)(uv_poll_t *))dlsym(RTLD_DEFAULT, "uv_poll_stop");
    uvf.close = (void (*)(uv_handle_t *, uv_close_cb))dlsym(RTLD_DEFAULT, "uv_close");
    uvf.ref = (void (*)(uv_handle_t *))dlsym(RTLD_DEFAULT, "uv_ref");
    uvf.unref = (void (*)(uv_handle_t *))dlsym(RTLD_DEFAULT, "uv_unref");
    uvf.handle_size = (size_t (*)(uv_handle_type))dlsym(RTLD_DEFAULT, "uv_handle_size");
    uvf.set_data = (void (*)(uv_handle_t *, void *))dlsym(RTLD_DEFAULT, "uv_handle_set_data");
    uvf.get_data = (void *(*)(const uv_handle_t *))dlsym(RTLD_DEFAULT, "uv_handle_get_data");
    int ok = uvf.poll_init && uvf.poll_start && uvf.poll_stop && uvf.close && uvf.ref && uvf.unref && uvf.handle_size && uvf.set_data && uvf.get_data;
    uvf.state = ok ? 1 : -1;
  }
  return uvf.state == 1;
}

/* Calls cb(kind, data, addr) on the JS thread inside the open callback scope; an exception
 * goes to the process's uncaught-exception handling, as it would from any I/O callback. */
static void loop_call(Sock *s, napi_value cb, int kind, const uint8_t *data, size_t len, const uint8_t *addr, size_t alen, int err) {
  napi_env env = s->env;
  napi_value argv[3], undef, ab;
  void *p;
  napi_get_undefined(env, &undef);
  napi_create_int32(env, kind, &argv[0]);
  argv[1] = argv[2] = undef;
  if (kind == 0) {
    napi_create_arraybuffer(env, len, &p, &ab);
    if (len) memcpy(p, data, len);
    napi_create_typedarray(env, napi_uint8_array, len, ab, 0, &argv[1]);
    napi_create_arraybuffer(env, alen, &p, &ab);
    if (alen) memcpy(p, addr, alen);
    napi_create_typedarray(env, napi_uint8_array, alen, ab, 0, &argv[2]);
  } else if (kind >= 2) {
    napi_create_string_utf8(env, errname(err), NAPI_AUTO_LENGTH, &argv[1]);
  }
  if (napi_call_function(env, undef, cb, 3, argv, NULL) == napi_pending_exception) {
    napi_value e;
    if (napi_get_and_clear_last_exception(env, &e) == napi_ok) napi_fatal_exception(env, e);
  }
}

static void on_poll(uv_poll_t *h, int status, int events);

static void loop_restart(Sock *s) {
  uvf.poll_start((uv_poll_t *)s->watcher, UV_READABLE | (atomic_load(&s->want_write) ? UV_WRITABLE : 0), on_poll);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  Sock *s = uvf.get_data((uv_handle_t *)h);
  if (!s || s->closed) return;
  napi_env env = s->env;
  napi_handle_scope hs;
  napi_callback_scope cs;
  napi_value cb, resource;
  if (napi_open_handle_scope(env, &hs) != napi_ok) return;
  napi_get_reference_value(env, s->cb, &cb);
  napi_get_reference_value(env, s->resource, &resource);
  if (napi_open_callback_scope(env, resource, s->actx, &cs) != napi_ok) {
    napi_close_handle_scope(env, hs);
    return;
  }
  if (status < 0) {
    uvf.poll_stop(h);
    loop_call(s, cb, 3, NULL, 0, NULL, 0, EIO);
  } else {
    if ((events & UV_WRITABLE) && atomic_exchange(&s->want_write, 0)) {
      loop_restart(s);
      loop_call(s, cb, 1, NULL, 0, NULL, 0, 0);
    }
    for (int i = 0; i < BATCH && (events & UV_READABLE) && !s->closed; i++) {
      struct sockaddr_un sa;
      socklen_t salen = sizeof sa;
      memset(&sa, 0, sizeof sa);
      ssize_t n = recvfrom(s->fd, s->buf, MAX_DGRAM, MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)&sa, &salen);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR) continue;
        int e = errno, transient = e == ECONNREFUSED || e == ECONNRESET || e == ENOBUFS || e == ENOMEM;
        if (!transient) uvf.poll_stop(h);
        loop_call(s, cb, transient ? 2 : 3, NULL, 0, NULL, 0, e);
        break;
      }
      if ((size_t)n > MAX_DGRAM) { /* never deliver a truncated datagram */
        loop_call(s, cb, 2, NULL, 0, NULL, 0, EMSGSIZE);
        continue;
      }
      size_t alen = salen > offsetof(struct sockaddr_un, sun_path) ? salen - offsetof(struct sockaddr_un, sun_path) : 0;
      if (alen > sizeof sa.sun_path) alen = sizeof sa.sun_path;
      if (alen > 0 && sa.sun_path[0] != 0) alen = strnlen(sa.sun_path, alen); /* pathname: drop the NUL */
      loop_call(s, cb, 0, s->buf, (size_t)n, (const uint8_t *)sa.sun_path, alen, 0);
    }
  }
  napi_close_callback_scope(env, cs); /* runs the microtasks queued by the whole batch */
  napi_close_handle_scope(env, hs);
}

static void on_watcher_closed(uv_handle_t *h) {
  Sock *s = uvf.get_data(h);
  free(h);
  free_if_unowned(s);
}

/* Sets s up for event-loop mode; 0 on success, -1 (nothing to undo) when not possible. */
static int loop_open(napi_env env, Sock *s, napi_value cb) {
  uv_loop_t *loop = NULL;
  if (!uv_usable() || napi_get_uv_event_loop(env, (struct uv_loop_s **)&loop) != napi_ok || !loop) return -1;
  size_t size = uvf.handle_size(UV_POLL);
  if (size < sizeof(uv_handle_t)) return -1;
  void *w = calloc(1, size);
  uint8_t *buf = malloc(MAX_DGRAM);
  napi_value resource, name;
  if (!w || !buf || uvf.poll_init(loop, (uv_poll_t *)w, s->fd) != 0) {
    free(w);
    free(buf);
    return -1;
  }
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, "svp_unix_dgram", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, resource, name, &s->actx);
  napi_create_reference(env, resource, 1, &s->resource);
  napi_create_reference(env, cb, 1, &s->cb);
  s->env = env;
  s->buf = buf;
  s->watcher = w;
  s->loop_mode = 1;
  uvf.set_data((uv_handle_t *)w, s);
  loop_restart(s);
  return 0;
}

static void loop_close(Sock *s) {
  uvf.poll_stop((uv_poll_t *)s->watcher);
  close(s->fd);
  uvf.close((uv_handle_t *)s->watcher, on_watcher_closed); /* frees the watcher, drops its ref */
  napi_delete_reference(s->env, s->cb);
  napi_delete_reference(s->env, s->resource);
  napi_async_destroy(s->env, s->actx);
  free(s->buf);
  s->buf = NULL;
}
#else
static int loop_open(napi_env env, Sock *s, napi_value cb) { (void)env; (void)s; (void)cb; return -1; }
static void loop_close(Sock *s) { (void)s; }
#endif

#define ARGS(n)                                                                   \
  size_t argc = n;                                                                \
  napi_value argv[n > 0 ? n : 1];                                                 \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL; \
  if (argc < n) { napi_throw_type_error(env, "EINVAL", "missing argument"); return NULL; }

static napi_value js_open(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t want_loop = 0;
  if (argc >= 2) { /* ARGS fetched only the first; argc says how many were given */
    size_t two = 2;
    napi_value both[2];
    if (napi_get_cb_info(env, info, &two, both, NULL, NULL) == napi_ok) napi_get_value_int32(env, both[1], &want_loop);
  }
  Sock *s = calloc(1, sizeof *s);
  if (!s) return throw_errno(env, "open", ENOMEM);
  int pfd[2];
#ifdef SOCK_CLOEXEC
  s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
#else
  s->fd = socket(AF_UNIX, SOCK_DGRAM, 0);
#endif
  if (s->fd < 0) {
    free(s);
    return throw_errno(env, "socket", errno);
  }
  set_cloexec_nonblock(s->fd);
  if (pipe(pfd) != 0) {
    int e = errno;
    close(s->fd);
    free(s);
    return throw_errno(env, "pipe", e);
  }
  s->wake_r = pfd[0];
  s->wake_w = pfd[1];
  set_cloexec_nonblock(s->wake_r);
  set_cloexec_nonblock(s->wake_w);
  napi_value name, handle;
  if (want_loop == 1 && loop_open(env, s, argv[0]) == 0) {
    close(s->wake_r); /* no reader thread to wake */
    close(s->wake_w);
    s->wake_r = s->wake_w = -1;
    s->refs = 2; /* the JS handle and the watcher */
    napi_create_external(env, s, handle_finalize, NULL, &handle);
    return handle;
  }
  napi_create_string_utf8(env, "svp_unix_dgram", NAPI_AUTO_LENGTH, &name);
  s->refs = 2;
  if (napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, s, tsfn_finalize, s, call_js, &s->tsfn) != napi_ok) {
    close(s->fd); close(s->wake_r); close(s->wake_w);
    free(s);
    napi_throw_error(env, "EINVAL", "cannot create the reader callback");
    return NULL;
  }
  if (pthread_create(&s->thread, NULL, reader, s) != 0) {
    s->refs = 1;
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
    close(s->fd); close(s->wake_r); close(s->wake_w);
    return throw_errno(env, "pthread_create", EAGAIN);
  }
  napi_create_external(env, s, handle_finalize, NULL, &handle);
  return handle;
}

static napi_value js_bind(napi_env env, napi_callback_info info) {
  ARGS(2);
  Sock *s = get_sock(env, argv[0]);
  struct sockaddr_un sa;
  socklen_t len;
  if (!s || !(len = get_addr(env, argv[1], &sa))) return NULL;
  if (len == offsetof(struct sockaddr_un, sun_path)) len = sizeof(sa_family_t); /* autobind */
  if (bind(s->fd, (struct sockaddr *)&sa, len) != 0) return throw_errno(env, "bind", errno);
  return NULL;
}

static napi_value js_connect(napi_env env, napi_callback_info info) {
  ARGS(2);
  Sock *s = get_sock(env, argv[0]);
  struct sockaddr_un sa;
  socklen_t len;
  if (!s || !(len = get_addr(env, argv[1], &sa))) return NULL;
  if (connect(s->fd, (struct sockaddr *)&sa, len) != 0) return throw_errno(env, "connect", errno);
  return NULL;
}

static napi_value js_send(napi_env env, napi_callback_info info) {
  ARGS(3);
  Sock *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  void *p;
  size_t len;
  napi_typedarray_type t;
  napi_valuetype at;
  if (napi_get_typedarray_info(env, argv[1], &t, &len, &p, NULL, NULL) != napi_ok || t != napi_uint8_array) {
    napi_throw_type_error(env, "EINVAL", "data must be a Uint8Array");
    return NULL;
  }
  struct sockaddr_un sa;
  socklen_t salen = 0;
  napi_typeof(env, argv[2], &at);
  if (at != napi_null && at != napi_undefined && !(salen = get_addr(env, argv[2], &sa))) return NULL;
  ssize_t n;
  do {
    n = sendto(s->fd, len ? p : "", len, MSG_DONTWAIT | MSG_NOSIGNAL, salen ? (struct sockaddr *)&sa : NULL, salen);
  } while (n < 0 && errno == EINTR);
  napi_value r;
  if (n < 0) napi_create_string_utf8(env, errname(errno == EWOULDBLOCK ? EAGAIN : errno), NAPI_AUTO_LENGTH, &r);
  else napi_create_int32(env, 0, &r);
  return r;
}

static napi_value js_address(napi_env env, napi_callback_info info) {
  ARGS(1);
  Sock *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  struct sockaddr_un sa;
  socklen_t salen = sizeof sa;
  memset(&sa, 0, sizeof sa);
  if (getsockname(s->fd, (struct sockaddr *)&sa, &salen) != 0) return throw_errno(env, "getsockname", errno);
  size_t alen = salen > offsetof(struct sockaddr_un, sun_path) ? salen - offsetof(struct sockaddr_un, sun_path) : 0;
  if (alen > 0 && sa.sun_path[0] != 0) alen = strnlen(sa.sun_path, alen);
  void *p;
  napi_value ab, r;
  napi_create_arraybuffer(env, alen, &p, &ab);
  if (alen) memcpy(p, sa.sun_path, alen);
  napi_create_typedarray(env, napi_uint8_array, alen, ab, 0, &r);
  return r;
}

static napi_value js_want_writable(napi_env env, napi_callback_info info) {
  ARGS(1);
  Sock *s = get_sock(env, argv[0]);
  if (s && !atomic_exchange(&s->want_write, 1)) {
#ifdef HAVE_UV
    if (s->loop_mode) loop_restart(s);
    else
#endif
      wake(s);
  }
  return NULL;
}

static napi_value js_ref(napi_env env, napi_callback_info info) {
  ARGS(2);
  Sock *s = get_sock(env, argv[0]);
  bool on = false;
  if (!s) return NULL;
  napi_get_value_bool(env, argv[1], &on);
#ifdef HAVE_UV
  if (s->loop_mode) {
    if (on) uvf.ref((uv_handle_t *)s->watcher);
    else uvf.unref((uv_handle_t *)s->watcher);
    return NULL;
  }
#endif
  if (on) napi_ref_threadsafe_function(env, s->tsfn);
  else napi_unref_threadsafe_function(env, s->tsfn);
  return NULL;
}

static napi_value js_mode(napi_env env, napi_callback_info info) {
  ARGS(1);
  Sock *s = get_sock(env, argv[0]);
  napi_value r;
  if (!s) return NULL;
  napi_create_int32(env, s->loop_mode, &r);
  return r;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  ARGS(1);
  Sock *s = NULL;
  napi_valuetype t;
  if (napi_typeof(env, argv[0], &t) == napi_ok && t == napi_external && napi_get_value_external(env, argv[0], (void **)&s) == napi_ok && s)
    do_close(s);
  return NULL;
}

static napi_value js_peer_cred(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd = -1;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "EINVAL", "fd must be a non-negative integer");
    return NULL;
  }
  napi_value r;
#ifdef SO_PEERCRED
  struct ucred cred;
  socklen_t len = sizeof cred;
  memset(&cred, 0, sizeof cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return throw_errno(env, "getsockopt(SO_PEERCRED)", errno);
  napi_value v;
  napi_create_object(env, &r);
  napi_create_int64(env, (int64_t)cred.pid, &v);
  napi_set_named_property(env, r, "pid", v);
  napi_create_int64(env, (int64_t)cred.uid, &v);
  napi_set_named_property(env, r, "uid", v);
  napi_create_int64(env, (int64_t)cred.gid, &v);
  napi_set_named_property(env, r, "gid", v);
#else
  napi_get_null(env, &r);
#endif
  return r;
}

static napi_value js_dup(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd = -1;
  napi_value r;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "dup: expected a file descriptor");
    return NULL;
  }
  int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (nfd < 0) return throw_errno(env, "dup", errno);
  napi_create_int32(env, nfd, &r);
  return r;
}

static napi_value js_socket_filter(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd = -1;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "EINVAL", "socketFilter: expected a file descriptor");
    return NULL;
  }
#ifdef SO_ATTACH_FILTER
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  if (t == napi_null || t == napi_undefined) {
    int zero = 0; /* the kernel wants an int-sized option value even here */
    if (setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, &zero, sizeof zero) != 0 && errno != ENOENT) return throw_errno(env, "setsockopt(SO_DETACH_FILTER)", errno);
    return NULL;
  }
  void *data;
  size_t len;
  napi_typedarray_type at;
  if (napi_get_typedarray_info(env, argv[1], &at, &len, &data, NULL, NULL) != napi_ok || at != napi_uint8_array || len == 0 || len % sizeof(struct sock_filter) != 0 || len / sizeof(struct sock_filter) > BPF_MAXINSNS) {
    napi_throw_type_error(env, "EINVAL", "socketFilter: expected a Uint8Array of whole sock_filter instructions");
    return NULL;
  }
  struct sock_fprog prog = {(unsigned short)(len / sizeof(struct sock_filter)), (struct sock_filter *)data};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0) return throw_errno(env, "setsockopt(SO_ATTACH_FILTER)", errno);
  return NULL;
#else
  napi_throw_error(env, "ENOSYS", "socketFilter: no socket filters on this platform");
  return NULL;
#endif
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
    {"bind", NULL, js_bind, NULL, NULL, NULL, napi_enumerable, NULL},
    {"connect", NULL, js_connect, NULL, NULL, NULL, napi_enumerable, NULL},
    {"send", NULL, js_send, NULL, NULL, NULL, napi_enumerable, NULL},
    {"address", NULL, js_address, NULL, NULL, NULL, napi_enumerable, NULL},
    {"wantWritable", NULL, js_want_writable, NULL, NULL, NULL, napi_enumerable, NULL},
    {"ref", NULL, js_ref, NULL, NULL, NULL, napi_enumerable, NULL},
    {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
    {"mode", NULL, js_mode, NULL, NULL, NULL, napi_enumerable, NULL},
    {"peerCred", NULL, js_peer_cred, NULL, NULL, NULL, napi_enumerable, NULL},
    {"dup", NULL, js_dup, NULL, NULL, NULL, napi_enumerable, NULL},
    {"socketFilter", NULL, js_socket_filter, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
