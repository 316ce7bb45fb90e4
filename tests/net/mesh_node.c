/*  mesh_node: a small test program around the peer API (<mesh/peer.h>) for
    the black-box tests in tests/net. One mesh peer on ev_default_loop,
    driven by flags; plain text lines on stdout, one event a line, flushed.

    mesh_node --name N --beacon-port P [--realm R] [--serve PATH]... [--delay-ms D]
              [--calls N --path PATH [--idempotent] [--timeout-ms T] [--window W]
               [--selector S] [--providers K] [--settle-ms MS]]
              [--beacon-interval-ms MS] [--evasive-ms MS] [--expired-ms MS]
              [--ping-interval-ms MS] [--ping-timeout-ms MS] [--call-timeout-ms MS]
              [--max-attempts N] [--max-s S] [--dump-routes]

    --serve PATH      expose PATH; the handler replies "<name>:<payload>" after
                      --delay-ms (an ev_timer; 0 = at once)
    --calls N         once PATH has --providers distinct providers (default 1)
                      in the routing table, issue N calls, at most --window
                      outstanding (default 1); the payload of call <seq> is
                      "<name>:<seq>"; --settle-ms: wait that much longer once
                      they are there (other peers have time to be discovered)
    --max-s S         hard overall deadline (default 120): exit 3
    --dump-routes     print the routing table once the calls are done (or at
                      SIGTERM): "route <name> <id> <path|-> <alive 0/1> <self 0/1>"

    Lines (all flushed):
      ready <id>
      providers <n>                               PATH has n providers: calls start
      call <seq> <status> <peer-name|-> <ms>      one per completed call; status is
                                                  OK or the MESH_ERR_ name without prefix
      mismatch <seq> <reply>                      a reply that is not "<peer>:<payload>"
      served <payload> <from-name> <attempt>      a request handled here (on receipt)
      done ok=<n> errors=<n> max_ms=<n>           then exit 0
      timeout outstanding=<n> issued=<n> completed=<n>   the hard deadline: exit 3
      route ... / members <n>                     with --dump-routes
      stopped                                     after SIGTERM/SIGINT: exit 0
    At SIGTERM/SIGINT, requests still delayed here are answered with a remote
    error "stopping", then the peer stops (its calls still out complete with
    CLOSED, printed as call lines).
    Exit codes: 0 ok, 1 runtime error, 2 usage, 3 hard deadline. */
#include <mesh/mesh.h>
#include <mesh/peer.h>

#include <ev.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SERVE 16

typedef struct s_pending {
    ev_timer timer;
    mesh_request_t *req;
    struct s_pending *prev, *next;
} s_pending_t;

typedef struct {
    unsigned seq;
    int64_t t0;
} s_call_ctx_t;

static struct {
    /* options */
    const char *name, *realm, *path, *selector;
    const char *serve[MAX_SERVE];
    size_t nserve;
    long beacon_port, delay_ms, calls, timeout_ms, window, providers, settle_ms, max_s;
    long beacon_interval_ms, evasive_ms, expired_ms, ping_interval_ms, ping_timeout_ms,
        call_timeout_ms, max_attempts;
    bool idempotent, dump_routes;
    /* state */
    struct ev_loop *loop;
    mesh_peer_t *peer;
    s_pending_t *pending;
    ev_timer wait_timer, settle_timer, hard_timer;
    ev_signal sigterm, sigint;
    bool calling, finished;
    long issued, completed, ok, errors, outstanding;
    int64_t max_ms;
    int exit_code;
} g; /* the program's one peer and its state */

static void s_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void s_out(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *s_status_name(int status)
{
    if (status == 0) {
        return "OK";
    }
    const char *n = mesh_err_name(status);
    return strncmp(n, "MESH_ERR_", 9) == 0 ? n + 9 : n;
}

static void s_usage(void)
{
    fprintf(stderr,
            "usage: mesh_node --name N --beacon-port P [--realm R] [--serve PATH]... "
            "[--delay-ms D]\n"
            "                 [--calls N --path PATH [--idempotent] [--timeout-ms T] "
            "[--window W] [--selector S] [--providers K] [--settle-ms MS]]\n"
            "                 [--beacon-interval-ms MS] [--evasive-ms MS] [--expired-ms MS]\n"
            "                 [--ping-interval-ms MS] [--ping-timeout-ms MS] "
            "[--call-timeout-ms MS]\n"
            "                 [--max-attempts N] [--max-s S] [--dump-routes]\n");
    exit(2);
}

static long s_num(const char *opt, const char *v, long min, long max)
{
    char *end;
    long n = v ? strtol(v, &end, 10) : 0;
    if (!v || !*v || *end || n < min || n > max) {
        fprintf(stderr, "mesh_node: %s: bad value %s\n", opt, v ? v : "(missing)");
        exit(2);
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* serving */

static void s_pending_unlink(s_pending_t *p)
{
    if (p->prev) {
        p->prev->next = p->next;
    } else {
        g.pending = p->next;
    }
    if (p->next) {
        p->next->prev = p->prev;
    }
}

static void s_reply_now(mesh_request_t *req)
{
    size_t nlen = strlen(g.name);
    size_t size = mesh_request_size(req);
    char *buf = malloc(nlen + 1 + size + 1);
    if (!buf) {
        mesh_request_error(req, "out of memory");
        return;
    }
    memcpy(buf, g.name, nlen);
    buf[nlen] = ':';
    if (size) {
        memcpy(buf + nlen + 1, mesh_request_data(req), size);
    }
    int rc = mesh_request_reply(req, buf, nlen + 1 + size);
    if (rc != 0) {
        fprintf(stderr, "mesh_node %s: mesh_request_reply: %s\n", g.name, mesh_err_name(rc));
    }
    free(buf);
}

static void s_on_reply_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    s_pending_t *p = (s_pending_t *)w;
    s_pending_unlink(p);
    s_reply_now(p->req);
    free(p);
}

static void s_on_request(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    size_t size = mesh_request_size(req);
    const char *data = mesh_request_data(req);
    /* the payload is printable "<caller>:<seq>" in these tests; anything else as "?" */
    char shown[128];
    size_t n = 0;
    for (size_t i = 0; i < size && n + 1 < sizeof shown; i++) {
        char c = data[i];
        shown[n++] = (c > ' ' && c < 127) ? c : '?';
    }
    shown[n] = '\0';
    s_out("served %s %s %u", n ? shown : "-", mesh_request_from_name(req),
          mesh_request_attempt(req));
    if (mesh_request_is_cast(req) || g.delay_ms <= 0) {
        s_reply_now(req);
        return;
    }
    s_pending_t *p = calloc(1, sizeof *p);
    if (!p) {
        mesh_request_error(req, "out of memory");
        return;
    }
    p->req = req;
    p->next = g.pending;
    if (g.pending) {
        g.pending->prev = p;
    }
    g.pending = p;
    ev_timer_init(&p->timer, s_on_reply_timer, g.delay_ms / 1000.0, 0.0);
    ev_timer_start(g.loop, &p->timer);
}

static void s_drop_pending(void)
{
    while (g.pending) {
        s_pending_t *p = g.pending;
        ev_timer_stop(g.loop, &p->timer);
        s_pending_unlink(p);
        mesh_request_error(p->req, "stopping"); /* frees the request */
        free(p);
    }
}

/* ------------------------------------------------------------------------ */
/* the routing table */

typedef struct {
    const char *path;
    char ids[64][33];
    size_t n;
} s_count_ctx_t;

static void s_count_route(const mesh_route_info_t *r, void *arg)
{
    s_count_ctx_t *c = arg;
    if (!r->path || r->is_self || !r->alive || strcmp(r->path, c->path) != 0) {
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->ids[i], r->id) == 0) {
            return;
        }
    }
    if (c->n < 64) {
        snprintf(c->ids[c->n++], sizeof c->ids[0], "%s", r->id);
    }
}

static size_t s_providers_of(const char *path)
{
    s_count_ctx_t c = {.path = path};
    mesh_peer_routes(g.peer, s_count_route, &c);
    return c.n;
}

static void s_print_route(const mesh_route_info_t *r, void *arg)
{
    s_out("route %s %s %s %d %d", r->name ? r->name : "-", r->id ? r->id : "-",
          r->path ? r->path : "-", r->alive ? 1 : 0, r->is_self ? 1 : 0);
}

static void s_dump_routes(void)
{
    if (g.dump_routes && g.peer) {
        size_t n = mesh_peer_routes(g.peer, s_print_route, NULL);
        s_out("members %zu", n);
    }
}

/* ------------------------------------------------------------------------ */
/* calling */

static void s_finish(int code)
{
    if (g.finished) {
        return;
    }
    g.finished = true;
    g.exit_code = code;
    ev_break(g.loop, EVBREAK_ALL);
}

static void s_issue_calls(void);

static void s_completed(unsigned seq, int status, const char *peer_name, int64_t ms)
{
    g.completed++;
    if (status == 0) {
        g.ok++;
    } else {
        g.errors++;
    }
    if (ms > g.max_ms) {
        g.max_ms = ms;
    }
    s_out("call %u %s %s %lld", seq, s_status_name(status),
          peer_name && *peer_name ? peer_name : "-", (long long)ms);
}

static void s_check_all_done(void)
{
    if (g.completed == g.calls && !g.finished) {
        s_out("done ok=%ld errors=%ld max_ms=%lld", g.ok, g.errors, (long long)g.max_ms);
        s_dump_routes();
        s_finish(0);
    }
}

static void s_on_reply(mesh_peer_t *peer, const mesh_reply_t *r, void *arg)
{
    s_call_ctx_t *c = arg;
    int64_t ms = s_now_ms() - c->t0;
    g.outstanding--;
    s_completed(c->seq, r->status, r->peer_name, ms);
    if (r->status == 0) {
        /* the reply must be "<peer-name>:<our payload>" */
        char expect[512];
        int n = snprintf(expect, sizeof expect, "%s:%s:%u", r->peer_name ? r->peer_name : "",
                         g.name, c->seq);
        if (n < 0 || (size_t)n != r->size || memcmp(expect, r->data, r->size) != 0) {
            char shown[256];
            size_t k = 0;
            const char *d = r->data;
            for (size_t i = 0; d && i < r->size && k + 1 < sizeof shown; i++) {
                shown[k++] = (d[i] > ' ' && d[i] < 127) ? d[i] : '?';
            }
            shown[k] = '\0';
            s_out("mismatch %u %s", c->seq, k ? shown : "-");
        }
    }
    free(c);
    if (!g.finished) {
        s_issue_calls();
        s_check_all_done();
    }
}

static void s_issue_calls(void)
{
    while (!g.finished && g.issued < g.calls && g.outstanding < g.window) {
        unsigned seq = (unsigned)++g.issued;
        char payload[300];
        int n = snprintf(payload, sizeof payload, "%s:%u", g.name, seq);
        s_call_ctx_t *c = malloc(sizeof *c);
        if (!c) {
            fprintf(stderr, "mesh_node: out of memory\n");
            s_finish(1);
            return;
        }
        c->seq = seq;
        c->t0 = s_now_ms();
        mesh_call_opts_t opts = {0};
        opts.selector = g.selector;
        opts.timeout_ms = (int)g.timeout_ms;
        opts.idempotent = g.idempotent;
        g.outstanding++;
        int rc = mesh_peer_call(g.peer, g.path, payload, (size_t)n, &opts, s_on_reply, c);
        if (rc != 0) {
            /* the callback will not run: the call completed at once */
            g.outstanding--;
            free(c);
            s_completed(seq, rc, NULL, 0);
        }
    }
    s_check_all_done();
}

static void s_start_calls(void)
{
    s_out("providers %zu", s_providers_of(g.path));
    g.calling = true;
    s_issue_calls();
}

static void s_on_settle_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    s_start_calls();
}

static void s_on_wait_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    size_t n = s_providers_of(g.path);
    if ((long)n < g.providers) {
        return;
    }
    ev_timer_stop(loop, w);
    if (g.settle_ms > 0) {
        ev_timer_init(&g.settle_timer, s_on_settle_timer, g.settle_ms / 1000.0, 0.0);
        ev_timer_start(loop, &g.settle_timer);
    } else {
        s_start_calls();
    }
}

static void s_on_hard_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    s_out("timeout outstanding=%ld issued=%ld completed=%ld", g.outstanding, g.issued, g.completed);
    fflush(stderr);
    _exit(3); /* no cleanup: something hangs */
}

static void s_on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    if (!g.finished) {
        s_dump_routes();
        s_out("stopped");
        s_finish(0);
    }
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    g.realm = NULL;
    g.window = 1;
    g.providers = 1;
    g.max_s = 120;
    g.beacon_port = -1;
    g.calls = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(s) (strcmp(a, (s)) == 0)
        if (OPT("--name")) {
            g.name = v, i++;
        } else if (OPT("--realm")) {
            g.realm = v, i++;
        } else if (OPT("--beacon-port")) {
            g.beacon_port = s_num(a, v, 1, 65535), i++;
        } else if (OPT("--serve")) {
            if (!v || g.nserve == MAX_SERVE) {
                s_usage();
            }
            g.serve[g.nserve++] = v, i++;
        } else if (OPT("--delay-ms")) {
            g.delay_ms = s_num(a, v, 0, 600000), i++;
        } else if (OPT("--calls")) {
            g.calls = s_num(a, v, 0, 100000000), i++;
        } else if (OPT("--path")) {
            g.path = v, i++;
        } else if (OPT("--idempotent")) {
            g.idempotent = true;
        } else if (OPT("--timeout-ms")) {
            g.timeout_ms = s_num(a, v, 0, 3600000), i++;
        } else if (OPT("--window")) {
            g.window = s_num(a, v, 1, 100000), i++;
        } else if (OPT("--selector")) {
            g.selector = v, i++;
        } else if (OPT("--providers")) {
            g.providers = s_num(a, v, 1, 64), i++;
        } else if (OPT("--settle-ms")) {
            g.settle_ms = s_num(a, v, 0, 600000), i++;
        } else if (OPT("--beacon-interval-ms")) {
            g.beacon_interval_ms = s_num(a, v, 1, 3600000), i++;
        } else if (OPT("--evasive-ms")) {
            g.evasive_ms = s_num(a, v, 1, 3600000), i++;
        } else if (OPT("--expired-ms")) {
            g.expired_ms = s_num(a, v, 1, 3600000), i++;
        } else if (OPT("--ping-interval-ms")) {
            g.ping_interval_ms = s_num(a, v, 1, 3600000), i++;
        } else if (OPT("--ping-timeout-ms")) {
            g.ping_timeout_ms = s_num(a, v, 1, 3600000), i++;
        } else if (OPT("--call-timeout-ms")) {
            g.call_timeout_ms = s_num(a, v, 1, 3600000), i++;
        } else if (OPT("--max-attempts")) {
            g.max_attempts = s_num(a, v, 1, 100), i++;
        } else if (OPT("--max-s")) {
            g.max_s = s_num(a, v, 1, 86400), i++;
        } else if (OPT("--dump-routes")) {
            g.dump_routes = true;
        } else {
            fprintf(stderr, "mesh_node: unknown option %s\n", a);
            s_usage();
        }
#undef OPT
        if (i >= argc) {
            s_usage(); /* an option missing its value */
        }
    }
    if (!g.name || g.beacon_port < 0 || (g.calls >= 0 && !g.path) || (g.path && g.calls < 0)) {
        s_usage();
    }
    if (g.path && g.path[0] != '/') {
        s_usage();
    }

    mesh_config_t cfg;
    mesh_config_init(&cfg);
    cfg.name = g.name;
    cfg.realm = g.realm;
    cfg.iface = "lo"; /* loopback only, always */
    cfg.beacon_port = (uint16_t)g.beacon_port;
    cfg.beacon_interval_ms = (int)g.beacon_interval_ms;
    cfg.evasive_ms = (int)g.evasive_ms;
    cfg.expired_ms = (int)g.expired_ms;
    cfg.ping_interval_ms = (int)g.ping_interval_ms;
    cfg.ping_timeout_ms = (int)g.ping_timeout_ms;
    cfg.call_timeout_ms = (int)g.call_timeout_ms;
    cfg.max_attempts = (int)g.max_attempts;
    g.peer = mesh_peer_new(&cfg);
    if (!g.peer) {
        fprintf(stderr, "mesh_node: mesh_peer_new: bad configuration\n");
        return 2;
    }
    for (size_t i = 0; i < g.nserve; i++) {
        int rc = mesh_peer_expose(g.peer, g.serve[i], s_on_request, NULL, NULL);
        if (rc != 0) {
            fprintf(stderr, "mesh_node: expose %s: %s\n", g.serve[i], mesh_strerror(rc));
            mesh_peer_destroy(&g.peer);
            return 2;
        }
    }

    signal(SIGPIPE, SIG_IGN);
    g.loop = ev_default_loop(0);
    int rc = mesh_peer_attach(g.peer, g.loop);
    if (rc != 0) {
        fprintf(stderr, "mesh_node: mesh_peer_attach: %s\n", mesh_strerror(rc));
        mesh_peer_destroy(&g.peer);
        return 1;
    }
    ev_signal_init(&g.sigterm, s_on_signal, SIGTERM);
    ev_signal_start(g.loop, &g.sigterm);
    ev_signal_init(&g.sigint, s_on_signal, SIGINT);
    ev_signal_start(g.loop, &g.sigint);
    ev_timer_init(&g.hard_timer, s_on_hard_timer, (double)g.max_s, 0.0);
    ev_timer_start(g.loop, &g.hard_timer);
    s_out("ready %s", mesh_peer_id(g.peer));

    if (g.calls == 0) {
        s_out("done ok=0 errors=0 max_ms=0");
        s_finish(0);
    } else if (g.calls > 0) {
        ev_timer_init(&g.wait_timer, s_on_wait_timer, 0.0, 0.05);
        ev_timer_start(g.loop, &g.wait_timer);
    }

    if (!g.finished) {
        ev_run(g.loop, 0);
    }

    /* leave cleanly: calls still out complete with CLOSED (printed as call lines) */
    ev_timer_stop(g.loop, &g.wait_timer);
    ev_timer_stop(g.loop, &g.settle_timer);
    ev_timer_stop(g.loop, &g.hard_timer);
    ev_signal_stop(g.loop, &g.sigterm);
    ev_signal_stop(g.loop, &g.sigint);
    s_drop_pending();
    mesh_peer_stop(g.peer);
    mesh_peer_destroy(&g.peer);
    ev_loop_destroy(g.loop);
    return g.exit_code;
}
