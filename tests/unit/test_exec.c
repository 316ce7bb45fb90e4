/*  test_exec.c: meshd's exec and plugin agents, in process (ring 2).

    A provider peer hosts agents over the example directories in
    agents/examples/ (shell/, python/) and the example plugin; a caller peer
    on the same loop calls them through the mesh like any client would,
    with msgpack payloads made from JSON (tools/jsonpack.h). The loop is
    libev's default one, which exec agents need (ev_child); Criterion runs
    every test in a process of its own, so each gets a fresh one.

    Every test gets its own beacon port and realm, tears down to zero
    (agents, then peers, then the loop) and asks LeakSanitizer. What the
    callbacks write lives in globals, never on a test's stack. */
#include <criterion/criterion.h>

#include "testutil.h"

#include <mesh/mesh.h>

#include "agent_impl.h"
#include "jsonpack.h"

#include <arpa/inet.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define S_LEAKS() __lsan_do_recoverable_leak_check()
#else
#define S_LEAKS() 0
#endif

#if !defined(MESH_EXAMPLES_DIR) || !defined(PLUGIN_HELLO)
#error "MESH_EXAMPLES_DIR (agents/examples) and PLUGIN_HELLO (its .so) must be defined"
#endif

#define SHELL_DIR    MESH_EXAMPLES_DIR "/shell"
#define PYTHON_DIR   MESH_EXAMPLES_DIR "/python"
#define MAX_PEERS    4
#define MAX_AGENTS   4
#define MAX_RECS     32
#define DISCOVERY_MS 5000
#define CALL_MS      10000 /* generous: sanitized builds start processes slowly */

/* ------------------------------------------------------------------------ */
/* the harness */

static struct ev_loop *g_loop;
static ev_timer g_tick;
static uint16_t g_port;
static char g_realm[64];
static mesh_peer_t *g_peers[MAX_PEERS];
static agent_t *g_agents[MAX_AGENTS];
static char g_dir[64];  /* a test's own directory of methods, removed at teardown */
static char g_flag[64]; /* a test's flag file, removed at teardown */

static int64_t s_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


static void s_on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
}

static bool s_turn(int64_t end)
{
    if (s_ms() >= end) {
        return false;
    }
    ev_run(g_loop, EVRUN_ONCE);
    return true;
}

#define run_until(cond, timeout_ms)                                                                \
    for (int64_t end_ = s_ms() + (timeout_ms); !(cond) && s_turn(end_);)

#define run_for(ms) run_until(false, ms)

static mesh_peer_t *s_peer(const char *name)
{
    mesh_config_t c;
    mesh_config_init(&c);
    c.name = name;
    c.realm = g_realm;
    c.iface = "lo";
    c.beacon_port = g_port;
    c.beacon_interval_ms = 100;
    c.ping_interval_ms = 150;
    c.ping_timeout_ms = 1500;
    c.call_timeout_ms = CALL_MS;
    mesh_peer_t *p = mesh_peer_new(&c);
    cr_assert_not_null(p);
    for (int i = 0; i < MAX_PEERS; i++) {
        if (!g_peers[i]) {
            g_peers[i] = p;
            cr_assert_eq(mesh_peer_attach(p, g_loop), 0);
            return p;
        }
    }
    cr_assert_fail("too many peers");
    return NULL;
}

static agent_t **s_slot(agent_t *a)
{
    for (int i = 0; i < MAX_AGENTS; i++) {
        if (!g_agents[i]) {
            g_agents[i] = a;
            return &g_agents[i];
        }
    }
    cr_assert_fail("too many agents");
    return NULL;
}

static agent_config_t s_cfg(const char *name, const char *dir)
{
    agent_config_t c = {
        .name = name, .kind = "exec", .path = dir, .workers = 2, .timeout_ms = 5000};
    return c;
}

/*  An exec agent on p; the returned slot is nulled by agent_destroy. */
static agent_t **s_exec(mesh_peer_t *p, const agent_config_t *cfg)
{
    agent_t *a = agent_exec_new(p, g_loop, cfg);
    cr_assert_not_null(a, "agent_exec_new(%s) failed", cfg->name);
    return s_slot(a);
}

typedef struct {
    const char *path;
    const char *name;
    bool found;
    char tags[128];
} route_query_t;

static void s_route_cb(const mesh_route_info_t *r, void *arg)
{
    route_query_t *q = arg;
    if (r->path && r->alive && strcmp(r->path, q->path) == 0 && strcmp(r->name, q->name) == 0) {
        q->found = true;
        q->tags[0] = '\0';
        for (size_t i = 0; i < r->ntags; i++) {
            strncat(q->tags, r->tags[i], sizeof q->tags - strlen(q->tags) - 2);
            strcat(q->tags, ";");
        }
    }
}

static route_query_t s_route(mesh_peer_t *p, const char *path, const char *provider)
{
    route_query_t q = {.path = path, .name = provider};
    mesh_peer_routes(p, s_route_cb, &q);
    return q;
}

static bool s_knows(mesh_peer_t *p, const char *path, const char *provider)
{
    return s_route(p, path, provider).found;
}

/*  A provider "prov" and a caller "caller" that knows path on it. An agent
    exposes its services one by one (exec: in name order), so a test waits
    for the last one it calls. */
static mesh_peer_t *g_prov, *g_caller;

static void s_wait_known(const char *path)
{
    run_until(s_knows(g_caller, path, mesh_peer_name(g_prov)), DISCOVERY_MS);
    cr_assert(s_knows(g_caller, path, mesh_peer_name(g_prov)), "%s is not offered", path);
}

/* ------------------------------------------------------------------------ */
/* calls, with JSON at the edges */

typedef struct {
    int n;
    int status;
    char error[512];
    json_t *reply; /* decoded reply, or NULL */
    char reply_err[256];
    char peer_name[32];
    int64_t at;
} rec_t;

static rec_t g_rec[MAX_RECS];
static int g_nrec;

static void s_on_reply(mesh_peer_t *peer, const mesh_reply_t *r, void *arg)
{
    rec_t *x = arg;
    x->n++;
    x->at = s_ms();
    x->status = r->status;
    snprintf(x->error, sizeof x->error, "%s", r->error ? r->error : "");
    snprintf(x->peer_name, sizeof x->peer_name, "%s", r->peer_name ? r->peer_name : "");
    if (r->status == 0) {
        x->reply = jsonpack_to_json(r->data, r->size, x->reply_err, sizeof x->reply_err);
    }
}

/*  Starts a call with raw bytes. */
static rec_t *s_call_raw(mesh_peer_t *c, const char *path, const void *data, size_t size,
                         const mesh_call_opts_t *opts)
{
    cr_assert_lt(g_nrec, MAX_RECS);
    rec_t *rec = &g_rec[g_nrec++];
    int rc = mesh_peer_call(c, path, data, size, opts, s_on_reply, rec);
    cr_assert_eq(rc, 0, "call %s: %s", path, mesh_err_name(rc));
    return rec;
}

/*  Starts a call whose payload is JSON text (NULL: no payload). */
static rec_t *s_call(mesh_peer_t *c, const char *path, const char *json,
                     const mesh_call_opts_t *opts)
{
    uint8_t *packed = NULL;
    size_t len = 0;
    if (json) {
        json_error_t jerr;
        json_t *v = json_loads(json, JSON_DECODE_ANY, &jerr);
        cr_assert_not_null(v, "bad test JSON %s: %s", json, jerr.text);
        char err[256];
        cr_assert_eq(jsonpack_from_json(v, &packed, &len, err, sizeof err), 0);
        json_decref(v);
    }
    rec_t *rec = s_call_raw(c, path, packed, len, opts);
    free(packed);
    return rec;
}

static rec_t *s_wait(rec_t *rec)
{
    run_until(rec->n > 0, CALL_MS + 2000);
    cr_assert_eq(rec->n, 1, "no answer");
    return rec;
}

static rec_t *s_call_wait(mesh_peer_t *c, const char *path, const char *json)
{
    return s_wait(s_call(c, path, json, NULL));
}

/*  The call succeeded with a reply equal to the JSON text want. */
static void s_expect_reply(const rec_t *rec, const char *want)
{
    cr_assert_eq(rec->status, 0, "status %s: %s", mesh_err_name(rec->status), rec->error);
    cr_assert_not_null(rec->reply, "reply is not msgpack: %s", rec->reply_err);
    json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);
    cr_assert_not_null(w);
    char *got = json_dumps(rec->reply, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
    cr_expect(json_equal(rec->reply, w), "reply %s, expected %s", got, want);
    free(got);
    json_decref(w);
}

static void s_expect_error(const rec_t *rec, const char *want)
{
    cr_expect_eq(rec->status, MESH_ERR_REMOTE, "status %s, expected a remote error",
                 mesh_err_name(rec->status));
    cr_expect_str_eq(rec->error, want);
}

/* ------------------------------------------------------------------------ */
/* the suite */

static void s_init(void)
{
    static unsigned counter;
    memset(g_peers, 0, sizeof g_peers);
    memset(g_agents, 0, sizeof g_agents);
    memset(g_rec, 0, sizeof g_rec);
    g_nrec = 0;
    g_loop = ev_default_loop(0);
    cr_assert_not_null(g_loop);
    ev_timer_init(&g_tick, s_on_tick, 0.005, 0.005);
    ev_timer_start(g_loop, &g_tick);
    g_port = test_free_udp_port();
    snprintf(g_realm, sizeof g_realm, "exec-%d-%u-%u", (int)getpid(), counter++, g_port);
    g_prov = s_peer("prov");
    g_caller = s_peer("caller");
}

static void s_scripts_remove(void);

static void s_teardown(void)
{
    if (!g_loop) {
        return;
    }
    for (int i = 0; i < MAX_AGENTS; i++) {
        agent_destroy(&g_agents[i], false);
    }
    for (int i = 0; i < MAX_PEERS; i++) {
        mesh_peer_destroy(&g_peers[i]);
    }
    for (int i = 0; i < MAX_RECS; i++) {
        json_decref(g_rec[i].reply);
        g_rec[i].reply = NULL;
    }
    ev_timer_stop(g_loop, &g_tick);
    ev_loop_destroy(g_loop);
    g_loop = NULL;
    s_scripts_remove();
    if (g_flag[0]) {
        unlink(g_flag);
        g_flag[0] = '\0';
    }
}

static void s_end(void)
{
    s_teardown();
    cr_assert_eq(S_LEAKS(), 0, "memory leaked: see LeakSanitizer's report");
}

TestSuite(exec, .init = s_init, .fini = s_teardown, .timeout = 60);

/* ------------------------------------------------------------------------ */
/* exec agents */

Test(exec, methods_are_the_directory_executables)
{
    setenv("MESH_TEST_SECRET", "leak", 1);
    const char *tags[] = {"lang=sh"};
    agent_config_t cfg = s_cfg("shell", SHELL_DIR);
    cfg.tags = tags;
    cfg.ntags = 1;
    agent_t **a = s_exec(g_prov, &cfg);
    cr_expect_str_eq(agent_name(*a), "shell");
    s_wait_known("/shell/upper");
    cr_expect(s_knows(g_caller, "/shell/crash", "prov"));
    cr_expect_str_eq(s_route(g_caller, "/shell/upper", "prov").tags, "lang=sh;");
    /* README.md is not executable: not a method */
    cr_expect_not(s_knows(g_caller, "/shell/README.md", "prov"));

    rec_t *r = s_call_wait(g_caller, "/shell/upper", "{\"text\": \"hello\", \"n\": [1, \"b\"]}");
    s_expect_reply(r, "{\"text\": \"HELLO\", \"n\": [1, \"B\"]}");
    cr_expect_str_eq(r->peer_name, "prov");

    /* no payload: the method reads null */
    r = s_call_wait(g_caller, "/shell/upper", NULL);
    s_expect_reply(r, "null");

    /* what a method reads: one line of compact JSON, reals in few digits */
    r = s_call_wait(g_caller, "/shell/raw", "{\"x\": 0.4, \"y\": [1e300, -2, \"\u00e9\"]}");
    s_expect_reply(r, "\"{\\\"x\\\":0.4,\\\"y\\\":[1e300,-2,\\\"\u00e9\\\"]}\\n\"");

    /* the environment is clean, and tells the method about the request */
    r = s_call_wait(g_caller, "/shell/env", "{}");
    cr_assert_eq(r->status, 0, "%s", r->error);
    json_t *env = r->reply;
    cr_expect_str_eq(json_string_value(json_object_get(env, "MESH_AGENT")), "shell");
    cr_expect_str_eq(json_string_value(json_object_get(env, "MESH_METHOD")), "env");
    cr_expect_str_eq(json_string_value(json_object_get(env, "MESH_PATH")), "/shell/env");
    cr_expect_str_eq(json_string_value(json_object_get(env, "MESH_CALLER")), "caller");
    cr_expect_str_eq(json_string_value(json_object_get(env, "MESH_CALLER_ID")),
                     mesh_peer_id(g_caller));
    cr_expect_str_eq(json_string_value(json_object_get(env, "MESH_ATTEMPT")), "1");
    cr_expect_str_eq(json_string_value(json_object_get(env, "MESH_TIMEOUT_MS")), "5000");
    cr_expect_str_eq(json_string_value(json_object_get(env, "PATH")), AGENT_EXEC_ENV_PATH);
    cr_expect_null(json_object_get(env, "MESH_TEST_SECRET"), "meshd's environment leaked");
    cr_expect_null(json_object_get(env, "MESH_KEY"));

    agent_stats_t st;
    agent_stats(*a, &st);
    cr_expect_eq(st.requests, 4);
    cr_expect_eq(st.errors, 0);
    cr_expect_eq(agent_inflight(*a), 0);
    s_end();
}

Test(exec, big_payloads_cross_the_pipes)
{
    s_exec(g_prov, &(agent_config_t){.name = "shell", .path = SHELL_DIR, .timeout_ms = 8000});
    s_wait_known("/shell/upper");
    /* well past a pipe's 64 KiB: partial non-blocking writes and reads */
    size_t n = 1024 * 1024;
    char *text = malloc(n + 3);
    text[0] = '"';
    for (size_t i = 0; i < n; i++) {
        text[1 + i] = (char)('a' + i % 26);
    }
    text[n + 1] = '"';
    text[n + 2] = '\0';
    rec_t *r = s_call_wait(g_caller, "/shell/upper", text);
    cr_assert_eq(r->status, 0, "%s", r->error);
    cr_assert(json_is_string(r->reply));
    cr_expect_eq(json_string_length(r->reply), n);
    const char *s = json_string_value(r->reply);
    cr_expect(s[0] == 'A' && s[25] == 'Z' && s[n - 1] == (char)('A' + (n - 1) % 26));
    free(text);
    s_end();
}

Test(exec, a_crash_is_a_remote_error_with_the_last_stderr_line)
{
    agent_t **a = s_exec(g_prov, &(agent_config_t){.name = "shell", .path = SHELL_DIR});
    s_wait_known("/shell/crash");
    rec_t *r = s_call_wait(g_caller, "/shell/crash", "{}");
    s_expect_error(r, "crash: the disk is on fire");
    /* a Python exception: its last line */
    agent_t **py = s_exec(g_prov, &(agent_config_t){.name = "python", .path = PYTHON_DIR});
    s_wait_known("/python/wordcount");
    r = s_call_wait(g_caller, "/python/wordcount", "5");
    s_expect_error(r, "TypeError: wordcount wants a string or {\"text\": \"...\"}");
    r = s_call_wait(g_caller, "/python/wordcount",
                    "{\"text\": \"to be or not to be\", \"top\": 2}");
    s_expect_reply(r, "{\"words\": 6, \"lines\": 1, \"chars\": 18, \"top\": [[\"to\", 2], "
                      "[\"be\", 2]]}");
    agent_stats_t st;
    agent_stats(*a, &st);
    cr_expect_eq(st.requests, 1);
    cr_expect_eq(st.crashes, 1);
    cr_expect_eq(st.errors, 1);
    agent_stats(*py, &st);
    cr_expect_eq(st.requests, 2);
    cr_expect_eq(st.crashes, 1);
    s_end();
}

Test(exec, a_hang_times_out_and_the_pool_recovers)
{
    /* one worker: the next call runs only if the killed one freed its slot */
    agent_t **a = s_exec(
        g_prov,
        &(agent_config_t){.name = "shell", .path = SHELL_DIR, .workers = 1, .timeout_ms = 500});
    s_wait_known("/shell/hang");
    s_wait_known("/shell/upper");
    int64_t t0 = s_ms();
    rec_t *r = s_call_wait(g_caller, "/shell/hang", "{}");
    int64_t took = s_ms() - t0;
    s_expect_error(r, "timed out after 500 ms");
    cr_expect_geq(took, 450, "answered after %lld ms", (long long)took);
    cr_expect_lt(took, 5000, "answered after %lld ms", (long long)took);
    r = s_call_wait(g_caller, "/shell/upper", "\"still here\"");
    s_expect_reply(r, "\"STILL HERE\"");
    /* and again: a hang queued behind a good call */
    rec_t *h = s_call(g_caller, "/shell/hang", "{}", NULL);
    rec_t *u = s_call(g_caller, "/shell/upper", "\"after\"", NULL);
    s_wait(h);
    s_wait(u);
    s_expect_error(h, "timed out after 500 ms");
    s_expect_reply(u, "\"AFTER\"");
    agent_stats_t st;
    agent_stats(*a, &st);
    cr_expect_eq(st.timeouts, 2);
    cr_expect_eq(st.errors, 2);
    cr_expect_eq(agent_inflight(*a), 0);
    s_end();
}

Test(exec, invalid_json_output_is_an_error)
{
    s_exec(g_prov, &(agent_config_t){.name = "shell", .path = SHELL_DIR});
    s_wait_known("/shell/badjson");
    s_wait_known("/shell/upper");
    rec_t *r = s_call_wait(g_caller, "/shell/badjson", "{}");
    cr_expect_eq(r->status, MESH_ERR_REMOTE);
    cr_expect(strncmp(r->error, "invalid JSON from badjson: ", 27) == 0, "error: %s", r->error);
    cr_expect_gt(strlen(r->error), 27);
    /* and a payload that is not msgpack never reaches a process */
    r = s_wait(s_call_raw(g_caller, "/shell/upper", "\xc1", 1, NULL));
    cr_expect_eq(r->status, MESH_ERR_REMOTE);
    cr_expect_str_eq(r->error, "bad payload for upper: invalid byte 0xc1 at offset 0");
    s_end();
}

Test(exec, the_filter_selects_methods)
{
    s_exec(g_prov,
           &(agent_config_t){.name = "shell", .path = SHELL_DIR, .filter = "^(upper|sl.w)$"});
    s_wait_known("/shell/upper");
    s_wait_known("/shell/slow");
    cr_expect_not(s_knows(g_caller, "/shell/crash", "prov"));
    cr_expect_not(s_knows(g_caller, "/shell/hang", "prov"));
    mesh_call_opts_t direct = {.selector = "direct", .peer = "prov"};
    cr_expect_eq(mesh_peer_call(g_caller, "/shell/crash", NULL, 0, &direct, s_on_reply,
                                &g_rec[MAX_RECS - 1]),
                 MESH_ERR_NOPROVIDER);
    s_end();
}

Test(exec, workers_bound_the_processes_at_once)
{
    agent_t **a =
        s_exec(g_prov, &(agent_config_t){.name = "shell", .path = SHELL_DIR, .workers = 1});
    s_wait_known("/shell/slow");
    int64_t t0 = s_ms();
    rec_t *r[3];
    for (int i = 0; i < 3; i++) {
        r[i] = s_call(g_caller, "/shell/slow", "{\"seconds\": 0.4}", NULL);
    }
    run_until(agent_inflight(*a) == 3, 2000);
    cr_expect_eq(agent_inflight(*a), 3, "1 running + 2 queued");
    for (int i = 0; i < 3; i++) {
        s_wait(r[i]);
        s_expect_reply(r[i], "{\"slept\": 0.4}");
    }
    /* one at a time, in order: each ends at least ~0.4 s after the one before */
    int64_t last = 0;
    for (int i = 0; i < 3; i++) {
        last = r[i]->at > last ? r[i]->at : last;
    }
    cr_expect_geq(last - t0, 1150, "three 0.4 s runs took %lld ms", (long long)(last - t0));
    cr_expect_lt(r[0]->at, r[1]->at);
    cr_expect_lt(r[1]->at, r[2]->at);
    cr_expect_geq(r[2]->at - r[1]->at, 350);
    cr_expect_eq(agent_inflight(*a), 0);
    s_end();
}

Test(exec, workers_run_side_by_side)
{
    s_exec(g_prov, &(agent_config_t){.name = "shell", .path = SHELL_DIR, .workers = 3});
    s_wait_known("/shell/slow");
    int64_t t0 = s_ms();
    rec_t *r[3];
    for (int i = 0; i < 3; i++) {
        r[i] = s_call(g_caller, "/shell/slow", "{\"seconds\": 1}", NULL);
    }
    for (int i = 0; i < 3; i++) {
        s_wait(r[i]);
        s_expect_reply(r[i], "{\"slept\": 1}");
    }
    int64_t last = r[0]->at > r[1]->at ? r[0]->at : r[1]->at;
    last = r[2]->at > last ? r[2]->at : last;
    cr_expect_lt(last - t0, 2500, "three parallel 1 s runs took %lld ms", (long long)(last - t0));
    s_end();
}

Test(exec, a_failing_active_check_keeps_the_agent_unoffered)
{
    char *flag = g_flag;
    snprintf(flag, sizeof g_flag, "/tmp/mesh-test-active-XXXXXX");
    int fd = mkstemp(flag);
    cr_assert_geq(fd, 0);
    close(fd);
    char check[128];
    snprintf(check, sizeof check, "test -e %s", flag);
    s_exec(g_prov, &(agent_config_t){.name = "off", .path = SHELL_DIR, .active_check = "exit 1"});
    s_exec(g_prov, &(agent_config_t){.name = "flag", .path = SHELL_DIR, .active_check = check});
    /* the flag agent is offered once its check passes... */
    s_wait_known("/flag/upper");
    /* ...while the failing one never is */
    run_for(1500);
    cr_expect_not(s_knows(g_caller, "/off/upper", "prov"), "offered with a failing check");
    mesh_call_opts_t direct = {.selector = "direct", .peer = "prov"};
    cr_expect_eq(
        mesh_peer_call(g_caller, "/off/upper", NULL, 0, &direct, s_on_reply, &g_rec[MAX_RECS - 1]),
        MESH_ERR_NOPROVIDER);
    rec_t *r = s_call_wait(g_caller, "/flag/upper", "\"on\"");
    s_expect_reply(r, "\"ON\"");
    /* the check starts failing: withdrawn within a check period and a ping */
    unlink(flag);
    run_until(!s_knows(g_caller, "/flag/upper", "prov"), AGENT_EXEC_CHECK_INTERVAL_MS + 3000);
    cr_expect_not(s_knows(g_caller, "/flag/upper", "prov"), "still offered");
    s_end();
}

Test(exec, exit_75_rejects_and_the_call_moves_on)
{
    mesh_peer_t *p2 = s_peer("prov2");
    s_exec(g_prov, &(agent_config_t){.name = "python", .path = PYTHON_DIR});
    s_exec(p2, &(agent_config_t){.name = "python", .path = PYTHON_DIR});
    s_wait_known("/python/wordcount");
    run_until(s_knows(g_caller, "/python/wordcount", "prov2"), DISCOVERY_MS);
    cr_assert(s_knows(g_caller, "/python/wordcount", "prov2"));
    /* picky rejects every first attempt: the second candidate answers */
    rec_t *r = s_call_wait(g_caller, "/python/picky", "{}");
    s_expect_reply(r, "{\"attempt\": 2, \"caller\": \"caller\"}");
    /* reject always rejects: every candidate did */
    r = s_call_wait(g_caller, "/python/reject", "{}");
    cr_expect_eq(r->status, MESH_ERR_REJECTED, "status %s", mesh_err_name(r->status));
    s_end();
}

Test(exec, drain_lets_running_work_finish)
{
    agent_t **a =
        s_exec(g_prov, &(agent_config_t){.name = "shell", .path = SHELL_DIR, .workers = 1});
    s_wait_known("/shell/slow");
    rec_t *r1 = s_call(g_caller, "/shell/slow", "0.5", NULL);
    rec_t *r2 = s_call(g_caller, "/shell/slow", "0.2", NULL); /* queued behind */
    run_until(agent_inflight(*a) == 2, 2000);
    cr_assert_eq(agent_inflight(*a), 2);
    agent_t *kept = *a;
    agent_destroy(a, true);
    cr_assert_eq(*a, kept, "a drained agent stays alive until destroyed");
    /* no longer offered, but what was accepted runs to its end */
    run_until(!s_knows(g_caller, "/shell/slow", "prov"), 2000);
    cr_expect_not(s_knows(g_caller, "/shell/slow", "prov"));
    s_wait(r1);
    s_wait(r2);
    s_expect_reply(r1, "{\"slept\": 0.5}");
    s_expect_reply(r2, "{\"slept\": 0.2}");
    cr_expect_eq(agent_inflight(*a), 0);
    agent_destroy(a, false);
    cr_expect_null(*a);
    s_end();
}

Test(exec, destroy_ends_work_in_flight)
{
    agent_t **a =
        s_exec(g_prov, &(agent_config_t){.name = "shell", .path = SHELL_DIR, .workers = 1});
    s_wait_known("/shell/hang");
    s_wait_known("/shell/upper");
    rec_t *r1 = s_call(g_caller, "/shell/hang", "{}", NULL);
    rec_t *r2 = s_call(g_caller, "/shell/upper", "\"queued\"", NULL);
    run_until(agent_inflight(*a) == 2, 2000);
    cr_assert_eq(agent_inflight(*a), 2);
    agent_destroy(a, false);
    cr_expect_null(*a);
    s_wait(r1);
    s_wait(r2);
    s_expect_error(r1, "agent unloaded");
    s_expect_error(r2, "agent unloaded");
    run_until(!s_knows(g_caller, "/shell/hang", "prov"), 2000);
    cr_expect_not(s_knows(g_caller, "/shell/hang", "prov"));
    s_end();
}

/*  Methods written by the test into a directory of its own. */
typedef struct {
    const char *name;
    const char *text;
    mode_t mode;
} script_t;

static const script_t s_scripts[] = {
    {"flood", "#!/bin/sh\nhead -c 17000000 /dev/zero | tr '\\0' ' '\n", 0755},
    {"leaves_a_child", "#!/bin/sh\nsleep 30 &\necho '\"done\"'\n", 0755},
    {"deaf", "#!/bin/sh\necho '\"did not read\"'\n", 0755},
    {"exit5", "#!/bin/sh\nexit 5\n", 0755},
    {"signal", "#!/bin/sh\nkill -TERM $$\n", 0755},
    {"silent", "#!/bin/sh\ncat >/dev/null\n", 0755},
    {"noshebang", "echo '1'\n", 0755},
    {".hidden", "#!/bin/sh\necho 1\n", 0755},
    {"bad name", "#!/bin/sh\necho 1\n", 0755},
    {"not-executable", "#!/bin/sh\necho 1\n", 0644},
};
#define NSCRIPTS (sizeof s_scripts / sizeof s_scripts[0])

static void s_scripts_write(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/mesh-test-exec-XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
    char path[256];
    for (size_t i = 0; i < NSCRIPTS; i++) {
        snprintf(path, sizeof path, "%s/%s", g_dir, s_scripts[i].name);
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f);
        fputs(s_scripts[i].text, f);
        fclose(f);
        chmod(path, s_scripts[i].mode);
    }
    snprintf(path, sizeof path, "%s/subdir", g_dir);
    mkdir(path, 0755);
}

static void s_scripts_remove(void)
{
    if (!g_dir[0]) {
        return;
    }
    char path[256];
    for (size_t i = 0; i < NSCRIPTS; i++) {
        snprintf(path, sizeof path, "%s/%s", g_dir, s_scripts[i].name);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/subdir", g_dir);
    rmdir(path);
    rmdir(g_dir);
    g_dir[0] = '\0';
}

Test(exec, every_way_a_method_can_end)
{
    s_scripts_write();
    agent_t **a = s_exec(g_prov, &(agent_config_t){.name = "t", .path = g_dir, .workers = 1});
    s_wait_known("/t/silent"); /* the last one offered: all are known */
    /* only regular executable files with plain names are methods */
    cr_expect_not(s_knows(g_caller, "/t/.hidden", "prov"));
    cr_expect_not(s_knows(g_caller, "/t/bad name", "prov"));
    cr_expect_not(s_knows(g_caller, "/t/not-executable", "prov"));
    cr_expect_not(s_knows(g_caller, "/t/subdir", "prov"));

    rec_t *r = s_call_wait(g_caller, "/t/flood", NULL);
    s_expect_error(r, "output of flood exceeds 16 MiB");
    /* a background process keeping stdout open does not hold the reply */
    int64_t t0 = s_ms();
    r = s_call_wait(g_caller, "/t/leaves_a_child", NULL);
    s_expect_reply(r, "\"done\"");
    cr_expect_lt(s_ms() - t0, 5000);
    /* a method that does not read a big payload */
    static char big[300000];
    memset(big, 'x', sizeof big - 1);
    big[0] = big[sizeof big - 2] = '"';
    r = s_call_wait(g_caller, "/t/deaf", big);
    s_expect_reply(r, "\"did not read\"");
    r = s_call_wait(g_caller, "/t/exit5", NULL);
    s_expect_error(r, "exit status 5");
    r = s_call_wait(g_caller, "/t/signal", NULL);
    s_expect_error(r, "killed by signal 15");
    /* no output at all: null */
    r = s_call_wait(g_caller, "/t/silent", "[1]");
    s_expect_reply(r, "null");
    r = s_call_wait(g_caller, "/t/noshebang", NULL);
    s_expect_error(r, "cannot run noshebang: Exec format error");
    /* and through all that the single worker slot was always given back */
    r = s_call_wait(g_caller, "/t/silent", NULL);
    s_expect_reply(r, "null");
    agent_stats_t st;
    agent_stats(*a, &st);
    cr_expect_eq(st.requests, 8);
    cr_expect_eq(st.errors, 4);
    cr_expect_eq(st.crashes, 2);
    cr_expect_eq(agent_inflight(*a), 0);
    s_end();
}

Test(exec, bad_configurations_are_refused)
{
    agent_config_t c = s_cfg("shell", "/nonexistent/mesh-agents");
    cr_expect_null(agent_exec_new(g_prov, g_loop, &c));
    c = s_cfg("shell", SHELL_DIR);
    c.filter = "(unclosed";
    cr_expect_null(agent_exec_new(g_prov, g_loop, &c));
    c.filter = "^nothing-matches$";
    cr_expect_null(agent_exec_new(g_prov, g_loop, &c));
    c = s_cfg("a/b", SHELL_DIR);
    cr_expect_null(agent_exec_new(g_prov, g_loop, &c));
    c = s_cfg("", SHELL_DIR);
    cr_expect_null(agent_exec_new(g_prov, g_loop, &c));
    c = s_cfg("shell", SHELL_DIR);
    c.workers = -1;
    cr_expect_null(agent_exec_new(g_prov, g_loop, &c));
    /* ev_child needs the default loop */
    struct ev_loop *other = ev_loop_new(0);
    c = s_cfg("shell", SHELL_DIR);
    cr_expect_null(agent_exec_new(g_prov, other, &c));
    ev_loop_destroy(other);
    /* a name already offered */
    s_exec(g_prov, &c);
    cr_expect_null(agent_exec_new(g_prov, g_loop, &c));
    s_end();
}

/* ------------------------------------------------------------------------ */
/* plugin agents */

Test(exec, a_plugin_offers_services_through_the_peer_api)
{
    agent_config_t c = {.name = "hello", .kind = "plugin", .path = PLUGIN_HELLO, .config = "hi"};
    agent_t *p = agent_plugin_new(g_prov, g_loop, &c);
    cr_assert_not_null(p);
    agent_t **a = s_slot(p);
    s_wait_known("/hello/release");
    rec_t *r = s_call_wait(g_caller, "/hello/greet", NULL);
    s_expect_reply(r, "\"hi, caller\"");
    r = s_call_wait(g_caller, "/hello/echo", "{\"x\": [1, 2]}");
    s_expect_reply(r, "{\"x\": [1, 2]}");
    r = s_call_wait(g_caller, "/hello/count", NULL);
    s_expect_reply(r, "3");

    /* a held request counts as in flight; the drain unexposes but waits */
    rec_t *held = s_call(g_caller, "/hello/hold", NULL, NULL);
    run_until(agent_inflight(*a) == 1, 2000);
    cr_assert_eq(agent_inflight(*a), 1);
    agent_destroy(a, true);
    cr_assert_not_null(*a);
    run_until(!s_knows(g_caller, "/hello/greet", "prov"), 2000);
    cr_expect_not(s_knows(g_caller, "/hello/greet", "prov"));
    cr_expect_eq(held->n, 0);
    cr_expect_eq(agent_inflight(*a), 1);
    /* the grace period is over: fini fails what it holds */
    agent_destroy(a, false);
    s_wait(held);
    s_expect_error(held, "agent unloaded");

    /* and it loads again (SIGHUP) */
    p = agent_plugin_new(g_prov, g_loop, &c);
    cr_assert_not_null(p);
    s_slot(p);
    s_wait_known("/hello/release");
    r = s_call_wait(g_caller, "/hello/count", NULL);
    s_expect_reply(r, "1");
    s_end();
}

Test(exec, what_is_not_a_plugin_is_refused)
{
    agent_config_t c = {.name = "x", .kind = "plugin", .path = "/nonexistent/x.so"};
    cr_expect_null(agent_plugin_new(g_prov, g_loop, &c));
    c.path = SHELL_DIR "/upper"; /* not a shared object */
    cr_expect_null(agent_plugin_new(g_prov, g_loop, &c));
    c.path = NULL;
    cr_expect_null(agent_plugin_new(g_prov, g_loop, &c));
    s_end();
}
