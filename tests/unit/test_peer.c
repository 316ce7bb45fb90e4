/*  test_peer.c: several mesh peers in one process on loopback (ring 2).

    Every test gets its own UDP beacon port and realm, and its peers share
    one libev loop that the test drives with run_until(cond, timeout_ms).
    Peers are created through s_new(), which records them so that the
    suite's fini destroys every one of them (and the loops) even when an
    assertion aborts the test: each test tears down to zero under ASan/LSan.
    Everything a callback writes lives in globals, never on a test's stack,
    because a peer destroyed in fini may still complete pending calls. */
#include <criterion/criterion.h>

#include "testutil.h"

#include <mesh/mesh.h>

#include "codec.h"
#include "peer_internal.h"
#include "ring.h"
#include "zre.h"

#include <arpa/inet.h>
#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*  Criterion runs each test in a worker whose leak report would not fail
    it: fini asks LeakSanitizer itself. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define S_LEAKS() __lsan_do_recoverable_leak_check()
#else
#define S_LEAKS() 0
#endif

#define MAX_PEERS 8
#define MAX_SVCS 8
#define MAX_RECS 64
#define DISCOVERY_MS 5000 /* generous: discovery on loopback takes ~0.3 s */

/* ------------------------------------------------------------------------ */
/* the harness: loops, peers, time */

static struct ev_loop *g_loop;
static struct ev_loop *g_loop2; /* a second loop, driven only while g_drive2 */
static bool g_drive2;
static ev_timer g_tick; /* keeps EVRUN_ONCE short */
static uint16_t g_port;
static char g_realm[64];
static mesh_peer_t *g_peers[MAX_PEERS];

static int64_t s_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}


static void s_on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
}

/*  One turn of the loop(s); false once the deadline has passed. */
static bool s_turn(int64_t end)
{
    if (s_ms() >= end) {
        return false;
    }
    ev_run(g_loop, EVRUN_ONCE);
    if (g_loop2 && g_drive2) {
        ev_run(g_loop2, EVRUN_NOWAIT);
    }
    return true;
}

/*  Drives the loop until cond holds or timeout_ms pass. Assert cond after. */
#define run_until(cond, timeout_ms)                                                            \
    for (int64_t end_ = s_ms() + (timeout_ms); !(cond) && s_turn(end_);)

#define run_for(ms) run_until(false, ms)

static mesh_config_t s_config(const char *name)
{
    mesh_config_t c;
    mesh_config_init(&c);
    c.name = name;
    c.realm = g_realm;
    c.iface = "lo";
    c.beacon_port = g_port;
    c.beacon_interval_ms = 100;
    c.ping_interval_ms = 150;
    c.ping_timeout_ms = 1500; /* tests that need silence detection set their own */
    return c;
}

static mesh_peer_t *s_new_cfg(const mesh_config_t *c)
{
    mesh_peer_t *p = mesh_peer_new(c);
    cr_assert_not_null(p, "mesh_peer_new(%s) failed", c->name);
    for (int i = 0; i < MAX_PEERS; i++) {
        if (!g_peers[i]) {
            g_peers[i] = p;
            return p;
        }
    }
    cr_assert_fail("too many peers");
    return NULL;
}

static mesh_peer_t *s_new(const char *name)
{
    mesh_config_t c = s_config(name);
    return s_new_cfg(&c);
}

static void s_attach(mesh_peer_t *p)
{
    cr_assert_eq(mesh_peer_attach(p, g_loop), 0, "attach %s", mesh_peer_name(p));
}

static mesh_peer_t *s_started(const char *name)
{
    mesh_peer_t *p = s_new(name);
    s_attach(p);
    return p;
}

static void s_destroy(mesh_peer_t *p)
{
    for (int i = 0; i < MAX_PEERS; i++) {
        if (g_peers[i] == p) {
            mesh_peer_destroy(&g_peers[i]);
            cr_assert_null(g_peers[i]);
            return;
        }
    }
    cr_assert_fail("not a test peer");
}

/* ------------------------------------------------------------------------ */
/* the routing table, as a user sees it */

typedef struct {
    const char *path;
    const char *name;
    bool found;
    bool alive;
    uint64_t inflight;
    char tags[256];
} route_query_t;

static void s_route_cb(const mesh_route_info_t *r, void *arg)
{
    route_query_t *q = arg;
    if (!r->path || strcmp(r->path, q->path) != 0 || strcmp(r->name, q->name) != 0) {
        return;
    }
    q->found = true;
    q->alive = r->alive;
    q->inflight = r->inflight;
    q->tags[0] = '\0';
    for (size_t i = 0; i < r->ntags; i++) {
        strncat(q->tags, r->tags[i], sizeof q->tags - strlen(q->tags) - 2);
        strcat(q->tags, ";");
    }
}

static route_query_t s_route(mesh_peer_t *p, const char *path, const char *provider)
{
    route_query_t q = {.path = path, .name = provider};
    mesh_peer_routes(p, s_route_cb, &q);
    return q;
}

/*  p knows that provider offers path, and provider is alive. */
static bool s_knows(mesh_peer_t *p, const char *path, const char *provider)
{
    route_query_t q = s_route(p, path, provider);
    return q.found && q.alive;
}

typedef struct {
    const char *name;
    int n;
} pathless_t;

static void s_pathless_cb(const mesh_route_info_t *r, void *arg)
{
    pathless_t *q = arg;
    q->n += !r->path && strcmp(r->name, q->name) == 0;
}

/*  How often p lists member name without a path. */
static int s_pathless(mesh_peer_t *p, const char *name)
{
    pathless_t q = {name, 0};
    mesh_peer_routes(p, s_pathless_cb, &q);
    return q.n;
}

static size_t s_members(mesh_peer_t *p)
{
    return mesh_peer_routes(p, NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* services */

typedef enum { H_ECHO, H_HOLD, H_REJECT, H_ERROR, H_LATER, H_NESTED } hmode_t;

typedef struct {
    const char *name; /* an echo replies "<name>:<payload>" */
    hmode_t mode;
    const char *message;     /* H_ERROR */
    const char *nested_path; /* H_NESTED: the service it calls first */
    atomic_int calls;        /* requests (calls) seen */
    atomic_int casts;        /* casts seen */
    unsigned attempt;        /* of the last request */
    char key[64];            /* of the last request, "" if none */
    char from[33];
    char from_name[32];
    char path[64];
    atomic_bool off_main; /* a handler ran on another thread than the test's */
    mesh_request_t *held[16];
    int nheld;
    ev_timer later;
    mesh_request_t *later_req;
} svc_t;

static svc_t g_svc[MAX_SVCS];
static pthread_t g_main;

static void s_echo(mesh_request_t *req, const char *name)
{
    char out[512];
    size_t n = (size_t)snprintf(out, sizeof out, "%s:", name);
    size_t len = mesh_request_size(req);
    if (len > sizeof out - n) {
        len = sizeof out - n;
    }
    memcpy(out + n, mesh_request_data(req), len);
    mesh_request_reply(req, out, n + len);
}

static void s_on_later(struct ev_loop *loop, ev_timer *w, int revents)
{
    svc_t *s = w->data;
    s_echo(s->later_req, s->name);
    s->later_req = NULL;
}

typedef struct {
    mesh_request_t *req;
    const char *name;
} nested_t;

static nested_t g_nested[4];
static int g_nnested;

static void s_on_nested_reply(mesh_peer_t *peer, const mesh_reply_t *r, void *arg)
{
    nested_t *n = arg;
    if (r->status != 0) {
        mesh_request_error(n->req, mesh_err_name(r->status));
        return;
    }
    char out[512];
    int len = snprintf(out, sizeof out, "%s(%.*s)", n->name, (int)r->size, (const char *)r->data);
    mesh_request_reply(n->req, out, (size_t)len);
}

static void s_handler(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    svc_t *s = arg;
    if (!pthread_equal(pthread_self(), g_main)) {
        s->off_main = true;
    }
    if (mesh_request_is_cast(req)) {
        s->casts++;
    } else {
        s->calls++;
    }
    s->attempt = mesh_request_attempt(req);
    snprintf(s->key, sizeof s->key, "%s", mesh_request_key(req) ? mesh_request_key(req) : "");
    snprintf(s->from, sizeof s->from, "%s", mesh_request_from(req));
    snprintf(s->from_name, sizeof s->from_name, "%s", mesh_request_from_name(req));
    snprintf(s->path, sizeof s->path, "%s", mesh_request_path(req));
    switch (s->mode) {
    case H_ECHO:
        s_echo(req, s->name);
        break;
    case H_HOLD:
        if (s->nheld < 16) {
            s->held[s->nheld++] = req; /* freed by mesh_peer_destroy */
        }
        break;
    case H_REJECT:
        mesh_request_reject(req);
        break;
    case H_ERROR:
        mesh_request_error(req, s->message);
        break;
    case H_LATER:
        s->later_req = req;
        ev_timer_init(&s->later, s_on_later, 0.2, 0.0);
        s->later.data = s;
        ev_timer_start(g_loop, &s->later);
        break;
    case H_NESTED: {
        nested_t *n = &g_nested[g_nnested++ % 4];
        n->req = req;
        n->name = s->name;
        int rc = mesh_peer_call(peer, s->nested_path, mesh_request_data(req),
                                mesh_request_size(req), NULL, s_on_nested_reply, n);
        if (rc != 0) {
            mesh_request_error(req, mesh_err_name(rc));
        }
        break;
    }
    }
}

static svc_t *s_svc(const char *name, hmode_t mode)
{
    for (int i = 0; i < MAX_SVCS; i++) {
        if (!g_svc[i].name) {
            g_svc[i].name = name;
            g_svc[i].mode = mode;
            return &g_svc[i];
        }
    }
    cr_assert_fail("too many services");
    return NULL;
}

/*  Offers path on p with a new service record. */
static svc_t *s_expose(mesh_peer_t *p, const char *path, hmode_t mode,
                       const mesh_expose_opts_t *opts)
{
    svc_t *s = s_svc(mesh_peer_name(p), mode);
    cr_assert_eq(mesh_peer_expose(p, path, s_handler, s, opts), 0, "expose %s", path);
    return s;
}

/* ------------------------------------------------------------------------ */
/* replies */

typedef struct {
    int n; /* callbacks run: must end at exactly 1 */
    bool early; /* a callback ran inside the call that registered it */
    int status;
    char data[512];
    size_t size;
    bool has_data;
    char error[64];
    bool has_error;
    char peer_id[33];
    char peer_name[32];
    int64_t at;
    pthread_t thread; /* the callback's */
} rec_t;

static rec_t g_rec[MAX_RECS];
static bool g_in_call;

static void s_on_reply(mesh_peer_t *peer, const mesh_reply_t *r, void *arg)
{
    rec_t *x = arg;
    x->thread = pthread_self();
    x->n++;
    x->early |= g_in_call;
    x->at = s_ms();
    x->status = r->status;
    x->has_data = r->data != NULL;
    x->size = r->size;
    if (r->data && r->size < sizeof x->data) {
        memcpy(x->data, r->data, r->size);
        x->data[r->size] = '\0';
    }
    x->has_error = r->error != NULL;
    snprintf(x->error, sizeof x->error, "%s", r->error ? r->error : "");
    snprintf(x->peer_id, sizeof x->peer_id, "%s", r->peer_id ? r->peer_id : "");
    snprintf(x->peer_name, sizeof x->peer_name, "%s", r->peer_name ? r->peer_name : "");
}

static int s_call(mesh_peer_t *p, const char *path, const char *payload,
                  const mesh_call_opts_t *opts, rec_t *rec)
{
    g_in_call = true;
    int rc = mesh_peer_call(p, path, payload, strlen(payload), opts, s_on_reply, rec);
    g_in_call = false;
    return rc;
}

/*  A call that must be answered: returns its record once it is. */
static rec_t *s_call_wait(mesh_peer_t *p, const char *path, const char *payload,
                          const mesh_call_opts_t *opts)
{
    static int next;
    rec_t *rec = &g_rec[next++ % MAX_RECS];
    memset(rec, 0, sizeof *rec);
    cr_assert_eq(s_call(p, path, payload, opts, rec), 0, "call %s", path);
    run_until(rec->n > 0, 5000);
    cr_assert_eq(rec->n, 1, "no reply to %s", path);
    cr_assert_not(rec->early, "callback ran inside mesh_peer_call");
    return rec;
}

typedef struct {
    int n;
    int64_t at;
    size_t nreplies, nmissing;
    int status[8];
    char name[8][32];
    char data[8][64];
    char error[8][32];
    char missing_name[8][32];
    char missing_id[8][33];
} gather_rec_t;

static gather_rec_t g_gather[4];

static void s_on_gather(mesh_peer_t *peer, const mesh_gather_t *g, void *arg)
{
    gather_rec_t *x = arg;
    x->n++;
    x->at = s_ms();
    x->nreplies = g->nreplies;
    x->nmissing = g->nmissing;
    for (size_t i = 0; i < g->nreplies && i < 8; i++) {
        x->status[i] = g->replies[i].status;
        snprintf(x->name[i], sizeof x->name[i], "%s", g->replies[i].peer_name);
        snprintf(x->data[i], sizeof x->data[i], "%.*s", (int)g->replies[i].size,
                 g->replies[i].data ? (const char *)g->replies[i].data : "");
        snprintf(x->error[i], sizeof x->error[i], "%s",
                 g->replies[i].error ? g->replies[i].error : "");
    }
    for (size_t i = 0; i < g->nmissing && i < 8; i++) {
        snprintf(x->missing_name[i], sizeof x->missing_name[i], "%s", g->missing_names[i]);
        snprintf(x->missing_id[i], sizeof x->missing_id[i], "%s", g->missing_ids[i]);
    }
}

static int s_find_reply(const gather_rec_t *g, const char *name)
{
    for (size_t i = 0; i < g->nreplies && i < 8; i++) {
        if (strcmp(g->name[i], name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* the suite */

static void s_init(void)
{
    static unsigned counter;
    g_main = pthread_self();
    memset(g_peers, 0, sizeof g_peers);
    memset(g_svc, 0, sizeof g_svc);
    memset(g_rec, 0, sizeof g_rec);
    memset(g_nested, 0, sizeof g_nested);
    g_nnested = 0;
    g_in_call = false;
    g_drive2 = false;
    g_loop2 = NULL;
    g_loop = ev_loop_new(0);
    cr_assert_not_null(g_loop);
    ev_timer_init(&g_tick, s_on_tick, 0.005, 0.005);
    ev_timer_start(g_loop, &g_tick);
    g_port = test_free_udp_port();
    snprintf(g_realm, sizeof g_realm, "test-%d-%u-%u", (int)getpid(), counter++, g_port);
}

/*  Destroys every peer and the loops. Idempotent: the end of each test
    calls it (through s_end), and fini again for a test that aborted. */
static void s_teardown(void)
{
    if (!g_loop) {
        return;
    }
    for (int i = 0; i < MAX_PEERS; i++) {
        mesh_peer_destroy(&g_peers[i]);
    }
    for (int i = 0; i < MAX_SVCS; i++) {
        if (g_svc[i].later_req) {
            ev_timer_stop(g_loop, &g_svc[i].later);
        }
    }
    ev_timer_stop(g_loop, &g_tick);
    ev_loop_destroy(g_loop);
    g_loop = NULL;
    if (g_loop2) {
        ev_loop_destroy(g_loop2);
        g_loop2 = NULL;
    }
}

/*  The last line of every test: tear down to zero, then ask LeakSanitizer
    (a leak reported when the worker exits would not fail the test). */
static void s_end(void)
{
    s_teardown();
    cr_assert_eq(S_LEAKS(), 0, "memory leaked: see LeakSanitizer's report");
}

static void s_fini(void)
{
    s_teardown();
}

TestSuite(peer, .init = s_init, .fini = s_fini, .timeout = 60);

/* ------------------------------------------------------------------------ */
/* discovery */

Test(peer, peers_become_members_and_learn_services)
{
    mesh_peer_t *a = s_new("a");
    mesh_peer_t *b = s_new("b");
    mesh_peer_t *c = s_new("c");
    const char *eu[] = {"zone=eu", "gpu=no"};
    mesh_expose_opts_t opts = {.tags = eu, .ntags = 2};
    s_expose(a, "/a/one", H_ECHO, &opts);
    s_expose(b, "/b/one", H_ECHO, NULL);
    cr_expect_eq(s_members(a), 1, "before attach a peer knows only itself");
    s_attach(a);
    s_attach(b);
    s_attach(c);
    mesh_peer_t *all[] = {a, b, c};
    bool ok = false;
    run_until((ok = s_members(a) == 3 && s_members(b) == 3 && s_members(c) == 3 &&
                    s_knows(b, "/a/one", "a") && s_knows(c, "/a/one", "a") &&
                    s_knows(a, "/b/one", "b") && s_knows(c, "/b/one", "b")),
              DISCOVERY_MS);
    cr_assert(ok, "members: a %zu b %zu c %zu", s_members(a), s_members(b), s_members(c));
    /* a peer lists its own services too, and tags travel with them */
    cr_expect(s_knows(a, "/a/one", "a"));
    cr_expect_str_eq(s_route(c, "/a/one", "a").tags, "zone=eu;gpu=no;");
    cr_expect_not(s_route(c, "/a/one", "b").found);
    /* c offers nothing: listed once, with no path */
    cr_expect_eq(s_pathless(a, "c"), 1);
    cr_expect_eq(s_pathless(a, "b"), 0);
    for (int i = 0; i < 3; i++) {
        mesh_stats_t st;
        mesh_peer_stats(all[i], &st);
        cr_expect_eq(st.peers, 3);
        cr_expect_eq(strlen(mesh_peer_id(all[i])), 32);
        cr_expect_str_eq(mesh_peer_realm(all[i]), g_realm);
        cr_expect_not_null(mesh_peer_endpoint(all[i]));
    }
    /* a service exposed while running is announced at once */
    s_expose(c, "/c/late", H_ECHO, NULL);
    run_until(s_knows(a, "/c/late", "c") && s_knows(b, "/c/late", "c"), 2000);
    cr_expect(s_knows(a, "/c/late", "c") && s_knows(b, "/c/late", "c"));
    /* and withdrawn at once */
    cr_assert_eq(mesh_peer_unexpose(c, "/c/late"), 0);
    cr_expect_eq(mesh_peer_unexpose(c, "/c/late"), MESH_ERR_NOTFOUND);
    run_until(!s_route(a, "/c/late", "c").found, 2000);
    cr_expect_not(s_route(a, "/c/late", "c").found);
    s_end();
}

Test(peer, other_realms_are_ignored)
{
    mesh_peer_t *a = s_started("a");
    mesh_config_t c = s_config("stranger");
    c.realm = "some-other-realm";
    mesh_peer_t *x = s_new_cfg(&c);
    s_expose(x, "/svc", H_ECHO, NULL);
    s_attach(x);
    mesh_peer_t *b = s_new("b");
    s_expose(b, "/svc", H_ECHO, NULL);
    s_attach(b);
    run_until(s_knows(a, "/svc", "b"), DISCOVERY_MS);
    cr_assert(s_knows(a, "/svc", "b"));
    run_for(500);
    cr_expect_eq(s_members(a), 2, "a peer of another realm became a member");
    cr_expect_not(s_route(a, "/svc", "stranger").found);
    s_end();
}

Test(peer, newcomer_services_are_known_before_any_ping)
{
    /* pings every 20 s: only the join-time exchange can teach services */
    mesh_config_t ca = s_config("a");
    ca.ping_interval_ms = 20000;
    ca.ping_timeout_ms = 60000;
    mesh_config_t cb = ca;
    cb.name = "b";
    mesh_peer_t *a = s_new_cfg(&ca);
    s_expose(a, "/early", H_ECHO, NULL);
    s_attach(a);
    run_for(300);
    mesh_peer_t *b = s_new_cfg(&cb);
    s_expose(b, "/newcomer", H_ECHO, NULL);
    int64_t t0 = s_ms();
    s_attach(b);
    run_until(s_knows(b, "/early", "a") && s_knows(a, "/newcomer", "b"), 5000);
    cr_assert(s_knows(b, "/early", "a"), "the newcomer did not learn the old services");
    cr_assert(s_knows(a, "/newcomer", "b"), "the old peer did not learn the newcomer's");
    cr_expect_lt(s_ms() - t0, 5000);
    rec_t *r = s_call_wait(b, "/early", "x", NULL);
    cr_expect_eq(r->status, 0);
    cr_expect_str_eq(r->data, "a:x");
    s_end();
}

/* ------------------------------------------------------------------------ */
/* calls */

Test(peer, call_round_trip)
{
    mesh_peer_t *p = s_new("prov");
    svc_t *s = s_expose(p, "/echo", H_ECHO, NULL);
    s_attach(p);
    mesh_peer_t *c = s_started("caller");
    run_until(s_knows(c, "/echo", "prov"), DISCOVERY_MS);
    cr_assert(s_knows(c, "/echo", "prov"));

    /* binary payload with a NUL inside */
    static const char payload[] = {'h', 'i', 0, 'x', (char)0xff};
    rec_t *rec = &g_rec[0];
    g_in_call = true;
    int rc = mesh_peer_call(c, "/echo", payload, sizeof payload, NULL, s_on_reply, rec);
    g_in_call = false;
    cr_assert_eq(rc, 0);
    run_until(rec->n > 0, 5000);
    cr_assert_eq(rec->n, 1);
    cr_expect_not(rec->early);
    cr_assert_eq(rec->status, 0, "status %s", mesh_err_name(rec->status));
    cr_assert_eq(rec->size, 5 + sizeof payload);
    cr_expect_eq(memcmp(rec->data, "prov:", 5), 0);
    cr_expect_eq(memcmp(rec->data + 5, payload, sizeof payload), 0);
    cr_expect_not(rec->has_error);
    cr_expect_str_eq(rec->peer_id, mesh_peer_id(p));
    cr_expect_str_eq(rec->peer_name, "prov");
    /* what the handler saw */
    cr_expect_eq(s->calls, 1);
    cr_expect_eq(s->casts, 0);
    cr_expect_eq(s->attempt, 1);
    cr_expect_str_eq(s->from, mesh_peer_id(c));
    cr_expect_str_eq(s->from_name, "caller");
    cr_expect_str_eq(s->path, "/echo");
    cr_expect_str_eq(s->key, "");
    /* an empty payload is a payload */
    rec_t *e = s_call_wait(c, "/echo", "", NULL);
    cr_expect_eq(e->status, 0);
    cr_expect_str_eq(e->data, "prov:");
    /* counters */
    run_for(50);
    mesh_stats_t sc, sp;
    mesh_peer_stats(c, &sc);
    mesh_peer_stats(p, &sp);
    cr_expect_eq(sc.requests_out, 2);
    cr_expect_eq(sc.replies_in, 2);
    cr_expect_eq(sc.errors_out, 0);
    cr_expect_eq(sp.requests_in, 2);
    cr_expect_eq(sp.replies_out, 2);
    /* the exactly-once rule: nothing more arrives */
    run_for(300);
    cr_expect_eq(rec->n, 1);
    s_end();
}

Test(peer, bad_arguments_are_refused)
{
    mesh_peer_t *p = s_new("p");
    cr_expect_eq(mesh_peer_expose(p, "no-slash", s_handler, &g_svc[0], NULL), MESH_ERR_INVAL);
    cr_expect_eq(mesh_peer_expose(p, "/x", NULL, NULL, NULL), MESH_ERR_INVAL);
    char longpath[300];
    longpath[0] = '/';
    memset(longpath + 1, 'a', sizeof longpath - 2);
    longpath[sizeof longpath - 1] = '\0';
    cr_expect_eq(mesh_peer_expose(p, longpath, s_handler, &g_svc[0], NULL), MESH_ERR_TOOLONG);
    const char *bad[] = {"notag"};
    mesh_expose_opts_t o = {.tags = bad, .ntags = 1};
    cr_expect_eq(mesh_peer_expose(p, "/x", s_handler, &g_svc[0], &o), MESH_ERR_INVAL);
    cr_expect_eq(mesh_peer_expose(p, "/x", s_handler, &g_svc[0], NULL), 0);
    cr_expect_eq(mesh_peer_expose(p, "/x", s_handler, &g_svc[0], NULL), MESH_ERR_EXISTS);
    /* not running yet */
    cr_expect_eq(mesh_peer_call(p, "/x", "a", 1, NULL, s_on_reply, &g_rec[0]), MESH_ERR_STATE);
    s_attach(p);
    cr_expect_eq(mesh_peer_attach(p, g_loop), MESH_ERR_STATE);
    cr_expect_eq(mesh_peer_start_thread(p), MESH_ERR_STATE);
    cr_expect_eq(mesh_peer_call(p, "x", "a", 1, NULL, s_on_reply, &g_rec[0]), MESH_ERR_INVAL);
    cr_expect_eq(mesh_peer_call(p, "/x", "a", 1, NULL, NULL, NULL), MESH_ERR_INVAL);
    mesh_call_opts_t unknown = {.selector = "no-such-selector"};
    cr_expect_eq(mesh_peer_call(p, "/x", "a", 1, &unknown, s_on_reply, &g_rec[0]),
                 MESH_ERR_INVAL);
    mesh_call_opts_t keyless = {.selector = "key"};
    cr_expect_eq(mesh_peer_call(p, "/x", "a", 1, &keyless, s_on_reply, &g_rec[0]),
                 MESH_ERR_INVAL);
    mesh_call_opts_t all = {.selector = "all"};
    cr_expect_eq(mesh_peer_call(p, "/x", "a", 1, &all, s_on_reply, &g_rec[0]), MESH_ERR_INVAL);
    cr_expect_eq(mesh_peer_subscribe(p, "", false, NULL, NULL), MESH_ERR_INVAL);
    cr_expect_eq(mesh_peer_add_selector(p, "round_robin", NULL, NULL), MESH_ERR_INVAL);
    run_for(200);
    cr_expect_eq(g_rec[0].n, 0, "a refused call ran its callback");
    cr_expect_null(mesh_peer_new(&(mesh_config_t){.call_timeout_ms = -1}));
    s_end();
}

Test(peer, no_provider_fails_at_once)
{
    mesh_peer_t *p = s_new("prov");
    s_expose(p, "/exists", H_ECHO, NULL);
    s_attach(p);
    mesh_peer_t *c = s_started("caller");
    run_until(s_knows(c, "/exists", "prov"), DISCOVERY_MS);
    cr_assert(s_knows(c, "/exists", "prov"));
    rec_t *rec = &g_rec[0];
    int64_t t0 = s_ms();
    cr_expect_eq(s_call(c, "/nobody", "x", NULL, rec), MESH_ERR_NOPROVIDER);
    cr_expect_lt(s_ms() - t0, 100);
    cr_expect_eq(mesh_peer_cast(c, "/nobody", "x", 1, NULL), MESH_ERR_NOPROVIDER);
    mesh_call_opts_t all = {.selector = "all"};
    cr_expect_eq(mesh_peer_cast(c, "/nobody", "x", 1, &all), MESH_ERR_NOPROVIDER);
    cr_expect_eq(mesh_peer_fanout(c, "/nobody", "x", 1, NULL, NULL, NULL), MESH_ERR_INVAL);
    cr_expect_eq(mesh_peer_fanout(c, "/nobody", "x", 1, NULL, s_on_gather, &g_gather[0]),
                 MESH_ERR_NOPROVIDER);
    mesh_call_opts_t direct = {.selector = "direct", .peer = "nobody-by-that-name"};
    cr_expect_eq(s_call(c, "/exists", "x", &direct, rec), MESH_ERR_NOPROVIDER);
    run_for(300);
    cr_expect_eq(rec->n, 0, "the callback of a refused call ran");
    cr_expect_eq(g_gather[0].n, 0);
    /* and the existing one still works */
    cr_expect_eq(s_call_wait(c, "/exists", "x", NULL)->status, 0);
    s_end();
}

Test(peer, deadline_times_out_and_late_reply_is_dropped)
{
    mesh_peer_t *p = s_new("p1");
    svc_t *s = s_expose(p, "/slow", H_HOLD, NULL);
    s_attach(p);
    mesh_peer_t *c = s_started("caller");
    run_until(s_knows(c, "/slow", "p1"), DISCOVERY_MS);
    cr_assert(s_knows(c, "/slow", "p1"));
    rec_t *rec = &g_rec[0];
    mesh_call_opts_t o = {.timeout_ms = 600};
    int64_t t0 = s_ms();
    cr_assert_eq(s_call(c, "/slow", "x", &o, rec), 0);
    run_until(rec->n > 0, 400);
    cr_assert_eq(rec->n, 0, "the call finished before its deadline: %s",
                 mesh_err_name(rec->status));
    cr_expect_eq(s->calls, 1, "the request did not reach the provider");
    run_until(rec->n > 0, 5000);
    cr_assert_eq(rec->n, 1);
    cr_expect_eq(rec->status, MESH_ERR_TIMEOUT, "status %s", mesh_err_name(rec->status));
    cr_expect_geq(rec->at - t0, 590);
    cr_expect_lt(rec->at - t0, 3000);
    cr_expect_not(rec->has_data && rec->size);
    cr_expect_str_eq(rec->peer_name, "p1");
    /* the provider answers after all: dropped, counted, no second callback */
    cr_assert_eq(s->nheld, 1);
    cr_expect_eq(mesh_request_reply(s->held[0], "late", 4), 0);
    s->nheld = 0;
    mesh_stats_t st = {0};
    run_until((mesh_peer_stats(c, &st), st.replies_late == 1), 2000);
    cr_expect_eq(st.replies_late, 1);
    cr_expect_eq(st.errors_out, 1);
    cr_expect_eq(rec->n, 1);
    /* the default deadline comes from the config */
    mesh_config_t cfg = s_config("quick");
    cfg.call_timeout_ms = 300;
    mesh_peer_t *q = s_new_cfg(&cfg);
    s_attach(q);
    run_until(s_knows(q, "/slow", "p1"), DISCOVERY_MS);
    rec_t *r2 = &g_rec[1];
    t0 = s_ms();
    cr_assert_eq(s_call(q, "/slow", "y", NULL, r2), 0);
    run_until(r2->n > 0, 5000);
    cr_expect_eq(r2->status, MESH_ERR_TIMEOUT);
    cr_expect_geq(r2->at - t0, 290);
    cr_expect_lt(r2->at - t0, 2500);
    s_end();
}

Test(peer, remote_error_carries_the_message)
{
    mesh_peer_t *p = s_new("p1");
    svc_t *s = s_expose(p, "/fail", H_ERROR, NULL);
    s->message = "boom";
    s_attach(p);
    mesh_peer_t *c = s_started("caller");
    run_until(s_knows(c, "/fail", "p1"), DISCOVERY_MS);
    cr_assert(s_knows(c, "/fail", "p1"));
    rec_t *r = s_call_wait(c, "/fail", "x", NULL);
    cr_expect_eq(r->status, MESH_ERR_REMOTE, "status %s", mesh_err_name(r->status));
    cr_expect(r->has_error);
    cr_expect_str_eq(r->error, "boom");
    cr_expect_str_eq(r->peer_name, "p1");
    cr_expect_str_eq(r->peer_id, mesh_peer_id(p));
    mesh_stats_t st;
    mesh_peer_stats(c, &st);
    cr_expect_eq(st.errors_out, 1);
    s_end();
}

/*  A custom selector: the candidate named by arg if present, else the first. */
static int s_prefer(const mesh_candidate_t *cands, size_t n, const char *key, void *arg)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(cands[i].name, (const char *)arg) == 0) {
            return (int)i;
        }
    }
    return n ? 0 : -1;
}

Test(peer, reject_moves_on_to_the_next_candidate)
{
    mesh_peer_t *p1 = s_new("p1");
    mesh_peer_t *p2 = s_new("p2");
    svc_t *s1 = s_expose(p1, "/job", H_REJECT, NULL);
    svc_t *s2 = s_expose(p2, "/job", H_ECHO, NULL);
    s_attach(p1);
    s_attach(p2);
    mesh_peer_t *c = s_started("caller");
    cr_assert_eq(mesh_peer_add_selector(c, "prefer", s_prefer, "p1"), 0);
    run_until(s_knows(c, "/job", "p1") && s_knows(c, "/job", "p2"), DISCOVERY_MS);
    cr_assert(s_knows(c, "/job", "p1") && s_knows(c, "/job", "p2"));
    /* p1 is asked first every time, rejects, and p2 answers */
    mesh_call_opts_t o = {.selector = "prefer"};
    for (int i = 0; i < 10; i++) {
        rec_t *r = s_call_wait(c, "/job", "x", &o);
        cr_assert_eq(r->status, 0, "call %d: %s", i, mesh_err_name(r->status));
        cr_expect_str_eq(r->data, "p2:x");
        cr_expect_str_eq(r->peer_name, "p2");
    }
    cr_expect_eq(s1->calls, 10);
    cr_expect_eq(s2->calls, 10);
    cr_expect_eq(s2->attempt, 2, "the second candidate saw attempt %u", s2->attempt);
    mesh_stats_t st;
    mesh_peer_stats(p1, &st);
    cr_expect_eq(st.rejected_in, 10);
    /* with the default selector too */
    for (int i = 0; i < 10; i++) {
        rec_t *r = s_call_wait(c, "/job", "y", NULL);
        cr_assert_eq(r->status, 0, "call %d: %s", i, mesh_err_name(r->status));
        cr_expect_str_eq(r->peer_name, "p2");
    }
    s_end();
}

Test(peer, every_candidate_rejecting_is_rejected)
{
    mesh_peer_t *p[4];
    svc_t *s[4];
    const char *names[] = {"p1", "p2", "p3", "p4"};
    for (int i = 0; i < 4; i++) {
        p[i] = s_new(names[i]);
        s[i] = s_expose(p[i], (i < 2) ? "/rej2" : "/rej4", H_REJECT, NULL);
        if (i < 2) {
            s_expose(p[i], "/rej4", H_REJECT, NULL);
        }
        s_attach(p[i]);
    }
    mesh_peer_t *c = s_started("caller"); /* max_attempts: the default 3 */
    bool ok = false;
    run_until((ok = s_knows(c, "/rej2", "p1") && s_knows(c, "/rej2", "p2") &&
                    s_knows(c, "/rej4", "p1") && s_knows(c, "/rej4", "p2") &&
                    s_knows(c, "/rej4", "p3") && s_knows(c, "/rej4", "p4")),
              DISCOVERY_MS);
    cr_assert(ok);
    rec_t *r = s_call_wait(c, "/rej2", "x", NULL);
    cr_expect_eq(r->status, MESH_ERR_REJECTED, "status %s", mesh_err_name(r->status));
    cr_expect_eq(s[0]->calls + s[1]->calls, 2, "each of two providers is asked once");
    /* four providers, at most max_attempts asked */
    int before = 0;
    for (int i = 0; i < MAX_SVCS; i++) {
        before += g_svc[i].calls;
    }
    r = s_call_wait(c, "/rej4", "x", NULL);
    cr_expect_eq(r->status, MESH_ERR_REJECTED, "status %s", mesh_err_name(r->status));
    run_for(200);
    int after = 0;
    for (int i = 0; i < MAX_SVCS; i++) {
        after += g_svc[i].calls;
    }
    cr_expect_eq(after - before, MESH_DEFAULT_MAX_ATTEMPTS);
    s_end();
}

static atomic_bool g_active;

static bool s_is_active(mesh_peer_t *peer, void *arg)
{
    return *(atomic_bool *)arg;
}

Test(peer, inactive_service_is_not_chosen)
{
    g_active = false;
    mesh_peer_t *p1 = s_new("p1");
    mesh_peer_t *p2 = s_new("p2");
    mesh_expose_opts_t o = {.active = s_is_active, .active_arg = &g_active};
    svc_t *s1 = s_expose(p1, "/svc", H_ECHO, &o);
    s_expose(p2, "/svc", H_ECHO, NULL);
    s_expose(p1, "/other", H_ECHO, NULL);
    s_attach(p1);
    s_attach(p2);
    mesh_peer_t *c = s_started("caller");
    run_until(s_knows(c, "/svc", "p2") && s_knows(c, "/other", "p1"), DISCOVERY_MS);
    cr_assert(s_knows(c, "/svc", "p2") && s_knows(c, "/other", "p1"));
    cr_expect_not(s_route(c, "/svc", "p1").found, "an inactive service is advertised");
    mesh_call_opts_t rr = {.selector = "round_robin"};
    for (int i = 0; i < 6; i++) {
        rec_t *r = s_call_wait(c, "/svc", "x", &rr);
        cr_expect_eq(r->status, 0);
        cr_expect_str_eq(r->peer_name, "p2");
    }
    cr_expect_eq(s1->calls, 0);
    mesh_call_opts_t d1 = {.selector = "direct", .peer = "p1"};
    cr_expect_eq(s_call(c, "/svc", "x", &d1, &g_rec[40]), MESH_ERR_NOPROVIDER);

    /* active again: offered within a few ping intervals */
    g_active = true;
    run_until(s_knows(c, "/svc", "p1"), 2000);
    cr_assert(s_knows(c, "/svc", "p1"), "the reactivated service was not announced");
    rec_t *r = s_call_wait(c, "/svc", "x", &d1);
    cr_expect_eq(r->status, 0);
    cr_expect_str_eq(r->peer_name, "p1");
    int names[2] = {0, 0};
    for (int i = 0; i < 6; i++) {
        r = s_call_wait(c, "/svc", "x", &rr);
        cr_expect_eq(r->status, 0);
        names[strcmp(r->peer_name, "p1") == 0 ? 0 : 1]++;
    }
    cr_expect(names[0] > 0 && names[1] > 0, "round robin used p1 %d p2 %d times", names[0],
              names[1]);

    /* and inactive again */
    g_active = false;
    run_until(!s_route(c, "/svc", "p1").found, 2000);
    cr_expect_not(s_route(c, "/svc", "p1").found);
    cr_expect_eq(s_call(c, "/svc", "x", &d1, &g_rec[41]), MESH_ERR_NOPROVIDER);
    run_for(100);
    cr_expect_eq(g_rec[40].n + g_rec[41].n, 0);
    s_end();
}

Test(peer, async_reply_from_a_timer)
{
    mesh_peer_t *p = s_new("p1");
    s_expose(p, "/later", H_LATER, NULL);
    s_attach(p);
    mesh_peer_t *c = s_started("caller");
    run_until(s_knows(c, "/later", "p1"), DISCOVERY_MS);
    cr_assert(s_knows(c, "/later", "p1"));
    int64_t t0 = s_ms();
    rec_t *r = s_call_wait(c, "/later", "soon", NULL);
    cr_expect_eq(r->status, 0, "status %s", mesh_err_name(r->status));
    cr_expect_str_eq(r->data, "p1:soon");
    cr_expect_geq(r->at - t0, 190, "replied before the handler's timer");
    mesh_stats_t st;
    mesh_peer_stats(p, &st);
    cr_expect_eq(st.replies_out, 1);
    s_end();
}

Test(peer, nested_call_before_replying)
{
    mesh_peer_t *outer = s_new("outer");
    mesh_peer_t *inner = s_new("inner");
    svc_t *so = s_expose(outer, "/outer", H_NESTED, NULL);
    so->nested_path = "/inner";
    svc_t *sl = s_expose(outer, "/loop", H_NESTED, NULL); /* a call to its own service */
    sl->nested_path = "/outer";
    s_expose(inner, "/inner", H_ECHO, NULL);
    s_attach(outer);
    s_attach(inner);
    mesh_peer_t *c = s_started("caller");
    run_until(s_knows(c, "/outer", "outer") && s_knows(outer, "/inner", "inner"),
              DISCOVERY_MS);
    cr_assert(s_knows(c, "/outer", "outer") && s_knows(outer, "/inner", "inner"));
    rec_t *r = s_call_wait(c, "/outer", "q", NULL);
    cr_expect_eq(r->status, 0, "status %s", mesh_err_name(r->status));
    cr_expect_str_eq(r->data, "outer(inner:q)");
    cr_expect_str_eq(r->peer_name, "outer");
    /* outer -> outer (itself, through its local queue) -> inner */
    r = s_call_wait(c, "/loop", "z", NULL);
    cr_expect_eq(r->status, 0, "status %s", mesh_err_name(r->status));
    cr_expect_str_eq(r->data, "outer(outer(inner:z))");
    s_end();
}

/* ------------------------------------------------------------------------ */
/* selectors */

Test(peer, least_loaded_avoids_a_busy_provider)
{
    mesh_peer_t *p1 = s_new("p1");
    mesh_peer_t *p2 = s_new("p2");
    svc_t *s1 = s_expose(p1, "/work", H_HOLD, NULL);
    svc_t *s2 = s_expose(p2, "/work", H_ECHO, NULL);
    s_attach(p1);
    s_attach(p2);
    mesh_peer_t *c = s_started("caller");
    run_until(s_knows(c, "/work", "p1") && s_knows(c, "/work", "p2"), DISCOVERY_MS);
    cr_assert(s_knows(c, "/work", "p1") && s_knows(c, "/work", "p2"));
    /* make p1 busy: three requests it holds */
    mesh_call_opts_t d1 = {.selector = "direct", .peer = "p1", .timeout_ms = 30000};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(s_call(c, "/work", "busy", &d1, &g_rec[50 + i]), 0);
    }
    run_until(s1->calls == 3 && s_route(c, "/work", "p1").inflight >= 3, 3000);
    cr_assert_eq(s1->calls, 3);
    cr_assert_geq(s_route(c, "/work", "p1").inflight, 3, "p1's status did not reach the caller");
    for (int i = 0; i < 10; i++) {
        rec_t *r = s_call_wait(c, "/work", "x", NULL);
        cr_expect_eq(r->status, 0, "status %s", mesh_err_name(r->status));
        cr_expect_str_eq(r->peer_name, "p2", "least_loaded chose the busy provider");
    }
    cr_expect_eq(s1->calls, 3);
    cr_expect_eq(s2->calls, 10);
    s_end();
}

Test(peer, round_robin_cycles_over_three_providers)
{
    const char *names[] = {"p1", "p2", "p3"};
    svc_t *s[3];
    for (int i = 0; i < 3; i++) {
        mesh_peer_t *p = s_new(names[i]);
        s[i] = s_expose(p, "/rr", H_ECHO, NULL);
        s_attach(p);
    }
    mesh_peer_t *c = s_started("caller");
    run_until(s_knows(c, "/rr", "p1") && s_knows(c, "/rr", "p2") && s_knows(c, "/rr", "p3"),
              DISCOVERY_MS);
    cr_assert(s_knows(c, "/rr", "p1") && s_knows(c, "/rr", "p2") && s_knows(c, "/rr", "p3"));
    mesh_call_opts_t rr = {.selector = "round_robin"};
    char seq[9][32];
    for (int i = 0; i < 9; i++) {
        rec_t *r = s_call_wait(c, "/rr", "x", &rr);
        cr_assert_eq(r->status, 0);
        snprintf(seq[i], sizeof seq[i], "%s", r->peer_name);
    }
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(s[i]->calls, 3, "%s got %d of 9", names[i], (int)s[i]->calls);
    }
    for (int i = 3; i < 9; i++) {
        cr_expect_str_eq(seq[i], seq[i - 3], "not a cycle at call %d", i);
    }
    /* issued in one go, too */
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(s_call(c, "/rr", "y", &rr, &g_rec[20 + i]), 0);
    }
    run_until(s[0]->calls + s[1]->calls + s[2]->calls == 15, 3000);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(s[i]->calls, 5);
    }
    s_end();
}

Test(peer, key_sticks_to_one_provider)
{
    const char *names[] = {"p1", "p2", "p3"};
    svc_t *s[3];
    for (int i = 0; i < 3; i++) {
        mesh_peer_t *p = s_new(names[i]);
        s[i] = s_expose(p, "/kv", H_ECHO, NULL);
        s_attach(p);
    }
    mesh_peer_t *c = s_started("caller");
    run_until(s_knows(c, "/kv", "p1") && s_knows(c, "/kv", "p2") && s_knows(c, "/kv", "p3"),
              DISCOVERY_MS);
    cr_assert(s_knows(c, "/kv", "p1") && s_knows(c, "/kv", "p2") && s_knows(c, "/kv", "p3"));
    mesh_call_opts_t o = {.selector = "key", .key = "user-42"};
    char first[32] = "";
    for (int i = 0; i < 5; i++) {
        rec_t *r = s_call_wait(c, "/kv", "x", &o);
        cr_assert_eq(r->status, 0);
        if (i == 0) {
            snprintf(first, sizeof first, "%s", r->peer_name);
        }
        cr_expect_str_eq(r->peer_name, first, "key user-42 moved");
    }
    int used[3] = {0};
    for (int k = 0; k < 30; k++) {
        char key[32];
        snprintf(key, sizeof key, "key-%d", k);
        mesh_call_opts_t ok = {.selector = "key", .key = key};
        rec_t *r = s_call_wait(c, "/kv", "x", &ok);
        cr_assert_eq(r->status, 0);
        for (int i = 0; i < 3; i++) {
            used[i] += strcmp(r->peer_name, names[i]) == 0;
        }
    }
    cr_expect((used[0] > 0) + (used[1] > 0) + (used[2] > 0) >= 2,
              "30 keys all went to one provider (%d %d %d)", used[0], used[1], used[2]);
    /* and the first key still lands where it did, carrying its key */
    rec_t *r = s_call_wait(c, "/kv", "x", &o);
    cr_expect_str_eq(r->peer_name, first);
    for (int i = 0; i < 3; i++) {
        if (strcmp(names[i], first) == 0) {
            cr_expect_str_eq(s[i]->key, "user-42");
        }
    }
    s_end();
}

static int g_custom_n;
static char g_custom_key[32];

static int s_last_by_name(const mesh_candidate_t *cands, size_t n, const char *key, void *arg)
{
    g_custom_n = (int)n;
    snprintf(g_custom_key, sizeof g_custom_key, "%s", key ? key : "");
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        if (best < 0 || strcmp(cands[i].name, cands[best].name) > 0) {
            best = (int)i;
        }
    }
    return best;
}

static int s_nobody(const mesh_candidate_t *cands, size_t n, const char *key, void *arg)
{
    return -1;
}

Test(peer, direct_custom_and_tag_selection)
{
    const char *names[] = {"p1", "p2", "p3"};
    const char *zones[][1] = {{"zone=eu"}, {"zone=us"}, {"zone=us"}};
    mesh_peer_t *p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = s_new(names[i]);
        mesh_expose_opts_t o = {.tags = zones[i], .ntags = 1};
        s_expose(p[i], "/sel", H_ECHO, &o);
        s_attach(p[i]);
    }
    mesh_peer_t *c = s_started("caller");
    cr_assert_eq(mesh_peer_add_selector(c, "last", s_last_by_name, NULL), 0);
    cr_assert_eq(mesh_peer_add_selector(c, "nobody", s_nobody, NULL), 0);
    cr_expect_eq(mesh_peer_add_selector(c, "last", s_last_by_name, NULL), MESH_ERR_EXISTS);
    run_until(s_knows(c, "/sel", "p1") && s_knows(c, "/sel", "p2") && s_knows(c, "/sel", "p3"),
              DISCOVERY_MS);
    cr_assert(s_knows(c, "/sel", "p1") && s_knows(c, "/sel", "p2") && s_knows(c, "/sel", "p3"));

    /* direct, by name and by id */
    for (int i = 0; i < 3; i++) {
        mesh_call_opts_t by_name = {.selector = "direct", .peer = names[i]};
        rec_t *r = s_call_wait(c, "/sel", "x", &by_name);
        cr_expect_str_eq(r->peer_name, names[i]);
        mesh_call_opts_t by_id = {.selector = "direct", .peer = mesh_peer_id(p[i])};
        r = s_call_wait(c, "/sel", "x", &by_id);
        cr_expect_str_eq(r->peer_name, names[i]);
    }
    /* custom, by name; it sees every candidate and the key */
    mesh_call_opts_t last = {.selector = "last", .key = "k9"};
    for (int i = 0; i < 3; i++) {
        rec_t *r = s_call_wait(c, "/sel", "x", &last);
        cr_expect_eq(r->status, 0);
        cr_expect_str_eq(r->peer_name, "p3");
    }
    cr_expect_eq(g_custom_n, 3);
    cr_expect_str_eq(g_custom_key, "k9");
    mesh_call_opts_t nobody = {.selector = "nobody"};
    cr_expect_eq(s_call(c, "/sel", "x", &nobody, &g_rec[60]), MESH_ERR_NOPROVIDER);

    /* tags: only candidates carrying every tag */
    const char *eu[] = {"zone=eu"};
    const char *us[] = {"zone=us"};
    const char *asia[] = {"zone=asia"};
    mesh_call_opts_t oeu = {.tags = eu, .ntags = 1, .selector = "round_robin"};
    mesh_call_opts_t ous = {.tags = us, .ntags = 1, .selector = "round_robin"};
    mesh_call_opts_t oasia = {.tags = asia, .ntags = 1};
    for (int i = 0; i < 4; i++) {
        rec_t *r = s_call_wait(c, "/sel", "x", &oeu);
        cr_expect_str_eq(r->peer_name, "p1");
        r = s_call_wait(c, "/sel", "x", &ous);
        cr_expect(strcmp(r->peer_name, "p2") == 0 || strcmp(r->peer_name, "p3") == 0,
                  "zone=us went to %s", r->peer_name);
    }
    cr_expect_eq(s_call(c, "/sel", "x", &oasia, &g_rec[61]), MESH_ERR_NOPROVIDER);
    /* tags narrow a custom selector too */
    mesh_call_opts_t last_eu = {.selector = "last", .tags = eu, .ntags = 1};
    rec_t *r = s_call_wait(c, "/sel", "x", &last_eu);
    cr_expect_str_eq(r->peer_name, "p1");
    cr_expect_eq(g_custom_n, 1);
    run_for(100);
    cr_expect_eq(g_rec[60].n + g_rec[61].n, 0);
    s_end();
}

/* ------------------------------------------------------------------------ */
/* casts and fan-out */

Test(peer, cast_to_one_and_to_all)
{
    mesh_peer_t *p1 = s_new("p1");
    mesh_peer_t *p2 = s_new("p2");
    svc_t *s1 = s_expose(p1, "/note", H_ECHO, NULL);
    svc_t *s2 = s_expose(p2, "/note", H_ECHO, NULL);
    s_attach(p1);
    s_attach(p2);
    mesh_peer_t *c = s_started("caller");
    run_until(s_knows(c, "/note", "p1") && s_knows(c, "/note", "p2"), DISCOVERY_MS);
    cr_assert(s_knows(c, "/note", "p1") && s_knows(c, "/note", "p2"));

    cr_assert_eq(mesh_peer_cast(c, "/note", "one", 3, NULL), 0);
    run_until(s1->casts + s2->casts >= 1, 3000);
    run_for(300); /* anything extra would arrive by now */
    cr_expect_eq(s1->casts + s2->casts, 1, "a cast to one reached %d", s1->casts + s2->casts);
    cr_expect_eq(s1->calls + s2->calls, 0);

    mesh_call_opts_t all = {.selector = "all"};
    cr_assert_eq(mesh_peer_cast(c, "/note", "all", 3, &all), 0);
    run_until(s1->casts + s2->casts >= 3, 3000);
    run_for(300);
    cr_expect_eq(s1->casts + s2->casts, 3);
    cr_expect_geq(s1->casts, 1, "cast to all missed p1");
    cr_expect_geq(s2->casts, 1, "cast to all missed p2");

    /* a direct cast, and the handler's reply to a cast sends nothing */
    mesh_call_opts_t d2 = {.selector = "direct", .peer = "p2"};
    int before = s2->casts;
    cr_assert_eq(mesh_peer_cast(c, "/note", "two", 3, &d2), 0);
    run_until(s2->casts == before + 1, 3000);
    cr_expect_eq(s2->casts, before + 1);
    run_for(200);
    mesh_stats_t sc, sp1, sp2;
    mesh_peer_stats(c, &sc);
    mesh_peer_stats(p1, &sp1);
    mesh_peer_stats(p2, &sp2);
    cr_expect_eq(sc.casts_out, 4);
    cr_expect_eq(sp1.casts_in + sp2.casts_in, 4);
    cr_expect_eq(sc.replies_in, 0, "a cast was answered");
    cr_expect_eq(sp1.replies_out + sp2.replies_out, 0);
    s_end();
}

Test(peer, fanout_gathers_replies_and_names_the_missing)
{
    mesh_peer_t *p1 = s_new("p1");
    mesh_peer_t *p2 = s_new("p2");
    mesh_peer_t *p3 = s_new("p3");
    s_expose(p1, "/fan", H_ECHO, NULL);
    svc_t *e2 = s_expose(p2, "/fan", H_ERROR, NULL);
    e2->message = "nope";
    s_expose(p3, "/fan", H_HOLD, NULL);
    s_expose(p1, "/fast", H_ECHO, NULL);
    s_expose(p2, "/fast", H_ECHO, NULL);
    s_expose(p3, "/fast", H_ECHO, NULL);
    s_attach(p1);
    s_attach(p2);
    s_attach(p3);
    mesh_peer_t *c = s_started("caller");
    bool ok = false;
    run_until((ok = s_knows(c, "/fan", "p1") && s_knows(c, "/fan", "p2") &&
                    s_knows(c, "/fan", "p3") && s_knows(c, "/fast", "p1") &&
                    s_knows(c, "/fast", "p2") && s_knows(c, "/fast", "p3")),
              DISCOVERY_MS);
    cr_assert(ok);

    /* p3 never answers: the gather comes at the deadline */
    gather_rec_t *g = &g_gather[0];
    mesh_call_opts_t o = {.timeout_ms = 700};
    int64_t t0 = s_ms();
    cr_assert_eq(mesh_peer_fanout(c, "/fan", "x", 1, &o, s_on_gather, g), 0);
    run_until(g->n > 0, 500);
    cr_assert_eq(g->n, 0, "gathered before the deadline with a peer missing");
    run_until(g->n > 0, 5000);
    cr_assert_eq(g->n, 1);
    cr_expect_geq(g->at - t0, 690);
    cr_expect_lt(g->at - t0, 3000);
    cr_assert_eq(g->nreplies, 2);
    cr_assert_eq(g->nmissing, 1);
    cr_expect_str_eq(g->missing_name[0], "p3");
    cr_expect_str_eq(g->missing_id[0], mesh_peer_id(p3));
    int i1 = s_find_reply(g, "p1"), i2 = s_find_reply(g, "p2");
    cr_assert(i1 >= 0 && i2 >= 0, "replies from %s and %s", g->name[0], g->name[1]);
    cr_expect_eq(g->status[i1], 0);
    cr_expect_str_eq(g->data[i1], "p1:x");
    cr_expect_eq(g->status[i2], MESH_ERR_REMOTE);
    cr_expect_str_eq(g->error[i2], "nope");

    /* everyone answers: the gather comes at once, long before the deadline */
    gather_rec_t *f = &g_gather[1];
    mesh_call_opts_t slow = {.timeout_ms = 10000};
    t0 = s_ms();
    cr_assert_eq(mesh_peer_fanout(c, "/fast", "y", 1, &slow, s_on_gather, f), 0);
    run_until(f->n > 0, 5000);
    cr_assert_eq(f->n, 1);
    cr_expect_lt(f->at - t0, 3000, "waited for the deadline although all answered");
    cr_expect_eq(f->nreplies, 3);
    cr_expect_eq(f->nmissing, 0);
    for (int i = 0; i < 3; i++) {
        char want[16];
        snprintf(want, sizeof want, "p%d", i + 1);
        int k = s_find_reply(f, want);
        cr_assert_geq(k, 0, "no reply from %s", want);
        char data[16];
        snprintf(data, sizeof data, "p%d:y", i + 1);
        cr_expect_str_eq(f->data[k], data);
    }
    /* a fan-out narrowed by tags to nobody */
    const char *none[] = {"zone=mars"};
    mesh_call_opts_t otag = {.tags = none, .ntags = 1};
    cr_expect_eq(mesh_peer_fanout(c, "/fast", "z", 1, &otag, s_on_gather, &g_gather[2]),
                 MESH_ERR_NOPROVIDER);
    run_for(100);
    cr_expect_eq(g_gather[2].n, 0);
    cr_expect_eq(g->n, 1);
    cr_expect_eq(f->n, 1);
    s_end();
}

/* ------------------------------------------------------------------------ */
/* streams */

typedef struct {
    int n;
    char topic[64];
    char data[64];
    char from[33];
} msg_rec_t;

static msg_rec_t g_msg[6];

static void s_on_message(mesh_peer_t *peer, const char *topic, const void *data, size_t size,
                         const char *from_id, void *arg)
{
    msg_rec_t *m = arg;
    m->n++;
    snprintf(m->topic, sizeof m->topic, "%s", topic);
    snprintf(m->data, sizeof m->data, "%.*s", (int)size, (const char *)data);
    snprintf(m->from, sizeof m->from, "%s", from_id);
}

Test(peer, publish_reaches_exact_and_prefix_subscribers)
{
    mesh_peer_t *a = s_new("a");
    mesh_peer_t *b = s_new("b");
    mesh_peer_t *c = s_new("c");
    msg_rec_t *ma = &g_msg[0], *mb = &g_msg[1], *mc = &g_msg[2];
    cr_assert_eq(mesh_peer_subscribe(a, "news/sport", false, s_on_message, ma), 0);
    cr_assert_eq(mesh_peer_subscribe(b, "news/", true, s_on_message, mb), 0);
    cr_assert_eq(mesh_peer_subscribe(c, "weather", false, s_on_message, mc), 0);
    cr_expect_eq(mesh_peer_subscribe(c, "weather", true, s_on_message, mc), MESH_ERR_EXISTS);
    /* services travel with subscriptions: their routes say the table is complete */
    s_expose(a, "/ready", H_ECHO, NULL);
    s_expose(b, "/ready", H_ECHO, NULL);
    s_expose(c, "/ready", H_ECHO, NULL);
    s_attach(a);
    s_attach(b);
    s_attach(c);
    run_until(s_knows(a, "/ready", "b") && s_knows(a, "/ready", "c") &&
                  s_knows(b, "/ready", "a") && s_knows(b, "/ready", "c"),
              DISCOVERY_MS);
    cr_assert(s_knows(a, "/ready", "b") && s_knows(a, "/ready", "c"));

    cr_assert_eq(mesh_peer_publish(a, "news/sport", "goal", 4), 0);
    cr_expect_eq(ma->n, 0, "delivered inside mesh_peer_publish");
    run_until(ma->n == 1 && mb->n == 1, 3000);
    run_for(200);
    cr_expect_eq(ma->n, 1, "the publisher's own subscription missed it");
    cr_expect_eq(mb->n, 1, "the prefix subscriber missed it");
    cr_expect_eq(mc->n, 0, "a non-matching subscriber got it");
    cr_expect_str_eq(mb->topic, "news/sport");
    cr_expect_str_eq(mb->data, "goal");
    cr_expect_str_eq(mb->from, mesh_peer_id(a));
    cr_expect_str_eq(ma->from, mesh_peer_id(a));

    /* b publishes: prefix only, not the exact subscriber */
    cr_assert_eq(mesh_peer_publish(b, "news/politics", "vote", 4), 0);
    run_until(mb->n == 2, 3000);
    run_for(200);
    cr_expect_eq(mb->n, 2);
    cr_expect_str_eq(mb->topic, "news/politics");
    cr_expect_eq(ma->n, 1, "an exact subscription matched another topic");
    cr_expect_eq(mc->n, 0);

    /* c unsubscribes from nothing it had, then b drops its prefix */
    cr_expect_eq(mesh_peer_unsubscribe(c, "news/"), MESH_ERR_NOTFOUND);
    cr_assert_eq(mesh_peer_unsubscribe(b, "news/"), 0);
    cr_assert_eq(mesh_peer_publish(c, "weather", "rain", 4), 0);
    run_until(mc->n == 1, 3000);
    cr_expect_eq(mc->n, 1, "a peer's own exact subscription missed it");
    run_for(500); /* b's unsubscription spreads */
    cr_assert_eq(mesh_peer_publish(c, "news/sport", "late", 4), 0);
    run_until(ma->n == 2, 3000);
    run_for(200);
    cr_expect_eq(ma->n, 2);
    cr_expect_eq(mb->n, 2, "delivered after unsubscribe");
    mesh_stats_t st;
    mesh_peer_stats(a, &st);
    cr_expect_geq(st.publishes_out, 2);
    s_end();
}

/* ------------------------------------------------------------------------ */
/* losing peers */

Test(peer, provider_lost_while_call_pending)
{
    mesh_peer_t *p1 = s_new("p1");
    mesh_peer_t *p2 = s_new("p2");
    svc_t *s1 = s_expose(p1, "/job", H_HOLD, NULL);
    svc_t *s2 = s_expose(p2, "/job", H_ECHO, NULL);
    s_attach(p1);
    s_attach(p2);
    mesh_peer_t *c = s_started("caller");
    cr_assert_eq(mesh_peer_add_selector(c, "prefer", s_prefer, "p1"), 0);
    run_until(s_knows(c, "/job", "p1") && s_knows(c, "/job", "p2"), DISCOVERY_MS);
    cr_assert(s_knows(c, "/job", "p1") && s_knows(c, "/job", "p2"));
    rec_t *r = &g_rec[0];
    mesh_call_opts_t o = {.selector = "prefer", .timeout_ms = 20000};
    cr_assert_eq(s_call(c, "/job", "x", &o, r), 0);
    run_until(s1->calls == 1, 3000);
    cr_assert_eq(s1->calls, 1);
    int64_t t0 = s_ms();
    s_destroy(p1); /* frees the request it holds, sends the leaving beacon */
    run_until(r->n > 0, 10000);
    cr_assert_eq(r->n, 1);
    cr_expect_eq(r->status, MESH_ERR_PEERLOST, "status %s", mesh_err_name(r->status));
    cr_expect_lt(r->at - t0, 5000, "the loss was noticed only after %lld ms",
                 (long long)(r->at - t0));
    cr_expect_str_eq(r->peer_name, "p1");
    cr_expect_eq(s2->calls, 0, "a non-idempotent call was retried");
    run_until(!s_route(c, "/job", "p1").found, 2000);
    cr_expect_not(s_route(c, "/job", "p1").found);
    cr_expect_eq(s_members(c), 2);
    s_end();
}

Test(peer, idempotent_call_moves_to_another_provider)
{
    mesh_peer_t *p1 = s_new("p1");
    mesh_peer_t *p2 = s_new("p2");
    svc_t *s1 = s_expose(p1, "/job", H_HOLD, NULL);
    svc_t *s2 = s_expose(p2, "/job", H_ECHO, NULL);
    s_attach(p1);
    s_attach(p2);
    mesh_peer_t *c = s_started("caller");
    cr_assert_eq(mesh_peer_add_selector(c, "prefer", s_prefer, "p1"), 0);
    run_until(s_knows(c, "/job", "p1") && s_knows(c, "/job", "p2"), DISCOVERY_MS);
    cr_assert(s_knows(c, "/job", "p1") && s_knows(c, "/job", "p2"));
    rec_t *r = &g_rec[0];
    mesh_call_opts_t o = {.selector = "prefer", .timeout_ms = 20000, .idempotent = true};
    cr_assert_eq(s_call(c, "/job", "x", &o, r), 0);
    run_until(s1->calls == 1, 3000);
    cr_assert_eq(s1->calls, 1);
    int64_t t0 = s_ms();
    s_destroy(p1);
    run_until(r->n > 0, 10000);
    cr_assert_eq(r->n, 1);
    cr_expect_eq(r->status, 0, "status %s", mesh_err_name(r->status));
    cr_expect_str_eq(r->data, "p2:x");
    cr_expect_str_eq(r->peer_name, "p2");
    cr_expect_lt(r->at - t0, 5000);
    cr_expect_eq(s2->calls, 1);
    cr_expect_eq(s2->attempt, 2);
    s_end();
}

Test(peer, stopped_provider_is_no_longer_chosen)
{
    mesh_peer_t *p1 = s_new("p1");
    mesh_peer_t *p2 = s_new("p2");
    svc_t *s1 = s_expose(p1, "/svc", H_ECHO, NULL);
    s_expose(p2, "/svc", H_ECHO, NULL);
    s_attach(p1);
    s_attach(p2);
    mesh_peer_t *c = s_started("caller");
    run_until(s_knows(c, "/svc", "p1") && s_knows(c, "/svc", "p2"), DISCOVERY_MS);
    cr_assert(s_knows(c, "/svc", "p1") && s_knows(c, "/svc", "p2"));
    mesh_peer_stop(p1);
    mesh_peer_stop(p1); /* idempotent */
    cr_expect_eq(mesh_peer_call(p1, "/svc", "x", 1, NULL, s_on_reply, &g_rec[63]),
                 MESH_ERR_STATE);
    cr_expect_eq(mesh_peer_publish(p1, "t", "x", 1), MESH_ERR_STATE);
    cr_expect_eq(mesh_peer_attach(p1, g_loop), MESH_ERR_STATE);
    run_until(!s_route(c, "/svc", "p1").found, 3000);
    cr_assert_not(s_route(c, "/svc", "p1").found, "a stopped peer is still listed");
    mesh_call_opts_t rr = {.selector = "round_robin"};
    for (int i = 0; i < 6; i++) {
        rec_t *r = s_call_wait(c, "/svc", "x", &rr);
        cr_expect_eq(r->status, 0);
        cr_expect_str_eq(r->peer_name, "p2");
    }
    cr_expect_eq(s1->calls, 0);
    cr_expect_eq(g_rec[63].n, 0);
    s_end();
}

Test(peer, stop_and_destroy_close_pending_calls)
{
    mesh_peer_t *h = s_new("holder");
    s_expose(h, "/hold", H_HOLD, NULL);
    s_attach(h);
    mesh_peer_t *c1 = s_started("c1");
    mesh_peer_t *c2 = s_started("c2");
    run_until(s_knows(c1, "/hold", "holder") && s_knows(c2, "/hold", "holder"), DISCOVERY_MS);
    cr_assert(s_knows(c1, "/hold", "holder") && s_knows(c2, "/hold", "holder"));
    rec_t *r1 = &g_rec[0], *r2 = &g_rec[1];
    gather_rec_t *g = &g_gather[0];
    mesh_call_opts_t o = {.timeout_ms = 20000};
    cr_assert_eq(s_call(c1, "/hold", "x", &o, r1), 0);
    cr_assert_eq(s_call(c2, "/hold", "x", &o, r2), 0);
    cr_assert_eq(mesh_peer_fanout(c2, "/hold", "x", 1, &o, s_on_gather, g), 0);
    run_for(300);
    cr_assert_eq(r1->n + r2->n + g->n, 0);
    mesh_peer_stop(c1);
    run_until(r1->n > 0, 1000);
    cr_expect_eq(r1->n, 1);
    cr_expect_eq(r1->status, MESH_ERR_CLOSED, "status %s", mesh_err_name(r1->status));
    s_destroy(c2);
    cr_expect_eq(r2->n, 1, "destroy did not complete the pending call");
    cr_expect_eq(r2->status, MESH_ERR_CLOSED, "status %s", mesh_err_name(r2->status));
    cr_expect_eq(g->n, 1, "destroy did not complete the pending fan-out");
    s_end();
}

Test(peer, silent_provider_leaves_dispatch)
{
    mesh_config_t cc = s_config("caller");
    cc.ping_timeout_ms = 450;
    mesh_peer_t *c = s_new_cfg(&cc);
    s_attach(c);
    g_loop2 = ev_loop_new(0);
    cr_assert_not_null(g_loop2);
    g_drive2 = true;
    mesh_peer_t *q = s_new("quiet");
    svc_t *sq = s_expose(q, "/svc", H_ECHO, NULL);
    cr_assert_eq(mesh_peer_attach(q, g_loop2), 0);
    mesh_peer_t *p2 = s_new("p2");
    s_expose(p2, "/svc", H_ECHO, NULL);
    s_attach(p2);
    run_until(s_knows(c, "/svc", "quiet") && s_knows(c, "/svc", "p2"), DISCOVERY_MS);
    cr_assert(s_knows(c, "/svc", "quiet") && s_knows(c, "/svc", "p2"));

    /* two calls caught on quiet as it falls silent (it never reads them) */
    cr_assert_eq(mesh_peer_add_selector(c, "prefer", s_prefer, "quiet"), 0);
    mesh_call_opts_t plain = {.selector = "prefer", .timeout_ms = 20000};
    mesh_call_opts_t idem = {.selector = "prefer", .timeout_ms = 20000, .idempotent = true};
    rec_t *r1 = &g_rec[0], *r2 = &g_rec[1];
    cr_assert_eq(s_call(c, "/svc", "x", &plain, r1), 0);
    cr_assert_eq(s_call(c, "/svc", "y", &idem, r2), 0);
    int64_t t0 = s_ms();
    g_drive2 = false; /* quiet stops pinging */
    run_until(!s_route(c, "/svc", "quiet").alive && r1->n && r2->n, 5000);
    route_query_t rq = s_route(c, "/svc", "quiet");
    cr_assert(rq.found && !rq.alive, "found %d alive %d", rq.found, rq.alive);
    /* a call waiting on a silent provider does not wait for its deadline */
    cr_assert_eq(r1->n, 1);
    cr_expect_eq(r1->status, MESH_ERR_PEERLOST, "status %s", mesh_err_name(r1->status));
    cr_expect_lt(r1->at - t0, 5000);
    cr_assert_eq(r2->n, 1);
    cr_expect_eq(r2->status, 0, "idempotent: %s", mesh_err_name(r2->status));
    cr_expect_str_eq(r2->data, "p2:y");
    mesh_call_opts_t rr = {.selector = "round_robin", .timeout_ms = 2000};
    for (int i = 0; i < 4; i++) {
        rec_t *r = s_call_wait(c, "/svc", "x", &rr);
        cr_expect_eq(r->status, 0, "status %s", mesh_err_name(r->status));
        cr_expect_str_eq(r->peer_name, "p2");
    }
    cr_expect_eq(sq->calls, 0);
    g_drive2 = true; /* heard again: back in dispatch */
    run_until(s_knows(c, "/svc", "quiet"), 3000);
    cr_assert(s_knows(c, "/svc", "quiet"));
    mesh_call_opts_t dq = {.selector = "direct", .peer = "quiet"};
    rec_t *r = s_call_wait(c, "/svc", "x", &dq);
    cr_expect_eq(r->status, 0);
    cr_expect_str_eq(r->peer_name, "quiet");
    /* the two stale requests were answered too late: dropped, counted */
    mesh_stats_t st = {0};
    run_until((mesh_peer_stats(c, &st), st.replies_late == 2), 2000);
    cr_expect_eq(st.replies_late, 2);
    cr_expect_eq(r1->n + r2->n, 2);
    s_end();
}

/* ------------------------------------------------------------------------ */
/* life cycle */


static void s_never(mesh_peer_t *peer, void *arg)
{
    (*(int *)arg)++;
}

Test(peer, start_errors_and_destroy_without_start)
{
    mesh_peer_destroy(NULL);
    mesh_peer_t *none = NULL;
    mesh_peer_destroy(&none);
    /* never started */
    mesh_peer_t *idle = mesh_peer_new(NULL);
    cr_assert_not_null(idle);
    cr_expect_eq(strlen(mesh_peer_name(idle)), 6, "default name: %s", mesh_peer_name(idle));
    cr_expect_str_eq(mesh_peer_realm(idle), "default");
    int ran = 0;
    cr_expect_eq(mesh_peer_post(idle, s_never, &ran), MESH_ERR_STATE);
    mesh_peer_destroy(&idle);
    cr_expect_null(idle);
    cr_expect_eq(ran, 0);
    /* no such interface */
    mesh_config_t c = s_config("noif");
    c.iface = "no-such-if0";
    mesh_peer_t *p = s_new_cfg(&c);
    cr_expect_eq(mesh_peer_attach(p, g_loop), MESH_ERR_NOIFACE);
    /* the inbox port taken */
    mesh_config_t c1 = s_config("first");
    c1.port = test_free_tcp_port();
    mesh_config_t c2 = c1, c3 = c1;
    c2.name = "second";
    c3.name = "third";
    mesh_peer_t *p1 = s_new_cfg(&c1);
    mesh_peer_t *p2 = s_new_cfg(&c2);
    mesh_peer_t *p3 = s_new_cfg(&c3);
    cr_assert_eq(mesh_peer_attach(p1, g_loop), 0);
    cr_expect_eq(mesh_peer_attach(p2, g_loop), MESH_ERR_ADDRINUSE);
    cr_expect_eq(mesh_peer_start_thread(p3), MESH_ERR_ADDRINUSE);
    run_for(100);
    s_end();
}

static double s_fitness(mesh_peer_t *peer, void *arg)
{
    return *(double *)arg;
}

static double g_fit[3] = {0.25, 0.75, 0.5};
static int g_seen_has_fit;

static int s_fittest(const mesh_candidate_t *cands, size_t n, const char *key, void *arg)
{
    int best = -1;
    g_seen_has_fit = 0;
    for (size_t i = 0; i < n; i++) {
        g_seen_has_fit += cands[i].has_fitness;
        if (cands[i].has_fitness && (best < 0 || cands[i].fitness > cands[best].fitness)) {
            best = (int)i;
        }
    }
    return best;
}

typedef struct {
    const char *name;
    bool has;
    double fitness;
} fit_query_t;

static void s_fit_cb(const mesh_route_info_t *r, void *arg)
{
    fit_query_t *q = arg;
    if (strcmp(r->name, q->name) == 0) {
        q->has = r->has_fitness;
        q->fitness = r->fitness;
    }
}

Test(peer, fitness_is_announced_and_seen_by_custom_selectors)
{
    const char *names[] = {"p1", "p2", "p3"};
    for (int i = 0; i < 3; i++) {
        mesh_peer_t *p = s_new(names[i]);
        mesh_peer_set_fitness(p, s_fitness, &g_fit[i]);
        s_expose(p, "/fit", H_ECHO, NULL);
        s_attach(p);
    }
    mesh_peer_t *c = s_started("caller");
    cr_assert_eq(mesh_peer_add_selector(c, "fittest", s_fittest, NULL), 0);
    fit_query_t q2 = {.name = "p2"};
    run_until((mesh_peer_routes(c, s_fit_cb, &q2), q2.has) && s_knows(c, "/fit", "p1") &&
                  s_knows(c, "/fit", "p3"),
              DISCOVERY_MS);
    cr_assert(q2.has, "p2's fitness never arrived");
    cr_expect_float_eq(q2.fitness, 0.75, 1e-9);
    fit_query_t qc = {.name = "caller"};
    mesh_peer_routes(c, s_fit_cb, &qc);
    cr_expect_not(qc.has, "a peer without a fitness function announces one");
    /* wait for every status, then the selector sees them */
    fit_query_t q1 = {.name = "p1"}, q3 = {.name = "p3"};
    run_until((mesh_peer_routes(c, s_fit_cb, &q1), mesh_peer_routes(c, s_fit_cb, &q3),
               q1.has && q3.has),
              3000);
    mesh_call_opts_t o = {.selector = "fittest"};
    rec_t *r = s_call_wait(c, "/fit", "x", &o);
    cr_expect_eq(r->status, 0);
    cr_expect_str_eq(r->peer_name, "p2");
    cr_expect_eq(g_seen_has_fit, 3);
    /* fitness changes travel with the next ping */
    g_fit[0] = 0.9;
    run_until((mesh_peer_routes(c, s_fit_cb, &q1), q1.fitness > 0.8), 3000);
    cr_expect_float_eq(q1.fitness, 0.9, 1e-9);
    r = s_call_wait(c, "/fit", "x", &o);
    cr_expect_str_eq(r->peer_name, "p1");
    g_fit[0] = 0.25;
    s_end();
}

static void s_stop_handler(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    (*(int *)arg)++;
    mesh_request_reply(req, "bye", 3);
    mesh_peer_stop(peer); /* "any thread": the handler's own included */
}

static int g_stop_calls;

Test(peer, stop_from_inside_a_handler)
{
    g_stop_calls = 0;
    mesh_peer_t *p = s_new("p1");
    cr_assert_eq(mesh_peer_expose(p, "/shutdown", s_stop_handler, &g_stop_calls, NULL), 0);
    s_attach(p);
    mesh_peer_t *c = s_started("caller");
    run_until(s_knows(c, "/shutdown", "p1"), DISCOVERY_MS);
    cr_assert(s_knows(c, "/shutdown", "p1"));
    rec_t *r = &g_rec[0];
    cr_assert_eq(s_call(c, "/shutdown", "x", NULL, r), 0);
    run_until(r->n > 0, 5000);
    cr_assert_eq(r->n, 1);
    cr_expect_eq(g_stop_calls, 1);
    cr_expect(r->status == 0 || r->status == MESH_ERR_PEERLOST, "status %s",
              mesh_err_name(r->status));
    run_until(!s_route(c, "/shutdown", "p1").found, 3000);
    cr_expect_not(s_route(c, "/shutdown", "p1").found);
    run_for(100);
    s_end();
}

Test(peer, fanout_stops_waiting_for_a_lost_peer)
{
    mesh_peer_t *p1 = s_new("p1");
    mesh_peer_t *p2 = s_new("p2");
    mesh_peer_t *p3 = s_new("p3");
    s_expose(p1, "/fan", H_ECHO, NULL);
    s_expose(p2, "/fan", H_ECHO, NULL);
    svc_t *s3 = s_expose(p3, "/fan", H_HOLD, NULL);
    s_attach(p1);
    s_attach(p2);
    s_attach(p3);
    mesh_peer_t *c = s_started("caller");
    run_until(s_knows(c, "/fan", "p1") && s_knows(c, "/fan", "p2") && s_knows(c, "/fan", "p3"),
              DISCOVERY_MS);
    cr_assert(s_knows(c, "/fan", "p1") && s_knows(c, "/fan", "p2") && s_knows(c, "/fan", "p3"));
    gather_rec_t *g = &g_gather[0];
    mesh_call_opts_t o = {.timeout_ms = 20000};
    int64_t t0 = s_ms();
    cr_assert_eq(mesh_peer_fanout(c, "/fan", "x", 1, &o, s_on_gather, g), 0);
    run_until(s3->calls == 1, 3000);
    cr_assert_eq(s3->calls, 1);
    run_for(200);
    cr_assert_eq(g->n, 0);
    s_destroy(p3);
    run_until(g->n > 0, 10000);
    cr_assert_eq(g->n, 1);
    cr_expect_lt(g->at - t0, 5000, "waited for the deadline after losing p3");
    cr_expect_geq(s_find_reply(g, "p1"), 0);
    cr_expect_geq(s_find_reply(g, "p2"), 0);
    /* p3 is accounted for: missing, or a reply carrying PEERLOST */
    int k = s_find_reply(g, "p3");
    bool accounted = (g->nmissing == 1 && strcmp(g->missing_name[0], "p3") == 0) ||
                     (k >= 0 && g->status[k] == MESH_ERR_PEERLOST);
    cr_expect(accounted, "p3: %zu missing, reply index %d", g->nmissing, k);
    cr_expect_eq(g->nreplies + g->nmissing, 3);
    s_end();
}

/*  STYLE.md: destroying an object from inside its own callback marks it
    closing; the free happens when control is back in the loop. */
static void s_destroy_in_reply(mesh_peer_t *peer, const mesh_reply_t *r, void *arg)
{
    s_on_reply(peer, r, arg);
    s_destroy(peer);
}

static void s_destroy_in_handler(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    (*(int *)arg)++;
    mesh_request_reply(req, "bye", 3);
    s_destroy(peer);
}

static int g_destroy_calls;

Test(peer, destroy_from_inside_own_callbacks)
{
    g_destroy_calls = 0;
    mesh_peer_t *p = s_new("p1");
    s_expose(p, "/x", H_ECHO, NULL);
    s_attach(p);
    mesh_peer_t *d = s_new("doomed");
    cr_assert_eq(mesh_peer_expose(d, "/die", s_destroy_in_handler, &g_destroy_calls, NULL), 0);
    s_attach(d);
    mesh_peer_t *c = s_started("caller");
    mesh_peer_t *c2 = s_started("caller2");
    run_until(s_knows(c, "/x", "p1") && s_knows(c2, "/die", "doomed"), DISCOVERY_MS);
    cr_assert(s_knows(c, "/x", "p1") && s_knows(c2, "/die", "doomed"));
    /* a caller destroys itself from its reply callback */
    cr_assert_eq(mesh_peer_call(c, "/x", "a", 1, NULL, s_destroy_in_reply, &g_rec[0]), 0);
    run_until(g_rec[0].n > 0, 3000);
    run_for(200);
    cr_expect_eq(g_rec[0].n, 1);
    cr_expect_eq(g_rec[0].status, 0);
    /* a provider destroys itself from its handler */
    cr_assert_eq(s_call(c2, "/die", "a", NULL, &g_rec[1]), 0);
    run_until(g_rec[1].n > 0, 3000);
    run_for(200);
    cr_expect_eq(g_destroy_calls, 1);
    cr_expect_eq(g_rec[1].n, 1);
    s_end();
}

static void *s_stop_thread(void *arg)
{
    mesh_peer_stop(arg);
    return NULL;
}

Test(peer, stop_an_attached_peer_from_another_thread)
{
    mesh_peer_t *h = s_new("holder");
    s_expose(h, "/hold", H_HOLD, NULL);
    s_attach(h);
    mesh_peer_t *c = s_started("caller");
    run_until(s_knows(c, "/hold", "holder") && s_members(h) == 2, DISCOVERY_MS);
    cr_assert(s_knows(c, "/hold", "holder") && s_members(h) == 2);
    rec_t *r = &g_rec[0];
    mesh_call_opts_t o = {.timeout_ms = 20000};
    cr_assert_eq(s_call(c, "/hold", "x", &o, r), 0);
    run_for(100);
    /* "mesh_peer_stop: any thread"; "all callbacks run on the loop thread" */
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, s_stop_thread, c), 0);
    run_until(r->n > 0, 3000);
    pthread_join(t, NULL);
    run_until(r->n > 0, 1000);
    cr_assert_eq(r->n, 1);
    cr_expect_eq(r->status, MESH_ERR_CLOSED, "status %s", mesh_err_name(r->status));
    cr_expect(pthread_equal(r->thread, g_main), "the callback ran on the stopping thread");
    run_until(s_members(h) == 1, 3000);
    cr_expect_eq(s_members(h), 1, "the stopped peer is still a member");
    s_end();
}

/* ------------------------------------------------------------------------ */
/* threads */

Test(peer, threaded_peer_serves_a_loop_peer)
{
    mesh_peer_t *t = s_new("thr");
    svc_t *s = s_expose(t, "/thr/echo", H_ECHO, NULL);
    cr_assert_eq(mesh_peer_start_thread(t), 0);
    cr_expect_eq(mesh_peer_start_thread(t), MESH_ERR_STATE);
    cr_expect_eq(mesh_peer_attach(t, g_loop), MESH_ERR_STATE);
    mesh_peer_t *a = s_started("a");
    run_until(s_knows(a, "/thr/echo", "thr"), DISCOVERY_MS);
    cr_assert(s_knows(a, "/thr/echo", "thr"));
    rec_t *r = s_call_wait(a, "/thr/echo", "hi", NULL);
    cr_expect_eq(r->status, 0, "status %s", mesh_err_name(r->status));
    cr_expect_str_eq(r->data, "thr:hi");
    cr_expect_str_eq(r->peer_id, mesh_peer_id(t));
    cr_expect(s->off_main, "the handler ran on the test's thread");
    s_end();
}

static atomic_int g_posted;
static atomic_bool g_posted_off_main;
static atomic_int g_posted_rc;

static void s_posted(mesh_peer_t *peer, void *arg)
{
    g_posted_off_main = !pthread_equal(pthread_self(), g_main);
    /* on the loop thread every peer function is allowed */
    g_posted_rc = mesh_peer_expose(peer, "/posted", s_handler, arg, NULL);
    g_posted++;
}

static void s_count_post(mesh_peer_t *peer, void *arg)
{
    (*(atomic_int *)arg)++;
}

static atomic_int g_route_found;

static void s_check_route_posted(mesh_peer_t *peer, void *arg)
{
    g_route_found = s_knows(peer, (const char *)arg, "svc") ? 1 : 2;
}

Test(peer, call_sync_and_post_from_another_thread)
{
    mesh_peer_t *svc = s_new("svc");
    svc_t *s = s_expose(svc, "/sync/echo", H_ECHO, NULL);
    svc_t *f = s_expose(svc, "/sync/fail", H_ERROR, NULL);
    f->message = "nope";
    cr_assert_eq(mesh_peer_start_thread(svc), 0);
    mesh_peer_t *cl = s_new("client");
    cr_assert_eq(mesh_peer_start_thread(cl), 0);

    /* routes of a threaded peer are read on its thread, through post */
    int64_t end = s_ms() + DISCOVERY_MS;
    do {
        g_route_found = 0;
        cr_assert_eq(mesh_peer_post(cl, s_check_route_posted, "/sync/echo"), 0);
        while (g_route_found == 0) {
            s_sleep_ms(5);
        }
        if (g_route_found == 1) {
            break;
        }
        s_sleep_ms(50);
    } while (s_ms() < end);
    cr_assert_eq(g_route_found, 1, "the client never learned /sync/echo");

    void *reply = NULL;
    size_t size = 0;
    char *error = NULL;
    int rc = mesh_peer_call_sync(cl, "/sync/echo", "ping", 4, NULL, &reply, &size, &error);
    cr_assert_eq(rc, 0, "call_sync: %s", mesh_err_name(rc));
    cr_expect_eq(size, 8);
    cr_expect_eq(memcmp(reply, "svc:ping", 8), 0);
    cr_expect_null(error);
    free(reply);
    cr_expect(s->off_main);

    reply = NULL;
    rc = mesh_peer_call_sync(cl, "/sync/fail", "x", 1, NULL, &reply, &size, &error);
    cr_expect_eq(rc, MESH_ERR_REMOTE, "call_sync: %s", mesh_err_name(rc));
    cr_expect_null(reply);
    cr_assert_not_null(error);
    cr_expect_str_eq(error, "nope");
    free(error);

    rc = mesh_peer_call_sync(cl, "/sync/none", "x", 1, NULL, NULL, NULL, NULL);
    cr_expect_eq(rc, MESH_ERR_NOPROVIDER);
    mesh_call_opts_t quick = {.timeout_ms = 200};

    /* post: runs on the peer's thread, which may then expose a service */
    svc_t *posted = s_svc("svc", H_ECHO);
    g_posted = 0;
    cr_assert_eq(mesh_peer_post(svc, s_posted, posted), 0);
    end = s_ms() + 2000;
    while (g_posted == 0 && s_ms() < end) {
        s_sleep_ms(5);
    }
    cr_assert_eq(g_posted, 1);
    cr_expect(g_posted_off_main);
    cr_expect_eq(g_posted_rc, 0);
    end = s_ms() + DISCOVERY_MS;
    do {
        rc = mesh_peer_call_sync(cl, "/posted", "p", 1, &quick, &reply, &size, NULL);
        if (rc != MESH_ERR_NOPROVIDER) {
            break;
        }
        s_sleep_ms(50);
    } while (s_ms() < end);
    cr_assert_eq(rc, 0, "call to the posted service: %s", mesh_err_name(rc));
    cr_expect_eq(size, 5);
    cr_expect_eq(memcmp(reply, "svc:p", 5), 0);
    free(reply);

    /* call_sync needs a peer on a thread of its own */
    mesh_peer_t *a = s_started("a");
    cr_expect_eq(mesh_peer_call_sync(a, "/sync/echo", "x", 1, NULL, NULL, NULL, NULL),
                 MESH_ERR_STATE);
    /* post on a loop-attached peer runs on the loop, later */
    atomic_int count = 0;
    cr_assert_eq(mesh_peer_post(a, s_count_post, &count), 0);
    cr_expect_eq(count, 0, "post ran its function inside the call");
    run_until(count == 1, 1000);
    cr_expect_eq(count, 1);
    s_end();
}

/* ------------------------------------------------------------------------ */
/* envelopes to one peer in one loop turn travel as one frame */

static int g_batch_done, g_batch_ok;

static void s_on_batch_reply(mesh_peer_t *peer, const mesh_reply_t *r, void *arg)
{
    g_batch_done++;
    g_batch_ok += r->status == 0 && r->size == 7 && memcmp(r->data, "bprov:x", 7) == 0;
}

Test(peer, a_burst_of_calls_travels_in_few_frames)
{
    mesh_peer_t *p = s_new("bprov");
    s_expose(p, "/echo", H_ECHO, NULL);
    s_attach(p);
    mesh_peer_t *c = s_started("caller");
    run_until(s_knows(c, "/echo", "bprov"), DISCOVERY_MS);
    cr_assert(s_knows(c, "/echo", "bprov"));
    run_for(50);
    const mesh__zre_stats_t *zp = mesh__zre_stats(mesh__peer_zre(p));
    const mesh__zre_stats_t *zc = mesh__zre_stats(mesh__peer_zre(c));
    uint64_t p_before = zp->msgs_received, c_before = zc->msgs_received;
    enum { N = 200 };
    g_batch_done = g_batch_ok = 0;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(mesh_peer_call(c, "/echo", "x", 1, NULL, s_on_batch_reply, NULL), 0);
    }
    run_until(g_batch_done == N, 5000);
    cr_assert_eq(g_batch_done, N);
    cr_expect_eq(g_batch_ok, N);
    /* 200 requests in one turn: one BATCH frame (plus any status pings);
       the replies come back in a few frames, one per inbox batch at most */
    uint64_t to_p = zp->msgs_received - p_before, to_c = zc->msgs_received - c_before;
    cr_expect_leq(to_p, 10, "%llu frames carried 200 requests", (unsigned long long)to_p);
    cr_expect_leq(to_c, 20, "%llu frames carried 200 replies", (unsigned long long)to_c);
    s_end();
}

/* ------------------------------------------------------------------------ */
/* the ring */

#define RING_KEYS 1000

typedef struct {
    size_t n;
    char ids[MAX_PEERS][33];
    char names[MAX_PEERS][32];
    uint64_t digests[MAX_PEERS]; /* announced; 0: none yet */
    bool agrees[MAX_PEERS];
    unsigned vnodes;
    double share_sum;
    int selfs, agreeing;
} ring_view_t;

static void s_ring_member_cb(const mesh_ring_member_t *m, void *arg)
{
    ring_view_t *v = arg;
    if (v->n < MAX_PEERS) {
        snprintf(v->ids[v->n], sizeof v->ids[v->n], "%s", m->id);
        snprintf(v->names[v->n], sizeof v->names[v->n], "%s", m->name);
        v->digests[v->n] = m->digest;
        v->agrees[v->n] = m->agrees;
    }
    v->n++;
    v->vnodes = m->vnodes;
    v->share_sum += m->share;
    v->selfs += m->is_self;
    v->agreeing += m->agrees;
}

static ring_view_t s_ring_view(mesh_peer_t *p)
{
    ring_view_t v;
    memset(&v, 0, sizeof v);
    size_t n = mesh_peer_ring_members(p, s_ring_member_cb, &v);
    cr_assert_eq(n, v.n);
    return v;
}

/*  p's ring has n members and every one of them announces p's digest. */
static bool s_ring_settled(mesh_peer_t *p, size_t n)
{
    ring_view_t v = s_ring_view(p);
    return v.n == n && v.agreeing == (int)n;
}

/*  What member name announced last, as p sees it (0: none, or not on p's ring). */
static uint64_t s_ring_digest_of(mesh_peer_t *p, const char *name, bool *agrees)
{
    ring_view_t v = s_ring_view(p);
    for (size_t i = 0; i < v.n && i < MAX_PEERS; i++) {
        if (strcmp(v.names[i], name) == 0) {
            if (agrees) {
                *agrees = v.agrees[i];
            }
            return v.digests[i];
        }
    }
    return 0;
}

typedef struct {
    size_t n;
    char ids[8][33];
    size_t ranks[8];
} owners_t;

static void s_owner_cb(const char *id, const char *name, size_t rank, void *arg)
{
    owners_t *o = arg;
    if (o->n < 8) {
        snprintf(o->ids[o->n], sizeof o->ids[o->n], "%s", id);
        o->ranks[o->n] = rank;
    }
    o->n++;
}

static owners_t s_owners(mesh_peer_t *p, const char *key, size_t replicas)
{
    owners_t o;
    memset(&o, 0, sizeof o);
    cr_assert_eq(mesh_peer_ring_owners(p, key, strlen(key), replicas, s_owner_cb, &o), 0);
    return o;
}

/*  A ring of our own, from the peers' ids: what every peer must compute. */
static mesh__ring_t *s_reference_ring(mesh_peer_t *const *peers, size_t n)
{
    uint8_t uuids[MAX_PEERS][MESH_ZRE_UUID_SIZE];
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(mesh__uuid_from_hex(mesh_peer_id(peers[i]), uuids[i]), 0);
    }
    mesh__ring_t *ring = mesh__ring_new(0);
    cr_assert_not_null(ring);
    cr_assert_eq(mesh__ring_set_members(ring, (const uint8_t(*)[MESH_ZRE_UUID_SIZE])uuids, n), 0);
    return ring;
}

static uint64_t s_mismatches(mesh_peer_t *p)
{
    mesh_stats_t st;
    mesh_peer_stats(p, &st);
    return st.ring_mismatches;
}

Test(peer, ring_three_peers_agree_on_digest_and_owners)
{
    mesh_peer_t *a = s_new("a");
    cr_expect_eq(mesh_peer_ring_members(a, NULL, NULL), 1, "a peer alone is its own ring");
    s_attach(a);
    mesh_peer_t *b = s_started("b");
    mesh_peer_t *c = s_started("c");
    mesh_peer_t *all[] = {a, b, c};
    run_until(s_ring_settled(a, 3) && s_ring_settled(b, 3) && s_ring_settled(c, 3), DISCOVERY_MS);
    for (int i = 0; i < 3; i++) {
        ring_view_t v = s_ring_view(all[i]);
        cr_assert_eq(v.n, 3, "%s: %zu ring members", mesh_peer_name(all[i]), v.n);
        cr_assert_eq(v.agreeing, 3, "%s: %d of 3 members agree", mesh_peer_name(all[i]),
                     v.agreeing);
        cr_expect_eq(v.selfs, 1);
        cr_expect_eq(v.vnodes, MESH_RING_VNODES);
        cr_expect(v.share_sum > 0.999 && v.share_sum < 1.001, "shares sum to %f", v.share_sum);
        for (size_t k = 1; k < v.n; k++) {
            cr_expect_lt(strcmp(v.ids[k - 1], v.ids[k]), 0, "members not in UUID order");
        }
    }
    uint64_t d = mesh_peer_ring_digest(a);
    cr_expect_neq(d, 0);
    cr_expect_eq(mesh_peer_ring_digest(b), d);
    cr_expect_eq(mesh_peer_ring_digest(c), d);
    /* the placement of ring.h, from the three UUIDs alone */
    mesh__ring_t *ref = s_reference_ring(all, 3);
    cr_expect_eq(mesh__ring_digest(ref), d, "the digest is not that of the members' ring");
    int differ = 0, wrong = 0;
    for (int k = 0; k < RING_KEYS; k++) {
        char key[32];
        snprintf(key, sizeof key, "key-%d", k);
        owners_t oa = s_owners(a, key, 2), ob = s_owners(b, key, 2), oc = s_owners(c, key, 2);
        uint32_t ranks[2];
        size_t n = 0;
        cr_assert_eq(mesh__ring_lookup(ref, key, strlen(key), 2, ranks, &n), 0);
        char want[2][33];
        for (size_t i = 0; i < n; i++) {
            mesh__uuid_to_hex(mesh__ring_member(ref, ranks[i]), want[i]);
        }
        differ += oa.n != 2 || ob.n != 2 || oc.n != 2 || strcmp(oa.ids[0], ob.ids[0]) != 0 ||
                  strcmp(oa.ids[0], oc.ids[0]) != 0 || strcmp(oa.ids[1], ob.ids[1]) != 0 ||
                  strcmp(oa.ids[1], oc.ids[1]) != 0 || strcmp(oa.ids[0], oa.ids[1]) == 0;
        wrong += n != 2 || strcmp(oa.ids[0], want[0]) != 0 || strcmp(oa.ids[1], want[1]) != 0 ||
                 oa.ranks[0] != 0 || oa.ranks[1] != 1;
    }
    mesh__ring_destroy(&ref);
    cr_expect_eq(differ, 0, "%d of %d keys have other owners on another peer", differ, RING_KEYS);
    cr_expect_eq(wrong, 0, "%d of %d keys are not placed as ring.h places them", wrong, RING_KEYS);
    /* more replicas than members: each member once */
    owners_t o = s_owners(b, "k", 10);
    cr_expect_eq(o.n, 3);
    cr_expect(strcmp(o.ids[0], o.ids[1]) && strcmp(o.ids[0], o.ids[2]) &&
              strcmp(o.ids[1], o.ids[2]));
    /* bad arguments */
    cr_expect_eq(mesh_peer_ring_owners(a, "k", 1, 0, s_owner_cb, &o), MESH_ERR_INVAL);
    cr_expect_eq(mesh_peer_ring_owners(a, "k", 1, 2, NULL, NULL), MESH_ERR_INVAL);
    cr_expect_eq(mesh_peer_ring_owners(a, NULL, 3, 2, s_owner_cb, &o), MESH_ERR_INVAL);
    memset(&o, 0, sizeof o);
    cr_expect_eq(mesh_peer_ring_owners(a, NULL, 0, 1, s_owner_cb, &o), 0, "the empty key");
    cr_expect_eq(o.n, 1);
    /* views agree: nothing is counted, however many pings go by */
    uint64_t before[3];
    for (int i = 0; i < 3; i++) {
        before[i] = s_mismatches(all[i]);
    }
    run_for(1200); /* 8 ping intervals */
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(s_mismatches(all[i]), before[i], "%s counted mismatches while views agree",
                     mesh_peer_name(all[i]));
        cr_expect(s_ring_settled(all[i], 3));
    }
    s_end();
}

Test(peer, ring_changes_when_a_peer_leaves_and_views_agree_again)
{
    mesh_peer_t *a = s_started("a");
    mesh_peer_t *b = s_started("b");
    mesh_peer_t *c = s_started("c");
    run_until(s_ring_settled(a, 3) && s_ring_settled(b, 3) && s_ring_settled(c, 3), DISCOVERY_MS);
    cr_assert(s_ring_settled(a, 3) && s_ring_settled(b, 3) && s_ring_settled(c, 3));
    uint64_t d3 = mesh_peer_ring_digest(a);
    static char owner_before[RING_KEYS][33];
    for (int k = 0; k < RING_KEYS; k++) {
        char key[32];
        snprintf(key, sizeof key, "key-%d", k);
        owners_t o = s_owners(a, key, 2);
        memcpy(owner_before[k], o.ids[0], 33);
    }
    char gone[33];
    snprintf(gone, sizeof gone, "%s", mesh_peer_id(c));
    s_destroy(c); /* leaves: its BYE reaches a and b */
    run_until(s_ring_settled(a, 2) && s_ring_settled(b, 2), DISCOVERY_MS);
    cr_assert(s_ring_settled(a, 2) && s_ring_settled(b, 2), "a: %zu members, b: %zu",
              s_ring_view(a).n, s_ring_view(b).n);
    uint64_t d2 = mesh_peer_ring_digest(a);
    cr_expect_neq(d2, d3, "the digest did not change");
    cr_expect_eq(mesh_peer_ring_digest(b), d2);
    mesh_peer_t *left[] = {a, b};
    mesh__ring_t *ref = s_reference_ring(left, 2);
    cr_expect_eq(mesh__ring_digest(ref), d2);
    mesh__ring_destroy(&ref);
    /* only the keys of the one that left moved */
    int moved = 0, kept = 0, differ = 0;
    for (int k = 0; k < RING_KEYS; k++) {
        char key[32];
        snprintf(key, sizeof key, "key-%d", k);
        owners_t oa = s_owners(a, key, 2), ob = s_owners(b, key, 2);
        cr_assert_eq(oa.n, 2);
        differ += strcmp(oa.ids[0], ob.ids[0]) != 0 || strcmp(oa.ids[1], ob.ids[1]) != 0;
        if (strcmp(owner_before[k], gone) == 0) {
            moved++;
        } else {
            kept += strcmp(owner_before[k], oa.ids[0]) == 0;
        }
    }
    cr_expect_eq(differ, 0, "%d keys have other owners on a and b", differ);
    cr_expect_eq(kept + moved, RING_KEYS, "%d keys changed owner although theirs stayed",
                 RING_KEYS - moved - kept);
    cr_expect_gt(moved, 0);
    s_end();
}

/*  Shouts a STATUS carrying digest from p, as if p's view were another. */
static void s_shout_status(mesh_peer_t *p, uint64_t digest)
{
    mesh__buf_t b = {0};
    mesh__env_encode_status(&b, 0.0, NULL, 0, digest, 0);
    cr_assert_not(b.failed);
    char group[128];
    snprintf(group, sizeof group, "mesh:%s", g_realm);
    cr_assert_eq(mesh__zre_shout(mesh__peer_zre(p), group, b.data, b.size), 0);
    mesh__buf_free(&b);
}

Test(peer, ring_mismatch_counts_each_divergence_once)
{
    mesh_peer_t *a = s_started("a");
    mesh_peer_t *b = s_started("b");
    /* x announces its status only when the test makes it */
    mesh_config_t cx = s_config("x");
    cx.ping_interval_ms = 60000;
    mesh_peer_t *x = s_new_cfg(&cx);
    s_attach(x);
    run_until(s_ring_view(a).n == 3 && s_ring_view(b).n == 3 && s_ring_view(x).n == 3 &&
                  s_ring_digest_of(a, "b", NULL) && s_ring_digest_of(b, "a", NULL),
              DISCOVERY_MS);
    uint64_t d = mesh_peer_ring_digest(a);
    cr_assert_eq(s_ring_view(a).n, 3);
    cr_assert_eq(mesh_peer_ring_digest(b), d);
    cr_assert_eq(mesh_peer_ring_digest(x), d);
    bool agrees = true;
    cr_expect_eq(s_ring_digest_of(a, "x", &agrees), 0, "x has announced nothing yet");
    cr_expect_not(agrees, "a member that announced nothing is not said to agree");
    uint64_t m0 = s_mismatches(a), n0 = s_mismatches(b);
    uint64_t other = d ^ 0x5a5a;
    /* one differing STATUS is a blip (a join on its way): seen, not counted */
    s_shout_status(x, other);
    run_until(s_ring_digest_of(a, "x", NULL) == other && s_ring_digest_of(b, "x", NULL) == other,
              3000);
    cr_assert_eq(s_ring_digest_of(a, "x", &agrees), other);
    cr_expect_not(agrees);
    cr_expect_eq(s_mismatches(a), m0);
    /* the second in a row is a divergence: counted once, however long it lasts */
    for (int i = 0; i < 4; i++) {
        s_shout_status(x, other);
    }
    run_until(s_mismatches(a) > m0 && s_mismatches(b) > n0, 3000);
    run_for(100);
    cr_expect_eq(s_mismatches(a), m0 + 1);
    cr_expect_eq(s_mismatches(b), n0 + 1);
    /* a zero digest says nothing: the last one stands */
    s_shout_status(x, 0);
    run_for(200);
    cr_expect_eq(s_ring_digest_of(a, "x", NULL), other);
    /* agreeing again, then diverging again: a second mismatch */
    s_shout_status(x, d);
    run_until(s_ring_digest_of(a, "x", NULL) == d && s_ring_digest_of(b, "x", NULL) == d, 3000);
    cr_assert_eq(s_ring_digest_of(a, "x", &agrees), d);
    cr_expect(agrees);
    cr_expect_eq(s_mismatches(a), m0 + 1);
    s_shout_status(x, other);
    s_shout_status(x, other + 1);
    run_until(s_mismatches(a) > m0 + 1 && s_mismatches(b) > n0 + 1, 3000);
    run_for(100);
    cr_expect_eq(s_mismatches(a), m0 + 2);
    cr_expect_eq(s_mismatches(b), n0 + 2);
    cr_expect_eq(s_ring_digest_of(a, "x", NULL), other + 1);
    /* x's own view never changed */
    cr_expect_eq(mesh_peer_ring_digest(x), d);
    s_end();
}

Test(peer, ring_leaves_control_peers_out)
{
    mesh_peer_t *a = s_started("a");
    mesh_peer_t *b = s_started("b");
    mesh_peer_t *k = s_new("ctl");
    cr_assert_eq(mesh__peer_set_ctl(k), 0);
    cr_expect_eq(mesh_peer_ring_members(k, NULL, NULL), 0, "a control peer is not its own ring");
    cr_expect_eq(mesh_peer_ring_owners(k, "x", 1, 1, s_owner_cb, NULL), MESH_ERR_NOTFOUND);
    s_attach(k);
    cr_expect_eq(mesh__peer_set_ctl(k), MESH_ERR_STATE);
    run_until(s_members(a) == 3 && s_members(b) == 3 && s_members(k) == 3 && s_ring_settled(a, 2) &&
                  s_ring_settled(b, 2) && s_ring_settled(k, 2),
              DISCOVERY_MS);
    cr_assert_eq(s_members(a), 3, "the control peer is a member of the table");
    mesh_peer_t *all[] = {a, b, k};
    for (int i = 0; i < 3; i++) {
        ring_view_t v = s_ring_view(all[i]);
        cr_expect_eq(v.n, 2, "%s: %zu ring members", mesh_peer_name(all[i]), v.n);
        cr_expect_eq(v.agreeing, 2, "%s: %d agree", mesh_peer_name(all[i]), v.agreeing);
        for (size_t m = 0; m < v.n && m < MAX_PEERS; m++) {
            cr_expect_str_neq(v.names[m], "ctl", "%s puts the control peer on its ring",
                              mesh_peer_name(all[i]));
        }
    }
    mesh_peer_t *ring[] = {a, b};
    mesh__ring_t *ref = s_reference_ring(ring, 2);
    uint64_t d = mesh__ring_digest(ref);
    mesh__ring_destroy(&ref);
    cr_expect_eq(mesh_peer_ring_digest(a), d);
    cr_expect_eq(mesh_peer_ring_digest(b), d);
    cr_expect_eq(mesh_peer_ring_digest(k), d, "the control peer sees another ring");
    int on_ctl = 0;
    for (int i = 0; i < RING_KEYS; i++) {
        char key[32];
        snprintf(key, sizeof key, "key-%d", i);
        owners_t o = s_owners(a, key, 3);
        cr_assert_eq(o.n, 2);
        for (size_t m = 0; m < o.n; m++) {
            on_ctl += strcmp(o.ids[m], mesh_peer_id(k)) == 0;
        }
    }
    cr_expect_eq(on_ctl, 0, "the control peer holds %d keys", on_ctl);
    s_end();
}

/* ------------------------------------------------------------------------ */
/* "once" calls: the provider's ledger */

static mesh_stats_t s_stats(mesh_peer_t *p)
{
    mesh_stats_t st;
    mesh_peer_stats(p, &st);
    return st;
}

/*  Finishes a held request with "<path>#<key>". */
static void s_reply_path_key(mesh_request_t *req)
{
    char out[128];
    int n = snprintf(out, sizeof out, "%s#%s", mesh_request_path(req),
                     mesh_request_key(req) ? mesh_request_key(req) : "");
    cr_assert_eq(mesh_request_reply(req, out, (size_t)n), 0);
}

Test(peer, once_repeats_join_the_run_under_way)
{
    mesh_peer_t *p = s_new("prov");
    svc_t *s = s_expose(p, "/job", H_HOLD, NULL);
    s_attach(p);
    mesh_peer_t *c1 = s_started("c1");
    mesh_peer_t *c2 = s_started("c2");
    run_until(s_knows(c1, "/job", "prov") && s_knows(c2, "/job", "prov"), DISCOVERY_MS);
    cr_assert(s_knows(c1, "/job", "prov") && s_knows(c2, "/job", "prov"));

    mesh_call_opts_t once = {.key = "order-7", .once = true, .timeout_ms = 10000};
    rec_t *r[3] = {&g_rec[40], &g_rec[41], &g_rec[42]};
    cr_assert_eq(s_call(c1, "/job", "first", &once, r[0]), 0);
    run_until(s->calls == 1, 3000);
    cr_assert_eq(s->calls, 1);
    /* while the handler holds it: a repeat from another caller, and one from the same */
    cr_assert_eq(s_call(c2, "/job", "second", &once, r[1]), 0);
    cr_assert_eq(s_call(c1, "/job", "third", &once, r[2]), 0);
    run_until(s_stats(p).once_joined == 2, 3000);
    cr_assert_eq(s_stats(p).once_joined, 2, "the repeats did not join the run");
    run_for(200);
    cr_expect_eq(s->calls, 1, "the handler ran %d times", (int)s->calls);
    cr_expect_eq(r[0]->n + r[1]->n + r[2]->n, 0, "answered before the run ended");
    cr_expect_eq(mesh__peer_open_requests(p), 1);
    cr_expect_str_eq(s->key, "order-7");
    cr_expect_eq(s->attempt, 1);

    /* the run ends: every caller gets its reply */
    cr_assert_eq(mesh_request_reply(s->held[0], "done:42", 7), 0);
    run_until(r[0]->n && r[1]->n && r[2]->n, 3000);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(r[i]->n, 1, "call %d: %d replies", i, r[i]->n);
        cr_expect_eq(r[i]->status, 0, "call %d: %s", i, mesh_err_name(r[i]->status));
        cr_expect_str_eq(r[i]->data, "done:42", "call %d", i);
        cr_expect_str_eq(r[i]->peer_name, "prov");
    }
    cr_expect_eq(s->calls, 1);
    cr_expect_eq(mesh__peer_open_requests(p), 0);
    run_for(200);
    cr_expect_eq(r[0]->n + r[1]->n + r[2]->n, 3, "a caller was answered twice");
    s_end();
}

Test(peer, once_replays_a_success_without_the_handler)
{
    mesh_peer_t *p = s_new("prov");
    svc_t *s = s_expose(p, "/job", H_ECHO, NULL);
    s_attach(p);
    mesh_peer_t *c = s_started("caller");
    run_until(s_knows(c, "/job", "prov"), DISCOVERY_MS);
    cr_assert(s_knows(c, "/job", "prov"));

    mesh_call_opts_t once = {.key = "k", .once = true};
    rec_t *r = s_call_wait(c, "/job", "x", &once);
    cr_assert_eq(r->status, 0, "%s", mesh_err_name(r->status));
    cr_expect_str_eq(r->data, "prov:x");
    cr_expect_eq(s->calls, 1);
    cr_expect_eq(s->attempt, 1);
    cr_expect_str_eq(s->key, "k");

    /* a repeat, as a task's next run would send it: the first reply again */
    mesh_call_opts_t again = {.key = "k", .once = true, .attempt_base = 4};
    r = s_call_wait(c, "/job", "y", &again);
    cr_assert_eq(r->status, 0, "%s", mesh_err_name(r->status));
    cr_expect_str_eq(r->data, "prov:x", "not the remembered reply: %s", r->data);
    cr_expect_str_eq(r->peer_name, "prov");
    cr_expect_eq(s->calls, 1, "the handler ran again");
    cr_expect_eq(s_stats(p).once_replayed, 1);
    cr_expect_eq(s_stats(p).once_joined, 0);

    /* the same key without once is an ordinary call */
    mesh_call_opts_t plain = {.key = "k"};
    r = s_call_wait(c, "/job", "z", &plain);
    cr_expect_str_eq(r->data, "prov:z");
    cr_expect_eq(s->calls, 2);
    cr_expect_eq(s->attempt, 1);
    /* and does not disturb what is remembered */
    r = s_call_wait(c, "/job", "w", &once);
    cr_expect_str_eq(r->data, "prov:x");
    cr_expect_eq(s->calls, 2);
    cr_expect_eq(s_stats(p).once_replayed, 2);
    s_end();
}

Test(peer, once_forgets_a_failed_run)
{
    mesh_peer_t *p = s_new("prov");
    svc_t *s = s_expose(p, "/job", H_HOLD, NULL);
    s_attach(p);
    mesh_peer_t *c1 = s_started("c1");
    mesh_peer_t *c2 = s_started("c2");
    run_until(s_knows(c1, "/job", "prov") && s_knows(c2, "/job", "prov"), DISCOVERY_MS);
    cr_assert(s_knows(c1, "/job", "prov") && s_knows(c2, "/job", "prov"));
    mesh_call_opts_t once = {.key = "k", .once = true, .timeout_ms = 10000};

    /* an error: the caller and the one waiting get it */
    cr_assert_eq(s_call(c1, "/job", "a", &once, &g_rec[40]), 0);
    run_until(s->calls == 1, 3000);
    cr_assert_eq(s_call(c2, "/job", "b", &once, &g_rec[41]), 0);
    run_until(s_stats(p).once_joined == 1, 3000);
    cr_assert_eq(s_stats(p).once_joined, 1);
    cr_assert_eq(mesh_request_error(s->held[0], "boom"), 0);
    run_until(g_rec[40].n && g_rec[41].n, 3000);
    for (int i = 40; i < 42; i++) {
        cr_expect_eq(g_rec[i].status, MESH_ERR_REMOTE, "%s", mesh_err_name(g_rec[i].status));
        cr_expect_str_eq(g_rec[i].error, "boom");
    }

    /* a repeat runs the handler again; a rejection reaches the waiter too */
    cr_assert_eq(s_call(c1, "/job", "c", &once, &g_rec[42]), 0);
    run_until(s->calls == 2, 3000);
    cr_assert_eq(s->calls, 2, "the failed run was remembered");
    cr_assert_eq(s_call(c2, "/job", "d", &once, &g_rec[43]), 0);
    run_until(s_stats(p).once_joined == 2, 3000);
    cr_assert_eq(s_stats(p).once_joined, 2);
    cr_assert_eq(mesh_request_reject(s->held[1]), 0);
    run_until(g_rec[42].n && g_rec[43].n, 3000);
    for (int i = 42; i < 44; i++) {
        cr_expect_eq(g_rec[i].status, MESH_ERR_REJECTED, "%s", mesh_err_name(g_rec[i].status));
    }

    /* after the rejection too; then a success is kept */
    cr_assert_eq(s_call(c2, "/job", "e", &once, &g_rec[44]), 0);
    run_until(s->calls == 3, 3000);
    cr_assert_eq(s->calls, 3, "the rejected run was remembered");
    cr_assert_eq(mesh_request_reply(s->held[2], "ok", 2), 0);
    run_until(g_rec[44].n, 3000);
    cr_expect_eq(g_rec[44].status, 0);
    cr_expect_str_eq(g_rec[44].data, "ok");
    rec_t *r = s_call_wait(c1, "/job", "f", &once);
    cr_expect_eq(r->status, 0);
    cr_expect_str_eq(r->data, "ok");
    cr_expect_eq(s->calls, 3);
    cr_expect_eq(s_stats(p).once_replayed, 1);
    s_end();
}

Test(peer, once_keys_and_paths_are_independent)
{
    mesh_peer_t *p = s_new("prov");
    svc_t *sa = s_expose(p, "/a", H_HOLD, NULL);
    svc_t *sab = s_expose(p, "/ab", H_HOLD, NULL);
    s_attach(p);
    mesh_peer_t *c = s_started("caller");
    run_until(s_knows(c, "/a", "prov") && s_knows(c, "/ab", "prov"), DISCOVERY_MS);
    cr_assert(s_knows(c, "/a", "prov") && s_knows(c, "/ab", "prov"));

    /* ("/a", "bk") and ("/ab", "k") spell the same octets end to end */
    struct {
        const char *path, *key, *reply;
    } runs[] = {{"/a", "bk", "/a#bk"}, {"/a", "k", "/a#k"}, {"/ab", "k", "/ab#k"}};
    for (int i = 0; i < 3; i++) {
        mesh_call_opts_t o = {.key = runs[i].key, .once = true, .timeout_ms = 10000};
        cr_assert_eq(s_call(c, runs[i].path, "x", &o, &g_rec[40 + i]), 0);
    }
    run_until(sa->calls == 2 && sab->calls == 1, 3000);
    cr_assert_eq(sa->calls, 2, "a run of /a was joined to another");
    cr_assert_eq(sab->calls, 1);
    cr_expect_eq(s_stats(p).once_joined, 0);
    s_reply_path_key(sa->held[0]);
    s_reply_path_key(sa->held[1]);
    s_reply_path_key(sab->held[0]);
    run_until(g_rec[40].n && g_rec[41].n && g_rec[42].n, 3000);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(g_rec[40 + i].status, 0);
        cr_expect_str_eq(g_rec[40 + i].data, runs[i].reply);
    }
    /* each is replayed with its own reply, in another order */
    for (int i = 2; i >= 0; i--) {
        mesh_call_opts_t o = {.key = runs[i].key, .once = true};
        rec_t *r = s_call_wait(c, runs[i].path, "y", &o);
        cr_expect_eq(r->status, 0);
        cr_expect_str_eq(r->data, runs[i].reply);
    }
    cr_expect_eq(sa->calls + sab->calls, 3);
    cr_expect_eq(s_stats(p).once_replayed, 3);

    /* a run still held, with a waiter, when the peers go: freed, nothing leaks */
    mesh_call_opts_t o = {.key = "held", .once = true, .timeout_ms = 10000};
    cr_assert_eq(s_call(c, "/a", "z", &o, &g_rec[50]), 0);
    cr_assert_eq(s_call(c, "/a", "z", &o, &g_rec[51]), 0);
    run_until(s_stats(p).once_joined == 1, 3000);
    cr_expect_eq(s_stats(p).once_joined, 1);
    cr_expect_eq(sa->calls, 3);
    s_end();
}

Test(peer, once_without_a_key_or_in_casts_and_fanouts_is_ignored)
{
    mesh_peer_t *p = s_new("prov");
    svc_t *s = s_expose(p, "/job", H_ECHO, NULL);
    s_attach(p);
    mesh_peer_t *c = s_started("caller");
    run_until(s_knows(c, "/job", "prov"), DISCOVERY_MS);
    cr_assert(s_knows(c, "/job", "prov"));

    mesh_call_opts_t nokey = {.once = true, .timeout_ms = 10000};
    rec_t *r = s_call_wait(c, "/job", "x", &nokey);
    cr_expect_str_eq(r->data, "prov:x");
    r = s_call_wait(c, "/job", "y", &nokey);
    cr_expect_str_eq(r->data, "prov:y", "replayed without a key");
    cr_expect_eq(s->calls, 2);
    /* at the same time, too */
    s->mode = H_HOLD;
    cr_assert_eq(s_call(c, "/job", "a", &nokey, &g_rec[40]), 0);
    cr_assert_eq(s_call(c, "/job", "b", &nokey, &g_rec[41]), 0);
    run_until(s->calls == 4, 3000);
    cr_expect_eq(s->calls, 4, "joined without a key");
    cr_assert_eq(s->nheld, 2);
    cr_assert_eq(mesh_request_reply(s->held[0], "one", 3), 0);
    cr_assert_eq(mesh_request_reply(s->held[1], "two", 3), 0);
    run_until(g_rec[40].n && g_rec[41].n, 3000);
    cr_expect_str_eq(g_rec[40].data, "one");
    cr_expect_str_eq(g_rec[41].data, "two");

    /* casts and fan-outs with a key run every time */
    s->mode = H_ECHO;
    mesh_call_opts_t keyed = {.key = "k", .once = true};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(mesh_peer_cast(c, "/job", "c", 1, &keyed), 0);
    }
    run_until(s->casts == 2, 3000);
    cr_expect_eq(s->casts, 2, "a cast was deduplicated");
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(mesh_peer_fanout(c, "/job", "f", 1, &keyed, s_on_gather, &g_gather[i]), 0);
    }
    run_until(g_gather[0].n && g_gather[1].n, 3000);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(g_gather[i].nreplies, 1);
        cr_expect_eq(g_gather[i].status[0], 0);
    }
    cr_expect_eq(s->calls, 6, "a fan-out was deduplicated");
    mesh_stats_t st = s_stats(p);
    cr_expect_eq(st.once_joined + st.once_replayed, 0);
    s_end();
}

/* ------------------------------------------------------------------------ */
/* pick */

Test(peer, pick_names_the_provider_a_call_would_go_to)
{
    mesh_peer_t *p = s_new("prov");
    const char *tags[] = {"zone=eu"};
    mesh_expose_opts_t eo = {.tags = tags, .ntags = 1};
    svc_t *s = s_expose(p, "/echo", H_ECHO, &eo);
    s_attach(p);
    mesh_peer_t *idle = s_new("idle"); /* never started */
    mesh_peer_t *c = s_started("caller");
    run_until(s_knows(c, "/echo", "prov"), DISCOVERY_MS);
    cr_assert(s_knows(c, "/echo", "prov"));

    char id[33];
    memset(id, 'x', sizeof id);
    cr_assert_eq(mesh_peer_pick(c, "/echo", NULL, id), 0);
    cr_assert_eq(strnlen(id, sizeof id), 32, "not a NUL-terminated id");
    cr_expect_str_eq(id, mesh_peer_id(p));
    /* options as for a call */
    char id2[33] = "";
    mesh_call_opts_t eu = {.tags = tags, .ntags = 1, .selector = "direct", .peer = "prov"};
    cr_expect_eq(mesh_peer_pick(c, "/echo", &eu, id2), 0);
    cr_expect_str_eq(id2, mesh_peer_id(p));
    /* nothing was sent */
    run_for(200);
    cr_expect_eq(s->calls + s->casts, 0);
    cr_expect_eq(s_stats(c).requests_out, 0);
    cr_expect_eq(s_stats(p).requests_in, 0);

    /* a direct call to the picked id reaches it */
    mesh_call_opts_t direct = {.selector = "direct", .peer = id};
    rec_t *r = s_call_wait(c, "/echo", "x", &direct);
    cr_expect_eq(r->status, 0);
    cr_expect_str_eq(r->peer_id, id);
    cr_expect_eq(s->calls, 1);

    /* no candidate */
    const char *us[] = {"zone=us"};
    mesh_call_opts_t ous = {.tags = us, .ntags = 1};
    mesh_call_opts_t ghost = {.selector = "direct", .peer = "ghost"};
    cr_expect_eq(mesh_peer_pick(c, "/nothing", NULL, id2), MESH_ERR_NOPROVIDER);
    cr_expect_eq(mesh_peer_pick(c, "/echo", &ous, id2), MESH_ERR_NOPROVIDER);
    cr_expect_eq(mesh_peer_pick(c, "/echo", &ghost, id2), MESH_ERR_NOPROVIDER);
    /* bad arguments, then state */
    mesh_call_opts_t nosel = {.selector = "no-such-selector"};
    mesh_call_opts_t nokey = {.selector = "key"};
    mesh_call_opts_t all = {.selector = "all"};
    cr_expect_eq(mesh_peer_pick(c, "/echo", NULL, NULL), MESH_ERR_INVAL);
    cr_expect_eq(mesh_peer_pick(c, "echo", NULL, id2), MESH_ERR_INVAL);
    cr_expect_eq(mesh_peer_pick(c, NULL, NULL, id2), MESH_ERR_INVAL);
    cr_expect_eq(mesh_peer_pick(c, "/echo", &nosel, id2), MESH_ERR_INVAL);
    cr_expect_eq(mesh_peer_pick(c, "/echo", &nokey, id2), MESH_ERR_INVAL);
    cr_expect_eq(mesh_peer_pick(c, "/echo", &all, id2), MESH_ERR_INVAL);
    cr_expect_eq(mesh_peer_pick(idle, "/echo", NULL, id2), MESH_ERR_STATE);
    cr_expect_eq(mesh_peer_pick(idle, "/echo", NULL, NULL), MESH_ERR_INVAL);
    cr_expect_str_eq(id, mesh_peer_id(p), "a failed pick wrote its output");
    /* the provider may pick itself */
    cr_expect_eq(mesh_peer_pick(p, "/echo", NULL, id2), 0);
    cr_expect_str_eq(id2, mesh_peer_id(p));
    s_end();
}

Test(peer, pick_advances_a_round_robin_like_a_call)
{
    const char *names[] = {"p1", "p2", "p3"};
    mesh_peer_t *p[3];
    svc_t *s[3];
    for (int i = 0; i < 3; i++) {
        p[i] = s_new(names[i]);
        s[i] = s_expose(p[i], "/rr", H_ECHO, NULL);
        s_attach(p[i]);
    }
    mesh_peer_t *c = s_started("caller");
    run_until(s_knows(c, "/rr", "p1") && s_knows(c, "/rr", "p2") && s_knows(c, "/rr", "p3"),
              DISCOVERY_MS);
    cr_assert(s_knows(c, "/rr", "p1") && s_knows(c, "/rr", "p2") && s_knows(c, "/rr", "p3"));

    mesh_call_opts_t rr = {.selector = "round_robin"};
    char ids[6][33];
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(mesh_peer_pick(c, "/rr", &rr, ids[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        cr_expect(strcmp(ids[i], mesh_peer_id(p[0])) == 0 ||
                      strcmp(ids[i], mesh_peer_id(p[1])) == 0 ||
                      strcmp(ids[i], mesh_peer_id(p[2])) == 0,
                  "pick %d is not a provider", i);
        cr_expect_str_neq(ids[i], ids[(i + 1) % 3], "picks %d and %d agree", i, (i + 1) % 3);
    }
    for (int i = 3; i < 6; i++) {
        cr_expect_str_eq(ids[i], ids[i - 3], "not a cycle at pick %d", i);
    }
    /* picks and calls share the cycle */
    rec_t *r = s_call_wait(c, "/rr", "x", &rr);
    cr_expect_str_eq(r->peer_id, ids[0], "the call after two cycles of picks went elsewhere");
    char next[33];
    cr_assert_eq(mesh_peer_pick(c, "/rr", &rr, next), 0);
    cr_expect_str_eq(next, ids[1]);
    cr_expect_eq(s[0]->calls + s[1]->calls + s[2]->calls, 1);

    /* a key picks where a keyed call goes */
    mesh_call_opts_t key = {.selector = "key", .key = "user-42"};
    char k1[33], k2[33];
    cr_assert_eq(mesh_peer_pick(c, "/rr", &key, k1), 0);
    cr_assert_eq(mesh_peer_pick(c, "/rr", &key, k2), 0);
    cr_expect_str_eq(k1, k2);
    r = s_call_wait(c, "/rr", "y", &key);
    cr_expect_str_eq(r->peer_id, k1);
    s_end();
}
