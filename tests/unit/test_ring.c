/*  test_ring.c: the cluster ring. Identical rings from identical membership
    whatever the order, digests that tell memberships apart, owner and
    distinct replicas in clockwise order (checked against a brute-force
    reading of the placement rules in ring.h), balance, minimal movement on a
    join and a leave, and keys of a departed owner going to their first
    replica. */
#include "ring.h"

#include <mesh/mesh.h>

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define T_UUID    MESH_ZRE_UUID_SIZE
#define T_MAX     128
#define T_KEYS    100000
#define T_REPL    3
#define T_KEY_MAX 32

typedef uint8_t t_uuid_t[T_UUID];

/*  A UUID made from i: pseudo-random bytes, distinct for distinct i. */
static void s_uuid(uint8_t *uuid, uint32_t i)
{
    uint64_t x = i * 0x9e3779b97f4a7c15ULL + 0x1234567;
    for (size_t k = 0; k < T_UUID; k++) {
        x ^= x >> 29;
        x *= 0xbf58476d1ce4e5b9ULL;
        x ^= x >> 32;
        uuid[k] = (uint8_t)(x >> 56);
    }
    memcpy(uuid + T_UUID - sizeof i, &i, sizeof i);
}

static void s_uuids(t_uuid_t *out, size_t n, uint32_t first)
{
    for (size_t i = 0; i < n; i++) {
        s_uuid(out[i], first + (uint32_t)i);
    }
}

static size_t s_key(char *buf, size_t i)
{
    return (size_t)snprintf(buf, T_KEY_MAX, "task:%zu", i);
}

static mesh__ring_t *s_ring(unsigned vnodes, t_uuid_t *uuids, size_t n)
{
    mesh__ring_t *ring = mesh__ring_new(vnodes);
    cr_assert_not_null(ring);
    cr_assert_eq(mesh__ring_set_members(ring, (const uint8_t(*)[T_UUID])uuids, n), 0);
    return ring;
}

/*  The owner of key i, as a UUID (into uuid). */
static void s_owner(const mesh__ring_t *ring, size_t i, uint8_t *uuid)
{
    char key[T_KEY_MAX];
    uint32_t out[1];
    size_t n = 0;
    cr_assert_eq(mesh__ring_lookup(ring, key, s_key(key, i), 1, out, &n), 0);
    cr_assert_eq(n, 1);
    memcpy(uuid, mesh__ring_member(ring, out[0]), T_UUID);
}

/*  The owner and replicas of key i as UUIDs; returns how many. */
static size_t s_replicas(const mesh__ring_t *ring, size_t i, size_t r, t_uuid_t *uuids)
{
    char key[T_KEY_MAX];
    uint32_t out[T_MAX];
    size_t n = 0;
    cr_assert(r <= T_MAX);
    cr_assert_eq(mesh__ring_lookup(ring, key, s_key(key, i), r, out, &n), 0);
    for (size_t k = 0; k < n; k++) {
        memcpy(uuids[k], mesh__ring_member(ring, out[k]), T_UUID);
    }
    return n;
}

static void s_shuffle(t_uuid_t *u, size_t n, uint64_t seed)
{
    for (size_t i = n - 1; i > 0; i--) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t j = (size_t)((seed >> 33) % (i + 1));
        t_uuid_t t;
        memcpy(t, u[i], T_UUID);
        memcpy(u[i], u[j], T_UUID);
        memcpy(u[j], t, T_UUID);
    }
}

Test(ring, identical_membership_in_any_order_gives_identical_rings)
{
    t_uuid_t a[10], b[13];
    s_uuids(a, 10, 0);
    memcpy(b, a, sizeof a);
    s_shuffle(b, 10, 99);
    memcpy(b[10], a[3], T_UUID); /* duplicates count once */
    memcpy(b[11], a[0], T_UUID);
    memcpy(b[12], b[0], T_UUID);
    cr_assert_neq(memcmp(a, b, sizeof a), 0, "the shuffle changed nothing");
    mesh__ring_t *ra = s_ring(0, a, 10);
    mesh__ring_t *rb = s_ring(0, b, 13);
    cr_assert_eq(mesh__ring_count(rb), 10);
    cr_assert_eq(mesh__ring_digest(ra), mesh__ring_digest(rb));
    for (size_t i = 0; i < 10000; i++) {
        t_uuid_t oa[T_REPL], ob[T_REPL];
        cr_assert_eq(s_replicas(ra, i, T_REPL, oa), T_REPL);
        cr_assert_eq(s_replicas(rb, i, T_REPL, ob), T_REPL);
        cr_assert_eq(memcmp(oa, ob, sizeof oa), 0, "key %zu placed differently", i);
    }
    mesh__ring_destroy(&ra);
    mesh__ring_destroy(&rb);
    cr_assert_null(ra);
    mesh__ring_destroy(&ra); /* NULL is fine */
}

Test(ring, different_membership_gives_different_digest)
{
    t_uuid_t u[11];
    s_uuids(u, 11, 0);
    mesh__ring_t *ring = s_ring(0, u, 10);
    uint64_t d10 = mesh__ring_digest(ring);
    cr_assert_eq(mesh__ring_set_members(ring, (const uint8_t(*)[T_UUID])u, 9), 0);
    uint64_t d9 = mesh__ring_digest(ring);
    cr_assert_eq(mesh__ring_set_members(ring, (const uint8_t(*)[T_UUID])u, 11), 0);
    uint64_t d11 = mesh__ring_digest(ring);
    memcpy(u[9], u[10], T_UUID); /* same size, one member swapped */
    cr_assert_eq(mesh__ring_set_members(ring, (const uint8_t(*)[T_UUID])u, 10), 0);
    uint64_t dswap = mesh__ring_digest(ring);
    cr_assert_eq(mesh__ring_set_members(ring, NULL, 0), 0);
    uint64_t d0 = mesh__ring_digest(ring);
    uint64_t all[] = {d10, d9, d11, dswap, d0};
    for (size_t i = 0; i < 5; i++) {
        for (size_t j = i + 1; j < 5; j++) {
            cr_assert_neq(all[i], all[j], "digests %zu and %zu collide", i, j);
        }
    }
    /*  Back to the first set: the first digest again. */
    s_uuids(u, 10, 0);
    cr_assert_eq(mesh__ring_set_members(ring, (const uint8_t(*)[T_UUID])u, 10), 0);
    cr_assert_eq(mesh__ring_digest(ring), d10);
    /*  Same members, another vnode count: another ring, another digest. */
    mesh__ring_t *other = s_ring(64, u, 10);
    cr_assert_neq(mesh__ring_digest(other), d10);
    mesh__ring_destroy(&other);
    mesh__ring_destroy(&ring);
}

/*  The placement rules of ring.h read literally: for each member, the
    clockwise distance from the key's position to its nearest virtual node;
    members by increasing distance (ties by rank) are the owner and its
    successors. A change here changes every peer's owners: a protocol
    change. */
static void s_reference(const t_uuid_t *sorted, size_t n, unsigned vnodes, uint64_t hash,
                        uint32_t *order)
{
    uint64_t kpos = hash >> 16;
    uint64_t dist[T_MAX];
    for (size_t r = 0; r < n; r++) {
        dist[r] = UINT64_MAX;
        for (uint32_t v = 0; v < vnodes; v++) {
            uint64_t pos = XXH3_64bits_withSeed(sorted[r], T_UUID, v) >> 16;
            uint64_t d = (pos - kpos) & ((UINT64_C(1) << 48) - 1);
            if (d < dist[r]) {
                dist[r] = d;
            }
        }
        order[r] = (uint32_t)r;
    }
    for (size_t i = 1; i < n; i++) {
        uint32_t x = order[i];
        size_t j = i;
        for (; j > 0 && dist[order[j - 1]] > dist[x]; j--) {
            order[j] = order[j - 1];
        }
        order[j] = x;
    }
}

static int s_uuid_cmp(const void *a, const void *b)
{
    return memcmp(a, b, T_UUID);
}

Test(ring, owner_and_replicas_follow_the_placement_rules)
{
    enum { N = 8, V = 16 };
    t_uuid_t u[N], sorted[N];
    s_uuids(u, N, 40);
    memcpy(sorted, u, sizeof u);
    qsort(sorted, N, T_UUID, s_uuid_cmp);
    mesh__ring_t *ring = s_ring(V, u, N);
    cr_assert_eq(mesh__ring_vnodes(ring), V);
    cr_assert_eq(mesh__ring_vnode_count(ring), N * V);
    for (size_t r = 0; r < N; r++) {
        cr_assert_eq(memcmp(mesh__ring_member(ring, r), sorted[r], T_UUID), 0, "rank %zu", r);
        cr_assert_eq(mesh__ring_find(ring, sorted[r]), (long)r);
    }
    for (size_t i = 0; i < 2000; i++) {
        char key[T_KEY_MAX];
        size_t len = s_key(key, i);
        uint64_t h = mesh__ring_hash(key, len);
        cr_assert_eq(h, XXH3_64bits(key, len));
        uint32_t want[N], got[N];
        s_reference((const t_uuid_t *)sorted, N, V, h, want);
        for (size_t r = 1; r <= N; r++) {
            size_t n = 0;
            cr_assert_eq(mesh__ring_lookup(ring, key, len, r, got, &n), 0);
            cr_assert_eq(n, r);
            for (size_t k = 0; k < r; k++) {
                cr_assert_eq(got[k], want[k], "key %zu, %zu replicas: position %zu is %u, not %u",
                             i, r, k, got[k], want[k]);
            }
        }
        size_t n = 0;
        cr_assert_eq(mesh__ring_lookup_hash(ring, h, N, got, &n), 0);
        cr_assert_eq(memcmp(got, want, sizeof want), 0);
    }
    mesh__ring_destroy(&ring);
}

Test(ring, keys_at_the_edges_follow_the_placement_rules)
{
    enum { N = 8, V = 16, SETS = 20 };
    /*  The bottom and top of the ring (past the last node: the first one),
        and keys exactly at a node's position or one past it, on several
        memberships (the first and last nodes may share a member). */
    for (uint32_t set = 0; set < SETS; set++) {
        t_uuid_t u[N];
        s_uuids(u, N, 1000 + set * N);
        qsort(u, N, T_UUID, s_uuid_cmp);
        mesh__ring_t *ring = s_ring(V, u, N);
        uint64_t edges[2 + 4 * N];
        size_t ne = 0;
        edges[ne++] = 0;
        edges[ne++] = UINT64_MAX;
        for (size_t r = 0; r < N; r++) {
            for (uint32_t v = 0; v < 2; v++) {
                uint64_t pos = XXH3_64bits_withSeed(u[r], T_UUID, v) >> 16;
                edges[ne++] = (pos << 16) | 0xffff;
                edges[ne++] = (pos + 1) << 16;
            }
        }
        for (size_t e = 0; e < ne; e++) {
            uint32_t want[N], got[N];
            size_t n = 0;
            s_reference((const t_uuid_t *)u, N, V, edges[e], want);
            cr_assert_eq(mesh__ring_lookup_hash(ring, edges[e], N, got, &n), 0);
            cr_assert_eq(n, N);
            cr_assert_eq(memcmp(got, want, sizeof want), 0, "set %u: hash %016llx misplaced", set,
                         (unsigned long long)edges[e]);
        }
        mesh__ring_destroy(&ring);
    }
}

/*  Large enough that some nodes share the top bits the sort works on. */
Test(ring, virtual_nodes_are_in_ring_order)
{
    enum { N = 400 };
    t_uuid_t *u = calloc(N, sizeof *u);
    cr_assert_not_null(u);
    s_uuids(u, N, 9000);
    mesh__ring_t *ring = s_ring(0, u, N);
    size_t n = mesh__ring_vnode_count(ring);
    cr_assert_eq(n, (size_t)N * MESH_RING_VNODES);
    size_t per[N] = {0};
    uint64_t prev = 0;
    uint32_t prev_rank = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t rank = UINT32_MAX;
        uint64_t pos = mesh__ring_vnode(ring, i, &rank);
        cr_assert_lt(pos, UINT64_C(1) << 48);
        cr_assert_lt(rank, N);
        per[rank]++;
        if (i > 0) {
            cr_assert(pos > prev || (pos == prev && rank > prev_rank),
                      "node %zu (%012llx, %u) after (%012llx, %u)", i, (unsigned long long)pos,
                      rank, (unsigned long long)prev, prev_rank);
        }
        prev = pos;
        prev_rank = rank;
    }
    for (size_t r = 0; r < N; r++) {
        cr_assert_eq(per[r], MESH_RING_VNODES);
    }
    mesh__ring_destroy(&ring);
    free(u);
}

static void s_assert_distinct(const uint32_t *out, size_t n, size_t members)
{
    for (size_t a = 0; a < n; a++) {
        cr_assert_lt(out[a], members);
        for (size_t b = a + 1; b < n; b++) {
            cr_assert_neq(out[a], out[b], "rank %u twice", out[a]);
        }
    }
}

Test(ring, replicas_are_distinct_and_owner_first)
{
    t_uuid_t u[100];
    s_uuids(u, 100, 0);
    mesh__ring_t *ring = s_ring(0, u, 100);
    for (size_t i = 0; i < 2000; i++) {
        char key[T_KEY_MAX];
        size_t len = s_key(key, i);
        uint32_t one[1], few[5], many[40];
        size_t n1 = 0, n5 = 0, n40 = 0;
        cr_assert_eq(mesh__ring_lookup(ring, key, len, 1, one, &n1), 0);
        cr_assert_eq(mesh__ring_lookup(ring, key, len, 5, few, &n5), 0);
        cr_assert_eq(mesh__ring_lookup(ring, key, len, 40, many, &n40), 0); /* bitmap path */
        cr_assert_eq(n1, 1);
        cr_assert_eq(n5, 5);
        cr_assert_eq(n40, 40);
        s_assert_distinct(few, 5, 100);
        s_assert_distinct(many, 40, 100);
        /*  Asking for more replicas extends the list; it never reorders it. */
        cr_assert_eq(few[0], one[0]);
        cr_assert_eq(memcmp(many, few, sizeof few), 0);
    }
    mesh__ring_destroy(&ring);
}

Test(ring, more_replicas_than_members_gives_every_member_once)
{
    t_uuid_t u[12];
    s_uuids(u, 12, 7);
    for (size_t m = 1; m <= 12; m += 11) {
        mesh__ring_t *ring = s_ring(0, u, m);
        for (size_t i = 0; i < 500; i++) {
            char key[T_KEY_MAX];
            size_t len = s_key(key, i);
            uint32_t out[T_MAX], owner[1];
            size_t n = 0, n1 = 0;
            cr_assert_eq(mesh__ring_lookup(ring, key, len, 5, out, &n), 0);
            cr_assert_eq(n, m < 5 ? m : 5);
            cr_assert_eq(mesh__ring_lookup(ring, key, len, T_MAX, out, &n), 0);
            cr_assert_eq(n, m);
            s_assert_distinct(out, n, m);
            cr_assert_eq(mesh__ring_lookup(ring, key, len, 1, owner, &n1), 0);
            cr_assert_eq(out[0], owner[0]);
        }
        mesh__ring_destroy(&ring);
    }
}

Test(ring, empty_ring_owns_nothing)
{
    mesh__ring_t *ring = mesh__ring_new(0);
    cr_assert_not_null(ring);
    cr_assert_eq(mesh__ring_vnodes(ring), MESH_RING_VNODES);
    cr_assert_eq(mesh__ring_count(ring), 0);
    cr_assert_eq(mesh__ring_vnode_count(ring), 0);
    uint32_t out[3] = {7, 7, 7};
    size_t n = 99;
    cr_assert_eq(mesh__ring_lookup(ring, "k", 1, 3, out, &n), MESH_ERR_NOTFOUND);
    cr_assert_eq(n, 0);
    cr_assert_eq(out[0], 7);
    /*  Filled, then emptied again. */
    t_uuid_t u[3];
    s_uuids(u, 3, 0);
    cr_assert_eq(mesh__ring_set_members(ring, (const uint8_t(*)[T_UUID])u, 3), 0);
    cr_assert_eq(mesh__ring_lookup(ring, "k", 1, 3, out, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(mesh__ring_lookup(ring, "k", 1, 0, out, &n), 0); /* nothing asked */
    cr_assert_eq(n, 0);
    cr_assert_eq(mesh__ring_find(ring, u[1]) >= 0, true);
    cr_assert_eq(mesh__ring_set_members(ring, NULL, 0), 0);
    cr_assert_eq(mesh__ring_lookup(ring, "k", 1, 3, out, &n), MESH_ERR_NOTFOUND);
    cr_assert_eq(n, 0);
    cr_assert_eq(mesh__ring_find(ring, u[1]), -1);
    mesh__ring_destroy(&ring);
}

Test(ring, limits_are_refused_and_leave_the_ring_unchanged)
{
    cr_assert_null(mesh__ring_new(MESH_RING_VNODES_MAX + 1));
    mesh__ring_t *ring = mesh__ring_new(MESH_RING_VNODES_MAX);
    cr_assert_not_null(ring);
    size_t n = MESH_RING_NODES_MAX / MESH_RING_VNODES_MAX + 1; /* one member too many */
    t_uuid_t *u = calloc(MESH_RING_MEMBERS_MAX + 1, sizeof *u);
    cr_assert_not_null(u);
    s_uuids(u, MESH_RING_MEMBERS_MAX + 1, 0);
    cr_assert_eq(mesh__ring_set_members(ring, (const uint8_t(*)[T_UUID])u, 2), 0);
    uint64_t d = mesh__ring_digest(ring);
    cr_assert_eq(mesh__ring_set_members(ring, (const uint8_t(*)[T_UUID])u, n), MESH_ERR_INVAL);
    cr_assert_eq(
        mesh__ring_set_members(ring, (const uint8_t(*)[T_UUID])u, MESH_RING_MEMBERS_MAX + 1),
        MESH_ERR_INVAL);
    cr_assert_eq(mesh__ring_count(ring), 2);
    cr_assert_eq(mesh__ring_digest(ring), d);
    free(u);
    mesh__ring_destroy(&ring);
}

Test(ring, ten_members_share_keys_evenly)
{
    t_uuid_t u[10];
    s_uuids(u, 10, 0);
    mesh__ring_t *ring = s_ring(0, u, 10);
    size_t count[10] = {0};
    for (size_t i = 0; i < T_KEYS; i++) {
        char key[T_KEY_MAX];
        uint32_t out[1];
        size_t n = 0;
        cr_assert_eq(mesh__ring_lookup(ring, key, s_key(key, i), 1, out, &n), 0);
        count[out[0]]++;
    }
    size_t max = 0;
    double sum = 0;
    for (size_t r = 0; r < 10; r++) {
        max = count[r] > max ? count[r] : max;
        double share = mesh__ring_share(ring, r);
        sum += share;
        /*  The share matches the keys it draws (binomial sd ~ 0.1% here). */
        cr_assert_lt(fabs(share - (double)count[r] / T_KEYS), 0.01, "rank %zu: %f vs %f", r, share,
                     (double)count[r] / T_KEYS);
    }
    double ratio = (double)max / (T_KEYS / 10.0);
    cr_assert_leq(ratio, 1.15, "max/mean %.3f", ratio);
    cr_assert_lt(fabs(sum - 1.0), 1e-9, "shares sum to %.12f", sum);
    mesh__ring_destroy(&ring);

    ring = s_ring(0, u, 1);
    cr_assert_eq(mesh__ring_share(ring, 0), 1.0);
    mesh__ring_destroy(&ring);
}

/*  Owners of T_KEYS keys on the old and the new ring: every key that moves
    goes to (on a join) or from (on a leave) `changed`, and how many move. */
static size_t s_moved(const mesh__ring_t *before, const mesh__ring_t *after, const uint8_t *changed,
                      bool join)
{
    size_t moved = 0;
    for (size_t i = 0; i < T_KEYS; i++) {
        uint8_t a[T_UUID], b[T_UUID];
        s_owner(before, i, a);
        s_owner(after, i, b);
        if (memcmp(a, b, T_UUID) == 0) {
            continue;
        }
        moved++;
        cr_assert_eq(memcmp(join ? b : a, changed, T_UUID), 0,
                     "key %zu moved between two members that did not change", i);
    }
    return moved;
}

Test(ring, a_join_moves_only_the_keys_the_new_member_takes)
{
    t_uuid_t u[11];
    s_uuids(u, 11, 100);
    mesh__ring_t *before = s_ring(0, u, 10);
    mesh__ring_t *after = s_ring(0, u, 11);
    size_t moved = s_moved(before, after, u[10], true);
    double fair = T_KEYS / 11.0;
    cr_assert_leq((double)moved, 1.2 * fair, "moved %zu, K/N %.0f", moved, fair);
    cr_assert_geq((double)moved, 0.8 * fair, "moved %zu, K/N %.0f", moved, fair);
    /*  Everyone else's successor order is kept: the new list without the
        new member is a prefix of the old one. */
    for (size_t i = 0; i < 5000; i++) {
        t_uuid_t ob[T_REPL + 1], oa[T_REPL + 1];
        s_replicas(before, i, T_REPL + 1, ob);
        s_replicas(after, i, T_REPL + 1, oa);
        size_t k = 0;
        for (size_t j = 0; j < T_REPL + 1; j++) {
            if (memcmp(oa[j], u[10], T_UUID) != 0) {
                cr_assert_eq(memcmp(oa[j], ob[k], T_UUID), 0, "key %zu: order changed", i);
                k++;
            }
        }
    }
    mesh__ring_destroy(&before);
    mesh__ring_destroy(&after);
}

Test(ring, a_leave_moves_only_the_leavers_keys)
{
    t_uuid_t u[10];
    s_uuids(u, 10, 200);
    mesh__ring_t *before = s_ring(0, u, 10);
    long gone = 3;
    uint8_t leaver[T_UUID];
    memcpy(leaver, u[gone], T_UUID);
    memcpy(u[gone], u[9], T_UUID);
    mesh__ring_t *after = s_ring(0, u, 9);
    cr_assert_eq(mesh__ring_find(after, leaver), -1);
    size_t moved = s_moved(before, after, leaver, false);
    double fair = T_KEYS / 10.0;
    cr_assert_leq((double)moved, 1.2 * fair, "moved %zu, K/N %.0f", moved, fair);
    cr_assert_geq((double)moved, 0.8 * fair, "moved %zu, K/N %.0f", moved, fair);
    /*  The leaver's share of the space, as measured in keys. */
    long rank = mesh__ring_find(before, leaver);
    cr_assert_lt(fabs(mesh__ring_share(before, (size_t)rank) - (double)moved / T_KEYS), 0.01);
    mesh__ring_destroy(&before);
    mesh__ring_destroy(&after);
}

Test(ring, a_departed_owners_keys_go_to_their_first_replica)
{
    t_uuid_t u[10];
    s_uuids(u, 10, 300);
    mesh__ring_t *before = s_ring(0, u, 10);
    uint8_t leaver[T_UUID];
    memcpy(leaver, u[0], T_UUID);
    mesh__ring_t *after = s_ring(0, u + 1, 9);
    size_t checked = 0;
    for (size_t i = 0; i < 20000; i++) {
        t_uuid_t ob[T_REPL + 1], oa[T_REPL];
        s_replicas(before, i, T_REPL + 1, ob);
        s_replicas(after, i, T_REPL, oa);
        /*  The new list is the old one with the leaver taken out. */
        size_t k = 0;
        for (size_t j = 0; j < T_REPL + 1 && k < T_REPL; j++) {
            if (memcmp(ob[j], leaver, T_UUID) != 0) {
                cr_assert_eq(memcmp(oa[k], ob[j], T_UUID), 0, "key %zu: replica %zu", i, k);
                k++;
            }
        }
        if (memcmp(ob[0], leaver, T_UUID) == 0) {
            cr_assert_eq(memcmp(oa[0], ob[1], T_UUID), 0, "key %zu: not its first replica", i);
            checked++;
        }
    }
    cr_assert_gt(checked, 1000, "the leaver owned only %zu keys", checked);
    mesh__ring_destroy(&before);
    mesh__ring_destroy(&after);
}

/*  An updated ring (which keeps the nodes of members that stay) against a
    ring built from scratch for the same set: same digest, shares, owners
    and replicas. */
static void s_assert_same_ring(const mesh__ring_t *a, const mesh__ring_t *b)
{
    cr_assert_eq(mesh__ring_count(a), mesh__ring_count(b));
    cr_assert_eq(mesh__ring_vnode_count(a), mesh__ring_vnode_count(b));
    cr_assert_eq(mesh__ring_digest(a), mesh__ring_digest(b));
    for (size_t r = 0; r < mesh__ring_count(a); r++) {
        cr_assert_eq(memcmp(mesh__ring_member(a, r), mesh__ring_member(b, r), T_UUID), 0);
        cr_assert_eq(mesh__ring_share(a, r), mesh__ring_share(b, r));
    }
    for (size_t i = 0; i < 500; i++) {
        t_uuid_t oa[T_REPL], ob[T_REPL];
        size_t na = s_replicas(a, i, T_REPL, oa);
        cr_assert_eq(s_replicas(b, i, T_REPL, ob), na);
        cr_assert_eq(memcmp(oa, ob, na * T_UUID), 0, "key %zu", i);
    }
}

Test(ring, an_updated_ring_equals_a_fresh_one)
{
    enum { POOL = 64, V = 32 };
    t_uuid_t pool[POOL], set[POOL];
    s_uuids(pool, POOL, 500);
    mesh__ring_t *ring = mesh__ring_new(V);
    cr_assert_not_null(ring);
    /*  One leave at a time down to one member, then one join at a time. */
    for (size_t m = POOL; m >= 1; m--) {
        cr_assert_eq(mesh__ring_set_members(ring, (const uint8_t(*)[T_UUID])pool, m), 0);
        cr_assert_geq(mesh__ring_memory(ring), m * V * sizeof(uint64_t));
        mesh__ring_t *fresh = s_ring(V, pool, m);
        s_assert_same_ring(ring, fresh);
        mesh__ring_destroy(&fresh);
    }
    for (size_t m = 2; m <= POOL; m += 7) {
        cr_assert_eq(mesh__ring_set_members(ring, (const uint8_t(*)[T_UUID])pool, m), 0);
        mesh__ring_t *fresh = s_ring(V, pool, m);
        s_assert_same_ring(ring, fresh);
        mesh__ring_destroy(&fresh);
    }
    /*  Random churn: several members leave and join at once. */
    uint64_t x = 42;
    for (int round = 0; round < 40; round++) {
        size_t m = 0;
        for (size_t i = 0; i < POOL; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            if ((x >> 60) < 6) {
                memcpy(set[m++], pool[i], T_UUID);
            }
        }
        if (m == 0) {
            continue;
        }
        s_shuffle(set, m, x);
        cr_assert_eq(mesh__ring_set_members(ring, (const uint8_t(*)[T_UUID])set, m), 0);
        mesh__ring_t *fresh = s_ring(V, set, m);
        s_assert_same_ring(ring, fresh);
        mesh__ring_destroy(&fresh);
    }
    mesh__ring_destroy(&ring);
}
