/*
 * limits.c: what the kernel itself costs, measured in the same run as ForkPool's benchmark.
 *
 * ForkPool moves every task and result between processes over AF_UNIX stream socketpairs, and
 * starts its workers with fork(). Its overhead benchmark reports each ForkPool figure as a ratio
 * to the floor measured here, on the same machine and in the same run, so that a figure such as
 * "40 us per tiny task" can be read as "N times a bare socketpair round trip" rather than
 * compared with numbers from another machine. This program is that baseline. It measures:
 *
 *   socketpair_round_trip  parent <-> forked child over a blocking AF_UNIX SOCK_STREAM
 *                          socketpair: the parent sends a 16-byte frame, the child reads exactly
 *                          16 bytes and writes them back; one sample per round trip.
 *   batched_frames         the parent writes 1000 16-byte frames in one write() (16,000 bytes),
 *                          the child reads the whole batch and replies with one 16-byte ack
 *                          (coalesced replies); the parent waits for the ack before the next
 *                          batch. Frames per second over the whole run.
 *   pipelined_echo         many callers, no batching: N forked echo children (N = 2, the pool
 *                          benchmark's default worker count; --pipeline-workers N), each on its
 *                          own socketpair, reading one 16-byte request and writing one 16-byte
 *                          reply per task. In the parent, one thread per child keeps a window of
 *                          4 requests in flight (one write per request, one read per reply); each
 *                          reply must echo its request's sequence number. 400,000 tasks in all,
 *                          split evenly across the children, after an untimed 2% warm-up; tasks
 *                          per second from before the threads start to after all are joined.
 *   bulk_echo_1MiB,        the parent sends a payload, the child reads it fully and writes it
 *   bulk_echo_64MiB        all back, the parent reads it fully; whole-buffer read()/write()
 *                          calls; bandwidth = 2 x bytes / median round-trip time.
 *   condvar_ping_pong      two threads of one process hand a token back and forth with one
 *                          pthread mutex, two condition variables and a turn variable.
 *   spin_ping_pong         (informational) two threads spinning on a C11 atomic with a pause
 *                          instruction; after 1024 fruitless spins a waiter calls
 *                          sched_yield() so the run goes on even when both threads share a CPU
 *                          (the count of such yields is reported), and the run stops after
 *                          10 s (1 s with --quick) with the samples taken so far.
 *   busy_poll_round_trip   (informational) as socketpair_round_trip, but both ends busy-poll:
 *                          each loops recv(MSG_DONTWAIT) with a pause instruction on EAGAIN
 *                          until it has the 16 bytes, then sends 16 bytes back; no sleeping in
 *                          the kernel, so no wake-up cost. Like spin_ping_pong, the run stops
 *                          after 10 s (1 s with --quick) with the samples taken so far: on a
 *                          single busy CPU each round trip can cost a scheduler time slice.
 *   shm_round_trip         (informational) parent <-> forked child through one shared cache
 *                          line (MAP_SHARED): each side spins on a sequence number, then
 *                          writes the next; what two processes sharing memory cost at best.
 *   shm_ring_callers       the shared-memory pattern's own limit with blocking callers: N
 *                          forked workers (--pipeline-workers, default 2) and 8 caller threads;
 *                          each caller has a slot (request and reply sequence numbers) in a
 *                          MAP_SHARED region served by worker (caller % N). A caller writes its
 *                          request, wakes its worker through a futex only when that worker
 *                          sleeps, and sleeps at once on a futex the worker wakes (a blocking
 *                          caller: every task wakes one, as a pool's blocked `get()` must);
 *                          a worker spins 20 us over its slots, then sleeps likewise. Tasks
 *                          per second over 200,000 tasks.
 *   fork_exit_wait         fork() + child _exit(0) + waitpid().
 *   machine                online CPU count and kernel release.
 *
 * Latencies are per-iteration samples from clock_gettime(CLOCK_MONOTONIC), sorted, with
 * nearest-rank percentiles (p50/p90/p99) and the mean, in microseconds. No CPU pinning (ForkPool
 * does not pin either), default socket buffer sizes (ForkPool does not change them either).
 *
 * Output: ONE JSON object on stdout, nothing else; progress goes to stderr. Any unexpected
 * failure of a call prints "limits: <call> failed: <reason> (errno N)" to stderr and exits 1.
 *
 * Build and run (Linux; `make bench` builds it too):
 *     cc -O2 -std=gnu11 -pthread -Wall -Wextra -o limits bench/limits/limits.c
 *     ./limits            # full run: some seconds (up to ~30 s on a loaded machine)
 *     ./limits --quick    # every repetition count / 10 (at least 1): a few seconds
 *     ./limits --pipeline-workers N   # pipelined_echo's worker count (default 2)
 *     ./limits --help
 */

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FRAME_BYTES 16
#define FRAMES_PER_BATCH 1000
#define BATCH_BYTES (FRAME_BYTES * FRAMES_PER_BATCH)
#define SPINS_BEFORE_YIELD (1L << 10)
#define PIPELINE_WINDOW 4
#define MAX_PIPELINE_WORKERS 64

/* ---------------------------------------------------------------- errors */

static bool in_child = false;     /* set in every forked child: fail with _exit, not exit */
static pid_t current_child = -1;  /* the parent's live child, killed and reaped on a failure */
/* pipelined_echo's live children (it has several at once), killed and reaped on a failure too. */
static pid_t pipeline_children[MAX_PIPELINE_WORKERS];
static atomic_bool failing = false; /* set by the parent's first failure */

static void kill_and_reap(pid_t *pid) {
    if (*pid > 0) {
        (void)kill(*pid, SIGKILL);
        while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR) {}
        *pid = -1;
    }
}

/* In the parent, the first failure is reported and ends the run. Any of pipelined_echo's threads
   failing after it (their calls fail because the children are being killed) waits, silently, for
   the end. */
static void claim_failure(void) {
    if (!in_child && atomic_exchange(&failing, true))
        for (;;) pause();
}

/* Ends the run: a child _exits 1; the parent kills and reaps its live children, then exits 1. */
_Noreturn static void die(void) {
    if (in_child) _exit(1);
    kill_and_reap(&current_child);
    for (int i = 0; i < MAX_PIPELINE_WORKERS; i++) kill_and_reap(&pipeline_children[i]);
    exit(1);
}

_Noreturn static void fail(const char *call, int err) {
    claim_failure();
    fprintf(stderr, "limits%s: %s failed: %s (errno %d)\n", in_child ? " (child)" : "", call,
            strerror(err), err);
    die();
}

_Noreturn static void fail_errno(const char *call) { fail(call, errno); }

_Noreturn static void fail_msg(const char *what) {
    claim_failure();
    fprintf(stderr, "limits%s: %s\n", in_child ? " (child)" : "", what);
    die();
}

/* pthread_* calls return the error number instead of setting errno. */
static void check_pthread(const char *call, int rc) {
    if (rc != 0) fail(call, rc);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (p == NULL) fail("malloc", errno ? errno : ENOMEM);
    return p;
}

static int64_t now_ns(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) fail_errno("clock_gettime(CLOCK_MONOTONIC)");
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---------------------------------------------------------------- exact I/O */

/* Reads exactly n bytes. Returns n, or 0 on end of stream before the first byte (a clean close
   by the peer); end of stream in the middle of the n bytes is a failure. */
static size_t read_exact(int fd, void *buf, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t r = read(fd, (char *)buf + done, n - done);
        if (r < 0) {
            if (errno == EINTR) continue;
            fail_errno("read");
        }
        if (r == 0) {
            if (done == 0) return 0;
            fail_msg("read failed: end of stream in the middle of a message");
        }
        done += (size_t)r;
    }
    return done;
}

/* Writes exactly n bytes (no SIGPIPE: MSG_NOSIGNAL, and SIGPIPE is ignored as well). */
static void write_exact(int fd, const void *buf, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t w = send(fd, (const char *)buf + done, n - done, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            fail_errno("send");
        }
        done += (size_t)w;
    }
}

static void xclose(int fd) {
    /* Linux releases the descriptor even when close() reports EINTR: never retry. */
    if (close(fd) != 0 && errno != EINTR) fail_errno("close");
}

/* ---------------------------------------------------------------- child processes */

typedef void (*child_main_fn)(int fd, size_t arg);

/* Forks a child that runs body(fd, arg) on its end of a fresh socketpair, then closes it and
   _exits 0. Returns the parent's end; the child's pid is in current_child. */
static int spawn_child(child_main_fn body, size_t arg) {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
        fail_errno("socketpair(AF_UNIX, SOCK_STREAM)");
    if (fflush(NULL) != 0) fail_errno("fflush");
    pid_t pid = fork();
    if (pid < 0) fail_errno("fork");
    if (pid == 0) {
        in_child = true;
        current_child = -1;
        xclose(fds[0]);
        body(fds[1], arg);
        xclose(fds[1]);
        _exit(0);
    }
    current_child = pid;
    xclose(fds[1]);
    return fds[0];
}

static void reap(pid_t pid, const char *what) {
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno == EINTR) continue;
        fail_errno("waitpid");
    }
    if (pid == current_child) current_child = -1;
    for (int i = 0; i < MAX_PIPELINE_WORKERS; i++)
        if (pipeline_children[i] == pid) pipeline_children[i] = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char msg[160];
        if (WIFSIGNALED(status))
            snprintf(msg, sizeof msg, "%s child %d was killed by signal %d", what, (int)pid,
                     WTERMSIG(status));
        else
            snprintf(msg, sizeof msg, "%s child %d exited with status %d", what, (int)pid,
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        fail_msg(msg);
    }
}

/* Closes the parent's end (the child sees end of stream and exits 0) and reaps the child. */
static void finish_child(int fd, const char *what) {
    pid_t pid = current_child;
    xclose(fd);
    reap(pid, what);
}

/* ---------------------------------------------------------------- statistics */

typedef struct {
    long samples;
    double p50_us, p90_us, p99_us, mean_us;
} latency;

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least p% of the samples at or below it. */
static int64_t nearest_rank(const int64_t *sorted, long n, int p) {
    long rank = ((long)p * n + 99) / 100;
    if (rank < 1) rank = 1;
    return sorted[rank - 1];
}

static latency summarize(int64_t *ns, long n) {
    qsort(ns, (size_t)n, sizeof *ns, cmp_i64);
    double sum = 0;
    for (long i = 0; i < n; i++) sum += (double)ns[i];
    latency l = {
        .samples = n,
        .p50_us = (double)nearest_rank(ns, n, 50) / 1e3,
        .p90_us = (double)nearest_rank(ns, n, 90) / 1e3,
        .p99_us = (double)nearest_rank(ns, n, 99) / 1e3,
        .mean_us = sum / (double)n / 1e3,
    };
    return l;
}

static double median_seconds(int64_t *ns, long n) {
    qsort(ns, (size_t)n, sizeof *ns, cmp_i64);
    double m = n % 2 ? (double)ns[n / 2] : ((double)ns[n / 2 - 1] + (double)ns[n / 2]) / 2;
    return m / 1e9;
}

/* ---------------------------------------------------------------- 1. socketpair round trip */

static void echo_frames_child(int fd, size_t unused) {
    (void)unused;
    unsigned char frame[FRAME_BYTES];
    while (read_exact(fd, frame, sizeof frame) == sizeof frame) write_exact(fd, frame, sizeof frame);
}

static latency bench_round_trip(long warmup, long n) {
    int64_t *ns = xmalloc((size_t)n * sizeof *ns);
    int fd = spawn_child(echo_frames_child, 0);
    unsigned char out[FRAME_BYTES], in[FRAME_BYTES];
    for (long i = -warmup; i < n; i++) {
        memset(out, (int)(i & 0xff), sizeof out);
        int64_t t0 = now_ns();
        write_exact(fd, out, sizeof out);
        if (read_exact(fd, in, sizeof in) != sizeof in) fail_msg("echo child closed early");
        int64_t t1 = now_ns();
        if (memcmp(in, out, sizeof in) != 0) fail_msg("echo child returned a different frame");
        if (i >= 0) ns[i] = t1 - t0;
    }
    finish_child(fd, "socketpair_round_trip");
    latency l = summarize(ns, n);
    free(ns);
    return l;
}

/* ---------------------------------------------------------------- 2. batched frames */

static void batch_ack_child(int fd, size_t unused) {
    (void)unused;
    unsigned char *batch = xmalloc(BATCH_BYTES);
    unsigned char ack[FRAME_BYTES];
    memset(ack, 0xac, sizeof ack);
    while (read_exact(fd, batch, BATCH_BYTES) == BATCH_BYTES) {
        memcpy(ack, batch, 8); /* ack carries the first frame's sequence number */
        write_exact(fd, ack, sizeof ack);
    }
    free(batch);
}

typedef struct {
    long frames;
    double seconds, frames_per_second;
} throughput;

static throughput bench_batched(long warmup_batches, long batches) {
    unsigned char *batch = xmalloc(BATCH_BYTES);
    memset(batch, 0x5a, BATCH_BYTES);
    unsigned char ack[FRAME_BYTES];
    int fd = spawn_child(batch_ack_child, 0);
    int64_t t0 = 0;
    for (long b = -warmup_batches; b < batches; b++) {
        if (b == 0) t0 = now_ns();
        uint64_t seq = (uint64_t)b;
        memcpy(batch, &seq, sizeof seq);
        write_exact(fd, batch, BATCH_BYTES);
        if (read_exact(fd, ack, sizeof ack) != sizeof ack) fail_msg("batch child closed early");
        if (memcmp(ack, &seq, sizeof seq) != 0) fail_msg("batch child acknowledged the wrong batch");
    }
    int64_t t1 = now_ns();
    finish_child(fd, "batched_frames");
    free(batch);
    throughput t;
    t.frames = batches * FRAMES_PER_BATCH;
    t.seconds = (double)(t1 - t0) / 1e9;
    t.frames_per_second = (double)t.frames / t.seconds;
    return t;
}

/* ---------------------------------------------------------------- 3. pipelined echo */

/* The parent's ends of pipelined_echo's socketpairs: child i closes the ends of the children
   forked before it, which it inherited, so that each child sees end of stream when the parent
   closes its end. */
static int pipeline_fds[MAX_PIPELINE_WORKERS];

/* One read and one write per task: no batching of requests or replies. */
static void pipeline_echo_child(int fd, size_t index) {
    for (size_t j = 0; j < index; j++) xclose(pipeline_fds[j]);
    unsigned char frame[FRAME_BYTES];
    while (read_exact(fd, frame, sizeof frame) == sizeof frame) write_exact(fd, frame, sizeof frame);
}

typedef struct {
    int fd;
    long tasks;    /* this caller's share of the current run */
    uint64_t seq;  /* the next request's sequence number; carries on from run to run */
} pipeline_caller;

static void put_request(unsigned char *frame, uint64_t seq) {
    uint64_t check = ~seq;
    memcpy(frame, &seq, sizeof seq);
    memcpy(frame + sizeof seq, &check, sizeof check);
}

/* Keeps up to PIPELINE_WINDOW requests in flight on one socketpair: sends the first window, then
   for each reply (read and checked) sends the next request, then drains the window. */
static void *pipeline_caller_main(void *arg) {
    pipeline_caller *c = arg;
    unsigned char out[FRAME_BYTES], in[FRAME_BYTES];
    uint64_t first = c->seq, end = c->seq + (uint64_t)c->tasks;
    uint64_t next_send = first, next_reply = first;
    while (next_send < end && next_send - first < PIPELINE_WINDOW) {
        put_request(out, next_send++);
        write_exact(c->fd, out, sizeof out);
    }
    while (next_reply < end) {
        if (read_exact(c->fd, in, sizeof in) != sizeof in) fail_msg("pipelined echo child closed early");
        put_request(out, next_reply++);
        if (memcmp(in, out, sizeof in) != 0)
            fail_msg("pipelined_echo: a reply does not echo its request's sequence number");
        if (next_send < end) {
            put_request(out, next_send++);
            write_exact(c->fd, out, sizeof out);
        }
    }
    c->seq = end;
    return NULL;
}

/* One run of `tasks` tasks split evenly across the callers; returns its wall time. */
static int64_t pipeline_run(pipeline_caller *callers, int workers, long tasks) {
    pthread_t threads[MAX_PIPELINE_WORKERS];
    for (int i = 0; i < workers; i++)
        callers[i].tasks = tasks / workers + (i < tasks % workers ? 1 : 0);
    int64_t t0 = now_ns();
    for (int i = 0; i < workers; i++)
        check_pthread("pthread_create", pthread_create(&threads[i], NULL, pipeline_caller_main, &callers[i]));
    for (int i = 0; i < workers; i++) check_pthread("pthread_join", pthread_join(threads[i], NULL));
    return now_ns() - t0;
}

typedef struct {
    int workers;
    long tasks;
    double seconds, tasks_per_second;
} pipelined;

static pipelined bench_pipelined(int workers, long warmup_tasks, long tasks) {
    pipeline_caller callers[MAX_PIPELINE_WORKERS];
    pid_t pids[MAX_PIPELINE_WORKERS];
    /* Every child is forked before any caller thread starts. */
    for (int i = 0; i < workers; i++) {
        pipeline_fds[i] = spawn_child(pipeline_echo_child, (size_t)i);
        pids[i] = pipeline_children[i] = current_child;
        current_child = -1;
        callers[i] = (pipeline_caller){.fd = pipeline_fds[i], .tasks = 0, .seq = 0};
    }
    (void)pipeline_run(callers, workers, warmup_tasks);
    int64_t ns = pipeline_run(callers, workers, tasks);
    for (int i = 0; i < workers; i++) {
        xclose(pipeline_fds[i]);
        reap(pids[i], "pipelined_echo");
    }
    pipelined p = {.workers = workers, .tasks = tasks};
    p.seconds = (double)ns / 1e9;
    p.tasks_per_second = (double)tasks / p.seconds;
    return p;
}

/* ---------------------------------------------------------------- 4. bulk echo */

static void bulk_echo_child(int fd, size_t bytes) {
    unsigned char *buf = xmalloc(bytes);
    memset(buf, 0, bytes); /* touched once, before any timing */
    while (read_exact(fd, buf, bytes) == bytes) write_exact(fd, buf, bytes);
    free(buf);
}

typedef struct {
    size_t bytes;
    long repetitions;
    double median_seconds, bandwidth_MiB_s;
} bulk;

static bulk bench_bulk(size_t bytes, long warmup, long reps) {
    unsigned char *out = xmalloc(bytes), *in = xmalloc(bytes);
    for (size_t i = 0; i < bytes; i++) out[i] = (unsigned char)(i * 131 + 7);
    memset(in, 0, bytes);
    int64_t *ns = xmalloc((size_t)reps * sizeof *ns);
    int fd = spawn_child(bulk_echo_child, bytes);
    for (long r = -warmup; r < reps; r++) {
        int64_t t0 = now_ns();
        write_exact(fd, out, bytes);
        if (read_exact(fd, in, bytes) != bytes) fail_msg("bulk echo child closed early");
        int64_t t1 = now_ns();
        if (r < 0 && memcmp(in, out, bytes) != 0)
            fail_msg("bulk echo child returned different bytes");
        if (r >= 0) ns[r] = t1 - t0;
    }
    finish_child(fd, "bulk_echo");
    bulk b = {.bytes = bytes, .repetitions = reps};
    b.median_seconds = median_seconds(ns, reps);
    b.bandwidth_MiB_s = 2.0 * (double)bytes / b.median_seconds / (1024.0 * 1024.0);
    free(ns);
    free(in);
    free(out);
    return b;
}

/* ---------------------------------------------------------------- 5. condvar ping-pong */

typedef struct {
    pthread_mutex_t mutex;
    pthread_cond_t to_main, to_peer;
    int turn; /* 0: main's turn, 1: the peer's */
    long round_trips;
} condvar_game;

static void *condvar_peer(void *arg) {
    condvar_game *g = arg;
    check_pthread("pthread_mutex_lock", pthread_mutex_lock(&g->mutex));
    for (long i = 0; i < g->round_trips; i++) {
        while (g->turn != 1) check_pthread("pthread_cond_wait", pthread_cond_wait(&g->to_peer, &g->mutex));
        g->turn = 0;
        check_pthread("pthread_cond_signal", pthread_cond_signal(&g->to_main));
    }
    check_pthread("pthread_mutex_unlock", pthread_mutex_unlock(&g->mutex));
    return NULL;
}

static latency bench_condvar(long warmup, long n) {
    int64_t *ns = xmalloc((size_t)n * sizeof *ns);
    condvar_game g = {.turn = 0, .round_trips = warmup + n};
    check_pthread("pthread_mutex_init", pthread_mutex_init(&g.mutex, NULL));
    check_pthread("pthread_cond_init", pthread_cond_init(&g.to_main, NULL));
    check_pthread("pthread_cond_init", pthread_cond_init(&g.to_peer, NULL));
    pthread_t peer;
    check_pthread("pthread_create", pthread_create(&peer, NULL, condvar_peer, &g));
    for (long i = -warmup; i < n; i++) {
        int64_t t0 = now_ns();
        check_pthread("pthread_mutex_lock", pthread_mutex_lock(&g.mutex));
        g.turn = 1;
        check_pthread("pthread_cond_signal", pthread_cond_signal(&g.to_peer));
        while (g.turn != 0) check_pthread("pthread_cond_wait", pthread_cond_wait(&g.to_main, &g.mutex));
        check_pthread("pthread_mutex_unlock", pthread_mutex_unlock(&g.mutex));
        int64_t t1 = now_ns();
        if (i >= 0) ns[i] = t1 - t0;
    }
    check_pthread("pthread_join", pthread_join(peer, NULL));
    check_pthread("pthread_cond_destroy", pthread_cond_destroy(&g.to_peer));
    check_pthread("pthread_cond_destroy", pthread_cond_destroy(&g.to_main));
    check_pthread("pthread_mutex_destroy", pthread_mutex_destroy(&g.mutex));
    latency l = summarize(ns, n);
    free(ns);
    return l;
}

/* ---------------------------------------------------------------- 6. spin ping-pong */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

enum { SPIN_MAIN = 0, SPIN_PEER = 1, SPIN_STOP = 2 }; /* whose turn it is, or: stop */

typedef struct {
    _Alignas(64) atomic_int turn;
    _Alignas(64) atomic_long yields;
} spin_game;

/* Spins while turn == busy and returns the new value; yields the CPU after SPINS_BEFORE_YIELD
   spins in a row so that the run goes on even when the other thread is descheduled (or shares
   this CPU). */
static int spin_while(spin_game *g, int busy) {
    long spins = 0;
    int v;
    while ((v = atomic_load_explicit(&g->turn, memory_order_acquire)) == busy) {
        cpu_relax();
        if (++spins >= SPINS_BEFORE_YIELD) {
            spins = 0;
            atomic_fetch_add_explicit(&g->yields, 1, memory_order_relaxed);
            if (sched_yield() != 0) fail_errno("sched_yield");
        }
    }
    return v;
}

static void *spin_peer(void *arg) {
    spin_game *g = arg;
    while (spin_while(g, SPIN_MAIN) == SPIN_PEER)
        atomic_store_explicit(&g->turn, SPIN_MAIN, memory_order_release);
    return NULL;
}

/* Up to warmup + n round trips, but no longer than budget_ns in all (at least one sample): on a
   loaded machine a descheduled spinner can cost a whole scheduler tick per round trip. */
static latency bench_spin(long warmup, long n, int64_t budget_ns, long *yields) {
    int64_t *ns = xmalloc((size_t)n * sizeof *ns);
    spin_game *g = aligned_alloc(_Alignof(spin_game), sizeof(spin_game));
    if (g == NULL) fail_errno("aligned_alloc");
    atomic_init(&g->turn, SPIN_MAIN);
    atomic_init(&g->yields, 0);
    pthread_t peer;
    check_pthread("pthread_create", pthread_create(&peer, NULL, spin_peer, g));
    int64_t deadline = now_ns() + budget_ns;
    long taken = 0;
    for (long i = -warmup; i < n; i++) {
        int64_t t0 = now_ns();
        atomic_store_explicit(&g->turn, SPIN_PEER, memory_order_release);
        if (spin_while(g, SPIN_PEER) != SPIN_MAIN) fail_msg("spin_ping_pong: unexpected turn value");
        int64_t t1 = now_ns();
        if (i >= 0) ns[taken++] = t1 - t0;
        if (t1 > deadline) {
            if (i < 0) i = -1; /* budget spent in the warm-up: still take one sample */
            else break;
        }
    }
    atomic_store_explicit(&g->turn, SPIN_STOP, memory_order_release);
    check_pthread("pthread_join", pthread_join(peer, NULL));
    *yields = atomic_load(&g->yields);
    free(g);
    latency l = summarize(ns, taken);
    free(ns);
    return l;
}

/* ---------------------------------------------------------------- shared memory */

static void *shared_region(size_t bytes) {
    void *region = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) fail_errno("mmap");
    memset(region, 0, bytes);
    return region;
}

static void futex_wait(_Atomic uint32_t *word, uint32_t expected) {
    (void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expected, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word) {
    (void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* One cache line each way: the parent writes odd numbers, the child answers with the next. */
typedef struct { _Alignas(64) _Atomic uint64_t ping; _Alignas(64) _Atomic uint64_t pong; } shm_line;

static latency bench_shm_round_trip(long warmup, long n) {
    shm_line *line = shared_region(sizeof(shm_line));
    long total = warmup + n;
    pid_t pid = fork();
    if (pid < 0) fail_errno("fork");
    if (pid == 0) {
        in_child = true;
        for (long i = 1; i <= total; i++) {
            long spins = 0;
            while (atomic_load_explicit(&line->ping, memory_order_acquire) != (uint64_t)i)
                if (++spins % 1024 == 0) sched_yield(); else cpu_relax();
            atomic_store_explicit(&line->pong, (uint64_t)i, memory_order_release);
        }
        _exit(0);
    }
    current_child = pid;
    int64_t *ns = xmalloc(sizeof(int64_t) * (size_t)n);
    for (long i = 1; i <= total; i++) {
        int64_t t0 = now_ns();
        atomic_store_explicit(&line->ping, (uint64_t)i, memory_order_release);
        long spins = 0;
        while (atomic_load_explicit(&line->pong, memory_order_acquire) != (uint64_t)i)
            if (++spins % 1024 == 0) sched_yield(); else cpu_relax();
        if (i > warmup) ns[i - warmup - 1] = now_ns() - t0;
    }
    reap(pid, "shm_round_trip");
    current_child = -1;
    latency l = summarize(ns, n);
    free(ns);
    (void)munmap(line, sizeof(shm_line));
    return l;
}

enum { SHM_CALLERS = 8, SHM_SPIN_NS = 20000, SHM_CALLER_SPIN_NS = 0 };

typedef struct {
    _Alignas(64) _Atomic uint32_t request;   /* the caller's sequence number */
    _Atomic uint32_t reply;                  /* the worker's answer: the same number */
    _Atomic uint32_t caller_asleep;
} shm_slot;

typedef struct {
    _Alignas(64) _Atomic uint32_t doorbell;  /* bumped to wake a sleeping worker */
    _Atomic uint32_t asleep;
} shm_worker;

typedef struct {
    shm_slot slots[SHM_CALLERS];
    shm_worker workers[MAX_PIPELINE_WORKERS];
    _Atomic uint32_t stop;
} shm_board;

static shm_board *board;
static int shm_workers;
static long shm_tasks_per_caller;

static void shm_worker_main(int w) {
    uint32_t served[SHM_CALLERS] = {0};
    shm_worker *me = &board->workers[w];
    while (!atomic_load(&board->stop)) {
        int found = 0;
        int64_t spin_end = now_ns() + SHM_SPIN_NS;
        do {
            for (int c = w; c < SHM_CALLERS; c += shm_workers) {
                uint32_t request = atomic_load_explicit(&board->slots[c].request, memory_order_acquire);
                if (request == served[c]) continue;
                served[c] = request;
                atomic_store_explicit(&board->slots[c].reply, request, memory_order_release);
                if (atomic_load(&board->slots[c].caller_asleep)) futex_wake(&board->slots[c].reply);
                found = 1;
            }
            if (!found) cpu_relax();
        } while (!found && now_ns() < spin_end && !atomic_load(&board->stop));
        if (found) continue;
        uint32_t bell = atomic_load(&me->doorbell);
        atomic_store(&me->asleep, 1);
        int pending = 0;
        for (int c = w; c < SHM_CALLERS; c += shm_workers)
            if (atomic_load(&board->slots[c].request) != served[c]) pending = 1;
        if (!pending && !atomic_load(&board->stop)) futex_wait(&me->doorbell, bell);
        atomic_store(&me->asleep, 0);
    }
    _exit(0);
}

static void *shm_caller_main(void *arg) {
    int c = (int)(intptr_t)arg;
    shm_slot *slot = &board->slots[c];
    shm_worker *worker = &board->workers[c % shm_workers];
    for (long i = 0; i < shm_tasks_per_caller; i++) {
        uint32_t seq = atomic_load(&slot->request) + 1;
        atomic_store_explicit(&slot->request, seq, memory_order_release);
        if (atomic_load(&worker->asleep)) {
            atomic_fetch_add(&worker->doorbell, 1);
            futex_wake(&worker->doorbell);
        }
        int64_t spin_end = now_ns() + SHM_CALLER_SPIN_NS;
        while (atomic_load_explicit(&slot->reply, memory_order_acquire) != seq) {
            if (now_ns() < spin_end) { cpu_relax(); continue; }
            atomic_store(&slot->caller_asleep, 1);
            uint32_t seen = atomic_load(&slot->reply);
            if (seen != seq) futex_wait(&slot->reply, seen);
            atomic_store(&slot->caller_asleep, 0);
        }
    }
    return NULL;
}

typedef struct { int workers; long tasks; double seconds, tasks_per_second; } shm_callers;

static shm_callers bench_shm_callers(int workers, long tasks) {
    board = shared_region(sizeof(shm_board));
    shm_workers = workers;
    shm_tasks_per_caller = tasks / SHM_CALLERS;
    pid_t pids[MAX_PIPELINE_WORKERS];
    for (int w = 0; w < workers; w++) {
        pids[w] = fork();
        if (pids[w] < 0) fail_errno("fork");
        if (pids[w] == 0) { in_child = true; shm_worker_main(w); }
    }
    pthread_t threads[SHM_CALLERS];
    int64_t t0 = now_ns();
    for (int c = 0; c < SHM_CALLERS; c++)
        check_pthread("pthread_create", pthread_create(&threads[c], NULL, shm_caller_main, (void *)(intptr_t)c));
    for (int c = 0; c < SHM_CALLERS; c++) check_pthread("pthread_join", pthread_join(threads[c], NULL));
    int64_t ns = now_ns() - t0;
    atomic_store(&board->stop, 1);
    for (int w = 0; w < workers; w++) {
        atomic_fetch_add(&board->workers[w].doorbell, 1);
        futex_wake(&board->workers[w].doorbell);
        reap(pids[w], "shm_ring_callers");
    }
    (void)munmap(board, sizeof(shm_board));
    shm_callers r = {.workers = workers, .tasks = shm_tasks_per_caller * SHM_CALLERS};
    r.seconds = (double)ns / 1e9;
    r.tasks_per_second = (double)r.tasks / r.seconds;
    return r;
}

/* ---------------------------------------------------------------- 7. busy-poll round trip */

/* Reads exactly n bytes without ever sleeping in the kernel: recv(MSG_DONTWAIT), and a pause
   instruction on EAGAIN. Returns n, or 0 on end of stream before the first byte. */
static size_t busy_recv_exact(int fd, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, (char *)buf + got, n - got, MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                cpu_relax();
                continue;
            }
            if (errno == EINTR) continue;
            fail_errno("recv(MSG_DONTWAIT)");
        }
        if (r == 0) {
            if (got == 0) return 0;
            fail_msg("recv failed: end of stream in the middle of a message");
        }
        got += (size_t)r;
    }
    return got;
}

static void busy_echo_child(int fd, size_t unused) {
    (void)unused;
    unsigned char frame[FRAME_BYTES];
    while (busy_recv_exact(fd, frame, sizeof frame) == sizeof frame) write_exact(fd, frame, sizeof frame);
}

/* Up to warmup + n round trips, but no longer than budget_ns in all (at least one sample), as in
   bench_spin: with both ends busy-polling on one CPU, a round trip waits for a time slice. */
static latency bench_busy_poll(long warmup, long n, int64_t budget_ns) {
    int64_t *ns = xmalloc((size_t)n * sizeof *ns);
    int fd = spawn_child(busy_echo_child, 0);
    unsigned char out[FRAME_BYTES], in[FRAME_BYTES];
    int64_t deadline = now_ns() + budget_ns;
    long taken = 0;
    for (long i = -warmup; i < n; i++) {
        memset(out, (int)(i & 0xff), sizeof out);
        int64_t t0 = now_ns();
        write_exact(fd, out, sizeof out);
        if (busy_recv_exact(fd, in, sizeof in) != sizeof in) fail_msg("busy-poll echo child closed early");
        int64_t t1 = now_ns();
        if (memcmp(in, out, sizeof in) != 0) fail_msg("busy-poll echo child returned a different frame");
        if (i >= 0) ns[taken++] = t1 - t0;
        if (t1 > deadline) {
            if (i < 0) i = -1; /* budget spent in the warm-up: still take one sample */
            else break;
        }
    }
    finish_child(fd, "busy_poll_round_trip");
    latency l = summarize(ns, taken);
    free(ns);
    return l;
}

/* ---------------------------------------------------------------- 8. fork + _exit + waitpid */

static latency bench_fork(long warmup, long n) {
    int64_t *ns = xmalloc((size_t)n * sizeof *ns);
    if (fflush(NULL) != 0) fail_errno("fflush");
    for (long i = -warmup; i < n; i++) {
        int64_t t0 = now_ns();
        pid_t pid = fork();
        if (pid < 0) fail_errno("fork");
        if (pid == 0) _exit(0);
        current_child = pid;
        reap(pid, "fork_exit_wait");
        int64_t t1 = now_ns();
        if (i >= 0) ns[i] = t1 - t0;
    }
    latency l = summarize(ns, n);
    free(ns);
    return l;
}

/* ---------------------------------------------------------------- output */

static void print_json_string(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    putchar('"');
}

static void print_latency(const char *name, latency l, const char *extra) {
    printf("  \"%s\": {\"samples\": %ld, \"p50_us\": %.3f, \"p90_us\": %.3f, \"p99_us\": %.3f, "
           "\"mean_us\": %.3f%s},\n",
           name, l.samples, l.p50_us, l.p90_us, l.p99_us, l.mean_us, extra);
}

static void print_bulk(const char *name, bulk b) {
    printf("  \"%s\": {\"bytes\": %zu, \"repetitions\": %ld, \"median_seconds\": %.6f, "
           "\"bandwidth_MiB_s\": %.1f},\n",
           name, b.bytes, b.repetitions, b.median_seconds, b.bandwidth_MiB_s);
}

static void usage(void) {
    fprintf(stderr,
            "usage: limits [--quick] [--pipeline-workers N] [--help]\n"
            "\n"
            "Measures the kernel's own costs (socketpair round trip, batched frames, pipelined\n"
            "echo with many callers, bulk echo, condvar and spin ping-pong between threads,\n"
            "busy-poll round trip, fork+exit+wait) and prints one JSON object on stdout;\n"
            "progress goes to stderr. ForkPool's overhead benchmark reports its figures as\n"
            "ratios to these.\n"
            "\n"
            "  --quick                divide every repetition count by 10 (at least 1): a run of\n"
            "                         a few seconds\n"
            "  --pipeline-workers N   pipelined_echo's echo children and caller threads\n"
            "                         (1 to %d; default 2, the pool benchmark's default)\n"
            "  --help                 print this message\n",
            MAX_PIPELINE_WORKERS);
}

static long scaled(long count, bool quick) {
    if (!quick) return count;
    long c = count / 10;
    return c < 1 ? 1 : c;
}

static void progress(const char *what) {
    fprintf(stderr, "limits: %s...\n", what);
}

int main(int argc, char **argv) {
    bool quick = false;
    int pipeline_workers = 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--pipeline-workers") == 0) {
            char *end = NULL;
            long v = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (i + 1 >= argc || end == argv[i + 1] || *end != '\0' || v < 1 || v > MAX_PIPELINE_WORKERS) {
                fprintf(stderr, "limits: --pipeline-workers needs a number from 1 to %d\n\n",
                        MAX_PIPELINE_WORKERS);
                usage();
                return 2;
            }
            pipeline_workers = (int)v;
            i++;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage();
            return 0;
        } else {
            fprintf(stderr, "limits: unknown argument '%s'\n\n", argv[i]);
            usage();
            return 2;
        }
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    if (sigemptyset(&sa.sa_mask) != 0) fail_errno("sigemptyset");
    if (sigaction(SIGPIPE, &sa, NULL) != 0) fail_errno("sigaction(SIGPIPE)");

    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 0) fail_errno("sysconf(_SC_NPROCESSORS_ONLN)");
    struct utsname un;
    if (uname(&un) != 0) fail_errno("uname");

    progress("socketpair_round_trip");
    latency rt = bench_round_trip(scaled(1000, quick), scaled(20000, quick));

    progress("batched_frames");
    throughput bf = bench_batched(scaled(20, quick), scaled(2000000 / FRAMES_PER_BATCH, quick));

    progress("pipelined_echo");
    long pipeline_tasks = scaled(400000, quick);
    pipelined pe = bench_pipelined(pipeline_workers, pipeline_tasks / 50, pipeline_tasks);

    progress("bulk_echo_1MiB");
    bulk b1 = bench_bulk((size_t)1 << 20, scaled(1, quick), scaled(200, quick));

    progress("bulk_echo_64MiB");
    bulk b64 = bench_bulk((size_t)64 << 20, scaled(1, quick), scaled(5, quick));

    progress("condvar_ping_pong");
    latency cv = bench_condvar(scaled(1000, quick), scaled(20000, quick));

    progress("spin_ping_pong");
    long yields = 0;
    latency sp = bench_spin(scaled(1000, quick), scaled(100000, quick),
                             quick ? 1000000000LL : 10000000000LL, &yields);

    progress("busy_poll_round_trip");
    latency bp = bench_busy_poll(scaled(1000, quick), scaled(20000, quick),
                                 quick ? 1000000000LL : 10000000000LL);

    progress("shm_round_trip");
    latency sr = bench_shm_round_trip(scaled(1000, quick), scaled(100000, quick));

    progress("shm_ring_callers");
    shm_callers sc = bench_shm_callers(pipeline_workers, scaled(200000, quick));

    progress("fork_exit_wait");
    latency fk = bench_fork(scaled(20, quick), scaled(500, quick));

    char spin_extra[64];
    snprintf(spin_extra, sizeof spin_extra, ", \"sched_yields\": %ld", yields);

    printf("{\n");
    printf("  \"quick\": %s,\n", quick ? "true" : "false");
    print_latency("socketpair_round_trip", rt, "");
    printf("  \"batched_frames\": {\"frames\": %ld, \"seconds\": %.6f, \"frames_per_second\": %.0f},\n",
           bf.frames, bf.seconds, bf.frames_per_second);
    printf("  \"pipelined_echo\": {\"workers\": %d, \"window\": %d, \"tasks\": %ld, \"seconds\": %.6f, "
           "\"tasks_per_second\": %.0f},\n",
           pe.workers, PIPELINE_WINDOW, pe.tasks, pe.seconds, pe.tasks_per_second);
    print_bulk("bulk_echo_1MiB", b1);
    print_bulk("bulk_echo_64MiB", b64);
    print_latency("condvar_ping_pong", cv, "");
    print_latency("spin_ping_pong", sp, spin_extra);
    print_latency("busy_poll_round_trip", bp, "");
    print_latency("shm_round_trip", sr, "");
    printf("  \"shm_ring_callers\": {\"workers\": %d, \"callers\": %d, \"tasks\": %ld, \"seconds\": %.6f, "
           "\"tasks_per_second\": %.0f},\n", sc.workers, SHM_CALLERS, sc.tasks, sc.seconds, sc.tasks_per_second);
    print_latency("fork_exit_wait", fk, "");
    printf("  \"machine\": {\"cpus\": %ld, \"kernel\": ", cpus);
    print_json_string(un.release);
    printf("}\n}\n");
    if (fflush(stdout) != 0 || ferror(stdout)) fail_errno("writing to stdout");
    fprintf(stderr, "limits: done\n");
    return 0;
}
