/*  bench_selector: the cost of one selector decision among many alive routes.

    bench_selector [--members 1000] [--decisions 1000000] [--runs 3] [--pin]

    One routing table holds M members (default 1,000), all alive, all offering
    the same path, with random loads (uniform in [0, 100)). Each run times N
    decisions (default 1e6) of least_loaded, round_robin, key (keys cycle
    through 4,096 distinct strings), random and, for reference, a custom
    selector (a callback doing a least-loaded scan over the candidate array the
    selector builds: the O(M) cost any custom policy pays; N/10 decisions).
    No tag filter, no exclusion: the case the target is set for
    (<= 1 us per decision for least_loaded, round_robin and key, Release).

    The baseline, measured in the same run: a plain loop reading M loads from
    a contiguous array of doubles and keeping the smallest (a naive O(M)
    least-loaded scan with nothing else in it; N/10 scans). Also shown: the
    cost of one status update (set_status with a new random load, which
    moves the member's route in the path's load order), least_loaded when
    every load is equal (one big tie), and the KEY ring rebuild after a
    member leaves. Each figure is the median of the runs, with the spread. */
#include <mesh/defaults.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "routing.h"

#define SB_MEMBERS_DEFAULT   1000
#define SB_DECISIONS_DEFAULT 1000000
#define SB_RUNS_DEFAULT      3
#define SB_RUNS_MAX          15
#define SB_KEYS              4096 /* a power of two */
#define SB_KEY_MAX           32
#define SB_TARGET_NS         1000.0
#define SB_REF_DIVISOR       10 /* custom and baseline: N / this decisions */
#define SB_TIMEOUT_MS        60000
#define SB_PATH              "svc/echo"
#define SB_SEED              0x5eed

typedef enum {
    SB_BASELINE,
    SB_LEAST_LOADED,
    SB_ROUND_ROBIN,
    SB_KEY,
    SB_RANDOM,
    SB_CUSTOM,
    SB_STATUS,
    SB_LL_ALL_EQUAL,
    SB_RING_BUILD,
    SB_NFIGURES
} sb_figure_t;

static const struct {
    const char *name;
    bool target; /* held to SB_TARGET_NS */
} s_figures[SB_NFIGURES] = {
    [SB_BASELINE] = {"baseline: plain loop over the loads", false},
    [SB_LEAST_LOADED] = {"least_loaded", true},
    [SB_ROUND_ROBIN] = {"round_robin", true},
    [SB_KEY] = {"key", true},
    [SB_RANDOM] = {"random", false},
    [SB_CUSTOM] = {"custom (reference: O(M) callback)", false},
    [SB_STATUS] = {"set_status, per update (order kept)", false},
    [SB_LL_ALL_EQUAL] = {"least_loaded, all loads equal", false},
    [SB_RING_BUILD] = {"key ring rebuild after a leave, once", false},
};

static volatile uintptr_t s_sink;

static uint64_t s_xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static double s_rand_load(uint64_t *x)
{
    return (double)(s_xorshift(x) >> 11) / (double)(1ULL << 53) * 100.0;
}

static void s_uuid(uint8_t *uuid, uint32_t i)
{
    uint64_t x = i * 0x9e3779b97f4a7c15ULL + 1;
    for (size_t k = 0; k < MESH_ZRE_UUID_SIZE; k++) {
        uuid[k] = (uint8_t)(s_xorshift(&x) >> 56);
    }
    memcpy(uuid, &i, sizeof i); /* distinct */
}

static int s_custom_least_loaded(const mesh__candidate_t *cands, size_t n, const char *key,
                                 void *arg)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++) {
        if (cands[i].load < cands[best].load) {
            best = i;
        }
    }
    return (int)best;
}

/*  The baseline: one naive scan per decision. The empty asm with a memory
    clobber stops the compiler from hoisting the scan out of the loop. */
static double s_time_baseline(const double *loads, size_t m, long n)
{
    uint64_t t0 = bench_now_ns();
    size_t acc = 0;
    for (long d = 0; d < n; d++) {
        __asm__ volatile("" ::: "memory");
        size_t best = 0;
        double min = loads[0];
        for (size_t i = 1; i < m; i++) {
            if (loads[i] < min) {
                min = loads[i];
                best = i;
            }
        }
        acc += best;
    }
    uint64_t t1 = bench_now_ns();
    s_sink = acc;
    return (double)(t1 - t0) / (double)n;
}

static double s_time_select(mesh__routing_t *rt, mesh__select_t *sel, char (*keys)[SB_KEY_MAX],
                            long n)
{
    uintptr_t acc = 0;
    uint64_t t0 = bench_now_ns();
    for (long d = 0; d < n; d++) {
        if (keys) {
            sel->key = keys[d & (SB_KEYS - 1)];
        }
        const mesh__route_t *r = mesh__select_one(rt, SB_PATH, sel, 0);
        acc += (uintptr_t)r;
    }
    uint64_t t1 = bench_now_ns();
    s_sink = acc;
    if (!acc) {
        fprintf(stderr, "bench_selector: no route chosen\n");
        exit(1);
    }
    return (double)(t1 - t0) / (double)n;
}

static double s_time_status(mesh__routing_t *rt, mesh__member_t **ms, size_t m, long n, uint64_t *x)
{
    uint64_t t0 = bench_now_ns();
    for (long d = 0; d < n; d++) {
        mesh__member_t *mm = ms[s_xorshift(x) % m];
        mesh__routing_set_status(rt, mm, s_rand_load(x), NULL, 1, 0, 0);
    }
    return (double)(bench_now_ns() - t0) / (double)n;
}

/*  One run: every figure once, in a fixed interleaved order. */
static void s_run(mesh__routing_t *rt, mesh__member_t **ms, size_t m, double *loads, long n,
                  char (*keys)[SB_KEY_MAX], uint64_t *x, double *out)
{
    long nref = n / SB_REF_DIVISOR > 0 ? n / SB_REF_DIVISOR : 1;
    for (size_t i = 0; i < m; i++) {
        loads[i] = s_rand_load(x);
        mesh__routing_set_status(rt, ms[i], loads[i], NULL, 1, 0, 0);
    }
    out[SB_BASELINE] = s_time_baseline(loads, m, nref);

    mesh__select_t sel = {.kind = MESH_SEL_LEAST_LOADED};
    out[SB_LEAST_LOADED] = s_time_select(rt, &sel, NULL, n);
    sel.kind = MESH_SEL_ROUND_ROBIN;
    out[SB_ROUND_ROBIN] = s_time_select(rt, &sel, NULL, n);
    sel.kind = MESH_SEL_KEY;
    sel.key = keys[0];
    mesh__select_one(rt, SB_PATH, &sel, 0); /* the ring is built on first use */
    out[SB_KEY] = s_time_select(rt, &sel, keys, n);
    sel = (mesh__select_t){.kind = MESH_SEL_RANDOM};
    out[SB_RANDOM] = s_time_select(rt, &sel, NULL, n);
    sel = (mesh__select_t){.kind = MESH_SEL_CUSTOM, .custom = s_custom_least_loaded};
    out[SB_CUSTOM] = s_time_select(rt, &sel, NULL, nref);
    out[SB_STATUS] = s_time_status(rt, ms, m, nref, x);

    for (size_t i = 0; i < m; i++) {
        mesh__routing_set_status(rt, ms[i], 1.0, NULL, 1, 0, 0);
    }
    sel = (mesh__select_t){.kind = MESH_SEL_LEAST_LOADED};
    out[SB_LL_ALL_EQUAL] = s_time_select(rt, &sel, NULL, n);

    /*  The last member leaves and comes back; the next KEY decision after
        each change rebuilds the ring (the second rebuild is timed). */
    const uint8_t *uuid = mesh__member_uuid(ms[m - 1]);
    uint8_t copy[MESH_ZRE_UUID_SIZE];
    memcpy(copy, uuid, sizeof copy);
    mesh__routing_remove(rt, copy);
    ms[m - 1] = mesh__routing_add(rt, copy, "back", false, 0);
    mesh__svc_entry_t svc = {.path = {(const uint8_t *)SB_PATH, strlen(SB_PATH)}};
    if (!ms[m - 1] || mesh__routing_set_services(rt, ms[m - 1], 1, &svc, 1, NULL, 0, 0) != 0) {
        fprintf(stderr, "bench_selector: re-adding a member failed\n");
        exit(1);
    }
    sel = (mesh__select_t){.kind = MESH_SEL_KEY, .key = keys[1]};
    mesh__select_one(rt, SB_PATH, &sel, 0);
    mesh__routing_remove(rt, copy);
    uint64_t t0 = bench_now_ns();
    s_sink = (uintptr_t)mesh__select_one(rt, SB_PATH, &sel, 0);
    out[SB_RING_BUILD] = (double)(bench_now_ns() - t0);
    ms[m - 1] = mesh__routing_add(rt, copy, "back", false, 0);
    if (!ms[m - 1] || mesh__routing_set_services(rt, ms[m - 1], 1, &svc, 1, NULL, 0, 0) != 0) {
        fprintf(stderr, "bench_selector: re-adding a member failed\n");
        exit(1);
    }
}

int main(int argc, char **argv)
{
    long members = SB_MEMBERS_DEFAULT;
    long decisions = SB_DECISIONS_DEFAULT;
    long runs = SB_RUNS_DEFAULT;
    bool pin = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pin") == 0) {
            pin = true;
        } else if (bench_arg_int(argc, argv, &i, "--members", &members) ||
                   bench_arg_int(argc, argv, &i, "--decisions", &decisions) ||
                   bench_arg_int(argc, argv, &i, "--runs", &runs)) {
            continue;
        } else {
            fprintf(stderr, "usage: bench_selector [--members M] [--decisions N] [--runs R] "
                            "[--pin]\n");
            return 2;
        }
    }
    if (members < 2 || members > 1000000 || decisions < 1 || runs < 1 || runs > SB_RUNS_MAX) {
        fprintf(stderr, "bench_selector: members 2..1e6, decisions >= 1, runs 1..%d\n",
                SB_RUNS_MAX);
        return 2;
    }
    if (pin && bench_pin_process(0) != 0) {
        fprintf(stderr, "bench_selector: cannot pin to CPU 0\n");
        return 1;
    }
    size_t m = (size_t)members;
    mesh__routing_t *rt = mesh__routing_new(SB_TIMEOUT_MS, SB_SEED);
    mesh__member_t **ms = calloc(m, sizeof *ms);
    double *loads = calloc(m, sizeof *loads);
    char(*keys)[SB_KEY_MAX] = calloc(SB_KEYS, sizeof *keys);
    if (!rt || !ms || !loads || !keys) {
        fprintf(stderr, "bench_selector: out of memory\n");
        return 1;
    }
    for (size_t k = 0; k < SB_KEYS; k++) {
        snprintf(keys[k], SB_KEY_MAX, "user:%zu", k * 7919);
    }
    mesh__svc_entry_t svc = {.path = {(const uint8_t *)SB_PATH, strlen(SB_PATH)}};
    for (size_t i = 0; i < m; i++) {
        uint8_t uuid[MESH_ZRE_UUID_SIZE];
        s_uuid(uuid, (uint32_t)i);
        char name[32];
        snprintf(name, sizeof name, "m%zu", i);
        ms[i] = mesh__routing_add(rt, uuid, name, false, 0);
        if (!ms[i] || mesh__routing_set_services(rt, ms[i], 1, &svc, 1, NULL, 0, 0) != 0) {
            fprintf(stderr, "bench_selector: building the table failed\n");
            return 1;
        }
    }

    long nref = decisions / SB_REF_DIVISOR > 0 ? decisions / SB_REF_DIVISOR : 1;
    printf("# selector decisions: %zu alive members offering one path, no tag filter, "
           "%s\n",
           m, pin ? "pinned to CPU 0" : "not pinned");
    printf("# %ld decisions per kind per run (custom, baseline, set_status: %ld), %ld runs; "
           "median (min..max)\n",
           decisions, nref, runs);
    printf("# baseline = a plain loop reading %zu contiguous loads and keeping the least\n\n", m);

    double fig[SB_NFIGURES][SB_RUNS_MAX];
    uint64_t x = SB_SEED;
    for (long r = 0; r < runs; r++) {
        double out[SB_NFIGURES];
        s_run(rt, ms, m, loads, decisions, keys, &x, out);
        printf("run %ld:", r + 1);
        for (int f = 0; f < SB_NFIGURES; f++) {
            fig[f][r] = out[f];
            printf(" %.0f", out[f]);
        }
        printf("  (ns, in the order below)\n");
    }

    double med[SB_NFIGURES], lo[SB_NFIGURES], hi[SB_NFIGURES];
    for (int f = 0; f < SB_NFIGURES; f++) {
        med[f] = bench_median(fig[f], (size_t)runs);
        bench_minmax(fig[f], (size_t)runs, &lo[f], &hi[f]);
    }
    printf("\n%-38s %11s %23s %10s %10s\n", "ns per decision", "median", "(min..max)", "target",
           "/baseline");
    bool all_met = true;
    for (int f = 0; f < SB_NFIGURES; f++) {
        char spread[48], target[16];
        snprintf(spread, sizeof spread, "(%.1f..%.1f)", lo[f], hi[f]);
        if (s_figures[f].target) {
            bool met = med[f] <= SB_TARGET_NS;
            all_met = all_met && met;
            snprintf(target, sizeof target, "%s", met ? "<=1000 ok" : "<=1000 NO");
        } else {
            snprintf(target, sizeof target, "-");
        }
        printf("%-38s %11.1f %23s %10s %9.3fx\n", s_figures[f].name, med[f], spread, target,
               med[f] / med[SB_BASELINE]);
    }
    printf("target (<= %.0f ns per decision for least_loaded, round_robin, key): %s\n",
           SB_TARGET_NS, all_met ? "met" : "NOT met");

    mesh__routing_destroy(&rt);
    free(ms);
    free(loads);
    free(keys);
    return 0;
}
