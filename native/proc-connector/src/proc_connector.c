// omwatch's process events connector: every fork, exec, uid change and exit the kernel announces on
// NETLINK_CONNECTOR / CN_IDX_PROC, with the new program's details read the moment its exec arrives.
//
// One reader thread per handle: it receives the kernel's messages, reads /proc/PID/{cmdline,exe,cwd,
// environ} (and the owner of /proc/PID) for each exec before the process can exit (and stat and
// sessionid too for the first exec after a setsid(), see on_exec), and
// packs each event into a record (layout below, host byte order). Records wait in a queue bounded in
// count and bytes (past either bound they are dropped and counted, and a DROPPED record says how many);
// JavaScript is woken through a thread-safe function at most once at a time and takes every complete
// batch queued as one Buffer. A full socket buffer (ENOBUFS) becomes an OVERFLOW record: events were
// lost and the caller resyncs. Where the kernel can filter (6.6+), execs come on one socket, read at
// once (with setsids, which decide what an exec reads), and forks, uid changes and exits on another,
// read in bulk every batch interval (batches of 100 ms by default).
//
// Record layout (all fields host order; JS reads it in agent/sensors/processes/connector-decode.ts):
//   0 u32 size (whole record, a multiple of 8)   4 u8 kind   5 u8 flags   6 u16 blobs present (bit i)
//   8 f64 time (ms since the epoch)   16 i32 pid   20 i32 parent (tgid; -1 unknown)   24 u32 a   28 u32 b
//   32 u32 length of each of the 6 blobs   56 f64 the event's time on the boot clock, ms (JS orders by it)
//   64 the blobs, back to back; the record is padded to a multiple of 8.
// kind / a / b: FORK parent pid / -; EXEC owner uid / gid (flag OWNER); UID ruid / euid; EXIT wait
//   status / exit signal; SID - / - (the process called setsid()); OVERFLOW count / -; DROPPED count / -;
//   ERROR errno / 1 when the reader stopped for good; RELISTEN - / - (the kernel had stopped announcing
//   events; a new socket listens again); CUT - / - (see reader: the batch is complete up to its boot
//   time). Records that are not the kernel's events carry the time they were made, on both clocks.
// blobs (EXEC only): cmdline, exe, stat, cwd, sessionid, environ (only the wanted variables).
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

enum { KIND_FORK = 1, KIND_EXEC = 2, KIND_UID = 3, KIND_EXIT = 4, KIND_OVERFLOW = 5, KIND_DROPPED = 6, KIND_ERROR = 7, KIND_RELISTEN = 8, KIND_SID = 9, KIND_CUT = 10 };
enum { FLAG_CMDLINE_TRUNCATED = 1, FLAG_GONE = 2, FLAG_ENVIRON_TRUNCATED = 4, FLAG_OWNER = 8 };
enum { BLOB_CMDLINE, BLOB_EXE, BLOB_STAT, BLOB_CWD, BLOB_SESSIONID, BLOB_ENVIRON, BLOB_COUNT };
#define HEADER_BYTES 64
#define STAT_CAP 1024
#define PATH_CAP 4096
#define SESSIONID_CAP 32
#define ENVIRON_READ_CAP (128 * 1024)
#define ENVIRON_KEEP_CAP 4096
#define MAX_ENV_KEYS 16
#define MAX_ENV_KEY_CHARS 64
#define SID_RING 256
/** Messages read from a socket per call at most: a steady stream of execs must not hold a batch back. */
#define DRAIN_MAX 256
#define READER_NICE (-10)

typedef struct record {
  struct record *next;
  uint32_t size;
  // The packed record follows, 8-aligned.
  uint64_t data[];
} record_t;

typedef struct {
  // Configuration, fixed at open.
  uint32_t max_records;
  uint64_t max_bytes;
  uint32_t max_cmdline_bytes;
  char env_keys[MAX_ENV_KEYS][MAX_ENV_KEY_CHARS + 1];
  size_t env_key_len[MAX_ENV_KEYS];
  int env_key_count;

  /** Exec messages (or every message, when the kernel cannot filter); sock_bulk: the rest, or -1. */
  int sock;
  int sock_bulk;
  int filtered;
  int split;
  int64_t rcvbuf;
  int wake_fd;
  pthread_t thread;
  int thread_started;
  atomic_int stopping;
  int closed;
  uint32_t listen_seq;

  napi_env env;
  napi_threadsafe_function tsfn;
  // Freed when both the JS handle and the thread-safe function are finalized (JS thread only).
  int refs;
  atomic_int notify_pending;

  pthread_mutex_t lock;
  record_t *head, *tail;
  uint32_t queued_records;
  uint64_t queued_bytes;
  uint64_t dropped_unreported;
  /**
   * Records up to here are complete as a batch: both sockets were read after them, so no fork that
   * precedes an exec in the batch is still in the other socket. JS takes only committed records.
   */
  record_t *commit_tail;
  uint32_t committed_records;
  uint64_t committed_bytes;
  uint32_t batch_ms;
  uint32_t batch_records;

  // Counters, read by stats(); written by the reader thread (and drops under the lock).
  atomic_uint_fast64_t messages, forks, execs, uids, exits, overflows, dropped, gone, errors, peak_bytes, relistens;

  // Reader thread scratch space.
  char *scratch;
  size_t scratch_cap;
  char *environ_buf;
  /** Processes that called setsid() and have not exec'd since (newest overwrite oldest): see on_exec. */
  int32_t new_sessions[SID_RING];
  uint32_t new_sessions_at;
  /** The kernel's time of the last event handled (reader thread only): where a bounded read stopped. */
  uint64_t last_event_ns;
} state_t;

typedef struct {
  int skip_exec;     // the bulk socket: execs and setsids come (and are read) on the exec socket
  int *ack_err;      // set when our LISTEN's acknowledgement arrives
  pid_t probe_tid;   // a thread we made: its FORK on the exec-only socket means filters are ignored
  int probe_seen;
  int all;           // read until the socket is empty, not DRAIN_MAX messages
  int stopped_short; // set when DRAIN_MAX messages were read and more may wait
} drain_opts_t;

// ---- the queue -------------------------------------------------------------------------------

static void notify(state_t *s) {
  if (!s->tsfn) return; // still opening: the queue is handed over once open succeeds
  int expected = 0;
  if (atomic_compare_exchange_strong(&s->notify_pending, &expected, 1)) {
    if (napi_call_threadsafe_function(s->tsfn, NULL, napi_tsfn_nonblocking) != napi_ok) atomic_store(&s->notify_pending, 0);
  }
}

static void put_header(char *p, uint32_t size, uint8_t kind, uint8_t flags, uint16_t present, double time_ms,
                       int32_t pid, int32_t parent, uint32_t a, uint32_t b, const uint32_t *lens, double boot_ms) {
  memset(p, 0, HEADER_BYTES);
  memcpy(p + 0, &size, 4);
  p[4] = (char)kind;
  p[5] = (char)flags;
  memcpy(p + 6, &present, 2);
  memcpy(p + 8, &time_ms, 8);
  memcpy(p + 16, &pid, 4);
  memcpy(p + 20, &parent, 4);
  memcpy(p + 24, &a, 4);
  memcpy(p + 28, &b, 4);
  if (lens) memcpy(p + 32, lens, 4 * BLOB_COUNT);
  memcpy(p + 56, &boot_ms, 8);
}

static record_t *new_record(const char *packed, uint32_t size) {
  record_t *r = malloc(sizeof(record_t) + size);
  if (!r) return NULL;
  r->next = NULL;
  r->size = size;
  memcpy(r->data, packed, size);
  return r;
}

static void append_locked(state_t *s, record_t *r) {
  if (s->tail) s->tail->next = r; else s->head = r;
  s->tail = r;
  s->queued_records++;
  s->queued_bytes += r->size;
  if (s->queued_bytes > atomic_load(&s->peak_bytes)) atomic_store(&s->peak_bytes, s->queued_bytes);
}

/**
 * Queues one packed record, or drops and counts it when the queue is at its bound (unless `force`: the
 * reader's last word, one record past the bound).
 */
static void enqueue(state_t *s, const char *packed, uint32_t size, double time_ms, double boot_ms, int force) {
  pthread_mutex_lock(&s->lock);
  int full = !force && (s->queued_records + 2 > s->max_records || s->queued_bytes + size + HEADER_BYTES > s->max_bytes);
  if (full) {
    s->dropped_unreported++;
    atomic_fetch_add(&s->dropped, 1);
    pthread_mutex_unlock(&s->lock);
    return;
  }
  if (s->dropped_unreported > 0) {
    // Room again: say first how many went missing, in order, so the reader knows where the gap is.
    char marker[HEADER_BYTES];
    uint32_t count = s->dropped_unreported > UINT32_MAX ? UINT32_MAX : (uint32_t)s->dropped_unreported;
    put_header(marker, HEADER_BYTES, KIND_DROPPED, 0, 0, time_ms, -1, -1, count, 0, NULL, boot_ms);
    record_t *m = new_record(marker, HEADER_BYTES);
    if (m) {
      append_locked(s, m);
      s->dropped_unreported = 0;
    }
  }
  record_t *r = new_record(packed, size);
  if (r) append_locked(s, r);
  else {
    s->dropped_unreported++;
    atomic_fetch_add(&s->dropped, 1);
  }
  pthread_mutex_unlock(&s->lock);
}

/** Marks everything queued so far as a complete batch (both sockets drained after it). */
static void commit(state_t *s) {
  pthread_mutex_lock(&s->lock);
  s->commit_tail = s->tail;
  s->committed_records = s->queued_records;
  s->committed_bytes = s->queued_bytes;
  pthread_mutex_unlock(&s->lock);
}

static void free_queue(state_t *s) {
  record_t *r = s->head;
  while (r) {
    record_t *next = r->next;
    free(r);
    r = next;
  }
  s->head = s->tail = s->commit_tail = NULL;
  s->queued_records = 0;
  s->queued_bytes = 0;
  s->committed_records = 0;
  s->committed_bytes = 0;
}

// ---- reading /proc ---------------------------------------------------------------------------

/** Reads a file under dirfd into buf (at most cap bytes); -1 if it could not be opened or read. */
static ssize_t read_at(int dirfd, const char *name, char *buf, size_t cap, int *truncated) {
  int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t n = 0;
  while (n < cap) {
    size_t want = cap - n;
    ssize_t r = read(fd, buf + n, want);
    if (r < 0) {
      if (errno == EINTR) continue;
      close(fd);
      return n > 0 ? (ssize_t)n : -1;
    }
    if (r == 0) break;
    n += (size_t)r;
    // procfs hands over a whole cmdline, stat or sessionid in one read when the buffer is large
    // enough: a short read is the end, and saves a second read per file.
    if ((size_t)r < want) break;
  }
  if (n == cap && truncated) {
    char extra;
    ssize_t r = read(fd, &extra, 1);
    if (r > 0) *truncated = 1;
  }
  close(fd);
  return (ssize_t)n;
}

static ssize_t readlink_at(int dirfd, const char *name, char *buf, size_t cap) {
  ssize_t n = readlinkat(dirfd, name, buf, cap);
  return n < 0 ? -1 : n;
}

/** Keeps only the wanted KEY=value entries of a NUL-separated environment. */
static size_t filter_environ(const state_t *s, const char *env, size_t len, char *out, size_t cap, int *truncated) {
  size_t kept = 0;
  size_t at = 0;
  while (at < len) {
    const char *entry = env + at;
    size_t entry_len = strnlen(entry, len - at);
    for (int k = 0; k < s->env_key_count; k++) {
      size_t kl = s->env_key_len[k];
      if (entry_len > kl && entry[kl] == '=' && memcmp(entry, s->env_keys[k], kl) == 0) {
        if (kept + entry_len + 1 > cap) {
          *truncated = 1;
          break;
        }
        memcpy(out + kept, entry, entry_len);
        kept += entry_len;
        out[kept++] = '\0';
        break;
      }
    }
    at += entry_len + 1;
  }
  return kept;
}

static double wall_ms(uint64_t event_ns) {
  // The event's clock is CLOCK_MONOTONIC (ktime_get_ns); the offset to the wall clock is taken now,
  // so clock steps apply at once.
  struct timespec real, mono;
  clock_gettime(CLOCK_REALTIME, &real);
  clock_gettime(CLOCK_MONOTONIC, &mono);
  double offset_ms = (double)(real.tv_sec - mono.tv_sec) * 1e3 + (double)(real.tv_nsec - mono.tv_nsec) / 1e6;
  return offset_ms + (double)event_ns / 1e6;
}

/**
 * The event's time on the boot clock, in ms: /proc/PID/stat counts a start in ticks of it (unlike the
 * event's monotonic clock it runs through suspend), so start ticks and durations agree with /proc.
 */
static double boot_ms(uint64_t event_ns) {
  struct timespec boot, mono;
  clock_gettime(CLOCK_BOOTTIME, &boot);
  clock_gettime(CLOCK_MONOTONIC, &mono);
  double offset_ns = (double)(boot.tv_sec - mono.tv_sec) * 1e9 + (double)(boot.tv_nsec - mono.tv_nsec);
  return ((double)event_ns + offset_ns) / 1e6;
}

static void on_new_session(state_t *s, int32_t pid) {
  s->new_sessions[s->new_sessions_at++ % SID_RING] = pid;
}

/** Whether `pid` called setsid() since its last exec; forgets it (the next exec is an ordinary one). */
static int take_new_session(state_t *s, int32_t pid) {
  for (int i = 0; i < SID_RING; i++) {
    if (s->new_sessions[i] == pid) {
      s->new_sessions[i] = 0;
      return 1;
    }
  }
  return 0;
}

/**
 * An exec: the new program's details, read at once, before the process can exit. Each /proc file
 * read of a new process costs a kernel lookup (tens of µs here), so only what an exec may change is
 * read every time: cmdline, exe, environ (execve's own), cwd (a shell's `cd` changes what its children
 * inherit) and the owner (a setuid program). What a process inherits from its parent and keeps across
 * an exec (parent, start, terminal, audit session) is known from its fork; it changes without an exec
 * only in a new session (a login: setsid(), then a terminal and a loginuid), so after a setsid() the
 * first exec also reads stat and sessionid.
 */
static void on_exec(state_t *s, int32_t pid, double time_ms, double boot) {
  char *p = s->scratch;
  char *blob = p + HEADER_BYTES;
  char *end = p + s->scratch_cap;
  uint32_t lens[BLOB_COUNT] = {0};
  uint16_t present = 0;
  uint8_t flags = 0;
  uint32_t uid = 0, gid = 0;
  int full = take_new_session(s, pid);
  char dir[32];
  snprintf(dir, sizeof dir, "/proc/%d", pid);
  // The directory pins this process: if it exits and its pid is reused, reads through it fail
  // rather than describe the newcomer.
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    struct { int blob; const char *name; size_t cap; int link; } reads[] = {
      { BLOB_CMDLINE, "cmdline", s->max_cmdline_bytes, 0 },
      { BLOB_EXE, "exe", PATH_CAP, 1 },
      { BLOB_STAT, "stat", STAT_CAP, 0 },
      { BLOB_CWD, "cwd", PATH_CAP, 1 },
      { BLOB_SESSIONID, "sessionid", SESSIONID_CAP, 0 },
    };
    for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++) {
      if (!full && (reads[i].blob == BLOB_STAT || reads[i].blob == BLOB_SESSIONID)) continue;
      size_t cap = reads[i].cap;
      if ((size_t)(end - blob) < cap) cap = (size_t)(end - blob);
      int truncated = 0;
      ssize_t n = reads[i].link ? readlink_at(dfd, reads[i].name, blob, cap)
                                : read_at(dfd, reads[i].name, blob, cap, reads[i].blob == BLOB_CMDLINE ? &truncated : NULL);
      if (n < 0) continue;
      if (truncated) flags |= FLAG_CMDLINE_TRUNCATED;
      present |= (uint16_t)(1u << reads[i].blob);
      lens[reads[i].blob] = (uint32_t)n;
      blob += n;
    }
    if (s->env_key_count > 0) {
      int truncated = 0;
      ssize_t n = read_at(dfd, "environ", s->environ_buf, ENVIRON_READ_CAP, &truncated);
      if (n >= 0) {
        size_t cap = ENVIRON_KEEP_CAP;
        if ((size_t)(end - blob) < cap) cap = (size_t)(end - blob);
        size_t kept = filter_environ(s, s->environ_buf, (size_t)n, blob, cap, &truncated);
        if (truncated) flags |= FLAG_ENVIRON_TRUNCATED;
        present |= (uint16_t)(1u << BLOB_ENVIRON);
        lens[BLOB_ENVIRON] = (uint32_t)kept;
        blob += kept;
      }
    }
    // The directory's owner is the effective uid (/proc/PID itself is exempt from the non-dumpable
    // rule that makes its files root's): cheaper than reading status, the costliest file here.
    struct stat st;
    if (fstat(dfd, &st) == 0) {
      uid = st.st_uid;
      gid = st.st_gid;
      flags |= FLAG_OWNER;
    }
    close(dfd);
  }
  // An empty command line with no executable: the process had exited (a zombie keeps its stat and
  // status but loses its memory and its exe link) before we could read what it ran.
  if (lens[BLOB_CMDLINE] == 0 && !(present & (1u << BLOB_EXE))) {
    flags |= FLAG_GONE;
    atomic_fetch_add(&s->gone, 1);
  }
  size_t size = (size_t)(blob - p);
  size_t padded = (size + 7) & ~(size_t)7;
  memset(blob, 0, padded - size);
  size = padded;
  put_header(p, (uint32_t)size, KIND_EXEC, flags, present, time_ms, pid, -1, uid, gid, lens, boot);
  enqueue(s, p, (uint32_t)size, time_ms, boot, 0);
}

static void simple_record(state_t *s, uint8_t kind, double time_ms, int32_t pid, int32_t parent, uint32_t a, uint32_t b, double boot_ms, int force) {
  char p[HEADER_BYTES];
  put_header(p, HEADER_BYTES, kind, 0, 0, time_ms, pid, parent, a, b, NULL, boot_ms);
  enqueue(s, p, HEADER_BYTES, time_ms, boot_ms, force);
}

static void simple(state_t *s, uint8_t kind, double time_ms, int32_t pid, int32_t parent, uint32_t a, uint32_t b, double boot_ms) {
  simple_record(s, kind, time_ms, pid, parent, a, b, boot_ms, 0);
}

static uint64_t mono_now_ns(void) {
  struct timespec mono;
  clock_gettime(CLOCK_MONOTONIC, &mono);
  return (uint64_t)mono.tv_sec * 1000000000u + (uint64_t)mono.tv_nsec;
}

/** A record of ours (a loss, an error, a cut), not the kernel's: it happened now, in the stream's order. */
static void marker(state_t *s, uint8_t kind, uint32_t a, uint32_t b) {
  uint64_t now_ns = mono_now_ns();
  simple(s, kind, wall_ms(now_ns), -1, -1, a, b, boot_ms(now_ns));
}

static void handle_event(state_t *s, const struct proc_event *ev) {
  atomic_fetch_add(&s->messages, 1);
  s->last_event_ns = ev->timestamp_ns;
  double t;
  switch (ev->what) {
    case PROC_EVENT_FORK:
      // A new thread is a fork too; only new processes (child pid = its tgid) matter here.
      if (ev->event_data.fork.child_pid != ev->event_data.fork.child_tgid) return;
      atomic_fetch_add(&s->forks, 1);
      t = wall_ms(ev->timestamp_ns);
      simple(s, KIND_FORK, t, ev->event_data.fork.child_tgid, ev->event_data.fork.parent_tgid,
             (uint32_t)ev->event_data.fork.parent_pid, 0, boot_ms(ev->timestamp_ns));
      return;
    case PROC_EVENT_EXEC:
      atomic_fetch_add(&s->execs, 1);
      on_exec(s, ev->event_data.exec.process_tgid, wall_ms(ev->timestamp_ns), boot_ms(ev->timestamp_ns));
      return;
    case PROC_EVENT_SID:
      // The next exec reads what a new session may change; JS learns the terminal was let go.
      on_new_session(s, ev->event_data.sid.process_tgid);
      simple(s, KIND_SID, wall_ms(ev->timestamp_ns), ev->event_data.sid.process_tgid, -1, 0, 0, boot_ms(ev->timestamp_ns));
      return;
    case PROC_EVENT_UID:
      // setuid() in a threaded program changes every thread; the leader's change stands for them all.
      if (ev->event_data.id.process_pid != ev->event_data.id.process_tgid) return;
      atomic_fetch_add(&s->uids, 1);
      simple(s, KIND_UID, wall_ms(ev->timestamp_ns), ev->event_data.id.process_tgid, -1,
             ev->event_data.id.r.ruid, ev->event_data.id.e.euid, boot_ms(ev->timestamp_ns));
      return;
    case PROC_EVENT_EXIT:
      if (ev->event_data.exit.process_pid != ev->event_data.exit.process_tgid) return;
      atomic_fetch_add(&s->exits, 1);
      simple(s, KIND_EXIT, wall_ms(ev->timestamp_ns), ev->event_data.exit.process_tgid, ev->event_data.exit.parent_tgid,
             ev->event_data.exit.exit_code, ev->event_data.exit.exit_signal, boot_ms(ev->timestamp_ns));
      return;
    default:
      return;
  }
}

// ---- the sockets ----------------------------------------------------------------------------

// Since Linux 6.6 a listener may name the events it wants (struct proc_input); older kernels ignore
// such a request, which open() detects. Defined here as older userspace headers lack them.
#define OMW_PROC_EVENT_NONZERO_EXIT 0x20000000u
#define OMW_PROC_EVENT_ALL (0x1u | 0x2u | 0x4u | 0x40u | 0x80u | 0x100u | 0x200u | OMW_PROC_EVENT_NONZERO_EXIT | 0x40000000u | 0x80000000u)
struct omw_proc_input {
  uint32_t mcast_op;
  uint32_t event_type;
};

/** Sends LISTEN or IGNORE; with event_type 0 in the old form every kernel knows, else filtered. */
static int send_mcast(int sock, uint32_t seq, uint32_t ack, uint32_t op, uint32_t event_type) {
  char buf[NLMSG_SPACE(sizeof(struct cn_msg) + sizeof(struct omw_proc_input))] __attribute__((aligned(8)));
  memset(buf, 0, sizeof buf);
  struct nlmsghdr *nl = (struct nlmsghdr *)buf;
  struct cn_msg *cn = (struct cn_msg *)NLMSG_DATA(nl);
  size_t payload = event_type ? sizeof(struct omw_proc_input) : sizeof(uint32_t);
  nl->nlmsg_len = NLMSG_LENGTH(sizeof(struct cn_msg) + payload);
  nl->nlmsg_type = NLMSG_DONE;
  nl->nlmsg_pid = 0;
  cn->id.idx = CN_IDX_PROC;
  cn->id.val = CN_VAL_PROC;
  cn->seq = seq;
  cn->ack = ack;
  cn->len = (uint16_t)payload;
  struct omw_proc_input input = { .mcast_op = op, .event_type = event_type };
  memcpy(cn->data, &input, payload);
  struct sockaddr_nl to = { .nl_family = AF_NETLINK, .nl_pid = 0, .nl_groups = CN_IDX_PROC };
  return sendto(sock, buf, nl->nlmsg_len, 0, (struct sockaddr *)&to, sizeof to) < 0 ? -1 : 0;
}


/**
 * Reads what is waiting on one socket. Returns 1 when our LISTEN was acknowledged (ack_err set), 0
 * otherwise; -1 on an error other than "nothing left" (errno set).
 */
static int drain(state_t *s, int sock, drain_opts_t *opts) {
  // Large enough for any datagram the connector sends (one proc_event per message).
  char buf[8192] __attribute__((aligned(8)));
  int acked = 0;
  for (int messages = 0; (opts && opts->all) || messages < DRAIN_MAX; messages++) {
    ssize_t n = recv(sock, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return acked;
      if (errno == ENOBUFS) {
        // The kernel dropped messages for us: say so in the stream, in order, and go on reading.
        atomic_fetch_add(&s->overflows, 1);
        marker(s, KIND_OVERFLOW, 1, 0);
        continue;
      }
      return -1;
    }
    for (struct nlmsghdr *nl = (struct nlmsghdr *)buf; NLMSG_OK(nl, (size_t)n); nl = NLMSG_NEXT(nl, n)) {
      if (nl->nlmsg_type == NLMSG_ERROR || nl->nlmsg_type == NLMSG_NOOP) continue;
      struct cn_msg *cn = (struct cn_msg *)NLMSG_DATA(nl);
      if (cn->id.idx != CN_IDX_PROC || cn->id.val != CN_VAL_PROC) continue;
      if (cn->len < 16) continue;
      const struct proc_event *ev = (const struct proc_event *)cn->data;
      if (ev->what == PROC_EVENT_NONE) {
        // The acknowledgement of a LISTEN, ours or another listener's. The kernel answers with our
        // `ack` plus one (newer kernels overwrite `seq` with their own counter), so `ack` tells ours.
        if (opts && opts->ack_err && cn->ack == s->listen_seq + 1) {
          *opts->ack_err = (int)ev->event_data.ack.err;
          acked = 1;
        }
        continue;
      }
      if (opts && opts->probe_tid && ev->what == PROC_EVENT_FORK && ev->event_data.fork.child_pid == opts->probe_tid) opts->probe_seen = 1;
      if (opts && opts->skip_exec && (ev->what == PROC_EVENT_EXEC || ev->what == PROC_EVENT_SID)) continue;
      handle_event(s, ev);
    }
  }
  if (opts) opts->stopped_short = 1;
  return acked;
}

static void error_record(state_t *s, int err) {
  atomic_fetch_add(&s->errors, 1);
  marker(s, KIND_ERROR, (uint32_t)err, 0);
}

static int open_socket(int64_t rcvbuf, const char **code, const char **what, int *err);
static void *probe_thread(void *arg);
static int drain(state_t *s, int sock, drain_opts_t *opts);

/** Silence this long on the socket that takes every message, and we check the kernel still talks to us. */
#define LIVENESS_MS 5000

/**
 * The kernel counts listeners and stops announcing events to anyone when the count reaches zero; a
 * message nobody could take (our buffer full, ENOBUFS) resets it to zero, and another program's
 * IGNORE may take it there. A LISTEN on a new socket counts again: the socket that takes every message
 * is replaced by a new one (what its old one held is lost, and said so: a RELISTEN record).
 */
static void relisten(state_t *s) {
  const char *code, *what;
  int err;
  int fresh = open_socket(s->rcvbuf, &code, &what, &err);
  if (fresh < 0) return;
  if (send_mcast(fresh, s->listen_seq + 10, s->listen_seq + 10, PROC_CN_MCAST_LISTEN, 0) < 0) {
    close(fresh);
    return;
  }
  int *slot = s->sock_bulk >= 0 ? &s->sock_bulk : &s->sock;
  close(*slot);
  *slot = fresh;
  atomic_fetch_add(&s->relistens, 1);
  marker(s, KIND_RELISTEN, 0, 0);
}

/** Makes a thread (a FORK the kernel announces) and looks for it; relistens if it did not come. */
static void check_alive(state_t *s) {
  drain_opts_t opts = { .skip_exec = s->sock_bulk >= 0, .all = 1 };
  pthread_t thread;
  if (pthread_create(&thread, NULL, probe_thread, &opts.probe_tid) != 0) return;
  pthread_join(thread, NULL);
  int sock = s->sock_bulk >= 0 ? s->sock_bulk : s->sock;
  if (drain(s, sock, &opts) < 0) return;
  if (!opts.probe_seen) relisten(s);
}

static int64_t ms_since(const struct timespec *then) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (now.tv_sec - then->tv_sec) * 1000 + (now.tv_nsec - then->tv_nsec) / 1000000;
}

/** Arms the reader's one timer to fire once, `ms` from now. */
static void arm(int timer_fd, uint32_t ms) {
  struct itimerspec at = { .it_value = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L } };
  timerfd_settime(timer_fd, 0, &at, NULL);
}

static int queue_state(state_t *s, int *urgent) {
  pthread_mutex_lock(&s->lock);
  int any = s->head != NULL;
  *urgent = s->dropped_unreported > 0 || s->queued_records >= s->batch_records;
  pthread_mutex_unlock(&s->lock);
  return any;
}

/** The reader cannot go on: JS is told at once (an ERROR record marked final) and falls back to the scan. */
static void *stopped_for_good(state_t *s, int err) {
  atomic_fetch_add(&s->errors, 1);
  uint64_t now_ns = mono_now_ns();
  simple_record(s, KIND_ERROR, wall_ms(now_ns), -1, -1, (uint32_t)err, 1, boot_ms(now_ns), 1);
  commit(s);
  notify(s);
  return NULL;
}

/**
 * The reader. Exec messages wake it at once (the details must be read before the process exits);
 * with the split sockets, forks, uid changes and exits only start a batch and are read in bulk when
 * it is due, so a burst costs one wake-up per exec rather than three. JS is handed a batch batch_ms
 * after its first record, or at batch_records, or at once for drops. One timer (a timerfd, armed once
 * per batch rather than at every wait: programming a timer is costly in a VM) says when a batch is
 * due, and when idle, when to check that the kernel still talks to us.
 */
static void *reader(void *arg) {
  state_t *s = arg;
  // Named, so its CPU time is told apart from Node's (top -H, /proc/PID/task/*/comm; bench:exec).
  pthread_setname_np(pthread_self(), "omw-proc-conn");
  // Woken first among ordinary threads (a higher CFS weight, not a real-time class that could starve
  // the host's work): the details of a new program must be read before it exits. Only root may raise
  // it; otherwise the thread keeps Node's priority.
  setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), READER_NICE);
  int timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (timer_fd < 0) return stopped_for_good(s, errno);
  int batch_open = 0;
  arm(timer_fd, LIVENESS_MS);
  while (!atomic_load(&s->stopping)) {
    struct pollfd fds[4] = {
      { .fd = s->wake_fd, .events = POLLIN },
      { .fd = s->sock, .events = POLLIN },
      // While a batch is open, the bulk socket waits for it to be due.
      { .fd = batch_open ? -1 : s->sock_bulk, .events = POLLIN },
      { .fd = timer_fd, .events = POLLIN },
    };
    if (poll(fds, 4, -1) < 0) {
      if (errno == EINTR) continue;
      close(timer_fd);
      return stopped_for_good(s, errno);
    }
    if (fds[0].revents) break;
    int due = 0;
    if (fds[3].revents) {
      uint64_t expirations;
      ssize_t r = read(timer_fd, &expirations, sizeof expirations);
      (void)r;
      if (batch_open) due = 1;
      else {
        check_alive(s);
        arm(timer_fd, LIVENESS_MS);
      }
    }
    if (fds[1].revents & (POLLERR | POLLIN)) {
      if (drain(s, s->sock, NULL) < 0) {
        if (errno == EBADF || errno == ENOTSOCK) {
          close(timer_fd);
          return stopped_for_good(s, errno);
        }
        error_record(s, errno);
      }
    }
    int urgent = 0;
    int queued = queue_state(s, &urgent);
    if (!batch_open && (fds[2].revents || queued)) {
      batch_open = 1;
      arm(timer_fd, s->batch_ms);
    }
    if (!batch_open || !(due || urgent)) continue;
    // The exec socket, then all of the bulk socket: every exec of the batch happened before that last
    // read, so its fork (and a setuid program's uid change) is in the batch too. The cut is where the
    // exec socket was read up to: the bulk socket's newer records (an exit whose exec is still to
    // come) are held by JS for the next batch. JS orders each batch by the boot clock.
    drain_opts_t execs = { 0 };
    drain_opts_t bulk = { .skip_exec = 1, .all = 1 };
    uint64_t overflows = atomic_load(&s->overflows);
    if (drain(s, s->sock, &execs) < 0) error_record(s, errno);
    uint64_t cut_ns = execs.stopped_short ? s->last_event_ns : mono_now_ns();
    if (s->sock_bulk >= 0 && drain(s, s->sock_bulk, &bulk) < 0) error_record(s, errno);
    simple(s, KIND_CUT, wall_ms(cut_ns), -1, -1, 0, 0, boot_ms(cut_ns));
    // A message we could not take may have made the kernel think nobody listens.
    if (atomic_load(&s->overflows) != overflows) check_alive(s);
    commit(s);
    batch_open = 0;
    if (queue_state(s, &urgent)) {
      if (!atomic_load(&s->notify_pending)) notify(s);
      else {
        // JS has not taken the last batch: look again after another interval.
        batch_open = 1;
        arm(timer_fd, s->batch_ms);
        continue;
      }
    }
    arm(timer_fd, LIVENESS_MS);
  }
  close(timer_fd);
  return NULL;
}

// ---- JavaScript side -------------------------------------------------------------------------

static void call_js(napi_env env, napi_value callback, void *context, void *data) {
  // Torn down: nothing to deliver (and the state may be going away).
  if (env == NULL || callback == NULL) return;
  state_t *s = context;
  // Cleared before taking the queue: a record queued after this point wakes us again.
  atomic_store(&s->notify_pending, 0);
  pthread_mutex_lock(&s->lock);
  record_t *r = s->head;
  uint64_t bytes = s->committed_bytes;
  if (!s->commit_tail) r = NULL;
  else {
    s->head = s->commit_tail->next;
    s->commit_tail->next = NULL;
    if (!s->head) s->tail = NULL;
    s->queued_records -= s->committed_records;
    s->queued_bytes -= s->committed_bytes;
    s->commit_tail = NULL;
    s->committed_records = 0;
    s->committed_bytes = 0;
  }
  pthread_mutex_unlock(&s->lock);
  if (!r) return;
  void *out = NULL;
  napi_value buffer;
  if (napi_create_buffer(env, (size_t)bytes, &out, &buffer) != napi_ok) {
    while (r) { record_t *next = r->next; free(r); r = next; }
    return;
  }
  char *at = out;
  while (r) {
    record_t *next = r->next;
    memcpy(at, r->data, r->size);
    at += r->size;
    free(r);
    r = next;
  }
  napi_value global;
  napi_get_global(env, &global);
  napi_call_function(env, global, callback, 1, &buffer, NULL);
}

static void stop(state_t *s) {
  if (s->closed) return;
  s->closed = 1;
  atomic_store(&s->stopping, 1);
  if (s->thread_started) {
    uint64_t one = 1;
    ssize_t w = write(s->wake_fd, &one, sizeof one);
    (void)w;
    pthread_join(s->thread, NULL);
    s->thread_started = 0;
  }
  // Closed without PROC_CN_MCAST_IGNORE: an IGNORE lowers the kernel's count of listeners, which a
  // reset (see relisten) may already have taken to zero; lowered further, it would silence every
  // listener on the host. A closed socket is simply no longer delivered to, and the next message
  // nobody takes resets the count.
  if (s->sock >= 0) close(s->sock);
  s->sock = -1;
  if (s->sock_bulk >= 0) close(s->sock_bulk);
  s->sock_bulk = -1;
  if (s->wake_fd >= 0) close(s->wake_fd);
  s->wake_fd = -1;
  if (s->tsfn) {
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
    s->tsfn = NULL;
  }
  pthread_mutex_lock(&s->lock);
  free_queue(s);
  pthread_mutex_unlock(&s->lock);
  free(s->scratch);
  s->scratch = NULL;
  free(s->environ_buf);
  s->environ_buf = NULL;
}

static void cleanup_hook(void *arg) {
  stop(arg);
}

static void unref_state(state_t *s) {
  if (--s->refs > 0) return;
  pthread_mutex_destroy(&s->lock);
  free(s);
}

static void finalize_tsfn(napi_env env, void *data, void *hint) {
  unref_state(data);
}

static void finalize_handle(napi_env env, void *data, void *hint) {
  state_t *s = data;
  stop(s);
  napi_remove_env_cleanup_hook(env, cleanup_hook, s);
  unref_state(s);
}

static napi_value throw_errno(napi_env env, const char *code, const char *what, int err) {
  char message[512];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_value msg, code_value, error, errno_value;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value);
  napi_create_error(env, code_value, msg, &error);
  napi_create_int32(env, err, &errno_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_throw(env, error);
  return NULL;
}

static int64_t option_int(napi_env env, napi_value options, const char *name, int64_t fallback) {
  bool has = false;
  napi_has_named_property(env, options, name, &has);
  if (!has) return fallback;
  napi_value v;
  int64_t out = fallback;
  napi_get_named_property(env, options, name, &v);
  if (napi_get_value_int64(env, v, &out) != napi_ok) return fallback;
  return out;
}

static int open_socket(int64_t rcvbuf, const char **code, const char **what, int *err) {
  int sock = socket(PF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
  if (sock < 0) { *code = "CONNECTOR_SOCKET"; *what = "socket(PF_NETLINK, NETLINK_CONNECTOR)"; *err = errno; return -1; }
  if (rcvbuf > 0) {
    int size = rcvbuf > (1 << 30) ? (1 << 30) : (int)rcvbuf;
    // As root, past net.core.rmem_max; otherwise the plain option (capped by rmem_max).
    if (setsockopt(sock, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0) setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  struct sockaddr_nl addr = { .nl_family = AF_NETLINK, .nl_pid = 0, .nl_groups = CN_IDX_PROC };
  if (bind(sock, (struct sockaddr *)&addr, sizeof addr) < 0) {
    *code = "CONNECTOR_BIND"; *what = "bind(NETLINK_CONNECTOR, CN_IDX_PROC)"; *err = errno;
    close(sock);
    return -1;
  }
  return sock;
}

static void *probe_thread(void *arg) {
  *(pid_t *)arg = (pid_t)syscall(SYS_gettid);
  return NULL;
}

/**
 * Splits the stream: the first socket keeps only execs and setsids (and wakes the reader), a second takes every
 * message and is read in bulk, its execs skipped. The second one must take every kind: a kernel that
 * finds no socket wanting a message (an acknowledgement, a setgid) may count its listeners as none and
 * stop announcing events to anyone (connector: "proc_event_num_listeners" reset on ESRCH).
 * The kernel answers a filtered LISTEN with nothing, and a kernel before 6.6 ignores it, so we make a
 * thread (a FORK) and look: if its FORK reached the exec socket, filters are not applied here and we
 * stay with one socket. Multicast delivery is synchronous, so the FORK is queued by the time
 * pthread_create returns.
 */
static void try_split(state_t *s, int64_t rcvbuf) {
  const char *code, *what;
  int err;
  int bulk = open_socket(rcvbuf, &code, &what, &err);
  if (bulk < 0) return;
  if (send_mcast(bulk, s->listen_seq + 2, s->listen_seq + 2, PROC_CN_MCAST_LISTEN, 0) < 0
      || send_mcast(s->sock, s->listen_seq + 4, s->listen_seq + 4, PROC_CN_MCAST_LISTEN, 0x2u | 0x80u) < 0) {
    close(bulk);
    send_mcast(s->sock, s->listen_seq + 6, s->listen_seq + 6, PROC_CN_MCAST_LISTEN, 0);
    return;
  }
  drain_opts_t opts = { .all = 1 };
  // Anything already queued on the exec socket came before the filter: handle it as it is.
  drain(s, s->sock, &(drain_opts_t){ .all = 1 });
  pthread_t thread;
  if (pthread_create(&thread, NULL, probe_thread, &opts.probe_tid) != 0) {
    close(bulk);
    send_mcast(s->sock, s->listen_seq + 6, s->listen_seq + 6, PROC_CN_MCAST_LISTEN, 0);
    return;
  }
  pthread_join(thread, NULL);
  drain(s, s->sock, &opts);
  if (opts.probe_seen) {
    // Filters ignored: the second socket would get every message again.
    close(bulk);
    return;
  }
  s->sock_bulk = bulk;
  s->filtered = 1;
}

/**
 * open({maxRecords, maxBytes, maxCommandLineBytes, receiveBufferBytes, environKeys, batchMs, batchRecords},
 * onBatch(buffer)) → handle. Throws an Error with a `code` (CONNECTOR_BIND, …) and `errno` when the
 * kernel will not let us listen.
 */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_valuetype t0, t1;
  if (argc < 2 || napi_typeof(env, argv[0], &t0) != napi_ok || t0 != napi_object
      || napi_typeof(env, argv[1], &t1) != napi_ok || t1 != napi_function) {
    napi_throw_type_error(env, "CONNECTOR_ARGS", "open(options, onBatch): expected an object and a function");
    return NULL;
  }
  state_t *s = calloc(1, sizeof *s);
  if (!s) return throw_errno(env, "CONNECTOR_NOMEM", "allocating the connector state", ENOMEM);
  s->sock = -1;
  s->sock_bulk = -1;
  s->wake_fd = -1;
  pthread_mutex_init(&s->lock, NULL);
  s->max_records = (uint32_t)option_int(env, argv[0], "maxRecords", 65536);
  s->max_bytes = (uint64_t)option_int(env, argv[0], "maxBytes", 16 * 1024 * 1024);
  int64_t cmdline = option_int(env, argv[0], "maxCommandLineBytes", 32768);
  s->max_cmdline_bytes = (uint32_t)(cmdline < 256 ? 256 : cmdline > (1 << 20) ? (1 << 20) : cmdline);
  int64_t rcvbuf = option_int(env, argv[0], "receiveBufferBytes", 8 * 1024 * 1024);
  s->batch_ms = (uint32_t)option_int(env, argv[0], "batchMs", 100);
  s->split = option_int(env, argv[0], "splitSockets", 1) != 0;
  s->batch_records = (uint32_t)option_int(env, argv[0], "batchRecords", 512);
  if (s->batch_ms < 1) s->batch_ms = 1;
  if (s->batch_records < 1) s->batch_records = 1;
  if (s->max_records < 16) s->max_records = 16;
  if (s->max_bytes < 65536) s->max_bytes = 65536;

  bool has_keys = false;
  napi_has_named_property(env, argv[0], "environKeys", &has_keys);
  if (has_keys) {
    napi_value keys;
    uint32_t n = 0;
    napi_get_named_property(env, argv[0], "environKeys", &keys);
    napi_get_array_length(env, keys, &n);
    for (uint32_t i = 0; i < n && s->env_key_count < MAX_ENV_KEYS; i++) {
      napi_value key;
      size_t len = 0;
      napi_get_element(env, keys, i, &key);
      if (napi_get_value_string_utf8(env, key, s->env_keys[s->env_key_count], MAX_ENV_KEY_CHARS + 1, &len) != napi_ok || len == 0) continue;
      s->env_key_len[s->env_key_count++] = len;
    }
  }
  s->scratch_cap = HEADER_BYTES + s->max_cmdline_bytes + 2 * PATH_CAP + STAT_CAP + SESSIONID_CAP + ENVIRON_KEEP_CAP + 8;
  s->scratch = malloc(s->scratch_cap);
  s->environ_buf = malloc(ENVIRON_READ_CAP);
  if (!s->scratch || !s->environ_buf) {
    free(s->scratch);
    free(s->environ_buf);
    free(s);
    return throw_errno(env, "CONNECTOR_NOMEM", "allocating the reader's buffers", ENOMEM);
  }

  const char *code = NULL, *what = NULL;
  int err = 0;
  s->sock = open_socket(rcvbuf, &code, &what, &err);
  if (s->sock < 0) goto fail;
  s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->wake_fd < 0) { code = "CONNECTOR_EVENTFD"; what = "eventfd"; err = errno; goto fail; }
  {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    // Odd and varied, so that our acknowledgement (this plus one) is told from other listeners'.
    s->listen_seq = ((uint32_t)getpid() * 2654435761u ^ (uint32_t)now.tv_nsec) | 1u;
  }
  if (send_mcast(s->sock, s->listen_seq, s->listen_seq, PROC_CN_MCAST_LISTEN, 0) < 0) { code = "CONNECTOR_LISTEN"; what = "sending PROC_CN_MCAST_LISTEN"; err = errno; goto fail; }
  // Wait for the kernel's answer to LISTEN (it refuses without CAP_NET_ADMIN); events that arrive
  // meanwhile are kept like any other.
  {
    int ack_err = 0;
    drain_opts_t opts = { .ack_err = &ack_err };
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
      struct pollfd pfd = { .fd = s->sock, .events = POLLIN };
      int r = poll(&pfd, 1, 100);
      if (r > 0) {
        int acked = drain(s, s->sock, &opts);
        if (acked < 0) { code = "CONNECTOR_LISTEN"; what = "receiving the LISTEN acknowledgement"; err = errno; goto fail; }
        if (acked) break;
      }
      if (ms_since(&start) > 2000) {
        code = "CONNECTOR_LISTEN"; what = "no acknowledgement of PROC_CN_MCAST_LISTEN within 2 s (the kernel ignores listeners outside the initial user and pid namespaces, as in a container)"; err = ETIMEDOUT; goto fail;
      }
    }
    if (ack_err != 0) { code = "CONNECTOR_LISTEN"; what = "the kernel refused PROC_CN_MCAST_LISTEN"; err = ack_err; goto fail; }
  }
  s->rcvbuf = rcvbuf;
  if (s->split) try_split(s, rcvbuf);
  {
    napi_value name;
    napi_create_string_utf8(env, "omwatch-proc-connector", NAPI_AUTO_LENGTH, &name);
    if (napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, s, finalize_tsfn, s, call_js, &s->tsfn) != napi_ok) {
      s->tsfn = NULL;
      code = "CONNECTOR_TSFN"; what = "creating the thread-safe function"; err = ENOMEM; goto fail;
    }
    s->refs = 2;
    // The reader must never keep Node running on its own.
    napi_unref_threadsafe_function(env, s->tsfn);
    s->env = env;
  }
  err = pthread_create(&s->thread, NULL, reader, s);
  if (err != 0) { code = "CONNECTOR_THREAD"; what = "starting the reader thread"; goto fail; }
  s->thread_started = 1;

  napi_add_env_cleanup_hook(env, cleanup_hook, s);
  napi_value handle;
  napi_create_external(env, s, finalize_handle, NULL, &handle);
  return handle;

fail:
  {
    // With a thread-safe function made, its finalizer frees the state; before that, we do.
    int owned_by_tsfn = s->tsfn != NULL;
    if (owned_by_tsfn) s->refs = 1;
    stop(s);
    if (!owned_by_tsfn) {
      pthread_mutex_destroy(&s->lock);
      free(s);
    }
  }
  return throw_errno(env, code, what, err);
}

static state_t *unwrap(napi_env env, napi_value value) {
  void *data = NULL;
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external || napi_get_value_external(env, value, &data) != napi_ok) {
    napi_throw_type_error(env, "CONNECTOR_ARGS", "expected a handle from open()");
    return NULL;
  }
  return data;
}

/** close(handle): stops listening and joins the reader; records not yet delivered are discarded. */
static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  state_t *s = argc < 1 ? NULL : unwrap(env, argv[0]);
  if (s) stop(s);
  return NULL;
}

static void set_count(napi_env env, napi_value obj, const char *name, uint64_t value) {
  napi_value v;
  napi_create_double(env, (double)value, &v);
  napi_set_named_property(env, obj, name, v);
}

/** stats(handle): what the reader has seen and dropped so far. */
static napi_value js_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  state_t *s = argc < 1 ? NULL : unwrap(env, argv[0]);
  if (!s) return NULL;
  napi_value out;
  napi_create_object(env, &out);
  set_count(env, out, "messages", atomic_load(&s->messages));
  set_count(env, out, "forks", atomic_load(&s->forks));
  set_count(env, out, "execs", atomic_load(&s->execs));
  set_count(env, out, "uidChanges", atomic_load(&s->uids));
  set_count(env, out, "exits", atomic_load(&s->exits));
  set_count(env, out, "overflows", atomic_load(&s->overflows));
  set_count(env, out, "dropped", atomic_load(&s->dropped));
  set_count(env, out, "gone", atomic_load(&s->gone));
  set_count(env, out, "errors", atomic_load(&s->errors));
  set_count(env, out, "peakQueuedBytes", atomic_load(&s->peak_bytes));
  set_count(env, out, "splitSockets", (uint64_t)s->filtered);
  set_count(env, out, "relistens", atomic_load(&s->relistens));
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL },
    { "close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL },
    { "stats", NULL, js_stats, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
