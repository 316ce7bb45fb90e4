/*  bench_call: mesh_peer_call / mesh_peer_cast between two peers in one
    process, against the raw libzmq baseline measured in the same invocation.

    bench_call [--pin] [--runs R] [--iterations N] [--requests N] [--casts N]
               [--size B] [--only-raw | --only-mesh] [--no-lockstep]
               [--no-pipelined] [--no-cast]

    Three measures, each next to its raw counterpart (tests/bench/raw_zmq.h):
      a. lock-step call round trip, p50/p99, against DEALER -> ROUTER -> the
         same DEALER (bench_raw_echo_rtt);
      b. pipelined calls, 100 outstanding (on each reply the next call),
         req/s, against raw pipelined request/reply with a window of 100;
      c. cast throughput, one peer to one peer, msg/s, against raw one-way
         DEALER -> ROUTER (bench_raw_oneway).
    Targets printed: a. p50 <= 1.5x raw, p99 <= 2x raw; b. and c. >= 0.5x raw.

    Placement. Peer B (the server) runs on a thread of its own
    (mesh_peer_start_thread) with a handler for /bench/echo that replies with
    the payload (and counts casts). Peer A (the client) is attached to the
    main thread's libev loop (mesh_peer_attach), and the measuring code runs
    in A's callbacks on that same thread. That is the placement the raw
    baseline has: the raw client sends and receives on the calling thread,
    the raw server runs on a second thread, and each side has a zmq context
    of its own (one libzmq I/O thread per side), so both pictures have the
    same four threads and the same wake-ups per round trip. Putting A on a
    thread of its own too, and driving it from main with mesh_peer_post or
    mesh_peer_call_sync, would add two thread hops per call that the raw
    client does not pay: it would measure the hop, not mesh.

    Interleaving. This machine is bimodal at the scale of seconds, so within
    each run the raw and mesh series alternate in blocks (rotating which
    goes first), on one raw echo pair and one pair of peers kept for the
    whole process. Lock-step: blocks of BC_BLOCK round trips. Pipelined and
    cast: each run's total is split in BC_SPLIT blocks per side, and a
    side's rate is its requests over the sum of its blocks' times. Every run
    prints its figures; then the median of runs, the spread, the ratios of
    the medians and the paired ratios run by run.

    Casts. A sends from an ev_idle watcher in batches of BC_CAST_BATCH, so
    its loop (and with it the peer's own I/O and timers) keeps running; B
    counts casts and, at the block's last one, wakes A through an ev_async.
    mesh_peer_cast returns 0 even when the whisper could not be queued (the
    peer's send queue is full, ZMQ_SNDHWM): A reads its casts_out counter
    after each batch, counts the casts refused that way, and sends again
    until the block's N have been accepted, so every block ends with B
    having received exactly N. The refusals are printed.

    --pin pins the whole process (every thread) to CPU 0: that view tracks
    CPU cost; the free view (default) tracks wake-up cost. --only-raw /
    --only-mesh run one side alone (for perf or strace of one path). */
#include <mesh/mesh.h>

#include <ev.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "raw_zmq.h"

#define BC_DEFAULT_RUNS        5
#define BC_DEFAULT_ITERATIONS  6000
#define BC_DEFAULT_REQUESTS    100000
#define BC_DEFAULT_CASTS       300000
#define BC_DEFAULT_SIZE        64
#define BC_WARMUP              2000 /* lock-step, per run and side, not recorded */
#define BC_BLOCK               500  /* lock-step: raw and mesh alternate in blocks of this many */
#define BC_BLOCK_WARMUP        20   /* per block and side, not recorded */
#define BC_WINDOW              100
#define BC_SPLIT               4    /* pipelined and cast: blocks per side per run */
#define BC_CAST_BATCH          256  /* casts per ev_idle turn */
#define BC_CAST_WARMUP         5000 /* casts before the first run, not recorded */
#define BC_RUNS_MAX            50
#define BC_BEACON_INTERVAL_MS  100
#define BC_DISCOVERY_TIMEOUT_S 10.0
#define BC_BLOCK_TIMEOUT_S     60.0
/*  Liveness far beyond a run: A's loop is idle while the raw baseline runs,
    and B must neither turn evasive nor drop out of A's dispatch meanwhile. */
#define BC_EVASIVE_MS       600000
#define BC_EXPIRED_MS       1200000
#define BC_PING_TIMEOUT_MS  600000
#define BC_CALL_TIMEOUT_MS  10000
#define BC_TARGET_P50       1.5
#define BC_TARGET_P99       2.0
#define BC_TARGET_RATE      0.5
#define BC_SEQ_OFFSET       8 /* payload[8..15] carries the sequence number */
#define BC_PATH             "/bench/echo"

typedef enum { BC_IDLE, BC_LOCKSTEP, BC_PIPELINED, BC_CAST } bc_mode_t;

/*  Peer B: the server, on its own thread. Touched from A's thread only
    through the atomics. */
typedef struct {
    mesh_peer_t *peer;
    atomic_ulong casts;       /* casts received in the current block */
    atomic_ulong cast_target; /* the block's N; 0 while no cast block runs */
    atomic_ulong echo_errors;
    atomic_bool sees_a;
    struct ev_loop *a_loop; /* to wake A at the block's last cast */
    ev_async *a_done;
} bc_server_t;

/*  Peer A: the client, on the main thread. */
typedef struct {
    struct ev_loop *loop;
    mesh_peer_t *peer;
    bc_server_t *server;
    bc_mode_t mode;
    uint8_t *buf;
    size_t size;
    uint64_t seq;    /* next sequence to send */
    uint64_t expect; /* lock-step: the sequence expected back */
    int warmup;
    int target;
    int received;
    int sent;
    uint64_t t_sent;
    uint64_t t_start;
    uint64_t t_end;
    uint64_t *rtt;
    int error;
    /* casts */
    uint64_t casts_out_base; /* A's casts_out when the block started */
    uint64_t cast_attempts;  /* this block */
    uint64_t cast_refused;   /* whole process */
    uint64_t cast_refused_block;
    ev_idle cast_idle;
    ev_async cast_done;
    ev_timer watchdog;
    ev_timer poll;
} bc_client_t;

/* ------------------------------------------------------------------------ */
/* peer B */

static void s_on_echo(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    bc_server_t *b = arg;
    if (mesh_request_is_cast(req)) {
        unsigned long n = atomic_fetch_add(&b->casts, 1) + 1;
        if (n == atomic_load(&b->cast_target)) {
            ev_async_send(b->a_loop, b->a_done);
        }
        mesh_request_reply(req, NULL, 0); /* a cast: frees req, sends nothing */
        return;
    }
    if (mesh_request_reply(req, mesh_request_data(req), mesh_request_size(req)) != 0) {
        atomic_fetch_add(&b->echo_errors, 1);
    }
}

static void s_count_member(const mesh_route_info_t *r, void *arg)
{
    (void)r;
    (void)arg;
}

/*  Runs on B's thread (mesh_peer_post): does B know A yet? */
static void s_check_b(mesh_peer_t *peer, void *arg)
{
    bc_server_t *b = arg;
    if (mesh_peer_routes(peer, s_count_member, NULL) >= 2) {
        atomic_store(&b->sees_a, true);
    }
}

/* ------------------------------------------------------------------------ */
/* peer A */

static void s_fail(bc_client_t *a, int rc, const char *what)
{
    fprintf(stderr, "bench_call: %s: %s (%d)\n", what, mesh_strerror(rc), rc);
    a->error = rc ? rc : -1;
    ev_break(a->loop, EVBREAK_ONE);
}

static void s_on_reply(mesh_peer_t *peer, const mesh_reply_t *reply, void *arg);

static int s_call(bc_client_t *a)
{
    memcpy(a->buf + BC_SEQ_OFFSET, &a->seq, sizeof a->seq);
    int rc = mesh_peer_call(a->peer, BC_PATH, a->buf, a->size, NULL, s_on_reply, a);
    if (rc != 0) {
        s_fail(a, rc, "mesh_peer_call");
        return rc;
    }
    a->seq++;
    a->sent++;
    return 0;
}

static void s_on_reply(mesh_peer_t *peer, const mesh_reply_t *reply, void *arg)
{
    bc_client_t *a = arg;
    uint64_t now = bench_now_ns();
    if (a->error) {
        return; /* a block already failed: let the rest drain */
    }
    if (reply->status != 0) {
        s_fail(a, reply->status, "call completed with");
        return;
    }
    if (reply->size != a->size) {
        fprintf(stderr, "bench_call: reply of %zu bytes, sent %zu\n", reply->size, a->size);
        s_fail(a, -1, "wrong reply");
        return;
    }
    uint64_t seq = 0;
    memcpy(&seq, (const uint8_t *)reply->data + BC_SEQ_OFFSET, sizeof seq);
    if (a->mode == BC_LOCKSTEP) {
        if (seq != a->expect) {
            fprintf(stderr, "bench_call: reply %llu, expected %llu\n", (unsigned long long)seq,
                    (unsigned long long)a->expect);
            s_fail(a, -1, "wrong reply");
            return;
        }
        a->expect++;
        if (a->warmup > 0) {
            a->warmup--;
        } else {
            a->rtt[a->received++] = now - a->t_sent;
        }
        if (a->received == a->target) {
            ev_break(a->loop, EVBREAK_ONE);
            return;
        }
        a->t_sent = bench_now_ns();
        s_call(a);
    } else if (a->mode == BC_PIPELINED) {
        if (++a->received == a->target) {
            a->t_end = now;
            ev_break(a->loop, EVBREAK_ONE);
            return;
        }
        if (a->sent < a->target) {
            s_call(a);
        }
    }
}

/*  Sends the next batch of casts; stops itself once the block's N have
    been accepted (B's ev_async ends the block). */
static void s_on_cast_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
    bc_client_t *a = w->data;
    mesh_stats_t st;
    mesh_peer_stats(a->peer, &st);
    uint64_t accepted = st.casts_out - a->casts_out_base;
    a->cast_refused_block = a->cast_attempts - accepted;
    if (accepted >= (uint64_t)a->target) {
        ev_idle_stop(loop, w);
        return;
    }
    uint64_t left = (uint64_t)a->target - accepted;
    uint64_t n = left < BC_CAST_BATCH ? left : BC_CAST_BATCH;
    for (uint64_t i = 0; i < n; i++) {
        memcpy(a->buf + BC_SEQ_OFFSET, &a->seq, sizeof a->seq);
        int rc = mesh_peer_cast(a->peer, BC_PATH, a->buf, a->size, NULL);
        if (rc != 0) {
            ev_idle_stop(loop, w);
            s_fail(a, rc, "mesh_peer_cast");
            return;
        }
        a->seq++;
        a->cast_attempts++;
    }
}

static void s_on_cast_done(struct ev_loop *loop, ev_async *w, int revents)
{
    bc_client_t *a = w->data;
    if (a->mode == BC_CAST) {
        a->t_end = bench_now_ns();
        ev_break(loop, EVBREAK_ONE);
    }
}

static void s_on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
    bc_client_t *a = w->data;
    fprintf(stderr, "bench_call: timed out (mode %d: received %d of %d, sent %d; B casts %lu)\n",
            (int)a->mode, a->received, a->target, a->sent, atomic_load(&a->server->casts));
    a->error = -1;
    ev_break(loop, EVBREAK_ONE);
}

typedef struct {
    bool found;
} bc_route_seen_t;

static void s_find_route(const mesh_route_info_t *r, void *arg)
{
    bc_route_seen_t *s = arg;
    if (!r->is_self && r->alive && r->path && strcmp(r->path, BC_PATH) == 0) {
        s->found = true;
    }
}

static void s_on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    bc_client_t *a = w->data;
    bc_route_seen_t seen = {false};
    mesh_peer_routes(a->peer, s_find_route, &seen);
    if (!atomic_load(&a->server->sees_a)) {
        mesh_peer_post(a->server->peer, s_check_b, a->server);
    }
    if (seen.found && atomic_load(&a->server->sees_a)) {
        ev_break(loop, EVBREAK_ONE);
    }
}

static int s_run(bc_client_t *a, double timeout_s)
{
    ev_timer_set(&a->watchdog, timeout_s, 0);
    ev_timer_start(a->loop, &a->watchdog);
    ev_run(a->loop, 0);
    ev_timer_stop(a->loop, &a->watchdog);
    a->mode = BC_IDLE;
    return a->error;
}

static int s_mesh_lockstep(bc_client_t *a, int warmup, int iterations, uint64_t *rtt)
{
    a->mode = BC_LOCKSTEP;
    a->warmup = warmup;
    a->target = iterations;
    a->received = 0;
    a->sent = 0;
    a->rtt = rtt;
    a->expect = a->seq;
    if (warmup + iterations == 0) {
        return 0;
    }
    if (iterations == 0) {
        /* warm-up only: count warm-up replies as the target */
        a->target = warmup;
        a->warmup = 0;
        a->rtt = NULL;
        uint64_t *scratch = malloc((size_t)warmup * sizeof *scratch);
        if (!scratch) {
            return -1;
        }
        a->rtt = scratch;
        a->t_sent = bench_now_ns();
        int rc = s_call(a) == 0 ? s_run(a, BC_BLOCK_TIMEOUT_S) : -1;
        free(scratch);
        return rc;
    }
    a->t_sent = bench_now_ns();
    if (s_call(a) != 0) {
        return -1;
    }
    return s_run(a, BC_BLOCK_TIMEOUT_S);
}

static int s_mesh_pipelined(bc_client_t *a, int window, int requests, double *seconds)
{
    a->mode = BC_PIPELINED;
    a->target = requests;
    a->received = 0;
    a->sent = 0;
    a->t_start = bench_now_ns();
    for (int i = 0; i < window && i < requests; i++) {
        if (s_call(a) != 0) {
            return -1;
        }
    }
    int rc = s_run(a, BC_BLOCK_TIMEOUT_S);
    if (rc == 0) {
        *seconds = (double)(a->t_end - a->t_start) / 1e9;
    }
    return rc;
}

static int s_mesh_casts(bc_client_t *a, int count, double *seconds)
{
    mesh_stats_t st;
    mesh_peer_stats(a->peer, &st);
    a->casts_out_base = st.casts_out;
    a->cast_attempts = 0;
    a->cast_refused_block = 0;
    a->target = count;
    a->received = 0;
    a->sent = 0;
    atomic_store(&a->server->casts, 0);
    atomic_store(&a->server->cast_target, (unsigned long)count);
    a->mode = BC_CAST;
    a->t_start = bench_now_ns();
    ev_idle_start(a->loop, &a->cast_idle);
    int rc = s_run(a, BC_BLOCK_TIMEOUT_S);
    ev_idle_stop(a->loop, &a->cast_idle);
    atomic_store(&a->server->cast_target, 0);
    mesh_peer_stats(a->peer, &st);
    a->cast_refused_block = a->cast_attempts - (st.casts_out - a->casts_out_base);
    a->cast_refused += a->cast_refused_block;
    if (rc == 0) {
        *seconds = (double)(a->t_end - a->t_start) / 1e9;
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* reporting */

static void s_print_lat(const char *what, long run, uint64_t *rtt, int n, double *p50,
                        double *p99)
{
    bench_lat_t lat;
    bench_lat_summarize(rtt, (size_t)n, &lat);
    *p50 = (double)lat.p50 / 1e3;
    *p99 = (double)lat.p99 / 1e3;
    printf("run %ld %-5s call rtt: p50 %7.1f us  p99 %7.1f us  (min %.1f, mean %.1f, max %.1f)\n",
           run, what, *p50, *p99, (double)lat.min / 1e3, lat.mean / 1e3, (double)lat.max / 1e3);
    fflush(stdout);
}

static void s_print_median(const char *what, const double *v, long runs, const char *unit,
                           int decimals)
{
    double lo, hi;
    bench_minmax(v, (size_t)runs, &lo, &hi);
    printf("%s %.*f %s (runs %.*f..%.*f)", what, decimals, bench_median(v, (size_t)runs), unit,
           decimals, lo, decimals, hi);
}

static void s_print_paired(const char *what, const double *mesh, const double *raw, long runs)
{
    printf("%s", what);
    for (long r = 0; r < runs; r++) {
        printf(" %.2f", raw[r] > 0 ? mesh[r] / raw[r] : 0.0);
    }
}

/* ------------------------------------------------------------------------ */

static mesh_peer_t *s_peer(const char *name, uint16_t beacon_port)
{
    mesh_config_t c;
    mesh_config_init(&c);
    c.name = name;
    c.realm = "bench-call";
    c.iface = "lo";
    c.beacon_port = beacon_port;
    c.beacon_interval_ms = BC_BEACON_INTERVAL_MS;
    c.evasive_ms = BC_EVASIVE_MS;
    c.expired_ms = BC_EXPIRED_MS;
    c.ping_timeout_ms = BC_PING_TIMEOUT_MS;
    c.call_timeout_ms = BC_CALL_TIMEOUT_MS;
    return mesh_peer_new(&c);
}

enum { BC_RAW, BC_MESH, BC_SERIES };

int main(int argc, char **argv)
{
    long runs = BC_DEFAULT_RUNS, iterations = BC_DEFAULT_ITERATIONS;
    long requests = BC_DEFAULT_REQUESTS, casts = BC_DEFAULT_CASTS, size = BC_DEFAULT_SIZE;
    bool pin = false, do_raw = true, do_mesh = true;
    bool do_lock = true, do_pipe = true, do_cast = true;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pin") == 0) {
            pin = true;
        } else if (strcmp(argv[i], "--only-raw") == 0) {
            do_mesh = false;
        } else if (strcmp(argv[i], "--only-mesh") == 0) {
            do_raw = false;
        } else if (strcmp(argv[i], "--no-lockstep") == 0) {
            do_lock = false;
        } else if (strcmp(argv[i], "--no-pipelined") == 0) {
            do_pipe = false;
        } else if (strcmp(argv[i], "--no-cast") == 0) {
            do_cast = false;
        } else if (bench_arg_int(argc, argv, &i, "--runs", &runs) ||
                   bench_arg_int(argc, argv, &i, "--iterations", &iterations) ||
                   bench_arg_int(argc, argv, &i, "--requests", &requests) ||
                   bench_arg_int(argc, argv, &i, "--casts", &casts) ||
                   bench_arg_int(argc, argv, &i, "--size", &size)) {
            continue;
        } else {
            fprintf(stderr,
                    "usage: bench_call [--pin] [--runs R] [--iterations N] [--requests N]\n"
                    "                  [--casts N] [--size B] [--only-raw | --only-mesh]\n"
                    "                  [--no-lockstep] [--no-pipelined] [--no-cast]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > BC_RUNS_MAX || iterations < 1 || requests < BC_SPLIT * BC_WINDOW ||
        casts < BC_SPLIT || size < BC_SEQ_OFFSET + 8 || size > 1 << 20 || (!do_raw && !do_mesh)) {
        fprintf(stderr, "bench_call: runs 1..%d, iterations >= 1, requests >= %d, casts >= %d, "
                        "size %d..1 MiB, not both --only-*\n",
                BC_RUNS_MAX, BC_SPLIT * BC_WINDOW, BC_SPLIT, BC_SEQ_OFFSET + 8);
        return 2;
    }
    /*  Before any thread exists, so libzmq's and B's threads inherit it. */
    if (pin && bench_pin_process(0) != 0) {
        fprintf(stderr, "bench_call: cannot pin to CPU 0\n");
        return 1;
    }
    const char *placement = pin ? "pinned (CPU 0)" : "free";
    uint16_t beacon_port = bench_free_udp_port();
    printf("# mesh_peer_call / cast vs raw libzmq, tcp loopback, %ld B, placement: %s, "
           "beacon port %u, %ld runs\n"
           "# lock-step %ld round trips per run and side (blocks of %d, %d warm-up); pipelined "
           "w%d %ld requests; casts %ld; each split in %d interleaved blocks per side\n",
           size, placement, beacon_port, runs, iterations, BC_BLOCK, BC_WARMUP, BC_WINDOW,
           requests, casts, BC_SPLIT);

    int status = 1;
    bc_server_t b;
    bc_client_t a;
    memset(&b, 0, sizeof b);
    memset(&a, 0, sizeof a);
    uint64_t *rtt[BC_SERIES] = {malloc((size_t)iterations * sizeof(uint64_t)),
                                malloc((size_t)iterations * sizeof(uint64_t))};
    a.buf = calloc(1, (size_t)size);
    bench_raw_echo_t *raw = NULL;
    if (!rtt[0] || !rtt[1] || !a.buf || beacon_port == 0) {
        goto done;
    }
    memcpy(a.buf, "BENCHBC", 7);
    a.size = (size_t)size;
    a.server = &b;
    a.loop = ev_loop_new(EVFLAG_AUTO);
    if (!a.loop) {
        goto done;
    }
    ev_timer_init(&a.watchdog, s_on_watchdog, 0, 0);
    a.watchdog.data = &a;
    ev_timer_init(&a.poll, s_on_poll, 0.01, 0.01);
    a.poll.data = &a;
    ev_idle_init(&a.cast_idle, s_on_cast_idle);
    a.cast_idle.data = &a;
    ev_async_init(&a.cast_done, s_on_cast_done);
    a.cast_done.data = &a;
    ev_async_start(a.loop, &a.cast_done);
    b.a_loop = a.loop;
    b.a_done = &a.cast_done;

    if (do_mesh) {
        b.peer = s_peer("bench-b", beacon_port);
        a.peer = s_peer("bench-a", beacon_port);
        if (!a.peer || !b.peer) {
            fprintf(stderr, "bench_call: mesh_peer_new failed\n");
            goto done;
        }
        int rc = mesh_peer_expose(b.peer, BC_PATH, s_on_echo, &b, NULL);
        if (rc != 0) {
            fprintf(stderr, "bench_call: expose: %s\n", mesh_strerror(rc));
            goto done;
        }
        if ((rc = mesh_peer_start_thread(b.peer)) != 0 ||
            (rc = mesh_peer_attach(a.peer, a.loop)) != 0) {
            fprintf(stderr, "bench_call: start: %s\n", mesh_strerror(rc));
            goto done;
        }
        uint64_t t0 = bench_now_ns();
        ev_timer_start(a.loop, &a.poll);
        rc = s_run(&a, BC_DISCOVERY_TIMEOUT_S);
        ev_timer_stop(a.loop, &a.poll);
        if (rc != 0) {
            fprintf(stderr, "bench_call: discovery failed: A %s B's %s, B %s A\n",
                    "does not see", BC_PATH, atomic_load(&b.sees_a) ? "sees" : "does not see");
            goto done;
        }
        printf("discovery: A sees B's %s and B sees A after %.1f ms\n", BC_PATH,
               (double)(bench_now_ns() - t0) / 1e6);
    }
    raw = do_raw ? bench_raw_echo_new() : NULL;
    if (do_raw && !raw) {
        goto done;
    }

    static const char *const names[BC_SERIES] = {"raw", "mesh"};
    const bool on[BC_SERIES] = {do_raw, do_mesh};
    double p50[BC_SERIES][BC_RUNS_MAX] = {{0}}, p99[BC_SERIES][BC_RUNS_MAX] = {{0}};
    double pipe[BC_SERIES][BC_RUNS_MAX] = {{0}}, cast[BC_SERIES][BC_RUNS_MAX] = {{0}};
    uint64_t refused[BC_RUNS_MAX] = {0};

    /*  a. lock-step */
    for (long r = 0; do_lock && r < runs; r++) {
        if ((do_raw && bench_raw_echo_rtt(raw, (size_t)size, BC_WARMUP, 0, NULL) != 0) ||
            (do_mesh && s_mesh_lockstep(&a, BC_WARMUP, 0, NULL) != 0)) {
            goto stop;
        }
        for (int done = 0, block = 0; done < iterations; block++) {
            int n = iterations - done < BC_BLOCK ? (int)iterations - done : BC_BLOCK;
            for (int j = 0; j < BC_SERIES; j++) {
                int k = (block + j) % BC_SERIES;
                if (!on[k]) {
                    continue;
                }
                int rc = k == BC_MESH
                             ? s_mesh_lockstep(&a, BC_BLOCK_WARMUP, n, rtt[k] + done)
                             : bench_raw_echo_rtt(raw, (size_t)size, BC_BLOCK_WARMUP, n,
                                                  rtt[k] + done);
                if (rc != 0) {
                    goto stop;
                }
            }
            done += n;
        }
        for (int k = 0; k < BC_SERIES; k++) {
            if (on[k]) {
                s_print_lat(names[k], r + 1, rtt[k], (int)iterations, &p50[k][r], &p99[k][r]);
            }
        }
    }

    /*  b. pipelined, window 100 */
    for (long r = 0; do_pipe && r < runs; r++) {
        double secs[BC_SERIES] = {0, 0};
        int per = (int)(requests / BC_SPLIT);
        for (int block = 0; block < BC_SPLIT; block++) {
            for (int j = 0; j < BC_SERIES; j++) {
                int k = (block + j + (int)r) % BC_SERIES;
                if (!on[k]) {
                    continue;
                }
                double s = 0, rate = 0;
                int rc = k == BC_MESH ? s_mesh_pipelined(&a, BC_WINDOW, per, &s)
                                      : bench_raw_echo_pipelined(raw, (size_t)size, BC_WINDOW,
                                                                 per, &rate);
                if (rc != 0) {
                    goto stop;
                }
                secs[k] += k == BC_MESH ? s : (double)per / rate;
            }
        }
        for (int k = 0; k < BC_SERIES; k++) {
            pipe[k][r] = on[k] ? (double)per * BC_SPLIT / secs[k] : 0;
        }
        printf("run %ld pipelined w%d: raw %8.0f req/s  mesh %8.0f req/s", r + 1, BC_WINDOW,
               pipe[BC_RAW][r], pipe[BC_MESH][r]);
        if (do_raw && do_mesh) {
            printf("  (mesh/raw %.2f)", pipe[BC_MESH][r] / pipe[BC_RAW][r]);
        }
        printf("\n");
        fflush(stdout);
    }

    /*  c. casts, one-way */
    if (do_cast && do_mesh) {
        double s;
        if (s_mesh_casts(&a, BC_CAST_WARMUP, &s) != 0) {
            goto stop;
        }
        a.cast_refused = 0;
    }
    for (long r = 0; do_cast && r < runs; r++) {
        double secs[BC_SERIES] = {0, 0};
        int per = (int)(casts / BC_SPLIT);
        uint64_t refused_before = a.cast_refused;
        for (int block = 0; block < BC_SPLIT; block++) {
            for (int j = 0; j < BC_SERIES; j++) {
                int k = (block + j + (int)r) % BC_SERIES;
                if (!on[k]) {
                    continue;
                }
                double s = 0, rate = 0;
                int rc = k == BC_MESH ? s_mesh_casts(&a, per, &s)
                                      : bench_raw_oneway((size_t)size, per, &rate);
                if (rc != 0) {
                    goto stop;
                }
                secs[k] += k == BC_MESH ? s : (double)per / rate;
            }
        }
        for (int k = 0; k < BC_SERIES; k++) {
            cast[k][r] = on[k] ? (double)per * BC_SPLIT / secs[k] : 0;
        }
        refused[r] = a.cast_refused - refused_before;
        printf("run %ld one-way: raw %9.0f msg/s  mesh cast %9.0f msg/s", r + 1, cast[BC_RAW][r],
               cast[BC_MESH][r]);
        if (do_raw && do_mesh) {
            printf("  (mesh/raw %.2f)", cast[BC_MESH][r] / cast[BC_RAW][r]);
        }
        if (do_mesh) {
            printf("  casts refused (queue full, resent): %llu", (unsigned long long)refused[r]);
        }
        printf("\n");
        fflush(stdout);
    }

    printf("\n== summary (%s) ==\n", placement);
    if (do_lock) {
        for (int k = 0; k < BC_SERIES; k++) {
            if (on[k]) {
                char what[64];
                snprintf(what, sizeof what, "call rtt %-4s median p50", names[k]);
                s_print_median(what, p50[k], runs, "us", 1);
                s_print_median("  p99", p99[k], runs, "us", 1);
                printf("\n");
            }
        }
        if (do_raw && do_mesh) {
            double r50 = bench_median(p50[BC_MESH], (size_t)runs) /
                         bench_median(p50[BC_RAW], (size_t)runs);
            double r99 = bench_median(p99[BC_MESH], (size_t)runs) /
                         bench_median(p99[BC_RAW], (size_t)runs);
            printf("call rtt ratio mesh/raw: p50 %.2fx (target <= %.1fx: %s)  p99 %.2fx (target "
                   "<= %.1fx: %s)\n",
                   r50, BC_TARGET_P50, r50 <= BC_TARGET_P50 ? "met" : "NOT met", r99,
                   BC_TARGET_P99, r99 <= BC_TARGET_P99 ? "met" : "NOT met");
            s_print_paired("  paired ratios (run by run) p50:", p50[BC_MESH], p50[BC_RAW], runs);
            s_print_paired("   p99:", p99[BC_MESH], p99[BC_RAW], runs);
            printf("\n");
        }
    }
    if (do_pipe) {
        for (int k = 0; k < BC_SERIES; k++) {
            if (on[k]) {
                char what[64];
                snprintf(what, sizeof what, "pipelined w%d %-4s median", BC_WINDOW, names[k]);
                s_print_median(what, pipe[k], runs, "req/s", 0);
                printf("\n");
            }
        }
        if (do_raw && do_mesh) {
            double rr = bench_median(pipe[BC_MESH], (size_t)runs) /
                        bench_median(pipe[BC_RAW], (size_t)runs);
            printf("pipelined ratio mesh/raw: %.2f (target >= %.2f: %s)\n", rr, BC_TARGET_RATE,
                   rr >= BC_TARGET_RATE ? "met" : "NOT met");
            s_print_paired("  paired ratios (run by run):", pipe[BC_MESH], pipe[BC_RAW], runs);
            printf("\n");
        }
    }
    if (do_cast) {
        for (int k = 0; k < BC_SERIES; k++) {
            if (on[k]) {
                char what[64];
                snprintf(what, sizeof what, "one-way %-4s median", k == BC_MESH ? "cast" : "raw");
                s_print_median(what, cast[k], runs, "msg/s", 0);
                printf("\n");
            }
        }
        if (do_raw && do_mesh) {
            double rr = bench_median(cast[BC_MESH], (size_t)runs) /
                        bench_median(cast[BC_RAW], (size_t)runs);
            printf("cast ratio mesh/raw: %.2f (target >= %.2f: %s)\n", rr, BC_TARGET_RATE,
                   rr >= BC_TARGET_RATE ? "met" : "NOT met");
            s_print_paired("  paired ratios (run by run):", cast[BC_MESH], cast[BC_RAW], runs);
            printf("\n");
        }
        if (do_mesh) {
            uint64_t total = 0;
            for (long r = 0; r < runs; r++) {
                total += refused[r];
            }
            printf("casts refused by a full send queue (mesh_peer_cast returned 0; resent): %llu "
                   "of %ld casts\n",
                   (unsigned long long)total, (casts / BC_SPLIT) * BC_SPLIT * runs);
        }
    }
    if (do_mesh) {
        mesh_stats_t sa;
        mesh_peer_stats(a.peer, &sa);
        printf("peer A stats: requests_out %llu replies_in %llu casts_out %llu errors_out %llu "
               "replies_late %llu envelopes_dropped %llu zre_dropped %llu; B echo errors %lu\n",
               (unsigned long long)sa.requests_out, (unsigned long long)sa.replies_in,
               (unsigned long long)sa.casts_out, (unsigned long long)sa.errors_out,
               (unsigned long long)sa.replies_late, (unsigned long long)sa.envelopes_dropped,
               (unsigned long long)sa.zre_dropped, atomic_load(&b.echo_errors));
    }
    status = 0;

stop:
    fflush(stdout);
done:
    bench_raw_echo_destroy(&raw);
    /*  B first (its thread joins), then A on this, its loop's, thread. */
    mesh_peer_destroy(&b.peer);
    mesh_peer_destroy(&a.peer);
    if (a.loop) {
        ev_loop_destroy(a.loop);
    }
    free(rtt[0]);
    free(rtt[1]);
    free(a.buf);
    return status;
}
