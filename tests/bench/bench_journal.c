/*  bench_journal: the task journal (journal.c, LMDB): puts per second, one
    transaction per put against batches, under each sync mode, next to two
    baselines measured in the same run on the same file system.

    bench_journal [--puts N] [--runs R] [--size B] [--batch K] [--dir DIR]

    Each run opens a fresh journal under DIR (default: a new directory under
    /tmp, removed at the end) and times N puts of B-byte records (default
    2,000 of 200 bytes; batched phases put 10 x N):
      single/full    one put, one commit, flushed (SYNC_FULL, the default)
      batch/full     K puts (default 100) per begin/commit, flushed
      single/meta    one put per commit, SYNC_META (meta page not flushed)
      single/none    one put per commit, SYNC_NONE (nothing flushed)
      batch/none     K per commit, SYNC_NONE
    Baselines: write() of B bytes + fdatasync() per record on a plain file
    (the floor of any store that makes each record durable on its own), and
    write() alone (the floor of buffered appends). Figures depend on the
    device's flush latency far more than on the code: compare the ratio of
    single/full to the fdatasync baseline, not the raw numbers, between
    machines. Prints the median of R runs. Never fails a suite. */
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <mesh/error.h>

#include "bench_util.h"
#include "journal.h"

#define J_DEFAULT_PUTS  2000
#define J_DEFAULT_RUNS  3
#define J_DEFAULT_SIZE  200
#define J_DEFAULT_BATCH 100
#define J_BATCHED_X     10 /* batched phases put this many times more */
#define J_RUNS_MAX      20
#define J_PATH_MAX      512

typedef enum {
    PH_SINGLE_FULL,
    PH_BATCH_FULL,
    PH_SINGLE_META,
    PH_SINGLE_NONE,
    PH_BATCH_NONE,
    PH_FDATASYNC,
    PH_WRITE,
    PH_COUNT
} phase_t;

static const char *s_names[PH_COUNT] = {
    "single/full",      "batch/full", "single/meta",
    "single/none",      "batch/none", "write+fdatasync (baseline)",
    "write (baseline)",
};

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void s_id(uint64_t i, uint8_t *id)
{
    memset(id, 0, MESH_JOURNAL_ID_SIZE);
    for (int k = 0; k < 8; k++) {
        id[8 + k] = (uint8_t)(i >> (56 - 8 * k));
    }
}

/*  puts/s of one journal phase, or -1 on an error. */
static double s_journal(const char *dir, mesh__journal_sync_t sync, long n, long batch,
                        const uint8_t *rec, size_t size)
{
    mesh__journal_config_t cfg;
    mesh__journal_config_default(&cfg);
    cfg.sync = sync;
    int err;
    mesh__journal_t *j = mesh__journal_open_config(dir, &cfg, &err);
    if (!j) {
        fprintf(stderr, "open %s: %s\n", dir, mesh_strerror(err));
        return -1;
    }
    uint8_t id[MESH_JOURNAL_ID_SIZE];
    int rc = 0;
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n && rc == 0; i++) {
        if (batch > 1 && i % batch == 0) {
            rc = mesh__journal_begin(j);
        }
        s_id((uint64_t)i, id);
        if (rc == 0) {
            rc = mesh__journal_put(j, id, rec, size, 1700000000000 + i);
        }
        if (rc == 0 && batch > 1 && (i % batch == batch - 1 || i == n - 1)) {
            rc = mesh__journal_commit(j);
        }
    }
    uint64_t t1 = bench_now_ns();
    mesh__journal_close(&j);
    if (rc != 0) {
        fprintf(stderr, "put: %s\n", mesh_strerror(rc));
        return -1;
    }
    return (double)n * 1e9 / (double)(t1 - t0);
}

/*  records/s of plain appends, each followed by fdatasync if asked. */
static double s_baseline(const char *dir, bool sync, long n, const uint8_t *rec, size_t size)
{
    char path[J_PATH_MAX];
    snprintf(path, sizeof path, "%s/baseline", dir);
    mkdir(dir, 0700);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    if (fd < 0) {
        return -1;
    }
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        if (write(fd, rec, size) != (ssize_t)size || (sync && fdatasync(fd) != 0)) {
            close(fd);
            return -1;
        }
    }
    uint64_t t1 = bench_now_ns();
    close(fd);
    return (double)n * 1e9 / (double)(t1 - t0);
}

int main(int argc, char **argv)
{
    long n = J_DEFAULT_PUTS, runs = J_DEFAULT_RUNS, size = J_DEFAULT_SIZE, batch = J_DEFAULT_BATCH;
    const char *base = NULL;
    for (int i = 1; i < argc; i++) {
        if (bench_arg_int(argc, argv, &i, "--puts", &n) ||
            bench_arg_int(argc, argv, &i, "--runs", &runs) ||
            bench_arg_int(argc, argv, &i, "--size", &size) ||
            bench_arg_int(argc, argv, &i, "--batch", &batch)) {
            continue;
        }
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            base = argv[++i];
            continue;
        }
        fprintf(stderr, "usage: bench_journal [--puts N] [--runs R] [--size B] [--batch K] "
                        "[--dir DIR]\n");
        return 2;
    }
    if (n < 1 || runs < 1 || runs > J_RUNS_MAX || size < 1 || size > MESH_JOURNAL_RECORD_MAX ||
        batch < 2) {
        fprintf(stderr, "bench_journal: an argument is out of range\n");
        return 2;
    }
    char tmp[J_PATH_MAX];
    if (base) {
        snprintf(tmp, sizeof tmp, "%s/bench_journal.XXXXXX", base);
    } else {
        snprintf(tmp, sizeof tmp, "/tmp/bench_journal.XXXXXX");
    }
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    uint8_t *rec = malloc((size_t)size);
    if (!rec) {
        return 1;
    }
    for (long i = 0; i < size; i++) {
        rec[i] = (uint8_t)(i * 13);
    }
    struct statfs sf;
    const char *fs = "?";
    if (statfs(tmp, &sf) == 0) {
        fs = sf.f_type == 0xEF53       ? "ext4"
             : sf.f_type == 0x01021994 ? "tmpfs"
             : sf.f_type == 0x58465342 ? "xfs"
             : sf.f_type == 0x9123683E ? "btrfs"
                                       : "other";
    }
    printf("bench_journal: %ld puts (x%d batched) of %ld B, batch %ld, %ld runs, in %s (%s)\n", n,
           J_BATCHED_X, size, batch, runs, tmp, fs);

    static double rate[PH_COUNT][J_RUNS_MAX];
    for (long r = 0; r < runs; r++) {
        for (int ph = 0; ph < PH_COUNT; ph++) {
            char dir[J_PATH_MAX + 32];
            snprintf(dir, sizeof dir, "%s/r%ld-p%d", tmp, r, ph);
            long count = (ph == PH_BATCH_FULL || ph == PH_BATCH_NONE) ? n * J_BATCHED_X : n;
            double v;
            switch (ph) {
            case PH_SINGLE_FULL:
                v = s_journal(dir, MESH_JOURNAL_SYNC_FULL, count, 1, rec, (size_t)size);
                break;
            case PH_BATCH_FULL:
                v = s_journal(dir, MESH_JOURNAL_SYNC_FULL, count, batch, rec, (size_t)size);
                break;
            case PH_SINGLE_META:
                v = s_journal(dir, MESH_JOURNAL_SYNC_META, count, 1, rec, (size_t)size);
                break;
            case PH_SINGLE_NONE:
                v = s_journal(dir, MESH_JOURNAL_SYNC_NONE, count, 1, rec, (size_t)size);
                break;
            case PH_BATCH_NONE:
                v = s_journal(dir, MESH_JOURNAL_SYNC_NONE, count, batch, rec, (size_t)size);
                break;
            case PH_FDATASYNC:
                v = s_baseline(dir, true, count, rec, (size_t)size);
                break;
            default:
                v = s_baseline(dir, false, count, rec, (size_t)size);
                break;
            }
            if (v < 0) {
                fprintf(stderr, "bench_journal: phase %s failed\n", s_names[ph]);
            }
            rate[ph][r] = v;
            nftw(dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
        }
    }
    double fsync_rate = bench_median(rate[PH_FDATASYNC], (size_t)runs);
    double single = bench_median(rate[PH_SINGLE_FULL], (size_t)runs);
    printf("%-28s %14s %14s %14s\n", "phase", "puts/s", "x fdatasync", "x single/full");
    for (int ph = 0; ph < PH_COUNT; ph++) {
        double med = bench_median(rate[ph], (size_t)runs);
        printf("%-28s %14.0f %14.2f %14.2f\n", s_names[ph], med, med / fsync_rate, med / single);
    }
    free(rec);
    nftw(tmp, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
