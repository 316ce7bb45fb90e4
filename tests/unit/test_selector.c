/*  test_selector.c: every selector kind over a routing table on a fake
    clock: what each picks, how ties and rounds spread, how silent members,
    tag filters and exclusions are honoured, and how KEY keeps its keys. */
#include "routing.h"

#include <mesh/mesh.h>

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T_TIMEOUT 1000 /* ping timeout, ms */
#define T_SEED    7
#define T_MAX     64
#define T_PATH    "svc/echo"

typedef struct {
    mesh__routing_t *rt;
    mesh__member_t *m[T_MAX];
    size_t n;
} s_fix_t;

static void s_uuid(uint8_t *uuid, uint32_t i)
{
    uint64_t x = i * 0x9e3779b97f4a7c15ULL + 11;
    for (size_t k = 0; k < MESH_ZRE_UUID_SIZE; k++) {
        x ^= x >> 29;
        x *= 0xbf58476d1ce4e5b9ULL;
        uuid[k] = (uint8_t)(x >> 56);
    }
    uuid[15] = (uint8_t)i; /* distinct for i < 256 */
}

static mesh__slice_t s_sl(const char *s)
{
    return (mesh__slice_t){(const uint8_t *)s, strlen(s)};
}

/*  Member i offers T_PATH with the given tags (NULL-terminated, may be NULL). */
static mesh__member_t *s_member(s_fix_t *f, const char *const *tags, double load, int64_t now)
{
    cr_assert(f->n < T_MAX);
    uint8_t uuid[MESH_ZRE_UUID_SIZE];
    s_uuid(uuid, (uint32_t)f->n);
    char name[16];
    snprintf(name, sizeof name, "m%zu", f->n);
    mesh__member_t *m = mesh__routing_add(f->rt, uuid, name, false, now);
    cr_assert_not_null(m);
    mesh__svc_entry_t svc;
    memset(&svc, 0, sizeof svc);
    svc.path = s_sl(T_PATH);
    for (size_t k = 0; tags && tags[k]; k++) {
        svc.tags[svc.ntags++] = s_sl(tags[k]);
    }
    cr_assert_eq(mesh__routing_set_services(f->rt, m, 1, &svc, 1, NULL, 0, now), 0);
    mesh__routing_set_status(f->rt, m, load, NULL, 1, 0, now);
    f->m[f->n++] = m;
    return m;
}

static void s_build(s_fix_t *f, size_t n, const double *loads)
{
    memset(f, 0, sizeof *f);
    f->rt = mesh__routing_new(T_TIMEOUT, T_SEED);
    cr_assert_not_null(f->rt);
    for (size_t i = 0; i < n; i++) {
        s_member(f, NULL, loads ? loads[i] : 0.0, 0);
    }
}

static void s_teardown(s_fix_t *f)
{
    mesh__routing_destroy(&f->rt);
}

/*  Index of the chosen member, -1 for NULL. */
static int s_who(const s_fix_t *f, const mesh__route_t *r)
{
    if (!r) {
        return -1;
    }
    for (size_t i = 0; i < f->n; i++) {
        if (f->m[i] == r->member) {
            return (int)i;
        }
    }
    cr_assert_fail("route of an unknown member");
    return -2;
}

static int s_pick(s_fix_t *f, const mesh__select_t *sel, int64_t now)
{
    return s_who(f, mesh__select_one(f->rt, T_PATH, sel, now));
}

static int s_pick_kind(s_fix_t *f, mesh__sel_kind_t kind, int64_t now)
{
    mesh__select_t sel = {.kind = kind};
    return s_pick(f, &sel, now);
}

static int s_pick_key(s_fix_t *f, const char *key, int64_t now)
{
    mesh__select_t sel = {.kind = MESH_SEL_KEY, .key = key};
    return s_pick(f, &sel, now);
}

/*  Everyone but member `silent` is heard at `now`. */
static void s_hear_all_but(s_fix_t *f, size_t silent, int64_t now)
{
    for (size_t i = 0; i < f->n; i++) {
        if (i != silent) {
            mesh__routing_heard(f->rt, f->m[i], now);
        }
    }
}

static int s_first_cand(const mesh__candidate_t *cands, size_t n, const char *key, void *arg)
{
    return 0;
}

static const mesh__sel_kind_t s_kinds[] = {MESH_SEL_LEAST_LOADED, MESH_SEL_RANDOM,
                                           MESH_SEL_ROUND_ROBIN, MESH_SEL_KEY, MESH_SEL_CUSTOM};
#define S_NKINDS (sizeof s_kinds / sizeof s_kinds[0])

/* ------------------------------------------------------------------------ */
/* least loaded */

Test(least_loaded, picks_the_lowest_and_follows_status)
{
    s_fix_t f;
    double loads[] = {5, 3, 7, 1, 9};
    s_build(&f, 5, loads);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(s_pick_kind(&f, MESH_SEL_LEAST_LOADED, 0), 3);
    }
    mesh__routing_set_status(f.rt, f.m[0], 0.5, NULL, 1, 0, 0);
    cr_assert_eq(s_pick_kind(&f, MESH_SEL_LEAST_LOADED, 0), 0);
    mesh__routing_set_status(f.rt, f.m[0], 8, NULL, 1, 0, 0);
    mesh__routing_set_status(f.rt, f.m[3], 6, NULL, 1, 0, 0);
    cr_assert_eq(s_pick_kind(&f, MESH_SEL_LEAST_LOADED, 0), 1);
    s_teardown(&f);
}

Test(least_loaded, ties_spread_at_random)
{
    s_fix_t f;
    double loads[] = {2, 1, 3, 1, 1, 2, 1, 4};
    s_build(&f, 8, loads);
    int counts[8] = {0};
    for (int i = 0; i < 1000; i++) {
        int w = s_pick_kind(&f, MESH_SEL_LEAST_LOADED, 0);
        cr_assert(w >= 0);
        counts[w]++;
    }
    for (int i = 0; i < 8; i++) {
        if (loads[i] == 1) {
            cr_assert_geq(counts[i], 150, "tie member %d got %d of 1000", i, counts[i]);
        } else {
            cr_assert_eq(counts[i], 0, "member %d (load %g) chosen", i, loads[i]);
        }
    }
    s_teardown(&f);
}

Test(least_loaded, tie_with_a_silent_member_spreads_over_the_rest)
{
    s_fix_t f;
    double loads[] = {1, 1, 1, 1, 0};
    s_build(&f, 5, loads);
    /*  Member 4 (the lowest) and member 2 fall silent. */
    int64_t now = T_TIMEOUT + 1;
    for (size_t i = 0; i < 4; i++) {
        if (i != 2) {
            mesh__routing_heard(f.rt, f.m[i], now);
        }
    }
    int counts[5] = {0};
    for (int i = 0; i < 900; i++) {
        counts[s_pick_kind(&f, MESH_SEL_LEAST_LOADED, now)]++;
    }
    cr_assert_eq(counts[4] + counts[2], 0);
    for (int i = 0; i < 4; i++) {
        if (i != 2) {
            cr_assert_geq(counts[i], 200, "member %d got %d of 900", i, counts[i]);
        }
    }
    s_teardown(&f);
}

Test(least_loaded, matches_brute_force_under_status_churn)
{
    s_fix_t f;
    s_build(&f, 50, NULL);
    uint64_t x = 99;
    for (int op = 0; op < 2000; op++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t i = (size_t)(x % 50);
        mesh__routing_set_status(f.rt, f.m[i], (double)((x >> 16) % 20), NULL, 1, 0, 0);
        int w = s_pick_kind(&f, MESH_SEL_LEAST_LOADED, 0);
        cr_assert(w >= 0);
        double min = 1e300;
        for (size_t k = 0; k < 50; k++) {
            double l = mesh__member_load(f.m[k]);
            min = l < min ? l : min;
        }
        cr_assert_eq(mesh__member_load(f.m[w]), min, "op %d: picked load %g, min %g", op,
                     mesh__member_load(f.m[w]), min);
    }
    s_teardown(&f);
}

/* ------------------------------------------------------------------------ */
/* round robin, random */

Test(round_robin, each_exactly_once_per_round)
{
    s_fix_t f;
    double loads[] = {9, 1, 5, 1, 3, 7, 2};
    s_build(&f, 7, loads);
    for (int round = 0; round < 5; round++) {
        int seen[7] = {0};
        for (int i = 0; i < 7; i++) {
            int w = s_pick_kind(&f, MESH_SEL_ROUND_ROBIN, 0);
            cr_assert(w >= 0);
            seen[w]++;
        }
        for (int i = 0; i < 7; i++) {
            cr_assert_eq(seen[i], 1, "round %d: member %d chosen %d times", round, i, seen[i]);
        }
    }
    /*  One silent: rounds of six. */
    int64_t now = T_TIMEOUT + 1;
    s_hear_all_but(&f, 4, now);
    for (int round = 0; round < 3; round++) {
        int seen[7] = {0};
        for (int i = 0; i < 6; i++) {
            seen[s_pick_kind(&f, MESH_SEL_ROUND_ROBIN, now)]++;
        }
        for (int i = 0; i < 7; i++) {
            cr_assert_eq(seen[i], i == 4 ? 0 : 1, "round %d: member %d", round, i);
        }
    }
    s_teardown(&f);
}

Test(random, covers_every_candidate)
{
    s_fix_t f;
    double loads[] = {1, 2, 3, 4, 5};
    s_build(&f, 5, loads);
    int counts[5] = {0};
    for (int i = 0; i < 2000; i++) {
        counts[s_pick_kind(&f, MESH_SEL_RANDOM, 0)]++;
    }
    for (int i = 0; i < 5; i++) {
        cr_assert_geq(counts[i], 250, "member %d got %d of 2000", i, counts[i]);
    }
    s_teardown(&f);
}

/* ------------------------------------------------------------------------ */
/* a silent member */

Test(liveness, silent_member_leaves_every_decision_and_returns)
{
    s_fix_t f;
    double loads[] = {4, 3, 0, 2, 5};
    s_build(&f, 5, loads);
    const size_t silent = 2; /* the least loaded */
    int owners[200];
    char key[32];
    for (int k = 0; k < 200; k++) {
        snprintf(key, sizeof key, "key-%d", k);
        owners[k] = s_pick_key(&f, key, 0);
    }
    cr_assert_eq(s_pick_kind(&f, MESH_SEL_LEAST_LOADED, 0), (int)silent);

    int64_t now = T_TIMEOUT; /* at the timeout exactly: still alive */
    cr_assert_eq(s_pick_kind(&f, MESH_SEL_LEAST_LOADED, now), (int)silent);
    now = T_TIMEOUT + 1;
    s_hear_all_but(&f, silent, now);
    for (int i = 0; i < 200; i++) {
        for (size_t k = 0; k < S_NKINDS; k++) {
            char kk[32];
            snprintf(kk, sizeof kk, "key-%d", i);
            mesh__select_t sel = {.kind = s_kinds[k], .key = kk, .custom = s_first_cand};
            int w = s_pick(&f, &sel, now);
            cr_assert(w >= 0 && w != (int)silent, "kind %d chose %d", (int)s_kinds[k], w);
        }
    }
    cr_assert_eq(s_pick_kind(&f, MESH_SEL_LEAST_LOADED, now), 3, "next lowest");
    mesh__select_t direct = {.kind = MESH_SEL_DIRECT, .direct = mesh__member_uuid(f.m[silent])};
    cr_assert_eq(s_pick(&f, &direct, now), -1);
    const mesh__route_t *all[8];
    cr_assert_eq(mesh__select_all(f.rt, T_PATH, &direct, now, all, 8), 4);
    int moved = 0;
    for (int k = 0; k < 200; k++) {
        snprintf(key, sizeof key, "key-%d", k);
        int w = s_pick_key(&f, key, now);
        if (owners[k] != (int)silent) {
            cr_assert_eq(w, owners[k], "key %d moved though its owner is alive", k);
        } else {
            moved++;
        }
    }
    cr_assert_gt(moved, 0, "the silent member owned no key: the test proves nothing");

    /*  Heard again: back in every decision, with its keys. */
    mesh__routing_heard(f.rt, f.m[silent], now);
    cr_assert_eq(s_pick_kind(&f, MESH_SEL_LEAST_LOADED, now), (int)silent);
    cr_assert_eq(s_pick(&f, &direct, now), (int)silent);
    cr_assert_eq(mesh__select_all(f.rt, T_PATH, &direct, now, all, 8), 5);
    for (int k = 0; k < 200; k++) {
        snprintf(key, sizeof key, "key-%d", k);
        cr_assert_eq(s_pick_key(&f, key, now), owners[k], "key %d", k);
    }
    s_teardown(&f);
}

/* ------------------------------------------------------------------------ */
/* key */

#define K_KEYS 2000

Test(key, stable_and_minimal_movement)
{
    s_fix_t f;
    s_build(&f, 10, NULL);
    static int owners[K_KEYS];
    int per[10] = {0};
    char key[32];
    for (int k = 0; k < K_KEYS; k++) {
        snprintf(key, sizeof key, "user:%d", k);
        owners[k] = s_pick_key(&f, key, 0);
        cr_assert(owners[k] >= 0);
        per[owners[k]]++;
    }
    for (int i = 0; i < 10; i++) {
        /*  200 expected each; 128 virtual nodes keep it well inside. */
        cr_assert(per[i] >= 80 && per[i] <= 400, "member %d owns %d of %d keys", i, per[i], K_KEYS);
    }
    /*  Same key, same member, whatever the loads do. */
    mesh__routing_set_status(f.rt, f.m[0], 50, NULL, 1, 0, 0);
    for (int k = 0; k < K_KEYS; k++) {
        snprintf(key, sizeof key, "user:%d", k);
        cr_assert_eq(s_pick_key(&f, key, 0), owners[k]);
    }

    /*  Member 6 leaves: only its keys move, and they move to the others. */
    const int gone = 6;
    uint8_t u[16];
    s_uuid(u, (uint32_t)gone);
    mesh__routing_remove(f.rt, u);
    f.m[gone] = NULL;
    int moved = 0;
    for (int k = 0; k < K_KEYS; k++) {
        snprintf(key, sizeof key, "user:%d", k);
        int w = s_pick_key(&f, key, 0);
        cr_assert(w >= 0 && w != gone);
        if (owners[k] == gone) {
            moved++;
        } else {
            cr_assert_eq(w, owners[k], "key %d moved from member %d to %d", k, owners[k], w);
        }
        owners[k] = w;
    }
    cr_assert_eq(moved, per[gone]);

    /*  A member joins: the keys that move all move to it. */
    s_member(&f, NULL, 0, 0);
    int joined = (int)f.n - 1;
    int taken = 0;
    for (int k = 0; k < K_KEYS; k++) {
        snprintf(key, sizeof key, "user:%d", k);
        int w = s_pick_key(&f, key, 0);
        if (w != owners[k]) {
            cr_assert_eq(w, joined, "key %d moved from %d to %d, not to the new member", k,
                         owners[k], w);
            taken++;
        }
    }
    cr_assert(taken >= 80 && taken <= 400, "the new member took %d keys", taken);
    s_teardown(&f);
}

Test(key, order_of_arrival_does_not_matter)
{
    /*  Two tables learn the same members in opposite orders. */
    s_fix_t a, b;
    s_build(&a, 0, NULL);
    s_build(&b, 0, NULL);
    for (int i = 0; i < 8; i++) {
        s_member(&a, NULL, 0, 0);
    }
    b.n = 0;
    for (int i = 7; i >= 0; i--) {
        uint8_t u[16];
        s_uuid(u, (uint32_t)i);
        mesh__member_t *m = mesh__routing_add(b.rt, u, "x", false, 0);
        mesh__svc_entry_t svc;
        memset(&svc, 0, sizeof svc);
        svc.path = s_sl(T_PATH);
        cr_assert_eq(mesh__routing_set_services(b.rt, m, 1, &svc, 1, NULL, 0, 0), 0);
    }
    char key[32];
    for (int k = 0; k < 500; k++) {
        snprintf(key, sizeof key, "k%d", k);
        const mesh__route_t *ra =
            mesh__select_one(a.rt, T_PATH, &(mesh__select_t){.kind = MESH_SEL_KEY, .key = key}, 0);
        const mesh__route_t *rb =
            mesh__select_one(b.rt, T_PATH, &(mesh__select_t){.kind = MESH_SEL_KEY, .key = key}, 0);
        cr_assert(ra && rb);
        cr_assert_str_eq(mesh__member_uuid_str(ra->member), mesh__member_uuid_str(rb->member),
                         "key %s", key);
    }
    s_teardown(&a);
    s_teardown(&b);
}

/* ------------------------------------------------------------------------ */
/* direct, custom */

Test(direct, picks_the_named_member_only)
{
    s_fix_t f;
    double loads[] = {1, 9, 2};
    s_build(&f, 3, loads);
    mesh__select_t sel = {.kind = MESH_SEL_DIRECT, .direct = mesh__member_uuid(f.m[1])};
    cr_assert_eq(s_pick(&f, &sel, 0), 1, "the named member, loaded or not");
    uint8_t other[16];
    s_uuid(other, 200);
    sel.direct = other;
    cr_assert_eq(s_pick(&f, &sel, 0), -1, "unknown member");
    mesh__member_t *idle = mesh__routing_add(f.rt, other, "idle", false, 0);
    cr_assert_not_null(idle);
    cr_assert_eq(s_pick(&f, &sel, 0), -1, "a member that does not offer the path");
    sel.direct = NULL;
    cr_assert_eq(s_pick(&f, &sel, 0), -1);
    sel.direct = mesh__member_uuid(f.m[1]);
    const mesh__member_t *ex[] = {f.m[1]};
    sel.exclude = ex;
    sel.nexclude = 1;
    cr_assert_eq(s_pick(&f, &sel, 0), -1, "excluded");
    s_teardown(&f);
}

typedef struct {
    size_t n;
    const char *key;
    char ids[T_MAX][33];
    double loads[T_MAX];
    bool has_fitness[T_MAX];
    size_t ntags[T_MAX];
    int answer; /* -1: the highest fitness; else returned as is */
} s_custom_t;

static int s_custom(const mesh__candidate_t *cands, size_t n, const char *key, void *arg)
{
    s_custom_t *c = arg;
    c->n = n;
    c->key = key;
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        snprintf(c->ids[i], sizeof c->ids[i], "%s", cands[i].id);
        c->loads[i] = cands[i].load;
        c->has_fitness[i] = cands[i].has_fitness;
        c->ntags[i] = cands[i].ntags;
        if (cands[i].has_fitness && (best < 0 || cands[i].fitness > cands[best].fitness)) {
            best = (int)i;
        }
    }
    return c->answer == -1 ? best : c->answer;
}

Test(custom, sees_the_candidates_and_its_answer_is_used)
{
    s_fix_t f;
    double loads[] = {1, 2, 3, 4};
    s_build(&f, 4, loads);
    double fit[] = {0.1, 0.9, 0.5, 0.95};
    for (size_t i = 0; i < 3; i++) {
        mesh__routing_set_status(f.rt, f.m[i], loads[i], &fit[i], 1, i, 0);
    }
    /*  Member 3 has the best fitness but falls silent. */
    mesh__routing_set_status(f.rt, f.m[3], loads[3], &fit[3], 1, 3, 0);
    int64_t now = T_TIMEOUT + 1;
    s_hear_all_but(&f, 3, now);

    s_custom_t c = {.answer = -1};
    mesh__select_t sel = {
        .kind = MESH_SEL_CUSTOM, .key = "k1", .custom = s_custom, .custom_arg = &c};
    cr_assert_eq(s_pick(&f, &sel, now), 1, "highest fitness among the alive");
    cr_assert_eq(c.n, 3);
    cr_assert_str_eq(c.key, "k1");
    for (size_t i = 0; i < c.n; i++) {
        cr_assert(c.has_fitness[i]);
        cr_assert_eq(strlen(c.ids[i]), 32);
        bool found = false;
        for (size_t k = 0; k < 3; k++) {
            if (strcmp(c.ids[i], mesh__member_uuid_str(f.m[k])) == 0) {
                cr_assert_eq(c.loads[i], loads[k]);
                found = true;
            }
        }
        cr_assert(found, "candidate %s is not an alive member", c.ids[i]);
    }
    c.answer = 3;
    cr_assert_eq(s_pick(&f, &sel, now), -1, "index out of range");
    c.answer = -2;
    cr_assert_eq(s_pick(&f, &sel, now), -1, "negative index");
    sel.custom = NULL;
    cr_assert_eq(s_pick(&f, &sel, now), -1, "no callback");
    s_teardown(&f);
}

/* ------------------------------------------------------------------------ */
/* filters */

Test(filters, tags_for_every_kind)
{
    s_fix_t f;
    memset(&f, 0, sizeof f);
    f.rt = mesh__routing_new(T_TIMEOUT, T_SEED);
    const char *t0[] = {"zone=a", "gpu=1", NULL};
    const char *t1[] = {"zone=a", NULL};
    const char *t2[] = {"gpu=1", "zone=b", NULL};
    const char *t3[] = {"gpu=1", "zone=a", "ssd=1", NULL};
    s_member(&f, t0, 5, 0);
    s_member(&f, t1, 0, 0); /* least loaded, lacks gpu=1 */
    s_member(&f, t2, 1, 0);
    s_member(&f, t3, 6, 0);
    const char *want[] = {"zone=a", "gpu=1"};
    for (size_t k = 0; k < S_NKINDS; k++) {
        for (int i = 0; i < 50; i++) {
            char key[16];
            snprintf(key, sizeof key, "%d", i);
            mesh__select_t sel = {
                .kind = s_kinds[k], .key = key, .tags = want, .ntags = 2, .custom = s_first_cand};
            int w = s_pick(&f, &sel, 0);
            cr_assert(w == 0 || w == 3, "kind %d chose %d", (int)s_kinds[k], w);
        }
    }
    mesh__select_t ll = {.kind = MESH_SEL_LEAST_LOADED, .tags = want, .ntags = 2};
    cr_assert_eq(s_pick(&f, &ll, 0), 0, "least loaded among the tagged");
    mesh__select_t direct = {
        .kind = MESH_SEL_DIRECT, .direct = mesh__member_uuid(f.m[1]), .tags = want, .ntags = 2};
    cr_assert_eq(s_pick(&f, &direct, 0), -1);
    const mesh__route_t *all[8];
    cr_assert_eq(mesh__select_all(f.rt, T_PATH, &ll, 0, all, 8), 2);

    const char *none[] = {"zone=c"};
    for (size_t k = 0; k < S_NKINDS; k++) {
        mesh__select_t sel = {
            .kind = s_kinds[k], .key = "x", .tags = none, .ntags = 1, .custom = s_first_cand};
        cr_assert_eq(s_pick(&f, &sel, 0), -1, "kind %d", (int)s_kinds[k]);
    }
    const char *prefix_only[] = {"zone="};
    ll.tags = prefix_only;
    ll.ntags = 1;
    cr_assert_eq(s_pick(&f, &ll, 0), -1, "tags match whole");
    s_teardown(&f);
}

Test(filters, exclusion_for_every_kind)
{
    s_fix_t f;
    double loads[] = {3, 1, 2, 4};
    s_build(&f, 4, loads);
    const mesh__member_t *ex[] = {f.m[1], f.m[2]};
    for (size_t k = 0; k < S_NKINDS; k++) {
        for (int i = 0; i < 50; i++) {
            char key[16];
            snprintf(key, sizeof key, "%d", i);
            mesh__select_t sel = {.kind = s_kinds[k],
                                  .key = key,
                                  .exclude = ex,
                                  .nexclude = 2,
                                  .custom = s_first_cand};
            int w = s_pick(&f, &sel, 0);
            cr_assert(w == 0 || w == 3, "kind %d chose %d", (int)s_kinds[k], w);
        }
    }
    mesh__select_t ll = {.kind = MESH_SEL_LEAST_LOADED, .exclude = ex, .nexclude = 1};
    cr_assert_eq(s_pick(&f, &ll, 0), 2, "the next least loaded");
    const mesh__member_t *every[] = {f.m[0], f.m[1], f.m[2], f.m[3]};
    for (size_t k = 0; k < S_NKINDS; k++) {
        mesh__select_t sel = {.kind = s_kinds[k],
                              .key = "x",
                              .exclude = every,
                              .nexclude = 4,
                              .custom = s_first_cand};
        cr_assert_eq(s_pick(&f, &sel, 0), -1, "kind %d", (int)s_kinds[k]);
    }
    /*  A retry with KEY excluding the owner lands on one stable fallback. */
    int owner = s_pick_key(&f, "order-17", 0);
    const mesh__member_t *tried[] = {f.m[owner]};
    mesh__select_t retry = {
        .kind = MESH_SEL_KEY, .key = "order-17", .exclude = tried, .nexclude = 1};
    int second = s_pick(&f, &retry, 0);
    cr_assert(second >= 0 && second != owner);
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(s_pick(&f, &retry, 0), second);
    }
    s_teardown(&f);
}

/* ------------------------------------------------------------------------ */
/* all, names, edges */

Test(all, every_qualifying_route)
{
    s_fix_t f;
    s_build(&f, 6, NULL);
    mesh__select_t sel = {.kind = MESH_SEL_ALL};
    const mesh__route_t *out[8];
    cr_assert_eq(mesh__select_all(f.rt, T_PATH, &sel, 0, out, 8), 6);
    bool seen[6] = {false};
    for (int i = 0; i < 6; i++) {
        int w = s_who(&f, out[i]);
        cr_assert(w >= 0 && !seen[w]);
        seen[w] = true;
    }
    cr_assert_eq(mesh__select_all(f.rt, T_PATH, &sel, 0, out, 2), 6, "count past cap");
    cr_assert_eq(mesh__select_all(f.rt, "nope", &sel, 0, out, 8), 0);
    s_hear_all_but(&f, 0, T_TIMEOUT + 1);
    cr_assert_eq(mesh__select_all(f.rt, T_PATH, &sel, T_TIMEOUT + 1, out, 8), 5);
    s_teardown(&f);
}

Test(names, builtin_kinds)
{
    cr_assert_eq(mesh__select_kind_from_name("least_loaded"), MESH_SEL_LEAST_LOADED);
    cr_assert_eq(mesh__select_kind_from_name("random"), MESH_SEL_RANDOM);
    cr_assert_eq(mesh__select_kind_from_name("round_robin"), MESH_SEL_ROUND_ROBIN);
    cr_assert_eq(mesh__select_kind_from_name("all"), MESH_SEL_ALL);
    cr_assert_eq(mesh__select_kind_from_name("key"), MESH_SEL_KEY);
    cr_assert_eq(mesh__select_kind_from_name("direct"), MESH_SEL_DIRECT);
    cr_assert_eq(mesh__select_kind_from_name("custom"), -1);
    cr_assert_eq(mesh__select_kind_from_name("by_fitness"), -1);
    cr_assert_eq(mesh__select_kind_from_name("Random"), -1);
    cr_assert_eq(mesh__select_kind_from_name(""), -1);
    cr_assert_eq(mesh__select_kind_from_name(NULL), -1);
}

Test(edges, no_candidates)
{
    s_fix_t f;
    s_build(&f, 3, NULL);
    cr_assert_eq(s_pick_kind(&f, MESH_SEL_ALL, 0), -1, "ALL is for select_all");
    mesh__select_t sel = {.kind = MESH_SEL_LEAST_LOADED};
    cr_assert_null(mesh__select_one(f.rt, "unknown/path", &sel, 0));
    /*  Everyone silent. */
    for (size_t k = 0; k < S_NKINDS; k++) {
        mesh__select_t s = {.kind = s_kinds[k], .key = "k", .custom = s_first_cand};
        cr_assert_eq(s_pick(&f, &s, 10 * T_TIMEOUT), -1, "kind %d", (int)s_kinds[k]);
    }
    /*  Last provider gone: the path is gone with its selector state. */
    for (uint32_t i = 0; i < 3; i++) {
        uint8_t u[16];
        s_uuid(u, i);
        mesh__routing_remove(f.rt, u);
    }
    cr_assert_eq(s_pick_kind(&f, MESH_SEL_KEY, 0), -1);
    cr_assert_eq(s_pick_kind(&f, MESH_SEL_ROUND_ROBIN, 0), -1);
    s_teardown(&f);
}

Test(edges, self_always_a_candidate)
{
    s_fix_t f;
    s_build(&f, 2, NULL);
    uint8_t u[16];
    s_uuid(u, 2);
    mesh__member_t *self = mesh__routing_add(f.rt, u, "me", true, 0);
    f.m[f.n++] = self;
    mesh__svc_entry_t svc;
    memset(&svc, 0, sizeof svc);
    svc.path = s_sl(T_PATH);
    cr_assert_eq(mesh__routing_set_services(f.rt, self, 1, &svc, 1, NULL, 0, 0), 0);
    cr_assert_eq(s_pick_kind(&f, MESH_SEL_ROUND_ROBIN, 100 * T_TIMEOUT), 2);
    cr_assert_eq(s_pick_kind(&f, MESH_SEL_LEAST_LOADED, 100 * T_TIMEOUT), 2);
    s_teardown(&f);
}
