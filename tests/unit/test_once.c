/*  test_once.c: the "once" ledger (once.h, protocol.md §11.6.7) with a fake
    clock and small bounds. A first request runs; repeats join the run and
    are handed back in order when it ends; a success is replayed byte for
    byte for the retention and forgotten after it; a failure is forgotten at
    once; the entry bound evicts the oldest DONE entries and never a RUNNING
    one; the byte bound counts kept replies and refuses one too large alone;
    (path, key) pairs that spell the same octets stay apart; purging and
    eviction cost a step per entry removed, never a scan. */
#include "once.h"

#include <mesh/mesh.h>

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T_RETENTION 1000 /* ms, in most tests */
#define T_KEY_MAX   32

/*  A sender's UUID made from n. */
static void s_uuid(uint8_t *uuid, uint8_t n)
{
    for (size_t i = 0; i < MESH_ZRE_UUID_SIZE; i++) {
        uuid[i] = (uint8_t)(n * 31 + i);
    }
}

static mesh__once_t *s_ledger(size_t entries_max, size_t bytes_max, int64_t retention_ms)
{
    mesh__once_config_t cfg = {
        .entries_max = entries_max, .bytes_max = bytes_max, .retention_ms = retention_ms};
    mesh__once_t *o = mesh__once_new(&cfg);
    cr_assert_not_null(o);
    return o;
}

static mesh__once_stats_t s_stats(const mesh__once_t *o)
{
    mesh__once_stats_t st;
    mesh__once_stats(o, &st);
    return st;
}

/*  A request for (path, key) from sender n with this id, at now. */
static mesh__once_outcome_t s_admit(mesh__once_t *o, const char *path, const char *key, uint8_t n,
                                    uint64_t id, int64_t now, mesh__once_result_t *res)
{
    uint8_t uuid[MESH_ZRE_UUID_SIZE];
    s_uuid(uuid, n);
    return mesh__once_admit(o, path, strlen(path), key, strlen(key), uuid, id, now, res);
}

/*  A request that must start a run: its entry. */
static mesh__once_entry_t *s_run(mesh__once_t *o, const char *path, const char *key, int64_t now)
{
    mesh__once_result_t res;
    mesh__once_outcome_t v = s_admit(o, path, key, 0, 1, now, &res);
    cr_assert_eq(v, MESH__ONCE_RUN, "%s %s: outcome %d, not a run", path, key, (int)v);
    cr_assert_not_null(res.entry);
    return res.entry;
}

/*  Ends a run with status and reply (data/size); returns whether it was
    kept, and checks that no waiter was handed back. */
static bool s_end(mesh__once_t *o, mesh__once_entry_t *e, int32_t status, const void *data,
                  size_t size, int64_t now)
{
    mesh__once_waiter_t *w = NULL;
    size_t n = 99;
    bool kept = mesh__once_finish(o, &e, status, data, size, now, &w, &n);
    cr_assert_null(e, "the entry pointer was not nulled");
    cr_assert_eq(n, 0);
    cr_assert_null(w);
    return kept;
}

static bool s_succeed(mesh__once_t *o, mesh__once_entry_t *e, const char *reply, int64_t now)
{
    return s_end(o, e, 0, reply, strlen(reply), now);
}

/*  The ledger replays reply for (path, key) at now. */
static void s_expect_replay(mesh__once_t *o, const char *path, const char *key, int64_t now,
                            const char *reply)
{
    mesh__once_result_t res;
    mesh__once_outcome_t v = s_admit(o, path, key, 7, 77, now, &res);
    cr_assert_eq(v, MESH__ONCE_REPLAY, "%s %s at %lld: outcome %d, not a replay", path, key,
                 (long long)now, (int)v);
    cr_assert_null(res.entry);
    cr_assert_eq(res.size, strlen(reply), "%s %s: %zu bytes replayed", path, key, res.size);
    cr_assert(res.size == 0 || memcmp(res.data, reply, res.size) == 0, "%s %s: not the kept reply",
              path, key);
}

/*  (path, key) is not in the ledger at now: a request starts a new run,
    whose entry is returned. */
static mesh__once_entry_t *s_expect_forgotten(mesh__once_t *o, const char *path, const char *key,
                                              int64_t now)
{
    return s_run(o, path, key, now);
}

Test(once, first_request_runs)
{
    mesh__once_t *o = s_ledger(10, 100, T_RETENTION);
    cr_expect_eq(s_stats(o).entries, 0);
    mesh__once_result_t res;
    cr_assert_eq(s_admit(o, "/job", "k", 1, 100, 0, &res), MESH__ONCE_RUN);
    cr_assert_not_null(res.entry);
    cr_expect_eq(s_stats(o).entries, 1);
    cr_expect_eq(s_stats(o).running, 1);
    /* another key, another path: runs of their own */
    mesh__once_entry_t *e2 = s_run(o, "/job", "k2", 0);
    mesh__once_entry_t *e3 = s_run(o, "/other", "k", 0);
    cr_expect_neq(e2, res.entry);
    cr_expect_neq(e3, res.entry);
    cr_expect_eq(s_stats(o).running, 3);
    /* an empty key is a key */
    mesh__once_entry_t *e4 = s_run(o, "/job", "", 0);
    cr_assert_eq(s_admit(o, "/job", "", 2, 5, 0, &res), MESH__ONCE_JOINED);
    cr_expect_eq(s_stats(o).entries, 4);
    mesh__once_destroy(&o);
    cr_expect_null(o);
    mesh__once_destroy(&o); /* NULL is fine */
    (void)e4;
}

Test(once, repeats_join_the_run_and_are_handed_back_in_order)
{
    mesh__once_t *o = s_ledger(10, 100, T_RETENTION);
    mesh__once_entry_t *e = s_run(o, "/job", "k", 0);
    mesh__once_result_t res;
    uint64_t ids[] = {900, 5, 77, 5}; /* the same id from two senders is two waiters */
    for (uint8_t i = 0; i < 4; i++) {
        cr_assert_eq(s_admit(o, "/job", "k", (uint8_t)(10 + i), ids[i], 50 + i, &res),
                     MESH__ONCE_JOINED, "repeat %d did not join", i);
        cr_expect_null(res.entry, "a repeat got an entry of its own");
    }
    /* a RUNNING entry has no retention: it still collects long after */
    cr_assert_eq(s_admit(o, "/job", "k", 14, 6, 100 * T_RETENTION, &res), MESH__ONCE_JOINED);
    cr_expect_eq(s_stats(o).entries, 1);

    mesh__once_waiter_t *w;
    size_t n;
    cr_assert(mesh__once_finish(o, &e, 0, "r", 1, 100 * T_RETENTION, &w, &n));
    cr_assert_eq(n, 5, "%zu waiters handed back", n);
    for (uint8_t i = 0; i < 5; i++) {
        uint8_t uuid[MESH_ZRE_UUID_SIZE];
        s_uuid(uuid, (uint8_t)(10 + i));
        cr_expect(memcmp(w[i].uuid, uuid, sizeof uuid) == 0, "waiter %d: not its sender", i);
        cr_expect_eq(w[i].id, i < 4 ? ids[i] : 6, "waiter %d: id %llu", i,
                     (unsigned long long)w[i].id);
    }
    free(w);
    /* handed back once: a replay now, and nobody waits any more */
    s_expect_replay(o, "/job", "k", 100 * T_RETENTION + 1, "r");
    cr_expect_eq(s_stats(o).running, 0);

    /* a failed run hands its waiters back too, in order */
    e = s_run(o, "/job", "other", 0);
    for (uint8_t i = 0; i < 3; i++) {
        cr_assert_eq(s_admit(o, "/job", "other", (uint8_t)(20 + i), 30 - i, 1, &res),
                     MESH__ONCE_JOINED);
    }
    cr_expect_not(mesh__once_finish(o, &e, MESH_ERR_REMOTE, NULL, 0, 2, &w, &n));
    cr_assert_eq(n, 3);
    for (uint8_t i = 0; i < 3; i++) {
        cr_expect_eq(w[i].id, (uint64_t)(30 - i), "failed run, waiter %d", i);
        cr_expect_eq(w[i].uuid[0], (uint8_t)((20 + i) * 31));
    }
    free(w);
    mesh__once_destroy(&o);
}

Test(once, success_replays_the_exact_bytes)
{
    mesh__once_t *o = s_ledger(10, 100, T_RETENTION);
    mesh__once_entry_t *e = s_run(o, "/job", "k", 0);
    uint8_t reply[] = {0x00, 0xff, 'o', 'k', 0x00, 0x80};
    cr_assert(s_end(o, e, 0, reply, sizeof reply, 10));
    cr_expect_eq(s_stats(o).bytes, sizeof reply);
    cr_expect_eq(s_stats(o).running, 0);
    memset(reply, 'x', sizeof reply); /* the ledger kept a copy */
    const uint8_t want[] = {0x00, 0xff, 'o', 'k', 0x00, 0x80};
    for (int i = 0; i < 3; i++) {
        mesh__once_result_t res;
        cr_assert_eq(s_admit(o, "/job", "k", (uint8_t)i, (uint64_t)i, 20 + i, &res),
                     MESH__ONCE_REPLAY);
        cr_assert_eq(res.size, sizeof want);
        cr_expect(memcmp(res.data, want, sizeof want) == 0, "replay %d: other bytes", i);
    }
    cr_expect_eq(s_stats(o).entries, 1, "a replay added an entry");

    /* an empty reply is kept too, and replayed empty */
    e = s_run(o, "/job", "empty", 0);
    cr_assert(s_end(o, e, 0, NULL, 0, 10));
    mesh__once_result_t res;
    cr_assert_eq(s_admit(o, "/job", "empty", 1, 1, 11, &res), MESH__ONCE_REPLAY);
    cr_expect_eq(res.size, 0);
    cr_expect_eq(s_stats(o).bytes, sizeof want);
    mesh__once_destroy(&o);
}

Test(once, failure_forgets_the_run)
{
    mesh__once_t *o = s_ledger(10, 100, T_RETENTION);
    int32_t failures[] = {MESH_ERR_REMOTE, MESH_ERR_REJECTED, MESH_ERR_CLOSED};
    for (size_t i = 0; i < 3; i++) {
        mesh__once_entry_t *e = s_run(o, "/job", "k", (int64_t)i);
        cr_expect_not(s_end(o, e, failures[i], "no", 2, (int64_t)i), "a failure was kept");
        cr_expect_eq(s_stats(o).entries, 0, "the failed entry stayed");
        cr_expect_eq(s_stats(o).bytes, 0);
    }
    /* the next request runs again, and its success is kept */
    mesh__once_entry_t *e = s_expect_forgotten(o, "/job", "k", 5);
    cr_assert(s_succeed(o, e, "yes", 6));
    s_expect_replay(o, "/job", "k", 7, "yes");
    mesh__once_destroy(&o);
}

Test(once, retention_replays_until_its_end_and_not_after)
{
    mesh__once_t *o = s_ledger(10, 100, T_RETENTION);
    mesh__once_entry_t *e = s_run(o, "/job", "k", 0);
    cr_assert(s_succeed(o, e, "v1", 5000)); /* the retention runs from the end of the run */
    s_expect_replay(o, "/job", "k", 5000, "v1");
    s_expect_replay(o, "/job", "k", 5000 + T_RETENTION - 1, "v1");
    cr_expect_eq(s_stats(o).expired, 0);
    e = s_expect_forgotten(o, "/job", "k", 5000 + T_RETENTION);
    cr_expect_eq(s_stats(o).expired, 1);
    cr_assert(s_succeed(o, e, "v2", 7000));
    s_expect_replay(o, "/job", "k", 7000 + T_RETENTION - 1, "v2");

    /* a purge (the peer's ping) forgets it without a request */
    cr_expect_eq(mesh__once_purge(o, 7000 + T_RETENTION - 1), 0);
    cr_expect_eq(s_stats(o).entries, 1);
    cr_expect_eq(mesh__once_purge(o, 7000 + T_RETENTION), 1);
    cr_expect_eq(s_stats(o).entries, 0);
    cr_expect_eq(s_stats(o).bytes, 0);
    cr_expect_eq(s_stats(o).expired, 2);

    /* one request purges every entry whose retention has ended, whatever its key */
    for (int i = 0; i < 5; i++) {
        char key[T_KEY_MAX];
        snprintf(key, sizeof key, "k%d", i);
        cr_assert(s_succeed(o, s_run(o, "/job", key, 0), "x", 10000 + i));
    }
    mesh__once_entry_t *other = s_run(o, "/job", "other", 10000 + T_RETENTION + 2);
    mesh__once_stats_t st = s_stats(o);
    cr_expect_eq(st.entries, 3, "%zu entries: k0..k2 were not purged", st.entries);
    cr_expect_eq(st.bytes, 2);
    s_expect_replay(o, "/job", "k3", 10000 + T_RETENTION + 2, "x");
    cr_assert(s_succeed(o, other, "y", 10000 + T_RETENTION + 2));
    mesh__once_destroy(&o);
}

Test(once, entry_bound_evicts_the_oldest_done_first)
{
    mesh__once_t *o = s_ledger(3, 1000, T_RETENTION);
    mesh__once_entry_t *a = s_run(o, "/job", "a", 0);
    mesh__once_entry_t *b = s_run(o, "/job", "b", 0);
    mesh__once_entry_t *c = s_run(o, "/job", "c", 0);
    /* they finish in another order than they started: b, c, a */
    cr_assert(s_succeed(o, b, "B", 10));
    cr_assert(s_succeed(o, c, "C", 11));
    cr_assert(s_succeed(o, a, "A", 12));
    cr_expect_eq(s_stats(o).entries, 3);

    /* a fourth key: b, which finished first, goes */
    mesh__once_entry_t *d = s_run(o, "/job", "d", 20);
    mesh__once_stats_t st = s_stats(o);
    cr_expect_eq(st.entries, 3);
    cr_expect_eq(st.evicted, 1);
    cr_expect_eq(st.bytes, 2);
    s_expect_replay(o, "/job", "a", 21, "A");
    s_expect_replay(o, "/job", "c", 21, "C");
    /* b runs again, evicting c (now the oldest); a is kept */
    b = s_expect_forgotten(o, "/job", "b", 22);
    s_expect_replay(o, "/job", "a", 23, "A");
    cr_expect_eq(s_stats(o).evicted, 2);
    c = s_expect_forgotten(o, "/job", "c", 24); /* and c evicts a */
    cr_expect_eq(s_stats(o).evicted, 3);
    cr_expect_eq(s_stats(o).running, 3);
    cr_expect_eq(s_stats(o).bytes, 0);

    /* every entry RUNNING: a new key runs untracked, and so do its repeats */
    mesh__once_result_t res;
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(s_admit(o, "/job", "e", 1, (uint64_t)i, 25, &res), MESH__ONCE_UNTRACKED);
        cr_expect_null(res.entry);
    }
    cr_expect_eq(s_stats(o).entries, 3);
    cr_expect_eq(s_stats(o).evicted, 3, "a RUNNING entry was evicted");
    /* and the runs under way were not touched: their repeats still join */
    cr_expect_eq(s_admit(o, "/job", "b", 2, 1, 26, &res), MESH__ONCE_JOINED);
    cr_expect_eq(s_admit(o, "/job", "c", 2, 2, 26, &res), MESH__ONCE_JOINED);
    cr_expect_eq(s_admit(o, "/job", "d", 2, 3, 26, &res), MESH__ONCE_JOINED);

    /* one run ends: its DONE entry is the only one that can give way */
    mesh__once_waiter_t *w;
    size_t n;
    cr_assert(mesh__once_finish(o, &d, 0, "D", 1, 30, &w, &n));
    cr_expect_eq(n, 1);
    free(w);
    mesh__once_entry_t *e = s_run(o, "/job", "e", 31);
    cr_expect_eq(s_stats(o).evicted, 4);
    cr_expect_eq(s_admit(o, "/job", "b", 3, 4, 32, &res), MESH__ONCE_JOINED);
    cr_expect_eq(s_admit(o, "/job", "c", 3, 5, 32, &res), MESH__ONCE_JOINED);
    cr_expect_eq(s_admit(o, "/job", "f", 3, 6, 32, &res), MESH__ONCE_UNTRACKED);

    /* teardown with runs and waiters still in it frees them all */
    (void)b;
    (void)c;
    (void)e;
    mesh__once_destroy(&o);
}

Test(once, byte_bound_counts_kept_replies)
{
    mesh__once_t *o = s_ledger(100, 10, T_RETENTION);
    cr_assert(s_succeed(o, s_run(o, "/job", "a", 0), "aaa", 1));
    cr_assert(s_succeed(o, s_run(o, "/job", "b", 0), "bbb", 2));
    cr_assert(s_succeed(o, s_run(o, "/job", "c", 0), "ccc", 3));
    cr_expect_eq(s_stats(o).bytes, 9);
    cr_expect_eq(s_stats(o).evicted, 0);

    /* 9 + 7 > 10: a then b go (oldest first), until it fits */
    cr_assert(s_succeed(o, s_run(o, "/job", "d", 4), "ddddddd", 5));
    mesh__once_stats_t st = s_stats(o);
    cr_expect_eq(st.bytes, 10);
    cr_expect_eq(st.evicted, 2);
    cr_expect_eq(st.entries, 2);
    s_expect_replay(o, "/job", "c", 6, "ccc");
    s_expect_replay(o, "/job", "d", 6, "ddddddd");
    mesh__once_entry_t *a = s_expect_forgotten(o, "/job", "a", 6);

    /* larger than the bound alone: not kept, nothing evicted for it */
    cr_expect_not(s_succeed(o, s_run(o, "/job", "big", 7), "0123456789X", 8));
    st = s_stats(o);
    cr_expect_eq(st.evicted, 2, "a reply that could never fit evicted others");
    cr_expect_eq(st.bytes, 10);
    cr_expect_eq(st.entries, 3); /* c, d, and a's run */
    s_expect_replay(o, "/job", "c", 9, "ccc");
    mesh__once_entry_t *big = s_expect_forgotten(o, "/job", "big", 9); /* a repeat runs again */
    cr_expect_not(s_succeed(o, big, "0123456789X", 10));

    /* exactly the bound: kept, alone */
    cr_assert(s_succeed(o, a, "0123456789", 11));
    st = s_stats(o);
    cr_expect_eq(st.bytes, 10);
    cr_expect_eq(st.evicted, 4);
    cr_expect_eq(st.entries, 1);
    s_expect_replay(o, "/job", "a", 12, "0123456789");

    /* an empty reply takes no room and evicts nothing */
    cr_assert(s_succeed(o, s_run(o, "/job", "e", 13), "", 13));
    cr_expect_eq(s_stats(o).evicted, 4);
    s_expect_replay(o, "/job", "a", 14, "0123456789");
    s_expect_replay(o, "/job", "e", 14, "");
    mesh__once_destroy(&o);
}

Test(once, path_and_key_do_not_run_together)
{
    mesh__once_t *o = s_ledger(100, 1000, T_RETENTION);
    /* ("/a", "bk"), ("/ab", "k") and ("/abk", "") spell "/abk" end to end */
    struct {
        const char *path, *key, *reply;
    } runs[] = {{"/a", "bk", "1"}, {"/ab", "k", "2"}, {"/abk", "", "3"}, {"/", "abk", "4"}};
    mesh__once_entry_t *e[4];
    for (int i = 0; i < 4; i++) {
        mesh__once_result_t res;
        mesh__once_outcome_t v = s_admit(o, runs[i].path, runs[i].key, 1, (uint64_t)i, 0, &res);
        cr_assert_eq(v, MESH__ONCE_RUN, "%s + %s joined another run", runs[i].path, runs[i].key);
        e[i] = res.entry;
    }
    cr_expect_eq(s_stats(o).entries, 4);
    for (int i = 0; i < 4; i++) {
        cr_assert(s_succeed(o, e[i], runs[i].reply, 1));
    }
    for (int i = 3; i >= 0; i--) {
        s_expect_replay(o, runs[i].path, runs[i].key, 2, runs[i].reply);
    }
    /* octets, not C strings: a key with a NUL in it is its own */
    uint8_t uuid[MESH_ZRE_UUID_SIZE];
    s_uuid(uuid, 1);
    mesh__once_result_t res;
    cr_expect_eq(mesh__once_admit(o, "/a", 2, "bk\0x", 4, uuid, 9, 3, &res), MESH__ONCE_RUN);
    mesh__once_destroy(&o);
}

Test(once, purge_costs_a_step_per_entry_removed)
{
    enum { N = 2000, R = 100 * N };
    mesh__once_t *o = s_ledger(100000, 1000000, R);
    char key[T_KEY_MAX];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "k%d", i);
        cr_assert(s_succeed(o, s_run(o, "/job", key, i), "r", i)); /* key i expires at i + R */
    }
    cr_assert_eq(s_stats(o).entries, N);

    /* N requests while nothing has expired: one look at the head each */
    uint64_t before = s_stats(o).steps;
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "k%d", i);
        s_expect_replay(o, "/job", key, R - 1, "r");
    }
    uint64_t steps = s_stats(o).steps - before;
    cr_expect_leq(steps, N, "%llu steps for %d requests over %d entries: a scan",
                  (unsigned long long)steps, N, N);
    cr_expect_geq(steps, N, "requests did not purge"); /* each one did look */

    /* half expire: the next request removes them, and looks at one more */
    before = s_stats(o).steps;
    mesh__once_entry_t *e = s_run(o, "/job", "new", R + N / 2 - 1);
    mesh__once_stats_t st = s_stats(o);
    cr_expect_eq(st.expired, N / 2);
    cr_expect_eq(st.steps - before, N / 2 + 1);
    cr_expect_eq(st.entries, N / 2 + 1);
    cr_assert(s_succeed(o, e, "r", R + N / 2));
    mesh__once_destroy(&o);

    /* a full ledger: each new key evicts one entry, at one step (plus the purge's look) */
    o = s_ledger(N, 1000000, T_RETENTION);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "a%d", i);
        cr_assert(s_succeed(o, s_run(o, "/job", key, 0), "r", 0));
    }
    before = s_stats(o).steps;
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "b%d", i);
        cr_assert(s_succeed(o, s_run(o, "/job", key, 1), "r", 1));
    }
    st = s_stats(o);
    cr_expect_eq(st.evicted, N);
    cr_expect_leq(st.steps - before, 2 * N, "%llu steps for %d evictions",
                  (unsigned long long)(st.steps - before), N);
    mesh__once_destroy(&o);
}

Test(once, rejects_a_negative_retention)
{
    mesh__once_config_t cfg = {.entries_max = 1, .bytes_max = 1, .retention_ms = -1};
    cr_expect_null(mesh__once_new(&cfg));
}
