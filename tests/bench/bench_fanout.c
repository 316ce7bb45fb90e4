/*  bench_fanout: mesh_peer_fanout to 10 peer processes and gather, against
    a raw libzmq fan-out to 10 echo processes measured in the same run.

    bench_fanout [--pin] [--runs R] [--iterations N] [--peers P] [--size B]
                 [--only-raw | --only-mesh]

    The bench forks P children (default 10) that each create a mesh peer
    (same realm, same beacon port, a free one per run) exposing /bench/echo
    (reply with the payload) and run until SIGTERM; and P raw children that
    each bind a ROUTER on tcp://127.0.0.1:* (port reported through a pipe)
    and echo every message back. Then the parent creates its own peer on its
    main thread's libev loop, waits until its routing table
    (mesh_peer_routes) lists P alive providers of /bench/echo, and measures
    lock-step fan-outs of B bytes (64 by default):

      mesh: mesh_peer_fanout(/bench/echo) .. the gather callback (every
            provider answered, or the 1 s deadline passed);
      raw:  one DEALER connected to the P echo processes sends P copies
            (libzmq round-robins them, one per connection) and receives P
            replies (each child stamps its index into the reply, so a gather
            is complete only with one reply from each child).

    Runs interleave raw and mesh in blocks of BF_BLOCK fan-outs, rotating
    which goes first. Each run prints p50/p99 of the gather time and how
    many gathers were complete (P replies, all successful); then the median
    of runs, the spread and the ratio mesh/raw.

    Children are sent SIGTERM and reaped on every exit path (the parent's
    SIGINT/SIGTERM/SIGHUP included); each child also has PR_SET_PDEATHSIG,
    so a parent that crashes takes them along. --pin pins everything to
    CPU 0 before the first fork (children inherit it). */
#include <mesh/mesh.h>

#include <errno.h>
#include <ev.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "bench_util.h"

#define BF_DEFAULT_RUNS        5
#define BF_DEFAULT_ITERATIONS  1500
#define BF_DEFAULT_PEERS       10
#define BF_DEFAULT_SIZE        64
#define BF_PEERS_MAX           64
#define BF_RUNS_MAX            50
#define BF_BLOCK               100 /* raw and mesh alternate in blocks of this many fan-outs */
#define BF_BLOCK_WARMUP        5   /* per block and side, not recorded */
#define BF_WARMUP              300 /* per side before the first run, not recorded */
#define BF_GATHER_TIMEOUT_MS   1000
#define BF_BEACON_INTERVAL_MS  200
#define BF_DISCOVERY_TIMEOUT_S 20.0
#define BF_BLOCK_TIMEOUT_S     60.0
#define BF_CHILD_START_S       10.0
#define BF_EVASIVE_MS          600000
#define BF_EXPIRED_MS          1200000
#define BF_PING_TIMEOUT_MS     600000
#define BF_SEQ_OFFSET          8  /* payload[8..15]: sequence number */
#define BF_IDX_OFFSET          16 /* payload[16]: raw child's index, stamped into its reply */
#define BF_PATH                "/bench/echo"
#define BF_REALM               "bench-fanout"
#define BF_ENDPOINT_MAX        64

/* ------------------------------------------------------------------------ */
/* children */

static pid_t s_children[2 * BF_PEERS_MAX];
static volatile sig_atomic_t s_nchildren;
static pid_t s_parent;

/*  SIGTERM to every child, then reap them (SIGKILL after 3 s). */
static void s_reap_children(void)
{
    if (getpid() != s_parent) {
        return;
    }
    int n = s_nchildren;
    for (int i = 0; i < n; i++) {
        if (s_children[i] > 0) {
            kill(s_children[i], SIGTERM);
        }
    }
    uint64_t deadline = bench_now_ns() + 3000000000ull;
    int left = 0;
    do {
        left = 0;
        for (int i = 0; i < n; i++) {
            if (s_children[i] <= 0) {
                continue;
            }
            pid_t w = waitpid(s_children[i], NULL, WNOHANG);
            if (w == s_children[i] || (w < 0 && errno == ECHILD)) {
                s_children[i] = 0;
            } else {
                left++;
            }
        }
        if (left) {
            usleep(10000);
        }
    } while (left && bench_now_ns() < deadline);
    for (int i = 0; i < n; i++) {
        if (s_children[i] > 0) {
            fprintf(stderr, "bench_fanout: child %d did not exit on SIGTERM: SIGKILL\n",
                    (int)s_children[i]);
            kill(s_children[i], SIGKILL);
            waitpid(s_children[i], NULL, 0);
            s_children[i] = 0;
        }
    }
    s_nchildren = 0;
}

static void s_on_parent_signal(int sig)
{
    int n = s_nchildren;
    for (int i = 0; i < n; i++) {
        if (s_children[i] > 0) {
            kill(s_children[i], SIGTERM);
        }
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/*  In a child: die with the parent. */
static void s_child_setup(void)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != s_parent) {
        _exit(0);
    }
    signal(SIGINT, SIG_IGN); /* ^C goes to the parent, which terminates us */
    signal(SIGHUP, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
}

static void s_on_child_echo(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    mesh_request_reply(req, mesh_request_data(req), mesh_request_size(req));
}

static void s_on_child_term(struct ev_loop *loop, ev_signal *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

/*  A mesh child: a peer exposing /bench/echo until SIGTERM. */
static void s_mesh_child(int idx, uint16_t beacon_port)
{
    s_child_setup();
    char name[32];
    snprintf(name, sizeof name, "fan-%02d", idx);
    mesh_config_t c;
    mesh_config_init(&c);
    c.name = name;
    c.realm = BF_REALM;
    c.iface = "lo";
    c.beacon_port = beacon_port;
    c.beacon_interval_ms = BF_BEACON_INTERVAL_MS;
    c.evasive_ms = BF_EVASIVE_MS;
    c.expired_ms = BF_EXPIRED_MS;
    c.ping_timeout_ms = BF_PING_TIMEOUT_MS;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    mesh_peer_t *peer = loop ? mesh_peer_new(&c) : NULL;
    int rc = peer ? mesh_peer_expose(peer, BF_PATH, s_on_child_echo, NULL, NULL) : -1;
    rc = rc == 0 ? mesh_peer_attach(peer, loop) : rc;
    if (rc != 0) {
        fprintf(stderr, "bench_fanout: child %s: start: %s\n", name, mesh_strerror(rc));
        _exit(1);
    }
    ev_signal term;
    ev_signal_init(&term, s_on_child_term, SIGTERM);
    ev_signal_start(loop, &term);
    ev_run(loop, 0);
    ev_signal_stop(loop, &term);
    mesh_peer_destroy(&peer);
    ev_loop_destroy(loop);
    _exit(0);
}

/*  A raw child: a ROUTER echo that stamps its index into every reply.
    Reports its endpoint on fd, then echoes until killed. */
static void s_raw_child(int idx, int fd)
{
    s_child_setup();
    void *ctx = zmq_ctx_new();
    void *router = ctx ? zmq_socket(ctx, ZMQ_ROUTER) : NULL;
    char endpoint[BF_ENDPOINT_MAX] = "";
    size_t len = sizeof endpoint;
    if (!router || zmq_bind(router, "tcp://127.0.0.1:*") != 0 ||
        zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, endpoint, &len) != 0) {
        fprintf(stderr, "bench_fanout: raw child %d: %s\n", idx, zmq_strerror(zmq_errno()));
        _exit(1);
    }
    if (write(fd, endpoint, sizeof endpoint) != (ssize_t)sizeof endpoint) {
        _exit(1);
    }
    close(fd);
    zmq_msg_t id, body;
    zmq_msg_init(&id);
    zmq_msg_init(&body);
    for (;;) {
        if (zmq_msg_recv(&id, router, 0) < 0 || zmq_msg_recv(&body, router, 0) < 0) {
            if (zmq_errno() == EINTR) {
                continue;
            }
            break;
        }
        if (zmq_msg_size(&body) > BF_IDX_OFFSET) {
            ((uint8_t *)zmq_msg_data(&body))[BF_IDX_OFFSET] = (uint8_t)idx;
        }
        if (zmq_msg_send(&id, router, ZMQ_SNDMORE) < 0 || zmq_msg_send(&body, router, 0) < 0) {
            break;
        }
    }
    _exit(0);
}

/* ------------------------------------------------------------------------ */
/* the raw fan-out */

typedef struct {
    void *ctx;
    void *dealer;
    int npeers;
    uint64_t seq;
} bf_raw_t;

/*  One fan-out: P copies out, P replies back. *complete when every child
    answered once. Replies to an earlier (timed-out) fan-out are skipped. */
static int s_raw_fanout(bf_raw_t *raw, uint8_t *buf, size_t size, uint64_t *ns, bool *complete)
{
    uint64_t seq = raw->seq++;
    memcpy(buf + BF_SEQ_OFFSET, &seq, sizeof seq);
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < raw->npeers; i++) {
        if (zmq_send(raw->dealer, buf, size, 0) < 0) {
            fprintf(stderr, "bench_fanout: raw send: %s\n", zmq_strerror(zmq_errno()));
            return -1;
        }
    }
    uint64_t seen = 0;
    int got = 0;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    while (got < raw->npeers) {
        if (zmq_msg_recv(&msg, raw->dealer, 0) < 0) {
            if (zmq_errno() == EAGAIN) {
                break; /* BF_GATHER_TIMEOUT_MS without a reply: incomplete */
            }
            fprintf(stderr, "bench_fanout: raw recv: %s\n", zmq_strerror(zmq_errno()));
            zmq_msg_close(&msg);
            return -1;
        }
        uint64_t back = 0;
        const uint8_t *d = zmq_msg_data(&msg);
        if (zmq_msg_size(&msg) != size) {
            continue;
        }
        memcpy(&back, d + BF_SEQ_OFFSET, sizeof back);
        if (back != seq) {
            continue; /* late reply to an earlier fan-out */
        }
        seen |= 1ull << (d[BF_IDX_OFFSET] % 64);
        got++;
    }
    *ns = bench_now_ns() - t0;
    zmq_msg_close(&msg);
    *complete = got == raw->npeers && seen == (raw->npeers == 64 ? ~0ull
                                                                : (1ull << raw->npeers) - 1);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* the mesh fan-out (parent's peer, on the main thread's loop) */

typedef struct {
    struct ev_loop *loop;
    mesh_peer_t *peer;
    int npeers;
    uint8_t *buf;
    size_t size;
    uint64_t seq;
    int warmup;
    int target;
    int done;
    int complete;
    uint64_t t_sent;
    uint64_t *ns;
    int error;
    ev_timer watchdog;
    ev_timer poll;
    int providers;
} bf_mesh_t;

static void s_on_gather(mesh_peer_t *peer, const mesh_gather_t *g, void *arg);

static int s_mesh_send(bf_mesh_t *m)
{
    memcpy(m->buf + BF_SEQ_OFFSET, &m->seq, sizeof m->seq);
    mesh_call_opts_t opts;
    memset(&opts, 0, sizeof opts);
    opts.timeout_ms = BF_GATHER_TIMEOUT_MS;
    m->t_sent = bench_now_ns();
    int rc = mesh_peer_fanout(m->peer, BF_PATH, m->buf, m->size, &opts, s_on_gather, m);
    if (rc != 0) {
        fprintf(stderr, "bench_fanout: mesh_peer_fanout: %s\n", mesh_strerror(rc));
        m->error = rc;
        ev_break(m->loop, EVBREAK_ONE);
    }
    return rc;
}

static void s_on_gather(mesh_peer_t *peer, const mesh_gather_t *g, void *arg)
{
    bf_mesh_t *m = arg;
    uint64_t now = bench_now_ns();
    if (m->error) {
        return;
    }
    bool complete = g->nreplies == (size_t)m->npeers && g->nmissing == 0;
    for (size_t i = 0; complete && i < g->nreplies; i++) {
        uint64_t back = 0;
        const mesh_reply_t *r = &g->replies[i];
        if (r->status != 0 || r->size != m->size) {
            complete = false;
            break;
        }
        memcpy(&back, (const uint8_t *)r->data + BF_SEQ_OFFSET, sizeof back);
        complete = back == m->seq;
    }
    m->seq++;
    if (m->warmup > 0) {
        m->warmup--;
    } else {
        m->ns[m->done++] = now - m->t_sent;
        m->complete += complete;
    }
    if (m->done == m->target) {
        ev_break(m->loop, EVBREAK_ONE);
        return;
    }
    s_mesh_send(m);
}

static void s_on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
    bf_mesh_t *m = w->data;
    fprintf(stderr, "bench_fanout: timed out (%d of %d fan-outs, %d providers)\n", m->done,
            m->target, m->providers);
    m->error = -1;
    ev_break(loop, EVBREAK_ONE);
}

static void s_count_provider(const mesh_route_info_t *r, void *arg)
{
    int *n = arg;
    if (!r->is_self && r->alive && r->path && strcmp(r->path, BF_PATH) == 0) {
        (*n)++;
    }
}

static void s_on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    bf_mesh_t *m = w->data;
    int n = 0;
    mesh_peer_routes(m->peer, s_count_provider, &n);
    m->providers = n;
    if (n >= m->npeers) {
        ev_break(loop, EVBREAK_ONE);
    }
}

static int s_run(bf_mesh_t *m, double timeout_s)
{
    ev_timer_set(&m->watchdog, timeout_s, 0);
    ev_timer_start(m->loop, &m->watchdog);
    ev_run(m->loop, 0);
    ev_timer_stop(m->loop, &m->watchdog);
    return m->error;
}

/*  `warmup` fan-outs not recorded, then `n` recorded into ns[]. */
static int s_mesh_block(bf_mesh_t *m, int warmup, int n, uint64_t *ns)
{
    m->warmup = warmup;
    m->target = n;
    m->done = 0;
    m->ns = ns;
    if (warmup + n == 0) {
        return 0;
    }
    if (n == 0) {
        /* warm-up only */
        uint64_t *scratch = malloc((size_t)warmup * sizeof *scratch);
        if (!scratch) {
            return -1;
        }
        m->warmup = 0;
        m->target = warmup;
        m->ns = scratch;
        int saved = m->complete;
        int rc = s_mesh_send(m) == 0 ? s_run(m, BF_BLOCK_TIMEOUT_S) : -1;
        m->complete = saved;
        free(scratch);
        return rc;
    }
    return s_mesh_send(m) == 0 ? s_run(m, BF_BLOCK_TIMEOUT_S) : -1;
}

/* ------------------------------------------------------------------------ */

static void s_print_lat(long run, const char *what, uint64_t *ns, int n, int complete, double *p50,
                        double *p99)
{
    bench_lat_t lat;
    bench_lat_summarize(ns, (size_t)n, &lat);
    *p50 = (double)lat.p50 / 1e3;
    *p99 = (double)lat.p99 / 1e3;
    printf("run %ld %-4s fan-out+gather: p50 %7.1f us  p99 %7.1f us  (min %.1f, mean %.1f, max "
           "%.1f)  complete %d/%d\n",
           run, what, *p50, *p99, (double)lat.min / 1e3, lat.mean / 1e3, (double)lat.max / 1e3,
           complete, n);
    fflush(stdout);
}

static void s_print_median(const char *what, const double *v, long runs)
{
    double lo, hi;
    bench_minmax(v, (size_t)runs, &lo, &hi);
    printf("%s %.1f us (runs %.1f..%.1f)", what, bench_median(v, (size_t)runs), lo, hi);
}

enum { BF_RAW, BF_MESH, BF_SERIES };

int main(int argc, char **argv)
{
    long runs = BF_DEFAULT_RUNS, iterations = BF_DEFAULT_ITERATIONS;
    long npeers = BF_DEFAULT_PEERS, size = BF_DEFAULT_SIZE;
    bool pin = false, do_raw = true, do_mesh = true;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pin") == 0) {
            pin = true;
        } else if (strcmp(argv[i], "--only-raw") == 0) {
            do_mesh = false;
        } else if (strcmp(argv[i], "--only-mesh") == 0) {
            do_raw = false;
        } else if (bench_arg_int(argc, argv, &i, "--runs", &runs) ||
                   bench_arg_int(argc, argv, &i, "--iterations", &iterations) ||
                   bench_arg_int(argc, argv, &i, "--peers", &npeers) ||
                   bench_arg_int(argc, argv, &i, "--size", &size)) {
            continue;
        } else {
            fprintf(stderr, "usage: bench_fanout [--pin] [--runs R] [--iterations N] [--peers P]\n"
                            "                    [--size B] [--only-raw | --only-mesh]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > BF_RUNS_MAX || iterations < 1 || npeers < 1 ||
        npeers > BF_PEERS_MAX || size <= BF_IDX_OFFSET || size > 1 << 20 ||
        (!do_raw && !do_mesh)) {
        fprintf(stderr, "bench_fanout: runs 1..%d, iterations >= 1, peers 1..%d, size %d..1 MiB\n",
                BF_RUNS_MAX, BF_PEERS_MAX, BF_IDX_OFFSET + 1);
        return 2;
    }
    s_parent = getpid();
    if (pin && bench_pin_process(0) != 0) {
        fprintf(stderr, "bench_fanout: cannot pin to CPU 0\n");
        return 1;
    }
    const char *placement = pin ? "pinned (CPU 0, children too)" : "free";
    uint16_t beacon_port = bench_free_udp_port();
    if (beacon_port == 0) {
        return 1;
    }
    printf("# fan-out + gather to %ld peer processes vs raw libzmq fan-out to %ld echo processes, "
           "tcp loopback, %ld B, %ld fan-outs per run and side (blocks of %d), %ld runs, "
           "placement: %s, beacon port %u\n",
           npeers, npeers, size, iterations, BF_BLOCK, runs, placement, beacon_port);
    fflush(stdout);
    fflush(stderr);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_parent_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    atexit(s_reap_children);

    int status = 1;
    bf_raw_t raw;
    bf_mesh_t m;
    memset(&raw, 0, sizeof raw);
    memset(&m, 0, sizeof m);
    uint64_t *ns[BF_SERIES] = {malloc((size_t)iterations * sizeof(uint64_t)),
                               malloc((size_t)iterations * sizeof(uint64_t))};
    uint8_t *rawbuf = calloc(1, (size_t)size);
    m.buf = calloc(1, (size_t)size);
    if (!ns[0] || !ns[1] || !rawbuf || !m.buf) {
        goto done;
    }
    memcpy(m.buf, "BENCHBF", 7);
    memcpy(rawbuf, "BENCHBF", 7);
    m.size = (size_t)size;
    m.npeers = (int)npeers;
    raw.npeers = (int)npeers;

    /*  Every fork before the parent has any thread (zmq contexts, peers). */
    uint64_t t_fork = bench_now_ns();
    int raw_fds[BF_PEERS_MAX];
    for (int i = 0; do_mesh && i < npeers; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("bench_fanout: fork");
            goto done;
        }
        if (pid == 0) {
            s_mesh_child(i, beacon_port);
        }
        s_children[s_nchildren++] = pid;
    }
    for (int i = 0; do_raw && i < npeers; i++) {
        int p[2];
        if (pipe(p) != 0) {
            perror("bench_fanout: pipe");
            goto done;
        }
        pid_t pid = fork();
        if (pid < 0) {
            perror("bench_fanout: fork");
            goto done;
        }
        if (pid == 0) {
            close(p[0]);
            for (int k = 0; k < i; k++) {
                close(raw_fds[k]);
            }
            s_raw_child(i, p[1]);
        }
        close(p[1]);
        raw_fds[i] = p[0];
        s_children[s_nchildren++] = pid;
    }

    /*  The raw side: one DEALER to every raw child. */
    if (do_raw) {
        raw.ctx = zmq_ctx_new();
        raw.dealer = raw.ctx ? zmq_socket(raw.ctx, ZMQ_DEALER) : NULL;
        int timeout = BF_GATHER_TIMEOUT_MS, zero = 0;
        if (!raw.dealer || zmq_setsockopt(raw.dealer, ZMQ_RCVTIMEO, &timeout, sizeof timeout) ||
            zmq_setsockopt(raw.dealer, ZMQ_LINGER, &zero, sizeof zero)) {
            goto done;
        }
        for (int i = 0; i < npeers; i++) {
            char endpoint[BF_ENDPOINT_MAX];
            struct pollfd pfd = {raw_fds[i], POLLIN, 0};
            if (poll(&pfd, 1, (int)(BF_CHILD_START_S * 1000)) != 1 ||
                read(raw_fds[i], endpoint, sizeof endpoint) != (ssize_t)sizeof endpoint) {
                fprintf(stderr, "bench_fanout: raw child %d did not report its endpoint\n", i);
                goto done;
            }
            close(raw_fds[i]);
            endpoint[sizeof endpoint - 1] = '\0';
            if (zmq_connect(raw.dealer, endpoint) != 0) {
                goto done;
            }
        }
    }

    /*  The mesh side: our peer on this thread's loop. */
    if (do_mesh) {
        m.loop = ev_loop_new(EVFLAG_AUTO);
        mesh_config_t c;
        mesh_config_init(&c);
        c.name = "fan-parent";
        c.realm = BF_REALM;
        c.iface = "lo";
        c.beacon_port = beacon_port;
        c.beacon_interval_ms = BF_BEACON_INTERVAL_MS;
        c.evasive_ms = BF_EVASIVE_MS;
        c.expired_ms = BF_EXPIRED_MS;
        c.ping_timeout_ms = BF_PING_TIMEOUT_MS;
        m.peer = m.loop ? mesh_peer_new(&c) : NULL;
        int rc = m.peer ? mesh_peer_attach(m.peer, m.loop) : -1;
        if (rc != 0) {
            fprintf(stderr, "bench_fanout: parent peer: %s\n", mesh_strerror(rc));
            goto done;
        }
        ev_timer_init(&m.watchdog, s_on_watchdog, 0, 0);
        m.watchdog.data = &m;
        ev_timer_init(&m.poll, s_on_poll, 0.01, 0.01);
        m.poll.data = &m;
        ev_timer_start(m.loop, &m.poll);
        rc = s_run(&m, BF_DISCOVERY_TIMEOUT_S);
        ev_timer_stop(m.loop, &m.poll);
        if (rc != 0) {
            fprintf(stderr, "bench_fanout: discovery: %d of %ld providers after %.0f s\n",
                    m.providers, npeers, BF_DISCOVERY_TIMEOUT_S);
            goto done;
        }
        printf("discovery: %d providers of %s in the routing table %.0f ms after the first fork\n",
               m.providers, BF_PATH, (double)(bench_now_ns() - t_fork) / 1e6);
    }

    /*  Warm-up: both sides until a fan-out is complete, then BF_WARMUP more. */
    for (int k = 0; k < BF_SERIES; k++) {
        bool ok = k == BF_RAW ? !do_raw : !do_mesh;
        for (int tries = 0; !ok && tries < 20; tries++) {
            if (k == BF_RAW) {
                uint64_t t;
                if (s_raw_fanout(&raw, rawbuf, (size_t)size, &t, &ok) != 0) {
                    goto done;
                }
            } else {
                uint64_t t;
                m.complete = 0;
                if (s_mesh_block(&m, 0, 1, &t) != 0) {
                    goto done;
                }
                ok = m.complete == 1;
            }
        }
        if (!ok) {
            fprintf(stderr, "bench_fanout: no complete %s fan-out in 20 tries\n",
                    k == BF_RAW ? "raw" : "mesh");
            goto done;
        }
    }
    for (int i = 0; do_raw && i < BF_WARMUP; i++) {
        uint64_t t;
        bool ok;
        if (s_raw_fanout(&raw, rawbuf, (size_t)size, &t, &ok) != 0) {
            goto done;
        }
    }
    if (do_mesh && s_mesh_block(&m, BF_WARMUP, 0, NULL) != 0) {
        goto done;
    }

    static const char *const names[BF_SERIES] = {"raw", "mesh"};
    const bool on[BF_SERIES] = {do_raw, do_mesh};
    double p50[BF_SERIES][BF_RUNS_MAX] = {{0}}, p99[BF_SERIES][BF_RUNS_MAX] = {{0}};
    long complete_total[BF_SERIES] = {0, 0};
    for (long r = 0; r < runs; r++) {
        int complete[BF_SERIES] = {0, 0};
        for (int done = 0, block = 0; done < iterations; block++) {
            int n = iterations - done < BF_BLOCK ? (int)iterations - done : BF_BLOCK;
            for (int j = 0; j < BF_SERIES; j++) {
                int k = (block + j) % BF_SERIES;
                if (!on[k]) {
                    continue;
                }
                if (k == BF_MESH) {
                    m.complete = 0;
                    if (s_mesh_block(&m, BF_BLOCK_WARMUP, n, ns[k] + done) != 0) {
                        goto done;
                    }
                    complete[k] += m.complete;
                    continue;
                }
                for (int i = 0; i < BF_BLOCK_WARMUP + n; i++) {
                    uint64_t t;
                    bool ok;
                    if (s_raw_fanout(&raw, rawbuf, (size_t)size, &t, &ok) != 0) {
                        goto done;
                    }
                    if (i >= BF_BLOCK_WARMUP) {
                        ns[k][done + i - BF_BLOCK_WARMUP] = t;
                        complete[k] += ok;
                    }
                }
            }
            done += n;
        }
        for (int k = 0; k < BF_SERIES; k++) {
            if (on[k]) {
                s_print_lat(r + 1, names[k], ns[k], (int)iterations, complete[k], &p50[k][r],
                            &p99[k][r]);
                complete_total[k] += complete[k];
            }
        }
    }

    printf("\n== summary (%s, %ld peers) ==\n", placement, npeers);
    for (int k = 0; k < BF_SERIES; k++) {
        if (!on[k]) {
            continue;
        }
        char what[64];
        snprintf(what, sizeof what, "fan-out %-4s median p50", names[k]);
        s_print_median(what, p50[k], runs);
        s_print_median("  p99", p99[k], runs);
        printf("  complete %ld/%ld\n", complete_total[k], iterations * runs);
    }
    if (do_raw && do_mesh) {
        double r50 = bench_median(p50[BF_MESH], (size_t)runs) /
                     bench_median(p50[BF_RAW], (size_t)runs);
        double r99 = bench_median(p99[BF_MESH], (size_t)runs) /
                     bench_median(p99[BF_RAW], (size_t)runs);
        printf("fan-out ratio mesh/raw: p50 %.2fx  p99 %.2fx\n  paired ratios (run by run) p50:",
               r50, r99);
        for (long r = 0; r < runs; r++) {
            printf(" %.2f", p50[BF_MESH][r] / p50[BF_RAW][r]);
        }
        printf("   p99:");
        for (long r = 0; r < runs; r++) {
            printf(" %.2f", p99[BF_MESH][r] / p99[BF_RAW][r]);
        }
        printf("\n");
    }
    if (do_mesh) {
        mesh_stats_t st;
        mesh_peer_stats(m.peer, &st);
        printf("parent peer stats: requests_out %llu replies_in %llu errors_out %llu replies_late "
               "%llu envelopes_dropped %llu zre_dropped %llu peers %llu\n",
               (unsigned long long)st.requests_out, (unsigned long long)st.replies_in,
               (unsigned long long)st.errors_out, (unsigned long long)st.replies_late,
               (unsigned long long)st.envelopes_dropped, (unsigned long long)st.zre_dropped,
               (unsigned long long)st.peers);
    }
    status = 0;

done:
    fflush(stdout);
    if (m.peer) {
        mesh_peer_destroy(&m.peer);
    }
    if (m.loop) {
        ev_loop_destroy(m.loop);
    }
    if (raw.dealer) {
        zmq_close(raw.dealer);
    }
    if (raw.ctx) {
        zmq_ctx_term(raw.ctx);
    }
    s_reap_children();
    free(ns[0]);
    free(ns[1]);
    free(rawbuf);
    free(m.buf);
    return status;
}
