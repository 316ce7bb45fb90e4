/*  test_taskd.c: the task service, several peers in one process (ring 2).

    Each test gets its own beacon port and realm; its peers share one libev
    loop driven by run_until. Every peer runs a task service and offers
    /work, a handler that counts its executions per payload (so a task that
    ran twice shows), and replies ok or fails as the test asks. Timers are
    short (replica offset 600 ms, backoff 100 ms) so the tests stay fast;
    every timing wait is generous and checked by an outcome. */
#include <criterion/criterion.h>

#include "testutil.h"

#include <mesh/mesh.h>

#include "tasks.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define S_LEAKS() __lsan_do_recoverable_leak_check()
#else
#define S_LEAKS() 0
#endif

#define NPEERS       3
#define DISCOVERY_MS 8000
#define OFFSET_MS    600

static struct ev_loop *g_loop;
static struct ev_loop *g_loop_b; /* peers 1.. run on it when set (quorum test) */
static bool g_frozen;            /* loop b does not run: its peers fall silent */
static ev_timer g_tick;
static uint16_t g_port;
static char g_realm[64];
static mesh_peer_t *g_peers[NPEERS];
static mesh_taskd_t *g_taskd[NPEERS];

/*  What the handlers saw. */
static int g_runs;        /* executions of /work, any payload */
static int g_runs_of[16]; /* per payload "0".."15" */
static unsigned g_attempts_seen[8]; /* mesh_request_attempt() of each run, in order */
static bool g_fail;       /* /work replies an error */
static bool g_hold_first; /* /work holds its first request in g_held, unanswered */
static mesh_request_t *g_held;
static int64_t g_run_at[32];       /* wall-clock ms of each run, in order */
static const char *g_data_dir;     /* the task services' journal, or NULL */
static const mesh_task_ratelimit_t *g_limits; /* the task services' rate limits */
static size_t g_nlimits;

/*  What the callbacks got. */
static int g_submit_status[8];
static char g_submit_id[8][MESH_TASK_ID_HEX + 1];
static int g_submits;
static int g_status_rc;
static char g_status_state[32];
static uint32_t g_status_attempt;
static bool g_status_done;
static size_t g_list_n;
static bool g_list_done;

static int64_t s_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

static bool s_turn(int64_t end)
{
    if (s_ms() >= end) {
        return false;
    }
    if (!g_loop_b) {
        ev_run(g_loop, EVRUN_ONCE);
        return true;
    }
    ev_run(g_loop, EVRUN_NOWAIT);
    if (!g_frozen) {
        ev_run(g_loop_b, EVRUN_NOWAIT);
    }
    usleep(500);
    return true;
}

#define run_until(cond, timeout_ms)                                                                \
    for (int64_t end_ = s_ms() + (timeout_ms); !(cond) && s_turn(end_);)
#define run_for(ms) run_until(false, ms)

static void s_work(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    (void)peer;
    (void)arg;
    if (g_runs < 8) {
        g_attempts_seen[g_runs] = mesh_request_attempt(req);
    }
    if (g_runs < 32) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        g_run_at[g_runs] = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    g_runs++;
    char buf[8] = {0};
    size_t n = mesh_request_size(req);
    if (n > 0 && n < sizeof buf) {
        memcpy(buf, mesh_request_data(req), n);
        int i = atoi(buf);
        if (i >= 0 && i < 16) {
            g_runs_of[i]++;
        }
    }
    if (g_hold_first && g_runs == 1) {
        g_held = req; /* answered by the test, or freed with its peer */
        return;
    }
    if (g_fail) {
        mesh_request_error(req, "boom");
    } else {
        mesh_request_reply(req, "ok", 2);
    }
}

static void s_init(void)
{
    static unsigned counter;
    memset(g_peers, 0, sizeof g_peers);
    memset(g_taskd, 0, sizeof g_taskd);
    g_runs = 0;
    memset(g_runs_of, 0, sizeof g_runs_of);
    memset(g_attempts_seen, 0, sizeof g_attempts_seen);
    g_fail = false;
    g_hold_first = false;
    g_held = NULL;
    g_data_dir = NULL;
    g_loop_b = NULL;
    g_frozen = false;
    g_limits = NULL;
    g_nlimits = 0;
    g_submits = 0;
    g_status_done = false;
    g_list_done = false;
    g_loop = ev_loop_new(0);
    cr_assert_not_null(g_loop);
    ev_timer_init(&g_tick, s_on_tick, 0.005, 0.005);
    ev_timer_start(g_loop, &g_tick);
    g_port = test_free_udp_port();
    snprintf(g_realm, sizeof g_realm, "taskd-%d-%u-%u", (int)getpid(), counter++, g_port);
}

static void s_teardown(void)
{
    if (!g_loop) {
        return;
    }
    for (int i = 0; i < NPEERS; i++) {
        mesh_taskd_destroy(&g_taskd[i]);
    }
    for (int i = 0; i < NPEERS; i++) {
        mesh_peer_destroy(&g_peers[i]);
    }
    ev_timer_stop(g_loop, &g_tick);
    ev_loop_destroy(g_loop);
    g_loop = NULL;
    if (g_loop_b) {
        ev_loop_destroy(g_loop_b);
        g_loop_b = NULL;
    }
}

static void s_end(void)
{
    s_teardown();
    cr_assert_eq(S_LEAKS(), 0, "memory leaked: see LeakSanitizer's report");
}

TestSuite(taskd, .init = s_init, .fini = s_teardown, .timeout = 60);

/*  n peers with a task service each, all offering /work, once every one
    sees the whole ring and every task service. */
static void s_cluster(int n)
{
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "p%d", i);
        mesh_config_t c;
        mesh_config_init(&c);
        c.name = name;
        c.realm = g_realm;
        c.iface = "lo";
        c.beacon_port = g_port;
        c.beacon_interval_ms = 100;
        c.ping_interval_ms = 150;
        c.ping_timeout_ms = 1500;
        g_peers[i] = mesh_peer_new(&c);
        cr_assert_not_null(g_peers[i]);
        cr_assert_eq(mesh_peer_expose(g_peers[i], "/work", s_work, NULL, NULL), 0);
        struct ev_loop *loop = g_loop_b && i > 0 ? g_loop_b : g_loop;
        cr_assert_eq(mesh_peer_attach(g_peers[i], loop), 0);
        mesh_taskd_config_t tc;
        mesh_taskd_config_init(&tc);
        tc.loop = loop;
        tc.replica_offset_ms = OFFSET_MS;
        tc.backoff_base_ms = 100;
        tc.tick_ms = 50;
        tc.startup_grace_ms = 300;
        tc.data_dir = g_data_dir;
        tc.ratelimits = g_limits;
        tc.nratelimits = g_nlimits;
        g_taskd[i] = mesh_taskd_new(g_peers[i], &tc);
        cr_assert_not_null(g_taskd[i]);
    }
    bool ok = false;
    run_until((ok = ({
                   bool all = true;
                   for (int i = 0; i < n; i++) {
                       all = all && mesh_peer_ring_members(g_peers[i], NULL, NULL) == (size_t)n &&
                             mesh_peer_ring_digest(g_peers[i]) == mesh_peer_ring_digest(g_peers[0]);
                   }
                   all;
               })),
              DISCOVERY_MS);
    cr_assert(ok, "the ring did not form");
    run_for(600); /* services announced, status pings carry the digest */
    run_until((ok = ({
                   bool all = true;
                   for (int i = 0; i < n; i++) {
                       mesh_taskd_stats_t st;
                       mesh_taskd_stats(g_taskd[i], &st);
                       all = all && st.ready && st.quorum;
                   }
                   all;
               })),
              3000);
    cr_assert(ok, "the task services are not ready");
}

static void s_on_submit(mesh_peer_t *peer, int status, const char *id, const char *error, void *arg)
{
    (void)peer;
    (void)error;
    int i = (int)(intptr_t)arg;
    g_submit_status[i] = status;
    snprintf(g_submit_id[i], sizeof g_submit_id[i], "%s", id ? id : "");
    g_submits++;
}

static const char *s_submit(int from, int slot, const char *payload, const mesh_task_opts_t *o)
{
    int before = g_submits;
    cr_assert_eq(mesh_task_submit(g_peers[from], "/work", payload, strlen(payload), o, s_on_submit,
                                  (void *)(intptr_t)slot),
                 0);
    run_until(g_submits > before, 5000);
    cr_assert_eq(g_submits, before + 1, "no submit reply");
    cr_assert_eq(g_submit_status[slot], 0, "submit: %s", mesh_err_name(g_submit_status[slot]));
    cr_assert_eq(strlen(g_submit_id[slot]), MESH_TASK_ID_HEX);
    return g_submit_id[slot];
}

static void s_on_status(mesh_peer_t *t, int status, const mesh_task_status_t *st, void *arg)
{
    (void)t;
    (void)arg;
    g_status_rc = status;
    snprintf(g_status_state, sizeof g_status_state, "%s", st ? st->state : "");
    g_status_attempt = st ? st->attempt : 0;
    g_status_done = true;
}

static const char *s_status(int from, const char *id)
{
    g_status_done = false;
    cr_assert_eq(mesh_task_status(g_peers[from], id, s_on_status, NULL), 0);
    run_until(g_status_done, 5000);
    cr_assert(g_status_done);
    return g_status_rc == 0 ? g_status_state : "notfound";
}

/*  How many live task services hold a task in state. */
static int s_holding(const char *state)
{
    int n = 0;
    for (int i = 0; i < NPEERS; i++) {
        n += g_taskd[i] ? (int)mesh_taskd_count(g_taskd[i], state) : 0;
    }
    return n;
}

/* ------------------------------------------------------------------------ */

Test(taskd, countdown_task_runs_once_and_succeeds_on_every_holder)
{
    s_cluster(NPEERS);
    mesh_task_opts_t o = {.countdown_ms = 300};
    int64_t t0 = s_ms();
    const char *id = s_submit(0, 0, "1", &o);
    run_until(s_holding(NULL) == 2, 1000);
    cr_expect_eq(s_holding(NULL), 2, "replicas 2: two holders");
    cr_expect_eq(g_runs, 0, "not before its countdown");
    run_until(g_runs == 1, 5000);
    cr_assert_eq(g_runs, 1);
    cr_expect_geq(s_ms() - t0, 250, "ran before its countdown");
    run_until(s_holding("succeeded") == 2, 3000);
    cr_expect_eq(s_holding("succeeded"), 2, "every holder ends SUCCEEDED");
    run_for(OFFSET_MS * 3); /* past the replica's offset */
    cr_expect_eq(g_runs, 1, "it ran once");
    cr_expect_str_eq(s_status(2, id), "succeeded");
    cr_expect_eq(g_status_attempt, 1);
    s_end();
}

Test(taskd, idempotency_key_returns_the_same_id_and_runs_once)
{
    s_cluster(NPEERS);
    mesh_task_opts_t o = {.countdown_ms = 200, .idempotency_key = "order-42"};
    char id1[MESH_TASK_ID_HEX + 1];
    snprintf(id1, sizeof id1, "%s", s_submit(0, 0, "2", &o));
    const char *id2 = s_submit(1, 1, "2", &o);
    cr_expect_str_eq(id1, id2);
    const char *id3 = s_submit(2, 2, "2", &o);
    cr_expect_str_eq(id1, id3);
    run_until(g_runs == 1, 5000);
    run_for(OFFSET_MS * 3);
    cr_expect_eq(g_runs_of[2], 1, "ran %d times", g_runs_of[2]);
    /* after it ran, the key still returns the task */
    cr_expect_str_eq(s_submit(1, 3, "2", &o), id1);
    run_for(500);
    cr_expect_eq(g_runs_of[2], 1);
    s_end();
}

Test(taskd, failures_retry_with_backoff_then_fail)
{
    s_cluster(NPEERS);
    g_fail = true;
    mesh_task_opts_t o = {.max_attempts = 3};
    const char *id = s_submit(1, 0, "3", &o);
    run_until(s_holding("failed") == 2, 8000);
    cr_expect_eq(s_holding("failed"), 2);
    cr_expect_eq(g_runs_of[3], 3, "three attempts, ran %d", g_runs_of[3]);
    run_for(OFFSET_MS * 3);
    cr_expect_eq(g_runs_of[3], 3);
    cr_expect_str_eq(s_status(0, id), "failed");
    cr_expect_eq(g_status_attempt, 3);
    /* each run told the handler its task attempt number */
    cr_expect_eq(g_attempts_seen[0], 1);
    cr_expect_eq(g_attempts_seen[1], 2);
    cr_expect_eq(g_attempts_seen[2], 3);
    s_end();
}

Test(taskd, cancel_before_due_never_runs)
{
    s_cluster(NPEERS);
    mesh_task_opts_t o = {.countdown_ms = 1500};
    char id[MESH_TASK_ID_HEX + 1];
    snprintf(id, sizeof id, "%s", s_submit(0, 0, "4", &o));
    g_status_done = false;
    cr_assert_eq(mesh_task_cancel(g_peers[2], id, s_on_status, NULL), 0);
    run_until(g_status_done, 5000);
    cr_assert_eq(g_status_rc, 0);
    cr_expect_str_eq(g_status_state, "cancelled");
    run_for(1500 + OFFSET_MS * 2);
    cr_expect_eq(g_runs_of[4], 0);
    cr_expect_eq(s_holding("cancelled"), 2);
    cr_expect_str_eq(s_status(1, id), "cancelled");
    s_end();
}

typedef struct {
    char id[MESH_TASK_ID_HEX + 1];
} s_owner_t;

static void s_owner_cb(const char *id, const char *name, size_t rank, void *arg)
{
    (void)name;
    if (rank == 0) {
        snprintf(((s_owner_t *)arg)->id, MESH_TASK_ID_HEX + 1, "%s", id);
    }
}

static int s_owner_of(const char *id)
{
    uint8_t raw[16];
    cr_assert_eq(mesh__task_id_from_hex(id, raw), 0);
    s_owner_t own = {{0}};
    cr_assert_eq(mesh_peer_ring_owners(g_peers[0], raw, 16, 1, s_owner_cb, &own), 0);
    for (int i = 0; i < NPEERS; i++) {
        if (g_peers[i] && strcmp(mesh_peer_id(g_peers[i]), own.id) == 0) {
            return i;
        }
    }
    cr_assert_fail("no owner");
    return -1;
}

Test(taskd, owner_destroyed_mid_countdown_a_replica_runs_it_once)
{
    s_cluster(NPEERS);
    mesh_task_opts_t o = {.countdown_ms = 1000};
    char id[MESH_TASK_ID_HEX + 1];
    snprintf(id, sizeof id, "%s", s_submit(0, 0, "5", &o));
    uint8_t raw[16];
    cr_assert_eq(mesh__task_id_from_hex(id, raw), 0);
    s_owner_t own = {{0}};
    cr_assert_eq(mesh_peer_ring_owners(g_peers[0], raw, 16, 1, s_owner_cb, &own), 0);
    int owner = -1;
    for (int i = 0; i < NPEERS; i++) {
        if (strcmp(mesh_peer_id(g_peers[i]), own.id) == 0) {
            owner = i;
        }
    }
    cr_assert_geq(owner, 0);
    run_for(200);
    mesh_taskd_destroy(&g_taskd[owner]);
    mesh_peer_destroy(&g_peers[owner]);
    run_until(g_runs_of[5] == 1, 1000 + OFFSET_MS * 4 + 3000);
    cr_expect_eq(g_runs_of[5], 1, "the task ran %d times", g_runs_of[5]);
    run_for(OFFSET_MS * 3);
    cr_expect_eq(g_runs_of[5], 1, "it ran once");
    int other = (owner + 1) % NPEERS;
    cr_expect_str_eq(s_status(other, id), "succeeded");
    s_end();
}

/*  The owner runs a task on another peer's /work, which holds the request,
    then the owner leaves: the replica, standing by, sees its runner gone
    and takes the task over on the same provider, where "once" joins the
    run still going on instead of running the handler again. When the
    handler answers, the task ends SUCCEEDED, having run once. */
Test(taskd, runner_lost_mid_run_the_takeover_joins_the_run_on_its_provider)
{
    s_cluster(NPEERS);
    g_hold_first = true;
    mesh_task_opts_t o = {.countdown_ms = 400};
    char id[MESH_TASK_ID_HEX + 1];
    snprintf(id, sizeof id, "%s", s_submit(0, 0, "10", &o));
    int owner = s_owner_of(id);
    /* the owner offers no /work: its run goes to another peer */
    cr_assert_eq(mesh_peer_unexpose(g_peers[owner], "/work"), 0);
    run_until(g_runs_of[10] == 1 && s_holding("standby") == 1, 3000);
    cr_assert_eq(g_runs_of[10], 1);
    cr_assert_not_null(g_held);
    cr_assert_eq(s_holding("standby"), 1, "the replica stands by");
    cr_assert_eq(mesh_taskd_count(g_taskd[owner], "running"), 1, "the owner runs it");
    mesh_taskd_destroy(&g_taskd[owner]);
    mesh_peer_destroy(&g_peers[owner]);
    mesh_taskd_stats_t st = {0};
    run_until(({
                  st.takeovers = 0;
                  for (int i = 0; i < NPEERS; i++) {
                      mesh_taskd_stats_t one;
                      if (g_taskd[i]) {
                          mesh_taskd_stats(g_taskd[i], &one);
                          st.takeovers += one.takeovers;
                      }
                  }
                  st.takeovers > 0;
              }),
              3000 + OFFSET_MS * 4);
    cr_assert_gt(st.takeovers, 0, "a replica took the run over");
    run_for(OFFSET_MS * 2);
    cr_expect_eq(g_runs_of[10], 1, "the takeover joined the run: not run again");
    cr_assert_eq(mesh_request_reply(g_held, "ok", 2), 0);
    g_held = NULL;
    run_until(s_holding("succeeded") == 2, 3000);
    cr_expect_eq(s_holding("succeeded"), 2, "both holders left end SUCCEEDED");
    run_for(OFFSET_MS * 3);
    cr_expect_eq(g_runs_of[10], 1, "it ran once");
    s_end();
}

/*  The owner runs a task on itself and leaves mid-run: its provider went
    with it, so the outcome is unknown and the task runs again elsewhere,
    told its attempt number (2), and the lost run is not a failure. */
Test(taskd, runner_and_provider_lost_mid_run_it_runs_again)
{
    s_cluster(NPEERS);
    g_hold_first = true;
    mesh_task_opts_t o = {.countdown_ms = 400};
    char id[MESH_TASK_ID_HEX + 1];
    snprintf(id, sizeof id, "%s", s_submit(0, 0, "11", &o));
    int owner = s_owner_of(id);
    /* only the owner offers /work until its run started */
    for (int i = 0; i < NPEERS; i++) {
        if (i != owner) {
            cr_assert_eq(mesh_peer_unexpose(g_peers[i], "/work"), 0);
        }
    }
    run_until(g_runs_of[11] == 1 && s_holding("standby") == 1, 3000);
    cr_assert_eq(g_runs_of[11], 1);
    for (int i = 0; i < NPEERS; i++) {
        if (i != owner) {
            cr_assert_eq(mesh_peer_expose(g_peers[i], "/work", s_work, NULL, NULL), 0);
        }
    }
    g_held = NULL; /* freed with its peer */
    mesh_taskd_destroy(&g_taskd[owner]);
    mesh_peer_destroy(&g_peers[owner]);
    run_until(s_holding("succeeded") == 2, 4000 + OFFSET_MS * 4);
    cr_expect_eq(s_holding("succeeded"), 2, "both holders left end SUCCEEDED");
    cr_expect_eq(g_runs_of[11], 2, "the lost run, then one more (%d)", g_runs_of[11]);
    cr_expect_eq(g_attempts_seen[1], 2, "the second run is told attempt 2");
    int other = (owner + 1) % NPEERS;
    cr_expect_str_eq(s_status(other, id), "succeeded");
    run_for(OFFSET_MS * 3);
    cr_expect_eq(g_runs_of[11], 2, "no third run");
    s_end();
}

Test(taskd, ttl_expires_a_task_not_started_in_time)
{
    s_cluster(NPEERS);
    mesh_task_opts_t o = {.countdown_ms = 1000, .ttl_ms = 200};
    char id[MESH_TASK_ID_HEX + 1];
    snprintf(id, sizeof id, "%s", s_submit(0, 0, "6", &o));
    run_until(s_holding("expired") == 2, 3000);
    cr_expect_eq(s_holding("expired"), 2);
    run_for(1000 + OFFSET_MS);
    cr_expect_eq(g_runs_of[6], 0);
    cr_expect_str_eq(s_status(2, id), "expired");
    s_end();
}

static void s_on_list(mesh_peer_t *t, int status, const mesh_task_status_t *tasks, size_t n,
                      void *arg)
{
    (void)t;
    (void)tasks;
    (void)arg;
    g_list_n = status == 0 ? n : 0;
    g_list_done = true;
}

Test(taskd, list_merges_every_holder)
{
    s_cluster(NPEERS);
    mesh_task_opts_t o = {.countdown_ms = 5000};
    s_submit(0, 0, "7", &o);
    s_submit(1, 1, "8", &o);
    s_submit(2, 2, "9", &o);
    cr_assert_eq(mesh_task_list(g_peers[0], "scheduled", s_on_list, NULL), 0);
    run_until(g_list_done, 5000);
    cr_expect_eq(g_list_n, 3, "three tasks, listed once each (%zu)", g_list_n);
    g_list_done = false;
    cr_assert_eq(mesh_task_list(g_peers[0], "succeeded", s_on_list, NULL), 0);
    run_until(g_list_done, 5000);
    cr_expect_eq(g_list_n, 0);
    s_end();
}

static int64_t s_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*  A node with a data dir dies without a word (a child process that exits
    without destroying anything, as SIGKILL would leave it); a new one on
    the same dir takes its tasks back from the journal: the scheduled ones
    run at their time, the finished one does not run again. */
Test(taskd, journal_brings_tasks_back_after_a_crash)
{
    char dir[] = "/tmp/mesh-taskd-journal-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    g_data_dir = dir;
    int64_t t0 = s_wall();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        ev_loop_fork(g_loop);
        s_cluster(1);
        mesh_task_opts_t now = {0};
        s_submit(0, 0, "12", &now);
        run_until(mesh_taskd_count(g_taskd[0], "succeeded") == 1, 5000);
        mesh_task_opts_t later = {.countdown_ms = 2500};
        s_submit(0, 1, "13", &later);
        s_submit(0, 2, "14", &later);
        run_for(100); /* committed at the end of the turn that changed them */
        _exit(g_runs_of[12] == 1 && mesh_taskd_count(g_taskd[0], "scheduled") == 2 ? 0 : 3);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the first life failed (%d)", status);
    s_cluster(1);
    mesh_taskd_stats_t st;
    mesh_taskd_stats(g_taskd[0], &st);
    cr_expect_eq(st.journal_loaded, 3, "three tasks back (%llu)",
                 (unsigned long long)st.journal_loaded);
    cr_expect_eq(mesh_taskd_count(g_taskd[0], "succeeded"), 1);
    run_until(g_runs_of[13] == 1 && g_runs_of[14] == 1, 6000);
    cr_expect_eq(g_runs_of[13], 1);
    cr_expect_eq(g_runs_of[14], 1);
    cr_expect_geq(g_run_at[0] - t0, 2400, "ran at its time, not at the restart");
    cr_expect_eq(g_runs_of[12], 0, "the finished task did not run again");
    run_until(mesh_taskd_count(g_taskd[0], "succeeded") == 3, 3000);
    mesh_taskd_stats(g_taskd[0], &st);
    cr_expect_gt(st.journal_commits, 0);
    cr_expect_eq(st.journal_errors, 0);
    s_teardown();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
    s_end();
}

/*  A cluster-wide limit of 4/s on /work, held by the owner of its key:
    12 tasks due at once start 4 at a time, never faster than the limit
    over the whole cluster, and none is dropped. */
Test(taskd, rate_limit_spaces_starts_across_the_cluster)
{
    static const mesh_task_ratelimit_t limits[] = {{"/work", "4/s"}};
    g_limits = limits;
    g_nlimits = 1;
    s_cluster(NPEERS);
    mesh_task_opts_t o = {0};
    char ids[12][MESH_TASK_ID_HEX + 1];
    for (int i = 0; i < 12; i++) {
        snprintf(ids[i], sizeof ids[i], "%s", s_submit(i % NPEERS, i % 8, "15", &o));
    }
    run_until(g_runs_of[15] == 12, 10000);
    cr_assert_eq(g_runs_of[15], 12, "every task ran (%d)", g_runs_of[15]);
    /* a bucket of 4 refilled at one per 250 ms: run k (from 0) cannot come
       before (k - 3) x 250 ms after the first (less some scheduling slack) */
    for (int k = 4; k < 12; k++) {
        cr_expect_geq(g_run_at[k] - g_run_at[0], (k - 3) * 250 - 60,
                      "run %d came %lld ms after the first", k,
                      (long long)(g_run_at[k] - g_run_at[0]));
    }
    run_until(s_holding("succeeded") == 24, 3000);
    cr_expect_eq(s_holding("succeeded"), 24, "every task succeeded on both holders");
    mesh_taskd_stats_t st;
    uint64_t granted = 0, waits = 0;
    for (int i = 0; i < NPEERS; i++) {
        mesh_taskd_stats(g_taskd[i], &st);
        granted += st.tokens_granted;
        waits += st.rate_waits;
    }
    cr_expect_eq(granted, 12, "one token per start (%llu)", (unsigned long long)granted);
    cr_expect_gt(waits, 0);
    s_end();
}

/*  Peer 0 is cut off: peers 1 and 2 fall silent (their loop stops), so
    peer 0 sees one member of three. It starts nothing while so (neither
    its own tasks nor the replicas of theirs, which it would otherwise take
    over); once they are back, it reconciles and every task runs once. */
Test(taskd, a_node_cut_off_from_most_of_the_cluster_starts_nothing)
{
    g_loop_b = ev_loop_new(0);
    cr_assert_not_null(g_loop_b);
    s_cluster(NPEERS);
    /* due after the cut is noticed (ping timeout 1500 ms): the detection
       window itself is the documented gap */
    mesh_task_opts_t o = {.countdown_ms = 6000};
    int64_t t0 = s_ms();
    char ids[6][MESH_TASK_ID_HEX + 1];
    int owned0 = 0;
    for (int i = 0; i < 6; i++) {
        char payload[4];
        snprintf(payload, sizeof payload, "%d", i);
        snprintf(ids[i], sizeof ids[i], "%s", s_submit(0, i, payload, &o));
        owned0 += s_owner_of(ids[i]) == 0;
    }
    g_frozen = true;
    mesh_taskd_stats_t st;
    run_until((mesh_taskd_stats(g_taskd[0], &st), !st.quorum), 4000);
    cr_assert(!st.quorum, "peer 0 still counts a quorum");
    cr_assert_lt(s_ms() - t0, 6000, "the cut was noticed after the tasks came due: too slow a run");
    run_until(false, t0 + 6000 + OFFSET_MS * 3 - s_ms()); /* every task due, every offset past */
    mesh_taskd_stats(g_taskd[0], &st);
    cr_expect_eq(st.started, 0, "peer 0 started %llu runs while cut off (it owns %d)",
                 (unsigned long long)st.started, owned0);
    cr_expect_eq(g_runs, 0);
    g_frozen = false;
    run_until(s_holding("succeeded") == 12, 8000);
    cr_expect_eq(s_holding("succeeded"), 12, "every task succeeded on both holders");
    for (int i = 0; i < 6; i++) {
        cr_expect_eq(g_runs_of[i], 1, "task %d ran %d times", i, g_runs_of[i]);
    }
    mesh_taskd_stats(g_taskd[0], &st);
    cr_expect(st.quorum && st.ready);
    s_end();
}
