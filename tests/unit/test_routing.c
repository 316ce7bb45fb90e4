/*  test_routing.c: the routing table: members by UUID, liveness on a fake
    clock, services and the path index, subscriptions, limits, and the index
    and load orders checked against a brute-force model under churn. */
#include "routing.h"

#include <mesh/mesh.h>

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T_TIMEOUT 1000 /* ping timeout, ms */
#define T_SEED    42

/* ------------------------------------------------------------------------ */
/* helpers */

/*  A distinct, random-looking UUID for each i. */
static void s_uuid(uint8_t *uuid, uint32_t i)
{
    uint64_t x = i * 0x9e3779b97f4a7c15ULL + 7;
    for (size_t k = 0; k < MESH_ZRE_UUID_SIZE; k++) {
        x ^= x >> 29;
        x *= 0xbf58476d1ce4e5b9ULL;
        uuid[k] = (uint8_t)(x >> 56);
    }
    uuid[0] = (uint8_t)(i >> 24);
    uuid[1] = (uint8_t)(i >> 16);
    uuid[2] = (uint8_t)(i >> 8);
    uuid[3] = (uint8_t)i;
}

static mesh__member_t *s_add(mesh__routing_t *rt, uint32_t i, int64_t now)
{
    uint8_t uuid[MESH_ZRE_UUID_SIZE];
    s_uuid(uuid, i);
    char name[32];
    snprintf(name, sizeof name, "m%u", (unsigned)i);
    mesh__member_t *m = mesh__routing_add(rt, uuid, name, false, now);
    cr_assert_not_null(m);
    return m;
}

static mesh__slice_t s_sl(const char *s)
{
    return (mesh__slice_t){(const uint8_t *)s, strlen(s)};
}

/*  Offers the NULL-terminated list of paths, without tags or subscriptions. */
static int s_offer(mesh__routing_t *rt, mesh__member_t *m, uint64_t version, int64_t now, ...)
{
    mesh__svc_entry_t svcs[16];
    size_t n = 0;
    va_list ap;
    va_start(ap, now);
    for (const char *p = va_arg(ap, const char *); p; p = va_arg(ap, const char *)) {
        cr_assert(n < 16);
        memset(&svcs[n], 0, sizeof svcs[n]);
        svcs[n++].path = s_sl(p);
    }
    va_end(ap);
    return mesh__routing_set_services(rt, m, version, svcs, n, NULL, 0, now);
}

static bool s_routes_have(const mesh__routing_t *rt, const char *path, const mesh__member_t *m)
{
    size_t n;
    const mesh__route_t *r = mesh__routing_routes(rt, path, &n);
    for (size_t i = 0; i < n; i++) {
        if (r[i].member == m) {
            return true;
        }
    }
    return false;
}

static size_t s_route_count(const mesh__routing_t *rt, const char *path)
{
    size_t n = 12345;
    mesh__routing_routes(rt, path, &n);
    return n;
}

static bool s_has(mesh__member_t **v, size_t n, const mesh__member_t *m)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i] == m) {
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* members */

Test(members, add_find_remove_iterate)
{
    mesh__routing_t *rt = mesh__routing_new(T_TIMEOUT, T_SEED);
    cr_assert_not_null(rt);
    uint8_t u0[16], u1[16], u2[16];
    s_uuid(u0, 0);
    s_uuid(u1, 1);
    s_uuid(u2, 2);
    mesh__member_t *self = mesh__routing_add(rt, u0, "me", true, 0);
    mesh__member_t *a = mesh__routing_add(rt, u1, "alpha", false, 0);
    mesh__member_t *b = mesh__routing_add(rt, u2, "beta", false, 0);
    cr_assert(self && a && b && a != b);
    cr_assert_eq(mesh__routing_count(rt), 3);
    cr_assert_eq(mesh__routing_add(rt, u1, "other", false, 5), a, "known UUID: same member");
    cr_assert_eq(mesh__routing_count(rt), 3);
    cr_assert_str_eq(mesh__member_name(a), "alpha");
    cr_assert(mesh__member_is_self(self));
    cr_assert_not(mesh__member_is_self(a));
    cr_assert_eq(mesh__routing_find(rt, u2), b);
    cr_assert_eq(memcmp(mesh__member_uuid(b), u2, 16), 0);

    char hex[33];
    for (size_t i = 0; i < 16; i++) {
        snprintf(hex + 2 * i, 3, "%02X", u1[i]);
    }
    cr_assert_str_eq(mesh__member_uuid_str(a), hex);
    cr_assert_eq(strlen(mesh__member_uuid_str(a)), 32);

    mesh__routing_remove(rt, u1);
    cr_assert_null(mesh__routing_find(rt, u1));
    cr_assert_eq(mesh__routing_count(rt), 2);
    mesh__routing_remove(rt, u1); /* unknown now: no effect */
    cr_assert_eq(mesh__routing_count(rt), 2);

    size_t pos = 0;
    mesh__member_t *seen[3];
    size_t n = 0;
    for (mesh__member_t *m; (m = mesh__routing_next(rt, &pos));) {
        cr_assert(n < 3);
        seen[n++] = m;
    }
    cr_assert_eq(n, 2);
    cr_assert(s_has(seen, n, self) && s_has(seen, n, b));
    mesh__routing_destroy(&rt);
    cr_assert_null(rt);
    mesh__routing_destroy(&rt); /* NULL is fine */
}

Test(members, many_added_and_half_removed)
{
    enum { N = 3000 };
    mesh__routing_t *rt = mesh__routing_new(T_TIMEOUT, T_SEED);
    mesh__member_t **ms = calloc(N, sizeof *ms);
    for (uint32_t i = 0; i < N; i++) {
        ms[i] = s_add(rt, i, 0);
    }
    uint8_t u[16];
    for (uint32_t i = 0; i < N; i += 2) {
        s_uuid(u, i);
        mesh__routing_remove(rt, u);
    }
    cr_assert_eq(mesh__routing_count(rt), N / 2);
    for (uint32_t i = 0; i < N; i++) {
        s_uuid(u, i);
        mesh__member_t *m = mesh__routing_find(rt, u);
        if (i % 2) {
            cr_assert_eq(m, ms[i], "member %u lost", (unsigned)i);
        } else {
            cr_assert_null(m, "member %u still found", (unsigned)i);
        }
    }
    free(ms);
    mesh__routing_destroy(&rt);
}

Test(members, name_over_limit_refused)
{
    mesh__routing_t *rt = mesh__routing_new(T_TIMEOUT, T_SEED);
    char name[MESH_ZRE_STRING_MAX + 2];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    uint8_t u[16];
    s_uuid(u, 1);
    cr_assert_null(mesh__routing_add(rt, u, name, false, 0));
    cr_assert_eq(mesh__routing_count(rt), 0);
    name[MESH_ZRE_STRING_MAX] = '\0';
    cr_assert_not_null(mesh__routing_add(rt, u, name, false, 0));
    mesh__routing_destroy(&rt);
}

/* ------------------------------------------------------------------------ */
/* liveness */

Test(liveness, timeout_boundary_and_refresh)
{
    mesh__routing_t *rt = mesh__routing_new(T_TIMEOUT, T_SEED);
    mesh__member_t *m = s_add(rt, 1, 100);
    uint8_t u[16];
    s_uuid(u, 2);
    mesh__member_t *self = mesh__routing_add(rt, u, "me", true, 100);
    cr_assert(mesh__member_alive(rt, m, 100));
    cr_assert(mesh__member_alive(rt, m, 100 + T_TIMEOUT));
    cr_assert_not(mesh__member_alive(rt, m, 100 + T_TIMEOUT + 1));
    cr_assert(mesh__member_alive(rt, self, 100 + 100 * T_TIMEOUT), "self is always alive");

    mesh__routing_heard(rt, m, 1500);
    cr_assert_eq(mesh__member_last_heard(m), 1500);
    cr_assert(mesh__member_alive(rt, m, 1500 + T_TIMEOUT));
    cr_assert_not(mesh__member_alive(rt, m, 1500 + T_TIMEOUT + 1));

    mesh__routing_set_status(rt, m, 0.5, NULL, 0, 0, 4000);
    cr_assert(mesh__member_alive(rt, m, 4000 + T_TIMEOUT), "a STATUS is hearing from it");
    cr_assert_eq(s_offer(rt, m, 1, 7000, "svc", NULL), 0);
    cr_assert(mesh__member_alive(rt, m, 7000 + T_TIMEOUT), "so is a SERVICES");
    cr_assert_not(mesh__member_alive(rt, m, 7000 + T_TIMEOUT + 1));
    mesh__routing_destroy(&rt);
}

/* ------------------------------------------------------------------------ */
/* services and the path index */

Test(services, index_by_path)
{
    mesh__routing_t *rt = mesh__routing_new(T_TIMEOUT, T_SEED);
    mesh__member_t *a = s_add(rt, 1, 0);
    mesh__member_t *b = s_add(rt, 2, 0);
    cr_assert_eq(s_offer(rt, a, 1, 0, "svc/a", "svc/b", NULL), 0);
    cr_assert_eq(s_offer(rt, b, 1, 0, "svc/b", "svc/c", NULL), 0);
    cr_assert_eq(s_route_count(rt, "svc/a"), 1);
    cr_assert(s_routes_have(rt, "svc/a", a));
    cr_assert_eq(s_route_count(rt, "svc/b"), 2);
    cr_assert(s_routes_have(rt, "svc/b", a) && s_routes_have(rt, "svc/b", b));
    cr_assert_eq(s_route_count(rt, "svc/c"), 1);
    cr_assert(s_routes_have(rt, "svc/c", b));
    cr_assert_eq(s_route_count(rt, "svc/d"), 0);
    cr_assert_null(mesh__routing_routes(rt, "svc/d", NULL));
    cr_assert_eq(s_route_count(rt, "svc"), 0, "no prefix matching on paths");
    cr_assert_eq(mesh__member_service_count(a), 2);
    cr_assert_str_eq(mesh__member_service_at(a, 1, NULL, NULL), "svc/b");
    cr_assert_null(mesh__member_service_at(a, 2, NULL, NULL));

    uint8_t u[16];
    s_uuid(u, 2);
    mesh__routing_remove(rt, u);
    cr_assert_eq(s_route_count(rt, "svc/b"), 1);
    cr_assert(s_routes_have(rt, "svc/b", a));
    cr_assert_eq(s_route_count(rt, "svc/c"), 0, "last provider gone: path gone");
    mesh__routing_destroy(&rt);
}

Test(services, dropped_service_leaves_index)
{
    mesh__routing_t *rt = mesh__routing_new(T_TIMEOUT, T_SEED);
    mesh__member_t *a = s_add(rt, 1, 0);
    mesh__member_t *b = s_add(rt, 2, 0);
    cr_assert_eq(s_offer(rt, a, 1, 0, "x", "y", "z", NULL), 0);
    cr_assert_eq(s_offer(rt, b, 1, 0, "y", NULL), 0);
    cr_assert_eq(s_offer(rt, a, 2, 0, "z", "w", NULL), 0);
    cr_assert_eq(s_route_count(rt, "x"), 0);
    cr_assert_eq(s_route_count(rt, "y"), 1);
    cr_assert(s_routes_have(rt, "y", b));
    cr_assert_not(s_routes_have(rt, "y", a));
    cr_assert(s_routes_have(rt, "z", a));
    cr_assert(s_routes_have(rt, "w", a));
    cr_assert_eq(mesh__member_service_count(a), 2);
    cr_assert_eq(mesh__member_services_version(a), 2);
    /*  An empty list withdraws everything. */
    cr_assert_eq(mesh__routing_set_services(rt, a, 3, NULL, 0, NULL, 0, 0), 0);
    cr_assert_eq(s_route_count(rt, "z"), 0);
    cr_assert_eq(s_route_count(rt, "w"), 0);
    cr_assert_eq(s_route_count(rt, "y"), 1);
    mesh__routing_destroy(&rt);
}

Test(services, older_version_ignored_equal_reapplied)
{
    mesh__routing_t *rt = mesh__routing_new(T_TIMEOUT, T_SEED);
    mesh__member_t *a = s_add(rt, 1, 0);
    cr_assert_eq(s_offer(rt, a, 5, 0, "new", NULL), 0);
    cr_assert_eq(s_offer(rt, a, 4, 0, "old", NULL), 0, "older: ignored, not an error");
    cr_assert_eq(s_route_count(rt, "old"), 0);
    cr_assert(s_routes_have(rt, "new", a));
    cr_assert_eq(mesh__member_services_version(a), 5);
    cr_assert_eq(s_offer(rt, a, 5, 0, "again", NULL), 0);
    cr_assert_eq(s_route_count(rt, "new"), 0, "equal version re-applies");
    cr_assert(s_routes_have(rt, "again", a));
    cr_assert_eq(s_offer(rt, a, 6, 0, "newer", NULL), 0);
    cr_assert(s_routes_have(rt, "newer", a));
    cr_assert_eq(mesh__member_services_version(a), 6);
    mesh__routing_destroy(&rt);
}

Test(services, tags_copied_and_duplicates_once)
{
    mesh__routing_t *rt = mesh__routing_new(T_TIMEOUT, T_SEED);
    mesh__member_t *a = s_add(rt, 1, 0);
    char path[] = "svc/p";
    char t0[] = "zone=a";
    char t1[] = "gpu=1";
    mesh__svc_entry_t svcs[2];
    memset(svcs, 0, sizeof svcs);
    svcs[0].path = s_sl(path);
    svcs[0].ntags = 2;
    svcs[0].tags[0] = s_sl(t0);
    svcs[0].tags[1] = s_sl(t1);
    svcs[1].path = s_sl(path); /* listed twice: one route */
    cr_assert_eq(mesh__routing_set_services(rt, a, 1, svcs, 2, NULL, 0, 0), 0);
    memset(path, 'X', strlen(path));
    memset(t0, 'X', strlen(t0));
    memset(t1, 'X', strlen(t1));
    size_t n;
    const mesh__route_t *r = mesh__routing_routes(rt, "svc/p", &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(r[0].member, a);
    cr_assert_eq(r[0].ntags, 2);
    cr_assert_str_eq(r[0].tags[0], "zone=a");
    cr_assert_str_eq(r[0].tags[1], "gpu=1");
    const char *const *tags;
    size_t ntags;
    cr_assert_str_eq(mesh__member_service_at(a, 0, &tags, &ntags), "svc/p");
    cr_assert_eq(ntags, 2);
    cr_assert_str_eq(tags[1], "gpu=1");
    mesh__routing_destroy(&rt);
}

Test(services, tags_follow_a_reapplied_list)
{
    mesh__routing_t *rt = mesh__routing_new(T_TIMEOUT, T_SEED);
    mesh__member_t *a = s_add(rt, 1, 0);
    mesh__svc_entry_t svc;
    memset(&svc, 0, sizeof svc);
    svc.path = s_sl("p");
    svc.ntags = 1;
    svc.tags[0] = s_sl("v=1");
    cr_assert_eq(mesh__routing_set_services(rt, a, 1, &svc, 1, NULL, 0, 0), 0);
    svc.tags[0] = s_sl("v=2");
    cr_assert_eq(mesh__routing_set_services(rt, a, 2, &svc, 1, NULL, 0, 0), 0);
    size_t n;
    const mesh__route_t *r = mesh__routing_routes(rt, "p", &n);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(r[0].tags[0], "v=2");
    mesh__routing_destroy(&rt);
}

Test(services, inactive_not_routed)
{
    mesh__routing_t *rt = mesh__routing_new(T_TIMEOUT, T_SEED);
    mesh__member_t *a = s_add(rt, 1, 0);
    mesh__svc_entry_t svcs[2];
    memset(svcs, 0, sizeof svcs);
    svcs[0].path = s_sl("on");
    svcs[1].path = s_sl("off");
    svcs[1].flags = MESH_SVC_INACTIVE;
    cr_assert_eq(mesh__routing_set_services(rt, a, 1, svcs, 2, NULL, 0, 0), 0);
    cr_assert(s_routes_have(rt, "on", a));
    cr_assert_eq(s_route_count(rt, "off"), 0);
    cr_assert_eq(mesh__member_service_count(a), 2, "still listed as advertised");
    svcs[1].flags = 0;
    cr_assert_eq(mesh__routing_set_services(rt, a, 2, svcs, 2, NULL, 0, 0), 0);
    cr_assert(s_routes_have(rt, "off", a), "active again: routed");
    mesh__routing_destroy(&rt);
}

/* ------------------------------------------------------------------------ */
/* limits */

typedef struct {
    const char *what;
    int expect;
} s_case_t;

/*  Applies a bad list and checks the member kept its version-1 state. */
static void s_refused(mesh__routing_t *rt, mesh__member_t *a, const mesh__svc_entry_t *svcs,
                      size_t nsvcs, const mesh__sub_entry_t *subs, size_t nsubs, s_case_t c)
{
    int rc = mesh__routing_set_services(rt, a, 2, svcs, nsvcs, subs, nsubs, 0);
    cr_assert_eq(rc, c.expect, "%s: rc %d, expected %d", c.what, rc, c.expect);
    cr_assert_eq(mesh__member_services_version(a), 1, "%s: version moved", c.what);
    cr_assert_eq(mesh__member_service_count(a), 1, "%s: services changed", c.what);
    cr_assert_str_eq(mesh__member_service_at(a, 0, NULL, NULL), "keep", "%s", c.what);
    cr_assert(s_routes_have(rt, "keep", a), "%s: route lost", c.what);
    cr_assert_eq(s_route_count(rt, "ok"), 0, "%s: partly applied", c.what);
    mesh__member_t *out[4];
    cr_assert_eq(mesh__routing_subscribers(rt, "topic", 0, out, 4), 1, "%s: subs changed", c.what);
}

Test(limits, refused_and_member_unchanged)
{
    mesh__routing_t *rt = mesh__routing_new(T_TIMEOUT, T_SEED);
    mesh__member_t *a = s_add(rt, 1, 0);
    mesh__svc_entry_t keep;
    memset(&keep, 0, sizeof keep);
    keep.path = s_sl("keep");
    mesh__sub_entry_t keep_sub = {s_sl("topic"), false};
    cr_assert_eq(mesh__routing_set_services(rt, a, 1, &keep, 1, &keep_sub, 1, 0), 0);

    static char big[MESH_CODEC_PATH_MAX + 2];
    memset(big, 'p', sizeof big - 1);
    mesh__slice_t too_long = {(const uint8_t *)big, MESH_CODEC_PATH_MAX + 1};
    mesh__slice_t max_len = {(const uint8_t *)big, MESH_CODEC_PATH_MAX};

    mesh__svc_entry_t *svcs = calloc(MESH_CODEC_SERVICES_MAX + 1, sizeof *svcs);
    for (size_t i = 0; i <= MESH_CODEC_SERVICES_MAX; i++) {
        svcs[i].path = s_sl("ok");
    }
    mesh__sub_entry_t *subs = calloc(MESH_CODEC_SUBS_MAX + 1, sizeof *subs);
    for (size_t i = 0; i <= MESH_CODEC_SUBS_MAX; i++) {
        subs[i].pattern = s_sl("t");
    }

    /*  The bad entry comes second, after a good one, so nothing may be applied
        half-way. */
    svcs[1].path = too_long;
    s_refused(rt, a, svcs, 2, NULL, 0, (s_case_t){"path too long", MESH_ERR_TOOLONG});
    svcs[1].path = s_sl("");
    s_refused(rt, a, svcs, 2, NULL, 0, (s_case_t){"empty path", MESH_ERR_INVAL});
    svcs[1].path = (mesh__slice_t){(const uint8_t *)"a\0b", 3};
    s_refused(rt, a, svcs, 2, NULL, 0, (s_case_t){"NUL in path", MESH_ERR_INVAL});
    svcs[1].path = (mesh__slice_t){NULL, 3};
    s_refused(rt, a, svcs, 2, NULL, 0, (s_case_t){"NULL path bytes", MESH_ERR_INVAL});
    svcs[1].path = s_sl("ok");
    svcs[1].ntags = MESH_CODEC_TAGS_MAX + 1;
    s_refused(rt, a, svcs, 2, NULL, 0, (s_case_t){"too many tags", MESH_ERR_TOOLONG});
    svcs[1].ntags = 1;
    svcs[1].tags[0] = (mesh__slice_t){(const uint8_t *)big, MESH_CODEC_TAG_MAX + 1};
    s_refused(rt, a, svcs, 2, NULL, 0, (s_case_t){"tag too long", MESH_ERR_TOOLONG});
    svcs[1].ntags = 0;
    s_refused(rt, a, svcs, MESH_CODEC_SERVICES_MAX + 1, NULL, 0,
              (s_case_t){"too many services", MESH_ERR_TOOLONG});
    s_refused(rt, a, svcs, 1, subs, MESH_CODEC_SUBS_MAX + 1,
              (s_case_t){"too many subscriptions", MESH_ERR_TOOLONG});
    subs[1].pattern = too_long;
    s_refused(rt, a, svcs, 1, subs, 2, (s_case_t){"pattern too long", MESH_ERR_TOOLONG});
    subs[1].pattern = s_sl("");
    s_refused(rt, a, svcs, 1, subs, 2, (s_case_t){"empty exact pattern", MESH_ERR_INVAL});
    s_refused(rt, a, NULL, 1, NULL, 0, (s_case_t){"NULL list", MESH_ERR_INVAL});

    /*  At the limits exactly: accepted. */
    svcs[0].path = max_len;
    svcs[0].ntags = MESH_CODEC_TAGS_MAX;
    for (size_t k = 0; k < MESH_CODEC_TAGS_MAX; k++) {
        svcs[0].tags[k] = (mesh__slice_t){(const uint8_t *)big, MESH_CODEC_TAG_MAX};
    }
    subs[1].pattern = max_len;
    subs[2].pattern = s_sl("");
    subs[2].prefix = true; /* an empty prefix matches every topic */
    cr_assert_eq(mesh__routing_set_services(rt, a, 2, svcs, MESH_CODEC_SERVICES_MAX, subs,
                                            MESH_CODEC_SUBS_MAX, 0),
                 0);
    char path[MESH_CODEC_PATH_MAX + 1];
    memcpy(path, big, MESH_CODEC_PATH_MAX);
    path[MESH_CODEC_PATH_MAX] = '\0';
    cr_assert(s_routes_have(rt, path, a));
    cr_assert(s_routes_have(rt, "ok", a));
    cr_assert_eq(s_route_count(rt, "ok"), 1, "listed 1023 times, one route");
    cr_assert_eq(mesh__member_service_count(a), MESH_CODEC_SERVICES_MAX);
    free(svcs);
    free(subs);
    mesh__routing_destroy(&rt);
}

/* ------------------------------------------------------------------------ */
/* subscriptions */

static void s_subscribe(mesh__routing_t *rt, mesh__member_t *m, uint64_t version,
                        const mesh__sub_entry_t *subs, size_t n)
{
    cr_assert_eq(mesh__routing_set_services(rt, m, version, NULL, 0, subs, n, 0), 0);
}

Test(subscribers, exact_vs_prefix)
{
    mesh__routing_t *rt = mesh__routing_new(T_TIMEOUT, T_SEED);
    mesh__member_t *a = s_add(rt, 1, 0);
    mesh__member_t *b = s_add(rt, 2, 0);
    mesh__member_t *c = s_add(rt, 3, 0);
    mesh__member_t *d = s_add(rt, 4, 0);
    mesh__sub_entry_t sa[] = {{s_sl("news.sport"), false}};
    mesh__sub_entry_t sb[] = {{s_sl("news."), true}};
    mesh__sub_entry_t sc[] = {{s_sl("news"), false}, {s_sl("news"), false}};
    mesh__sub_entry_t sd[] = {
        {s_sl("news.sport"), true}, {s_sl("news.sport"), false}, {s_sl("news.s"), true}};
    s_subscribe(rt, a, 1, sa, 1);
    s_subscribe(rt, b, 1, sb, 1);
    s_subscribe(rt, c, 1, sc, 2);
    s_subscribe(rt, d, 1, sd, 3);

    mesh__member_t *out[8];
    size_t n = mesh__routing_subscribers(rt, "news.sport", 0, out, 8);
    cr_assert_eq(n, 3, "a (exact), b (prefix), d (once, though it matches three ways)");
    cr_assert(s_has(out, n, a) && s_has(out, n, b) && s_has(out, n, d));

    n = mesh__routing_subscribers(rt, "news.sport.tennis", 0, out, 8);
    cr_assert_eq(n, 2, "b and d by prefix; not a (exact only)");
    cr_assert(s_has(out, n, b) && s_has(out, n, d));

    n = mesh__routing_subscribers(rt, "news", 0, out, 8);
    cr_assert_eq(n, 1, "c once; 'news.' does not match 'news'");
    cr_assert_eq(out[0], c);

    cr_assert_eq(mesh__routing_subscribers(rt, "new", 0, out, 8), 0);
    cr_assert_eq(mesh__routing_subscribers(rt, "weather", 0, out, 8), 0);

    /*  Fewer slots than subscribers: the count is still the full count. */
    cr_assert_eq(mesh__routing_subscribers(rt, "news.sport", 0, out, 1), 3);
    cr_assert_eq(mesh__routing_subscribers(rt, "news.sport", 0, NULL, 0), 3);
    mesh__routing_destroy(&rt);
}

Test(subscribers, alive_only_updated_and_removed)
{
    mesh__routing_t *rt = mesh__routing_new(T_TIMEOUT, T_SEED);
    mesh__member_t *a = s_add(rt, 1, 0);
    mesh__member_t *b = s_add(rt, 2, 0);
    mesh__sub_entry_t s1[] = {{s_sl("t"), false}};
    mesh__sub_entry_t s2[] = {{s_sl("u"), false}, {s_sl("v"), true}};
    s_subscribe(rt, a, 1, s1, 1);
    s_subscribe(rt, b, 1, s1, 1);
    mesh__member_t *out[4];
    cr_assert_eq(mesh__routing_subscribers(rt, "t", 0, out, 4), 2);

    /*  b silent: not a subscriber until heard again. */
    mesh__routing_heard(rt, a, 2 * T_TIMEOUT);
    cr_assert_eq(mesh__routing_subscribers(rt, "t", 2 * T_TIMEOUT, out, 4), 1);
    cr_assert_eq(out[0], a);
    mesh__routing_heard(rt, b, 2 * T_TIMEOUT);
    cr_assert_eq(mesh__routing_subscribers(rt, "t", 2 * T_TIMEOUT, out, 4), 2);

    /*  a changes its subscriptions: old topic dropped, new ones in. */
    s_subscribe(rt, a, 2, s2, 2);
    cr_assert_eq(mesh__routing_subscribers(rt, "t", 2 * T_TIMEOUT, out, 4), 1);
    cr_assert_eq(out[0], b);
    cr_assert_eq(mesh__routing_subscribers(rt, "u", 2 * T_TIMEOUT, out, 4), 1);
    cr_assert_eq(mesh__routing_subscribers(rt, "vx", 2 * T_TIMEOUT, out, 4), 1);
    cr_assert_eq(out[0], a);

    /*  Prefix subscription withdrawn. */
    s_subscribe(rt, a, 3, s1, 1);
    cr_assert_eq(mesh__routing_subscribers(rt, "vx", 2 * T_TIMEOUT, out, 4), 0);
    cr_assert_eq(mesh__routing_subscribers(rt, "t", 2 * T_TIMEOUT, out, 4), 2);

    uint8_t u[16];
    s_uuid(u, 2);
    mesh__routing_remove(rt, u);
    cr_assert_eq(mesh__routing_subscribers(rt, "t", 2 * T_TIMEOUT, out, 4), 1);
    cr_assert_eq(out[0], a);
    mesh__routing_destroy(&rt);
}

/* ------------------------------------------------------------------------ */
/* status */

Test(status, fields_and_versions)
{
    mesh__routing_t *rt = mesh__routing_new(T_TIMEOUT, T_SEED);
    mesh__member_t *a = s_add(rt, 1, 0);
    double fit = 0.75;
    cr_assert_eq(s_offer(rt, a, 3, 0, "p", NULL), 0);
    mesh__routing_set_status(rt, a, 2.5, &fit, 9, 17, 10);
    cr_assert_eq(mesh__member_load(a), 2.5);
    double got = 0;
    cr_assert(mesh__member_fitness(a, &got));
    cr_assert_eq(got, 0.75);
    cr_assert_eq(mesh__member_inflight(a), 17);
    cr_assert_eq(mesh__member_services_version(a), 3,
                 "the version of the services held, not the one a STATUS announces");
    mesh__routing_set_status(rt, a, 1.0, NULL, 9, 0, 20);
    cr_assert_not(mesh__member_fitness(a, &got));
    cr_assert_eq(mesh__member_last_heard(a), 20);
    mesh__routing_destroy(&rt);
}

/* ------------------------------------------------------------------------ */
/* the index and the load orders against a brute-force model */

#define C_MEMBERS 48
#define C_PATHS   10
#define C_OPS     4000

static const char *s_cpath(size_t i)
{
    static const char *paths[C_PATHS] = {"p0", "p1", "p2", "p3", "p4",
                                         "p5", "p6", "p7", "p8", "p9"};
    return paths[i];
}

static void s_check_model(mesh__routing_t *rt, mesh__member_t **ms, uint32_t *offers, size_t op)
{
    for (size_t p = 0; p < C_PATHS; p++) {
        size_t expect = 0;
        for (size_t i = 0; i < C_MEMBERS; i++) {
            if (ms[i] && (offers[i] >> p & 1)) {
                expect++;
                cr_assert(s_routes_have(rt, s_cpath(p), ms[i]), "op %zu: %zu missing from %s", op,
                          i, s_cpath(p));
            }
        }
        mesh__path_state_t ps;
        if (expect == 0) {
            cr_assert_not(mesh__routing_path_state(rt, s_cpath(p), &ps), "op %zu", op);
            continue;
        }
        cr_assert(mesh__routing_path_state(rt, s_cpath(p), &ps));
        cr_assert_eq(ps.n, expect, "op %zu: %s has %zu routes, expected %zu", op, s_cpath(p), ps.n,
                     expect);
        bool seen[C_MEMBERS * 2] = {false};
        for (size_t k = 0; k < ps.n; k++) {
            uint32_t ri = ps.by_load[k];
            cr_assert(ri < ps.n && !seen[ri], "op %zu: by_load not a permutation", op);
            seen[ri] = true;
            cr_assert_eq(ps.loads[k], mesh__member_load(ps.routes[ri].member), "op %zu", op);
            if (k > 0) {
                cr_assert(ps.loads[k - 1] <= ps.loads[k], "op %zu: loads not sorted", op);
            }
        }
    }
}

Test(index, consistent_under_churn)
{
    mesh__routing_t *rt = mesh__routing_new(T_TIMEOUT, T_SEED);
    mesh__member_t *ms[C_MEMBERS] = {NULL};
    uint32_t offers[C_MEMBERS] = {0};
    uint64_t versions[C_MEMBERS] = {0};
    uint64_t x = 12345;
    for (size_t op = 0; op < C_OPS; op++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t i = (size_t)(x % C_MEMBERS);
        unsigned what = (unsigned)((x >> 20) % 10);
        if (!ms[i]) {
            ms[i] = s_add(rt, (uint32_t)i, 0);
            offers[i] = 0;
            versions[i] = 0;
        } else if (what == 0) {
            uint8_t u[16];
            s_uuid(u, (uint32_t)i);
            mesh__routing_remove(rt, u);
            ms[i] = NULL;
        } else if (what < 5) {
            uint32_t set = (uint32_t)(x >> 32) & ((1u << C_PATHS) - 1);
            mesh__svc_entry_t svcs[C_PATHS];
            size_t n = 0;
            for (size_t p = 0; p < C_PATHS; p++) {
                if (set >> p & 1) {
                    memset(&svcs[n], 0, sizeof svcs[n]);
                    svcs[n++].path = s_sl(s_cpath(p));
                }
            }
            bool older = what == 4 && versions[i] > 0;
            uint64_t v = older ? versions[i] - 1 : versions[i] + 1;
            cr_assert_eq(mesh__routing_set_services(rt, ms[i], v, svcs, n, NULL, 0, 0), 0);
            if (!older) {
                offers[i] = set;
                versions[i] = v;
            }
        } else {
            double load = (double)((x >> 40) % 8); /* few values: many ties */
            mesh__routing_set_status(rt, ms[i], load, NULL, 0, 0, 0);
        }
        s_check_model(rt, ms, offers, op);
    }
    mesh__routing_destroy(&rt); /* with members left: LSan checks it all goes */
}
