/*  bench_taskflow: the task service end to end (mesh/tasks.h) on 3 nodes in
    one process, on loopback, against baselines measured in the same run.

    bench_taskflow [--pin] [--runs R] [--tasks N] [--calls N] [--raw N]
                   [--window W] [--late-runs R] [--late-tasks M]
                   [--retention-ms MS] [--no-throughput] [--no-lateness]
                   [--journal MODE] [--journals MODE,...] [--journal-runs R]
                   [--solo S]

    MODE: memory (no journal), none, meta or full (mesh_taskd_config_t
    data_dir and journal_sync: MESH_TASK_SYNC_NONE, _META, _FULL). A node
    that journals gets a fresh directory of its own under $TMPDIR (or
    /tmp), bench_taskflow-MODE-nI.XXXXXX, removed once its service is
    destroyed (a bench killed midway leaves them behind).

    The cluster. Three peers in one realm, each on a thread of its own with
    its own libev loop (the peer attached to it), each running a task
    service (mesh_taskd_t, startup_grace_ms -1, created on its loop thread)
    and offering TF_PATH, a no-op handler that replies an empty payload at
    once. Node 0 is also the client: the measuring code runs in callbacks on
    its loop thread (no thread hop per task or call); the main thread only
    starts each phase with mesh_peer_post and waits for its end. Before the
    first phase every node sees the 3-member ring (same digest), 3 alive
    providers of TF_PATH and 3 task services, and its service reports ready
    with a quorum.

    1. Throughput. Each run measures one block of each series, in an order
       that rotates from run to run:
       tasks         N tasks (countdown 0, default replicas: 2 holders)
                     submitted from node 0, at most W in flight (submitted,
                     handler not yet run). The clock stops once the last
                     handler has run and no task is left scheduled, running
                     or standby on any holder (polled every TF_POLL_MS:
                     every holder has taken in every done). A task costs
                     several messages: submit (a call to the owner), put (a
                     call to the replica), started (a cast to every
                     service), the run (a call to a provider chosen by
                     least_loaded, possibly the owner itself), done (a cast
                     to every service).
       calls         N mesh_peer_call from node 0 to TF_PATH, window W, with
                     least_loaded, the selector of the task runs: it often
                     picks node 0 itself (a call that never leaves the
                     process; see "ran on node" in the summary).
       calls-remote  the same with a selector that skips node 0 (round robin
                     over nodes 1 and 2): every call crosses loopback TCP.
       raw           N raw libzmq DEALER/ROUTER round trips, window W
                     (tests/bench/raw_zmq.h), on the main thread while the
                     nodes idle: the floor.
       Printed: the rates, the ratios tasks/calls, tasks/calls-remote,
       tasks/raw, and the tasks held before each run; target >=
       TF_TARGET_RATE tasks/s. A task is several messages and several loop
       turns on 2 or 3 nodes: a ratio far below 1 is expected.

    2. Scheduling accuracy, each run: M tasks with countdowns drawn
       uniformly in [TF_LATE_MIN_MS, TF_LATE_MAX_MS], submitted from node 0
       (window W on the submit replies). The payload carries the intended
       due time: the monotonic clock at mesh_task_submit plus the countdown
       (one process: one clock). The handler records lateness = its
       invocation time - that due time; it includes the submit's way to the
       owner (the countdown starts there), whose round trip is printed too.
       Baseline, in the same run on node 0's loop (the client's, busy with
       the same submits and with its own task service): a plain ev_timer
       per task, started right after its submit for the same due time.
       Printed: p50/p99/max lateness of both (negative: early; the service
       counts in whole milliseconds); target p99 <= TF_TARGET_P99_MS ms.

    --journal MODE runs sections 1 and 2 on nodes that journal; --journals
    runs section 3 in their place.

    3. Journals (--journals, for example memory,none,meta,full; the first
       mode is the baseline). One cluster per mode, fresh, all alive at
       the same time (a realm and a beacon port each: they do not see one
       another), each warmed up with TF_WARMUP_TASKS tasks.
       Throughput: each of R runs (--journal-runs) measures one tasks block
       (N tasks, window W, as in section 1) on each cluster, in an order
       that rotates from run to run, so that the ratios to the baseline are
       paired. Per block: tasks/s, the submit round trip (mesh_task_submit
       to its reply: the owner answers once the replica has answered its
       put, and a service's replies of a loop turn go after the turn's
       commit) p50/p99 under the window, each node's journal commits
       (mesh_taskd_stats_t.journal_commits) and the time of its loop thread
       on a CPU and waiting for one (/proc/self/task/TID/schedstat; the rest
       it was asleep: in a flush, or with nothing to do), summed into the
       time per commit. Then, on each cluster, S tasks (--solo) submitted
       one at a time, the next once the last has been answered and has run:
       the submit round trip where the commits on its way (the owner's, then
       the replica's) serve it alone.
       Lateness (--late-runs, tools/bench gives 1): section 2's block on
       each cluster in turn, for the submit round trip of countdown tasks
       (the figure section 2 prints) and their lateness.
       Baseline of a flush, measured first in the same run on the file
       system of the journals: a 4 KiB block written at the end of a file
       (or over its first block), then fdatasync, p50/p99. A FULL commit
       flushes twice (LMDB: the data pages, then the meta page), META once,
       NONE never; a commit flushes every page it wrote (the B-tree pages
       its puts touched: task ids are random), so it takes longer than the
       baseline. The time in the flushes themselves, per thread (calls,
       mean): perf trace -s -e fdatasync bench_taskflow --journals ...

    Every run prints its figures, then the medians of runs, their spread
    and the ratios of the medians. The 2 vCPUs are shared by 3 loop
    threads, 3 libzmq I/O threads and whatever else the machine runs: the
    figures are noisy, read the spread.

    Retention. By default the services keep final tasks for their default
    retention (1 h): every task of the process stays held, so the number of
    tasks held grows run after run (printed), as it would on a node in
    service. --retention-ms sets a shorter one.

    --pin pins every thread to CPU 0. */
#include <mesh/mesh.h>

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "raw_zmq.h"

#define TF_NODES               3
#define TF_PATH                "/bench/noop"
#define TF_SUBMIT_PATH         "/sys/task/submit" /* a node runs a task service */
#define TF_REMOTE_SELECTOR     "tf_remote"
#define TF_DEFAULT_RUNS        5
#define TF_DEFAULT_TASKS       10000
#define TF_DEFAULT_CALLS       100000
#define TF_DEFAULT_RAW         200000
#define TF_DEFAULT_WINDOW      200
#define TF_DEFAULT_LATE_RUNS   3
#define TF_DEFAULT_LATE_TASKS  2000
#define TF_RUNS_MAX            50
#define TF_LATE_TASKS_MAX      1000000
#define TF_SEED                0x9E3779B97F4A7C15ull /* countdowns: a fixed sequence */
#define TF_WARMUP_TASKS        2000
#define TF_WARMUP_CALLS        5000
#define TF_WARMUP_RAW          10000
#define TF_LATE_MIN_MS         1000
#define TF_LATE_MAX_MS         3000
#define TF_SIZE                16     /* tf_payload_t: every series sends this many bytes */
#define TF_TARGET_RATE         5000.0 /* tasks/s, issue 5 section 5 */
#define TF_TARGET_P99_MS       50.0
#define TF_BEACON_INTERVAL_MS  100
#define TF_CALL_TIMEOUT_MS     10000
#define TF_DISCOVERY_TIMEOUT_S 15.0
#define TF_PHASE_TIMEOUT_S     120.0
#define TF_SETTLE_TIMEOUT_S    20.0
#define TF_PROBE_TIMEOUT_S     10.0
#define TF_POLL_MS             1
#define TF_DISCOVERY_POLL_MS   20
#define TF_SETTLE_EXTRA_MS     300 /* after discovery: services announced, digests in STATUS */
/*  Liveness far beyond a run: a node whose loop is busy must not drop out
    of the others' dispatch or ring mid-run. */
#define TF_EVASIVE_MS      600000
#define TF_EXPIRED_MS      1200000
#define TF_PING_TIMEOUT_MS 600000
/*  Journals (section 3). */
#define TF_DEFAULT_JOURNAL_RUNS 3
#define TF_DEFAULT_SOLO         200
#define TF_SOLO_MAX             100000
#define TF_PATH_MAX             512
#define TF_DEFAULT_TMPDIR       "/tmp"
#define TF_FLUSH_BLOCK          4096 /* bytes written before each fdatasync of the baseline */
#define TF_FLUSH_SAMPLES        200
#define TF_FULL_FLUSHES         2 /* per MESH_TASK_SYNC_FULL commit (LMDB: data, then meta) */
#define TF_NFTW_FDS             16
#define TF_PORT_TRIES           16         /* for a beacon port no other cluster has */
#define TF_TMPFS_MAGIC          0x01021994 /* statfs f_type: flushes cost nothing there */

/*  What every request to TF_PATH carries (TF_SIZE bytes). */
typedef enum { TF_KIND_NONE, TF_KIND_TASK, TF_KIND_CALL, TF_KIND_LATE, TF_KINDS } tf_kind_t;
typedef struct {
    uint32_t kind;
    uint32_t index; /* TF_KIND_LATE: the task's slot */
    int64_t due_ns; /* TF_KIND_LATE: intended due, bench_now_ns() clock */
} tf_payload_t;

typedef enum { TF_IDLE, TF_TASKS, TF_CALLS, TF_REMOTE, TF_LATE, TF_SOLO } tf_mode_t;

/*  What the task services of a cluster do with their tasks (--journal). */
typedef enum { TF_J_MEMORY, TF_J_NONE, TF_J_META, TF_J_FULL, TF_JOURNALS } tf_journal_t;
static const char *const s_journals[TF_JOURNALS] = {"memory", "none", "meta", "full"};
static const mesh_task_sync_t s_syncs[TF_JOURNALS] = {
    [TF_J_NONE] = MESH_TASK_SYNC_NONE,
    [TF_J_META] = MESH_TASK_SYNC_META,
    [TF_J_FULL] = MESH_TASK_SYNC_FULL, /* TF_J_MEMORY: no data_dir */
};

/*  The states mesh_taskd_count knows (mesh/tasks.h, mesh_task_status_t). */
enum {
    TF_SCHEDULED,
    TF_RUNNING,
    TF_STANDBY,
    TF_SUCCEEDED,
    TF_FAILED,
    TF_EXPIRED,
    TF_CANCELLED,
    TF_STATES
};
static const char *const s_states[TF_STATES] = {"scheduled", "running", "standby",  "succeeded",
                                                "failed",    "expired", "cancelled"};

typedef struct tf_bench tf_bench_t;

typedef struct {
    int index;
    tf_bench_t *bench;
    pthread_t thread;
    bool thread_started;
    pid_t tid; /* the thread's, for /proc/self/task/TID/schedstat */
    struct ev_loop *loop;
    mesh_peer_t *peer;
    mesh_taskd_t *taskd;
    ev_async kick; /* node 0: a handler ran somewhere; the client looks at the counters */
    atomic_long served[TF_KINDS]; /* TF_PATH requests this node's handler ran, by kind */
    int start_rc;
    sem_t started;
    size_t rr; /* node 0: s_select_remote's cursor */
    /* probe results (written on the node's thread, read after the probe's sem) */
    size_t ring_members;
    uint64_t digest;
    int providers;     /* alive providers of TF_PATH, self included */
    int task_services; /* alive providers of TF_SUBMIT_PATH, self included */
    bool ready, quorum;
    size_t counts[TF_STATES]; /* mesh_taskd_count by s_states[] */
    size_t held;
    uint64_t journal_commits, journal_errors; /* mesh_taskd_stats */
    char data_dir[TF_PATH_MAX];               /* the node's journal; "": memory only */
} tf_node_t;

/*  A submit of TF_TASKS or TF_SOLO, for its round trip. */
typedef struct {
    tf_bench_t *bench;
    uint32_t index;
    int64_t t0; /* when mesh_task_submit was called */
} tf_sub_t;

/*  One ev_timer of the lateness baseline. */
typedef struct {
    ev_timer w;
    int64_t due_ns;
    int64_t submit_ns; /* when mesh_task_submit was called */
    uint32_t index;
    tf_bench_t *bench;
} tf_timer_t;

struct tf_bench {
    tf_node_t nodes[TF_NODES];
    uint16_t beacon_port;
    char realm[64];
    long window;
    long retention_ms;
    tf_journal_t journal;
    const char *tmpdir; /* where the nodes' journal directories go */
    uint32_t sub_cap;   /* slots in subs, sub_ns (set before any thread) */
    tf_sub_t *subs;
    int64_t *sub_ns; /* TF_TASKS, TF_SOLO: the submit's round trip, by slot */
    /* handlers, any node's thread */
    atomic_long task_runs;
    atomic_long late_runs;
    atomic_long stray_runs; /* a handler run the phase did not expect */
    uint32_t late_cap;      /* slots in late_ns, timer_ns, timers (set before any thread) */
    int64_t *late_ns;       /* the service's lateness, by slot */
    int64_t *timer_ns;      /* the ev_timer's, by slot */
    int64_t *submit_ns;     /* TF_LATE: the submit's round trip (to the owner's reply), by slot */
    /* the next phase: set by the main thread before it posts s_phase_start */
    tf_mode_t next_mode;
    long next_target;
    /* the client: node 0's loop thread only (the main thread reads t_start, t_end
       and error once the phase has ended). A phase ends when every call it made
       has had its callback, so none is left to land in the next one. */
    tf_mode_t mode;
    long target;
    long sent;
    long acked;
    long replies;
    long timers_fired;
    int error;
    uint64_t t_start, t_end;
    uint64_t xs; /* xorshift state: countdowns */
    tf_timer_t *timers;
    sem_t phase_done;
};

/* ------------------------------------------------------------------------ */
/* small things */

static void s_add_ms(struct timespec *ts, double seconds)
{
    clock_gettime(CLOCK_REALTIME, ts);
    long sec = (long)seconds;
    long nsec = (long)((seconds - (double)sec) * 1e9);
    ts->tv_sec += sec;
    ts->tv_nsec += nsec;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/*  sem_wait with a timeout in seconds: 0, or -1 when it timed out. */
static int s_sem_wait(sem_t *sem, double seconds)
{
    struct timespec ts;
    s_add_ms(&ts, seconds);
    for (;;) {
        if (sem_timedwait(sem, &ts) == 0) {
            return 0;
        }
        if (errno != EINTR) {
            return -1;
        }
    }
}

static void s_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static uint64_t s_xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static int s_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/*  Nearest-rank percentile of sorted samples (as bench_util's). */
static int64_t s_rank(const int64_t *sorted, size_t n, double pct)
{
    size_t rank = (size_t)((pct / 100.0) * (double)n + 0.999999);
    rank = rank < 1 ? 1 : rank > n ? n : rank;
    return sorted[rank - 1];
}

typedef struct {
    double p50, p99, max, min; /* ms */
} tf_late_t;

static void s_late_summarize(int64_t *ns, size_t n, tf_late_t *out)
{
    qsort(ns, n, sizeof *ns, s_cmp_i64);
    out->p50 = (double)s_rank(ns, n, 50) / 1e6;
    out->p99 = (double)s_rank(ns, n, 99) / 1e6;
    out->min = (double)ns[0] / 1e6;
    out->max = (double)ns[n - 1] / 1e6;
}

/* ------------------------------------------------------------------------ */
/* the no-op service (every node) */

static void s_on_noop(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    (void)peer;
    tf_node_t *self = arg;
    tf_bench_t *b = self->bench;
    int64_t now = (int64_t)bench_now_ns();
    tf_payload_t p = {0};
    if (mesh_request_size(req) == sizeof p) {
        memcpy(&p, mesh_request_data(req), sizeof p);
    }
    mesh_request_reply(req, NULL, 0);
    if (p.kind < TF_KINDS) {
        atomic_fetch_add(&self->served[p.kind], 1);
    }
    tf_node_t *client = &b->nodes[0];
    switch (p.kind) {
    case TF_KIND_CALL:
        break;
    case TF_KIND_TASK:
        atomic_fetch_add(&b->task_runs, 1);
        ev_async_send(client->loop, &client->kick);
        break;
    case TF_KIND_LATE:
        if (p.index < b->late_cap && b->late_ns[p.index] == INT64_MIN) {
            b->late_ns[p.index] = now - p.due_ns;
            atomic_fetch_add(&b->late_runs, 1);
        } else {
            atomic_fetch_add(&b->stray_runs, 1); /* a second run of one task, or late */
        }
        ev_async_send(client->loop, &client->kick);
        break;
    default:
        atomic_fetch_add(&b->stray_runs, 1);
        break;
    }
}

/* ------------------------------------------------------------------------ */
/* the client, on node 0's loop thread */

static void s_phase_end(tf_bench_t *b, int error)
{
    if (b->mode == TF_IDLE) {
        return;
    }
    b->t_end = bench_now_ns();
    if (error && !b->error) {
        b->error = error;
    }
    for (long i = 0; error && b->mode == TF_LATE && i < b->target; i++) {
        ev_timer_stop(b->nodes[0].loop, &b->timers[i].w);
    }
    b->mode = TF_IDLE;
    sem_post(&b->phase_done);
}

static void s_fail(tf_bench_t *b, int rc, const char *what)
{
    fprintf(stderr, "bench_taskflow: %s: %s (%d)\n", what, mesh_strerror(rc), rc);
    s_phase_end(b, rc ? rc : -1);
}

static void s_on_submitted(mesh_peer_t *peer, int status, const char *id, const char *error,
                           void *arg);
static void s_on_late_submitted(mesh_peer_t *peer, int status, const char *id, const char *error,
                                void *arg);

/*  TF_TASKS, TF_SOLO: arg is the slot's tf_sub_t; TF_LATE: its tf_timer_t. */
static int s_submit(tf_bench_t *b, const tf_payload_t *p, int64_t countdown_ms, void *arg)
{
    mesh_task_opts_t o = {.countdown_ms = countdown_ms};
    int rc = mesh_task_submit(b->nodes[0].peer, TF_PATH, p, sizeof *p, &o,
                              b->mode == TF_LATE ? s_on_late_submitted : s_on_submitted, arg);
    if (rc != 0) {
        s_fail(b, rc, "mesh_task_submit");
        return rc;
    }
    b->sent++;
    return 0;
}

/*  TF_TASKS, TF_SOLO: submits the next task (countdown 0), its round trip
    timed in its slot. */
static int s_submit_task(tf_bench_t *b)
{
    if (b->sent >= (long)b->sub_cap) {
        s_fail(b, MESH_ERR_INVAL, "more submits than slots");
        return -1;
    }
    tf_payload_t p = {.kind = TF_KIND_TASK};
    tf_sub_t *sub = &b->subs[b->sent];
    sub->bench = b;
    sub->index = (uint32_t)b->sent;
    sub->t0 = (int64_t)bench_now_ns();
    return s_submit(b, &p, 0, sub);
}

/*  TF_TASKS: keeps the window full (submitted, handler not yet run). */
static void s_tasks_fill(tf_bench_t *b)
{
    while (b->mode == TF_TASKS && b->sent < b->target &&
           b->sent - atomic_load(&b->task_runs) < b->window) {
        if (s_submit_task(b) != 0) {
            return;
        }
    }
    if (b->mode == TF_TASKS && b->acked == b->target && atomic_load(&b->task_runs) >= b->target) {
        s_phase_end(b, 0);
    }
}

/*  TF_SOLO: one task at a time, the next once the last has been answered
    and its handler has run. */
static void s_solo_fill(tf_bench_t *b)
{
    if (b->mode != TF_SOLO) {
        return;
    }
    long runs = atomic_load(&b->task_runs);
    if (b->acked == b->target && runs >= b->target) {
        s_phase_end(b, 0);
    } else if (b->sent < b->target && b->acked == b->sent && runs >= b->sent) {
        s_submit_task(b);
    }
}

static void s_late_check(tf_bench_t *b)
{
    if (b->mode == TF_LATE && b->acked == b->target && b->timers_fired == b->target &&
        atomic_load(&b->late_runs) == b->target) {
        s_phase_end(b, 0);
    }
}

static void s_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    tf_timer_t *t = (tf_timer_t *)w;
    tf_bench_t *b = t->bench;
    b->timer_ns[t->index] = (int64_t)bench_now_ns() - t->due_ns;
    b->timers_fired++;
    s_late_check(b);
}

/*  TF_LATE: keeps W submits waiting for their reply; each submit starts
    its ev_timer for the same due time. */
static void s_late_fill(tf_bench_t *b)
{
    struct ev_loop *loop = b->nodes[0].loop;
    while (b->mode == TF_LATE && b->sent < b->target && b->sent - b->acked < b->window) {
        int64_t countdown =
            TF_LATE_MIN_MS + (int64_t)(s_xorshift(&b->xs) % (TF_LATE_MAX_MS - TF_LATE_MIN_MS + 1));
        uint32_t i = (uint32_t)b->sent;
        int64_t now = (int64_t)bench_now_ns();
        int64_t due = now + countdown * 1000000;
        tf_payload_t p = {.kind = TF_KIND_LATE, .index = i, .due_ns = due};
        tf_timer_t *t = &b->timers[i];
        t->due_ns = due;
        t->submit_ns = now;
        t->index = i;
        t->bench = b;
        if (s_submit(b, &p, countdown, t) != 0) {
            return;
        }
        ev_now_update(loop); /* the timer counts from now, not from the loop's cached time */
        double after = (double)(due - (int64_t)bench_now_ns()) / 1e9;
        ev_timer_init(&t->w, s_on_timer, after > 0 ? after : 0, 0);
        ev_timer_start(loop, &t->w);
    }
}

static void s_submitted(tf_bench_t *b, int status, const char *error);

/*  TF_TASKS, TF_SOLO: records the submit's round trip. */
static void s_on_submitted(mesh_peer_t *peer, int status, const char *id, const char *error,
                           void *arg)
{
    (void)peer;
    (void)id;
    tf_sub_t *sub = arg;
    tf_bench_t *b = sub->bench;
    if (b->mode == TF_TASKS || b->mode == TF_SOLO) {
        b->sub_ns[sub->index] = (int64_t)bench_now_ns() - sub->t0;
    }
    s_submitted(b, status, error);
}

/*  TF_LATE: records the submit's round trip. */
static void s_on_late_submitted(mesh_peer_t *peer, int status, const char *id, const char *error,
                                void *arg)
{
    (void)peer;
    (void)id;
    tf_timer_t *t = arg;
    tf_bench_t *b = t->bench;
    if (b->mode == TF_LATE) {
        b->submit_ns[t->index] = (int64_t)bench_now_ns() - t->submit_ns;
    }
    s_submitted(b, status, error);
}

static void s_submitted(tf_bench_t *b, int status, const char *error)
{
    if (b->mode == TF_IDLE) {
        return;
    }
    if (status != 0) {
        fprintf(stderr, "bench_taskflow: submit failed: %s%s%s\n", mesh_err_name(status),
                error ? ": " : "", error ? error : "");
        s_phase_end(b, status);
        return;
    }
    b->acked++;
    if (b->mode == TF_TASKS) {
        s_tasks_fill(b);
    } else if (b->mode == TF_SOLO) {
        s_solo_fill(b);
    } else if (b->mode == TF_LATE) {
        s_late_fill(b);
        s_late_check(b);
    }
}

static void s_on_kick(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    tf_bench_t *b = ((tf_node_t *)w->data)->bench;
    if (b->mode == TF_TASKS) {
        s_tasks_fill(b);
    } else if (b->mode == TF_SOLO) {
        s_solo_fill(b);
    } else if (b->mode == TF_LATE) {
        s_late_check(b);
    }
}

static void s_on_reply(mesh_peer_t *peer, const mesh_reply_t *reply, void *arg);

static int s_call(tf_bench_t *b)
{
    tf_payload_t p = {.kind = TF_KIND_CALL};
    mesh_call_opts_t remote = {.selector = TF_REMOTE_SELECTOR};
    int rc = mesh_peer_call(b->nodes[0].peer, TF_PATH, &p, sizeof p,
                            b->mode == TF_REMOTE ? &remote : NULL, s_on_reply, b);
    if (rc != 0) {
        s_fail(b, rc, "mesh_peer_call");
        return rc;
    }
    b->sent++;
    return 0;
}

static void s_on_reply(mesh_peer_t *peer, const mesh_reply_t *reply, void *arg)
{
    (void)peer;
    tf_bench_t *b = arg;
    if (b->mode != TF_CALLS && b->mode != TF_REMOTE) {
        return;
    }
    if (reply->status != 0) {
        s_fail(b, reply->status, "call completed with");
        return;
    }
    if (++b->replies == b->target) {
        s_phase_end(b, 0);
        return;
    }
    if (b->sent < b->target) {
        s_call(b);
    }
}

/*  Posted to node 0: starts the phase set up in b (mode, target). */
static void s_phase_start(mesh_peer_t *peer, void *arg)
{
    (void)peer;
    tf_bench_t *b = arg;
    b->mode = b->next_mode;
    b->target = b->next_target;
    b->sent = b->acked = b->replies = b->timers_fired = 0;
    b->error = 0;
    b->t_start = bench_now_ns();
    switch (b->mode) {
    case TF_TASKS:
        s_tasks_fill(b);
        break;
    case TF_SOLO:
        s_solo_fill(b);
        break;
    case TF_CALLS:
    case TF_REMOTE:
        for (long i = 0; i < b->window && i < b->target && b->mode != TF_IDLE; i++) {
            s_call(b);
        }
        break;
    case TF_LATE:
        s_late_fill(b);
        break;
    case TF_IDLE:
        break;
    }
}

/*  Posted to node 0 after a phase timed out: ignore what still comes. */
static void s_phase_abort(mesh_peer_t *peer, void *arg)
{
    (void)peer;
    tf_bench_t *b = arg;
    if (b->mode != TF_IDLE) {
        fprintf(stderr,
                "bench_taskflow: phase %d timed out: sent %ld, acked %ld, replies %ld, task "
                "runs %ld, late runs %ld, timers %ld of %ld\n",
                (int)b->mode, b->sent, b->acked, b->replies, atomic_load(&b->task_runs),
                atomic_load(&b->late_runs), b->timers_fired, b->target);
        b->mode = TF_IDLE;
    }
    for (long i = 0; b->timers && i < b->target; i++) {
        ev_timer_stop(b->nodes[0].loop, &b->timers[i].w);
    }
    sem_post(&b->phase_done);
}

/*  Runs mode with target on node 0 and waits for its end: 0 or -1. */
static int s_phase(tf_bench_t *b, tf_mode_t mode, long target, double *seconds)
{
    b->next_mode = mode; /* node 0 takes them in s_phase_start, after the post */
    b->next_target = target;
    if (mesh_peer_post(b->nodes[0].peer, s_phase_start, b) != 0) {
        return -1;
    }
    if (s_sem_wait(&b->phase_done, TF_PHASE_TIMEOUT_S) != 0) {
        mesh_peer_post(b->nodes[0].peer, s_phase_abort, b);
        s_sem_wait(&b->phase_done, TF_PROBE_TIMEOUT_S);
        return -1;
    }
    if (b->error) {
        return -1;
    }
    *seconds = (double)(b->t_end - b->t_start) / 1e9;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* nodes */

typedef struct {
    tf_node_t *node;
    void (*fn)(tf_node_t *);
    sem_t done;
} tf_probe_t;

static void s_probe_cmd(mesh_peer_t *peer, void *arg)
{
    (void)peer;
    tf_probe_t *p = arg;
    p->fn(p->node);
    sem_post(&p->done);
}

/*  Runs fn(node) on the node's loop thread and waits for it: 0 or -1. */
static int s_on_node(tf_node_t *node, void (*fn)(tf_node_t *))
{
    tf_probe_t p = {node, fn, {{0}}};
    sem_init(&p.done, 0, 0);
    int rc = mesh_peer_post(node->peer, s_probe_cmd, &p);
    if (rc == 0 && s_sem_wait(&p.done, TF_PROBE_TIMEOUT_S) != 0) {
        fprintf(stderr, "bench_taskflow: node %d does not answer\n", node->index);
        exit(1); /* p is on this stack and still posted: no way back */
    }
    sem_destroy(&p.done);
    return rc == 0 ? 0 : -1;
}

typedef struct {
    int providers, services;
} tf_seen_t;

static void s_route_cb(const mesh_route_info_t *r, void *arg)
{
    tf_seen_t *s = arg;
    if (r->alive && r->path && strcmp(r->path, TF_PATH) == 0) {
        s->providers++;
    }
    if (r->alive && r->path && strcmp(r->path, TF_SUBMIT_PATH) == 0) {
        s->services++;
    }
}

static void s_probe_discovery(tf_node_t *n)
{
    n->ring_members = mesh_peer_ring_members(n->peer, NULL, NULL);
    n->digest = mesh_peer_ring_digest(n->peer);
    tf_seen_t seen = {0, 0};
    mesh_peer_routes(n->peer, s_route_cb, &seen);
    n->providers = seen.providers;
    n->task_services = seen.services;
    mesh_taskd_stats_t st;
    mesh_taskd_stats(n->taskd, &st);
    n->ready = st.ready;
    n->quorum = st.quorum;
}

static void s_probe_counts(tf_node_t *n)
{
    for (int s = 0; s < TF_STATES; s++) {
        n->counts[s] = mesh_taskd_count(n->taskd, s_states[s]);
    }
    n->held = mesh_taskd_count(n->taskd, NULL);
    mesh_taskd_stats_t st;
    mesh_taskd_stats(n->taskd, &st);
    n->journal_commits = st.journal_commits;
    n->journal_errors = st.journal_errors;
}

static void s_node_stop(tf_node_t *n)
{
    mesh_taskd_destroy(&n->taskd);
}

static void s_node_break(tf_node_t *n)
{
    ev_break(n->loop, EVBREAK_ALL);
}

/*  The remote-calls baseline: round robin over the candidates other than
    node 0 itself, so that every call crosses the network. */
static int s_select_remote(const mesh_candidate_t *cands, size_t n, const char *key, void *arg)
{
    (void)key;
    tf_node_t *self = arg;
    const char *me = mesh_peer_id(self->peer);
    for (size_t i = 0; i < n; i++) {
        size_t k = (self->rr + i) % n;
        if (strcmp(cands[k].id, me) != 0) {
            self->rr = k + 1;
            return (int)k;
        }
    }
    return -1;
}

static void *s_node_main(void *arg)
{
    tf_node_t *n = arg;
    tf_bench_t *b = n->bench;
    n->tid = (pid_t)syscall(SYS_gettid);
    char name[16];
    snprintf(name, sizeof name, "tf%d", n->index);
    mesh_config_t c;
    mesh_config_init(&c);
    c.name = name;
    c.realm = b->realm;
    c.iface = "lo";
    c.beacon_port = b->beacon_port;
    c.beacon_interval_ms = TF_BEACON_INTERVAL_MS;
    c.evasive_ms = TF_EVASIVE_MS;
    c.expired_ms = TF_EXPIRED_MS;
    c.ping_timeout_ms = TF_PING_TIMEOUT_MS;
    c.call_timeout_ms = TF_CALL_TIMEOUT_MS;
    n->loop = ev_loop_new(EVFLAG_AUTO);
    n->peer = n->loop ? mesh_peer_new(&c) : NULL;
    int rc = n->peer ? 0 : MESH_ERR_NOMEM;
    if (rc == 0) {
        rc = mesh_peer_expose(n->peer, TF_PATH, s_on_noop, n, NULL);
    }
    if (rc == 0 && n->index == 0) {
        rc = mesh_peer_add_selector(n->peer, TF_REMOTE_SELECTOR, s_select_remote, n);
    }
    if (rc == 0) {
        rc = mesh_peer_attach(n->peer, n->loop);
    }
    if (rc == 0) {
        mesh_taskd_config_t tc;
        mesh_taskd_config_init(&tc);
        tc.loop = n->loop;
        tc.startup_grace_ms = -1; /* start at once: discovery is awaited below */
        tc.retention_ms = b->retention_ms;
        if (n->data_dir[0]) {
            tc.data_dir = n->data_dir;
            tc.journal_sync = s_syncs[b->journal];
        }
        n->taskd = mesh_taskd_new(n->peer, &tc);
        rc = n->taskd ? 0 : MESH_ERR_NOMEM;
    }
    if (rc == 0) {
        ev_async_init(&n->kick, s_on_kick);
        n->kick.data = n;
        ev_async_start(n->loop, &n->kick);
    }
    n->start_rc = rc;
    sem_post(&n->started);
    if (rc == 0) {
        ev_run(n->loop, 0);
        ev_async_stop(n->loop, &n->kick);
    }
    mesh_taskd_destroy(&n->taskd);
    mesh_peer_destroy(&n->peer);
    if (n->loop) {
        ev_loop_destroy(n->loop);
        n->loop = NULL;
    }
    return NULL;
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/*  The node's journal directory, fresh (b->journal other than memory). */
static int s_data_dir_make(tf_bench_t *b, tf_node_t *n)
{
    int len = snprintf(n->data_dir, sizeof n->data_dir, "%s/bench_taskflow-%s-n%d.XXXXXX",
                       b->tmpdir, s_journals[b->journal], n->index);
    if (len < 0 || (size_t)len >= sizeof n->data_dir || !mkdtemp(n->data_dir)) {
        fprintf(stderr, "bench_taskflow: cannot make a journal directory under %s: %s\n", b->tmpdir,
                strerror(errno));
        n->data_dir[0] = '\0';
        return -1;
    }
    return 0;
}

/*  Removes the node's journal directory and what LMDB left in it. */
static void s_data_dir_remove(tf_node_t *n)
{
    if (n->data_dir[0]) {
        if (nftw(n->data_dir, s_rm, TF_NFTW_FDS, FTW_DEPTH | FTW_PHYS) != 0) {
            fprintf(stderr, "bench_taskflow: cannot remove %s: %s\n", n->data_dir, strerror(errno));
        }
        n->data_dir[0] = '\0';
    }
}

static int s_nodes_start(tf_bench_t *b)
{
    for (int i = 0; i < TF_NODES; i++) {
        tf_node_t *n = &b->nodes[i];
        n->index = i;
        n->bench = b;
        if (b->journal != TF_J_MEMORY && s_data_dir_make(b, n) != 0) {
            return -1;
        }
        sem_init(&n->started, 0, 0);
        if (pthread_create(&n->thread, NULL, s_node_main, n) != 0) {
            return -1;
        }
        n->thread_started = true;
        sem_wait(&n->started);
        if (n->start_rc != 0) {
            fprintf(stderr, "bench_taskflow: node %d: %s\n", i, mesh_strerror(n->start_rc));
            return -1;
        }
    }
    return 0;
}

/*  Task services first, every one (their hand-offs find the others still
    running), then the loops; each thread destroys its peer and loop. */
static void s_nodes_stop(tf_bench_t *b)
{
    for (int i = 0; i < TF_NODES; i++) {
        if (b->nodes[i].thread_started && b->nodes[i].start_rc == 0) {
            s_on_node(&b->nodes[i], s_node_stop);
        }
    }
    for (int i = 0; i < TF_NODES; i++) {
        tf_node_t *n = &b->nodes[i];
        if (n->thread_started) {
            if (n->start_rc == 0) {
                s_on_node(n, s_node_break);
            }
            pthread_join(n->thread, NULL);
            n->thread_started = false;
        }
        sem_destroy(&n->started);
        s_data_dir_remove(n); /* the thread has closed the journal */
    }
}

/*  Waits until every node sees the 3-member ring with the same digest,
    3 alive providers of TF_PATH and 3 task services, and its service is
    ready with a quorum. 0 or -1. */
static int s_discovery(tf_bench_t *b, double *ms)
{
    uint64_t t0 = bench_now_ns();
    for (;;) {
        bool ok = true;
        for (int i = 0; i < TF_NODES; i++) {
            tf_node_t *n = &b->nodes[i];
            s_on_node(n, s_probe_discovery);
            ok = ok && n->ring_members == TF_NODES && n->digest == b->nodes[0].digest &&
                 n->providers == TF_NODES && n->task_services == TF_NODES && n->ready && n->quorum;
        }
        *ms = (double)(bench_now_ns() - t0) / 1e6;
        if (ok) {
            return 0;
        }
        if (*ms > TF_DISCOVERY_TIMEOUT_S * 1e3) {
            for (int i = 0; i < TF_NODES; i++) {
                tf_node_t *n = &b->nodes[i];
                fprintf(stderr,
                        "bench_taskflow: node %d: ring %zu members (digest %016llx), %d of %s, "
                        "%d task services, ready %d, quorum %d\n",
                        i, n->ring_members, (unsigned long long)n->digest, n->providers, TF_PATH,
                        n->task_services, n->ready, n->quorum);
            }
            return -1;
        }
        s_sleep_ms(TF_DISCOVERY_POLL_MS);
    }
}

typedef struct {
    size_t succeeded, failed, expired, held;
    size_t counts[TF_STATES];
    uint64_t commits[TF_NODES]; /* journal commits, by node */
    uint64_t journal_errors;    /* the 3 nodes summed */
} tf_counts_t;

/*  What a tasks block used: journal commits and CPU time. The rest of a
    loop thread's time it was asleep: in a flush, or with nothing to do. */
typedef struct {
    uint64_t commits[TF_NODES];
    double cpu_s[TF_NODES];  /* each node's loop thread, on a CPU */
    double runq_s[TF_NODES]; /* each node's loop thread, runnable, waiting for a CPU */
    double process_cpu_s;    /* every thread of the process, on a CPU */
} tf_usage_t;

/*  The CPU time of each node's loop thread (on a CPU, and waiting for one:
    /proc/self/task/TID/schedstat; 0 where unreadable) and of the process
    so far. */
static void s_cpu_read(tf_bench_t *b, tf_usage_t *u)
{
    for (int i = 0; i < TF_NODES; i++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", (int)b->nodes[i].tid);
        unsigned long long run = 0, wait = 0;
        FILE *f = b->nodes[i].thread_started ? fopen(path, "r") : NULL;
        if (f) {
            if (fscanf(f, "%llu %llu", &run, &wait) != 2) {
                run = wait = 0;
            }
            fclose(f);
        }
        u->cpu_s[i] = (double)run / 1e9;
        u->runq_s[i] = (double)wait / 1e9;
    }
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    u->process_cpu_s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void s_counts(tf_bench_t *b, tf_counts_t *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < TF_NODES; i++) {
        tf_node_t *n = &b->nodes[i];
        s_on_node(n, s_probe_counts);
        for (int s = 0; s < TF_STATES; s++) {
            c->counts[s] += n->counts[s];
        }
        c->held += n->held;
        c->commits[i] = n->journal_commits;
        c->journal_errors += n->journal_errors;
    }
    c->succeeded = c->counts[TF_SUCCEEDED];
    c->failed = c->counts[TF_FAILED];
    c->expired = c->counts[TF_EXPIRED];
}

/* ------------------------------------------------------------------------ */
/* the series */

static size_t s_active(const tf_counts_t *c)
{
    return c->counts[TF_SCHEDULED] + c->counts[TF_RUNNING] + c->counts[TF_STANDBY];
}

/*  N tasks, window W: the seconds to the last handler run and to the end:
    no task left scheduled, running or standby on any holder (every holder
    has taken in the done of every task; that holds when the services
    purge final tasks too, where counting SUCCEEDED would not). With the
    default retention (nothing purged), also checks that every holder of
    every task holds it SUCCEEDED. *held: tasks held before the block, the
    3 services summed. use (may be NULL): the journal commits and CPU
    time from the start of the block to its end. 0 or -1. */
static int s_tasks_block(tf_bench_t *b, long n, double *to_runs, double *to_final, size_t *held,
                         tf_usage_t *use)
{
    tf_counts_t before, after;
    s_counts(b, &before);
    tf_usage_t cpu0, cpu1;
    memset(&cpu1, 0, sizeof cpu1);
    s_cpu_read(b, &cpu0);
    *held = before.held;
    atomic_store(&b->task_runs, 0);
    if (s_phase(b, TF_TASKS, n, to_runs) != 0) {
        return -1;
    }
    for (;;) {
        s_counts(b, &after);
        double s = (double)(bench_now_ns() - b->t_start) / 1e9;
        if (s_active(&after) == 0) {
            *to_final = s;
            s_cpu_read(b, &cpu1);
            break;
        }
        if (s - *to_runs > TF_SETTLE_TIMEOUT_S) {
            fprintf(stderr,
                    "bench_taskflow: %zu tasks still scheduled, running or standby %.0f s after "
                    "the last handler run\n",
                    s_active(&after), TF_SETTLE_TIMEOUT_S);
            return -1;
        }
        s_sleep_ms(TF_POLL_MS);
    }
    long runs = atomic_load(&b->task_runs);
    size_t failed = after.counts[TF_FAILED] + after.counts[TF_EXPIRED] + after.counts[TF_CANCELLED];
    size_t failed0 =
        before.counts[TF_FAILED] + before.counts[TF_EXPIRED] + before.counts[TF_CANCELLED];
    size_t want = before.succeeded + (size_t)n * MESH_TASK_DEFAULT_REPLICAS;
    if (runs != n || failed > failed0 || (b->retention_ms == 0 && after.succeeded != want)) {
        fprintf(stderr,
                "bench_taskflow: %ld tasks: %ld handler runs, %ld holders newly failed, expired "
                "or cancelled, %ld newly succeeded (want %zu)\n",
                n, runs, (long)(failed - failed0), (long)(after.succeeded - before.succeeded),
                want - before.succeeded);
        return -1;
    }
    for (int i = 0; use && i < TF_NODES; i++) {
        use->commits[i] = after.commits[i] - before.commits[i];
        use->cpu_s[i] = cpu1.cpu_s[i] - cpu0.cpu_s[i];
        use->runq_s[i] = cpu1.runq_s[i] - cpu0.runq_s[i];
    }
    if (use) {
        use->process_cpu_s = cpu1.process_cpu_s - cpu0.process_cpu_s;
    }
    return 0;
}

/*  S tasks one at a time: fills solo with their submit round trips. */
static int s_solo_block(tf_bench_t *b, long m, tf_late_t *solo)
{
    atomic_store(&b->task_runs, 0);
    double s;
    if (s_phase(b, TF_SOLO, m, &s) != 0) {
        return -1;
    }
    s_late_summarize(b->sub_ns, (size_t)m, solo);
    return 0;
}

static int s_calls_block(tf_bench_t *b, bool remote, long n, double *seconds)
{
    return s_phase(b, remote ? TF_REMOTE : TF_CALLS, n, seconds);
}

/*  M tasks due in 1..3 s: fills late (the service's lateness) and timer
    (the ev_timer's), M each. 0 or -1. */
static int s_late_block(tf_bench_t *b, long m, tf_late_t *late, tf_late_t *timer, tf_late_t *submit)
{
    for (long i = 0; i < m; i++) {
        b->late_ns[i] = INT64_MIN;
        b->timer_ns[i] = INT64_MIN;
        b->submit_ns[i] = INT64_MIN;
    }
    atomic_store(&b->late_runs, 0);
    double s;
    if (s_phase(b, TF_LATE, m, &s) != 0) {
        return -1;
    }
    s_late_summarize(b->late_ns, (size_t)m, late);
    s_late_summarize(b->timer_ns, (size_t)m, timer);
    s_late_summarize(b->submit_ns, (size_t)m, submit);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* reporting */

static void s_print_median(const char *what, const double *v, long runs, const char *unit,
                           int decimals)
{
    double lo, hi;
    bench_minmax(v, (size_t)runs, &lo, &hi);
    printf("%s %.*f %s (runs %.*f..%.*f)", what, decimals, bench_median(v, (size_t)runs), unit,
           decimals, lo, decimals, hi);
}

static void s_print_paired(const char *what, const double *num, const double *den, long runs)
{
    printf("%s", what);
    for (long r = 0; r < runs; r++) {
        printf(" %.3f", den[r] > 0 ? num[r] / den[r] : 0.0);
    }
    printf("\n");
}

static void s_usage(void)
{
    fprintf(stderr,
            "usage: bench_taskflow [--pin] [--runs R] [--tasks N] [--calls N] [--raw N]\n"
            "                      [--window W] [--late-runs R] [--late-tasks M]\n"
            "                      [--retention-ms MS] [--no-throughput] [--no-lateness]\n"
            "                      [--journal MODE] [--journals MODE,...] [--journal-runs R]\n"
            "                      [--solo S]\n"
            "       MODE: memory, none, meta or full\n");
}

enum { TF_S_TASKS, TF_S_CALLS, TF_S_REMOTE, TF_S_RAW, TF_SERIES };

typedef struct {
    long runs, tasks, calls, raw_n, window, late_runs, late_tasks, retention_ms;
    bool pin, do_tp, do_late;
    tf_journal_t journal;               /* sections 1 and 2 */
    tf_journal_t journals[TF_JOURNALS]; /* section 3, the first one the baseline */
    size_t njournals;
    long journal_runs, solo;
    const char *tmpdir;
    const char *placement;
} tf_opts_t;

/*  A journal mode by name: 0, or -1 if there is none. */
static int s_journal_parse(const char *name, size_t len, tf_journal_t *out)
{
    for (int j = 0; j < TF_JOURNALS; j++) {
        if (strlen(s_journals[j]) == len && strncmp(name, s_journals[j], len) == 0) {
            *out = (tf_journal_t)j;
            return 0;
        }
    }
    return -1;
}

/*  "memory,none,full": each mode once. 0 or -1. */
static int s_journals_parse(const char *list, tf_opts_t *o)
{
    o->njournals = 0;
    for (const char *p = list;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        tf_journal_t j;
        if (o->njournals == TF_JOURNALS || s_journal_parse(p, len, &j) != 0) {
            return -1;
        }
        for (size_t k = 0; k < o->njournals; k++) {
            if (o->journals[k] == j) {
                return -1;
            }
        }
        o->journals[o->njournals++] = j;
        if (!comma) {
            return 0;
        }
        p = comma + 1;
    }
}

static const char *s_fs_name(const char *dir)
{
    struct statfs sf;
    if (statfs(dir, &sf) != 0) {
        return "?";
    }
    switch ((unsigned long)sf.f_type) {
    case 0xEF53:
        return "ext4";
    case TF_TMPFS_MAGIC:
        return "tmpfs: flushes cost nothing there";
    case 0x58465342:
        return "xfs";
    case 0x9123683E:
        return "btrfs";
    default:
        return "other";
    }
}

/*  A cluster's state before its nodes start; ports[0..nports) are other
    clusters' beacon ports. 0 or -1 (s_bench_free frees what was made). */
static int s_bench_init(tf_bench_t *b, const tf_opts_t *o, tf_journal_t journal,
                        const uint16_t *ports, size_t nports)
{
    b->window = o->window;
    b->retention_ms = o->retention_ms;
    b->journal = journal;
    b->tmpdir = o->tmpdir;
    b->xs = TF_SEED;
    sem_init(&b->phase_done, 0, 0);
    for (int tries = 0; tries < TF_PORT_TRIES && b->beacon_port == 0; tries++) {
        b->beacon_port = bench_free_udp_port();
        for (size_t k = 0; k < nports; k++) {
            b->beacon_port = b->beacon_port == ports[k] ? 0 : b->beacon_port;
        }
    }
    snprintf(b->realm, sizeof b->realm, "bench-taskflow-%d-%u", (int)getpid(), b->beacon_port);
    b->late_ns = calloc((size_t)o->late_tasks, sizeof *b->late_ns);
    b->timer_ns = calloc((size_t)o->late_tasks, sizeof *b->timer_ns);
    b->timers = calloc((size_t)o->late_tasks, sizeof *b->timers);
    b->submit_ns = calloc((size_t)o->late_tasks, sizeof *b->submit_ns);
    b->late_cap = (uint32_t)o->late_tasks;
    long subs = o->tasks > TF_WARMUP_TASKS ? o->tasks : TF_WARMUP_TASKS;
    subs = o->solo > subs ? o->solo : subs;
    b->subs = calloc((size_t)subs, sizeof *b->subs);
    b->sub_ns = calloc((size_t)subs, sizeof *b->sub_ns);
    b->sub_cap = (uint32_t)subs;
    if (!b->late_ns || !b->timer_ns || !b->timers || !b->submit_ns || !b->subs || !b->sub_ns ||
        b->beacon_port == 0) {
        return -1;
    }
    return 0;
}

/*  After s_nodes_stop. */
static void s_bench_free(tf_bench_t *b)
{
    sem_destroy(&b->phase_done);
    free(b->late_ns);
    free(b->timer_ns);
    free(b->timers);
    free(b->submit_ns);
    free(b->subs);
    free(b->sub_ns);
}

/*  The header line of a cluster that journals. */
static void s_print_journal(const tf_bench_t *b)
{
    if (b->journal != TF_J_MEMORY) {
        printf("# journal: %s (sync mode), a fresh directory per node under %s (%s)\n",
               s_journals[b->journal], b->tmpdir, s_fs_name(b->tmpdir));
    }
}

/*  The flush baseline: n times a TF_FLUSH_BLOCK write (appended, or over
    the first block) then fdatasync, in a file of a fresh directory under
    tmpdir. 0 or -1. */
static int s_flush_floor(const char *tmpdir, bool append, int n, tf_late_t *out)
{
    char dir[TF_PATH_MAX], path[TF_PATH_MAX + 16];
    int len = snprintf(dir, sizeof dir, "%s/bench_taskflow-flush.XXXXXX", tmpdir);
    if (len < 0 || (size_t)len >= sizeof dir || !mkdtemp(dir)) {
        fprintf(stderr, "bench_taskflow: cannot make a directory under %s: %s\n", tmpdir,
                strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/flush", dir);
    int64_t *ns = calloc((size_t)n, sizeof *ns);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int rc = ns && fd >= 0 ? 0 : -1;
    static uint8_t block[TF_FLUSH_BLOCK];
    for (int i = 0; rc == 0 && i < n; i++) {
        memset(block, i & 0xff, sizeof block);
        off_t at = append ? (off_t)i * TF_FLUSH_BLOCK : 0;
        uint64_t t0 = bench_now_ns();
        if (pwrite(fd, block, sizeof block, at) != (ssize_t)sizeof block || fdatasync(fd) != 0) {
            fprintf(stderr, "bench_taskflow: write+fdatasync in %s: %s\n", dir, strerror(errno));
            rc = -1;
        }
        ns[i] = (int64_t)(bench_now_ns() - t0);
    }
    if (rc == 0) {
        s_late_summarize(ns, (size_t)n, out);
    }
    if (fd >= 0) {
        close(fd);
    }
    free(ns);
    nftw(dir, s_rm, TF_NFTW_FDS, FTW_DEPTH | FTW_PHYS);
    return rc;
}

/*  Sections 1 and 2 on one cluster (o->journal). 0, or 1 on a failure. */
static int s_main_section(const tf_opts_t *o)
{
    long runs = o->runs, tasks = o->tasks, calls = o->calls, raw_n = o->raw_n;
    long window = o->window, late_runs = o->late_runs, late_tasks = o->late_tasks;
    long retention_ms = o->retention_ms;
    bool do_tp = o->do_tp, do_late = o->do_late;
    const char *placement = o->placement;

    static tf_bench_t bench;
    tf_bench_t *b = &bench;
    int status = 1;
    bench_raw_echo_t *raw = NULL;
    if (s_bench_init(b, o, o->journal, NULL, 0) != 0) {
        goto done;
    }
    char retention[64];
    snprintf(retention, sizeof retention, retention_ms ? "%ld ms" : "the service's default (1 h)",
             retention_ms);
    printf("# task service end to end: %d nodes in one process (a thread and a loop each), tcp "
           "loopback, placement: %s, beacon port %u\n"
           "# throughput: %ld runs, each of %ld tasks (countdown 0, %d holders), %ld calls "
           "(least_loaded), %ld calls (remote only), %ld raw round trips; window %ld, %d B, "
           "no-op handler\n"
           "# lateness: %ld runs of %ld tasks due in %d..%d ms, vs ev_timer; retention of final "
           "tasks: %s\n",
           TF_NODES, placement, b->beacon_port, runs, tasks, MESH_TASK_DEFAULT_REPLICAS, calls,
           calls, raw_n, window, TF_SIZE, late_runs, late_tasks, TF_LATE_MIN_MS, TF_LATE_MAX_MS,
           retention);
    s_print_journal(b);
    fflush(stdout);

    if (s_nodes_start(b) != 0) {
        goto done;
    }
    double disc_ms = 0;
    if (s_discovery(b, &disc_ms) != 0) {
        fprintf(stderr, "bench_taskflow: discovery failed\n");
        goto done;
    }
    printf("discovery: %d nodes see the ring, %s and the task services after %.1f ms\n", TF_NODES,
           TF_PATH, disc_ms);
    s_sleep_ms(TF_SETTLE_EXTRA_MS);
    raw = do_tp ? bench_raw_echo_new() : NULL;
    if (do_tp && !raw) {
        goto done;
    }

    static const char *const names[TF_SERIES] = {"tasks", "calls", "calls-remote", "raw"};
    static const tf_kind_t kinds[TF_SERIES] = {TF_KIND_TASK, TF_KIND_CALL, TF_KIND_CALL,
                                               TF_KIND_NONE};
    double rate[TF_SERIES][TF_RUNS_MAX] = {{0}};
    double to_runs_rate[TF_RUNS_MAX] = {0};
    size_t held[TF_RUNS_MAX] = {0};
    long where[TF_SERIES][TF_NODES] = {{0}}; /* handler runs by node, measured blocks */
    tf_late_t late[TF_RUNS_MAX], timer[TF_RUNS_MAX], submit[TF_RUNS_MAX];
    size_t late_held[TF_RUNS_MAX] = {0};

    if (do_tp) {
        /*  Warm-up: connections, allocations, the selector's view of loads. */
        double s1, s2, rr;
        size_t h;
        if (s_calls_block(b, false, TF_WARMUP_CALLS, &s1) != 0 ||
            s_calls_block(b, true, TF_WARMUP_CALLS, &s1) != 0 ||
            s_tasks_block(b, TF_WARMUP_TASKS, &s1, &s2, &h, NULL) != 0 ||
            bench_raw_echo_pipelined(raw, TF_SIZE, (int)window, TF_WARMUP_RAW, &rr) != 0) {
            goto stop;
        }
        printf("warm-up: %d tasks in %.3f s (%.0f tasks/s), not counted\n", TF_WARMUP_TASKS, s2,
               TF_WARMUP_TASKS / s2);
    }
    for (long r = 0; do_tp && r < runs; r++) {
        for (int j = 0; j < TF_SERIES; j++) {
            int k = (j + (int)r) % TF_SERIES;
            long served0[TF_NODES];
            for (int i = 0; i < TF_NODES; i++) {
                served0[i] = atomic_load(&b->nodes[i].served[kinds[k]]);
            }
            double s = 0, s_final = 0;
            int rc = 0;
            if (k == TF_S_TASKS) {
                rc = s_tasks_block(b, tasks, &s, &s_final, &held[r], NULL);
                rate[k][r] = (double)tasks / s_final;
                to_runs_rate[r] = (double)tasks / s;
            } else if (k == TF_S_CALLS || k == TF_S_REMOTE) {
                rc = s_calls_block(b, k == TF_S_REMOTE, calls, &s);
                rate[k][r] = (double)calls / s;
            } else {
                rc = bench_raw_echo_pipelined(raw, TF_SIZE, (int)window, (int)raw_n, &rate[k][r]);
            }
            if (rc != 0) {
                goto stop;
            }
            for (int i = 0; k != TF_S_RAW && i < TF_NODES; i++) {
                where[k][i] += atomic_load(&b->nodes[i].served[kinds[k]]) - served0[i];
            }
        }
        printf("run %ld w%ld: tasks %6.0f/s (last run %6.0f/s, %6zu held before)  calls %7.0f/s  "
               "remote %7.0f/s  raw %7.0f/s  tasks/calls %.3f  tasks/remote %.3f  tasks/raw "
               "%.3f\n",
               r + 1, window, rate[TF_S_TASKS][r], to_runs_rate[r], held[r], rate[TF_S_CALLS][r],
               rate[TF_S_REMOTE][r], rate[TF_S_RAW][r], rate[TF_S_TASKS][r] / rate[TF_S_CALLS][r],
               rate[TF_S_TASKS][r] / rate[TF_S_REMOTE][r], rate[TF_S_TASKS][r] / rate[TF_S_RAW][r]);
        fflush(stdout);
    }

    for (long r = 0; do_late && r < late_runs; r++) {
        tf_counts_t c;
        s_counts(b, &c);
        late_held[r] = c.held;
        if (s_late_block(b, late_tasks, &late[r], &timer[r], &submit[r]) != 0) {
            goto stop;
        }
        printf("run %ld lateness (ms, %zu held before) task: p50 %6.2f  p99 %6.2f  max %6.2f  "
               "min %5.2f   ev_timer: p50 %5.2f  p99 %5.2f  max %6.2f  min %5.2f   submit "
               "round trip: p50 %5.2f  p99 %6.2f\n",
               r + 1, late_held[r], late[r].p50, late[r].p99, late[r].max, late[r].min,
               timer[r].p50, timer[r].p99, timer[r].max, timer[r].min, submit[r].p50,
               submit[r].p99);
        fflush(stdout);
    }

    printf("\n== summary (%s) ==\n", placement);
    if (do_tp) {
        for (int k = 0; k < TF_SERIES; k++) {
            char what[64];
            snprintf(what, sizeof what, "%-12s w%ld median", names[k], window);
            s_print_median(what, rate[k], runs, "/s", 0);
            if (k != TF_S_RAW) {
                printf("  ran on node 0/1/2: %ld/%ld/%ld", where[k][0], where[k][1], where[k][2]);
            }
            printf("\n");
        }
        s_print_median("tasks to the last handler run, median", to_runs_rate, runs, "/s", 0);
        printf("\n");
        double m[TF_SERIES];
        for (int k = 0; k < TF_SERIES; k++) {
            m[k] = bench_median(rate[k], (size_t)runs);
        }
        printf("ratios of medians: tasks/calls %.3f  tasks/calls-remote %.3f  tasks/raw %.3f  "
               "calls/raw %.3f  calls-remote/raw %.3f\n",
               m[TF_S_TASKS] / m[TF_S_CALLS], m[TF_S_TASKS] / m[TF_S_REMOTE],
               m[TF_S_TASKS] / m[TF_S_RAW], m[TF_S_CALLS] / m[TF_S_RAW],
               m[TF_S_REMOTE] / m[TF_S_RAW]);
        s_print_paired("  paired tasks/calls-remote (run by run):", rate[TF_S_TASKS],
                       rate[TF_S_REMOTE], runs);
        printf("  tasks held before each run (3 services):");
        for (long r = 0; r < runs; r++) {
            printf(" %zu", held[r]);
        }
        printf("\ntasks/s target >= %.0f: %s (median %.0f)\n", TF_TARGET_RATE,
               m[TF_S_TASKS] >= TF_TARGET_RATE ? "met" : "NOT met", m[TF_S_TASKS]);
    }
    if (do_late) {
        double v[6][TF_RUNS_MAX];
        double tmax = late[0].max, emax = timer[0].max;
        for (long r = 0; r < late_runs; r++) {
            v[0][r] = late[r].p50;
            v[1][r] = late[r].p99;
            v[2][r] = timer[r].p50;
            v[3][r] = timer[r].p99;
            v[4][r] = submit[r].p50;
            v[5][r] = submit[r].p99;
            tmax = late[r].max > tmax ? late[r].max : tmax;
            emax = timer[r].max > emax ? timer[r].max : emax;
        }
        s_print_median("lateness task     median p50", v[0], late_runs, "ms", 2);
        s_print_median("  p99", v[1], late_runs, "ms", 2);
        printf("  max of runs %.2f ms\n", tmax);
        s_print_median("lateness ev_timer median p50", v[2], late_runs, "ms", 2);
        s_print_median("  p99", v[3], late_runs, "ms", 2);
        printf("  max of runs %.2f ms\n", emax);
        s_print_median("submit round trip median p50", v[4], late_runs, "ms", 2);
        s_print_median("  p99", v[5], late_runs, "ms", 2);
        printf("  (the countdown starts when the owner takes the task)\n");
        double p99 = bench_median(v[1], (size_t)late_runs);
        printf("lateness p99 target <= %.0f ms: %s (median p99 %.2f ms; minus ev_timer's %.2f "
               "ms)\n",
               TF_TARGET_P99_MS, p99 <= TF_TARGET_P99_MS ? "met" : "NOT met", p99,
               p99 - bench_median(v[3], (size_t)late_runs));
    }
    {
        /*  The last done broadcasts may still be on their way. */
        tf_counts_t c;
        uint64_t t0 = bench_now_ns();
        for (;;) {
            s_counts(b, &c);
            if (s_active(&c) == 0 || bench_now_ns() - t0 > (uint64_t)(TF_SETTLE_TIMEOUT_S * 1e9)) {
                break;
            }
            s_sleep_ms(TF_POLL_MS * 10);
        }
        printf("held on the %d services: %zu (", TF_NODES, c.held);
        for (int s = 0; s < TF_STATES; s++) {
            printf("%s%s %zu", s ? ", " : "", s_states[s], c.counts[s]);
        }
        printf("); stray handler runs %ld\n", atomic_load(&b->stray_runs));
        if (b->journal != TF_J_MEMORY) {
            printf("journal %s: commits on node 0/1/2 %llu/%llu/%llu, failed commits %llu\n",
                   s_journals[b->journal], (unsigned long long)c.commits[0],
                   (unsigned long long)c.commits[1], (unsigned long long)c.commits[2],
                   (unsigned long long)c.journal_errors);
        }
    }
    status = 0;

stop:
    fflush(stdout);
done:
    bench_raw_echo_destroy(&raw);
    {
        uint64_t t0 = bench_now_ns();
        s_nodes_stop(b);
        printf("teardown (mesh_taskd_destroy hands every held task off): %.0f ms\n",
               (double)(bench_now_ns() - t0) / 1e6);
    }
    s_bench_free(b);
    return status;
}

/*  A cluster of section 3 and its figures. */
typedef struct {
    tf_bench_t bench;
    bool made;                                     /* s_bench_init called */
    double rate[TF_RUNS_MAX];                      /* tasks/s, to the end of the block */
    double rtt50[TF_RUNS_MAX], rtt99[TF_RUNS_MAX]; /* submit round trips in the block, ms */
    size_t held[TF_RUNS_MAX];                      /* before the block, 3 services */
    tf_usage_t use;                                /* the measured blocks, summed */
    double seconds;                                /* the measured blocks, summed */
    tf_late_t solo;                                /* submit round trip, one at a time */
    tf_late_t late[TF_RUNS_MAX], timer[TF_RUNS_MAX], submit[TF_RUNS_MAX];
} tf_cluster_t;

/*  Section 3, the figures of the journaled clusters: CPU time and commits. */
static void s_journal_usage(const tf_opts_t *o, const tf_cluster_t *cl, const tf_late_t *fl_append,
                            const tf_late_t *fl_over)
{
    long cpus = o->pin ? 1 : sysconf(_SC_NPROCESSORS_ONLN);
    for (size_t j = 0; j < o->njournals; j++) {
        const tf_cluster_t *c = &cl[j];
        printf("CPU in the blocks %-6s: loop threads of node 0/1/2 on a CPU",
               s_journals[o->journals[j]]);
        for (int i = 0; i < TF_NODES; i++) {
            printf("%s%.0f%%", i ? "/" : " ", 100.0 * c->use.cpu_s[i] / c->seconds);
        }
        printf(", waiting for one");
        for (int i = 0; i < TF_NODES; i++) {
            printf("%s%.0f%%", i ? "/" : " ", 100.0 * c->use.runq_s[i] / c->seconds);
        }
        printf(", asleep");
        for (int i = 0; i < TF_NODES; i++) {
            double asleep = c->seconds - c->use.cpu_s[i] - c->use.runq_s[i];
            printf("%s%.0f%%", i ? "/" : " ", 100.0 * asleep / c->seconds);
        }
        printf(" of the block time; every thread of the process on a CPU %.0f%% (of %ld CPUs: "
               "%.0f%%)\n",
               100.0 * c->use.process_cpu_s / c->seconds, cpus, 100.0 * (double)cpus);
    }
    for (size_t j = 0; j < o->njournals; j++) {
        const tf_cluster_t *c = &cl[j];
        tf_journal_t mode = o->journals[j];
        if (mode == TF_J_MEMORY) {
            continue;
        }
        uint64_t total = 0;
        printf("journal %-4s commits in the blocks (%.2f s), node 0/1/2:", s_journals[mode],
               c->seconds);
        for (int i = 0; i < TF_NODES; i++) {
            total += c->use.commits[i];
            printf("%s%llu", i ? "/" : " ", (unsigned long long)c->use.commits[i]);
        }
        printf(" (%.2f per task)\n", (double)total / (double)(o->journal_runs * o->tasks));
        static const char *const what[4] = {"block time", "= loop thread on a CPU",
                                            "+ waiting for a CPU",
                                            "+ asleep (in a flush, or nothing to do)"};
        double per[4][TF_NODES];
        for (int i = 0; i < TF_NODES; i++) {
            double k = c->use.commits[i] ? (double)c->use.commits[i] / 1e3 : 1e-3;
            per[0][i] = c->seconds / k;
            per[1][i] = c->use.cpu_s[i] / k;
            per[2][i] = c->use.runq_s[i] / k;
            per[3][i] = per[0][i] - per[1][i] - per[2][i];
        }
        printf("  per commit, ms, node 0/1/2:");
        for (int w = 0; w < 4; w++) {
            printf(" %s %.3f/%.3f/%.3f", what[w], per[w][0], per[w][1], per[w][2]);
        }
        printf("\n");
        int flushes = mode == TF_J_FULL ? TF_FULL_FLUSHES : mode == TF_J_META ? 1 : 0;
        if (flushes > 0) {
            printf("  %d flush(es) per commit at the baseline's p50: %.3f ms (4 KiB appended), "
                   "%.3f ms (over); a commit flushes every page it wrote\n",
                   flushes, flushes * fl_append->p50, flushes * fl_over->p50);
        }
    }
}

/*  Section 3: one cluster per mode of o->journals, tasks blocks in turn.
    0, or 1 on a failure. */
static int s_journal_section(const tf_opts_t *o)
{
    static tf_cluster_t cl[TF_JOURNALS];
    size_t nj = o->njournals;
    long runs = o->journal_runs, tasks = o->tasks, window = o->window;
    long late_runs = o->late_runs;
    const char *base = s_journals[o->journals[0]];
    int status = 1;
    char modes[64] = "";
    for (size_t j = 0; j < nj; j++) {
        snprintf(modes + strlen(modes), sizeof modes - strlen(modes), "%s%s", j ? ", " : "",
                 s_journals[o->journals[j]]);
    }
    char retention[64];
    snprintf(retention, sizeof retention, o->retention_ms ? "%ld ms" : "the default (1 h)",
             o->retention_ms);
    printf("# task service with journals: one cluster of %d nodes per mode (%s) in one process, "
           "tcp loopback, placement: %s; baseline: %s; journal directories under %s (%s)\n",
           TF_NODES, modes, o->placement, base, o->tmpdir, s_fs_name(o->tmpdir));
    if (o->do_tp) {
        printf("# throughput: %ld runs, each of one block of %ld tasks (countdown 0, %d holders, "
               "window %ld, no-op handler) per cluster, in turn; then %ld tasks one at a time "
               "per cluster\n",
               runs, tasks, MESH_TASK_DEFAULT_REPLICAS, window, o->solo);
    }
    if (o->do_late) {
        printf("# lateness: %ld runs of %ld tasks due in %d..%d ms per cluster (window %ld)\n",
               late_runs, o->late_tasks, TF_LATE_MIN_MS, TF_LATE_MAX_MS, window);
    }
    printf("# retention of final tasks: %s\n", retention);
    fflush(stdout);

    /*  The flush baseline first, on a quiet process. */
    tf_late_t fl_append, fl_over;
    if (s_flush_floor(o->tmpdir, true, TF_FLUSH_SAMPLES, &fl_append) != 0 ||
        s_flush_floor(o->tmpdir, false, TF_FLUSH_SAMPLES, &fl_over) != 0) {
        goto done;
    }
    printf("flush baseline: %d B write + fdatasync, %d times: appended p50 %.3f ms p99 %.3f ms; "
           "over the first block p50 %.3f ms p99 %.3f ms\n",
           TF_FLUSH_BLOCK, TF_FLUSH_SAMPLES, fl_append.p50, fl_append.p99, fl_over.p50,
           fl_over.p99);

    uint16_t ports[TF_JOURNALS];
    for (size_t j = 0; j < nj; j++) {
        cl[j].made = true;
        if (s_bench_init(&cl[j].bench, o, o->journals[j], ports, j) != 0) {
            goto done;
        }
        ports[j] = cl[j].bench.beacon_port;
    }
    for (size_t j = 0; j < nj; j++) {
        if (s_nodes_start(&cl[j].bench) != 0) {
            goto done;
        }
    }
    for (size_t j = 0; j < nj; j++) {
        double ms;
        if (s_discovery(&cl[j].bench, &ms) != 0) {
            fprintf(stderr, "bench_taskflow: discovery failed (%s)\n", s_journals[o->journals[j]]);
            goto done;
        }
        printf("cluster %-6s (beacon port %u): discovery after %.1f ms\n",
               s_journals[o->journals[j]], cl[j].bench.beacon_port, ms);
    }
    s_sleep_ms(TF_SETTLE_EXTRA_MS);
    for (size_t j = 0; o->do_tp && j < nj; j++) {
        double s1, s2;
        size_t h;
        if (s_tasks_block(&cl[j].bench, TF_WARMUP_TASKS, &s1, &s2, &h, NULL) != 0) {
            goto done;
        }
        printf("cluster %-6s warm-up: %d tasks in %.3f s (%.0f tasks/s), not counted\n",
               s_journals[o->journals[j]], TF_WARMUP_TASKS, s2, TF_WARMUP_TASKS / s2);
    }
    fflush(stdout);

    for (long r = 0; o->do_tp && r < runs; r++) {
        for (size_t jj = 0; jj < nj; jj++) {
            size_t j = (jj + (size_t)r) % nj;
            tf_cluster_t *c = &cl[j];
            double s, s_final;
            tf_usage_t use;
            if (s_tasks_block(&c->bench, tasks, &s, &s_final, &c->held[r], &use) != 0) {
                goto done;
            }
            c->rate[r] = (double)tasks / s_final;
            c->seconds += s_final;
            for (int i = 0; i < TF_NODES; i++) {
                c->use.commits[i] += use.commits[i];
                c->use.cpu_s[i] += use.cpu_s[i];
                c->use.runq_s[i] += use.runq_s[i];
            }
            c->use.process_cpu_s += use.process_cpu_s;
            tf_late_t rtt;
            s_late_summarize(c->bench.sub_ns, (size_t)tasks, &rtt);
            c->rtt50[r] = rtt.p50;
            c->rtt99[r] = rtt.p99;
        }
        printf("run %ld w%ld:", r + 1, window);
        for (size_t j = 0; j < nj; j++) {
            printf("  %s %6.0f/s (submit p50 %.2f p99 %.2f ms, %zu held before)",
                   s_journals[o->journals[j]], cl[j].rate[r], cl[j].rtt50[r], cl[j].rtt99[r],
                   cl[j].held[r]);
        }
        for (size_t j = 1; j < nj; j++) {
            printf("  %s/%s %.3f", s_journals[o->journals[j]], base, cl[j].rate[r] / cl[0].rate[r]);
        }
        printf("\n");
        fflush(stdout);
    }
    for (size_t j = 0; o->do_tp && j < nj; j++) {
        if (s_solo_block(&cl[j].bench, o->solo, &cl[j].solo) != 0) {
            goto done;
        }
        printf("cluster %-6s %ld tasks one at a time: submit round trip p50 %.3f ms  p99 %.3f ms  "
               "max %.3f ms\n",
               s_journals[o->journals[j]], o->solo, cl[j].solo.p50, cl[j].solo.p99, cl[j].solo.max);
        fflush(stdout);
    }
    for (long r = 0; o->do_late && r < late_runs; r++) {
        for (size_t jj = 0; jj < nj; jj++) {
            size_t j = (jj + (size_t)r) % nj;
            tf_cluster_t *c = &cl[j];
            if (s_late_block(&c->bench, o->late_tasks, &c->late[r], &c->timer[r], &c->submit[r]) !=
                0) {
                goto done;
            }
            printf("run %ld lateness %-6s (ms) task: p50 %6.2f  p99 %6.2f  max %6.2f   ev_timer: "
                   "p50 %5.2f  p99 %5.2f   submit round trip: p50 %5.2f  p99 %6.2f\n",
                   r + 1, s_journals[o->journals[j]], c->late[r].p50, c->late[r].p99,
                   c->late[r].max, c->timer[r].p50, c->timer[r].p99, c->submit[r].p50,
                   c->submit[r].p99);
            fflush(stdout);
        }
    }

    printf("\n== summary (journals, %s) ==\n", o->placement);
    for (size_t j = 0; o->do_tp && j < nj; j++) {
        tf_cluster_t *c = &cl[j];
        char what[64];
        snprintf(what, sizeof what, "tasks w%ld %-6s median", window, s_journals[o->journals[j]]);
        s_print_median(what, c->rate, runs, "/s", 0);
        if (j > 0) {
            printf("  %s/%s %.3f (paired, run by run:", s_journals[o->journals[j]], base,
                   bench_median(c->rate, (size_t)runs) / bench_median(cl[0].rate, (size_t)runs));
            for (long r = 0; r < runs; r++) {
                printf(" %.3f", c->rate[r] / cl[0].rate[r]);
            }
            printf(")");
        }
        printf("\n");
    }
    for (size_t j = 0; o->do_tp && j < nj; j++) {
        tf_cluster_t *c = &cl[j];
        char what[96];
        snprintf(what, sizeof what, "submit round trip %-6s in the blocks (w%ld): median p50",
                 s_journals[o->journals[j]], window);
        s_print_median(what, c->rtt50, runs, "ms", 2);
        s_print_median("  p99", c->rtt99, runs, "ms", 2);
        printf("\n");
    }
    for (size_t j = 0; o->do_tp && j < nj; j++) {
        tf_cluster_t *c = &cl[j];
        printf("submit round trip %-6s one at a time: p50 %.3f ms  p99 %.3f ms",
               s_journals[o->journals[j]], c->solo.p50, c->solo.p99);
        if (j > 0) {
            printf("  (p50 %+.3f ms vs %s)", c->solo.p50 - cl[0].solo.p50, base);
        }
        printf("\n");
    }
    for (size_t j = 0; o->do_late && j < nj; j++) {
        tf_cluster_t *c = &cl[j];
        double v[4][TF_RUNS_MAX];
        for (long r = 0; r < late_runs; r++) {
            v[0][r] = c->submit[r].p50;
            v[1][r] = c->submit[r].p99;
            v[2][r] = c->late[r].p50;
            v[3][r] = c->late[r].p99;
        }
        char what[96];
        snprintf(what, sizeof what, "submit round trip %-6s countdown tasks (w%ld): median p50",
                 s_journals[o->journals[j]], window);
        s_print_median(what, v[0], late_runs, "ms", 2);
        s_print_median("  p99", v[1], late_runs, "ms", 2);
        s_print_median("   lateness p50", v[2], late_runs, "ms", 2);
        s_print_median("  p99", v[3], late_runs, "ms", 2);
        printf("\n");
    }
    if (o->do_tp) {
        s_journal_usage(o, cl, &fl_append, &fl_over);
    }
    status = 0;

done:
    fflush(stdout);
    for (size_t j = 0; j < nj; j++) {
        if (!cl[j].made) {
            continue;
        }
        tf_counts_t c;
        if (status == 0) {
            s_counts(&cl[j].bench, &c);
            printf("cluster %-6s held %zu, stray handler runs %ld, failed journal commits %llu",
                   s_journals[o->journals[j]], c.held, atomic_load(&cl[j].bench.stray_runs),
                   (unsigned long long)c.journal_errors);
        }
        uint64_t t0 = bench_now_ns();
        s_nodes_stop(&cl[j].bench);
        if (status == 0) {
            printf("; teardown %.0f ms\n", (double)(bench_now_ns() - t0) / 1e6);
        }
        s_bench_free(&cl[j].bench);
    }
    return status;
}

int main(int argc, char **argv)
{
    tf_opts_t o = {
        .runs = TF_DEFAULT_RUNS,
        .tasks = TF_DEFAULT_TASKS,
        .calls = TF_DEFAULT_CALLS,
        .raw_n = TF_DEFAULT_RAW,
        .window = TF_DEFAULT_WINDOW,
        .late_runs = TF_DEFAULT_LATE_RUNS,
        .late_tasks = TF_DEFAULT_LATE_TASKS,
        .retention_ms = 0,
        .do_tp = true,
        .do_late = true,
        .journal = TF_J_MEMORY,
        .journal_runs = TF_DEFAULT_JOURNAL_RUNS,
        .solo = TF_DEFAULT_SOLO,
    };
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pin") == 0) {
            o.pin = true;
        } else if (strcmp(argv[i], "--no-throughput") == 0) {
            o.do_tp = false;
        } else if (strcmp(argv[i], "--no-lateness") == 0) {
            o.do_late = false;
        } else if (strcmp(argv[i], "--journal") == 0 && i + 1 < argc) {
            const char *m = argv[++i];
            if (s_journal_parse(m, strlen(m), &o.journal) != 0) {
                s_usage();
                return 2;
            }
        } else if (strcmp(argv[i], "--journals") == 0 && i + 1 < argc) {
            if (s_journals_parse(argv[++i], &o) != 0) {
                s_usage();
                return 2;
            }
        } else if (bench_arg_int(argc, argv, &i, "--runs", &o.runs) ||
                   bench_arg_int(argc, argv, &i, "--tasks", &o.tasks) ||
                   bench_arg_int(argc, argv, &i, "--calls", &o.calls) ||
                   bench_arg_int(argc, argv, &i, "--raw", &o.raw_n) ||
                   bench_arg_int(argc, argv, &i, "--window", &o.window) ||
                   bench_arg_int(argc, argv, &i, "--late-runs", &o.late_runs) ||
                   bench_arg_int(argc, argv, &i, "--late-tasks", &o.late_tasks) ||
                   bench_arg_int(argc, argv, &i, "--retention-ms", &o.retention_ms) ||
                   bench_arg_int(argc, argv, &i, "--journal-runs", &o.journal_runs) ||
                   bench_arg_int(argc, argv, &i, "--solo", &o.solo)) {
            continue;
        } else {
            s_usage();
            return 2;
        }
    }
    bool any = o.do_tp || o.do_late;
    if (o.runs < 1 || o.runs > TF_RUNS_MAX || o.late_runs < 1 || o.late_runs > TF_RUNS_MAX ||
        o.tasks < 1 || o.tasks > INT32_MAX || o.calls < 1 || o.raw_n < 1 || o.raw_n > INT32_MAX ||
        o.window < 1 || o.window > INT32_MAX || o.late_tasks < 1 ||
        o.late_tasks > TF_LATE_TASKS_MAX || o.retention_ms < 0 || o.journal_runs < 1 ||
        o.journal_runs > TF_RUNS_MAX || o.solo < 1 || o.solo > TF_SOLO_MAX || !any) {
        fprintf(stderr,
                "bench_taskflow: runs 1..%d, counts >= 1, late tasks <= %d, solo <= %d, "
                "retention >= 0, not both --no-*\n",
                TF_RUNS_MAX, TF_LATE_TASKS_MAX, TF_SOLO_MAX);
        return 2;
    }
    const char *tmpdir = getenv("TMPDIR");
    o.tmpdir = tmpdir && tmpdir[0] ? tmpdir : TF_DEFAULT_TMPDIR;
    /*  Before any thread exists, so that every later thread inherits it. */
    if (o.pin && bench_pin_process(0) != 0) {
        fprintf(stderr, "bench_taskflow: cannot pin to CPU 0\n");
        return 1;
    }
    o.placement = o.pin ? "pinned (CPU 0)" : "free";
    return o.njournals > 0 ? s_journal_section(&o) : s_main_section(&o);
}
