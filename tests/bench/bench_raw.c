/*  bench_raw: the raw libzmq baseline on its own (no mesh code), so the floor
    of this machine can be read before any mesh benchmark exists.

    bench_raw [--pin] [--runs R] [--iterations N] [--size B]

    Per run: DEALER->ROUTER->DEALER round trip p50/p99 (lock-step), pipelined
    request/reply with a window of 100, one-way DEALER->ROUTER throughput.
    Then the median of runs and the spread (min..max). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "raw_zmq.h"

#define RAW_DEFAULT_RUNS       3
#define RAW_DEFAULT_ITERATIONS 20000
#define RAW_DEFAULT_SIZE       64
#define RAW_WARMUP             1000
#define RAW_WINDOW             100
#define RAW_PIPELINED_REQUESTS 200000
#define RAW_ONEWAY_COUNT       1000000
#define RAW_RUNS_MAX           50

int main(int argc, char **argv)
{
    long runs = RAW_DEFAULT_RUNS, iterations = RAW_DEFAULT_ITERATIONS, size = RAW_DEFAULT_SIZE;
    int pin = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pin") == 0) {
            pin = 1;
        } else if (bench_arg_int(argc, argv, &i, "--runs", &runs) ||
                   bench_arg_int(argc, argv, &i, "--iterations", &iterations) ||
                   bench_arg_int(argc, argv, &i, "--size", &size)) {
            continue;
        } else {
            fprintf(stderr, "usage: bench_raw [--pin] [--runs R] [--iterations N] [--size B]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > RAW_RUNS_MAX || iterations < 1 || size < 1) {
        fprintf(stderr, "bench_raw: runs 1..%d, iterations >= 1, size >= 1\n", RAW_RUNS_MAX);
        return 2;
    }
    if (pin && bench_pin_process(0) != 0) {
        fprintf(stderr, "bench_raw: cannot pin to CPU 0\n");
        return 1;
    }
    printf("# raw libzmq, tcp loopback, %ld B, placement: %s\n", size,
           pin ? "pinned (CPU 0)" : "free");
    uint64_t *rtt = malloc((size_t)iterations * sizeof *rtt);
    double p50[RAW_RUNS_MAX], p99[RAW_RUNS_MAX], pipe[RAW_RUNS_MAX], oneway[RAW_RUNS_MAX];
    if (!rtt) {
        return 1;
    }
    for (long r = 0; r < runs; r++) {
        bench_lat_t lat;
        if (bench_raw_rtt((size_t)size, RAW_WARMUP, (int)iterations, rtt) != 0 ||
            bench_raw_pipelined((size_t)size, RAW_WINDOW, RAW_PIPELINED_REQUESTS, &pipe[r]) != 0 ||
            bench_raw_oneway((size_t)size, RAW_ONEWAY_COUNT, &oneway[r]) != 0) {
            free(rtt);
            return 1;
        }
        bench_lat_summarize(rtt, (size_t)iterations, &lat);
        p50[r] = (double)lat.p50 / 1e3;
        p99[r] = (double)lat.p99 / 1e3;
        printf("run %ld: rtt p50 %7.1f us  p99 %7.1f us  | pipelined w%d %8.0f req/s"
               "  | one-way %9.0f msg/s\n",
               r + 1, p50[r], p99[r], RAW_WINDOW, pipe[r], oneway[r]);
        fflush(stdout);
    }
    double lo, hi;
    bench_minmax(p50, (size_t)runs, &lo, &hi);
    printf("median: rtt p50 %.1f us (%.1f..%.1f)", bench_median(p50, (size_t)runs), lo, hi);
    bench_minmax(p99, (size_t)runs, &lo, &hi);
    printf("  p99 %.1f us (%.1f..%.1f)\n", bench_median(p99, (size_t)runs), lo, hi);
    bench_minmax(pipe, (size_t)runs, &lo, &hi);
    printf("median: pipelined w%d %.0f req/s (%.0f..%.0f)\n", RAW_WINDOW,
           bench_median(pipe, (size_t)runs), lo, hi);
    bench_minmax(oneway, (size_t)runs, &lo, &hi);
    printf("median: one-way %.0f msg/s (%.0f..%.0f)\n", bench_median(oneway, (size_t)runs), lo, hi);
    free(rtt);
    return 0;
}
