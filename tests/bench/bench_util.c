/*  bench_util.c: see bench_util.h. */
#include "bench_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

/*  Nearest-rank percentile of sorted samples. */
static uint64_t s_rank(const uint64_t *sorted, size_t n, double pct)
{
    size_t rank = (size_t)((pct / 100.0) * (double)n + 0.999999);
    if (rank < 1) {
        rank = 1;
    }
    if (rank > n) {
        rank = n;
    }
    return sorted[rank - 1];
}

void bench_lat_summarize(uint64_t *ns, size_t n, bench_lat_t *out)
{
    memset(out, 0, sizeof *out);
    if (n == 0) {
        return;
    }
    qsort(ns, n, sizeof *ns, s_cmp_u64);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += (double)ns[i];
    }
    out->p50 = s_rank(ns, n, 50);
    out->p99 = s_rank(ns, n, 99);
    out->min = ns[0];
    out->max = ns[n - 1];
    out->mean = sum / (double)n;
}

double bench_median(const double *v, size_t n)
{
    if (n == 0) {
        return 0;
    }
    double *copy = malloc(n * sizeof *copy);
    if (!copy) {
        return 0;
    }
    memcpy(copy, v, n * sizeof *copy);
    qsort(copy, n, sizeof *copy, s_cmp_double);
    double m = (n % 2) ? copy[n / 2] : (copy[n / 2 - 1] + copy[n / 2]) / 2;
    free(copy);
    return m;
}

void bench_minmax(const double *v, size_t n, double *min, double *max)
{
    *min = n ? v[0] : 0;
    *max = n ? v[0] : 0;
    for (size_t i = 1; i < n; i++) {
        if (v[i] < *min) {
            *min = v[i];
        }
        if (v[i] > *max) {
            *max = v[i];
        }
    }
}

int bench_pin_process(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    /*  The calling thread first: threads it creates later inherit its mask. */
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        return -errno;
    }
    /*  Then any thread that already exists. */
    DIR *dir = opendir("/proc/self/task");
    if (!dir) {
        return -errno;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }
        pid_t tid = (pid_t)atoi(de->d_name);
        if (tid > 0 && sched_setaffinity(tid, sizeof set, &set) != 0) {
            rc = -errno;
        }
    }
    closedir(dir);
    return rc;
}

uint16_t bench_free_udp_port(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        return 0;
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    uint16_t port = 0;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0) {
        port = ntohs(addr.sin_port);
    }
    close(fd);
    return port;
}

bool bench_arg_int(int argc, char **argv, int *i, const char *name, long *out)
{
    size_t len = strlen(name);
    const char *arg = argv[*i];
    const char *value = NULL;
    if (strncmp(arg, name, len) != 0) {
        return false;
    }
    if (arg[len] == '=') {
        value = arg + len + 1;
    } else if (arg[len] == '\0' && *i + 1 < argc) {
        value = argv[++*i];
    } else {
        return false;
    }
    char *end = NULL;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end != '\0') {
        fprintf(stderr, "bad value for %s: %s\n", name, value);
        exit(2);
    }
    *out = v;
    return true;
}
