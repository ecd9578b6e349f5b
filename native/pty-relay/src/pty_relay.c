// omwatch's pty relay: the recorded shell's bytes between the user's terminal and the session's pty,
// moved by a thread of its own, as `script` moves them, so that what the user sees never waits on
// JavaScript, SQLite or the network.
//
// One thread per session polls the pty's master, the user's terminal (when the daemon could open it; see
// agent/shell/relay.ts) and an eventfd that JavaScript wakes it with. Each read of the master goes to the
// user's terminal at once, with the shell's command reports taken out (marks.ts says what they are), and
// into a queue of records that JavaScript takes whenever it likes and turns into the recording, the live
// view and `shell_command` events. Keys typed on the user's terminal go to the master at once. When the
// queue holds `limitBytes`, the master is not read until JavaScript takes it: the programs in the session
// block on their writes, as on a slow terminal (the recording falls behind its limit, and the session's
// policy then throttles or ends it). All relays of the process share a budget too (total_limit below).
// Nothing is dropped.
//
// Record layout (host order; JS reads it in agent/shell/relay.ts): 0 u8 type, 1..3 zero, 4 u32 length of
// the body, 8 f64 time (ms since the epoch), 16 the body, then zeros to a multiple of 8.
// Types: 'o' output as shown, 'i' input typed (only when recordInput), 'c' a command report's body
// (<cwd>;<history line>), 'r' a resize ("COLSxROWS"), 'h' the user's terminal hung up, 'w' input()
// has room again, 'x' the end: the shell exited and every byte it left in the pty (read until it had no
// more to give) is in the records before it.
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define HEADER_BYTES 16
#define READ_BYTES (64 * 1024)
/** Output not yet taken by the user's terminal past which the master is not read (a slow terminal). */
#define TERM_PENDING_MAX (256 * 1024)
/** Keys not yet taken by the pty past which the user's terminal is not read. */
#define MASTER_PENDING_MAX (1024 * 1024)
/** A report longer than this is not ours: passed through as it is. */
#define MAX_MARK_BYTES (80 * 1024)
/** Bytes held back as a possible start of a report are shown anyway after this long. */
#define HELD_MS 20
/** A relay held back by the budget of all sessions looks again this often. */
#define BUDGET_RECHECK_MS 50
/**
 * Output is handed to JS once the terminal has been quiet this long, or the queue holds half its limit:
 * a burst of output is shown at the terminal's pace and recorded right after it, not while it runs.
 * Everything else (a command report, a resize, the agent's notices, the end) is handed over at once.
 */
#define QUIET_MS 20
/** Output slower than a flood (less than this much waiting) is handed over within TRICKLE_MS anyway. */
#define FLOOD_BYTES (1024 * 1024)
#define TRICKLE_MS 250
#define MARK_CAP 128

typedef struct {
  char *data;
  size_t len, cap;
} buf_t;

/** The queue is a list of blocks, never moved once written: a flood queued never costs a copy to grow. */
typedef struct block {
  struct block *next;
  size_t len, cap;
  char data[];
} block_t;
#define BLOCK_MIN (16 * 1024)
#define BLOCK_MAX (1024 * 1024)

/**
 * Bytes queued by every relay of the process, and the most they may hold together (open's
 * totalLimitBytes): one user's sessions flooding at once cannot grow the daemon past it. A relay over
 * the budget stops reading its pty like one at its own limit, but it is not "behind" (its own session is
 * not at fault, and the policy's `end` does not apply): it waits, looking again every BUDGET_RECHECK_MS.
 */
static _Atomic size_t total_queued;
static _Atomic size_t total_limit = SIZE_MAX;

typedef struct {
  int master, term, wake;
  int record_input;
  size_t limit;
  char prefix[MARK_CAP + 16];
  size_t prefix_len;

  pthread_t thread;
  int thread_started;
  pthread_mutex_t lock;
  // Under lock: records for JS, bytes for the terminal and for the master, requests from JS.
  block_t *head, *tail;
  size_t queued;
  buf_t to_term;
  buf_t to_master;
  int paused;
  int finishing;
  int stopping;
  int notify_pending;
  /** A record other than output is queued: JS hears of it now. */
  int urgent;
  double last_output_at;
  /** When the oldest output not yet taken was queued (0: none). */
  double first_output_at;
  /** JS's input went past MASTER_PENDING_MAX: a 'w' record tells it when there is room again. */
  int input_blocked;
  int ended;
  int behind;
  // Thread only.
  buf_t held;
  double held_at;
  char *scratch;
  buf_t shown;

  _Atomic double last_input_ms;
  _Atomic uint64_t output_bytes;
  _Atomic uint64_t read_bytes;
  /** Bytes memory could not be had for (a record, or output for the terminal): counted, never silent. */
  _Atomic uint64_t lost_bytes;
  _Atomic uint64_t peak_queued;
  _Atomic uint64_t throttled;
  /** Times the thread held off reading the pty for the budget of all sessions. */
  _Atomic uint64_t budget_waits;
  napi_threadsafe_function tsfn;
  _Atomic int refs;
} relay_t;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static double mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int buf_reserve(buf_t *b, size_t more) {
  if (b->len + more <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + more) cap *= 2;
  char *data = realloc(b->data, cap);
  if (!data) return -1;
  b->data = data;
  b->cap = cap;
  return 0;
}

static int buf_append(buf_t *b, const char *data, size_t len) {
  if (len == 0) return 0;
  if (buf_reserve(b, len) < 0) return -1;
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return 0;
}

static void buf_consume(buf_t *b, size_t n) {
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

/** Appends, counting what memory could not be had for in the relay's lost_bytes. */
static void keep(relay_t *r, buf_t *b, const char *data, size_t len) {
  if (buf_append(b, data, len) < 0) atomic_fetch_add(&r->lost_bytes, len);
}

/** Queues a record (under lock). An allocation failure loses it, counted in lost_bytes. */
static void push_record(relay_t *r, char type, const char *body, size_t len) {
  size_t padded = (len + 7) & ~(size_t)7;
  size_t need = HEADER_BYTES + padded;
  if (!r->tail || r->tail->cap - r->tail->len < need) {
    // Blocks grow with the queue: small while JS keeps up, large in a flood.
    size_t cap = r->queued < BLOCK_MIN ? BLOCK_MIN : r->queued > BLOCK_MAX ? BLOCK_MAX : r->queued;
    if (cap < need) cap = need;
    block_t *block = malloc(sizeof *block + cap);
    if (!block) {
      atomic_fetch_add(&r->lost_bytes, len);
      return;
    }
    block->next = NULL;
    block->len = 0;
    block->cap = cap;
    if (r->tail) r->tail->next = block;
    else r->head = block;
    r->tail = block;
  }
  char *at = r->tail->data + r->tail->len;
  memset(at, 0, HEADER_BYTES + padded);
  at[0] = type;
  uint32_t len32 = (uint32_t)len;
  memcpy(at + 4, &len32, 4);
  double t = now_ms();
  memcpy(at + 8, &t, 8);
  if (len) memcpy(at + HEADER_BYTES, body, len);
  if (type == 'o') {
    r->last_output_at = mono_ms();
    if (r->first_output_at == 0) r->first_output_at = r->last_output_at;
  } else r->urgent = 1;
  r->tail->len += need;
  r->queued += need;
  atomic_fetch_add(&total_queued, need);
  if (r->queued > atomic_load(&r->peak_queued)) atomic_store(&r->peak_queued, r->queued);
}

static void wake(relay_t *r) {
  uint64_t one = 1;
  ssize_t ignored = write(r->wake, &one, sizeof one);
  (void)ignored;
}

/**
 * How long until queued output is due to JS, 0 if it is due now: at once without a terminal of our own
 * (the user sees it only through JS); else QUIET_MS after the last output, TRICKLE_MS after the first if
 * less than FLOOD_BYTES wait, or when the queue holds half its limit.
 */
static double output_due_in(relay_t *r) {
  if (r->urgent || r->term < 0 || r->queued >= r->limit / 2) return 0;
  double now = mono_ms();
  double left = QUIET_MS - (now - r->last_output_at);
  if (r->queued < FLOOD_BYTES && r->first_output_at > 0) {
    double trickle = TRICKLE_MS - (now - r->first_output_at);
    if (trickle < left) left = trickle;
  }
  return left > 0 ? left : 0;
}

/** Tells JS there are records due (under lock), once until it takes them. */
static void notify(relay_t *r) {
  if (r->notify_pending || r->queued == 0 || output_due_in(r) > 0) return;
  r->notify_pending = 1;
  napi_call_threadsafe_function(r->tsfn, NULL, napi_tsfn_nonblocking);
}

/** Output as the user sees it: to the terminal, and recorded. */
static void show(relay_t *r, const char *data, size_t len) {
  if (len == 0) return;
  if (r->term >= 0) keep(r, &r->to_term, data, len);
  push_record(r, 'o', data, len);
  atomic_fetch_add(&r->output_bytes, len);
}

/** Where a suffix of data that is a proper prefix of the report's prefix begins (len if none). */
static size_t partial_prefix_at(relay_t *r, const char *data, size_t len) {
  size_t from = len >= r->prefix_len ? len - r->prefix_len + 1 : 0;
  for (size_t at = from; at < len; at++) {
    if (data[at] == 0x1b && memcmp(data + at, r->prefix, len - at) == 0) return at;
  }
  return len;
}

/**
 * Takes this session's command reports out of a read (held bytes first): the rest is shown, each report's
 * body recorded as a 'c' record. A possible start of a report at the end is held for the next read.
 */
static void scan(relay_t *r, const char *chunk, size_t chunk_len) {
  const char *data = chunk;
  size_t len = chunk_len;
  if (r->held.len > 0) {
    keep(r, &r->held, chunk, chunk_len);
    data = r->held.data;
    len = r->held.len;
  }
  r->shown.len = 0;
  size_t pos = 0;
  size_t keep_from = len;
  for (;;) {
    const char *start = memmem(data + pos, len - pos, r->prefix, r->prefix_len);
    if (!start) {
      keep_from = partial_prefix_at(r, data + pos, len - pos) + pos;
      keep(r, &r->shown, data + pos, keep_from - pos);
      break;
    }
    size_t s = (size_t)(start - data);
    const char *bel = memchr(data + s + r->prefix_len, 0x07, len - s - r->prefix_len);
    if (!bel) {
      if (len - s < MAX_MARK_BYTES) {
        keep(r, &r->shown, data + pos, s - pos);
        keep_from = s;
      } else keep(r, &r->shown, data + pos, len - pos);
      break;
    }
    size_t e = (size_t)(bel - data);
    const char *body = data + s + r->prefix_len;
    size_t body_len = e - s - r->prefix_len;
    if (memchr(body, ';', body_len)) {
      keep(r, &r->shown, data + pos, s - pos);
      // Shown first: the report comes after what the shell printed before it.
      show(r, r->shown.data, r->shown.len);
      r->shown.len = 0;
      push_record(r, 'c', body, body_len);
    } else keep(r, &r->shown, data + pos, e + 1 - pos);
    pos = e + 1;
  }
  show(r, r->shown.data, r->shown.len);
  if (keep_from < len) {
    if (data == r->held.data) buf_consume(&r->held, keep_from);
    else {
      r->held.len = 0;
      keep(r, &r->held, data + keep_from, len - keep_from);
    }
    r->held_at = mono_ms();
  } else r->held.len = 0;
}

static void release_held(relay_t *r) {
  if (r->held.len == 0) return;
  show(r, r->held.data, r->held.len);
  r->held.len = 0;
}

/** Writes what is pending to fd; -1 when the fd is gone for good (EIO, EPIPE, ...). */
static int flush_to(int fd, buf_t *b) {
  while (b->len > 0) {
    ssize_t n = write(fd, b->data, b->len);
    if (n > 0) {
      buf_consume(b, (size_t)n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return 0;
    return -1;
  }
  return 0;
}

/** Writes what waits for the user's terminal (under lock); a terminal gone for good is let go, and said. */
static void flush_term(relay_t *r, int *term_in) {
  if (r->term < 0 || r->to_term.len == 0 || flush_to(r->term, &r->to_term) == 0) return;
  // The user's terminal is gone (the connection dropped): the recording still gets everything.
  r->to_term.len = 0;
  if (*term_in) push_record(r, 'h', NULL, 0);
  *term_in = 0;
  close(r->term);
  r->term = -1;
}

static void *relay_thread(void *arg) {
  relay_t *r = arg;
  int term_in = r->term >= 0;
  int master_eof = 0;
  for (;;) {
    pthread_mutex_lock(&r->lock);
    if (r->stopping) {
      pthread_mutex_unlock(&r->lock);
      break;
    }
    int finishing = r->finishing;
    int full = r->queued >= r->limit;
    int over_budget = atomic_load(&total_queued) >= atomic_load(&total_limit);
    // What this relay holds counts towards the budget: JS takes it now, to make room.
    if (over_budget && r->queued > 0) r->urgent = 1;
    if (over_budget && !master_eof && !finishing && !r->paused && !full && r->to_term.len < TERM_PENDING_MAX) atomic_fetch_add(&r->budget_waits, 1);
    if (full && !r->behind) {
      r->behind = 1;
      atomic_fetch_add(&r->throttled, 1);
      // JS hears of it with the records: its policy throttles (nothing to do) or ends the session.
      r->notify_pending = 0;
      r->urgent = 1;
      notify(r);
    } else if (!full) r->behind = 0;
    // Once the shell has exited, what it left is read whatever else holds reading back: it is little.
    int read_master = !master_eof && (finishing || (!r->paused && !full && !over_budget && r->to_term.len < TERM_PENDING_MAX));
    int want_term_out = r->term >= 0 && r->to_term.len > 0;
    int want_master_out = !master_eof && r->to_master.len > 0;
    int read_term = term_in && r->to_master.len < MASTER_PENDING_MAX;
    pthread_mutex_unlock(&r->lock);

    struct pollfd fds[3];
    int nfds = 0;
    fds[nfds++] = (struct pollfd){ .fd = r->wake, .events = POLLIN };
    int mi = -1, ti = -1;
    if (read_master || want_master_out) {
      mi = nfds;
      fds[nfds++] = (struct pollfd){ .fd = r->master, .events = (short)((read_master ? POLLIN : 0) | (want_master_out ? POLLOUT : 0)) };
    }
    if (read_term || want_term_out) {
      ti = nfds;
      fds[nfds++] = (struct pollfd){ .fd = r->term, .events = (short)((read_term ? POLLIN : 0) | (want_term_out ? POLLOUT : 0)) };
    }
    int timeout = -1;
    if (r->held.len > 0) {
      double left = HELD_MS - (mono_ms() - r->held_at);
      timeout = left > 0 ? (int)left + 1 : 0;
    }
    pthread_mutex_lock(&r->lock);
    if (r->queued > 0 && !r->notify_pending) {
      int due = (int)output_due_in(r) + 1;
      if (timeout < 0 || due < timeout) timeout = due;
    }
    pthread_mutex_unlock(&r->lock);
    if (over_budget && !master_eof && (timeout < 0 || timeout > BUDGET_RECHECK_MS)) timeout = BUDGET_RECHECK_MS;
    if (finishing && !master_eof) timeout = 0;
    int ready = poll(fds, (nfds_t)nfds, timeout);
    if (ready < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      uint64_t count;
      ssize_t ignored = read(r->wake, &count, sizeof count);
      (void)ignored;
    }

    pthread_mutex_lock(&r->lock);
    int got_output = 0;
    if (read_master && (finishing || (mi >= 0 && (fds[mi].revents & (POLLIN | POLLHUP | POLLERR))))) {
      // A few reads at a time, each written to the terminal at once, as script does.
      for (int i = 0; i < 4; i++) {
        pthread_mutex_unlock(&r->lock);
        ssize_t n = read(r->master, r->scratch, READ_BYTES);
        int err = errno;
        pthread_mutex_lock(&r->lock);
        if (n > 0) {
          atomic_fetch_add(&r->read_bytes, (uint64_t)n);
          scan(r, r->scratch, (size_t)n);
          got_output = 1;
          flush_term(r, &term_in);
          if ((r->queued >= r->limit || atomic_load(&total_queued) >= atomic_load(&total_limit)) && !r->finishing) break;
          // Less than a full read: the pty has nothing more now; poll rather than read again for EAGAIN
          // (once the shell has exited, read until EAGAIN: that is how the relay knows it has it all).
          if ((size_t)n < READ_BYTES && !r->finishing) break;
          continue;
        }
        if (n < 0 && err == EINTR) continue;
        // EAGAIN: all read for now. EIO or end of file: every process has let go of the terminal.
        if (n == 0 || (n < 0 && err != EAGAIN)) master_eof = 1;
        else if (finishing) master_eof = 1;
        break;
      }
    }
    if (!got_output && r->held.len > 0 && (master_eof || mono_ms() - r->held_at >= HELD_MS)) release_held(r);
    if (ti >= 0 && read_term && (fds[ti].revents & (POLLIN | POLLHUP | POLLERR))) {
      char keys[4096];
      pthread_mutex_unlock(&r->lock);
      ssize_t n = read(r->term, keys, sizeof keys);
      int err = errno;
      pthread_mutex_lock(&r->lock);
      if (n > 0) {
        keep(r, &r->to_master, keys, (size_t)n);
        atomic_store(&r->last_input_ms, now_ms());
        if (r->record_input) push_record(r, 'i', keys, (size_t)n);
      } else if (n == 0 || (err != EAGAIN && err != EINTR)) {
        // The user's terminal hung up: JS hears of it ('h') and ends the session as for any hangup.
        term_in = 0;
        push_record(r, 'h', NULL, 0);
      }
    }
    // Keys for a pty nobody reads any more (every process let go of it) are dropped, not kept.
    if (master_eof || (r->to_master.len > 0 && flush_to(r->master, &r->to_master) < 0)) r->to_master.len = 0;
    if (r->input_blocked && r->to_master.len < MASTER_PENDING_MAX / 2) {
      r->input_blocked = 0;
      push_record(r, 'w', NULL, 0);
    }
    flush_term(r, &term_in);
    int done = r->finishing && master_eof && (r->term < 0 || r->to_term.len == 0);
    if (done) {
      release_held(r);
      push_record(r, 'x', NULL, 0);
      r->ended = 1;
    }
    notify(r);
    pthread_mutex_unlock(&r->lock);
    if (done) break;
  }
  return NULL;
}

static void release(relay_t *r) {
  if (atomic_fetch_sub(&r->refs, 1) != 1) return;
  atomic_fetch_sub(&total_queued, r->queued);
  pthread_mutex_destroy(&r->lock);
  for (block_t *b = r->head, *next; b; b = next) {
    next = b->next;
    free(b);
  }
  free(r->to_term.data);
  free(r->to_master.data);
  free(r->held.data);
  free(r->shown.data);
  free(r->scratch);
  free(r);
}

/** Stops the thread and closes the fds; safe to call twice. */
static void stop(relay_t *r) {
  if (r->thread_started) {
    pthread_mutex_lock(&r->lock);
    r->stopping = 1;
    pthread_mutex_unlock(&r->lock);
    wake(r);
    pthread_join(r->thread, NULL);
    r->thread_started = 0;
    // Bytes held as a possible report start are output all the same: recorded, not dropped.
    pthread_mutex_lock(&r->lock);
    if (r->term >= 0) close(r->term);
    r->term = -1;
    release_held(r);
    pthread_mutex_unlock(&r->lock);
  }
  if (r->master >= 0) close(r->master);
  if (r->term >= 0) close(r->term);
  if (r->wake >= 0) close(r->wake);
  r->master = r->term = r->wake = -1;
  if (r->tsfn) {
    napi_threadsafe_function tsfn = r->tsfn;
    r->tsfn = NULL;
    napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
  }
}

static void call_js(napi_env env, napi_value callback, void *context, void *data) {
  if (env == NULL || callback == NULL) return;
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  if (napi_call_function(env, undefined, callback, 0, NULL, NULL) == napi_pending_exception) {
    // Not swallowed: what the callback threw is an uncaught exception, as from any callback.
    napi_value error;
    napi_get_and_clear_last_exception(env, &error);
    napi_fatal_exception(env, error);
  }
}

static void cleanup_hook(void *arg) {
  stop(arg);
}

static void finalize_tsfn(napi_env env, void *data, void *hint) {
  release(data);
}

static void finalize_handle(napi_env env, void *data, void *hint) {
  relay_t *r = data;
  napi_remove_env_cleanup_hook(env, cleanup_hook, r);
  stop(r);
  release(r);
}


static napi_value throw_errno(napi_env env, const char *code, const char *what, int err) {
  char message[512];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, code, message);
  return NULL;
}

static int32_t get_int(napi_env env, napi_value obj, const char *name, int32_t fallback) {
  napi_value v;
  int32_t out = fallback;
  bool has = false;
  if (napi_has_named_property(env, obj, name, &has) != napi_ok || !has) return fallback;
  napi_get_named_property(env, obj, name, &v);
  if (napi_get_value_int32(env, v, &out) != napi_ok) return fallback;
  return out;
}

/**
 * open({ master, terminal, mark, recordInput, limitBytes, totalLimitBytes? }, notify): a handle. `master` and `terminal`
 * (-1 for none) are duplicated: the caller keeps and closes its own.
 */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) {
    napi_throw_type_error(env, "RELAY_ARGS", "open(options, notify)");
    return NULL;
  }
  int master = get_int(env, argv[0], "master", -1);
  int term = get_int(env, argv[0], "terminal", -1);
  int limit = get_int(env, argv[0], "limitBytes", 32 * 1024 * 1024);
  char mark[MARK_CAP + 1];
  size_t mark_len = 0;
  napi_value mark_value;
  if (master < 0 || limit <= 0 || napi_get_named_property(env, argv[0], "mark", &mark_value) != napi_ok ||
      napi_get_value_string_utf8(env, mark_value, mark, sizeof mark, &mark_len) != napi_ok || mark_len == 0 || mark_len >= MARK_CAP) {
    napi_throw_type_error(env, "RELAY_ARGS", "open: master (an fd), mark (1 to 127 characters) and a positive limitBytes are required");
    return NULL;
  }
  relay_t *r = calloc(1, sizeof *r);
  if (!r) return throw_errno(env, "RELAY_NOMEM", "allocating the relay", ENOMEM);
  r->master = r->term = r->wake = -1;
  r->limit = (size_t)limit;
  double total = 0;
  napi_value total_value;
  bool has_total = false;
  napi_has_named_property(env, argv[0], "totalLimitBytes", &has_total);
  if (has_total && napi_get_named_property(env, argv[0], "totalLimitBytes", &total_value) == napi_ok &&
      napi_get_value_double(env, total_value, &total) == napi_ok && total >= 1) {
    atomic_store(&total_limit, (size_t)total);
  }
  r->record_input = get_int(env, argv[0], "recordInput", 0) != 0;
  r->prefix_len = (size_t)snprintf(r->prefix, sizeof r->prefix, "\x1b]6973;%s;", mark);
  atomic_store(&r->last_input_ms, now_ms());
  atomic_store(&r->refs, 1);
  pthread_mutex_init(&r->lock, NULL);
  const char *code = NULL, *what = NULL;
  int err = 0;
  r->scratch = malloc(READ_BYTES);
  if (!r->scratch) { code = "RELAY_NOMEM"; what = "allocating the read buffer"; err = ENOMEM; goto fail; }
  r->master = fcntl(master, F_DUPFD_CLOEXEC, 3);
  if (r->master < 0) { code = "RELAY_FD"; what = "duplicating the pty's master"; err = errno; goto fail; }
  if (term >= 0) {
    r->term = fcntl(term, F_DUPFD_CLOEXEC, 3);
    if (r->term < 0) { code = "RELAY_FD"; what = "duplicating the user's terminal"; err = errno; goto fail; }
    fcntl(r->term, F_SETFL, fcntl(r->term, F_GETFL) | O_NONBLOCK);
  }
  fcntl(r->master, F_SETFL, fcntl(r->master, F_GETFL) | O_NONBLOCK);
  r->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (r->wake < 0) { code = "RELAY_EVENTFD"; what = "eventfd"; err = errno; goto fail; }
  {
    napi_value name;
    napi_create_string_utf8(env, "omwatch-pty-relay", NAPI_AUTO_LENGTH, &name);
    if (napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, r, finalize_tsfn, r, call_js, &r->tsfn) != napi_ok) {
      r->tsfn = NULL;
      code = "RELAY_TSFN"; what = "creating the thread-safe function"; err = ENOMEM; goto fail;
    }
    atomic_store(&r->refs, 2);
  }
  err = pthread_create(&r->thread, NULL, relay_thread, r);
  if (err != 0) { code = "RELAY_THREAD"; what = "starting the relay thread"; goto fail; }
  r->thread_started = 1;
  napi_add_env_cleanup_hook(env, cleanup_hook, r);
  napi_value handle;
  napi_create_external(env, r, finalize_handle, NULL, &handle);
  return handle;

fail:
  {
    // With a thread-safe function made, its finalizer drops one reference; this drops the handle's.
    int owned_by_tsfn = r->tsfn != NULL;
    if (!owned_by_tsfn) atomic_store(&r->refs, 1);
    stop(r);
    release(r);
  }
  return throw_errno(env, code, what, err);
}

static relay_t *unwrap(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *data = NULL;
  napi_valuetype type;
  if (argc < want || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_external || napi_get_value_external(env, argv[0], &data) != napi_ok) {
    napi_throw_type_error(env, "RELAY_ARGS", "expected a handle from open() and the call's arguments");
    return NULL;
  }
  return data;
}

static void free_block(napi_env env, void *data, void *hint) {
  block_t *block = hint;
  int64_t ignored;
  napi_adjust_external_memory(env, -(int64_t)block->cap, &ignored);
  free(block);
}

/**
 * take(handle): every record queued, as an array of Buffers (one per block: their memory handed over,
 * not copied; no record spans two), or undefined when nothing is queued.
 */
static napi_value js_take(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  relay_t *r = unwrap(env, info, 1, argv);
  if (!r) return NULL;
  pthread_mutex_lock(&r->lock);
  block_t *taken = r->head;
  int was_full = r->queued >= r->limit;
  r->head = r->tail = NULL;
  atomic_fetch_sub(&total_queued, r->queued);
  r->queued = 0;
  r->notify_pending = 0;
  r->urgent = 0;
  r->first_output_at = 0;
  pthread_mutex_unlock(&r->lock);
  if (was_full) wake(r);
  if (!taken) return NULL;
  napi_value out;
  napi_create_array(env, &out);
  uint32_t index = 0;
  for (block_t *b = taken, *next; b; b = next) {
    next = b->next;
    napi_value buffer;
    int64_t ignored;
    if (napi_create_external_buffer(env, b->len, b->data, free_block, b, &buffer) == napi_ok) {
      // The garbage collector counts what it keeps alive.
      napi_adjust_external_memory(env, (int64_t)b->cap, &ignored);
    } else {
      // Some runtimes refuse external buffers: copy instead.
      void *copy;
      napi_status status = napi_create_buffer_copy(env, b->len, b->data, &copy, &buffer);
      free(b);
      if (status != napi_ok) continue;
    }
    napi_set_element(env, out, index++, buffer);
  }
  return out;
}

static napi_value boolean(napi_env env, int value) {
  napi_value out;
  napi_get_boolean(env, value, &out);
  return out;
}

static napi_value with_bytes(napi_env env, napi_callback_info info, int as_notice) {
  napi_value argv[2];
  relay_t *r = unwrap(env, info, 2, argv);
  if (!r) return NULL;
  void *data = NULL;
  size_t len = 0;
  if (napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    napi_throw_type_error(env, "RELAY_ARGS", "expected a Buffer");
    return NULL;
  }
  pthread_mutex_lock(&r->lock);
  if (as_notice) {
    show(r, data, len);
    r->urgent = 1;
  } else {
    keep(r, &r->to_master, data, len);
    atomic_store(&r->last_input_ms, now_ms());
    if (r->record_input) push_record(r, 'i', data, len);
    if (r->to_master.len >= MASTER_PENDING_MAX) r->input_blocked = 1;
  }
  int accepted = !r->input_blocked;
  pthread_mutex_unlock(&r->lock);
  wake(r);
  return boolean(env, accepted);
}

/**
 * input(handle, bytes): keys for the shell (from the client's frames), recorded as typed ones are. False
 * when the shell has not taken MASTER_PENDING_MAX bytes yet: stop sending until a 'w' record.
 */
static napi_value js_input(napi_env env, napi_callback_info info) {
  return with_bytes(env, info, 0);
}

/** notice(handle, bytes): the agent's own words in the terminal, shown and recorded in order. */
static napi_value js_notice(napi_env env, napi_callback_info info) {
  return with_bytes(env, info, 1);
}

/** resize(handle, cols, rows): the pty's window size, recorded in order with the output. */
static napi_value js_resize(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  relay_t *r = unwrap(env, info, 3, argv);
  if (!r) return NULL;
  int32_t cols = 0, rows = 0;
  napi_get_value_int32(env, argv[1], &cols);
  napi_get_value_int32(env, argv[2], &rows);
  if (cols < 1 || rows < 1 || cols > 65535 || rows > 65535) {
    napi_throw_range_error(env, "RELAY_ARGS", "resize: columns and rows from 1 to 65535");
    return NULL;
  }
  struct winsize size = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
  pthread_mutex_lock(&r->lock);
  int ok = r->master >= 0 && ioctl(r->master, TIOCSWINSZ, &size) == 0;
  if (ok) {
    char text[32];
    int n = snprintf(text, sizeof text, "%dx%d", cols, rows);
    push_record(r, 'r', text, (size_t)n);
  }
  pthread_mutex_unlock(&r->lock);
  wake(r);
  return boolean(env, ok);
}

/** Sets one of the thread's flags and wakes it to act on it. */
static void set_and_wake(relay_t *r, int *flag, int value) {
  pthread_mutex_lock(&r->lock);
  *flag = value;
  pthread_mutex_unlock(&r->lock);
  wake(r);
}

/** pause(handle, paused): whether the master is read (the client's side is behind). */
static napi_value js_pause(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  relay_t *r = unwrap(env, info, 2, argv);
  if (!r) return NULL;
  bool paused = false;
  napi_get_value_bool(env, argv[1], &paused);
  set_and_wake(r, &r->paused, paused);
  return NULL;
}

/** finish(handle): the shell has exited; the thread reads what is left, queues 'x' and stops. */
static napi_value js_finish(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  relay_t *r = unwrap(env, info, 1, argv);
  if (!r) return NULL;
  set_and_wake(r, &r->finishing, 1);
  return NULL;
}

/** close(handle): stops the thread and closes its fds; what it queued stays for take(), held bytes included. */
static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  relay_t *r = unwrap(env, info, 1, argv);
  if (!r) return NULL;
  napi_remove_env_cleanup_hook(env, cleanup_hook, r);
  stop(r);
  return NULL;
}

static void set_number(napi_env env, napi_value obj, const char *name, double value) {
  napi_value v;
  napi_create_double(env, value, &v);
  napi_set_named_property(env, obj, name, v);
}

/** stats(handle): the last key's time, bytes read and shown, queued now and at most, times throttled. */
static napi_value js_stats(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  relay_t *r = unwrap(env, info, 1, argv);
  if (!r) return NULL;
  pthread_mutex_lock(&r->lock);
  double queued = (double)r->queued;
  int behind = r->behind;
  pthread_mutex_unlock(&r->lock);
  napi_value out;
  napi_create_object(env, &out);
  set_number(env, out, "lastInputMs", atomic_load(&r->last_input_ms));
  set_number(env, out, "outputBytes", (double)atomic_load(&r->output_bytes));
  set_number(env, out, "readBytes", (double)atomic_load(&r->read_bytes));
  set_number(env, out, "lostBytes", (double)atomic_load(&r->lost_bytes));
  set_number(env, out, "queuedBytes", queued);
  set_number(env, out, "peakQueuedBytes", (double)atomic_load(&r->peak_queued));
  set_number(env, out, "throttled", (double)atomic_load(&r->throttled));
  set_number(env, out, "budgetWaits", (double)atomic_load(&r->budget_waits));
  napi_set_named_property(env, out, "behind", boolean(env, behind));
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL },
    { "take", NULL, js_take, NULL, NULL, NULL, napi_enumerable, NULL },
    { "input", NULL, js_input, NULL, NULL, NULL, napi_enumerable, NULL },
    { "notice", NULL, js_notice, NULL, NULL, NULL, napi_enumerable, NULL },
    { "resize", NULL, js_resize, NULL, NULL, NULL, napi_enumerable, NULL },
    { "pause", NULL, js_pause, NULL, NULL, NULL, napi_enumerable, NULL },
    { "finish", NULL, js_finish, NULL, NULL, NULL, napi_enumerable, NULL },
    { "close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL },
    { "stats", NULL, js_stats, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
