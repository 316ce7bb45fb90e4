/*  bench_whisper: ZRE WHISPER round trip between two nodes in one process,
    against the raw libzmq baseline measured in the same invocation.

    bench_whisper [--pin] [--runs R] [--iterations N] [--size B]
                  [--only-raw | --only-mesh] [--no-pipelined] [--no-zre-shaped]

    Node A runs on the main thread, node B on a second thread, each on its own
    libev loop driven by mesh__reactor and each with its own zmq context (as
    the raw baseline: one libzmq I/O thread per side). They discover each
    other by UDP beacons on loopback (a free port per run, 100 ms interval).
    B echoes every WHISPER back from its event callback. A works lock-step: in
    its callback it records the round trip and sends the next WHISPER; after N
    it breaks its loop. A WHISPER round trip is DEALER(A) -> ROUTER(B), then
    DEALER(B) -> ROUTER(A). The reference baseline is DEALER -> ROUTER -> the
    same DEALER: the same four threads and two TCP hops, on one connection.

    Runs are interleaved: within each run the series alternate in blocks of
    WB_BLOCK round trips (rotating which goes first), on one raw echo pair
    and one pair of nodes kept for the run, so drift on this shared machine
    (it is bimodal here, at the scale of seconds) hits every series alike.
    Each run prints p50/p99; then the median of runs, the spread, the ratios
    mesh/raw of the medians, and the ratios run by run. A second, smaller
    measure: pipelined throughput with a window of 100 WHISPERs in flight,
    against raw pipelined request/reply.

    A third series, "zre-shaped raw", is a diagnostic: plain libzmq doing
    what ZRE does on the wire (request on one TCP connection, reply on
    another, each side with its own ROUTER and DEALER; a 6-byte header frame
    before the content). mesh/zre-shaped tells what mesh's code costs (node,
    codec, reactor, libev); zre-shaped/raw what ZRE's topology and framing
    cost. --no-zre-shaped leaves it out.

    --pin pins the whole process to CPU 0: that view tracks CPU cost; the
    free view (default) tracks wake-up cost. --only-raw / --only-mesh run one
    side alone (for perf or strace of one path); no ratio is printed then. */
#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "raw_zmq.h"
#include "reactor.h"
#include "zre.h"

#define WB_DEFAULT_RUNS        5
#define WB_DEFAULT_ITERATIONS  20000
#define WB_DEFAULT_SIZE        64
#define WB_WARMUP              2000 /* per run and side, not recorded */
#define WB_BLOCK               1000 /* raw and mesh alternate in blocks of this many */
#define WB_BLOCK_WARMUP        20   /* per block and side, not recorded */
#define WB_WINDOW              100
#define WB_PIPELINED_REQUESTS  100000
#define WB_RUNS_MAX            50
#define WB_BEACON_INTERVAL_MS  100
#define WB_DISCOVERY_TIMEOUT_S 10.0
#define WB_RUN_TIMEOUT_S       60.0
/*  Liveness timers far beyond a run: A's loop is idle while the raw baseline
    runs, and no peer may turn evasive or expire meanwhile. */
#define WB_EVASIVE_MS       600000
#define WB_EXPIRED_MS       1200000
#define WB_TARGET_P50_RATIO 1.3
#define WB_SEQ_OFFSET       8 /* payload[0..7] is a marker that is not gossip */

typedef enum { WB_IDLE, WB_LOCKSTEP, WB_PIPELINED } wb_mode_t;

/*  Node B: the echo side, on its own thread. */
typedef struct {
    struct ev_loop *loop;
    mesh__zre_t *node;
    mesh__reactor_t *reactor;
    ev_async stop;
    pthread_t thread;
    atomic_bool sees_a;
    atomic_ulong echo_errors;
} wb_echo_t;

/*  Node A: the measuring side, on the main thread. */
typedef struct {
    struct ev_loop *loop;
    mesh__zre_t *node;
    mesh__reactor_t *reactor;
    const uint8_t *b_uuid;
    bool sees_b;
    wb_echo_t *echo;
    wb_mode_t mode;
    uint8_t *buf;
    size_t size;
    uint64_t seq;    /* next sequence to send */
    uint64_t expect; /* next sequence expected back */
    int warmup;      /* lock-step: round trips not recorded */
    int target;      /* replies wanted in this run */
    int received;
    int sent;
    uint64_t t_sent;
    uint64_t t_start;
    uint64_t t_end;
    uint64_t *rtt;
    int error;
    bool stopping; /* our own stop emits EXIT for B: not an error then */
    ev_timer watchdog;
    ev_timer poll;
} wb_probe_t;

static int s_whisper(wb_probe_t *a)
{
    memcpy(a->buf + WB_SEQ_OFFSET, &a->seq, sizeof a->seq);
    int rc = mesh__zre_whisper(a->node, a->b_uuid, a->buf, a->size);
    if (rc != 0) {
        fprintf(stderr, "bench_whisper: whisper: %d\n", rc);
        a->error = rc;
        ev_break(a->loop, EVBREAK_ONE);
        return rc;
    }
    a->seq++;
    a->sent++;
    return 0;
}

static void s_on_probe_event(mesh__zre_t *node, const mesh__zre_event_t *ev, void *arg)
{
    wb_probe_t *a = arg;
    if (ev->type == MESH_ZRE_EV_ENTER &&
        memcmp(mesh__zre_peer_uuid(ev->peer), a->b_uuid, MESH_ZRE_UUID_SIZE) == 0) {
        a->sees_b = true;
        return;
    }
    if (ev->type == MESH_ZRE_EV_EXIT && !a->stopping &&
        memcmp(mesh__zre_peer_uuid(ev->peer), a->b_uuid, MESH_ZRE_UUID_SIZE) == 0) {
        fprintf(stderr, "bench_whisper: B exited (%s)\n", ev->reason ? ev->reason : "?");
        a->error = -1;
        ev_break(a->loop, EVBREAK_ONE);
        return;
    }
    if (ev->type != MESH_ZRE_EV_WHISPER || a->mode == WB_IDLE) {
        return;
    }
    uint64_t now = bench_now_ns();
    uint64_t seq = 0;
    if (ev->size != a->size) {
        fprintf(stderr, "bench_whisper: echo of %zu bytes, sent %zu\n", ev->size, a->size);
        a->error = -1;
        ev_break(a->loop, EVBREAK_ONE);
        return;
    }
    memcpy(&seq, ev->data + WB_SEQ_OFFSET, sizeof seq);
    if (seq != a->expect) {
        fprintf(stderr, "bench_whisper: echo %llu, expected %llu\n", (unsigned long long)seq,
                (unsigned long long)a->expect);
        a->error = -1;
        ev_break(a->loop, EVBREAK_ONE);
        return;
    }
    a->expect++;
    if (a->mode == WB_LOCKSTEP) {
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
        s_whisper(a);
    } else {
        if (++a->received == a->target) {
            a->t_end = now;
            ev_break(a->loop, EVBREAK_ONE);
            return;
        }
        if (a->sent < a->target) {
            s_whisper(a);
        }
    }
}

static void s_on_echo_event(mesh__zre_t *node, const mesh__zre_event_t *ev, void *arg)
{
    wb_echo_t *b = arg;
    if (ev->type == MESH_ZRE_EV_ENTER) {
        atomic_store(&b->sees_a, true);
    } else if (ev->type == MESH_ZRE_EV_WHISPER) {
        if (mesh__zre_whisper(node, mesh__zre_peer_uuid(ev->peer), ev->data, ev->size) != 0) {
            atomic_fetch_add(&b->echo_errors, 1);
        }
    }
}

static void s_on_echo_stop(struct ev_loop *loop, ev_async *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static void *s_echo_thread(void *arg)
{
    wb_echo_t *b = arg;
    ev_run(b->loop, 0);
    return NULL;
}

static void s_on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
    wb_probe_t *a = w->data;
    fprintf(stderr, "bench_whisper: timed out (received %d of %d)\n", a->received, a->target);
    a->error = -1;
    ev_break(loop, EVBREAK_ONE);
}

static void s_on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    wb_probe_t *a = w->data;
    if (a->sees_b && atomic_load(&a->echo->sees_a)) {
        ev_break(loop, EVBREAK_ONE);
    }
}

/*  Runs A's loop until the probe breaks it or the watchdog fires. */
static int s_run_probe(wb_probe_t *a, double timeout_s)
{
    ev_timer_set(&a->watchdog, timeout_s, 0);
    ev_timer_start(a->loop, &a->watchdog);
    ev_run(a->loop, 0);
    ev_timer_stop(a->loop, &a->watchdog);
    return a->error;
}

static mesh__zre_t *s_node(const char *name, uint16_t beacon_port, struct ev_loop *loop)
{
    mesh__zre_config_t config;
    memset(&config, 0, sizeof config);
    config.name = name;
    config.iface = "lo";
    config.beacon_port = beacon_port;
    config.beacon_interval_ms = WB_BEACON_INTERVAL_MS;
    config.evasive_ms = WB_EVASIVE_MS;
    config.expired_ms = WB_EXPIRED_MS;
    mesh__zre_t *node = mesh__zre_new(&config, NULL);
    if (!node) {
        return NULL;
    }
    ev_now_update(loop);
    int rc = mesh__zre_start(node, mesh__reactor_now(loop));
    if (rc != 0) {
        fprintf(stderr, "bench_whisper: start %s: %d\n", name, rc);
        mesh__zre_destroy(&node);
    }
    return node;
}

static int s_mesh_lockstep(wb_probe_t *a, int warmup, int iterations, uint64_t *rtt)
{
    a->mode = WB_LOCKSTEP;
    a->warmup = warmup;
    a->target = iterations;
    a->received = 0;
    a->sent = 0;
    a->rtt = rtt;
    a->t_sent = bench_now_ns();
    if (s_whisper(a) != 0) {
        return -1;
    }
    int rc = s_run_probe(a, WB_RUN_TIMEOUT_S);
    a->mode = WB_IDLE;
    return rc;
}

/*  One run: warm every path, then alternate blocks of WB_BLOCK round trips,
    rotating which side goes first, so that whatever drifts on a shared
    machine during the run hits all sides alike. Series: 0 raw (the
    reference), 1 raw with ZRE's shape (diagnostic), 2 mesh. */
enum { WB_RAW, WB_ZRE, WB_MESH, WB_SERIES };

static int s_run_interleaved(wb_probe_t *a, const bool *on, size_t size, int iterations,
                             uint64_t **rtt)
{
    bench_raw_echo_t *raw[2] = {NULL, NULL};
    int rc = 0;
    for (int k = WB_RAW; rc == 0 && k <= WB_ZRE; k++) {
        if (on[k]) {
            raw[k] = k == WB_RAW ? bench_raw_echo_new() : bench_raw_echo_new_zre();
            if (!raw[k] || bench_raw_echo_rtt(raw[k], size, WB_WARMUP, 0, NULL) != 0) {
                rc = -1;
            }
        }
    }
    if (rc == 0 && on[WB_MESH]) {
        rc = s_mesh_lockstep(a, WB_WARMUP, 0, NULL);
    }
    for (int done = 0, block = 0; rc == 0 && done < iterations; block++) {
        int n = iterations - done < WB_BLOCK ? iterations - done : WB_BLOCK;
        for (int j = 0; rc == 0 && j < WB_SERIES; j++) {
            int k = (block + j) % WB_SERIES;
            if (!on[k]) {
                continue;
            }
            if (k == WB_MESH) {
                rc = s_mesh_lockstep(a, WB_BLOCK_WARMUP, n, rtt[k] + done);
            } else {
                rc = bench_raw_echo_rtt(raw[k], size, WB_BLOCK_WARMUP, n, rtt[k] + done);
            }
        }
        done += n;
    }
    bench_raw_echo_destroy(&raw[WB_RAW]);
    bench_raw_echo_destroy(&raw[WB_ZRE]);
    return rc;
}

static int s_mesh_pipelined(wb_probe_t *a, int window, int requests, double *req_per_s)
{
    /*  The lock-step runs before have warmed the path. */
    a->mode = WB_PIPELINED;
    a->target = requests;
    a->received = 0;
    a->sent = 0;
    a->t_start = bench_now_ns();
    for (int i = 0; i < window && i < requests; i++) {
        if (s_whisper(a) != 0) {
            return -1;
        }
    }
    int rc = s_run_probe(a, WB_RUN_TIMEOUT_S);
    a->mode = WB_IDLE;
    if (rc == 0) {
        *req_per_s = (double)requests / ((double)(a->t_end - a->t_start) / 1e9);
    }
    return rc;
}

static void s_print_lat(const char *what, long run, uint64_t *rtt, int n, double *p50, double *p99)
{
    bench_lat_t lat;
    bench_lat_summarize(rtt, (size_t)n, &lat);
    *p50 = (double)lat.p50 / 1e3;
    *p99 = (double)lat.p99 / 1e3;
    printf("run %ld %-14s: rtt p50 %7.1f us  p99 %7.1f us  (min %.1f, mean %.1f, max %.1f)\n", run,
           what, *p50, *p99, (double)lat.min / 1e3, lat.mean / 1e3, (double)lat.max / 1e3);
    fflush(stdout);
}

static void s_print_median(const char *what, const double *v, long runs, const char *unit)
{
    double lo, hi;
    bench_minmax(v, (size_t)runs, &lo, &hi);
    printf("%s %.1f %s (runs %.1f..%.1f)", what, bench_median(v, (size_t)runs), unit, lo, hi);
}

int main(int argc, char **argv)
{
    long runs = WB_DEFAULT_RUNS, iterations = WB_DEFAULT_ITERATIONS, size = WB_DEFAULT_SIZE;
    int pin = 0;
    bool do_raw = true, do_mesh = true, do_pipe = true, do_cross = true;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pin") == 0) {
            pin = 1;
        } else if (strcmp(argv[i], "--only-raw") == 0) {
            do_mesh = false;
        } else if (strcmp(argv[i], "--only-mesh") == 0) {
            do_raw = false;
        } else if (strcmp(argv[i], "--no-pipelined") == 0) {
            do_pipe = false;
        } else if (strcmp(argv[i], "--no-zre-shaped") == 0) {
            do_cross = false;
        } else if (bench_arg_int(argc, argv, &i, "--runs", &runs) ||
                   bench_arg_int(argc, argv, &i, "--iterations", &iterations) ||
                   bench_arg_int(argc, argv, &i, "--size", &size)) {
            continue;
        } else {
            fprintf(stderr, "usage: bench_whisper [--pin] [--runs R] [--iterations N] [--size B]\n"
                            "                     [--only-raw | --only-mesh] [--no-pipelined]\n"
                            "                     [--no-zre-shaped]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > WB_RUNS_MAX || iterations < 1 || size < WB_SEQ_OFFSET + 8) {
        fprintf(stderr, "bench_whisper: runs 1..%d, iterations >= 1, size >= %d\n", WB_RUNS_MAX,
                WB_SEQ_OFFSET + 8);
        return 2;
    }
    /*  Before any thread exists, so libzmq's and B's threads inherit it. */
    if (pin && bench_pin_process(0) != 0) {
        fprintf(stderr, "bench_whisper: cannot pin to CPU 0\n");
        return 1;
    }
    uint16_t beacon_port = bench_free_udp_port();
    printf("# WHISPER round trip vs raw libzmq, tcp loopback, %ld B, %ld iterations after %d "
           "warm-up, %ld runs each, placement: %s, beacon port %u\n",
           size, iterations, WB_WARMUP, runs, pin ? "pinned (CPU 0)" : "free", beacon_port);

    int status = 1;
    wb_echo_t b;
    wb_probe_t a;
    memset(&b, 0, sizeof b);
    memset(&a, 0, sizeof a);
    uint64_t *rtt = malloc((size_t)iterations * sizeof *rtt);
    uint64_t *mesh_rtt = malloc((size_t)iterations * sizeof *mesh_rtt);
    uint64_t *cross_rtt = malloc((size_t)iterations * sizeof *cross_rtt);
    a.buf = calloc(1, (size_t)size);
    if (!rtt || !mesh_rtt || !cross_rtt || !a.buf || beacon_port == 0) {
        goto done;
    }
    memcpy(a.buf, "BENCHWB", 7); /* never looks like a gossip frame */
    a.size = (size_t)size;
    a.echo = &b;

    b.loop = ev_loop_new(EVFLAG_AUTO);
    a.loop = ev_loop_new(EVFLAG_AUTO);
    if (!a.loop || !b.loop) {
        goto done;
    }
    b.node = s_node("bench-b", beacon_port, b.loop);
    a.node = s_node("bench-a", beacon_port, a.loop);
    if (!a.node || !b.node) {
        goto done;
    }
    a.b_uuid = mesh__zre_uuid(b.node);
    mesh__zre_set_handler(b.node, s_on_echo_event, &b);
    mesh__zre_set_handler(a.node, s_on_probe_event, &a);
    b.reactor = mesh__reactor_new(b.loop, b.node);
    a.reactor = mesh__reactor_new(a.loop, a.node);
    if (!a.reactor || !b.reactor) {
        goto done;
    }
    ev_async_init(&b.stop, s_on_echo_stop);
    ev_async_start(b.loop, &b.stop);
    ev_timer_init(&a.watchdog, s_on_watchdog, 0, 0);
    a.watchdog.data = &a;
    ev_timer_init(&a.poll, s_on_poll, 0.01, 0.01);
    a.poll.data = &a;
    /*  B and its loop belong to B's thread from here on. */
    if (pthread_create(&b.thread, NULL, s_echo_thread, &b) != 0) {
        goto done;
    }

    uint64_t t0 = bench_now_ns();
    ev_timer_start(a.loop, &a.poll);
    int rc = s_run_probe(&a, WB_DISCOVERY_TIMEOUT_S);
    ev_timer_stop(a.loop, &a.poll);
    if (rc != 0 || !a.sees_b) {
        fprintf(stderr, "bench_whisper: discovery failed\n");
        goto stop;
    }
    printf("discovery: both nodes ready after %.1f ms\n", (double)(bench_now_ns() - t0) / 1e6);

    static const char *const names[WB_SERIES] = {"raw", "zre-shaped raw", "mesh"};
    double p50[WB_SERIES][WB_RUNS_MAX], p99[WB_SERIES][WB_RUNS_MAX];
    double rawpipe[WB_RUNS_MAX], meshpipe[WB_RUNS_MAX];
    const bool on[WB_SERIES] = {do_raw, do_raw && do_cross, do_mesh};
    uint64_t *series_rtt[WB_SERIES] = {rtt, cross_rtt, mesh_rtt};
    for (long r = 0; r < runs; r++) {
        if (s_run_interleaved(&a, on, (size_t)size, (int)iterations, series_rtt) != 0) {
            goto stop;
        }
        for (int k = 0; k < WB_SERIES; k++) {
            if (on[k]) {
                s_print_lat(names[k], r + 1, series_rtt[k], (int)iterations, &p50[k][r],
                            &p99[k][r]);
            }
        }
    }
    double *raw50 = p50[WB_RAW], *raw99 = p99[WB_RAW];
    double *mesh50 = p50[WB_MESH], *mesh99 = p99[WB_MESH];
    double crosspipe[WB_RUNS_MAX];
    for (long r = 0; do_pipe && r < runs; r++) {
        rawpipe[r] = meshpipe[r] = crosspipe[r] = 0;
        for (int k = WB_RAW; k <= WB_ZRE; k++) {
            if (!on[k]) {
                continue;
            }
            bench_raw_echo_t *echo = k == WB_RAW ? bench_raw_echo_new() : bench_raw_echo_new_zre();
            int prc = echo ? bench_raw_echo_pipelined(echo, (size_t)size, WB_WINDOW,
                                                      WB_PIPELINED_REQUESTS,
                                                      k == WB_RAW ? &rawpipe[r] : &crosspipe[r])
                           : -1;
            bench_raw_echo_destroy(&echo);
            if (prc != 0) {
                goto stop;
            }
        }
        if (do_mesh && s_mesh_pipelined(&a, WB_WINDOW, WB_PIPELINED_REQUESTS, &meshpipe[r]) != 0) {
            goto stop;
        }
        printf("run %ld pipelined w%d: raw %8.0f req/s  zre-shaped raw %8.0f req/s  mesh %8.0f "
               "req/s",
               r + 1, WB_WINDOW, rawpipe[r], crosspipe[r], meshpipe[r]);
        if (do_raw && do_mesh) {
            printf("  (mesh/raw %.2f)", meshpipe[r] / rawpipe[r]);
        }
        printf("\n");
        fflush(stdout);
    }

    printf("\n== summary (%s) ==\n", pin ? "pinned (CPU 0)" : "free");
    if (do_raw) {
        s_print_median("raw  median p50", raw50, runs, "us");
        s_print_median("  p99", raw99, runs, "us");
        printf("\n");
    }
    if (on[WB_ZRE]) {
        s_print_median("zre-shaped raw median p50", p50[WB_ZRE], runs, "us");
        s_print_median("  p99", p99[WB_ZRE], runs, "us");
        printf("\n");
    }
    if (do_mesh) {
        s_print_median("mesh median p50", mesh50, runs, "us");
        s_print_median("  p99", mesh99, runs, "us");
        printf("\n");
    }
    if (do_raw && do_mesh) {
        double r50 = bench_median(mesh50, (size_t)runs) / bench_median(raw50, (size_t)runs);
        double r99 = bench_median(mesh99, (size_t)runs) / bench_median(raw99, (size_t)runs);
        printf("ratio mesh/raw: p50 %.2fx  (target <= %.1fx: %s)   p99 %.2fx\n", r50,
               WB_TARGET_P50_RATIO, r50 <= WB_TARGET_P50_RATIO ? "met" : "NOT met", r99);
        printf("paired ratios (run by run) p50:");
        for (long r = 0; r < runs; r++) {
            printf(" %.2f", mesh50[r] / raw50[r]);
        }
        printf("   p99:");
        for (long r = 0; r < runs; r++) {
            printf(" %.2f", mesh99[r] / raw99[r]);
        }
        printf("\n");
    }
    if (on[WB_ZRE] && do_mesh) {
        double c50 = bench_median(p50[WB_ZRE], (size_t)runs);
        printf("diagnostic: zre-shaped raw/raw p50 %.2fx (ZRE's topology and framing); "
               "mesh/zre-shaped raw p50 %.2fx (mesh's code)\n",
               c50 / bench_median(raw50, (size_t)runs), bench_median(mesh50, (size_t)runs) / c50);
    }
    if (do_pipe) {
        double rp = bench_median(meshpipe, (size_t)runs);
        double rr = bench_median(rawpipe, (size_t)runs);
        double rx = bench_median(crosspipe, (size_t)runs);
        printf("pipelined w%d median: raw %.0f req/s  zre-shaped raw %.0f req/s  mesh %.0f req/s",
               WB_WINDOW, rr, rx, rp);
        if (do_raw && do_mesh) {
            printf("  ratio mesh/raw %.2f", rp / rr);
        }
        if (on[WB_ZRE] && do_mesh) {
            printf("  mesh/zre-shaped %.2f", rp / rx);
        }
        printf("\n");
    }
    const mesh__zre_stats_t *sa = mesh__zre_stats(a.node);
    printf("node A stats: msgs_received %llu  sequence_gaps %llu  send_dropped %llu  "
           "malformed %llu; B echo errors %lu\n",
           (unsigned long long)sa->msgs_received, (unsigned long long)sa->sequence_gaps,
           (unsigned long long)sa->send_dropped, (unsigned long long)sa->msgs_malformed,
           atomic_load(&b.echo_errors));
    status = 0;

stop:
    fflush(stdout);
    a.stopping = true;
    ev_async_send(b.loop, &b.stop);
    pthread_join(b.thread, NULL);
done:
    mesh__reactor_destroy(&a.reactor);
    mesh__reactor_destroy(&b.reactor);
    if (a.node) {
        mesh__zre_stop(a.node);
    }
    if (b.node) {
        mesh__zre_stop(b.node);
    }
    mesh__zre_destroy(&a.node);
    mesh__zre_destroy(&b.node);
    if (a.loop) {
        ev_loop_destroy(a.loop);
    }
    if (b.loop) {
        ev_loop_destroy(b.loop);
    }
    free(rtt);
    free(mesh_rtt);
    free(cross_rtt);
    free(a.buf);
    return status;
}
