/*  bench_ring: the cluster ring's figures (issue 5, section 1).

    bench_ring [--keys 1000000] [--lookups 1000000] [--runs 3] [--sets 100] [--pin]

    1. Balance, 10 members: the keys owned by the busiest member over the
       mean, for K keys (default 1e6) on one membership; then the same from
       the exact shares of the hash space over S random memberships (default
       100), at several vnode counts, with each one's memory and build time:
       why MESH_RING_VNODES is what it is.
    2. Movement, 10 members: keys that change owner when an 11th member
       joins, and when one of the 10 leaves, against K/N (N counting the
       member that changed: the share it should take or had), and whether
       any key moved between two members that did not change.
    3. Lookup: ns per lookup at 10, 100 and 1,000 members (L lookups, default
       1e6; keys cycle through 65,536 distinct strings), owner alone and owner
       + 2 replicas, next to two baselines measured in the same run: XXH3 of
       the key alone (the floor any hashed placement pays) and a rendezvous
       (highest random weight) lookup over the same members (XXH3 of the key,
       then one 64-bit mix per member: O(N)). Median of R runs (default 3),
       with the spread.
    4. Rebuild: set_members at 10, 100 and 1,000 members, median of 11: a
       first build (every node hashed and sorted), and one member leaving or
       joining (the stayers' nodes are kept and merged with the joiner's).

    Targets (issue 5): max/mean <= 1.10 at 10 members over 1M keys; moved
    keys <= 1.1 x K/N on a join and on a leave; lookup <= 200 ns at 100
    members. The benchmark reports them; it never fails on a figure. */
#include <mesh/defaults.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "bench_util.h"
#include "ring.h"

#define RB_KEYS_DEFAULT    1000000
#define RB_LOOKUPS_DEFAULT 1000000
#define RB_RUNS_DEFAULT    3
#define RB_RUNS_MAX        15
#define RB_SETS_DEFAULT    100
#define RB_SETS_MAX        10000
#define RB_MEMBERS         10
#define RB_REPL            3
#define RB_KEY_COUNT       65536 /* distinct lookup keys; a power of two */
#define RB_KEY_MAX         24
#define RB_BUILDS          11
#define RB_HRW_WORK        100000000.0 /* rendezvous: lookups x members per figure, at most */
#define RB_TARGET_BALANCE  1.10
#define RB_TARGET_MOVED    1.10
#define RB_TARGET_NS       200.0
#define RB_TARGET_MEMBERS  100
#define RB_SEED            0x5eed

static const size_t s_sizes[] = {10, 100, 1000};
#define RB_NSIZES (sizeof s_sizes / sizeof s_sizes[0])
static const unsigned s_vnode_choices[] = {128, 256, 512, 1024, 2048};
#define RB_NVNODES (sizeof s_vnode_choices / sizeof s_vnode_choices[0])

typedef enum { RB_XXH3, RB_OWNER, RB_OWNER_REPL, RB_HRW, RB_NFIGURES } rb_figure_t;
static const char *const s_figure_names[RB_NFIGURES] = {
    [RB_XXH3] = "baseline: XXH3 of the key alone",
    [RB_OWNER] = "ring lookup, owner",
    [RB_OWNER_REPL] = "ring lookup, owner + 2 replicas",
    [RB_HRW] = "baseline: rendezvous, owner (O(N))",
};

typedef uint8_t rb_uuid_t[MESH_ZRE_UUID_SIZE];

/*  The headline figures, for the summary. */
typedef struct {
    double balance;
    double moved[2]; /* join, leave: moved / (K/N) */
    long stray;
    double lookup[RB_NFIGURES][RB_NSIZES];      /* medians, by s_sizes */
    double first[RB_NSIZES], change[RB_NSIZES]; /* rebuild us, by s_sizes */
} rb_summary_t;

static volatile uint64_t s_sink;

static uint64_t s_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void s_random_uuids(rb_uuid_t *u, size_t n, uint64_t *x)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t a = s_splitmix(x);
        uint64_t b = s_splitmix(x);
        memcpy(u[i], &a, sizeof a);
        memcpy(u[i] + sizeof a, &b, sizeof b);
    }
}

static size_t s_key(char *buf, size_t i)
{
    return (size_t)snprintf(buf, RB_KEY_MAX, "task:%zu", i);
}

/*  set_members takes a pointer to const arrays, which ISO C before C2x does
    not convert to implicitly. */
#define RB_CONST_UUIDS(u) ((const uint8_t(*)[MESH_ZRE_UUID_SIZE])(u))

static mesh__ring_t *s_build(unsigned vnodes, rb_uuid_t *u, size_t n)
{
    mesh__ring_t *ring = mesh__ring_new(vnodes);
    if (!ring || mesh__ring_set_members(ring, RB_CONST_UUIDS(u), n) != 0) {
        fprintf(stderr, "bench_ring: building a ring of %zu members failed\n", n);
        exit(1);
    }
    return ring;
}

static uint32_t s_owner(const mesh__ring_t *ring, const char *key, size_t len)
{
    uint32_t out[1];
    size_t n = 0;
    if (mesh__ring_lookup(ring, key, len, 1, out, &n) != 0 || n != 1) {
        fprintf(stderr, "bench_ring: lookup failed\n");
        exit(1);
    }
    return out[0];
}

static double s_max_share(const mesh__ring_t *ring)
{
    double max = 0;
    for (size_t r = 0; r < mesh__ring_count(ring); r++) {
        double s = mesh__ring_share(ring, r);
        max = s > max ? s : max;
    }
    return max * (double)mesh__ring_count(ring);
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ------------------------------------------------------------------------ */
/* 1. balance */

static void s_balance(long keys, long sets, uint64_t *x, rb_summary_t *sum)
{
    rb_uuid_t u[RB_MEMBERS];
    s_random_uuids(u, RB_MEMBERS, x);
    mesh__ring_t *ring = s_build(0, u, RB_MEMBERS);
    size_t count[RB_MEMBERS] = {0};
    for (long i = 0; i < keys; i++) {
        char key[RB_KEY_MAX];
        count[s_owner(ring, key, s_key(key, (size_t)i))]++;
    }
    size_t max = 0, min = SIZE_MAX;
    for (size_t r = 0; r < RB_MEMBERS; r++) {
        max = count[r] > max ? count[r] : max;
        min = count[r] < min ? count[r] : min;
    }
    double mean = (double)keys / RB_MEMBERS;
    double ratio = (double)max / mean;
    sum->balance = ratio;
    printf("== balance: %d members, %u vnodes each, %ld keys\n", RB_MEMBERS,
           mesh__ring_vnodes(ring), keys);
    printf("keys per member: max %zu, min %zu, mean %.0f\n", max, min, mean);
    printf("max/mean %.4f (min/mean %.4f); from the exact shares %.4f; target <= %.2f: %s\n\n",
           ratio, (double)min / mean, s_max_share(ring), RB_TARGET_BALANCE,
           ratio <= RB_TARGET_BALANCE ? "met" : "NOT met");
    mesh__ring_destroy(&ring);

    printf("== balance over %ld random memberships of %d (exact shares), by vnodes per member\n",
           sets, RB_MEMBERS);
    printf("%8s %10s %10s %10s %10s %12s %12s %12s\n", "vnodes", "median", "p90", "worst",
           "P(>1.10)", "bytes/member", "build@10 us", "build@100 us");
    printf("%8s %10s %10s %10s %10s %12s %12s %12s\n", "", "", "", "", "", "", "(first)",
           "(first)");
    double *ratios = malloc((size_t)sets * sizeof *ratios);
    rb_uuid_t *big = malloc(RB_TARGET_MEMBERS * sizeof *big);
    if (!ratios || !big) {
        fprintf(stderr, "bench_ring: out of memory\n");
        exit(1);
    }
    s_random_uuids(big, RB_TARGET_MEMBERS, x);
    for (size_t vi = 0; vi < RB_NVNODES; vi++) {
        unsigned v = s_vnode_choices[vi];
        uint64_t seed = RB_SEED + 1; /* the same memberships for every vnode count */
        long over = 0;
        double build10 = 0;
        for (long s = 0; s < sets; s++) {
            s_random_uuids(u, RB_MEMBERS, &seed);
            uint64_t t0 = bench_now_ns();
            ring = s_build(v, u, RB_MEMBERS);
            build10 += (double)(bench_now_ns() - t0);
            ratios[s] = s_max_share(ring);
            over += ratios[s] > RB_TARGET_BALANCE;
            mesh__ring_destroy(&ring);
        }
        uint64_t t0 = bench_now_ns();
        ring = s_build(v, big, RB_TARGET_MEMBERS);
        double build100 = (double)(bench_now_ns() - t0);
        double per_member = (double)mesh__ring_memory(ring) / RB_TARGET_MEMBERS;
        mesh__ring_destroy(&ring);
        qsort(ratios, (size_t)sets, sizeof *ratios, s_cmp_double);
        printf("%8u %10.4f %10.4f %10.4f %10.3f %12.0f %12.1f %12.1f%s\n", v,
               ratios[(size_t)sets / 2], ratios[(size_t)(0.9 * (double)(sets - 1))],
               ratios[sets - 1], (double)over / (double)sets, per_member,
               build10 / (double)sets / 1e3, build100 / 1e3,
               v == MESH_RING_VNODES ? "  <- MESH_RING_VNODES" : "");
    }
    printf("\n");
    free(ratios);
    free(big);
}

/* ------------------------------------------------------------------------ */
/* 2. movement */

/*  Keys whose owner differs between the rings; *stray counts those that
    moved between two members other than `changed`. */
static long s_moved(const mesh__ring_t *a, const mesh__ring_t *b, const uint8_t *changed, long keys,
                    long *stray)
{
    long moved = 0;
    *stray = 0;
    for (long i = 0; i < keys; i++) {
        char key[RB_KEY_MAX];
        size_t len = s_key(key, (size_t)i);
        const uint8_t *oa = mesh__ring_member(a, s_owner(a, key, len));
        const uint8_t *ob = mesh__ring_member(b, s_owner(b, key, len));
        if (memcmp(oa, ob, MESH_ZRE_UUID_SIZE) == 0) {
            continue;
        }
        moved++;
        if (memcmp(oa, changed, MESH_ZRE_UUID_SIZE) != 0 &&
            memcmp(ob, changed, MESH_ZRE_UUID_SIZE) != 0) {
            (*stray)++;
        }
    }
    return moved;
}

static void s_movement(long keys, uint64_t *x, rb_summary_t *sum)
{
    rb_uuid_t u[RB_MEMBERS + 1];
    s_random_uuids(u, RB_MEMBERS + 1, x);
    mesh__ring_t *ten = s_build(0, u, RB_MEMBERS);
    mesh__ring_t *eleven = s_build(0, u, RB_MEMBERS + 1);
    mesh__ring_t *nine = s_build(0, u + 1, RB_MEMBERS - 1);
    printf("== movement: %d members, %ld keys; K/N counts the member that changed\n", RB_MEMBERS,
           keys);
    printf("%-28s %10s %10s %12s %14s %8s\n", "", "moved", "K/N", "moved/(K/N)", "moved/(K/10)",
           "stray");
    struct {
        const char *name;
        const mesh__ring_t *a, *b;
        const uint8_t *changed;
        size_t n;
    } cases[] = {
        {"join (10 -> 11)", ten, eleven, u[RB_MEMBERS], RB_MEMBERS + 1},
        {"leave (10 -> 9)", ten, nine, u[0], RB_MEMBERS},
    };
    bool met = true;
    for (size_t c = 0; c < 2; c++) {
        long stray = 0;
        long moved = s_moved(cases[c].a, cases[c].b, cases[c].changed, keys, &stray);
        double fair = (double)keys / (double)cases[c].n;
        double ratio = (double)moved / fair;
        sum->moved[c] = ratio;
        sum->stray += stray;
        met = met && ratio <= RB_TARGET_MOVED && stray == 0;
        printf("%-28s %10ld %10.0f %12.4f %14.4f %8ld\n", cases[c].name, moved, fair, ratio,
               (double)moved / ((double)keys / RB_MEMBERS), stray);
    }
    printf("target (moved <= %.1f x K/N, none stray): %s\n\n", RB_TARGET_MOVED,
           met ? "met" : "NOT met");
    mesh__ring_destroy(&ten);
    mesh__ring_destroy(&eleven);
    mesh__ring_destroy(&nine);
}

/* ------------------------------------------------------------------------ */
/* 3. lookup */

typedef struct {
    char (*keys)[RB_KEY_MAX];
    size_t *lens;
} rb_keys_t;

static double s_time_xxh3(const rb_keys_t *k, long n)
{
    uint64_t acc = 0;
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        size_t j = (size_t)i & (RB_KEY_COUNT - 1);
        acc += XXH3_64bits(k->keys[j], k->lens[j]);
    }
    uint64_t t1 = bench_now_ns();
    s_sink = acc;
    return (double)(t1 - t0) / (double)n;
}

static double s_time_ring(const mesh__ring_t *ring, const rb_keys_t *k, long n, size_t replicas)
{
    uint64_t acc = 0;
    uint32_t out[RB_REPL];
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        size_t j = (size_t)i & (RB_KEY_COUNT - 1);
        size_t got = 0;
        mesh__ring_lookup(ring, k->keys[j], k->lens[j], replicas, out, &got);
        acc += out[got - 1];
    }
    uint64_t t1 = bench_now_ns();
    s_sink = acc;
    return (double)(t1 - t0) / (double)n;
}

/*  Rendezvous: the member with the highest mix(hash(key) ^ seed(member)). */
static double s_time_hrw(const uint64_t *seeds, size_t m, const rb_keys_t *k, long n)
{
    uint64_t acc = 0;
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        size_t j = (size_t)i & (RB_KEY_COUNT - 1);
        uint64_t h = XXH3_64bits(k->keys[j], k->lens[j]);
        uint64_t best = 0;
        size_t owner = 0;
        for (size_t r = 0; r < m; r++) {
            uint64_t z = h ^ seeds[r];
            z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdULL;
            z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53ULL;
            z ^= z >> 33;
            if (z > best) {
                best = z;
                owner = r;
            }
        }
        acc += owner;
    }
    uint64_t t1 = bench_now_ns();
    s_sink = acc;
    return (double)(t1 - t0) / (double)n;
}

static void s_lookup(long lookups, long runs, uint64_t *x, rb_summary_t *sum)
{
    rb_keys_t k;
    k.keys = calloc(RB_KEY_COUNT, sizeof *k.keys);
    k.lens = calloc(RB_KEY_COUNT, sizeof *k.lens);
    rb_uuid_t *u = malloc(s_sizes[RB_NSIZES - 1] * sizeof *u);
    uint64_t *seeds = malloc(s_sizes[RB_NSIZES - 1] * sizeof *seeds);
    if (!k.keys || !k.lens || !u || !seeds) {
        fprintf(stderr, "bench_ring: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < RB_KEY_COUNT; i++) {
        k.lens[i] = s_key(k.keys[i], (size_t)(s_splitmix(x) % 100000000));
    }
    printf("== lookup: ns per lookup, %ld lookups per figure per run (rendezvous: fewer at 1,000 "
           "members, see n=), %ld runs, median (min..max)\n",
           lookups, runs);
    bool met = true;
    for (size_t si = 0; si < RB_NSIZES; si++) {
        size_t m = s_sizes[si];
        s_random_uuids(u, m, x);
        for (size_t r = 0; r < m; r++) {
            seeds[r] = XXH3_64bits(u[r], MESH_ZRE_UUID_SIZE);
        }
        mesh__ring_t *ring = s_build(0, u, m);
        long nhrw = lookups;
        if ((double)lookups * (double)m > RB_HRW_WORK) {
            nhrw = (long)(RB_HRW_WORK / (double)m);
        }
        double fig[RB_NFIGURES][RB_RUNS_MAX];
        for (long r = 0; r < runs; r++) {
            fig[RB_XXH3][r] = s_time_xxh3(&k, lookups);
            fig[RB_OWNER][r] = s_time_ring(ring, &k, lookups, 1);
            fig[RB_OWNER_REPL][r] = s_time_ring(ring, &k, lookups, RB_REPL);
            fig[RB_HRW][r] = s_time_hrw(seeds, m, &k, nhrw);
        }
        printf("-- %zu members (%zu virtual nodes, ring %.1f KiB)\n", m,
               mesh__ring_vnode_count(ring), (double)mesh__ring_memory(ring) / 1024.0);
        double base = bench_median(fig[RB_XXH3], (size_t)runs);
        for (int f = 0; f < RB_NFIGURES; f++) {
            double med = bench_median(fig[f], (size_t)runs);
            sum->lookup[f][si] = med;
            double lo, hi;
            bench_minmax(fig[f], (size_t)runs, &lo, &hi);
            char spread[48], note[48] = "";
            snprintf(spread, sizeof spread, "(%.1f..%.1f)", lo, hi);
            if (f == RB_OWNER && m == RB_TARGET_MEMBERS) {
                met = med <= RB_TARGET_NS;
                snprintf(note, sizeof note, "  target <= %.0f: %s", RB_TARGET_NS,
                         met ? "met" : "NOT met");
            }
            if (f == RB_HRW && nhrw != lookups) {
                snprintf(note, sizeof note, "  n=%ld", nhrw);
            }
            printf("%-38s %8.1f %18s %8.2fx XXH3%s\n", s_figure_names[f], med, spread, med / base,
                   note);
        }
        mesh__ring_destroy(&ring);
    }
    printf("target (lookup <= %.0f ns at %d members): %s\n\n", RB_TARGET_NS, RB_TARGET_MEMBERS,
           met ? "met" : "NOT met");
    free(k.keys);
    free(k.lens);
    free(u);
    free(seeds);
}

/* ------------------------------------------------------------------------ */
/* 4. rebuild */

static void s_rebuild(uint64_t *x, rb_summary_t *sum)
{
    rb_uuid_t *u = malloc(s_sizes[RB_NSIZES - 1] * sizeof *u);
    if (!u) {
        fprintf(stderr, "bench_ring: out of memory\n");
        exit(1);
    }
    printf("== rebuild: set_members, median of %d (min..max), %d vnodes per member\n", RB_BUILDS,
           MESH_RING_VNODES);
    printf("%8s %28s %28s %10s %10s\n", "members", "first build, us", "one join or leave, us",
           "ns/vnode", "ring KiB");
    for (size_t si = 0; si < RB_NSIZES; si++) {
        size_t m = s_sizes[si];
        s_random_uuids(u, m, x);
        double first[RB_BUILDS], change[RB_BUILDS];
        mesh__ring_t *ring = NULL;
        for (int b = 0; b < RB_BUILDS; b++) {
            mesh__ring_destroy(&ring);
            ring = mesh__ring_new(0);
            if (!ring) {
                fprintf(stderr, "bench_ring: out of memory\n");
                exit(1);
            }
            uint64_t t0 = bench_now_ns();
            int rc = mesh__ring_set_members(ring, RB_CONST_UUIDS(u), m);
            first[b] = (double)(bench_now_ns() - t0) / 1e3;
            if (rc != 0) {
                fprintf(stderr, "bench_ring: set_members failed\n");
                exit(1);
            }
        }
        for (int b = 0; b < RB_BUILDS; b++) {
            /*  The last member leaves, then comes back. */
            size_t n = (b % 2) ? m : m - 1;
            uint64_t t0 = bench_now_ns();
            int rc = mesh__ring_set_members(ring, RB_CONST_UUIDS(u), n);
            change[b] = (double)(bench_now_ns() - t0) / 1e3;
            if (rc != 0) {
                fprintf(stderr, "bench_ring: set_members failed\n");
                exit(1);
            }
        }
        sum->first[si] = bench_median(first, RB_BUILDS);
        sum->change[si] = bench_median(change, RB_BUILDS);
        double flo, fhi, clo, chi;
        bench_minmax(first, RB_BUILDS, &flo, &fhi);
        bench_minmax(change, RB_BUILDS, &clo, &chi);
        char f[48], c[48];
        snprintf(f, sizeof f, "%.1f (%.1f..%.1f)", bench_median(first, RB_BUILDS), flo, fhi);
        snprintf(c, sizeof c, "%.1f (%.1f..%.1f)", bench_median(change, RB_BUILDS), clo, chi);
        printf("%8zu %28s %28s %10.1f %10.1f\n", m, f, c,
               bench_median(first, RB_BUILDS) * 1e3 / (double)mesh__ring_vnode_count(ring),
               (double)mesh__ring_memory(ring) / 1024.0);
        mesh__ring_destroy(&ring);
    }
    printf("(ns/vnode: first build)\n\n");
    free(u);
}

int main(int argc, char **argv)
{
    long keys = RB_KEYS_DEFAULT;
    long lookups = RB_LOOKUPS_DEFAULT;
    long runs = RB_RUNS_DEFAULT;
    long sets = RB_SETS_DEFAULT;
    bool pin = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pin") == 0) {
            pin = true;
        } else if (bench_arg_int(argc, argv, &i, "--keys", &keys) ||
                   bench_arg_int(argc, argv, &i, "--lookups", &lookups) ||
                   bench_arg_int(argc, argv, &i, "--runs", &runs) ||
                   bench_arg_int(argc, argv, &i, "--sets", &sets)) {
            continue;
        } else {
            fprintf(stderr, "usage: bench_ring [--keys K] [--lookups L] [--runs R] [--sets S] "
                            "[--pin]\n");
            return 2;
        }
    }
    if (keys < RB_MEMBERS || lookups < 1 || runs < 1 || runs > RB_RUNS_MAX || sets < 1 ||
        sets > RB_SETS_MAX) {
        fprintf(stderr, "bench_ring: keys >= %d, lookups >= 1, runs 1..%d, sets 1..%d\n",
                RB_MEMBERS, RB_RUNS_MAX, RB_SETS_MAX);
        return 2;
    }
    if (pin && bench_pin_process(0) != 0) {
        fprintf(stderr, "bench_ring: cannot pin to CPU 0\n");
        return 1;
    }
    printf("# cluster ring (mesh/src/ring.c): MESH_RING_VNODES %d, XXH3 (libxxhash %u), %s\n\n",
           MESH_RING_VNODES, XXH_versionNumber(), pin ? "pinned to CPU 0" : "not pinned");
    uint64_t x = RB_SEED;
    rb_summary_t sum;
    memset(&sum, 0, sizeof sum);
    s_balance(keys, sets, &x, &sum);
    s_movement(keys, &x, &sum);
    s_lookup(lookups, runs, &x, &sum);
    s_rebuild(&x, &sum);

    printf("== summary\n");
    printf("balance, %d members, %ld keys: max/mean %.4f (target <= %.2f: %s)\n", RB_MEMBERS, keys,
           sum.balance, RB_TARGET_BALANCE, sum.balance <= RB_TARGET_BALANCE ? "met" : "NOT met");
    bool moved_ok =
        sum.moved[0] <= RB_TARGET_MOVED && sum.moved[1] <= RB_TARGET_MOVED && sum.stray == 0;
    printf("moved keys: join %.3f x K/N, leave %.3f x K/N, %ld stray (target <= %.1f: %s)\n",
           sum.moved[0], sum.moved[1], sum.stray, RB_TARGET_MOVED, moved_ok ? "met" : "NOT met");
    for (size_t si = 0; si < RB_NSIZES; si++) {
        printf("lookup at %4zu members: owner %.1f ns, +2 replicas %.1f ns; XXH3 alone %.1f ns, "
               "rendezvous %.1f ns",
               s_sizes[si], sum.lookup[RB_OWNER][si], sum.lookup[RB_OWNER_REPL][si],
               sum.lookup[RB_XXH3][si], sum.lookup[RB_HRW][si]);
        if (s_sizes[si] == RB_TARGET_MEMBERS) {
            printf(" (target <= %.0f: %s)", RB_TARGET_NS,
                   sum.lookup[RB_OWNER][si] <= RB_TARGET_NS ? "met" : "NOT met");
        }
        printf("\n");
    }
    for (size_t si = 0; si < RB_NSIZES; si++) {
        printf("rebuild at %4zu members: first %.1f us, one join or leave %.1f us\n", s_sizes[si],
               sum.first[si], sum.change[si]);
    }
    return 0;
}
