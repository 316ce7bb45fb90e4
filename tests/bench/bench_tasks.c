/*  bench_tasks: the task scheduling core (tasks.c) alone: how many tasks per
    second it can add, hand out as due and finish, against two baselines
    measured in the same run.

    bench_tasks [--tasks N] [--runs R] [--size B] [--pin]

    Each run fills a fresh queue with N tasks (B-byte payload, default 64;
    due times spread over N ms, replica indexes 0..2), then times:
      add        mesh__tasks_add of the N tasks
      add+key    the same with an idempotency key each (a second table)
      due        mesh__tasks_due in batches of 1024, the clock moved to the
                 end (every task handed out: heap pops)
      finish     mesh__tasks_finished(ok) of every task
      cycle      add + due + finish, per task: the queue's share of one
                 task's life on its owner
      purge      on_tick past the retention period (every task freed)
      rate-wait  due with a limit of N/2 per second on the path and N tasks
                 due: half start at once (a token each), half wait in the
                 limiter's queue and are released a second later
    Baselines, in the same run: a bare binary min-heap of N (due, pointer)
    pairs, every one pushed then popped (the floor of any heap-ordered
    scheduler, with no lookups, states or copies), and malloc + memcpy of
    the payload + free per task (the floor of any queue that copies what it
    is given); and the end-to-end target of 5,000 tasks/s on 3
    nodes (the networking comes on top of this core). Due-time accuracy depends on the caller's
   timer, not on this module: it is measured end to end, not here. CPU only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "tasks.h"

#define TASKS_DEFAULT_N    1000000
#define TASKS_DEFAULT_RUNS 3
#define TASKS_DEFAULT_SIZE 64
#define TASKS_RUNS_MAX     50
#define TASKS_BATCH        1024
#define TASKS_PATH         "svc/bench"
#define TASKS_TARGET       5000.0 /* tasks/s, issue 5 section 5, end to end */

typedef enum {
    PH_ADD,
    PH_ADD_KEY,
    PH_DUE,
    PH_FINISH,
    PH_CYCLE,
    PH_PURGE,
    PH_RATE,
    PH_HEAP,
    PH_MALLOC,
    PH_COUNT
} phase_t;

static const char *const s_names[PH_COUNT] = {
    "add",
    "add+key",
    "due",
    "finish",
    "cycle (add+due+finish)",
    "purge",
    "rate-wait due",
    "baseline bare heap push+pop",
    "baseline malloc+memcpy+free",
};

static volatile uint64_t s_sink;

static void s_die(const char *what)
{
    fprintf(stderr, "bench_tasks: %s\n", what);
    exit(1);
}

static mesh__tasks_t *s_queue(size_t n)
{
    mesh__tasks_config_t cfg;
    mesh__tasks_config_default(&cfg);
    cfg.max_tasks = n;
    cfg.seed = 12345;
    mesh__tasks_t *q = mesh__tasks_new(&cfg);
    if (!q) {
        s_die("mesh__tasks_new failed");
    }
    return q;
}

static double s_rate(size_t n, uint64_t ns)
{
    return ns ? (double)n * 1e9 / (double)ns : 0;
}

/*  Adds n tasks; with keys, each its own. Returns ns. */
static uint64_t s_fill(mesh__tasks_t *q, size_t n, const uint8_t *payload, size_t size, bool keys)
{
    char key[32];
    mesh__task_spec_t s;
    memset(&s, 0, sizeof s);
    s.path = TASKS_PATH;
    s.payload = payload;
    s.size = size;
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++) {
        s.due = (int64_t)((i * 7919) % n); /* spread, not in order */
        s.replica = (unsigned)(i % 3);
        if (keys) {
            snprintf(key, sizeof key, "k%zu", i);
            s.idem_key = key;
        }
        if (mesh__tasks_add(q, &s, 0, NULL) != MESH_TASKS_ADDED) {
            s_die("add failed");
        }
    }
    return bench_now_ns() - t0;
}

typedef struct {
    int64_t due;
    void *ptr;
} bare_t;

/*  The bare heap baseline: push n entries (the same due spread as s_fill),
    pop them all. Returns ns. */
static uint64_t s_bare_heap(size_t n)
{
    bare_t *v = malloc(n * sizeof *v);
    if (!v) {
        s_die("out of memory");
    }
    uint64_t t0 = bench_now_ns();
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        bare_t e = {(int64_t)((i * 7919) % n), v + i};
        size_t k = len++;
        while (k > 0 && v[(k - 1) / 2].due > e.due) {
            v[k] = v[(k - 1) / 2];
            k = (k - 1) / 2;
        }
        v[k] = e;
    }
    while (len > 0) {
        s_sink += (uint64_t)v[0].due;
        bare_t e = v[--len];
        size_t k = 0;
        for (;;) {
            size_t c = 2 * k + 1;
            if (c >= len) {
                break;
            }
            if (c + 1 < len && v[c + 1].due < v[c].due) {
                c++;
            }
            if (v[c].due >= e.due) {
                break;
            }
            v[k] = v[c];
            k = c;
        }
        if (len > 0) {
            v[k] = e;
        }
    }
    uint64_t ns = bench_now_ns() - t0;
    free(v);
    return ns;
}

/*  One run: every phase once. rates[phase] in tasks/s. */
static void s_run(size_t n, size_t size, double *rates)
{
    uint8_t *payload = malloc(size ? size : 1);
    memset(payload, 0xab, size);
    mesh__task_t **out = malloc(TASKS_BATCH * sizeof *out);
    uint8_t(*ids)[MESH_TASKS_ID_SIZE] = malloc(n * MESH_TASKS_ID_SIZE);
    if (!out || !ids) {
        s_die("out of memory");
    }

    /* baseline: the copy any queue makes */
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = malloc(size + 160); /* about a task's struct with its payload */
        memcpy(p, payload, size);
        s_sink += p[i % (size ? size : 1)];
        free(p);
    }
    rates[PH_MALLOC] = s_rate(n, bench_now_ns() - t0);
    rates[PH_HEAP] = s_rate(n, s_bare_heap(n));

    mesh__tasks_t *q = s_queue(n);
    uint64_t add_ns = s_fill(q, n, payload, size, false);
    rates[PH_ADD] = s_rate(n, add_ns);

    int64_t end = (int64_t)n + 2 * MESH_TASKS_DEFAULT_REPLICA_OFFSET_MS;
    size_t got = 0, k;
    t0 = bench_now_ns();
    while ((k = mesh__tasks_due(q, end, out, TASKS_BATCH)) > 0) {
        for (size_t i = 0; i < k; i++) {
            memcpy(ids[got + i], mesh__task_id(out[i]), MESH_TASKS_ID_SIZE);
        }
        got += k;
    }
    uint64_t due_ns = bench_now_ns() - t0;
    if (got != n) {
        s_die("not every task came due");
    }
    rates[PH_DUE] = s_rate(n, due_ns);

    t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++) {
        if (mesh__tasks_finished(q, ids[i], 1, true, "ok", 2, end) != 0) {
            s_die("finished failed");
        }
    }
    uint64_t fin_ns = bench_now_ns() - t0;
    rates[PH_FINISH] = s_rate(n, fin_ns);
    rates[PH_CYCLE] = s_rate(n, add_ns + due_ns + fin_ns);

    t0 = bench_now_ns();
    size_t purged = mesh__tasks_on_tick(q, end + MESH_TASKS_DEFAULT_RETENTION_MS);
    rates[PH_PURGE] = s_rate(n, bench_now_ns() - t0);
    if (purged != n || mesh__tasks_size(q) != 0) {
        s_die("not every task was purged");
    }
    mesh__tasks_destroy(&q);

    q = s_queue(n);
    rates[PH_ADD_KEY] = s_rate(n, s_fill(q, n, payload, size, true));
    mesh__tasks_destroy(&q);

    /* a limit that lets about half through at once: the rest wait a second */
    q = s_queue(n);
    mesh__ratelimit_t rl = {(uint32_t)(n / 2 ? n / 2 : 1), 1000};
    if (mesh__tasks_set_ratelimit(q, TASKS_PATH, &rl, end) != 0) {
        s_die("rate limit refused");
    }
    s_fill(q, n, payload, size, false);
    got = 0;
    t0 = bench_now_ns();
    for (int64_t now = end; got < n; now += 1000) {
        while ((k = mesh__tasks_due(q, now, out, TASKS_BATCH)) > 0) {
            got += k;
        }
    }
    rates[PH_RATE] = s_rate(n, bench_now_ns() - t0);
    mesh__tasks_destroy(&q);

    free(ids);
    free(out);
    free(payload);
}

int main(int argc, char **argv)
{
    long n = TASKS_DEFAULT_N, runs = TASKS_DEFAULT_RUNS, size = TASKS_DEFAULT_SIZE;
    bool pin = false;
    for (int i = 1; i < argc; i++) {
        if (bench_arg_int(argc, argv, &i, "--tasks", &n) ||
            bench_arg_int(argc, argv, &i, "--runs", &runs) ||
            bench_arg_int(argc, argv, &i, "--size", &size)) {
            continue;
        }
        if (strcmp(argv[i], "--pin") == 0) {
            pin = true;
            continue;
        }
        fprintf(stderr, "usage: bench_tasks [--tasks N] [--runs R] [--size B] [--pin]\n");
        return 2;
    }
    if (n < 1 || n > MESH_TASKS_MAX || runs < 1 || runs > TASKS_RUNS_MAX || size < 0 ||
        size > MESH_TASKS_PAYLOAD_MAX) {
        fprintf(stderr, "bench_tasks: tasks 1..%d, runs 1..%d, size 0..%d\n", MESH_TASKS_MAX,
                TASKS_RUNS_MAX, MESH_TASKS_PAYLOAD_MAX);
        return 2;
    }
    if (pin && bench_pin_process(0) != 0) {
        fprintf(stderr, "bench_tasks: cannot pin to CPU 0\n");
    }

    static double rates[PH_COUNT][TASKS_RUNS_MAX];
    for (long r = 0; r < runs; r++) {
        double one[PH_COUNT];
        s_run((size_t)n, (size_t)size, one);
        for (int p = 0; p < PH_COUNT; p++) {
            rates[p][r] = one[p];
        }
    }

    printf("bench_tasks: %ld tasks, %ld-byte payload, median of %ld runs%s\n", n, size, runs,
           pin ? ", pinned to CPU 0" : "");
    printf("%-28s %14s %14s %14s %10s %10s\n", "phase", "tasks/s", "min", "max", "ns/task",
           "x target");
    double cycle = 0, due = 0, heap = 0, copy = 0;
    for (int p = 0; p < PH_COUNT; p++) {
        double med = bench_median(rates[p], (size_t)runs), lo, hi;
        bench_minmax(rates[p], (size_t)runs, &lo, &hi);
        printf("%-28s %14.0f %14.0f %14.0f %10.1f ", s_names[p], med, lo, hi,
               med > 0 ? 1e9 / med : 0);
        if (p < PH_HEAP) {
            printf("%10.0f\n", med / TASKS_TARGET);
        } else {
            printf("%10s\n", "-");
        }
        cycle = p == PH_CYCLE ? med : cycle;
        due = p == PH_DUE ? med : due;
        heap = p == PH_HEAP ? med : heap;
        copy = p == PH_MALLOC ? med : copy;
    }
    /* the floors' costs add: a task is copied once and passes the heap once */
    double floor_rate = heap > 0 && copy > 0 ? 1.0 / (1.0 / heap + 1.0 / copy) : 0;
    printf("cycle: x%.0f the %.0f tasks/s target; %.2f of the floors' rate (bare heap + copy, "
           "%.0f/s)\n",
           cycle / TASKS_TARGET, TASKS_TARGET, floor_rate > 0 ? cycle / floor_rate : 0, floor_rate);
    printf("due: %.2f of the bare heap's push+pop rate\n", heap > 0 ? due / heap : 0);
    (void)s_sink;
    return 0;
}
