/*  bench_memory: memory an observer node spends per known peer.

    bench_memory [--steps 10,50,100]

    Method, and why. The number wanted is what one more peer costs a node,
    so the node measured (the observer) lives alone in this process and the
    peers live elsewhere: "farm" child processes (forked before any zmq or
    libev state exists here), each hosting up to FARM_NODES_MAX nodes on one
    libev loop with a shared zmq context. Heap in use is read with mallinfo2()
    (glibc sums every arena, so libzmq's I/O-thread allocations count too;
    in use = uordblks + hblkhd) and VmRSS from /proc/self/status, once before
    the observer knows any peer and again after it has seen K ENTER events and
    the links have settled. bytes/peer = delta / K. mallinfo2 gives a byte
    exact figure; RSS moves in pages and lags (malloc'd but untouched memory
    is not resident), so both are shown. An in-process heap figure over one
    process with observer + K nodes would count K^2 peer links (gossip makes
    the nodes a full mesh), and K meshd processes would give RSS only.

    The same is measured for raw libzmq first, in the same process and the
    same way: per peer, one DEALER that connects out and sends one message
    plus one incoming connection on a ROUTER that receives one (what a ZRE
    peer link is: our DEALER to its inbox, its DEALER to ours). mesh's own
    per-peer state is the difference.

    What dominates (measured: ~137 kB of heap per peer, of which mesh's own
    peer record, strings and index slot are ~1 kB): libzmq's state for the
    two TCP connections a ZRE peer costs (our DEALER to its inbox, its DEALER
    into our ROUTER). Per connection end, libzmq 4.3 keeps a pipe pair between
    socket and session whose two queues each start with a chunk of 256
    zmq_msg_t (64 B each: 16 KiB per queue, 32 KiB per pipe pair), a decoder
    buffer of in_batch_size (8 KiB) plus its reference-count area, an encoder
    buffer of out_batch_size (8 KiB), and the session and engine objects:
    roughly 65-70 kB per connection, twice per peer. Most of the queue chunks
    are never written, so resident memory per peer is about half the heap
    figure. All on loopback, the beacon port is free and picked per run. */
#include <errno.h>
#include <ev.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "bench_util.h"
#include "reactor.h"
#include "zre.h"

#define FARM_NODES_MAX     25 /* per farm process: keeps its fds and sockets modest */
#define FARMS_MAX          40
#define STEPS_MAX          16
#define MEM_PEERS_MAX      (FARM_NODES_MAX * FARMS_MAX)
#define MEM_NOFILE_WANTED  65536
#define MEM_FARM_SOCKETS   8192 /* ZMQ_MAX_SOCKETS of a farm's shared context */
#define MEM_MSG_SIZE       64
#define MEM_LINE_MAX       256
#define MEM_CMD_MAX        (MEM_LINE_MAX + 32) /* a command carrying an endpoint line */
#define MEM_WAIT_S         60.0                /* observer must see all K peers within this */
#define MEM_SETTLE_S       2.0                 /* then let links, gossip and first pings settle */
#define MEM_POLL_S         0.05
#define MEM_RAW_TIMEOUT_MS 10000

/* ------------------------------------------------------------------------ */
/* measuring */

typedef struct {
    long heap; /* bytes in use, all arenas + mmapped chunks */
    long rss;  /* bytes resident */
} mem_t;

static long s_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) {
        return -1;
    }
    char line[MEM_LINE_MAX];
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

static mem_t s_mem(void)
{
    struct mallinfo2 mi = mallinfo2();
    mem_t m = {(long)(mi.uordblks + mi.hblkhd), s_rss_bytes()};
    return m;
}

/*  Per-peer figures of the last step of each phase, for the summary. */
typedef struct {
    int k;
    double heap_per_peer;
    double rss_per_peer;
} step_result_t;

static void s_print_step(const char *what, int k, mem_t base, mem_t now, step_result_t *out)
{
    long dh = now.heap - base.heap, dr = now.rss - base.rss;
    out->k = k;
    out->heap_per_peer = (double)dh / k;
    out->rss_per_peer = (double)dr / k;
    printf("%-5s K=%-4d heap +%9ld B = %7.0f B/peer   rss +%9ld B = %7.0f B/peer\n", what, k, dh,
           (double)dh / k, dr, (double)dr / k);
    fflush(stdout);
}

/* ------------------------------------------------------------------------ */
/* farm: a child process hosting peers; commands are text lines on a pipe */

typedef struct {
    pid_t pid;
    int cmd_w; /* parent -> farm */
    int ack_r; /* farm -> parent */
    int nodes;
} farm_t;

typedef struct {
    struct ev_loop *loop;
    void *ctx;
    uint16_t beacon_port;
    int cmd_r, ack_w;
    ev_io cmd_io;
    FILE *cmd;
    mesh__zre_t *nodes[FARM_NODES_MAX];
    mesh__reactor_t *reactors[FARM_NODES_MAX];
    int nnodes;
    void *raw_router;
    void *raw_dealers[MEM_PEERS_MAX];
    int nraw;
    long raw_received;
} farm_state_t;

static void s_farm_reply(farm_state_t *f, const char *line)
{
    size_t len = strlen(line);
    if (write(f->ack_w, line, len) != (ssize_t)len) {
        _exit(1);
    }
}

static void s_farm_add(farm_state_t *f, int n)
{
    for (int i = 0; i < n && f->nnodes < FARM_NODES_MAX; i++) {
        mesh__zre_config_t config;
        memset(&config, 0, sizeof config);
        config.iface = "lo";
        config.beacon_port = f->beacon_port;
        mesh__zre_t *node = mesh__zre_new(&config, f->ctx);
        ev_now_update(f->loop);
        if (!node || mesh__zre_start(node, mesh__reactor_now(f->loop)) != 0) {
            s_farm_reply(f, "error start\n");
            mesh__zre_destroy(&node);
            return;
        }
        f->reactors[f->nnodes] = mesh__reactor_new(f->loop, node);
        f->nodes[f->nnodes++] = node;
    }
    s_farm_reply(f, "ok\n");
}

/*  raw N EP: N more DEALERs to EP, one message each; replies with the
    endpoint of a ROUTER (made once) for the parent's DEALERs. */
static void s_farm_raw(farm_state_t *f, int n, const char *ep)
{
    char line[MEM_CMD_MAX];
    if (!f->raw_router) {
        f->raw_router = zmq_socket(f->ctx, ZMQ_ROUTER);
        if (!f->raw_router || zmq_bind(f->raw_router, "tcp://127.0.0.1:*") != 0) {
            s_farm_reply(f, "error bind\n");
            return;
        }
        int timeout = MEM_RAW_TIMEOUT_MS;
        zmq_setsockopt(f->raw_router, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    }
    uint8_t msg[MEM_MSG_SIZE] = {0};
    for (int i = 0; i < n && f->nraw < MEM_PEERS_MAX; i++) {
        void *d = zmq_socket(f->ctx, ZMQ_DEALER);
        if (!d || zmq_connect(d, ep) != 0 || zmq_send(d, msg, sizeof msg, 0) < 0) {
            s_farm_reply(f, "error dealer\n");
            return;
        }
        f->raw_dealers[f->nraw++] = d;
    }
    char mine[MEM_LINE_MAX];
    size_t len = sizeof mine;
    zmq_getsockopt(f->raw_router, ZMQ_LAST_ENDPOINT, mine, &len);
    snprintf(line, sizeof line, "ok %s\n", mine);
    s_farm_reply(f, line);
}

/*  rawwait N: blocks until N messages in all reached the farm's ROUTER. */
static void s_farm_rawwait(farm_state_t *f, long n)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (f->raw_received < n) {
        if (zmq_msg_recv(&m, f->raw_router, 0) < 0) {
            break;
        }
        if (!zmq_msg_more(&m)) {
            f->raw_received++;
        }
    }
    zmq_msg_close(&m);
    s_farm_reply(f, f->raw_received >= n ? "ok\n" : "error timeout\n");
}

static void s_farm_rawclose(farm_state_t *f)
{
    int linger = 0;
    for (int i = 0; i < f->nraw; i++) {
        zmq_setsockopt(f->raw_dealers[i], ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(f->raw_dealers[i]);
    }
    f->nraw = 0;
    if (f->raw_router) {
        zmq_setsockopt(f->raw_router, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(f->raw_router);
        f->raw_router = NULL;
    }
    s_farm_reply(f, "ok\n");
}

static void s_farm_on_cmd(struct ev_loop *loop, ev_io *w, int revents)
{
    farm_state_t *f = w->data;
    char line[MEM_LINE_MAX], ep[MEM_LINE_MAX];
    int n;
    if (!fgets(line, sizeof line, f->cmd)) {
        ev_break(loop, EVBREAK_ALL); /* parent closed the pipe (or died): leave */
        return;
    }
    if (sscanf(line, "add %d", &n) == 1) {
        s_farm_add(f, n);
    } else if (sscanf(line, "raw %d %255s", &n, ep) == 2) {
        s_farm_raw(f, n, ep);
    } else if (sscanf(line, "rawwait %d", &n) == 1) {
        s_farm_rawwait(f, n);
    } else if (strncmp(line, "rawclose", 8) == 0) {
        s_farm_rawclose(f);
    } else {
        s_farm_reply(f, "error command\n");
    }
}

static int s_farm_main(int cmd_r, int ack_w, uint16_t beacon_port)
{
    farm_state_t f;
    memset(&f, 0, sizeof f);
    f.cmd_r = cmd_r;
    f.ack_w = ack_w;
    f.beacon_port = beacon_port;
    f.loop = ev_loop_new(EVFLAG_AUTO);
    f.ctx = zmq_ctx_new();
    f.cmd = fdopen(cmd_r, "r");
    if (!f.loop || !f.ctx || !f.cmd) {
        return 1;
    }
    setvbuf(f.cmd, NULL, _IONBF, 0); /* one line per command; ev_io sees the fd */
    zmq_ctx_set(f.ctx, ZMQ_MAX_SOCKETS, MEM_FARM_SOCKETS);
    ev_io_init(&f.cmd_io, s_farm_on_cmd, cmd_r, EV_READ);
    f.cmd_io.data = &f;
    ev_io_start(f.loop, &f.cmd_io);
    ev_run(f.loop, 0);
    for (int i = 0; i < f.nnodes; i++) {
        mesh__reactor_destroy(&f.reactors[i]);
        mesh__zre_stop(f.nodes[i]);
        mesh__zre_destroy(&f.nodes[i]);
    }
    int linger = 0;
    for (int i = 0; i < f.nraw; i++) {
        zmq_setsockopt(f.raw_dealers[i], ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(f.raw_dealers[i]);
    }
    if (f.raw_router) {
        zmq_close(f.raw_router);
    }
    zmq_ctx_term(f.ctx);
    ev_loop_destroy(f.loop);
    fclose(f.cmd);
    return 0;
}

static int s_farms_spawn(farm_t *farms, int nfarms, uint16_t beacon_port)
{
    for (int i = 0; i < nfarms; i++) {
        int cmd[2], ack[2];
        if (pipe(cmd) != 0 || pipe(ack) != 0) {
            return -1;
        }
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            return -1;
        }
        if (pid == 0) {
            /*  Drop every other farm's parent-side ends, or those farms
                would never see EOF. */
            for (int j = 0; j < i; j++) {
                close(farms[j].cmd_w);
                close(farms[j].ack_r);
            }
            close(cmd[1]);
            close(ack[0]);
            _exit(s_farm_main(cmd[0], ack[1], beacon_port));
        }
        close(cmd[0]);
        close(ack[1]);
        farms[i].pid = pid;
        farms[i].cmd_w = cmd[1];
        farms[i].ack_r = ack[0];
        farms[i].nodes = 0;
    }
    return 0;
}

/*  Sends one command line and reads the reply line into reply. */
static int s_farm_cmd(farm_t *farm, const char *cmd, char *reply, size_t cap)
{
    size_t len = strlen(cmd);
    if (write(farm->cmd_w, cmd, len) != (ssize_t)len) {
        return -1;
    }
    size_t got = 0;
    while (got + 1 < cap) {
        ssize_t r = read(farm->ack_r, reply + got, 1);
        if (r <= 0) {
            return -1;
        }
        if (reply[got++] == '\n') {
            break;
        }
    }
    reply[got] = '\0';
    return strncmp(reply, "ok", 2) == 0 ? 0 : -1;
}

static void s_farms_stop(farm_t *farms, int nfarms)
{
    for (int i = 0; i < nfarms; i++) {
        close(farms[i].cmd_w);
        close(farms[i].ack_r);
    }
    for (int i = 0; i < nfarms; i++) {
        int status = 0;
        for (int tries = 0; tries < 100; tries++) {
            if (waitpid(farms[i].pid, &status, WNOHANG) == farms[i].pid) {
                farms[i].pid = 0;
                break;
            }
            usleep(100000);
        }
        if (farms[i].pid) {
            fprintf(stderr, "bench_memory: farm %d did not exit; killing it\n", i);
            kill(farms[i].pid, SIGKILL);
            waitpid(farms[i].pid, &status, 0);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* raw libzmq per-peer cost */

static int s_raw_phase(farm_t *farm, const int *steps, int nsteps, step_result_t *out)
{
    int rc = -1;
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    void *dealers[MEM_PEERS_MAX];
    int ndealers = 0;
    char ep[MEM_LINE_MAX], reply[MEM_LINE_MAX], cmd[MEM_CMD_MAX];
    size_t len = sizeof ep;
    int timeout = MEM_RAW_TIMEOUT_MS;
    if (!router || zmq_bind(router, "tcp://127.0.0.1:*") != 0 ||
        zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, ep, &len) != 0 ||
        zmq_setsockopt(router, ZMQ_RCVTIMEO, &timeout, sizeof timeout) != 0) {
        goto done;
    }
    uint8_t msg[MEM_MSG_SIZE] = {0};
    zmq_msg_t m;
    zmq_msg_init(&m);
    mem_t base = s_mem();
    long received = 0;
    for (int s = 0; s < nsteps; s++) {
        int more = steps[s] - ndealers;
        snprintf(cmd, sizeof cmd, "raw %d %s\n", more, ep);
        char farm_ep[MEM_LINE_MAX];
        if (s_farm_cmd(farm, cmd, reply, sizeof reply) != 0 ||
            sscanf(reply, "ok %255s", farm_ep) != 1) {
            fprintf(stderr, "bench_memory: farm raw: %s", reply);
            goto done_msg;
        }
        for (int i = 0; i < more; i++) {
            void *d = zmq_socket(ctx, ZMQ_DEALER);
            if (!d || zmq_connect(d, farm_ep) != 0 || zmq_send(d, msg, sizeof msg, 0) < 0) {
                goto done_msg;
            }
            dealers[ndealers++] = d;
        }
        /*  Both directions have carried a message: every link is up. */
        while (received < steps[s]) {
            if (zmq_msg_recv(&m, router, 0) < 0) {
                fprintf(stderr, "bench_memory: raw recv: %s\n", zmq_strerror(zmq_errno()));
                goto done_msg;
            }
            if (!zmq_msg_more(&m)) {
                received++;
            }
        }
        snprintf(cmd, sizeof cmd, "rawwait %d\n", steps[s]);
        if (s_farm_cmd(farm, cmd, reply, sizeof reply) != 0) {
            goto done_msg;
        }
        usleep((useconds_t)(MEM_SETTLE_S * 1e6 / 4));
        s_print_step("raw", steps[s], base, s_mem(), out);
    }
    rc = 0;
done_msg:
    zmq_msg_close(&m);
done:
    for (int i = 0; i < ndealers; i++) {
        int linger = 0;
        zmq_setsockopt(dealers[i], ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(dealers[i]);
    }
    if (router) {
        zmq_close(router);
    }
    zmq_ctx_term(ctx);
    if (s_farm_cmd(farm, "rawclose\n", reply, sizeof reply) != 0) {
        rc = -1;
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* mesh observer per-peer cost */

typedef struct {
    mesh__zre_t *node;
    size_t want;
    ev_timer poll;
    ev_timer watchdog;
    int timed_out;
} observer_t;

static void s_on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    observer_t *o = w->data;
    if (mesh__zre_peer_count(o->node) >= o->want) {
        ev_break(loop, EVBREAK_ONE);
    }
}

static void s_on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
    observer_t *o = w->data;
    o->timed_out = 1;
    ev_break(loop, EVBREAK_ONE);
}

/*  Runs the loop for `seconds`, or until `want` peers if want > 0. */
static int s_observe(struct ev_loop *loop, observer_t *o, size_t want, double seconds)
{
    o->want = want;
    o->timed_out = 0;
    ev_timer_set(&o->watchdog, seconds, 0);
    ev_timer_start(loop, &o->watchdog);
    if (want > 0) {
        ev_timer_start(loop, &o->poll);
    }
    ev_run(loop, 0);
    ev_timer_stop(loop, &o->poll);
    ev_timer_stop(loop, &o->watchdog);
    return want > 0 && o->timed_out ? -1 : 0;
}

static int s_mesh_phase(farm_t *farms, int nfarms, const int *steps, int nsteps,
                        uint16_t beacon_port, step_result_t *out)
{
    int rc = -1;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    mesh__zre_config_t config;
    memset(&config, 0, sizeof config);
    config.name = "observer";
    config.iface = "lo";
    config.beacon_port = beacon_port;
    observer_t o;
    memset(&o, 0, sizeof o);
    o.node = mesh__zre_new(&config, NULL); /* its own zmq context, as in meshd */
    ev_now_update(loop);
    if (!o.node || mesh__zre_start(o.node, mesh__reactor_now(loop)) != 0) {
        fprintf(stderr, "bench_memory: observer did not start\n");
        mesh__zre_destroy(&o.node);
        ev_loop_destroy(loop);
        return -1;
    }
    mesh__reactor_t *reactor = mesh__reactor_new(loop, o.node);
    ev_timer_init(&o.poll, s_on_poll, MEM_POLL_S, MEM_POLL_S);
    ev_timer_init(&o.watchdog, s_on_watchdog, 0, 0);
    o.poll.data = o.watchdog.data = &o;
    /*  Alone for a while: first beacons, timers, lazily allocated state. */
    s_observe(loop, &o, 0, MEM_SETTLE_S);
    mem_t base = s_mem();
    int total = 0;
    char reply[MEM_LINE_MAX], cmd[MEM_LINE_MAX];
    for (int s = 0; s < nsteps; s++) {
        for (int i = 0; i < nfarms && total < steps[s]; i++) {
            int more = steps[s] - total;
            if (more > FARM_NODES_MAX - farms[i].nodes) {
                more = FARM_NODES_MAX - farms[i].nodes;
            }
            if (more <= 0) {
                continue;
            }
            snprintf(cmd, sizeof cmd, "add %d\n", more);
            if (s_farm_cmd(&farms[i], cmd, reply, sizeof reply) != 0) {
                fprintf(stderr, "bench_memory: farm add: %s", reply);
                goto done;
            }
            farms[i].nodes += more;
            total += more;
        }
        uint64_t t0 = bench_now_ns();
        if (s_observe(loop, &o, (size_t)steps[s], MEM_WAIT_S) != 0) {
            fprintf(stderr, "bench_memory: observer knows %zu of %d peers after %.0f s\n",
                    mesh__zre_peer_count(o.node), steps[s], MEM_WAIT_S);
            goto done;
        }
        double seen_ms = (double)(bench_now_ns() - t0) / 1e6;
        s_observe(loop, &o, 0, MEM_SETTLE_S);
        s_print_step("mesh", steps[s], base, s_mem(), out);
        printf("      (all %d seen %.0f ms after the farm started them; peers now %zu)\n", steps[s],
               seen_ms, mesh__zre_peer_count(o.node));
    }
    rc = 0;
done:
    mesh__reactor_destroy(&reactor);
    mesh__zre_stop(o.node);
    mesh__zre_destroy(&o.node);
    ev_loop_destroy(loop);
    return rc;
}

/* ------------------------------------------------------------------------ */

static int s_parse_steps(const char *arg, int *steps)
{
    int n = 0, prev = 0;
    char *copy = strdup(arg), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t && n < STEPS_MAX; t = strtok_r(NULL, ",", &save)) {
        int k = atoi(t);
        if (k <= prev || k > MEM_PEERS_MAX) {
            free(copy);
            return -1;
        }
        steps[n++] = prev = k;
    }
    free(copy);
    return n;
}

int main(int argc, char **argv)
{
    int steps[STEPS_MAX] = {10, 50, 100};
    int nsteps = 3;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) {
            nsteps = s_parse_steps(argv[++i], steps);
        } else {
            nsteps = -1;
        }
        if (nsteps <= 0) {
            fprintf(stderr, "usage: bench_memory [--steps K1,K2,... (increasing, <= %d)]\n",
                    MEM_PEERS_MAX);
            return 2;
        }
    }
    /*  Room for every farm's sockets (inherited by the farms). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < MEM_NOFILE_WANTED) {
        rl.rlim_cur = rl.rlim_max < MEM_NOFILE_WANTED ? rl.rlim_max : MEM_NOFILE_WANTED;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int kmax = steps[nsteps - 1];
    int nfarms = (kmax + FARM_NODES_MAX - 1) / FARM_NODES_MAX;
    uint16_t beacon_port = bench_free_udp_port();
    if (beacon_port == 0) {
        return 1;
    }
    printf("# memory per known peer: observer node alone in this process, peers in %d farm "
           "process(es), beacon port %u\n",
           nfarms, beacon_port);
    printf("# heap = mallinfo2 in use (all arenas + mmapped), rss = VmRSS; deltas from the "
           "same process with 0 peers\n");
    farm_t farms[FARMS_MAX];
    memset(farms, 0, sizeof farms);
    /*  Fork before this process has any zmq or libev state. */
    if (s_farms_spawn(farms, nfarms, beacon_port) != 0) {
        fprintf(stderr, "bench_memory: cannot start farms\n");
        return 1;
    }
    step_result_t raw = {0}, mesh = {0};
    int rc = s_raw_phase(&farms[0], steps, nsteps, &raw);
    if (rc == 0) {
        rc = s_mesh_phase(farms, nfarms, steps, nsteps, beacon_port, &mesh);
    }
    s_farms_stop(farms, nfarms);
    if (rc == 0) {
        printf("\n== summary ==\n");
        printf("K=%d: mesh node %.0f B/peer heap (%.0f B/peer resident); raw libzmq link "
               "%.0f B/peer heap (%.0f resident)\n",
               mesh.k, mesh.heap_per_peer, mesh.rss_per_peer, raw.heap_per_peer, raw.rss_per_peer);
        if (mesh.heap_per_peer > 0 && raw.heap_per_peer > 0) {
            printf("mesh's own per-peer state = heap difference: %.0f B/peer (%.1f%% of the "
                   "total); the rest is libzmq's per-connection state (pipes, engine buffers)\n",
                   mesh.heap_per_peer - raw.heap_per_peer,
                   100.0 * (mesh.heap_per_peer - raw.heap_per_peer) / mesh.heap_per_peer);
        } else {
            printf("heap figures unavailable: malloc is not glibc's here (a sanitizer build?)\n");
        }
    }
    return rc == 0 ? 0 : 1;
}
