/*  bench_util.h: helpers shared by the benchmarks (timing, percentiles,
    CPU placement, free loopback ports). Benchmarks report; they never fail a
    suite, so nothing here asserts on a number. */
#ifndef MESH_BENCH_UTIL_H
#define MESH_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*  Monotonic nanoseconds (CLOCK_MONOTONIC). */
uint64_t bench_now_ns(void);

/*  Latency summary of n samples in ns. Sorts `ns` in place. */
typedef struct {
    uint64_t p50;
    uint64_t p99;
    uint64_t min;
    uint64_t max;
    double mean;
} bench_lat_t;
void bench_lat_summarize(uint64_t *ns, size_t n, bench_lat_t *out);

/*  Median of n values (the array is not modified). n == 0 gives 0. */
double bench_median(const double *v, size_t n);
/*  Smallest and largest of n values. */
void bench_minmax(const double *v, size_t n, double *min, double *max);

/*  Pins every thread of the process, and every thread created later by the
    calling thread, to `cpu` (sched_setaffinity). Call it first thing in main
    so that libzmq's I/O threads inherit the mask. 0 or -errno. */
int bench_pin_process(int cpu);

/*  A UDP port that was free on 0.0.0.0 a moment ago (bound to port 0, read
    back, closed). 0 on failure. Racy by nature; good enough for one run. */
uint16_t bench_free_udp_port(void);

/*  Parses "--name=VALUE" or "--name VALUE" style integers; see callers. */
bool bench_arg_int(int argc, char **argv, int *i, const char *name, long *out);

#endif
