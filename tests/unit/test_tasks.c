/*  test_tasks.c: the task scheduling core on a fake clock. Countdowns,
    replica offsets with stand-down and takeover, retries with backoff and
    jitter, TTL, cancel, idempotency keys and their window, retention,
    rate limits (accuracy over a minute; waiting, never dropped), records
    (round trip between queues with different clocks, garbage refused),
    100k tasks in due order, and the heap checked against a brute-force
    model under churn. */
#include "tasks.h"
#include "tokenbucket.h"

#include <mesh/mesh.h>

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T_SEED    42
#define T_PATH    "svc/work"
#define T_OFFSET  MESH_TASKS_DEFAULT_REPLICA_OFFSET_MS
#define T_BASE    1000
#define T_MAX     60000
#define T_OUT_MAX 1024
#define T_MANY    100000

/* ------------------------------------------------------------------------ */
/* helpers */

typedef struct {
    size_t added, changed, removed;
} t_events_t;

static void s_on_event(void *arg, const mesh__task_t *t, mesh__tasks_event_t ev)
{
    t_events_t *e = arg;
    cr_assert_not_null(t);
    switch (ev) {
    case MESH_TASKS_EV_ADDED:
        e->added++;
        break;
    case MESH_TASKS_EV_CHANGED:
        e->changed++;
        break;
    case MESH_TASKS_EV_REMOVED:
        e->removed++;
        break;
    }
}

/*  A queue with no jitter (exact times) unless jitter is asked for. */
static mesh__tasks_t *s_queue(uint64_t seed, unsigned jitter, t_events_t *ev)
{
    mesh__tasks_config_t cfg;
    mesh__tasks_config_default(&cfg);
    cfg.seed = seed;
    cfg.jitter_pct = jitter;
    cfg.backoff_base_ms = T_BASE;
    cfg.backoff_max_ms = T_MAX;
    if (ev) {
        cfg.on_event = s_on_event;
        cfg.event_arg = ev;
    }
    mesh__tasks_t *q = mesh__tasks_new(&cfg);
    cr_assert_not_null(q);
    return q;
}

static mesh__task_spec_t s_spec(int64_t due)
{
    mesh__task_spec_t s;
    memset(&s, 0, sizeof s);
    s.path = T_PATH;
    s.payload = "{}";
    s.size = 2;
    s.due = due;
    return s;
}

static mesh__task_t *s_add(mesh__tasks_t *q, const mesh__task_spec_t *spec, int64_t now)
{
    mesh__task_t *t = NULL;
    cr_assert_eq(mesh__tasks_add(q, spec, now, &t), MESH_TASKS_ADDED);
    cr_assert_not_null(t);
    return t;
}

/*  How many tasks due(now) hands out (all of them). */
static size_t s_due(mesh__tasks_t *q, int64_t now)
{
    mesh__task_t *out[T_OUT_MAX];
    size_t total = 0, n;
    do {
        n = mesh__tasks_due(q, now, out, T_OUT_MAX);
        total += n;
    } while (n == T_OUT_MAX);
    return total;
}

static mesh__task_info_t s_info(const mesh__task_t *t)
{
    mesh__task_info_t i;
    mesh__task_info(t, &i);
    return i;
}

/*  Copies a task from q to another queue as a replica would get it. */
static mesh__task_t *s_copy(const mesh__task_t *t, int64_t now_from, mesh__tasks_t *to, int replica,
                            int64_t now_to)
{
    uint8_t buf[4096];
    size_t n = mesh__task_encode(t, now_from, buf, sizeof buf);
    cr_assert(n > 0 && n <= sizeof buf);
    mesh__task_t *copy = NULL;
    cr_assert_eq(mesh__tasks_import(to, buf, n, replica, now_to, &copy), MESH_TASKS_ADDED);
    return copy;
}

/* ------------------------------------------------------------------------ */
/* countdown and lifecycle */

Test(tasks, countdown_not_due_before_due_at_and_after)
{
    t_events_t ev = {0};
    mesh__tasks_t *q = s_queue(T_SEED, 0, &ev);
    int64_t now = 1000;
    mesh__task_t *t = s_add(q, &(mesh__task_spec_t){.path = T_PATH, .due = now + 5000}, now);
    cr_assert_eq(mesh__task_state(t), MESH_TASK_SCHEDULED);
    cr_assert_eq(strlen(mesh__task_id_hex(t)), MESH_TASKS_ID_HEX);
    cr_assert_eq(mesh__tasks_find_hex(q, mesh__task_id_hex(t)), t);
    cr_assert_eq(mesh__tasks_next_deadline(q, now), 6000);

    mesh__task_t *out[4];
    cr_assert_eq(mesh__tasks_due(q, 5999, out, 4), 0);
    cr_assert_eq(mesh__task_state(t), MESH_TASK_SCHEDULED);
    cr_assert_eq(mesh__tasks_due(q, 6000, out, 4), 1);
    cr_assert_eq(out[0], t);
    mesh__task_info_t i = s_info(t);
    cr_assert_eq(i.state, MESH_TASK_RUNNING);
    cr_assert_eq(i.attempt, 1);
    cr_assert_eq(i.started, 6000);
    cr_assert_eq(mesh__tasks_due(q, 100000, out, 4), 0, "a running task is not due again");
    cr_assert_eq(mesh__tasks_next_deadline(q, 6000), INT64_MAX);

    cr_assert_eq(mesh__tasks_finished(q, i.id, 1, true, "ok", 2, 6100), 0);
    i = s_info(t);
    cr_assert_eq(i.state, MESH_TASK_SUCCEEDED);
    cr_assert_eq(i.finished, 6100);
    cr_assert_eq(i.result_size, 2);
    cr_assert_eq(memcmp(i.result, "ok", 2), 0);
    cr_assert_eq(mesh__tasks_count(q, MESH_TASK_SUCCEEDED), 1);
    cr_assert_eq(mesh__tasks_finished(q, i.id, 1, true, NULL, 0, 6200), MESH_ERR_STATE);
    cr_assert_eq(ev.added, 1);
    cr_assert_eq(ev.changed, 2); /* started, succeeded */
    mesh__tasks_destroy(&q);
    cr_assert_null(q);
    mesh__tasks_destroy(&q);
}

Test(tasks, due_in_the_past_is_due_at_once)
{
    mesh__tasks_t *q = s_queue(T_SEED, 0, NULL);
    s_add(q, &(mesh__task_spec_t){.path = T_PATH, .due = 0}, 50000);
    cr_assert_eq(mesh__tasks_next_deadline(q, 50000), 0);
    cr_assert_eq(s_due(q, 50000), 1);
    mesh__tasks_destroy(&q);
}

Test(tasks, bad_specs_are_refused)
{
    mesh__tasks_t *q = s_queue(T_SEED, 0, NULL);
    char long_path[MESH_TASKS_PATH_MAX + 2];
    memset(long_path, 'p', sizeof long_path - 1);
    long_path[sizeof long_path - 1] = '\0';
    char long_key[MESH_TASKS_KEY_MAX + 2];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    mesh__task_spec_t s = s_spec(0);
    s.path = long_path;
    cr_assert_eq(mesh__tasks_add(q, &s, 0, NULL), MESH_ERR_TOOLONG);
    s = s_spec(0);
    s.idem_key = long_key;
    cr_assert_eq(mesh__tasks_add(q, &s, 0, NULL), MESH_ERR_TOOLONG);
    s = s_spec(0);
    s.size = MESH_TASKS_PAYLOAD_MAX + 1;
    cr_assert_eq(mesh__tasks_add(q, &s, 0, NULL), MESH_ERR_TOOLONG);
    s = s_spec(0);
    s.path = "";
    cr_assert_eq(mesh__tasks_add(q, &s, 0, NULL), MESH_ERR_INVAL);
    s = s_spec(0);
    s.idem_key = "";
    cr_assert_eq(mesh__tasks_add(q, &s, 0, NULL), MESH_ERR_INVAL);
    s = s_spec(0);
    s.max_attempts = MESH_TASKS_ATTEMPTS_MAX + 1;
    cr_assert_eq(mesh__tasks_add(q, &s, 0, NULL), MESH_ERR_INVAL);
    s = s_spec(0);
    s.replica = MESH_TASKS_REPLICAS_MAX;
    cr_assert_eq(mesh__tasks_add(q, &s, 0, NULL), MESH_ERR_INVAL);
    s = s_spec(MESH_TASKS_TIME_MAX_MS + 1);
    cr_assert_eq(mesh__tasks_add(q, &s, 0, NULL), MESH_ERR_INVAL);
    s = s_spec(0);
    s.ttl_ms = -1;
    cr_assert_eq(mesh__tasks_add(q, &s, 0, NULL), MESH_ERR_INVAL);
    cr_assert_eq(mesh__tasks_size(q), 0);

    /* a caller-chosen id, then the same id again */
    uint8_t id[MESH_TASKS_ID_SIZE] = {1, 2, 3};
    s = s_spec(0);
    s.id = id;
    mesh__task_t *t = s_add(q, &s, 0);
    cr_assert_eq(memcmp(mesh__task_id(t), id, sizeof id), 0);
    cr_assert_eq(mesh__tasks_add(q, &s, 0, NULL), MESH_ERR_EXISTS);
    mesh__tasks_destroy(&q);
}

Test(tasks, max_tasks_is_a_limit)
{
    mesh__tasks_config_t cfg;
    mesh__tasks_config_default(&cfg);
    cfg.max_tasks = 3;
    mesh__tasks_t *q = mesh__tasks_new(&cfg);
    cr_assert_not_null(q);
    mesh__task_spec_t s = s_spec(0);
    for (int i = 0; i < 3; i++) {
        s_add(q, &s, 0);
    }
    cr_assert_eq(mesh__tasks_add(q, &s, 0, NULL), MESH_ERR_AGAIN);
    cr_assert_eq(mesh__tasks_size(q), 3);
    mesh__tasks_destroy(&q);

    cfg.jitter_pct = MESH_TASKS_JITTER_PCT_MAX + 1;
    cr_assert_null(mesh__tasks_new(&cfg), "a config out of range is refused");
}

/* ------------------------------------------------------------------------ */
/* replicas: offsets, stand-down, takeover */

Test(tasks, replica_offsets_standdown_and_takeover)
{
    mesh__tasks_t *owner = s_queue(1, 0, NULL);
    mesh__tasks_t *r1 = s_queue(2, 0, NULL);
    mesh__tasks_t *r2 = s_queue(3, 0, NULL);
    /* the replicas' clocks are not the owner's: times travel relative */
    int64_t now_o = 1000, skew1 = 123456, skew2 = -777;
    mesh__task_t *t =
        s_add(owner, &(mesh__task_spec_t){.path = T_PATH, .due = now_o + 2000}, now_o);
    mesh__task_t *c1 = s_copy(t, now_o, r1, 1, now_o + skew1);
    mesh__task_t *c2 = s_copy(t, now_o, r2, 2, now_o + skew2);
    const uint8_t *id = mesh__task_id(t);
    cr_assert_eq(memcmp(mesh__task_id(c1), id, MESH_TASKS_ID_SIZE), 0);

    /* effective due: owner at due, k=1 at due + 5 s, k=2 at due + 10 s */
    cr_assert_eq(mesh__tasks_next_deadline(owner, now_o), 3000);
    cr_assert_eq(mesh__tasks_next_deadline(r1, 0), 3000 + T_OFFSET + skew1);
    cr_assert_eq(mesh__tasks_next_deadline(r2, 0), 3000 + 2 * T_OFFSET + skew2);
    cr_assert_eq(s_info(c2).effective_due, 3000 + 2 * T_OFFSET + skew2);
    cr_assert_eq(s_due(r1, 3000 + T_OFFSET + skew1 - 1), 0);

    /* the owner starts it and announces; the replicas stand down */
    cr_assert_eq(s_due(owner, 3000), 1);
    cr_assert_eq(mesh__tasks_standdown(r1, id, 1, 3000 + skew1), 0);
    cr_assert_eq(mesh__tasks_standdown(r2, id, 1, 3000 + skew2), 0);
    cr_assert_eq(mesh__task_state(c1), MESH_TASK_STANDBY);
    cr_assert_eq(mesh__tasks_standdown(r1, id, 1, 3001 + skew1), 0, "repeated news is harmless");
    /* long after their offsets, neither replica starts it */
    cr_assert_eq(s_due(r1, 60000 + skew1), 0);
    cr_assert_eq(s_due(r2, 60000 + skew2), 0);
    cr_assert_eq(mesh__tasks_next_deadline(r1, 60000 + skew1), INT64_MAX);
    cr_assert_eq(mesh__tasks_stats(r1)->standdowns, 1);

    /* the owner (the runner) is lost at 20 s: both replicas take over,
       each with its own offset, so r1 goes first */
    int64_t lost = 20000;
    cr_assert_eq(mesh__tasks_takeover(r1, id, lost + skew1), 0);
    cr_assert_eq(mesh__tasks_takeover(r2, id, lost + skew2), 0);
    cr_assert_eq(mesh__tasks_takeover(r2, id, lost + skew2), MESH_ERR_STATE);
    cr_assert_eq(mesh__tasks_next_deadline(r1, 0), lost + T_OFFSET + skew1);
    cr_assert_eq(mesh__tasks_next_deadline(r2, 0), lost + 2 * T_OFFSET + skew2);
    cr_assert_eq(s_due(r1, lost + T_OFFSET + skew1 - 1), 0);
    mesh__task_t *out[2];
    cr_assert_eq(mesh__tasks_due(r1, lost + T_OFFSET + skew1, out, 2), 1);
    cr_assert_eq(mesh__task_attempt(out[0]), 2, "the handler is told this is attempt 2");
    cr_assert_eq(mesh__tasks_standdown(r2, id, 2, lost + T_OFFSET + skew2), 0);
    cr_assert_eq(s_due(r2, lost + 3 * T_OFFSET + skew2), 0);

    /* a late announcement of attempt 1 does not stand down a fresh schedule */
    cr_assert_eq(mesh__tasks_standdown(r1, id, 1, lost + skew1), MESH_ERR_STATE);

    /* the result reaches the standby: both end SUCCEEDED; the lost run
       did not use up max_attempts (1) */
    cr_assert_eq(mesh__tasks_finished(r1, id, 2, true, "r", 1, lost + 6000 + skew1), 0);
    cr_assert_eq(mesh__tasks_finished(r2, id, 2, true, "r", 1, lost + 6000 + skew2), 0);
    cr_assert_eq(mesh__task_state(c1), MESH_TASK_SUCCEEDED);
    cr_assert_eq(mesh__task_state(c2), MESH_TASK_SUCCEEDED);
    cr_assert_eq(s_info(c2).failures, 0);

    mesh__tasks_destroy(&owner);
    mesh__tasks_destroy(&r1);
    mesh__tasks_destroy(&r2);
}

Test(tasks, double_start_is_reported)
{
    mesh__tasks_t *q = s_queue(T_SEED, 0, NULL);
    mesh__task_t *t = s_add(q, &(mesh__task_spec_t){.path = T_PATH}, 0);
    cr_assert_eq(s_due(q, 0), 1);
    cr_assert_eq(mesh__tasks_standdown(q, mesh__task_id(t), 1, 1), MESH_ERR_STATE);
    cr_assert_eq(mesh__tasks_stats(q)->double_starts, 1);
    cr_assert_eq(mesh__task_state(t), MESH_TASK_RUNNING);
    uint8_t none[MESH_TASKS_ID_SIZE] = {0};
    cr_assert_eq(mesh__tasks_standdown(q, none, 1, 1), MESH_ERR_NOTFOUND);
    mesh__tasks_destroy(&q);
}

Test(tasks, set_replica_moves_the_effective_due_time)
{
    mesh__tasks_t *q = s_queue(T_SEED, 0, NULL);
    mesh__task_t *a = s_add(q, &(mesh__task_spec_t){.path = T_PATH, .due = 1000, .replica = 2}, 0);
    mesh__task_t *b = s_add(q, &(mesh__task_spec_t){.path = T_PATH, .due = 2000}, 0);
    cr_assert_eq(mesh__tasks_next_deadline(q, 0), 2000);
    /* the owner left: this holder (k = 2) becomes the owner (k = 0) */
    cr_assert_eq(mesh__tasks_set_replica(q, mesh__task_id(a), 0, 0), 0);
    cr_assert_eq(mesh__tasks_next_deadline(q, 0), 1000);
    cr_assert_eq(mesh__tasks_set_replica(q, mesh__task_id(b), 3, 0), 0);
    cr_assert_eq(s_info(b).effective_due, 2000 + 3 * T_OFFSET);
    cr_assert_eq(mesh__tasks_set_replica(q, mesh__task_id(b), MESH_TASKS_REPLICAS_MAX, 0),
                 MESH_ERR_INVAL);
    mesh__task_t *out[4];
    cr_assert_eq(mesh__tasks_due(q, 2000 + 3 * T_OFFSET - 1, out, 4), 1);
    cr_assert_eq(out[0], a);
    cr_assert_eq(mesh__tasks_due(q, 2000 + 3 * T_OFFSET, out, 4), 1);
    cr_assert_eq(out[0], b);
    mesh__tasks_destroy(&q);
}

/* ------------------------------------------------------------------------ */
/* retries */

Test(tasks, backoff_doubles_and_failed_after_the_last_attempt)
{
    mesh__tasks_t *q = s_queue(T_SEED, 0, NULL);
    mesh__task_t *t = s_add(q, &(mesh__task_spec_t){.path = T_PATH, .max_attempts = 3}, 0);
    const uint8_t *id = mesh__task_id(t);
    cr_assert_eq(s_due(q, 0), 1);
    cr_assert_eq(mesh__tasks_finished(q, id, 1, false, "boom", 4, 10), 0);
    mesh__task_info_t i = s_info(t);
    cr_assert_eq(i.state, MESH_TASK_SCHEDULED);
    cr_assert_eq(i.failures, 1);
    cr_assert_eq(i.result_size, 4, "the last error is kept");

    /* attempt 2 after base */
    cr_assert_eq(mesh__tasks_next_deadline(q, 10), 10 + T_BASE);
    cr_assert_eq(s_due(q, 10 + T_BASE - 1), 0);
    cr_assert_eq(s_due(q, 10 + T_BASE), 1);
    cr_assert_eq(mesh__task_attempt(t), 2);
    cr_assert_eq(mesh__tasks_finished(q, id, 1, false, NULL, 0, 1500), MESH_ERR_STATE,
                 "a stale attempt's outcome is ignored");
    cr_assert_eq(mesh__tasks_finished(q, id, 2, false, "again", 5, 2000), 0);

    /* attempt 3 after 2 x base */
    cr_assert_eq(s_due(q, 2000 + 2 * T_BASE - 1), 0);
    cr_assert_eq(s_due(q, 2000 + 2 * T_BASE), 1);
    cr_assert_eq(mesh__task_attempt(t), 3);
    cr_assert_eq(mesh__tasks_finished(q, id, 3, false, "last", 4, 5000), 0);

    /* max_attempts reached */
    i = s_info(t);
    cr_assert_eq(i.state, MESH_TASK_FAILED);
    cr_assert_eq(i.failures, 3);
    cr_assert_eq(i.finished, 5000);
    cr_assert_eq(memcmp(i.result, "last", 4), 0);
    cr_assert_eq(s_due(q, 1000000), 0);
    cr_assert_eq(mesh__tasks_stats(q)->retried, 2);
    cr_assert_eq(mesh__tasks_stats(q)->failed, 1);
    mesh__tasks_destroy(&q);
}

Test(tasks, backoff_is_capped_at_its_max)
{
    uint8_t id[MESH_TASKS_ID_SIZE] = {9};
    int64_t want[] = {1000, 2000, 4000, 5000, 5000};
    for (uint32_t f = 1; f <= 5; f++) {
        cr_assert_eq(mesh__tasks_backoff(id, f, 1000, 5000, 0), want[f - 1]);
    }
    cr_assert_eq(mesh__tasks_backoff(id, 90, 1000, MESH_TASKS_TIME_MAX_MS, 0),
                 MESH_TASKS_TIME_MAX_MS, "no overflow on many doublings");
}

Test(tasks, jitter_within_bounds_spread_and_reproducible)
{
    mesh__tasks_t *a = s_queue(T_SEED, 20, NULL);
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (int n = 0; n < 1000; n++) {
        mesh__task_t *t = s_add(a, &(mesh__task_spec_t){.path = T_PATH, .max_attempts = 2}, 0);
        int64_t d = mesh__tasks_backoff(mesh__task_id(t), 2, T_BASE, T_MAX, 20);
        cr_assert(d >= 1600 && d <= 2400, "2 x base +/- 20%%: %lld", (long long)d);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
        cr_assert_eq(d, mesh__tasks_backoff(mesh__task_id(t), 2, T_BASE, T_MAX, 20),
                     "the same on every holder");
        /* near the cap, jitter never exceeds it */
        cr_assert_leq(mesh__tasks_backoff(mesh__task_id(t), 20, T_BASE, T_MAX, 20), T_MAX);
    }
    cr_assert(lo < 1700 && hi > 2300, "jitter spreads over its range: %lld..%lld", (long long)lo,
              (long long)hi);

    /* through the queue: a retry lands within the jitter bounds */
    mesh__task_t *t = s_add(a, &(mesh__task_spec_t){.path = T_PATH, .max_attempts = 2}, 0);
    mesh__task_t *out[T_OUT_MAX];
    while (mesh__tasks_due(a, 0, out, T_OUT_MAX) == T_OUT_MAX) {
    }
    cr_assert_eq(mesh__tasks_finished(a, mesh__task_id(t), 1, false, NULL, 0, 100), 0);
    int64_t at = s_info(t).due;
    cr_assert(at >= 100 + 800 && at <= 100 + 1200);
    cr_assert_eq(at - 100, mesh__tasks_backoff(mesh__task_id(t), 1, T_BASE, T_MAX, 20));
    mesh__tasks_destroy(&a);
}

/* ------------------------------------------------------------------------ */
/* TTL, cancel, idempotency, retention */

Test(tasks, ttl_expires_a_task_never_started)
{
    t_events_t ev = {0};
    mesh__tasks_t *q = s_queue(T_SEED, 0, &ev);
    mesh__task_t *t =
        s_add(q, &(mesh__task_spec_t){.path = T_PATH, .due = 5000, .ttl_ms = 1000}, 0);
    cr_assert_eq(mesh__tasks_next_deadline(q, 0), 1000);
    cr_assert_eq(mesh__tasks_on_tick(q, 999), 0);
    cr_assert_eq(mesh__task_state(t), MESH_TASK_SCHEDULED);
    cr_assert_eq(mesh__tasks_on_tick(q, 1000), 1);
    cr_assert_eq(mesh__task_state(t), MESH_TASK_EXPIRED);
    cr_assert_eq(s_due(q, 5000), 0, "an expired task never runs");
    cr_assert_eq(mesh__tasks_stats(q)->expired, 1);

    /* due() finds an expired task before on_tick does: expired, not run */
    mesh__task_t *u = s_add(q, &(mesh__task_spec_t){.path = T_PATH, .due = 100, .ttl_ms = 50}, 0);
    cr_assert_eq(s_due(q, 200), 0);
    cr_assert_eq(mesh__task_state(u), MESH_TASK_EXPIRED);

    /* a started task is past its TTL's reach: its retry runs */
    mesh__task_t *v =
        s_add(q, &(mesh__task_spec_t){.path = T_PATH, .ttl_ms = 500, .max_attempts = 2}, 10000);
    cr_assert_eq(s_due(q, 10000), 1);
    cr_assert_eq(mesh__tasks_finished(q, mesh__task_id(v), 1, false, NULL, 0, 10100), 0);
    mesh__tasks_on_tick(q, 12000);
    cr_assert_eq(s_due(q, 12000), 1);
    cr_assert_eq(mesh__task_state(v), MESH_TASK_RUNNING);
    mesh__tasks_destroy(&q);
}

Test(tasks, cancel_ends_a_scheduled_task_and_it_is_never_due)
{
    mesh__tasks_t *q = s_queue(T_SEED, 0, NULL);
    mesh__task_t *t = s_add(q, &(mesh__task_spec_t){.path = T_PATH, .due = 100}, 0);
    cr_assert_eq(mesh__tasks_cancel(q, mesh__task_id(t), 50), 0);
    cr_assert_eq(mesh__task_state(t), MESH_TASK_CANCELLED);
    cr_assert_eq(s_info(t).finished, 50);
    cr_assert_eq(s_due(q, 1000000), 0);
    cr_assert_eq(mesh__tasks_cancel(q, mesh__task_id(t), 60), MESH_ERR_STATE);
    uint8_t none[MESH_TASKS_ID_SIZE] = {0};
    cr_assert_eq(mesh__tasks_cancel(q, none, 60), MESH_ERR_NOTFOUND);

    /* running: the attempt completes, no retry follows */
    mesh__task_t *r = s_add(q, &(mesh__task_spec_t){.path = T_PATH, .max_attempts = 5}, 0);
    cr_assert_eq(s_due(q, 0), 1);
    cr_assert_eq(mesh__tasks_cancel(q, mesh__task_id(r), 1), 0);
    cr_assert(s_info(r).cancel_requested);
    cr_assert_eq(mesh__task_state(r), MESH_TASK_RUNNING);
    cr_assert_eq(mesh__tasks_finished(q, mesh__task_id(r), 1, false, NULL, 0, 2), 0);
    cr_assert_eq(mesh__task_state(r), MESH_TASK_CANCELLED);
    cr_assert_eq(s_due(q, 1000000), 0);

    /* standby: a takeover after a cancel ends it */
    mesh__task_t *s = s_add(q, &(mesh__task_spec_t){.path = T_PATH}, 0);
    cr_assert_eq(mesh__tasks_standdown(q, mesh__task_id(s), 1, 0), 0);
    cr_assert_eq(mesh__tasks_cancel(q, mesh__task_id(s), 1), 0);
    cr_assert_eq(mesh__tasks_takeover(q, mesh__task_id(s), 2), 0);
    cr_assert_eq(mesh__task_state(s), MESH_TASK_CANCELLED);
    cr_assert_eq(mesh__tasks_count(q, MESH_TASK_CANCELLED), 3);
    mesh__tasks_destroy(&q);
}

Test(tasks, idempotency_key_returns_the_task_within_the_window)
{
    mesh__tasks_config_t cfg;
    mesh__tasks_config_default(&cfg);
    cfg.idem_window_ms = 10000;
    cfg.retention_ms = 60000;
    mesh__tasks_t *q = mesh__tasks_new(&cfg);
    mesh__task_spec_t s = s_spec(0);
    s.idem_key = "order-17";
    mesh__task_t *t = s_add(q, &s, 0);
    mesh__task_t *again = NULL;
    cr_assert_eq(mesh__tasks_add(q, &s, 100, &again), MESH_TASKS_EXISTING);
    cr_assert_eq(again, t);
    cr_assert_eq(mesh__tasks_size(q), 1);
    cr_assert_eq(mesh__tasks_find_key(q, "order-17"), t);
    size_t len;
    const void *pk = mesh__task_placement_key(t, &len);
    cr_assert(len == 8 && memcmp(pk, "order-17", 8) == 0, "placed by its key");

    /* it runs once, however often it is submitted */
    cr_assert_eq(s_due(q, 0), 1);
    cr_assert_eq(mesh__tasks_add(q, &s, 200, &again), MESH_TASKS_EXISTING);
    cr_assert_eq(mesh__tasks_finished(q, mesh__task_id(t), 1, true, NULL, 0, 300), 0);
    cr_assert_eq(mesh__tasks_add(q, &s, 9999, &again), MESH_TASKS_EXISTING);
    cr_assert_eq(again, t);
    cr_assert_eq(s_due(q, 9999), 0);
    cr_assert_eq(mesh__tasks_stats(q)->deduplicated, 3);

    /* after the window: a new task (the old one is still retained) */
    mesh__task_t *fresh = NULL;
    cr_assert_eq(mesh__tasks_add(q, &s, 10000, &fresh), MESH_TASKS_ADDED);
    cr_assert_neq(fresh, t);
    cr_assert_eq(mesh__tasks_find_key(q, "order-17"), fresh);
    cr_assert_eq(mesh__tasks_find(q, mesh__task_id(t)), t);
    cr_assert_eq(mesh__tasks_size(q), 2);

    /* a key whose task is not final is held past the window */
    mesh__task_spec_t late = s_spec(1000000);
    late.idem_key = "later";
    mesh__task_t *l = s_add(q, &late, 20000);
    cr_assert_eq(mesh__tasks_add(q, &late, 20000 + 50000, &again), MESH_TASKS_EXISTING);
    cr_assert_eq(again, l);
    mesh__tasks_destroy(&q);
}

Test(tasks, retention_purges_final_tasks)
{
    t_events_t ev = {0};
    mesh__tasks_config_t cfg;
    mesh__tasks_config_default(&cfg);
    cfg.retention_ms = 3600000;
    cfg.on_event = s_on_event;
    cfg.event_arg = &ev;
    mesh__tasks_t *q = mesh__tasks_new(&cfg);
    mesh__task_t *t = s_add(q, &(mesh__task_spec_t){.path = T_PATH}, 0);
    uint8_t id[MESH_TASKS_ID_SIZE];
    memcpy(id, mesh__task_id(t), sizeof id);
    cr_assert_eq(s_due(q, 0), 1);
    cr_assert_eq(mesh__tasks_finished(q, id, 1, true, "result", 6, 1000), 0);
    cr_assert_eq(mesh__tasks_next_deadline(q, 1000), 1000 + 3600000);
    cr_assert_eq(mesh__tasks_on_tick(q, 1000 + 3600000 - 1), 0);
    cr_assert_not_null(mesh__tasks_find(q, id), "kept through the retention period");
    cr_assert_eq(mesh__tasks_on_tick(q, 1000 + 3600000), 1);
    cr_assert_null(mesh__tasks_find(q, id));
    cr_assert_eq(mesh__tasks_size(q), 0);
    cr_assert_eq(ev.removed, 1);
    cr_assert_eq(mesh__tasks_stats(q)->purged, 1);
    cr_assert_eq(mesh__tasks_next_deadline(q, 0), INT64_MAX);

    /* remove: a hand-off forgets a task at once */
    t = s_add(q, &(mesh__task_spec_t){.path = T_PATH, .due = 5}, 0);
    memcpy(id, mesh__task_id(t), sizeof id);
    cr_assert_eq(mesh__tasks_remove(q, id), 0);
    cr_assert_eq(mesh__tasks_remove(q, id), MESH_ERR_NOTFOUND);
    cr_assert_eq(s_due(q, 10), 0);
    cr_assert_eq(ev.removed, 2);
    mesh__tasks_destroy(&q);
}

Test(tasks, list_and_count_by_state)
{
    mesh__tasks_t *q = s_queue(T_SEED, 0, NULL);
    for (int i = 0; i < 10; i++) {
        s_add(q, &(mesh__task_spec_t){.path = T_PATH, .due = i < 4 ? 0 : 1000}, 0);
    }
    cr_assert_eq(s_due(q, 0), 4);
    mesh__task_t *out[16];
    cr_assert_eq(mesh__tasks_list(q, MESH_TASK_RUNNING, out, 16), 4);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(mesh__task_state(out[i]), MESH_TASK_RUNNING);
    }
    cr_assert_eq(mesh__tasks_list(q, MESH_TASK_SCHEDULED, out, 2), 6, "counts beyond cap");
    cr_assert_eq(mesh__tasks_list(q, -1, out, 16), 10);
    cr_assert_eq(mesh__tasks_count(q, MESH_TASK_SCHEDULED), 6);
    size_t pos = 0, n = 0;
    while (mesh__tasks_next(q, &pos)) {
        n++;
    }
    cr_assert_eq(n, 10);
    cr_assert_eq(mesh__task_state_from_name("standby"), MESH_TASK_STANDBY);
    cr_assert_str_eq(mesh__task_state_name(MESH_TASK_EXPIRED), "expired");
    cr_assert_eq(mesh__task_state_from_name("bogus"), -1);
    mesh__tasks_destroy(&q);
}

/* ------------------------------------------------------------------------ */
/* rate limits */

Test(ratelimit, parse_and_format)
{
    mesh__ratelimit_t rl;
    cr_assert_eq(mesh__ratelimit_parse("10/s", &rl), 0);
    cr_assert(rl.count == 10 && rl.period_ms == 1000);
    cr_assert_eq(mesh__ratelimit_parse("600/m", &rl), 0);
    cr_assert(rl.count == 600 && rl.period_ms == 60000);
    cr_assert_eq(mesh__ratelimit_parse("1/h", &rl), 0);
    cr_assert(rl.count == 1 && rl.period_ms == 3600000);
    char buf[MESH_RATELIMIT_TEXT_MAX];
    cr_assert_str_eq(mesh__ratelimit_format(&rl, buf, sizeof buf), "1/h");
    const char *bad[] = {"",
                         "/s",
                         "10",
                         "10/",
                         "10/d",
                         "0/s",
                         "-1/s",
                         "010/s",
                         "10/ss",
                         " 10/s",
                         "10 /s",
                         "1000001/s",
                         "99999999999999999999/s",
                         "10/S"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rl.count = 7;
        cr_assert_eq(mesh__ratelimit_parse(bad[i], &rl), MESH_ERR_INVAL, "\"%s\"", bad[i]);
        cr_assert_eq(rl.count, 7, "untouched on error");
    }
    cr_assert_eq(mesh__ratelimit_parse("1000000/s", &rl), 0);
}

Test(ratelimit, bucket_refills_exactly)
{
    mesh__ratelimit_t rl = {3, 1000};
    mesh__tokenbucket_t tb;
    mesh__tokenbucket_init(&tb, &rl, 0);
    cr_assert_eq(mesh__tokenbucket_available(&tb, 0), 3);
    for (int i = 0; i < 3; i++) {
        cr_assert(mesh__tokenbucket_take(&tb, 0));
    }
    cr_assert_not(mesh__tokenbucket_take(&tb, 0));
    cr_assert_eq(mesh__tokenbucket_next(&tb), 334); /* ceil(1000 / 3) */
    cr_assert_not(mesh__tokenbucket_take(&tb, 333));
    cr_assert(mesh__tokenbucket_take(&tb, 334));
    /* 3/s for an hour of 1 ms polls: 3 x 3600 (+ the 3 of the start) exactly */
    mesh__tokenbucket_init(&tb, &rl, 0);
    long taken = 0;
    for (int64_t now = 0; now <= 3600000; now++) {
        taken += mesh__tokenbucket_take(&tb, now);
    }
    cr_assert_eq(taken, 3 + 3 * 3600);
    /* a long idle time refills to capacity only */
    cr_assert_eq(mesh__tokenbucket_available(&tb, INT64_MAX / 2), 3);
}

/*  Drives q by its next deadline (as the peer's timer would) up to `until`,
    returning how many tasks started. */
static size_t s_drive(mesh__tasks_t *q, int64_t *now, int64_t until, const char *path)
{
    mesh__task_t *out[T_OUT_MAX];
    size_t started = 0;
    for (;;) {
        int64_t d = mesh__tasks_next_deadline(q, *now);
        if (d > until) {
            break;
        }
        if (d > *now) {
            *now = d;
        }
        mesh__tasks_on_tick(q, *now);
        size_t n = mesh__tasks_due(q, *now, out, T_OUT_MAX);
        for (size_t i = 0; i < n; i++) {
            if (!path || strcmp(mesh__task_path(out[i]), path) == 0) {
                started++;
            }
            cr_assert_eq(mesh__tasks_finished(q, mesh__task_id(out[i]), mesh__task_attempt(out[i]),
                                              true, NULL, 0, *now),
                         0);
        }
        cr_assert(n > 0 || mesh__tasks_next_deadline(q, *now) > *now,
                  "a deadline that has come yields work");
    }
    *now = until;
    return started;
}

Test(ratelimit, ten_per_second_over_a_minute_within_ten_percent)
{
    mesh__tasks_t *q = s_queue(T_SEED, 0, NULL);
    mesh__ratelimit_t rl;
    cr_assert_eq(mesh__ratelimit_parse("10/s", &rl), 0);
    cr_assert_eq(mesh__tasks_set_ratelimit(q, "svc/limited", &rl, 0), 0);
    for (int i = 0; i < 1000; i++) {
        s_add(q, &(mesh__task_spec_t){.path = "svc/limited"}, 0);
    }
    /* an unlimited path is not held up behind the limited one */
    for (int i = 0; i < 50; i++) {
        s_add(q, &(mesh__task_spec_t){.path = "svc/free", .due = 30000}, 0);
    }
    int64_t now = 0;
    size_t started = s_drive(q, &now, 60000, "svc/limited");
    cr_assert(started >= 540 && started <= 660, "10/s over 60 s: %zu (600 +/- 60)", started);
    cr_assert_eq(mesh__tasks_count(q, MESH_TASK_SUCCEEDED), started + 50,
                 "the free path's 50 ran on time");
    /* the rest waited: still scheduled, none dropped, none expired */
    cr_assert_eq(mesh__tasks_count(q, MESH_TASK_SCHEDULED), 1000 - started);
    mesh__task_t *waiting[1];
    cr_assert_eq(mesh__tasks_list(q, MESH_TASK_SCHEDULED, waiting, 1), 1000 - started);
    cr_assert(s_info(waiting[0]).waiting);
    cr_assert_gt(mesh__tasks_stats(q)->rate_waits, 0);
    started += s_drive(q, &now, 200000, "svc/limited");
    cr_assert_eq(started, 1000);
    cr_assert_eq(mesh__tasks_count(q, MESH_TASK_SUCCEEDED), 1050);
    cr_assert_eq(mesh__tasks_stats(q)->expired, 0);
    mesh__tasks_destroy(&q);
}

Test(ratelimit, per_minute_with_coarse_ticks)
{
    /* 600/m polled every 7 ms rather than at deadlines */
    mesh__tasks_t *q = s_queue(T_SEED, 0, NULL);
    mesh__ratelimit_t rl;
    cr_assert_eq(mesh__ratelimit_parse("600/m", &rl), 0);
    cr_assert_eq(mesh__tasks_set_ratelimit(q, T_PATH, &rl, 0), 0);
    for (int i = 0; i < 5000; i++) {
        s_add(q, &(mesh__task_spec_t){.path = T_PATH, .due = i}, 0);
    }
    size_t started = 0;
    for (int64_t now = 0; now <= 120000; now += 7) {
        started += s_due(q, now);
    }
    /* full bucket of 600, then 10/s for 120 s */
    cr_assert(started >= 0.9 * 1800 && started <= 1.1 * 1800, "%zu", started);
    mesh__tasks_destroy(&q);
}

Test(ratelimit, waiting_tasks_expire_cancel_and_are_released)
{
    mesh__tasks_t *q = s_queue(T_SEED, 0, NULL);
    mesh__ratelimit_t rl = {1, 1000};
    cr_assert_eq(mesh__tasks_set_ratelimit(q, T_PATH, &rl, 0), 0);
    mesh__task_t *a = s_add(q, &(mesh__task_spec_t){.path = T_PATH}, 0);
    mesh__task_t *b = s_add(q, &(mesh__task_spec_t){.path = T_PATH, .ttl_ms = 500}, 0);
    mesh__task_t *c = s_add(q, &(mesh__task_spec_t){.path = T_PATH}, 0);
    mesh__task_t *d = s_add(q, &(mesh__task_spec_t){.path = T_PATH}, 0);
    mesh__task_t *out[8];
    cr_assert_eq(mesh__tasks_due(q, 0, out, 8), 1);
    cr_assert_eq(out[0], a);
    cr_assert(s_info(b).waiting && s_info(c).waiting && s_info(d).waiting);
    cr_assert_eq(mesh__tasks_next_deadline(q, 0), 500, "b's TTL");
    cr_assert_eq(mesh__tasks_on_tick(q, 500), 1);
    cr_assert_eq(mesh__task_state(b), MESH_TASK_EXPIRED);
    cr_assert_eq(mesh__tasks_cancel(q, mesh__task_id(c), 600), 0);
    cr_assert_eq(mesh__tasks_next_deadline(q, 600), 1000, "the next token");
    cr_assert_eq(mesh__tasks_due(q, 999, out, 8), 0);
    cr_assert_eq(mesh__tasks_due(q, 1000, out, 8), 1);
    cr_assert_eq(out[0], d, "oldest waiting first; expired and cancelled skipped");

    /* removing the limit releases every waiting task at once */
    for (int i = 0; i < 5; i++) {
        s_add(q, &(mesh__task_spec_t){.path = T_PATH}, 1000);
    }
    cr_assert_eq(mesh__tasks_due(q, 1000, out, 8), 0);
    cr_assert_eq(mesh__tasks_set_ratelimit(q, T_PATH, NULL, 1000), 0);
    cr_assert_eq(mesh__tasks_due(q, 1000, out, 8), 5);
    cr_assert_eq(mesh__tasks_set_ratelimit(q, "", &rl, 0), MESH_ERR_INVAL);
    mesh__ratelimit_t bad = {0, 1000};
    cr_assert_eq(mesh__tasks_set_ratelimit(q, T_PATH, &bad, 0), MESH_ERR_INVAL);
    mesh__tasks_destroy(&q);
}

Test(ratelimit, granted_tokens_start_waiting_tasks_oldest_first_and_no_more)
{
    mesh__tasks_t *q = s_queue(T_SEED, 0, NULL);
    cr_assert_eq(mesh__tasks_set_granted(q, T_PATH, 0), 0);
    cr_assert_eq(mesh__tasks_grant(q, "/other", 1), MESH_ERR_NOTFOUND);
    mesh__task_t *t[5];
    for (int i = 0; i < 5; i++) {
        t[i] = s_add(q, &(mesh__task_spec_t){.path = T_PATH}, i);
    }
    mesh__task_t *out[8];
    cr_assert_eq(mesh__tasks_due(q, 10, out, 8), 0, "no token without a grant");
    cr_assert_eq(mesh__tasks_waiting(q, T_PATH), 5);
    cr_assert_eq(mesh__tasks_next_deadline(q, 10), INT64_MAX, "grants are asked for, not awaited");
    cr_assert_eq(mesh__tasks_grant(q, T_PATH, 2), 0);
    cr_assert_eq(mesh__tasks_next_deadline(q, 10), 10, "tokens in hand: due now");
    cr_assert_eq(mesh__tasks_due(q, 10, out, 8), 2);
    cr_assert(out[0] == t[0] && out[1] == t[1], "oldest first");
    cr_assert_eq(mesh__tasks_waiting(q, T_PATH), 3);
    cr_assert_eq(mesh__tasks_due(q, 5000, out, 8), 0, "time alone brings no token");
    /* more tokens than waiting tasks: the rest is dropped, not kept for later tasks */
    cr_assert_eq(mesh__tasks_grant(q, T_PATH, 10), 0);
    cr_assert_eq(mesh__tasks_due(q, 5000, out, 8), 3);
    cr_assert_eq(mesh__tasks_waiting(q, T_PATH), 0);
    s_add(q, &(mesh__task_spec_t){.path = T_PATH}, 5000);
    cr_assert_eq(mesh__tasks_due(q, 5000, out, 8), 0, "left-over tokens were dropped");
    cr_assert_eq(mesh__tasks_grant(q, T_PATH, 1), 0);
    cr_assert_eq(mesh__tasks_due(q, 5000, out, 8), 1);
    /* a grant with nobody waiting is dropped too */
    cr_assert_eq(mesh__tasks_grant(q, T_PATH, 3), 0);
    s_add(q, &(mesh__task_spec_t){.path = T_PATH}, 5000);
    cr_assert_eq(mesh__tasks_due(q, 5000, out, 8), 0);
    /* removing the limit releases the waiting */
    cr_assert_eq(mesh__tasks_set_ratelimit(q, T_PATH, NULL, 5000), 0);
    cr_assert_eq(mesh__tasks_due(q, 5000, out, 8), 1);
    cr_assert_eq(mesh__tasks_grant(q, T_PATH, 1), MESH_ERR_NOTFOUND);
    mesh__tasks_destroy(&q);
}

Test(tasks, requeue_a_lost_run_without_counting_a_failure)
{
    mesh__tasks_t *q = s_queue(T_SEED, 0, NULL);
    mesh__task_spec_t spec = s_spec(0);
    spec.max_attempts = 1;
    spec.replica = 1; /* a holder that took over: the requeue ignores its offset */
    mesh__task_t *t = s_add(q, &spec, 0);
    const uint8_t *id = mesh__task_id(t);
    int64_t off = MESH_TASKS_DEFAULT_REPLICA_OFFSET_MS;
    cr_assert_eq(s_due(q, off), 1);
    cr_assert_eq(mesh__tasks_requeue(q, id, 2, true, 100, off), MESH_ERR_STATE, "not that attempt");
    cr_assert_eq(mesh__tasks_requeue(q, id, 1, true, -1, off), MESH_ERR_INVAL);
    cr_assert_eq(mesh__tasks_requeue(q, id, 1, true, 100, off), 0);
    mesh__task_info_t i = s_info(t);
    cr_assert_eq(i.state, MESH_TASK_SCHEDULED);
    cr_assert_eq(i.failures, 0);
    cr_assert_eq(i.effective_due, off + 100);
    cr_assert_eq(s_due(q, off + 99), 0);
    cr_assert_eq(s_due(q, off + 100), 1);
    cr_assert_eq(s_info(t).attempt, 2, "the lost run was an attempt, not a failure");
    cr_assert_eq(mesh__tasks_finished(q, id, 2, true, "ok", 2, off + 200), 0);
    cr_assert_eq(mesh__task_state(t), MESH_TASK_SUCCEEDED, "max_attempts 1 still succeeds");
    cr_assert_eq(mesh__tasks_requeue(q, id, 2, true, 0, off + 300), MESH_ERR_STATE);
    cr_assert_eq(mesh__tasks_stats(q)->requeued, 1);

    /* a cancel asked while it ran ends it */
    mesh__task_t *c = s_add(q, &(mesh__task_spec_t){.path = T_PATH}, 0);
    cr_assert_eq(s_due(q, 0), 1);
    cr_assert_eq(mesh__tasks_cancel(q, mesh__task_id(c), 1), 0);
    cr_assert_eq(mesh__tasks_requeue(q, mesh__task_id(c), 1, true, 0, 2), 0);
    cr_assert_eq(mesh__task_state(c), MESH_TASK_CANCELLED);

    /* a run that never reached a handler does not count as an attempt */
    mesh__task_t *u = s_add(q, &(mesh__task_spec_t){.path = T_PATH}, 0);
    cr_assert_eq(s_due(q, 0), 1);
    cr_assert_eq(s_info(u).attempt, 1);
    cr_assert_eq(mesh__tasks_requeue(q, mesh__task_id(u), 1, false, 0, 0), 0);
    cr_assert_eq(s_info(u).attempt, 0);
    cr_assert_eq(s_due(q, 0), 1);
    cr_assert_eq(s_info(u).attempt, 1, "the same attempt number again");
    mesh__tasks_destroy(&q);
}

/* ------------------------------------------------------------------------ */
/* records */

Test(records, round_trip_between_clocks)
{
    mesh__tasks_t *a = s_queue(1, 20, NULL);
    mesh__tasks_t *b = s_queue(2, 0, NULL);
    mesh__task_spec_t s = s_spec(9000);
    s.idem_key = "k-1";
    s.payload = "\x00\x01\x02payload";
    s.size = 10;
    s.ttl_ms = 60000;
    s.max_attempts = 4;
    s.backoff_base_ms = 250;
    s.backoff_max_ms = 4000;
    mesh__task_t *t = s_add(a, &s, 1000);
    cr_assert_eq(s_due(a, 9000), 1);
    cr_assert_eq(mesh__tasks_finished(a, mesh__task_id(t), 1, false, "err\0x", 5, 9500), 0);

    uint8_t buf[512], again[512];
    size_t n = mesh__task_encode(t, 10000, buf, sizeof buf);
    cr_assert_eq(n, MESH_TASKS_RECORD_HEADER + strlen(T_PATH) + 3 + 10 + 5);
    cr_assert_eq(mesh__task_encode(t, 10000, buf, 10), n, "too small: the size comes back");
    mesh__task_record_t r;
    cr_assert_eq(mesh__task_record_decode(buf, n, &r), 0);
    cr_assert_eq(r.due_in, s_info(t).due - 10000);
    cr_assert_eq(mesh__task_record_encode(&r, again, sizeof again), n);
    cr_assert_eq(memcmp(buf, again, n), 0);

    /* imported where the clock reads 500000 */
    mesh__task_t *c = NULL;
    cr_assert_eq(mesh__tasks_import(b, buf, n, 1, 500000, &c), MESH_TASKS_ADDED);
    mesh__task_info_t x = s_info(t), y = s_info(c);
    cr_assert_eq(memcmp(x.id, y.id, MESH_TASKS_ID_SIZE), 0);
    cr_assert_str_eq(x.path, y.path);
    cr_assert_str_eq(y.idem_key, "k-1");
    cr_assert(x.payload_size == y.payload_size && !memcmp(x.payload, y.payload, 10));
    cr_assert(x.result_size == y.result_size && !memcmp(x.result, y.result, 5));
    cr_assert_eq(y.state, MESH_TASK_SCHEDULED);
    cr_assert_eq(y.attempt, 1);
    cr_assert_eq(y.failures, 1);
    cr_assert_eq(y.max_attempts, 4);
    cr_assert_eq(y.jitter_pct, 20, "the retry schedule travels with the task");
    cr_assert_eq(y.replica, 1);
    cr_assert_eq(y.due - 500000, x.due - 10000);
    cr_assert_eq(y.created - 500000, x.created - 10000);
    cr_assert_eq(y.started - 500000, x.started - 10000);
    cr_assert_eq(y.finished, MESH_TASKS_NEVER);
    cr_assert_eq(y.effective_due, y.due + T_OFFSET);
    cr_assert_eq(y.ttl_ms, 60000);
    cr_assert(y.backoff_base_ms == 250 && y.backoff_max_ms == 4000);
    cr_assert_eq(mesh__tasks_find_key(b, "k-1"), c);
    /* and back out, at the same relative time: the same bytes (but k) */
    n = mesh__task_encode(c, 500000, again, sizeof again);
    buf[5] = 1;
    cr_assert_eq(memcmp(buf, again, n), 0);
    mesh__tasks_destroy(&a);
    mesh__tasks_destroy(&b);
}

Test(records, import_merges_progress_and_ignores_stale_records)
{
    mesh__tasks_t *own = s_queue(1, 0, NULL);
    mesh__tasks_t *rep = s_queue(2, 0, NULL);
    mesh__task_t *t = s_add(own, &(mesh__task_spec_t){.path = T_PATH, .max_attempts = 3}, 0);
    const uint8_t *id = mesh__task_id(t);
    uint8_t v0[512], v1[512], v2[512], v3[512];
    size_t n0 = mesh__task_encode(t, 0, v0, sizeof v0);
    mesh__task_t *c = s_copy(t, 0, rep, 1, 0);
    cr_assert_eq(s_due(own, 0), 1);
    size_t n1 = mesh__task_encode(t, 0, v1, sizeof v1); /* running, attempt 1 */
    cr_assert_eq(mesh__tasks_finished(own, id, 1, false, "e", 1, 100), 0);
    size_t n2 = mesh__task_encode(t, 100, v2, sizeof v2); /* scheduled, attempt 1 failed */

    cr_assert_eq(mesh__tasks_import(rep, v1, n1, -1, 0, NULL), MESH_TASKS_EXISTING);
    cr_assert_eq(mesh__task_state(c), MESH_TASK_STANDBY, "someone else runs it");
    cr_assert_eq(mesh__tasks_import(rep, v0, n0, -1, 10, NULL), MESH_TASKS_EXISTING);
    cr_assert_eq(mesh__task_state(c), MESH_TASK_STANDBY, "an older record changes nothing");
    cr_assert_eq(mesh__tasks_stats(rep)->import_stale, 1);
    cr_assert_eq(mesh__tasks_import(rep, v2, n2, -1, 100, NULL), MESH_TASKS_EXISTING);
    mesh__task_info_t i = s_info(c);
    cr_assert_eq(i.state, MESH_TASK_SCHEDULED);
    cr_assert_eq(i.failures, 1);
    cr_assert_eq(i.due, 100 + T_BASE, "the owner's retry time");
    cr_assert_eq(i.effective_due, 100 + T_BASE + T_OFFSET, "with this holder's offset");
    /* the same retry computed locally agrees: no record needed */
    cr_assert_eq(mesh__tasks_backoff(id, 1, T_BASE, T_MAX, 0), T_BASE);

    cr_assert_eq(s_due(own, 100 + T_BASE), 1);
    cr_assert_eq(mesh__tasks_finished(own, id, 2, true, "done", 4, 2000), 0);
    size_t n3 = mesh__task_encode(t, 2000, v3, sizeof v3);
    cr_assert_eq(mesh__tasks_import(rep, v3, n3, -1, 2000, NULL), MESH_TASKS_EXISTING);
    cr_assert_eq(mesh__task_state(c), MESH_TASK_SUCCEEDED);
    cr_assert_eq(mesh__tasks_import(rep, v2, n2, -1, 2100, NULL), MESH_TASKS_EXISTING);
    cr_assert_eq(mesh__task_state(c), MESH_TASK_SUCCEEDED, "final is final");

    /* a journal replay of a running task: standby, to be taken over */
    mesh__tasks_t *fresh = s_queue(3, 0, NULL);
    mesh__task_t *j = NULL;
    cr_assert_eq(mesh__tasks_import(fresh, v1, n1, 0, 7, &j), MESH_TASKS_ADDED);
    cr_assert_eq(mesh__task_state(j), MESH_TASK_STANDBY);
    cr_assert_eq(mesh__tasks_takeover(fresh, id, 8), 0);
    cr_assert_eq(s_due(fresh, 8), 1);
    cr_assert_eq(mesh__tasks_import(fresh, v1, n1, MESH_TASKS_REPLICAS_MAX, 7, NULL),
                 MESH_ERR_INVAL);
    mesh__tasks_destroy(&fresh);
    mesh__tasks_destroy(&own);
    mesh__tasks_destroy(&rep);
}

Test(records, import_refuses_a_held_key)
{
    mesh__tasks_t *a = s_queue(1, 0, NULL);
    mesh__tasks_t *b = s_queue(2, 0, NULL);
    mesh__task_spec_t s = s_spec(0);
    s.idem_key = "dup";
    mesh__task_t *ta = s_add(a, &s, 0);
    mesh__task_t *tb = s_add(b, &s, 0);
    uint8_t buf[512];
    size_t n = mesh__task_encode(ta, 0, buf, sizeof buf);
    mesh__task_t *held = NULL;
    cr_assert_eq(mesh__tasks_import(b, buf, n, 0, 0, &held), MESH_ERR_EXISTS);
    cr_assert_eq(held, tb, "the caller learns which task holds the key");
    cr_assert_eq(mesh__tasks_size(b), 1);
    mesh__tasks_destroy(&a);
    mesh__tasks_destroy(&b);
}

/*  splitmix64, for test data. */
static uint64_t s_rand(uint64_t *st)
{
    uint64_t z = (*st += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

Test(records, garbage_and_damage_are_refused_within_bounds)
{
    mesh__tasks_t *q = s_queue(T_SEED, 0, NULL);
    mesh__task_spec_t s = s_spec(0);
    s.idem_key = "key";
    mesh__task_t *t = s_add(q, &s, 0);
    uint8_t good[512];
    size_t n = mesh__task_encode(t, 0, good, sizeof good);
    mesh__task_record_t r;
    cr_assert_eq(mesh__task_record_decode(good, n, &r), 0);

    /* every truncation, and a trailing byte */
    for (size_t len = 0; len < n; len++) {
        uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan sees overreads */
        memcpy(copy, good, len);
        cr_assert_eq(mesh__task_record_decode(copy, len, &r), MESH_ERR_MALFORMED, "len %zu", len);
        free(copy);
    }
    uint8_t longer[513];
    memcpy(longer, good, n);
    longer[n] = 0;
    cr_assert_eq(mesh__task_record_decode(longer, n + 1, &r), MESH_ERR_MALFORMED);

    /* each header byte flipped: refused, or decodes to a record that
       re-encodes to exactly the damaged bytes */
    size_t accepted = 0;
    for (size_t i = 0; i < MESH_TASKS_RECORD_HEADER; i++) {
        for (int bit = 0; bit < 8; bit++) {
            uint8_t bad[512];
            memcpy(bad, good, n);
            bad[i] ^= (uint8_t)(1u << bit);
            if (mesh__task_record_decode(bad, n, &r) == 0) {
                uint8_t re[512];
                cr_assert_eq(mesh__task_record_encode(&r, re, sizeof re), n);
                cr_assert_eq(memcmp(re, bad, n), 0);
                accepted++;
            }
        }
    }
    cr_assert(accepted > 0 && accepted < MESH_TASKS_RECORD_HEADER * 8);

    /* lengths far past the buffer */
    uint8_t huge[512];
    memcpy(huge, good, n);
    memset(huge + 96, 0xff, 4); /* payload length */
    cr_assert_eq(mesh__task_record_decode(huge, n, &r), MESH_ERR_MALFORMED);
    memcpy(huge, good, n);
    memset(huge + 92, 0xff, 2); /* path length */
    cr_assert_eq(mesh__task_record_decode(huge, n, &r), MESH_ERR_MALFORMED);

    /* random bytes, some with a valid magic and version */
    uint64_t st = 7;
    for (int i = 0; i < 20000; i++) {
        size_t len = (size_t)(s_rand(&st) % 300);
        uint8_t *buf = malloc(len ? len : 1);
        for (size_t k = 0; k < len; k++) {
            buf[k] = (uint8_t)s_rand(&st);
        }
        if (len >= 3 && (i & 1)) {
            buf[0] = 'M';
            buf[1] = 'T';
            buf[2] = 1;
        }
        int rc = mesh__tasks_import(q, buf, len, 0, 0, NULL);
        cr_assert(rc == MESH_ERR_MALFORMED || rc == MESH_TASKS_ADDED, "rc %d", rc);
        free(buf);
    }
    cr_assert_geq(mesh__tasks_stats(q)->malformed, 19000);
    mesh__tasks_destroy(&q);
}

/* ------------------------------------------------------------------------ */
/* scale and ordering */

Test(tasks, hundred_thousand_tasks_due_in_order)
{
    mesh__tasks_t *q = s_queue(T_SEED, 0, NULL);
    uint64_t st = 1;
    for (int i = 0; i < T_MANY; i++) {
        int64_t due = (int64_t)(s_rand(&st) % 1000000);
        s_add(q, &(mesh__task_spec_t){.path = T_PATH, .due = due, .replica = (unsigned)(i % 3)}, 0);
    }
    cr_assert_eq(mesh__tasks_size(q), T_MANY);
    mesh__task_t **out = malloc(T_MANY * sizeof *out);
    int64_t last = INT64_MIN;
    size_t total = 0;
    for (int64_t now = 0; total < T_MANY; now += 997) {
        int64_t next = mesh__tasks_next_deadline(q, now);
        size_t n = mesh__tasks_due(q, now, out, T_MANY);
        if (n > 0) {
            cr_assert_eq(s_info(out[0]).effective_due, next, "next_deadline is the earliest");
        }
        for (size_t i = 0; i < n; i++) {
            int64_t eff = s_info(out[i]).effective_due;
            cr_assert(eff >= last && eff <= now, "in order, and due");
            last = eff;
        }
        total += n;
        cr_assert_gt(mesh__tasks_next_deadline(q, now), now);
    }
    cr_assert_eq(total, T_MANY);
    cr_assert_eq(mesh__tasks_count(q, MESH_TASK_RUNNING), T_MANY);
    free(out);
    mesh__tasks_destroy(&q);
}

/*  Ids and keys stay findable through heavy add/remove churn (the tables'
    backward-shift deletion, wrap-around included). */
Test(tasks, lookups_survive_removals)
{
    enum { N = 4000, OPS = 200000, CHECK_EVERY = 10000 };
    mesh__tasks_t *q = s_queue(T_SEED, 0, NULL);
    uint8_t(*ids)[MESH_TASKS_ID_SIZE] = calloc(N, MESH_TASKS_ID_SIZE);
    bool *held = calloc(N, sizeof *held);
    unsigned *gen = calloc(N, sizeof *gen);
    char key[32];
    uint64_t st = 5;
    for (int op = 1; op <= OPS; op++) {
        size_t i = (size_t)(s_rand(&st) % N);
        if (held[i]) {
            cr_assert_eq(mesh__tasks_remove(q, ids[i]), 0);
            cr_assert_eq(mesh__tasks_remove(q, ids[i]), MESH_ERR_NOTFOUND);
            held[i] = false;
            gen[i]++;
        } else {
            snprintf(key, sizeof key, "key-%zu-%u", i, gen[i]);
            mesh__task_spec_t s = s_spec(0);
            s.idem_key = key;
            memcpy(ids[i], mesh__task_id(s_add(q, &s, 0)), MESH_TASKS_ID_SIZE);
            held[i] = true;
        }
        if (op % CHECK_EVERY == 0) {
            size_t n = 0;
            for (size_t k = 0; k < N; k++) {
                snprintf(key, sizeof key, "key-%zu-%u", k, gen[k]);
                mesh__task_t *t = held[k] ? mesh__tasks_find(q, ids[k]) : NULL;
                cr_assert(!held[k] || t, "task %zu", k);
                cr_assert_eq(mesh__tasks_find_key(q, key), t, "key %zu", k);
                n += held[k];
            }
            cr_assert_eq(mesh__tasks_size(q), n);
        }
    }
    free(ids);
    free(held);
    free(gen);
    mesh__tasks_destroy(&q);
}

/*  The heaps and tables against a brute-force model: random adds, cancels,
    replica changes, stand-downs, outcomes and removals; at every step, the
    tasks due are exactly those the model says, in effective-due order. */
Test(tasks, churn_matches_a_brute_force_model)
{
    enum { N = 3000, STEPS = 20000 };
    mesh__tasks_t *q = s_queue(T_SEED, 0, NULL);
    uint8_t(*ids)[MESH_TASKS_ID_SIZE] = calloc(N, MESH_TASKS_ID_SIZE);
    bool *live = calloc(N, sizeof *live);
    size_t nids = 0;
    uint64_t st = 99;
    int64_t now = 0;
    mesh__task_t *out[64];
    for (int step = 0; step < STEPS; step++) {
        uint64_t op = s_rand(&st) % 100;
        size_t pick = nids ? (size_t)(s_rand(&st) % nids) : 0;
        mesh__task_t *t = nids && live[pick] ? mesh__tasks_find(q, ids[pick]) : NULL;
        cr_assert(!nids || !live[pick] || t, "a held task is found");
        if (op < 35 && nids < N) {
            mesh__task_spec_t s = s_spec(now + (int64_t)(s_rand(&st) % 20000));
            s.replica = (unsigned)(s_rand(&st) % 3);
            s.max_attempts = 2;
            mesh__task_t *a = s_add(q, &s, now);
            memcpy(ids[nids], mesh__task_id(a), MESH_TASKS_ID_SIZE);
            live[nids++] = true;
        } else if (op < 45 && t) {
            mesh__tasks_cancel(q, ids[pick], now);
        } else if (op < 55 && t) {
            mesh__tasks_set_replica(q, ids[pick], (unsigned)(s_rand(&st) % 4), now);
        } else if (op < 62 && t) {
            mesh__tasks_standdown(q, ids[pick], mesh__task_attempt(t) + 1, now);
        } else if (op < 67 && t) {
            mesh__tasks_takeover(q, ids[pick], now);
        } else if (op < 80 && t && mesh__task_state(t) == MESH_TASK_RUNNING) {
            mesh__tasks_finished(q, ids[pick], mesh__task_attempt(t), s_rand(&st) & 1, NULL, 0,
                                 now);
        } else if (op < 83 && t) {
            cr_assert_eq(mesh__tasks_remove(q, ids[pick]), 0);
            live[pick] = false;
        } else {
            now += (int64_t)(s_rand(&st) % 700);
            /* the model: every SCHEDULED task with effective due <= now */
            size_t want = 0;
            int64_t earliest = INT64_MAX;
            size_t pos = 0;
            mesh__task_t *x;
            while ((x = mesh__tasks_next(q, &pos))) {
                mesh__task_info_t i = s_info(x);
                cr_assert_eq(i.effective_due, i.due + (int64_t)i.replica * T_OFFSET);
                if (i.state == MESH_TASK_SCHEDULED) {
                    want += i.effective_due <= now;
                    earliest = i.effective_due < earliest ? i.effective_due : earliest;
                } else if (mesh__task_state_final(i.state)) {
                    int64_t purge = i.finished + MESH_TASKS_DEFAULT_RETENTION_MS;
                    earliest = purge < earliest ? purge : earliest;
                }
            }
            cr_assert_eq(mesh__tasks_next_deadline(q, now), earliest);
            size_t got = 0, n;
            int64_t last = INT64_MIN;
            while ((n = mesh__tasks_due(q, now, out, 64)) > 0) {
                for (size_t i = 0; i < n; i++) {
                    int64_t eff = s_info(out[i]).effective_due;
                    cr_assert(eff <= now && (got + i == 0 || eff >= last));
                    last = eff;
                }
                got += n;
            }
            cr_assert_eq(got, want, "step %d: %zu due, model %zu", step, got, want);
        }
    }
    size_t sum = 0;
    for (int s = 0; s < MESH_TASK_STATE_COUNT; s++) {
        sum += mesh__tasks_count(q, s);
    }
    cr_assert_eq(sum, mesh__tasks_size(q), "per-state counts add up");
    free(ids);
    free(live);
    mesh__tasks_destroy(&q);
}
